//! `strom bench ...`: fixed loads through the producer and the consumer, each reported as one
//! JSON object with every knob, so the benchmark drivers in bench/ can put Strom beside other
//! clients: `produce` (S1; S3's keyed mode with `--keys`), `consume` (S2; the read-back checks of
//! S3 and S4), `latency` (S5), `txn` (S4) and `share-consume` (S7).
//!
//! What every client of the scenarios sends is defined once, here, and mirrored by
//! bench/rdkafka-peer, bench/franz-peer and integration-tests/java/BenchPeer.java:
//! * the values of a payload file in turn ([`payloads`]);
//! * S3's keys: `key-NNNNNN` for an index drawn from one xorshift64 stream ([`KeyStream`]);
//! * a stamp in the first 8 bytes of the value, big-endian ([`Stamper`]): S3's per-key
//!   sequence number, S5's send time. The corpus values all begin with the same 8 bytes
//!   (`{"ts":17`), so the stamp keeps the value's size and the rest of its bytes.

mod consume;
mod latency;
mod produce;
mod share;
mod txn;

use std::path::Path;

use bytes::{Bytes, BytesMut};

pub(crate) use consume::{consume, BenchConsumeArgs};
pub(crate) use latency::{latency, BenchLatencyArgs};
pub(crate) use produce::{produce, BenchProduceArgs};
pub(crate) use share::{share_consume, BenchShareConsumeArgs};
pub(crate) use txn::{txn, BenchTxnArgs};

use crate::Failure;

/// The values a payload file holds: split on `\n` as Java's ProducerPerformance splits its
/// `--payload-file` (`String.split`: trailing empty values dropped), each a slice of `data`.
fn split_values(data: &Bytes) -> Vec<Bytes> {
    let mut values: Vec<Bytes> = Vec::new();
    let mut start = 0;
    for (i, &b) in data.iter().enumerate() {
        if b == b'\n' {
            values.push(data.slice(start..i));
            start = i + 1;
        }
    }
    values.push(data.slice(start..));
    while values.last().is_some_and(Bytes::is_empty) {
        values.pop();
    }
    values
}

/// What `bench produce` sends, in turn: the values of `--payload-file`, or one constant value
/// of `size` random uppercase letters (the same bytes every run, and the same as
/// bench/rdkafka-peer, bench/franz-peer and bench/corpus.py's constant). Either way a record's
/// value is a `Bytes` clone of one buffer: no allocation or copy per record.
fn payloads(file: Option<&Path>, size: usize) -> Result<Vec<Bytes>, Failure> {
    let Some(file) = file else {
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let value = (0..size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                b'A' + (seed % 26) as u8
            })
            .collect::<Vec<u8>>();
        return Ok(vec![Bytes::from(value)]);
    };
    let data = Bytes::from(std::fs::read(file).map_err(|e| format!("--payload-file {}: {e}", file.display()))?);
    let values = split_values(&data);
    if values.is_empty() {
        return Err(format!("--payload-file {}: no values in it", file.display()).into());
    }
    Ok(values)
}

/// CPU seconds (user + system) and peak RSS (KiB) of this process, from /proc.
fn usage() -> (f64, u64) {
    let ticks = 100.0; // USER_HZ on Linux
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let u: f64 = f.get(11)?.parse().ok()?;
            let s: f64 = f.get(12)?.parse().ok()?;
            Some((u + s) / ticks)
        })
        .unwrap_or(f64::NAN);
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0);
    (cpu, rss)
}

/// Where the records went: per partition, how many were acknowledged there.
fn spread_json(counts: &[u64]) -> String {
    let items: Vec<String> = counts.iter().map(u64::to_string).collect();
    format!("[{}]", items.join(","))
}

/// The partitions that got less than a third of the mean (the bench drivers' rule,
/// bench/spread.py), when there is more than one partition.
fn starved(counts: &[u64]) -> Vec<usize> {
    if counts.len() < 2 {
        return Vec::new();
    }
    let total: u64 = counts.iter().sum();
    // count < mean / 3  ⇔  3 · count · partitions < total
    let n = counts.len() as u64;
    counts
        .iter()
        .enumerate()
        .filter(|(_, &c)| 3 * c * n < total)
        .map(|(p, _)| p)
        .collect()
}

/// Bytes of the stamp at the start of a value: a big-endian u64.
pub(super) const STAMP_BYTES: usize = 8;

