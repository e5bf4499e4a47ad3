//! Reading one topic's partitions: Fetch per leader, batches decoded lazily, positions
//! advanced per batch (control batches and compacted gaps never stall a reader), and
//! `read_committed` honoured.
//!
//! read_committed (KIP-98, Java's `CompletedFetch`): the broker returns data only up to the
//! last stable offset plus, per partition, the aborted transactions overlapping the fetched
//! range (producer id + first offset). A producer's records are dropped from its first
//! aborted offset until its ABORT marker; control batches never reach the caller.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use strom_protocol::message_traits::StrBytes;
use strom_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_protocol::messages::{ApiKey, FetchRequest, TopicName};
use strom_protocol::record_batch::{Batches, ControlRecordType, DecodeOptions, Record};
use strom_protocol::ErrorCode;

use crate::admin::{Admin, OffsetSpec};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::role_config::OffsetReset;

/// One partition's read state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionPosition {
    /// Next offset to read.
    pub position: i64,
    /// Stop here (exclusive), if bounded.
    pub end: Option<i64>,
}

/// Reads records of one topic from given positions.
#[derive(Debug)]
pub struct TopicReader {
    client: Client,
    admin: Admin,
    topic: String,
    positions: BTreeMap<i32, PartitionPosition>,
    read_committed: bool,
    reset: OffsetReset,
    opts: DecodeOptions,
    max_wait: Duration,
    partition_max_bytes: i32,
}

impl TopicReader {
    /// A reader of `topic` from `start` (partition → offset).
    pub fn new(client: Client, topic: impl Into<String>, start: BTreeMap<i32, i64>, read_committed: bool) -> Self {
        TopicReader {
            admin: Admin::new(client.clone()),
            client,
            topic: topic.into(),
            positions: start
                .into_iter()
                .map(|(p, o)| (p, PartitionPosition { position: o, end: None }))
                .collect(),
            read_committed,
            reset: OffsetReset::Earliest,
            opts: DecodeOptions::default(),
            max_wait: Duration::from_millis(500),
            partition_max_bytes: 1 << 20,
        }
    }

    /// A reader of every partition of `topic` from its start, bounded by the current end
    /// (the last stable offset under read_committed).
    pub async fn to_end(client: Client, topic: &str, read_committed: bool) -> Result<Self> {
        let admin = Admin::new(client.clone());
        let start = admin.list_offsets(topic, &[], OffsetSpec::Earliest).await?;
        let end = admin
            .list_offsets_isolated(topic, &[], OffsetSpec::Latest, read_committed)
            .await?;
        let mut r = TopicReader::new(
            client,
            topic,
            start.iter().map(|o| (o.partition, o.offset)).collect(),
            read_committed,
        );
        for o in end {
            r.set_end(o.partition, o.offset);
        }
        Ok(r)
    }

    /// What to do on OFFSET_OUT_OF_RANGE (`auto.offset.reset`; earliest by default here).
    pub fn with_reset(mut self, reset: OffsetReset) -> Self {
        self.reset = reset;
        self
    }

    /// Decode options (`check.crcs`, decompression cap).
    pub fn with_decode_options(mut self, opts: DecodeOptions) -> Self {
        self.opts = opts;
        self
    }

    /// Bounds a partition: reading stops before `end`.
    pub fn set_end(&mut self, partition: i32, end: i64) {
        if let Some(p) = self.positions.get_mut(&partition) {
            p.end = Some(end);
        }
    }

    /// Positions of all partitions.
    pub fn positions(&self) -> &BTreeMap<i32, PartitionPosition> {
        &self.positions
    }

    /// Every bounded partition reached its end (false while any is unbounded).
    pub fn at_end(&self) -> bool {
        self.positions.values().all(|p| p.end.is_some_and(|e| p.position >= e))
    }

