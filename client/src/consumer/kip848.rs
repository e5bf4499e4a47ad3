//! Group membership, KIP-848 protocol (`group.protocol=consumer`), in a background task.
//!
//! One request does everything: ConsumerGroupHeartbeat carries the member's subscription
//! and owned partitions; the coordinator computes the assignment (server side, by topic id)
//! and answers with the member's target assignment and epoch. The member reconciles:
//! partitions leaving are revoked first (the consumer commits and runs the listener in its
//! next poll), the new ones added, and the next heartbeat reports what it owns, which is how
//! the coordinator knows it may hand revoked partitions to others. No group-wide barrier,
//! no JoinGroup/SyncGroup.
//!
//! The member id is generated here (a UUID, as Kafka 4 requires); a fenced or unknown member
//! drops its partitions (lost, no commit) and rejoins with epoch 0.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use strom_protocol::messages::consumer_group_heartbeat_request::TopicPartitions;
use strom_protocol::messages::{ApiKey, ConsumerGroupHeartbeatRequest, GroupId, TopicName};
use strom_protocol::ErrorCode;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, info_span, warn, Instrument};
use uuid::Uuid;

use super::group::{control_step, ms, GroupControl, GroupEvent, GroupHandle, Interrupt, MemberConfig, Step};
use super::member::GroupShared;
use super::state::Subscription;
use crate::admin::s;
use crate::client::Client;
use crate::connection::Connection;
use crate::error::{Error, Result};
use crate::metrics::CoordinatorInstruments;
use crate::role_config::ConsumerConfig;
use crate::topic_partition::TopicPartition;

/// Epoch to leave with: -1 (dynamic member) or -2 (static member, keeps its assignment
/// until session.timeout.ms).
const LEAVE_EPOCH: i32 = -1;
const STATIC_LEAVE_EPOCH: i32 = -2;

/// Starts the KIP-848 membership task.
pub(crate) fn spawn(
    client: Client,
    config: &ConsumerConfig,
    group_id: String,
    sub: Subscription,
) -> Result<GroupHandle> {
    let cfg = MemberConfig::from_consumer(config, group_id);
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let shared = Arc::new(GroupShared::new(cfg.instance_id.clone()));
    // A root span: the member task outlives the call that started it (see connection.rs).
    let span = info_span!(parent: None, "group", group = %cfg.group_id, protocol = "consumer");
    let instruments = CoordinatorInstruments::new(client.metric_registry());
    let member = Member {
        instruments,
        client,
        heartbeat_interval: cfg.heartbeat_interval,
        cfg,
        shared: shared.clone(),
        events: events_tx,
        control: control_rx,
        subscription: sub,
        topics: BTreeSet::new(),
        member_id: Uuid::new_v4().simple().to_string(),
        epoch: 0,
        owned: BTreeSet::new(),
        pending: None,
        coordinator: None,
        last_ok: Instant::now(),
        last_metadata_check: None,
    };
    let task = tokio::spawn(member.run().instrument(span));
    Ok(GroupHandle::new(events_rx, control_tx, shared, task))
}

struct Member {
    /// Rebalances and heartbeats (`consumer-coordinator-metrics`).
    instruments: CoordinatorInstruments,
    client: Client,
    cfg: MemberConfig,
    heartbeat_interval: Duration,
    shared: Arc<GroupShared>,
    events: mpsc::UnboundedSender<GroupEvent>,
    control: mpsc::UnboundedReceiver<GroupControl>,
    subscription: Subscription,
    topics: BTreeSet<String>,
    member_id: String,
    epoch: i32,
    owned: BTreeSet<TopicPartition>,
    /// A target assignment not reconciled yet (topic ids metadata does not know yet).
    pending: Option<Vec<(Uuid, Vec<i32>)>>,
    coordinator: Option<Connection>,
    last_ok: Instant,
    last_metadata_check: Option<Instant>,
}

impl Member {
    async fn run(mut self) {
        let reply = loop {
            if let Err(Interrupt::Leave(r)) = self.step().await {
                break r;
            }
        };
        self.leave("the consumer is closing").await;
        if let Some(r) = reply {
            let _ = r.send(());
        }
    }

    fn apply_control(&mut self, c: Option<GroupControl>) -> Step<()> {
        if let Some(sub) = control_step(c)? {
            self.subscription = sub;
        }
        Ok(())
    }

    async fn pause(&mut self, d: Duration) -> Step<()> {
        tokio::select! {
            c = self.control.recv() => self.apply_control(c),
            _ = tokio::time::sleep(d) => Ok(()),
        }
    }

