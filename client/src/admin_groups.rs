//! Admin: groups, their members and committed offsets (ListGroups, DescribeGroups,
//! ConsumerGroupDescribe, OffsetFetch/OffsetCommit, DeleteGroups, OffsetDelete).

use std::collections::BTreeMap;

use strom_protocol::messages::consumer_group_describe_response;
use strom_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use strom_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use strom_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetDeleteRequest,
};
use strom_protocol::ErrorCode;

use crate::error::{check, Error, Result};

use crate::admin::{s, topic_name, Admin, CoordinatorType};
use crate::consumer::assignor::{Assignment, AssignorError};
use bytes::Bytes;

/// A group as `list_groups` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type (`consumer` for consumer groups).
    pub protocol_type: String,
    /// State (`Stable`, `Empty`, ...), when the broker reports it.
    pub state: String,
    /// Group type (`classic`, `consumer`, ...), when the broker reports it.
    pub group_type: String,
}

/// A member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id.
    pub member_id: String,
    /// Static member id, when set.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Assigned partitions, topic → partitions: a `consumer` group's members' ConsumerProtocol
    /// assignments (empty before the group's first SyncGroup). Other protocol types (Kafka
    /// Connect's `connect`, ...) carry assignments in their own formats: empty here.
    pub assignment: BTreeMap<String, Vec<i32>>,
}

/// A classic group as DescribeGroups reports it: state, protocol and members with their
/// assignments. Committed offsets are not part of it ([`Admin::group_offsets`] has them),
/// and KIP-848 (`group.protocol=consumer`) groups are described by
/// [`Admin::describe_consumer_group`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State.
    pub state: String,
    /// Protocol type.
    pub protocol_type: String,
    /// Assignor (`range`, `cooperative-sticky`, ...).
    pub protocol: String,
    /// Members.
    pub members: Vec<GroupMember>,
}

/// Which group protocol a consumer group runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GroupType {
    /// The classic protocol (JoinGroup/SyncGroup, client-side assignment).
    Classic,
    /// The consumer protocol of KIP-848 (ConsumerGroupHeartbeat, server-side assignment).
    Consumer,
}

/// A consumer group of either protocol ([`Admin::describe_consumer_group`]): state,
/// assignor and members with their assignments. Committed offsets are not part of it
/// ([`Admin::group_offsets`] has them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    /// Group id.
    pub group_id: String,
    /// The protocol the group runs.
    pub group_type: GroupType,
    /// Classic groups: the protocol type members joined with (`consumer` for consumers;
    /// empty while the group has no members). Consumer groups: `consumer`.
    pub protocol_type: String,
    /// State (`Stable`, `Empty`, `PreparingRebalance`, `Assigning`, `Reconciling`, ...).
    pub state: String,
    /// Assignor: the client-side one of a classic group (`range`, `cooperative-sticky`),
    /// the broker's of a consumer group (`uniform`, `range`); empty when none yet.
    pub assignor: String,
    /// Group epoch (consumer groups only).
    pub group_epoch: Option<i32>,
    /// Members.
    pub members: Vec<ConsumerGroupMember>,
}

/// A member of a consumer group ([`ConsumerGroupDescription`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMember {
    /// Member id.
    pub member_id: String,
    /// Static member id, when set.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Member epoch (consumer groups only).
    pub member_epoch: Option<i32>,
    /// Partitions the member owns now, topic → partitions (sorted).
    pub assignment: BTreeMap<String, Vec<i32>>,
    /// Consumer groups: the partitions the broker is moving the member to, when they differ
    /// from `assignment` (a rebalance in progress).
    pub target_assignment: Option<BTreeMap<String, Vec<i32>>>,
}

