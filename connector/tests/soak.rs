//! The chaos soak (`scripts/soak MINUTES` runs it; ignored in a normal `cargo test`): on a
//! private three-node cluster, for MINUTES,
//!
//! * an idempotent producer (acks=all) writes numbered records to topic P at a steady rate;
//! * a consumer group of three Strom members (KIP-848) reads P and commits every second;
//! * the exactly-once pipeline (this test binary re-executed as a child: P uppercased into
//!   Q, file checkpoints every second, offsets committed on checkpoint) runs unbounded;
//!
//! while one loop SIGKILLs a random broker every 20-60 s and starts it again 5-15 s later,
//! and another SIGKILLs the pipeline process every 30-90 s and starts a new one from its
//! checkpoints. At the end every record is accounted for: P holds every acknowledged
//! record exactly once (idempotence), the group saw every record of P at least once, and Q
//! read with read_committed holds every record of P exactly once. The RSS of the process
//! running the producer and the group is sampled every 30 s and must stay flat (the last
//! samples within 1.5x those of minutes 1.5-3, after warm-up); the pipeline process's too,
//! across its runs (no sample above 3x the median). Prints one `soak result:` line.
//!
//! `STROM_SOAK_MINUTES` (default 10), `STROM_SOAK_RATE` records/s (default 500),
//! `STROM_SOAK_SEED` replays a kill schedule, `STROM_SOAK_PORT_BASE` (default 27000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, GroupProtocol, IsolationLevel, NewTopic, OffsetSpec, Producer,
    ProducerConfig, ProducerRecord, TopicPartition,
};
use strom_connector::checkpoint::FileCheckpointStore;
use strom_connector::pipeline::Pipeline;
use strom_connector::sink::{DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, StringSerializer};
use strom_connector::source::{deserializer, KafkaSource, OffsetsInitializer};
use strom_integration_tests::{child_env as env, child_runtime, unique_topic, wait_no_open_transaction, PrivateBroker};

const CHILD_ENV: &str = "STROM_SOAK_CHILD";
const PARTITIONS: i32 = 6;

fn var<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// The pipeline child.

async fn child_pipeline() -> strom_connector::Result<()> {
    let bootstrap = env("STROM_SOAK_BOOTSTRAP");
    let output = env("STROM_SOAK_OUTPUT");
    let source = KafkaSource::builder()
        .bootstrap_servers(&bootstrap)
        .topics([env("STROM_SOAK_INPUT")])
        .group_id(env("STROM_SOAK_PIPELINE_GROUP"))
        .starting_offsets(OffsetsInitializer::earliest())
        .deserializer(deserializer::string())
        .build()?;
    let sink = KafkaSink::<String>::builder()
        .bootstrap_servers(&bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic(&output)
                .value_serializer(StringSerializer)
                .build()?,
        )
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix(format!("soak-{output}"))
        .transaction_timeout(Duration::from_secs(120))
        .build()?;
    Pipeline::new(source, sink)
        .map(|v: String| v.to_uppercase())
        .checkpoint_interval(Duration::from_secs(1))
        .checkpoint_store(FileCheckpointStore::new(env("STROM_SOAK_DIR"))?)
        .run()
        .await?;
    Ok(())
}

/// Child-process entry point; does nothing in a normal test run.
#[test]
fn soak_child() {
    let Some(rt) = child_runtime(CHILD_ENV) else {
        return;
    };
    let code = match rt.block_on(child_pipeline()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("soak pipeline failed: {e}");
            3
        }
    };
    std::process::exit(code);
}

struct PipelineProcess {
    vars: Vec<(&'static str, String)>,
    dir: std::path::PathBuf,
    child: Option<Child>,
    runs: u32,
    /// Runs that ended by themselves (not killed): each is a failure the pipeline recovered
    /// from by restarting, as a supervisor would; the log says why.
    exits: Vec<String>,
}

impl PipelineProcess {
    fn spawn(&mut self) {
        self.runs += 1;
        let log = File::create(self.dir.join(format!("pipeline-{}.log", self.runs))).unwrap();
        let mut cmd = Command::new(std::env::current_exe().unwrap());
        cmd.args(["soak_child", "--exact", "--nocapture", "--test-threads", "1"])
            .env(CHILD_ENV, "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        for (k, v) in &self.vars {
            cmd.env(k, v);
        }
        self.child = Some(cmd.spawn().unwrap());
    }

