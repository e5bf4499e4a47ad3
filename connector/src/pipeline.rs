//! A pipeline: source → user functions → sink, checkpointed (Flink's job of one source, a
//! chain of `map` / `filter` / `flatMap` / `process`, and one sink, run by one subtask). The
//! source is any [`Source`]: a [`KafkaSource`] or one of the user's; the sink is any
//! [`TwoPhaseCommitSink`]: a [`KafkaSink`], the exactly-once
//! [`FileSink`](crate::file_sink::FileSink), or one of the user's.
//!
//! ```no_run
//! # async fn run() -> strom_connector::Result<()> {
//! use std::time::Duration;
//! use strom_connector::checkpoint::FileCheckpointStore;
//! use strom_connector::pipeline::Pipeline;
//! use strom_connector::sink::{DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, StringSerializer};
//! use strom_connector::source::{deserializer, KafkaSource, OffsetsInitializer};
//!
//! let source = KafkaSource::builder()
//!     .bootstrap_servers("127.0.0.1:9092")
//!     .topics(["input"])
//!     .property("isolation.level", "read_committed")
//!     .bounded(OffsetsInitializer::latest())
//!     .deserializer(deserializer::string())
//!     .build()?;
//! let sink = KafkaSink::builder()
//!     .bootstrap_servers("127.0.0.1:9092")
//!     .record_serializer(KafkaRecordSerializationSchema::builder().topic("output").value_serializer(StringSerializer).build()?)
//!     .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
//!     .transactional_id_prefix("upper")
//!     .build()?;
//! let summary = Pipeline::new(source, sink)
//!     .filter(|s: &String| !s.is_empty())
//!     .map(|s: String| s.to_uppercase())
//!     .checkpoint_interval(Duration::from_secs(1))
//!     .checkpoint_store(FileCheckpointStore::new("/var/lib/upper/checkpoints")?)
//!     .subtask(0, 1)
//!     .run()
//!     .await?;
//! println!("{} in, {} out", summary.records_in, summary.records_out);
//! # Ok(())
//! # }
//! ```
//!
//! # What a run does
//!
//! 1. Loads the newest intact checkpoint from the [`CheckpointStore`] (none on a first start).
//! 2. Restores the sink writer ([`TwoPhaseCommitSink::restore_writer`]): commits the
//!    checkpoint's pending committables and aborts what a crashed run left (for a
//!    [`KafkaSink`], the transactions left open, so read_committed readers downstream are
//!    unblocked before anything is read; for a file sink, its in-progress parts).
//! 3. Restores the enumerator state and the source splits at their checkpointed positions
//!    (or discovers the initial splits), and starts reading.
//! 4. Polls the source, runs each element through the user functions, writes the results
//!    (each with its timestamp as record timestamp: the element's event time, or one a
//!    [`Pipeline::process`] function gave it); every checkpoint interval it takes
//!    a checkpoint:
//!    sink pre-commit → sink writer state → source split states and enumerator state → one
//!    [`PipelineCheckpoint`] stored durably → sink transactions committed → source and sink
//!    told the checkpoint is complete (the source then commits its offsets to the group, for
//!    monitoring only).
//! 5. At the end of the input (`KafkaSourceBuilder::bounded`, or `unbounded` with stopping
//!    offsets, as the seed documents `setUnbounded`: every split reached its stopping offset,
//!    and with partition discovery on, the next discovery found no new partition), or when
//!    the stop future of [`Pipeline::run_until`] completes: a final checkpoint, its commit,
//!    and a clean close. Returns a [`PipelineSummary`]. An unbounded source without stopping
//!    offsets runs until stopped.
//!
//! A crash at any instant loses and duplicates nothing downstream under exactly-once: what
//! was committed is in the last stored checkpoint's positions; what was written after it is
//! in transactions that step 2 aborts (or commits, when the crash came between the store and
//! the commit) before the source resumes from those positions. Under at-least-once the
//! records after the last checkpoint are written again (duplicates, no loss).
//!
//! # Scale-out
//!
//! Run N processes with `.subtask(i, N)`: each reads the partitions Flink's owner formula
//! gives it ([`crate::source::split_owner`]); the sink's transactional ids carry the subtask
//! index, so the processes never fence each other. Each has its own checkpoint store, or all
//! share one checkpoint location ([`Pipeline::checkpoint_location`]), which allows rescaling.
//! For processes that join and leave at will, with no checkpoint store, see elastic mode
//! ([`Pipeline::elastic`], [`crate::elastic`]).
//!
//! # Rescaling
//!
//! With a checkpoint location shared by every subtask (one directory, or a Kafka topic),
//! stop all processes and start them again with another parallelism. Each new subtask
//! reads the newest checkpoint of every subtask in the location, and when one of another
//! parallelism is newer than its own, takes over ([`Source::redistribute`]):
//!
//! * the splits it owns under the new parallelism (Flink's owner formula), each from the
//!   newest checkpoint that holds it, at its position (a partition finished there stays
//!   finished), with the union of the enumerator states;
//! * the sink state of every old subtask `j` with `j mod parallelism == subtask`: their
//!   pending committables are committed and the transactions they may have left open are
//!   aborted (Flink's behaviour on rescale);
//! * checkpoint ids above every one found.
//!
//! Before it reads anything, it stores that state as a checkpoint of its own, so a crash of
//! the new generation at any instant restores the same. Old subtasks may be killed at any
//! instant before; the new generation loses and duplicates nothing. Without a location
//! (a store per subtask), restoring under another subtask index or parallelism is refused.
//!
//! # Crash injection (tests only: the `crash-injection` feature)
//!
//! With the cargo feature `crash-injection` (off by default; this crate's own tests turn it
//! on through a dev-dependency on itself, so `cargo test` has it and `cargo build` does
//! not), `Pipeline::crash_at` or the environment variable `STROM_PIPELINE_CRASH_AT`
//! (read when [`Pipeline::run`] starts; syntax in `CrashAt`'s `FromStr`) make the run crash
//! at a chosen point: `records:N` (after N elements of this run), `before-precommit:C`,
//! `after-precommit:C`, `after-store:C`, `during-commit:C`, `after-commit:C` (at checkpoint
//! C; `+C` counts checkpoints of this run). From the environment the process aborts
//! (`SIGABRT`: nothing is flushed or closed, as after `kill -9`). Without the feature none
//! of this is compiled: the variable is not read and nothing in a pipeline can abort the
//! process.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::checkpoint::{CheckpointLocation, CheckpointStore, MemoryCheckpointStore};
#[cfg(feature = "crash-injection")]
use crate::crash::{crash, crash_from_env};
#[cfg(feature = "crash-injection")]
pub use crate::crash::{CrashAction, CrashAt, CrashStage, CRASH_AT_ENV};
use crate::metrics::PipelineMetrics;
use crate::process::ProcessContext;
use crate::restart::{is_recoverable, RestartStrategy, RestartTracker};
use crate::sink::{KafkaCommittable, KafkaSink, KafkaWriterState, SinkCommitter, SinkWriter, TwoPhaseCommitSink};
use crate::source::{
    EnumeratorState, KafkaPartitionSplit, KafkaSource, Source, SourceElement, SourceEnumerator, SplitReader,
    WatermarkEvent, WatermarkStrategy,
};
use crate::{ConnectorError, Result};

