//! The exactly-once sink on brokers of its own: one formatted with `transaction.version=0`
//! (the KIP-98 protocol, TV1: no epoch bump per transaction, so re-commits and fencing follow
//! the older state table), and one that is killed with SIGKILL between pre-commit and
//! commit.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use strom_client::{Admin, ClientConfig, NewTopic};
use strom_connector::sink::{
    transactional_id, CommitOutcome, DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, KafkaSinkWriter,
    SinkRestore, StringSerializer,
};
use strom_integration_tests::{init_test_logging, read_committed_values, unique_topic, PrivateBroker};

fn sink(bootstrap: &str, topic: &str, prefix: &str) -> KafkaSink<String> {
    KafkaSink::<String>::builder()
        .bootstrap_servers(bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic(topic)
                .key_serializer(|s: &String| Ok(Some(Bytes::from(s.clone()))))
                .value_serializer(StringSerializer)
                .build()
                .unwrap(),
        )
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix(prefix)
        .build()
        .unwrap()
}

fn values(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i:04}")).collect()
}

async fn write_all(w: &mut KafkaSinkWriter<String>, values: &[String]) {
    for v in values {
        w.write(v).await.unwrap();
    }
}

/// read_committed, after every open transaction ended (bounded wait).
async fn read_committed(admin: &Admin, topic: &str) -> Vec<String> {
    read_committed_values(admin, topic, Duration::from_secs(30)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_with_transaction_version_1() {
    init_test_logging();
    let broker = PrivateBroker::start_with(22192, &[("STROM_KAFKA_FORMAT_ARGS", "--feature transaction.version=0")]);
    let admin = Admin::connect(ClientConfig::new(&broker.bootstrap)).await.unwrap();
    let topic = unique_topic("sink-tv1");
    admin.create_topics(&[NewTopic::new(&topic, 2)]).await.unwrap();
    let prefix = unique_topic("tv1");
    let sink = sink(&broker.bootstrap, &topic, &prefix);

    // Checkpoint 1 committed normally.
    let mut w = sink.create_writer(0, 1).await.unwrap();
    let mut want = values("one", 40);
    write_all(&mut w, &want).await;
    let c1 = w.prepare_commit(1).await.unwrap();
    assert_eq!(c1[0].transaction_version, 1, "a TV1 broker gives TV1 committables");
    assert_eq!(w.committer().commit(&c1).await.unwrap(), vec![CommitOutcome::Committed]);
    // Checkpoint 2 pre-committed and stored, then the process dies with checkpoint 3 open.
    let two = values("two", 25);
    write_all(&mut w, &two).await;
    let c2 = w.prepare_commit(2).await.unwrap();
    let restore = SinkRestore::new(2, c2.clone(), vec![w.snapshot_state(2)]);
    write_all(&mut w, &values("open", 10)).await;
    w.flush().await.unwrap();
    drop(w);
    want.extend(two);
    want.sort();

    let mut w = sink.restore_writer(0, 1, &restore).await.unwrap();
    assert_eq!(w.restore_report().committed, vec![transactional_id(&prefix, 0, 2)]);
    let aborted: Vec<&str> = w.restore_report().aborted.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(aborted, vec![transactional_id(&prefix, 0, 3)]);
    assert_eq!(read_committed(&admin, &topic).await, want);
    // TV1: a repeated commit of the same epoch is accepted (CompleteCommit takes Commit).
    let again = w.committer().commit(&c1).await.unwrap();
    assert!(
        matches!(
            again[0],
            CommitOutcome::Committed | CommitOutcome::AlreadyFinished { .. }
        ),
        "{again:?}"
    );
    // An empty checkpoint sends nothing (EndTxn on an empty TV1 transaction is refused).
    assert!(w.prepare_commit(3).await.unwrap().is_empty());
    w.notify_checkpoint_complete(3);
    let four = values("four", 5);
    write_all(&mut w, &four).await;
    let c4 = w.prepare_commit(4).await.unwrap();
    w.committer().commit(&c4).await.unwrap();
    w.close().await.unwrap();
    want.extend(four);
    want.sort();
    assert_eq!(read_committed(&admin, &topic).await, want);
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_survives_a_broker_crash_between_prepare_and_commit() {
    init_test_logging();
    let broker = PrivateBroker::start(22292);
    let admin = Admin::connect(ClientConfig::new(&broker.bootstrap)).await.unwrap();
    let topic = unique_topic("sink-crash");
    admin.create_topics(&[NewTopic::new(&topic, 3)]).await.unwrap();
    let prefix = unique_topic("crash");
    let sink = sink(&broker.bootstrap, &topic, &prefix);

    let mut w = sink.create_writer(0, 1).await.unwrap();
    let mut want = values("before", 200);
    write_all(&mut w, &want).await;
    let c1 = w.prepare_commit(1).await.unwrap();
    let restore = SinkRestore::new(1, c1.clone(), vec![w.snapshot_state(1)]);
    // The broker dies after the pre-commit; the checkpoint is durable; the writer dies too.
    broker.kill();
    drop(w);
    broker.restart_keeping_data();

    // The restarted pipeline restores: the pre-committed transaction survives the broker
    // crash (it is in the transaction log) and is committed once.
    let admin = Admin::connect(ClientConfig::new(&broker.bootstrap)).await.unwrap();
    let mut w = sink.restore_writer(0, 1, &restore).await.unwrap();
    assert_eq!(w.restore_report().committed, vec![transactional_id(&prefix, 0, 1)]);
    let after = values("after", 50);
    write_all(&mut w, &after).await;
    let c2 = w.prepare_commit(2).await.unwrap();
    w.committer().commit(&c2).await.unwrap();
    w.close().await.unwrap();
    want.extend(after);
    want.sort();
    assert_eq!(
        read_committed(&admin, &topic).await,
        want,
        "nothing lost, nothing twice"
    );
}
