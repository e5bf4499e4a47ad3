//! `strom bench produce` and `strom bench consume`: a fixed-size load through the producer or
//! the consumer, reported as one JSON object with every knob, so the benchmark drivers
//! (bench/s1_produce.py, bench/s2_consume.py) can put it beside other clients.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{
    ClientConfig, Consumer, ConsumerConfig, DeliveryFuture, IsolationLevel, OffsetReset, Producer, ProducerConfig,
    ProducerRecord, TopicPartition,
};

use crate::out::outln;
use crate::{set_error, Failure, Property};

/// Arguments of `strom bench produce`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchProduceArgs {
    /// Topic (must exist).
    topic: String,
    /// Records to send.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Value size in bytes (keys are null, as in Java's ProducerPerformance). Every record
    /// carries the same value of random uppercase letters.
    #[arg(long, default_value_t = 100, conflicts_with = "payload_file")]
    record_size: usize,
    /// Send the values of this file in turn instead: values separated by newlines, as Java's
    /// ProducerPerformance --payload-file reads them (bench/corpus.py writes such a file).
    /// The file is read once; each record's value is a slice of it.
    #[arg(long, value_name = "FILE")]
    payload_file: Option<PathBuf>,
    /// Succeed even when a partition got less than a third of the mean record count.
    #[arg(long)]
    allow_skew: bool,
}

/// The values a payload file holds: split on `\n` as Java's ProducerPerformance splits its
/// `--payload-file` (`String.split`: trailing empty values dropped), each a slice of `data`.
fn split_values(data: &Bytes) -> Vec<Bytes> {
    let mut values: Vec<Bytes> = Vec::new();
    let mut start = 0;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            values.push(data.slice(start..i));
            start = i + 1;
        }
    }
    values.push(data.slice(start..));
    while values.last().is_some_and(Bytes::is_empty) {
        values.pop();
    }
    values
}

/// What `bench produce` sends, in turn: the values of `--payload-file`, or one constant value
/// of `size` random uppercase letters (the same bytes every run, and the same as
/// bench/rdkafka-peer, bench/franz-peer and bench/corpus.py's constant). Either way a record's
/// value is a `Bytes` clone of one buffer: no allocation or copy per record.
fn payloads(file: Option<&Path>, size: usize) -> Result<Vec<Bytes>, Failure> {
    let Some(file) = file else {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let value = (0..size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                b'A' + (seed % 26) as u8
            })
            .collect::<Vec<u8>>();
        return Ok(vec![Bytes::from(value)]);
    };
    let data = Bytes::from(std::fs::read(file).map_err(|e| format!("--payload-file {}: {e}", file.display()))?);
    let values = split_values(&data);
    if values.is_empty() {
        return Err(format!("--payload-file {}: no values in it", file.display()).into());
    }
    Ok(values)
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

/// Where the records went: per partition, how many were acknowledged there.
fn spread_json(counts: &[u64]) -> String {
    let items: Vec<String> = counts.iter().map(u64::to_string).collect();
    format!("[{}]", items.join(","))
}

/// The partitions that got less than a third of the mean (the bench drivers' rule,
/// bench/spread.py), when there is more than one partition.
fn starved(counts: &[u64]) -> Vec<usize> {
    if counts.len() < 2 {
        return Vec::new();
    }
    let total: u64 = counts.iter().sum();
    // count < mean / 3  ⇔  3 · count · partitions < total
    let n = counts.len() as u64;
    counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| 3 * c * n < total)
        .map(|(p, _)| p)
        .collect()
}