mod facade;
mod functions;
mod restore;
pub(crate) use functions::Chain;

/// Flink's default checkpoint interval is "off"; a pipeline always checkpoints, by default
/// every 10 s.
pub const DEFAULT_CHECKPOINT_INTERVAL: Duration = Duration::from_secs(10);

/// Flink's `pipeline.auto-watermark-interval`.
pub(crate) const WATERMARK_INTERVAL: Duration = Duration::from_millis(200);

/// Format version of [`PipelineCheckpoint`].
pub const CHECKPOINT_FORMAT: u32 = 1;

/// What one checkpoint of a pipeline stores (as JSON, through the [`CheckpointStore`]).
/// Generic over the sink's committable and writer state and the source's split and enumerator
/// state; the defaults are the Kafka sink's and source's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "C: Serialize, W: Serialize, Sp: Serialize, E: Serialize",
    deserialize = "C: Deserialize<'de>, W: Deserialize<'de>, Sp: Deserialize<'de>, E: Deserialize<'de>"
))]
pub struct PipelineCheckpoint<C = KafkaCommittable, W = KafkaWriterState, Sp = KafkaPartitionSplit, E = EnumeratorState>
{
    /// [`CHECKPOINT_FORMAT`].
    pub format: u32,
    /// Checkpoint id (increasing across restarts).
    pub checkpoint_id: u64,
    /// Subtask index of the pipeline that wrote it.
    pub subtask: usize,
    /// Parallelism then.
    pub parallelism: usize,
    /// The source reader's unfinished splits at their positions.
    pub source_splits: Vec<Sp>,
    /// The enumerator's state (partitions handed out, initial discovery done).
    pub enumerator: E,
    /// Sink transactions pre-committed at this checkpoint, committed once it is stored.
    pub committables: Vec<C>,
    /// The sink writer's state.
    pub writer_state: W,
    /// Records read by the source up to this checkpoint (all runs; informative).
    pub records_in: u64,
    /// Elements written to the sink up to this checkpoint (all runs; informative).
    pub records_out: u64,
}

/// The checkpoint of a pipeline reading `I` from source `R` and writing `O` to sink `S`.
type CheckpointOf<I, O, S, R> = PipelineCheckpoint<
    <S as TwoPhaseCommitSink<O>>::Committable,
    <S as TwoPhaseCommitSink<O>>::WriterState,
    <R as Source<I>>::Split,
    <R as Source<I>>::EnumeratorState,
