//! The classic protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) on the shared core.
//!
//! A rebalance is a round: prepare (eager protocols revoke everything, cooperative ones only
//! what is no longer subscribed, and a member whose generation was reset loses what it owned:
//! Java's `ConsumerCoordinator.onJoinPrepare`), JoinGroup (held by the coordinator until the
//! group has joined), the leader computes the assignment from every member's subscription and
//! the topics' metadata, SyncGroup, and the assignment is reconciled: revoked partitions
//! first, then the new ones (KIP-429: a cooperative member that revoked joins again at once,
//! so the partitions can go to their new owners). Between rounds the member heartbeats every
//! `heartbeat.interval.ms`, also while the application applies a hand-over (Java's
//! heartbeat thread). Static members (KIP-345) never send LeaveGroup: their partitions wait
//! for them until `session.timeout.ms`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use strom_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use strom_protocol::messages::join_group_response::JoinGroupResponseMember;
use strom_protocol::messages::leave_group_request::MemberIdentity;
use strom_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use strom_protocol::messages::{
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest,
    SyncGroupRequest, SyncGroupResponse,
};
use strom_protocol::ErrorCode;
use tracing::{debug, info, warn};

use super::common::{Common, Op, Protocol};
use super::errors::{self, Reaction};
use super::io::{ms, Action, Note, Request, Response};
use crate::consumer::assignor::{self, Assignment, Assignor, MemberSubscription, RebalanceProtocol};
use crate::error::{Error, Result};
use crate::topic_partition::TopicPartition;
use crate::wire::s;

/// Where a JoinGroup/SyncGroup round is.
#[derive(Debug)]
enum Phase {
    /// No round under way.
    Idle,
    /// JoinGroup sent.
    Joining,
    /// Joined as the leader: the assignment is computed once the metadata of every
    /// subscribed topic is here.
    Assigning {
        generation: i32,
        protocol: String,
        members: Vec<MemberSubscription>,
        topics: Vec<String>,
    },
    /// Joined: SyncGroup to send.
    SyncDue {
        generation: i32,
        protocol: String,
        assignments: Vec<SyncGroupRequestAssignment>,
    },
    /// SyncGroup sent.
    Syncing { generation: i32 },
}

/// A classic group member.
#[derive(Debug)]
pub(crate) struct Classic {
    assignors: Vec<Box<dyn Assignor>>,
    /// KIP-429: every configured assignor supports cooperative rebalancing.
    cooperative: bool,
    member_id: String,
    /// The generation of the assignment the member holds, -1 when none.
    generation: i32,
    /// A JoinGroup/SyncGroup round is needed.
    need_join: bool,
    phase: Phase,
    /// As leader: the partition counts the last assignment was computed from (a change
    /// rebalances the group).
    leader_view: Option<BTreeMap<String, i32>>,
    next_heartbeat: Option<Instant>,
}

impl Classic {
    pub(crate) fn new(assignors: Vec<Box<dyn Assignor>>) -> Self {
        // Java: the rebalance protocol is the highest one every configured assignor supports.
        let cooperative = assignors
            .iter()
            .all(|a| a.supported_protocols().contains(&RebalanceProtocol::Cooperative));
        Classic {
            assignors,
            cooperative,
            member_id: String::new(),
            generation: -1,
            need_join: true,
            phase: Phase::Idle,
            leader_view: None,
            next_heartbeat: None,
        }
    }

    fn heartbeat_due(&self, now: Instant) -> bool {
        self.next_heartbeat.is_none_or(|t| now >= t)
    }

    /// How often metadata is checked: a pattern that matches nothing yet is looked at again
    /// within 5 s, anything else every `metadata.max.age.ms`.
    fn metadata_interval(&self, c: &Common) -> Duration {
        if c.is_pattern() && c.topics.is_empty() {
            c.cfg.metadata_max_age.min(Duration::from_secs(5))
        } else {
            c.cfg.metadata_max_age
        }
    }

    fn watches_metadata(&self, c: &Common) -> bool {
        c.is_pattern() || self.leader_view.is_some()
    }

