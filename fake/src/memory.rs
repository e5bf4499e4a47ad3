//! The in-memory network of a cluster built with
//! [`FakeClusterBuilder::in_memory`](crate::FakeClusterBuilder::in_memory): no sockets.
//! Each broker has a name (`broker-N.strom-fake:9092`); [`FakeTransport::connect`] makes a
//! [`tokio::io::duplex`] pair for it and serves one end as a TCP connection is served.

use std::sync::{Arc, Mutex};

use tokio::io::DuplexStream;
use tokio::sync::watch;

use crate::server::{connection, Shared};

/// The host name of every in-memory broker's address is `broker-<id>.<MEMORY_DOMAIN>`.
pub(crate) const MEMORY_DOMAIN: &str = "strom-fake";
/// The port of every in-memory broker's address.
pub(crate) const MEMORY_PORT: u16 = 9092;
/// Bytes each direction of an in-memory connection buffers before a writer waits.
const DUPLEX_BUFFER: usize = 1 << 20;

/// The host name of in-memory broker `id` (its port is [`MEMORY_PORT`]).
pub(crate) fn host(id: i32) -> String {
    format!("broker-{id}.{MEMORY_DOMAIN}")
}

/// Which brokers accept connections, and how each one's connections learn it stopped.
pub(crate) struct Network {
    shared: Arc<Shared>,
    /// (broker id, `Some(stop)` while it is up).
    brokers: Mutex<Vec<(i32, Option<watch::Receiver<bool>>)>>,
}

impl Network {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Network {
            shared,
            brokers: Mutex::new(Vec::new()),
        }
    }

    /// Broker `id` accepts connections until `stop` turns true.
    pub(crate) fn up(&self, id: i32, stop: watch::Receiver<bool>) {
        let mut brokers = self.brokers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        match brokers.iter_mut().find(|(b, _)| *b == id) {
            Some(entry) => entry.1 = Some(stop),
            None => brokers.push((id, Some(stop))),
        }
    }

    /// Broker `id` refuses new connections (its open ones close through their stop).
    pub(crate) fn down(&self, id: i32) {
        let mut brokers = self.brokers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = brokers.iter_mut().find(|(b, _)| *b == id) {
            entry.1 = None;
        }
    }

    fn connect(&self, addr: &str) -> std::io::Result<DuplexStream> {
        let refused = |why: String| std::io::Error::new(std::io::ErrorKind::ConnectionRefused, why);
        let id = parse(addr).ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{addr} is not an in-memory broker address (broker-<id>.{MEMORY_DOMAIN}:{MEMORY_PORT})"),
            )
        })?;
        let stop = {
            let brokers = self.brokers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            match brokers.iter().find(|(b, _)| *b == id) {
                None => return Err(refused(format!("no broker {id} in this fake cluster"))),
                Some((_, None)) => return Err(refused(format!("broker {id} is stopped"))),
                Some((_, Some(stop))) => stop.clone(),
            }
        };
        if *stop.borrow() {
            return Err(refused(format!("broker {id} is stopped")));
        }
        let (client, server) = tokio::io::duplex(DUPLEX_BUFFER);
        tokio::spawn(connection(server, id, self.shared.clone(), stop));
        Ok(client)
    }
}

/// The broker id of an in-memory address, `None` for any other.
fn parse(addr: &str) -> Option<i32> {
    let (host, port) = addr.rsplit_once(':')?;
    if port.parse::<u16>().ok()? != MEMORY_PORT {
        return None;
    }
    let id = host
        .strip_prefix("broker-")?
        .strip_suffix(MEMORY_DOMAIN)?
        .strip_suffix('.')?;
    id.parse().ok()
}

/// Opens in-memory connections to the brokers of a cluster started with
/// [`FakeClusterBuilder::in_memory`](crate::FakeClusterBuilder::in_memory): get it from
/// [`FakeCluster::transport`](crate::FakeCluster::transport). With the `client` feature
/// (on by default) it is a [`strom_client::Transport`]: give it to
/// `ClientConfig::with_transport` and the client reaches the cluster with no socket. Any
/// other client can call [`connect`](Self::connect) and speak the protocol over the stream.
///
/// A stopped broker refuses with `ConnectionRefused`, as a closed port does.
#[derive(Clone)]
pub struct FakeTransport {
    pub(crate) network: Arc<Network>,
}

impl std::fmt::Debug for FakeTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeTransport").finish_non_exhaustive()
    }
}

impl FakeTransport {
    /// A stream to the broker at `addr` (`broker-<id>.strom-fake:9092`, as the cluster's
    /// bootstrap servers and metadata name it). `NotFound` for another address,
    /// `ConnectionRefused` when that broker is stopped or unknown.
    pub async fn connect(&self, addr: &str) -> std::io::Result<DuplexStream> {
        self.network.connect(addr)
    }
}

#[cfg(feature = "client")]
impl strom_client::Transport for FakeTransport {
    fn connect(&self, addr: &str) -> strom_client::ConnectFuture {
        let opened = self
            .network
            .connect(addr)
            .map(|s| Box::new(s) as Box<dyn strom_client::TransportStream>);
        Box::pin(std::future::ready(opened))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_back_to_their_broker() {
        assert_eq!(parse(&format!("{}:{MEMORY_PORT}", host(3))), Some(3));
        assert_eq!(parse("broker-12.strom-fake:9092"), Some(12));
        for other in [
            "127.0.0.1:9092",
            "broker-1.strom-fake:9093",
            "broker-x.strom-fake:9092",
            "broker-1.other:9092",
            "broker-1strom-fake:9092",
            "broker-1.strom-fake",
        ] {
            assert_eq!(parse(other), None, "{other}");
        }
    }
}
