//! `strom groups reset-offsets|seek|delete` and `strom topics delete-records` against the
//! broker: what they print is what the broker then holds, a dry run changes nothing, an
//! active group is refused, bad arguments are usage errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{ok, strom};
use strom_integration_tests::{broker, unique_topic};

/// The committed offsets `groups describe` shows: (partition, committed) per row of `topic`.
fn committed(group: &str, topic: &str) -> Vec<(i32, i64)> {
    let d = ok(&["groups", "describe", group], None);
    let mut rows: Vec<(i32, i64)> = d
        .lines()
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.first() == Some(&topic)).then(|| (cols[1].parse().unwrap(), cols[2].parse().unwrap()))
        })
        .collect();
    rows.sort_unstable();
    rows
}

/// The NEW-OFFSET column of a reset: (partition, offset).
fn plan(out: &str) -> Vec<(i32, i64)> {
    out.lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[2].parse().unwrap(), cols[3].parse().unwrap())
        })
        .collect()
}

#[test]
fn reset_offsets_moves_an_inactive_group_and_refuses_an_active_one() {
    let topic = unique_topic("cli-reset");
    ok(&["topics", "create", &topic, "--partitions", "2"], None);
    // 20 records in each partition, with timestamps 1000 apart from a known time.
    let lines: String = (0..40).map(|i| format!("{}:v{i}\n", i % 2)).collect();
    ok(
        &[
            "produce",
            &topic,
            "-K",
            ":",
            "-X",
            "partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner",
        ],
        Some(&lines),
    );
    let group = unique_topic("cli-reset-group");
    assert_eq!(
        ok(&["consume", &topic, "--group", &group, "--count", "40"], None)
            .lines()
            .count(),
        40
    );
    assert_eq!(committed(&group, &topic), vec![(0, 20), (1, 20)]);

    // A dry run prints the plan and commits nothing.
    let out = ok(
        &[
            "groups",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-earliest",
            "--dry-run",
        ],
        None,
    );
    assert_eq!(plan(&out), vec![(0, 0), (1, 0)], "{out}");
    assert_eq!(committed(&group, &topic), vec![(0, 20), (1, 20)]);

    let out = ok(
        &["groups", "reset-offsets", &group, "--topic", &topic, "--to-earliest"],
        None,
    );
    assert_eq!(plan(&out), vec![(0, 0), (1, 0)], "{out}");
    assert_eq!(committed(&group, &topic), vec![(0, 0), (1, 0)]);
    // The group reads everything again.
    assert_eq!(
        ok(&["consume", &topic, "--group", &group, "--until-end"], None)
            .lines()
            .count(),
        40
    );

    // seek is the same command; --shift-by moves from the committed offset, one partition.
    let out = ok(
        &[
            "groups",
            "seek",
            &group,
            "--topic",
            &topic,
            "--partition",
            "1",
            "--shift-by",
            "-5",
        ],
        None,
    );
    assert_eq!(plan(&out), vec![(1, 15)], "{out}");
    assert_eq!(committed(&group, &topic), vec![(0, 20), (1, 15)]);
    // Past either end: clamped to the end.
    let out = ok(
        &[
            "groups",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-offset",
            "1000",
        ],
        None,
    );
    assert_eq!(plan(&out), vec![(0, 20), (1, 20)], "{out}");
    let out = ok(
        &[
            "groups",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--shift-by",
            "-1000",
        ],
        None,
    );
    assert_eq!(plan(&out), vec![(0, 0), (1, 0)], "{out}");
    // By time: everything was written after 2020, and nothing after 2100.
    let out = ok(
        &[
            "groups",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-datetime",
            "2020-01-01T00:00:00Z",
        ],
        None,
    );
    assert_eq!(plan(&out), vec![(0, 0), (1, 0)], "{out}");
    let out = ok(
        &[
            "groups",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-datetime",
            "2100-01-01T00:00:00Z",
        ],
        None,
    );
    assert_eq!(plan(&out), vec![(0, 20), (1, 20)], "{out}");
    let out = ok(
        &["groups", "reset-offsets", &group, "--topic", &topic, "--to-latest"],
        None,
    );
    assert_eq!(plan(&out), vec![(0, 20), (1, 20)], "{out}");

    // An active member: refused, nothing changed.
    let mut member = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["consume", &topic, "--group", &group])
        .env("STROM_BOOTSTRAP_SERVERS", &broker().bootstrap)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let d = ok(&["groups", "describe", &group], None);
        if d.contains("members 1") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the member never joined: {d}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let out = strom(
        &["groups", "reset-offsets", &group, "--topic", &topic, "--to-earliest"],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("active member") && err.contains(&group), "{err}");
    // The broker refuses to delete offsets of a topic the group consumes.
    let out = strom(&["groups", "delete-offsets", &group, "--topic", &topic], None);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("GROUP_SUBSCRIBED_TO_TOPIC") && err.contains(&topic),
        "{err}"
    );
    let _ = member.kill();
    let _ = member.wait();

    // Usage errors: no target, two targets, a bad time.
    for args in [
        vec!["groups", "reset-offsets", &group, "--topic", &topic],
        vec![
            "groups",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-earliest",
            "--to-latest",
        ],
    ] {
        let out = strom(&args, None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = strom(
        &[
            "groups",
            "reset-offsets",
            &group,
            "--topic",
            &topic,
            "--to-datetime",
            "tuesday",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--to-datetime tuesday"));
}

#[test]
fn groups_delete_and_delete_records() {
    let topic = unique_topic("cli-trim");
    ok(&["topics", "create", &topic, "--partitions", "2"], None);
    let lines: String = (0..40).map(|i| format!("{}:v{i}\n", i % 2)).collect();
    ok(
        &[
            "produce",
            &topic,
            "-K",
            ":",
            "-X",
            "partitioner.class=org.apache.kafka.clients.producer.RoundRobinPartitioner",
        ],
        Some(&lines),
    );

    let out = ok(
        &["topics", "delete-records", &topic, "--partition", "0", "--before", "15"],
        None,
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "15"]),
        "{out}"
    );
    let offsets = ok(&["offsets", &topic], None);
    assert!(
        offsets
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["0", "15", "20"]),
        "{offsets}"
    );
    // Every partition, everything.
    ok(&["topics", "delete-records", &topic], None);
    let offsets = ok(&["offsets", &topic], None);
    for p in ["0", "1"] {
        assert!(
            offsets
                .lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == [p, "20", "20"]),
            "{offsets}"
        );
    }
    // Past the high watermark: the broker's error, named.
    let out = strom(
        &["topics", "delete-records", &topic, "--partition", "1", "--before", "99"],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("OFFSET_OUT_OF_RANGE") && err.contains("partition 1"),
        "{err}"
    );

    // groups delete-offsets: one partition's committed offset goes, the other's stays.
    let g = unique_topic("cli-delete-offsets");
    // A group that does not exist yet gets offsets (as with Java's tool).
    ok(&["groups", "reset-offsets", &g, "--topic", &topic, "--to-latest"], None);
    assert_eq!(committed(&g, &topic), vec![(0, 20), (1, 20)]);
    ok(
        &["groups", "delete-offsets", &g, "--topic", &topic, "--partition", "0"],
        None,
    );
    assert_eq!(committed(&g, &topic), vec![(1, 20)]);

    // groups delete: an inactive group goes away.
    let group = unique_topic("cli-delete-group");
    ok(&["produce", &topic], Some("more\n"));
    ok(&["consume", &topic, "--group", &group, "--count", "1"], None);
    assert!(ok(&["groups", "list"], None).lines().any(|l| l.starts_with(&group)));
    ok(&["groups", "delete", &group], None);
    assert!(!ok(&["groups", "list"], None).lines().any(|l| l.starts_with(&group)));
    let out = strom(&["groups", "delete", &group], None);
    assert_eq!(out.status.code(), Some(1));
    let _ = std::io::stderr().flush();
}