    /// Restarts the child if it ended by itself.
    fn supervise(&mut self) {
        let Some(c) = self.child.as_mut() else { return };
        if let Some(status) = c.try_wait().unwrap() {
            let log = self.dir.join(format!("pipeline-{}.log", self.runs));
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let last = text
                .lines()
                .rev()
                .find(|l| l.contains("failed"))
                .unwrap_or("")
                .to_owned();
            self.exits.push(format!("run {}: {status}: {last}", self.runs));
            self.spawn();
        }
    }

    /// The RSS of the running pipeline process.
    fn rss_kib(&self) -> Option<u64> {
        let pid = self.child.as_ref()?.id();
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()?
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let status = c.wait().unwrap();
            if status.signal() != Some(9) {
                self.exits.push(format!("run {}: {status} before the kill", self.runs));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The parent.

/// xorshift64*: reproducible from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

/// The sequence numbers seen, one bit each, and how many were seen more than once: the
/// bookkeeping of 1.8 million records an hour must not itself grow the RSS being measured
/// (a `BTreeMap` entry per record did, by about 1 MiB a minute).
#[derive(Default)]
struct Seen {
    bits: Vec<u64>,
    duplicates: u64,
}

impl Seen {
    fn insert(&mut self, n: u64) {
        let (word, bit) = ((n / 64) as usize, 1u64 << (n % 64));
        if word >= self.bits.len() {
            self.bits.resize((word + 1).next_power_of_two(), 0);
        }
        if self.bits[word] & bit != 0 {
            self.duplicates += 1;
        }
        self.bits[word] |= bit;
    }
    fn contains(&self, n: u64) -> bool {
        self.bits
            .get((n / 64) as usize)
            .is_some_and(|w| w & (1u64 << (n % 64)) != 0)
    }
    fn len(&self) -> u64 {
        self.bits.iter().map(|w| u64::from(w.count_ones())).sum()
    }
    fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.bits.iter().enumerate().flat_map(|(i, w)| {
            (0..64)
                .filter(move |b| w & (1u64 << b) != 0)
                .map(move |b| i as u64 * 64 + b)
        })
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn seq(value: &str) -> u64 {
    value
        .rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("not a soak record: {value:?}"))
}

/// Every value of `topic` up to its end (read_committed waits for no open transaction).
async fn read_all(cfg: &ClientConfig, topic: &str, read_committed: bool) -> Vec<String> {
    let admin = Admin::connect(cfg.clone()).await.unwrap();
    if read_committed {
        wait_no_open_transaction(&admin, topic, Duration::from_secs(180)).await;
    }
    let mut cc = ConsumerConfig::from_client(cfg.clone());
    cc.isolation_level = if read_committed {
        IsolationLevel::ReadCommitted
    } else {
        IsolationLevel::ReadUncommitted
    };
    let mut c = Consumer::new(cc).await.unwrap();
    let tps: Vec<TopicPartition> = (0..PARTITIONS).map(|p| TopicPartition::new(topic, p)).collect();
    c.assign(tps.clone()).unwrap();
    c.seek_to_beginning(&[]).unwrap();
    let end = c.end_offsets(&tps).await.unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut done = true;
        for tp in &tps {
            done &= c.position(tp).await.unwrap() >= end[tp];
        }
        if done {
            return out;
        }
        assert!(Instant::now() < deadline, "reading {topic} did not reach {end:?}");
        for r in c.poll(Duration::from_millis(200)).await.unwrap() {
            out.push(String::from_utf8(r.value.unwrap().to_vec()).unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "long: run by scripts/soak MINUTES"]
async fn soak() {
    let minutes: u64 = var("STROM_SOAK_MINUTES", 10);
    let rate: u64 = var("STROM_SOAK_RATE", 500);
    let port_base: u16 = var("STROM_SOAK_PORT_BASE", 27000);
    let seed: u64 = var(
        "STROM_SOAK_SEED",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1,
    );
    let run_for = Duration::from_secs(minutes * 60);
    let started = Instant::now();
    println!("soak: {minutes} min, {rate} records/s, seed {seed}, cluster at port base {port_base}");
    let cluster = PrivateBroker::start_cluster(port_base, 3);
    let mut cfg = ClientConfig::new(&cluster.bootstrap);
    cfg.bootstrap_servers = cluster.bootstrap.split(',').map(str::to_owned).collect();
    let admin = Admin::connect(cfg.clone()).await.unwrap();
    let (p_topic, q_topic) = (unique_topic("soak-p"), unique_topic("soak-q"));
    admin
        .create_topics(&[NewTopic::new(&p_topic, PARTITIONS), NewTopic::new(&q_topic, PARTITIONS)])
        .await
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));

    // The producer: numbered records at `rate`, acknowledged and failed ones remembered.
    let acked = Arc::new(Mutex::new(Seen::default()));
    let failed = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let sent = Arc::new(AtomicU64::new(0));
    let producer = {
        let mut pc = ProducerConfig::from_client(cfg.clone());
        pc.set("linger.ms", "5").unwrap();
        let producer = Producer::new(pc).await.unwrap();
        let (stop, acked, failed, sent, topic) = (
            stop.clone(),
            acked.clone(),
            failed.clone(),
            sent.clone(),
            p_topic.clone(),
        );
        tokio::spawn(async move {
            let start = Instant::now();
            let mut deliveries = futures_util::stream::FuturesUnordered::new();
            let mut i = 0u64;
            use futures_util::StreamExt;
            while !stop.load(Ordering::Relaxed) {
                let due = start + Duration::from_micros(i * 1_000_000 / rate);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    tokio::time::sleep(wait).await;
                }
                let record = ProducerRecord::new(&topic, format!("p-{i:09}")).key(format!("k{}", i % 97));
                match producer.send(record).await {
                    Ok(d) => deliveries.push(async move { (i, d.await) }),
                    Err(e) => failed.lock().unwrap().push((i, e.to_string())),
                }
                i += 1;
                sent.store(i, Ordering::Relaxed);
                while let Some(Some((n, r))) = futures_util::FutureExt::now_or_never(deliveries.next()) {
                    match r {
                        Ok(_) => acked.lock().unwrap().insert(n),
                        Err(e) => failed.lock().unwrap().push((n, e.to_string())),
                    }
                }
            }
            while let Some((n, r)) = deliveries.next().await {
                match r {
                    Ok(_) => acked.lock().unwrap().insert(n),
                    Err(e) => failed.lock().unwrap().push((n, e.to_string())),
                }
            }
            producer.close().await.unwrap();
        })
    };

    // The group: three members, each counting what it saw and committing every second.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let group = unique_topic("soak-group");
    let group_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let stop_group = Arc::new(AtomicBool::new(false));
    let mut members = Vec::new();
    for m in 0..3 {
        let mut cc = ConsumerConfig::from_client(cfg.clone());
        cc.group_id = Some(group.clone());
        cc.group_protocol = GroupProtocol::Consumer;
        cc.enable_auto_commit = false;
        cc.set("auto.offset.reset", "earliest").unwrap();
        let (seen, errors, stop, topic) = (seen.clone(), group_errors.clone(), stop_group.clone(), p_topic.clone());
        members.push(tokio::spawn(async move {
            let mut consumer = Consumer::new(cc.clone()).await.unwrap();
            consumer.subscribe(&[topic.as_str()]).unwrap();
            let mut last_commit = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                match consumer.poll(Duration::from_millis(500)).await {
                    Ok(records) => {
                        let mut s = seen.lock().unwrap();
                        for r in &records {
                            let v = std::str::from_utf8(r.value.as_deref().unwrap()).unwrap();
                            s.insert(seq(v));
                        }
                    }
                    Err(e) => {
                        errors.lock().unwrap().push(format!("member {m} poll: {e}"));
                        if e.is_fatal() {
                            // A new member, as an application would do.
                            let _ = consumer.close().await;
                            consumer = Consumer::new(cc.clone()).await.unwrap();
                            consumer.subscribe(&[topic.as_str()]).unwrap();
                        }
                    }
                }
                if last_commit.elapsed() >= Duration::from_secs(1) {
                    last_commit = Instant::now();
                    if let Err(e) = consumer.commit_sync().await {
                        errors.lock().unwrap().push(format!("member {m} commit: {e}"));
                    }
                }
            }
            let _ = consumer.close().await;
        }));
    }

    // The pipeline process.
    let dir = std::env::temp_dir().join(format!("strom-{q_topic}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut pipeline = PipelineProcess {
        vars: vec![
            ("STROM_SOAK_BOOTSTRAP", cluster.bootstrap.clone()),
            ("STROM_SOAK_INPUT", p_topic.clone()),
            ("STROM_SOAK_OUTPUT", q_topic.clone()),
            ("STROM_SOAK_PIPELINE_GROUP", unique_topic("soak-pipe")),
            ("STROM_SOAK_DIR", dir.join("checkpoints").display().to_string()),
        ],
        dir: dir.clone(),
        child: None,
        runs: 0,
        exits: Vec::new(),
    };
    pipeline.spawn();

    // The chaos: broker kills and pipeline kills on their own schedules.
    let mut rng = Rng(seed);
    let mut broker_kills = 0u32;
    let mut pipeline_kills = 0u32;
    let mut next_broker_kill = Instant::now() + Duration::from_secs(rng.range(20, 60));
    let mut next_pipeline_kill = Instant::now() + Duration::from_secs(rng.range(30, 90));
    let mut down: Option<(u8, Instant)> = None;
    let mut rss = Vec::new();
    let mut pipeline_rss = Vec::new();
    let mut next_rss = Instant::now() + Duration::from_secs(30);
    while started.elapsed() < run_for {
        tokio::time::sleep(Duration::from_millis(200)).await;
        pipeline.supervise();
        let now = Instant::now();
        if let Some((node, back_at)) = down {
            if now >= back_at {
                let c = &cluster;
                tokio::task::block_in_place(|| c.node("start", node));
                down = None;
                next_broker_kill = Instant::now() + Duration::from_secs(rng.range(20, 60));
            }
        } else if now >= next_broker_kill {
            let node = rng.range(1, 3) as u8;
            let c = &cluster;
            tokio::task::block_in_place(|| c.node("kill", node));
            broker_kills += 1;
            println!(
                "  {:>5.0}s: SIGKILL broker {node} (kill {broker_kills})",
                started.elapsed().as_secs_f64()
            );
            down = Some((node, now + Duration::from_secs(rng.range(5, 15))));
        }
        if now >= next_pipeline_kill {
            pipeline.kill();
            pipeline_kills += 1;
            println!(
                "  {:>5.0}s: SIGKILL pipeline run {} (kill {pipeline_kills})",
                started.elapsed().as_secs_f64(),
                pipeline.runs
            );
            pipeline.spawn();
            next_pipeline_kill = now + Duration::from_secs(rng.range(30, 90));
        }
        if now >= next_rss {
            rss.push(rss_kib());
            let p = pipeline.rss_kib();
            pipeline_rss.extend(p);
            println!(
                "  {:>5.0}s: rss {} KiB, pipeline run {} rss {p:?} KiB",
                started.elapsed().as_secs_f64(),
                rss[rss.len() - 1],
                pipeline.runs
            );
            next_rss = now + Duration::from_secs(30);
        }
    }
    if let Some((node, _)) = down {
        tokio::task::block_in_place(|| cluster.node("start", node));
    }
    println!("  {:.0}s: chaos over; draining", started.elapsed().as_secs_f64());
    stop.store(true, Ordering::Relaxed);
    tokio::time::timeout(Duration::from_secs(180), producer)
        .await
        .expect("the producer did not finish its deliveries within 180 s")
        .unwrap();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let failed = std::mem::take(&mut *failed.lock().unwrap());
    let sent = sent.load(Ordering::Relaxed);

    // P: every acknowledged record exactly once.
    let p_values = read_all(&cfg, &p_topic, false).await;
    let mut in_p: BTreeMap<u64, u32> = BTreeMap::new();
    for v in &p_values {
        *in_p.entry(seq(v)).or_default() += 1;
    }
    let p_dups: u32 = in_p.values().map(|c| c - 1).sum();
    let p_lost = acked.iter().filter(|s| !in_p.contains_key(s)).count();

    // The group: every record of P at least once, within 3 minutes of the end.
    let deadline = Instant::now() + Duration::from_secs(180);
    let group_missing = loop {
        let missing = {
            let s = seen.lock().unwrap();
            in_p.keys().filter(|k| !s.contains(**k)).count()
        };
        if missing == 0 || Instant::now() >= deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    stop_group.store(true, Ordering::Relaxed);
    for m in members {
        let _ = tokio::time::timeout(Duration::from_secs(60), m).await;
    }
    let group_dups = seen.lock().unwrap().duplicates;

    // Q: the pipeline catches up (its committed source offsets reach P's end), then it is
    // stopped and Q read with read_committed must hold P exactly once.
    let p_end: BTreeMap<i32, i64> = admin
        .list_offsets(&p_topic, &[], OffsetSpec::Latest)
        .await
        .unwrap()
        .into_iter()
        .map(|l| (l.partition, l.offset))
        .collect();
    let pipe_group = pipeline.vars[3].1.clone();
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        pipeline.supervise();
        let committed = admin.group_offsets(&pipe_group).await.unwrap_or_default();
        let caught_up = p_end
            .iter()
            .all(|(p, end)| committed.get(&(p_topic.clone(), *p)).is_some_and(|c| c >= end));
        if caught_up {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the pipeline did not catch up with P within 300 s: committed {committed:?}, end {p_end:?}"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // One more checkpoint interval so the commit that went with those offsets is done.
    tokio::time::sleep(Duration::from_secs(3)).await;
    pipeline.kill();
    let q_values = read_all(&cfg, &q_topic, true).await;
    let mut in_q: BTreeMap<u64, u32> = BTreeMap::new();
    for v in &q_values {
        assert!(v.starts_with("P-"), "not an uppercased soak record: {v:?}");
        *in_q.entry(seq(v)).or_default() += 1;
    }
    let q_dups: u32 = in_q.values().map(|c| c - 1).sum();
    let q_lost = in_p.keys().filter(|k| !in_q.contains_key(k)).count();
    let q_unexpected = in_q.keys().filter(|k| !in_p.contains_key(k)).count();

    let warm = rss.iter().skip(3).take(3).copied().max().unwrap_or(0);
    let last = rss.iter().rev().take(3).copied().min().unwrap_or(0);
    let group_errors = std::mem::take(&mut *group_errors.lock().unwrap());
    for e in group_errors.iter().take(10) {
        println!("  group error: {e}");
    }
    let group_errors = group_errors.len();
    println!(
        "soak result: minutes={minutes} broker_kills={broker_kills} pipeline_kills={pipeline_kills} \
         pipeline_runs={} pipeline_self_exits={} | producer sent={sent} acked={} failed={} | \
         P records={} duplicates={p_dups} lost_acked={p_lost} | group missing={group_missing} \
         duplicates={group_dups} errors={group_errors} | Q (read_committed) records={} duplicates={q_dups} \
         lost={q_lost} unexpected={q_unexpected} | rss_kib first={warm} last={last} samples={rss:?} | \
         pipeline rss_kib max={} samples={pipeline_rss:?} | \
         {:.0}s, seed {seed}",
        pipeline.runs,
        pipeline.exits.len(),
        acked.len(),
        failed.len(),
        p_values.len(),
        q_values.len(),
        pipeline_rss.iter().max().copied().unwrap_or(0),
        started.elapsed().as_secs_f64()
    );
    for e in pipeline.exits.iter().take(10) {
        println!("  pipeline exit: {e}");
    }
    for (n, e) in failed.iter().take(10) {
        println!("  failed delivery {n}: {e}");
    }
    assert_eq!(
        (p_dups, p_lost),
        (0, 0),
        "P: idempotent producer duplicates / acknowledged records lost"
    );
    assert_eq!(group_missing, 0, "the group missed records of P");
    assert_eq!((q_dups, q_lost, q_unexpected), (0, 0, 0), "Q: not exactly once");
    if rss.len() >= 12 {
        assert!(
            last as f64 <= warm as f64 * 1.5,
            "RSS grew from {warm} KiB to {last} KiB: {rss:?}"
        );
    }
    // The pipeline restarts every 30-90 s, so its RSS is compared across runs: no sample
    // above three times the median (a run whose memory ran away).
    if pipeline_rss.len() >= 6 {
        let mut sorted = pipeline_rss.clone();
        sorted.sort_unstable();
        let median = sorted[sorted.len() / 2];
        let max = sorted[sorted.len() - 1];
        assert!(
            max <= median * 3,
            "a pipeline run's RSS reached {max} KiB, median {median} KiB: {pipeline_rss:?}"
        );
    }
    assert!(
        started.elapsed() < run_for + Duration::from_secs(15 * 60),
        "over its time bound"
    );
    let _ = std::fs::remove_dir_all(&dir);
    drop(cluster);
}
