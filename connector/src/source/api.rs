//! Any source: the traits a [`Pipeline`](crate::Pipeline) reads through (Flink's FLIP-27
//! `Source` with its `SplitEnumerator` and `SourceReader`). [`KafkaSource`] is one
//! implementation; a user's own source implements the three traits.
//!
//! A source is split into *splits* (for Kafka, partitions with positions). In each subtask
//! an enumerator hands out the splits this subtask owns (discovering new ones periodically
//! if it can) and a reader reads them:
//!
//! * the pipeline restores the enumerator's state and the reader's unfinished splits from
//!   its checkpoint, or asks the enumerator for the initial splits;
//! * it polls the reader for elements ([`SourceElement`]: a value with its event time and
//!   where it was read), which also advances the reader's per-split positions and
//!   watermarks;
//! * at each checkpoint it stores the reader's splits at their positions
//!   ([`SplitReader::snapshot_state`]) and the enumerator's state, and tells the reader when
//!   the checkpoint is complete;
//! * the run ends when the reader has finished every split and the enumerator says no split
//!   will come any more (only for sources that end: bounded ones, or those with stopping
//!   positions).
//!
//! A restore resumes each split exactly at its checkpointed position, so a reader must read
//! a split deterministically from a position: that, with a two-phase-commit sink, is what
//! makes the pipeline exactly-once.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{
    split_owner, Boundedness, EnumeratorState, KafkaPartitionSplit, KafkaSource, SourceElement, SourceReader,
    SplitEnumerator, TopicPartition, WatermarkEvent, WatermarkStrategy,
};
use crate::metrics::SourceReaderMetrics;
use crate::{ConnectorError, Result};

/// What an enumerator's discovery found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Discovered<S> {
    /// Splits this subtask owns and was not given before.
    pub new_splits: Vec<S>,
    /// Splits that disappeared (described for logs; their readers keep them, as Flink does).
    pub removed: Vec<String>,
}

/// A source a pipeline reads (Flink's `Source`).
pub trait Source<T>: fmt::Debug + Send + Sync + 'static {
    /// A unit of the input read by one reader, with its position (stored in checkpoints).
    type Split: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static;
    /// The enumerator's state (stored in checkpoints).
    type EnumeratorState: Serialize + DeserializeOwned + Clone + fmt::Debug + Send + Sync + 'static;
    /// Hands out splits.
    type Enumerator: SourceEnumerator<Split = Self::Split, State = Self::EnumeratorState>;
    /// Reads splits.
    type Reader: SplitReader<T, Split = Self::Split>;

    /// Whether the input ends (Flink's `getBoundedness`).
    fn boundedness(&self) -> Boundedness;

    /// Whether the source ends once every split reached its stop, also when unbounded (as the
    /// Kafka source's `unbounded(stopping)` does). Default: only when bounded.
    fn ends_when_splits_finish(&self) -> bool {
        self.boundedness() == Boundedness::Bounded
    }

    /// The enumerator of subtask `subtask` of `parallelism`, with no state yet.
    fn create_enumerator(
        &self,
        subtask: usize,
        parallelism: usize,
    ) -> impl Future<Output = Result<Self::Enumerator>> + Send;

    /// The reader of subtask `subtask`, with no split yet; it makes event time and watermarks
    /// with `watermarks` and counts into `metrics`.
    fn create_reader(
        &self,
        subtask: usize,
        watermarks: WatermarkStrategy<T>,
        metrics: SourceReaderMetrics,
    ) -> impl Future<Output = Result<Self::Reader>> + Send;

    /// This source as a [`KafkaSource`], for what only Kafka can do (elastic mode's consumer
    /// group); `None` for other sources.
    fn as_kafka_source(&self) -> Option<KafkaSource<T>> {
        None
    }

    /// Rescaling: the splits (at their positions) and the enumerator state that subtask
    /// `subtask` of `parallelism` takes over, given the newest checkpoint of every subtask
    /// found ([`CheckpointedSource`]; possibly of several earlier parallelisms). A split must
    /// be taken from the newest checkpoint that holds it: only that one has its position.
    /// Default: refused (the source cannot be rescaled).
    fn redistribute(
        &self,
        entries: &[CheckpointedSource<'_, Self::Split, Self::EnumeratorState>],
        subtask: usize,
        parallelism: usize,
    ) -> Result<(Vec<Self::Split>, Self::EnumeratorState)> {
        let _ = (entries, subtask);
        Err(ConnectorError::Config(format!(
            "this source cannot redistribute its checkpointed splits to parallelism {parallelism}; restart with \
             the parallelism its checkpoints were taken with"
        )))
    }
}

