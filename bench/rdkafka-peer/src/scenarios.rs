//! The second-wave scenarios of issue 25 through librdkafka, as `strom bench` runs them: S3's
//! keys and per-key stamp (used by the keyed produce), S5's latency at a fixed rate and S4's
//! transactions. What every client sends is defined in cli/src/bench/mod.rs; this mirrors it.

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

use crate::{constant, cpu_seconds, split_values, Ctx};

/// S3's keys: the i-th draw of one xorshift64 stream modulo the key count, `key-NNNNNN`.
pub(crate) struct KeyStream {
    seed: u64,
    keys: Vec<u8>,
    seq: Vec<u64>,
}

impl KeyStream {
    pub(crate) fn new(n: u64) -> KeyStream {
        assert!((1..=1_000_000).contains(&n), "--keys={n}: want 1 to 1000000");
        let mut keys = Vec::with_capacity(n as usize * 10);
        for k in 0..n {
            keys.extend_from_slice(format!("key-{k:06}").as_bytes());
        }
        KeyStream {
            seed: 0x9e37_79b9_7f4a_7c15,
            keys,
            seq: vec![0; n as usize],
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.seq.len()
    }

    /// The next record's sequence number (of its key) and key.
    pub(crate) fn next_key(&mut self) -> (u64, &[u8]) {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let k = (self.seed % self.seq.len() as u64) as usize;
        let seq = self.seq[k];
        self.seq[k] += 1;
        (seq, &self.keys[k * 10..k * 10 + 10])
    }
}

/// `value` with its first 8 bytes replaced by `stamp` (big-endian), into `buf` (reused:
/// librdkafka copies the value anyway).
pub(crate) fn stamp_into(buf: &mut Vec<u8>, stamp: u64, value: &[u8]) {
    buf.clear();
    buf.extend_from_slice(&stamp.to_be_bytes());
    buf.extend_from_slice(value.get(8..).unwrap_or_default());
}

fn histogram() -> hdrhistogram::Histogram<u64> {
    hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("histogram bounds")
}

fn record(h: &mut hdrhistogram::Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

/// The percentiles strom bench prints, in milliseconds.
fn percentiles(h: &hdrhistogram::Histogram<u64>, prefix: &str) -> String {
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "\"{prefix}p50_ms\":{:.3},\"{prefix}p90_ms\":{:.3},\"{prefix}p99_ms\":{:.3},\"{prefix}p999_ms\":{:.3},\"{prefix}max_ms\":{:.3},\"{prefix}mean_ms\":{:.3}",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
        h.mean() / 1000.0
    )
}

/// Options after the positional arguments: `--payload-file=F`, `--warmup-seconds=N`, and
/// librdkafka properties `key=value` (set on `cfg` and listed for the report).
fn options(rest: &[String], cfg: &mut ClientConfig) -> (Option<String>, u64, Vec<String>) {
    let (mut file, mut warmup, mut knobs) = (None, 1, Vec::new());
    for kv in rest {
        if let Some(f) = kv.strip_prefix("--payload-file=") {
            file = Some(f.to_owned());
        } else if let Some(w) = kv.strip_prefix("--warmup-seconds=") {
            warmup = w.parse().expect("--warmup-seconds=N");
        } else {
            let (k, v) = kv.split_once('=').expect("key=value");
            cfg.set(k, v);
            knobs.push(format!("\"{k}\":\"{v}\""));
        }
    }
    (file, warmup, knobs)
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// S5: records at a fixed rate through a `BaseProducer` while a `BaseConsumer` on another
/// thread of this process reads the topic (every partition assigned from the beginning);
/// latency = the time the consumer got a record minus the send time in its first 8 bytes
/// (ns since the run's origin, a monotonic clock). The sender keeps an absolute schedule
/// (record i is due at origin + i/rate); while ahead it serves delivery reports
/// (`poll` up to the next due time, a sleep under 1 ms), then sends every record that is due.
pub(crate) fn latency(args: &[String]) {
    if args.len() < 6 {
        eprintln!("usage: rdkafka-peer latency BOOTSTRAP TOPIC RATE SECONDS [--payload-file=F] [--warmup-seconds=1] [key=value ...]");
        std::process::exit(2);
    }
    let (bootstrap, topic) = (&args[2], args[3].clone());
    let rate: u64 = args[4].parse().expect("RATE");
    let seconds: u64 = args[5].parse().expect("SECONDS");
    assert!(rate > 0 && seconds > 0, "RATE and SECONDS must be at least 1");
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    let (file, warmup_s, knobs) = options(&args[6..], &mut cfg);
    let data = match &file {
        Some(f) => std::fs::read(f).unwrap_or_else(|e| panic!("--payload-file={f}: {e}")),
        None => constant(100),
    };
    let values = split_values(&data);
    assert!(!values.is_empty(), "the payload file holds no values");
    let producer: BaseProducer<Ctx> = cfg.create_with_context(Ctx).expect("producer");
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "rdkafka-peer-latency")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("fetch.wait.max.ms", "500")
        .set("fetch.min.bytes", "1")
        .create()
        .expect("consumer");
    let md = consumer
        .fetch_metadata(Some(&topic), Duration::from_secs(10))
        .expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in md.topics()[0].partitions() {
        tpl.add_partition_offset(&topic, p.id(), Offset::Beginning)
            .expect("partition");
    }
    consumer.assign(&tpl).expect("assign");

    let warmup = warmup_s * rate;
    let total = warmup + seconds * rate;
    let origin = Instant::now();
    let measured_from = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(u64::MAX));
    let from = measured_from.clone();
    let reader = std::thread::spawn(move || {
        let mut h = histogram();
        let mut received = 0u64;
        let mut last = Instant::now();
        while received < total {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let at = origin.elapsed();
                    last = Instant::now();
                    let v = m.payload().unwrap_or_default();
                    let sent =
                        u64::from_be_bytes(v.get(..8).and_then(|b| b.try_into().ok()).unwrap_or_else(|| {
                            panic!("partition {} offset {}: no send time", m.partition(), m.offset())
                        }));
                    received += 1;
                    if sent >= from.load(std::sync::atomic::Ordering::Relaxed) {
                        record(&mut h, at.saturating_sub(Duration::from_nanos(sent)));
                    }
                }
                Some(Err(e)) => panic!("consume failed: {e}"),
                None if last.elapsed() > Duration::from_secs(30) => break,
                None => {}
            }
        }
        (h, received, Instant::now())
    });

    let cpu0 = cpu_seconds();
    let mut buf = Vec::new();
    let (mut lag_max, mut measured_start, mut last_send) = (Duration::ZERO, origin, origin);
    let period = 1e9 / rate as f64;
    let mut next = 0;
    for i in 0..total {
        let due = origin + Duration::from_nanos((i as f64 * period) as u64);
        loop {
            let now = Instant::now();
            if now >= due {
                break;
            }
            // poll's timeout is whole milliseconds (a shorter one would spin): sleep the rest.
            match due - now {
                d if d >= Duration::from_millis(1) => {
                    producer.poll(d);
                }
                d => std::thread::sleep(d),
            }
        }
        let now = Instant::now();
        if i >= warmup {
            lag_max = lag_max.max(now - due);
        }
        let sent = (now - origin).as_nanos() as u64;
        if i == warmup {
            measured_start = now;
            measured_from.store(sent, std::sync::atomic::Ordering::Relaxed);
        }
        stamp_into(&mut buf, sent, values[next]);
        next = if next + 1 == values.len() { 0 } else { next + 1 };
        let mut rec = BaseRecord::<(), [u8]>::to(&topic).payload(&buf);
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
        producer.poll(Duration::ZERO);
        last_send = now;
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
    let (h, received, done) = reader.join().expect("consumer thread");
    let cpu = cpu_seconds() - cpu0;
    let wall = (done - origin).as_secs_f64();
    let send_secs = (last_send - measured_start).as_secs_f64();
    let achieved = if send_secs > 0.0 {
        (total - warmup - 1) as f64 / send_secs
    } else {
        0.0
    };
    let kept_up = achieved >= 0.99 * rate as f64;
    let payload = match &file {
        Some(f) => format!("\"payload_file\":\"{f}\",\"payload_values\":{}", values.len()),
        None => "\"record_size\":100".to_owned(),
    };
    println!(
        "{{\"client\":\"librdkafka\",\"rate\":{rate},\"seconds\":{seconds},\"records\":{total},\"measured\":{},\"received\":{received},\"failed\":0,\"achieved_rate\":{achieved:.0},\"kept_up\":{kept_up},\"send_lag_max_ms\":{:.3},{},\"cpu_seconds\":{cpu:.2},\"cpu_percent\":{:.1},\"max_rss_kib\":{},\"settings\":{{{},\"fetch.min.bytes\":1,\"fetch.wait.max.ms\":500,\"consumer\":\"BaseConsumer on its own thread, assign\",\"stamp\":\"value bytes 0..8: send time, ns, big-endian, monotonic clock\",\"pacer\":\"absolute schedule, poll until due\",\"warmup_seconds\":{warmup_s},{payload}}}}}",
        h.len(),
        lag_max.as_secs_f64() * 1000.0,
        percentiles(&h, ""),
        100.0 * cpu / wall,
        peak_rss_kib(),
        knobs.join(","),
    );
    if received != total {
        eprintln!("rdkafka-peer: the consumer got {received} of {total} records");
        std::process::exit(1);
    }
    if !kept_up {
        eprintln!("rdkafka-peer: could not keep up: {achieved:.0} records/s of {rate}");
    }
}

