//! Elastic mode: a pipeline whose processes come and go at will, scaled by Kafka's group
//! coordinator instead of checkpoints ([`crate::Pipeline::elastic`]).
//!
//! Each process is a member of the source's consumer group (`group.protocol=consumer`, KIP-848,
//! or the classic protocol with any assignor) and writes its output in Kafka transactions
//! that also commit the offsets it consumed (`send_offsets_to_transaction` with the member's
//! group metadata, KIP-447). The group's committed offsets are the whole state: no checkpoint
//! store, no subtask index, no parallelism to configure. Start a process and the group gives
//! it partitions; stop or kill one and its partitions move to the others.
//!
//! # Why nothing is lost or written twice
//!
//! * A transaction holds the outputs of the records read since the last commit and, when it
//!   commits, the offsets after them: both become visible together or not at all.
//! * When the group takes partitions away (a rebalance: revoked or lost), the open
//!   transaction is aborted before anything else is read, and the partitions the member keeps
//!   are rewound to where that transaction began. The next owner of a moved partition starts
//!   from its committed offset, which the aborted transaction never moved.
//! * A zombie (a member the group already replaced, e.g. after a long pause) cannot commit:
//!   the coordinator refuses offsets sent with an old generation or member epoch, the
//!   transaction is aborted, and the member rejoins and rewinds.
//! * A process killed in a transaction leaves it open until `transaction.timeout.ms`, or
//!   until a process with the same member name starts (its transactional id,
//!   `<transactional-id-prefix>-elastic-<member>`, fences the old one and aborts what it
//!   left). Until then read_committed readers of the output wait at that transaction, and the
//!   new owners of its partitions wait for its offsets to settle (KIP-447's
//!   `require_stable`). Keep member names stable across restarts, and the transaction
//!   timeout short, to bound that wait.
//!
//! Each partition starts at the group's committed offset; a partition without one starts
//! where the source's starting offsets say (earliest, latest, or the reset of
//! `committed_offsets(reset)`; by timestamp or by partition is refused).
//!
//! Each member commits every checkpoint interval ([`crate::Pipeline::checkpoint_interval`]).
//! Input read with `isolation.level=read_committed` gives exactly-once end to end; the sink
//! must be [`DeliveryGuarantee::ExactlyOnce`] with a transactional id prefix.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use strom_client::{
    Consumer, ConsumerRecord, RebalanceContext, RebalanceListener, TopicPartition, TransactionalProducer,
};
use strom_protocol::ErrorCode;
use tracing::{debug, info, warn};

use crate::metrics::PipelineMetrics;
use crate::pipeline::{Chain, PipelineEnd, PipelineSummary, WATERMARK_INTERVAL};
use crate::process::ProcessContext;
use crate::sink::{DeliveryGuarantee, KafkaRecordSerializer, KafkaSink, KafkaSinkContext};
use crate::source::{
    Boundedness, KafkaRecordDeserializer, KafkaSource, SourceRecord, Subscription, WatermarkCombiner, WatermarkEvent,
    WatermarkStrategy,
};
use crate::{ConnectorError, Result};

/// What [`crate::Pipeline::run_until`] needs to run in elastic mode.
pub(crate) struct ElasticRun<I, O> {
    pub(crate) source: KafkaSource<I>,
    pub(crate) sink: KafkaSink<O>,
    pub(crate) chain: Chain<I, O>,
    pub(crate) member: String,
    pub(crate) watermarks: WatermarkStrategy<I>,
    pub(crate) commit_interval: Duration,
    pub(crate) poll_timeout: Duration,
    pub(crate) metrics: PipelineMetrics,
}

type Taken = Arc<Mutex<Vec<TopicPartition>>>;

/// Notes the partitions a rebalance takes (revoked or lost) for the pipeline to act on
/// once the poll returns, and those it gives (for the watermarks).
struct Listener {
    taken: Taken,
    given: Taken,
}

fn note(list: &Taken, partitions: &[TopicPartition]) {
    if !partitions.is_empty() {
        list.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(partitions);
    }
}

impl RebalanceListener for Listener {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition], _ctx: &mut RebalanceContext) {
        note(&self.taken, partitions);
    }

    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition], _ctx: &mut RebalanceContext) {
        note(&self.given, partitions);
    }
}

