//! Acknowledgements of a share consumer (KIP-932), sans-IO: which offsets of which
//! partitions were delivered by the last poll and not yet acknowledged, which
//! acknowledgements wait to be sent, and their wire form (runs of consecutive offsets with
//! one type each).

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// How a record is acknowledged (Java's `AcknowledgeType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AcknowledgeType {
    /// Processed: never delivered again.
    Accept,
    /// Not processed: delivered again (to this or another member), its delivery count
    /// raised, until `group.share.delivery.count.limit` archives it.
    Release,
    /// Unprocessable: never delivered again (archived).
    Reject,
}

impl AcknowledgeType {
    /// The wire value (0 is a gap: an offset with no record, acknowledged by the client).
    pub(crate) fn wire(self) -> i8 {
        match self {
            AcknowledgeType::Accept => 1,
            AcknowledgeType::Release => 2,
            AcknowledgeType::Reject => 3,
        }
    }
}

/// Wire value of a gap: an acquired offset without a record (compacted away, or a control
/// record), acknowledged so the broker can move on.
pub(crate) const GAP: i8 = 0;

/// A partition by topic id.
pub(crate) type Tip = (Uuid, i32);

/// One acknowledgement batch: `first..=last`, all of one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AckBatch {
    pub(crate) first: i64,
    pub(crate) last: i64,
    pub(crate) kind: i8,
}

/// What was delivered and what waits to be acknowledged.
#[derive(Debug, Default)]
pub(crate) struct Acks {
    /// Offsets the last polls handed out, not yet acknowledged.
    delivered: BTreeMap<Tip, BTreeSet<i64>>,
    /// Acknowledgements not yet sent.
    pending: BTreeMap<Tip, BTreeMap<i64, i8>>,
}

impl Acks {
    /// `offset` of `tip` was handed to the application.
    pub(crate) fn delivered(&mut self, tip: Tip, offset: i64) {
        self.delivered.entry(tip).or_default().insert(offset);
    }

    /// An acquired offset without a record: acknowledged as a gap.
    pub(crate) fn gap(&mut self, tip: Tip, offset: i64) {
        self.pending.entry(tip).or_default().insert(offset, GAP);
    }

    /// Acknowledges a delivered record; `false` if it was not delivered (or was already
    /// acknowledged).
    pub(crate) fn acknowledge(&mut self, tip: Tip, offset: i64, kind: AcknowledgeType) -> bool {
        let Some(set) = self.delivered.get_mut(&tip) else {
            return false;
        };
        if !set.remove(&offset) {
            return false;
        }
        if set.is_empty() {
            self.delivered.remove(&tip);
        }
        self.pending.entry(tip).or_default().insert(offset, kind.wire());
        true
    }

    /// Acknowledges everything delivered and not yet acknowledged with `kind` (implicit
    /// mode's Accept, or Release on close).
    pub(crate) fn acknowledge_all(&mut self, kind: AcknowledgeType) {
        for (tip, offsets) in std::mem::take(&mut self.delivered) {
            let p = self.pending.entry(tip).or_default();
            for o in offsets {
                p.insert(o, kind.wire());
            }
        }
    }

    /// Delivered records not yet acknowledged.
    pub(crate) fn unacknowledged(&self) -> usize {
        self.delivered.values().map(BTreeSet::len).sum()
    }

    /// Partitions with acknowledgements waiting.
    pub(crate) fn pending_partitions(&self) -> impl Iterator<Item = &Tip> {
        self.pending.keys()
    }

    /// Takes `tip`'s waiting acknowledgements as wire batches.
    pub(crate) fn take(&mut self, tip: &Tip) -> Vec<AckBatch> {
        self.pending.remove(tip).map(|m| batches(&m)).unwrap_or_default()
    }
}

/// Runs of consecutive offsets of one type.
pub(crate) fn batches(acks: &BTreeMap<i64, i8>) -> Vec<AckBatch> {
    let mut out: Vec<AckBatch> = Vec::new();
    for (&offset, &kind) in acks {
        match out.last_mut() {
            Some(b) if b.kind == kind && b.last + 1 == offset => b.last = offset,
            _ => out.push(AckBatch {
                first: offset,
                last: offset,
                kind,
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_of_one_type_become_one_batch() {
        let acks: BTreeMap<i64, i8> = [(1, 1), (2, 1), (3, 1), (4, 2), (5, 2), (7, 2), (8, 0), (9, 1)].into();
        let b: Vec<(i64, i64, i8)> = batches(&acks).iter().map(|b| (b.first, b.last, b.kind)).collect();
        assert_eq!(b, [(1, 3, 1), (4, 5, 2), (7, 7, 2), (8, 8, 0), (9, 9, 1)]);
        assert!(batches(&BTreeMap::new()).is_empty());
    }

    #[test]
    fn only_delivered_records_are_acknowledged_once() {
        let t = (Uuid::nil(), 0);
        let mut a = Acks::default();
        a.delivered(t, 5);
        a.delivered(t, 6);
        assert!(a.acknowledge(t, 5, AcknowledgeType::Release));
        assert!(!a.acknowledge(t, 5, AcknowledgeType::Accept), "twice");
        assert!(!a.acknowledge(t, 9, AcknowledgeType::Accept), "never delivered");
        assert!(
            !a.acknowledge((Uuid::nil(), 1), 6, AcknowledgeType::Accept),
            "other partition"
        );
        assert_eq!(a.unacknowledged(), 1);
        a.acknowledge_all(AcknowledgeType::Accept);
        a.gap(t, 7);
        assert_eq!(a.unacknowledged(), 0);
        assert_eq!(
            a.take(&t),
            [
                AckBatch {
                    first: 5,
                    last: 5,
                    kind: 2
                },
                AckBatch {
                    first: 6,
                    last: 6,
                    kind: 1
                },
                AckBatch {
                    first: 7,
                    last: 7,
                    kind: 0
                },
            ]
        );
        assert!(a.take(&t).is_empty());
    }
}
