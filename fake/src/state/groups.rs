//! The group coordinator: KIP-848 heartbeats, classic Join/Sync/Heartbeat/Leave, offsets
//! (OffsetCommit/OffsetFetch) and group listings.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use strom_protocol::ErrorCode;
use uuid::Uuid;

use crate::consumer_group::Beat;
use crate::group::{Committed, Group, JoinArgs};

use super::{injected, s, State, TopicPartitions};

impl State {
    // ---------------------------------------------------------------- KIP-848 groups

    pub(crate) fn consumer_group_heartbeat(
        &mut self,
        node: i32,
        req: &ConsumerGroupHeartbeatRequest,
        client_id: &str,
        now: Instant,
    ) -> ConsumerGroupHeartbeatResponse {
        let fail = |code: ErrorCode, msg: Option<&str>| {
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code.code())
                .with_error_message(msg.map(s))
                .with_member_id(Some(req.member_id.clone()))
                .with_member_epoch(req.member_epoch)
        };
        let gid = req.group_id.0.to_string();
        if gid.is_empty() {
            return fail(ErrorCode::InvalidRequest, Some("the group id is empty"));
        }
        if let Err(e) = self.check_coordinator(node, &gid) {
            return fail(e, None);
        }
        // RE2J in Kafka; Rust's regex crate has the same syntax for what topic names need.
        // A topic matches when the whole name does, as with Java's Matcher.matches().
        let regex = match req.subscribed_topic_regex.as_ref().map(|r| r.as_str()) {
            None => None,
            Some("") => Some(None),
            Some(re) => match regex::Regex::new(&format!("^(?:{re})$")) {
                Ok(compiled) => Some(Some(compiled)),
                Err(e) => {
                    return fail(
                        ErrorCode::InvalidRegularExpression,
                        Some(&format!("Invalid regular expression {re}: {e}")),
                    )
                }
            },
        };
        if self.groups.get(&gid).is_some_and(|g| !g.members.is_empty()) {
            return fail(
                ErrorCode::GroupIdNotFound,
                Some(&format!(
                    "Group {gid} is not a consumer group (it is a classic group with members)."
                )),
            );
        }
        let topics: BTreeMap<String, (Uuid, i32)> = self
            .topics
            .iter()
            .map(|(n, t)| (n.clone(), (t.id, t.partitions.len() as i32)))
            .collect();
        let owned = req.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
                .collect()
        });
        let subscribed = req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.0.to_string()).collect());
        let session = self.settings.group_session_timeout;
        let interval = self.settings.group_heartbeat_interval;
        // A group id with committed offsets but no classic member may become a KIP-848 group.
        self.groups.entry(gid.clone()).or_insert_with(Group::new);
        let cg = self.consumer_groups.entry(gid).or_default();
        let beat = Beat {
            member_id: req.member_id.as_str(),
            client_id,
            rack: req.rack_id.as_ref().map(|r| r.as_str()),
            member_epoch: req.member_epoch,
            instance_id: req.instance_id.as_ref().map(|i| i.as_str()),
            subscribed,
            regex,
            owned,
        };
        match cg.heartbeat(beat, &topics, session, now) {
            Err(code) => fail(code, None),
            Ok(a) => {
                let assignment = a.assignment.map(|parts| {
                    let mut by: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
                    for (id, p) in parts {
                        by.entry(id).or_default().push(p);
                    }
                    consumer_group_heartbeat_response::Assignment::default().with_topic_partitions(
                        by.into_iter()
                            .map(|(id, ps)| {
                                consumer_group_heartbeat_response::TopicPartitions::default()
                                    .with_topic_id(id)
                                    .with_partitions(ps)
                            })
                            .collect(),
                    )
                });
                ConsumerGroupHeartbeatResponse::default()
                    .with_member_id(Some(s(&a.member_id)))
                    .with_member_epoch(a.member_epoch)
                    .with_heartbeat_interval_ms(i32::try_from(interval.as_millis()).unwrap_or(i32::MAX))
                    .with_assignment(assignment)
            }
        }
    }

    /// ConsumerGroupDescribe (KIP-848), at the group's coordinator: a classic group, or one
    /// the coordinator does not know, is GROUP_ID_NOT_FOUND (the admin client then asks
    /// DescribeGroups, as Java's does).
    pub(crate) fn consumer_group_describe(
        &self,
        node: i32,
        req: &ConsumerGroupDescribeRequest,
    ) -> ConsumerGroupDescribeResponse {
        use consumer_group_describe_response::{Assignment, DescribedGroup, Member, TopicPartitions};
        let assignment = |parts: &std::collections::BTreeSet<(Uuid, i32)>| {
            let mut by: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
            for (id, p) in parts {
                by.entry(*id).or_default().push(*p);
            }
            Assignment::default().with_topic_partitions(
                by.into_iter()
                    .map(|(id, ps)| {
                        TopicPartitions::default()
                            .with_topic_id(id)
                            .with_topic_name(TopicName(s(&self.name_of(id).unwrap_or_default())))
                            .with_partitions(ps)
                    })
                    .collect(),
            )
        };
        let groups = req
            .group_ids
            .iter()
            .map(|gid| {
                let g = gid.0.as_str();
                let out = DescribedGroup::default().with_group_id(gid.clone());
                let fail = |code: ErrorCode, msg: String| {
                    out.clone()
                        .with_error_code(code.code())
                        .with_error_message(Some(s(&msg)))
                };
                if let Err(e) = self.check_coordinator(node, g) {
                    return fail(e, format!("this broker is not the coordinator of group {g}"));
                }
                let classic = self.groups.get(g).is_some_and(|c| !c.members.is_empty());
                let Some(cg) = self.consumer_groups.get(g).filter(|_| !classic) else {
                    let why = if classic {
                        format!("Group {g} is not a consumer group.")
                    } else {
                        format!("Group {g} not found.")
                    };
                    return fail(ErrorCode::GroupIdNotFound, why);
                };
                let d = cg.describe();
                out.with_group_state(s(d.state))
                    .with_group_epoch(d.epoch)
                    .with_assignment_epoch(d.assignment_epoch)
                    .with_assignor_name(s("uniform"))
                    .with_authorized_operations(i32::MIN)
                    .with_members(
                        d.members
                            .iter()
                            .map(|m| {
                                Member::default()
                                    .with_member_id(s(&m.member_id))
                                    .with_instance_id(m.instance_id.as_deref().map(s))
                                    .with_rack_id(m.rack.as_deref().map(s))
                                    .with_member_epoch(m.epoch)
                                    .with_client_id(s(&m.client_id))
                                    .with_client_host(s("/127.0.0.1"))
                                    .with_subscribed_topic_names(m.subscribed.iter().map(|t| TopicName(s(t))).collect())
                                    .with_subscribed_topic_regex(m.regex.as_deref().map(s))
                                    .with_assignment(assignment(&m.assigned))
                                    .with_target_assignment(assignment(&m.target))
                                    // 1: a member of the consumer protocol (v1, KIP-1099).
                                    .with_member_type(1)
                            })
                            .collect(),
                    )
            })
            .collect();
        ConsumerGroupDescribeResponse::default().with_groups(groups)
    }

    // ---------------------------------------------------------------- Groups

    pub(crate) fn join_group(
        &mut self,
        node: i32,
        req: &JoinGroupRequest,
        version: i16,
        client_id: &str,
        now: Instant,
    ) -> Result<Option<crate::group::Joined>, ErrorCode> {
        let gid = req.group_id.0.to_string();
        self.check_coordinator(node, &gid)?;
        if self.consumer_groups.get(&gid).is_some_and(|cg| !cg.members.is_empty()) {
            // A KIP-848 group with members: a classic member cannot join it here.
            return Err(ErrorCode::InconsistentGroupProtocol);
        }
        let g = self.groups.entry(gid).or_insert_with(Group::new);
        g.join(
            JoinArgs {
                member_id: req.member_id.as_str(),
                instance_id: req.group_instance_id.as_ref().map(|s| s.as_str()),
                client_id,
                protocol_type: req.protocol_type.as_str(),
                protocols: req
                    .protocols
                    .iter()
                    .map(|p| (p.name.to_string(), p.metadata.clone()))
                    .collect(),
                session_timeout: Duration::from_millis(req.session_timeout_ms.max(0).unsigned_abs().into()),
                rebalance_timeout: Duration::from_millis(
                    (if version >= 1 {
                        req.rebalance_timeout_ms
                    } else {
                        req.session_timeout_ms
                    })
                    .max(0)
                    .unsigned_abs()
                    .into(),
                ),
                require_known_member_id: version >= 4,
            },
            now,
        )
    }

    pub(crate) fn group(&mut self, id: &str) -> Option<&mut Group> {
        self.groups.get_mut(id)
    }

    pub(crate) fn group_for(&mut self, node: i32, id: &str) -> Result<&mut Group, ErrorCode> {
        self.check_coordinator(node, id)?;
        Ok(self.groups.entry(id.to_owned()).or_insert_with(Group::new))
    }

    pub(crate) fn offset_commit(
        &mut self,
        node: i32,
        req: &OffsetCommitRequest,
        inject: Option<&(ErrorCode, Option<(String, i32)>)>,
        now: Instant,
    ) -> OffsetCommitResponse {
        let gid = req.group_id.0.to_string();
        let member = req.member_id.as_str();
        let kip848 = self
            .consumer_groups
            .get(&gid)
            .filter(|cg| cg.members.contains_key(member));
        let top = match (
            kip848.map(|cg| cg.may_commit(member, req.generation_id_or_member_epoch)),
            self.group_for(node, &gid),
        ) {
            (_, Err(e)) => e,
            (Some(code), Ok(_)) => code,
            (None, Ok(g)) => g.may_commit(member, req.generation_id_or_member_epoch, false, now),
        };
        let known: Vec<(String, usize)> = self
            .topics
            .iter()
            .map(|(n, t)| (n.clone(), t.partitions.len()))
            .collect();
        let mut topics = Vec::new();
        for t in &req.topics {
            let name = t.name.0.to_string();
            let count = known.iter().find(|(n, _)| *n == name).map(|(_, c)| *c);
            let mut parts = Vec::new();
            for p in &t.partitions {
                let code = if let Some(code) = injected(inject, &name, p.partition_index) {
                    code
                } else if !top.is_ok() {
                    top
                } else if count.is_none_or(|c| usize::try_from(p.partition_index).map_or(true, |i| i >= c)) {
                    ErrorCode::UnknownTopicOrPartition
                } else {
                    if let Some(g) = self.groups.get_mut(&gid) {
                        g.offsets.insert(
                            (name.clone(), p.partition_index),
                            crate::group::Committed {
                                offset: p.committed_offset,
                                leader_epoch: p.committed_leader_epoch,
                                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                            },
                        );
                    }
                    ErrorCode::None
                };
                parts.push(
                    offset_commit_response::OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code.code()),
                );
            }
            topics.push(
                offset_commit_response::OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(parts),
            );
        }
        OffsetCommitResponse::default().with_topics(topics)
    }

    pub(crate) fn offset_fetch(
        &mut self,
        node: i32,
        req: &OffsetFetchRequest,
        version: i16,
        inject: Option<ErrorCode>,
    ) -> OffsetFetchResponse {
        // (group, topics or all)
        let asks: Vec<(String, Option<TopicPartitions>)> = if version >= 8 {
            req.groups
                .iter()
                .map(|g| {
                    let topics = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                            .collect()
                    });
                    (g.group_id.0.to_string(), topics)
                })
                .collect()
        } else {
            let topics = req.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            vec![(req.group_id.0.to_string(), topics)]
        };
        let mut groups_out = Vec::new();
        for (gid, topics) in asks {
            let code = inject.map_or_else(|| self.check_coordinator(node, &gid).err(), Some);
            let offsets = self.groups.get(&gid).map(|g| g.offsets.clone()).unwrap_or_default();
            let wanted: Vec<(String, Vec<i32>)> = match topics {
                Some(t) => t,
                None => {
                    let mut by: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for (t, p) in offsets.keys() {
                        by.entry(t.clone()).or_default().push(*p);
                    }
                    by.into_iter().collect()
                }
            };
            // require_stable (KIP-447): offsets a transaction holds are not given out yet.
            let unstable: std::collections::BTreeSet<(String, i32)> = wanted
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .filter(|(t, p)| req.require_stable && self.pending_txn_offset(&gid, t, *p))
                .collect();
            groups_out.push((gid, code, wanted, offsets, unstable));
        }
        // Each group's answer once: (group, error, [(topic, [(partition, code, committed)])]).
        type Rows = Vec<(String, Vec<(i32, ErrorCode, Option<Committed>)>)>;
        let answers: Vec<(String, Option<ErrorCode>, Rows)> = groups_out
            .into_iter()
            .map(|(gid, code, wanted, offsets, unstable)| {
                let rows = if code.is_some() {
                    Vec::new()
                } else {
                    wanted
                        .into_iter()
                        .map(|(t, ps)| {
                            let parts = ps
                                .into_iter()
                                .map(|p| match unstable.contains(&(t.clone(), p)) {
                                    true => (p, ErrorCode::UnstableOffsetCommit, None),
                                    false => (p, ErrorCode::None, offsets.get(&(t.clone(), p)).cloned()),
                                })
                                .collect();
                            (t, parts)
                        })
                        .collect()
                };
                (gid, code, rows)
            })
            .collect();
        let committed = |c: &Option<Committed>| {
            (
                c.as_ref().map_or(-1, |c| c.offset),
                c.as_ref().map_or(-1, |c| c.leader_epoch),
                c.as_ref().and_then(|c| c.metadata.as_deref()).map(s),
            )
        };
        if version >= 8 {
            let groups = answers
                .into_iter()
                .map(|(gid, code, rows)| {
                    let topics = rows
                        .into_iter()
                        .map(|(t, parts)| {
                            let parts = parts
                                .iter()
                                .map(|(p, e, c)| {
                                    let (offset, epoch, meta) = committed(c);
                                    offset_fetch_response::OffsetFetchResponsePartitions::default()
                                        .with_partition_index(*p)
                                        .with_error_code(e.code())
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(meta)
                                })
                                .collect();
                            offset_fetch_response::OffsetFetchResponseTopics::default()
                                .with_name(TopicName(s(&t)))
                                .with_partitions(parts)
                        })
                        .collect();
                    offset_fetch_response::OffsetFetchResponseGroup::default()
                        .with_group_id(GroupId(s(&gid)))
                        .with_error_code(code.map_or(0, ErrorCode::code))
                        .with_topics(topics)
                })
                .collect();
            OffsetFetchResponse::default().with_groups(groups)
        } else {
            let (_, code, rows) = answers.into_iter().next().unwrap_or_default();
            let topics = rows
                .into_iter()
                .map(|(t, parts)| {
                    let parts = parts
                        .iter()
                        .map(|(p, e, c)| {
                            let (offset, epoch, meta) = committed(c);
                            offset_fetch_response::OffsetFetchResponsePartition::default()
                                .with_partition_index(*p)
                                .with_error_code(e.code())
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(meta)
                        })
                        .collect();
                    offset_fetch_response::OffsetFetchResponseTopic::default()
                        .with_name(TopicName(s(&t)))
                        .with_partitions(parts)
                })
                .collect();
            OffsetFetchResponse::default()
                .with_error_code(code.map_or(0, ErrorCode::code))
                .with_topics(topics)
        }
    }

    pub(crate) fn list_groups(&self) -> ListGroupsResponse {
        ListGroupsResponse::default().with_groups(
            self.groups
                .iter()
                .map(
                    |(id, g)| match self.consumer_groups.get(id).filter(|cg| !cg.members.is_empty()) {
                        Some(_) => list_groups_response::ListedGroup::default()
                            .with_group_id(GroupId(s(id)))
                            .with_protocol_type(s("consumer"))
                            .with_group_state(s("Stable"))
                            .with_group_type(s("consumer")),
                        None => list_groups_response::ListedGroup::default()
                            .with_group_id(GroupId(s(id)))
                            .with_protocol_type(s(&g.protocol_type))
                            .with_group_state(s(g.state.name()))
                            .with_group_type(s("classic")),
                    },
                )
                .collect(),
        )
    }

    pub(crate) fn describe_groups(&self, node: i32, req: &DescribeGroupsRequest) -> DescribeGroupsResponse {
        DescribeGroupsResponse::default().with_groups(
            req.groups
                .iter()
                .map(|gid| {
                    let d = describe_groups_response::DescribedGroup::default().with_group_id(gid.clone());
                    if let Err(e) = self.check_coordinator(node, gid.0.as_str()) {
                        return d.with_error_code(e.code());
                    }
                    match self.groups.get(gid.0.as_str()) {
                        None => d.with_group_state(s("Dead")),
                        Some(g) => d
                            .with_group_state(s(g.state.name()))
                            .with_protocol_type(s(&g.protocol_type))
                            .with_protocol_data(s(g.protocol.as_deref().unwrap_or("")))
                            .with_members(
                                g.members
                                    .iter()
                                    .map(|(id, m)| {
                                        describe_groups_response::DescribedGroupMember::default()
                                            .with_member_id(s(id))
                                            .with_group_instance_id(m.instance_id.as_deref().map(s))
                                            .with_client_id(s(&m.client_id))
                                            .with_client_host(s("/127.0.0.1"))
                                            .with_member_metadata(m.metadata_for(g.protocol.as_deref()))
                                            .with_member_assignment(m.assignment.clone())
                                    })
                                    .collect(),
                            ),
                    }
                })
                .collect(),
        )
    }
}
