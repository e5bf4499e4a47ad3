//! Record batch v2 (magic 2): a lazy, zero-copy view for reading and an in-place builder.
//!
//! Layout (big-endian, offsets from the batch start; `DefaultRecordBatch` in the Java client):
//!
//! ```text
//!  0 baseOffset i64        27 baseTimestamp i64     57 recordsCount i32
//!  8 batchLength i32       35 maxTimestamp i64      61 records...
//! 12 partitionLeaderEpoch  43 producerId i64
//! 16 magic i8 (= 2)        51 producerEpoch i16
//! 17 crc u32 (CRC-32C over 21..end)
//! 21 attributes i16        53 baseSequence i32
//! 23 lastOffsetDelta i32
//! ```
//!
//! Reading never copies keys, values or headers: they are `Bytes::slice`s of the input (or of
//! the decompressed buffer, one per batch). Every length is checked against what remains.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::compression::{self, Compression, CompressionLevel};
use crate::error::WireError;
use crate::varint::{get_varint, get_varlong, put_varint, put_varlong, varint_len, varlong_len};

/// Size of the fixed batch header.
pub const BATCH_HEADER_LEN: usize = 61;
/// Bytes before the `batchLength` field plus the field itself (`LOG_OVERHEAD` in Java).
const LOG_OVERHEAD: usize = 12;
const MAGIC_OFFSET: usize = 16;
const CRC_OFFSET: usize = 17;
const ATTRIBUTES_OFFSET: usize = 21;

const COMPRESSION_MASK: i16 = 0x07;
const TIMESTAMP_TYPE_BIT: i16 = 0x08;
const TRANSACTIONAL_BIT: i16 = 0x10;
const CONTROL_BIT: i16 = 0x20;
const DELETE_HORIZON_BIT: i16 = 0x40;

/// The timestamp type of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampType {
    /// Set by the producer.
    CreateTime,
    /// Set by the broker when appending (`message.timestamp.type=LogAppendTime`); every
    /// record's timestamp is then the batch's max timestamp.
    LogAppendTime,
}

/// How batches are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Verify CRC-32C of every batch (`check.crcs`, default true).
    pub check_crcs: bool,
    /// Largest decompressed records section accepted for one batch (default 64 MiB).
    pub max_decompressed_size: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        DecodeOptions {
            check_crcs: true,
            max_decompressed_size: 64 << 20,
        }
    }
}

/// A validated record batch: header fields are read on demand, records lazily.
#[derive(Clone, PartialEq, Eq)]
pub struct BatchView {
    data: Bytes,
}

impl std::fmt::Debug for BatchView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchView")
            .field("base_offset", &self.base_offset())
            .field("last_offset_delta", &self.last_offset_delta())
            .field("records_count", &self.records_count())
            .field("compression", &self.compression())
            .field("transactional", &self.is_transactional())
            .field("control", &self.is_control())
            .field("producer_id", &self.producer_id())
            .field("size", &self.data.len())
            .finish()
    }
}

