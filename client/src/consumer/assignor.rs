//! Partition assignors of the classic consumer group protocol, client side and sans-IO.
//!
//! In the classic protocol (JoinGroup/SyncGroup) the broker elects one member the group
//! leader and hands it every member's [`Subscription`]; the leader runs an [`Assignor`] over
//! them and the topic metadata, and sends each member its [`Assignment`] in SyncGroup. No IO,
//! no clock, no randomness: the same input always gives the same output.
//!
//! Mirrors Java's kafka-clients (the ground truth):
//!
//! * [`RangeAssignor`] (`range`), [`RoundRobinAssignor`] (`roundrobin`): Java's
//!   `RangeAssignor` and `RoundRobinAssignor`, output identical to Java's.
//! * [`StickyAssignor`] (`sticky`), [`CooperativeStickyAssignor`] (`cooperative-sticky`):
//!   Java's `StickyAssignor` and `CooperativeStickyAssignor` over `AbstractStickyAssignor`
//!   (KIP-54, KIP-429, KIP-792).
//! * [`Subscription`] and [`Assignment`] encode and decode the embedded
//!   `ConsumerProtocolSubscription` / `ConsumerProtocolAssignment` bytes as Java's
//!   `ConsumerProtocol` does: an `i16` version, then the non-flexible struct body.
//!
//! Where Java walks a `HashMap` (whose order is an accident of hashing) we walk members by
//! member id, so the result is deterministic but can differ from Java's in which member gets
//! which of several equally good partitions. Also different from Java, on purpose:
//!
//! * Rack-aware assignment (KIP-881) is not implemented: rack ids are carried in
//!   [`Subscription::rack_id`] but ignored by every assignor, as Java does when the partition
//!   racks are unknown.
//! * The sticky assignors' general path (members with different subscriptions) is simpler
//!   than Java's `generalAssign`: keep every valid owned partition, give each unowned partition
//!   to the least loaded member subscribed to its topic (most constrained partitions first),
//!   then, while a member holds a partition that a member with at least two fewer partitions
//!   could take, move one such partition (preferring one the member did not own before).
//!   That is Java's balance criterion (`isBalanced` / `performReassignments`), but it does
//!   not prefer a partition's previous owner from an older generation, and with cooperative
//!   rebalancing it can take more than one follow-up rebalance to settle, as Java's can.
//! * Owned partitions of a topic that no longer has that partition number are dropped (Java
//!   keeps them in the constrained path).
//! * Three or more claims on one partition: the highest generation wins when exactly one
//!   member claims it at that generation, otherwise nobody keeps it (Java's outcome depends on
//!   the order it meets the claims).

use std::cmp::{Ordering, Reverse};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::sync::Arc;

pub use crate::topic_partition::TopicPartition;
use bytes::{Buf, BufMut, Bytes, BytesMut};
use strom_protocol::message_traits::{Decodable, Encodable, StrBytes};
use strom_protocol::messages::{
    consumer_protocol_assignment, consumer_protocol_subscription, ConsumerProtocolAssignment,
    ConsumerProtocolSubscription, TopicName,
};

/// The highest `ConsumerProtocolSubscription` / `ConsumerProtocolAssignment` version we know
/// (v3 adds the rack id), the one Java's `ConsumerProtocol` sends.
pub const CONSUMER_PROTOCOL_VERSION: i16 = 3;

/// Java's `AbstractStickyAssignor.DEFAULT_GENERATION`: the generation of a member that has none.
const DEFAULT_GENERATION: i32 = -1;

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

/// Errors of the assignors and of the consumer protocol codec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AssignorError {
    /// The bytes are not a valid message of this kind (truncated, bad length, bad UTF-8).
    #[error("malformed {0}")]
    Malformed(&'static str),
    /// A version we cannot encode, or a negative version on the wire.
    #[error("{what} version {version} is not supported")]
    UnsupportedVersion {
        /// The message.
        what: &'static str,
        /// The version asked for or found.
        version: i16,
    },
    /// A field does not fit the wire format (a string longer than `i16::MAX` bytes).
    #[error("cannot encode {0}: a field is too long for the wire format")]
    Encode(&'static str),
    /// Two members passed to [`Assignor::assign`] have the same member id.
    #[error("member id {0:?} appears more than once")]
    DuplicateMember(String),
    /// An assignor's internal invariant failed (a bug: Java throws `IllegalStateException`).
    #[error("assignor invariant violated: {0}")]
    Internal(&'static str),
}

/// What a member sends in JoinGroup: Java's `ConsumerPartitionAssignor.Subscription`, the
/// `ConsumerProtocolSubscription` schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The topics the member wants to consume.
    pub topics: Vec<String>,
    /// The assignor's own data ([`Assignor::subscription_user_data`]).
    pub user_data: Option<Bytes>,
    /// The partitions the member owns now (v1+, KIP-429).
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation of the member's last assignment, -1 if unknown (v2+, KIP-792).
    pub generation_id: i32,
    /// The member's `client.rack` (v3+, KIP-881).
    pub rack_id: Option<String>,
}

impl Default for Subscription {
    fn default() -> Self {
        Subscription {
            topics: Vec::new(),
            user_data: None,
            owned_partitions: Vec::new(),
            generation_id: DEFAULT_GENERATION,
            rack_id: None,
        }
    }
}

impl Subscription {
    /// A subscription to `topics`, owning nothing, generation unknown.
    pub fn new(topics: Vec<String>) -> Self {
        Subscription {
            topics,
            ..Subscription::default()
        }
    }

    /// The JoinGroup protocol metadata: `version` as an `i16`, then the struct at `version`
    /// (0..=3). Fields the version lacks are left out, as Java does (they are ignorable);
    /// owned partitions are grouped by topic in order of first appearance.
    pub fn encode(&self, version: i16) -> Result<Bytes, AssignorError> {
        const WHAT: &str = "ConsumerProtocolSubscription";
        check_encode_version(WHAT, version)?;
        let owned = group_by_topic(&self.owned_partitions)
            .into_iter()
            .map(|(topic, partitions)| {
                consumer_protocol_subscription::TopicPartition::default()
                    .with_topic(topic_name(&topic))
                    .with_partitions(partitions)
            })
            .collect();
        let message = ConsumerProtocolSubscription::default()
            .with_topics(self.topics.iter().map(|t| StrBytes::from_string(t.clone())).collect())
            .with_user_data(self.user_data.clone())
            .with_owned_partitions(owned)
            .with_generation_id(self.generation_id)
            .with_rack_id(self.rack_id.clone().map(StrBytes::from_string));
        encode_versioned(WHAT, version, &message)
    }

    /// Parses JoinGroup protocol metadata. A version above ours is parsed as ours, reading the
    /// prefix we know and ignoring the rest, as Java's `ConsumerProtocol` does; trailing bytes
    /// are ignored likewise. Never panics; array sizes are capped by the bytes left.
    pub fn decode(mut bytes: Bytes) -> Result<Self, AssignorError> {
        const WHAT: &str = "ConsumerProtocolSubscription";
        let version = decode_version(WHAT, &mut bytes)?;
        let m =
            ConsumerProtocolSubscription::decode(&mut bytes, version).map_err(|_| AssignorError::Malformed(WHAT))?;
        Ok(Subscription {
            topics: m.topics.iter().map(|t| t.as_str().to_owned()).collect(),
            user_data: m.user_data,
            owned_partitions: m
                .owned_partitions
                .iter()
                .flat_map(|t| {
                    let topic: Arc<str> = Arc::from(t.topic.0.as_str());
                    t.partitions.iter().map(move |&p| TopicPartition {
                        topic: topic.clone(),
                        partition: p,
                    })
                })
                .collect(),
            generation_id: m.generation_id,
            rack_id: m.rack_id.map(|r| r.as_str().to_owned()),
        })
    }
}

/// What the leader gives a member in SyncGroup: Java's `ConsumerPartitionAssignor.Assignment`,
/// the `ConsumerProtocolAssignment` schema.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Assignment {
    /// The partitions assigned to the member.
    pub partitions: Vec<TopicPartition>,
    /// The assignor's own data (none of the built-in assignors sends any).
    pub user_data: Option<Bytes>,
}

