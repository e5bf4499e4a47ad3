//! What the application sends and what it gets back.

use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use tokio::sync::Notify;

use crate::error::{Error, Result};

/// A record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// Topic.
    pub topic: String,
    /// Partition; `None` lets the partitioner choose.
    pub partition: Option<i32>,
    /// Key; also what the default partitioner hashes.
    pub key: Option<Bytes>,
    /// Value; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers in order; duplicate keys are kept.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Timestamp in ms; `None` = now.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    /// Sets the timestamp (ms).
    pub fn timestamp(mut self, ms: i64) -> Self {
        self.timestamp = Some(ms);
        self
    }
}

/// Where a record was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset; -1 with acks=0 (the broker does not say).
    pub offset: i64,
    /// Timestamp: the record's, or the broker's under LogAppendTime.
    pub timestamp: i64,
}

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
    notify: Notify,
}

impl BatchDone {
    pub(crate) fn new(topic: Arc<str>, partition: i32) -> Arc<Self> {
        Arc::new(BatchDone {
            topic,
            partition,
            result: OnceLock::new(),
            notify: Notify::new(),
        })
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

/// Resolves when the record is acknowledged (or failed, with the reason).
///
/// Dropping it does not cancel the send: the record is still delivered.
#[derive(Debug, Clone)]
pub struct DeliveryFuture {
    pub(crate) batch: Arc<BatchDone>,
    pub(crate) index: u32,
    pub(crate) timestamp: i64,
}

impl DeliveryFuture {
    /// Waits for the outcome.
    pub async fn wait(self) -> Result<RecordMetadata> {
        loop {
            let notified = self.batch.notify.notified();
            if let Some(r) = self.batch.result.get() {
                return self.resolve(r);
            }
            notified.await;
        }
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
            Err(e) => Err(e.clone()),
        }
    }
}

impl IntoFuture for DeliveryFuture {
    type Output = Result<RecordMetadata>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<RecordMetadata>> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.wait())
    }
}

/// Chooses a partition. `None` falls back to the default: murmur2 of the key, as Java's
/// `BuiltInPartitioner`, or sticky for null keys.
pub trait Partitioner: Send + Sync + std::fmt::Debug {
    /// The partition for a record of `topic` with `num_partitions` partitions.
    fn partition(&self, topic: &str, key: Option<&[u8]>, value: Option<&[u8]>, num_partitions: u32) -> Option<u32>;
}

pub(crate) fn closed_error() -> Error {
    Error::other("the producer is closed")
}