macro_rules! be_field {
    ($(#[$doc:meta])* $name:ident, $ty:ty, $off:expr) => {
        $(#[$doc])*
        #[inline]
        pub fn $name(&self) -> $ty {
            const N: usize = std::mem::size_of::<$ty>();
            let mut b = [0u8; N];
            b.copy_from_slice(&self.data[$off..$off + N]);
            <$ty>::from_be_bytes(b)
        }
    };
}

impl BatchView {
    /// Splits the next batch off the front of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` holds less than one whole batch: a fetch response may
    /// end with a truncated batch, which is not an error. On `Ok(None)` `buf` is untouched.
    pub fn parse(buf: &mut Bytes, opts: &DecodeOptions) -> Result<Option<BatchView>, WireError> {
        if buf.len() < LOG_OVERHEAD {
            return Ok(None);
        }
        let batch_length = i32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let min = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
        if batch_length < min {
            return Err(WireError::InvalidLength {
                what: "batchLength",
                len: batch_length.into(),
            });
        }
        if buf.len() > MAGIC_OFFSET {
            let magic = buf[MAGIC_OFFSET] as i8;
            if magic != 2 {
                return Err(WireError::BadMagic(magic));
            }
        }
        let total = LOG_OVERHEAD + batch_length as usize;
        if buf.len() < total {
            return Ok(None);
        }
        let data = buf.split_to(total);
        let view = BatchView { data };
        if opts.check_crcs {
            let expected = view.crc();
            let actual = crc32c::crc32c(&view.data[ATTRIBUTES_OFFSET..]);
            if expected != actual {
                return Err(WireError::BadCrc { expected, actual });
            }
        }
        if view.records_count() < 0 {
            return Err(WireError::InvalidLength {
                what: "recordsCount",
                len: view.records_count().into(),
            });
        }
        Ok(Some(view))
    }

    be_field!(
        /// Offset of the first record (assigned by the broker).
        base_offset, i64, 0);
    be_field!(
        /// Bytes after the `batchLength` field.
        batch_length, i32, 8);
    be_field!(
        /// Leader epoch of the partition leader that appended the batch.
        partition_leader_epoch, i32, 12);
    be_field!(
        /// Stored CRC-32C.
        crc, u32, CRC_OFFSET);
    be_field!(
        /// Raw attributes.
        attributes, i16, ATTRIBUTES_OFFSET);
    be_field!(
        /// Offset of the last record relative to the base offset (kept even when compaction
        /// removed records, so the next offset is always `last_offset() + 1`).
        last_offset_delta, i32, 23);
    be_field!(
        /// Timestamp of the first record (CreateTime) or -1.
        base_timestamp, i64, 27);
    be_field!(
        /// Largest timestamp in the batch.
        max_timestamp, i64, 35);
    be_field!(
        /// Producer id, -1 when not idempotent.
        producer_id, i64, 43);
    be_field!(
        /// Producer epoch.
        producer_epoch, i16, 51);
    be_field!(
        /// Sequence number of the first record, -1 when not idempotent.
        base_sequence, i32, 53);
    be_field!(
        /// Number of records in the batch.
        records_count, i32, 57);

    /// The magic byte (always 2 for a parsed view).
    pub fn magic(&self) -> i8 {
        self.data[MAGIC_OFFSET] as i8
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset().wrapping_add(i64::from(self.last_offset_delta()))
    }

    /// The offset after this batch: where a consumer continues.
    pub fn next_offset(&self) -> i64 {
        self.last_offset().wrapping_add(1)
    }

    /// The codec of the records section, or an error naming an unknown codec id.
    pub fn compression(&self) -> Result<Compression, WireError> {
        Compression::from_id((self.attributes() & COMPRESSION_MASK) as u8)
    }

    /// CreateTime or LogAppendTime.
    pub fn timestamp_type(&self) -> TimestampType {
        if self.attributes() & TIMESTAMP_TYPE_BIT != 0 {
            TimestampType::LogAppendTime
        } else {
            TimestampType::CreateTime
        }
    }

    /// Part of a transaction.
    pub fn is_transactional(&self) -> bool {
        self.attributes() & TRANSACTIONAL_BIT != 0
    }

    /// A control batch (transaction markers and other broker records); never user data.
    pub fn is_control(&self) -> bool {
        self.attributes() & CONTROL_BIT != 0
    }

    /// The delete horizon (KIP-534) when the batch carries one: the base timestamp.
    pub fn delete_horizon_ms(&self) -> Option<i64> {
        (self.attributes() & DELETE_HORIZON_BIT != 0).then(|| self.base_timestamp())
    }

    /// The whole batch as it was on the wire.
    pub fn as_bytes(&self) -> &Bytes {
        &self.data
    }

    /// Size on the wire.
    pub fn size_in_bytes(&self) -> usize {
        self.data.len()
    }

    /// The records, decompressed if needed (one buffer per batch, capped by
    /// `opts.max_decompressed_size`), then read lazily.
    pub fn records(&self, opts: &DecodeOptions) -> Result<Records, WireError> {
        let raw = self.data.slice(BATCH_HEADER_LEN..);
        let codec = self.compression()?;
        let data = match codec {
            Compression::None => raw,
            codec => compression::decompress(codec, &raw, opts.max_decompressed_size)?,
        };
        let log_append_time = (self.timestamp_type() == TimestampType::LogAppendTime).then(|| self.max_timestamp());
        Ok(Records {
            data,
            pos: 0,
            remaining: self.records_count().max(0),
            base_offset: self.base_offset(),
            base_timestamp: self.base_timestamp(),
            log_append_time,
            failed: false,
        })
    }

    /// For a control batch, its control record (the first record); `None` otherwise.
    pub fn control_record(&self, opts: &DecodeOptions) -> Result<Option<ControlRecord>, WireError> {
        if !self.is_control() {
            return Ok(None);
        }
        match self.records(opts)?.next() {
            Some(record) => ControlRecord::parse(&record?).map(Some),
            None => Err(WireError::InvalidControlRecord("control batch without records")),
        }
    }
}

/// Iterates the batches in a records field (e.g. of one partition in a fetch response).
///
/// Stops cleanly at a truncated trailing batch; after an error it yields nothing more.
#[derive(Debug, Clone)]
pub struct Batches {
    buf: Bytes,
    opts: DecodeOptions,
    done: bool,
}

impl Batches {
    /// Batches of `buf`.
    pub fn new(buf: Bytes, opts: DecodeOptions) -> Self {
        Batches { buf, opts, done: false }
    }

    /// Bytes not consumed: a truncated trailing batch, or what followed an error.
    pub fn remainder(&self) -> &Bytes {
        &self.buf
    }
}

impl Iterator for Batches {
    type Item = Result<BatchView, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match BatchView::parse(&mut self.buf, &self.opts) {
            Ok(Some(batch)) => Some(Ok(batch)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

/// One record, its key, value and headers borrowed from the batch buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Absolute offset.
    pub offset: i64,
    /// Timestamp in ms (the batch max timestamp under LogAppendTime).
    pub timestamp: i64,
    /// Key, `None` for a null key.
    pub key: Option<Bytes>,
    /// Value, `None` for a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Headers in wire order, duplicates kept.
    pub headers: Headers,
}

/// The headers of a record, validated, read lazily, in order, duplicate keys kept (KIP-82).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Headers {
    data: Bytes,
    count: u32,
}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl Headers {
    /// Number of headers.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// No headers.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The headers in wire order.
    pub fn iter(&self) -> HeaderIter {
        HeaderIter {
            data: self.data.clone(),
            remaining: self.count,
        }
    }

    /// Values of every header named `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a [u8]) -> impl Iterator<Item = Option<Bytes>> + 'a {
        self.iter().filter(move |h| h.key == key).map(|h| h.value)
    }

    /// The last value of `key` (what Java's `Headers.lastHeader` returns).
    pub fn last(&self, key: &[u8]) -> Option<Header> {
        self.iter().filter(|h| h.key == key).last()
    }
}

/// One header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Key bytes (UTF-8 in Java; see [`Header::key_str`]).
    pub key: Bytes,
    /// Value, `None` for null.
    pub value: Option<Bytes>,
}

impl Header {
    /// The key as UTF-8.
    pub fn key_str(&self) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(&self.key)
    }
}

