//! `strom produce|consume --value-format avro` and `strom registry` against the real schema
//! registry (scripts/schema-registry) and broker: JSON lines in, Confluent-framed Avro on the
//! topic, JSON out; records written by Confluent's own Python serializers read too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ok, strom};
use strom_integration_tests::{registry_python, repo_root, schema_registry, unique_topic};

const SCHEMA: &str = r#"{"type":"record","name":"Click","namespace":"cli.test","fields":[
  {"name":"user","type":"string"},{"name":"n","type":"long"},
  {"name":"page","type":["null","string"],"default":null}]}"#;

fn schema_file() -> String {
    let path = std::env::temp_dir().join(format!("{}.avsc", unique_topic("cli-schema")));
    std::fs::write(&path, SCHEMA).unwrap();
    path.to_str().unwrap().to_owned()
}

#[test]
fn avro_lines_in_json_lines_out() {
    let topic = unique_topic("cli-avro");
    ok(&["topics", "create", &topic, "--partitions", "1"], None);
    let file = schema_file();
    let input = "k1:{\"user\":\"ann\",\"n\":1,\"page\":\"/a\"}\nk2:{\"user\":\"bob\",\"n\":2,\"page\":null}\n";
    ok(
        &[
            "produce",
            &topic,
            "-K",
            ":",
            "--value-format",
            "avro",
            "--value-schema-file",
            &file,
            "--schema-registry",
            schema_registry(),
        ],
        Some(input),
    );
    // The schema was registered under the topic's value subject.
    let subjects = ok(&["registry", "--schema-registry", schema_registry(), "subjects"], None);
    assert!(subjects.lines().any(|s| s == format!("{topic}-value")), "{subjects}");

    let out = ok(
        &[
            "consume",
            &topic,
            "--until-end",
            "--value-format",
            "avro",
            "--format",
            "%k %s\\n",
            "-X",
            &format!("schema.registry.url={}", schema_registry()),
        ],
        None,
    );
    assert_eq!(
        out,
        "k1 {\"n\":1,\"page\":\"/a\",\"user\":\"ann\"}\nk2 {\"n\":2,\"page\":null,\"user\":\"bob\"}\n"
    );

    // Bytes as they are: the Confluent framing, magic byte 0 first.
    let raw = strom(&["consume", &topic, "--until-end", "--count", "1"], None);
    assert_eq!(raw.stdout[0], 0);
}

#[test]
fn bad_input_and_missing_settings_are_clear_errors() {
    let topic = unique_topic("cli-avro-bad");
    ok(&["topics", "create", &topic, "--partitions", "1"], None);
    let file = schema_file();
    // A line that does not match the schema: the error names the line, nothing after it is sent.
    let out = strom(
        &[
            "produce",
            &topic,
            "--value-format",
            "avro",
            "--value-schema-file",
            &file,
            "--schema-registry",
            schema_registry(),
        ],
        Some("{\"user\":\"ann\",\"n\":1}\n{\"user\":7}\n{\"user\":\"c\",\"n\":3}\n"),
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 2") && err.contains("does not match the Avro schema"),
        "{err}"
    );
    // No registry given.
    let out = strom(&["consume", &topic, "--value-format", "avro", "--until-end"], None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--schema-registry"));

    // A record that is not Avro stops the consumer with its position.
    ok(&["produce", &topic], Some("plain text\n"));
    let out = strom(
        &[
            "consume",
            &topic,
            "--until-end",
            "--value-format",
            "avro",
            "--schema-registry",
            schema_registry(),
        ],
        None,
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("value of {topic}-0 at offset 1")) && err.contains("magic byte"),
        "{err}"
    );
    // The record before it was printed.
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "{\"n\":1,\"page\":null,\"user\":\"ann\"}\n"
    );
}

