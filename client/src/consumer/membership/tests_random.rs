//! The core alone under seeded random events, checked against its invariants after every
//! action. A made-up coordinator answers each request after a random delay (or fails it,
//! or answers late, after the core gave up on it) with codes drawn from each API's table,
//! random assignments, epoch bumps and deliberately stale KIP-848 answers; the application
//! acknowledges hand-overs late, stops polling for a while (sometimes past
//! `max.poll.interval.ms`), changes its subscription, or closes; a topic's metadata appears
//! late. Invariants:
//!
//! 1. the application never holds a partition outside the member's latest assignment: an
//!    assignment hand-over only completes the latest assignment the core took, and outside
//!    a hand-over everything held is in it (a loss empties it);
//! 2. nothing held is released before the application acknowledged its revocation: every
//!    JoinGroup or ConsumerGroupHeartbeat reports owned at least what the application holds
//!    or is still revoking, an eager JoinGroup is sent holding nothing, and a leave is sent
//!    holding nothing unless the application stopped polling (a poll timeout);
//! 3. the generation or epoch commits use never goes back (except to "none" when the member
//!    falls out of the group), and no heartbeat is sent with an older epoch than the last;
//! 4. one hand-over at a time, no busy loop (a wait is always for a later instant), and a
//!    closing member is done within the leave bound.
//!
//! `MEMBERSHIP_SEEDS` (default 300 per flavour, about 3 s; 12,000 passed once) and
//! `MEMBERSHIP_SEED` (one seed) choose the seeds; a failure names its seed and flavour.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use strom_protocol::messages::join_group_response::JoinGroupResponseMember;
use strom_protocol::messages::{JoinGroupResponse, LeaveGroupResponse};
use strom_protocol::ErrorCode;

use super::classic::Classic;
use super::common::Protocol;
use super::io::{Action, HandOver, HandOverKind, Note, OpId, Request, Response, LEAVE_BOUND};
use super::kip848::Kip848;
use super::machine::Membership;
use super::test_support::*;
use crate::consumer::assignor;
use crate::consumer::state::Subscription;
use crate::error::Error;
use crate::topic_partition::TopicPartition;
use crate::wire::s;

