//! Metrics of the source reader and of a pipeline, under Apache Flink's names.
//!
//! Every metrics type here is a cheap `Clone` handle over shared counters: take one before a
//! pipeline runs ([`crate::pipeline::Pipeline::metrics`]) and read it from any task while it
//! runs; [`PipelineMetrics::snapshot`] gives the values at one instant, and
//! [`PipelineMetricsSnapshot::by_flink_name`] lists them under the names Flink's Kafka
//! connector and checkpointing report:
//!
//! | Flink name | meaning |
//! |---|---|
//! | `numRecordsIn` | records the source emitted (deserialized, not skipped) |
//! | `numRecordsOut` | elements the pipeline handed to the sink writer |
//! | `KafkaSourceReader.commitsSucceeded` / `commitsFailed` | offset commits on checkpoint completion |
//! | `KafkaSourceReader.topic.<t>.partition.<p>.currentOffset` | offset of the last record read from the partition |
//! | `KafkaSourceReader.topic.<t>.partition.<p>.committedOffset` | the offset last committed for it |
//! | `KafkaConsumer.current-offsets.<t>-<p>`, `KafkaConsumer.committed-offsets.<t>-<p>` | the same two, under the legacy names the old `FlinkKafkaConsumer` documented |
//! | `currentWatermark` | the source's combined watermark (absent until there is one) |
//! | `pendingRecords` | records behind the end of the partitions being read |
//! | `KafkaSourceReader.KafkaConsumer.records-consumed-total`, … | the reader consumer's metrics (`register.consumer.metrics`) |
//! | `numberOfCompletedCheckpoints` / `numberOfFailedCheckpoints` | checkpoints |
//! | `lastCheckpointDuration` | ms from the start of the last completed checkpoint to its commit |
//! | `lastCheckpointSize` | bytes of the last stored checkpoint |
//! | `numRestarts` | restarts made by the restart strategy |
//! | `numRecordsOutErrors`, `numBytesOut`, `currentSendTime` | the sink writer's ([`SinkMetricsSnapshot`]) |
//! | `KafkaSink.KafkaProducer.record-send-total`, … | the sink writer's producers' metrics (Java's `producer-metrics` group; averages and rates rounded) |
//!
//! [`PipelineMetricsSnapshot::prometheus`] renders the same values in the Prometheus text
//! format, named as Flink's Prometheus reporter names them (`flink_numRecordsIn`,
//! `flink_KafkaSourceReader_topic_partition_currentOffset{topic="…",partition="…"}`,
//! `flink_KafkaSink_numRecordsSend`); the connector example serves them with
//! `--metrics-addr`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use strom_client::ConsumerMetrics;

use crate::sink::{SinkMetrics, SinkMetricsSnapshot};
use crate::source::TopicPartition;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PartitionGauges {
    current_offset: Option<i64>,
    committed_offset: Option<i64>,
}

#[derive(Debug)]
struct ReaderCounters {
    records_in: AtomicU64,
    bytes_in: AtomicU64,
    records_skipped: AtomicU64,
    commits_succeeded: AtomicU64,
    commits_failed: AtomicU64,
    /// `i64::MIN`: no watermark yet.
    watermark: AtomicI64,
    /// `i64::MIN`: unknown.
    pending_records: AtomicI64,
    partitions: Mutex<BTreeMap<TopicPartition, PartitionGauges>>,
    consumer: Mutex<Option<ConsumerMetrics>>,
}

impl Default for ReaderCounters {
    fn default() -> Self {
        ReaderCounters {
            records_in: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            records_skipped: AtomicU64::new(0),
            commits_succeeded: AtomicU64::new(0),
            commits_failed: AtomicU64::new(0),
            watermark: AtomicI64::new(i64::MIN),
            pending_records: AtomicI64::new(i64::MIN),
            partitions: Mutex::default(),
            consumer: Mutex::default(),
        }
    }
}

/// Live counters of a [`SourceReader`](crate::source::SourceReader) (Flink's
/// `KafkaSourceReaderMetrics`). Cheap `Clone`.
#[derive(Debug, Clone, Default)]
pub struct SourceReaderMetrics {
    inner: Arc<ReaderCounters>,
}

