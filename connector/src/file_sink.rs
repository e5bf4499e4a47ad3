//! An exactly-once sink to files (Flink's `FileSink` in row format, rolling on every
//! checkpoint): proof that [`TwoPhaseCommitSink`] gives systems other than Kafka exactly-once.
//!
//! ```no_run
//! # async fn run(source: strom_connector::source::KafkaSource<String>) -> strom_connector::Result<()> {
//! use strom_connector::file_sink::FileSink;
//! use strom_connector::Pipeline;
//!
//! let sink = FileSink::for_row_format("/data/out", |line: &String, buf: &mut Vec<u8>| {
//!     buf.extend_from_slice(line.as_bytes());
//!     buf.push(b'\n');
//! })
//! .part_suffix(".txt")
//! .build()?;
//! Pipeline::new(source, sink).run().await?;
//! # Ok(()) }
//! ```
//!
//! # Files
//!
//! Subtask `s` writes its elements, encoded by the row encoder, into a hidden in-progress
//! part file `.<prefix>-<s>-<c>-<n><suffix>.inprogress` of the directory, where `c` is the
//! checkpoint that will commit it and `n` counts its parts (a part rolls over at
//! [`FileSinkBuilder::max_part_size`], default 128 MiB, as Flink's `DefaultRollingPolicy`).
//!
//! * **Pre-commit** (each checkpoint): the open part is flushed, `fsync`ed and closed with
//!   the parts rolled before it, and the directory is `fsync`ed; the checkpoint stores their
//!   names ([`FileCommittable`]). Nothing is visible yet: readers skip hidden files.
//! * **Commit** (the checkpoint is stored): each in-progress part is renamed to its final
//!   name `<prefix>-<s>-<c>-<n><suffix>`, and the directory `fsync`ed. Idempotent: a part
//!   already renamed counts as committed.
//! * **Recover** (a restart): the restored checkpoint's parts are committed, then every
//!   in-progress part of the subtask that no checkpoint holds (written after it by a run that
//!   crashed) is deleted. The source then reads again from the checkpoint's positions, so
//!   each element lands in exactly one final file.
//! * **Abort** (a failure): the parts not pre-committed are deleted.
//!
//! A crash at any instant leaves final files holding each element exactly once, once the
//! pipeline has run again from its checkpoint store. The sink blocks its task briefly on
//! buffered writes (64 KiB buffers); `fsync`s and renames run on the blocking pool.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tracing::{debug, info, warn};

use crate::sink::{DeliveryGuarantee, SinkCommitter, SinkRestore, SinkWriter, TwoPhaseCommitSink};
use crate::{ConnectorError, Result};

/// Flink's `DefaultRollingPolicy` part size.
pub const DEFAULT_MAX_PART_SIZE: u64 = 128 * 1024 * 1024;

/// Encodes one element as bytes appended to a buffer (Flink's `Encoder`).
pub type RowEncoder<T> = Arc<dyn Fn(&T, &mut Vec<u8>) + Send + Sync>;

struct Shared<T> {
    dir: PathBuf,
    encoder: RowEncoder<T>,
    prefix: String,
    suffix: String,
    max_part_size: u64,
}

/// An exactly-once file sink; see the [module docs](self).
pub struct FileSink<T> {
    shared: Arc<Shared<T>>,
}

impl<T> Clone for FileSink<T> {
    fn clone(&self) -> Self {
        FileSink {
            shared: self.shared.clone(),
        }
    }
}

impl<T> fmt::Debug for FileSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSink")
            .field("dir", &self.shared.dir)
            .field("prefix", &self.shared.prefix)
            .field("suffix", &self.shared.suffix)
            .field("max_part_size", &self.shared.max_part_size)
            .finish_non_exhaustive()
    }
}

/// Builds a [`FileSink`] (Flink's `FileSink.forRowFormat(path, encoder)` with its
/// `OutputFileConfig`).
pub struct FileSinkBuilder<T> {
    dir: PathBuf,
    encoder: RowEncoder<T>,
    prefix: String,
    suffix: String,
    max_part_size: u64,
}

impl<T> fmt::Debug for FileSinkBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSinkBuilder")
            .field("dir", &self.dir)
            .field("prefix", &self.prefix)
            .field("suffix", &self.suffix)
            .field("max_part_size", &self.max_part_size)
            .finish_non_exhaustive()
    }
}

