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

/// The transaction state machine, sans-IO: what a transactional producer may do next and
/// what each outcome does to it. It holds no connection and no clock; the driver
/// (`txn_commands.rs`, in the sender task) talks to the coordinator and reports back with
/// these methods. The state is published to the producer handle through `state`.
///
/// ```text
/// UNINITIALIZED --initialized--> READY --begin--> IN_TRANSACTION --ended--> READY
///        any --fenced (PRODUCER_FENCED, INVALID_PRODUCER_EPOCH, ...)--> FATAL (terminal)
/// IN_TRANSACTION + an abortable error: only an abort ends it (commit and offsets refuse)
/// ```
pub(crate) struct Txn {
    pub(crate) id: String,
    pub(super) timeout_ms: i32,
    /// transaction.version 2 (KIP-890) was negotiated at init.
    pub(crate) tv2: bool,
    pub(crate) state: Arc<AtomicU8>,
    /// TV1: partitions added to the transaction (AddPartitionsToTxn).
    added: HashSet<(Arc<str>, i32)>,
    /// TV2: a batch of the transaction was sent (the broker added its partition).
    produced: bool,
    /// Groups whose offsets are in the transaction.
    offsets_groups: HashSet<String>,
    /// An error that dooms the transaction: only an abort ends it.
    pub(crate) abortable: Option<Error>,
    /// An error that ends the producer.
    pub(crate) fatal: Option<Error>,
}

