//! The client's examples (`client/examples/`), the connector's (`connector/examples/`) and
//! the fake cluster's (`fake/examples/`, which needs no broker), built and run against the
//! real broker: each must exit 0 and
//! print what it did, and what it did is checked independently (committed offsets, the
//! records a read_committed consumer sees, the metrics it serves).
//!
//! The examples are built here with the `cargo` that runs the tests (same target directory,
//! same features as this crate's `gssapi`, so `cargo test --workspace [--all-features]`
//! reuses what it built), never taken stale from `target/`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use strom_client::{Admin, ClientConfig, Consumer, ConsumerConfig, IsolationLevel, TopicPartition};
use strom_integration_tests::{broker, repo_root, unique_topic};

/// Builds every example of strom-client and strom-connector once; their paths by name.
fn examples() -> &'static BTreeMap<String, PathBuf> {
    static BUILT: OnceLock<BTreeMap<String, PathBuf>> = OnceLock::new();
    BUILT.get_or_init(|| {
        let mut cmd = Command::new(env!("CARGO"));
        cmd.current_dir(repo_root()).args([
            "build",
            "--workspace",
            "--examples",
            "--message-format=json-render-diagnostics",
        ]);
        // The variables cargo sets for this test process, not for a build: a build script
        // that watches one (ring's watches CARGO_MANIFEST_DIR) would otherwise rebuild here
        // and again in the next `cargo test`, each time.
        for (key, _) in std::env::vars_os() {
            let key = key.to_string_lossy();
            let per_test = key.starts_with("CARGO_PKG_")
                || matches!(
                    &*key,
                    "CARGO_MANIFEST_DIR"
                        | "CARGO_MANIFEST_PATH"
                        | "CARGO_CRATE_NAME"
                        | "CARGO_BIN_NAME"
                        | "CARGO_PRIMARY_PACKAGE"
                        | "CARGO_TARGET_TMPDIR"
                        | "CARGO_RUSTC_CURRENT_DIR"
                        | "OUT_DIR"
                );
            if per_test {
                cmd.env_remove(&*key);
            }
        }
        // The features of the `cargo test` that runs this, so its artifacts are reused.
        if cfg!(feature = "gssapi") {
            cmd.arg("--all-features");
        }
        let out = cmd.stderr(Stdio::inherit()).output().expect("cannot run cargo");
        assert!(out.status.success(), "cargo build --examples failed ({})", out.status);
        let mut built = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            let is_client_example = msg["reason"] == "compiler-artifact"
                && msg["target"]["kind"] == serde_json::json!(["example"])
                && msg["package_id"].as_str().is_some_and(|id| {
                    id.contains("strom-client") || id.contains("strom-connector") || id.contains("strom-fake")
                });
            if let (true, Some(exe)) = (is_client_example, msg["executable"].as_str()) {
                built.insert(msg["target"]["name"].as_str().unwrap().to_owned(), PathBuf::from(exe));
            }
        }
        built
    })
}

/// Runs example `name` with `args` and `env` (and `KAFKA_BOOTSTRAP_SERVERS` of the shared
/// broker), killing it after `limit`; fails unless it exits 0. Returns its stdout.
fn run(name: &str, args: &[&str], env: &[(&str, &str)], limit: Duration) -> String {
    let exe = examples()
        .get(name)
        .unwrap_or_else(|| panic!("cargo built no example {name}: {:?}", examples().keys()));
    let mut child = Command::new(exe)
        .args(args)
        .env("KAFKA_BOOTSTRAP_SERVERS", &broker().bootstrap)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        stdout.read_to_string(&mut s).map(|_| s)
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        stderr.read_to_string(&mut s).map(|_| s)
    });
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let (out, err) = (out.join().unwrap().unwrap(), err.join().unwrap().unwrap());
    match status {
        Some(s) if s.success() => out,
        Some(s) => panic!("example {name} {args:?} failed ({s})\nstdout:\n{out}\nstderr:\n{err}"),
        None => panic!("example {name} {args:?} did not end within {limit:?}\nstdout:\n{out}\nstderr:\n{err}"),
    }
}

