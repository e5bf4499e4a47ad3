//! `strom reassign start|list|cancel` and `strom elect-leaders` against a 3-broker cluster:
//! a kafka-reassign-partitions.sh plan file moves a partition (a dry run moves nothing),
//! `reassign list` shows it until it ends, `elect-leaders` makes the new preferred replica
//! the leader, the records stay readable; bad plans and cancelling nothing are one-line
//! errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use strom_integration_tests::{shared_cluster, unique_topic, PrivateBroker};

/// Node k has PLAINTEXT on PORT_BASE + 10 (k - 1).
const PORT_BASE: u16 = 23292;

fn cluster() -> &'static PrivateBroker {
    shared_cluster(PORT_BASE, 3)
}

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["-b", &cluster().bootstrap])
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = run(args, stdin);
    assert!(
        out.status.success(),
        "strom {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// (leader, replicas) of each partition of `topic`, from `strom cluster --json`.
fn placement(topic: &str) -> Vec<(i64, Vec<i64>)> {
    let doc: serde_json::Value =
        serde_json::from_str(ok(&["cluster", "--topic", topic, "--json"], None).trim()).unwrap();
    doc["topics"][0]["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["leader"].as_i64().unwrap(),
                p["replicas"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r.as_i64().unwrap())
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn a_plan_file_moves_a_partition_and_the_preferred_replica_is_elected() {
    let topic = unique_topic("cli-reassign");
    ok(
        &[
            "topics",
            "create",
            &topic,
            "--partitions",
            "2",
            "--replication-factor",
            "2",
        ],
        None,
    );
    let lines: String = (0..100).map(|i| format!("v{i}\n")).collect();
    ok(&["produce", &topic], Some(&lines));

    let before = placement(&topic);
    let old = &before[0].1;
    let missing = (1..=3).find(|n| !old.contains(n)).unwrap();
    // The node it lacked first (the preferred leader), and the old second replica.
    let target = vec![missing, old[1]];
    let dir = std::env::temp_dir().join(format!("strom-reassign-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plan = dir.join("plan.json");
    std::fs::write(
        &plan,
        serde_json::json!({"version": 1, "partitions": [{"topic": topic, "partition": 0, "replicas": target}]})
            .to_string(),
    )
    .unwrap();
    let plan = plan.to_str().unwrap();

    let dry = ok(
        &["reassign", "start", "--reassignment-json-file", plan, "--dry-run"],
        None,
    );
    assert!(dry.starts_with("dry run: would move 1 partitions"), "{dry}");
    assert_eq!(placement(&topic), before, "a dry run moves nothing");

    let started = ok(&["reassign", "start", "--reassignment-json-file", plan], None);
    assert!(started.contains(&format!("started: {topic}:0")), "{started}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let listed: serde_json::Value = serde_json::from_str(
            ok(
                &["reassign", "list", "--partition", &format!("{topic}:0"), "--json"],
                None,
            )
            .trim(),
        )
        .unwrap();
        if listed.as_array().unwrap().is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "still moving after 60 s: {listed}");
        std::thread::sleep(Duration::from_millis(300));
    }
    // The brokers' metadata follows the controller a moment later (meanwhile the replica
    // set still lists the removed replica).
    let deadline = Instant::now() + Duration::from_secs(30);
    while placement(&topic)[0].1 != target {
        assert!(
            Instant::now() < deadline,
            "replicas {:?}, not {target:?}",
            placement(&topic)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(placement(&topic)[1], before[1], "partition 1 was not in the plan");

    // The preferred replica leads after the election (if it did not already).
    let elected = ok(&["elect-leaders", "--topic", &topic, "--partition", "0"], None);
    assert!(
        elected.contains(&format!("{topic}:0 elected")) || elected.contains("already led"),
        "{elected}"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while placement(&topic)[0].0 != missing {
        assert!(
            Instant::now() < deadline,
            "leader of partition 0 is not {missing}: {:?}",
            placement(&topic)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    // Every record is still there.
    let read = ok(&["consume", &topic, "--from", "earliest", "--count", "100"], None);
    assert_eq!(read.lines().count(), 100);

    // Nothing to cancel; a plan naming a broker that does not exist; a bad plan file.
    let out = run(&["reassign", "cancel", "--partition", &format!("{topic}:1")], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NO_REASSIGNMENT_IN_PROGRESS"), "{err}");
    let out = run(&["reassign", "start", "--move", &format!("{topic}:1=7,8")], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("topic {topic} partition 1")));
    std::fs::write(dir.join("bad.json"), r#"{"version":1,"partitions":[{"topic":"t"}]}"#).unwrap();
    let out = run(
        &[
            "reassign",
            "start",
            "--reassignment-json-file",
            dir.join("bad.json").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("partitions[0] needs"));
    // Usage errors: no plan, both a plan file and moves, a partition without a topic.
    for args in [
        vec!["reassign", "start"],
        vec![
            "reassign",
            "start",
            "--move",
            "t:0=1",
            "--reassignment-json-file",
            "x.json",
        ],
        vec!["elect-leaders", "--partition", "0"],
    ] {
        assert_eq!(run(&args, None).status.code(), Some(2), "{args:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
