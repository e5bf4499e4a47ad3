//! `strom fake`: a fake cluster in the foreground. It prints its bootstrap servers, `strom
//! produce` and `strom consume` work against it, SIGTERM and Ctrl-C stop it (exit 0); a bad
//! `--topic` is refused by name.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strom_integration_tests::signal_process;

fn strom() -> Command {
    Command::new(env!("CARGO_BIN_EXE_strom"))
}

/// Sends `signal` and waits (10 s at most) for a clean exit.
fn stops_on(fake: &mut std::process::Child, signal: &str) {
    signal_process(fake.id(), signal);
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = fake.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "strom fake did not stop on SIG{signal}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "SIG{signal}: {status}");
}

#[test]
fn a_fake_cluster_from_the_command_line() {
    let mut fake = strom()
        .args(["fake", "--brokers", "2", "--topic", "orders:3:2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(fake.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let bootstrap = line.trim().to_owned();
    assert_eq!(bootstrap.split(',').count(), 2, "{bootstrap}");

    let mut produce = strom()
        .args(["-b", &bootstrap, "produce", "orders"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    {
        let mut stdin = produce.stdin.take().unwrap();
        for i in 0..30 {
            writeln!(stdin, "line {i}").unwrap();
        }
    }
    assert!(produce.wait().unwrap().success());
    let out = strom()
        .args([
            "-b", &bootstrap, "consume", "orders", "--from", "earliest", "--count", "30",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    lines.sort();
    let mut want: Vec<String> = (0..30).map(|i| format!("line {i}")).collect();
    want.sort();
    assert_eq!(lines, want);

    stops_on(&mut fake, "TERM");

    // Ctrl-C stops it too.
    let mut fake = strom()
        .args(["fake"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(fake.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    stops_on(&mut fake, "INT");

    let out = strom().args(["fake", "--topic", "orders:0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--topic"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
