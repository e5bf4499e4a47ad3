//! Who a consumer is in its group, shared by the consumer, its membership task and its
//! commits: the member's identity (generation or epoch, member id, instance id) and the
//! partitions it owns.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use tokio::time::Instant;

use tokio::sync::Notify;

use super::record::OffsetAndMetadata;
use crate::topic_partition::TopicPartition;

/// Who commits: the member's identity in its group generation. Generation -1 and an empty
/// member id commit as a standalone consumer (assign mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CommitIdentity {
    pub(crate) generation_or_epoch: i32,
    pub(crate) member_id: String,
    pub(crate) group_instance_id: Option<String>,
}

impl CommitIdentity {
    pub(crate) fn standalone() -> Self {
        CommitIdentity {
            generation_or_epoch: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// State shared between the consumer and its membership task.
#[derive(Debug)]
pub(crate) struct GroupShared {
    pub(crate) identity: Mutex<CommitIdentity>,
    /// The partitions the member owns (a revoked one until the application acknowledged
    /// it): a commit refused for a stale KIP-848 epoch is retried under the new epoch only
    /// for these.
    pub(crate) owned: Mutex<BTreeSet<TopicPartition>>,
    pub(crate) last_poll: Mutex<Instant>,
    pub(crate) polled: Notify,
}

impl GroupShared {
    pub(crate) fn new(instance_id: Option<String>) -> Self {
        GroupShared {
            identity: Mutex::new(CommitIdentity {
                group_instance_id: instance_id,
                ..CommitIdentity::standalone()
            }),
            owned: Mutex::new(BTreeSet::new()),
            last_poll: Mutex::new(Instant::now()),
            polled: Notify::new(),
        }
    }

    pub(crate) fn set_identity(&self, generation_or_epoch: i32, member_id: &str) {
        if let Ok(mut id) = self.identity.lock() {
            id.generation_or_epoch = generation_or_epoch;
            id.member_id = member_id.to_owned();
        }
    }

    pub(crate) fn identity(&self) -> CommitIdentity {
        self.identity
            .lock()
            .map(|i| i.clone())
            .unwrap_or_else(|_| CommitIdentity::standalone())
    }

    pub(crate) fn set_owned(&self, owned: &BTreeSet<TopicPartition>) {
        if let Ok(mut o) = self.owned.lock() {
            o.clone_from(owned);
        }
    }

    /// Whether the member still owns every one of `partitions`.
    pub(crate) fn owns_all<'a>(&self, mut partitions: impl Iterator<Item = &'a TopicPartition>) -> bool {
        self.owned
            .lock()
            .map(|o| partitions.all(|tp| o.contains(tp)))
            .unwrap_or(false)
    }

    /// When the application last polled.
    pub(crate) fn last_poll(&self) -> Instant {
        self.last_poll.lock().map(|t| *t).unwrap_or_else(|p| *p.into_inner())
    }
}

/// Who commits: a group member (its identity read at each attempt) or a fixed identity
/// (standalone, assign mode).
#[derive(Clone, Copy)]
pub(crate) enum Member<'a> {
    Group(&'a GroupShared),
    Fixed(&'a CommitIdentity),
}

impl Member<'_> {
    pub(super) fn identity(&self) -> CommitIdentity {
        match self {
            Member::Group(g) => g.identity(),
            Member::Fixed(w) => (*w).clone(),
        }
    }

    /// The member's identity once its epoch moved past `sent`'s, if it still owns every
    /// partition of `offsets` then; `None` when it left the group, lost one of them, or the
    /// epoch did not move before `deadline`.
    pub(super) async fn next_epoch(
        &self,
        sent: &CommitIdentity,
        offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>,
        deadline: Instant,
        backoff: std::time::Duration,
    ) -> Option<CommitIdentity> {
        let Member::Group(g) = self else { return None };
        loop {
            let now = g.identity();
            if now.generation_or_epoch <= 0 || now.member_id != sent.member_id {
                return None;
            }
            if now.generation_or_epoch != sent.generation_or_epoch {
                return g.owns_all(offsets.keys()).then_some(now);
            }
            if Instant::now() + backoff >= deadline {
                return None;
            }
            tokio::time::sleep(backoff).await;
        }
    }
}
