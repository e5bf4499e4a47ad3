//! Consumer groups against the real broker, both protocols: members joining, leaving and
//! crashing while every record is consumed (at-least-once with commits, no partition owned
//! by two members in one generation), cooperative-sticky keeping unaffected partitions,
//! static membership surviving a restart without a rebalance, max.poll.interval.ms, commits
//! (sync, async, auto, metadata, fencing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, GroupProtocol, NewTopic, OffsetAndMetadata, Producer,
    ProducerConfig, ProducerRecord, RebalanceContext, RebalanceListener, TopicPartition,
};
use strom_integration_tests::{broker, init_test_logging, unique_topic};

async fn create(topic: &str, partitions: i32) {
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin.create_topics(&[NewTopic::new(topic, partitions)]).await.unwrap();
}

async fn produce(topic: &str, from: usize, n: usize) {
    let p = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    let mut deliveries = Vec::with_capacity(n);
    for i in from..from + n {
        let record = ProducerRecord::new(topic, Bytes::from(i.to_string())).key(Bytes::from(i.to_string()));
        deliveries.push(p.send(record).await.unwrap());
    }
    for d in futures_util::future::join_all(deliveries).await {
        d.unwrap();
    }
    p.close().await.unwrap();
}

fn config(group: &str, protocol: GroupProtocol, f: impl FnOnce(&mut ConsumerConfig)) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(&broker().bootstrap);
    c.group_id = Some(group.to_owned());
    c.group_protocol = protocol;
    c.auto_offset_reset = strom_client::OffsetReset::Earliest;
    c.enable_auto_commit = false;
    c.session_timeout = Duration::from_secs(10);
    c.heartbeat_interval = Duration::from_millis(500);
    c.client.metadata_max_age = Duration::from_secs(2);
    f(&mut c);
    c
}

/// Everything the members of one test saw.
#[derive(Default)]
struct Seen {
    /// value → times consumed
    values: Mutex<HashMap<u64, u32>>,
    /// generation → member → partitions it owned right after a poll in that generation
    owners: Mutex<BTreeMap<i32, BTreeMap<String, BTreeSet<TopicPartition>>>>,
    revoked: Mutex<BTreeMap<String, Vec<TopicPartition>>>,
    assigned: Mutex<BTreeMap<String, Vec<TopicPartition>>>,
    lost: Mutex<BTreeMap<String, Vec<TopicPartition>>>,
}

impl Seen {
    fn distinct(&self) -> usize {
        self.values.lock().unwrap().len()
    }

    fn duplicates(&self) -> u32 {
        self.values.lock().unwrap().values().map(|n| n - 1).sum()
    }

    /// No partition owned by two members in one generation.
    fn check_ownership(&self) {
        for (generation, members) in self.owners.lock().unwrap().iter() {
            let mut seen: BTreeMap<&TopicPartition, &String> = BTreeMap::new();
            for (m, parts) in members {
                for tp in parts {
                    if let Some(other) = seen.insert(tp, m) {
                        panic!("{tp} owned by {other} and {m} in generation {generation}");
                    }
                }
            }
        }
    }
}

struct Recorder {
    name: String,
    seen: Arc<Seen>,
}

impl RebalanceListener for Recorder {
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition], ctx: &mut RebalanceContext) {
        ctx.commit_positions(partitions);
        self.seen
            .revoked
            .lock()
            .unwrap()
            .entry(self.name.clone())
            .or_default()
            .extend(partitions.iter().cloned());
    }
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition], _ctx: &mut RebalanceContext) {
        self.seen
            .assigned
            .lock()
            .unwrap()
            .entry(self.name.clone())
            .or_default()
            .extend(partitions.iter().cloned());
    }
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition], _ctx: &mut RebalanceContext) {
        self.seen
            .lost
            .lock()
            .unwrap()
            .entry(self.name.clone())
            .or_default()
            .extend(partitions.iter().cloned());
    }
}

/// A member running in its own task: poll, record, commit what was processed.
struct Member {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<Consumer>,
}

