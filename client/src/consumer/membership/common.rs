//! What both protocols share: the settings, the subscription and the topics it resolves to,
//! the partitions owned ([`Ownership`]), the coordinator, the one operation in flight, the
//! clocks (the application's last poll, the coordinator's last answer, a backoff), the
//! stage of the member's life, and the notes for the driver. [`Protocol`] is what a
//! protocol (classic or KIP-848) adds on top; `machine.rs` routes events between the two.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{debug, info, warn};

use super::io::{Action, CoordinatorInfo, MetadataWant, Note, OpId, Request, Response, Settings};
use super::owned::Ownership;
use crate::consumer::state::Subscription;
use crate::error::{Error, Result};
use crate::metadata::ClusterMetadata;

/// The operations the core can have in flight (one at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Op {
    FindCoordinator,
    /// Metadata: of every topic (`all`, which resolves a pattern) or some; asked of a broker
    /// (`fresh`) or from the client's snapshot.
    Metadata {
        all: bool,
        fresh: bool,
    },
    JoinGroup,
    SyncGroup,
    /// A classic heartbeat, sent in this generation.
    Heartbeat {
        generation: i32,
    },
    /// A ConsumerGroupHeartbeat, sent with this member epoch.
    ConsumerHeartbeat {
        epoch: i32,
    },
    /// A leave whose answer is only logged.
    Leave,
}

/// Where the member is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stage {
    /// Joining, in the group, or out of it for a while (a poll timeout, nothing to read).
    Active,
    /// Membership failed: hand-overs under way finish, then the member leaves.
    Failed,
    /// Leaving (the consumer closes): the leave's answer is awaited until then.
    Leaving { until: Instant },
    /// Left: nothing more to do.
    Done,
}

/// What a protocol adds to the shared state.
pub(super) trait Protocol {
    /// In a generation (classic) or with an epoch (KIP-848): the session and
    /// `max.poll.interval.ms` are watched.
    fn in_group(&self) -> bool;
    /// A JoinGroup or SyncGroup is with the coordinator: it keeps the member's session
    /// meanwhile, and the round is not interrupted for a poll timeout.
    fn rebalancing(&self) -> bool;
    /// The generation or epoch, and the member id.
    fn identity(&self) -> (i32, &str);
    /// What to do next, when nothing shared (a hand-over, an operation in flight, a backoff)
    /// stands in the way; `None` when nothing is due.
    fn step(&mut self, c: &mut Common, now: Instant) -> Option<Action>;
    /// The protocol's next deadline (a heartbeat, a metadata check), if any.
    fn deadline(&self, c: &Common, now: Instant) -> Option<Instant>;
    /// The answer to a request this protocol sent (`op` says which).
    fn on_response(&mut self, c: &mut Common, now: Instant, op: Op, response: Result<Response>);
    /// Metadata arrived (`c.metadata` has it) for an operation of the protocol, or failed.
    fn on_metadata(&mut self, c: &mut Common, now: Instant, op: Op, ok: bool);
    /// The subscription changed (`c.topics` is resolved again when it is a list).
    fn on_subscription(&mut self, c: &mut Common, now: Instant);
    /// The member fell out of the group (its partitions are being handed over as lost):
    /// forget the generation or epoch and join again.
    fn on_lost(&mut self, c: &mut Common);
    /// The request that leaves the group, when this member sends one.
    fn leave_request(&self, c: &Common, reason: &str) -> Option<Request>;
    /// The member left (or decided not to send a leave): out of the group. The identity
    /// commits use is kept: a commit now is refused as from an old generation, as Java's.
    fn on_left(&mut self, c: &mut Common);
}

