//! Rescaling from a checkpoint location: an exactly-once pipeline run as child processes,
//! 2 subtasks, then 3, then 1, every process of the first two generations SIGKILLed midway
//! (nothing flushed, closed or committed on the way out). Each new generation redistributes
//! the splits of every subtask's newest checkpoint with Flink's owner formula and aborts what
//! the killed processes left open; the output is exactly the input under read_committed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{Admin, ClientConfig, IsolationLevel, NewTopic, Producer, ProducerConfig, ProducerRecord};
use strom_connector::checkpoint::{CheckpointLocation, FileCheckpointLocation};
use strom_connector::kafka_checkpoint::{KafkaCheckpointConfig, KafkaCheckpointLocation};
use strom_connector::pipeline::Pipeline;
use strom_connector::sink::{DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, StringSerializer};
use strom_connector::source::{deserializer, KafkaSource, OffsetsInitializer};
use strom_integration_tests::{
    broker, child_env as var, child_runtime, init_test_logging, read_to_end, unique_topic, wait_no_open_transaction,
};

const CHILD_ENV: &str = "STROM_RESCALE_TEST_CHILD";
const PARTITIONS: i32 = 6;

/// Child-process entry point: one subtask; does nothing in a normal test run.
#[test]
fn rescale_child() {
    let Some(rt) = child_runtime(CHILD_ENV) else {
        return;
    };
    init_test_logging();
    let code = rt.block_on(async {
        let bootstrap = var("STROM_RESCALE_BOOTSTRAP");
        let source = KafkaSource::builder()
            .bootstrap_servers(&bootstrap)
            .topics([var("STROM_RESCALE_INPUT")])
            .isolation_level(IsolationLevel::ReadCommitted)
            .bounded(OffsetsInitializer::latest())
            .deserializer(deserializer::string())
            .build()
            .unwrap();
        let sink = KafkaSink::<String>::builder()
            .bootstrap_servers(&bootstrap)
            .record_serializer(
                KafkaRecordSerializationSchema::builder()
                    .topic(var("STROM_RESCALE_OUTPUT"))
                    .value_serializer(StringSerializer)
                    .build()
                    .unwrap(),
            )
            .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
            .transactional_id_prefix(var("STROM_RESCALE_PREFIX"))
            .property("linger.ms", "5")
            .build()
            .unwrap();
        let subtask: usize = var("STROM_RESCALE_SUBTASK").parse().unwrap();
        let parallelism: usize = var("STROM_RESCALE_PARALLELISM").parse().unwrap();
        let mut n = 0u64;
        let p = Pipeline::new(source, sink)
            .map(move |s: String| {
                n += 1;
                if n.is_multiple_of(2) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                s.to_uppercase()
            })
            .checkpoint_interval(Duration::from_millis(150))
            .subtask(subtask, parallelism);
        let location = var("STROM_RESCALE_LOCATION");
        let p = match location.strip_prefix("kafka:") {
            Some(topic) => p.checkpoint_location(
                KafkaCheckpointLocation::connect(KafkaCheckpointConfig::new(&bootstrap, topic, "rescale-test"))
                    .await
                    .unwrap(),
            ),
            None => p.checkpoint_location(FileCheckpointLocation::new(location).unwrap()),
        };
        match p.run().await {
            Ok(s) => {
                println!("done: {s:?}");
                0
            }
            Err(e) => {
                eprintln!("failed: {e}");
                3
            }
        }
    });
    std::process::exit(code);
}

struct Setup {
    input: String,
    output: String,
    prefix: String,
    /// A directory, or `kafka:<topic>`.
    location: String,
}

fn spawn(s: &Setup, subtask: usize, parallelism: usize, log: &Path) -> Child {
    let out = std::fs::File::create(log).unwrap();
    Command::new(std::env::current_exe().unwrap())
        .args([
            "rescale::rescale_child",
            "--exact",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(CHILD_ENV, "1")
        .env("STROM_RESCALE_BOOTSTRAP", &broker().bootstrap)
        .env("STROM_RESCALE_INPUT", &s.input)
        .env("STROM_RESCALE_OUTPUT", &s.output)
        .env("STROM_RESCALE_PREFIX", &s.prefix)
        .env("STROM_RESCALE_LOCATION", &s.location)
        .env("STROM_RESCALE_SUBTASK", subtask.to_string())
        .env("STROM_RESCALE_PARALLELISM", parallelism.to_string())
        .env("STROM_TEST_LOG", "strom_connector=info")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out.try_clone().unwrap()))
        .stderr(Stdio::from(out))
        .spawn()
        .unwrap()
}

async fn produce(topic: &str, n: usize) {
    let mut cfg = ProducerConfig::new(&broker().bootstrap);
    cfg.set("linger.ms", "5").unwrap();
    let p = Producer::new(cfg).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..n {
        let part = i32::try_from(i).unwrap() % PARTITIONS;
        let rec = ProducerRecord::new(topic, Bytes::from(format!("r-{i:06}"))).partition(part);
        pending.push(p.send(rec).await.unwrap());
    }
    for d in pending {
        d.wait().await.unwrap();
    }
    p.close().await.unwrap();
}

