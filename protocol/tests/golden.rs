//! Golden record batches written by the real Java producer (`KafkaProducer`) and stored by a
//! real broker: `tests/golden/<case>.bin` is the partition's log segment (the on-disk format
//! of v2 batches is the wire format), `tests/golden/<case>.expect` what the Java program sent
//! and what the broker reported back. Every field is compared. Regenerate with
//! `scripts/golden/capture`; see `tests/golden/README.md`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;

use bytes::Bytes;
use strom_protocol::record_batch::{BatchView, Batches, ControlRecordType, DecodeOptions, Record, TimestampType};
use strom_protocol::WireError;

/// Every captured case; `every_fixture_is_tested` keeps this list and the directory in step.
const CASES: [&str; 9] = [
    "none",
    "gzip",
    "snappy",
    "lz4",
    "zstd",
    "idempotent",
    "transactional-commit",
    "transactional-abort",
    "log-append-time",
];

type Bin = Option<Vec<u8>>;

#[derive(Debug, Default)]
struct ExpRecord {
    offset: i64,
    timestamp: i64,
    key: Bin,
    value: Bin,
    headers: Vec<(Vec<u8>, Bin)>,
}

#[derive(Debug)]
struct ExpControl {
    kind: ControlRecordType,
    coordinator_epoch: i32,
    offset: i64,
}

#[derive(Debug, Default)]
struct ExpBatch {
    base_offset: i64,
    last_offset_delta: i32,
    records_count: i32,
    compression: String,
    timestamp_type: String,
    transactional: bool,
    control: bool,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    /// `None` for "any": within the capture window.
    max_timestamp: Option<i64>,
    records: Vec<ExpRecord>,
    control_record: Option<ExpControl>,
}

#[derive(Debug, Default)]
struct Expect {
    case: String,
    kafka_clients: String,
    capture_start_ms: i64,
    capture_end_ms: i64,
    batches: Vec<ExpBatch>,
}

/// `tests/golden`, or `STROM_GOLDEN_DIR` to check a capture kept elsewhere (e.g. one made with
/// `STROM_GOLDEN_OUT=/tmp/g KAFKA_VERSION=3.9.1 scripts/golden/capture`).
fn golden_dir() -> PathBuf {
    match std::env::var_os("STROM_GOLDEN_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden"),
    }
}

fn bin(s: &str) -> Bin {
    if s == "null" {
        return None;
    }
    let hex = s
        .strip_prefix("x:")
        .unwrap_or_else(|| panic!("bytes must be null or x:<hex>, got {s:?}"));
    assert!(hex.len().is_multiple_of(2), "odd hex length in {s:?}");
    Some(
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect(),
    )
}

fn parse_expect(text: &str) -> Expect {
    let mut e = Expect::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut it = line.split(' ');
        let field = it.next().unwrap();
        let args: Vec<&str> = it.collect();
        let one = || -> &str {
            assert_eq!(args.len(), 1, "line {line:?}");
            args[0]
        };
        if field == "batch" {
            e.batches.push(ExpBatch::default());
            continue;
        }
        match field {
            "case" => e.case = one().to_owned(),
            "kafka_clients" => e.kafka_clients = one().to_owned(),
            "kafka_broker" => {}
            "capture_start_ms" => e.capture_start_ms = one().parse().unwrap(),
            "capture_end_ms" => e.capture_end_ms = one().parse().unwrap(),
            _ => {
                let b = e
                    .batches
                    .last_mut()
                    .unwrap_or_else(|| panic!("{line:?} before any batch"));
                match field {
                    "base_offset" => b.base_offset = one().parse().unwrap(),
                    "last_offset_delta" => b.last_offset_delta = one().parse().unwrap(),
                    "records_count" => b.records_count = one().parse().unwrap(),
                    "compression" => b.compression = one().to_owned(),
                    "timestamp_type" => b.timestamp_type = one().to_owned(),
                    "transactional" => b.transactional = one().parse().unwrap(),
                    "control" if args.len() == 1 => b.control = one().parse().unwrap(),
                    "control" => {
                        assert_eq!(args.len(), 3, "line {line:?}");
                        let kind = match args[0] {
                            "commit" => ControlRecordType::Commit,
                            "abort" => ControlRecordType::Abort,
                            other => panic!("unknown control kind {other:?}"),
                        };
                        b.control_record = Some(ExpControl {
                            kind,
                            coordinator_epoch: args[1].parse().unwrap(),
                            offset: args[2].parse().unwrap(),
                        });
                    }
                    "producer_id" => b.producer_id = one().parse().unwrap(),
                    "producer_epoch" => b.producer_epoch = one().parse().unwrap(),
                    "base_sequence" => b.base_sequence = one().parse().unwrap(),
                    "max_timestamp" => {
                        b.max_timestamp = match one() {
                            "any" => None,
                            n => Some(n.parse().unwrap()),
                        }
                    }
                    "record" => {
                        assert!(args.len() >= 5, "line {line:?}");
                        let n: usize = args[4].parse().unwrap();
                        assert_eq!(args.len(), 5 + 2 * n, "line {line:?}");
                        b.records.push(ExpRecord {
                            offset: args[0].parse().unwrap(),
                            timestamp: args[1].parse().unwrap(),
                            key: bin(args[2]),
                            value: bin(args[3]),
                            headers: args[5..]
                                .chunks(2)
                                .map(|kv| (bin(kv[0]).expect("header key is never null"), bin(kv[1])))
                                .collect(),
                        });
                    }
                    other => panic!("unknown field {other:?} in {line:?}"),
                }
            }
        }
    }
    assert!(!e.case.is_empty() && !e.batches.is_empty(), "incomplete expectations");
    assert!(e.capture_start_ms > 0 && e.capture_end_ms >= e.capture_start_ms);
    e
}

