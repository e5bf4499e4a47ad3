//! Java's `StickyAssignor` and `CooperativeStickyAssignor` (KIP-54, KIP-429, KIP-792).

use std::cmp::{Ordering, Reverse};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use super::protocol::{group_by_topic, Assignment, AssignorError, Subscription, DEFAULT_GENERATION};
use super::shared::{
    check_unique, finish, subscribed_topics, topic_set, Assignor, MemberSubscription, RebalanceProtocol,
};
use crate::topic_partition::TopicPartition;

// ---------------------------------------------------------------------------------------------
// sticky and cooperative-sticky (Java's AbstractStickyAssignor)

/// Partitions per member, by member index (members sorted by member id).
pub(super) type PerMember = Vec<Vec<TopicPartition>>;

/// Partitions changing owner in this rebalance, with the index of the new owner.
pub(super) type Transfers = BTreeMap<TopicPartition, usize>;

/// What a member claims to own and since which generation (Java's
/// `AbstractStickyAssignor.MemberData`).
#[derive(Debug)]
pub(super) struct MemberData {
    pub(super) partitions: Vec<TopicPartition>,
    pub(super) generation: i32,
}

/// Java's `StickyAssignor` (`sticky`, eager): balanced (when every member subscribes to the
/// same topics, partition counts differ by at most one) and sticky (a member keeps as many of
/// the partitions it had as balance allows).
///
/// The previous assignment comes from the user data, as Java's `StickyAssignor` sends it
/// (`STICKY_ASSIGNOR_USER_DATA_V1`: the partitions by topic and the generation; V0 without the
/// generation is accepted). A member that sends no user data is taken at its subscription's
/// `owned_partitions` and `generation_id` instead (a Java member sends none only before its
/// first assignment, when it owns nothing); unreadable user data counts as owning nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct StickyAssignor;

impl Assignor for StickyAssignor {
    fn name(&self) -> &'static str {
        "sticky"
    }

    fn supported_protocols(&self) -> &'static [RebalanceProtocol] {
        &[RebalanceProtocol::Eager]
    }

    /// `STICKY_ASSIGNOR_USER_DATA_V1`: `[topic: string, partitions: [int32]]`, then the
    /// generation (`int32`). None before the first assignment (`owned` empty, generation -1),
    /// as Java sends none then, and for a topic name too long to encode.
    fn subscription_user_data(&self, owned: &[TopicPartition], generation: i32) -> Option<Bytes> {
        if owned.is_empty() && generation < 0 {
            return None;
        }
        encode_sticky_user_data(owned, generation)
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> Result<BTreeMap<String, Assignment>, AssignorError> {
        sticky_assign(partitions_per_topic, members, false, sticky_member_data)
    }
}

/// Java's `CooperativeStickyAssignor` (`cooperative-sticky`, KIP-429): the sticky assignment,
/// minus every partition that would move from one member to another in this rebalance. The
/// old owner sees it missing from its assignment and revokes it, then rejoins; the follow-up
/// rebalance assigns it to the new owner. So no partition is owned by two members at once.
///
/// Owned partitions and generation come from the subscription (v2+); with an older
/// subscription the generation comes from the user data, a 4-byte `int32` as Java sends it.
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &'static str {
        "cooperative-sticky"
    }

    fn supported_protocols(&self) -> &'static [RebalanceProtocol] {
        &[RebalanceProtocol::Cooperative, RebalanceProtocol::Eager]
    }

    /// `COOPERATIVE_STICKY_ASSIGNOR_USER_DATA_V0`: the generation as a big-endian `int32`,
    /// sent always (-1 before the first assignment), as Java does.
    fn subscription_user_data(&self, _owned: &[TopicPartition], generation: i32) -> Option<Bytes> {
        Some(Bytes::copy_from_slice(&generation.to_be_bytes()))
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> Result<BTreeMap<String, Assignment>, AssignorError> {
        sticky_assign(partitions_per_topic, members, true, cooperative_member_data)
    }
}

