//! Elastic mode ([`Pipeline::elastic`]) against the real broker: processes join and leave a
//! running pipeline, the group coordinator moves partitions, and the output stays exact.
//!
//! * `elastic_scale_1_3_2_with_a_sigkill`: member processes (this test binary re-executed in
//!   child mode) on a KIP-848 group while a producer keeps writing: one, then three, then
//!   one of them SIGKILLed mid-transaction; topic B read with read_committed by Strom's
//!   consumer and by Java's console consumer holds every input record exactly once.
//! * `elastic_classic_cooperative_members_come_and_go`: the same in one process, on the
//!   classic protocol with the cooperative-sticky assignor: 1 → 2 → 1 members, one stopped
//!   cleanly and one dropped midway (its future abandoned, its transaction left open).
//! * `elastic_mode_refuses_what_it_cannot_honour`: configurations elastic mode cannot run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, IsolationLevel, NewTopic, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
};
use strom_connector::checkpoint::MemoryCheckpointStore;
use strom_connector::pipeline::Pipeline;
use strom_connector::process::{Collector, ProcessContext};
use strom_connector::sink::{DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, StringSerializer};
use strom_connector::source::{deserializer, KafkaSource, OffsetsInitializer, WatermarkStrategy};
use strom_connector::ConnectorError;
use strom_integration_tests::{
    broker, child_env as env, child_runtime, init_test_logging, unique_topic, wait_no_open_transaction,
};

const CHILD_ENV: &str = "STROM_ELASTIC_TEST_CHILD";
const PARTITIONS: i32 = 6;

fn pipeline(
    bootstrap: &str,
    input: &str,
    output: &str,
    group: &str,
    protocol: &str,
) -> Pipeline<String, String, String> {
    let mut source = KafkaSource::builder()
        .bootstrap_servers(bootstrap)
        .topics([input])
        .group_id(group)
        .starting_offsets(OffsetsInitializer::earliest())
        .property("isolation.level", "read_committed")
        .property("group.protocol", protocol)
        .deserializer(deserializer::string());
    if protocol == "classic" {
        source = source
            .property("partition.assignment.strategy", "cooperative-sticky")
            .property("session.timeout.ms", "6000")
            .property("heartbeat.interval.ms", "500");
    }
    let sink = KafkaSink::<String>::builder()
        .bootstrap_servers(bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic(output)
                .value_serializer(StringSerializer)
                .build()
                .unwrap(),
        )
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix(format!("elastic-{output}"))
        .property("linger.ms", "5")
        // A killed member's open transaction holds read_committed readers of the output
        // until it times out.
        .transaction_timeout(Duration::from_secs(10));
    Pipeline::new(source.build().unwrap(), sink.build().unwrap())
        .map(|v: String| v.to_uppercase())
        .checkpoint_interval(Duration::from_millis(500))
}

// ---------------------------------------------------------------------------------------
// The child: one member, stopped by SIGTERM.

/// Child-process entry point; does nothing in a normal test run.
#[test]
fn elastic_child() {
    let Some(rt) = child_runtime(CHILD_ENV) else {
        return;
    };
    let code = rt.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
        let p = pipeline(
            &env("STROM_ELASTIC_BOOTSTRAP"),
            &env("STROM_ELASTIC_INPUT"),
            &env("STROM_ELASTIC_OUTPUT"),
            &env("STROM_ELASTIC_GROUP"),
            "consumer",
        )
        .elastic(env("STROM_ELASTIC_MEMBER"));
        match p
            .run_until(async move {
                term.recv().await;
            })
            .await
        {
            Ok(s) => {
                println!(
                    "member done: in={} out={} transactions={}",
                    s.records_in, s.records_out, s.checkpoints
                );
                0
            }
            Err(e) => {
                eprintln!("member failed: {e}");
                3
            }
        }
    });
    std::process::exit(code);
}

// ---------------------------------------------------------------------------------------
// The parent.

