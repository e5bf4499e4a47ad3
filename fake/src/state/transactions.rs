//! The transaction coordinator: InitProducerId for transactional ids, AddPartitionsToTxn,
//! AddOffsetsToTxn, TxnOffsetCommit, EndTxn with markers, timeouts.

use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use strom_protocol::record_batch::{BatchView, DecodeOptions};
use strom_protocol::ErrorCode;

use crate::group::{Committed, Group};
use crate::txn::{marker_batch, wall_ms, Txn};

use super::State;

impl State {
    // ---------------------------------------------------------------- Transactions

    pub(super) fn init_transactional(&mut self, tid: &str, req: &InitProducerIdRequest) -> InitProducerIdResponse {
        let fail = |code: ErrorCode| {
            InitProducerIdResponse::default()
                .with_error_code(code.code())
                .with_producer_id(ProducerId(-1))
        };
        let timeout = Duration::from_millis(req.transaction_timeout_ms.max(0).unsigned_abs().into());
        if timeout.is_zero() || timeout > Duration::from_secs(900) {
            // transaction.max.timeout.ms is 15 minutes by default.
            return fail(ErrorCode::InvalidTransactionTimeout);
        }
        if let Some(t) = self.txns.get(tid) {
            // KIP-360: a producer naming its id and epoch must name the current ones.
            if req.producer_id.0 >= 0 && (req.producer_id.0 != t.pid || req.producer_epoch != t.epoch) {
                return fail(ErrorCode::ProducerFenced);
            }
            // A transaction left open by the previous producer is aborted.
            if t.open_since.is_some() {
                self.end_transaction(tid, false);
            }
        }
        let next_pid = self.next_producer_id;
        let t = self.txns.entry(tid.to_owned()).or_insert_with(|| {
            let mut t = Txn::new(next_pid, timeout);
            t.epoch = -1;
            t
        });
        if t.pid == next_pid {
            self.next_producer_id += 1;
        }
        t.timeout = timeout;
        t.open_since = None;
        t.last_end = None;
        if t.epoch >= i16::MAX - 1 {
            t.pid = self.next_producer_id;
            self.next_producer_id += 1;
            t.epoch = -1;
        }
        t.epoch += 1;
        InitProducerIdResponse::default()
            .with_producer_id(ProducerId(t.pid))
            .with_producer_epoch(t.epoch)
    }

