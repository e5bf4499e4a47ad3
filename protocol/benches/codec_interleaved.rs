//! The codec comparison of `benches/codec.rs` (the same batch, the same two codecs), timed
//! so that load from other processes cancels out: Strom and kafka-protocol alternate in
//! short rounds (10 iterations each), and each side's fastest round is kept. criterion
//! measures one function for seconds before the next, so on a shared machine a burst of
//! load lands on one side only; here both sides see the same conditions and the minimum
//! is each one's unloaded speed.
//!
//! Run: `cargo bench -p strom-protocol --bench codec_interleaved [-- ROUNDS]` (default 300
//! rounds); add `--features zstd-c` for Strom's zstd through the C library.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression as KpCompression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as KpTimestampType,
};
use strom_protocol::record_batch::{BatchBuilder, BatchHeader, BatchView, DecodeOptions, NewRecord};
use strom_protocol::Compression;

const N: usize = 1000;
const VALUE: usize = 100;
const PER_ROUND: u32 = 10;

fn values() -> Vec<Vec<u8>> {
    (0..N)
        .map(|i| {
            let mut v = format!(
                "{{\"id\":{i},\"user\":\"user-{}\",\"event\":\"{}\",\"amount\":{}.{:02}}}",
                i % 97,
                ["click", "view", "buy", "share"][i % 4],
                (i * 7919) % 1000,
                i % 100
            )
            .into_bytes();
            v.resize(VALUE, b' ');
            v
        })
        .collect()
}

fn strom_encode(values: &[Vec<u8>], codec: Compression) -> Bytes {
    let header = BatchHeader {
        compression: codec,
        ..Default::default()
    };
    let mut b = BatchBuilder::new(header, 128 * 1024);
    for (i, v) in values.iter().enumerate() {
        b.append(&NewRecord {
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(v),
            headers: &[],
        })
        .unwrap();
    }
    b.finish().unwrap()
}

fn kp_codec(c: Compression) -> KpCompression {
    match c {
        Compression::Gzip => KpCompression::Gzip,
        Compression::Snappy => KpCompression::Snappy,
        Compression::Lz4 => KpCompression::Lz4,
        Compression::Zstd => KpCompression::Zstd,
        _ => KpCompression::None,
    }
}

fn kp_records(values: &[Vec<u8>]) -> Vec<KpRecord> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| KpRecord {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: KpTimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect()
}

fn kp_encode(records: &[KpRecord], codec: Compression) -> Bytes {
    let mut buf = BytesMut::with_capacity(128 * 1024);
    let opts = RecordEncodeOptions {
        version: 2,
        compression: kp_codec(codec),
    };
    RecordBatchEncoder::encode(&mut buf, records, &opts).unwrap();
    buf.freeze()
}

fn strom_decode(batch: &Bytes, opts: &DecodeOptions) -> usize {
    let mut buf = batch.clone();
    let view = BatchView::parse(&mut buf, opts).unwrap().unwrap();
    view.records(opts)
        .unwrap()
        .map(|r| r.unwrap().value.map_or(0, |v| v.len()))
        .sum()
}

fn kp_decode(batch: &Bytes) -> usize {
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    set.records
        .iter()
        .map(|r| r.value.as_ref().map_or(0, |v| v.len()))
        .sum()
}

/// Each function's fastest round, in seconds per call; the functions alternate every round.
fn fastest(rounds: usize, fs: &mut [&mut dyn FnMut() -> usize]) -> Vec<f64> {
    let mut best = vec![f64::MAX; fs.len()];
    for _ in 0..rounds {
        for (i, f) in fs.iter_mut().enumerate() {
            let t = Instant::now();
            for _ in 0..PER_ROUND {
                black_box(f());
            }
            best[i] = best[i].min(t.elapsed().as_secs_f64() / f64::from(PER_ROUND));
        }
    }
    best
}

fn mib_s(secs: f64) -> f64 {
    (N * VALUE) as f64 / secs / f64::from(1 << 20)
}

fn main() {
    // `cargo bench` passes `--bench`; a number is the round count.
    let rounds = std::env::args().find_map(|a| a.parse().ok()).unwrap_or(300);
    let values = values();
    let kp_recs = kp_records(&values);
    let opts = DecodeOptions::default();
    println!("{rounds} rounds of {PER_ROUND} calls each, alternating; the fastest round of each side");
    println!("| codec | operation | strom MiB/s | kafka-protocol MiB/s | strom / kafka-protocol |");
    println!("|---|---|---|---|---|");
    for codec in Compression::ALL {
        let ours = strom_encode(&values, codec);
        let theirs = kp_encode(&kp_recs, codec);
        assert_eq!(strom_decode(&theirs, &opts), N * VALUE);
        assert_eq!(kp_decode(&ours), N * VALUE);
        let mut rows = vec![(
            "encode",
            fastest(
                rounds,
                &mut [&mut || strom_encode(&values, codec).len(), &mut || {
                    kp_encode(&kp_recs, codec).len()
                }],
            ),
        )];
        rows.push((
            "decode",
            fastest(
                rounds,
                &mut [&mut || strom_decode(&ours, &opts), &mut || kp_decode(&ours)],
            ),
        ));
        if codec == Compression::Zstd {
            // kafka-protocol's encoding: C zstd at level 3, what Java writes.
            rows.push((
                "decode C level 3",
                fastest(
                    rounds,
                    &mut [&mut || strom_decode(&theirs, &opts), &mut || kp_decode(&theirs)],
                ),
            ));
        }
        for (op, t) in rows {
            let (s, k) = (mib_s(t[0]), mib_s(t[1]));
            println!("| {codec} | {op} | {s:.0} | {k:.0} | {:.2}x |", s / k);
        }
    }
}
