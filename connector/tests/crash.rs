//! The crash test: a pipeline process (this test binary re-executed in child mode, running
//! the same pipeline as `examples/exactly_once_pipeline.rs`: topic A uppercased into topic
//! B) is killed again and again and restarted each time from its file checkpoints, until it
//! reaches the end of its bounded input. Kills are both injected at chosen points
//! (`STROM_PIPELINE_CRASH_AT`: mid-transaction, before and after the pre-commit, between the
//! checkpoint write and the commit, during the commit, after it; the process aborts) and
//! SIGKILLs at random times. Then topic B is read with read_committed by Strom's consumer
//! and by Java's console consumer:
//!
//! * exactly-once: every input record exactly once;
//! * at-least-once: every input record at least once (duplicates counted and printed).
//!
//! The CI version (`crash_exactly_once`, `crash_at_least_once`): at least 5 kills over
//! 100k records each, bounded to 4 minutes. The full version (`crash_full`, ignored;
//! `scripts/crash-test` runs it): `STROM_CRASH_RECORDS` (default 1,000,000) records and
//! `STROM_CRASH_KILLS` (default 20) kills per guarantee. `STROM_CRASH_SEED` replays a run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, IsolationLevel, NewTopic, Producer, ProducerConfig, ProducerRecord,
    TopicPartition as ClientTp,
};
use strom_connector::checkpoint::FileCheckpointStore;
use strom_connector::pipeline::{Pipeline, CRASH_AT_ENV};
use strom_connector::sink::{DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, StringSerializer};
use strom_connector::source::{deserializer, KafkaSource, OffsetsInitializer};
use strom_integration_tests::{
    broker, child_env as env, child_runtime, init_test_logging, unique_topic, wait_no_open_transaction,
};

const CHILD_ENV: &str = "STROM_CRASH_TEST_CHILD";

// ---------------------------------------------------------------------------------------
// The child: the example pipeline, configured from the environment.

/// Sleeps so that `n` records take at least `n / rate` seconds since the first one.
fn throttle(rate: f64) -> impl FnMut() + Send {
    let mut start = None;
    let mut n = 0u64;
    move || {
        let start = *start.get_or_insert_with(Instant::now);
        n += 1;
        if !n.is_multiple_of(64) {
            return;
        }
        let due = Duration::from_secs_f64(n as f64 / rate);
        let elapsed = start.elapsed();
        if due > elapsed + Duration::from_millis(2) {
            std::thread::sleep(due - elapsed);
        }
    }
}

async fn child_pipeline() -> strom_connector::Result<()> {
    let bootstrap = env("STROM_CRASH_BOOTSTRAP");
    let guarantee: DeliveryGuarantee = env("STROM_CRASH_GUARANTEE").parse()?;
    let output = env("STROM_CRASH_OUTPUT");
    let source = KafkaSource::builder()
        .bootstrap_servers(&bootstrap)
        .topics([env("STROM_CRASH_INPUT")])
        .property("isolation.level", "read_committed")
        .bounded(OffsetsInitializer::latest())
        .deserializer(deserializer::string())
        .build()?;
    let mut sink = KafkaSink::<String>::builder()
        .bootstrap_servers(&bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic(&output)
                .value_serializer(StringSerializer)
                .build()?,
        )
        .delivery_guarantee(guarantee)
        .property("linger.ms", "5")
        .transaction_timeout(Duration::from_secs(600));
    if guarantee == DeliveryGuarantee::ExactlyOnce {
        sink = sink.transactional_id_prefix(format!("crash-{output}"));
    }
    let mut slow = throttle(env("STROM_CRASH_RATE").parse().unwrap());
    let summary = Pipeline::new(source, sink.build()?)
        .map(move |v: String| {
            slow();
            v.to_uppercase()
        })
        .checkpoint_interval(Duration::from_millis(env("STROM_CRASH_INTERVAL_MS").parse().unwrap()))
        .checkpoint_store(FileCheckpointStore::new(env("STROM_CRASH_DIR"))?)
        .run()
        .await?;
    println!(
        "child done: in={} out={} checkpoints={} restored_from={:?}",
        summary.records_in, summary.records_out, summary.checkpoints, summary.restored_from
    );
    Ok(())
}

