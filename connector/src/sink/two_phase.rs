//! Any sink with exactly-once: the two-phase commit protocol a [`Pipeline`](crate::Pipeline)
//! drives (Flink's `TwoPhaseCommittingSink` with a stateful, pre-committing writer), so other
//! systems than Kafka get exactly-once too. [`KafkaSink`] is one
//! implementation; [`crate::file_sink::FileSink`] (Flink's `FileSink`) is another.
//!
//! How a pipeline drives it:
//!
//! 1. **recover**: [`TwoPhaseCommitSink::restore_writer`] with the last checkpoint's
//!    committables and writer state ([`SinkRestore`]). The sink commits those committables
//!    (they were pre-committed and stored, but a crash may have come before their commit) and
//!    aborts whatever a crashed run wrote after that checkpoint, then returns a writer.
//! 2. **write**: [`SinkWriter::write`] for every element, [`SinkWriter::write_watermark`] as
//!    event time advances.
//! 3. **pre-commit**, at each checkpoint: [`SinkWriter::pre_commit`] makes everything written
//!    since the last one durable but not visible, and returns the committables that will make
//!    it visible; [`SinkWriter::snapshot_state`] gives the writer's state. Both go into the
//!    checkpoint.
//! 4. **commit**, once the checkpoint is stored durably: [`SinkCommitter::commit`]. It must be
//!    idempotent: a restore from the same checkpoint commits the same committables again.
//! 5. **abort**: after a failure, [`SinkWriter::abort`] discards what was written since the
//!    last pre-commit; at the end of the input, [`SinkWriter::close`] (after a final
//!    checkpoint and its commit).
//!
//! A crash at any instant loses and duplicates nothing: what the checkpoint's committables
//! hold is committed by step 1 of the next run, and what came after is discarded by it.

use std::fmt;
use std::future::Future;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{
    DeliveryGuarantee, KafkaCommittable, KafkaCommitter, KafkaSink, KafkaSinkWriter, KafkaWriterState, SinkMetrics,
    SinkRestore,
};
use crate::Result;

/// A sink a pipeline can write to exactly once: a writer per subtask that pre-commits at
/// each checkpoint, and a committer that makes pre-committed data visible once the checkpoint
/// is durable. The [module docs](self) give the protocol.
pub trait TwoPhaseCommitSink<T>: fmt::Debug + Send + Sync + 'static {
    /// What a pre-commit returns and a commit takes (stored in checkpoints, as JSON).
    type Committable: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static;
    /// A writer's state at a checkpoint (stored in checkpoints, as JSON).
    type WriterState: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static;
    /// Commits committables.
    type Committer: SinkCommitter<Self::Committable>;
    /// Writes elements of one subtask.
    type Writer: SinkWriter<
        T,
        Committable = Self::Committable,
        WriterState = Self::WriterState,
        Committer = Self::Committer,
    >;

    /// The writer of subtask `subtask` of `parallelism`, after recovery: commits
    /// `restore.committables` and aborts what a previous run of this subtask left after the
    /// restored checkpoint (`restore` is empty on a fresh start).
    fn restore_writer(
        &self,
        subtask: u32,
        parallelism: u32,
        restore: &SinkRestore<Self::Committable, Self::WriterState>,
    ) -> impl Future<Output = Result<Self::Writer>> + Send;

    /// This sink as a [`KafkaSink`], for what only Kafka can do (elastic mode's transactions
    /// that carry consumed offsets); `None` for other sinks.
    fn as_kafka_sink(&self) -> Option<KafkaSink<T>> {
        None
    }
}

