//! Faults and admin APIs of strom-fake that the real broker cannot be told to show on cue:
//! a throttled connection (KIP-219, and the held response before it), a coordinator moved
//! under a group and a transaction, and the filters of ListTransactions. In virtual time
//! (an in-memory cluster under a paused clock), so the waits are exact.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::{ListTransactionsRequest, ProducerId};
use kafka_protocol::protocol::StrBytes;
use strom_client::lowlevel::{Connection, ConnectionConfig};
use strom_client::{
    ClientConfig, Consumer, ConsumerConfig, OffsetAndMetadata, Producer, ProducerConfig, ProducerRecord,
    TopicPartition, TransactionalProducer,
};
use strom_fake::{ApiKey, FakeCluster, FakeClusterBuilder, Fault};
use tokio::time::Instant;

fn client(cluster: &FakeCluster) -> ClientConfig {
    ClientConfig::new(cluster.bootstrap_servers()).with_transport(Arc::new(cluster.transport().unwrap()))
}

async fn start(builder: FakeClusterBuilder) -> FakeCluster {
    builder.in_memory().topic("t", 3, 1).start().await.unwrap()
}

/// When each Produce arrived, in order.
fn produce_times(cluster: &FakeCluster) -> Vec<std::time::Instant> {
    cluster
        .requests()
        .iter()
        .filter(|r| r.api == ApiKey::Produce)
        .map(|r| r.at)
        .collect()
}

/// Sends one record to t-0 and waits for it; returns when it was acknowledged.
async fn send_one(p: &Producer, value: &'static str) -> Instant {
    let d = p
        .send(ProducerRecord::new("t", Bytes::from_static(value.as_bytes())).partition(0))
        .await
        .unwrap();
    d.await.unwrap();
    Instant::now()
}

/// KIP-219 (Produce v6+): the throttled response comes at once with throttle_time_ms, and
/// the broker reads nothing more from that connection until the time is over: the next
/// Produce, sent at once, arrives two seconds later.
#[tokio::test(start_paused = true)]
async fn a_throttled_connection_answers_then_is_muted() {
    let cluster = start(FakeCluster::builder()).await;
    let p = Producer::new(ProducerConfig::from_client(client(&cluster)))
        .await
        .unwrap();
    send_one(&p, "warm-up").await;
    cluster.inject(Fault::throttle(ApiKey::Produce, Duration::from_secs(2)));
    let sent = Instant::now();
    let first = send_one(&p, "throttled").await;
    assert!(
        first - sent < Duration::from_millis(500),
        "answered at once: {:?}",
        first - sent
    );
    let second = send_one(&p, "after").await;
    assert!(
        second - first >= Duration::from_secs(2),
        "muted for 2 s: {:?}",
        second - first
    );
    let times = produce_times(&cluster);
    assert!(times[2] - times[1] >= Duration::from_secs(2), "{times:?}");
    let m = p.metrics();
    assert_eq!(
        m.get("producer-metrics", "produce-throttle-time-max", &[]).unwrap(),
        2000.0
    );
    p.close().await.unwrap();
}

/// The client throttles itself too (KIP-219): it writes nothing on the throttled connection
/// until the time is over, and a request waiting for that is not timed out by
/// `request.timeout.ms` meanwhile. Without that, the request below (1 s timeout, 3 s
/// throttle) timed out, closed the connection and was sent again on a new one.
#[tokio::test(start_paused = true)]
async fn the_client_waits_out_a_throttle_without_timing_out() {
    let cluster = start(FakeCluster::builder()).await;
    let mut pc = ProducerConfig::from_client(client(&cluster));
    pc.set("request.timeout.ms", "1000").unwrap();
    pc.set("delivery.timeout.ms", "30000").unwrap();
    pc.set("linger.ms", "0").unwrap();
    let p = Producer::new(pc).await.unwrap();
    send_one(&p, "warm-up").await;
    cluster.inject(Fault::throttle(ApiKey::Produce, Duration::from_secs(3)));
    let first = send_one(&p, "throttled").await;
    let second = send_one(&p, "after").await;
    assert!(second - first >= Duration::from_secs(3), "{:?}", second - first);
    let batches: Vec<(i32, i32)> = cluster
        .requests()
        .iter()
        .filter(|r| r.api == ApiKey::Produce)
        .flat_map(|r| r.batches.iter().map(|b| (b.partition, b.base_sequence)))
        .collect();
    assert_eq!(batches, [(0, 0), (0, 1), (0, 2)], "each batch sent once");
    assert_eq!(cluster.end_offset("t", 0), Some(3));
    p.close().await.unwrap();
}

