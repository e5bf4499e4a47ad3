//! SASL/GSSAPI (Kerberos) against the real broker and a real MIT KDC
//! (`scripts/kafka up --kerberos`): keytab and ticket-cache logins, end to end, and the
//! errors for a missing or outdated keytab, an unknown service, a listener without GSSAPI.
//!
//! Needs the `gssapi` feature (`cargo test --workspace --all-features` has it). The shared
//! broker is used when it runs with Kerberos (scripts/test starts it so); otherwise this
//! test starts its own with `up --kerberos` on port base 19992.
#![cfg(feature = "gssapi")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use strom_client::{Admin, Client, ClientConfig};
use strom_integration_tests::{broker, repo_root};
use strom_protocol::ErrorCode;

mod security_util;
use security_util::{config, round_trip};

/// A `scripts/kafka up --kerberos` broker of this test's own, stopped on drop.
struct KerberosBroker {
    port_base: u16,
}

impl KerberosBroker {
    fn script(&self, args: &[&str]) -> std::process::Output {
        let out = Command::new(repo_root().join("scripts").join("kafka"))
            .args(args)
            .env("STROM_KAFKA_PORT_BASE", self.port_base.to_string())
            .env_remove("STROM_KAFKA_STATE_DIR")
            .output()
            .unwrap();
        assert!(
            out.status.success() || args[0] == "down",
            "scripts/kafka {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    fn env(&self) -> HashMap<String, String> {
        String::from_utf8_lossy(&self.script(&["env"]).stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.trim_matches('\'').to_owned()))
            .collect()
    }
}

impl Drop for KerberosBroker {
    fn drop(&mut self) {
        self.script(&["down"]);
    }
}

/// The settings of a broker with a GSSAPI listener (and the guard of a private one).
fn kerberos_env() -> (HashMap<String, String>, Option<KerberosBroker>) {
    let shared = &broker().env;
    if shared.contains_key("STROM_GSSAPI_BOOTSTRAP") {
        let mut env = shared.clone();
        if let Ok(v) = std::env::var("KRB5_CONFIG") {
            env.entry("KRB5_CONFIG".into()).or_insert(v);
        }
        return (env, None);
    }
    let b = KerberosBroker { port_base: 19992 };
    b.script(&["up", "--kerberos"]);
    (b.env(), Some(b))
}

fn jaas_keytab(keytab: &str, principal: &str) -> String {
    format!(
        "com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true storeKey=true \
         keyTab=\"{keytab}\" principal=\"{principal}\";"
    )
}

fn gssapi(bootstrap: &str, jaas: &str) -> ClientConfig {
    config(&[
        ("bootstrap.servers", bootstrap),
        ("security.protocol", "SASL_PLAINTEXT"),
        ("sasl.mechanism", "GSSAPI"),
        ("sasl.kerberos.service.name", "kafka"),
        ("sasl.jaas.config", jaas),
    ])
}

/// All checks in one test: they share one KDC and the process-wide KRB5_CONFIG.
#[tokio::test]
async fn gssapi_against_a_real_kdc() {
    let (env, _guard) = kerberos_env();
    let get = |k: &str| {
        env.get(k)
            .cloned()
            .unwrap_or_else(|| panic!("{k} not in scripts/kafka env"))
    };
    let ccache = std::env::temp_dir().join(format!("strom-krb5cc-{}", std::process::id()));
    // libkrb5 reads these when it starts a context; the whole binary uses the same values.
    std::env::set_var("KRB5_CONFIG", get("KRB5_CONFIG"));
    std::env::set_var("KRB5CCNAME", format!("FILE:{}", ccache.display()));
    let bootstrap = get("STROM_GSSAPI_BOOTSTRAP");
    assert!(bootstrap.starts_with("localhost:"), "{bootstrap}");
    let keytab = get("STROM_KERBEROS_KEYTAB");
    let principal = get("STROM_KERBEROS_PRINCIPAL");

    // 1. Keytab + principal (Krb5LoginModule style): authenticate, create a topic, produce
    // and fetch a record.
    round_trip(gssapi(&bootstrap, &jaas_keytab(&keytab, &principal))).await;

    // 2. The ticket cache, filled by kinit, as a user would.
    let kinit = Command::new("kinit")
        .args(["-kt", &keytab, &principal])
        .env("KRB5_CONFIG", get("KRB5_CONFIG"))
        .env("KRB5CCNAME", format!("FILE:{}", ccache.display()))
        .output()
        .expect("kinit (Debian: krb5-user; scripts/test installs it)");
    assert!(kinit.status.success(), "{}", String::from_utf8_lossy(&kinit.stderr));
    let cfg = gssapi(
        &bootstrap,
        "com.sun.security.auth.module.Krb5LoginModule required useTicketCache=true;",
    );
    let topics = Admin::connect(cfg).await.unwrap().list_topics(false).await.unwrap();
    drop(topics);
    let _ = std::fs::remove_file(&ccache);

    // 3. A keytab that does not exist: refused before connecting, naming it.
    let e = Client::connect(gssapi(
        &bootstrap,
        &jaas_keytab("/nonexistent/strom.keytab", &principal),
    ))
    .await
    .unwrap_err();
    assert!(e.is_fatal(), "{e}");
    assert!(
        e.to_string()
            .contains("keyTab /nonexistent/strom.keytab cannot be read"),
        "{e}"
    );

    // 4. An outdated keytab (the key was rotated since): a clear, fatal, quick error.
    let started = Instant::now();
    let stale = get("STROM_KERBEROS_STALE_KEYTAB");
    let stale_principal = get("STROM_KERBEROS_STALE_PRINCIPAL");
    let e = Client::connect(gssapi(&bootstrap, &jaas_keytab(&stale, &stale_principal)))
        .await
        .unwrap_err();
    let msg = e.to_string();
    assert!(e.is_fatal(), "{msg}");
    assert!(
        msg.contains(&format!(
            "GSSAPI: cannot get Kerberos credentials as {stale_principal} from keytab {stale}"
        )),
        "{msg}"
    );
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());

    // 5. A service the KDC does not know.
    let mut cfg = gssapi(&bootstrap, &jaas_keytab(&keytab, &principal));
    cfg.set("sasl.kerberos.service.name", "nosuchservice").unwrap();
    let e = Client::connect(cfg).await.unwrap_err();
    assert!(e.is_fatal(), "{e}");
    assert!(e.to_string().contains("to service nosuchservice@localhost"), "{e}");

    // 6. A listener that does not enable GSSAPI says so, listing what it offers.
    let e = Client::connect(gssapi(
        &get("STROM_SASL_PLAINTEXT_BOOTSTRAP"),
        &jaas_keytab(&keytab, &principal),
    ))
    .await
    .unwrap_err();
    assert_eq!(e.kafka_code(), Some(ErrorCode::UnsupportedSaslMechanism), "{e}");
    assert!(e.is_fatal() && e.to_string().contains("it offers PLAIN"), "{e}");
}
