//! Failover against a real three-node cluster (`scripts/kafka up --brokers 3`: combined
//! broker+controller nodes, replication factor 3, `min.insync.replicas=2`). One cluster per
//! test binary; each test is bounded in records and time and checks every record with
//! Strom's reader and with Java's console consumer: none lost, none duplicated, order kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{
    Admin, Client, ClientConfig, Consumer, ConsumerConfig, GroupProtocol, NewTopic, OffsetReset, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};
use strom_integration_tests::{run_java_tool, shared_cluster, unique_topic, PrivateBroker};

/// Node k has PLAINTEXT on PORT_BASE + 10 (k - 1): 22492, 22502, 22512.
const PORT_BASE: u16 = 22492;

fn cluster() -> &'static PrivateBroker {
    shared_cluster(PORT_BASE, 3)
}

/// Tests in this binary change the cluster (kill and start nodes): one at a time. (Each
/// test has its own runtime; tokio's mutex works across them.)
async fn exclusive() -> tokio::sync::MutexGuard<'static, ()> {
    static LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    LOCK.lock().await
}

fn config() -> ClientConfig {
    strom_integration_tests::init_test_logging();
    let mut c = ClientConfig::new(&cluster().bootstrap);
    c.bootstrap_servers = cluster().bootstrap.split(',').map(str::to_owned).collect();
    c
}

/// The leader of every partition of `topic`, by partition.
async fn leaders(client: &Client, topic: &str) -> BTreeMap<i32, i32> {
    client.refresh_metadata(Some(&[topic])).await.unwrap();
    let info = client.topic(topic).await.unwrap();
    info.partitions.iter().map(|p| (p.partition, p.leader)).collect()
}

/// Every record of `topic` read with Strom: partition -> (offset, value) in offset order.
async fn read_all_with_offsets(client: &Client, topic: &str) -> BTreeMap<i32, Vec<(i64, u64)>> {
    let mut out: BTreeMap<i32, Vec<(i64, u64)>> = BTreeMap::new();
    for r in strom_integration_tests::read_to_end(client, topic, false).await {
        let v = r.value.expect("a record without a value");
        out.entry(r.partition)
            .or_default()
            .push((r.offset, std::str::from_utf8(&v).unwrap().parse().unwrap()));
    }
    out
}

/// Every record of `topic` read with Java's console consumer: (partition, value) pairs.
fn read_all_java(topic: &str, expected: usize) -> Vec<(i32, u64)> {
    let out = run_java_tool(
        "org.apache.kafka.tools.consumer.ConsoleConsumer",
        &[
            "--bootstrap-server",
            &cluster().bootstrap,
            "--topic",
            topic,
            "--from-beginning",
            "--max-messages",
            &expected.to_string(),
            "--timeout-ms",
            "30000",
            "--property",
            "print.partition=true",
        ],
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let (p, v) = l.split_once('\t')?;
            Some((p.trim_start_matches("Partition:").parse().ok()?, v.trim().parse().ok()?))
        })
        .collect()
}

/// Partition -> the values sent to it, in send order: value i goes to partition i % n.
fn expected(total: u64, partitions: i32) -> BTreeMap<i32, Vec<u64>> {
    let mut m: BTreeMap<i32, Vec<u64>> = BTreeMap::new();
    for i in 0..total {
        m.entry((i % partitions as u64) as i32).or_default().push(i);
    }
    m
}

