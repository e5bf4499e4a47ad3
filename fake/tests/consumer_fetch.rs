//! The consumer's fetch path against the fake, for what a single real broker cannot show,
//! checked against the fake's request log (what the consumer asked, fetch by fetch):
//! - KIP-392 follower fetching: `rack_id` is sent, `preferred_read_replica` moves fetching
//!   to the follower, and the follower's OFFSET_OUT_OF_RANGE sends the consumer back to the
//!   leader at the same position (no reset); the choice lasts only `metadata.max.age`;
//! - a leader move (NOT_LEADER_OR_FOLLOWER from a broker that lost the partition,
//!   FENCED_LEADER_EPOCH from the old leader still a replica): fetching resumes on the new
//!   leader at the same offset with the new leader epoch; while metadata is still stale,
//!   retries wait `retry.backoff.ms`;
//! - KIP-227 fetch sessions: a full request, then incremental ones (epochs 1, 2, ...; only
//!   changed partitions listed), a lost session (FETCH_SESSION_ID_NOT_FOUND) restarts with
//!   a full request, a partition dropped from the assignment is listed as forgotten; with
//!   topics by name (Fetch v12) and by id (Fetch v13+); a failed fetch does not stall a
//!   long poll beyond the backoff;
//! - a batch failing its CRC: an error naming the partition and offset (no panic, no hang),
//!   and the same bytes delivered when `check_crcs` is off.
//!
//! Every test is bounded by a timeout; no record may be lost or repeated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use strom_client::{
    Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use strom_fake::{ApiKey, ErrorCode, FakeCluster, Fault, FetchDetail, FetchPosition};

const TOPIC: &str = "t";
const LIMIT: Duration = Duration::from_secs(20);

fn config(cluster: &FakeCluster) -> ConsumerConfig {
    let mut cfg = ConsumerConfig::new(cluster.bootstrap_servers());
    cfg.client.retry_backoff = Duration::from_millis(10);
    cfg.client.reconnect_backoff = Duration::from_millis(10);
    cfg.client.request_timeout = Duration::from_secs(5);
    cfg.client.default_api_timeout = Duration::from_secs(5);
    cfg.enable_auto_commit = false;
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.fetch_max_wait = Duration::from_millis(50);
    // One batch per partition per fetch (a fetch returns at least one): many small fetches.
    cfg.max_partition_fetch_bytes = 1;
    cfg
}

fn tp(partition: i32) -> TopicPartition {
    TopicPartition::new(TOPIC, partition)
}

/// Writes records `range` (key `k{offset}`, value `v{offset}`) to `partition`, `per_batch`
/// records to a batch.
async fn write(cluster: &FakeCluster, partition: i32, range: std::ops::Range<i64>, per_batch: usize) {
    let mut cfg = ProducerConfig::new(cluster.bootstrap_servers());
    cfg.set("linger.ms", "60000").unwrap();
    let producer = Producer::new(cfg).await.unwrap();
    let offsets: Vec<i64> = range.collect();
    for chunk in offsets.chunks(per_batch) {
        let mut pending = Vec::new();
        for o in chunk {
            let r = ProducerRecord::new(TOPIC, format!("v{o}"))
                .key(format!("k{o}"))
                .partition(partition);
            pending.push(producer.send(r).await.unwrap());
        }
        producer.flush().await.unwrap();
        for (o, d) in chunk.iter().zip(pending) {
            assert_eq!(
                d.await.unwrap().offset,
                *o,
                "the records must land at the offsets named"
            );
        }
    }
    producer.close().await.unwrap();
}

/// Polls until at least `n` records came.
async fn consume(c: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let mut out = Vec::new();
    while out.len() < n {
        out.extend(c.poll(Duration::from_millis(200)).await.unwrap());
    }
    out
}

/// Polls for a while: nothing more may come (a repeat would).
async fn assert_quiet(c: &mut Consumer) {
    let t = tokio::time::Instant::now() + Duration::from_millis(300);
    while tokio::time::Instant::now() < t {
        let more = c.poll(Duration::from_millis(100)).await.unwrap();
        assert!(
            more.is_empty(),
            "records after the end: {:?}",
            more.iter().map(|r| (r.partition, r.offset)).collect::<Vec<_>>()
        );
    }
}

