//! The checkpoint topic's record format, sans-IO: keys, manifests, chunks, how a checkpoint
//! is joined and checked, one subtask's view of the topic, and what retention drops.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;

use crate::checkpoint::Checkpoint;

const CHUNK_MAGIC: &[u8; 4] = b"SKC1";
const CHUNK_HEADER_LEN: usize = 12;
const MANIFEST_MAGIC: &[u8; 4] = b"SKM1";
/// Length of an encoded [`Manifest`].
pub const MANIFEST_LEN: usize = 44;
const MANIFEST_PART: &str = "m";

/// Which record of a checkpoint a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RecordPart {
    /// Chunk `n` of the payload, from 0.
    Chunk(u32),
    /// The manifest, written last.
    Manifest,
}

/// A record key, `<pipeline>/<subtask>/<id, 20 digits>/<chunk index or m>` (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordKey<'a> {
    /// The pipeline's name.
    pub pipeline: &'a str,
    /// The subtask index.
    pub subtask: usize,
    /// The checkpoint id.
    pub id: u64,
    /// Which record of the checkpoint.
    pub part: RecordPart,
}

impl RecordKey<'_> {
    /// The key's bytes.
    pub fn encode(&self) -> String {
        match self.part {
            RecordPart::Chunk(n) => format!("{}/{}/{:020}/{n}", self.pipeline, self.subtask, self.id),
            RecordPart::Manifest => format!("{}/{}/{:020}/{MANIFEST_PART}", self.pipeline, self.subtask, self.id),
        }
    }

    /// Parses a key; `None` for anything that is not a checkpoint record's key (other records
    /// in the topic are ignored, never an error).
    pub fn parse(key: &[u8]) -> Option<RecordKey<'_>> {
        let key = std::str::from_utf8(key).ok()?;
        let mut it = key.rsplitn(4, '/');
        let part = it.next()?;
        let id = it.next()?;
        let subtask = it.next()?;
        let pipeline = it.next()?;
        if pipeline.is_empty() || id.len() != 20 || !all_digits(id) || !all_digits(subtask) || subtask.len() > 10 {
            return None;
        }
        let part = if part == MANIFEST_PART {
            RecordPart::Manifest
        } else if all_digits(part) && part.len() <= 10 && (part == "0" || !part.starts_with('0')) {
            RecordPart::Chunk(part.parse().ok()?)
        } else {
            return None;
        };
        Some(RecordKey {
            pipeline,
            subtask: subtask.parse().ok()?,
            id: id.parse().ok()?,
            part,
        })
    }
}

fn all_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// What a checkpoint's manifest says (see the module docs for its 44 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Manifest {
    /// Checkpoint id.
    pub id: u64,
    /// Subtask index.
    pub subtask: u32,
    /// Number of chunks.
    pub chunks: u32,
    /// Payload length in bytes.
    pub length: u64,
    /// CRC32C of the whole payload.
    pub crc32c: u32,
    /// The save's nonce, carried by each of its chunks.
    pub nonce: u64,
}

/// Why a manifest or chunk value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FormatError {
    /// Shorter than its fixed part.
    Truncated(&'static str),
    /// Longer than a manifest.
    TrailingData,
    /// Not this format (or another version of it).
    BadMagic(&'static str),
    /// The manifest's own CRC does not match.
    BadCrc {
        /// Stored.
        expected: u32,
        /// Computed.
        actual: u32,
    },
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormatError::Truncated(what) => write!(f, "{what} is truncated"),
            FormatError::TrailingData => write!(f, "manifest longer than {MANIFEST_LEN} bytes"),
            FormatError::BadMagic(what) => write!(f, "{what} has a bad magic (not a Strom checkpoint record)"),
            FormatError::BadCrc { expected, actual } => {
                write!(
                    f,
                    "manifest CRC32C mismatch: stored {expected:#010x}, computed {actual:#010x}"
                )
            }
        }
    }
}

impl std::error::Error for FormatError {}

