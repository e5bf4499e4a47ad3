//! kcat's positions and input options against the broker: `produce -D` (any delimiter,
//! escapes), `-Z` (empty as null), `--file`; `consume -o -N` (N before the end), `-c`,
//! `-e`, `--until @TS` (nothing from that time on, then the end), and their bad values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{ok, strom};
use strom_integration_tests::unique_topic;

fn json_lines(out: &str) -> Vec<serde_json::Value> {
    out.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn delimiters_nulls_and_files() {
    let topic = unique_topic("cli-kcat-in");
    ok(&["topics", "create", &topic, "--partitions", "1"], None);
    // NUL-separated, keys after '|', empty key and empty value as null.
    ok(
        &["produce", &topic, "-D", "\\0", "-K", "|", "-Z"],
        Some("a|1\0b|\0|3\0"),
    );
    let got = json_lines(&ok(&["consume", &topic, "-J", "-e"], None));
    let kv: Vec<(serde_json::Value, serde_json::Value)> =
        got.iter().map(|r| (r["key"].clone(), r["payload"].clone())).collect();
    assert_eq!(
        kv,
        vec![
            ("a".into(), "1".into()),
            ("b".into(), serde_json::Value::Null),
            (serde_json::Value::Null, "3".into()),
        ]
    );
    // Without -Z an empty value is an empty value.
    ok(&["produce", &topic, "-K", "|"], Some("c|\n"));
    let last = json_lines(&ok(&["consume", &topic, "-J", "-o", "-1", "-e"], None));
    assert_eq!(last[0]["payload"], "");

    // A multi-byte delimiter from a file; records hold newlines.
    let dir = std::env::temp_dir().join(format!("strom-kcat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("records.txt");
    std::fs::write(&file, "first\n---\nsecond\nline\n---\nthird").unwrap();
    ok(
        &["produce", &topic, "-f", file.to_str().unwrap(), "-D", "\\n---\\n"],
        None,
    );
    let got = json_lines(&ok(&["consume", &topic, "-J", "-o", "-3", "-e"], None));
    let values: Vec<&str> = got.iter().map(|r| r["payload"].as_str().unwrap()).collect();
    assert_eq!(values, vec!["first", "second\nline", "third"]);

    // A file that does not exist; an empty delimiter.
    let out = strom(&["produce", &topic, "-f", dir.join("missing").to_str().unwrap()], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--file"));
    let out = strom(&["produce", &topic, "-D", ""], Some("x"));
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("delimiter is empty"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn positions_from_the_end_counts_and_until_a_time() {
    let topic = unique_topic("cli-kcat-pos");
    ok(&["topics", "create", &topic, "--partitions", "2"], None);
    let lines: String = (0..20).map(|i| format!("{}:early{i}\n", i % 2)).collect();
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
    std::thread::sleep(Duration::from_millis(1500));
    let cut = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    std::thread::sleep(Duration::from_millis(100));
    let lines: String = (0..10).map(|i| format!("late{i}\n")).collect();
    ok(&["produce", &topic], Some(&lines));

    // -o -3 -e: the last 3 of each partition.
    let tail = json_lines(&ok(&["consume", &topic, "-J", "-o", "-3", "-e"], None));
    assert_eq!(tail.len(), 6, "{tail:?}");
    for p in [0, 1] {
        assert_eq!(tail.iter().filter(|r| r["partition"] == p).count(), 3);
    }
    // More than a partition holds: from its start.
    assert_eq!(ok(&["consume", &topic, "-o", "-1000", "-e"], None).lines().count(), 30);
    // -c.
    assert_eq!(ok(&["consume", &topic, "-c", "7"], None).lines().count(), 7);
    // --until @TS: every early record, no late one, and the run ends by itself.
    let early = ok(&["consume", &topic, "--until", &format!("@{cut}")], None);
    let mut got: Vec<&str> = early.lines().collect();
    got.sort_unstable();
    let mut want: Vec<String> = (0..20).map(|i| format!("early{i}")).collect();
    want.sort();
    assert_eq!(got, want);
    // A time after everything: up to the end seen at start.
    let future = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() + 3_600_000).to_string();
    assert_eq!(
        ok(&["consume", &topic, "--until", &format!("@{future}")], None)
            .lines()
            .count(),
        30
    );

    // Bad values.
    let out = strom(&["consume", &topic, "--until", "tomorrow"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--until tomorrow: expected @TIMESTAMP_MS"));
    let out = strom(&["consume", &topic, "--until", "@1", "-e"], None);
    assert_eq!(out.status.code(), Some(2), "--until and -e conflict");
    let out = strom(&["consume", &topic, "-o", "-x"], None);
    assert_eq!(out.status.code(), Some(1));
}
