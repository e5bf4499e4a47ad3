//! The consumer: manual assignment or group subscription, pipelined fetching with fetch
//! sessions, positions, commits.
//!
//! How it runs (Java's classic consumer, on tokio):
//! - [`Consumer::poll`] returns records already buffered, and keeps one Fetch in flight per
//!   broker that has no partition with buffered data (Java's rule). Fetches run
//!   in spawned tasks, so the next batch arrives while the application works. Memory stays
//!   flat when the application is slow: a partition with unread data is not fetched again,
//!   and no fetch is sent while more than `fetch.max.bytes` is buffered.
//! - Group membership runs in a background task (the private `group` module): heartbeats continue while the
//!   application processes; a rebalance is handed to the application's next `poll`, where
//!   the [`RebalanceListener`] runs and offsets can be committed before partitions go.
//! - Positions advance as records are handed to the application: `position(tp)` is the
//!   offset of the next record `poll` (or [`Consumer::stream`]) will return; commits store
//!   positions. Records taken from the fetch buffer but not yet handed out wait in the
//!   consumer (`undelivered`), so a dropped `poll` future or a dropped stream loses none:
//!   the next `poll`/`stream` returns them first.

pub mod assignor;
pub(crate) mod fetcher;
pub(crate) mod group;
mod kip848;
mod offsets;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::Stream;
use strom_protocol::messages::ApiKey;
use strom_protocol::record_batch::{DecodeOptions, Headers, TimestampType};
use strom_protocol::ErrorCode;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use crate::admin::{Admin, OffsetSpec};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::producer::ConsumerGroupMetadata;
use crate::role_config::{ConsumerConfig, GroupProtocol, IsolationLevel, OffsetReset};
pub use assignor::TopicPartition;
use fetcher::{CompletedFetch, FetchParams, FetchSession, FetchTally, PartitionErrorAction, PartitionFetch, Wanted};
use group::{GroupEvent, GroupHandle};
pub use group::{RebalanceContext, RebalanceListener};
use offsets::{CommitIdentity, Member};

/// One record as the consumer delivers it. Key, value and headers are slices of the fetch
/// response (no copy).
#[derive(Debug, Clone)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp in ms since the epoch.
    pub timestamp: i64,
    /// Whether the producer or the broker set the timestamp.
    pub timestamp_type: TimestampType,
    /// Leader epoch of the batch, when the broker wrote one.
    pub leader_epoch: Option<i32>,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers (decoded lazily).
    pub headers: Headers,
}

impl ConsumerRecord {
    /// The producer's span context from the record's W3C `traceparent`/`tracestate`
    /// headers; `None` when it has none or it is malformed (feature `opentelemetry`; see
    /// [`crate::trace_context`]).
    #[cfg(feature = "opentelemetry")]
    pub fn trace_context(&self) -> Option<opentelemetry::trace::SpanContext> {
        crate::trace_context::extract(&self.headers)
    }

    /// A `tracing` span named `process` for handling this record, whose OpenTelemetry parent
    /// is the producer's span from its headers: enter it (or `.instrument` the handler with
    /// it) and the work shows in the producer's trace (feature `opentelemetry`).
    ///
    /// ```ignore
    /// for record in consumer.poll(timeout).await? {
    ///     let span = record.process_span();
    ///     handle(&record).instrument(span).await?;
    /// }
    /// ```
    #[cfg(feature = "opentelemetry")]
    pub fn process_span(&self) -> tracing::Span {
        crate::trace_context::process_span(&self.topic, self.partition, self.offset, self.trace_context())
    }

    /// Topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition {
            topic: self.topic.clone(),
            partition: self.partition,
        }
    }
}

/// A committed offset: the next offset to read, the leader epoch of the last record read,
/// and free-form metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetAndMetadata {
    /// Next offset to consume.
    pub offset: i64,
    /// Leader epoch of the record before `offset`, when known.
    pub leader_epoch: Option<i32>,
    /// Metadata stored with the commit.
    pub metadata: String,
}

impl OffsetAndMetadata {
    /// An offset without epoch or metadata.
    pub fn new(offset: i64) -> Self {
        OffsetAndMetadata {
            offset,
            leader_epoch: None,
            metadata: String::new(),
        }
    }

    /// With metadata.
    pub fn with_metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = metadata.into();
        self
    }
}

/// An offset found by time ([`Consumer::offsets_for_times`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    /// First offset whose timestamp is >= the asked time.
    pub offset: i64,
    /// That record's timestamp.
    pub timestamp: i64,
    /// Its leader epoch, when known.
    pub leader_epoch: Option<i32>,
}

/// What the consumer reads: nothing yet, fixed partitions, or a group subscription.
#[derive(Debug, Clone)]
pub(crate) enum Subscription {
    None,
    Assigned,
    Topics(BTreeSet<String>),
    Pattern(regex::Regex),
}

#[derive(Debug, Clone, Default)]
pub(crate) struct PartitionState {
    /// Next offset to return; `None` until resolved (committed offset or reset).
    position: Option<i64>,
    /// Leader epoch of the last record returned.
    epoch: Option<i32>,
    paused: bool,
    /// An explicit reset asked for (seek_to_beginning/end) or forced by out-of-range.
    reset: Option<OffsetReset>,
    high_watermark: Option<i64>,
    last_stable_offset: Option<i64>,
    log_start_offset: Option<i64>,
    /// KIP-392: the replica the leader told us to fetch from, until this instant.
    preferred_replica: Option<(i32, Instant)>,
}

struct FetchOutcome {
    node: i32,
    full: bool,
    offsets: HashMap<TopicPartition, i64>,
    names: HashMap<uuid::Uuid, Arc<str>>,
    by_id: bool,
    /// From sending the request to its response.
    latency: Duration,
    result: Result<strom_protocol::messages::FetchResponse>,
}

