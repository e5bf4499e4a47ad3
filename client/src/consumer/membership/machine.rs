//! [`Membership`]: the membership core the driver talks to. Events go in (answers, the
//! application's polls and acknowledgements, subscription changes, the clock), and
//! [`Membership::poll_action`] says what to do next. What both protocols share is decided
//! here and in `common.rs`; the protocol (`classic.rs`, `kip848.rs`) decides the rest.
//!
//! The order of [`Membership::poll_action`]'s checks is the member's priorities: a failure
//! is reported first; then hand-overs, so the application has applied a change before
//! anything that depends on it is sent; then the operation in flight is waited for, then a
//! backoff; then the protocol's next step.

use std::sync::Arc;
use std::time::Instant;

use tracing::{debug, info, warn};

use super::common::{Common, Op, Protocol, Stage};
use super::io::{Action, CoordinatorInfo, HandOverKind, Note, OpId, Response, Settings};
use crate::consumer::state::Subscription;
use crate::error::{Error, Result};
use crate::metadata::ClusterMetadata;

/// A group member: the state both protocols share, and the protocol's own.
#[derive(Debug)]
pub(crate) struct Membership<P> {
    pub(super) c: Common,
    pub(super) p: P,
}

impl<P: Protocol> Membership<P> {
    pub(crate) fn new(cfg: Settings, subscription: Subscription, protocol: P, now: Instant) -> Self {
        Membership {
            c: Common::new(cfg, subscription, now),
            p: protocol,
        }
    }

    // ---- events -----------------------------------------------------------------------------

    /// The driver found the coordinator and connected to it (operation `id`).
    pub(crate) fn coordinator_found(&mut self, now: Instant, id: OpId, info: CoordinatorInfo) {
        if self.c.finish(id).is_none() {
            return;
        }
        debug!(node = info.node, "group coordinator found");
        self.c.coordinator = Some(info);
        self.handle_timeout(now);
    }

    /// Looking the coordinator up or connecting to it failed (operation `id`).
    pub(crate) fn coordinator_failed(&mut self, now: Instant, id: OpId, e: &Error) {
        if self.c.finish(id).is_none() {
            return;
        }
        debug!(error = %e, "coordinator lookup failed");
        self.c.backoff(now);
        self.handle_timeout(now);
    }

    /// The answer to request `id`, or why there is none (a connection failure, a timeout).
    pub(crate) fn handle_response(&mut self, now: Instant, id: OpId, response: Result<Response>) {
        let Some(op) = self.c.finish(id) else {
            debug!(id, "an answer the member no longer waits for: ignored");
            return;
        };
        if op == Op::Leave {
            log_leave(&response, self.c.leave_reason);
            if matches!(self.c.stage, Stage::Leaving { .. }) {
                self.c.stage = Stage::Done;
            }
            return;
        }
        if matches!(self.c.stage, Stage::Leaving { .. } | Stage::Done) {
            return;
        }
        self.p.on_response(&mut self.c, now, op, response);
        self.handle_timeout(now);
    }

    /// Metadata for operation `id` (the client's snapshot or a broker's answer).
    pub(crate) fn handle_metadata(&mut self, now: Instant, id: OpId, metadata: Result<Arc<ClusterMetadata>>) {
        let Some(op) = self.c.finish(id) else {
            return;
        };
        let ok = match metadata {
            Ok(md) => {
                self.c.metadata = Some(md);
                true
            }
            Err(e) => {
                debug!(error = %e, "metadata for the group membership");
                false
            }
        };
        self.p.on_metadata(&mut self.c, now, op, ok);
        self.handle_timeout(now);
    }

    /// The application subscribed to something else.
    pub(crate) fn subscribe(&mut self, now: Instant, subscription: Subscription) {
        self.c.set_subscription(subscription);
        if self.c.stage == Stage::Active {
            self.p.on_subscription(&mut self.c, now);
        }
    }

    /// The application applied the hand-over it was given.
    pub(crate) fn handed_over(&mut self, now: Instant) {
        match self.c.own.acknowledged() {
            Some(HandOverKind::Revoke | HandOverKind::Lost) => self.c.publish_owned(),
            Some(HandOverKind::Assign) | None => {}
        }
        self.handle_timeout(now);
    }

