//! Registries that need more than a URL: HTTPS with a PEM truststore, basic and bearer
//! auth.

use super::*;

/// A registry instance of its own on ports 28281 (HTTP) and 28282 (HTTPS, the broker
/// harness's server certificate for 127.0.0.1 and localhost), stopped on drop.
struct TlsRegistry;

impl TlsRegistry {
    fn env() -> Vec<(&'static str, String)> {
        let tls = |f: &str| {
            format!(
                "{}/{f}",
                std::path::Path::new(broker().var("STROM_SSL_CA_LOCATION"))
                    .parent()
                    .unwrap()
                    .display()
            )
        };
        vec![
            ("STROM_SCHEMA_REGISTRY_PORT", "28281".into()),
            (
                "STROM_SCHEMA_REGISTRY_OVERRIDES",
                format!(
                    "quarkus.http.ssl-port=28282 quarkus.http.ssl.certificate.files={} quarkus.http.ssl.certificate.key-files={}",
                    tls("broker.pem"),
                    tls("broker.key")
                ),
            ),
        ]
    }

    fn start() -> Self {
        let out = std::process::Command::new(strom_integration_tests::repo_root().join("scripts/schema-registry"))
            .arg("up")
            .envs(Self::env())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        TlsRegistry
    }
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        let _ = std::process::Command::new(strom_integration_tests::repo_root().join("scripts/schema-registry"))
            .arg("down")
            .envs(Self::env())
            .output();
    }
}

