//! `strom bench latency` (S5): records at a fixed rate through the producer while a consumer
//! in the same process reads the topic; each record's end-to-end latency is the time the
//! consumer got it minus the send time stamped into it.
//!
//! The stamp is the first 8 bytes of the value (big-endian u64): nanoseconds since the run's
//! origin on this process's monotonic clock, taken just before `send`. The rest of the value
//! is the payload file's, so a record is as large and as compressible as the payload says.
//!
//! The sender keeps an absolute schedule: record i is due at origin + i / rate. It sleeps
//! until the next record is due (tokio's timer, 1 ms ticks) and then sends every record that
//! is due, so being late never shifts the records after it; how late it ever was with a
//! measured record is reported (`send_lag_max_ms`), and `kept_up` is false when it could not
//! hold the rate.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use strom_client::{
    ClientConfig, Consumer, ConsumerConfig, DeliveryFuture, IsolationLevel, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};

use super::{payloads, read_stamp, usage, Latencies, Stamper};
use crate::out::outln;
use crate::{set_error, Failure, Property};

/// Arguments of `strom bench latency`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchLatencyArgs {
    /// Topic (must exist; a fresh one: the consumer reads it from the start).
    topic: String,
    /// Records per second.
    #[arg(long)]
    rate: u64,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Seconds sent at the rate first and not measured (connections, metadata, the first
    /// batches).
    #[arg(long, default_value_t = 1)]
    warmup_seconds: u64,
    /// Value size in bytes of the constant payload (without --payload-file).
    #[arg(long, default_value_t = 100, conflicts_with = "payload_file")]
    record_size: usize,
    /// Send the values of this file in turn (bench/corpus.py), each with its first 8 bytes
    /// replaced by the send time.
    #[arg(long, value_name = "FILE")]
    payload_file: Option<PathBuf>,
    /// Give up when the consumer got nothing for this long (ms).
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
}

/// What the consumer task saw.
#[derive(Debug)]
struct Received {
    measured: Latencies,
    received: u64,
    done: Instant,
}

