//! The security layer: TLS (`SSL`, `SASL_SSL`) and SASL authentication (`SASL_PLAINTEXT`,
//! `SASL_SSL`), configured by the Java client's `security.protocol`, `ssl.*` and `sasl.*`
//! properties.
//!
//! Everything happens in [`open`], before the stream is handed to a
//! [`Connection`](crate::lowlevel::Connection): TCP, then the TLS handshake, then (as Java's
//! `SaslClientAuthenticator`) ApiVersions, SaslHandshake and SaslAuthenticate over the raw
//! stream. When the broker grants a session lifetime (KIP-368), the stream halves are
//! wrapped by [`reauth`] so a background task can re-authenticate in-band before it ends.
//!
//! Secrets (passwords, tokens, private keys, keytab contents) never appear in `Debug`
//! output, errors or logs.

mod der;
mod ec_key;
mod jaas;
mod jks;
mod keystore;
mod oauth;
mod pbe;
mod pkcs12;
mod reauth;
mod sasl;
mod scram_client;
mod tls;

#[cfg(feature = "gssapi")]
mod gssapi;

use std::fmt;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use strom_protocol::frame::{self, ApiRequest};
use strom_protocol::messages::{ApiKey, ApiVersionsRequest};
use strom_protocol::versions::NegotiatedVersions;
use strom_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::{debug, warn};

pub use oauth::{OAuthBearerToken, TokenFuture, TokenProvider};
pub(crate) use scram_client::fuzz_exchange as fuzz_scram_exchange;

use crate::config::{ClientConfig, SecurityProtocol};
use crate::connection::ConnectionConfig;
use crate::error::{Error, Kind, Result};
use crate::transport::{BoxRead, BoxWrite};
use sasl::{SaslChannel, SaslSettings};
use tls::TlsSettings;

/// Security settings resolved from a [`ClientConfig`]: read, parsed and validated once
/// (certificate files, keys, JAAS), then shared by every connection of a client.
///
/// Build it with [`ClientConfig::connection_config`] (or [`Security::from_config`]).
///
/// # Key and trust stores
///
/// As a Java client's properties name them (Kafka's `DefaultSslEngineFactory` is the
/// reference):
///
/// * `ssl.truststore.location`: the CAs, in a PEM, PKCS12 or JKS file (or
///   `ssl.truststore.certificates`, inline PEM); the system's roots when neither is given.
///   `ssl.truststore.password` is optional, as in Java: without it the store's integrity is
///   not checked and a PKCS12 store's encrypted certificates cannot be read (keytool
///   encrypts them, so keytool's PKCS12 truststores need it).
/// * `ssl.keystore.location`: the client's key and certificate chain for mTLS, in a PKCS12 or
///   JKS file with exactly one private key entry (`ssl.keystore.password` required), or a
///   PEM file (or `ssl.keystore.key` + `ssl.keystore.certificate.chain`, inline PEM).
///   `ssl.key.password` is the key's password, by default the store password; with PEM it
///   decrypts an `ENCRYPTED PRIVATE KEY`.
/// * `ssl.keystore.type` / `ssl.truststore.type`: `PKCS12`, `JKS` or `PEM`, any case. When
///   not given, the format is read from the file (Java would assume JKS); `JKS` and `PKCS12`
///   each read both binary formats, as Java 9+'s `keystore.type.compat`. JCEKS is refused.
///
/// PKCS12 is read as Java 8 to 17+ keytool and OpenSSL 1.x/3 write it (PBES2 with PBKDF2 and
/// AES or 3DES; PKCS#12 PBE with 3DES or RC2; HMAC-SHA-1/2 MACs), JKS with Sun's key
/// protector; in pure Rust. A wrong password is a configuration error naming its property
/// and the file; no password ever appears in an error, a log or `Debug` output.
pub struct Security {
    protocol: SecurityProtocol,
    tls: Option<TlsSettings>,
    sasl: Option<SaslSettings>,
}

impl fmt::Debug for Security {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Security")
            .field("protocol", &self.protocol)
            .field("tls", &self.tls)
            .field("sasl", &self.sasl)
            .finish()
    }
}

