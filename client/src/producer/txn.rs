//! Transactions (KIP-98), in both protocol versions, chosen from the broker's finalized
//! `transaction.version` when the producer initializes:
//!
//! * TV1: AddPartitionsToTxn (v<=3) before a partition's first batch, Produce <= v11,
//!   AddOffsetsToTxn + TxnOffsetCommit <= v4, EndTxn <= v4. An empty transaction sends no
//!   EndTxn (the coordinator refuses it: INVALID_TXN_STATE).
//! * TV2 (KIP-890): the broker adds partitions itself on Produce v12 and offsets on
//!   TxnOffsetCommit v5; EndTxn v5 bumps the epoch on every transaction end, and the client
//!   adopts the producer id/epoch it returns and restarts sequences at 0.
//!
//! The coordinator steps run inside the sender task, so they are ordered with the batches.
//! [`PreparedTransaction`] with [`resume_transaction`] finishes a transaction from another
//! process (what Flink's committer does after a crash), and [`abort_lingering`] fences and
//! aborts whatever a transactional id left open.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use strom_protocol::message_traits::StrBytes;
use strom_protocol::messages::{ApiKey, EndTxnRequest, InitProducerIdRequest, ProducerId, TransactionalId};
use strom_protocol::ErrorCode;
use tokio::sync::oneshot;
use tracing::{debug, info_span, Instrument};

use crate::backoff::ExponentialBackoff;
use crate::client::Client;
use crate::connection::Connection;
use crate::consumer::{ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};
use crate::error::{Error, Result};

pub(super) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// Transaction states visible to the handle.
pub(crate) const UNINITIALIZED: u8 = 0;
pub(crate) const READY: u8 = 1;
pub(crate) const IN_TRANSACTION: u8 = 2;
pub(crate) const FATAL: u8 = 3;

/// What a transaction needs to be finished by someone else: stored in a checkpoint at
/// pre-commit, handed to [`resume_transaction`] on recovery.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PreparedTransaction {
    /// The transactional id.
    pub transactional_id: String,
    /// Producer id of the open transaction.
    pub producer_id: i64,
    /// Producer epoch of the open transaction.
    pub producer_epoch: i16,
    /// Transaction protocol version the transaction was written with (1 or 2).
    pub transaction_version: i16,
}

pub(crate) struct Txn {
    pub(crate) id: String,
    pub(super) timeout_ms: i32,
    pub(crate) tv2: bool,
    pub(crate) state: Arc<AtomicU8>,
    pub(crate) added: HashSet<(Arc<str>, i32)>,
    pub(crate) produced: bool,
    pub(super) offsets_groups: HashSet<String>,
    pub(crate) abortable: Option<Error>,
    pub(crate) fatal: Option<Error>,
    pub(super) coordinator: Option<Connection>,
}

impl Txn {
    pub(crate) fn new(id: String, timeout: Duration, state: Arc<AtomicU8>) -> Self {
        Txn {
            id,
            timeout_ms: i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX),
            tv2: false,
            state,
            added: HashSet::new(),
            produced: false,
            offsets_groups: HashSet::new(),
            abortable: None,
            fatal: None,
            coordinator: None,
        }
    }

    /// Batches may go out: inside a transaction without a pending error.
    pub(crate) fn may_send(&self) -> bool {
        self.state.load(Ordering::Acquire) == IN_TRANSACTION && self.abortable.is_none() && self.fatal.is_none()
    }

    pub(super) fn started(&self) -> bool {
        if self.tv2 {
            self.produced || !self.offsets_groups.is_empty()
        } else {
            !self.added.is_empty() || !self.offsets_groups.is_empty()
        }
    }

    pub(super) fn set(&self, state: u8) {
        self.state.store(state, Ordering::Release);
    }
}

pub(crate) enum TxnCommand {
    Init(oneshot::Sender<Result<()>>),
    Begin(oneshot::Sender<Result<()>>),
    End {
        commit: bool,
        reply: oneshot::Sender<Result<()>>,
    },
    SendOffsets {
        offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
        group: ConsumerGroupMetadata,
        reply: oneshot::Sender<Result<()>>,
    },
    Prepare(oneshot::Sender<Result<PreparedTransaction>>),
}

