//! Group membership, classic protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup), in a
//! background task.
//!
//! The task owns the coordinator connection (its own socket: JoinGroup is held by the
//! broker until the whole group joins, and must not block commits or fetches) and keeps
//! heartbeating while the application processes records. Assignment changes are sent to
//! the consumer as [`GroupEvent`]s that its next `poll` applies (running the
//! [`RebalanceListener`] and committing before partitions go); the task waits for that, and
//! keeps heartbeating while it waits, as Java's heartbeat thread does.
//!
//! Eager protocols (range, roundrobin, sticky) give up every partition before joining;
//! cooperative-sticky keeps its partitions, gives up only those the new assignment moves
//! away, and rejoins at once so they can be handed over (KIP-429).
//!
//! `max.poll.interval.ms`: when the application has not polled for that long, the member
//! leaves the group (Java's behaviour); the next poll reports the partitions lost and joins
//! again.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use strom_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use strom_protocol::messages::leave_group_request::MemberIdentity;
use strom_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use strom_protocol::messages::{
    ApiKey, GroupId, HeartbeatRequest, JoinGroupRequest, LeaveGroupRequest, SyncGroupRequest,
};
use strom_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, info_span, warn, Instrument};

use super::assignor::{self, Assignment, Assignor, MemberSubscription, RebalanceProtocol};
use super::member::{CommitIdentity, GroupShared};
use super::record::OffsetAndMetadata;
use super::state::{PartitionState, Subscription};
use crate::admin::s;
use crate::client::Client;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::metrics::CoordinatorInstruments;
use crate::role_config::ConsumerConfig;
use crate::topic_partition::TopicPartition;

/// Told when partitions come and go in a group rebalance. Runs inside `poll`, so the
/// consumer's state is consistent; commits and seeks are asked for through the context and
/// done before the rebalance continues.
pub trait RebalanceListener: Send {
    /// These partitions are about to go to other members: the last chance to commit.
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition], ctx: &mut RebalanceContext) {
        let _ = (partitions, ctx);
    }

    /// These partitions now belong to this member (positions: committed offsets, unless
    /// the listener seeks).
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition], ctx: &mut RebalanceContext) {
        let _ = (partitions, ctx);
    }

    /// These partitions were already given to others (the member fell out of the group):
    /// committing them would fail. Defaults to `on_partitions_revoked`, as in Java.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition], ctx: &mut RebalanceContext) {
        self.on_partitions_revoked(partitions, ctx);
    }
}

/// What a [`RebalanceListener`] can see and ask for.
#[derive(Debug)]
pub struct RebalanceContext {
    positions: BTreeMap<TopicPartition, (Option<i64>, Option<i32>)>,
    commits: BTreeMap<TopicPartition, OffsetAndMetadata>,
    seeks: Vec<(TopicPartition, i64)>,
}

impl RebalanceContext {
    pub(crate) fn new(assignment: &BTreeMap<TopicPartition, PartitionState>) -> Self {
        RebalanceContext {
            positions: assignment
                .iter()
                .map(|(tp, s)| (tp.clone(), (s.position, s.epoch)))
                .collect(),
            commits: BTreeMap::new(),
            seeks: Vec::new(),
        }
    }

    /// The position (next offset poll returns) of an assigned partition, when known.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.positions.get(tp).and_then(|p| p.0)
    }

    /// Commits these offsets (synchronously, before the rebalance continues).
    pub fn commit(&mut self, offsets: BTreeMap<TopicPartition, OffsetAndMetadata>) {
        self.commits.extend(offsets);
    }

    /// Commits the current positions of these partitions.
    pub fn commit_positions(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            if let Some((Some(p), epoch)) = self.positions.get(tp) {
                self.commits.insert(
                    tp.clone(),
                    OffsetAndMetadata {
                        offset: *p,
                        leader_epoch: *epoch,
                        metadata: String::new(),
                    },
                );
            }
        }
    }

    /// Starts reading `tp` from `offset` (for newly assigned partitions).
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) {
        self.seeks.push((tp.clone(), offset));
    }

    pub(crate) fn into_parts(self) -> (BTreeMap<TopicPartition, OffsetAndMetadata>, Vec<(TopicPartition, i64)>) {
        (self.commits, self.seeks)
    }
}

