//! The CI-sized run of S3: `strom bench produce --keys` writes keyed records with a per-key
//! sequence number, and `strom bench consume --keys` reads them back and checks per-key order
//! and completeness; a topic with a repeated record fails that check.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use strom_integration_tests::{broker, unique_topic};

fn strom_output(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .env("STROM_BOOTSTRAP_SERVERS", &broker().bootstrap)
        .output()
        .unwrap()
}

fn strom(args: &[&str]) -> String {
    let out = strom_output(args);
    assert!(
        out.status.success(),
        "strom {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn bench_keyed_produce_reads_back_in_per_key_order() {
    let topic = unique_topic("bench-keyed");
    strom(&["topics", "create", &topic, "--partitions", "12"]);
    let out = strom(&[
        "bench",
        "produce",
        &topic,
        "--records",
        "30000",
        "--keys",
        "500",
        "-X",
        "acks=all",
        "-X",
        "enable.idempotence=true",
        "-X",
        "compression.type=lz4",
        "-X",
        "linger.ms=5",
    ]);
    let line = out.lines().last().unwrap();
    for field in [
        "\"records\":30000,",
        // 10-byte keys and 100-byte values
        "\"bytes\":3300000,",
        "\"acknowledged\":30000,",
        "\"failed\":0,",
        "\"keys\":500,",
        "\"partitioner\":\"murmur2 of the key\"",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    let check = strom(&[
        "bench",
        "consume",
        &topic,
        "--records",
        "30000",
        "--keys",
        "500",
        "--to-end",
    ]);
    let line = check.lines().last().unwrap();
    assert!(line.contains("\"records\":30000,"), "{line}");
    assert!(line.contains("\"keys_seen\":500,"), "{line}");
    assert!(line.contains("\"per_key_order\":\"checked\""), "{line}");

    // The same keys sent again start their sequences at 0 again: a repeat the check catches.
    strom(&[
        "bench",
        "produce",
        &topic,
        "--records",
        "100",
        "--keys",
        "500",
        "--allow-skew",
    ]);
    let bad = strom_output(&[
        "bench",
        "consume",
        &topic,
        "--records",
        "30100",
        "--keys",
        "500",
        "--timeout-ms",
        "5000",
    ]);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("has sequence 0 where"), "{err}");
    // --to-end: a topic holding more than --records fails.
    let more = strom_output(&[
        "bench",
        "consume",
        &topic,
        "--records",
        "30000",
        "--to-end",
        "--timeout-ms",
        "5000",
    ]);
    assert!(!more.status.success());
    let err = String::from_utf8_lossy(&more.stderr);
    assert!(err.contains("held 30100 records to its end, not 30000"), "{err}");
    strom(&["topics", "delete", &topic]);
}
