//! The [`Consumer`] itself: construction, subscription and assignment, positions, seeks,
//! pause and resume, close.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use tokio::time::Instant;

use strom_protocol::record_batch::DecodeOptions;
use tokio::sync::mpsc;

use super::fetcher::{CompletedFetch, FetchOutcome, FetchSession};
use super::group::{GroupHandle, RebalanceListener};
use super::handle::{ClosedOnDrop, CommitFuture, Controls};
use super::member::CommitIdentity;
use super::record::{ConsumerGroupMetadata, ConsumerRecord};
use super::state::{ConsumerMetrics, PartitionState, SharedCounters, Subscription};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::role_config::{ConsumerConfig, IsolationLevel, OffsetReset};
use crate::topic_partition::TopicPartition;

/// A Kafka consumer: manual assignment ([`Consumer::assign`]) or a consumer group
/// ([`Consumer::subscribe`]), records by [`Consumer::poll`] or [`Consumer::stream`].
///
/// ```no_run
/// # async fn demo() -> strom_client::Result<()> {
/// use std::time::Duration;
/// use strom_client::{Consumer, ConsumerConfig};
///
/// let mut config = ConsumerConfig::new("127.0.0.1:9092");
/// config.set("group.id", "billing")?; // Java property names, or the typed fields
/// config.set("auto.offset.reset", "earliest")?;
/// config.set("enable.auto.commit", "false")?;
/// let mut consumer = Consumer::new(config).await?;
/// consumer.subscribe(&["orders"])?;
///
/// for _ in 0..10 {
///     for record in consumer.poll(Duration::from_secs(1)).await? {
///         println!("{}-{}@{}: {:?}", record.topic, record.partition, record.offset, record.value);
///     }
///     consumer.commit_sync().await?; // exactly what poll returned so far
/// }
/// consumer.close().await?; // leaves the group at once
/// # Ok(())
/// # }
/// ```
///
/// `client/examples/consume_group.rs` is a complete program (with [`Consumer::stream`]).
pub struct Consumer {
    pub(super) client: Client,
    pub(super) config: ConsumerConfig,
    pub(super) opts: DecodeOptions,
    pub(super) subscription: Subscription,
    pub(super) assignment: BTreeMap<TopicPartition, PartitionState>,
    pub(super) sessions: HashMap<i32, Arc<Mutex<FetchSession>>>,
    pub(super) in_flight: HashSet<i32>,
    pub(super) node_backoff: HashMap<i32, Instant>,
    pub(super) outcome_tx: mpsc::UnboundedSender<FetchOutcome>,
    pub(super) outcome_rx: mpsc::UnboundedReceiver<FetchOutcome>,
    pub(super) completed: VecDeque<CompletedFetch>,
    pub(super) buffered: HashSet<TopicPartition>,
    pub(super) buffered_bytes: usize,
    /// Records decoded from `completed` but not yet handed to the application, in order per
    /// partition (at most `max.poll.records`). They outlive a dropped `poll` future or
    /// stream; `position`, `consumed_offsets` and commits count only what was handed out.
    pub(super) undelivered: VecDeque<ConsumerRecord>,
    /// An error to raise at the next poll (records before it were returned first).
    pub(super) pending_error: Option<Error>,
    pub(super) group: Option<GroupHandle>,
    /// In a mutex only so the consumer is `Sync` (its futures `Send`) with a listener that
    /// is merely `Send`; it is always reached through `&mut self`.
    pub(super) listener: Mutex<Option<Box<dyn RebalanceListener>>>,
    pub(super) last_auto_commit: Instant,
    pub(super) auto_commit_task: Option<CommitFuture>,
    /// Commits a rebalance started (the revocation's auto-commit, the listener's commits),
    /// oldest first: positions are looked up, and the group is left, only after them.
    pub(super) rebalance_commits: Vec<tokio::task::JoinHandle<()>>,
    pub(super) counters: Arc<SharedCounters>,
    pub(super) controls: Arc<Controls>,
    pub(super) _closed_on_drop: ClosedOnDrop,
    pub(super) metrics: ConsumerMetrics,
    pub(super) instruments: crate::metrics::ConsumerInstruments,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("group_id", &self.config.group_id)
            .field("subscription", &self.subscription)
            .field("assignment", &self.assignment.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Consumer {
    /// Connects and creates a consumer.
    ///
    /// Cancellation-safe: dropping the call drops the connections made so far.
    pub async fn new(config: ConsumerConfig) -> Result<Consumer> {
        config.validate()?;
        let client = Client::connect(config.client.clone()).await?;
        Consumer::with_client(client, config)
    }

    /// A consumer on an existing client (its connection settings are the client's).
    pub fn with_client(client: Client, config: ConsumerConfig) -> Result<Consumer> {
        config.validate()?;
        let (outcome_tx, outcome_rx) = mpsc::unbounded_channel();
        let opts = DecodeOptions {
            check_crcs: config.check_crcs,
            ..DecodeOptions::default()
        };
        let controls = Arc::new(Controls::default());
        Ok(Consumer {
            config,
            opts,
            subscription: Subscription::None,
            assignment: BTreeMap::new(),
            sessions: HashMap::new(),
            in_flight: HashSet::new(),
            node_backoff: HashMap::new(),
            outcome_tx,
            outcome_rx,
            completed: VecDeque::new(),
            buffered: HashSet::new(),
            buffered_bytes: 0,
            undelivered: VecDeque::new(),
            pending_error: None,
            group: None,
            listener: Mutex::new(None),
            last_auto_commit: Instant::now(),
            auto_commit_task: None,
            rebalance_commits: Vec::new(),
            counters: Arc::new(SharedCounters::new(&client)),
            controls: controls.clone(),
            _closed_on_drop: ClosedOnDrop(controls),
            metrics: ConsumerMetrics::default(),
            instruments: crate::metrics::ConsumerInstruments::new(client.metric_registry()),
            client,
        })
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The configuration.
    pub fn config(&self) -> &ConsumerConfig {
        &self.config
    }

    /// Reads exactly these partitions (no group membership; commits, if any, are
    /// standalone). Replaces a previous assignment; positions of partitions kept stay.
    pub fn assign(&mut self, partitions: impl IntoIterator<Item = TopicPartition>) -> Result<()> {
        if matches!(self.subscription, Subscription::Topics(_) | Subscription::Pattern(_)) {
            return Err(Error::illegal_state(
                "assign() after subscribe(): call unsubscribe() first (manual assignment and group subscription are exclusive)",
            ));
        }
        let wanted: BTreeSet<TopicPartition> = partitions.into_iter().collect();
        self.assignment.retain(|tp, _| wanted.contains(tp));
        for tp in wanted {
            self.assignment.entry(tp).or_default();
        }
        self.drop_buffered_unassigned();
        self.subscription = if self.assignment.is_empty() {
            Subscription::None
        } else {
            Subscription::Assigned
        };
        Ok(())
    }

    /// Joins the group (`group.id`) and reads the partitions it assigns of these topics.
    pub fn subscribe<S: AsRef<str>>(&mut self, topics: &[S]) -> Result<()> {
        let topics: BTreeSet<String> = topics.iter().map(|t| t.as_ref().to_owned()).collect();
        if topics.iter().any(|t| t.trim().is_empty()) {
            return Err(Error::config("subscribe(): empty topic name"));
        }
        self.start_subscription(Subscription::Topics(topics))
    }

    /// Joins the group and reads the partitions it assigns of every topic whose whole name
    /// matches `pattern` (re-evaluated every `metadata.max.age.ms`).
    pub fn subscribe_pattern(&mut self, pattern: &str) -> Result<()> {
        let re = regex::Regex::new(&format!("^(?:{pattern})$"))
            .map_err(|e| Error::config(format!("subscribe_pattern({pattern:?}): {e}")))?;
        self.start_subscription(Subscription::Pattern(re))
    }

    /// Sets the listener told of partitions assigned, revoked and lost.
    pub fn set_rebalance_listener(&mut self, listener: impl RebalanceListener + 'static) {
        *self.listener.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(listener));
    }

    pub(super) fn start_subscription(&mut self, sub: Subscription) -> Result<()> {
        let Some(group_id) = self.config.group_id.clone() else {
            return Err(Error::config(
                "subscribe() needs group.id (use assign() to read without a group)",
            ));
        };
        if matches!(self.subscription, Subscription::Assigned) {
            return Err(Error::illegal_state(
                "subscribe() after assign(): call unsubscribe() first (manual assignment and group subscription are exclusive)",
            ));
        }
        self.subscription = sub.clone();
        match &self.group {
            Some(g) => g.change_subscription(sub),
            None => {
                self.group = Some(super::membership::spawn(
                    self.client.clone(),
                    &self.config,
                    group_id,
                    sub,
                )?);
            }
        }
        Ok(())
    }

    /// Leaves the group (or drops the manual assignment); positions are forgotten.
    ///
    /// Cancellation-safe: the consumer is unsubscribed as soon as the call starts (it fetches
    /// nothing more, the listener has run); what is left is waiting for the revocation's
    /// commit and the LeaveGroup, which a dropped call leaves running in the background.
    pub async fn unsubscribe(&mut self) -> Result<()> {
        if self.group.is_some() {
            // Committed as the member it still is (generation or epoch, member id).
            let owned: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
            self.revoke(owned, false, None);
        }
        let group = self.group.take();
        self.assignment.clear();
        self.drop_buffered_unassigned();
        self.subscription = Subscription::None;
        self.settle_rebalance_commits().await;
        if let Some(g) = group {
            g.leave().await;
        }
        Ok(())
    }

    /// The partitions currently assigned.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.assignment.keys().cloned().collect()
    }

    /// The group generation this member is in (generation id or KIP-848 member epoch, and
    /// member id), as a transactional producer needs it (`send_offsets_to_transaction`).
    pub fn group_metadata(&self) -> Option<ConsumerGroupMetadata> {
        let group_id = self.config.group_id.clone()?;
        let who = self.identity();
        let mut m = ConsumerGroupMetadata::new(group_id);
        m.generation_id = who.generation_or_epoch;
        m.member_id = who.member_id;
        m.group_instance_id = who.group_instance_id;
        Some(m)
    }

    pub(super) fn identity(&self) -> CommitIdentity {
        match &self.group {
            Some(g) => g.identity(),
            None => CommitIdentity::standalone(),
        }
    }

    /// Moves `tp`'s position: the next poll returns records from `offset`.
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<()> {
        let st = self.state_mut(tp)?;
        st.position = Some(offset);
        st.epoch = None;
        st.reset = None;
        self.drop_buffered(tp);
        Ok(())
    }

    /// Moves these partitions (all assigned when empty) to their first offset, looked up
    /// at the next poll or position().
    pub fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_reset(partitions, OffsetReset::Earliest)
    }

