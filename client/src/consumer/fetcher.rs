//! The fetch path, sans-IO: fetch sessions (KIP-227) and completed fetches decoded lazily.
//!
//! A [`FetchSession`] per broker remembers what the broker's session holds, so the next
//! request names only partitions that were added or whose fetch position changed, and lists
//! the ones dropped as forgotten (Java's `FetchSessionHandler`). A [`CompletedFetch`] is one
//! partition's records from one response: batches are parsed and decompressed only when the
//! application reads that far, records are `Bytes` slices of the response.
//!
//! read_committed (KIP-98, Java's `CompletedFetch`): the broker returns data only up to the
//! last stable offset plus, per partition, the aborted transactions overlapping the fetched
//! range (producer id + first offset). A producer's records are dropped from its first
//! aborted offset until its ABORT marker; control batches never reach the caller; the
//! position moves past them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use strom_protocol::message_traits::StrBytes;
use strom_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use strom_protocol::messages::{FetchRequest, TopicName};
use strom_protocol::record_batch::{Batches, ControlRecordType, DecodeOptions, Records, TimestampType};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

use strom_protocol::messages::ApiKey;
use tracing::debug;

use super::record::ConsumerRecord;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::topic_partition::TopicPartition;

/// What one partition asks of a fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PartitionFetch {
    pub(crate) fetch_offset: i64,
    pub(crate) current_leader_epoch: i32,
    pub(crate) last_fetched_epoch: i32,
    pub(crate) max_bytes: i32,
}

/// One partition wanted in the next fetch from a broker.
#[derive(Debug, Clone)]
pub(crate) struct Wanted {
    pub(crate) tp: TopicPartition,
    pub(crate) topic_id: Uuid,
    pub(crate) fetch: PartitionFetch,
}

/// Request-level settings.
#[derive(Debug, Clone)]
pub(crate) struct FetchParams {
    pub(crate) max_wait_ms: i32,
    pub(crate) min_bytes: i32,
    pub(crate) max_bytes: i32,
    pub(crate) isolation_level: i8,
    pub(crate) rack_id: String,
}

/// Java's `FetchSessionHandler` for one broker.
#[derive(Debug, Default)]
pub(crate) struct FetchSession {
    id: i32,
    /// 0: the next request is full and asks for a new session.
    epoch: i32,
    /// Whether the session's topics are named by id (Fetch v13+).
    by_id: bool,
    parts: BTreeMap<TopicPartition, (Uuid, PartitionFetch)>,
}

/// A built request and what it asked for.
#[derive(Debug)]
pub(crate) struct BuiltFetch {
    pub(crate) request: FetchRequest,
    /// Whether the request was full (every session partition listed).
    pub(crate) full: bool,
    /// Fetch offset of every partition in the session when the request was built.
    pub(crate) offsets: HashMap<TopicPartition, i64>,
    /// Topic id → name, to read v13+ responses.
    pub(crate) names: HashMap<Uuid, Arc<str>>,
}

impl FetchSession {
    /// Forgets the session: the next request is full and opens a new one.
    pub(crate) fn reset(&mut self) {
        self.id = 0;
        self.epoch = 0;
        self.parts.clear();
    }

