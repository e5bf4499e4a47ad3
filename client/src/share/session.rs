//! A share session with one broker (KIP-932), sans-IO: its epoch (0 opens a session, -1
//! closes it, each successful ShareFetch or ShareAcknowledge moves it on by one) and the
//! partitions it holds, so that each request names only what changed: partitions added,
//! partitions forgotten, and partitions carrying acknowledgements.

use std::collections::BTreeSet;

use super::acks::Tip;

/// The epoch that closes a session.
pub(crate) const FINAL_EPOCH: i32 = -1;

/// One broker's share session.
#[derive(Debug, Default)]
pub(crate) struct ShareSession {
    /// The epoch of the next request: 0 until the broker opened a session.
    epoch: i32,
    /// The partitions the broker's session holds.
    in_session: BTreeSet<Tip>,
}

/// What the next ShareFetch says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct FetchPlan {
    pub(crate) epoch: i32,
    /// Partitions to name in `topics` (all of them when opening a session).
    pub(crate) add: BTreeSet<Tip>,
    /// Partitions to drop from the session.
    pub(crate) forget: BTreeSet<Tip>,
}

fn next(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

impl ShareSession {
    /// The request for fetching `wanted` from this broker.
    pub(crate) fn plan(&self, wanted: &BTreeSet<Tip>) -> FetchPlan {
        if self.epoch == 0 {
            return FetchPlan {
                epoch: 0,
                add: wanted.clone(),
                forget: BTreeSet::new(),
            };
        }
        FetchPlan {
            epoch: self.epoch,
            add: wanted.difference(&self.in_session).copied().collect(),
            forget: self.in_session.difference(wanted).copied().collect(),
        }
    }

    /// Whether the session is open (acknowledgements may be sent in it).
    pub(crate) fn is_open(&self) -> bool {
        self.epoch > 0
    }

    /// The current epoch (for ShareAcknowledge).
    pub(crate) fn epoch(&self) -> i32 {
        self.epoch
    }

    /// The broker accepted the fetch planned for `wanted`.
    pub(crate) fn fetched(&mut self, wanted: &BTreeSet<Tip>) {
        self.in_session = wanted.clone();
        self.epoch = next(self.epoch);
    }

    /// The broker accepted a ShareAcknowledge.
    pub(crate) fn acknowledged(&mut self) {
        self.epoch = next(self.epoch);
    }

    /// The broker lost the session (SHARE_SESSION_NOT_FOUND, INVALID_SHARE_SESSION_EPOCH,
    /// a new connection): the next fetch opens a new one.
    pub(crate) fn reset(&mut self) {
        self.epoch = 0;
        self.in_session.clear();
    }

    /// Partitions the broker's session holds.
    pub(crate) fn partitions(&self) -> &BTreeSet<Tip> {
        &self.in_session
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn tips(ps: &[i32]) -> BTreeSet<Tip> {
        ps.iter().map(|p| (Uuid::nil(), *p)).collect()
    }

    #[test]
    fn full_then_incremental_then_reset() {
        let mut s = ShareSession::default();
        assert!(!s.is_open());
        let p = s.plan(&tips(&[0, 1]));
        assert_eq!((p.epoch, p.add, p.forget), (0, tips(&[0, 1]), tips(&[])));
        s.fetched(&tips(&[0, 1]));
        assert!(s.is_open());
        // Nothing changed: nothing named.
        let p = s.plan(&tips(&[0, 1]));
        assert_eq!((p.epoch, p.add, p.forget), (1, tips(&[]), tips(&[])));
        s.fetched(&tips(&[0, 1]));
        // Partition 1 revoked, 2 assigned.
        let p = s.plan(&tips(&[0, 2]));
        assert_eq!((p.epoch, p.add, p.forget), (2, tips(&[2]), tips(&[1])));
        s.fetched(&tips(&[0, 2]));
        s.acknowledged();
        assert_eq!(s.epoch(), 4);
        s.reset();
        let p = s.plan(&tips(&[0, 2]));
        assert_eq!((p.epoch, p.add, p.forget), (0, tips(&[0, 2]), tips(&[])));
        assert!(s.partitions().is_empty());
    }

    #[test]
    fn the_epoch_wraps_to_one() {
        let mut s = ShareSession {
            epoch: i32::MAX,
            in_session: BTreeSet::new(),
        };
        s.fetched(&tips(&[]));
        assert_eq!(s.epoch(), 1);
    }
}
