//! The Kafka sink against the real broker: each delivery guarantee across checkpoints,
//! exactly-once visibility, crash and restore (pending committables committed, lingering
//! transactions aborted), configuration errors, send errors failing a checkpoint, and Java's
//! console consumer reading exactly-once output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::ErrorCode;
use strom_client::{Admin, Client, ClientConfig, ConsumerRecord, NewTopic, OffsetSpec};
use strom_connector::sink::{
    transactional_id, CommitOutcome, DeliveryGuarantee, FixedPartitioner, KafkaCommittable,
    KafkaRecordSerializationSchema, KafkaSink, KafkaSinkWriter, SinkRestore, StringSerializer,
};
use strom_integration_tests::{broker, init_test_logging, run_java_tool, unique_topic, wait_no_open_transaction};

async fn admin() -> Admin {
    Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap()
}

async fn create_topic(admin: &Admin, prefix: &str, partitions: i32) -> String {
    let topic = unique_topic(prefix);
    admin.create_topics(&[NewTopic::new(&topic, partitions)]).await.unwrap();
    topic
}

fn string_sink(topic: &str, guarantee: DeliveryGuarantee, prefix: Option<&str>) -> KafkaSink<String> {
    let mut b = KafkaSink::<String>::builder()
        .bootstrap_servers(&broker().bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic(topic)
                .key_serializer(|s: &String| Ok(Some(Bytes::from(s.split('-').next_back().unwrap_or("").to_owned()))))
                .value_serializer(StringSerializer)
                .build()
                .unwrap(),
        )
        .delivery_guarantee(guarantee)
        .property("linger.ms", "20");
    if let Some(p) = prefix {
        b = b.transactional_id_prefix(p);
    }
    b.build().unwrap()
}

fn values(tag: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{tag}-{i:04}")).collect()
}

async fn write_all(writer: &mut KafkaSinkWriter<String>, values: &[String]) {
    for v in values {
        writer.write(v).await.unwrap();
    }
}

/// Everything readable now (read_committed: up to the LSO as it is; nothing is waited for).
async fn read_now(client: &Client, topic: &str, read_committed: bool) -> Vec<ConsumerRecord> {
    strom_integration_tests::read_to_end(client, topic, read_committed).await
}

/// Everything, after the open transactions ended (read_committed) .
async fn read_settled(admin: &Admin, topic: &str, read_committed: bool) -> Vec<ConsumerRecord> {
    if read_committed {
        wait_no_open_transaction(admin, topic, Duration::from_secs(30)).await;
    }
    read_now(admin.client(), topic, read_committed).await
}

