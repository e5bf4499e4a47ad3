//! `--metrics-addr HOST:PORT`: the Prometheus text exposition of every client the command
//! created, at `http://HOST:PORT/metrics`, while the command runs.
//!
//! The listener is bound before anything else, so a taken port or a bad address fails the
//! command at once. Each request is read with a bound (8 KiB, 5 s) and answered with
//! `Connection: close`; anything but `GET /metrics` gets a 404.

use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use strom_client::metrics::{prometheus_text, MetricRegistry};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The registries of the clients the command created (empty until it has one).
static PUBLISHED: OnceLock<Mutex<Vec<MetricRegistry>>> = OnceLock::new();

/// Serves the metrics of `registry` too (a no-op without `--metrics-addr`).
pub(crate) fn publish(registry: &MetricRegistry) {
    if let Some(p) = PUBLISHED.get() {
        p.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(registry.clone());
    }
}

/// Binds `addr` and serves `/metrics` in the background; returns the bound address (which
/// the command prints, so `HOST:0` is usable).
pub(crate) async fn start(addr: &str) -> Result<std::net::SocketAddr, String> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        format!("--metrics-addr {addr}: cannot listen there: {e} (expected HOST:PORT, e.g. 127.0.0.1:9464)")
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| format!("--metrics-addr {addr}: {e}"))?;
    PUBLISHED.get_or_init(|| Mutex::new(Vec::new()));
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(answer(sock));
        }
    });
    Ok(bound)
}

async fn answer(mut sock: TcpStream) {
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
        let registries = PUBLISHED
            .get()
            .map(|p| p.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
            .unwrap_or_default();
        (
            "200 OK",
            "text/plain; version=0.0.4; charset=utf-8",
            prometheus_text(&registries),
        )
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