fn be_u32(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

impl Manifest {
    /// The manifest's value.
    pub fn encode(&self) -> [u8; MANIFEST_LEN] {
        let mut out = [0u8; MANIFEST_LEN];
        out[0..4].copy_from_slice(MANIFEST_MAGIC);
        out[4..12].copy_from_slice(&self.id.to_be_bytes());
        out[12..16].copy_from_slice(&self.subtask.to_be_bytes());
        out[16..20].copy_from_slice(&self.chunks.to_be_bytes());
        out[20..28].copy_from_slice(&self.length.to_be_bytes());
        out[28..32].copy_from_slice(&self.crc32c.to_be_bytes());
        out[32..40].copy_from_slice(&self.nonce.to_be_bytes());
        let crc = crc32c::crc32c(&out[..40]);
        out[40..44].copy_from_slice(&crc.to_be_bytes());
        out
    }

    /// Decodes a manifest's value, checking its length, magic and CRC (not its counts: see
    /// [`assemble`]).
    pub fn decode(value: &[u8]) -> std::result::Result<Manifest, FormatError> {
        if value.len() < MANIFEST_LEN {
            return Err(FormatError::Truncated("manifest"));
        }
        if value.len() > MANIFEST_LEN {
            return Err(FormatError::TrailingData);
        }
        if &value[..4] != MANIFEST_MAGIC {
            return Err(FormatError::BadMagic("manifest"));
        }
        let expected = be_u32(value, 40);
        let actual = crc32c::crc32c(&value[..40]);
        if expected != actual {
            return Err(FormatError::BadCrc { expected, actual });
        }
        Ok(Manifest {
            id: be_u64(value, 4),
            subtask: be_u32(value, 12),
            chunks: be_u32(value, 16),
            length: be_u64(value, 20),
            crc32c: be_u32(value, 28),
            nonce: be_u64(value, 32),
        })
    }
}

/// A chunk's value: `"SKC1"`, the save's nonce, the bytes.
pub fn encode_chunk(nonce: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(CHUNK_HEADER_LEN + data.len());
    out.extend_from_slice(CHUNK_MAGIC);
    out.extend_from_slice(&nonce.to_be_bytes());
    out.extend_from_slice(data);
    out
}

/// A chunk's nonce and bytes.
pub fn decode_chunk(value: &[u8]) -> std::result::Result<(u64, &[u8]), FormatError> {
    if value.len() < CHUNK_HEADER_LEN {
        return Err(FormatError::Truncated("chunk"));
    }
    if &value[..4] != CHUNK_MAGIC {
        return Err(FormatError::BadMagic("chunk"));
    }
    Ok((be_u64(value, 4), &value[CHUNK_HEADER_LEN..]))
}

/// Joins a checkpoint's chunk values (by index) as its manifest describes, checking
/// everything: ids, chunk presence and nonces, length, CRC. `Err` says why the checkpoint is
/// not intact. Never allocates more than the chunks hold, whatever the manifest claims.
pub fn assemble(
    key_id: u64,
    key_subtask: usize,
    manifest: &[u8],
    chunks: &BTreeMap<u32, Bytes>,
) -> std::result::Result<Vec<u8>, String> {
    let m = Manifest::decode(manifest).map_err(|e| e.to_string())?;
    if m.id != key_id {
        return Err(format!("the manifest is checkpoint {}'s, its key says {key_id}", m.id));
    }
    if usize::try_from(m.subtask).ok() != Some(key_subtask) {
        return Err(format!(
            "the manifest is subtask {}'s, its key says {key_subtask}",
            m.subtask
        ));
    }
    // Walk the chunks the manifest names, stopping at the first one missing: the loop runs at
    // most chunks.len() + 1 times whatever m.chunks says.
    let mut parts = Vec::new();
    let mut total: u64 = 0;
    for index in 0..m.chunks {
        let Some(value) = chunks.get(&index) else {
            return Err(format!("chunk {index} of {} is missing", m.chunks));
        };
        let (nonce, data) = decode_chunk(value).map_err(|e| format!("chunk {index}: {e}"))?;
        if nonce != m.nonce {
            return Err(format!(
                "chunk {index} is from another save of this checkpoint (nonce {nonce:#x}, the manifest's {:#x})",
                m.nonce
            ));
        }
        total = total.saturating_add(data.len() as u64);
        if total > m.length {
            return Err(format!("the chunks hold more than the manifest's {} bytes", m.length));
        }
        parts.push(data);
    }
    if total != m.length {
        return Err(format!("the chunks hold {total} bytes, the manifest says {}", m.length));
    }
    // total is what the chunks hold, already in memory: a safe capacity.
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.extend_from_slice(p);
    }
    let crc = crc32c::crc32c(&out);
    if crc != m.crc32c {
        return Err(format!(
            "payload CRC32C mismatch: manifest {:#010x}, computed {crc:#010x}",
            m.crc32c
        ));
    }
    Ok(out)
}

