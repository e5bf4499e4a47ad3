//! Checkpoint storage: a [`CheckpointStore`] keeps opaque checkpoints by id and hands back
//! the newest one that is intact.
//!
//! A checkpoint is bytes ([`Checkpoint::data`]); the pipeline decides what goes in (source
//! split states, sink committables, writer states), usually as JSON through
//! [`CheckpointStoreExt::save_json`] / [`CheckpointStoreExt::latest_json`]. The store never
//! looks inside.
//!
//! [`FileCheckpointStore`] is the crash-safe default: one file per checkpoint, written to a
//! temporary file, fsynced, renamed into place atomically, and the directory fsynced, so a
//! crash at any instant leaves either the old set of checkpoints or the new one, never a
//! half-written file under a checkpoint's name. Each file carries a header (magic, format
//! version, id, length) and a CRC32C over header and payload, so a file that was damaged
//! later (bit rot, truncation by a full disk, a copy cut short) is detected; [`CheckpointStore::latest`]
//! then logs a warning and returns the previous intact checkpoint.
//!
//! # Blocking
//!
//! The API is synchronous (`std::fs`): a save is a handful of syscalls, two of them fsyncs,
//! which take from microseconds to tens of milliseconds depending on the disk. From async
//! code call it through `tokio::task::spawn_blocking` (the store is `Send + Sync` and cheap
//! to share in an `Arc`), or directly when a blocked worker thread for that long is fine
//! (a checkpoint is taken once per interval, not per record).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tracing::{debug, warn};

use crate::error::{ConnectorError, Result};

/// How many checkpoints a store keeps by default: the newest and the one before it, so a
/// damaged newest file still leaves something to restore from.
pub const DEFAULT_RETAINED: usize = 2;

/// One stored checkpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Checkpoint id; a higher id is a newer checkpoint.
    pub id: u64,
    /// The payload, exactly as saved.
    pub data: Vec<u8>,
}

impl fmt::Debug for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The payload may hold anything the pipeline put in; print its size only.
        f.debug_struct("Checkpoint")
            .field("id", &self.id)
            .field("bytes", &self.data.len())
            .finish()
    }
}

impl Checkpoint {
    /// The payload parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        serde_json::from_slice(&self.data)
            .map_err(|e| ConnectorError::Checkpoint(format!("checkpoint {} is not the expected JSON: {e}", self.id)))
    }
}

/// Where checkpoints live. Implementations must make [`CheckpointStore::save`] atomic: after
/// a crash, a checkpoint is either entirely there or not at all.
///
/// Synchronous; see the module docs for calling it from async code.
pub trait CheckpointStore: Send + Sync + fmt::Debug {
    /// Stores `data` as checkpoint `id` (replacing a checkpoint with the same id), durably
    /// before returning, then drops checkpoints beyond the retention count (the oldest ids).
    fn save(&self, id: u64, data: &[u8]) -> Result<()>;

    /// The newest intact checkpoint, `None` when there is none. Damaged checkpoints are
    /// skipped with a warning.
    fn latest(&self) -> Result<Option<Checkpoint>>;

    /// Checkpoint `id` if it is stored and intact.
    fn load(&self, id: u64) -> Result<Option<Checkpoint>>;

    /// Ids of the stored checkpoints (intact or not), ascending.
    fn ids(&self) -> Result<Vec<u64>>;
}

/// JSON helpers for any [`CheckpointStore`], also through `dyn CheckpointStore`.
pub trait CheckpointStoreExt: CheckpointStore {
    /// Serializes `value` to JSON and saves it as checkpoint `id`.
    fn save_json<T: Serialize + ?Sized>(&self, id: u64, value: &T) -> Result<()> {
        let data = serde_json::to_vec(value)
            .map_err(|e| ConnectorError::Checkpoint(format!("cannot serialize checkpoint {id}: {e}")))?;
        self.save(id, &data)
    }

    /// The newest intact checkpoint, parsed from JSON: `(id, value)`.
    fn latest_json<T: DeserializeOwned>(&self) -> Result<Option<(u64, T)>> {
        match self.latest()? {
            Some(c) => Ok(Some((c.id, c.json()?))),
            None => Ok(None),
        }
    }
}