    /// Builds the next request for `wanted`; updates the session to hold exactly `wanted`.
    pub(crate) fn build(&mut self, wanted: &[Wanted], params: &FetchParams, by_id: bool) -> BuiltFetch {
        if by_id != self.by_id {
            self.reset();
            self.by_id = by_id;
        }
        let full = self.epoch == 0;
        let mut send: Vec<&Wanted> = Vec::new();
        let mut next = BTreeMap::new();
        for w in wanted {
            let changed = match self.parts.get(&w.tp) {
                Some((id, f)) => *id != w.topic_id || *f != w.fetch,
                None => true,
            };
            if full || changed {
                send.push(w);
            }
            next.insert(w.tp.clone(), (w.topic_id, w.fetch));
        }
        let mut forgotten: BTreeMap<(Arc<str>, Uuid), Vec<i32>> = BTreeMap::new();
        if !full {
            for (tp, (id, _)) in &self.parts {
                // Gone, or the topic was recreated under a new id: the broker must drop it.
                if next.get(tp).is_none_or(|(nid, _)| nid != id) {
                    forgotten.entry((tp.topic.clone(), *id)).or_default().push(tp.partition);
                }
            }
        }
        let mut names = HashMap::new();
        let mut topics: Vec<FetchTopic> = Vec::new();
        for w in send {
            names.insert(w.topic_id, w.tp.topic.clone());
            let same = topics.last().is_some_and(|t| {
                if by_id {
                    t.topic_id == w.topic_id
                } else {
                    t.topic.0.as_str() == &*w.tp.topic
                }
            });
            if !same {
                topics.push(if by_id {
                    FetchTopic::default().with_topic_id(w.topic_id)
                } else {
                    FetchTopic::default().with_topic(TopicName(StrBytes::from_string(w.tp.topic.to_string())))
                });
            }
            if let Some(t) = topics.last_mut() {
                t.partitions.push(
                    FetchPartition::default()
                        .with_partition(w.tp.partition)
                        .with_fetch_offset(w.fetch.fetch_offset)
                        .with_current_leader_epoch(w.fetch.current_leader_epoch)
                        .with_last_fetched_epoch(w.fetch.last_fetched_epoch)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(w.fetch.max_bytes),
                );
            }
        }
        for w in wanted {
            names.insert(w.topic_id, w.tp.topic.clone());
        }
        let forgotten_topics_data = forgotten
            .into_iter()
            .map(|((name, id), partitions)| {
                let t = ForgottenTopic::default().with_partitions(partitions);
                if by_id {
                    t.with_topic_id(id)
                } else {
                    t.with_topic(TopicName(StrBytes::from_string(name.to_string())))
                }
            })
            .collect();
        self.parts = next;
        let offsets = self
            .parts
            .iter()
            .map(|(tp, (_, f))| (tp.clone(), f.fetch_offset))
            .collect();
        let request = FetchRequest::default()
            .with_replica_id(strom_protocol::messages::BrokerId(-1))
            .with_max_wait_ms(params.max_wait_ms)
            .with_min_bytes(params.min_bytes)
            .with_max_bytes(params.max_bytes)
            .with_isolation_level(params.isolation_level)
            .with_session_id(self.id)
            .with_session_epoch(self.epoch)
            .with_topics(topics)
            .with_forgotten_topics_data(forgotten_topics_data)
            .with_rack_id(StrBytes::from_string(params.rack_id.clone()));
        BuiltFetch {
            request,
            full,
            offsets,
            names,
        }
    }

    /// Takes the top-level outcome of a response to the last built request. Returns false
    /// when the session was lost (the response carries no partition data to use).
    pub(crate) fn on_response(&mut self, full: bool, code: ErrorCode, session_id: i32) -> bool {
        match code {
            ErrorCode::None => {
                if full {
                    // 0: the broker keeps no session for us (cache full, or sessions off):
                    // every request stays full.
                    self.id = session_id;
                    self.epoch = i32::from(session_id != 0);
                } else {
                    self.epoch = if self.epoch == i32::MAX { 1 } else { self.epoch + 1 };
                }
                true
            }
            _ => {
                self.reset();
                false
            }
        }
    }
}

/// One partition's data from one fetch response, consumed record by record.
pub(crate) struct CompletedFetch {
    pub(crate) tp: TopicPartition,
    /// The position this data continues from (the fetch offset of the request).
    pub(crate) fetch_offset: i64,
    /// Next offset to deliver; moves as records, markers and gaps are passed.
    pub(crate) next_offset: i64,
    /// Leader epoch of the last batch read (for commits and the next fetch).
    pub(crate) last_epoch: Option<i32>,
    /// Bytes of record data this holds (for the prefetch bound).
    pub(crate) size: usize,
    batches: Batches,
    current: Option<CurrentBatch>,
    read_committed: bool,
    aborted: std::vec::IntoIter<(i64, i64)>,
    next_aborted: Option<(i64, i64)>,
    aborting: HashSet<i64>,
    failed: bool,
    /// No more batches (a truncated last batch, which brokers send, is left unread).
    exhausted: bool,
    /// Records handed out so far, added to `tally` when this is dropped.
    yielded: u64,
    /// The fetch response this came from (`records-per-request`).
    tally: Option<Arc<FetchTally>>,
}

