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
/// [`ProducerConfig`](crate::ProducerConfig) and [`ConsumerConfig`](crate::ConsumerConfig)
/// add their role's settings on top.
///
/// ```
/// use std::time::Duration;
/// use strom_client::{ClientConfig, ConsumerConfig, ProducerConfig, SecurityProtocol};
///
/// // Typed fields ...
/// let mut config = ClientConfig::new("broker1:9092,broker2:9092");
/// config.client_id = "billing".into();
/// config.request_timeout = Duration::from_secs(10);
/// // ... or the Java client's property names, as in a client.properties file.
/// config.set("security.protocol", "SASL_SSL")?;
/// config.set("sasl.mechanism", "SCRAM-SHA-512")?;
/// config.set("sasl.username", "billing")?;
/// config.set("sasl.password", "secret")?;
/// assert_eq!(config.security_protocol, SecurityProtocol::SaslSsl);
/// assert!(!format!("{config:?}").contains("secret")); // secrets are redacted
/// // Unknown keys and bad values are errors naming the key.
/// assert!(config.set("linger.ms", "5").is_err()); // a producer setting
/// assert!(config.set("request.timeout.ms", "soon").is_err());
///
/// // The roles start from the shared settings.
/// let mut producer = ProducerConfig::from_client(config.clone());
/// producer.set("linger.ms", "5")?;
/// let consumer = ConsumerConfig::from_properties([
///     ("bootstrap.servers", "broker1:9092"),
///     ("group.id", "billing"),
///     ("isolation.level", "read_committed"),
/// ])?;
/// # let _ = consumer;
/// # Ok::<(), strom_client::Error>(())
/// ```
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
            .map(|(k, v)| (k.as_str(), if is_secret_key(k) { "[redacted]" } else { v.as_str() }))
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

/// Keys whose values never appear in Debug output, logs or error messages: any name with
/// `password`, `secret`, `token` or `jaas` in it (any case), and key material (`*.key`).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("jaas") || k.ends_with(".key") || k.contains("secret") || k.contains("token")
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

/// Milliseconds of a Java `Type.LONG` setting with `atLeast(0)`.
pub(crate) fn parse_ms(key: &str, v: &str) -> Result<Duration> {
    parse_ms_in(key, v, 0, i64::MAX as u64)
}

/// Milliseconds of a Java `Type.INT` setting at least `min` (Java's `ConfigDef` range).
pub(crate) fn parse_ms_int(key: &str, v: &str, min: u64) -> Result<Duration> {
    parse_ms_in(key, v, min, i32::MAX as u64)
}

fn parse_ms_in(key: &str, v: &str, min: u64, max: u64) -> Result<Duration> {
    let ms = v
        .trim()
        .parse::<u64>()
        .map_err(|_| Error::config(format!("{key}={v:?}: expected a whole number of milliseconds")))?;
    if ms < min || ms > max {
        return Err(Error::config(format!(
            "{key}={ms}: expected milliseconds in [{min}, {max}]"
        )));
    }
    Ok(Duration::from_millis(ms))
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

    /// Sets one property by its Java name. An invalid value is an error naming the key; a
    /// key that is not client-wide is an error too ([`Error::unknown_property_key`] names
    /// it): role-specific keys go to [`crate::ProducerConfig::set`] or
    /// [`crate::ConsumerConfig::set`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let applied = self.apply(key, value)?;
        applied.into_result(key)
    }

    /// Whether `key` is a client-wide property this client knows (its value unchecked).
    pub fn is_known_key(key: &str) -> bool {
        !matches!(ClientConfig::default().apply(key, ""), Ok(Applied::Unknown))
    }

    /// Sets a key, or says it is not client-wide.
    pub(crate) fn apply(&mut self, key: &str, value: &str) -> Result<Applied> {
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
            // Java's ConfigDef allows 0 for these (Type.INT, atLeast(0)), but every request
            // would then time out at once: Strom asks for at least 1 ms.
            "request.timeout.ms" => self.request_timeout = parse_ms_int(key, value, 1)?,
            "socket.connection.setup.timeout.ms" => self.connect_timeout = parse_ms_in(key, value, 1, i64::MAX as u64)?,
            "default.api.timeout.ms" => self.default_api_timeout = parse_ms_int(key, value, 1)?,
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
            | "enable.metrics.push" => return Ok(Applied::NoEffect),
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
            _ => return Ok(Applied::Unknown),
        }
        Ok(Applied::Set)
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
            c.set(k, v)?;
        }
        Ok(c)
    }
}

/// What setting a key by its Java name did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The setting took effect.
    Set,
    /// A Java property Strom accepts (so pasted configs work) but that changes nothing here.
    NoEffect,
    /// Not a property of this config.
    Unknown,
}

impl Applied {
    /// `set`'s answer: an unknown key is an error; a key without effect is accepted with a
    /// warning (never silently).
    pub(crate) fn into_result(self, key: &str) -> Result<()> {
        match self {
            Applied::Set => Ok(()),
            Applied::NoEffect => {
                tracing::warn!("{key} is accepted for compatibility with Java configs but has no effect in Strom");
                Ok(())
            }
            Applied::Unknown => Err(Error::unknown_property(key)),
        }
    }
}

