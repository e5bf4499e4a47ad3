//! The CI-sized runs of the benchmarks: produce (S1 at 100k records) and consume (S2 at 20k
//! records) complete, report every field, and move every record.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use strom_integration_tests::{broker, unique_topic};

fn strom(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .env("STROM_BOOTSTRAP_SERVERS", &broker().bootstrap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "strom {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bench_produce_smoke() {
    let topic = unique_topic("bench-smoke");
    strom(&["topics", "create", &topic, "--partitions", "6"]);
    let out = strom(&[
        "bench",
        "produce",
        &topic,
        "--records",
        "100000",
        "-X",
        "compression.type=lz4",
        "-X",
        "linger.ms=5",
        "-X",
        "batch.size=1048576",
        // 10 MB is about ten sticky 1 MiB batches over 6 partitions (KIP-794 switches per
        // batch.size): skew is expected at this CI size.
        "--allow-skew",
    ]);
    let line = out.lines().last().unwrap();
    for field in [
        "\"records\":100000",
        "\"bytes\":10000000",
        "\"failed\":0",
        "\"records_per_s\":",
        "\"cpu_seconds\":",
        "\"max_rss_kib\":",
        "\"compression.type\":\"lz4\"",
        "\"enable.idempotence\":true",
        "\"acknowledged\":100000",
        "\"partition_records\":[",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    let spread: u64 = line
        .split("\"partition_records\":[")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .unwrap()
        .split(',')
        .map(|c| c.parse::<u64>().unwrap())
        .sum();
    assert_eq!(spread, 100_000, "{line}");
    let offsets = strom(&["offsets", &topic]);
    let total: i64 = offsets
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(2).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, 100_000);
    strom(&["topics", "delete", &topic]);
}

/// The CI-sized run of the consume benchmark (S2 at 20k records): every record of every
/// partition is read once from the earliest offsets, the report names every fetch knob, and
/// asking for more records than the topic holds fails after the idle timeout.
#[test]
fn bench_consume_smoke() {
    let topic = unique_topic("bench-consume-smoke");
    strom(&["topics", "create", &topic, "--partitions", "3"]);
    strom(&[
        "bench",
        "produce",
        &topic,
        "--records",
        "20000",
        "-X",
        "compression.type=lz4",
        "-X",
        "linger.ms=5",
    ]);
    let out = strom(&[
        "bench",
        "consume",
        &topic,
        "--records",
        "20000",
        "-X",
        "check.crcs=true",
        "-X",
        "max.poll.records=500",
    ]);
    let line = out.lines().last().unwrap();
    for field in [
        "\"client\":\"strom\"",
        "\"records\":20000,",
        "\"bytes\":2000000,",
        "\"records_per_s\":",
        "\"mib_per_s\":",
        "\"cpu_seconds\":",
        "\"max_rss_kib\":",
        "\"first_record_ms\":",
        "\"mode\":\"assign\"",
        "\"partitions\":3,",
        "\"check.crcs\":true",
        "\"fetch.max.bytes\":52428800",
        "\"max.partition.fetch.bytes\":1048576",
        "\"max.poll.records\":500",
        "\"isolation.level\":\"read_uncommitted\"",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    let number = |key: &str| -> f64 {
        let rest = &line[line.find(&format!("\"{key}\":")).unwrap() + key.len() + 3..];
        rest[..rest.find([',', '}']).unwrap()].parse().unwrap()
    };
    assert!(number("records_per_s") > 0.0 && number("seconds") > 0.0, "{line}");
    assert!(number("max_rss_kib") > 0.0, "{line}");

    let more = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["bench", "consume", &topic, "--records", "20001", "--timeout-ms", "1000"])
        .env("STROM_BOOTSTRAP_SERVERS", &broker().bootstrap)
        .output()
        .unwrap();
    assert!(!more.status.success());
    let err = String::from_utf8_lossy(&more.stderr);
    assert!(err.contains("only 20000 of 20001 records"), "{err}");
    strom(&["topics", "delete", &topic]);
}