/// Counters of a consumer, named after Java's/Flink's consumer metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsumerMetrics {
    /// Records returned by poll (`records-consumed-total`).
    pub records_consumed: u64,
    /// Fetch responses handled (`fetch-total`).
    pub fetches: u64,
    /// Record bytes received in fetch responses (`bytes-consumed-total`).
    pub bytes_fetched: u64,
    /// Successful commits (`commitsSucceeded` in Flink).
    pub commits_succeeded: u64,
    /// Failed commits (`commitsFailed` in Flink).
    pub commits_failed: u64,
    /// Rebalances this member went through (assignments received).
    pub rebalances: u64,
    /// Bytes of fetched data waiting to be returned by poll.
    pub buffered_bytes: u64,
    /// Fetches sent as incremental fetch-session requests (KIP-227).
    pub incremental_fetches: u64,
    /// Fetch sessions the broker lost or refused (the next request was full again).
    pub fetch_session_resets: u64,
    /// Log truncations detected (KIP-320 diverging epochs) that moved a position back.
    pub truncations_detected: u64,
}

#[derive(Debug)]
pub(crate) struct SharedCounters {
    commits_succeeded: std::sync::atomic::AtomicU64,
    commits_failed: std::sync::atomic::AtomicU64,
    committed: Mutex<BTreeMap<TopicPartition, i64>>,
    coordinator: crate::metrics::CoordinatorInstruments,
}

impl SharedCounters {
    fn new(client: &Client) -> Self {
        SharedCounters {
            commits_succeeded: Default::default(),
            commits_failed: Default::default(),
            committed: Default::default(),
            coordinator: crate::metrics::CoordinatorInstruments::new(client.metric_registry()),
        }
    }
}

/// The outcome of an asynchronous commit ([`Consumer::commit_async`]). The commit runs in
/// the background: dropping this does not cancel it, only the chance to see how it ended.
#[derive(Debug)]
#[must_use = "a commit's failure is only seen by awaiting its CommitFuture"]
pub struct CommitFuture {
    task: tokio::task::JoinHandle<Result<()>>,
}

impl CommitFuture {
    fn spawn(f: impl std::future::Future<Output = Result<()>> + Send + 'static) -> Self {
        CommitFuture { task: tokio::spawn(f) }
    }

    /// The commit has finished (awaiting this returns at once).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl std::future::Future for CommitFuture {
    type Output = Result<()>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<()>> {
        std::pin::Pin::new(&mut self.task)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|e| Err(Error::internal(format!("the commit task failed: {e}")))))
    }
}

/// Controls a [`Consumer`] from anywhere, e.g. while its [`Consumer::stream`] borrows it or
/// from another task: commits, seeks, pause and resume. A cheap, cloneable handle with the
/// consumer's group and (current) member identity, as Java's `commitAsync` and `seek` from
/// a callback. Get one with [`Consumer::handle`] after `subscribe` or `assign`.
///
/// Commits go to the group coordinator at once. Seeks, pauses and resumes are queued and
/// applied by the consumer before it hands out its next record (a stream waiting for data
/// wakes for them); records it had buffered for a partition that is moved are dropped, as
/// with [`Consumer::seek`].
///
/// ```no_run
/// # async fn demo(mut consumer: strom_client::Consumer) -> strom_client::Result<()> {
/// use futures_util::StreamExt;
/// let handle = consumer.handle()?;
/// let mut records = std::pin::pin!(consumer.stream());
/// while let Some(record) = records.next().await {
///     let record = record?;
///     if record.value.is_none() {
///         // e.g. replay this partition from the start
///         handle.seek_to_beginning(&[record.topic_partition()]);
///         continue;
///     }
///     // ... process it, then mark it done:
///     handle.commit_record(&record).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ConsumerHandle {
    client: Client,
    group: String,
    /// The member's identity, read at each commit (it changes with every rebalance);
    /// `None` for a manual assignment (standalone commits).
    member: Option<Arc<group::GroupShared>>,
    counters: Arc<SharedCounters>,
    controls: Arc<Controls>,
}

/// Seeks, pauses and resumes queued by a [`ConsumerHandle`] for the consumer to apply.
#[derive(Debug, Default)]
pub(crate) struct Controls {
    queue: Mutex<Vec<Control>>,
    /// Something is queued: read per record handed out, so the lock is taken only then.
    queued: std::sync::atomic::AtomicBool,
    /// Wakes a `poll` or stream waiting for records.
    wake: tokio::sync::Notify,
    /// The consumer was closed or dropped: handles' commits fail with `ErrorKind::Closed`.
    closed: std::sync::atomic::AtomicBool,
}

/// Marks the consumer's [`Controls`] closed when the consumer goes away (closed or dropped).
#[derive(Debug)]
struct ClosedOnDrop(Arc<Controls>);

impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.closed.store(true, std::sync::atomic::Ordering::Release);
    }
}

#[derive(Debug)]
enum Control {
    Seek(TopicPartition, i64),
    Reset(Vec<TopicPartition>, OffsetReset),
    Pause(Vec<TopicPartition>),
    Resume(Vec<TopicPartition>),
}