/// What a failure inside a transaction does ([`Txn::record_error`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Doom {
    /// The transaction must be aborted.
    Abortable,
    /// The producer is fenced: fail it (the driver fails what is queued).
    Fatal,
    /// Already recorded (the first error stays the cause).
    Known,
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
        }
    }

    fn current(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// Batches may go out: inside a transaction without a pending error.
    pub(crate) fn may_send(&self) -> bool {
        self.current() == IN_TRANSACTION && self.abortable.is_none() && self.fatal.is_none()
    }

    /// Whether the coordinator knows of this transaction (so that ending it takes an
    /// EndTxn): under TV1 a partition or a group was added; under TV2 a batch or offsets
    /// were sent.
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

    /// Fails with the fatal error when there is one.
    fn alive(&self) -> Result<()> {
        match &self.fatal {
            Some(_) => Err(in_fatal_state(self.fatal.as_ref())),
            None => Ok(()),
        }
    }

    /// init_transactions may run (again, after a timeout).
    pub(crate) fn check_init(&self) -> Result<()> {
        self.alive()
    }

    /// InitProducerId answered: ready for a transaction, in the protocol version found.
    pub(crate) fn initialized(&mut self, tv2: bool) {
        self.tv2 = tv2;
        self.set(READY);
    }

    /// begin_transaction: only when READY; a fresh transaction.
    pub(crate) fn begin(&mut self) -> Result<()> {
        self.alive()?;
        if self.current() != READY {
            return Err(Error::illegal_state(format!(
                "begin_transaction in state {}: call init_transactions first, and commit or abort the previous transaction",
                state_name(self.current())
            )));
        }
        self.added.clear();
        self.produced = false;
        self.offsets_groups.clear();
        self.abortable = None;
        self.set(IN_TRANSACTION);
        Ok(())
    }

    /// commit_transaction or abort_transaction may start: a transaction is open.
    pub(crate) fn check_end(&self, commit: bool) -> Result<()> {
        self.alive()?;
        if self.current() != IN_TRANSACTION {
            return Err(Error::illegal_state(format!(
                "{} in state {}: no transaction in progress",
                if commit {
                    "commit_transaction"
                } else {
                    "abort_transaction"
                },
                state_name(self.current())
            )));
        }
        Ok(())
    }

    /// After the transaction's batches were flushed, whether it may commit.
    pub(crate) fn check_commit(&self) -> Result<()> {
        match &self.abortable {
            Some(e) => Err(e.clone().with_context("the transaction must be aborted")),
            None => Ok(()),
        }
    }

    /// The transaction ended (EndTxn answered, or nothing to end): READY for the next.
    pub(crate) fn ended(&mut self) {
        self.abortable = None;
        self.set(READY);
    }

    /// send_offsets_to_transaction may run; `Ok(true)` when the group must first be added
    /// (AddOffsetsToTxn, TV1 only, once per group and transaction).
    pub(crate) fn check_send_offsets(&self, group: &str) -> Result<bool> {
        self.alive()?;
        if let Some(e) = &self.abortable {
            return Err(e.clone());
        }
        if self.current() != IN_TRANSACTION {
            return Err(Error::illegal_state(
                "send_offsets_to_transaction outside a transaction: call begin_transaction",
            ));
        }
        Ok(!self.tv2 && !self.offsets_groups.contains(group))
    }

    /// The group's offsets are in the transaction.
    pub(crate) fn offsets_sent(&mut self, group: &str) {
        self.offsets_groups.insert(group.to_owned());
    }

    /// A transaction may be prepared (handed to another process to finish).
    pub(crate) fn check_prepare(&self) -> Result<()> {
        if self.current() != IN_TRANSACTION {
            return Err(Error::illegal_state(
                "prepare outside a transaction: call begin_transaction",
            ));
        }
        Ok(())
    }

    /// The prepared transaction of producer `pid`/`epoch`, once its batches are flushed.
    pub(crate) fn prepared(&self, pid: i64, epoch: i16) -> Result<PreparedTransaction> {
        self.alive()?;
        if let Some(e) = &self.abortable {
            return Err(e.clone().with_context("the transaction cannot be prepared"));
        }
        Ok(PreparedTransaction {
            transactional_id: self.id.clone(),
            producer_id: pid,
            producer_epoch: epoch,
            transaction_version: if self.tv2 { 2 } else { 1 },
        })
    }

    /// TV1: whether a partition still has to be added before its first batch.
    pub(crate) fn needs_adding(&self, partition: &(Arc<str>, i32)) -> bool {
        !self.tv2 && !self.added.contains(partition)
    }

    /// TV1: AddPartitionsToTxn accepted these.
    pub(crate) fn partitions_added(&mut self, parts: impl IntoIterator<Item = (Arc<str>, i32)>) {
        self.added.extend(parts);
    }

    /// A batch of the transaction was sent (TV2: its partition joins the transaction).
    pub(crate) fn batch_sent(&mut self) {
        self.produced = true;
    }

    /// A failure inside the transaction: fencing ends the producer (the state turns FATAL
    /// at once), anything else dooms the transaction. The first error stays the cause.
    pub(crate) fn record_error(&mut self, e: &Error) -> Doom {
        if e.kafka_code().is_some_and(is_fencing) {
            self.set(FATAL);
            if self.fatal.is_none() {
                return Doom::Fatal;
            }
            return Doom::Known;
        }
        if self.abortable.is_none() {
            self.abortable = Some(e.clone().into_abortable());
            return Doom::Abortable;
        }
        Doom::Known
    }

    /// A failed EndTxn: fencing ends the producer, as [`Txn::record_error`]; anything else
    /// leaves the transaction as it was (open, to be ended again).
    pub(crate) fn record_fencing(&mut self, e: &Error) -> Doom {
        if e.kafka_code().is_some_and(is_fencing) {
            self.record_error(e)
        } else {
            Doom::Known
        }
    }

    /// The producer failed for good with `e`.
    pub(crate) fn fail(&mut self, e: Error) {
        self.set(FATAL);
        self.fatal = Some(e);
    }
}

