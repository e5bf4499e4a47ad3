//! The registry: metrics by group, name and tags, each a cell of a shape (meter, gauge,
//! stat, since), and the snapshot the three ways out read.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use super::cells::lock;
use super::cells::{Gauge, GaugeCell, Meter, MeterCell, RateWindow, Since, SinceCell, Stat, StatCell, StatState};
use super::names::{facade_key, prom_name, prom_prefix, Key, Shape, QUANTILES};
use super::node::NodeInstruments;
use crate::error::{Error, Result};

pub(super) static FACADE_METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new("strom_client", metrics::Level::INFO, Some("strom_client::metrics"));

pub(super) enum Cell {
    Meter(Arc<MeterCell>, Mutex<RateWindow>, RateUnit),
    Gauge(Arc<GaugeCell>),
    Stat(Arc<StatCell>, Shape),
    /// Seconds since an event, computed when read (Java's `last-*-seconds-ago`).
    Since(Arc<SinceCell>),
}

/// The unit of a meter's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RateUnit {
    /// `NAME-rate`, per second.
    Second,
    /// `NAME-rate-per-hour` (Java's rebalance rates).
    Hour,
}

/// The registry of one client: cheap to clone, shared by every role on that client.
#[derive(Clone)]
pub struct MetricRegistry {
    pub(super) inner: Arc<RegistryInner>,
}

pub(super) struct RegistryInner {
    pub(super) client_id: String,
    pub(super) window: Duration,
    pub(super) samples: u32,
    pub(super) cells: Mutex<BTreeMap<Key, Cell>>,
    pub(super) nodes: Mutex<BTreeMap<i32, Arc<NodeInstruments>>>,
}

impl std::fmt::Debug for MetricRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricRegistry")
            .field("client_id", &self.inner.client_id)
            .field("metrics", &lock(&self.inner.cells).len())
            .finish()
    }
}