/// Child-process entry point; does nothing in a normal test run.
#[test]
fn crash_child() {
    let Some(rt) = child_runtime(CHILD_ENV) else {
        return;
    };
    let code = match rt.block_on(child_pipeline()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("child pipeline failed: {e}");
            3
        }
    };
    std::process::exit(code);
}

// ---------------------------------------------------------------------------------------
// The parent: topics, kills, verification.

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

#[derive(Debug, Clone, Copy)]
struct Plan {
    records: usize,
    kills: usize,
    guarantee: DeliveryGuarantee,
    interval_ms: u64,
    deadline: Duration,
}

#[derive(Debug, Default)]
struct Counts {
    out: usize,
    duplicates: usize,
    lost: usize,
    unexpected: usize,
}

fn count(expected: &BTreeSet<String>, got: impl IntoIterator<Item = String>) -> Counts {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut out = 0;
    for g in got {
        out += 1;
        *seen.entry(g).or_default() += 1;
    }
    Counts {
        out,
        duplicates: seen.values().map(|c| c - 1).sum(),
        lost: expected.iter().filter(|e| !seen.contains_key(*e)).count(),
        unexpected: seen.keys().filter(|k| !expected.contains(*k)).count(),
    }
}

async fn produce(topic: &str, n: usize) {
    let mut cfg = ProducerConfig::new(&broker().bootstrap);
    cfg.set("linger.ms", "10").unwrap();
    cfg.set("batch.size", "262144").unwrap();
    let p = Producer::new(cfg).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..n {
        pending.push(
            p.send(ProducerRecord::new(topic, Bytes::from(format!("c-{i:07}"))).partition((i % 4) as i32))
                .await
                .unwrap(),
        );
        if pending.len() >= 20_000 {
            for d in pending.drain(..) {
                d.wait().await.unwrap();
            }
        }
    }
    for d in pending {
        d.wait().await.unwrap();
    }
    p.close().await.unwrap();
}