/// The source reader's counters at one instant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceReaderMetricsSnapshot {
    /// `numRecordsIn`: records emitted (deserialized to a value).
    pub num_records_in: u64,
    /// `numBytesIn`: key and value bytes of the records read (emitted or skipped).
    pub num_bytes_in: u64,
    /// Records the deserializer skipped (`Ok(None)`).
    pub num_records_skipped: u64,
    /// `commitsSucceeded`: offset commits on checkpoint completion that succeeded.
    pub commits_succeeded: u64,
    /// `commitsFailed`: offset commits that failed (logged, never fatal).
    pub commits_failed: u64,
    /// `currentOffset` per partition: the offset of the last record read.
    pub current_offsets: BTreeMap<TopicPartition, i64>,
    /// `committedOffset` per partition: the offset last committed (the next one to read).
    pub committed_offsets: BTreeMap<TopicPartition, i64>,
    /// The combined watermark last emitted, if any.
    pub watermark: Option<i64>,
    /// `pendingRecords`: records behind the end of the active splits' partitions (the
    /// consumer's lag as its last fetches saw it), when known.
    pub pending_records: Option<i64>,
    /// The reader consumer's own metrics (`KafkaSourceReader.KafkaConsumer.*`), when
    /// `register.consumer.metrics` is on.
    pub consumer: Option<ConsumerMetrics>,
}

impl SourceReaderMetrics {
    fn partitions(&self) -> std::sync::MutexGuard<'_, BTreeMap<TopicPartition, PartitionGauges>> {
        self.inner.partitions.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `numRecordsIn`.
    pub fn num_records_in(&self) -> u64 {
        self.inner.records_in.load(Ordering::Relaxed)
    }

    /// `commitsSucceeded`.
    pub fn commits_succeeded(&self) -> u64 {
        self.inner.commits_succeeded.load(Ordering::Relaxed)
    }

    /// `commitsFailed`.
    pub fn commits_failed(&self) -> u64 {
        self.inner.commits_failed.load(Ordering::Relaxed)
    }

    /// `committedOffset` of one partition.
    pub fn committed_offset(&self, tp: &TopicPartition) -> Option<i64> {
        self.partitions().get(tp).and_then(|g| g.committed_offset)
    }

    /// `currentOffset` of one partition.
    pub fn current_offset(&self, tp: &TopicPartition) -> Option<i64> {
        self.partitions().get(tp).and_then(|g| g.current_offset)
    }

    /// All counters.
    pub fn snapshot(&self) -> SourceReaderMetricsSnapshot {
        let c = &self.inner;
        let parts = self.partitions();
        let watermark = c.watermark.load(Ordering::Relaxed);
        SourceReaderMetricsSnapshot {
            num_records_in: c.records_in.load(Ordering::Relaxed),
            num_bytes_in: c.bytes_in.load(Ordering::Relaxed),
            num_records_skipped: c.records_skipped.load(Ordering::Relaxed),
            commits_succeeded: c.commits_succeeded.load(Ordering::Relaxed),
            commits_failed: c.commits_failed.load(Ordering::Relaxed),
            current_offsets: parts
                .iter()
                .filter_map(|(tp, g)| g.current_offset.map(|o| (tp.clone(), o)))
                .collect(),
            committed_offsets: parts
                .iter()
                .filter_map(|(tp, g)| g.committed_offset.map(|o| (tp.clone(), o)))
                .collect(),
            watermark: (watermark != i64::MIN).then_some(watermark),
            pending_records: Some(c.pending_records.load(Ordering::Relaxed)).filter(|p| *p != i64::MIN),
            consumer: c.consumer.lock().unwrap_or_else(PoisonError::into_inner).clone(),
        }
    }

    pub(crate) fn records_in(&self, n: u64, bytes: u64) {
        self.inner.records_in.fetch_add(n, Ordering::Relaxed);
        self.inner.bytes_in.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn skipped(&self, n: u64) {
        self.inner.records_skipped.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set_current_offsets<'a>(&self, offsets: impl IntoIterator<Item = (&'a TopicPartition, i64)>) {
        let mut parts = self.partitions();
        for (tp, o) in offsets {
            parts.entry(tp.clone()).or_default().current_offset = Some(o);
        }
    }

