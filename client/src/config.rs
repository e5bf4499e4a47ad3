//! Client configuration: typed fields, each also settable by its Java property name.
//!
//! Defaults are the Java client's unless noted. `from_properties` refuses unknown keys and
//! bad values with an error naming the key and what is accepted, so a pasted Java config
//! either works or says exactly what it does not understand.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::security::TokenProvider;

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

/// `client.dns.lookup`: how bootstrap server names become connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientDnsLookup {
    /// `use_all_dns_ips` (default, as Java): every address a name resolves to is tried in
    /// turn, each within `socket.connection.setup.timeout.ms`, until one accepts.
    #[default]
    UseAllDnsIps,
    /// `resolve_canonical_bootstrap_servers_only`: each bootstrap server's name is resolved
    /// and every address is replaced by its canonical host name (reverse DNS; the address
    /// itself when it has none), as Java does, so a DNS alias in `bootstrap.servers` becomes
    /// the brokers' real names (what Kerberos service principals and TLS certificates name).
    /// Connections to those names then use every address, as with `use_all_dns_ips`.
    ResolveCanonicalBootstrapServersOnly,
}

/// A function the statistics documents are handed to (librdkafka's `stats_cb`). It runs on
/// the client's runtime: keep it short, or hand the text to a task of your own.
pub type StatisticsCallback = Arc<dyn Fn(&str) + Send + Sync>;

/// `send.buffer.bytes` when not set: Java's value for every role (128 KiB).
pub(crate) const DEFAULT_SEND_BUFFER_BYTES: i32 = 128 * 1024;
/// `receive.buffer.bytes` when not set, for a consumer and the admin client (64 KiB);
/// a producer uses [`PRODUCER_RECEIVE_BUFFER_BYTES`].
pub(crate) const DEFAULT_RECEIVE_BUFFER_BYTES: i32 = 64 * 1024;
/// `receive.buffer.bytes` of Java's producer (32 KiB).
pub(crate) const PRODUCER_RECEIVE_BUFFER_BYTES: i32 = 32 * 1024;

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
#[non_exhaustive]
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
    /// `retry.backoff.max.ms` (1 s): retries of one request back off exponentially from
    /// `retry.backoff.ms` up to this, ±20 % (KIP-580). Lower than `retry.backoff.ms`, it is
    /// a constant backoff, as in Java.
    pub retry_backoff_max: Duration,
    /// `connections.max.idle.ms` (9 min).
    pub connections_max_idle: Duration,
    /// `max.response.size` (Strom; 100 MiB): largest response frame accepted.
    pub max_response_size: usize,
    /// `metrics.sample.window.ms` (30 s): the window rates and avg/max of the
    /// [`crate::metrics`] snapshot are sampled over.
    pub metrics_sample_window: Duration,
    /// `metrics.num.samples` (2): how many windows a rate or avg/max covers.
    pub metrics_num_samples: u32,
    /// `statistics.interval.ms` (librdkafka's name; 0, the default, is off): every interval
    /// the client emits a JSON statistics document ([`crate::statistics`]) to the
    /// [`statistics_callback`](Self::statistics_callback) and to
    /// [`Client::statistics`](crate::Client::statistics) receivers.
    pub statistics_interval: Option<Duration>,
    /// Called with each statistics document (librdkafka's `stats_cb`); see
    /// [`ClientConfig::with_statistics_callback`]. Set without `statistics.interval.ms`, the
    /// client refuses to start.
    pub statistics_callback: Option<StatisticsCallback>,
    /// `send.buffer.bytes`: the sockets' `SO_SNDBUF`; `-1` keeps the OS default. `None`
    /// (not set) is Java's default, 131072 for every role.
    pub send_buffer_bytes: Option<i32>,
    /// `receive.buffer.bytes`: the sockets' `SO_RCVBUF`; `-1` keeps the OS default. `None`
    /// (not set) is the role's Java default: 32768 for a producer, 65536 for a consumer and
    /// the admin client (and a [`crate::Client`] made from this config directly).
    pub receive_buffer_bytes: Option<i32>,
    /// `client.dns.lookup` (default [`ClientDnsLookup::UseAllDnsIps`]).
    pub client_dns_lookup: ClientDnsLookup,
    /// `security.protocol` (PLAINTEXT).
    pub security_protocol: SecurityProtocol,
    /// `ssl.*`, `sasl.*` settings, kept for the security layer; values are secret.
    pub security: BTreeMap<String, String>,
    /// Supplies SASL/OAUTHBEARER tokens (see [`ClientConfig::with_oauth_token_provider`]).
    pub oauth_token_provider: Option<Arc<dyn TokenProvider>>,
    /// Opens broker connections in place of TCP (see [`ClientConfig::with_transport`]);
    /// `None`, the default, is TCP.
    pub transport: Option<Arc<dyn crate::custom_transport::Transport>>,
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
            .field("send_buffer_bytes", &self.send_buffer_bytes)
            .field("receive_buffer_bytes", &self.receive_buffer_bytes)
            .field("client_dns_lookup", &self.client_dns_lookup)
            .field("statistics_interval", &self.statistics_interval)
            .field(
                "statistics_callback",
                &self.statistics_callback.as_ref().map(|_| "Fn(&str)"),
            )
            .field("security_protocol", &self.security_protocol)
            .field("security", &security)
            .field(
                "oauth_token_provider",
                &self.oauth_token_provider.as_ref().map(|_| "TokenProvider"),
            )
            .field("transport", &self.transport)
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
            retry_backoff_max: Duration::from_secs(1),
            connections_max_idle: Duration::from_secs(540),
            max_response_size: strom_protocol::frame::DEFAULT_MAX_FRAME_SIZE,
            metrics_sample_window: Duration::from_secs(30),
            metrics_num_samples: 2,
            statistics_interval: None,
            statistics_callback: None,
            send_buffer_bytes: None,
            receive_buffer_bytes: None,
            client_dns_lookup: ClientDnsLookup::UseAllDnsIps,
            security_protocol: SecurityProtocol::Plaintext,
            security: BTreeMap::new(),
            oauth_token_provider: None,
            transport: None,
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