pub(crate) async fn produce(config: ClientConfig, rest: Vec<Property>, args: BenchProduceArgs) -> Result<(), Failure> {
    let mut p = ProducerConfig::from_client(config);
    for prop in rest.iter().filter(|p| !crate::formats::is_registry_key(&p.key)) {
        p.set(&prop.key, &prop.value)
            .map_err(|e| set_error(&prop.key, &prop.value, &e))?;
    }
    p.validate().map_err(|e| e.to_string())?;
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
        "{{\"acks\":\"{:?}\",\"enable.idempotence\":{},\"compression.type\":\"{}\",\"linger.ms\":{},\"batch.size\":{},\"max.in.flight.requests.per.connection\":{},\"buffer.memory\":{},{payload}}}",
        p.acks,
        p.enable_idempotence,
        p.compression,
        p.linger.as_millis(),
        p.batch_size,
        p.max_in_flight,
        p.buffer_memory,
    );
    let producer = Producer::new(p).await.map_err(|e| e.to_string())?;
    crate::metrics_http::publish(producer.client().metric_registry());
    let info = producer.client().topic(&args.topic).await.map_err(|e| e.to_string())?;
    let partitions = info.partitions.len();
    let (cpu0, _) = usage();
    let started = Instant::now();
    // Every delivery is checked (as it completes, so memory stays flat): a failure in the
    // middle counts as much as one at the end.
    let mut tally = Tally {
        per_partition: vec![0; partitions],
        ..Tally::default()
    };
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut progress = crate::progress::Progress::new(Some(args.records));
    let (mut next, mut bytes) = (0, 0u64);
    for sent_so_far in 1..=args.records {
        let value = values[next].clone();
        next = if next + 1 == values.len() { 0 } else { next + 1 };
        bytes += value.len() as u64;
        let sent = producer
            .send(ProducerRecord {
                topic: args.topic.clone(),
                value: Some(value),
                ..Default::default()
            })
            .await;
        match sent {
            Ok(f) => pending.push_back(f),
            Err(e) => tally.fail(e.to_string()),
        }
        while let Some(done) = pending.front().and_then(DeliveryFuture::try_result) {
            pending.pop_front();
            tally.count(Some(done));
        }
        progress.update(sent_so_far, bytes, sent_so_far);
    }
    producer.flush().await.map_err(|e| e.to_string())?;
    for f in pending {
        tally.count(Some(f.wait().await));
    }
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    let (cpu1, rss) = usage();
    outln!(
        "{{\"client\":\"strom\",\"records\":{},\"bytes\":{},\"seconds\":{:.3},\"records_per_s\":{:.0},\"mib_per_s\":{:.2},\"cpu_seconds\":{:.2},\"max_rss_kib\":{},\"acknowledged\":{},\"failed\":{},\"partition_records\":{},\"settings\":{}}}",
        args.records,
        bytes,
        secs,
        args.records as f64 / secs,
        bytes as f64 / secs / (1 << 20) as f64,
        cpu1 - cpu0,
        rss,
        tally.acked,
        tally.failed,
        spread_json(&tally.per_partition),
        settings
    )?;
    producer.close().await.map_err(|e| e.to_string())?;
    let mean = tally.acked as f64 / partitions.max(1) as f64;
    crate::out::note(&format!(
        "records per partition (mean {mean:.0}): {}",
        tally
            .per_partition
            .iter()
            .enumerate()
            .map(|(p, c)| format!("{p}:{c}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    if let Some(first) = tally.first_error {
        return Err(format!(
            "{} of {} records failed (first: {first}); {} acknowledged",
            tally.failed, args.records, tally.acked
        )
        .into());
    }
    let low = starved(&tally.per_partition);
    if !low.is_empty() && !args.allow_skew {
        return Err(format!(
            "partitions {low:?} got less than a third of the mean ({mean:.0} records): {:?} (--allow-skew accepts it)",
            tally.per_partition
        )
        .into());
    }
    Ok(())
}

/// Delivery results of `bench produce`.
#[derive(Debug, Default)]
struct Tally {
    acked: u64,
    failed: u64,
    per_partition: Vec<u64>,
    first_error: Option<String>,
}

impl Tally {
    fn count(&mut self, r: Option<strom_client::Result<strom_client::RecordMetadata>>) {
        match r {
            Some(Ok(md)) => {
                self.acked += 1;
                if let Some(c) = usize::try_from(md.partition)
                    .ok()
                    .and_then(|p| self.per_partition.get_mut(p))
                {
                    *c += 1;
                }
            }
            Some(Err(e)) => self.fail(e.to_string()),
            None => self.fail("no outcome after flush".to_owned()),
        }
    }

    fn fail(&mut self, e: String) {
        self.failed += 1;
        self.first_error.get_or_insert(e);
    }
}

/// Arguments of `strom bench consume`.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchConsumeArgs {
    /// Topic (must exist and hold at least `--records` records).
    topic: String,
    /// Records to read, from the earliest offset of every partition.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Give up when no record arrived for this long (ms), like ConsumerPerformance's --timeout.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
}

/// Reads `--records` records with [`Consumer`] in assign mode (every partition of the topic,
/// no group, from the earliest offset), counting key and value bytes as Java's
/// ConsumerPerformance does. The clock starts before the first poll, so the time includes
/// finding the earliest offsets (as ConsumerPerformance's fetch time includes them).
pub(crate) async fn consume(config: ClientConfig, rest: Vec<Property>, args: BenchConsumeArgs) -> Result<(), Failure> {
    let mut c = ConsumerConfig::from_client(config);
    c.auto_offset_reset = OffsetReset::Earliest;
    c.enable_auto_commit = false;
    for prop in rest.iter().filter(|p| !crate::formats::is_registry_key(&p.key)) {
        c.set(&prop.key, &prop.value)
            .map_err(|e| set_error(&prop.key, &prop.value, &e))?;
    }
    if c.group_id.is_some() {
        return Err("bench consume reads in assign mode: group.id is not used".into());
    }
    c.validate().map_err(|e| e.to_string())?;
    let mut consumer = Consumer::new(c).await.map_err(|e| e.to_string())?;
    crate::metrics_http::publish(consumer.client().metric_registry());
    let info = consumer.client().topic(&args.topic).await.map_err(|e| e.to_string())?;
    let partitions: Vec<TopicPartition> = info
        .partitions
        .iter()
        .map(|p| TopicPartition::new(args.topic.as_str(), p.partition))
        .collect();
    let c = consumer.config();
    let settings = format!(
        "{{\"mode\":\"assign\",\"partitions\":{},\"auto.offset.reset\":\"earliest\",\"check.crcs\":{},\"fetch.min.bytes\":{},\"fetch.max.bytes\":{},\"max.partition.fetch.bytes\":{},\"fetch.max.wait.ms\":{},\"max.poll.records\":{},\"isolation.level\":\"{}\"}}",
        partitions.len(),
        c.check_crcs,
        c.fetch_min_bytes,
        c.fetch_max_bytes,
        c.max_partition_fetch_bytes,
        c.fetch_max_wait.as_millis(),
        c.max_poll_records,
        match c.isolation_level {
            IsolationLevel::ReadCommitted => "read_committed",
            IsolationLevel::ReadUncommitted => "read_uncommitted",
        },
    );
    consumer.assign(partitions.iter().cloned()).map_err(|e| e.to_string())?;
    consumer.seek_to_beginning(&partitions).map_err(|e| e.to_string())?;
    // Offsets must rise within each partition (a cheap check that nothing is read twice).
    let mut last: Vec<i64> = vec![-1; partitions.len()];
    let idle = Duration::from_millis(args.timeout_ms);
    let (cpu0, _) = usage();
    let started = Instant::now();
    let mut first_record = None;
    let mut last_record = started;
    let (mut records, mut bytes) = (0u64, 0u64);
    let mut progress = crate::progress::Progress::new(Some(args.records));
    while records < args.records {
        let batch = consumer
            .poll(Duration::from_millis(100))
            .await
            .map_err(|e| e.to_string())?;
        let now = Instant::now();
        if batch.is_empty() {
            if now.duration_since(last_record) > idle {
                return Err(format!(
                    "only {records} of {} records arrived (none in {} ms)",
                    args.records, args.timeout_ms
                )
                .into());
            }
            continue;
        }
        first_record.get_or_insert(now);
        last_record = now;
        for r in &batch {
            let seen = usize::try_from(r.partition)
                .ok()
                .and_then(|p| last.get_mut(p))
                .ok_or_else(|| format!("record from unexpected partition {}", r.partition))?;
            if r.offset <= *seen {
                return Err(format!(
                    "partition {} went back from offset {} to {}",
                    r.partition, seen, r.offset
                )
                .into());
            }
            *seen = r.offset;
            bytes += r.key.as_ref().map_or(0, |k| k.len() as u64) + r.value.as_ref().map_or(0, |v| v.len() as u64);
        }
        records += batch.len() as u64;
        progress.update(records, bytes, records);
    }
    progress.finish();
    let secs = started.elapsed().as_secs_f64();
    let (cpu1, rss) = usage();
    let first_ms = first_record.map_or(0.0, |t| t.duration_since(started).as_secs_f64() * 1000.0);
    let m = consumer.metrics();
    outln!(
        "{{\"client\":\"strom\",\"records\":{},\"bytes\":{},\"seconds\":{:.3},\"records_per_s\":{:.0},\"mib_per_s\":{:.2},\"cpu_seconds\":{:.2},\"max_rss_kib\":{},\"first_record_ms\":{:.1},\"fetches\":{},\"fetched_bytes\":{},\"settings\":{}}}",
        records,
        bytes,
        secs,
        records as f64 / secs,
        bytes as f64 / secs / (1 << 20) as f64,
        cpu1 - cpu0,
        rss,
        first_ms,
        m.fetches,
        m.bytes_fetched,
        settings
    )?;
    consumer.close().await.map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_below_a_third_of_the_mean_is_starved() {
        assert_eq!(starved(&[1000, 0, 0]), [1, 2]);
        assert_eq!(starved(&[3, 10, 17]), [0]);
        assert!(starved(&[4, 10, 16]).is_empty());
        assert!(starved(&[10, 10, 10]).is_empty());
        assert!(starved(&[7]).is_empty());
        assert!(starved(&[]).is_empty());
        assert_eq!(spread_json(&[1, 0, 2]), "[1,0,2]");
    }

    #[test]
    fn a_payload_file_splits_as_java_splits_it() {
        let data = Bytes::from_static(b"one\ntwo\n\nfour\n\n");
        let values = split_values(&data);
        assert_eq!(
            values,
            ["one", "two", "", "four"].map(|v| Bytes::from_static(v.as_bytes()))
        );
        // Slices of the one buffer, not copies.
        assert_eq!(values[1].as_ptr(), data[4..].as_ptr());
        assert_eq!(
            split_values(&Bytes::from_static(b"last")),
            [Bytes::from_static(b"last")]
        );
        assert!(split_values(&Bytes::from_static(b"\n\n")).is_empty());
        assert!(split_values(&Bytes::new()).is_empty());
    }

    #[test]
    fn the_constant_payload_is_the_same_letters_every_time() {
        let v = payloads(None, 100).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].len(), 100);
        assert!(v[0].iter().all(u8::is_ascii_uppercase));
        // bench/corpus.py's constant() and the peers' produce the same bytes.
        assert!(v[0].starts_with(b"XAVOIHYHXDOZBQEB"), "{:?}", v[0]);
    }
}