/// From the membership task to the consumer.
#[derive(Debug)]
pub(crate) enum GroupEvent {
    /// Give these up (commit first); answer when done.
    Revoke(Vec<TopicPartition>, oneshot::Sender<()>),
    /// These are already someone else's: drop them without committing.
    Lost(Vec<TopicPartition>, oneshot::Sender<()>),
    /// These are now ours.
    Assign(Vec<TopicPartition>, oneshot::Sender<()>),
    /// Membership cannot continue (fenced static member, authorization, bad config).
    Fatal(Error),
}

/// From the consumer to the membership task.
#[derive(Debug)]
pub(crate) enum GroupControl {
    Subscribe(Subscription),
    Leave(oneshot::Sender<()>),
}

/// The consumer's end of a membership task.
#[derive(Debug)]
pub(crate) struct GroupHandle {
    pub(crate) events: mpsc::UnboundedReceiver<GroupEvent>,
    control: mpsc::UnboundedSender<GroupControl>,
    shared: Arc<GroupShared>,
    task: tokio::task::JoinHandle<()>,
    /// `leave` ran (close or unsubscribe): nothing left for `drop` to do.
    left: bool,
}

/// How long a consumer dropped without `close()` is given to leave its group.
const LEAVE_ON_DROP_LIMIT: Duration = Duration::from_secs(10);

impl GroupHandle {
    /// The member's shared state (its commit identity), for a [`crate::Committer`].
    pub(crate) fn shared(&self) -> Arc<GroupShared> {
        self.shared.clone()
    }

    pub(crate) fn new(
        events: mpsc::UnboundedReceiver<GroupEvent>,
        control: mpsc::UnboundedSender<GroupControl>,
        shared: Arc<GroupShared>,
        task: tokio::task::JoinHandle<()>,
    ) -> Self {
        GroupHandle {
            events,
            control,
            shared,
            task,
            left: false,
        }
    }

    pub(crate) fn identity(&self) -> CommitIdentity {
        self.shared.identity()
    }

    pub(crate) fn note_poll(&self) {
        if let Ok(mut t) = self.shared.last_poll.lock() {
            *t = Instant::now();
        }
        self.shared.polled.notify_waiters();
    }

    pub(crate) fn change_subscription(&self, sub: Subscription) {
        let _ = self.control.send(GroupControl::Subscribe(sub));
    }

    /// Leaves the group and stops the task (bounded by the request timeout).
    pub(crate) async fn leave(mut self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(GroupControl::Leave(tx)).is_ok() {
            // Answer revocations the task may be waiting on while it winds down.
            let wait = async {
                tokio::pin!(rx);
                loop {
                    tokio::select! {
                        _ = &mut rx => return,
                        ev = self.events.recv() => match ev {
                            Some(GroupEvent::Revoke(_, done) | GroupEvent::Lost(_, done) | GroupEvent::Assign(_, done)) => {
                                let _ = done.send(());
                            }
                            Some(GroupEvent::Fatal(_)) => {}
                            None => return,
                        },
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(30), wait).await;
        }
        self.left = true;
        self.task.abort();
    }
}

impl Drop for GroupHandle {
    fn drop(&mut self) {
        if self.left {
            return;
        }
        // Dropped without close(): leave the group anyway, as librdkafka does when a consumer
        // is destroyed, so the group rebalances now rather than after session.timeout.ms.
        // The control channel closes with this handle and the membership task takes that as
        // "leave" (LeaveGroup, or for KIP-848 a heartbeat with epoch -1, each bounded to 5 s);
        // revocations it may wait for are answered by the closed event channel. A task stuck
        // elsewhere is aborted after LEAVE_ON_DROP_LIMIT. Without a runtime it is aborted now
        // (the old crash-like behaviour).
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let abort = self.task.abort_handle();
                rt.spawn(async move {
                    tokio::time::sleep(LEAVE_ON_DROP_LIMIT).await;
                    abort.abort();
                });
            }
            Err(_) => self.task.abort(),
        }
    }
}