fn load(case: &str) -> (Bytes, Expect) {
    let dir = golden_dir();
    let data = std::fs::read(dir.join(format!("{case}.bin"))).unwrap();
    let text = std::fs::read_to_string(dir.join(format!("{case}.expect"))).unwrap();
    let expect = parse_expect(&text);
    assert_eq!(expect.case, case);
    (Bytes::from(data), expect)
}

fn decode_all(data: &Bytes, opts: DecodeOptions) -> Vec<BatchView> {
    let mut batches = Batches::new(data.clone(), opts);
    let out: Vec<BatchView> = batches.by_ref().collect::<Result<_, _>>().unwrap();
    assert!(
        batches.remainder().is_empty(),
        "{} bytes left after the last batch",
        batches.remainder().len()
    );
    out
}

fn check_record(case: &str, got: &Record, exp: &ExpRecord) {
    let at = format!("{case}: record at offset {}", exp.offset);
    assert_eq!(got.offset, exp.offset, "{at}: offset");
    assert_eq!(got.timestamp, exp.timestamp, "{at}: timestamp");
    assert_eq!(got.key.as_deref(), exp.key.as_deref(), "{at}: key");
    assert_eq!(got.value.as_deref(), exp.value.as_deref(), "{at}: value");
    let headers: Vec<(Vec<u8>, Bin)> = got
        .headers
        .iter()
        .map(|h| (h.key.to_vec(), h.value.map(|v| v.to_vec())))
        .collect();
    assert_eq!(headers, exp.headers, "{at}: headers");
    assert_eq!(got.headers.len(), exp.headers.len(), "{at}: header count");
    // Duplicate keys: all values in order, and `last` is Java's `lastHeader`.
    let h: Vec<Bin> = exp
        .headers
        .iter()
        .filter(|(k, _)| k == b"h")
        .map(|(_, v)| v.clone())
        .collect();
    let got_h: Vec<Bin> = got.headers.get_all(b"h").map(|v| v.map(|v| v.to_vec())).collect();
    assert_eq!(got_h, h, "{at}: get_all(h)");
    assert_eq!(
        got.headers.last(b"h").map(|h| h.value.map(|v| v.to_vec())),
        h.last().cloned(),
        "{at}: last(h)"
    );
    for header in got.headers.iter() {
        header.key_str().unwrap();
    }
}

