//! What the core's tests share: settings, metadata and answers made up for them, and
//! [`Drive`], which plays the driver in made-up time.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_protocol::messages::consumer_group_heartbeat_response::{Assignment as TargetAssignment, TopicPartitions};
use strom_protocol::messages::{
    ConsumerGroupHeartbeatResponse, HeartbeatResponse, JoinGroupResponse, SyncGroupResponse,
};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use super::common::Protocol;
use super::io::{Action, CoordinatorInfo, HandOver, HandOverKind, Note, OpId, Request, Response, Settings};
use super::machine::Membership;
use crate::consumer::assignor::{self, Assignment};
use crate::consumer::state::Subscription;
use crate::metadata::{ClusterMetadata, TopicInfo};
use crate::topic_partition::TopicPartition;
use crate::wire::s;

pub(super) const HEARTBEAT: Duration = Duration::from_secs(1);
pub(super) const SESSION: Duration = Duration::from_secs(10);
pub(super) const MAX_POLL: Duration = Duration::from_secs(30);
pub(super) const BACKOFF: Duration = Duration::from_millis(100);

pub(super) fn settings(instance: Option<&str>) -> Settings {
    Settings {
        group_id: "g".into(),
        instance_id: instance.map(str::to_owned),
        session_timeout: SESSION,
        rebalance_timeout: MAX_POLL,
        heartbeat_interval: HEARTBEAT,
        retry_backoff: BACKOFF,
        metadata_max_age: Duration::from_secs(300),
        rack: None,
    }
}

pub(super) fn subscribe(topics: &[&str]) -> Subscription {
    Subscription::Topics(topics.iter().map(|t| (*t).to_owned()).collect())
}

pub(super) fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition::new(topic, partition)
}

pub(super) fn tps(topic: &str, partitions: &[i32]) -> BTreeSet<TopicPartition> {
    partitions.iter().map(|p| tp(topic, *p)).collect()
}

pub(super) fn set(partitions: &[TopicPartition]) -> BTreeSet<TopicPartition> {
    partitions.iter().cloned().collect()
}

pub(super) fn coordinator() -> CoordinatorInfo {
    CoordinatorInfo {
        node: 1,
        addr: "broker-1:9092".into(),
        leave_group_version: 5,
        consumer_group_heartbeat: true,
    }
}

/// A stable id per topic name, for metadata and KIP-848 assignments.
pub(super) fn topic_id(name: &str) -> Uuid {
    let mut b = [0u8; 16];
    for (i, c) in name.bytes().enumerate() {
        b[i % 16] ^= c;
    }
    b[15] ^= 0x5a;
    Uuid::from_bytes(b)
}

/// Metadata knowing these topics, each with this many partitions.
pub(super) fn metadata(topics: &[(&str, i32)]) -> Arc<ClusterMetadata> {
    let mut md = ClusterMetadata::default();
    for (name, partitions) in topics {
        md.topics.insert(
            (*name).to_owned(),
            TopicInfo {
                name: (*name).to_owned(),
                topic_id: topic_id(name),
                is_internal: false,
                partitions: (0..*partitions)
                    .map(|p| crate::metadata::PartitionInfo {
                        partition: p,
                        leader: 1,
                        leader_epoch: 0,
                        replicas: vec![1],
                        isr: vec![1],
                        offline_replicas: Vec::new(),
                        error: ErrorCode::None,
                    })
                    .collect(),
            },
        );
    }
    Arc::new(md)
}

pub(super) fn join_ok(member: &str, leader: &str, generation: i32) -> Response {
    Response::JoinGroup(
        JoinGroupResponse::default()
            .with_member_id(s(member))
            .with_leader(s(leader))
            .with_generation_id(generation)
            .with_protocol_name(Some(s("range"))),
    )
}

pub(super) fn join_error(code: ErrorCode, member: &str) -> Response {
    Response::JoinGroup(
        JoinGroupResponse::default()
            .with_error_code(code.code())
            .with_member_id(s(member))
            .with_generation_id(-1),
    )
}

pub(super) fn sync_ok(partitions: &[TopicPartition]) -> Response {
    let bytes = Assignment {
        partitions: partitions.to_vec(),
        user_data: None,
    }
    .encode(assignor::CONSUMER_PROTOCOL_VERSION)
    .unwrap();
    Response::SyncGroup(SyncGroupResponse::default().with_assignment(bytes))
}

pub(super) fn sync_error(code: ErrorCode) -> Response {
    Response::SyncGroup(
        SyncGroupResponse::default()
            .with_error_code(code.code())
            .with_assignment(Bytes::new()),
    )
}

pub(super) fn heartbeat(code: ErrorCode) -> Response {
    Response::Heartbeat(HeartbeatResponse::default().with_error_code(code.code()))
}