/// What every transactional call of a producer in a fatal state fails with, as Java's
/// `maybeFailWithError` does: `ErrorKind::Fenced` if it was fenced, else `ErrorKind::Fatal`,
/// the error that put it there as the source.
pub(crate) fn in_fatal_state(cause: Option<&Error>) -> Error {
    let cause = cause
        .cloned()
        .unwrap_or_else(|| Error::internal("fatal state without an error"));
    Error::fatal_state(
        "the transactional producer is in a fatal state: create a new one",
        cause,
    )
}

/// Errors that end the producer (Java's fatal `ProducerFencedException` & co.).
pub(super) fn is_fencing(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::ProducerFenced
            | ErrorCode::InvalidProducerEpoch
            | ErrorCode::TransactionalIdAuthorizationFailed
            | ErrorCode::InvalidProducerIdMapping
    )
}

/// Says what a fencing error means, as Java's `ProducerFencedException` and
/// `InvalidProducerEpochException` do: the codes alone do not tell the user why the epoch
/// moved and that this producer's transaction was aborted. PRODUCER_FENCED means another
/// producer took over; INVALID_PRODUCER_EPOCH also comes when the coordinator aborted a
/// transaction open longer than `transaction.timeout.ms` (it bumps the epoch then, KIP-588).
pub(crate) fn explain_fencing(e: Error, transactional_id: &str) -> Error {
    match e.kafka_code() {
        Some(ErrorCode::ProducerFenced) => e.with_context(format!(
            "fenced: another producer with the same transactional.id {transactional_id:?} took over (its \
             init_transactions bumped the epoch), so this producer's open transaction was aborted and its records \
             discarded; create a new producer and redo the transaction"
        )),
        Some(ErrorCode::InvalidProducerEpoch) => e.with_context(format!(
            "fenced: the coordinator bumped the epoch of transactional.id {transactional_id:?}, either because this \
             transaction stayed open longer than transaction.timeout.ms and was aborted, or because another producer \
             with the same transactional.id took over; this producer's open transaction was aborted and its records \
             discarded; create a new producer and redo the transaction"
        )),
        _ => e,
    }
}

/// Coordinator errors that mean "ask again" (after finding the coordinator again).
pub(super) fn is_coordinator_retry(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::CoordinatorLoadInProgress
            | ErrorCode::CoordinatorNotAvailable
            | ErrorCode::NotCoordinator
            | ErrorCode::ConcurrentTransactions
            | ErrorCode::RequestTimedOut
    )
}

/// Runs `op` against the transaction coordinator of `id`, re-finding it and retrying
/// coordinator errors and connection failures until `limit`.
pub(super) async fn with_coordinator<T, F, Fut>(
    client: &Client,
    id: &str,
    cached: &mut Option<Connection>,
    limit: Duration,
    what: &str,
    mut op: F,
) -> Result<T>
where
    F: FnMut(Connection) -> Fut,
    Fut: std::future::Future<Output = Result<std::result::Result<T, ErrorCode>>>,
{
    let deadline = Instant::now() + limit;
    let backoff = ExponentialBackoff::retries(client.config());
    let mut failures = 0u32;
    loop {
        let conn = match cached.as_ref().filter(|c| !c.is_closed()) {
            Some(c) => c.clone(),
            None => {
                let c = crate::lookup::coordinator(client, id, crate::lookup::CoordinatorType::Transaction).await?;
                *cached = Some(c.clone());
                c
            }
        };
        let outcome = op(conn).await;
        let retry = match &outcome {
            Ok(Ok(_)) => false,
            Ok(Err(code)) => is_coordinator_retry(*code),
            Err(e) => e.is_retriable(),
        };
        failures = failures.saturating_add(1);
        let wait = backoff.delay(failures);
        if !retry || Instant::now() + wait >= deadline {
            return match outcome {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(code)) => Err(explain_fencing(
                    Error::kafka(code).with_context(format!("{what} for transactional id {id}")),
                    id,
                )),
                Err(e) => Err(e.with_context(format!("{what} for transactional id {id}"))),
            };
        }
        if matches!(
            outcome,
            Ok(Err(ErrorCode::NotCoordinator | ErrorCode::CoordinatorNotAvailable)) | Err(_)
        ) {
            *cached = None;
        }
        debug!(what, "retrying at the transaction coordinator");
        tokio::time::sleep(wait).await;
    }
}