    /// `Err` unless `tid` is known with this producer id and epoch.
    pub(super) fn txn_mut(&mut self, tid: &str, pid: i64, epoch: i16) -> Result<&mut Txn, ErrorCode> {
        let t = self.txns.get_mut(tid).ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if t.pid != pid {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if epoch < t.epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        if epoch > t.epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        Ok(t)
    }

    pub(crate) fn add_partitions_to_txn(
        &mut self,
        node: i32,
        req: &AddPartitionsToTxnRequest,
        now: Instant,
    ) -> AddPartitionsToTxnResponse {
        let tid = req.v3_and_below_transactional_id.0.to_string();
        let known: Vec<(String, usize)> = self
            .topics
            .iter()
            .map(|(n, t)| (n.clone(), t.partitions.len()))
            .collect();
        let check = self.check_coordinator(node, &tid).and_then(|()| {
            self.txn_mut(&tid, req.v3_and_below_producer_id.0, req.v3_and_below_producer_epoch)
                .map(|_| ())
        });
        // All or nothing, as the coordinator: one bad partition fails the others with
        // OPERATION_NOT_ATTEMPTED.
        let bad = |t: &str, p: i32| {
            known
                .iter()
                .find(|(n, _)| n == t)
                .is_none_or(|(_, c)| usize::try_from(p).map_or(true, |p| p >= *c))
        };
        let any_bad = req
            .v3_and_below_topics
            .iter()
            .any(|t| t.partitions.iter().any(|p| bad(t.name.0.as_str(), *p)));
        let response = add_partitions_answer(req, |t, p| match check {
            Err(e) => e,
            Ok(()) if bad(t, p) => ErrorCode::UnknownTopicOrPartition,
            Ok(()) if any_bad => ErrorCode::OperationNotAttempted,
            Ok(()) => ErrorCode::None,
        });
        if check.is_ok() && !any_bad {
            if let Some(txn) = self.txns.get_mut(&tid) {
                txn.open(now);
                for t in &req.v3_and_below_topics {
                    for p in &t.partitions {
                        txn.partitions.insert((t.name.0.to_string(), *p));
                    }
                }
            }
        }
        response
    }

    /// KIP-890: the partitions of a transactional Produce join the transaction of the
    /// producer id and epoch their batches carry, when that is the coordinator's current
    /// one (a stale epoch is refused by the append).
    pub(super) fn add_produced_partitions(&mut self, tid: &str, req: &ProduceRequest, now: Instant) {
        let opts = DecodeOptions::default();
        for t in &req.topic_data {
            for pd in &t.partition_data {
                let Some(mut bytes) = pd.records.clone() else { continue };
                let Ok(Some(b)) = BatchView::parse(&mut bytes, &opts) else {
                    continue;
                };
                if !b.is_transactional() {
                    continue;
                }
                if let Ok(txn) = self.txn_mut(tid, b.producer_id(), b.producer_epoch()) {
                    txn.open(now);
                    txn.partitions.insert((t.name.0.to_string(), pd.index));
                }
            }
        }
    }

    pub(crate) fn add_offsets_to_txn(
        &mut self,
        node: i32,
        req: &AddOffsetsToTxnRequest,
        now: Instant,
    ) -> AddOffsetsToTxnResponse {
        if let Err(e) = self.check_coordinator(node, req.transactional_id.0.as_str()) {
            return AddOffsetsToTxnResponse::default().with_error_code(e.code());
        }
        let code = match self.txn_mut(req.transactional_id.0.as_str(), req.producer_id.0, req.producer_epoch) {
            Ok(t) => {
                t.open(now);
                t.groups.insert(req.group_id.0.to_string());
                ErrorCode::None
            }
            Err(e) => e,
        };
        AddOffsetsToTxnResponse::default().with_error_code(code.code())
    }

    pub(crate) fn txn_offset_commit(
        &mut self,
        node: i32,
        req: &TxnOffsetCommitRequest,
        version: i16,
        now: Instant,
    ) -> TxnOffsetCommitResponse {
        let gid = req.group_id.0.to_string();
        // KIP-890 (v5 under transaction.version 2): the commit adds its group itself.
        let implicit = version >= 5 && self.settings.transaction_version >= 2;
        let mut code = match self.check_coordinator(node, &gid) {
            Err(e) => e,
            Ok(()) => match self.txn_mut(req.transactional_id.0.as_str(), req.producer_id.0, req.producer_epoch) {
                Err(e) => e,
                Ok(t) if implicit => {
                    t.open(now);
                    t.groups.insert(gid.clone());
                    ErrorCode::None
                }
                Ok(t) if !t.groups.contains(&gid) => ErrorCode::InvalidTxnState,
                Ok(_) => ErrorCode::None,
            },
        };
        // KIP-447 (v3+): the group's member and generation are checked.
        if code.is_ok() && version >= 3 && req.generation_id >= 0 {
            let g = self.groups.entry(gid.clone()).or_insert_with(Group::new);
            code = g.may_commit(req.member_id.as_str(), req.generation_id, true, now);
        }
        if code.is_ok() {
            if let Some(t) = self.txns.get_mut(req.transactional_id.0.as_str()) {
                for topic in &req.topics {
                    for p in &topic.partitions {
                        t.offsets.push((
                            gid.clone(),
                            topic.name.0.to_string(),
                            p.partition_index,
                            Committed {
                                offset: p.committed_offset,
                                leader_epoch: p.committed_leader_epoch,
                                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                            },
                        ));
                    }
                }
            }
        }
        let topics = req
            .topics
            .iter()
            .map(|t| {
                txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code.code())
                            })
                            .collect(),
                    )
            })
            .collect();
        TxnOffsetCommitResponse::default().with_topics(topics)
    }

    pub(crate) fn end_txn(&mut self, node: i32, req: &EndTxnRequest, version: i16) -> EndTxnResponse {
        let tid = req.transactional_id.0.to_string();
        if let Err(e) = self.check_coordinator(node, &tid) {
            return EndTxnResponse::default().with_error_code(e.code());
        }
        if version >= 5 && self.settings.transaction_version >= 2 {
            return self.end_txn_v2(&tid, req);
        }
        let code = match self.txn_mut(&tid, req.producer_id.0, req.producer_epoch) {
            Err(e) => e,
            Ok(t) if t.open_since.is_none() => {
                // Nothing open: a retry of an ended transaction, or nothing was ever added.
                ErrorCode::None
            }
            Ok(_) => {
                self.end_transaction(&tid, req.committed);
                ErrorCode::None
            }
        };
        EndTxnResponse::default().with_error_code(code.code())
    }

    /// EndTxn under KIP-890: every transaction ends with an epoch bump, its markers carry
    /// the new epoch, and the answer names it. A retry from the epoch before (the answer
    /// was lost) of the transaction that just ended the same way succeeds with the current
    /// producer id and epoch; one asking the other outcome is INVALID_TXN_STATE. Aborting
    /// with nothing open still bumps the epoch (how a producer clears a failed
    /// transaction); committing nothing is INVALID_TXN_STATE.
    fn end_txn_v2(&mut self, tid: &str, req: &EndTxnRequest) -> EndTxnResponse {
        let answer = |code: ErrorCode, pid: i64, epoch: i16| {
            EndTxnResponse::default()
                .with_error_code(code.code())
                .with_producer_id(ProducerId(pid))
                .with_producer_epoch(epoch)
        };
        let Some(t) = self.txns.get(tid) else {
            return answer(ErrorCode::InvalidProducerIdMapping, -1, -1);
        };
        let (pid, epoch) = (t.pid, t.epoch);
        if let Some((committed, bumped)) = t.last_end {
            if bumped == epoch && req.producer_id.0 == pid && req.producer_epoch.checked_add(1) == Some(epoch) {
                return if committed == req.committed {
                    answer(ErrorCode::None, pid, epoch)
                } else {
                    answer(ErrorCode::InvalidTxnState, -1, -1)
                };
            }
        }
        let open = match self.txn_mut(tid, req.producer_id.0, req.producer_epoch) {
            Err(e) => return answer(e, -1, -1),
            Ok(t) => t.open_since.is_some(),
        };
        if !open && req.committed {
            return answer(ErrorCode::InvalidTxnState, -1, -1);
        }
        let Some(t) = self.txns.get_mut(tid) else {
            return answer(ErrorCode::InvalidProducerIdMapping, -1, -1);
        };
        if t.epoch >= i16::MAX - 1 {
            // The epoch is exhausted: Kafka moves the id to a new producer id.
            t.pid = self.next_producer_id;
            self.next_producer_id += 1;
            t.epoch = 0;
        } else {
            t.epoch += 1;
        }
        // The markers carry the new epoch, fencing any batch of the old one.
        self.end_transaction_as(tid, req.committed, Some(pid));
        let Some(t) = self.txns.get_mut(tid) else {
            return answer(ErrorCode::InvalidProducerIdMapping, -1, -1);
        };
        t.last_end = Some((req.committed, t.epoch));
        answer(ErrorCode::None, t.pid, t.epoch)
    }

    /// Writes the markers of `tid`'s open transaction, applies (commit) or drops (abort)
    /// its offsets, and closes it.
    pub(super) fn end_transaction(&mut self, tid: &str, commit: bool) {
        self.end_transaction_as(tid, commit, None);
    }

    /// [`Self::end_transaction`], the markers written for `data_pid` (the producer id the
    /// transaction's batches carry; `None`: the current one) at the current epoch.
    fn end_transaction_as(&mut self, tid: &str, commit: bool, data_pid: Option<i64>) {
        let Some(t) = self.txns.get_mut(tid) else { return };
        let (pid, epoch) = (data_pid.unwrap_or(t.pid), t.epoch);
        let partitions: Vec<(String, i32)> = std::mem::take(&mut t.partitions).into_iter().collect();
        let offsets = std::mem::take(&mut t.offsets);
        t.groups.clear();
        t.open_since = None;
        t.start_ms = -1;
        t.last_outcome = Some(commit);
        let now_ms = wall_ms();
        let opts = DecodeOptions::default();
        for (topic, p) in partitions {
            let Some(part) = self.partition_mut(&topic, p) else {
                continue;
            };
            let mut bytes = marker_batch(pid, epoch, commit, 0, now_ms);
            let Ok(Some(view)) = BatchView::parse(&mut bytes, &opts) else {
                continue;
            };
            let leader_epoch = part.leader_epoch;
            let marker = part.log.append(&view, leader_epoch);
            if let Some(first) = part.open_txns.remove(&pid) {
                if !commit {
                    part.aborted.push((pid, first, marker));
                }
            }
        }
        if commit {
            for (group, topic, p, c) in offsets {
                self.groups
                    .entry(group)
                    .or_insert_with(Group::new)
                    .offsets
                    .insert((topic, p), c);
            }
        }
    }

    /// Aborts transactions open past their timeout, fencing their producers (a new epoch).
    pub(super) fn expire_transactions(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, t)| t.expired(now))
            .map(|(id, _)| id.clone())
            .collect();
        for tid in expired {
            self.end_transaction(&tid, false);
            if let Some(t) = self.txns.get_mut(&tid) {
                t.epoch = t.epoch.saturating_add(1);
            }
        }
    }

    /// Whether a transaction holds offsets of `group` for this partition not yet committed.
    pub(super) fn pending_txn_offset(&self, group: &str, topic: &str, p: i32) -> bool {
        self.txns.values().any(|t| {
            t.offsets
                .iter()
                .any(|(g, tt, pp, _)| g == group && tt == topic && *pp == p)
        })
    }
}

