//! Commits and offset lookups of a [`Consumer`], and the auto-commit it runs from `poll`.

use std::collections::BTreeMap;
use tokio::time::Instant;

use tracing::warn;

use super::handle::{CommitFuture, ConsumerHandle, Control};
use super::kafka_consumer::Consumer;
use super::member::{CommitIdentity, Member};
use super::offsets::do_commit;
use super::record::{OffsetAndMetadata, OffsetAndTimestamp};
use super::state::Subscription;
use crate::admin::OffsetSpec;
use crate::error::{Error, Result};
use crate::topic_partition::TopicPartition;

impl Consumer {
    /// Offsets by timestamp: for each partition the first offset whose timestamp is at
    /// least the given one, `None` when no record is that recent.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; nothing in the consumer
    /// changes.
    pub async fn offsets_for_times(
        &self,
        times: &BTreeMap<TopicPartition, i64>,
    ) -> Result<BTreeMap<TopicPartition, Option<OffsetAndTimestamp>>> {
        let mut out = BTreeMap::new();
        for (tp, ts) in times {
            if *ts < 0 {
                return Err(Error::config(format!(
                    "offsets_for_times: negative timestamp {ts} for {tp}"
                )));
            }
            // Under read_committed the answer stops at the last stable offset, as Java's.
            let o = crate::lookup::list_offsets(
                &self.client,
                &tp.topic,
                &[tp.partition],
                OffsetSpec::Timestamp(*ts),
                self.read_committed(),
            )
            .await?;
            let found = o.first().filter(|o| o.offset >= 0).map(|o| OffsetAndTimestamp {
                offset: o.offset,
                timestamp: o.timestamp,
                leader_epoch: (o.leader_epoch >= 0).then_some(o.leader_epoch),
            });
            out.insert(tp.clone(), found);
        }
        Ok(out)
    }

    /// First offsets of these partitions.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; nothing in the consumer
    /// changes.
    pub async fn beginning_offsets(&self, partitions: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        self.list(partitions, OffsetSpec::Earliest, false).await
    }

    /// End offsets of these partitions: the high watermark, or the last stable offset under
    /// read_committed (as Java's `endOffsets`).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; nothing in the consumer
    /// changes.
    pub async fn end_offsets(&self, partitions: &[TopicPartition]) -> Result<BTreeMap<TopicPartition, i64>> {
        self.list(partitions, OffsetSpec::Latest, self.read_committed()).await
    }

