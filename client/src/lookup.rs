//! What every role asks the cluster to find out, one implementation each: the coordinator of
//! a group or transactional id (FindCoordinator), offsets by time or position (ListOffsets)
//! and a group's committed offsets (OffsetFetch). The producer, the consumer, the share
//! consumer and [`Admin`](crate::Admin) all use these (Admin's methods of the same names are
//! them, public), so a fix or a protocol version reaches every caller at once.

use std::collections::BTreeMap;

use strom_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use strom_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use strom_protocol::messages::{
    ApiKey, BrokerId, FindCoordinatorRequest, GroupId, ListOffsetsRequest, OffsetFetchRequest, TopicName,
};
use strom_protocol::ErrorCode;

use crate::client::Client;
use crate::connection::Connection;
use crate::consumer::OffsetAndMetadata;
use crate::error::{check, Error, Result};
use crate::metadata::PartitionInfo;
use crate::topic_partition::TopicPartition;
use crate::wire::{s, topic_name};

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

/// Whose coordinator [`Admin::coordinator`](crate::Admin::coordinator) finds (FindCoordinator's key type).
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

/// The node id of the coordinator of a group or transactional id;
/// one FindCoordinator, not retried.
pub(crate) async fn find_coordinator(client: &Client, key: &str, kind: CoordinatorType) -> Result<i32> {
    let conn = client.any_broker().await?;
    let v = conn.versions().version(ApiKey::FindCoordinator)?;
    let req = FindCoordinatorRequest::default().with_key_type(kind.wire());
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

/// A connection to the coordinator of a consumer group or a transactional id.
pub(crate) async fn coordinator(client: &Client, key: &str, kind: CoordinatorType) -> Result<Connection> {
    client
        .with_retries("FindCoordinator", || async {
            let node = find_coordinator(client, key, kind).await?;
            client.broker(node).await
        })
        .await
}

/// The coordinator of a group on its own connection (see
/// [`Client::coordinator_connection`]), retried like [`coordinator`].
pub(crate) async fn group_coordinator(client: &Client, group: &str) -> Result<Connection> {
    client
        .with_retries("FindCoordinator", || async {
            let node = find_coordinator(client, group, CoordinatorType::Group).await?;
            client.coordinator_connection(node).await
        })
        .await
}

/// ListOffsets for partitions of one topic (all when `partitions` is empty), one request per
/// leader, with an isolation level: under `read_committed` the latest
/// offset is the last stable offset (the start of the first open transaction).
pub(crate) async fn list_offsets(
    client: &Client,
    topic: &str,
    partitions: &[i32],
    spec: OffsetSpec,
    read_committed: bool,
) -> Result<Vec<ListedOffset>> {
    // A topic or partition that fresh metadata does not know fails at once, as in Java's
    // admin client; a retriable topic error in the metadata (LEADER_NOT_AVAILABLE while it
    // is being created or moved) and leader movements are retried.
    let budget = client.config().default_api_timeout;
    let info = client.topic_settled(topic, budget, "default.api.timeout.ms").await?;
    if let Some(missing) = partitions
        .iter()
        .find(|p| !info.partitions.iter().any(|i| i.partition == **p))
    {
        return Err(Error::kafka(ErrorCode::UnknownTopicOrPartition)
            .with_context(format!("topic {topic} partition {missing}"))
            .with_partition(topic, *missing));
    }
    client
        .with_retries("ListOffsets", || async {
            let info = client.topic(topic).await?;
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
                    client.invalidate_topic(topic);
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
                let resp = client.broker(leader).await?.send(&req).await?;
                for t in resp.topics {
                    for p in t.partitions {
                        if let Err(e) = check(p.error_code, None, || {
                            format!("topic {topic} partition {}", p.partition_index)
                        }) {
                            if e.is_retriable() {
                                client.invalidate_topic(topic);
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

/// Which committed offsets to fetch, and how.
#[derive(Debug, Clone, Copy)]
pub(crate) struct OffsetFetch<'a> {
    pub(crate) group: &'a str,
    /// The partitions; `None` for every partition the group has an offset for.
    pub(crate) partitions: Option<&'a [TopicPartition]>,
    /// A KIP-848 member's id and epoch: OffsetFetch v9 names the member, so a fenced member
    /// is told so.
    pub(crate) member: Option<(&'a str, i32)>,
    /// KIP-447: wait out offsets of pending transactions (UNSTABLE_OFFSET_COMMIT, retried)
    /// rather than answer with the last stable one. Java's consumer asks it; Java's Admin
    /// does not by default (`ListConsumerGroupOffsetsOptions.requireStable`). Brokers before
    /// OffsetFetch v7 do not know it.
    pub(crate) require_stable: bool,
}

/// The committed offsets `q` asks for (a partition without one is absent). Retried within
/// `default.api.timeout.ms` while the coordinator moves, loads or waits on a transaction.
pub(crate) async fn committed_offsets(
    client: &Client,
    q: OffsetFetch<'_>,
) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
    let group = q.group;
    let wanted: Option<Vec<(&str, Vec<i32>)>> = match q.partitions {
        Some([]) => return Ok(BTreeMap::new()),
        Some(partitions) => {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for tp in partitions {
                by_topic.entry(&tp.topic).or_default().push(tp.partition);
            }
            Some(by_topic.into_iter().collect())
        }
        None => None,
    };
    client
        .with_retries("OffsetFetch", || async {
            let conn = group_coordinator(client, group).await?;
            let v = conn.versions().version(ApiKey::OffsetFetch)?;
            let require_stable = q.require_stable && v >= 7;
            // v8 batches groups in `groups`; older versions have one group_id.
            let req = if v >= 8 {
                let mut g = OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s(group)))
                    .with_topics(wanted.as_ref().map(|w| {
                        w.iter()
                            .map(|(t, ps)| {
                                OffsetFetchRequestTopics::default()
                                    .with_name(TopicName(s(t)))
                                    .with_partition_indexes(ps.clone())
                            })
                            .collect()
                    }));
                if let Some((member_id, epoch)) = q.member.filter(|(m, _)| v >= 9 && !m.is_empty()) {
                    g = g.with_member_id(Some(s(member_id))).with_member_epoch(epoch);
                }
                OffsetFetchRequest::default()
                    .with_groups(vec![g])
                    .with_require_stable(require_stable)
            } else {
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(s(group)))
                    .with_require_stable(require_stable)
                    .with_topics(wanted.as_ref().map(|w| {
                        w.iter()
                            .map(|(t, ps)| {
                                OffsetFetchRequestTopic::default()
                                    .with_name(TopicName(s(t)))
                                    .with_partition_indexes(ps.clone())
                            })
                            .collect()
                    }))
            };
            let resp = conn.send(&req).await?;
            // Both layouts flattened to (group error, rows).
            type Row = (String, i32, i64, i32, Option<String>, i16);
            let row = |t: &str, p: i32, offset: i64, epoch: i32, metadata: Option<String>, code: i16| -> Row {
                (t.to_owned(), p, offset, epoch, metadata, code)
            };
            let (group_code, rows): (i16, Vec<Row>) = if v >= 8 {
                let mut code = 0;
                let mut rows = Vec::new();
                for g in resp.groups {
                    code = if code == 0 { g.error_code } else { code };
                    for t in g.topics {
                        for p in t.partitions {
                            let metadata = p.metadata.map(|m| m.to_string());
                            rows.push(row(
                                &t.name.0,
                                p.partition_index,
                                p.committed_offset,
                                p.committed_leader_epoch,
                                metadata,
                                p.error_code,
                            ));
                        }
                    }
                }
                (code, rows)
            } else {
                let mut rows = Vec::new();
                for t in resp.topics {
                    for p in t.partitions {
                        let metadata = p.metadata.map(|m| m.to_string());
                        rows.push(row(
                            &t.name.0,
                            p.partition_index,
                            p.committed_offset,
                            p.committed_leader_epoch,
                            metadata,
                            p.error_code,
                        ));
                    }
                }
                (resp.error_code, rows)
            };
            let gc = ErrorCode::from(group_code);
            if !gc.is_ok() {
                return Err(Error::kafka(gc).with_context(format!("fetching committed offsets of group {group}")));
            }
            let mut out = BTreeMap::new();
            for (topic, partition, offset, epoch, metadata, code) in rows {
                let code = ErrorCode::from(code);
                if !code.is_ok() {
                    return Err(Error::kafka(code).with_context(format!(
                        "fetching committed offset of group {group} for {topic}-{partition}"
                    )));
                }
                if offset >= 0 {
                    out.insert(
                        TopicPartition::new(&topic, partition),
                        OffsetAndMetadata {
                            offset,
                            leader_epoch: (epoch >= 0).then_some(epoch),
                            metadata: metadata.unwrap_or_default(),
                        },
                    );
                }
            }
            Ok(out)
        })
        .await
}