/// Java's `StickyAssignor.memberData`, plus the fallback to `owned_partitions` documented on
/// [`StickyAssignor`].
pub(super) fn sticky_member_data(s: &Subscription) -> MemberData {
    match s.user_data.as_ref().filter(|d| !d.is_empty()) {
        Some(data) => match decode_sticky_user_data(data) {
            Some((partitions, generation)) => MemberData {
                partitions,
                generation: generation.unwrap_or(DEFAULT_GENERATION),
            },
            None => MemberData {
                partitions: Vec::new(),
                generation: DEFAULT_GENERATION,
            },
        },
        None => MemberData {
            partitions: s.owned_partitions.clone(),
            generation: s.generation_id,
        },
    }
}

/// Java's `CooperativeStickyAssignor.memberData`.
pub(super) fn cooperative_member_data(s: &Subscription) -> MemberData {
    let generation = if s.generation_id >= 0 {
        s.generation_id
    } else {
        s.user_data
            .as_ref()
            .and_then(|d| d.get(..4))
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(DEFAULT_GENERATION, i32::from_be_bytes)
    };
    MemberData {
        partitions: s.owned_partitions.clone(),
        generation,
    }
}

pub(super) fn encode_sticky_user_data(owned: &[TopicPartition], generation: i32) -> Option<Bytes> {
    let groups = group_by_topic(owned);
    let mut buf = BytesMut::new();
    buf.put_i32(i32::try_from(groups.len()).ok()?);
    for (topic, partitions) in &groups {
        buf.put_i16(i16::try_from(topic.len()).ok()?);
        buf.put_slice(topic.as_bytes());
        buf.put_i32(i32::try_from(partitions.len()).ok()?);
        for &p in partitions {
            buf.put_i32(p);
        }
    }
    buf.put_i32(generation);
    Some(buf.freeze())
}

/// `STICKY_ASSIGNOR_USER_DATA_V1`, or V0 (no generation) when fewer than 4 bytes follow the
/// partitions: what Java's fallback from V1 to V0 accepts. None if unreadable.
pub(super) fn decode_sticky_user_data(data: &[u8]) -> Option<(Vec<TopicPartition>, Option<i32>)> {
    let mut r = Reader(data);
    let topics = r.count()?;
    let mut partitions = Vec::new();
    for _ in 0..topics {
        let topic: Arc<str> = Arc::from(r.string()?);
        for _ in 0..r.count()? {
            partitions.push(TopicPartition {
                topic: topic.clone(),
                partition: r.i32()?,
            });
        }
    }
    let generation = if r.0.len() >= 4 { r.i32() } else { None };
    Some((partitions, generation))
}

/// A checked big-endian reader over borrowed bytes. Every loop driven by a count it reads
/// consumes bytes on each turn, so hostile counts end at the end of the input.
pub(super) struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map(i32::from_be_bytes)
    }

    fn count(&mut self) -> Option<usize> {
        usize::try_from(self.i32()?).ok()
    }

    fn string(&mut self) -> Option<&'a str> {
        let len = self
            .take(2)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(i16::from_be_bytes)?;
        std::str::from_utf8(self.take(usize::try_from(len).ok()?)?).ok()
    }
}