/// `send.buffer.bytes` / `receive.buffer.bytes`: Java's `Type.INT`, `atLeast(-1)`. Java also
/// takes 0 there and then fails every connection (a socket buffer cannot be 0 bytes), so 0
/// is refused here.
fn parse_buffer_size(key: &str, v: &str) -> Result<i32> {
    match v.trim().parse::<i32>() {
        Ok(n) if n == -1 || n > 0 => Ok(n),
        _ => Err(Error::config(format!(
            "{key}={v:?}: expected -1 (the OS default) or a positive size in bytes"
        ))),
    }
}

/// A buffer size setting as a socket option: `-1` is the OS default (no option set).
pub(crate) fn socket_buffer(bytes: i32) -> Option<u32> {
    u32::try_from(bytes).ok().filter(|&n| n > 0)
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
        if let Some(t) = crate::librdkafka::translate(key, value) {
            return match t? {
                crate::librdkafka::Translation::Java(k, v) => self.apply(k, &v),
                crate::librdkafka::Translation::Fixed => Ok(Applied::Set),
            };
        }
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
            "retry.backoff.max.ms" => self.retry_backoff_max = parse_ms(key, value)?,
            "connections.max.idle.ms" => self.connections_max_idle = parse_ms(key, value)?,
            "max.response.size" => self.max_response_size = parse_num(key, value, "a size in bytes")?,
            "security.protocol" => {
                self.security_protocol = SecurityProtocol::parse(value).ok_or_else(|| {
                    Error::config(format!(
                        "security.protocol={value:?}: expected PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
                    ))
                })?
            }
            "send.buffer.bytes" => self.send_buffer_bytes = Some(parse_buffer_size(key, value)?),
            "receive.buffer.bytes" => self.receive_buffer_bytes = Some(parse_buffer_size(key, value)?),
            "client.dns.lookup" => {
                self.client_dns_lookup = match value.trim() {
                    "use_all_dns_ips" => ClientDnsLookup::UseAllDnsIps,
                    "resolve_canonical_bootstrap_servers_only" => ClientDnsLookup::ResolveCanonicalBootstrapServersOnly,
                    _ => {
                        return Err(Error::config(format!(
                            "client.dns.lookup={value:?}: expected use_all_dns_ips or \
                             resolve_canonical_bootstrap_servers_only (Java 3.0 removed \"default\")"
                        )))
                    }
                }
            }
            // Java settings Strom does not implement: refused, saying what to do instead
            // (docs/CONFIG.md lists every key).
            "socket.connection.setup.timeout.max.ms" => {
                return Err(unsupported(
                    key,
                    "every connection attempt gets socket.connection.setup.timeout.ms (it does not grow \
                     after failures, as Java's does up to this maximum); remove it and set \
                     socket.connection.setup.timeout.ms",
                ))
            }
            "metrics.sample.window.ms" => self.metrics_sample_window = parse_ms_int(key, value, 1)?,
            // librdkafka's name (Java has no such setting): 0 is off, as there; at most a
            // day (librdkafka's bound).
            "statistics.interval.ms" => {
                let ms = parse_ms_in(key, value, 0, 86_400_000)?;
                self.statistics_interval = (!ms.is_zero()).then_some(ms);
            }
            "metrics.num.samples" => {
                let n: u32 = parse_num(key, value, "a count of at least 1")?;
                if n == 0 {
                    return Err(Error::config(format!("{key}: must be at least 1, got 0")));
                }
                self.metrics_num_samples = n;
            }
            "metrics.recording.level" => {
                return Err(unsupported(
                    key,
                    "Strom records every metric it has at one level (Java's INFO and DEBUG sensors alike); \
                     remove it",
                ))
            }
            // Off is what Strom does; on cannot be honoured.
            "auto.include.jmx.reporter" => {
                if parse_bool_value(key, value)? {
                    return Err(unsupported(
                        key,
                        "there is no JMX in Strom; remove it or set it to false",
                    ));
                }
            }
            "enable.metrics.push" => {
                if parse_bool_value(key, value)? {
                    return Err(unsupported(
                        key,
                        "Strom does not push client metrics to the broker (KIP-714); remove it or set it to false",
                    ));
                }
            }
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
                if let Some(why) = crate::security::unsupported_property(k) {
                    // Blank is Java's "not set".
                    if !value.trim().is_empty() {
                        return Err(unsupported(k, why));
                    }
                }
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

    /// Opens every broker connection with `transport` instead of TCP: an in-memory
    /// cluster in tests (strom-fake's `FakeCluster::transport`), which under tokio's paused
    /// clock runs the client in virtual time. PLAINTEXT only: with another
    /// `security.protocol` the client refuses to start.
    pub fn with_transport(mut self, transport: Arc<dyn crate::custom_transport::Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Hands each statistics document (every `statistics.interval.ms`) to `callback`, as
    /// librdkafka's `stats_cb` (rdkafka's `ClientContext::stats`). It runs on the client's
    /// runtime: keep it short.
    ///
    /// ```
    /// use strom_client::ClientConfig;
    /// let mut config = ClientConfig::new("127.0.0.1:9092")
    ///     .with_statistics_callback(|json: &str| println!("{json}"));
    /// config.set("statistics.interval.ms", "5000")?;
    /// # Ok::<(), strom_client::Error>(())
    /// ```
    pub fn with_statistics_callback(mut self, callback: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.statistics_callback = Some(Arc::new(callback));
        self
    }

    /// This configuration with a role's Java defaults for the socket buffer sizes that were
    /// not set (`send.buffer.bytes`, `receive.buffer.bytes`).
    pub(crate) fn with_buffer_defaults(mut self, send: i32, receive: i32) -> Self {
        self.send_buffer_bytes.get_or_insert(send);
        self.receive_buffer_bytes.get_or_insert(receive);
        self
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

/// What setting a key by its Java name did. Every key Strom accepts takes effect; a Java
/// key it cannot honour is an error from `apply` (see [`unsupported`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Applied {
    /// The setting took effect.
    Set,
    /// Not a property of this config.
    Unknown,
}

impl Applied {
    /// `set`'s answer: an unknown key is an error.
    pub(crate) fn into_result(self, key: &str) -> Result<()> {
        match self {
            Applied::Set => Ok(()),
            Applied::Unknown => Err(Error::unknown_property(key)),
        }
    }
}

pub(crate) use crate::error::unsupported;

/// A Java boolean setting.
pub(crate) fn parse_bool_value(key: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::config(format!("{key}={v:?}: expected true or false"))),
    }
}