/// Checks the topic holds exactly what was sent, in order, with Strom's reader and Java's.
async fn check_exact(client: &Client, topic: &str, total: u64, partitions: i32) {
    let want = expected(total, partitions);
    let got = read_all_with_offsets(client, topic).await;
    for (p, values) in &want {
        let with_offsets = got.get(p).cloned().unwrap_or_default();
        let have: Vec<u64> = with_offsets.iter().map(|(_, v)| *v).collect();
        if &have != values {
            let dups = have.len() - have.iter().collect::<std::collections::BTreeSet<_>>().len();
            let missing = values.iter().filter(|v| !have.contains(v)).count();
            // Where it went wrong: the first offset whose value is not the expected one, and
            // the records around it (a duplicate read twice has one offset; one written twice two).
            let first_bad = have
                .iter()
                .zip(values)
                .position(|(a, b)| a != b)
                .unwrap_or(values.len().min(have.len()));
            let around = &with_offsets[first_bad.saturating_sub(3)..(first_bad + 40).min(with_offsets.len())];
            panic!(
                "partition {p}: {} records, want {} ({missing} missing, {dups} duplicated, or out of order); \
                 (offset, value) from index {}: {around:?}",
                have.len(),
                values.len(),
                first_bad.saturating_sub(3)
            );
        }
    }
    let mut java = read_all_java(topic, total as usize);
    assert_eq!(
        java.len() as u64,
        total,
        "Java's console consumer read {} of {total}",
        java.len()
    );
    java.sort_unstable();
    let mut want_pairs: Vec<(i32, u64)> = want.iter().flat_map(|(p, vs)| vs.iter().map(|v| (*p, *v))).collect();
    want_pairs.sort_unstable();
    assert_eq!(java, want_pairs, "Java's console consumer read something else");
}

/// Sends `total` records at `rate`/s, value i to partition i % partitions; at `at` runs
/// `fault`. Returns every delivery result.
async fn paced_send(
    producer: &Producer,
    topic: &str,
    partitions: i32,
    total: u64,
    rate: u64,
    at: u64,
    mut fault: impl FnMut(),
) -> Vec<strom_client::Result<strom_client::RecordMetadata>> {
    let started = Instant::now();
    let mut pending = Vec::with_capacity(total as usize);
    for i in 0..total {
        if i == at {
            fault();
        }
        let record = ProducerRecord::new(topic, Bytes::from(i.to_string())).partition((i % partitions as u64) as i32);
        pending.push(producer.send(record).await.unwrap());
        if i % 100 == 99 {
            tokio::time::sleep_until((started + Duration::from_millis((i + 1) * 1000 / rate)).into()).await;
        }
    }
    let mut results = Vec::with_capacity(pending.len());
    for f in pending {
        results.push(f.await);
    }
    results
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_leader_mid_produce_loses_and_duplicates_nothing() {
    let _one = exclusive().await;
    let admin = Admin::connect(config()).await.unwrap();
    let client = Client::connect(config()).await.unwrap();
    let topic = unique_topic("failover");
    admin.create_topics(&[NewTopic::new(&topic, 3)]).await.unwrap();
    // A node other than node 1 (scripts/kafka probes node 1) that leads a partition.
    let led = leaders(&client, &topic).await;
    let victim = led
        .values()
        .copied()
        .find(|n| *n != 1)
        .unwrap_or_else(|| panic!("node 1 leads every partition: {led:?}"));
    eprintln!("leaders {led:?}; killing node {victim} mid-produce");

    // Idempotent, acks=all (the defaults), 30,000 records at 5,000/s, the kill after 2 s.
    let producer = Producer::new(ProducerConfig::from_client(config())).await.unwrap();
    let started = Instant::now();
    let results = paced_send(&producer, &topic, 3, 30_000, 5_000, 10_000, || {
        cluster().node("kill", victim as u8)
    })
    .await;
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} deliveries failed, first: {}",
        failed.len(),
        failed[0]
    );
    eprintln!(
        "all 30,000 acknowledged {:.1}s after the start",
        started.elapsed().as_secs_f64()
    );
    producer.close().await.unwrap();
    let after = leaders(&client, &topic).await;
    assert!(
        !after.values().any(|n| *n == victim),
        "node {victim} still leads a partition after its kill: {after:?}"
    );
    check_exact(&client, &topic, 30_000, 3).await;
    cluster().node("start", victim as u8);
}

