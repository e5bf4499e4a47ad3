//! librdkafka load, reported like `strom bench produce|consume`: one JSON object.
//!
//! Produce (bench/s1_produce.py): `rdkafka-peer BOOTSTRAP TOPIC RECORDS RECORD_SIZE
//! [--payload-file=FILE] [key=value ...]` (librdkafka property names). Uses `BaseProducer` with
//! polling, librdkafka's fastest path (as rdkafka_performance). Every record carries one
//! constant value of RECORD_SIZE random uppercase letters, or, with `--payload-file`, the
//! file's values in turn (newline-separated, as `strom bench produce --payload-file` and
//! Java's ProducerPerformance read it; bench/corpus.py writes one).
//!
//! Keyed produce (bench/s3_keyed.py): the produce command with `--keys=N`: keys `key-NNNNNN`
//! drawn as `strom bench produce --keys` draws them, and the key's sequence number in the
//! value's first 8 bytes (big-endian). Pass `partitioner=murmur2_random` for Java's key hash.
//!
//! Latency (bench/s5_latency.py): `rdkafka-peer latency BOOTSTRAP TOPIC RATE SECONDS
//! [--payload-file=FILE] [--warmup-seconds=1] [key=value ...]`; transactions
//! (bench/s4_txn.py): `rdkafka-peer txn BOOTSTRAP TOPIC TRANSACTIONS PER_TRANSACTION
//! [--payload-file=FILE] [key=value ...]`. See src/scenarios.rs.
//!
//! Consume (bench/s2_consume.py): `rdkafka-peer consume BOOTSTRAP TOPIC RECORDS [key=value ...]`.
//! Uses `BaseConsumer::poll` (one message per call, as a Rust application reads it) with
//! every partition assigned at `Offset::Beginning` (no group join; librdkafka wants a
//! `group.id` for `assign`, so one is set, never used for commits).

mod scenarios;

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::ClientContext;

pub(crate) struct Ctx;
impl ClientContext for Ctx {}
impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = r {
            eprintln!("delivery failed: {e}");
            std::process::exit(1);
        }
    }
}

