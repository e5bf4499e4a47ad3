//! `strom transactions list|describe|producers|fence` against the broker, after a
//! transactional `strom produce`: the id is listed and described (parsed `--json`), the
//! partition's producer is shown, fencing bumps the epoch; an unknown id is a one-line
//! error, usage errors exit 2.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ok, strom};
use strom_integration_tests::unique_topic;

#[test]
fn list_describe_producers_and_fence() {
    let topic = unique_topic("cli-txn");
    let id = unique_topic("cli-txn-id");
    ok(&["topics", "create", &topic, "--partitions", "1"], None);
    ok(&["produce", &topic, "--transactional-id", &id], Some("a\nb\n"));

    let listed: serde_json::Value = serde_json::from_str(ok(&["transactions", "list", "--json"], None).trim()).unwrap();
    let mine = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["transactional_id"] == id.as_str())
        .unwrap_or_else(|| panic!("{id} not in {listed}"))
        .clone();
    let described: serde_json::Value =
        serde_json::from_str(ok(&["transactions", "describe", &id, "--json"], None).trim()).unwrap();
    assert_eq!(described["producer_id"], mine["producer_id"]);
    assert_eq!(described["state"], "CompleteCommit", "{described}");
    let epoch = described["producer_epoch"].as_i64().unwrap();

    let producers: serde_json::Value = serde_json::from_str(
        ok(
            &["transactions", "producers", &topic, "--partition", "0", "--json"],
            None,
        )
        .trim(),
    )
    .unwrap();
    assert_eq!(producers[0]["producer_id"], mine["producer_id"], "{producers}");
    assert_eq!(producers[0]["current_txn_start_offset"], serde_json::Value::Null);

    let fenced = ok(&["transactions", "fence", &id], None);
    let new_epoch: i64 = fenced.trim().rsplit(' ').next().unwrap().parse().unwrap();
    assert!(new_epoch > epoch, "{fenced} after epoch {epoch}");
    let again: serde_json::Value =
        serde_json::from_str(ok(&["transactions", "describe", &id, "--json"], None).trim()).unwrap();
    assert_eq!(again["producer_epoch"].as_i64().unwrap(), new_epoch);

    let out = strom(&["transactions", "describe", "no-such-transactional-id-xyz"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no-such-transactional-id-xyz"), "{err}");
    assert_eq!(strom(&["transactions", "fence"], None).status.code(), Some(2));
    assert_eq!(
        strom(&["transactions", "producers", &topic], None).status.code(),
        Some(2)
    );
}