impl<T> FileSink<T> {
    /// A sink writing into directory `dir` (created if missing), each element encoded by
    /// `encoder` (e.g. a line of text and a `\n`).
    pub fn for_row_format(
        dir: impl Into<PathBuf>,
        encoder: impl Fn(&T, &mut Vec<u8>) + Send + Sync + 'static,
    ) -> FileSinkBuilder<T> {
        FileSinkBuilder {
            dir: dir.into(),
            encoder: Arc::new(encoder),
            prefix: "part".into(),
            suffix: String::new(),
            max_part_size: DEFAULT_MAX_PART_SIZE,
        }
    }

    /// The directory written to.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

impl<T> FileSinkBuilder<T> {
    /// The part file name prefix (Flink's `OutputFileConfig.partPrefix`, default `part`).
    pub fn part_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The part file name suffix (Flink's `partSuffix`, default none), e.g. `.txt`.
    pub fn part_suffix(mut self, suffix: impl Into<String>) -> Self {
        self.suffix = suffix.into();
        self
    }

    /// A part rolls over to a new one once it holds this many bytes (default 128 MiB); every
    /// checkpoint also closes the open part.
    pub fn max_part_size(mut self, bytes: u64) -> Self {
        self.max_part_size = bytes;
        self
    }

    /// Checks the settings and creates the directory.
    pub fn build(self) -> Result<FileSink<T>> {
        let bad_name = |s: &str| s.contains(['/', '\\', '\0']) || s.starts_with('.');
        if self.prefix.is_empty() || bad_name(&self.prefix) || self.prefix.contains('-') {
            return Err(ConnectorError::Config(format!(
                "file sink part prefix {:?}: a non-empty file name part without '/', '-' or a leading '.'",
                self.prefix
            )));
        }
        if self.suffix.contains(['/', '\\', '\0']) || self.suffix.ends_with(".inprogress") {
            return Err(ConnectorError::Config(format!(
                "file sink part suffix {:?}: no '/' and not ending in .inprogress",
                self.suffix
            )));
        }
        if self.max_part_size == 0 {
            return Err(ConnectorError::Config("file sink max_part_size must be > 0".into()));
        }
        fs::create_dir_all(&self.dir).map_err(|e| io_error(&format!("creating {}", self.dir.display()), e))?;
        Ok(FileSink {
            shared: Arc::new(Shared {
                dir: self.dir,
                encoder: self.encoder,
                prefix: self.prefix,
                suffix: self.suffix,
                max_part_size: self.max_part_size,
            }),
        })
    }
}

fn io_error(what: &str, e: std::io::Error) -> ConnectorError {
    ConnectorError::Sink(format!("file sink: {what}: {e}"))
}

/// One pre-committed part: its in-progress and final names (in the sink's directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCommittable {
    /// The directory.
    pub dir: PathBuf,
    /// The hidden in-progress file name.
    pub in_progress: String,
    /// The final file name.
    pub final_name: String,
}

/// A file writer's state at a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileWriterState {
    /// Subtask index.
    pub subtask: u32,
    /// Parallelism then.
    pub parallelism: u32,
    /// The checkpoint.
    pub checkpoint_id: u64,
}

/// Commits parts by renaming them; see the [module docs](self).
#[derive(Debug, Clone, Default)]
pub struct FileCommitter;

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

fn commit_blocking(committables: &[FileCommittable]) -> Result<()> {
    let mut dirs: Vec<&Path> = Vec::new();
    for c in committables {
        let from = c.dir.join(&c.in_progress);
        let to = c.dir.join(&c.final_name);
        match fs::rename(&from, &to) {
            Ok(()) => debug!(part = %to.display(), "part committed"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if !to.exists() {
                    return Err(ConnectorError::Sink(format!(
                        "file sink: part {} is gone: neither {} nor {} exists (deleted by hand, or the directory \
                         is not the one the checkpoint was taken with)",
                        c.final_name,
                        from.display(),
                        to.display()
                    )));
                }
            }
            Err(e) => return Err(io_error(&format!("renaming {} to {}", from.display(), to.display()), e)),
        }
        if !dirs.contains(&c.dir.as_path()) {
            dirs.push(&c.dir);
        }
    }
    for d in dirs {
        fsync_dir(d).map_err(|e| io_error(&format!("fsync of {}", d.display()), e))?;
    }
    Ok(())
}

impl SinkCommitter<FileCommittable> for FileCommitter {
    async fn commit(&self, committables: &[FileCommittable]) -> Result<()> {
        if committables.is_empty() {
            return Ok(());
        }
        let owned = committables.to_vec();
        tokio::task::spawn_blocking(move || commit_blocking(&owned))
            .await
            .map_err(|e| ConnectorError::Sink(format!("file sink: the commit task failed: {e}")))?
    }
}

