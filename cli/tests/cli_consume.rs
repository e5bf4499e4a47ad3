//! `strom consume` and `strom groups describe` against the real broker: commits of exactly
//! what was printed, group members splitting a topic (classic and KIP-848), manual
//! partitions, start by timestamp, `--until-end` under read_committed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{ok, strom};
use strom_client::{ProducerConfig, ProducerRecord, TransactionalProducer};
use strom_integration_tests::{broker, unique_topic};

fn create(topic: &str, partitions: u32) {
    ok(
        &["topics", "create", topic, "--partitions", &partitions.to_string()],
        None,
    );
}

/// Produces `values` with keys `k0..` (spread over the partitions by murmur2).
fn produce(topic: &str, values: &[String]) {
    let input: String = values.iter().enumerate().map(|(i, v)| format!("k{i}:{v}\n")).collect();
    ok(&["produce", topic, "-K", ":"], Some(&input));
}

fn values(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn fails(args: &[&str]) -> String {
    let out = strom(args, None);
    assert!(!out.status.success(), "strom {args:?} should have failed");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.lines().count(), 1, "errors are one line: {err:?}");
    err
}

/// The offsets table of `strom groups describe`: (topic, partition) → (committed, end, lag).
fn offsets_table(describe: &str) -> BTreeMap<(String, i32), (String, String, String)> {
    describe
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let p = f.get(1)?.parse::<i32>().ok()?;
            (f.len() == 6).then(|| {
                (
                    (f[0].to_owned(), p),
                    (f[2].to_owned(), f[3].to_owned(), f[4].to_owned()),
                )
            })
        })
        .collect()
}

/// Every partition committed at its end, lag 0, `total` records in all.
fn assert_all_committed(group: &str, total: i64) {
    let d = ok(&["groups", "describe", group], None);
    let table = offsets_table(&d);
    assert!(!table.is_empty(), "{d}");
    let mut sum = 0;
    for (committed, end, lag) in table.values() {
        assert_eq!((committed, lag.as_str()), (end, "0"), "{d}");
        sum += committed.parse::<i64>().unwrap();
    }
    assert_eq!(sum, total, "{d}");
}

/// Runs with `--group` and `--count` split the input: each continues where the previous
/// one stopped, whatever the consumer had fetched beyond the records printed.
fn group_runs_continue_exactly(protocol: &str) {
    let topic = unique_topic("cli-count");
    create(&topic, 3);
    let all = values("v", 90);
    produce(&topic, &all);
    let group = unique_topic("cli-count-g");
    let x = format!("group.protocol={protocol}");
    let mut seen: Vec<String> = Vec::new();
    for count in ["25", "25", "1"] {
        let out = ok(
            &["consume", &topic, "-X", &x, "--group", &group, "--count", count],
            None,
        );
        assert_eq!(out.lines().count(), count.parse::<usize>().unwrap(), "{out}");
        seen.extend(out.lines().map(str::to_owned));
        let d = ok(&["groups", "describe", &group], None);
        let committed: i64 = offsets_table(&d)
            .values()
            .map(|(c, _, _)| c.parse::<i64>().unwrap_or(0))
            .sum();
        assert_eq!(
            committed,
            seen.len() as i64,
            "commits are exactly what was printed: {d}"
        );
        let mut lagging = false;
        for (c, end, lag) in offsets_table(&d).values() {
            if let (Ok(c), Ok(end)) = (c.parse::<i64>(), end.parse::<i64>()) {
                assert_eq!(lag, &(end - c).to_string(), "{d}");
                lagging |= end > c;
            }
        }
        assert!(lagging, "records are left, so some lag shows: {d}");
    }
    let rest = ok(&["consume", &topic, "-X", &x, "--group", &group, "--until-end"], None);
    seen.extend(rest.lines().map(str::to_owned));
    let unique: BTreeSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), seen.len(), "a record was printed twice: {seen:?}");
    assert_eq!(unique, all.iter().collect(), "every record printed once");
    assert_all_committed(&group, 90);
    // Nothing left for the group: --until-end returns at once with nothing.
    assert_eq!(
        ok(&["consume", &topic, "-X", &x, "--group", &group, "--until-end"], None),
        ""
    );
    let d = ok(&["groups", "describe", &group], None);
    assert!(d.contains(&format!("type {protocol} state Empty")), "{d}");
}

