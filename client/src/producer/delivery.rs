//! The answer to a send: a batch's outcome, shared by the futures of its records.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use tokio::sync::Notify;

use super::record::{ProducerRecord, RecordMetadata};
use crate::error::{Error, Result};

/// The broker's answer for a whole batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchAck {
    pub(crate) base_offset: i64,
    pub(crate) log_append_time: i64,
}

/// One batch's outcome, shared by the delivery futures of all its records (one allocation
/// per batch, none per record).
#[derive(Debug)]
pub(crate) struct BatchDone {
    pub(crate) topic: Arc<str>,
    pub(crate) partition: i32,
    result: OnceLock<Result<BatchAck>>,
    /// A failed batch's records, decoded back from its bytes (only on failure), so each
    /// delivery error hands its record back.
    failed_records: OnceLock<Box<[ProducerRecord]>>,
    notify: Notify,
}

impl BatchDone {
    pub(crate) fn new(topic: Arc<str>, partition: i32) -> Arc<Self> {
        Arc::new(BatchDone {
            topic,
            partition,
            result: OnceLock::new(),
            failed_records: OnceLock::new(),
            notify: Notify::new(),
        })
    }

    /// Keeps a failed batch's records for their delivery errors (before `complete`).
    pub(crate) fn set_failed_records(&self, records: Vec<ProducerRecord>) {
        let _ = self.failed_records.set(records.into_boxed_slice());
    }

    /// Completes the batch (the first outcome wins) and wakes every waiter.
    pub(crate) fn complete(&self, result: Result<BatchAck>) {
        let _ = self.result.set(result);
        self.notify.notify_waiters();
    }

    pub(crate) fn is_done(&self) -> bool {
        self.result.get().is_some()
    }
}

/// Resolves when the record is acknowledged (or failed, with the reason). A [`Future`], so
/// many of them can be awaited together (`futures::future::join_all`, `try_join_all`).
///
/// Dropping it does not cancel the send: the record is still delivered, but its outcome
/// (an error included) is then seen by no one; [`Producer::flush`](crate::Producer::flush)
/// waits for delivery without reporting per-record errors.
#[must_use = "a dropped DeliveryFuture hides the record's delivery error; await it (or keep it and await it later)"]
pub struct DeliveryFuture {
    pub(crate) batch: Arc<BatchDone>,
    pub(crate) index: u32,
    pub(crate) timestamp: i64,
    /// The registration for the batch's wake-up while pending (not shared by clones).
    waiting: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
}

impl std::fmt::Debug for DeliveryFuture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryFuture")
            .field("topic", &self.batch.topic)
            .field("partition", &self.batch.partition)
            .field("index", &self.index)
            .field("done", &self.batch.is_done())
            .finish()
    }
}

impl Clone for DeliveryFuture {
    fn clone(&self) -> Self {
        DeliveryFuture {
            batch: self.batch.clone(),
            index: self.index,
            timestamp: self.timestamp,
            waiting: None,
        }
    }
}

impl DeliveryFuture {
    pub(crate) fn new(batch: Arc<BatchDone>, index: u32, timestamp: i64) -> Self {
        DeliveryFuture {
            batch,
            index,
            timestamp,
            waiting: None,
        }
    }

    /// Waits for the outcome (the same as awaiting the future itself).
    ///
    /// Cancellation-safe: dropping it loses nothing: the record's delivery goes on, and a clone of
    /// the future still sees how it ended.
    pub async fn wait(self) -> Result<RecordMetadata> {
        self.await
    }

    /// The outcome if it is already known.
    pub fn try_result(&self) -> Option<Result<RecordMetadata>> {
        self.batch.result.get().map(|r| self.resolve(r))
    }

    fn resolve(&self, r: &Result<BatchAck>) -> Result<RecordMetadata> {
        match r {
            Ok(ack) => Ok(RecordMetadata {
                topic: self.batch.topic.clone(),
                partition: self.batch.partition,
                offset: if ack.base_offset >= 0 {
                    ack.base_offset + i64::from(self.index)
                } else {
                    -1
                },
                timestamp: if ack.log_append_time >= 0 {
                    ack.log_append_time
                } else {
                    self.timestamp
                },
            }),
            Err(e) => {
                let record = self.batch.failed_records.get().and_then(|r| r.get(self.index as usize));
                Err(match record {
                    Some(r) => e.clone().with_record(r.clone()),
                    None => e.clone(),
                })
            }
        }
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        loop {
            if let Some(r) = this.batch.result.get() {
                this.waiting = None;
                return Poll::Ready(this.resolve(r));
            }
            let batch = this.batch.clone();
            let waiting = this
                .waiting
                .get_or_insert_with(|| Box::pin(async move { batch.notify.notified().await }));
            match waiting.as_mut().poll(cx) {
                // Woken: look at the result again (with a fresh registration if needed).
                Poll::Ready(()) => this.waiting = None,
                Poll::Pending => {
                    // `complete` sets the result before it wakes waiters, so a result set
                    // between the check above and the registration is seen here; one set
                    // after the registration wakes it.
                    if let Some(r) = this.batch.result.get() {
                        this.waiting = None;
                        return Poll::Ready(this.resolve(r));
                    }
                    return Poll::Pending;
                }
            }
        }
    }
}

pub(crate) fn closed_error() -> Error {
    Error::closed("the producer is closed")
}
