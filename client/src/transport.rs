//! How bytes reach a broker: the stream under a [`Connection`](crate::lowlevel::Connection).
//!
//! [`open`] makes the byte stream and hands back its two halves: TCP, and with
//! `security.protocol` other than PLAINTEXT the whole security layer (TLS handshake, SASL
//! authentication, and the in-band re-authentication wrapper) from
//! [`crate::security`]. SASL runs there, on the raw stream, rather than in [`authenticate`]:
//! re-authentication (KIP-368) needs the stream itself (no other request may interleave with
//! it), which only the transport owns.

use std::net::SocketAddr;

use tokio::net::{TcpSocket, TcpStream};
use tracing::debug;

use crate::custom_transport::Transport;
use crate::error::{Error, Kind, Result};
use crate::stream::{BoxRead, BoxWrite, ConnectionConfig, Counters};

/// Opens `addr` with a custom transport: within the connect timeout, PLAINTEXT only.
async fn open_custom(addr: &str, transport: &dyn Transport, config: &ConnectionConfig) -> Result<(BoxRead, BoxWrite)> {
    if let Some(security) = config.security.as_deref() {
        return Err(crate::custom_transport::security_refused(security.protocol()));
    }
    let stream = tokio::time::timeout(config.connect_timeout, transport.connect(addr))
        .await
        .map_err(|_| Error::timeout(format!("connecting to {addr}"), config.connect_timeout))?
        .map_err(|source| {
            Error::new(Kind::Io {
                addr: addr.to_owned(),
                source,
            })
        })?;
    let (read, write) = tokio::io::split(stream);
    Ok((Box::new(read), Box::new(write)))
}

/// Connects to `addr` (every address its name resolves to, in turn, each within
/// `socket.connection.setup.timeout.ms`: see [`connect_any`]), then secures and
/// authenticates the stream as `config.security` says. Re-authentications count in
/// `counters`' node metrics once attached.
pub(crate) async fn open(
    addr: &str,
    config: &ConnectionConfig,
    counters: &std::sync::Arc<Counters>,
) -> Result<(BoxRead, BoxWrite)> {
    if let Some(transport) = config.transport.as_deref() {
        return open_custom(addr, transport, config).await;
    }
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
    let stream = connect_any(addr, &resolved, config).await?;
    stream.set_nodelay(true).map_err(|source| {
        Error::new(Kind::Io {
            addr: addr.to_owned(),
            source,
        })
    })?;
    if let Some(security) = config.security.as_deref() {
        return crate::security::open(addr, stream, security, config, counters).await;
    }
    // TCP halves need no lock between them.
    let (read, write) = stream.into_split();
    Ok((Box::new(read), Box::new(write)))
}

/// Connects to the first of `resolved` (the addresses `addr` resolved to, in the resolver's
/// order) that accepts: Java's `client.dns.lookup=use_all_dns_ips`. Each address gets its
/// own `socket.connection.setup.timeout.ms`, so an address that drops the connection
/// attempt (a host that is down) does not keep the others from being tried. The socket's
/// `SO_SNDBUF`/`SO_RCVBUF` (`send.buffer.bytes`/`receive.buffer.bytes`) are set before
/// connecting, as Java does. The error is the last address's.
pub(crate) async fn connect_any(addr: &str, resolved: &[SocketAddr], config: &ConnectionConfig) -> Result<TcpStream> {
    let mut last = None;
    for &ip in resolved {
        match tokio::time::timeout(config.connect_timeout, connect_one(ip, config)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(source)) => {
                debug!(%addr, %ip, error = %source, "connection attempt failed");
                last = Some(Error::new(Kind::Connect {
                    addr: addr.to_owned(),
                    source,
                }));
            }
            Err(_) => {
                debug!(%addr, %ip, "connection attempt timed out");
                last = Some(Error::timeout(
                    format!("connecting to {addr} ({ip})"),
                    config.connect_timeout,
                ));
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        Error::new(Kind::Resolve {
            addr: addr.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "the name resolved to no address"),
        })
    }))
}

/// One TCP connection attempt, with the configured socket buffer sizes.
async fn connect_one(ip: SocketAddr, config: &ConnectionConfig) -> std::io::Result<TcpStream> {
    let socket = if ip.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(size) = config.send_buffer_size {
        socket.set_send_buffer_size(size)?;
    }
    if let Some(size) = config.receive_buffer_size {
        socket.set_recv_buffer_size(size)?;
    }
    socket.connect(ip).await
}