pub(crate) async fn init_producer_id(
    client: &Client,
    id: &str,
    timeout_ms: i32,
    current: (i64, i16),
    cached: &mut Option<Connection>,
    limit: Duration,
) -> Result<(i64, i16, Connection)> {
    with_coordinator(client, id, cached, limit, "InitProducerId", |conn| async move {
        let v = conn.versions().version(ApiKey::InitProducerId)?;
        // v3+ (KIP-360) carries the current id/epoch so the coordinator can bump it.
        let (pid, epoch) = if v >= 3 { current } else { (-1, -1) };
        let resp = conn
            .send(
                &InitProducerIdRequest::default()
                    .with_transactional_id(Some(TransactionalId(s(id))))
                    .with_transaction_timeout_ms(timeout_ms)
                    .with_producer_id(ProducerId(pid))
                    .with_producer_epoch(epoch),
            )
            .await?;
        let code = ErrorCode::from(resp.error_code);
        Ok(if code.is_ok() {
            Ok((resp.producer_id.0, resp.producer_epoch, conn))
        } else {
            Err(code)
        })
    })
    .await
}

/// One EndTxn at the coordinator: v5 (KIP-890, epoch bump) for TV2, v4 or below for TV1.
/// Returns the producer id and epoch the response carries (TV2 bumps them) or the error code.
pub(super) async fn end_txn(
    conn: Connection,
    id: &str,
    (pid, epoch): (i64, i16),
    commit: bool,
    tv2: bool,
) -> Result<std::result::Result<(i64, i16), ErrorCode>> {
    let v = conn.versions().version(ApiKey::EndTxn)?;
    if tv2 && v < 5 {
        return Err(Error::config(format!(
            "the transaction uses transaction.version 2 but the coordinator offers EndTxn up to v{v}"
        )));
    }
    let v = if tv2 { v.max(5) } else { v.min(4) };
    let resp = conn
        .send_version(
            &EndTxnRequest::default()
                .with_transactional_id(TransactionalId(s(id)))
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
                .with_committed(commit),
            v,
        )
        .await?;
    let code = ErrorCode::from(resp.error_code);
    Ok(if code.is_ok() {
        Ok((resp.producer_id.0, resp.producer_epoch))
    } else {
        Err(code)
    })
}

/// Finishes a transaction another producer (or an earlier process) prepared: commits or
/// aborts it with its stored producer id and epoch (EndTxn v5 for TV2, v4 or below for
/// TV1). Re-committing an already committed transaction succeeds; one whose id was
/// re-initialized since is fenced (PRODUCER_FENCED / INVALID_PRODUCER_EPOCH).
///
/// Cancellation-safe: the EndTxn may have been sent; calling it again is safe (finishing a
/// finished transaction succeeds).
pub async fn resume_transaction(client: &Client, prepared: &PreparedTransaction, commit: bool) -> Result<()> {
    let id = prepared.transactional_id.clone();
    let limit = client.config().default_api_timeout;
    let (pid, epoch, tv2) = (
        prepared.producer_id,
        prepared.producer_epoch,
        prepared.transaction_version >= 2,
    );
    let mut coord = None;
    let span = info_span!("transaction", transactional_id = %id, producer_id = pid, epoch, committed = commit);
    with_coordinator(
        client,
        &id,
        &mut coord,
        limit,
        if commit { "commit (resume)" } else { "abort (resume)" },
        |conn| {
            let id = id.clone();
            async move { Ok(end_txn(conn, &id, (pid, epoch), commit, tv2).await?.map(|_| ())) }
        },
    )
    .instrument(span)
    .await
}

/// Fences every earlier producer of `transactional_id` and aborts its open transaction
/// (InitProducerId does both), as a restarted sink does for ids it may have left open.
///
/// Cancellation-safe: the abort may have happened; calling it again is safe.
pub async fn abort_lingering(client: &Client, transactional_id: &str) -> Result<()> {
    let mut coord = None;
    let limit = client.config().default_api_timeout;
    init_producer_id(client, transactional_id, 60_000, (-1, -1), &mut coord, limit)
        .await
        .map(|_| ())
}