impl Security {
    /// The settings for `config`; `None` for PLAINTEXT. Files named by `ssl.*` are read
    /// here; a missing file, a bad PEM, a damaged store, a wrong store or key password, an
    /// incomplete JAAS entry or a missing keytab is an error naming the property.
    pub fn from_config(config: &ClientConfig) -> Result<Option<Security>> {
        let props = &config.security;
        let (tls, sasl) = match config.security_protocol {
            SecurityProtocol::Plaintext => {
                if props.keys().any(|k| k.starts_with("sasl.") || k.starts_with("ssl.")) {
                    warn!("ssl.*/sasl.* settings are ignored: security.protocol is PLAINTEXT");
                }
                return Ok(None);
            }
            SecurityProtocol::Ssl => (true, false),
            SecurityProtocol::SaslPlaintext => (false, true),
            SecurityProtocol::SaslSsl => (true, true),
        };
        let tls = if tls {
            Some(TlsSettings::from_properties(props)?)
        } else {
            None
        };
        let sasl = if sasl {
            Some(SaslSettings::from_properties(
                props,
                config.oauth_token_provider.clone(),
            )?)
        } else {
            None
        };
        Ok(Some(Security {
            protocol: config.security_protocol,
            tls,
            sasl,
        }))
    }

    /// `security.protocol`.
    pub fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }

    /// SASL is configured (`SASL_PLAINTEXT`, `SASL_SSL`).
    pub(crate) fn has_sasl(&self) -> bool {
        self.sasl.is_some()
    }
}

/// The Java client's `ssl.*` and `sasl.*` property names (and librdkafka's
/// `sasl.username`/`sasl.password`). The JVM-specific ones are refused
/// ([`unsupported_property`]), a few more when TLS or SASL is set up (`tls.rs`, `sasl.rs`);
/// docs/CONFIG.md lists them all.
pub(crate) fn is_known_property(key: &str) -> bool {
    const KNOWN: &[&str] = &[
        "ssl.protocol",
        "ssl.enabled.protocols",
        "ssl.provider",
        "ssl.cipher.suites",
        "ssl.keystore.type",
        "ssl.keystore.location",
        "ssl.keystore.password",
        "ssl.key.password",
        "ssl.keystore.key",
        "ssl.keystore.certificate.chain",
        // librdkafka's (kcat's) client certificate and key, as two PEM files.
        "ssl.certificate.location",
        "ssl.key.location",
        "ssl.truststore.type",
        "ssl.truststore.location",
        "ssl.truststore.password",
        "ssl.truststore.certificates",
        "ssl.keymanager.algorithm",
        "ssl.trustmanager.algorithm",
        "ssl.endpoint.identification.algorithm",
        "ssl.secure.random.implementation",
        "ssl.engine.factory.class",
        "sasl.mechanism",
        "sasl.jaas.config",
        "sasl.username",
        "sasl.password",
        "sasl.kerberos.service.name",
        "sasl.kerberos.kinit.cmd",
        "sasl.kerberos.ticket.renew.window.factor",
        "sasl.kerberos.ticket.renew.jitter",
        "sasl.kerberos.min.time.before.relogin",
        "sasl.login.refresh.window.factor",
        "sasl.login.refresh.window.jitter",
        "sasl.login.refresh.min.period.seconds",
        "sasl.login.refresh.buffer.seconds",
        "sasl.login.callback.handler.class",
        "sasl.client.callback.handler.class",
        "sasl.login.class",
        "sasl.login.connect.timeout.ms",
        "sasl.login.read.timeout.ms",
        "sasl.login.retry.backoff.ms",
        "sasl.login.retry.backoff.max.ms",
        "sasl.oauthbearer.token.endpoint.url",
        "sasl.oauthbearer.scope.claim.name",
        "sasl.oauthbearer.sub.claim.name",
        "sasl.oauthbearer.jwks.endpoint.url",
        "sasl.oauthbearer.jwks.endpoint.refresh.ms",
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
        "sasl.oauthbearer.clock.skew.seconds",
        "sasl.oauthbearer.expected.audience",
        "sasl.oauthbearer.expected.issuer",
        "sasl.oauthbearer.header.urlencode",
    ];
    KNOWN.contains(&key)
}

