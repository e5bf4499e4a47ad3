//! Delegation tokens (KIP-48) against a private broker with `delegation.token.secret.key`:
//! created over SASL SCRAM, used to authenticate (SCRAM with `tokenauth=true`), described,
//! renewed and expired, after which the token no longer authenticates; the broker's
//! refusals (a PLAINTEXT or token-authenticated connection, a broker without the secret)
//! are typed errors naming them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use strom_client::{Admin, ClientConfig, CreateDelegationTokenOptions, ErrorCode, ErrorKind};
use strom_integration_tests::{broker, init_test_logging, PrivateBroker};

const SCRAM: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

fn scram(bootstrap: &str, jaas: &str, mechanism: &str) -> ClientConfig {
    let mut c = ClientConfig::default();
    for (k, v) in [
        ("bootstrap.servers", bootstrap),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", mechanism),
        ("sasl.jaas.config", jaas),
    ] {
        c.set(k, v).unwrap();
    }
    c.default_api_timeout = Duration::from_secs(10);
    c
}

fn as_user(bootstrap: &str) -> ClientConfig {
    scram(
        bootstrap,
        &format!("{SCRAM} required username=\"strom\" password=\"strom-secret\";"),
        "SCRAM-SHA-256",
    )
}

#[tokio::test]
async fn create_authenticate_describe_renew_and_expire() {
    init_test_logging();
    let b = PrivateBroker::start_with(
        24392,
        &[(
            "STROM_KAFKA_OVERRIDES",
            "delegation.token.secret.key=strom-test-token-secret delegation.token.expiry.time.ms=3600000",
        )],
    );
    let sasl_bootstrap = format!("127.0.0.1:{}", b.port_base + 2);
    let admin = Admin::connect(as_user(&sasl_bootstrap)).await.unwrap();

    let token = admin
        .create_delegation_token(
            &CreateDelegationTokenOptions::default()
                .renewer("User:admin")
                .max_lifetime(Duration::from_secs(7200)),
        )
        .await
        .unwrap();
    assert_eq!(token.owner, "User:strom");
    assert_eq!(token.token_requester, "User:strom");
    assert!(!token.hmac().is_empty());
    assert!(token.issue_timestamp_ms < token.expiry_timestamp_ms);
    assert!(token.expiry_timestamp_ms <= token.max_timestamp_ms);
    assert!(token.max_timestamp_ms - token.issue_timestamp_ms <= 7_200_000);
    assert!(!format!("{token:?}").contains(&token.hmac_base64()));

    // The token authenticates, with either SCRAM mechanism, as its owner, once the broker
    // has applied it (the controller commits it; the broker's token cache follows).
    let deadline = Instant::now() + Duration::from_secs(15);
    while let Err(e) = Admin::connect(scram(&sasl_bootstrap, &token.jaas_config(), "SCRAM-SHA-256")).await {
        assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
        assert!(
            Instant::now() < deadline,
            "the new token does not authenticate after 15 s: {e}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
        let with_token = Admin::connect(scram(&sasl_bootstrap, &token.jaas_config(), mechanism))
            .await
            .unwrap_or_else(|e| panic!("{mechanism}: {e}"));
        with_token.list_topics(false).await.unwrap();
        // A token-authenticated connection may not manage tokens.
        let e = with_token
            .create_delegation_token(&CreateDelegationTokenOptions::default())
            .await
            .unwrap_err();
        assert_eq!(e.kafka_code(), Some(ErrorCode::DelegationTokenRequestNotAllowed), "{e}");
    }

    // Described, by owner and for everyone; a stranger owns none.
    let mine = admin.describe_delegation_tokens(Some(&["User:strom"])).await.unwrap();
    let described = mine.iter().find(|t| t.token_id == token.token_id).unwrap();
    assert_eq!(described.hmac(), token.hmac());
    assert_eq!(described.renewers, vec!["User:admin".to_owned()]);
    assert_eq!(described.expiry_timestamp_ms, token.expiry_timestamp_ms);
    assert!(admin
        .describe_delegation_tokens(Some(&["User:nobody"]))
        .await
        .unwrap()
        .is_empty());

    // Renewed by a renewer (admin): a later expiry, never past the maximum.
    let as_admin = Admin::connect(scram(
        &sasl_bootstrap,
        &format!("{SCRAM} required username=\"admin\" password=\"admin-secret\";"),
        "SCRAM-SHA-512",
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let renewed = as_admin
        .renew_delegation_token(token.hmac(), Some(Duration::from_secs(3600)))
        .await
        .unwrap();
    assert!(
        renewed > token.expiry_timestamp_ms && renewed <= token.max_timestamp_ms,
        "{renewed}"
    );
    let e = admin.renew_delegation_token(b"not-a-token", None).await.unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::DelegationTokenNotFound), "{e}");

    // Expired now: it no longer authenticates (once the broker has applied it) and is gone.
    admin.expire_delegation_token(token.hmac(), None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match Admin::connect(scram(&sasl_bootstrap, &token.jaas_config(), "SCRAM-SHA-256")).await {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
                break;
            }
            Ok(_) => assert!(
                Instant::now() < deadline,
                "an expired token still authenticates after 15 s"
            ),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!admin
        .describe_delegation_tokens(None)
        .await
        .unwrap()
        .iter()
        .any(|t| t.token_id == token.token_id));

    // PLAINTEXT connections may not manage tokens.
    let plain = Admin::connect(ClientConfig::new(&b.bootstrap)).await.unwrap();
    let e = plain
        .create_delegation_token(&CreateDelegationTokenOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::DelegationTokenRequestNotAllowed), "{e}");
    // A bad principal is refused before anything is sent.
    let e = admin
        .create_delegation_token(&CreateDelegationTokenOptions::default().renewer("admin"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
}

#[tokio::test]
async fn a_broker_without_the_secret_says_token_auth_is_disabled() {
    init_test_logging();
    let admin = Admin::connect(as_user(broker().var("STROM_SASL_PLAINTEXT_BOOTSTRAP")))
        .await
        .unwrap();
    let e = admin
        .create_delegation_token(&CreateDelegationTokenOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::DelegationTokenAuthDisabled), "{e}");
    assert!(e.to_string().contains("DELEGATION_TOKEN_AUTH_DISABLED"), "{e}");
}
