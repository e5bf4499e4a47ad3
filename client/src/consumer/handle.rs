//! Reaching a consumer from elsewhere: the outcome of a background commit, and a
//! [`ConsumerHandle`] that commits, seeks, pauses and resumes while a stream borrows it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use super::member::{CommitIdentity, GroupShared, Member};
use super::offsets::do_commit;
use super::record::{ConsumerRecord, OffsetAndMetadata};
use super::state::SharedCounters;
use crate::client::Client;
use crate::error::{Error, Result};
use crate::role_config::OffsetReset;
use crate::topic_partition::TopicPartition;

/// The outcome of an asynchronous commit ([`Consumer::commit_async`](crate::Consumer::commit_async)). The commit runs in
/// the background: dropping this does not cancel it, only the chance to see how it ended.
#[derive(Debug)]
#[must_use = "a commit's failure is only seen by awaiting its CommitFuture"]
pub struct CommitFuture {
    task: tokio::task::JoinHandle<Result<()>>,
}

impl CommitFuture {
    pub(super) fn spawn(f: impl std::future::Future<Output = Result<()>> + Send + 'static) -> Self {
        CommitFuture { task: tokio::spawn(f) }
    }

    /// The commit has finished (awaiting this returns at once).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl std::future::Future for CommitFuture {
    type Output = Result<()>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<Result<()>> {
        std::pin::Pin::new(&mut self.task)
            .poll(cx)
            .map(|r| r.unwrap_or_else(|e| Err(Error::internal(format!("the commit task failed: {e}")))))
    }
}

/// Controls a [`Consumer`](crate::Consumer) from anywhere, e.g. while its [`Consumer::stream`](crate::Consumer::stream) borrows it or
/// from another task: commits, seeks, pause and resume. A cheap, cloneable handle with the
/// consumer's group and (current) member identity, as Java's `commitAsync` and `seek` from
/// a callback. Get one with [`Consumer::handle`](crate::Consumer::handle) after `subscribe` or `assign`.
///
/// Commits go to the group coordinator at once. Seeks, pauses and resumes are queued and
/// applied by the consumer before it hands out its next record (a stream waiting for data
/// wakes for them); records it had buffered for a partition that is moved are dropped, as
/// with [`Consumer::seek`](crate::Consumer::seek).
///
/// ```no_run
/// # async fn demo(mut consumer: strom_client::Consumer) -> strom_client::Result<()> {
/// use futures_util::StreamExt;
/// let handle = consumer.handle()?;
/// let mut records = std::pin::pin!(consumer.stream());
/// while let Some(record) = records.next().await {
///     let record = record?;
///     if record.value.is_none() {
///         // e.g. replay this partition from the start
///         handle.seek_to_beginning(&[record.topic_partition()]);
///         continue;
///     }
///     // ... process it, then mark it done:
///     handle.commit_record(&record).await?;
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ConsumerHandle {
    pub(super) client: Client,
    pub(super) group: String,
    /// The member's identity, read at each commit (it changes with every rebalance);
    /// `None` for a manual assignment (standalone commits).
    pub(super) member: Option<Arc<GroupShared>>,
    pub(super) counters: Arc<SharedCounters>,
    pub(super) controls: Arc<Controls>,
}

/// Seeks, pauses and resumes queued by a [`ConsumerHandle`] for the consumer to apply.
#[derive(Debug, Default)]
pub(crate) struct Controls {
    pub(crate) queue: Mutex<Vec<Control>>,
    /// Something is queued: read per record handed out, so the lock is taken only then.
    pub(crate) queued: std::sync::atomic::AtomicBool,
    /// Wakes a `poll` or stream waiting for records.
    pub(crate) wake: tokio::sync::Notify,
    /// The consumer was closed or dropped: handles' commits fail with `ErrorKind::Closed`.
    pub(crate) closed: std::sync::atomic::AtomicBool,
}

/// Marks the consumer's [`Controls`] closed when the consumer goes away (closed or dropped).
#[derive(Debug)]
pub(super) struct ClosedOnDrop(pub(super) Arc<Controls>);