#[derive(Debug)]
pub(super) struct Common {
    pub(super) cfg: Settings,
    pub(super) subscription: Subscription,
    /// The subscribed topics (a pattern resolved against metadata).
    pub(super) topics: BTreeSet<String>,
    pub(super) own: Ownership,
    pub(super) coordinator: Option<CoordinatorInfo>,
    /// The last metadata the core was given.
    pub(super) metadata: Option<Arc<ClusterMetadata>>,
    /// When metadata was last checked for the subscription (a pattern) or the leader's view.
    pub(super) metadata_checked: Option<Instant>,
    /// Nothing is sent to the coordinator before then.
    pub(super) retry_at: Option<Instant>,
    pub(super) last_poll: Instant,
    /// The coordinator's last answer that kept the session alive.
    pub(super) last_contact: Instant,
    /// The member left for a poll timeout at this instant and waits for the next poll.
    pub(super) poll_left: Option<Instant>,
    pub(super) stage: Stage,
    inflight: Option<(OpId, Op)>,
    /// A detached leave in flight is given up at this instant.
    leave_deadline: Option<Instant>,
    /// A request to send before anything else (a leave), and why.
    outbox: Option<(Request, &'static str)>,
    /// Why the member is leaving, for the log line of the answer.
    pub(super) leave_reason: &'static str,
    next_id: OpId,
    fail: Option<Error>,
    notes: VecDeque<Note>,
    published: (i32, String),
    published_owned: BTreeSet<crate::topic_partition::TopicPartition>,
}

impl Common {
    pub(super) fn new(cfg: Settings, subscription: Subscription, now: Instant) -> Self {
        let mut c = Common {
            cfg,
            subscription: Subscription::None,
            topics: BTreeSet::new(),
            own: Ownership::default(),
            coordinator: None,
            metadata: None,
            metadata_checked: None,
            retry_at: None,
            last_poll: now,
            last_contact: now,
            poll_left: None,
            stage: Stage::Active,
            inflight: None,
            leave_deadline: None,
            outbox: None,
            leave_reason: "",
            next_id: 0,
            fail: None,
            notes: VecDeque::new(),
            published: (-1, String::new()),
            published_owned: BTreeSet::new(),
        };
        c.set_subscription(subscription);
        c
    }

    /// Takes a new subscription; true when the topics it names changed (a pattern is
    /// resolved by the next metadata check, due now).
    pub(super) fn set_subscription(&mut self, sub: Subscription) -> bool {
        let topics = match &sub {
            Subscription::Topics(t) => t.clone(),
            Subscription::Pattern(_) => {
                self.metadata_checked = None;
                self.topics.clone()
            }
            Subscription::None | Subscription::Assigned => BTreeSet::new(),
        };
        self.subscription = sub;
        self.set_topics(topics)
    }

    fn set_topics(&mut self, topics: BTreeSet<String>) -> bool {
        if topics == self.topics {
            return false;
        }
        info!(?topics, "subscription");
        self.topics = topics;
        true
    }

    /// A pattern subscription resolved against a listing of every topic; true when the
    /// topics changed.
    pub(super) fn resolve_pattern(&mut self) -> bool {
        let (Subscription::Pattern(re), Some(md)) = (&self.subscription, &self.metadata) else {
            return false;
        };
        let topics = md
            .topics
            .values()
            .filter(|t| !t.is_internal && re.is_match(&t.name))
            .map(|t| t.name.clone())
            .collect();
        self.set_topics(topics)
    }

    pub(super) fn is_pattern(&self) -> bool {
        matches!(self.subscription, Subscription::Pattern(_))
    }

    /// When metadata is due again, checked every `interval`.
    pub(super) fn metadata_due_at(&self, interval: Duration) -> Option<Instant> {
        self.metadata_checked.map(|t| t + interval)
    }

    /// Whether metadata checked every `interval` is due at `now`.
    pub(super) fn metadata_due(&self, now: Instant, interval: Duration) -> bool {
        self.metadata_due_at(interval).is_none_or(|t| now >= t)
    }

    // ---- operations -------------------------------------------------------------------------

    fn start(&mut self, op: Op) -> OpId {
        self.next_id += 1;
        self.inflight = Some((self.next_id, op));
        self.next_id
    }

    pub(super) fn find_coordinator(&mut self) -> Action {
        Action::FindCoordinator(self.start(Op::FindCoordinator))
    }

    pub(super) fn send(&mut self, op: Op, request: Request) -> Action {
        Action::Send(self.start(op), request)
    }

    /// Asks for metadata (`topics`: `None` for all of them).
    pub(super) fn ask_metadata(&mut self, topics: Option<Vec<String>>, cached: bool) -> Action {
        let op = Op::Metadata {
            all: topics.is_none(),
            fresh: !cached,
        };
        Action::Metadata(self.start(op), MetadataWant { topics, cached })
    }