impl Controls {
    fn push(&self, c: Control) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push(c);
        self.queued.store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }

    fn take(&self) -> Vec<Control> {
        if !self.queued.swap(false, std::sync::atomic::Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ConsumerHandle {
    /// Commits these offsets (the next offset to read, per partition) and waits.
    ///
    /// Fails with [`ErrorKind::Closed`](crate::ErrorKind::Closed) once the consumer was
    /// closed or dropped (Java's "This consumer has already been closed"): its group
    /// membership is gone, so nothing can be committed in its name.
    pub async fn commit(&self, offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>) -> Result<()> {
        if self.controls.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::closed(format!(
                "the consumer of this handle (group {}) was closed or dropped",
                self.group
            )));
        }
        let standalone = CommitIdentity::standalone();
        let who = match &self.member {
            Some(m) => Member::Group(m),
            None => Member::Fixed(&standalone),
        };
        do_commit(&self.client, &self.group, who, offsets, &self.counters).await
    }

    /// Commits the offset after `record` (its partition continues from the next record).
    pub async fn commit_record(&self, record: &ConsumerRecord) -> Result<()> {
        let offsets = BTreeMap::from([(
            record.topic_partition(),
            OffsetAndMetadata {
                offset: record.offset + 1,
                leader_epoch: record.leader_epoch,
                metadata: String::new(),
            },
        )]);
        self.commit(&offsets).await
    }

    /// Moves `tp`'s position to `offset` before the consumer hands out its next record (see
    /// [`Consumer::seek`]). A partition the consumer no longer owns by then (a rebalance took
    /// it) is skipped with a warning in the log: its new owner starts from the committed
    /// offset.
    pub fn seek(&self, tp: &TopicPartition, offset: i64) {
        self.controls.push(Control::Seek(tp.clone(), offset));
    }

    /// [`Consumer::seek_to_beginning`] from the handle (all assigned partitions when empty).
    pub fn seek_to_beginning(&self, partitions: &[TopicPartition]) {
        self.controls
            .push(Control::Reset(partitions.to_vec(), OffsetReset::Earliest));
    }

    /// [`Consumer::seek_to_end`] from the handle (all assigned partitions when empty).
    pub fn seek_to_end(&self, partitions: &[TopicPartition]) {
        self.controls
            .push(Control::Reset(partitions.to_vec(), OffsetReset::Latest));
    }

    /// [`Consumer::pause`] from the handle: no record of these partitions is handed out
    /// after the consumer applies it, until [`ConsumerHandle::resume`].
    pub fn pause(&self, partitions: &[TopicPartition]) {
        self.controls.push(Control::Pause(partitions.to_vec()));
    }

    /// [`Consumer::resume`] from the handle.
    pub fn resume(&self, partitions: &[TopicPartition]) {
        self.controls.push(Control::Resume(partitions.to_vec()));
    }
}

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
    client: Client,
    config: ConsumerConfig,
    opts: DecodeOptions,
    subscription: Subscription,
    assignment: BTreeMap<TopicPartition, PartitionState>,
    sessions: HashMap<i32, Arc<Mutex<FetchSession>>>,
    in_flight: HashSet<i32>,
    node_backoff: HashMap<i32, Instant>,
    outcome_tx: mpsc::UnboundedSender<FetchOutcome>,
    outcome_rx: mpsc::UnboundedReceiver<FetchOutcome>,
    completed: VecDeque<CompletedFetch>,
    buffered: HashSet<TopicPartition>,
    buffered_bytes: usize,
    /// Records decoded from `completed` but not yet handed to the application, in order per
    /// partition (at most `max.poll.records`). They outlive a dropped `poll` future or
    /// stream; `position`, `consumed_offsets` and commits count only what was handed out.
    undelivered: VecDeque<ConsumerRecord>,
    /// An error to raise at the next poll (records before it were returned first).
    pending_error: Option<Error>,
    group: Option<GroupHandle>,
    /// In a mutex only so the consumer is `Sync` (its futures `Send`) with a listener that
    /// is merely `Send`; it is always reached through `&mut self`.
    listener: Mutex<Option<Box<dyn RebalanceListener>>>,
    last_auto_commit: Instant,
    auto_commit_task: Option<CommitFuture>,
    counters: Arc<SharedCounters>,
    controls: Arc<Controls>,
    _closed_on_drop: ClosedOnDrop,
    metrics: ConsumerMetrics,
    instruments: crate::metrics::ConsumerInstruments,
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

    fn start_subscription(&mut self, sub: Subscription) -> Result<()> {
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
                self.group = Some(match self.config.group_protocol {
                    GroupProtocol::Classic => group::spawn(self.client.clone(), &self.config, group_id, sub)?,
                    GroupProtocol::Consumer => kip848::spawn(self.client.clone(), &self.config, group_id, sub)?,
                });
            }
        }
        Ok(())
    }

    /// Leaves the group (or drops the manual assignment); positions are forgotten.
    pub async fn unsubscribe(&mut self) -> Result<()> {
        if let Some(g) = self.group.take() {
            let owned: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
            self.revoke(owned, false).await;
            g.leave().await;
        }
        self.assignment.clear();
        self.drop_buffered_unassigned();
        self.subscription = Subscription::None;
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

    fn identity(&self) -> CommitIdentity {
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

    fn seek_reset(&mut self, partitions: &[TopicPartition], reset: OffsetReset) -> Result<()> {
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
    fn delivered_position(&self, tp: &TopicPartition) -> Option<(i64, Option<i32>)> {
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
    fn rewind_undelivered(&mut self, tp: &TopicPartition) {
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
    fn take_undelivered(&mut self, max: usize) -> Vec<ConsumerRecord> {
        let n = max.min(self.undelivered.len());
        let out: Vec<ConsumerRecord> = self.undelivered.drain(..n).collect();
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

    fn read_committed(&self) -> bool {
        self.config.isolation_level == IsolationLevel::ReadCommitted
    }

    fn state_mut(&mut self, tp: &TopicPartition) -> Result<&mut PartitionState> {
        self.assignment
            .get_mut(tp)
            .ok_or_else(|| Error::illegal_state(format!("{tp} is not assigned to this consumer")))
    }

    fn drop_buffered(&mut self, tp: &TopicPartition) {
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

    fn drop_buffered_unassigned(&mut self) {
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

    /// Offsets by timestamp: for each partition the first offset whose timestamp is at
    /// least the given one, `None` when no record is that recent.
    pub async fn offsets_for_times(
        &self,
        times: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndTimestamp>>> {
        let mut out = BTreeMap::new();
        let admin = Admin::new(self.client.clone());
        for (tp, ts) in times {
            if *ts < 0 {
                return Err(Error::config(format!(
                    "offsets_for_times: negative timestamp {ts} for {tp}"
                )));
            }
            let o = admin
                .list_offsets(&tp.topic, &[tp.partition], OffsetSpec::Timestamp(*ts))
                .await?;
            let found = o.first().filter(|o| o.offset >= 0).map(|o| OffsetAndTimestamp {
                offset: o.offset,
                timestamp: o.timestamp,
                leader_epoch: (o.leader_epoch >= 0).then_some(o.leader_epoch),
            });
            out.insert(tp.clone(), found);
        }
        Ok(out)
    }

    /// First offsets of these partitions.
    pub async fn beginning_offsets(&self, partitions: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        self.list(partitions, OffsetSpec::Earliest, false).await
    }

    /// End offsets of these partitions: the high watermark, or the last stable offset under
    /// read_committed (as Java's `endOffsets`).
    pub async fn end_offsets(&self, partitions: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        self.list(partitions, OffsetSpec::Latest, self.read_committed()).await
    }

    async fn list(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
        read_committed: bool,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let admin = Admin::new(self.client.clone());
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let mut out = BTreeMap::new();
        for (topic, parts) in by_topic {
            for o in admin.list_offsets_isolated(topic, &parts, spec, read_committed).await? {
                out.insert(TopicPartition::new(topic, o.partition), o.offset);
            }
        }
        Ok(out)
    }

    /// The group's committed offsets of these partitions (absent when none).
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
        let group = self.group_id()?;
        let who = self.identity();
        offsets::fetch_committed(&self.client, group, Some(&who), partitions).await
    }

    fn group_id(&self) -> Result<&str> {
        self.config
            .group_id
            .as_deref()
            .ok_or_else(|| Error::config("committing or reading committed offsets needs group.id"))
    }

    /// The positions of every assigned partition with a known position, as offsets to
    /// commit: what poll (or a stream) has handed out so far, never records still waiting
    /// in the consumer.
    pub fn consumed_offsets(&self) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        let mut out: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
        for r in &self.undelivered {
            out.entry(r.topic_partition()).or_insert_with(|| OffsetAndMetadata {
                offset: r.offset,
                leader_epoch: r.leader_epoch,
                metadata: String::new(),
            });
        }
        for (tp, s) in &self.assignment {
            if out.contains_key(tp) {
                continue;
            }
            if let Some(p) = s.position {
                out.insert(
                    tp.clone(),
                    OffsetAndMetadata {
                        offset: p,
                        leader_epoch: s.epoch,
                        metadata: String::new(),
                    },
                );
            }
        }
        out.retain(|tp, _| self.assignment.contains_key(tp));
        out
    }

    /// Commits the positions of all assigned partitions and waits.
    pub async fn commit_sync(&mut self) -> Result<()> {
        let offsets = self.consumed_offsets();
        self.commit_offsets_sync(&offsets).await
    }

    /// Commits these offsets and waits. Fails with ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
    /// REBALANCE_IN_PROGRESS or FENCED_INSTANCE_ID when the group moved on (the partitions
    /// may be someone else's by now).
    pub async fn commit_offsets_sync(&mut self, offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>) -> Result<()> {
        let group = self.group_id()?.to_owned();
        let member = self.group.as_ref().map(|g| g.shared());
        let standalone = CommitIdentity::standalone();
        let who = match &member {
            Some(m) => Member::Group(m),
            None => Member::Fixed(&standalone),
        };
        do_commit(&self.client, &group, who, offsets, &self.counters).await
    }

    /// Commits the positions of all assigned partitions in the background; the returned
    /// handle yields the outcome. Commits are sent in call order.
    pub fn commit_async(&mut self) -> Result<CommitFuture> {
        let offsets = self.consumed_offsets();
        self.commit_offsets_async(offsets)
    }

    /// Commits these offsets in the background.
    pub fn commit_offsets_async(
        &mut self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<CommitFuture> {
        let group = self.group_id()?.to_owned();
        let member = self.group.as_ref().map(|g| g.shared());
        let client = self.client.clone();
        let counters = self.counters.clone();
        Ok(CommitFuture::spawn(async move {
            let standalone = CommitIdentity::standalone();
            let who = match &member {
                Some(m) => Member::Group(m),
                None => Member::Fixed(&standalone),
            };
            do_commit(&client, &group, who, &offsets, &counters).await
        }))
    }

    /// A handle that commits, seeks, pauses and resumes for this consumer while it is
    /// borrowed elsewhere (by [`Consumer::stream`], or from another task). Needs `group.id`
    /// (for commits), and `subscribe()` or `assign()` first: it commits as the group member
    /// (its generation, read at each commit) or, for a manual assignment, standalone.
    pub fn handle(&self) -> Result<ConsumerHandle> {
        let group = self.group_id()?.to_owned();
        let member = match (&self.group, &self.subscription) {
            (Some(g), _) => Some(g.shared()),
            (None, Subscription::Assigned) => None,
            (None, _) => {
                return Err(Error::illegal_state(
                    "handle(): call subscribe() or assign() first (a commit needs the member identity)",
                ))
            }
        };
        Ok(ConsumerHandle {
            client: self.client.clone(),
            group,
            member,
            counters: self.counters.clone(),
            controls: self.controls.clone(),
        })
    }

    /// Applies what handles queued (seeks, pauses, resumes), in the order they were asked.
    fn apply_controls(&mut self) {
        for c in self.controls.take() {
            let r = match &c {
                Control::Seek(tp, offset) => self.seek(tp, *offset),
                Control::Reset(tps, reset) => self.seek_reset(tps, *reset),
                Control::Pause(tps) => self.pause(tps),
                Control::Resume(tps) => self.resume(tps),
            };
            if let Err(e) = r {
                warn!(error = %e, control = ?c, "a consumer handle's request skipped");
            }
        }
    }

    fn maybe_auto_commit(&mut self) {
        if !self.config.enable_auto_commit || self.group.is_none() || self.config.group_id.is_none() {
            return;
        }
        if self.last_auto_commit.elapsed() < self.config.auto_commit_interval {
            return;
        }
        if self.auto_commit_task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.last_auto_commit = Instant::now();
        let committed = self.last_committed();
        let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = self
            .consumed_offsets()
            .into_iter()
            .filter(|(tp, o)| committed.get(tp) != Some(&o.offset))
            .collect();
        if offsets.is_empty() {
            return;
        }
        match self.commit_offsets_async(offsets) {
            Ok(t) => self.auto_commit_task = Some(t),
            Err(e) => warn!(error = %e, "auto-commit not sent"),
        }
    }

    /// Returns up to `max.poll.records` records, waiting up to `timeout` for some. Also
    /// where rebalances reach the application (listener callbacks) and auto-commits happen.
    ///
    /// Cancellation-safe: records taken from the fetch buffer stay in the consumer until a
    /// `poll` returns them, so dropping this future loses none and moves no position.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        // Boxed: keeps the future of a caller's poll loop shallow (the compiler's layout
        // depth limit); one allocation per poll.
        Box::pin(self.fill_undelivered(timeout)).await?;
        self.apply_controls();
        Ok(self.take_undelivered(self.config.max_poll_records))
    }

    /// The body of `poll`: waits up to `timeout` until records wait in `undelivered` (or an
    /// error is due), without handing any out.
    async fn fill_undelivered(&mut self, timeout: Duration) -> Result<()> {
        self.instruments.poll_started(Instant::now());
        let r = self.fill_undelivered_inner(timeout).await;
        self.instruments.poll_ended(Instant::now());
        r
    }

    async fn fill_undelivered_inner(&mut self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(g) = &self.group {
            g.note_poll();
        }
        if self.undelivered.is_empty() {
            if let Some(e) = self.pending_error.take() {
                return Err(e);
            }
        }
        loop {
            self.apply_controls();
            self.handle_group_events().await?;
            self.maybe_auto_commit();
            self.update_positions().await?;
            self.drain()?;
            self.send_fetches(deadline).await;
            if !self.undelivered.is_empty() {
                return Ok(());
            }
            if let Some(e) = self.pending_error.take() {
                return Err(e);
            }
            // A broker backed off after an error gets its next fetch when the backoff ends,
            // not at the poll deadline.
            let now = Instant::now();
            let retry_at = self
                .node_backoff
                .values()
                .filter(|t| **t > now)
                .min()
                .map(|t| tokio::time::Instant::from_std(*t).min(deadline));
            let events = self.group.as_mut().map(|g| &mut g.events);
            tokio::select! {
                _ = async {
                    match retry_at {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => {}
                o = self.outcome_rx.recv() => {
                    if let Some(o) = o {
                        self.handle_outcome(o);
                        while let Ok(o) = self.outcome_rx.try_recv() {
                            self.handle_outcome(o);
                        }
                    }
                }
                ev = async {
                    match events {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some(ev) = ev {
                        self.handle_group_event(ev).await?;
                    }
                }
                _ = self.controls.wake.notified() => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
            }
            if tokio::time::Instant::now() >= deadline && self.completed.is_empty() {
                return Ok(());
            }
        }
    }

    /// The records as a stream (polls with `fetch.max.wait.ms` as the timeout, forever).
    ///
    /// Dropping the stream at any point loses nothing: records are handed out one at a
    /// time from the consumer's own buffer, so positions (and commits) stop at the last
    /// record the stream yielded, and the next `stream()` or `poll` continues from there.
    ///
    /// The stream borrows the consumer. To commit, seek, pause or resume while it runs, take
    /// a [`ConsumerHandle`] first ([`Consumer::handle`]). Or take a chunk, drop the stream,
    /// and commit:
    ///
    /// ```no_run
    /// # async fn demo(mut consumer: strom_client::Consumer) -> strom_client::Result<()> {
    /// use futures_util::{StreamExt, TryStreamExt};
    ///
    /// loop {
    ///     let chunk: Vec<_> = consumer.stream().take(100).try_collect().await?;
    ///     for record in &chunk {
    ///         println!("{}-{}@{}", record.topic, record.partition, record.offset);
    ///     }
    ///     consumer.commit_sync().await?; // the 100 records the stream yielded
    /// }
    /// # }
    /// ```
    pub fn stream(&mut self) -> impl Stream<Item = Result<ConsumerRecord>> + '_ {
        let wait = self.config.fetch_max_wait.max(Duration::from_millis(100));
        futures_util::stream::unfold(self, move |c| async move {
            loop {
                c.apply_controls();
                if let Some(r) = c.take_undelivered(1).pop() {
                    return Some((Ok(r), c));
                }
                // Boxed as in `poll`: keeps the stream future shallow, so the compiler can
                // lay out a caller that drives it from an `async fn` (depth limit).
                if let Err(e) = Box::pin(c.fill_undelivered(wait)).await {
                    return Some((Err(e), c));
                }
            }
        })
    }

    async fn handle_group_events(&mut self) -> Result<()> {
        loop {
            let ev = match self.group.as_mut().map(|g| g.events.try_recv()) {
                Some(Ok(ev)) => ev,
                _ => return Ok(()),
            };
            self.handle_group_event(ev).await?;
        }
    }

    async fn handle_group_event(&mut self, ev: GroupEvent) -> Result<()> {
        match ev {
            GroupEvent::Revoke(parts, done) => {
                self.revoke(parts, false).await;
                let _ = done.send(());
            }
            GroupEvent::Lost(parts, done) => {
                self.revoke(parts, true).await;
                let _ = done.send(());
            }
            GroupEvent::Assign(parts, done) => {
                self.metrics.rebalances += 1;
                for tp in &parts {
                    self.assignment.entry(tp.clone()).or_default();
                }
                self.counters
                    .coordinator
                    .assigned_partitions
                    .set(self.assignment.len() as f64);
                if let Some(mut l) = self.take_listener() {
                    let mut ctx = RebalanceContext::new(&self.assignment);
                    l.on_partitions_assigned(&parts, &mut ctx);
                    self.put_listener(l);
                    self.apply_context(ctx).await;
                }
                let _ = done.send(());
            }
            GroupEvent::Fatal(e) => return Err(e),
        }
        Ok(())
    }

    fn take_listener(&mut self) -> Option<Box<dyn RebalanceListener>> {
        self.listener.get_mut().unwrap_or_else(|p| p.into_inner()).take()
    }

    fn put_listener(&mut self, l: Box<dyn RebalanceListener>) {
        *self.listener.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(l);
    }

    /// Gives up partitions: auto-commit (unless lost), the listener, then drop them.
    async fn revoke(&mut self, parts: Vec<TopicPartition>, lost: bool) {
        if parts.is_empty() {
            return;
        }
        if !lost && self.config.enable_auto_commit {
            let committed = self.last_committed();
            let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = self
                .consumed_offsets()
                .into_iter()
                .filter(|(tp, o)| parts.contains(tp) && committed.get(tp) != Some(&o.offset))
                .collect();
            if let Err(e) = self.commit_offsets_sync(&offsets).await {
                warn!(error = %e, "auto-commit before revocation failed");
            }
        }
        if let Some(mut l) = self.take_listener() {
            let mut ctx = RebalanceContext::new(&self.assignment);
            if lost {
                l.on_partitions_lost(&parts, &mut ctx);
            } else {
                l.on_partitions_revoked(&parts, &mut ctx);
            }
            self.put_listener(l);
            self.apply_context(ctx).await;
        }
        for tp in &parts {
            self.assignment.remove(tp);
        }
        self.drop_buffered_unassigned();
    }

    async fn apply_context(&mut self, ctx: RebalanceContext) {
        let (commits, seeks) = ctx.into_parts();
        if !commits.is_empty() {
            if let Err(e) = self.commit_offsets_sync(&commits).await {
                warn!(error = %e, "commit requested by the rebalance listener failed");
            }
        }
        for (tp, offset) in seeks {
            if let Err(e) = self.seek(&tp, offset) {
                warn!(error = %e, "seek requested by the rebalance listener ignored");
            }
        }
    }

    /// Resolves missing positions: the committed offset when in a group, else (or when
    /// none) `auto.offset.reset`; explicit resets (seek_to_beginning/end) directly.
    async fn update_positions(&mut self) -> Result<()> {
        let missing: Vec<TopicPartition> = self
            .assignment
            .iter()
            .filter(|(_, s)| s.position.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        let mut to_reset: BTreeMap<TopicPartition, OffsetReset> = BTreeMap::new();
        let mut from_committed = Vec::new();
        for tp in missing {
            match self.assignment.get(&tp).and_then(|s| s.reset) {
                Some(r) => {
                    to_reset.insert(tp, r);
                }
                None => from_committed.push(tp),
            }
        }
        if !from_committed.is_empty() {
            let committed = match self.config.group_id.as_deref() {
                Some(group) => {
                    let who = self.identity();
                    offsets::fetch_committed(&self.client, group, Some(&who), &from_committed).await?
                }
                None => BTreeMap::new(),
            };
            for tp in from_committed {
                match committed.get(&tp) {
                    Some(o) => {
                        if let Some(st) = self.assignment.get_mut(&tp) {
                            debug!(%tp, offset = o.offset, "position from committed offset");
                            st.position = Some(o.offset);
                            st.epoch = o.leader_epoch;
                        }
                    }
                    None => {
                        to_reset.insert(tp, self.config.auto_offset_reset);
                    }
                }
            }
        }
        let mut by_spec: BTreeMap<(bool, Vec<u8>), Vec<TopicPartition>> = BTreeMap::new();
        for (tp, r) in to_reset {
            match r {
                OffsetReset::None => {
                    return Err(Error::kafka(ErrorCode::OffsetOutOfRange)
                        .with_context(format!(
                            "no committed offset for {tp} and auto.offset.reset=none (NoOffsetForPartition)"
                        ))
                        .with_partition(&tp.topic, tp.partition))
                }
                OffsetReset::Earliest => by_spec.entry((true, Vec::new())).or_default().push(tp),
                OffsetReset::Latest => by_spec.entry((false, Vec::new())).or_default().push(tp),
            }
        }
        for ((earliest, _), tps) in by_spec {
            let spec = if earliest {
                OffsetSpec::Earliest
            } else {
                OffsetSpec::Latest
            };
            let found = self.list(&tps, spec, self.read_committed()).await?;
            for (tp, offset) in found {
                if let Some(st) = self.assignment.get_mut(&tp) {
                    debug!(%tp, offset, earliest, "position reset");
                    st.position = Some(offset);
                    st.epoch = None;
                    st.reset = None;
                }
            }
        }
        Ok(())
    }

    /// Moves records from the buffered fetches to `undelivered` (up to `max.poll.records`
    /// waiting there), in order per partition, advancing fetch positions past them.
    fn drain(&mut self) -> Result<()> {
        let max = self.config.max_poll_records;
        let out = &mut self.undelivered;
        let mut skipped = VecDeque::new();
        while out.len() < max {
            let Some(mut cf) = self.completed.pop_front() else {
                break;
            };
            let Some(st) = self.assignment.get_mut(&cf.tp) else {
                self.buffered.remove(&cf.tp);
                self.buffered_bytes -= cf.size;
                continue;
            };
            if st.position != Some(cf.next_offset) {
                // Seeked (or reset) since this was fetched.
                self.buffered.remove(&cf.tp);
                self.buffered_bytes -= cf.size;
                continue;
            }
            if st.paused {
                skipped.push_back(cf);
                continue;
            }
            let mut failed = None;
            while out.len() < max {
                match cf.next_record(&self.opts) {
                    Ok(Some(r)) => out.push_back(r),
                    Ok(None) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            st.position = Some(cf.next_offset);
            if cf.last_epoch.is_some() {
                st.epoch = cf.last_epoch;
            }
            if let Some(e) = failed {
                self.buffered.remove(&cf.tp);
                self.buffered_bytes -= cf.size;
                if out.is_empty() {
                    self.completed.extend(skipped);
                    return Err(e);
                }
                self.pending_error = Some(e);
                break;
            }
            if cf.is_drained() {
                self.buffered.remove(&cf.tp);
                self.buffered_bytes -= cf.size;
            } else {
                self.completed.push_front(cf);
            }
        }
        self.completed.extend(skipped);
        Ok(())
    }

    /// Sends a Fetch to every broker that leads a fetchable partition and has none in flight.
    async fn send_fetches(&mut self, deadline: tokio::time::Instant) {
        if self.buffered_bytes > self.config.fetch_max_bytes as usize {
            return;
        }
        let now = Instant::now();
        let mut md = self.client.metadata();
        let missing: BTreeSet<Arc<str>> = self
            .assignment
            .keys()
            .filter(|tp| md.topic(&tp.topic).is_none())
            .map(|tp| tp.topic.clone())
            .collect();
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|t| &**t).collect();
            // Bounded by the poll's deadline: with the cluster unreachable the refresh would
            // retry for default.api.timeout.ms, and poll must return in time.
            match tokio::time::timeout_at(deadline, self.client.refresh_metadata(Some(&names))).await {
                Ok(Ok(m)) => md = m,
                Ok(Err(e)) => debug!(error = %e, "metadata refresh for fetching failed"),
                Err(_) => debug!("metadata refresh for fetching: poll timeout reached"),
            }
        }
        let mut by_node: BTreeMap<i32, Vec<Wanted>> = BTreeMap::new();
        let mut stale = BTreeSet::new();
        let mut buffered_nodes = BTreeSet::new();
        for (tp, st) in &self.assignment {
            let Some(position) = st.position else { continue };
            if st.paused {
                continue;
            }
            let Some(info) = md.topic(&tp.topic) else {
                continue;
            };
            let Some(p) = info.partitions.iter().find(|p| p.partition == tp.partition) else {
                stale.insert(tp.topic.clone());
                continue;
            };
            let node = match st.preferred_replica {
                Some((r, until)) if until > now && md.brokers.contains_key(&r) => r,
                _ => p.leader,
            };
            if node < 0 {
                stale.insert(tp.topic.clone());
                continue;
            }
            if self.buffered.contains(tp) {
                buffered_nodes.insert(node);
                continue;
            }
            by_node.entry(node).or_default().push(Wanted {
                tp: tp.clone(),
                topic_id: info.topic_id,
                fetch: PartitionFetch {
                    fetch_offset: position,
                    current_leader_epoch: p.leader_epoch,
                    last_fetched_epoch: st.epoch.unwrap_or(-1),
                    max_bytes: self.config.max_partition_fetch_bytes,
                },
            });
        }
        for t in stale {
            self.client.invalidate_topic(&t);
        }
        let params = FetchParams {
            max_wait_ms: i32::try_from(self.config.fetch_max_wait.as_millis()).unwrap_or(i32::MAX),
            min_bytes: self.config.fetch_min_bytes,
            max_bytes: self.config.fetch_max_bytes,
            isolation_level: i8::from(self.read_committed()),
            rack_id: self.config.client_rack.clone().unwrap_or_default(),
        };
        for (node, wanted) in by_node {
            // Java's "buffered node" rule: a broker whose partitions still have unread data
            // is not fetched from, so the next Fetch names all its partitions at once instead
            // of a caught-up one alone being held for fetch.max.wait.ms while the rest wait.
            if self.in_flight.contains(&node)
                || buffered_nodes.contains(&node)
                || self.node_backoff.get(&node).is_some_and(|t| *t > now)
            {
                continue;
            }
            self.in_flight.insert(node);
            let session = self.sessions.entry(node).or_default().clone();
            let client = self.client.clone();
            let tx = self.outcome_tx.clone();
            let params = params.clone();
            tokio::spawn(async move {
                let outcome = fetch_once(&client, node, &session, &wanted, &params).await;
                let _ = tx.send(outcome);
            });
        }
    }

    fn handle_outcome(&mut self, o: FetchOutcome) {
        self.in_flight.remove(&o.node);
        self.metrics.fetches += 1;
        self.instruments.fetch.add(1);
        let resp = match o.result {
            Ok(r) => {
                self.instruments.fetch_latency.record_duration(o.latency);
                self.instruments
                    .fetch_throttle_time
                    .record_duration(Duration::from_millis(u64::try_from(r.throttle_time_ms).unwrap_or(0)));
                r
            }
            Err(e) => {
                debug!(node = o.node, error = %e, "fetch failed");
                self.node_backoff
                    .insert(o.node, Instant::now() + self.client.config().retry_backoff);
                let topics: BTreeSet<Arc<str>> = self.assignment.keys().map(|tp| tp.topic.clone()).collect();
                for t in topics {
                    self.client.invalidate_topic(&t);
                }
                for st in self.assignment.values_mut() {
                    st.preferred_replica = None;
                }
                return;
            }
        };
        if !o.full {
            self.metrics.incremental_fetches += 1;
        }
        let code = ErrorCode::from(resp.error_code);
        if !code.is_ok() {
            if matches!(
                code,
                ErrorCode::FetchSessionIdNotFound
                    | ErrorCode::InvalidFetchSessionEpoch
                    | ErrorCode::FetchSessionTopicIdError
            ) {
                self.metrics.fetch_session_resets += 1;
            }
            debug!(node = o.node, error = %code, full = o.full, "fetch error");
            self.node_backoff
                .insert(o.node, Instant::now() + self.client.config().retry_backoff);
            return;
        }
        let read_committed = self.read_committed();
        let metadata_max_age = self.client.config().metadata_max_age;
        let mut fetch_size = 0u64;
        let mut tally: Option<Arc<FetchTally>> = None;
        for t in resp.responses {
            let topic: Arc<str> = if o.by_id {
                match o.names.get(&t.topic_id) {
                    Some(n) => n.clone(),
                    None => continue,
                }
            } else {
                Arc::from(t.topic.0.as_str())
            };
            for pd in t.partitions {
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition: pd.partition_index,
                };
                let Some(st) = self.assignment.get_mut(&tp) else {
                    continue;
                };
                let Some(&fetched) = o.offsets.get(&tp) else { continue };
                if st.position != Some(fetched) || self.buffered.contains(&tp) {
                    continue;
                }
                let code = ErrorCode::from(pd.error_code);
                match fetcher::partition_error_action(code) {
                    PartitionErrorAction::Ok => {
                        if pd.high_watermark >= 0 {
                            st.high_watermark = Some(pd.high_watermark);
                        }
                        if pd.last_stable_offset >= 0 {
                            st.last_stable_offset = Some(pd.last_stable_offset);
                        }
                        let end = if read_committed {
                            st.last_stable_offset
                        } else {
                            st.high_watermark
                        };
                        if let Some(end) = end {
                            self.instruments.lag(&tp.topic, tp.partition, (end - fetched).max(0));
                        }
                        if pd.log_start_offset >= 0 {
                            st.log_start_offset = Some(pd.log_start_offset);
                            self.instruments
                                .lead(&tp.topic, tp.partition, fetched - pd.log_start_offset);
                        }
                        // KIP-320: the leader's log diverges from what this consumer read
                        // (an unclean election truncated it); the response has no records.
                        let diverging = &pd.diverging_epoch;
                        if diverging.epoch >= 0 && diverging.end_offset >= 0 {
                            let (epoch, end) = (diverging.epoch, diverging.end_offset);
                            st.preferred_replica = None;
                            if end >= fetched {
                                // Nothing this consumer read was lost: continue, under the
                                // epoch the leader knows.
                                st.epoch = Some(epoch);
                            } else if self.config.auto_offset_reset == OffsetReset::None {
                                self.pending_error = Some(
                                    Error::kafka(ErrorCode::OffsetOutOfRange)
                                        .with_context(format!(
                                    "log truncation detected for {tp}: the records from offset {end} (leader epoch \
                                     {epoch}) to {fetched} this consumer read are no longer in the log, and \
                                     auto.offset.reset=none; seek to {end} to continue"
                                    ))
                                        .with_partition(&tp.topic, tp.partition),
                                );
                            } else {
                                // As Java: with a reset policy, continue from the first offset
                                // known to diverge (no record skipped, none read twice).
                                warn!(%tp, position = fetched, divergence = end, epoch,
                                    "log truncation detected, resetting to the first offset known to diverge");
                                self.metrics.truncations_detected += 1;
                                st.position = Some(end);
                                st.epoch = Some(epoch);
                            }
                            continue;
                        }
                        let replica = pd.preferred_read_replica.0;
                        if replica >= 0 {
                            debug!(%tp, replica, "fetching from the preferred read replica (KIP-392)");
                            st.preferred_replica = Some((replica, Instant::now() + metadata_max_age));
                        }
                        let current = st
                            .preferred_replica
                            .filter(|(_, until)| *until > Instant::now())
                            .map_or(-1, |(r, _)| r);
                        self.instruments
                            .preferred_read_replica(&tp.topic, tp.partition, current);
                        let Some(records) = pd.records.filter(|r| !r.is_empty()) else {
                            continue;
                        };
                        self.metrics.bytes_fetched += records.len() as u64;
                        fetch_size += records.len() as u64;
                        self.instruments.fetched_bytes(&tp.topic, records.len() as u64);
                        let aborted = pd
                            .aborted_transactions
                            .unwrap_or_default()
                            .iter()
                            .map(|a| (a.first_offset, a.producer_id.0))
                            .collect();
                        let tally = tally
                            .get_or_insert_with(|| {
                                Arc::new(FetchTally::new(self.instruments.records_per_request.clone()))
                            })
                            .clone();
                        let cf = CompletedFetch::new(
                            tp.clone(),
                            fetched,
                            records,
                            aborted,
                            read_committed,
                            self.opts,
                            Some(tally),
                        );
                        self.buffered_bytes += cf.size;
                        self.buffered.insert(tp);
                        self.completed.push_back(cf);
                    }
                    PartitionErrorAction::RefreshMetadata => {
                        debug!(%tp, error = %code, "fetch: refreshing metadata");
                        st.preferred_replica = None;
                        self.client.invalidate_topic(&tp.topic);
                        // As Java: the next fetch (and metadata lookup) after retry.backoff.ms,
                        // not in a tight loop while metadata still names the old leader.
                        self.node_backoff
                            .insert(o.node, Instant::now() + self.client.config().retry_backoff);
                    }
                    PartitionErrorAction::OutOfRange => {
                        if st.preferred_replica.take().is_some() {
                            // A follower may lag the leader: ask the leader before resetting.
                            continue;
                        }
                        match self.config.auto_offset_reset {
                            OffsetReset::None => {
                                self.pending_error = Some(
                                    Error::kafka(code)
                                        .with_context(format!(
                                            "{tp} offset {fetched} is out of range and auto.offset.reset=none"
                                        ))
                                        .with_partition(&tp.topic, tp.partition),
                                );
                            }
                            r => {
                                warn!(%tp, offset = fetched, reset = ?r, "offset out of range, resetting");
                                st.position = None;
                                st.reset = Some(r);
                            }
                        }
                    }
                    PartitionErrorAction::Fatal => {
                        self.pending_error = Some(
                            Error::kafka(code)
                                .with_context(format!("fetching {tp}"))
                                .with_partition(&tp.topic, tp.partition),
                        );
                    }
                }
            }
        }
        self.instruments.fetch_size.record(fetch_size);
    }

    /// Commits what was consumed when `enable.auto.commit`, leaves the group (static members
    /// stay, as Java's), and stops the background tasks.
    ///
    /// A consumer dropped without `close` still leaves its group (in the background, best
    /// effort, bounded to 10 s, when dropped inside a tokio runtime, as librdkafka does), so
    /// the group rebalances at once instead of after `session.timeout.ms`; but it commits
    /// nothing and runs no rebalance listener.
    pub async fn close(mut self) -> Result<()> {
        if let Some(g) = self.group.take() {
            let owned: Vec<TopicPartition> = self.assignment.keys().cloned().collect();
            if let Some(t) = self.auto_commit_task.take() {
                let _ = t.await;
            }
            self.revoke(owned, false).await;
            g.leave().await;
        }
        Ok(())
    }
}

async fn do_commit(
    client: &Client,
    group: &str,
    who: Member<'_>,
    offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
    counters: &SharedCounters,
) -> Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    let started = Instant::now();
    match offsets::commit(client, group, who, offsets).await {
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

async fn fetch_once(
    client: &Client,
    node: i32,
    session: &Mutex<FetchSession>,
    wanted: &[Wanted],
    params: &FetchParams,
) -> FetchOutcome {
    let fail = |e: Error| FetchOutcome {
        node,
        full: true,
        offsets: HashMap::new(),
        names: HashMap::new(),
        by_id: false,
        latency: Duration::ZERO,
        result: Err(e),
    };
    let conn = match client.broker(node).await {
        Ok(c) => c,
        Err(e) => {
            if let Ok(mut s) = session.lock() {
                s.reset();
            }
            return fail(e);
        }
    };
    let v = match conn.versions().version(ApiKey::Fetch) {
        Ok(v) => v,
        Err(e) => return fail(e.into()),
    };
    // Fetch v13+ names topics by id (KIP-516); without ids (old metadata) stay at v12.
    let by_id = v >= 13 && wanted.iter().all(|w| !w.topic_id.is_nil());
    let v = if by_id { v } else { v.min(12) };
    let built = match session.lock() {
        Ok(mut s) => s.build(wanted, params, by_id),
        Err(_) => return fail(Error::internal("fetch session state poisoned")),
    };
    let sent = Instant::now();
    let result = conn.send_version(&built.request, v).await;
    let latency = sent.elapsed();
    match (&result, session.lock()) {
        (Ok(r), Ok(mut s)) => {
            let code = ErrorCode::from(r.error_code);
            if !s.on_response(built.full, code, r.session_id) {
                debug!(node, error = %code, "fetch session reset");
            }
        }
        (Err(_), Ok(mut s)) => s.reset(),
        (_, Err(_)) => {}
    }
    FetchOutcome {
        node,
        full: built.full,
        offsets: built.offsets,
        names: built.names,
        by_id,
        latency,
        result,
    }
}
