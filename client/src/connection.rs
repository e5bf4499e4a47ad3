//! One broker connection: a writer task and a reader task own the socket; callers hold a
//! cheap [`Connection`] handle.
//!
//! Requests are pipelined. The writer hands each request's reply slot to the reader *before*
//! writing the frame, and Kafka answers requests on one connection in order, so the reader
//! matches each response to the oldest outstanding slot and checks its correlation id.
//! Reading and writing run in separate tasks so a large request never waits behind a large
//! response (the broker mutes a connection while it sends a response).
//!
//! Cancellation: dropping a [`Connection::send`] future at any point never corrupts the
//! connection. Before the request is queued nothing happened; after, the reader still
//! consumes the response and discards it, so the next response still lines up.
//!
//! A response that says the broker throttles the client (`throttle_time_ms`, at KIP-219's
//! versions) holds every later request of the connection in the writer until the throttle
//! is over, as the broker reads nothing from it meanwhile; those requests' timeouts start
//! after it.
//!
//! A request that times out closes the connection (as the Java client's `NetworkClient`
//! does): a broker that did not answer in `request.timeout.ms` is not trusted with the next
//! one. Closing fails every outstanding request with a retriable error.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use bytes::{Bytes, BytesMut};
use strom_protocol::frame::{self, ApiRequest};
use strom_protocol::message_traits::{Decodable, StrBytes};
use strom_protocol::messages::{ApiKey, ApiVersionsRequest, ApiVersionsResponse};
use strom_protocol::versions::{api_name, NegotiatedVersions};
use strom_protocol::ErrorCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, debug_span, info_span, trace, Instrument};

use crate::error::{Error, Kind, Result};
use crate::stream::{looks_like_tls, tls_listener_error, BoxRead, BoxWrite, Counters, SASL_LISTENER_HINT};
pub use crate::stream::{ConnectionConfig, ConnectionMetrics};
use crate::transport;

type Reply = oneshot::Sender<Result<Bytes>>;

struct Outgoing {
    frame: BytesMut,
    /// Correlation id and reply slot; `None` when no response comes (Produce with acks=0).
    reply: Option<(i32, Reply)>,
}

/// A handle to one broker connection. Cheap to clone; the connection closes when the last
/// handle is dropped or on the first I/O or protocol error.
#[derive(Clone)]
pub struct Connection {
    inner: Arc<Inner>,
}

struct Inner {
    addr: String,
    config: ConnectionConfig,
    tx: mpsc::Sender<Outgoing>,
    next_correlation_id: AtomicI32,
    versions: NegotiatedVersions,
    closed: watch::Sender<Option<String>>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("addr", &self.inner.addr)
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.closed.send_replace(Some("connection handle dropped".into()));
    }
}

impl Connection {
    /// Connects to `addr` (`host:port`) and negotiates API versions.
    ///
    /// Cancellation-safe: dropping the future drops the half-open socket.
    pub async fn connect(addr: &str, config: ConnectionConfig) -> Result<Connection> {
        // A root span: the connection's tasks outlive the call that opened it, and a child
        // of the caller's span would keep that span open (and unexported) for as long.
        let span = info_span!(parent: None, "connection", broker = %addr);
        async move {
            let counters = Arc::new(Counters::default());
            let (read, write) = transport::open(addr, &config, &counters).await?;
            let (tx, rx) = mpsc::channel::<Outgoing>(64);
            let (inflight_tx, inflight_rx) = mpsc::unbounded_channel::<(i32, Reply)>();
            let (closed, _) = watch::channel(None);
            let io = Io {
                closed: closed.clone(),
                addr: addr.to_owned(),
                counters: counters.clone(),
                epoch: Instant::now(),
                sasl: config
                    .security
                    .as_deref()
                    .is_some_and(crate::security::Security::has_sasl),
            };
            tokio::spawn(
                writer(write, rx, inflight_tx, io.clone(), config.idle_timeout).instrument(tracing::Span::current()),
            );
            tokio::spawn(reader(read, inflight_rx, io, config.max_response_size).instrument(tracing::Span::current()));
            let mut conn = Connection {
                inner: Arc::new(Inner {
                    addr: addr.to_owned(),
                    config,
                    tx,
                    next_correlation_id: AtomicI32::new(0),
                    versions: NegotiatedVersions::from_response(&ApiVersionsResponse::default()),
                    closed,
                    counters,
                }),
            };
            let versions = conn.negotiate().await?;
            // Still the only handle: install the negotiated versions.
            match Arc::get_mut(&mut conn.inner) {
                Some(inner) => inner.versions = versions,
                None => return Err(Error::internal("connection handle shared during negotiation")),
            }
            debug!("connected");
            Ok(conn)
        }
        .instrument(span)
        .await
    }

