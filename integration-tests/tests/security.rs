//! The security layer against the real broker's listeners (scripts/kafka): TLS, mTLS and
//! every SASL mechanism over SASL_PLAINTEXT and SASL_SSL, the errors users hit (wrong
//! password, untrusted CA, hostname mismatch, rejected token), re-authentication (KIP-368),
//! and that no secret reaches `Debug` output or logs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use strom_client::lowlevel::Connection;
use strom_client::{Admin, Client, ClientConfig, NewTopic, OAuthBearerToken, TokenFuture, TokenProvider};
use strom_integration_tests::{broker, unique_topic, PrivateBroker};
use strom_protocol::messages::MetadataRequest;
use strom_protocol::ErrorCode;

mod security_util;
use security_util::{config, produce, round_trip, Capture};

const PLAIN: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
const SCRAM: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";
const OAUTH: &str = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";

fn var(k: &str) -> String {
    broker().var(k).to_owned()
}

/// SASL settings for `mechanism` as a Java user writes them (JAAS), on `bootstrap`.
fn sasl(bootstrap: &str, protocol: &str, mechanism: &str, user: &str, password: &str) -> ClientConfig {
    let jaas = match mechanism {
        "PLAIN" => format!("{PLAIN} required username=\"{user}\" password=\"{password}\";"),
        "OAUTHBEARER" => format!("{OAUTH} required unsecuredLoginStringClaim_sub=\"{user}\";"),
        _ => format!("{SCRAM} required username=\"{user}\" password=\"{password}\";"),
    };
    let mut props = vec![
        ("bootstrap.servers", bootstrap),
        ("security.protocol", protocol),
        ("sasl.mechanism", mechanism),
        ("sasl.jaas.config", jaas.as_str()),
    ];
    let ca = var("STROM_SSL_CA_LOCATION");
    if protocol.ends_with("SSL") {
        props.push(("ssl.truststore.type", "PEM"));
        props.push(("ssl.truststore.location", &ca));
    }
    config(&props)
}

fn sasl_plaintext(mechanism: &str) -> ClientConfig {
    sasl(
        &var("STROM_SASL_PLAINTEXT_BOOTSTRAP"),
        "SASL_PLAINTEXT",
        mechanism,
        &var("STROM_SASL_USERNAME"),
        &var("STROM_SASL_PASSWORD"),
    )
}

fn sasl_ssl(mechanism: &str) -> ClientConfig {
    sasl(
        &var("STROM_SASL_SSL_BOOTSTRAP"),
        "SASL_SSL",
        mechanism,
        &var("STROM_SASL_USERNAME"),
        &var("STROM_SASL_PASSWORD"),
    )
}

#[tokio::test]
async fn sasl_plaintext_plain() {
    round_trip(sasl_plaintext("PLAIN")).await;
}

#[tokio::test]
async fn sasl_plaintext_scram_sha_256() {
    round_trip(sasl_plaintext("SCRAM-SHA-256")).await;
}

#[tokio::test]
async fn sasl_plaintext_scram_sha_512() {
    round_trip(sasl_plaintext("SCRAM-SHA-512")).await;
}

#[tokio::test]
async fn sasl_plaintext_oauthbearer_unsecured_jwt() {
    round_trip(sasl_plaintext("OAUTHBEARER")).await;
}

#[tokio::test]
async fn sasl_ssl_plain() {
    round_trip(sasl_ssl("PLAIN")).await;
}

#[tokio::test]
async fn sasl_ssl_scram_sha_256() {
    round_trip(sasl_ssl("SCRAM-SHA-256")).await;
}

#[tokio::test]
async fn sasl_ssl_scram_sha_512() {
    round_trip(sasl_ssl("SCRAM-SHA-512")).await;
}

#[tokio::test]
async fn sasl_ssl_oauthbearer_unsecured_jwt() {
    round_trip(sasl_ssl("OAUTHBEARER")).await;
}

/// librdkafka's names, which kcat users type, work as aliases.
#[tokio::test]
async fn sasl_librdkafka_style_username_password() {
    round_trip(config(&[
        ("bootstrap.servers", &var("STROM_SASL_PLAINTEXT_BOOTSTRAP")),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanisms", "SCRAM-SHA-256"),
        ("sasl.username", &var("STROM_SASL_USERNAME")),
        ("sasl.password", &var("STROM_SASL_PASSWORD")),
    ]))
    .await;
}

