//! Apache Flink's Kafka connector, in Rust: a source of partition splits with offsets
//! initializers, boundedness, partition discovery and checkpointed offsets, and a sink with
//! none / at-least-once / exactly-once delivery that commits on checkpoint and recovers
//! lingering transactions after a crash.
//!
//! Module map:
//! - [`checkpoint`]: the [`checkpoint::CheckpointStore`] trait and the crash-safe file store.
//! - [`source`]: `KafkaSource`, splits, offsets initializers, enumerator, reader, watermarks,
//!   deserializers.
//! - [`sink`]: `KafkaSink`, record serializers, delivery guarantees, committables, and the
//!   [`sink::TwoPhaseCommitSink`] protocol any exactly-once sink implements.
//! - [`kafka_checkpoint`]: checkpoints in a compacted Kafka topic, for subtasks on any machine.
//! - [`file_sink`]: `FileSink`, an exactly-once sink to part files (Flink's `FileSink`).
//! - [`pipeline`]: `Pipeline`, source → user functions → sink with periodic checkpoints,
//!   restore after a crash, and a clean end for bounded input.
//! - [`process`]: process functions' context (record metadata, event time, watermark) and
//!   collector (outputs with their own timestamps).
//! - [`restart`]: restart strategies (fixed-delay, exponential-delay, failure-rate).
//! - [`elastic`]: the pipeline's elastic mode: members of a consumer group that commit their
//!   outputs with their consumed offsets (KIP-447), scaled by the group coordinator.
//! - [`metrics`]: pipeline, source reader and sink metrics under Flink's names.

pub mod checkpoint;
#[cfg(feature = "crash-injection")]
mod crash;
pub mod elastic;
pub mod error;
pub mod file_sink;
pub mod kafka_checkpoint;
pub mod metrics;
pub mod pipeline;
pub mod process;
pub mod restart;
pub mod sink;
pub mod source;

pub use error::{ConnectorError, Result};
pub use pipeline::{Pipeline, PipelineSummary};

/// The README's Rust examples, compiled by `cargo test` (doctests) so they keep building:
/// the client example at its top (strom-client is a dependency here) and the connector's.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