fn assert_line(out: &str, line: &str) {
    assert!(out.lines().any(|l| l == line), "no line {line:?} in:\n{out}");
}

const LIMIT: Duration = Duration::from_secs(120);

/// strom-fake's example: a consume-process-produce service tested against a fake cluster
/// that refuses produces, delays a fetch and loses a broker; every order is shipped.
#[test]
fn testing_an_app_against_the_fake_cluster() {
    let out = run("test_an_app", &[], &[], LIMIT);
    assert!(
        out.lines()
            .any(|l| l.starts_with("shipped all 300 orders through 3 refused produces")),
        "{out}"
    );
}

#[tokio::test]
async fn produce_then_consume_in_a_group_with_commits() {
    let topic = unique_topic("example-produce");
    let group = format!("{topic}-group");
    let out = run("produce", &[&topic, "20"], &[], LIMIT);
    assert_line(&out, &format!("delivered 20 records to {topic}"));
    let out = run("consume_group", &[&topic, &group, "20"], &[], LIMIT);
    assert_line(&out, &format!("consumed 20 records of {topic} in group {group}"));
    // Every record it printed is committed: the group's offsets add up to 20.
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let offsets = admin.group_offsets(&group).await.unwrap();
    assert_eq!(offsets.values().sum::<i64>(), 20, "committed offsets: {offsets:?}");
    assert_eq!(
        out.lines().filter(|l| l.contains(": Some(\"value ")).count(),
        20,
        "{out}"
    );
}

#[tokio::test]
async fn transactions_copy_exactly_once() {
    let input = unique_topic("example-txn-in");
    let output = unique_topic("example-txn-out");
    let out = run("transactions", &[&input, &output, "30"], &[], LIMIT);
    assert!(
        out.lines()
            .any(|l| l.starts_with(&format!("copied 30 records from {input} to {output} in "))),
        "{out}"
    );
    // The input offsets were committed with the transactions.
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let offsets = admin.group_offsets(&format!("{input}-group")).await.unwrap();
    assert_eq!(offsets.values().sum::<i64>(), 30, "committed offsets: {offsets:?}");
    // A read_committed reader sees every record once, uppercased.
    let mut config = ConsumerConfig::new(&broker().bootstrap);
    config.isolation_level = IsolationLevel::ReadCommitted;
    let mut consumer = Consumer::new(config).await.unwrap();
    let partitions: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new(&output, p)).collect();
    consumer.assign(partitions.clone()).unwrap();
    consumer.seek_to_beginning(&partitions).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while seen.len() < 30 && Instant::now() < deadline {
        for r in consumer.poll(Duration::from_millis(500)).await.unwrap() {
            seen.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
    // Nothing more arrives.
    for r in consumer.poll(Duration::from_secs(1)).await.unwrap() {
        seen.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
    }
    let expected: BTreeSet<String> = (0..30).map(|i| format!("RECORD {i}")).collect();
    assert_eq!(seen.len(), 30, "{seen:?}");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected);
}

#[tokio::test]
async fn admin_tour() {
    let topic = unique_topic("example-admin");
    let out = run("admin", &[&topic], &[], LIMIT);
    assert_line(&out, &format!("{topic} retention.ms=Some(\"3600000\")"));
    assert_line(
        &out,
        &format!("group {topic}-group: Classic protocol, state Empty, 0 member(s)"),
    );
    assert_line(
        &out,
        &format!("created, described and deleted topic {topic} and group {topic}-group"),
    );
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    assert!(!admin.list_topics(false).await.unwrap().contains(&topic));
}

