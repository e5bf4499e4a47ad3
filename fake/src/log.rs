//! One partition's log, in memory: record batches as the producer wrote them, each with the
//! offsets the fake assigned. Sans-IO.

use bytes::{Bytes, BytesMut};
use strom_protocol::record_batch::{BatchView, DecodeOptions};

/// A batch as stored: its bytes (base offset and leader epoch rewritten) and what reads need.
#[derive(Debug, Clone)]
pub(crate) struct Stored {
    pub(crate) last: i64,
    pub(crate) max_timestamp: i64,
    pub(crate) bytes: Bytes,
}

/// The records of one partition.
#[derive(Debug, Default)]
pub(crate) struct PartitionLog {
    batches: Vec<Stored>,
    /// The next offset (the high watermark: every append is acknowledged by all replicas at
    /// once, as in a cluster where followers never lag).
    next: i64,
    /// The first offset still in the log.
    start: i64,
}

impl PartitionLog {
    pub(crate) fn high_watermark(&self) -> i64 {
        self.next
    }

    pub(crate) fn log_start(&self) -> i64 {
        self.start
    }

    /// Appends a batch the producer wrote, assigning its offsets; returns its base offset.
    pub(crate) fn append(&mut self, batch: &BatchView, leader_epoch: i32) -> i64 {
        let base = self.next;
        let mut bytes = BytesMut::from(&batch.as_bytes()[..]);
        bytes[0..8].copy_from_slice(&base.to_be_bytes());
        // Not covered by the CRC (it starts at the attributes).
        bytes[12..16].copy_from_slice(&leader_epoch.to_be_bytes());
        let last = base + i64::from(batch.last_offset_delta());
        self.batches.push(Stored {
            last,
            max_timestamp: batch.max_timestamp(),
            bytes: bytes.freeze(),
        });
        self.next = last + 1;
        base
    }

    /// Whole batches from the one holding `offset`, at least one, then as many as fit in
    /// `max_bytes`.
    /// Batches starting at or after `until` are not read (read_committed stops at the last
    /// stable offset).
    pub(crate) fn read(&self, offset: i64, max_bytes: usize, until: i64) -> Bytes {
        let first = self.batches.partition_point(|b| b.last < offset);
        let mut out = BytesMut::new();
        for b in &self.batches[first..] {
            if b.last >= until {
                break;
            }
            if !out.is_empty() && out.len() + b.bytes.len() > max_bytes {
                break;
            }
            out.extend_from_slice(&b.bytes);
        }
        out.freeze()
    }

    /// Hands the stored bytes of the batch holding `offset` to `edit`; false if none does.
    pub(crate) fn edit(&mut self, offset: i64, edit: impl FnOnce(&mut [u8])) -> bool {
        if offset < self.start {
            return false;
        }
        let i = self.batches.partition_point(|b| b.last < offset);
        let Some(b) = self.batches.get_mut(i) else {
            return false;
        };
        let mut bytes = BytesMut::from(&b.bytes[..]);
        edit(&mut bytes);
        b.bytes = bytes.freeze();
        true
    }

    /// The first offset whose record has a timestamp at or after `ts`, and that timestamp.
    pub(crate) fn offset_for_time(&self, ts: i64) -> Option<(i64, i64)> {
        let opts = DecodeOptions::default();
        for b in self.batches.iter().filter(|b| b.max_timestamp >= ts) {
            let mut buf = b.bytes.clone();
            let Ok(Some(view)) = BatchView::parse(&mut buf, &opts) else {
                continue;
            };
            let Ok(records) = view.records(&opts) else { continue };
            for r in records.flatten() {
                if r.timestamp >= ts {
                    return Some((r.offset, r.timestamp));
                }
            }
        }
        None
    }

    /// The offset and timestamp of the record with the largest timestamp (the first such).
    pub(crate) fn max_timestamp(&self) -> Option<(i64, i64)> {
        let best = self.batches.iter().map(|b| b.max_timestamp).max()?;
        self.offset_for_time(best).filter(|(_, t)| *t == best)
    }
}