#[tokio::test]
async fn ssl_with_a_pem_truststore() {
    round_trip(config(&[
        ("bootstrap.servers", &var("STROM_SSL_BOOTSTRAP")),
        ("security.protocol", "SSL"),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", &var("STROM_SSL_CA_LOCATION")),
    ]))
    .await;
}

/// Requests near the broker's size limit from concurrent tasks over TLS: every write must
/// reach the socket (a TLS stream may keep records buffered after a write) and none may
/// wait for the next request to be pushed out.
#[tokio::test]
async fn ssl_large_requests_from_concurrent_tasks() {
    let admin = Admin::connect(config(&[
        ("bootstrap.servers", &var("STROM_SASL_SSL_BOOTSTRAP")),
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "PLAIN"),
        ("sasl.username", &var("STROM_SASL_USERNAME")),
        ("sasl.password", &var("STROM_SASL_PASSWORD")),
        ("ssl.truststore.location", &var("STROM_SSL_CA_LOCATION")),
        ("request.timeout.ms", "10000"),
    ]))
    .await
    .unwrap();
    let topic = unique_topic("sec-large");
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let client = admin.client().clone();
    produce(&client, &topic, b"warm-up").await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..4u8)
        .map(|t| {
            let (client, topic) = (client.clone(), topic.clone());
            tokio::spawn(async move {
                for i in 0..5u8 {
                    let value = vec![b'a' + t + i; 900 * 1024];
                    produce(&client, &topic, &value).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    let value = security_util::fetch(&client, &topic, 1).await;
    assert_eq!(value.len(), 900 * 1024);
    admin.delete_topics(&[&topic]).await.unwrap();
}

/// Inline PEM (`ssl.truststore.certificates`, `ssl.keystore.key` +
/// `ssl.keystore.certificate.chain`) as Java accepts it, with the script's client cert.
#[tokio::test]
async fn mtls_with_inline_pem() {
    let ca = std::fs::read_to_string(var("STROM_SSL_CA_LOCATION")).unwrap();
    let cert = std::fs::read_to_string(var("STROM_SSL_CLIENT_CERT_LOCATION")).unwrap();
    let key = std::fs::read_to_string(var("STROM_SSL_CLIENT_KEY_LOCATION")).unwrap();
    round_trip(config(&[
        ("bootstrap.servers", &var("STROM_SSL_BOOTSTRAP")),
        ("security.protocol", "SSL"),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.certificates", &ca),
        ("ssl.keystore.type", "PEM"),
        ("ssl.keystore.certificate.chain", &cert),
        ("ssl.keystore.key", &key),
    ]))
    .await;
}

/// A scratch directory for generated files.
fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("strom-sec-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA the broker's certificate is not signed by.
fn foreign_ca(dir: &Path) -> PathBuf {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-sha256",
            "-days",
            "2",
            "-keyout",
            "other-ca.key",
            "-out",
            "other-ca.pem",
            "-subj",
            "/CN=Some other CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    dir.join("other-ca.pem")
}

#[tokio::test]
async fn untrusted_broker_certificate_is_a_clear_fatal_error() {
    let dir = scratch("untrusted");
    let other = foreign_ca(&dir);
    let bootstrap = var("STROM_SSL_BOOTSTRAP");
    for truststore in [Some(other.to_str().unwrap()), None] {
        let mut props = vec![("bootstrap.servers", bootstrap.as_str()), ("security.protocol", "SSL")];
        if let Some(t) = truststore {
            props.push(("ssl.truststore.location", t));
        }
        let started = Instant::now();
        let e = Client::connect(config(&props)).await.unwrap_err();
        let msg = e.to_string();
        assert!(e.is_fatal(), "{msg}");
        assert!(
            msg.contains(&format!("the certificate of broker {bootstrap} is not trusted")),
            "{msg}"
        );
        assert!(msg.contains("ssl.truststore.location"), "{msg}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "retried: {:?}",
            started.elapsed()
        );
    }
}

#[tokio::test]
async fn wrong_password_fails_fast_with_an_authentication_error() {
    for (protocol, bootstrap) in [
        ("SASL_PLAINTEXT", var("STROM_SASL_PLAINTEXT_BOOTSTRAP")),
        ("SASL_SSL", var("STROM_SASL_SSL_BOOTSTRAP")),
    ] {
        for mechanism in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
            let started = Instant::now();
            let cfg = sasl(
                &bootstrap,
                protocol,
                mechanism,
                &var("STROM_SASL_USERNAME"),
                "not-the-password",
            );
            let e = Client::connect(cfg).await.unwrap_err();
            let msg = e.to_string();
            assert!(e.is_fatal() && !e.is_retriable(), "{msg}");
            assert_eq!(e.kind(), strom_client::ErrorKind::Authentication, "{msg}");
            assert_eq!(e.kafka_code(), Some(ErrorCode::SaslAuthenticationFailed), "{msg}");
            assert!(
                msg.contains(&format!(
                    "SASL {mechanism} authentication as strom with broker {bootstrap} failed"
                )),
                "{msg}"
            );
            assert!(!msg.contains("not-the-password"), "{msg}");
            // No retry storm: one attempt, not a minute of them.
            assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        }
    }
}

#[tokio::test]
async fn plaintext_client_on_a_sasl_listener_and_config_mistakes_are_clear() {
    // A JAAS entry that does not fit the mechanism, a missing truststore file, a missing
    // password: refused before connecting, naming the property.
    for (props, want) in [
        (
            vec![
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "PLAIN"),
                (
                    "sasl.jaas.config",
                    "com.sun.security.auth.module.Krb5LoginModule required;",
                ),
            ],
            "does not fit sasl.mechanism=PLAIN",
        ),
        (
            vec![
                ("security.protocol", "SSL"),
                ("ssl.truststore.location", "/nonexistent/ca.pem"),
            ],
            "ssl.truststore.location=\"/nonexistent/ca.pem\": cannot read",
        ),
        (
            vec![("security.protocol", "SASL_SSL"), ("sasl.mechanism", "SCRAM-SHA-512")],
            "needs a username and a password",
        ),
    ] {
        let mut props = props;
        props.push(("bootstrap.servers", "127.0.0.1:1"));
        let e = Client::connect(config(&props)).await.unwrap_err();
        assert!(e.is_fatal() && e.to_string().contains(want), "{e}");
    }
}

/// A token provider that counts its calls and returns unsecured JWTs (the broker's test
/// validator accepts them).
struct CountingProvider {
    calls: AtomicUsize,
    sub: String,
    lifetime_s: f64,
    /// Hand out a token the broker refuses (settable midway: re-authentication fails).
    garbage: AtomicBool,
}

impl CountingProvider {
    fn jwt(&self) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        let claims = format!(
            r#"{{"sub":"{}","iat":{now:.3},"exp":{:.3}}}"#,
            self.sub,
            now + self.lifetime_s
        );
        format!("{}.{}.", b64.encode(r#"{"alg":"none"}"#), b64.encode(claims))
    }
}

impl TokenProvider for CountingProvider {
    fn token(&self) -> TokenFuture<'_> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let token = if self.garbage.load(Ordering::SeqCst) {
            "not-a-jwt".to_owned()
        } else {
            self.jwt()
        };
        Box::pin(async move { Ok(OAuthBearerToken::new(token).with_principal("strom")) })
    }
}

fn provider(garbage: bool) -> Arc<CountingProvider> {
    Arc::new(CountingProvider {
        calls: AtomicUsize::new(0),
        sub: "strom".into(),
        lifetime_s: 3600.0,
        garbage: AtomicBool::new(garbage),
    })
}

#[tokio::test]
async fn oauthbearer_with_a_token_provider() {
    let p = provider(false);
    let cfg = config(&[
        ("bootstrap.servers", &var("STROM_SASL_SSL_BOOTSTRAP")),
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "OAUTHBEARER"),
        ("ssl.truststore.location", &var("STROM_SSL_CA_LOCATION")),
    ])
    .with_oauth_token_provider(p.clone());
    round_trip(cfg).await;
    // One token per authenticated connection (bootstrap, then the broker's node connection).
    assert!(p.calls.load(Ordering::SeqCst) >= 1);
}

#[tokio::test]
async fn oauthbearer_rejected_token_is_a_clear_error() {
    let cfg = config(&[
        ("bootstrap.servers", &var("STROM_SASL_PLAINTEXT_BOOTSTRAP")),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "OAUTHBEARER"),
    ])
    .with_oauth_token_provider(provider(true));
    let e = Client::connect(cfg).await.unwrap_err();
    let msg = e.to_string();
    assert!(e.is_fatal(), "{msg}");
    assert!(msg.contains("SASL OAUTHBEARER authentication with broker"), "{msg}");
    assert!(msg.contains("token rejected: status=invalid_token"), "{msg}");
    assert!(!msg.contains("not-a-jwt"), "{msg}");
}

