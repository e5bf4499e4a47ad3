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

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

static FACADE_METADATA: metrics::Metadata<'static> =
    metrics::Metadata::new("strom_client", metrics::Level::INFO, Some("strom_client::metrics"));

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Critical sections only add numbers: a panic inside one leaves them usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What a metric measures, which decides its Java names and its Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
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
    fn snapshot_scale(self) -> f64 {
        match self {
            Shape::Latency | Shape::Ratio => 1e-3,
            _ => 1.0,
        }
    }

    /// From what is kept to what Prometheus gets (seconds for latencies).
    fn prom_scale(self) -> f64 {
        match self {
            Shape::Latency => 1e-6,
            Shape::Ratio => 1e-3,
            _ => 1.0,
        }
    }
}

/// The key of one metric in the registry.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    group: &'static str,
    name: &'static str,
    tags: Vec<(&'static str, String)>,
}

enum Cell {
    Meter(Arc<MeterCell>, Mutex<RateWindow>, RateUnit),
    Gauge(Arc<GaugeCell>),
    Stat(Arc<StatCell>, Shape),
    /// Seconds since an event, computed when read (Java's `last-*-seconds-ago`).
    Since(Arc<SinceCell>),
}

/// The unit of a meter's rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RateUnit {
    /// `NAME-rate`, per second.
    Second,
    /// `NAME-rate-per-hour` (Java's rebalance rates).
    Hour,
}

/// The registry of one client: cheap to clone, shared by every role on that client.
#[derive(Clone)]
pub struct MetricRegistry {
    inner: Arc<RegistryInner>,
}

struct RegistryInner {
    client_id: String,
    window: Duration,
    samples: u32,
    cells: Mutex<BTreeMap<Key, Cell>>,
    nodes: Mutex<BTreeMap<i32, Arc<NodeInstruments>>>,
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

