//! `strom log-dirs describe|move` and `Admin::describe_log_dirs|alter_replica_log_dirs`
//! against a private broker with two log directories (JBOD): what describe prints (parsed
//! from `--json`) is where the replicas are, a move lands the replica in the other
//! directory with its records, and a directory the broker does not have is a one-line
//! error naming LOG_DIR_NOT_FOUND.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::process::Output;
use std::time::{Duration, Instant};

use common::strom;
use serde_json::Value;
use strom_client::{Admin, ClientConfig, ErrorCode, TopicPartitionReplica};
use strom_integration_tests::{unique_topic, PrivateBroker};

fn run(b: &PrivateBroker, args: &[&str], stdin: Option<&str>) -> Output {
    let mut all = vec!["-b", b.bootstrap.as_str()];
    all.extend_from_slice(args);
    strom(&all, stdin)
}

fn ok(b: &PrivateBroker, args: &[&str], stdin: Option<&str>) -> String {
    let out = run(b, args, stdin);
    assert!(
        out.status.success(),
        "strom {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// partition -> (directory, is_future) of `topic`'s replicas on broker 1, per `--json`.
fn placed(b: &PrivateBroker, topic: &str) -> BTreeMap<i64, Vec<(String, bool)>> {
    let doc: Value = serde_json::from_str(
        ok(
            b,
            &["log-dirs", "describe", "--broker", "1", "--topic", topic, "--json"],
            None,
        )
        .trim(),
    )
    .unwrap();
    let mut out: BTreeMap<i64, Vec<(String, bool)>> = BTreeMap::new();
    for d in doc[0]["log_dirs"].as_array().unwrap() {
        for r in d["replicas"].as_array().unwrap() {
            assert_eq!(r["topic"], topic);
            out.entry(r["partition"].as_i64().unwrap()).or_default().push((
                d["path"].as_str().unwrap().to_owned(),
                r["is_future"].as_bool().unwrap(),
            ));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn describe_and_move_replicas_between_log_dirs() {
    let root = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("log-dirs-{}", std::process::id()));
    let (a, c) = (root.join("disk-a"), root.join("disk-b"));
    let overrides = format!("log.dirs={},{}", a.display(), c.display());
    let b = PrivateBroker::start_with(24292, &[("STROM_KAFKA_OVERRIDES", &overrides)]);
    let (a, c) = (a.display().to_string(), c.display().to_string());
    let topic = unique_topic("cli-log-dirs");
    ok(&b, &["topics", "create", &topic, "--partitions", "4"], None);
    let lines: String = (0..100).map(|i| format!("record-{i}\n")).collect();
    ok(&b, &["produce", &topic], Some(&lines));

    // Both directories, with their volume's size; every replica in exactly one of them.
    let doc: Value = serde_json::from_str(ok(&b, &["log-dirs", "describe", "--json"], None).trim()).unwrap();
    assert_eq!(doc[0]["broker"], 1, "{doc}");
    let mut paths: Vec<&str> = doc[0]["log_dirs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    paths.sort_unstable();
    assert_eq!(paths, [a.as_str(), c.as_str()], "{doc}");
    for d in doc[0]["log_dirs"].as_array().unwrap() {
        assert!(d["error"].is_null(), "{d}");
        assert!(d["total_bytes"].as_i64().unwrap() >= d["usable_bytes"].as_i64().unwrap());
    }
    let before = placed(&b, &topic);
    assert_eq!(before.len(), 4, "{before:?}");
    assert!(before.values().all(|v| v.len() == 1 && !v[0].1), "{before:?}");
    let sizes: i64 =
        serde_json::from_str::<Value>(ok(&b, &["log-dirs", "describe", "--topic", &topic, "--json"], None).trim())
            .unwrap()[0]["log_dirs"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|d| {
                d["replicas"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["size"].as_i64().unwrap())
            })
            .sum();
    assert!(sizes > 0, "100 records take some bytes");

    // Move partition 0 to the directory it is not in; it lands there (after a future
    // replica catches up), and its records are all still there.
    let from = before[&0][0].0.clone();
    let to = if from == a { c.clone() } else { a.clone() };
    let out = ok(
        &b,
        &["log-dirs", "move", "--replica", &format!("{topic}:0@1"), "--to", &to],
        None,
    );
    assert_eq!(out.trim(), format!("moving {topic}:0@1 to {to}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = placed(&b, &topic);
        if now[&0] == vec![(to.clone(), false)] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "partition 0 not moved to {to} within 30 s: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let text = ok(&b, &["log-dirs", "describe", "--topic", &topic], None);
    assert!(text.starts_with("broker 1: 2 log dirs"), "{text}");
    let consumed = ok(&b, &["consume", &topic, "--from", "earliest", "--count", "100"], None);
    assert_eq!(consumed.lines().count(), 100, "{consumed}");

    // The Admin API: a directory the broker does not have is that replica's error.
    let admin = Admin::connect(ClientConfig::new(&b.bootstrap)).await.unwrap();
    let moves = BTreeMap::from([(TopicPartitionReplica::new(&topic, 1, 1), "/no/such/dir".to_owned())]);
    let results = admin.alter_replica_log_dirs(&moves).await.unwrap();
    let err = results[&TopicPartitionReplica::new(&topic, 1, 1)].as_ref().unwrap_err();
    assert_eq!(err.kafka_code(), Some(ErrorCode::LogDirNotFound), "{err}");
    assert!(err.to_string().contains(&format!("{topic}-1 on broker 1")), "{err}");
    let dirs = admin.describe_log_dirs(&[1]).await.unwrap();
    assert_eq!(dirs[&1].len(), 2);

    // The same through the CLI: one line, exit 1. Usage errors exit 2.
    let out = run(
        &b,
        &[
            "log-dirs",
            "move",
            "--replica",
            &format!("{topic}:1@1"),
            "--to",
            "/no/such/dir",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("LOG_DIR_NOT_FOUND") && err.trim().lines().count() == 1,
        "{err}"
    );
    for args in [
        vec!["log-dirs", "move", "--replica", "t:0", "--to", "/x"],
        vec!["log-dirs", "move", "--to", "/x"],
        vec!["log-dirs", "move", "--replica", "t:0@1"],
    ] {
        let out = run(&b, &args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
    drop(b);
    let _ = std::fs::remove_dir_all(root);
}
