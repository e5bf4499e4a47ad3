//! Metrics under the Java client's names, one registry per [`Client`](crate::Client).
//!
//! Every role records into the registry of its client: the producer into
//! `producer-metrics` and `producer-topic-metrics` (tag `topic`), every connection into
//! `node-metrics` (tag `node-id`, Java's `producer-node-metrics` / `consumer-node-metrics`),
//! the consumer into `consumer-fetch-manager-metrics`. All carry the tag `client-id`.
//!
//! Three ways out, all fed by the same recording:
//!
//! * **A typed snapshot** ([`MetricRegistry::snapshot`], also `Producer::metrics()` and
//!   `Client::metric_registry()`): every metric under its Java name (`record-send-total`,
//!   `record-send-rate`, `request-latency-avg`, ...) with its value, rates and avg/max over
//!   Java's sample windows (`metrics.sample.window.ms` 30 s × `metrics.num.samples` 2).
//!   Latencies and sizes are histograms: `-p50`, `-p99` and `-p999` beside `-avg` and `-max`
//!   (within 1/8 of the true value).
//! * **The `metrics` facade**: every counter, gauge and histogram is registered with the
//!   recorder installed when the client is created (`metrics::set_global_recorder`; install
//!   it first), so `metrics-exporter-prometheus`, OpenTelemetry's bridge or any other
//!   recorder plugs in with one line. Names are the Prometheus ones below.
//! * **Prometheus text** ([`MetricRegistry::prometheus`]), which the CLI serves at
//!   `/metrics` with `--metrics-addr`.
//!
//! Prometheus names are the group's prefix and the Java name with `-` turned into `_`:
//! `producer-*` → `kafka_producer_`, `consumer-*` → `kafka_consumer_`, `node-metrics` →
//! `kafka_node_`; a total is a counter (`kafka_producer_record_send_total`), a level a gauge
//! (`kafka_producer_buffer_available_bytes`), a latency a summary in seconds
//! (`kafka_node_request_latency_seconds`), a size a summary in bytes
//! (`kafka_producer_batch_size_bytes`). Labels: `client_id`, `topic`, `partition`, `node_id`.
//! Rates and averages are left to Prometheus (`rate()` of the totals).

mod cells;
mod instruments;
mod names;
mod node;
mod prometheus;
mod registry;
#[cfg(test)]
mod tests;

pub(crate) use cells::{Meter, Stat};
pub(crate) use instruments::{ConsumerInstruments, CoordinatorInstruments, ProducerInstruments, TopicInstruments};
pub(crate) use node::NodeInstruments;
pub use prometheus::{prometheus_text, serve_prometheus};
pub use registry::{Metric, MetricRegistry, MetricsSnapshot};
