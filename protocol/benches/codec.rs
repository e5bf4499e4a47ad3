//! Record batch encode/decode: Strom's codec side by side with kafka-protocol's
//! `RecordBatchEncoder`/`RecordBatchDecoder` on identical input, in one run.
//!
//! Input: one batch of 1000 records, 100-byte JSON-like values, null keys, no headers.
//! Throughput is the uncompressed payload (100 kB per iteration).
//!
//! Also: each decoder on the other's zstd encoding (kafka-protocol writes C zstd at level 3,
//! as Java does), the gzip backends side by side (miniz_oxide, which Strom used before,
//! against zlib-rs through flate2), and Strom's encoders at several levels (KIP-390), with
//! the compressed sizes printed first.
//!
//! Run: `cargo bench -p strom-protocol --bench codec` (numbers in BENCHMARKS.md); add
//! `--features zstd-c` for Strom's zstd through the C library.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kafka_protocol::records::{
    Compression as KpCompression, Record as KpRecord, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as KpTimestampType,
};
use strom_protocol::record_batch::{BatchBuilder, BatchHeader, BatchView, DecodeOptions, NewRecord};
use strom_protocol::{Compression, CompressionLevel};

const N: usize = 1000;
const VALUE: usize = 100;

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

fn kp_codec(c: Compression) -> KpCompression {
    match c {
        Compression::Gzip => KpCompression::Gzip,
        Compression::Snappy => KpCompression::Snappy,
        Compression::Lz4 => KpCompression::Lz4,
        Compression::Zstd => KpCompression::Zstd,
        _ => KpCompression::None,
    }
}

fn strom_encode(values: &[Vec<u8>], codec: Compression) -> Bytes {
    strom_encode_at(values, codec, None)
}

fn strom_encode_at(values: &[Vec<u8>], codec: Compression, level: Option<CompressionLevel>) -> Bytes {
    let mut b = BatchBuilder::new(
        BatchHeader {
            compression: codec,
            ..Default::default()
        },
        128 * 1024,
    );
    if let Some(level) = level {
        b = b.with_compression_level(level);
    }
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
            // In lock-step with the offset, or the encoder starts a batch per record.
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
    RecordBatchEncoder::encode(
        &mut buf,
        records,
        &RecordEncodeOptions {
            version: 2,
            compression: kp_codec(codec),
        },
    )
    .unwrap();
    buf.freeze()
}

fn strom_decode(batch: &Bytes, opts: &DecodeOptions) -> usize {
    let mut buf = batch.clone();
    let view = BatchView::parse(&mut buf, opts).unwrap().unwrap();
    let mut n = 0;
    for r in view.records(opts).unwrap() {
        n += r.unwrap().value.map_or(0, |v| v.len());
    }
    n
}

fn kp_decode(batch: &Bytes) -> usize {
    let mut buf = batch.clone();
    let set = RecordBatchDecoder::decode(&mut buf).unwrap();
    set.records
        .iter()
        .map(|r| r.value.as_ref().map_or(0, |v| v.len()))
        .sum()
}