/// Values made per record: a payload value with its first [`STAMP_BYTES`] bytes replaced by a
/// stamp (a sequence number, a send time). They are carved out of 1 MiB chunks, so a record
/// costs a copy of its value and no allocation of its own (one per chunk).
#[derive(Debug, Default)]
pub(super) struct Stamper {
    arena: BytesMut,
}

impl Stamper {
    const CHUNK: usize = 1 << 20;

    /// `value` with its first 8 bytes replaced by `stamp` (a shorter value becomes the 8 bytes).
    pub(super) fn stamp(&mut self, stamp: u64, value: &[u8]) -> Bytes {
        let n = value.len().max(STAMP_BYTES);
        if self.arena.capacity() < n {
            self.arena = BytesMut::with_capacity(Self::CHUNK.max(n));
        }
        self.arena.extend_from_slice(&stamp.to_be_bytes());
        self.arena
            .extend_from_slice(value.get(STAMP_BYTES..).unwrap_or_default());
        self.arena.split().freeze()
    }
}

/// The stamp at the start of a value read back, if it has one.
pub(super) fn read_stamp(value: Option<&Bytes>) -> Option<u64> {
    let head: [u8; STAMP_BYTES] = value?.get(..STAMP_BYTES)?.try_into().ok()?;
    Some(u64::from_be_bytes(head))
}

/// The most keys S3's key format holds (six digits).
pub(super) const MAX_KEYS: u64 = 1_000_000;

/// S3's keys in the order every client sends them: record i's key index is the i-th draw of
/// one xorshift64 stream modulo the key count, and its key `key-NNNNNN` (six digits). The keys
/// are slices of one buffer.
#[derive(Debug)]
pub(super) struct KeyStream {
    seed: u64,
    keys: Vec<Bytes>,
}

impl KeyStream {
    pub(super) fn new(count: u64) -> Result<KeyStream, Failure> {
        if count == 0 || count > MAX_KEYS {
            return Err(format!("--keys {count}: want 1 to {MAX_KEYS}").into());
        }
        let mut all = Vec::with_capacity(count as usize * 10);
        for k in 0..count {
            all.extend_from_slice(format!("key-{k:06}").as_bytes());
        }
        let all = Bytes::from(all);
        let keys = (0..count as usize).map(|k| all.slice(k * 10..k * 10 + 10)).collect();
        Ok(KeyStream {
            seed: 0x9e37_79b9_7f4a_7c15,
            keys,
        })
    }

    /// The next record's key index and key.
    pub(super) fn next_key(&mut self) -> (usize, Bytes) {
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let k = (self.seed % self.keys.len() as u64) as usize;
        (k, self.keys[k].clone())
    }
}

/// The index of a key `key-NNNNNN` read back, if it is one.
pub(super) fn key_index(key: Option<&Bytes>) -> Option<usize> {
    let digits = key?.strip_prefix(b"key-")?;
    if digits.is_empty() || digits.len() > 6 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0')))
}

/// A latency histogram in microseconds, 1 us to 1 hour, three significant digits (HdrHistogram:
/// a value is recorded within 0.1% of itself).
pub(super) struct Latencies(hdrhistogram::Histogram<u64>);

impl std::fmt::Debug for Latencies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Latencies({} values)", self.0.len())
    }
}

impl Latencies {
    pub(super) fn new() -> Result<Latencies, Failure> {
        hdrhistogram::Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .map(Latencies)
            .map_err(|e| format!("histogram: {e}").into())
    }

    pub(super) fn record(&mut self, d: std::time::Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.0.saturating_record(us.max(1));
    }

    pub(super) fn len(&self) -> u64 {
        self.0.len()
    }

