//! Admin for transactions (KIP-664): list, describe, the producers of a partition, and
//! aborting a hanging transaction by writing its ABORT marker (Java's
//! `Admin.abortTransaction`, which sends WriteTxnMarkers to the partition leader).

use std::collections::BTreeMap;

use strom_protocol::messages::describe_producers_request::TopicRequest;
use strom_protocol::messages::write_txn_markers_request::{WritableTxnMarker, WritableTxnMarkerTopic};
use strom_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, ProducerId, TransactionalId,
    WriteTxnMarkersRequest,
};

use crate::admin::{s, topic_name, Admin};
use crate::error::check;
use crate::error::{Error, Result};

/// A transaction as ListTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionListing {
    /// Transactional id.
    pub transactional_id: String,
    /// Producer id.
    pub producer_id: i64,
    /// Coordinator state (`Ongoing`, `PrepareCommit`, `CompleteAbort`, `Empty`, ...).
    pub state: String,
}

/// A transaction as DescribeTransactions reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionDescription {
    /// Transactional id.
    pub transactional_id: String,
    /// Coordinator state.
    pub state: String,
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i16,
    /// `transaction.timeout.ms` of the producer.
    pub timeout_ms: i32,
    /// When the current transaction started (ms), -1 when none.
    pub start_time_ms: i64,
    /// Partitions in the current transaction.
    pub partitions: BTreeMap<String, Vec<i32>>,
}

/// An active producer of a partition (DescribeProducers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerState {
    /// Producer id.
    pub producer_id: i64,
    /// Producer epoch.
    pub producer_epoch: i32,
    /// Last sequence written.
    pub last_sequence: i32,
    /// Timestamp of its last write (ms).
    pub last_timestamp: i64,
    /// Coordinator epoch of its last transaction marker (-1 when none).
    pub coordinator_epoch: i32,
    /// First offset of its open transaction on this partition, when one is open.
    pub current_txn_start_offset: Option<i64>,
}

impl Admin {
    /// Every transaction the cluster's coordinators know (ListTransactions on every broker).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn list_transactions(&self) -> Result<Vec<TransactionListing>> {
        let client = self.client();
        let mut out = Vec::new();
        for &id in client.metadata().brokers.keys() {
            let resp = client
                .with_retries("ListTransactions", || async {
                    client
                        .broker(id)
                        .await?
                        .send(&ListTransactionsRequest::default().with_duration_filter(-1))
                        .await
                })
                .await?;
            check(resp.error_code, None, || format!("broker {id}"))?;
            out.extend(resp.transaction_states.into_iter().map(|t| TransactionListing {
                transactional_id: t.transactional_id.0.to_string(),
                producer_id: t.producer_id.0,
                state: t.transaction_state.to_string(),
            }));
        }
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(out)
    }

    /// Describes one transactional id, at its coordinator.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn describe_transaction(&self, transactional_id: &str) -> Result<TransactionDescription> {
        let req =
            DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(s(transactional_id))]);
        let resp = self
            .client()
            .with_retries("DescribeTransactions", || async {
                let resp = self
                    .coordinator(transactional_id, crate::admin::CoordinatorType::Transaction)
                    .await?
                    .send(&req)
                    .await?;
                // A moved coordinator answers NOT_COORDINATOR (retriable): find it again.
                if let Some(t) = resp.transaction_states.first() {
                    check(t.error_code, None, || format!("transactional id {transactional_id}"))?;
                }
                Ok(resp)
            })
            .await?;
        let t =
            resp.transaction_states.into_iter().next().ok_or_else(|| {
                Error::protocol(format!("DescribeTransactions returned nothing for {transactional_id}"))
            })?;
        Ok(TransactionDescription {
            transactional_id: t.transactional_id.0.to_string(),
            state: t.transaction_state.to_string(),
            producer_id: t.producer_id.0,
            producer_epoch: t.producer_epoch,
            timeout_ms: t.transaction_timeout_ms,
            start_time_ms: t.transaction_start_time_ms,
            partitions: t
                .topics
                .into_iter()
                .map(|tp| (tp.topic.0.to_string(), tp.partitions))
                .collect(),
        })
    }

    /// The active producers of a partition, from its leader.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn describe_producers(&self, topic: &str, partition: i32) -> Result<Vec<ProducerState>> {
        let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(topic_name(topic))
            .with_partition_indexes(vec![partition])]);
        let client = self.client();
        client
            .with_retries("DescribeProducers", || async {
                let (_, conn) = client.leader(topic, partition).await?;
                let resp = conn.send(&req).await?;
                let mut out = Vec::new();
                for t in resp.topics {
                    for p in t.partitions {
                        if let Err(e) = check(p.error_code, p.error_message.as_ref(), || {
                            format!("topic {topic} partition {partition}")
                        }) {
                            if e.is_retriable() {
                                client.invalidate_topic(topic);
                            }
                            return Err(e);
                        }
                        out.extend(p.active_producers.into_iter().map(|a| ProducerState {
                            producer_id: a.producer_id.0,
                            producer_epoch: a.producer_epoch,
                            last_sequence: a.last_sequence,
                            last_timestamp: a.last_timestamp,
                            coordinator_epoch: a.coordinator_epoch,
                            current_txn_start_offset:
                                (a.current_txn_start_offset >= 0).then_some(a.current_txn_start_offset),
                        }));
                    }
                }
                Ok(out)
            })
            .await
    }

    /// Aborts a hanging transaction on one partition by writing an ABORT marker for
    /// `producer_id`/`producer_epoch` there (take them, and the coordinator epoch, from
    /// [`Admin::describe_producers`]). Meant for transactions their coordinator no longer
    /// tracks; the last stable offset of the partition moves past them.
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn abort_transaction(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> Result<()> {
        let req = WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(producer_epoch)
            .with_transaction_result(false)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(topic_name(topic))
                .with_partition_indexes(vec![partition])])]);
        let client = self.client();
        client
            .with_retries("WriteTxnMarkers", || async {
                let (_, conn) = client.leader(topic, partition).await?;
                let resp = conn.send(&req).await?;
                for m in &resp.markers {
                    for t in &m.topics {
                        for p in &t.partitions {
                            check(p.error_code, None, || {
                                format!("abort of producer {producer_id} on topic {topic} partition {partition}")
                            })?;
                        }
                    }
                }
                Ok(())
            })
            .await
    }

    /// Fences the producers of `transactional_id` (Java's `fenceProducers`, KIP-664): its
    /// coordinator bumps the epoch, so the producer using it fails with
    /// [`ErrorKind::Fenced`](crate::ErrorKind::Fenced) at its next call and an open
    /// transaction is aborted. Returns the new (producer id, epoch).
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn fence_producers(&self, transactional_id: &str) -> Result<(i64, i16)> {
        if transactional_id.is_empty() {
            return Err(Error::config("fence_producers: the transactional id is empty"));
        }
        // As Java's FenceProducersHandler: no producer id or epoch, and the shortest
        // transaction timeout (the producer being fenced sets its own again on init). The
        // producer's own InitProducerId path retries what the coordinator asks to retry,
        // CONCURRENT_TRANSACTIONS while an open transaction is aborted among them.
        let limit = self.client().config().default_api_timeout;
        let (pid, epoch, _) =
            crate::producer::txn::init_producer_id(self.client(), transactional_id, 1, (-1, -1), &mut None, limit)
                .await?;
        Ok((pid, epoch))
    }
}
