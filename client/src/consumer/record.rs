//! What a consumer hands out and takes back: records, offsets to commit, its group
//! position for a transaction.

use std::sync::Arc;

use bytes::Bytes;
use strom_protocol::record_batch::{Headers, TimestampType};

use crate::topic_partition::TopicPartition;

/// One record as the consumer delivers it. Key, value and headers are slices of the fetch
/// response (no copy).
#[derive(Debug, Clone)]
pub struct ConsumerRecord {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp in ms since the epoch.
    pub timestamp: i64,
    /// Whether the producer or the broker set the timestamp.
    pub timestamp_type: TimestampType,
    /// Leader epoch of the batch, when the broker wrote one.
    pub leader_epoch: Option<i32>,
    /// Key.
    pub key: Option<Bytes>,
    /// Value.
    pub value: Option<Bytes>,
    /// Headers (decoded lazily).
    pub headers: Headers,
}

impl ConsumerRecord {
    /// The producer's span context from the record's W3C `traceparent`/`tracestate`
    /// headers; `None` when it has none or it is malformed (feature `opentelemetry`; see
    /// [`crate::trace_context`]).
    #[cfg(feature = "opentelemetry")]
    pub fn trace_context(&self) -> Option<opentelemetry::trace::SpanContext> {
        crate::trace_context::extract(&self.headers)
    }

    /// A `tracing` span named `process` for handling this record, whose OpenTelemetry parent
    /// is the producer's span from its headers: enter it (or `.instrument` the handler with
    /// it) and the work shows in the producer's trace (feature `opentelemetry`).
    ///
    /// ```ignore
    /// for record in consumer.poll(timeout).await? {
    ///     let span = record.process_span();
    ///     handle(&record).instrument(span).await?;
    /// }
    /// ```
    #[cfg(feature = "opentelemetry")]
    pub fn process_span(&self) -> tracing::Span {
        crate::trace_context::process_span(&self.topic, self.partition, self.offset, self.trace_context())
    }

    /// Topic and partition.
    pub fn topic_partition(&self) -> TopicPartition {
        TopicPartition {
            topic: self.topic.clone(),
            partition: self.partition,
        }
    }
}

/// A committed offset: the next offset to read, the leader epoch of the last record read,
/// and free-form metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OffsetAndMetadata {
    /// Next offset to consume.
    pub offset: i64,
    /// Leader epoch of the record before `offset`, when known.
    pub leader_epoch: Option<i32>,
    /// Metadata stored with the commit.
    pub metadata: String,
}

impl OffsetAndMetadata {
    /// An offset without epoch or metadata.
    pub fn new(offset: i64) -> Self {
        OffsetAndMetadata {
            offset,
            leader_epoch: None,
            metadata: String::new(),
        }
    }

    /// With metadata.
    pub fn with_metadata(mut self, metadata: impl Into<String>) -> Self {
        self.metadata = metadata.into();
        self
    }
}

/// An offset found by time ([`Consumer::offsets_for_times`](crate::Consumer::offsets_for_times)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    /// First offset whose timestamp is >= the asked time.
    pub offset: i64,
    /// That record's timestamp.
    pub timestamp: i64,
    /// Its leader epoch, when known.
    pub leader_epoch: Option<i32>,
}

/// A consumer's group position, for `send_offsets_to_transaction` (KIP-447 fencing: the
/// commit is refused if the member is no longer in that generation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    /// Group id.
    pub group_id: String,
    /// Generation (-1 when unknown: no generation fencing).
    pub generation_id: i32,
    /// Member id ("" when unknown).
    pub member_id: String,
    /// Static member id.
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata for a group without membership details (no KIP-447 fencing).
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}
