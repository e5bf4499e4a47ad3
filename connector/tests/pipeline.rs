//! The source reader and the pipeline against the real broker: every delivery guarantee on
//! a bounded topic, restore resuming exactly at the checkpoint (after an injected crash at
//! each checkpoint stage), partition and topic discovery while running, split ownership
//! across parallelism 1..4, undeserializable input (skipped or failing with its position),
//! read_committed readers unblocked after recovery, the reader's positions, watermarks and
//! offset commits, and process functions with record metadata, event time and watermarks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, ConsumerRecord, IsolationLevel, NewTopic, OffsetSpec, Producer,
    ProducerConfig, ProducerRecord, TopicPartition as ClientTp, TransactionalProducer,
};
use strom_connector::checkpoint::{CheckpointStore, CheckpointStoreExt, MemoryCheckpointStore};
use strom_connector::pipeline::{CrashAction, CrashAt, CrashStage, Pipeline, PipelineCheckpoint, PipelineEnd};
use strom_connector::process::{Collector, ProcessContext};
use strom_connector::sink::{
    DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, KafkaSinkContext, StringSerializer,
};
use strom_connector::source::{
    deserializer, split_owner, KafkaSource, KafkaSourceBuilder, OffsetsInitializer, SourceReader, SourceRecord,
    TopicPartition, WatermarkEvent, WatermarkStrategy,
};
use strom_connector::ConnectorError;
use strom_integration_tests::{broker, init_test_logging, unique_topic, wait_no_open_transaction};

async fn admin() -> Admin {
    init_test_logging();
    Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap()
}

async fn create_topic(admin: &Admin, prefix: &str, partitions: i32) -> String {
    let topic = unique_topic(prefix);
    admin
        .create_topics(&[NewTopic::new(&topic, partitions).replication_factor(1)])
        .await
        .unwrap();
    topic
}

/// Writes `values` round-robin over `partitions` partitions (value i to partition i % n).
async fn produce(topic: &str, partitions: i32, values: &[String]) {
    let mut cfg = ProducerConfig::new(&broker().bootstrap);
    cfg.set("linger.ms", "5").unwrap();
    let p = Producer::new(cfg).await.unwrap();
    let mut pending = Vec::new();
    for (i, v) in values.iter().enumerate() {
        let part = i32::try_from(i).unwrap() % partitions;
        pending.push(
            p.send(ProducerRecord::new(topic, Bytes::from(v.clone())).partition(part))
                .await
                .unwrap(),
        );
    }
    for d in pending {
        d.wait().await.unwrap();
    }
    p.close().await.unwrap();
}

fn values(tag: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{tag}-{i:06}")).collect()
}

fn source_builder(topic: &str) -> KafkaSourceBuilder<String> {
    KafkaSource::builder()
        .bootstrap_servers(&broker().bootstrap)
        .topics([topic])
        .isolation_level(IsolationLevel::ReadCommitted)
        .deserializer(deserializer::string())
}

fn bounded_source(topic: &str) -> KafkaSource<String> {
    source_builder(topic)
        .bounded(OffsetsInitializer::latest())
        .build()
        .unwrap()
}

fn sink(topic: &str, guarantee: DeliveryGuarantee, prefix: &str) -> KafkaSink<String> {
    let mut b = KafkaSink::<String>::builder()
        .bootstrap_servers(&broker().bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic(topic)
                .value_serializer(StringSerializer)
                .build()
                .unwrap(),
        )
        .delivery_guarantee(guarantee)
        .property("linger.ms", "5");
    if guarantee == DeliveryGuarantee::ExactlyOnce {
        b = b.transactional_id_prefix(prefix);
    }
    b.build().unwrap()
}

/// Every value of `topic` with Strom's consumer (assign mode, read_committed or not), up to
/// the end offsets seen at the start (the LSO under read_committed).
async fn read_values(topic: &str, read_committed: bool) -> Vec<String> {
    read_records(topic, read_committed)
        .await
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect()
}

/// [`read_values`], whole records.
async fn read_records(topic: &str, read_committed: bool) -> Vec<ConsumerRecord> {
    let mut cfg = ConsumerConfig::new(&broker().bootstrap);
    cfg.isolation_level = if read_committed {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let mut c = Consumer::new(cfg).await.unwrap();
    let parts = c.client().topic(topic).await.unwrap().partitions.len();
    let tps: Vec<ClientTp> = (0..i32::try_from(parts).unwrap())
        .map(|p| ClientTp::new(topic, p))
        .collect();
    c.assign(tps.clone()).unwrap();
    c.seek_to_beginning(&[]).unwrap();
    let end = c.end_offsets(&tps).await.unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut done = true;
        for tp in &tps {
            if c.position(tp).await.unwrap() < end[tp] {
                done = false;
            }
        }
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "reading {topic} did not reach {end:?}");
        out.extend(c.poll(Duration::from_millis(200)).await.unwrap());
    }
    out
}