/// Iterator over validated headers.
#[derive(Debug, Clone)]
pub struct HeaderIter {
    data: Bytes,
    remaining: u32,
}

impl Iterator for HeaderIter {
    type Item = Header;

    fn next(&mut self) -> Option<Header> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // Already validated when the record was read; a failure here cannot happen, and
        // would end the iteration rather than panic.
        let mut cur: &[u8] = &self.data;
        let start = cur.len();
        let key = read_bytes_field(&self.data, &mut cur, start, "header key").ok()??;
        let value = read_bytes_field(&self.data, &mut cur, start, "header value").ok()?;
        let used = start - cur.len();
        self.data.advance(used);
        Some(Header { key, value })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

/// Reads a varint length then that many bytes as a slice of `whole` (`-1` = null).
#[inline]
fn read_bytes_field(
    whole: &Bytes,
    cur: &mut &[u8],
    whole_len: usize,
    what: &'static str,
) -> Result<Option<Bytes>, WireError> {
    let len = get_varint(cur, what)?;
    if len < 0 {
        if len == -1 {
            return Ok(None);
        }
        return Err(WireError::InvalidLength { what, len: len.into() });
    }
    let len = len as usize;
    if len > cur.len() {
        return Err(WireError::InvalidLength { what, len: len as i64 });
    }
    let start = whole_len - cur.len();
    *cur = &cur[len..];
    Ok(Some(whole.slice(start..start + len)))
}

/// Skips a varint-length field (`-1` = null); `Ok(false)` for null. Validates like
/// [`read_bytes_field`] without taking a slice.
#[inline]
fn skip_bytes_field(cur: &mut &[u8], what: &'static str) -> Result<bool, WireError> {
    let len = get_varint(cur, what)?;
    if len < 0 {
        if len == -1 {
            return Ok(false);
        }
        return Err(WireError::InvalidLength { what, len: len.into() });
    }
    let len = len as usize;
    if len > cur.len() {
        return Err(WireError::InvalidLength { what, len: len as i64 });
    }
    *cur = &cur[len..];
    Ok(true)
}

/// Lazy iterator over the records of one batch.
///
/// Yields an error (once, then ends) on a malformed record, on fewer records than the
/// batch header announced, or on bytes left over after the last record.
#[derive(Debug, Clone)]
pub struct Records {
    data: Bytes,
    pos: usize,
    remaining: i32,
    base_offset: i64,
    base_timestamp: i64,
    log_append_time: Option<i64>,
    failed: bool,
}

impl Records {
    /// Records read from an already decompressed records section (no batch header). Used by
    /// tests and the fuzz target that reaches record parsing without a valid CRC.
    pub fn from_section(data: Bytes, count: i32, base_offset: i64, base_timestamp: i64) -> Self {
        Records {
            data,
            pos: 0,
            remaining: count.max(0),
            base_offset,
            base_timestamp,
            log_append_time: None,
            failed: false,
        }
    }

