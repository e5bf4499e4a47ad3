//! Acknowledgements of a share consumer (KIP-932), sans-IO: which offsets of which
//! partitions were delivered by the last poll and not yet acknowledged, which
//! acknowledgements wait to be sent, and their wire form (runs of consecutive offsets with
//! one type each).

use std::collections::BTreeMap;

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
    /// Still being processed: the acquisition lock is renewed, and once the broker confirms
    /// it the record is returned again by the next poll, to be acknowledged again (KIP-1222;
    /// explicit mode, and a broker with ShareAcknowledge v2, Kafka 4.2 and later).
    Renew,
}

impl AcknowledgeType {
    /// The wire value (0 is a gap: an offset with no record, acknowledged by the client).
    pub(crate) fn wire(self) -> i8 {
        match self {
            AcknowledgeType::Accept => 1,
            AcknowledgeType::Release => 2,
            AcknowledgeType::Reject => 3,
            AcknowledgeType::Renew => RENEW,
        }
    }
}

/// Wire value of a gap: an acquired offset without a record (compacted away, or a control
/// record), acknowledged so the broker can move on.
pub(crate) const GAP: i8 = 0;

/// Wire value of a renewal (`AcknowledgeType::Renew`).
pub(crate) const RENEW: i8 = 4;

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
    /// Offsets the last polls handed out, not yet acknowledged, with their delivery count.
    delivered: BTreeMap<Tip, BTreeMap<i64, i16>>,
    /// Acknowledgements not yet sent.
    pending: BTreeMap<Tip, BTreeMap<i64, i8>>,
}

impl Acks {
    /// `offset` of `tip` was handed to the application.
    pub(crate) fn delivered(&mut self, tip: Tip, offset: i64, delivery_count: i16) {
        self.delivered.entry(tip).or_default().insert(offset, delivery_count);
    }

    /// An acquired offset without a record: acknowledged as a gap.
    pub(crate) fn gap(&mut self, tip: Tip, offset: i64) {
        self.pending.entry(tip).or_default().insert(offset, GAP);
    }

    /// Acknowledges a delivered record, returning its delivery count; `None` if it was not
    /// delivered (or was already acknowledged).
    pub(crate) fn acknowledge(&mut self, tip: Tip, offset: i64, kind: AcknowledgeType) -> Option<i16> {
        let set = self.delivered.get_mut(&tip)?;
        let count = set.remove(&offset)?;
        if set.is_empty() {
            self.delivered.remove(&tip);
        }
        self.pending.entry(tip).or_default().insert(offset, kind.wire());
        Some(count)
    }

    /// Acknowledges everything delivered and not yet acknowledged with `kind` (implicit
    /// mode's Accept, or Release on close).
    pub(crate) fn acknowledge_all(&mut self, kind: AcknowledgeType) {
        for (tip, offsets) in std::mem::take(&mut self.delivered) {
            let p = self.pending.entry(tip).or_default();
            for o in offsets.into_keys() {
                p.insert(o, kind.wire());
            }
        }
    }

    /// Delivered records not yet acknowledged.
    pub(crate) fn unacknowledged(&self) -> usize {
        self.delivered.values().map(BTreeMap::len).sum()
    }

    /// Whether a renewal waits to be sent.
    pub(crate) fn renewal_pending(&self) -> bool {
        self.pending.values().any(|m| m.values().any(|k| *k == RENEW))
    }

    /// Renewals not yet sent become `kind` (on close: nothing is processing them any more).
    pub(crate) fn renewals_to(&mut self, kind: AcknowledgeType) {
        for m in self.pending.values_mut() {
            for k in m.values_mut() {
                if *k == RENEW {
                    *k = kind.wire();
                }
            }
        }
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
        a.delivered(t, 5, 1);
        a.delivered(t, 6, 3);
        assert_eq!(a.acknowledge(t, 5, AcknowledgeType::Release), Some(1));
        assert_eq!(a.acknowledge(t, 5, AcknowledgeType::Accept), None, "twice");
        assert_eq!(a.acknowledge(t, 9, AcknowledgeType::Accept), None, "never delivered");
        assert_eq!(
            a.acknowledge((Uuid::nil(), 1), 6, AcknowledgeType::Accept),
            None,
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

    #[test]
    fn a_renewal_waits_until_sent_and_becomes_a_release_on_close() {
        let t = (Uuid::nil(), 0);
        let mut a = Acks::default();
        a.delivered(t, 1, 2);
        a.delivered(t, 2, 1);
        assert!(!a.renewal_pending());
        assert_eq!(a.acknowledge(t, 1, AcknowledgeType::Renew), Some(2));
        assert_eq!(a.acknowledge(t, 2, AcknowledgeType::Accept), Some(1));
        assert!(a.renewal_pending());
        let mut closing = Acks::default();
        closing.delivered(t, 1, 1);
        closing.acknowledge(t, 1, AcknowledgeType::Renew);
        closing.renewals_to(AcknowledgeType::Release);
        assert!(!closing.renewal_pending());
        assert_eq!(
            closing.take(&t),
            [AckBatch {
                first: 1,
                last: 1,
                kind: 2
            }]
        );
        assert_eq!(
            a.take(&t),
            [
                AckBatch {
                    first: 1,
                    last: 1,
                    kind: RENEW
                },
                AckBatch {
                    first: 2,
                    last: 2,
                    kind: 1
                }
            ]
        );
        assert!(!a.renewal_pending());
    }
}
