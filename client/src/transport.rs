//! How bytes reach a broker: the stream under a [`Connection`](crate::Connection).
//!
//! [`open`] makes the byte stream and hands back its two halves: TCP, and with
//! `security.protocol` other than PLAINTEXT the whole security layer (TLS handshake, SASL
//! authentication, and the in-band re-authentication wrapper) from
//! [`crate::security`]. SASL runs there, on the raw stream, rather than in [`authenticate`]:
//! re-authentication (KIP-368) needs the stream itself (no other request may interleave with
//! it), which only the transport owns.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::connection::{Connection, ConnectionConfig};
use crate::error::{Error, Kind, Result};

/// The read half of a broker stream.
pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a broker stream.
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Connects to `addr` within `socket.connection.setup.timeout.ms`, then secures and
/// authenticates the stream as `config.security` says.
pub(crate) async fn open(addr: &str, config: &ConnectionConfig) -> Result<(BoxRead, BoxWrite)> {
    // Resolved apart from connecting, so a name that does not resolve is told apart from a
    // host that does not answer (the bootstrap fails at once when no server resolves).
    let resolve = async {
        let found: Vec<std::net::SocketAddr> = tokio::net::lookup_host(addr).await?.collect();
        if found.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the name resolved to no address",
            ));
        }
        Ok(found)
    };
    let resolved = tokio::time::timeout(config.connect_timeout, resolve)
        .await
        .map_err(|_| Error::timeout(format!("resolving {addr}"), config.connect_timeout))?
        .map_err(|source| {
            Error::new(Kind::Resolve {
                addr: addr.to_owned(),
                source,
            })
        })?;
    let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(&resolved[..]))
        .await
        .map_err(|_| Error::timeout(format!("connecting to {addr}"), config.connect_timeout))?
        .map_err(|source| {
            Error::new(Kind::Connect {
                addr: addr.to_owned(),
                source,
            })
        })?;
    stream.set_nodelay(true).map_err(|source| {
        Error::new(Kind::Io {
            addr: addr.to_owned(),
            source,
        })
    })?;
    if let Some(security) = config.security.as_deref() {
        return crate::security::open(addr, stream, security, config).await;
    }
    // TCP halves need no lock between them.
    let (read, write) = stream.into_split();
    Ok((Box::new(read), Box::new(write)))
}

/// Runs after ApiVersions on the framed connection. Authentication already happened in
/// [`open`] (see the module docs), so there is nothing left to do.
pub(crate) async fn authenticate(_conn: &Connection) -> Result<()> {
    Ok(())
}
