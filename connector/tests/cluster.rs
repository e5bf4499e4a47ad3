//! The exactly-once pipeline on a real three-node cluster (`scripts/kafka up --brokers 3`)
//! while the source group's coordinator and then a node coordinating the sink's
//! transactions are SIGKILLed and started again, and while all three nodes restart one at
//! a time (SIGTERM, a rolling upgrade): the run finishes (restarting from its last
//! checkpoint if it fails) and the output, read with read_committed by Strom and by Java,
//! holds every input record exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_client::{Admin, Client, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use strom_connector::checkpoint::FileCheckpointStore;
use strom_connector::pipeline::Pipeline;
use strom_connector::sink::{DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, StringSerializer};
use strom_connector::source::{deserializer, KafkaSource, OffsetsInitializer};
use strom_integration_tests::{run_java_tool, shared_cluster, unique_topic, PrivateBroker};

/// Node k has PLAINTEXT on PORT_BASE + 10 (k - 1): 22592, 22602, 22612.
const PORT_BASE: u16 = 22592;
const RECORDS: u64 = 20_000;

fn cluster() -> &'static PrivateBroker {
    shared_cluster(PORT_BASE, 3)
}

fn config() -> ClientConfig {
    let mut c = ClientConfig::new(&cluster().bootstrap);
    c.bootstrap_servers = cluster().bootstrap.split(',').map(str::to_owned).collect();
    c
}

/// One fault test at a time: they share the cluster.
async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static ONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    ONE.lock().await
}

fn node_of(addr: &str) -> u8 {
    let port: u16 = addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap();
    ((port - PORT_BASE) / 10 + 1) as u8
}

/// One pipeline run over `input` to `output`: bounded, 500 ms checkpoints, slowed to one
/// record per `pace` until `faults_done`, so that the faults land mid-run.
async fn run_pipeline(
    input: &str,
    output: &str,
    group: &str,
    dir: &std::path::Path,
    pace: Duration,
    faults_done: Arc<AtomicBool>,
) -> strom_connector::Result<u64> {
    let bootstrap = cluster().bootstrap.clone();
    let source = KafkaSource::builder()
        .bootstrap_servers(&bootstrap)
        .topics([input])
        .group_id(group)
        .property("isolation.level", "read_committed")
        .bounded(OffsetsInitializer::latest())
        .deserializer(deserializer::string())
        .build()?;
    let sink = KafkaSink::<String>::builder()
        .bootstrap_servers(&bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic(output)
                .value_serializer(StringSerializer)
                .build()?,
        )
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix(format!("cluster-{output}"))
        .transaction_timeout(Duration::from_secs(600))
        .build()?;
    let summary = Pipeline::new(source, sink)
        .map(move |v: String| {
            if !faults_done.load(Ordering::Acquire) {
                std::thread::sleep(pace);
            }
            v.to_uppercase()
        })
        .checkpoint_interval(Duration::from_millis(500))
        .checkpoint_store(FileCheckpointStore::new(dir)?)
        .run()
        .await?;
    eprintln!(
        "pipeline run: in={} out={} checkpoints={} restored_from={:?}",
        summary.records_in, summary.records_out, summary.checkpoints, summary.restored_from
    );
    Ok(summary.records_out)
}

#[tokio::test(flavor = "multi_thread")]
async fn pipeline_survives_its_group_and_transaction_coordinators_being_killed() {
    pipeline_under_faults(Duration::from_millis(1), |group_node| {
        // The other of nodes 2 and 3 coordinates a third of the sink's transactional ids.
        let txn_node = 5 - group_node;
        eprintln!("killing the group coordinator, node {group_node}, then node {txn_node}");
        std::thread::sleep(Duration::from_secs(2));
        cluster().node("kill", group_node);
        std::thread::sleep(Duration::from_secs(3));
        cluster().node("start", group_node);
        std::thread::sleep(Duration::from_secs(1));
        cluster().node("kill", txn_node);
        std::thread::sleep(Duration::from_secs(3));
        cluster().node("start", txn_node);
    })
    .await;
}

/// A rolling restart (SIGTERM, one node at a time, the group coordinator first) while the
/// pipeline runs (at most 200 records/s until the last node is back).
#[tokio::test(flavor = "multi_thread")]
async fn pipeline_rides_a_rolling_restart() {
    pipeline_under_faults(Duration::from_millis(5), |group_node| {
        let others = (1..=3u8).filter(|n| *n != group_node);
        for node in std::iter::once(group_node).chain(others) {
            std::thread::sleep(Duration::from_secs(2));
            let t = Instant::now();
            cluster().node("restart", node);
            eprintln!("node {node} restarted in {:.1}s", t.elapsed().as_secs_f64());
        }
    })
    .await;
}