>;

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PipelineEnd {
    /// Every split finished and no split can come any more (a bounded source, or an
    /// unbounded one with stopping offsets).
    EndOfInput,
    /// The stop future of [`Pipeline::run_until`] completed.
    Stopped,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSummary {
    /// How it ended.
    pub end: PipelineEnd,
    /// Records the source emitted in this run.
    pub records_in: u64,
    /// Elements written to the sink in this run.
    pub records_out: u64,
    /// Checkpoints completed in this run (the final one included).
    pub checkpoints: u64,
    /// The last checkpoint id.
    pub last_checkpoint_id: u64,
    /// The checkpoint this run restored from.
    pub restored_from: Option<u64>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Restarts made by the restart strategy ([`Pipeline::restart_strategy`]); the counts
    /// above are those of the last attempt.
    pub restarts: u32,
}

/// A source, a chain of user functions from `I` to `C`, and a sink of `O`; runnable once
/// `C == O`. The [module docs](self) say what a run does.
///
/// ```no_run
/// # async fn run() -> strom_connector::Result<()> {
/// use std::time::Duration;
/// use strom_connector::checkpoint::FileCheckpointStore;
/// use strom_connector::sink::{DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, StringSerializer};
/// use strom_connector::source::{deserializer, KafkaSource, OffsetsInitializer};
/// use strom_connector::Pipeline;
///
/// let source = KafkaSource::builder()
///     .bootstrap_servers("127.0.0.1:9092")
///     .topics(["orders"])
///     .group_id("orders-upper") // offsets committed on checkpoints, for monitoring
///     .starting_offsets(OffsetsInitializer::earliest())
///     .deserializer(deserializer::string())
///     .build()?;
/// let sink = KafkaSink::builder()
///     .bootstrap_servers("127.0.0.1:9092")
///     .record_serializer(
///         KafkaRecordSerializationSchema::builder().topic("orders-upper").value_serializer(StringSerializer).build()?,
///     )
///     .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
///     .transactional_id_prefix("orders-upper")
///     .transaction_timeout(Duration::from_secs(15 * 60))
///     .build()?;
/// let pipeline = Pipeline::new(source, sink)
///     .flat_map(|line: String| line.split_whitespace().map(str::to_uppercase).collect::<Vec<_>>())
///     .checkpoint_interval(Duration::from_secs(5))
///     .checkpoint_store(FileCheckpointStore::new("/var/lib/orders-upper")?)
///     .subtask(0, 1);
/// let metrics = pipeline.metrics(); // shared counters, readable while it runs
/// // Runs until `stop` is sent (or dropped): then a final checkpoint, its commit, a clean close.
/// let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
/// # drop(stop);
/// let summary = pipeline.run_until(async { stopped.await.unwrap_or(()) }).await?;
/// println!("{summary:?}; {metrics:?}");
/// # Ok(())
/// # }
/// ```
///
/// `connector/examples/exactly_once_pipeline.rs` is a complete program.
pub struct Pipeline<I, C, O, S = KafkaSink<O>, R = KafkaSource<I>> {
    source: R,
    sink: S,
    chain: Chain<I, C>,
    watermarks: WatermarkStrategy<I>,
    checkpoint_interval: Duration,
    store: Arc<dyn CheckpointStore>,
    location: Option<Arc<dyn CheckpointLocation>>,
    subtask: usize,
    parallelism: usize,
    metrics: PipelineMetrics,
    #[cfg(feature = "crash-injection")]
    crash: Option<(CrashAt, CrashAction)>,
    poll_timeout: Duration,
    /// Elastic mode's member name ([`Pipeline::elastic`]).
    elastic: Option<String>,
    restart: RestartStrategy,
    /// A checkpoint store or a subtask was set (elastic mode has neither).
    checkpointed_settings: bool,
    _output: PhantomData<fn(O)>,
}

impl<I, C, O, S: fmt::Debug, R: fmt::Debug> fmt::Debug for Pipeline<I, C, O, S, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Pipeline");
        d.field("source", &self.source)
            .field("sink", &self.sink)
            .field("checkpoint_interval", &self.checkpoint_interval)
            .field("store", &self.store)
            .field("location", &self.location)
            .field("subtask", &self.subtask)
            .field("parallelism", &self.parallelism)
            .field("elastic", &self.elastic)
            .field("restart", &self.restart);
        #[cfg(feature = "crash-injection")]
        d.field("crash", &self.crash);
        d.finish_non_exhaustive()
    }
}

impl<I: 'static, O, S: TwoPhaseCommitSink<O>, R: Source<I>> Pipeline<I, I, O, S, R> {
    /// A pipeline from `source` to `sink` (any [`TwoPhaseCommitSink`]: a [`KafkaSink`], a
    /// [`FileSink`](crate::file_sink::FileSink), ...) with no user function yet (add them with
    /// [`Self::map`], [`Self::filter`], [`Self::flat_map`], [`Self::process`] and their `try_`
    /// forms), subtask 0 of 1, checkpoints every [`DEFAULT_CHECKPOINT_INTERVAL`] into a
    /// [`MemoryCheckpointStore`], like Flink's default in-memory checkpoint storage: it does
    /// not survive the process, so a restarted process starts over from the starting offsets
    /// (duplicating output). Set a [`crate::checkpoint::FileCheckpointStore`] for recovery.
    pub fn new(source: R, sink: S) -> Self {
        Pipeline {
            source,
            sink,
            chain: Box::new(|ctx, i, emit| emit(i, ctx.timestamp())),
            watermarks: WatermarkStrategy::no_watermarks(),
            checkpoint_interval: DEFAULT_CHECKPOINT_INTERVAL,
            store: Arc::new(MemoryCheckpointStore::new()),
            location: None,
            subtask: 0,
            parallelism: 1,
            metrics: PipelineMetrics::default(),
            #[cfg(feature = "crash-injection")]
            crash: None,
            poll_timeout: Duration::from_millis(100),
            elastic: None,
            checkpointed_settings: false,
            restart: RestartStrategy::None,
            _output: PhantomData,
        }
    }

    /// How event time and watermarks are made for the source's elements (default: no
    /// watermarks, event time = record timestamp).
    pub fn watermark_strategy(mut self, strategy: WatermarkStrategy<I>) -> Self {
        self.watermarks = strategy;
        self
    }
}