impl Assignment {
    /// The SyncGroup assignment bytes: `version` as an `i16`, then the struct at `version`
    /// (0..=3; the body is the same in all). Partitions are grouped by topic in order of first
    /// appearance.
    pub fn encode(&self, version: i16) -> Result<Bytes, AssignorError> {
        const WHAT: &str = "ConsumerProtocolAssignment";
        check_encode_version(WHAT, version)?;
        let assigned = group_by_topic(&self.partitions)
            .into_iter()
            .map(|(topic, partitions)| {
                consumer_protocol_assignment::TopicPartition::default()
                    .with_topic(topic_name(&topic))
                    .with_partitions(partitions)
            })
            .collect();
        let message = ConsumerProtocolAssignment::default()
            .with_assigned_partitions(assigned)
            .with_user_data(self.user_data.clone());
        encode_versioned(WHAT, version, &message)
    }

    /// Parses SyncGroup assignment bytes; newer versions as ours, trailing bytes ignored (Java's
    /// `ConsumerProtocol.deserializeAssignment`). Empty bytes are an error: the caller decides
    /// whether an empty SyncGroup assignment means "nothing" (Java treats it as such before
    /// calling the decoder). Never panics.
    pub fn decode(mut bytes: Bytes) -> Result<Self, AssignorError> {
        const WHAT: &str = "ConsumerProtocolAssignment";
        let version = decode_version(WHAT, &mut bytes)?;
        let m = ConsumerProtocolAssignment::decode(&mut bytes, version).map_err(|_| AssignorError::Malformed(WHAT))?;
        Ok(Assignment {
            partitions: m
                .assigned_partitions
                .iter()
                .flat_map(|t| {
                    let topic: Arc<str> = Arc::from(t.topic.0.as_str());
                    t.partitions.iter().map(move |&p| TopicPartition {
                        topic: topic.clone(),
                        partition: p,
                    })
                })
                .collect(),
            user_data: m.user_data,
        })
    }
}

fn check_encode_version(what: &'static str, version: i16) -> Result<(), AssignorError> {
    if (0..=CONSUMER_PROTOCOL_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(AssignorError::UnsupportedVersion { what, version })
    }
}

fn encode_versioned<M: Encodable>(what: &'static str, version: i16, message: &M) -> Result<Bytes, AssignorError> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .map_err(|_| AssignorError::Encode(what))?;
    Ok(buf.freeze())
}

