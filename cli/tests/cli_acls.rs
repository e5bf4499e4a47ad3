//! `strom acls list|create|delete` against a private broker running KRaft's
//! StandardAuthorizer (PLAINTEXT is `User:ANONYMOUS`, a super user): what create prints is
//! what list then shows (parsed from `--json`), a dry run changes nothing, a delete removes
//! what it prints, usage errors exit 2, and a broker without an authorizer is a one-line
//! error naming SECURITY_DISABLED.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::Output;

use common::strom;
use strom_integration_tests::{unique_topic, PrivateBroker};

const AUTHORIZER: &str = "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer \
                          super.users=User:ANONYMOUS";

fn run(b: &PrivateBroker, args: &[&str]) -> Output {
    let mut all = vec!["-b", b.bootstrap.as_str()];
    all.extend_from_slice(args);
    strom(&all, None)
}

fn ok(b: &PrivateBroker, args: &[&str]) -> String {
    let out = run(b, args);
    assert!(
        out.status.success(),
        "strom {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// (permission, operation, resource type, name, pattern, principal) of a `--json` listing.
fn listed(json: &str) -> Vec<[String; 6]> {
    let doc: serde_json::Value = serde_json::from_str(json.trim()).unwrap();
    let mut rows: Vec<[String; 6]> = doc
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            [
                "permission",
                "operation",
                "resource_type",
                "resource_name",
                "pattern_type",
                "principal",
            ]
            .map(|k| a[k].as_str().unwrap().to_owned())
        })
        .collect();
    rows.sort();
    rows
}

/// `listed(strom acls list ARGS --json)` once it equals `want`, or after 10 s (the caller's
/// assertion then shows what was listed): a broker answers a create or delete once the
/// controller has committed it and applies it to its authorizer a moment later.
fn listed_when(b: &PrivateBroker, args: &[&str], want: &[[String; 6]]) -> Vec<[String; 6]> {
    let mut all = vec!["acls", "list", "--json"];
    all.extend_from_slice(args);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = listed(&ok(b, &all));
        if got == want || std::time::Instant::now() > deadline {
            return got;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn row(p: &str, op: &str, t: &str, name: &str, pattern: &str, who: &str) -> [String; 6] {
    [p, op, t, name, pattern, who].map(str::to_owned)
}

#[test]
fn create_list_delete_and_dry_runs() {
    let b = PrivateBroker::start_with(23192, &[("STROM_KAFKA_OVERRIDES", AUTHORIZER)]);
    let topic = unique_topic("cli-acl");

    let out = ok(
        &b,
        &[
            "acls",
            "create",
            "--allow-principal",
            "User:alice",
            "--operation",
            "read",
            "--operation",
            "describe",
            "--topic",
            &topic,
        ],
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("created: ALLOW")).count(),
        2,
        "{out}"
    );
    ok(
        &b,
        &[
            "acls",
            "create",
            "--deny-principal",
            "User:bob",
            "--operation",
            "write",
            "--group",
            &topic,
            "--resource-pattern-type",
            "prefixed",
        ],
    );
    // A dry run creates nothing.
    let dry = ok(
        &b,
        &[
            "acls",
            "create",
            "--allow-principal",
            "User:carol",
            "--operation",
            "all",
            "--cluster",
            "--dry-run",
        ],
    );
    assert!(dry.starts_with("dry run: would create 1 ACLs"), "{dry}");

    let want = vec![
        row("ALLOW", "DESCRIBE", "TOPIC", &topic, "LITERAL", "User:alice"),
        row("ALLOW", "READ", "TOPIC", &topic, "LITERAL", "User:alice"),
    ];
    assert_eq!(listed_when(&b, &["--topic", &topic], &want), want);
    let want = vec![row("DENY", "WRITE", "GROUP", &topic, "PREFIXED", "User:bob")];
    assert_eq!(listed_when(&b, &["--principal", "User:bob"], &want), want);
    assert!(listed(&ok(&b, &["acls", "list", "--principal", "User:carol", "--json"])).is_empty());
    // The table has a header and a row per binding.
    let table = ok(&b, &["acls", "list", "--topic", &topic]);
    assert!(table.starts_with("PERMISSION"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");

    // Delete: a dry run lists, deletes nothing; then the read binding only.
    let dry = ok(
        &b,
        &[
            "acls",
            "delete",
            "--topic",
            &topic,
            "--operation",
            "read",
            "--dry-run",
            "--json",
        ],
    );
    assert_eq!(
        listed(&dry),
        vec![row("ALLOW", "READ", "TOPIC", &topic, "LITERAL", "User:alice")]
    );
    assert_eq!(listed(&ok(&b, &["acls", "list", "--topic", &topic, "--json"])).len(), 2);
    let deleted = ok(
        &b,
        &["acls", "delete", "--topic", &topic, "--operation", "read", "--json"],
    );
    assert_eq!(
        listed(&deleted),
        vec![row("ALLOW", "READ", "TOPIC", &topic, "LITERAL", "User:alice")]
    );
    let want = vec![row("ALLOW", "DESCRIBE", "TOPIC", &topic, "LITERAL", "User:alice")];
    assert_eq!(listed_when(&b, &["--topic", &topic], &want), want);
    // By principal, every pattern type.
    let text = ok(
        &b,
        &[
            "acls",
            "delete",
            "--principal",
            "User:bob",
            "--resource-pattern-type",
            "any",
        ],
    );
    assert!(text.starts_with("deleted 1 ACLs"), "{text}");

    // Usage errors exit 2: no principal, no resource, two resources, a bad operation, a
    // delete without any filter.
    for args in [
        vec!["acls", "create", "--operation", "read", "--topic", "t"],
        vec!["acls", "create", "--allow-principal", "User:a", "--operation", "read"],
        vec![
            "acls",
            "create",
            "--allow-principal",
            "User:a",
            "--operation",
            "read",
            "--topic",
            "t",
            "--group",
            "g",
        ],
        vec![
            "acls",
            "create",
            "--allow-principal",
            "User:a",
            "--operation",
            "reed",
            "--topic",
            "t",
        ],
        vec!["acls", "delete"],
    ] {
        let out = run(&b, &args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // A principal without a type is refused by the client, naming the form.
    let out = run(
        &b,
        &[
            "acls",
            "create",
            "--allow-principal",
            "alice",
            "--operation",
            "read",
            "--topic",
            "t",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("TYPE:NAME"));
}

#[test]
fn without_an_authorizer_the_error_says_so() {
    let out = strom(&["acls", "list"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SECURITY_DISABLED"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}
