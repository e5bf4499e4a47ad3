//! Client configuration: typed fields, each also settable by its Java property name.
//!
//! Defaults are the Java client's unless noted. `from_properties` refuses unknown keys and
//! bad values with an error naming the key and what is accepted, so a pasted Java config
//! either works or says exactly what it does not understand.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::connection::ConnectionConfig;
use crate::error::{Error, Result};
use crate::security::{Security, TokenProvider};

/// `security.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SecurityProtocol {
    /// No TLS, no authentication (default).
    #[default]
    Plaintext,
    /// TLS.
    Ssl,
    /// SASL without TLS.
    SaslPlaintext,
    /// SASL over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    fn parse(v: &str) -> Option<Self> {
        Some(match v.to_ascii_uppercase().as_str() {
            "PLAINTEXT" => SecurityProtocol::Plaintext,
            "SSL" => SecurityProtocol::Ssl,
            "SASL_PLAINTEXT" => SecurityProtocol::SaslPlaintext,
            "SASL_SSL" => SecurityProtocol::SaslSsl,
            _ => return None,
        })
    }
}

/// `metadata.recovery.strategy` (KIP-899).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetadataRecoveryStrategy {
    /// When every broker the metadata names is unreachable, connect to the
    /// `bootstrap.servers` again and take the cluster they describe (Java 4's default):
    /// a cluster replaced behind the same bootstrap addresses is found again.
    #[default]
    Rebootstrap,
    /// Only the brokers the metadata names are tried once it has been received; the
    /// bootstrap servers are used for the first metadata only.
    None,
}

/// Settings every client role shares (`CommonClientConfigs` in Java).
#[derive(Clone)]
pub struct ClientConfig {
    /// `bootstrap.servers`: `host:port` addresses to learn the cluster from.
    pub bootstrap_servers: Vec<String>,
    /// `client.id` (default `strom`).
    pub client_id: String,
    /// `request.timeout.ms` (30 s).
    pub request_timeout: Duration,
    /// `socket.connection.setup.timeout.ms` (10 s).
    pub connect_timeout: Duration,
    /// `default.api.timeout.ms`: bound of one API call including retries (60 s).
    pub default_api_timeout: Duration,
    /// `metadata.max.age.ms`: metadata older than this is refreshed (5 min).
    pub metadata_max_age: Duration,
    /// `metadata.recovery.strategy` (KIP-899): what to do when no broker the metadata
    /// names can be reached (default [`MetadataRecoveryStrategy::Rebootstrap`], as Java 4).
    pub metadata_recovery_strategy: MetadataRecoveryStrategy,
    /// `reconnect.backoff.ms` (50 ms).
    pub reconnect_backoff: Duration,
    /// `reconnect.backoff.max.ms` (1 s).
    pub reconnect_backoff_max: Duration,
    /// `retry.backoff.ms` (100 ms).
    pub retry_backoff: Duration,
    /// `connections.max.idle.ms` (9 min).
    pub connections_max_idle: Duration,
    /// `max.response.size` (Strom; 100 MiB): largest response frame accepted.
    pub max_response_size: usize,
    /// `security.protocol` (PLAINTEXT).
    pub security_protocol: SecurityProtocol,
    /// `ssl.*`, `sasl.*` settings, kept for the security layer; values are secret.
    pub security: BTreeMap<String, String>,
    /// Supplies SASL/OAUTHBEARER tokens (see [`ClientConfig::with_oauth_token_provider`]).
    pub oauth_token_provider: Option<Arc<dyn TokenProvider>>,
}

impl std::fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let security: BTreeMap<&str, &str> = self
            .security
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret(k) { "[redacted]" } else { v.as_str() }))
            .collect();
        f.debug_struct("ClientConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("client_id", &self.client_id)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("default_api_timeout", &self.default_api_timeout)
            .field("metadata_max_age", &self.metadata_max_age)
            .field("metadata_recovery_strategy", &self.metadata_recovery_strategy)
            .field("security_protocol", &self.security_protocol)
            .field("security", &security)
            .field(
                "oauth_token_provider",
                &self.oauth_token_provider.as_ref().map(|_| "TokenProvider"),
            )
            .finish_non_exhaustive()
    }
}