#[test]
fn group_commits_exactly_what_was_printed() {
    group_runs_continue_exactly("classic");
}

#[test]
fn group_commits_exactly_what_was_printed_kip848() {
    group_runs_continue_exactly("consumer");
}

/// A `strom` process in the background whose stdout lines are collected as they come.
struct Running {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    fn start(args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_strom"))
            .args(args)
            .env("STROM_BOOTSTRAP_SERVERS", &broker().bootstrap)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                sink.lock().unwrap().push(line.unwrap());
            }
        });
        Running {
            child,
            lines,
            reader: Some(reader),
        }
    }

    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// SIGINT, as Ctrl-C: the process commits what it printed, leaves the group and exits 0.
    fn interrupt_and_wait(mut self, within: Duration) -> Vec<String> {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
        let deadline = Instant::now() + within;
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "strom did not exit within {within:?} of SIGINT"
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut err = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(status.success(), "strom exited with {status}: {err}");
        self.reader.take().unwrap().join().unwrap();
        self.lines()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // A failed assertion must not leave a consumer running.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(what: &str, within: Duration, mut cond: impl FnMut() -> Option<String>) {
    let deadline = Instant::now() + within;
    let mut last = String::new();
    while Instant::now() < deadline {
        match cond() {
            None => return,
            Some(state) => last = state,
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{what}: not within {within:?}; last seen:\n{last}");
}

/// Two `strom consume --group G` processes: the second joins once the first has read what
/// there was, they split the partitions, and together print every record exactly once; `groups
/// describe` shows both members meanwhile and the committed offsets with lag 0 after.
fn two_members_split_the_topic(protocol: &str) {
    let topic = unique_topic("cli-split");
    create(&topic, 4);
    let first = values("a", 100);
    produce(&topic, &first);
    let group = unique_topic("cli-split-g");
    let x = format!("group.protocol={protocol}");
    let args = ["consume", &topic, "-X", &x, "--group", &group, "--format", "%p %s\\n"];
    // The first member reads everything there is, then the second joins: the partitions
    // that move must be committed at revocation (the 5 s periodic commit has not run yet),
    // or the new owner prints them again.
    let a = Running::start(&args);
    wait_for(
        "the first member printed the first batch",
        Duration::from_secs(60),
        || {
            let n = a.lines().len();
            (n < 100).then(|| format!("{n} lines"))
        },
    );
    let b = Running::start(&args);
    wait_for("both members with partitions", Duration::from_secs(60), || {
        let d = strom(&["groups", "describe", &group], None);
        let d = String::from_utf8_lossy(&d.stdout).into_owned();
        let members = d.lines().filter(|l| l.starts_with("  member ")).count();
        let assigned = d.lines().filter(|l| l.starts_with("    assigned ")).count();
        let stable = d.contains(&format!("type {protocol} state Stable"));
        if stable && members == 2 && assigned == 2 && !d.contains("    target ") {
            None
        } else {
            Some(d)
        }
    });
    let d = ok(&["groups", "describe", &group], None);
    assert!(d.contains("instance - client strom host "), "{d}");
    let second = values("b", 100);
    produce(&topic, &second);
    wait_for("every record printed", Duration::from_secs(60), || {
        let n = a.lines().len() + b.lines().len();
        (n < 200).then(|| format!("{n} lines"))
    });
    let a = a.interrupt_and_wait(Duration::from_secs(30));
    let b = b.interrupt_and_wait(Duration::from_secs(30));
    let value = |l: &String| l.split(' ').nth(1).unwrap().to_owned();
    let mut printed: Vec<String> = a.iter().chain(&b).map(value).collect();
    printed.sort_unstable();
    let mut want: Vec<String> = first.iter().chain(&second).cloned().collect();
    want.sort_unstable();
    assert_eq!(printed, want, "every record exactly once");
    // The records produced once both were members: disjoint partitions, both busy.
    let parts = |lines: &[String]| -> BTreeSet<String> {
        lines
            .iter()
            .filter(|l| l.contains(" b"))
            .map(|l| l.split(' ').next().unwrap().to_owned())
            .collect()
    };
    let (pa, pb) = (parts(&a), parts(&b));
    assert!(!pa.is_empty() && !pb.is_empty(), "both members read: {pa:?} {pb:?}");
    assert!(pa.is_disjoint(&pb), "a partition read by both: {pa:?} {pb:?}");
    assert_all_committed(&group, 200);
}

#[test]
fn two_group_members_split_partitions_and_print_every_record_once() {
    two_members_split_the_topic("classic");
}

#[test]
fn two_kip848_group_members_split_partitions_and_print_every_record_once() {
    two_members_split_the_topic("consumer");
}

#[test]
fn partitions_and_start_by_timestamp() {
    let topic = unique_topic("cli-part");
    create(&topic, 3);
    for p in 0..3 {
        let input: String = (0..5).map(|i| format!("p{p}-{i}\n")).collect();
        ok(&["produce", &topic, "--partition", &p.to_string()], Some(&input));
    }
    let one = ok(&["consume", &topic, "--partition", "1", "--until-end"], None);
    assert_eq!(
        one.lines().collect::<Vec<_>>(),
        ["p1-0", "p1-1", "p1-2", "p1-3", "p1-4"]
    );
    let two = ok(
        &[
            "consume",
            &topic,
            "--partition",
            "2",
            "--partition",
            "0",
            "--from",
            "3",
            "--until-end",
        ],
        None,
    );
    let mut two: Vec<&str> = two.lines().collect();
    two.sort_unstable();
    assert_eq!(two, ["p0-3", "p0-4", "p2-3", "p2-4"]);
    let err = fails(&["consume", &topic, "--partition", "3"]);
    assert!(err.contains("no partition 3"), "{err}");

    // A second batch, later: @TS of its first record starts exactly there.
    std::thread::sleep(Duration::from_millis(50));
    let later = values("later", 6);
    produce(&topic, &later);
    let stamped = ok(&["consume", &topic, "--until-end", "--format", "%T %s\\n"], None);
    let ts_of = |prefix: &str| -> Vec<i64> {
        stamped
            .lines()
            .filter(|l| l.split(' ').nth(1).unwrap().starts_with(prefix))
            .map(|l| l.split(' ').next().unwrap().parse().unwrap())
            .collect()
    };
    let start = *ts_of("later").iter().min().unwrap();
    assert!(ts_of("p").iter().all(|t| *t < start), "{stamped}");
    let from_ts = format!("@{start}");
    let got = ok(&["consume", &topic, "--from", &from_ts, "--until-end"], None);
    let got: BTreeSet<&str> = got.lines().collect();
    assert_eq!(got, later.iter().map(String::as_str).collect());
    // With a group: the timestamp places a first start; what was printed is committed.
    let group = unique_topic("cli-part-g");
    let got = ok(
        &["consume", &topic, "--group", &group, "--from", &from_ts, "--until-end"],
        None,
    );
    assert_eq!(got.lines().count(), 6, "{got}");
    let d = ok(&["groups", "describe", &group], None);
    for (committed, end, lag) in offsets_table(&d).values() {
        assert_eq!((committed, lag.as_str()), (end, "0"), "{d}");
    }
    // --partition with --group: standalone, from the committed offsets: nothing left.
    assert_eq!(
        ok(
            &["consume", &topic, "--group", &group, "--partition", "1", "--until-end"],
            None
        ),
        ""
    );
}

#[test]
fn bad_starts_are_one_clear_line() {
    let err = fails(&["consume", "any-topic", "--from", "committed"]);
    assert!(err.contains("--from committed needs --group"), "{err}");
    // -N counts back from the end; -0 and a sign without a number are not positions.
    let err = fails(&["consume", "any-topic", "--from=-0"]);
    assert!(err.contains("--from -0"), "{err}");
    let err = fails(&["consume", "any-topic", "--from=-x"]);
    assert!(err.contains("-N"), "{err}");
    let err = fails(&["consume", "any-topic", "--from", "@soon"]);
    assert!(err.contains("@TIMESTAMP_MS"), "{err}");
    let err = fails(&["consume", "no-such-topic-xyz", "--group", "g", "--until-end"]);
    assert!(err.contains("no-such-topic-xyz"), "{err}");
    let err = fails(&["-X", "group.protocol=cooperative", "consume", "t", "--group", "g"]);
    assert!(err.contains("group.protocol"), "{err}");
}

/// `--until-end` under read_committed stops at the last stable offset (an open transaction
/// keeps it waiting only for the few seconds committed transactions' markers may take),
/// skips aborted records and markers, and a group's commit after it leaves no lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn until_end_under_read_committed() {
    let topic = unique_topic("cli-rc");
    let t = topic.clone();
    tokio::task::spawn_blocking(move || create(&t, 2)).await.unwrap();
    let mut cfg = ProducerConfig::new(&broker().bootstrap);
    cfg.transactional_id = Some(format!("{topic}-tx"));
    let p = TransactionalProducer::new(cfg).await.unwrap();
    p.init_transactions().await.unwrap();
    let send = |prefix: &'static str| {
        let p = &p;
        let topic = &topic;
        async move {
            for i in 0..6 {
                let v = format!("{prefix}{i}");
                // Inside a transaction: a failed record fails the commit.
                let _delivery = p
                    .send(ProducerRecord::new(topic.as_str(), Bytes::from(v)).partition(i % 2))
                    .await
                    .unwrap();
            }
            p.flush().await.unwrap();
        }
    };
    p.begin_transaction().await.unwrap();
    send("c").await;
    p.commit_transaction().await.unwrap();
    p.begin_transaction().await.unwrap();
    send("open").await;
    let run = |args: Vec<String>| async move {
        tokio::time::timeout(
            Duration::from_secs(60),
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                ok(&args, None)
            }),
        )
        .await
        .expect("strom consume --until-end did not stop")
        .unwrap()
    };
    let sorted = |s: String| -> Vec<String> {
        let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
        v.sort_unstable();
        v
    };
    let args = |extra: &[&str]| -> Vec<String> {
        let mut a = vec!["consume".to_owned(), topic.clone(), "--until-end".to_owned()];
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        a
    };
    // The transaction is open: read_committed stops before it, read_uncommitted sees it.
    let committed = sorted(run(args(&["--isolation", "read_committed"])).await);
    assert_eq!(committed, values("c", 6));
    let uncommitted = sorted(run(args(&[])).await);
    assert_eq!(uncommitted.len(), 12, "{uncommitted:?}");
    p.abort_transaction().await.unwrap();
    p.begin_transaction().await.unwrap();
    send("d").await;
    p.commit_transaction().await.unwrap();
    let group = unique_topic("cli-rc-g");
    let got = sorted(run(args(&["--isolation", "read_committed", "--group", &group])).await);
    let mut want: Vec<String> = values("c", 6).into_iter().chain(values("d", 6)).collect();
    want.sort_unstable();
    assert_eq!(got, want, "aborted records skipped");
    // The commit is the position past the last commit marker: no lag left.
    let g = group.clone();
    tokio::task::spawn_blocking(move || {
        let d = ok(&["groups", "describe", &g], None);
        for (committed, end, lag) in offsets_table(&d).values() {
            assert_eq!((committed, lag.as_str()), (end, "0"), "{d}");
        }
    })
    .await
    .unwrap();
}

/// Right after a transactional `strom produce` returns, `--until-end` under read_committed
/// prints every record: the commit markers reach the partitions a moment after EndTxn
/// returns, and the LSO seen at start once stopped short of them (on Kafka 3.9.1, 4 of 10
/// runs printed nothing and exited 0). Ten runs, a fresh 6-partition topic each;
/// `scripts/compat` runs this against every broker version.
#[test]
fn until_end_sees_what_a_transactional_produce_just_committed() {
    let input: String = (0..1000).map(|i| format!("v{i}\n")).collect();
    for run in 0..10 {
        let topic = unique_topic("cli-rc-fresh");
        create(&topic, 6);
        ok(
            &["produce", &topic, "--transactional-id", &format!("{topic}-tx")],
            Some(&input),
        );
        let started = Instant::now();
        let out = ok(
            &[
                "consume",
                &topic,
                "--isolation",
                "read_committed",
                "--from",
                "earliest",
                "--until-end",
            ],
            None,
        );
        let lines: BTreeSet<&str> = out.lines().collect();
        assert_eq!(
            (run, lines.len()),
            (run, 1000),
            "run {run}: {} lines",
            out.lines().count()
        );
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "run {run}: {:?}",
            started.elapsed()
        );
    }
}
