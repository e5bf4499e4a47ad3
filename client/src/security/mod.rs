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
pub(crate) mod keystore_fuzzing;
mod mechanism;
mod oauth;
mod pbe;
mod pkcs12;
mod properties;
mod reauth;
mod sasl;
mod scram_client;
mod settings;
mod store;
mod tls;

#[cfg(feature = "gssapi")]
mod gssapi;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use strom_protocol::frame::{self, ApiRequest};
use strom_protocol::messages::{ApiKey, ApiVersionsRequest};
use strom_protocol::versions::NegotiatedVersions;
use strom_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tracing::debug;

pub use oauth::{OAuthBearerToken, TokenFuture, TokenProvider};
pub(crate) use properties::{is_known_property, unsupported_property};
pub(crate) use scram_client::fuzz_exchange as fuzz_scram_exchange;
pub use scram_client::ScramMechanism;
pub use settings::Security;

use crate::error::{Error, Kind, Result};
use crate::stream::{looks_like_tls, tls_listener_error, BoxRead, BoxWrite, ConnectionConfig, Counters};
use sasl::{SaslChannel, SaslSettings};

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
    counters: &std::sync::Arc<Counters>,
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
    counters: &std::sync::Arc<Counters>,
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
            if looks_like_tls(&size) {
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
            .map_err(|()| tls_listener_error(self.addr, true))?;
        Ok(frame::decode_response::<R>(frame, version, id)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ClientConfig;

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
