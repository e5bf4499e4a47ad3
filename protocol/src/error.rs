//! Wire decode errors: small, `Copy`, with static context naming what was being read.

use crate::compression::Compression;

/// An error decoding or encoding bytes on the wire.
///
/// Every variant names the field or structure that was wrong, so a caller can report it
/// without carrying the input around.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ended inside the named field.
    #[error("truncated input: not enough bytes for {0}")]
    Truncated(&'static str),
    /// A varint ran past its maximum width (5 bytes for 32 bits, 10 for 64).
    #[error("varint too long in {0}")]
    VarintOverflow(&'static str),
    /// A length or count that cannot be valid (negative other than -1 for null, or larger
    /// than what remains in the input).
    #[error("invalid length {len} for {what}")]
    InvalidLength {
        /// The field.
        what: &'static str,
        /// The value read.
        len: i64,
    },
    /// A frame larger than the configured maximum (`max.response.size` or similar).
    #[error("frame of {size} bytes exceeds the maximum of {max} bytes")]
    FrameTooLarge {
        /// Size announced by the frame header.
        size: usize,
        /// Configured maximum.
        max: usize,
    },
    /// The CRC32C stored in a record batch does not match its contents.
    #[error("record batch CRC mismatch: stored {expected:#010x}, computed {actual:#010x}")]
    BadCrc {
        /// CRC stored in the batch.
        expected: u32,
        /// CRC computed over the batch.
        actual: u32,
    },
    /// A record batch with a magic byte other than 2 (message sets v0/v1 are not supported).
    #[error("unsupported record batch magic {0}: only v2 batches are supported")]
    BadMagic(i8),
    /// Bytes were left over after a structure that should have consumed them all.
    #[error("unexpected trailing bytes after {0}")]
    TrailingData(&'static str),
    /// The compression codec bits of a batch name no known codec.
    #[error("unknown compression codec id {0}")]
    UnknownCompression(u8),
    /// Decompressing would produce more than the configured limit.
    #[error("decompressed {codec} data exceeds the limit of {limit} bytes")]
    DecompressionLimit {
        /// Codec in use.
        codec: Compression,
        /// Configured limit in bytes.
        limit: usize,
    },
    /// Compressed data that the codec could not decode.
    #[error("corrupt {0} data")]
    CorruptCompressed(Compression),
    /// Compressing failed (the codec reported an error).
    #[error("{0} compression failed")]
    CompressFailed(Compression),
    /// A value too large to encode (e.g. a record larger than `i32::MAX`).
    #[error("{0} too large to encode")]
    TooLarge(&'static str),
    /// A Kafka message (request or response) that `kafka-protocol` could not decode or encode.
    #[error("malformed {api} message (version {version})")]
    Message {
        /// The API, e.g. `Metadata`.
        api: &'static str,
        /// The message version used.
        version: i16,
    },
    /// A response whose correlation id is not the one expected.
    #[error("correlation id mismatch: expected {expected}, got {actual}")]
    CorrelationMismatch {
        /// Id of the request sent.
        expected: i32,
        /// Id found in the response.
        actual: i32,
    },
    /// A control record with an unknown type or a bad layout.
    #[error("invalid control record: {0}")]
    InvalidControlRecord(&'static str),
}
