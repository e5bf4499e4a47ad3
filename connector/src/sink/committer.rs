//! Committing pre-committed transactions once their checkpoint is durable (Flink's
//! `KafkaCommitter`).

use serde::{Deserialize, Serialize};
use strom_client::ErrorCode;
use strom_client::{resume_transaction, Client, PreparedTransaction};
use tracing::{info, warn};

use super::metrics::SinkMetrics;
use crate::error::{ConnectorError, Result};

/// A pre-committed transaction: what a checkpoint stores so that the transaction can be
/// committed by any process after the checkpoint is durable (Flink's `KafkaCommittable`,
/// plus the transaction protocol version, which Flink forgets: FLINK-40689).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KafkaCommittable {
    /// `prefix-subtask-checkpointId`.
    pub transactional_id: String,
    /// Producer id of the open transaction.
    pub producer_id: i64,
    /// Producer epoch of the open transaction.
    pub epoch: i16,
    /// Transaction protocol version it was written with: 1 (KIP-98) or 2 (KIP-890).
    pub transaction_version: i16,
}

impl From<PreparedTransaction> for KafkaCommittable {
    fn from(p: PreparedTransaction) -> Self {
        KafkaCommittable {
            transactional_id: p.transactional_id,
            producer_id: p.producer_id,
            epoch: p.producer_epoch,
            transaction_version: p.transaction_version,
        }
    }
}

impl From<&KafkaCommittable> for PreparedTransaction {
    fn from(c: &KafkaCommittable) -> Self {
        PreparedTransaction {
            transactional_id: c.transactional_id.clone(),
            producer_id: c.producer_id,
            producer_epoch: c.epoch,
            transaction_version: c.transaction_version,
        }
    }
}

/// How a committable ended. Both mean "done": the checkpoint's commit succeeded, as Flink's
/// committer counts them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Committed now, or it had been committed by this same producer epoch before (the
    /// coordinator answers a repeated commit with success: TV2's "retry" rule, TV1's
    /// CompleteCommit state).
    Committed,
    /// The coordinator no longer has this transaction open under this producer epoch
    /// (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH, INVALID_TXN_STATE, UNKNOWN_PRODUCER_ID,
    /// INVALID_PRODUCER_ID_MAPPING). Usually it was committed before and the id was used again
    /// (a second restore from the same checkpoint); it can also mean the broker aborted it
    /// after `transaction.timeout.ms`, which loses its records: logged as a warning. Flink's
    /// committer treats these as "failed with known reason" and drops the committable.
    AlreadyFinished {
        /// The broker's error.
        code: ErrorCode,
    },
}

/// The error codes Flink's committer treats as "known reason, drop the committable"
/// (`ProducerFencedException`, `InvalidTxnStateException`, `UnknownProducerIdException`, plus
/// their relatives for an expired id).
fn is_known_finish(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::ProducerFenced
            | ErrorCode::InvalidProducerEpoch
            | ErrorCode::InvalidTxnState
            | ErrorCode::UnknownProducerId
            | ErrorCode::InvalidProducerIdMapping
    )
}

/// Commits [`KafkaCommittable`]s with EndTxn at their transaction coordinator, from the
/// stored producer id and epoch ([`resume_transaction`]): the process that prepared the
/// transaction need not be alive. Cheap `Clone`.
#[derive(Debug, Clone)]
pub struct KafkaCommitter {
    client: Client,
    metrics: SinkMetrics,
}

impl KafkaCommitter {
    /// A committer over a connected client.
    pub fn new(client: Client) -> Self {
        KafkaCommitter {
            client,
            metrics: SinkMetrics::default(),
        }
    }

    pub(crate) fn with_metrics(client: Client, metrics: SinkMetrics) -> Self {
        KafkaCommitter { client, metrics }
    }

    /// Commits each committable, in order. Call it only once the checkpoint holding them is
    /// durable, and call it again with the same committables after an error (committing is
    /// idempotent). Coordinator moves and retriable errors are retried up to
    /// `default.api.timeout.ms`; what still fails is returned as an error naming the
    /// transactional id (the remaining committables are not attempted).
    pub async fn commit(&self, committables: &[KafkaCommittable]) -> Result<Vec<CommitOutcome>> {
        let mut out = Vec::with_capacity(committables.len());
        for c in committables {
            out.push(self.commit_one(c).await?);
        }
        Ok(out)
    }

    /// Commits one committable; see [`KafkaCommitter::commit`].
    pub async fn commit_one(&self, committable: &KafkaCommittable) -> Result<CommitOutcome> {
        let prepared = PreparedTransaction::from(committable);
        match resume_transaction(&self.client, &prepared, true).await {
            Ok(()) => {
                info!(
                    transactional_id = %committable.transactional_id,
                    producer_id = committable.producer_id,
                    epoch = committable.epoch,
                    "transaction committed"
                );
                self.metrics.committed(1);
                Ok(CommitOutcome::Committed)
            }
            Err(e) => match e.kafka_code() {
                Some(code) if is_known_finish(code) => {
                    warn!(
                        transactional_id = %committable.transactional_id,
                        producer_id = committable.producer_id,
                        epoch = committable.epoch,
                        error = %e,
                        "transaction is no longer open under its epoch: committed before, fenced by a newer \
                         producer of the id, or aborted by the broker after transaction.timeout.ms (then its \
                         records are lost); counted as done, as Flink does"
                    );
                    Ok(CommitOutcome::AlreadyFinished { code })
                }
                _ => Err(ConnectorError::Client(e.with_context(format!(
                    "committing transactional id {}",
                    committable.transactional_id
                )))),
            },
        }
    }

    /// The client it commits with.
    pub fn client(&self) -> &Client {
        &self.client
    }
}
