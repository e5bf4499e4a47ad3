//! Where records without a key go, against the real broker, beside Java's producer in the
//! same run (KIP-794's uniform sticky partitioner), and `partitioner.class`.
//!
//! Each scenario sends records with no key at a user's pace, at a moderate rate or at full
//! speed, with the default `batch.size` or 1 MiB, from Strom and from Java's
//! ProducerPerformance into fresh 6-partition topics, then reads where they landed from the
//! end offsets. Both distributions are printed; Strom's must stay within the bounds Java's
//! own runs keep (every partition between a third of the mean and twice it; with 1 MiB
//! batches, which switch only every 1-2 MiB, at least four partitions used and none with
//! half the topic).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use strom_client::{
    Admin, ClientConfig, NewTopic, OffsetSpec, PartitionerClass, Producer, ProducerConfig, ProducerRecord,
};
use strom_integration_tests::{broker, run_java_tool, unique_topic};

const PARTITIONS: i32 = 6;
const RECORD: usize = 200;

async fn admin() -> Admin {
    Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap()
}

async fn counts(admin: &Admin, topic: &str) -> Vec<i64> {
    let mut v = admin.list_offsets(topic, &[], OffsetSpec::Latest).await.unwrap();
    v.sort_by_key(|o| o.partition);
    v.into_iter().map(|o| o.offset).collect()
}

#[derive(Debug, Clone, Copy)]
struct Scenario {
    name: &'static str,
    records: usize,
    /// Records per second; 0 = as fast as the producer takes them.
    rate: usize,
    batch_size: usize,
}

/// Strom's producer sends `s.records` values of `RECORD` bytes without a key, paced in
/// 10 ms steps, then waits for every delivery.
async fn strom_run(admin: &Admin, s: Scenario) -> Vec<i64> {
    let topic = unique_topic(&format!("part-strom-{}", s.name));
    admin.create_topics(&[NewTopic::new(&topic, PARTITIONS)]).await.unwrap();
    let mut cfg = ProducerConfig::new(&broker().bootstrap);
    cfg.batch_size = s.batch_size;
    let producer = Producer::new(cfg).await.unwrap();
    let value = bytes::Bytes::from(vec![b'x'; RECORD]);
    let mut pending = Vec::with_capacity(s.records);
    let started = Instant::now();
    let per_step = if s.rate == 0 { s.records } else { (s.rate / 100).max(1) };
    let mut sent = 0;
    while sent < s.records {
        let n = per_step.min(s.records - sent);
        for _ in 0..n {
            let rec = ProducerRecord::new(&topic, value.clone());
            pending.push(producer.send(rec).await.unwrap());
        }
        sent += n;
        if let Some(ms) = (sent * 1000).checked_div(s.rate) {
            tokio::time::sleep_until((started + Duration::from_millis(ms as u64)).into()).await;
        }
    }
    for f in pending {
        f.await.unwrap();
    }
    counts(admin, &topic).await
}

