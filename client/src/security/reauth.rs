//! Re-authentication (KIP-368) on a live connection, in-band and race-free.
//!
//! When SaslAuthenticate grants a session lifetime, the broker closes the connection once
//! it ends, unless the client re-authenticates first: SaslHandshake + SaslAuthenticate on
//! the same connection. Java does it at 85–95 % of the lifetime (`SaslClientAuthenticator`).
//! During re-authentication the broker accepts *only* SASL requests on that connection
//! (`SaslServerAuthenticator` fails anything else with ILLEGAL_SASL_STATE and closes it), so
//! ordinary requests must wait, while responses to requests already sent still arrive.
//!
//! [`Connection`](crate::lowlevel::Connection) pipelines requests from any task through one writer
//! task, so re-authentication cannot go through it: a Produce queued between our
//! SaslHandshake and SaslAuthenticate would reach the broker mid-exchange. Instead the two
//! stream halves are wrapped here:
//!
//! * [`MuxWrite`] knows where each request frame ends (every frame is handed over by one
//!   `write_all`). When re-authentication wants the stream it waits for a frame boundary,
//!   then holds the connection's writer at the next frame (Pending) until the exchange is
//!   over; the re-authentication task writes its own frames meanwhile.
//! * [`MuxRead`] splits the byte stream into frames and diverts responses with a negative
//!   correlation id (ours; `Connection` only uses non-negative ids) to the waiting
//!   re-authentication task; everything else passes to the connection's reader untouched.
//!
//! Race walkthrough: (1) the task asks for the stream; (2) a request being written finishes
//! its frame, and only then does the task own the writer side; (3) requests written before
//! are answered first (the broker answers in order), their responses pass through; (4) our
//! SaslHandshake/SaslAuthenticate responses are diverted; (5) on release the held writer is
//! woken and continues with its frame. A failed re-authentication fails both halves, so the
//! connection closes and its requests fail as retriable; the client reconnects.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use strom_protocol::frame::{self, ApiRequest};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{oneshot, watch};
use tracing::{debug, warn, Instrument};

use crate::error::{Error, Kind, Result};
use crate::security::sasl::{self, SaslChannel, SaslSettings};
use crate::stream::{BoxRead, BoxWrite, Counters};

/// Largest response frame diverted to re-authentication (SASL tokens are small).
const MAX_DIVERTED: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// The connection's writer owns the stream.
    Idle,
    /// Re-authentication waits for the current request frame to end.
    Waiting,
    /// Re-authentication owns the writer side; the connection's writer is held.
    Active,
}

struct State {
    write: BoxWrite,
    /// Bytes of the connection's current request frame still to write (0: at a boundary).
    frame_left: usize,
    /// The connection's writer completed a frame whose flush is pending: report this many.
    flush_pending: Option<usize>,
    phase: Phase,
    /// The connection's writer, held at the gate or waiting on the socket.
    writer_waker: Option<Waker>,
    /// The connection's reader (woken to report a failure).
    reader_waker: Option<Waker>,
    /// The re-authentication task.
    reauth_waker: Option<Waker>,
    /// Correlation id and slot of the response re-authentication waits for.
    reply: Option<(i32, oneshot::Sender<Bytes>)>,
    /// Why the connection must fail (re-authentication failed).
    failed: Option<String>,
}

/// What the wrapped halves and the re-authentication task share.
pub(crate) struct Shared {
    state: Mutex<State>,
    /// Set when either half is dropped: the connection is gone.
    closed: watch::Sender<bool>,
}