/// The open part of a writer.
struct OpenPart {
    file: BufWriter<File>,
    part: FileCommittable,
    bytes: u64,
}

/// Writes the parts of one subtask; see the [module docs](self).
pub struct FileSinkWriter<T> {
    shared: Arc<Shared<T>>,
    subtask: u32,
    parallelism: u32,
    last_checkpoint: u64,
    next_part: u32,
    open: Option<OpenPart>,
    /// Parts rolled (closed and synced) since the last pre-commit.
    rolled: Vec<FileCommittable>,
    buf: Vec<u8>,
}

impl<T> fmt::Debug for FileSinkWriter<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileSinkWriter")
            .field("dir", &self.shared.dir)
            .field("subtask", &self.subtask)
            .field("last_checkpoint", &self.last_checkpoint)
            .field("open", &self.open.as_ref().map(|o| &o.part.in_progress))
            .field("rolled", &self.rolled.len())
            .finish_non_exhaustive()
    }
}

impl<T> FileSinkWriter<T> {
    /// The in-progress name prefix of this subtask's parts: `.<prefix>-<subtask>-`.
    fn hidden_prefix(shared: &Shared<T>, subtask: u32) -> String {
        format!(".{}-{subtask}-", shared.prefix)
    }

    fn open_part(&mut self) -> Result<&mut OpenPart> {
        if self.open.is_none() {
            let c = self.last_checkpoint + 1;
            let n = self.next_part;
            self.next_part += 1;
            let final_name = format!("{}-{}-{c}-{n}{}", self.shared.prefix, self.subtask, self.shared.suffix);
            let in_progress = format!(".{final_name}.inprogress");
            let path = self.shared.dir.join(&in_progress);
            let file = OpenOptions::new()
                .write(true)
                // Never over another run's part: recovery deleted every leftover of this subtask.
                .create_new(true)
                .open(&path)
                .map_err(|e| io_error(&format!("creating {}", path.display()), e))?;
            self.open = Some(OpenPart {
                file: BufWriter::with_capacity(64 * 1024, file),
                part: FileCommittable {
                    dir: self.shared.dir.clone(),
                    in_progress,
                    final_name,
                },
                bytes: 0,
            });
        }
        self.open
            .as_mut()
            .ok_or_else(|| ConnectorError::Sink("file sink: no open part".into()))
    }

    /// Flushes, syncs and closes the open part, which joins the parts of the next pre-commit.
    async fn roll(&mut self) -> Result<()> {
        let Some(open) = self.open.take() else { return Ok(()) };
        let OpenPart { file, part, .. } = open;
        let name = part.in_progress.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()
        })
        .await
        .map_err(|e| ConnectorError::Sink(format!("file sink: the sync task failed: {e}")))?
        .map_err(|e| io_error(&format!("writing {name}"), e))?;
        self.rolled.push(part);
        Ok(())
    }

    /// Deletes the open part and the rolled ones (not pre-committed).
    fn discard(&mut self) {
        let open = self.open.take().map(|o| o.part);
        for part in open.into_iter().chain(self.rolled.drain(..)) {
            let path = part.dir.join(&part.in_progress);
            if let Err(e) = fs::remove_file(&path) {
                warn!(part = %path.display(), error = %e, "file sink: could not delete an aborted part");
            }
        }
    }
}