/// One private broker (it needs settings the shared one must not have) for three checks:
/// * re-authentication (KIP-368): `connections.max.reauth.ms=3000`, traffic from two tasks
///   over more than two session lifetimes, one connection throughout;
/// * mTLS required on the SSL listener: no client certificate, no connection; with the
///   script's client certificate (files), a full round trip;
/// * hostname verification on the SASL_SSL listener, which serves a certificate naming
///   `localhost` only: `127.0.0.1` is refused unless verification is explicitly off.
#[tokio::test]
async fn private_broker_reauthentication_mtls_required_and_hostname_verification() {
    let dir = scratch("private");
    let ca = var("STROM_SSL_CA_LOCATION");
    let localhost_only = localhost_only_keystore(&dir, Path::new(&ca));
    let overrides = format!(
        "connections.max.reauth.ms=3000 listener.name.ssl.ssl.client.auth=required \
         listener.name.sasl_ssl.ssl.keystore.location={}",
        localhost_only.display()
    );
    let b = PrivateBroker::start_with(19892, &[("STROM_KAFKA_OVERRIDES", &overrides)]);
    let port = |n: u16| format!("127.0.0.1:{}", b.port_base + n);

    reauthentication(&port(2)).await;
    failed_reauthentication(&port(2)).await;
    mtls_required(&port(3), &ca).await;
    hostname_verification(b.port_base + 4, &ca).await;
}