/// `client.dns.lookup=resolve_canonical_bootstrap_servers_only` (Java's
/// `ClientUtils.parseAndValidateAddresses`): every address each `host:port` resolves to
/// becomes `canonical-name:port`, the canonical name found by reverse DNS (the address
/// itself when there is none, as Java's `getCanonicalHostName`). A server whose name does
/// not resolve is kept as it is (connecting to it then fails with the resolution error, and
/// the bootstrap fails at once when none resolves, as with `use_all_dns_ips`). Duplicates
/// are dropped; the order is kept.
pub(crate) async fn canonical_bootstrap_servers(servers: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for server in servers {
        let Some((_, port)) = server.rsplit_once(':') else {
            out.push(server.clone());
            continue;
        };
        let addrs: Vec<SocketAddr> = match tokio::net::lookup_host(server.as_str()).await {
            Ok(a) => a.collect(),
            Err(e) => {
                debug!(%server, error = %e, "bootstrap server does not resolve; kept as given");
                Vec::new()
            }
        };
        if addrs.is_empty() {
            out.push(server.clone());
            continue;
        }
        for a in addrs {
            let ip = a.ip();
            let name = tokio::task::spawn_blocking(move || reverse_lookup(ip))
                .await
                .ok()
                .flatten()
                .unwrap_or_else(|| ip.to_string());
            let canonical = if name.contains(':') {
                format!("[{name}]:{port}")
            } else {
                format!("{name}:{port}")
            };
            debug!(%server, %ip, %canonical, "canonical bootstrap server");
            if !out.contains(&canonical) {
                out.push(canonical);
            }
        }
    }
    out
}

/// The name reverse DNS gives `ip` (`getnameinfo` with `NI_NAMEREQD`), if any. Blocking.
#[cfg(unix)]
fn reverse_lookup(ip: std::net::IpAddr) -> Option<String> {
    let sa = socket2::SockAddr::from(SocketAddr::new(ip, 0));
    let mut host = [0 as libc::c_char; libc::NI_MAXHOST as usize];
    // SAFETY: `sa` is a valid socket address of `sa.len()` bytes (sockaddr_in or
    // sockaddr_in6 inside a sockaddr_storage); `host` is a writable buffer whose length is
    // passed; no service buffer is asked for (null, 0).
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr().cast::<libc::sockaddr>(),
            sa.len(),
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: on success getnameinfo wrote a NUL-terminated string into `host`.
    let name = unsafe { std::ffi::CStr::from_ptr(host.as_ptr()) };
    name.to_str().ok().filter(|n| !n.is_empty()).map(str::to_owned)
}

/// No reverse DNS here: the address stands for itself.
#[cfg(not(unix))]
fn reverse_lookup(_ip: std::net::IpAddr) -> Option<String> {
    None
}

#[cfg(test)]
mod tests {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    use std::time::Duration;
    use tokio::time::Instant;

    use socket2::SockRef;
    use tokio::net::TcpListener;

    use super::*;
    use crate::config::ClientConfig;

    async fn listener() -> (TcpListener, u16) {
        let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = l.local_addr().unwrap().port();
        (l, port)
    }

    /// (SO_SNDBUF, SO_RCVBUF) of a socket as the kernel reports them.
    fn buffers(s: &TcpStream) -> (usize, usize) {
        let r = SockRef::from(s);
        (r.send_buffer_size().unwrap(), r.recv_buffer_size().unwrap())
    }

    /// The size asked for, as the kernel reports it back: Linux doubles it (for its
    /// bookkeeping), other kernels keep it.
    fn reported(asked: u32) -> [usize; 2] {
        [asked as usize, 2 * asked as usize]
    }

    #[tokio::test]
    async fn socket_buffer_sizes_are_set_before_connecting() {
        let (_l, port) = listener().await;
        let at = [SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)];
        let os_default = buffers(&connect_any("x", &at, &ConnectionConfig::default()).await.unwrap());
        // Sizes unlike the OS defaults (and unlike each other), so a setting that is lost
        // shows.
        let (send, recv) = (48 * 1024 + 512, 40 * 1024 + 256);
        for v in [send, recv] {
            assert!(!reported(v).contains(&os_default.0) && !reported(v).contains(&os_default.1));
        }
        let cfg = ConnectionConfig {
            send_buffer_size: Some(send),
            receive_buffer_size: Some(recv),
            ..Default::default()
        };
        let (s, r) = buffers(&connect_any("x", &at, &cfg).await.unwrap());
        assert!(reported(send).contains(&s), "SO_SNDBUF {s}, asked {send}");
        assert!(reported(recv).contains(&r), "SO_RCVBUF {r}, asked {recv}");

