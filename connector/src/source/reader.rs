//! The source reader (Flink's `KafkaSourceReader` with its `KafkaPartitionSplitReader`): every
//! split of one subtask read through one consumer.
//!
//! * Splits arrive with [`SourceReader::add_splits`] (the enumerator's initial discovery,
//!   later discoveries, or the split states of a checkpoint). The consumer is in assign mode
//!   (no group membership) and seeks each new split to its starting offset; markers
//!   (earliest, latest, committed) are resolved by the consumer at once, so a split state
//!   always holds a concrete offset.
//! * [`SourceReader::poll`] returns deserialized values with their event time. A split is
//!   finished when the consumer's **position** reaches its stopping offset: under
//!   read_committed the position moves past transaction markers and aborted records, which
//!   never reach the reader, so comparing record offsets would wait forever for a record
//!   that does not exist (Flink's split reader compares positions for the same reason).
//!   Records at or past the stopping offset are dropped, and the finished partition is
//!   removed from the consumer.
//! * [`SourceReader::snapshot_state`] is the reader's part of a checkpoint: the unfinished
//!   splits starting at their current positions. Restoring those splits resumes exactly
//!   after the last record emitted before the snapshot.
//! * [`SourceReader::notify_checkpoint_complete`] commits the snapshot's offsets to the
//!   group when `commit.offsets.on.checkpoint` is on: for monitoring (lag in
//!   `kafka-consumer-groups`), never read back for recovery. Commits run in the background,
//!   one at a time and in checkpoint order; a failure is counted (`commitsFailed`) and logged.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{Consumer, Headers, OffsetAndMetadata, TimestampType};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::builder::KafkaSource;
use super::deserializer::{KafkaRecordDeserializer, SourceRecord};
use super::split::{KafkaPartitionSplit, KafkaPartitionSplitState, StartingOffset, TopicPartition};
use super::watermark::{WatermarkCombiner, WatermarkEvent, WatermarkStrategy};
use crate::metrics::SourceReaderMetrics;
use crate::{ConnectorError, Result};

/// One value the source emits, with its event time and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceElement<T> {
    /// The deserialized value.
    pub value: T,
    /// Event time in ms: the record timestamp, or what the watermark strategy's timestamp
    /// assigner returned.
    pub timestamp: i64,
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// The record's key (a view of the fetched bytes, not a copy).
    pub key: Option<Bytes>,
    /// The record's headers (decoded lazily from the fetched bytes).
    pub headers: Headers,
    /// The Kafka record timestamp (ms), which `timestamp` equals unless a timestamp assigner
    /// read the event time from the value.
    pub record_timestamp: i64,
    /// Whether the producer or the broker set `record_timestamp`.
    pub timestamp_type: TimestampType,
    /// The producer's span context from the record's `traceparent` header (feature
    /// `opentelemetry`).
    #[cfg(feature = "opentelemetry")]
    pub trace_context: Option<opentelemetry::trace::SpanContext>,
}

impl<T> SourceElement<T> {
    /// An element of a source of the user's (see [`super::Source`]): `value` with event time
    /// `timestamp`, read from split `stream` (Kafka: the topic) `partition` at `offset`;
    /// no key, no headers, the record timestamp equal to the event time.
    pub fn new(value: T, timestamp: i64, stream: impl Into<Arc<str>>, partition: i32, offset: i64) -> Self {
        SourceElement {
            value,
            timestamp,
            topic: stream.into(),
            partition,
            offset,
            key: None,
            headers: Headers::default(),
            record_timestamp: timestamp,
            timestamp_type: TimestampType::CreateTime,
            #[cfg(feature = "opentelemetry")]
            trace_context: None,
        }
    }
}

/// A split being read.
struct ActiveSplit {
    state: KafkaPartitionSplitState,
    /// `topic-partition`, the split id and watermark key (kept to avoid a format per record).
    split_id: String,
    tp: TopicPartition,
    /// Offset of the last record read (emitted or skipped) since the metrics were updated.
    last_record: Option<i64>,
}

type CommitRequest = (u64, BTreeMap<TopicPartition, i64>);

/// Reads the splits of one subtask with one consumer; see the module docs.
///
/// Not cancellation-safe across [`Self::poll`]: dropping a `poll` future may lose records
/// the consumer had already handed over; drop the reader then (and restore from a checkpoint).
pub struct SourceReader<T> {
    subtask: usize,
    deserializer: Arc<dyn KafkaRecordDeserializer<T>>,
    strategy: WatermarkStrategy<T>,
    combiner: WatermarkCombiner<T>,
    consumer: Consumer,
    splits: BTreeMap<TopicPartition, ActiveSplit>,
    /// Final positions of splits finished since the last snapshot (committed once).
    finished_uncommitted: BTreeMap<TopicPartition, i64>,
    finished_count: usize,
    no_more_splits: bool,
    /// Offsets of each snapshot not yet completed, by checkpoint id.
    offsets_to_commit: BTreeMap<u64, BTreeMap<TopicPartition, i64>>,
    committer: Option<(mpsc::UnboundedSender<CommitRequest>, JoinHandle<()>)>,
    metrics: SourceReaderMetrics,
    register_consumer_metrics: bool,
    failed: bool,
}

