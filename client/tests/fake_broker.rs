//! A scripted fake broker on loopback drives the connection through its failure modes:
//! each one must give a typed error, never a panic or a hang (every test is time-bounded).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use strom_client::lowlevel::protocol::messages::{ApiKey, MetadataRequest};
use strom_client::lowlevel::{Connection, ConnectionConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Req {
    api_key: i16,
    version: i16,
    correlation_id: i32,
}

async fn read_request(s: &mut TcpStream) -> Option<Req> {
    let size = s.read_i32().await.ok()?;
    let mut buf = vec![0u8; size as usize];
    s.read_exact(&mut buf).await.ok()?;
    Some(Req {
        api_key: i16::from_be_bytes([buf[0], buf[1]]),
        version: i16::from_be_bytes([buf[2], buf[3]]),
        correlation_id: i32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
    })
}

async fn write_frame(s: &mut TcpStream, correlation_id: i32, flexible_header: bool, body: &[u8]) {
    let mut f = BytesMut::new();
    f.put_i32((4 + usize::from(flexible_header) + body.len()) as i32);
    f.put_i32(correlation_id);
    if flexible_header {
        f.put_u8(0);
    }
    f.extend_from_slice(body);
    s.write_all(&f).await.unwrap();
}

/// An ApiVersions v3 body offering ApiVersions 0..3 and Metadata 0..12.
fn api_versions_v3() -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(0);
    b.put_u8(3); // compact array of 2
    for (k, min, max) in [(18i16, 0i16, 3i16), (3, 0, 12)] {
        b.put_i16(k);
        b.put_i16(min);
        b.put_i16(max);
        b.put_u8(0);
    }
    b.put_i32(0);
    b.put_u8(0);
    b.to_vec()
}

/// Accepts one connection, answers ApiVersions, then hands the socket to `script`.
async fn fake<F, Fut>(script: F) -> String
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let r = read_request(&mut s).await.unwrap();
        assert_eq!(r.api_key, ApiKey::ApiVersions as i16);
        write_frame(&mut s, r.correlation_id, false, &api_versions_v3()).await;
        script(s).await;
    });
    addr
}

fn config() -> ConnectionConfig {
    ConnectionConfig {
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), f).await.expect("hung")
}

fn md() -> MetadataRequest {
    MetadataRequest::default().with_topics(None)
}

#[tokio::test]
async fn negotiates_versions_with_the_fake() {
    let addr = fake(|mut s| async move {
        let r = read_request(&mut s).await.unwrap();
        assert_eq!((r.api_key, r.version), (3, 12));
        // Metadata v12: throttle 0, brokers [], cluster id null, controller 1, topics [], no tags.
        let body = [0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0];
        write_frame(&mut s, r.correlation_id, true, &body).await;
        let _ = read_request(&mut s).await;
    })
    .await;
    let c = bounded(Connection::connect(&addr, config())).await.unwrap();
    assert_eq!(c.versions().version(ApiKey::Metadata).unwrap(), 12);
    let err = c.versions().version(ApiKey::Produce).unwrap_err();
    assert!(err.to_string().contains("does not support Produce"), "{err}");
    let resp = bounded(c.send(&md())).await.unwrap();
    assert!(resp.brokers.is_empty());
    assert_eq!(c.metrics().responses, 2);
}

