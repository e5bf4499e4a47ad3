//! Share groups (KIP-932, "queues for Kafka"): a [`ShareConsumer`] works through the
//! records of its subscribed topics together with the other members of its share group,
//! each record acquired by one member at a time and acknowledged on its own: accepted
//! (done), released (delivered again, its delivery count raised) or rejected (archived).
//! Records a member does not acknowledge in time (`group.share.record.lock.duration.ms`)
//! come back by themselves.
//!
//! Java's `KafkaShareConsumer` semantics and config names: `subscribe`, `poll`,
//! `share.acknowledgement.mode` implicit (everything a poll returned is accepted by the next
//! poll, commit or close) or explicit ([`ShareConsumer::acknowledge`] each record before the
//! next poll), `commit_sync` with per-partition results, and `close`, which sends what is
//! acknowledged and releases the rest. A record whose processing outlasts the acquisition
//! lock is kept with [`AcknowledgeType::Renew`] on each pass of the poll loop (KIP-1222), and
//! `share.acquire.mode=record_limit` fetches no more than `max.poll.records` at a time
//! (KIP-1206); both need Kafka 4.2 or later.
//!
//! ```no_run
//! # async fn demo() -> strom_client::Result<()> {
//! use std::time::Duration;
//! use strom_client::share::{AcknowledgeType, ShareConsumer, ShareConsumerConfig};
//!
//! let mut config = ShareConsumerConfig::new("127.0.0.1:9092", "workers");
//! config.set("share.acknowledgement.mode", "explicit")?;
//! let mut consumer = ShareConsumer::new(config).await?;
//! consumer.subscribe(&["jobs"]);
//! loop {
//!     for record in consumer.poll(Duration::from_secs(1)).await? {
//!         let kind = if record.value.is_some() { AcknowledgeType::Accept } else { AcknowledgeType::Reject };
//!         consumer.acknowledge(&record, kind)?;
//!     }
//! #   break;
//! }
//! consumer.close().await?;
//! # Ok(()) }
//! ```
//!
//! The state of sessions and acknowledgements is kept by sans-IO parts (`session.rs`,
//! `acks.rs`); this module does the I/O: a heartbeat task (`membership.rs`) and share
//! fetches to each partition's leader, started by `poll` in a task the consumer keeps
//! (`rounds.rs`) until a call handles their answers.

mod acks;
mod commit;
mod rounds;
use rounds::{need_v2, AckAnswers, AckRound, FetchRound};
mod config;
mod membership;
mod session;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Deref;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

use bytes::Bytes;
use strom_protocol::messages::share_fetch_request::{AcknowledgementBatch, FetchPartition, FetchTopic, ForgottenTopic};
use strom_protocol::messages::{ApiKey, GroupId, ShareFetchRequest};
use strom_protocol::record_batch::DecodeOptions;
use strom_protocol::ErrorCode;
use tokio::sync::{oneshot, watch};
use tracing::{debug, warn};
use uuid::Uuid;

pub use acks::AcknowledgeType;
use acks::{AckBatch, Acks, Tip};
pub use config::{AcknowledgementMode, ShareAcquireMode, ShareConsumerConfig};
use membership::{Heartbeat, Shared};
use session::ShareSession;

use crate::admin::s;
use crate::client::Client;
use crate::consumer::fetcher::CompletedFetch;
use crate::consumer::{ConsumerRecord, TopicPartition};
use crate::error::{Error, Result};

/// A record a share consumer delivered, with how many times it has been delivered (1 the
/// first time). Dereferences to its [`ConsumerRecord`].
#[derive(Debug, Clone)]
pub struct ShareRecord {
    /// The record.
    pub record: ConsumerRecord,
    /// Deliveries so far, this one included.
    pub delivery_count: i16,
}

impl Deref for ShareRecord {
    type Target = ConsumerRecord;

    fn deref(&self) -> &ConsumerRecord {
        &self.record
    }
}

/// The outcome of sending acknowledgements, per partition (Java's acknowledgement commit
/// callback): `Err` with INVALID_RECORD_STATE when a record's acquisition lock had expired,
/// for example.
pub type AcknowledgementCallback = Box<dyn FnMut(&TopicPartition, &Result<()>) + Send>;

