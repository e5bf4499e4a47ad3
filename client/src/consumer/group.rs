//! What a consumer and its group membership say to each other: the application's
//! [`RebalanceListener`] and its [`RebalanceContext`], the [`GroupEvent`]s the membership
//! task sends (partitions revoked, assigned, lost; a fatal error), the [`GroupControl`]s it
//! takes (a new subscription, leave), and [`GroupHandle`], the consumer's end of the task.
//!
//! The membership itself (both protocols) is `membership/`: a sans-IO core and the task
//! that drives it. Assignment changes reach the consumer as events its next `poll` applies
//! (running the listener and committing before partitions go); the task waits for the
//! acknowledgement, heartbeating meanwhile, as Java's heartbeat thread does.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use tokio::sync::{mpsc, oneshot};

use super::member::{CommitIdentity, GroupShared};
use super::record::OffsetAndMetadata;
use super::state::{PartitionState, Subscription};
use crate::error::Error;
use crate::topic_partition::TopicPartition;

/// Told when partitions come and go in a group rebalance. Runs inside `poll`, so the
/// consumer's state is consistent; commits and seeks are asked for through the context and
/// done before the rebalance continues.
pub trait RebalanceListener: Send {
    /// These partitions are about to go to other members: the last chance to commit.
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition], ctx: &mut RebalanceContext) {
        let _ = (partitions, ctx);
    }

    /// These partitions now belong to this member (positions: committed offsets, unless
    /// the listener seeks).
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition], ctx: &mut RebalanceContext) {
        let _ = (partitions, ctx);
    }

    /// These partitions were already given to others (the member fell out of the group):
    /// committing them would fail. Defaults to `on_partitions_revoked`, as in Java.
    fn on_partitions_lost(&mut self, partitions: &[TopicPartition], ctx: &mut RebalanceContext) {
        self.on_partitions_revoked(partitions, ctx);
    }
}

/// What a [`RebalanceListener`] can see and ask for.
#[derive(Debug)]
pub struct RebalanceContext {
    positions: BTreeMap<TopicPartition, (Option<i64>, Option<i32>)>,
    commits: BTreeMap<TopicPartition, OffsetAndMetadata>,
    seeks: Vec<(TopicPartition, i64)>,
}

impl RebalanceContext {
    pub(crate) fn new(assignment: &BTreeMap<TopicPartition, PartitionState>) -> Self {
        RebalanceContext {
            positions: assignment
                .iter()
                .map(|(tp, s)| (tp.clone(), (s.position, s.epoch)))
                .collect(),
            commits: BTreeMap::new(),
            seeks: Vec::new(),
        }
    }

    /// The position (next offset poll returns) of an assigned partition, when known.
    pub fn position(&self, tp: &TopicPartition) -> Option<i64> {
        self.positions.get(tp).and_then(|p| p.0)
    }

    /// Commits these offsets (synchronously, before the rebalance continues).
    pub fn commit(&mut self, offsets: BTreeMap<TopicPartition, OffsetAndMetadata>) {
        self.commits.extend(offsets);
    }

    /// Commits the current positions of these partitions.
    pub fn commit_positions(&mut self, partitions: &[TopicPartition]) {
        for tp in partitions {
            if let Some((Some(p), epoch)) = self.positions.get(tp) {
                self.commits.insert(
                    tp.clone(),
                    OffsetAndMetadata {
                        offset: *p,
                        leader_epoch: *epoch,
                        metadata: String::new(),
                    },
                );
            }
        }
    }

    /// Starts reading `tp` from `offset` (for newly assigned partitions).
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) {
        self.seeks.push((tp.clone(), offset));
    }

    pub(crate) fn into_parts(self) -> (BTreeMap<TopicPartition, OffsetAndMetadata>, Vec<(TopicPartition, i64)>) {
        (self.commits, self.seeks)
    }
}