    /// ApiVersions: v3 first (flexible, carries finalized features); a broker that does not
    /// know v3 answers UNSUPPORTED_VERSION with a v0 body listing its range.
    async fn negotiate(&self) -> Result<NegotiatedVersions> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("strom"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let (buf, id) = self.encode(&req, 3)?;
        let span =
            debug_span!("request", api = "ApiVersions", version = 3, broker = %self.inner.addr, correlation_id = id);
        let frame = self
            .send_encoded::<ApiVersionsRequest>(buf, id)
            .instrument(span)
            .await?;
        let mut body = frame.clone();
        let resp = match frame::decode_response::<ApiVersionsRequest>(frame, 3, id) {
            Ok(r) if r.error_code != ErrorCode::UnsupportedVersion.code() => r,
            _ => {
                // Header v0 is the correlation id alone, then a v0 body.
                let skip = body.len().min(4);
                bytes::Buf::advance(&mut body, skip);
                let v0 = ApiVersionsResponse::decode(&mut body, 0).map_err(|_| {
                    Error::from(strom_protocol::WireError::Message {
                        api: "ApiVersions",
                        version: 0,
                    })
                })?;
                let max = v0
                    .api_keys
                    .iter()
                    .find(|k| k.api_key == ApiKey::ApiVersions as i16)
                    .map_or(0, |k| k.max_version)
                    .clamp(0, 2);
                let (frame, id) = self.send_frame_id(&ApiVersionsRequest::default(), max).await?;
                frame::decode_response::<ApiVersionsRequest>(frame, max, id)?
            }
        };
        if resp.error_code != 0 {
            return Err(Error::kafka(ErrorCode::from_code(resp.error_code))
                .with_context(format!("ApiVersions from {}", self.inner.addr)));
        }
        Ok(NegotiatedVersions::from_response(&resp))
    }

    /// The broker address.
    pub fn addr(&self) -> &str {
        &self.inner.addr
    }

    /// Versions negotiated with this broker, and its finalized features.
    pub fn versions(&self) -> &NegotiatedVersions {
        &self.inner.versions
    }

    /// Counters of this connection.
    pub fn metrics(&self) -> ConnectionMetrics {
        self.inner.counters.snapshot()
    }

