//! What every layer of a broker connection shares, from the socket up: the stream's two
//! halves, the connection's settings ([`ConnectionConfig`]) and counters, and the
//! diagnosis of a listener that speaks another protocol. Below [`crate::security`],
//! [`crate::transport`] and [`crate::connection`], which all use it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use strom_protocol::frame;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::config::{socket_buffer, ClientConfig, DEFAULT_RECEIVE_BUFFER_BYTES, DEFAULT_SEND_BUFFER_BYTES};
use crate::error::{Error, Kind, Result};
use crate::security::Security;

/// The read half of a broker stream.
pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a broker stream.
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Settings of one connection (the Java names are in brackets).
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// Sent in every request header (`client.id`, default `strom`).
    pub client_id: String,
    /// TCP connect limit (`socket.connection.setup.timeout.ms`, default 10 s as Java).
    pub connect_timeout: Duration,
    /// Wait for one response (`request.timeout.ms`, default 30 s as Java).
    pub request_timeout: Duration,
    /// Largest response frame accepted, checked before buffering it (default 100 MiB).
    pub max_response_size: usize,
    /// Close the connection after this long with nothing outstanding
    /// (`connections.max.idle.ms`, default 9 min as Java).
    pub idle_timeout: Duration,
    /// `SO_SNDBUF` of the socket in bytes (`send.buffer.bytes`), set before connecting;
    /// `None` keeps the OS default (Java's `-1`). Default `None` here; a
    /// [`ClientConfig`](crate::ClientConfig) gives Java's role defaults (128 KiB).
    pub send_buffer_size: Option<u32>,
    /// `SO_RCVBUF` of the socket in bytes (`receive.buffer.bytes`), set before connecting
    /// (so it also sizes the TCP window offered); `None` keeps the OS default. Default `None`
    /// here; a [`ClientConfig`](crate::ClientConfig) gives Java's role defaults (32 KiB for
    /// a producer, 64 KiB otherwise).
    pub receive_buffer_size: Option<u32>,
    /// TLS and SASL (`security.protocol`, `ssl.*`, `sasl.*`); `None` is PLAINTEXT. Built by
    /// [`ClientConfig::connection_config`](crate::ClientConfig::connection_config).
    pub security: Option<Arc<crate::security::Security>>,
    /// Opens the byte stream in place of TCP (tests: an in-memory cluster); `None` is TCP.
    /// See [`Transport`](crate::custom_transport::Transport).
    pub transport: Option<Arc<dyn crate::custom_transport::Transport>>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            client_id: "strom".into(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response_size: frame::DEFAULT_MAX_FRAME_SIZE,
            idle_timeout: Duration::from_secs(540),
            send_buffer_size: None,
            receive_buffer_size: None,
            security: None,
            transport: None,
        }
    }
}

impl ClientConfig {
    /// The settings of one broker connection, security included: certificate files, keys
    /// and JAAS entries are read and checked here, so a mistake is an error naming the
    /// property before anything connects.
    pub fn connection_config(&self) -> Result<ConnectionConfig> {
        if self.transport.is_some() && self.security_protocol != crate::config::SecurityProtocol::Plaintext {
            return Err(crate::custom_transport::security_refused(self.security_protocol));
        }
        Ok(ConnectionConfig {
            client_id: self.client_id.clone(),
            connect_timeout: self.connect_timeout,
            request_timeout: self.request_timeout,
            max_response_size: self.max_response_size,
            idle_timeout: self.connections_max_idle,
            send_buffer_size: socket_buffer(self.send_buffer_bytes.unwrap_or(DEFAULT_SEND_BUFFER_BYTES)),
            receive_buffer_size: socket_buffer(self.receive_buffer_bytes.unwrap_or(DEFAULT_RECEIVE_BUFFER_BYTES)),
            security: Security::from_config(self)?.map(Arc::new),
            transport: self.transport.clone(),
        })
    }
}

/// Counters of one connection, shared by its handle and its tasks.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) requests: AtomicU64,
    pub(crate) responses: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) inflight: AtomicU64,
    /// Milliseconds since `epoch` of the last request or response.
    pub(crate) last_activity_ms: AtomicU64,
    /// The client's `node-metrics` of this broker, once attached.
    pub(crate) node: std::sync::OnceLock<Arc<crate::metrics::NodeInstruments>>,
    /// The reader ended: the connection is closed.
    pub(crate) ended: std::sync::atomic::AtomicBool,
    /// Its close was counted in `node` (exactly once, by the reader's end or by the attach).
    pub(crate) close_counted: std::sync::atomic::AtomicBool,
    /// Until when the broker throttles this connection (KIP-219): nothing is written before.
    pub(crate) throttled_until: std::sync::Mutex<Option<tokio::time::Instant>>,
}

impl Counters {
    /// The broker asked for no request before `until` (a throttled response, KIP-219).
    pub(crate) fn throttle(&self, until: tokio::time::Instant) {
        let mut t = self
            .throttled_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if t.is_none_or(|t| t < until) {
            *t = Some(until);
        }
    }

    /// When the throttle ends, if it has not yet.
    pub(crate) fn throttled(&self) -> Option<tokio::time::Instant> {
        let t = *self
            .throttled_until
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        t.filter(|t| *t > tokio::time::Instant::now())
    }

    /// The client's `node-metrics` of this broker, once attached.
    pub(crate) fn node(&self) -> Option<&Arc<crate::metrics::NodeInstruments>> {
        self.node.get()
    }

    /// Counts the close once the connection has both ended and been attached.
    pub(crate) fn count_close(&self) {
        if self.ended.load(Ordering::SeqCst) {
            if let Some(m) = self.node.get() {
                if !self.close_counted.swap(true, Ordering::SeqCst) {
                    m.closed();
                }
            }
        }
    }
}

/// A snapshot of a connection's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnectionMetrics {
    /// Requests written.
    pub requests: u64,
    /// Responses received.
    pub responses: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Requests that failed (timeout, closed connection, decode error).
    pub errors: u64,
    /// Requests outstanding now.
    pub inflight: u64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> ConnectionMetrics {
        ConnectionMetrics {
            requests: self.requests.load(Ordering::Relaxed),
            responses: self.responses.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            inflight: self.inflight.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn touch(&self, epoch: Instant) {
        self.last_activity_ms
            .store(epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

/// The first bytes of a TLS record: handshake (0x16) or alert (0x15), then major version 3.
/// A TLS listener answers a client that does not speak TLS with one; a Kafka frame cannot
/// start so (its size would be over 350 MB, above any frame limit).
pub(crate) fn looks_like_tls(bytes: &[u8]) -> bool {
    matches!(bytes, [0x15 | 0x16, 0x03, ..])
}

/// The fatal error for a TLS listener met without TLS.
pub(crate) fn tls_listener_error(addr: &str, sasl: bool) -> Error {
    let set = if sasl { "SASL_SSL" } else { "SSL (or SASL_SSL)" };
    Error::new(Kind::SecurityMismatch {
        addr: addr.to_owned(),
        hint: format!("this is a TLS listener (it answered with a TLS record); set security.protocol={set}"),
    })
}

/// What a broker closing the connection right after ApiVersions most likely means.
pub(crate) const SASL_LISTENER_HINT: &str =
    "the broker closed the connection after ApiVersions, as a SASL listener does \
     to a client that does not authenticate: if this is a SASL listener, set security.protocol=SASL_PLAINTEXT \
     (or SASL_SSL) and sasl.mechanism (with sasl.jaas.config or sasl.username/sasl.password)";
