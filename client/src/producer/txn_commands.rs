//! The driver of the transaction state machine ([`super::txn::Txn`], sans-IO): what the
//! sender does for a transactional producer's commands (init, begin, send offsets, commit
//! or abort, prepare), between its produce requests. It asks the state machine whether a
//! step may run, talks to the coordinators, and reports each outcome back.

use std::sync::Arc;
use tokio::time::Instant;

use strom_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use strom_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use strom_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, ApiKey, GroupId, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest,
};
use strom_protocol::ErrorCode;
use tracing::{info, info_span, Instrument};

use super::sender::Sender;
use super::txn::{
    end_txn, explain_fencing, init_producer_id, is_coordinator_retry, is_fencing, s, with_coordinator, Doom,
    PreparedTransaction, TxnCommand,
};
use crate::backoff::ExponentialBackoff;
use crate::consumer::{ConsumerGroupMetadata, OffsetAndMetadata, TopicPartition};
use crate::error::{Error, Result};

pub(crate) async fn run_command(sender: &mut Sender, cmd: TxnCommand) {
    let Some(id) = sender.txn.as_ref().map(|t| t.id.clone()) else {
        let e = Error::config("not a transactional producer (set transactional.id)");
        match cmd {
            TxnCommand::Init(r) | TxnCommand::Begin(r) | TxnCommand::End { reply: r, .. } => Sender::reply(r, Err(e)),
            TxnCommand::SendOffsets { reply, .. } => Sender::reply(reply, Err(e)),
            TxnCommand::Prepare(r) => Sender::reply(r, Err(e)),
        }
        return;
    };
    let span = info_span!("transaction", transactional_id = %id);
    async {
        match cmd {
            TxnCommand::Init(reply) => {
                let r = init(sender).await;
                Sender::reply(reply, r);
            }
            TxnCommand::Begin(reply) => {
                let r = match sender.txn.as_mut() {
                    Some(t) => t.begin(),
                    None => Err(Error::config("not transactional")),
                };
                if r.is_ok() {
                    info!("transaction begun");
                }
                Sender::reply(reply, r);
            }
            TxnCommand::End { commit, reply } => {
                let r = end(sender, commit).await;
                Sender::reply(reply, r);
            }
            TxnCommand::SendOffsets { offsets, group, reply } => {
                let r = send_offsets(sender, offsets, group).await;
                Sender::reply(reply, r);
            }
            TxnCommand::Prepare(reply) => {
                let r = prepare(sender).await;
                Sender::reply(reply, r);
            }
        }
    }
    .instrument(span)
    .await;
}

async fn init(sender: &mut Sender) -> Result<()> {
    let client = sender.client.clone();
    let limit = sender.cfg.max_block;
    let (current, id, timeout_ms) = {
        let Some(t) = sender.txn.as_ref() else {
            return Err(Error::config("not transactional"));
        };
        t.check_init()?;
        ((sender.producer_id, sender.epoch), t.id.clone(), t.timeout_ms)
    };
    let mut coord = sender.txn_coordinator.take();
    let (pid, epoch, conn) = init_producer_id(&client, &id, timeout_ms, current, &mut coord, limit).await?;
    let features = conn.versions().features().transaction_version();
    let tv2 = features >= 2
        && conn.versions().version(ApiKey::EndTxn).is_ok_and(|v| v >= 5)
        && conn.versions().version(ApiKey::Produce).is_ok_and(|v| v >= 12);
    sender.producer_id = pid;
    sender.epoch = epoch;
    sender.reset_sequences();
    sender.txn_coordinator = Some(conn);
    if let Some(t) = sender.txn.as_mut() {
        t.initialized(tv2);
    }
    info!(
        producer_id = pid,
        epoch,
        transaction_version = if tv2 { 2 } else { 1 },
        "transactions initialized"
    );
    Ok(())
}