/// Offsets are exactly `range`, in order, with their values.
fn assert_records(records: &[ConsumerRecord], partition: i32, range: std::ops::Range<i64>) {
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, range.collect::<Vec<_>>(), "lost, repeated or out of order");
    for r in records {
        assert_eq!(r.partition, partition);
        assert_eq!(r.value.as_deref(), Some(format!("v{}", r.offset).as_bytes()));
        assert_eq!(r.key.as_deref(), Some(format!("k{}", r.offset).as_bytes()));
    }
}

/// Every Fetch the cluster received: (node, version, what it asked).
fn fetches(cluster: &FakeCluster) -> Vec<(i32, i16, FetchDetail)> {
    cluster
        .requests()
        .into_iter()
        .filter(|r| r.api == ApiKey::Fetch)
        .map(|r| (r.node, r.version, r.fetch.expect("a Fetch is logged with its detail")))
        .collect()
}

fn listed(f: &FetchDetail, partition: i32) -> Option<&FetchPosition> {
    f.partitions
        .iter()
        .find(|p| p.topic == TOPIC && p.partition == partition)
}

/// (node, fetch offset) of every Fetch listing `partition` (an incremental fetch lists a
/// partition only when its position changed).
fn route(cluster: &FakeCluster, partition: i32) -> Vec<(i32, i64)> {
    fetches(cluster)
        .iter()
        .filter_map(|(node, _, f)| listed(f, partition).map(|p| (*node, p.fetch_offset)))
        .collect()
}

fn count(cluster: &FakeCluster, api: ApiKey) -> usize {
    cluster.requests().iter().filter(|r| r.api == api).count()
}