/// Why a known `ssl.*`/`sasl.*` property cannot be honoured, when it cannot: JVM-specific
/// machinery with no counterpart here. [`ClientConfig::set`] refuses these with a non-blank
/// value, whatever `security.protocol` is. (A few more are refused when the TLS or SASL
/// settings are built: `tls.rs`, `sasl.rs`.)
pub(crate) fn unsupported_property(key: &str) -> Option<&'static str> {
    const OAUTH: &str = "Strom has no built-in OAuth token client (sasl.oauthbearer.token.endpoint.url is \
                         refused too): fetch, check and refresh tokens in a TokenProvider given to \
                         ClientConfig::with_oauth_token_provider; remove it";
    Some(match key {
        "ssl.provider" => "Java security providers do not exist in Strom (TLS is rustls with ring); remove it",
        "ssl.keymanager.algorithm" | "ssl.trustmanager.algorithm" => {
            "JVM key and trust manager factories do not exist in Strom (rustls checks certificates with \
             webpki, as PKIX); remove it"
        }
        "ssl.secure.random.implementation" => {
            "Strom's TLS takes its randomness from the operating system (ring); remove it"
        }
        "sasl.kerberos.kinit.cmd"
        | "sasl.kerberos.ticket.renew.window.factor"
        | "sasl.kerberos.ticket.renew.jitter"
        | "sasl.kerberos.min.time.before.relogin" => {
            "Strom never runs kinit nor renews tickets itself: a keytab login (useKeyTab=true) gets \
             fresh credentials from the keytab, a ticket-cache login uses the cache as kinit/k5start \
             keep it; remove it"
        }
        "sasl.login.refresh.window.factor"
        | "sasl.login.refresh.window.jitter"
        | "sasl.login.refresh.min.period.seconds"
        | "sasl.login.refresh.buffer.seconds" => {
            "OAUTHBEARER tokens come from the TokenProvider, asked before every authentication and \
             re-authentication: it decides when a token is refreshed; remove it"
        }
        "sasl.login.connect.timeout.ms"
        | "sasl.login.read.timeout.ms"
        | "sasl.login.retry.backoff.ms"
        | "sasl.login.retry.backoff.max.ms"
        | "sasl.oauthbearer.scope.claim.name"
        | "sasl.oauthbearer.sub.claim.name"
        | "sasl.oauthbearer.jwks.endpoint.url"
        | "sasl.oauthbearer.jwks.endpoint.refresh.ms"
        | "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms"
        | "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms"
        | "sasl.oauthbearer.clock.skew.seconds"
        | "sasl.oauthbearer.expected.audience"
        | "sasl.oauthbearer.expected.issuer"
        | "sasl.oauthbearer.header.urlencode" => OAUTH,
        _ => return None,
    })
}

/// The host part of `host:port` (`[::1]:9092` gives `::1`).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host)
}

/// TLS and SASL over a fresh TCP connection to `addr`; the halves for the connection.
pub(crate) async fn open(
    addr: &str,
    tcp: TcpStream,
    security: &Security,
    config: &ConnectionConfig,
    counters: &std::sync::Arc<crate::connection::Counters>,
) -> Result<(BoxRead, BoxWrite)> {
    let host = host_of(addr);
    match &security.tls {
        None => {
            let mut tcp = tcp;
            let auth = authenticate(&mut tcp, security, addr, host, config).await?;
            let (read, write) = tcp.into_split();
            Ok(finish(Box::new(read), Box::new(write), auth, counters))
        }
        Some(tls) => {
            let mut stream = tokio::time::timeout(config.connect_timeout, tls.connect(addr, host, tcp))
                .await
                .map_err(|_| Error::timeout(format!("in the TLS handshake with {addr}"), config.connect_timeout))??;
            debug!("TLS established");
            let auth = authenticate(&mut stream, security, addr, host, config).await?;
            // A TLS stream is one state machine: its halves share it through a lock.
            let (read, write) = tokio::io::split(stream);
            Ok(finish(
                Box::new(read),
                Box::new(tls::FlushingWrite::new(write)),
                auth,
                counters,
            ))
        }
    }
}

