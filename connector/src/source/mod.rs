//! The Kafka source: Flink's FLIP-27 `KafkaSource` without a coordinator.
//!
//! * [`KafkaSource::builder`] collects the settings under Flink's names and validates them.
//! * [`SplitEnumerator`] (one per process = subtask) lists the subscribed partitions, keeps
//!   those Flink's owner formula ([`split_owner`]) gives to its subtask, and resolves their
//!   starting and stopping offsets with [`OffsetsInitializer`]s (built-in, or a user's own
//!   [`CustomOffsetsInitializer`]) into [`KafkaPartitionSplit`]s.
//! * [`SourceReader`] reads the splits of one subtask with one consumer
//!   ([`KafkaSource::consumer_config`]), tracks each in a [`KafkaPartitionSplitState`], turns
//!   records into values with a [`KafkaRecordDeserializer`], generates event time and
//!   watermarks with a [`WatermarkStrategy`], snapshots split states per checkpoint and
//!   commits offsets when a checkpoint completes.
//!
//! ```no_run
//! # async fn run() -> strom_connector::Result<()> {
//! use strom_connector::source::{deserializer, KafkaSource, OffsetsInitializer};
//!
//! let source = KafkaSource::builder()
//!     .bootstrap_servers("127.0.0.1:9092")
//!     .topics(["input-topic"])
//!     .group_id("my-group")
//!     .starting_offsets(OffsetsInitializer::earliest())
//!     .deserializer(deserializer::string())
//!     .build()?;
//! let mut enumerator = source.create_enumerator(0, 1).await?;
//! let initial = enumerator.discover().await?.new_splits;
//! let consumer_config = source.consumer_config(0);
//! # let _ = (initial, consumer_config);
//! # Ok(())
//! # }
//! ```

mod api;
mod builder;
pub mod deserializer;
mod enumerator;
mod initializer;
mod reader;
#[cfg(feature = "schemas")]
mod schema_formats;
mod split;
pub mod watermark;

pub use api::{CheckpointedSource, Discovered, Source, SourceEnumerator, SplitReader};
pub use builder::{
    Boundedness, KafkaSource, KafkaSourceBuilder, CLIENT_ID_PREFIX, COMMIT_OFFSETS_ON_CHECKPOINT,
    LEGACY_AUTO_OFFSET_RESET, LEGACY_PARTITION_DISCOVERY, PARTITION_DISCOVERY_INTERVAL_MS, REGISTER_CONSUMER_METRICS,
};
pub use deserializer::{KafkaRecordDeserializer, SourceRecord, ValueDeserializer};
pub use enumerator::{
    java_string_hash_code, split_owner, Discovery, EnumeratorConfig, EnumeratorState, SplitEnumerator, Subscription,
    TopicPattern,
};
pub use initializer::{
    CustomOffsetsInitializer, OffsetResetStrategy, OffsetsInitializer, PartitionOffsetsFuture,
    PartitionOffsetsRetriever,
};
pub use reader::{SourceElement, SourceReader};
pub use split::{KafkaPartitionSplit, KafkaPartitionSplitState, StartingOffset, TopicPartition};
pub use watermark::{
    BoundedOutOfOrdernessWatermarks, GeneratorFactory, NoWatermarks, PunctuatedWatermarks, Punctuation,
    TimestampAssigner, WatermarkCombiner, WatermarkEvent, WatermarkGenerator, WatermarkOutput, WatermarkStrategy,
};