/// Two brokers in racks r1 and r2, `t` with one partition led by broker 1 and followed by
/// broker 2, and Kafka's rack-aware replica selector.
async fn racked_cluster() -> FakeCluster {
    FakeCluster::builder()
        .brokers(2)
        .racks(&["r1", "r2"])
        .rack_aware_replica_selector()
        .topic(TOPIC, 1, 2)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn follower_fetching_uses_the_preferred_replica_and_returns_to_the_leader_on_out_of_range() {
    const N: i64 = 20;
    /// Where the follower falls behind the leader.
    const LAG_AT: i64 = 12;
    let cluster = racked_cluster().await;
    write(&cluster, 0, 0..LAG_AT, 4).await;
    let mut cfg = config(&cluster);
    cfg.client_rack = Some("r2".into());
    let mut consumer = Consumer::new(cfg).await.unwrap();
    consumer.assign([tp(0)]).unwrap();

    let records = tokio::time::timeout(LIMIT, async {
        let mut r = consume(&mut consumer, LAG_AT as usize).await;
        // The follower has not caught up with what comes next: its next fetch is out of range.
        cluster.inject(Fault::error(ApiKey::Fetch, ErrorCode::OffsetOutOfRange).on_node(2));
        write(&cluster, 0, LAG_AT..N, 4).await;
        r.extend(consume(&mut consumer, (N - LAG_AT) as usize).await);
        assert_quiet(&mut consumer).await;
        r
    })
    .await
    .unwrap_or_else(|_| panic!("hung; fetches: {:?}", fetches(&cluster)));
    assert_records(&records, 0, 0..N);
    assert_eq!(consumer.position(&tp(0)).await.unwrap(), N);

    for (_, version, f) in fetches(&cluster) {
        assert_eq!(f.rack_id, "r2", "a fetch without the client's rack: {f:?}");
        assert!(version >= 11, "{version}");
    }
    let route = route(&cluster, 0);
    // The leader redirects, the follower serves from 0.
    assert_eq!(route[..2], [(1, 0), (2, 0)], "{route:?}");
    // Out of range on the follower at 12: back to the leader at 12 (not reset)...
    let back = route
        .iter()
        .position(|r| r.0 == 1 && r.1 > 0)
        .unwrap_or_else(|| panic!("never back on the leader: {route:?}"));
    assert_eq!(route[back - 1..=back], [(2, LAG_AT), (1, LAG_AT)], "{route:?}");
    // ... which sends the consumer to the follower again: every later fetch goes there (the
    // follower's session still holds the partition at 12, so it need not be listed again).
    let calls = fetches(&cluster);
    let on_leader = calls
        .iter()
        .position(|(node, _, f)| *node == 1 && listed(f, 0).is_some_and(|p| p.fetch_offset == LAG_AT))
        .unwrap();
    assert!(calls[on_leader + 1..].iter().all(|c| c.0 == 2), "{calls:?}");
    assert!(route[back + 1..].iter().all(|r| r.0 == 2 && r.1 > LAG_AT), "{route:?}");
    // Earliest once at the start; the follower's OFFSET_OUT_OF_RANGE reset nothing.
    assert_eq!(count(&cluster, ApiKey::ListOffsets), 1);
}

#[tokio::test]
async fn the_preferred_replica_is_used_only_until_metadata_max_age() {
    const N: i64 = 8;
    let cluster = racked_cluster().await;
    write(&cluster, 0, 0..N, 4).await;
    let mut cfg = config(&cluster);
    cfg.client_rack = Some("r2".into());
    cfg.client.metadata_max_age = Duration::from_millis(300);
    let mut consumer = Consumer::new(cfg).await.unwrap();
    consumer.assign([tp(0)]).unwrap();
    consumer.seek(&tp(0), 0).unwrap();

    let records = tokio::time::timeout(LIMIT, async {
        let r = consume(&mut consumer, N as usize).await;
        // Idle fetches on the follower until the choice expires and the leader is asked again.
        while !route(&cluster, 0).contains(&(1, N)) {
            assert!(consumer.poll(Duration::from_millis(100)).await.unwrap().is_empty());
        }
        assert_quiet(&mut consumer).await;
        r
    })
    .await
    .expect("never went back to the leader after metadata.max.age");
    assert_records(&records, 0, 0..N);
    let route = route(&cluster, 0);
    assert_eq!(route[..3], [(1, 0), (2, 0), (2, 4)], "{route:?}");
    let back = route.iter().position(|r| *r == (1, N)).unwrap();
    assert!(route[2..back].iter().all(|r| r.0 == 2), "{route:?}");
}

/// The consumer reads offsets 1.. from broker 1; when it reaches `K`, the partition moves to
/// broker 2 (`lose`: broker 1 is no longer a replica; otherwise it stays a follower) and
/// the rest is written there under the next leader epoch.
async fn leader_change(lose: bool) {
    const N: i64 = 20;
    const K: i64 = 8;
    let cluster = FakeCluster::builder()
        .brokers(2)
        .topic(TOPIC, 1, 2)
        .start()
        .await
        .unwrap();
    write(&cluster, 0, 0..K, 4).await;
    let mut consumer = Consumer::new(config(&cluster)).await.unwrap();
    consumer.assign([tp(0)]).unwrap();
    // Mid-batch: the first batch's record 0 must be skipped.
    consumer.seek(&tp(0), 1).unwrap();

    let records = tokio::time::timeout(LIMIT, async {
        let mut r = consume(&mut consumer, K as usize - 1).await;
        if lose {
            assert!(cluster.reassign(TOPIC, 0, &[2]));
        } else {
            assert!(cluster.move_leader(TOPIC, 0, 2));
        }
        write(&cluster, 0, K..N, 4).await;
        r.extend(consume(&mut consumer, (N - K) as usize).await);
        assert_quiet(&mut consumer).await;
        r
    })
    .await
    .unwrap_or_else(|_| panic!("hung; fetches: {:?}", fetches(&cluster)));
    assert_records(&records, 0, 1..N);
    let old = records[0].leader_epoch.expect("records carry their leader epoch");
    for r in &records {
        let want = if r.offset < K { old } else { old + 1 };
        assert_eq!(r.leader_epoch, Some(want), "offset {}", r.offset);
    }
    let consumed = consumer.consumed_offsets();
    assert_eq!(consumed[&tp(0)].offset, N);
    assert_eq!(consumed[&tp(0)].leader_epoch, Some(old + 1));

    let route = route(&cluster, 0);
    assert_eq!(route[..4], [(1, 1), (1, 4), (1, K), (2, K)], "{route:?}");
    assert!(route[4..].iter().all(|r| r.0 == 2), "{route:?}");
    let calls = fetches(&cluster);
    for (node, _, f) in &calls {
        if let Some(p) = listed(f, 0) {
            assert_eq!(p.current_leader_epoch, if *node == 1 { old } else { old + 1 }, "{f:?}");
        }
    }
    let first_on_2 = calls
        .iter()
        .find(|(node, _, _)| *node == 2)
        .expect("never fetched from the new leader");
    let p = listed(&first_on_2.2, 0).expect("the first fetch from the new leader lists the partition");
    assert_eq!(
        (p.fetch_offset, p.current_leader_epoch, p.last_fetched_epoch),
        (K, old + 1, old)
    );
}

#[tokio::test]
async fn not_leader_or_follower_moves_fetching_to_the_new_leader_at_the_same_offset() {
    leader_change(true).await;
}

#[tokio::test]
async fn fenced_leader_epoch_moves_fetching_to_the_new_leader_at_the_same_offset() {
    leader_change(false).await;
}

/// During a leader election the old leader refuses fetches before the metadata brokers hand
/// out names the new leader: every refresh returns the same (stale) leader. The consumer must
/// wait `retry.backoff.ms` between attempts, not hammer the cluster with Metadata and Fetch.
#[tokio::test]
async fn not_leader_with_stale_metadata_retries_after_retry_backoff() {
    const N: i64 = 8;
    const REFUSALS: u32 = 6;
    let cluster = FakeCluster::builder().topic(TOPIC, 1, 1).start().await.unwrap();
    write(&cluster, 0, 0..4, 4).await;
    let mut cfg = config(&cluster);
    cfg.client.retry_backoff = Duration::from_millis(100);
    let mut consumer = Consumer::new(cfg).await.unwrap();
    consumer.assign([tp(0)]).unwrap();
    consumer.seek(&tp(0), 0).unwrap();
    let (records, before, metadata_before) = tokio::time::timeout(LIMIT, async {
        let mut r = consume(&mut consumer, 4).await;
        let before = count(&cluster, ApiKey::Fetch);
        let metadata_before = count(&cluster, ApiKey::Metadata);
        cluster.inject(
            Fault::error(ApiKey::Fetch, ErrorCode::NotLeaderOrFollower)
                .on_partition(TOPIC, 0)
                .times(REFUSALS),
        );
        write(&cluster, 0, 4..N, 4).await;
        r.extend(consume(&mut consumer, 4).await);
        assert_quiet(&mut consumer).await;
        (r, before, metadata_before)
    })
    .await
    .expect("hung");
    assert_records(&records, 0, 0..N);

    // The refused fetches are the first REFUSALS after the fault was set; each retry waited
    // out retry.backoff.ms (100 ms, -20 % jitter at worst, more as it grows).
    let times: Vec<std::time::Instant> = cluster
        .requests()
        .iter()
        .filter(|r| r.api == ApiKey::Fetch)
        .skip(before)
        .map(|r| r.at)
        .collect();
    let refused = REFUSALS as usize;
    assert!(times.len() > refused, "{} fetches after the fault", times.len());
    let gaps: Vec<Duration> = times[..=refused].windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.iter().all(|g| *g >= Duration::from_millis(80)),
        "fetches retried {gaps:?} apart"
    );
    let metadata = count(&cluster, ApiKey::Metadata) - metadata_before;
    assert!(
        metadata <= refused + 3,
        "{metadata} Metadata requests for {refused} refusals"
    );
}

