//! `strom configs describe|alter` and `strom topics alter-config|add-partitions` against the
//! broker: set, delete, append and subtract as the broker then reports them (parsed from
//! `--json`), dry runs that the broker validates and that change nothing, every resource
//! type the broker has (topic, broker, broker default, broker loggers, group), and bad
//! input as one-line errors or usage errors (exit 2).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{ok, strom};
use strom_integration_tests::unique_topic;

/// name -> (value, source) of `strom configs describe ... --json`.
fn described(args: &[&str]) -> std::collections::BTreeMap<String, (Option<String>, String)> {
    let mut all = vec!["configs", "describe", "--json"];
    all.extend_from_slice(args);
    let doc: serde_json::Value = serde_json::from_str(ok(&all, None).trim()).unwrap();
    doc.as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap().to_owned(),
                (
                    c["value"].as_str().map(str::to_owned),
                    c["source"].as_str().unwrap().to_owned(),
                ),
            )
        })
        .collect()
}

/// `described(args)` once `settled` holds, or after 10 s (then the caller's assertion says what
/// was seen). A broker answers an alter once its controller has committed the change, and
/// applies it to what it describes a moment later, as with Java's `kafka-configs`.
fn described_when(
    args: &[&str],
    settled: impl Fn(&std::collections::BTreeMap<String, (Option<String>, String)>) -> bool,
) -> std::collections::BTreeMap<String, (Option<String>, String)> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let c = described(args);
        if settled(&c) || std::time::Instant::now() > deadline {
            return c;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

fn fails(args: &[&str]) -> (Option<i32>, String) {
    let out = strom(args, None);
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn topic_configs_set_delete_append_subtract_and_dry_run() {
    let topic = unique_topic("cli-configs");
    ok(&["topics", "create", &topic, "--partitions", "2"], None);

    // A dry run is validated by the broker and changes nothing.
    let dry = ok(
        &[
            "topics",
            "alter-config",
            &topic,
            "--set",
            "retention.ms=86400000",
            "--dry-run",
        ],
        None,
    );
    assert_eq!(dry.trim(), "dry run: the broker accepts: set retention.ms=86400000");
    assert!(!described(&["--topic", &topic]).contains_key("retention.ms"));
    let (code, err) = fails(&[
        "topics",
        "alter-config",
        &topic,
        "--set",
        "retention.ms=soon",
        "--dry-run",
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("INVALID_CONFIG") && err.contains(&format!("topic {topic}")),
        "{err}"
    );

    ok(
        &[
            "topics",
            "alter-config",
            &topic,
            "--set",
            "retention.ms=86400000",
            "--set",
            "segment.ms=3600000",
            "--append",
            "cleanup.policy=compact",
        ],
        None,
    );
    let c = described_when(&["--topic", &topic], |c| c.contains_key("cleanup.policy"));
    assert_eq!(
        c["retention.ms"],
        (Some("86400000".into()), "DYNAMIC_TOPIC_CONFIG".into())
    );
    assert_eq!(c["segment.ms"].0.as_deref(), Some("3600000"));
    assert_eq!(c["cleanup.policy"].0.as_deref(), Some("delete,compact"));

    // Through `configs alter` too: subtract from the list, delete a key.
    ok(
        &[
            "configs",
            "alter",
            "--topic",
            &topic,
            "--subtract",
            "cleanup.policy=delete",
            "--delete",
            "segment.ms",
        ],
        None,
    );
    let c = described_when(&["--topic", &topic], |c| !c.contains_key("segment.ms"));
    assert_eq!(c["cleanup.policy"].0.as_deref(), Some("compact"));
    assert!(!c.contains_key("segment.ms"), "{c:?}");
    // --all has the defaults, with their source.
    let all = described(&["--topic", &topic, "--all"]);
    assert_eq!(all["segment.ms"].1, "DEFAULT_CONFIG");
    // Text: KEY=VALUE (SOURCE) per line.
    let text = ok(&["configs", "describe", "--topic", &topic], None);
    assert!(text.contains("retention.ms=86400000 (DYNAMIC_TOPIC_CONFIG)"), "{text}");

    // An unknown key is the broker's error, naming the topic.
    let (code, err) = fails(&["topics", "alter-config", &topic, "--set", "nonsense.key=1"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("Unknown topic config name: nonsense.key"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    // Partitions: --add, --total, and a total that would remove some.
    assert_eq!(
        ok(&["topics", "add-partitions", &topic, "--add", "2"], None).trim(),
        format!("topic {topic}: 2 -> 4 partitions")
    );
    ok(&["topics", "add-partitions", &topic, "--total", "5"], None);
    let offsets = ok(&["offsets", &topic], None);
    assert_eq!(
        offsets
            .lines()
            .filter(|l| l.trim_start().starts_with(char::is_numeric))
            .count(),
        5,
        "{offsets}"
    );
    let (code, err) = fails(&["topics", "add-partitions", &topic, "--total", "3"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("has 5 partitions"), "{err}");

    // Usage errors: no change, a change without '=', two resources, no count.
    for args in [
        vec!["topics", "alter-config", topic.as_str()],
        vec!["topics", "alter-config", topic.as_str(), "--dry-run"],
        vec!["configs", "alter", "--topic", "t", "--broker", "1", "--set", "a=b"],
        vec!["topics", "add-partitions", topic.as_str()],
    ] {
        let (code, err) = fails(&args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
    }
    let (code, err) = fails(&["topics", "alter-config", &topic, "--set", "retention.ms"]);
    assert_eq!(code, Some(1));
    assert!(err.contains("expected KEY=VALUE"), "{err}");
    ok(&["topics", "delete", &topic], None);
}

#[test]
fn broker_default_loggers_and_group_configs() {
    // The broker: its static settings, with their source.
    let b = described(&["--broker", "1"]);
    assert_eq!(b["broker.id"], (Some("1".into()), "STATIC_BROKER_CONFIG".into()));
    // The cluster-wide default: validated only (the shared broker serves other tests).
    let dry = ok(
        &[
            "configs",
            "alter",
            "--broker-default",
            "--set",
            "log.cleaner.threads=2",
            "--dry-run",
        ],
        None,
    );
    assert!(dry.starts_with("dry run: the broker accepts"), "{dry}");
    // (Unknown broker keys are accepted, for plugins; a bad value of a known one is not.)
    let (code, err) = fails(&[
        "configs",
        "alter",
        "--broker-default",
        "--set",
        "log.cleaner.threads=many",
        "--dry-run",
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("the broker default"), "{err}");

    // A broker logger: set, seen, deleted (back to its parent's level).
    let logger = "kafka.server.ReplicaManager";
    ok(
        &[
            "configs",
            "alter",
            "--broker-logger",
            "1",
            "--set",
            &format!("{logger}=WARN"),
        ],
        None,
    );
    let l = described_when(&["--broker-logger", "1", "--all"], |l| {
        l.get(logger).is_some_and(|v| v.0.as_deref() == Some("WARN"))
    });
    assert_eq!(l[logger], (Some("WARN".into()), "DYNAMIC_BROKER_LOGGER_CONFIG".into()));
    ok(&["configs", "alter", "--broker-logger", "1", "--delete", logger], None);
    let l = described_when(&["--broker-logger", "1", "--all"], |l| {
        l.get(logger).is_some_and(|v| v.0.as_deref() != Some("WARN"))
    });
    assert_ne!(l[logger].0.as_deref(), Some("WARN"));

    // A group's config (KIP-848), on a group that need not exist yet.
    let group = unique_topic("cli-configs-group");
    ok(
        &[
            "configs",
            "alter",
            "--group",
            &group,
            "--set",
            "consumer.session.timeout.ms=50000",
        ],
        None,
    );
    // The broker's own level is described until the group's value has propagated: wait for
    // the group's (waiting for the key alone once read the broker's 10000).
    let g = described_when(&["--group", &group], |g| {
        g.get("consumer.session.timeout.ms")
            .is_some_and(|v| v.1 == "GROUP_CONFIG")
    });
    assert_eq!(
        g["consumer.session.timeout.ms"],
        (Some("50000".into()), "GROUP_CONFIG".into())
    );
    ok(
        &[
            "configs",
            "alter",
            "--group",
            &group,
            "--delete",
            "consumer.session.timeout.ms",
        ],
        None,
    );
    // Deleted: the broker's level applies again.
    let g = described_when(&["--group", &group], |g| {
        g.get("consumer.session.timeout.ms")
            .is_none_or(|v| v.1 != "GROUP_CONFIG")
    });
    assert_ne!(g["consumer.session.timeout.ms"].1, "GROUP_CONFIG", "{g:?}");
}
