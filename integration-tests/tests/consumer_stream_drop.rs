//! Issue #12 item 1: a dropped `Consumer::stream()` or a dropped `poll` future loses no
//! record. Records the consumer decoded but did not hand out wait in the consumer; positions
//! and commits count only what the application received.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, OffsetReset, Producer, ProducerConfig, ProducerRecord,
    TopicPartition,
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

/// Committing while streaming (issue #13): a `Committer` taken before `stream()` commits
/// each record as it is processed, with the stream still borrowing the consumer; the
/// group's offsets then say exactly how far processing got.
#[tokio::test]
async fn a_committer_commits_while_the_stream_borrows_the_consumer() {
    let topic = topic_with(300).await;
    let group = unique_topic("stream-committer");
    let mut consumer = Consumer::new(group_config(&group)).await.unwrap();
    consumer.subscribe(&[&topic]).unwrap();
    let committer = consumer.committer().unwrap();
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
    let e = idle.committer().unwrap_err();
    assert_eq!(e.kind(), strom_client::ErrorKind::IllegalState, "{e}");
    consumer.close().await.unwrap();
}