/// Walks the fetches of a one-broker consumer of partitions 0 and 1 and checks KIP-227:
/// a full request (epoch 0, every assigned partition) opens a session, each next request is
/// incremental (the session's next epoch, only partitions whose position moved, never an
/// offset going back), and a full request comes only after the session was lost. Returns
/// the index of each full request.
fn check_sessions(calls: &[(i32, i16, FetchDetail)]) -> Vec<usize> {
    let mut full = Vec::new();
    let mut session: Option<(i32, i32)> = None;
    let mut positions: std::collections::BTreeMap<i32, i64> = Default::default();
    for (i, (_, _, f)) in calls.iter().enumerate() {
        if f.session_epoch == 0 {
            full.push(i);
            for p in &f.partitions {
                if let Some(&was) = positions.get(&p.partition) {
                    assert!(p.fetch_offset >= was, "fetch #{i} went back: {f:?}");
                }
                positions.insert(p.partition, p.fetch_offset);
            }
            session = None;
            continue;
        }
        let (id, epoch) = match session {
            // The session the previous full request opened: its id is first seen here.
            None => (f.session_id, 0),
            Some(s) => s,
        };
        assert_eq!(
            (f.session_id, f.session_epoch),
            (id, epoch + 1),
            "fetch #{i} is not the session's next: {f:?}"
        );
        session = Some((id, f.session_epoch));
        for p in &f.partitions {
            let was = positions.insert(p.partition, p.fetch_offset);
            assert!(
                was.is_none_or(|w| p.fetch_offset > w),
                "fetch #{i} lists partition {} whose position did not move: {f:?}",
                p.partition
            );
        }
    }
    full
}