    /// The connection failed or was closed; every further request fails.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.borrow().is_some()
    }

    /// Closes the connection, failing outstanding requests.
    pub fn close(&self, reason: &str) {
        self.inner.closed.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(reason.to_owned());
                true
            } else {
                false
            }
        });
    }

    /// Sends `request` at the highest version both sides support and waits for the response.
    ///
    /// Cancellation-safe (see the module docs). Fails after `request.timeout.ms`.
    pub async fn send<R: ApiRequest>(&self, request: &R) -> Result<R::Response> {
        let version = self.inner.versions.version(R::API)?;
        self.send_version(request, version).await
    }

    /// Records this connection's traffic under broker `node`'s `node-metrics` from now on
    /// (the first call wins).
    pub(crate) fn attach_metrics(&self, node: Arc<crate::metrics::NodeInstruments>) {
        let c = &self.inner.counters;
        if c.node.set(node.clone()).is_ok() {
            node.opened();
            // Closed before it was attached: the reader's end could not count it.
            c.count_close();
        }
    }

    /// Sends `request` at `version` (which the caller checked the broker supports).
    ///
    /// Cancellation-safe (see the module docs). Fails after `request.timeout.ms`.
    pub async fn send_version<R: ApiRequest>(&self, request: &R, version: i16) -> Result<R::Response> {
        let started = Instant::now();
        let (buf, id) = self.encode(request, version)?;
        let span = debug_span!(
            "request",
            api = api_name(R::API),
            version,
            broker = %self.inner.addr,
            correlation_id = id,
            latency_us = tracing::field::Empty,
        );
        async {
            let resp = self.send_encoded::<R>(buf, id).await.and_then(|frame| {
                frame::decode_response::<R>(frame, version, id)
                    .map_err(|e| Error::from(e).with_context(format!("broker {}", self.inner.addr)))
            });
            if let Ok(r) = &resp {
                // KIP-219: the broker answered a throttled request at once; the client
                // sends nothing more on this connection until the throttle time is over.
                let ms = R::client_throttle_ms(r, version);
                if ms > 0 {
                    let throttle = Duration::from_millis(ms.unsigned_abs().into());
                    debug!(throttle_ms = ms, "the broker throttles this connection");
                    self.inner.counters.throttle(Instant::now() + throttle);
                }
            }
            let elapsed = started.elapsed();
            let latency = elapsed.as_micros() as u64;
            tracing::Span::current().record("latency_us", latency);
            match &resp {
                Ok(_) => {
                    if let Some(m) = self.inner.counters.node.get() {
                        m.request_latency.record_duration(elapsed);
                    }
                    trace!(latency_us = latency, "response")
                }
                Err(e) => {
                    self.inner.counters.errors.fetch_add(1, Ordering::Relaxed);
                    debug!(latency_us = latency, error = %e, "request failed");
                }
            }
            resp
        }
        .instrument(span)
        .await
    }

    /// Sends a request that gets no response (Produce with acks=0); returns once queued.
    ///
    /// Cancellation-safe: the request is written whole or not at all.
    pub async fn send_no_response<R: ApiRequest>(&self, request: &R, version: i16) -> Result<()> {
        let (buf, _) = self.encode(request, version)?;
        self.inner
            .tx
            .send(Outgoing {
                frame: buf,
                reply: None,
            })
            .await
            .map_err(|_| self.closed_error())
    }

    fn encode<R: ApiRequest>(&self, request: &R, version: i16) -> Result<(BytesMut, i32)> {
        let id = self.inner.next_correlation_id.fetch_add(1, Ordering::Relaxed) & i32::MAX;
        let mut buf = BytesMut::new();
        frame::encode_request(&mut buf, version, id, Some(&self.inner.config.client_id), request)?;
        Ok((buf, id))
    }

    async fn send_frame_id<R: ApiRequest>(&self, request: &R, version: i16) -> Result<(Bytes, i32)> {
        let (buf, id) = self.encode(request, version)?;
        Ok((self.send_encoded::<R>(buf, id).await?, id))
    }

    /// Queues an encoded request and waits for its response frame.
    async fn send_encoded<R: ApiRequest>(&self, buf: BytesMut, id: i32) -> Result<Bytes> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let timeout = self.inner.config.request_timeout;
        let what = || format!("waiting for {} from {}", api_name(R::API), self.inner.addr);
        let queued = self.inner.tx.send(Outgoing {
            frame: buf,
            reply: Some((id, reply_tx)),
        });
        match tokio::time::timeout(timeout, queued).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(self.closed_error()),
            Err(_) => return Err(Error::timeout(what(), timeout)),
        }
        // A throttled connection writes the request only once the throttle is over: the
        // request's time starts then (as Java's NetworkClient, which does not send before).
        let held = self
            .inner
            .counters
            .throttled()
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(Instant::now()));
        match tokio::time::timeout(timeout + held, reply_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => {
                self.close(&format!("request timed out after {timeout:?}"));
                Err(Error::timeout(what(), timeout))
            }
        }
    }

    fn closed_error(&self) -> Error {
        Error::new(Kind::Closed {
            addr: self.inner.addr.clone(),
            reason: self.inner.closed.borrow().clone(),
        })
    }
}

/// What the writer and reader tasks share.
#[derive(Clone)]
struct Io {
    closed: watch::Sender<Option<String>>,
    addr: String,
    counters: Arc<Counters>,
    epoch: Instant,
    /// SASL is configured (else a broker closing right after ApiVersions hints at a SASL
    /// listener).
    sasl: bool,
}

