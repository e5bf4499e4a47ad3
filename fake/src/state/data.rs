//! The fake broker's data path: Produce (idempotent sequences, transactions), Fetch
//! (sessions, read_committed) and ListOffsets.

use bytes::Bytes;
use kafka_protocol::messages::*;
use strom_protocol::record_batch::{BatchView, DecodeOptions};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::{injected, s, FetchSession, ProducerState, SessionPartition, State, FETCH_SESSIONS_MAX};

impl State {
    // ---------------------------------------------------------------- Produce

    /// A Produce; `inject` fails the matching partitions (nothing appended there). Under
    /// transaction.version 2 a transactional Produce v12+ adds its partitions to the
    /// transaction itself (KIP-890), as the leader asks the coordinator to.
    pub(crate) fn produce(
        &mut self,
        node: i32,
        req: &ProduceRequest,
        version: i16,
        inject: Option<&(ErrorCode, Option<(String, i32)>)>,
        now: std::time::Instant,
    ) -> ProduceResponse {
        if version >= 12 && self.settings.transaction_version >= 2 {
            if let Some(tid) = req.transactional_id.as_ref().map(|t| t.0.to_string()) {
                self.add_produced_partitions(&tid, req, now);
            }
        }
        let mut responses = Vec::new();
        for t in &req.topic_data {
            let name = t.name.0.to_string();
            let mut parts = Vec::new();
            for pd in &t.partition_data {
                let (code, base, msg) = match injected(inject, &name, pd.index) {
                    Some(code) => (code, -1, None),
                    None => match self.append(node, &name, pd.index, pd.records.as_ref()) {
                        Ok(base) => (ErrorCode::None, base, None),
                        Err((code, msg)) => (code, -1, msg),
                    },
                };
                let log_start = self.partition_mut(&name, pd.index).map_or(-1, |p| p.log.log_start());
                parts.push(
                    produce_response::PartitionProduceResponse::default()
                        .with_index(pd.index)
                        .with_error_code(code.code())
                        .with_base_offset(base)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(log_start)
                        .with_error_message(msg.as_deref().map(s)),
                );
            }
            responses.push(
                produce_response::TopicProduceResponse::default()
                    .with_name(t.name.clone())
                    .with_partition_responses(parts),
            );
        }
        ProduceResponse::default().with_responses(responses)
    }

    pub(super) fn append(
        &mut self,
        node: i32,
        topic: &str,
        p: i32,
        records: Option<&Bytes>,
    ) -> Result<i64, (ErrorCode, Option<String>)> {
        // Which producers may write transactional batches here, with their epochs.
        let in_txn: Vec<(i64, i16)> = self
            .txns
            .values()
            .filter(|t| t.partitions.contains(&(topic.to_owned(), p)))
            .map(|t| (t.pid, t.epoch))
            .collect();
        let fenced: Vec<(i64, i16)> = self.txns.values().map(|t| (t.pid, t.epoch)).collect();
        let Some(part) = self.partition_mut(topic, p) else {
            return Err((ErrorCode::UnknownTopicOrPartition, None));
        };
        if part.leader != node {
            return Err((ErrorCode::NotLeaderOrFollower, None));
        }
        let mut buf = records.cloned().unwrap_or_default();
        let opts = DecodeOptions::default();
        let mut batches = Vec::new();
        while !buf.is_empty() {
            match BatchView::parse(&mut buf, &opts) {
                Ok(Some(b)) => batches.push(b),
                Ok(None) => return Err((ErrorCode::CorruptMessage, Some("a truncated record batch".into()))),
                Err(e) => return Err((ErrorCode::CorruptMessage, Some(e.to_string()))),
            }
        }
        if batches.is_empty() {
            return Err((ErrorCode::InvalidRecord, Some("no record batch".into())));
        }
        for b in &batches {
            if b.is_control() {
                return Err((
                    ErrorCode::InvalidRecord,
                    Some("a client may not write control batches".into()),
                ));
            }
            if b.is_transactional() {
                let (pid, epoch) = (b.producer_id(), b.producer_epoch());
                if fenced.iter().any(|(p, e)| *p == pid && epoch < *e) {
                    return Err((ErrorCode::InvalidProducerEpoch, None));
                }
                if !in_txn.contains(&(pid, epoch)) {
                    return Err((
                        ErrorCode::InvalidTxnState,
                        Some("the partition was not added to the transaction".into()),
                    ));
                }
            }
        }
        // Idempotence: every batch of a producer id must follow the last sequence.
        let mut base = -1;
        for b in &batches {
            let pid = b.producer_id();
            if pid >= 0 {
                let (first, count) = (b.base_sequence(), b.records_count());
                let last = first.wrapping_add(count - 1);
                let st = part.producers.entry(pid).or_default();
                let fresh = st.recent.is_empty() && st.last_seq == 0 && st.epoch == 0;
                if b.producer_epoch() < st.epoch {
                    return Err((ErrorCode::InvalidProducerEpoch, None));
                }
                if b.producer_epoch() > st.epoch || fresh {
                    if first != 0 {
                        return Err((ErrorCode::OutOfOrderSequenceNumber, None));
                    }
                    *st = ProducerState {
                        epoch: b.producer_epoch(),
                        ..ProducerState::default()
                    };
                } else if let Some(&(_, _, dup_base)) = st.recent.iter().find(|(f, l, _)| *f == first && *l == last) {
                    // A retry of a batch already written: its offset again, nothing appended.
                    if base < 0 {
                        base = dup_base;
                    }
                    continue;
                } else if first != st.last_seq.wrapping_add(1) {
                    return Err((ErrorCode::OutOfOrderSequenceNumber, None));
                }
                let epoch = part.leader_epoch;
                let b_base = part.log.append(b, epoch);
                if b.is_transactional() {
                    part.open_txns.entry(pid).or_insert(b_base);
                }
                let st = part.producers.entry(pid).or_default();
                st.last_seq = last;
                st.recent.push_back((first, last, b_base));
                if st.recent.len() > 5 {
                    st.recent.pop_front();
                }
                if base < 0 {
                    base = b_base;
                }
            } else {
                let epoch = part.leader_epoch;
                let b_base = part.log.append(b, epoch);
                if base < 0 {
                    base = b_base;
                }
            }
        }
        Ok(base)
    }

