//! Transactions against the real broker, in both protocol versions: the default 4.x broker
//! runs TV2 (KIP-890); a private broker formatted with `transaction.version=0` runs TV1.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::ErrorCode;
use strom_client::{
    abort_lingering, resume_transaction, Admin, Client, ClientConfig, ConsumerGroupMetadata, ConsumerRecord, NewTopic,
    OffsetAndMetadata, ProducerConfig, ProducerRecord, TopicPartition, TransactionalProducer,
};
use strom_integration_tests::{broker, read_to_end, unique_topic, wait_no_open_transaction, PrivateBroker};

async fn read_all(client: &Client, topic: &str, read_committed: bool) -> Vec<ConsumerRecord> {
    if read_committed {
        wait_no_open_transaction(&Admin::new(client.clone()), topic, Duration::from_secs(30)).await;
    }
    read_to_end(client, topic, read_committed).await
}

/// read_committed up to the last stable offset as it is now (an open transaction stays
/// open: nothing is waited for).
async fn read_upto_lso(client: &Client, topic: &str) -> Vec<ConsumerRecord> {
    read_to_end(client, topic, true).await
}

fn values(records: &[ConsumerRecord]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap())
        .collect();
    v.sort();
    v
}

/// One partition's next offset, as `Consumer::consumed_offsets` returns it.
fn offsets(topic: &str, partition: i32, offset: i64) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
    BTreeMap::from([(TopicPartition::new(topic, partition), OffsetAndMetadata::new(offset))])
}

async fn producer(bootstrap: &str, id: &str) -> TransactionalProducer {
    let mut c = ProducerConfig::new(bootstrap);
    c.transactional_id = Some(id.to_owned());
    c.validate().unwrap();
    let p = TransactionalProducer::new(c).await.unwrap();
    p.init_transactions().await.unwrap();
    p
}

async fn send(p: &TransactionalProducer, topic: &str, tag: &str, n: usize) -> Vec<strom_client::DeliveryFuture> {
    let mut futs = Vec::new();
    for i in 0..n {
        let rec = ProducerRecord::new(topic, Bytes::from(format!("{tag}-{i:04}"))).key(Bytes::from(format!("k{i}")));
        futs.push(p.send(rec).await.unwrap());
    }
    futs
}