impl Admin {
    /// All groups the cluster knows (ListGroups on every broker).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let md = self.client().metadata();
        let mut out = Vec::new();
        for &id in md.brokers.keys() {
            let resp = self
                .client()
                .with_retries("ListGroups", || async {
                    self.client()
                        .broker(id)
                        .await?
                        .send(&ListGroupsRequest::default())
                        .await
                })
                .await?;
            check(resp.error_code, None, || format!("broker {id}"))?;
            out.extend(resp.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
                group_type: g.group_type.to_string(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// Describes a classic group: state, members and their assignments. A KIP-848 consumer
    /// group is GROUP_ID_NOT_FOUND here ("not a classic group"):
    /// [`Admin::describe_consumer_group`] describes groups of both protocols.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
        let resp = self
            .client()
            .with_retries("DescribeGroups", || async {
                self.coordinator(group, CoordinatorType::Group).await?.send(&req).await
            })
            .await?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::protocol(format!("DescribeGroups returned nothing for group {group}")))?;
        check(g.error_code, g.error_message.as_ref(), || format!("group {group}"))?;
        let protocol_type = g.protocol_type.to_string();
        let members = g
            .members
            .into_iter()
            .map(|m| {
                let member_id = m.member_id.to_string();
                let assignment = consumer_assignment(&protocol_type, m.member_assignment)
                    .map_err(|e| Error::protocol(format!("DescribeGroups: group {group}, member {member_id}: {e}")))?;
                Ok(GroupMember {
                    member_id,
                    group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    assignment,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(GroupDescription {
            group_id: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            protocol_type,
            protocol: g.protocol_data.to_string(),
            members,
        })
    }

    /// Describes a consumer group of either protocol: ConsumerGroupDescribe (KIP-848) first,
    /// and DescribeGroups when the broker has no such API or the group is not a consumer
    /// group (GROUP_ID_NOT_FOUND), as Java's `Admin.describeConsumerGroups`
    /// (`DescribeConsumerGroupsHandler`, KIP-1043). A group neither API knows is reported as
    /// the classic API does (GROUP_ID_NOT_FOUND, or state `Dead` from older brokers).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn describe_consumer_group(&self, group: &str) -> Result<ConsumerGroupDescription> {
        match self.consumer_group_describe(group).await {
            Ok(Some(d)) => return Ok(d),
            Ok(None) => {}
            // Not a KIP-848 group; or (UNSUPPORTED_VERSION) a broker that lists the API but
            // runs without the new group coordinator, as Kafka 3.9 does by default.
            Err(e)
                if matches!(
                    e.kafka_code(),
                    Some(ErrorCode::GroupIdNotFound | ErrorCode::UnsupportedVersion)
                ) => {}
            Err(e) => return Err(e),
        }
        let d = self.describe_group(group).await?;
        Ok(ConsumerGroupDescription {
            group_id: d.group_id,
            group_type: GroupType::Classic,
            protocol_type: d.protocol_type,
            state: d.state,
            assignor: d.protocol,
            group_epoch: None,
            members: d
                .members
                .into_iter()
                .map(|m| ConsumerGroupMember {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    member_epoch: None,
                    assignment: m.assignment,
                    target_assignment: None,
                })
                .collect(),
        })
    }

    /// Describes several consumer groups of either protocol (Java's
    /// `Admin.describeConsumerGroups`), each at its own coordinator, concurrently. Each group
    /// has its own outcome: one unknown or unauthorized group does not hide the others.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn describe_consumer_groups(
        &self,
        groups: &[&str],
    ) -> BTreeMap<String, Result<ConsumerGroupDescription>> {
        let each = groups
            .iter()
            .map(|g| async move { (g.to_string(), self.describe_consumer_group(g).await) });
        futures_util::future::join_all(each).await.into_iter().collect()
    }

    /// ConsumerGroupDescribe (API 69) at the group's coordinator; `None` when the broker
    /// does not have the API.
    async fn consumer_group_describe(&self, group: &str) -> Result<Option<ConsumerGroupDescription>> {
        fn parts(a: &consumer_group_describe_response::Assignment) -> BTreeMap<String, Vec<i32>> {
            let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for t in &a.topic_partitions {
                out.entry(t.topic_name.0.to_string()).or_default().extend(&t.partitions);
            }
            for ps in out.values_mut() {
                ps.sort_unstable();
            }
            out
        }
        let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
        let g = self
            .client()
            .with_retries("ConsumerGroupDescribe", || async {
                let conn = self.coordinator(group, CoordinatorType::Group).await?;
                if conn.versions().broker_range(ApiKey::ConsumerGroupDescribe).is_none() {
                    return Ok(None);
                }
                let resp = conn.send(&req).await?;
                let g = resp.groups.into_iter().next().ok_or_else(|| {
                    Error::protocol(format!("ConsumerGroupDescribe returned nothing for group {group}"))
                })?;
                check(g.error_code, g.error_message.as_ref(), || format!("group {group}"))?;
                Ok(Some(g))
            })
            .await?;
        let Some(g) = g else { return Ok(None) };
        Ok(Some(ConsumerGroupDescription {
            group_id: g.group_id.0.to_string(),
            group_type: GroupType::Consumer,
            protocol_type: "consumer".to_owned(),
            state: g.group_state.to_string(),
            assignor: g.assignor_name.to_string(),
            group_epoch: Some(g.group_epoch),
            members: g
                .members
                .iter()
                .map(|m| {
                    let assignment = parts(&m.assignment);
                    let target = parts(&m.target_assignment);
                    ConsumerGroupMember {
                        member_id: m.member_id.to_string(),
                        group_instance_id: m.instance_id.as_ref().map(ToString::to_string),
                        client_id: m.client_id.to_string(),
                        client_host: m.client_host.to_string(),
                        member_epoch: Some(m.member_epoch),
                        target_assignment: (target != assignment).then_some(target),
                        assignment,
                    }
                })
                .collect(),
        }))
    }

    /// Committed offsets of a group: (topic, partition) → offset.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn group_offsets(&self, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
        // Java's listConsumerGroupOffsets: every partition, require_stable off by default.
        let offsets = crate::lookup::committed_offsets(
            self.client(),
            crate::lookup::OffsetFetch {
                group,
                partitions: None,
                member: None,
                require_stable: false,
            },
        )
        .await?;
        Ok(offsets
            .into_iter()
            .map(|(tp, o)| ((tp.topic.to_string(), tp.partition), o.offset))
            .collect())
    }

    /// Sets committed offsets of a group that has no active members (Java's
    /// `alterConsumerGroupOffsets`: OffsetCommit with generation -1 and no member id).
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn alter_group_offsets(&self, group: &str, topic: &str, offsets: &[(i32, i64)]) -> Result<()> {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_retention_time_ms(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|&(p, o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_committed_leader_epoch(-1)
                        })
                        .collect(),
                )]);
        let resp = self
            .client()
            .with_retries("OffsetCommit", || async {
                let resp = self
                    .coordinator(group, CoordinatorType::Group)
                    .await?
                    .send(&req)
                    .await?;
                for t in &resp.topics {
                    for p in &t.partitions {
                        check(p.error_code, None, || {
                            format!(
                                "group {group} topic {} partition {}",
                                t.name.0.as_str(),
                                p.partition_index
                            )
                        })?;
                    }
                }
                Ok(resp)
            })
            .await?;
        drop(resp);
        Ok(())
    }

    /// Deletes groups (they must be empty).
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn delete_groups(&self, groups: &[&str]) -> Result<()> {
        for group in groups {
            let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]);
            let resp = self
                .client()
                .with_retries("DeleteGroups", || async {
                    self.coordinator(group, CoordinatorType::Group).await?.send(&req).await
                })
                .await?;
            for r in &resp.results {
                check(r.error_code, None, || format!("group {}", r.group_id.0.as_str()))?;
            }
        }
        Ok(())
    }

    /// Deletes the committed offsets of `partitions` of `topic` from `group` (Java's
    /// `deleteConsumerGroupOffsets`, the OffsetDelete API). The broker refuses partitions the
    /// group is consuming (`GROUP_SUBSCRIBED_TO_TOPIC`), naming the partition; a group
    /// without committed offsets there is not an error.
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn delete_group_offsets(&self, group: &str, topic: &str, partitions: &[i32]) -> Result<()> {
        let req = OffsetDeleteRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| OffsetDeleteRequestPartition::default().with_partition_index(*p))
                        .collect(),
                )]);
        let resp = self
            .client()
            .with_retries("OffsetDelete", || async {
                let resp = self
                    .coordinator(group, CoordinatorType::Group)
                    .await?
                    .send(&req)
                    .await?;
                // Coordinator moves are retried (with_retries); anything else is final.
                check(resp.error_code, None, || format!("deleting offsets of group {group}"))?;
                Ok(resp)
            })
            .await?;
        for t in &resp.topics {
            for p in &t.partitions {
                check(p.error_code, None, || {
                    format!(
                        "deleting offsets of group {group}: topic {} partition {}",
                        t.name.0.as_str(),
                        p.partition_index
                    )
                })
                .map_err(|e| e.with_partition(t.name.0.as_str(), p.partition_index))?;
            }
        }
        Ok(())
    }
}