/// The records one fetch response yielded, recorded in `records-per-request` when the last
/// of its partitions' data is dropped (drained, discarded by a seek, or revoked), as Java
/// records it once every partition of the response was handled. One per response that
/// carried records; a record handed out adds nothing here (a partition adds its count once).
pub(crate) struct FetchTally {
    records: AtomicU64,
    records_per_request: crate::metrics::Stat,
}

impl FetchTally {
    pub(crate) fn new(records_per_request: crate::metrics::Stat) -> Self {
        FetchTally {
            records: AtomicU64::new(0),
            records_per_request,
        }
    }
}

impl Drop for FetchTally {
    fn drop(&mut self) {
        self.records_per_request.record(self.records.load(Ordering::Relaxed));
    }
}

impl Drop for CompletedFetch {
    fn drop(&mut self) {
        if let Some(t) = &self.tally {
            t.records.fetch_add(self.yielded, Ordering::Relaxed);
        }
    }
}

struct CurrentBatch {
    records: Records,
    timestamp_type: TimestampType,
    leader_epoch: i32,
    last_offset: i64,
    next_offset: i64,
}

impl std::fmt::Debug for CompletedFetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompletedFetch")
            .field("tp", &self.tp)
            .field("fetch_offset", &self.fetch_offset)
            .field("next_offset", &self.next_offset)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl CompletedFetch {
    pub(crate) fn new(
        tp: TopicPartition,
        fetch_offset: i64,
        records: Bytes,
        aborted: Vec<(i64, i64)>,
        read_committed: bool,
        opts: DecodeOptions,
        tally: Option<Arc<FetchTally>>,
    ) -> Self {
        let mut aborted = aborted;
        aborted.sort_unstable();
        let mut aborted = aborted.into_iter();
        let next_aborted = aborted.next();
        CompletedFetch {
            tp,
            fetch_offset,
            next_offset: fetch_offset,
            last_epoch: None,
            size: records.len(),
            batches: Batches::new(records, opts),
            current: None,
            read_committed,
            aborted,
            next_aborted,
            aborting: HashSet::new(),
            failed: false,
            exhausted: false,
            yielded: 0,
            tally,
        }
    }

    /// Whether every record was delivered (or the data failed to decode).
    pub(crate) fn is_drained(&self) -> bool {
        self.failed || (self.current.is_none() && self.exhausted)
    }

    /// The next record for the application, skipping control batches, aborted
    /// transactions and records before the fetch offset (the broker returns whole batches).
    pub(crate) fn next_record(&mut self, opts: &DecodeOptions) -> Result<Option<ConsumerRecord>> {
        if self.failed {
            return Ok(None);
        }
        match self.advance(opts) {
            Ok(r) => {
                self.yielded += u64::from(r.is_some());
                Ok(r)
            }
            Err(e) => {
                self.failed = true;
                Err(e.with_context(format!("{} at offset {}", self.tp, self.next_offset)))
            }
        }
    }

    fn advance(&mut self, opts: &DecodeOptions) -> Result<Option<ConsumerRecord>> {
        loop {
            if let Some(cur) = &mut self.current {
                match cur.records.next() {
                    Some(r) => {
                        let r = r.map_err(Error::from)?;
                        if r.offset < self.next_offset {
                            continue;
                        }
                        self.next_offset = r.offset + 1;
                        return Ok(Some(ConsumerRecord {
                            topic: self.tp.topic.clone(),
                            partition: self.tp.partition,
                            offset: r.offset,
                            timestamp: r.timestamp,
                            timestamp_type: cur.timestamp_type,
                            leader_epoch: (cur.leader_epoch >= 0).then_some(cur.leader_epoch),
                            key: r.key,
                            value: r.value,
                            headers: r.headers,
                        }));
                    }
                    None => {
                        // Compaction may have removed the batch's last records.
                        self.next_offset = self.next_offset.max(cur.next_offset);
                        debug_assert!(cur.last_offset < self.next_offset);
                        self.current = None;
                    }
                }
            }
            let Some(batch) = self.batches.next() else {
                self.exhausted = true;
                return Ok(None);
            };
            let batch = batch.map_err(Error::from)?;
            if batch.next_offset() <= self.next_offset {
                continue;
            }
            let epoch = batch.partition_leader_epoch();
            if epoch >= 0 {
                self.last_epoch = Some(epoch);
            }
            if self.read_committed {
                while let Some((first, pid)) = self.next_aborted {
                    if first > batch.last_offset() {
                        break;
                    }
                    self.aborting.insert(pid);
                    self.next_aborted = self.aborted.next();
                }
            }
            if batch.is_control() {
                if let Ok(Some(c)) = batch.control_record(opts) {
                    if c.kind == ControlRecordType::Abort {
                        self.aborting.remove(&batch.producer_id());
                    }
                }
                self.next_offset = batch.next_offset();
                continue;
            }
            if self.read_committed && batch.is_transactional() && self.aborting.contains(&batch.producer_id()) {
                self.next_offset = batch.next_offset();
                continue;
            }
            self.current = Some(CurrentBatch {
                records: batch.records(opts).map_err(Error::from)?,
                timestamp_type: batch.timestamp_type(),
                leader_epoch: epoch,
                last_offset: batch.last_offset(),
                next_offset: batch.next_offset(),
            });
        }
    }
}

