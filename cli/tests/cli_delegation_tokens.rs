//! `strom delegation-tokens create|describe|renew|expire` against a private broker with
//! `delegation.token.secret.key`: what create prints (parsed from `--json`) authenticates
//! the CLI itself through `-X sasl.jaas.config=... tokenauth="true"`, describe lists it
//! (its HMAC only when asked), renew and expire print the new expiry, and refusals are
//! one-line errors naming the broker's reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::strom;
use serde_json::Value;
use strom_integration_tests::PrivateBroker;

const SCRAM: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

/// `strom -b SASL_PLAINTEXT -X (SCRAM with jaas) args`.
fn run_with(b: &PrivateBroker, jaas: &str, args: &[&str]) -> Output {
    let bootstrap = format!("127.0.0.1:{}", b.port_base + 2);
    let jaas = format!("sasl.jaas.config={jaas}");
    let mut all = vec![
        "-b",
        bootstrap.as_str(),
        "-X",
        "security.protocol=SASL_PLAINTEXT",
        "-X",
        "sasl.mechanism=SCRAM-SHA-256",
        "-X",
        jaas.as_str(),
    ];
    all.extend_from_slice(args);
    strom(&all, None)
}

fn user_jaas() -> String {
    format!("{SCRAM} required username=\"strom\" password=\"strom-secret\";")
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn create_use_describe_renew_and_expire() {
    let b = PrivateBroker::start_with(
        24492,
        &[(
            "STROM_KAFKA_OVERRIDES",
            "delegation.token.secret.key=strom-cli-token-secret",
        )],
    );
    let created: Value = serde_json::from_str(
        ok(run_with(
            &b,
            &user_jaas(),
            &[
                "delegation-tokens",
                "create",
                "--renewer-principal",
                "User:admin",
                "--json",
            ],
        ))
        .trim(),
    )
    .unwrap();
    let id = created["token_id"].as_str().unwrap().to_owned();
    let hmac = created["hmac"].as_str().unwrap().to_owned();
    assert_eq!(created["owner"], "User:strom");
    assert_eq!(created["renewers"], serde_json::json!(["User:admin"]));

    // The CLI authenticates with the token (once the broker has applied it).
    let token_jaas = format!("{SCRAM} required username=\"{id}\" password=\"{hmac}\" tokenauth=\"true\";");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = run_with(&b, &token_jaas, &["topics", "list"]);
        if out.status.success() {
            break;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("SASL_AUTHENTICATION_FAILED"), "{err}");
        assert!(
            Instant::now() < deadline,
            "the token does not authenticate after 15 s: {err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // ...but may not manage tokens with it.
    let out = run_with(&b, &token_jaas, &["delegation-tokens", "create"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("DELEGATION_TOKEN_REQUEST_NOT_ALLOWED") && err.trim().lines().count() == 1,
        "{err}"
    );

    // Described without the HMAC, unless asked.
    let listed: Value =
        serde_json::from_str(ok(run_with(&b, &user_jaas(), &["delegation-tokens", "describe", "--json"])).trim())
            .unwrap();
    let t = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["token_id"] == id.as_str())
        .unwrap();
    assert!(t["hmac"].is_null(), "{t}");
    let table = ok(run_with(
        &b,
        &user_jaas(),
        &[
            "delegation-tokens",
            "describe",
            "--owner-principal",
            "User:strom",
            "--show-hmac",
        ],
    ));
    assert!(
        table.starts_with("TOKENID") && table.contains(&id) && table.contains(&hmac),
        "{table}"
    );

    // Renewed, then expired.
    let renewed = ok(run_with(
        &b,
        &user_jaas(),
        &[
            "delegation-tokens",
            "renew",
            "--hmac",
            &hmac,
            "--renew-time-period",
            "600000",
        ],
    ));
    assert!(renewed.starts_with("renewed: expires "), "{renewed}");
    let expired = ok(run_with(
        &b,
        &user_jaas(),
        &["delegation-tokens", "expire", "--hmac", &hmac],
    ));
    assert!(expired.starts_with("expires "), "{expired}");

    // Errors: not base64 (exit 1, one line), PLAINTEXT (the broker's reason), usage (exit 2).
    let out = run_with(&b, &user_jaas(), &["delegation-tokens", "renew", "--hmac", "!!"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("not base64"), "{err}");
    let out = strom(&["-b", &b.bootstrap, "delegation-tokens", "create"], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("DELEGATION_TOKEN_REQUEST_NOT_ALLOWED"), "{err}");
    for args in [
        vec!["delegation-tokens", "create", "--max-life-time-period", "soon"],
        vec!["delegation-tokens", "renew"],
        vec!["delegation-tokens", "expire", "--hmac"],
    ] {
        let out = strom(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}