/// Writes `n` values `e-0000000`.. to `topic`, spread over its partitions, at about `rate`
/// records per second.
async fn produce(topic: String, n: usize, rate: f64) {
    let mut cfg = ProducerConfig::new(&broker().bootstrap);
    cfg.set("linger.ms", "5").unwrap();
    let p = Producer::new(cfg).await.unwrap();
    let started = Instant::now();
    let mut pending = Vec::new();
    for i in 0..n {
        let rec = ProducerRecord::new(&topic, Bytes::from(format!("e-{i:07}"))).partition(i as i32 % PARTITIONS);
        pending.push(p.send(rec).await.unwrap());
        if i % 500 == 499 {
            for d in pending.drain(..) {
                d.wait().await.unwrap();
            }
            let due = Duration::from_secs_f64((i + 1) as f64 / rate);
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    for d in pending {
        d.wait().await.unwrap();
    }
    p.close().await.unwrap();
}

/// Every value of `topic` with Strom's read_committed consumer, once no transaction is open.
async fn strom_read(admin: &Admin, topic: &str) -> Vec<String> {
    wait_no_open_transaction(admin, topic, Duration::from_secs(60)).await;
    let mut cfg = ConsumerConfig::new(&broker().bootstrap);
    cfg.isolation_level = IsolationLevel::ReadCommitted;
    let mut c = Consumer::new(cfg).await.unwrap();
    let tps: Vec<TopicPartition> = (0..PARTITIONS).map(|p| TopicPartition::new(topic, p)).collect();
    c.assign(tps.clone()).unwrap();
    c.seek_to_beginning(&[]).unwrap();
    let end = c.end_offsets(&tps).await.unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
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

/// Each of the `n` inputs' outputs exactly once in `got`: a message naming what is not.
fn exact(n: usize, got: &[String]) -> Result<(), String> {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for g in got {
        *seen.entry(g.as_str()).or_default() += 1;
    }
    let expected: BTreeSet<String> = (0..n).map(|i| format!("E-{i:07}")).collect();
    let duplicates: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).take(5).collect();
    let lost: Vec<_> = expected
        .iter()
        .filter(|e| !seen.contains_key(e.as_str()))
        .take(5)
        .collect();
    let unexpected = seen.keys().filter(|k| !expected.contains(**k)).count();
    if duplicates.is_empty() && lost.is_empty() && unexpected == 0 && got.len() == n {
        Ok(())
    } else {
        Err(format!(
            "{} outputs for {n} inputs: duplicates {duplicates:?}, lost {lost:?}, unexpected {unexpected}",
            got.len()
        ))
    }
}

/// The group's committed offsets on `input`, summed: the input records whose outputs are
/// committed (the input has no transaction markers, so offsets count records).
async fn input_committed(group: &str, input: &str) -> i64 {
    let mut cfg = ConsumerConfig::new(&broker().bootstrap);
    cfg.set("group.id", group).unwrap();
    let c = Consumer::new(cfg).await.unwrap();
    let tps: Vec<TopicPartition> = (0..PARTITIONS).map(|p| TopicPartition::new(input, p)).collect();
    c.committed(&tps).await.unwrap().values().map(|o| o.offset).sum()
}

struct Member {
    name: String,
    child: Child,
    log: std::path::PathBuf,
}

fn spawn_member(name: &str, vars: &[(&str, String)], dir: &Path) -> Member {
    let log = dir.join(format!("{name}.log"));
    let out = File::create(&log).unwrap();
    let err = out.try_clone().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["elastic_child", "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .env("STROM_ELASTIC_MEMBER", name)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    for (k, v) in vars {
        cmd.env(k, v);
    }
    Member {
        name: name.to_owned(),
        child: cmd.spawn().unwrap(),
        log,
    }
}

fn tail(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// SIGTERM, then waits (bounded) for a clean exit.
async fn stop(m: &mut Member) {
    let pid = m.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(st) = m.child.try_wait().unwrap() {
            assert!(st.success(), "member {} exited with {st}:\n{}", m.name, tail(&m.log));
            return;
        }
        if Instant::now() > deadline {
            let _ = m.child.kill();
            panic!(
                "member {} did not stop within 30 s of SIGTERM:\n{}",
                m.name,
                tail(&m.log)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Fails with the member's log if it exited on its own.
fn still_running(m: &mut Member) {
    if let Some(st) = m.child.try_wait().unwrap() {
        panic!("member {} exited early ({st}):\n{}", m.name, tail(&m.log));
    }
}

async fn topics(admin: &Admin, tag: &str) -> (String, String) {
    let input = unique_topic(&format!("elastic-{tag}-in"));
    let output = unique_topic(&format!("elastic-{tag}-out"));
    admin
        .create_topics(&[
            NewTopic::new(&input, PARTITIONS).replication_factor(1),
            NewTopic::new(&output, PARTITIONS).replication_factor(1),
        ])
        .await
        .unwrap();
    (input, output)
}

/// Waits until the group committed all `n` input records (bounded).
async fn wait_for_commits(group: &str, input: &str, n: usize, within: Duration, what: &str) {
    let deadline = Instant::now() + within;
    loop {
        let c = input_committed(group, input).await;
        if c >= n as i64 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {c} of {n} inputs committed after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elastic_scale_1_3_2_with_a_sigkill() {
    init_test_logging();
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let (input, output) = topics(&admin, "procs").await;
    let group = format!("{output}-group");
    let dir = std::env::temp_dir().join(format!("strom-{output}"));
    std::fs::create_dir_all(&dir).unwrap();
    let vars = vec![
        ("STROM_ELASTIC_BOOTSTRAP", broker().bootstrap.clone()),
        ("STROM_ELASTIC_INPUT", input.clone()),
        ("STROM_ELASTIC_OUTPUT", output.clone()),
        ("STROM_ELASTIC_GROUP", group.clone()),
    ];
    // About 20 s of input at 3,000 records/s, written while members come and go.
    let n = 60_000;
    let producer = tokio::spawn(produce(input.clone(), n, 3_000.0));
    let mut m1 = spawn_member("m1", &vars, &dir);
    tokio::time::sleep(Duration::from_secs(4)).await;
    still_running(&mut m1);
    let first = input_committed(&group, &input).await;
    assert!(first > 0, "m1 committed nothing in 4 s:\n{}", tail(&m1.log));
    let mut m2 = spawn_member("m2", &vars, &dir);
    let mut m3 = spawn_member("m3", &vars, &dir);
    tokio::time::sleep(Duration::from_secs(5)).await;
    for m in [&mut m1, &mut m2, &mut m3] {
        still_running(m);
    }
    // m2 dies mid-transaction: its partitions move after the session timeout, its open
    // transaction is aborted by the broker after transaction.timeout.ms.
    m2.child.kill().unwrap();
    let _ = m2.child.wait();
    println!(
        "m2 SIGKILLed with {} inputs committed",
        input_committed(&group, &input).await
    );
    producer.await.unwrap();
    wait_for_commits(&group, &input, n, Duration::from_secs(90), "after the kill").await;
    still_running(&mut m1);
    still_running(&mut m3);
    stop(&mut m1).await;
    stop(&mut m3).await;
    let got = strom_read(&admin, &output).await;
    exact(n, &got).unwrap_or_else(|e| panic!("Strom's reader: {e}\nm1:\n{}\nm3:\n{}", tail(&m1.log), tail(&m3.log)));
    let extra = ["--consumer-property", "isolation.level=read_committed"];
    let java = strom_integration_tests::java_console_consume(&broker().bootstrap, &output, n, 20_000, &extra);
    exact(n, &java).unwrap_or_else(|e| panic!("Java's reader: {e}"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn elastic_classic_cooperative_members_come_and_go() {
    init_test_logging();
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let (input, output) = topics(&admin, "classic").await;
    let group = format!("{output}-group");
    let b = broker().bootstrap.clone();
    let n = 30_000;
    let producer = tokio::spawn(produce(input.clone(), n, 3_000.0));
    // Each member's process function notes what its context said: (topic, event time,
    // watermark) per record.
    type Seen = Arc<Mutex<Vec<(String, i64, Option<i64>)>>>;
    let member = |name: &'static str| {
        let (b, input, output, group) = (b.clone(), input.clone(), output.clone(), group.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let seen = Seen::default();
        let noted = seen.clone();
        let task = tokio::spawn(async move {
            pipeline(&b, &input, &output, &group, "classic")
                .watermark_strategy(WatermarkStrategy::for_monotonous_timestamps())
                .process(
                    move |v: String, ctx: &ProcessContext<'_>, out: &mut Collector<'_, String>| {
                        assert_eq!(ctx.timestamp(), ctx.record_timestamp());
                        noted
                            .lock()
                            .unwrap()
                            .push((ctx.topic().to_owned(), ctx.timestamp(), ctx.current_watermark()));
                        out.collect(v);
                    },
                )
                .elastic(name)
                .run_until(async {
                    let _ = rx.await;
                })
                .await
        });
        (tx, task, seen)
    };
    // Watermarks in elastic mode: over the partitions a member owns, never going back, never
    // ahead of the event time it read.
    let check_watermarks = |who: &str, seen: &Seen| -> usize {
        let seen = seen.lock().unwrap();
        let (mut max_ts, mut last, mut with) = (i64::MIN, None, 0);
        for (topic, ts, wm) in seen.iter() {
            assert_eq!(topic, &input, "{who}");
            max_ts = max_ts.max(*ts);
            if let Some(w) = wm {
                assert!(last.is_none_or(|l| *w >= l), "{who}: watermark went back");
                assert!(*w <= max_ts, "{who}: watermark {w} ahead of the events read ({max_ts})");
                last = Some(*w);
                with += 1;
            } else {
                assert!(last.is_none(), "{who}: a watermark, once seen, stays");
            }
        }
        with
    };
    let (stop_a, a, seen_a) = member("a");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (stop_b, b_task, _) = member("b");
    tokio::time::sleep(Duration::from_secs(3)).await;
    // b is abandoned midway, as a crashed process would be: its transaction stays open
    // until it times out, its membership until the session does.
    b_task.abort();
    drop(stop_b);
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A new b (the same member name) fences the abandoned one at once.
    let (stop_b2, b2, seen_b2) = member("b");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop_b2.send(()).unwrap();
    let s = b2.await.unwrap().unwrap();
    println!("b2: {s:?}");
    check_watermarks("b2", &seen_b2);
    producer.await.unwrap();
    wait_for_commits(&group, &input, n, Duration::from_secs(60), "a alone after b left").await;
    stop_a.send(()).unwrap();
    let s = a.await.unwrap().unwrap();
    assert!(s.checkpoints > 0, "{s:?}");
    assert!(check_watermarks("a", &seen_a) > 0, "member a never saw a watermark");
    let got = strom_read(&admin, &output).await;
    exact(n, &got).unwrap();
}

#[tokio::test]
async fn elastic_mode_refuses_what_it_cannot_honour() {
    let b = "127.0.0.1:1"; // never reached: each is refused before connecting
    let sink = || {
        KafkaSink::<String>::builder()
            .bootstrap_servers(b)
            .record_serializer(
                KafkaRecordSerializationSchema::builder()
                    .topic("out")
                    .value_serializer(StringSerializer)
                    .build()
                    .unwrap(),
            )
            .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
            .transactional_id_prefix("p")
            .build()
            .unwrap()
    };
    let source = || {
        KafkaSource::builder()
            .bootstrap_servers(b)
            .topics(["in"])
            .group_id("g")
            .deserializer(deserializer::string())
    };
    let refused = |p: Pipeline<String, String, String>, says: &'static str| async move {
        match p.run().await {
            Err(ConnectorError::Config(m)) => assert!(m.contains(says), "{m}"),
            other => panic!("expected a config error saying {says:?}, got {other:?}"),
        }
    };
    let ok_source = || source().build().unwrap();
    let no_group = KafkaSource::builder()
        .bootstrap_servers(b)
        .topics(["in"])
        .deserializer(deserializer::string())
        .build()
        .unwrap();
    refused(Pipeline::new(no_group, sink()).elastic("m"), "group id").await;
    let bounded = source().bounded(OffsetsInitializer::latest()).build().unwrap();
    refused(Pipeline::new(bounded, sink()).elastic("m"), "unbounded").await;
    let stopping = source().unbounded(OffsetsInitializer::latest()).build().unwrap();
    refused(Pipeline::new(stopping, sink()).elastic("m"), "unbounded").await;
    let partitions = KafkaSource::builder()
        .bootstrap_servers(b)
        .partitions([strom_connector::source::TopicPartition::new("in", 0)])
        .group_id("g")
        .deserializer(deserializer::string())
        .build()
        .unwrap();
    refused(Pipeline::new(partitions, sink()).elastic("m"), "subscribe to topics").await;
    // enable.auto.commit=true is refused when the source is built, before elastic mode sees it.
    let e = source().property("enable.auto.commit", "true").build().unwrap_err();
    assert!(e.to_string().contains("enable.auto.commit"), "{e}");
    let at_least_once = KafkaSink::<String>::builder()
        .bootstrap_servers(b)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic("out")
                .value_serializer(StringSerializer)
                .build()
                .unwrap(),
        )
        .delivery_guarantee(DeliveryGuarantee::AtLeastOnce)
        .build()
        .unwrap();
    refused(Pipeline::new(ok_source(), at_least_once).elastic("m"), "exactly-once").await;
    let store = Pipeline::new(ok_source(), sink())
        .checkpoint_store(MemoryCheckpointStore::new())
        .elastic("m");
    refused(store, "no checkpoint store").await;
    refused(
        Pipeline::new(ok_source(), sink()).subtask(0, 2).elastic("m"),
        "no subtask",
    )
    .await;
    let by_time = source()
        .starting_offsets(OffsetsInitializer::timestamp(0))
        .build()
        .unwrap();
    refused(Pipeline::new(by_time, sink()).elastic("m"), "by timestamp").await;
    refused(Pipeline::new(ok_source(), sink()).elastic("two words"), "member name").await;
    refused(Pipeline::new(ok_source(), sink()).elastic(""), "member name").await;
}

/// An elastic member paused in a transaction past `transaction.timeout.ms` (the broker
/// aborts it): the member's run ends with a clear error, nothing of the aborted transaction
/// is visible, and the same member started again finishes the input exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_elastic_member_whose_transaction_times_out_ends_with_a_clear_error_and_loses_nothing() {
    init_test_logging();
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let (input, output) = topics(&admin, "txn-timeout").await;
    let group = format!("{output}-group");
    let n = 3_000;
    produce(input.clone(), n, 100_000.0).await;
    let member = |pause_at: Option<u64>| {
        let source = KafkaSource::builder()
            .bootstrap_servers(&broker().bootstrap)
            .topics([&input])
            .group_id(&group)
            .starting_offsets(OffsetsInitializer::earliest())
            .property("isolation.level", "read_committed")
            .property("group.protocol", "consumer")
            .deserializer(deserializer::string())
            .build()
            .unwrap();
        let sink = KafkaSink::<String>::builder()
            .bootstrap_servers(&broker().bootstrap)
            .record_serializer(
                KafkaRecordSerializationSchema::builder()
                    .topic(&output)
                    .value_serializer(StringSerializer)
                    .build()
                    .unwrap(),
            )
            .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
            .transactional_id_prefix(format!("elastic-{output}"))
            // The broker aborts a transaction open longer than this (its timeout check runs
            // every second in scripts/kafka's broker).
            .transaction_timeout(Duration::from_secs(2))
            .build()
            .unwrap();
        let mut seen = 0u64;
        Pipeline::new(source, sink)
            .map(move |v: String| {
                seen += 1;
                if Some(seen) == pause_at {
                    // A stop-the-world pause inside an open transaction.
                    std::thread::sleep(Duration::from_secs(5));
                }
                v.to_uppercase()
            })
            .checkpoint_interval(Duration::from_millis(500))
            .elastic("m")
    };
    let started = Instant::now();
    let e = tokio::time::timeout(Duration::from_secs(120), member(Some(1_000)).run())
        .await
        .expect("the paused member neither recovered nor failed within 120 s")
        .expect_err("the broker aborted the member's transaction: the run must not succeed");
    let message = e.to_string();
    println!("paused member, after {:?}: {message}", started.elapsed());
    assert!(
        message.contains("transaction.timeout.ms") || message.to_lowercase().contains("timed out"),
        "the error does not say the transaction timed out: {message}"
    );
    // Nothing of the aborted transaction is visible; a new run of the member finishes.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let again = tokio::spawn(member(None).run_until(async {
        let _ = stopped.await;
    }));
    wait_for_commits(&group, &input, n, Duration::from_secs(60), "the restarted member").await;
    stop.send(()).unwrap();
    again.await.unwrap().unwrap();
    exact(n, &strom_read(&admin, &output).await).unwrap();
}
