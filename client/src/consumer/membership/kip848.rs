//! The KIP-848 protocol (`group.protocol=consumer`) on the shared core.
//!
//! One request does everything: ConsumerGroupHeartbeat carries the member's subscription and
//! the partitions it owns; the coordinator computes the assignment (server side, by topic id)
//! and answers with the member's epoch and, when it changed, its target assignment. The
//! member reconciles (Java's `AbstractMembershipManager.maybeReconcile`): the part of the
//! target whose topic ids metadata resolves is applied, revocations first; the next
//! heartbeat, sent as soon as the application acknowledged, reports what it owns, which is
//! how the coordinator knows it may give revoked partitions to others and bumps the epoch.
//! A partition being revoked is reported owned until the application acknowledged it. No
//! group-wide barrier, no JoinGroup/SyncGroup.
//!
//! The member id is chosen by the client (a UUID, as Kafka 4 requires, passed in). A fenced
//! or unknown member hands its partitions over as lost and joins again with epoch 0 and the
//! same id; an answer carrying an epoch older than the member's is stale and ignored, so the
//! epoch never goes back except to 0 when the member falls out of the group.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use strom_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use strom_protocol::messages::{ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, TopicName};
use strom_protocol::ErrorCode;
use tracing::{debug, info};
use uuid::Uuid;

use super::common::{Common, Op, Protocol};
use super::errors::{self, Reaction};
use super::io::{ms, Action, Note, Request, Response};
use crate::error::{Error, Result};
use crate::metadata::ClusterMetadata;
use crate::topic_partition::TopicPartition;
use crate::wire::s;

/// Epoch to leave with: -1 (dynamic member) or -2 (static member, which keeps its
/// assignment until `session.timeout.ms`).
const LEAVE_EPOCH: i32 = -1;
const STATIC_LEAVE_EPOCH: i32 = -2;

/// How far the topic ids of a target assignment were looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lookup {
    NotYet,
    /// In the client's metadata snapshot.
    Cached,
    /// Asked of a broker at this instant (asked again a heartbeat interval later while some
    /// topic is still unknown: a new topic's metadata may lag its assignment).
    Fresh(Instant),
}

/// The newest target assignment the coordinator sent, not applied in full yet.
#[derive(Debug)]
struct Target {
    epoch: i32,
    partitions: Vec<(Uuid, Vec<i32>)>,
    lookup: Lookup,
    /// Its rebalance was reported started.
    started: bool,
}

/// A KIP-848 group member.
#[derive(Debug)]
pub(crate) struct Kip848 {
    member_id: String,
    epoch: i32,
    heartbeat_interval: Duration,
    /// When the next heartbeat is due; `None`: now.
    next_heartbeat: Option<Instant>,
    target: Option<Target>,
    /// A reconciliation's hand-overs are with the application: once done, heartbeat at once.
    reconciling: bool,
    /// The topic ids of the topics owned (resolved when they were assigned).
    ids: BTreeMap<String, Uuid>,
}

impl Kip848 {
    /// A member with this id (a UUID the client chose) and the configured heartbeat
    /// interval, until the coordinator says another.
    pub(crate) fn new(member_id: String, heartbeat_interval: Duration) -> Self {
        Kip848 {
            member_id,
            epoch: 0,
            heartbeat_interval,
            next_heartbeat: None,
            target: None,
            reconciling: false,
            ids: BTreeMap::new(),
        }
    }

    fn heartbeat_due(&self, now: Instant) -> bool {
        self.next_heartbeat.is_none_or(|t| now >= t)
    }