    /// Metadata, when due: every topic for a pattern, the leader's topics for a change in
    /// their partition counts.
    fn check_metadata(&mut self, c: &mut Common, now: Instant) -> Option<Action> {
        if !self.watches_metadata(c) || !c.metadata_due(now, self.metadata_interval(c)) {
            return None;
        }
        c.metadata_checked = Some(now);
        let topics = if c.is_pattern() {
            None
        } else {
            self.leader_view.as_ref().map(|v| v.keys().cloned().collect())
        };
        Some(c.ask_metadata(topics, false))
    }

    /// A heartbeat keeping the session alive while the application applies a hand-over.
    fn keepalive(&mut self, c: &mut Common, now: Instant) -> Option<Action> {
        if self.generation < 0 || !matches!(self.phase, Phase::Idle) || !self.heartbeat_due(now) {
            return None;
        }
        Some(self.heartbeat(c, now))
    }

    fn heartbeat(&mut self, c: &mut Common, now: Instant) -> Action {
        if c.coordinator.is_none() {
            return c.find_coordinator();
        }
        self.next_heartbeat = Some(now + c.cfg.heartbeat_interval);
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&c.cfg.group_id)))
            .with_generation_id(self.generation)
            .with_member_id(s(&self.member_id))
            .with_group_instance_id(c.cfg.instance_id.as_deref().map(s));
        c.send(
            Op::Heartbeat {
                generation: self.generation,
            },
            Request::Heartbeat(req),
        )
    }

    /// The next step of a round: prepare, then JoinGroup.
    fn join(&mut self, c: &mut Common) -> Option<Action> {
        let owned = c.own.owned();
        if !owned.is_empty() {
            if self.generation < 0 || self.member_id.is_empty() {
                // Java's onJoinPrepare: the generation was reset, so what it held is
                // someone else's by now.
                info!(partitions = owned.len(), "no generation to keep partitions in: lost");
                c.lose_all();
                return None;
            }
            let revoke: Vec<TopicPartition> = if self.cooperative {
                owned
                    .iter()
                    .filter(|tp| !c.topics.contains(&*tp.topic))
                    .cloned()
                    .collect()
            } else {
                owned.iter().cloned().collect()
            };
            if !revoke.is_empty() {
                info!(partitions = revoke.len(), "revoking before join");
                c.own.revoke(revoke);
                return None;
            }
        }
        if c.topics.is_empty() {
            // Nothing matches (yet): stay out of the group until something does.
            if self.generation >= 0 {
                const WHY: &str = "no subscribed topic exists";
                if let Some(r) = self.leave_request(c, WHY) {
                    c.send_leave_detached(r, WHY);
                }
                self.on_left(c);
            }
            self.need_join = false;
            return None;
        }
        if c.coordinator.is_none() {
            return Some(c.find_coordinator());
        }
        let mut protocols = Vec::new();
        for a in &self.assignors {
            match self.subscription_bytes(c, a.as_ref()) {
                Ok(m) => protocols.push(
                    JoinGroupRequestProtocol::default()
                        .with_name(s(a.name()))
                        .with_metadata(m),
                ),
                Err(e) => {
                    c.fail(e);
                    return None;
                }
            }
        }
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(s(&c.cfg.group_id)))
            .with_session_timeout_ms(ms(c.cfg.session_timeout))
            .with_rebalance_timeout_ms(ms(c.cfg.rebalance_timeout))
            .with_member_id(s(&self.member_id))
            .with_group_instance_id(c.cfg.instance_id.as_deref().map(s))
            .with_protocol_type(s("consumer"))
            .with_protocols(protocols)
            .with_reason(Some(s("rebalance")));
        c.note(Note::RebalanceStarted);
        self.phase = Phase::Joining;
        Some(c.send(Op::JoinGroup, Request::JoinGroup(req)))
    }

    fn subscription_bytes(&self, c: &Common, a: &dyn Assignor) -> Result<bytes::Bytes> {
        let owned: Vec<TopicPartition> = c.own.owned().iter().cloned().collect();
        assignor::Subscription {
            topics: c.topics.iter().cloned().collect(),
            user_data: a.subscription_user_data(&owned, self.generation),
            owned_partitions: owned,
            generation_id: self.generation,
            rack_id: c.cfg.rack.clone(),
        }
        .encode(assignor::CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| Error::config(format!("group subscription: {e}")))
    }

    fn on_join(&mut self, c: &mut Common, now: Instant, response: Result<JoinGroupResponse>) {
        self.phase = Phase::Idle;
        let resp = match response {
            Ok(r) => r,
            Err(e) => {
                c.note(Note::RebalanceFailed);
                debug!(error = %e, "JoinGroup failed");
                c.coordinator_lost("JoinGroup failed");
                c.backoff(now);
                return;
            }
        };
        let code = ErrorCode::from(resp.error_code);
        if !matches!(code, ErrorCode::None | ErrorCode::MemberIdRequired) {
            // MEMBER_ID_REQUIRED is a step of the protocol (KIP-394), not a failure.
            c.note(Note::RebalanceFailed);
        }
        match errors::join_group(code) {
            Reaction::Proceed => {}
            Reaction::RejoinWithMemberId => {
                self.member_id = resp.member_id.to_string();
                return;
            }
            Reaction::Reset { forget_member_id } => {
                info!(error = %code, "JoinGroup: joining again");
                self.reset(forget_member_id);
                return;
            }
            Reaction::FindCoordinator => {
                c.coordinator_lost(code.name());
                c.backoff(now);
                return;
            }
            Reaction::Rejoin | Reaction::Backoff | Reaction::Lose { .. } => {
                debug!(error = %code, "JoinGroup: trying again");
                c.backoff(now);
                return;
            }
            Reaction::Fatal { .. } => {
                c.fail(Error::kafka(code).with_context(format!("joining group {}", c.cfg.group_id)));
                return;
            }
        }
        // The coordinator has the member (it held the JoinGroup for the whole group).
        c.contact(now);
        self.member_id = resp.member_id.to_string();
        let generation = resp.generation_id;
        let protocol = resp.protocol_name.as_ref().map(|p| p.to_string()).unwrap_or_default();
        let leader = resp.leader.as_str() == resp.member_id.as_str();
        info!(generation, member_id = %self.member_id, leader, %protocol, "joined group");
        if !leader || resp.skip_assignment {
            self.phase = Phase::SyncDue {
                generation,
                protocol,
                assignments: Vec::new(),
            };
            return;
        }
        match self.leader_input(&protocol, &resp.members) {
            Ok((members, topics)) => {
                self.phase = Phase::Assigning {
                    generation,
                    protocol,
                    members,
                    topics,
                }
            }
            Err(e) => c.fail(e.with_context("computing the group assignment as leader")),
        }
    }

    /// The members' subscriptions and every topic they name, for the leader's assignment.
    fn leader_input(
        &self,
        protocol: &str,
        members: &[JoinGroupResponseMember],
    ) -> Result<(Vec<MemberSubscription>, Vec<String>)> {
        if !self.assignors.iter().any(|a| a.name() == protocol) {
            return Err(Error::protocol(format!(
                "the group chose assignor {protocol:?}, which is not configured"
            )));
        }
        let mut subs = Vec::new();
        let mut topics = BTreeSet::new();
        for m in members {
            let sub = assignor::Subscription::decode(m.metadata.clone())
                .map_err(|e| Error::protocol(format!("subscription of member {}: {e}", m.member_id.as_str())))?;
            topics.extend(sub.topics.iter().cloned());
            subs.push(MemberSubscription {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.as_ref().map(|i| i.to_string()),
                subscription: sub,
            });
        }
        Ok((subs, topics.into_iter().collect()))
    }

    /// The leader's assignment, from the metadata in `c`.
    fn assign(
        &mut self,
        c: &Common,
        protocol: &str,
        members: &[MemberSubscription],
        topics: &[String],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let a = self.assignors.iter().find(|a| a.name() == protocol).ok_or_else(|| {
            Error::protocol(format!(
                "the group chose assignor {protocol:?}, which is not configured"
            ))
        })?;
        let counts: BTreeMap<String, i32> = match &c.metadata {
            Some(md) => topics
                .iter()
                .filter_map(|t| md.topic(t).map(|i| (t.clone(), i.partitions.len() as i32)))
                .collect(),
            None => BTreeMap::new(),
        };
        let result = a
            .assign(&counts, members)
            .map_err(|e| Error::protocol(format!("assignor {protocol}: {e}")))?;
        self.leader_view = Some(counts);
        result
            .into_iter()
            .map(|(member, assignment)| {
                Ok(SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member))
                    .with_assignment(
                        assignment
                            .encode(assignor::CONSUMER_PROTOCOL_VERSION)
                            .map_err(|e| Error::internal(format!("encoding the assignment of {member}: {e}")))?,
                    ))
            })
            .collect()
    }

    fn sync(
        &mut self,
        c: &mut Common,
        generation: i32,
        protocol: String,
        assignments: Vec<SyncGroupRequestAssignment>,
    ) -> Action {
        let req = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&c.cfg.group_id)))
            .with_generation_id(generation)
            .with_member_id(s(&self.member_id))
            .with_group_instance_id(c.cfg.instance_id.as_deref().map(s))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s(&protocol)))
            .with_assignments(assignments);
        self.phase = Phase::Syncing { generation };
        c.send(Op::SyncGroup, Request::SyncGroup(req))
    }

    fn on_sync(&mut self, c: &mut Common, now: Instant, response: Result<SyncGroupResponse>) {
        let Phase::Syncing { generation } = std::mem::replace(&mut self.phase, Phase::Idle) else {
            return;
        };
        let resp = match response {
            Ok(r) => r,
            Err(e) => {
                c.note(Note::RebalanceFailed);
                debug!(error = %e, "SyncGroup failed");
                c.coordinator_lost("SyncGroup failed");
                c.backoff(now);
                return;
            }
        };
        let code = ErrorCode::from(resp.error_code);
        if code != ErrorCode::None {
            c.note(Note::RebalanceFailed);
        }
        match errors::sync_group(code) {
            Reaction::Proceed => {}
            Reaction::Rejoin => {
                info!(error = %code, "SyncGroup: joining again");
                return;
            }
            Reaction::Reset { forget_member_id } => {
                info!(error = %code, "SyncGroup: joining again");
                self.reset(forget_member_id);
                return;
            }
            Reaction::FindCoordinator => {
                c.coordinator_lost(code.name());
                return;
            }
            Reaction::Backoff | Reaction::RejoinWithMemberId | Reaction::Lose { .. } => {
                debug!(error = %code, "SyncGroup: trying again");
                c.backoff(now);
                return;
            }
            Reaction::Fatal { .. } => {
                c.fail(Error::kafka(code).with_context(format!("syncing group {}", c.cfg.group_id)));
                return;
            }
        }
        let assignment = match Assignment::decode(resp.assignment.clone()) {
            Ok(a) => a,
            Err(e) => {
                c.note(Note::RebalanceFailed);
                c.fail(Error::protocol(format!(
                    "undecodable assignment from the group leader: {e}"
                )));
                return;
            }
        };
        self.generation = generation;
        c.publish_identity(generation, &self.member_id);
        c.contact(now);
        self.need_join = false;
        self.next_heartbeat = Some(now + c.cfg.heartbeat_interval);
        c.note(Note::RebalanceSucceeded);
        let new: BTreeSet<TopicPartition> = assignment.partitions.into_iter().collect();
        let (revoked, added) = c.own.plan(&new, true);
        info!(generation, assigned = new.len(), added, revoked, "assignment received");
        if revoked > 0 {
            // KIP-429: join again so the revoked partitions can go to their new owners.
            self.need_join = true;
        }
    }

    fn on_heartbeat(&mut self, c: &mut Common, now: Instant, sent_in: i32, response: Result<HeartbeatResponse>) {
        self.next_heartbeat = Some(now + c.cfg.heartbeat_interval);
        let resp = match response {
            Ok(r) => r,
            Err(e) => {
                // The session runs out on its own if the coordinator stays away.
                debug!(error = %e, "heartbeat failed");
                c.coordinator_lost("heartbeat failed");
                c.backoff(now);
                return;
            }
        };
        let code = ErrorCode::from(resp.error_code);
        if sent_in != self.generation {
            // Java's generationUnchanged: about a generation the member already left.
            debug!(error = %code, sent_in, "heartbeat answer for an old generation: ignored");
            return;
        }
        match errors::heartbeat(code) {
            Reaction::Proceed => c.contact(now),
            Reaction::Rejoin => {
                c.contact(now);
                info!("group is rebalancing");
                self.need_join = true;
            }
            Reaction::Lose { forget_member_id } => {
                info!(error = %code, "heartbeat: no longer in the group generation");
                if forget_member_id {
                    self.member_id.clear();
                }
                c.lose_all();
                self.on_lost(c);
            }
            Reaction::Fatal { lose } => {
                let e = if code == ErrorCode::FencedInstanceId {
                    Error::kafka(code).with_context(format!(
                        "group.instance.id {:?} is used by another consumer",
                        c.cfg.instance_id.as_deref().unwrap_or("")
                    ))
                } else {
                    Error::kafka(code).with_context(format!("heartbeat of group {}", c.cfg.group_id))
                };
                c.fail(e);
                if lose {
                    c.lose_all();
                    self.on_lost(c);
                }
            }
            Reaction::FindCoordinator => c.coordinator_lost(code.name()),
            Reaction::Backoff | Reaction::RejoinWithMemberId | Reaction::Reset { .. } => {
                warn!(error = %code, "heartbeat failed");
                c.backoff(now);
            }
        }
    }

    /// The generation is gone (and the member id when `forget_member_id`): join again.
    fn reset(&mut self, forget_member_id: bool) {
        if forget_member_id {
            self.member_id.clear();
        }
        self.generation = -1;
        self.need_join = true;
    }
}

