//! The sender task (Java's `Sender` + the idempotence half of `TransactionManager`): the
//! only owner of the producer id, epoch and sequence numbers.
//!
//! Each turn: expire batches past `delivery.timeout.ms`, bump the epoch if one is pending
//! and nothing is in flight, drain sendable batches per partition leader into Produce
//! requests (one batch per partition per request, as Produce v3+ requires; at most
//! `max.in.flight.requests.per.connection` requests per broker and batches per partition),
//! then wait for a response, a wake-up, a linger deadline or a command.
//!
//! Ordering and exactly-once-per-partition (KIP-98, KIP-360; Java's `TransactionManager`
//! bookkeeping):
//! * Sequences are assigned when a batch is first sent and kept, with the producer id and
//!   epoch they were assigned under, across retries: a batch whose answer was lost may be
//!   in the log, and only its original (id, epoch, sequence) lets the broker drop the copy.
//! * A retried batch goes back to the head of its partition queue in sequence order and is
//!   resent only when it is the partition's oldest unresolved batch, one at a time: a retry
//!   never races an older batch to a new leader.
//! * OUT_OF_ORDER_SEQUENCE on a batch that is not the one right after the last acknowledged
//!   is the echo of an earlier failure: plain retry. On that next batch (a real gap), on
//!   UNKNOWN_PRODUCER_ID, or when a sent batch fails for good or expires, the idempotent
//!   producer bumps its epoch (locally, as Java does; a new id once the epoch is exhausted)
//!   and only the partitions that asked for it restart at sequence 0. Every other partition
//!   finishes its unresolved batches under the old epoch and moves to the new one when it
//!   has none left, so a batch that may already be written is never renumbered there.
//! * DUPLICATE_SEQUENCE_NUMBER means the broker already has the batch: success.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use futures_util::stream::{FuturesUnordered, StreamExt};
use strom_protocol::message_traits::StrBytes;
use strom_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use strom_protocol::messages::{
    ApiKey, InitProducerIdRequest, ProduceRequest, ProduceResponse, ProducerId, TopicName, TransactionalId,
};
use strom_protocol::record_batch::restamp_producer_state;
use strom_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::accumulator::{Accumulator, Batch, Body};
use super::delivery::BatchAck;
use super::record::ProducerRecord;
use super::sequence::{may_retry, next_sequence, verdict, Mode, PartState, Verdict};
use super::txn::{Txn, TxnCommand};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::role_config::{Acks, ProducerConfig};

type FlightFuture = Pin<Box<dyn Future<Output = Flight> + Send>>;

/// A partition's answer in a Produce response.
struct Answer {
    code: i16,
    base_offset: i64,
    log_append_time: i64,
    message: Option<String>,
}

struct Flight {
    node: i32,
    sent: Instant,
    batches: Vec<Batch>,
    result: Result<Option<ProduceResponse>>,
}

/// Commands from the handles.
pub(crate) enum Command {
    Txn(TxnCommand),
}

pub(crate) struct Sender {
    pub(crate) client: Client,
    pub(crate) acc: Arc<Accumulator>,
    pub(crate) cfg: ProducerConfig,
    cmds: mpsc::Receiver<Command>,
    cmds_closed: bool,
    pub(crate) producer_id: i64,
    pub(crate) epoch: i16,
    parts: HashMap<(Arc<str>, i32), PartState>,
    inflight: FuturesUnordered<FlightFuture>,
    node_inflight: HashMap<i32, usize>,
    bump_pending: bool,
    /// Partitions whose sequences restart at 0 with the next epoch bump.
    rewrite: HashSet<(Arc<str>, i32)>,
    refresh: HashSet<Arc<str>>,
    last_refresh: Instant,
    refreshing: Option<tokio::task::JoinHandle<()>>,
    pub(crate) txn: Option<Txn>,
    /// The transaction coordinator's connection, once found (the driver's, not the
    /// transaction state machine's).
    pub(crate) txn_coordinator: Option<crate::connection::Connection>,
    /// Per leader: when it last had batches ready, and when it last took them (Java's
    /// `NodeLatencyStats`), for `partitioner.availability.timeout.ms`.
    node_latency: HashMap<i32, NodeLatency>,
    /// Scratch for the partitioner's per-turn report (kept to avoid allocating every turn).
    scratch_queues: Vec<(u32, u32)>,
    scratch_leaders: Vec<u32>,
    metrics: Arc<crate::metrics::ProducerInstruments>,
    topic_metrics: HashMap<Arc<str>, crate::metrics::TopicInstruments>,
}

#[derive(Debug, Clone, Copy)]
struct NodeLatency {
    ready: Instant,
    drained: Instant,
}

