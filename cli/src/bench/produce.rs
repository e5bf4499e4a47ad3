//! `strom bench produce`: S1's load, and S3's keyed mode (`--keys`).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::Instant;

use strom_client::{ClientConfig, DeliveryFuture, Producer, ProducerConfig, ProducerRecord};

use super::{payloads, spread_json, starved, usage, KeyStream, Stamper};
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
    /// Keyed records (S3): each record's key is one of N keys `key-NNNNNN`, drawn in the order
    /// every benchmark client draws them, and the first 8 bytes of its value are replaced by
    /// the key's sequence number (big-endian u64, from 0), so a reader can check per-key order
    /// and completeness (`strom bench consume --keys N`). The default partitioner hashes the
    /// key (murmur2, as Java's).
    #[arg(long, value_name = "N")]
    keys: Option<u64>,
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
    let mut keyed = match args.keys {
        Some(n) => Some((KeyStream::new(n)?, vec![0u64; n as usize], Stamper::default())),
        None => None,
    };
    let payload = match args.keys {
        Some(n) => format!(
            "{payload},\"keys\":{n},\"key\":\"key-NNNNNN\",\"partitioner\":\"murmur2 of the key\",\"sequence\":\"value bytes 0..8, big-endian u64 per key\""
        ),
        None => payload,
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
        let (key, value) = match &mut keyed {
            // No allocation per record: the key is a slice of one buffer, the value is cut
            // from the stamper's chunk.
            Some((stream, seqs, stamper)) => {
                let (k, key) = stream.next_key();
                let seq = seqs[k];
                seqs[k] += 1;
                bytes += key.len() as u64;
                (Some(key), stamper.stamp(seq, &values[next]))
            }
            None => (None, values[next].clone()),
        };
        next = if next + 1 == values.len() { 0 } else { next + 1 };
        bytes += value.len() as u64;
        // The topic is a String per record: ProducerRecord owns it (the public API).
        let sent = producer
            .send(ProducerRecord {
                topic: args.topic.clone(),
                key,
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
