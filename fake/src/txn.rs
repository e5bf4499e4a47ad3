//! Transactions (KIP-98, transaction.version 1), sans-IO: the coordinator's state per
//! transactional id, and the control batches (commit and abort markers) it writes.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};

use crate::group::Committed;

/// One transactional id's state.
#[derive(Debug)]
pub(crate) struct Txn {
    pub(crate) pid: i64,
    pub(crate) epoch: i16,
    pub(crate) timeout: Duration,
    /// Since when a transaction is open (partitions or offsets added), if one is.
    pub(crate) open_since: Option<Instant>,
    pub(crate) partitions: BTreeSet<(String, i32)>,
    pub(crate) groups: BTreeSet<String>,
    /// Offsets committed in the transaction: (group, topic, partition, offset).
    pub(crate) offsets: Vec<(String, String, i32, Committed)>,
    /// How the last transaction ended under transaction.version 2 (committed?) and the
    /// epoch that EndTxn gave the producer: a retried EndTxn from the epoch before, while
    /// that is still the epoch, gets the same answer.
    pub(crate) last_end: Option<(bool, i16)>,
    /// How the last transaction ended (committed?), for DescribeTransactions' state.
    pub(crate) last_outcome: Option<bool>,
    /// The wall-clock time (ms) the open transaction started, -1 when none is open.
    pub(crate) start_ms: i64,
}

impl Txn {
    pub(crate) fn new(pid: i64, timeout: Duration) -> Self {
        Txn {
            pid,
            epoch: 0,
            timeout,
            open_since: None,
            partitions: BTreeSet::new(),
            groups: BTreeSet::new(),
            offsets: Vec::new(),
            last_end: None,
            last_outcome: None,
            start_ms: -1,
        }
    }

    pub(crate) fn open(&mut self, now: Instant) {
        if self.open_since.is_none() {
            self.open_since = Some(now);
            self.start_ms = wall_ms();
        }
    }

    /// The coordinator's state name, as DescribeTransactions and ListTransactions give it.
    pub(crate) fn state_name(&self) -> &'static str {
        match (self.open_since, self.last_outcome) {
            (Some(_), _) => "Ongoing",
            (None, Some(true)) => "CompleteCommit",
            (None, Some(false)) => "CompleteAbort",
            (None, None) => "Empty",
        }
    }

    /// Whether the open transaction ran past its timeout at `now`.
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.open_since
            .is_some_and(|t| now.saturating_duration_since(t) > self.timeout)
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn wall_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn zigzag(buf: &mut BytesMut, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        buf.put_u8((z as u8) | 0x80);
        z >>= 7;
    }
    buf.put_u8(z as u8);
}

/// A control batch with one marker record (commit or abort) of producer `pid`, as a
/// partition leader writes it (base offset 0: the log assigns it).
pub(crate) fn marker_batch(pid: i64, epoch: i16, commit: bool, coordinator_epoch: i32, now_ms: i64) -> Bytes {
    let mut record = BytesMut::new();
    record.put_i8(0); // attributes
    zigzag(&mut record, 0); // timestamp delta
    zigzag(&mut record, 0); // offset delta
    zigzag(&mut record, 4); // key: version, type
    record.put_i16(0);
    record.put_i16(i16::from(commit));
    zigzag(&mut record, 6); // value: version, coordinator epoch
    record.put_i16(0);
    record.put_i32(coordinator_epoch);
    zigzag(&mut record, 0); // headers
    let mut body = BytesMut::new(); // from the attributes on: what the CRC covers
    body.put_i16(0x30); // transactional, control
    body.put_i32(0); // last offset delta
    body.put_i64(now_ms);
    body.put_i64(now_ms);
    body.put_i64(pid);
    body.put_i16(epoch);
    body.put_i32(-1); // base sequence
    body.put_i32(1); // records
    zigzag(&mut body, record.len() as i64);
    body.put(record);
    let mut batch = BytesMut::new();
    batch.put_i64(0);
    batch.put_i32((4 + 1 + 4 + body.len()) as i32); // leader epoch, magic, crc, rest
    batch.put_i32(-1);
    batch.put_i8(2);
    batch.put_u32(crc32c::crc32c(&body));
    batch.put(body);
    batch.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use strom_protocol::record_batch::{BatchView, DecodeOptions};

    #[test]
    fn a_marker_batch_parses_as_a_control_batch_with_its_crc() {
        for commit in [true, false] {
            let mut b = marker_batch(42, 3, commit, 0, 1_700_000_000_000);
            let v = BatchView::parse(&mut b, &DecodeOptions::default()).unwrap().unwrap();
            assert!(v.is_control() && v.is_transactional());
            assert_eq!((v.producer_id(), v.producer_epoch(), v.records_count()), (42, 3, 1));
            let rec = v.control_record(&DecodeOptions::default()).unwrap().unwrap();
            assert_eq!(format!("{rec:?}").contains("Commit"), commit, "{rec:?}");
        }
    }
}