    /// Records not yet read.
    pub fn remaining(&self) -> usize {
        self.remaining as usize
    }

    fn read_record(&mut self) -> Result<Record, WireError> {
        // Every slice is taken straight from the batch buffer (one refcount increment each,
        // for the key and the value, and the headers only when there are any): the
        // per-record cost is varints and at most three atomic increments, no allocation.
        let data = &self.data;
        let all = &data[self.pos..];
        let mut cur = all;
        let len = get_varint(&mut cur, "record length")?;
        if len < 0 || len as usize > cur.len() {
            return Err(WireError::InvalidLength {
                what: "record length",
                len: len.into(),
            });
        }
        let body_start = self.pos + (all.len() - cur.len());
        let body_end = body_start + len as usize;
        // `cur` is always a suffix of data[..body_end]: its position is body_end - cur.len().
        let mut cur = &data[body_start..body_end];
        let (_attributes, rest) = cur.split_first().ok_or(WireError::Truncated("record attributes"))?;
        cur = rest;
        let ts_delta = get_varlong(&mut cur, "record timestampDelta")?;
        let offset_delta = get_varint(&mut cur, "record offsetDelta")?;
        let key = read_bytes_field(data, &mut cur, body_end, "record key")?;
        let value = read_bytes_field(data, &mut cur, body_end, "record value")?;
        let count = get_varint(&mut cur, "record headers count")?;
        if count < 0 || count as usize > cur.len() {
            return Err(WireError::InvalidLength {
                what: "record headers count",
                len: count.into(),
            });
        }
        let headers_start = body_end - cur.len();
        for _ in 0..count {
            if !skip_bytes_field(&mut cur, "header key")? {
                return Err(WireError::InvalidLength {
                    what: "header key",
                    len: -1,
                });
            }
            skip_bytes_field(&mut cur, "header value")?;
        }
        if !cur.is_empty() {
            return Err(WireError::TrailingData("record"));
        }
        self.pos = body_end;
        Ok(Record {
            offset: self.base_offset.wrapping_add(i64::from(offset_delta)),
            timestamp: self
                .log_append_time
                .unwrap_or_else(|| self.base_timestamp.wrapping_add(ts_delta)),
            key,
            value,
            headers: if count == 0 {
                Headers::default()
            } else {
                Headers {
                    data: data.slice(headers_start..body_end),
                    count: count as u32,
                }
            },
        })
    }
}

impl Iterator for Records {
    type Item = Result<Record, WireError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if self.remaining == 0 {
            if self.pos != self.data.len() {
                self.failed = true;
                return Some(Err(WireError::TrailingData("record batch")));
            }
            return None;
        }
        self.remaining -= 1;
        match self.read_record() {
            Ok(r) => Some(Ok(r)),
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.remaining as usize + 1))
    }
}

