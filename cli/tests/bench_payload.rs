//! `strom bench produce --payload-file`: the records carry the file's values, in turn, as read
//! back from the topic (the payload corpus of bench/corpus.py goes through this option).
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
fn bench_produce_sends_the_payload_files_values_in_turn() {
    // 37 distinct values of different lengths; 100 records go round the file almost three
    // times, so the wrap-around is read back too.
    let values: Vec<String> = (0..37)
        .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 7 % 23)))
        .collect();
    let file = std::env::temp_dir().join(format!("strom-bench-payload-{}.txt", std::process::id()));
    std::fs::write(&file, values.join("\n") + "\n").unwrap();
    let file = file.to_str().unwrap();
    let topic = unique_topic("bench-payload");
    // One partition: the read-back order is the send order.
    strom(&["topics", "create", &topic, "--partitions", "1"]);

    let out = strom(&["bench", "produce", &topic, "--records", "100", "--payload-file", file]);
    let line = out.lines().last().unwrap();
    let sent: Vec<&str> = (0..100).map(|i| values[i % values.len()].as_str()).collect();
    let bytes: usize = sent.iter().map(|v| v.len()).sum();
    for field in [
        "\"records\":100,".to_owned(),
        format!("\"bytes\":{bytes},"),
        "\"acknowledged\":100,".to_owned(),
        "\"failed\":0,".to_owned(),
        "\"payload_values\":37".to_owned(),
        format!("\"payload_file\":\"{file}\""),
    ] {
        assert!(line.contains(&field), "{field} missing in {line}");
    }

    let read = strom(&["consume", &topic, "--until-end"]);
    let got: Vec<&str> = read.lines().collect();
    assert_eq!(got, sent);

    // --record-size and --payload-file are one or the other; a file without values is refused.
    let both = strom_output(&[
        "bench",
        "produce",
        &topic,
        "--records",
        "1",
        "--record-size",
        "10",
        "--payload-file",
        file,
    ]);
    assert!(!both.status.success());
    std::fs::write(file, "\n\n").unwrap();
    let empty = strom_output(&["bench", "produce", &topic, "--records", "1", "--payload-file", file]);
    assert!(!empty.status.success());
    let err = String::from_utf8_lossy(&empty.stderr);
    assert!(err.contains("no values"), "{err}");
    std::fs::remove_file(file).unwrap();
    strom(&["topics", "delete", &topic]);
}