/// Java's `AbstractStickyAssignor.assign`, then for cooperative-sticky
/// `CooperativeStickyAssignor.adjustAssignment`.
pub(super) fn sticky_assign(
    partitions_per_topic: &BTreeMap<String, i32>,
    members: &[MemberSubscription],
    cooperative: bool,
    member_data: fn(&Subscription) -> MemberData,
) -> Result<BTreeMap<String, Assignment>, AssignorError> {
    check_unique(members)?;
    // Members by member id: index i everywhere below.
    let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
    sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    let n = sorted.len();
    if n == 0 {
        return Ok(BTreeMap::new());
    }
    let topics = subscribed_topics(partitions_per_topic, members);
    let subs: Vec<BTreeSet<&str>> = sorted.iter().map(|m| topic_set(&m.subscription)).collect();
    let data: Vec<MemberData> = sorted.iter().map(|m| member_data(&m.subscription)).collect();
    let all_subscriptions_equal = subs.windows(2).all(|w| w[0] == w[1]);
    let (owned, multiply_claimed) = resolve_owned(&topics, &data);

    let mut assignment;
    let transferring: Transfers;
    if all_subscriptions_equal {
        let (a, t) = constrained_assign(&topics, owned, &multiply_claimed)?;
        assignment = a;
        transferring = t;
    } else {
        assignment = general_assign(&topics, &subs, owned)?;
        transferring = if cooperative {
            transferring_ownership(&data, &assignment)
        } else {
            BTreeMap::new()
        };
    }
    if cooperative {
        // CooperativeStickyAssignor.adjustAssignment: a partition moving to a new owner is left
        // out until the old owner has revoked it (the follow-up rebalance assigns it).
        for (tp, &member) in &transferring {
            if let Some(list) = assignment.get_mut(member) {
                list.retain(|p| p != tp);
            }
        }
    }
    Ok(finish(sorted.iter().map(|m| m.member_id.as_str()).zip(assignment)))
}

/// Each member's valid owned partitions, in the order it listed them (Java's
/// `allSubscriptionsEqual` bookkeeping): only partitions of subscribed, existing topics within
/// the partition count, each once; a partition claimed by several members goes to the claim
/// of the highest generation, and to nobody if two members claim it at that generation (those
/// are returned apart: "partitions with multiple previous owners").
pub(super) fn resolve_owned(
    topics: &BTreeMap<&str, i32>,
    data: &[MemberData],
) -> (PerMember, BTreeSet<TopicPartition>) {
    let valid = |tp: &TopicPartition| {
        topics
            .get(&*tp.topic)
            .is_some_and(|&count| (0..count).contains(&tp.partition))
    };
    // partition -> (highest generation claiming it, the one member claiming it at that generation)
    let mut claims: BTreeMap<&TopicPartition, (i32, Option<usize>)> = BTreeMap::new();
    for (member, d) in data.iter().enumerate() {
        let mut seen = BTreeSet::new();
        for tp in d.partitions.iter().filter(|tp| valid(tp)) {
            if !seen.insert(tp) {
                continue;
            }
            match claims.entry(tp) {
                Entry::Vacant(e) => {
                    e.insert((d.generation, Some(member)));
                }
                Entry::Occupied(mut e) => {
                    let (generation, owner) = e.get_mut();
                    match d.generation.cmp(generation) {
                        Ordering::Greater => {
                            *generation = d.generation;
                            *owner = Some(member);
                        }
                        Ordering::Equal => *owner = None,
                        Ordering::Less => {}
                    }
                }
            }
        }
    }
    let owned = data
        .iter()
        .enumerate()
        .map(|(member, d)| {
            let mut seen = BTreeSet::new();
            d.partitions
                .iter()
                .filter(|tp| claims.get(tp).is_some_and(|&(_, owner)| owner == Some(member)) && seen.insert(*tp))
                .cloned()
                .collect()
        })
        .collect();
    let multiply_claimed = claims
        .into_iter()
        .filter(|(_, (_, owner))| owner.is_none())
        .map(|(tp, _)| tp.clone())
        .collect();
    (owned, multiply_claimed)
}

pub(super) fn all_partitions<'a>(topics: &'a BTreeMap<&'a str, i32>) -> impl Iterator<Item = TopicPartition> + 'a {
    topics.iter().flat_map(|(&topic, &count)| {
        let topic: Arc<str> = Arc::from(topic);
        (0..count).map(move |partition| TopicPartition {
            topic: topic.clone(),
            partition,
        })
    })
}

