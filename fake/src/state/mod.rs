//! The cluster's state and the answer to each request, sans-IO: handlers take the decoded
//! request and the time and return the response (or `None`: not yet, ask again).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_protocol::ErrorCode;
use uuid::Uuid;

use crate::consumer_group::ConsumerGroup;
use crate::group::Group;
use crate::log::PartitionLog;
use crate::txn::Txn;

mod configs;
mod data;
mod groups;
mod topics;
mod transactions;
pub(crate) use transactions::add_partitions_answer;

pub(crate) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// A broker of the fake cluster.
#[derive(Debug, Clone)]
pub(crate) struct BrokerInfo {
    pub(crate) id: i32,
    /// The host part of its address (the listener's, or its in-memory name).
    pub(crate) host: String,
    pub(crate) port: u16,
    pub(crate) up: bool,
    pub(crate) rack: Option<String>,
}

#[derive(Debug, Default)]
struct ProducerState {
    epoch: i16,
    last_seq: i32,
    /// The last batches' (first sequence, last sequence, base offset), for duplicates.
    recent: VecDeque<(i32, i32, i64)>,
}

#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) leader: i32,
    pub(crate) leader_epoch: i32,
    pub(crate) replicas: Vec<i32>,
    pub(crate) log: PartitionLog,
    producers: HashMap<i64, ProducerState>,
    /// Open transactions: producer id -> its first offset here.
    open_txns: BTreeMap<i64, i64>,
    /// Aborted transactions: (producer id, first offset, marker offset).
    aborted: Vec<(i64, i64, i64)>,
}

impl Partition {
    fn new(replicas: Vec<i32>) -> Self {
        Partition {
            leader: replicas.first().copied().unwrap_or(-1),
            leader_epoch: 0,
            replicas,
            log: PartitionLog::default(),
            producers: HashMap::new(),
            open_txns: BTreeMap::new(),
            aborted: Vec::new(),
        }
    }

    /// The last stable offset: the first offset of the oldest open transaction, else the
    /// high watermark.
    pub(crate) fn last_stable(&self) -> i64 {
        self.open_txns
            .values()
            .copied()
            .min()
            .unwrap_or_else(|| self.log.high_watermark())
    }
}

#[derive(Debug)]
pub(crate) struct Topic {
    pub(crate) id: Uuid,
    pub(crate) partitions: Vec<Partition>,
    /// Configs set on the topic (at creation); the others have their defaults.
    pub(crate) configs: BTreeMap<String, String>,
}

/// What a fault does to the requests it matches.
#[derive(Debug, Clone)]
pub enum FaultAction {
    /// Answer with this error code: per matching partition for Produce, Fetch, ListOffsets
    /// and OffsetCommit (a failed produce appends nothing), at the top level otherwise.
    Error(ErrorCode),
    /// Hold the request this long before handling it.
    Delay(Duration),
    /// Close the connection instead of answering.
    CloseConnection,
    /// Handle the request (a produce is written), then close the connection without the
    /// answer: the response lost on the way back.
    DropResponse,
    /// Answer with `throttle_time_ms` set to this long (a quota exceeded), then read nothing
    /// more from that connection until it is over (KIP-219); at versions before KIP-219
    /// (e.g. Produce v3-5), hold the response this long instead, as Kafka does.
    Throttle(Duration),
}

/// A scripted fault: the next `remaining` requests of `api` (on `node`, for `partition`)
/// get `action`.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub(crate) api: ApiKey,
    pub(crate) node: Option<i32>,
    pub(crate) partition: Option<(String, i32)>,
    pub(crate) remaining: u32,
    pub(crate) action: FaultAction,
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestRecord {
    /// The broker that received it.
    pub node: i32,
    /// Its API.
    pub api: ApiKey,
    /// Its version.
    pub version: i16,
    /// Its correlation id.
    pub correlation_id: i32,
    /// The client's `client.id`.
    pub client_id: String,
    /// When it arrived (before any injected delay).
    pub at: Instant,
    /// The partitions a Produce, Fetch, ListOffsets or OffsetCommit named, in order.
    pub partitions: Vec<(String, i32)>,
    /// A Produce's record batches, in order.
    pub batches: Vec<ProducedBatch>,
    /// A Fetch's session and positions.
    pub fetch: Option<FetchDetail>,
}