/// A broker keystore (key + chain) signed by the script's CA whose certificate names only
/// `DNS:localhost`.
fn localhost_only_keystore(dir: &Path, ca: &Path) -> PathBuf {
    let ca_key = ca.with_file_name("ca.key");
    std::fs::write(
        dir.join("ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n\
         extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "b.key",
            "-out",
            "b.csr",
            "-subj",
            "/CN=localhost",
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "b.csr",
            "-CA",
            ca.to_str().unwrap(),
            "-CAkey",
            ca_key.to_str().unwrap(),
            "-CAcreateserial",
            "-CAserial",
            "b.srl",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            "ext",
            "-out",
            "b.pem",
        ],
    );
    let mut ks = std::fs::read(dir.join("b.key")).unwrap();
    ks.extend(std::fs::read(dir.join("b.pem")).unwrap());
    ks.extend(std::fs::read(ca).unwrap());
    let path = dir.join("localhost-only-keystore.pem");
    std::fs::File::create(&path).unwrap().write_all(&ks).unwrap();
    path
}

async fn reauthentication(bootstrap: &str) {
    let logs = Capture::default();
    let _g = tracing::subscriber::set_default(logs.subscriber("strom_client=debug"));
    let user = var("STROM_SASL_USERNAME");
    let pass = var("STROM_SASL_PASSWORD");
    let scram = sasl(bootstrap, "SASL_PLAINTEXT", "SCRAM-SHA-512", &user, &pass);
    let p = provider(false);
    let oauth = config(&[
        ("bootstrap.servers", bootstrap),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "OAUTHBEARER"),
    ])
    .with_oauth_token_provider(p.clone());

    let run = |cfg: ClientConfig| async move {
        let admin = Admin::connect(cfg).await.unwrap();
        let topic = unique_topic("reauth");
        admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
        let client = admin.client().clone();
        produce(&client, &topic, b"first").await;
        // > 2 session lifetimes of steady traffic from two tasks on one connection.
        let until = Instant::now() + Duration::from_secs(8);
        let tasks: Vec<_> = (0..2)
            .map(|t| {
                let (client, topic) = (client.clone(), topic.clone());
                tokio::spawn(async move {
                    let mut n = 0;
                    while Instant::now() < until {
                        produce(&client, &topic, format!("{t}-{n}").as_bytes()).await;
                        n += 1;
                        tokio::time::sleep(Duration::from_millis(15)).await;
                    }
                    n
                })
            })
            .collect();
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        assert!(total > 50, "only {total} records in 8 s");
        let m = client.metrics();
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].connects, 1, "the connection was replaced: {m:?}");
        assert!(m[0].connected && m[0].totals.errors == 0, "{m:?}");
        // Java's node-metrics count them: >= 2 lifetimes on the node's connection.
        let java = client.metric_registry().snapshot();
        let ok = java.sum("node-metrics", "successful-reauthentication-total");
        assert!(ok >= 2.0, "successful-reauthentication-total {ok}");
        assert_eq!(java.sum("node-metrics", "failed-reauthentication-total"), 0.0);
        admin.delete_topics(&[&topic]).await.unwrap();
    };
    tokio::join!(run(scram), run(oauth));
    let log = logs.text();
    let reauths = log.matches("re-authenticated").count();
    // Two clients x (bootstrap + node connection) x >= 2 lifetimes; be lenient on timing.
    assert!(reauths >= 4, "{reauths} re-authentications:\n{log}");
    assert!(!log.contains("re-authentication failed"), "{log}");
    // A fresh token for every authentication and re-authentication.
    assert!(
        p.calls.load(Ordering::SeqCst) >= 3,
        "{}",
        p.calls.load(Ordering::SeqCst)
    );
}