    /// The heartbeat with `epoch`; `Err` names owned topics whose id is not known.
    fn request(&self, c: &Common, epoch: i32) -> std::result::Result<ConsumerGroupHeartbeatRequest, Vec<String>> {
        let mut owned: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        let mut unknown = BTreeSet::new();
        for tp in c.own.owned() {
            match self.ids.get(&*tp.topic) {
                Some(id) => owned.entry(*id).or_default().push(tp.partition),
                None => {
                    unknown.insert(tp.topic.to_string());
                }
            }
        }
        if !unknown.is_empty() {
            return Err(unknown.into_iter().collect());
        }
        Ok(ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(&c.cfg.group_id)))
            .with_member_id(s(&self.member_id))
            .with_member_epoch(epoch)
            .with_instance_id(c.cfg.instance_id.as_deref().map(s))
            .with_rack_id(c.cfg.rack.as_deref().map(s))
            .with_rebalance_timeout_ms(ms(c.cfg.rebalance_timeout))
            .with_subscribed_topic_names(Some(c.topics.iter().map(|t| TopicName(s(t))).collect()))
            .with_topic_partitions(Some(
                owned
                    .into_iter()
                    .map(|(id, partitions)| TopicPartitions::default().with_topic_id(id).with_partitions(partitions))
                    .collect(),
            )))
    }

    fn heartbeat(&mut self, c: &mut Common, now: Instant) -> Action {
        if c.coordinator.is_none() {
            return c.find_coordinator();
        }
        match self.request(c, self.epoch) {
            Ok(req) => {
                self.next_heartbeat = Some(now + self.heartbeat_interval);
                c.send(
                    Op::ConsumerHeartbeat { epoch: self.epoch },
                    Request::ConsumerGroupHeartbeat(req),
                )
            }
            Err(topics) => {
                debug!(?topics, "metadata for the ids of owned topics");
                c.ask_metadata(Some(topics), false)
            }
        }
    }

    /// A heartbeat keeping the session alive while the application applies a hand-over.
    /// Not at epoch 0: that joins, and reports nothing owned while the application still
    /// has partitions.
    fn keepalive(&mut self, c: &mut Common, now: Instant) -> Option<Action> {
        (self.epoch > 0 && self.heartbeat_due(now)).then(|| self.heartbeat(c, now))
    }

    /// Every topic for a pattern subscription, every `metadata.max.age.ms`.
    fn check_pattern(&mut self, c: &mut Common, now: Instant) -> Option<Action> {
        if !c.is_pattern() || !c.metadata_due(now, c.cfg.metadata_max_age) {
            return None;
        }
        c.metadata_checked = Some(now);
        Some(c.ask_metadata(None, false))
    }

    /// Applies what resolves of the target (Java: reconcile the resolvable part, ask
    /// metadata for the rest); asks for metadata while topic ids are unknown.
    fn reconcile(&mut self, c: &mut Common, now: Instant) -> Option<Action> {
        let interval = self.heartbeat_interval;
        let target = self.target.as_mut()?;
        let (resolved, ids, unknown) = resolve(c.metadata.as_deref(), &target.partitions);
        if unknown > 0 {
            match target.lookup {
                Lookup::NotYet => {
                    target.lookup = Lookup::Cached;
                    return Some(c.ask_metadata(None, true));
                }
                Lookup::Cached => {
                    target.lookup = Lookup::Fresh(now);
                    return Some(c.ask_metadata(None, false));
                }
                Lookup::Fresh(at) if now >= at + interval => {
                    target.lookup = Lookup::Fresh(now);
                    return Some(c.ask_metadata(None, false));
                }
                Lookup::Fresh(_) => debug!(unknown, "assignment names topics metadata does not know yet"),
            }
        }
        if &resolved == c.own.owned() {
            if unknown == 0 {
                // Applied in full (or nothing to change): this rebalance is over.
                if !target.started {
                    c.note(Note::RebalanceStarted);
                }
                c.note(Note::RebalanceSucceeded);
                self.target = None;
            }
            return None;
        }
        if !target.started {
            target.started = true;
            c.note(Note::RebalanceStarted);
        }
        self.ids.extend(ids);
        let epoch = target.epoch;
        if unknown == 0 {
            self.target = None;
        }
        let (revoked, added) = c.own.plan(&resolved, false);
        info!(epoch, added, revoked, "reconciling assignment");
        self.reconciling = true;
        None
    }

    fn on_heartbeat(
        &mut self,
        c: &mut Common,
        now: Instant,
        sent_with: i32,
        response: Result<ConsumerGroupHeartbeatResponse>,
    ) {
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
        match errors::consumer_group_heartbeat(code) {
            Reaction::Proceed => {}
            Reaction::Lose { .. } => {
                info!(error = %code, epoch = self.epoch, "fenced: rejoining with epoch 0");
                c.note(Note::RebalanceFailed);
                c.lose_all();
                self.on_lost(c);
                return;
            }
            Reaction::FindCoordinator => {
                c.coordinator_lost(code.name());
                c.backoff(now);
                return;
            }
            Reaction::Backoff | Reaction::Rejoin | Reaction::RejoinWithMemberId | Reaction::Reset { .. } => {
                debug!(error = %code, "heartbeat: trying again");
                c.backoff(now);
                return;
            }
            Reaction::Fatal { .. } => {
                let msg = resp.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
                let e = Error::kafka(code).with_context(format!(
                    "ConsumerGroupHeartbeat for group {} (group.protocol=consumer){}{msg}",
                    c.cfg.group_id,
                    if msg.is_empty() { "" } else { ": " }
                ));
                let e = if code == ErrorCode::UnsupportedVersion {
                    unsupported(&c.cfg.group_id, e)
                } else {
                    e
                };
                c.fail(e);
                return;
            }
        }
        if sent_with != self.epoch || resp.member_epoch < self.epoch {
            // The coordinator never takes a member's epoch back without fencing it: this
            // answer is older than what the member knows.
            debug!(
                epoch = self.epoch,
                answered = resp.member_epoch,
                "stale heartbeat answer: ignored"
            );
            return;
        }
        c.contact(now);
        if let Some(id) = resp.member_id.as_ref().filter(|m| !m.is_empty()) {
            self.member_id = id.to_string();
        }
        if resp.member_epoch != self.epoch {
            debug!(from = self.epoch, to = resp.member_epoch, "member epoch");
        }
        self.epoch = resp.member_epoch;
        c.publish_identity(self.epoch, &self.member_id);
        if resp.heartbeat_interval_ms > 0 {
            self.heartbeat_interval = Duration::from_millis(resp.heartbeat_interval_ms as u64);
        }
        self.next_heartbeat = Some(now + self.heartbeat_interval);
        if let Some(a) = resp.assignment {
            // The coordinator sends a target once; it replaces whatever was planned and not
            // handed over yet (reconciled after the hand-over the application has).
            self.target = Some(Target {
                epoch: self.epoch,
                partitions: a
                    .topic_partitions
                    .into_iter()
                    .map(|t| (t.topic_id, t.partitions))
                    .collect(),
                lookup: Lookup::NotYet,
                started: false,
            });
            c.own.drop_plan();
        }
    }
}

