//! Process functions: user code that sees each element with the Kafka record it came from,
//! its event time and the current watermark, and emits zero or more outputs with timestamps
//! of its own (Flink's `ProcessFunction` with its `Context` and `Collector`).
//!
//! [`crate::Pipeline::process`] adds one to a pipeline:
//!
//! ```no_run
//! # async fn run() -> strom_connector::Result<()> {
//! use strom_connector::process::{Collector, ProcessContext};
//! use strom_connector::sink::{KafkaRecordSerializationSchema, KafkaSink, StringSerializer};
//! use strom_connector::source::{deserializer, KafkaSource, WatermarkStrategy};
//! use strom_connector::Pipeline;
//! # let (source, sink): (KafkaSource<String>, KafkaSink<String>) = todo!();
//!
//! let pipeline = Pipeline::new(source, sink)
//!     .watermark_strategy(WatermarkStrategy::for_monotonous_timestamps())
//!     .process(|line: String, ctx: &ProcessContext<'_>, out: &mut Collector<'_, String>| {
//!         // Late: event time already behind the watermark when the record was read.
//!         let late = ctx.current_watermark().is_some_and(|w| ctx.timestamp() <= w);
//!         let tenant = ctx.header("tenant").map(|v| String::from_utf8_lossy(&v).into_owned());
//!         out.collect(format!("{}@{}/{}:{line} tenant={tenant:?} late={late}", ctx.topic(), ctx.partition(), ctx.offset()));
//!         // A second output, stamped one minute later than its input.
//!         out.collect_with_timestamp(format!("reminder for {line}"), ctx.timestamp() + 60_000);
//!     });
//! # Ok(()) }
//! ```
//!
//! What the context says is true of the element as it reaches the function: its timestamp
//! is the event time the source gave it (the watermark strategy's timestamp assigner, or the
//! Kafka timestamp), or the timestamp an earlier process function gave it; the watermark is
//! the one the source emitted last (every 200 ms, Flink's `pipeline.auto-watermark-interval`),
//! `None` before the first. The sink writes each output with its timestamp as the Kafka record
//! timestamp (unless the sink's `write_timestamp_to_kafka(false)`).

use std::fmt;

use bytes::Bytes;
use strom_client::{Headers, TimestampType};

use crate::{ConnectorError, Result};

/// What a process function knows about the element it is given (Flink's
/// `ProcessFunction.Context`, with the Kafka record's metadata).
#[derive(Clone, Copy)]
pub struct ProcessContext<'a> {
    topic: &'a str,
    partition: i32,
    offset: i64,
    key: Option<&'a Bytes>,
    headers: &'a Headers,
    record_timestamp: i64,
    timestamp_type: TimestampType,
    timestamp: i64,
    watermark: Option<i64>,
}

impl fmt::Debug for ProcessContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessContext")
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("key_len", &self.key.map(Bytes::len))
            .field("headers", &self.headers.len())
            .field("record_timestamp", &self.record_timestamp)
            .field("timestamp", &self.timestamp)
            .field("watermark", &self.watermark)
            .finish()
    }
}

impl<'a> ProcessContext<'a> {
    /// A context for an element read from `topic`/`partition` at `offset` with event time
    /// `timestamp`, no key, `headers` and no watermark yet: for testing process functions
    /// without Kafka. The pipeline makes its own.
    pub fn new(topic: &'a str, partition: i32, offset: i64, timestamp: i64, headers: &'a Headers) -> Self {
        ProcessContext {
            topic,
            partition,
            offset,
            key: None,
            headers,
            record_timestamp: timestamp,
            timestamp_type: TimestampType::CreateTime,
            timestamp,
            watermark: None,
        }
    }

    /// This context with the record key `key`.
    pub fn with_key(mut self, key: Option<&'a Bytes>) -> Self {
        self.key = key;
        self
    }

    /// This context with the current watermark `watermark`.
    pub fn with_watermark(mut self, watermark: Option<i64>) -> Self {
        self.watermark = watermark;
        self
    }

    /// This context with the Kafka record timestamp `ts` of type `kind` (the event time is
    /// unchanged).
    pub fn with_record_timestamp(mut self, ts: i64, kind: TimestampType) -> Self {
        self.record_timestamp = ts;
        self.timestamp_type = kind;
        self
    }

