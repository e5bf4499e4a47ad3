//! The Prometheus way out: the text exposition format of one or more registries, and a
//! small HTTP endpoint serving it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::time::Duration;

use std::sync::atomic::Ordering;
use tokio::time::Instant;

use super::cells::lock;
use super::names::{prom_labels, prom_name, prom_value, Shape, QUANTILES};
use super::registry::{Cell, MetricRegistry};
use crate::error::{Error, Result};

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
///
/// Cancellation: dropping the future stops serving and closes the listener.
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

pub(super) async fn answer_scrape(mut sock: tokio::net::TcpStream, render: Arc<impl Fn() -> String>) {
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

impl MetricRegistry {
    /// Every metric in the Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        prometheus_text(std::slice::from_ref(self))
    }

    pub(super) fn write_families(&self, families: &mut BTreeMap<String, (&'static str, String)>) {
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