    /// The application polled at `at` (`max.poll.interval.ms` counts from its last poll).
    pub(crate) fn polled(&mut self, at: Instant) {
        if at <= self.c.last_poll {
            return;
        }
        self.c.last_poll = at;
        if let Some(left) = self.c.poll_left {
            if at > left && self.c.stage == Stage::Active {
                // Back after a poll timeout: what it owned went to others meanwhile.
                self.c.poll_left = None;
                if self.c.inflight() == Some(Op::Leave) {
                    self.c.abandon();
                }
                self.c.lose_all();
                self.p.on_lost(&mut self.c);
            }
        }
    }

    /// The consumer closes (or went away): leave the group, bounded by
    /// [`LEAVE_BOUND`](super::io::LEAVE_BOUND).
    pub(crate) fn leave(&mut self, now: Instant) {
        self.start_leaving(now, "the consumer is closing");
    }

    /// Acts on the clock: a leave that took too long, `max.poll.interval.ms` passed without a
    /// poll, or `session.timeout.ms` without an answer from the coordinator.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        match self.c.stage {
            Stage::Leaving { until } if now >= until => {
                debug!("leaving the group timed out");
                self.c.abandon();
                self.c.stage = Stage::Done;
            }
            Stage::Active => {
                if self.c.leave_deadline().is_some_and(|t| now >= t) {
                    debug!("leaving the group timed out");
                    self.c.abandon();
                }
                if !self.watched() {
                    return;
                }
                if now >= self.c.last_poll + self.c.cfg.rebalance_timeout {
                    self.poll_timeout(now);
                } else if now >= self.c.last_contact + self.c.cfg.session_timeout {
                    self.session_expired();
                }
            }
            _ => {}
        }
    }

    // ---- what to do -------------------------------------------------------------------------

    /// What the driver does next. Call again after doing it, after feeding any event, and
    /// when the instant of an [`Action::Wait`] comes.
    pub(crate) fn poll_action(&mut self, now: Instant) -> Action {
        self.handle_timeout(now);
        if let Some(e) = self.c.take_failure() {
            return Action::Fail(e);
        }
        match self.c.stage {
            Stage::Done => return Action::Done,
            Stage::Leaving { until } => {
                if let Some(a) = self.c.take_outbox(now) {
                    return a;
                }
                if self.c.inflight().is_none() {
                    self.c.stage = Stage::Done;
                    return Action::Done;
                }
                return Action::Wait(Some(until));
            }
            Stage::Failed if !self.c.own.busy() => {
                self.start_leaving(now, "the consumer is closing");
                return self.poll_action(now);
            }
            Stage::Failed | Stage::Active => {}
        }
        // A loop, not recursion: a step may plan hand-overs and then have nothing to send.
        for _ in 0..4 {
            if let Some(h) = self.c.own.next() {
                if h.kind == HandOverKind::Assign {
                    self.c.publish_owned();
                }
                return Action::HandOver(h);
            }
            if self.c.stage == Stage::Failed {
                break;
            }
            if let Some(a) = self.c.take_outbox(now) {
                return a;
            }
            if self.c.inflight().is_some() || self.c.poll_left.is_some() || self.c.backing_off(now) {
                break;
            }
            match self.p.step(&mut self.c, now) {
                Some(a) => return a,
                // The step failed the membership: report it.
                None if self.c.stage != Stage::Active => return self.poll_action(now),
                None if self.c.own.busy() && !self.c.own.awaiting() => continue,
                None => break,
            }
        }
        Action::Wait(self.deadline(now))
    }

    /// The next note for the driver (metrics, the identity commits use, a lost coordinator).
    pub(crate) fn poll_note(&mut self) -> Option<Note> {
        self.c.pop_note()
    }

    /// Whether only the application's next poll moves the member on (it left the group for
    /// a poll timeout): the driver wakes up for polls then.
    pub(crate) fn waiting_for_poll(&self) -> bool {
        self.c.poll_left.is_some() && self.c.stage == Stage::Active
    }

    /// The group's id.
    pub(crate) fn group_id(&self) -> &str {
        &self.c.cfg.group_id
    }

    /// The generation or epoch commits use, and the member id.
    #[cfg(test)]
    pub(crate) fn commit_identity(&self) -> (i32, &str) {
        self.c.published_identity()
    }

    /// The operation whose answer the core waits for.
    #[cfg(test)]
    pub(crate) fn inflight_id(&self) -> Option<OpId> {
        self.c.inflight_id()
    }

    /// The partitions owned.
    #[cfg(test)]
    pub(crate) fn owned(&self) -> &std::collections::BTreeSet<crate::topic_partition::TopicPartition> {
        self.c.own.owned()
    }

    // ---- inside -----------------------------------------------------------------------------

    /// The session and poll deadlines apply: in the group, not in a JoinGroup/SyncGroup
    /// round (the coordinator holds the session then), not out of it for a poll timeout.
    fn watched(&self) -> bool {
        self.c.stage == Stage::Active && self.c.poll_left.is_none() && self.p.in_group() && !self.p.rebalancing()
    }

    /// The earliest instant after `now` at which something is due.
    fn deadline(&self, now: Instant) -> Option<Instant> {
        let mut at: Vec<Option<Instant>> = vec![self.c.retry_at, self.c.leave_deadline()];
        if self.watched() {
            at.push(Some(self.c.last_poll + self.c.cfg.rebalance_timeout));
            at.push(Some(self.c.last_contact + self.c.cfg.session_timeout));
        }
        if self.c.stage == Stage::Active && self.c.poll_left.is_none() {
            at.push(self.p.deadline(&self.c, now));
        }
        at.into_iter().flatten().filter(|t| *t > now).min()
    }

    fn poll_timeout(&mut self, now: Instant) {
        let (generation, member_id) = self.p.identity();
        warn!(
            generation,
            member_id,
            max_poll_interval_ms = self.c.cfg.rebalance_timeout.as_millis() as u64,
            "the application did not poll within max.poll.interval.ms: leaving the group"
        );
        self.c.abandon();
        self.c.poll_left = Some(now);
        if self.c.coordinator.is_some() {
            const WHY: &str = "consumer poll timeout has expired";
            if let Some(request) = self.p.leave_request(&self.c, WHY) {
                self.c.send_leave_detached(request, WHY);
            }
        }
        self.p.on_left(&mut self.c);
    }

    fn session_expired(&mut self) {
        info!(
            session_timeout_ms = self.c.cfg.session_timeout.as_millis() as u64,
            "no answer from the group coordinator within session.timeout.ms: the partitions are lost"
        );
        if matches!(
            self.c.inflight(),
            Some(Op::Heartbeat { .. } | Op::ConsumerHeartbeat { .. })
        ) {
            self.c.abandon();
        }
        self.c.lose_all();
        self.p.on_lost(&mut self.c);
    }

    fn start_leaving(&mut self, now: Instant, reason: &'static str) {
        if matches!(self.c.stage, Stage::Leaving { .. } | Stage::Done) {
            return;
        }
        self.c.abandon();
        self.c.own.abandon();
        let request = if self.c.coordinator.is_some() && self.c.poll_left.is_none() {
            self.p.leave_request(&self.c, reason)
        } else {
            None
        };
        self.c.poll_left = None;
        self.p.on_left(&mut self.c);
        match request {
            Some(r) => {
                self.c.send_leave_detached(r, reason);
                self.c.stage = Stage::Leaving {
                    until: now + super::io::LEAVE_BOUND,
                };
            }
            None => self.c.stage = Stage::Done,
        }
    }
}

fn log_leave(response: &Result<Response>, reason: &str) {
    let code = |c: i16| strom_protocol::ErrorCode::from(c);
    match response {
        Ok(Response::LeaveGroup(r)) => info!(error = %code(r.error_code), reason, "left the group"),
        Ok(Response::ConsumerGroupHeartbeat(r)) => info!(error = %code(r.error_code), reason, "left the group"),
        Ok(_) => {}
        Err(e) => debug!(error = %e, "leaving the group failed"),
    }
}