/// Keys whose values never appear in Debug output or logs.
fn is_secret(key: &str) -> bool {
    key.contains("password")
        || key.contains("jaas")
        || key.ends_with(".key")
        || key.contains("secret")
        || key.contains("token")
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            bootstrap_servers: vec!["127.0.0.1:9092".into()],
            client_id: "strom".into(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            default_api_timeout: Duration::from_secs(60),
            metadata_max_age: Duration::from_secs(300),
            metadata_recovery_strategy: MetadataRecoveryStrategy::Rebootstrap,
            reconnect_backoff: Duration::from_millis(50),
            reconnect_backoff_max: Duration::from_secs(1),
            retry_backoff: Duration::from_millis(100),
            connections_max_idle: Duration::from_secs(540),
            max_response_size: strom_protocol::frame::DEFAULT_MAX_FRAME_SIZE,
            security_protocol: SecurityProtocol::Plaintext,
            security: BTreeMap::new(),
            oauth_token_provider: None,
        }
    }
}

pub(crate) fn parse_ms(key: &str, v: &str) -> Result<Duration> {
    v.trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| Error::config(format!("{key}={v:?}: expected a whole number of milliseconds")))
}

pub(crate) fn parse_num<T: std::str::FromStr>(key: &str, v: &str, what: &str) -> Result<T> {
    v.trim()
        .parse::<T>()
        .map_err(|_| Error::config(format!("{key}={v:?}: expected {what}")))
}

impl ClientConfig {
    /// A configuration for these bootstrap servers, everything else default.
    pub fn new(bootstrap_servers: impl AsRef<str>) -> Self {
        ClientConfig {
            bootstrap_servers: split_servers(bootstrap_servers.as_ref()),
            ..Default::default()
        }
    }

    /// Sets one property by its Java name. `Ok(false)`: not a client-wide key (a role
    /// config may know it); an invalid value is an error naming the key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        match key {
            "bootstrap.servers" => {
                let servers = split_servers(value);
                if servers.is_empty() {
                    return Err(Error::config(
                        "bootstrap.servers is empty: expected host:port[,host:port...]",
                    ));
                }
                for s in &servers {
                    if s.rsplit_once(':').and_then(|(_, p)| p.parse::<u16>().ok()).is_none() {
                        return Err(Error::config(format!("bootstrap.servers: {s:?} is not host:port")));
                    }
                }
                self.bootstrap_servers = servers;
            }
            "client.id" => self.client_id = value.to_owned(),
            "request.timeout.ms" => self.request_timeout = parse_ms(key, value)?,
            "socket.connection.setup.timeout.ms" => self.connect_timeout = parse_ms(key, value)?,
            "default.api.timeout.ms" => self.default_api_timeout = parse_ms(key, value)?,
            "metadata.max.age.ms" => self.metadata_max_age = parse_ms(key, value)?,
            "metadata.recovery.strategy" => {
                self.metadata_recovery_strategy = match value.trim().to_ascii_lowercase().as_str() {
                    "rebootstrap" => MetadataRecoveryStrategy::Rebootstrap,
                    "none" => MetadataRecoveryStrategy::None,
                    _ => {
                        return Err(Error::config(format!(
                            "metadata.recovery.strategy={value:?}: expected rebootstrap or none"
                        )))
                    }
                }
            }
            "reconnect.backoff.ms" => self.reconnect_backoff = parse_ms(key, value)?,
            "reconnect.backoff.max.ms" => self.reconnect_backoff_max = parse_ms(key, value)?,
            "retry.backoff.ms" => self.retry_backoff = parse_ms(key, value)?,
            "connections.max.idle.ms" => self.connections_max_idle = parse_ms(key, value)?,
            "max.response.size" => self.max_response_size = parse_num(key, value, "a size in bytes")?,
            "security.protocol" => {
                self.security_protocol = SecurityProtocol::parse(value).ok_or_else(|| {
                    Error::config(format!(
                        "security.protocol={value:?}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
                    ))
                })?
            }
            // Accepted as the Java client does, with no effect here.
            "client.dns.lookup"
            | "socket.connection.setup.timeout.max.ms"
            | "retry.backoff.max.ms"
            | "send.buffer.bytes"
            | "receive.buffer.bytes"
            | "metrics.recording.level"
            | "metrics.num.samples"
            | "metrics.sample.window.ms"
            | "auto.include.jmx.reporter"
            | "enable.metrics.push" => {}
            // librdkafka names that kcat users type.
            "sasl.username" | "sasl.password" | "sasl.mechanisms" => {
                let k = if key == "sasl.mechanisms" {
                    "sasl.mechanism"
                } else {
                    key
                };
                self.security.insert(k.to_owned(), value.to_owned());
            }
            k if crate::security::is_known_property(k) => {
                self.security.insert(k.to_owned(), value.to_owned());
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Uses `provider` for SASL/OAUTHBEARER tokens (with `sasl.mechanism=OAUTHBEARER`); it is
    /// asked before every authentication and re-authentication.
    pub fn with_oauth_token_provider(mut self, provider: Arc<dyn TokenProvider>) -> Self {
        self.oauth_token_provider = Some(provider);
        self
    }

    /// The settings of one broker connection, security included: certificate files, keys
    /// and JAAS entries are read and checked here, so a mistake is an error naming the
    /// property before anything connects.
    pub fn connection_config(&self) -> Result<ConnectionConfig> {
        Ok(ConnectionConfig {
            client_id: self.client_id.clone(),
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            max_response_size: self.max_response_size,
            idle_timeout: self.connections_max_idle,
            security: Security::from_config(self)?.map(Arc::new),
        })
    }

    /// A configuration from Java property names; unknown keys are errors.
    pub fn from_properties<'a>(props: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut c = ClientConfig::default();
        for (k, v) in props {
            if !c.set(k, v)? {
                return Err(Error::config(format!("unknown property {k:?}")));
            }
        }
        Ok(c)
    }
}