/// Settings the membership task needs.
#[derive(Debug, Clone)]
pub(crate) struct MemberConfig {
    pub(crate) group_id: String,
    pub(crate) instance_id: Option<String>,
    pub(crate) session_timeout: Duration,
    pub(crate) rebalance_timeout: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) retry_backoff: Duration,
    pub(crate) metadata_max_age: Duration,
    pub(crate) rack: Option<String>,
    pub(crate) assignors: Vec<String>,
}

impl MemberConfig {
    pub(crate) fn from_consumer(config: &ConsumerConfig, group_id: String) -> Self {
        MemberConfig {
            group_id,
            instance_id: config.group_instance_id.clone(),
            session_timeout: config.session_timeout,
            rebalance_timeout: config.max_poll_interval,
            heartbeat_interval: config.heartbeat_interval,
            retry_backoff: config.client.retry_backoff,
            metadata_max_age: config.client.metadata_max_age,
            rack: config.client_rack.clone(),
            assignors: config.assignment_strategies.clone(),
        }
    }
}

/// Starts the classic membership task.
pub(crate) fn spawn(
    client: Client,
    config: &ConsumerConfig,
    group_id: String,
    sub: Subscription,
) -> Result<GroupHandle> {
    let cfg = MemberConfig::from_consumer(config, group_id);
    let mut assignors = Vec::new();
    for name in &cfg.assignors {
        assignors.push(
            assignor::assignor_by_name(name)
                .ok_or_else(|| Error::config(format!("partition.assignment.strategy: unknown assignor {name}")))?,
        );
    }
    // Java: the rebalance protocol is the highest one every configured assignor supports.
    let cooperative = assignors
        .iter()
        .all(|a| a.supported_protocols().contains(&RebalanceProtocol::Cooperative));
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(GroupShared::new(cfg.instance_id.clone()));
    // A root span: the member task outlives the call that started it (see connection.rs).
    let span = info_span!(parent: None, "group", group = %cfg.group_id, protocol = "classic");
    let instruments = CoordinatorInstruments::new(client.metric_registry());
    let member = ClassicMember {
        instruments,
        client,
        cfg,
        assignors,
        cooperative,
        shared: shared.clone(),
        events: events_tx,
        control: control_rx,
        subscription: sub,
        topics: BTreeSet::new(),
        member_id: String::new(),
        generation: -1,
        owned: BTreeSet::new(),
        coordinator: None,
        need_join: true,
        leader_view: None,
        last_heartbeat_ok: Instant::now(),
        last_metadata_check: None,
    };
    let task = tokio::spawn(member.run().instrument(span));
    Ok(GroupHandle::new(events_rx, control_tx, shared, task))
}

struct ClassicMember {
    /// Rebalances and heartbeats (`consumer-coordinator-metrics`).
    instruments: CoordinatorInstruments,
    client: Client,
    cfg: MemberConfig,
    assignors: Vec<Box<dyn Assignor>>,
    cooperative: bool,
    shared: Arc<GroupShared>,
    events: mpsc::UnboundedSender<GroupEvent>,
    control: mpsc::UnboundedReceiver<GroupControl>,
    subscription: Subscription,
    /// The topics subscribed to (the pattern resolved against metadata).
    topics: BTreeSet<String>,
    member_id: String,
    generation: i32,
    owned: BTreeSet<TopicPartition>,
    coordinator: Option<(i32, Connection)>,
    need_join: bool,
    /// As leader: the partition counts the last assignment was computed from.
    leader_view: Option<BTreeMap<String, i32>>,
    last_heartbeat_ok: Instant,
    last_metadata_check: Option<Instant>,
}

/// Why a membership task (classic or KIP-848) stops: the consumer asked to leave (with
/// whom to tell when done) or went away.
#[derive(Debug)]
pub(crate) enum Interrupt {
    Leave(Option<oneshot::Sender<()>>),
}

/// A membership task's step: `Err` ends the task.
pub(crate) type Step<T> = std::result::Result<T, Interrupt>;