/// The state's name in messages (Java's `TransactionManager.State`).
pub(super) fn state_name(s: u8) -> &'static str {
    match s {
        UNINITIALIZED => "UNINITIALIZED",
        READY => "READY",
        IN_TRANSACTION => "IN_TRANSACTION",
        _ => "FATAL_ERROR",
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU8;
    use std::sync::Arc;
    use std::time::Duration;

    use strom_protocol::ErrorCode;

    use super::{Doom, Txn, FATAL, IN_TRANSACTION, READY, UNINITIALIZED};
    use crate::error::{Error, ErrorKind};

    fn txn() -> Txn {
        Txn::new(
            "tx".into(),
            Duration::from_secs(60),
            Arc::new(AtomicU8::new(UNINITIALIZED)),
        )
    }

    fn state(t: &Txn) -> u8 {
        t.state.load(std::sync::atomic::Ordering::Acquire)
    }

    #[test]
    fn calls_out_of_order_are_refused_with_the_state_named() {
        let mut t = txn();
        let e = t.begin().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::IllegalState);
        assert!(e.to_string().contains("UNINITIALIZED"), "{e}");
        assert!(t.check_end(true).is_err() && t.check_send_offsets("g").is_err() && t.check_prepare().is_err());
        t.check_init().unwrap();
        t.initialized(false);
        assert_eq!(state(&t), READY);
        assert!(t.check_end(false).unwrap_err().to_string().contains("READY"));
        t.begin().unwrap();
        assert_eq!(state(&t), IN_TRANSACTION);
        assert!(t.begin().unwrap_err().to_string().contains("IN_TRANSACTION"));
        t.check_end(true).unwrap();
        t.ended();
        assert_eq!(state(&t), READY);
    }

    /// What makes an end take an EndTxn: TV1 counts partitions and groups added, TV2 what
    /// was sent (the broker adds it).
    #[test]
    fn a_transaction_is_started_by_what_its_protocol_adds() {
        let mut t = txn();
        t.initialized(false);
        t.begin().unwrap();
        assert!(!t.started());
        let p: (Arc<str>, i32) = (Arc::from("t"), 0);
        assert!(t.needs_adding(&p));
        t.batch_sent();
        assert!(
            !t.started(),
            "TV1: a sent batch was added before, by AddPartitionsToTxn"
        );
        t.partitions_added([p.clone()]);
        assert!(t.started() && !t.needs_adding(&p));
        // AddOffsetsToTxn once per group and transaction.
        assert!(t.check_send_offsets("g").unwrap());
        t.offsets_sent("g");
        assert!(!t.check_send_offsets("g").unwrap());
        t.ended();
        t.begin().unwrap();
        assert!(!t.started() && t.needs_adding(&p) && t.check_send_offsets("g").unwrap());

        let mut t = txn();
        t.initialized(true);
        t.begin().unwrap();
        assert!(!t.needs_adding(&p), "TV2: Produce v12 adds it");
        assert!(
            !t.check_send_offsets("g").unwrap(),
            "TV2: TxnOffsetCommit v5 adds the group"
        );
        t.batch_sent();
        assert!(t.started());
    }

    #[test]
    fn an_abortable_error_allows_only_an_abort() {
        let mut t = txn();
        t.initialized(false);
        t.begin().unwrap();
        let e = Error::kafka(ErrorCode::MessageTooLarge);
        assert_eq!(t.record_error(&e), Doom::Abortable);
        assert!(!t.may_send());
        assert_eq!(
            t.record_error(&Error::kafka(ErrorCode::InvalidRecord)),
            Doom::Known,
            "the first error stays the cause"
        );
        assert!(t.check_commit().is_err());
        assert!(t.check_send_offsets("g").is_err());
        assert!(t.prepared(1, 0).is_err());
        t.check_end(false).unwrap();
        t.ended();
        t.begin().unwrap();
        assert!(t.may_send() && t.check_commit().is_ok(), "a new transaction is clean");
    }

    #[test]
    fn fencing_ends_the_producer() {
        let mut t = txn();
        t.initialized(true);
        t.begin().unwrap();
        // A failed EndTxn that is not fencing leaves the transaction open.
        assert_eq!(t.record_fencing(&Error::kafka(ErrorCode::RequestTimedOut)), Doom::Known);
        assert_eq!(state(&t), IN_TRANSACTION);
        let fenced = Error::kafka(ErrorCode::ProducerFenced);
        assert_eq!(t.record_fencing(&fenced), Doom::Fatal);
        assert_eq!(state(&t), FATAL);
        t.fail(fenced.clone());
        assert_eq!(t.record_error(&fenced), Doom::Known);
        for e in [
            t.begin().unwrap_err(),
            t.check_end(false).unwrap_err(),
            t.check_init().unwrap_err(),
            t.check_send_offsets("g").unwrap_err(),
            t.prepared(1, 0).unwrap_err(),
        ] {
            assert_eq!(e.kind(), ErrorKind::Fenced, "{e}");
        }
        assert!(!t.may_send());
    }

    #[test]
    fn a_prepared_transaction_names_its_producer_and_protocol() {
        let mut t = txn();
        t.initialized(true);
        t.begin().unwrap();
        let p = t.prepared(42, 3).unwrap();
        assert_eq!(
            (
                p.transactional_id.as_str(),
                p.producer_id,
                p.producer_epoch,
                p.transaction_version
            ),
            ("tx", 42, 3, 2)
        );
    }
}