async fn read_settled(admin: &Admin, topic: &str) -> Vec<String> {
    wait_no_open_transaction(admin, topic, Duration::from_secs(30)).await;
    read_values(topic, true).await
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

/// Every expected value exactly once: (missing, duplicated, unexpected).
fn diff(expected: &[String], got: &[String]) -> (usize, usize, usize) {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for g in got {
        *counts.entry(g).or_default() += 1;
    }
    let exp: BTreeSet<&str> = expected.iter().map(String::as_str).collect();
    let missing = exp.iter().filter(|e| !counts.contains_key(*e)).count();
    let dups = counts.values().map(|c| c.saturating_sub(1)).sum();
    let unexpected = counts.keys().filter(|k| !exp.contains(*k)).count();
    (missing, dups, unexpected)
}

fn transform(v: &str) -> Vec<String> {
    if v.ends_with('7') {
        return Vec::new();
    }
    let up = v.to_uppercase();
    if v.ends_with('5') {
        vec![format!("{up}-A"), format!("{up}-B")]
    } else {
        vec![up]
    }
}

async fn copy_bounded(guarantee: DeliveryGuarantee) {
    let admin = admin().await;
    let input = create_topic(&admin, "pipe-in", 3).await;
    let output = create_topic(&admin, "pipe-out", 3).await;
    let sent = values("v", 3000);
    produce(&input, 3, &sent).await;
    let expected: Vec<String> = sent.iter().flat_map(|v| transform(v)).collect();

    let store = Arc::new(MemoryCheckpointStore::new());
    // The run without a delivery guarantee also checks `register.consumer.metrics=false`.
    let register = guarantee != DeliveryGuarantee::None;
    let source = source_builder(&input).property("register.consumer.metrics", register.to_string());
    let pipeline = Pipeline::new(
        source.bounded(OffsetsInitializer::latest()).build().unwrap(),
        sink(&output, guarantee, &output),
    )
    .filter(|s: &String| !s.ends_with('7'))
    .map(|s: String| s.to_uppercase())
    .flat_map(|s: String| {
        if s.ends_with('5') {
            vec![format!("{s}-A"), format!("{s}-B")]
        } else {
            vec![s]
        }
    })
    .checkpoint_interval(Duration::from_millis(200))
    .checkpoint_store_shared(store.clone());
    let metrics = pipeline.metrics();
    let started = Instant::now();
    let summary = pipeline.run().await.unwrap();
    assert_eq!(summary.end, PipelineEnd::EndOfInput);
    assert_eq!(summary.records_in, 3000);
    assert_eq!(summary.records_out, expected.len() as u64);
    assert!(summary.checkpoints >= 1);
    assert_eq!(summary.restored_from, None);
    assert!(started.elapsed() < Duration::from_secs(60));

    let got = if guarantee == DeliveryGuarantee::ExactlyOnce {
        read_settled(&admin, &output).await
    } else {
        read_values(&output, false).await
    };
    assert_eq!(sorted(got), sorted(expected.clone()), "{guarantee}");

    let m = metrics.snapshot();
    assert_eq!(m.get("numRecordsIn"), Some(3000));
    assert_eq!(m.get("numRecordsOut"), Some(expected.len() as i64));
    assert_eq!(m.get("KafkaSink.numRecordsOut"), Some(expected.len() as i64));
    // The producers' own metrics, as the seed's producers export Kafka's internal metrics.
    let sent_total = m.get("KafkaSink.KafkaProducer.record-send-total");
    assert_eq!(sent_total, Some(expected.len() as i64), "{guarantee}");
    assert_eq!(
        m.get("KafkaSink.KafkaProducer.record-error-total"),
        Some(0),
        "{guarantee}"
    );
    assert_eq!(
        m.get("numberOfCompletedCheckpoints"),
        Some(i64::try_from(summary.checkpoints).unwrap())
    );
    assert!(m.get("lastCheckpointDuration").is_some());
    for p in 0..3 {
        assert_eq!(
            m.get(&format!("KafkaSourceReader.topic.{input}.partition.{p}.currentOffset")),
            Some(999),
            "{m:?}"
        );
    }
    assert_eq!(
        m.get("KafkaSourceReader.commitsSucceeded"),
        Some(0),
        "no group id: no commits"
    );
    assert_eq!(m.get("pendingRecords"), Some(0), "all read");
    let consumer_metric = m.get("KafkaSourceReader.KafkaConsumer.records-consumed-total");
    assert_eq!(
        consumer_metric,
        register.then_some(3000),
        "register.consumer.metrics={register}"
    );
    assert!(!m.running);

    // The final checkpoint holds no split (all finished) and the last totals.
    let (id, c) = store.latest_json::<PipelineCheckpoint>().unwrap().unwrap();
    assert_eq!(id, summary.last_checkpoint_id);
    assert!(c.source_splits.is_empty(), "{c:?}");
    assert!(c.enumerator.initial_discovery_finished);
    assert_eq!((c.records_in, c.records_out), (3000, expected.len() as u64));

    // A restart after the end restores, finds nothing to do, and writes nothing.
    let again = Pipeline::new(bounded_source(&input), sink(&output, guarantee, &output))
        .checkpoint_store_shared(store.clone())
        .run()
        .await
        .unwrap();
    assert_eq!((again.records_in, again.restored_from), (0, Some(id)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_copy_with_delivery_none() {
    copy_bounded(DeliveryGuarantee::None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_copy_at_least_once() {
    copy_bounded(DeliveryGuarantee::AtLeastOnce).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounded_copy_exactly_once() {
    copy_bounded(DeliveryGuarantee::ExactlyOnce).await;
}

/// A map that sleeps 1 ms every `every` records, so checkpoints happen mid-input.
fn slow_upper(every: u64) -> impl FnMut(String) -> String + Send + 'static {
    let mut n = 0u64;
    move |s: String| {
        n += 1;
        if n.is_multiple_of(every) {
            std::thread::sleep(Duration::from_millis(1));
        }
        s.to_uppercase()
    }
}

/// Crashes (in process: the run returns at once, nothing closed) at each checkpoint stage in
/// turn, restarting from the store each time; every restart resumes exactly at the
/// restored checkpoint's positions, and the output is exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restore_resumes_exactly_after_a_crash_at_each_stage() {
    let admin = admin().await;
    let input = create_topic(&admin, "pipe-restore-in", 3).await;
    let output = create_topic(&admin, "pipe-restore-out", 2).await;
    let sent = values("r", 6000);
    produce(&input, 3, &sent).await;
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let build = || {
        Pipeline::new(
            bounded_source(&input),
            sink(&output, DeliveryGuarantee::ExactlyOnce, &output),
        )
        .map(slow_upper(5))
        .checkpoint_interval(Duration::from_millis(100))
        .checkpoint_store_shared(store.clone())
    };
    let mut total_in = 0u64;
    for point in [
        "records:+500",
        "before-precommit:+2",
        "after-precommit:+2",
        "after-store:+2",
        "during-commit:+2",
        "after-commit:+2",
        "records:+300",
    ] {
        let before: Option<(u64, PipelineCheckpoint)> = store.latest_json().unwrap();
        let at: CrashAt = point.parse().unwrap();
        let p = build().crash_at(at, CrashAction::Fail);
        let metrics = p.metrics();
        let e = p.run().await.unwrap_err();
        assert!(e.to_string().contains("crash injected"), "{point}: {e}");
        let m = metrics.snapshot();
        assert_eq!(m.restored_checkpoint_id, before.as_ref().map(|(id, _)| *id), "{point}");
        // The checkpoint of the crash stage is stored exactly when it should be.
        let before_id = before.as_ref().map_or(0, |(id, _)| *id);
        let after: Option<(u64, PipelineCheckpoint)> = store.latest_json().unwrap();
        let after_id = after.as_ref().map_or(0, |(id, _)| *id);
        match at.stage {
            CrashStage::BeforePreCommit | CrashStage::AfterPreCommit => assert_eq!(after_id, before_id + 1, "{point}"),
            CrashStage::AfterStore | CrashStage::DuringCommit | CrashStage::AfterCommit => {
                assert_eq!(after_id, before_id + 2, "{point}")
            }
            CrashStage::Records => assert!(after_id >= before_id, "{point}"),
        }
        let in_at = |c: &Option<(u64, PipelineCheckpoint)>| c.as_ref().map_or(0, |(_, c)| c.records_in);
        assert!(in_at(&after) >= in_at(&before), "{point}");
        total_in += m.records_in;
    }
    let p = build();
    let metrics = p.metrics();
    let (restored_id, restored) = store.latest_json::<PipelineCheckpoint>().unwrap().unwrap();
    let summary = p.run().await.unwrap();
    assert_eq!(summary.restored_from, Some(restored_id));
    // The last run read exactly what the restored checkpoint had not.
    assert_eq!(summary.records_in, 6000 - restored.records_in);
    assert_eq!(metrics.snapshot().records_in, summary.records_in);
    assert!(total_in > 0);
    let got = read_settled(&admin, &output).await;
    let expected: Vec<String> = sent.iter().map(|s| s.to_uppercase()).collect();
    let (missing, dups, unexpected) = diff(&expected, &got);
    assert_eq!((missing, dups, unexpected), (0, 0, 0), "exactly once");
    assert_eq!(got.len(), 6000);
}

/// Polls `pred` every 100 ms until it holds, failing after `within`.
async fn eventually<F, Fut>(what: &str, within: Duration, mut pred: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !pred().await {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Partitions added to a topic and a new topic matching the pattern are discovered while
/// the pipeline runs, and their records flow (from the earliest offset), exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn discovery_adds_partitions_and_topics_while_running() {
    let admin = admin().await;
    let base = unique_topic("pipe-disc");
    let first = format!("{base}-a");
    admin
        .create_topics(&[NewTopic::new(&first, 1).replication_factor(1)])
        .await
        .unwrap();
    let output = create_topic(&admin, "pipe-disc-out", 2).await;
    let batch1 = values("one", 100);
    produce(&first, 1, &batch1).await;

    let source = KafkaSource::builder()
        .bootstrap_servers(&broker().bootstrap)
        .topic_pattern(format!("{}-.*", regex_escape(&base)))
        .isolation_level(IsolationLevel::ReadCommitted)
        .partition_discovery_interval(Duration::from_millis(300))
        .deserializer(deserializer::string())
        .build()
        .unwrap();
    let pipeline = Pipeline::new(source, sink(&output, DeliveryGuarantee::ExactlyOnce, &output))
        .map(|s: String| s.to_uppercase())
        .checkpoint_interval(Duration::from_millis(200));
    let metrics = pipeline.metrics();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(pipeline.run_until(async move {
        let _ = stop_rx.await;
    }));

    let out = output.clone();
    eventually("the first partition's records", Duration::from_secs(30), || {
        let out = out.clone();
        async move { read_values(&out, true).await.len() == 100 }
    })
    .await;

    // Two partitions more on the first topic, and a second topic matching the pattern.
    admin.create_partitions(&first, 3).await.unwrap();
    let second = format!("{base}-b");
    admin
        .create_topics(&[NewTopic::new(&second, 2).replication_factor(1)])
        .await
        .unwrap();
    let batch2 = values("two", 300);
    // Values 0, 3, 6... go to partition 0; the others to the new partitions 1 and 2.
    produce(&first, 3, &batch2).await;
    let batch3 = values("three", 100);
    produce(&second, 2, &batch3).await;
    let out = output.clone();
    eventually(
        "records of discovered partitions and topics",
        Duration::from_secs(30),
        || {
            let out = out.clone();
            async move { read_values(&out, true).await.len() >= 500 }
        },
    )
    .await;
    stop_tx.send(()).unwrap();
    let summary = tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(summary.end, PipelineEnd::Stopped);
    assert_eq!(summary.records_in, 500);
    let expected: Vec<String> = batch1
        .iter()
        .chain(&batch2)
        .chain(&batch3)
        .map(|s| s.to_uppercase())
        .collect();
    let got = read_settled(&admin, &output).await;
    assert_eq!(sorted(got), sorted(expected));
    let m = metrics.snapshot();
    assert_eq!(m.source.current_offsets.len(), 5, "{:?}", m.source.current_offsets);
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

/// N pipelines (subtask i of N) on one topic: each reads exactly the partitions Flink's
/// owner formula gives it, and the union of their outputs is the input exactly once, for
/// N = 1..4.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_ownership_across_parallelism_one_to_four() {
    let admin = admin().await;
    let input = create_topic(&admin, "pipe-own-in", 7).await;
    let sent = values("o", 700);
    produce(&input, 7, &sent).await;
    let expected: Vec<String> = sent.iter().map(|s| s.to_uppercase()).collect();
    for parallelism in 1..=4usize {
        let output = create_topic(&admin, &format!("pipe-own-out{parallelism}"), 3).await;
        let mut runs = Vec::new();
        for subtask in 0..parallelism {
            let p = Pipeline::new(
                bounded_source(&input),
                sink(&output, DeliveryGuarantee::ExactlyOnce, &output),
            )
            .map(|s: String| s.to_uppercase())
            .checkpoint_interval(Duration::from_millis(300))
            .subtask(subtask, parallelism);
            let metrics = p.metrics();
            runs.push((subtask, metrics, tokio::spawn(p.run())));
        }
        let mut total = 0;
        for (subtask, metrics, task) in runs {
            let summary = task.await.unwrap().unwrap();
            total += summary.records_in;
            let read: BTreeSet<i32> = metrics
                .snapshot()
                .source
                .current_offsets
                .keys()
                .map(|tp| tp.partition)
                .collect();
            let owned: BTreeSet<i32> = (0..7)
                .filter(|p| split_owner(&input, *p, parallelism) == subtask)
                .collect();
            assert_eq!(read, owned, "subtask {subtask} of {parallelism}");
            assert_eq!(summary.records_in, owned.len() as u64 * 100);
        }
        assert_eq!(total, 700);
        let got = read_settled(&admin, &output).await;
        assert_eq!(sorted(got), sorted(expected.clone()), "parallelism {parallelism}");
    }
}

async fn produce_with_bad_record(topic: &str) -> i64 {
    let p = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    for i in 0..10 {
        let v: Bytes = if i == 6 {
            Bytes::from_static(b"\xff\xfe not utf-8")
        } else {
            Bytes::from(format!("good-{i}"))
        };
        p.send(ProducerRecord::new(topic, v).partition(1))
            .await
            .unwrap()
            .wait()
            .await
            .unwrap();
    }
    p.close().await.unwrap();
    6
}

/// An undeserializable record: skipped when the deserializer says so (`Ok(None)`), else the
/// run fails with an error naming topic, partition and offset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undeserializable_input_is_skipped_or_fails_naming_its_position() {
    let admin = admin().await;
    let input = create_topic(&admin, "pipe-bad-in", 2).await;
    let output = create_topic(&admin, "pipe-bad-out", 1).await;
    let bad_offset = produce_with_bad_record(&input).await;

    // Skipping deserializer.
    let lenient = |r: &SourceRecord<'_>| -> strom_connector::Result<Option<String>> {
        Ok(r.value.and_then(|v| std::str::from_utf8(v).ok()).map(str::to_owned))
    };
    let source = KafkaSource::builder()
        .bootstrap_servers(&broker().bootstrap)
        .topics([&input])
        .bounded(OffsetsInitializer::latest())
        .deserializer(lenient)
        .build()
        .unwrap();
    let p = Pipeline::new(source, sink(&output, DeliveryGuarantee::AtLeastOnce, &output));
    let metrics = p.metrics();
    let summary = p.run().await.unwrap();
    assert_eq!((summary.records_in, summary.records_out), (9, 9));
    assert_eq!(metrics.snapshot().source.num_records_skipped, 1);
    assert_eq!(read_values(&output, false).await.len(), 9);

    // Failing deserializer (the string deserializer rejects invalid UTF-8).
    let p = Pipeline::new(
        bounded_source(&input),
        sink(&output, DeliveryGuarantee::AtLeastOnce, &output),
    );
    match p.run().await.unwrap_err() {
        ConnectorError::Deserialize {
            topic,
            partition,
            offset,
            reason,
        } => {
            assert_eq!((topic.as_str(), partition, offset), (input.as_str(), 1, bad_offset));
            assert!(reason.contains("utf-8"), "{reason}");
        }
        e => panic!("expected a deserialize error, got {e}"),
    }

    // A user function error fails the run as ConnectorError::User.
    let p = Pipeline::new(
        bounded_source(&create_topic_with(&admin, "pipe-bad-user", &values("u", 5)).await),
        sink(&output, DeliveryGuarantee::AtLeastOnce, &output),
    )
    .try_map(|s: String| {
        if s.ends_with('3') {
            Err(format!("cannot handle {s}"))
        } else {
            Ok(s)
        }
    });
    let e = p.run().await.unwrap_err();
    assert!(
        matches!(&e, ConnectorError::User(m) if m == "cannot handle u-000003"),
        "{e}"
    );

    // A sink topic that does not exist: a clear error before anything is read.
    let missing = unique_topic("pipe-no-such-topic");
    let e = Pipeline::new(
        bounded_source(&input),
        sink(&missing, DeliveryGuarantee::AtLeastOnce, "x"),
    )
    .run()
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains(&missing) && e.contains("does not exist"), "{e}");
}

async fn create_topic_with(admin: &Admin, prefix: &str, vals: &[String]) -> String {
    let t = create_topic(admin, prefix, 1).await;
    produce(&t, 1, vals).await;
    t
}

/// After a crash that leaves a pre-committed transaction open (the output's LSO pinned),
/// the restarted pipeline aborts it while restoring: a read_committed reader downstream
/// reads past it within one checkpoint interval of the recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_committed_reader_unblocked_within_one_interval_after_recovery() {
    let admin = admin().await;
    let input = create_topic(&admin, "pipe-lso-in", 2).await;
    let output = create_topic(&admin, "pipe-lso-out", 2).await;
    let sent = values("l", 3000);
    produce(&input, 2, &sent).await;
    let interval = Duration::from_secs(1);
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryCheckpointStore::new());
    let source = || source_builder(&input).build().unwrap(); // unbounded
    let first = Pipeline::new(source(), sink(&output, DeliveryGuarantee::ExactlyOnce, &output))
        .map(slow_upper(2))
        .checkpoint_interval(interval)
        .checkpoint_store_shared(store.clone())
        .crash_at("after-precommit:+1".parse().unwrap(), CrashAction::Fail);
    assert!(first.run().await.unwrap_err().to_string().contains("crash injected"));
    let lso = |admin: Admin, topic: String| async move {
        admin
            .list_offsets_isolated(&topic, &[], OffsetSpec::Latest, true)
            .await
            .unwrap()
            .iter()
            .map(|o| o.offset)
            .sum::<i64>()
    };
    let hwm: i64 = admin
        .list_offsets(&output, &[], OffsetSpec::Latest)
        .await
        .unwrap()
        .iter()
        .map(|o| o.offset)
        .sum();
    assert!(hwm > 0);
    assert!(
        lso(admin.clone(), output.clone()).await < hwm,
        "the pre-committed transaction pins the LSO"
    );

    let second = Pipeline::new(source(), sink(&output, DeliveryGuarantee::ExactlyOnce, &output))
        .map(|s: String| s.to_uppercase())
        .checkpoint_interval(interval)
        .checkpoint_store_shared(store.clone());
    let metrics = second.metrics();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let started = Instant::now();
    let task = tokio::spawn(second.run_until(async move {
        let _ = stop_rx.await;
    }));
    eventually("the restarted pipeline running", Duration::from_secs(30), || {
        let m = metrics.clone();
        async move { m.snapshot().running }
    })
    .await;
    let recovered = Instant::now();
    eventually("the LSO past the lingering transaction", interval, || {
        let (a, t) = (admin.clone(), output.clone());
        async move { lso(a, t).await >= hwm }
    })
    .await;
    println!(
        "restart to running: {:?}; running to LSO free: {:?}",
        recovered - started,
        recovered.elapsed()
    );
    let out = output.clone();
    eventually("every record", Duration::from_secs(60), || {
        let out = out.clone();
        async move { read_values(&out, true).await.len() >= 3000 }
    })
    .await;
    stop_tx.send(()).unwrap();
    task.await.unwrap().unwrap();
    let got = read_settled(&admin, &output).await;
    let expected: Vec<String> = sent.iter().map(|s| s.to_uppercase()).collect();
    assert_eq!(diff(&expected, &got), (0, 0, 0));
}

async fn reader_for(source: &KafkaSource<String>, strategy: WatermarkStrategy<String>) -> SourceReader<String> {
    SourceReader::with_options(source, 0, strategy, Default::default())
        .await
        .unwrap()
}

/// Reads until `n` elements arrived or the reader finished (bounded in time).
async fn read_n(reader: &mut SourceReader<String>, n: usize) -> Vec<(i32, i64, String, i64)> {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < n && !reader.is_finished() {
        assert!(Instant::now() < deadline, "read {} of {n}", out.len());
        for e in reader.poll(Duration::from_millis(100)).await.unwrap() {
            out.push((e.partition, e.offset, e.value, e.timestamp));
        }
    }
    out
}

/// Under read_committed, a bounded split whose last records are transaction markers and an
/// aborted transaction finishes (positions, not record offsets); the aborted records never
/// show.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_finishes_splits_ending_in_markers_under_read_committed() {
    let admin = admin().await;
    let topic = create_topic(&admin, "reader-txn", 1).await;
    let mut cfg = ProducerConfig::new(&broker().bootstrap);
    cfg.transactional_id = Some(format!("{topic}-txn"));
    let p = TransactionalProducer::new(cfg).await.unwrap();
    p.init_transactions().await.unwrap();
    for (n, commit) in [(5, true), (3, false), (2, true)] {
        p.begin_transaction().await.unwrap();
        for i in 0..n {
            // Inside a transaction: a failed record fails the commit.
            let _delivery = p
                .send(ProducerRecord::new(&topic, Bytes::from(format!("{commit}-{i}"))))
                .await
                .unwrap();
        }
        // Flushed, so even the aborted records are in the log, with their marker.
        p.flush().await.unwrap();
        if commit {
            p.commit_transaction().await.unwrap();
        } else {
            p.abort_transaction().await.unwrap();
        }
    }
    let source = bounded_source(&topic);
    let mut enumerator = source.create_enumerator(0, 1).await.unwrap();
    let splits = enumerator.discover().await.unwrap().new_splits;
    assert_eq!(splits[0].stopping_offset, Some(13), "5+1, 3+1, 2+1 with markers");
    let mut reader = reader_for(&source, WatermarkStrategy::no_watermarks()).await;
    reader.add_splits(splits).await.unwrap();
    reader.notify_no_more_splits();
    let got = tokio::time::timeout(Duration::from_secs(30), read_n(&mut reader, usize::MAX))
        .await
        .expect("the split must finish although its last offset is a marker");
    let vals: Vec<&str> = got.iter().map(|g| g.2.as_str()).collect();
    assert_eq!(
        vals,
        ["true-0", "true-1", "true-2", "true-3", "true-4", "true-0", "true-1"]
    );
    assert!(reader.is_finished());
    assert_eq!(reader.finished_splits(), 1);
    assert!(reader.snapshot_state(1).unwrap().is_empty());
    reader.close().await.unwrap();
}