/// The type of a control record (`ControlRecordType` in Java).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlRecordType {
    /// Transaction abort marker (0).
    Abort,
    /// Transaction commit marker (1).
    Commit,
    /// Another broker control record (leader change, KRaft snapshot, ...), by type id.
    Other(i16),
}

/// A decoded control record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControlRecord {
    /// Commit, abort or other.
    pub kind: ControlRecordType,
    /// Version of the control record key.
    pub version: i16,
    /// Transaction coordinator epoch, for commit and abort markers.
    pub coordinator_epoch: Option<i32>,
}

impl ControlRecord {
    /// Parses a control record: key = version i16 + type i16; for markers the value is
    /// version i16 + coordinator epoch i32 (`EndTransactionMarker`).
    pub fn parse(record: &Record) -> Result<ControlRecord, WireError> {
        let key = record
            .key
            .as_deref()
            .ok_or(WireError::InvalidControlRecord("null key"))?;
        let [v0, v1, t0, t1, ..] = *key else {
            return Err(WireError::InvalidControlRecord("key shorter than 4 bytes"));
        };
        let version = i16::from_be_bytes([v0, v1]);
        let kind = match i16::from_be_bytes([t0, t1]) {
            0 => ControlRecordType::Abort,
            1 => ControlRecordType::Commit,
            other => ControlRecordType::Other(other),
        };
        let coordinator_epoch = match kind {
            ControlRecordType::Abort | ControlRecordType::Commit => {
                let value = record
                    .value
                    .as_deref()
                    .ok_or(WireError::InvalidControlRecord("marker without value"))?;
                let [_, _, e0, e1, e2, e3, ..] = *value else {
                    return Err(WireError::InvalidControlRecord("marker value shorter than 6 bytes"));
                };
                Some(i32::from_be_bytes([e0, e1, e2, e3]))
            }
            ControlRecordType::Other(_) => None,
        };
        Ok(ControlRecord {
            kind,
            version,
            coordinator_epoch,
        })
    }
}

/// Header fields of a batch being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Codec for the records section.
    pub compression: Compression,
    /// Producer id, -1 when not idempotent.
    pub producer_id: i64,
    /// Producer epoch, -1 when not idempotent.
    pub producer_epoch: i16,
    /// Sequence of the first record, -1 when not idempotent.
    pub base_sequence: i32,
    /// Part of a transaction.
    pub transactional: bool,
    /// Base offset written (0 when producing; the broker assigns offsets).
    pub base_offset: i64,
    /// Partition leader epoch (-1 from clients).
    pub partition_leader_epoch: i32,
}

impl Default for BatchHeader {
    fn default() -> Self {
        BatchHeader {
            compression: Compression::None,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            base_offset: 0,
            partition_leader_epoch: -1,
        }
    }
}

thread_local! {
    /// [`BatchBuilder::finish`]'s compression output, kept for the thread's next batch.
    static SCRATCH: std::cell::Cell<Vec<u8>> = const { std::cell::Cell::new(Vec::new()) };
}

/// A scratch buffer larger than this (a batch of several MiB) is freed, not kept.
const MAX_POOLED_SCRATCH: usize = 4 << 20;

/// A record to append: borrowed key, value and headers.
#[derive(Debug, Clone, Copy, Default)]
pub struct NewRecord<'a> {
    /// Timestamp in ms.
    pub timestamp: i64,
    /// Key, `None` for null.
    pub key: Option<&'a [u8]>,
    /// Value, `None` for null.
    pub value: Option<&'a [u8]>,
    /// Headers in order; duplicate keys are kept.
    pub headers: &'a [(&'a str, Option<&'a [u8]>)],
}