    pub(super) async fn list(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
        read_committed: bool,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            by_topic.entry(&tp.topic).or_default().push(tp.partition);
        }
        let mut out = BTreeMap::new();
        for (topic, parts) in by_topic {
            for o in crate::lookup::list_offsets(&self.client, topic, &parts, spec, read_committed).await? {
                out.insert(TopicPartition::new(topic, o.partition), o.offset);
            }
        }
        Ok(out)
    }

    /// The group's committed offsets of these partitions (absent when none).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; nothing in the consumer
    /// changes.
    pub async fn committed(
        &self,
        partitions: &[TopicPartition],
    ) -> Result<BTreeMap<TopicPartition, OffsetAndMetadata>> {
        let group = self.group_id()?;
        let who = self.identity();
        crate::lookup::committed_offsets(
            &self.client,
            crate::lookup::OffsetFetch {
                group,
                partitions: Some(partitions),
                member: Some((&who.member_id, who.generation_or_epoch)),
                require_stable: true,
            },
        )
        .await
    }

    pub(super) fn group_id(&self) -> Result<&str> {
        self.config
            .group_id
            .as_deref()
            .ok_or_else(|| Error::config("committing or reading committed offsets needs group.id"))
    }

    /// The positions of every assigned partition with a known position, as offsets to
    /// commit: what poll (or a stream) has handed out so far, never records still waiting
    /// in the consumer.
    pub fn consumed_offsets(&self) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        let mut out: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
        for r in &self.undelivered {
            out.entry(r.topic_partition()).or_insert_with(|| OffsetAndMetadata {
                offset: r.offset,
                leader_epoch: r.leader_epoch,
                metadata: String::new(),
            });
        }
        for (tp, s) in &self.assignment {
            if out.contains_key(tp) {
                continue;
            }
            if let Some(p) = s.position {
                out.insert(
                    tp.clone(),
                    OffsetAndMetadata {
                        offset: p,
                        leader_epoch: s.epoch,
                        metadata: String::new(),
                    },
                );
            }
        }
        out.retain(|tp, _| self.assignment.contains_key(tp));
        out
    }

    /// Commits the positions of all assigned partitions and waits.
    ///
    /// Cancellation-safe: a dropped call leaves the group's committed offsets as they were or as
    /// asked, never anything else (the commit may still land); commit again to be sure.
    pub async fn commit_sync(&mut self) -> Result<()> {
        let offsets = self.consumed_offsets();
        self.commit_offsets_sync(&offsets).await
    }

    /// Commits these offsets and waits. Fails with ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID,
    /// REBALANCE_IN_PROGRESS or FENCED_INSTANCE_ID when the group moved on (the partitions
    /// may be someone else's by now).
    ///
    /// Cancellation-safe: a dropped call leaves the group's committed offsets as they were or as
    /// asked, never anything else (the commit may still land); commit again to be sure.
    pub async fn commit_offsets_sync(&mut self, offsets: &BTreeMap<TopicPartition, OffsetAndMetadata>) -> Result<()> {
        let group = self.group_id()?.to_owned();
        let member = self.group.as_ref().map(|g| g.shared());
        let standalone = CommitIdentity::standalone();
        let who = match &member {
            Some(m) => Member::Group(m),
            None => Member::Fixed(&standalone),
        };
        do_commit(&self.client, &group, who, offsets, &self.counters).await
    }

    /// Commits the positions of all assigned partitions in the background; the returned
    /// handle yields the outcome. Commits are sent in call order.
    pub fn commit_async(&mut self) -> Result<CommitFuture> {
        let offsets = self.consumed_offsets();
        self.commit_offsets_async(offsets)
    }

    /// Commits these offsets in the background.
    pub fn commit_offsets_async(
        &mut self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
    ) -> Result<CommitFuture> {
        let group = self.group_id()?.to_owned();
        let member = self.group.as_ref().map(|g| g.shared());
        let client = self.client.clone();
        let counters = self.counters.clone();
        Ok(CommitFuture::spawn(async move {
            let standalone = CommitIdentity::standalone();
            let who = match &member {
                Some(m) => Member::Group(m),
                None => Member::Fixed(&standalone),
            };
            do_commit(&client, &group, who, &offsets, &counters).await
        }))
    }

    /// A handle that commits, seeks, pauses and resumes for this consumer while it is
    /// borrowed elsewhere (by [`Consumer::stream`], or from another task). Needs `group.id`
    /// (for commits), and `subscribe()` or `assign()` first: it commits as the group member
    /// (its generation, read at each commit) or, for a manual assignment, standalone.
    pub fn handle(&self) -> Result<ConsumerHandle> {
        let group = self.group_id()?.to_owned();
        let member = match (&self.group, &self.subscription) {
            (Some(g), _) => Some(g.shared()),
            (None, Subscription::Assigned) => None,
            (None, _) => {
                return Err(Error::illegal_state(
                    "handle(): call subscribe() or assign() first (a commit needs the member identity)",
                ))
            }
        };
        Ok(ConsumerHandle {
            client: self.client.clone(),
            group,
            member,
            counters: self.counters.clone(),
            controls: self.controls.clone(),
        })
    }

    /// Applies what handles queued (seeks, pauses, resumes), in the order they were asked.
    pub(super) fn apply_controls(&mut self) {
        for c in self.controls.take() {
            let r = match &c {
                Control::Seek(tp, offset) => self.seek(tp, *offset),
                Control::Reset(tps, reset) => self.seek_reset(tps, *reset),
                Control::Pause(tps) => self.pause(tps),
                Control::Resume(tps) => self.resume(tps),
            };
            if let Err(e) = r {
                warn!(error = %e, control = ?c, "a consumer handle's request skipped");
            }
        }
    }

    pub(super) fn maybe_auto_commit(&mut self) {
        if !self.config.enable_auto_commit || self.group.is_none() || self.config.group_id.is_none() {
            return;
        }
        if self.last_auto_commit.elapsed() < self.config.auto_commit_interval {
            return;
        }
        if self.auto_commit_task.as_ref().is_some_and(|t| !t.is_finished()) {
            return;
        }
        self.last_auto_commit = Instant::now();
        let committed = self.last_committed();
        let offsets: BTreeMap<TopicPartition, OffsetAndMetadata> = self
            .consumed_offsets()
            .into_iter()
            .filter(|(tp, o)| committed.get(tp) != Some(&o.offset))
            .collect();
        if offsets.is_empty() {
            return;
        }
        match self.commit_offsets_async(offsets) {
            Ok(t) => self.auto_commit_task = Some(t),
            Err(e) => warn!(error = %e, "auto-commit not sent"),
        }
    }
}