async fn fetch_sessions(fetch_max: i16) {
    let cluster = FakeCluster::builder()
        .topic(TOPIC, 2, 1)
        .max_version(ApiKey::Fetch, fetch_max)
        .start()
        .await
        .unwrap();
    write(&cluster, 0, 0..12, 3).await;
    let mut consumer = Consumer::new(config(&cluster)).await.unwrap();
    consumer.assign([tp(0), tp(1)]).unwrap();
    consumer.seek(&tp(0), 0).unwrap();
    consumer.seek(&tp(1), 0).unwrap();

    let records = tokio::time::timeout(LIMIT, async {
        let mut r = consume(&mut consumer, 3).await;
        // The session is evicted: the next fetch is refused for it.
        cluster.inject(Fault::error(ApiKey::Fetch, ErrorCode::FetchSessionIdNotFound));
        r.extend(consume(&mut consumer, 9).await);
        r
    })
    .await
    .expect("hung");
    assert_records(&records, 0, 0..12);
    let calls = fetches(&cluster);
    let full = check_sessions(&calls);
    assert_eq!(
        full.len(),
        2,
        "one full fetch at the start and one after the lost session: {calls:?}"
    );
    for i in &full {
        let parts: Vec<i32> = calls[*i].2.partitions.iter().map(|p| p.partition).collect();
        assert_eq!(
            parts,
            [0, 1],
            "a full fetch lists every assigned partition: {:?}",
            calls[*i]
        );
    }
    assert_eq!(full[0], 0);
    assert!(
        calls[full[1]].2.partitions[0].fetch_offset >= 3,
        "from the same positions"
    );

    // p1 leaves the assignment: the session forgets it; then p0 gets more data.
    consumer.assign([tp(0)]).unwrap();
    let more = tokio::time::timeout(LIMIT, async {
        let t = tokio::time::Instant::now() + Duration::from_millis(300);
        while tokio::time::Instant::now() < t {
            assert!(consumer.poll(Duration::from_millis(100)).await.unwrap().is_empty());
        }
        write(&cluster, 0, 12..15, 3).await;
        let r = consume(&mut consumer, 3).await;
        assert_quiet(&mut consumer).await;
        r
    })
    .await
    .expect("hung");
    assert_records(&more, 0, 12..15);

    let calls = fetches(&cluster);
    for (node, version, _) in &calls {
        assert_eq!((*node, *version), (1, fetch_max));
    }
    assert_eq!(
        check_sessions(&calls).len(),
        2,
        "no full fetch after the reset: {calls:?}"
    );
    let with_forgotten: Vec<usize> = (0..calls.len()).filter(|&i| !calls[i].2.forgotten.is_empty()).collect();
    assert_eq!(with_forgotten.len(), 1, "{calls:#?}");
    let f = &calls[with_forgotten[0]].2;
    assert_eq!(f.forgotten, [(TOPIC.to_owned(), 1)]);
    assert_eq!(f.by_topic_id, fetch_max >= 13);
    for (_, _, c) in &calls[with_forgotten[0]..] {
        assert!(c.partitions.iter().all(|p| p.partition == 0), "{c:?}");
    }
    let m = consumer.metrics();
    assert_eq!(m.fetch_session_resets, 1);
    assert!(m.incremental_fetches >= 4, "{m:?}");
}