/// Sends everything queued for the transaction and waits for it (new sends after a commit
/// started are held for the next transaction by the handle).
async fn flush_transaction(sender: &mut Sender) {
    sender.acc.lock().flushing += 1;
    loop {
        let empty = super::accumulator::Accumulator::is_empty(&sender.acc.lock());
        let blocked = sender.txn.as_ref().is_some_and(|t| !t.may_send());
        if (empty || blocked) && sender.inflight_is_empty() {
            break;
        }
        sender.drive_once().await;
    }
    let mut st = sender.acc.lock();
    st.flushing = st.flushing.saturating_sub(1);
}

async fn end(sender: &mut Sender, commit: bool) -> Result<()> {
    match sender.txn.as_ref() {
        Some(t) => t.check_end(commit)?,
        None => return Err(Error::config("not transactional")),
    }
    if commit {
        flush_transaction(sender).await;
        if let Some(t) = sender.txn.as_ref() {
            t.check_commit()?;
        }
    } else {
        sender.fail_unsent(&Error::transaction_aborted(
            "the transaction was aborted before this record was sent",
        ));
        sender.drain_inflight().await;
    }
    let client = sender.client.clone();
    let limit = sender.cfg.max_block;
    let (pid, epoch) = (sender.producer_id, sender.epoch);
    let (id, tv2, started) = {
        let Some(t) = sender.txn.as_ref() else {
            return Err(Error::config("not transactional"));
        };
        (t.id.clone(), t.tv2, t.started())
    };
    let mut coord = sender.txn_coordinator.take();
    let mut new_producer = None;
    if started {
        let r = with_coordinator(&client, &id, &mut coord, limit, "EndTxn", |conn| {
            let id = id.clone();
            async move { end_txn(conn, &id, (pid, epoch), commit, tv2).await }
        })
        .await;
        match r {
            Ok((new_pid, new_epoch)) => {
                if tv2 && new_pid >= 0 {
                    new_producer = Some((new_pid, new_epoch));
                }
            }
            Err(e) => {
                sender.txn_coordinator = coord;
                // Fencing ends the producer; any other failure leaves the transaction open,
                // to be ended again (the caller retries or aborts).
                if sender.txn.as_mut().map(|t| t.record_fencing(&e)) == Some(Doom::Fatal) {
                    sender.fail_fatal(e.clone());
                }
                return Err(e);
            }
        }
    }
    sender.txn_coordinator = coord;
    if let Some(t) = sender.txn.as_mut() {
        t.ended();
    }
    match new_producer {
        // TV2: every EndTxn bumps the epoch; sequences restart at 0.
        Some((pid, epoch)) => {
            sender.producer_id = pid;
            sender.epoch = epoch;
            sender.reset_sequences();
        }
        // TV1 after an abort: failed or unsent batches may have left sequence gaps; bump the
        // epoch (KIP-360, InitProducerId with our id and epoch) so the next one starts clean.
        None if !commit && started && !tv2 => {
            let mut coord = sender.txn_coordinator.take();
            let timeout_ms = sender.txn.as_ref().map_or(60_000, |t| t.timeout_ms);
            let (pid, epoch, conn) = init_producer_id(
                &client,
                &id,
                timeout_ms,
                (sender.producer_id, sender.epoch),
                &mut coord,
                limit,
            )
            .await?;
            sender.producer_id = pid;
            sender.epoch = epoch;
            sender.reset_sequences();
            sender.txn_coordinator = Some(conn);
        }
        None => {}
    }
    info!(committed = commit, started, "transaction ended");
    Ok(())
}