impl<S: CheckpointStore + ?Sized> CheckpointStoreExt for S {}

// File format, all integers big-endian:
//
//   0  magic      8 bytes  "STROMCKP"
//   8  version    u32      FORMAT_VERSION
//  12  id         u64      checkpoint id (must match the file name)
//  20  length     u64      payload length
//  28  crc32c     u32      CRC32C of bytes 0..28 followed by the payload
//  32  payload    length bytes; the file ends right after it
const MAGIC: &[u8; 8] = b"STROMCKP";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 32;
const FILE_PREFIX: &str = "checkpoint-";
const FILE_SUFFIX: &str = ".ckpt";
const TEMP_PREFIX: &str = ".tmp-checkpoint-";

fn encode(id: u64, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&(data.len() as u64).to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&out), data);
    out.extend_from_slice(&crc.to_be_bytes());
    out.extend_from_slice(data);
    out
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// Checks a file's bytes; `Err` says what is wrong with it.
fn decode(expected_id: u64, mut bytes: Vec<u8>) -> std::result::Result<Checkpoint, String> {
    if bytes.len() < HEADER_LEN {
        return Err(format!(
            "truncated: {} bytes, the header alone is {HEADER_LEN}",
            bytes.len()
        ));
    }
    if &bytes[..8] != MAGIC {
        return Err("not a checkpoint file (bad magic)".into());
    }
    let version = be_u32(&bytes[8..12]);
    if version != FORMAT_VERSION {
        return Err(format!("format version {version}, this build reads {FORMAT_VERSION}"));
    }
    let id = be_u64(&bytes[12..20]);
    if id != expected_id {
        return Err(format!("holds checkpoint {id}, its name says {expected_id}"));
    }
    let len = be_u64(&bytes[20..28]);
    let actual = (bytes.len() - HEADER_LEN) as u64;
    if len != actual {
        return Err(format!(
            "payload of {actual} bytes, the header says {len} (truncated or appended to)"
        ));
    }
    let stored = be_u32(&bytes[28..32]);
    let crc = crc32c::crc32c_append(crc32c::crc32c(&bytes[..28]), &bytes[HEADER_LEN..]);
    if crc != stored {
        return Err(format!("CRC32C mismatch: stored {stored:#010x}, computed {crc:#010x}"));
    }
    bytes.drain(..HEADER_LEN);
    Ok(Checkpoint { id, data: bytes })
}

fn file_name(id: u64) -> String {
    // Zero-padded so a directory listing sorts by id.
    format!("{FILE_PREFIX}{id:020}{FILE_SUFFIX}")
}

