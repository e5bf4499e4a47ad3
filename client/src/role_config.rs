//! Producer and consumer settings: typed, defaults as the Java client 4.x, every field also
//! settable by its Java property name. Client-wide keys are delegated to [`ClientConfig`].

use std::sync::Arc;
use std::time::Duration;

use strom_protocol::{Compression, CompressionLevel};

use crate::config::{
    is_plain_serde, parse_bool_value as parse_bool, parse_ms, parse_ms_int, parse_num, unsupported, Applied,
    ClientConfig,
};
use crate::error::{Error, Result};
use crate::producer::{Partitioner, PartitionerClass};

/// `interceptor.classes`: blank (Java's empty list) is accepted, classes are refused.
fn check_interceptors(key: &str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Ok(());
    }
    Err(unsupported(
        key,
        "Java interceptor classes cannot run in Strom; do that work around Producer::send / \
         Consumer::poll in your own code, and remove the setting",
    ))
}

/// A `key.serializer`-style class other than Java's byte and string ones.
fn refuse_serde_class(key: &str, value: &str) -> Error {
    unsupported(
        key,
        &format!(
            "{:?} is a Java class, which cannot run in Strom: records are bytes, so serialize in your code \
             (Java's ByteArray, Bytes, ByteBuffer and String (de)serializers are accepted: that is what \
             Strom does)",
            value.trim()
        ),
    )
}

/// A `compression.*.level` value: Java's `Type.INT`, then [`checked_level`].
fn parse_level(codec: Compression, value: &str) -> Result<i32> {
    let key = codec.level_property().unwrap_or("compression level");
    let level = value.trim().parse::<i32>().map_err(|_| {
        Error::config(format!(
            "Invalid value {value} for configuration {key}: Not a number of type INT"
        ))
    })?;
    checked_level(codec, level).map(CompressionLevel::level)
}

/// Java's range and message (`Invalid value 10 for configuration compression.gzip.level:
/// Value must be between 1 and 9 or equal to -1`), then what this build's encoder can do:
/// a level is refused, never accepted and compressed at another one.
fn checked_level(codec: Compression, level: i32) -> Result<CompressionLevel> {
    CompressionLevel::new(codec, level).map_err(|e| {
        let key = codec.level_property().unwrap_or("compression level");
        Error::config(format!("Invalid value {level} for configuration {key}: {e}"))
    })
}

/// `acks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// Fire and forget (`0`): no response, no retries.
    None,
    /// The leader wrote it (`1`).
    Leader,
    /// Every in-sync replica wrote it (`all` / `-1`, default).
    #[default]
    All,
}

impl Acks {
    /// The wire value.
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// Producer settings (`ProducerConfig` in Java): Java property names through
/// [`ProducerConfig::set`] or a `.properties` text, typed through
/// [`ProducerConfig::builder`], or the fields themselves.
///
/// ```
/// use std::time::Duration;
/// use strom_client::{Acks, ProducerConfig};
///
/// let config = ProducerConfig::builder("localhost:9092")
///     .acks(Acks::All)
///     .linger(Duration::from_millis(10))
///     .set("compression.type", "zstd") // any Java producer or client property
///     .build()?;
/// assert_eq!(config.linger, Duration::from_millis(10));
/// # Ok::<(), strom_client::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ProducerConfig {
    /// Shared client settings.
    pub client: ClientConfig,
    /// `acks` (all).
    pub acks: Acks,
    /// `compression.type` (none).
    pub compression: Compression,
    /// `compression.gzip.level` (KIP-390): 1 to 9, or -1; unset (`None`) is Java's default,
    /// -1 (zlib's 6).
    pub compression_gzip_level: Option<i32>,
    /// `compression.lz4.level`: 1 to 17; unset is Java's default, 9 (the fast compressor;
    /// other levels use lz4's high-compression mode, as Java does).
    pub compression_lz4_level: Option<i32>,
    /// `compression.zstd.level`: -131072 to 22 with the `zstd-c` feature, only 1 without it
    /// (ruzstd); unset is Java's default 3 with `zstd-c`, ruzstd's level 1 without.
    pub compression_zstd_level: Option<i32>,
    /// `batch.size` in bytes (16384).
    pub batch_size: usize,
    /// `linger.ms` (5 ms, the Java 4.x default).
    pub linger: Duration,
    /// `buffer.memory` in bytes (32 MiB).
    pub buffer_memory: usize,
    /// `max.block.ms`: how long `send` waits for buffer space or metadata (60 s).
    pub max_block: Duration,
    /// `max.request.size` in bytes (1 MiB).
    pub max_request_size: usize,
    /// `delivery.timeout.ms`: bound from send to acknowledgement (120 s).
    pub delivery_timeout: Duration,
    /// `retries` (i32::MAX).
    pub retries: u32,
    /// `enable.idempotence` (true).
    pub enable_idempotence: bool,
    /// `max.in.flight.requests.per.connection` (5).
    pub max_in_flight: usize,
    /// `transactional.id` (none).
    pub transactional_id: Option<String>,
    /// `transaction.timeout.ms` (60 s).
    pub transaction_timeout: Duration,
    /// `partitioner.ignore.keys` (false): place keyed records as if they had no key.
    pub partitioner_ignore_keys: bool,
    /// `partitioner.class` (unset: Java's built-in partitioner); see [`PartitionerClass`].
    pub partitioner_class: PartitionerClass,
    /// `partitioner.adaptive.partitioning.enable` (true): the uniform sticky pick favours
    /// partitions with shorter queues (KIP-794).
    pub partitioner_adaptive: bool,
    /// `partitioner.availability.timeout.ms` (0, off): a partition whose leader has had
    /// batches ready for longer than this without taking them is not picked for records
    /// without a key. Only with adaptive partitioning, as in Java.
    pub partitioner_availability_timeout: Duration,
    /// A partitioner of the application's own (the Rust form of a custom
    /// `partitioner.class`): it places records without an explicit partition; where it
    /// returns `None`, the built-in rule applies. Cannot be combined with `partitioner.class`.
    pub partitioner: Option<Arc<dyn Partitioner>>,
    explicit_idempotence: bool,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            client: ClientConfig::default(),
            acks: Acks::All,
            compression: Compression::None,
            compression_gzip_level: None,
            compression_lz4_level: None,
            compression_zstd_level: None,
            batch_size: 16 * 1024,
            linger: Duration::from_millis(5),
            buffer_memory: 32 << 20,
            max_block: Duration::from_secs(60),
            max_request_size: 1 << 20,
            delivery_timeout: Duration::from_secs(120),
            retries: i32::MAX as u32,
            enable_idempotence: true,
            max_in_flight: 5,
            transactional_id: None,
            transaction_timeout: Duration::from_secs(60),
            partitioner_ignore_keys: false,
            partitioner_class: PartitionerClass::BuiltIn,
            partitioner_adaptive: true,
            partitioner_availability_timeout: Duration::ZERO,
            partitioner: None,
            explicit_idempotence: false,
        }
    }
}

