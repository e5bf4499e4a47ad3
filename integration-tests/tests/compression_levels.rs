//! KIP-390 levels against the real broker: what Strom's producer writes at non-default
//! `compression.gzip.level`, `compression.lz4.level` and `compression.zstd.level` is read
//! back by Java's console consumer, and the level changes what the broker stores (a level
//! that never reached the encoder would leave the sizes equal).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use bytes::Bytes;
use strom_client::{
    Admin, ClientConfig, Compression, CompressionLevel, NewTopic, Producer, ProducerConfig, ProducerRecord,
};
use strom_integration_tests::{broker, java_console_consume, unique_topic};

const N: usize = 2000;

fn value(label: &str, i: usize) -> String {
    format!(
        "{label} {{\"id\":{i},\"user\":\"user-{}\",\"event\":\"{}\",\"note\":\"{}\"}}",
        i % 97,
        ["click", "view", "buy"][i % 3],
        "x".repeat(i % 13)
    )
}

/// Sends the N records of `label` to `partition` with these producer properties.
async fn produce(topic: &str, partition: i32, label: &str, props: &[(&str, &str)]) {
    let mut c = ProducerConfig::new(&broker().bootstrap);
    // Large batches, so each partition holds a few batches and the level shows in their size.
    c.set("linger.ms", "200").unwrap();
    c.set("batch.size", "262144").unwrap();
    for (k, v) in props {
        c.set(k, v).unwrap();
    }
    let p = Producer::new(c).await.unwrap();
    let mut pending = Vec::with_capacity(N);
    for i in 0..N {
        let r = ProducerRecord::new(topic, Bytes::from(value(label, i))).partition(partition);
        pending.push(p.send(r).await.unwrap());
    }
    for d in pending {
        d.await.unwrap();
    }
    p.close().await.unwrap();
}

/// Each partition's size on the broker's disk.
async fn stored(admin: &Admin, topic: &str) -> BTreeMap<i32, i64> {
    let mut sizes = BTreeMap::new();
    for dir in admin.describe_log_dirs(&[]).await.unwrap().into_values().flatten() {
        for ((t, p), r) in dir.replicas {
            if t == topic {
                *sizes.entry(p).or_default() += r.size;
            }
        }
    }
    sizes
}

#[tokio::test]
async fn levels_reach_the_broker_and_java_reads_them() {
    let mut cases: Vec<(&str, Vec<(&str, &str)>)> = vec![
        (
            "gzip-1",
            vec![("compression.type", "gzip"), ("compression.gzip.level", "1")],
        ),
        (
            "gzip-9",
            vec![("compression.type", "gzip"), ("compression.gzip.level", "9")],
        ),
        ("lz4-default", vec![("compression.type", "lz4")]),
        (
            "lz4-4",
            vec![("compression.type", "lz4"), ("compression.lz4.level", "4")],
        ),
        (
            "lz4-17",
            vec![("compression.type", "lz4"), ("compression.lz4.level", "17")],
        ),
        (
            "zstd-1",
            vec![("compression.type", "zstd"), ("compression.zstd.level", "1")],
        ),
    ];
    // With the C library (the zstd-c feature, on under --all-features) every Java level.
    let c_zstd = CompressionLevel::new(Compression::Zstd, 19).is_ok();
    if c_zstd {
        cases.push((
            "zstd-19",
            vec![("compression.type", "zstd"), ("compression.zstd.level", "19")],
        ));
        cases.push((
            "zstd-minus-5",
            vec![("compression.type", "zstd"), ("compression.zstd.level", "-5")],
        ));
    }
    let topic = unique_topic("compression-levels");
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin
        .create_topics(&[NewTopic::new(&topic, cases.len() as i32)])
        .await
        .unwrap();
    for (p, (label, props)) in cases.iter().enumerate() {
        produce(&topic, p as i32, label, props).await;
    }

    let sizes = stored(&admin, &topic).await;
    let size = |label: &str| {
        let p = cases.iter().position(|(l, _)| *l == label).unwrap() as i32;
        sizes[&p]
    };
    assert!(size("gzip-1") > size("gzip-9"), "{sizes:?}");
    assert!(size("lz4-4") < size("lz4-default"), "{sizes:?}");
    assert!(size("lz4-17") < size("lz4-default"), "{sizes:?}");
    if c_zstd {
        assert!(size("zstd-19") < size("zstd-1"), "{sizes:?}");
        assert!(size("zstd-minus-5") > size("zstd-1"), "{sizes:?}");
    }

    let mut want: Vec<String> = cases
        .iter()
        .flat_map(|(label, _)| (0..N).map(move |i| value(label, i)))
        .collect();
    want.sort();
    let mut got = java_console_consume(&broker().bootstrap, &topic, want.len(), 30_000, &[]);
    got.sort();
    assert_eq!(
        got.len(),
        want.len(),
        "Java read {} of {} records",
        got.len(),
        want.len()
    );
    assert!(
        got == want,
        "first difference: {:?}",
        got.iter().zip(&want).find(|(g, w)| g != w)
    );
}