/// Java's `ConsumerProtocol.checkSubscriptionVersion` / `checkAssignmentVersion`: negative is
/// an error, newer is read as the newest we know.
fn decode_version(what: &'static str, bytes: &mut Bytes) -> Result<i16, AssignorError> {
    if bytes.remaining() < 2 {
        return Err(AssignorError::Malformed(what));
    }
    let version = bytes.get_i16();
    if version < 0 {
        return Err(AssignorError::UnsupportedVersion { what, version });
    }
    Ok(version.min(CONSUMER_PROTOCOL_VERSION))
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// Partitions grouped by topic, topics in order of first appearance, partitions in the order
/// given.
fn group_by_topic(partitions: &[TopicPartition]) -> Vec<(Arc<str>, Vec<i32>)> {
    let mut out: Vec<(Arc<str>, Vec<i32>)> = Vec::new();
    let mut index: BTreeMap<&str, usize> = BTreeMap::new();
    for tp in partitions {
        let i = *index.entry(&*tp.topic).or_insert_with(|| {
            out.push((tp.topic.clone(), Vec::new()));
            out.len() - 1
        });
        if let Some((_, ps)) = out.get_mut(i) {
            ps.push(tp.partition);
        }
    }
    out
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

/// The built-in assignor called `name` (`range`, `roundrobin`, `sticky`, `cooperative-sticky`).
pub fn assignor_by_name(name: &str) -> Option<Box<dyn Assignor>> {
    match name {
        "range" => Some(Box::new(RangeAssignor)),
        "roundrobin" => Some(Box::new(RoundRobinAssignor)),
        "sticky" => Some(Box::new(StickyAssignor)),
        "cooperative-sticky" => Some(Box::new(CooperativeStickyAssignor)),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// Shared input handling

/// The members in Java's `AbstractPartitionAssignor.MemberInfo` order: static members first by
/// `group.instance.id`, then dynamic members by member id (ties broken by member id).
fn member_info_order(a: &MemberSubscription, b: &MemberSubscription) -> Ordering {
    match (&a.group_instance_id, &b.group_instance_id) {
        (Some(x), Some(y)) => x.cmp(y).then_with(|| a.member_id.cmp(&b.member_id)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.member_id.cmp(&b.member_id),
    }
}

fn check_unique(members: &[MemberSubscription]) -> Result<(), AssignorError> {
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
fn subscribed_topics<'a>(
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

fn topic_set(s: &Subscription) -> BTreeSet<&str> {
    s.topics.iter().map(String::as_str).collect()
}

fn finish<'a>(ids: impl IntoIterator<Item = (&'a str, Vec<TopicPartition>)>) -> BTreeMap<String, Assignment> {
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

// ---------------------------------------------------------------------------------------------
// range

/// Java's `RangeAssignor` (`range`): per topic, the partitions in numeric order are split into
/// contiguous ranges over the members subscribed to it (static members first by
/// `group.instance.id`, then by member id); the first `partitions % members` members get one
/// extra. C0 and C1 on t0 and t1 of 3 partitions each: C0 gets t0p0, t0p1, t1p0, t1p1 and C1
/// gets t0p2, t1p2.
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &'static str {
        "range"
    }

    fn supported_protocols(&self) -> &'static [RebalanceProtocol] {
        &[RebalanceProtocol::Eager]
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> Result<BTreeMap<String, Assignment>, AssignorError> {
        check_unique(members)?;
        let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
        sorted.sort_by(|a, b| member_info_order(a, b));
        let sets: Vec<BTreeSet<&str>> = sorted.iter().map(|m| topic_set(&m.subscription)).collect();
        let mut out: Vec<Vec<TopicPartition>> = vec![Vec::new(); sorted.len()];
        for (&topic, &count) in &subscribed_topics(partitions_per_topic, members) {
            let consumers: Vec<usize> = (0..sorted.len()).filter(|&i| sets[i].contains(topic)).collect();
            if consumers.is_empty() {
                continue;
            }
            let topic: Arc<str> = Arc::from(topic);
            let per_member = count / consumers.len() as i32;
            let with_extra = count % consumers.len() as i32;
            for (i, &member) in (0i32..).zip(&consumers) {
                let start = per_member * i + i.min(with_extra);
                let len = per_member + i32::from(i < with_extra);
                out[member].extend((start..start + len).map(|p| TopicPartition {
                    topic: topic.clone(),
                    partition: p,
                }));
            }
        }
        Ok(finish(sorted.iter().map(|m| m.member_id.as_str()).zip(out)))
    }
}

// ---------------------------------------------------------------------------------------------
// roundrobin

/// Java's `RoundRobinAssignor` (`roundrobin`): every partition of every subscribed topic,
/// sorted by topic then partition, is dealt in turn to the members (static members first by
/// `group.instance.id`, then by member id), skipping members not subscribed to its topic.
/// C0 and C1 on t0 and t1 of 3 partitions each: C0 gets t0p0, t0p2, t1p1 and C1 gets t0p1,
/// t1p0, t1p2.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &'static str {
        "roundrobin"
    }

    fn supported_protocols(&self) -> &'static [RebalanceProtocol] {
        &[RebalanceProtocol::Eager]
    }

    fn assign(
        &self,
        partitions_per_topic: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
    ) -> Result<BTreeMap<String, Assignment>, AssignorError> {
        check_unique(members)?;
        let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
        sorted.sort_by(|a, b| member_info_order(a, b));
        let sets: Vec<BTreeSet<&str>> = sorted.iter().map(|m| topic_set(&m.subscription)).collect();
        let n = sorted.len();
        let mut out: Vec<Vec<TopicPartition>> = vec![Vec::new(); n];
        // Java's CircularIterator: peek until a subscribed member, give it the partition, step on.
        let mut next = 0usize;
        for (&topic, &count) in &subscribed_topics(partitions_per_topic, members) {
            let topic_arc: Arc<str> = Arc::from(topic);
            for partition in 0..count {
                let member = (0..n)
                    .map(|k| (next + k) % n)
                    .find(|&i| sets[i].contains(topic))
                    .ok_or(AssignorError::Internal(
                        "roundrobin: a subscribed topic has no subscriber",
                    ))?;
                out[member].push(TopicPartition {
                    topic: topic_arc.clone(),
                    partition,
                });
                next = (member + 1) % n;
            }
        }
        Ok(finish(sorted.iter().map(|m| m.member_id.as_str()).zip(out)))
    }
}

// ---------------------------------------------------------------------------------------------
// sticky and cooperative-sticky (Java's AbstractStickyAssignor)

/// Partitions per member, by member index (members sorted by member id).
type PerMember = Vec<Vec<TopicPartition>>;

/// Partitions changing owner in this rebalance, with the index of the new owner.
type Transfers = BTreeMap<TopicPartition, usize>;

