//! Admin for share groups (KIP-932): describe a share group (members and what the broker
//! assigned them), its start offsets per partition (where the group has got to), alter
//! them (the group must be empty) and delete them. Each request goes to the group's
//! coordinator. Listing shows share groups with the others ([`Admin::list_groups`], type
//! `share`), and [`Admin::delete_groups`] deletes them.

use std::collections::BTreeMap;

use strom_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use strom_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
use strom_protocol::messages::describe_share_group_offsets_request::DescribeShareGroupOffsetsRequestGroup;
use strom_protocol::messages::{
    AlterShareGroupOffsetsRequest, DeleteShareGroupOffsetsRequest, DescribeShareGroupOffsetsRequest, GroupId,
    ShareGroupDescribeRequest,
};

use strom_protocol::frame::ApiRequest;

use crate::admin::{s, topic_name, Admin, CoordinatorType};
use crate::error::check;
use crate::error::Result;

/// A share group as ShareGroupDescribe reports it (Java's `ShareGroupDescription`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShareGroupDescription {
    /// Group id.
    pub group_id: String,
    /// `Empty`, `Stable` or `Dead`.
    pub state: String,
    /// The group epoch.
    pub group_epoch: i32,
    /// The epoch of the assignment the members have.
    pub assignment_epoch: i32,
    /// The broker's assignor (`simple`).
    pub assignor: String,
    /// Members.
    pub members: Vec<ShareGroupMember>,
}

/// A member of a share group.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShareGroupMember {
    /// Member id.
    pub member_id: String,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Member epoch.
    pub member_epoch: i32,
    /// Its rack, if it said.
    pub rack: Option<String>,
    /// The topics it subscribed to.
    pub subscribed_topics: Vec<String>,
    /// Topic -> the partitions assigned to it (a partition may be assigned to several
    /// members of a share group at once).
    pub assignment: BTreeMap<String, Vec<i32>>,
}

impl Admin {
    /// `req` to `group`'s coordinator, found again and retried as the client retries.
    async fn to_group_coordinator<R>(&self, what: &str, group: &str, req: &R) -> Result<R::Response>
    where
        R: ApiRequest + Sync,
        R::Response: Send,
    {
        self.client()
            .with_retries(what, || async {
                self.coordinator(group, CoordinatorType::Group).await?.send(req).await
            })
            .await
    }

    /// Describes a share group. GROUP_ID_NOT_FOUND when there is none (or the group is
    /// not a share group).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn describe_share_group(&self, group: &str) -> Result<ShareGroupDescription> {
        let req = ShareGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
        let resp = self.to_group_coordinator("ShareGroupDescribe", group, &req).await?;
        let g = resp.groups.into_iter().next().ok_or_else(|| {
            crate::Error::protocol(format!("ShareGroupDescribe answered nothing for share group {group}"))
        })?;
        check(g.error_code, g.error_message.as_ref(), || {
            format!("share group {group}")
        })?;
        Ok(ShareGroupDescription {
            group_id: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            group_epoch: g.group_epoch,
            assignment_epoch: g.assignment_epoch,
            assignor: g.assignor_name.to_string(),
            members: g
                .members
                .into_iter()
                .map(|m| ShareGroupMember {
                    member_id: m.member_id.to_string(),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    member_epoch: m.member_epoch,
                    rack: m.rack_id.map(|r| r.to_string()),
                    subscribed_topics: m.subscribed_topic_names.iter().map(|t| t.0.to_string()).collect(),
                    assignment: m
                        .assignment
                        .topic_partitions
                        .into_iter()
                        .map(|t| (t.topic_name.0.to_string(), t.partitions))
                        .collect(),
                })
                .collect(),
        })
    }

    /// The share group's start offset of each partition it has state for: records before
    /// it are done (acknowledged or archived). Java's `listShareGroupOffsets`.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn share_group_offsets(&self, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
        let req = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
            DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(None),
        ]);
        let resp = self
            .to_group_coordinator("DescribeShareGroupOffsets", group, &req)
            .await?;
        let mut out = BTreeMap::new();
        for g in resp.groups {
            check(g.error_code, g.error_message.as_ref(), || {
                format!("share group {group}")
            })?;
            for t in g.topics {
                for p in t.partitions {
                    check(p.error_code, p.error_message.as_ref(), || {
                        format!("share group {group}: {}-{}", t.topic_name.0, p.partition_index)
                    })?;
                    if p.start_offset >= 0 {
                        out.insert((t.topic_name.0.to_string(), p.partition_index), p.start_offset);
                    }
                }
            }
        }
        Ok(out)
    }

    /// Sets the share group's start offsets (the group must have no members): records
    /// before them count as done. Java's `alterShareGroupOffsets`.
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn alter_share_group_offsets(&self, group: &str, topic: &str, offsets: &[(i32, i64)]) -> Result<()> {
        let req = AlterShareGroupOffsetsRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(vec![AlterShareGroupOffsetsRequestTopic::default()
                .with_topic_name(topic_name(topic))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|(p, o)| {
                            AlterShareGroupOffsetsRequestPartition::default()
                                .with_partition_index(*p)
                                .with_start_offset(*o)
                        })
                        .collect(),
                )]);
        let resp = self.to_group_coordinator("AlterShareGroupOffsets", group, &req).await?;
        check(resp.error_code, resp.error_message.as_ref(), || {
            format!("share group {group}")
        })?;
        for t in resp.responses {
            for p in t.partitions {
                check(p.error_code, p.error_message.as_ref(), || {
                    format!("share group {group}: {}-{}", t.topic_name.0, p.partition_index)
                })?;
            }
        }
        Ok(())
    }

    /// Deletes the share group's state of these topics (the group must have no members).
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn delete_share_group_offsets(&self, group: &str, topics: &[&str]) -> Result<()> {
        let req = DeleteShareGroupOffsetsRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(
                topics
                    .iter()
                    .map(|t| DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(topic_name(t)))
                    .collect(),
            );
        let resp = self
            .to_group_coordinator("DeleteShareGroupOffsets", group, &req)
            .await?;
        check(resp.error_code, resp.error_message.as_ref(), || {
            format!("share group {group}")
        })?;
        for t in resp.responses {
            check(t.error_code, t.error_message.as_ref(), || {
                format!("share group {group}: topic {}", t.topic_name.0)
            })?;
        }
        Ok(())
    }
}