/// Java's serializers and deserializers of bytes and strings: records are bytes in Strom
/// anyway, so naming one of these is what Strom does (any other class is refused).
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

/// Parses a Java `.properties` text as `java.util.Properties.load` does (a port of its
/// `LineReader`, `load0` and `loadConvert`, checked against Java's own output on tricky
/// inputs by `integration-tests/tests/properties_java.rs`):
///
/// * Lines end at `\n`, `\r` or `\r\n`. Blank lines and lines whose first character
///   other than whitespace (space, tab, form feed) is `#` or `!` are skipped; a comment
///   never continues onto the next line.
/// * A line ending in an odd number of backslashes continues on the next one, whose
///   leading whitespace is dropped (a backslash at the very end of the text is dropped).
/// * The key ends at the first unescaped `=`, `:` or whitespace (so `key=value`,
///   `key: value` and `key value` all work); whitespace and at most one `=`/`:` after it
///   are skipped; the rest is the value, trailing whitespace kept. A key alone has an empty
///   value.
/// * In keys and values `\t`, `\n`, `\r`, `\f` and `\uXXXX` are escapes (a surrogate
///   pair of `\uXXXX` makes one character); a backslash before any other character stands
///   for that character (`\=`, `\:`, `\ `, `\#`, `\\`; `\q` is `q`).
///
/// Entries are returned in file order, duplicates included: applying them in order makes
/// the last one win, as in Java's map.
///
/// Differences from Java: the text is UTF-8 (Java's `load(InputStream)` decodes ISO-8859-1;
/// ASCII and `\uXXXX` escapes read the same either way), and a `\uXXXX` that is half of a
/// surrogate pair on its own is an error (Java keeps the unpaired half; a Rust string cannot
/// hold it). A malformed `\uXXXX` is an error naming the line (never the value), as Java's
/// `IllegalArgumentException`.
pub fn parse_properties(text: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut reader = LineReader::new(text);
    while let Some((line, logical)) = reader.next_logical() {
        let (key, value) = split_entry(&logical);
        out.push((unescape(key, line)?, unescape(value, line)?));
    }
    Ok(out)
}