/// From the membership task to the consumer.
#[derive(Debug)]
pub(crate) enum GroupEvent {
    /// Give these up (commit first); answer when done.
    Revoke(Vec<TopicPartition>, oneshot::Sender<()>),
    /// These are already someone else's: drop them without committing.
    Lost(Vec<TopicPartition>, oneshot::Sender<()>),
    /// These are now ours.
    Assign(Vec<TopicPartition>, oneshot::Sender<()>),
    /// Membership cannot continue (fenced static member, authorization, bad config).
    Fatal(Error),
}

/// From the consumer to the membership task.
#[derive(Debug)]
pub(crate) enum GroupControl {
    Subscribe(Subscription),
    Leave(oneshot::Sender<()>),
}

/// The consumer's end of a membership task.
#[derive(Debug)]
pub(crate) struct GroupHandle {
    pub(crate) events: mpsc::UnboundedReceiver<GroupEvent>,
    control: mpsc::UnboundedSender<GroupControl>,
    shared: Arc<GroupShared>,
    task: tokio::task::JoinHandle<()>,
    /// `leave` ran (close or unsubscribe): nothing left for `drop` to do.
    left: bool,
}

/// How long a consumer dropped without `close()` is given to leave its group.
const LEAVE_ON_DROP_LIMIT: Duration = Duration::from_secs(10);

impl GroupHandle {
    /// The member's shared state (its commit identity), for a [`crate::Committer`].
    pub(crate) fn shared(&self) -> Arc<GroupShared> {
        self.shared.clone()
    }

    pub(crate) fn new(
        events: mpsc::UnboundedReceiver<GroupEvent>,
        control: mpsc::UnboundedSender<GroupControl>,
        shared: Arc<GroupShared>,
        task: tokio::task::JoinHandle<()>,
    ) -> Self {
        GroupHandle {
            events,
            control,
            shared,
            task,
            left: false,
        }
    }

    pub(crate) fn identity(&self) -> CommitIdentity {
        self.shared.identity()
    }

    pub(crate) fn note_poll(&self) {
        if let Ok(mut t) = self.shared.last_poll.lock() {
            *t = Instant::now();
        }
        self.shared.polled.notify_waiters();
    }

    pub(crate) fn change_subscription(&self, sub: Subscription) {
        let _ = self.control.send(GroupControl::Subscribe(sub));
    }

    /// Leaves the group and stops the task (bounded by the request timeout).
    pub(crate) async fn leave(mut self) {
        let (tx, rx) = oneshot::channel();
        if self.control.send(GroupControl::Leave(tx)).is_ok() {
            // Answer revocations the task may be waiting on while it winds down.
            let wait = async {
                tokio::pin!(rx);
                loop {
                    tokio::select! {
                        _ = &mut rx => return,
                        ev = self.events.recv() => match ev {
                            Some(GroupEvent::Revoke(_, done) | GroupEvent::Lost(_, done) | GroupEvent::Assign(_, done)) => {
                                let _ = done.send(());
                            }
                            Some(GroupEvent::Fatal(_)) => {}
                            None => return,
                        },
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(30), wait).await;
        }
        self.left = true;
        self.task.abort();
    }
}

impl Drop for GroupHandle {
    fn drop(&mut self) {
        if self.left {
            return;
        }
        // Dropped without close(): leave the group anyway, as librdkafka does when a consumer
        // is destroyed, so the group rebalances now rather than after session.timeout.ms.
        // The control channel closes with this handle and the membership task takes that as
        // "leave" (LeaveGroup, or for KIP-848 a heartbeat with epoch -1, each bounded to 5 s);
        // revocations it may wait for are answered by the closed event channel. A task stuck
        // elsewhere is aborted after LEAVE_ON_DROP_LIMIT. Without a runtime it is aborted now
        // (the old crash-like behaviour).
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                let abort = self.task.abort_handle();
                rt.spawn(async move {
                    tokio::time::sleep(LEAVE_ON_DROP_LIMIT).await;
                    abort.abort();
                });
            }
            Err(_) => self.task.abort(),
        }
    }
}
