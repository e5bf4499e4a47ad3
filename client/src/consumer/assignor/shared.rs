//! What every assignor shares: the [`Assignor`] trait, its input per member, the
//! rebalance protocols, and the input checks and output shaping all of them use.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;

use super::protocol::{Assignment, AssignorError, Subscription};
use crate::topic_partition::TopicPartition;

/// How a group moves partitions between members in a rebalance (Java's
/// `ConsumerPartitionAssignor.RebalanceProtocol`, KIP-429). Ordered: the group uses the
/// highest protocol every member's assignor supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RebalanceProtocol {
    /// Every member revokes all its partitions before rejoining.
    Eager,
    /// Members keep their partitions across the rebalance and revoke only those that move;
    /// a moving partition is assigned to its new owner in a follow-up rebalance.
    Cooperative,
}

/// One member of the group as the leader sees it in the JoinGroup response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSubscription {
    /// The member id the coordinator gave the member.
    pub member_id: String,
    /// The member's `group.instance.id` if it is a static member (KIP-345).
    pub group_instance_id: Option<String>,
    /// The member's decoded subscription.
    pub subscription: Subscription,
}

/// A client-side partition assignor of the classic protocol (Java's
/// `ConsumerPartitionAssignor`). Stateless: what Java keeps between rebalances (the last
/// assignment and generation) is passed in by the caller.
pub trait Assignor: Send + Sync + fmt::Debug {
    /// The protocol name sent in JoinGroup (`partition.assignment.strategy`), e.g. `range`.
    fn name(&self) -> &'static str;

    /// The rebalance protocols this assignor supports, preferred first as Java lists them.
    fn supported_protocols(&self) -> &'static [RebalanceProtocol];

    /// The user data this member puts in its [`Subscription`], given the partitions it was
    /// last assigned and that assignment's generation (-1 before the first one).
    fn subscription_user_data(&self, owned: &[TopicPartition], generation: i32) -> Option<Bytes> {
        let _ = (owned, generation);
        None
    }

    /// Assigns the partitions of the subscribed topics to `members`.
    ///
    /// `partitions_per_topic` holds the partition count of every topic that exists (topics no
    /// member subscribes to are ignored; subscribed topics missing from it are skipped, as Java
    /// skips topics absent from the metadata). The result has an entry for every member, its
    /// partitions sorted by topic then partition.
    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> Result<BTreeMap<String, Assignment>, AssignorError>;
}

// ---------------------------------------------------------------------------------------------
// Shared input handling

/// The members in Java's `AbstractPartitionAssignor.MemberInfo` order: static members first by
/// `group.instance.id`, then dynamic members by member id (ties broken by member id).
pub(super) fn member_info_order(a: &MemberSubscription, b: &MemberSubscription) -> Ordering {
    match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => x.cmp(y).then_with(|| a.member_id.cmp(&b.member_id)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.member_id.cmp(&b.member_id),
    }
}

pub(super) fn check_unique(members: &[MemberSubscription]) -> Result<(), AssignorError> {
    let mut seen = BTreeSet::new();
    for m in members {
        if !seen.insert(m.member_id.as_str()) {
            return Err(AssignorError::DuplicateMember(m.member_id.clone()));
        }
    }
    Ok(())
}

/// Topics some member subscribes to that exist, with their partition counts (negative as 0):
/// Java's `AbstractPartitionAssignor.partitionsPerTopic` over the group's subscription.
pub(super) fn subscribed_topics<'a>(
    partitions_per_topic: &'a BTreeMap<String, i32>,
    members: &[MemberSubscription],
) -> BTreeMap<&'a str, i32> {
    let mut out = BTreeMap::new();
    for m in members {
        for t in &m.subscription.topics {
            if let Some((topic, &count)) = partitions_per_topic.get_key_value(t) {
                out.insert(topic.as_str(), count.max(0));
            }
        }
    }
    out
}

pub(super) fn topic_set(s: &Subscription) -> BTreeSet<&str> {
    s.topics.iter().map(String::as_str).collect()
}

pub(super) fn finish<'a>(
    ids: impl IntoIterator<Item = (&'a str, Vec<TopicPartition>)>,
) -> BTreeMap<String, Assignment> {
    ids.into_iter()
        .map(|(id, mut partitions)| {
            partitions.sort();
            (
                id.to_owned(),
                Assignment {
                    partitions,
                    user_data: None,
                },
            )
        })
        .collect()
}