/// A fresh nonce per save: only has to differ from the other saves of the same checkpoint id.
pub(super) fn new_nonce() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = nanos
        ^ u64::from(std::process::id()).rotate_left(40)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    // splitmix64's finalizer.
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One subtask's checkpoint records as read from the topic: the last value of each key,
/// tombstones applied. Sans-IO: fed record by record.
#[derive(Debug, Default)]
pub(super) struct SubtaskView {
    pub(super) manifests: BTreeMap<u64, Bytes>,
    pub(super) chunks: BTreeMap<u64, BTreeMap<u32, Bytes>>,
}

impl SubtaskView {
    /// Applies one record; `value` is `None` for a tombstone. `keep` is false for chunks whose
    /// bytes are not needed (an empty value is kept instead, so presence is still known).
    pub(super) fn apply(&mut self, id: u64, part: RecordPart, value: Option<&Bytes>, keep: bool) {
        match (part, value) {
            (RecordPart::Manifest, Some(v)) => {
                self.manifests.insert(id, Bytes::copy_from_slice(v));
            }
            (RecordPart::Manifest, None) => {
                self.manifests.remove(&id);
            }
            (RecordPart::Chunk(n), Some(v)) => {
                let v = if keep { Bytes::copy_from_slice(v) } else { Bytes::new() };
                self.chunks.entry(id).or_default().insert(n, v);
            }
            (RecordPart::Chunk(n), None) => {
                if let Some(c) = self.chunks.get_mut(&id) {
                    c.remove(&n);
                    if c.is_empty() {
                        self.chunks.remove(&id);
                    }
                }
            }
        }
    }

    pub(super) fn checkpoint(&self, id: u64, subtask: usize) -> Option<std::result::Result<Checkpoint, String>> {
        let manifest = self.manifests.get(&id)?;
        let empty = BTreeMap::new();
        let chunks = self.chunks.get(&id).unwrap_or(&empty);
        Some(assemble(id, subtask, manifest, chunks).map(|data| Checkpoint { id, data }))
    }

    pub(super) fn index(&self) -> Index {
        let mut index = Index::default();
        for id in self.manifests.keys() {
            index.entry(*id).or_default().manifest = true;
        }
        for (id, chunks) in &self.chunks {
            index.entry(*id).or_default().chunks = chunks.keys().copied().collect();
        }
        index
    }
}

/// What a store knows of its own records: per id, whether a manifest is there and which
/// chunk keys are.
pub(super) type Index = BTreeMap<u64, IdRecords>;

#[derive(Debug, Default, Clone)]
pub(super) struct IdRecords {
    pub(super) manifest: bool,
    pub(super) chunks: BTreeSet<u32>,
}

/// The ids to drop to keep the newest `retained` checkpoints: every id older than the oldest
/// kept manifest (manifests, and chunks without one alike).
pub(super) fn doomed(index: &Index, retained: usize) -> Vec<u64> {
    let with_manifest: Vec<u64> = index.iter().filter(|(_, r)| r.manifest).map(|(id, _)| *id).collect();
    if with_manifest.len() <= retained {
        // Chunks older than every kept manifest are leftovers too.
        let Some(oldest) = with_manifest.first() else {
            return Vec::new();
        };
        return index.range(..*oldest).map(|(id, _)| *id).collect();
    }
    let oldest_kept = with_manifest[with_manifest.len() - retained];
    index.range(..oldest_kept).map(|(id, _)| *id).collect()
}