impl ProducerConfig {
    /// Defaults over existing client settings.
    pub fn from_client(client: ClientConfig) -> Self {
        ProducerConfig {
            client,
            ..Default::default()
        }
    }

    /// Defaults with these bootstrap servers.
    pub fn new(bootstrap_servers: impl AsRef<str>) -> Self {
        ProducerConfig {
            client: ClientConfig::new(bootstrap_servers),
            ..Default::default()
        }
    }

    /// A builder over these bootstrap servers; [`ProducerConfigBuilder::build`] validates.
    pub fn builder(bootstrap_servers: impl AsRef<str>) -> ProducerConfigBuilder {
        ProducerConfigBuilder {
            config: ProducerConfig::new(bootstrap_servers),
            error: None,
        }
    }

    /// Sets one property by its Java name. A bad value is an error naming the key; so is a
    /// key that is no producer or client-wide property ([`Error::unknown_property_key`]).
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let applied = self.apply(key, value)?;
        applied.into_result(key)
    }

    /// Whether `key` is a producer or client-wide property (its value unchecked).
    pub fn is_known_key(key: &str) -> bool {
        !matches!(ProducerConfig::default().apply(key, ""), Ok(Applied::Unknown))
    }

    fn apply(&mut self, key: &str, value: &str) -> Result<Applied> {
        if let Some(t) = crate::librdkafka::translate(key, value) {
            return match t? {
                crate::librdkafka::Translation::Java(k, v) => self.apply(k, &v),
                crate::librdkafka::Translation::Fixed => Ok(Applied::Set),
            };
        }
        match key {
            "acks" => {
                self.acks = match value.trim() {
                    "all" | "-1" => Acks::All,
                    "1" => Acks::Leader,
                    "0" => Acks::None,
                    _ => return Err(Error::config(format!("acks={value:?}: expected all, -1, 1 or 0"))),
                }
            }
            "compression.type" => {
                self.compression = Compression::from_name(value.trim()).ok_or_else(|| {
                    Error::config(format!(
                        "compression.type={value:?}: expected none, gzip, snappy, lz4 or zstd"
                    ))
                })?
            }
            "batch.size" => self.batch_size = parse_num(key, value, "a size in bytes")?,
            "linger.ms" => self.linger = parse_ms(key, value)?,
            "buffer.memory" => self.buffer_memory = parse_num(key, value, "a size in bytes")?,
            "max.block.ms" => self.max_block = parse_ms(key, value)?,
            "max.request.size" => self.max_request_size = parse_num(key, value, "a size in bytes")?,
            "delivery.timeout.ms" => self.delivery_timeout = parse_ms_int(key, value, 0)?,
            "retries" => self.retries = parse_num(key, value, "a non-negative whole number")?,
            "enable.idempotence" => {
                self.enable_idempotence = parse_bool(key, value)?;
                self.explicit_idempotence = true;
            }
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight = parse_num(key, value, "a positive whole number")?
            }
            "transactional.id" => self.transactional_id = Some(value.to_owned()).filter(|v| !v.is_empty()),
            "transaction.timeout.ms" => self.transaction_timeout = parse_ms_int(key, value, 0)?,
            "partitioner.ignore.keys" => self.partitioner_ignore_keys = parse_bool(key, value)?,
            "partitioner.class" => self.partitioner_class = PartitionerClass::from_java_class(value)?,
            "partitioner.adaptive.partitioning.enable" => self.partitioner_adaptive = parse_bool(key, value)?,
            "partitioner.availability.timeout.ms" => self.partitioner_availability_timeout = parse_ms(key, value)?,
            "compression.gzip.level" => self.compression_gzip_level = Some(parse_level(Compression::Gzip, value)?),
            "compression.lz4.level" => self.compression_lz4_level = Some(parse_level(Compression::Lz4, value)?),
            "compression.zstd.level" => self.compression_zstd_level = Some(parse_level(Compression::Zstd, value)?),
            // Serializers are the application's types in Rust; Java's byte and string ones
            // do what Strom does anyway.
            "key.serializer" | "value.serializer" if is_plain_serde(value) => {}
            "key.serializer" | "value.serializer" => return Err(refuse_serde_class(key, value)),
            "interceptor.classes" => check_interceptors(key, value)?,
            "metadata.max.idle.ms" => {
                return Err(unsupported(
                    key,
                    "Strom's producer keeps (and refreshes) the metadata of every topic it has written for \
                     its whole life, with no idle expiry; remove it",
                ))
            }
            _ => return self.client.apply(key, value),
        }
        Ok(Applied::Set)
    }

    /// The level batches are compressed at: the one set for [`compression`](Self::compression)'s
    /// codec, checked (Java's range, and what this build's encoder can do); `None` when unset
    /// (the codec's default) or the codec has no levels. Levels of the other codecs are kept
    /// and unused, as in Java.
    pub fn compression_level(&self) -> Result<Option<CompressionLevel>> {
        let level = match self.compression {
            Compression::Gzip => self.compression_gzip_level,
            Compression::Lz4 => self.compression_lz4_level,
            Compression::Zstd => self.compression_zstd_level,
            _ => None,
        };
        level.map(|l| checked_level(self.compression, l)).transpose()
    }

    /// From Java property names; unknown keys and bad values are errors naming the key.
    pub fn from_properties<'a>(props: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut c = ProducerConfig::default();
        for (k, v) in props {
            c.set(k, v)?;
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks the combination, as Java's `ProducerConfig` does: idempotence needs
    /// `acks=all`, retries and at most 5 requests in flight. When idempotence was not set
    /// explicitly, a conflicting setting turns it off instead (Java 3.2+ behaviour); a
    /// transactional id always needs it.
    pub fn validate(&mut self) -> Result<()> {
        // Every level set, also for a codec not in use (Java validates all three).
        for (codec, level) in [
            (Compression::Gzip, self.compression_gzip_level),
            (Compression::Lz4, self.compression_lz4_level),
            (Compression::Zstd, self.compression_zstd_level),
        ] {
            if let Some(l) = level {
                checked_level(codec, l)?;
            }
        }
        if self.partitioner.is_some() && self.partitioner_class != PartitionerClass::BuiltIn {
            return Err(Error::config(format!(
                "partitioner.class is set ({:?}) and so is a custom partitioner: use one of them",
                self.partitioner_class
            )));
        }
        let conflict = if self.acks != Acks::All {
            Some("acks must be all")
        } else if self.max_in_flight > 5 {
            Some("max.in.flight.requests.per.connection must be at most 5")
        } else if self.retries == 0 {
            Some("retries must be above 0")
        } else {
            None
        };
        if let Some(why) = conflict {
            if self.transactional_id.is_some() {
                return Err(Error::config(format!("transactional.id needs idempotence: {why}")));
            }
            if self.explicit_idempotence && self.enable_idempotence {
                return Err(Error::config(format!("enable.idempotence=true: {why}")));
            }
            self.enable_idempotence = false;
        }
        if self.transactional_id.is_some() && !self.enable_idempotence {
            return Err(Error::config("transactional.id needs enable.idempotence=true"));
        }
        if self.max_in_flight == 0 {
            return Err(Error::config(
                "max.in.flight.requests.per.connection must be at least 1",
            ));
        }
        if self.delivery_timeout < self.linger + self.client.request_timeout {
            return Err(Error::config(format!(
                "delivery.timeout.ms ({:?}) must be at least linger.ms + request.timeout.ms ({:?})",
                self.delivery_timeout,
                self.linger + self.client.request_timeout
            )));
        }
        Ok(())
    }
}

