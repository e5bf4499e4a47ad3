//! The CI-sized run of S5 (`strom bench latency`): two seconds at 2,000 records/s with a
//! consumer in the same process; every record comes back, the report has its percentiles,
//! and the records carry their send time in the first 8 bytes of the value.
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
fn bench_latency_smoke() {
    let topic = unique_topic("bench-latency");
    strom(&["topics", "create", &topic, "--partitions", "2"]);
    let out = strom(&[
        "bench",
        "latency",
        &topic,
        "--rate",
        "2000",
        "--seconds",
        "2",
        "--warmup-seconds",
        "1",
        "-X",
        "acks=all",
        "-X",
        "enable.idempotence=true",
        "-X",
        "linger.ms=0",
    ]);
    let line = out.lines().last().unwrap();
    for field in [
        "\"client\":\"strom\"",
        "\"rate\":2000,",
        "\"records\":6000,",
        "\"measured\":4000,",
        "\"received\":6000,",
        "\"failed\":0,",
        "\"kept_up\":",
        "\"linger.ms\":0",
        "\"enable.idempotence\":true",
        "\"stamp\":",
    ] {
        assert!(line.contains(field), "{field} missing in {line}");
    }
    let (p50, p99, p999, max) = (
        number(line, "p50_ms"),
        number(line, "p99_ms"),
        number(line, "p999_ms"),
        number(line, "max_ms"),
    );
    assert!(p50 > 0.0 && p50 <= p99 && p99 <= p999 && p999 <= max, "{line}");
    assert!(
        number(line, "cpu_percent") > 0.0 && number(line, "max_rss_kib") > 0.0,
        "{line}"
    );
    // The pacer held a rate near 2,000/s (loosely: CI machines pause; the sender never runs
    // ahead of its schedule).
    assert!(number(line, "achieved_rate") > 1000.0, "{line}");

    // The stamps read back: a send time in ns, rising within the partition order they were
    // sent in, and the rest of each value is the constant payload.
    let read = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["consume", &topic, "--until-end", "--partition", "0"])
        .env("STROM_BOOTSTRAP_SERVERS", &broker().bootstrap)
        .output()
        .unwrap();
    assert!(read.status.success());
    let values: Vec<&[u8]> = read.stdout.split(|&b| b == b'\n').filter(|v| v.len() == 100).collect();
    assert!(
        values.len() > 1000,
        "{} values of 100 bytes in partition 0",
        values.len()
    );
    let stamps: Vec<u64> = values
        .iter()
        .map(|v| u64::from_be_bytes(v[..8].try_into().unwrap()))
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] < w[1]), "send times not rising");
    assert!(values.iter().all(|v| v[8..].iter().all(u8::is_ascii_uppercase)));

    let bad = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["bench", "latency", &topic, "--rate", "0"])
        .env("STROM_BOOTSTRAP_SERVERS", &broker().bootstrap)
        .output()
        .unwrap();
    assert!(!bad.status.success());
    strom(&["topics", "delete", &topic]);
}
