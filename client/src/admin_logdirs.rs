//! Admin for a broker's log directories (JBOD): what each directory holds and has free
//! (Java's `Admin.describeLogDirs` / `describeReplicaLogDirs`), and moving a replica to
//! another directory of its broker (`alterReplicaLogDirs`). Both requests go to the broker
//! whose directories they are about, never to any broker.

use std::collections::BTreeMap;

use strom_protocol::messages::alter_replica_log_dirs_request::{AlterReplicaLogDir, AlterReplicaLogDirTopic};
use strom_protocol::messages::{AlterReplicaLogDirsRequest, DescribeLogDirsRequest};
use strom_protocol::ErrorCode;

use crate::admin::{s, topic_name, Admin};
use crate::error::check;
use crate::error::{Error, Result};

/// One log directory of a broker (Java's `LogDirDescription`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LogDirDescription {
    /// The directory's path on the broker.
    pub path: String,
    /// `NONE` for a healthy directory; KAFKA_STORAGE_ERROR for one that is offline (its
    /// disk failed), when nothing else is reported of it.
    pub error: ErrorCode,
    /// The volume's size in bytes, when the broker says (DescribeLogDirs v4+, Kafka 3.3+).
    pub total_bytes: Option<i64>,
    /// The bytes still free on the volume, when the broker says.
    pub usable_bytes: Option<i64>,
    /// The replicas in the directory, by topic and partition.
    pub replicas: BTreeMap<(String, i32), ReplicaInfo>,
}

/// A replica in a log directory (Java's `ReplicaInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicaInfo {
    /// Its size on disk, in bytes.
    pub size: i64,
    /// How far it is behind the partition's high watermark (or, for a future replica, the
    /// current one's end).
    pub offset_lag: i64,
    /// A future replica: the copy being made while the replica moves to this directory.
    pub is_future: bool,
}

/// A replica of a partition on one broker (Java's `TopicPartitionReplica`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TopicPartitionReplica {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// The broker holding the replica.
    pub broker_id: i32,
}

impl TopicPartitionReplica {
    /// The replica of `topic`-`partition` on broker `broker_id`.
    pub fn new(topic: impl Into<String>, partition: i32, broker_id: i32) -> Self {
        TopicPartitionReplica {
            topic: topic.into(),
            partition,
            broker_id,
        }
    }
}

impl std::fmt::Display for TopicPartitionReplica {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{} on broker {}", self.topic, self.partition, self.broker_id)
    }
}

impl Admin {
    /// The log directories of each broker in `brokers` (empty: every broker of the
    /// cluster), by broker id, each asked of that broker. A broker that fails (down,
    /// CLUSTER_AUTHORIZATION_FAILED) fails the call, naming it.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn describe_log_dirs(&self, brokers: &[i32]) -> Result<BTreeMap<i32, Vec<LogDirDescription>>> {
        let ids: Vec<i32> = if brokers.is_empty() {
            self.describe_cluster()
                .await?
                .brokers
                .iter()
                .map(|b| b.node_id)
                .collect()
        } else {
            brokers.to_vec()
        };
        // topics: None = every replica in every directory.
        let req = DescribeLogDirsRequest::default().with_topics(None);
        let mut out = BTreeMap::new();
        for id in ids {
            let resp = self
                .client()
                .with_retries("DescribeLogDirs", || async {
                    self.client().broker(id).await?.send(&req).await
                })
                .await
                .map_err(|e| e.with_context(format!("broker {id}")))?;
            // v3+: a request-level error (CLUSTER_AUTHORIZATION_FAILED).
            check(resp.error_code, None, || format!("the log dirs of broker {id}"))?;
            let dirs = resp
                .results
                .into_iter()
                .map(|d| {
                    let mut replicas = BTreeMap::new();
                    for t in d.topics {
                        for p in t.partitions {
                            replicas.insert(
                                (t.name.0.to_string(), p.partition_index),
                                ReplicaInfo {
                                    size: p.partition_size,
                                    offset_lag: p.offset_lag,
                                    is_future: p.is_future_key,
                                },
                            );
                        }
                    }
                    LogDirDescription {
                        path: d.log_dir.to_string(),
                        error: ErrorCode::from(d.error_code),
                        total_bytes: (d.total_bytes >= 0).then_some(d.total_bytes),
                        usable_bytes: (d.usable_bytes >= 0).then_some(d.usable_bytes),
                        replicas,
                    }
                })
                .collect();
            out.insert(id, dirs);
        }
        Ok(out)
    }

    /// Moves replicas to another log directory of their broker (Java's
    /// `alterReplicaLogDirs`): each is asked of the broker holding it, which copies the
    /// replica into a future replica in the new directory and swaps them when it has
    /// caught up ([`describe_log_dirs`](Self::describe_log_dirs) shows the copy with
    /// `is_future` meanwhile). Returns each replica's outcome: LOG_DIR_NOT_FOUND for a
    /// path the broker does not have, KAFKA_STORAGE_ERROR for an offline directory,
    /// REPLICA_NOT_AVAILABLE for a replica the broker does not hold (see
    /// [`Error::kafka_code`]). A broker that cannot be reached fails the call.
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn alter_replica_log_dirs(
        &self,
        moves: &BTreeMap<TopicPartitionReplica, String>,
    ) -> Result<BTreeMap<TopicPartitionReplica, Result<()>>> {
        // broker -> path -> topic -> partitions
        let mut by_broker: BTreeMap<i32, BTreeMap<&str, BTreeMap<&str, Vec<i32>>>> = BTreeMap::new();
        for (r, path) in moves {
            if path.trim().is_empty() {
                return Err(Error::config(format!("{r}: the log dir path is empty")));
            }
            by_broker
                .entry(r.broker_id)
                .or_default()
                .entry(path.as_str())
                .or_default()
                .entry(r.topic.as_str())
                .or_default()
                .push(r.partition);
        }
        let mut out = BTreeMap::new();
        for (id, dirs) in by_broker {
            let req = AlterReplicaLogDirsRequest::default().with_dirs(
                dirs.iter()
                    .map(|(path, topics)| {
                        AlterReplicaLogDir::default().with_path(s(path)).with_topics(
                            topics
                                .iter()
                                .map(|(t, ps)| {
                                    AlterReplicaLogDirTopic::default()
                                        .with_name(topic_name(t))
                                        .with_partitions(ps.clone())
                                })
                                .collect(),
                        )
                    })
                    .collect(),
            );
            let resp = self
                .client()
                .with_retries("AlterReplicaLogDirs", || async {
                    self.client().broker(id).await?.send(&req).await
                })
                .await
                .map_err(|e| e.with_context(format!("broker {id}")))?;
            for t in resp.results {
                for p in t.partitions {
                    let replica = TopicPartitionReplica::new(t.topic_name.0.as_str(), p.partition_index, id);
                    let path = moves.get(&replica).map_or("", String::as_str);
                    let r = check(p.error_code, None, || format!("{replica} to {path}"));
                    out.insert(replica, r);
                }
            }
            // A replica the broker did not answer for is an error of its own, not a success.
            for (r, path) in moves.iter().filter(|(r, _)| r.broker_id == id) {
                out.entry(r.clone()).or_insert_with(|| {
                    Err(Error::protocol(format!(
                        "broker {id} did not answer for moving {r} to {path}"
                    )))
                });
            }
        }
        Ok(out)
    }
}