#[test]
fn tls_and_sasl_scram() {
    let b = broker();
    let env: Vec<(&str, &str)> = [
        "STROM_SASL_SSL_BOOTSTRAP",
        "STROM_SASL_USERNAME",
        "STROM_SASL_PASSWORD",
        "STROM_SSL_CA_LOCATION",
    ]
    .into_iter()
    .map(|k| (k, b.var(k)))
    .collect();
    let out = run("tls_sasl", &[], &env, LIMIT);
    assert!(out.lines().any(|l| l.starts_with("authenticated to cluster ")), "{out}");
    assert!(out.contains("\"sasl.password\": \"[redacted]\""), "{out}");
    assert!(
        !out.contains(b.var("STROM_SASL_PASSWORD")),
        "the password was printed:\n{out}"
    );
    assert!(out.lines().any(|l| l.ends_with(" over SASL_SSL")), "{out}");
}

#[test]
fn metrics_counters() {
    let topic = unique_topic("example-metrics");
    let out = run("metrics", &[&topic], &[], LIMIT);
    assert!(out.lines().any(|l| l.starts_with("consumer: 100 records, ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("producer, broker ")), "{out}");
    assert!(out.lines().any(|l| l.starts_with("consumer, broker ")), "{out}");
}

/// The connector's example copies A to B exactly once and serves its metrics under Flink's
/// names while it runs (`--metrics-addr`), scraped here and parsed with prometheus_client.
#[tokio::test]
async fn exactly_once_pipeline_serves_flink_metrics() {
    use strom_client::{NewTopic, Producer, ProducerConfig, ProducerRecord};
    let input = unique_topic("example-pipeline-a");
    let output = unique_topic("example-pipeline-b");
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin
        .create_topics(&[NewTopic::new(&input, 2), NewTopic::new(&output, 2)])
        .await
        .unwrap();
    let producer = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    for i in 0..300 {
        drop(
            producer
                .send(ProducerRecord::new(&input, format!("v{i}")))
                .await
                .unwrap(),
        );
    }
    producer.flush().await.unwrap();
    let dir = std::env::temp_dir().join(format!("strom-{output}"));
    let exe = examples()
        .get("exactly_once_pipeline")
        .expect("the connector example was built");
    // 300 records at 150 per second: two seconds of run to scrape.
    let mut child = Command::new(exe)
        .args([
            "--bootstrap",
            &broker().bootstrap,
            "--input",
            &input,
            "--output",
            &output,
        ])
        .args(["--checkpoint-dir", dir.to_str().unwrap(), "--bounded", "--rate", "150"])
        .args(["--interval-ms", "300", "--metrics-addr", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the example printed its metrics address");
        lines.push(line.clone());
        if let Some(url) = line.strip_prefix("metrics: ") {
            break url.to_owned();
        }
    };
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .to_owned();
    let scrape = || {
        use std::io::Write;
        let mut sock = std::net::TcpStream::connect(&addr).unwrap();
        sock.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        sock.read_to_string(&mut text).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        text.split_once("\r\n\r\n").unwrap().1.to_owned()
    };
    // While it runs: records are coming in, per partition under Flink's labels.
    let deadline = Instant::now() + Duration::from_secs(60);
    let samples = loop {
        let samples = strom_integration_tests::parse_prometheus(&scrape());
        let records_in = samples
            .iter()
            .find(|s| s.name == "flink_numRecordsIn")
            .and_then(|s| s.value)
            .unwrap_or(0.0);
        if records_in > 0.0 {
            break samples;
        }
        assert!(Instant::now() < deadline, "flink_numRecordsIn stayed 0");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        samples
            .iter()
            .any(|s| s.name == "flink_KafkaSourceReader_topic_partition_currentOffset"
                && s.labels.get("topic").and_then(|t| t.as_str()) == Some(input.as_str())),
        "{samples:?}"
    );
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(60),
            "the bounded pipeline did not end"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}; stdout: {lines:?}");
    // B holds A's 300 records under read_committed.
    let mut cc = ConsumerConfig::new(&broker().bootstrap);
    cc.isolation_level = IsolationLevel::ReadCommitted;
    let mut consumer = Consumer::new(cc).await.unwrap();
    let partitions = [TopicPartition::new(&output, 0), TopicPartition::new(&output, 1)];
    consumer.assign(partitions.clone()).unwrap();
    consumer.seek_to_beginning(&partitions).unwrap();
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < 300 {
        assert!(Instant::now() < deadline, "B has {got} of 300 records");
        got += consumer.poll(Duration::from_millis(200)).await.unwrap().len();
    }
    assert_eq!(got, 300);
    let _ = std::fs::remove_dir_all(dir);
}

/// Waits for `child` to exit (killing it and failing after `limit`) and returns its output.
fn exit_within(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{:?} did not exit within {limit:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

/// The connector's example in elastic mode, as a user runs it: two members of one group
/// (`--elastic --group G --member M`) share A's partitions; one stopped with Ctrl-C (SIGINT),
/// the other with SIGTERM, each makes a last commit and exits 0; B holds every record of A
/// once under read_committed.
#[tokio::test]
async fn exactly_once_pipeline_elastic_members_stop_on_ctrl_c_and_sigterm() {
    use strom_client::{NewTopic, Producer, ProducerConfig, ProducerRecord};
    let input = unique_topic("example-elastic-a");
    let output = unique_topic("example-elastic-b");
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin
        .create_topics(&[NewTopic::new(&input, 2), NewTopic::new(&output, 2)])
        .await
        .unwrap();
    let producer = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    for i in 0..400 {
        drop(
            producer
                .send(ProducerRecord::new(&input, format!("v{i}")).partition(i % 2))
                .await
                .unwrap(),
        );
    }
    producer.flush().await.unwrap();
    let exe = examples()
        .get("exactly_once_pipeline")
        .expect("the connector example was built");
    let member = |name: &str| {
        Command::new(exe)
            .args([
                "--bootstrap",
                &broker().bootstrap,
                "--input",
                &input,
                "--output",
                &output,
            ])
            .args(["--elastic", "--group", &format!("{output}-g"), "--member", name])
            .args(["--interval-ms", "300", "--transform", "upper"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap()
    };
    let mut a = member("a");
    let mut b = member("b");
    // Both run until every record of A is committed to B.
    let read_b = |expect: usize| {
        let output = output.clone();
        async move {
            let mut cc = ConsumerConfig::new(&broker().bootstrap);
            cc.isolation_level = IsolationLevel::ReadCommitted;
            let mut consumer = Consumer::new(cc).await.unwrap();
            let partitions = [TopicPartition::new(&output, 0), TopicPartition::new(&output, 1)];
            consumer.assign(partitions.clone()).unwrap();
            consumer.seek_to_beginning(&partitions).unwrap();
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while got.len() < expect {
                assert!(Instant::now() < deadline, "B has {} of {expect} records", got.len());
                for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
                    got.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
                }
            }
            // Nothing more arrives.
            got.extend(
                consumer
                    .poll(Duration::from_millis(500))
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
            );
            got
        }
    };
    read_b(400).await;
    for (child, signal) in [(&mut a, "-INT"), (&mut b, "-TERM")] {
        assert!(child.try_wait().unwrap().is_none(), "a member exited early");
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
    }
    for (name, child) in [("a", a), ("b", b)] {
        let out = exit_within(child, Duration::from_secs(30));
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "member {name}: {}; stdout:\n{stdout}", out.status);
        assert!(
            stdout.lines().any(|l| l.starts_with("done: end=Stopped")),
            "member {name}:\n{stdout}"
        );
    }
    let mut got = read_b(400).await;
    got.sort();
    let mut want: Vec<String> = (0..400).map(|i| format!("V{i}")).collect();
    want.sort();
    assert_eq!(got, want);
}

/// A new example must get a test here.
#[test]
fn every_example_is_run_here() {
    let tested = [
        "admin",
        "consume_group",
        "exactly_once_pipeline",
        "metrics",
        "produce",
        "test_an_app",
        "tls_sasl",
        "transactions",
    ];
    let built: Vec<&str> = examples().keys().map(String::as_str).collect();
    assert_eq!(built, tested, "client examples and the examples these tests run differ");
}
