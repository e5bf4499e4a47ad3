//! The partitions a member owns and how they change hands, for both protocols: revoke what
//! leaves before assigning what comes, one hand-over to the application at a time, and a
//! partition that leaves stays owned until the application acknowledged its revocation, so
//! no request can release it before its offsets are committed.
//!
//! Java's `ConsumerCoordinator.onJoinComplete` (classic) and `AbstractMembershipManager`'s
//! `revokeAndAssign` (KIP-848) do the same in their own threads; here it is a queue.

use std::collections::{BTreeSet, VecDeque};

use super::io::{HandOver, HandOverKind};
use crate::topic_partition::TopicPartition;

#[derive(Debug, Default)]
pub(super) struct Ownership {
    owned: BTreeSet<TopicPartition>,
    /// Hand-overs planned and not given to the application yet, in order.
    queue: VecDeque<HandOver>,
    /// The hand-over the application has and not acknowledged yet.
    awaiting: Option<HandOver>,
    /// Everything owned is lost: hand it over as lost once `awaiting` is acknowledged.
    losing: bool,
}

impl Ownership {
    /// What the member owns (what the application holds, and what it is revoking).
    pub(super) fn owned(&self) -> &BTreeSet<TopicPartition> {
        &self.owned
    }

    /// A hand-over is with the application, or one is still to come.
    pub(super) fn busy(&self) -> bool {
        self.awaiting.is_some() || !self.queue.is_empty() || (self.losing && !self.owned.is_empty())
    }

    /// The application has a hand-over it has not acknowledged.
    pub(super) fn awaiting(&self) -> bool {
        self.awaiting.is_some()
    }

    /// Plans the move to owning exactly `target`: a revocation of what leaves first, then
    /// an assignment of what comes (also an empty one when `assign_always`: the classic
    /// protocol tells the application of every assignment, as Java's listener is called).
    /// Returns the numbers revoked and added.
    pub(super) fn plan(&mut self, target: &BTreeSet<TopicPartition>, assign_always: bool) -> (usize, usize) {
        let revoked: Vec<TopicPartition> = self.owned.difference(target).cloned().collect();
        let added: Vec<TopicPartition> = target.difference(&self.owned).cloned().collect();
        let counts = (revoked.len(), added.len());
        self.revoke(revoked);
        if assign_always || !added.is_empty() {
            self.queue.push_back(HandOver {
                kind: HandOverKind::Assign,
                partitions: added,
            });
        }
        counts
    }

    /// Plans the revocation of these owned partitions.
    pub(super) fn revoke(&mut self, partitions: Vec<TopicPartition>) {
        let partitions: Vec<TopicPartition> = partitions.into_iter().filter(|tp| self.owned.contains(tp)).collect();
        if !partitions.is_empty() {
            self.queue.push_back(HandOver {
                kind: HandOverKind::Revoke,
                partitions,
            });
        }
    }

    /// Everything owned is lost (the member fell out of the group): what was planned is
    /// dropped, and once the hand-over the application has is acknowledged, all it still
    /// owns is handed over as lost.
    pub(super) fn lose_all(&mut self) {
        self.queue.clear();
        self.losing = true;
    }

    /// Drops what was planned and not handed over yet (a newer assignment replaces the plan).
    pub(super) fn drop_plan(&mut self) {
        self.queue.clear();
    }

    /// The member is leaving: nothing more is handed over, nothing is awaited.
    pub(super) fn abandon(&mut self) {
        self.queue.clear();
        self.awaiting = None;
        self.losing = false;
    }

    /// The next hand-over for the application, unless one is with it already. An
    /// assignment's partitions are owned from now on.
    pub(super) fn next(&mut self) -> Option<HandOver> {
        if self.awaiting.is_some() {
            return None;
        }
        let next = if self.losing {
            self.losing = false;
            self.queue.clear();
            if self.owned.is_empty() {
                return None;
            }
            HandOver {
                kind: HandOverKind::Lost,
                partitions: self.owned.iter().cloned().collect(),
            }
        } else {
            self.queue.pop_front()?
        };
        if next.kind == HandOverKind::Assign {
            self.owned.extend(next.partitions.iter().cloned());
        }
        self.awaiting = Some(next.clone());
        Some(next)
    }

    /// The application applied the hand-over it had: revoked and lost partitions are no
    /// longer owned. Returns its kind (`None` when nothing was awaited).
    pub(super) fn acknowledged(&mut self) -> Option<HandOverKind> {
        let done = self.awaiting.take()?;
        if done.kind != HandOverKind::Assign {
            for tp in &done.partitions {
                self.owned.remove(tp);
            }
        }
        Some(done.kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tps(ps: &[i32]) -> BTreeSet<TopicPartition> {
        ps.iter().map(|p| TopicPartition::new("t", *p)).collect()
    }

    fn parts(h: &HandOver) -> BTreeSet<i32> {
        h.partitions.iter().map(|tp| tp.partition).collect()
    }

    #[test]
    fn revokes_before_assigning_and_owns_revoked_until_acknowledged() {
        let mut o = Ownership::default();
        o.plan(&tps(&[0, 1]), false);
        let a = o.next().unwrap();
        assert_eq!((a.kind, parts(&a)), (HandOverKind::Assign, [0, 1].into()));
        assert!(o.next().is_none(), "one hand-over at a time");
        o.acknowledged();
        assert_eq!(o.plan(&tps(&[1, 2]), false), (1, 1));
        let r = o.next().unwrap();
        assert_eq!((r.kind, parts(&r)), (HandOverKind::Revoke, [0].into()));
        assert_eq!(o.owned(), &tps(&[0, 1]), "revoked but not acknowledged: still owned");
        o.acknowledged();
        assert_eq!(o.owned(), &tps(&[1]));
        let a = o.next().unwrap();
        assert_eq!((a.kind, parts(&a)), (HandOverKind::Assign, [2].into()));
        assert_eq!(o.owned(), &tps(&[1, 2]));
        o.acknowledged();
        assert!(!o.busy());
    }

    #[test]
    fn losing_drops_the_plan_and_hands_everything_over_after_the_awaited_one() {
        let mut o = Ownership::default();
        o.plan(&tps(&[0, 1]), false);
        o.next();
        o.acknowledged();
        o.plan(&tps(&[1, 2]), false);
        let r = o.next().unwrap();
        assert_eq!(r.kind, HandOverKind::Revoke);
        o.lose_all();
        assert!(o.next().is_none(), "the revocation is still with the application");
        o.acknowledged();
        let lost = o.next().unwrap();
        assert_eq!(
            (lost.kind, parts(&lost)),
            (HandOverKind::Lost, [1].into()),
            "2 was never assigned"
        );
        o.acknowledged();
        assert!(o.owned().is_empty() && !o.busy());
    }

    #[test]
    fn an_empty_assignment_is_handed_over_only_when_asked() {
        let mut o = Ownership::default();
        o.plan(&BTreeSet::new(), false);
        assert!(o.next().is_none());
        o.plan(&BTreeSet::new(), true);
        assert_eq!(o.next().map(|h| h.kind), Some(HandOverKind::Assign));
        o.lose_all();
        o.acknowledged();
        assert!(o.next().is_none(), "nothing owned: nothing lost");
        assert!(!o.busy());
    }
}