const MAX_ACTIONS: usize = 600;

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn millis(&mut self, max: u64) -> Duration {
        Duration::from_millis(self.below(max + 1))
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }

    fn subset(&mut self, of: &[TopicPartition]) -> BTreeSet<TopicPartition> {
        of.iter().filter(|_| self.chance(50)).cloned().collect()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flavor {
    Eager,
    Cooperative,
    StaticEager,
    Kip848,
    Kip848Static,
}

impl Flavor {
    fn kip848(self) -> bool {
        matches!(self, Flavor::Kip848 | Flavor::Kip848Static)
    }
}

/// What the made-up cluster does for an operation, when.
enum Delivery {
    Found(OpId, bool),
    Answer(
        OpId,
        Box<std::result::Result<Response, ErrorCode>>,
        Option<BTreeSet<TopicPartition>>,
    ),
    Metadata(OpId),
}

#[derive(Debug, Default)]
struct Stats {
    assigns: u64,
    revokes: u64,
    lost: u64,
    poll_timeout_leaves: u64,
    stale_answers: u64,
    fails: u64,
    closed: u64,
}

struct World {
    seed: u64,
    flavor: Flavor,
    rng: Rng,
    now: Instant,
    // The application.
    holds: BTreeSet<TopicPartition>,
    unacked: Option<HandOver>,
    ack_at: Option<Instant>,
    /// Not polling until then.
    paused_until: Option<Instant>,
    last_poll: Instant,
    closing: Option<Instant>,
    with_u: bool,
    // What the core was told, as far as it took it.
    latest: BTreeSet<TopicPartition>,
    high: i32,
    last_epoch_sent: i32,
    // The made-up coordinator.
    generation: i32,
    epoch: i32,
    members: u32,
    u_known: bool,
    pending: Vec<(Instant, Delivery)>,
}

fn universe(with_u: bool) -> Vec<TopicPartition> {
    let mut all: Vec<TopicPartition> = (0..6).map(|p| tp("t", p)).collect();
    if with_u {
        all.extend((0..3).map(|p| tp("u", p)));
    }
    all
}

impl World {
    fn fail(&self, what: impl std::fmt::Display) -> ! {
        panic!(
            "seed {} ({:?}): {what}\nreproduce: MEMBERSHIP_SEED={} cargo test -p strom-client --lib membership::tests_random",
            self.seed, self.flavor, self.seed
        )
    }

    fn check(&self, ok: bool, what: impl FnOnce() -> String) {
        if !ok {
            self.fail(what());
        }
    }

    fn subscription(&self) -> Subscription {
        if self.with_u {
            subscribe(&["t", "u"])
        } else {
            subscribe(&["t"])
        }
    }

    /// What the application holds or is still giving up.
    fn not_released(&self) -> BTreeSet<TopicPartition> {
        let mut all = self.holds.clone();
        if let Some(h) = &self.unacked {
            all.extend(h.partitions.iter().cloned());
        }
        all
    }

    fn polling(&self) -> bool {
        self.paused_until.is_none_or(|t| self.now >= t)
    }

    fn poll_timed_out(&self) -> bool {
        self.now >= self.last_poll + MAX_POLL
    }

    fn notes<P: Protocol>(&mut self, m: &mut Membership<P>) {
        while let Some(n) = m.poll_note() {
            if let Note::Identity(v, _) = n {
                let none = if self.flavor.kip848() { v <= 0 } else { v < 0 };
                if none {
                    // Out of the group: it holds no assignment.
                    self.latest.clear();
                } else {
                    let high = self.high;
                    self.check(v >= high, || format!("generation/epoch went back from {high} to {v}"));
                    self.high = v;
                }
            }
        }
    }

    fn hand_over(&mut self, h: HandOver) {
        self.check(self.unacked.is_none(), || {
            format!("{h:?} while {:?} is not acknowledged", self.unacked)
        });
        let parts: BTreeSet<TopicPartition> = h.partitions.iter().cloned().collect();
        match h.kind {
            HandOverKind::Assign => {
                let after: BTreeSet<TopicPartition> = self.holds.union(&parts).cloned().collect();
                self.check(after.is_subset(&self.latest), || {
                    format!(
                        "assigned {parts:?}: holds {after:?}, beyond the latest assignment {:?}",
                        self.latest
                    )
                });
                self.holds = after;
            }
            HandOverKind::Revoke | HandOverKind::Lost => {
                self.check(parts.is_subset(&self.holds), || {
                    format!("{:?} of {parts:?}, not all held ({:?})", h.kind, self.holds)
                });
                self.holds.retain(|tp| !parts.contains(tp));
            }
        }
        self.ack_at = Some(self.now + self.rng.millis(1_500));
        self.unacked = Some(h);
    }

    /// Checks what a request releases; returns whether it is a leave for a poll timeout.
    fn check_request(&mut self, r: &Request) -> bool {
        let kept = self.not_released();
        let settled = self.unacked.is_none();
        let in_latest = |w: &World| w.holds.is_subset(&w.latest);
        match r {
            Request::JoinGroup(j) => {
                let sub = assignor::Subscription::decode(j.protocols[0].metadata.clone()).unwrap();
                let owned: BTreeSet<TopicPartition> = sub.owned_partitions.into_iter().collect();
                self.check(kept.is_subset(&owned), || {
                    format!("JoinGroup releases {kept:?} (owned {owned:?})")
                });
                if matches!(self.flavor, Flavor::Eager | Flavor::StaticEager) {
                    self.check(kept.is_empty(), || format!("eager JoinGroup while holding {kept:?}"));
                }
                self.check(!settled || in_latest(self), || {
                    format!("joins holding {:?} outside {:?}", self.holds, self.latest)
                });
            }
            Request::Heartbeat(_) => {
                self.check(!settled || in_latest(self), || {
                    format!("heartbeats holding {:?} outside {:?}", self.holds, self.latest)
                });
            }
            Request::SyncGroup(_) => {}
            Request::ConsumerGroupHeartbeat(h) if h.member_epoch >= 0 => {
                let owned = reported(r, &["t", "u"]);
                self.check(kept.is_subset(&owned), || {
                    format!("heartbeat releases {kept:?} (owned {owned:?})")
                });
                let last = self.last_epoch_sent;
                self.check(h.member_epoch == 0 || h.member_epoch >= last, || {
                    format!("heartbeat with epoch {} after {last}", h.member_epoch)
                });
                if h.member_epoch > 0 {
                    self.last_epoch_sent = h.member_epoch;
                }
                self.check(!settled || in_latest(self), || {
                    format!("heartbeats holding {:?} outside {:?}", self.holds, self.latest)
                });
            }
            Request::LeaveGroup(_) | Request::ConsumerGroupHeartbeat(_) => {
                let timed_out = self.poll_timed_out();
                self.check(kept.is_empty() || timed_out, || {
                    format!("leaves while holding {kept:?}")
                });
                return timed_out && !kept.is_empty();
            }
        }
        false
    }

    /// The made-up coordinator's answer to `r`, and the assignment it gives.
    fn answer(&mut self, r: &Request) -> (Response, Option<BTreeSet<TopicPartition>>) {
        let rng = &mut self.rng;
        match r {
            Request::JoinGroup(j) => {
                let member = if j.member_id.is_empty() {
                    self.members += 1;
                    format!("m{}", self.members)
                } else {
                    j.member_id.to_string()
                };
                if j.member_id.is_empty() && j.group_instance_id.is_none() && rng.chance(30) {
                    return (join_error(ErrorCode::MemberIdRequired, &member), None);
                }
                let code = rng.pick(&[
                    ErrorCode::None,
                    ErrorCode::None,
                    ErrorCode::None,
                    ErrorCode::None,
                    ErrorCode::RebalanceInProgress,
                    ErrorCode::UnknownMemberId,
                    ErrorCode::IllegalGeneration,
                    ErrorCode::NotCoordinator,
                    ErrorCode::CoordinatorLoadInProgress,
                ]);
                if code != ErrorCode::None {
                    return (join_error(code, &member), None);
                }
                self.generation += 1;
                let leader = rng.chance(25);
                let mut resp = JoinGroupResponse::default()
                    .with_member_id(s(&member))
                    .with_leader(s(if leader { &member } else { "other" }))
                    .with_generation_id(self.generation)
                    .with_protocol_name(Some(j.protocols[0].name.clone()));
                if leader {
                    resp = resp.with_members(vec![JoinGroupResponseMember::default()
                        .with_member_id(s(&member))
                        .with_metadata(j.protocols[0].metadata.clone())]);
                }
                (Response::JoinGroup(resp), None)
            }
            Request::SyncGroup(_) => {
                let code = rng.pick(&[
                    ErrorCode::None,
                    ErrorCode::None,
                    ErrorCode::None,
                    ErrorCode::None,
                    ErrorCode::RebalanceInProgress,
                    ErrorCode::UnknownMemberId,
                    ErrorCode::IllegalGeneration,
                    ErrorCode::NotCoordinator,
                ]);
                if code != ErrorCode::None {
                    return (sync_error(code), None);
                }
                let assigned = rng.subset(&universe(self.with_u));
                let list: Vec<TopicPartition> = assigned.iter().cloned().collect();
                (sync_ok(&list), Some(assigned))
            }
            Request::Heartbeat(_) => {
                let fenced = self.flavor == Flavor::StaticEager && rng.chance(1);
                let code = if fenced {
                    ErrorCode::FencedInstanceId
                } else {
                    rng.pick(&[
                        ErrorCode::None,
                        ErrorCode::None,
                        ErrorCode::None,
                        ErrorCode::None,
                        ErrorCode::None,
                        ErrorCode::None,
                        ErrorCode::RebalanceInProgress,
                        ErrorCode::RebalanceInProgress,
                        ErrorCode::UnknownMemberId,
                        ErrorCode::IllegalGeneration,
                        ErrorCode::NotCoordinator,
                        ErrorCode::CoordinatorLoadInProgress,
                    ])
                };
                (heartbeat(code), None)
            }
            Request::LeaveGroup(_) => (Response::LeaveGroup(LeaveGroupResponse::default()), None),
            Request::ConsumerGroupHeartbeat(h) if h.member_epoch < 0 => (cgh("m", h.member_epoch, None), None),
            Request::ConsumerGroupHeartbeat(h) => {
                let code = rng.pick(&[
                    ErrorCode::None,
                    ErrorCode::None,
                    ErrorCode::None,
                    ErrorCode::None,
                    ErrorCode::None,
                    ErrorCode::None,
                    ErrorCode::None,
                    ErrorCode::None,
                    ErrorCode::FencedMemberEpoch,
                    ErrorCode::UnknownMemberId,
                    ErrorCode::NotCoordinator,
                    ErrorCode::CoordinatorNotAvailable,
                    ErrorCode::CoordinatorLoadInProgress,
                ]);
                if code != ErrorCode::None {
                    return (cgh_error(code), None);
                }
                let sent = h.member_epoch;
                if sent >= 2 && rng.chance(5) {
                    // An answer from before: an older epoch, and a target long gone.
                    let old = 1 + rng.below(sent as u64 - 1) as i32;
                    let junk: Vec<i32> = (0..6).collect();
                    return (cgh("m", old, Some(&[("t", &junk)])), None);
                }
                if sent == 0 {
                    self.epoch += 1;
                }
                if rng.chance(15) {
                    self.epoch += 1;
                }
                self.epoch = self.epoch.max(sent);
                if sent == 0 || rng.chance(35) {
                    let with_u = self.with_u || rng.chance(20);
                    let target = rng.subset(&universe(with_u));
                    let t: Vec<i32> = target
                        .iter()
                        .filter(|tp| &*tp.topic == "t")
                        .map(|tp| tp.partition)
                        .collect();
                    let u: Vec<i32> = target
                        .iter()
                        .filter(|tp| &*tp.topic == "u")
                        .map(|tp| tp.partition)
                        .collect();
                    let mut parts: Vec<(&str, &[i32])> = vec![("t", &t)];
                    if !u.is_empty() {
                        parts.push(("u", &u));
                    }
                    (cgh("m", self.epoch, Some(&parts)), Some(target))
                } else {
                    (cgh("m", self.epoch, None), None)
                }
            }
        }
    }

    fn schedule(&mut self, after: Duration, d: Delivery) {
        self.pending.push((self.now + after, d));
    }

    /// Moves time to the next thing that happens and makes it happen.
    fn advance<P: Protocol>(&mut self, m: &mut Membership<P>, until: Option<Instant>, stats: &mut Stats) {
        let environment = self.now + self.rng.millis(3_000);
        let mut next = until.unwrap_or(environment).min(environment);
        for (at, _) in &self.pending {
            next = next.min(*at);
        }
        if let Some(t) = self.ack_at {
            next = next.min(t.max(self.paused_until.unwrap_or(t)));
        }
        self.now = self.now.max(next);
        if self.polling() {
            self.last_poll = self.now;
            m.polled(self.now);
        }
        let due: Vec<(Instant, Delivery)>;
        (due, self.pending) = std::mem::take(&mut self.pending)
            .into_iter()
            .partition(|(at, _)| *at <= self.now);
        for (_, d) in due {
            self.deliver(m, d, stats);
        }
        if self.ack_at.is_some_and(|t| t <= self.now) && self.polling() {
            self.ack_at = None;
            self.unacked = None;
            m.handed_over(self.now);
            self.notes(m);
        }
        if self.now == environment && self.closing.is_none() {
            match self.rng.below(100) {
                0..=2 => self.paused_until = Some(self.now + self.rng.millis(60_000)),
                3..=5 => {
                    self.with_u = !self.with_u;
                    m.subscribe(self.now, self.subscription());
                }
                6 => {
                    // The consumer closes: it revokes (and commits) itself, then leaves.
                    self.holds.clear();
                    self.unacked = None;
                    self.ack_at = None;
                    self.closing = Some(self.now);
                    stats.closed += 1;
                    m.leave(self.now);
                }
                7..=11 => self.u_known = true,
                _ => {}
            }
        }
        m.handle_timeout(self.now);
        self.notes(m);
    }

    fn deliver<P: Protocol>(&mut self, m: &mut Membership<P>, d: Delivery, stats: &mut Stats) {
        match d {
            Delivery::Found(id, true) => m.coordinator_found(self.now, id, coordinator()),
            Delivery::Found(id, false) => {
                m.coordinator_failed(self.now, id, &Error::kafka(ErrorCode::CoordinatorNotAvailable))
            }
            Delivery::Metadata(id) => {
                let md = if self.u_known {
                    metadata(&[("t", 6), ("u", 3)])
                } else {
                    metadata(&[("t", 6)])
                };
                m.handle_metadata(self.now, id, Ok(md));
            }
            Delivery::Answer(id, answer, assigned) => {
                let taken = m.inflight_id() == Some(id);
                if !taken {
                    stats.stale_answers += 1;
                }
                m.handle_response(self.now, id, (*answer).map_err(Error::kafka));
                self.notes(m);
                if let (true, Some(a)) = (taken, assigned) {
                    self.latest = a;
                }
            }
        }
        self.notes(m);
    }
}

fn run<P: Protocol>(seed: u64, flavor: Flavor, protocol: P, stats: &mut Stats) {
    let mut rng = Rng(seed.wrapping_mul(31).wrapping_add(flavor as u64));
    let with_u = rng.chance(30);
    let start = Instant::now();
    let instance = matches!(flavor, Flavor::StaticEager | Flavor::Kip848Static).then_some("i1");
    let mut w = World {
        seed,
        flavor,
        rng,
        now: start,
        holds: BTreeSet::new(),
        unacked: None,
        ack_at: None,
        paused_until: None,
        last_poll: start,
        closing: None,
        with_u,
        latest: BTreeSet::new(),
        high: -1,
        last_epoch_sent: 0,
        generation: 0,
        epoch: 0,
        members: 0,
        u_known: false,
        pending: Vec::new(),
    };
    let mut m = Membership::new(settings(instance), w.subscription(), protocol, start);
    let mut same_instant = 0;
    let mut at = start;
    for _ in 0..MAX_ACTIONS {
        let action = m.poll_action(w.now);
        w.notes(&mut m);
        if w.now == at {
            same_instant += 1;
            w.check(same_instant < 100, || {
                "the core keeps acting while time stands still".into()
            });
        } else {
            (at, same_instant) = (w.now, 0);
        }
        match action {
            Action::FindCoordinator(id) => {
                let (after, ok) = (w.rng.millis(50), w.rng.chance(85));
                w.schedule(after, Delivery::Found(id, ok));
            }
            Action::Send(id, r) => {
                if w.check_request(&r) {
                    stats.poll_timeout_leaves += 1;
                }
                let (response, assigned) = w.answer(&r);
                match w.rng.below(100) {
                    // The connection breaks.
                    0..=4 => {
                        let after = w.rng.millis(100);
                        w.schedule(
                            after,
                            Delivery::Answer(id, Box::new(Err(ErrorCode::NetworkException)), None),
                        );
                    }
                    // No answer: request.timeout.ms.
                    5..=7 => w.schedule(
                        Duration::from_secs(5),
                        Delivery::Answer(id, Box::new(Err(ErrorCode::RequestTimedOut)), None),
                    ),
                    _ => {
                        let after = w.rng.millis(1_500);
                        w.schedule(after, Delivery::Answer(id, Box::new(Ok(response)), assigned));
                    }
                }
            }
            Action::Metadata(id, _) => {
                let after = w.rng.millis(20);
                w.schedule(after, Delivery::Metadata(id));
            }
            Action::HandOver(h) => {
                match h.kind {
                    HandOverKind::Assign => stats.assigns += 1,
                    HandOverKind::Revoke => stats.revokes += 1,
                    HandOverKind::Lost => stats.lost += 1,
                }
                w.hand_over(h);
            }
            Action::Fail(_) => stats.fails += 1,
            Action::Wait(until) => {
                if let Some(t) = until {
                    w.check(t > w.now, || format!("waits until {t:?}, not after now {:?}", w.now));
                }
                w.advance(&mut m, until, stats);
            }
            Action::Done => {
                if let Some(closed) = w.closing {
                    let took = w.now.duration_since(closed);
                    w.check(took <= LEAVE_BOUND, || format!("closing took {took:?}"));
                }
                return;
            }
        }
    }
}

fn seeds() -> Vec<u64> {
    if let Some(seed) = std::env::var("MEMBERSHIP_SEED").ok().and_then(|v| v.parse().ok()) {
        return vec![seed];
    }
    let n = std::env::var("MEMBERSHIP_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(300u64);
    (0..n).collect()
}

fn classic_with(flavor: Flavor) -> Classic {
    let name = match flavor {
        Flavor::Cooperative => "cooperative-sticky",
        _ => "range",
    };
    Classic::new(vec![assignor::assignor_by_name(name).unwrap()])
}

#[test]
fn random_events_keep_every_invariant() {
    let mut stats = Stats::default();
    for seed in seeds() {
        for flavor in [
            Flavor::Eager,
            Flavor::Cooperative,
            Flavor::StaticEager,
            Flavor::Kip848,
            Flavor::Kip848Static,
        ] {
            if flavor.kip848() {
                run(seed, flavor, Kip848::new("m".into(), HEARTBEAT), &mut stats);
            } else {
                run(seed, flavor, classic_with(flavor), &mut stats);
            }
        }
    }
    // The seeds reached what the invariants are about.
    if std::env::var_os("MEMBERSHIP_SEED").is_none() {
        assert!(
            stats.assigns > 0
                && stats.revokes > 0
                && stats.lost > 0
                && stats.poll_timeout_leaves > 0
                && stats.stale_answers > 0
                && stats.fails > 0
                && stats.closed > 0,
            "{stats:?}"
        );
    }
}
