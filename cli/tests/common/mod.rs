//! Helpers shared by the CLI test files: run the `strom` binary against the test broker.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

use strom_integration_tests::broker;

/// Runs `strom args` with the broker's bootstrap address, feeding `stdin` if given.
pub(crate) fn strom(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(args)
        .env("STROM_BOOTSTRAP_SERVERS", &broker().bootstrap)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    child.wait_with_output().unwrap()
}

/// Runs `strom args`, failing the test unless it succeeds; returns stdout.
pub(crate) fn ok(args: &[&str], stdin: Option<&str>) -> String {
    let out = strom(args, stdin);
    assert!(
        out.status.success(),
        "strom {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
