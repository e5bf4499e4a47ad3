//! `strom features describe|upgrade|downgrade` and `strom quorum` against the broker:
//! parsed `--json`, dry runs the controller accepts or refuses (changing nothing), and
//! usage errors.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ok, strom};

#[test]
fn features_and_quorum() {
    let doc: serde_json::Value = serde_json::from_str(ok(&["features", "describe", "--json"], None).trim()).unwrap();
    let tv = doc["finalized"]["transaction.version"]["max"].as_i64().unwrap();
    assert!(
        doc["supported"]["metadata.version"]["max"].as_i64().unwrap() >= 7,
        "{doc}"
    );
    let text = ok(&["features", "describe"], None);
    assert!(
        text.lines().any(|l| l.starts_with("metadata.version\tfinalized ")),
        "{text}"
    );

    let dry = ok(
        &[
            "features",
            "upgrade",
            "--feature",
            &format!("transaction.version={tv}"),
            "--dry-run",
        ],
        None,
    );
    assert_eq!(dry.trim(), "dry run: the controller accepts transaction.version");
    let out = strom(
        &["features", "downgrade", "--feature", "metadata.version=7", "--dry-run"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("INVALID_UPDATE_VERSION") && err.contains("metadata.version"),
        "{err}"
    );
    let after: serde_json::Value = serde_json::from_str(ok(&["features", "describe", "--json"], None).trim()).unwrap();
    assert_eq!(after["finalized"], doc["finalized"], "dry runs change nothing");

    let out = strom(&["features", "upgrade", "--feature", "transaction.version"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected NAME=LEVEL"));
    assert_eq!(strom(&["features", "upgrade"], None).status.code(), Some(2));

    let q: serde_json::Value = serde_json::from_str(ok(&["quorum", "--json"], None).trim()).unwrap();
    assert_eq!(q["leader_id"], 1, "{q}");
    let voters: Vec<&serde_json::Value> = q["replicas"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["role"] == "voter")
        .collect();
    assert_eq!(voters.len(), 1, "{q}");
    assert!(voters[0]["lag"].as_i64().unwrap() >= 0);
    let text = ok(&["quorum"], None);
    assert!(text.starts_with("leader 1 epoch "), "{text}");
}