fn check_batch(case: &str, i: usize, batch: &BatchView, exp: &ExpBatch, e: &Expect) {
    let at = format!("{case}: batch {i}");
    assert_eq!(batch.magic(), 2, "{at}: magic");
    assert!(batch.partition_leader_epoch() >= 0, "{at}: leader epoch");
    assert_eq!(batch.base_offset(), exp.base_offset, "{at}: base offset");
    assert_eq!(
        batch.last_offset_delta(),
        exp.last_offset_delta,
        "{at}: last offset delta"
    );
    assert_eq!(batch.records_count(), exp.records_count, "{at}: count");
    assert_eq!(
        batch.next_offset(),
        exp.base_offset + i64::from(exp.last_offset_delta) + 1,
        "{at}: next offset"
    );
    assert_eq!(
        batch.compression().unwrap().name(),
        exp.compression,
        "{at}: compression"
    );
    let ts_type = match batch.timestamp_type() {
        TimestampType::CreateTime => "CreateTime",
        TimestampType::LogAppendTime => "LogAppendTime",
    };
    assert_eq!(ts_type, exp.timestamp_type, "{at}: timestamp type");
    assert_eq!(batch.is_transactional(), exp.transactional, "{at}: transactional");
    assert_eq!(batch.is_control(), exp.control, "{at}: control");
    assert_eq!(batch.producer_id(), exp.producer_id, "{at}: producer id");
    assert_eq!(batch.producer_epoch(), exp.producer_epoch, "{at}: producer epoch");
    assert_eq!(batch.base_sequence(), exp.base_sequence, "{at}: base sequence");
    assert_eq!(batch.delete_horizon_ms(), None, "{at}: delete horizon");
    match exp.max_timestamp {
        Some(ts) => assert_eq!(batch.max_timestamp(), ts, "{at}: max timestamp"),
        None => assert!(
            (e.capture_start_ms..=e.capture_end_ms).contains(&batch.max_timestamp()),
            "{at}: max timestamp {} outside the capture window {}..={}",
            batch.max_timestamp(),
            e.capture_start_ms,
            e.capture_end_ms
        ),
    }

    let opts = DecodeOptions::default();
    let records: Vec<Record> = batch.records(&opts).unwrap().collect::<Result<_, _>>().unwrap();
    assert_eq!(records.len() as i32, exp.records_count, "{at}: records read");

    if let Some(ctl) = &exp.control_record {
        assert!(exp.records.is_empty());
        let cr = batch.control_record(&opts).unwrap().unwrap();
        assert_eq!(cr.kind, ctl.kind, "{at}: control record kind");
        assert_eq!(
            cr.coordinator_epoch,
            Some(ctl.coordinator_epoch),
            "{at}: coordinator epoch"
        );
        assert_eq!(cr.version, 0, "{at}: control record key version");
        assert_eq!(records.len(), 1);
        let marker = &records[0];
        assert_eq!(marker.offset, ctl.offset, "{at}: marker offset");
        assert_eq!(marker.timestamp, batch.max_timestamp(), "{at}: marker time");
        assert_eq!(batch.base_timestamp(), batch.max_timestamp());
        assert!(marker.headers.is_empty());
        return;
    }
    assert!(batch.control_record(&opts).unwrap().is_none());
    assert_eq!(records.len(), exp.records.len(), "{at}: expected records");
    for (got, want) in records.iter().zip(&exp.records) {
        check_record(case, got, want);
    }
    match batch.timestamp_type() {
        TimestampType::CreateTime => {
            // Java's base timestamp is the first record's; the max is over all records.
            assert_eq!(batch.base_timestamp(), exp.records[0].timestamp, "{at}: base timestamp");
            let max = exp.records.iter().map(|r| r.timestamp).max().unwrap();
            assert_eq!(batch.max_timestamp(), max, "{at}: max over records");
        }
        TimestampType::LogAppendTime => {
            // Every record carries the broker's append time, taken during the capture.
            for r in &records {
                assert_eq!(r.timestamp, batch.max_timestamp(), "{at}: append time");
                assert!(
                    r.timestamp >= e.capture_start_ms && r.timestamp <= e.capture_end_ms,
                    "{at}: append time {} outside the capture window",
                    r.timestamp
                );
            }
        }
    }
}

fn check_case(case: &str) {
    let (data, e) = load(case);
    assert!(!e.kafka_clients.is_empty());
    let batches = decode_all(&data, DecodeOptions::default());
    assert_eq!(batches.len(), e.batches.len(), "{case}: batch count");
    // The CRC really is checked with the default options, and matches.
    for b in &batches {
        let bytes = b.as_bytes();
        assert_eq!(b.crc(), crc32c::crc32c(&bytes[21..]), "{case}: stored CRC");
    }
    let unchecked = decode_all(
        &data,
        DecodeOptions {
            check_crcs: false,
            ..DecodeOptions::default()
        },
    );
    assert_eq!(unchecked, batches);
    let mut total = 0;
    for (i, (batch, exp)) in batches.iter().zip(&e.batches).enumerate() {
        check_batch(case, i, batch, exp, &e);
        total += batch.size_in_bytes();
    }
    assert_eq!(total, data.len());
}

