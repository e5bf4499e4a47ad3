//! The source's offsets initializers, stopping offsets, partition discovery and split
//! ownership against the real broker; ownership is checked against Java's own arithmetic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use strom_client::ErrorCode;
use strom_client::{
    Admin, ClientConfig, IsolationLevel, NewTopic, Producer, ProducerConfig, ProducerRecord, TransactionalProducer,
};
use strom_connector::source::{
    deserializer, java_string_hash_code, split_owner, Boundedness, CustomOffsetsInitializer, EnumeratorConfig,
    KafkaPartitionSplit, KafkaSource, OffsetResetStrategy, OffsetsInitializer, PartitionOffsetsFuture,
    PartitionOffsetsRetriever, SourceReader, SplitEnumerator, Subscription, TopicPartition, TopicPattern,
};
use strom_connector::ConnectorError;
use strom_integration_tests::{broker, init_test_logging, unique_topic};

async fn admin() -> Admin {
    init_test_logging();
    Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap()
}

async fn create(admin: &Admin, topic: &str, partitions: i32) {
    admin
        .create_topics(&[NewTopic::new(topic, partitions).replication_factor(1)])
        .await
        .unwrap();
}

/// Writes `timestamps.len()` records to `topic`-`partition`, one per timestamp.
async fn produce(topic: &str, partition: i32, timestamps: &[i64]) {
    let p = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    let mut pending = Vec::new();
    for (i, ts) in timestamps.iter().enumerate() {
        let rec = ProducerRecord::new(topic, Bytes::from(format!("v{i}")))
            .partition(partition)
            .timestamp(*ts);
        pending.push(p.send(rec).await.unwrap());
    }
    for d in pending {
        d.wait().await.unwrap();
    }
    p.close().await.unwrap();
}

fn tps(topic: &str, n: i32) -> Vec<TopicPartition> {
    (0..n).map(|p| TopicPartition::new(topic, p)).collect()
}

fn offsets(topic: &str, values: &[i64]) -> BTreeMap<TopicPartition, i64> {
    values
        .iter()
        .enumerate()
        .map(|(p, o)| (TopicPartition::new(topic, i32::try_from(p).unwrap()), *o))
        .collect()
}

fn enumerator_config(subscription: Subscription) -> EnumeratorConfig {
    EnumeratorConfig {
        subscription,
        starting_offsets: OffsetsInitializer::earliest(),
        stopping_offsets: None,
        group_id: None,
        isolation_level: IsolationLevel::ReadUncommitted,
        partition_discovery_interval: Some(Duration::from_millis(10)),
    }
}

fn source_builder(topic: &str) -> strom_connector::source::KafkaSourceBuilder<String> {
    KafkaSource::builder()
        .bootstrap_servers(&broker().bootstrap)
        .topics([topic])
        .deserializer(deserializer::string())
}