/// Builds one batch in place: the header is reserved, records are written as they come, and
/// lengths, compression and the CRC are patched in [`BatchBuilder::finish`].
#[derive(Debug)]
pub struct BatchBuilder {
    buf: BytesMut,
    header: BatchHeader,
    /// The level to compress at (KIP-390); `None`: the codec's default.
    level: Option<CompressionLevel>,
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
}

fn nullable_len(b: Option<&[u8]>) -> usize {
    match b {
        None => 1,
        Some(b) => varint_len(b.len() as i32) + b.len(),
    }
}

fn put_nullable(buf: &mut BytesMut, b: Option<&[u8]>) {
    match b {
        None => put_varint(buf, -1),
        Some(b) => {
            put_varint(buf, b.len() as i32);
            buf.put_slice(b);
        }
    }
}

/// A record's encoded size in one [`BatchBuilder`], from [`BatchBuilder::measure`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    body: usize,
    /// The builder's record count when measured (the offset delta, and whether the record
    /// sets the base timestamp, depend on it).
    at_count: i32,
}

impl Measured {
    /// Bytes the record adds to the batch (uncompressed): its length varint and body.
    pub fn size(&self) -> usize {
        varint_len(self.body as i32) + self.body
    }
}

impl BatchBuilder {
    /// A builder with room for `capacity` bytes before it grows.
    pub fn new(header: BatchHeader, capacity: usize) -> Self {
        let mut buf = BytesMut::with_capacity(capacity.max(BATCH_HEADER_LEN));
        buf.put_bytes(0, BATCH_HEADER_LEN);
        BatchBuilder {
            buf,
            header,
            level: None,
            count: 0,
            base_timestamp: -1,
            max_timestamp: -1,
        }
    }

    /// Compresses with the level's codec at that level (KIP-390) in
    /// [`finish`](Self::finish): the header's codec becomes the level's.
    pub fn with_compression_level(mut self, level: CompressionLevel) -> Self {
        self.header.compression = level.codec();
        self.level = Some(level);
        self
    }

    /// Records appended so far.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// No record appended yet.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Uncompressed size of the batch so far.
    pub fn size_in_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Encoded size of the record body (everything after its length varint).
    fn body_len(&self, r: &NewRecord<'_>) -> usize {
        let base = if self.count == 0 {
            r.timestamp
        } else {
            self.base_timestamp
        };
        let mut n = 1 + varlong_len(r.timestamp.wrapping_sub(base)) + varint_len(self.count);
        n += nullable_len(r.key) + nullable_len(r.value);
        n += varint_len(r.headers.len() as i32);
        for (k, v) in r.headers {
            n += nullable_len(Some(k.as_bytes())) + nullable_len(*v);
        }
        n
    }

    /// Bytes `record` would add to the batch (uncompressed), without appending it.
    pub fn record_size(&self, record: &NewRecord<'_>) -> usize {
        self.measure(record).size()
    }

    /// Measures `record` for this batch as it is now: [`Measured::size`] is what
    /// [`record_size`](Self::record_size) returns, and [`append_measured`](Self::append_measured)
    /// reuses the measurement instead of computing it again.
    pub fn measure(&self, record: &NewRecord<'_>) -> Measured {
        Measured {
            body: self.body_len(record),
            at_count: self.count,
        }
    }

    /// Appends a record; returns the batch's new uncompressed size.
    pub fn append(&mut self, r: &NewRecord<'_>) -> Result<usize, WireError> {
        let m = self.measure(r);
        self.append_measured(r, m)
    }