#[tokio::test(flavor = "multi_thread")]
async fn below_min_insync_replicas_acks_all_waits_then_lands_or_names_the_error() {
    let _one = exclusive().await;
    let admin = Admin::connect(config()).await.unwrap();
    let client = Client::connect(config()).await.unwrap();
    // min.insync.replicas=3 on this topic: one node down puts every partition below it
    // while the quorum (and the other topics) carry on.
    let topic = unique_topic("min-isr");
    admin
        .create_topics(&[NewTopic::new(&topic, 1).config("min.insync.replicas", "3")])
        .await
        .unwrap();
    let led = leaders(&client, &topic).await;
    let leader = led[&0];
    let follower = (2..=3).find(|n| *n != leader).unwrap();
    let producer = Producer::new(ProducerConfig::from_client(config())).await.unwrap();
    producer
        .send(ProducerRecord::new(&topic, Bytes::from("0")).partition(0))
        .await
        .unwrap()
        .await
        .unwrap();

    // A follower dies; once the controller fences it (broker session timeout) the ISR is 2.
    cluster().node("kill", follower as u8);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let isr = admin.describe_topics(&[&topic]).await.unwrap()[0].partitions[0]
            .isr
            .len();
        if isr < 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the ISR did not shrink within 60 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Within delivery.timeout.ms: the record waits (retrying NOT_ENOUGH_REPLICAS) and lands
    // once the follower is back in the ISR.
    let waiting = producer
        .send(ProducerRecord::new(&topic, Bytes::from("1")).partition(0))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    cluster().node("start", follower as u8);
    let landed = tokio::time::timeout(Duration::from_secs(120), waiting)
        .await
        .expect("the record neither landed nor failed within 120 s");
    assert!(landed.is_ok(), "the record failed instead of waiting: {landed:?}");
    producer.close().await.unwrap();

    // Beyond delivery.timeout.ms: the error names NOT_ENOUGH_REPLICAS.
    cluster().node("kill", follower as u8);
    let deadline = Instant::now() + Duration::from_secs(60);
    while admin.describe_topics(&[&topic]).await.unwrap()[0].partitions[0]
        .isr
        .len()
        == 3
    {
        assert!(Instant::now() < deadline, "the ISR did not shrink within 60 s");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut cfg = ProducerConfig::from_client(config());
    cfg.set("delivery.timeout.ms", "5000").unwrap();
    cfg.set("request.timeout.ms", "2000").unwrap();
    cfg.set("linger.ms", "0").unwrap();
    let short = Producer::new(cfg).await.unwrap();
    let err = short
        .send(ProducerRecord::new(&topic, Bytes::from("2")).partition(0))
        .await
        .unwrap()
        .await
        .expect_err("acks=all below min.insync.replicas succeeded");
    // The node comes back before anything is asserted: the next test needs all three.
    cluster().node("start", follower as u8);
    let text = err.to_string();
    assert!(err.is_timeout(), "{text}");
    assert!(
        text.contains("NOT_ENOUGH_REPLICAS"),
        "the error does not name NOT_ENOUGH_REPLICAS: {text} ({err:?})"
    );
    check_exact(&client, &topic, 2, 1).await;
}

/// The node a connection goes to: node k listens on PORT_BASE + 10 (k - 1).
fn node_of(addr: &str) -> u8 {
    let port: u16 = addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap();
    ((port - PORT_BASE) / 10 + 1) as u8
}

/// Group ids coordinated by one node other than node 1 (scripts/kafka probes node 1), one
/// `count` ids, and that node.
async fn groups_off_node_1(admin: &Admin, count: usize) -> (Vec<String>, u8) {
    let mut node = None;
    let mut groups = Vec::new();
    for _ in 0..200 {
        let group = unique_topic("failover-group");
        let n = node_of(
            admin
                .coordinator(&group, strom_client::CoordinatorType::Group)
                .await
                .unwrap()
                .addr(),
        );
        if n != 1 && node.is_none_or(|want| want == n) {
            node = Some(n);
            groups.push(group);
            if groups.len() == count {
                return (groups, n);
            }
        }
    }
    panic!("no {count} group ids found coordinated by one node other than node 1");
}

/// What one group member saw while the faults ran.
struct MemberRun {
    seen: BTreeMap<i32, Vec<u64>>,
    commits_ok: u32,
    commits_failed: u32,
    ok_after: u32,
}

/// Polls until `total` records are in, committing after each non-empty poll.
async fn consume_all(mut consumer: Consumer, total: u64, commits_after: Duration) -> (MemberRun, Consumer) {
    let mut run = MemberRun {
        seen: BTreeMap::new(),
        commits_ok: 0,
        commits_failed: 0,
        ok_after: 0,
    };
    let started = Instant::now();
    let deadline = started + Duration::from_secs(180);
    let mut received = 0u64;
    while received < total {
        assert!(
            Instant::now() < deadline,
            "{received} of {total} consumed in 180 s ({} commits, {} failed)",
            run.commits_ok,
            run.commits_failed
        );
        let records = match consumer.poll(Duration::from_millis(500)).await {
            Ok(r) => r,
            Err(e) if e.is_retriable() => continue,
            Err(e) => panic!("poll failed: {e}"),
        };
        for r in &records {
            let v = std::str::from_utf8(r.value.as_ref().unwrap()).unwrap().parse().unwrap();
            run.seen.entry(r.partition).or_default().push(v);
        }
        received += records.len() as u64;
        if !records.is_empty() {
            match consumer.commit_sync().await {
                Ok(()) => {
                    run.commits_ok += 1;
                    if started.elapsed() > commits_after {
                        run.ok_after += 1;
                    }
                }
                Err(e) => {
                    eprintln!("commit failed (the coordinator moves): {e}");
                    run.commits_failed += 1;
                }
            }
        }
    }
    (run, consumer)
}

/// One group per protocol of `protocols`, all coordinated by the same node (never node 1),
/// each with a member reading its own topic being written at `rate` records/s (value i to
/// partition i % 3), while `faults` runs once on its own thread with that node: every
/// member keeps consuming, commits succeed after the faults began (at `commits_after`),
/// nothing is skipped, repeated or reordered, and each topic holds exactly what was sent
/// (read by Strom and Java). The groups share one fault run: a classic and a KIP-848 group
/// ride the same restarts, which halves the time the cluster tests take.
async fn groups_under_faults(
    label: &str,
    protocols: &[GroupProtocol],
    total: u64,
    rate: u64,
    commits_after: Duration,
    faults: impl FnOnce(u8) + Send + 'static,
) {
    let admin = Admin::connect(config()).await.unwrap();
    let client = Client::connect(config()).await.unwrap();
    let (groups, coordinator) = groups_off_node_1(&admin, protocols.len()).await;
    let producer = Producer::new(ProducerConfig::from_client(config())).await.unwrap();
    let mut members = Vec::new();
    for (protocol, group) in protocols.iter().zip(&groups) {
        let topic = unique_topic("failover-consume");
        admin.create_topics(&[NewTopic::new(&topic, 3)]).await.unwrap();
        eprintln!("{label} {protocol:?}: group {group} coordinated by node {coordinator}");
        let mut cfg = ConsumerConfig::from_client(config());
        cfg.group_id = Some(group.clone());
        cfg.group_protocol = *protocol;
        cfg.auto_offset_reset = OffsetReset::Earliest;
        cfg.enable_auto_commit = false;
        cfg.max_poll_records = 300;
        let mut consumer = Consumer::new(cfg).await.unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        members.push((*protocol, topic, consumer));
    }
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (protocol, topic, consumer) in members {
        let writer = {
            let (producer, topic) = (producer.clone(), topic.clone());
            tokio::spawn(async move { paced_send(&producer, &topic, 3, total, rate, u64::MAX, || {}).await })
        };
        let reader = tokio::spawn(consume_all(consumer, total, commits_after));
        tasks.push((protocol, topic, writer, reader));
    }
    let faults = std::thread::spawn(move || faults(coordinator));

    for (protocol, topic, writer, reader) in tasks {
        let (run, consumer) = reader.await.unwrap();
        let results = writer.await.unwrap();
        let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
        assert!(
            failed.is_empty(),
            "{protocol:?}: {} deliveries failed, first: {}",
            failed.len(),
            failed[0]
        );
        eprintln!(
            "{label} {protocol:?}: consumed {total} in {:.1}s, {} commits ({} after the faults began), {} failed",
            started.elapsed().as_secs_f64(),
            run.commits_ok,
            run.ok_after,
            run.commits_failed
        );
        // Nothing skipped, in order, and nothing twice: the member never lost its partitions.
        assert_eq!(
            run.seen,
            expected(total, 3),
            "{protocol:?}: the member skipped, repeated or reordered records"
        );
        assert!(
            run.ok_after > 0,
            "{protocol:?}: no commit succeeded after the faults began"
        );
        // The last commit is what the group holds, at the end of every partition.
        let tps: Vec<TopicPartition> = (0..3).map(|p| TopicPartition::new(&topic, p)).collect();
        let committed = consumer.committed(&tps).await.unwrap();
        for tp in &tps {
            assert_eq!(
                committed[tp].offset,
                (total / 3) as i64,
                "{protocol:?}: committed offset of {tp:?}"
            );
        }
        consumer.close().await.unwrap();
        check_exact(&client, &topic, total, 3).await;
    }
    faults.join().unwrap();
    producer.close().await.unwrap();
}

const BOTH: &[GroupProtocol] = &[GroupProtocol::Classic, GroupProtocol::Consumer];

/// SIGKILLs the groups' coordinator node 3 s in, and starts it again once all is read.
#[tokio::test(flavor = "multi_thread")]
async fn classic_and_kip848_groups_survive_their_coordinator_being_killed() {
    let _one = exclusive().await;
    let (tx, rx) = std::sync::mpsc::channel::<u8>();
    groups_under_faults(
        "coordinator kill",
        BOTH,
        24_000,
        3_000,
        Duration::from_secs(4),
        move |node| {
            std::thread::sleep(Duration::from_secs(3));
            cluster().node("kill", node);
            tx.send(node).unwrap();
        },
    )
    .await;
    cluster().node("start", rx.recv().unwrap());
}

/// A rolling restart: every node stopped cleanly (SIGTERM) and started again, one at a
/// time (about 15 s each here), under a producer writing for 50 s and a member of a classic
/// and of a KIP-848 group.
#[tokio::test(flavor = "multi_thread")]
async fn classic_and_kip848_groups_and_producer_ride_a_rolling_restart() {
    let _one = exclusive().await;
    groups_under_faults(
        "rolling restart",
        BOTH,
        60_000,
        1_200,
        Duration::from_secs(2),
        |coordinator| {
            let others = (1..=3u8).filter(|n| *n != coordinator);
            for node in std::iter::once(coordinator).chain(others) {
                std::thread::sleep(Duration::from_secs(2));
                let t = Instant::now();
                cluster().node("restart", node);
                eprintln!("node {node} restarted in {:.1}s", t.elapsed().as_secs_f64());
            }
        },
    )
    .await;
}

/// Every partition moved to a new replica set while a producer writes (AlterPartitionReassignments),
/// then the new preferred replicas elected (ElectLeaders): nothing lost, duplicated or
/// reordered, and the leaders end where the reassignment put them.
#[tokio::test(flavor = "multi_thread")]
async fn reassignment_and_preferred_election_under_load() {
    let _one = exclusive().await;
    let admin = Admin::connect(config()).await.unwrap();
    let client = Client::connect(config()).await.unwrap();
    let topic = unique_topic("reassign");
    admin
        .create_topics(&[NewTopic::new(&topic, 3).replication_factor(2)])
        .await
        .unwrap();
    let before = admin.describe_topics(&[&topic]).await.unwrap()[0].partitions.clone();
    // Each partition gets the node it lacked, first (preferred), and keeps one old replica.
    let moves: Vec<(i32, Vec<i32>)> = before
        .iter()
        .map(|p| {
            let missing = (1..=3).find(|n| !p.replicas.contains(n)).unwrap();
            (p.partition, vec![missing, p.replicas[1]])
        })
        .collect();
    eprintln!(
        "replicas {:?} -> {moves:?}",
        before.iter().map(|p| p.replicas.clone()).collect::<Vec<_>>()
    );

    let producer = Producer::new(ProducerConfig::from_client(config())).await.unwrap();
    let writer = {
        let (producer, topic) = (producer.clone(), topic.clone());
        tokio::spawn(async move { paced_send(&producer, &topic, 3, 30_000, 3_000, u64::MAX, || {}).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let request: Vec<(&str, i32, Option<Vec<i32>>)> = moves
        .iter()
        .map(|(p, r)| (topic.as_str(), *p, Some(r.clone())))
        .collect();
    admin.alter_partition_reassignments(&request).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let ongoing = admin
            .list_partition_reassignments(Some(&[(&topic, 0), (&topic, 1), (&topic, 2)]))
            .await
            .unwrap();
        if ongoing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "reassignments still running after 60 s: {ongoing:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elected = admin
        .elect_leaders(
            strom_client::ElectionType::Preferred,
            Some(&[(&topic, 0), (&topic, 1), (&topic, 2)]),
        )
        .await
        .unwrap();
    for (tp, result) in &elected {
        if let Err(e) = result {
            assert_eq!(
                e.kafka_code(),
                Some(strom_client::ErrorCode::ElectionNotNeeded),
                "election of {tp:?} failed: {e}"
            );
        }
    }
    let results = writer.await.unwrap();
    let failed: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} deliveries failed, first: {}",
        failed.len(),
        failed[0]
    );
    producer.close().await.unwrap();

    let after = admin.describe_topics(&[&topic]).await.unwrap()[0].partitions.clone();
    for (p, (partition, replicas)) in after.iter().zip(&moves) {
        assert_eq!(p.partition, *partition);
        assert_eq!(&p.replicas, replicas, "partition {partition} replicas");
        assert_eq!(
            p.leader, replicas[0],
            "partition {partition}: the preferred replica does not lead"
        );
    }
    check_exact(&client, &topic, 30_000, 3).await;
}

/// Waits until `topic`'s partition 0 has `isr` in-sync replicas.
async fn wait_isr(admin: &Admin, topic: &str, want: impl Fn(&[i32]) -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let p = admin.describe_topics(&[topic]).await.unwrap()[0].partitions[0].clone();
        if want(&p.isr) {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: not within 60 s (partition {p:?})");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Reads from `consumer` until `want` records arrive (or 30 s pass); returns their values.
async fn read_n(consumer: &mut Consumer, want: usize) -> Vec<u64> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while got.len() < want && Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(300)).await {
            Ok(records) => got.extend(records.iter().map(|r| {
                std::str::from_utf8(r.value.as_ref().unwrap())
                    .unwrap()
                    .parse::<u64>()
                    .unwrap()
            })),
            Err(e) if e.is_retriable() => {}
            Err(e) => panic!("poll failed: {e}"),
        }
    }
    got
}

/// An unclean leader election truncates the log under a consumer that had read past the
/// new leader's end: the fetch reports a diverging epoch (KIP-320), and the consumer moves
/// back to where the logs diverge and reads what the new leader wrote there, instead of
/// waiting forever at a position the log no longer has or skipping the new records.
#[tokio::test(flavor = "multi_thread")]
async fn truncation_after_an_unclean_election_is_detected_by_the_consumer() {
    let _one = exclusive().await;
    let admin = Admin::connect(config()).await.unwrap();
    let topic = unique_topic("unclean");
    admin
        .create_topics(&[NewTopic::new(&topic, 1)
            .replication_factor(2)
            .config("unclean.leader.election.enable", "true")
            .config("min.insync.replicas", "1")])
        .await
        .unwrap();
    // Replicas on nodes 2 and 3, node 2 leading: node 1 (which scripts/kafka probes) stays up.
    admin
        .alter_partition_reassignments(&[(&topic, 0, Some(vec![2, 3]))])
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !admin
        .list_partition_reassignments(Some(&[(&topic, 0)]))
        .await
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "the reassignment did not finish");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let _ = admin
        .elect_leaders(strom_client::ElectionType::Preferred, Some(&[(&topic, 0)]))
        .await
        .unwrap();
    wait_isr(&admin, &topic, |isr| isr.len() == 2, "both replicas in sync").await;

    let producer = Producer::new(ProducerConfig::from_client(config())).await.unwrap();
    let send = |from: u64, to: u64| {
        let (producer, topic) = (producer.clone(), topic.clone());
        async move {
            let mut pending = Vec::new();
            for i in from..to {
                pending.push(
                    producer
                        .send(ProducerRecord::new(&topic, Bytes::from(i.to_string())).partition(0))
                        .await
                        .unwrap(),
                );
            }
            for f in pending {
                f.await.unwrap();
            }
        }
    };
    let mut cfg = ConsumerConfig::from_client(config());
    cfg.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = Consumer::new(cfg).await.unwrap();
    consumer.assign([TopicPartition::new(&topic, 0)]).unwrap();

    // 0..100 on both replicas; then node 3 dies and 100..150 land on node 2 alone.
    send(0, 100).await;
    assert_eq!(read_n(&mut consumer, 100).await, (0..100).collect::<Vec<_>>());
    cluster().node("kill", 3);
    wait_isr(&admin, &topic, |isr| isr == [2], "node 3 out of the ISR").await;
    send(100, 150).await;
    assert_eq!(read_n(&mut consumer, 50).await, (100..150).collect::<Vec<_>>());

    // Node 2 dies, node 3 comes back without 100..150 and is elected uncleanly; it takes
    // 1000..1030 at offsets 100..129.
    cluster().node("kill", 2);
    cluster().node("start", 3);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let result = admin
            .elect_leaders(strom_client::ElectionType::Unclean, Some(&[(&topic, 0)]))
            .await;
        let leader = admin.describe_topics(&[&topic]).await.unwrap()[0].partitions[0].leader;
        if leader == 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no unclean election of node 3 within 60 s: {result:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    send(1000, 1030).await;

    // The consumer was at offset 150 under the old epoch: it must find the divergence at
    // 100 and read the 30 new records.
    let got = read_n(&mut consumer, 30).await;
    assert_eq!(
        got,
        (1000..1030).collect::<Vec<_>>(),
        "after the truncation the consumer read {got:?}"
    );
    assert_eq!(consumer.metrics().truncations_detected, 1);
    producer.close().await.unwrap();
    cluster().node("start", 2);
}

/// Partitions added to a topic while a producer and a classic group member use it: within
/// `metadata.max.age.ms` the producer spreads records without a key over the new partitions
/// too, and the group rebalances to read them, with no error on either side.
#[tokio::test(flavor = "multi_thread")]
async fn partitions_added_are_used_after_metadata_max_age() {
    let _one = exclusive().await;
    let admin = Admin::connect(config()).await.unwrap();
    let topic = unique_topic("grow");
    admin.create_topics(&[NewTopic::new(&topic, 2)]).await.unwrap();
    let mut client_cfg = config();
    client_cfg.metadata_max_age = Duration::from_secs(1);
    let mut pcfg = ProducerConfig::from_client(client_cfg.clone());
    pcfg.set("batch.size", "2000").unwrap();
    let producer = Producer::new(pcfg).await.unwrap();
    let mut ccfg = ConsumerConfig::from_client(client_cfg);
    ccfg.group_id = Some(unique_topic("grow-group"));
    ccfg.auto_offset_reset = OffsetReset::Earliest;
    let mut consumer = Consumer::new(ccfg).await.unwrap();
    consumer.subscribe(&[&topic]).unwrap();

    let started = Instant::now();
    let mut pending = Vec::new();
    let mut consumed: BTreeMap<i32, u64> = BTreeMap::new();
    let mut grown_at = None;
    let mut i = 0u64;
    while started.elapsed() < Duration::from_secs(10) {
        if grown_at.is_none() && started.elapsed() > Duration::from_secs(2) {
            admin.create_partitions(&topic, 4).await.unwrap();
            grown_at = Some(i);
        }
        for _ in 0..20 {
            pending.push(
                producer
                    .send(ProducerRecord::new(&topic, Bytes::from(i.to_string())))
                    .await
                    .unwrap(),
            );
            i += 1;
        }
        for r in consumer.poll(Duration::from_millis(20)).await.unwrap() {
            *consumed.entry(r.partition).or_default() += 1;
        }
    }
    let mut written: BTreeMap<i32, u64> = BTreeMap::new();
    for f in pending {
        *written.entry(f.await.unwrap().partition).or_default() += 1;
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while consumed.values().sum::<u64>() < i {
        assert!(
            Instant::now() < deadline,
            "consumed {consumed:?} of {i} ({written:?} written)"
        );
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            *consumed.entry(r.partition).or_default() += 1;
        }
    }
    eprintln!("written per partition {written:?}, consumed {consumed:?}");
    assert!(
        written.get(&2).is_some_and(|n| *n > 0) && written.get(&3).is_some_and(|n| *n > 0),
        "the producer never wrote to the added partitions: {written:?}"
    );
    assert_eq!(
        consumed, written,
        "the group did not read what was written, partition by partition"
    );
    consumer.close().await.unwrap();
    producer.close().await.unwrap();
}

/// Share groups on the cluster: two members read a topic whose six partitions are led by all
/// three nodes (a share session with each leader), then a leader is SIGKILLed while they
/// read more: they carry on with the new leaders, and every record is seen (at least once:
/// acknowledgements in the dead leader's sessions are lost, so its records may come again).
#[tokio::test(flavor = "multi_thread")]
async fn share_group_reads_from_every_leader_and_survives_one_dying() {
    use std::collections::BTreeSet;
    use std::sync::{Arc, Mutex};
    use strom_client::share::{ShareConsumer, ShareConsumerConfig};
    use strom_client::{AlterConfigOp, ConfigResource};

    let _one = exclusive().await;
    let admin = Admin::connect(config()).await.unwrap();
    let client = Client::connect(config()).await.unwrap();
    let topic = unique_topic("cluster-share");
    let group = format!("{topic}-share");
    admin.create_topics(&[NewTopic::new(&topic, 6)]).await.unwrap();
    admin
        .incremental_alter_configs(
            &ConfigResource::Group(group.clone()),
            &[AlterConfigOp::Set("share.auto.offset.reset".into(), "earliest".into())],
            false,
        )
        .await
        .unwrap();
    let by_leader: BTreeSet<i32> = leaders(&client, &topic).await.values().copied().collect();
    assert_eq!(by_leader.len(), 3, "partitions led by every node");
    let producer = Producer::new(ProducerConfig::from_client(config())).await.unwrap();
    let send = |from: usize, to: usize| {
        let (producer, topic) = (&producer, topic.clone());
        async move {
            let mut pending = Vec::new();
            for i in from..to {
                pending.push(
                    producer
                        .send(ProducerRecord::new(&topic, format!("r{i}")))
                        .await
                        .unwrap(),
                );
            }
            for f in pending {
                f.await.unwrap();
            }
        }
    };
    send(0, 3000).await;

    let seen: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut members = Vec::new();
    for _ in 0..2 {
        let (group, topic, seen, stop) = (group.clone(), topic.clone(), seen.clone(), stop.clone());
        members.push(tokio::spawn(async move {
            let mut c = ShareConsumer::new(ShareConsumerConfig::from_client(config(), &group))
                .await
                .unwrap();
            c.subscribe(&[&topic]);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                match c.poll(Duration::from_millis(500)).await {
                    Ok(records) => seen.lock().unwrap().extend(
                        records
                            .iter()
                            .map(|r| String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()),
                    ),
                    // A leader going away may fail a round; the member carries on.
                    Err(e) => eprintln!("share poll: {e}"),
                }
            }
            c.close().await.unwrap();
        }));
    }
    let wait_for = |n: usize, what: &'static str| {
        let seen = seen.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(90);
            while seen.lock().unwrap().len() < n {
                assert!(
                    Instant::now() < deadline,
                    "{what}: {} of {n}",
                    seen.lock().unwrap().len()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    wait_for(3000, "before the kill").await;
    // The leader of partition 0 dies; more records come (to the surviving leaders), and
    // the node comes back.
    let victim = leaders(&client, &topic).await[&0];
    let victim = u8::try_from(victim).unwrap();
    cluster().node("kill", victim);
    send(3000, 6000).await;
    wait_for(6000, "after the kill").await;
    cluster().node("start", victim);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for m in members {
        m.await.unwrap();
    }
    producer.close().await.unwrap();
    let seen = seen.lock().unwrap();
    let missing: Vec<usize> = (0..6000).filter(|i| !seen.contains(&format!("r{i}"))).collect();
    assert!(
        missing.is_empty(),
        "missing {} records, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
}