impl Member {
    async fn start(name: &str, topic: &str, cfg: ConsumerConfig, seen: Arc<Seen>) -> Member {
        let mut c = Consumer::new(cfg).await.unwrap();
        c.set_rebalance_listener(Recorder {
            name: name.to_owned(),
            seen: seen.clone(),
        });
        c.subscribe(&[topic]).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let name = name.to_owned();
        let task = tokio::spawn(async move {
            while !flag.load(Ordering::Relaxed) {
                let recs = c.poll(Duration::from_millis(200)).await.unwrap();
                let generation = c.group_metadata().unwrap().generation_id;
                let owned: BTreeSet<TopicPartition> = c.assignment().into_iter().collect();
                seen.owners
                    .lock()
                    .unwrap()
                    .entry(generation)
                    .or_default()
                    .entry(name.clone())
                    .or_default()
                    .extend(owned);
                if recs.is_empty() {
                    continue;
                }
                {
                    let mut v = seen.values.lock().unwrap();
                    for r in &recs {
                        let n: u64 = std::str::from_utf8(r.value.as_ref().unwrap()).unwrap().parse().unwrap();
                        *v.entry(n).or_default() += 1;
                    }
                }
                // A failed commit (the group moved on) is expected now and then.
                let _ = c.commit_sync().await;
            }
            c
        });
        Member { stop, task }
    }

    /// Stops polling and closes: commits, leaves the group.
    async fn close(self) {
        self.stop.store(true, Ordering::Relaxed);
        let c = self.task.await.unwrap();
        c.close().await.unwrap();
    }

    /// Stops without leaving (a crash as far as the group can tell): dropped on a thread
    /// with no tokio runtime, where a consumer cannot leave its group on drop.
    async fn crash(self) {
        self.stop.store(true, Ordering::Relaxed);
        let c = self.task.await.unwrap();
        std::thread::spawn(move || drop(c)).join().unwrap();
    }
}

async fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn join_leave_crash(protocol: GroupProtocol, strategy: &str) {
    init_test_logging();
    let topic = unique_topic("group-members");
    let group = unique_topic("g");
    create(&topic, 6).await;
    produce(&topic, 0, 6_000).await;
    let seen = Arc::new(Seen::default());
    let cfg = |_: &str| {
        config(&group, protocol, |c| {
            c.assignment_strategies = vec![strategy.to_owned()];
            c.max_poll_records = 100;
        })
    };
    let a = Member::start("a", &topic, cfg("a"), seen.clone()).await;
    let b = Member::start("b", &topic, cfg("b"), seen.clone()).await;
    let c = Member::start("c", &topic, cfg("c"), seen.clone()).await;
    wait_for("the first 6000 records", 60, || seen.distinct() == 6_000).await;

    // A fourth member joins, one leaves cleanly, one crashes, while records keep coming.
    let d = Member::start("d", &topic, cfg("d"), seen.clone()).await;
    produce(&topic, 6_000, 3_000).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    b.close().await;
    produce(&topic, 9_000, 3_000).await;
    c.crash().await;
    produce(&topic, 12_000, 3_000).await;
    wait_for("all 15000 records after join/leave/crash", 90, || {
        seen.distinct() == 15_000
    })
    .await;
    // Both survivors own partitions once the crashed member's session expired.
    wait_for("the group to settle on the two survivors", 30, || {
        let owners = seen.owners.lock().unwrap();
        owners.iter().next_back().is_some_and(|(_, last)| {
            let owned: usize = last.values().map(BTreeSet::len).sum();
            last.len() >= 2 && owned == 6 && !last.contains_key("c")
        })
    })
    .await;
    a.close().await;
    d.close().await;
    seen.check_ownership();
    let dups = seen.duplicates();
    // At-least-once: duplicates only from the crashed member's uncommitted last batch.
    assert!(dups <= 600, "{dups} duplicates");
    eprintln!("{protocol:?}/{strategy}: 15000 records, {dups} duplicates");
}