impl Shared {
    fn lock(&self) -> io::Result<MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| io::Error::other("connection state poisoned"))
    }

    /// Fails the connection: both halves return errors from now on.
    fn fail(&self, reason: String) {
        if let Ok(mut st) = self.state.lock() {
            st.failed.get_or_insert(reason);
            st.phase = Phase::Idle;
            for w in [st.writer_waker.take(), st.reader_waker.take()].into_iter().flatten() {
                w.wake();
            }
        }
    }

    /// Waits for a request-frame boundary and takes the writer side.
    async fn acquire(self: &Arc<Self>) -> io::Result<Gate> {
        // Created first: dropping it (an error, a cancelled wait) hands the stream back.
        let gate = Gate(self.clone());
        std::future::poll_fn(|cx| {
            let mut st = self.lock()?;
            if let Some(f) = &st.failed {
                return Poll::Ready(Err(io::Error::other(f.clone())));
            }
            if *self.closed.borrow() {
                return Poll::Ready(Err(io::Error::other("connection closed")));
            }
            if st.phase == Phase::Idle {
                st.phase = Phase::Waiting;
            }
            if st.frame_left == 0 {
                st.phase = Phase::Active;
                Poll::Ready(Ok(()))
            } else {
                st.reauth_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        })
        .await?;
        Ok(gate)
    }

    /// Writes and flushes one whole frame (the writer side is ours).
    async fn write_frame(&self, frame: &[u8]) -> io::Result<()> {
        let mut off = 0;
        std::future::poll_fn(|cx| {
            let mut st = self.lock()?;
            let st = &mut *st;
            while off < frame.len() {
                match Pin::new(&mut st.write).poll_write(cx, &frame[off..]) {
                    Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                    Poll::Ready(Ok(n)) => off += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {
                        st.reauth_waker = Some(cx.waker().clone());
                        return Poll::Pending;
                    }
                }
            }
            match Pin::new(&mut st.write).poll_flush(cx) {
                Poll::Pending => {
                    st.reauth_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
                ready => {
                    // Flushing may also have completed the held writer's pending flush.
                    if let Some(w) = st.writer_waker.take() {
                        w.wake();
                    }
                    ready
                }
            }
        })
        .await
    }

    fn expect_reply(&self, id: i32) -> io::Result<oneshot::Receiver<Bytes>> {
        let (tx, rx) = oneshot::channel();
        self.lock()?.reply = Some((id, tx));
        Ok(rx)
    }
}

/// Owning the writer side; dropping it (also on cancellation) hands it back.
struct Gate(Arc<Shared>);

impl Drop for Gate {
    fn drop(&mut self) {
        if let Ok(mut st) = self.0.state.lock() {
            st.phase = Phase::Idle;
            if let Some(w) = st.writer_waker.take() {
                w.wake();
            }
        }
    }
}

/// Wraps the halves of an authenticated stream; returns them and the shared state.
pub(crate) fn wrap(read: BoxRead, write: BoxWrite) -> (MuxRead, MuxWrite, Arc<Shared>) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            write,
            frame_left: 0,
            flush_pending: None,
            phase: Phase::Idle,
            writer_waker: None,
            reader_waker: None,
            reauth_waker: None,
            reply: None,
            failed: None,
        }),
        closed: watch::channel(false).0,
    });
    (
        MuxRead {
            read,
            shared: shared.clone(),
            pass_left: 0,
            divert: None,
            held: Vec::new(),
            out: BytesMut::new(),
        },
        MuxWrite { shared: shared.clone() },
        shared,
    )
}

/// The connection's write half (see the module docs).
pub(crate) struct MuxWrite {
    shared: Arc<Shared>,
}

impl Drop for MuxWrite {
    fn drop(&mut self) {
        self.shared.closed.send_replace(true);
        if let Ok(mut st) = self.shared.state.lock() {
            if let Some(w) = st.reauth_waker.take() {
                w.wake();
            }
        }
    }
}

