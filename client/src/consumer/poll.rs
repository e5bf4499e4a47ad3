//! A [`Consumer`]'s `poll` and `stream`: group events, position resets, the fetch loop
//! and its outcomes, and the records handed out.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

use futures_util::Stream;
use strom_protocol::ErrorCode;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use super::fetcher::{
    fetch_once, CompletedFetch, FetchOutcome, FetchParams, FetchTally, PartitionErrorAction, PartitionFetch, Wanted,
};
use super::group::{GroupEvent, RebalanceContext, RebalanceListener};
use super::kafka_consumer::Consumer;
use super::record::{ConsumerRecord, OffsetAndMetadata};
use crate::admin::OffsetSpec;
use crate::error::{Error, Result};
use crate::role_config::OffsetReset;
use crate::topic_partition::TopicPartition;

impl Consumer {
    /// Returns up to `max.poll.records` records, waiting up to `timeout` for some. Also
    /// where rebalances reach the application (listener callbacks) and auto-commits happen.
    ///
    /// Cancellation-safe: records taken from the fetch buffer stay in the consumer until a
    /// `poll` returns them, so dropping this future loses none and moves no position.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>> {
        // Boxed: keeps the future of a caller's poll loop shallow (the compiler's layout
        // depth limit); one allocation per poll.
        Box::pin(self.fill_undelivered(timeout)).await?;
        self.apply_controls();
        Ok(self.take_undelivered(self.config.max_poll_records))
    }

    /// The body of `poll`: waits up to `timeout` until records wait in `undelivered` (or an
    /// error is due), without handing any out.
    pub(super) async fn fill_undelivered(&mut self, timeout: Duration) -> Result<()> {
        self.instruments.poll_started(Instant::now());
        let r = self.fill_undelivered_inner(timeout).await;
        self.instruments.poll_ended(Instant::now());
        r
    }

    pub(super) async fn fill_undelivered_inner(&mut self, timeout: Duration) -> Result<()> {
        let deadline = tokio::time::Instant::now() + timeout;
        if let Some(g) = &self.group {
            g.note_poll();
        }
        if self.undelivered.is_empty() {
            if let Some(e) = self.pending_error.take() {
                return Err(e);
            }
        }
        loop {
            self.apply_controls();
            self.handle_group_events()?;
            self.maybe_auto_commit();
            self.update_positions().await?;
            self.drain()?;
            self.send_fetches(deadline).await;
            if !self.undelivered.is_empty() {
                return Ok(());
            }
            if let Some(e) = self.pending_error.take() {
                return Err(e);
            }
            // A broker backed off after an error gets its next fetch when the backoff ends,
            // not at the poll deadline.
            let now = Instant::now();
            let retry_at = self
                .node_backoff
                .values()
                .filter(|t| **t > now)
                .min()
                .map(|t| (*t).min(deadline));
            let events = self.group.as_mut().map(|g| &mut g.events);
            tokio::select! {
                _ = async {
                    match retry_at {
                        Some(t) => tokio::time::sleep_until(t).await,
                        None => std::future::pending().await,
                    }
                } => {}
                o = self.outcome_rx.recv() => {
                    if let Some(o) = o {
                        self.handle_outcome(o);
                        while let Ok(o) = self.outcome_rx.try_recv() {
                            self.handle_outcome(o);
                        }
                    }
                }
                ev = async {
                    match events {
                        Some(rx) => rx.recv().await,
                        None => std::future::pending().await,
                    }
                } => {
                    if let Some(ev) = ev {
                        self.handle_group_event(ev)?;
                    }
                }
                _ = self.controls.wake.notified() => {}
                _ = tokio::time::sleep_until(deadline) => return Ok(()),
            }
            if tokio::time::Instant::now() >= deadline && self.completed.is_empty() {
                return Ok(());
            }
        }
    }

    /// The records as a stream (polls with `fetch.max.wait.ms` as the timeout, forever).
    ///
    /// Dropping the stream at any point loses nothing: records are handed out one at a
    /// time from the consumer's own buffer, so positions (and commits) stop at the last
    /// record the stream yielded, and the next `stream()` or `poll` continues from there.
    ///
    /// The stream borrows the consumer. To commit, seek, pause or resume while it runs, take
    /// a [`ConsumerHandle`](crate::ConsumerHandle) first ([`Consumer::handle`]). Or take a chunk, drop the stream,
    /// and commit:
    ///
    /// ```no_run
    /// # async fn demo(mut consumer: strom_client::Consumer) -> strom_client::Result<()> {
    /// use futures_util::{StreamExt, TryStreamExt};
    ///
    /// loop {
    ///     let chunk: Vec<_> = consumer.stream().take(100).try_collect().await?;
    ///     for record in &chunk {
    ///         println!("{}-{}@{}", record.topic, record.partition, record.offset);
    ///     }
    ///     consumer.commit_sync().await?; // the 100 records the stream yielded
    /// }
    /// # }
    /// ```
    pub fn stream(&mut self) -> impl Stream<Item = Result<ConsumerRecord>> + '_ {
        let wait = self.config.fetch_max_wait.max(Duration::from_millis(100));
        futures_util::stream::unfold(self, move |c| async move {
            loop {
                c.apply_controls();
                if let Some(r) = c.take_undelivered(1).pop() {
                    return Some((Ok(r), c));
                }
                // Boxed as in `poll`: keeps the stream future shallow, so the compiler can
                // lay out a caller that drives it from an `async fn` (depth limit).
                if let Err(e) = Box::pin(c.fill_undelivered(wait)).await {
                    return Some((Err(e), c));
                }
            }
        })
    }

    /// Applies every group event waiting. Synchronous on purpose: a rebalance changes the
    /// assignment, runs the listener and answers the membership task without an await in
    /// between, so a `poll` dropped at any point cannot leave the consumer holding (and
    /// fetching) partitions the group gave to another member, or a listener half run.
    pub(super) fn handle_group_events(&mut self) -> Result<()> {
        loop {
            let ev = match self.group.as_mut().map(|g| g.events.try_recv()) {
                Some(Ok(ev)) => ev,
                _ => return Ok(()),
            };
            self.handle_group_event(ev)?;
        }
    }

    pub(super) fn handle_group_event(&mut self, ev: GroupEvent) -> Result<()> {
        match ev {
            GroupEvent::Revoke(parts, done) => {
                self.revoke(parts, false, Some(done));
            }
            GroupEvent::Lost(parts, done) => {
                self.revoke(parts, true, Some(done));
            }
            GroupEvent::Assign(parts, done) => {
                self.metrics.rebalances += 1;
                for tp in &parts {
                    self.assignment.entry(tp.clone()).or_default();
                }
                self.counters
                    .coordinator
                    .assigned_partitions
                    .set(self.assignment.len() as f64);
                let mut commits = BTreeMap::new();
                if let Some(mut l) = self.take_listener() {
                    let mut ctx = RebalanceContext::new(&self.assignment);
                    l.on_partitions_assigned(&parts, &mut ctx);
                    self.put_listener(l);
                    commits = self.apply_seeks(ctx);
                }
                self.commit_then_answer(commits, Some(done), "commit requested by the rebalance listener");
            }
            GroupEvent::Fatal(e) => return Err(e),
        }
        Ok(())
    }

    pub(super) fn take_listener(&mut self) -> Option<Box<dyn RebalanceListener>> {
        self.listener.get_mut().unwrap_or_else(|p| p.into_inner()).take()
    }

    pub(super) fn put_listener(&mut self, l: Box<dyn RebalanceListener>) {
        *self.listener.get_mut().unwrap_or_else(|p| p.into_inner()) = Some(l);
    }

    /// Gives up partitions at once: what was consumed of them (auto-commit, unless lost)
    /// and what the listener asks to commit go to the coordinator in the background, and
    /// `done` answers the membership task only after that commit, so the group moves the
    /// partitions after their offsets are stored. The partitions leave the assignment (and
    /// their buffered records are dropped) before this returns; the commit is kept in
    /// `rebalance_commits` until answered.
    pub(super) fn revoke(&mut self, parts: Vec<TopicPartition>, lost: bool, done: Option<oneshot::Sender<()>>) {
        let mut commits = BTreeMap::new();
        if !parts.is_empty() {
            if !lost && self.config.enable_auto_commit {
                let committed = self.last_committed();
                commits = self
                    .consumed_offsets()
                    .into_iter()
                    .filter(|(tp, o)| parts.contains(tp) && committed.get(tp) != Some(&o.offset))
                    .collect();
            }
            if let Some(mut l) = self.take_listener() {
                let mut ctx = RebalanceContext::new(&self.assignment);
                if lost {
                    l.on_partitions_lost(&parts, &mut ctx);
                } else {
                    l.on_partitions_revoked(&parts, &mut ctx);
                }
                self.put_listener(l);
                // The listener's own commits win over the auto-commit's for a partition.
                commits.extend(self.apply_seeks(ctx));
            }
            for tp in &parts {
                self.assignment.remove(tp);
            }
            self.drop_buffered_unassigned();
        }
        self.commit_then_answer(commits, done, "commit before revocation");
    }

    /// Applies a listener's seeks now; returns the commits it asked for.
    fn apply_seeks(&mut self, ctx: RebalanceContext) -> BTreeMap<TopicPartition, OffsetAndMetadata> {
        let (commits, seeks) = ctx.into_parts();
        for (tp, offset) in seeks {
            if let Err(e) = self.seek(&tp, offset) {
                warn!(error = %e, "seek requested by the rebalance listener ignored");
            }
        }
        commits
    }

    /// Commits `offsets` (nothing when empty) in a task of its own, then answers `done`: the
    /// rebalance waits for the commit, the consumer's caller does not, and dropping a
    /// `poll` cannot cut it short.
    fn commit_then_answer(
        &mut self,
        offsets: BTreeMap<TopicPartition, OffsetAndMetadata>,
        done: Option<oneshot::Sender<()>>,
        what: &'static str,
    ) {
        let commit = if offsets.is_empty() {
            None
        } else {
            match self.commit_offsets_async(offsets) {
                Ok(f) => Some(f),
                Err(e) => {
                    warn!(error = %e, "{what} not sent");
                    None
                }
            }
        };
        let task = tokio::spawn(async move {
            if let Some(f) = commit {
                if let Err(e) = f.await {
                    warn!(error = %e, "{what} failed");
                }
            }
            if let Some(done) = done {
                let _ = done.send(());
            }
        });
        self.rebalance_commits.retain(|t| !t.is_finished());
        self.rebalance_commits.push(task);
    }

    /// Waits for the commits rebalances started, oldest first. Cancel-safe: a commit still
    /// running when the call is dropped stays in the list.
    pub(super) async fn settle_rebalance_commits(&mut self) {
        while let Some(task) = self.rebalance_commits.first_mut() {
            let _ = task.await;
            self.rebalance_commits.remove(0);
        }
    }

    /// Resolves missing positions: the committed offset when in a group, else (or when
    /// none) `auto.offset.reset`; explicit resets (seek_to_beginning/end) directly.
    pub(super) async fn update_positions(&mut self) -> Result<()> {
        let missing: Vec<TopicPartition> = self
            .assignment
            .iter()
            .filter(|(_, s)| s.position.is_none())
            .map(|(tp, _)| tp.clone())
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        // A listener's commit for partitions just assigned is where they start: looked up
        // after it is stored.
        self.settle_rebalance_commits().await;
        let mut to_reset: BTreeMap<TopicPartition, OffsetReset> = BTreeMap::new();
        let mut from_committed = Vec::new();
        for tp in missing {
            match self.assignment.get(&tp).and_then(|s| s.reset) {
                Some(r) => {
                    to_reset.insert(tp, r);
                }
                None => from_committed.push(tp),
            }
        }
        if !from_committed.is_empty() {
            let committed = match self.config.group_id.as_deref() {
                Some(group) => {
                    let who = self.identity();
                    crate::lookup::committed_offsets(
                        &self.client,
                        crate::lookup::OffsetFetch {
                            group,
                            partitions: Some(&from_committed),
                            member: Some((&who.member_id, who.generation_or_epoch)),
                            require_stable: true,
                        },
                    )
                    .await?
                }
                None => BTreeMap::new(),
            };
            for tp in from_committed {
                match committed.get(&tp) {
                    Some(o) => {
                        if let Some(st) = self.assignment.get_mut(&tp) {
                            debug!(%tp, offset = o.offset, "position from committed offset");
                            st.position = Some(o.offset);
                            st.epoch = o.leader_epoch;
                        }
                    }
                    None => {
                        to_reset.insert(tp, self.config.auto_offset_reset);
                    }
                }
            }
        }
        let mut by_spec: BTreeMap<(bool, Vec<u8>), Vec<TopicPartition>> = BTreeMap::new();
        for (tp, r) in to_reset {
            match r {
                OffsetReset::None => {
                    return Err(Error::kafka(ErrorCode::OffsetOutOfRange)
                        .with_context(format!(
                            "no committed offset for {tp} and auto.offset.reset=none (NoOffsetForPartition)"
                        ))
                        .with_partition(&tp.topic, tp.partition))
                }
                OffsetReset::Earliest => by_spec.entry((true, Vec::new())).or_default().push(tp),
                OffsetReset::Latest => by_spec.entry((false, Vec::new())).or_default().push(tp),
            }
        }
        for ((earliest, _), tps) in by_spec {
            let spec = if earliest {
                OffsetSpec::Earliest
            } else {
                OffsetSpec::Latest
            };
            let found = self.list(&tps, spec, self.read_committed()).await?;
            for (tp, offset) in found {
                if let Some(st) = self.assignment.get_mut(&tp) {
                    debug!(%tp, offset, earliest, "position reset");
                    st.position = Some(offset);
                    st.epoch = None;
                    st.reset = None;
                }
            }
        }
        Ok(())
    }

    /// Moves records from the buffered fetches to `undelivered` (up to `max.poll.records`
    /// waiting there), in order per partition, advancing fetch positions past them.
    pub(super) fn drain(&mut self) -> Result<()> {
        let max = self.config.max_poll_records;
        let out = &mut self.undelivered;
        let mut skipped = VecDeque::new();
        while out.len() < max {
            let Some(mut cf) = self.completed.pop_front() else {
                break;
            };
            let Some(st) = self.assignment.get_mut(&cf.tp) else {
                self.buffered.remove(&cf.tp);
                self.buffered_bytes -= cf.size;
                continue;
            };
            if st.position != Some(cf.next_offset) {
                // Seeked (or reset) since this was fetched.
                self.buffered.remove(&cf.tp);
                self.buffered_bytes -= cf.size;
                continue;
            }
            if st.paused {
                skipped.push_back(cf);
                continue;
            }
            let mut failed = None;
            while out.len() < max {
                match cf.next_record(&self.opts) {
                    Ok(Some(r)) => out.push_back(r),
                    Ok(None) => break,
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            st.position = Some(cf.next_offset);
            if cf.last_epoch.is_some() {
                st.epoch = cf.last_epoch;
            }
            if let Some(e) = failed {
                self.buffered.remove(&cf.tp);
                self.buffered_bytes -= cf.size;
                if out.is_empty() {
                    self.completed.extend(skipped);
                    return Err(e);
                }
                self.pending_error = Some(e);
                break;
            }
            if cf.is_drained() {
                self.buffered.remove(&cf.tp);
                self.buffered_bytes -= cf.size;
            } else {
                self.completed.push_front(cf);
            }
        }
        self.completed.extend(skipped);
        Ok(())
    }

    /// Sends a Fetch to every broker that leads a fetchable partition and has none in flight.
    pub(super) async fn send_fetches(&mut self, deadline: tokio::time::Instant) {
        if self.buffered_bytes > self.config.fetch_max_bytes as usize {
            return;
        }
        let now = Instant::now();
        let mut md = self.client.metadata();
        let missing: BTreeSet<Arc<str>> = self
            .assignment
            .keys()
            .filter(|tp| md.topic(&tp.topic).is_none())
            .map(|tp| tp.topic.clone())
            .collect();
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|t| &**t).collect();
            // Bounded by the poll's deadline: with the cluster unreachable the refresh would
            // retry for default.api.timeout.ms, and poll must return in time.
            match tokio::time::timeout_at(deadline, self.client.refresh_metadata(Some(&names))).await {
                Ok(Ok(m)) => md = m,
                Ok(Err(e)) => debug!(error = %e, "metadata refresh for fetching failed"),
                Err(_) => debug!("metadata refresh for fetching: poll timeout reached"),
            }
        }
        let mut by_node: BTreeMap<i32, Vec<Wanted>> = BTreeMap::new();
        let mut stale = BTreeSet::new();
        let mut buffered_nodes = BTreeSet::new();
        for (tp, st) in &self.assignment {
            let Some(position) = st.position else { continue };
            if st.paused {
                continue;
            }
            let Some(info) = md.topic(&tp.topic) else {
                continue;
            };
            let Some(p) = info.partitions.iter().find(|p| p.partition == tp.partition) else {
                stale.insert(tp.topic.clone());
                continue;
            };
            let node = match st.preferred_replica {
                Some((r, until)) if until > now && md.brokers.contains_key(&r) => r,
                _ => p.leader,
            };
            if node < 0 {
                stale.insert(tp.topic.clone());
                continue;
            }
            if self.buffered.contains(tp) {
                buffered_nodes.insert(node);
                continue;
            }
            by_node.entry(node).or_default().push(Wanted {
                tp: tp.clone(),
                topic_id: info.topic_id,
                fetch: PartitionFetch {
                    fetch_offset: position,
                    current_leader_epoch: p.leader_epoch,
                    last_fetched_epoch: st.epoch.unwrap_or(-1),
                    max_bytes: self.config.max_partition_fetch_bytes,
                },
            });
        }
        for t in stale {
            self.client.invalidate_topic(&t);
        }
        let params = FetchParams {
            max_wait_ms: i32::try_from(self.config.fetch_max_wait.as_millis()).unwrap_or(i32::MAX),
            min_bytes: self.config.fetch_min_bytes,
            max_bytes: self.config.fetch_max_bytes,
            isolation_level: i8::from(self.read_committed()),
            rack_id: self.config.client_rack.clone().unwrap_or_default(),
        };
        for (node, wanted) in by_node {
            // Java's "buffered node" rule: a broker whose partitions still have unread data
            // is not fetched from, so the next Fetch names all its partitions at once instead
            // of a caught-up one alone being held for fetch.max.wait.ms while the rest wait.
            if self.in_flight.contains(&node)
                || buffered_nodes.contains(&node)
                || self.node_backoff.get(&node).is_some_and(|t| *t > now)
            {
                continue;
            }
            self.in_flight.insert(node);
            let session = self.sessions.entry(node).or_default().clone();
            let client = self.client.clone();
            let tx = self.outcome_tx.clone();
            let params = params.clone();
            tokio::spawn(async move {
                let outcome = fetch_once(&client, node, &session, &wanted, &params).await;
                let _ = tx.send(outcome);
            });
        }
    }

    pub(super) fn handle_outcome(&mut self, o: FetchOutcome) {
        self.in_flight.remove(&o.node);
        self.metrics.fetches += 1;
        self.instruments.fetch.add(1);
        let resp = match o.result {
            Ok(r) => {
                self.instruments.fetch_latency.record_duration(o.latency);
                self.instruments
                    .fetch_throttle_time
                    .record_duration(Duration::from_millis(u64::try_from(r.throttle_time_ms).unwrap_or(0)));
                r
            }
            Err(e) => {
                debug!(node = o.node, error = %e, "fetch failed");
                self.node_backoff
                    .insert(o.node, Instant::now() + self.client.config().retry_backoff);
                let topics: BTreeSet<Arc<str>> = self.assignment.keys().map(|tp| tp.topic.clone()).collect();
                for t in topics {
                    self.client.invalidate_topic(&t);
                }
                for st in self.assignment.values_mut() {
                    st.preferred_replica = None;
                }
                return;
            }
        };
        if !o.full {
            self.metrics.incremental_fetches += 1;
        }
        let code = ErrorCode::from(resp.error_code);
        if !code.is_ok() {
            if matches!(
                code,
                ErrorCode::FetchSessionIdNotFound
                    | ErrorCode::InvalidFetchSessionEpoch
                    | ErrorCode::FetchSessionTopicIdError
            ) {
                self.metrics.fetch_session_resets += 1;
            }
            debug!(node = o.node, error = %code, full = o.full, "fetch error");
            self.node_backoff
                .insert(o.node, Instant::now() + self.client.config().retry_backoff);
            return;
        }
        let read_committed = self.read_committed();
        let metadata_max_age = self.client.config().metadata_max_age;
        let mut fetch_size = 0u64;
        let mut tally: Option<Arc<FetchTally>> = None;
        for t in resp.responses {
            let topic: Arc<str> = if o.by_id {
                match o.names.get(&t.topic_id) {
                    Some(n) => n.clone(),
                    None => continue,
                }
            } else {
                Arc::from(t.topic.0.as_str())
            };
            for pd in t.partitions {
                let tp = TopicPartition {
                    topic: topic.clone(),
                    partition: pd.partition_index,
                };
                let Some(st) = self.assignment.get_mut(&tp) else {
                    continue;
                };
                let Some(&fetched) = o.offsets.get(&tp) else { continue };
                if st.position != Some(fetched) || self.buffered.contains(&tp) {
                    continue;
                }
                let code = ErrorCode::from(pd.error_code);
                match super::fetcher::partition_error_action(code) {
                    PartitionErrorAction::Ok => {
                        if pd.high_watermark >= 0 {
                            st.high_watermark = Some(pd.high_watermark);
                        }
                        if pd.last_stable_offset >= 0 {
                            st.last_stable_offset = Some(pd.last_stable_offset);
                        }
                        let end = if read_committed {
                            st.last_stable_offset
                        } else {
                            st.high_watermark
                        };
                        if let Some(end) = end {
                            self.instruments.lag(&tp.topic, tp.partition, (end - fetched).max(0));
                        }
                        if pd.log_start_offset >= 0 {
                            st.log_start_offset = Some(pd.log_start_offset);
                            self.instruments
                                .lead(&tp.topic, tp.partition, fetched - pd.log_start_offset);
                        }
                        // KIP-320: the leader's log diverges from what this consumer read
                        // (an unclean election truncated it); the response has no records.
                        let diverging = &pd.diverging_epoch;
                        if diverging.epoch >= 0 && diverging.end_offset >= 0 {
                            let (epoch, end) = (diverging.epoch, diverging.end_offset);
                            st.preferred_replica = None;
                            if end >= fetched {
                                // Nothing this consumer read was lost: continue, under the
                                // epoch the leader knows.
                                st.epoch = Some(epoch);
                            } else if self.config.auto_offset_reset == OffsetReset::None {
                                self.pending_error = Some(
                                    Error::kafka(ErrorCode::OffsetOutOfRange)
                                        .with_context(format!(
                                    "log truncation detected for {tp}: the records from offset {end} (leader epoch \
                                     {epoch}) to {fetched} this consumer read are no longer in the log, and \
                                     auto.offset.reset=none; seek to {end} to continue"
                                    ))
                                        .with_partition(&tp.topic, tp.partition),
                                );
                            } else {
                                // As Java: with a reset policy, continue from the first offset
                                // known to diverge (no record skipped, none read twice).
                                warn!(%tp, position = fetched, divergence = end, epoch,
                                    "log truncation detected, resetting to the first offset known to diverge");
                                self.metrics.truncations_detected += 1;
                                st.position = Some(end);
                                st.epoch = Some(epoch);
                            }
                            continue;
                        }
                        let replica = pd.preferred_read_replica.0;
                        if replica >= 0 {
                            debug!(%tp, replica, "fetching from the preferred read replica (KIP-392)");
                            st.preferred_replica = Some((replica, Instant::now() + metadata_max_age));
                        }
                        let current = st
                            .preferred_replica
                            .filter(|(_, until)| *until > Instant::now())
                            .map_or(-1, |(r, _)| r);
                        self.instruments
                            .preferred_read_replica(&tp.topic, tp.partition, current);
                        let Some(records) = pd.records.filter(|r| !r.is_empty()) else {
                            continue;
                        };
                        self.metrics.bytes_fetched += records.len() as u64;
                        fetch_size += records.len() as u64;
                        self.instruments.fetched_bytes(&tp.topic, records.len() as u64);
                        let aborted = pd
                            .aborted_transactions
                            .unwrap_or_default()
                            .iter()
                            .map(|a| (a.first_offset, a.producer_id.0))
                            .collect();
                        let tally = tally
                            .get_or_insert_with(|| {
                                Arc::new(FetchTally::new(self.instruments.records_per_request.clone()))
                            })
                            .clone();
                        let cf = CompletedFetch::new(
                            tp.clone(),
                            fetched,
                            records,
                            aborted,
                            read_committed,
                            self.opts,
                            Some(tally),
                        );
                        self.buffered_bytes += cf.size;
                        self.buffered.insert(tp);
                        self.completed.push_back(cf);
                    }
                    PartitionErrorAction::RefreshMetadata => {
                        debug!(%tp, error = %code, "fetch: refreshing metadata");
                        st.preferred_replica = None;
                        self.client.invalidate_topic(&tp.topic);
                        // As Java: the next fetch (and metadata lookup) after retry.backoff.ms,
                        // not in a tight loop while metadata still names the old leader.
                        self.node_backoff
                            .insert(o.node, Instant::now() + self.client.config().retry_backoff);
                    }
                    PartitionErrorAction::OutOfRange => {
                        if st.preferred_replica.take().is_some() {
                            // A follower may lag the leader: ask the leader before resetting.
                            continue;
                        }
                        match self.config.auto_offset_reset {
                            OffsetReset::None => {
                                self.pending_error = Some(
                                    Error::kafka(code)
                                        .with_context(format!(
                                            "{tp} offset {fetched} is out of range and auto.offset.reset=none"
                                        ))
                                        .with_partition(&tp.topic, tp.partition),
                                );
                            }
                            r => {
                                warn!(%tp, offset = fetched, reset = ?r, "offset out of range, resetting");
                                st.position = None;
                                st.reset = Some(r);
                            }
                        }
                    }
                    PartitionErrorAction::Fatal => {
                        self.pending_error = Some(
                            Error::kafka(code)
                                .with_context(format!("fetching {tp}"))
                                .with_partition(&tp.topic, tp.partition),
                        );
                    }
                }
            }
        }
        self.instruments.fetch_size.record(fetch_size);
    }
}
