//! Sink metrics, named as Flink's sink metrics (`numRecordsOut`, `numRecordsOutErrors`,
//! `numBytesOut` and their older `*Send*` aliases, and `currentSendTime`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use strom_client::metrics::MetricRegistry;

#[derive(Debug, Default)]
struct Counters {
    records_out: AtomicU64,
    records_out_errors: AtomicU64,
    bytes_out: AtomicU64,
    transactions_prepared: AtomicU64,
    transactions_committed: AtomicU64,
    transactions_aborted: AtomicU64,
}

/// Live counters of one writer. A cheap `Clone` handle: read it from any task while the
/// writer runs.
#[derive(Debug, Clone, Default)]
pub struct SinkMetrics {
    counters: Arc<Counters>,
    /// The registry of the client the writer's producers share, for `currentSendTime`.
    producers: Arc<OnceLock<MetricRegistry>>,
}

/// The counters at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SinkMetricsSnapshot {
    /// `numRecordsOut` (alias `numRecordsSend`): records handed to the producer.
    pub num_records_out: u64,
    /// `numRecordsOutErrors` (alias `numRecordsSendErrors`): records that could not be sent
    /// or whose delivery failed.
    pub num_records_out_errors: u64,
    /// `numBytesOut` (alias `numBytesSend`): key, value and header bytes of the records
    /// handed to the producer (before batching and compression).
    pub num_bytes_out: u64,
    /// Exactly-once: transactions pre-committed at a checkpoint.
    pub transactions_prepared: u64,
    /// Exactly-once: transactions committed by this writer's committer (or on restore).
    pub transactions_committed: u64,
    /// Exactly-once: transactions aborted (a failed pre-commit, a close, lingering ones on restore).
    pub transactions_aborted: u64,
    /// `currentSendTime`: the writer's producers' `request-latency-avg` (Flink's KafkaWriter
    /// reports the same producer metric); `None` before the first produce request.
    pub current_send_time: Option<Duration>,
    /// The producers' own metrics (Java's `producer-metrics` group, by Java name: e.g.
    /// `record-send-total`, `record-error-total`, `request-latency-avg`, `batch-size-avg`),
    /// as the seed's "the producers export Kafka's internal metrics through Flink's metric
    /// system"; a pipeline lists them as `KafkaSink.KafkaProducer.<name>`. Values not
    /// recorded yet (an average of nothing) are left out.
    pub producer: Vec<(String, f64)>,
}

impl SinkMetricsSnapshot {
    /// The values under Flink's metric names, aliases included.
    pub fn by_flink_name(&self) -> Vec<(&'static str, u64)> {
        vec![
            ("numRecordsOut", self.num_records_out),
            ("numRecordsSend", self.num_records_out),
            ("numRecordsOutErrors", self.num_records_out_errors),
            ("numRecordsSendErrors", self.num_records_out_errors),
            ("numBytesOut", self.num_bytes_out),
            ("numBytesSend", self.num_bytes_out),
        ]
        .into_iter()
        .chain(
            self.current_send_time
                .map(|d| ("currentSendTime", u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
        )
        .collect()
    }
}

impl SinkMetrics {
    /// `numRecordsOut`.
    pub fn num_records_out(&self) -> u64 {
        self.counters.records_out.load(Ordering::Relaxed)
    }

    /// `numRecordsOutErrors`.
    pub fn num_records_out_errors(&self) -> u64 {
        self.counters.records_out_errors.load(Ordering::Relaxed)
    }

    /// `numBytesOut`.
    pub fn num_bytes_out(&self) -> u64 {
        self.counters.bytes_out.load(Ordering::Relaxed)
    }

    /// All counters.
    pub fn snapshot(&self) -> SinkMetricsSnapshot {
        let c = &self.counters;
        // One snapshot of the producers' registry for both of its uses.
        let producers = self.producers.get().map(MetricRegistry::snapshot);
        let current_send_time = producers.as_ref().and_then(|r| {
            let ms = r.get("producer-metrics", "request-latency-avg", &[]).ok()?;
            (ms.is_finite() && ms >= 0.0).then(|| Duration::from_secs_f64(ms / 1000.0))
        });
        let producer = producers
            .map(|r| {
                r.metrics
                    .into_iter()
                    .filter(|m| m.group == "producer-metrics" && m.value.is_finite())
                    .map(|m| (m.name, m.value))
                    .collect()
            })
            .unwrap_or_default();
        SinkMetricsSnapshot {
            num_records_out: c.records_out.load(Ordering::Relaxed),
            num_records_out_errors: c.records_out_errors.load(Ordering::Relaxed),
            num_bytes_out: c.bytes_out.load(Ordering::Relaxed),
            transactions_prepared: c.transactions_prepared.load(Ordering::Relaxed),
            transactions_committed: c.transactions_committed.load(Ordering::Relaxed),
            transactions_aborted: c.transactions_aborted.load(Ordering::Relaxed),
            current_send_time,
            producer,
        }
    }

    /// The writer's producers record into `registry` (their client's).
    pub(crate) fn set_producer_registry(&self, registry: &MetricRegistry) {
        let _ = self.producers.set(registry.clone());
    }

    pub(crate) fn record_out(&self, bytes: u64) {
        self.counters.records_out.fetch_add(1, Ordering::Relaxed);
        self.counters.bytes_out.fetch_add(bytes, Ordering::Relaxed);
    }

    pub(crate) fn record_error(&self) {
        self.counters.records_out_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn prepared(&self) {
        self.counters.transactions_prepared.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn committed(&self, n: u64) {
        self.counters.transactions_committed.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn aborted(&self, n: u64) {
        self.counters.transactions_aborted.fetch_add(n, Ordering::Relaxed);
    }
}