/// What re-authentication needs after the first authentication.
struct Authenticated {
    settings: SaslSettings,
    versions: (i16, i16),
    lifetime: Duration,
    addr: String,
    host: String,
    client_id: String,
    timeout: Duration,
}

/// SASL over the raw stream, if configured; `Some` when the broker granted a session
/// lifetime, so re-authentication is due.
async fn authenticate<S: AsyncRead + AsyncWrite + Unpin + Send>(
    stream: &mut S,
    security: &Security,
    addr: &str,
    host: &str,
    config: &ConnectionConfig,
) -> Result<Option<Authenticated>> {
    let Some(settings) = &security.sasl else {
        return Ok(None);
    };
    let mut channel = StreamChannel {
        stream,
        client_id: &config.client_id,
        next_id: 0,
        timeout: config.request_timeout,
        addr,
    };
    // ApiVersions first, as Java: the SASL request versions depend on the broker.
    let resp = channel.call(&ApiVersionsRequest::default(), 0).await?;
    if resp.error_code != 0 {
        return Err(Error::kafka(ErrorCode::from_code(resp.error_code))
            .with_context(format!("ApiVersions before SASL with {addr}")));
    }
    let negotiated = NegotiatedVersions::from_response(&resp);
    let versions = (
        negotiated.version(ApiKey::SaslHandshake)?,
        negotiated.version(ApiKey::SaslAuthenticate)?,
    );
    let lifetime = sasl::authenticate(&mut channel, settings, addr, host, versions).await?;
    debug!(
        mechanism = settings.mechanism().name(),
        session_lifetime_ms = lifetime.map_or(0, |l| l.as_millis() as u64),
        "SASL authenticated"
    );
    Ok(lifetime.map(|lifetime| Authenticated {
        settings: settings.clone(),
        versions,
        lifetime,
        addr: addr.to_owned(),
        host: host.to_owned(),
        client_id: config.client_id.clone(),
        timeout: config.request_timeout,
    }))
}

/// The halves as they are, or wrapped for re-authentication with its task started.
fn finish(
    read: BoxRead,
    write: BoxWrite,
    auth: Option<Authenticated>,
    counters: &std::sync::Arc<crate::connection::Counters>,
) -> (BoxRead, BoxWrite) {
    let Some(auth) = auth else {
        return (read, write);
    };
    let (read, write, shared) = reauth::wrap(read, write);
    reauth::Reauth {
        shared,
        settings: auth.settings,
        addr: auth.addr,
        host: auth.host,
        client_id: auth.client_id,
        versions: auth.versions,
        timeout: auth.timeout,
        counters: counters.clone(),
    }
    .spawn(auth.lifetime);
    (Box::new(read), Box::new(write))
}

/// SASL frames are small; a bigger one before authentication is refused unread.
const MAX_AUTH_FRAME: usize = 1 << 20;

/// Request/response over the raw stream, one at a time, before the connection starts.
struct StreamChannel<'a, S> {
    stream: &'a mut S,
    client_id: &'a str,
    next_id: i32,
    timeout: Duration,
    addr: &'a str,
}