/// A snapshot taken mid-read, restored into a new reader, resumes exactly: no record twice,
/// none missing. Event time comes from the assigner when there is one, and watermarks are the
/// minimum over the active splits, an idle split excluded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_snapshot_restore_event_time_and_watermarks() {
    let admin = admin().await;
    let topic = create_topic(&admin, "reader-wm", 3).await;
    // p0: ts 1000.., p1: ts 5000.. (100 records each); p2 stays empty.
    let p = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    for part in 0..2i32 {
        for i in 0..100i64 {
            let ts = 1000 + 4000 * i64::from(part) + i;
            p.send(
                ProducerRecord::new(&topic, Bytes::from(format!("{part}:{i}")))
                    .partition(part)
                    .timestamp(ts),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
    }
    p.flush().await.unwrap();
    // Unbounded; small polls so that a snapshot can be taken mid-read.
    let source = source_builder(&topic)
        .property("max.poll.records", "30")
        .build()
        .unwrap();
    let mut enumerator = source.create_enumerator(0, 1).await.unwrap();
    let splits = enumerator.discover().await.unwrap().new_splits;
    assert_eq!(splits.len(), 3);

    let strategy = WatermarkStrategy::for_bounded_out_of_orderness(Duration::from_millis(10))
        .with_idleness(Duration::from_secs(1));
    let mut a = reader_for(&source, strategy.clone()).await;
    a.add_splits(splits).await.unwrap();
    let first = read_n(&mut a, 80).await;
    assert!(first.len() < 100, "{}", first.len());
    let state = a.snapshot_state(1).unwrap();
    assert_eq!(state.len(), 3);
    let taken: i64 = state.iter().map(|s| s.starting_offset).sum();
    assert_eq!(taken, first.len() as i64, "positions = records emitted: {state:?}");
    for (part, off, v, ts) in &first {
        assert_eq!(
            *ts,
            1000 + 4000 * i64::from(*part) + off,
            "event time = record timestamp"
        );
        assert_eq!(v, &format!("{part}:{off}"));
    }
    // The empty p2 holds the watermark back until it is idle.
    assert_eq!(a.emit_watermark(Instant::now()), None);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // p0 and p1 get records again (both have some left); p2 stays idle and is left out.
    let second = read_n(&mut a, 200 - first.len()).await;
    assert_eq!(second.len(), 200 - first.len());
    let ev = a.emit_watermark(Instant::now());
    assert_eq!(
        ev,
        Some(WatermarkEvent::Watermark(1099 - 10 - 1)),
        "min(1099, 5099) - 10 - 1"
    );
    assert_eq!(a.metrics().snapshot().watermark, Some(1088));
    drop(a);

    // Restore into a new reader, with a timestamp assigner.
    let assigned = WatermarkStrategy::no_watermarks()
        .with_timestamp_assigner(|v: &String, _ts| v.split(':').nth(1).unwrap().parse::<i64>().unwrap());
    let mut b = reader_for(&source, assigned).await;
    b.add_splits(state).await.unwrap();
    let rest = read_n(&mut b, 200 - first.len()).await;
    for (_, off, _, ts) in &rest {
        assert_eq!(ts, off, "event time from the assigner");
    }
    let mut all: Vec<(i32, i64)> = first.iter().chain(&rest).map(|r| (r.0, r.1)).collect();
    all.sort();
    let want: Vec<(i32, i64)> = (0..2).flat_map(|p| (0..100).map(move |o| (p, o))).collect();
    assert_eq!(all, want, "each record exactly once across the restore");
    b.close().await.unwrap();
}

/// With a group id, completing a checkpoint commits its offsets to the group (for
/// monitoring): `commitsSucceeded` and `committedOffset` follow; without a group nothing is
/// committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reader_commits_offsets_when_a_checkpoint_completes() {
    let admin = admin().await;
    let topic = create_topic(&admin, "reader-commit", 2).await;
    produce(&topic, 2, &values("c", 40)).await;
    let group = format!("{topic}-group");
    let source = source_builder(&topic).group_id(&group).build().unwrap();
    assert!(source.commit_offsets_on_checkpoint());
    let mut enumerator = source.create_enumerator(0, 1).await.unwrap();
    let mut r = reader_for(&source, WatermarkStrategy::no_watermarks()).await;
    assert!(r.commits_offsets());
    r.add_splits(enumerator.discover().await.unwrap().new_splits)
        .await
        .unwrap();
    let got = read_n(&mut r, 40).await;
    assert_eq!(got.len(), 40);
    let state = r.snapshot_state(7).unwrap();
    r.notify_checkpoint_complete(6); // unknown: nothing
    r.notify_checkpoint_complete(7);
    let m = r.metrics();
    eventually("the offset commit", Duration::from_secs(10), || {
        let m = m.clone();
        async move { m.commits_succeeded() == 1 }
    })
    .await;
    let committed = admin.group_offsets(&group).await.unwrap();
    for s in &state {
        assert_eq!(committed[&(s.topic.clone(), s.partition)], 20);
        assert_eq!(m.committed_offset(&TopicPartition::new(&topic, s.partition)), Some(20));
        assert_eq!(m.current_offset(&TopicPartition::new(&topic, s.partition)), Some(19));
    }
    assert_eq!(m.commits_failed(), 0);
    r.close().await.unwrap();

    let no_group = reader_for(
        &source_builder(&topic).build().unwrap(),
        WatermarkStrategy::no_watermarks(),
    )
    .await;
    assert!(!no_group.commits_offsets());
}

