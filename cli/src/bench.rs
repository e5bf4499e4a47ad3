//! `strom bench produce`: a fixed-size load through the producer, reported as one JSON object
//! with every knob, so the benchmark driver (bench/) can put it beside other clients.

use std::time::Instant;

use bytes::Bytes;
use strom_client::{ClientConfig, Producer, ProducerConfig, ProducerRecord};

/// Arguments of `strom bench produce`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchProduceArgs {
    /// Topic (must exist).
    topic: String,
    /// Records to send.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Value size in bytes (keys are null, as in Java's ProducerPerformance).
    #[arg(long, default_value_t = 100)]
    record_size: usize,
}

/// CPU seconds (user + system) and peak RSS (KiB) of this process, from /proc.
fn usage() -> (f64, u64) {
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let u: f64 = f.get(11)?.parse().ok()?;
            let s: f64 = f.get(12)?.parse().ok()?;
            Some((u + s) / ticks)
        })
        .unwrap_or(f64::NAN);
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    (cpu, rss)
}

pub(crate) async fn produce(
    config: ClientConfig,
    rest: Vec<(String, String)>,
    args: BenchProduceArgs,
) -> Result<(), String> {
    let mut p = ProducerConfig::from_client(config);
    for (k, v) in &rest {
        if !p.set(k, v).map_err(|e| e.to_string())? {
            return Err(format!("unknown property {k:?}"));
        }
    }
    p.validate().map_err(|e| e.to_string())?;
    let settings = format!(
        "{{\"acks\":\"{:?}\",\"enable.idempotence\":{},\"compression.type\":\"{}\",\"linger.ms\":{},\"batch.size\":{},\"max.in.flight.requests.per.connection\":{},\"buffer.memory\":{},\"record_size\":{}}}",
        p.acks,
        p.enable_idempotence,
        p.compression,
        p.linger.as_millis(),
        p.batch_size,
        p.max_in_flight,
        p.buffer_memory,
        args.record_size
    );
    let producer = Producer::new(p).await.map_err(|e| e.to_string())?;
    producer.client().topic(&args.topic).await.map_err(|e| e.to_string())?;
    // One payload of random uppercase letters for every record, as ProducerPerformance sends
    // (a Bytes clone per record: no copy).
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let payload = Bytes::from(
        (0..args.record_size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                b'A' + (seed % 26) as u8
            })
            .collect::<Vec<u8>>(),
    );
    let (cpu0, _) = usage();
    let started = Instant::now();
    let mut last = None;
    let mut failed = 0u64;
    for _ in 0..args.records {
        let f = producer
            .send(ProducerRecord {
                topic: args.topic.clone(),
                value: Some(payload.clone()),
                ..Default::default()
            })
            .await
            .map_err(|e| e.to_string())?;
        if let Some(Err(_)) = f.try_result() {
            failed += 1;
        }
        last = Some(f);
    }
    producer.flush().await.map_err(|e| e.to_string())?;
    if let Some(f) = last {
        f.wait().await.map_err(|e| format!("the last record failed: {e}"))?;
    }
    let secs = started.elapsed().as_secs_f64();
    let (cpu1, rss) = usage();
    let bytes = args.records * args.record_size as u64;
    println!(
        "{{\"client\":\"strom\",\"records\":{},\"bytes\":{},\"seconds\":{:.3},\"records_per_s\":{:.0},\"mib_per_s\":{:.2},\"cpu_seconds\":{:.2},\"max_rss_kib\":{},\"failed\":{},\"settings\":{}}}",
        args.records,
        bytes,
        secs,
        args.records as f64 / secs,
        bytes as f64 / secs / (1 << 20) as f64,
        cpu1 - cpu0,
        rss,
        failed,
        settings
    );
    producer.close().await.map_err(|e| e.to_string())?;
    Ok(())
}