/// The target's partitions whose topic ids `md` knows, the names of those ids, and how many
/// topics it does not know.
fn resolve(
    md: Option<&ClusterMetadata>,
    target: &[(Uuid, Vec<i32>)],
) -> (BTreeSet<TopicPartition>, BTreeMap<String, Uuid>, usize) {
    let mut resolved = BTreeSet::new();
    let mut ids = BTreeMap::new();
    let mut unknown = 0;
    for (id, partitions) in target {
        match md.and_then(|md| md.topics.values().find(|t| t.topic_id == *id)) {
            Some(t) => {
                ids.insert(t.name.clone(), *id);
                resolved.extend(partitions.iter().map(|p| TopicPartition::new(&t.name, *p)));
            }
            None => unknown += 1,
        }
    }
    (resolved, ids, unknown)
}

/// A cluster without the KIP-848 group coordinator: brokers before 3.7 lack the API, 3.7 to
/// 3.9 list it but answer UNSUPPORTED_VERSION unless the preview is enabled, and 4.x can run
/// with `group.version=0`. Retrying cannot help; the setting must change.
fn unsupported(group: &str, cause: Error) -> Error {
    Error::config(format!(
        "group {group}: this cluster does not support group.protocol=consumer (KIP-848, Kafka 4.0+ with the \
         new group coordinator); set group.protocol=classic"
    ))
    .with_cause(cause)
}

impl Protocol for Kip848 {
    fn in_group(&self) -> bool {
        self.epoch > 0
    }

    fn rebalancing(&self) -> bool {
        false
    }

