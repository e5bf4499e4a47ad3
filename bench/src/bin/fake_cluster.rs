//! The fake cluster (strom-fake) measured beside a real broker with the same client code:
//! produce throughput through Strom's producer, and the round trip of one record (produce
//! with acks=1 and linger 0, until a consumer polling the partition returns it).
//!
//! `cargo run --release -p strom-bench --bin fake_cluster -- [BOOTSTRAP]`: without a
//! bootstrap address only the fake (in this process) is measured; with one, both, in the
//! same run. One JSON object per target on stdout.

use std::time::{Duration, Instant};

use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};

type AnyError = Box<dyn std::error::Error + Send + Sync>;

fn env_usize(key: &str, default: usize) -> usize {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let t = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    t(u.ru_utime) + t(u.ru_stime)
}

async fn measure(target: &str, bootstrap: &str, topic: &str) -> Result<String, AnyError> {
    let records = env_usize("RECORDS", 1_000_000);
    let round_trips = env_usize("ROUND_TRIPS", 2_000);
    let admin = Admin::connect(ClientConfig::new(bootstrap)).await?;
    admin
        .create_topics(&[NewTopic::new(topic, 1), NewTopic::new(format!("{topic}-rt"), 1)])
        .await?;

    // Throughput: 1M records of 100 bytes, acks=all, idempotent, linger 5 ms.
    let mut pc = ProducerConfig::new(bootstrap);
    pc.set("linger.ms", "5")?;
    pc.set("batch.size", "1048576")?;
    let p = Producer::new(pc).await?;
    let value = bytes::Bytes::from(vec![b'x'; 100]);
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let mut last = None;
    for _ in 0..records {
        last = Some(p.send(ProducerRecord::new(topic, value.clone())).await?);
    }
    if let Some(l) = last {
        l.await?;
    }
    p.flush().await?;
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    p.close().await?;
    // Counted only if every record is there (one partition: its end offset).
    let end = admin
        .list_offsets(topic, &[0], strom_client::OffsetSpec::Latest)
        .await?[0]
        .offset;
    if end != records as i64 {
        return Err(format!("{target}: {end} records in {topic}, {records} sent").into());
    }
    eprintln!("{target}: produced {records} in {secs:.2} s, all {end} read back as the end offset");

    // Round trip: one record at a time.
    let rt_topic = format!("{topic}-rt");
    let mut pc = ProducerConfig::new(bootstrap);
    pc.set("linger.ms", "0")?;
    pc.set("acks", "1")?;
    let p = Producer::new(pc).await?;
    let mut cc = ConsumerConfig::new(bootstrap);
    cc.set("fetch.max.wait.ms", "500")?;
    let mut c = Consumer::new(cc).await?;
    c.assign([TopicPartition::new(&rt_topic, 0)])?;
    c.seek_to_end(&[TopicPartition::new(&rt_topic, 0)])?;
    // The end offset is resolved by the next poll (as Java's seekToEnd): before producing.
    c.poll(Duration::from_millis(100)).await?;
    let mut lat = Vec::with_capacity(round_trips);
    for i in 0..round_trips + 100 {
        let t = Instant::now();
        p.send(ProducerRecord::new(&rt_topic, value.clone())).await?.await?;
        loop {
            if !c.poll(Duration::from_secs(5)).await?.is_empty() {
                break;
            }
        }
        if i >= 100 {
            lat.push(t.elapsed());
        }
    }
    p.close().await?;
    c.close().await?;
    lat.sort();
    let pct = |q: f64| lat[((lat.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
    Ok(format!(
        "{{\"target\":\"{target}\",\"records\":{records},\"records_per_s\":{:.0},\"process_cpu_s\":{cpu:.2},\"round_trips\":{round_trips},\"rt_p50_ms\":{:.3},\"rt_p99_ms\":{:.3},\"rt_max_ms\":{:.3}}}",
        records as f64 / secs,
        pct(0.5),
        pct(0.99),
        pct(1.0)
    ))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), AnyError> {
    let real = std::env::args().nth(1);
    let run = std::process::id();
    let started = Instant::now();
    let fake = strom_fake::FakeCluster::builder().start().await?;
    let startup = started.elapsed();
    eprintln!("fake cluster started in {startup:?}");
    println!(
        "{}",
        measure("strom-fake", &fake.bootstrap_servers(), &format!("fake-bench-{run}")).await?
    );
    drop(fake);
    if let Some(b) = real {
        println!("{}", measure("kafka", &b, &format!("fake-bench-{run}")).await?);
    }
    Ok(())
}