impl<T: Send + Sync + 'static> TwoPhaseCommitSink<T> for FileSink<T> {
    type Committable = FileCommittable;
    type WriterState = FileWriterState;
    type Committer = FileCommitter;
    type Writer = FileSinkWriter<T>;

    async fn restore_writer(
        &self,
        subtask: u32,
        parallelism: u32,
        restore: &SinkRestore<FileCommittable, FileWriterState>,
    ) -> Result<FileSinkWriter<T>> {
        if parallelism == 0 || subtask >= parallelism {
            return Err(ConnectorError::Config(format!(
                "subtask {subtask} of parallelism {parallelism}: need 0 <= subtask < parallelism"
            )));
        }
        // 1. What the checkpoint pre-committed becomes visible.
        FileCommitter.commit(&restore.committables).await?;
        // 2. What a crashed run of this subtask, or of an old subtask whose state it takes
        //    over after a rescale, wrote after the checkpoint is deleted.
        let dir = self.shared.dir.clone();
        let mut owned: Vec<u32> = restore.writer_states.iter().map(|s| s.subtask).collect();
        owned.push(subtask);
        owned.sort_unstable();
        owned.dedup();
        let hidden: Vec<String> = owned
            .iter()
            .map(|s| FileSinkWriter::hidden_prefix(&self.shared, *s))
            .collect();
        let removed = tokio::task::spawn_blocking(move || -> Result<Vec<String>> {
            let mut removed = Vec::new();
            let entries = fs::read_dir(&dir).map_err(|e| io_error(&format!("listing {}", dir.display()), e))?;
            for entry in entries {
                let entry = entry.map_err(|e| io_error(&format!("listing {}", dir.display()), e))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if hidden.iter().any(|h| name.starts_with(h.as_str())) && name.ends_with(".inprogress") {
                    fs::remove_file(entry.path()).map_err(|e| io_error(&format!("deleting {name}"), e))?;
                    removed.push(name);
                }
            }
            if !removed.is_empty() {
                fsync_dir(&dir).map_err(|e| io_error(&format!("fsync of {}", dir.display()), e))?;
            }
            Ok(removed)
        })
        .await
        .map_err(|e| ConnectorError::Sink(format!("file sink: the recovery task failed: {e}")))??;
        if !removed.is_empty() {
            info!(subtask, parts = ?removed, "file sink: deleted parts a previous run left in progress");
        }
        Ok(FileSinkWriter {
            shared: self.shared.clone(),
            subtask,
            parallelism,
            last_checkpoint: restore.checkpoint_id.unwrap_or(0),
            next_part: 0,
            open: None,
            rolled: Vec::new(),
            buf: Vec::with_capacity(1024),
        })
    }
}