/// The watermark key of a partition (a split id: `topic-partition`).
fn split_key(topic: &str, partition: i32) -> String {
    format!("{topic}-{partition}")
}

/// The transactional id of member `member` of an elastic pipeline whose sink has the
/// transactional id prefix `prefix`.
pub fn elastic_transactional_id(prefix: &str, member: &str) -> String {
    format!("{prefix}-elastic-{member}")
}

/// What elastic mode takes from the source: the group, and topics or a pattern.
struct Plan {
    group: String,
    topics: Vec<String>,
    pattern: Option<String>,
}

/// Refuses, before connecting, what elastic mode cannot honour.
fn validate<I, O>(r: &ElasticRun<I, O>) -> Result<Plan> {
    let refuse = |why: &str| Err(ConnectorError::Config(format!("elastic mode: {why}")));
    if r.member.is_empty() || r.member.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ConnectorError::Config(format!(
            "elastic mode: member name {:?}: one word, unique among the group's processes and stable across \
             restarts",
            r.member
        )));
    }
    let Some(group) = r.source.group_id().map(str::to_owned) else {
        return refuse("the source needs a group id (group_id(...)): the group's committed offsets are the state");
    };
    if r.source.boundedness() == Boundedness::Bounded || r.source.stopping_offsets().is_some() {
        return refuse(
            "the source must be unbounded, without stopping offsets: partitions move between processes, so no \
             process can tell where the input ends",
        );
    }
    let (topics, pattern) = match r.source.subscription() {
        Subscription::Topics(t) => (t.clone(), None),
        Subscription::Pattern(p) => (Vec::new(), Some(p.as_str().to_owned())),
        Subscription::Partitions(_) => {
            return refuse("the source names partitions; here the group assigns them: subscribe to topics or a pattern")
        }
    };
    if r.sink.delivery_guarantee() != DeliveryGuarantee::ExactlyOnce || r.sink.transactional_id_prefix().is_none() {
        return refuse(
            "the sink must be exactly-once with a transactional id prefix: outputs and consumed offsets commit in \
             one transaction",
        );
    }
    if !r.source.starting_offsets().is_a_reset() {
        return refuse(
            "starting offsets by timestamp or by partition cannot be honoured: each partition starts at the group's \
             committed offset, and without one where auto.offset.reset says (starting offsets earliest, latest or \
             committed_offsets(reset))",
        );
    }
    if r.source.consumer_config(0).enable_auto_commit {
        return refuse("enable.auto.commit=true: offsets are committed inside the transactions, never on their own");
    }
    Ok(Plan { group, topics, pattern })
}

/// The open transaction of a member.
#[derive(Default)]
struct Open {
    /// The producer began it (the first output, or the offsets of a commit).
    begun: bool,
    /// The first offset read in it, per partition: where an abort rewinds to.
    start: BTreeMap<TopicPartition, i64>,
    /// The partition of the last record noted in `start` (records come in runs of one
    /// partition: the map is touched once per run, not per record).
    noted: Option<(Arc<str>, i32)>,
}

struct Member<I, O> {
    consumer: Consumer,
    producer: TransactionalProducer,
    taken: Taken,
    given: Taken,
    ctx: KafkaSinkContext,
    sink: KafkaSink<O>,
    serializer: Arc<dyn KafkaRecordSerializer<O>>,
    chain: Chain<I, O>,
    deserializer: Arc<dyn KafkaRecordDeserializer<I>>,
    watermarks: WatermarkStrategy<I>,
    /// Per-partition watermarks of the partitions this member owns.
    combiner: WatermarkCombiner<I>,
    /// The partition of the last record and its watermark key (records come in runs of one
    /// partition: the key is made once per run, not per record).
    current_split: Option<((Arc<str>, i32), String)>,
    open: Open,
    metrics: PipelineMetrics,
    records_in: u64,
    records_out: u64,
    commits: u64,
    aborts: u64,
}