/// One record batch of a Produce request, as the client wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProducedBatch {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// The producer id (-1 without idempotence).
    pub producer_id: i64,
    /// The producer epoch.
    pub producer_epoch: i16,
    /// The sequence of its first record (-1 without idempotence).
    pub base_sequence: i32,
    /// How many records it holds.
    pub records: i32,
    /// Whether it is part of a transaction.
    pub transactional: bool,
}

/// What a Fetch request asked, as the client sent it (an incremental request of a fetch
/// session lists only the partitions that changed).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchDetail {
    /// The fetch session id (0: none or a new one).
    pub session_id: i32,
    /// The session epoch (0: a full request opening a session, -1: sessionless).
    pub session_epoch: i32,
    /// The client's rack (`client.rack`, v11+; empty without one).
    pub rack_id: String,
    /// The partitions listed, in order.
    pub partitions: Vec<FetchPosition>,
    /// The partitions the session is told to forget.
    pub forgotten: Vec<(String, i32)>,
    /// Whether topics were named by id (v13+) rather than by name.
    pub by_topic_id: bool,
}

/// One partition of a Fetch request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FetchPosition {
    /// Its topic.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// The offset asked for.
    pub fetch_offset: i64,
    /// The leader epoch the client believes current (-1: unknown or before v9).
    pub current_leader_epoch: i32,
    /// The epoch of the last batch the client fetched (-1: none, or before v12).
    pub last_fetched_epoch: i32,
}

/// Settings of the cluster.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) auto_create_topics: bool,
    pub(crate) default_partitions: i32,
    pub(crate) default_replication: i16,
    pub(crate) cluster_id: String,
    pub(crate) host: String,
    /// KIP-848 groups: `group.consumer.heartbeat.interval.ms` and
    /// `group.consumer.session.timeout.ms`.
    pub(crate) group_heartbeat_interval: Duration,
    pub(crate) group_session_timeout: Duration,
    /// Versions advertised and answered below [`crate::SUPPORTED`]'s: (API, highest).
    pub(crate) max_versions: Vec<(ApiKey, i16)>,
    /// `replica.selector.class=RackAwareReplicaSelector`: a leader sends a consumer in
    /// another rack to a replica in its own (KIP-392).
    pub(crate) rack_aware_replica_selector: bool,
    /// The finalized `transaction.version` (1 by default; 2 is KIP-890: EndTxn v5 and
    /// TxnOffsetCommit v5 answered, partitions added by Produce v12, an epoch per transaction).
    pub(crate) transaction_version: i16,
}

impl Settings {
    /// The versions of `api` this cluster answers, if any.
    pub(crate) fn versions(&self, api: ApiKey) -> Option<(i16, i16)> {
        let (_, min, max) = crate::SUPPORTED.iter().find(|(k, _, _)| *k == api)?;
        let cap = self
            .max_versions
            .iter()
            .filter(|(k, _)| *k == api)
            .map(|(_, v)| *v)
            .min()
            .unwrap_or(*max);
        // Below transaction.version 2 the transaction APIs stop before their KIP-890 versions
        // (v4 adds only TRANSACTION_ABORTABLE, which the fake never answers).
        let cap = match api {
            ApiKey::EndTxn | ApiKey::TxnOffsetCommit if self.transaction_version < 2 => cap.min(3),
            _ => cap,
        };
        (cap >= *min).then_some((*min, cap.min(*max)))
    }

    /// Whether this cluster answers `api` at `version`.
    pub(crate) fn supports(&self, api: ApiKey, version: i16) -> bool {
        self.versions(api)
            .is_some_and(|(min, max)| (min..=max).contains(&version))
    }
}