/// `unbounded(stopping)` exits when every partition reached its stopping offset, as the seed
/// says, with partition discovery off and on; an unbounded source without stopping offsets
/// runs until stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_source_with_stopping_offsets_exits_at_its_stops() {
    let admin = admin().await;
    let input = create_topic(&admin, "pipe-unb-in", 2).await;
    produce(&input, 2, &values("u", 100)).await;
    for discovery in [None, Some(Duration::from_millis(200))] {
        let output = create_topic(&admin, "pipe-unb-out", 1).await;
        let mut b = source_builder(&input).unbounded(OffsetsInitializer::latest());
        if let Some(d) = discovery {
            b = b.partition_discovery_interval(d);
        }
        let source = b.build().unwrap();
        assert_eq!(source.partition_discovery_interval(), discovery);
        let p = Pipeline::new(source, sink(&output, DeliveryGuarantee::AtLeastOnce, &output))
            .checkpoint_interval(Duration::from_millis(200));
        let summary = tokio::time::timeout(Duration::from_secs(30), p.run())
            .await
            .unwrap_or_else(|_| panic!("discovery {discovery:?}: the pipeline did not exit at its stops"))
            .unwrap();
        assert_eq!(
            (summary.end, summary.records_in),
            (PipelineEnd::EndOfInput, 100),
            "{discovery:?}"
        );
        assert_eq!(read_values(&output, false).await.len(), 100);
    }

    // Without stopping offsets: runs until stopped.
    let output = create_topic(&admin, "pipe-unb-out", 1).await;
    let source = source_builder(&input).build().unwrap();
    let p = Pipeline::new(source, sink(&output, DeliveryGuarantee::AtLeastOnce, &output))
        .checkpoint_interval(Duration::from_millis(200));
    let metrics = p.metrics();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(p.run_until(async move {
        let _ = stop_rx.await;
    }));
    eventually("every record read", Duration::from_secs(30), || {
        let m = metrics.clone();
        async move { m.snapshot().records_out == 100 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !task.is_finished(),
        "an unbounded pipeline without stops must not end by itself"
    );
    stop_tx.send(()).unwrap();
    let summary = task.await.unwrap().unwrap();
    assert_eq!((summary.end, summary.records_in), (PipelineEnd::Stopped, 100));
}

/// Event time in user code: a process function sees each record's key, headers, topic,
/// partition, offset and timestamps and the current watermark, and emits outputs with its
/// own timestamps; later functions see those timestamps, the sink writes them as record
/// timestamps, and the sink's serializer sees the watermark.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_functions_see_records_event_time_and_watermarks() {
    const N: usize = 300;
    const BASE: i64 = 1_700_000_000_000;
    let admin = admin().await;
    let input = create_topic(&admin, "evt-in", 2).await;
    let output = create_topic(&admin, "evt-out", 1).await;
    {
        let p = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
        let mut pending = Vec::new();
        for i in 0..N {
            let rec = ProducerRecord::new(&input, Bytes::from(format!("v{i}")))
                .partition(i32::try_from(i % 2).unwrap())
                .key(format!("k{i}"))
                .header("tenant", format!("t{}", i % 3))
                .timestamp(BASE + i64::try_from(i).unwrap() * 10);
            pending.push(p.send(rec).await.unwrap());
        }
        for d in pending {
            d.wait().await.unwrap();
        }
        p.close().await.unwrap();
    }
    // Small polls, a slow function: the run lasts several watermark intervals, so later
    // records are processed after watermarks were emitted.
    let source = source_builder(&input)
        .property("max.poll.records", "10")
        .bounded(OffsetsInitializer::latest())
        .build()
        .unwrap();
    let out_topic = output.clone();
    let sink = KafkaSink::<String>::builder()
        .bootstrap_servers(&broker().bootstrap)
        .record_serializer(move |s: &String, ctx: &KafkaSinkContext| {
            let mut r = ProducerRecord::new(&out_topic, Bytes::from(s.clone()));
            if let Some(ts) = ctx.timestamp() {
                r = r.timestamp(ts);
            }
            if let Some(w) = ctx.current_watermark() {
                r = r.header("wm", w.to_string());
            }
            Ok(Some(r))
        })
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix(unique_topic("evt"))
        .build()
        .unwrap();
    type Seen = Arc<Mutex<Vec<(i64, Option<i64>)>>>;
    let seen = Seen::default();
    let seen_in_fn = seen.clone();
    let summary = Pipeline::new(source, sink)
        // Each record announces its own event time as its partition's watermark.
        .watermark_strategy(WatermarkStrategy::for_punctuated(|_v: &String, ts| Some(ts)))
        .process(
            move |v: String, ctx: &ProcessContext<'_>, out: &mut Collector<'_, String>| {
                std::thread::sleep(Duration::from_millis(2));
                seen_in_fn
                    .lock()
                    .unwrap()
                    .push((ctx.timestamp(), ctx.current_watermark()));
                let key = String::from_utf8(ctx.key().unwrap().to_vec()).unwrap();
                let tenant = String::from_utf8(ctx.header("tenant").unwrap().to_vec()).unwrap();
                out.collect(format!(
                    "{v}|{}|{}|{}|{key}|{tenant}|{}",
                    ctx.topic(),
                    ctx.partition(),
                    ctx.offset(),
                    ctx.record_timestamp()
                ));
                if ctx.offset() % 2 == 0 {
                    out.collect_with_timestamp(format!("{v}|copy"), ctx.timestamp() + 7);
                }
            },
        )
        .map(|s: String| s)
        .process(|s: String, ctx: &ProcessContext<'_>, out: &mut Collector<'_, String>| {
            out.collect(format!("{s}@{}", ctx.timestamp()));
        })
        .checkpoint_interval(Duration::from_millis(300))
        .run()
        .await
        .unwrap();
    assert_eq!(summary.records_in, N as u64);

    wait_no_open_transaction(&admin, &output, Duration::from_secs(30)).await;
    let records = read_records(&output, true).await;
    let copies = (0..N).filter(|i| (i / 2) % 2 == 0).count();
    assert_eq!(
        records.len(),
        N + copies,
        "one output per record, and a copy of even offsets"
    );
    let mut max_ts = i64::MIN;
    let mut last_wm = None;
    let mut wm_headers = 0;
    for r in &records {
        let text = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
        let (body, at) = text.rsplit_once('@').unwrap();
        let at: i64 = at.parse().unwrap();
        assert_eq!(r.timestamp, at, "the sink writes each output's own timestamp: {text}");
        let fields: Vec<&str> = body.split('|').collect();
        let i: i64 = fields[0].trim_start_matches('v').parse().unwrap();
        let ts = BASE + i * 10;
        if fields.len() == 2 {
            assert_eq!(fields[1], "copy");
            assert_eq!(at, ts + 7, "collect_with_timestamp: {text}");
        } else {
            let expected = format!("v{i}|{input}|{}|{}|k{i}|t{}|{ts}", i % 2, i / 2, i % 3);
            assert_eq!(body, expected);
            assert_eq!(at, ts, "collect keeps the input's event time");
        }
        max_ts = max_ts.max(ts);
        if let Some(h) = r.headers.last(b"wm") {
            let w: i64 = String::from_utf8(h.value.unwrap().to_vec()).unwrap().parse().unwrap();
            assert!(last_wm.is_none_or(|l| w >= l), "the sink's watermark never goes back");
            assert!(w <= max_ts, "watermark {w} ahead of every event read ({max_ts})");
            last_wm = Some(w);
            wm_headers += 1;
        }
    }
    assert!(wm_headers > 0, "the sink's serializer never saw a watermark");

    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), N);
    let mut max_ts = i64::MIN;
    let mut last = None;
    for (ts, wm) in seen.iter() {
        max_ts = max_ts.max(*ts);
        if let Some(w) = wm {
            assert!(last.is_none_or(|l| *w >= l), "watermarks never go back: {seen:?}");
            assert!(*w <= max_ts, "watermark {w} ahead of the events read ({max_ts})");
            last = Some(*w);
        } else {
            assert!(last.is_none(), "a watermark, once seen, stays");
        }
    }
    assert!(last.is_some(), "the process function never saw a watermark");
}
