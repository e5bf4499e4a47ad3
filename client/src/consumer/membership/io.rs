//! What crosses the line between the membership core and its driver: the settings the core
//! starts from, the requests it asks to send and the answers fed back, the actions it asks
//! for ([`Action`]), the partitions it hands to the application ([`HandOver`]) and what it
//! reports on the side ([`Note`]: metrics, the member's identity for commits, a lost
//! coordinator).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use strom_protocol::messages::{
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest, SyncGroupResponse,
};

use crate::error::Error;
use crate::topic_partition::TopicPartition;

/// Names one operation the core asked for (a lookup, a request, a metadata refresh), so an
/// answer that comes after the core gave up on it is recognised and ignored.
pub(crate) type OpId = u64;

/// How long a leave (LeaveGroup, or a ConsumerGroupHeartbeat with a leave epoch) may take
/// before the member stops waiting for its answer.
pub(crate) const LEAVE_BOUND: Duration = Duration::from_secs(5);

/// The member's settings (from the consumer's config).
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) group_id: String,
    /// `group.instance.id`: a static member (KIP-345).
    pub(crate) instance_id: Option<String>,
    pub(crate) session_timeout: Duration,
    /// `max.poll.interval.ms`: also the rebalance timeout.
    pub(crate) rebalance_timeout: Duration,
    pub(crate) heartbeat_interval: Duration,
    pub(crate) retry_backoff: Duration,
    pub(crate) metadata_max_age: Duration,
    pub(crate) rack: Option<String>,
}

/// `d` in whole milliseconds as the protocol's `i32`, saturated.
pub(crate) fn ms(d: Duration) -> i32 {
    i32::try_from(d.as_millis()).unwrap_or(i32::MAX)
}

/// The coordinator the driver found and connected to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CoordinatorInfo {
    pub(crate) node: i32,
    pub(crate) addr: String,
    /// The LeaveGroup version negotiated with it (v3 names members in a list).
    pub(crate) leave_group_version: i16,
    /// Whether it has the ConsumerGroupHeartbeat API at all (KIP-848).
    pub(crate) consumer_group_heartbeat: bool,
}

/// A request for the coordinator.
#[derive(Debug, Clone)]
pub(crate) enum Request {
    JoinGroup(JoinGroupRequest),
    SyncGroup(SyncGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest),
}

impl Request {
    /// A heartbeat in the metrics' sense (`heartbeat-rate`): a Heartbeat, or a
    /// ConsumerGroupHeartbeat that is not a leave.
    pub(crate) fn is_heartbeat(&self) -> bool {
        match self {
            Request::Heartbeat(_) => true,
            Request::ConsumerGroupHeartbeat(r) => r.member_epoch >= 0,
            _ => false,
        }
    }
}

/// The coordinator's answer to a [`Request`] (of the same kind).
#[derive(Debug, Clone)]
pub(crate) enum Response {
    JoinGroup(JoinGroupResponse),
    SyncGroup(SyncGroupResponse),
    Heartbeat(HeartbeatResponse),
    LeaveGroup(LeaveGroupResponse),
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatResponse),
}

/// Metadata the core needs: of these topics (all when `None`), from the client's snapshot
/// when `cached`, else asked of a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MetadataWant {
    pub(crate) topics: Option<Vec<String>>,
    pub(crate) cached: bool,
}

/// What a hand-over asks of the application.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandOverKind {
    /// Give these up (commit first): they go to other members once acknowledged.
    Revoke,
    /// These now belong to the member.
    Assign,
    /// These are already someone else's: drop them without committing.
    Lost,
}

/// Partitions handed to the application, which answers with
/// [`Membership::handed_over`](super::machine::Membership::handed_over) once it applied them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HandOver {
    pub(crate) kind: HandOverKind,
    pub(crate) partitions: Vec<TopicPartition>,
}

/// What the driver does next ([`Membership::poll_action`](super::machine::Membership::poll_action)).
#[derive(Debug)]
#[must_use]
pub(crate) enum Action {
    /// Look the group coordinator up and connect to it; answer with `coordinator_found` or
    /// `coordinator_failed`.
    FindCoordinator(OpId),
    /// Send this to the coordinator; answer with `handle_response`.
    Send(OpId, Request),
    /// Get metadata; answer with `handle_metadata`.
    Metadata(OpId, MetadataWant),
    /// Hand these partitions to the application; answer with `handed_over`.
    HandOver(HandOver),
    /// Membership cannot go on: the consumer's next call returns this error. The core then
    /// winds down (hand-overs under way, a leave) and ends with [`Action::Done`].
    Fail(Error),
    /// Nothing to do until this instant (or forever when `None`), or until another event.
    Wait(Option<Instant>),
    /// The member has left its group: the driver stops.
    Done,
}

/// What the core reports on the side, for the driver to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Note {
    /// A rebalance began: a join, or a new target assignment (`rebalance-rate` & co.).
    RebalanceStarted,
    /// An attempt to rebalance failed.
    RebalanceFailed,
    /// The rebalance under way ended with an assignment applied.
    RebalanceSucceeded,
    /// Who commits now: generation (classic) or member epoch (KIP-848), and member id.
    Identity(i32, String),
    /// The partitions the member owns now (a revoked one leaves only once acknowledged).
    Owned(BTreeSet<TopicPartition>),
    /// The coordinator connection is no good any more (why): drop it.
    CoordinatorLost(String),
}