impl<I: 'static, C: 'static, O, S, R> Pipeline<I, C, O, S, R> {
    fn with_chain<D>(self, build: impl FnOnce(Chain<I, C>) -> Chain<I, D>) -> Pipeline<I, D, O, S, R> {
        Pipeline {
            source: self.source,
            sink: self.sink,
            chain: build(self.chain),
            watermarks: self.watermarks,
            checkpoint_interval: self.checkpoint_interval,
            store: self.store,
            location: self.location,
            subtask: self.subtask,
            parallelism: self.parallelism,
            metrics: self.metrics,
            #[cfg(feature = "crash-injection")]
            crash: self.crash,
            poll_timeout: self.poll_timeout,
            elastic: self.elastic,
            checkpointed_settings: self.checkpointed_settings,
            restart: self.restart,
            _output: PhantomData,
        }
    }

    /// How often to checkpoint (measured from the start of one checkpoint to the next).
    pub fn checkpoint_interval(mut self, interval: Duration) -> Self {
        self.checkpoint_interval = interval;
        self
    }

    /// Where checkpoints go (default: memory).
    pub fn checkpoint_store(mut self, store: impl CheckpointStore + 'static) -> Self {
        self.store = Arc::new(store);
        self.checkpointed_settings = true;
        self
    }

    /// [`Self::checkpoint_store`] with a store shared with the caller (to inspect it, or to
    /// reuse a memory store across runs in one process).
    pub fn checkpoint_store_shared(mut self, store: Arc<dyn CheckpointStore>) -> Self {
        self.store = store;
        self.checkpointed_settings = true;
        self
    }

    /// Where every subtask of this pipeline keeps its checkpoints (overrides
    /// [`Self::checkpoint_store`]): a [`crate::checkpoint::FileCheckpointLocation`] (one
    /// directory, for one machine or a shared filesystem), a
    /// [`crate::checkpoint::MemoryCheckpointLocation`], or a store in Kafka itself. With a
    /// location the pipeline can be restarted with another parallelism: see the module docs,
    /// "Rescaling".
    pub fn checkpoint_location(mut self, location: impl CheckpointLocation + 'static) -> Self {
        self.location = Some(Arc::new(location));
        self.checkpointed_settings = true;
        self
    }

    /// [`Self::checkpoint_location`] shared with the caller.
    pub fn checkpoint_location_shared(mut self, location: Arc<dyn CheckpointLocation>) -> Self {
        self.location = Some(location);
        self.checkpointed_settings = true;
        self
    }

    /// This process is subtask `index` of `parallelism` (default 0 of 1).
    pub fn subtask(mut self, index: usize, parallelism: usize) -> Self {
        self.subtask = index;
        self.parallelism = parallelism;
        self.checkpointed_settings = true;
        self
    }

    /// How the pipeline recovers from a failure by itself (default
    /// [`RestartStrategy::none`]: the first failure ends the run): after a failure a restart
    /// can cure, it waits the strategy's delay and runs again from its newest checkpoint (see
    /// [`crate::restart`]). Restores need a checkpoint store that outlives the failed
    /// attempt: any store does within one process, the memory store included.
    pub fn restart_strategy(mut self, strategy: RestartStrategy) -> Self {
        self.restart = strategy;
        self
    }

    /// Runs in elastic mode as member `member` of the source's consumer group (see
    /// [`crate::elastic`]): processes join and leave at will, the group coordinator moves
    /// partitions between them, and each commits its outputs and consumed offsets in one
    /// transaction every [`Self::checkpoint_interval`]. No checkpoint store and no subtask:
    /// setting either is refused when the run starts. `member` names this process (its
    /// transactional id is `<prefix>-elastic-<member>`): unique in the group, and the same
    /// when a process restarts, so the restart fences the old one at once.
    pub fn elastic(mut self, member: impl Into<String>) -> Self {
        self.elastic = Some(member.into());
        self
    }

    /// How long one poll of the source waits for records at most (default 100 ms).
    pub fn poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// Crash on purpose at `at` (tests; see the module docs). Overrides [`CRASH_AT_ENV`].
    /// Only with the `crash-injection` feature.
    #[cfg(feature = "crash-injection")]
    pub fn crash_at(mut self, at: CrashAt, action: CrashAction) -> Self {
        self.crash = Some((at, action));
        self
    }

    /// The live metrics of this pipeline; clone it before [`Self::run`] to watch the run.
    pub fn metrics(&self) -> PipelineMetrics {
        self.metrics.clone()
    }
}

/// A run in progress: everything [`Pipeline::run_until`] drives.
struct Running<I, O, S: TwoPhaseCommitSink<O>, R: Source<I>> {
    reader: R::Reader,
    writer: S::Writer,
    committer: S::Committer,
    enumerator: R::Enumerator,
    store: Arc<dyn CheckpointStore>,
    metrics: PipelineMetrics,
    #[cfg(feature = "crash-injection")]
    crash: Option<(CrashAt, CrashAction)>,
    subtask: usize,
    parallelism: usize,
    /// First checkpoint id of this run (for relative crash points).
    #[cfg(feature = "crash-injection")]
    first_checkpoint: u64,
    next_checkpoint_id: u64,
    checkpoints: u64,
    records_in: u64,
    records_out: u64,
    /// The source has stopping offsets: the run ends when every split reached its stop and
    /// no split can come any more (bounded, or `unbounded(stopping)` as the seed says).
    ends_at_stops: bool,
    /// Totals up to the restored checkpoint.
    base_in: u64,
    base_out: u64,
}

