//! `Client::metrics` under load. Its own binary: the tracing-span test in observability.rs
//! installs a thread-local subscriber, and a busy client on other threads of the same
//! process registered the span callsites first often enough to hide that test's spans.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use strom_client::{Admin, ClientConfig, NewTopic};
use strom_integration_tests::{broker, unique_topic};

/// `Client::metrics` reads every broker's counters while the client is busy with that
/// broker: a snapshot never leaves a broker out and a counter never goes back. (It once
/// skipped any broker whose connection slot another task held for a moment, so a scrape
/// under load lost rows and counters seemed to reset.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_metrics_see_every_busy_broker_and_never_go_back() {
    use strom_client::{Consumer, ConsumerConfig, Producer, ProducerConfig, ProducerRecord, TopicPartition};
    let topic = unique_topic("metrics-busy");
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin.create_topics(&[NewTopic::new(&topic, 3)]).await.unwrap();
    let mut pc = ProducerConfig::new(&broker().bootstrap);
    pc.set("linger.ms", "0").unwrap();
    let producer = Producer::new(pc).await.unwrap();
    let mut consumer = Consumer::new(ConsumerConfig::new(&broker().bootstrap)).await.unwrap();
    consumer.assign((0..3).map(|p| TopicPartition::new(&topic, p))).unwrap();
    // Warm up: both clients have a connection to the broker before the checks start.
    producer
        .send(ProducerRecord::new(&topic, "first"))
        .await
        .unwrap()
        .await
        .unwrap();
    consumer.poll(std::time::Duration::from_millis(200)).await.unwrap();

    let sender = {
        let producer = producer.clone();
        let topic = topic.clone();
        tokio::spawn(async move {
            let mut pending = Vec::new();
            for i in 0..20_000 {
                pending.push(
                    producer
                        .send(ProducerRecord::new(&topic, format!("v{i}")))
                        .await
                        .unwrap(),
                );
                if pending.len() == 200 {
                    for d in pending.drain(..) {
                        d.await.unwrap();
                    }
                }
            }
            for d in pending {
                d.await.unwrap();
            }
        })
    };
    let clients = [producer.client().clone(), consumer.client().clone()];
    let mut last = [0u64; 2];
    let mut snapshots = 0;
    while !sender.is_finished() {
        // The consumer fetches while its metrics are read.
        let _ = consumer.poll(std::time::Duration::from_millis(1)).await.unwrap();
        for (i, c) in clients.iter().enumerate() {
            let m = c.metrics();
            assert!(!m.is_empty(), "snapshot {snapshots}: client {i} lists no broker");
            let requests: u64 = m.iter().map(|b| b.totals.requests).sum();
            assert!(
                requests >= last[i],
                "client {i}: requests went back from {} to {requests}",
                last[i]
            );
            last[i] = requests;
        }
        snapshots += 1;
        tokio::task::yield_now().await;
    }
    sender.await.unwrap();
    assert!(snapshots > 100, "only {snapshots} snapshots were taken");
    producer.close().await.unwrap();
}