/// One subtask's newest checkpoint, as [`Source::redistribute`] sees it.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointedSource<'a, S, E> {
    /// The checkpoint id (ids grow across restarts and parallelisms: a higher id is newer).
    pub checkpoint_id: u64,
    /// The subtask that took it.
    pub subtask: usize,
    /// Its parallelism then.
    pub parallelism: usize,
    /// Its unfinished splits at their positions.
    pub splits: &'a [S],
    /// Its enumerator state.
    pub enumerator: &'a E,
}

/// Hands out the splits one subtask owns (Flink's `SplitEnumerator`).
pub trait SourceEnumerator: Send + 'static {
    /// See [`Source::Split`].
    type Split;
    /// See [`Source::EnumeratorState`].
    type State;

    /// Looks for splits: the first call gives the initial ones, later ones what appeared since.
    fn discover(&mut self) -> impl Future<Output = Result<Discovered<Self::Split>>> + Send;

    /// The state to checkpoint.
    fn snapshot_state(&self) -> Self::State;

    /// Takes the state of a checkpoint (before any discovery).
    fn restore_state(&mut self, state: Self::State);

    /// Whether the initial discovery was made (so a restore does not make it again).
    fn initial_discovery_done(&self) -> bool;

    /// How often to discover new splits; `None`: never after the initial discovery.
    fn discovery_interval(&self) -> Option<Duration>;

    /// No split will be handed out any more.
    fn no_more_splits(&self) -> bool {
        self.initial_discovery_done() && self.discovery_interval().is_none()
    }
}

/// Reads the splits of one subtask (Flink's `SourceReader`).
pub trait SplitReader<T>: Send + 'static {
    /// See [`Source::Split`].
    type Split;

    /// Starts reading `splits`, each from its position.
    fn add_splits(&mut self, splits: Vec<Self::Split>) -> impl Future<Output = Result<()>> + Send;

    /// Waits up to `timeout` for elements (possibly none).
    fn poll(&mut self, timeout: Duration) -> impl Future<Output = Result<Vec<SourceElement<T>>>> + Send;

    /// The unfinished splits at their current positions, for checkpoint `checkpoint_id`.
    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<Self::Split>>;

    /// Checkpoint `checkpoint_id` is stored and committed.
    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        let _ = checkpoint_id;
    }

    /// No split will be added any more: once the current ones finish, the reader is finished.
    fn notify_no_more_splits(&mut self);

    /// Every split finished and none can come.
    fn is_finished(&self) -> bool;

    /// How many splits are being read.
    fn active_splits(&self) -> usize;

    /// Called every watermark interval: the combined watermark when it advanced, or a switch
    /// to idle / active (see [`super::WatermarkCombiner`]).
    fn emit_watermark(&mut self, now: Instant) -> Option<WatermarkEvent>;

    /// The last watermark emitted.
    fn current_watermark(&self) -> Option<i64>;

    /// Stops the reader.
    fn close(self) -> impl Future<Output = Result<()>> + Send;
}