fn sorted_values(records: &[ConsumerRecord]) -> Vec<String> {
    let mut v: Vec<String> = records
        .iter()
        .map(|r| String::from_utf8(r.value.as_deref().unwrap().to_vec()).unwrap())
        .collect();
    v.sort();
    v
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

async fn transaction_exists(admin: &Admin, id: &str) -> bool {
    match admin.describe_transaction(id).await {
        Ok(_) => true,
        Err(e) if e.kafka_code() == Some(ErrorCode::TransactionalIdNotFound) => false,
        Err(e) => panic!("describe {id}: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_writes_every_record_across_checkpoints() {
    init_test_logging();
    let admin = admin().await;
    let topic = create_topic(&admin, "sink-alo", 3).await;
    let sink = string_sink(&topic, DeliveryGuarantee::AtLeastOnce, None);
    let mut writer = sink.create_writer(0, 1).await.unwrap();
    let mut want = Vec::new();
    for checkpoint in 1..=3u64 {
        let batch = values(&format!("alo{checkpoint}"), 0..100);
        write_all(&mut writer, &batch).await;
        want.extend(batch);
        assert!(writer.prepare_commit(checkpoint).await.unwrap().is_empty());
        // Flushed at the checkpoint: everything written so far is on the broker already.
        let hwm: i64 = admin
            .list_offsets(&topic, &[], OffsetSpec::Latest)
            .await
            .unwrap()
            .iter()
            .map(|o| o.offset)
            .sum();
        assert_eq!(
            hwm,
            want.len() as i64,
            "checkpoint {checkpoint} waited for every record"
        );
        let state = writer.snapshot_state(checkpoint);
        assert_eq!(
            (state.subtask, state.checkpoint_id, state.transactional_id_prefix),
            (0, checkpoint, None)
        );
    }
    let m = writer.metrics().snapshot();
    assert_eq!((m.num_records_out, m.num_records_out_errors), (300, 0));
    assert_eq!(m.num_bytes_out, want.iter().map(|v| v.len() as u64 + 4).sum::<u64>());
    // currentSendTime: the producers' request-latency-avg, once requests went out.
    let send_time = m.current_send_time.expect("currentSendTime after 300 records");
    assert!(
        send_time > Duration::ZERO && send_time < Duration::from_secs(30),
        "{send_time:?}"
    );
    assert!(m.by_flink_name().iter().any(|(k, _)| *k == "currentSendTime"));
    writer.close().await.unwrap();
    let got = read_settled(&admin, &topic, false).await;
    assert_eq!(sorted_values(&got), sorted(want));
    // Keys hashed by the producer's default partitioner: same key, same partition.
    let mut by_key: BTreeMap<Vec<u8>, i32> = BTreeMap::new();
    for r in &got {
        let k = r.key.as_deref().unwrap().to_vec();
        assert_eq!(*by_key.entry(k).or_insert(r.partition), r.partition);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn none_delivers_on_close_without_waiting_at_checkpoints() {
    init_test_logging();
    let admin = admin().await;
    let topic = create_topic(&admin, "sink-none", 2).await;
    let sink = string_sink(&topic, DeliveryGuarantee::None, None);
    let mut writer = sink.create_writer(0, 1).await.unwrap();
    let want = values("none", 0..200);
    write_all(&mut writer, &want[..100]).await;
    assert!(writer.prepare_commit(1).await.unwrap().is_empty());
    write_all(&mut writer, &want[100..]).await;
    assert_eq!(writer.metrics().num_records_out(), 200);
    writer.close().await.unwrap();
    assert_eq!(sorted_values(&read_settled(&admin, &topic, false).await), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_commits_each_checkpoint_and_hides_prepared_records() {
    init_test_logging();
    let admin = admin().await;
    let topic = create_topic(&admin, "sink-eo", 3).await;
    let prefix = unique_topic("eo");
    let sink = string_sink(&topic, DeliveryGuarantee::ExactlyOnce, Some(&prefix));
    let mut writer = sink.create_writer(0, 1).await.unwrap();
    let committer = writer.committer();

    // Checkpoint 1: records, pre-committed, invisible until committed.
    let first = values("eo1", 0..150);
    write_all(&mut writer, &first).await;
    assert_eq!(
        writer.current_transactional_id(),
        Some(transactional_id(&prefix, 0, 1).as_str())
    );
    let committables = writer.prepare_commit(1).await.unwrap();
    assert_eq!(committables.len(), 1);
    assert_eq!(committables[0].transactional_id, format!("{prefix}-0-1"));
    assert!(committables[0].transaction_version >= 1);
    assert!(
        read_now(admin.client(), &topic, true).await.is_empty(),
        "prepared is not committed"
    );
    assert_eq!(
        read_now(admin.client(), &topic, false).await.len(),
        150,
        "but it is written"
    );
    let state = writer.snapshot_state(1);
    assert_eq!(state.transactional_id_prefix.as_deref(), Some(prefix.as_str()));
    assert_eq!(
        committer.commit(&committables).await.unwrap(),
        vec![CommitOutcome::Committed]
    );
    writer.notify_checkpoint_complete(1);
    assert_eq!(sorted_values(&read_settled(&admin, &topic, true).await), first);

    // Checkpoint 2 has no records: no transaction, no committable, the id is never created.
    assert!(writer.prepare_commit(2).await.unwrap().is_empty());
    assert!(!transaction_exists(&admin, &transactional_id(&prefix, 0, 2)).await);
    // Not reported durable: the writer initializes id 2 before it begins 3, so probing
    // after a crash walks past it.
    let third = values("eo3", 0..40);
    write_all(&mut writer, &third).await;
    assert_eq!(
        writer.current_transactional_id(),
        Some(transactional_id(&prefix, 0, 3).as_str())
    );
    assert!(transaction_exists(&admin, &transactional_id(&prefix, 0, 2)).await);
    let c3 = writer.prepare_commit(3).await.unwrap();
    committer.commit(&c3).await.unwrap();
    writer.notify_checkpoint_complete(3);

    // Reported durable: an empty checkpoint costs nothing, not even later.
    assert!(writer.prepare_commit(4).await.unwrap().is_empty());
    writer.notify_checkpoint_complete(4);
    let fifth = values("eo5", 0..10);
    write_all(&mut writer, &fifth).await;
    assert!(!transaction_exists(&admin, &transactional_id(&prefix, 0, 4)).await);
    let c5 = writer.prepare_commit(5).await.unwrap();
    assert_eq!(c5[0].transactional_id, transactional_id(&prefix, 0, 5));
    committer.commit(&c5).await.unwrap();

    let m = writer.metrics().snapshot();
    assert_eq!(
        (m.num_records_out, m.transactions_prepared, m.transactions_committed),
        (200, 3, 3)
    );
    writer.close().await.unwrap();
    let want = sorted([first, third, fifth].concat());
    assert_eq!(sorted_values(&read_settled(&admin, &topic, true).await), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_crash_after_prepare_is_committed_once_on_restore() {
    init_test_logging();
    let admin = admin().await;
    let topic = create_topic(&admin, "sink-eo-restore", 2).await;
    let prefix = unique_topic("eo-restore");
    let sink = string_sink(&topic, DeliveryGuarantee::ExactlyOnce, Some(&prefix));

    let mut writer = sink.create_writer(0, 1).await.unwrap();
    let first = values("before-crash", 0..120);
    write_all(&mut writer, &first).await;
    let pending = writer.prepare_commit(7).await.unwrap();
    let state = writer.snapshot_state(7);
    // The checkpoint (state + committables) is durable; the process dies before committing.
    let stored = serde_json::to_string(&SinkRestore::new(7, pending.clone(), vec![state])).unwrap();
    drop(writer);
    assert!(read_now(admin.client(), &topic, true).await.is_empty());

    let restore: SinkRestore = serde_json::from_str(&stored).unwrap();
    let mut writer = sink.restore_writer(0, 1, &restore).await.unwrap();
    assert_eq!(
        writer.restore_report().committed,
        vec![pending[0].transactional_id.clone()]
    );
    assert!(
        writer.restore_report().aborted.is_empty(),
        "{:?}",
        writer.restore_report()
    );
    assert_eq!(writer.last_checkpoint_id(), 7);
    assert_eq!(sorted_values(&read_settled(&admin, &topic, true).await), first);

    // Committing the same committable again (a second restore from the same checkpoint) is fine.
    let again = writer.committer().commit(&pending).await.unwrap();
    assert!(
        matches!(
            again[0],
            CommitOutcome::Committed | CommitOutcome::AlreadyFinished { .. }
        ),
        "{again:?}"
    );

    // And the restored writer carries on above the restored checkpoint.
    assert!(writer.prepare_commit(7).await.is_err(), "checkpoint ids must increase");
    let second = values("after-restore", 0..30);
    write_all(&mut writer, &second).await;
    assert_eq!(
        writer.current_transactional_id(),
        Some(transactional_id(&prefix, 0, 8).as_str())
    );
    let c = writer.prepare_commit(8).await.unwrap();
    writer.committer().commit(&c).await.unwrap();
    writer.close().await.unwrap();
    let want = sorted([first, second].concat());
    assert_eq!(
        sorted_values(&read_settled(&admin, &topic, true).await),
        want,
        "each record once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_restore_aborts_lingering_transactions_and_unblocks_readers() {
    init_test_logging();
    let admin = admin().await;
    let topic = create_topic(&admin, "sink-eo-linger", 2).await;
    let prefix = unique_topic("eo-linger");
    let sink = string_sink(&topic, DeliveryGuarantee::ExactlyOnce, Some(&prefix));

    let mut writer = sink.create_writer(0, 1).await.unwrap();
    let committed = values("durable", 0..50);
    write_all(&mut writer, &committed).await;
    let c1 = writer.prepare_commit(1).await.unwrap();
    let state1 = writer.snapshot_state(1);
    writer.committer().commit(&c1).await.unwrap();
    writer.notify_checkpoint_complete(1);
    // Checkpoint 2 is pre-committed but its checkpoint never became durable...
    write_all(&mut writer, &values("not-durable", 0..20)).await;
    let lost = writer.prepare_commit(2).await.unwrap();
    assert_eq!(lost[0].transactional_id, transactional_id(&prefix, 0, 2));
    // ...and checkpoint 3's transaction is open, never prepared, when the process dies.
    write_all(&mut writer, &values("open", 0..20)).await;
    writer.flush().await.unwrap();
    drop(writer);

    // Open transactions pin the LSO: read_committed readers are stuck before them.
    let lso: i64 = admin
        .list_offsets_isolated(&topic, &[], OffsetSpec::Latest, true)
        .await
        .unwrap()
        .iter()
        .map(|o| o.offset)
        .sum();
    assert!(lso < 90, "open transactions must pin the LSO (LSO total {lso})");

    let started = Instant::now();
    let restore = SinkRestore::new(1, vec![], vec![state1]);
    let mut writer = sink.restore_writer(0, 1, &restore).await.unwrap();
    let aborted: Vec<&str> = writer
        .restore_report()
        .aborted
        .iter()
        .map(|(id, _)| id.as_str())
        .collect();
    assert_eq!(
        aborted,
        vec![transactional_id(&prefix, 0, 2), transactional_id(&prefix, 0, 3)],
        "{:?}",
        writer.restore_report()
    );
    assert_eq!(writer.restore_report().probed, 3, "2 and 3 existed, 4 never did");
    wait_no_open_transaction(&admin, &topic, Duration::from_secs(10)).await;
    eprintln!("restore + LSO caught up in {:?}", started.elapsed());
    assert_eq!(sorted_values(&read_settled(&admin, &topic, true).await), committed);

    // The aborted pre-commit can no longer be committed: fenced, reported as finished.
    let outcome = writer.committer().commit(&lost).await.unwrap();
    assert!(
        matches!(outcome[0], CommitOutcome::AlreadyFinished { .. }),
        "{outcome:?}"
    );

    // The writer reuses name 2 (a new epoch) for the replayed checkpoint.
    let replay = values("replayed", 0..20);
    write_all(&mut writer, &replay).await;
    assert_eq!(
        writer.current_transactional_id(),
        Some(transactional_id(&prefix, 0, 2).as_str())
    );
    let c = writer.prepare_commit(2).await.unwrap();
    writer.committer().commit(&c).await.unwrap();
    writer.close().await.unwrap();
    let want = sorted([committed, replay].concat());
    assert_eq!(sorted_values(&read_settled(&admin, &topic, true).await), want);
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_fresh_start_and_downscale_abort_what_earlier_writers_left() {
    init_test_logging();
    let admin = admin().await;
    let topic = create_topic(&admin, "sink-eo-scale", 4).await;
    let prefix = unique_topic("eo-scale");
    let sink = string_sink(&topic, DeliveryGuarantee::ExactlyOnce, Some(&prefix));

    // A run that never completed a checkpoint leaves a transaction open; a fresh writer with
    // the same prefix aborts it (probing from checkpoint 1, as Flink does).
    let mut w = sink.create_writer(0, 2).await.unwrap();
    write_all(&mut w, &values("never-checkpointed", 0..5)).await;
    w.flush().await.unwrap();
    drop(w);
    let w = sink.create_writer(0, 2).await.unwrap();
    assert_eq!(w.restore_report().aborted.len(), 1, "{:?}", w.restore_report());
    w.close().await.unwrap();

    // Two subtasks checkpoint (5), then both die with open transactions.
    let mut states = Vec::new();
    let mut want = Vec::new();
    for subtask in 0..2u32 {
        let mut w = sink.create_writer(subtask, 2).await.unwrap();
        let v = values(&format!("s{subtask}"), 0..10);
        write_all(&mut w, &v).await;
        want.extend(v);
        let c = w.prepare_commit(5).await.unwrap();
        w.committer().commit(&c).await.unwrap();
        states.push(w.snapshot_state(5));
        write_all(&mut w, &values(&format!("open{subtask}"), 0..10)).await;
        w.flush().await.unwrap();
        drop(w);
    }
    // Restored with parallelism 1: subtask 0 owns both old subtasks and aborts both.
    let w = sink
        .restore_writer(0, 1, &SinkRestore::new(5, vec![], states))
        .await
        .unwrap();
    let mut aborted: Vec<String> = w.restore_report().aborted.iter().map(|(id, _)| id.clone()).collect();
    aborted.sort();
    assert_eq!(
        aborted,
        vec![transactional_id(&prefix, 0, 6), transactional_id(&prefix, 1, 6)]
    );
    wait_no_open_transaction(&admin, &topic, Duration::from_secs(10)).await;
    w.close().await.unwrap();
    assert_eq!(sorted_values(&read_settled(&admin, &topic, true).await), sorted(want));
}

#[tokio::test(flavor = "multi_thread")]
async fn transaction_timeout_above_the_broker_maximum_is_refused() {
    let admin = admin().await;
    let topic = create_topic(&admin, "sink-timeout", 1).await;
    let sink = KafkaSink::<String>::builder()
        .bootstrap_servers(&broker().bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic(&topic)
                .value_serializer(StringSerializer)
                .build()
                .unwrap(),
        )
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix(unique_topic("eo-timeout"))
        // The test broker allows 2 h (scripts/kafka); Java's broker default is 15 min.
        .transaction_timeout(Duration::from_secs(3 * 3600))
        .build()
        .unwrap();
    let e = sink.create_writer(0, 1).await.unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("transaction.max.timeout.ms"), "{msg}");
    assert!(msg.contains("10800000"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_missing_sink_topic_is_a_clear_error() {
    let missing = unique_topic("sink-missing");
    let sink = string_sink(&missing, DeliveryGuarantee::AtLeastOnce, None);
    let started = Instant::now();
    let e = sink.create_writer(0, 1).await.unwrap_err();
    assert!(e.to_string().contains(&missing), "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(20), "no max.block.ms wait");

    // A topic selector's topic is checked per record: the write fails, naming it.
    let admin = admin().await;
    let good = create_topic(&admin, "sink-selector", 1).await;
    let (good_c, missing_c) = (good.clone(), missing.clone());
    let sink = KafkaSink::<String>::builder()
        .bootstrap_servers(&broker().bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic_selector(move |s: &String| {
                    if s.starts_with("ok") {
                        good_c.clone()
                    } else {
                        missing_c.clone()
                    }
                })
                .value_serializer(StringSerializer)
                .partitioner(FixedPartitioner)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    let mut w = sink.create_writer(0, 1).await.unwrap();
    w.write(&"ok-1".to_string()).await.unwrap();
    let e = w.write(&"lost-1".to_string()).await.unwrap_err();
    assert!(e.to_string().contains(&missing), "{e}");
    assert!(
        w.prepare_commit(1).await.is_err(),
        "the checkpoint fails after a failed write"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn at_least_once_send_errors_fail_the_checkpoint() {
    init_test_logging();
    let admin = admin().await;
    // The broker refuses batches above 2 KB on this topic: the delivery fails, asynchronously.
    let topic = unique_topic("sink-alo-err");
    admin
        .create_topics(&[NewTopic::new(&topic, 1).config("max.message.bytes", "2048")])
        .await
        .unwrap();
    let sink = string_sink(&topic, DeliveryGuarantee::AtLeastOnce, None);
    let mut w = sink.create_writer(0, 1).await.unwrap();
    write_all(&mut w, &values("fine", 0..10)).await;
    assert!(w.prepare_commit(1).await.unwrap().is_empty());
    w.write(&format!("big-{}", "x".repeat(10_000))).await.unwrap();
    let e = w.prepare_commit(2).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("could not be delivered") || msg.contains("TOO_LARGE"),
        "{msg}"
    );
    assert!(w.metrics().num_records_out_errors() >= 1);
    // The writer stays failed: no later checkpoint can succeed without a restore.
    assert!(w.write(&"after".to_string()).await.is_err());
    assert!(w.prepare_commit(3).await.is_err());

    // Larger than max.request.size: refused when sent, and the checkpoint fails too.
    let sink = KafkaSink::<String>::builder()
        .bootstrap_servers(&broker().bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic(&topic)
                .value_serializer(StringSerializer)
                .build()
                .unwrap(),
        )
        .property("max.request.size", "4096")
        .build()
        .unwrap();
    let mut w = sink.create_writer(0, 1).await.unwrap();
    let e = w.write(&"y".repeat(8192)).await.unwrap_err();
    assert!(e.to_string().contains("max.request.size"), "{e}");
    assert!(w.prepare_commit(1).await.is_err());
    assert_eq!(w.metrics().num_records_out_errors(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn exactly_once_send_error_aborts_the_checkpoint_transaction() {
    init_test_logging();
    let admin = admin().await;
    let topic = unique_topic("sink-eo-err");
    admin
        .create_topics(&[NewTopic::new(&topic, 1).config("max.message.bytes", "2048")])
        .await
        .unwrap();
    let prefix = unique_topic("eo-err");
    let sink = string_sink(&topic, DeliveryGuarantee::ExactlyOnce, Some(&prefix));
    let mut w = sink.create_writer(0, 1).await.unwrap();
    write_all(&mut w, &values("doomed", 0..5)).await;
    w.write(&format!("big-{}", "x".repeat(10_000))).await.unwrap();
    assert!(w.prepare_commit(1).await.is_err());
    assert_eq!(w.metrics().snapshot().transactions_aborted, 1);
    wait_no_open_transaction(&admin, &topic, Duration::from_secs(10)).await;
    assert!(read_now(admin.client(), &topic, true).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn partitioner_selector_and_headers_reach_the_broker() {
    let admin = admin().await;
    let a = create_topic(&admin, "sink-route-a", 3).await;
    let b = create_topic(&admin, "sink-route-b", 3).await;
    let (a_c, b_c) = (a.clone(), b.clone());
    let sink = KafkaSink::<(String, u32)>::builder()
        .bootstrap_servers(&broker().bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic_selector(move |e: &(String, u32)| {
                    if e.1.is_multiple_of(2) {
                        a_c.clone()
                    } else {
                        b_c.clone()
                    }
                })
                .value_serializer(|e: &(String, u32)| Ok(Some(Bytes::from(format!("{}:{}", e.0, e.1)))))
                .headers(|e: &(String, u32)| vec![("n".to_string(), Some(Bytes::from(e.1.to_string())))])
                .partitioner(FixedPartitioner)
                .build()
                .unwrap(),
        )
        .build()
        .unwrap();
    // Subtask 2 of 4 with 3 partitions: FixedPartitioner picks partition 2 % 3 = 2.
    let mut w = sink.create_writer(2, 4).await.unwrap();
    for n in 0..20u32 {
        w.write_with_timestamp(&("e".to_string(), n), Some(1_600_000_000_000 + i64::from(n)))
            .await
            .unwrap();
    }
    w.prepare_commit(1).await.unwrap();
    w.close().await.unwrap();
    for (topic, parity) in [(&a, 0), (&b, 1)] {
        let got = read_settled(&admin, topic, false).await;
        assert_eq!(got.len(), 10);
        for r in &got {
            assert_eq!(r.partition, 2);
            let n: u32 = String::from_utf8(r.headers.get_all(b"n").next().unwrap().unwrap().to_vec())
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(n % 2, parity);
            assert_eq!(r.timestamp, 1_600_000_000_000 + i64::from(n));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn java_console_consumer_reads_exactly_once_output() {
    init_test_logging();
    let admin = admin().await;
    let topic = create_topic(&admin, "sink-eo-java", 2).await;
    let prefix = unique_topic("eo-java");
    let sink = string_sink(&topic, DeliveryGuarantee::ExactlyOnce, Some(&prefix));
    let mut w = sink.create_writer(0, 1).await.unwrap();
    let committed = values("java", 0..60);
    write_all(&mut w, &committed[..30]).await;
    let c1 = w.prepare_commit(1).await.unwrap();
    w.committer().commit(&c1).await.unwrap();
    write_all(&mut w, &committed[30..]).await;
    let c2 = w.prepare_commit(2).await.unwrap();
    w.committer().commit(&c2).await.unwrap();
    // A third checkpoint's records are aborted when the writer closes.
    write_all(&mut w, &values("aborted", 0..25)).await;
    w.flush().await.unwrap();
    w.close().await.unwrap();

    let b = broker();
    let out = run_java_tool(
        b.var("STROM_KAFKA_CONSOLE_CONSUMER_CLASS"),
        &[
            "--bootstrap-server",
            &b.bootstrap,
            "--topic",
            &topic,
            "--from-beginning",
            "--max-messages",
            "60",
            "--timeout-ms",
            "15000",
            "--consumer-property",
            "isolation.level=read_committed",
        ],
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let got: Vec<String> = stdout
        .lines()
        .filter(|l| !l.starts_with("Option --"))
        .map(str::to_owned)
        .collect();
    assert_eq!(
        sorted(got),
        committed,
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        read_now(admin.client(), &topic, false).await.len(),
        85,
        "aborted records are in the log"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_committable_whose_id_the_broker_does_not_know_is_finished_not_fatal() {
    // As after transactional.id.expiration.ms (7 days): the coordinator has no such id.
    // Flink's committer logs it and drops the committable; a restore must not loop on it.
    let admin = admin().await;
    let topic = create_topic(&admin, "sink-commit", 1).await;
    let sink = string_sink(&topic, DeliveryGuarantee::ExactlyOnce, Some(&unique_topic("eo-commit")));
    let committer = sink.create_committer().await.unwrap();
    let unknown = KafkaCommittable {
        transactional_id: unique_topic("never-used"),
        producer_id: 123_456_789,
        epoch: 3,
        transaction_version: 2,
    };
    assert_eq!(
        committer.commit_one(&unknown).await.unwrap(),
        CommitOutcome::AlreadyFinished {
            code: ErrorCode::InvalidProducerIdMapping
        }
    );
    // The same through a restore: it does not fail the restore.
    let w = sink
        .restore_writer(0, 1, &SinkRestore::new(3, vec![unknown.clone()], vec![]))
        .await
        .unwrap();
    assert_eq!(w.restore_report().committed, vec![unknown.transactional_id.clone()]);
}

/// `write_timestamp_to_kafka` (the legacy producer's `setWriteTimestampToKafka`): by default
/// a record carries the element's timestamp; with false the producer stamps the send time.
#[tokio::test]
async fn write_timestamp_to_kafka_false_leaves_the_timestamp_to_the_producer() {
    let admin = admin().await;
    let topic = create_topic(&admin, "sink-ts", 1).await;
    let sink = |write: bool| {
        KafkaSink::<String>::builder()
            .bootstrap_servers(&broker().bootstrap)
            .record_serializer(
                KafkaRecordSerializationSchema::builder()
                    .topic(&topic)
                    .value_serializer(StringSerializer)
                    .build()
                    .unwrap(),
            )
            .write_timestamp_to_kafka(write)
            .build()
            .unwrap()
    };
    let element_time = 1_000_000_000_000; // 2001
    for write in [true, false] {
        let mut w = sink(write).create_writer(0, 1).await.unwrap();
        w.write_with_timestamp(&format!("written-{write}"), Some(element_time))
            .await
            .unwrap();
        w.flush().await.unwrap();
        w.close().await.unwrap();
    }
    let records = read_now(admin.client(), &topic, false).await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].timestamp, element_time, "the element's timestamp by default");
    assert!(
        records[1].timestamp > element_time + 365 * 24 * 3600 * 1000,
        "the send time with write_timestamp_to_kafka(false): {}",
        records[1].timestamp
    );
}

/// The legacy producer's `setLogFailuresOnly`: a record the broker refuses (larger than the
/// topic's `max.message.bytes`) is logged and counted and the run goes on, the other records
/// arrive; without it the writer fails with an error naming the topic.
#[tokio::test(flavor = "multi_thread")]
async fn log_failures_only_drops_refused_records_and_goes_on() {
    init_test_logging();
    let admin = admin().await;
    let topic = unique_topic("sink-logonly");
    admin
        .create_topics(&[NewTopic::new(&topic, 1).config("max.message.bytes", "1024")])
        .await
        .unwrap();
    let big = "x".repeat(4096);
    let sink = |log_only: bool| {
        KafkaSink::<String>::builder()
            .bootstrap_servers(&broker().bootstrap)
            .record_serializer(
                KafkaRecordSerializationSchema::builder()
                    .topic(&topic)
                    .value_serializer(StringSerializer)
                    .build()
                    .unwrap(),
            )
            .delivery_guarantee(DeliveryGuarantee::None)
            .set_log_failures_only(log_only)
            .build()
            .unwrap()
    };

    // Each write flushed on its own, so the big record is alone in its batch.
    let mut writer = sink(true).create_writer(0, 1).await.unwrap();
    for v in ["a", "b", big.as_str(), "c", "d"] {
        writer.write(&v.to_owned()).await.unwrap();
        writer.flush().await.unwrap();
    }
    assert!(writer.prepare_commit(1).await.unwrap().is_empty());
    let m = writer.metrics().snapshot();
    assert_eq!((m.num_records_out, m.num_records_out_errors), (5, 1), "{m:?}");
    assert!(writer.failure().is_none());
    writer.close().await.unwrap();
    assert_eq!(
        sorted_values(&read_now(admin.client(), &topic, false).await),
        ["a", "b", "c", "d"]
    );

    // Without it, the refused record fails the writer, and the error names the topic.
    let mut writer = sink(false).create_writer(0, 1).await.unwrap();
    writer.write(&"e".to_owned()).await.unwrap();
    writer.flush().await.unwrap();
    writer.write(&big).await.unwrap();
    let e = writer.flush().await.unwrap_err();
    assert!(e.to_string().contains(&topic), "{e}");
    assert!(writer.failure().is_some());
    let e = writer.write(&"f".to_owned()).await.unwrap_err();
    assert!(e.to_string().contains("failed earlier"), "{e}");
    assert_eq!(writer.metrics().num_records_out_errors(), 1);
}

/// The seed's caveat, shown: a writer down longer than its transaction timeout loses the
/// records of the checkpoint whose transaction was pre-committed but not yet committed (the
/// broker aborted it meanwhile). The restore finishes without an error, the rest is
/// written once, and exactly that checkpoint's records are missing.
#[tokio::test(flavor = "multi_thread")]
async fn down_longer_than_the_transaction_timeout_loses_that_checkpoints_records() {
    init_test_logging();
    let admin = admin().await;
    let topic = create_topic(&admin, "sink-eo-timed-out", 2).await;
    let prefix = unique_topic("eo-timed-out");
    let sink = KafkaSink::<String>::builder()
        .bootstrap_servers(&broker().bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic(&topic)
                .value_serializer(StringSerializer)
                .build()
                .unwrap(),
        )
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix(&prefix)
        // The broker aborts a transaction open longer than this (scripts/kafka's broker checks
        // every second).
        .transaction_timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut writer = sink.create_writer(0, 1).await.unwrap();
    let lost = values("pending", 0..100);
    write_all(&mut writer, &lost).await;
    let pending = writer.prepare_commit(1).await.unwrap();
    let restore = SinkRestore::new(1, pending, vec![writer.snapshot_state(1)]);
    // The checkpoint is durable; the process dies before committing and stays down.
    drop(writer);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut writer = sink.restore_writer(0, 1, &restore).await.unwrap();
    let after = values("after", 0..50);
    write_all(&mut writer, &after).await;
    let c = writer.prepare_commit(2).await.unwrap();
    writer.committer().commit(&c).await.unwrap();
    writer.close().await.unwrap();
    assert_eq!(
        sorted_values(&read_settled(&admin, &topic, true).await),
        after,
        "checkpoint 1's records are lost, the rest written once"
    );
}