    fn key(&self, group: &'static str, name: &'static str, tags: &[(&'static str, &str)]) -> Key {
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

    fn meter_in(
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

    fn stat(&self, shape: Shape, group: &'static str, name: &'static str, tags: &[(&'static str, &str)]) -> Stat {
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

    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        prometheus_text(std::slice::from_ref(self))
    }

    fn write_families(&self, families: &mut BTreeMap<String, (&'static str, String)>) {
        let cells = lock(&self.inner.cells);
        for (key, cell) in cells.iter() {
            let labels = prom_labels(&key.tags);
            match cell {
                Cell::Meter(c, _, _) => {
                    let name = prom_name(key, Shape::Meter);
                    let f = families.entry(name.clone()).or_insert(("counter", String::new()));
                    let _ = writeln!(f.1, "{name}{{{labels}}} {}", c.total.load(Ordering::Relaxed));
                }
                Cell::Gauge(c) => {
                    let name = prom_name(key, Shape::Gauge);
                    let f = families.entry(name.clone()).or_insert(("gauge", String::new()));
                    let _ = writeln!(f.1, "{name}{{{labels}}} {}", prom_value(c.get()));
                }
                Cell::Since(c) => {
                    let name = prom_name(key, Shape::Gauge);
                    let f = families.entry(name.clone()).or_insert(("gauge", String::new()));
                    let _ = writeln!(f.1, "{name}{{{labels}}} {}", prom_value(c.seconds_ago(Instant::now())));
                }
                Cell::Stat(c, shape) => {
                    let name = prom_name(key, *shape);
                    let s = lock(&c.state);
                    // Latencies are kept in microseconds; Prometheus wants seconds.
                    let scale = shape.prom_scale();
                    let f = families.entry(name.clone()).or_insert(("summary", String::new()));
                    let sep = if labels.is_empty() { "" } else { "," };
                    for (q, _) in QUANTILES {
                        let v = s.hist.quantile(q).map_or(f64::NAN, |v| v as f64 * scale);
                        let _ = writeln!(f.1, "{name}{{{labels}{sep}quantile=\"{q}\"}} {}", prom_value(v));
                    }
                    let _ = writeln!(f.1, "{name}_sum{{{labels}}} {}", prom_value(s.sum as f64 * scale));
                    let _ = writeln!(f.1, "{name}_count{{{labels}}} {}", s.count);
                }
            }
        }
    }
}

/// The metrics of several registries (several clients in one process, told apart by
/// their `client_id` label) as one Prometheus text exposition: one `# TYPE` line per
/// family, as the format requires.
pub fn prometheus_text(registries: &[MetricRegistry]) -> String {
    let mut families: BTreeMap<String, (&'static str, String)> = BTreeMap::new();
    for r in registries {
        r.write_families(&mut families);
    }
    let mut text = String::new();
    for (name, (kind, samples)) in families {
        let _ = writeln!(text, "# TYPE {name} {kind}");
        text.push_str(&samples);
    }
    text
}

/// Serves `render()` as the Prometheus text exposition at `http://ADDR/metrics`, in the
/// background, until the runtime stops (what `strom ... --metrics-addr` and the connector
/// example's `--metrics-addr` use). `render` is called for each scrape, e.g.
/// `move || prometheus_text(&[client.metric_registry().clone()])`.
///
/// The listener is bound before this returns, so a taken port or a bad address is an error
/// at once (kind [`crate::ErrorKind::InvalidConfig`], naming the address). Returns the
/// bound address (`HOST:0` picks a free port). Each request is read with a bound (8 KiB,
/// 5 s) and answered with `Connection: close`; anything but `GET /metrics` gets a 404.
pub async fn serve_prometheus(
    addr: &str,
    render: impl Fn() -> String + Send + Sync + 'static,
) -> Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::config(format!(
            "metrics address {addr}: cannot listen there: {e} (expected HOST:PORT, e.g. 127.0.0.1:9464)"
        ))
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| Error::config(format!("metrics address {addr}: {e}")))?;
    let render = Arc::new(render);
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(answer_scrape(sock, render.clone()));
        }
    });
    Ok(bound)
}

async fn answer_scrape(mut sock: tokio::net::TcpStream, render: Arc<impl Fn() -> String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = bytes::BytesMut::with_capacity(1024);
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 8192 {
            match sock.read_buf(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    if read.is_err() {
        return;
    }
    let request_line = buf[..].split(|b| *b == b'\n').next().unwrap_or_default();
    let request_line = String::from_utf8_lossy(request_line);
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = path.split('?').next().unwrap_or("");
    let (status, content_type, body) = if method == "GET" && path == "/metrics" {
        ("200 OK", "text/plain; version=0.0.4; charset=utf-8", render())
    } else {
        (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "only GET /metrics is served here\n".to_owned(),
        )
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        sock.write_all(head.as_bytes()).await?;
        sock.write_all(body.as_bytes()).await?;
        sock.shutdown().await
    })
    .await;
}

const QUANTILES: [(f64, &str); 3] = [(0.5, "-p50"), (0.99, "-p99"), (0.999, "-p999")];

fn prom_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

fn prom_prefix(group: &str) -> &'static str {
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

fn prom_name(key: &Key, shape: Shape) -> String {
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

fn prom_labels(tags: &[(&'static str, String)]) -> String {
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

fn facade_key(key: &Key, name: String) -> metrics::Key {
    let labels: Vec<metrics::Label> = key
        .tags
        .iter()
        .map(|(k, v)| metrics::Label::new(k.replace('-', "_"), v.clone()))
        .collect();
    metrics::Key::from_parts(name, labels)
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

    fn names_in(&self, group: &str) -> Vec<&str> {
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

/// What every connection to one broker records (group `node-metrics`, tag `node-id`).
pub(crate) struct NodeInstruments {
    pub(crate) request: Meter,
    pub(crate) response: Meter,
    pub(crate) request_latency: Stat,
    pub(crate) outgoing_byte: Meter,
    pub(crate) incoming_byte: Meter,
    connection_creation: Meter,
    connection_close: Meter,
    connection_count: Gauge,
    pub(crate) successful_authentication: Meter,
    pub(crate) failed_authentication: Meter,
    pub(crate) successful_reauthentication: Meter,
    pub(crate) failed_reauthentication: Meter,
    live: std::sync::atomic::AtomicI64,
}

impl std::fmt::Debug for NodeInstruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeInstruments").finish_non_exhaustive()
    }
}

impl NodeInstruments {
    pub(crate) fn opened(&self) {
        self.connection_creation.add(1);
        let n = self.live.fetch_add(1, Ordering::Relaxed) + 1;
        self.connection_count.set(n as f64);
    }

    pub(crate) fn closed(&self) {
        self.connection_close.add(1);
        let n = self.live.fetch_sub(1, Ordering::Relaxed) - 1;
        self.connection_count.set(n.max(0) as f64);
    }
}

/// What a producer records (groups `producer-metrics` and, per topic,
/// `producer-topic-metrics`).
pub(crate) struct ProducerInstruments {
    registry: MetricRegistry,
    pub(crate) record_send: Meter,
    pub(crate) record_error: Meter,
    pub(crate) record_retry: Meter,
    pub(crate) request_latency: Stat,
    pub(crate) batch_size: Stat,
    pub(crate) records_per_request: Stat,
    pub(crate) compression_rate: Stat,
    pub(crate) record_queue_time: Stat,
    pub(crate) produce_throttle_time: Stat,
    pub(crate) buffer_available_bytes: Gauge,
    pub(crate) buffer_total_bytes: Gauge,
    pub(crate) bufferpool_wait_time_ns: Meter,
    pub(crate) waiting_threads: Gauge,
    pub(crate) waiting: std::sync::atomic::AtomicI64,
    pub(crate) txn_init_time_ns: Meter,
    pub(crate) txn_begin_time_ns: Meter,
    pub(crate) txn_send_offsets_time_ns: Meter,
    pub(crate) txn_commit_time_ns: Meter,
    pub(crate) txn_abort_time_ns: Meter,
}

/// What a producer records per topic (`producer-topic-metrics`, tag `topic`).
pub(crate) struct TopicInstruments {
    pub(crate) record_send: Meter,
    pub(crate) record_error: Meter,
    pub(crate) record_retry: Meter,
    pub(crate) byte: Meter,
    pub(crate) compression_rate: Stat,
}

impl std::fmt::Debug for ProducerInstruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerInstruments").finish_non_exhaustive()
    }
}

impl ProducerInstruments {
    pub(crate) fn new(registry: &MetricRegistry) -> Self {
        let g = "producer-metrics";
        let r = registry;
        ProducerInstruments {
            registry: r.clone(),
            record_send: r.meter(g, "record-send", &[]),
            record_error: r.meter(g, "record-error", &[]),
            record_retry: r.meter(g, "record-retry", &[]),
            request_latency: r.latency(g, "request-latency", &[]),
            batch_size: r.distribution(g, "batch-size", &[]),
            records_per_request: r.distribution(g, "records-per-request", &[]),
            compression_rate: r.ratio(g, "compression-rate", &[]),
            record_queue_time: r.latency(g, "record-queue-time", &[]),
            produce_throttle_time: r.latency(g, "produce-throttle-time", &[]),
            buffer_available_bytes: r.gauge(g, "buffer-available-bytes", &[]),
            buffer_total_bytes: r.gauge(g, "buffer-total-bytes", &[]),
            bufferpool_wait_time_ns: r.meter(g, "bufferpool-wait-time-ns", &[]),
            waiting_threads: r.gauge(g, "waiting-threads", &[]),
            waiting: std::sync::atomic::AtomicI64::new(0),
            txn_init_time_ns: r.meter(g, "txn-init-time-ns", &[]),
            txn_begin_time_ns: r.meter(g, "txn-begin-time-ns", &[]),
            txn_send_offsets_time_ns: r.meter(g, "txn-send-offsets-time-ns", &[]),
            txn_commit_time_ns: r.meter(g, "txn-commit-time-ns", &[]),
            txn_abort_time_ns: r.meter(g, "txn-abort-time-ns", &[]),
        }
    }

    /// The per-topic instruments of `topic` (the sender keeps them in a map by topic).
    pub(crate) fn topic(&self, topic: &str) -> TopicInstruments {
        let g = "producer-topic-metrics";
        let tags = [("topic", topic)];
        let r = &self.registry;
        TopicInstruments {
            record_send: r.meter(g, "record-send", &tags),
            record_error: r.meter(g, "record-error", &tags),
            record_retry: r.meter(g, "record-retry", &tags),
            byte: r.meter(g, "byte", &tags),
            compression_rate: r.ratio(g, "compression-rate", &tags),
        }
    }

    /// A send started waiting for `buffer.memory` (Java's `waiting-threads`).
    pub(crate) fn wait_started(&self) {
        let n = self.waiting.fetch_add(1, Ordering::Relaxed) + 1;
        self.waiting_threads.set(n as f64);
    }

    /// A send stopped waiting for `buffer.memory` after `waited`.
    pub(crate) fn wait_ended(&self, waited: Duration) {
        let n = self.waiting.fetch_sub(1, Ordering::Relaxed) - 1;
        self.waiting_threads.set(n.max(0) as f64);
        self.bufferpool_wait_time_ns
            .add(u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX));
    }
}

/// What a consumer records (`consumer-fetch-manager-metrics`, per topic and per
/// partition too).
pub(crate) struct ConsumerInstruments {
    registry: MetricRegistry,
    pub(crate) records_consumed: Meter,
    pub(crate) bytes_consumed: Meter,
    pub(crate) fetch: Meter,
    pub(crate) fetch_latency: Stat,
    pub(crate) fetch_size: Stat,
    pub(crate) records_per_request: Stat,
    pub(crate) fetch_throttle_time: Stat,
    pub(crate) records_lag_max: Gauge,
    records_lead_min: Gauge,
    /// `consumer-metrics`: the time from one poll's start to the next (Java records 0 for
    /// the first), and the share of poll-to-poll time spent inside poll.
    time_between_poll: Stat,
    poll_idle_ratio: Stat,
    /// `consumer-metrics` `last-poll-seconds-ago`.
    last_poll: Since,
    /// When the running (or last) poll started, and the time since the one before.
    poll_start: Option<Instant>,
    since_last_poll: Duration,
    topics: std::collections::HashMap<Arc<str>, (Meter, Meter)>,
    lags: std::collections::HashMap<(Arc<str>, i32), (Gauge, i64)>,
    /// The largest of `lags`.
    lag_max: i64,
    leads: std::collections::HashMap<(Arc<str>, i32), (Gauge, i64)>,
    /// The smallest of `leads` (None: no partition reported one).
    lead_min: Option<i64>,
    replicas: std::collections::HashMap<(Arc<str>, i32), (Gauge, i32)>,
}

impl ConsumerInstruments {
    pub(crate) fn new(registry: &MetricRegistry) -> Self {
        let g = "consumer-fetch-manager-metrics";
        let r = registry;
        ConsumerInstruments {
            registry: r.clone(),
            records_consumed: r.meter(g, "records-consumed", &[]),
            bytes_consumed: r.meter(g, "bytes-consumed", &[]),
            fetch: r.meter(g, "fetch", &[]),
            fetch_latency: r.latency(g, "fetch-latency", &[]),
            fetch_size: r.distribution(g, "fetch-size", &[]),
            records_per_request: r.distribution(g, "records-per-request", &[]),
            fetch_throttle_time: r.latency(g, "fetch-throttle-time", &[]),
            records_lag_max: r.gauge(g, "records-lag-max", &[]),
            records_lead_min: {
                // NaN until a partition reports its lead.
                let min = r.gauge(g, "records-lead-min", &[]);
                min.set(f64::NAN);
                min
            },
            time_between_poll: r.latency("consumer-metrics", "time-between-poll", &[]),
            poll_idle_ratio: r.ratio("consumer-metrics", "poll-idle-ratio", &[]),
            last_poll: r.since("consumer-metrics", "last-poll-seconds-ago", &[]),
            poll_start: None,
            since_last_poll: Duration::ZERO,
            topics: std::collections::HashMap::new(),
            lags: std::collections::HashMap::new(),
            lag_max: 0,
            leads: std::collections::HashMap::new(),
            lead_min: None,
            replicas: std::collections::HashMap::new(),
        }
    }

    fn topic(&mut self, topic: &Arc<str>) -> &(Meter, Meter) {
        if !self.topics.contains_key(topic) {
            let g = "consumer-fetch-manager-metrics";
            let tags = [("topic", &**topic)];
            let m = (
                self.registry.meter(g, "records-consumed", &tags),
                self.registry.meter(g, "bytes-consumed", &tags),
            );
            self.topics.insert(topic.clone(), m);
        }
        &self.topics[topic]
    }

    /// A poll began (Java's `recordPollStart`).
    pub(crate) fn poll_started(&mut self, now: Instant) {
        self.since_last_poll = self
            .poll_start
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        self.time_between_poll.record_duration(self.since_last_poll);
        self.poll_start = Some(now);
        self.last_poll.mark_at(now);
    }

    /// The poll that began last ended (Java's `recordPollEnd`): poll-idle-ratio is its time
    /// inside poll over that plus the time since the poll before it.
    pub(crate) fn poll_ended(&mut self, now: Instant) {
        let Some(start) = self.poll_start else { return };
        let inside = now.saturating_duration_since(start).as_secs_f64();
        let total = inside + self.since_last_poll.as_secs_f64();
        if total > 0.0 {
            self.poll_idle_ratio.record_ratio(inside / total);
        }
    }

    /// `n` records of `topic` handed to the application.
    pub(crate) fn consumed(&mut self, topic: &Arc<str>, n: u64) {
        self.records_consumed.add(n);
        self.topic(topic).0.add(n);
    }

    /// `n` record bytes of `topic` fetched.
    pub(crate) fn fetched_bytes(&mut self, topic: &Arc<str>, n: u64) {
        self.bytes_consumed.add(n);
        self.topic(topic).1.add(n);
    }

    /// The lag of a partition as the last fetch saw it (`records-lag`, tags topic and
    /// partition), and `records-lag-max` over the partitions.
    pub(crate) fn lag(&mut self, topic: &Arc<str>, partition: i32, lag: i64) {
        let key = (topic.clone(), partition);
        if !self.lags.contains_key(&key) {
            let p = partition.to_string();
            let tags = [("topic", &**topic), ("partition", p.as_str())];
            let g = self
                .registry
                .gauge("consumer-fetch-manager-metrics", "records-lag", &tags);
            self.lags.insert(key.clone(), (g, 0));
        }
        let mut previous = 0;
        if let Some((g, last)) = self.lags.get_mut(&key) {
            g.set(lag as f64);
            previous = std::mem::replace(last, lag);
        }
        // Called per partition run of every poll: the max is rescanned only when the
        // partition that may have held it went down.
        if lag >= self.lag_max {
            self.lag_max = lag;
        } else if previous >= self.lag_max {
            self.lag_max = self.lags.values().map(|(_, l)| *l).max().unwrap_or(0);
        } else {
            return;
        }
        self.records_lag_max.set(self.lag_max as f64);
    }

    /// The lead of a partition (its position minus the log start offset, as the last fetch
    /// saw them: `records-lead`, tags topic and partition), and `records-lead-min` over the
    /// partitions. A small lead means retention is about to delete what the consumer has
    /// not read yet.
    pub(crate) fn lead(&mut self, topic: &Arc<str>, partition: i32, lead: i64) {
        let key = (topic.clone(), partition);
        if !self.leads.contains_key(&key) {
            let p = partition.to_string();
            let tags = [("topic", &**topic), ("partition", p.as_str())];
            let g = self
                .registry
                .gauge("consumer-fetch-manager-metrics", "records-lead", &tags);
            self.leads.insert(key.clone(), (g, lead));
        }
        let mut previous = lead;
        if let Some((g, last)) = self.leads.get_mut(&key) {
            g.set(lead as f64);
            previous = std::mem::replace(last, lead);
        }
        // As for the lag's max: a rescan only when the holder of the min went up.
        match self.lead_min {
            Some(min) if lead > min && previous == min => {
                self.lead_min = self.leads.values().map(|(_, l)| *l).min();
            }
            Some(min) if lead >= min => return,
            _ => self.lead_min = Some(lead),
        }
        self.records_lead_min.set(self.lead_min.map_or(f64::NAN, |m| m as f64));
    }

    /// The replica a partition is fetched from when it is not the leader (KIP-392), or -1
    /// (`preferred-read-replica`, tags topic and partition).
    pub(crate) fn preferred_read_replica(&mut self, topic: &Arc<str>, partition: i32, replica: i32) {
        let key = (topic.clone(), partition);
        if let Some((g, last)) = self.replicas.get_mut(&key) {
            if *last != replica {
                *last = replica;
                g.set(f64::from(replica));
            }
            return;
        }
        let p = partition.to_string();
        let tags = [("topic", &**topic), ("partition", p.as_str())];
        let g = self
            .registry
            .gauge("consumer-fetch-manager-metrics", "preferred-read-replica", &tags);
        g.set(f64::from(replica));
        self.replicas.insert(key, (g, replica));
    }

    /// Partitions that left the assignment no longer count in records-lag-max and
    /// records-lead-min.
    pub(crate) fn keep_lags(&mut self, keep: impl Fn(&str, i32) -> bool) {
        self.lags.retain(|(t, p), _| keep(t, *p));
        self.lag_max = self.lags.values().map(|(_, l)| *l).max().unwrap_or(0);
        self.records_lag_max.set(self.lag_max as f64);
        self.leads.retain(|(t, p), _| keep(t, *p));
        self.lead_min = self.leads.values().map(|(_, l)| *l).min();
        self.records_lead_min.set(self.lead_min.map_or(f64::NAN, |m| m as f64));
    }
}

/// What a consumer in a group records (`consumer-coordinator-metrics`). The consumer
/// records commits and the assignment size; its membership task (classic or KIP-848)
/// records rebalances and heartbeats into the same cells (the registry hands out one cell
/// per name).
pub(crate) struct CoordinatorInstruments {
    pub(crate) commit: Meter,
    pub(crate) commit_latency: Stat,
    pub(crate) assigned_partitions: Gauge,
    /// Successful rebalances: `rebalance-total`, `rebalance-rate-per-hour`.
    rebalance: Meter,
    /// From the start of a rebalance (failed attempts included) to its success:
    /// `rebalance-latency-avg/max/total`.
    rebalance_latency: Stat,
    /// `failed-rebalance-total`, `failed-rebalance-rate-per-hour`.
    failed_rebalance: Meter,
    last_rebalance: Since,
    /// `heartbeat-total`, `heartbeat-rate`, and `heartbeat-response-time-max` (with avg and
    /// percentiles).
    heartbeat: Meter,
    heartbeat_response_time: Stat,
    /// When the last heartbeat was sent (`last-heartbeat-seconds-ago`).
    last_heartbeat: Since,
    /// When the rebalance under way started.
    rebalance_started: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for CoordinatorInstruments {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorInstruments").finish_non_exhaustive()
    }
}

impl CoordinatorInstruments {
    pub(crate) fn new(r: &MetricRegistry) -> Self {
        let g = "consumer-coordinator-metrics";
        CoordinatorInstruments {
            commit: r.meter(g, "commit", &[]),
            commit_latency: r.latency(g, "commit-latency", &[]),
            assigned_partitions: r.gauge(g, "assigned-partitions", &[]),
            rebalance: r.meter_per_hour(g, "rebalance", &[]),
            rebalance_latency: r.latency_with_total(g, "rebalance-latency", &[]),
            failed_rebalance: r.meter_per_hour(g, "failed-rebalance", &[]),
            last_rebalance: r.since(g, "last-rebalance-seconds-ago", &[]),
            heartbeat: r.meter(g, "heartbeat", &[]),
            heartbeat_response_time: r.latency(g, "heartbeat-response-time", &[]),
            last_heartbeat: r.since(g, "last-heartbeat-seconds-ago", &[]),
            rebalance_started: Mutex::new(None),
        }
    }

    /// A rebalance began (a join, or a new target assignment), unless one is under way:
    /// its failed attempts count toward the latency of the one that succeeds (Java).
    pub(crate) fn rebalance_started(&self, now: Instant) {
        lock(&self.rebalance_started).get_or_insert(now);
    }

    /// The rebalance under way ended with an assignment.
    pub(crate) fn rebalance_succeeded(&self, now: Instant) {
        let started = lock(&self.rebalance_started).take().unwrap_or(now);
        self.rebalance.add(1);
        self.rebalance_latency
            .record_duration(now.saturating_duration_since(started));
        self.last_rebalance.mark_at(now);
    }

    /// An attempt to rebalance failed (the rebalance goes on, and its latency with it).
    pub(crate) fn rebalance_failed(&self) {
        self.failed_rebalance.add(1);
    }

    /// A heartbeat is being sent.
    pub(crate) fn heartbeat_sent(&self) {
        self.last_heartbeat.mark();
    }

    /// A heartbeat's response came, `took` after it was sent.
    pub(crate) fn heartbeat_answered(&self, took: Duration) {
        self.heartbeat.add(1);
        self.heartbeat_response_time.record_duration(took);
    }
}

// ---------------------------------------------------------------------------------------
// Instruments: what the roles hold and record into. Recording is an atomic add (meters,
// gauges) or a short uncontended lock (histograms, recorded per batch or request, never
// per record).

struct MeterCell {
    total: AtomicU64,
    facade: metrics::Counter,
}

/// A count (`NAME-total`, `NAME-rate`).
#[derive(Clone)]
pub(crate) struct Meter(Arc<MeterCell>);

impl Meter {
    pub(crate) fn add(&self, n: u64) {
        self.0.total.fetch_add(n, Ordering::Relaxed);
        self.0.facade.increment(n);
    }
}

/// The totals at the starts of the sample windows a rate is computed over.
struct RateWindow {
    samples: Vec<(Instant, u64)>,
}

impl RateWindow {
    fn new(now: Instant) -> Self {
        RateWindow {
            samples: vec![(now, 0)],
        }
    }

    /// Per second over the last `span` (at least one window's worth of history kept).
    fn rate(&mut self, now: Instant, total: u64, window: Duration, span: Duration) -> f64 {
        if self
            .samples
            .last()
            .is_some_and(|(t, _)| now.duration_since(*t) >= window)
        {
            self.samples.push((now, total));
        }
        while self.samples.len() > 1 && now.duration_since(self.samples[1].0) >= span {
            self.samples.remove(0);
        }
        let (t0, v0) = self.samples[0];
        // Java's rate divides by the whole configured span once that much time has passed.
        let elapsed = now.duration_since(t0).max(window).as_secs_f64();
        total.saturating_sub(v0) as f64 / elapsed
    }
}

struct GaugeCell {
    bits: AtomicU64,
    facade: metrics::Gauge,
}

impl GaugeCell {
    fn get(&self) -> f64 {
        f64::from_bits(self.bits.load(Ordering::Relaxed))
    }
}

/// A level (`NAME`).
#[derive(Clone)]
pub(crate) struct Gauge(Arc<GaugeCell>);

impl Gauge {
    pub(crate) fn set(&self, v: f64) {
        self.0.bits.store(v.to_bits(), Ordering::Relaxed);
        self.0.facade.set(v);
    }
}

struct StatCell {
    state: Mutex<StatState>,
    window: Duration,
    shape: Shape,
    /// Also report `NAME-total` (the sum).
    with_total: std::sync::atomic::AtomicBool,
    facade: metrics::Histogram,
}

struct SinceCell {
    epoch: Instant,
    /// Microseconds from `epoch` to the last event, plus one; 0 before the first.
    last: AtomicU64,
    facade: metrics::Gauge,
}

impl SinceCell {
    fn seconds_ago(&self, now: Instant) -> f64 {
        match self.last.load(Ordering::Relaxed) {
            0 => -1.0,
            last => {
                let at = self.epoch + Duration::from_micros(last - 1);
                now.saturating_duration_since(at).as_secs() as f64
            }
        }
    }
}

/// The time of the last event of a kind (`NAME-seconds-ago` when read).
#[derive(Clone)]
pub(crate) struct Since(Arc<SinceCell>);

impl Since {
    /// The event happened now.
    pub(crate) fn mark(&self) {
        self.mark_at(Instant::now());
    }

    fn mark_at(&self, at: Instant) {
        let micros = u64::try_from(at.saturating_duration_since(self.0.epoch).as_micros()).unwrap_or(u64::MAX - 1);
        self.0.last.store(micros + 1, Ordering::Relaxed);
        let unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.0.facade.set(unix);
    }
}

/// A histogram (`NAME-avg`, `-max`, `-p50`, `-p99`, `-p999`).
#[derive(Clone)]
pub(crate) struct Stat(Arc<StatCell>);

impl Stat {
    /// Records a duration (a latency histogram).
    pub(crate) fn record_duration(&self, d: Duration) {
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.record_at(micros, Instant::now());
        self.0.facade.record(d.as_secs_f64());
    }

    /// Records a size (a distribution).
    pub(crate) fn record(&self, v: u64) {
        self.record_at(v, Instant::now());
        self.0.facade.record(v as f64);
    }

    /// Records a ratio (kept in thousandths).
    pub(crate) fn record_ratio(&self, r: f64) {
        debug_assert_eq!(self.0.shape, Shape::Ratio);
        self.record_at((r.max(0.0) * 1000.0).round() as u64, Instant::now());
        self.0.facade.record(r);
    }

    fn record_at(&self, v: u64, now: Instant) {
        lock(&self.0.state).record(v, now, self.0.window);
    }
}

/// Count, sum and max of one sample window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    count: u64,
    sum: u64,
    max: u64,
}

struct StatState {
    /// Since the start, for percentiles and the Prometheus summary.
    hist: Histogram,
    count: u64,
    sum: u64,
    /// The sample windows for avg/max, newest last.
    windows: Vec<Window>,
}

impl StatState {
    fn new(now: Instant) -> Self {
        StatState {
            hist: Histogram::default(),
            count: 0,
            sum: 0,
            windows: vec![Window {
                start: now,
                count: 0,
                sum: 0,
                max: 0,
            }],
        }
    }

    fn record(&mut self, v: u64, now: Instant, window: Duration) {
        self.hist.record(v);
        self.count += 1;
        self.sum = self.sum.saturating_add(v);
        let stale = self
            .windows
            .last()
            .is_none_or(|w| now.duration_since(w.start) >= window);
        if stale {
            if self.windows.len() >= 8 {
                self.windows.remove(0);
            }
            self.windows.push(Window {
                start: now,
                count: 0,
                sum: 0,
                max: 0,
            });
        }
        if let Some(w) = self.windows.last_mut() {
            w.count += 1;
            w.sum = w.sum.saturating_add(v);
            w.max = w.max.max(v);
        }
    }

    /// Count, sum and max over the windows that started within `span` of `now`.
    fn windowed(&self, now: Instant, span: Duration) -> (u64, u64, u64) {
        self.windows
            .iter()
            .filter(|w| now.duration_since(w.start) < span)
            .fold((0, 0, 0), |(c, s, m), w| {
                (c + w.count, s.saturating_add(w.sum), m.max(w.max))
            })
    }
}

/// A log-linear histogram of u64 values: exact below 16, then 8 buckets per power of two
/// (a value is reported within 1/8 of itself). 496 buckets, about 4 KiB.
struct Histogram {
    buckets: Box<[u64; BUCKETS]>,
}

const BUCKETS: usize = 16 + 60 * 8;

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            buckets: Box::new([0; BUCKETS]),
        }
    }
}

fn bucket_of(v: u64) -> usize {
    if v < 16 {
        return v as usize;
    }
    let e = 63 - v.leading_zeros() as usize; // 4..=63
    let sub = ((v >> (e - 3)) & 7) as usize;
    16 + (e - 4) * 8 + sub
}

/// The middle of bucket `i`.
fn bucket_value(i: usize) -> u64 {
    if i < 16 {
        return i as u64;
    }
    let e = (i - 16) / 8 + 4;
    let sub = ((i - 16) % 8) as u64;
    let low = (8 + sub) << (e - 3);
    let width = 1u64 << (e - 3);
    low + width / 2
}

impl Histogram {
    fn record(&mut self, v: u64) {
        self.buckets[bucket_of(v)] += 1;
    }

