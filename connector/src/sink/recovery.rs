//! Transactional ids and recovery after a crash: Flink's `TransactionalIdFactory` and its
//! PROBING abort strategy (`TransactionAbortStrategyImpl.PROBING`).
//!
//! # Names
//!
//! The transaction that is pre-committed at checkpoint `c` of subtask `s` is named
//! `{prefix}-{s}-{c}` ([`transactional_id`]); a transaction begun after checkpoint `c - 1`
//! takes the name `c`.
//!
//! # Probing
//!
//! A crashed writer may leave transactions open: the one it was writing, and ones it
//! pre-committed at checkpoints that never became durable. They pin the last stable offset
//! of every partition they wrote to, so read_committed readers stop there until
//! `transaction.timeout.ms` passes. On restore from checkpoint `D`, for each subtask this
//! writer owns, ids `D+1, D+2, …` are probed in order and each one that exists is fenced and
//! aborted ([`abort_lingering`]: InitProducerId bumps the epoch and aborts an open
//! transaction, and returns once the abort markers are written). Probing stops at the first
//! id that **never existed**.
//!
//! How "never existed" is told: Flink calls `initTransactions()` on each id and stops at the
//! first whose returned epoch is 0, because InitProducerId on an unknown id creates it with
//! epoch 0. That has a side effect (it creates the id, so a restart loop probes further each
//! time) and a blind spot (epoch exhaustion also restarts at 0 under a new producer id).
//! [`abort_lingering`] returns no epoch, so this module asks first with DescribeTransactions:
//! TRANSACTIONAL_ID_NOT_FOUND means the coordinator never had that id (or it expired after
//! `transactional.id.expiration.ms`, 7 days, which leaves nothing open either). Only ids
//! that exist are initialized.
//!
//! A writer started without a checkpoint probes from checkpoint 1, as Flink does, so it also
//! aborts what an earlier run with the same prefix left open; an earlier run that used many
//! ids costs one probe per id. Give a new deployment without state a new prefix.
//!
//! # Why the names stay dense although transactions begin lazily
//!
//! Probing stops at the first unused id, so every id between the restored checkpoint and the
//! newest transaction of a crashed writer must have been used. A writer that begins
//! transactions lazily (none for a checkpoint without records) would leave holes: with
//! checkpoint 6 durable, 7 empty and never durable (the store failed, the pipeline carried
//! on) and 8 open, probing from 7 stops at once and 8 lingers. So before a writer begins
//! transaction `n`, it initializes (creates, empty) every skipped id above the highest
//! checkpoint it knows durable: the restored one, or the latest passed to
//! [`KafkaSinkWriter::notify_checkpoint_complete`](super::KafkaSinkWriter::notify_checkpoint_complete).
//! A pipeline that reports each durable checkpoint never pays for that; one that does not
//! pays one InitProducerId per skipped empty checkpoint, when records arrive again. This is
//! how Flink fills "gaps left by aborted checkpoints".
//!
//! # Rescaling
//!
//! Subtask `s` of `p` owns the previous subtasks `s, s + p, s + 2p, …` below the previous
//! parallelism (from the restored [`KafkaWriterState`]s), as Flink's PROBING does on
//! downscaling. Each owned subtask is probed from its own state's checkpoint id + 1 when
//! its state was handed over (even when that is below the restored checkpoint id: after a
//! rescale from a checkpoint location, each subtask's ids are its own), else from the
//! restored checkpoint id + 1. A subtask that has its own
//! checkpoint store and was removed must have its state (and pending committables) handed
//! to its new owner, or its transactions above the restored id could be aborted before they
//! are committed.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use strom_client::ErrorCode;
use strom_client::{abort_lingering, Admin, Client};
use tracing::{debug, info};

use super::committer::KafkaCommittable;
use crate::error::{ConnectorError, Result};

/// Longest transactional id the sink builds (Flink's `KafkaSinkBuilder` check): room is
/// kept for `-{u32}-{u64}` after the prefix.
pub const MAX_TRANSACTIONAL_ID_BYTES: usize = 249;
const MAX_SUFFIX_BYTES: usize = 1 + 10 + 1 + 20;

/// Longest `transactional_id_prefix` accepted.
pub const MAX_PREFIX_BYTES: usize = MAX_TRANSACTIONAL_ID_BYTES - MAX_SUFFIX_BYTES;

/// `prefix-subtask-checkpointId` (Flink's `TransactionalIdFactory.buildTransactionalId`).
pub fn transactional_id(prefix: &str, subtask: u32, checkpoint_id: u64) -> String {
    format!("{prefix}-{subtask}-{checkpoint_id}")
}