/// Every value of `topic` with Strom's consumer, up to the end offsets (LSO under
/// read_committed) once no transaction is open.
async fn strom_read(admin: &Admin, topic: &str, read_committed: bool) -> Vec<String> {
    wait_no_open_transaction(admin, topic, Duration::from_secs(60)).await;
    let mut cfg = ConsumerConfig::new(&broker().bootstrap);
    cfg.isolation_level = if read_committed {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let mut c = Consumer::new(cfg).await.unwrap();
    let tps: Vec<ClientTp> = (0..4).map(|p| ClientTp::new(topic, p)).collect();
    c.assign(tps.clone()).unwrap();
    c.seek_to_beginning(&[]).unwrap();
    let end = c.end_offsets(&tps).await.unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let mut done = true;
        for tp in &tps {
            done &= c.position(tp).await.unwrap() >= end[tp];
        }
        if done {
            return out;
        }
        assert!(Instant::now() < deadline, "reading {topic} did not reach {end:?}");
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
}

/// Every value of `topic` with Java's console consumer (read_committed), stopping after
/// `max` records or 20 s without one.
fn java_read(topic: &str, max: usize) -> Vec<String> {
    let extra = ["--consumer-property", "isolation.level=read_committed"];
    strom_integration_tests::java_console_consume(&broker().bootstrap, topic, max, 20_000, &extra)
}

struct Child2 {
    child: Child,
    log: PathBuf,
}

fn spawn_child(plan: &Plan, vars: &[(&str, String)], crash_at: Option<&str>, log: &Path) -> Child2 {
    let exe = std::env::current_exe().unwrap();
    let out = File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    let mut cmd = Command::new(exe);
    cmd.args(["crash_child", "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .env("STROM_CRASH_GUARANTEE", plan.guarantee.to_string())
        .env("STROM_CRASH_INTERVAL_MS", plan.interval_ms.to_string())
        .env_remove(CRASH_AT_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    for (k, v) in vars {
        cmd.env(k, v);
    }
    if let Some(c) = crash_at {
        cmd.env(CRASH_AT_ENV, c);
    }
    Child2 {
        child: cmd.spawn().unwrap(),
        log: log.to_owned(),
    }
}

fn tail(path: &Path) -> String {
    let mut s = String::new();
    let _ = File::open(path).and_then(|mut f| f.read_to_string(&mut s));
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Waits for the child to exit (bounded).
async fn wait(c: &mut Child2, within: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = c.child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = c.child.kill();
            let _ = c.child.wait();
            panic!("child did not exit within {within:?}:\n{}", tail(&c.log));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const STAGES: [&str; 5] = [
    "before-precommit",
    "after-precommit",
    "after-store",
    "during-commit",
    "after-commit",
];

async fn crash_test(plan: Plan) {
    init_test_logging();
    let started = Instant::now();
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let tag = match plan.guarantee {
        DeliveryGuarantee::ExactlyOnce => "eo",
        DeliveryGuarantee::AtLeastOnce => "alo",
        DeliveryGuarantee::None => "none",
    };
    let input = unique_topic(&format!("crash-{tag}-in"));
    let output = unique_topic(&format!("crash-{tag}-out"));
    admin
        .create_topics(&[
            NewTopic::new(&input, 4).replication_factor(1),
            NewTopic::new(&output, 4).replication_factor(1),
        ])
        .await
        .unwrap();
    produce(&input, plan.records).await;
    let produced_at = started.elapsed();

    let dir = std::env::temp_dir().join(format!("strom-{output}"));
    std::fs::create_dir_all(&dir).unwrap();
    let ckpt = dir.join("checkpoints");
    let seed = std::env::var("STROM_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    let mut rng = Rng(seed);
    // Slow enough that the kills land before the end: about 1.5 s of processing per kill.
    let rate = (plan.records as f64 / (plan.kills as f64 * 1.5)).max(2000.0);
    let vars = vec![
        ("STROM_CRASH_BOOTSTRAP", broker().bootstrap.clone()),
        ("STROM_CRASH_INPUT", input.clone()),
        ("STROM_CRASH_OUTPUT", output.clone()),
        ("STROM_CRASH_DIR", ckpt.display().to_string()),
        ("STROM_CRASH_RATE", format!("{rate:.0}")),
    ];
    println!(
        "crash test {}: {} records, >= {} kills, checkpoint every {} ms, rate {rate:.0}/s, seed {seed}",
        plan.guarantee, plan.records, plan.kills, plan.interval_ms
    );

    let mut kills = Vec::new();
    let mut runs = 0;
    let mut i = 0;
    let mut stage = 0;
    while kills.len() < plan.kills {
        assert!(started.elapsed() < plan.deadline, "crash test over its time bound");
        runs += 1;
        let log = dir.join(format!("run-{runs}.log"));
        // Every third kill is a SIGKILL at a random time; one in six a crash after a random
        // number of records (mid-transaction); the others injected at each checkpoint stage
        // in turn, at the 1st to 3rd checkpoint of the run.
        let what = if i % 3 == 2 {
            None
        } else if i % 6 == 3 {
            Some(format!("records:{}", rng.range(500, (rate as u64).max(1000))))
        } else {
            stage += 1;
            Some(format!("{}:+{}", STAGES[(stage - 1) % STAGES.len()], rng.range(1, 3)))
        };
        i += 1;
        let mut child = spawn_child(&plan, &vars, what.as_deref(), &log);
        let status = match &what {
            Some(_) => wait(&mut child, Duration::from_secs(120)).await,
            None => {
                let after = Duration::from_millis(rng.range(400, 2500));
                tokio::time::sleep(after).await;
                if child.child.try_wait().unwrap().is_none() {
                    child.child.kill().unwrap(); // SIGKILL
                }
                wait(&mut child, Duration::from_secs(30)).await
            }
        };
        let label = what.clone().unwrap_or_else(|| "SIGKILL".into());
        match (status.code(), status.signal()) {
            (Some(0), _) => {
                // Reached the end of input before the kill: nothing left to crash in.
                println!("  run {runs}: finished before {label}");
                break;
            }
            (None, Some(sig)) if sig == 9 || sig == 6 => {
                println!("  run {runs}: killed ({label}, signal {sig})");
                kills.push(label);
            }
            _ => panic!("run {runs} ({label}) failed with {status}:\n{}", tail(&log)),
        }
    }
    // The last run: no crash, to the end of the input.
    runs += 1;
    let log = dir.join(format!("run-{runs}.log"));
    let mut child = spawn_child(&plan, &vars, None, &log);
    let status = wait(&mut child, Duration::from_secs(300)).await;
    assert!(status.success(), "final run failed with {status}:\n{}", tail(&log));
    println!("  run {runs}: {}", tail(&log).lines().last().unwrap_or(""));
    let pipeline_done = started.elapsed();

    let expected: BTreeSet<String> = (0..plan.records).map(|i| format!("C-{i:07}")).collect();
    let exactly = plan.guarantee == DeliveryGuarantee::ExactlyOnce;
    let strom = count(&expected, strom_read(&admin, &output, exactly).await);
    let java = count(&expected, java_read(&output, strom.out));
    let elapsed = started.elapsed();
    println!(
        "crash test {} result: records={} kills={} ({}) runs={} in={} out={} duplicates={} lost={} unexpected={} | \
         java read_committed: out={} duplicates={} lost={} | produce {:.1}s, pipeline {:.1}s, total {:.1}s, seed {seed}",
        plan.guarantee,
        plan.records,
        kills.len(),
        kills.join(", "),
        runs,
        plan.records,
        strom.out,
        strom.duplicates,
        strom.lost,
        strom.unexpected,
        java.out,
        java.duplicates,
        java.lost,
        produced_at.as_secs_f64(),
        (pipeline_done - produced_at).as_secs_f64(),
        elapsed.as_secs_f64()
    );
    assert!(
        kills.len() >= plan.kills,
        "only {} kills before the end of input",
        kills.len()
    );
    assert_eq!((strom.lost, strom.unexpected), (0, 0), "Strom's consumer: loss");
    assert_eq!((java.lost, java.unexpected), (0, 0), "Java's console consumer: loss");
    if exactly {
        assert_eq!(strom.duplicates, 0, "Strom's consumer: duplicates under exactly-once");
        assert_eq!(
            java.duplicates, 0,
            "Java's console consumer: duplicates under exactly-once"
        );
        assert_eq!(strom.out, plan.records);
        assert_eq!(java.out, plan.records);
    }
    assert!(elapsed < plan.deadline, "took {elapsed:?}, bound {:?}", plan.deadline);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_exactly_once() {
    crash_test(Plan {
        records: 100_000,
        kills: 8,
        guarantee: DeliveryGuarantee::ExactlyOnce,
        interval_ms: 200,
        deadline: Duration::from_secs(240),
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_at_least_once() {
    crash_test(Plan {
        records: 100_000,
        kills: 6,
        guarantee: DeliveryGuarantee::AtLeastOnce,
        interval_ms: 200,
        deadline: Duration::from_secs(240),
    })
    .await;
}

/// The full version: `STROM_CRASH_RECORDS` (1,000,000) records and `STROM_CRASH_KILLS` (20)
/// kills, for each guarantee in `STROM_CRASH_GUARANTEES` (exactly-once,at-least-once).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by scripts/crash-test"]
async fn crash_full() {
    let records = std::env::var("STROM_CRASH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let kills = std::env::var("STROM_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let guarantees = std::env::var("STROM_CRASH_GUARANTEES").unwrap_or_else(|_| "exactly-once,at-least-once".into());
    for g in guarantees.split(',') {
        crash_test(Plan {
            records,
            kills,
            guarantee: g.parse().unwrap(),
            interval_ms: 1000,
            deadline: Duration::from_secs(1200),
        })
        .await;
    }
}