/// A KIP-848 answer: `epoch`, and a target assignment when `target` is given.
pub(super) fn cgh(member: &str, epoch: i32, target: Option<&[(&str, &[i32])]>) -> Response {
    Response::ConsumerGroupHeartbeat(
        ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(s(member)))
            .with_member_epoch(epoch)
            .with_heartbeat_interval_ms(HEARTBEAT.as_millis() as i32)
            .with_assignment(target.map(|t| {
                TargetAssignment::default().with_topic_partitions(
                    t.iter()
                        .map(|(name, ps)| {
                            TopicPartitions::default()
                                .with_topic_id(topic_id(name))
                                .with_partitions(ps.to_vec())
                        })
                        .collect(),
                )
            })),
    )
}

pub(super) fn cgh_error(code: ErrorCode) -> Response {
    Response::ConsumerGroupHeartbeat(
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code.code())
            .with_member_epoch(-1),
    )
}

/// The subscription a JoinGroup carries for its first protocol.
pub(super) fn join_subscription(r: &Request) -> assignor::Subscription {
    let Request::JoinGroup(j) = r else {
        panic!("not a JoinGroup: {r:?}")
    };
    assignor::Subscription::decode(j.protocols[0].metadata.clone()).unwrap()
}

/// The partitions a ConsumerGroupHeartbeat reports owned, by topic name.
pub(super) fn reported(r: &Request, topics: &[&str]) -> BTreeSet<TopicPartition> {
    let Request::ConsumerGroupHeartbeat(h) = r else {
        panic!("not a ConsumerGroupHeartbeat: {r:?}")
    };
    let mut out = BTreeSet::new();
    for t in h.topic_partitions.iter().flatten() {
        let name = topics
            .iter()
            .find(|n| topic_id(n) == t.topic_id)
            .expect("an owned topic of the test");
        out.extend(t.partitions.iter().map(|p| tp(name, *p)));
    }
    out
}

/// The core in made-up time, with the driver's side played by the test.
pub(super) struct Drive<P> {
    pub(super) m: Membership<P>,
    pub(super) now: Instant,
    pub(super) start: Instant,
}

impl<P: Protocol> Drive<P> {
    pub(super) fn new(settings: Settings, sub: Subscription, protocol: P) -> Self {
        let start = Instant::now();
        Drive {
            m: Membership::new(settings, sub, protocol, start),
            now: start,
            start,
        }
    }

    /// Moves the clock on; the application polls as time passes unless `polling` is off.
    pub(super) fn advance(&mut self, by: Duration, polling: bool) {
        self.now += by;
        if polling {
            self.m.polled(self.now);
        }
        self.m.handle_timeout(self.now);
    }

    pub(super) fn action(&mut self) -> Action {
        self.m.poll_action(self.now)
    }

    pub(super) fn notes(&mut self) -> Vec<Note> {
        std::iter::from_fn(|| self.m.poll_note()).collect()
    }

    /// Expects a coordinator lookup and answers it.
    pub(super) fn find(&mut self) {
        match self.action() {
            Action::FindCoordinator(id) => self.m.coordinator_found(self.now, id, coordinator()),
            a => panic!("expected a coordinator lookup, got {a:?}"),
        }
    }

    pub(super) fn send(&mut self) -> (OpId, Request) {
        match self.action() {
            Action::Send(id, r) => (id, r),
            a => panic!("expected a request, got {a:?}"),
        }
    }

    pub(super) fn reply(&mut self, id: OpId, response: Response) {
        self.m.handle_response(self.now, id, Ok(response));
    }

    /// Expects a request and answers it; returns the request.
    pub(super) fn exchange(&mut self, response: Response) -> Request {
        let (id, r) = self.send();
        self.reply(id, response);
        r
    }

    pub(super) fn metadata(&mut self, md: Arc<ClusterMetadata>) -> super::io::MetadataWant {
        match self.action() {
            Action::Metadata(id, want) => {
                self.m.handle_metadata(self.now, id, Ok(md));
                want
            }
            a => panic!("expected a metadata request, got {a:?}"),
        }
    }

    pub(super) fn hand_over(&mut self) -> HandOver {
        match self.action() {
            Action::HandOver(h) => h,
            a => panic!("expected a hand-over, got {a:?}"),
        }
    }

    /// Expects a hand-over of this kind and acknowledges it; returns its partitions.
    pub(super) fn applied(&mut self, kind: HandOverKind) -> BTreeSet<TopicPartition> {
        let h = self.hand_over();
        assert_eq!(h.kind, kind, "{h:?}");
        self.m.handed_over(self.now);
        h.partitions.into_iter().collect()
    }

    pub(super) fn wait(&mut self) -> Option<Instant> {
        match self.action() {
            Action::Wait(until) => until,
            a => panic!("expected to wait, got {a:?}"),
        }
    }
}