/// An AddPartitionsToTxn answer (v0-3: a code per partition, no top-level one) with
/// `code_of(topic, partition)` for each partition asked.
pub(crate) fn add_partitions_answer(
    req: &AddPartitionsToTxnRequest,
    code_of: impl Fn(&str, i32) -> ErrorCode,
) -> AddPartitionsToTxnResponse {
    let results = req
        .v3_and_below_topics
        .iter()
        .map(|t| {
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(code_of(t.name.0.as_str(), *p).code())
                })
                .collect();
            add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(parts)
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

impl State {
    // ---------------------------------------------------------------- Admin (KIP-664)

    /// DescribeTransactions at broker `node`: ids it does not coordinate are NOT_COORDINATOR,
    /// unknown ones TRANSACTIONAL_ID_NOT_FOUND.
    pub(crate) fn describe_transactions(
        &self,
        node: i32,
        req: &DescribeTransactionsRequest,
    ) -> DescribeTransactionsResponse {
        use describe_transactions_response::{TopicData, TransactionState};
        let states = req
            .transactional_ids
            .iter()
            .map(|id| {
                let tid = id.0.as_str();
                let r = TransactionState::default()
                    .with_transactional_id(id.clone())
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
                    .with_transaction_start_time_ms(-1)
                    .with_transaction_state(super::s(""));
                if let Err(e) = self.check_coordinator(node, tid) {
                    return r.with_error_code(e.code());
                }
                let Some(t) = self.txns.get(tid) else {
                    return r.with_error_code(ErrorCode::TransactionalIdNotFound.code());
                };
                let mut topics: Vec<TopicData> = Vec::new();
                for (topic, p) in &t.partitions {
                    match topics.last_mut() {
                        Some(last) if last.topic.0.as_str() == topic.as_str() => last.partitions.push(*p),
                        _ => topics.push(
                            TopicData::default()
                                .with_topic(TopicName(super::s(topic)))
                                .with_partitions(vec![*p]),
                        ),
                    }
                }
                r.with_transaction_state(super::s(t.state_name()))
                    .with_transaction_timeout_ms(i32::try_from(t.timeout.as_millis()).unwrap_or(i32::MAX))
                    .with_transaction_start_time_ms(t.start_ms)
                    .with_producer_id(ProducerId(t.pid))
                    .with_producer_epoch(t.epoch)
                    .with_topics(topics)
            })
            .collect();
        DescribeTransactionsResponse::default().with_transaction_states(states)
    }

    /// ListTransactions at broker `node`: the transactions it coordinates, filtered by state,
    /// producer id, running time (v1+) and transactional id pattern (v2+, a regular
    /// expression matched against the whole id, as Java's `Pattern.matches`).
    pub(crate) fn list_transactions(&self, node: i32, req: &ListTransactionsRequest) -> ListTransactionsResponse {
        const STATES: &[&str] = &[
            "Empty",
            "Ongoing",
            "PrepareCommit",
            "PrepareAbort",
            "CompleteCommit",
            "CompleteAbort",
            "Dead",
            "PrepareEpochFence",
        ];
        let unknown: Vec<_> = req
            .state_filters
            .iter()
            .filter(|f| !STATES.contains(&f.as_str()))
            .cloned()
            .collect();
        let pattern = match req.transactional_id_pattern.as_deref().filter(|p| !p.is_empty()) {
            None => None,
            Some(p) => match regex::Regex::new(&format!("^(?:{p})$")) {
                Ok(re) => Some(re),
                Err(_) => {
                    return ListTransactionsResponse::default()
                        .with_error_code(ErrorCode::InvalidRegularExpression.code())
                        .with_unknown_state_filters(unknown)
                }
            },
        };
        let now_ms = wall_ms();
        let states = self
            .txns
            .iter()
            .filter(|(tid, _)| self.coordinator(tid).is_some_and(|b| b.id == node))
            .filter(|(_, t)| {
                req.state_filters.is_empty() || req.state_filters.iter().any(|f| f.as_str() == t.state_name())
            })
            .filter(|(_, t)| req.producer_id_filters.is_empty() || req.producer_id_filters.contains(&ProducerId(t.pid)))
            .filter(|(_, t)| req.duration_filter < 0 || (t.start_ms >= 0 && now_ms - t.start_ms >= req.duration_filter))
            .filter(|(tid, _)| pattern.as_ref().is_none_or(|re| re.is_match(tid)))
            .map(|(tid, t)| {
                list_transactions_response::TransactionState::default()
                    .with_transactional_id(TransactionalId(super::s(tid)))
                    .with_producer_id(ProducerId(t.pid))
                    .with_transaction_state(super::s(t.state_name()))
            })
            .collect();
        ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(states)
    }
}