fn summary(splits: &[KafkaPartitionSplit]) -> Vec<(String, i64, Option<i64>)> {
    splits
        .iter()
        .map(|s| (s.split_id(), s.starting_offset, s.stopping_offset))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn offsets_initializers_resolve_against_the_broker() {
    let admin = admin().await;
    let topic = unique_topic("src-init");
    create(&admin, &topic, 3).await;
    // p0: 5 records at 1000, 1010, ..., 1040; p1: 3 records at 2000, 2010, 2020; p2: empty.
    produce(&topic, 0, &[1000, 1010, 1020, 1030, 1040]).await;
    produce(&topic, 1, &[2000, 2010, 2020]).await;
    let all = tps(&topic, 3);
    let group = format!("{topic}-group");
    let r = PartitionOffsetsRetriever::new(admin.clone(), Some(group.clone()), IsolationLevel::ReadUncommitted);
    let no_group = PartitionOffsetsRetriever::new(admin.clone(), None, IsolationLevel::ReadUncommitted);
    let resolve = |init: OffsetsInitializer, r: PartitionOffsetsRetriever| {
        let all = all.clone();
        async move { init.resolve(&all, &r).await }
    };

    assert_eq!(
        resolve(OffsetsInitializer::earliest(), r.clone()).await.unwrap(),
        offsets(&topic, &[0, 0, 0])
    );
    assert_eq!(
        resolve(OffsetsInitializer::latest(), r.clone()).await.unwrap(),
        offsets(&topic, &[5, 3, 0])
    );
    // First offset with timestamp >= 1015: p0 offset 2, p1 offset 0, the empty p2 its end.
    assert_eq!(
        resolve(OffsetsInitializer::timestamp(1015), r.clone()).await.unwrap(),
        offsets(&topic, &[2, 0, 0])
    );
    assert_eq!(
        resolve(OffsetsInitializer::timestamp(2010), r.clone()).await.unwrap(),
        offsets(&topic, &[5, 1, 0]),
        "no record at or after the timestamp: the end offset"
    );

    // Committed offsets: nothing committed yet.
    let e = resolve(
        OffsetsInitializer::committed_offsets(OffsetResetStrategy::None),
        r.clone(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, ConnectorError::Config(_)), "{e}");
    assert!(
        e.to_string().contains(&format!("{topic}-0, {topic}-1, {topic}-2")),
        "{e}"
    );
    assert!(e.to_string().contains(&group), "{e}");
    admin
        .alter_group_offsets(&group, &topic, &[(0, 2), (1, 1)])
        .await
        .unwrap();
    let e = resolve(
        OffsetsInitializer::committed_offsets(OffsetResetStrategy::None),
        r.clone(),
    )
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains(&format!("no initial offset for {topic}-2 ")),
        "{e}"
    );
    assert_eq!(
        resolve(
            OffsetsInitializer::committed_offsets(OffsetResetStrategy::Earliest),
            r.clone()
        )
        .await
        .unwrap(),
        offsets(&topic, &[2, 1, 0])
    );
    admin.alter_group_offsets(&group, &topic, &[(2, 0)]).await.unwrap();
    assert_eq!(
        resolve(
            OffsetsInitializer::committed_offsets(OffsetResetStrategy::None),
            r.clone()
        )
        .await
        .unwrap(),
        offsets(&topic, &[2, 1, 0])
    );
    let e = resolve(
        OffsetsInitializer::committed_offsets(OffsetResetStrategy::Earliest),
        no_group.clone(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("group.id is required"), "{e}");

    // Committed with a latest fallback: a second group with only p0 committed.
    let group2 = format!("{topic}-group2");
    admin.alter_group_offsets(&group2, &topic, &[(0, 4)]).await.unwrap();
    let r2 = PartitionOffsetsRetriever::new(admin.clone(), Some(group2.clone()), IsolationLevel::ReadUncommitted);
    assert_eq!(
        resolve(
            OffsetsInitializer::committed_offsets(OffsetResetStrategy::Latest),
            r2.clone()
        )
        .await
        .unwrap(),
        offsets(&topic, &[4, 3, 0])
    );

    // Specified offsets; partitions missing from the map use the committed offset, then the reset.
    let p = |n| TopicPartition::new(&topic, n);
    assert_eq!(
        resolve(OffsetsInitializer::offsets([(p(0), 3)]), r.clone())
            .await
            .unwrap(),
        offsets(&topic, &[3, 1, 0]),
        "p1 from group's committed 1, p2 from its committed 0"
    );
    assert_eq!(
        resolve(OffsetsInitializer::offsets([(p(1), 2)]), r2.clone())
            .await
            .unwrap(),
        offsets(&topic, &[4, 2, 0]),
        "p0 committed 4 in group2, p2 earliest"
    );
    assert_eq!(
        resolve(
            OffsetsInitializer::offsets_with_reset([(p(2), 0)], OffsetResetStrategy::Latest),
            no_group.clone()
        )
        .await
        .unwrap(),
        offsets(&topic, &[5, 3, 0]),
        "no group: straight to the reset strategy"
    );
    let e = resolve(
        OffsetsInitializer::offsets_with_reset([(p(0), 1)], OffsetResetStrategy::None),
        no_group.clone(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains(&format!("{topic}-1, {topic}-2")), "{e}");
    // Markers in the map.
    assert_eq!(
        resolve(
            OffsetsInitializer::offsets([
                (p(0), KafkaPartitionSplit::LATEST_OFFSET),
                (p(1), KafkaPartitionSplit::EARLIEST_OFFSET),
                (p(2), KafkaPartitionSplit::COMMITTED_OFFSET),
            ]),
            r2.clone()
        )
        .await
        .unwrap(),
        offsets(&topic, &[5, 0, 0]),
        "p2 has no committed offset in group2: earliest"
    );
    assert_eq!(
        resolve(
            OffsetsInitializer::offsets([(p(0), KafkaPartitionSplit::COMMITTED_OFFSET)]),
            r2.clone()
        )
        .await
        .unwrap()[&p(0)],
        4
    );

    // An unknown topic is the client's UNKNOWN_TOPIC_OR_PARTITION.
    let e = OffsetsInitializer::latest()
        .resolve(&[TopicPartition::new(unique_topic("src-none"), 0)], &r)
        .await
        .unwrap_err();
    match e {
        ConnectorError::Client(c) => assert_eq!(c.kafka_code(), Some(ErrorCode::UnknownTopicOrPartition)),
        e => panic!("{e}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn read_committed_latest_is_the_last_stable_offset() {
    let admin = admin().await;
    let topic = unique_topic("src-lso");
    create(&admin, &topic, 1).await;
    produce(&topic, 0, &[1, 2]).await;
    let mut cfg = ProducerConfig::new(&broker().bootstrap);
    cfg.transactional_id = Some(format!("{topic}-txn"));
    let txn = TransactionalProducer::new(cfg).await.unwrap();
    txn.init_transactions().await.unwrap();
    txn.begin_transaction().await.unwrap();
    for i in 0..3 {
        // Inside a transaction: a failed record fails the commit.
        let _delivery = txn
            .send(ProducerRecord::new(&topic, Bytes::from(format!("t{i}"))).partition(0))
            .await
            .unwrap();
    }
    txn.flush().await.unwrap();

    let all = tps(&topic, 1);
    let uncommitted = PartitionOffsetsRetriever::new(admin.clone(), None, IsolationLevel::ReadUncommitted);
    let committed = PartitionOffsetsRetriever::new(admin.clone(), None, IsolationLevel::ReadCommitted);
    assert_eq!(
        OffsetsInitializer::latest().resolve(&all, &uncommitted).await.unwrap(),
        offsets(&topic, &[5])
    );
    assert_eq!(
        OffsetsInitializer::latest().resolve(&all, &committed).await.unwrap(),
        offsets(&topic, &[2]),
        "the open transaction pins the LSO"
    );

    // A bounded read_committed source stops at the LSO, a read_uncommitted one at the HW.
    for (level, stop) in [(IsolationLevel::ReadCommitted, 2), (IsolationLevel::ReadUncommitted, 5)] {
        let source = source_builder(&topic)
            .isolation_level(level)
            .bounded(OffsetsInitializer::latest())
            .build()
            .unwrap();
        let mut e = source.enumerator_with_admin(admin.clone(), 0, 1).unwrap();
        let splits = e.discover().await.unwrap().new_splits;
        assert_eq!(summary(&splits), [(format!("{topic}-0"), 0, Some(stop))], "{level:?}");
    }

    // The coordinator writes the commit marker after EndTxn answers: wait for the LSO to move.
    txn.commit_transaction().await.unwrap();
    let mut lso = BTreeMap::new();
    for _ in 0..100 {
        lso = OffsetsInitializer::latest().resolve(&all, &committed).await.unwrap();
        if lso[&all[0]] > 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(lso, offsets(&topic, &[6]), "after the commit marker");
}

#[tokio::test(flavor = "multi_thread")]
async fn bounded_and_unbounded_stopping_offsets() {
    let admin = admin().await;
    let topic = unique_topic("src-stop");
    create(&admin, &topic, 2).await;
    produce(&topic, 0, &[100, 200, 300, 400]).await;
    produce(&topic, 1, &[150]).await;

    // Bounded by the end offsets at start; records written later are not included.
    let source = source_builder(&topic)
        .starting_offsets(OffsetsInitializer::earliest())
        .bounded(OffsetsInitializer::latest())
        .property("partition.discovery.interval.ms", "10")
        .build()
        .unwrap();
    assert_eq!(source.boundedness(), Boundedness::Bounded);
    let mut e = source.create_enumerator(0, 1).await.unwrap();
    assert!(!e.no_more_splits());
    let d = e.discover().await.unwrap();
    assert_eq!(
        summary(&d.new_splits),
        [(format!("{topic}-0"), 0, Some(4)), (format!("{topic}-1"), 0, Some(1))]
    );
    assert!(
        e.no_more_splits(),
        "bounded: discovery forced off, nothing more will come"
    );
    assert_eq!(e.discovery_interval(), None);
    produce(&topic, 1, &[500]).await;
    assert!(e.discover().await.unwrap().new_splits.is_empty());

    // Unbounded with stopping offsets: a timestamp stop, and a start in the middle.
    let source = source_builder(&topic)
        .starting_offsets(OffsetsInitializer::timestamp(200))
        .unbounded(OffsetsInitializer::timestamp(350))
        .build()
        .unwrap();
    assert_eq!(source.boundedness(), Boundedness::ContinuousUnbounded);
    let mut e = source.create_enumerator(0, 1).await.unwrap();
    let d = e.discover().await.unwrap();
    assert_eq!(
        summary(&d.new_splits),
        [(format!("{topic}-0"), 1, Some(3)), (format!("{topic}-1"), 1, Some(1))]
    );
    assert!(d.new_splits[1].is_empty(), "p1 has nothing in [200, 350)");

    // Specified stopping offsets.
    let source = source_builder(&topic)
        .bounded(OffsetsInitializer::offsets([
            (TopicPartition::new(&topic, 0), 2),
            (TopicPartition::new(&topic, 1), KafkaPartitionSplit::LATEST_OFFSET),
        ]))
        .build()
        .unwrap();
    let mut e = source.create_enumerator(0, 1).await.unwrap();
    assert_eq!(
        summary(&e.discover().await.unwrap().new_splits),
        [(format!("{topic}-0"), 0, Some(2)), (format!("{topic}-1"), 0, Some(2))]
    );

    // Without stopping offsets splits never end.
    let source = source_builder(&topic).build().unwrap();
    let mut e = source.create_enumerator(0, 1).await.unwrap();
    let d = e.discover().await.unwrap();
    assert!(d.new_splits.iter().all(|s| s.stopping_offset.is_none()));
    assert!(e.no_more_splits(), "no discovery: the initial splits are all there is");
}

#[tokio::test(flavor = "multi_thread")]
async fn discovers_new_partitions_and_new_topics_while_running() {
    let admin = admin().await;
    let prefix = unique_topic("src-disc");
    let (a, b, other) = (format!("{prefix}-a"), format!("{prefix}-b"), format!("{prefix}x-c"));
    create(&admin, &a, 2).await;
    produce(&a, 0, &[1, 2, 3]).await;
    produce(&a, 1, &[1]).await;

    // Start from latest: initial splits begin at the end; partitions found later at 0 (Flink
    // reads newly discovered partitions from the earliest offset).
    let mut config = enumerator_config(Subscription::Pattern(
        TopicPattern::new(&format!("{}-.*", regex::escape(&prefix))).unwrap(),
    ));
    config.starting_offsets = OffsetsInitializer::latest();
    let mut e = SplitEnumerator::new(admin.clone(), config, 0, 1).unwrap();
    assert!(!e.no_more_splits());
    let d = e.discover().await.unwrap();
    assert_eq!(
        summary(&d.new_splits),
        [(format!("{a}-0"), 3, None), (format!("{a}-1"), 1, None)]
    );
    assert!(e.discover().await.unwrap().new_splits.is_empty(), "nothing new");
    assert!(!e.no_more_splits(), "discovery is on");

    // A partition added to a known topic, already holding records.
    admin.create_partitions(&a, 3).await.unwrap();
    produce(&a, 2, &[7, 8]).await;
    let d = e.discover().await.unwrap();
    assert_eq!(summary(&d.new_splits), [(format!("{a}-2"), 0, None)]);

    // A new topic matching the pattern, and one that does not (its name only starts alike).
    create(&admin, &b, 1).await;
    create(&admin, &other, 1).await;
    produce(&b, 0, &[5]).await;
    let d = e.discover().await.unwrap();
    assert_eq!(summary(&d.new_splits), [(format!("{b}-0"), 0, None)]);
    assert!(d.removed_partitions.is_empty());
    let state = e.snapshot_state();
    assert!(state.initial_discovery_finished);
    assert_eq!(state.assigned_partitions.len(), 4);

    // A deleted topic is reported once, not a failure.
    admin.delete_topics(&[&b]).await.unwrap();
    let mut removed = Vec::new();
    for _ in 0..100 {
        let d = e.discover().await.unwrap();
        assert!(d.new_splits.is_empty());
        if !d.removed_partitions.is_empty() {
            removed = d.removed_partitions;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(removed, [TopicPartition::new(&b, 0)]);
    assert_eq!(e.discover().await.unwrap(), Default::default(), "reported once");

    // Restored from the snapshot, a fresh enumerator hands out nothing known again and reads
    // a partition it has not seen from the earliest offset, whatever the starting initializer.
    admin.create_partitions(&a, 4).await.unwrap();
    let mut config = enumerator_config(Subscription::Topics(vec![a.clone()]));
    config.starting_offsets = OffsetsInitializer::latest();
    let mut restored = SplitEnumerator::new(admin.clone(), config, 0, 1)
        .unwrap()
        .with_state(state);
    let d = restored.discover().await.unwrap();
    assert_eq!(summary(&d.new_splits), [(format!("{a}-3"), 0, None)]);

    // A topic list subscription finds added partitions too, and notes a deleted topic.
    let mut config = enumerator_config(Subscription::Topics(vec![a.clone(), other.clone()]));
    config.starting_offsets = OffsetsInitializer::latest();
    let mut e = SplitEnumerator::new(admin.clone(), config, 0, 1).unwrap();
    assert_eq!(e.discover().await.unwrap().new_splits.len(), 5);
    admin.create_partitions(&other, 2).await.unwrap();
    assert_eq!(
        summary(&e.discover().await.unwrap().new_splits),
        [(format!("{other}-1"), 0, None)]
    );
    admin.delete_topics(&[&other]).await.unwrap();
    let mut removed = Vec::new();
    for _ in 0..100 {
        let d = e.discover().await.unwrap();
        if !d.removed_partitions.is_empty() {
            removed = d.removed_partitions;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(removed, tps(&other, 2));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_topics_and_partitions_fail_the_first_discovery() {
    let admin = admin().await;
    let topic = unique_topic("src-missing");
    create(&admin, &topic, 2).await;
    let unknown = |e: ConnectorError| match e {
        ConnectorError::Client(c) => {
            assert_eq!(c.kafka_code(), Some(ErrorCode::UnknownTopicOrPartition), "{c}");
            c.to_string()
        }
        e => panic!("{e}"),
    };

    let ghost = unique_topic("src-ghost");
    let mut e = SplitEnumerator::new(
        admin.clone(),
        enumerator_config(Subscription::Topics(vec![topic.clone(), ghost.clone()])),
        0,
        1,
    )
    .unwrap();
    assert!(unknown(e.discover().await.unwrap_err()).contains(&ghost));
    assert!(e.assigned_partitions().is_empty(), "a failed discovery changes nothing");

    let parts: BTreeSet<TopicPartition> = [TopicPartition::new(&topic, 1), TopicPartition::new(&topic, 2)].into();
    let mut e = SplitEnumerator::new(admin.clone(), enumerator_config(Subscription::Partitions(parts)), 0, 1).unwrap();
    assert!(unknown(e.discover().await.unwrap_err()).contains(&format!("{topic}-2")));

    // Fixed partitions that exist: exactly those.
    let parts: BTreeSet<TopicPartition> = [TopicPartition::new(&topic, 1)].into();
    let source = KafkaSource::builder()
        .bootstrap_servers(&broker().bootstrap)
        .partitions(parts)
        .deserializer(deserializer::bytes())
        .build()
        .unwrap();
    let mut e = source.create_enumerator(0, 1).await.unwrap();
    assert_eq!(
        summary(&e.discover().await.unwrap().new_splits),
        [(format!("{topic}-1"), 0, None)]
    );

    let e = SplitEnumerator::new(
        admin.clone(),
        enumerator_config(Subscription::Topics(vec![topic])),
        2,
        2,
    );
    assert!(e
        .unwrap_err()
        .to_string()
        .contains("subtask index 2 is not within parallelism 2"));
}

/// Owners computed by the JVM: a one-file Java program with Flink's `getSplitOwner` body, run
/// on the topics this test created. Lines: `topic hashCode partition parallelism owner`.
fn java_owners(topics: &[(String, i32)]) -> BTreeMap<(String, i32, usize), usize> {
    let dir = std::env::temp_dir().join(unique_topic("owner-java"));
    std::fs::create_dir_all(&dir).unwrap();
    let src = dir.join("Owner.java");
    std::fs::write(
        &src,
        r#"public class Owner {
    static int getSplitOwner(String topic, int partition, int numReaders) {
        int startIndex = ((topic.hashCode() * 31) & 0x7FFFFFFF) % numReaders;
        return (startIndex + partition) % numReaders;
    }
    public static void main(String[] args) {
        for (int i = 0; i < args.length; i += 2) {
            String topic = args[i];
            int partitions = Integer.parseInt(args[i + 1]);
            for (int n = 1; n <= 4; n++)
                for (int p = 0; p < partitions; p++)
                    System.out.println(topic + " " + topic.hashCode() + " " + p + " " + n + " " + getSplitOwner(topic, p, n));
        }
    }
}
"#,
    )
    .unwrap();
    let mut cmd = std::process::Command::new("java");
    cmd.arg(&src);
    for (t, n) in topics {
        cmd.arg(t).arg(n.to_string());
    }
    let out = cmd.output().expect("java (17+) is needed for this test");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    std::fs::remove_dir_all(&dir).unwrap();
    let mut owners = BTreeMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(java_string_hash_code(f[0]), f[1].parse::<i32>().unwrap(), "{line}");
        owners.insert(
            (f[0].to_owned(), f[2].parse().unwrap(), f[3].parse().unwrap()),
            f[4].parse().unwrap(),
        );
    }
    owners
}

#[tokio::test(flavor = "multi_thread")]
async fn split_ownership_across_parallelism_matches_java() {
    let admin = admin().await;
    let topics: Vec<(String, i32)> = [("src-own-a", 5), ("src-own-bb", 3), ("src-own-c", 1), ("src-own-d", 8)]
        .into_iter()
        .map(|(p, n)| (unique_topic(p), n))
        .collect();
    for (t, n) in &topics {
        create(&admin, t, *n).await;
    }
    let java = java_owners(&topics);
    assert_eq!(java.len(), 4 * 17);
    let subscription = Subscription::Topics(topics.iter().map(|(t, _)| t.clone()).collect());

    for parallelism in 1..=4 {
        let mut owner_of: BTreeMap<(String, i32), Vec<usize>> = BTreeMap::new();
        for subtask in 0..parallelism {
            let mut e = SplitEnumerator::new(
                admin.clone(),
                enumerator_config(subscription.clone()),
                subtask,
                parallelism,
            )
            .unwrap();
            for s in e.discover().await.unwrap().new_splits {
                assert!(e.owns(&s.topic_partition()));
                owner_of
                    .entry((s.topic.clone(), s.partition))
                    .or_default()
                    .push(subtask);
            }
        }
        assert_eq!(
            owner_of.len(),
            17,
            "every partition is read at parallelism {parallelism}"
        );
        for ((topic, partition), owners) in &owner_of {
            assert_eq!(
                owners.len(),
                1,
                "{topic}-{partition} read once at parallelism {parallelism}"
            );
            let want = java[&(topic.clone(), *partition, parallelism)];
            assert_eq!(owners[0], want, "{topic}-{partition} at parallelism {parallelism}");
            assert_eq!(split_owner(topic, *partition, parallelism), want);
        }
    }
}

/// Starts `n` records before the end of each partition (at its log start when it has fewer),
/// counting its calls.
struct LastN {
    n: i64,
    calls: Arc<AtomicUsize>,
}

impl CustomOffsetsInitializer for LastN {
    fn partition_offsets<'a>(
        &'a self,
        partitions: &'a [TopicPartition],
        retriever: &'a PartitionOffsetsRetriever,
    ) -> PartitionOffsetsFuture<'a> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let begin = retriever.beginning_offsets(partitions).await?;
            let end = retriever.end_offsets(partitions).await?;
            Ok(end
                .into_iter()
                .map(|(tp, e)| {
                    let b = begin.get(&tp).copied().unwrap_or(0);
                    (tp, (e - self.n).max(b))
                })
                .collect())
        })
    }

    fn auto_offset_reset_strategy(&self) -> OffsetResetStrategy {
        OffsetResetStrategy::Latest
    }
}

/// A custom initializer that answers with whatever `answer` makes of the partitions.
struct Answer<F>(F);

impl<F> CustomOffsetsInitializer for Answer<F>
where
    F: Fn(&[TopicPartition]) -> strom_connector::Result<BTreeMap<TopicPartition, i64>> + Send + Sync,
{
    fn partition_offsets<'a>(
        &'a self,
        partitions: &'a [TopicPartition],
        _retriever: &'a PartitionOffsetsRetriever,
    ) -> PartitionOffsetsFuture<'a> {
        let answer = (self.0)(partitions);
        Box::pin(async move { answer })
    }

    fn auto_offset_reset_strategy(&self) -> OffsetResetStrategy {
        OffsetResetStrategy::None
    }

    fn requires_group_id(&self) -> bool {
        true
    }
}

/// The seed's "you can also implement a custom offsets initializer": a user's
/// `CustomOffsetsInitializer` decides starting and stopping offsets at discovery, through the
/// retriever's lookups; checkpointed splits do not ask it again; what it gets wrong is a clear
/// error naming the partition.
#[tokio::test(flavor = "multi_thread")]
async fn custom_offsets_initializer_against_the_broker() {
    let admin = admin().await;
    let topic = unique_topic("src-custom");
    create(&admin, &topic, 2).await;
    produce(&topic, 0, &[1000; 25]).await;
    produce(&topic, 1, &[1000; 5]).await;

    let calls = Arc::new(AtomicUsize::new(0));
    let last_10 = OffsetsInitializer::custom(LastN {
        n: 10,
        calls: calls.clone(),
    });
    let source = source_builder(&topic)
        .starting_offsets(last_10.clone())
        .build()
        .unwrap();
    assert_eq!(source.starting_offsets(), &last_10);
    assert_eq!(
        source.consumer_config(0).auto_offset_reset,
        OffsetResetStrategy::Latest,
        "the reader's auto.offset.reset comes from the custom initializer"
    );
    let mut e = source.create_enumerator(0, 1).await.unwrap();
    let d = e.discover().await.unwrap();
    assert_eq!(
        summary(&d.new_splits),
        [(format!("{topic}-0"), 15, None), (format!("{topic}-1"), 0, None)],
        "10 before the end of p0, the log start of the shorter p1"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    // A reader reads exactly the last 10 of p0 and all 5 of p1 from those splits.
    let mut reader = SourceReader::new(&source, 0).await.unwrap();
    reader.add_splits(d.new_splits).await.unwrap();
    let mut got = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while got < 15 && tokio::time::Instant::now() < deadline {
        got += reader.poll(Duration::from_millis(200)).await.unwrap().len();
    }
    assert_eq!(got, 15);
    // A checkpoint of the reader restores where it was; the initializer is not asked again.
    let checkpointed = reader.snapshot_state(1).unwrap();
    reader.close().await.unwrap();
    assert_eq!(
        summary(&checkpointed),
        [(format!("{topic}-0"), 25, None), (format!("{topic}-1"), 5, None)]
    );
    let mut restored = source
        .create_enumerator(0, 1)
        .await
        .unwrap()
        .with_state(e.snapshot_state());
    assert!(restored.discover().await.unwrap().new_splits.is_empty());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "restored splits do not ask the initializer"
    );

    // As stopping offsets too (unbounded with a custom stop: 3 records before the end).
    let stop = OffsetsInitializer::custom(LastN {
        n: 3,
        calls: calls.clone(),
    });
    let source = source_builder(&topic).unbounded(stop).build().unwrap();
    let mut e = source.create_enumerator(0, 1).await.unwrap();
    assert_eq!(
        summary(&e.discover().await.unwrap().new_splits),
        [(format!("{topic}-0"), 0, Some(22)), (format!("{topic}-1"), 0, Some(2))]
    );

    // What a custom initializer gets wrong fails the discovery, naming the partition.
    let group = format!("{topic}-group");
    let discover_with = |init: OffsetsInitializer| {
        let source = source_builder(&topic)
            .group_id(group.clone())
            .starting_offsets(init)
            .build()
            .unwrap();
        async move { source.create_enumerator(0, 1).await.unwrap().discover().await }
    };
    let e = discover_with(OffsetsInitializer::custom(Answer(|_: &[TopicPartition]| {
        Err(ConnectorError::User("no offsets for you".into()))
    })))
    .await
    .unwrap_err();
    assert!(
        matches!(&e, ConnectorError::User(m) if m == "no offsets for you"),
        "{e}"
    );
    let stranger = TopicPartition::new("some-other-topic", 7);
    let e = discover_with(OffsetsInitializer::custom(Answer(move |tps: &[TopicPartition]| {
        let mut m: BTreeMap<TopicPartition, i64> = tps.iter().map(|tp| (tp.clone(), 0)).collect();
        m.insert(stranger.clone(), 3);
        Ok(m)
    })))
    .await
    .unwrap_err();
    assert!(matches!(e, ConnectorError::Config(_)), "{e}");
    assert!(
        e.to_string()
            .contains("returned an offset for some-other-topic-7, which it was not asked about"),
        "{e}"
    );
    let e = discover_with(OffsetsInitializer::custom(Answer(|tps: &[TopicPartition]| {
        Ok(tps.iter().take(1).map(|tp| (tp.clone(), 0)).collect())
    })))
    .await
    .unwrap_err();
    assert!(
        e.to_string().contains(&format!("returned no offset for {topic}-1")),
        "{e}"
    );
    let e = discover_with(OffsetsInitializer::custom(Answer(|tps: &[TopicPartition]| {
        Ok(tps.iter().map(|tp| (tp.clone(), -7)).collect())
    })))
    .await
    .unwrap_err();
    assert!(e.to_string().contains(&format!("offset -7 for {topic}-0")), "{e}");
    // Markers are resolved: earliest for p0, latest for p1; committed without one is an error.
    let d = discover_with(OffsetsInitializer::custom(Answer(|tps: &[TopicPartition]| {
        Ok(tps
            .iter()
            .map(|tp| {
                let marker = if tp.partition == 0 {
                    KafkaPartitionSplit::EARLIEST_OFFSET
                } else {
                    KafkaPartitionSplit::LATEST_OFFSET
                };
                (tp.clone(), marker)
            })
            .collect())
    })))
    .await
    .unwrap();
    assert_eq!(
        summary(&d.new_splits),
        [(format!("{topic}-0"), 0, None), (format!("{topic}-1"), 5, None)]
    );
    let e = discover_with(OffsetsInitializer::custom(Answer(|tps: &[TopicPartition]| {
        Ok(tps
            .iter()
            .map(|tp| (tp.clone(), KafkaPartitionSplit::COMMITTED_OFFSET))
            .collect())
    })))
    .await
    .unwrap_err();
    assert!(e.to_string().contains("reset strategy is None"), "{e}");
    // requires_group_id is checked at build.
    let e = source_builder(&topic)
        .starting_offsets(OffsetsInitializer::custom(Answer(|_: &[TopicPartition]| {
            Ok(BTreeMap::new())
        })))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("group.id is required"), "{e}");
}