impl<T: Send + Sync + 'static> Source<T> for KafkaSource<T> {
    type Split = KafkaPartitionSplit;
    type EnumeratorState = EnumeratorState;
    type Enumerator = SplitEnumerator;
    type Reader = SourceReader<T>;

    fn boundedness(&self) -> Boundedness {
        KafkaSource::boundedness(self)
    }

    /// Bounded, or `unbounded(stopping)`: the seed says that source "will exit when all
    /// partitions reach their specified stopping offset".
    fn ends_when_splits_finish(&self) -> bool {
        KafkaSource::boundedness(self) == Boundedness::Bounded || self.stopping_offsets().is_some()
    }

    fn create_enumerator(
        &self,
        subtask: usize,
        parallelism: usize,
    ) -> impl Future<Output = Result<SplitEnumerator>> + Send {
        KafkaSource::create_enumerator(self, subtask, parallelism)
    }

    fn create_reader(
        &self,
        subtask: usize,
        watermarks: WatermarkStrategy<T>,
        metrics: SourceReaderMetrics,
    ) -> impl Future<Output = Result<SourceReader<T>>> + Send {
        SourceReader::with_options(self, subtask, watermarks, metrics)
    }

    fn as_kafka_source(&self) -> Option<KafkaSource<T>> {
        Some(self.clone())
    }

    /// Each partition goes to its owner under the new parallelism (Flink's owner formula,
    /// [`super::split_owner`]), from the newest checkpoint that lists it as assigned: with its
    /// position when that checkpoint still reads it, as finished (assigned, not read again)
    /// when it does not.
    fn redistribute(
        &self,
        entries: &[CheckpointedSource<'_, KafkaPartitionSplit, EnumeratorState>],
        subtask: usize,
        parallelism: usize,
    ) -> Result<(Vec<KafkaPartitionSplit>, EnumeratorState)> {
        redistribute_kafka(entries, subtask, parallelism)
    }
}

/// [`Source::redistribute`] for Kafka splits.
pub(crate) fn redistribute_kafka(
    entries: &[CheckpointedSource<'_, KafkaPartitionSplit, EnumeratorState>],
    subtask: usize,
    parallelism: usize,
) -> Result<(Vec<KafkaPartitionSplit>, EnumeratorState)> {
    if parallelism == 0 || subtask >= parallelism {
        return Err(ConnectorError::Config(format!(
            "subtask {subtask} of parallelism {parallelism}: need 0 <= subtask < parallelism"
        )));
    }
    // The newest checkpoint that assigned each partition (its owner then).
    let mut newest: BTreeMap<&TopicPartition, usize> = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        for tp in &e.enumerator.assigned_partitions {
            match newest.get(tp) {
                Some(&j) if entries[j].checkpoint_id >= e.checkpoint_id => {}
                _ => {
                    newest.insert(tp, i);
                }
            }
        }
    }
    let mut state = EnumeratorState {
        assigned_partitions: Default::default(),
        initial_discovery_finished: entries.iter().any(|e| e.enumerator.initial_discovery_finished),
    };
    let mut splits = Vec::new();
    for (tp, i) in newest {
        if split_owner(&tp.topic, tp.partition, parallelism) != subtask {
            continue;
        }
        state.assigned_partitions.insert(tp.clone());
        let e = &entries[i];
        if let Some(split) = e
            .splits
            .iter()
            .find(|s| s.topic == *tp.topic && s.partition == tp.partition)
        {
            splits.push(split.clone());
        }
    }
    Ok((splits, state))
}

impl SourceEnumerator for SplitEnumerator {
    type Split = KafkaPartitionSplit;
    type State = EnumeratorState;

    async fn discover(&mut self) -> Result<Discovered<KafkaPartitionSplit>> {
        let d = SplitEnumerator::discover(self).await?;
        Ok(Discovered {
            new_splits: d.new_splits,
            removed: d.removed_partitions.iter().map(ToString::to_string).collect(),
        })
    }

    fn snapshot_state(&self) -> EnumeratorState {
        SplitEnumerator::snapshot_state(self)
    }

    fn restore_state(&mut self, state: EnumeratorState) {
        self.set_state(state);
    }

    fn initial_discovery_done(&self) -> bool {
        SplitEnumerator::snapshot_state(self).initial_discovery_finished
    }

    fn discovery_interval(&self) -> Option<Duration> {
        SplitEnumerator::discovery_interval(self)
    }

    fn no_more_splits(&self) -> bool {
        SplitEnumerator::no_more_splits(self)
    }
}