impl<T> fmt::Debug for SourceReader<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SourceReader")
            .field("subtask", &self.subtask)
            .field(
                "splits",
                &self.splits.values().map(|s| s.state.to_split()).collect::<Vec<_>>(),
            )
            .field("finished_splits", &self.finished_count)
            .field("no_more_splits", &self.no_more_splits)
            .field("commit_offsets", &self.committer.is_some())
            .finish_non_exhaustive()
    }
}

impl<T> SourceReader<T> {
    /// The reader of subtask `subtask`, with no watermarks (records still carry their
    /// event time) and its own metrics. Connects the consumer
    /// ([`KafkaSource::consumer_config`]); no split yet.
    pub async fn new(source: &KafkaSource<T>, subtask: usize) -> Result<Self> {
        Self::with_options(
            source,
            subtask,
            WatermarkStrategy::no_watermarks(),
            SourceReaderMetrics::default(),
        )
        .await
    }

    /// [`Self::new`] with a watermark strategy and a metrics handle to update.
    pub async fn with_options(
        source: &KafkaSource<T>,
        subtask: usize,
        strategy: WatermarkStrategy<T>,
        metrics: SourceReaderMetrics,
    ) -> Result<Self> {
        let config = source.consumer_config(subtask);
        let consumer = Consumer::new(config.clone()).await?;
        let committer = if source.commit_offsets_on_checkpoint() && config.group_id.is_some() {
            // A second consumer on the same connections, only for commits: the reading
            // consumer never waits for one, and commits leave in checkpoint order.
            let commit_consumer = Consumer::with_client(consumer.client().clone(), config)?;
            let (tx, rx) = mpsc::unbounded_channel();
            let task = tokio::spawn(run_committer(commit_consumer, rx, metrics.clone()));
            Some((tx, task))
        } else {
            None
        };
        Ok(SourceReader {
            subtask,
            deserializer: source.deserializer().clone(),
            combiner: strategy.create_combiner(),
            strategy,
            consumer,
            splits: BTreeMap::new(),
            finished_uncommitted: BTreeMap::new(),
            finished_count: 0,
            no_more_splits: false,
            offsets_to_commit: BTreeMap::new(),
            committer,
            metrics,
            register_consumer_metrics: source.register_consumer_metrics(),
            failed: false,
        })
    }

    /// This reader's subtask index.
    pub fn subtask(&self) -> usize {
        self.subtask
    }

    /// The metrics handle this reader updates.
    pub fn metrics(&self) -> SourceReaderMetrics {
        self.metrics.clone()
    }

    /// The splits being read, as they would be snapshotted now.
    pub fn active_splits(&self) -> Vec<KafkaPartitionSplit> {
        self.splits.values().map(|s| s.state.to_split()).collect()
    }

    /// How many splits finished (reached their stopping offset) so far.
    pub fn finished_splits(&self) -> usize {
        self.finished_count
    }

    /// Whether offsets are committed on checkpoint completion.
    pub fn commits_offsets(&self) -> bool {
        self.committer.is_some()
    }

    /// Adds splits to read (Flink's `addSplits`): seeks each to its starting offset
    /// (resolving markers), and finishes at once those with nothing to read. A split whose
    /// partition is already being read is ignored with a warning.
    pub async fn add_splits(&mut self, splits: Vec<KafkaPartitionSplit>) -> Result<()> {
        let now = Instant::now();
        let mut added = Vec::new();
        for split in splits {
            let ctp = TopicPartition::new(&split.topic, split.partition);
            if self.splits.contains_key(&ctp) {
                warn!(split = %split, "split already assigned to this reader; ignored");
                continue;
            }
            if split.starting().is_none() {
                return Err(ConnectorError::Config(format!(
                    "split {split}: starting offset {} is neither an offset nor a marker",
                    split.starting_offset
                )));
            }
            if split.is_empty() {
                debug!(split = %split, "empty split finished at once");
                self.finished_count += 1;
                self.finished_uncommitted
                    .insert(split.topic_partition(), split.starting_offset);
                continue;
            }
            let active = ActiveSplit {
                split_id: split.split_id(),
                tp: split.topic_partition(),
                state: KafkaPartitionSplitState::new(split),
                last_record: None,
            };
            self.combiner.add_split(active.split_id.clone(), now);
            self.splits.insert(ctp.clone(), active);
            added.push(ctp);
        }
        if added.is_empty() {
            return Ok(());
        }
        self.consumer.assign(self.splits.keys().cloned())?;
        for ctp in &added {
            let Some(s) = self.splits.get(ctp) else { continue };
            match s.state.split().starting() {
                Some(StartingOffset::Offset(o)) => self.consumer.seek(ctp, o)?,
                Some(StartingOffset::Earliest) => self.consumer.seek_to_beginning(std::slice::from_ref(ctp))?,
                Some(StartingOffset::Latest) => self.consumer.seek_to_end(std::slice::from_ref(ctp))?,
                // The consumer resolves a missing position from the group's committed offset,
                // else auto.offset.reset (set from the starting initializer).
                Some(StartingOffset::Committed) | None => {}
            }
        }
        for ctp in &added {
            let position = self.consumer.position(ctp).await?;
            if let Some(s) = self.splits.get_mut(ctp) {
                s.state.set_current_offset(position);
                info!(subtask = self.subtask, split = %s.state.split(), position, "reading split");
            }
        }
        self.finish_reached().await
    }