pub(crate) struct State {
    pub(crate) settings: Settings,
    pub(crate) brokers: Vec<BrokerInfo>,
    pub(crate) topics: BTreeMap<String, Topic>,
    pub(crate) groups: BTreeMap<String, Group>,
    next_producer_id: i64,
    pub(crate) faults: Vec<Fault>,
    pub(crate) requests: Vec<RequestRecord>,
    fetch_sessions: BTreeMap<(i32, i32), FetchSession>,
    next_session_id: i32,
    pub(crate) txns: BTreeMap<String, Txn>,
    pub(crate) consumer_groups: BTreeMap<String, ConsumerGroup>,
    /// Coordinators moved by [`crate::FakeCluster::move_coordinator`]: key -> broker.
    pub(crate) moved_coordinators: BTreeMap<String, i32>,
}

/// A partition of a fetch session, and what its last answer said.
#[derive(Debug, Clone)]
struct SessionPartition {
    topic: String,
    topic_id: Uuid,
    partition: i32,
    fetch_offset: i64,
    max_bytes: i32,
    /// The leader epoch the client last named (-1: none).
    current_leader_epoch: i32,
    /// (high watermark, log start) last sent.
    sent: Option<(i64, i64)>,
}

/// A fetch session (KIP-227) of one broker.
#[derive(Debug)]
struct FetchSession {
    /// The epoch the next request must carry.
    epoch: i32,
    partitions: Vec<SessionPartition>,
}

/// Fetch sessions a broker keeps (max.incremental.fetch.session.cache.slots).
const FETCH_SESSIONS_MAX: usize = 1000;

/// Partitions per topic the fake keeps (a hostile CreateTopics must not exhaust memory).
pub(crate) const MAX_PARTITIONS: i32 = 100_000;

/// Most requests the log keeps (the oldest are dropped).
const REQUEST_LOG_MAX: usize = 100_000;