impl Drop for ClosedOnDrop {
    fn drop(&mut self) {
        self.0.closed.store(true, std::sync::atomic::Ordering::Release);
    }
}

#[derive(Debug)]
pub(super) enum Control {
    Seek(TopicPartition, i64),
    Reset(Vec<TopicPartition>, OffsetReset),
    Pause(Vec<TopicPartition>),
    Resume(Vec<TopicPartition>),
}

impl Controls {
    pub(super) fn push(&self, c: Control) {
        self.queue.lock().unwrap_or_else(|p| p.into_inner()).push(c);
        self.queued.store(true, std::sync::atomic::Ordering::Release);
        self.wake.notify_one();
    }

    pub(super) fn take(&self) -> Vec<Control> {
        if !self.queued.swap(false, std::sync::atomic::Ordering::Acquire) {
            return Vec::new();
        }
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl ConsumerHandle {
    /// Commits these offsets (the next offset to read, per partition) and waits.
    ///
    /// Fails with [`ErrorKind::Closed`](crate::ErrorKind::Closed) once the consumer was
    /// closed or dropped (Java's "This consumer has already been closed"): its group
    /// membership is gone, so nothing can be committed in its name.
    ///
    /// Cancellation-safe: a dropped call leaves the group's committed offsets as they were or as
    /// asked, never anything else (the commit may still land); commit again to be sure.
    pub async fn commit(&self, offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>) -> Result<()> {
        if self.controls.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::closed(format!(
                "the consumer of this handle (group {}) was closed or dropped",
                self.group
            )));
        }
        let standalone = CommitIdentity::standalone();
        let who = match &self.member {
            Some(m) => Member::Group(m),
            None => Member::Fixed(&standalone),
        };
        do_commit(&self.client, &self.group, who, offsets, &self.counters).await
    }

    /// Commits the offset after `record` (its partition continues from the next record).
    ///
    /// Cancellation-safe: as [`ConsumerHandle::commit`].
    pub async fn commit_record(&self, record: &ConsumerRecord) -> Result<()> {
        let offsets = BTreeMap::from([(
            record.topic_partition(),
            OffsetAndMetadata {
                offset: record.offset + 1,
                leader_epoch: record.leader_epoch,
                metadata: String::new(),
            },
        )]);
        self.commit(&offsets).await
    }

    /// Moves `tp`'s position to `offset` before the consumer hands out its next record (see
    /// [`Consumer::seek`](crate::Consumer::seek)). A partition the consumer no longer owns by then (a rebalance took
    /// it) is skipped with a warning in the log: its new owner starts from the committed
    /// offset.
    pub fn seek(&self, tp: &TopicPartition, offset: i64) {
        self.controls.push(Control::Seek(tp.clone(), offset));
    }

    /// [`Consumer::seek_to_beginning`](crate::Consumer::seek_to_beginning) from the handle (all assigned partitions when empty).
    pub fn seek_to_beginning(&self, partitions: &[TopicPartition]) {
        self.controls
            .push(Control::Reset(partitions.to_vec(), OffsetReset::Earliest));
    }

    /// [`Consumer::seek_to_end`](crate::Consumer::seek_to_end) from the handle (all assigned partitions when empty).
    pub fn seek_to_end(&self, partitions: &[TopicPartition]) {
        self.controls
            .push(Control::Reset(partitions.to_vec(), OffsetReset::Latest));
    }

    /// [`Consumer::pause`](crate::Consumer::pause) from the handle: no record of these partitions is handed out
    /// after the consumer applies it, until [`ConsumerHandle::resume`].
    pub fn pause(&self, partitions: &[TopicPartition]) {
        self.controls.push(Control::Pause(partitions.to_vec()));
    }

    /// [`Consumer::resume`](crate::Consumer::resume) from the handle.
    pub fn resume(&self, partitions: &[TopicPartition]) {
        self.controls.push(Control::Resume(partitions.to_vec()));
    }
}
