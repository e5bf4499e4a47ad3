//! The CI-sized run of the produce benchmark (S1 at 100k records): it completes, reports
//! every field, and every record is in the topic.
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
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    let offsets = strom(&["offsets", &topic]);
    let total: i64 = offsets
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(2).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, 100_000);
    strom(&["topics", "delete", &topic]);
}