/// A token the broker refuses at re-authentication: counted in Java's
/// `failed-reauthentication-total`, and the connection is closed.
async fn failed_reauthentication(bootstrap: &str) {
    let p = provider(false);
    let cfg = config(&[
        ("bootstrap.servers", bootstrap),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "OAUTHBEARER"),
    ])
    .with_oauth_token_provider(p.clone());
    let admin = Admin::connect(cfg).await.unwrap();
    let topic = unique_topic("reauth-fail");
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let client = admin.client().clone();
    produce(&client, &topic, b"before").await;
    p.garbage.store(true, Ordering::SeqCst);
    // The session lifetime is 3 s; re-authentication happens at 85-95 % of it.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let java = client.metric_registry().snapshot();
        if java.sum("node-metrics", "failed-reauthentication-total") >= 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "no failed re-authentication counted in 10 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn mtls_required(bootstrap: &str, ca: &str) {
    let base = [
        ("bootstrap.servers", bootstrap),
        ("security.protocol", "SSL"),
        ("ssl.truststore.location", ca),
    ];
    // Without a certificate: TLS 1.3 completes the client side of the handshake before the
    // broker checks, so the refusal shows on the first request; never a success.
    let mut cfg = config(&base);
    cfg.default_api_timeout = Duration::from_secs(3);
    let e = Client::connect(cfg).await.unwrap_err();
    assert!(
        e.to_string().contains("certificate") || e.to_string().contains("closed"),
        "{e}"
    );
    let cert = var("STROM_SSL_CLIENT_CERT_LOCATION");
    let key = var("STROM_SSL_CLIENT_KEY_LOCATION");
    let dir = scratch("mtls");
    let keystore = dir.join("client-keystore.pem");
    let mut ks = std::fs::read(&key).unwrap();
    ks.extend(std::fs::read(&cert).unwrap());
    std::fs::write(&keystore, ks).unwrap();
    let mut props = base.to_vec();
    props.push(("ssl.keystore.location", keystore.to_str().unwrap()));
    round_trip(config(&props)).await;
}

async fn hostname_verification(port: u16, ca: &str) {
    let user = var("STROM_SASL_USERNAME");
    let pass = var("STROM_SASL_PASSWORD");
    let by_ip = format!("127.0.0.1:{port}");
    let by_name = format!("localhost:{port}");
    let cfg = |addr: &str| sasl(addr, "SASL_SSL", "PLAIN", &user, &pass);

    // 127.0.0.1 is not in the certificate: refused, naming the broker and the way out.
    let e = Connection::connect(&by_ip, cfg(&by_ip).connection_config().unwrap())
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(e.is_fatal(), "{msg}");
    assert!(
        msg.contains(&format!(
            "the certificate of broker {by_ip} is not valid for the host name \"127.0.0.1\""
        )),
        "{msg}"
    );
    assert!(msg.contains("ssl.endpoint.identification.algorithm"), "{msg}");

    // By the name it lists: fine.
    let conn = Connection::connect(&by_name, cfg(&by_name).connection_config().unwrap())
        .await
        .unwrap();
    conn.send(&MetadataRequest::default().with_topics(None)).await.unwrap();

    // Verification explicitly off: the chain is still checked, the name is not; logged.
    let logs = Capture::default();
    let _g = tracing::subscriber::set_default(logs.subscriber("strom_client=warn"));
    let mut off = cfg(&by_ip);
    off.set("ssl.endpoint.identification.algorithm", "").unwrap();
    let conn = Connection::connect(&by_ip, off.connection_config().unwrap())
        .await
        .unwrap();
    conn.send(&MetadataRequest::default().with_topics(None)).await.unwrap();
    assert!(logs.text().contains("hostname"), "{}", logs.text());
    // ... but a foreign CA is still refused.
    let mut foreign = cfg(&by_ip);
    foreign.set("ssl.endpoint.identification.algorithm", "").unwrap();
    let other = foreign_ca(&scratch("hostname"));
    foreign.set("ssl.truststore.location", other.to_str().unwrap()).unwrap();
    let e = Connection::connect(&by_ip, foreign.connection_config().unwrap())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not trusted"), "{e}");
    let _ = ca;
}

