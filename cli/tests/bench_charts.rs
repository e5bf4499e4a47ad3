//! bench/charts.py, the stdlib-only SVG writer of the benchmark scripts, writes well-formed
//! SVG bar and line charts (its own --self-test parses them back).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn bench_charts_write_valid_svg() {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../bench/charts.py");
    let out = Command::new("python3")
        .arg(&script)
        .arg("--self-test")
        .output()
        .expect("python3 (the benchmark scripts' interpreter) must be installed: apt-get install python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("charts self-test: ok"), "{stdout}");
}