#[tokio::test]
async fn https_with_a_pem_truststore_and_a_refused_certificate() {
    let _registry = TlsRegistry::start();
    let ca = broker().var("STROM_SSL_CA_LOCATION").to_owned();
    let url = "https://localhost:28282/apis/ccompat/v7";
    let client = SchemaRegistryClient::new(
        RegistryConfig::from_properties([
            ("schema.registry.url", url),
            ("schema.registry.ssl.truststore.location", ca.as_str()),
            ("schema.registry.ssl.truststore.type", "PEM"),
        ])
        .unwrap(),
    )
    .unwrap();
    let topic = unique_topic("registry-tls");
    let ser = AvroSerializer::new(client.clone(), AvroSchema::parse(USER_V1).unwrap());
    let user = UserV1 {
        name: "tls".into(),
        visits: 1,
    };
    let bytes = ser.encode(&topic, false, &user).await.unwrap();
    let back: UserV1 = AvroDeserializer::new(client.clone(), None)
        .decode(&topic, &bytes)
        .await
        .unwrap();
    assert_eq!(back, user);
    // The same address by IP (the certificate names it too).
    let by_ip = SchemaRegistryClient::new(
        RegistryConfig::from_properties([
            ("schema.registry.url", "https://127.0.0.1:28282/apis/ccompat/v7"),
            ("schema.registry.ssl.truststore.location", ca.as_str()),
        ])
        .unwrap(),
    )
    .unwrap();
    assert!(by_ip.subjects().await.unwrap().contains(&format!("{topic}-value")));

    // Without the CA (the system's roots only) the certificate is refused: an
    // authentication error naming the URL, not retried as if the registry were down.
    let untrusted = SchemaRegistryClient::new(
        RegistryConfig::from_properties([("schema.registry.url", url), ("retries.wait.ms", "10")]).unwrap(),
    )
    .unwrap();
    let started = Instant::now();
    let e = untrusted.subjects().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(e.to_string().contains("localhost:28282"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A truststore file that is not there: a config error at construction.
    let e = SchemaRegistryClient::new(
        RegistryConfig::from_properties([
            ("schema.registry.url", url),
            ("schema.registry.ssl.truststore.location", "/nonexistent/ca.pem"),
        ])
        .unwrap(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
}

/// A registry instance of its own that requires authentication, on port 28381: HTTP basic
/// for one user, and bearer tokens (RS256 JWTs) signed by a key made here, which the
/// registry verifies itself (scripts/schema-registry's STROM_SCHEMA_REGISTRY_BASIC_AUTH and
/// _JWT_PUBLIC_KEY). Stopped on drop.
struct AuthRegistry {
    dir: std::path::PathBuf,
}

const AUTH_URL: &str = "http://127.0.0.1:28381/apis/ccompat/v7";
const AUTH_USER: &str = "strom-user";
const AUTH_PASSWORD: &str = "pw-9f2c-not-in-logs";

impl AuthRegistry {
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("STROM_SCHEMA_REGISTRY_PORT", "28381".into()),
            (
                "STROM_SCHEMA_REGISTRY_BASIC_AUTH",
                format!("{AUTH_USER}:{AUTH_PASSWORD}"),
            ),
            (
                "STROM_SCHEMA_REGISTRY_JWT_PUBLIC_KEY",
                self.dir.join("pub.pem").display().to_string(),
            ),
        ]
    }

    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("strom-registry-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap_or_else(|e| panic!("openssl (apt-get install openssl) could not run: {e}"));
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "key.pem",
        ]);
        openssl(&["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"]);
        let registry = AuthRegistry { dir };
        let out = std::process::Command::new(strom_integration_tests::repo_root().join("scripts/schema-registry"))
            .arg("up")
            .envs(registry.env())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        registry
    }

    /// A JWT for `sub`, valid for `valid_secs` from now (negative: already expired), signed
    /// with the key the registry trusts, or with a key of its own when `foreign`.
    fn token(&self, sub: &str, valid_secs: i64, foreign: bool) -> String {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let header = b64(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = b64(format!(
            r#"{{"sub":"{sub}","preferred_username":"{sub}","iss":"strom-tests","iat":{now},"exp":{}}}"#,
            now + valid_secs
        )
        .as_bytes());
        let signing_input = format!("{header}.{claims}");
        let key = if foreign {
            let out = std::process::Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    "other.pem",
                ])
                .current_dir(&self.dir)
                .output()
                .unwrap();
            assert!(out.status.success());
            "other.pem"
        } else {
            "key.pem"
        };
        let mut sign = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-sign", key])
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        sign.stdin.take().unwrap().write_all(signing_input.as_bytes()).unwrap();
        let out = sign.wait_with_output().unwrap();
        assert!(out.status.success());
        format!("{signing_input}.{}", b64(&out.stdout))
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = std::process::Command::new(strom_integration_tests::repo_root().join("scripts/schema-registry"))
            .arg("down")
            .envs(self.env())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Basic auth (USER_INFO and URL user info) and bearer tokens against a registry that
/// requires them: records go through with the right credentials; a wrong password, no
/// credentials, an expired token or one signed by another key are Authentication errors at
/// once (never retried as if the registry were down) that never show the secret.
#[tokio::test]
async fn basic_and_bearer_auth_against_a_registry_that_requires_them() {
    let registry = AuthRegistry::start();
    let client = |props: &[(&str, &str)]| {
        SchemaRegistryClient::new(RegistryConfig::from_properties(props.iter().copied()).unwrap()).unwrap()
    };
    let user_info = format!("{AUTH_USER}:{AUTH_PASSWORD}");
    let url_with_user = format!("http://{AUTH_USER}:{AUTH_PASSWORD}@127.0.0.1:28381/apis/ccompat/v7");
    let good_token = registry.token(AUTH_USER, 600, false);
    let round_trip = |c: SchemaRegistryClient, how: &'static str| async move {
        let topic = unique_topic(&format!("registry-auth-{how}"));
        let user = UserV1 {
            name: how.into(),
            visits: 7,
        };
        let bytes = AvroSerializer::new(c.clone(), AvroSchema::parse(USER_V1).unwrap())
            .encode(&topic, false, &user)
            .await
            .unwrap_or_else(|e| panic!("{how}: {e}"));
        let back: UserV1 = AvroDeserializer::new(c.clone(), None)
            .decode(&topic, &bytes)
            .await
            .unwrap_or_else(|e| panic!("{how}: {e}"));
        assert_eq!(back, user, "{how}");
        assert!(c.subjects().await.unwrap().contains(&format!("{topic}-value")), "{how}");
    };
    round_trip(
        client(&[
            ("schema.registry.url", AUTH_URL),
            ("basic.auth.credentials.source", "USER_INFO"),
            ("basic.auth.user.info", &user_info),
        ]),
        "user-info",
    )
    .await;
    round_trip(
        client(&[
            ("schema.registry.url", &url_with_user),
            ("basic.auth.credentials.source", "URL"),
        ]),
        "url",
    )
    .await;
    round_trip(
        client(&[
            ("schema.registry.url", AUTH_URL),
            ("bearer.auth.credentials.source", "STATIC_TOKEN"),
            ("bearer.auth.token", &good_token),
        ]),
        "bearer",
    )
    .await;

    let wrong_password = format!("{AUTH_USER}:not-{AUTH_PASSWORD}");
    let expired = registry.token(AUTH_USER, -120, false);
    let foreign = registry.token(AUTH_USER, 600, true);
    let refused: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "a wrong password",
            vec![
                ("basic.auth.credentials.source", "USER_INFO"),
                ("basic.auth.user.info", &wrong_password),
            ],
        ),
        ("no credentials", vec![]),
        (
            "an expired token",
            vec![
                ("bearer.auth.credentials.source", "STATIC_TOKEN"),
                ("bearer.auth.token", &expired),
            ],
        ),
        (
            "a token signed by another key",
            vec![
                ("bearer.auth.credentials.source", "STATIC_TOKEN"),
                ("bearer.auth.token", &foreign),
            ],
        ),
    ];
    for (what, extra) in refused {
        let mut props = vec![("schema.registry.url", AUTH_URL), ("retries.wait.ms", "10")];
        props.extend(extra);
        let c = client(&props);
        let started = Instant::now();
        let e = c.subjects().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication, "{what}: {e}");
        assert!(started.elapsed() < Duration::from_secs(5), "{what}: {e}");
        let shown = format!("{e} {e:?} {c:?}");
        assert!(shown.contains("28381"), "{what}: names the registry: {e}");
        for secret in [AUTH_PASSWORD, &expired, &foreign, &good_token] {
            assert!(!shown.contains(secret), "{what}: a secret in {shown}");
        }
    }
}
