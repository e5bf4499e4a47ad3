//! Round-trip and negative tests for the record batch codec.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::{BufMut, Bytes, BytesMut};
use proptest::prelude::*;
use strom_protocol::record_batch::{
    BatchBuilder, BatchHeader, BatchView, Batches, ControlRecord, ControlRecordType, DecodeOptions, NewRecord, Records,
    TimestampType, BATCH_HEADER_LEN,
};
use strom_protocol::varint::{put_varint, put_varlong};
use strom_protocol::{Compression, WireError};

type Hdrs = Vec<(String, Option<Vec<u8>>)>;
type HdrRefs<'a> = Vec<(&'a str, Option<&'a [u8]>)>;

#[derive(Debug, Clone)]
struct Rec {
    ts: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Hdrs,
}

/// Builds a batch of `recs`, appending them three ways in turn: `append`, `append_measured`
/// with a fresh measurement, and `append_measured` with one taken before the previous record
/// was appended (stale: it must be measured again, or the offset delta would be wrong).
fn build(header: BatchHeader, recs: &[Rec]) -> Bytes {
    let mut b = BatchBuilder::new(header, 1024);
    let headers: Vec<HdrRefs> = recs
        .iter()
        .map(|r| r.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect())
        .collect();
    let new_record = |i: usize| NewRecord {
        timestamp: recs[i].ts,
        key: recs[i].key.as_deref(),
        value: recs[i].value.as_deref(),
        headers: &headers[i],
    };
    let mut stale = None;
    for i in 0..recs.len() {
        let nr = new_record(i);
        let predicted = b.size_in_bytes() + b.record_size(&nr);
        assert_eq!(b.measure(&nr).size(), b.record_size(&nr));
        let next_measured_now = (i + 1 < recs.len()).then(|| b.measure(&new_record(i + 1)));
        let size = match (i % 3, stale.take()) {
            (1, _) => b.append_measured(&nr, b.measure(&nr)),
            (2, Some(m)) => b.append_measured(&nr, m),
            _ => b.append(&nr),
        };
        assert_eq!(size.unwrap(), predicted);
        stale = next_measured_now;
    }
    b.finish().unwrap()
}

fn check(batch: &BatchView, recs: &[Rec]) {
    let got: Vec<_> = batch
        .records(&DecodeOptions::default())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got.len(), recs.len());
    for (i, (g, r)) in got.iter().zip(recs).enumerate() {
        assert_eq!(g.offset, batch.base_offset() + i as i64);
        assert_eq!(g.timestamp, r.ts);
        assert_eq!(g.key.as_deref(), r.key.as_deref());
        assert_eq!(g.value.as_deref(), r.value.as_deref());
        let hs: Vec<_> = g
            .headers
            .iter()
            .map(|h| (h.key_str().unwrap().to_owned(), h.value.map(|v| v.to_vec())))
            .collect();
        assert_eq!(hs, r.headers);
    }
}

fn rec_strategy() -> impl Strategy<Value = Rec> {
    (
        // Timestamps far apart: deltas beyond 2^31 ms need a varlong (kafka-protocol #158).
        prop_oneof![Just(0i64), 0i64..4_000_000_000_000, Just(i64::MAX / 4), Just(-1i64)],
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        proptest::collection::vec(
            (
                prop_oneof![Just("dup".to_string()), "[a-z]{0,8}"],
                proptest::option::of(proptest::collection::vec(any::<u8>(), 0..20)),
            ),
            0..4,
        ),
    )
        .prop_map(|(ts, key, value, headers)| Rec {
            ts,
            key,
            value,
            headers,
        })
}