impl<S: AsyncRead + AsyncWrite + Unpin + Send> SaslChannel for StreamChannel<'_, S> {
    async fn call<R>(&mut self, request: &R, version: i16) -> Result<R::Response>
    where
        R: ApiRequest + Sync,
        R::Response: Send,
    {
        let id = self.next_id;
        self.next_id += 1;
        let mut buf = BytesMut::new();
        frame::encode_request(&mut buf, version, id, Some(self.client_id), request)?;
        let stream = &mut *self.stream;
        let io = async {
            stream.write_all(&buf).await?;
            stream.flush().await?;
            let mut size = [0u8; 4];
            stream.read_exact(&mut size).await?;
            if crate::connection::looks_like_tls(&size) {
                return Ok(Err(()));
            }
            let size = i32::from_be_bytes(size);
            let size = usize::try_from(size)
                .ok()
                .filter(|&s| s <= MAX_AUTH_FRAME)
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("a {size}-byte frame during authentication (is this a Kafka listener of this protocol? check security.protocol)"),
                    )
                })?;
            let mut body = vec![0u8; size];
            stream.read_exact(&mut body).await?;
            Ok::<_, std::io::Error>(Ok(Bytes::from(body)))
        };
        let frame = tokio::time::timeout(self.timeout, io)
            .await
            .map_err(|_| {
                Error::timeout(
                    format!("waiting for {} from {}", strom_protocol::versions::api_name(R::API), self.addr),
                    self.timeout,
                )
            })?
            .map_err(|source| {
                let source = if source.kind() == std::io::ErrorKind::UnexpectedEof {
                    std::io::Error::new(
                        source.kind(),
                        "the broker closed the connection during authentication (wrong security.protocol for this listener?)",
                    )
                } else {
                    source
                };
                Error::new(Kind::Io {
                    addr: self.addr.to_owned(),
                    source,
                })
            })?
            .map_err(|()| crate::connection::tls_listener_error(self.addr, true))?;
        Ok(frame::decode_response::<R>(frame, version, id)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        assert_eq!(host_of("127.0.0.1:9092"), "127.0.0.1");
        assert_eq!(host_of("localhost:9092"), "localhost");
        assert_eq!(host_of("[::1]:9092"), "::1");
    }

    #[test]
    fn misspelt_security_keys_are_unknown_properties() {
        let e = ClientConfig::from_properties([("sasl.mechansim", "PLAIN")]).unwrap_err();
        assert!(e.to_string().contains("unknown property \"sasl.mechansim\""), "{e}");
        let c =
            ClientConfig::from_properties([("ssl.truststore.type", "PEM"), ("sasl.kerberos.service.name", "kafka")]);
        assert!(c.is_ok());
    }

    #[test]
    fn jvm_only_security_keys_are_refused_saying_why() {
        for (key, hint) in [
            ("ssl.provider", "rustls"),
            ("ssl.keymanager.algorithm", "webpki"),
            ("ssl.trustmanager.algorithm", "webpki"),
            ("ssl.secure.random.implementation", "operating system"),
            ("sasl.kerberos.kinit.cmd", "kinit"),
            ("sasl.kerberos.min.time.before.relogin", "keytab"),
            ("sasl.login.refresh.buffer.seconds", "TokenProvider"),
            ("sasl.oauthbearer.expected.audience", "with_oauth_token_provider"),
            ("sasl.login.connect.timeout.ms", "with_oauth_token_provider"),
        ] {
            // Refused whatever the security protocol (it would be ignored with PLAINTEXT).
            let e = ClientConfig::from_properties([(key, "x")]).unwrap_err();
            assert!(e.is_config(), "{key}: {e}");
            let e = e.to_string();
            assert!(
                e.contains(&format!("{key} is not supported")) && e.contains(hint),
                "{e}"
            );
            // Blank is Java's "not set"; the key stays known (not "unknown property").
            ClientConfig::from_properties([(key, " ")]).unwrap();
            assert!(ClientConfig::is_known_key(key));
        }
    }

    #[test]
    fn plaintext_needs_nothing_and_secrets_stay_hidden() {
        let c = ClientConfig::default();
        assert!(Security::from_config(&c).unwrap().is_none());
        let mut c = ClientConfig::default();
        c.set("security.protocol", "SASL_PLAINTEXT").unwrap();
        c.set("sasl.mechanism", "SCRAM-SHA-256").unwrap();
        c.set(
            "sasl.jaas.config",
            "org.apache.kafka.common.security.scram.ScramLoginModule required username=\"u\" password=\"hunter2\";",
        )
        .unwrap();
        let s = Security::from_config(&c).unwrap().unwrap();
        let dbg = format!("{s:?}");
        assert!(dbg.contains("ScramSha256") && !dbg.contains("hunter2"), "{dbg}");
    }

    /// The keystore passwords are accepted (JKS, PKCS12, encrypted PEM keys) and redacted.
    #[test]
    fn store_and_key_passwords_are_accepted_and_never_shown() {
        let c = ClientConfig::from_properties([
            ("security.protocol", "SSL"),
            ("ssl.keystore.type", "PKCS12"),
            ("ssl.keystore.password", "hunter3"),
            ("ssl.key.password", "hunter4"),
            ("ssl.truststore.type", "JKS"),
            ("ssl.truststore.password", "hunter5"),
        ])
        .unwrap();
        let dbg = format!("{c:?}");
        for secret in ["hunter3", "hunter4", "hunter5"] {
            assert!(!dbg.contains(secret), "{dbg}");
        }
        assert!(dbg.contains("PKCS12"), "{dbg}");
        // A password without its store is refused when TLS is set up, without the password.
        let e = Security::from_config(&c).unwrap_err().to_string();
        assert!(e.contains("ssl.truststore.password") && !e.contains("hunter"), "{e}");
    }
}

