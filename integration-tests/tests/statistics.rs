//! librdkafka's `statistics.interval.ms` against the real broker: the JSON documents reach
//! the callback and the receivers, and say what the producer and the consumer did
//! (docs/statistics.md lists the fields).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use strom_client::{
    Admin, Client, ClientConfig, Consumer, ConsumerConfig, ErrorKind, NewTopic, Producer, ProducerConfig,
    ProducerRecord,
};
use strom_integration_tests::{broker, unique_topic};

const N: usize = 200;

/// Waits for a document that satisfies `done`, reading them from `next`.
async fn wait_for<F, Fut>(mut next: F, what: &str, done: impl Fn(&Value) -> bool) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<Value>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut last = Value::Null;
    while tokio::time::Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), next()).await {
            Ok(Some(doc)) if done(&doc) => return doc,
            Ok(Some(doc)) => last = doc,
            Ok(None) => panic!("the statistics stream ended while waiting for {what}"),
            Err(_) => panic!("no statistics document within 5 s while waiting for {what}"),
        }
    }
    panic!("no document with {what}; the last:\n{last:#}");
}

#[tokio::test]
async fn producer_and_consumer_statistics_say_what_happened() {
    let topic = unique_topic("stats");
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin.create_topics(&[NewTopic::new(&topic, 2)]).await.unwrap();

    // The producer's documents through the callback, as rdkafka's ClientContext::stats.
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let sink = seen.clone();
    let client = ClientConfig::new(&broker().bootstrap)
        .with_statistics_callback(move |json| sink.lock().unwrap().push(json.to_owned()));
    let mut pc = ProducerConfig::from_client(client);
    pc.set("client.id", "stats-producer").unwrap();
    pc.set("statistics.interval.ms", "100").unwrap();
    let producer = Producer::new(pc).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..N {
        pending.push(
            producer
                .send(ProducerRecord::new(&topic, format!("value {i}")))
                .await
                .unwrap(),
        );
    }
    for d in pending {
        d.await.unwrap();
    }
    let doc = wait_for(
        || {
            let seen = seen.clone();
            async move {
                loop {
                    if let Some(json) = seen.lock().unwrap().pop() {
                        return Some(serde_json::from_str::<Value>(&json).unwrap());
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        },
        "txmsgs = N",
        |d| d["txmsgs"] == N as u64,
    )
    .await;
    assert_eq!(doc["client_id"], "stats-producer");
    assert_eq!(doc["type"], "producer");
    assert!(doc["txmsg_bytes"].as_u64().unwrap() >= (N * 9) as u64, "{doc:#}");
    assert!(
        doc["tx"].as_u64().unwrap() >= 1 && doc["rx"].as_u64().unwrap() >= 1,
        "{doc:#}"
    );
    let brokers = doc["brokers"].as_object().unwrap();
    let leader = brokers
        .values()
        .find(|b| b["state"] == "UP")
        .expect("a connected broker");
    assert!(leader["tx"].as_u64().unwrap() >= 1, "{leader:#}");
    assert!(leader["rtt"]["avg"].as_i64().unwrap() > 0, "{leader:#}");
    assert_eq!(doc["topics"][&topic]["txmsgs"], N as u64);
    assert_eq!(doc["topics"][&topic]["partitions"].as_object().unwrap().len(), 2);
    assert!(doc["metrics"].as_array().unwrap().len() > 20);
    producer.close().await.unwrap();

    // The consumer's through a receiver, in a group.
    let mut cc = ConsumerConfig::new(&broker().bootstrap);
    cc.set("client.id", "stats-consumer").unwrap();
    cc.set("group.id", &unique_topic("stats-group")).unwrap();
    cc.set("auto.offset.reset", "earliest").unwrap();
    cc.set("statistics.interval.ms", "100").unwrap();
    let mut consumer = Consumer::new(cc).await.unwrap();
    let mut stats = consumer.client().statistics().unwrap();
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while got < N {
        assert!(tokio::time::Instant::now() < deadline, "consumed {got} of {N}");
        got += consumer.poll(Duration::from_millis(200)).await.unwrap().len();
    }
    // Poll on while waiting, so the lag is seen caught up.
    let doc = loop {
        let _ = consumer.poll(Duration::from_millis(100)).await.unwrap();
        let doc: Value = serde_json::from_str(&stats.recv().await.unwrap()).unwrap();
        let lags_zero = doc["topics"][&topic]["partitions"]
            .as_object()
            .is_some_and(|ps| ps.len() == 2 && ps.values().all(|p| p["consumer_lag"] == 0));
        if doc["rxmsgs"] == N as u64 && lags_zero {
            break doc;
        }
        assert!(tokio::time::Instant::now() < deadline, "never caught up:\n{doc:#}");
    };
    assert_eq!(doc["type"], "consumer");
    assert_eq!(doc["topics"][&topic]["rxmsgs"], N as u64);
    assert!(doc["cgrp"]["rebalance_cnt"].as_u64().unwrap() >= 1, "{doc:#}");
    assert_eq!(doc["cgrp"]["assignment_size"], 2);
    consumer.close().await.unwrap();
}

#[tokio::test]
async fn statistics_settings_are_checked() {
    // A callback with the interval off would never be called: refused at start.
    let config = ClientConfig::new(&broker().bootstrap).with_statistics_callback(|_| {});
    let e = Client::connect(config).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
    assert!(e.to_string().contains("statistics.interval.ms"), "{e}");
    // No interval: no receivers.
    let client = Client::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let e = client.statistics().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{e}");
    for bad in ["-1", "86400001", "soon"] {
        let e = ClientConfig::new(&broker().bootstrap)
            .set("statistics.interval.ms", bad)
            .unwrap_err();
        assert!(e.to_string().contains("statistics.interval.ms"), "{bad}: {e}");
    }
    // Dropping the last handle ends the stream.
    let mut config = ClientConfig::new(&broker().bootstrap);
    config.set("statistics.interval.ms", "50").unwrap();
    let client = Client::connect(config).await.unwrap();
    let mut stats = client.statistics().unwrap();
    assert!(stats.recv().await.is_some());
    drop(client);
    let end = tokio::time::timeout(Duration::from_secs(5), async { while stats.recv().await.is_some() {} }).await;
    assert!(end.is_ok(), "the statistics stream did not end with its client");
}
