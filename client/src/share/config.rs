//! A share consumer's settings under Java's names (`ShareConsumerConfig`): the client's,
//! the group, and how records are acknowledged and acquired.

use std::time::Duration;

use crate::config::{parse_bool_value, parse_ms, parse_num, unsupported, Applied, ClientConfig};
use crate::error::{Error, Result};

/// `share.acknowledgement.mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AcknowledgementMode {
    /// Records a poll returned are accepted by the next poll, `commit_sync` or `close`.
    #[default]
    Implicit,
    /// Every record must be acknowledged with [`ShareConsumer::acknowledge`](super::ShareConsumer::acknowledge) before the
    /// next poll.
    Explicit,
}

/// `share.acquire.mode` (KIP-1206): how the broker acquires records for a share fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ShareAcquireMode {
    /// Whole batches as written, so a poll may hold more than `max.poll.records` (the rest
    /// is buffered for the next polls).
    #[default]
    BatchOptimized,
    /// At most `max.poll.records` records per fetch, so the acquisition locks start only for
    /// what the application will be handed (needs a broker with ShareFetch v2, Kafka 4.2+).
    RecordLimit,
}

impl ShareAcquireMode {
    pub(super) fn wire(self) -> i8 {
        match self {
            ShareAcquireMode::BatchOptimized => 0,
            ShareAcquireMode::RecordLimit => 1,
        }
    }
}

/// A share consumer's settings: Java's names (`group.id`, `share.acknowledgement.mode`,
/// `max.poll.records`, `fetch.*`, `max.partition.fetch.bytes`) and the client-wide ones.
/// Consumer settings that do not apply to share groups are refused, naming what to use.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ShareConsumerConfig {
    /// Shared client settings.
    pub client: ClientConfig,
    /// `group.id`: the share group.
    pub group_id: String,
    /// `share.acknowledgement.mode` (implicit).
    pub acknowledgement_mode: AcknowledgementMode,
    /// `max.poll.records` (500): at most this many records per poll, and per share fetch.
    pub max_poll_records: usize,
    /// `share.acquire.mode` (batch_optimized).
    pub acquire_mode: ShareAcquireMode,
    /// `fetch.max.wait.ms` (500 ms).
    pub fetch_max_wait: Duration,
    /// `fetch.min.bytes` (1).
    pub fetch_min_bytes: i32,
    /// `fetch.max.bytes` (50 MiB).
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes` (1 MiB).
    pub max_partition_fetch_bytes: i32,
    /// `check.crcs` (true).
    pub check_crcs: bool,
    /// `client.rack`.
    pub client_rack: Option<String>,
}

impl ShareConsumerConfig {
    /// Defaults for `group_id` on these bootstrap servers.
    pub fn new(bootstrap_servers: impl AsRef<str>, group_id: impl Into<String>) -> Self {
        ShareConsumerConfig::from_client(ClientConfig::new(bootstrap_servers), group_id)
    }

    /// Defaults for `group_id` over existing client settings.
    pub fn from_client(client: ClientConfig, group_id: impl Into<String>) -> Self {
        ShareConsumerConfig {
            client,
            group_id: group_id.into(),
            acknowledgement_mode: AcknowledgementMode::Implicit,
            max_poll_records: 500,
            acquire_mode: ShareAcquireMode::BatchOptimized,
            fetch_max_wait: Duration::from_millis(500),
            fetch_min_bytes: 1,
            fetch_max_bytes: 52_428_800,
            max_partition_fetch_bytes: 1_048_576,
            check_crcs: true,
            client_rack: None,
        }
    }

    /// Sets one property by its Java name; an unknown key, a consumer key that share
    /// groups do not use, or a bad value is an error naming the key.
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        self.apply(key, value)?.into_result(key)
    }

    /// Whether `key` is a share consumer or client-wide property.
    pub fn is_known_key(key: &str) -> bool {
        !matches!(
            ShareConsumerConfig::new("x:1", "g").apply(key, ""),
            Ok(Applied::Unknown)
        )
    }

    pub(super) fn apply(&mut self, key: &str, value: &str) -> Result<Applied> {
        let server_side = |what: &str| {
            Err(unsupported(
                key,
                &format!("share groups {what}; set it on the group (`strom configs alter --group G --set ...`) or the broker"),
            ))
        };
        match key {
            "group.id" => {
                if value.trim().is_empty() {
                    return Err(Error::config(
                        "group.id is empty: a share consumer needs its share group",
                    ));
                }
                self.group_id = value.trim().to_owned();
            }
            "share.acknowledgement.mode" => {
                self.acknowledgement_mode = match value.trim().to_ascii_lowercase().as_str() {
                    "implicit" => AcknowledgementMode::Implicit,
                    "explicit" => AcknowledgementMode::Explicit,
                    _ => {
                        return Err(Error::config(format!(
                            "share.acknowledgement.mode={value:?}: expected implicit or explicit"
                        )))
                    }
                }
            }
            "share.acquire.mode" => {
                self.acquire_mode = match value.trim().to_ascii_lowercase().as_str() {
                    "batch_optimized" => ShareAcquireMode::BatchOptimized,
                    "record_limit" => ShareAcquireMode::RecordLimit,
                    _ => {
                        return Err(Error::config(format!(
                            "share.acquire.mode={value:?}: expected batch_optimized or record_limit"
                        )))
                    }
                }
            }
            "max.poll.records" => {
                self.max_poll_records = parse_num(key, value, "a positive whole number")?;
                if self.max_poll_records == 0 || i32::try_from(self.max_poll_records).is_err() {
                    return Err(Error::config(format!(
                        "max.poll.records={value}: expected 1..=2147483647"
                    )));
                }
            }
            "fetch.max.wait.ms" => self.fetch_max_wait = parse_ms(key, value)?,
            "fetch.min.bytes" => self.fetch_min_bytes = parse_num(key, value, "a size in bytes")?,
            "fetch.max.bytes" => self.fetch_max_bytes = parse_num(key, value, "a size in bytes")?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = parse_num(key, value, "a size in bytes")?,
            "check.crcs" => self.check_crcs = parse_bool_value(key, value)?,
            "client.rack" => self.client_rack = Some(value.trim().to_owned()).filter(|v| !v.is_empty()),
            "key.deserializer" | "value.deserializer"
                if value.ends_with("ByteArrayDeserializer") || value.ends_with("StringDeserializer") => {}
            "auto.offset.reset" => return server_side("start where the group config share.auto.offset.reset says"),
            "isolation.level" => return server_side("read as the group config share.isolation.level says"),
            "session.timeout.ms" | "heartbeat.interval.ms" => {
                return server_side(
                    "time out members by group.share.session.timeout.ms and group.share.heartbeat.interval.ms",
                )
            }
            "enable.auto.commit" | "auto.commit.interval.ms" => return Err(unsupported(
                key,
                "a share consumer acknowledges records instead of committing offsets: see share.acknowledgement.mode",
            )),
            "group.instance.id" | "group.protocol" | "group.remote.assignor" | "partition.assignment.strategy" => {
                return Err(unsupported(
                    key,
                    "share groups have no static members and assign partitions on the broker",
                ))
            }
            "max.poll.interval.ms" => return Err(unsupported(
                key,
                "records a member holds too long come back after group.share.record.lock.duration.ms (a group config)",
            )),
            _ => return self.client.apply(key, value),
        }
        Ok(Applied::Set)
    }
}