impl<I, O, S: TwoPhaseCommitSink<O>, R: Source<I>> Running<I, O, S, R> {
    /// The crash point, if `stage` at checkpoint `id` is where it fires.
    #[cfg(feature = "crash-injection")]
    fn crash_due(&self, stage: CrashStage, id: u64) -> Option<(CrashAt, CrashAction)> {
        let (at, action) = self.crash?;
        let due = at.stage == stage
            && if at.relative {
                id + 1 == self.first_checkpoint + at.n
            } else {
                id == at.n
            };
        due.then_some((at, action))
    }

    /// Fires the crash point if it is due at `stage` of checkpoint `id`.
    #[cfg(feature = "crash-injection")]
    fn crash_check(&self, stage: CrashStage, id: u64) -> Result<()> {
        match self.crash_due(stage, id) {
            Some((at, action)) => crash(at, action),
            None => Ok(()),
        }
    }

    async fn checkpoint(&mut self, id: u64) -> Result<()> {
        let started = Instant::now();
        #[cfg(feature = "crash-injection")]
        self.crash_check(CrashStage::BeforePreCommit, id)?;
        let committables = self.writer.pre_commit(id).await?;
        #[cfg(feature = "crash-injection")]
        self.crash_check(CrashStage::AfterPreCommit, id)?;
        let record: CheckpointOf<I, O, S, R> = PipelineCheckpoint {
            format: CHECKPOINT_FORMAT,
            checkpoint_id: id,
            subtask: self.subtask,
            parallelism: self.parallelism,
            source_splits: self.reader.snapshot_state(id)?,
            enumerator: self.enumerator.snapshot_state(),
            committables,
            writer_state: self.writer.snapshot_state(id),
            records_in: self.base_in + self.records_in,
            records_out: self.base_out + self.records_out,
        };
        let data = serde_json::to_vec(&record)
            .map_err(|e| ConnectorError::Checkpoint(format!("cannot serialize checkpoint {id}: {e}")))?;
        let size = data.len() as u64;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.save(id, &data))
            .await
            .map_err(|e| ConnectorError::Checkpoint(format!("checkpoint {id}: the store task failed: {e}")))??;
        #[cfg(feature = "crash-injection")]
        self.crash_check(CrashStage::AfterStore, id)?;
        #[cfg(feature = "crash-injection")]
        if let Some((at, action)) = self.crash_due(CrashStage::DuringCommit, id) {
            let committer = self.committer.clone();
            let committables = record.committables.clone();
            let _commit = tokio::spawn(async move { committer.commit(&committables).await });
            tokio::time::sleep(Duration::from_millis(2)).await;
            crash(at, action)?;
        }
        // The checkpoint is durable: its transactions may be committed now (and will be
        // again by a restore from it, which is harmless).
        self.committer.commit(&record.committables).await?;
        #[cfg(feature = "crash-injection")]
        self.crash_check(CrashStage::AfterCommit, id)?;
        self.reader.notify_checkpoint_complete(id);
        self.writer.notify_checkpoint_complete(id);
        self.checkpoints += 1;
        let took = started.elapsed();
        self.metrics.checkpoint_completed(id, took, size);
        debug!(
            subtask = self.subtask,
            checkpoint_id = id,
            took_ms = took.as_millis() as u64,
            bytes = size,
            transactions = record.committables.len(),
            "checkpoint complete"
        );
        Ok(())
    }

    async fn discover(&mut self) {
        match self.enumerator.discover().await {
            Ok(d) => {
                for split in &d.removed {
                    warn!(split = %split, "split disappeared; it is kept (as Flink does)");
                }
                if !d.new_splits.is_empty() {
                    if let Err(e) = self.reader.add_splits(d.new_splits).await {
                        warn!(error = %e, "adding discovered splits failed");
                    }
                } else if self.ends_at_stops && self.reader.active_splits() == 0 {
                    // `unbounded(stopping)` with discovery on: every split reached its stop and
                    // this discovery found no new partition, so the source exits.
                    info!(subtask = self.subtask, "every partition reached its stopping offset");
                    self.reader.notify_no_more_splits();
                }
            }
            // Flink fails the job here; a transient metadata error is retried at the next
            // interval instead (the enumerator's state only changes on success).
            Err(e) => warn!(error = %e, "partition discovery failed; retried at the next interval"),
        }
    }
}

