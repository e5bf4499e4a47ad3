//! An older broker, as `max_version` makes one: every API the producer, a group consumer and
//! the admin client use capped near what Kafka 2.x answered. The client negotiates each down
//! (the request log shows no request above its cap, and each capped API was used), and
//! produce, a group's consumption with commits, and ListOffsets all work at those versions.
//! In memory and in virtual time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, OffsetSpec, Producer, ProducerConfig, ProducerRecord,
};
use strom_fake::{ApiKey, FakeCluster};
use tokio::time::Instant;

/// (API, the highest version the "older broker" answers).
const CAPS: &[(ApiKey, i16)] = &[
    (ApiKey::Produce, 8),
    (ApiKey::Fetch, 11),
    (ApiKey::ListOffsets, 4),
    (ApiKey::Metadata, 7),
    (ApiKey::OffsetCommit, 7),
    (ApiKey::OffsetFetch, 5),
    (ApiKey::FindCoordinator, 2),
    (ApiKey::JoinGroup, 5),
    (ApiKey::Heartbeat, 3),
    (ApiKey::SyncGroup, 3),
    (ApiKey::LeaveGroup, 3),
    (ApiKey::InitProducerId, 2),
    (ApiKey::ApiVersions, 2),
];

#[tokio::test(start_paused = true)]
async fn every_capped_api_is_negotiated_down_and_works() {
    let mut builder = FakeCluster::builder().in_memory().brokers(2).topic("t", 3, 2);
    for (api, v) in CAPS {
        builder = builder.max_version(*api, *v);
    }
    let cluster = builder.start().await.unwrap();
    let transport = Arc::new(cluster.transport().unwrap());
    let client = ClientConfig::new(cluster.bootstrap_servers()).with_transport(transport);

    // Idempotent produce (InitProducerId, Produce, Metadata).
    let producer = Producer::new(ProducerConfig::from_client(client.clone()))
        .await
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..60 {
        let record = ProducerRecord::new("t", format!("{i}")).key(format!("k{}", i % 5));
        pending.push(producer.send(record).await.unwrap());
    }
    for d in pending {
        d.await.unwrap();
    }
    producer.close().await.unwrap();

    // A classic group member that commits and leaves (FindCoordinator, JoinGroup,
    // SyncGroup, Heartbeat, OffsetFetch, Fetch, OffsetCommit, LeaveGroup).
    let mut cc = ConsumerConfig::from_client(client.clone());
    cc.set("group.id", "old").unwrap();
    cc.set("auto.offset.reset", "earliest").unwrap();
    let mut consumer = Consumer::new(cc).await.unwrap();
    consumer.subscribe(&["t"]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut got: BTreeMap<i32, Vec<u32>> = BTreeMap::new();
    while got.values().map(Vec::len).sum::<usize>() < 60 {
        assert!(Instant::now() < deadline, "consumed {got:?}");
        for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            let v = std::str::from_utf8(r.value.as_deref().unwrap())
                .unwrap()
                .parse()
                .unwrap();
            got.entry(r.partition).or_default().push(v);
        }
    }
    // Polling on past heartbeat.interval.ms (3 s), so heartbeats go out too.
    for _ in 0..10 {
        assert!(consumer.poll(Duration::from_millis(500)).await.unwrap().is_empty());
    }
    for values in got.values() {
        assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");
    }
    consumer.commit_sync().await.unwrap();
    consumer.close().await.unwrap();

    // The committed offsets and the end offsets (OffsetFetch, ListOffsets) agree.
    let admin = Admin::connect(client).await.unwrap();
    let ends = admin.list_offsets("t", &[], OffsetSpec::Latest).await.unwrap();
    let committed = admin.group_offsets("old").await.unwrap();
    for end in &ends {
        assert_eq!(
            committed.get(&("t".to_owned(), end.partition)),
            Some(&end.offset),
            "{committed:?}"
        );
    }

    let requests = cluster.requests();
    for (api, cap) in CAPS {
        let versions: Vec<i16> = requests.iter().filter(|r| r.api == *api).map(|r| r.version).collect();
        assert!(!versions.is_empty(), "{api:?} was never sent");
        assert!(versions.iter().all(|v| v <= cap), "{api:?} above v{cap}: {versions:?}");
    }
}
