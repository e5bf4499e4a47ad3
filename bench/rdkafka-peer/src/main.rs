//! librdkafka producer load, reported like `strom bench produce`: one JSON object.
//!
//! `rdkafka-peer BOOTSTRAP TOPIC RECORDS RECORD_SIZE [key=value ...]` (librdkafka property
//! names). Uses `BaseProducer` with polling, librdkafka's fastest path (as rdkafka_performance).

use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::ClientContext;

struct Ctx;
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 5 {
        eprintln!("usage: rdkafka-peer BOOTSTRAP TOPIC RECORDS RECORD_SIZE [key=value ...]");
        std::process::exit(2);
    }
    let (bootstrap, topic) = (&args[1], &args[2]);
    let records: u64 = args[3].parse().expect("RECORDS");
    let size: usize = args[4].parse().expect("RECORD_SIZE");
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap);
    for kv in &args[5..] {
        let (k, v) = kv.split_once('=').expect("key=value");
        cfg.set(k, v);
    }
    let producer: BaseProducer<Ctx> = cfg.create_with_context(Ctx).expect("producer");
    // Random uppercase letters, one payload for all records, as ProducerPerformance.
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let payload: Vec<u8> = (0..size)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            b'A' + (seed % 26) as u8
        })
        .collect();
    let started = Instant::now();
    for _ in 0..records {
        let mut rec = BaseRecord::<(), [u8]>::to(topic).payload(&payload);
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
    let bytes = records * size as u64;
    println!(
        "{{\"client\":\"librdkafka\",\"records\":{records},\"bytes\":{bytes},\"seconds\":{secs:.3},\"records_per_s\":{:.0},\"mib_per_s\":{:.2}}}",
        records as f64 / secs,
        bytes as f64 / secs / (1 << 20) as f64
    );
}