impl<T: Send + Sync + 'static> SplitReader<T> for SourceReader<T> {
    type Split = KafkaPartitionSplit;

    fn add_splits(&mut self, splits: Vec<KafkaPartitionSplit>) -> impl Future<Output = Result<()>> + Send {
        SourceReader::add_splits(self, splits)
    }

    fn poll(&mut self, timeout: Duration) -> impl Future<Output = Result<Vec<SourceElement<T>>>> + Send {
        SourceReader::poll(self, timeout)
    }

    fn snapshot_state(&mut self, checkpoint_id: u64) -> Result<Vec<KafkaPartitionSplit>> {
        SourceReader::snapshot_state(self, checkpoint_id)
    }

    fn notify_checkpoint_complete(&mut self, checkpoint_id: u64) {
        SourceReader::notify_checkpoint_complete(self, checkpoint_id);
    }

    fn notify_no_more_splits(&mut self) {
        SourceReader::notify_no_more_splits(self);
    }

    fn is_finished(&self) -> bool {
        SourceReader::is_finished(self)
    }

    fn active_splits(&self) -> usize {
        SourceReader::active_splits(self).len()
    }

    fn emit_watermark(&mut self, now: Instant) -> Option<WatermarkEvent> {
        SourceReader::emit_watermark(self, now)
    }

    fn current_watermark(&self) -> Option<i64> {
        SourceReader::current_watermark(self)
    }

    fn close(self) -> impl Future<Output = Result<()>> + Send {
        SourceReader::close(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn state(ps: &[i32]) -> EnumeratorState {
        EnumeratorState {
            assigned_partitions: ps.iter().map(|p| tp(*p)).collect(),
            initial_discovery_finished: true,
        }
    }

    #[test]
    fn redistribution_takes_each_partition_from_its_newest_checkpoint() {
        // Generation A (2 subtasks) owned 0..6; generation B (3 subtasks) checkpointed only
        // subtask 0 (partitions it owned under 3) before everything stopped.
        let owner3: Vec<i32> = (0..6).filter(|p| split_owner("t", *p, 3) == 0).collect();
        let a0 = [0, 2, 4];
        let a1 = [1, 3, 5];
        let a0_splits: Vec<KafkaPartitionSplit> =
            a0.iter().map(|p| KafkaPartitionSplit::new("t", *p, 10, None)).collect();
        // Partition 5 finished in generation A: assigned, no split.
        let a1_splits: Vec<KafkaPartitionSplit> = [1, 3]
            .iter()
            .map(|p| KafkaPartitionSplit::new("t", *p, 20, None))
            .collect();
        let b0_splits: Vec<KafkaPartitionSplit> = owner3
            .iter()
            .map(|p| KafkaPartitionSplit::new("t", *p, 99, None))
            .collect();
        let (sa0, sa1, sb0) = (state(&a0), state(&a1), state(&owner3));
        let entries = [
            CheckpointedSource {
                checkpoint_id: 4,
                subtask: 0,
                parallelism: 2,
                splits: &a0_splits,
                enumerator: &sa0,
            },
            CheckpointedSource {
                checkpoint_id: 5,
                subtask: 1,
                parallelism: 2,
                splits: &a1_splits,
                enumerator: &sa1,
            },
            CheckpointedSource {
                checkpoint_id: 9,
                subtask: 0,
                parallelism: 3,
                splits: &b0_splits,
                enumerator: &sb0,
            },
        ];
        for parallelism in 1..=4 {
            let mut seen = std::collections::BTreeSet::new();
            for subtask in 0..parallelism {
                let (splits, st) = redistribute_kafka(&entries, subtask, parallelism).unwrap();
                assert!(st.initial_discovery_finished);
                for t in &st.assigned_partitions {
                    assert_eq!(split_owner("t", t.partition, parallelism), subtask);
                    assert!(seen.insert(t.partition), "partition {} twice", t.partition);
                }
                for s in &splits {
                    let expected = if owner3.contains(&s.partition) {
                        99
                    } else if s.partition % 2 == 0 {
                        10
                    } else {
                        20
                    };
                    assert_eq!(
                        s.starting_offset, expected,
                        "partition {} from its newest checkpoint",
                        s.partition
                    );
                }
                assert!(
                    splits.iter().all(|s| s.partition != 5) || owner3.contains(&5),
                    "a finished partition is not read again"
                );
            }
            assert_eq!(
                seen,
                (0..6).collect(),
                "parallelism {parallelism}: every partition exactly once"
            );
        }
        assert!(redistribute_kafka(&entries, 3, 3).is_err());
        assert!(redistribute_kafka(&entries, 0, 0).is_err());
    }
}