    pub(crate) fn commit_succeeded(&self, offsets: &BTreeMap<TopicPartition, i64>) {
        self.inner.commits_succeeded.fetch_add(1, Ordering::Relaxed);
        let mut parts = self.partitions();
        for (tp, o) in offsets {
            parts.entry(tp.clone()).or_default().committed_offset = Some(*o);
        }
    }

    pub(crate) fn commit_failed(&self) {
        self.inner.commits_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn set_watermark(&self, watermark: i64) {
        self.inner.watermark.store(watermark, Ordering::Relaxed);
    }

    pub(crate) fn set_pending_records(&self, pending: Option<i64>) {
        self.inner
            .pending_records
            .store(pending.unwrap_or(i64::MIN), Ordering::Relaxed);
    }

    pub(crate) fn set_consumer(&self, consumer: ConsumerMetrics) {
        *self.inner.consumer.lock().unwrap_or_else(PoisonError::into_inner) = Some(consumer);
    }
}

impl SourceReaderMetricsSnapshot {
    /// The values under Flink's metric names (`KafkaSourceReader.…` and `numRecordsIn`).
    pub fn by_flink_name(&self) -> Vec<(String, i64)> {
        let mut out = vec![
            ("numRecordsIn".to_owned(), saturating(self.num_records_in)),
            ("numBytesIn".to_owned(), saturating(self.num_bytes_in)),
            (
                "KafkaSourceReader.commitsSucceeded".to_owned(),
                saturating(self.commits_succeeded),
            ),
            (
                "KafkaSourceReader.commitsFailed".to_owned(),
                saturating(self.commits_failed),
            ),
        ];
        for (tp, o) in &self.current_offsets {
            out.push((
                format!(
                    "KafkaSourceReader.topic.{}.partition.{}.currentOffset",
                    tp.topic, tp.partition
                ),
                *o,
            ));
        }
        for (tp, o) in &self.committed_offsets {
            out.push((
                format!(
                    "KafkaSourceReader.topic.{}.partition.{}.committedOffset",
                    tp.topic, tp.partition
                ),
                *o,
            ));
        }
        // The legacy groups of the old FlinkKafkaConsumer, which dashboards still query.
        for (tp, o) in &self.current_offsets {
            out.push((
                format!("KafkaConsumer.current-offsets.{}-{}", tp.topic, tp.partition),
                *o,
            ));
        }
        for (tp, o) in &self.committed_offsets {
            out.push((
                format!("KafkaConsumer.committed-offsets.{}-{}", tp.topic, tp.partition),
                *o,
            ));
        }
        if let Some(w) = self.watermark {
            out.push(("currentWatermark".to_owned(), w));
        }
        if let Some(p) = self.pending_records {
            out.push(("pendingRecords".to_owned(), p));
        }
        if let Some(c) = &self.consumer {
            let prefix = "KafkaSourceReader.KafkaConsumer";
            for (name, v) in [
                ("records-consumed-total", c.records_consumed),
                ("bytes-consumed-total", c.bytes_fetched),
                ("fetch-total", c.fetches),
                ("buffered-bytes", c.buffered_bytes),
                ("incremental-fetch-total", c.incremental_fetches),
                ("fetch-session-reset-total", c.fetch_session_resets),
            ] {
                out.push((format!("{prefix}.{name}"), saturating(v)));
            }
        }
        out
    }
}

/// A Flink metric name as Flink's Prometheus reporter writes it: every character outside
/// `[A-Za-z0-9_]` becomes `_`.
fn prom_sanitize(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect()
}

fn saturating(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[derive(Debug, Default)]
struct PipelineCounters {
    records_out: AtomicU64,
    checkpoints_completed: AtomicU64,
    checkpoints_failed: AtomicU64,
    last_checkpoint_duration_ms: AtomicU64,
    max_checkpoint_duration_ms: AtomicU64,
    total_checkpoint_duration_ms: AtomicU64,
    last_checkpoint_size: AtomicU64,
    /// 0: none yet.
    last_checkpoint_id: AtomicU64,
    /// 0: not restored (checkpoint ids start at 1).
    restored_checkpoint_id: AtomicU64,
    /// 1 once the pipeline has restored (or started fresh) and reads.
    running: AtomicU64,
    restarts: AtomicU64,
    sink: Mutex<Option<SinkMetrics>>,
    /// The durations of the last [`RECENT_CHECKPOINTS`] checkpoints, in ms.
    recent: Mutex<std::collections::VecDeque<u64>>,
}

/// How many checkpoint durations [`PipelineMetricsSnapshot::checkpoint_duration_quantile`]
/// looks at (the most recent ones).
pub const RECENT_CHECKPOINTS: usize = 1024;

/// Live metrics of a [`Pipeline`](crate::pipeline::Pipeline): its own counters, the source
/// reader's and (once the writer exists) the sink writer's. Cheap `Clone`.
#[derive(Debug, Clone, Default)]
pub struct PipelineMetrics {
    counters: Arc<PipelineCounters>,
    source: SourceReaderMetrics,
}

/// A pipeline's metrics at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PipelineMetricsSnapshot {
    /// `numRecordsIn`: records the source emitted into the user functions.
    pub records_in: u64,
    /// `numRecordsOut`: elements handed to the sink writer.
    pub records_out: u64,
    /// `numberOfCompletedCheckpoints`.
    pub checkpoints_completed: u64,
    /// `numberOfFailedCheckpoints`.
    pub checkpoints_failed: u64,
    /// `lastCheckpointDuration`: pre-commit, snapshot, durable store and commit of the last
    /// completed checkpoint.
    pub last_checkpoint_duration: Duration,
    /// The longest checkpoint so far.
    pub max_checkpoint_duration: Duration,
    /// The sum of all checkpoint durations (divide by the count for the mean).
    pub total_checkpoint_duration: Duration,
    /// `lastCheckpointSize`: bytes of the last stored checkpoint record.
    pub last_checkpoint_size: u64,
    /// The id of the last completed checkpoint.
    pub last_checkpoint_id: Option<u64>,
    /// Durations of the most recent checkpoints (up to [`RECENT_CHECKPOINTS`]), oldest first.
    pub recent_checkpoint_durations: Vec<Duration>,
    /// The checkpoint this run restored from.
    pub restored_checkpoint_id: Option<u64>,
    /// The pipeline has finished restoring (sink transactions recovered) and is reading.
    pub running: bool,
    /// `numRestarts`: restarts made by the restart strategy.
    pub restarts: u64,
    /// The source reader's metrics.
    pub source: SourceReaderMetricsSnapshot,
    /// The sink writer's metrics, once the writer exists.
    pub sink: Option<SinkMetricsSnapshot>,
}

impl PipelineMetrics {
    /// The source reader's metrics handle (the reader of this pipeline updates it).
    pub fn source(&self) -> &SourceReaderMetrics {
        &self.source
    }