/// Writes RECORDS inputs, runs the pipeline (restarting it from its checkpoint when a run
/// fails) while `faults` runs on a thread of its own with the group coordinator's node,
/// then checks the output with Strom's and Java's read_committed readers.
async fn pipeline_under_faults(pace: Duration, faults: impl FnOnce(u8) + Send + 'static) {
    strom_integration_tests::init_test_logging();
    let _one = exclusive().await;
    let admin = Admin::connect(config()).await.unwrap();
    let client = Client::connect(config()).await.unwrap();
    let input = unique_topic("cluster-in");
    let output = unique_topic("cluster-out");
    admin
        .create_topics(&[NewTopic::new(&input, 3), NewTopic::new(&output, 3)])
        .await
        .unwrap();
    let producer = Producer::new(ProducerConfig::from_client(config())).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..RECORDS {
        pending.push(
            producer
                .send(ProducerRecord::new(&input, format!("r{i}")))
                .await
                .unwrap(),
        );
    }
    for f in pending {
        f.await.unwrap();
    }
    producer.close().await.unwrap();

    // A group coordinated by node 2 or 3 (scripts/kafka probes node 1).
    let (group, group_node) = loop {
        let g = unique_topic("cluster-group");
        let node = node_of(
            admin
                .coordinator(&g, strom_client::CoordinatorType::Group)
                .await
                .unwrap()
                .addr(),
        );
        if node != 1 {
            break (g, node);
        }
    };
    eprintln!("group {group} coordinated by node {group_node}");
    let faults_done = Arc::new(AtomicBool::new(false));
    let done = faults_done.clone();
    let faults = std::thread::spawn(move || {
        faults(group_node);
        done.store(true, Ordering::Release);
    });

    let dir = std::env::temp_dir().join(unique_topic("cluster-ckpt"));
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut runs = 0;
    loop {
        runs += 1;
        // Bounded as a whole: a run that stops making progress fails the test instead of
        // hanging it. One did, once, after a rolling restart (2026-12-07); its cause is not
        // found yet.
        let left = deadline.saturating_duration_since(Instant::now());
        let run = run_pipeline(&input, &output, &group, &dir, pace, faults_done.clone());
        let Ok(outcome) = tokio::time::timeout(left, run).await else {
            panic!("run {runs} of the pipeline did not end within the test's 240 s");
        };
        match outcome {
            Ok(_) => {
                // Otherwise the faults came after the work and this test proved nothing.
                assert!(
                    faults_done.load(Ordering::Acquire),
                    "the pipeline finished before the faults did: slow it down"
                );
                break;
            }
            Err(e) => {
                eprintln!("run {runs} failed, restarting from its checkpoint: {e}");
                assert!(Instant::now() < deadline, "the pipeline did not finish in 240 s: {e}");
                assert!(runs < 10, "the pipeline failed {runs} times, last: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    faults.join().unwrap();
    std::fs::remove_dir_all(&dir).ok();

    // A commit returns once the coordinator logged it; its markers reach the partitions
    // after. Wait (bounded) until no transaction is open on the output, and say which
    // producer held a partition open if one stays so.
    await_stable(&admin, &output).await;

    // read_committed, with Strom: every input exactly once.
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for r in strom_integration_tests::read_to_end(&client, &output, true).await {
        let v = String::from_utf8(r.value.unwrap().to_vec()).unwrap();
        *counts.entry(v).or_default() += 1;
    }
    let missing = (0..RECORDS).filter(|i| !counts.contains_key(&format!("R{i}"))).count();
    let duplicated = counts.values().filter(|c| **c > 1).count();
    let foreign = counts.keys().filter(|k| !k.starts_with('R')).count();
    assert_eq!(
        (missing, duplicated, foreign, counts.len() as u64),
        (0, 0, 0, RECORDS),
        "output after {runs} run(s): missing, duplicated, unexpected, distinct"
    );

    // And with Java's read_committed console consumer.
    let out = run_java_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            &cluster().bootstrap,
            "--topic",
            &output,
            "--from-beginning",
            "--isolation-level",
            "read_committed",
            "--max-messages",
            &RECORDS.to_string(),
            "--timeout-ms",
            "30000",
        ],
    );
    let mut java: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    java.sort_unstable();
    java.dedup();
    assert_eq!(java.len() as u64, RECORDS, "Java read {} distinct records", java.len());
    eprintln!("exact after {runs} run(s)");
}

/// Waits until every partition of `topic` has its last stable offset at its high watermark
/// (no open transaction), at most 60 s; prints how long that took, and fails naming the
/// producers that still hold a transaction open.
async fn await_stable(admin: &Admin, topic: &str) {
    use strom_client::OffsetSpec;
    let start = Instant::now();
    loop {
        let latest = admin.list_offsets(topic, &[], OffsetSpec::Latest).await.unwrap();
        let stable = admin
            .list_offsets_isolated(topic, &[], OffsetSpec::Latest, true)
            .await
            .unwrap();
        let open: Vec<(i32, i64, i64)> = latest
            .iter()
            .zip(&stable)
            .filter(|(l, s)| l.offset != s.offset)
            .map(|(l, s)| (l.partition, s.offset, l.offset))
            .collect();
        if open.is_empty() {
            eprintln!("{topic} stable after {:?}", start.elapsed());
            return;
        }
        if start.elapsed() > Duration::from_secs(60) {
            let mut producers = Vec::new();
            for (p, _, _) in &open {
                producers.push((*p, admin.describe_producers(topic, *p).await));
            }
            panic!(
                "{topic}: transactions still open after 60 s (partition, stable, latest): {open:?}; \
                 producers: {producers:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
