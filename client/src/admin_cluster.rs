//! Admin for replica placement: leader elections (Java's `Admin.electLeaders`) and
//! partition reassignments (`alterPartitionReassignments`, `listPartitionReassignments`).
//! The requests go to any broker, which forwards them to the KRaft controller.

use std::collections::BTreeMap;

use strom_protocol::messages::alter_partition_reassignments_request::{ReassignablePartition, ReassignableTopic};
use strom_protocol::messages::elect_leaders_request::TopicPartitions;
use strom_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
use strom_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, ElectLeadersRequest, ListPartitionReassignmentsRequest,
};

use crate::admin::{topic_name, Admin};
use crate::error::check;
use crate::error::{Error, Result};

/// Which leader ElectLeaders should pick (Java's `ElectionType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// The preferred replica (the first of the replica list), if it is in sync.
    Preferred,
    /// Any live replica, even one out of sync: records only the old leader had are lost.
    Unclean,
}

/// A partition reassignment in progress (ListPartitionReassignments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReassignment {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The replica set, during the move: old and new replicas.
    pub replicas: Vec<i32>,
    /// Replicas being added.
    pub adding_replicas: Vec<i32>,
    /// Replicas being removed.
    pub removing_replicas: Vec<i32>,
}

fn group_by_topic<'a>(partitions: &[(&'a str, i32)]) -> BTreeMap<&'a str, Vec<i32>> {
    let mut by_topic: BTreeMap<&'a str, Vec<i32>> = BTreeMap::new();
    for &(t, p) in partitions {
        by_topic.entry(t).or_default().push(p);
    }
    by_topic
}

impl Admin {
    fn placement_timeout_ms(&self) -> i32 {
        i32::try_from(self.client().config().request_timeout.as_millis()).unwrap_or(i32::MAX)
    }

    /// Elects leaders for `partitions` (`None`: every partition whose preferred leader is
    /// not the leader, for [`ElectionType::Preferred`]). Returns each partition's outcome,
    /// as Java's `electLeaders` does: a partition whose leader is already the one asked
    /// for reports ELECTION_NOT_NEEDED (see [`Error::kafka_code`]). A request-level error
    /// (e.g. CLUSTER_AUTHORIZATION_FAILED) fails the whole call.
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn elect_leaders(
        &self,
        election: ElectionType,
        partitions: Option<&[(&str, i32)]>,
    ) -> Result<BTreeMap<(String, i32), Result<()>>> {
        let client = self.client();
        let version = client.any_broker().await?.versions().version(ApiKey::ElectLeaders)?;
        if election == ElectionType::Unclean && version < 1 {
            return Err(Error::kafka(strom_protocol::ErrorCode::UnsupportedVersion)
                .with_context("the broker supports only ElectLeaders v0, which has no unclean elections"));
        }
        let req = ElectLeadersRequest::default()
            .with_election_type(match election {
                ElectionType::Preferred => 0,
                ElectionType::Unclean => 1,
            })
            .with_timeout_ms(self.placement_timeout_ms())
            .with_topic_partitions(partitions.map(|ps| {
                group_by_topic(ps)
                    .into_iter()
                    .map(|(t, p)| TopicPartitions::default().with_topic(topic_name(t)).with_partitions(p))
                    .collect()
            }));
        let resp = client
            .with_retries("ElectLeaders", || async {
                let resp = client.any_broker().await?.send(&req).await?;
                check(resp.error_code, None, || "ElectLeaders".to_owned())?;
                Ok(resp)
            })
            .await?;
        let mut out = BTreeMap::new();
        for t in resp.replica_election_results {
            let topic = t.topic.0.to_string();
            for p in t.partition_result {
                let result = check(p.error_code, p.error_message.as_ref(), || {
                    format!("topic {topic} partition {}", p.partition_id)
                });
                out.insert((topic.clone(), p.partition_id), result);
            }
        }
        Ok(out)
    }

    /// Moves partitions to new replica sets (`Some(replicas)`, the first replica preferred
    /// as leader) or cancels a move in progress (`None`). Returns once the controller has
    /// accepted every reassignment; the data moves in the background (see
    /// [`Admin::list_partition_reassignments`]). Fails on the first partition refused,
    /// naming it.
    pub async fn alter_partition_reassignments(&self, reassignments: &[(&str, i32, Option<Vec<i32>>)]) -> Result<()> {
        let mut by_topic: BTreeMap<&str, Vec<ReassignablePartition>> = BTreeMap::new();
        for (t, p, replicas) in reassignments {
            by_topic.entry(t).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(*p)
                    .with_replicas(replicas.as_ref().map(|r| r.iter().copied().map(BrokerId).collect())),
            );
        }
        let req = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.placement_timeout_ms())
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        ReassignableTopic::default()
                            .with_name(topic_name(t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let client = self.client();
        let resp = client
            .with_retries("AlterPartitionReassignments", || async {
                let resp = client.any_broker().await?.send(&req).await?;
                check(resp.error_code, resp.error_message.as_ref(), || {
                    "AlterPartitionReassignments".to_owned()
                })?;
                Ok(resp)
            })
            .await?;
        for t in &resp.responses {
            for p in &t.partitions {
                check(p.error_code, p.error_message.as_ref(), || {
                    format!(
                        "reassignment of topic {} partition {}",
                        t.name.0.as_str(),
                        p.partition_index
                    )
                })?;
            }
        }
        Ok(())
    }

    /// The reassignments in progress, of `partitions` or (`None`) of the whole cluster.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn list_partition_reassignments(
        &self,
        partitions: Option<&[(&str, i32)]>,
    ) -> Result<Vec<PartitionReassignment>> {
        let req = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(self.placement_timeout_ms())
            .with_topics(partitions.map(|ps| {
                group_by_topic(ps)
                    .into_iter()
                    .map(|(t, p)| {
                        ListPartitionReassignmentsTopics::default()
                            .with_name(topic_name(t))
                            .with_partition_indexes(p)
                    })
                    .collect()
            }));
        let client = self.client();
        let resp = client
            .with_retries("ListPartitionReassignments", || async {
                let resp = client.any_broker().await?.send(&req).await?;
                check(resp.error_code, resp.error_message.as_ref(), || {
                    "ListPartitionReassignments".to_owned()
                })?;
                Ok(resp)
            })
            .await?;
        let ids = |v: Vec<BrokerId>| v.into_iter().map(|b| b.0).collect();
        Ok(resp
            .topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partitions.into_iter().map(move |p| PartitionReassignment {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    replicas: ids(p.replicas),
                    adding_replicas: ids(p.adding_replicas),
                    removing_replicas: ids(p.removing_replicas),
                })
            })
            .collect())
    }
}