impl AsyncWrite for MuxWrite {
    /// Expects what `write_all` does: each frame handed over whole, and the same slice
    /// offered again after `Pending`.
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let mut st = self.shared.lock()?;
        let st = &mut *st;
        if let Some(f) = &st.failed {
            return Poll::Ready(Err(io::Error::other(f.clone())));
        }
        if let Some(n) = st.flush_pending {
            return match Pin::new(&mut st.write).poll_flush(cx) {
                Poll::Ready(Ok(())) => {
                    st.flush_pending = None;
                    wake_reauth(st);
                    Poll::Ready(Ok(n))
                }
                Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                Poll::Pending => {
                    st.writer_waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            };
        }
        if st.frame_left == 0 {
            if st.phase != Phase::Idle {
                // Re-authentication owns (or is about to own) the stream: hold this frame.
                st.writer_waker = Some(cx.waker().clone());
                wake_reauth(st);
                return Poll::Pending;
            }
            let Some(size) = buf.first_chunk::<4>().map(|b| i32::from_be_bytes(*b)) else {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a request frame must be written whole",
                )));
            };
            st.frame_left = usize::try_from(size).unwrap_or(0) + 4;
        }
        let n = buf.len().min(st.frame_left);
        match Pin::new(&mut st.write).poll_write(cx, &buf[..n]) {
            Poll::Ready(Ok(w)) => {
                st.frame_left -= w;
                if st.frame_left > 0 || w == 0 {
                    return Poll::Ready(Ok(w));
                }
                // A frame is complete: flush it now. A TLS stream may keep records buffered
                // after `poll_write`, and the writer does not flush between requests.
                match Pin::new(&mut st.write).poll_flush(cx) {
                    Poll::Ready(Ok(())) => {
                        wake_reauth(st);
                        Poll::Ready(Ok(w))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => {
                        st.flush_pending = Some(w);
                        st.writer_waker = Some(cx.waker().clone());
                        Poll::Pending
                    }
                }
            }
            Poll::Pending => {
                st.writer_waker = Some(cx.waker().clone());
                Poll::Pending
            }
            err => err,
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.shared.lock()?;
        Pin::new(&mut st.write).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.shared.closed.send_replace(true);
        let mut st = self.shared.lock()?;
        if let Some(w) = st.reauth_waker.take() {
            w.wake();
        }
        Pin::new(&mut st.write).poll_shutdown(cx)
    }
}

fn wake_reauth(st: &mut State) {
    if st.phase == Phase::Waiting || st.phase == Phase::Active {
        if let Some(w) = st.reauth_waker.take() {
            w.wake();
        }
    }
}

/// The connection's read half (see the module docs).
pub(crate) struct MuxRead {
    read: BoxRead,
    shared: Arc<Shared>,
    /// Bytes of the current passed-through frame still to come (0: at a boundary).
    pass_left: usize,
    /// A diverted frame being collected: bytes still to come, bytes so far.
    divert: Option<(usize, BytesMut)>,
    /// The start of a frame header (< 8 bytes) seen at the end of the last read.
    held: Vec<u8>,
    /// Bytes for the connection's reader that did not fit its buffer.
    out: BytesMut,
}

impl Drop for MuxRead {
    fn drop(&mut self) {
        self.shared.closed.send_replace(true);
        if let Ok(mut st) = self.shared.state.lock() {
            st.reply = None;
            if let Some(w) = st.reauth_waker.take() {
                w.wake();
            }
        }
    }
}

impl MuxRead {
    fn deliver(&self, frame: Bytes) -> io::Result<()> {
        let id = frame::response_correlation_id(&frame).unwrap_or(0);
        let mut st = self.shared.lock()?;
        match st.reply.take() {
            Some((want, tx)) if want == id => {
                let _ = tx.send(frame);
                Ok(())
            }
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a response with correlation id {id} arrived that no request waits for"),
            )),
        }
    }

    /// Removes diverted frames from `data[start..]` in place; returns the new length.
    fn scan(&mut self, data: &mut [u8], start: usize) -> io::Result<usize> {
        let end = data.len();
        let (mut i, mut w) = (start, start);
        while i < end {
            if let Some((left, acc)) = &mut self.divert {
                let take = (*left).min(end - i);
                acc.extend_from_slice(&data[i..i + take]);
                *left -= take;
                i += take;
                if *left == 0 {
                    if let Some((_, acc)) = self.divert.take() {
                        self.deliver(acc.freeze())?;
                    }
                }
                continue;
            }
            if self.pass_left > 0 {
                let take = self.pass_left.min(end - i);
                if w != i {
                    data.copy_within(i..i + take, w);
                }
                w += take;
                i += take;
                self.pass_left -= take;
                continue;
            }
            // A frame boundary: size and correlation id decide whose frame it is.
            if end - i < 8 {
                self.held = data[i..end].to_vec();
                break;
            }
            let size = i32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
            let id = i32::from_be_bytes([data[i + 4], data[i + 5], data[i + 6], data[i + 7]]);
            match usize::try_from(size) {
                Ok(size) if id < 0 => {
                    if size > MAX_DIVERTED {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("a {size}-byte response to re-authentication"),
                        ));
                    }
                    self.divert = Some((size, BytesMut::with_capacity(size)));
                    i += 4;
                }
                Ok(size) => self.pass_left = size + 4,
                // A negative size: pass everything on, the connection's reader reports it.
                Err(_) => self.pass_left = usize::MAX,
            }
        }
        Ok(w)
    }
}