/// What a member claims to own and since which generation (Java's
/// `AbstractStickyAssignor.MemberData`).
#[derive(Debug)]
struct MemberData {
    partitions: Vec<TopicPartition>,
    generation: i32,
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
fn sticky_member_data(s: &Subscription) -> MemberData {
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
fn cooperative_member_data(s: &Subscription) -> MemberData {
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

fn encode_sticky_user_data(owned: &[TopicPartition], generation: i32) -> Option<Bytes> {
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
fn decode_sticky_user_data(data: &[u8]) -> Option<(Vec<TopicPartition>, Option<i32>)> {
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
struct Reader<'a>(&'a [u8]);

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
fn sticky_assign(
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
fn resolve_owned(topics: &BTreeMap<&str, i32>, data: &[MemberData]) -> (PerMember, BTreeSet<TopicPartition>) {
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

fn all_partitions<'a>(topics: &'a BTreeMap<&'a str, i32>) -> impl Iterator<Item = TopicPartition> + 'a {
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
fn constrained_assign(
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
fn general_assign(
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
fn transferring_ownership(data: &[MemberData], assignment: &[Vec<TopicPartition>]) -> Transfers {
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        TopicPartition::new(t, p)
    }

    fn ppt(topics: &[(&str, i32)]) -> BTreeMap<String, i32> {
        topics.iter().map(|&(t, n)| (t.to_owned(), n)).collect()
    }

    fn member(id: &str, topics: &[&str]) -> MemberSubscription {
        MemberSubscription {
            member_id: id.to_owned(),
            group_instance_id: None,
            subscription: Subscription::new(topics.iter().map(|t| (*t).to_owned()).collect()),
        }
    }

    fn parts(out: &BTreeMap<String, Assignment>, id: &str) -> Vec<TopicPartition> {
        out[id].partitions.clone()
    }

    /// Every member's next subscription as our consumer would send it after `out` at
    /// `generation`: owned partitions, generation and the assignor's user data.
    fn next_round(
        assignor: &dyn Assignor,
        members: &[MemberSubscription],
        out: &BTreeMap<String, Assignment>,
        generation: i32,
    ) -> Vec<MemberSubscription> {
        members
            .iter()
            .map(|m| {
                let owned = out.get(&m.member_id).map(|a| a.partitions.clone()).unwrap_or_default();
                let mut m = m.clone();
                m.subscription.user_data = assignor.subscription_user_data(&owned, generation);
                m.subscription.owned_partitions = owned;
                m.subscription.generation_id = generation;
                m
            })
            .collect()
    }

    // ---- range and roundrobin: Java's Javadoc examples

    #[test]
    fn range_matches_java_javadoc_example() {
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let out = RangeAssignor.assign(&ppt(&[("t0", 3), ("t1", 3)]), &members).unwrap();
        assert_eq!(
            parts(&out, "C0"),
            vec![tp("t0", 0), tp("t0", 1), tp("t1", 0), tp("t1", 1)]
        );
        assert_eq!(parts(&out, "C1"), vec![tp("t0", 2), tp("t1", 2)]);
    }

    #[test]
    fn roundrobin_matches_java_javadoc_examples() {
        let members = [member("C0", &["t0", "t1"]), member("C1", &["t0", "t1"])];
        let out = RoundRobinAssignor
            .assign(&ppt(&[("t0", 3), ("t1", 3)]), &members)
            .unwrap();
        assert_eq!(parts(&out, "C0"), vec![tp("t0", 0), tp("t0", 2), tp("t1", 1)]);
        assert_eq!(parts(&out, "C1"), vec![tp("t0", 1), tp("t1", 0), tp("t1", 2)]);

        // The second Javadoc example: members subscribed to different topics are skipped.
        let members = [
            member("C0", &["t0"]),
            member("C1", &["t0", "t1"]),
            member("C2", &["t0", "t1", "t2"]),
        ];
        let out = RoundRobinAssignor
            .assign(&ppt(&[("t0", 1), ("t1", 2), ("t2", 3)]), &members)
            .unwrap();
        assert_eq!(parts(&out, "C0"), vec![tp("t0", 0)]);
        assert_eq!(parts(&out, "C1"), vec![tp("t1", 0)]);
        assert_eq!(
            parts(&out, "C2"),
            vec![tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)]
        );
    }

    #[test]
    fn static_members_sort_first_by_instance_id() {
        let mut a = member("a", &["t"]);
        a.group_instance_id = Some("z".into());
        let b = member("b", &["t"]);
        let mut c = member("c", &["t"]);
        c.group_instance_id = Some("y".into());
        let members = [a, b, c];
        let out = RangeAssignor.assign(&ppt(&[("t", 3)]), &members).unwrap();
        assert_eq!(parts(&out, "c"), vec![tp("t", 0)]);
        assert_eq!(parts(&out, "a"), vec![tp("t", 1)]);
        assert_eq!(parts(&out, "b"), vec![tp("t", 2)]);
        let out = RoundRobinAssignor.assign(&ppt(&[("t", 4)]), &members).unwrap();
        assert_eq!(parts(&out, "c"), vec![tp("t", 0), tp("t", 3)]);
        assert_eq!(parts(&out, "a"), vec![tp("t", 1)]);
        assert_eq!(parts(&out, "b"), vec![tp("t", 2)]);
    }

    #[test]
    fn missing_and_unsubscribed_topics_are_skipped_and_every_member_is_listed() {
        let members = [member("a", &["t", "gone"]), member("b", &[])];
        for name in ["range", "roundrobin", "sticky", "cooperative-sticky"] {
            let assignor = assignor_by_name(name).unwrap();
            let out = assignor.assign(&ppt(&[("t", 2), ("other", 5)]), &members).unwrap();
            assert_eq!(parts(&out, "a"), vec![tp("t", 0), tp("t", 1)], "{name}");
            assert_eq!(parts(&out, "b"), Vec::<TopicPartition>::new(), "{name}");
        }
    }

    #[test]
    fn duplicate_member_ids_are_an_error() {
        let members = [member("a", &["t"]), member("a", &["t"])];
        for name in ["range", "roundrobin", "sticky", "cooperative-sticky"] {
            let err = assignor_by_name(name)
                .unwrap()
                .assign(&ppt(&[("t", 2)]), &members)
                .unwrap_err();
            assert_eq!(err, AssignorError::DuplicateMember("a".into()));
        }
    }

    #[test]
    fn names_and_protocols() {
        for name in ["range", "roundrobin", "sticky", "cooperative-sticky"] {
            assert_eq!(assignor_by_name(name).unwrap().name(), name);
        }
        assert!(assignor_by_name("uniform").is_none());
        assert_eq!(
            CooperativeStickyAssignor.supported_protocols(),
            &[RebalanceProtocol::Cooperative, RebalanceProtocol::Eager]
        );
        assert_eq!(StickyAssignor.supported_protocols(), &[RebalanceProtocol::Eager]);
        assert!(RebalanceProtocol::Cooperative > RebalanceProtocol::Eager);
        assert_eq!(tp("orders", 7).to_string(), "orders-7");
    }

    // ---- sticky

    fn sizes(out: &BTreeMap<String, Assignment>) -> Vec<usize> {
        out.values().map(|a| a.partitions.len()).collect()
    }

    #[test]
    fn sticky_fresh_group_is_balanced() {
        let members: Vec<_> = ["c0", "c1", "c2"].iter().map(|id| member(id, &["t0", "t1"])).collect();
        let out = StickyAssignor.assign(&ppt(&[("t0", 5), ("t1", 4)]), &members).unwrap();
        assert_eq!(sizes(&out), vec![3, 3, 3]);
        // Java's constrainedAssign deals the sorted partitions round-robin over sorted members.
        assert_eq!(parts(&out, "c0"), vec![tp("t0", 0), tp("t0", 3), tp("t1", 1)]);
    }

    #[test]
    fn sticky_member_leaving_moves_only_its_partitions() {
        let topics = ppt(&[("t0", 7), ("t1", 5)]);
        let members: Vec<_> = ["c0", "c1", "c2"].iter().map(|id| member(id, &["t0", "t1"])).collect();
        let first = StickyAssignor.assign(&topics, &members).unwrap();
        let mut next = next_round(&StickyAssignor, &members, &first, 1);
        // Eager: owned partitions travel in the user data only.
        for m in &mut next {
            m.subscription.owned_partitions.clear();
            m.subscription.generation_id = -1;
        }
        next.retain(|m| m.member_id != "c1");
        let second = StickyAssignor.assign(&topics, &next).unwrap();
        for id in ["c0", "c2"] {
            for p in &first[id].partitions {
                assert!(second[id].partitions.contains(p), "{id} lost {p}");
            }
        }
        assert_eq!(sizes(&second), vec![6, 6]);
    }

    #[test]
    fn sticky_member_joining_moves_the_minimum() {
        let topics = ppt(&[("t0", 7), ("t1", 5)]);
        let mut members: Vec<_> = ["c0", "c1"].iter().map(|id| member(id, &["t0", "t1"])).collect();
        let first = StickyAssignor.assign(&topics, &members).unwrap();
        members = next_round(&StickyAssignor, &members, &first, 1);
        members.push(member("c2", &["t0", "t1"]));
        let second = StickyAssignor.assign(&topics, &members).unwrap();
        assert_eq!(sizes(&second), vec![4, 4, 4]);
        let moved: usize = ["c0", "c1"]
            .iter()
            .map(|id| {
                first[*id]
                    .partitions
                    .iter()
                    .filter(|p| !second[*id].partitions.contains(p))
                    .count()
            })
            .sum();
        assert_eq!(moved, second["c2"].partitions.len());
    }

    #[test]
    fn sticky_user_data_round_trips_and_tolerates_garbage() {
        let owned = vec![tp("a", 1), tp("b", 0), tp("a", 3)];
        let data = StickyAssignor.subscription_user_data(&owned, 9).unwrap();
        let (partitions, generation) = decode_sticky_user_data(&data).unwrap();
        assert_eq!(partitions, vec![tp("a", 1), tp("a", 3), tp("b", 0)]);
        assert_eq!(generation, Some(9));
        assert!(StickyAssignor.subscription_user_data(&[], -1).is_none());
        // V0 (Java before 2.3): no generation.
        let v0 = &data[..data.len() - 4];
        assert_eq!(decode_sticky_user_data(v0).unwrap().1, None);
        // Truncations and a hostile count never panic.
        for len in 0..data.len() - 4 {
            let _ = decode_sticky_user_data(&data[..len]);
        }
        assert!(decode_sticky_user_data(&[0x7f, 0xff, 0xff, 0xff, 0, 1]).is_none());
        let s = Subscription {
            user_data: Some(Bytes::from_static(&[1, 2, 3])),
            ..Subscription::new(vec![])
        };
        let d = sticky_member_data(&s);
        assert!(d.partitions.is_empty());
        assert_eq!(d.generation, -1);
    }

    #[test]
    fn sticky_higher_generation_claim_wins() {
        let topics = ppt(&[("t", 4)]);
        let mut c0 = member("c0", &["t"]);
        c0.subscription.user_data = StickyAssignor.subscription_user_data(&[tp("t", 0), tp("t", 1)], 5);
        let mut c1 = member("c1", &["t"]);
        c1.subscription.user_data = StickyAssignor.subscription_user_data(&[tp("t", 1), tp("t", 2)], 4);
        let out = StickyAssignor.assign(&topics, &[c0, c1]).unwrap();
        assert_eq!(parts(&out, "c0"), vec![tp("t", 0), tp("t", 1)]);
        assert_eq!(parts(&out, "c1"), vec![tp("t", 2), tp("t", 3)]);
    }

    #[test]
    fn sticky_general_path_is_complete_sticky_and_locally_balanced() {
        let topics = ppt(&[("a", 6), ("b", 6)]);
        let members = vec![member("c0", &["a"]), member("c1", &["a", "b"]), member("c2", &["b"])];
        let first = StickyAssignor.assign(&topics, &members).unwrap();
        assert_eq!(sizes(&first), vec![4, 4, 4]);
        check_complete(&topics, &members, &first, true);
        // c3 joins on both topics: everyone keeps what balance allows, c3 gets 3.
        let mut next = next_round(&StickyAssignor, &members, &first, 1);
        next.push(member("c3", &["a", "b"]));
        let second = StickyAssignor.assign(&topics, &next).unwrap();
        check_complete(&topics, &next, &second, true);
        assert_eq!(sizes(&second), vec![3, 3, 3, 3]);
        let moved: usize = ["c0", "c1", "c2"]
            .iter()
            .map(|id| {
                first[*id]
                    .partitions
                    .iter()
                    .filter(|p| !second[*id].partitions.contains(p))
                    .count()
            })
            .sum();
        assert_eq!(moved, 3);
    }

    // ---- cooperative-sticky

    #[test]
    fn cooperative_moves_partitions_in_two_rebalances() {
        let topics = ppt(&[("t0", 4), ("t1", 2)]);
        let a = &CooperativeStickyAssignor;
        let mut members: Vec<_> = ["c0", "c1"].iter().map(|id| member(id, &["t0", "t1"])).collect();
        let first = a.assign(&topics, &members).unwrap();
        assert_eq!(sizes(&first), vec![3, 3]);
        check_complete(&topics, &members, &first, true);

        members = next_round(a, &members, &first, 1);
        members.push(member("c2", &["t0", "t1"]));
        let second = a.assign(&topics, &members).unwrap();
        // Round 1: c0 and c1 each give one up; nobody gets it yet.
        assert_eq!(sizes(&second), vec![2, 2, 0]);
        let mut seen = BTreeSet::new();
        for (id, asg) in &second {
            assert!(asg.partitions.iter().all(|p| seen.insert(p.clone())), "{id}");
            assert!(
                asg.partitions.iter().all(|p| first[id].partitions.contains(p)),
                "{id} gained"
            );
        }
        let revoked: BTreeSet<_> = first
            .values()
            .flat_map(|a| a.partitions.clone())
            .filter(|p| !seen.contains(p))
            .collect();
        assert_eq!(revoked.len(), 2);

        // Round 2, after c0 and c1 revoked: c2 gets exactly those.
        members = next_round(a, &members, &second, 2);
        let third = a.assign(&topics, &members).unwrap();
        check_complete(&topics, &members, &third, true);
        assert_eq!(third["c2"].partitions.iter().cloned().collect::<BTreeSet<_>>(), revoked);
        assert_eq!(parts(&third, "c0"), parts(&second, "c0"));
        assert_eq!(parts(&third, "c1"), parts(&second, "c1"));
    }

    #[test]
    fn cooperative_doubly_claimed_partition_is_withheld() {
        let topics = ppt(&[("t", 4)]);
        let mut c0 = member("c0", &["t"]);
        c0.subscription.owned_partitions = vec![tp("t", 0), tp("t", 1)];
        c0.subscription.generation_id = 3;
        let mut c1 = member("c1", &["t"]);
        c1.subscription.owned_partitions = vec![tp("t", 1), tp("t", 2)];
        c1.subscription.generation_id = 3;
        let out = CooperativeStickyAssignor
            .assign(&topics, &[c0.clone(), c1.clone()])
            .unwrap();
        assert_eq!(parts(&out, "c0"), vec![tp("t", 0)]);
        assert_eq!(parts(&out, "c1"), vec![tp("t", 2), tp("t", 3)]);
        // A newer generation's claim wins outright.
        c0.subscription.generation_id = 4;
        let out = CooperativeStickyAssignor.assign(&topics, &[c0, c1]).unwrap();
        assert_eq!(parts(&out, "c0"), vec![tp("t", 0), tp("t", 1)]);
        assert_eq!(parts(&out, "c1"), vec![tp("t", 2), tp("t", 3)]);
    }

    #[test]
    fn cooperative_user_data_is_the_generation() {
        let data = CooperativeStickyAssignor.subscription_user_data(&[], 7).unwrap();
        assert_eq!(&data[..], &[0, 0, 0, 7]);
        assert_eq!(
            &CooperativeStickyAssignor.subscription_user_data(&[], -1).unwrap()[..],
            &[0xff; 4]
        );
        // A v1 subscription (no generation field) carries it in the user data.
        let s = Subscription {
            user_data: Some(data),
            owned_partitions: vec![tp("t", 0)],
            ..Subscription::default()
        };
        let d = cooperative_member_data(&s);
        assert_eq!((d.generation, d.partitions), (7, vec![tp("t", 0)]));
        let s = Subscription {
            user_data: Some(Bytes::from_static(&[1])),
            ..Subscription::default()
        };
        assert_eq!(cooperative_member_data(&s).generation, -1);
        let s = Subscription {
            generation_id: 3,
            user_data: Some(Bytes::from_static(&[0, 0, 0, 9])),
            ..Subscription::default()
        };
        assert_eq!(cooperative_member_data(&s).generation, 3);
    }

    // ---- randomized invariants

    struct XorShift(u64);

    impl XorShift {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n.max(1)
        }
    }

    /// Every partition of every subscribed existing topic assigned exactly once
    /// (`complete`) or at most once, only to members subscribed to its topic, nothing else.
    fn check_complete(
        topics: &BTreeMap<String, i32>,
        members: &[MemberSubscription],
        out: &BTreeMap<String, Assignment>,
        complete: bool,
    ) {
        assert_eq!(out.len(), members.len());
        let mut seen = BTreeSet::new();
        for m in members {
            for p in &out[&m.member_id].partitions {
                assert!(
                    m.subscription.topics.iter().any(|t| **t == *p.topic),
                    "{p} to unsubscribed {}",
                    m.member_id
                );
                assert!((0..topics[&*p.topic]).contains(&p.partition), "{p} does not exist");
                assert!(seen.insert(p.clone()), "{p} assigned twice");
            }
        }
        if complete {
            let expected: BTreeSet<_> = all_partitions(&subscribed_topics(topics, members)).collect();
            assert_eq!(seen, expected);
        }
    }

    /// No member with two or more partitions more than a member that could take one of them.
    fn check_locally_balanced(members: &[MemberSubscription], out: &BTreeMap<String, Assignment>) {
        for a in members {
            let la = out[&a.member_id].partitions.len();
            for p in &out[&a.member_id].partitions {
                for b in members
                    .iter()
                    .filter(|b| b.subscription.topics.iter().any(|t| **t == *p.topic))
                {
                    assert!(
                        out[&b.member_id].partitions.len() + 1 >= la,
                        "{p} could move to {}",
                        b.member_id
                    );
                }
            }
        }
    }

    #[test]
    fn random_groups_get_valid_assignments() {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        for case in 0..300 {
            let n_topics = 1 + rng.below(4);
            let topics: BTreeMap<String, i32> = (0..n_topics).map(|t| (format!("t{t}"), rng.below(9) as i32)).collect();
            let mut universe: Vec<String> = topics.keys().cloned().collect();
            universe.push("missing".into());
            let pick = |rng: &mut XorShift| -> Vec<String> {
                universe.iter().filter(|_| rng.below(3) != 0).cloned().collect()
            };
            let same = rng.below(2) == 0;
            let common = pick(&mut rng);
            let mut next_id = 0;
            let mut new_member = |rng: &mut XorShift| {
                next_id += 1;
                let topics = if same { common.clone() } else { pick(rng) };
                MemberSubscription {
                    member_id: format!("m{:02}", (next_id * 7) % 100),
                    group_instance_id: None,
                    subscription: Subscription::new(topics),
                }
            };
            let initial: Vec<_> = (0..1 + rng.below(6)).map(|_| new_member(&mut rng)).collect();

            for name in ["range", "roundrobin", "sticky", "cooperative-sticky"] {
                let assignor = assignor_by_name(name).unwrap();
                let cooperative = name == "cooperative-sticky";
                let sticky = name.contains("sticky");
                let mut members = initial.clone();
                let mut previous: Option<BTreeMap<String, Assignment>> = None;
                for round in 0..8 {
                    let changed = round < 3 && rng.below(2) == 0;
                    if changed {
                        if rng.below(2) == 0 && members.len() > 1 {
                            let i = rng.below(members.len() as u64) as usize;
                            members.remove(i);
                        } else {
                            members.push(new_member(&mut rng));
                        }
                    }
                    let out = assignor.assign(&topics, &members).unwrap();
                    let settled = !cooperative || round >= 5;
                    check_complete(&topics, &members, &out, settled);
                    if cooperative {
                        // Never give a partition that another member still owns.
                        for (id, a) in &out {
                            for p in &a.partitions {
                                for m in members.iter().filter(|m| m.member_id != *id) {
                                    assert!(
                                        !m.subscription.owned_partitions.contains(p),
                                        "case {case}: {p} owned twice"
                                    );
                                }
                            }
                        }
                    }
                    if sticky && settled {
                        let all_same = members
                            .windows(2)
                            .all(|w| topic_set(&w[0].subscription) == topic_set(&w[1].subscription));
                        if all_same {
                            let s = sizes(&out);
                            assert!(
                                s.iter().max().unwrap_or(&0) - s.iter().min().unwrap_or(&0) <= 1,
                                "case {case} {name}: {s:?}"
                            );
                        } else {
                            check_locally_balanced(&members, &out);
                        }
                        // Stable: an unchanged group keeps a complete assignment as it is.
                        if let Some(prev) = previous.as_ref().filter(|_| !changed && round >= 6) {
                            assert_eq!(prev, &out, "case {case} {name} round {round}");
                        }
                    }
                    members = next_round(assignor.as_ref(), &members, &out, round + 1);
                    previous = Some(out);
                }
            }
        }
    }

    #[test]
    fn conflicting_and_bogus_claims_still_give_valid_assignments() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let topics = ppt(&[("a", 5), ("b", 3)]);
        for _ in 0..300 {
            let members: Vec<MemberSubscription> = (0..1 + rng.below(5))
                .map(|i| {
                    let subscribed: &[&str] = if rng.below(3) == 0 { &["a"] } else { &["a", "b"] };
                    let mut m = member(&format!("m{i}"), subscribed);
                    m.subscription.owned_partitions = (0..rng.below(8))
                        .map(|_| tp(["a", "b", "zzz"][rng.below(3) as usize], rng.below(7) as i32 - 1))
                        .collect();
                    m.subscription.generation_id = rng.below(4) as i32 - 1;
                    m.subscription.user_data = StickyAssignor
                        .subscription_user_data(&m.subscription.owned_partitions, m.subscription.generation_id);
                    m
                })
                .collect();
            check_complete(
                &topics,
                &members,
                &StickyAssignor.assign(&topics, &members).unwrap(),
                true,
            );
            check_complete(
                &topics,
                &members,
                &CooperativeStickyAssignor.assign(&topics, &members).unwrap(),
                false,
            );
        }
    }

    // ---- consumer protocol codec

    fn sample_subscription() -> Subscription {
        Subscription {
            topics: vec!["foo".into(), "bar".into()],
            user_data: Some(Bytes::from_static(b"\x00\x01\x02")),
            owned_partitions: vec![tp("foo", 0), tp("foo", 2), tp("bar", 1)],
            generation_id: 12,
            rack_id: Some("rack-a".into()),
        }
    }

    #[test]
    fn subscription_round_trips_every_version() {
        let full = sample_subscription();
        for version in 0..=CONSUMER_PROTOCOL_VERSION {
            let bytes = full.encode(version).unwrap();
            assert_eq!(&bytes[..2], &version.to_be_bytes());
            let decoded = Subscription::decode(bytes).unwrap();
            let mut expected = full.clone();
            if version < 1 {
                expected.owned_partitions.clear();
            }
            if version < 2 {
                expected.generation_id = -1;
            }
            if version < 3 {
                expected.rack_id = None;
            }
            assert_eq!(decoded, expected, "v{version}");
        }
        let empty = Subscription::default();
        assert_eq!(Subscription::decode(empty.encode(3).unwrap()).unwrap(), empty);
        assert!(matches!(
            full.encode(4),
            Err(AssignorError::UnsupportedVersion { version: 4, .. })
        ));
        assert!(matches!(full.encode(-1), Err(AssignorError::UnsupportedVersion { .. })));
    }

    #[test]
    fn assignment_round_trips_every_version() {
        let full = Assignment {
            partitions: vec![tp("t1", 0), tp("t1", 1), tp("t0", 5)],
            user_data: Some(Bytes::from_static(b"xyz")),
        };
        for version in 0..=CONSUMER_PROTOCOL_VERSION {
            assert_eq!(
                Assignment::decode(full.encode(version).unwrap()).unwrap(),
                full,
                "v{version}"
            );
        }
        let empty = Assignment::default();
        assert_eq!(Assignment::decode(empty.encode(0).unwrap()).unwrap(), empty);
    }

    /// A Java big-endian string: i16 length, UTF-8.
    fn s(out: &mut Vec<u8>, v: &str) {
        out.extend_from_slice(&(v.len() as i16).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }

    fn i32be(out: &mut Vec<u8>, v: i32) {
        out.extend_from_slice(&v.to_be_bytes());
    }

    /// What Java's `ConsumerProtocol.serializeSubscription(new Subscription(["t0", "t1"]), 0)`
    /// writes: version, topics, null user data.
    fn java_subscription_v0() -> Vec<u8> {
        let mut b = vec![0, 0];
        i32be(&mut b, 2);
        s(&mut b, "t0");
        s(&mut b, "t1");
        i32be(&mut b, -1);
        b
    }

    /// Java 3.5+ cooperative-sticky at generation 5 owning foo-0 and foo-2 with
    /// `client.rack=rack-a`: topics, user data (the generation), owned partitions by topic,
    /// generation, rack.
    fn java_subscription_v3() -> Vec<u8> {
        let mut b = vec![0, 3];
        i32be(&mut b, 1);
        s(&mut b, "foo");
        i32be(&mut b, 4);
        i32be(&mut b, 5);
        i32be(&mut b, 1);
        s(&mut b, "foo");
        i32be(&mut b, 2);
        i32be(&mut b, 0);
        i32be(&mut b, 2);
        i32be(&mut b, 5);
        s(&mut b, "rack-a");
        b
    }

    #[test]
    fn decodes_java_subscriptions() {
        let v0 = Subscription::decode(Bytes::from(java_subscription_v0())).unwrap();
        assert_eq!(v0, Subscription::new(vec!["t0".into(), "t1".into()]));
        assert_eq!(&v0.encode(0).unwrap()[..], &java_subscription_v0()[..]);

        let v3 = Subscription::decode(Bytes::from(java_subscription_v3())).unwrap();
        let expected = Subscription {
            topics: vec!["foo".into()],
            user_data: Some(Bytes::from_static(&[0, 0, 0, 5])),
            owned_partitions: vec![tp("foo", 0), tp("foo", 2)],
            generation_id: 5,
            rack_id: Some("rack-a".into()),
        };
        assert_eq!(v3, expected);
        assert_eq!(&v3.encode(3).unwrap()[..], &java_subscription_v3()[..]);
        assert_eq!(cooperative_member_data(&v3).generation, 5);
    }

    #[test]
    fn decodes_java_assignment() {
        // ConsumerProtocol.serializeAssignment(new Assignment([t0-0, t0-1, t1-0]), 0)
        let mut b = vec![0, 0];
        i32be(&mut b, 2);
        s(&mut b, "t0");
        i32be(&mut b, 2);
        i32be(&mut b, 0);
        i32be(&mut b, 1);
        s(&mut b, "t1");
        i32be(&mut b, 1);
        i32be(&mut b, 0);
        i32be(&mut b, -1);
        let a = Assignment::decode(Bytes::from(b.clone())).unwrap();
        assert_eq!(a.partitions, vec![tp("t0", 0), tp("t0", 1), tp("t1", 0)]);
        assert_eq!(a.user_data, None);
        assert_eq!(&a.encode(0).unwrap()[..], &b[..]);
    }

    #[test]
    fn newer_versions_are_read_as_ours() {
        // A hypothetical v4 with a field we do not know after the v3 body.
        let mut b = java_subscription_v3();
        b[1] = 4;
        b.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
        let decoded = Subscription::decode(Bytes::from(b)).unwrap();
        assert_eq!(decoded.rack_id.as_deref(), Some("rack-a"));
        assert_eq!(decoded.generation_id, 5);

        let mut a = Assignment {
            partitions: vec![tp("x", 3)],
            user_data: None,
        }
        .encode(3)
        .unwrap()
        .to_vec();
        a[0] = 0x7f;
        a.push(1);
        assert_eq!(Assignment::decode(Bytes::from(a)).unwrap().partitions, vec![tp("x", 3)]);
    }

    #[test]
    fn truncated_and_garbage_input_is_an_error_not_a_panic() {
        let sub = sample_subscription().encode(3).unwrap();
        for len in 0..sub.len() {
            assert!(
                Subscription::decode(sub.slice(..len)).is_err(),
                "subscription cut at {len}"
            );
        }
        let asg = Assignment {
            partitions: vec![tp("t", 1), tp("u", 2)],
            user_data: Some(Bytes::from_static(b"ud")),
        }
        .encode(1)
        .unwrap();
        for len in 0..asg.len() {
            assert!(Assignment::decode(asg.slice(..len)).is_err(), "assignment cut at {len}");
        }
        assert!(matches!(
            Subscription::decode(Bytes::from_static(&[0xff, 0xff])),
            Err(AssignorError::UnsupportedVersion { version: -1, .. })
        ));
        // Huge and negative counts with nothing behind them.
        assert!(Subscription::decode(Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])).is_err());
        assert!(Assignment::decode(Bytes::from_static(&[0, 1, 0x7f, 0xff, 0xff, 0xff])).is_err());
        assert!(Subscription::decode(Bytes::from_static(&[0, 0, 0xff, 0xff, 0xff, 0xfe])).is_err());
        // Invalid UTF-8 in a topic name.
        assert!(Subscription::decode(Bytes::from_static(&[
            0, 0, 0, 0, 0, 1, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff
        ]))
        .is_err());
        // Random bytes: any result, no panic.
        let mut rng = XorShift(0x1234_5678_9abc_def1);
        for _ in 0..2000 {
            let len = rng.below(40) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.below(256) as u8).collect();
            if let Some(v) = bytes.get_mut(0) {
                *v = 0;
            }
            if let Some(v) = bytes.get_mut(1) {
                *v %= 5;
            }
            let _ = Subscription::decode(Bytes::from(bytes.clone()));
            let _ = Assignment::decode(Bytes::from(bytes.clone()));
            let _ = decode_sticky_user_data(&bytes);
        }
    }
}