    /// The sink writer's metrics handle, once the pipeline has created its writer.
    pub fn sink(&self) -> Option<SinkMetrics> {
        self.counters
            .sink
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// All values.
    pub fn snapshot(&self) -> PipelineMetricsSnapshot {
        let c = &self.counters;
        let id = |v: u64| (v != 0).then_some(v);
        PipelineMetricsSnapshot {
            records_in: self.source.num_records_in(),
            records_out: c.records_out.load(Ordering::Relaxed),
            checkpoints_completed: c.checkpoints_completed.load(Ordering::Relaxed),
            checkpoints_failed: c.checkpoints_failed.load(Ordering::Relaxed),
            last_checkpoint_duration: Duration::from_millis(c.last_checkpoint_duration_ms.load(Ordering::Relaxed)),
            max_checkpoint_duration: Duration::from_millis(c.max_checkpoint_duration_ms.load(Ordering::Relaxed)),
            total_checkpoint_duration: Duration::from_millis(c.total_checkpoint_duration_ms.load(Ordering::Relaxed)),
            last_checkpoint_size: c.last_checkpoint_size.load(Ordering::Relaxed),
            last_checkpoint_id: id(c.last_checkpoint_id.load(Ordering::Relaxed)),
            recent_checkpoint_durations: c
                .recent
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .iter()
                .map(|ms| Duration::from_millis(*ms))
                .collect(),
            restored_checkpoint_id: id(c.restored_checkpoint_id.load(Ordering::Relaxed)),
            running: c.running.load(Ordering::Relaxed) != 0,
            restarts: c.restarts.load(Ordering::Relaxed),
            source: self.source.snapshot(),
            sink: self.sink().map(|s| s.snapshot()),
        }
    }

    pub(crate) fn set_sink(&self, sink: SinkMetrics) {
        *self.counters.sink.lock().unwrap_or_else(PoisonError::into_inner) = Some(sink);
    }

    pub(crate) fn records_out(&self, n: u64) {
        self.counters.records_out.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn checkpoint_completed(&self, id: u64, took: Duration, size: u64) {
        let c = &self.counters;
        let ms = millis(took);
        c.checkpoints_completed.fetch_add(1, Ordering::Relaxed);
        c.last_checkpoint_duration_ms.store(ms, Ordering::Relaxed);
        c.max_checkpoint_duration_ms.fetch_max(ms, Ordering::Relaxed);
        c.total_checkpoint_duration_ms.fetch_add(ms, Ordering::Relaxed);
        c.last_checkpoint_size.store(size, Ordering::Relaxed);
        c.last_checkpoint_id.store(id, Ordering::Relaxed);
        let mut recent = c.recent.lock().unwrap_or_else(PoisonError::into_inner);
        if recent.len() == RECENT_CHECKPOINTS {
            recent.pop_front();
        }
        recent.push_back(ms);
    }

    pub(crate) fn checkpoint_failed(&self) {
        self.counters.checkpoints_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn restored(&self, id: Option<u64>) {
        self.counters
            .restored_checkpoint_id
            .store(id.unwrap_or(0), Ordering::Relaxed);
        self.counters.running.store(1, Ordering::Relaxed);
    }

    pub(crate) fn restarted(&self) {
        self.counters.restarts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn stopped(&self) {
        self.counters.running.store(0, Ordering::Relaxed);
    }
}

/// One value for Prometheus: its name, its labels and the value.
type PromSample = (String, Vec<(&'static str, String)>, i64);

impl PipelineMetricsSnapshot {
    /// Every value under Flink's metric names: the pipeline's, the source reader's
    /// ([`SourceReaderMetricsSnapshot::by_flink_name`]) and the sink writer's
    /// ([`SinkMetricsSnapshot::by_flink_name`]; `numRecordsOut` there is the writer's count of
    /// records sent, listed as `KafkaSink.numRecordsOut`).
    pub fn by_flink_name(&self) -> Vec<(String, i64)> {
        let ms = |d: Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
        let mut out = vec![
            ("numRecordsOut".to_owned(), saturating(self.records_out)),
            (
                "numberOfCompletedCheckpoints".to_owned(),
                saturating(self.checkpoints_completed),
            ),
            (
                "numberOfFailedCheckpoints".to_owned(),
                saturating(self.checkpoints_failed),
            ),
            ("lastCheckpointDuration".to_owned(), ms(self.last_checkpoint_duration)),
            ("lastCheckpointSize".to_owned(), saturating(self.last_checkpoint_size)),
            ("numRestarts".to_owned(), saturating(self.restarts)),
        ];
        if let Some(id) = self.last_checkpoint_id {
            out.push(("lastCompletedCheckpointId".to_owned(), saturating(id)));
        }
        if let Some(id) = self.restored_checkpoint_id {
            out.push(("lastRestoredCheckpointId".to_owned(), saturating(id)));
        }
        out.extend(self.source.by_flink_name());
        if let Some(sink) = &self.sink {
            out.extend(
                sink.by_flink_name()
                    .into_iter()
                    .map(|(k, v)| (format!("KafkaSink.{k}"), saturating(v))),
            );
            // Rates and averages are rounded: every value here is an integer gauge.
            out.extend(sink.producer.iter().map(|(k, v)| {
                #[allow(clippy::cast_possible_truncation)]
                let rounded = v.round() as i64;
                (format!("KafkaSink.KafkaProducer.{k}"), rounded)
            }));
        }
        out
    }

    /// The values in the Prometheus text exposition format (version 0.0.4), named as Flink's
    /// Prometheus reporter names them: `flink_` and the name with every character outside
    /// `[A-Za-z0-9_]` as `_`. The per-partition offsets carry their topic and partition as
    /// labels (`flink_KafkaSourceReader_topic_partition_currentOffset{topic="orders",partition="0"}`),
    /// as Flink's key-value groups do; the legacy `KafkaConsumer.current-offsets` names are
    /// left out here (they repeat those values). Every value is a gauge.
    pub fn prometheus(&self) -> String {
        use std::fmt::Write as _;
        let mut text = String::new();
        let mut last_family = String::new();
        for (name, labels, v) in self.prometheus_samples() {
            if name != last_family {
                let _ = writeln!(text, "# TYPE {name} gauge");
                last_family.clone_from(&name);
            }
            let labels: Vec<String> = labels
                .iter()
                .map(|(k, v)| {
                    let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
                    format!("{k}=\"{v}\"")
                })
                .collect();
            if labels.is_empty() {
                let _ = writeln!(text, "{name} {v}");
            } else {
                let _ = writeln!(text, "{name}{{{}}} {v}", labels.join(","));
            }
        }
        text
    }

    /// Sets every value of [`Self::prometheus`] as a gauge of the `metrics` facade's
    /// recorder, under the same names and labels. A running
    /// [`Pipeline`](crate::pipeline::Pipeline) does this every second and once more when it
    /// ends, so `metrics-exporter-prometheus` or any other installed recorder sees the
    /// connector beside the clients.
    pub fn publish_to_facade(&self) {
        for (name, labels, v) in self.prometheus_samples() {
            let labels: Vec<metrics::Label> = labels.into_iter().map(|(k, v)| metrics::Label::new(k, v)).collect();
            metrics::gauge!(name, labels).set(v as f64);
        }
    }

    /// (name, labels, value) of every value, grouped by name.
    fn prometheus_samples(&self) -> Vec<PromSample> {
        let mut out = Vec::new();
        for (name, v) in self.by_flink_name() {
            if name.starts_with("KafkaSourceReader.topic.") || name.starts_with("KafkaConsumer.") {
                continue;
            }
            out.push((format!("flink_{}", prom_sanitize(&name)), Vec::new(), v));
        }
        for (name, offsets) in [
            ("currentOffset", &self.source.current_offsets),
            ("committedOffset", &self.source.committed_offsets),
        ] {
            for (tp, o) in offsets {
                out.push((
                    format!("flink_KafkaSourceReader_topic_partition_{name}"),
                    vec![("topic", tp.topic.to_string()), ("partition", tp.partition.to_string())],
                    *o,
                ));
            }
        }
        out
    }

    /// The `q` quantile (0.0..=1.0, nearest rank) of the recent checkpoint durations; `None`
    /// before the first checkpoint.
    pub fn checkpoint_duration_quantile(&self, q: f64) -> Option<Duration> {
        let mut d = self.recent_checkpoint_durations.clone();
        if d.is_empty() {
            return None;
        }
        d.sort();
        let rank = (q.clamp(0.0, 1.0) * d.len() as f64).ceil() as usize;
        d.get(rank.saturating_sub(1).min(d.len() - 1)).copied()
    }

    /// A metric by its Flink name, as [`Self::by_flink_name`] lists it.
    pub fn get(&self, flink_name: &str) -> Option<i64> {
        self.by_flink_name()
            .into_iter()
            .find(|(k, _)| k == flink_name)
            .map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_flink() {
        let m = PipelineMetrics::default();
        let tp = TopicPartition::new("orders", 2);
        m.source().records_in(3, 30);
        m.source().set_current_offsets([(&tp, 41)]);
        m.source().commit_succeeded(&BTreeMap::from([(tp.clone(), 42)]));
        m.source().commit_failed();
        m.records_out(5);
        m.checkpoint_completed(7, Duration::from_millis(12), 345);
        m.restored(Some(6));
        let s = m.snapshot();
        assert!(s.running);
        assert_eq!(s.sink, None);
        assert_eq!(s.get("numRecordsIn"), Some(3));
        assert_eq!(s.get("numRecordsOut"), Some(5));
        assert_eq!(s.get("KafkaSourceReader.commitsSucceeded"), Some(1));
        assert_eq!(s.get("KafkaSourceReader.commitsFailed"), Some(1));
        assert_eq!(
            s.get("KafkaSourceReader.topic.orders.partition.2.currentOffset"),
            Some(41)
        );
        assert_eq!(
            s.get("KafkaSourceReader.topic.orders.partition.2.committedOffset"),
            Some(42)
        );
        assert_eq!(s.get("lastCheckpointDuration"), Some(12));
        assert_eq!(s.get("numberOfCompletedCheckpoints"), Some(1));
        assert_eq!(s.get("lastCompletedCheckpointId"), Some(7));
        assert_eq!(s.get("lastRestoredCheckpointId"), Some(6));
        assert_eq!(s.get("currentWatermark"), None);
        m.source().set_watermark(99);
        assert_eq!(m.snapshot().get("currentWatermark"), Some(99));
        m.set_sink(SinkMetrics::default());
        assert_eq!(m.snapshot().get("KafkaSink.numRecordsOut"), Some(0));
        // The old FlinkKafkaConsumer's groups.
        let s = m.snapshot();
        assert_eq!(s.get("KafkaConsumer.current-offsets.orders-2"), Some(41));
        assert_eq!(s.get("KafkaConsumer.committed-offsets.orders-2"), Some(42));
    }

    #[test]
    fn prometheus_text_as_flinks_reporter_names_it() {
        let m = PipelineMetrics::default();
        let tp = TopicPartition::new("or\"ders.v1", 2);
        m.source().records_in(3, 30);
        m.source().set_current_offsets([(&tp, 41)]);
        m.source().commit_succeeded(&BTreeMap::from([(tp.clone(), 42)]));
        m.set_sink(SinkMetrics::default());
        let text = m.snapshot().prometheus();
        assert!(
            text.contains("# TYPE flink_numRecordsIn gauge\nflink_numRecordsIn 3\n"),
            "{text}"
        );
        assert!(text.contains("flink_KafkaSink_numRecordsSend 0\n"), "{text}");
        assert!(
            text.contains(
                "# TYPE flink_KafkaSourceReader_topic_partition_currentOffset gauge\n\
                 flink_KafkaSourceReader_topic_partition_currentOffset{topic=\"or\\\"ders.v1\",partition=\"2\"} 41\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "flink_KafkaSourceReader_topic_partition_committedOffset{topic=\"or\\\"ders.v1\",partition=\"2\"} 42\n"
            ),
            "{text}"
        );
        // Every sample line is a valid name, optional labels and an integer.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name_end = line.find(['{', ' ']).unwrap();
            assert!(
                line[..name_end].chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            assert!(line.rsplit(' ').next().unwrap().parse::<i64>().is_ok(), "{line}");
        }
        assert!(!text.contains("KafkaConsumer_current_offsets"), "{text}");
    }

    #[test]
    fn checkpoint_duration_quantiles() {
        let m = PipelineMetrics::default();
        assert_eq!(m.snapshot().checkpoint_duration_quantile(0.5), None);
        m.checkpoint_completed(1, Duration::from_millis(12), 345);
        assert_eq!(
            m.snapshot().checkpoint_duration_quantile(0.99),
            Some(Duration::from_millis(12))
        );
        for ms in 1..=(RECENT_CHECKPOINTS as u64 + 100) {
            m.checkpoint_completed(1 + ms, Duration::from_millis(ms % 100 + 1), 1);
        }
        let s = m.snapshot();
        assert_eq!(s.recent_checkpoint_durations.len(), RECENT_CHECKPOINTS);
        assert_eq!(s.checkpoint_duration_quantile(1.0), Some(Duration::from_millis(100)));
        assert_eq!(s.checkpoint_duration_quantile(0.0), Some(Duration::from_millis(1)));
        let p50 = s.checkpoint_duration_quantile(0.5).unwrap().as_millis();
        assert!((49..=52).contains(&p50), "{p50}");
    }
}