/// Whitespace to `Properties.load`.
fn is_properties_ws(c: char) -> bool {
    c == ' ' || c == '\t' || c == '\x0c'
}

/// Java's `Properties.LineReader`: yields logical lines (continuations joined, comments and
/// blank lines skipped), each with the number of the line where it starts.
struct LineReader<'a> {
    chars: std::str::Chars<'a>,
    /// Number of the line the last character read is on (1-based).
    line: usize,
    /// The last character read ended a line (so the next one starts a new line).
    at_line_end: bool,
    /// The last character read was `\r` (a following `\n` ends the same line).
    after_cr: bool,
}

impl<'a> LineReader<'a> {
    fn new(text: &'a str) -> Self {
        LineReader {
            chars: text.chars(),
            line: 1,
            at_line_end: false,
            after_cr: false,
        }
    }

    fn next_char(&mut self) -> Option<char> {
        let c = self.chars.next()?;
        if self.at_line_end && !(c == '\n' && self.after_cr) {
            self.line += 1;
        }
        let crlf = c == '\n' && self.after_cr;
        self.after_cr = c == '\r';
        if !crlf {
            self.at_line_end = c == '\n' || c == '\r';
        }
        Some(c)
    }

    fn next_logical(&mut self) -> Option<(usize, Vec<char>)> {
        let mut buf: Vec<char> = Vec::new();
        let mut first_line = self.line;
        let mut skip_ws = true;
        let mut appended_line_begin = false;
        let mut preceding_backslash = false;
        let mut comment = false;
        let mut new_line = true;
        let mut skip_lf = false;
        loop {
            let Some(c) = self.next_char() else {
                if buf.is_empty() || comment {
                    return None;
                }
                if preceding_backslash {
                    buf.pop();
                }
                return Some((first_line, buf));
            };
            if skip_lf {
                skip_lf = false;
                if c == '\n' {
                    continue;
                }
            }
            if skip_ws {
                if is_properties_ws(c) || (!appended_line_begin && (c == '\r' || c == '\n')) {
                    continue;
                }
                skip_ws = false;
                appended_line_begin = false;
            }
            if new_line {
                new_line = false;
                first_line = self.line;
                if c == '#' || c == '!' {
                    comment = true;
                    continue;
                }
            }
            if c != '\n' && c != '\r' {
                // A comment's backslashes continue nothing.
                if !comment {
                    buf.push(c);
                    preceding_backslash = c == '\\' && !preceding_backslash;
                }
            } else if comment || buf.is_empty() {
                // The end of a comment, or of a continuation that brought nothing.
                comment = false;
                new_line = true;
                skip_ws = true;
                buf.clear();
            } else if self.chars.as_str().is_empty() {
                // The text ends right after this line: Java returns it at once, a final
                // backslash dropped, even when nothing is left (`\` alone is an entry
                // with an empty key).
                if preceding_backslash {
                    buf.pop();
                }
                return Some((first_line, buf));
            } else if preceding_backslash {
                // A continuation: drop the backslash, skip the next line's indentation.
                buf.pop();
                skip_ws = true;
                appended_line_begin = true;
                preceding_backslash = false;
                skip_lf = c == '\r';
            } else {
                return Some((first_line, buf));
            }
        }
    }
}

