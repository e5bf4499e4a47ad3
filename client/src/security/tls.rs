//! TLS with rustls, configured by the Java `ssl.*` properties.
//!
//! Crypto: the rustls `CryptoProvider` the application installed as the process default,
//! else the one built in by a cargo feature (`tls-ring`, else `tls-graviola`), else a
//! configuration error naming those choices ([`provider`]).
//!
//! Stores ([`keystore`] has the rules and the decisions behind them): the CAs from
//! `ssl.truststore.location` (a PEM, PKCS12 or JKS file; `ssl.truststore.type` and
//! `ssl.truststore.password` as in Java) or `ssl.truststore.certificates` (PEM), else the
//! system's roots; for mTLS, `ssl.keystore.location` (PKCS12 or JKS with
//! `ssl.keystore.password` and `ssl.key.password`, or PEM with the key and chain in one
//! file) or `ssl.keystore.key` + `ssl.keystore.certificate.chain` (PEM). Hostname
//! verification is on unless `ssl.endpoint.identification.algorithm` is explicitly empty, as
//! in Java (`DefaultSslEngineFactory`); the chain is verified either way.

use std::collections::BTreeMap;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;
use tracing::{debug, warn};

use super::keystore;
use crate::error::{Error, Kind, Result};

/// A built TLS client configuration, shared by every connection of a client.
#[derive(Clone)]
pub(crate) struct TlsSettings {
    config: Arc<rustls::ClientConfig>,
    verify_hostname: bool,
    /// Where the trusted CAs came from, for error messages.
    trust_source: String,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("verify_hostname", &self.verify_hostname)
            .field("trust", &self.trust_source)
            .field("client_auth", &self.config.client_auth_cert_resolver.has_certs())
            .finish()
    }
}

/// The crypto provider for TLS: the process default the application installed wins (so a
/// program chooses, whatever features are on), then a built-in one.
pub(crate) fn provider() -> Result<Arc<CryptoProvider>> {
    choose_provider(CryptoProvider::get_default().cloned(), builtin_provider())
}

fn choose_provider(
    installed: Option<Arc<CryptoProvider>>,
    builtin: Option<CryptoProvider>,
) -> Result<Arc<CryptoProvider>> {
    if let Some(installed) = installed {
        return Ok(installed);
    }
    builtin.map(Arc::new).ok_or_else(|| {
        Error::config(
            "TLS needs a rustls crypto provider and this build has none: enable strom-client's feature \
             `tls-ring` (ring; its build needs a C compiler) or `tls-graviola` (pure Rust, x86_64/aarch64), \
             or install one in the program with rustls::crypto::CryptoProvider::install_default",
        )
    })
}

#[cfg(feature = "tls-ring")]
fn builtin_provider() -> Option<CryptoProvider> {
    Some(rustls::crypto::ring::default_provider())
}

#[cfg(all(feature = "tls-graviola", not(feature = "tls-ring")))]
fn builtin_provider() -> Option<CryptoProvider> {
    Some(rustls_graviola::default_provider())
}

#[cfg(not(any(feature = "tls-ring", feature = "tls-graviola")))]
fn builtin_provider() -> Option<CryptoProvider> {
    None
}

/// The value of `key`, `None` when absent or blank.
fn get<'a>(props: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
    keystore::get(props, key)
}