/// A batch's records as the application sent them (topic, partition, key, value, headers,
/// timestamp), read back from its bytes; empty if they cannot be (never expected).
fn decode_records(b: &mut Batch) -> Vec<ProducerRecord> {
    use strom_protocol::record_batch::{Batches, DecodeOptions};
    let bytes = match std::mem::replace(&mut b.body, Body::Encoded(bytes::Bytes::new())) {
        Body::Encoded(bytes) => bytes,
        Body::Open(builder) => match builder.finish() {
            Ok(bytes) => bytes,
            Err(_) => return Vec::new(),
        },
    };
    let opts = DecodeOptions::default();
    let mut out = Vec::with_capacity(b.count as usize);
    for batch in Batches::new(bytes, opts).flatten() {
        let Ok(records) = batch.records(&opts) else { continue };
        for r in records.flatten() {
            out.push(ProducerRecord {
                topic: b.topic.to_string(),
                partition: Some(b.partition),
                key: r.key,
                value: r.value,
                headers: r
                    .headers
                    .iter()
                    .map(|h| (String::from_utf8_lossy(&h.key).into_owned(), h.value))
                    .collect(),
                timestamp: Some(r.timestamp),
            });
        }
    }
    out
}

/// The wait before retry number `attempt` (1 for the first): `retry.backoff.ms` doubling per
/// attempt up to `retry.backoff.max.ms`, ±20 % (Java's `ExponentialBackoff`, KIP-580).
fn retry_backoff(cfg: &crate::config::ClientConfig, attempt: u32) -> Duration {
    crate::backoff::ExponentialBackoff::retries(cfg).delay(attempt)
}

impl Sender {
    pub(crate) fn new(
        client: Client,
        acc: Arc<Accumulator>,
        cfg: ProducerConfig,
        cmds: mpsc::Receiver<Command>,
        txn: Option<Txn>,
    ) -> Self {
        Sender {
            metrics: acc.metrics.clone(),
            topic_metrics: HashMap::new(),
            client,
            acc,
            cfg,
            cmds,
            cmds_closed: false,
            producer_id: -1,
            epoch: -1,
            parts: HashMap::new(),
            inflight: FuturesUnordered::new(),
            node_inflight: HashMap::new(),
            bump_pending: false,
            rewrite: HashSet::new(),
            refresh: HashSet::new(),
            last_refresh: Instant::now(),
            refreshing: None,
            txn,
            txn_coordinator: None,
            node_latency: HashMap::new(),
            scratch_queues: Vec::new(),
            scratch_leaders: Vec::new(),
        }
    }

    /// The `producer-topic-metrics` of `topic`.
    fn topic_metrics(&mut self, topic: &Arc<str>) -> &crate::metrics::TopicInstruments {
        if !self.topic_metrics.contains_key(topic) {
            let m = self.metrics.topic(topic);
            self.topic_metrics.insert(topic.clone(), m);
        }
        &self.topic_metrics[topic]
    }

    /// Records a batch leaving for the first time: record-send, byte, batch-size,
    /// compression-rate (`uncompressed` bytes became the batch's), record-queue-time.
    fn record_first_send(&mut self, b: &Batch, uncompressed: usize) {
        let Body::Encoded(bytes) = &b.body else { return };
        let (len, count) = (bytes.len(), u64::from(b.count));
        let m = self.metrics.clone();
        m.record_send.add(count);
        m.batch_size.record(len as u64);
        m.record_queue_time.record_duration(b.created.elapsed());
        let rate = if uncompressed > 0 {
            len as f64 / uncompressed as f64
        } else {
            1.0
        };
        m.compression_rate.record_ratio(rate);
        let t = self.topic_metrics(&b.topic);
        t.record_send.add(count);
        t.byte.add(len as u64);
        t.compression_rate.record_ratio(rate);
    }

    fn idempotent(&self) -> bool {
        self.cfg.enable_idempotence
    }

