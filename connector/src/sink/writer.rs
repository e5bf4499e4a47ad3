//! One subtask's writer (Flink's `KafkaWriter` / `ExactlyOnceKafkaWriter`).

use std::collections::{HashSet, VecDeque};
use std::marker::PhantomData;
use std::sync::Arc;

use strom_client::ErrorCode;
use strom_client::{Client, DeliveryFuture, Producer, ProducerRecord, TransactionalProducer};
use tracing::{debug, warn};

use super::committer::{KafkaCommittable, KafkaCommitter};
use super::metrics::SinkMetrics;
use super::recovery::{fill_gap, transactional_id, KafkaWriterState, RestoreReport};
use super::serializer::KafkaSinkContext;
use super::{DeliveryGuarantee, SinkShared};
use crate::error::{ConnectorError, Result};

/// The open transaction of an exactly-once writer.
struct OpenTxn {
    producer: TransactionalProducer,
    transactional_id: String,
}

/// Exactly-once bookkeeping.
struct Transactions {
    prefix: String,
    open: Option<OpenTxn>,
    /// Highest checkpoint id known durable (restored from, or notified): ids at or below it
    /// are never probed again, so they need not be dense (see `recovery`).
    durable: u64,
    /// Highest name this writer initialized (a transaction or a filled gap).
    last_initialized: u64,
}

enum Mode {
    /// None and at-least-once: one producer for the writer's life.
    Plain(Producer),
    /// Exactly-once: one transactional producer per checkpoint, begun with the first record.
    Exactly(Transactions),
}

/// Writes the elements of one subtask to Kafka; made by
/// [`KafkaSink::create_writer`](super::KafkaSink::create_writer) or
/// [`KafkaSink::restore_writer`](super::KafkaSink::restore_writer).
///
/// Call order per checkpoint `c` (ids increasing): [`write`](Self::write)…,
/// [`prepare_commit(c)`](Self::prepare_commit), [`snapshot_state(c)`](Self::snapshot_state),
/// store both durably, commit the committables ([`KafkaCommitter::commit`]), then
/// [`notify_checkpoint_complete(c)`](Self::notify_checkpoint_complete).
///
/// A failed send (at once or later, through its delivery result) fails the writer: that call
/// and every later one return the error, so the checkpoint cannot succeed; drop the writer
/// and restore a new one from the last durable checkpoint. Not cancellation-safe as a whole:
/// dropping a `write` or `prepare_commit` future midway leaves the writer in an unknown
/// state (as a crash would), so drop the writer too.
pub struct KafkaSinkWriter<T> {
    shared: Arc<SinkShared<T>>,
    client: Client,
    subtask: u32,
    parallelism: u32,
    ctx: KafkaSinkContext,
    mode: Mode,
    /// Delivery results not looked at yet, oldest first.
    pending: VecDeque<DeliveryFuture>,
    full_prune_at: usize,
    known_topics: HashSet<String>,
    failure: Option<strom_client::Error>,
    metrics: SinkMetrics,
    last_checkpoint: u64,
    report: RestoreReport,
    _element: PhantomData<fn(&T)>,
}

impl<T> std::fmt::Debug for KafkaSinkWriter<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSinkWriter")
            .field("subtask", &self.subtask)
            .field("parallelism", &self.parallelism)
            .field("delivery_guarantee", &self.shared.guarantee)
            .field("last_checkpoint", &self.last_checkpoint)
            .field(
                "open_transaction",
                &match &self.mode {
                    Mode::Exactly(t) => t.open.as_ref().map(|o| o.transactional_id.as_str()),
                    Mode::Plain(_) => None,
                },
            )
            .field("pending_deliveries", &self.pending.len())
            .field("failed", &self.failure.is_some())
            .finish_non_exhaustive()
    }
}

const FIRST_FULL_PRUNE: usize = 4096;

/// Key, value and header bytes of a record (`numBytesOut`).
fn record_bytes(r: &ProducerRecord) -> u64 {
    let h: usize = r
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.as_ref().map_or(0, |v| v.len()))
        .sum();
    (r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len()) + h) as u64
}

