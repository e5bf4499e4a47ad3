//! The [`Transport`] an application gives a client to open broker connections itself (an
//! in-memory fake cluster in tests). A leaf module: the settings ([`crate::ClientConfig`],
//! [`ConnectionConfig`](crate::lowlevel::ConnectionConfig)) hold one, and
//! `crate::transport` uses it in place of TCP.

use std::future::Future;
use std::pin::Pin;

use tokio::io::{AsyncRead, AsyncWrite};

/// A byte stream a [`Transport`] opens: any bidirectional stream, e.g. one end of
/// [`tokio::io::duplex`].
pub trait TransportStream: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> TransportStream for T {}

/// What [`Transport::connect`] returns.
pub type ConnectFuture = Pin<Box<dyn Future<Output = std::io::Result<Box<dyn TransportStream>>> + Send>>;

/// Opens the byte stream to a broker in place of TCP: set on
/// [`ClientConfig::transport`](crate::ClientConfig::transport) (or
/// [`ConnectionConfig::transport`](crate::lowlevel::ConnectionConfig::transport)), every connection of the client, bootstrap included,
/// is made by [`connect`](Transport::connect) with the broker's `host:port` as the
/// metadata names it. No name is resolved and no socket option applies.
///
/// Its use is tests: an in-memory cluster (strom-fake's `FakeCluster::transport`) over
/// [`tokio::io::duplex`] streams, which with tokio's paused clock
/// (`#[tokio::test(start_paused = true)]`) runs a client in virtual time: timeouts, linger,
/// backoff and session expiry take no wall-clock time. The stream carries the protocol in
/// the clear: a client with a custom transport refuses a `security.protocol` other than
/// PLAINTEXT.
///
/// `connect` is bounded by `socket.connection.setup.timeout.ms`, as a TCP connect is; an
/// error it returns (e.g. `ConnectionRefused` for a broker that is down) is handled as a
/// refused TCP connection: reconnect backoff, then the next broker.
pub trait Transport: Send + Sync + std::fmt::Debug + 'static {
    /// Opens a stream to the broker at `addr` (`host:port`).
    fn connect(&self, addr: &str) -> ConnectFuture;
}

/// The error for a custom transport asked to carry `protocol` (its stream is the protocol
/// in the clear: TLS and SASL are not layered on it).
pub(crate) fn security_refused(protocol: impl std::fmt::Debug) -> crate::error::Error {
    crate::error::Error::config(format!(
        "security.protocol: a custom transport carries PLAINTEXT only, not {protocol:?}"
    ))
}
