//! The Kafka source: Flink's FLIP-27 `KafkaSource` without a coordinator.
//!
//! * [`OffsetsInitializer`]s resolve where each [`KafkaPartitionSplit`] starts and stops.
//! * A reader (built on the client's consumer, not in this module yet) tracks each split in
//!   a [`KafkaPartitionSplitState`], turns records into values with a
//!   [`KafkaRecordDeserializer`], and generates event time and watermarks with a
//!   [`WatermarkStrategy`].

pub mod deserializer;
mod initializer;
mod split;
pub mod watermark;

pub use deserializer::{KafkaRecordDeserializer, SourceRecord, ValueDeserializer};
pub use initializer::{OffsetResetStrategy, OffsetsInitializer, PartitionOffsetsRetriever};
pub use split::{KafkaPartitionSplit, KafkaPartitionSplitState, StartingOffset, TopicPartition};
pub use watermark::{WatermarkCombiner, WatermarkEvent, WatermarkGenerator, WatermarkStrategy};