/// S4: transactions of a fixed number of records, one after another, through a
/// transactional `BaseProducer`; a transaction's commit latency runs from
/// `begin_transaction` to `commit_transaction` returning (which flushes first).
pub(crate) fn txn(args: &[String]) {
    if args.len() < 6 {
        eprintln!(
            "usage: rdkafka-peer txn BOOTSTRAP TOPIC TRANSACTIONS PER_TRANSACTION [--payload-file=F] [key=value ...]"
        );
        std::process::exit(2);
    }
    let (bootstrap, topic) = (&args[2], &args[3]);
    let transactions: u64 = args[4].parse().expect("TRANSACTIONS");
    let per: u64 = args[5].parse().expect("PER_TRANSACTION");
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    let (file, _, mut knobs) = options(&args[6..], &mut cfg);
    if cfg.get("transactional.id").is_none() {
        let id = format!("rdkafka-bench-txn-{}", std::process::id());
        cfg.set("transactional.id", &id);
        knobs.push(format!("\"transactional.id\":\"{id}\""));
    }
    let data = match &file {
        Some(f) => std::fs::read(f).unwrap_or_else(|e| panic!("--payload-file={f}: {e}")),
        None => constant(100),
    };
    let values = split_values(&data);
    let producer: BaseProducer<Ctx> = cfg.create_with_context(Ctx).expect("producer");
    let timeout = Duration::from_secs(60);
    producer.init_transactions(timeout).expect("init_transactions");
    let mut h = histogram();
    let (mut next, mut bytes) = (0, 0u64);
    let cpu0 = cpu_seconds();
    let started = Instant::now();
    for _ in 0..transactions {
        let begun = Instant::now();
        producer.begin_transaction().expect("begin_transaction");
        for _ in 0..per {
            let payload = values[next];
            next = if next + 1 == values.len() { 0 } else { next + 1 };
            bytes += payload.len() as u64;
            let mut rec = BaseRecord::<(), [u8]>::to(topic).payload(payload);
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
        producer.commit_transaction(timeout).expect("commit_transaction");
        record(&mut h, begun.elapsed());
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    let records = transactions * per;
    let payload = match &file {
        Some(f) => format!("\"payload_file\":\"{f}\",\"payload_values\":{}", values.len()),
        None => "\"record_size\":100".to_owned(),
    };
    println!(
        "{{\"client\":\"librdkafka\",\"records\":{records},\"transactions\":{transactions},\"per_transaction\":{per},\"bytes\":{bytes},\"seconds\":{secs:.3},\"records_per_s\":{:.0},\"mib_per_s\":{:.2},{},\"cpu_seconds\":{cpu:.2},\"max_rss_kib\":{},\"settings\":{{{},\"per_transaction\":{per},{payload}}}}}",
        records as f64 / secs,
        bytes as f64 / secs / (1 << 20) as f64,
        percentiles(&h, "commit_"),
        peak_rss_kib(),
        knobs.join(","),
    );
}