/// The id in a checkpoint file name; `None` for any other file (temporary files, files
/// someone else put there).
fn parse_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(FILE_PREFIX)?.strip_suffix(FILE_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Checkpoints as files in one directory, written crash-safely (see the module docs).
///
/// The directory belongs to one store: opening it removes temporary files an interrupted
/// save left behind. Two stores writing the same directory at once are not supported.
#[derive(Debug)]
pub struct FileCheckpointStore {
    dir: PathBuf,
    retained: usize,
    /// Serializes saves of this store (retention reads the directory after each write).
    write_lock: Mutex<()>,
    temp_counter: AtomicU64,
}

impl FileCheckpointStore {
    /// A store in `dir` (created if missing) keeping the newest [`DEFAULT_RETAINED`]
    /// checkpoints.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| ConnectorError::io(&dir, e))?;
        let store = FileCheckpointStore {
            dir,
            retained: DEFAULT_RETAINED,
            write_lock: Mutex::new(()),
            temp_counter: AtomicU64::new(0),
        };
        store.remove_temp_files()?;
        Ok(store)
    }

    /// Keeps the newest `n` checkpoints (at least 1) instead of [`DEFAULT_RETAINED`].
    pub fn with_retained(mut self, n: usize) -> Self {
        self.retained = n.max(1);
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Path of checkpoint `id`'s file.
    pub fn path_of(&self, id: u64) -> PathBuf {
        self.dir.join(file_name(id))
    }

    fn remove_temp_files(&self) -> Result<()> {
        for entry in fs::read_dir(&self.dir).map_err(|e| ConnectorError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| ConnectorError::io(&self.dir, e))?;
            if entry.file_name().to_str().is_some_and(|n| n.starts_with(TEMP_PREFIX)) {
                let path = entry.path();
                debug!(path = %path.display(), "removing the temporary file of an interrupted checkpoint save");
                fs::remove_file(&path).map_err(|e| ConnectorError::io(&path, e))?;
            }
        }
        Ok(())
    }

    fn sync_dir(&self) -> Result<()> {
        // The rename (and unlinks) are durable only once the directory entry is on disk.
        // Windows cannot open a directory as a file; there the rename is as durable as NTFS makes it.
        #[cfg(unix)]
        {
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| ConnectorError::io(&self.dir, e))?;
        }
        Ok(())
    }

    fn read(&self, id: u64) -> Result<Option<std::result::Result<Checkpoint, String>>> {
        let path = self.path_of(id);
        let mut bytes = Vec::new();
        match File::open(&path) {
            Ok(mut f) => f.read_to_end(&mut bytes).map_err(|e| ConnectorError::io(&path, e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ConnectorError::io(&path, e)),
        };
        Ok(Some(decode(id, bytes)))
    }

    fn prune(&self) -> Result<()> {
        let ids = self.ids()?;
        if ids.len() <= self.retained {
            return Ok(());
        }
        let mut removed = false;
        for id in &ids[..ids.len() - self.retained] {
            let path = self.path_of(*id);
            match fs::remove_file(&path) {
                Ok(()) => removed = true,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(ConnectorError::io(&path, e)),
            }
        }
        if removed {
            self.sync_dir()?;
        }
        Ok(())
    }
}

impl CheckpointStore for FileCheckpointStore {
    fn save(&self, id: u64, data: &[u8]) -> Result<()> {
        let _guard = self
            .write_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let temp = self.dir.join(format!(
            "{TEMP_PREFIX}{id}-{}-{}",
            std::process::id(),
            self.temp_counter.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&temp)?;
            f.write_all(&encode(id, data))?;
            f.sync_all()
        })();
        if let Err(e) = written {
            let _ = fs::remove_file(&temp);
            return Err(ConnectorError::io(&temp, e));
        }
        let path = self.path_of(id);
        if let Err(e) = fs::rename(&temp, &path) {
            let _ = fs::remove_file(&temp);
            return Err(ConnectorError::io(&path, e));
        }
        self.sync_dir()?;
        debug!(id, bytes = data.len(), path = %path.display(), "checkpoint saved");
        self.prune()
    }

    fn latest(&self) -> Result<Option<Checkpoint>> {
        for id in self.ids()?.into_iter().rev() {
            match self.read(id)? {
                Some(Ok(c)) => return Ok(Some(c)),
                Some(Err(why)) => warn!(
                    id,
                    path = %self.path_of(id).display(),
                    reason = %why,
                    "checkpoint file is damaged; falling back to the previous checkpoint"
                ),
                // Removed between the listing and the read (retention of a concurrent save).
                None => {}
            }
        }
        Ok(None)
    }

    fn load(&self, id: u64) -> Result<Option<Checkpoint>> {
        match self.read(id)? {
            Some(Ok(c)) => Ok(Some(c)),
            Some(Err(why)) => {
                warn!(id, path = %self.path_of(id).display(), reason = %why, "checkpoint file is damaged");
                Ok(None)
            }
            None => Ok(None),
        }
    }

    fn ids(&self) -> Result<Vec<u64>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| ConnectorError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| ConnectorError::io(&self.dir, e))?;
            let Some(id) = entry.file_name().to_str().and_then(parse_file_name) else {
                continue;
            };
            // A directory (or other non-file) under a checkpoint's name is not a checkpoint.
            if entry.file_type().is_ok_and(|t| t.is_file() || t.is_symlink()) {
                ids.push(id);
            }
        }
        ids.sort_unstable();
        Ok(ids)
    }
}

