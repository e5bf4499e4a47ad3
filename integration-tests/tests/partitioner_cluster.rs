//! Adaptive partitioning (KIP-794) against a real 3-broker cluster: while one broker is
//! frozen (SIGSTOP: its sockets stay open, nothing answers, as in a long GC pause or a dead
//! disk), records without a key go elsewhere. With adaptive partitioning the frozen
//! leader's partitions get clearly fewer of them; with `partitioner.availability.timeout.ms`
//! they get none once the timeout has passed. Nothing is lost either way: the frozen
//! broker's batches land when it comes back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strom_client::{Admin, Client, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use strom_integration_tests::{signal_process, unique_topic, PrivateBroker};

const PORT_BASE: u16 = 22392;
const RATE: u64 = 10_000;
const RECORD: usize = 200;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Every record's (partition, CreateTime) in the topic.
async fn timestamps(client: &Client, topic: &str) -> Vec<(i32, i64)> {
    strom_integration_tests::read_to_end(client, topic, false)
        .await
        .iter()
        .map(|r| (r.partition, r.timestamp))
        .collect()
}

struct Run {
    /// (partition, CreateTime) of every record.
    records: Vec<(i32, i64)>,
    /// Partitions led by the frozen broker.
    frozen: Vec<i32>,
    pause_at: i64,
    resume_at: i64,
}

/// Sends null-key records at RATE/s for `total`, freezing the broker that leads some of the
/// topic's partitions from `pause` to `pause + frozen_for`; every delivery must succeed.
async fn run(
    cluster: &PrivateBroker,
    mut cfg: ProducerConfig,
    pause: Duration,
    frozen_for: Duration,
    total: Duration,
) -> Run {
    let admin = Admin::connect(ClientConfig::new(&cluster.bootstrap)).await.unwrap();
    let topic = unique_topic("adaptive");
    // Replication factor 1: with followers on the frozen broker, acks=all would stall every
    // partition until the ISR shrinks; this test is about leaders only.
    admin
        .create_topics(&[NewTopic::new(&topic, 6).replication_factor(1)])
        .await
        .unwrap();
    let client = Client::connect(ClientConfig::new(&cluster.bootstrap)).await.unwrap();
    let info = client.topic(&topic).await.unwrap();
    // Freeze a node other than node 1 (its listeners are what the harness probes) that
    // leads partitions. The quorum keeps its majority without it.
    let mut led: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for p in &info.partitions {
        led.entry(p.leader).or_default().push(p.partition);
    }
    let (node, frozen) = led
        .iter()
        .filter(|(n, _)| **n != 1)
        .max_by_key(|(_, ps)| ps.len())
        .map(|(n, ps)| (*n, ps.clone()))
        .expect("no partition led by node 2 or 3");
    eprintln!("freezing node {node}, leader of partitions {frozen:?}");

    // Looked up now: `scripts/kafka env` takes a while, and the send loop must keep its pace.
    let pid = cluster.node_pid(node as u8);
    cfg.client.bootstrap_servers = cluster.bootstrap.split(',').map(str::to_owned).collect();
    let producer = Producer::new(cfg).await.unwrap();
    let value = bytes::Bytes::from(vec![b'v'; RECORD]);
    let started = Instant::now();
    let mut pending = Vec::new();
    let (mut pause_at, mut resume_at) = (None, None);
    let mut sent: u64 = 0;
    while started.elapsed() < total {
        let elapsed = started.elapsed();
        if pause_at.is_none() && elapsed >= pause {
            signal_process(pid, "STOP");
            pause_at = Some(now_ms());
        }
        if pause_at.is_some() && resume_at.is_none() && elapsed >= pause + frozen_for {
            signal_process(pid, "CONT");
            resume_at = Some(now_ms());
        }
        for _ in 0..RATE / 100 {
            pending.push(producer.send(ProducerRecord::new(&topic, value.clone())).await.unwrap());
        }
        sent += RATE / 100;
        tokio::time::sleep_until((started + Duration::from_millis(sent * 1000 / RATE)).into()).await;
    }
    if resume_at.is_none() {
        signal_process(pid, "CONT");
        resume_at = Some(now_ms());
    }
    let n = pending.len();
    for f in pending {
        f.await.expect("a record was not delivered");
    }
    let records = timestamps(&client, &topic).await;
    assert_eq!(records.len(), n, "records lost or duplicated");
    Run {
        records,
        frozen,
        pause_at: pause_at.unwrap(),
        resume_at: resume_at.unwrap(),
    }
}

impl Run {
    /// Records created in [from, to) ms: (on the frozen leader's partitions, all).
    fn share(&self, from: i64, to: i64) -> (usize, usize) {
        let window: Vec<_> = self.records.iter().filter(|(_, t)| *t >= from && *t < to).collect();
        let frozen = window.iter().filter(|(p, _)| self.frozen.contains(p)).count();
        (frozen, window.len())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_leader_gets_fewer_records_and_none_past_the_availability_timeout() {
    let cluster = PrivateBroker::start_cluster(PORT_BASE, 3);
    let pause = Duration::from_secs(2);
    let frozen_for = Duration::from_secs(4);
    let total = Duration::from_secs(9);

    // Adaptive partitioning only (Java's defaults): the frozen leader's queues grow, so its
    // partitions are picked less and less.
    let adaptive = run(&cluster, ProducerConfig::default(), pause, frozen_for, total).await;
    let fair = adaptive.frozen.len() as f64 / 6.0;
    let (before_f, before_n) = adaptive.share(0, adaptive.pause_at);
    let (during_f, during_n) = adaptive.share(adaptive.pause_at + 1000, adaptive.resume_at);
    eprintln!(
        "adaptive: frozen partitions {:?} (fair share {fair:.2}): before the pause {before_f}/{before_n}, \
         frozen (after 1 s) {during_f}/{during_n}",
        adaptive.frozen
    );
    assert!(during_n > 10_000, "too few records sent while frozen: {during_n}");
    let share = during_f as f64 / during_n as f64;
    assert!(
        share < fair / 3.0,
        "the frozen leader's partitions still got {share:.3} of the records (fair share {fair:.2})"
    );

    // With partitioner.availability.timeout.ms: none once the timeout passed (plus the time
    // the current sticky partition takes to switch, 2 x batch.size at this rate: ~20 ms).
    let mut cfg = ProducerConfig::default();
    cfg.partitioner_availability_timeout = Duration::from_millis(500);
    let timed = run(&cluster, cfg, pause, frozen_for, total).await;
    let (during_f, during_n) = timed.share(timed.pause_at + 1000, timed.resume_at);
    let (after_f, after_n) = timed.share(timed.resume_at + 1000, i64::MAX);
    eprintln!(
        "availability timeout 500 ms: frozen partitions {:?}: frozen (after 1 s) {during_f}/{during_n}, \
         from 1 s after the resume {after_f}/{after_n}",
        timed.frozen
    );
    assert!(during_n > 10_000, "too few records sent while frozen: {during_n}");
    assert_eq!(during_f, 0, "records went to the unavailable leader's partitions");
    // Back in use once it answers again.
    assert!(after_f > 0, "the partitions of the resumed leader got nothing");
}