/// The subtasks' checkpoints in one directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescale_2_3_1_with_sigkills_is_exactly_once_with_a_file_location() {
    rescale_2_3_1(false).await;
}

/// The subtasks' checkpoints in a compacted Kafka topic: nothing but Kafka.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rescale_2_3_1_with_sigkills_is_exactly_once_with_a_kafka_location() {
    rescale_2_3_1(true).await;
}

async fn newest_checkpoint(location: &str, subtask: usize) -> Option<u64> {
    let location = location.to_owned();
    match location.strip_prefix("kafka:") {
        Some(topic) => {
            let l = KafkaCheckpointLocation::connect(KafkaCheckpointConfig::new(
                &broker().bootstrap,
                topic,
                "rescale-test",
            ))
            .await
            .unwrap();
            tokio::task::spawn_blocking(move || l.subtask_store(subtask).unwrap().latest().unwrap().map(|c| c.id))
                .await
                .unwrap()
        }
        None => FileCheckpointLocation::new(location)
            .unwrap()
            .subtask_store(subtask)
            .unwrap()
            .latest()
            .unwrap()
            .map(|c| c.id),
    }
}

async fn rescale_2_3_1(in_kafka: bool) {
    const N: usize = 16_000;
    init_test_logging();
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let input = unique_topic("rescale-in");
    let output = unique_topic("rescale-out");
    admin
        .create_topics(&[
            NewTopic::new(&input, PARTITIONS).replication_factor(1),
            NewTopic::new(&output, 3).replication_factor(1),
        ])
        .await
        .unwrap();
    produce(&input, N).await;
    let dir = std::env::temp_dir().join(unique_topic("strom-rescale"));
    std::fs::create_dir_all(&dir).unwrap();
    let s = Setup {
        input,
        output: output.clone(),
        prefix: unique_topic("rescale"),
        location: if in_kafka {
            format!("kafka:{}", unique_topic("rescale-checkpoints"))
        } else {
            dir.join("checkpoints").to_string_lossy().into_owned()
        },
    };
    // Generations 2 and 3, every process killed after a while (each run is checkpointed
    // every 150 ms; the kills land mid-transaction).
    for (generation, parallelism, after_ms) in [(1, 2usize, 1_500u64), (2, 3, 1_500)] {
        let mut children: Vec<Child> = (0..parallelism)
            .map(|i| spawn(&s, i, parallelism, &dir.join(format!("g{generation}-s{i}.log"))))
            .collect();
        tokio::time::sleep(Duration::from_millis(after_ms)).await;
        for c in &mut children {
            let _ = c.kill();
            let _ = c.wait();
        }
        // Every subtask of the generation checkpointed before its kill, or the test input
        // was too small to exercise rescaling.
        for i in 0..parallelism {
            let newest = newest_checkpoint(&s.location, i).await;
            assert!(
                newest.is_some(),
                "generation {generation}: subtask {i} never checkpointed"
            );
        }
    }
    // Generation 3: one process reads the rest.
    let log = dir.join("g3-s0.log");
    let mut last = spawn(&s, 0, 1, &log);
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(st) = last.try_wait().unwrap() {
            break st;
        }
        if Instant::now() > deadline {
            let _ = last.kill();
            panic!(
                "the last generation did not finish in 120 s:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "the last generation failed ({status}):\n{text}");
    assert!(text.contains("rescaled"), "generation 3 did not redistribute:\n{text}");

    // On a lingering transaction, say which ids are open before failing.
    let lingering = tokio::time::timeout(
        Duration::from_secs(20),
        wait_no_open_transaction(&admin, &output, Duration::from_secs(30)),
    )
    .await;
    if lingering.is_err() {
        let open: Vec<String> = admin
            .list_transactions()
            .await
            .unwrap()
            .into_iter()
            .filter(|t| {
                t.transactional_id.starts_with(&s.prefix)
                    && t.state != "CompleteCommit"
                    && t.state != "CompleteAbort"
                    && t.state != "Empty"
            })
            .map(|t| format!("{} {}", t.transactional_id, t.state))
            .collect();
        let logs: String = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| {
                format!(
                    "== {:?}\n{}",
                    e.file_name(),
                    std::fs::read_to_string(e.path()).unwrap_or_default()
                )
            })
            .collect();
        panic!("transactions still open after the last generation: {open:?}\n{logs}");
    }
    let got: Vec<String> = read_to_end(admin.client(), &output, true)
        .await
        .into_iter()
        .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap())
        .collect();
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for v in &got {
        *counts.entry(v.as_str()).or_default() += 1;
    }
    let dups: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).take(5).collect();
    assert!(dups.is_empty(), "duplicates, e.g. {dups:?}");
    let missing: Vec<String> = (0..N)
        .map(|i| format!("R-{i:06}"))
        .filter(|v| !counts.contains_key(v.as_str()))
        .take(5)
        .collect();
    assert!(missing.is_empty(), "lost, e.g. {missing:?} ({} of {N} read)", got.len());
    assert_eq!(got.len(), N);
    let _ = std::fs::remove_dir_all(&dir);
}
