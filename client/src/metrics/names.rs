//! What a metric is called: its key (group, Java name, tags), its shape, and the
//! Prometheus name the `metrics` facade and the text format give it.

use std::fmt::Write as _;

/// What a metric measures, which decides its Java names and its Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Shape {
    /// A count: `NAME-total` and `NAME-rate` (per second).
    Meter,
    /// A level: `NAME`.
    Gauge,
    /// Durations: `NAME-avg`, `-max`, `-p50`, `-p99`, `-p999`, in milliseconds as Java
    /// reports them; Prometheus gets seconds.
    Latency,
    /// Sizes: the same five, unscaled.
    Distribution,
    /// Ratios (compression rate): the same five, kept in thousandths.
    Ratio,
}

impl Shape {
    /// From what is kept to what the snapshot reports (milliseconds for latencies).
    pub(super) fn snapshot_scale(self) -> f64 {
        match self {
            Shape::Latency | Shape::Ratio => 1e-3,
            _ => 1.0,
        }
    }

    /// From what is kept to what Prometheus gets (seconds for latencies).
    pub(super) fn prom_scale(self) -> f64 {
        match self {
            Shape::Latency => 1e-6,
            Shape::Ratio => 1e-3,
            _ => 1.0,
        }
    }
}

/// The key of one metric in the registry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Key {
    pub(super) group: &'static str,
    pub(super) name: &'static str,
    pub(super) tags: Vec<(&'static str, String)>,
}

pub(super) const QUANTILES: [(f64, &str); 3] = [(0.5, "-p50"), (0.99, "-p99"), (0.999, "-p999")];

pub(super) fn prom_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

pub(super) fn prom_prefix(group: &str) -> &'static str {
    if group.starts_with("producer") {
        "kafka_producer_"
    } else if group.starts_with("consumer") {
        "kafka_consumer_"
    } else if group == "node-metrics" {
        "kafka_node_"
    } else {
        "kafka_"
    }
}

pub(super) fn prom_name(key: &Key, shape: Shape) -> String {
    let base = key.name.replace('-', "_");
    let prefix = prom_prefix(key.group);
    match shape {
        Shape::Meter => format!("{prefix}{base}_total"),
        Shape::Gauge => format!("{prefix}{base}"),
        Shape::Latency => format!("{prefix}{base}_seconds"),
        Shape::Distribution if base.ends_with("size") => format!("{prefix}{base}_bytes"),
        Shape::Distribution | Shape::Ratio => format!("{prefix}{base}"),
    }
}

pub(super) fn prom_labels(tags: &[(&'static str, String)]) -> String {
    let mut s = String::new();
    for (i, (k, v)) in tags.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let v = v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        let _ = write!(s, "{}=\"{v}\"", k.replace('-', "_"));
    }
    s
}

pub(super) fn facade_key(key: &Key, name: String) -> metrics::Key {
    let labels: Vec<metrics::Label> = key
        .tags
        .iter()
        .map(|(k, v)| metrics::Label::new(k.replace('-', "_"), v.clone()))
        .collect();
    metrics::Key::from_parts(name, labels)
}