/// `strom bench share-consume`: Java's ShareConsumerPerformance's measurement.
#[derive(Debug, clap::Args)]
pub(crate) struct BenchShareConsumeArgs {
    /// Topic (must hold at least `--records` records the group has not consumed).
    topic: String,
    /// The share group; give it `share.auto.offset.reset=earliest` first.
    #[arg(long)]
    group: String,
    /// Records to read, by all members together.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// Share consumers in this process (ShareConsumerPerformance's --threads).
    #[arg(long, default_value_t = 1)]
    members: usize,
    /// Give up when no record arrived for this long (ms), like its --timeout.
    #[arg(long, default_value_t = 30_000)]
    timeout_ms: u64,
}

/// Reads `--records` records with `--members` [`ShareConsumer`](strom_client::share::ShareConsumer)s of one share group
/// (implicit acknowledgement: each poll accepts the previous one's records), counting key
/// and value bytes as ShareConsumerPerformance does; the clock starts before the members
/// join, as its does.
pub(crate) async fn share_consume(
    config: ClientConfig,
    rest: Vec<Property>,
    args: BenchShareConsumeArgs,
) -> Result<(), Failure> {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;
    use strom_client::share::{ShareConsumer, ShareConsumerConfig};

    let mut c = ShareConsumerConfig::from_client(config, &args.group);
    for prop in &rest {
        c.set(&prop.key, &prop.value)
            .map_err(|e| set_error(&prop.key, &prop.value, &e))?;
    }
    if args.members == 0 {
        return Err("--members must be at least 1".into());
    }
    let (cpu0, _) = usage();
    let started = Instant::now();
    let records = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.members {
        let (c, records, bytes) = (c.clone(), records.clone(), bytes.clone());
        let topic = args.topic.clone();
        let (want, idle) = (args.records, Duration::from_millis(args.timeout_ms));
        tasks.push(tokio::spawn(async move {
            let mut consumer = ShareConsumer::new(c).await.map_err(|e| e.to_string())?;
            consumer.subscribe(&[&topic]);
            let mut last = Instant::now();
            let mut first: Option<Instant> = None;
            let mut mine = 0u64;
            while records.load(Ordering::Relaxed) < want {
                let batch = consumer
                    .poll(Duration::from_millis(100))
                    .await
                    .map_err(|e| e.to_string())?;
                if batch.is_empty() {
                    if last.elapsed() > idle {
                        break;
                    }
                    continue;
                }
                last = Instant::now();
                first.get_or_insert(last);
                let b: u64 = batch
                    .iter()
                    .map(|r| {
                        r.key.as_ref().map_or(0, |k| k.len() as u64) + r.value.as_ref().map_or(0, |v| v.len() as u64)
                    })
                    .sum();
                bytes.fetch_add(b, Ordering::Relaxed);
                records.fetch_add(batch.len() as u64, Ordering::Relaxed);
                mine += batch.len() as u64;
            }
            let done = Instant::now();
            consumer.close().await.map_err(|e| e.to_string())?;
            Ok::<(u64, Instant, Option<Instant>), String>((mine, done, first))
        }));
    }
    let mut per_member = Vec::new();
    let mut end = started;
    let mut first: Option<Instant> = None;
    for t in tasks {
        let (mine, done, f) = t.await.map_err(|e| e.to_string())??;
        per_member.push(mine);
        end = end.max(done);
        first = match (first, f) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    let first_ms = first.map_or(0.0, |t| t.duration_since(started).as_secs_f64() * 1000.0);
    let n = records.load(Ordering::Relaxed);
    if n < args.records {
        return Err(format!(
            "only {n} of {} records arrived (none in {} ms)",
            args.records, args.timeout_ms
        )
        .into());
    }
    let secs = end.duration_since(started).as_secs_f64();
    let (cpu1, rss) = usage();
    let b = bytes.load(Ordering::Relaxed);
    outln!(
        "{{\"client\":\"strom\",\"members\":{},\"records\":{n},\"bytes\":{b},\"seconds\":{secs:.3},\"records_per_s\":{:.0},\"mib_per_s\":{:.2},\"cpu_seconds\":{:.2},\"max_rss_kib\":{rss},\"first_record_ms\":{first_ms:.1},\"per_member\":{:?}}}",
        args.members,
        n as f64 / secs,
        b as f64 / secs / (1 << 20) as f64,
        cpu1 - cpu0,
        per_member,
    )
}
