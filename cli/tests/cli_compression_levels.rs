//! `strom produce` takes KIP-390 compression levels as Java's console producer does: as
//! producer properties (`-X`, `-F`, `--producer-property` or `--command-property`), with
//! `--compression-codec` naming the codec; the level changes what the broker stores, and a
//! level out of Java's range is refused with Java's message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use common::{ok, strom};
use serde_json::Value;
use strom_integration_tests::unique_topic;

/// partition -> bytes stored, from `strom log-dirs describe --json`.
fn sizes(topic: &str) -> BTreeMap<i64, i64> {
    let doc: Value =
        serde_json::from_str(ok(&["log-dirs", "describe", "--topic", topic, "--json"], None).trim()).unwrap();
    let mut out = BTreeMap::new();
    for broker in doc.as_array().unwrap() {
        for dir in broker["log_dirs"].as_array().unwrap() {
            for r in dir["replicas"].as_array().unwrap() {
                *out.entry(r["partition"].as_i64().unwrap()).or_default() += r["size"].as_i64().unwrap();
            }
        }
    }
    out
}

#[test]
fn produce_takes_levels_as_producer_properties() {
    let topic = unique_topic("cli-levels");
    ok(&["topics", "create", &topic, "--partitions", "2"], None);
    let input: String = (0..2000)
        .map(|i| {
            format!(
                "{{\"id\":{i},\"user\":\"user-{}\",\"note\":\"{}\"}}\n",
                i % 89,
                "y".repeat(i % 11)
            )
        })
        .collect();
    let batching = ["-X", "linger.ms=200", "-X", "batch.size=262144"];
    let mut fast = vec!["produce", &topic, "--partition", "0", "--compression-codec", "gzip"];
    fast.extend(["--producer-property", "compression.gzip.level=1"]);
    fast.extend(batching);
    ok(&fast, Some(&input));
    let mut small = vec!["produce", &topic, "--partition", "1", "--compression", "gzip"];
    small.extend(["-X", "compression.gzip.level=9"]);
    small.extend(batching);
    ok(&small, Some(&input));
    let s = sizes(&topic);
    assert!(s[&0] > s[&1], "gzip level 1 should store more than level 9: {s:?}");
    let back = ok(&["consume", &topic, "--until-end"], None);
    assert_eq!(back.lines().count(), 4000);

    // Java's range and message, naming the key and the value.
    let out = strom(
        &["produce", &topic, "--command-property", "compression.lz4.level=40"],
        Some("a\n"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("Invalid value 40 for configuration compression.lz4.level: Value must be no more than 17"),
        "{err}"
    );
    // A --producer-property without '=' never echoes what follows the key.
    let out = strom(
        &["produce", &topic, "--producer-property", "sasl.password hunter2"],
        Some("a\n"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && !err.contains("hunter2") && err.contains("KEY=VALUE"),
        "{err}"
    );
}