/// Commit, abort and commit again, two producers interleaved on the same partitions, offsets
/// in a transaction, an empty transaction; read back with read_committed and without.
async fn scenario(bootstrap: &str, expect_tv: i16) {
    strom_integration_tests::init_test_logging();
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await.unwrap();
    let topic = unique_topic("txn");
    admin.create_topics(&[NewTopic::new(&topic, 3)]).await.unwrap();
    let a = producer(bootstrap, &unique_topic("txn-a")).await;
    let b = producer(bootstrap, &unique_topic("txn-b")).await;

    a.begin_transaction().await.unwrap();
    b.begin_transaction().await.unwrap();
    send(&a, &topic, "a1", 60).await;
    send(&b, &topic, "b1", 40).await;
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    send(&a, &topic, "a1x", 10).await;
    b.abort_transaction().await.unwrap();
    a.commit_transaction().await.unwrap();

    b.begin_transaction().await.unwrap();
    send(&b, &topic, "b2", 30).await;
    let group = unique_topic("txn-group");
    b.send_offsets_to_transaction(&offsets(&topic, 0, 42), &ConsumerGroupMetadata::new(&group))
        .await
        .unwrap();
    b.commit_transaction().await.unwrap();

    a.begin_transaction().await.unwrap();
    let a2 = send(&a, &topic, "a2", 25).await;
    a.send_offsets_to_transaction(&offsets(&topic, 1, 7), &ConsumerGroupMetadata::new(&group))
        .await
        .unwrap();
    // Flushed first, so the aborted records are in the log (an abort drops unflushed ones
    // unsent, which TV1 does more often: its batches wait for AddPartitionsToTxn).
    a.flush().await.unwrap();
    for f in &a2 {
        let r = f.try_result().expect("a flushed record has an outcome");
        assert!(r.is_ok(), "a flushed record must be acknowledged: {r:?}");
    }
    a.abort_transaction().await.unwrap();

    // An empty transaction commits without a word to the coordinator (TV1 would refuse it).
    a.begin_transaction().await.unwrap();
    a.commit_transaction().await.unwrap();

    // Sending outside a transaction is refused.
    let err = a.send(ProducerRecord::new(&topic, "outside")).await.unwrap_err();
    assert!(err.to_string().contains("begin_transaction"), "{err}");

    let committed = read_all(admin.client(), &topic, true).await;
    let mut want: Vec<String> = (0..60).map(|i| format!("a1-{i:04}")).collect();
    want.extend((0..10).map(|i| format!("a1x-{i:04}")));
    want.extend((0..30).map(|i| format!("b2-{i:04}")));
    want.sort();
    assert_eq!(
        values(&committed),
        want,
        "read_committed must see exactly the committed records"
    );
    let everything = read_all(admin.client(), &topic, false).await;
    let mut tags: BTreeMap<String, usize> = BTreeMap::new();
    for v in values(&everything) {
        *tags.entry(v.split('-').next().unwrap_or("").to_owned()).or_default() += 1;
    }
    assert_eq!(
        everything.len(),
        60 + 10 + 40 + 30 + 25,
        "read_uncommitted sees aborted data too: {tags:?}"
    );

    // Only the committed transaction's offsets reached the group.
    let offsets = admin.group_offsets(&group).await.unwrap();
    assert_eq!(offsets.get(&(topic.clone(), 0)), Some(&42));
    assert_eq!(offsets.get(&(topic.clone(), 1)), None);

    // Resumable: prepare, "crash" (the producer is dropped without committing), then a new
    // client commits it from the stored id, producer id and epoch. Twice: the second is a no-op.
    let id = unique_topic("txn-resume");
    let p = producer(bootstrap, &id).await;
    p.begin_transaction().await.unwrap();
    send(&p, &topic, "prepared", 15).await;
    let prepared = p.prepare().await.unwrap();
    assert_eq!(prepared.transactional_id, id);
    assert_eq!(prepared.transaction_version, expect_tv);
    drop(p);
    assert_eq!(
        read_upto_lso(admin.client(), &topic).await.len(),
        100,
        "not visible before the commit"
    );
    let fresh = Client::connect(ClientConfig::new(bootstrap)).await.unwrap();
    resume_transaction(&fresh, &prepared, true).await.unwrap();
    resume_transaction(&fresh, &prepared, true).await.unwrap();
    let after = read_all(admin.client(), &topic, true).await;
    assert_eq!(after.len(), 115, "exactly once");
    assert_eq!(values(&after).iter().filter(|v| v.starts_with("prepared-")).count(), 15);

    // A lingering transaction is aborted by abort_lingering, and the old epoch is fenced.
    let id = unique_topic("txn-linger");
    let p = producer(bootstrap, &id).await;
    p.begin_transaction().await.unwrap();
    send(&p, &topic, "lingering", 5).await;
    let stale = p.prepare().await.unwrap();
    drop(p);
    abort_lingering(&fresh, &id).await.unwrap();
    let err = resume_transaction(&fresh, &stale, true).await.unwrap_err();
    assert!(
        matches!(
            err.kafka_code(),
            Some(ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch)
        ),
        "a fenced transaction must be a typed error: {err}"
    );
    assert_eq!(
        read_all(admin.client(), &topic, true).await.len(),
        115,
        "lingering data stays invisible"
    );
    // The LSO moved past it: read_committed reaches the end.
    let lso = admin
        .list_offsets_isolated(&topic, &[], strom_client::OffsetSpec::Latest, true)
        .await
        .unwrap();
    let end = admin
        .list_offsets(&topic, &[], strom_client::OffsetSpec::Latest)
        .await
        .unwrap();
    assert_eq!(lso, end);
}

