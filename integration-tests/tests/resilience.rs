//! The client under trouble: a dead bootstrap address, cancelled requests, a broker crash.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use strom_client::lowlevel::protocol::message_traits::StrBytes;
use strom_client::lowlevel::protocol::messages::metadata_request::MetadataRequestTopic;
use strom_client::lowlevel::protocol::messages::{MetadataRequest, TopicName};
use strom_client::lowlevel::{Connection, ConnectionConfig};
use strom_client::{Admin, ClientConfig, NewTopic};
use strom_integration_tests::{broker, unique_topic, PrivateBroker};

#[tokio::test]
async fn bootstrap_skips_a_dead_address() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let cfg = ClientConfig::new(format!("{dead},{}", broker().bootstrap));
    let admin = tokio::time::timeout(Duration::from_secs(20), Admin::connect(cfg))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(admin.client().metadata().brokers.len(), 1);
    // Only dead addresses: a timeout naming them, within default.api.timeout.ms.
    let mut cfg = ClientConfig::new(&dead);
    cfg.default_api_timeout = Duration::from_millis(800);
    let started = std::time::Instant::now();
    let err = Admin::connect(cfg).await.unwrap_err();
    assert!(err.is_timeout(), "{err}");
    assert!(err.to_string().contains(&dead), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Many concurrent Metadata requests for different topics, a random subset dropped at random
/// points; every completed response must be the one for its own request, and the connection
/// must answer correctly afterwards.
#[tokio::test]
async fn dropped_requests_never_desynchronise_the_connection() {
    let conn = Connection::connect(&broker().bootstrap, ConnectionConfig::default())
        .await
        .unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..20 {
        let mut tasks = Vec::new();
        for i in 0..10 {
            let conn = conn.clone();
            let name = format!("no-such-topic-{round}-{i}");
            let cancel_after = Duration::from_micros(next() % 3000);
            let cancel = next() % 2 == 0;
            tasks.push(tokio::spawn(async move {
                let req = MetadataRequest::default()
                    .with_allow_auto_topic_creation(false)
                    .with_topics(Some(vec![
                        MetadataRequestTopic::default().with_name(Some(TopicName(StrBytes::from_string(name.clone()))))
                    ]));
                let fut = conn.send(&req);
                let resp = if cancel {
                    match tokio::time::timeout(cancel_after, fut).await {
                        Ok(r) => r.unwrap(),
                        Err(_) => return,
                    }
                } else {
                    fut.await.unwrap()
                };
                let got = resp.topics[0].name.as_ref().unwrap().0.as_str().to_owned();
                assert_eq!(got, name, "a response was delivered to the wrong request");
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
    }
    assert!(!conn.is_closed());
    // Responses come in order: once this one is back, every earlier (possibly abandoned)
    // response has been read and discarded.
    let last = conn
        .send(&MetadataRequest::default().with_topics(Some(vec![])))
        .await
        .unwrap();
    assert!(last.topics.is_empty() && last.brokers.len() == 1);
    let m = conn.metrics();
    assert_eq!(m.requests, m.responses, "{m:?}");
    assert_eq!(m.inflight, 0);
}

#[tokio::test]
async fn client_reconnects_after_a_broker_crash() {
    let b = PrivateBroker::start(19392);
    let mut cfg = ClientConfig::new(&b.bootstrap);
    cfg.default_api_timeout = Duration::from_secs(60);
    let admin = Admin::connect(cfg).await.unwrap();
    let topic = unique_topic("crash");
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    assert!(admin.list_topics(false).await.unwrap().contains(&topic));

    b.kill();
    // While it is down: a retriable failure within the API timeout, no hang.
    let mut short = ClientConfig::new(&b.bootstrap);
    short.default_api_timeout = Duration::from_millis(500);
    assert!(Admin::connect(short).await.unwrap_err().is_retriable());

    b.up();
    // The same client recovers: the next calls succeed on a new connection.
    let topic2 = unique_topic("after-crash");
    tokio::time::timeout(
        Duration::from_secs(60),
        admin.create_topics(&[NewTopic::new(&topic2, 1)]),
    )
    .await
    .expect("create after restart hung")
    .unwrap();
    assert!(admin.list_topics(false).await.unwrap().contains(&topic2));
    let m = admin.client().metrics();
    assert!(m.iter().any(|m| m.connects >= 2), "{m:?}");
}
