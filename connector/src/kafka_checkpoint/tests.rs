//! The Kafka checkpoint store's format and bookkeeping, without a broker; the store itself is
//! tested against the real broker in `connector/tests/second_wave/kafka_checkpoint.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use super::*;

fn key(pipeline: &str, subtask: usize, id: u64, part: RecordPart) -> String {
    RecordKey {
        pipeline,
        subtask,
        id,
        part,
    }
    .encode()
}

#[test]
fn keys_round_trip_and_sort_by_id() {
    let k = key("orders", 3, 42, RecordPart::Chunk(7));
    assert_eq!(k, "orders/3/00000000000000000042/7");
    assert_eq!(
        key("orders", 3, 42, RecordPart::Manifest),
        "orders/3/00000000000000000042/m"
    );
    for (pipeline, subtask, id, part) in [
        ("p", 0, 0, RecordPart::Manifest),
        (
            "a/b/1/00000000000000000001/m",
            12,
            u64::MAX,
            RecordPart::Chunk(u32::MAX),
        ),
        (
            "ünïcode pipeline",
            usize::try_from(u32::MAX).unwrap(),
            1,
            RecordPart::Chunk(0),
        ),
    ] {
        let k = key(pipeline, subtask, id, part);
        let parsed = RecordKey::parse(k.as_bytes()).unwrap();
        assert_eq!(
            parsed,
            RecordKey {
                pipeline,
                subtask,
                id,
                part
            },
            "{k}"
        );
    }
    assert!(key("p", 0, 9, RecordPart::Manifest) < key("p", 0, 10, RecordPart::Manifest));
}

