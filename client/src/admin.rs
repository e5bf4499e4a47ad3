//! Cluster administration: topics, partitions, configs, offsets, consumer groups, cluster.
//!
//! Each call finds the right broker (controller-routed APIs go to any broker in KRaft,
//! which forwards them; group APIs go to the group coordinator; ListOffsets to each
//! partition's leader), retries retriable errors until `default.api.timeout.ms`, and turns
//! per-resource error codes into errors naming the resource.

use std::collections::BTreeMap;

use strom_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use strom_protocol::messages::{DeleteRecordsRequest, DescribeClusterRequest};
use strom_protocol::ErrorCode;

use crate::client::{BrokerInfo, Client};
use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::{check, Error, Result};
use crate::lookup;
pub use crate::lookup::{CoordinatorType, ListedOffset, OffsetSpec};

pub(crate) use crate::wire::{s, topic_name};

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
    ///
    /// Cancellation-safe: dropping the call drops the connections made so far.
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
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
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
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn list_offsets(&self, topic: &str, partitions: &[i32], spec: OffsetSpec) -> Result<Vec<ListedOffset>> {
        self.list_offsets_isolated(topic, partitions, spec, false).await
    }

    /// [`Admin::list_offsets`] with an isolation level: under `read_committed` the latest
    /// offset is the last stable offset (the start of the first open transaction).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn list_offsets_isolated(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
        read_committed: bool,
    ) -> Result<Vec<ListedOffset>> {
        lookup::list_offsets(&self.client, topic, partitions, spec, read_committed).await
    }

    /// Earliest and latest offset of every partition of `topic`.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
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
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
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
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn coordinator(&self, key: &str, kind: CoordinatorType) -> Result<Connection> {
        lookup::coordinator(&self.client, key, kind).await
    }

    pub(crate) fn timeout_ms(&self) -> i32 {
        i32::try_from(self.client.config().request_timeout.as_millis()).unwrap_or(i32::MAX)
    }
}