/// The writer of one subtask (Flink's `SinkWriter`, pre-committing and stateful).
pub trait SinkWriter<T>: Send + 'static {
    /// See [`TwoPhaseCommitSink::Committable`].
    type Committable;
    /// See [`TwoPhaseCommitSink::WriterState`].
    type WriterState;
    /// See [`TwoPhaseCommitSink::Committer`].
    type Committer;

    /// Writes one element; `timestamp` is its event time (ms), `None` when it has none.
    fn write(&mut self, element: &T, timestamp: Option<i64>) -> impl Future<Output = Result<()>> + Send;

    /// Event time has reached `watermark` (Flink's `writeWatermark`); by default ignored.
    fn write_watermark(&mut self, watermark: i64) {
        let _ = watermark;
    }

    /// Makes what was written since the last pre-commit durable but not yet visible, and
    /// returns what commits it. Checkpoint ids increase.
    fn pre_commit(&mut self, checkpoint_id: u64) -> impl Future<Output = Result<Vec<Self::Committable>>> + Send;

    /// The writer's state at checkpoint `checkpoint_id` (after its pre-commit).
    fn snapshot_state(&self, checkpoint_id: u64) -> Self::WriterState;

    /// The committer for this writer's committables.
    fn committer(&self) -> Self::Committer;

    /// Checkpoint `checkpoint_id` is stored and its committables committed.
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        let _ = checkpoint_id;
    }

    /// What this writer guarantees (for logs).
    fn delivery_guarantee(&self) -> DeliveryGuarantee;

    /// Live metrics under Flink's names, if the writer keeps them.
    fn metrics(&self) -> Option<SinkMetrics> {
        None
    }

    /// A clean end, after the final checkpoint was committed.
    fn close(self) -> impl Future<Output = Result<()>> + Send;

    /// After a failure: discards what was written since the last pre-commit (as far as the
    /// sink can; a restore discards the rest).
    fn abort(self) -> impl Future<Output = Result<()>> + Send;
}

/// Commits pre-committed data (Flink's `Committer`).
pub trait SinkCommitter<C>: Clone + Send + Sync + 'static {
    /// Commits `committables`, in order. Idempotent: committing one already committed is a
    /// success.
    fn commit(&self, committables: &[C]) -> impl Future<Output = Result<()>> + Send;
}

impl<T: Send + Sync + 'static> TwoPhaseCommitSink<T> for KafkaSink<T> {
    type Committable = KafkaCommittable;
    type WriterState = KafkaWriterState;
    type Committer = KafkaCommitter;
    type Writer = KafkaSinkWriter<T>;

    fn restore_writer(
        &self,
        subtask: u32,
        parallelism: u32,
        restore: &SinkRestore<KafkaCommittable, KafkaWriterState>,
    ) -> impl Future<Output = Result<KafkaSinkWriter<T>>> + Send {
        KafkaSink::restore_writer(self, subtask, parallelism, restore)
    }

    fn as_kafka_sink(&self) -> Option<KafkaSink<T>> {
        Some(self.clone())
    }
}

impl<T: Send + Sync + 'static> SinkWriter<T> for KafkaSinkWriter<T> {
    type Committable = KafkaCommittable;
    type WriterState = KafkaWriterState;
    type Committer = KafkaCommitter;

    fn write(&mut self, element: &T, timestamp: Option<i64>) -> impl Future<Output = Result<()>> + Send {
        KafkaSinkWriter::write_with_timestamp(self, element, timestamp)
    }

    fn write_watermark(&mut self, watermark: i64) {
        KafkaSinkWriter::write_watermark(self, watermark);
    }

    fn pre_commit(&mut self, checkpoint_id: u64) -> impl Future<Output = Result<Vec<KafkaCommittable>>> + Send {
        KafkaSinkWriter::prepare_commit(self, checkpoint_id)
    }

    fn snapshot_state(&self, checkpoint_id: u64) -> KafkaWriterState {
        KafkaSinkWriter::snapshot_state(self, checkpoint_id)
    }

    fn committer(&self) -> KafkaCommitter {
        KafkaSinkWriter::committer(self)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        KafkaSinkWriter::notify_checkpoint_complete(self, checkpoint_id);
    }

    fn delivery_guarantee(&self) -> DeliveryGuarantee {
        KafkaSinkWriter::delivery_guarantee(self)
    }

    fn metrics(&self) -> Option<SinkMetrics> {
        Some(KafkaSinkWriter::metrics(self))
    }

    fn close(self) -> impl Future<Output = Result<()>> + Send {
        KafkaSinkWriter::close(self)
    }

    /// Closing aborts the open transaction (what Flink's writer does on close).
    fn abort(self) -> impl Future<Output = Result<()>> + Send {
        KafkaSinkWriter::close(self)
    }
}

impl SinkCommitter<KafkaCommittable> for KafkaCommitter {
    async fn commit(&self, committables: &[KafkaCommittable]) -> Result<()> {
        KafkaCommitter::commit(self, committables).await.map(|_| ())
    }
}