    /// [`append`](Self::append) with a measurement from [`measure`](Self::measure). One
    /// taken before another record was appended is not used (the record is measured again).
    pub fn append_measured(&mut self, r: &NewRecord<'_>, m: Measured) -> Result<usize, WireError> {
        if self.count == i32::MAX {
            return Err(WireError::TooLarge("record count"));
        }
        let body = if m.at_count == self.count {
            m.body
        } else {
            self.body_len(r)
        };
        let body_i32 = i32::try_from(body).map_err(|_| WireError::TooLarge("record"))?;
        if self.count == 0 {
            self.base_timestamp = r.timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(r.timestamp);
        let buf = &mut self.buf;
        buf.reserve(varint_len(body_i32) + body);
        put_varint(buf, body_i32);
        buf.put_u8(0);
        put_varlong(buf, r.timestamp.wrapping_sub(self.base_timestamp));
        put_varint(buf, self.count);
        put_nullable(buf, r.key);
        put_nullable(buf, r.value);
        put_varint(buf, r.headers.len() as i32);
        for (k, v) in r.headers {
            put_nullable(buf, Some(k.as_bytes()));
            put_nullable(buf, *v);
        }
        self.count += 1;
        Ok(self.buf.len())
    }

    /// Sets the producer id, epoch, first sequence and transactional flag that
    /// [`BatchBuilder::finish`] writes (the producer assigns sequences when a batch is sent).
    pub fn set_producer_state(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        base_sequence: i32,
        transactional: bool,
    ) {
        self.header.producer_id = producer_id;
        self.header.producer_epoch = producer_epoch;
        self.header.base_sequence = base_sequence;
        self.header.transactional = transactional;
    }

    /// Finishes the batch: compresses the records (kept only if smaller), patches the
    /// header and computes the CRC last.
    pub fn finish(self) -> Result<Bytes, WireError> {
        let BatchBuilder {
            mut buf,
            header,
            level,
            count,
            base_timestamp,
            max_timestamp,
        } = self;
        let mut codec = header.compression;
        if codec != Compression::None && count > 0 {
            // A pooled scratch buffer (per thread): no allocation per batch once warm.
            let mut scratch = SCRATCH.with(std::cell::Cell::take);
            scratch.clear();
            let compressed = match level {
                Some(level) => compression::compress_at(level, &buf[BATCH_HEADER_LEN..], &mut scratch),
                None => compression::compress(codec, &buf[BATCH_HEADER_LEN..], &mut scratch),
            };
            let smaller = scratch.len() < buf.len() - BATCH_HEADER_LEN;
            if compressed.is_ok() && smaller {
                buf.truncate(BATCH_HEADER_LEN);
                buf.extend_from_slice(&scratch);
            } else {
                codec = Compression::None;
            }
            if scratch.capacity() <= MAX_POOLED_SCRATCH {
                SCRATCH.with(|pooled| pooled.set(scratch));
            }
            compressed?;
        } else {
            codec = Compression::None;
        }
        let batch_length = i32::try_from(buf.len() - LOG_OVERHEAD).map_err(|_| WireError::TooLarge("record batch"))?;
        let mut attributes = i16::from(codec.id());
        if header.transactional {
            attributes |= TRANSACTIONAL_BIT;
        }
        let mut h = &mut buf[..BATCH_HEADER_LEN];
        h.put_i64(header.base_offset);
        h.put_i32(batch_length);
        h.put_i32(header.partition_leader_epoch);
        h.put_i8(2);
        h.put_u32(0); // CRC, patched below
        h.put_i16(attributes);
        h.put_i32(count.saturating_sub(1).max(0));
        h.put_i64(base_timestamp);
        h.put_i64(max_timestamp);
        h.put_i64(header.producer_id);
        h.put_i16(header.producer_epoch);
        h.put_i32(header.base_sequence);
        h.put_i32(count);
        let crc = crc32c::crc32c(&buf[ATTRIBUTES_OFFSET..]);
        buf[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
        Ok(buf.freeze())
    }
}

/// A copy of a finished batch with another producer id, epoch and first sequence, CRC
/// recomputed: what a producer resends after an epoch bump (KIP-360) renumbers its batches.
pub fn restamp_producer_state(
    batch: &[u8],
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
) -> Result<Bytes, WireError> {
    if batch.len() < BATCH_HEADER_LEN {
        return Err(WireError::Truncated("record batch header"));
    }
    let mut out = BytesMut::from(batch);
    out[43..51].copy_from_slice(&producer_id.to_be_bytes());
    out[51..53].copy_from_slice(&producer_epoch.to_be_bytes());
    out[53..57].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&out[ATTRIBUTES_OFFSET..]);
    out[CRC_OFFSET..ATTRIBUTES_OFFSET].copy_from_slice(&crc.to_be_bytes());
    Ok(out.freeze())
}