/// Passwords, tokens and private keys never reach `Debug` output, errors or `tracing` logs
/// (at trace level, through successes and failures of every kind).
#[tokio::test]
async fn no_secret_in_debug_output_or_logs() {
    let logs = Capture::default();
    let _g = tracing::subscriber::set_default(logs.subscriber("trace"));
    let password = var("STROM_SASL_PASSWORD");
    let key_pem = std::fs::read_to_string(var("STROM_SSL_CLIENT_KEY_LOCATION")).unwrap();
    // A line from the middle of the base64 key body.
    let key_line = key_pem.lines().nth(5).unwrap().to_owned();
    let p = provider(false);
    let token = p.jwt();
    let token_body = token.split('.').nth(1).unwrap().to_owned();
    let mut shown = Vec::new();

    // Successes: SCRAM over SASL_SSL with an mTLS key inline; OAUTHBEARER with a provider.
    let mut cfg = sasl_ssl("SCRAM-SHA-256");
    cfg.set("ssl.keystore.key", &key_pem).unwrap();
    cfg.set(
        "ssl.keystore.certificate.chain",
        &std::fs::read_to_string(var("STROM_SSL_CLIENT_CERT_LOCATION")).unwrap(),
    )
    .unwrap();
    shown.push(format!("{cfg:?}"));
    shown.push(format!("{:?}", cfg.connection_config().unwrap()));
    let admin = Admin::connect(cfg).await.unwrap();
    shown.push(format!("{admin:?} {:?}", admin.client().config()));
    admin.list_topics(false).await.unwrap();
    let cfg = config(&[
        ("bootstrap.servers", &var("STROM_SASL_PLAINTEXT_BOOTSTRAP")),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "OAUTHBEARER"),
    ])
    .with_oauth_token_provider(p.clone());
    shown.push(format!("{cfg:?} {:?}", cfg.connection_config().unwrap()));
    shown.push(format!("{:?}", OAuthBearerToken::new(token.clone())));
    Admin::connect(cfg).await.unwrap().list_topics(false).await.unwrap();

    // Failures: wrong password (PLAIN sends it in the clear over the wire), rejected token.
    let wrong = "wrong-password-xyzzy";
    let e = Client::connect(sasl_plaintext_with("PLAIN", wrong)).await.unwrap_err();
    shown.push(format!("{e} {e:?}"));
    let e = Client::connect(sasl_plaintext_with("SCRAM-SHA-512", wrong))
        .await
        .unwrap_err();
    shown.push(format!("{e} {e:?}"));

    let log = logs.text();
    assert!(log.contains("SASL authenticated"), "nothing captured? {log}");
    for (what, secret) in [
        ("password", password.as_str()),
        ("wrong password", wrong),
        ("token", token_body.as_str()),
        ("private key", key_line.as_str()),
    ] {
        assert!(!log.contains(secret), "{what} in the logs:\n{log}");
        for s in &shown {
            assert!(!s.contains(secret), "{what} in Debug/Display output: {s}");
        }
    }
}

fn sasl_plaintext_with(mechanism: &str, password: &str) -> ClientConfig {
    sasl(
        &var("STROM_SASL_PLAINTEXT_BOOTSTRAP"),
        "SASL_PLAINTEXT",
        mechanism,
        &var("STROM_SASL_USERNAME"),
        password,
    )
}
