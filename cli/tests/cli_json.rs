//! `strom consume -J` (kcat -J): one JSON object per record, checked by parsing it; binary
//! keys and values as UTF-8, base64 or hex; values of a JSON-valued format embedded as JSON.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ok, strom};
use serde_json::Value;
use strom_client::{Producer, ProducerConfig, ProducerRecord};
use strom_integration_tests::{broker, unique_topic};

fn lines(out: &str) -> Vec<Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn json_envelopes_as_kcat_writes_them() {
    let topic = unique_topic("cli-json");
    ok(&["topics", "create", &topic, "--partitions", "1"], None);
    ok(
        &[
            "produce",
            &topic,
            "-K",
            ":",
            "--header",
            "trace=abc",
            "--allow-null-key",
        ],
        Some("k1:{\"n\":1}\nno key here\n"),
    );
    let out = ok(&["consume", &topic, "-J", "--until-end"], None);
    let docs = lines(&out);
    assert_eq!(docs.len(), 2, "{out}");
    let d = &docs[0];
    assert_eq!(d["topic"], topic.as_str());
    assert_eq!((d["partition"].as_i64(), d["offset"].as_i64()), (Some(0), Some(0)));
    assert_eq!(d["tstype"], "create");
    assert!(d["ts"].as_i64().unwrap() > 1_600_000_000_000, "{d}");
    assert_eq!(d["key"], "k1");
    assert_eq!(d["payload"], "{\"n\":1}");
    assert_eq!(d["headers"], serde_json::json!(["trace", "abc"]));
    assert_eq!(docs[1]["key"], Value::Null);
    assert_eq!(docs[1]["payload"], "no key here");

    // A JSON value format embeds the value as JSON (the second line is not JSON: an error
    // naming the record, after the first was written).
    let out = strom(
        &["consume", &topic, "-J", "--value-format", "json", "--until-end"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let first = lines(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(first[0]["payload"], serde_json::json!({"n": 1}));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("offset 1"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // -J with a --format is a usage error.
    let out = strom(&["consume", &topic, "-J", "--format", "%s\\n"], None);
    assert_eq!(out.status.code(), Some(2));
}

#[tokio::test]
async fn binary_values_as_utf8_base64_or_hex() {
    let topic = unique_topic("cli-json-bin");
    ok(&["topics", "create", &topic, "--partitions", "1"], None);
    let producer = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    let value: &[u8] = &[0xff, 0x00, 0x41];
    producer
        .send(ProducerRecord::new(&topic, value.to_vec()).key(vec![0x01]))
        .await
        .unwrap()
        .await
        .unwrap();
    producer.close().await.unwrap();

    // Not UTF-8: the run stops naming the record and what to use instead.
    let out = strom(&["consume", &topic, "-J", "--until-end"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("offset 0") && err.contains("--json-encoding base64"),
        "{err}"
    );

    let d = &lines(&ok(
        &["consume", &topic, "-J", "--json-encoding", "base64", "--until-end"],
        None,
    ))[0];
    assert_eq!(d["payload"], "/wBB");
    assert_eq!(d["key"], "AQ==");
    let d = &lines(&ok(
        &["consume", &topic, "-J", "--json-encoding", "hex", "--until-end"],
        None,
    ))[0];
    assert_eq!(d["payload"], "ff0041");
    assert_eq!(d["key"], "01");
}

/// kcat users' `-X` names: librdkafka's spellings take effect or say what to use instead.
#[test]
fn librdkafka_names_as_kcat_users_pass_them() {
    let topic = unique_topic("cli-rdkafka-names");
    ok(&["topics", "create", &topic, "--partitions", "1"], None);
    ok(
        &[
            "produce",
            &topic,
            "-X",
            "queue.buffering.max.ms=5",
            "-X",
            "compression.codec=lz4",
            "-X",
            "request.required.acks=all",
            "-X",
            "api.version.request=true",
        ],
        Some("a\nb\n"),
    );
    assert_eq!(
        ok(&["consume", &topic, "-X", "fetch.wait.max.ms=100", "--until-end"], None),
        "a\nb\n"
    );
    for (args, hint) in [
        (vec!["produce", &topic, "-X", "batch.num.messages=1000"], "batch.size"),
        (
            vec!["consume", &topic, "-X", "enable.partition.eof=true", "--until-end"],
            "--until-end",
        ),
        (vec!["topics", "list", "-X", "debug=all"], "STROM_LOG"),
    ] {
        let out = strom(&args, Some(""));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(hint), "{args:?}: {err}");
    }
}