fn codec_strategy() -> impl Strategy<Value = Compression> {
    proptest::sample::select(Compression::ALL.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn batches_round_trip(recs in proptest::collection::vec(rec_strategy(), 1..40), codec in codec_strategy(),
                          pid in prop_oneof![Just(-1i64), 0i64..1_000_000], txn in any::<bool>()) {
        let header = BatchHeader { compression: codec, producer_id: pid, producer_epoch: 3, base_sequence: 17, transactional: txn, ..Default::default() };
        let mut bytes = build(header, &recs);
        let total = bytes.len();
        let batch = BatchView::parse(&mut bytes, &DecodeOptions::default())?.unwrap();
        prop_assert!(bytes.is_empty());
        prop_assert_eq!(batch.size_in_bytes(), total);
        prop_assert_eq!(batch.records_count() as usize, recs.len());
        prop_assert_eq!(batch.last_offset_delta() as usize, recs.len() - 1);
        prop_assert_eq!(batch.base_timestamp(), recs[0].ts);
        prop_assert_eq!(batch.max_timestamp(), recs.iter().map(|r| r.ts).max().unwrap());
        prop_assert_eq!(batch.producer_id(), pid);
        prop_assert_eq!(batch.producer_epoch(), 3);
        prop_assert_eq!(batch.base_sequence(), 17);
        prop_assert_eq!(batch.is_transactional(), txn);
        prop_assert!(!batch.is_control());
        prop_assert_eq!(batch.timestamp_type(), TimestampType::CreateTime);
        let c = batch.compression()?;
        prop_assert!(c == codec || c == Compression::None);
        check(&batch, &recs);
    }
}

fn sample(n: usize) -> Vec<Rec> {
    (0..n)
        .map(|i| Rec {
            ts: 1_700_000_000_000 + i as i64,
            key: (i % 3 != 0).then(|| format!("key-{i}").into_bytes()),
            value: Some(vec![b'v'; 100]),
            headers: vec![("h".into(), Some(b"1".to_vec())), ("h".into(), None)],
        })
        .collect()
}

#[test]
fn compression_is_used_when_smaller_and_dropped_when_not() {
    let recs = sample(100);
    for codec in Compression::ALL {
        let mut bytes = build(
            BatchHeader {
                compression: codec,
                ..Default::default()
            },
            &recs,
        );
        let batch = BatchView::parse(&mut bytes, &DecodeOptions::default())
            .unwrap()
            .unwrap();
        assert_eq!(batch.compression().unwrap(), codec);
        check(&batch, &recs);
    }
    // One record of incompressible data: compressed output is larger, so kept raw.
    let noise: Vec<u8> = (0..64u32).map(|i| (i.wrapping_mul(2654435761) >> 7) as u8).collect();
    let recs = vec![Rec {
        ts: 5,
        key: None,
        value: Some(noise),
        headers: vec![],
    }];
    let mut bytes = build(
        BatchHeader {
            compression: Compression::Gzip,
            ..Default::default()
        },
        &recs,
    );
    let batch = BatchView::parse(&mut bytes, &DecodeOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!(batch.compression().unwrap(), Compression::None);
    check(&batch, &recs);
}

#[test]
fn size_matches_the_documented_layout() {
    // 1000 records x 100-byte value, null key, no headers: 109,997 bytes (see the
    // performance notes; kafka-protocol 0.18 produces the same size).
    let recs: Vec<Rec> = (0..1000)
        .map(|_| Rec {
            ts: 0,
            key: None,
            value: Some(vec![7; 100]),
            headers: vec![],
        })
        .collect();
    assert_eq!(build(BatchHeader::default(), &recs).len(), 109_997);
}

#[test]
fn duplicate_header_keys_are_kept_in_order() {
    let recs = sample(1);
    let mut bytes = build(BatchHeader::default(), &recs);
    let batch = BatchView::parse(&mut bytes, &DecodeOptions::default())
        .unwrap()
        .unwrap();
    let r = batch
        .records(&DecodeOptions::default())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(r.headers.len(), 2);
    let vals: Vec<_> = r.headers.get_all(b"h").collect();
    assert_eq!(vals, vec![Some(Bytes::from_static(b"1")), None]);
    assert_eq!(r.headers.last(b"h").unwrap().value, None);
}

#[test]
fn several_batches_and_a_truncated_tail() {
    let a = build(BatchHeader::default(), &sample(3));
    let b = build(
        BatchHeader {
            base_offset: 3,
            ..Default::default()
        },
        &sample(2),
    );
    let mut all = BytesMut::new();
    all.extend_from_slice(&a);
    all.extend_from_slice(&b);
    all.extend_from_slice(&b[..b.len() - 10]); // a fetch cut at max bytes
    let mut it = Batches::new(all.freeze(), DecodeOptions::default());
    let first = it.next().unwrap().unwrap();
    assert_eq!((first.base_offset(), first.next_offset()), (0, 3));
    let second = it.next().unwrap().unwrap();
    assert_eq!((second.base_offset(), second.last_offset()), (3, 4));
    assert!(it.next().is_none());
    assert_eq!(it.remainder().len(), b.len() - 10);
    // Fewer than 12 bytes left is also just "need more".
    let mut tiny = Bytes::from_static(&[0, 0, 0]);
    assert_eq!(BatchView::parse(&mut tiny, &DecodeOptions::default()), Ok(None));
}

fn corrupt(mut f: impl FnMut(&mut Vec<u8>)) -> Vec<u8> {
    let mut v = build(BatchHeader::default(), &sample(3)).to_vec();
    f(&mut v);
    v
}

fn parse_err(v: Vec<u8>, opts: DecodeOptions) -> WireError {
    let mut b = Bytes::from(v);
    match BatchView::parse(&mut b, &opts) {
        Err(e) => e,
        Ok(Some(batch)) => batch
            .records(&opts)
            .and_then(|rs| rs.collect::<Result<Vec<_>, _>>().map(|_| ()))
            .expect_err("expected an error"),
        Ok(None) => panic!("expected an error, got need-more"),
    }
}

#[test]
fn bad_crc_is_reported_and_can_be_skipped() {
    let v = corrupt(|v| {
        let last = v.len() - 1;
        v[last] ^= 0xff;
    });
    assert!(matches!(
        parse_err(v.clone(), DecodeOptions::default()),
        WireError::BadCrc { .. }
    ));
    // check.crcs=false: the header parses; the damage shows in the record (a header value
    // length byte became -ve or too long), never a panic.
    let opts = DecodeOptions {
        check_crcs: false,
        ..Default::default()
    };
    let mut b = Bytes::from(v);
    assert!(BatchView::parse(&mut b, &opts).unwrap().is_some());
}

#[test]
fn bad_magic_and_bad_lengths() {
    assert_eq!(
        parse_err(corrupt(|v| v[16] = 1), DecodeOptions::default()),
        WireError::BadMagic(1)
    );
    assert_eq!(
        parse_err(
            corrupt(|v| v[8..12].copy_from_slice(&10i32.to_be_bytes())),
            DecodeOptions::default()
        ),
        WireError::InvalidLength {
            what: "batchLength",
            len: 10
        }
    );
}

/// Rewrites the records count and fixes the CRC so the error comes from record parsing.
fn with_count(count: i32) -> Vec<u8> {
    corrupt(|v| {
        v[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&v[21..]);
        v[17..21].copy_from_slice(&crc.to_be_bytes());
    })
}

#[test]
fn record_count_must_match_the_records() {
    assert_eq!(
        parse_err(with_count(1_000_000), DecodeOptions::default()),
        WireError::Truncated("record length")
    );
    assert_eq!(
        parse_err(with_count(2), DecodeOptions::default()),
        WireError::TrailingData("record batch")
    );
    assert_eq!(
        parse_err(with_count(-5), DecodeOptions::default()),
        WireError::InvalidLength {
            what: "recordsCount",
            len: -5
        }
    );
}

/// The first error from a records section holding one record whose body (after its length
/// varint) is `fields`.
fn first_error(fields: impl FnOnce(&mut BytesMut)) -> WireError {
    let mut rec = BytesMut::new();
    fields(&mut rec);
    let mut body = BytesMut::new();
    put_varint(&mut body, rec.len() as i32);
    body.extend_from_slice(&rec);
    Records::from_section(body.freeze(), 1, 0, 0)
        .next()
        .unwrap()
        .unwrap_err()
}

/// attributes, timestamp delta 0, offset delta 0: the start of every record body.
fn record_start(rec: &mut BytesMut) {
    rec.put_u8(0);
    put_varlong(rec, 0);
    put_varint(rec, 0);
}

#[test]
fn malformed_record_bodies() {
    // A record whose length says more than remains.
    let mut body = BytesMut::new();
    put_varint(&mut body, 100);
    body.put_u8(0);
    let err = Records::from_section(body.freeze(), 1, 0, 0)
        .next()
        .unwrap()
        .unwrap_err();
    assert_eq!(
        err,
        WireError::InvalidLength {
            what: "record length",
            len: 100
        }
    );
    // Varint overflow in the timestamp delta.
    let err = first_error(|r| {
        r.put_u8(0);
        r.extend_from_slice(&[0xff; 11]);
    });
    assert_eq!(err, WireError::VarintOverflow("record timestampDelta"));
    // A value length of -2.
    let err = first_error(|r| {
        record_start(r);
        put_varint(r, -1);
        put_varint(r, -2);
    });
    assert_eq!(
        err,
        WireError::InvalidLength {
            what: "record value",
            len: -2
        }
    );
    // A header count larger than the bytes left.
    let err = first_error(|r| {
        record_start(r);
        put_varint(r, -1);
        put_varint(r, -1);
        put_varint(r, 1_000_000);
    });
    assert_eq!(
        err,
        WireError::InvalidLength {
            what: "record headers count",
            len: 1_000_000
        }
    );
    // A null header key.
    let err = first_error(|r| {
        record_start(r);
        put_varint(r, -1);
        put_varint(r, -1);
        put_varint(r, 1);
        put_varint(r, -1);
        put_varint(r, -1);
    });
    assert_eq!(
        err,
        WireError::InvalidLength {
            what: "header key",
            len: -1
        }
    );
    // Bytes left inside a record after its headers.
    let err = first_error(|r| {
        record_start(r);
        put_varint(r, -1);
        put_varint(r, -1);
        put_varint(r, 0);
        r.put_u8(9);
    });
    assert_eq!(err, WireError::TrailingData("record"));
}

#[test]
fn decompression_bomb_is_capped() {
    // 8 MiB of zeros in one value, compressed; decoded with a 1 MiB cap.
    let recs = vec![Rec {
        ts: 0,
        key: None,
        value: Some(vec![0; 8 << 20]),
        headers: vec![],
    }];
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut bytes = build(
            BatchHeader {
                compression: codec,
                ..Default::default()
            },
            &recs,
        );
        assert!(bytes.len() < 1 << 20, "{codec}: {}", bytes.len());
        let opts = DecodeOptions {
            max_decompressed_size: 1 << 20,
            ..Default::default()
        };
        let batch = BatchView::parse(&mut bytes, &opts).unwrap().unwrap();
        assert_eq!(
            batch.records(&opts).unwrap_err(),
            WireError::DecompressionLimit { codec, limit: 1 << 20 }
        );
    }
}

#[test]
fn unknown_codec_is_an_error() {
    let v = corrupt(|v| {
        v[22] |= 0x07;
        let crc = crc32c::crc32c(&v[21..]);
        v[17..21].copy_from_slice(&crc.to_be_bytes());
    });
    assert_eq!(parse_err(v, DecodeOptions::default()), WireError::UnknownCompression(7));
}

/// A commit marker as the broker writes it: control + transactional batch, one record with
/// key (version 0, type 1) and value (version 0, coordinator epoch).
fn marker(kind: i16, epoch: i32) -> Bytes {
    let mut key = BytesMut::new();
    key.put_i16(0);
    key.put_i16(kind);
    let mut value = BytesMut::new();
    value.put_i16(0);
    value.put_i32(epoch);
    let mut v = build(
        BatchHeader {
            transactional: true,
            producer_id: 9,
            producer_epoch: 1,
            ..Default::default()
        },
        &[Rec {
            ts: 1,
            key: Some(key.to_vec()),
            value: Some(value.to_vec()),
            headers: vec![],
        }],
    )
    .to_vec();
    v[22] |= 0x20; // control bit
    let crc = crc32c::crc32c(&v[21..]);
    v[17..21].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(v)
}

#[test]
fn control_records_are_decoded() {
    let opts = DecodeOptions::default();
    let mut b = marker(1, 5);
    let batch = BatchView::parse(&mut b, &opts).unwrap().unwrap();
    assert!(batch.is_control() && batch.is_transactional());
    assert_eq!(
        batch.control_record(&opts).unwrap(),
        Some(ControlRecord {
            kind: ControlRecordType::Commit,
            version: 0,
            coordinator_epoch: Some(5)
        })
    );
    let mut b = marker(0, 2);
    let batch = BatchView::parse(&mut b, &opts).unwrap().unwrap();
    assert_eq!(
        batch.control_record(&opts).unwrap().unwrap().kind,
        ControlRecordType::Abort
    );
    let mut b = build(BatchHeader::default(), &sample(1));
    let batch = BatchView::parse(&mut b, &opts).unwrap().unwrap();
    assert_eq!(batch.control_record(&opts).unwrap(), None);
}

#[test]
fn log_append_time_uses_the_max_timestamp() {
    let mut v = build(BatchHeader::default(), &sample(3)).to_vec();
    v[22] |= 0x08;
    v[35..43].copy_from_slice(&42i64.to_be_bytes());
    let crc = crc32c::crc32c(&v[21..]);
    v[17..21].copy_from_slice(&crc.to_be_bytes());
    let mut b = Bytes::from(v);
    let batch = BatchView::parse(&mut b, &DecodeOptions::default()).unwrap().unwrap();
    assert_eq!(batch.timestamp_type(), TimestampType::LogAppendTime);
    for r in batch.records(&DecodeOptions::default()).unwrap() {
        assert_eq!(r.unwrap().timestamp, 42);
    }
}

proptest! {
    #[test]
    fn no_panic_on_arbitrary_bytes(data in proptest::collection::vec(any::<u8>(), 0..400), crc in any::<bool>()) {
        let opts = DecodeOptions { check_crcs: crc, max_decompressed_size: 1 << 16 };
        for batch in Batches::new(Bytes::from(data.clone()), opts).flatten() {
            if let Ok(rs) = batch.records(&opts) {
                for r in rs { let _ = r.map(|r| r.headers.iter().count()); }
            }
            let _ = batch.control_record(&opts);
        }
        for r in Records::from_section(Bytes::from(data), 3, 0, 0) {
            let _ = r.map(|r| r.headers.iter().count());
        }
    }

    #[test]
    fn no_panic_on_mutated_batches(idx in 0usize..2000, byte in any::<u8>()) {
        let mut v = build(BatchHeader::default(), &sample(5)).to_vec();
        let i = BATCH_HEADER_LEN + idx % (v.len() - BATCH_HEADER_LEN);
        v[i] = byte;
        let opts = DecodeOptions { check_crcs: false, ..Default::default() };
        let mut b = Bytes::from(v);
        if let Ok(Some(batch)) = BatchView::parse(&mut b, &opts) {
            for r in batch.records(&opts)? { let _ = r; }
        }
    }
}

#[test]
fn producer_state_is_set_and_restamped() {
    use strom_protocol::record_batch::restamp_producer_state;
    let mut b = BatchBuilder::new(
        BatchHeader {
            compression: Compression::Lz4,
            ..Default::default()
        },
        1024,
    );
    for r in sample(10) {
        b.append(&NewRecord {
            timestamp: r.ts,
            key: r.key.as_deref(),
            value: r.value.as_deref(),
            headers: &[],
        })
        .unwrap();
    }
    b.set_producer_state(42, 3, 100, true);
    let bytes = b.finish().unwrap();
    let mut buf = bytes.clone();
    let v = BatchView::parse(&mut buf, &DecodeOptions::default()).unwrap().unwrap();
    assert_eq!(
        (
            v.producer_id(),
            v.producer_epoch(),
            v.base_sequence(),
            v.is_transactional()
        ),
        (42, 3, 100, true)
    );
    let mut again = restamp_producer_state(&bytes, 42, 4, 0).unwrap();
    let v = BatchView::parse(&mut again, &DecodeOptions::default())
        .unwrap()
        .unwrap();
    assert_eq!((v.producer_epoch(), v.base_sequence(), v.records_count()), (4, 0, 10));
    assert_eq!(v.records(&DecodeOptions::default()).unwrap().count(), 10);
    assert!(restamp_producer_state(&bytes[..20], 1, 1, 1).is_err());
}

/// A measurement taken before another record was appended is not trusted: the offset and
/// timestamp deltas of the record changed with the batch.
#[test]
fn a_stale_measurement_is_measured_again() {
    let rec = |ts| NewRecord {
        timestamp: ts,
        key: None,
        value: Some(b"v"),
        headers: &[],
    };
    let mut b = BatchBuilder::new(BatchHeader::default(), 64);
    let second = rec(4_000_000_000);
    // On an empty batch the record would be its own base timestamp (delta 0).
    let stale = b.measure(&second);
    let after_first = b.append(&rec(0)).unwrap();
    let fresh = b.record_size(&second);
    assert_ne!(stale.size(), fresh, "the test needs a measurement that changed");
    assert_eq!(b.append_measured(&second, stale).unwrap(), after_first + fresh);
    let mut bytes = b.finish().unwrap();
    let batch = BatchView::parse(&mut bytes, &DecodeOptions::default())
        .unwrap()
        .unwrap();
    let got: Vec<_> = batch
        .records(&DecodeOptions::default())
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(got[1].timestamp, 4_000_000_000);
    assert_eq!(got[1].offset, 1);
}