    async fn step(&mut self) -> Step<()> {
        while let Ok(c) = self.control.try_recv() {
            self.apply_control(Some(c))?;
        }
        if self.coordinator.as_ref().is_none_or(Connection::is_closed) {
            match crate::lookup::find_coordinator(
                &self.client,
                &self.cfg.group_id,
                crate::lookup::CoordinatorType::Group,
            )
            .await
            {
                Ok(node) => match self.client.coordinator_connection(node).await {
                    Ok(c) => self.coordinator = Some(c),
                    Err(e) => {
                        debug!(error = %e, "coordinator unreachable");
                        return self.pause(self.cfg.retry_backoff).await;
                    }
                },
                Err(e) => {
                    debug!(error = %e, "coordinator lookup failed");
                    return self.pause(self.cfg.retry_backoff).await;
                }
            }
        }
        if self.epoch > 0 && self.shared.since_poll() > self.cfg.rebalance_timeout {
            return self.poll_timeout_expired().await;
        }
        self.resolve_topics().await;
        self.heartbeat().await?;
        if self.pending.is_some() && self.reconcile().await? {
            // Acknowledge at once: the coordinator waits for revocations before moving
            // partitions to other members.
            return Ok(());
        }
        let poll_left = self.cfg.rebalance_timeout.saturating_sub(self.shared.since_poll());
        let wait = self.heartbeat_interval.min(poll_left + Duration::from_millis(1));
        self.pause(wait).await
    }

    async fn resolve_topics(&mut self) {
        let topics: BTreeSet<String> = match &self.subscription {
            Subscription::Topics(t) => t.clone(),
            Subscription::Pattern(re) => {
                let re = re.clone();
                let stale = self
                    .last_metadata_check
                    .is_none_or(|t| t.elapsed() >= self.cfg.metadata_max_age);
                let md = if stale {
                    self.last_metadata_check = Some(Instant::now());
                    self.client.refresh_metadata(None).await.ok()
                } else {
                    None
                };
                match md {
                    Some(md) => md
                        .topics
                        .values()
                        .filter(|t| !t.is_internal && re.is_match(&t.name))
                        .map(|t| t.name.clone())
                        .collect(),
                    None => self.topics.clone(),
                }
            }
            Subscription::None | Subscription::Assigned => BTreeSet::new(),
        };
        if topics != self.topics {
            info!(?topics, "subscription");
            self.topics = topics;
        }
    }