pub(crate) async fn latency(config: ClientConfig, rest: Vec<Property>, args: BenchLatencyArgs) -> Result<(), Failure> {
    if args.rate == 0 || args.seconds == 0 {
        return Err("--rate and --seconds must be at least 1".into());
    }
    let mut p = ProducerConfig::from_client(config.clone());
    for prop in rest.iter().filter(|p| !crate::formats::is_registry_key(&p.key)) {
        p.set(&prop.key, &prop.value)
            .map_err(|e| set_error(&prop.key, &prop.value, &e))?;
    }
    p.validate().map_err(|e| e.to_string())?;
    let mut c = ConsumerConfig::from_client(config);
    c.auto_offset_reset = OffsetReset::Earliest;
    c.enable_auto_commit = false;
    c.validate().map_err(|e| e.to_string())?;
    let values = payloads(args.payload_file.as_deref(), args.record_size)?;
    let payload = match &args.payload_file {
        Some(file) => format!(
            "\"payload_file\":{},\"payload_values\":{}",
            serde_json::Value::from(file.display().to_string()),
            values.len()
        ),
        None => format!("\"record_size\":{}", args.record_size),
    };
    let settings = format!(
        "{{\"acks\":\"{:?}\",\"enable.idempotence\":{},\"compression.type\":\"{}\",\"linger.ms\":{},\"batch.size\":{},\"max.in.flight.requests.per.connection\":{},\"fetch.min.bytes\":{},\"fetch.max.wait.ms\":{},\"isolation.level\":\"{}\",\"consumer\":\"assign, same process\",\"stamp\":\"value bytes 0..8: send time, ns, big-endian, monotonic clock\",\"pacer\":\"absolute schedule, tokio timer (1 ms)\",\"warmup_seconds\":{},{payload}}}",
        p.acks,
        p.enable_idempotence,
        p.compression,
        p.linger.as_millis(),
        p.batch_size,
        p.max_in_flight,
        c.fetch_min_bytes,
        c.fetch_max_wait.as_millis(),
        match c.isolation_level {
            IsolationLevel::ReadCommitted => "read_committed",
            IsolationLevel::ReadUncommitted => "read_uncommitted",
        },
        args.warmup_seconds,
    );

    let producer = Producer::new(p).await.map_err(|e| e.to_string())?;
    let mut consumer = Consumer::new(c).await.map_err(|e| e.to_string())?;
    let info = producer.client().topic(&args.topic).await.map_err(|e| e.to_string())?;
    let partitions: Vec<TopicPartition> = info
        .partitions
        .iter()
        .map(|p| TopicPartition::new(args.topic.as_str(), p.partition))
        .collect();
    consumer.assign(partitions.iter().cloned()).map_err(|e| e.to_string())?;
    consumer.seek_to_beginning(&partitions).map_err(|e| e.to_string())?;
    // The consumer knows where to read before the first record goes out.
    for tp in &partitions {
        consumer.position(tp).await.map_err(|e| e.to_string())?;
    }

    let warmup = args.warmup_seconds * args.rate;
    let total = warmup + args.seconds * args.rate;
    let origin = Instant::now();
    // Set by the sender as it stamps the first measured record: a record is measured when
    // its stamp is at least this (the records before it were stamped earlier, however late
    // the sender ran).
    let measured_from = Arc::new(AtomicU64::new(u64::MAX));
    let from = measured_from.clone();
    let idle = Duration::from_millis(args.timeout_ms);
    let reader = tokio::spawn(async move {
        let mut measured = Latencies::new()?;
        let mut received = 0u64;
        let mut last = Instant::now();
        while received < total {
            let batch = consumer
                .poll(Duration::from_millis(100))
                .await
                .map_err(|e| e.to_string())?;
            let now = Instant::now();
            if batch.is_empty() {
                if now.duration_since(last) > idle {
                    break;
                }
                continue;
            }
            last = now;
            let at = now.duration_since(origin).as_nanos();
            for r in &batch {
                let sent = read_stamp(r.value.as_ref())
                    .ok_or_else(|| format!("partition {} offset {}: no send time", r.partition, r.offset))?;
                received += 1;
                if sent >= from.load(Ordering::Relaxed) {
                    measured.record(Duration::from_nanos(
                        u64::try_from(at.saturating_sub(u128::from(sent))).unwrap_or(u64::MAX),
                    ));
                }
            }
        }
        let done = Instant::now();
        consumer.close().await.map_err(|e| e.to_string())?;
        Ok::<Received, Failure>(Received {
            measured,
            received,
            done,
        })
    });

    let (cpu0, _) = usage();
    let mut stamper = Stamper::default();
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    let (mut failed, mut first_error) = (0u64, None);
    let mut lag_max = Duration::ZERO;
    let mut measured_start = None;
    let mut next = 0;
    let period_ns = 1_000_000_000f64 / args.rate as f64;
    for i in 0..total {
        let due = origin + Duration::from_nanos((i as f64 * period_ns) as u64);
        if Instant::now() < due {
            tokio::time::sleep_until(due.into()).await;
        }
        let now = Instant::now();
        if i >= warmup {
            lag_max = lag_max.max(now.saturating_duration_since(due));
        }
        let sent_ns = u64::try_from(now.duration_since(origin).as_nanos()).unwrap_or(u64::MAX - 1);
        if i == warmup {
            measured_start = Some(now);
            measured_from.store(sent_ns, Ordering::Relaxed);
        }
        let value = stamper.stamp(sent_ns, &values[next]);
        next = if next + 1 == values.len() { 0 } else { next + 1 };
        // The topic is a String per record: ProducerRecord owns it (the public API).
        let sent = producer
            .send(ProducerRecord {
                topic: args.topic.clone(),
                value: Some(value),
                ..Default::default()
            })
            .await;
        match sent {
            Ok(f) => pending.push_back(f),
            Err(e) => {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
        while let Some(done) = pending.front().and_then(DeliveryFuture::try_result) {
            pending.pop_front();
            if let Err(e) = done {
                failed += 1;
                first_error.get_or_insert(e.to_string());
            }
        }
    }
    let last_send = Instant::now();
    producer.flush().await.map_err(|e| e.to_string())?;
    for f in pending {
        if let Err(e) = f.wait().await {
            failed += 1;
            first_error.get_or_insert(e.to_string());
        }
    }
    let got = reader.await.map_err(|e| e.to_string())??;
    let (cpu1, rss) = usage();
    producer.close().await.map_err(|e| e.to_string())?;
    let wall = got.done.duration_since(origin).as_secs_f64();
    let cpu = cpu1 - cpu0;
    let sent_measured = total - warmup;
    let send_secs = measured_start.map_or(0.0, |t| last_send.duration_since(t).as_secs_f64());
    // The rate the measured records went out at (the first to the last send covers n - 1
    // periods).
    let achieved = if send_secs > 0.0 {
        sent_measured.saturating_sub(1) as f64 / send_secs
    } else {
        0.0
    };
    let kept_up = achieved >= 0.99 * args.rate as f64;
    outln!(
        "{{\"client\":\"strom\",\"rate\":{},\"seconds\":{},\"records\":{total},\"measured\":{},\"received\":{},\"failed\":{failed},\"achieved_rate\":{achieved:.0},\"kept_up\":{kept_up},\"send_lag_max_ms\":{:.3},{},\"cpu_seconds\":{cpu:.2},\"cpu_percent\":{:.1},\"max_rss_kib\":{rss},\"settings\":{settings}}}",
        args.rate,
        args.seconds,
        got.measured.len(),
        got.received,
        lag_max.as_secs_f64() * 1000.0,
        got.measured.json(""),
        100.0 * cpu / wall,
    )?;
    if let Some(e) = first_error {
        return Err(format!("{failed} of {total} records failed (first: {e})").into());
    }
    if got.received != total {
        return Err(format!(
            "the consumer got {} of {total} records (none for {} ms)",
            got.received, args.timeout_ms
        )
        .into());
    }
    if !kept_up {
        crate::out::note(&format!(
            "could not keep up: {achieved:.0} records/s of {} (the sender was up to {:.1} ms late)",
            args.rate,
            lag_max.as_secs_f64() * 1000.0
        ));
    }
    Ok(())
}
