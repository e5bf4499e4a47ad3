//! `--metrics-addr HOST:PORT`: the Prometheus text exposition of every client the command
//! created, at `http://HOST:PORT/metrics`, while the command runs
//! ([`strom_client::metrics::serve_prometheus`]).
//!
//! The listener is bound before anything else, so a taken port or a bad address fails the
//! command at once.

use std::sync::{Mutex, OnceLock};

use strom_client::metrics::{prometheus_text, serve_prometheus, MetricRegistry};

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
    PUBLISHED.get_or_init(|| Mutex::new(Vec::new()));
    serve_prometheus(addr, || {
        let registries = PUBLISHED
            .get()
            .map(|p| p.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone())
            .unwrap_or_default();
        prometheus_text(&registries)
    })
    .await
    .map_err(|e| e.to_string().replacen("metrics address", "--metrics-addr", 1))
}