#[tokio::test(flavor = "multi_thread")]
async fn classic_range_members_join_leave_and_crash_without_losing_records() {
    join_leave_crash(GroupProtocol::Classic, "range").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn classic_roundrobin_members_join_leave_and_crash_without_losing_records() {
    join_leave_crash(GroupProtocol::Classic, "roundrobin").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn classic_cooperative_sticky_members_join_leave_and_crash_without_losing_records() {
    join_leave_crash(GroupProtocol::Classic, "cooperative-sticky").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kip848_members_join_leave_and_crash_without_losing_records() {
    join_leave_crash(GroupProtocol::Consumer, "range").await;
}

/// Cooperative-sticky: when a member joins, only the partitions that move are revoked; the
/// others stay with their owners through the rebalance.
async fn incremental(protocol: GroupProtocol) {
    init_test_logging();
    let topic = unique_topic("group-coop");
    let group = unique_topic("g");
    create(&topic, 6).await;
    produce(&topic, 0, 600).await;
    let seen = Arc::new(Seen::default());
    let cfg = || {
        config(&group, protocol, |c| {
            c.assignment_strategies = vec!["cooperative-sticky".to_owned()];
        })
    };
    let a = Member::start("a", &topic, cfg(), seen.clone()).await;
    let b = Member::start("b", &topic, cfg(), seen.clone()).await;
    wait_for("600 records", 60, || seen.distinct() == 600).await;
    let settled = |seen: &Seen, n: usize| {
        let owners = seen.owners.lock().unwrap();
        owners.iter().next_back().is_some_and(|(_, m)| {
            m.len() == n && m.values().map(BTreeSet::len).sum::<usize>() == 6 && m.values().all(|p| p.len() == 6 / n)
        })
    };
    wait_for("two balanced members", 30, || settled(&seen, 2)).await;
    let before: BTreeMap<String, BTreeSet<TopicPartition>> =
        seen.owners.lock().unwrap().iter().next_back().unwrap().1.clone();
    seen.revoked.lock().unwrap().clear();

    let c = Member::start("c", &topic, cfg(), seen.clone()).await;
    wait_for("three balanced members", 60, || settled(&seen, 3)).await;
    let revoked = seen.revoked.lock().unwrap().clone();
    let moved: usize = revoked.values().map(Vec::len).sum();
    assert_eq!(
        moved, 2,
        "only the two partitions going to the new member move: {revoked:?}"
    );
    let after = seen.owners.lock().unwrap().iter().next_back().unwrap().1.clone();
    for m in ["a", "b"] {
        let kept: BTreeSet<_> = before[m].intersection(&after[m]).collect();
        assert_eq!(kept.len(), 2, "{m} kept {kept:?} of {:?}", before[m]);
        for tp in &before[m] {
            if after[m].contains(tp) {
                assert!(
                    !revoked.get(m).is_some_and(|r| r.contains(tp)),
                    "{tp} was revoked and given back"
                );
            }
        }
    }
    produce(&topic, 600, 600).await;
    wait_for("1200 records", 60, || seen.distinct() == 1_200).await;
    for m in [a, b, c] {
        m.close().await;
    }
    seen.check_ownership();
}

#[tokio::test(flavor = "multi_thread")]
async fn cooperative_sticky_moves_only_what_the_new_member_takes() {
    incremental(GroupProtocol::Classic).await;
}

/// KIP-848 reconciles incrementally too: a joining member takes partitions from the others
/// without everyone giving up everything.
#[tokio::test(flavor = "multi_thread")]
async fn kip848_moves_only_what_the_new_member_takes() {
    incremental(GroupProtocol::Consumer).await;
}

/// A static member restarting within session.timeout.ms gets its partitions back without a
/// rebalance: the other member never loses or gains anything and the generation stays.
async fn static_restart(protocol: GroupProtocol) {
    init_test_logging();
    let topic = unique_topic("group-static");
    let group = unique_topic("g");
    create(&topic, 4).await;
    produce(&topic, 0, 400).await;
    let seen = Arc::new(Seen::default());
    let cfg = |id: &str| {
        config(&group, protocol, |c| {
            c.group_instance_id = Some(format!("{group}-{id}"));
            c.session_timeout = Duration::from_secs(30);
        })
    };
    let a = Member::start("a", &topic, cfg("a"), seen.clone()).await;
    let b = Member::start("b", &topic, cfg("b"), seen.clone()).await;
    wait_for("400 records", 60, || seen.distinct() == 400).await;
    wait_for("both members own partitions", 30, || {
        let o = seen.owners.lock().unwrap();
        o.iter()
            .next_back()
            .is_some_and(|(_, m)| m.values().filter(|p| p.len() == 2).count() == 2)
    })
    .await;
    let generation_before = *seen.owners.lock().unwrap().keys().next_back().unwrap();
    let a_parts = seen.owners.lock().unwrap()[&generation_before]["a"].clone();
    seen.revoked.lock().unwrap().clear();
    seen.assigned.lock().unwrap().clear();

    // Restart a: close (a static member does not leave) and come back with the same id.
    a.close().await;
    let a2 = Member::start("a2", &topic, cfg("a"), seen.clone()).await;
    produce(&topic, 400, 400).await;
    wait_for("800 records", 60, || seen.distinct() == 800).await;
    let assigned = seen.assigned.lock().unwrap().clone();
    assert_eq!(
        assigned.get("a2").map(|v| v.iter().cloned().collect::<BTreeSet<_>>()),
        Some(a_parts),
        "the restarted static member got other partitions"
    );
    assert!(!assigned.contains_key("b"), "b was reassigned: {assigned:?}");
    assert!(seen.revoked.lock().unwrap().get("b").is_none(), "b lost partitions");
    if protocol == GroupProtocol::Classic {
        let generations: BTreeSet<i32> = seen.owners.lock().unwrap().keys().copied().collect();
        assert_eq!(
            generations.iter().next_back(),
            Some(&generation_before),
            "a rebalance happened"
        );
    }
    a2.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn classic_static_member_restart_causes_no_rebalance() {
    static_restart(GroupProtocol::Classic).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kip848_static_member_restart_keeps_its_partitions() {
    static_restart(GroupProtocol::Consumer).await;
}

/// A member that stops polling past max.poll.interval.ms leaves the group: the other member
/// takes everything, a commit from the stale member is refused, and when it polls again it
/// is told its partitions were lost and rejoins.
async fn poll_timeout(protocol: GroupProtocol) {
    init_test_logging();
    let topic = unique_topic("group-poll-timeout");
    let group = unique_topic("g");
    create(&topic, 2).await;
    produce(&topic, 0, 100).await;
    let seen = Arc::new(Seen::default());
    let b = Member::start(
        "b",
        &topic,
        config(&group, protocol, |c| c.assignment_strategies = vec!["range".into()]),
        seen.clone(),
    )
    .await;
    let mut slow = Consumer::new(config(&group, protocol, |c| {
        c.max_poll_interval = Duration::from_secs(3);
        c.assignment_strategies = vec!["range".into()];
    }))
    .await
    .unwrap();
    let lost = Arc::new(Seen::default());
    slow.set_rebalance_listener(Recorder {
        name: "slow".into(),
        seen: lost.clone(),
    });
    slow.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while slow.assignment().len() != 1 {
        assert!(Instant::now() < deadline, "slow member never got a partition");
        slow.poll(Duration::from_millis(200)).await.unwrap();
    }
    let owned = slow.assignment();
    // Stop polling for longer than max.poll.interval.ms.
    tokio::time::sleep(Duration::from_secs(5)).await;
    wait_for("b to own both partitions", 30, || {
        let o = seen.owners.lock().unwrap();
        o.iter()
            .next_back()
            .is_some_and(|(_, m)| m.get("b").is_some_and(|p| p.len() == 2))
    })
    .await;
    let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> =
        owned.iter().map(|tp| (tp.clone(), OffsetAndMetadata::new(1))).collect();
    let e = slow.commit_offsets_sync(&offsets).await.unwrap_err();
    assert!(
        matches!(
            e.kafka_code(),
            Some(
                strom_client::ErrorCode::UnknownMemberId
                    | strom_client::ErrorCode::IllegalGeneration
                    | strom_client::ErrorCode::StaleMemberEpoch
                    | strom_client::ErrorCode::FencedMemberEpoch
            )
        ),
        "a stale member's commit was not fenced: {e}"
    );
    // Polling again: lost, then back in the group.
    let deadline = Instant::now() + Duration::from_secs(30);
    while slow.assignment().is_empty() || lost.lost.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "slow member did not rejoin");
        slow.poll(Duration::from_millis(200)).await.unwrap();
    }
    assert_eq!(lost.lost.lock().unwrap()["slow"], owned);
    slow.close().await.unwrap();
    b.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn classic_max_poll_interval_expiry_leaves_and_rejoins() {
    poll_timeout(GroupProtocol::Classic).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kip848_max_poll_interval_expiry_leaves_and_rejoins() {
    poll_timeout(GroupProtocol::Consumer).await;
}

/// commit_sync / commit_async with metadata, committed() reads them back, auto-commit
/// commits what was delivered, and a new member continues from the commits.
#[tokio::test(flavor = "multi_thread")]
async fn commits_sync_async_auto_and_metadata() {
    init_test_logging();
    let topic = unique_topic("group-commits");
    let group = unique_topic("g");
    create(&topic, 2).await;
    produce(&topic, 0, 1_000).await;
    let tp0 = TopicPartition::new(&topic, 0);
    let tp1 = TopicPartition::new(&topic, 1);

    let mut c = Consumer::new(config(&group, GroupProtocol::Classic, |_| {}))
        .await
        .unwrap();
    c.subscribe(&[&topic]).unwrap();
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while n < 1_000 {
        assert!(Instant::now() < deadline);
        n += c.poll(Duration::from_millis(200)).await.unwrap().len();
    }
    let ends = c.end_offsets(&[tp0.clone(), tp1.clone()]).await.unwrap();
    c.commit_offsets_sync(&BTreeMap::from([(
        tp0.clone(),
        OffsetAndMetadata::new(7).with_metadata("sync"),
    )]))
    .await
    .unwrap();
    let f = c
        .commit_offsets_async(BTreeMap::from([(
            tp1.clone(),
            OffsetAndMetadata::new(9).with_metadata("async"),
        )]))
        .unwrap();
    f.await.unwrap();
    let got = c.committed(&[tp0.clone(), tp1.clone()]).await.unwrap();
    assert_eq!((got[&tp0].offset, got[&tp0].metadata.as_str()), (7, "sync"));
    assert_eq!((got[&tp1].offset, got[&tp1].metadata.as_str()), (9, "async"));
    assert!(got[&tp0].leader_epoch.is_none());
    c.commit_sync().await.unwrap();
    let got = c.committed(&[tp0.clone(), tp1.clone()]).await.unwrap();
    assert_eq!(got[&tp0].offset, ends[&tp0]);
    assert_eq!(got[&tp1].offset, ends[&tp1]);
    assert!(got[&tp0].leader_epoch.is_some(), "commit carries the leader epoch");
    assert_eq!(c.metrics().commits_succeeded, 3);
    c.close().await.unwrap();

    // Auto-commit: a consumer that reads 500 new records and closes has committed them.
    produce(&topic, 1_000, 500).await;
    let mut c = Consumer::new(config(&group, GroupProtocol::Classic, |c| {
        c.enable_auto_commit = true;
        c.auto_commit_interval = Duration::from_millis(200);
    }))
    .await
    .unwrap();
    c.subscribe(&[&topic]).unwrap();
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while got < 500 {
        assert!(Instant::now() < deadline, "{got} of 500 after the committed offsets");
        got += c.poll(Duration::from_millis(200)).await.unwrap().len();
    }
    assert_eq!(got, 500, "the second consumer did not start from the commits");
    // Auto-commit runs from poll, in the background, every auto.commit.interval.ms.
    let deadline = Instant::now() + Duration::from_secs(10);
    while c.last_committed().values().sum::<i64>() != 1_500 {
        assert!(Instant::now() < deadline, "auto-commit did not run while polling");
        let _ = c.poll(Duration::from_millis(100)).await.unwrap();
    }
    c.close().await.unwrap();
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let committed = admin.group_offsets(&group).await.unwrap();
    let total: i64 = committed.values().sum();
    assert_eq!(total, 1_500, "auto-commit stored every delivered offset");
}

/// subscribe_pattern: topics matching the pattern are consumed, including one created
/// while the group runs; others are not. Records arrive through the Stream API.
async fn pattern(protocol: GroupProtocol) {
    use futures_util::StreamExt;
    init_test_logging();
    let prefix = unique_topic("pat");
    let (t1, t2, other) = (format!("{prefix}-a"), format!("{prefix}-b"), format!("{prefix}x-c"));
    create(&t1, 1).await;
    create(&other, 1).await;
    produce(&t1, 0, 100).await;
    produce(&other, 1_000, 100).await;
    let group = unique_topic("g");
    // Auto-commit commits before an (eager) revocation, so the rebalance the new topic
    // causes does not re-read the first one.
    let mut c = Consumer::new(config(&group, protocol, |c| c.enable_auto_commit = true))
        .await
        .unwrap();
    c.subscribe_pattern(&format!("{}-.*", regex_escape(&prefix))).unwrap();
    let mut seen = BTreeSet::new();
    let mut created = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    {
        let mut stream = std::pin::pin!(c.stream());
        while seen.len() < 200 {
            assert!(
                Instant::now() < deadline,
                "pattern subscription saw only {} records",
                seen.len()
            );
            let Ok(Some(r)) = tokio::time::timeout(Duration::from_millis(500), stream.next()).await else {
                if seen.len() == 100 && !created {
                    create(&t2, 2).await;
                    produce(&t2, 2_000, 100).await;
                    created = true;
                }
                continue;
            };
            let r = r.unwrap();
            assert_ne!(&*r.topic, other.as_str(), "a topic not matching the pattern was read");
            let n: u64 = std::str::from_utf8(r.value.as_ref().unwrap()).unwrap().parse().unwrap();
            assert!(seen.insert(n), "{n} twice");
        }
    }
    assert!(c.assignment().iter().any(|tp| *tp.topic == *t2));
    c.close().await.unwrap();
}

fn regex_escape(s: &str) -> String {
    s.chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() {
                ch.to_string()
            } else {
                format!("\\{ch}")
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn classic_pattern_subscription_follows_new_topics() {
    pattern(GroupProtocol::Classic).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kip848_pattern_subscription_follows_new_topics() {
    pattern(GroupProtocol::Consumer).await;
}

/// A Strom member and Java's console consumer in one classic group (range): they split the
/// partitions (so each decodes the other's subscription and the leader's assignment) and
/// together read every record exactly once.
#[tokio::test(flavor = "multi_thread")]
async fn strom_and_java_consumers_share_a_classic_group() {
    init_test_logging();
    let b = broker();
    let topic = unique_topic("group-java");
    let group = unique_topic("g");
    create(&topic, 4).await;
    let mut c = Consumer::new(config(&group, GroupProtocol::Classic, |c| {
        c.assignment_strategies = vec!["range".into()];
        c.auto_offset_reset = strom_client::OffsetReset::Earliest;
    }))
    .await
    .unwrap();
    c.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while c.assignment().len() != 4 {
        assert!(Instant::now() < deadline, "Strom member did not get the partitions");
        c.poll(Duration::from_millis(200)).await.unwrap();
    }
    let (bootstrap, t, g) = (b.bootstrap.clone(), topic.clone(), group.clone());
    let java = tokio::task::spawn_blocking(move || {
        strom_integration_tests::run_java_tool(
            broker().var("STROM_KAFKA_CONSOLE_CONSUMER_CLASS"),
            &[
                "--bootstrap-server",
                &bootstrap,
                "--topic",
                &t,
                "--group",
                &g,
                "--timeout-ms",
                "12000",
                "--consumer-property",
                "partition.assignment.strategy=org.apache.kafka.clients.consumer.RangeAssignor",
                "--consumer-property",
                "auto.offset.reset=earliest",
            ],
        )
    });
    // Java joined when Strom is down to two partitions.
    let deadline = Instant::now() + Duration::from_secs(60);
    while c.assignment().len() != 2 {
        assert!(
            Instant::now() < deadline,
            "Java's consumer did not join: {:?}",
            c.assignment()
        );
        c.poll(Duration::from_millis(200)).await.unwrap();
    }
    produce(&topic, 0, 400).await;
    let mut mine = BTreeSet::new();
    let until = Instant::now() + Duration::from_secs(8);
    while Instant::now() < until {
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            let n: u64 = std::str::from_utf8(r.value.as_ref().unwrap()).unwrap().parse().unwrap();
            assert!(mine.insert(n));
        }
    }
    c.commit_sync().await.unwrap();
    let out = java.await.unwrap();
    c.close().await.unwrap();
    let theirs: BTreeSet<u64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    assert!(
        !mine.is_empty() && !theirs.is_empty(),
        "one side read nothing: {} / {}",
        mine.len(),
        theirs.len()
    );
    assert!(mine.is_disjoint(&theirs), "a record was read by both members");
    let all: BTreeSet<u64> = mine.union(&theirs).copied().collect();
    assert_eq!(all, (0..400).collect::<BTreeSet<u64>>(), "records missing");
}

/// Issue #12 item 17: a standalone commit (group.id with assign(), no membership) to a group
/// with live members is refused (UNKNOWN_MEMBER_ID); the error says so rather than "the group
/// rebalanced".
#[tokio::test(flavor = "multi_thread")]
async fn standalone_commit_to_a_group_with_members_says_why() {
    init_test_logging();
    let topic = unique_topic("standalone-commit");
    create(&topic, 1).await;
    produce(&topic, 0, 10).await;
    for protocol in [GroupProtocol::Classic, GroupProtocol::Consumer] {
        let group = unique_topic("standalone-commit-g");
        let mut member = Consumer::new(config(&group, protocol, |_| {})).await.unwrap();
        member.subscribe(&[&topic]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while member.assignment().is_empty() {
            assert!(Instant::now() < deadline, "{protocol:?}: no assignment");
            let _ = member.poll(Duration::from_millis(200)).await.unwrap();
        }
        let mut outsider = Consumer::new(config(&group, protocol, |_| {})).await.unwrap();
        outsider.assign([TopicPartition::new(&topic, 0)]).unwrap();
        let mut offsets = BTreeMap::new();
        offsets.insert(TopicPartition::new(&topic, 0), OffsetAndMetadata::new(5));
        let e = outsider.commit_offsets_sync(&offsets).await.unwrap_err();
        let msg = e.to_string();
        assert_eq!(
            e.kafka_code(),
            Some(strom_client::ErrorCode::UnknownMemberId),
            "{protocol:?}: {msg}"
        );
        assert!(
            msg.contains("the group has active members") && !msg.contains("rebalanced"),
            "{protocol:?}: {msg}"
        );
        member.close().await.unwrap();
    }
}

/// Newcomer item of issue #12: a consumer dropped without close() leaves its group (as
/// librdkafka does) instead of lingering until the session times out, for both protocols.
#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_consumer_leaves_its_group() {
    init_test_logging();
    let topic = unique_topic("drop-leaves");
    create(&topic, 2).await;
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    for protocol in [GroupProtocol::Classic, GroupProtocol::Consumer] {
        let group = unique_topic("drop-leaves-g");
        // Session timeouts (10 s classic, the broker's 45 s for KIP-848) far above the bound.
        let mut c = Consumer::new(config(&group, protocol, |_| {})).await.unwrap();
        c.subscribe(&[&topic]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let _ = c.poll(Duration::from_millis(200)).await.unwrap();
            let d = admin.describe_consumer_group(&group).await.unwrap();
            if c.assignment().len() == 2 && d.members.len() == 1 {
                break;
            }
            assert!(Instant::now() < deadline, "{protocol:?}: not a member: {d:?}");
        }
        drop(c);
        let dropped = Instant::now();
        loop {
            let d = admin.describe_consumer_group(&group).await.unwrap();
            if d.members.is_empty() {
                break;
            }
            assert!(
                dropped.elapsed() < Duration::from_secs(4),
                "{protocol:?}: the dropped member is still in the group: {d:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
