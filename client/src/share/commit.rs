//! A share consumer's acknowledgements: `commit_sync`, `commit_async`, and the rounds of
//! ShareAcknowledge requests they send (kept in the consumer while in flight, so a dropped
//! call leaves its round to be collected, not lost).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use strom_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckReqBatch,
};
use strom_protocol::messages::{GroupId, ShareAcknowledgeRequest, ShareAcknowledgeResponse};
use strom_protocol::ErrorCode;
use tracing::warn;
use uuid::Uuid;

use super::acks::AcknowledgeType;
use super::acks::{AckBatch, Tip};
use super::config::AcknowledgementMode;
use super::session::{ShareSession, FINAL_EPOCH};

use super::rounds::{send_acknowledgements, AckAnswers, AckRound};
use super::{ShareConsumer, ShareRecord};
use crate::admin::s;
use crate::consumer::TopicPartition;
use crate::error::{Error, Result};

impl ShareConsumer {
    /// Sends every acknowledgement now (in implicit mode, after accepting what the last poll
    /// returned) and waits for the brokers' answers: each partition's outcome. Records
    /// renewed ([`AcknowledgeType::Renew`]) are returned again by the next poll.
    ///
    /// Cancellation: the acknowledgements a dropped call sent may or may not be applied; their
    /// records may be delivered again (share groups deliver at least once).
    pub async fn commit_sync(&mut self) -> Result<BTreeMap<TopicPartition, Result<()>>> {
        self.check_open()?;
        if self.config.acknowledgement_mode == AcknowledgementMode::Implicit {
            self.acks.acknowledge_all(AcknowledgeType::Accept);
        }
        self.send_acknowledgements(false).await
    }

    /// Sends the acknowledgements now without waiting for the brokers' answers (Java's
    /// `commitAsync`; in implicit mode, after accepting what the last poll returned). Their
    /// outcomes go to the acknowledgement callback when the next `poll`, `commit_sync`,
    /// `commit_async` or `close` collects them; those wait for these answers first, so
    /// each share session sees its requests in order.
    ///
    /// Cancellation: a dropped call may have sent the acknowledgements; their outcomes still
    /// reach the callback at the next poll, commit or close.
    pub async fn commit_async(&mut self) -> Result<()> {
        self.check_open()?;
        self.settle_async().await;
        let records = self.collect_fetch(None).await?;
        self.buffered.extend(records);
        if self.config.acknowledgement_mode == AcknowledgementMode::Implicit {
            self.acks.acknowledge_all(AcknowledgeType::Accept);
        }
        let (round, requests) = self.plan_acknowledgements(false);
        let task = tokio::spawn(send_acknowledgements(self.client.clone(), requests));
        self.in_flight = Some((round, task));
        Ok(())
    }

    /// Collects the answers to a `commit_async` still outstanding and reports them to the
    /// callback. Cancel-safe: dropped while waiting, the round stays outstanding.
    pub(super) async fn settle_async(&mut self) {
        if let Some(results) = self.collect_round().await {
            for (tp, outcome) in &results {
                if let Some(cb) = self.callback.as_mut() {
                    cb(tp, outcome);
                }
            }
        }
    }

    /// Waits for the outstanding acknowledgement round, if any, and applies its answers;
    /// each partition's outcome. Cancel-safe: dropped while waiting, the round stays.
    pub(super) async fn collect_round(&mut self) -> Option<BTreeMap<TopicPartition, Result<()>>> {
        let (_, task) = self.in_flight.as_mut()?;
        let answers = match task.await {
            Ok(a) => Some(a),
            Err(e) => {
                warn!(error = %e, "share acknowledgement task failed");
                None
            }
        };
        let (round, _) = self.in_flight.take()?;
        let answers = answers.unwrap_or_else(|| {
            round
                .nodes
                .iter()
                .map(|(n, _)| (*n, Err(Error::internal("the acknowledgement task ended early"))))
                .collect()
        });
        Some(self.apply_acknowledgements(round, answers))
    }

    /// ShareAcknowledge to every broker owed acknowledgements (with `last`, to every broker
    /// with a session, closing it), waiting for the answers.
    ///
    /// Cancel-safe: the round runs in a task; a call dropped while waiting leaves it
    /// outstanding, and the next poll, commit or close reports its outcome to the callback.
    pub(super) async fn send_acknowledgements(&mut self, last: bool) -> Result<BTreeMap<TopicPartition, Result<()>>> {
        self.settle_async().await;
        // The fetches in flight first: a share session sees its requests in order. What they
        // acquired waits in the buffer.
        let records = self.collect_fetch(None).await?;
        self.buffered.extend(records);
        let (round, requests) = self.plan_acknowledgements(last);
        let task = tokio::spawn(send_acknowledgements(self.client.clone(), requests));
        self.in_flight = Some((round, task));
        Ok(self.collect_round().await.unwrap_or_default())
    }