#[tokio::test]
async fn transactions_tv2() {
    scenario(&broker().bootstrap, 2).await;
}

#[tokio::test]
async fn transactions_tv1() {
    let b = PrivateBroker::start_with(21192, &[("STROM_KAFKA_FORMAT_ARGS", "--feature transaction.version=0")]);
    scenario(&b.bootstrap, 1).await;
}

#[tokio::test]
async fn a_second_producer_with_the_same_id_fences_the_first() {
    let bootstrap = &broker().bootstrap;
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await.unwrap();
    let topic = unique_topic("txn-fence");
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let id = unique_topic("txn-fenced");
    let old = producer(bootstrap, &id).await;
    old.begin_transaction().await.unwrap();
    send(&old, &topic, "old", 5).await;
    let new = producer(bootstrap, &id).await;
    let err = old.commit_transaction().await.unwrap_err();
    assert!(
        matches!(
            err.kafka_code(),
            Some(ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch)
        ),
        "{err}"
    );
    assert!(err.is_fatal(), "{err}");
    // The fenced producer stays failed.
    assert!(old.begin_transaction().await.is_err());
    new.begin_transaction().await.unwrap();
    send(&new, &topic, "new", 3).await;
    new.commit_transaction().await.unwrap();
    let got = read_all(admin.client(), &topic, true).await;
    assert_eq!(values(&got), vec!["new-0000", "new-0001", "new-0002"]);
}

/// Issue #12 item 17: a fenced producer's errors say what happened (another producer with
/// the same transactional.id took over; this one's records were discarded), not only
/// INVALID_PRODUCER_EPOCH / PRODUCER_FENCED: on a record sent after the takeover and on commit.
#[tokio::test]
async fn a_fenced_producer_says_another_producer_took_over() {
    let bootstrap = &broker().bootstrap;
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await.unwrap();
    let topic = unique_topic("txn-fence-msg");
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let id = unique_topic("txn-fence-msg-id");
    let old = producer(bootstrap, &id).await;
    old.begin_transaction().await.unwrap();
    for d in send(&old, &topic, "old", 3).await {
        d.await.unwrap();
    }
    let _new = producer(bootstrap, &id).await;
    let explained = |e: &strom_client::Error| {
        let msg = e.to_string();
        assert!(
            matches!(
                e.kafka_code(),
                Some(ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch)
            ),
            "{msg}"
        );
        assert!(
            msg.contains("another producer with the same transactional.id")
                && msg.contains(&id)
                && msg.contains("records discarded"),
            "{msg}"
        );
    };
    // A record of the old producer after the takeover.
    let late = send(&old, &topic, "late", 1).await.remove(0);
    explained(&late.await.unwrap_err());
    let err = old.commit_transaction().await.unwrap_err();
    assert!(err.is_fatal(), "{err}");
    explained(&err);
    assert!(read_all(admin.client(), &topic, true).await.is_empty());
}

/// A record that fails inside a transaction makes it abortable: commit refuses with the
/// record's error, abort works, and the next transaction commits normally.
#[tokio::test]
async fn an_abortable_error_lets_the_user_abort_and_continue() {
    let bootstrap = &broker().bootstrap;
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await.unwrap();
    let topic = unique_topic("txn-abortable");
    admin
        .create_topics(&[NewTopic::new(&topic, 1).config("max.message.bytes", "2000")])
        .await
        .unwrap();
    let p = producer(bootstrap, &unique_topic("txn-abortable-id")).await;
    p.begin_transaction().await.unwrap();
    send(&p, &topic, "fine", 3).await;
    let too_big = p.send(ProducerRecord::new(&topic, vec![1u8; 10_000])).await.unwrap();
    let err = p.commit_transaction().await.unwrap_err();
    assert_eq!(err.kafka_code(), Some(ErrorCode::MessageTooLarge), "{err}");
    assert!(!err.is_fatal());
    assert!(too_big.wait().await.is_err());
    p.abort_transaction().await.unwrap();
    p.begin_transaction().await.unwrap();
    send(&p, &topic, "after", 2).await;
    p.commit_transaction().await.unwrap();
    let got = read_all(admin.client(), &topic, true).await;
    assert_eq!(values(&got), vec!["after-0000", "after-0001"]);
}