fn split_servers(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses a Java `.properties` text: `key=value` or `key: value`, `#`/`!` comments,
/// backslash line continuations; keys and values trimmed.
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!')) {
            continue;
        }
        if let Some(stripped) = line.strip_suffix('\\') {
            pending.push_str(stripped);
            continue;
        }
        pending.push_str(line);
        let full = std::mem::take(&mut pending);
        let split = full
            .find(['=', ':'])
            .map(|i| (full[..i].trim().to_owned(), full[i + 1..].trim().to_owned()));
        if let Some((k, v)) = split {
            out.push((k, v));
        } else if !full.trim().is_empty() {
            out.push((full.trim().to_owned(), String::new()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_names_and_errors() {
        let c = ClientConfig::from_properties([
            ("bootstrap.servers", "a:1, b:2"),
            ("request.timeout.ms", "1500"),
            ("security.protocol", "sasl_ssl"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"hunter2\";",
            ),
            ("sasl.password", "hunter3"),
        ])
        .unwrap();
        assert_eq!(c.bootstrap_servers, ["a:1", "b:2"]);
        assert_eq!(c.request_timeout, Duration::from_millis(1500));
        assert_eq!(c.security_protocol, SecurityProtocol::SaslSsl);
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2") && !dbg.contains("hunter3"), "{dbg}");

        let e = ClientConfig::from_properties([("linger.msx", "5")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown property \"linger.msx\""), "{e}");
        let e = ClientConfig::from_properties([("request.timeout.ms", "soon")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("request.timeout.ms") && e.contains("milliseconds"), "{e}");
        let e = ClientConfig::from_properties([("security.protocol", "TLS")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("SASL_SSL"), "{e}");
        let e = ClientConfig::from_properties([("bootstrap.servers", "nohost")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("not host:port"), "{e}");
    }

    #[test]
    fn properties_files() {
        let p = parse_properties("# c\n! c\nbootstrap.servers = h:1\nsasl.jaas.config=a \\\n  b;\nclient.id: x\n\n");
        assert_eq!(
            p,
            vec![
                ("bootstrap.servers".into(), "h:1".into()),
                ("sasl.jaas.config".into(), "a b;".into()),
                ("client.id".into(), "x".into())
            ]
        );
    }
}