    fn request(&self, epoch: i32) -> Result<ConsumerGroupHeartbeatRequest> {
        let md = self.client.metadata();
        let mut owned: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for tp in &self.owned {
            let id = md.topic(&tp.topic).map(|t| t.topic_id).ok_or_else(|| {
                Error::kafka(strom_protocol::ErrorCode::UnknownTopicId)
                    .with_context(format!("no topic id known for {}", tp.topic))
                    .with_topic(&tp.topic)
            })?;
            owned.entry(id).or_default().push(tp.partition);
        }
        Ok(ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(&self.cfg.group_id)))
            .with_member_id(s(&self.member_id))
            .with_member_epoch(epoch)
            .with_instance_id(self.cfg.instance_id.as_deref().map(s))
            .with_rack_id(self.cfg.rack.as_deref().map(s))
            .with_rebalance_timeout_ms(ms(self.cfg.rebalance_timeout))
            .with_subscribed_topic_names(Some(self.topics.iter().map(|t| TopicName(s(t))).collect()))
            .with_topic_partitions(Some(
                owned
                    .into_iter()
                    .map(|(id, partitions)| TopicPartitions::default().with_topic_id(id).with_partitions(partitions))
                    .collect(),
            )))
    }

    /// The group fails: the consumer's next call returns `e`.
    fn fail(&mut self, e: Error) -> Step<()> {
        warn!(error = %e, "group membership failed");
        let _ = self.events.send(GroupEvent::Fatal(e));
        Err(Interrupt::Leave(None))
    }

    /// A cluster without the KIP-848 group coordinator: brokers before 3.7 lack the API,
    /// 3.7 to 3.9 list it but answer UNSUPPORTED_VERSION unless the preview is enabled, and
    /// 4.x can run with `group.version=0`. Retrying cannot help; the setting must change.
    fn unsupported(&self, cause: Error) -> Error {
        Error::config(format!(
            "group {}: this cluster does not support group.protocol=consumer (KIP-848, Kafka 4.0+ with the \
             new group coordinator); set group.protocol=classic",
            self.cfg.group_id
        ))
        .with_cause(cause)
    }

    async fn heartbeat(&mut self) -> Step<()> {
        let Some(conn) = self.coordinator.clone() else {
            return Ok(());
        };
        if conn.versions().broker_range(ApiKey::ConsumerGroupHeartbeat).is_none() {
            let e = self.unsupported(
                Error::kafka(ErrorCode::UnsupportedVersion)
                    .with_context(format!("broker {} has no ConsumerGroupHeartbeat API", conn.addr())),
            );
            return self.fail(e);
        }
        let req = match self.request(self.epoch) {
            Ok(r) => r,
            Err(e) => {
                debug!(error = %e, "refreshing metadata for owned topics");
                let names: Vec<String> = self.owned.iter().map(|tp| tp.topic.to_string()).collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                let _ = self.client.refresh_metadata(Some(&names)).await;
                return Ok(());
            }
        };
        self.instruments.heartbeat_sent();
        let sent = Instant::now();
        let resp = match conn.send(&req).await {
            Ok(r) => {
                self.instruments.heartbeat_answered(sent.elapsed());
                r
            }
            Err(e) => {
                debug!(error = %e, "heartbeat failed");
                self.coordinator = None;
                if self.epoch > 0 && self.last_ok.elapsed() > self.cfg.session_timeout {
                    self.lose_all().await?;
                }
                return self.pause(self.cfg.retry_backoff).await;
            }
        };
        let code = ErrorCode::from(resp.error_code);
        match code {
            ErrorCode::None => {}
            ErrorCode::FencedMemberEpoch | ErrorCode::UnknownMemberId => {
                info!(error = %code, epoch = self.epoch, "fenced: rejoining with epoch 0");
                self.instruments.rebalance_failed();
                return self.lose_all().await;
            }
            ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable | ErrorCode::CoordinatorLoadInProgress => {
                self.coordinator = None;
                return self.pause(self.cfg.retry_backoff).await;
            }
            c if c.is_retriable() => return self.pause(self.cfg.retry_backoff).await,
            c => {
                let msg = resp.error_message.as_ref().map(|m| m.to_string()).unwrap_or_default();
                let e = Error::kafka(c).with_context(format!(
                    "ConsumerGroupHeartbeat for group {} (group.protocol=consumer){}{msg}",
                    self.cfg.group_id,
                    if msg.is_empty() { "" } else { ": " }
                ));
                let e = if c == ErrorCode::UnsupportedVersion {
                    self.unsupported(e)
                } else {
                    e
                };
                return self.fail(e);
            }
        }
        self.last_ok = Instant::now();
        if let Some(id) = resp.member_id.as_ref().filter(|m| !m.is_empty()) {
            self.member_id = id.to_string();
        }
        if resp.member_epoch != self.epoch {
            debug!(from = self.epoch, to = resp.member_epoch, "member epoch");
        }
        self.epoch = resp.member_epoch;
        self.shared.set_identity(self.epoch, &self.member_id);
        if resp.heartbeat_interval_ms > 0 {
            self.heartbeat_interval = Duration::from_millis(resp.heartbeat_interval_ms as u64);
        }
        if let Some(a) = resp.assignment {
            self.pending = Some(
                a.topic_partitions
                    .into_iter()
                    .map(|t| (t.topic_id, t.partitions))
                    .collect(),
            );
        }
        Ok(())
    }

    /// Applies the target assignment: revoke what leaves, add what comes. True when owned
    /// partitions changed (the coordinator must hear of it at once).
    async fn reconcile(&mut self) -> Step<bool> {
        let Some(target) = self.pending.clone() else {
            return Ok(false);
        };
        // A new target assignment is a rebalance of this member (Java: RECONCILING), from
        // the first time it is seen until it is applied.
        self.instruments.rebalance_started(Instant::now());
        let mut md = self.client.metadata();
        let known = |md: &crate::client::ClusterMetadata, id: &Uuid| md.topics.values().any(|t| t.topic_id == *id);
        if target.iter().any(|(id, _)| !known(&md, id)) {
            match self.client.refresh_metadata(None).await {
                Ok(m) => md = m,
                Err(e) => {
                    debug!(error = %e, "metadata for the assignment");
                    return Ok(false);
                }
            }
            if target.iter().any(|(id, _)| !known(&md, id)) {
                debug!("assignment names topics metadata does not know yet");
                return Ok(false);
            }
        }
        let mut new = BTreeSet::new();
        for (id, parts) in &target {
            if let Some(t) = md.topics.values().find(|t| t.topic_id == *id) {
                for p in parts {
                    new.insert(TopicPartition::new(&t.name, *p));
                }
            }
        }
        self.pending = None;
        let revoked: Vec<TopicPartition> = self.owned.difference(&new).cloned().collect();
        let added: Vec<TopicPartition> = new.difference(&self.owned).cloned().collect();
        if revoked.is_empty() && added.is_empty() {
            self.instruments.rebalance_succeeded(Instant::now());
            return Ok(false);
        }
        info!(
            epoch = self.epoch,
            added = added.len(),
            revoked = revoked.len(),
            "reconciling assignment"
        );
        if !revoked.is_empty() {
            // Still owned while the application commits them: heartbeats meanwhile must not
            // report them released (the coordinator would move on to a new epoch and fence
            // the commit). Released once the application is done, as Java's reconciliation.
            self.hand_over(|tx| GroupEvent::Revoke(revoked.clone(), tx)).await?;
            for tp in &revoked {
                self.owned.remove(tp);
            }
            self.shared.set_owned(&self.owned);
        }
        if !added.is_empty() {
            self.owned.extend(added.iter().cloned());
            self.shared.set_owned(&self.owned);
            self.hand_over(|tx| GroupEvent::Assign(added, tx)).await?;
        }
        self.instruments.rebalance_succeeded(Instant::now());
        Ok(true)
    }

    async fn hand_over(&mut self, make: impl FnOnce(oneshot::Sender<()>) -> GroupEvent) -> Step<()> {
        let (tx, mut rx) = oneshot::channel();
        if self.events.send(make(tx)).is_err() {
            return Err(Interrupt::Leave(None));
        }
        loop {
            tokio::select! {
                r = &mut rx => return r.map_err(|_| Interrupt::Leave(None)),
                c = self.control.recv() => self.apply_control(c)?,
                _ = tokio::time::sleep(self.heartbeat_interval) => {
                    // Keep the session alive while the application gets to it; a new
                    // target arriving meanwhile is reconciled after.
                    if self.epoch > 0 {
                        self.keepalive().await;
                    }
                }
            }
        }
    }

    /// A heartbeat that keeps the session alive while the application gets to a handed-over
    /// change; a new target it brings is reconciled after; a fence is seen again by the
    /// next regular heartbeat.
    async fn keepalive(&mut self) {
        let (Some(conn), Ok(req)) = (self.coordinator.clone(), self.request(self.epoch)) else {
            return;
        };
        self.instruments.heartbeat_sent();
        let sent = Instant::now();
        if let Ok(r) = conn.send(&req).await {
            self.instruments.heartbeat_answered(sent.elapsed());
            if r.error_code == 0 {
                self.last_ok = Instant::now();
                self.epoch = r.member_epoch;
                self.shared.set_identity(self.epoch, &self.member_id);
                // The coordinator sends a target once: keep it for the next reconcile.
                if let Some(a) = r.assignment {
                    self.pending = Some(
                        a.topic_partitions
                            .into_iter()
                            .map(|t| (t.topic_id, t.partitions))
                            .collect(),
                    );
                }
            }
        }
    }

    async fn lose_all(&mut self) -> Step<()> {
        self.epoch = 0;
        self.pending = None;
        self.shared.set_identity(0, &self.member_id);
        let lost: Vec<TopicPartition> = std::mem::take(&mut self.owned).into_iter().collect();
        self.shared.set_owned(&self.owned);
        if !lost.is_empty() {
            self.hand_over(|tx| GroupEvent::Lost(lost, tx)).await?;
        }
        Ok(())
    }

    async fn poll_timeout_expired(&mut self) -> Step<()> {
        warn!(
            max_poll_interval_ms = self.cfg.rebalance_timeout.as_millis() as u64,
            "the application did not poll within max.poll.interval.ms: leaving the group"
        );
        self.leave("consumer poll timeout has expired").await;
        tokio::select! {
            c = self.control.recv() => self.apply_control(c)?,
            _ = self.shared.next_poll() => {}
        }
        self.lose_all().await
    }

    async fn leave(&mut self, reason: &str) {
        if self.epoch <= 0 {
            return;
        }
        let Some(conn) = self.coordinator.clone() else {
            return;
        };
        let epoch = if self.cfg.instance_id.is_some() {
            STATIC_LEAVE_EPOCH
        } else {
            LEAVE_EPOCH
        };
        let Ok(req) = self.request(epoch) else {
            return;
        };
        match tokio::time::timeout(Duration::from_secs(5), conn.send(&req)).await {
            Ok(Ok(r)) => info!(error = %ErrorCode::from(r.error_code), reason, "left the group"),
            Ok(Err(e)) => debug!(error = %e, "leaving the group failed"),
            Err(_) => debug!("leaving the group timed out"),
        }
        // The shared identity keeps the old epoch: a commit attempted now is fenced.
        self.epoch = 0;
    }
}