fn bench(c: &mut Criterion) {
    let values = values();
    let kp_recs = kp_records(&values);
    let opts = DecodeOptions::default();
    for codec in Compression::ALL {
        let ours = strom_encode(&values, codec);
        let theirs = kp_encode(&kp_recs, codec);
        // Both decoders read both encodings.
        assert_eq!(strom_decode(&theirs, &opts), N * VALUE);
        assert_eq!(kp_decode(&ours), N * VALUE);

        let mut g = c.benchmark_group(format!("encode/{codec}"));
        g.throughput(Throughput::Bytes((N * VALUE) as u64));
        g.bench_function("strom", |b| b.iter(|| strom_encode(black_box(&values), codec)));
        g.bench_function("kafka-protocol", |b| b.iter(|| kp_encode(black_box(&kp_recs), codec)));
        g.finish();

        let mut g = c.benchmark_group(format!("decode/{codec}"));
        g.throughput(Throughput::Bytes((N * VALUE) as u64));
        g.bench_function("strom", |b| b.iter(|| strom_decode(black_box(&ours), &opts)));
        g.bench_function("kafka-protocol", |b| b.iter(|| kp_decode(black_box(&ours))));
        g.finish();

        if codec == Compression::Zstd {
            // What a consumer of Java's batches decodes: C zstd at level 3.
            let mut g = c.benchmark_group("decode-c-level-3/zstd");
            g.throughput(Throughput::Bytes((N * VALUE) as u64));
            g.bench_function("strom", |b| b.iter(|| strom_decode(black_box(&theirs), &opts)));
            g.bench_function("kafka-protocol", |b| b.iter(|| kp_decode(black_box(&theirs))));
            g.finish();
        }
    }
    gzip_backends(c, &values);
    levels(c, &values);
}

/// The records section of one batch, uncompressed: what the codecs compress.
fn records_section(values: &[Vec<u8>]) -> Vec<u8> {
    strom_encode(values, Compression::None)[61..].to_vec()
}

/// miniz_oxide (Strom's gzip backend before zlib-rs) against zlib-rs through flate2, at
/// the default level 6, on the same records section, in the same run.
fn gzip_backends(c: &mut Criterion, values: &[Vec<u8>]) {
    let raw = records_section(values);
    let mut ours = Vec::new();
    strom_protocol::compression::compress(Compression::Gzip, &raw, &mut ours).unwrap();
    let deflated = miniz_oxide::deflate::compress_to_vec(&raw, 6);
    let mut g = c.benchmark_group("gzip-backend/compress");
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("miniz_oxide", |b| {
        b.iter(|| miniz_oxide::deflate::compress_to_vec(black_box(&raw), 6))
    });
    g.bench_function("zlib-rs", |b| {
        b.iter(|| {
            let mut out = Vec::with_capacity(raw.len() / 2);
            strom_protocol::compression::compress(Compression::Gzip, black_box(&raw), &mut out).unwrap();
            out
        })
    });
    g.finish();
    let mut g = c.benchmark_group("gzip-backend/decompress");
    g.throughput(Throughput::Bytes(raw.len() as u64));
    g.bench_function("miniz_oxide", |b| {
        b.iter(|| miniz_oxide::inflate::decompress_to_vec(black_box(&deflated)).unwrap())
    });
    g.bench_function("zlib-rs", |b| {
        b.iter(|| strom_protocol::compression::decompress(Compression::Gzip, black_box(&ours), 1 << 20).unwrap())
    });
    g.finish();
}

/// Strom's encode at several levels (KIP-390), those this build honours; sizes printed.
fn levels(c: &mut Criterion, values: &[Vec<u8>]) {
    let raw = records_section(values).len();
    let cases = [
        (Compression::Gzip, 1),
        (Compression::Gzip, 9),
        (Compression::Lz4, 9),
        (Compression::Lz4, 1),
        (Compression::Lz4, 4),
        (Compression::Lz4, 12),
        (Compression::Zstd, 1),
        (Compression::Zstd, 3),
        (Compression::Zstd, 19),
    ];
    for (codec, level) in cases {
        let Ok(level) = CompressionLevel::new(codec, level) else {
            println!("level {codec} {level}: not in this build");
            continue;
        };
        let size = strom_encode_at(values, codec, Some(level)).len();
        println!(
            "level {codec} {}: batch of {size} bytes ({raw} bytes of records uncompressed)",
            level.level()
        );
        let mut g = c.benchmark_group(format!("encode-level/{codec}-{}", level.level()));
        g.throughput(Throughput::Bytes((N * VALUE) as u64));
        g.bench_function("strom", |b| {
            b.iter(|| strom_encode_at(black_box(values), codec, Some(level)))
        });
        g.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(std::time::Duration::from_millis(500)).measurement_time(std::time::Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