impl<I, O, S, R> Pipeline<I, O, O, S, R>
where
    I: Send + 'static,
    O: Send + 'static,
    S: TwoPhaseCommitSink<O>,
    R: Source<I>,
{
    /// Runs until the end of a bounded input (forever for an unbounded one); see the module
    /// docs. Fails on the first error (source, user function, sink, checkpoint store), after
    /// closing the writer (its open transaction is aborted) when it can.
    pub async fn run(self) -> Result<PipelineSummary> {
        self.run_until(std::future::pending()).await
    }

    /// [`Self::run`] that also stops, after a final checkpoint, when `stop` completes.
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send) -> Result<PipelineSummary> {
        let started = Instant::now();
        let Pipeline {
            source,
            sink,
            chain,
            watermarks,
            checkpoint_interval,
            store,
            location,
            subtask,
            parallelism,
            metrics,
            #[cfg(feature = "crash-injection")]
            crash,
            poll_timeout,
            elastic,
            checkpointed_settings,
            restart,
            _output,
        } = self;
        if let Some(member) = elastic {
            let Some(sink) = sink.as_kafka_sink() else {
                return Err(ConnectorError::Config(
                    "elastic mode commits outputs with consumed offsets in Kafka transactions: it needs a KafkaSink"
                        .into(),
                ));
            };
            let Some(source) = source.as_kafka_source() else {
                return Err(ConnectorError::Config(
                    "elastic mode reads as a member of a Kafka consumer group: it needs a KafkaSource".into(),
                ));
            };
            if checkpointed_settings {
                return Err(ConnectorError::Config(
                    "elastic mode keeps its state in the consumer group's committed offsets: it takes no checkpoint \
                     store and no subtask (remove checkpoint_store / subtask, or elastic)"
                        .into(),
                ));
            }
            if restart != RestartStrategy::None {
                return Err(ConnectorError::Config(
                    "elastic mode does not restart by itself: a failed member leaves, the others take its partitions; \
                     run members under a supervisor, or remove restart_strategy"
                        .into(),
                ));
            }
            #[cfg(feature = "crash-injection")]
            if crash.is_some() || crash_from_env()?.is_some() {
                return Err(ConnectorError::Config(
                    "crash points are for checkpointed pipelines; kill an elastic member instead".into(),
                ));
            }
            let run = crate::elastic::ElasticRun {
                source,
                sink,
                chain,
                member,
                watermarks,
                commit_interval: checkpoint_interval,
                poll_timeout,
                metrics,
            };
            return crate::elastic::run(run, stop).await;
        }
        #[cfg(feature = "crash-injection")]
        let crash = match crash {
            Some(c) => Some(c),
            None => crash_from_env()?,
        };
        if parallelism == 0 || subtask >= parallelism {
            return Err(ConnectorError::Config(format!(
                "subtask {subtask} of parallelism {parallelism}: the parallelism must be at least 1 and the subtask \
                 index below it"
            )));
        }
        let subtask32 = u32::try_from(subtask).map_err(|_| ConnectorError::Config(format!("subtask {subtask}")))?;
        let parallelism32 =
            u32::try_from(parallelism).map_err(|_| ConnectorError::Config(format!("parallelism {parallelism}")))?;

        restart.validate()?;
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let mut tracker = RestartTracker::new(restart, seed);
        let mut stop = Box::pin(stop);
        let mut chain = chain;
        loop {
            let attempt_started = Instant::now();
            let outcome = attempt(
                Attempt {
                    source: &source,
                    sink: &sink,
                    chain: &mut chain,
                    watermarks: watermarks.clone(),
                    checkpoint_interval,
                    store: store.clone(),
                    location: location.clone(),
                    subtask,
                    parallelism,
                    subtask32,
                    parallelism32,
                    metrics: metrics.clone(),
                    #[cfg(feature = "crash-injection")]
                    crash,
                    poll_timeout,
                },
                &mut stop,
            )
            .await;
            let e = match outcome {
                Ok(mut summary) => {
                    summary.restarts = tracker.restarts();
                    summary.elapsed = started.elapsed();
                    return Ok(summary);
                }
                Err(e) => e,
            };
            if !is_recoverable(&e) {
                return Err(e);
            }
            let Some(delay) = tracker.on_failure(attempt_started, Instant::now()) else {
                return Err(after_restarts(e, tracker.restarts()));
            };
            metrics.restarted();
            warn!(
                subtask,
                error = %e,
                restart = tracker.restarts(),
                delay_ms = delay.as_millis() as u64,
                "the pipeline failed; restarting from its last checkpoint"
            );
            // Stopped while waiting: the run ends with the failure that stopped it.
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = &mut stop => return Err(e),
            }
        }
    }
}

/// Everything one attempt of a run needs ([`Pipeline::run_until`] runs attempts until one
/// ends well or the restart strategy allows no more).
struct Attempt<'p, I, O, S, R> {
    source: &'p R,
    sink: &'p S,
    chain: &'p mut Chain<I, O>,
    watermarks: WatermarkStrategy<I>,
    checkpoint_interval: Duration,
    store: Arc<dyn CheckpointStore>,
    location: Option<Arc<dyn CheckpointLocation>>,
    subtask: usize,
    parallelism: usize,
    subtask32: u32,
    parallelism32: u32,
    metrics: PipelineMetrics,
    #[cfg(feature = "crash-injection")]
    crash: Option<(CrashAt, CrashAction)>,
    poll_timeout: Duration,
}

/// `e`, saying that the restart strategy allowed no more after `restarts` restarts.
fn after_restarts(e: ConnectorError, restarts: u32) -> ConnectorError {
    if restarts == 0 {
        return e;
    }
    let why = format!("after {restarts} restarts the restart strategy allows no more");
    match e {
        ConnectorError::Client(c) => ConnectorError::Client(c.with_context(why)),
        ConnectorError::User(m) => ConnectorError::User(format!("{m} ({why})")),
        ConnectorError::Checkpoint(m) => ConnectorError::Checkpoint(format!("{m} ({why})")),
        ConnectorError::Serialize(m) => ConnectorError::Serialize(format!("{m} ({why})")),
        ConnectorError::Sink(m) => ConnectorError::Sink(format!("{m} ({why})")),
        other => other,
    }
}