/// `auto.offset.reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// The log start.
    Earliest,
    /// The log end (default).
    #[default]
    Latest,
    /// Fail with an error.
    None,
}

/// `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IsolationLevel {
    /// Everything up to the high watermark (default).
    #[default]
    ReadUncommitted,
    /// Committed transactional records only, up to the last stable offset.
    ReadCommitted,
}

/// `group.protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupProtocol {
    /// JoinGroup/SyncGroup (default).
    #[default]
    Classic,
    /// KIP-848 ConsumerGroupHeartbeat.
    Consumer,
}

/// Consumer settings (`ConsumerConfig` in Java): Java property names through
/// [`ConsumerConfig::set`], typed through [`ConsumerConfig::builder`], or the fields.
///
/// ```
/// use strom_client::{ConsumerConfig, IsolationLevel, OffsetReset};
///
/// let config = ConsumerConfig::builder("localhost:9092")
///     .group_id("billing")
///     .auto_offset_reset(OffsetReset::Earliest)
///     .isolation_level(IsolationLevel::ReadCommitted)
///     .set("max.poll.records", "100")
///     .build()?;
/// assert_eq!(config.group_id.as_deref(), Some("billing"));
/// # Ok::<(), strom_client::Error>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ConsumerConfig {
    /// Shared client settings.
    pub client: ClientConfig,
    /// `group.id` (none).
    pub group_id: Option<String>,
    /// `group.instance.id`: static membership (none).
    pub group_instance_id: Option<String>,
    /// `group.protocol` (classic).
    pub group_protocol: GroupProtocol,
    /// `partition.assignment.strategy` (range, cooperative-sticky: Java's default list).
    pub assignment_strategies: Vec<String>,
    /// `auto.offset.reset` (latest).
    pub auto_offset_reset: OffsetReset,
    /// `enable.auto.commit` (true).
    pub enable_auto_commit: bool,
    /// `auto.commit.interval.ms` (5 s).
    pub auto_commit_interval: Duration,
    /// `isolation.level` (read_uncommitted).
    pub isolation_level: IsolationLevel,
    /// `fetch.min.bytes` (1).
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes` (50 MiB).
    pub fetch_max_bytes: i32,
    /// `fetch.max.wait.ms` (500 ms).
    pub fetch_max_wait: Duration,
    /// `max.partition.fetch.bytes` (1 MiB).
    pub max_partition_fetch_bytes: i32,
    /// `max.poll.records` (500).
    pub max_poll_records: usize,
    /// `max.poll.interval.ms` (5 min).
    pub max_poll_interval: Duration,
    /// `session.timeout.ms` (45 s).
    pub session_timeout: Duration,
    /// `heartbeat.interval.ms` (3 s).
    pub heartbeat_interval: Duration,
    /// `check.crcs` (true).
    pub check_crcs: bool,
    /// `client.rack` for follower fetching (none).
    pub client_rack: Option<String>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            client: ClientConfig::default(),
            group_id: None,
            group_instance_id: None,
            group_protocol: GroupProtocol::Classic,
            assignment_strategies: vec!["range".into(), "cooperative-sticky".into()],
            auto_offset_reset: OffsetReset::Latest,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            isolation_level: IsolationLevel::ReadUncommitted,
            fetch_min_bytes: 1,
            fetch_max_bytes: 50 << 20,
            fetch_max_wait: Duration::from_millis(500),
            max_partition_fetch_bytes: 1 << 20,
            max_poll_records: 500,
            max_poll_interval: Duration::from_secs(300),
            session_timeout: Duration::from_secs(45),
            heartbeat_interval: Duration::from_secs(3),
            check_crcs: true,
            client_rack: None,
        }
    }
}

impl ConsumerConfig {
    /// Defaults over existing client settings.
    pub fn from_client(client: ClientConfig) -> Self {
        ConsumerConfig {
            client,
            ..Default::default()
        }
    }

    /// Defaults with these bootstrap servers.
    pub fn new(bootstrap_servers: impl AsRef<str>) -> Self {
        ConsumerConfig {
            client: ClientConfig::new(bootstrap_servers),
            ..Default::default()
        }
    }

    /// A builder over these bootstrap servers; [`ConsumerConfigBuilder::build`] validates.
    pub fn builder(bootstrap_servers: impl AsRef<str>) -> ConsumerConfigBuilder {
        ConsumerConfigBuilder {
            config: ConsumerConfig::new(bootstrap_servers),
            error: None,
        }
    }

    /// Sets one property by its Java name. A bad value is an error naming the key; so is a
    /// key that is no consumer or client-wide property ([`Error::unknown_property_key`]).
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        let applied = self.apply(key, value)?;
        applied.into_result(key)
    }

    /// Whether `key` is a consumer or client-wide property (its value unchecked).
    pub fn is_known_key(key: &str) -> bool {
        !matches!(ConsumerConfig::default().apply(key, ""), Ok(Applied::Unknown))
    }

    fn apply(&mut self, key: &str, value: &str) -> Result<Applied> {
        if let Some(t) = crate::librdkafka::translate(key, value) {
            return match t? {
                crate::librdkafka::Translation::Java(k, v) => self.apply(k, &v),
                crate::librdkafka::Translation::Fixed => Ok(Applied::Set),
            };
        }
        let some = |v: &str| Some(v.to_owned()).filter(|v| !v.is_empty());
        match key {
            "group.id" => self.group_id = some(value),
            "group.instance.id" => self.group_instance_id = some(value),
            "group.protocol" => {
                self.group_protocol = match value.trim().to_ascii_lowercase().as_str() {
                    "classic" => GroupProtocol::Classic,
                    "consumer" => GroupProtocol::Consumer,
                    _ => {
                        return Err(Error::config(format!(
                            "group.protocol={value:?}: expected classic or consumer"
                        )))
                    }
                }
            }
            "partition.assignment.strategy" => {
                let mut out = Vec::new();
                for s in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    // Java class names are accepted for pasted configs.
                    let name = match s.rsplit('.').next().unwrap_or(s) {
                        "RangeAssignor" | "range" => "range",
                        "RoundRobinAssignor" | "roundrobin" => "roundrobin",
                        "CooperativeStickyAssignor" | "cooperative-sticky" => "cooperative-sticky",
                        "StickyAssignor" | "sticky" => "sticky",
                        _ => {
                            return Err(Error::config(format!(
                                "partition.assignment.strategy: {s:?} is not range, roundrobin, sticky or cooperative-sticky"
                            )))
                        }
                    };
                    out.push(name.to_owned());
                }
                if out.is_empty() {
                    return Err(Error::config("partition.assignment.strategy is empty"));
                }
                self.assignment_strategies = out;
            }
            "auto.offset.reset" => {
                self.auto_offset_reset = match value.trim() {
                    "earliest" => OffsetReset::Earliest,
                    "latest" => OffsetReset::Latest,
                    "none" => OffsetReset::None,
                    _ => {
                        return Err(Error::config(format!(
                            "auto.offset.reset={value:?}: expected earliest, latest or none"
                        )))
                    }
                }
            }
            "enable.auto.commit" => self.enable_auto_commit = parse_bool(key, value)?,
            "auto.commit.interval.ms" => self.auto_commit_interval = parse_ms(key, value)?,
            "isolation.level" => {
                self.isolation_level = match value.trim() {
                    "read_uncommitted" => IsolationLevel::ReadUncommitted,
                    "read_committed" => IsolationLevel::ReadCommitted,
                    _ => {
                        return Err(Error::config(format!(
                            "isolation.level={value:?}: expected read_committed or read_uncommitted"
                        )))
                    }
                }
            }
            "fetch.min.bytes" => self.fetch_min_bytes = parse_num(key, value, "a size in bytes")?,
            "fetch.max.bytes" => self.fetch_max_bytes = parse_num(key, value, "a size in bytes")?,
            "fetch.max.wait.ms" => self.fetch_max_wait = parse_ms(key, value)?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = parse_num(key, value, "a size in bytes")?,
            "max.poll.records" => self.max_poll_records = parse_num(key, value, "a positive whole number")?,
            "max.poll.interval.ms" => self.max_poll_interval = parse_ms_int(key, value, 1)?,
            "session.timeout.ms" => self.session_timeout = parse_ms_int(key, value, 0)?,
            "heartbeat.interval.ms" => self.heartbeat_interval = parse_ms_int(key, value, 0)?,
            "check.crcs" => self.check_crcs = parse_bool(key, value)?,
            "client.rack" => self.client_rack = some(value),
            "key.deserializer" | "value.deserializer" if is_plain_serde(value) => {}
            "key.deserializer" | "value.deserializer" => return Err(refuse_serde_class(key, value)),
            "interceptor.classes" => check_interceptors(key, value)?,
            // Strom's fixed behaviour is Java's default here: accepted when it says so.
            "exclude.internal.topics" => {
                if !parse_bool(key, value)? {
                    return Err(unsupported(
                        key,
                        "pattern subscriptions always leave internal topics out in Strom (Java's default); \
                         subscribe to an internal topic by its name, and remove the setting",
                    ));
                }
            }
            "allow.auto.create.topics" => {
                if parse_bool(key, value)? {
                    return Err(unsupported(
                        key,
                        "Strom's consumer never asks the broker to create the topics it subscribes to; create \
                         them first (Admin::create_topics, `strom topics create`) and set it to false or \
                         remove it",
                    ));
                }
            }
            _ => return self.client.apply(key, value),
        }
        Ok(Applied::Set)
    }

    /// From Java property names; unknown keys and bad values are errors naming the key.
    pub fn from_properties<'a>(props: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut c = ConsumerConfig::default();
        for (k, v) in props {
            c.set(k, v)?;
        }
        c.validate()?;
        Ok(c)
    }

    /// Checks the combination, as Java's `ConsumerConfig` does.
    pub fn validate(&self) -> Result<()> {
        if self.heartbeat_interval >= self.session_timeout {
            return Err(Error::config(format!(
                "heartbeat.interval.ms ({:?}) must be lower than session.timeout.ms ({:?})",
                self.heartbeat_interval, self.session_timeout
            )));
        }
        if self.max_poll_records == 0 {
            return Err(Error::config("max.poll.records must be at least 1"));
        }
        if self.group_instance_id.is_some() && self.group_id.is_none() {
            return Err(Error::config("group.instance.id needs group.id"));
        }
        Ok(())
    }
}

/// A builder keeps the first bad setting for `build` to report.
fn keep_first(first: &mut Option<Error>, result: Result<()>) {
    if let (None, Err(e)) = (&*first, result) {
        *first = Some(e);
    }
}

/// Builds a [`ProducerConfig`]: typed setters for the usual settings, [`set`](Self::set)
/// for any Java property. The first bad value is reported by [`build`](Self::build), which
/// also checks the combination ([`ProducerConfig::validate`]).
#[derive(Debug, Clone)]
#[must_use]
pub struct ProducerConfigBuilder {
    config: ProducerConfig,
    error: Option<Error>,
}

impl ProducerConfigBuilder {
    /// Any producer or client property by its Java name (`linger.ms`, `sasl.mechanism`...).
    pub fn set(mut self, key: &str, value: &str) -> Self {
        keep_first(&mut self.error, self.config.set(key, value));
        self
    }

    /// `acks`.
    pub fn acks(mut self, acks: Acks) -> Self {
        self.config.acks = acks;
        self
    }

    /// `linger.ms`.
    pub fn linger(self, linger: Duration) -> Self {
        self.set("linger.ms", &linger.as_millis().to_string())
    }

    /// `batch.size` in bytes.
    pub fn batch_size(self, bytes: usize) -> Self {
        self.set("batch.size", &bytes.to_string())
    }

    /// `compression.type`.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.config.compression = compression;
        self
    }

    /// `enable.idempotence` (explicitly: a conflicting setting is then an error).
    pub fn enable_idempotence(self, on: bool) -> Self {
        self.set("enable.idempotence", if on { "true" } else { "false" })
    }

    /// `transactional.id` (for a [`TransactionalProducer`](crate::TransactionalProducer)).
    pub fn transactional_id(self, id: impl Into<String>) -> Self {
        let id: String = id.into();
        self.set("transactional.id", &id)
    }

    /// `delivery.timeout.ms`.
    pub fn delivery_timeout(self, timeout: Duration) -> Self {
        self.set("delivery.timeout.ms", &timeout.as_millis().to_string())
    }

    /// `client.id`.
    pub fn client_id(self, id: &str) -> Self {
        self.set("client.id", id)
    }

    /// A partitioner of the application's own ([`ProducerConfig::partitioner`]).
    pub fn partitioner(mut self, partitioner: Arc<dyn Partitioner>) -> Self {
        self.config.partitioner = Some(partitioner);
        self
    }

    /// The configuration, validated.
    pub fn build(self) -> Result<ProducerConfig> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let mut config = self.config;
        config.validate()?;
        Ok(config)
    }
}

/// Builds a [`ConsumerConfig`]: typed setters for the usual settings, [`set`](Self::set)
/// for any Java property. The first bad value is reported by [`build`](Self::build), which
/// also checks the combination ([`ConsumerConfig::validate`]).
#[derive(Debug, Clone)]
#[must_use]
pub struct ConsumerConfigBuilder {
    config: ConsumerConfig,
    error: Option<Error>,
}

impl ConsumerConfigBuilder {
    /// Any consumer or client property by its Java name.
    pub fn set(mut self, key: &str, value: &str) -> Self {
        keep_first(&mut self.error, self.config.set(key, value));
        self
    }

    /// `group.id`.
    pub fn group_id(self, group: &str) -> Self {
        self.set("group.id", group)
    }

    /// `auto.offset.reset`.
    pub fn auto_offset_reset(self, reset: OffsetReset) -> Self {
        self.set(
            "auto.offset.reset",
            match reset {
                OffsetReset::Earliest => "earliest",
                OffsetReset::Latest => "latest",
                OffsetReset::None => "none",
            },
        )
    }

    /// `isolation.level`.
    pub fn isolation_level(self, level: IsolationLevel) -> Self {
        self.set(
            "isolation.level",
            match level {
                IsolationLevel::ReadUncommitted => "read_uncommitted",
                IsolationLevel::ReadCommitted => "read_committed",
            },
        )
    }

    /// `enable.auto.commit`.
    pub fn enable_auto_commit(self, on: bool) -> Self {
        self.set("enable.auto.commit", if on { "true" } else { "false" })
    }

    /// `group.protocol`.
    pub fn group_protocol(self, protocol: GroupProtocol) -> Self {
        self.set(
            "group.protocol",
            match protocol {
                GroupProtocol::Classic => "classic",
                GroupProtocol::Consumer => "consumer",
            },
        )
    }

    /// `client.id`.
    pub fn client_id(self, id: &str) -> Self {
        self.set("client.id", id)
    }

    /// The configuration, validated.
    pub fn build(self) -> Result<ConsumerConfig> {
        if let Some(e) = self.error {
            return Err(e);
        }
        self.config.validate()?;
        Ok(self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_defaults_and_java_rules() {
        let c = ProducerConfig::from_properties([("bootstrap.servers", "h:1"), ("linger.ms", "20")]).unwrap();
        assert!(c.enable_idempotence && c.acks == Acks::All && c.batch_size == 16384);
        assert_eq!(c.linger, Duration::from_millis(20));
        // acks=1 without an explicit enable.idempotence turns idempotence off (Java 3.2+).
        let c = ProducerConfig::from_properties([("acks", "1")]).unwrap();
        assert!(!c.enable_idempotence);
        let e = ProducerConfig::from_properties([("acks", "1"), ("enable.idempotence", "true")]).unwrap_err();
        assert!(e.to_string().contains("acks must be all"), "{e}");
        let e = ProducerConfig::from_properties([
            ("transactional.id", "t"),
            ("max.in.flight.requests.per.connection", "6"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("transactional.id"), "{e}");
        let e = ProducerConfig::from_properties([("compression.type", "brotli")]).unwrap_err();
        assert!(e.to_string().contains("zstd"), "{e}");
        let e = ProducerConfig::from_properties([("delivery.timeout.ms", "1000")]).unwrap_err();
        assert!(e.to_string().contains("delivery.timeout.ms"), "{e}");
        let e = ProducerConfig::from_properties([("group.id", "g")]).unwrap_err();
        assert_eq!(e.unknown_property_key(), Some("group.id"), "{e}");
        assert!(e.to_string().contains("unknown property \"group.id\""), "{e}");
        assert!(ProducerConfig::is_known_key("linger.ms") && ProducerConfig::is_known_key("client.id"));
        assert!(!ProducerConfig::is_known_key("group.id") && !ProducerConfig::is_known_key("linger.msx"));
    }

    /// Every Java key that used to be accepted without effect is now refused, saying why and
    /// what to do, or accepted only with the value that describes what Strom does.
    #[test]
    fn keys_without_effect_are_refused() {
        let refused = |r: Result<()>, key: &str, hint: &str| {
            let e = r.unwrap_err();
            assert!(e.is_config(), "{key}: {e}");
            let e = e.to_string();
            assert!(
                e.contains(&format!("{key} is not supported")) && e.contains(hint),
                "{e}"
            );
        };
        let mut p = ProducerConfig::default();
        let mut c = ConsumerConfig::default();
        refused(
            p.set("interceptor.classes", "com.example.Audit"),
            "interceptor.classes",
            "Producer::send",
        );
        refused(
            c.set("interceptor.classes", "a.B, c.D"),
            "interceptor.classes",
            "Consumer::poll",
        );
        p.set("interceptor.classes", "").unwrap();
        c.set("interceptor.classes", " ").unwrap();
        refused(
            p.set("value.serializer", "io.confluent.kafka.serializers.KafkaAvroSerializer"),
            "value.serializer",
            "serialize in your code",
        );
        refused(
            c.set("key.deserializer", "com.example.Json"),
            "key.deserializer",
            "Java class",
        );
        p.set(
            "key.serializer",
            "org.apache.kafka.common.serialization.StringSerializer",
        )
        .unwrap();
        c.set(
            "value.deserializer",
            "org.apache.kafka.common.serialization.ByteArrayDeserializer",
        )
        .unwrap();
        refused(
            p.set("metadata.max.idle.ms", "300000"),
            "metadata.max.idle.ms",
            "no idle expiry",
        );
        c.set("exclude.internal.topics", "true").unwrap();
        refused(
            c.set("exclude.internal.topics", "false"),
            "exclude.internal.topics",
            "by its name",
        );
        c.set("allow.auto.create.topics", "false").unwrap();
        refused(
            c.set("allow.auto.create.topics", "true"),
            "allow.auto.create.topics",
            "create",
        );
        assert!(c
            .set("allow.auto.create.topics", "maybe")
            .unwrap_err()
            .to_string()
            .contains("true or false"));
        for (key, value, hint) in [
            (
                "socket.connection.setup.timeout.max.ms",
                "30000",
                "socket.connection.setup.timeout.ms",
            ),
            ("metrics.recording.level", "INFO", "one level"),
            ("auto.include.jmx.reporter", "true", "JMX"),
            ("enable.metrics.push", "true", "KIP-714"),
        ] {
            // Client-wide: refused through every role.
            refused(p.set(key, value), key, hint);
            refused(c.set(key, value), key, hint);
            assert!(ProducerConfig::is_known_key(key) && ConsumerConfig::is_known_key(key));
        }
        p.set("metrics.sample.window.ms", "10000").unwrap();
        p.set("metrics.num.samples", "3").unwrap();
        assert_eq!(
            (p.client.metrics_sample_window, p.client.metrics_num_samples),
            (std::time::Duration::from_secs(10), 3)
        );
        let e = p.set("metrics.num.samples", "0").unwrap_err();
        assert!(e.is_config() && e.to_string().contains("at least 1"), "{e}");
        p.set("retry.backoff.max.ms", "2000").unwrap();
        assert_eq!(p.client.retry_backoff_max, std::time::Duration::from_secs(2));
        p.set("auto.include.jmx.reporter", "false").unwrap();
        c.set("enable.metrics.push", "false").unwrap();
    }

    /// docs/CONFIG.md names only keys Strom knows (so its table of what each key does
    /// cannot list a key that is in fact an unknown property).
    #[test]
    fn config_md_lists_known_keys() {
        let doc = include_str!("../../docs/CONFIG.md");
        let mut keys = 0;
        // The schema registry's section is strom-registry's (its config tests check it).
        let client_part = doc.lines().take_while(|l| !l.starts_with("## Schema registry"));
        for row in client_part.filter(|l| l.starts_with("| `")) {
            let first_cell = row.split('|').nth(1).unwrap_or_default();
            for key in first_cell.split('`').skip(1).step_by(2) {
                keys += 1;
                assert!(
                    ClientConfig::is_known_key(key)
                        || ProducerConfig::is_known_key(key)
                        || ConsumerConfig::is_known_key(key),
                    "docs/CONFIG.md lists {key:?}, which Strom does not know"
                );
            }
        }
        assert!(keys > 120, "only {keys} keys found in docs/CONFIG.md");
    }

    #[test]
    fn consumer_defaults_and_java_rules() {
        let c = ConsumerConfig::from_properties([
            ("group.id", "g"),
            ("isolation.level", "read_committed"),
            (
                "partition.assignment.strategy",
                "org.apache.kafka.clients.consumer.CooperativeStickyAssignor",
            ),
            ("request.timeout.ms", "1000"),
        ])
        .unwrap();
        assert_eq!(c.isolation_level, IsolationLevel::ReadCommitted);
        assert_eq!(c.assignment_strategies, ["cooperative-sticky"]);
        assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
        assert_eq!(c.client.request_timeout, Duration::from_secs(1));
        let e = ConsumerConfig::from_properties([("heartbeat.interval.ms", "50000")]).unwrap_err();
        assert!(e.to_string().contains("session.timeout.ms"), "{e}");
        // librdkafka's smallest/largest are taken (src/librdkafka.rs); anything else is not.
        let e = ConsumerConfig::from_properties([("auto.offset.reset", "oldest")]).unwrap_err();
        assert!(e.to_string().contains("earliest, latest or none"), "{e}");
        let e = ConsumerConfig::from_properties([("acks", "all")]).unwrap_err();
        assert_eq!(e.unknown_property_key(), Some("acks"), "{e}");
        assert!(ConsumerConfig::is_known_key("group.id") && !ConsumerConfig::is_known_key("acks"));
    }

    #[test]
    fn builders_report_the_first_bad_value_and_validate() {
        let e = ProducerConfig::builder("h:9092")
            .set("linger.ms", "soon")
            .set("acks", "2")
            .build()
            .unwrap_err();
        assert!(e.is_config() && e.to_string().contains("linger.ms"), "{e}");
        // The combination is checked: an explicit idempotence with acks=1 is refused,
        // never silently turned off.
        let e = ProducerConfig::builder("h:9092")
            .enable_idempotence(true)
            .acks(Acks::Leader)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("acks must be all"), "{e}");
        #[derive(Debug)]
        struct Zero;
        impl Partitioner for Zero {
            fn partition(&self, _: &str, _: Option<&[u8]>, _: Option<&[u8]>, _: u32) -> Option<u32> {
                Some(0)
            }
        }
        let e = ProducerConfig::builder("h:9092")
            .set(
                "partitioner.class",
                "org.apache.kafka.clients.producer.RoundRobinPartitioner",
            )
            .partitioner(Arc::new(Zero))
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("partitioner.class"), "{e}");
        let p = ProducerConfig::builder("h:9092")
            .partitioner(Arc::new(Zero))
            .transactional_id("t")
            .build()
            .unwrap();
        assert!(p.partitioner.is_some() && p.transactional_id.as_deref() == Some("t"));
        let c = ConsumerConfig::builder("h:9092")
            .group_id("g")
            .group_protocol(GroupProtocol::Consumer)
            .enable_auto_commit(false)
            .build()
            .unwrap();
        assert_eq!(
            (c.group_protocol, c.enable_auto_commit),
            (GroupProtocol::Consumer, false)
        );
        assert!(ConsumerConfig::builder("h:9092")
            .set("max.poll.records", "-1")
            .build()
            .is_err());
    }
}