/// Checkpoints in memory, for tests and for pipelines that need no recovery across
/// processes. Same retention rule as the file store.
#[derive(Debug)]
pub struct MemoryCheckpointStore {
    retained: usize,
    checkpoints: Mutex<std::collections::BTreeMap<u64, Vec<u8>>>,
}

impl Default for MemoryCheckpointStore {
    fn default() -> Self {
        MemoryCheckpointStore {
            retained: DEFAULT_RETAINED,
            checkpoints: Mutex::default(),
        }
    }
}

impl MemoryCheckpointStore {
    /// An empty store keeping [`DEFAULT_RETAINED`] checkpoints.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the newest `n` checkpoints (at least 1).
    pub fn with_retained(mut self, n: usize) -> Self {
        self.retained = n.max(1);
        self
    }

    fn map(&self) -> std::sync::MutexGuard<'_, std::collections::BTreeMap<u64, Vec<u8>>> {
        self.checkpoints
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl CheckpointStore for MemoryCheckpointStore {
    fn save(&self, id: u64, data: &[u8]) -> Result<()> {
        let mut map = self.map();
        map.insert(id, data.to_vec());
        while map.len() > self.retained {
            map.pop_first();
        }
        Ok(())
    }

    fn latest(&self) -> Result<Option<Checkpoint>> {
        Ok(self.map().last_key_value().map(|(id, data)| Checkpoint {
            id: *id,
            data: data.clone(),
        }))
    }

    fn load(&self, id: u64) -> Result<Option<Checkpoint>> {
        Ok(self.map().get(&id).map(|data| Checkpoint { id, data: data.clone() }))
    }

    fn ids(&self) -> Result<Vec<u64>> {
        Ok(self.map().keys().copied().collect())
    }
}

/// One place for the checkpoints of every subtask of a pipeline: a [`CheckpointStore`] per
/// subtask, and the subtasks that have checkpoints there. A pipeline given a location
/// ([`crate::Pipeline::checkpoint_location`]) can be restarted with another parallelism: each
/// new subtask reads the newest checkpoint of every old one and takes the splits it owns
/// (see the pipeline's module docs, "Rescaling").
pub trait CheckpointLocation: Send + Sync + fmt::Debug {
    /// The store of subtask `subtask`'s checkpoints (created if needed).
    fn subtask_store(&self, subtask: usize) -> Result<Arc<dyn CheckpointStore>>;

    /// The subtasks that have a store here, ascending.
    fn subtasks(&self) -> Result<Vec<usize>>;
}

const SUBTASK_DIR_PREFIX: &str = "subtask-";

/// A directory holding one [`FileCheckpointStore`] per subtask, in `subtask-<i>/`: for one
/// machine, or processes sharing a filesystem.
#[derive(Debug)]
pub struct FileCheckpointLocation {
    dir: PathBuf,
    retained: usize,
}

impl FileCheckpointLocation {
    /// A location in `dir` (created if missing); each subtask keeps [`DEFAULT_RETAINED`]
    /// checkpoints.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir).map_err(|e| ConnectorError::io(&dir, e))?;
        Ok(FileCheckpointLocation {
            dir,
            retained: DEFAULT_RETAINED,
        })
    }

    /// Each subtask keeps its newest `n` checkpoints (at least 1).
    pub fn with_retained(mut self, n: usize) -> Self {
        self.retained = n.max(1);
        self
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl CheckpointLocation for FileCheckpointLocation {
    fn subtask_store(&self, subtask: usize) -> Result<Arc<dyn CheckpointStore>> {
        let store = FileCheckpointStore::new(self.dir.join(format!("{SUBTASK_DIR_PREFIX}{subtask}")))?
            .with_retained(self.retained);
        Ok(Arc::new(store))
    }

    fn subtasks(&self) -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(|e| ConnectorError::io(&self.dir, e))? {
            let entry = entry.map_err(|e| ConnectorError::io(&self.dir, e))?;
            let name = entry.file_name();
            let index = name
                .to_str()
                .and_then(|n| n.strip_prefix(SUBTASK_DIR_PREFIX))
                .and_then(|n| n.parse::<usize>().ok());
            if let Some(i) = index {
                out.push(i);
            }
        }
        out.sort_unstable();
        Ok(out)
    }
}

/// [`MemoryCheckpointStore`]s per subtask, for tests and for pipelines of one process.
#[derive(Debug, Default)]
pub struct MemoryCheckpointLocation {
    stores: Mutex<std::collections::BTreeMap<usize, Arc<MemoryCheckpointStore>>>,
}

impl MemoryCheckpointLocation {
    /// An empty location.
    pub fn new() -> Self {
        Self::default()
    }
}

impl CheckpointLocation for MemoryCheckpointLocation {
    fn subtask_store(&self, subtask: usize) -> Result<Arc<dyn CheckpointStore>> {
        let mut stores = self.stores.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let store = stores.entry(subtask).or_default().clone();
        Ok(store)
    }

