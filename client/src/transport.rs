//! How bytes reach a broker: the stream under a [`Connection`](crate::Connection).
//!
//! [`open`] makes the byte stream (TCP today; TLS wraps it here) and hands back its two
//! halves; [`authenticate`] runs after ApiVersions over the framed connection (SASL goes
//! here: SaslHandshake + SaslAuthenticate are ordinary Kafka requests).

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::connection::{Connection, ConnectionConfig};
use crate::error::{Error, Kind, Result};

/// The read half of a broker stream.
pub(crate) type BoxRead = Box<dyn AsyncRead + Send + Unpin>;
/// The write half of a broker stream.
pub(crate) type BoxWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// Connects to `addr` within `socket.connection.setup.timeout.ms`.
pub(crate) async fn open(addr: &str, config: &ConnectionConfig) -> Result<(BoxRead, BoxWrite)> {
    let stream = tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr))
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
    // TCP halves need no lock between them (a TLS stream will use `tokio::io::split`).
    let (read, write) = stream.into_split();
    Ok((Box::new(read), Box::new(write)))
}

/// Authenticates a freshly negotiated connection. PLAINTEXT: nothing to do.
pub(crate) async fn authenticate(_conn: &Connection) -> Result<()> {
    Ok(())
}
