//! `strom bench consume`: S2's load, and the read-back checks of S3 (`--keys`) and S4
//! (`--to-end` under read_committed).

use std::time::{Duration, Instant};

use strom_client::{ClientConfig, Consumer, ConsumerConfig, IsolationLevel, OffsetReset, TopicPartition};

use super::usage;
use crate::out::outln;
use crate::{set_error, Failure, Property};

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
    /// Check S3's keyed records (`strom bench produce --keys N` and the peers' keyed modes):
    /// every key is one of N `key-NNNNNN`, stays in one partition, and its sequence numbers
    /// (value bytes 0..8) come 0, 1, 2, ... with no gap or repeat.
    #[arg(long, value_name = "N")]
    keys: Option<u64>,
    /// After `--records`, read on until every partition is at its end (the last stable offset
    /// under read_committed), and fail unless the topic held exactly `--records` records:
    /// S4's count of what transactions committed.
    #[arg(long)]
    to_end: bool,
}

/// S3's per-key check: the next sequence number and the partition of every key.
#[derive(Debug)]
struct KeyCheck {
    next: Vec<u64>,
    partition: Vec<i32>,
}

impl KeyCheck {
    fn new(keys: u64) -> Result<KeyCheck, Failure> {
        if keys == 0 || keys > super::MAX_KEYS {
            return Err(format!("--keys {keys}: want 1 to {}", super::MAX_KEYS).into());
        }
        Ok(KeyCheck {
            next: vec![0; keys as usize],
            partition: vec![-1; keys as usize],
        })
    }

    fn check(&mut self, r: &strom_client::ConsumerRecord) -> Result<(), Failure> {
        let at = || format!("partition {} offset {}", r.partition, r.offset);
        let k = super::key_index(r.key.as_ref())
            .filter(|&k| k < self.next.len())
            .ok_or_else(|| format!("{}: key {:?} is not one of the {} keys", at(), r.key, self.next.len()))?;
        let seq = super::read_stamp(r.value.as_ref()).ok_or_else(|| format!("{}: no sequence number", at()))?;
        if seq != self.next[k] {
            return Err(format!(
                "{}: key-{k:06} has sequence {seq} where {} was due (out of order, lost or repeated)",
                at(),
                self.next[k]
            )
            .into());
        }
        if self.partition[k] >= 0 && self.partition[k] != r.partition {
            return Err(format!("{}: key-{k:06} was in partition {} before", at(), self.partition[k]).into());
        }
        self.partition[k] = r.partition;
        self.next[k] += 1;
        Ok(())
    }

    fn keys_seen(&self) -> usize {
        self.next.iter().filter(|&&n| n > 0).count()
    }
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
    let mut keyed = args.keys.map(KeyCheck::new).transpose()?;
    let at_end = |consumer: &Consumer| partitions.iter().all(|tp| consumer.current_lag(tp) == Some(0));
    while records < args.records || (args.to_end && !at_end(&consumer)) {
        let batch = consumer
            .poll(Duration::from_millis(100))
            .await
            .map_err(|e| e.to_string())?;
        let now = Instant::now();
        if batch.is_empty() {
            if now.duration_since(last_record) > idle {
                if records >= args.records {
                    return Err(format!(
                        "{records} records read, but the partitions did not reach their end in {} ms",
                        args.timeout_ms
                    )
                    .into());
                }
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
            if let Some(k) = &mut keyed {
                k.check(r)?;
            }
            bytes += r.key.as_ref().map_or(0, |k| k.len() as u64) + r.value.as_ref().map_or(0, |v| v.len() as u64);
        }
        records += batch.len() as u64;
        progress.update(records, bytes, records);
    }
    progress.finish();
    if args.to_end && records != args.records {
        return Err(format!("the topic held {records} records to its end, not {}", args.records).into());
    }
    let secs = started.elapsed().as_secs_f64();
    let (cpu1, rss) = usage();
    let first_ms = first_record.map_or(0.0, |t| t.duration_since(started).as_secs_f64() * 1000.0);
    let m = consumer.metrics();
    outln!(
        "{{\"client\":\"strom\",\"records\":{},\"bytes\":{},\"seconds\":{:.3},\"records_per_s\":{:.0},\"mib_per_s\":{:.2},\"cpu_seconds\":{:.2},\"max_rss_kib\":{},\"first_record_ms\":{:.1},\"fetches\":{},\"fetched_bytes\":{},{}\"settings\":{}}}",
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
        match &keyed {
            Some(k) => format!("\"keys_seen\":{},\"per_key_order\":\"checked\",", k.keys_seen()),
            None => String::new(),
        },
        settings
    )?;
    consumer.close().await.map_err(|e| e.to_string())?;
    Ok(())
}