/// The partition-level error actions of a fetch response (Java's `AbstractFetch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PartitionErrorAction {
    /// Data (possibly none) to use.
    Ok,
    /// Metadata is stale (leader moved, epoch fenced, topic recreated): refresh and retry.
    RefreshMetadata,
    /// The position is outside the log: apply `auto.offset.reset`.
    OutOfRange,
    /// Fails the partition for the application.
    Fatal,
}

pub(crate) fn partition_error_action(code: ErrorCode) -> PartitionErrorAction {
    match code {
        ErrorCode::None => PartitionErrorAction::Ok,
        ErrorCode::OffsetOutOfRange => PartitionErrorAction::OutOfRange,
        ErrorCode::NotLeaderOrFollower
        | ErrorCode::ReplicaNotAvailable
        | ErrorCode::KafkaStorageError
        | ErrorCode::FencedLeaderEpoch
        | ErrorCode::OffsetNotAvailable
        | ErrorCode::UnknownLeaderEpoch
        | ErrorCode::UnknownTopicOrPartition
        | ErrorCode::UnknownTopicId
        | ErrorCode::InconsistentTopicId
        | ErrorCode::LeaderNotAvailable => PartitionErrorAction::RefreshMetadata,
        c if c.is_retriable() => PartitionErrorAction::RefreshMetadata,
        _ => PartitionErrorAction::Fatal,
    }
}

pub(super) struct FetchOutcome {
    pub(super) node: i32,
    pub(super) full: bool,
    pub(super) offsets: HashMap<TopicPartition, i64>,
    pub(super) names: HashMap<uuid::Uuid, Arc<str>>,
    pub(super) by_id: bool,
    /// From sending the request to its response.
    pub(super) latency: Duration,
    pub(super) result: Result<strom_protocol::messages::FetchResponse>,
}