/// Java's `AbstractStickyAssignor.constrainedAssign`, for when every member subscribes to the
/// same topics: keep owned partitions up to the quota (`max` for the first
/// `partitions % members` members that own that many, `min` for the others), then deal the
/// rest round-robin to the members under `min` (by member id), then one each to members at
/// `min` until `partitions % members` members have `max`. Returns the assignment and the
/// partitions that change owner (for cooperative-sticky), with their new owner.
pub(super) fn constrained_assign(
    topics: &BTreeMap<&str, i32>,
    owned: PerMember,
    multiply_claimed: &BTreeSet<TopicPartition>,
) -> Result<(PerMember, Transfers), AssignorError> {
    let n = owned.len();
    let total: usize = topics.values().map(|&c| usize::try_from(c).unwrap_or(0)).sum();
    let min_quota = total / n;
    let max_quota = total.div_ceil(n);
    // How many members end with max_quota (0 when min_quota == max_quota).
    let expected_over_min = total % n;
    let mut current_over_min = 0usize;

    let mut assignment: Vec<Vec<TopicPartition>> = vec![Vec::new(); n];
    let mut assigned: BTreeSet<TopicPartition> = BTreeSet::new();
    let mut revoked: BTreeSet<TopicPartition> = BTreeSet::new();
    // Members below min_quota, and members at exactly min_quota that may still get one more.
    let mut under_min: Vec<usize> = Vec::new();
    let mut exactly_min: VecDeque<usize> = VecDeque::new();

    for (member, owned) in owned.into_iter().enumerate() {
        let keep = if owned.len() < min_quota {
            under_min.push(member);
            owned.len()
        } else if owned.len() >= max_quota && current_over_min < expected_over_min {
            current_over_min += 1;
            if current_over_min == expected_over_min {
                exactly_min.clear();
            }
            max_quota
        } else {
            if current_over_min < expected_over_min {
                exactly_min.push_back(member);
            }
            min_quota
        };
        let mut owned = owned.into_iter();
        for tp in owned.by_ref().take(keep) {
            assigned.insert(tp.clone());
            assignment[member].push(tp);
        }
        revoked.extend(owned);
    }

    let mut transferring = BTreeMap::new();
    let mut cursor = 0usize;
    for tp in all_partitions(topics).filter(|tp| !assigned.contains(tp)) {
        let (member, from_under_min) = if let Some(&m) = under_min.get(cursor) {
            (m, true)
        } else if let Some(&m) = under_min.first() {
            cursor = 0;
            (m, true)
        } else {
            let m = exactly_min
                .pop_front()
                .ok_or(AssignorError::Internal("no more unfilled consumers to be assigned"))?;
            (m, false)
        };
        // Every owned partition this member kept is assigned already, so this one is new to
        // it; it changes owner if someone else gave it up or several members claimed it.
        if revoked.contains(&tp) || multiply_claimed.contains(&tp) {
            transferring.insert(tp.clone(), member);
        }
        assignment[member].push(tp);
        let count = assignment[member].len();
        if count == min_quota && from_under_min {
            under_min.remove(cursor);
            exactly_min.push_back(member);
        } else {
            if from_under_min {
                cursor += 1;
            }
            if count == max_quota {
                current_over_min += 1;
            }
        }
    }

    if !under_min.is_empty() {
        return Err(AssignorError::Internal(
            "members under the minimum quota but no partitions left",
        ));
    }
    if current_over_min != expected_over_min && min_quota != max_quota {
        return Err(AssignorError::Internal(
            "not as many members at the maximum quota as expected",
        ));
    }
    Ok((assignment, transferring))
}