/// A member's assignment as DescribeGroups carries it, read with the consumer's own
/// ConsumerProtocol decoder when the group's protocol type is `consumer`. Unreadable bytes
/// there are an error (Java's `describeConsumerGroups` fails the same way); other protocol
/// types' assignments are theirs to read, and give an empty map.
fn consumer_assignment(
    protocol_type: &str,
    bytes: Bytes,
) -> std::result::Result<BTreeMap<String, Vec<i32>>, AssignorError> {
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    if protocol_type != "consumer" || bytes.is_empty() {
        return Ok(out);
    }
    for tp in Assignment::decode(bytes)?.partitions {
        out.entry(tp.topic.to_string()).or_default().push(tp.partition);
    }
    for parts in out.values_mut() {
        parts.sort_unstable();
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topic_partition::TopicPartition;

    #[test]
    fn a_consumer_groups_assignment_is_read_by_the_consumer_protocol_decoder() {
        let assignment = Assignment {
            partitions: vec![
                TopicPartition::new("t", 3),
                TopicPartition::new("t", 0),
                TopicPartition::new("u", 1),
            ],
            user_data: None,
        };
        for version in 0..=3 {
            let bytes = assignment.encode(version).unwrap();
            assert_eq!(
                consumer_assignment("consumer", bytes).unwrap(),
                BTreeMap::from([("t".to_string(), vec![0, 3]), ("u".to_string(), vec![1])])
            );
        }
        // Before the group's first SyncGroup a member has no assignment yet.
        assert!(consumer_assignment("consumer", Bytes::new()).unwrap().is_empty());
        // Truncated or hostile bytes are an error naming what was wrong, not an empty map.
        let bytes = assignment.encode(1).unwrap();
        let cut = bytes.slice(..bytes.len() - 3);
        assert!(consumer_assignment("consumer", cut).is_err());
        let e = consumer_assignment("consumer", Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])).unwrap_err();
        assert!(e.to_string().contains("ConsumerProtocolAssignment"), "{e}");
        // Another protocol's assignment is its own format.
        assert!(consumer_assignment("connect", Bytes::from_static(b"{\"leader\":1}"))
            .unwrap()
            .is_empty());
    }
}
