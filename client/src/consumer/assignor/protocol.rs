//! The consumer protocol's embedded bytes as Java's `ConsumerProtocol` writes them:
//! [`Subscription`] and [`Assignment`], each an `i16` version then the non-flexible body.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use strom_protocol::message_traits::{Decodable, Encodable, StrBytes};
use strom_protocol::messages::{
    consumer_protocol_assignment, consumer_protocol_subscription, ConsumerProtocolAssignment,
    ConsumerProtocolSubscription, TopicName,
};

use crate::topic_partition::TopicPartition;

/// The highest `ConsumerProtocolSubscription` / `ConsumerProtocolAssignment` version we know
/// (v3 adds the rack id), the one Java's `ConsumerProtocol` sends.
pub const CONSUMER_PROTOCOL_VERSION: i16 = 3;

/// Java's `AbstractStickyAssignor.DEFAULT_GENERATION`: the generation of a member that has none.
pub(super) const DEFAULT_GENERATION: i32 = -1;

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
    /// Two members passed to [`Assignor::assign`](super::Assignor::assign) have the same member id.
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
    /// The assignor's own data ([`Assignor::subscription_user_data`](super::Assignor::subscription_user_data)).
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

pub(super) fn check_encode_version(what: &'static str, version: i16) -> Result<(), AssignorError> {
    if (0..=CONSUMER_PROTOCOL_VERSION).contains(&version) {
        Ok(())
    } else {
        Err(AssignorError::UnsupportedVersion { what, version })
    }
}

pub(super) fn encode_versioned<M: Encodable>(
    what: &'static str,
    version: i16,
    message: &M,
) -> Result<Bytes, AssignorError> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    message
        .encode(&mut buf, version)
        .map_err(|_| AssignorError::Encode(what))?;
    Ok(buf.freeze())
}

/// Java's `ConsumerProtocol.checkSubscriptionVersion` / `checkAssignmentVersion`: negative is
/// an error, newer is read as the newest we know.
pub(super) fn decode_version(what: &'static str, bytes: &mut Bytes) -> Result<i16, AssignorError> {
    if bytes.remaining() < 2 {
        return Err(AssignorError::Malformed(what));
    }
    let version = bytes.get_i16();
    if version < 0 {
        return Err(AssignorError::UnsupportedVersion { what, version });
    }
    Ok(version.min(CONSUMER_PROTOCOL_VERSION))
}

pub(super) fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// Partitions grouped by topic, topics in order of first appearance, partitions in the order
/// given.
pub(super) fn group_by_topic(partitions: &[TopicPartition]) -> Vec<(Arc<str>, Vec<i32>)> {
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