#[test]
fn registry_subcommands() {
    let subject = unique_topic("cli-subject");
    let file = schema_file();
    let url = schema_registry();
    let id = ok(
        &["registry", "--schema-registry", url, "register", &subject, &file],
        None,
    );
    let id: i32 = id.trim().parse().unwrap();
    assert_eq!(
        ok(&["registry", "--schema-registry", url, "versions", &subject], None),
        "1\n"
    );
    let by_id = ok(&["registry", "--schema-registry", url, "id", &id.to_string()], None);
    assert!(by_id.contains("cli.test"), "{by_id}");
    ok(
        &[
            "registry",
            "--schema-registry",
            url,
            "config",
            &subject,
            "--set",
            "backward",
        ],
        None,
    );
    assert_eq!(
        ok(&["registry", "--schema-registry", url, "config", &subject], None),
        "BACKWARD\n"
    );
    // A field without a default is not backward compatible: exit 1 with the reasons.
    let bad = std::env::temp_dir().join(format!("{subject}-bad.avsc"));
    std::fs::write(
        &bad,
        r#"{"type":"record","name":"Click","namespace":"cli.test","fields":[{"name":"user","type":"string"},{"name":"x","type":"int"}]}"#,
    )
    .unwrap();
    let out = strom(
        &[
            "registry",
            "--schema-registry",
            url,
            "compat",
            &subject,
            bad.to_str().unwrap(),
        ],
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("incompatible"));
    assert_eq!(
        ok(
            &["registry", "--schema-registry", url, "delete", &subject, "--permanent"],
            None
        ),
        "1\n"
    );
}

#[test]
fn reads_what_confluents_python_serializer_wrote() {
    let topic = unique_topic("cli-avro-confluent");
    ok(&["topics", "create", &topic, "--partitions", "1"], None);
    let schema = std::env::temp_dir().join(format!("{topic}.avsc"));
    std::fs::write(
        &schema,
        r#"{"type":"record","name":"User","namespace":"strom.test","fields":[{"name":"name","type":"string"},{"name":"visits","type":"long"}]}"#,
    )
    .unwrap();
    let mut python = std::process::Command::new(registry_python());
    python
        .arg(repo_root().join("integration-tests/python/confluent_serde.py"))
        .args([
            "produce",
            &strom_integration_tests::broker().bootstrap,
            schema_registry(),
            &topic,
            schema.to_str().unwrap(),
        ])
        .env("PYTHONFAULTHANDLER", "1");
    let out = strom_integration_tests::output_within(
        python,
        b"{\"name\":\"zoe\",\"visits\":5}\n",
        std::time::Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let got = ok(
        &[
            "consume",
            &topic,
            "--until-end",
            "--key-format",
            "string",
            "--value-format",
            "avro",
            "--format",
            "%k=%s\\n",
            "--schema-registry",
            schema_registry(),
        ],
        None,
    );
    assert_eq!(got, "zoe={\"name\":\"zoe\",\"visits\":5}\n");
}

#[test]
fn json_schema_lines_checked_on_the_way_in() {
    let topic = unique_topic("cli-json-schema");
    ok(&["topics", "create", &topic, "--partitions", "1"], None);
    let file = std::env::temp_dir().join(format!("{topic}.json"));
    std::fs::write(
        &file,
        r#"{"title":"Click","type":"object","properties":{"user":{"type":"string"},"n":{"type":"integer"}},"required":["user"]}"#,
    )
    .unwrap();
    let file = file.to_str().unwrap();
    let produce = |input: &str| {
        strom(
            &[
                "produce",
                &topic,
                "--value-format",
                "json-schema",
                "--value-schema-file",
                file,
                "--schema-registry",
                schema_registry(),
            ],
            Some(input),
        )
    };
    let out = produce("{\"user\":\"ann\",\"n\":1}\n{\"n\":2}\n");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2") && err.contains("user"), "{err}");
    let got = ok(
        &[
            "consume",
            &topic,
            "--until-end",
            "--value-format",
            "json-schema",
            "--schema-registry",
            schema_registry(),
        ],
        None,
    );
    assert_eq!(got, "{\"n\":1,\"user\":\"ann\"}\n");
}

#[test]
fn protobuf_json_lines_in_and_out() {
    let topic = unique_topic("cli-protobuf");
    ok(&["topics", "create", &topic, "--partitions", "1"], None);
    let file = std::env::temp_dir().join(format!("{topic}.proto"));
    std::fs::write(
        &file,
        "syntax = \"proto3\"; package cli; import \"google/protobuf/timestamp.proto\";\n\
         message Other { int32 x = 1; }\n\
         message Click { string user = 1; int64 n = 2; google.protobuf.Timestamp at = 3; }\n",
    )
    .unwrap();
    let args = [
        "produce",
        topic.as_str(),
        "--value-format",
        "protobuf",
        "--value-schema-file",
        file.to_str().unwrap(),
        "--value-message",
        "cli.Click",
        "--schema-registry",
        schema_registry(),
    ];
    ok(
        &args,
        Some("{\"user\":\"ann\",\"n\":\"5\",\"at\":\"2026-12-06T03:00:00Z\"}\n"),
    );
    // A field the message does not have: refused, naming the line.
    let out = strom(&args, Some("{\"nope\":1}\n"));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 1") && err.contains("cli.Click"), "{err}");
    let got = ok(
        &[
            "consume",
            &topic,
            "--until-end",
            "--value-format",
            "protobuf",
            "--schema-registry",
            schema_registry(),
        ],
        None,
    );
    // Protobuf's JSON mapping: int64 as a string, the timestamp in RFC 3339.
    assert_eq!(got, "{\"user\":\"ann\",\"n\":\"5\",\"at\":\"2026-12-06T03:00:00Z\"}\n");
    // The second message of the file has message indexes [1].
    let raw = strom(&["consume", &topic, "--until-end"], None).stdout;
    assert_eq!(raw[5], 2, "message index count 1 (zig-zag 2), then index 1 (2)");
}

/// Ctrl-C while a record waits for its schema from a registry that does not answer: the
/// run ends at once (exit 0, as for a signal while polling), not after the registry's
/// timeouts and retries.
#[test]
fn ctrl_c_while_waiting_for_the_registry_ends_the_run() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let topic = unique_topic("cli-avro-sigint");
    ok(&["topics", "create", &topic, "--partitions", "1"], None);
    // A framed record with schema id 7.
    ok(&["produce", &topic], Some("\u{0}\u{0}\u{0}\u{0}\u{7}abc\n"));
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let held = std::thread::spawn(move || {
        // Accepts and holds connections, never answering, for the test's life.
        let mut conns = Vec::new();
        for c in silent.incoming().take(4) {
            conns.push(c);
        }
        conns
    });
    let child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args([
            "consume",
            &topic,
            "--until-end",
            "--value-format",
            "avro",
            "--schema-registry",
            &url,
        ])
        .env("STROM_BOOTSTRAP_SERVERS", &strom_integration_tests::broker().bootstrap)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let signalled = Instant::now();
    strom_integration_tests::signal_process(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "took {:?}",
        signalled.elapsed()
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.is_empty());
    drop(held);
}