    /// Moves these partitions (all assigned when empty) to their end (the last stable
    /// offset under read_committed), looked up at the next poll or position().
    pub fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        self.seek_reset(partitions, OffsetReset::Latest)
    }

    pub(super) fn seek_reset(&mut self, partitions: &[TopicPartition], reset: OffsetReset) -> Result<()> {
        let tps: Vec<TopicPartition> = if partitions.is_empty() {
            self.assignment.keys().cloned().collect()
        } else {
            partitions.to_vec()
        };
        for tp in tps {
            let st = self.state_mut(&tp)?;
            st.position = None;
            st.reset = Some(reset);
            self.drop_buffered(&tp);
        }
        Ok(())
    }

    /// The offset of the next record poll will return for `tp` (resolving it from the
    /// committed offset or `auto.offset.reset` first when unknown).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; a position being looked up
    /// (committed offset or `auto.offset.reset`) is looked up again by the next call or poll.
    pub async fn position(&mut self, tp: &TopicPartition) -> Result<i64> {
        self.state_mut(tp)?;
        self.update_positions().await?;
        self.delivered_position(tp)
            .map(|(offset, _)| offset)
            .ok_or_else(|| Error::illegal_state(format!("no position for {tp}: it is not assigned to this consumer")))
    }

    /// Stops returning records of these partitions (fetching stops too) until resumed.
    pub fn pause(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            self.state_mut(tp)?.paused = true;
            self.rewind_undelivered(tp);
        }
        Ok(())
    }

    /// Resumes paused partitions.
    pub fn resume(&mut self, partitions: &[TopicPartition]) -> Result<()> {
        for tp in partitions {
            self.state_mut(tp)?.paused = false;
        }
        Ok(())
    }

    /// The paused partitions.
    pub fn paused(&self) -> Vec<TopicPartition> {
        self.assignment
            .iter()
            .filter(|(_, s)| s.paused)
            .map(|(tp, _)| tp.clone())
            .collect()
    }

    /// How far `tp`'s position is behind the end of the partition as the last fetch saw it
    /// (the last stable offset under read_committed): Java's `currentLag`.
    pub fn current_lag(&self, tp: &TopicPartition) -> Option<i64> {
        let st = self.assignment.get(tp)?;
        let end = if self.read_committed() {
            st.last_stable_offset
        } else {
            st.high_watermark
        }?;
        let (position, _) = self.delivered_position(tp)?;
        Some((end - position).max(0))
    }

    /// The application's position in `tp`: the first record not yet handed out (when one
    /// waits in `undelivered`), else the fetch position; with the leader epoch to commit.
    pub(super) fn delivered_position(&self, tp: &TopicPartition) -> Option<(i64, Option<i32>)> {
        if let Some(r) = self
            .undelivered
            .iter()
            .find(|r| r.partition == tp.partition && r.topic == tp.topic)
        {
            return Some((r.offset, r.leader_epoch));
        }
        let st = self.assignment.get(tp)?;
        st.position.map(|p| (p, st.epoch))
    }

    /// Puts `tp`'s undelivered records back: its fetch position returns to the first of them
    /// and its buffered data is dropped, so they are fetched again (used by `pause`, whose
    /// partitions must hand out nothing until resumed).
    pub(super) fn rewind_undelivered(&mut self, tp: &TopicPartition) {
        let Some((offset, _)) = self
            .undelivered
            .iter()
            .find(|r| r.partition == tp.partition && r.topic == tp.topic)
            .map(|r| (r.offset, r.leader_epoch))
        else {
            return;
        };
        self.drop_buffered(tp);
        if let Some(st) = self.assignment.get_mut(tp) {
            st.position = Some(offset);
            st.epoch = None;
        }
    }

    /// Hands out up to `max` undelivered records (the only place records leave the
    /// consumer, so positions and commits follow exactly what the application received).
    pub(super) fn take_undelivered(&mut self, max: usize) -> Vec<ConsumerRecord> {
        let n = max.min(self.undelivered.len());
        // All of it (the usual case: `drain` buffers at most max.poll.records): the deque's
        // buffer becomes the Vec, without moving each record again.
        let out: Vec<ConsumerRecord> = if n == self.undelivered.len() {
            Vec::from(std::mem::take(&mut self.undelivered))
        } else {
            self.undelivered.drain(..n).collect()
        };
        self.metrics.records_consumed += out.len() as u64;
        // Per run of one partition (records come grouped by partition), not per record:
        // records-consumed, and records-lag from the position after the run (as Java's
        // fetchRecords does), so a caught-up partition reads 0 even when the broker leaves
        // it out of incremental fetch responses.
        let read_committed = self.read_committed();
        let mut i = 0;
        while i < out.len() {
            let (topic, partition) = (&out[i].topic, out[i].partition);
            let run = out[i..]
                .iter()
                .take_while(|r| r.partition == partition && (Arc::ptr_eq(&r.topic, topic) || r.topic == *topic))
                .count();
            self.instruments.consumed(topic, run as u64);
            let next = out[i + run - 1].offset + 1;
            let tp = TopicPartition {
                topic: topic.clone(),
                partition,
            };
            if let Some(st) = self.assignment.get(&tp) {
                let end = if read_committed {
                    st.last_stable_offset
                } else {
                    st.high_watermark
                };
                if let Some(end) = end {
                    self.instruments.lag(topic, partition, (end - next).max(0));
                }
                if let Some(start) = st.log_start_offset {
                    self.instruments.lead(topic, partition, next - start);
                }
            }
            i += run;
        }
        out
    }

    /// This consumer's metrics (`consumer-fetch-manager-metrics`, per topic and per
    /// partition) and its connections' (`node-metrics`), under the Java client's names.
    /// Other roles sharing the client record into the same registry
    /// ([`Client::metric_registry`]).
    pub fn java_metrics(&self) -> crate::metrics::MetricsSnapshot {
        let mut s = self.client.metric_registry().snapshot();
        s.metrics
            .retain(|m| m.group.starts_with("consumer") || m.group == "node-metrics");
        s
    }

    /// Counters; `committed_offsets` has the last committed offset per partition.
    pub fn metrics(&self) -> ConsumerMetrics {
        use std::sync::atomic::Ordering::Relaxed;
        let mut m = self.metrics.clone();
        m.commits_succeeded = self.counters.commits_succeeded.load(Relaxed);
        m.commits_failed = self.counters.commits_failed.load(Relaxed);
        m.buffered_bytes = self.buffered_bytes as u64;
        m
    }

    /// The offsets this consumer last committed successfully, per partition (Flink's
    /// `committedOffset`).
    pub fn last_committed(&self) -> BTreeMap<TopicPartition, i64> {
        self.counters.committed.lock().map(|m| m.clone()).unwrap_or_default()
    }

    pub(super) fn read_committed(&self) -> bool {
        self.config.isolation_level == IsolationLevel::ReadCommitted
    }

    pub(super) fn state_mut(&mut self, tp: &TopicPartition) -> Result<&mut PartitionState> {
        self.assignment
            .get_mut(tp)
            .ok_or_else(|| Error::illegal_state(format!("{tp} is not assigned to this consumer")))
    }

    pub(super) fn drop_buffered(&mut self, tp: &TopicPartition) {
        self.undelivered
            .retain(|r| !(r.partition == tp.partition && r.topic == tp.topic));
        if self.buffered.remove(tp) {
            let mut freed = 0;
            self.completed.retain(|c| {
                let keep = &c.tp != tp;
                if !keep {
                    freed += c.size;
                }
                keep
            });
            self.buffered_bytes -= freed;
        }
    }

    pub(super) fn drop_buffered_unassigned(&mut self) {
        let assignment = &self.assignment;
        self.undelivered
            .retain(|r| assignment.contains_key(&r.topic_partition()));
        self.instruments
            .keep_lags(|t, p| assignment.keys().any(|tp| tp.partition == p && &*tp.topic == t));
        self.counters
            .coordinator
            .assigned_partitions
            .set(self.assignment.len() as f64);
        let gone: Vec<TopicPartition> = self
            .buffered
            .iter()
            .filter(|tp| !self.assignment.contains_key(*tp))
            .cloned()
            .collect();
        for tp in gone {
            self.drop_buffered(&tp);
        }
    }

    /// Commits what was consumed when `enable.auto.commit`, leaves the group (static members
    /// stay, as Java's), and stops the background tasks.
    ///
    /// A consumer dropped without `close` still leaves its group (in the background, best
    /// effort, bounded to 10 s, when dropped inside a tokio runtime, as librdkafka does), so
    /// the group rebalances at once instead of after `session.timeout.ms`; but it commits
    /// nothing more (a commit already sent may still land) and runs no rebalance listener.
    ///
    /// Cancellation: dropping the call is dropping the consumer (see above): it leaves its group
    /// in the background, and a commit already sent may still land.
    pub async fn close(mut self) -> Result<()> {
        if self.group.is_some() {
            let owned: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
            if let Some(t) = self.auto_commit_task.take() {
                let _ = t.await;
            }
            // Committed as the member it still is; the group is left after the commits.
            self.revoke(owned, false, None);
            self.settle_rebalance_commits().await;
            if let Some(g) = self.group.take() {
                g.leave().await;
            }
        }
        Ok(())
    }
}