/// One attempt: restore from the newest checkpoint, run, and end with a final checkpoint
/// (bounded input, or `stop`), or fail.
async fn attempt<I, O, S, R, St>(a: Attempt<'_, I, O, S, R>, stop: &mut St) -> Result<PipelineSummary>
where
    I: Send + 'static,
    O: Send + 'static,
    S: TwoPhaseCommitSink<O>,
    R: Source<I>,
    St: Future<Output = ()> + Send + Unpin,
{
    let started = Instant::now();
    let Attempt {
        source,
        sink,
        chain,
        watermarks,
        checkpoint_interval,
        store,
        location,
        subtask,
        parallelism,
        subtask32,
        parallelism32,
        metrics,
        #[cfg(feature = "crash-injection")]
        crash,
        poll_timeout,
    } = a;

    // 1. The newest intact checkpoint, or, from a location under a new parallelism, the state
    //    redistributed from every subtask's newest.
    let store = match &location {
        Some(l) => l.subtask_store(subtask)?,
        None => store,
    };
    let (own, loc) = (store.clone(), location.clone());
    let found = tokio::task::spawn_blocking(move || {
        restore::read::<S::Committable, S::WriterState, R::Split, R::EnumeratorState>(&own, loc.as_ref(), subtask)
    })
    .await
    .map_err(|e| ConnectorError::Checkpoint(format!("the store task failed: {e}")))??;
    let restored = restore::plan::<I, R, S::Committable, S::WriterState>(source, found, subtask, parallelism)?;
    let restored_id = restored.as_ref().map(|r| r.checkpoint_id);
    let rescaled = restored.as_ref().is_some_and(|r| r.rescaled);

    // 2. The sink first: pending transactions committed, lingering ones aborted.
    let sink_restore = restored.as_ref().map(|r| r.sink.clone()).unwrap_or_default();
    let writer = sink.restore_writer(subtask32, parallelism32, &sink_restore).await?;
    if let Some(m) = writer.metrics() {
        metrics.set_sink(m);
    }
    let committer = writer.committer();

    // 3. The source: enumerator state and splits at their checkpointed positions.
    let mut enumerator = source.create_enumerator(subtask, parallelism).await?;
    let reader = source
        .create_reader(subtask, watermarks, metrics.source().clone())
        .await?;
    let (base_in, base_out) = restored.as_ref().map_or((0, 0), |r| (r.records_in, r.records_out));
    let mut run: Running<I, O, S, R> = Running {
        reader,
        writer,
        committer,
        enumerator: {
            if let Some(r) = &restored {
                enumerator.restore_state(r.enumerator.clone());
            }
            enumerator
        },
        store,
        metrics: metrics.clone(),
        #[cfg(feature = "crash-injection")]
        crash,
        subtask,
        parallelism,
        #[cfg(feature = "crash-injection")]
        first_checkpoint: restored_id.map_or(1, |id| id + 1),
        next_checkpoint_id: restored_id.map_or(1, |id| id + 1),
        checkpoints: 0,
        records_in: 0,
        records_out: 0,
        ends_at_stops: source.ends_when_splits_finish(),
        base_in,
        base_out,
    };
    if let Some(r) = restored {
        run.reader.add_splits(r.splits).await?;
    }
    let initial = !run.enumerator.initial_discovery_done();
    if initial {
        let d = run.enumerator.discover().await?;
        run.reader.add_splits(d.new_splits).await?;
    } else if run.enumerator.discovery_interval().is_some() {
        run.discover().await;
    }
    // A source with stopping offsets ends when every split reached its stop: bounded, and
    // also `unbounded(stopping)`, of which the seed says "the source will exit when all
    // partitions reach their specified stopping offset" (Flink's own enumerator signals the
    // end to bounded sources only). With discovery on, the end waits for a discovery that
    // finds no new partition.
    if run.enumerator.no_more_splits() && run.ends_at_stops {
        run.reader.notify_no_more_splits();
    }
    if rescaled {
        // The redistributed state becomes this subtask's own before anything is read or
        // written (see `restore::Restore::rescaled`).
        let id = run.next_checkpoint_id;
        run.checkpoint(id).await?;
        run.next_checkpoint_id += 1;
    }
    metrics.restored(restored_id);
    // The `metrics` facade sees the pipeline every second and once more when it ends
    // (also when this future is dropped midway).
    let _publisher = facade::FacadePublisher::start(metrics.clone());
    info!(
        subtask,
        parallelism,
        restored_from = ?restored_id,
        splits = run.reader.active_splits(),
        delivery_guarantee = %run.writer.delivery_guarantee(),
        "pipeline running"
    );

    let outcome = drive(&mut run, chain, stop, checkpoint_interval, poll_timeout).await;
    metrics.stopped();
    let end = match outcome {
        Ok(end) => end,
        Err(e) => {
            #[cfg(feature = "crash-injection")]
            let injected = matches!(&e, ConnectorError::User(m) if m.starts_with("crash injected"));
            #[cfg(not(feature = "crash-injection"))]
            let injected = false;
            if !injected {
                // Abort the open transaction (what Flink's writer does on close).
                let Running { writer, reader, .. } = run;
                match tokio::time::timeout(Duration::from_secs(10), writer.abort()).await {
                    Err(_) => warn!("aborting the sink writer after a failure took over 10 s; abandoned"),
                    Ok(Err(abort)) => warn!(error = %abort, "aborting the sink writer after a failure failed"),
                    Ok(Ok(())) => {}
                }
                let _ = tokio::time::timeout(Duration::from_secs(10), reader.close()).await;
            }
            return Err(e);
        }
    };
    let summary = PipelineSummary {
        end,
        records_in: run.records_in,
        records_out: run.records_out,
        checkpoints: run.checkpoints,
        last_checkpoint_id: run.next_checkpoint_id.saturating_sub(1),
        restored_from: restored_id,
        elapsed: started.elapsed(),
        restarts: 0,
    };
    let Running { writer, reader, .. } = run;
    writer.close().await?;
    reader.close().await?;
    info!(
        subtask,
        end = ?summary.end,
        records_in = summary.records_in,
        records_out = summary.records_out,
        checkpoints = summary.checkpoints,
        "pipeline finished"
    );
    Ok(summary)
}

/// The read → process → write loop with its periodic checkpoints, discovery and watermarks.
async fn drive<I, O, S: TwoPhaseCommitSink<O>, R: Source<I>>(
    run: &mut Running<I, O, S, R>,
    chain: &mut Chain<I, O>,
    stop: &mut (impl Future<Output = ()> + Send + Unpin),
    checkpoint_interval: Duration,
    poll_timeout: Duration,
) -> Result<PipelineEnd> {
    let discovery_interval = run.enumerator.discovery_interval();
    let now = Instant::now();
    let mut next_checkpoint = now + checkpoint_interval;
    let mut next_discovery = discovery_interval.map(|d| now + d);
    let mut next_watermark = now + WATERMARK_INTERVAL;
    let mut outputs: Vec<(O, i64)> = Vec::new();
    let end = loop {
        if run.reader.is_finished() {
            break PipelineEnd::EndOfInput;
        }
        if (&mut *stop).now_or_never().is_some() {
            break PipelineEnd::Stopped;
        }
        let timeout = next_checkpoint
            .saturating_duration_since(Instant::now())
            .min(poll_timeout)
            .max(Duration::from_millis(1));
        let batch = run.reader.poll(timeout).await?;
        let watermark = run.reader.current_watermark();
        for element in batch {
            run.records_in += 1;
            #[cfg(feature = "crash-injection")]
            if let Some((at, action)) = run.crash {
                if at.stage == CrashStage::Records && run.records_in == at.n {
                    crash(at, action)?;
                }
            }
            // With `opentelemetry`, the record is processed and written inside a span whose
            // parent is the producer's: the sink's records carry the trace on.
            #[cfg(feature = "opentelemetry")]
            let span = strom_client::trace_context::process_span(
                &element.topic,
                element.partition,
                element.offset,
                element.trace_context.clone(),
            );
            let SourceElement {
                value,
                timestamp,
                topic,
                partition,
                offset,
                key,
                headers,
                record_timestamp,
                timestamp_type,
                ..
            } = element;
            let ctx = ProcessContext::new(&topic, partition, offset, timestamp, &headers)
                .with_key(key.as_ref())
                .with_watermark(watermark)
                .with_record_timestamp(record_timestamp, timestamp_type);
            let apply = || {
                chain(&ctx, value, &mut |o, ts| {
                    outputs.push((o, ts));
                    Ok(())
                })
            };
            #[cfg(feature = "opentelemetry")]
            span.in_scope(apply)?;
            #[cfg(not(feature = "opentelemetry"))]
            apply()?;
            let write = async {
                for (o, ts) in outputs.drain(..) {
                    run.writer.write(&o, Some(ts)).await?;
                    run.records_out += 1;
                    run.metrics.records_out(1);
                }
                Ok::<(), ConnectorError>(())
            };
            #[cfg(feature = "opentelemetry")]
            let write = tracing::Instrument::instrument(write, span);
            write.await?;
        }
        let now = Instant::now();
        if now >= next_checkpoint {
            let id = run.next_checkpoint_id;
            if let Err(e) = run.checkpoint(id).await {
                run.metrics.checkpoint_failed();
                return Err(e);
            }
            run.next_checkpoint_id += 1;
            next_checkpoint = now + checkpoint_interval;
        }
        if let (Some(at), Some(every)) = (next_discovery, discovery_interval) {
            if now >= at {
                run.discover().await;
                next_discovery = Some(Instant::now() + every);
            }
        }
        if now >= next_watermark {
            if let Some(ev) = run.reader.emit_watermark(now) {
                debug!(subtask = run.subtask, event = ?ev, "watermark");
                if let WatermarkEvent::Watermark(w) = ev {
                    // Flink's `SinkWriter.writeWatermark`: the sink sees event time progress.
                    run.writer.write_watermark(w);
                }
            }
            next_watermark = now + WATERMARK_INTERVAL;
        }
    };
    // Final checkpoint: everything read so far becomes durable and committed.
    let id = run.next_checkpoint_id;
    if let Err(e) = run.checkpoint(id).await {
        run.metrics.checkpoint_failed();
        return Err(e);
    }
    run.next_checkpoint_id += 1;
    Ok(end)
}

#[cfg(test)]
mod tests;
