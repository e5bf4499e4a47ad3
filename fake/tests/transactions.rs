//! Transactions on the fake, under transaction.version 1 and 2 (KIP-890): Strom's transactional producer commits
//! and aborts, read_committed sees only what was committed (the last stable offset holds
//! back an open transaction), a second producer with the same id fences the first, offsets
//! committed in a transaction appear with the commit only, and a transaction left open past
//! its timeout is aborted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ErrorKind, OffsetAndMetadata, OffsetSpec, ProducerConfig,
    ProducerRecord, TopicPartition, TransactionalProducer,
};
use strom_fake::{ApiKey, FakeCluster};

async fn txn_producer(bootstrap: &str, id: &str) -> TransactionalProducer {
    let mut pc = ProducerConfig::new(bootstrap);
    pc.set("transactional.id", id).unwrap();
    pc.set("transaction.timeout.ms", "3000").unwrap();
    let p = TransactionalProducer::new(pc).await.unwrap();
    p.init_transactions().await.unwrap();
    p
}

async fn read_all(bootstrap: &str, topic: &str, isolation: &str, want: usize) -> Vec<String> {
    let mut cc = ConsumerConfig::new(bootstrap);
    cc.set("isolation.level", isolation).unwrap();
    cc.set("auto.offset.reset", "earliest").unwrap();
    let mut c = Consumer::new(cc).await.unwrap();
    c.assign([TopicPartition::new(topic, 0)]).unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        for r in c.poll(Duration::from_millis(100)).await.unwrap() {
            got.push(String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap());
        }
        if got.len() >= want {
            // Anything more would be a bug: look a little longer.
            for r in c.poll(Duration::from_millis(200)).await.unwrap() {
                got.push(String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap());
            }
            break;
        }
    }
    got
}

