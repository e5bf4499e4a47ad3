//! What the fidelity tests of strom-fake share (`fake_fidelity*.rs`): run one scenario
//! against the real broker and against the fake, with the same client code and assertions.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use strom_client::{Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use strom_fake::FakeCluster;
use strom_integration_tests::{broker, unique_topic};

/// Runs `scenario` against the real broker, then against a fresh one-broker fake.
pub(crate) async fn on_both<F, Fut>(scenario: F)
where
    F: Fn(String, &'static str) -> Fut,
    Fut: Future<Output = ()>,
{
    scenario(broker().bootstrap.clone(), "kafka").await;
    // As scripts/kafka configures the broker's KIP-848 groups, and as Kafka 4.x finalizes
    // transaction.version (2: KIP-890).
    let fake = FakeCluster::builder()
        .consumer_group_timing(Duration::from_millis(500), Duration::from_secs(10))
        .transaction_version(2)
        .start()
        .await
        .unwrap();
    scenario(fake.bootstrap_servers(), "fake").await;
}

/// A new topic with `partitions` partitions, its name starting with `prefix`.
pub(crate) async fn topic(bootstrap: &str, prefix: &str, partitions: i32) -> String {
    let t = unique_topic(prefix);
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await.unwrap();
    admin.create_topics(&[NewTopic::new(&t, partitions)]).await.unwrap();
    t
}

/// Produces `values` to one partition, one acknowledged send after another.
pub(crate) async fn produce_to(bootstrap: &str, topic: &str, partition: i32, values: &[&str]) {
    let p = Producer::new(ProducerConfig::new(bootstrap)).await.unwrap();
    for v in values {
        p.send(ProducerRecord::new(topic, Bytes::from(v.to_string())).partition(partition))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    p.close().await.unwrap();
}
