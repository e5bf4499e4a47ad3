//! `strom quotas describe|alter` against the broker: what alter sets is what describe
//! then shows (parsed from `--json`), a dry run changes nothing, removal, and bad input as
//! one-line errors or usage errors (exit 2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ok, strom};
use strom_integration_tests::unique_topic;

fn described(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["quotas", "describe", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(ok(&all, None).trim()).unwrap()
}

/// `described(args)` once it equals `want`: a change reaches the brokers' quota cache
/// through the metadata log, a moment after the controller accepted it.
fn settles_to(args: &[&str], want: &serde_json::Value) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let got = described(args);
        if &got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{args:?}: {got} is not {want} after 15 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn alter_describe_and_remove_quotas() {
    let user = unique_topic("cli-quota-user");
    let client = unique_topic("cli-quota-client");

    let dry = ok(
        &[
            "quotas",
            "alter",
            "--user",
            &user,
            "--set",
            "producer_byte_rate=1024",
            "--dry-run",
        ],
        None,
    );
    assert!(dry.starts_with("dry run: the broker accepts"), "{dry}");
    assert_eq!(described(&["--user", &user]), serde_json::json!([]));

    ok(
        &[
            "quotas",
            "alter",
            "--user",
            &user,
            "--client-id",
            &client,
            "--set",
            "producer_byte_rate=1048576",
            "--set",
            "request_percentage=25",
        ],
        None,
    );
    settles_to(
        &["--user", &user, "--client-id", &client],
        &serde_json::json!([{
            "entity": {"client-id": client, "user": user},
            "quotas": {"producer_byte_rate": 1048576.0, "request_percentage": 25.0},
        }]),
    );
    // The user alone, strictly: nothing (the quota is on the pair).
    assert_eq!(described(&["--user", &user, "--strict"]), serde_json::json!([]));
    let text = ok(&["quotas", "describe", "--user", &user], None);
    assert!(
        text.contains(&format!("client-id={client},user={user}: producer_byte_rate=1048576")),
        "{text}"
    );

    ok(
        &[
            "quotas",
            "alter",
            "--user",
            &user,
            "--client-id",
            &client,
            "--delete",
            "producer_byte_rate",
            "--delete",
            "request_percentage",
        ],
        None,
    );
    settles_to(&["--user", &user], &serde_json::json!([]));

    // Errors: an unknown quota (the broker's message), a value that is not a number.
    let out = strom(
        &["quotas", "alter", "--client-id", &client, "--set", "no_such_quota=1"],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no_such_quota"));
    let out = strom(
        &[
            "quotas",
            "alter",
            "--client-id",
            &client,
            "--set",
            "producer_byte_rate=fast",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected QUOTA=NUMBER"));
    // Usage: no change; a name and the default of one type; an IP with a user.
    for args in [
        vec!["quotas", "alter", "--user", "u"],
        vec![
            "quotas",
            "alter",
            "--user",
            "u",
            "--user-default",
            "--set",
            "producer_byte_rate=1",
        ],
        vec![
            "quotas",
            "alter",
            "--ip",
            "127.0.0.1",
            "--user",
            "u",
            "--set",
            "connection_creation_rate=1",
        ],
    ] {
        let out = strom(&args, None);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