async fn send(p: &TransactionalProducer, topic: &str, values: &[String]) {
    for v in values {
        let _d = p
            .send(ProducerRecord::new(topic, v.clone()).partition(0))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn committed_and_aborted_transactions_under_read_committed() {
    for tv in [1, 2] {
        committed_and_aborted_transactions_under_read_committed_at(tv).await;
    }
}

async fn committed_and_aborted_transactions_under_read_committed_at(tv: i16) {
    let cluster = FakeCluster::builder()
        .transaction_version(tv)
        .brokers(3)
        .topic("t", 1, 3)
        .start()
        .await
        .unwrap();
    let b = cluster.bootstrap_servers();
    let p = txn_producer(&b, "tx-a").await;
    let batch = |name: &str| (0..10).map(|i| format!("{name}-{i}")).collect::<Vec<_>>();
    p.begin_transaction().await.unwrap();
    send(&p, "t", &batch("committed1")).await;
    p.commit_transaction().await.unwrap();
    p.begin_transaction().await.unwrap();
    send(&p, "t", &batch("aborted")).await;
    // Written before the abort (an abort drops what was never sent).
    p.flush().await.unwrap();
    p.abort_transaction().await.unwrap();
    p.begin_transaction().await.unwrap();
    send(&p, "t", &batch("committed2")).await;
    p.flush().await.unwrap();
    // Open: read_committed stops before it; the end offset for read_committed is the LSO.
    let admin = Admin::connect(ClientConfig::new(&b)).await.unwrap();
    let lso = admin
        .list_offsets_isolated("t", &[0], OffsetSpec::Latest, true)
        .await
        .unwrap();
    assert_eq!(lso[0].offset, 22, "10 + marker + 10 + marker: {lso:?}");
    let seen = read_all(&b, "t", "read_committed", 10).await;
    assert_eq!(seen, batch("committed1"));
    p.commit_transaction().await.unwrap();
    let seen = read_all(&b, "t", "read_committed", 20).await;
    let mut want = batch("committed1");
    want.extend(batch("committed2"));
    assert_eq!(seen, want, "no aborted record, no marker");
    let all = read_all(&b, "t", "read_uncommitted", 30).await;
    assert_eq!(all.len(), 30, "read_uncommitted sees the aborted ones too");
    assert_eq!(cluster.end_offset("t", 0), Some(33), "30 records and 3 markers");
    p.close().await.unwrap();
    assert_protocol(&cluster, tv);
}

/// The client spoke the protocol of the cluster's transaction.version: under 2, no
/// AddPartitionsToTxn or AddOffsetsToTxn (the Produce and the TxnOffsetCommit add
/// themselves) and EndTxn v5; under 1, EndTxn below v4 and the partitions added first.
fn assert_protocol(cluster: &FakeCluster, tv: i16) {
    let log = cluster.requests();
    let count = |api: ApiKey| log.iter().filter(|r| r.api == api).count();
    let end_versions: Vec<i16> = log
        .iter()
        .filter(|r| r.api == ApiKey::EndTxn)
        .map(|r| r.version)
        .collect();
    assert!(!end_versions.is_empty());
    if tv >= 2 {
        assert_eq!(
            count(ApiKey::AddPartitionsToTxn) + count(ApiKey::AddOffsetsToTxn),
            0,
            "TV2"
        );
        assert!(end_versions.iter().all(|v| *v >= 5), "{end_versions:?}");
    } else {
        assert!(count(ApiKey::AddPartitionsToTxn) > 0, "TV1");
        assert!(end_versions.iter().all(|v| *v <= 3), "{end_versions:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_producer_fences_the_first_and_aborts_what_it_left_open() {
    for tv in [1, 2] {
        a_second_producer_fences_the_first_and_aborts_what_it_left_open_at(tv).await;
    }
}

async fn a_second_producer_fences_the_first_and_aborts_what_it_left_open_at(tv: i16) {
    let cluster = FakeCluster::builder()
        .transaction_version(tv)
        .topic("t", 1, 1)
        .start()
        .await
        .unwrap();
    let b = cluster.bootstrap_servers();
    let old = txn_producer(&b, "tx-f").await;
    old.begin_transaction().await.unwrap();
    send(&old, "t", &["zombie".to_owned()]).await;
    old.flush().await.unwrap();
    let new = txn_producer(&b, "tx-f").await;
    let e = old.commit_transaction().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fenced, "{e}");
    new.begin_transaction().await.unwrap();
    send(&new, "t", &["fresh".to_owned()]).await;
    new.commit_transaction().await.unwrap();
    assert_eq!(read_all(&b, "t", "read_committed", 1).await, ["fresh"]);
    new.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_in_a_transaction_and_a_timed_out_transaction() {
    for tv in [1, 2] {
        offsets_in_a_transaction_and_a_timed_out_transaction_at(tv).await;
    }
}

async fn offsets_in_a_transaction_and_a_timed_out_transaction_at(tv: i16) {
    let cluster = FakeCluster::builder()
        .transaction_version(tv)
        .topic("in", 1, 1)
        .topic("out", 1, 1)
        .start()
        .await
        .unwrap();
    let b = cluster.bootstrap_servers();
    // A consumer in group g has read 5 records of "in".
    let mut cc = ConsumerConfig::new(&b);
    cc.set("group.id", "g").unwrap();
    cc.set("enable.auto.commit", "false").unwrap();
    cc.set("auto.offset.reset", "earliest").unwrap();
    let mut c = Consumer::new(cc).await.unwrap();
    c.subscribe(&["in"]).unwrap();
    let seed = txn_producer(&b, "seed").await;
    seed.begin_transaction().await.unwrap();
    send(&seed, "in", &(0..5).map(|i| format!("in-{i}")).collect::<Vec<_>>()).await;
    seed.commit_transaction().await.unwrap();
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while n < 5 {
        assert!(Instant::now() < deadline);
        n += c.poll(Duration::from_millis(100)).await.unwrap().len();
    }
    let p = txn_producer(&b, "tx-o").await;
    p.begin_transaction().await.unwrap();
    send(&p, "out", &["copied".to_owned()]).await;
    let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> =
        [(TopicPartition::new("in", 0), OffsetAndMetadata::new(5))].into();
    p.send_offsets_to_transaction(&offsets, &c.group_metadata().unwrap())
        .await
        .unwrap();
    let admin = Admin::connect(ClientConfig::new(&b)).await.unwrap();
    assert!(
        admin.group_offsets("g").await.unwrap().is_empty(),
        "not before the commit"
    );
    p.commit_transaction().await.unwrap();
    assert_eq!(
        admin.group_offsets("g").await.unwrap().get(&("in".to_owned(), 0)),
        Some(&5)
    );
    c.close().await.unwrap();
    assert_protocol(&cluster, tv);

    // A transaction left open past transaction.timeout.ms (3 s) is aborted, its producer
    // fenced.
    p.begin_transaction().await.unwrap();
    send(&p, "out", &["never".to_owned()]).await;
    p.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(
        read_all(&b, "out", "read_committed", 1).await,
        ["copied"],
        "the open one never shows"
    );
    let e = p.commit_transaction().await.unwrap_err();
    assert!(matches!(e.kind(), ErrorKind::Fenced | ErrorKind::Abortable), "{e}");
}
