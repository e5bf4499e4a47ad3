//! Java keystores against the real broker's TLS listeners: PKCS12 and JKS stores made at
//! test time by Java's own `keytool` (and `openssl pkcs12 -export`) from the broker's CA and
//! client certificate (scripts/kafka), used as `ssl.truststore.*` / `ssl.keystore.*` exactly
//! as a Java client's properties name them.
//!
//! * every truststore × keystore combination produces and fetches a record on the shared
//!   broker's SSL listener (which requests a client certificate);
//! * on a private broker whose SSL listener *requires* one, a connection without a keystore
//!   fails and one with the PKCS12 or the JKS keystore works: proof that the broker got the
//!   certificate from the store; also with a key keytool generated itself (EC, whose Java
//!   encoding lacks the public key ring needs) and a certificate signed for its request;
//! * wrong passwords are configuration errors naming the property, never the password.
//!
//! Needs `keytool` (a JDK) and `openssl`; without them the tests fail saying what to install.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use strom_client::{Client, ClientConfig};
use strom_integration_tests::{broker, PrivateBroker};

mod security_util;
use security_util::{config, round_trip};

const PASSWORD: &str = "changeit";

fn var(k: &str) -> String {
    broker().var(k).to_owned()
}

/// Runs `tool` in `dir`; a missing tool fails the test saying what to install.
fn run(dir: &Path, tool: &str, args: &[&str]) {
    let out = Command::new(tool)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            let install = match tool {
                "keytool" => "a JDK (Debian: apt-get install openjdk-17-jdk-headless; scripts/test installs it)",
                _ => "openssl (Debian: apt-get install openssl)",
            };
            panic!("cannot run {tool} ({e}): these tests make their keystores with it; install {install}")
        });
    assert!(
        out.status.success(),
        "{tool} {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The stores, made once per test binary from the broker's CA and client certificate.
struct Stores {
    truststore_p12: PathBuf,
    truststore_jks: PathBuf,
    keystore_openssl_p12: PathBuf,
    keystore_keytool_p12: PathBuf,
    keystore_jks: PathBuf,
    /// A key keytool generated itself (EC P-256: Java's encoding has no public key), its
    /// certificate request signed by the broker's CA, the reply installed: the Java workflow.
    keystore_java_ec_p12: PathBuf,
    keystore_java_ec_jks: PathBuf,
}

fn stores() -> &'static Stores {
    static STORES: OnceLock<Stores> = OnceLock::new();
    STORES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("strom-keystores-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let ca = var("STROM_SSL_CA_LOCATION");
        let cert = var("STROM_SSL_CLIENT_CERT_LOCATION");
        let key = var("STROM_SSL_CLIENT_KEY_LOCATION");
        for (store, kind) in [("truststore.p12", "PKCS12"), ("truststore.jks", "JKS")] {
            run(
                &dir,
                "keytool",
                &[
                    "-importcert",
                    "-noprompt",
                    "-trustcacerts",
                    "-alias",
                    "ca",
                    "-file",
                    &ca,
                    "-keystore",
                    store,
                    "-storetype",
                    kind,
                    "-storepass",
                    PASSWORD,
                ],
            );
        }
        run(
            &dir,
            "openssl",
            &[
                "pkcs12",
                "-export",
                "-in",
                &cert,
                "-inkey",
                &key,
                "-certfile",
                &ca,
                "-name",
                "client",
                "-passout",
                "pass:changeit",
                "-out",
                "keystore-openssl.p12",
            ],
        );
        for (store, kind) in [("keystore-keytool.p12", "PKCS12"), ("keystore.jks", "JKS")] {
            run(
                &dir,
                "keytool",
                &[
                    "-importkeystore",
                    "-noprompt",
                    "-srckeystore",
                    "keystore-openssl.p12",
                    "-srcstoretype",
                    "PKCS12",
                    "-srcstorepass",
                    PASSWORD,
                    "-destkeystore",
                    store,
                    "-deststoretype",
                    kind,
                    "-deststorepass",
                    PASSWORD,
                ],
            );
        }
        java_generated_keystore(&dir, &ca);
        Stores {
            keystore_java_ec_p12: dir.join("java-ec.p12"),
            keystore_java_ec_jks: dir.join("java-ec.jks"),
            truststore_p12: dir.join("truststore.p12"),
            truststore_jks: dir.join("truststore.jks"),
            keystore_openssl_p12: dir.join("keystore-openssl.p12"),
            keystore_keytool_p12: dir.join("keystore-keytool.p12"),
            keystore_jks: dir.join("keystore.jks"),
        }
    })
}