async fn send_offsets(
    sender: &mut Sender,
    offsets: Vec<(TopicPartition, OffsetAndMetadata)>,
    group: ConsumerGroupMetadata,
) -> Result<()> {
    let client = sender.client.clone();
    let limit = sender.cfg.max_block;
    let (pid, epoch) = (sender.producer_id, sender.epoch);
    let (id, tv2, need_add) = {
        let Some(t) = sender.txn.as_ref() else {
            return Err(Error::config("not transactional"));
        };
        (t.id.clone(), t.tv2, t.check_send_offsets(&group.group_id)?)
    };
    let mut coord = sender.txn_coordinator.take();
    if need_add {
        let g = group.group_id.clone();
        let r = with_coordinator(&client, &id, &mut coord, limit, "AddOffsetsToTxn", |conn| {
            let (id, g) = (id.clone(), g.clone());
            async move {
                let resp = conn
                    .send(
                        &AddOffsetsToTxnRequest::default()
                            .with_transactional_id(TransactionalId(s(&id)))
                            .with_producer_id(ProducerId(pid))
                            .with_producer_epoch(epoch)
                            .with_group_id(GroupId(s(&g))),
                    )
                    .await?;
                let code = ErrorCode::from(resp.error_code);
                Ok(if code.is_ok() { Ok(()) } else { Err(code) })
            }
        })
        .await;
        sender.txn_coordinator = coord;
        r?;
    } else {
        sender.txn_coordinator = coord;
    }
    let mut topics: std::collections::BTreeMap<&str, Vec<TxnOffsetCommitRequestPartition>> = Default::default();
    for (tp, o) in &offsets {
        topics.entry(&*tp.topic).or_default().push(
            TxnOffsetCommitRequestPartition::default()
                .with_partition_index(tp.partition)
                .with_committed_offset(o.offset)
                .with_committed_leader_epoch(o.leader_epoch.unwrap_or(-1))
                .with_committed_metadata((!o.metadata.is_empty()).then(|| s(&o.metadata))),
        );
    }
    let req = TxnOffsetCommitRequest::default()
        .with_transactional_id(TransactionalId(s(&id)))
        .with_group_id(GroupId(s(&group.group_id)))
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch)
        .with_generation_id(group.generation_id)
        .with_member_id(s(&group.member_id))
        .with_group_instance_id(group.group_instance_id.as_deref().map(s))
        .with_topics(
            topics
                .into_iter()
                .map(|(t, parts)| {
                    TxnOffsetCommitRequestTopic::default()
                        .with_name(TopicName(s(t)))
                        .with_partitions(parts)
                })
                .collect(),
        );
    let deadline = Instant::now() + limit;
    let backoff = ExponentialBackoff::retries(client.config());
    let mut failures = 0u32;
    loop {
        let sent = async {
            let conn =
                crate::lookup::coordinator(&client, &group.group_id, crate::lookup::CoordinatorType::Group).await?;
            let v = conn.versions().version(ApiKey::TxnOffsetCommit)?;
            // TV2 uses v5 (implicit AddOffsetsToTxn); TV1 must stay at v4 or below.
            let v = if tv2 { v.max(5) } else { v.min(4) };
            conn.send_version(&req, v).await
        }
        .await;
        let resp = match sent {
            Ok(resp) => resp,
            // A lost connection or a timed-out answer: the commit is sent again (it is
            // idempotent), to the coordinator looked up again, as Java's TxnOffsetCommit
            // handler does. tests/sim.rs seed 9660950272075 found it failing the call.
            Err(e) if e.is_retriable() && Instant::now() < deadline => {
                failures = failures.saturating_add(1);
                let wait = backoff
                    .delay(failures)
                    .min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(wait).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let worst = resp
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| ErrorCode::from(p.error_code)))
            .find(|c| !c.is_ok());
        match worst {
            None => break,
            Some(c) if (c.is_retriable() || is_coordinator_retry(c)) && Instant::now() < deadline => {
                failures = failures.saturating_add(1);
                let wait = backoff
                    .delay(failures)
                    .min(deadline.saturating_duration_since(Instant::now()));
                tokio::time::sleep(wait).await;
            }
            Some(c) => {
                let e = Error::kafka(c).with_context(format!("TxnOffsetCommit for group {}", group.group_id));
                let e = match sender.txn.as_ref() {
                    Some(t) => explain_fencing(e, &t.id),
                    None => e,
                };
                if is_fencing(c) {
                    sender.txn_error(e.clone());
                } else if let Some(t) = sender.txn.as_mut() {
                    // Refused offsets doom the transaction, with this error as the cause.
                    t.abortable = Some(e.clone());
                }
                return Err(e);
            }
        }
    }
    if let Some(t) = sender.txn.as_mut() {
        t.offsets_sent(&group.group_id);
    }
    Ok(())
}