/// Java's `Properties.load0`: a logical line's key and value, both still escaped.
fn split_entry(chars: &[char]) -> (&[char], &[char]) {
    let mut key_len = 0;
    let mut value_start = chars.len();
    let mut has_sep = false;
    let mut preceding_backslash = false;
    while key_len < chars.len() {
        let c = chars[key_len];
        if !preceding_backslash && (c == '=' || c == ':') {
            value_start = key_len + 1;
            has_sep = true;
            break;
        }
        if !preceding_backslash && is_properties_ws(c) {
            value_start = key_len + 1;
            break;
        }
        preceding_backslash = c == '\\' && !preceding_backslash;
        key_len += 1;
    }
    while value_start < chars.len() {
        let c = chars[value_start];
        if !is_properties_ws(c) {
            if !has_sep && (c == '=' || c == ':') {
                has_sep = true;
            } else {
                break;
            }
        }
        value_start += 1;
    }
    (&chars[..key_len], &chars[value_start..])
}

/// Java's `Properties.loadConvert`, with `\uXXXX` surrogate pairs joined into one character.
fn unescape(chars: &[char], line: usize) -> Result<String> {
    let malformed = || Error::config(format!("properties line {line}: malformed \\uXXXX escape"));
    let mut out = String::with_capacity(chars.len());
    let mut high_surrogate: Option<u32> = None;
    let mut it = chars.iter().copied();
    while let Some(c) = it.next() {
        let unit = if c == '\\' {
            match it.next() {
                Some('u') => {
                    let hex: String = it.by_ref().take(4).collect();
                    if hex.len() != 4 || !hex.chars().all(|h| h.is_ascii_hexdigit()) {
                        return Err(malformed());
                    }
                    u32::from_str_radix(&hex, 16).map_err(|_| malformed())?
                }
                Some('t') => u32::from('\t'),
                Some('n') => u32::from('\n'),
                Some('r') => u32::from('\r'),
                Some('f') => u32::from('\x0c'),
                Some(other) => u32::from(other),
                // Cannot happen: a logical line never ends in an odd backslash.
                None => continue,
            }
        } else {
            u32::from(c)
        };
        let unpaired = || unpaired_error(line);
        match (high_surrogate.take(), unit) {
            (None, 0xD800..=0xDBFF) => high_surrogate = Some(unit),
            (Some(high), 0xDC00..=0xDFFF) => {
                let ch = char::from_u32(0x10000 + ((high - 0xD800) << 10) + (unit - 0xDC00)).ok_or_else(unpaired)?;
                out.push(ch);
            }
            (Some(_), _) => return Err(unpaired()),
            (None, _) => out.push(char::from_u32(unit).ok_or_else(unpaired)?),
        }
    }
    if high_surrogate.is_some() {
        return Err(unpaired_error(line));
    }
    Ok(out)
}