impl MuxRead {
    /// Reads into `buf` (room for at least a header plus one byte), dropping diverted frames.
    fn poll_fill(&mut self, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        loop {
            {
                let mut st = self.shared.lock()?;
                if let Some(f) = &st.failed {
                    return Poll::Ready(Err(io::Error::other(f.clone())));
                }
                st.reader_waker = Some(cx.waker().clone());
            }
            let start = buf.filled().len();
            let held = std::mem::take(&mut self.held);
            buf.put_slice(&held);
            let before = buf.filled().len();
            match Pin::new(&mut self.read).poll_read(cx, buf) {
                Poll::Pending => {
                    buf.set_filled(start);
                    self.held = held;
                    return Poll::Pending;
                }
                Poll::Ready(Err(e)) => {
                    buf.set_filled(start);
                    self.held = held;
                    return Poll::Ready(Err(e));
                }
                Poll::Ready(Ok(())) => {}
            }
            if buf.filled().len() == before {
                // The stream ended: whatever was held goes to the reader, which reports a
                // frame cut short.
                return Poll::Ready(Ok(()));
            }
            let filled = buf.filled().len();
            let kept = self.scan(&mut buf.filled_mut()[..filled], start)?;
            buf.set_filled(kept);
            if kept > start {
                return Poll::Ready(Ok(()));
            }
            // Everything read was ours (or a partial header): read again.
        }
    }
}

impl AsyncRead for MuxRead {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.out.is_empty() && buf.remaining() >= 4096 {
            // The connection's reader offers big buffers: filter in place, no copy.
            return this.poll_fill(cx, buf);
        }
        if this.out.is_empty() {
            let mut tmp = [0u8; 4096];
            let mut small = ReadBuf::new(&mut tmp);
            match this.poll_fill(cx, &mut small) {
                Poll::Ready(Ok(())) => this.out.extend_from_slice(small.filled()),
                other => return other,
            }
        }
        let n = this.out.len().min(buf.remaining());
        buf.put_slice(&this.out.split_to(n));
        Poll::Ready(Ok(()))
    }
}

/// The in-band channel re-authentication talks over.
struct MuxChannel {
    shared: Arc<Shared>,
    client_id: String,
    next_id: i32,
    timeout: Duration,
    addr: String,
}

impl SaslChannel for MuxChannel {
    async fn call<R>(&mut self, request: &R, version: i16) -> Result<R::Response>
    where
        R: ApiRequest + Sync,
        R::Response: Send,
    {
        // Negative ids mark our responses for `MuxRead`.
        let id = i32::MIN + (self.next_id & 0xffff);
        self.next_id = self.next_id.wrapping_add(1);
        let mut buf = BytesMut::new();
        frame::encode_request(&mut buf, version, id, Some(&self.client_id), request)?;
        let io_err = |e: io::Error| {
            Error::new(Kind::Io {
                addr: self.addr.clone(),
                source: e,
            })
        };
        let rx = self.shared.expect_reply(id).map_err(io_err)?;
        self.shared.write_frame(&buf).await.map_err(io_err)?;
        let frame = tokio::time::timeout(self.timeout, rx)
            .await
            .map_err(|_| {
                Error::timeout(
                    format!("waiting for a re-authentication response from {}", self.addr),
                    self.timeout,
                )
            })?
            .map_err(|_| {
                Error::new(Kind::Closed {
                    addr: self.addr.clone(),
                    reason: Some("closed during re-authentication".into()),
                })
            })?;
        Ok(frame::decode_response::<R>(frame, version, id)?)
    }
}