pub(crate) async fn run<I, O>(r: ElasticRun<I, O>, stop: impl Future<Output = ()> + Send) -> Result<PipelineSummary>
where
    I: Send + 'static,
    O: Send + 'static,
{
    let plan = validate(&r)?;
    let started = Instant::now();
    let prefix = r.sink.transactional_id_prefix().unwrap_or_default().to_owned();
    let transactional_id = elastic_transactional_id(&prefix, &r.member);

    let mut cc = r.source.consumer_config(0);
    cc.client.client_id = format!("{}-{}", r.source.client_id_prefix(), r.member);
    let mut consumer = Consumer::new(cc).await?;
    let (taken, given) = (Taken::default(), Taken::default());
    consumer.set_rebalance_listener(Listener {
        taken: taken.clone(),
        given: given.clone(),
    });
    match &plan.pattern {
        Some(p) => consumer.subscribe_pattern(p)?,
        None => consumer.subscribe(&plan.topics)?,
    }
    let mut pc = r.sink.producer_config().clone();
    pc.transactional_id = Some(transactional_id.clone());
    let producer = TransactionalProducer::new(pc).await?;
    // Fences an older process of this member name and aborts what it left open.
    producer.init_transactions().await.map_err(|e| {
        ConnectorError::Client(e.with_context(format!("initializing transactional id {transactional_id}")))
    })?;
    let ctx = KafkaSinkContext::new(producer.client().clone(), 0, 1);
    info!(group = %plan.group, member = %r.member, transactional_id, "elastic pipeline running");
    let mut m = Member {
        consumer,
        producer,
        taken,
        given,
        ctx,
        serializer: r.sink.serializer(),
        sink: r.sink,
        chain: r.chain,
        deserializer: r.source.deserializer().clone(),
        combiner: r.watermarks.create_combiner(),
        current_split: None,
        watermarks: r.watermarks,
        open: Open::default(),
        metrics: r.metrics,
        records_in: 0,
        records_out: 0,
        commits: 0,
        aborts: 0,
    };
    let outcome = m.drive(r.commit_interval, r.poll_timeout, stop).await;
    m.metrics.stopped();
    if let Err(e) = outcome {
        // What is open is aborted (bounded), and the member leaves so the group rebalances
        // at once rather than after the session timeout.
        if m.open.begun {
            let _ = tokio::time::timeout(Duration::from_secs(10), m.producer.abort_transaction()).await;
        }
        let _ = tokio::time::timeout(Duration::from_secs(10), m.producer.close()).await;
        let _ = tokio::time::timeout(Duration::from_secs(10), m.consumer.close()).await;
        return Err(e);
    }
    m.producer.close().await?;
    m.consumer.close().await?;
    info!(
        member = %r.member,
        records_in = m.records_in,
        records_out = m.records_out,
        transactions = m.commits,
        aborted = m.aborts,
        "elastic pipeline stopped"
    );
    Ok(PipelineSummary {
        end: PipelineEnd::Stopped,
        records_in: m.records_in,
        records_out: m.records_out,
        checkpoints: m.commits,
        last_checkpoint_id: m.commits,
        restored_from: None,
        elapsed: started.elapsed(),
        restarts: 0,
    })
}