/// Before KIP-219 (Produce v3-v5) the broker holds the throttled response instead.
#[tokio::test(start_paused = true)]
async fn before_kip219_the_throttled_response_is_held() {
    let cluster = start(FakeCluster::builder().max_version(ApiKey::Produce, 5)).await;
    let p = Producer::new(ProducerConfig::from_client(client(&cluster)))
        .await
        .unwrap();
    send_one(&p, "warm-up").await;
    cluster.inject(Fault::throttle(ApiKey::Produce, Duration::from_secs(2)));
    let sent = Instant::now();
    let first = send_one(&p, "throttled").await;
    assert!(
        first - sent >= Duration::from_secs(2),
        "held for 2 s: {:?}",
        first - sent
    );
    let second = send_one(&p, "after").await;
    assert!(
        second - first < Duration::from_millis(500),
        "not muted: {:?}",
        second - first
    );
    assert!(cluster
        .requests()
        .iter()
        .all(|r| r.api != ApiKey::Produce || r.version <= 5));
    p.close().await.unwrap();
}

/// A group's coordinator moves: the old one answers NOT_COORDINATOR, the member finds the
/// new one and goes on in its generation; its commits land there.
#[tokio::test(start_paused = true)]
async fn a_group_follows_its_moved_coordinator() {
    let mut cluster = start(FakeCluster::builder().brokers(3)).await;
    let p = Producer::new(ProducerConfig::from_client(client(&cluster)))
        .await
        .unwrap();
    for i in 0..6 {
        let value = Bytes::from(format!("v{i}"));
        p.send(ProducerRecord::new("t", value).partition(i % 3))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    let mut cc = ConsumerConfig::from_client(client(&cluster));
    cc.set("group.id", "g").unwrap();
    cc.set("group.protocol", "classic").unwrap();
    cc.set("auto.offset.reset", "earliest").unwrap();
    cc.set("enable.auto.commit", "false").unwrap();
    let mut c = Consumer::new(cc).await.unwrap();
    c.subscribe(&["t"]).unwrap();
    let mut read = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while read < 6 {
        assert!(Instant::now() < deadline);
        read += c.poll(Duration::from_millis(100)).await.unwrap().len();
    }
    c.commit_sync().await.unwrap();
    let generation = c.group_metadata().unwrap().generation_id;
    let old = coordinator_of(&cluster, ApiKey::OffsetCommit);
    let new = cluster.broker_ids().into_iter().find(|b| *b != old).unwrap();
    assert!(cluster.move_coordinator("g", new));
    cluster.clear_requests();
    // Heartbeats (every 3 s) find the new coordinator; the generation stays.
    for _ in 0..100 {
        c.poll(Duration::from_millis(100)).await.unwrap();
    }
    assert_eq!(c.group_metadata().unwrap().generation_id, generation);
    let offsets = BTreeMap::from([(TopicPartition::new("t", 0), OffsetAndMetadata::new(2))]);
    c.commit_offsets_sync(&offsets).await.unwrap();
    assert_eq!(coordinator_of(&cluster, ApiKey::OffsetCommit), new);
    assert!(cluster.requests().iter().any(|r| r.api == ApiKey::FindCoordinator));
    let heartbeats: Vec<i32> = cluster
        .requests()
        .iter()
        .filter(|r| r.api == ApiKey::Heartbeat)
        .map(|r| r.node)
        .collect();
    assert_eq!(heartbeats.last(), Some(&new), "{heartbeats:?}");
    // Stopping the moved-to broker sends the group back to a live one.
    cluster.stop_broker(new);
    c.commit_offsets_sync(&offsets).await.unwrap();
    assert_ne!(coordinator_of(&cluster, ApiKey::OffsetCommit), new);
    c.close().await.unwrap();
    p.close().await.unwrap();
}

/// The broker that received the last request of `api`.
fn coordinator_of(cluster: &FakeCluster, api: ApiKey) -> i32 {
    cluster.requests().iter().rev().find(|r| r.api == api).unwrap().node
}

/// A transaction's coordinator moves between its records and its commit: EndTxn goes to the
/// new one, which ends the transaction with the state the old one had.
#[tokio::test(start_paused = true)]
async fn a_transaction_commits_at_its_moved_coordinator() {
    let cluster = start(FakeCluster::builder().brokers(3).transaction_version(2)).await;
    let mut pc = ProducerConfig::from_client(client(&cluster));
    pc.set("transactional.id", "tx").unwrap();
    let p = TransactionalProducer::new(pc).await.unwrap();
    p.init_transactions().await.unwrap();
    let old = coordinator_of(&cluster, ApiKey::InitProducerId);
    p.begin_transaction().await.unwrap();
    let _d = p
        .send(ProducerRecord::new("t", Bytes::from_static(b"x")).partition(1))
        .await
        .unwrap();
    p.flush().await.unwrap();
    let new = cluster.broker_ids().into_iter().find(|b| *b != old).unwrap();
    assert!(cluster.move_coordinator("tx", new));
    p.commit_transaction().await.unwrap();
    let ends: Vec<i32> = cluster
        .requests()
        .iter()
        .filter(|r| r.api == ApiKey::EndTxn)
        .map(|r| r.node)
        .collect();
    assert_eq!(ends.last(), Some(&new), "{ends:?}");
    // Data and marker: the committed record is readable.
    assert_eq!(cluster.end_offset("t", 1), Some(2));
    assert!(!cluster.move_coordinator("tx", 9), "no broker 9");
    p.close().await.unwrap();
}

/// ListTransactions' filters: state (an unknown one reported back), producer id and, at v2,
/// a transactional id pattern matched whole; a pattern that does not compile is
/// INVALID_REGULAR_EXPRESSION.
#[tokio::test(start_paused = true)]
async fn list_transactions_filters_by_state_producer_and_pattern() {
    let cluster = start(FakeCluster::builder()).await;
    let mut producers = Vec::new();
    for tid in ["orders-1", "orders-2", "audit-orders"] {
        let mut pc = ProducerConfig::from_client(client(&cluster));
        pc.set("transactional.id", tid).unwrap();
        let p = TransactionalProducer::new(pc).await.unwrap();
        p.init_transactions().await.unwrap();
        producers.push(p);
    }
    producers[0].begin_transaction().await.unwrap();
    let _d = producers[0]
        .send(ProducerRecord::new("t", Bytes::from_static(b"x")).partition(0))
        .await
        .unwrap();
    producers[0].flush().await.unwrap();
    let config = ConnectionConfig {
        transport: Some(Arc::new(cluster.transport().unwrap())),
        ..ConnectionConfig::default()
    };
    let conn = Connection::connect("broker-1.strom-fake:9092", config).await.unwrap();
    let s = |v: &str| StrBytes::from_string(v.to_owned());
    let list = |r: ListTransactionsRequest| {
        let conn = &conn;
        async move {
            let resp = conn.send(&r).await.unwrap();
            let mut ids: Vec<String> = resp
                .transaction_states
                .iter()
                .map(|t| format!("{}={}", t.transactional_id.0, t.transaction_state))
                .collect();
            ids.sort();
            (resp.error_code, ids, resp.unknown_state_filters)
        }
    };
    let pid = conn
        .send(&ListTransactionsRequest::default())
        .await
        .unwrap()
        .transaction_states
        .iter()
        .find(|t| t.transactional_id.0.as_str() == "orders-2")
        .unwrap()
        .producer_id;
    let (_, by_pid, _) = list(ListTransactionsRequest::default().with_producer_id_filters(vec![pid])).await;
    assert_eq!(by_pid, ["orders-2=Empty"]);
    let (_, none, _) = list(ListTransactionsRequest::default().with_producer_id_filters(vec![ProducerId(-7)])).await;
    assert!(none.is_empty());
    let (code, all, _) = list(ListTransactionsRequest::default()).await;
    assert_eq!(code, 0);
    assert_eq!(all, ["audit-orders=Empty", "orders-1=Ongoing", "orders-2=Empty"]);
    let (_, ongoing, unknown) =
        list(ListTransactionsRequest::default().with_state_filters(vec![s("Ongoing"), s("Nope")])).await;
    assert_eq!(ongoing, ["orders-1=Ongoing"]);
    assert_eq!(unknown, [s("Nope")]);
    let (_, pattern, _) =
        list(ListTransactionsRequest::default().with_transactional_id_pattern(Some(s("orders-.*")))).await;
    assert_eq!(pattern, ["orders-1=Ongoing", "orders-2=Empty"], "whole ids only");
    let (code, _, _) = list(ListTransactionsRequest::default().with_transactional_id_pattern(Some(s("(")))).await;
    assert_eq!(code, strom_fake::ErrorCode::InvalidRegularExpression.code());
    for p in producers {
        p.close().await.unwrap();
    }
}