/// What the re-authentication task needs.
pub(crate) struct Reauth {
    pub(crate) shared: Arc<Shared>,
    pub(crate) settings: SaslSettings,
    pub(crate) addr: String,
    pub(crate) host: String,
    pub(crate) client_id: String,
    pub(crate) versions: (i16, i16),
    pub(crate) timeout: Duration,
    /// The connection's counters: re-authentications count in its node metrics.
    pub(crate) counters: Arc<Counters>,
}

/// When to re-authenticate: at 85–95 % of the session lifetime, like Java.
fn next_delay(lifetime: Duration) -> Duration {
    lifetime.mul_f64(0.85 + 0.1 * crate::backoff::random_fraction())
}

impl Reauth {
    /// Runs until the connection closes: sleeps, re-authenticates, repeats while the broker
    /// grants a lifetime. Holds no [`Connection`](crate::lowlevel::Connection) handle, so it never keeps
    /// a connection open.
    pub(crate) fn spawn(self, lifetime: Duration) {
        let span = tracing::Span::current();
        tokio::spawn(self.run(lifetime).instrument(span));
    }

    /// `successful-reauthentication` or `failed-reauthentication` of the node.
    fn count(&self, ok: bool) {
        if let Some(m) = self.counters.node() {
            if ok {
                m.successful_reauthentication.add(1);
            } else {
                m.failed_reauthentication.add(1);
            }
        }
    }