impl<I, O> Member<I, O> {
    async fn drive(
        &mut self,
        commit_interval: Duration,
        poll_timeout: Duration,
        stop: impl Future<Output = ()> + Send,
    ) -> Result<()> {
        let mut stop = Box::pin(stop);
        let mut next_commit = Instant::now() + commit_interval;
        let mut next_watermark = Instant::now() + WATERMARK_INTERVAL;
        let mut outputs: Vec<(O, i64)> = Vec::new();
        loop {
            if (&mut stop).now_or_never().is_some() {
                // The last transaction commits; if the group or the coordinator refuses it,
                // it is aborted and its records are read again by whoever owns them next.
                if let Err(e) = self.commit().await {
                    self.recover(e, &[]).await?;
                }
                return Ok(());
            }
            let timeout = next_commit
                .saturating_duration_since(Instant::now())
                .min(poll_timeout)
                .max(Duration::from_millis(1));
            let records = self.consumer.poll(timeout).await?;
            // A rebalance inside that poll took partitions: the open transaction holds
            // outputs of records their next owner reads again, so it must never commit.
            let taken = std::mem::take(&mut *self.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
            self.track_partitions(&taken);
            if !taken.is_empty() {
                info!(
                    partitions = taken.len(),
                    "the group took partitions: the open transaction is aborted"
                );
                self.abort_and_rewind(&records).await?;
                continue;
            }
            let mut done = 0;
            let mut failed = None;
            // One clock read per poll for the watermarks' idleness (as the reader does).
            let polled_at = Instant::now();
            for rec in &records {
                if let Err(e) = self.process(rec, polled_at, &mut outputs).await {
                    failed = Some(e);
                    break;
                }
                done += 1;
            }
            if let Some(e) = failed {
                outputs.clear();
                self.recover(e, &records[done..]).await?;
                continue;
            }
            if Instant::now() >= next_commit {
                if let Err(e) = self.commit().await {
                    self.recover(e, &[]).await?;
                }
                next_commit = Instant::now() + commit_interval;
            }
            let now = Instant::now();
            if now >= next_watermark {
                self.emit_watermark(now);
                next_watermark = now + WATERMARK_INTERVAL;
            }
        }
    }

    /// Follows the group's assignment in the watermark combiner: a partition given holds the
    /// watermark back until its first record (or its idleness), one taken no longer does.
    fn track_partitions(&mut self, taken: &[TopicPartition]) {
        let given = std::mem::take(&mut *self.given.lock().unwrap_or_else(std::sync::PoisonError::into_inner));
        let now = Instant::now();
        for tp in taken {
            self.combiner.remove_split(&split_key(&tp.topic, tp.partition));
        }
        for tp in &given {
            self.combiner.add_split(split_key(&tp.topic, tp.partition), now);
        }
        if !taken.is_empty() {
            self.current_split = None;
        }
    }

    /// Every watermark interval: the combined watermark of the partitions owned, to the
    /// user functions (through their context) and the sink's serializer.
    fn emit_watermark(&mut self, now: Instant) {
        if let Some(ev) = self.combiner.on_periodic_emit(now) {
            debug!(event = ?ev, "watermark");
            if let WatermarkEvent::Watermark(w) = ev {
                self.ctx.set_watermark(w);
                self.metrics.source().set_watermark(w);
            }
        }
    }

    /// Deserializes one record, runs it through the user functions and writes the outputs
    /// in the open transaction (begun by the first output).
    async fn process(&mut self, rec: &ConsumerRecord, now: Instant, outputs: &mut Vec<(O, i64)>) -> Result<()> {
        let view = SourceRecord::of(rec);
        if let Some(work) = self.deserializer.prepare(&view) {
            work.await?;
        }
        let same_run = matches!(&self.open.noted, Some((t, p)) if *p == rec.partition && Arc::ptr_eq(t, &rec.topic));
        if !same_run {
            self.open.start.entry(rec.topic_partition()).or_insert(rec.offset);
            self.open.noted = Some((rec.topic.clone(), rec.partition));
        }
        self.records_in += 1;
        let bytes = rec.key.as_ref().map_or(0, |k| k.len()) + rec.value.as_ref().map_or(0, |v| v.len());
        self.metrics.source().records_in(1, bytes as u64);
        let Some(value) = self.deserializer.deserialize(&view)? else {
            self.metrics.source().skipped(1);
            return Ok(());
        };
        let timestamp = self.watermarks.extract_timestamp(&value, rec.timestamp);
        let same_split =
            matches!(&self.current_split, Some(((t, p), _)) if *p == rec.partition && Arc::ptr_eq(t, &rec.topic));
        if !same_split {
            let key = split_key(&rec.topic, rec.partition);
            self.current_split = Some(((rec.topic.clone(), rec.partition), key));
        }
        if let Some((_, key)) = &self.current_split {
            self.combiner.on_event(key, &value, timestamp, now);
        }
        let ctx = ProcessContext::new(&rec.topic, rec.partition, rec.offset, timestamp, &rec.headers)
            .with_key(rec.key.as_ref())
            .with_watermark(self.combiner.current_watermark())
            .with_record_timestamp(rec.timestamp, rec.timestamp_type);
        (self.chain)(&ctx, value, &mut |o, ts| {
            outputs.push((o, ts));
            Ok(())
        })?;
        for (o, ts) in outputs.drain(..) {
            self.write(&o, ts).await?;
        }
        Ok(())
    }

    async fn write(&mut self, element: &O, timestamp: i64) -> Result<()> {
        self.ctx.set_timestamp(Some(timestamp));
        let serializer = &self.serializer;
        let mut record = serializer.serialize(element, &self.ctx)?;
        let missing = self.ctx.take_missing();
        if !missing.is_empty() {
            // The serializer asked for partitions of topics not cached: fetch, ask again.
            for topic in &missing {
                self.producer.client().topic(topic).await.map_err(|e| {
                    ConnectorError::Client(e.with_context(format!("metadata of the sink topic {topic:?}")))
                })?;
            }
            record = serializer.serialize(element, &self.ctx)?;
            if let Some(t) = self.ctx.take_missing().into_iter().next() {
                return Err(ConnectorError::Serialize(format!(
                    "the serializer needs the partitions of topic {t:?}, which has none"
                )));
            }
        }
        let Some(mut record) = record else { return Ok(()) };
        if !self.sink.writes_timestamp() {
            record.timestamp = None;
        }
        self.begin().await?;
        // Its delivery is checked by commit_transaction, which fails if any record failed.
        let _delivery = self.producer.send(record).await?;
        self.records_out += 1;
        self.metrics.records_out(1);
        Ok(())
    }

    async fn begin(&mut self) -> Result<()> {
        if !self.open.begun {
            self.producer.begin_transaction().await?;
            self.open.begun = true;
        }
        Ok(())
    }

    /// Commits the outputs and the positions reached, together; nothing to do when nothing
    /// was read since the last commit.
    async fn commit(&mut self) -> Result<()> {
        if self.open.start.is_empty() && !self.open.begun {
            return Ok(());
        }
        let started = Instant::now();
        let group = self
            .consumer
            .group_metadata()
            .ok_or_else(|| ConnectorError::Config("elastic mode: the consumer has no group".into()))?;
        // Positions, not last offsets + 1: they also move past transaction markers.
        let offsets = self.consumer.consumed_offsets();
        self.begin().await?;
        self.producer.send_offsets_to_transaction(&offsets, &group).await?;
        self.producer.commit_transaction().await?;
        self.open = Open::default();
        self.commits += 1;
        self.metrics.checkpoint_completed(self.commits, started.elapsed(), 0);
        debug!(
            partitions = offsets.len(),
            took_ms = started.elapsed().as_millis() as u64,
            "transaction committed with its offsets"
        );
        Ok(())
    }

    /// Aborts the open transaction and rewinds what the member still owns to where the
    /// transaction began, and `unprocessed` records (returned by a poll, not processed) to
    /// their first offset: they are all read again.
    async fn abort_and_rewind(&mut self, unprocessed: &[ConsumerRecord]) -> Result<()> {
        if self.open.begun {
            self.producer.abort_transaction().await?;
        }
        let mut rewind = std::mem::take(&mut self.open.start);
        for r in unprocessed {
            rewind.entry(r.topic_partition()).or_insert(r.offset);
        }
        let owned: BTreeSet<TopicPartition> = self.consumer.assignment().into_iter().collect();
        for (tp, offset) in rewind {
            if owned.contains(&tp) {
                self.consumer.seek(&tp, offset)?;
            }
        }
        self.open = Open::default();
        self.aborts += 1;
        self.metrics.checkpoint_failed();
        Ok(())
    }

    /// After a failed write or commit: a transaction the group or the coordinator refused
    /// (the member was fenced or rebalanced, a record failed) is aborted and its records read
    /// again; anything else ends the run.
    async fn recover(&mut self, e: ConnectorError, unprocessed: &[ConsumerRecord]) -> Result<()> {
        let ConnectorError::Client(c) = &e else { return Err(e) };
        let group_moved = matches!(
            c.kafka_code(),
            Some(
                ErrorCode::IllegalGeneration
                    | ErrorCode::UnknownMemberId
                    | ErrorCode::RebalanceInProgress
                    | ErrorCode::StaleMemberEpoch
                    | ErrorCode::FencedMemberEpoch
            )
        );
        if c.is_fatal() || !(group_moved || c.requires_abort()) {
            return Err(e);
        }
        warn!(error = %c, "the transaction cannot commit: aborted, its records are read again");
        self.abort_and_rewind(unprocessed).await
    }
}