    fn subtasks(&self) -> Result<Vec<usize>> {
        let stores = self.stores.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        Ok(stores.keys().copied().collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static N: AtomicU64 = AtomicU64::new(0);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let p = std::env::temp_dir().join(format!(
                "strom-ckpt-{tag}-{}-{}-{nanos}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn round_trip_bytes_and_json() {
        let d = TempDir::new("rt");
        let store = FileCheckpointStore::new(&d.0).unwrap();
        assert!(store.latest().unwrap().is_none());
        store.save(1, b"first").unwrap();
        store.save(2, b"").unwrap();
        let latest = store.latest().unwrap().unwrap();
        assert_eq!(latest, Checkpoint { id: 2, data: vec![] });
        assert_eq!(store.load(1).unwrap().unwrap().data, b"first");
        assert!(store.load(7).unwrap().is_none());

        let value = serde_json::json!({"splits": [{"topic": "t", "partition": 0, "offset": 42}], "sink": []});
        store.save_json(3, &value).unwrap();
        // A new store over the same directory (a restarted process) sees the same.
        let reopened = FileCheckpointStore::new(&d.0).unwrap();
        let (id, back): (u64, serde_json::Value) = reopened.latest_json().unwrap().unwrap();
        assert_eq!((id, back), (3, value));
        // Through a trait object too.
        let dyn_store: &dyn CheckpointStore = &reopened;
        assert_eq!(dyn_store.latest_json::<serde_json::Value>().unwrap().unwrap().0, 3);
    }

    #[test]
    fn corrupt_newest_falls_back_to_the_previous() {
        let d = TempDir::new("corrupt");
        let store = FileCheckpointStore::new(&d.0).unwrap();
        store.save(10, b"good ten").unwrap();
        store.save(11, b"good eleven").unwrap();
        // Flip one payload byte of the newest.
        let path = store.path_of(11);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x01;
        fs::write(&path, &bytes).unwrap();
        let latest = store.latest().unwrap().unwrap();
        assert_eq!((latest.id, latest.data.as_slice()), (10, &b"good ten"[..]));
        assert!(
            store.load(11).unwrap().is_none(),
            "a damaged checkpoint is never returned"
        );
        // A damaged header (id field) is caught as well.
        let mut bytes = fs::read(store.path_of(10)).unwrap();
        bytes[19] ^= 0x40;
        fs::write(store.path_of(10), &bytes).unwrap();
        assert!(store.latest().unwrap().is_none(), "nothing intact is left");
    }

    #[test]
    fn truncated_newest_falls_back_to_the_previous() {
        let d = TempDir::new("trunc");
        let store = FileCheckpointStore::new(&d.0).unwrap();
        store.save(1, &[7u8; 1000]).unwrap();
        store.save(2, &[9u8; 1000]).unwrap();
        let path = store.path_of(2);
        let bytes = fs::read(&path).unwrap();
        for keep in [bytes.len() - 1, HEADER_LEN + 10, HEADER_LEN, 20, 0] {
            fs::write(&path, &bytes[..keep]).unwrap();
            let latest = store.latest().unwrap().unwrap();
            assert_eq!(latest.id, 1, "truncated to {keep} bytes");
            assert_eq!(latest.data, vec![7u8; 1000]);
        }
        // Appended garbage is damage too (the length no longer matches).
        let mut longer = bytes.clone();
        longer.extend_from_slice(b"junk");
        fs::write(&path, &longer).unwrap();
        assert_eq!(store.latest().unwrap().unwrap().id, 1);
        // A file renamed to another id is refused (the id is inside the file).
        fs::write(&path, &bytes).unwrap();
        fs::rename(&path, store.path_of(5)).unwrap();
        assert_eq!(store.latest().unwrap().unwrap().id, 1);
    }

    #[test]
    fn garbage_file_names_are_ignored() {
        let d = TempDir::new("names");
        let store = FileCheckpointStore::new(&d.0).unwrap();
        store.save(4, b"four").unwrap();
        for name in [
            "checkpoint-.ckpt",
            "checkpoint-12x.ckpt",
            "checkpoint-99999999999999999999999.ckpt",
            "checkpoint-00000000000000000009.ckpt.bak",
            "README",
            "checkpoint-+5.ckpt",
        ] {
            fs::write(d.0.join(name), b"garbage").unwrap();
        }
        fs::create_dir(d.0.join("checkpoint-00000000000000000008.ckpt.d")).unwrap();
        fs::create_dir(d.0.join("checkpoint-00000000000000000007.ckpt")).unwrap();
        assert_eq!(store.ids().unwrap(), vec![4]);
        assert_eq!(store.latest().unwrap().unwrap().data, b"four");
        // A leftover temporary file of an interrupted save is removed when the store opens.
        let temp = d.0.join(format!("{TEMP_PREFIX}9-1-0"));
        fs::write(&temp, b"partial").unwrap();
        let reopened = FileCheckpointStore::new(&d.0).unwrap();
        assert!(!temp.exists());
        assert_eq!(reopened.latest().unwrap().unwrap().id, 4);
        // A garbage file with a valid name is skipped as damaged.
        fs::write(store.path_of(6), b"garbage").unwrap();
        assert_eq!(reopened.latest().unwrap().unwrap().id, 4);
    }

    #[test]
    fn retention_keeps_the_newest() {
        let d = TempDir::new("retain");
        let store = FileCheckpointStore::new(&d.0).unwrap();
        for id in 1..=5u64 {
            store.save(id, id.to_string().as_bytes()).unwrap();
        }
        assert_eq!(store.ids().unwrap(), vec![4, 5]);
        let store = store.with_retained(3);
        store.save(6, b"6").unwrap();
        store.save(7, b"7").unwrap();
        assert_eq!(store.ids().unwrap(), vec![5, 6, 7]);
        // Only checkpoint files are counted or removed; other files stay.
        fs::write(d.0.join("notes.txt"), b"mine").unwrap();
        store.save(8, b"8").unwrap();
        assert_eq!(store.ids().unwrap(), vec![6, 7, 8]);
        assert!(d.0.join("notes.txt").exists());
        // Saving an id again replaces it.
        store.save(8, b"eight").unwrap();
        assert_eq!(store.latest().unwrap().unwrap().data, b"eight");
        let temps = fs::read_dir(&d.0)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with(TEMP_PREFIX)
            })
            .count();
        assert_eq!(temps, 0, "no temporary file is left behind");
    }

    #[test]
    fn memory_store_behaves_the_same() {
        let store = MemoryCheckpointStore::new();
        assert!(store.latest().unwrap().is_none());
        for id in [3u64, 1, 2, 5] {
            store.save_json(id, &serde_json::json!({ "id": id })).unwrap();
        }
        assert_eq!(store.ids().unwrap(), vec![3, 5]);
        let (id, v): (u64, serde_json::Value) = store.latest_json().unwrap().unwrap();
        assert_eq!((id, v["id"].as_u64()), (5, Some(5)));
    }

    #[test]
    fn checkpoint_debug_hides_the_payload() {
        let c = Checkpoint {
            id: 1,
            data: b"sasl.password=hunter2".to_vec(),
        };
        let s = format!("{c:?}");
        assert!(!s.contains("hunter2"), "{s}");
    }
}