    /// Takes the waiting acknowledgements and builds one ShareAcknowledge per broker; those
    /// owed to a lost session fail at once.
    pub(super) fn plan_acknowledgements(
        &mut self,
        last: bool,
    ) -> (AckRound, Vec<(i32, ShareAcknowledgeRequest, bool)>) {
        self.acks_sent = Instant::now();
        let mut by_node: BTreeMap<i32, Vec<(Tip, Vec<AckBatch>)>> = BTreeMap::new();
        let pending: Vec<Tip> = self.acks.pending_partitions().copied().collect();
        let mut results = BTreeMap::new();
        for tip in pending {
            let batches = self.acks.take(&tip);
            let name = self.name_of(&tip.0);
            match self.ack_node.get(&tip).copied() {
                Some(node) if self.sessions.get(&node).is_some_and(ShareSession::is_open) => {
                    by_node.entry(node).or_default().push((tip, batches));
                }
                _ => {
                    results.insert(
                        TopicPartition::new(&name, tip.1),
                        Err(Error::kafka(ErrorCode::ShareSessionNotFound).with_context(format!(
                            "acknowledging records of {name}-{}: the share session was lost",
                            tip.1
                        ))),
                    );
                }
            }
        }
        if last {
            for (node, s) in &self.sessions {
                if s.is_open() {
                    by_node.entry(*node).or_default();
                }
            }
        }
        let mut nodes = Vec::new();
        let mut requests = Vec::new();
        for (node, parts) in by_node {
            let epoch = if last {
                FINAL_EPOCH
            } else {
                self.sessions.get(&node).map_or(0, ShareSession::epoch)
            };
            let mut topics: BTreeMap<Uuid, Vec<AcknowledgePartition>> = BTreeMap::new();
            for (tip, batches) in &parts {
                topics.entry(tip.0).or_default().push(
                    AcknowledgePartition::default()
                        .with_partition_index(tip.1)
                        .with_acknowledgement_batches(
                            batches
                                .iter()
                                .map(|b| {
                                    AckReqBatch::default()
                                        .with_first_offset(b.first)
                                        .with_last_offset(b.last)
                                        .with_acknowledge_types(vec![b.kind])
                                })
                                .collect(),
                        ),
                );
            }
            let renew = parts
                .iter()
                .any(|(_, b)| b.iter().any(|b| b.kind == super::acks::RENEW));
            let req = ShareAcknowledgeRequest::default()
                .with_group_id(Some(GroupId(s(&self.config.group_id))))
                .with_member_id(Some(s(&self.member_id)))
                .with_share_session_epoch(epoch)
                .with_is_renew_ack(renew)
                .with_topics(
                    topics
                        .into_iter()
                        .map(|(id, ps)| AcknowledgeTopic::default().with_topic_id(id).with_partitions(ps))
                        .collect(),
                );
            nodes.push((node, parts));
            requests.push((node, req, renew));
        }
        (AckRound { last, nodes, results }, requests)
    }

    pub(super) fn name_of(&self, id: &Uuid) -> Arc<str> {
        self.names.get(id).cloned().unwrap_or_else(|| Arc::from(id.to_string()))
    }

    /// The brokers' answers to a round: sessions advanced or reset, each partition's
    /// outcome, renewed records handed out again.
    pub(super) fn apply_acknowledgements(
        &mut self,
        round: AckRound,
        answers: AckAnswers,
    ) -> BTreeMap<TopicPartition, Result<()>> {
        let AckRound {
            last,
            nodes,
            mut results,
        } = round;
        let mut answers: BTreeMap<i32, Result<ShareAcknowledgeResponse>> = answers.into_iter().collect();
        for (node, parts) in nodes {
            let resp = answers
                .remove(&node)
                .unwrap_or_else(|| Err(Error::internal("no answer for a ShareAcknowledge")));
            match resp {
                Ok(r) => {
                    if r.acquisition_lock_timeout_ms > 0 {
                        self.lock_timeout = Some(Duration::from_millis(
                            r.acquisition_lock_timeout_ms.unsigned_abs().into(),
                        ));
                    }
                    if let Some(s) = self.sessions.get_mut(&node) {
                        if last {
                            s.reset();
                        } else {
                            s.acknowledged();
                        }
                    }
                    for t in r.responses {
                        let name = self.name_of(&t.topic_id);
                        for p in t.partitions {
                            let outcome = super::membership::check_code(p.error_code, || {
                                format!("acknowledging records of {name}-{}", p.partition_index)
                            });
                            results.insert(TopicPartition::new(&name, p.partition_index), outcome);
                        }
                    }
                }
                Err(e) => {
                    if let Some(s) = self.sessions.get_mut(&node) {
                        s.reset();
                    }
                    for (tip, _) in &parts {
                        let name = self.name_of(&tip.0);
                        let err = Error::kafka(e.kafka_code().unwrap_or(ErrorCode::ShareSessionNotFound))
                            .with_context(format!("acknowledging records of {name}-{}: {e}", tip.1));
                        results.insert(TopicPartition::new(&name, tip.1), Err(err));
                    }
                }
            }
        }
        // Renewed records are handed out again (before anything buffered); those whose
        // renewal failed are not: their outcome says why.
        let mut renewed: Vec<ShareRecord> = Vec::new();
        for (tip, records) in std::mem::take(&mut self.renewing) {
            let ok = records
                .first()
                .is_some_and(|r| matches!(results.get(&TopicPartition::new(&r.topic, tip.1)), Some(Ok(()))));
            if ok {
                renewed.extend(records);
            }
        }
        renewed.sort_by(|a, b| (&a.topic, a.partition, a.offset).cmp(&(&b.topic, b.partition, b.offset)));
        for r in renewed.into_iter().rev() {
            self.buffered.push_front(r);
        }
        results
    }
}
