//! The producer against the real broker: exact contents, order per key, no duplicates,
//! every acks setting and codec, Java-compatible partitioning, and clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::partition_for_key;
use strom_client::{Admin, Client, ClientConfig, ConsumerRecord, NewTopic, Producer, ProducerConfig, ProducerRecord};
use strom_client::{Compression, ErrorCode};
use strom_integration_tests::{broker, unique_topic};

async fn create(topic: &str, partitions: i32) -> Admin {
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin.create_topics(&[NewTopic::new(topic, partitions)]).await.unwrap();
    admin
}

/// Everything in the topic now, per partition in offset order.
pub async fn read_all(client: &Client, topic: &str, read_committed: bool) -> BTreeMap<i32, Vec<ConsumerRecord>> {
    let mut out: BTreeMap<i32, Vec<ConsumerRecord>> = BTreeMap::new();
    for r in strom_integration_tests::read_to_end(client, topic, read_committed).await {
        out.entry(r.partition).or_default().push(r);
    }
    out
}

fn config(f: impl FnOnce(&mut ProducerConfig)) -> ProducerConfig {
    let mut c = ProducerConfig::new(&broker().bootstrap);
    f(&mut c);
    c
}

#[tokio::test]
async fn idempotent_keyed_records_in_order_without_loss_or_duplicates() {
    const N: usize = 1_000_000;
    let topic = unique_topic("producer-idem");
    let admin = create(&topic, 6).await;
    let producer = Producer::new(config(|c| {
        c.compression = Compression::Lz4;
        c.batch_size = 64 * 1024;
    }))
    .await
    .unwrap();
    assert!(producer.config().enable_idempotence);
    let mut futures = Vec::with_capacity(N);
    for i in 0..N {
        let rec = ProducerRecord::new(&topic, Bytes::from(i.to_string())).key(Bytes::from(format!("k{}", i % 1000)));
        futures.push(producer.send(rec).await.unwrap());
    }
    producer.flush().await.unwrap();
    let mut acked = 0;
    for f in futures.into_iter().rev().take(1000) {
        let md = f.wait().await.unwrap();
        assert!(md.offset >= 0);
        acked += 1;
    }
    assert_eq!(acked, 1000);

    let all = read_all(admin.client(), &topic, false).await;
    let total: usize = all.values().map(Vec::len).sum();
    assert_eq!(total, N, "records lost or duplicated");
    let mut seen = HashSet::new();
    for (p, records) in &all {
        let mut last_per_key: BTreeMap<Bytes, usize> = BTreeMap::new();
        for r in records {
            let key = r.key.clone().unwrap();
            // Java's default partitioner: murmur2 of the key.
            assert_eq!(
                partition_for_key(&key, 6) as i32,
                *p,
                "key {key:?} in the wrong partition"
            );
            let v: usize = std::str::from_utf8(r.value.as_deref().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            assert!(seen.insert(v), "duplicate {v}");
            if let Some(prev) = last_per_key.insert(key.clone(), v) {
                assert!(prev < v, "out of order for {key:?}: {prev} then {v}");
            }
        }
        // Offsets are dense from 0: nothing written twice, nothing skipped.
        for (i, r) in records.iter().enumerate() {
            assert_eq!(r.offset, i as i64);
        }
    }
    producer.close().await.unwrap();
}

#[tokio::test]
async fn every_acks_setting_and_codec_round_trips() {
    let topic = unique_topic("producer-codecs");
    let admin = create(&topic, 3).await;
    let mut expected = Vec::new();
    for (acks, codec) in [
        ("all", Compression::None),
        ("1", Compression::Gzip),
        ("0", Compression::Snappy),
        ("all", Compression::Lz4),
        ("1", Compression::Zstd),
    ] {
        let mut c = ProducerConfig::new(&broker().bootstrap);
        c.set("acks", acks).unwrap();
        c.compression = codec;
        let producer = Producer::new(c).await.unwrap();
        let mut futs = Vec::new();
        for i in 0..500 {
            let value = format!("{acks}-{codec}-{i}");
            expected.push(value.clone());
            let rec = ProducerRecord::new(&topic, Bytes::from(value))
                .header("codec", Bytes::from(codec.to_string()))
                .timestamp(1_700_000_000_000 + i);
            futs.push(producer.send(rec).await.unwrap());
        }
        producer.flush().await.unwrap();
        for f in futs {
            let md = f.wait().await.unwrap();
            if acks == "0" {
                assert_eq!(md.offset, -1);
            } else {
                assert!(md.offset >= 0);
                assert!(md.timestamp >= 1_700_000_000_000);
            }
        }
    }
    let all = read_all(admin.client(), &topic, false).await;
    let mut got: Vec<String> = all
        .values()
        .flatten()
        .map(|r| String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap())
        .collect();
    got.sort();
    expected.sort();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn errors_are_typed_and_nothing_is_dropped_silently() {
    let topic = unique_topic("producer-errors");
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin
        .create_topics(&[NewTopic::new(&topic, 1).config("max.message.bytes", "2000")])
        .await
        .unwrap();
    let producer = Producer::new(config(|c| c.max_request_size = 100_000)).await.unwrap();
    // Too large for max.request.size: refused at send.
    let err = producer
        .send(ProducerRecord::new(&topic, vec![0u8; 200_000]))
        .await
        .unwrap_err();
    assert_eq!(err.kafka_code(), Some(ErrorCode::MessageTooLarge), "{err}");
    // Unknown topic: a clear error naming it.
    let err = producer
        .send(ProducerRecord::new("no-such-topic-here", "x"))
        .await
        .unwrap_err();
    assert_eq!(err.kafka_code(), Some(ErrorCode::UnknownTopicOrPartition));
    assert!(err.to_string().contains("no-such-topic-here"), "{err}");
    // A partition that does not exist.
    let err = producer
        .send(ProducerRecord::new(&topic, "x").partition(5))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("no partition 5"), "{err}");
    // Larger than the topic allows (max.message.bytes), but within max.request.size:
    // the broker refuses it and the delivery future says so.
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin
        .alter_configs(
            &strom_client::ConfigResource::Topic(topic.clone()),
            &[("max.message.bytes", Some("2000"))],
        )
        .await
        .unwrap();
    // The broker answers the alter once its controller has committed it and applies it to
    // the partition's log a moment later: until then a large record still lands.
    let deadline = Instant::now() + Duration::from_secs(10);
    let err = loop {
        let f = producer
            .send(ProducerRecord::new(&topic, vec![7u8; 50_000]))
            .await
            .unwrap();
        match f.wait().await {
            Err(e) => break e,
            Ok(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(m) => panic!("max.message.bytes=2000 not applied within 10 s: {m:?}"),
        }
    };
    assert_eq!(err.kafka_code(), Some(ErrorCode::MessageTooLarge), "{err}");
    // The producer still works after it.
    let ok = producer.send(ProducerRecord::new(&topic, "small")).await.unwrap();
    assert!(ok.wait().await.unwrap().offset >= 0);
}

#[tokio::test]
async fn broker_gone_past_delivery_timeout_fails_every_record() {
    strom_integration_tests::init_test_logging();
    let b = strom_integration_tests::PrivateBroker::start(19592);
    let admin = Admin::connect(ClientConfig::new(&b.bootstrap)).await.unwrap();
    let topic = unique_topic("producer-down");
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let mut c = ProducerConfig::new(&b.bootstrap);
    c.client.request_timeout = Duration::from_secs(2);
    c.delivery_timeout = Duration::from_secs(4);
    c.linger = Duration::from_millis(0);
    let producer = Producer::new(c).await.unwrap();
    producer
        .send(ProducerRecord::new(&topic, "before"))
        .await
        .unwrap()
        .wait()
        .await
        .unwrap();
    b.kill();
    let started = Instant::now();
    let mut futs = Vec::new();
    for i in 0..100 {
        futs.push(
            producer
                .send(ProducerRecord::new(&topic, format!("lost-{i}")))
                .await
                .unwrap(),
        );
    }
    for f in futs {
        let err = f.wait().await.unwrap_err();
        assert!(err.is_timeout() || err.is_retriable(), "{err}");
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}

/// kill -9 of the broker in the middle of a run, then a restart on the same data: the
/// idempotent producer completes with nothing lost, nothing duplicated, order kept per key.
#[tokio::test]
async fn broker_kill_9_mid_run_loses_and_duplicates_nothing() {
    const N: usize = 200_000;
    let b = strom_integration_tests::PrivateBroker::start(20092);
    let admin = Admin::connect(ClientConfig::new(&b.bootstrap)).await.unwrap();
    let topic = unique_topic("producer-crash");
    admin.create_topics(&[NewTopic::new(&topic, 3)]).await.unwrap();
    let mut c = ProducerConfig::new(&b.bootstrap);
    c.client.request_timeout = Duration::from_secs(5);
    c.client.default_api_timeout = Duration::from_secs(120);
    c.delivery_timeout = Duration::from_secs(120);
    c.batch_size = 32 * 1024;
    let producer = Producer::new(c).await.unwrap();

    let sender = {
        let (producer, topic) = (producer.clone(), topic.clone());
        tokio::spawn(async move {
            let mut futs = Vec::with_capacity(N);
            for i in 0..N {
                let rec =
                    ProducerRecord::new(&topic, Bytes::from(i.to_string())).key(Bytes::from(format!("k{}", i % 100)));
                futs.push(producer.send(rec).await.unwrap());
                if i % 1000 == 0 {
                    tokio::task::yield_now().await;
                }
            }
            futs
        })
    };
    // Let a good part be acknowledged, then crash the broker and bring it back.
    tokio::time::sleep(Duration::from_millis(400)).await;
    b.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    b.restart_keeping_data();
    let futs = tokio::time::timeout(Duration::from_secs(150), sender)
        .await
        .expect("sending hung")
        .unwrap();
    producer.flush().await.unwrap();
    let mut failed = 0;
    for f in futs {
        if f.wait().await.is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 0, "records failed across the broker crash");
    // The crash hit mid-delivery: the producer lost its connection and made a new one.
    let m = producer.client().metrics();
    assert!(
        m.iter().any(|m| m.connects >= 2),
        "the broker restart was not noticed: {m:?}"
    );

    let client = Client::connect(ClientConfig::new(&b.bootstrap)).await.unwrap();
    let all = read_all(&client, &topic, false).await;
    let total: usize = all.values().map(Vec::len).sum();
    let mut seen = HashSet::new();
    for records in all.values() {
        let mut last: BTreeMap<Bytes, usize> = BTreeMap::new();
        for r in records {
            let v: usize = std::str::from_utf8(r.value.as_deref().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            assert!(seen.insert(v), "duplicate {v} after the crash");
            if let Some(prev) = last.insert(r.key.clone().unwrap(), v) {
                assert!(prev < v, "reordered after the crash: {prev} then {v}");
            }
        }
    }
    assert_eq!(total, N, "lost {} records", N - total);
}

/// A custom partitioner decides where records without an explicit partition go; `None`
/// falls back to the default (murmur2 for keys).
#[tokio::test]
async fn a_custom_partitioner_places_records() {
    #[derive(Debug)]
    struct ByFirstByte;
    impl strom_client::Partitioner for ByFirstByte {
        fn partition(&self, _topic: &str, _key: Option<&[u8]>, value: Option<&[u8]>, n: u32) -> Option<u32> {
            match value?.first()? {
                b'd' => None,
                b => Some(u32::from(*b) % n),
            }
        }
    }
    let topic = unique_topic("producer-partitioner");
    let admin = create(&topic, 4).await;
    let config = ProducerConfig::builder(&broker().bootstrap)
        .partitioner(std::sync::Arc::new(ByFirstByte))
        .build()
        .unwrap();
    let producer = Producer::new(config).await.unwrap();
    let mut futs = Vec::new();
    for v in ["a1", "b1", "c1", "a2"] {
        futs.push(producer.send(ProducerRecord::new(&topic, v)).await.unwrap());
    }
    futs.push(
        producer
            .send(ProducerRecord::new(&topic, "d-default").key("k"))
            .await
            .unwrap(),
    );
    // An explicit partition wins over the partitioner.
    futs.push(
        producer
            .send(ProducerRecord::new(&topic, "a-explicit").partition(3))
            .await
            .unwrap(),
    );
    producer.flush().await.unwrap();
    let mut got = Vec::new();
    for f in futs {
        got.push(f.wait().await.unwrap().partition);
    }
    let expect_default = partition_for_key(b"k", 4) as i32;
    assert_eq!(got, vec![97 % 4, 98 % 4, 99 % 4, 97 % 4, expect_default, 3]);
    let all = read_all(admin.client(), &topic, false).await;
    assert_eq!(all.values().map(Vec::len).sum::<usize>(), 6);
}

/// Newcomer item of issue #12: `DeliveryFuture` is a `Future`, so deliveries can be awaited
/// together (`join_all`); sending many and then awaiting them costs far less than the
/// ~linger.ms + round trip per record of awaiting each in turn.
#[tokio::test(flavor = "multi_thread")]
async fn delivery_futures_are_futures_and_join_all_works() {
    let topic = unique_topic("join-all");
    create(&topic, 1).await;
    let p = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    let started = Instant::now();
    let mut deliveries = Vec::new();
    for i in 0..2_000 {
        deliveries.push(p.send(ProducerRecord::new(&topic, format!("v{i}"))).await.unwrap());
    }
    let offsets: Vec<i64> = futures_util::future::join_all(deliveries)
        .await
        .into_iter()
        .map(|d| d.unwrap().offset)
        .collect();
    let took = started.elapsed();
    assert_eq!(offsets, (0..2_000).collect::<Vec<i64>>());
    // Awaiting each in turn would take ~2,000 × 7 ms = 14 s.
    assert!(took < Duration::from_secs(5), "{took:?}");
    // A clone and `wait()` see the same outcome.
    let d = p.send(ProducerRecord::new(&topic, "last")).await.unwrap();
    let copy = d.clone();
    assert_eq!(d.await.unwrap().offset, 2_000);
    assert_eq!(copy.wait().await.unwrap().offset, 2_000);
    p.close().await.unwrap();
}