    pub(crate) async fn run(mut self) {
        if self.idempotent() && self.txn.is_none() {
            if let Err(e) = self.init_producer_id().await {
                self.fail_fatal(e.with_context("InitProducerId for the idempotent producer"));
            }
        }
        loop {
            self.expire_batches();
            if self.bump_pending && self.inflight.is_empty() {
                self.bump_epoch().await;
            }
            self.refresh_metadata().await;
            let next_linger = self.drain().await;
            if self.cmds_closed && self.inflight.is_empty() && Accumulator::is_empty(&self.acc.lock()) {
                break;
            }
            let sleep =
                tokio::time::sleep_until(next_linger.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)));
            let retry_tick = !self.refresh.is_empty() || self.bump_pending;
            tokio::select! {
                Some(flight) = self.inflight.next(), if !self.inflight.is_empty() => self.handle(flight),
                cmd = self.cmds.recv(), if !self.cmds_closed => match cmd {
                    Some(Command::Txn(c)) => self.txn_command(c).await,
                    None => {
                        self.cmds_closed = true;
                        self.acc.lock().flushing += 1;
                    }
                },
                _ = self.acc.wake.notified() => {}
                _ = sleep => {}
                _ = tokio::time::sleep(self.cfg.client.retry_backoff), if retry_tick => {}
            }
        }
        debug!("producer sender stopped");
    }

    /// Waits for every in-flight request (used before epoch bumps and transaction ends).
    pub(crate) async fn drain_inflight(&mut self) {
        while let Some(flight) = self.inflight.next().await {
            self.handle(flight);
        }
    }

    /// InitProducerId for an idempotent producer (any broker), retried until
    /// `delivery.timeout.ms`. With a current id and epoch (v3+, KIP-360) it bumps the epoch.
    async fn init_producer_id(&mut self) -> Result<()> {
        let req = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(i32::MAX)
            .with_producer_id(ProducerId(self.producer_id))
            .with_producer_epoch(self.epoch);
        let deadline = Instant::now() + self.cfg.delivery_timeout;
        loop {
            let attempt = async {
                let conn = self.client.any_broker().await?;
                let resp = conn.send(&req).await?;
                let code = ErrorCode::from(resp.error_code);
                if !code.is_ok() {
                    return Err(Error::kafka(code));
                }
                Ok((resp.producer_id.0, resp.producer_epoch))
            };
            match attempt.await {
                Ok((pid, epoch)) => {
                    info!(producer_id = pid, epoch, "producer id assigned");
                    self.producer_id = pid;
                    self.epoch = epoch;
                    return Ok(());
                }
                Err(e) if e.is_retriable() && Instant::now() < deadline => {
                    debug!(error = %e, "InitProducerId failed, retrying");
                    tokio::time::sleep(self.cfg.client.retry_backoff).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Asks for a KIP-360 epoch bump that restarts `partition`'s sequences at 0.
    fn request_bump(&mut self, topic: &Arc<str>, partition: i32) {
        if self.idempotent() && self.txn.is_none() {
            self.bump_pending = true;
            self.rewrite.insert((topic.clone(), partition));
        }
    }

    /// KIP-360 epoch bump of the idempotent producer (Java's `bumpIdempotentProducerEpoch`):
    /// the epoch goes up by one locally (a new producer id once it is exhausted); the
    /// partitions that asked restart at sequence 0 and their queued batches are renumbered.
    /// Other partitions keep their unresolved batches' (id, epoch, sequence) and move to the
    /// new epoch once those are done (`PartState::may_send`).
    async fn bump_epoch(&mut self) {
        if self.txn.is_some() {
            // A transactional producer recovers through abort (TV2 bumps at EndTxn).
            self.bump_pending = false;
            self.rewrite.clear();
            return;
        }
        if self.epoch >= 0 && self.epoch < i16::MAX {
            self.epoch += 1;
        } else {
            self.producer_id = -1;
            self.epoch = -1;
            if let Err(e) = self.init_producer_id().await {
                self.fail_fatal(e.with_context("a new producer id after the epoch was exhausted"));
                self.bump_pending = false;
                self.rewrite.clear();
                return;
            }
        }
        warn!(
            producer_id = self.producer_id,
            epoch = self.epoch,
            partitions = self.rewrite.len(),
            "bumped the producer epoch (KIP-360)"
        );
        let current = (self.producer_id, self.epoch);
        let rewrite = std::mem::take(&mut self.rewrite);
        for key in &rewrite {
            self.parts.entry(key.clone()).or_default().restart(current);
        }
        let mut st = self.acc.lock();
        for tq in st.topics.values_mut() {
            for (p, part) in tq.parts.iter_mut().enumerate() {
                if rewrite.contains(&(tq.name.clone(), p as i32)) {
                    for b in &mut part.sealed {
                        b.seq = None;
                    }
                }
            }
        }
        drop(st);
        self.bump_pending = false;
    }

    /// Every partition's sequence back to 0 under the current id and epoch; queued batches
    /// get new numbers at their next send (a transaction's end, or a new producer id).
    pub(crate) fn reset_sequences(&mut self) {
        let current = (self.producer_id, self.epoch);
        for ps in self.parts.values_mut() {
            ps.restart(current);
        }
        let mut st = self.acc.lock();
        for tq in st.topics.values_mut() {
            for part in &mut tq.parts {
                for b in &mut part.sealed {
                    b.seq = None;
                }
            }
        }
    }

    /// Refreshes metadata of topics whose leaders are unknown or moved, and of every topic
    /// written once the metadata is older than `metadata.max.age.ms`, in the background
    /// (bounded by `request.timeout.ms`): the loop never waits on the network, so batch
    /// expiry and other partitions keep going while a broker is down.
    async fn refresh_metadata(&mut self) {
        if self.refreshing.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        if self.client.metadata_age() >= self.cfg.client.metadata_max_age {
            // metadata.max.age.ms: the topics this producer writes are refreshed even when
            // nothing failed, as in Java, so partitions added to a topic get records and
            // leaders moved by a reassignment or election are found before a send fails.
            let acc = self.acc.lock();
            self.refresh.extend(acc.topics.keys().cloned());
        }
        if self.refresh.is_empty() || self.last_refresh.elapsed() < self.cfg.client.retry_backoff {
            return;
        }
        let topics: Vec<Arc<str>> = self.refresh.drain().collect();
        self.last_refresh = Instant::now();
        let client = self.client.clone();
        let limit = self.cfg.client.request_timeout;
        let wake = self.acc.clone();
        self.refreshing = Some(tokio::spawn(async move {
            let names: Vec<&str> = topics.iter().map(|t| &**t).collect();
            match tokio::time::timeout(limit, client.refresh_metadata(Some(&names))).await {
                Ok(Ok(_)) => wake.wake.notify_one(),
                Ok(Err(e)) => debug!(error = %e, "metadata refresh failed"),
                Err(_) => debug!("metadata refresh timed out"),
            }
        }));
    }

    /// Fails batches that waited past `delivery.timeout.ms` without being sent.
    fn expire_batches(&mut self) {
        let timeout = self.cfg.delivery_timeout;
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut st = self.acc.lock();
            for tq in st.topics.values_mut() {
                for part in &mut tq.parts {
                    while part
                        .sealed
                        .front()
                        .is_some_and(|b| now.duration_since(b.created) > timeout)
                    {
                        if let Some(b) = part.sealed.pop_front() {
                            expired.push(b);
                        }
                    }
                    if part
                        .open
                        .as_ref()
                        .is_some_and(|b| now.duration_since(b.created) > timeout)
                    {
                        if let Some(b) = part.open.take() {
                            expired.push(b);
                        }
                    }
                }
            }
        }
        for mut b in expired {
            if b.seq.is_some() {
                // A sent-before batch leaves a gap in the partition's sequence: renumber it.
                self.request_bump(&b.topic, b.partition);
            }
            let mut e = Error::timeout(
                format!(
                    "delivering {} record(s) to {}-{} ({} attempt(s))",
                    b.count, b.topic, b.partition, b.attempts
                ),
                timeout,
            );
            if let Some(last) = b.last_error.take() {
                e = e.with_cause(last);
            }
            self.fail_batch(b, e);
        }
    }

    /// Moves due batches into Produce requests. Returns the next linger deadline.
    async fn drain(&mut self) -> Option<Instant> {
        if self.bump_pending {
            return None;
        }
        if let Some(txn) = &self.txn {
            if !txn.may_send() {
                return None;
            }
        }
        let now = Instant::now();
        let md = self.client.metadata();
        let max_in_flight = self.cfg.max_in_flight.max(1);
        let tv1_txn = self.txn.as_ref().is_some_and(|t| !t.tv2);
        let mut by_node: BTreeMap<i32, Vec<Vec<Batch>>> = BTreeMap::new();
        let mut next_linger: Option<Instant> = None;
        let mut to_add: Vec<(Arc<str>, i32)> = Vec::new();
        let adaptive = self.cfg.partitioner_adaptive;
        // Java reads the availability timeout only with adaptive partitioning on.
        let availability = if adaptive {
            self.cfg.partitioner_availability_timeout
        } else {
            Duration::ZERO
        };
        {
            let mut st = self.acc.lock();
            let flushing = st.flushing > 0 || st.closed;
            for tq in st.topics.values_mut() {
                let tmeta = md.topic(&tq.name);
                self.scratch_queues.clear();
                self.scratch_leaders.clear();
                for (p, part) in tq.parts.iter_mut().enumerate() {
                    // The partitioner's view (RecordAccumulator.partitionReady): partitions with
                    // a leader, their queues before this drain, minus those whose leader has
                    // had data ready and taken none for longer than the availability timeout.
                    let leader = tmeta.and_then(|t| t.partitions.get(p)).map_or(-1, |pi| pi.leader);
                    if leader >= 0 {
                        self.scratch_leaders.push(p as u32);
                        let stalled = !availability.is_zero()
                            && self
                                .node_latency
                                .get(&leader)
                                .is_some_and(|l| l.ready.saturating_duration_since(l.drained) > availability);
                        if !stalled {
                            let queued = part.sealed.len() + usize::from(part.open.is_some());
                            self.scratch_queues.push((p as u32, queued as u32));
                        }
                    }
                    if let Some(open) = &part.open {
                        let due = open.created + self.acc.linger;
                        if flushing || (now >= due && leader >= 0 && part.sealed.is_empty()) {
                            if let Some(b) = part.open.take() {
                                part.sealed.push_back(b);
                            }
                        } else if now >= due {
                            // Lingered, but it cannot leave now: no leader, or older batches of
                            // its partition still wait (a retry, a broker down). As in Java,
                            // where a batch is closed for appends only when drained, it keeps
                            // taking records until full, instead of a new, nearly empty batch
                            // (with its batch.size buffer) every linger.ms of the outage. The
                            // partition is looked at again when what blocks it moves.
                            if leader < 0 {
                                self.refresh.insert(tq.name.clone());
                            }
                        } else {
                            next_linger = Some(next_linger.map_or(due, |n| n.min(due)));
                        }
                    }
                    if part.sealed.is_empty() {
                        continue;
                    }
                    if leader < 0 {
                        self.refresh.insert(tq.name.clone());
                        continue;
                    }
                    let key = (tq.name.clone(), p as i32);
                    if tv1_txn && self.txn.as_ref().is_some_and(|t| t.needs_adding(&key)) {
                        to_add.push(key);
                        continue;
                    }
                    let node_busy = self.node_inflight.get(&leader).copied().unwrap_or(0);
                    // Sender.sendProducerData: a node with data ready moves its ready time; one
                    // that can take a request also its drain time.
                    let lat = self.node_latency.entry(leader).or_insert(NodeLatency {
                        ready: now,
                        drained: now,
                    });
                    lat.ready = now;
                    if node_busy >= max_in_flight {
                        continue;
                    }
                    lat.drained = now;
                    let ps = self.parts.entry(key).or_default();
                    let idempotent = self.cfg.enable_idempotence;
                    let current = (self.producer_id, self.epoch);
                    let rounds = by_node.entry(leader).or_default();
                    let mut round = 0;
                    loop {
                        let per_partition = if ps.last_acked.is_some() || !idempotent {
                            max_in_flight
                        } else {
                            1
                        };
                        if ps.inflight >= per_partition || node_busy + round >= max_in_flight {
                            break;
                        }
                        let Some(head) = part.sealed.front() else { break };
                        if let Some(at) = head.retry_at.filter(|at| *at > now) {
                            // Backing off before a retry (and everything queued behind it).
                            next_linger = Some(next_linger.map_or(at, |n| n.min(at)));
                            break;
                        }
                        if idempotent && !ps.may_send(head.seq, current) {
                            break;
                        }
                        let Some(b) = part.sealed.pop_front() else { break };
                        ps.inflight += 1;
                        if rounds.len() <= round {
                            rounds.push(Vec::new());
                        }
                        rounds[round].push(b);
                        round += 1;
                    }
                }
                let n = u32::try_from(tq.parts.len()).unwrap_or(u32::MAX);
                tq.sticky
                    .update(&self.scratch_queues, &self.scratch_leaders, n, adaptive);
            }
        }
        if !to_add.is_empty() {
            if let Err(e) = self.add_partitions(to_add).await {
                self.txn_error(e);
            }
            self.acc.wake.notify_one();
        }
        for (node, rounds) in by_node {
            for batches in rounds {
                self.send_request(node, batches).await;
            }
        }
        next_linger
    }

    /// Encodes (assigning sequences) and sends one request's batches, split to fit
    /// `max.request.size`.
    async fn send_request(&mut self, node: i32, batches: Vec<Batch>) {
        let mut ready = Vec::with_capacity(batches.len());
        for mut b in batches {
            match self.encode(&mut b) {
                Ok(()) => ready.push(b),
                Err(e) => {
                    if let Some(ps) = self.parts.get_mut(&(b.topic.clone(), b.partition)) {
                        ps.inflight = ps.inflight.saturating_sub(1);
                    }
                    self.fail_batch(b, e);
                }
            }
        }
        // Split by max.request.size (a single batch larger than it still goes alone).
        let mut chunk: Vec<Batch> = Vec::new();
        let mut size = 0;
        for b in ready {
            let n = match &b.body {
                Body::Encoded(bytes) => bytes.len(),
                Body::Open(_) => 0,
            };
            if !chunk.is_empty() && size + n > self.cfg.max_request_size {
                self.spawn_request(node, std::mem::take(&mut chunk)).await;
                size = 0;
            }
            size += n;
            chunk.push(b);
        }
        if !chunk.is_empty() {
            self.spawn_request(node, chunk).await;
        }
    }

    fn encode(&mut self, b: &mut Batch) -> Result<()> {
        let transactional = self.txn.is_some();
        let ps = self.parts.entry((b.topic.clone(), b.partition)).or_default();
        let stamp = if self.cfg.enable_idempotence && b.seq.is_none() {
            let seq = ps.next_seq;
            ps.next_seq = next_sequence(seq, b.count);
            ps.unresolved.push_back(seq);
            b.seq = Some((ps.pid_epoch.0, ps.pid_epoch.1, seq));
            b.seq
        } else {
            None
        };
        match &mut b.body {
            Body::Open(builder) => {
                if let Some((pid, epoch, seq)) = stamp {
                    builder.set_producer_state(pid, epoch, seq, transactional);
                }
                let Body::Open(builder) = std::mem::replace(&mut b.body, Body::Encoded(bytes::Bytes::new())) else {
                    return Err(Error::internal("batch body changed"));
                };
                let uncompressed = builder.size_in_bytes();
                b.body = Body::Encoded(builder.finish()?);
                self.record_first_send(b, uncompressed);
            }
            Body::Encoded(bytes) => {
                if let Some((pid, epoch, seq)) = stamp {
                    *bytes = restamp_producer_state(bytes, pid, epoch, seq)?;
                }
            }
        }
        Ok(())
    }

    async fn spawn_request(&mut self, node: i32, batches: Vec<Batch>) {
        let txn_id = self
            .txn
            .as_ref()
            .map(|t| TransactionalId(StrBytes::from_string(t.id.clone())));
        let mut topics: BTreeMap<Arc<str>, Vec<PartitionProduceData>> = BTreeMap::new();
        for b in &batches {
            if let Body::Encoded(bytes) = &b.body {
                topics.entry(b.topic.clone()).or_default().push(
                    PartitionProduceData::default()
                        .with_index(b.partition)
                        .with_records(Some(bytes.clone())),
                );
            }
        }
        let req = ProduceRequest::default()
            .with_transactional_id(txn_id)
            .with_acks(self.cfg.acks.wire())
            .with_timeout_ms(i32::try_from(self.cfg.client.request_timeout.as_millis()).unwrap_or(i32::MAX))
            .with_topic_data(
                topics
                    .into_iter()
                    .map(|(t, parts)| {
                        TopicProduceData::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partition_data(parts)
                    })
                    .collect(),
            );
        // TV1 transactions must stay at Produce v11 (v12 implies the KIP-890 implicit add).
        let cap = if self.txn.as_ref().is_some_and(|t| !t.tv2) {
            11
        } else {
            i16::MAX
        };
        if let Some(t) = &mut self.txn {
            t.batch_sent();
        }
        *self.node_inflight.entry(node).or_default() += 1;
        self.metrics
            .records_per_request
            .record(batches.iter().map(|b| u64::from(b.count)).sum());
        let sent = Instant::now();
        let acks_none = self.cfg.acks == Acks::None;
        let client = self.client.clone();
        // Connecting happens inside the flight, so a dead broker never stalls the loop, and
        // in a task of its own: the loop may await the same broker for a transaction while
        // this flight is not polled (tests/sim.rs seed 100 deadlocked so).
        self.inflight.push(Box::pin(async move {
            let result = async {
                let conn = client.broker_detached(node).await?;
                let version = conn.versions().version(ApiKey::Produce)?.min(cap);
                if acks_none {
                    conn.send_no_response(&req, version).await.map(|()| None)
                } else {
                    conn.send_version(&req, version).await.map(Some)
                }
            }
            .await;
            Flight {
                node,
                sent,
                batches,
                result,
            }
        }));
    }

    fn handle(&mut self, flight: Flight) {
        if let Some(n) = self.node_inflight.get_mut(&flight.node) {
            *n = n.saturating_sub(1);
        }
        let resp = match flight.result {
            Ok(r) => r,
            Err(e) => {
                // No common Produce version (an older broker): fails at once, as Java's
                // UnsupportedVersionException; anything else here (a connection lost, a
                // timeout) is retried within delivery.timeout.ms.
                let retriable = !e.is_no_common_version();
                for b in flight.batches {
                    self.refresh.insert(b.topic.clone());
                    self.on_batch_error(b, e.clone().with_node(flight.node), retriable);
                }
                return;
            }
        };
        if let Some(r) = &resp {
            self.metrics.request_latency.record_duration(flight.sent.elapsed());
            self.metrics
                .produce_throttle_time
                .record_duration(Duration::from_millis(u64::try_from(r.throttle_time_ms).unwrap_or(0)));
        }
        let Some(resp) = resp else {
            // acks=0: written to the socket is all there is to know.
            for b in flight.batches {
                self.done_inflight(&b);
                self.complete(
                    b,
                    BatchAck {
                        base_offset: -1,
                        log_append_time: -1,
                    },
                );
            }
            return;
        };
        // Each batch's answer, matched by topic and partition.
        let mut outcomes: Vec<(Batch, Option<Answer>)> = Vec::with_capacity(flight.batches.len());
        for b in flight.batches {
            let a = resp
                .responses
                .iter()
                .filter(|t| t.name.0.as_str() == &*b.topic)
                .flat_map(|t| t.partition_responses.iter())
                .find(|p| p.index == b.partition)
                .map(|p| Answer {
                    code: p.error_code,
                    base_offset: p.base_offset,
                    log_append_time: p.log_append_time_ms,
                    message: p.error_message.as_ref().map(|m| m.to_string()),
                });
            outcomes.push((b, a));
        }
        for (b, answer) in outcomes {
            let Some(Answer {
                code,
                base_offset,
                log_append_time,
                message,
            }) = answer
            else {
                self.on_batch_error(
                    b,
                    Error::protocol("the Produce response did not mention the partition"),
                    true,
                );
                continue;
            };
            let code = ErrorCode::from(code);
            let node = flight.node;
            let ctx = |b: &Batch| {
                let m = message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
                format!("topic {} partition {}{m}", b.topic, b.partition)
            };
            let mode = Mode {
                idempotent: self.idempotent(),
                transactional: self.txn.is_some(),
            };
            let part = self.parts.get(&(b.topic.clone(), b.partition));
            match verdict(code, mode, part, b.seq) {
                Verdict::Acked => {
                    debug!(topic = %b.topic, partition = b.partition, seq = ?b.seq, base_offset, %code, "batch acknowledged");
                    self.done_inflight(&b);
                    self.acked(&b);
                    self.complete(
                        b,
                        BatchAck {
                            base_offset,
                            log_append_time,
                        },
                    );
                }
                Verdict::Retry { bump, refresh } => {
                    if bump {
                        // KIP-360: the broker lost or refused our sequence state; renumber.
                        warn!(topic = %b.topic, partition = b.partition, seq = ?b.seq, %code, "epoch bump needed");
                        self.request_bump(&b.topic, b.partition);
                    }
                    if refresh {
                        self.refresh.insert(b.topic.clone());
                    }
                    let e = Error::kafka(code).with_context(ctx(&b)).with_node(node);
                    self.on_batch_error(b, e, true);
                }
                Verdict::Fenced => {
                    let e = Error::kafka(code).with_context(ctx(&b)).with_node(node);
                    let e = match self.txn.as_ref() {
                        Some(t) => super::txn::explain_fencing(e, &t.id),
                        None => e,
                    };
                    self.done_inflight(&b);
                    self.fail_batch(b, e.clone());
                    self.fail_fatal(e);
                }
                Verdict::Fail => {
                    let e = Error::kafka(code).with_context(ctx(&b)).with_node(node);
                    self.on_batch_error(b, e, false);
                }
            }
        }
    }

    fn done_inflight(&mut self, b: &Batch) {
        if let Some(ps) = self.parts.get_mut(&(b.topic.clone(), b.partition)) {
            ps.inflight = ps.inflight.saturating_sub(1);
        }
    }

    fn acked(&mut self, b: &Batch) {
        let Some((pid, epoch, seq)) = b.seq else { return };
        if let Some(ps) = self.parts.get_mut(&(b.topic.clone(), b.partition)) {
            if (pid, epoch) == ps.pid_epoch {
                let last = next_sequence(seq, b.count.saturating_sub(1));
                // Batches resolve in sequence order, so the newest acknowledgement is the last.
                ps.last_acked = Some(last);
            }
        }
    }

    /// A sent batch is done (acknowledged or failed for good): it is no longer unresolved.
    fn resolved(&mut self, b: &Batch) {
        let Some((pid, epoch, seq)) = b.seq else { return };
        if let Some(ps) = self.parts.get_mut(&(b.topic.clone(), b.partition)) {
            if (pid, epoch) == ps.pid_epoch {
                if let Some(i) = ps.unresolved.iter().position(|s| *s == seq) {
                    ps.unresolved.remove(i);
                }
            }
        }
    }

    /// A sent batch failed: retry it (in sequence order, blocking its partition) or fail it.
    fn on_batch_error(&mut self, mut b: Batch, e: Error, retriable: bool) {
        self.done_inflight(&b);
        let retry = may_retry(
            retriable,
            b.created.elapsed(),
            self.cfg.delivery_timeout,
            b.attempts,
            self.cfg.retries,
            self.cfg.acks == Acks::None,
        );
        if !retry {
            if b.seq.is_some() {
                self.request_bump(&b.topic, b.partition);
            }
            self.fail_batch(b, e);
            return;
        }
        b.attempts += 1;
        self.metrics.record_retry.add(u64::from(b.count));
        self.topic_metrics(&b.topic).record_retry.add(u64::from(b.count));
        let backoff = retry_backoff(&self.cfg.client, b.attempts);
        debug!(topic = %b.topic, partition = b.partition, seq = ?b.seq, attempt = b.attempts, ?backoff, error = %e, "retrying batch");
        b.retry_at = Some(Instant::now() + backoff);
        b.last_error = Some(e.clone());
        let mut st = self.acc.lock();
        if let Some(part) = st
            .topics
            .get_mut(&b.topic)
            .and_then(|t| t.parts.get_mut(b.partition as usize))
        {
            // Back in sequence order, ahead of never-sent batches.
            let seq = b.seq.map_or(i64::MAX, |s| i64::from(s.2));
            let pos = part
                .sealed
                .iter()
                .position(|x| x.seq.map_or(i64::MAX, |s| i64::from(s.2)) > seq);
            match pos {
                Some(i) => part.sealed.insert(i, b),
                None => part.sealed.push_back(b),
            }
        } else {
            drop(st);
            self.fail_batch(b, e);
        }
    }

    fn complete(&mut self, b: Batch, ack: BatchAck) {
        self.resolved(&b);
        self.acc.release(b.reserved);
        b.done.complete(Ok(ack));
    }

    pub(crate) fn fail_batch(&mut self, mut b: Batch, e: Error) {
        self.resolved(&b);
        self.metrics.record_error.add(u64::from(b.count));
        self.topic_metrics(&b.topic).record_error.add(u64::from(b.count));
        // Only on failure: the records come back out of the batch bytes for their errors.
        let records = decode_records(&mut b);
        b.done.set_failed_records(records);
        let mut e = if e.partition().is_none() {
            e.with_partition(&b.topic, b.partition)
        } else {
            e
        };
        if self.txn.is_some() {
            self.txn_error(e.clone());
            // Inside a transaction a failed record means the transaction must be aborted.
            if e.kind() != crate::error::ErrorKind::TransactionAborted {
                e = e.into_abortable();
            }
        }
        self.acc.release(b.reserved);
        b.done.complete(Err(e));
    }

    /// The producer cannot continue: fail everything queued and every later send.
    pub(crate) fn fail_fatal(&mut self, e: Error) {
        warn!(error = %e, "producer failed fatally");
        // Set first, under the accumulator lock: appends from here on fail with it.
        self.acc.lock().fatal = Some(e.clone());
        self.fail_unsent(&e);
        if let Some(t) = &mut self.txn {
            t.fail(e);
        }
    }

    /// Fails every batch not yet sent (a transaction abort discards them).
    pub(crate) fn fail_unsent(&mut self, e: &Error) {
        let batches = {
            let mut st = self.acc.lock();
            let mut out = Vec::new();
            for tq in st.topics.values_mut() {
                for part in &mut tq.parts {
                    out.extend(part.open.take());
                    out.extend(part.sealed.drain(..));
                }
            }
            out
        };
        for mut b in batches {
            self.resolved(&b);
            self.acc.release(b.reserved);
            let records = decode_records(&mut b);
            b.done.set_failed_records(records);
            b.done.complete(Err(e.clone()));
        }
    }

    pub(crate) fn inflight_is_empty(&self) -> bool {
        self.inflight.is_empty()
    }

    /// One turn of the loop without taking commands: used while a transaction step waits
    /// for its batches.
    pub(crate) async fn drive_once(&mut self) {
        self.expire_batches();
        self.refresh_metadata().await;
        let next = self.drain().await;
        let wait = next.unwrap_or_else(|| Instant::now() + self.cfg.client.retry_backoff);
        tokio::select! {
            Some(flight) = self.inflight.next(), if !self.inflight.is_empty() => self.handle(flight),
            _ = self.acc.wake.notified() => {}
            _ = tokio::time::sleep_until(wait) => {}
        }
    }

    pub(crate) fn reply<T>(tx: oneshot::Sender<Result<T>>, r: Result<T>) {
        let _ = tx.send(r);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::retry_backoff;
    use crate::config::ClientConfig;

    #[test]
    fn retries_back_off_exponentially_up_to_the_max() {
        let cfg = ClientConfig::new("localhost:9092");
        let within = |d: Duration, ms: u64| {
            let ms = Duration::from_millis(ms);
            d >= ms.mul_f64(0.79) && d <= ms.mul_f64(1.21)
        };
        assert!(within(retry_backoff(&cfg, 1), 100));
        assert!(within(retry_backoff(&cfg, 2), 200));
        assert!(within(retry_backoff(&cfg, 4), 800));
        assert!(within(retry_backoff(&cfg, 5), 1000));
        assert!(within(retry_backoff(&cfg, 1000), 1000));
        let mut constant = ClientConfig::new("localhost:9092");
        constant.set("retry.backoff.ms", "500").unwrap();
        constant.set("retry.backoff.max.ms", "50").unwrap();
        assert!(within(retry_backoff(&constant, 1), 50) && within(retry_backoff(&constant, 7), 50));
    }
}