/// A member of a share group. See the [module docs](self).
pub struct ShareConsumer {
    client: Client,
    config: ShareConsumerConfig,
    member_id: String,
    subscription: watch::Sender<BTreeSet<String>>,
    shared: Arc<Mutex<Shared>>,
    leave: Option<oneshot::Sender<oneshot::Sender<()>>>,
    task: Option<tokio::task::JoinHandle<()>>,
    sessions: BTreeMap<i32, ShareSession>,
    acks: Acks,
    /// The broker whose session delivered a partition's records: its acknowledgements go
    /// there.
    ack_node: BTreeMap<Tip, i32>,
    names: HashMap<Uuid, Arc<str>>,
    ids: HashMap<Arc<str>, Uuid>,
    opts: DecodeOptions,
    callback: Option<AcknowledgementCallback>,
    /// Acquired records beyond `max.poll.records` (the broker acquires whole batches),
    /// handed out by the next polls before anything is fetched.
    buffered: std::collections::VecDeque<ShareRecord>,
    /// When acknowledgements last left (on a fetch or on their own).
    acks_sent: Instant,
    /// A broker failed or named another leader: refresh metadata before the next round.
    stale_metadata: bool,
    /// Records acknowledged with `Renew`, by partition: handed out again once the broker
    /// confirms the renewal.
    renewing: BTreeMap<Tip, Vec<ShareRecord>>,
    /// The acquisition lock's duration, as the broker last said.
    lock_timeout: Option<Duration>,
    /// An acknowledgement round (of `commit_async`, or of a call that was dropped while it
    /// waited) whose answers are not collected yet.
    in_flight: Option<(AckRound, tokio::task::JoinHandle<AckAnswers>)>,
    /// The share fetches of a round whose answers are not handled yet: they run in a task of
    /// their own, so a `poll` dropped while waiting leaves them to the next call (the
    /// sessions' epochs, the acknowledgements they carry and the records they acquire are
    /// kept, not lost).
    fetching: Option<FetchRound>,
    closed: bool,
}

/// While records are served from the buffer, acknowledgements are sent on their own at
/// least this often.
const ACK_AT_LEAST_EVERY: Duration = Duration::from_secs(5);

impl std::fmt::Debug for ShareConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareConsumer")
            .field("group_id", &self.config.group_id)
            .field("member_id", &self.member_id)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