impl TlsSettings {
    /// Builds the TLS configuration from the `ssl.*` properties; files are read here, once.
    pub(crate) fn from_properties(props: &BTreeMap<String, String>) -> Result<TlsSettings> {
        for key in ["ssl.engine.factory.class", "ssl.cipher.suites"] {
            if get(props, key).is_some() {
                return Err(Error::config(format!(
                    "{key} is not supported: Strom uses rustls with its default (safe) cipher suites"
                )));
            }
        }

        // Which CAs to trust.
        let mut roots = RootCertStore::empty();
        let trust_source = match keystore::truststore(props)? {
            Some((certs, source)) => {
                add_roots(&mut roots, &source, certs)?;
                source
            }
            None => {
                let native = rustls_native_certs::load_native_certs();
                for e in &native.errors {
                    debug!(error = %e, "skipping unreadable system CA certificates");
                }
                let (added, _ignored) = roots.add_parsable_certificates(native.certs);
                if added == 0 {
                    return Err(Error::config(
                        "no ssl.truststore.location or ssl.truststore.certificates given, and no system CA certificates found: \
                         set ssl.truststore.location to a PEM, PKCS12 or JKS file with the CA of the brokers",
                    ));
                }
                "the system's CA certificates".to_owned()
            }
        };

        let verify_hostname = match props.get("ssl.endpoint.identification.algorithm").map(|v| v.trim()) {
            None => true,
            Some(v) if v.eq_ignore_ascii_case("https") => true,
            Some("") => {
                warn!(
                    "ssl.endpoint.identification.algorithm is empty: broker hostnames are NOT verified \
                     (certificate chains still are); do this only for tests"
                );
                false
            }
            Some(v) => {
                return Err(Error::config(format!(
                    "ssl.endpoint.identification.algorithm={v:?}: expected https (default) or empty (no hostname verification)"
                )))
            }
        };

        // mTLS: a client certificate chain and key.
        let identity = keystore::keystore(props)?;
        let versions = protocol_versions(props)?;
        // After every property is checked, so a config mistake is reported the same in any build.
        let provider = provider()?;
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| Error::config(format!("ssl.enabled.protocols: {e}")))?;
        let roots = Arc::new(roots);
        let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
            .build()
            .map_err(|e| Error::config(format!("{trust_source}: cannot build a certificate verifier: {e}")))?;
        let builder = if verify_hostname {
            builder.with_webpki_verifier(webpki)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(NoHostnameVerifier(webpki)))
        };

        let config = match identity {
            None => builder.with_no_client_auth(),
            Some((chain, key)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| Error::config(format!("ssl.keystore: the client certificate and key do not fit: {e}")))?,
        };
        Ok(TlsSettings {
            config: Arc::new(config),
            verify_hostname,
            trust_source,
        })
    }

    /// TLS handshake over `tcp` with the broker at `addr` (`host:port`); SNI and the
    /// hostname check use `host`.
    pub(crate) async fn connect(&self, addr: &str, host: &str, tcp: TcpStream) -> Result<TlsStream<TcpStream>> {
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| Error::config(format!("broker {addr}: {host:?} is not a valid TLS server name")))?;
        TlsConnector::from(self.config.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| self.handshake_error(addr, host, e))
    }

    /// Certificate and protocol failures are fatal (retrying cannot fix them, as Java's
    /// `SslAuthenticationException`); a dropped connection is retriable.
    fn handshake_error(&self, addr: &str, host: &str, e: std::io::Error) -> Error {
        let Some(tls) = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()) else {
            return Error::new(Kind::Io {
                addr: addr.to_owned(),
                source: std::io::Error::new(
                    e.kind(),
                    format!("TLS handshake failed: {e} (is {addr} a TLS listener? check security.protocol)"),
                ),
            });
        };
        let msg = match tls {
            rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
                "TLS: the certificate of broker {addr} is not trusted: it is not signed by a CA from {}; \
                 set ssl.truststore.location (or ssl.truststore.certificates) to the CA that signed it",
                self.trust_source
            ),
            rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            ) => format!(
                "TLS: the certificate of broker {addr} is not valid for the host name {host:?} ({tls}); \
                 connect with a name the certificate lists, or set ssl.endpoint.identification.algorithm= \
                 (empty) to turn hostname verification off"
            ),
            rustls::Error::InvalidCertificate(_) => {
                format!("TLS: the certificate of broker {addr} was rejected: {tls}")
            }
            rustls::Error::AlertReceived(alert) => format!(
                "TLS handshake with broker {addr} failed: the broker sent alert {alert:?} \
                 (a required or rejected client certificate? check ssl.keystore.*)"
            ),
            other => format!(
                "TLS handshake with broker {addr} failed: {other} (is it a TLS listener? check security.protocol)"
            ),
        };
        Error::config(msg)
    }
}

/// The write half of a TLS stream, flushed after every write.
///
/// tokio-rustls's `poll_write` may report bytes written while their TLS records still wait
/// in rustls for the socket (it returns early when the socket would block), and the
/// connection's writer does not flush between requests: the end of a request could sit
/// there until the next one. So each write is flushed before it is reported, and while the
/// flush is pending the write is `Pending`; the caller (`write_all`) offers the same bytes
/// again, which are then reported as written.
pub(crate) struct FlushingWrite<W> {
    inner: W,
    /// Bytes accepted by the last write whose flush is pending.
    flushing: Option<usize>,
}

