//! What a run restores: its own newest checkpoint, or, from a checkpoint location, the
//! state redistributed from every subtask's newest checkpoint when the parallelism changed
//! (see the pipeline's module docs, "Rescaling").

use std::sync::Arc;

use serde::de::DeserializeOwned;
use tracing::info;

use super::{PipelineCheckpoint, CHECKPOINT_FORMAT};
use crate::checkpoint::{CheckpointLocation, CheckpointStore, CheckpointStoreExt};
use crate::sink::SinkRestore;
use crate::source::{CheckpointedSource, Source};
use crate::{ConnectorError, Result};

/// The checkpoints a run may restore from: its own newest, and, with a location, the newest
/// of every other subtask there.
pub(super) struct Found<C, W, Sp, E> {
    pub(super) own: Option<(u64, PipelineCheckpoint<C, W, Sp, E>)>,
    pub(super) others: Vec<(u64, PipelineCheckpoint<C, W, Sp, E>)>,
    pub(super) located: bool,
}

/// Reads the checkpoints (blocking: call from `spawn_blocking`).
pub(super) fn read<C, W, Sp, E>(
    own: &Arc<dyn CheckpointStore>,
    location: Option<&Arc<dyn CheckpointLocation>>,
    subtask: usize,
) -> Result<Found<C, W, Sp, E>>
where
    PipelineCheckpoint<C, W, Sp, E>: DeserializeOwned,
{
    let mine = own.latest_json::<PipelineCheckpoint<C, W, Sp, E>>()?;
    let mut others = Vec::new();
    if let Some(location) = location {
        for j in location.subtasks()? {
            if j == subtask {
                continue;
            }
            if let Some((id, c)) = location
                .subtask_store(j)?
                .latest_json::<PipelineCheckpoint<C, W, Sp, E>>()?
            {
                check(id, &c)?;
                if c.subtask != j {
                    return Err(ConnectorError::Checkpoint(format!(
                        "checkpoint {id} in the store of subtask {j} says it belongs to subtask {}",
                        c.subtask
                    )));
                }
                others.push((id, c));
            }
        }
    }
    if let Some((id, c)) = &mine {
        check(*id, c)?;
    }
    Ok(Found {
        own: mine,
        others,
        located: location.is_some(),
    })
}

fn check<C, W, Sp, E>(id: u64, c: &PipelineCheckpoint<C, W, Sp, E>) -> Result<()> {
    if c.format != CHECKPOINT_FORMAT || c.checkpoint_id != id {
        return Err(ConnectorError::Checkpoint(format!(
            "checkpoint {id} has format {} and id {}; this build writes format {CHECKPOINT_FORMAT}",
            c.format, c.checkpoint_id
        )));
    }
    Ok(())
}

/// What a run starts from.
pub(super) struct Restore<C, W, Sp, E> {
    /// The checkpoint id the run continues after (its next checkpoint is one more).
    pub(super) checkpoint_id: u64,
    pub(super) splits: Vec<Sp>,
    pub(super) enumerator: E,
    pub(super) sink: SinkRestore<C, W>,
    pub(super) records_in: u64,
    pub(super) records_out: u64,
    /// Redistributed from other subtasks' checkpoints: the run stores a checkpoint of its
    /// own before it reads anything, so its new state (and the checkpoint id its writer
    /// starts from) is durable before any transaction of it can be left open.
    pub(super) rescaled: bool,
}

type RestoreOf<I, R, C, W> = Restore<C, W, <R as Source<I>>::Split, <R as Source<I>>::EnumeratorState>;
type EntryOf<I, R, C, W> = (
    u64,
    PipelineCheckpoint<C, W, <R as Source<I>>::Split, <R as Source<I>>::EnumeratorState>,
);

/// Decides what subtask `subtask` of `parallelism` restores from `found`: `None` for a fresh
/// start.
pub(super) fn plan<I, R, C, W>(
    source: &R,
    found: Found<C, W, R::Split, R::EnumeratorState>,
    subtask: usize,
    parallelism: usize,
) -> Result<Option<RestoreOf<I, R, C, W>>>
where
    R: Source<I>,
    C: Clone,
    W: Clone,
{
    let Found { own, others, located } = found;
    let own_id = own.as_ref().map_or(0, |(id, _)| *id);
    let own_rescaled = own
        .as_ref()
        .is_some_and(|(_, c)| c.subtask != subtask || c.parallelism != parallelism);
    if !located {
        return match own {
            Some((id, c)) if own_rescaled => Err(ConnectorError::Config(format!(
                "checkpoint {id} belongs to subtask {} of {}, this pipeline is subtask {subtask} of {parallelism}: \
                 rescaling needs a checkpoint location shared by all subtasks (Pipeline::checkpoint_location), \
                 not a store per subtask",
                c.subtask, c.parallelism
            ))),
            Some((id, c)) => Ok(Some(own_restore(id, c))),
            None => Ok(None),
        };
    }
    // Another parallelism's checkpoint newer than this subtask's own state means its
    // partitions may have moved since: redistribute from every subtask's newest.
    let moved = others
        .iter()
        .any(|(id, c)| c.parallelism != parallelism && *id > own_id);
    if !own_rescaled && !moved {
        return Ok(own.map(|(id, c)| own_restore(id, c)));
    }
    let entries: Vec<EntryOf<I, R, C, W>> = own.into_iter().chain(others).collect();
    let views: Vec<CheckpointedSource<'_, R::Split, R::EnumeratorState>> = entries
        .iter()
        .map(|(id, c)| CheckpointedSource {
            checkpoint_id: *id,
            subtask: c.subtask,
            parallelism: c.parallelism,
            splits: &c.source_splits,
            enumerator: &c.enumerator,
        })
        .collect();
    let (splits, enumerator) = source.redistribute(&views, subtask, parallelism)?;
    let checkpoint_id = entries.iter().map(|(id, _)| *id).max().unwrap_or(0);
    // The sink's state of subtask j goes to j mod parallelism (Flink's downscale rule), which
    // commits its pending committables and aborts what it may have left open.
    let taken: Vec<&PipelineCheckpoint<C, W, R::Split, R::EnumeratorState>> = entries
        .iter()
        .map(|(_, c)| c)
        .filter(|c| c.subtask % parallelism == subtask)
        .collect();
    let sink = SinkRestore::new(
        checkpoint_id,
        taken.iter().flat_map(|c| c.committables.iter().cloned()).collect(),
        taken.iter().map(|c| c.writer_state.clone()).collect(),
    );
    let (records_in, records_out) = entries
        .iter()
        .filter(|(_, c)| c.subtask == subtask)
        .map(|(_, c)| (c.records_in, c.records_out))
        .next()
        .unwrap_or((0, 0));
    info!(
        subtask,
        parallelism,
        from = ?entries.iter().map(|(id, c)| (c.subtask, c.parallelism, *id)).collect::<Vec<_>>(),
        splits = splits.len(),
        "rescaled: this subtask's state redistributed from every subtask's newest checkpoint"
    );
    Ok(Some(Restore {
        checkpoint_id,
        splits,
        enumerator,
        sink,
        records_in,
        records_out,
        rescaled: true,
    }))
}

fn own_restore<C: Clone, W: Clone, Sp, E>(id: u64, c: PipelineCheckpoint<C, W, Sp, E>) -> Restore<C, W, Sp, E> {
    Restore {
        checkpoint_id: id,
        sink: SinkRestore::new(id, c.committables, vec![c.writer_state]),
        splits: c.source_splits,
        enumerator: c.enumerator,
        records_in: c.records_in,
        records_out: c.records_out,
        rescaled: false,
    }
}