impl Protocol for Classic {
    fn in_group(&self) -> bool {
        self.generation >= 0
    }

    fn rebalancing(&self) -> bool {
        // Only while the coordinator holds a JoinGroup or SyncGroup: a member that cannot
        // send its SyncGroup (no coordinator) is watched as any other.
        matches!(self.phase, Phase::Joining | Phase::Syncing { .. })
    }

    fn identity(&self) -> (i32, &str) {
        (self.generation, &self.member_id)
    }

    fn step(&mut self, c: &mut Common, now: Instant) -> Option<Action> {
        if c.own.busy() {
            return self.keepalive(c, now);
        }
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Idle => {}
            p @ Phase::Assigning { .. } => {
                let topics = match &p {
                    Phase::Assigning { topics, .. } => topics.clone(),
                    _ => Vec::new(),
                };
                self.phase = p;
                return Some(c.ask_metadata(Some(topics), false));
            }
            Phase::SyncDue {
                generation,
                protocol,
                assignments,
            } => {
                if c.coordinator.is_none() {
                    self.phase = Phase::SyncDue {
                        generation,
                        protocol,
                        assignments,
                    };
                    return Some(c.find_coordinator());
                }
                return Some(self.sync(c, generation, protocol, assignments));
            }
            p @ (Phase::Joining | Phase::Syncing { .. }) => {
                // Its answer is awaited (the core does not step while an operation is in
                // flight); kept as it is.
                self.phase = p;
                return None;
            }
        }
        if let Some(a) = self.check_metadata(c, now) {
            return Some(a);
        }
        if self.need_join {
            return self.join(c);
        }
        if self.generation >= 0 && self.heartbeat_due(now) {
            return Some(self.heartbeat(c, now));
        }
        None
    }

    fn deadline(&self, c: &Common, _now: Instant) -> Option<Instant> {
        let heartbeat = (self.generation >= 0 && matches!(self.phase, Phase::Idle) && !self.need_join)
            .then_some(self.next_heartbeat)
            .flatten();
        let metadata = self
            .watches_metadata(c)
            .then(|| c.metadata_due_at(self.metadata_interval(c)))
            .flatten();
        [heartbeat, metadata].into_iter().flatten().min()
    }

    fn on_response(&mut self, c: &mut Common, now: Instant, op: Op, response: Result<Response>) {
        match op {
            Op::JoinGroup => {
                let r = response.and_then(|r| match r {
                    Response::JoinGroup(r) => Ok(r),
                    _ => Err(Error::internal("JoinGroup answered with another API")),
                });
                self.on_join(c, now, r);
            }
            Op::SyncGroup => {
                let r = response.and_then(|r| match r {
                    Response::SyncGroup(r) => Ok(r),
                    _ => Err(Error::internal("SyncGroup answered with another API")),
                });
                self.on_sync(c, now, r);
            }
            Op::Heartbeat { generation } => {
                let r = response.and_then(|r| match r {
                    Response::Heartbeat(r) => Ok(r),
                    _ => Err(Error::internal("Heartbeat answered with another API")),
                });
                self.on_heartbeat(c, now, generation, r);
            }
            _ => {}
        }
    }

    fn on_metadata(&mut self, c: &mut Common, now: Instant, op: Op, ok: bool) {
        if let Phase::Assigning {
            generation,
            protocol,
            members,
            topics,
        } = std::mem::replace(&mut self.phase, Phase::Idle)
        {
            if !ok {
                self.phase = Phase::Assigning {
                    generation,
                    protocol,
                    members,
                    topics,
                };
                c.backoff(now);
                return;
            }
            match self.assign(c, &protocol, &members, &topics) {
                Ok(assignments) => {
                    self.phase = Phase::SyncDue {
                        generation,
                        protocol,
                        assignments,
                    }
                }
                Err(e) => c.fail(e.with_context("computing the group assignment as leader")),
            }
            return;
        }
        if !ok {
            return;
        }
        if op == (Op::Metadata { all: true, fresh: true }) && c.resolve_pattern() {
            self.need_join = true;
        }
        if let (Some(view), Some(md)) = (&self.leader_view, &c.metadata) {
            let changed = view
                .iter()
                .any(|(t, n)| md.topic(t).map_or(0, |i| i.partitions.len() as i32) != *n);
            if changed {
                info!("partition count of a subscribed topic changed: rebalancing");
                self.need_join = true;
            }
        }
    }

    fn on_subscription(&mut self, c: &mut Common, _now: Instant) {
        self.need_join = true;
        if !matches!(self.phase, Phase::Idle) {
            // A round for the old subscription is not finished: start again.
            if matches!(c.inflight(), Some(Op::JoinGroup | Op::SyncGroup | Op::Metadata { .. })) {
                c.abandon();
            }
            self.phase = Phase::Idle;
        }
    }

    fn on_lost(&mut self, c: &mut Common) {
        self.generation = -1;
        self.need_join = true;
        self.phase = Phase::Idle;
        self.next_heartbeat = None;
        c.publish_identity(-1, &self.member_id);
    }

    fn leave_request(&self, c: &Common, reason: &str) -> Option<Request> {
        // Static members stay: their partitions wait for them until session.timeout.ms.
        if c.cfg.instance_id.is_some() || self.member_id.is_empty() {
            return None;
        }
        let version = c.coordinator.as_ref().map_or(0, |i| i.leave_group_version);
        let req = LeaveGroupRequest::default().with_group_id(GroupId(s(&c.cfg.group_id)));
        Some(Request::LeaveGroup(if version >= 3 {
            req.with_members(vec![MemberIdentity::default()
                .with_member_id(s(&self.member_id))
                .with_reason(Some(s(reason)))])
        } else {
            req.with_member_id(s(&self.member_id))
        }))
    }

    fn on_left(&mut self, _c: &mut Common) {
        // Java's resetGenerationOnLeaveGroup: a new member when it joins again.
        self.member_id.clear();
        self.generation = -1;
        self.need_join = true;
        self.phase = Phase::Idle;
        self.next_heartbeat = None;
    }
}