    async fn run(self, mut lifetime: Duration) {
        let mut closed = self.shared.closed.subscribe();
        let mut channel = MuxChannel {
            shared: self.shared.clone(),
            client_id: self.client_id.clone(),
            next_id: 0,
            timeout: self.timeout,
            addr: self.addr.clone(),
        };
        loop {
            let delay = next_delay(lifetime);
            debug!(
                ?lifetime,
                ?delay,
                "SASL session lifetime granted; re-authenticating before it ends"
            );
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = closed.wait_for(|c| *c) => return,
            }
            let result = async {
                // Token fetch, Kerberos credentials and the first message happen before the
                // connection's writer is held; only the exchange itself holds it.
                let prepared = sasl::prepare(&self.settings, &self.host).await?;
                let _gate = self.shared.acquire().await.map_err(|e| {
                    Error::new(Kind::Io {
                        addr: self.addr.clone(),
                        source: e,
                    })
                })?;
                sasl::exchange(&mut channel, &self.settings, Ok(prepared), &self.addr, self.versions).await
            };
            let result = tokio::select! {
                r = result => r,
                _ = closed.wait_for(|c| *c) => return,
            };
            match result {
                Ok(Some(next)) => {
                    self.count(true);
                    debug!(mechanism = self.settings.mechanism().name(), ?next, "re-authenticated");
                    lifetime = next;
                }
                Ok(None) => {
                    self.count(true);
                    debug!(
                        mechanism = self.settings.mechanism().name(),
                        "re-authenticated; no session lifetime any more"
                    );
                    return;
                }
                Err(e) => {
                    // A refusal counts even when the broker has already closed the
                    // connection (it does right after refusing); other errors of a closed
                    // connection are its close, not a failed re-authentication.
                    let refused = e.kind() == crate::ErrorKind::Authentication;
                    if refused {
                        self.count(false);
                    }
                    if *closed.borrow() {
                        return;
                    }
                    if !refused {
                        self.count(false);
                    }
                    warn!(error = %e, "re-authentication failed; closing the connection");
                    self.shared.fail(format!("re-authentication failed: {e}"));
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn frame(id: i32, body: &[u8]) -> Vec<u8> {
        let mut f = ((body.len() + 4) as i32).to_be_bytes().to_vec();
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(body);
        f
    }

    /// Responses with negative ids are diverted, whatever the read sizes; others pass.
    #[tokio::test]
    async fn read_side_diverts_our_frames() {
        for chunk in [1usize, 3, 7, 8, 13, 1000] {
            let (client, mut server) = tokio::io::duplex(64);
            let (r, w) = tokio::io::split(client);
            let (mut read, _write, shared) = wrap(Box::new(r), Box::new(w));
            let mut stream = frame(1, b"hello");
            stream.extend(frame(-5, b"sasl"));
            stream.extend(frame(2, b""));
            stream.extend(frame(3, &[7u8; 100]));
            let rx = shared.expect_reply(-5).unwrap();
            let writer = tokio::spawn(async move {
                for c in stream.chunks(chunk) {
                    server.write_all(c).await.unwrap();
                    server.flush().await.unwrap();
                    tokio::task::yield_now().await;
                }
                server
            });
            let mut want = frame(1, b"hello");
            want.extend(frame(2, b""));
            want.extend(frame(3, &[7u8; 100]));
            let mut got = vec![0u8; want.len()];
            read.read_exact(&mut got).await.unwrap();
            assert_eq!(got, want, "chunk {chunk}");
            let mine = rx.await.unwrap();
            assert_eq!(&mine[..], &frame(-5, b"sasl")[4..]);
            drop(writer.await.unwrap());
        }
    }

    /// The writer is held at a frame boundary while re-authentication owns the stream, and
    /// frames never interleave.
    #[tokio::test]
    async fn write_side_gates_at_frame_boundaries() {
        let (client, mut server) = tokio::io::duplex(16);
        let (r, w) = tokio::io::split(client);
        let (_read, mut write, shared) = wrap(Box::new(r), Box::new(w));
        let normal1 = frame(1, &[1u8; 40]);
        let normal2 = frame(2, &[2u8; 10]);
        let ours = frame(-1, &[9u8; 30]);
        let (n1, n2) = (normal1.clone(), normal2.clone());
        let writer = tokio::spawn(async move {
            write.write_all(&n1).await.unwrap();
            write.write_all(&n2).await.unwrap();
            write
        });
        // Let the first frame start (the duplex buffer is small, so it cannot finish).
        tokio::task::yield_now().await;
        let s2 = shared.clone();
        let o = ours.clone();
        let reauth = tokio::spawn(async move {
            let gate = s2.acquire().await.unwrap();
            s2.write_frame(&o).await.unwrap();
            drop(gate);
        });
        let mut got = vec![0u8; normal1.len() + normal2.len() + ours.len()];
        server.read_exact(&mut got).await.unwrap();
        reauth.await.unwrap();
        let _w = writer.await.unwrap();
        // Whole frames only, in one of the two orders allowed.
        let mut a = normal1.clone();
        a.extend(&ours);
        a.extend(&normal2);
        let mut b = ours.clone();
        b.extend(&normal1);
        b.extend(&normal2);
        assert!(got == a || got == b, "frames interleaved");
    }

    #[tokio::test]
    async fn failure_fails_both_halves() {
        let (client, _server) = tokio::io::duplex(64);
        let (r, w) = tokio::io::split(client);
        let (mut read, mut write, shared) = wrap(Box::new(r), Box::new(w));
        let reader = tokio::spawn(async move {
            let mut b = [0u8; 16];
            read.read_exact(&mut b).await
        });
        tokio::task::yield_now().await;
        shared.fail("re-authentication failed: test".into());
        let e = reader.await.unwrap().unwrap_err();
        assert!(e.to_string().contains("re-authentication failed"), "{e}");
        let e = write.write_all(&frame(1, b"x")).await.unwrap_err();
        assert!(e.to_string().contains("re-authentication failed"), "{e}");
    }
}
