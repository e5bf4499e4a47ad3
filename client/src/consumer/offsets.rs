//! Committed offsets: OffsetCommit with generation/member fencing and OffsetFetch with
//! `require_stable` (KIP-447: offsets a pending transaction will commit are waited for).

use std::collections::BTreeMap;
use tokio::time::Instant;

use strom_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use strom_protocol::messages::{GroupId, OffsetCommitRequest, TopicName};
use strom_protocol::ErrorCode;
use tracing::debug;

use super::member::{CommitIdentity, Member};
use super::record::OffsetAndMetadata;
use super::state::SharedCounters;
use crate::admin::s;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::topic_partition::TopicPartition;

fn by_topic<T>(items: impl IntoIterator<Item = (TopicPartition, T)>) -> BTreeMap<std::sync::Arc<str>, Vec<(i32, T)>> {
    let mut out: BTreeMap<std::sync::Arc<str>, Vec<(i32, T)>> = BTreeMap::new();
    for (tp, v) in items {
        out.entry(tp.topic).or_default().push((tp.partition, v));
    }
    out
}

/// Commits `offsets` for `group`; retriable errors (coordinator moved or loading) are
/// retried until `default.api.timeout.ms`, fencing errors (the group rebalanced, the member
/// is unknown or fenced) are returned at once.
///
/// `member` is the committing group member, read at each attempt. A KIP-848 member's epoch
/// moves on without a rebalance of its partitions (a revocation acknowledged, another
/// member joining), so a commit can race its own heartbeat and be refused with
/// STALE_MEMBER_EPOCH; it is sent again under the new epoch when the member still owns every
/// partition it commits (as Java's CommitRequestManager retries with the latest epoch). A
/// partition the member lost is never committed under a later epoch.
pub(crate) async fn commit(
    client: &Client,
    group: &str,
    member: Member<'_>,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
) -> Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let topics: Vec<OffsetCommitRequestTopic> = by_topic(offsets.iter().map(|(tp, o)| (tp.clone(), o.clone())))
        .into_iter()
        .map(|(topic, parts)| {
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(&topic)))
                .with_partitions(
                    parts
                        .into_iter()
                        .map(|(p, o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o.offset)
                                .with_committed_leader_epoch(o.leader_epoch.unwrap_or(-1))
                                .with_committed_metadata(Some(s(&o.metadata)))
                        })
                        .collect(),
                )
        })
        .collect();
    let started = Instant::now();
    let cfg = client.config();
    let deadline = started + cfg.default_api_timeout;
    client
        .with_retries("OffsetCommit", || async {
            let conn = crate::lookup::group_coordinator(client, group).await?;
            let mut who = member.identity();
            loop {
                let req = OffsetCommitRequest::default()
                    .with_group_id(GroupId(s(group)))
                    .with_generation_id_or_member_epoch(who.generation_or_epoch)
                    .with_member_id(s(&who.member_id))
                    .with_group_instance_id(who.group_instance_id.as_deref().map(s))
                    .with_retention_time_ms(-1)
                    .with_topics(topics.clone());
                let resp = conn.send(&req).await?;
                let Some((topic, partition, code)) = first_error(&resp) else {
                    return Ok(());
                };
                if code == ErrorCode::StaleMemberEpoch {
                    if let Some(next) = member.next_epoch(&who, offsets, deadline, cfg.retry_backoff).await {
                        debug!(
                            group,
                            from = who.generation_or_epoch,
                            to = next.generation_or_epoch,
                            "commit retried under the member's new epoch"
                        );
                        who = next;
                        continue;
                    }
                }
                return Err(commit_error(group, &who, topic, partition, code));
            }
        })
        .await?;
    debug!(
        group,
        partitions = offsets.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "offsets committed"
    );
    Ok(())
}

fn first_error(resp: &strom_protocol::messages::OffsetCommitResponse) -> Option<(&str, i32, ErrorCode)> {
    resp.topics.iter().find_map(|t| {
        t.partitions.iter().find_map(|p| {
            let code = ErrorCode::from(p.error_code);
            (!code.is_ok()).then_some((t.name.0.as_str(), p.partition_index, code))
        })
    })
}

fn commit_error(group: &str, who: &CommitIdentity, topic: &str, partition: i32, code: ErrorCode) -> Error {
    let standalone = who.generation_or_epoch < 0 && who.member_id.is_empty();
    Error::kafka(code).with_context(format!(
        "committing offsets of group {group} ({topic}-{partition}){}",
        match code {
            // The coordinator takes a commit without member id and generation only while
            // the group is empty (ClassicGroup/ConsumerGroup .validateOffsetCommit); nothing
            // rebalanced.
            ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration if standalone => {
                ": the group has active members, and a consumer outside the group (assign(), no \
                 subscription) cannot commit for it; stop the group's members first, or commit \
                 under a group.id no member uses"
            }
            ErrorCode::IllegalGeneration
            | ErrorCode::UnknownMemberId
            | ErrorCode::RebalanceInProgress
            | ErrorCode::StaleMemberEpoch
            | ErrorCode::FencedInstanceId => {
                ": the group rebalanced and the partition may now belong to another member"
            }
            _ => "",
        }
    ))
}

pub(super) async fn do_commit(
    client: &Client,
    group: &str,
    who: Member<'_>,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    counters: &SharedCounters,
) -> Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let started = Instant::now();
    match super::offsets::commit(client, group, who, offsets).await {
        Ok(()) => {
            counters.commits_succeeded.fetch_add(1, Relaxed);
            counters.coordinator.commit.add(1);
            counters.coordinator.commit_latency.record_duration(started.elapsed());
            if let Ok(mut m) = counters.committed.lock() {
                for (tp, o) in offsets {
                    m.insert(tp.clone(), o.offset);
                }
            }
            Ok(())
        }
        Err(e) => {
            counters.commits_failed.fetch_add(1, Relaxed);
            Err(e)
        }
    }
}