    fn identity(&self) -> (i32, &str) {
        (self.epoch, &self.member_id)
    }

    fn step(&mut self, c: &mut Common, now: Instant) -> Option<Action> {
        if let Some(info) = c.coordinator.as_ref().filter(|i| !i.consumer_group_heartbeat) {
            let cause = Error::kafka(ErrorCode::UnsupportedVersion)
                .with_context(format!("broker {} has no ConsumerGroupHeartbeat API", info.addr));
            c.fail(unsupported(&c.cfg.group_id, cause));
            return None;
        }
        if c.own.busy() {
            return self.keepalive(c, now);
        }
        if self.reconciling {
            // Applied: acknowledge at once, the coordinator waits for revocations before it
            // moves partitions to other members.
            self.reconciling = false;
            self.next_heartbeat = None;
            if self.target.is_none() {
                c.note(Note::RebalanceSucceeded);
            }
        }
        if let Some(a) = self.check_pattern(c, now) {
            return Some(a);
        }
        if let Some(a) = self.reconcile(c, now) {
            return Some(a);
        }
        if c.own.busy() {
            return None;
        }
        self.heartbeat_due(now).then(|| self.heartbeat(c, now))
    }

    fn deadline(&self, c: &Common, _now: Instant) -> Option<Instant> {
        let lookup = match self.target.as_ref().map(|t| t.lookup) {
            Some(Lookup::Fresh(at)) => Some(at + self.heartbeat_interval),
            _ => None,
        };
        let pattern = c
            .is_pattern()
            .then(|| c.metadata_due_at(c.cfg.metadata_max_age))
            .flatten();
        let heartbeat = if c.own.busy() && self.epoch <= 0 {
            None
        } else {
            self.next_heartbeat
        };
        [heartbeat, lookup, pattern].into_iter().flatten().min()
    }

    fn on_response(&mut self, c: &mut Common, now: Instant, op: Op, response: Result<Response>) {
        if let Op::ConsumerHeartbeat { epoch } = op {
            let r = response.and_then(|r| match r {
                Response::ConsumerGroupHeartbeat(r) => Ok(r),
                _ => Err(Error::internal("ConsumerGroupHeartbeat answered with another API")),
            });
            self.on_heartbeat(c, now, epoch, r);
        }
    }

    fn on_metadata(&mut self, c: &mut Common, _now: Instant, op: Op, ok: bool) {
        if !ok {
            return;
        }
        if op == (Op::Metadata { all: true, fresh: true }) && c.resolve_pattern() {
            // The coordinator hears of the new subscription at once.
            self.next_heartbeat = None;
        }
        if let Some(md) = &c.metadata {
            for tp in c.own.owned() {
                if !self.ids.contains_key(&*tp.topic) {
                    if let Some(t) = md.topic(&tp.topic) {
                        self.ids.insert(t.name.clone(), t.topic_id);
                    }
                }
            }
        }
    }

    fn on_subscription(&mut self, _c: &mut Common, _now: Instant) {
        self.next_heartbeat = None;
    }

    fn on_lost(&mut self, c: &mut Common) {
        self.epoch = 0;
        self.target = None;
        self.reconciling = false;
        self.next_heartbeat = None;
        c.publish_identity(0, &self.member_id);
    }

    fn leave_request(&self, c: &Common, _reason: &str) -> Option<Request> {
        if self.epoch <= 0 {
            return None;
        }
        let epoch = if c.cfg.instance_id.is_some() {
            STATIC_LEAVE_EPOCH
        } else {
            LEAVE_EPOCH
        };
        let req = self.request(c, epoch).unwrap_or_else(|_| {
            ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(s(&c.cfg.group_id)))
                .with_member_id(s(&self.member_id))
                .with_member_epoch(epoch)
                .with_instance_id(c.cfg.instance_id.as_deref().map(s))
        });
        Some(Request::ConsumerGroupHeartbeat(req))
    }

    fn on_left(&mut self, _c: &mut Common) {
        self.epoch = 0;
        self.target = None;
        self.reconciling = false;
        self.next_heartbeat = None;
    }
}