impl<W> FlushingWrite<W> {
    pub(crate) fn new(inner: W) -> Self {
        FlushingWrite { inner, flushing: None }
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for FlushingWrite<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::{ready, Poll};
        let this = &mut *self;
        let n = match this.flushing {
            Some(n) => n,
            None => ready!(std::pin::Pin::new(&mut this.inner).poll_write(cx, buf))?,
        };
        match std::pin::Pin::new(&mut this.inner).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                this.flushing = None;
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => {
                this.flushing = None;
                Poll::Ready(Err(e))
            }
            Poll::Pending => {
                this.flushing = Some(n);
                Poll::Pending
            }
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

fn add_roots(roots: &mut RootCertStore, key: &str, certs: Vec<CertificateDer<'static>>) -> Result<()> {
    for c in certs {
        roots
            .add(c)
            .map_err(|e| Error::config(format!("{key}: not a usable CA certificate: {e}")))?;
    }
    Ok(())
}

/// `ssl.enabled.protocols` (or `ssl.protocol` when that is absent): TLSv1.2 and/or TLSv1.3.
fn protocol_versions(props: &BTreeMap<String, String>) -> Result<Vec<&'static rustls::SupportedProtocolVersion>> {
    let (key, list) = match (get(props, "ssl.enabled.protocols"), get(props, "ssl.protocol")) {
        (Some(l), _) => ("ssl.enabled.protocols", l),
        (None, Some(p)) if p.eq_ignore_ascii_case("TLS") => return Ok(rustls::ALL_VERSIONS.to_vec()),
        // Java: ssl.protocol picks the SSLContext; TLSv1.3's context also allows TLSv1.2.
        (None, Some(p)) if p.eq_ignore_ascii_case("TLSv1.3") => return Ok(rustls::ALL_VERSIONS.to_vec()),
        (None, Some(p)) => ("ssl.protocol", p),
        (None, None) => return Ok(rustls::ALL_VERSIONS.to_vec()),
    };
    let mut out = Vec::new();
    for p in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let v = match p {
            "TLSv1.3" => &rustls::version::TLS13,
            "TLSv1.2" => &rustls::version::TLS12,
            _ => {
                return Err(Error::config(format!(
                    "{key}: {p:?} is not supported: expected TLSv1.2 and/or TLSv1.3"
                )))
            }
        };
        out.push(v);
    }
    if out.is_empty() {
        return Err(Error::config(format!(
            "{key} is empty: expected TLSv1.2 and/or TLSv1.3"
        )));
    }
    Ok(out)
}

