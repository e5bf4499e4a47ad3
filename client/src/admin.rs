//! Cluster administration: topics, partitions, configs, offsets, consumer groups, cluster.
//!
//! Each call finds the right broker (controller-routed APIs go to any broker in KRaft,
//! which forwards them; group APIs go to the group coordinator; ListOffsets to each
//! partition's leader), retries retriable errors until `default.api.timeout.ms`, and turns
//! per-resource error codes into errors naming the resource.

use std::collections::BTreeMap;

use strom_protocol::message_traits::StrBytes;
use strom_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use strom_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use strom_protocol::messages::{
    ApiKey, BrokerId, DeleteRecordsRequest, DescribeClusterRequest, FindCoordinatorRequest, ListOffsetsRequest,
    TopicName,
};
use strom_protocol::ErrorCode;

use crate::client::{BrokerInfo, Client, PartitionInfo};
use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::{check, Error, Result};

pub(crate) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

pub(crate) fn topic_name(v: &str) -> TopicName {
    TopicName(s(v))
}

/// What ListOffsets should look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark).
    Latest,
    /// The first offset whose timestamp is >= this (ms); the end offset when none.
    Timestamp(i64),
    /// The offset of the record with the largest timestamp (KIP-734).
    MaxTimestamp,
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// One ListOffsets answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// Partition.
    pub partition: i32,
    /// The offset (-1 when no record matches a timestamp).
    pub offset: i64,
    /// Timestamp of that record, -1 when not applicable.
    pub timestamp: i64,
    /// Leader epoch of that record, -1 when unknown.
    pub leader_epoch: i32,
}

/// What [`Admin::delete_records`] left of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedRecords {
    /// Partition.
    pub partition: i32,
    /// The partition's new log start offset (Java's `DeletedRecords.lowWatermark`).
    pub low_watermark: i64,
}

/// Earliest and latest offsets of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Partition.
    pub partition: i32,
    /// Log start offset.
    pub earliest: i64,
    /// Log end offset.
    pub latest: i64,
}

/// What [`Admin::describe_cluster`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterDescription {
    /// The cluster id.
    pub cluster_id: String,
    /// The controller's node id, when the broker names one (with KRaft, a broker the
    /// client can send controller requests through).
    pub controller: Option<i32>,
    /// Every live broker.
    pub brokers: Vec<BrokerInfo>,
}

/// Whose coordinator [`Admin::coordinator`] finds (FindCoordinator's key type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CoordinatorType {
    /// A consumer group's (the key is the group id).
    Group,
    /// A transactional producer's (the key is the transactional id).
    Transaction,
}

impl CoordinatorType {
    pub(crate) fn wire(self) -> i8 {
        match self {
            CoordinatorType::Group => 0,
            CoordinatorType::Transaction => 1,
        }
    }
}