/// The general path, for members with different subscriptions (Java's `generalAssign`, in a
/// simpler form documented at the top of this module): keep valid owned partitions of topics
/// the member still subscribes to, give the rest to the least loaded subscribed member (the
/// partitions with fewest candidates first), then move one partition at a time from a member
/// to a subscribed member with at least two fewer until none can move. Each move lowers the
/// sum of squared counts, so this ends.
pub(super) fn general_assign(
    topics: &BTreeMap<&str, i32>,
    subs: &[BTreeSet<&str>],
    owned: PerMember,
) -> Result<PerMember, AssignorError> {
    let n = subs.len();
    let candidates: BTreeMap<&str, Vec<usize>> = topics
        .keys()
        .map(|&t| (t, (0..n).filter(|&m| subs[m].contains(t)).collect()))
        .collect();
    let candidates_of = |tp: &TopicPartition| -> &[usize] { candidates.get(&*tp.topic).map_or(&[], Vec::as_slice) };

    let mut assignment: Vec<BTreeSet<TopicPartition>> = vec![BTreeSet::new(); n];
    let mut kept: Vec<BTreeSet<TopicPartition>> = vec![BTreeSet::new(); n];
    let mut assigned: BTreeSet<TopicPartition> = BTreeSet::new();
    for (member, owned) in owned.into_iter().enumerate() {
        for tp in owned.into_iter().filter(|tp| subs[member].contains(&*tp.topic)) {
            assigned.insert(tp.clone());
            kept[member].insert(tp.clone());
            assignment[member].insert(tp);
        }
    }

    let mut unassigned: Vec<TopicPartition> = all_partitions(topics).filter(|tp| !assigned.contains(tp)).collect();
    unassigned.sort_by(|a, b| {
        candidates_of(a)
            .len()
            .cmp(&candidates_of(b).len())
            .then_with(|| a.cmp(b))
    });
    for tp in unassigned {
        let member = candidates_of(&tp)
            .iter()
            .copied()
            .min_by_key(|&m| (assignment[m].len(), m))
            .ok_or(AssignorError::Internal("a subscribed topic has no subscriber"))?;
        assignment[member].insert(tp);
    }

    loop {
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&m| (Reverse(assignment[m].len()), m));
        let mut found = None;
        'search: for &from in &order {
            let from_len = assignment[from].len();
            if from_len < 2 {
                break;
            }
            // The least loaded other candidate per topic, looked up once per topic.
            let mut target: BTreeMap<&str, Option<usize>> = BTreeMap::new();
            // Partitions new to this member move before the ones it kept.
            let fresh = assignment[from].iter().filter(|tp| !kept[from].contains(*tp));
            let sticky = assignment[from].iter().filter(|tp| kept[from].contains(*tp));
            for tp in fresh.chain(sticky) {
                let to = *target.entry(&tp.topic).or_insert_with(|| {
                    candidates_of(tp)
                        .iter()
                        .copied()
                        .filter(|&m| m != from)
                        .min_by_key(|&m| (assignment[m].len(), m))
                });
                if let Some(to) = to.filter(|&to| assignment[to].len() + 1 < from_len) {
                    found = Some((from, to, tp.clone()));
                    break 'search;
                }
            }
        }
        let Some((from, to, tp)) = found else { break };
        assignment[from].remove(&tp);
        assignment[to].insert(tp);
    }
    Ok(assignment.into_iter().map(|s| s.into_iter().collect()).collect())
}

/// Java's `CooperativeStickyAssignor.computePartitionsTransferringOwnership`: partitions
/// assigned to a member that does not claim them while another member does.
pub(super) fn transferring_ownership(data: &[MemberData], assignment: &[Vec<TopicPartition>]) -> Transfers {
    let claimed: Vec<BTreeSet<&TopicPartition>> = data.iter().map(|d| d.partitions.iter().collect()).collect();
    let mut out = BTreeMap::new();
    for (member, partitions) in assignment.iter().enumerate() {
        for tp in partitions {
            let new_to_member = !claimed[member].contains(tp);
            let revoked_elsewhere = claimed
                .iter()
                .enumerate()
                .any(|(other, c)| other != member && c.contains(tp));
            if new_to_member && revoked_elsewhere {
                out.insert(tp.clone(), member);
            }
        }
    }
    out
}