/// A writer's state at a checkpoint (Flink's `KafkaWriterState`): stored with the
/// checkpoint, handed back on restore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KafkaWriterState {
    /// The transactional id prefix the writer used (`None` unless exactly-once).
    pub transactional_id_prefix: Option<String>,
    /// The writer's subtask index.
    pub subtask: u32,
    /// The sink's parallelism then.
    pub parallelism: u32,
    /// The checkpoint this state belongs to.
    pub checkpoint_id: u64,
}

/// What a writer is restored from: the sink's part of the checkpoint the pipeline restores.
/// `Default` is a fresh start (no checkpoint). Generic over the committable and the writer
/// state, so any [`TwoPhaseCommitSink`](super::TwoPhaseCommitSink) restores from one; the
/// defaults are the Kafka sink's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SinkRestore<C = KafkaCommittable, W = KafkaWriterState> {
    /// The checkpoint restored from; `None` for a fresh start.
    pub checkpoint_id: Option<u64>,
    /// Committables of that checkpoint (and older ones) not known to be committed: they are
    /// committed before anything else.
    pub committables: Vec<C>,
    /// Writer states of that checkpoint this subtask takes over: its own, plus those of
    /// removed subtasks after a downscale (see the module docs on rescaling).
    pub writer_states: Vec<W>,
}

impl<C, W> Default for SinkRestore<C, W> {
    fn default() -> Self {
        SinkRestore {
            checkpoint_id: None,
            committables: Vec::new(),
            writer_states: Vec::new(),
        }
    }
}

impl<C, W> SinkRestore<C, W> {
    /// Restore from checkpoint `checkpoint_id` with its pending committables and this
    /// subtask's writer state(s).
    pub fn new(checkpoint_id: u64, committables: Vec<C>, writer_states: Vec<W>) -> Self {
        SinkRestore {
            checkpoint_id: Some(checkpoint_id),
            committables,
            writer_states,
        }
    }
}

/// What a restore did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreReport {
    /// Committables committed now (or found committed before).
    pub committed: Vec<String>,
    /// Transactional ids that existed above the restored checkpoint and were fenced (and
    /// aborted, if they had a transaction open), with the coordinator state found.
    pub aborted: Vec<(String, String)>,
    /// How many ids were probed (the existing ones plus one unused id per owned subtask).
    pub probed: usize,
}

/// The previous subtasks `subtask` of `parallelism` takes over, each with the first
/// checkpoint id to probe.
pub(crate) fn owned_subtasks(subtask: u32, parallelism: u32, restore: &SinkRestore) -> BTreeMap<u32, u64> {
    let default_start = restore.checkpoint_id.map_or(1, |c| c.saturating_add(1));
    let previous_parallelism = restore
        .writer_states
        .iter()
        .map(|s| s.parallelism)
        .max()
        .unwrap_or(parallelism)
        .max(parallelism);
    let mut owned = BTreeMap::new();
    let mut s = subtask;
    while s < previous_parallelism.max(subtask + 1) {
        owned.insert(s, default_start);
        match s.checked_add(parallelism.max(1)) {
            Some(next) => s = next,
            None => break,
        }
    }
    // A handed-over state says exactly where that subtask's unchecked ids begin, also when
    // it is older than the restored checkpoint (after a rescale, subtasks' checkpoint ids
    // differ: one killed before checkpointing in the last generation left its ids above its
    // own newest state, below the newest id of the others).
    let mut handed: BTreeMap<u32, u64> = BTreeMap::new();
    for st in &restore.writer_states {
        if st.subtask % parallelism.max(1) == subtask % parallelism.max(1) {
            let start = st.checkpoint_id.saturating_add(1);
            handed
                .entry(st.subtask)
                .and_modify(|v| *v = (*v).max(start))
                .or_insert(start);
        }
    }
    owned.extend(handed);
    owned
}

/// Whether `id` is known to the transaction coordinator (DescribeTransactions).
async fn exists(admin: &Admin, id: &str) -> Result<Option<String>> {
    match admin.describe_transaction(id).await {
        Ok(d) => Ok(Some(d.state)),
        Err(e) if e.kafka_code() == Some(ErrorCode::TransactionalIdNotFound) => Ok(None),
        Err(e) => Err(ConnectorError::Client(e.with_context(format!(
            "probing transactional id {id} for a lingering transaction"
        )))),
    }
}