    /// This context for an element of event time `timestamp` (the record is the same).
    pub fn with_timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = timestamp;
        self
    }

    /// The element's event time in ms (Flink's `Context.timestamp()`).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// The last watermark the source emitted: event time the pipeline no longer expects
    /// records before. `None` before the first watermark and under `no_watermarks` (Flink's
    /// `Long.MIN_VALUE`).
    pub fn current_watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// The topic the record was read from.
    pub fn topic(&self) -> &'a str {
        self.topic
    }

    /// Its partition.
    pub fn partition(&self) -> i32 {
        self.partition
    }

    /// Its offset.
    pub fn offset(&self) -> i64 {
        self.offset
    }

    /// Its key, `None` for a null key.
    pub fn key(&self) -> Option<&'a [u8]> {
        self.key.map(|k| &k[..])
    }

    /// Its key as shared bytes (a cheap clone of the fetched data).
    pub fn key_bytes(&self) -> Option<&'a Bytes> {
        self.key
    }

    /// Its headers, in wire order, duplicates kept.
    pub fn headers(&self) -> &'a Headers {
        self.headers
    }

    /// The value of the last header named `name` (Java's `lastHeader`), a view of the
    /// fetched bytes; `None` when there is none or its value is null.
    pub fn header(&self, name: &str) -> Option<Bytes> {
        self.headers.last(name.as_bytes())?.value
    }

    /// The Kafka record timestamp (ms); equal to [`Self::timestamp`] unless a timestamp
    /// assigner or an earlier process function changed the event time.
    pub fn record_timestamp(&self) -> i64 {
        self.record_timestamp
    }

    /// Whether the producer or the broker set [`Self::record_timestamp`].
    pub fn timestamp_type(&self) -> TimestampType {
        self.timestamp_type
    }
}

/// Where a process function puts its outputs (Flink's `Collector`, with
/// `collect_with_timestamp` for outputs stamped with their own event time).
///
/// Collecting never fails in the function: a failure further down the chain (a later
/// `try_map`, say) is kept, later outputs of this call are dropped, and the failure ends the
/// run when the function returns.
pub struct Collector<'a, D> {
    emit: &'a mut dyn FnMut(D, i64) -> Result<()>,
    timestamp: i64,
    failed: Option<ConnectorError>,
    collected: usize,
}

impl<D> fmt::Debug for Collector<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collector")
            .field("timestamp", &self.timestamp)
            .field("collected", &self.collected)
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

impl<'a, D> Collector<'a, D> {
    /// A collector that hands each output and its timestamp to `emit`, stamping
    /// [`Self::collect`]'s outputs with `timestamp` (for testing process functions: e.g. with
    /// `emit` pushing into a `Vec`).
    pub fn new(emit: &'a mut dyn FnMut(D, i64) -> Result<()>, timestamp: i64) -> Self {
        Collector {
            emit,
            timestamp,
            failed: None,
            collected: 0,
        }
    }

    /// Emits `value` with the input element's timestamp.
    pub fn collect(&mut self, value: D) {
        self.collect_with_timestamp(value, self.timestamp);
    }

    /// Emits `value` with event time `timestamp` (ms): the sink writes it as the record
    /// timestamp, and later functions see it as [`ProcessContext::timestamp`].
    pub fn collect_with_timestamp(&mut self, value: D, timestamp: i64) {
        if self.failed.is_some() {
            return;
        }
        match (self.emit)(value, timestamp) {
            Ok(()) => self.collected += 1,
            Err(e) => self.failed = Some(e),
        }
    }

    /// The timestamp [`Self::collect`] gives outputs (the input element's).
    pub fn timestamp(&self) -> i64 {
        self.timestamp
    }

    /// How many outputs were collected so far.
    pub fn collected(&self) -> usize {
        self.collected
    }

    /// The first failure further down the chain, if any.
    pub fn finish(self) -> Result<()> {
        match self.failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collector_stamps_outputs_and_keeps_the_first_failure() {
        let mut got = Vec::new();
        let mut emit = |d: u32, ts: i64| {
            if d == 3 {
                return Err(ConnectorError::User("three".into()));
            }
            got.push((d, ts));
            Ok(())
        };
        let mut out = Collector::new(&mut emit, 100);
        out.collect(1);
        out.collect_with_timestamp(2, 7);
        assert_eq!(out.collected(), 2);
        assert_eq!(out.timestamp(), 100);
        out.collect(3);
        out.collect(4); // dropped: the chain already failed
        assert!(format!("{out:?}").contains("three"));
        let e = out.finish().unwrap_err();
        assert!(matches!(e, ConnectorError::User(ref m) if m == "three"), "{e}");
        assert_eq!(got, vec![(1, 100), (2, 7)]);
    }

    #[test]
    fn context_for_tests_and_its_accessors() {
        let headers = Headers::default();
        let key = Bytes::from_static(b"k1");
        let ctx = ProcessContext::new("t", 2, 40, 1_000, &headers)
            .with_key(Some(&key))
            .with_watermark(Some(900))
            .with_record_timestamp(999, TimestampType::LogAppendTime);
        assert_eq!(
            (ctx.topic(), ctx.partition(), ctx.offset(), ctx.timestamp()),
            ("t", 2, 40, 1_000)
        );
        assert_eq!(ctx.key(), Some(&b"k1"[..]));
        assert_eq!(ctx.key_bytes(), Some(&key));
        assert_eq!(ctx.current_watermark(), Some(900));
        assert_eq!(ctx.record_timestamp(), 999);
        assert_eq!(ctx.timestamp_type(), TimestampType::LogAppendTime);
        assert!(ctx.headers().is_empty());
        assert_eq!(ctx.header("x"), None);
        assert_eq!(ctx.with_timestamp(5).timestamp(), 5);
        assert!(format!("{ctx:?}").contains("key_len: Some(2)"));
    }
}