/// The same for `produce`: Ctrl-C while a line waits for the registry to register its
/// schema stops at once, nothing sent, exit 130.
#[test]
fn ctrl_c_while_registering_ends_produce() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};
    let topic = unique_topic("cli-avro-produce-sigint");
    ok(&["topics", "create", &topic, "--partitions", "1"], None);
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", silent.local_addr().unwrap());
    let held = std::thread::spawn(move || silent.incoming().take(4).collect::<Vec<_>>());
    let file = schema_file();
    let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
        .args([
            "produce",
            &topic,
            "--value-format",
            "avro",
            "--value-schema-file",
            &file,
            "--schema-registry",
            &url,
        ])
        .env("STROM_BOOTSTRAP_SERVERS", &strom_integration_tests::broker().bootstrap)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"{\"user\":\"ann\",\"n\":1,\"page\":null}\n").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let signalled = Instant::now();
    strom_integration_tests::signal_process(child.id(), "INT");
    let out = child.wait_with_output().unwrap();
    assert!(
        signalled.elapsed() < Duration::from_secs(5),
        "took {:?}",
        signalled.elapsed()
    );
    assert_eq!(out.status.code(), Some(130), "{}", String::from_utf8_lossy(&out.stderr));
    drop(stdin);
    drop(held);
    let offsets = ok(&["offsets", &topic], None);
    // Nothing was sent: the partition's latest offset is 0.
    assert!(
        offsets
            .lines()
            .nth(1)
            .is_some_and(|l| l.split_whitespace().last() == Some("0")),
        "{offsets}"
    );
}