/// `strom cluster` (kcat -L): brokers and partitions, as text and as JSON.
#[test]
fn cluster_lists_brokers_and_partitions() {
    let topic = unique_topic("cli-cluster");
    ok(&["topics", "create", &topic, "--partitions", "3"], None);
    let text = ok(&["cluster", "--topic", &topic], None);
    assert!(text.lines().next().unwrap().starts_with("cluster "), "{text}");
    assert!(text.contains(" (controller)"), "{text}");
    assert!(
        text.contains(&format!("topic \"{topic}\" with 3 partitions:")),
        "{text}"
    );
    assert_eq!(
        text.lines()
            .filter(|l| l.trim_start().starts_with("partition "))
            .count(),
        3,
        "{text}"
    );

    let doc: serde_json::Value = serde_json::from_str(&ok(&["cluster", "--json"], None)).unwrap();
    let brokers: Vec<i64> = doc["brokers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_i64().unwrap())
        .collect();
    assert!(!brokers.is_empty(), "{doc}");
    assert!(brokers.contains(&doc["controller"].as_i64().unwrap()), "{doc}");
    // Each broker's listeners (from its advertised.listeners), and the finalized features.
    let b0 = &doc["brokers"][0];
    let addr = format!("{}:{}", b0["host"].as_str().unwrap(), b0["port"]);
    assert!(
        b0["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().ends_with(&format!("://{addr}"))),
        "{doc}"
    );
    assert!(doc["features"]["metadata.version"].as_i64().unwrap() > 0, "{doc}");
    assert!(text.contains(", listeners ") && text.contains("features: "), "{text}");
    let t = doc["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["topic"] == topic.as_str())
        .expect("the topic is listed");
    let parts = t["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3);
    for p in parts {
        assert!(brokers.contains(&p["leader"].as_i64().unwrap()), "{p}");
        assert_eq!(p["replicas"], p["isrs"], "{p}");
    }
    assert!(
        !doc["topics"].as_array().unwrap().iter().any(|t| t["internal"] == true),
        "internal topics only with --internal"
    );
    // A group commit makes sure __consumer_offsets exists.
    ok(&["produce", &topic], Some("x\n"));
    ok(
        &["consume", &topic, "--group", &format!("{topic}-g"), "--count", "1"],
        None,
    );
    let doc: serde_json::Value = serde_json::from_str(&ok(&["cluster", "--json", "--internal"], None)).unwrap();
    assert!(doc["topics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["topic"] == "__consumer_offsets"));

    let out = strom(&["cluster", "--topic", "no-such-topic-for-cluster"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-topic-for-cluster"));
}

/// `strom completions SHELL`: a script the shell accepts, naming the subcommands; no broker
/// needed.
#[test]
fn completions_for_each_shell() {
    let run = |shell: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_strom"))
            .args(["completions", shell])
            .env("STROM_BOOTSTRAP_SERVERS", "127.0.0.1:1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let bash = run("bash");
    assert!(bash.contains("_strom()") && bash.contains("reset-offsets") && bash.contains("delete-records"));
    // bash parses it.
    let mut check = Command::new("bash").arg("-n").stdin(Stdio::piped()).spawn().unwrap();
    check.stdin.take().unwrap().write_all(bash.as_bytes()).unwrap();
    assert!(check.wait().unwrap().success(), "bash -n rejects the script");
    assert!(run("zsh").starts_with("#compdef strom"));
    assert!(run("fish").contains("complete -c strom"));
    let out = strom(&["completions", "tcsh"], None);
    assert_eq!(out.status.code(), Some(2));
}