/// Administration handle: topics, partitions, configs, offsets, groups, transactions, SCRAM
/// users, leader elections and reassignments. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> strom_client::Result<()> {
/// use strom_client::{Admin, ClientConfig, NewTopic};
///
/// let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
/// // Returns once every partition has a leader.
/// admin.create_topics(&[NewTopic::new("orders", 6).config("retention.ms", "86400000")]).await?;
/// for topic in admin.describe_topics(&["orders"]).await? {
///     println!("{}: {} partitions", topic.name, topic.partitions.len());
/// }
/// for group in admin.list_groups().await? {
///     let offsets = admin.group_offsets(&group.group_id).await?;
///     println!("{} ({}): {} committed offsets", group.group_id, group.state, offsets.len());
/// }
/// admin.delete_topics(&["orders"]).await?;
/// # Ok(())
/// # }
/// ```
///
/// `client/examples/admin.rs` is a complete program.
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    /// An admin over an existing client.
    pub fn new(client: Client) -> Self {
        Admin { client }
    }

    /// Connects a new client and wraps it.
    pub async fn connect(config: ClientConfig) -> Result<Self> {
        Ok(Admin::new(Client::connect(config).await?))
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) async fn any(&self) -> Result<Connection> {
        self.client.any_broker().await
    }

    /// The cluster id, controller and brokers (DescribeCluster; Java's `describeCluster`).
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let req = DescribeClusterRequest::default();
        let resp = self
            .client
            .with_retries("DescribeCluster", || async { self.any().await?.send(&req).await })
            .await?;
        check(resp.error_code, resp.error_message.as_ref(), || "cluster".into())?;
        let brokers = resp
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                node_id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
            })
            .collect();
        Ok(ClusterDescription {
            cluster_id: resp.cluster_id.to_string(),
            controller: (resp.controller_id.0 >= 0).then_some(resp.controller_id.0),
            brokers,
        })
    }

    /// ListOffsets for partitions of one topic (all partitions when `partitions` is empty),
    /// one request per partition leader.
    pub async fn list_offsets(&self, topic: &str, partitions: &[i32], spec: OffsetSpec) -> Result<Vec<ListedOffset>> {
        self.list_offsets_isolated(topic, partitions, spec, false).await
    }

    /// [`Admin::list_offsets`] with an isolation level: under `read_committed` the latest
    /// offset is the last stable offset (the start of the first open transaction).
    pub async fn list_offsets_isolated(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
        read_committed: bool,
    ) -> Result<Vec<ListedOffset>> {
        // A topic or partition that fresh metadata does not know fails at once, as in Java's
        // admin client; only leader movements are retried.
        let md = self.client.refresh_metadata(Some(&[topic])).await?;
        let info = md
            .topic(topic)
            .ok_or_else(|| Error::kafka(ErrorCode::UnknownTopicOrPartition).with_context(format!("topic {topic}")))?;
        if let Some(missing) = partitions
            .iter()
            .find(|p| !info.partitions.iter().any(|i| i.partition == **p))
        {
            return Err(Error::kafka(ErrorCode::UnknownTopicOrPartition)
                .with_context(format!("topic {topic} partition {missing}"))
                .with_partition(topic, *missing));
        }
        self.client
            .with_retries("ListOffsets", || async {
                let info = self.client.topic(topic).await?;
                let wanted: Vec<&PartitionInfo> = info
                    .partitions
                    .iter()
                    .filter(|p| partitions.is_empty() || partitions.contains(&p.partition))
                    .collect();
                let mut by_leader: BTreeMap<i32, Vec<&PartitionInfo>> = BTreeMap::new();
                for p in wanted {
                    by_leader.entry(p.leader).or_default().push(p);
                }
                let mut out = Vec::new();
                for (leader, parts) in by_leader {
                    if leader < 0 {
                        self.client.invalidate_topic(topic);
                        return Err(Error::kafka(ErrorCode::LeaderNotAvailable).with_context(format!("topic {topic}")));
                    }
                    let req = ListOffsetsRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_isolation_level(i8::from(read_committed))
                        .with_topics(vec![ListOffsetsTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(p.partition)
                                            .with_current_leader_epoch(p.leader_epoch)
                                            .with_timestamp(spec.wire())
                                    })
                                    .collect(),
                            )]);
                    let resp = self.client.broker(leader).await?.send(&req).await?;
                    for t in resp.topics {
                        for p in t.partitions {
                            if let Err(e) = check(p.error_code, None, || {
                                format!("topic {topic} partition {}", p.partition_index)
                            }) {
                                if e.is_retriable() {
                                    self.client.invalidate_topic(topic);
                                }
                                return Err(e);
                            }
                            out.push(ListedOffset {
                                partition: p.partition_index,
                                offset: p.offset,
                                timestamp: p.timestamp,
                                leader_epoch: p.leader_epoch,
                            });
                        }
                    }
                }
                out.sort_by_key(|o| o.partition);
                Ok(out)
            })
            .await
    }

    /// Earliest and latest offset of every partition of `topic`.
    pub async fn partition_offsets(&self, topic: &str) -> Result<Vec<PartitionOffsets>> {
        let earliest = self.list_offsets(topic, &[], OffsetSpec::Earliest).await?;
        let latest = self.list_offsets(topic, &[], OffsetSpec::Latest).await?;
        Ok(earliest
            .iter()
            .zip(&latest)
            .map(|(e, l)| PartitionOffsets {
                partition: e.partition,
                earliest: e.offset,
                latest: l.offset,
            })
            .collect())
    }

    /// Deletes the records of `topic` before the given offsets (Java's `deleteRecords` with
    /// `RecordsToDelete.beforeOffset`): `(partition, offset)` pairs, where an offset of -1
    /// means the high watermark (everything). One DeleteRecords request per partition
    /// leader; leader moves are retried. Returns each partition's new log start offset.
    ///
    /// An offset past the high watermark is an `OFFSET_OUT_OF_RANGE` broker error, and a
    /// topic or partition the cluster does not have is `UNKNOWN_TOPIC_OR_PARTITION`; both
    /// name the partition.
    pub async fn delete_records(&self, topic: &str, before: &[(i32, i64)]) -> Result<Vec<DeletedRecords>> {
        let md = self.client.refresh_metadata(Some(&[topic])).await?;
        let info = md
            .topic(topic)
            .ok_or_else(|| Error::kafka(ErrorCode::UnknownTopicOrPartition).with_context(format!("topic {topic}")))?;
        if let Some((missing, _)) = before
            .iter()
            .find(|(p, _)| !info.partitions.iter().any(|i| i.partition == *p))
        {
            return Err(Error::kafka(ErrorCode::UnknownTopicOrPartition)
                .with_context(format!("topic {topic} partition {missing}"))
                .with_partition(topic, *missing));
        }
        let timeout = i32::try_from(self.client.config().request_timeout.as_millis()).unwrap_or(i32::MAX);
        self.client
            .with_retries("DeleteRecords", || async {
                let info = self.client.topic(topic).await?;
                let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
                for &(partition, offset) in before {
                    let leader = info
                        .partitions
                        .iter()
                        .find(|i| i.partition == partition)
                        .map_or(-1, |i| i.leader);
                    by_leader.entry(leader).or_default().push((partition, offset));
                }
                let mut out = Vec::new();
                for (leader, parts) in by_leader {
                    if leader < 0 {
                        self.client.invalidate_topic(topic);
                        return Err(Error::kafka(ErrorCode::LeaderNotAvailable).with_context(format!("topic {topic}")));
                    }
                    let req = DeleteRecordsRequest::default()
                        .with_timeout_ms(timeout)
                        .with_topics(vec![DeleteRecordsTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|&(p, offset)| {
                                        DeleteRecordsPartition::default()
                                            .with_partition_index(p)
                                            .with_offset(offset)
                                    })
                                    .collect(),
                            )]);
                    let resp = self.client.broker(leader).await?.send(&req).await?;
                    for t in resp.topics {
                        for p in t.partitions {
                            if let Err(e) = check(p.error_code, None, || {
                                format!("deleting records of topic {topic} partition {}", p.partition_index)
                            }) {
                                if e.is_retriable() {
                                    self.client.invalidate_topic(topic);
                                }
                                return Err(e.with_partition(topic, p.partition_index));
                            }
                            out.push(DeletedRecords {
                                partition: p.partition_index,
                                low_watermark: p.low_watermark,
                            });
                        }
                    }
                }
                out.sort_by_key(|d| d.partition);
                Ok(out)
            })
            .await
    }

    /// A connection to the coordinator of a consumer group or a transactional id.
    pub async fn coordinator(&self, key: &str, kind: CoordinatorType) -> Result<Connection> {
        let key_type = kind.wire();
        self.client
            .with_retries("FindCoordinator", || async {
                let node = self.find_coordinator(key, key_type).await?;
                self.client.broker(node).await
            })
            .await
    }

    /// The coordinator of a group on its own connection (see
    /// [`Client::coordinator_connection`]), retried like [`Admin::coordinator`].
    pub(crate) async fn group_coordinator(&self, group: &str) -> Result<Connection> {
        self.client
            .with_retries("FindCoordinator", || async {
                let node = self.find_coordinator(group, CoordinatorType::Group.wire()).await?;
                self.client.coordinator_connection(node).await
            })
            .await
    }

    /// The node id of the coordinator of a group (`key_type` 0) or transactional id (1);
    /// one FindCoordinator, not retried.
    pub(crate) async fn find_coordinator(&self, key: &str, key_type: i8) -> Result<i32> {
        let conn = self.any().await?;
        let v = conn.versions().version(ApiKey::FindCoordinator)?;
        let req = FindCoordinatorRequest::default().with_key_type(key_type);
        // v4 batches keys in `coordinator_keys`.
        let req = if v >= 4 {
            req.with_coordinator_keys(vec![s(key)])
        } else {
            req.with_key(s(key))
        };
        let resp = conn.send(&req).await?;
        let (code, msg, node) = match resp.coordinators.first() {
            Some(c) if v >= 4 => (c.error_code, c.error_message.clone(), c.node_id.0),
            _ => (resp.error_code, resp.error_message.clone(), resp.node_id.0),
        };
        check(code, msg.as_ref(), || format!("coordinator of {key}"))?;
        Ok(node)
    }

    pub(crate) fn timeout_ms(&self) -> i32 {
        i32::try_from(self.client.config().request_timeout.as_millis()).unwrap_or(i32::MAX)
    }
}