/// Flipping any byte from the CRC field to the end of any batch fails with `BadCrc` (CRC-32C
/// catches every single-byte error); the batches before it still decode.
fn check_corruption(case: &str) {
    let (data, _) = load(case);
    let sizes: Vec<usize> = decode_all(&data, DecodeOptions::default())
        .iter()
        .map(BatchView::size_in_bytes)
        .collect();
    let mut start = 0;
    for (index, size) in sizes.iter().enumerate() {
        for pos in start + 17..start + size {
            let mut bad = data.to_vec();
            bad[pos] ^= 0xff;
            let results: Vec<_> = Batches::new(Bytes::from(bad), DecodeOptions::default()).collect();
            assert_eq!(results.len(), index + 1, "{case}: flipped byte {pos}");
            assert!(results[..index].iter().all(Result::is_ok));
            assert!(
                matches!(results[index], Err(WireError::BadCrc { .. })),
                "{case}: flipped byte {pos} gave {:?}",
                results[index]
            );
        }
        start += size;
    }
}

macro_rules! golden {
    ($($name:ident => $case:literal),* $(,)?) => {
        $(
            mod $name {
                #[test]
                fn decodes_field_by_field() {
                    super::check_case($case);
                }

                #[test]
                fn corruption_is_bad_crc() {
                    super::check_corruption($case);
                }
            }
        )*
    };
}

golden! {
    none => "none",
    gzip => "gzip",
    snappy => "snappy",
    lz4 => "lz4",
    zstd => "zstd",
    idempotent => "idempotent",
    transactional_commit => "transactional-commit",
    transactional_abort => "transactional-abort",
    log_append_time => "log-append-time",
}

#[test]
fn every_fixture_is_tested() {
    let mut found: Vec<String> = std::fs::read_dir(golden_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter_map(|n| n.strip_suffix(".bin").map(str::to_owned))
        .collect();
    found.sort();
    let mut listed: Vec<String> = CASES.iter().map(|c| (*c).to_owned()).collect();
    listed.sort();
    assert_eq!(found, listed);
    for case in CASES {
        assert!(golden_dir().join(format!("{case}.expect")).is_file());
    }
}

/// The shapes the cases were designed to have, so a regenerated fixture cannot silently lose
/// what it is there to test.
#[test]
fn fixtures_cover_the_intended_shapes() {
    for case in ["none", "gzip", "snappy", "lz4", "zstd", "idempotent", "log-append-time"] {
        let (_, e) = load(case);
        assert_eq!(e.batches.len(), 1, "{case}: one batch");
        let b = &e.batches[0];
        assert_eq!(b.records.len(), 20, "{case}");
        assert!(b.records.iter().any(|r| r.key.is_none()), "{case}: null key");
        assert!(b.records.iter().any(|r| r.value.is_none()), "{case}: null value");
        assert!(
            b.records
                .iter()
                .any(|r| r.headers.iter().filter(|(k, _)| k == b"h").count() >= 2),
            "{case}: duplicate header keys"
        );
        assert!(
            b.records.iter().any(|r| r.headers.iter().any(|(_, v)| v.is_none())),
            "{case}: null header value"
        );
        if b.timestamp_type == "CreateTime" {
            let base = b.records[0].timestamp;
            assert!(
                b.records
                    .iter()
                    .any(|r| (r.timestamp - base).abs() > i64::from(i32::MAX)),
                "{case}: timestamp delta beyond 2^31 ms"
            );
        }
    }
    for (case, codec) in [
        ("none", "none"),
        ("gzip", "gzip"),
        ("snappy", "snappy"),
        ("lz4", "lz4"),
        ("zstd", "zstd"),
    ] {
        assert_eq!(load(case).1.batches[0].compression, codec);
    }
    for case in ["transactional-commit", "transactional-abort"] {
        let (_, e) = load(case);
        assert_eq!(e.batches.len(), 2, "{case}: data batch + marker");
        assert!(e.batches[0].transactional && !e.batches[0].control);
        assert!(e.batches[1].transactional && e.batches[1].control);
        assert!(e.batches[1].control_record.is_some());
    }
    for case in ["idempotent", "transactional-commit", "transactional-abort"] {
        let (_, e) = load(case);
        assert!(e.batches.iter().all(|b| b.producer_id >= 0), "{case}");
        assert_eq!(e.batches[0].base_sequence, 0, "{case}");
        assert!(e.batches[0].producer_epoch >= 0, "{case}");
    }
    for case in ["none", "gzip", "snappy", "lz4", "zstd", "log-append-time"] {
        let b = &load(case).1.batches[0];
        assert_eq!(
            (b.producer_id, b.producer_epoch, b.base_sequence),
            (-1, -1, -1),
            "{case}"
        );
    }
}