pub(super) async fn fetch_once(
    client: &Client,
    node: i32,
    session: &Mutex<FetchSession>,
    wanted: &[Wanted],
    params: &FetchParams,
) -> FetchOutcome {
    let fail = |e: Error| FetchOutcome {
        node,
        full: true,
        offsets: HashMap::new(),
        names: HashMap::new(),
        by_id: false,
        latency: Duration::ZERO,
        result: Err(e),
    };
    let conn = match client.broker(node).await {
        Ok(c) => c,
        Err(e) => {
            if let Ok(mut s) = session.lock() {
                s.reset();
            }
            return fail(e);
        }
    };
    let v = match conn.versions().version(ApiKey::Fetch) {
        Ok(v) => v,
        Err(e) => return fail(e.into()),
    };
    // Fetch v13+ names topics by id (KIP-516); without ids (old metadata) stay at v12.
    let by_id = v >= 13 && wanted.iter().all(|w| !w.topic_id.is_nil());
    let v = if by_id { v } else { v.min(12) };
    let built = match session.lock() {
        Ok(mut s) => s.build(wanted, params, by_id),
        Err(_) => return fail(Error::internal("fetch session state poisoned")),
    };
    let sent = Instant::now();
    let result = conn.send_version(&built.request, v).await;
    let latency = sent.elapsed();
    match (&result, session.lock()) {
        (Ok(r), Ok(mut s)) => {
            let code = ErrorCode::from(r.error_code);
            if !s.on_response(built.full, code, r.session_id) {
                debug!(node, error = %code, "fetch session reset");
            }
        }
        (Err(_), Ok(mut s)) => s.reset(),
        (_, Err(_)) => {}
    }
    FetchOutcome {
        node,
        full: built.full,
        offsets: built.offsets,
        names: built.names,
        by_id,
        latency,
        result,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition::new(t, p)
    }

    fn want(t: &str, p: i32, off: i64) -> Wanted {
        Wanted {
            tp: tp(t, p),
            topic_id: Uuid::from_u128(t.len() as u128 + 1),
            fetch: PartitionFetch {
                fetch_offset: off,
                current_leader_epoch: 0,
                last_fetched_epoch: -1,
                max_bytes: 1024,
            },
        }
    }

    fn params() -> FetchParams {
        FetchParams {
            max_wait_ms: 500,
            min_bytes: 1,
            max_bytes: 1 << 20,
            isolation_level: 0,
            rack_id: String::new(),
        }
    }

    fn listed(req: &FetchRequest) -> Vec<(Uuid, i32, i64)> {
        req.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, p.partition, p.fetch_offset)))
            .collect()
    }

    #[test]
    fn session_sends_only_changes_after_the_first_full_request() {
        let mut s = FetchSession::default();
        let w = vec![want("a", 0, 10), want("a", 1, 20), want("bb", 0, 5)];
        let b = s.build(&w, &params(), true);
        assert!(b.full);
        assert_eq!((b.request.session_id, b.request.session_epoch), (0, 0));
        assert_eq!(listed(&b.request).len(), 3);
        assert!(s.on_response(true, ErrorCode::None, 77));

        // a-0 advanced, bb-0 dropped, a-1 unchanged.
        let w2 = vec![want("a", 0, 15), want("a", 1, 20)];
        let b = s.build(&w2, &params(), true);
        assert!(!b.full);
        assert_eq!((b.request.session_id, b.request.session_epoch), (77, 1));
        assert_eq!(listed(&b.request), vec![(Uuid::from_u128(2), 0, 15)]);
        assert_eq!(b.request.forgotten_topics_data.len(), 1);
        assert_eq!(b.request.forgotten_topics_data[0].partitions, vec![0]);
        assert_eq!(b.offsets.len(), 2);
        assert!(s.on_response(false, ErrorCode::None, 77));
        let b = s.build(&w2, &params(), true);
        assert_eq!(b.request.session_epoch, 2);
        assert!(listed(&b.request).is_empty());

        // A lost session: the next request is full again.
        assert!(!s.on_response(false, ErrorCode::FetchSessionIdNotFound, 0));
        let b = s.build(&w2, &params(), true);
        assert!(b.full);
        assert_eq!((b.request.session_id, b.request.session_epoch), (0, 0));
        assert_eq!(listed(&b.request).len(), 2);
    }

    #[test]
    fn a_broker_without_sessions_gets_full_requests() {
        let mut s = FetchSession::default();
        let w = vec![want("a", 0, 1)];
        s.build(&w, &params(), true);
        s.on_response(true, ErrorCode::None, 0);
        let b = s.build(&w, &params(), true);
        assert!(b.full);
        assert_eq!(b.request.session_epoch, 0);
    }

    #[test]
    fn switching_between_names_and_ids_restarts_the_session() {
        let mut s = FetchSession::default();
        let w = vec![want("a", 0, 1)];
        s.build(&w, &params(), true);
        s.on_response(true, ErrorCode::None, 9);
        let b = s.build(&w, &params(), false);
        assert!(b.full);
        assert_eq!(b.request.topics[0].topic.0.as_str(), "a");
    }

    #[test]
    fn epoch_wraps_to_one() {
        let mut s = FetchSession::default();
        let w = vec![want("a", 0, 1)];
        s.build(&w, &params(), true);
        s.on_response(true, ErrorCode::None, 9);
        s.epoch = i32::MAX;
        s.build(&w, &params(), true);
        s.on_response(false, ErrorCode::None, 9);
        assert_eq!(s.epoch, 1);
    }
}