    /// Sends `request` (a leave, for `reason`) before anything else, its answer only logged.
    pub(super) fn send_leave_detached(&mut self, request: Request, reason: &'static str) {
        self.outbox = Some((request, reason));
    }

    pub(super) fn take_outbox(&mut self, now: Instant) -> Option<Action> {
        let (request, reason) = self.outbox.take()?;
        self.leave_reason = reason;
        self.leave_deadline = Some(now + super::io::LEAVE_BOUND);
        Some(self.send(Op::Leave, request))
    }

    /// The id of the operation in flight, if any.
    #[cfg(test)]
    pub(super) fn inflight_id(&self) -> Option<OpId> {
        self.inflight.map(|(id, _)| id)
    }

    /// The operation in flight, if any.
    pub(super) fn inflight(&self) -> Option<Op> {
        self.inflight.map(|(_, op)| op)
    }

    /// The operation `id` answered: `None` when it is not the one in flight (the core gave
    /// up on it), so its answer is ignored.
    pub(super) fn finish(&mut self, id: OpId) -> Option<Op> {
        match self.inflight {
            Some((current, op)) if current == id => {
                self.inflight = None;
                if op == Op::Leave {
                    self.leave_deadline = None;
                }
                Some(op)
            }
            _ => None,
        }
    }

    /// Gives up on the operation in flight: its answer will be ignored.
    pub(super) fn abandon(&mut self) {
        self.inflight = None;
        self.leave_deadline = None;
    }

    /// The deadline of a detached leave in flight.
    pub(super) fn leave_deadline(&self) -> Option<Instant> {
        self.leave_deadline
    }

    // ---- what happened ----------------------------------------------------------------------

    pub(super) fn backoff(&mut self, now: Instant) {
        self.retry_at = Some(now + self.cfg.retry_backoff);
    }

    pub(super) fn backing_off(&self, now: Instant) -> bool {
        self.retry_at.is_some_and(|t| now < t)
    }

    /// The coordinator answered in a way that keeps the session alive.
    pub(super) fn contact(&mut self, now: Instant) {
        self.last_contact = self.last_contact.max(now);
    }

    pub(super) fn coordinator_lost(&mut self, why: &str) {
        if let Some(c) = self.coordinator.take() {
            debug!(node = c.node, why, "group coordinator lost");
            self.note(Note::CoordinatorLost(why.to_owned()));
        }
    }

    pub(super) fn note(&mut self, note: Note) {
        self.notes.push_back(note);
    }

    pub(super) fn pop_note(&mut self) -> Option<Note> {
        self.notes.pop_front()
    }

    /// Commits from now on are made as this generation or epoch and member id.
    pub(super) fn publish_identity(&mut self, generation_or_epoch: i32, member_id: &str) {
        if self.published.0 != generation_or_epoch || self.published.1 != member_id {
            self.published = (generation_or_epoch, member_id.to_owned());
            self.note(Note::Identity(generation_or_epoch, member_id.to_owned()));
        }
    }

    /// The identity commits use.
    #[cfg(test)]
    pub(super) fn published_identity(&self) -> (i32, &str) {
        (self.published.0, &self.published.1)
    }

    /// Reports the owned partitions when they changed.
    pub(super) fn publish_owned(&mut self) {
        if self.own.owned() != &self.published_owned {
            self.published_owned = self.own.owned().clone();
            self.note(Note::Owned(self.published_owned.clone()));
        }
    }

    /// Membership cannot go on: the driver reports `e`, hand-overs under way finish, the
    /// member leaves.
    pub(super) fn fail(&mut self, e: Error) {
        warn!(error = %e, "group membership failed");
        if self.fail.is_none() {
            self.fail = Some(e);
        }
        if self.stage == Stage::Active {
            self.stage = Stage::Failed;
        }
    }

    pub(super) fn take_failure(&mut self) -> Option<Error> {
        self.fail.take()
    }

    /// The member fell out of the group: everything owned is lost.
    pub(super) fn lose_all(&mut self) {
        self.own.lose_all();
    }
}