impl<T> KafkaSinkWriter<T> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        shared: Arc<SinkShared<T>>,
        client: Client,
        producer: Option<Producer>,
        subtask: u32,
        parallelism: u32,
        restored_checkpoint: u64,
        metrics: SinkMetrics,
        report: RestoreReport,
    ) -> Self {
        let mode = match (producer, &shared.prefix) {
            (Some(p), _) => Mode::Plain(p),
            (None, prefix) => Mode::Exactly(Transactions {
                prefix: prefix.clone().unwrap_or_default(),
                open: None,
                durable: restored_checkpoint,
                last_initialized: restored_checkpoint,
            }),
        };
        KafkaSinkWriter {
            ctx: KafkaSinkContext::new(client.clone(), subtask, parallelism),
            shared,
            client,
            subtask,
            parallelism,
            mode,
            pending: VecDeque::new(),
            full_prune_at: FIRST_FULL_PRUNE,
            known_topics: HashSet::new(),
            failure: None,
            metrics,
            last_checkpoint: restored_checkpoint,
            report,
            _element: PhantomData,
        }
    }

    /// This writer's subtask index.
    pub fn subtask(&self) -> u32 {
        self.subtask
    }

    /// The sink's parallelism.
    pub fn parallelism(&self) -> u32 {
        self.parallelism
    }

    /// The delivery guarantee.
    pub fn delivery_guarantee(&self) -> DeliveryGuarantee {
        self.shared.guarantee
    }

    /// The last checkpoint prepared (or restored from); 0 before any.
    pub fn last_checkpoint_id(&self) -> u64 {
        self.last_checkpoint
    }

    /// The transactional id of the open transaction (exactly-once, after a record since the
    /// last checkpoint).
    pub fn current_transactional_id(&self) -> Option<&str> {
        match &self.mode {
            Mode::Exactly(t) => t.open.as_ref().map(|o| o.transactional_id.as_str()),
            Mode::Plain(_) => None,
        }
    }

    /// The writer's counters (a live handle).
    pub fn metrics(&self) -> SinkMetrics {
        self.metrics.clone()
    }

    /// What the restore that made this writer did.
    pub fn restore_report(&self) -> &RestoreReport {
        &self.report
    }

    /// A committer sharing this writer's connections and metrics.
    pub fn committer(&self) -> KafkaCommitter {
        KafkaCommitter::with_metrics(self.client.clone(), self.metrics.clone())
    }

    /// The error that failed the writer, if one did.
    pub fn failure(&self) -> Option<&strom_client::Error> {
        self.failure.as_ref()
    }

    fn check_failed(&self) -> Result<()> {
        match &self.failure {
            Some(e) => Err(ConnectorError::Client(e.clone().with_context(
                "the sink writer failed earlier; restore a new writer from the last checkpoint",
            ))),
            None => Ok(()),
        }
    }

    /// Records a delivery failure: counted, and the writer fails (first error kept), unless
    /// `set_log_failures_only` says to log it and go on (a fatal producer error still fails).
    fn note_failure(&mut self, e: strom_client::Error) {
        self.metrics.record_error();
        if self.shared.log_failures_only && !e.is_fatal() {
            // The legacy FlinkKafkaProducer's logFailuresOnly: "Error while sending record to Kafka".
            warn!(subtask = self.subtask, error = %e, "a record could not be delivered and is lost (log failures only)");
            return;
        }
        if self.failure.is_none() {
            warn!(subtask = self.subtask, error = %e, "a record could not be delivered; the writer fails");
            self.failure = Some(e);
        }
    }

    fn fail_with(&mut self, e: strom_client::Error) -> ConnectorError {
        if self.failure.is_none() {
            self.failure = Some(e.clone());
        }
        ConnectorError::Client(e)
    }

    /// Looks at delivery results that are already known, without waiting.
    fn prune(&mut self) {
        while let Some(r) = self.pending.front().and_then(DeliveryFuture::try_result) {
            self.pending.pop_front();
            if let Err(e) = r {
                self.note_failure(e);
            }
        }
        if self.pending.len() >= self.full_prune_at {
            // A slow partition at the front holds back results behind it: sweep them all.
            let mut failures = Vec::new();
            self.pending.retain(|f| match f.try_result() {
                Some(Ok(_)) => false,
                Some(Err(e)) => {
                    failures.push(e);
                    false
                }
                None => true,
            });
            for e in failures {
                self.note_failure(e);
            }
            self.full_prune_at = (self.pending.len() * 2).max(FIRST_FULL_PRUNE);
        }
    }

    /// Waits for every outstanding delivery result; the first failure fails the writer.
    async fn settle(&mut self) -> Result<()> {
        let mut failed = 0u64;
        while let Some(f) = self.pending.pop_front() {
            if let Err(e) = f.wait().await {
                failed += 1;
                self.note_failure(e);
            }
        }
        self.full_prune_at = FIRST_FULL_PRUNE;
        match (&self.failure, failed) {
            (Some(e), n) => Err(ConnectorError::Client(e.clone().with_context(format!(
                "{n} record(s) since the last checkpoint could not be delivered"
            )))),
            (None, _) => Ok(()),
        }
    }

    /// Makes sure `topic` exists (fetching its metadata once); a missing topic is an error
    /// naming it, where Java's producer would block for `max.block.ms`, and fails the writer.
    async fn ensure_topic(&mut self, topic: &str) -> Result<()> {
        if self.known_topics.contains(topic) {
            return Ok(());
        }
        match self.client.topic(topic).await {
            Ok(_) => {
                self.known_topics.insert(topic.to_owned());
                Ok(())
            }
            Err(e) => {
                let e = if e.kafka_code() == Some(ErrorCode::UnknownTopicOrPartition) {
                    e.with_context(format!("the sink topic {topic:?} does not exist; create it first"))
                } else {
                    e.with_context(format!("metadata of the sink topic {topic:?}"))
                };
                // The element is lost: like a failed send, this fails the writer.
                self.metrics.record_error();
                Err(self.fail_with(e))
            }
        }
    }

    async fn serialize(&mut self, element: &T) -> Result<Option<ProducerRecord>> {
        let shared = self.shared.clone();
        let first = shared.serializer.serialize(element, &self.ctx)?;
        let missing = self.ctx.take_missing();
        if missing.is_empty() {
            return Ok(first);
        }
        // The serializer asked for partitions of topics not in the cache: fetch, ask again.
        for topic in &missing {
            self.ensure_topic(topic).await?;
        }
        let again = shared.serializer.serialize(element, &self.ctx)?;
        if let Some(t) = self.ctx.take_missing().into_iter().next() {
            return Err(ConnectorError::Serialize(format!(
                "the serializer needs the partitions of topic {t:?}, which has none"
            )));
        }
        Ok(again)
    }

    /// Begins the transaction named after the next checkpoint (exactly-once, first record).
    async fn begin_transaction(&mut self) -> Result<()> {
        let name = self.last_checkpoint.saturating_add(1);
        let (prefix, floor) = match &self.mode {
            Mode::Exactly(t) => (t.prefix.clone(), t.durable.max(t.last_initialized)),
            Mode::Plain(_) => return Ok(()),
        };
        if floor.saturating_add(1) < name {
            fill_gap(&self.client, &prefix, self.subtask, floor + 1, name).await?;
        }
        let id = transactional_id(&prefix, self.subtask, name);
        let mut cfg = self.shared.producer_config.clone();
        cfg.transactional_id = Some(id.clone());
        let producer = TransactionalProducer::with_client(self.client.clone(), cfg)?;
        if let Err(e) = producer.init_transactions().await {
            let e = if e.kafka_code() == Some(ErrorCode::InvalidTransactionTimeout) {
                e.with_context(format!(
                    "transaction.timeout.ms={} ms is above the broker's transaction.max.timeout.ms",
                    self.shared.producer_config.transaction_timeout.as_millis()
                ))
            } else {
                e.with_context(format!("initializing transactional id {id}"))
            };
            return Err(ConnectorError::Client(e));
        }
        producer.begin_transaction().await?;
        debug!(transactional_id = %id, "transaction begun");
        if let Mode::Exactly(t) = &mut self.mode {
            t.last_initialized = name;
            t.open = Some(OpenTxn {
                producer,
                transactional_id: id,
            });
        }
        Ok(())
    }

    /// Writes one element (serialized by the sink's record serializer; skipped when it
    /// returns `None`). Returns once the producer accepted the record; its delivery is
    /// checked later (each write looks at results already known; a checkpoint waits for
    /// all under at-least-once and exactly-once).
    pub async fn write(&mut self, element: &T) -> Result<()> {
        self.write_with_timestamp(element, None).await
    }

    /// Event time has reached `watermark` (ms) upstream (Flink's `SinkWriter.writeWatermark`,
    /// which a pipeline calls whenever its source's watermark advances). The Kafka sink writes
    /// nothing for it; serializers see it as [`KafkaSinkContext::current_watermark`] (e.g. to
    /// route or flag late elements), and [`Self::current_watermark`] returns it. A lower
    /// watermark than the last is ignored.
    pub fn write_watermark(&mut self, watermark: i64) {
        self.ctx.set_watermark(watermark);
    }

    /// The last watermark given to [`Self::write_watermark`].
    pub fn current_watermark(&self) -> Option<i64> {
        self.ctx.current_watermark()
    }

    /// [`write`](Self::write) with the element's timestamp (ms), which the built-in
    /// serializer uses as the record timestamp.
    pub async fn write_with_timestamp(&mut self, element: &T, timestamp: Option<i64>) -> Result<()> {
        self.check_failed()?;
        self.ctx.set_timestamp(timestamp);
        let Some(mut record) = self.serialize(element).await? else {
            return Ok(());
        };
        if !self.shared.write_timestamp {
            record.timestamp = None;
        }
        self.ensure_topic(&record.topic).await?;
        if matches!(&self.mode, Mode::Exactly(t) if t.open.is_none()) {
            if let Err(e) = self.begin_transaction().await {
                if let ConnectorError::Client(c) = &e {
                    self.metrics.record_error();
                    self.failure.get_or_insert_with(|| c.clone());
                }
                return Err(e);
            }
        }
        let bytes = record_bytes(&record);
        let topic = record.topic.clone();
        let sent = match &self.mode {
            Mode::Plain(p) => p.send(record).await,
            Mode::Exactly(t) => match &t.open {
                Some(o) => o.producer.send(record).await,
                None => Err(strom_client::Error::other("no open transaction")),
            },
        };
        match sent {
            Ok(fut) => {
                self.metrics.record_out(bytes);
                self.pending.push_back(fut);
                self.prune();
                Ok(())
            }
            Err(e) => {
                let e = e.with_context(format!("the sink could not send a record to topic {topic}"));
                if self.shared.log_failures_only && !e.is_fatal() {
                    self.metrics.record_error();
                    warn!(subtask = self.subtask, error = %e, "a record could not be sent and is lost (log failures only)");
                    return Ok(());
                }
                self.metrics.record_error();
                Err(self.fail_with(e))
            }
        }
    }

    /// Sends everything accepted so far and waits for every delivery result; any failure
    /// since the last checkpoint fails the writer and is returned. Under exactly-once the
    /// records are in the open transaction: sent, not committed.
    pub async fn flush(&mut self) -> Result<()> {
        self.check_failed()?;
        match &self.mode {
            Mode::Plain(p) => p.flush().await?,
            Mode::Exactly(t) => {
                if let Some(o) = &t.open {
                    o.producer.flush().await?;
                }
            }
        }
        self.settle().await
    }

    /// Flink's pre-commit, at checkpoint `checkpoint_id` (greater than the previous one):
    ///
    /// * none: nothing is flushed; returns the first failure seen so far, if any (records
    ///   still in flight may be lost if the process dies: no guarantee);
    /// * at-least-once: [`flush`](Self::flush): every record written before is acknowledged,
    ///   or the checkpoint fails;
    /// * exactly-once: the open transaction is flushed and pre-committed (it stays open) and
    ///   returned as the checkpoint's committable; no records since the last checkpoint, no
    ///   transaction, nothing returned. A failure aborts the transaction and fails the writer.
    pub async fn prepare_commit(&mut self, checkpoint_id: u64) -> Result<Vec<KafkaCommittable>> {
        if checkpoint_id <= self.last_checkpoint {
            return Err(ConnectorError::Config(format!(
                "checkpoint ids must increase: prepare_commit({checkpoint_id}) after checkpoint {}",
                self.last_checkpoint
            )));
        }
        self.check_failed()?;
        let out = match self.shared.guarantee {
            DeliveryGuarantee::None => {
                self.prune();
                self.check_failed()?;
                Vec::new()
            }
            DeliveryGuarantee::AtLeastOnce => {
                self.flush().await?;
                Vec::new()
            }
            DeliveryGuarantee::ExactlyOnce => {
                let open = match &mut self.mode {
                    Mode::Exactly(t) => t.open.take(),
                    Mode::Plain(_) => None,
                };
                match open {
                    None => Vec::new(),
                    Some(o) => match o.producer.prepare().await {
                        Ok(prepared) => {
                            // prepare() flushed: every result is known; none may have failed.
                            if let Err(e) = self.settle().await {
                                self.abort(o).await;
                                return Err(e);
                            }
                            self.metrics.prepared();
                            debug!(transactional_id = %o.transactional_id, checkpoint_id, "transaction pre-committed");
                            vec![KafkaCommittable::from(prepared)]
                        }
                        Err(e) => {
                            let _ = self.settle().await;
                            self.abort(o).await;
                            let e = e.with_context(format!("pre-committing at checkpoint {checkpoint_id}"));
                            return Err(self.fail_with(e));
                        }
                    },
                }
            }
        };
        self.last_checkpoint = checkpoint_id;
        self.ctx.clear_partition_cache();
        Ok(out)
    }

    async fn abort(&self, open: OpenTxn) {
        match open.producer.abort_transaction().await {
            Ok(()) => self.metrics.aborted(1),
            Err(e) => warn!(
                transactional_id = %open.transactional_id,
                error = %e,
                "could not abort the transaction; it is aborted on restore, or by the broker after transaction.timeout.ms"
            ),
        }
    }

    /// The writer's state at checkpoint `checkpoint_id` (call after
    /// [`prepare_commit`](Self::prepare_commit) of the same id); store it with the checkpoint.
    pub fn snapshot_state(&self, checkpoint_id: u64) -> KafkaWriterState {
        KafkaWriterState {
            transactional_id_prefix: self.shared.prefix.clone(),
            subtask: self.subtask,
            parallelism: self.parallelism,
            checkpoint_id,
        }
    }

    /// Tells the writer checkpoint `checkpoint_id` is durable. Exactly-once writers use it to
    /// skip initializing the ids of empty checkpoints (see the `recovery` module docs);
    /// calling it is optional but saves one InitProducerId per empty checkpoint.
    pub fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        let last = self.last_checkpoint;
        if let Mode::Exactly(t) = &mut self.mode {
            // Never beyond what this writer prepared: a later id may still be in use.
            t.durable = t.durable.max(checkpoint_id.min(last));
        }
    }

    /// Shuts the writer down: at-least-once and none flush and report delivery failures;
    /// exactly-once aborts the open transaction, whose records were never pre-committed
    /// (pre-committed ones are left to the committer). For a final commit at the end of
    /// input, call [`prepare_commit`](Self::prepare_commit) and commit before closing.
    pub async fn close(mut self) -> Result<()> {
        let open = match &mut self.mode {
            Mode::Exactly(t) => t.open.take(),
            Mode::Plain(_) => None,
        };
        if let Some(o) = open {
            let _ = self.settle().await;
            self.abort(o).await;
            return self.check_failed();
        }
        match &self.mode {
            Mode::Plain(p) => {
                p.close().await?;
                self.settle().await
            }
            Mode::Exactly(_) => self.check_failed(),
        }
    }
}
