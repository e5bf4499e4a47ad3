//! Issue #12 items 12 and 13: connection failures say what happened, when it happened.
//! A wrong `security.protocol` for a listener fails at once naming the fix, a bootstrap
//! host that does not resolve fails at once naming the host, and a timeout reports the time
//! really waited and what was retried. Against the shared broker's listeners
//! (`scripts/kafka env`: PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use strom_client::{Client, ClientConfig, Error};
use strom_integration_tests::broker;

/// Long enough that "fails at once" is told apart from "retried until the budget ran out".
const BUDGET: Duration = Duration::from_secs(10);

fn config(props: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::default();
    for (k, v) in props {
        c.set(k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    c.default_api_timeout = BUDGET;
    c
}

fn sasl_props(protocol: &'static str) -> Vec<(&'static str, String)> {
    let b = broker();
    vec![
        ("security.protocol", protocol.to_owned()),
        ("sasl.mechanism", "PLAIN".to_owned()),
        ("sasl.username", b.var("STROM_SASL_USERNAME").to_owned()),
        ("sasl.password", b.var("STROM_SASL_PASSWORD").to_owned()),
    ]
}

/// Connects, returning the error and how long it took.
async fn fail(config: ClientConfig) -> (Error, Duration) {
    let started = Instant::now();
    let e = Client::connect(config).await.unwrap_err();
    (e, started.elapsed())
}

/// The seconds in "timed out after 2.013s ...".
fn reported_seconds(msg: &str) -> f64 {
    let rest = msg
        .split("timed out after ")
        .nth(1)
        .unwrap_or_else(|| panic!("no \"timed out after\" in {msg:?}"));
    let secs = rest.split_whitespace().next().unwrap();
    let secs = secs.strip_suffix('s').unwrap_or(secs);
    if let Some(ms) = secs.strip_suffix('m') {
        return ms.parse::<f64>().unwrap() / 1000.0;
    }
    secs.parse().unwrap_or_else(|e| panic!("{secs:?} in {msg:?}: {e}"))
}

#[tokio::test]
async fn plaintext_client_on_a_tls_listener_fails_at_once() {
    for listener in ["STROM_SSL_BOOTSTRAP", "STROM_SASL_SSL_BOOTSTRAP"] {
        let addr = broker().var(listener);
        let (e, took) = fail(config(&[("bootstrap.servers", addr)])).await;
        let msg = e.to_string();
        assert!(took < Duration::from_secs(3), "{listener}: took {took:?}: {msg}");
        assert!(e.is_fatal() && e.is_security_mismatch(), "{listener}: {msg}");
        assert!(
            msg.contains("this is a TLS listener") && msg.contains("set security.protocol=SSL (or SASL_SSL)"),
            "{listener}: {msg}"
        );
        assert!(!msg.contains("exceeds the maximum"), "{msg}");
    }
}

#[tokio::test]
async fn sasl_plaintext_client_on_a_sasl_ssl_listener_fails_at_once() {
    let addr = broker().var("STROM_SASL_SSL_BOOTSTRAP").to_owned();
    let mut props = sasl_props("SASL_PLAINTEXT");
    props.push(("bootstrap.servers", addr));
    let props: Vec<(&str, &str)> = props.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (e, took) = fail(config(&props)).await;
    let msg = e.to_string();
    assert!(took < Duration::from_secs(3), "took {took:?}: {msg}");
    assert!(e.is_fatal() && e.is_security_mismatch(), "{msg}");
    assert!(
        msg.contains("this is a TLS listener") && msg.contains("set security.protocol=SASL_SSL"),
        "{msg}"
    );
    assert!(!msg.contains("password"), "no secret in the message: {msg}");
}

#[tokio::test]
async fn unresolvable_bootstrap_host_fails_at_once_naming_it() {
    let (e, took) = fail(config(&[(
        "bootstrap.servers",
        "no-such-broker.invalid:9092,also-missing.invalid:9092",
    )]))
    .await;
    let msg = e.to_string();
    // Java fails at once ("No resolvable bootstrap urls"); a DNS answer may take a moment.
    assert!(took < Duration::from_secs(5), "took {took:?}: {msg}");
    assert!(e.is_fatal() && e.is_dns(), "{msg}");
    assert!(
        msg.contains("no-such-broker.invalid:9092") && msg.contains("also-missing.invalid:9092"),
        "{msg}"
    );
    assert!(msg.contains("resolve"), "{msg}");
}

#[tokio::test]
async fn unreachable_bootstrap_reports_the_real_time_and_attempts() {
    // Nothing listens on port 1: every attempt is refused, and retried until the budget ends.
    let mut c = config(&[("bootstrap.servers", "127.0.0.1:1")]);
    c.default_api_timeout = Duration::from_secs(2);
    let (e, took) = fail(c).await;
    let msg = e.to_string();
    assert!(e.is_timeout(), "{msg}");
    assert!(took < Duration::from_millis(2_600), "took {took:?}: {msg}");
    let reported = reported_seconds(&msg);
    assert!(
        (reported - took.as_secs_f64()).abs() < 0.3,
        "reported {reported}s, took {took:?}: {msg}"
    );
    assert!(msg.contains("127.0.0.1:1: ") && msg.contains(" attempt(s)"), "{msg}");
    assert!(msg.contains("refused"), "the last error is named: {msg}");
}

#[tokio::test]
async fn slow_connect_attempts_do_not_overrun_the_budget() {
    // A listener that accepts and never answers: each attempt waits request.timeout.ms for
    // ApiVersions. The budget ends the call, not one attempt after it, and the message says
    // how long it took.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let mut c = config(&[("bootstrap.servers", &addr), ("request.timeout.ms", "1500")]);
    c.default_api_timeout = Duration::from_secs(2);
    let (e, took) = fail(c).await;
    let msg = e.to_string();
    assert!(took < Duration::from_millis(2_600), "took {took:?}: {msg}");
    let reported = reported_seconds(&msg);
    assert!(
        (reported - took.as_secs_f64()).abs() < 0.3,
        "reported {reported}s, took {took:?}: {msg}"
    );
    assert!(
        msg.contains(&format!("{addr}: ")) && msg.contains(" attempt(s)"),
        "{msg}"
    );
    drop(silent);
}

#[tokio::test]
async fn ssl_client_on_a_plaintext_listener_says_what_was_retried() {
    let ca = broker().var("STROM_SSL_CA_LOCATION");
    let mut c = config(&[
        ("bootstrap.servers", &broker().bootstrap),
        ("security.protocol", "SSL"),
        ("ssl.truststore.type", "PEM"),
        ("ssl.truststore.location", ca),
    ]);
    c.default_api_timeout = Duration::from_secs(3);
    let (e, took) = fail(c).await;
    let msg = e.to_string();
    assert!(took < Duration::from_millis(3_600), "took {took:?}: {msg}");
    let reported = reported_seconds(&msg);
    assert!(
        (reported - took.as_secs_f64()).abs() < 0.3,
        "reported {reported}s, took {took:?}: {msg}"
    );
    assert!(
        msg.contains(&format!("{}: ", broker().bootstrap)) && msg.contains(" attempt(s)"),
        "{msg}"
    );
    assert!(
        msg.contains("security.protocol"),
        "the last error hints at the fix: {msg}"
    );
}

#[tokio::test]
async fn client_without_sasl_on_a_sasl_listener_hints_at_sasl_settings() {
    for listener in ["STROM_SASL_PLAINTEXT_BOOTSTRAP"] {
        let addr = broker().var(listener);
        let mut c = config(&[("bootstrap.servers", addr)]);
        c.default_api_timeout = Duration::from_secs(3);
        let (e, took) = fail(c).await;
        let msg = e.to_string();
        assert!(took < Duration::from_millis(3_600), "{listener}: took {took:?}: {msg}");
        assert!(
            msg.contains("security.protocol=SASL_PLAINTEXT") && msg.contains("sasl.mechanism"),
            "{listener}: {msg}"
        );
        assert!(msg.contains("gave up after"), "says what was retried: {msg}");
    }
}

/// The bootstrap error reports the last real failure of each address: an attempt that the
/// deadline cut short (here a server that holds the connection and never answers) does not
/// replace what went wrong before it (here the connection closed at once, as a listener
/// refusing the client's certificate does).
#[tokio::test]
async fn an_attempt_cut_by_the_deadline_does_not_hide_the_failure_before_it() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (first, _) = listener.accept().await.unwrap();
        drop(first);
        let mut held = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            held.push(s);
        }
    });
    let mut c = config(&[("bootstrap.servers", &addr), ("request.timeout.ms", "30000")]);
    c.default_api_timeout = Duration::from_secs(2);
    let (e, took) = fail(c).await;
    let msg = e.to_string();
    assert!(took < Duration::from_secs(3), "took {took:?}: {msg}");
    assert!(msg.contains("closed") && !msg.contains("last: timed out"), "{msg}");
}