#[tokio::test]
async fn correlation_id_mismatch_is_a_typed_error_and_closes() {
    let addr = fake(|mut s| async move {
        let r = read_request(&mut s).await.unwrap();
        write_frame(&mut s, r.correlation_id + 7, true, &[0; 8]).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
    .await;
    let c = bounded(Connection::connect(&addr, config())).await.unwrap();
    let err = bounded(c.send(&md())).await.unwrap_err();
    assert!(err.to_string().contains("correlation id mismatch"), "{err}");
    assert!(err.is_fatal());
    assert_eq!(err.kind(), strom_client::ErrorKind::Protocol, "{err}");
    let next = bounded(c.send(&md())).await.unwrap_err();
    assert!(next.is_retriable() && next.is_connection_error(), "{next}");
    assert!(c.is_closed());
}

#[tokio::test]
async fn eof_inside_a_frame_fails_outstanding_requests() {
    let addr = fake(|mut s| async move {
        let r = read_request(&mut s).await.unwrap();
        let mut f = BytesMut::new();
        f.put_i32(100);
        f.put_i32(r.correlation_id);
        f.extend_from_slice(&[0; 6]);
        s.write_all(&f).await.unwrap();
        drop(s);
    })
    .await;
    let c = bounded(Connection::connect(&addr, config())).await.unwrap();
    let err = bounded(c.send(&md())).await.unwrap_err();
    assert!(err.is_retriable(), "{err}");
    assert!(err.to_string().contains("inside a frame"), "{err}");
}

#[tokio::test]
async fn oversized_frame_is_refused_before_buffering() {
    let addr = fake(|mut s| async move {
        let _ = read_request(&mut s).await.unwrap();
        s.write_all(&0x7fff_fff0i32.to_be_bytes()).await.unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
    })
    .await;
    let cfg = ConnectionConfig {
        max_response_size: 1 << 20,
        ..config()
    };
    let c = bounded(Connection::connect(&addr, cfg)).await.unwrap();
    let err = bounded(c.send(&md())).await.unwrap_err();
    assert!(err.to_string().contains("exceeds the maximum"), "{err}");
}

#[tokio::test]
async fn eof_before_the_response() {
    let addr = fake(|mut s| async move {
        let _ = read_request(&mut s).await.unwrap();
        drop(s);
    })
    .await;
    let c = bounded(Connection::connect(&addr, config())).await.unwrap();
    let err = bounded(c.send(&md())).await.unwrap_err();
    assert!(err.is_retriable() && err.is_connection_error(), "{err}");
    assert!(err.to_string().contains("closed"), "{err}");
}

#[tokio::test]
async fn malformed_body_is_an_error_and_the_stream_stays_aligned() {
    let addr = fake(|mut s| async move {
        let r = read_request(&mut s).await.unwrap();
        write_frame(&mut s, r.correlation_id, true, &[0xff, 0xff]).await;
        let r = read_request(&mut s).await.unwrap();
        write_frame(&mut s, r.correlation_id, true, &[0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 0]).await;
        let _ = read_request(&mut s).await;
    })
    .await;
    let c = bounded(Connection::connect(&addr, config())).await.unwrap();
    let err = bounded(c.send(&md())).await.unwrap_err();
    assert!(
        err.to_string().contains("malformed Metadata message (version 12)"),
        "{err}"
    );
    assert_eq!(err.kind(), strom_client::ErrorKind::Protocol, "{err}");
    assert!(bounded(c.send(&md())).await.is_ok());
    assert_eq!(c.metrics().errors, 1);
}

#[tokio::test]
async fn a_request_timeout_closes_the_connection() {
    let addr = fake(|mut s| async move {
        let _ = read_request(&mut s).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    })
    .await;
    let cfg = ConnectionConfig {
        request_timeout: Duration::from_millis(300),
        ..config()
    };
    let c = bounded(Connection::connect(&addr, cfg)).await.unwrap();
    let err = bounded(c.send(&md())).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.to_string().contains("waiting for Metadata"), "{err}");
    assert!(c.is_closed());
}

#[tokio::test]
async fn idle_connections_close() {
    let addr = fake(|mut s| async move {
        let _ = read_request(&mut s).await;
    })
    .await;
    let cfg = ConnectionConfig {
        idle_timeout: Duration::from_millis(200),
        ..config()
    };
    let c = bounded(Connection::connect(&addr, cfg)).await.unwrap();
    assert!(!c.is_closed());
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(c.is_closed());
    let err = bounded(c.send(&md())).await.unwrap_err();
    assert!(err.to_string().contains("idle"), "{err}");
}

#[tokio::test]
async fn api_versions_falls_back_when_v3_is_unsupported() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let r = read_request(&mut s).await.unwrap();
        assert_eq!(r.version, 3);
        // UNSUPPORTED_VERSION with a v0 body: error 35, [ApiVersions 0..2].
        let mut b = BytesMut::new();
        b.put_i16(35);
        b.put_i32(1);
        b.put_i16(18);
        b.put_i16(0);
        b.put_i16(2);
        write_frame(&mut s, r.correlation_id, false, &b).await;
        let r = read_request(&mut s).await.unwrap();
        assert_eq!(r.version, 2);
        // v2 body: error 0, [Metadata 0..8], throttle 0.
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i32(1);
        b.put_i16(3);
        b.put_i16(0);
        b.put_i16(8);
        b.put_i32(0);
        write_frame(&mut s, r.correlation_id, false, &b).await;
        let _ = read_request(&mut s).await;
    });
    let c = bounded(Connection::connect(&addr, config())).await.unwrap();
    assert_eq!(c.versions().version(ApiKey::Metadata).unwrap(), 8);
}

#[tokio::test]
async fn connect_to_a_closed_port_names_the_address() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    drop(listener);
    let err = bounded(Connection::connect(&addr, config())).await.unwrap_err();
    assert!(err.is_retriable() && err.is_connection_error());
    assert!(err.to_string().contains(&addr), "{err}");
}