fn lock(shared: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ShareConsumer {
    /// Connects (bootstrap) and starts the member; it joins the group once subscribed.
    ///
    /// Cancellation-safe: dropping the call drops the connections made so far.
    pub async fn new(config: ShareConsumerConfig) -> Result<ShareConsumer> {
        if config.group_id.trim().is_empty() {
            return Err(Error::config(
                "group.id is empty: a share consumer needs its share group",
            ));
        }
        let client = Client::connect(config.client.clone()).await?;
        let member_id = Uuid::new_v4().to_string();
        let (subscription, sub_rx) = watch::channel(BTreeSet::new());
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (leave, leave_rx) = oneshot::channel();
        let task = tokio::spawn(
            Heartbeat {
                client: client.clone(),
                group_id: config.group_id.clone(),
                member_id: member_id.clone(),
                rack: config.client_rack.clone(),
                subscription: sub_rx,
                shared: shared.clone(),
                leave: leave_rx,
                retry_backoff: config.client.retry_backoff,
            }
            .run(),
        );
        let opts = DecodeOptions {
            check_crcs: config.check_crcs,
            ..DecodeOptions::default()
        };
        Ok(ShareConsumer {
            client,
            config,
            member_id,
            subscription,
            shared,
            leave: Some(leave),
            task: Some(task),
            sessions: BTreeMap::new(),
            acks: Acks::default(),
            ack_node: BTreeMap::new(),
            names: HashMap::new(),
            ids: HashMap::new(),
            opts,
            callback: None,
            buffered: std::collections::VecDeque::new(),
            acks_sent: Instant::now(),
            stale_metadata: false,
            renewing: BTreeMap::new(),
            lock_timeout: None,
            in_flight: None,
            fetching: None,
            closed: false,
        })
    }

    /// The member id this consumer joined with (a UUID it chose, as KIP-1082 has it).
    pub fn member_id(&self) -> &str {
        &self.member_id
    }

    /// Subscribes to these topics (replacing the subscription); the broker assigns
    /// partitions to the members.
    pub fn subscribe(&mut self, topics: &[&str]) {
        let topics: BTreeSet<String> = topics.iter().map(|t| (*t).to_owned()).collect();
        self.subscription.send_replace(topics);
    }

    /// Drops the subscription.
    pub fn unsubscribe(&mut self) {
        self.subscription.send_replace(BTreeSet::new());
    }

    /// The partitions assigned to this member now.
    pub fn assignment(&self) -> BTreeSet<TopicPartition> {
        let shared = lock(&self.shared);
        shared
            .assignment
            .iter()
            .filter_map(|(id, ps)| self.names.get(id).map(|n| (n, ps)))
            .flat_map(|(n, ps)| ps.iter().map(move |p| TopicPartition::new(n, *p)))
            .collect()
    }

    /// Called with the outcome of every acknowledgement sent by `poll` (piggybacked on its
    /// fetches), by `commit_async` and by `close`; `commit_sync` returns its outcomes instead.
    pub fn set_acknowledgement_commit_callback(&mut self, callback: AcknowledgementCallback) {
        self.callback = Some(callback);
    }

    /// How long the broker locks the records it hands to this member
    /// (`group.share.record.lock.duration.ms`), once a share fetch has said so.
    pub fn acquisition_lock_timeout(&self) -> Option<Duration> {
        self.lock_timeout
    }

    /// Acknowledges a record the last poll returned (explicit mode only: in implicit mode
    /// the next poll accepts everything). A record not delivered by the last poll, or
    /// already acknowledged, is an IllegalState error naming it.
    ///
    /// [`AcknowledgeType::Renew`] keeps a record that is still being processed: the next
    /// poll (or `commit_sync`) asks the broker to renew its acquisition lock, and once the
    /// broker confirms, that poll returns the record again, with the same delivery count, to
    /// be acknowledged again. A renewal the broker refuses (the lock had already expired:
    /// INVALID_RECORD_STATE) goes to the acknowledgement callback and the record is not
    /// returned. Java's pattern: renew on each pass of the poll loop, well inside
    /// [`acquisition_lock_timeout`](Self::acquisition_lock_timeout).
    pub fn acknowledge(&mut self, record: &ConsumerRecord, kind: AcknowledgeType) -> Result<()> {
        if self.config.acknowledgement_mode == AcknowledgementMode::Implicit {
            return Err(Error::illegal_state(
                "acknowledge needs share.acknowledgement.mode=explicit (implicit mode accepts what a poll returned on the next poll)",
            ));
        }
        let tip = self.ids.get(&record.topic).map(|id| (*id, record.partition));
        let count = tip.and_then(|tip| self.acks.acknowledge(tip, record.offset, kind));
        if let (Some(tip), Some(delivery_count), AcknowledgeType::Renew) = (tip, count, kind) {
            self.renewing.entry(tip).or_default().push(ShareRecord {
                record: record.clone(),
                delivery_count,
            });
        }
        if count.is_none() {
            return Err(Error::illegal_state(format!(
                "{}-{} offset {} was not delivered to this consumer by its last poll, or is acknowledged already",
                record.topic, record.partition, record.offset
            )));
        }
        Ok(())
    }

    /// Up to `max.poll.records` records, waiting up to `timeout` for some. In implicit mode
    /// the records of the previous poll are accepted first; in explicit mode they must all
    /// have been acknowledged (an IllegalState error otherwise).
    ///
    /// Cancellation-safe: a dropped call loses nothing. Share fetches it had sent stay in
    /// flight in the consumer; the next `poll` (or commit, or close) handles their answers:
    /// the records they acquired are handed out then, and the acknowledgements they carried
    /// are reported to the callback.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ShareRecord>> {
        self.check_open()?;
        self.settle_async().await;
        match self.config.acknowledgement_mode {
            AcknowledgementMode::Implicit => self.acks.acknowledge_all(AcknowledgeType::Accept),
            AcknowledgementMode::Explicit => {
                let n = self.acks.unacknowledged();
                if n > 0 {
                    return Err(Error::illegal_state(format!(
                        "{n} records of the last poll are not acknowledged: with share.acknowledgement.mode=explicit, \
                         acknowledge each record before polling again"
                    )));
                }
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(e) = lock(&self.shared).error.take() {
                return Err(e);
            }
            if self.acks.renewal_pending() {
                // Renewals go first, on their own: the renewed records are handed out again
                // by this poll.
                self.acknowledge_now().await?;
            }
            if !self.buffered.is_empty() {
                // The acknowledgements ride on the share fetch made once the buffer is
                // drained (a round trip per poll otherwise), unless the application works
                // through the buffer slowly: then they go on their own every few seconds,
                // well inside the acquisition lock (30 s by default), so that records done
                // are not handed to another member; `commit_sync` sends them at once.
                if self.acks.pending_partitions().next().is_some() && self.acks_sent.elapsed() >= ACK_AT_LEAST_EVERY {
                    self.acknowledge_now().await?;
                }
                return Ok(self.hand_out());
            }
            let records = self.fetch_once(deadline).await?;
            self.buffered.extend(records);
            if !self.buffered.is_empty() || Instant::now() >= deadline {
                return Ok(self.hand_out());
            }
        }
    }

    /// The records one by one as a `Stream` (implicit mode: the records of each poll are
    /// accepted when the stream polls for more, so a record counts as processed once the
    /// next one is asked for). Ends after the first error, which it yields. In explicit mode
    /// its only item is an IllegalState error: acknowledging needs the consumer, which the
    /// stream borrows (use `poll`).
    pub fn stream(&mut self) -> impl futures_util::Stream<Item = Result<ShareRecord>> + '_ {
        let state = (self, std::collections::VecDeque::<ShareRecord>::new(), false);
        futures_util::stream::unfold(state, |(c, mut pending, done)| async move {
            if done {
                return None;
            }
            if c.config.acknowledgement_mode == AcknowledgementMode::Explicit {
                let e = Error::illegal_state(
                    "ShareConsumer::stream needs share.acknowledgement.mode=implicit; use poll and acknowledge",
                );
                return Some((Err(e), (c, pending, true)));
            }
            loop {
                if let Some(r) = pending.pop_front() {
                    return Some((Ok(r), (c, pending, false)));
                }
                match c.poll(Duration::from_secs(1)).await {
                    Ok(records) => pending.extend(records),
                    Err(e) => return Some((Err(e), (c, pending, true))),
                }
            }
        })
    }

    /// Sends the waiting acknowledgements on their own, reporting each partition's outcome
    /// to the callback.
    async fn acknowledge_now(&mut self) -> Result<()> {
        let results = self.send_acknowledgements(false).await?;
        for (tp, outcome) in &results {
            if let Some(cb) = self.callback.as_mut() {
                cb(tp, outcome);
            }
        }
        Ok(())
    }

    /// Up to `max.poll.records` buffered records, now delivered to the application.
    fn hand_out(&mut self) -> Vec<ShareRecord> {
        let n = self.buffered.len().min(self.config.max_poll_records);
        let out: Vec<ShareRecord> = self.buffered.drain(..n).collect();
        for r in &out {
            if let Some(id) = self.ids.get(&r.topic) {
                self.acks.delivered((*id, r.partition), r.offset, r.delivery_count);
            }
        }
        out
    }

    fn check_open(&self) -> Result<()> {
        if self.closed {
            return Err(Error::closed("the share consumer is closed"));
        }
        Ok(())
    }

    /// Topic id -> name for the assigned topics, from metadata of the subscription.
    async fn resolve(&mut self, ids: &[Uuid]) {
        if ids.iter().all(|id| self.names.contains_key(id)) {
            return;
        }
        let topics: Vec<String> = self.subscription.borrow().iter().cloned().collect();
        let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
        match self.client.refresh_metadata(Some(&refs)).await {
            Ok(md) => {
                for t in md.topics.values() {
                    let name: Arc<str> = Arc::from(t.name.as_str());
                    self.names.insert(t.topic_id, name.clone());
                    self.ids.insert(name, t.topic_id);
                }
            }
            Err(e) => debug!(error = %e, "metadata for the share assignment"),
        }
    }

    /// One round of share fetches to every leader of an assigned partition (and to every
    /// broker owed acknowledgements), waiting at most until `deadline`.
    async fn fetch_once(&mut self, deadline: Instant) -> Result<Vec<ShareRecord>> {
        if self.fetching.is_some() {
            // A round a dropped poll left in flight: its answers first.
            return self.collect_fetch(Some(deadline)).await;
        }
        let assignment: Vec<(Uuid, Vec<i32>)> = lock(&self.shared)
            .assignment
            .iter()
            .map(|(id, ps)| (*id, ps.clone()))
            .collect();
        let ids: Vec<Uuid> = assignment.iter().map(|(id, _)| *id).collect();
        self.resolve(&ids).await;
        if std::mem::take(&mut self.stale_metadata) {
            let topics: Vec<String> = self.subscription.borrow().iter().cloned().collect();
            let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            if let Err(e) = self.client.refresh_metadata(Some(&refs)).await {
                debug!(error = %e, "metadata refresh for the share consumer");
                self.stale_metadata = true;
            }
        }
        // Partitions by leader.
        let md = self.client.metadata();
        let mut wanted: BTreeMap<i32, BTreeSet<Tip>> = BTreeMap::new();
        let mut leaderless = false;
        for (id, ps) in &assignment {
            let Some(info) = self.names.get(id).and_then(|n| md.topic(n)) else {
                leaderless = true;
                continue;
            };
            for p in ps {
                match info.partitions.iter().find(|x| x.partition == *p).map(|x| x.leader) {
                    Some(leader) if leader >= 0 => {
                        wanted.entry(leader).or_default().insert((*id, *p));
                    }
                    _ => leaderless = true,
                }
            }
        }
        if leaderless {
            let topics: Vec<String> = self.subscription.borrow().iter().cloned().collect();
            let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            let _ = self.client.refresh_metadata(Some(&refs)).await;
        }
        // Brokers owed acknowledgements, or holding partitions to forget, are asked too.
        let mut nodes: BTreeSet<i32> = wanted.keys().copied().collect();
        for tip in self.acks.pending_partitions() {
            if let Some(n) = self.ack_node.get(tip) {
                nodes.insert(*n);
            }
        }
        for (n, s) in &self.sessions {
            if !s.partitions().is_empty() {
                nodes.insert(*n);
            }
        }
        let remaining = deadline.saturating_duration_since(Instant::now());
        if nodes.is_empty() {
            // Not assigned anything yet: wait a little for the heartbeat.
            tokio::time::sleep(remaining.min(Duration::from_millis(50))).await;
            return Ok(Vec::new());
        }
        let max_wait = remaining.min(self.config.fetch_max_wait);
        self.acks_sent = Instant::now();
        let mut requests = Vec::new();
        for node in nodes {
            let want = wanted.remove(&node).unwrap_or_default();
            let (req, sent_acks) = self.fetch_request(node, &want, max_wait);
            requests.push((node, want, req, sent_acks));
        }
        let client = self.client.clone();
        let mut sent = Vec::with_capacity(requests.len());
        let mut reqs = Vec::with_capacity(requests.len());
        for (node, want, req, sent_acks) in requests {
            sent.push((node, want, sent_acks));
            reqs.push((node, req));
        }
        let task = tokio::spawn(async move {
            let sends = reqs.into_iter().map(|(node, req)| {
                let client = client.clone();
                async move {
                    let conn = client.broker(node).await?;
                    if req.share_acquire_mode != 0 {
                        need_v2(&conn, ApiKey::ShareFetch, node, "share.acquire.mode=record_limit")?;
                    }
                    conn.send(&req).await
                }
            });
            futures_util::future::join_all(sends).await
        });
        self.fetching = Some(FetchRound { sent, task });
        self.collect_fetch(Some(deadline)).await
    }

    /// Waits (until `deadline`, when given) for the share fetches in flight and handles their
    /// answers: the records they acquired, their acknowledgements' outcomes, the sessions.
    /// Cancel-safe: dropped while waiting, or past the deadline, the round stays in flight.
    async fn collect_fetch(&mut self, deadline: Option<Instant>) -> Result<Vec<ShareRecord>> {
        let Some(round) = self.fetching.as_mut() else {
            return Ok(Vec::new());
        };
        let joined = match deadline {
            Some(d) => match tokio::time::timeout_at(d, &mut round.task).await {
                Ok(joined) => joined,
                Err(_) => return Ok(Vec::new()),
            },
            None => (&mut round.task).await,
        };
        let Some(FetchRound { sent, .. }) = self.fetching.take() else {
            return Ok(Vec::new());
        };
        let responses = match joined {
            Ok(r) => r,
            Err(e) => {
                let e = Error::internal(format!("the share fetch task ended early: {e}"));
                sent.iter().map(|_| Err(e.clone())).collect()
            }
        };
        let mut out = Vec::new();
        for ((node, want, sent_acks), resp) in sent.into_iter().zip(responses) {
            match resp {
                Ok(resp) => self.on_fetch(node, &want, sent_acks, resp, &mut out)?,
                Err(e) => {
                    debug!(node, error = %e, "share fetch failed");
                    // A new connection means a new session; the partitions may have moved
                    // to other leaders.
                    self.lose_session(node, sent_acks, &e);
                    self.stale_metadata = true;
                }
            }
        }
        Ok(out)
    }

    /// The ShareFetch for `node`, with the acknowledgements it is owed; returns them too,
    /// to report their outcome.
    fn fetch_request(
        &mut self,
        node: i32,
        want: &BTreeSet<Tip>,
        max_wait: Duration,
    ) -> (ShareFetchRequest, Vec<(Tip, Vec<AckBatch>)>) {
        let session = self.sessions.entry(node).or_default();
        let plan = session.plan(want);
        let open = session.is_open();
        let owed: Vec<Tip> = self
            .acks
            .pending_partitions()
            .filter(|t| self.ack_node.get(t) == Some(&node))
            .copied()
            .collect();
        let mut sent_acks = Vec::new();
        let mut parts: BTreeMap<Uuid, Vec<FetchPartition>> = BTreeMap::new();
        let mut named: BTreeSet<Tip> = plan.add.clone();
        for tip in owed {
            let batches = self.acks.take(&tip);
            if !open {
                // A session the broker no longer has cannot take acknowledgements: its
                // records come back after their lock expires.
                let e = Error::kafka(ErrorCode::ShareSessionNotFound).with_context(format!(
                    "acknowledging records of a lost share session with broker {node}"
                ));
                self.report(&tip, &Err(e));
                continue;
            }
            named.insert(tip);
            sent_acks.push((tip, batches));
        }
        for tip in &named {
            let acks = sent_acks
                .iter()
                .find(|(t, _)| t == tip)
                .map(|(_, b)| {
                    b.iter()
                        .map(|b| {
                            AcknowledgementBatch::default()
                                .with_first_offset(b.first)
                                .with_last_offset(b.last)
                                .with_acknowledge_types(vec![b.kind])
                        })
                        .collect()
                })
                .unwrap_or_default();
            parts.entry(tip.0).or_default().push(
                FetchPartition::default()
                    .with_partition_index(tip.1)
                    .with_partition_max_bytes(self.config.max_partition_fetch_bytes)
                    .with_acknowledgement_batches(acks),
            );
        }
        let mut forgotten: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for (id, p) in &plan.forget {
            forgotten.entry(*id).or_default().push(*p);
        }
        let max_records = i32::try_from(self.config.max_poll_records).unwrap_or(i32::MAX);
        let req = ShareFetchRequest::default()
            .with_group_id(Some(GroupId(s(&self.config.group_id))))
            .with_member_id(Some(s(&self.member_id)))
            .with_share_session_epoch(plan.epoch)
            .with_max_wait_ms(i32::try_from(max_wait.as_millis()).unwrap_or(i32::MAX))
            .with_min_bytes(self.config.fetch_min_bytes)
            .with_max_bytes(self.config.fetch_max_bytes)
            .with_max_records(max_records)
            .with_batch_size(max_records)
            .with_share_acquire_mode(self.config.acquire_mode.wire())
            .with_topics(
                parts
                    .into_iter()
                    .map(|(id, ps)| FetchTopic::default().with_topic_id(id).with_partitions(ps))
                    .collect(),
            )
            .with_forgotten_topics_data(
                forgotten
                    .into_iter()
                    .map(|(id, ps)| ForgottenTopic::default().with_topic_id(id).with_partitions(ps))
                    .collect(),
            );
        (req, sent_acks)
    }

    fn report(&mut self, tip: &Tip, outcome: &Result<()>) {
        if let Err(e) = outcome {
            warn!(error = %e, "share acknowledgement failed");
        }
        let name = self
            .names
            .get(&tip.0)
            .cloned()
            .unwrap_or_else(|| Arc::from(tip.0.to_string()));
        if let Some(cb) = self.callback.as_mut() {
            cb(&TopicPartition::new(&name, tip.1), outcome);
        }
    }

    /// The session with `node` is gone: its acknowledgements in flight failed.
    fn lose_session(&mut self, node: i32, sent_acks: Vec<(Tip, Vec<AckBatch>)>, why: &Error) {
        if let Some(s) = self.sessions.get_mut(&node) {
            s.reset();
        }
        for (tip, _) in sent_acks {
            let e = Error::kafka(why.kafka_code().unwrap_or(ErrorCode::ShareSessionNotFound))
                .with_context(format!("acknowledgements to broker {node}: {why}"));
            self.report(&tip, &Err(e));
        }
    }

    fn on_fetch(
        &mut self,
        node: i32,
        want: &BTreeSet<Tip>,
        sent_acks: Vec<(Tip, Vec<AckBatch>)>,
        resp: strom_protocol::messages::ShareFetchResponse,
        out: &mut Vec<ShareRecord>,
    ) -> Result<()> {
        match ErrorCode::from(resp.error_code) {
            ErrorCode::None => {}
            ErrorCode::ShareSessionNotFound
            | ErrorCode::InvalidShareSessionEpoch
            | ErrorCode::ShareSessionLimitReached => {
                let e = Error::kafka(ErrorCode::from(resp.error_code));
                debug!(node, error = %e, "share session lost; opening a new one");
                self.lose_session(node, sent_acks, &e);
                return Ok(());
            }
            code => {
                let msg = resp
                    .error_message
                    .as_ref()
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default();
                let e = Error::kafka(code).with_context(format!(
                    "ShareFetch to broker {node} for share group {}{msg}",
                    self.config.group_id
                ));
                self.lose_session(node, sent_acks, &e);
                return Err(e);
            }
        }
        if let Some(s) = self.sessions.get_mut(&node) {
            s.fetched(want);
        }
        if resp.acquisition_lock_timeout_ms > 0 {
            self.lock_timeout = Some(Duration::from_millis(
                resp.acquisition_lock_timeout_ms.unsigned_abs().into(),
            ));
        }
        let acked: BTreeSet<Tip> = sent_acks.iter().map(|(t, _)| *t).collect();
        for topic in resp.responses {
            let Some(name) = self.names.get(&topic.topic_id).cloned() else {
                continue;
            };
            for p in topic.partitions {
                let tip = (topic.topic_id, p.partition_index);
                if acked.contains(&tip) {
                    let outcome = membership::check_code(p.acknowledge_error_code, || {
                        format!("acknowledging records of {name}-{}", p.partition_index)
                    });
                    self.report(&tip, &outcome);
                }
                match ErrorCode::from(p.error_code) {
                    ErrorCode::None => {}
                    ErrorCode::NotLeaderOrFollower
                    | ErrorCode::FencedLeaderEpoch
                    | ErrorCode::UnknownTopicOrPartition
                    | ErrorCode::UnknownTopicId => {
                        self.client.invalidate_topic(&name);
                        self.stale_metadata = true;
                        continue;
                    }
                    ErrorCode::TopicAuthorizationFailed | ErrorCode::GroupAuthorizationFailed => {
                        return Err(Error::kafka(ErrorCode::from(p.error_code))
                            .with_context(format!("share fetch of {name}-{}", p.partition_index)));
                    }
                    code => {
                        debug!(topic = %name, partition = p.partition_index, code = code.name(), "share fetch partition error");
                        continue;
                    }
                }
                if p.acquired_records.is_empty() {
                    continue;
                }
                self.ack_node.insert(tip, node);
                let records = p.records.unwrap_or_default();
                self.take_acquired(tip, &name, records, &p.acquired_records, out)?;
            }
        }
        Ok(())
    }

    /// The records of `records` that fall in `acquired`, with their delivery count; the
    /// acquired offsets without a record are acknowledged as gaps.
    fn take_acquired(
        &mut self,
        tip: Tip,
        name: &Arc<str>,
        records: Bytes,
        acquired: &[strom_protocol::messages::share_fetch_response::AcquiredRecords],
        out: &mut Vec<ShareRecord>,
    ) -> Result<()> {
        let mut ranges: Vec<(i64, i64, i16)> = acquired
            .iter()
            .filter(|a| a.first_offset <= a.last_offset)
            .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
            .collect();
        ranges.sort_unstable();
        let Some(&(first, _, _)) = ranges.first() else {
            return Ok(());
        };
        let tp = TopicPartition {
            topic: name.clone(),
            partition: tip.1,
        };
        let mut fetch = CompletedFetch::new(tp, first, records, Vec::new(), false, self.opts, None);
        let mut found: BTreeSet<i64> = BTreeSet::new();
        let mut i = 0;
        while let Some(r) = fetch.next_record(&self.opts)? {
            while i < ranges.len() && ranges[i].1 < r.offset {
                i += 1;
            }
            let Some(&(lo, hi, count)) = ranges.get(i) else { break };
            if r.offset < lo || r.offset > hi {
                continue;
            }
            found.insert(r.offset);
            out.push(ShareRecord {
                record: r,
                delivery_count: count,
            });
        }
        for (lo, hi, _) in ranges {
            // Bounded: a range is at most what one fetch acquired (max.poll.records, or a
            // batch), but a hostile broker could claim more; gaps beyond 1M are not walked.
            let span = hi.saturating_sub(lo);
            if span > 1_000_000 {
                warn!(topic = %name, partition = tip.1, lo, hi, "acquired range too large to acknowledge gaps in");
                continue;
            }
            for o in lo..=hi {
                if !found.contains(&o) {
                    self.acks.gap(tip, o);
                }
            }
        }
        Ok(())
    }

    /// Closes the member: accepts (implicit mode) or releases (explicit mode) what the last
    /// poll returned and is unacknowledged, sends every acknowledgement closing each share
    /// session, reports their outcome to the callback, and leaves the group.
    ///
    /// Cancellation: dropping the call is dropping the consumer: what it had acquired and not
    /// acknowledged is delivered again after the acquisition lock expires.
    pub async fn close(mut self) -> Result<()> {
        self.check_open()?;
        // What fetches in flight acquired is released below with the rest of the buffer. A
        // failed round does not stop the close: the acknowledgements and the leave still go.
        match self.collect_fetch(None).await {
            Ok(records) => self.buffered.extend(records),
            Err(e) => warn!(error = %e, "the share fetches in flight at close failed"),
        }
        let rest = match self.config.acknowledgement_mode {
            AcknowledgementMode::Implicit => AcknowledgeType::Accept,
            AcknowledgementMode::Explicit => AcknowledgeType::Release,
        };
        self.acks.acknowledge_all(rest);
        // Renewals not yet sent: nothing processes those records any more.
        self.acks.renewals_to(AcknowledgeType::Release);
        self.renewing.clear();
        // Acquired but never handed out: back to the group.
        for r in std::mem::take(&mut self.buffered) {
            if let Some(id) = self.ids.get(&r.topic) {
                self.acks.delivered((*id, r.partition), r.offset, r.delivery_count);
            }
        }
        self.acks.acknowledge_all(AcknowledgeType::Release);
        let results = self.send_acknowledgements(true).await?;
        for (tp, outcome) in &results {
            if let Some(cb) = self.callback.as_mut() {
                cb(tp, outcome);
            }
        }
        self.closed = true;
        if let Some(leave) = self.leave.take() {
            let (tx, rx) = oneshot::channel();
            if leave.send(tx).is_ok() {
                let _ = tokio::time::timeout(self.client.config().request_timeout, rx).await;
            }
        }
        Ok(())
    }
}

impl Drop for ShareConsumer {
    fn drop(&mut self) {
        // Without close: the broker releases this member's records when its session and
        // membership time out.
        if let Some(t) = self.task.take() {
            if self.leave.is_some() {
                t.abort();
            }
        }
    }
}