/// A `\\uXXXX` surrogate without its other half (Java keeps it; a Rust string cannot).
fn unpaired_error(line: usize) -> Error {
    Error::config(format!(
        "properties line {line}: a \\uXXXX escape is half of a UTF-16 surrogate pair without the other half"
    ))
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
    fn socket_buffers_and_dns_lookup() {
        // Unset: Java's defaults per role (128 KiB send; 64 KiB receive, 32 KiB for a producer).
        let c = ClientConfig::default().connection_config().unwrap();
        assert_eq!((c.send_buffer_size, c.receive_buffer_size), (Some(131072), Some(65536)));
        let p = ClientConfig::default()
            .with_buffer_defaults(DEFAULT_SEND_BUFFER_BYTES, PRODUCER_RECEIVE_BUFFER_BYTES)
            .connection_config()
            .unwrap();
        assert_eq!((p.send_buffer_size, p.receive_buffer_size), (Some(131072), Some(32768)));
        // Set: the role default does not override it; -1 is the OS default.
        let c = ClientConfig::from_properties([("send.buffer.bytes", "-1"), ("receive.buffer.bytes", "1000")]).unwrap();
        let cc = c
            .with_buffer_defaults(DEFAULT_SEND_BUFFER_BYTES, PRODUCER_RECEIVE_BUFFER_BYTES)
            .connection_config()
            .unwrap();
        assert_eq!((cc.send_buffer_size, cc.receive_buffer_size), (None, Some(1000)));
        for bad in ["0", "-2", "big", "2147483648"] {
            for key in ["send.buffer.bytes", "receive.buffer.bytes"] {
                let e = ClientConfig::from_properties([(key, bad)]).unwrap_err();
                assert!(e.is_config(), "{e}");
                let e = e.to_string();
                assert!(
                    e.contains(key) && e.contains("-1 (the OS default) or a positive size"),
                    "{e}"
                );
            }
        }

        assert_eq!(ClientConfig::default().client_dns_lookup, ClientDnsLookup::UseAllDnsIps);
        let c =
            ClientConfig::from_properties([("client.dns.lookup", "resolve_canonical_bootstrap_servers_only")]).unwrap();
        assert_eq!(
            c.client_dns_lookup,
            ClientDnsLookup::ResolveCanonicalBootstrapServersOnly
        );
        let c = ClientConfig::from_properties([("client.dns.lookup", "use_all_dns_ips")]).unwrap();
        assert_eq!(c.client_dns_lookup, ClientDnsLookup::UseAllDnsIps);
        let e = ClientConfig::from_properties([("client.dns.lookup", "default")])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("use_all_dns_ips or resolve_canonical_bootstrap_servers_only"),
            "{e}"
        );
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
        // Lines are counted across \r, \r\n and continuations; a logical line is named by
        // where it starts.
        let e = parse_properties("a=1\rb=2\r\n\n# c\nk=x\\\r\n  \\u00\n").unwrap_err();
        assert!(e.is_config() && e.to_string().contains("line 5"), "{e}");
        // \uXXXX surrogate pairs make one character; half a pair is an error (Java keeps it
        // in a String, which Rust cannot).
        assert_eq!(
            parse_properties("k=\\uD83D\\uDE00").unwrap(),
            [("k".into(), "\u{1F600}".into())]
        );
        for bad in ["k=\\uD83D", "k=\\uDE00x", "k=\\uD83Dx", "k=\\uD83D\\u0041"] {
            let e = parse_properties(bad).unwrap_err().to_string();
            assert!(e.contains("line 1") && e.contains("surrogate pair"), "{bad}: {e}");
        }
    }
}
