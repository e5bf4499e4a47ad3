//! Issue #12 item 1: a dropped `Consumer::stream()` or a dropped `poll` future loses no
//! record. Records the consumer decoded but did not hand out wait in the consumer; positions
//! and commits count only what the application received.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, OffsetAndMetadata, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};
use strom_integration_tests::{broker, init_test_logging, unique_topic};

const PARTITIONS: i32 = 3;

async fn topic_with(records: usize) -> String {
    let topic = unique_topic("stream-drop");
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin.create_topics(&[NewTopic::new(&topic, PARTITIONS)]).await.unwrap();
    let p = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    let mut pending = Vec::with_capacity(records);
    for i in 0..records {
        let record = ProducerRecord::new(&topic, Bytes::from(i.to_string())).key(Bytes::from(i.to_string()));
        pending.push(p.send(record).await.unwrap());
    }
    for d in pending {
        d.await.unwrap();
    }
    p.close().await.unwrap();
    topic
}

fn group_config(group: &str) -> ConsumerConfig {
    let mut c = ConsumerConfig::new(&broker().bootstrap);
    c.group_id = Some(group.to_owned());
    c.auto_offset_reset = OffsetReset::Earliest;
    c.enable_auto_commit = false;
    c
}

/// A small deterministic generator (xorshift), seeded from the clock; the seed is printed so
/// a failure can be replayed with `STROM_TEST_SEED`.
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::env::var("STROM_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("STROM_TEST_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Records each (partition, offset) once, failing on a second delivery.
#[derive(Default)]
struct Delivered {
    seen: BTreeSet<(i32, i64)>,
    next: BTreeMap<i32, i64>,
}

impl Delivered {
    fn add(&mut self, partition: i32, offset: i64) {
        assert!(
            self.seen.insert((partition, offset)),
            "partition {partition} offset {offset} delivered twice"
        );
        let n = self.next.entry(partition).or_default();
        *n = (*n).max(offset + 1);
    }
}

/// The natural pattern: take some records from a stream, drop it, commit, make a new stream
/// (and now and then a new consumer, which starts from the commit). Every offset arrives
/// exactly once and each commit is exactly one past the last record received.
#[tokio::test(flavor = "multi_thread")]
async fn dropping_the_stream_after_random_counts_delivers_every_offset_once() {
    init_test_logging();
    const TOTAL: usize = 6_000;
    let topic = topic_with(TOTAL).await;
    let group = unique_topic("stream-drop-g");
    let mut rng = Rng::new();
    let mut delivered = Delivered::default();
    let mut c = Consumer::new(group_config(&group)).await.unwrap();
    c.subscribe(&[&topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut iteration = 0;
    while delivered.seen.len() < TOTAL {
        assert!(
            Instant::now() < deadline,
            "only {} of {TOTAL} records delivered after {iteration} streams: records were lost",
            delivered.seen.len()
        );
        iteration += 1;
        // ~10 iterations of random sizes; then whatever is left.
        let take = if iteration <= 10 {
            1 + rng.below(1_000) as usize
        } else {
            TOTAL
        };
        {
            let mut stream = std::pin::pin!(c.stream());
            let mut got = 0;
            while got < take && delivered.seen.len() < TOTAL {
                match tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
                    Ok(Some(r)) => {
                        let r = r.unwrap();
                        delivered.add(r.partition, r.offset);
                        got += 1;
                    }
                    Ok(None) => panic!("the consumer stream ended"),
                    Err(_) => break,
                }
            }
        }
        c.commit_sync().await.unwrap();
        for (tp, o) in c.consumed_offsets() {
            if let Some(next) = delivered.next.get(&tp.partition) {
                assert_eq!(
                    o.offset, *next,
                    "iteration {iteration}: {tp} committed {} but the application received up to {}",
                    o.offset, next
                );
            }
        }
        if iteration % 4 == 0 {
            // A new member starts from the commit: anything committed but not received is lost.
            c.close().await.unwrap();
            c = Consumer::new(group_config(&group)).await.unwrap();
            c.subscribe(&[&topic]).unwrap();
        }
    }
    assert_eq!(delivered.seen.len(), TOTAL);
    c.close().await.unwrap();
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let committed = admin.group_offsets(&group).await.unwrap();
    assert_eq!(committed.values().sum::<i64>(), TOTAL as i64, "{committed:?}");
}

/// A `poll` future dropped after it took records from the fetch buffer (here: while it waits
/// for a metadata refresh) loses nothing, and so do polls cut short by random timeouts.
#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_poll_future_loses_nothing() {
    init_test_logging();
    const TOTAL: usize = 3_000;
    let topic = topic_with(TOTAL).await;
    let mut cfg = ConsumerConfig::new(&broker().bootstrap);
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.max_poll_records = 10;
    let mut c = Consumer::new(cfg).await.unwrap();
    c.assign((0..PARTITIONS).map(|p| TopicPartition::new(topic.as_str(), p)))
        .unwrap();
    let mut delivered = Delivered::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Fill the fetch buffer.
    while delivered.seen.is_empty() {
        assert!(Instant::now() < deadline, "nothing consumed");
        for r in c.poll(Duration::from_millis(500)).await.unwrap() {
            delivered.add(r.partition, r.offset);
        }
    }
    // Forgotten metadata makes the next poll wait for a refresh after it drained records:
    // poll it once and drop it there.
    for _ in 0..5 {
        c.client().invalidate_topic(&topic);
        let once = c.poll(Duration::from_secs(5)).now_or_never();
        if let Some(recs) = once {
            for r in recs.unwrap() {
                delivered.add(r.partition, r.offset);
            }
        }
    }
    let mut rng = Rng::new();
    for _ in 0..200 {
        let cut = Duration::from_micros(rng.below(3_000));
        if let Ok(recs) = tokio::time::timeout(cut, c.poll(Duration::from_secs(1))).await {
            for r in recs.unwrap() {
                delivered.add(r.partition, r.offset);
            }
        }
    }
    while delivered.seen.len() < TOTAL {
        assert!(
            Instant::now() < deadline,
            "only {} of {TOTAL} records delivered: records were lost",
            delivered.seen.len()
        );
        for r in c.poll(Duration::from_millis(500)).await.unwrap() {
            delivered.add(r.partition, r.offset);
        }
    }
    for p in 0..PARTITIONS {
        let tp = TopicPartition::new(topic.as_str(), p);
        assert_eq!(c.position(&tp).await.unwrap(), delivered.next[&p], "{tp}");
    }
}

/// Committing while streaming (issue #13): a `ConsumerHandle` taken before `stream()` commits
/// each record as it is processed, with the stream still borrowing the consumer; the
/// group's offsets then say exactly how far processing got.
#[tokio::test]
async fn a_committer_commits_while_the_stream_borrows_the_consumer() {
    let topic = topic_with(300).await;
    let group = unique_topic("stream-committer");
    let mut consumer = Consumer::new(group_config(&group)).await.unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let committer = consumer.handle().unwrap();
    let mut last: BTreeMap<i32, i64> = BTreeMap::new();
    {
        let mut stream = std::pin::pin!(consumer.stream());
        let deadline = Instant::now() + Duration::from_secs(60);
        for _ in 0..120 {
            let next = tokio::time::timeout_at(deadline.into(), stream.next())
                .await
                .expect("120 records within 60 s");
            let record = next.unwrap().unwrap();
            committer.commit_record(&record).await.unwrap();
            last.insert(record.partition, record.offset);
        }
    }
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let committed = admin.group_offsets(&group).await.unwrap();
    let want: BTreeMap<(String, i32), i64> = last.iter().map(|(p, o)| ((topic.clone(), *p), o + 1)).collect();
    assert_eq!(committed, want);
    // A fresh committer on a consumer with neither subscribe nor assign is refused.
    let idle = Consumer::new(group_config(&group)).await.unwrap();
    let e = idle.handle().unwrap_err();
    assert_eq!(e.kind(), strom_client::ErrorKind::IllegalState, "{e}");
    consumer.close().await.unwrap();
}

/// Seeking, pausing and resuming while streaming (issue #13), through a `ConsumerHandle`:
/// each takes effect before the stream's next record, buffered records of a moved
/// partition are dropped, and a stream waiting for data wakes for it.
#[tokio::test]
async fn a_handle_seeks_pauses_and_resumes_while_the_stream_runs() {
    let topic = topic_with(300).await;
    let group = unique_topic("stream-seek");
    let mut consumer = Consumer::new(group_config(&group)).await.unwrap();
    let all: Vec<TopicPartition> = (0..PARTITIONS)
        .map(|p| TopicPartition::new(topic.as_str(), p))
        .collect();
    consumer.assign(all.clone()).unwrap();
    let handle = consumer.handle().unwrap();
    let mut stream = Box::pin(consumer.stream());
    const LONG: Duration = Duration::from_secs(30);
    const QUIET: Duration = Duration::from_secs(3);

    // Read until partition 0 is past offset 5, then rewind it to 2: the very next record
    // of partition 0 is offset 2 (its buffered records 6.. were dropped).
    let p0 = all[0].clone();
    loop {
        let r = next(&mut stream, LONG).await.expect("records within 30 s");
        if r.partition == 0 && r.offset >= 5 {
            break;
        }
    }
    handle.seek(&p0, 2);
    let r = loop {
        let r = next(&mut stream, LONG).await.expect("records within 30 s");
        if r.partition == 0 {
            break r;
        }
    };
    assert_eq!(r.offset, 2, "the first record of {p0} after the seek");

    // Pause partition 1 (rewound first, so it has records to hold back): none of its records
    // come until it is resumed; the others drain.
    let p1 = all[1].clone();
    handle.seek(&p1, 0);
    handle.pause(std::slice::from_ref(&p1));
    let mut seen_after_pause = 0;
    // Ends when partitions 0 and 2 are drained and 1 is paused.
    while let Some(r) = next(&mut stream, QUIET).await {
        assert_ne!(r.partition, 1, "a record of paused {p1}: offset {}", r.offset);
        seen_after_pause += 1;
    }
    assert!(seen_after_pause > 0);
    // Resume while the stream waits: it wakes and hands out partition 1's records.
    handle.resume(std::slice::from_ref(&p1));
    let r = next(&mut stream, LONG)
        .await
        .expect("a record of the resumed partition");
    assert_eq!((r.partition, r.offset), (1, 0));

    // Rewind everything while the stream waits on an empty fetch: the first records again.
    while next(&mut stream, QUIET).await.is_some() {}
    handle.seek_to_beginning(&[]);
    let mut firsts = BTreeSet::new();
    while firsts.len() < PARTITIONS as usize {
        let r = next(&mut stream, LONG).await.expect("records after seek_to_beginning");
        if firsts.insert(r.partition) {
            assert_eq!(
                r.offset, 0,
                "the first record of partition {} after seek_to_beginning",
                r.partition
            );
        }
    }
    // A seek for a partition this consumer does not own is skipped, not an error: the
    // stream goes on.
    handle.seek(&TopicPartition::new(topic.as_str(), 99), 0);
    handle.seek_to_end(&[]);
    assert!(next(&mut stream, QUIET).await.is_none(), "no record after seek_to_end");

    // Once the consumer is gone, the handle's commits fail as Closed (its membership is
    // gone too); its seeks go nowhere.
    let offsets = BTreeMap::from([(p0.clone(), OffsetAndMetadata::new(3))]);
    handle.commit(&offsets).await.unwrap();
    drop(stream);
    consumer.close().await.unwrap();
    let e = handle.commit(&offsets).await.unwrap_err();
    assert_eq!(e.kind(), strom_client::ErrorKind::Closed, "{e}");
    handle.seek(&p0, 0);
}

/// The next record within `wait`, or `None` when none came.
async fn next<S>(stream: &mut S, wait: Duration) -> Option<strom_client::ConsumerRecord>
where
    S: futures_util::Stream<Item = strom_client::Result<strom_client::ConsumerRecord>> + Unpin,
{
    tokio::time::timeout(wait, stream.next())
        .await
        .ok()
        .map(|r| r.unwrap().unwrap())
}

/// A `ConsumerHandle` commits as the member the consumer is *now* (issue #13): it reads the
/// generation (classic) or member epoch (KIP-848) at each commit, so after a second member
/// joins and the group rebalances under the running stream, its commits keep succeeding.
/// Only a commit that crosses the rebalance itself may fail, and then with a "rebalanced"
/// error, never a stale identity that sticks.
#[tokio::test(flavor = "multi_thread")]
async fn a_handle_keeps_committing_across_a_rebalance() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use strom_client::{ErrorCode, GroupProtocol};

    for protocol in [GroupProtocol::Classic, GroupProtocol::Consumer] {
        let topic = topic_with(600).await;
        let group = unique_topic("stream-handle-rebalance");
        let config = || {
            let mut c = group_config(&group);
            c.group_protocol = protocol;
            // A rebalance reaches the application when the stream next polls, after the
            // records already handed over: keep that short, as Java's max.poll.records does.
            c.max_poll_records = 10;
            c
        };
        let mut a = Consumer::new(config()).await.unwrap();
        a.subscribe(&[&topic]).unwrap();
        let handle = a.handle().unwrap();

        // The second member, started once A is under way; it polls until told to stop.
        let b_assigned = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let b = tokio::spawn({
            let (b_assigned, stop, cfg) = (b_assigned.clone(), stop.clone(), config());
            let topic = topic.clone();
            async move {
                go_rx.await.unwrap();
                let mut b = Consumer::new(cfg).await.unwrap();
                b.subscribe(&[&topic]).unwrap();
                while !stop.load(Ordering::Relaxed) {
                    b.poll(Duration::from_millis(100)).await.unwrap();
                    if !b.assignment().is_empty() {
                        b_assigned.store(true, Ordering::Relaxed);
                    }
                }
                b.close().await.unwrap();
            }
        });

        let mut go = Some(go_tx);
        let (mut processed, mut ok_after, mut rebalanced_errors) = (0, 0, 0);
        let mut last_ok: Option<(i32, i64)> = None;
        {
            let mut stream = std::pin::pin!(a.stream());
            let deadline = Instant::now() + Duration::from_secs(90);
            while ok_after < 20 {
                assert!(
                    Instant::now() < deadline,
                    "{protocol:?}: only {ok_after} commits after the rebalance"
                );
                let Some(r) = next(&mut stream, Duration::from_secs(30)).await else {
                    panic!("{protocol:?}: no record for 30 s ({processed} processed)")
                };
                processed += 1;
                if processed == 30 {
                    let _ = go.take().unwrap().send(());
                }
                tokio::time::sleep(Duration::from_millis(20)).await; // "processing"
                match handle.commit_record(&r).await {
                    Ok(()) => {
                        last_ok = Some((r.partition, r.offset));
                        if b_assigned.load(Ordering::Relaxed) {
                            ok_after += 1;
                        }
                    }
                    Err(e) => {
                        let code = e.kafka_code();
                        assert!(
                            matches!(
                                code,
                                Some(
                                    ErrorCode::RebalanceInProgress
                                        | ErrorCode::IllegalGeneration
                                        | ErrorCode::StaleMemberEpoch
                                        | ErrorCode::UnknownMemberId
                                )
                            ),
                            "{protocol:?}: {e}"
                        );
                        rebalanced_errors += 1;
                        assert!(rebalanced_errors < 50, "{protocol:?}: commits keep failing: {e}");
                    }
                }
            }
        }
        stop.store(true, Ordering::Relaxed);
        b.await.unwrap();
        // The last successful commit is what the group holds for that partition.
        let (p, o) = last_ok.unwrap();
        let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
        let committed = admin.group_offsets(&group).await.unwrap();
        assert_eq!(
            committed.get(&(topic.clone(), p)),
            Some(&(o + 1)),
            "{protocol:?}: {committed:?}"
        );
        eprintln!("{protocol:?}: {processed} processed, {rebalanced_errors} commits crossed the rebalance");
        a.close().await.unwrap();
    }
}