/// Whether `name` is a legal topic name (Kafka's rules).
fn legal_topic(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

impl State {
    pub(crate) fn new(settings: Settings, brokers: Vec<BrokerInfo>) -> Self {
        State {
            settings,
            brokers,
            topics: BTreeMap::new(),
            groups: BTreeMap::new(),
            next_producer_id: 1000,
            faults: Vec::new(),
            requests: Vec::new(),
            fetch_sessions: BTreeMap::new(),
            next_session_id: 0,
            txns: BTreeMap::new(),
            consumer_groups: BTreeMap::new(),
            moved_coordinators: BTreeMap::new(),
        }
    }

    pub(crate) fn log_request(&mut self, r: RequestRecord) {
        if self.requests.len() >= REQUEST_LOG_MAX {
            self.requests.drain(..REQUEST_LOG_MAX / 10);
        }
        self.requests.push(r);
    }

    /// The first fault matching a request, used up by one.
    pub(crate) fn take_fault(&mut self, api: ApiKey, node: i32, partitions: &[(String, i32)]) -> Option<Fault> {
        let i = self.faults.iter().position(|f| {
            f.api == api
                && f.node.is_none_or(|n| n == node)
                && f.partition.as_ref().is_none_or(|p| partitions.contains(p))
        })?;
        let f = self.faults[i].clone();
        self.faults[i].remaining -= 1;
        if self.faults[i].remaining == 0 {
            self.faults.remove(i);
        }
        Some(f)
    }

    /// The host broker `id` is reached at (the listeners' host for an unknown id).
    fn host_of(&self, id: i32) -> &str {
        self.brokers
            .iter()
            .find(|b| b.id == id)
            .map_or(self.settings.host.as_str(), |b| b.host.as_str())
    }

    fn live(&self) -> impl Iterator<Item = &BrokerInfo> {
        self.brokers.iter().filter(|b| b.up)
    }

    /// Creates a topic (replicas spread round-robin over the brokers); `Err` says why not.
    pub(crate) fn create_topic(
        &mut self,
        name: &str,
        partitions: i32,
        replication: i16,
        validate_only: bool,
    ) -> Result<Uuid, (ErrorCode, String)> {
        if !legal_topic(name) {
            return Err((
                ErrorCode::InvalidTopicException,
                format!("topic name {name:?} is not legal"),
            ));
        }
        if self.topics.contains_key(name) {
            return Err((ErrorCode::TopicAlreadyExists, format!("Topic '{name}' already exists.")));
        }
        let partitions = if partitions == -1 {
            self.settings.default_partitions
        } else {
            partitions
        };
        let replication = if replication == -1 {
            self.settings.default_replication
        } else {
            replication
        };
        if partitions <= 0 {
            return Err((
                ErrorCode::InvalidPartitions,
                "Number of partitions must be larger than 0.".into(),
            ));
        }
        if partitions > MAX_PARTITIONS {
            return Err((
                ErrorCode::InvalidPartitions,
                format!("strom-fake keeps at most {MAX_PARTITIONS} partitions per topic, not {partitions}"),
            ));
        }
        let n = self.brokers.len();
        if replication <= 0 || replication as usize > n {
            return Err((
                ErrorCode::InvalidReplicationFactor,
                format!("Unable to replicate the partition {replication} time(s): The target replication factor of {replication} cannot be reached because only {n} broker(s) are registered."),
            ));
        }
        if validate_only {
            return Ok(Uuid::nil());
        }
        let id = Uuid::new_v4();
        let start = self.topics.len();
        let parts = (0..partitions)
            .map(|p| {
                let replicas: Vec<i32> = (0..replication as usize)
                    .map(|r| self.brokers[(start + p as usize + r) % n].id)
                    .collect();
                Partition::new(replicas)
            })
            .collect();
        self.topics.insert(
            name.to_owned(),
            Topic {
                id,
                partitions: parts,
                configs: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    fn partition_mut(&mut self, topic: &str, p: i32) -> Option<&mut Partition> {
        self.topics.get_mut(topic)?.partitions.get_mut(usize::try_from(p).ok()?)
    }

    pub(crate) fn name_of(&self, id: Uuid) -> Option<String> {
        self.topics.iter().find(|(_, t)| t.id == id).map(|(n, _)| n.clone())
    }

    // ---------------------------------------------------------------- ApiVersions

    pub(crate) fn api_versions(&self, error: ErrorCode) -> ApiVersionsResponse {
        let tv = self.settings.transaction_version;
        ApiVersionsResponse::default()
            .with_error_code(error.code())
            .with_supported_features(vec![api_versions_response::SupportedFeatureKey::default()
                .with_name(s("transaction.version"))
                .with_min_version(0)
                .with_max_version(2)])
            .with_finalized_features_epoch(1)
            .with_finalized_features(vec![api_versions_response::FinalizedFeatureKey::default()
                .with_name(s("transaction.version"))
                .with_min_version_level(tv)
                .with_max_version_level(tv)])
            .with_api_keys(
                crate::SUPPORTED
                    .iter()
                    .filter_map(|(k, _, _)| {
                        let (min, max) = self.settings.versions(*k)?;
                        Some(
                            api_versions_response::ApiVersion::default()
                                .with_api_key(*k as i16)
                                .with_min_version(min)
                                .with_max_version(max),
                        )
                    })
                    .collect(),
            )
    }

    // ---------------------------------------------------------------- Metadata

    pub(crate) fn metadata(&mut self, req: &MetadataRequest, inject: Option<ErrorCode>) -> MetadataResponse {
        let wanted: Option<Vec<(Option<String>, Uuid)>> = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
                .collect()
        });
        // v0 asked all topics with an empty list; v1+ with null.
        let names: Vec<(String, bool)> = match wanted {
            None => self.topics.keys().map(|n| (n.clone(), true)).collect(),
            Some(list) => list
                .into_iter()
                .filter_map(|(name, id)| name.or_else(|| self.name_of(id)).map(|n| (n, false)))
                .collect(),
        };
        let mut topics = Vec::new();
        for (name, _) in names {
            if !self.topics.contains_key(&name)
                && req.allow_auto_topic_creation
                && self.settings.auto_create_topics
                && legal_topic(&name)
            {
                let (p, r) = (self.settings.default_partitions, self.settings.default_replication);
                let _ = self.create_topic(&name, p, r, false);
            }
            let t = match self.topics.get(&name) {
                None => metadata_response::MetadataResponseTopic::default()
                    .with_name(Some(TopicName(s(&name))))
                    .with_error_code(if legal_topic(&name) {
                        ErrorCode::UnknownTopicOrPartition.code()
                    } else {
                        ErrorCode::InvalidTopicException.code()
                    }),
                Some(t) => {
                    let live: Vec<i32> = self.live().map(|b| b.id).collect();
                    metadata_response::MetadataResponseTopic::default()
                        .with_name(Some(TopicName(s(&name))))
                        .with_topic_id(t.id)
                        .with_error_code(inject.map_or(0, ErrorCode::code))
                        .with_partitions(
                            t.partitions
                                .iter()
                                .enumerate()
                                .map(|(i, p)| {
                                    let leader_up = live.contains(&p.leader);
                                    let isr: Vec<BrokerId> = p
                                        .replicas
                                        .iter()
                                        .filter(|r| live.contains(r))
                                        .map(|r| BrokerId(*r))
                                        .collect();
                                    metadata_response::MetadataResponsePartition::default()
                                        .with_partition_index(i as i32)
                                        .with_error_code(if leader_up {
                                            0
                                        } else {
                                            ErrorCode::LeaderNotAvailable.code()
                                        })
                                        .with_leader_id(BrokerId(if leader_up { p.leader } else { -1 }))
                                        .with_leader_epoch(p.leader_epoch)
                                        .with_replica_nodes(p.replicas.iter().map(|r| BrokerId(*r)).collect())
                                        .with_offline_replicas(
                                            p.replicas
                                                .iter()
                                                .filter(|r| !live.contains(r))
                                                .map(|r| BrokerId(*r))
                                                .collect(),
                                        )
                                        .with_isr_nodes(isr)
                                })
                                .collect(),
                        )
                }
            };
            topics.push(t);
        }
        MetadataResponse::default()
            .with_cluster_id(Some(s(&self.settings.cluster_id)))
            .with_controller_id(BrokerId(self.live().next().map_or(-1, |b| b.id)))
            .with_brokers(
                self.live()
                    .map(|b| {
                        metadata_response::MetadataResponseBroker::default()
                            .with_node_id(BrokerId(b.id))
                            .with_host(s(&b.host))
                            .with_port(i32::from(b.port))
                            .with_rack(b.rack.as_deref().map(s))
                    })
                    .collect(),
            )
            .with_topics(topics)
    }

    // ---------------------------------------------------------------- Coordinators

    /// The broker coordinating `key` (a live one, stable while the same brokers are up).
    pub(crate) fn coordinator(&self, key: &str) -> Option<&BrokerInfo> {
        // A coordinator moved by the test, while its broker is up.
        if let Some(b) = self
            .moved_coordinators
            .get(key)
            .and_then(|id| self.live().find(|b| b.id == *id))
        {
            return Some(b);
        }
        let live: Vec<&BrokerInfo> = self.live().collect();
        if live.is_empty() {
            return None;
        }
        let h = key
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        Some(live[h as usize % live.len()])
    }

    pub(crate) fn find_coordinator(
        &self,
        req: &FindCoordinatorRequest,
        version: i16,
        inject: Option<ErrorCode>,
    ) -> FindCoordinatorResponse {
        let answer = |key: &str| -> (ErrorCode, i32, i32) {
            if let Some(code) = inject {
                return (code, -1, -1);
            }
            match self.coordinator(key) {
                Some(b) => (ErrorCode::None, b.id, i32::from(b.port)),
                None => (ErrorCode::CoordinatorNotAvailable, -1, -1),
            }
        };
        if version >= 4 {
            let coordinators = req
                .coordinator_keys
                .iter()
                .map(|k| {
                    let (code, id, port) = answer(k);
                    find_coordinator_response::Coordinator::default()
                        .with_key(k.clone())
                        .with_error_code(code.code())
                        .with_node_id(BrokerId(id))
                        .with_host(s(self.host_of(id)))
                        .with_port(port)
                })
                .collect();
            FindCoordinatorResponse::default().with_coordinators(coordinators)
        } else {
            let (code, id, port) = answer(&req.key);
            FindCoordinatorResponse::default()
                .with_error_code(code.code())
                .with_node_id(BrokerId(id))
                .with_host(s(self.host_of(id)))
                .with_port(port)
        }
    }

    /// `Err` unless `node` coordinates `group`.
    fn check_coordinator(&self, node: i32, group: &str) -> Result<(), ErrorCode> {
        match self.coordinator(group) {
            Some(b) if b.id == node => Ok(()),
            _ => Err(ErrorCode::NotCoordinator),
        }
    }

    pub(crate) fn init_producer_id(&mut self, node: i32, req: &InitProducerIdRequest) -> InitProducerIdResponse {
        let r = InitProducerIdResponse::default();
        if req.transactional_id.as_ref().is_some_and(|t| t.0.is_empty()) {
            // As the broker: an empty transactional id is malformed.
            return r
                .with_error_code(ErrorCode::InvalidRequest.code())
                .with_producer_id(ProducerId(-1));
        }
        if let Some(tid) = &req.transactional_id {
            if let Err(e) = self.check_coordinator(node, tid.0.as_str()) {
                return r.with_error_code(e.code()).with_producer_id(ProducerId(-1));
            }
            return self.init_transactional(&tid.0.to_string(), req);
        }
        if req.producer_id.0 >= 0 {
            // KIP-360: the same id, the next epoch.
            return r
                .with_producer_id(req.producer_id)
                .with_producer_epoch(req.producer_epoch.saturating_add(1));
        }
        let id = self.next_producer_id;
        self.next_producer_id += 1;
        r.with_producer_id(ProducerId(id)).with_producer_epoch(0)
    }

    /// Moves a partition's leadership to `node` (a new leader epoch).
    pub(crate) fn move_leader(&mut self, topic: &str, p: i32, node: i32) -> bool {
        match self.partition_mut(topic, p) {
            Some(part) => {
                if !part.replicas.contains(&node) {
                    part.replicas.push(node);
                }
                part.leader = node;
                part.leader_epoch += 1;
                true
            }
            None => false,
        }
    }

    /// Gives a partition a new replica set, led by its first (a new leader epoch), as a
    /// reassignment does; false if there is no such partition or a replica is unknown.
    pub(crate) fn reassign(&mut self, topic: &str, p: i32, replicas: &[i32]) -> bool {
        let known = replicas.iter().all(|r| self.brokers.iter().any(|b| b.id == *r));
        // As a controller does: the first replica that is up leads; with none up, the first
        // (the partition is offline until it starts, as after a failover with no live replica).
        let live: Vec<i32> = self.live().map(|b| b.id).collect();
        let leader = replicas
            .iter()
            .copied()
            .find(|r| live.contains(r))
            .or(replicas.first().copied());
        match (self.partition_mut(topic, p), leader) {
            (Some(part), Some(leader)) if known => {
                part.replicas = replicas.to_vec();
                part.leader = leader;
                part.leader_epoch += 1;
                true
            }
            _ => false,
        }
    }

    /// The partitions of a fetch session that an incremental Fetch covers without naming
    /// them (faults for a partition match such a fetch too).
    pub(crate) fn session_partitions(&self, node: i32, session_id: i32) -> Vec<(String, i32)> {
        self.fetch_sessions
            .get(&(node, session_id))
            .map(|s| s.partitions.iter().map(|p| (p.topic.clone(), p.partition)).collect())
            .unwrap_or_default()
    }

    /// After `node` stopped: each partition it led moves to a live replica, if any.
    pub(crate) fn fail_over(&mut self, node: i32) {
        let live: Vec<i32> = self.live().map(|b| b.id).collect();
        for t in self.topics.values_mut() {
            for p in &mut t.partitions {
                if p.leader == node {
                    if let Some(next) = p.replicas.iter().find(|r| live.contains(r)) {
                        p.leader = *next;
                        p.leader_epoch += 1;
                    }
                }
            }
        }
    }

    /// Hands the stored bytes of the batch holding `offset` to `edit` (its CRC is not
    /// computed again); false if there is no such batch.
    pub(crate) fn edit_batch(&mut self, topic: &str, p: i32, offset: i64, edit: impl FnOnce(&mut [u8])) -> bool {
        self.partition_mut(topic, p)
            .is_some_and(|part| part.log.edit(offset, edit))
    }

    /// The high watermark of a partition.
    pub(crate) fn end_offset(&self, topic: &str, p: i32) -> Option<i64> {
        self.topics
            .get(topic)?
            .partitions
            .get(usize::try_from(p).ok()?)
            .map(|p| p.log.high_watermark())
    }

    /// Time passes for the groups and the transactions.
    pub(crate) fn tick(&mut self, now: Instant) {
        for g in self.groups.values_mut() {
            g.tick(now);
        }
        self.expire_transactions(now);
    }
}

/// Partitions by topic, as OffsetFetch asks them.
pub(super) type TopicPartitions = Vec<(String, Vec<i32>)>;

/// The injected error for a partition, if the fault matches it.
fn injected(inject: Option<&(ErrorCode, Option<(String, i32)>)>, topic: &str, p: i32) -> Option<ErrorCode> {
    let (code, only) = inject?;
    match only {
        Some((t, q)) if t != topic || *q != p => None,
        _ => Some(*code),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max_versions: Vec<(ApiKey, i16)>) -> Settings {
        Settings {
            auto_create_topics: true,
            default_partitions: 1,
            default_replication: 1,
            cluster_id: "c".into(),
            host: "127.0.0.1".into(),
            group_heartbeat_interval: Duration::from_secs(5),
            group_session_timeout: Duration::from_secs(45),
            max_versions,
            rack_aware_replica_selector: false,
            transaction_version: 1,
        }
    }

    #[test]
    fn a_reassignment_is_led_by_its_first_replica_that_is_up() {
        let broker = |id: i32, up: bool| BrokerInfo {
            id,
            host: "127.0.0.1".into(),
            port: 0,
            up,
            rack: None,
        };
        let mut st = State::new(
            settings(Vec::new()),
            vec![broker(1, true), broker(2, false), broker(3, true)],
        );
        st.create_topic("t", 1, 1, false).unwrap();
        let epoch = |st: &mut State| st.partition_mut("t", 0).map(|p| (p.leader, p.leader_epoch));
        let (_, e0) = epoch(&mut st).unwrap();
        assert!(st.reassign("t", 0, &[2, 3]), "broker 2 is down: 3 leads");
        assert_eq!(epoch(&mut st), Some((3, e0 + 1)));
        assert!(st.reassign("t", 0, &[1, 3]));
        assert_eq!(epoch(&mut st), Some((1, e0 + 2)));
        st.brokers.iter_mut().for_each(|b| b.up = b.id == 2);
        assert!(
            st.reassign("t", 0, &[3, 1]),
            "none up: the first replica, offline until it starts"
        );
        assert_eq!(epoch(&mut st), Some((3, e0 + 3)));
        assert!(!st.reassign("t", 0, &[]), "an empty replica set");
        assert!(!st.reassign("t", 0, &[9]), "an unknown broker");
        assert!(!st.reassign("nope", 0, &[1]), "an unknown partition");
        assert_eq!(
            epoch(&mut st),
            Some((3, e0 + 3)),
            "a refused reassignment changes nothing"
        );
    }

    #[test]
    fn a_version_cap_lowers_what_is_advertised_and_answered() {
        let s = settings(vec![(ApiKey::Fetch, 12), (ApiKey::Produce, 1)]);
        assert_eq!(s.versions(ApiKey::Fetch), Some((4, 12)));
        assert!(s.supports(ApiKey::Fetch, 12) && !s.supports(ApiKey::Fetch, 13));
        // Below the lowest supported version: not advertised at all.
        assert_eq!(s.versions(ApiKey::Produce), None);
        assert!(!s.supports(ApiKey::Produce, 3));
        // A cap above the highest changes nothing.
        let s = settings(vec![(ApiKey::Fetch, 99)]);
        assert_eq!(s.versions(ApiKey::Fetch), Some((4, 17)));
        let st = State::new(settings(vec![(ApiKey::Produce, 1)]), Vec::new());
        let advertised = st.api_versions(ErrorCode::None).api_keys;
        assert!(advertised.iter().all(|k| k.api_key != ApiKey::Produce as i16));
        assert!(advertised
            .iter()
            .any(|k| k.api_key == ApiKey::Fetch as i16 && k.max_version == 17));
    }
}
