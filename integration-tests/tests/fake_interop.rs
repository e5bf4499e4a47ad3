//! The fake cluster (strom-fake) with the Java client: Java's console producer writes to it
//! (idempotent, acks=all: InitProducerId, sequence numbers), Java's console consumer reads
//! back in a classic group, and Strom reads the same records; Java's TopicCommand lists and
//! creates topics. If Java's own client works against the fake, its protocol is the real one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use strom_client::{Consumer, ConsumerConfig};
use strom_fake::{ApiKey, FakeCluster};
use strom_integration_tests::{broker, java_console_consume, run_java_tool, unique_topic};

fn java_produce(bootstrap: &str, topic: &str, lines: &[String]) {
    let b = broker();
    let dir = std::env::temp_dir().join(unique_topic("fake-java"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("records.txt");
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let libs = format!("{}/*", b.var("STROM_KAFKA_LIBS"));
    let opts = b.env.get("STROM_KAFKA_TOOLS_JAVA_OPTS").cloned().unwrap_or_default();
    let cmd = format!(
        "java {opts} -cp '{libs}' {} --bootstrap-server {bootstrap} --topic {topic} --property parse.key=true \
         --property 'key.separator=\t' --producer-property acks=all --producer-property linger.ms=5 < '{}'",
        b.var("STROM_KAFKA_CONSOLE_PRODUCER_CLASS"),
        file.display()
    );
    let out = std::process::Command::new("sh").arg("-c").arg(&cmd).output().unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// Java's console consumer on the fake: the record lines, sorted.
fn java_consume(bootstrap: &str, topic: &str, max: usize, extra: &[&str]) -> Vec<String> {
    let mut lines = java_console_consume(bootstrap, topic, max, 20_000, extra);
    lines.sort();
    lines
}

/// `n` records `{prefix} {i}` written by Strom's producer to `topic`; their values, sorted.
async fn strom_produce(bootstrap: &str, topic: &str, prefix: &str, n: usize) -> Vec<String> {
    let p = strom_client::Producer::new(strom_client::ProducerConfig::new(bootstrap))
        .await
        .unwrap();
    let mut want = Vec::new();
    for i in 0..n {
        let v = format!("{prefix} {i}");
        want.push(v.clone());
        let _d = p.send(strom_client::ProducerRecord::new(topic, v)).await.unwrap();
    }
    p.close().await.unwrap();
    want.sort();
    want
}

#[tokio::test(flavor = "multi_thread")]
async fn javas_console_producer_and_consumer_work_against_the_fake() {
    let cluster = FakeCluster::builder()
        .brokers(3)
        .topic("orders", 3, 2)
        .start()
        .await
        .unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let mut want: Vec<String> = (0..300).map(|i| format!("k{}\tvalue {i}", i % 11)).collect();
    java_produce(&bootstrap, "orders", &want);
    want.sort();
    let total: i64 = (0..3).map(|p| cluster.end_offset("orders", p).unwrap()).sum();
    assert_eq!(total, 300, "Java's producer wrote each record once");
    let reqs = cluster.requests();
    assert!(
        reqs.iter().any(|r| r.api == ApiKey::InitProducerId),
        "Java's producer is idempotent by default"
    );

    // Java's consumer in a classic group: FindCoordinator, JoinGroup, SyncGroup, Fetch,
    // OffsetCommit, LeaveGroup.
    let got = java_consume(
        &bootstrap,
        "orders",
        300,
        &["--group", "java-group", "--property", "print.key=true"],
    );
    assert_eq!(got, want);
    let reqs = cluster.requests();
    for api in [ApiKey::JoinGroup, ApiKey::SyncGroup, ApiKey::OffsetCommit] {
        assert!(
            reqs.iter().any(|r| r.api == api && r.client_id.contains("console")),
            "{api:?} from Java"
        );
    }

    // Strom reads the same records, each partition in order.
    let mut cc = ConsumerConfig::new(&bootstrap);
    cc.set("group.id", "strom-group").unwrap();
    cc.set("auto.offset.reset", "earliest").unwrap();
    let mut c = Consumer::new(cc).await.unwrap();
    c.subscribe(&["orders"]).unwrap();
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut strom = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while strom.len() < 300 {
        assert!(Instant::now() < deadline, "Strom read {} of 300", strom.len());
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            by_partition.entry(r.partition).or_default().push(r.offset);
            let k = String::from_utf8(r.key.clone().unwrap().to_vec()).unwrap();
            let v = String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap();
            strom.push(format!("{k}\t{v}"));
        }
    }
    c.close().await.unwrap();
    strom.sort();
    assert_eq!(strom, want);
    for offsets in by_partition.values() {
        assert!(offsets.windows(2).all(|w| w[1] == w[0] + 1), "{offsets:?}");
    }

    // Java's TopicCommand: create and list.
    let out = run_java_tool(
        "org.apache.kafka.tools.TopicCommand",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--create",
            "--topic",
            "made-by-java",
            "--partitions",
            "5",
        ],
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run_java_tool(
        "org.apache.kafka.tools.TopicCommand",
        &["--bootstrap-server", &bootstrap, "--list"],
    );
    let listed = String::from_utf8(out.stdout).unwrap();
    assert!(listed.lines().any(|l| l == "made-by-java"), "{listed}");
    assert_eq!(cluster.end_offset("made-by-java", 4), Some(0));
}

/// Java's TransactionalMessageCopier (consume, produce and commit offsets in transactions,
/// aborting some at random) copies a topic on the fake, under transaction.version 1 and 2
/// (KIP-890); Java's read_committed console consumer sees every record exactly once, none
/// of the aborted copies.
#[tokio::test(flavor = "multi_thread")]
async fn javas_transactional_copier_works_against_the_fake() {
    for tv in [1, 2] {
        copier_against_the_fake(tv).await;
    }
}

async fn copier_against_the_fake(tv: i16) {
    let cluster = FakeCluster::builder()
        .transaction_version(tv)
        .brokers(3)
        .topic("in", 1, 3)
        .topic("out", 1, 3)
        .start()
        .await
        .unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let want = strom_produce(&bootstrap, "in", "record", 200).await;
    let copier = [
        "--broker-list",
        &bootstrap,
        "--input-topic",
        "in",
        "--input-partition",
        "0",
        "--output-topic",
        "out",
        "--consumer-group",
        "copier",
        "--transactional-id",
        "copier-0",
        "--transaction-size",
        "20",
        "--use-group-metadata",
        "--enable-random-aborts",
    ];
    let out = run_java_tool("org.apache.kafka.tools.TransactionalMessageCopier", &copier);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let got = java_consume(
        &bootstrap,
        "out",
        200,
        &["--consumer-property", "isolation.level=read_committed"],
    );
    assert_eq!(got, want, "transaction.version {tv}");
    let reqs = cluster.requests();
    let sent = |api: ApiKey| {
        reqs.iter()
            .filter(|r| r.api == api)
            .map(|r| r.version)
            .collect::<Vec<_>>()
    };
    assert!(
        !sent(ApiKey::TxnOffsetCommit).is_empty(),
        "TxnOffsetCommit from the copier"
    );
    let end = sent(ApiKey::EndTxn);
    if tv >= 2 {
        // KIP-890: Produce and TxnOffsetCommit add to the transaction themselves.
        assert!(end.iter().all(|v| *v >= 5) && !end.is_empty(), "EndTxn {end:?}");
        assert!(
            sent(ApiKey::AddPartitionsToTxn).is_empty(),
            "TV2: no AddPartitionsToTxn"
        );
        assert!(sent(ApiKey::AddOffsetsToTxn).is_empty(), "TV2: no AddOffsetsToTxn");
    } else {
        assert!(end.iter().all(|v| *v <= 3) && !end.is_empty(), "EndTxn {end:?}");
        assert!(
            !sent(ApiKey::AddPartitionsToTxn).is_empty(),
            "AddPartitionsToTxn from the copier"
        );
        assert!(
            !sent(ApiKey::AddOffsetsToTxn).is_empty(),
            "AddOffsetsToTxn from the copier"
        );
    }
}

/// Java's console consumer in a KIP-848 group (`group.protocol=consumer`) on the fake:
/// ConsumerGroupHeartbeat with server-side assignment, commits at the member epoch.
#[tokio::test(flavor = "multi_thread")]
async fn javas_kip848_consumer_works_against_the_fake() {
    let cluster = FakeCluster::builder()
        .topic("events", 3, 1)
        .consumer_group_timing(Duration::from_millis(500), Duration::from_secs(10))
        .start()
        .await
        .unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let want = strom_produce(&bootstrap, "events", "event", 150).await;
    let got = java_consume(
        &bootstrap,
        "events",
        150,
        &["--group", "java-848", "--consumer-property", "group.protocol=consumer"],
    );
    assert_eq!(got, want);
    let reqs = cluster.requests();
    assert!(reqs
        .iter()
        .any(|r| r.api == ApiKey::ConsumerGroupHeartbeat && r.client_id.contains("console")));
    assert!(!reqs.iter().any(|r| r.api == ApiKey::JoinGroup), "no classic join");
}
