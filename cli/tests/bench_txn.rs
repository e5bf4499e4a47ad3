//! The CI-sized run of S4: `strom bench txn` commits transactions of a fixed size, reports
//! records/s and commit latency, and a read_committed reader finds exactly what was committed.
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

fn number(line: &str, key: &str) -> f64 {
    let at = line
        .find(&format!("\"{key}\":"))
        .unwrap_or_else(|| panic!("{key} missing in {line}"));
    let rest = &line[at + key.len() + 3..];
    rest[..rest.find([',', '}']).unwrap()].parse().unwrap()
}

#[test]
fn bench_txn_smoke() {
    let topic = unique_topic("bench-txn");
    strom(&["topics", "create", &topic, "--partitions", "3"]);
    let id = format!("{topic}-producer");
    let out = strom(&[
        "bench",
        "txn",
        &topic,
        "--transactions",
        "10",
        "--per-transaction",
        "500",
        "-X",
        &format!("transactional.id={id}"),
        "-X",
        "compression.type=lz4",
        "-X",
        "linger.ms=5",
    ]);
    let line = out.lines().last().unwrap();
    for field in [
        "\"client\":\"strom\"",
        "\"records\":5000,",
        "\"transactions\":10,",
        "\"per_transaction\":500,",
        "\"bytes\":500000,",
        "\"retried_transactions\":",
        &format!("\"transactional.id\":\"{id}\""),
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    let (p50, p99) = (number(line, "commit_p50_ms"), number(line, "commit_p99_ms"));
    assert!(
        p50 > 0.0 && p50 <= p99 && p99 <= number(line, "commit_max_ms"),
        "{line}"
    );
    assert!(number(line, "records_per_s") > 0.0, "{line}");

    let read = strom(&[
        "bench",
        "consume",
        &topic,
        "--records",
        "5000",
        "--to-end",
        "-X",
        "isolation.level=read_committed",
    ]);
    let line = read.lines().last().unwrap();
    assert!(line.contains("\"records\":5000,"), "{line}");
    assert!(line.contains("\"isolation.level\":\"read_committed\""), "{line}");
    strom(&["topics", "delete", &topic]);
}
