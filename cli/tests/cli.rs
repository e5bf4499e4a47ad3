//! The `strom` binary as a user runs it, against the real broker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Command;

use common::{ok, strom};
use strom_integration_tests::{broker, unique_topic};

fn fails(args: &[&str]) -> String {
    let out = strom(args, None);
    assert!(!out.status.success(), "strom {args:?} should have failed");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "errors are one line: {err:?}");
    assert!(err.starts_with("strom: "), "{err}");
    err
}

#[test]
fn topics_offsets_produce_consume_groups() {
    let topic = unique_topic("cli");
    ok(
        &[
            "topics",
            "create",
            &topic,
            "--partitions",
            "3",
            "--replication-factor",
            "1",
            "--config",
            "retention.ms=3600000",
        ],
        None,
    );
    assert!(ok(&["topics", "list"], None).lines().any(|l| l == topic));
    let d = ok(&["topics", "describe", &topic], None);
    assert!(
        d.contains("partitions 3") && d.contains("config retention.ms=3600000"),
        "{d}"
    );
    // Only the topic's own override: the broker's settings (static or cluster-wide dynamic,
    // e.g. the test broker's min.insync.replicas or log.segment.bytes) are not topic configs.
    let configs: Vec<&str> = d.lines().filter(|l| l.trim_start().starts_with("config ")).collect();
    assert_eq!(configs, ["  config retention.ms=3600000"], "{d}");

    let input: String = (0..30).map(|i| format!("k{}:v{i}\n", i % 5)).collect();
    let out = strom(
        &["produce", &topic, "-K", ":", "--compression", "zstd", "--header", "a=b"],
        Some(&input),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("produced 30 records"));

    let offsets = ok(&["offsets", &topic], None);
    let total: i64 = offsets
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(2).unwrap().parse::<i64>().unwrap())
        .sum();
    assert_eq!(total, 30, "{offsets}");

    let got = ok(&["consume", &topic, "--until-end", "--format", "%k:%s|%h\\n"], None);
    let mut lines: Vec<&str> = got.lines().collect();
    lines.sort_unstable();
    let mut want: Vec<String> = (0..30).map(|i| format!("k{}:v{i}|a=b", i % 5)).collect();
    want.sort_unstable();
    assert_eq!(lines, want);
    // Records of one key stay in one partition, in order.
    let by_part = ok(&["consume", &topic, "--until-end", "--format", "%p %k %s\\n"], None);
    for key in 0..5 {
        let parts: std::collections::BTreeSet<&str> = by_part
            .lines()
            .filter(|l| l.split(' ').nth(1) == Some(&format!("k{key}")))
            .map(|l| l.split(' ').next().unwrap())
            .collect();
        assert_eq!(parts.len(), 1, "key k{key} spread over {parts:?}");
    }

    // --count, --from OFFSET and @TIMESTAMP.
    assert_eq!(ok(&["consume", &topic, "--count", "7"], None).lines().count(), 7);
    assert_eq!(ok(&["consume", &topic, "--from", "latest", "--until-end"], None), "");
    assert_eq!(
        ok(&["consume", &topic, "--from", "@0", "--until-end"], None)
            .lines()
            .count(),
        30
    );
    let far_future = "@4102444800000";
    assert_eq!(ok(&["consume", &topic, "--from", far_future, "--until-end"], None), "");

    // A group: 10 now, the other 20 on the next run.
    let group = unique_topic("cli-group");
    assert_eq!(
        ok(&["consume", &topic, "--group", &group, "--count", "10"], None)
            .lines()
            .count(),
        10
    );
    assert!(ok(&["groups", "list"], None).lines().any(|l| l.starts_with(&group)));
    let d = ok(&["groups", "describe", &group], None);
    assert!(d.contains("state Empty") && d.contains(&topic), "{d}");
    assert_eq!(
        ok(&["consume", &topic, "--group", &group, "--until-end"], None)
            .lines()
            .count(),
        20
    );

    ok(&["topics", "delete", &topic], None);
    let err = fails(&["topics", "describe", &topic]);
    assert!(
        err.contains("UNKNOWN_TOPIC_OR_PARTITION") && err.contains(&topic),
        "{err}"
    );
}

#[test]
fn errors_are_one_clear_line() {
    let err = fails(&["topics", "describe", "no-such-topic-xyz"]);
    assert!(err.contains("no-such-topic-xyz"), "{err}");
    let err = fails(&["offsets", "no-such-topic-xyz"]);
    assert!(err.contains("no-such-topic-xyz"), "{err}");
    let err = fails(&["-X", "no.such.key=1", "topics", "list"]);
    assert!(err.contains("unknown property \"no.such.key\""), "{err}");
    let err = fails(&["-X", "request.timeout.ms=soon", "topics", "list"]);
    assert!(err.contains("request.timeout.ms"), "{err}");
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let err = fails(&["-b", &dead, "-X", "default.api.timeout.ms=1000", "topics", "list"]);
    assert!(err.contains(&dead) && err.contains("timed out after 1s"), "{err}");
    let err = fails(&["produce", "no-such-topic-xyz", "--acks", "2"]);
    assert!(err.contains("acks"), "{err}");
    let err = fails(&["consume", "no-such-topic-xyz", "--isolation", "dirty"]);
    assert!(err.contains("read_committed"), "{err}");
    // SASL without credentials: a clear configuration error, not a connection attempt.
    let err = fails(&[
        "-X",
        "security.protocol=SASL_SSL",
        "-X",
        "sasl.mechanism=PLAIN",
        "topics",
        "list",
    ]);
    assert!(err.contains("sasl") || err.contains("SASL"), "{err}");
}

#[test]
fn properties_file_is_read() {
    let dir = std::env::temp_dir().join(unique_topic("props"));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("client.properties");
    std::fs::write(
        &file,
        format!(
            "# a Java-style client config\nbootstrap.servers={}\nclient.id=cli-test\nrequest.timeout.ms=5000\n",
            broker().bootstrap
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["-F", file.to_str().unwrap(), "topics", "list"])
        .env_remove("STROM_BOOTSTRAP_SERVERS")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::write(&file, "linger.msx=5\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args(["-F", file.to_str().unwrap(), "topics", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("linger.msx"));
    std::fs::remove_dir_all(&dir).unwrap();
}
