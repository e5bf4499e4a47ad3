//! Share groups (KIP-932) against the broker: members of one share group split the records
//! of a one-partition topic, each record delivered to one member at a time and seen once
//! when accepted; released records come back with a higher delivery count, rejected ones
//! never; explicit mode insists on an acknowledgement per record; commits report per
//! partition.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strom_client::share::{AcknowledgeType, ShareConsumer, ShareConsumerConfig, ShareRecord};
use strom_client::{
    Admin, AlterConfigOp, ClientConfig, ConfigResource, ErrorKind, NewTopic, Producer, ProducerConfig, ProducerRecord,
};
use strom_integration_tests::{broker, init_test_logging, unique_topic};

/// A topic with `n` records `r0..`, and a share group that starts at the earliest offset
/// (share groups start at the latest by default: `share.auto.offset.reset`).
async fn setup(prefix: &str, n: usize) -> (String, String) {
    setup_batched(prefix, n, 16_384).await
}

/// [`setup`] with the producer's `batch.size` (small ones: many batches, which the broker
/// acquires one at a time).
async fn setup_batched(prefix: &str, n: usize, batch_size: usize) -> (String, String) {
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let topic = unique_topic(prefix);
    let group = format!("{topic}-share");
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    admin
        .incremental_alter_configs(
            &ConfigResource::Group(group.clone()),
            &[AlterConfigOp::Set("share.auto.offset.reset".into(), "earliest".into())],
            false,
        )
        .await
        .unwrap();
    let mut pc = ProducerConfig::new(&broker().bootstrap);
    pc.set("batch.size", &batch_size.to_string()).unwrap();
    pc.set("linger.ms", "0").unwrap();
    let producer = Producer::new(pc).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..n {
        pending.push(
            producer
                .send(ProducerRecord::new(&topic, format!("r{i}")))
                .await
                .unwrap(),
        );
    }
    for f in pending {
        f.await.unwrap();
    }
    producer.close().await.unwrap();
    (topic, group)
}

fn config(group: &str, extra: &[(&str, &str)]) -> ShareConsumerConfig {
    let mut c = ShareConsumerConfig::new(&broker().bootstrap, group);
    for (k, v) in extra {
        c.set(k, v).unwrap();
    }
    c
}

fn value(r: &ShareRecord) -> String {
    String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn three_members_split_one_partition_and_see_every_record_once() {
    init_test_logging();
    const N: usize = 600;
    // About ten records a batch: the broker acquires whole batches.
    let (topic, group) = setup_batched("share-split", N, 200).await;
    let seen: Arc<Mutex<BTreeMap<String, Vec<usize>>>> = Arc::default();
    let mut members = Vec::new();
    for m in 0..3 {
        let (topic, group, seen) = (topic.clone(), group.clone(), seen.clone());
        members.push(tokio::spawn(async move {
            let mut c = ShareConsumer::new(config(&group, &[("max.poll.records", "10")]))
                .await
                .unwrap();
            c.subscribe(&[&topic]);
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut mine = 0;
            while seen.lock().unwrap().len() < N && Instant::now() < deadline {
                let records = c.poll(Duration::from_millis(500)).await.unwrap();
                for r in &records {
                    assert_eq!(r.delivery_count, 1, "nothing was released: {r:?}");
                    seen.lock().unwrap().entry(value(r)).or_default().push(m);
                }
                mine += records.len();
                // Work takes time: the other members get their share meanwhile.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            c.close().await.unwrap();
            mine
        }));
    }
    let mut per_member = Vec::new();
    for m in members {
        per_member.push(m.await.unwrap());
    }
    let seen = seen.lock().unwrap();
    let twice: Vec<_> = seen.iter().filter(|(_, ms)| ms.len() > 1).collect();
    assert!(twice.is_empty(), "delivered twice: {:?}", &twice[..twice.len().min(5)]);
    assert_eq!(seen.len(), N, "records seen");
    assert!(
        per_member.iter().all(|n| *n > 0),
        "every member got work: {per_member:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn released_records_come_back_rejected_ones_never() {
    init_test_logging();
    let (topic, group) = setup("share-ack", 5).await;
    let mut c = ShareConsumer::new(config(&group, &[("share.acknowledgement.mode", "explicit")]))
        .await
        .unwrap();
    c.subscribe(&[&topic]);
    let mut first = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while first.len() < 5 {
        assert!(Instant::now() < deadline, "got {} of 5 records", first.len());
        let got = c.poll(Duration::from_millis(500)).await.unwrap();
        for r in &got {
            // r0 released, r1 rejected, the rest accepted.
            let kind = match value(r).as_str() {
                "r0" => AcknowledgeType::Release,
                "r1" => AcknowledgeType::Reject,
                _ => AcknowledgeType::Accept,
            };
            c.acknowledge(r, kind).unwrap();
        }
        first.extend(got);
    }
    // Acknowledged twice, or never delivered: IllegalState, naming the record.
    let e = c.acknowledge(&first[2], AcknowledgeType::Accept).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IllegalState, "{e}");
    assert!(e.to_string().contains("offset 2"), "{e}");
    let results = c.commit_sync().await.unwrap();
    assert_eq!(results.len(), 1, "{results:?}");
    assert!(results.values().all(Result::is_ok), "{results:?}");

    // r0 comes back, delivered a second time; r1 never does.
    let again = loop {
        assert!(Instant::now() < deadline, "r0 was not redelivered");
        let got = c.poll(Duration::from_millis(500)).await.unwrap();
        if !got.is_empty() {
            break got;
        }
    };
    assert_eq!(again.len(), 1, "{again:?}");
    assert_eq!((value(&again[0]), again[0].delivery_count), ("r0".to_owned(), 2));
    // Explicit mode: polling with it unacknowledged is an error.
    let e = c.poll(Duration::from_millis(100)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IllegalState, "{e}");
    c.acknowledge(&again[0], AcknowledgeType::Accept).unwrap();
    assert!(
        c.poll(Duration::from_secs(1)).await.unwrap().is_empty(),
        "r1 stays rejected"
    );
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn implicit_mode_refuses_explicit_acknowledgements_and_settings_that_do_not_apply() {
    init_test_logging();
    let (topic, group) = setup("share-implicit", 3).await;
    let mut c = ShareConsumer::new(config(&group, &[])).await.unwrap();
    c.subscribe(&[&topic]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < 3 {
        assert!(Instant::now() < deadline);
        got.extend(c.poll(Duration::from_millis(500)).await.unwrap());
    }
    let e = c.acknowledge(&got[0], AcknowledgeType::Accept).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::IllegalState, "{e}");
    // The next poll accepted them: a second member sees nothing.
    assert!(c.poll(Duration::from_millis(300)).await.unwrap().is_empty());
    c.close().await.unwrap();
    let mut other = ShareConsumer::new(config(&group, &[])).await.unwrap();
    other.subscribe(&[&topic]);
    assert!(other.poll(Duration::from_secs(2)).await.unwrap().is_empty());
    other.close().await.unwrap();

    let mut bad = ShareConsumerConfig::new(&broker().bootstrap, &group);
    for key in [
        "auto.offset.reset",
        "isolation.level",
        "enable.auto.commit",
        "group.instance.id",
    ] {
        let e = bad.set(key, "x").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidConfig, "{key}: {e}");
        assert!(e.to_string().contains(key), "{e}");
    }
    assert!(bad.set("share.acknowledgement.mode", "sometimes").is_err());
    assert!(bad.set("no.such.key", "1").is_err());
}
