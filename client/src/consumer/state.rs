//! What the consumer keeps: its subscription, per-partition fetch state and counters.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use tokio::time::Instant;

use crate::client::Client;
use crate::role_config::OffsetReset;
use crate::topic_partition::TopicPartition;

/// What the consumer reads: nothing yet, fixed partitions, or a group subscription.
#[derive(Debug, Clone)]
pub(crate) enum Subscription {
    None,
    Assigned,
    Topics(BTreeSet<String>),
    Pattern(regex::Regex),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct PartitionState {
    /// Next offset to return; `None` until resolved (committed offset or reset).
    pub(crate) position: Option<i64>,
    /// Leader epoch of the last record returned.
    pub(crate) epoch: Option<i32>,
    pub(crate) paused: bool,
    /// An explicit reset asked for (seek_to_beginning/end) or forced by out-of-range.
    pub(crate) reset: Option<OffsetReset>,
    pub(crate) high_watermark: Option<i64>,
    pub(crate) last_stable_offset: Option<i64>,
    pub(crate) log_start_offset: Option<i64>,
    /// KIP-392: the replica the leader told us to fetch from, until this instant.
    pub(crate) preferred_replica: Option<(i32, Instant)>,
}

/// Counters of a consumer, named after Java's/Flink's consumer metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerMetrics {
    /// Records returned by poll (`records-consumed-total`).
    pub records_consumed: u64,
    /// Fetch responses handled (`fetch-total`).
    pub fetches: u64,
    /// Record bytes received in fetch responses (`bytes-consumed-total`).
    pub bytes_fetched: u64,
    /// Successful commits (`commitsSucceeded` in Flink).
    pub commits_succeeded: u64,
    /// Failed commits (`commitsFailed` in Flink).
    pub commits_failed: u64,
    /// Rebalances this member went through (assignments received).
    pub rebalances: u64,
    /// Bytes of fetched data waiting to be returned by poll.
    pub buffered_bytes: u64,
    /// Fetches sent as incremental fetch-session requests (KIP-227).
    pub incremental_fetches: u64,
    /// Fetch sessions the broker lost or refused (the next request was full again).
    pub fetch_session_resets: u64,
    /// Log truncations detected (KIP-320 diverging epochs) that moved a position back.
    pub truncations_detected: u64,
}

#[derive(Debug)]
pub(crate) struct SharedCounters {
    pub(crate) commits_succeeded: std::sync::atomic::AtomicU64,
    pub(crate) commits_failed: std::sync::atomic::AtomicU64,
    pub(crate) committed: Mutex<BTreeMap<TopicPartition, i64>>,
    pub(crate) coordinator: crate::metrics::CoordinatorInstruments,
}

impl SharedCounters {
    pub(super) fn new(client: &Client) -> Self {
        SharedCounters {
            commits_succeeded: Default::default(),
            commits_failed: Default::default(),
            committed: Default::default(),
            coordinator: crate::metrics::CoordinatorInstruments::new(client.metric_registry()),
        }
    }
}
