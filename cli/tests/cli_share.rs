//! `strom share consume` and share groups in `strom groups list|describe`, against the
//! broker: what it prints is acknowledged as `--ack` says (released records come back with
//! delivery count 2 for the next run), a run SIGKILLed while holding records gives them back
//! to the group, and the group's members and start offsets show up as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ok, strom};
use serde_json::Value;
use strom_integration_tests::{broker, unique_topic};

/// A topic of `n` records `vI` (each padded to `size` bytes), and a share group starting at
/// its beginning.
fn setup(prefix: &str, n: usize, size: usize) -> (String, String) {
    let topic = unique_topic(prefix);
    let group = format!("{topic}-share");
    ok(&["topics", "create", &topic, "--partitions", "1"], None);
    ok(
        &[
            "configs",
            "alter",
            "--group",
            &group,
            "--set",
            "share.auto.offset.reset=earliest",
        ],
        None,
    );
    let lines: String = (0..n).map(|i| format!("{:<size$}\n", format!("v{i}"))).collect();
    ok(
        &["produce", &topic, "-X", "linger.ms=0", "-X", "batch.size=4096"],
        Some(&lines),
    );
    (topic, group)
}

/// (value, delivery count) per printed line of `--format '%s %d\n'`.
fn printed(out: &str) -> Vec<(String, i64)> {
    out.lines()
        .map(|l| {
            let (v, d) = l.trim_end().rsplit_once(' ').unwrap();
            (v.trim().to_owned(), d.parse().unwrap())
        })
        .collect()
}

/// `strom share consume --timeout-ms 3000` runs until `n` records were printed (60 s at
/// most): (value, delivery count) of each.
fn consume_until(topic: &str, group: &str, n: usize) -> Vec<(String, i64)> {
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < n {
        assert!(Instant::now() < deadline, "{} of {n} records: {seen:?}", seen.len());
        seen.extend(printed(&ok(
            &[
                "share",
                "consume",
                topic,
                "--group",
                group,
                "--timeout-ms",
                "3000",
                "--format",
                "%s %d\\n",
            ],
            None,
        )));
    }
    seen
}

#[test]
fn consume_acknowledge_release_and_describe() {
    let (topic, group) = setup("cli-share", 20, 4);
    let first = printed(&ok(
        &[
            "share", "consume", &topic, "--group", &group, "--count", "5", "--ack", "release", "--format", "%s %d\\n",
        ],
        None,
    ));
    assert_eq!(first.len(), 5, "{first:?}");
    assert!(first.iter().all(|(_, d)| *d == 1), "{first:?}");
    // Every record comes to the next runs.
    let second = consume_until(&topic, &group, 20);
    let mut values: Vec<&str> = second.iter().map(|(v, _)| v.as_str()).collect();
    values.sort_unstable();
    values.dedup();
    assert_eq!(values.len(), 20, "{second:?}");
    // The five released come back delivered twice; so do records the first run acquired
    // but did not print (released when it closed), the others once.
    for (v, d) in &second {
        if first.iter().any(|(f, _)| f == v) {
            assert_eq!(*d, 2, "{v}: {second:?}");
        } else {
            assert!((1..=2).contains(d), "{v}: {second:?}");
        }
    }
    // Everything accepted: nothing more.
    let rest = ok(
        &["share", "consume", &topic, "--group", &group, "--timeout-ms", "2000"],
        None,
    );
    assert!(rest.is_empty(), "{rest}");

    // The group: a share group, empty, with a start offset and the end of its partition.
    let groups: Value = serde_json::from_str(ok(&["groups", "list", "--json"], None).trim()).unwrap();
    let g = groups
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == group.as_str())
        .unwrap();
    assert_eq!(g["type"], "share", "{g}");
    let d: Value = serde_json::from_str(ok(&["groups", "describe", &group, "--json"], None).trim()).unwrap();
    assert_eq!(d["type"], "share", "{d}");
    assert_eq!(d["state"], "Empty", "{d}");
    assert!(
        d["offsets"][0]["start_offset"]
            .as_i64()
            .is_some_and(|s| (0..=20).contains(&s)),
        "{d}"
    );
    assert_eq!(d["offsets"][0]["end"], 20, "{d}");
    let text = ok(&["groups", "describe", &group], None);
    assert!(text.starts_with(&format!("group {group} type share")), "{text}");

    // Usage: a group is required; settings that share groups do not have are refused.
    let out = strom(&["share", "consume", &topic], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--group"));
    let out = strom(
        &[
            "share",
            "consume",
            &topic,
            "--group",
            &group,
            "-X",
            "auto.offset.reset=earliest",
        ],
        None,
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("share.auto.offset.reset"), "{err}");
}

#[test]
fn a_run_killed_while_holding_records_gives_them_back() {
    // 2 KiB records: the run blocks writing to a pipe nobody reads after about 64 KiB,
    // holding the rest of what it acquired, unacknowledged.
    let (topic, group) = setup("cli-share-kill", 100, 2048);
    let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["share", "consume", &topic, "--group", &group, "--format", "%s\\n"])
        .env("STROM_BOOTSTRAP_SERVERS", &broker().bootstrap)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // It has acquired records once it prints one.
    let mut first = [0u8; 1];
    stdout.read_exact(&mut first).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdout);
    let killed = Instant::now();

    let seen = consume_until(&topic, &group, 100);
    let again = seen.iter().filter(|(_, d)| *d == 2).count();
    assert!(again > 0, "nothing the killed run held came back: {seen:?}");
    let mut values: Vec<&str> = seen.iter().map(|(v, _)| v.as_str()).collect();
    values.sort_unstable();
    values.dedup();
    assert_eq!(values.len(), 100);
    eprintln!(
        "{again} records came back from the killed run, within {:?}",
        killed.elapsed()
    );
}