/// `ssl.endpoint.identification.algorithm=` (empty): the chain is verified, the name is not.
#[derive(Debug)]
struct NoHostnameVerifier(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for NoHostnameVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn config_errors_name_the_key() {
        for (kv, want) in [
            (vec![("ssl.truststore.type", "BCFKS")], "expected PKCS12, JKS or PEM"),
            (vec![("ssl.keystore.type", "jceks")], "keytool -importkeystore"),
            (vec![("ssl.truststore.location", "/nonexistent/ca.pem")], "cannot read"),
            (vec![("ssl.truststore.password", "x")], "ssl.truststore.password"),
            (vec![("ssl.truststore.certificates", "garbage")], "no PEM certificate"),
            (
                vec![("ssl.endpoint.identification.algorithm", "ldap")],
                "expected https",
            ),
            (vec![("ssl.enabled.protocols", "TLSv1.1")], "TLSv1.1"),
            (vec![("ssl.keystore.key", "k")], "must be given together"),
        ] {
            let e = TlsSettings::from_properties(&props(&kv)).unwrap_err();
            assert!(e.is_fatal(), "{e}");
            assert!(e.to_string().contains(want), "{kv:?}: {e}");
        }
    }

    /// A self-signed CA certificate (P-256; its key was thrown away), only ever parsed.
    const TEST_CA: &str = "-----BEGIN CERTIFICATE-----
MIIBiDCCAS2gAwIBAgIUT4QMGzu++pCVgalAealmTlslf+AwCgYIKoZIzj0EAwIw
GDEWMBQGA1UEAwwNc3Ryb20tdGVzdC1jYTAgFw0yNjEyMDUwODA3NDZaGA8yMTI2
MTExMTA4MDc0NlowGDEWMBQGA1UEAwwNc3Ryb20tdGVzdC1jYTBZMBMGByqGSM49
AgEGCCqGSM49AwEHA0IABCNGXb7ABLn3Tf+Io+uQD/mozlc15gwXQXRyCrm362X5
yN17auyJ3F0aTGVAavWU+C7P6eULTd3cW+1n90dyMaWjUzBRMB0GA1UdDgQWBBSM
EefYvOGePLf9N/2X6EWlc+WdTzAfBgNVHSMEGDAWgBSMEefYvOGePLf9N/2X6EWl
c+WdTzAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0kAMEYCIQCNgfF5CMNT
G1uQrKcSx9ufOhGSVW+4C4soLrAFvUDocgIhAP2BckxYHjaj+yUGYwxijotQ4LgM
YR3j2msls4AVhPc1
-----END CERTIFICATE-----
";

    /// The default build has no crypto provider: TLS settings are then a fatal config error
    /// that says how to get one (scripts/test runs this in the C-free build step).
    #[cfg(not(any(feature = "tls-ring", feature = "tls-graviola")))]
    #[test]
    fn without_a_provider_tls_is_a_config_error_naming_the_choices() {
        let e = TlsSettings::from_properties(&props(&[("ssl.truststore.certificates", TEST_CA)])).unwrap_err();
        assert!(e.is_fatal(), "{e}");
        let e = e.to_string();
        for want in ["tls-ring", "tls-graviola", "install_default"] {
            assert!(e.contains(want), "{want} missing from: {e}");
        }
    }

    /// A provider the program installed wins over the built-in one.
    #[cfg(any(feature = "tls-ring", feature = "tls-graviola"))]
    #[test]
    fn an_installed_provider_wins_over_the_built_in_one() {
        let builtin = builtin_provider().unwrap();
        let mut installed = builtin_provider().unwrap();
        installed.cipher_suites.truncate(1);
        let chosen = choose_provider(Some(Arc::new(installed)), Some(builtin)).unwrap();
        assert_eq!(chosen.cipher_suites.len(), 1);
        let chosen = choose_provider(None, builtin_provider()).unwrap();
        assert!(chosen.cipher_suites.len() > 1);
        assert!(choose_provider(None, None)
            .unwrap_err()
            .to_string()
            .contains("tls-ring"));
    }

    /// Each keystore fixture (client/tests/data/keystores/) gives rustls a key that fits its
    /// certificate, so the configuration builds with a client certificate.
    #[cfg(any(feature = "tls-ring", feature = "tls-graviola"))]
    #[test]
    fn keystores_build_a_config_with_a_client_certificate() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/keystores/");
        for (keystore, truststore, key_password) in [
            ("keystore-keytool.p12", "truststore-keytool.p12", None),
            ("keystore-keytool-legacy.p12", "truststore.jks", None),
            ("keystore-openssl-legacy.p12", "truststore-nopass.p12", None),
            ("keystore.jks", "truststore.jks", None),
            ("keystore-keypass.jks", "ca.pem", Some("keypass1")),
            ("client-encrypted.pem", "ca.pem", Some("changeit")),
            // Keys keytool generated (Java's EC encoding, completed for ring).
            ("keystore-java-ec.p12", "truststore.jks", None),
            ("keystore-java-ec384.jks", "truststore-keytool.p12", None),
        ] {
            let ks = format!("{dir}{keystore}");
            let ts = format!("{dir}{truststore}");
            let mut kv = vec![
                ("ssl.keystore.location", ks.as_str()),
                ("ssl.truststore.location", ts.as_str()),
            ];
            if !keystore.ends_with(".pem") {
                kv.push(("ssl.keystore.password", "changeit"));
            }
            if !truststore.ends_with(".pem") {
                kv.push(("ssl.truststore.password", "changeit"));
            }
            if let Some(p) = key_password {
                kv.push(("ssl.key.password", p));
            }
            let s = TlsSettings::from_properties(&props(&kv)).unwrap_or_else(|e| panic!("{keystore}: {e}"));
            assert!(s.config.client_auth_cert_resolver.has_certs(), "{keystore}");
            let dbg = format!("{s:?}");
            assert!(dbg.contains(truststore) && !dbg.contains("changeit"), "{dbg}");
        }
    }

    /// With a provider built in, the same settings build.
    #[cfg(any(feature = "tls-ring", feature = "tls-graviola"))]
    #[test]
    fn a_built_in_provider_is_used() {
        TlsSettings::from_properties(&props(&[("ssl.truststore.certificates", TEST_CA)])).unwrap();
    }
}