#[tokio::test]
async fn fetch_sessions_by_topic_name_v12() {
    fetch_sessions(12).await;
}

#[tokio::test]
async fn fetch_sessions_by_topic_id_v16() {
    fetch_sessions(16).await;
}

/// After a failed Fetch (here a lost session) the broker is backed off for `retry.backoff.ms`
/// (10 ms); a poll with a long timeout must fetch again when that expires, not sit out its
/// whole timeout with no fetch in flight.
#[tokio::test]
async fn a_lost_fetch_session_does_not_stall_a_long_poll() {
    let cluster = FakeCluster::builder().topic(TOPIC, 1, 1).start().await.unwrap();
    write(&cluster, 0, 0..9, 3).await;
    let mut consumer = Consumer::new(config(&cluster)).await.unwrap();
    consumer.assign([tp(0)]).unwrap();
    consumer.seek(&tp(0), 0).unwrap();
    let mut records = tokio::time::timeout(LIMIT, consume(&mut consumer, 3))
        .await
        .expect("hung");
    cluster.inject(Fault::error(ApiKey::Fetch, ErrorCode::FetchSessionIdNotFound));
    tokio::time::timeout(Duration::from_secs(3), async {
        while records.len() < 9 {
            records.extend(consumer.poll(Duration::from_secs(10)).await.unwrap());
        }
    })
    .await
    .expect("poll(10 s) stalled after the lost session instead of refetching after retry.backoff (10 ms)");
    assert_records(&records, 0, 0..9);
    assert_eq!(consumer.metrics().fetch_session_resets, 1);
}

/// Records 0..3 in a good batch, then 3..6 in a batch whose last value byte was flipped
/// after its CRC was computed (`v5` reads `v4`).
async fn corrupt_cluster() -> FakeCluster {
    let cluster = FakeCluster::builder().topic(TOPIC, 1, 1).start().await.unwrap();
    write(&cluster, 0, 0..6, 3).await;
    let flipped = cluster.edit_batch(TOPIC, 0, 3, |b| {
        let at = b.len() - 2; // the last byte is the header count
        assert_eq!(b[at], b'5');
        b[at] ^= 1;
    });
    assert!(flipped);
    cluster
}

#[tokio::test]
async fn a_batch_failing_its_crc_is_an_error_naming_partition_and_offset() {
    let cluster = corrupt_cluster().await;
    let mut consumer = Consumer::new(config(&cluster)).await.unwrap();
    consumer.assign([tp(0)]).unwrap();
    consumer.seek(&tp(0), 0).unwrap();

    let (records, errors) = tokio::time::timeout(LIMIT, async {
        let mut records = Vec::new();
        let mut errors = Vec::new();
        // The good records first, then the error; polling again fails again (the same
        // bytes come back), never skipping past the bad batch.
        while errors.len() < 2 {
            match consumer.poll(Duration::from_millis(200)).await {
                Ok(r) => records.extend(r),
                Err(e) => errors.push(e.to_string()),
            }
        }
        (records, errors)
    })
    .await
    .expect("hung");
    assert_records(&records, 0, 0..3);
    for e in &errors {
        assert!(e.contains("t-0") && e.contains("offset 3"), "{e}");
        assert!(e.to_lowercase().contains("crc"), "{e}");
    }
    assert_eq!(consumer.position(&tp(0)).await.unwrap(), 3);
}