    // ---------------------------------------------------------------- Fetch

    /// A Fetch; `None` while fewer than `min_bytes` are there and `last` is false. Fetch
    /// sessions (KIP-227, v7+): epoch 0 opens one (a full fetch), later epochs name only the
    /// partitions that changed and are answered only with those that changed; -1 is
    /// sessionless (and closes the named session).
    pub(crate) fn fetch(
        &mut self,
        node: i32,
        req: &FetchRequest,
        version: i16,
        inject: Option<&(ErrorCode, Option<(String, i32)>)>,
        last: bool,
    ) -> Option<FetchResponse> {
        let fail = |code: ErrorCode| Some(FetchResponse::default().with_error_code(code.code()));
        if let Some((code, _)) = inject {
            if matches!(
                code,
                ErrorCode::FetchSessionIdNotFound | ErrorCode::InvalidFetchSessionEpoch
            ) {
                // A session error is the whole request's, and the session is gone (evicted),
                // as on a broker.
                self.fetch_sessions.remove(&(node, req.session_id));
                return fail(*code);
            }
        }
        // The partitions of the request, resolved to names.
        let mut asked: Vec<SessionPartition> = Vec::new();
        for t in &req.topics {
            let name = if version >= 13 {
                self.name_of(t.topic_id).unwrap_or_default()
            } else {
                t.topic.0.to_string()
            };
            for fp in &t.partitions {
                asked.push(SessionPartition {
                    topic: name.clone(),
                    topic_id: t.topic_id,
                    partition: fp.partition,
                    fetch_offset: fp.fetch_offset,
                    max_bytes: fp.partition_max_bytes,
                    current_leader_epoch: fp.current_leader_epoch,
                    sent: None,
                });
            }
        }
        let forgotten: Vec<(String, i32)> = req
            .forgotten_topics_data
            .iter()
            .flat_map(|t| {
                let name = if version >= 13 {
                    self.name_of(t.topic_id).unwrap_or_default()
                } else {
                    t.topic.0.to_string()
                };
                t.partitions.iter().map(move |p| (name.clone(), *p))
            })
            .collect();
        // Which partitions this answer covers, and whether only changed ones are sent.
        let (session_key, plan, incremental) = if version < 7 || req.session_epoch == -1 {
            (None, asked, false)
        } else if req.session_epoch == 0 {
            (Some((node, 0)), asked, false)
        } else {
            let key = (node, req.session_id);
            let Some(sess) = self.fetch_sessions.get(&key) else {
                return fail(ErrorCode::FetchSessionIdNotFound);
            };
            if sess.epoch != req.session_epoch {
                return fail(ErrorCode::InvalidFetchSessionEpoch);
            }
            let mut plan = sess.partitions.clone();
            plan.retain(|p| !forgotten.contains(&(p.topic.clone(), p.partition)));
            for a in asked {
                match plan
                    .iter_mut()
                    .find(|p| p.topic == a.topic && p.partition == a.partition)
                {
                    Some(p) => {
                        p.fetch_offset = a.fetch_offset;
                        p.max_bytes = a.max_bytes;
                        p.current_leader_epoch = a.current_leader_epoch;
                    }
                    None => plan.push(a),
                }
            }
            (Some(key), plan, true)
        };
        let max_bytes = usize::try_from(req.max_bytes.max(0)).unwrap_or(0);
        let mut total = 0usize;
        let mut by_topic: Vec<(String, Uuid, Vec<fetch_response::PartitionData>)> = Vec::new();
        let mut sent: Vec<(i64, i64)> = Vec::with_capacity(plan.len());
        // An error or a redirect is answered at once, as a broker does (no min_bytes wait).
        let mut at_once = false;
        let rack = if version >= 11 { req.rack_id.as_str() } else { "" };
        for sp in &plan {
            let mut pd = fetch_response::PartitionData::default()
                .with_partition_index(sp.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1);
            let part = self
                .topics
                .get(&sp.topic)
                .and_then(|t| t.partitions.get(usize::try_from(sp.partition).ok()?));
            let mut has_records = false;
            let code = match (injected(inject, &sp.topic, sp.partition), part) {
                (Some(code), _) => code,
                (None, None) if version >= 13 => ErrorCode::UnknownTopicId,
                (None, None) => ErrorCode::UnknownTopicOrPartition,
                (None, Some(p)) => match (
                    self.may_serve(node, p, sp.current_leader_epoch, version),
                    self.preferred_replica(p, node, rack),
                ) {
                    (Err(code), _) => code,
                    (Ok(()), Some(replica)) => {
                        pd = pd.with_preferred_read_replica(BrokerId(replica));
                        at_once = true;
                        ErrorCode::None
                    }
                    (Ok(()), None)
                        if sp.fetch_offset < p.log.log_start() || sp.fetch_offset > p.log.high_watermark() =>
                    {
                        ErrorCode::OffsetOutOfRange
                    }
                    (Ok(()), None) => {
                        let room = max_bytes.saturating_sub(total);
                        let limit = usize::try_from(sp.max_bytes.max(0)).unwrap_or(0).min(room);
                        let committed = req.isolation_level == 1;
                        let until = if committed { p.last_stable() } else { i64::MAX };
                        let records = if room == 0 && total > 0 {
                            Bytes::new()
                        } else {
                            p.log.read(sp.fetch_offset, limit, until)
                        };
                        total += records.len();
                        has_records = !records.is_empty();
                        let aborted = committed.then(|| {
                            p.aborted
                                .iter()
                                .filter(|(_, first, last)| *last >= sp.fetch_offset && *first < until)
                                .map(|(pid, first, _)| {
                                    fetch_response::AbortedTransaction::default()
                                        .with_producer_id(ProducerId(*pid))
                                        .with_first_offset(*first)
                                })
                                .collect()
                        });
                        pd = pd.with_records(Some(records)).with_aborted_transactions(aborted);
                        ErrorCode::None
                    }
                },
            };
            at_once |= !code.is_ok();
            let marks = part.map_or((-1, -1), |p| (p.log.high_watermark(), p.log.log_start()));
            if let Some(p) = part {
                pd = pd
                    .with_high_watermark(marks.0)
                    .with_last_stable_offset(p.last_stable())
                    .with_log_start_offset(marks.1)
                    .with_current_leader(
                        fetch_response::LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(p.leader))
                            .with_leader_epoch(p.leader_epoch),
                    );
            }
            sent.push(marks);
            // An incremental answer leaves out what did not change since the last one.
            let changed = !incremental || has_records || !code.is_ok() || sp.sent != Some(marks);
            if !changed {
                continue;
            }
            let pd = pd.with_error_code(code.code());
            match by_topic.iter_mut().find(|(n, _, _)| *n == sp.topic) {
                Some((_, _, v)) => v.push(pd),
                None => by_topic.push((sp.topic.clone(), sp.topic_id, vec![pd])),
            }
        }
        if !last && !at_once && total < usize::try_from(req.min_bytes.max(1)).unwrap_or(1) && inject.is_none() {
            return None;
        }
        let session_id = match session_key {
            None => {
                if version >= 7 && req.session_id != 0 {
                    self.fetch_sessions.remove(&(node, req.session_id));
                }
                0
            }
            Some((node, id)) => {
                let id = if id == 0 {
                    // A new session (closing the one named, if any).
                    if req.session_id != 0 {
                        self.fetch_sessions.remove(&(node, req.session_id));
                    }
                    self.next_session_id += 1;
                    self.next_session_id
                } else {
                    id
                };
                let mut partitions = plan;
                for (p, marks) in partitions.iter_mut().zip(sent) {
                    p.sent = Some(marks);
                }
                let epoch = if incremental {
                    req.session_epoch.wrapping_add(1).max(1)
                } else {
                    1
                };
                self.fetch_sessions
                    .insert((node, id), FetchSession { epoch, partitions });
                if self.fetch_sessions.len() > FETCH_SESSIONS_MAX {
                    // Evict the oldest ids first (a real broker evicts by its own policy).
                    if let Some(k) = self.fetch_sessions.keys().next().copied() {
                        self.fetch_sessions.remove(&k);
                    }
                }
                id
            }
        };
        let responses = by_topic
            .into_iter()
            .map(|(name, id, parts)| {
                fetch_response::FetchableTopicResponse::default()
                    .with_topic(TopicName(s(&name)))
                    .with_topic_id(id)
                    .with_partitions(parts)
            })
            .collect();
        Some(
            FetchResponse::default()
                .with_session_id(session_id)
                .with_responses(responses),
        )
    }

    /// Whether `node` may answer a consumer's fetch of `p`, as a Kafka broker decides: the
    /// client's leader epoch first (a replica that knows a newer one fences it, an older
    /// one does not know it), then the role: the leader, or from v11 (KIP-392) any replica.
    fn may_serve(&self, node: i32, p: &super::Partition, client_epoch: i32, version: i16) -> Result<(), ErrorCode> {
        if !p.replicas.contains(&node) {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        if client_epoch >= 0 && client_epoch < p.leader_epoch {
            return Err(ErrorCode::FencedLeaderEpoch);
        }
        if client_epoch > p.leader_epoch {
            return Err(ErrorCode::UnknownLeaderEpoch);
        }
        if p.leader != node && version < 11 {
            return Err(ErrorCode::NotLeaderOrFollower);
        }
        Ok(())
    }

    /// KIP-392 with `RackAwareReplicaSelector`: the replica a leader sends a consumer in
    /// `rack` to, when the leader is elsewhere and a live replica is there.
    fn preferred_replica(&self, p: &super::Partition, node: i32, rack: &str) -> Option<i32> {
        if !self.settings.rack_aware_replica_selector || rack.is_empty() || p.leader != node {
            return None;
        }
        let rack_of = |id: i32| {
            self.brokers
                .iter()
                .find(|b| b.id == id && b.up)
                .and_then(|b| b.rack.as_deref())
        };
        if rack_of(p.leader) == Some(rack) {
            return None;
        }
        p.replicas
            .iter()
            .copied()
            .find(|r| *r != p.leader && rack_of(*r) == Some(rack))
    }

    // ---------------------------------------------------------------- ListOffsets

    pub(crate) fn list_offsets(
        &self,
        node: i32,
        req: &ListOffsetsRequest,
        inject: Option<&(ErrorCode, Option<(String, i32)>)>,
    ) -> ListOffsetsResponse {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let parts = t
                    .partitions
                    .iter()
                    .map(|lp| {
                        let r = list_offsets_response::ListOffsetsPartitionResponse::default()
                            .with_partition_index(lp.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1);
                        let part = self
                            .topics
                            .get(&name)
                            .and_then(|t| t.partitions.get(usize::try_from(lp.partition_index).ok()?));
                        let Some(p) = part else {
                            return r.with_error_code(ErrorCode::UnknownTopicOrPartition.code());
                        };
                        if let Some(code) = injected(inject, &name, lp.partition_index) {
                            return r.with_error_code(code.code());
                        }
                        if p.leader != node {
                            return r.with_error_code(ErrorCode::NotLeaderOrFollower.code());
                        }
                        let r = r.with_leader_epoch(p.leader_epoch);
                        match lp.timestamp {
                            -1 if req.isolation_level == 1 => r.with_offset(p.last_stable()),
                            -1 => r.with_offset(p.log.high_watermark()),
                            -2 | -4 => r.with_offset(p.log.log_start()),
                            -3 => match p.log.max_timestamp() {
                                Some((o, ts)) => r.with_offset(o).with_timestamp(ts),
                                None => r,
                            },
                            ts if ts >= 0 => match p.log.offset_for_time(ts) {
                                Some((o, ts)) => r.with_offset(o).with_timestamp(ts),
                                None => r,
                            },
                            _ => r.with_error_code(ErrorCode::UnsupportedVersion.code()),
                        }
                    })
                    .collect();
                list_offsets_response::ListOffsetsTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(parts)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(topics)
    }
}