impl<T: Send + Sync + 'static> SinkWriter<T> for FileSinkWriter<T> {
    type Committable = FileCommittable;
    type WriterState = FileWriterState;
    type Committer = FileCommitter;

    async fn write(&mut self, element: &T, _timestamp: Option<i64>) -> Result<()> {
        self.buf.clear();
        (self.shared.encoder)(element, &mut self.buf);
        let max = self.shared.max_part_size;
        let mut buf = std::mem::take(&mut self.buf);
        let written = self.open_part().and_then(|open| {
            open.file
                .write_all(&buf)
                .map_err(|e| io_error(&format!("writing {}", open.part.in_progress), e))?;
            open.bytes += buf.len() as u64;
            Ok(open.bytes >= max)
        });
        buf.clear();
        self.buf = buf;
        if written? {
            self.roll().await?;
        }
        Ok(())
    }

    async fn pre_commit(&mut self, checkpoint_id: u64) -> Result<Vec<FileCommittable>> {
        if checkpoint_id <= self.last_checkpoint {
            return Err(ConnectorError::Config(format!(
                "checkpoint ids must increase: pre_commit({checkpoint_id}) after checkpoint {}",
                self.last_checkpoint
            )));
        }
        self.roll().await?;
        let parts = std::mem::take(&mut self.rolled);
        if !parts.is_empty() {
            // The in-progress entries themselves must survive a crash until committed.
            let dir = self.shared.dir.clone();
            tokio::task::spawn_blocking(move || fsync_dir(&dir))
                .await
                .map_err(|e| ConnectorError::Sink(format!("file sink: the sync task failed: {e}")))?
                .map_err(|e| io_error(&format!("fsync of {}", self.shared.dir.display()), e))?;
        }
        self.last_checkpoint = checkpoint_id;
        self.next_part = 0;
        Ok(parts)
    }

    fn snapshot_state(&self, checkpoint_id: u64) -> FileWriterState {
        FileWriterState {
            subtask: self.subtask,
            parallelism: self.parallelism,
            checkpoint_id,
        }
    }

    fn committer(&self) -> FileCommitter {
        FileCommitter
    }

    fn delivery_guarantee(&self) -> DeliveryGuarantee {
        DeliveryGuarantee::ExactlyOnce
    }

    async fn close(mut self) -> Result<()> {
        // Anything written after the last pre-commit was never part of a checkpoint.
        self.discard();
        Ok(())
    }

    async fn abort(mut self) -> Result<()> {
        self.discard();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(s: &String, buf: &mut Vec<u8>) {
        buf.extend_from_slice(s.as_bytes());
        buf.push(b'\n');
    }

    /// A fresh directory under the system's temporary one, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let p = std::env::temp_dir().join(format!("strom-file-sink-{tag}-{}-{nanos}", std::process::id()));
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }

        fn path(&self) -> &Path {
            &self.0
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[tokio::test]
    async fn parts_are_hidden_until_committed_and_leftovers_are_deleted_on_restore() {
        let dir = TempDir::new("parts");
        let sink = FileSink::for_row_format(dir.path(), lines)
            .part_suffix(".txt")
            .max_part_size(10)
            .build()
            .unwrap();
        let mut w = sink.restore_writer(0, 2, &SinkRestore::default()).await.unwrap();
        for s in ["aaaa", "bbbb", "cccc"] {
            w.write(&s.to_string(), None).await.unwrap();
        }
        // "aaaa\nbbbb\n" filled part 0 (10 bytes), "cccc\n" is in part 1.
        let c1 = w.pre_commit(1).await.unwrap();
        assert_eq!(
            c1.iter().map(|c| c.final_name.as_str()).collect::<Vec<_>>(),
            ["part-0-1-0.txt", "part-0-1-1.txt"]
        );
        assert_eq!(
            listing(dir.path()),
            [".part-0-1-0.txt.inprogress", ".part-0-1-1.txt.inprogress"]
        );
        w.committer().commit(&c1).await.unwrap();
        w.committer().commit(&c1).await.unwrap(); // idempotent
        assert_eq!(listing(dir.path()), ["part-0-1-0.txt", "part-0-1-1.txt"]);
        assert_eq!(
            fs::read_to_string(dir.path().join("part-0-1-0.txt")).unwrap(),
            "aaaa\nbbbb\n"
        );

        // Checkpoint 2 is pre-committed and stored, then the process dies before its commit,
        // with more written after it.
        w.write(&"dddd".to_string(), None).await.unwrap();
        let c2 = w.pre_commit(2).await.unwrap();
        w.write(&"eeee".to_string(), None).await.unwrap();
        w.roll().await.unwrap();
        assert!(w.pre_commit(2).await.is_err(), "ids must increase");
        drop(w);
        // Another subtask's in-progress part is not this subtask's to delete...
        fs::write(dir.path().join(".part-1-3-0.txt.inprogress"), "other").unwrap();
        let restore = SinkRestore::new(2, c2.clone(), vec![]);
        let w = sink.restore_writer(0, 2, &restore).await.unwrap();
        assert_eq!(
            listing(dir.path()),
            [
                ".part-1-3-0.txt.inprogress",
                "part-0-1-0.txt",
                "part-0-1-1.txt",
                "part-0-2-0.txt"
            ],
            "checkpoint 2 committed, the part written after it deleted"
        );
        assert_eq!(fs::read_to_string(dir.path().join("part-0-2-0.txt")).unwrap(), "dddd\n");
        // ... unless it takes over that subtask's state (a rescale 2 -> 1).
        let state1 = FileWriterState {
            subtask: 1,
            parallelism: 2,
            checkpoint_id: 2,
        };
        let taken = SinkRestore::new(2, vec![], vec![state1]);
        drop(sink.restore_writer(0, 1, &taken).await.unwrap());
        assert!(!listing(dir.path()).iter().any(|n| n.starts_with(".part-1-")));
        // A part that is gone from both places is an error naming it.
        fs::remove_file(dir.path().join("part-0-2-0.txt")).unwrap();
        let e = FileCommitter.commit(&c2).await.unwrap_err();
        assert!(e.to_string().contains("part-0-2-0.txt is gone"), "{e}");
        // Aborting discards what was not pre-committed.
        let mut w = w;
        w.write(&"ffff".to_string(), None).await.unwrap();
        w.abort().await.unwrap();
        assert!(!listing(dir.path()).iter().any(|n| n.starts_with(".part-0-")));
    }

    #[test]
    fn builder_refuses_bad_names() {
        let dir = TempDir::new("names");
        for prefix in ["", "a/b", ".x", "a-b"] {
            let e = FileSink::for_row_format(dir.path(), lines)
                .part_prefix(prefix)
                .build()
                .unwrap_err();
            assert!(e.to_string().contains("prefix"), "{e}");
        }
        let e = FileSink::for_row_format(dir.path(), lines)
            .part_suffix(".inprogress")
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("suffix"), "{e}");
        let e = FileSink::for_row_format(dir.path(), lines)
            .max_part_size(0)
            .build()
            .unwrap_err();
        assert!(e.to_string().contains("max_part_size"), "{e}");
        let s = FileSink::for_row_format(dir.path(), lines).build().unwrap();
        assert!(format!("{s:?}").contains("part"));
        assert_eq!(s.dir(), dir.path());
    }
}
