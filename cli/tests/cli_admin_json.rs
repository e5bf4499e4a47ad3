//! `--json` of `strom topics list|describe|delete-records`, `strom offsets` and `strom groups
//! list|describe|reset-offsets`, checked by parsing it against what the broker holds; and
//! `strom topics create` with `--dry-run` (validated by the broker, nothing created) and
//! `--replica-assignment` as kafka-topics.sh takes it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ok, strom};
use serde_json::Value;
use strom_integration_tests::unique_topic;

fn json(args: &[&str]) -> Value {
    let out = ok(args, None);
    serde_json::from_str(out.trim()).unwrap_or_else(|e| panic!("strom {args:?}: {e}: {out}"))
}

fn fails(args: &[&str]) -> (Option<i32>, String) {
    let out = strom(args, None);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn listed(topic: &str) -> bool {
    json(&["topics", "list", "--json"])
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["topic"] == topic)
}

#[test]
fn topics_create_dry_run_and_replica_assignment() {
    let topic = unique_topic("cli-create");
    // A dry run: the broker validates and says what it would create; nothing is created.
    let dry = ok(
        &[
            "topics",
            "create",
            &topic,
            "--partitions",
            "3",
            "--config",
            "retention.ms=86400000",
            "--dry-run",
        ],
        None,
    );
    assert_eq!(
        dry.trim(),
        format!("dry run: the broker would create topic {topic}: 3 partitions, replication factor 1")
    );
    assert!(!listed(&topic));
    // What the broker refuses, it refuses in a dry run too, naming the topic.
    let (code, err) = fails(&["topics", "create", &topic, "--replication-factor", "3", "--dry-run"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("INVALID_REPLICATION_FACTOR") && err.contains(&topic),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let (code, err) = fails(&["topics", "create", &topic, "--config", "retention.ms=soon", "--dry-run"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("INVALID_CONFIG"), "{err}");
    assert!(!listed(&topic));

    // Explicit placement: three partitions on the one broker.
    ok(&["topics", "create", &topic, "--replica-assignment", "1,1,1"], None);
    let d = json(&["topics", "describe", &topic, "--json"]);
    let parts = d["partitions"].as_array().unwrap();
    assert_eq!(parts.len(), 3, "{d}");
    for p in parts {
        assert_eq!(p["replicas"], serde_json::json!([1]), "{d}");
        assert_eq!(p["leader"], 1, "{d}");
    }
    // A broker that does not exist, and a partition with a replica twice.
    for bad in ["7", "1:1"] {
        let other = unique_topic("cli-create-bad");
        let (code, err) = fails(&["topics", "create", &other, "--replica-assignment", bad]);
        assert_eq!(code, Some(1), "{bad}: {err}");
        assert!(err.contains("INVALID_REPLICA_ASSIGNMENT"), "{bad}: {err}");
        assert!(!listed(&other));
    }
    // Usage errors (exit 2): not broker ids, and an assignment beside a count.
    for args in [
        vec!["topics", "create", "x", "--replica-assignment", "1:x"],
        vec!["topics", "create", "x", "--replica-assignment", "1,,1"],
        vec![
            "topics",
            "create",
            "x",
            "--replica-assignment",
            "1",
            "--partitions",
            "2",
        ],
        vec![
            "topics",
            "create",
            "x",
            "--replica-assignment",
            "1",
            "--replication-factor",
            "1",
        ],
    ] {
        let (code, err) = fails(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
    }
    ok(&["topics", "delete", &topic], None);
}

#[test]
fn json_of_topics_offsets_and_groups() {
    let topic = unique_topic("cli-admin-json");
    let group = format!("{topic}-g");
    ok(
        &[
            "topics",
            "create",
            &topic,
            "--partitions",
            "2",
            "--config",
            "retention.ms=86400000",
        ],
        None,
    );
    ok(&["produce", &topic], Some("a\nb\nc\nd\n"));
    ok(&["consume", &topic, "--group", &group, "--count", "4"], None);

    assert!(listed(&topic));
    let d = json(&["topics", "describe", &topic, "--json"]);
    assert_eq!(d["topic"], topic.as_str());
    assert_eq!(d["internal"], false);
    assert_eq!(d["partitions"].as_array().unwrap().len(), 2);
    assert_eq!(d["configs"]["retention.ms"], "86400000", "{d}");
    assert_eq!(d["topic_id"].as_str().unwrap().len(), 36, "{d}");

    let offsets = json(&["offsets", &topic, "--json"]);
    let offsets = offsets.as_array().unwrap();
    assert_eq!(offsets.len(), 2);
    let ends: Vec<i64> = offsets.iter().map(|o| o["latest"].as_i64().unwrap()).collect();
    assert_eq!(ends.iter().sum::<i64>(), 4, "{offsets:?}");
    assert!(offsets.iter().all(|o| o["earliest"] == 0));

    let groups = json(&["groups", "list", "--json"]);
    let g = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group.as_str())
        .unwrap_or_else(|| panic!("{group} not in {groups}"));
    assert_eq!(g["state"], "Empty", "{g}");

    let described = json(&["groups", "describe", &group, "--json"]);
    assert_eq!(described["group"], group.as_str());
    assert_eq!(described["state"], "Empty", "{described}");
    assert!(described["members"].as_array().unwrap().is_empty());
    let rows = described["offsets"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{described}");
    for r in rows {
        assert_eq!(r["topic"], topic.as_str());
        assert_eq!(r["committed"], r["end"], "{r}");
        assert_eq!(r["lag"], 0, "{r}");
        assert!(r["member_id"].is_null(), "{r}");
    }

    // A reset as JSON; the dry run commits nothing.
    let plan = json(&[
        "groups",
        "reset-offsets",
        &group,
        "--topic",
        &topic,
        "--to-earliest",
        "--dry-run",
        "--json",
    ]);
    let plan = plan.as_array().unwrap();
    assert_eq!(plan.len(), 2);
    assert!(plan.iter().all(|p| p["offset"] == 0 && p["group"] == group.as_str()));
    let again = json(&["groups", "describe", &group, "--json"]);
    assert!(again["offsets"].as_array().unwrap().iter().all(|r| r["lag"] == 0));

    // Trimmed: the new earliest offsets as JSON, the same as `offsets` then reports.
    let trimmed = json(&["topics", "delete-records", &topic, "--json"]);
    let mut low: Vec<(i64, i64)> = trimmed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["partition"].as_i64().unwrap(), t["low_watermark"].as_i64().unwrap()))
        .collect();
    low.sort_unstable();
    let mut earliest: Vec<(i64, i64)> = json(&["offsets", &topic, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|o| (o["partition"].as_i64().unwrap(), o["earliest"].as_i64().unwrap()))
        .collect();
    earliest.sort_unstable();
    assert_eq!(low, earliest);
    assert_eq!(low.iter().map(|l| l.1).sum::<i64>(), 4);

    // An error is one line on stderr, nothing on stdout.
    let out = strom(&["offsets", "no-such-topic-for-json", "--json"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    ok(&["topics", "delete", &topic], None);
}