        // From the Java properties, through the connection settings: -1 is the OS default.
        let mut c = ClientConfig::default();
        c.set("send.buffer.bytes", &send.to_string()).unwrap();
        c.set("receive.buffer.bytes", "-1").unwrap();
        let cc = c.connection_config().unwrap();
        assert_eq!((cc.send_buffer_size, cc.receive_buffer_size), (Some(send), None));
        let (s, r) = buffers(&connect_any("x", &at, &cc).await.unwrap());
        assert!(reported(send).contains(&s), "SO_SNDBUF {s}, asked {send}");
        assert_eq!(r, os_default.1, "receive.buffer.bytes=-1 keeps the OS default");
    }

    /// `localhost` resolving to `::1` and `127.0.0.1` while the broker listens on
    /// `127.0.0.1` only: the first address refuses, the second is used.
    #[tokio::test]
    async fn use_all_dns_ips_tries_every_address() {
        let (l, port) = listener().await;
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port);
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let s = connect_any("localhost:x", &[v6, v4], &ConnectionConfig::default())
            .await
            .unwrap();
        assert_eq!(s.peer_addr().unwrap(), v4);
        drop(l);
        // Nobody listens any more: the error is the connection's, naming the server.
        let e = connect_any("localhost:x", &[v6, v4], &ConnectionConfig::default())
            .await
            .unwrap_err();
        assert!(e.to_string().starts_with("cannot connect to localhost:x"), "{e}");
        assert!(e.is_retriable(), "{e}");
    }

    /// An address that never answers (its SYN dropped) costs one
    /// `socket.connection.setup.timeout.ms`, then the next address is tried.
    #[tokio::test]
    async fn an_address_that_never_answers_does_not_hide_the_others() {
        // A listener whose accept queue is full drops further SYNs: connecting hangs.
        let full = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        full.bind(&SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0).into())
            .unwrap();
        full.listen(0).unwrap();
        let hang = full.local_addr().unwrap().as_socket().unwrap();
        let mut fillers = Vec::new();
        let probe = ConnectionConfig {
            connect_timeout: Duration::from_millis(300),
            ..Default::default()
        };
        // Fill the queue until an attempt hangs (the backlog the kernel allows varies).
        loop {
            match connect_any("full", &[hang], &probe).await {
                Ok(s) => fillers.push(s),
                Err(e) if e.is_timeout() => break,
                Err(e) => panic!("filling the accept queue: {e}"),
            }
            assert!(fillers.len() < 64, "the accept queue never filled");
        }
        let (_l, port) = listener().await;
        let good = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        let started = Instant::now();
        let s = connect_any("two", &[hang, good], &probe).await.unwrap();
        assert_eq!(s.peer_addr().unwrap(), good);
        assert!(
            started.elapsed() >= Duration::from_millis(250),
            "{:?}",
            started.elapsed()
        );
    }

    #[tokio::test]
    async fn canonical_bootstrap_names() {
        // 127.0.0.1 has a name (/etc/hosts), which resolves back to it.
        let out = canonical_bootstrap_servers(&["127.0.0.1:9092".to_owned()]).await;
        assert_eq!(out.len(), 1, "{out:?}");
        let (name, port) = out[0].rsplit_once(':').unwrap();
        assert_eq!(port, "9092");
        assert!(name.parse::<IpAddr>().is_err(), "not replaced by a name: {out:?}");
        let back: Vec<SocketAddr> = tokio::net::lookup_host(out[0].as_str()).await.unwrap().collect();
        assert!(
            back.iter().any(|a| a.ip() == Ipv4Addr::LOCALHOST),
            "{out:?} -> {back:?}"
        );
        // A name that does not resolve is kept (its connection then reports the DNS error);
        // duplicates go.
        let out = canonical_bootstrap_servers(&[
            "no-such-host.invalid:1".to_owned(),
            "127.0.0.1:9092".to_owned(),
            "127.0.0.1:9092".to_owned(),
        ])
        .await;
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0], "no-such-host.invalid:1");
    }
}