async fn prepare(sender: &mut Sender) -> Result<PreparedTransaction> {
    match sender.txn.as_ref() {
        Some(t) => t.check_prepare()?,
        None => return Err(Error::config("not transactional")),
    }
    flush_transaction(sender).await;
    let t = sender.txn.as_ref().ok_or_else(|| Error::config("not transactional"))?;
    t.prepared(sender.producer_id, sender.epoch)
}

/// Adds partitions to the TV1 transaction before their first batch.
pub(crate) async fn add_partitions(sender: &mut Sender, parts: Vec<(Arc<str>, i32)>) -> Result<()> {
    let client = sender.client.clone();
    let limit = sender.cfg.max_block;
    let (pid, epoch) = (sender.producer_id, sender.epoch);
    let Some(id) = sender.txn.as_ref().map(|t| t.id.clone()) else {
        return Ok(());
    };
    let mut coord = sender.txn_coordinator.take();
    let mut by_topic: std::collections::BTreeMap<Arc<str>, Vec<i32>> = Default::default();
    for (t, p) in &parts {
        by_topic.entry(t.clone()).or_default().push(*p);
    }
    let topics: Vec<AddPartitionsToTxnTopic> = by_topic
        .iter()
        .map(|(t, ps)| {
            AddPartitionsToTxnTopic::default()
                .with_name(TopicName(s(t)))
                .with_partitions(ps.clone())
        })
        .collect();
    let r = with_coordinator(&client, &id, &mut coord, limit, "AddPartitionsToTxn", |conn| {
        let (id, topics) = (id.clone(), topics.clone());
        async move {
            let v = conn.versions().version(ApiKey::AddPartitionsToTxn)?.min(3);
            let resp = conn
                .send_version(
                    &AddPartitionsToTxnRequest::default()
                        .with_v3_and_below_transactional_id(TransactionalId(s(&id)))
                        .with_v3_and_below_producer_id(ProducerId(pid))
                        .with_v3_and_below_producer_epoch(epoch)
                        .with_v3_and_below_topics(topics),
                    v,
                )
                .await?;
            let worst = resp
                .results_by_topic_v3_and_below
                .iter()
                .flat_map(|t| {
                    t.results_by_partition
                        .iter()
                        .map(|p| ErrorCode::from(p.partition_error_code))
                })
                .find(|c| !c.is_ok() && *c != ErrorCode::OperationNotAttempted);
            Ok(match worst {
                None => Ok(()),
                Some(c) => Err(c),
            })
        }
    })
    .await;
    sender.txn_coordinator = coord;
    if let (Some(t), Ok(())) = (sender.txn.as_mut(), &r) {
        t.partitions_added(parts);
    }
    r
}

impl Sender {
    pub(super) async fn txn_command(&mut self, c: TxnCommand) {
        run_command(self, c).await;
    }

    /// Records a failure inside a transaction: fencing is fatal, anything else abortable.
    pub(crate) fn txn_error(&mut self, e: Error) {
        if self.txn.as_mut().map(|t| t.record_error(&e)) == Some(Doom::Fatal) {
            self.fail_fatal(e);
        }
    }

    pub(crate) async fn add_partitions(&mut self, parts: Vec<(Arc<str>, i32)>) -> Result<()> {
        add_partitions(self, parts).await
    }
}