/// CPU seconds (user + system) of this process so far, from /proc (clock ticks of 10 ms).
pub(crate) fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let f: Vec<String> = s.rsplit_once(')')?.1.split_whitespace().map(str::to_owned).collect();
            Some((f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

fn consume(args: &[String]) {
    if args.len() < 5 {
        eprintln!("usage: rdkafka-peer consume BOOTSTRAP TOPIC RECORDS [key=value ...]");
        std::process::exit(2);
    }
    let (bootstrap, topic) = (&args[2], &args[3]);
    let records: u64 = args[4].parse().expect("RECORDS");
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", "rdkafka-peer-assign")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false");
    for kv in &args[5..] {
        let (k, v) = kv.split_once('=').expect("key=value");
        cfg.set(k, v);
    }
    let consumer: BaseConsumer = cfg.create().expect("consumer");
    let md = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("metadata");
    let parts: Vec<i32> = md.topics()[0].partitions().iter().map(|p| p.id()).collect();
    let mut tpl = TopicPartitionList::new();
    for p in &parts {
        tpl.add_partition_offset(topic, *p, Offset::Beginning)
            .expect("partition");
    }
    // Every knob the comparison depends on, as librdkafka resolved it.
    let knobs = [
        "check.crcs",
        "fetch.min.bytes",
        "fetch.max.bytes",
        "max.partition.fetch.bytes",
        "fetch.wait.max.ms",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "fetch.queue.backoff.ms",
    ];
    let settings: Vec<String> = knobs
        .iter()
        .map(|k| format!("\"{k}\":\"{}\"", cfg.get(k).unwrap_or("default")))
        .collect();
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    consumer.assign(&tpl).expect("assign");
    let mut last = vec![-1i64; parts.len()];
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut first_ms = None;
    let mut last_record = Instant::now();
    while n < records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                let p = m.partition() as usize;
                assert!(m.offset() > last[p], "partition {p} went back to {}", m.offset());
                last[p] = m.offset();
                bytes += (m.key_len() + m.payload_len()) as u64;
                n += 1;
                if first_ms.is_none() {
                    first_ms = Some(started.elapsed().as_secs_f64() * 1000.0);
                }
                last_record = Instant::now();
            }
            Some(Err(e)) => panic!("consume failed: {e}"),
            None => {
                assert!(
                    last_record.elapsed() < Duration::from_secs(30),
                    "only {n} of {records} records arrived"
                );
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{{\"client\":\"librdkafka\",\"records\":{n},\"bytes\":{bytes},\"seconds\":{secs:.3},\"records_per_s\":{:.0},\"mib_per_s\":{:.2},\"cpu_seconds\":{cpu:.2},\"first_record_ms\":{:.1},\"settings\":{{\"mode\":\"assign\",\"partitions\":{},{}}}}}",
        n as f64 / secs,
        bytes as f64 / secs / (1 << 20) as f64,
        first_ms.unwrap_or(0.0),
        parts.len(),
        settings.join(",")
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("consume") => return consume(&args),
        Some("latency") => return scenarios::latency(&args),
        Some("txn") => return scenarios::txn(&args),
        _ => {}
    }
    if args.len() < 5 {
        eprintln!("usage: rdkafka-peer BOOTSTRAP TOPIC RECORDS RECORD_SIZE [--payload-file=FILE] [key=value ...]");
        std::process::exit(2);
    }
    let (bootstrap, topic) = (&args[1], &args[2]);
    let records: u64 = args[3].parse().expect("RECORDS");
    let size: usize = args[4].parse().expect("RECORD_SIZE");
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    let mut payload_file = None;
    let mut keys = None;
    let mut knobs = Vec::new();
    for kv in &args[5..] {
        if let Some(file) = kv.strip_prefix("--payload-file=") {
            payload_file = Some(file.to_owned());
            continue;
        }
        if let Some(n) = kv.strip_prefix("--keys=") {
            keys = Some(scenarios::KeyStream::new(n.parse().expect("--keys=N")));
            continue;
        }
        let (k, v) = kv.split_once('=').expect("key=value");
        cfg.set(k, v);
        knobs.push(format!("\"{k}\":\"{v}\""));
    }
    let producer: BaseProducer<Ctx> = cfg.create_with_context(Ctx).expect("producer");
    let data = match &payload_file {
        Some(file) => std::fs::read(file).unwrap_or_else(|e| panic!("--payload-file={file}: {e}")),
        None => constant(size),
    };
    let values = split_values(&data);
    assert!(!values.is_empty(), "the payload file holds no values");
    knobs.push(match &payload_file {
        Some(file) => format!("\"payload_file\":\"{file}\",\"payload_values\":{}", values.len()),
        None => format!("\"record_size\":{size}"),
    });
    if let Some(k) = &keys {
        knobs.push(format!(
            "\"keys\":{},\"key\":\"key-NNNNNN\",\"sequence\":\"value bytes 0..8, big-endian u64 per key\"",
            k.len()
        ));
    }
    let (mut next, mut bytes) = (0, 0u64);
    let mut stamped = Vec::new();
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    for _ in 0..records {
        // librdkafka copies the value into its message (RD_KAFKA_MSG_F_COPY, as rust-rdkafka asks).
        let mut payload = values[next];
        next = if next + 1 == values.len() { 0 } else { next + 1 };
        let mut key: Option<&[u8]> = None;
        if let Some(k) = &mut keys {
            let (seq, kb) = k.next_key();
            scenarios::stamp_into(&mut stamped, seq, payload);
            payload = &stamped;
            key = Some(kb);
            bytes += kb.len() as u64;
        }
        bytes += payload.len() as u64;
        let mut rec = BaseRecord::<[u8], [u8]>::to(topic).payload(payload);
        if let Some(key) = key {
            rec = rec.key(key);
        }
        loop {
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    rec = r;
                    producer.poll(Duration::from_millis(1));
                }
                Err((e, _)) => panic!("send failed: {e}"),
            }
        }
    }
    producer.flush(Duration::from_secs(120)).expect("flush");
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!(
        "{{\"client\":\"librdkafka\",\"records\":{records},\"bytes\":{bytes},\"seconds\":{secs:.3},\"records_per_s\":{:.0},\"mib_per_s\":{:.2},\"cpu_seconds\":{cpu:.2},\"settings\":{{{}}}}}",
        records as f64 / secs,
        bytes as f64 / secs / (1 << 20) as f64,
        knobs.join(",")
    );
}

/// Random uppercase letters from one xorshift seed: the constant value `strom bench produce`,
/// bench/franz-peer and bench/corpus.py's constant() send too.
pub(crate) fn constant(size: usize) -> Vec<u8> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    (0..size)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b'A' + (seed % 26) as u8
        })
        .collect()
}

/// A payload file's values: split on `\n` as Java's ProducerPerformance splits its
/// --payload-file (trailing empty values dropped). A constant value has no newline: one value.
pub(crate) fn split_values(data: &[u8]) -> Vec<&[u8]> {
    let mut values: Vec<&[u8]> = data.split(|&b| b == b'\n').collect();
    while values.last().is_some_and(|v| v.is_empty()) {
        values.pop();
    }
    values
}
