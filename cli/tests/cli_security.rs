//! The `strom` binary with security settings, as a Java user pastes them (`-F`) or a kcat
//! user types them (`-X`), against the real broker's SASL_SSL and SASL_PLAINTEXT listeners.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ok, strom};
use strom_integration_tests::{broker, unique_topic};

/// A Java client.properties for SASL_SSL with SCRAM, JAAS continued over lines as people
/// write it.
fn java_properties(password: &str) -> std::path::PathBuf {
    let b = broker();
    let text = format!(
        "# Java client settings, unchanged\n\
         bootstrap.servers={}\n\
         security.protocol=SASL_SSL\n\
         sasl.mechanism=SCRAM-SHA-512\n\
         sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n    \
             username=\"{}\" \\\n    password=\"{password}\";\n\
         ssl.truststore.type=PEM\n\
         ssl.truststore.location={}\n\
         ssl.endpoint.identification.algorithm=https\n\
         request.timeout.ms=20000\n",
        b.var("STROM_SASL_SSL_BOOTSTRAP"),
        b.var("STROM_SASL_USERNAME"),
        b.var("STROM_SSL_CA_LOCATION"),
    );
    let path = std::env::temp_dir().join(format!(
        "strom-cli-{}-{}.properties",
        std::process::id(),
        password.len()
    ));
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn java_sasl_ssl_properties_file_works_unchanged() {
    let file = java_properties(broker().var("STROM_SASL_PASSWORD"));
    let f = file.to_str().unwrap();
    let topic = unique_topic("cli-sec");
    ok(&["-F", f, "topics", "create", &topic, "--partitions", "1"], None);
    assert!(ok(&["-F", f, "topics", "list"], None).lines().any(|l| l == topic));
    ok(&["-F", f, "produce", &topic], Some("one\ntwo\n"));
    let out = ok(&["-F", f, "consume", &topic, "--from", "earliest", "--until-end"], None);
    assert_eq!(out.lines().collect::<Vec<_>>(), ["one", "two"]);
    ok(&["-F", f, "topics", "delete", &topic], None);
}

#[test]
fn kcat_style_x_options_work() {
    let b = broker();
    let out = ok(
        &[
            "-b",
            b.var("STROM_SASL_PLAINTEXT_BOOTSTRAP"),
            "-X",
            "security.protocol=SASL_PLAINTEXT",
            "-X",
            "sasl.mechanisms=PLAIN",
            "-X",
            &format!("sasl.username={}", b.var("STROM_SASL_USERNAME")),
            "-X",
            &format!("sasl.password={}", b.var("STROM_SASL_PASSWORD")),
            "topics",
            "list",
        ],
        None,
    );
    drop(out);
}

#[test]
fn wrong_password_is_one_clear_line_without_the_password() {
    let file = java_properties("definitely-wrong");
    let started = std::time::Instant::now();
    let out = strom(&["-F", file.to_str().unwrap(), "topics", "list"], None);
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("SASL SCRAM-SHA-512 authentication as strom"), "{err}");
    assert!(err.contains("SASL_AUTHENTICATION_FAILED"), "{err}");
    assert!(!err.contains("definitely-wrong"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
}