/// What a control message means to either membership task: a new subscription
/// (`Ok(Some)`), nothing (`Ok(None)`), or leave.
pub(crate) fn control_step(c: Option<GroupControl>) -> Step<Option<Subscription>> {
    match c {
        None => Err(Interrupt::Leave(None)),
        Some(GroupControl::Leave(r)) => Err(Interrupt::Leave(Some(r))),
        Some(GroupControl::Subscribe(sub)) => Ok(Some(sub)),
    }
}

impl ClassicMember {
    async fn run(mut self) {
        let leave = loop {
            match self.step().await {
                Ok(()) => {}
                Err(Interrupt::Leave(reply)) => break reply,
            }
        };
        self.leave_group("the consumer is closing").await;
        if let Some(r) = leave {
            let _ = r.send(());
        }
    }

    fn apply_control(&mut self, c: Option<GroupControl>) -> Step<()> {
        if let Some(sub) = control_step(c)? {
            self.subscription = sub;
            self.need_join = true;
        }
        Ok(())
    }

    /// One round: make sure of a coordinator, join if needed, then heartbeat once.
    async fn step(&mut self) -> Step<()> {
        while let Ok(c) = self.control.try_recv() {
            self.apply_control(Some(c))?;
        }
        if self.coordinator.as_ref().is_none_or(|(_, c)| c.is_closed()) {
            if let Err(e) = self.find_coordinator().await {
                debug!(error = %e, "coordinator lookup failed");
                self.pause(self.cfg.retry_backoff).await?;
                return Ok(());
            }
        }
        if self.shared.since_poll() > self.cfg.rebalance_timeout && self.generation >= 0 {
            self.poll_timeout_expired().await?;
            return Ok(());
        }
        if self.resolve_topics().await {
            self.need_join = true;
        }
        if self.need_join {
            self.join().await?;
            return Ok(());
        }
        // Steady state: the next heartbeat, unless told something first.
        let wait = self.cfg.heartbeat_interval;
        let poll_left = self.cfg.rebalance_timeout.saturating_sub(self.shared.since_poll());
        tokio::select! {
            c = self.control.recv() => return self.apply_control(c),
            _ = tokio::time::sleep(wait.min(poll_left + Duration::from_millis(1))) => {}
        }
        if self.shared.since_poll() > self.cfg.rebalance_timeout {
            return Ok(());
        }
        self.heartbeat_once().await
    }