/// Java's ProducerPerformance (null keys, the same record size, rate and batch.size).
async fn java_run(admin: &Admin, s: Scenario) -> Vec<i64> {
    let topic = unique_topic(&format!("part-java-{}", s.name));
    admin.create_topics(&[NewTopic::new(&topic, PARTITIONS)]).await.unwrap();
    let rate = if s.rate == 0 {
        "-1".to_owned()
    } else {
        s.rate.to_string()
    };
    let out = run_java_tool(
        "org.apache.kafka.tools.ProducerPerformance",
        &[
            "--topic",
            &topic,
            "--num-records",
            &s.records.to_string(),
            "--record-size",
            &RECORD.to_string(),
            "--throughput",
            &rate,
            "--producer-props",
            &format!("bootstrap.servers={}", broker().bootstrap),
            &format!("batch.size={}", s.batch_size),
        ],
    );
    assert!(
        out.status.success(),
        "ProducerPerformance: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    counts(admin, &topic).await
}

fn describe(counts: &[i64]) -> String {
    let total: i64 = counts.iter().sum();
    let mean = total as f64 / counts.len() as f64;
    let (min, max) = (
        *counts.iter().min().unwrap_or(&0) as f64 / mean,
        *counts.iter().max().unwrap_or(&0) as f64 / mean,
    );
    format!("{counts:?} (min {min:.2}x, max {max:.2}x the mean)")
}

async fn scenario(s: Scenario) {
    let admin = admin().await;
    let strom = strom_run(&admin, s).await;
    let java = java_run(&admin, s).await;
    eprintln!(
        "{} ({} x {RECORD} B, rate {}, batch.size {}):\n  strom {}\n  java  {}",
        s.name,
        s.records,
        if s.rate == 0 {
            "full".to_owned()
        } else {
            format!("{}/s", s.rate)
        },
        s.batch_size,
        describe(&strom),
        describe(&java)
    );
    assert_eq!(
        strom.iter().sum::<i64>(),
        s.records as i64,
        "Strom lost or duplicated records"
    );
    assert_eq!(
        java.iter().sum::<i64>(),
        s.records as i64,
        "Java's run did not land every record"
    );
    let mean = s.records as i64 / i64::from(PARTITIONS);
    if s.batch_size <= 16384 {
        for &c in &strom {
            assert!(
                c >= mean / 3 && c <= 2 * mean,
                "{}: a partition outside [mean/3, 2 x mean]: {}",
                s.name,
                describe(&strom)
            );
        }
    } else {
        let used = strom.iter().filter(|&&c| c > 0).count();
        assert!(
            used >= 4,
            "{}: only {used} partitions got data: {}",
            s.name,
            describe(&strom)
        );
        for &c in &strom {
            assert!(
                c * 2 < s.records as i64,
                "{}: one partition has half: {}",
                s.name,
                describe(&strom)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn null_keys_spread_at_a_users_pace() {
    // The defect's first row: 10,000 records/s, default settings. Every batch leaves on
    // linger, none fills; before KIP-794's byte count, all of them went to one partition.
    scenario(Scenario {
        name: "low",
        records: 30_000,
        rate: 10_000,
        batch_size: 16384,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn null_keys_spread_at_a_moderate_rate() {
    scenario(Scenario {
        name: "moderate",
        records: 120_000,
        rate: 40_000,
        batch_size: 16384,
    })
    .await;
    scenario(Scenario {
        name: "moderate-1mib",
        records: 120_000,
        rate: 40_000,
        batch_size: 1 << 20,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn null_keys_spread_at_full_speed() {
    scenario(Scenario {
        name: "full",
        records: 200_000,
        rate: 0,
        batch_size: 16384,
    })
    .await;
    scenario(Scenario {
        name: "full-1mib",
        records: 200_000,
        rate: 0,
        batch_size: 1 << 20,
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_partitioner_is_exact() {
    let admin = admin().await;
    let topic = unique_topic("part-rr");
    admin.create_topics(&[NewTopic::new(&topic, PARTITIONS)]).await.unwrap();
    let mut cfg = ProducerConfig::new(&broker().bootstrap);
    cfg.partitioner_class =
        PartitionerClass::from_java_class("org.apache.kafka.clients.producer.RoundRobinPartitioner").unwrap();
    let producer = Producer::new(cfg).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..6_000u32 {
        // Keys too: round robin places every record, keyed or not, as Java's does.
        let mut rec = ProducerRecord::new(&topic, format!("v{i}"));
        if i % 2 == 0 {
            rec = rec.key("one key");
        }
        pending.push(producer.send(rec).await.unwrap());
    }
    for (i, f) in pending.into_iter().enumerate() {
        let md = f.await.unwrap();
        assert_eq!(md.partition, (i % 6) as i32, "record {i}");
    }
    assert_eq!(counts(&admin, &topic).await, vec![1000; 6]);
}

#[tokio::test(flavor = "multi_thread")]
async fn partitioner_class_is_honoured_or_refused() {
    let mut cfg = ProducerConfig::new(&broker().bootstrap);
    let e = cfg.set("partitioner.class", "com.example.MyPartitioner").unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("partitioner.class") && msg.contains("com.example.MyPartitioner"),
        "{msg}"
    );
    // The removed Java classes map to what they did.
    cfg.set(
        "partitioner.class",
        "org.apache.kafka.clients.producer.UniformStickyPartitioner",
    )
    .unwrap();
    assert_eq!(cfg.partitioner_class, PartitionerClass::UniformSticky);
    cfg.set(
        "partitioner.class",
        "org.apache.kafka.clients.producer.internals.DefaultPartitioner",
    )
    .unwrap();
    assert_eq!(cfg.partitioner_class, PartitionerClass::BuiltIn);
    // Bad values of the other two keys are errors too, not ignored.
    assert!(cfg.set("partitioner.adaptive.partitioning.enable", "maybe").is_err());
    assert!(cfg.set("partitioner.availability.timeout.ms", "-5").is_err());

    // UniformSticky ignores keys: one key's records spread like null keys.
    let admin = admin().await;
    let topic = unique_topic("part-uniform");
    admin.create_topics(&[NewTopic::new(&topic, PARTITIONS)]).await.unwrap();
    let mut cfg = ProducerConfig::new(&broker().bootstrap);
    cfg.set(
        "partitioner.class",
        "org.apache.kafka.clients.producer.UniformStickyPartitioner",
    )
    .unwrap();
    cfg.batch_size = 1024;
    let producer = Producer::new(cfg).await.unwrap();
    let mut pending = Vec::new();
    for _ in 0..3_000 {
        pending.push(
            producer
                .send(ProducerRecord::new(&topic, vec![0u8; 100]).key("k"))
                .await
                .unwrap(),
        );
    }
    for f in pending {
        f.await.unwrap();
    }
    let c = counts(&admin, &topic).await;
    assert!(c.iter().filter(|&&n| n > 0).count() >= 4, "{c:?}");
}