#[tokio::test]
async fn without_check_crcs_the_corrupt_batch_is_returned_as_is() {
    let cluster = corrupt_cluster().await;
    let mut cfg = config(&cluster);
    cfg.check_crcs = false;
    let mut consumer = Consumer::new(cfg).await.unwrap();
    consumer.assign([tp(0)]).unwrap();
    consumer.seek(&tp(0), 0).unwrap();

    let records = tokio::time::timeout(LIMIT, async {
        let r = consume(&mut consumer, 6).await;
        assert_quiet(&mut consumer).await;
        r
    })
    .await
    .expect("hung");
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..6).collect::<Vec<_>>());
    assert_records(&records[..5], 0, 0..5);
    assert_eq!(records[5].value.as_deref(), Some(&b"v4"[..]));
    assert_eq!(records[5].key.as_deref(), Some(&b"k5"[..]));
}

/// A compressed batch whose codec header was overwritten after its CRC was computed (as a
/// disk fault would): with CRC checks the batch fails them; without, decompression fails.
/// Either way the error names the partition and the batch's offset, the records before it
/// come through, and polling again never skips the batch. Every codec.
#[tokio::test]
async fn a_corrupt_compressed_batch_is_an_error_with_or_without_crc_checks() {
    for codec in ["gzip", "snappy", "lz4", "zstd"] {
        let cluster = FakeCluster::builder().topic(TOPIC, 1, 1).start().await.unwrap();
        write(&cluster, 0, 0..3, 3).await;
        let mut cfg = ProducerConfig::new(cluster.bootstrap_servers());
        cfg.set("compression.type", codec).unwrap();
        let producer = Producer::new(cfg).await.unwrap();
        let mut pending = Vec::new();
        for o in 3..6 {
            // Compressible: a batch is kept compressed only when that makes it smaller.
            let value = format!("v{o}-{}", "x".repeat(300));
            let r = ProducerRecord::new(TOPIC, value).key(format!("k{o}")).partition(0);
            pending.push(producer.send(r).await.unwrap());
        }
        for d in pending {
            d.await.unwrap();
        }
        producer.close().await.unwrap();
        // The records start after the 61-byte batch header: its first bytes are the codec's
        // own header (magic number, stream identifier).
        let edited = cluster.edit_batch(TOPIC, 0, 3, |b| {
            assert_ne!(b[22] & 0x07, 0, "{codec}: the batch is compressed: {:?}", &b[..30]);
            for x in &mut b[61..65] {
                *x ^= 0xff;
            }
        });
        assert!(edited, "{codec}");
        for check_crcs in [true, false] {
            let mut cc = config(&cluster);
            cc.check_crcs = check_crcs;
            let mut consumer = Consumer::new(cc).await.unwrap();
            consumer.assign([tp(0)]).unwrap();
            consumer.seek(&tp(0), 0).unwrap();
            let (records, errors) = tokio::time::timeout(LIMIT, async {
                let (mut records, mut errors) = (Vec::new(), Vec::new());
                while errors.len() < 2 {
                    match consumer.poll(Duration::from_millis(200)).await {
                        Ok(r) => records.extend(r),
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                (records, errors)
            })
            .await
            .unwrap_or_else(|_| panic!("{codec}, check.crcs={check_crcs}: hung"));
            assert_records(&records, 0, 0..3);
            for e in &errors {
                assert!(
                    e.contains("t-0") && e.contains("offset 3"),
                    "{codec}, check.crcs={check_crcs}: {e}"
                );
                if check_crcs {
                    assert!(e.to_lowercase().contains("crc"), "{codec}: {e}");
                }
            }
            assert_eq!(consumer.position(&tp(0)).await.unwrap(), 3, "{codec}");
        }
    }
}