async fn writer(
    mut write: BoxWrite,
    mut rx: mpsc::Receiver<Outgoing>,
    inflight: mpsc::UnboundedSender<(i32, Reply)>,
    io: Io,
    idle_timeout: Duration,
) {
    let mut closed_rx = io.closed.subscribe();
    let c = &io.counters;
    c.touch(io.epoch);
    loop {
        // Idle: nothing outstanding and no traffic for `connections.max.idle.ms`.
        let last = Duration::from_millis(c.last_activity_ms.load(Ordering::Relaxed));
        let idle_at = io.epoch + last + idle_timeout;
        let out = tokio::select! {
            out = rx.recv() => out,
            _ = closed_rx.wait_for(Option::is_some) => None,
            _ = tokio::time::sleep_until(idle_at) => {
                let idle = c.inflight.load(Ordering::Relaxed) == 0
                    && io.epoch.elapsed() >= Duration::from_millis(c.last_activity_ms.load(Ordering::Relaxed)) + idle_timeout;
                if idle {
                    io.closed.send_replace(Some(format!("idle for {idle_timeout:?}")));
                    break;
                }
                continue;
            }
        };
        let Some(out) = out else { break };
        // KIP-219: nothing is written while the broker throttles this connection.
        if let Some(until) = c.throttled() {
            tokio::select! {
                () = tokio::time::sleep_until(until) => {}
                _ = closed_rx.wait_for(Option::is_some) => break,
            }
        }
        if let Some(slot) = out.reply {
            c.inflight.fetch_add(1, Ordering::Relaxed);
            if inflight.send(slot).is_err() {
                break;
            }
        }
        c.requests.fetch_add(1, Ordering::Relaxed);
        c.bytes_out.fetch_add(out.frame.len() as u64, Ordering::Relaxed);
        if let Some(m) = c.node.get() {
            m.request.add(1);
            m.outgoing_byte.add(out.frame.len() as u64);
        }
        c.touch(io.epoch);
        if let Err(e) = write.write_all(&out.frame).await {
            io.closed.send_replace(Some(format!("write failed: {e}")));
            debug!(broker = %io.addr, error = %e, "write failed");
            break;
        }
    }
    let _ = write.shutdown().await;
}

async fn reader(mut read: BoxRead, mut inflight: mpsc::UnboundedReceiver<(i32, Reply)>, io: Io, max: usize) {
    let mut closed_rx = io.closed.subscribe();
    let c = &io.counters;
    let mut buf = BytesMut::with_capacity(64 * 1024);
    // An error every outstanding request gets instead of "closed" (a wrong security.protocol).
    let mut fatal: Option<Error> = None;
    let reason = 'conn: loop {
        loop {
            match frame::split_frame(&mut buf, max) {
                Ok(Some(frame)) => {
                    let Ok((id, reply)) = inflight.try_recv() else {
                        break 'conn "a response arrived with no request outstanding".to_owned();
                    };
                    c.inflight.fetch_sub(1, Ordering::Relaxed);
                    c.responses.fetch_add(1, Ordering::Relaxed);
                    if let Some(m) = c.node.get() {
                        m.response.add(1);
                    }
                    c.touch(io.epoch);
                    let actual = frame::response_correlation_id(&frame).unwrap_or(-1);
                    if actual != id {
                        let _ = reply.send(Err(strom_protocol::WireError::CorrelationMismatch {
                            expected: id,
                            actual,
                        }
                        .into()));
                        break 'conn format!("correlation id mismatch: expected {id}, got {actual}");
                    }
                    // The caller may have given up (dropped its future): discard quietly.
                    let _ = reply.send(Ok(frame));
                }
                Ok(None) => break,
                Err(e) => {
                    if looks_like_tls(&buf) {
                        let err = tls_listener_error(&io.addr, io.sasl);
                        let reason = err.to_string();
                        fatal = Some(err);
                        break 'conn reason;
                    }
                    break 'conn format!("bad frame: {e}");
                }
            }
        }
        buf.reserve(frame::frame_bytes_missing(&buf).max(64 * 1024));
        tokio::select! {
            r = read.read_buf(&mut buf) => match r {
                // Only ApiVersions answered: what a SASL listener does to a client without SASL.
                Ok(0) if buf.is_empty() && !io.sasl && c.responses.load(Ordering::Relaxed) <= 1 => {
                    break 'conn SASL_LISTENER_HINT.to_owned()
                }
                Ok(0) if buf.is_empty() => break 'conn "the broker closed the connection".to_owned(),
                Ok(0) => break 'conn format!("the broker closed the connection inside a frame ({} bytes of it read)", buf.len()),
                Ok(n) => {
                    c.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
                    if let Some(m) = c.node.get() {
                        m.incoming_byte.add(n as u64);
                    }
                }
                Err(e) => break 'conn format!("read failed: {e}"),
            },
            _ = closed_rx.wait_for(Option::is_some) => break 'conn String::new(),
        }
    };
    let reason = io.closed.borrow().clone().unwrap_or(reason);
    io.closed.send_replace(Some(reason.clone()));
    c.ended.store(true, Ordering::SeqCst);
    c.count_close();
    debug!(broker = %io.addr, %reason, "connection closed");
    inflight.close();
    while let Ok((_, reply)) = inflight.try_recv() {
        c.inflight.fetch_sub(1, Ordering::Relaxed);
        let err = match &fatal {
            Some(e) => e.clone(),
            None => Error::new(Kind::Closed {
                addr: io.addr.clone(),
                reason: Some(reason.clone()),
            }),
        };
        let _ = reply.send(Err(err));
    }
}
