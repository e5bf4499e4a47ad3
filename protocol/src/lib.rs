//! Sans-IO Kafka wire protocol for Strom.
//!
//! No sockets, no tokio, no clocks: bytes in, bytes out.
//!
//! * [`frame`]: size-prefixed frames, request and response headers.
//! * [`versions`]: the API versions Strom implements and negotiation with a broker.
//! * [`record_batch`]: record batch v2, a lazy zero-copy [`record_batch::BatchView`] and an
//!   in-place [`record_batch::BatchBuilder`].
//! * [`compression`]: gzip, snappy (xerial), lz4 (frame), zstd, pure Rust (C zstd with the
//!   `zstd-c` feature), capped; levels (KIP-390) as [`CompressionLevel`].
//! * [`error_code`]: every Kafka error code; [`error`]: typed wire errors.
//! * [`murmur2`]: the Java client's key hash for partitioning.
//!
//! Request and response structs come from the `kafka-protocol` crate, re-exported as
//! [`messages`]; decode them from a frozen frame with [`frame::decode_response`].
#![forbid(unsafe_code)]

pub mod compression;
mod compression_level;
pub mod error;
pub mod error_code;
pub mod frame;
#[doc(hidden)]
pub mod fuzzing;
mod lz4_hc;
pub mod murmur2;
pub mod record_batch;
pub mod varint;
pub mod versions;

pub use compression::{Compression, CompressionLevel};
pub use error::WireError;
pub use error_code::ErrorCode;
pub use kafka_protocol::messages;
pub use kafka_protocol::protocol as message_traits;