    /// One fetch round over every partition not at its end; returns records in order per
    /// partition, (partition, record).
    pub async fn poll(&mut self) -> Result<Vec<(i32, Record)>> {
        let info = self.client.topic(&self.topic).await?;
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for p in &info.partitions {
            if let Some(s) = self.positions.get(&p.partition) {
                if s.end.is_none_or(|e| s.position < e) {
                    by_leader.entry(p.leader).or_default().push(p.partition);
                }
            }
        }
        let mut out = Vec::new();
        for (leader, parts) in by_leader {
            if leader < 0 {
                self.client.invalidate_topic(&self.topic);
                tokio::time::sleep(self.client.config().retry_backoff).await;
                continue;
            }
            let conn = match self.client.broker(leader).await {
                Ok(c) => c,
                Err(e) if e.is_retriable() => {
                    self.client.invalidate_topic(&self.topic);
                    tokio::time::sleep(self.client.config().retry_backoff).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let v = conn.versions().version(ApiKey::Fetch)?;
            let mut ft = FetchTopic::default().with_partitions(
                parts
                    .iter()
                    .map(|p| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(self.positions[p].position)
                            .with_partition_max_bytes(self.partition_max_bytes)
                            .with_current_leader_epoch(-1)
                    })
                    .collect(),
            );
            // Fetch v13+ names topics by id (KIP-516).
            ft = if v >= 13 {
                ft.with_topic_id(info.topic_id)
            } else {
                ft.with_topic(TopicName(StrBytes::from_string(self.topic.clone())))
            };
            let req = FetchRequest::default()
                .with_max_wait_ms(i32::try_from(self.max_wait.as_millis()).unwrap_or(500))
                .with_min_bytes(1)
                .with_max_bytes(50 << 20)
                .with_isolation_level(i8::from(self.read_committed))
                .with_session_epoch(-1)
                .with_topics(vec![ft]);
            let resp = match conn.send(&req).await {
                Ok(r) => r,
                Err(e) if e.is_retriable() => {
                    self.client.invalidate_topic(&self.topic);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let code = ErrorCode::from(resp.error_code);
            if !code.is_ok() {
                return Err(Error::kafka(code).with_context(format!("Fetch from broker {leader}")));
            }
            for t in resp.responses {
                for pd in t.partitions {
                    self.partition_data(pd, &mut out).await?;
                }
            }
        }
        Ok(out)
    }

    async fn partition_data(
        &mut self,
        pd: strom_protocol::messages::fetch_response::PartitionData,
        out: &mut Vec<(i32, Record)>,
    ) -> Result<()> {
        let p = pd.partition_index;
        let topic = self.topic.clone();
        let Some(state) = self.positions.get_mut(&p) else {
            return Ok(());
        };
        match ErrorCode::from(pd.error_code) {
            ErrorCode::None => {}
            ErrorCode::OffsetOutOfRange => {
                let spec = match self.reset {
                    OffsetReset::Earliest => OffsetSpec::Earliest,
                    OffsetReset::Latest => OffsetSpec::Latest,
                    OffsetReset::None => {
                        return Err(Error::kafka(ErrorCode::OffsetOutOfRange).with_context(format!(
                            "topic {topic} partition {p} offset {} (auto.offset.reset=none)",
                            state.position
                        )))
                    }
                };
                let o = self.admin.list_offsets(&topic, &[p], spec).await?;
                if let (Some(o), Some(state)) = (o.first(), self.positions.get_mut(&p)) {
                    state.position = o.offset;
                }
                return Ok(());
            }
            c if c.is_retriable() => {
                self.client.invalidate_topic(&topic);
                return Ok(());
            }
            c => {
                return Err(Error::kafka(c)
                    .with_context(format!("topic {topic} partition {p}"))
                    .with_partition(&topic, p))
            }
        }
        let mut aborted: Vec<(i64, i64)> = pd
            .aborted_transactions
            .unwrap_or_default()
            .iter()
            .map(|a| (a.first_offset, a.producer_id.0))
            .collect();
        aborted.sort_unstable();
        let mut aborted = aborted.into_iter().peekable();
        let mut aborting: HashSet<i64> = HashSet::new();
        let ctx = |e| {
            Error::from(e)
                .with_context(format!("topic {topic} partition {p}"))
                .with_partition(&topic, p)
        };
        for batch in Batches::new(pd.records.unwrap_or_default(), self.opts) {
            let batch = batch.map_err(ctx)?;
            if batch.next_offset() <= state.position {
                continue;
            }
            if self.read_committed {
                while let Some(&(first, pid)) = aborted.peek() {
                    if first > batch.last_offset() {
                        break;
                    }
                    aborting.insert(pid);
                    aborted.next();
                }
            }
            if batch.is_control() {
                if let Ok(Some(c)) = batch.control_record(&self.opts) {
                    if c.kind == ControlRecordType::Abort {
                        aborting.remove(&batch.producer_id());
                    }
                }
                state.position = batch.next_offset();
                continue;
            }
            let skip = self.read_committed && batch.is_transactional() && aborting.contains(&batch.producer_id());
            if !skip {
                for r in batch.records(&self.opts).map_err(ctx)? {
                    let r = r.map_err(ctx)?;
                    if r.offset < state.position || state.end.is_some_and(|e| r.offset >= e) {
                        continue;
                    }
                    state.position = r.offset + 1;
                    out.push((p, r));
                }
            }
            let next = batch.next_offset();
            state.position = match state.end {
                Some(e) => state.position.max(next.min(e)),
                None => state.position.max(next),
            };
        }
        Ok(())
    }
}