/// What `crate::fuzzing` runs: the keystore readers on arbitrary bytes, with the password
/// the committed seeds use (`client/tests/data/keystores/generate.sh`).
pub(crate) mod keystore_fuzzing {
    use super::keystore::Store;
    use super::pbe::Limits;
    use super::{jks as jks_format, pkcs12 as pkcs12_format};

    const PASSWORD: &str = "changeit";
    /// The fuzz seeds are written with iteration counts of at most 10.
    const LIMITS: Limits = Limits { max_iterations: 64 };

    fn use_store(store: &Store) {
        let _ = store.trust_anchors();
        for k in &store.keys {
            if let Ok(key) = k.decrypt(PASSWORD, LIMITS) {
                let _ = super::ec_key::complete(&key);
            }
        }
    }

    pub(crate) fn jks(data: &[u8]) {
        let _ = super::keystore::sniff(data);
        let _ = jks_format::parse(data, Some(PASSWORD));
        if let Ok(store) = jks_format::parse(data, None) {
            use_store(&store);
        }
    }

    /// Every committed seed is read under the fuzzing limits, so the fuzzer starts from
    /// inputs that reach the keys and certificates.
    #[cfg(test)]
    #[test]
    fn the_seeds_parse_under_the_fuzzing_limits() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../fuzz/corpus/");
        let seeds = |t: &str| -> Vec<Vec<u8>> {
            let mut v: Vec<_> = std::fs::read_dir(format!("{dir}{t}"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("seed-"))
                .collect();
            v.sort();
            v.into_iter().map(|p| std::fs::read(p).unwrap()).collect()
        };
        let mut read = 0;
        for s in seeds("client_keystore_pkcs12") {
            let opts = pkcs12_format::Options {
                password: Some(PASSWORD),
                check_mac: true,
                limits: LIMITS,
            };
            let store = pkcs12_format::parse(&s, opts).unwrap();
            assert!(!store.keys.is_empty() || !store.trusted.is_empty() || store.ignored_certs > 0);
            for k in &store.keys {
                k.decrypt(PASSWORD, LIMITS).unwrap();
            }
            read += 1;
        }
        assert!(read >= 8);
        for s in seeds("client_keystore_jks") {
            if super::keystore::sniff(&s) == super::keystore::Sniffed::Jceks {
                continue;
            }
            let store = jks_format::parse(&s, Some(PASSWORD)).unwrap();
            assert!(!store.keys.is_empty() || !store.trusted.is_empty());
        }
    }

    pub(crate) fn pkcs12(data: &[u8]) {
        let _ = super::keystore::sniff(data);
        for (password, check_mac) in [(Some(PASSWORD), true), (None, true), (Some(PASSWORD), false)] {
            let opts = pkcs12_format::Options {
                password,
                check_mac,
                limits: LIMITS,
            };
            if let Ok(store) = pkcs12_format::parse(data, opts) {
                use_store(&store);
            }
        }
    }
}