#[test]
fn hostile_keys_are_not_checkpoint_keys() {
    for bad in [
        &b""[..],
        b"m",
        b"p/0/m",
        b"/0/00000000000000000001/m",               // empty pipeline
        b"p//00000000000000000001/m",               // empty subtask
        b"p/x/00000000000000000001/m",              // subtask not digits
        b"p/+1/00000000000000000001/m",             // a sign
        b"p/99999999999/00000000000000000001/m",    // subtask over 10 digits
        b"p/0/1/m",                                 // id not padded
        b"p/0/0000000000000000001/m",               // 19 digits
        b"p/0/99999999999999999999/m",              // 20 digits over u64::MAX
        b"p/0/0000000000000000000x/m",              // not digits
        b"p/0/00000000000000000001/M",              // wrong manifest mark
        b"p/0/00000000000000000001/",               // empty part
        b"p/0/00000000000000000001/01",             // leading zero
        b"p/0/00000000000000000001/4294967296",     // chunk over u32::MAX
        b"p/0/00000000000000000001/-1",             // negative
        b"p/0/00000000000000000001/99999999999999", // way over
        b"p/0/00000000000000000001/m\xff",          // not UTF-8
        b"\xff/0/00000000000000000001/m",
    ] {
        assert_eq!(RecordKey::parse(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

fn manifest_for(id: u64, subtask: u32, nonce: u64, chunks: &[&[u8]]) -> Manifest {
    let payload: Vec<u8> = chunks.concat();
    Manifest {
        id,
        subtask,
        chunks: chunks.len() as u32,
        length: payload.len() as u64,
        crc32c: crc32c::crc32c(&payload),
        nonce,
    }
}

fn chunk_map(nonce: u64, chunks: &[&[u8]]) -> BTreeMap<u32, Bytes> {
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| (i as u32, Bytes::from(encode_chunk(nonce, c))))
        .collect()
}

#[test]
fn manifests_round_trip_and_refuse_damage() {
    let m = manifest_for(7, 2, 0xdead_beef, &[b"abc", b"de"]);
    let bytes = m.encode();
    assert_eq!(bytes.len(), MANIFEST_LEN);
    assert_eq!(Manifest::decode(&bytes), Ok(m));
    // Every single-bit flip is caught (magic or CRC).
    for byte in 0..MANIFEST_LEN {
        for bit in 0..8 {
            let mut b = bytes;
            b[byte] ^= 1 << bit;
            assert!(Manifest::decode(&b).is_err(), "flip of bit {bit} in byte {byte}");
        }
    }
    for keep in 0..MANIFEST_LEN {
        assert_eq!(
            Manifest::decode(&bytes[..keep]),
            Err(FormatError::Truncated("manifest"))
        );
    }
    let mut longer = bytes.to_vec();
    longer.push(0);
    assert_eq!(Manifest::decode(&longer), Err(FormatError::TrailingData));
    let mut other = bytes;
    other[..4].copy_from_slice(b"SKM2");
    assert_eq!(Manifest::decode(&other), Err(FormatError::BadMagic("manifest")));
}

#[test]
fn chunks_round_trip() {
    let v = encode_chunk(5, b"payload");
    assert_eq!(decode_chunk(&v), Ok((5, &b"payload"[..])));
    assert_eq!(decode_chunk(&encode_chunk(1, b"")), Ok((1, &b""[..])));
    assert_eq!(decode_chunk(&v[..11]), Err(FormatError::Truncated("chunk")));
    assert_eq!(decode_chunk(b"SKM1aaaaaaaaaaaa"), Err(FormatError::BadMagic("chunk")));
}

#[test]
fn assemble_joins_an_intact_checkpoint() {
    let parts: [&[u8]; 3] = [b"hello ", b"chunked ", b"world"];
    let m = manifest_for(3, 1, 9, &parts);
    let out = assemble(3, 1, &m.encode(), &chunk_map(9, &parts)).unwrap();
    assert_eq!(out, b"hello chunked world");
    // An empty checkpoint has no chunks.
    let empty = manifest_for(4, 1, 9, &[]);
    assert_eq!(assemble(4, 1, &empty.encode(), &BTreeMap::new()).unwrap(), b"");
    // Chunks beyond the manifest's count (left by an earlier save of the id) are ignored.
    let mut extra = chunk_map(9, &parts);
    extra.insert(3, Bytes::from(encode_chunk(1, b"old")));
    assert_eq!(assemble(3, 1, &m.encode(), &extra).unwrap(), b"hello chunked world");
}

#[test]
fn assemble_refuses_torn_and_lying_checkpoints() {
    let parts: [&[u8]; 3] = [b"aaaa", b"bbbb", b"cc"];
    let good = manifest_for(10, 0, 77, &parts);
    let chunks = chunk_map(77, &parts);
    let err = |m: Manifest, c: &BTreeMap<u32, Bytes>| assemble(10, 0, &m.encode(), c).unwrap_err();

    // Key and manifest disagree.
    assert!(assemble(11, 0, &good.encode(), &chunks)
        .unwrap_err()
        .contains("checkpoint 10"));
    assert!(assemble(10, 1, &good.encode(), &chunks)
        .unwrap_err()
        .contains("subtask 0"));
    // A chunk missing, in the middle or at the end.
    for missing in 0..3u32 {
        let mut c = chunks.clone();
        c.remove(&missing);
        assert!(err(good, &c).contains(&format!("chunk {missing} of 3 is missing")));
    }
    // A chunk of another save of the same id.
    let mut c = chunks.clone();
    c.insert(1, Bytes::from(encode_chunk(78, b"bbbb")));
    assert!(err(good, &c).contains("another save"));
    // A damaged chunk header.
    let mut c = chunks.clone();
    c.insert(2, Bytes::from_static(b"SKC"));
    assert!(err(good, &c).contains("truncated"));
    // A payload byte changed: CRC.
    let mut c = chunks.clone();
    c.insert(0, Bytes::from(encode_chunk(77, b"aaab")));
    assert!(err(good, &c).contains("CRC32C"));
    // Lies about the chunk count: billions claimed, three there. Fails at the first missing
    // one without walking or allocating the rest.
    let lie = Manifest {
        chunks: u32::MAX,
        ..good
    };
    assert!(err(lie, &chunks).contains("chunk 3 of 4294967295 is missing"));
    // Fewer chunks than there are: the length no longer matches.
    let fewer = Manifest { chunks: 2, ..good };
    assert!(err(fewer, &chunks).contains("hold 8 bytes"));
    // Lies about the length, both ways; an exabyte claimed allocates nothing.
    let huge = Manifest {
        length: u64::MAX,
        ..good
    };
    assert!(err(huge, &chunks).contains("hold 10 bytes"));
    let short = Manifest { length: 5, ..good };
    assert!(err(short, &chunks).contains("more than the manifest's 5 bytes"));
    // A manifest that is no manifest.
    assert!(assemble(10, 0, b"garbage", &chunks).unwrap_err().contains("truncated"));
}

#[test]
fn the_view_keeps_the_last_value_per_key() {
    let nonce = 5;
    let parts: [&[u8]; 2] = [b"ab", b"cd"];
    let m = Bytes::copy_from_slice(&manifest_for(1, 0, nonce, &parts).encode());
    let c0 = Bytes::from(encode_chunk(nonce, parts[0]));
    let c1 = Bytes::from(encode_chunk(nonce, parts[1]));
    let mut view = SubtaskView::default();
    view.apply(1, RecordPart::Chunk(0), Some(&c0), true);
    view.apply(1, RecordPart::Chunk(1), Some(&Bytes::from_static(b"junk")), true);
    view.apply(1, RecordPart::Chunk(1), Some(&c1), true);
    view.apply(1, RecordPart::Manifest, Some(&m), true);
    assert_eq!(view.checkpoint(1, 0).unwrap().unwrap().data, b"abcd");
    // Chunks of an id without a manifest: no checkpoint, but the index knows them.
    view.apply(2, RecordPart::Chunk(0), Some(&c0), false);
    assert!(view.checkpoint(2, 0).is_none());
    let index = view.index();
    assert!(index[&1].manifest && !index[&2].manifest);
    assert_eq!(index[&2].chunks.iter().copied().collect::<Vec<_>>(), vec![0]);
    // A tombstone of the manifest removes the checkpoint; of a chunk, that chunk.
    view.apply(1, RecordPart::Manifest, None, true);
    assert!(view.checkpoint(1, 0).is_none());
    view.apply(2, RecordPart::Chunk(0), None, true);
    assert!(!view.index().contains_key(&2));
}

#[test]
fn retention_drops_older_ids_and_orphans() {
    let mk = |entries: &[(u64, bool)]| -> Index {
        entries
            .iter()
            .map(|(id, manifest)| {
                (
                    *id,
                    IdRecords {
                        manifest: *manifest,
                        chunks: BTreeSet::from([0]),
                    },
                )
            })
            .collect()
    };
    assert_eq!(doomed(&mk(&[]), 2), Vec::<u64>::new());
    assert_eq!(doomed(&mk(&[(1, true), (2, true)]), 2), Vec::<u64>::new());
    assert_eq!(doomed(&mk(&[(1, true), (2, true), (3, true)]), 2), vec![1]);
    // Orphan chunks older than the oldest kept manifest go; newer ones (a save in progress
    // or cut short) stay until they are older.
    assert_eq!(
        doomed(
            &mk(&[(1, false), (2, true), (3, false), (4, true), (5, true), (6, false)]),
            2
        ),
        vec![1, 2, 3]
    );
    assert_eq!(doomed(&mk(&[(1, false), (2, true)]), 2), vec![1]);
    assert_eq!(doomed(&mk(&[(1, false)]), 2), Vec::<u64>::new());
    assert_eq!(doomed(&mk(&[(1, true), (2, true), (3, true)]), 1), vec![1, 2]);
}

#[test]
fn nonces_differ() {
    let a: BTreeSet<u64> = (0..1000).map(|_| new_nonce()).collect();
    assert_eq!(a.len(), 1000);
}

#[test]
fn config_is_checked_and_hides_secrets() {
    let base = || KafkaCheckpointConfig::new("127.0.0.1:9092", "ckpt", "p");
    assert!(base().client_configs().is_ok());
    let refused = [
        base().property("acks", "1"),
        base().property("enable.idempotence", "false"),
        base().property("no.such.property", "x"),
        base().property("linger.ms", "not a number"),
        base().chunk_size(0),
        base().chunk_size(2 * 1024 * 1024),
        base().timeout(Duration::ZERO),
        KafkaCheckpointConfig::new("127.0.0.1:9092", "", "p"),
        KafkaCheckpointConfig::new("127.0.0.1:9092", "t", ""),
    ];
    for c in refused {
        assert!(c.client_configs().is_err(), "{c:?}");
    }
    // Producer-only and consumer-only keys are both accepted.
    let (p, c) = base()
        .property("compression.type", "lz4")
        .property("fetch.max.bytes", "1048576")
        .property("group.id", "ignored")
        .client_configs()
        .unwrap();
    assert_eq!(p.acks, Acks::All);
    assert!(p.enable_idempotence);
    assert_eq!(c.group_id, None);
    let c = base()
        .property("security.protocol", "SASL_PLAINTEXT")
        .property("sasl.jaas.config", "PlainLoginModule required password=\"hunter2\";")
        .property("sasl.password", "hunter2");
    let s = format!("{c:?}");
    assert!(!s.contains("hunter2"), "{s}");
    assert!(s.contains("SASL_PLAINTEXT"), "{s}");
}