    async fn pause(&mut self, d: Duration) -> Step<()> {
        tokio::select! {
            c = self.control.recv() => self.apply_control(c),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    async fn find_coordinator(&mut self) -> Result<()> {
        let node =
            crate::lookup::find_coordinator(&self.client, &self.cfg.group_id, crate::lookup::CoordinatorType::Group)
                .await?;
        // JoinGroup is held until every member joined, up to the rebalance timeout.
        let timeout = self.cfg.rebalance_timeout + Duration::from_secs(5);
        let conn = self.client.dedicated_connection(node, timeout).await?;
        debug!(node, "group coordinator found");
        self.coordinator = Some((node, conn));
        Ok(())
    }

    fn coordinator_lost(&mut self, why: &str) {
        if let Some((node, c)) = self.coordinator.take() {
            debug!(node, why, "group coordinator lost");
            c.close(why);
        }
    }

    /// Resolves the subscription to topic names; true when the set changed (or, for the
    /// leader, when a subscribed topic's partition count changed).
    async fn resolve_topics(&mut self) -> bool {
        let md = if matches!(self.subscription, Subscription::Pattern(_)) {
            if self.topics.is_empty() || self.client_metadata_stale() {
                self.client.refresh_metadata(None).await.ok()
            } else {
                Some(self.client.metadata())
            }
        } else {
            None
        };
        let topics: BTreeSet<String> = match &self.subscription {
            Subscription::Topics(t) => t.clone(),
            Subscription::Pattern(re) => match &md {
                Some(md) => md
                    .topics
                    .values()
                    .filter(|t| !t.is_internal && re.is_match(&t.name))
                    .map(|t| t.name.clone())
                    .collect(),
                None => self.topics.clone(),
            },
            Subscription::None | Subscription::Assigned => BTreeSet::new(),
        };
        let changed = topics != self.topics;
        if changed {
            info!(?topics, "subscription");
            self.topics = topics;
        }
        let counts_changed = match self.leader_view.clone() {
            Some(view) if self.client_metadata_stale() => {
                let names: Vec<&str> = view.keys().map(String::as_str).collect();
                match self.client.refresh_metadata(Some(&names)).await {
                    Ok(md) => view
                        .iter()
                        .any(|(t, n)| md.topic(t).map_or(0, |i| i.partitions.len() as i32) != *n),
                    Err(_) => false,
                }
            }
            _ => false,
        };
        if counts_changed {
            info!("partition count of a subscribed topic changed: rebalancing");
        }
        changed || counts_changed
    }

    /// True at most once per `metadata.max.age.ms`: time to look at metadata again.
    fn client_metadata_stale(&mut self) -> bool {
        let stale = self
            .last_metadata_check
            .is_none_or(|t| t.elapsed() >= self.cfg.metadata_max_age);
        if stale {
            self.last_metadata_check = Some(Instant::now());
        }
        stale
    }

    fn identity(&self) -> (String, Option<String>) {
        (self.member_id.clone(), self.cfg.instance_id.clone())
    }

    /// Sends an event and waits for the consumer to apply it, heartbeating meanwhile.
    async fn hand_over(&mut self, make: impl FnOnce(oneshot::Sender<()>) -> GroupEvent) -> Step<()> {
        let (tx, mut rx) = oneshot::channel();
        if self.events.send(make(tx)).is_err() {
            return Err(Interrupt::Leave(None));
        }
        let mut next_hb = tokio::time::Instant::now() + self.cfg.heartbeat_interval;
        loop {
            tokio::select! {
                r = &mut rx => {
                    return match r {
                        Ok(()) => Ok(()),
                        Err(_) => Err(Interrupt::Leave(None)),
                    };
                }
                c = self.control.recv() => {
                    if let Some(GroupControl::Subscribe(sub)) = c {
                        self.subscription = sub;
                        self.need_join = true;
                    } else {
                        return self.apply_control(c);
                    }
                }
                _ = tokio::time::sleep_until(next_hb) => {
                    next_hb = tokio::time::Instant::now() + self.cfg.heartbeat_interval;
                    if self.generation >= 0 {
                        // The outcome matters only for the session; errors are handled after.
                        if let Err(e) = self.send_heartbeat().await {
                            debug!(error = %e, "heartbeat while waiting for the application");
                        }
                    }
                }
            }
        }
    }

    async fn poll_timeout_expired(&mut self) -> Step<()> {
        warn!(
            max_poll_interval_ms = self.cfg.rebalance_timeout.as_millis() as u64,
            "the application did not poll within max.poll.interval.ms: leaving the group"
        );
        self.leave_group("consumer poll timeout has expired").await;
        // Rejoin only once the application polls again; its partitions are gone.
        tokio::select! {
            c = self.control.recv() => self.apply_control(c)?,
            _ = self.shared.next_poll() => {}
        }
        let lost: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
        if !lost.is_empty() {
            self.hand_over(|tx| GroupEvent::Lost(lost, tx)).await?;
        }
        self.need_join = true;
        Ok(())
    }

    async fn lose_all(&mut self) -> Step<()> {
        self.generation = -1;
        self.shared.set_identity(-1, &self.member_id);
        let lost: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
        if !lost.is_empty() {
            self.hand_over(|tx| GroupEvent::Lost(lost, tx)).await?;
        }
        self.need_join = true;
        Ok(())
    }

    fn fatal(&mut self, e: Error) {
        warn!(error = %e, "group membership failed");
        let _ = self.events.send(GroupEvent::Fatal(e));
    }

    async fn send_heartbeat(&mut self) -> Result<ErrorCode> {
        let Some((_, conn)) = &self.coordinator else {
            return Err(Error::kafka(ErrorCode::CoordinatorNotAvailable));
        };
        let (member_id, instance) = self.identity();
        let req = HeartbeatRequest::default()
            .with_group_id(GroupId(s(&self.cfg.group_id)))
            .with_generation_id(self.generation)
            .with_member_id(s(&member_id))
            .with_group_instance_id(instance.as_deref().map(s));
        self.instruments.heartbeat_sent();
        let sent = Instant::now();
        let resp = conn.send(&req).await?;
        self.instruments.heartbeat_answered(sent.elapsed());
        let code = ErrorCode::from(resp.error_code);
        if code.is_ok() || code == ErrorCode::RebalanceInProgress {
            self.last_heartbeat_ok = Instant::now();
        }
        Ok(code)
    }

    async fn heartbeat_once(&mut self) -> Step<()> {
        match self.send_heartbeat().await {
            Ok(ErrorCode::None) => Ok(()),
            Ok(ErrorCode::RebalanceInProgress) => {
                info!("group is rebalancing");
                self.need_join = true;
                Ok(())
            }
            Ok(code @ (ErrorCode::IllegalGeneration | ErrorCode::UnknownMemberId)) => {
                info!(error = %code, "heartbeat: no longer in the group generation");
                if code == ErrorCode::UnknownMemberId {
                    self.member_id.clear();
                }
                self.lose_all().await
            }
            Ok(ErrorCode::FencedInstanceId) => {
                self.fatal(Error::kafka(ErrorCode::FencedInstanceId).with_context(format!(
                    "group.instance.id {:?} is used by another consumer",
                    self.cfg.instance_id.as_deref().unwrap_or("")
                )));
                self.lose_all().await?;
                Err(Interrupt::Leave(None))
            }
            Ok(
                code @ (ErrorCode::NotCoordinator
                | ErrorCode::CoordinatorNotAvailable
                | ErrorCode::CoordinatorLoadInProgress),
            ) => {
                self.coordinator_lost(code.name());
                Ok(())
            }
            Ok(code) => {
                warn!(error = %code, "heartbeat failed");
                self.pause(self.cfg.retry_backoff).await
            }
            Err(e) => {
                debug!(error = %e, "heartbeat failed");
                self.coordinator_lost("heartbeat failed");
                if self.last_heartbeat_ok.elapsed() > self.cfg.session_timeout && self.generation >= 0 {
                    // The coordinator has given our partitions away by now.
                    self.lose_all().await?;
                }
                Ok(())
            }
        }
    }

    fn subscription_bytes(&self, a: &dyn Assignor) -> Result<bytes::Bytes> {
        let owned: Vec<_> = self.owned.iter().cloned().collect();
        assignor::Subscription {
            topics: self.topics.iter().cloned().collect(),
            user_data: a.subscription_user_data(&owned, self.generation),
            owned_partitions: owned,
            generation_id: self.generation,
            rack_id: self.cfg.rack.clone(),
        }
        .encode(assignor::CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| Error::config(format!("group subscription: {e}")))
    }

    /// JoinGroup + SyncGroup until this member has an assignment in a generation.
    async fn join(&mut self) -> Step<()> {
        // Java's onJoinPrepare: eager protocols give up everything before joining;
        // cooperative only what is no longer subscribed.
        let revoke: Vec<TopicPartition> = if self.cooperative {
            self.owned
                .iter()
                .filter(|tp| !self.topics.contains(&*tp.topic))
                .cloned()
                .collect()
        } else {
            self.owned.iter().cloned().collect()
        };
        if !revoke.is_empty() {
            for tp in &revoke {
                self.owned.remove(tp);
            }
            info!(partitions = revoke.len(), "revoking before join");
            self.hand_over(|tx| GroupEvent::Revoke(revoke, tx)).await?;
        }
        if self.topics.is_empty() {
            // Nothing matches (yet): stay out of the group until something does.
            if self.generation >= 0 {
                self.leave_group("no subscribed topic exists").await;
                self.generation = -1;
            }
            self.need_join = false;
            return self.pause(self.cfg.metadata_max_age.min(Duration::from_secs(5))).await;
        }
        let Some((_, conn)) = self.coordinator.clone() else {
            return Ok(());
        };
        let mut protocols: Vec<JoinGroupRequestProtocol> = Vec::new();
        for a in &self.assignors {
            match self.subscription_bytes(a.as_ref()) {
                Ok(m) => protocols.push(
                    JoinGroupRequestProtocol::default()
                        .with_name(s(a.name()))
                        .with_metadata(m),
                ),
                Err(e) => {
                    self.fatal(e);
                    return Err(Interrupt::Leave(None));
                }
            }
        }
        let (member_id, instance) = self.identity();
        let req = JoinGroupRequest::default()
            .with_group_id(GroupId(s(&self.cfg.group_id)))
            .with_session_timeout_ms(ms(self.cfg.session_timeout))
            .with_rebalance_timeout_ms(ms(self.cfg.rebalance_timeout))
            .with_member_id(s(&member_id))
            .with_group_instance_id(instance.as_deref().map(s))
            .with_protocol_type(s("consumer"))
            .with_protocols(protocols)
            .with_reason(Some(s("rebalance")));
        self.instruments.rebalance_started(Instant::now());
        let join = tokio::select! {
            r = conn.send(&req) => r,
            c = self.control.recv() => return self.apply_control(c),
        };
        let resp = match join {
            Ok(r) => r,
            Err(e) => {
                self.instruments.rebalance_failed();
                debug!(error = %e, "JoinGroup failed");
                self.coordinator_lost("JoinGroup failed");
                return self.pause(self.cfg.retry_backoff).await;
            }
        };
        let code = ErrorCode::from(resp.error_code);
        if !matches!(code, ErrorCode::None | ErrorCode::MemberIdRequired) {
            // MEMBER_ID_REQUIRED is a step of the protocol (KIP-394), not a failure.
            self.instruments.rebalance_failed();
        }
        match code {
            ErrorCode::None => {}
            ErrorCode::MemberIdRequired => {
                // KIP-394: join again with the id the coordinator gave us.
                self.member_id = resp.member_id.to_string();
                return Ok(());
            }
            ErrorCode::UnknownMemberId => {
                self.member_id.clear();
                self.generation = -1;
                return Ok(());
            }
            ErrorCode::IllegalGeneration => {
                self.generation = -1;
                return Ok(());
            }
            ErrorCode::RebalanceInProgress => return self.pause(self.cfg.retry_backoff).await,
            c @ (ErrorCode::NotCoordinator
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::CoordinatorLoadInProgress) => {
                self.coordinator_lost(c.name());
                return self.pause(self.cfg.retry_backoff).await;
            }
            c => {
                self.fatal(Error::kafka(c).with_context(format!("joining group {}", self.cfg.group_id)));
                return Err(Interrupt::Leave(None));
            }
        }
        self.member_id = resp.member_id.to_string();
        let generation = resp.generation_id;
        let protocol = resp.protocol_name.as_ref().map(|p| p.to_string()).unwrap_or_default();
        let leader = resp.leader.as_str() == resp.member_id.as_str();
        info!(generation, member_id = %self.member_id, leader, %protocol, "joined group");
        let assignments = if leader && !resp.skip_assignment {
            match self.assign_as_leader(&protocol, &resp.members).await {
                Ok(a) => a,
                Err(e) => {
                    self.fatal(e.with_context("computing the group assignment as leader"));
                    return Err(Interrupt::Leave(None));
                }
            }
        } else {
            Vec::new()
        };
        let sync = SyncGroupRequest::default()
            .with_group_id(GroupId(s(&self.cfg.group_id)))
            .with_generation_id(generation)
            .with_member_id(s(&self.member_id))
            .with_group_instance_id(instance.as_deref().map(s))
            .with_protocol_type(Some(s("consumer")))
            .with_protocol_name(Some(s(&protocol)))
            .with_assignments(assignments);
        let resp = tokio::select! {
            r = conn.send(&sync) => r,
            c = self.control.recv() => return self.apply_control(c),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => {
                self.instruments.rebalance_failed();
                debug!(error = %e, "SyncGroup failed");
                self.coordinator_lost("SyncGroup failed");
                return self.pause(self.cfg.retry_backoff).await;
            }
        };
        let code = ErrorCode::from(resp.error_code);
        if code != ErrorCode::None {
            self.instruments.rebalance_failed();
        }
        match code {
            ErrorCode::None => {}
            ErrorCode::RebalanceInProgress => return Ok(()),
            c @ (ErrorCode::UnknownMemberId | ErrorCode::IllegalGeneration) => {
                if c == ErrorCode::UnknownMemberId {
                    self.member_id.clear();
                }
                self.generation = -1;
                return Ok(());
            }
            c @ (ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable) => {
                self.coordinator_lost(c.name());
                return Ok(());
            }
            c => {
                self.fatal(Error::kafka(c).with_context(format!("syncing group {}", self.cfg.group_id)));
                return Err(Interrupt::Leave(None));
            }
        }
        let assignment = match Assignment::decode(resp.assignment.clone()) {
            Ok(a) => a,
            Err(e) => {
                self.instruments.rebalance_failed();
                self.fatal(Error::protocol(format!(
                    "undecodable assignment from the group leader: {e}"
                )));
                return Err(Interrupt::Leave(None));
            }
        };
        self.generation = generation;
        self.shared.set_identity(generation, &self.member_id);
        self.last_heartbeat_ok = Instant::now();
        self.need_join = false;
        self.instruments.rebalance_succeeded(Instant::now());
        let new: BTreeSet<TopicPartition> = assignment.partitions.into_iter().collect();
        let added: Vec<TopicPartition> = new.difference(&self.owned).cloned().collect();
        let revoked: Vec<TopicPartition> = self.owned.difference(&new).cloned().collect();
        info!(
            generation,
            assigned = new.len(),
            added = added.len(),
            revoked = revoked.len(),
            "assignment received"
        );
        if !revoked.is_empty() {
            for tp in &revoked {
                self.owned.remove(tp);
            }
            self.hand_over(|tx| GroupEvent::Revoke(revoked, tx)).await?;
            // KIP-429: rejoin so the revoked partitions can go to their new owners.
            self.need_join = true;
        }
        self.owned.extend(added.iter().cloned());
        self.hand_over(|tx| GroupEvent::Assign(added, tx)).await?;
        Ok(())
    }

    async fn assign_as_leader(
        &mut self,
        protocol: &str,
        members: &[strom_protocol::messages::join_group_response::JoinGroupResponseMember],
    ) -> Result<Vec<SyncGroupRequestAssignment>> {
        let Some(a) = self.assignors.iter().find(|a| a.name() == protocol) else {
            return Err(Error::protocol(format!(
                "the group chose assignor {protocol:?}, which is not configured"
            )));
        };
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
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        let md = self.client.refresh_metadata(Some(&names)).await?;
        let counts: BTreeMap<String, i32> = topics
            .iter()
            .filter_map(|t| md.topic(t).map(|i| (t.clone(), i.partitions.len() as i32)))
            .collect();
        let result = a
            .assign(&counts, &subs)
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
            .collect::<Result<Vec<_>>>()
    }

    async fn leave_group(&mut self, reason: &str) {
        // Static members stay: their partitions wait for them until session.timeout.ms.
        if self.cfg.instance_id.is_some() || self.member_id.is_empty() {
            return;
        }
        let Some((_, conn)) = self.coordinator.clone() else {
            return;
        };
        let v = conn.versions().version(ApiKey::LeaveGroup).unwrap_or(0);
        let req = if v >= 3 {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&self.cfg.group_id)))
                .with_members(vec![MemberIdentity::default()
                    .with_member_id(s(&self.member_id))
                    .with_reason(Some(s(reason)))])
        } else {
            LeaveGroupRequest::default()
                .with_group_id(GroupId(s(&self.cfg.group_id)))
                .with_member_id(s(&self.member_id))
        };
        match tokio::time::timeout(Duration::from_secs(5), conn.send(&req)).await {
            Ok(Ok(r)) => info!(error = %ErrorCode::from(r.error_code), reason, "left the group"),
            Ok(Err(e)) => debug!(error = %e, "LeaveGroup failed"),
            Err(_) => debug!("LeaveGroup timed out"),
        }
        // The shared identity keeps the old generation: a commit attempted now is refused by
        // the coordinator (fenced), as Java's CommitFailedException after leaving.
        self.member_id.clear();
        self.generation = -1;
    }
}

pub(crate) fn ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}
