//! `strom produce` fed at a user's pace spreads records without a key over the topic's
//! partitions (the producer's KIP-794 partitioner, the same one every path uses). Before
//! it, a pipe delivering 10,000 lines/s put all 30,000 on one partition: every batch left
//! on linger, and only a full batch moved the sticky partition. The CLI also used 256 KiB
//! batches by default, so a switch every batch.size bytes (KIP-794) left 6 MB on a few
//! partitions; it now keeps the producer's 16 KiB default, as Java's console producer does.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::ok;
use strom_integration_tests::{broker, unique_topic};

#[test]
fn produce_from_a_slow_pipe_spreads_null_keys() {
    let topic = unique_topic("cli-spread");
    ok(&["topics", "create", &topic, "--partitions", "6"], None);
    let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["produce", &topic])
        .env("STROM_BOOTSTRAP_SERVERS", &broker().bootstrap)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    // 30,000 lines of 200 bytes at 10,000 lines/s: 100 lines every 10 ms.
    let line = format!("{}\n", "x".repeat(199));
    let chunk = line.repeat(100);
    let started = Instant::now();
    for i in 1..=300u64 {
        stdin.write_all(chunk.as_bytes()).unwrap();
        stdin.flush().unwrap();
        let due = started + Duration::from_millis(i * 10);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let offsets = ok(&["offsets", &topic], None);
    let counts: Vec<i64> = offsets
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<i64> = l.split_whitespace().map(|x| x.parse().unwrap()).collect();
            f[2] - f[1]
        })
        .collect();
    assert_eq!(counts.len(), 6, "{offsets}");
    assert_eq!(counts.iter().sum::<i64>(), 30_000, "{offsets}");
    let mean = 30_000 / 6;
    for c in &counts {
        assert!(
            *c >= mean / 3 && *c <= 2 * mean,
            "a partition outside [mean/3, 2 x mean]: {counts:?}"
        );
    }
}