/// keytool -genkeypair, -certreq, the request signed with the broker's CA (openssl), then
/// the CA and the reply imported: java-ec.p12, and java-ec.jks converted from it.
fn java_generated_keystore(dir: &Path, ca: &str) {
    let ca_key = Path::new(ca).with_file_name("ca.key");
    let user = var("STROM_SASL_USERNAME");
    let store = |cmd: &[&str]| {
        let mut args = cmd.to_vec();
        args.extend([
            "-keystore",
            "java-ec.p12",
            "-storetype",
            "PKCS12",
            "-storepass",
            PASSWORD,
        ]);
        run(dir, "keytool", &args);
    };
    store(&[
        "-genkeypair",
        "-alias",
        "client",
        "-keyalg",
        "EC",
        "-groupname",
        "secp256r1",
        "-validity",
        "2",
        "-dname",
        &format!("CN={user}"),
    ]);
    store(&["-certreq", "-alias", "client", "-file", "java-ec.csr"]);
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    run(
        dir,
        "openssl",
        &[
            "x509",
            "-req",
            "-in",
            "java-ec.csr",
            "-CA",
            ca,
            "-CAkey",
            s(&ca_key),
            "-CAcreateserial",
            "-CAserial",
            "java-ec.srl",
            "-days",
            "2",
            "-sha256",
            "-extfile",
            "client.ext",
            "-out",
            "java-ec.pem",
        ],
    );
    store(&["-importcert", "-noprompt", "-trustcacerts", "-alias", "ca", "-file", ca]);
    store(&["-importcert", "-noprompt", "-alias", "client", "-file", "java-ec.pem"]);
    run(
        dir,
        "keytool",
        &[
            "-importkeystore",
            "-noprompt",
            "-srckeystore",
            "java-ec.p12",
            "-srcstoretype",
            "PKCS12",
            "-srcstorepass",
            PASSWORD,
            "-destkeystore",
            "java-ec.jks",
            "-deststoretype",
            "JKS",
            "-deststorepass",
            PASSWORD,
        ],
    );
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// SSL settings with `truststore` and optionally `keystore`, as Java properties; the store
/// types are given in lower case and upper case alternately, as users write them.
fn ssl(bootstrap: &str, truststore: &Path, keystore: Option<&Path>) -> ClientConfig {
    let type_of = |p: &Path| if s(p).ends_with(".jks") { "JKS" } else { "pkcs12" };
    let mut props = vec![
        ("bootstrap.servers", bootstrap),
        ("security.protocol", "SSL"),
        ("ssl.truststore.type", type_of(truststore)),
        ("ssl.truststore.location", s(truststore)),
        ("ssl.truststore.password", PASSWORD),
    ];
    if let Some(k) = keystore {
        props.extend([
            ("ssl.keystore.type", type_of(k)),
            ("ssl.keystore.location", s(k)),
            ("ssl.keystore.password", PASSWORD),
            ("ssl.key.password", PASSWORD),
        ]);
    }
    config(&props)
}

#[tokio::test]
async fn every_truststore_and_keystore_combination_round_trips() {
    let st = stores();
    let bootstrap = var("STROM_SSL_BOOTSTRAP");
    for truststore in [&st.truststore_p12, &st.truststore_jks] {
        round_trip(ssl(&bootstrap, truststore, None)).await;
        for keystore in [
            &st.keystore_keytool_p12,
            &st.keystore_jks,
            &st.keystore_openssl_p12,
            &st.keystore_java_ec_p12,
            &st.keystore_java_ec_jks,
        ] {
            round_trip(ssl(&bootstrap, truststore, Some(keystore))).await;
        }
    }
}

/// No type given: the format is read from the file (Java would assume JKS and, since 9,
/// read PKCS12 under that name too); a PKCS12 store declared JKS works as in Java.
#[tokio::test]
async fn types_may_be_left_out_or_be_the_other_binary_format() {
    let st = stores();
    round_trip(config(&[
        ("bootstrap.servers", &var("STROM_SSL_BOOTSTRAP")),
        ("security.protocol", "SSL"),
        ("ssl.truststore.location", s(&st.truststore_jks)),
        ("ssl.keystore.type", "JKS"),
        ("ssl.keystore.location", s(&st.keystore_keytool_p12)),
        ("ssl.keystore.password", PASSWORD),
    ]))
    .await;
}

#[tokio::test]
async fn wrong_passwords_are_config_errors_naming_the_property() {
    let st = stores();
    let bootstrap = var("STROM_SSL_BOOTSTRAP");
    let wrong = "not-the-Passw0rd";
    for (key, truststore, keystore) in [
        ("ssl.truststore.password", &st.truststore_p12, None),
        ("ssl.truststore.password", &st.truststore_jks, None),
        (
            "ssl.keystore.password",
            &st.truststore_p12,
            Some(&st.keystore_keytool_p12),
        ),
        ("ssl.keystore.password", &st.truststore_p12, Some(&st.keystore_jks)),
        ("ssl.key.password", &st.truststore_p12, Some(&st.keystore_jks)),
    ] {
        let mut cfg = ssl(&bootstrap, truststore, keystore.map(|k| k.as_path()));
        cfg.set(key, wrong).unwrap();
        let e = Client::connect(cfg).await.unwrap_err();
        assert!(e.is_config() && e.is_fatal(), "{key}: {e}");
        let msg = e.to_string();
        assert!(msg.contains(&format!("{key} is wrong")), "{key}: {msg}");
        assert!(!msg.contains(wrong), "the password leaked: {msg}");
    }
}

/// A private broker whose SSL listener requires a client certificate: without a keystore no
/// connection; with the PKCS12 or the JKS keystore made by keytool, a full round trip, so
/// the broker received and verified the certificate from each store.
#[tokio::test]
async fn a_listener_that_requires_client_certificates_accepts_the_keystores() {
    let st = stores();
    let b = PrivateBroker::start_with(
        24192,
        &[("STROM_KAFKA_OVERRIDES", "listener.name.ssl.ssl.client.auth=required")],
    );
    let bootstrap = format!("127.0.0.1:{}", b.port_base + 3);
    let mut without = ssl(&bootstrap, &st.truststore_p12, None);
    without.default_api_timeout = Duration::from_secs(3);
    let e = Client::connect(without).await.unwrap_err();
    assert!(
        e.to_string().contains("certificate") || e.to_string().contains("closed"),
        "{e}"
    );
    round_trip(ssl(&bootstrap, &st.truststore_jks, Some(&st.keystore_keytool_p12))).await;
    round_trip(ssl(&bootstrap, &st.truststore_p12, Some(&st.keystore_jks))).await;
    round_trip(ssl(&bootstrap, &st.truststore_p12, Some(&st.keystore_java_ec_p12))).await;
    round_trip(ssl(&bootstrap, &st.truststore_jks, Some(&st.keystore_java_ec_jks))).await;
    // librdkafka's names, as kcat users paste them: CA, certificate and key as PEM files.
    let (ca, cert, key) = (
        var("STROM_SSL_CA_LOCATION"),
        var("STROM_SSL_CLIENT_CERT_LOCATION"),
        var("STROM_SSL_CLIENT_KEY_LOCATION"),
    );
    round_trip(config(&[
        ("bootstrap.servers", bootstrap.as_str()),
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca.as_str()),
        ("ssl.certificate.location", cert.as_str()),
        ("ssl.key.location", key.as_str()),
    ]))
    .await;
}