/// Java's serializers and deserializers of bytes and strings: records are bytes in Strom
/// anyway, so naming one of these changes nothing (any other class has no effect).
pub(crate) fn is_plain_serde(class: &str) -> bool {
    let name = class.trim().rsplit('.').next().unwrap_or_default();
    let base = name
        .strip_suffix("Serializer")
        .or_else(|| name.strip_suffix("Deserializer"))
        .unwrap_or_default();
    matches!(base, "ByteArray" | "String" | "Bytes" | "ByteBuffer")
}

fn split_servers(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses a Java `.properties` text as `java.util.Properties.load` does: a key ends at the
/// first unescaped `=`, `:` or whitespace (so `key=value`, `key: value` and `key value` all
/// work); whitespace and one `=`/`:` after it are skipped; lines starting with `#` or `!`
/// are comments; a line ending in an odd number of backslashes continues on the next one
/// (its leading whitespace dropped); `\t`, `\n`, `\r`, `\f`, `\uXXXX` are escapes and a
/// backslash before any other character stands for that character. Values keep trailing
/// whitespace, as in Java. A malformed `\uXXXX` is an error naming the line (never the value).
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>> {
    let is_ws = |c: char| c == ' ' || c == '\t' || c == '\x0c';
    let mut out = Vec::new();
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).enumerate();
    while let Some((n, first)) = lines.next() {
        let first = first.trim_start_matches(is_ws);
        if first.is_empty() || first.starts_with('#') || first.starts_with('!') {
            continue;
        }
        // Join continuation lines into one logical line.
        let mut logical = String::new();
        let mut part = first;
        loop {
            let trailing = part.chars().rev().take_while(|&c| c == '\\').count();
            if trailing % 2 == 1 {
                logical.push_str(&part[..part.len() - 1]);
                match lines.next() {
                    Some((_, next)) => part = next.trim_start_matches(is_ws),
                    None => break,
                }
            } else {
                logical.push_str(part);
                break;
            }
        }
        let line = n + 1;
        // The key: up to the first unescaped separator.
        let chars: Vec<char> = logical.chars().collect();
        let mut i = 0;
        let mut key_end = chars.len();
        while i < chars.len() {
            match chars[i] {
                '\\' => i += 2,
                c if c == '=' || c == ':' || is_ws(c) => {
                    key_end = i;
                    break;
                }
                _ => i += 1,
            }
        }
        let key_end = key_end.min(chars.len());
        let mut v = key_end;
        while v < chars.len() && is_ws(chars[v]) {
            v += 1;
        }
        if v < chars.len() && (chars[v] == '=' || chars[v] == ':') {
            v += 1;
            while v < chars.len() && is_ws(chars[v]) {
                v += 1;
            }
        }
        let key = unescape(&chars[..key_end], line)?;
        let value = unescape(&chars[v.min(chars.len())..], line)?;
        out.push((key, value));
    }
    Ok(out)
}

/// Java's `Properties.loadConvert`.
fn unescape(chars: &[char], line: usize) -> Result<String> {
    let mut out = String::with_capacity(chars.len());
    let mut it = chars.iter().copied();
    while let Some(c) = it.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match it.next() {
            Some('t') => out.push('\t'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('f') => out.push('\x0c'),
            Some('u') => {
                let hex: String = it.by_ref().take(4).collect();
                let ch = (hex.len() == 4)
                    .then(|| u32::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .and_then(char::from_u32)
                    .ok_or_else(|| Error::config(format!("properties line {line}: malformed \\uXXXX escape")))?;
                out.push(ch);
            }
            Some(other) => out.push(other),
            None => {}
        }
    }
    Ok(out)
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

        let e = ClientConfig::from_properties([("linger.msx", "5")]).unwrap_err();
        assert_eq!(e.unknown_property_key(), Some("linger.msx"));
        assert!(e.to_string().contains("unknown property \"linger.msx\""), "{e}");
        assert!(ClientConfig::is_known_key("request.timeout.ms") && !ClientConfig::is_known_key("linger.ms"));
        let e = ClientConfig::from_properties([("request.timeout.ms", "0")]).unwrap_err();
        assert!(e.to_string().contains("[1, 2147483647]"), "{e}");
        assert!(ClientConfig::from_properties([("request.timeout.ms", "2147483648")]).is_err());
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
        let p = parse_properties("# c\n! c\nbootstrap.servers = h:1\nsasl.jaas.config=a \\\n  b;\nclient.id: x\n\n")
            .unwrap();
        assert_eq!(
            p,
            vec![
                ("bootstrap.servers".into(), "h:1".into()),
                ("sasl.jaas.config".into(), "a b;".into()),
                ("client.id".into(), "x".into())
            ]
        );
        // Java's other forms: a space separator, escapes, an escaped separator in the key,
        // a key alone, CRLF line ends, a continuation of a comment-looking line.
        let p = parse_properties(
            "sasl.password strom-secret\r\n  a\\=b\\ c = x\\ty\\u0041\\\n    # not a comment\nlonely\n\tk:v:w\n",
        )
        .unwrap();
        assert_eq!(
            p,
            vec![
                ("sasl.password".into(), "strom-secret".into()),
                ("a=b c".into(), "x\tyA# not a comment".into()),
                ("lonely".into(), String::new()),
                ("k".into(), "v:w".into()),
            ]
        );
        let e = parse_properties("x=1\nsasl.password=\\u12G4secret\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("line 2") && !e.contains("secret\""), "{e}");
    }
}