/// Consume-transform-produce as Java users write it: the offsets a group consumer returns
/// from `consumed_offsets()` go straight into `send_offsets_to_transaction`, commit with the
/// output, and are the group's committed offsets afterwards; an aborted round commits none.
#[tokio::test]
async fn consumed_offsets_commit_with_the_transaction() {
    let bootstrap = &broker().bootstrap;
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await.unwrap();
    let (input, output) = (unique_topic("ctp-in"), unique_topic("ctp-out"));
    admin
        .create_topics(&[NewTopic::new(&input, 2), NewTopic::new(&output, 1)])
        .await
        .unwrap();
    let plain = strom_client::Producer::new(ProducerConfig::new(bootstrap))
        .await
        .unwrap();
    for i in 0..40 {
        // Delivery is checked by the flush below.
        drop(
            plain
                .send(ProducerRecord::new(&input, format!("{i}")).partition(i % 2))
                .await
                .unwrap(),
        );
    }
    plain.flush().await.unwrap();

    let group = unique_topic("ctp-group");
    let mut cfg = strom_client::ConsumerConfig::new(bootstrap);
    cfg.group_id = Some(group.clone());
    cfg.enable_auto_commit = false;
    cfg.isolation_level = strom_client::IsolationLevel::ReadCommitted;
    cfg.auto_offset_reset = strom_client::OffsetReset::Earliest;
    let mut consumer = strom_client::Consumer::new(cfg).await.unwrap();
    consumer.subscribe(&[&input]).unwrap();
    let txn = producer(bootstrap, &unique_topic("ctp-id")).await;

    // Round 1 is aborted: its output never shows and its offsets are not committed.
    let mut seen = 0;
    for round in 0..2 {
        txn.begin_transaction().await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut got = 0;
        while got < 10 {
            assert!(Instant::now() < deadline, "round {round}: only {got} records");
            for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
                let v = String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap();
                // The commit fails if any of these does.
                drop(txn.send(ProducerRecord::new(&output, format!("x{v}"))).await.unwrap());
                got += 1;
            }
        }
        let group_meta = consumer.group_metadata().expect("a group member");
        let offsets = consumer.consumed_offsets();
        txn.send_offsets_to_transaction(&offsets, &group_meta).await.unwrap();
        if round == 0 {
            txn.abort_transaction().await.unwrap();
            let committed = admin.group_offsets(&group).await.unwrap();
            assert!(
                committed.is_empty(),
                "an aborted transaction committed offsets: {committed:?}"
            );
            // Start over from the last committed offsets (none: the beginning).
            for tp in offsets.keys() {
                consumer.seek(tp, 0).unwrap();
            }
        } else {
            txn.commit_transaction().await.unwrap();
            seen = got;
            let want: BTreeMap<(String, i32), i64> = offsets
                .iter()
                .map(|(tp, o)| ((tp.topic.to_string(), tp.partition), o.offset))
                .collect();
            // The commit marker reaches __consumer_offsets just after EndTxn returns; until
            // then OffsetFetch without require_stable shows nothing (seen on 3.9, TV1).
            let deadline = Instant::now() + Duration::from_secs(10);
            let committed = loop {
                let committed = admin.group_offsets(&group).await.unwrap();
                if committed == want || Instant::now() >= deadline {
                    break committed;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            assert_eq!(committed, want, "the group's offsets are those the consumer consumed");
        }
    }
    let out = read_all(admin.client(), &output, true).await;
    assert_eq!(out.len(), seen, "only the committed round is visible");
}