    /// No split will be added any more (Flink's `notifyNoMoreSplits`): once every split is
    /// finished, [`Self::is_finished`] is true.
    pub fn notify_no_more_splits(&mut self) {
        self.no_more_splits = true;
    }

    /// The end of a bounded input: no more splits will come and every split is finished.
    pub fn is_finished(&self) -> bool {
        self.no_more_splits && self.splits.is_empty()
    }

    /// Waits up to `timeout` for records and returns them deserialized (possibly none).
    ///
    /// A record the deserializer skips (`Ok(None)`) is consumed but not returned. A
    /// deserializer error is returned as is ([`ConnectorError::Deserialize`] names topic,
    /// partition and offset) and fails the reader: later calls and snapshots fail too, since
    /// records before the bad one in the same fetch were consumed but not returned.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<SourceElement<T>>> {
        self.check_failed()?;
        if self.splits.is_empty() {
            tokio::time::sleep(timeout).await;
            return Ok(Vec::new());
        }
        let records = self.consumer.poll(timeout).await?;
        let now = Instant::now();
        let mut out = Vec::with_capacity(records.len());
        let (mut bytes, mut skipped) = (0u64, 0u64);
        for rec in &records {
            let ctp = TopicPartition {
                topic: rec.topic.clone(),
                partition: rec.partition,
            };
            let Some(split) = self.splits.get_mut(&ctp) else {
                continue;
            };
            if split.state.stopping_offset().is_some_and(|stop| rec.offset >= stop) {
                continue;
            }
            split.last_record = Some(rec.offset);
            bytes += (rec.key.as_ref().map_or(0, |k| k.len()) + rec.value.as_ref().map_or(0, |v| v.len())) as u64;
            let view = SourceRecord::of(rec);
            if let Some(work) = self.deserializer.prepare(&view) {
                // E.g. a registry deserializer fetching a writer schema it has not seen.
                if let Err(e) = work.await {
                    self.failed = true;
                    return Err(e);
                }
            }
            match self.deserializer.deserialize(&view) {
                Ok(Some(value)) => {
                    let timestamp = self.strategy.extract_timestamp(&value, rec.timestamp);
                    self.combiner.on_event(&split.split_id, &value, timestamp, now);
                    out.push(SourceElement {
                        value,
                        timestamp,
                        topic: rec.topic.clone(),
                        partition: rec.partition,
                        offset: rec.offset,
                        key: rec.key.clone(),
                        headers: rec.headers.clone(),
                        record_timestamp: rec.timestamp,
                        timestamp_type: rec.timestamp_type,
                        #[cfg(feature = "opentelemetry")]
                        trace_context: rec.trace_context(),
                    });
                }
                Ok(None) => skipped += 1,
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
        self.metrics.records_in(out.len() as u64, bytes);
        self.metrics.skipped(skipped);
        // Positions, not record offsets: they also move past markers and aborted records.
        let tps: Vec<TopicPartition> = self.splits.keys().cloned().collect();
        for ctp in &tps {
            let position = self.consumer.position(ctp).await?;
            if let Some(s) = self.splits.get_mut(ctp) {
                s.state.set_current_offset(position);
            }
        }
        self.metrics.set_current_offsets(
            self.splits
                .values_mut()
                .filter_map(|s| s.last_record.take().map(|o| (&s.tp, o))),
        );
        let lags: Option<Vec<i64>> = self.splits.keys().map(|tp| self.consumer.current_lag(tp)).collect();
        self.metrics.set_pending_records(lags.map(|l| l.iter().sum()));
        if self.register_consumer_metrics {
            self.metrics.set_consumer(self.consumer.metrics());
        }
        self.finish_reached().await?;
        Ok(out)
    }

    /// Removes the splits whose position reached their stopping offset.
    async fn finish_reached(&mut self) -> Result<()> {
        let done: Vec<TopicPartition> = self
            .splits
            .iter()
            .filter(|(_, s)| s.state.is_finished())
            .map(|(tp, _)| tp.clone())
            .collect();
        if done.is_empty() {
            return Ok(());
        }
        for ctp in &done {
            if let Some(s) = self.splits.remove(ctp) {
                info!(subtask = self.subtask, split = %s.state.split(), position = s.state.current_offset(), "split finished");
                self.combiner.remove_split(&s.split_id);
                self.finished_uncommitted.insert(s.tp, s.state.current_offset());
                self.finished_count += 1;
            }
        }
        self.consumer.assign(self.splits.keys().cloned())?;
        Ok(())
    }

    fn check_failed(&self) -> Result<()> {
        if self.failed {
            return Err(ConnectorError::Config(
                "the source reader failed earlier (a record could not be deserialized); restore a new reader from \
                 the last checkpoint"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The reader's state at checkpoint `checkpoint_id`: every unfinished split, starting at
    /// its current position (Flink's `snapshotState`). Also remembers the offsets to commit
    /// when the checkpoint completes (finished splits' final positions included once).
    pub fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<KafkaPartitionSplit>> {
        self.check_failed()?;
        let splits: Vec<KafkaPartitionSplit> = self.splits.values().map(|s| s.state.to_split()).collect();
        if self.committer.is_some() {
            let mut offsets: BTreeMap<TopicPartition, i64> = std::mem::take(&mut self.finished_uncommitted);
            offsets.extend(
                splits
                    .iter()
                    .filter(|s| s.starting_offset >= 0)
                    .map(|s| (s.topic_partition(), s.starting_offset)),
            );
            self.offsets_to_commit.insert(checkpoint_id, offsets);
        } else {
            self.finished_uncommitted.clear();
        }
        Ok(splits)
    }

    /// Checkpoint `checkpoint_id` is durable (Flink's `notifyCheckpointComplete`): commits its
    /// offsets to the group in the background when `commit.offsets.on.checkpoint` is on, and
    /// forgets older snapshots. Never fails: a failed commit is counted in `commitsFailed`.
    pub fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        let Some(offsets) = self.offsets_to_commit.remove(&checkpoint_id) else {
            return;
        };
        self.offsets_to_commit.retain(|id, _| *id > checkpoint_id);
        if offsets.is_empty() {
            return;
        }
        if let Some((tx, _)) = &self.committer {
            if tx.send((checkpoint_id, offsets)).is_err() {
                warn!(checkpoint_id, "offset committer stopped; offsets not committed");
                self.metrics.commit_failed();
            }
        }
    }

    /// Call every watermark interval (Flink's `pipeline.auto-watermark-interval`, 200 ms):
    /// the combined watermark of the splits (minimum over the active ones, idle splits
    /// excluded) when it advanced, or a switch to idle / active.
    #[must_use]
    pub fn emit_watermark(&mut self, now: Instant) -> Option<WatermarkEvent> {
        let ev = self.combiner.on_periodic_emit(now);
        if let Some(WatermarkEvent::Watermark(w)) = ev {
            self.metrics.set_watermark(w);
        }
        ev
    }

    /// The last watermark emitted.
    pub fn current_watermark(&self) -> Option<i64> {
        self.combiner.current_watermark()
    }

    /// Stops the reader: waits (up to 10 s) for offset commits already requested, then
    /// closes the consumer.
    pub async fn close(mut self) -> Result<()> {
        if let Some((tx, task)) = self.committer.take() {
            drop(tx);
            if tokio::time::timeout(Duration::from_secs(10), task).await.is_err() {
                warn!("offset commits still running after 10 s; abandoned");
            }
        }
        self.consumer.close().await?;
        Ok(())
    }
}

/// Commits requested offsets one at a time, in checkpoint order, counting the outcomes.
async fn run_committer(
    mut consumer: Consumer,
    mut rx: mpsc::UnboundedReceiver<CommitRequest>,
    metrics: SourceReaderMetrics,
) {
    while let Some((checkpoint_id, offsets)) = rx.recv().await {
        let request: BTreeMap<TopicPartition, OffsetAndMetadata> = offsets
            .iter()
            .map(|(tp, o)| (tp.clone(), OffsetAndMetadata::new(*o)))
            .collect();
        match consumer.commit_offsets_sync(&request).await {
            Ok(()) => {
                debug!(checkpoint_id, partitions = offsets.len(), "offsets committed");
                metrics.commit_succeeded(&offsets);
            }
            Err(e) => {
                // Flink: "Failed to commit consumer offsets for checkpoint"; monitoring only.
                warn!(checkpoint_id, error = %e, "failed to commit consumer offsets for checkpoint");
                metrics.commit_failed();
            }
        }
    }
}