impl MetricRegistry {
    /// A registry for `client_id`, with Java's sampling: rates and avg/max over `samples`
    /// windows of `window`.
    pub(crate) fn new(client_id: &str, window: Duration, samples: u32) -> Self {
        MetricRegistry {
            inner: Arc::new(RegistryInner {
                client_id: client_id.to_owned(),
                window: window.max(Duration::from_millis(1)),
                samples: samples.max(1),
                cells: Mutex::new(BTreeMap::new()),
                nodes: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    pub(super) fn key(&self, group: &'static str, name: &'static str, tags: &[(&'static str, &str)]) -> Key {
        let mut all = Vec::with_capacity(tags.len() + 1);
        all.push(("client-id", self.inner.client_id.clone()));
        all.extend(tags.iter().map(|(k, v)| (*k, (*v).to_owned())));
        Key { group, name, tags: all }
    }

    /// The counter `group`/`name` with `tags` (created on first use; the same cell after).
    pub(crate) fn meter(&self, group: &'static str, name: &'static str, tags: &[(&'static str, &str)]) -> Meter {
        self.meter_in(RateUnit::Second, group, name, tags)
    }

    /// A counter whose rate is per hour (`NAME-rate-per-hour`).
    pub(crate) fn meter_per_hour(
        &self,
        group: &'static str,
        name: &'static str,
        tags: &[(&'static str, &str)],
    ) -> Meter {
        self.meter_in(RateUnit::Hour, group, name, tags)
    }

    pub(super) fn meter_in(
        &self,
        unit: RateUnit,
        group: &'static str,
        name: &'static str,
        tags: &[(&'static str, &str)],
    ) -> Meter {
        let key = self.key(group, name, tags);
        let mut cells = lock(&self.inner.cells);
        if let Some(Cell::Meter(c, _, _)) = cells.get(&key) {
            return Meter(c.clone());
        }
        let facade = metrics::with_recorder(|r| {
            r.register_counter(&facade_key(&key, prom_name(&key, Shape::Meter)), &FACADE_METADATA)
        });
        let cell = Arc::new(MeterCell {
            total: AtomicU64::new(0),
            facade,
        });
        let window = RateWindow::new(Instant::now());
        cells.insert(key, Cell::Meter(cell.clone(), Mutex::new(window), unit));
        Meter(cell)
    }

    /// The time since an event, `group`/`NAME-seconds-ago`: whole seconds when read, -1
    /// before the first event (as Java). Through the facade, which cannot compute a value
    /// when read, it is the gauge `..._timestamp_seconds` (the event's Unix time; the age
    /// is `time() - x` in PromQL).
    pub(crate) fn since(&self, group: &'static str, name: &'static str, tags: &[(&'static str, &str)]) -> Since {
        let key = self.key(group, name, tags);
        let mut cells = lock(&self.inner.cells);
        if let Some(Cell::Since(c)) = cells.get(&key) {
            return Since(c.clone());
        }
        let facade = metrics::with_recorder(|r| {
            let name = format!(
                "{}{}_timestamp_seconds",
                prom_prefix(key.group),
                key.name.replace('-', "_")
            );
            r.register_gauge(&facade_key(&key, name), &FACADE_METADATA)
        });
        let now = Instant::now();
        let cell = Arc::new(SinceCell {
            // A day back, so an event given an earlier time than the cell's creation is kept.
            epoch: now.checked_sub(Duration::from_secs(86_400)).unwrap_or(now),
            last: AtomicU64::new(0),
            facade,
        });
        cells.insert(key, Cell::Since(cell.clone()));
        Since(cell)
    }

    /// The gauge `group`/`name` with `tags`.
    pub(crate) fn gauge(&self, group: &'static str, name: &'static str, tags: &[(&'static str, &str)]) -> Gauge {
        let key = self.key(group, name, tags);
        let mut cells = lock(&self.inner.cells);
        if let Some(Cell::Gauge(c)) = cells.get(&key) {
            return Gauge(c.clone());
        }
        let facade = metrics::with_recorder(|r| {
            r.register_gauge(&facade_key(&key, prom_name(&key, Shape::Gauge)), &FACADE_METADATA)
        });
        let cell = Arc::new(GaugeCell {
            bits: AtomicU64::new(0f64.to_bits()),
            facade,
        });
        cells.insert(key, Cell::Gauge(cell.clone()));
        Gauge(cell)
    }

    /// The latency histogram `group`/`name` with `tags` (recorded as durations).
    pub(crate) fn latency(&self, group: &'static str, name: &'static str, tags: &[(&'static str, &str)]) -> Stat {
        self.stat(Shape::Latency, group, name, tags)
    }

    /// The histogram of ratios `group`/`name` with `tags`.
    pub(crate) fn ratio(&self, group: &'static str, name: &'static str, tags: &[(&'static str, &str)]) -> Stat {
        self.stat(Shape::Ratio, group, name, tags)
    }

    /// The histogram of sizes `group`/`name` with `tags`.
    pub(crate) fn distribution(&self, group: &'static str, name: &'static str, tags: &[(&'static str, &str)]) -> Stat {
        self.stat(Shape::Distribution, group, name, tags)
    }

    /// A latency histogram that also reports `NAME-total`, the sum of what it recorded in
    /// milliseconds (Java's `rebalance-latency-total`).
    pub(crate) fn latency_with_total(
        &self,
        group: &'static str,
        name: &'static str,
        tags: &[(&'static str, &str)],
    ) -> Stat {
        let stat = self.stat(Shape::Latency, group, name, tags);
        stat.0.with_total.store(true, Ordering::Relaxed);
        stat
    }

    pub(super) fn stat(
        &self,
        shape: Shape,
        group: &'static str,
        name: &'static str,
        tags: &[(&'static str, &str)],
    ) -> Stat {
        let key = self.key(group, name, tags);
        let mut cells = lock(&self.inner.cells);
        if let Some(Cell::Stat(c, _)) = cells.get(&key) {
            return Stat(c.clone());
        }
        let facade = metrics::with_recorder(|r| {
            r.register_histogram(&facade_key(&key, prom_name(&key, shape)), &FACADE_METADATA)
        });
        let cell = Arc::new(StatCell {
            state: Mutex::new(StatState::new(Instant::now())),
            window: self.inner.window,
            shape,
            with_total: std::sync::atomic::AtomicBool::new(false),
            facade,
        });
        cells.insert(key, Cell::Stat(cell.clone(), shape));
        Stat(cell)
    }

    /// The instruments of broker `node_id` (`-1` for bootstrap connections), shared by all
    /// of this client's connections to it.
    pub(crate) fn node(&self, node_id: i32) -> Arc<NodeInstruments> {
        if let Some(n) = lock(&self.inner.nodes).get(&node_id) {
            return n.clone();
        }
        let id = format!("node-{node_id}");
        let tags = [("node-id", id.as_str())];
        let g = "node-metrics";
        let n = Arc::new(NodeInstruments {
            request: self.meter(g, "request", &tags),
            response: self.meter(g, "response", &tags),
            request_latency: self.latency(g, "request-latency", &tags),
            outgoing_byte: self.meter(g, "outgoing-byte", &tags),
            incoming_byte: self.meter(g, "incoming-byte", &tags),
            connection_creation: self.meter(g, "connection-creation", &tags),
            connection_close: self.meter(g, "connection-close", &tags),
            connection_count: self.gauge(g, "connection-count", &tags),
            successful_authentication: self.meter(g, "successful-authentication", &tags),
            failed_authentication: self.meter(g, "failed-authentication", &tags),
            successful_reauthentication: self.meter(g, "successful-reauthentication", &tags),
            failed_reauthentication: self.meter(g, "failed-reauthentication", &tags),
            live: std::sync::atomic::AtomicI64::new(0),
        });
        lock(&self.inner.nodes).entry(node_id).or_insert(n).clone()
    }

    /// Every metric now, under its Java name.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let now = Instant::now();
        let span = self.inner.window * self.inner.samples;
        let cells = lock(&self.inner.cells);
        let mut out = Vec::with_capacity(cells.len() * 3);
        for (key, cell) in cells.iter() {
            let mut push = |suffix: &str, value: f64| {
                out.push(Metric {
                    group: key.group,
                    name: format!("{}{suffix}", key.name),
                    tags: key.tags.clone(),
                    value,
                });
            };
            match cell {
                Cell::Meter(c, window, unit) => {
                    let total = c.total.load(Ordering::Relaxed);
                    push("-total", total as f64);
                    let per_second = lock(window).rate(now, total, self.inner.window, span);
                    match unit {
                        RateUnit::Second => push("-rate", per_second),
                        RateUnit::Hour => push("-rate-per-hour", per_second * 3600.0),
                    }
                }
                Cell::Gauge(c) => push("", c.get()),
                Cell::Since(c) => push("", c.seconds_ago(now)),
                Cell::Stat(c, shape) => {
                    let s = lock(&c.state);
                    let scale = shape.snapshot_scale();
                    let (count, sum, max) = s.windowed(now, span);
                    push(
                        "-avg",
                        if count == 0 {
                            f64::NAN
                        } else {
                            sum as f64 / count as f64 * scale
                        },
                    );
                    push("-max", if count == 0 { f64::NAN } else { max as f64 * scale });
                    for (q, suffix) in QUANTILES {
                        push(suffix, s.hist.quantile(q).map_or(f64::NAN, |v| v as f64 * scale));
                    }
                    if c.with_total.load(Ordering::Relaxed) {
                        push("-total", s.sum as f64 * scale);
                    }
                }
            }
        }
        MetricsSnapshot { metrics: out }
    }
}

/// One metric of a [`MetricsSnapshot`].
#[derive(Debug, Clone, PartialEq)]
pub struct Metric {
    /// Java's group (`producer-metrics`, `producer-topic-metrics`, `node-metrics`,
    /// `consumer-fetch-manager-metrics`, ...).
    pub group: &'static str,
    /// Java's name (`record-send-total`, `request-latency-avg`, ...).
    pub name: String,
    /// Tags: `client-id` always, and `topic`, `partition` or `node-id` where they apply.
    pub tags: Vec<(&'static str, String)>,
    /// The value; NaN for an average or percentile of nothing recorded yet (as Java).
    pub value: f64,
}

/// Every metric of a registry at one moment.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsSnapshot {
    /// The metrics, ordered by group, name and tags.
    pub metrics: Vec<Metric>,
}

impl MetricsSnapshot {
    /// The value of `name` in `group` whose tags include all of `tags` (e.g.
    /// `[("topic", "orders")]`); an error of kind [`crate::ErrorKind::InvalidConfig`] naming
    /// it when there is no such metric (a typo in a dashboard query is found at once).
    pub fn get(&self, group: &str, name: &str, tags: &[(&str, &str)]) -> Result<f64> {
        self.metrics
            .iter()
            .find(|m| {
                m.group == group
                    && m.name == name
                    && tags
                        .iter()
                        .all(|(k, v)| m.tags.iter().any(|(mk, mv)| mk == k && mv == v))
            })
            .map(|m| m.value)
            .ok_or_else(|| {
                Error::config(format!(
                    "no metric {group}/{name} with tags {tags:?} (known names in that group: {})",
                    self.names_in(group).join(", ")
                ))
            })
    }

    /// The sum of `name` in `group` over every tag set (e.g. `record-send-total` over
    /// all topics); 0 if there is none.
    pub fn sum(&self, group: &str, name: &str) -> f64 {
        self.metrics
            .iter()
            .filter(|m| m.group == group && m.name == name)
            .map(|m| m.value)
            .sum()
    }

    pub(super) fn names_in(&self, group: &str) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .metrics
            .iter()
            .filter(|m| m.group == group)
            .map(|m| m.name.as_str())
            .collect();
        names.dedup();
        names
    }
}