/// Flink's PROBING: for each owned subtask, fences and aborts `prefix-s-c` for `c` from its
/// start upward until an id never existed (see the module docs). Ids in `skip` (just
/// committed) are passed over.
pub(crate) async fn abort_lingering_transactions(
    client: &Client,
    prefix: &str,
    owned: &BTreeMap<u32, u64>,
    skip: &HashSet<String>,
    report: &mut RestoreReport,
) -> Result<()> {
    let admin = Admin::new(client.clone());
    for (&s, &start) in owned {
        let mut c = start;
        loop {
            let id = transactional_id(prefix, s, c);
            report.probed += 1;
            if !skip.contains(&id) {
                let Some(state) = exists(&admin, &id).await? else {
                    debug!(transactional_id = %id, "probing stops: the id was never used");
                    break;
                };
                abort_lingering(client, &id).await.map_err(|e| {
                    ConnectorError::Client(e.with_context(format!("aborting lingering transactional id {id}")))
                })?;
                info!(transactional_id = %id, state = %state, "fenced a transactional id left by an earlier run");
                report.aborted.push((id, state));
            }
            c = match c.checked_add(1) {
                Some(n) => n,
                None => break,
            };
        }
    }
    Ok(())
}

/// Creates (empty) the ids `from..to` so probing walks past them (see "dense names").
pub(crate) async fn fill_gap(client: &Client, prefix: &str, subtask: u32, from: u64, to: u64) -> Result<()> {
    for c in from..to {
        let id = transactional_id(prefix, subtask, c);
        debug!(transactional_id = %id, "initializing the id of a skipped checkpoint so probing passes it");
        abort_lingering(client, &id)
            .await
            .map_err(|e| ConnectorError::Client(e.with_context(format!("initializing transactional id {id}"))))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn state(subtask: u32, parallelism: u32, checkpoint_id: u64) -> KafkaWriterState {
        KafkaWriterState {
            transactional_id_prefix: Some("p".into()),
            subtask,
            parallelism,
            checkpoint_id,
        }
    }

    #[test]
    fn names_as_flink() {
        assert_eq!(transactional_id("orders-sink", 3, 17), "orders-sink-3-17");
        let longest = transactional_id(&"x".repeat(MAX_PREFIX_BYTES), u32::MAX, u64::MAX);
        assert_eq!(longest.len(), MAX_TRANSACTIONAL_ID_BYTES);
    }

    #[test]
    fn fresh_start_probes_own_subtask_from_one() {
        let owned = owned_subtasks(2, 4, &SinkRestore::default());
        assert_eq!(owned, BTreeMap::from([(2, 1)]));
    }

    #[test]
    fn restore_probes_above_the_checkpoint() {
        let r = SinkRestore::new(41, vec![], vec![state(1, 3, 41)]);
        assert_eq!(owned_subtasks(1, 3, &r), BTreeMap::from([(1, 42)]));
    }

    #[test]
    fn downscale_takes_over_removed_subtasks() {
        // 5 subtasks became 2: subtask 0 owns 0, 2, 4; subtask 1 owns 1, 3.
        let r = SinkRestore::new(10, vec![], vec![state(0, 5, 10), state(4, 5, 12)]);
        assert_eq!(owned_subtasks(0, 2, &r), BTreeMap::from([(0, 11), (2, 11), (4, 13)]));
        let r = SinkRestore::new(10, vec![], vec![state(1, 5, 10)]);
        assert_eq!(owned_subtasks(1, 2, &r), BTreeMap::from([(1, 11), (3, 11)]));
    }

    #[test]
    fn a_handed_over_state_older_than_the_restored_checkpoint_is_probed_from_its_own_id() {
        // Rescaled 3 -> 1 from subtasks whose newest checkpoints are 8, 8 and 9.
        let r = SinkRestore::new(9, vec![], vec![state(0, 3, 8), state(1, 3, 8), state(2, 3, 9)]);
        assert_eq!(owned_subtasks(0, 1, &r), BTreeMap::from([(0, 9), (1, 9), (2, 10)]));
    }

    #[test]
    fn upscale_probes_only_its_own_index() {
        let r = SinkRestore::new(7, vec![], vec![state(1, 2, 7)]);
        assert_eq!(owned_subtasks(3, 4, &r), BTreeMap::from([(3, 8)]));
        assert_eq!(owned_subtasks(1, 4, &r), BTreeMap::from([(1, 8)]));
    }

    #[test]
    fn restore_state_round_trips_as_json() {
        let r = SinkRestore::new(
            5,
            vec![KafkaCommittable {
                transactional_id: "p-0-5".into(),
                producer_id: 1000,
                epoch: 3,
                transaction_version: 2,
            }],
            vec![state(0, 1, 5)],
        );
        let json = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<SinkRestore>(&json).unwrap(), r);
    }
}