    /// The value at quantile `q` (0..=1), `None` when nothing was recorded.
    fn quantile(&self, q: f64) -> Option<u64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 {
            return None;
        }
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(bucket_value(i));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_every_u64_within_an_eighth() {
        for v in [0u64, 1, 15, 16, 17, 100, 1000, 12_345, 1 << 40, u64::MAX / 3, u64::MAX] {
            let b = bucket_of(v);
            assert!(b < BUCKETS, "{v} -> {b}");
            let mid = bucket_value(b) as f64;
            assert!((mid - v as f64).abs() <= v as f64 / 8.0 + 1.0, "{v} -> {mid}");
        }
        let mut last = 0;
        for v in (0..100_000u64).step_by(7) {
            let b = bucket_of(v);
            assert!(b >= last, "buckets are monotonic");
            last = b;
        }
    }

    #[test]
    fn quantiles_of_a_known_distribution() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.5), None);
        for v in 1..=1000u64 {
            h.record(v);
        }
        let p50 = h.quantile(0.5).unwrap() as f64;
        let p99 = h.quantile(0.99).unwrap() as f64;
        assert!((p50 - 500.0).abs() <= 500.0 / 8.0, "{p50}");
        assert!((p99 - 990.0).abs() <= 990.0 / 8.0, "{p99}");
    }

    #[test]
    fn rates_and_averages_follow_the_sample_windows() {
        let t0 = Instant::now();
        let w = Duration::from_secs(30);
        let mut rate = RateWindow::new(t0);
        // 300 in the first 10 s: divided by at least one window, as Java does early on.
        assert_eq!(rate.rate(t0 + Duration::from_secs(10), 300, w, w * 2), 10.0);
        // 60 s later the early samples are out of the span.
        let r = rate.rate(t0 + Duration::from_secs(40), 1200, w, w * 2);
        assert!((r - 30.0).abs() < 1e-9, "{r}");
        let r = rate.rate(t0 + Duration::from_secs(100), 1200, w, w * 2);
        assert!(r < 15.0, "{r}");

        let mut s = StatState::new(t0);
        s.record(10, t0, w);
        s.record(30, t0 + Duration::from_secs(1), w);
        assert_eq!(s.windowed(t0 + Duration::from_secs(2), w * 2), (2, 40, 30));
        s.record(5, t0 + Duration::from_secs(35), w);
        assert_eq!(s.windowed(t0 + Duration::from_secs(36), w * 2), (3, 45, 30));
        // The first window has aged out; the all-time histogram keeps everything.
        assert_eq!(s.windowed(t0 + Duration::from_secs(61), w * 2), (1, 5, 5));
        assert_eq!(s.count, 3);
    }

    #[test]
    fn records_lead_min_follows_the_partitions_up_too() {
        let r = MetricRegistry::new("c", Duration::from_secs(30), 2);
        let mut c = ConsumerInstruments::new(&r);
        let t: Arc<str> = Arc::from("t");
        let min = |r: &MetricRegistry| {
            r.snapshot()
                .get("consumer-fetch-manager-metrics", "records-lead-min", &[])
                .unwrap()
        };
        assert!(min(&r).is_nan(), "no partition reported a lead yet");
        c.lead(&t, 0, 10);
        c.lead(&t, 1, 50);
        assert_eq!(min(&r), 10.0);
        c.lead(&t, 0, 70);
        assert_eq!(min(&r), 50.0, "the holder of the min went up");
        c.lead(&t, 1, 5);
        assert_eq!(min(&r), 5.0);
        c.keep_lags(|_, p| p == 0);
        assert_eq!(min(&r), 70.0, "an unassigned partition no longer counts");
        c.keep_lags(|_, _| false);
        assert!(min(&r).is_nan());
        c.preferred_read_replica(&t, 0, 2);
        c.preferred_read_replica(&t, 0, -1);
        let replica = r
            .snapshot()
            .get(
                "consumer-fetch-manager-metrics",
                "preferred-read-replica",
                &[("partition", "0")],
            )
            .unwrap();
        assert_eq!(replica, -1.0);
    }

    #[test]
    fn records_lag_max_follows_the_partitions_down_too() {
        let r = MetricRegistry::new("c", Duration::from_secs(30), 2);
        let mut c = ConsumerInstruments::new(&r);
        let t: Arc<str> = Arc::from("t");
        let max = |r: &MetricRegistry| {
            r.snapshot()
                .get("consumer-fetch-manager-metrics", "records-lag-max", &[])
                .unwrap()
        };
        c.lag(&t, 0, 10);
        c.lag(&t, 1, 5);
        assert_eq!(max(&r), 10.0);
        c.lag(&t, 0, 3);
        assert_eq!(max(&r), 5.0, "the holder of the max went down");
        c.lag(&t, 1, 0);
        assert_eq!(max(&r), 3.0);
        c.keep_lags(|_, p| p == 1);
        assert_eq!(max(&r), 0.0, "an unassigned partition no longer counts");
    }

    #[test]
    fn time_between_polls_and_the_idle_ratio_as_java_records_them() {
        let r = MetricRegistry::new("c", Duration::from_secs(30), 2);
        let mut c = ConsumerInstruments::new(&r);
        let t0 = Instant::now();
        // Poll 1: 100 ms inside; the application then works 300 ms; poll 2: 100 ms inside.
        c.poll_started(t0);
        c.poll_ended(t0 + Duration::from_millis(100));
        c.poll_started(t0 + Duration::from_millis(400));
        c.poll_ended(t0 + Duration::from_millis(500));
        let s = r.snapshot();
        let get = |n: &str| s.get("consumer-metrics", n, &[]).unwrap();
        // Java records 0 for the first poll: (0 + 400) / 2 ms.
        assert_eq!(get("time-between-poll-max"), 400.0);
        assert_eq!(get("time-between-poll-avg"), 200.0);
        // Poll 1: 100 / (100 + 0) = 1; poll 2: 100 / (100 + 400) = 0.2.
        assert!(
            (get("poll-idle-ratio-avg") - 0.6).abs() < 0.01,
            "{}",
            get("poll-idle-ratio-avg")
        );
    }

    #[test]
    fn rebalances_and_heartbeats_as_java_names_them() {
        let r = MetricRegistry::new("c", Duration::from_secs(30), 2);
        let c = CoordinatorInstruments::new(&r);
        let get = |n: &str| r.snapshot().get("consumer-coordinator-metrics", n, &[]).unwrap();
        // Nothing happened yet: Java's -1 for "seconds ago", NaN averages, zero totals.
        assert_eq!(get("last-rebalance-seconds-ago"), -1.0);
        assert_eq!(get("last-heartbeat-seconds-ago"), -1.0);
        assert!(get("rebalance-latency-avg").is_nan());
        assert_eq!(get("rebalance-latency-total"), 0.0);
        // One rebalance: a failed attempt, a second start (ignored: one is under way),
        // success 250 ms after the first start.
        let t0 = Instant::now();
        c.rebalance_started(t0);
        c.rebalance_failed();
        c.rebalance_started(t0 + Duration::from_millis(100));
        c.rebalance_succeeded(t0 + Duration::from_millis(250));
        // A second one of 50 ms.
        c.rebalance_started(t0 + Duration::from_millis(300));
        c.rebalance_succeeded(t0 + Duration::from_millis(350));
        assert_eq!(get("rebalance-total"), 2.0);
        assert_eq!(get("failed-rebalance-total"), 1.0);
        assert_eq!(get("rebalance-latency-max"), 250.0);
        assert_eq!(get("rebalance-latency-avg"), 150.0);
        assert_eq!(get("rebalance-latency-total"), 300.0);
        // Two in (at most) the first 30 s window: 2 / 30 s = 240 per hour.
        assert!(
            (get("rebalance-rate-per-hour") - 240.0).abs() < 1.0,
            "{}",
            get("rebalance-rate-per-hour")
        );
        assert!((get("failed-rebalance-rate-per-hour") - 120.0).abs() < 1.0);
        assert_eq!(get("last-rebalance-seconds-ago"), 0.0);
        c.heartbeat_sent();
        c.heartbeat_answered(Duration::from_millis(7));
        assert_eq!(get("heartbeat-total"), 1.0);
        assert_eq!(get("heartbeat-response-time-max"), 7.0);
        assert_eq!(get("last-heartbeat-seconds-ago"), 0.0);
        // Whole seconds, computed when read.
        if let Some(earlier) = Instant::now().checked_sub(Duration::from_millis(3_500)) {
            c.last_heartbeat.mark_at(earlier);
            assert_eq!(get("last-heartbeat-seconds-ago"), 3.0);
            let text = r.prometheus();
            assert!(
                text.contains("# TYPE kafka_consumer_last_heartbeat_seconds_ago gauge\nkafka_consumer_last_heartbeat_seconds_ago{client_id=\"c\"} 3\n"),
                "{text}"
            );
        }
        let text = r.prometheus();
        assert!(
            text.contains("kafka_consumer_rebalance_total{client_id=\"c\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("kafka_consumer_failed_rebalance_total{client_id=\"c\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn snapshot_and_prometheus_name_what_was_recorded() {
        let r = MetricRegistry::new("c1", Duration::from_secs(30), 2);
        r.meter("producer-topic-metrics", "record-send", &[("topic", "t")])
            .add(5);
        r.meter("producer-topic-metrics", "record-send", &[("topic", "t")])
            .add(2);
        r.gauge("producer-metrics", "buffer-available-bytes", &[]).set(1024.0);
        r.latency("node-metrics", "request-latency", &[("node-id", "1")])
            .record_duration(Duration::from_millis(4));
        let s = r.snapshot();
        assert_eq!(
            s.get("producer-topic-metrics", "record-send-total", &[("topic", "t")])
                .unwrap(),
            7.0
        );
        assert_eq!(
            s.get("producer-metrics", "buffer-available-bytes", &[]).unwrap(),
            1024.0
        );
        let avg = s
            .get("node-metrics", "request-latency-avg", &[("node-id", "1")])
            .unwrap();
        assert!((avg - 4.0).abs() < 1e-9, "{avg}");
        let e = s.get("producer-metrics", "record-sned-total", &[]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("record-sned-total"), "{e}");
        let text = r.prometheus();
        assert!(
            text.contains("# TYPE kafka_producer_record_send_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains("kafka_producer_record_send_total{client_id=\"c1\",topic=\"t\"} 7\n"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE kafka_node_request_latency_seconds summary\n"),
            "{text}"
        );
        assert!(text.contains("kafka_node_request_latency_seconds_count{client_id=\"c1\",node_id=\"1\"} 1\n"));
    }
}