    /// `"{prefix}p50_ms":..,"{prefix}p99_ms":..,"{prefix}p999_ms":..,"{prefix}max_ms":..,"{prefix}mean_ms":..` (no braces).
    pub(super) fn json(&self, prefix: &str) -> String {
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "\"{prefix}p50_ms\":{:.3},\"{prefix}p90_ms\":{:.3},\"{prefix}p99_ms\":{:.3},\"{prefix}p999_ms\":{:.3},\"{prefix}max_ms\":{:.3},\"{prefix}mean_ms\":{:.3}",
            ms(self.0.value_at_quantile(0.5)),
            ms(self.0.value_at_quantile(0.9)),
            ms(self.0.value_at_quantile(0.99)),
            ms(self.0.value_at_quantile(0.999)),
            ms(self.0.max()),
            self.0.mean() / 1000.0,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_below_a_third_of_the_mean_is_starved() {
        assert_eq!(starved(&[1000, 0, 0]), [1, 2]);
        assert_eq!(starved(&[3, 10, 17]), [0]);
        assert!(starved(&[4, 10, 16]).is_empty());
        assert!(starved(&[10, 10, 10]).is_empty());
        assert!(starved(&[7]).is_empty());
        assert!(starved(&[]).is_empty());
        assert_eq!(spread_json(&[1, 0, 2]), "[1,0,2]");
    }

    #[test]
    fn a_payload_file_splits_as_java_splits_it() {
        let data = Bytes::from_static(b"one\ntwo\n\nfour\n\n");
        let values = split_values(&data);
        assert_eq!(
            values,
            ["one", "two", "", "four"].map(|v| Bytes::from_static(v.as_bytes()))
        );
        // Slices of the one buffer, not copies.
        assert_eq!(values[1].as_ptr(), data[4..].as_ptr());
        assert_eq!(
            split_values(&Bytes::from_static(b"last")),
            [Bytes::from_static(b"last")]
        );
        assert!(split_values(&Bytes::from_static(b"\n\n")).is_empty());
        assert!(split_values(&Bytes::new()).is_empty());
    }

    #[test]
    fn the_constant_payload_is_the_same_letters_every_time() {
        let v = payloads(None, 100).unwrap();
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].len(), 100);
        assert!(v[0].iter().all(u8::is_ascii_uppercase));
        // bench/corpus.py's constant() and the peers' produce the same bytes.
        assert!(v[0].starts_with(b"XAVOIHYHXDOZBQEB"), "{:?}", v[0]);
    }

    #[test]
    fn a_stamp_replaces_the_first_eight_bytes_without_an_allocation_per_record() {
        let mut s = Stamper::default();
        let a = s.stamp(7, b"{\"ts\":1767225600008}");
        let b = s.stamp(u64::MAX - 1, b"{\"ts\":1767225600009}");
        assert_eq!(&a[8..], b"67225600008}");
        assert_eq!(read_stamp(Some(&a)), Some(7));
        assert_eq!(read_stamp(Some(&b)), Some(u64::MAX - 1));
        // Neighbours in one chunk.
        assert_eq!(b.as_ptr(), a[a.len()..].as_ptr());
        assert_eq!(s.stamp(3, b"ab").len(), 8);
        assert_eq!(read_stamp(Some(&Bytes::from_static(b"short"))), None);
        assert_eq!(read_stamp(None), None);
    }

    #[test]
    fn keys_are_drawn_from_one_xorshift_stream_as_every_peer_draws_them() {
        let mut keys = KeyStream::new(10_000).unwrap();
        let first: Vec<usize> = (0..5).map(|_| keys.next_key().0).collect();
        // The peers (bench/rdkafka-peer, bench/franz-peer, BenchPeer.java) draw the same.
        assert_eq!(first, [2989, 9574, 5030, 2260, 268]);
        let (k, key) = keys.next_key();
        assert_eq!(key_index(Some(&key)), Some(k));
        assert_eq!(key.len(), 10);
        assert_eq!(key_index(Some(&Bytes::from_static(b"key-000042"))), Some(42));
        assert_eq!(key_index(Some(&Bytes::from_static(b"key-"))), None);
        assert_eq!(key_index(Some(&Bytes::from_static(b"key-0x1"))), None);
        assert_eq!(key_index(None), None);
        assert!(KeyStream::new(0).is_err());
        assert!(KeyStream::new(MAX_KEYS + 1).is_err());
    }

    #[test]
    fn latencies_report_percentiles_in_milliseconds() {
        let mut l = Latencies::new().unwrap();
        for us in 1..=1000u64 {
            l.record(std::time::Duration::from_micros(us * 10));
        }
        assert_eq!(l.len(), 1000);
        let j = l.json("");
        assert!(j.contains("\"p50_ms\":5.00"), "{j}");
        assert!(j.contains("\"p99_ms\":9.9"), "{j}");
        assert!(j.contains("\"max_ms\":10.00"), "{j}");
    }
}
