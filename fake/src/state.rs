//! The cluster's state and the answer to each request, sans-IO: handlers take the decoded
//! request and the time and return the response (or `None`: not yet, ask again).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use strom_protocol::record_batch::{BatchView, DecodeOptions};
use strom_protocol::ErrorCode;
use uuid::Uuid;

use crate::consumer_group::{Beat, ConsumerGroup};
use crate::group::{Committed, Group, JoinArgs};
use crate::log::PartitionLog;
use crate::txn::{marker_batch, Txn};

pub(crate) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

/// A broker of the fake cluster.
#[derive(Debug, Clone)]
pub(crate) struct BrokerInfo {
    pub(crate) id: i32,
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
    /// The partitions a Produce, Fetch or ListOffsets named, in order.
    pub partitions: Vec<(String, i32)>,
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
}

/// A partition of a fetch session, and what its last answer said.
#[derive(Debug, Clone)]
struct SessionPartition {
    topic: String,
    topic_id: Uuid,
    partition: i32,
    fetch_offset: i64,
    max_bytes: i32,
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
        self.topics.insert(name.to_owned(), Topic { id, partitions: parts });
        Ok(id)
    }

    fn partition_mut(&mut self, topic: &str, p: i32) -> Option<&mut Partition> {
        self.topics.get_mut(topic)?.partitions.get_mut(usize::try_from(p).ok()?)
    }

    fn name_of(&self, id: Uuid) -> Option<String> {
        self.topics.iter().find(|(_, t)| t.id == id).map(|(n, _)| n.clone())
    }

    // ---------------------------------------------------------------- ApiVersions

    pub(crate) fn api_versions(&self, error: ErrorCode) -> ApiVersionsResponse {
        ApiVersionsResponse::default()
            .with_error_code(error.code())
            .with_api_keys(
                crate::SUPPORTED
                    .iter()
                    .map(|(k, min, max)| {
                        api_versions_response::ApiVersion::default()
                            .with_api_key(*k as i16)
                            .with_min_version(*min)
                            .with_max_version(*max)
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
                            .with_host(s(&self.settings.host))
                            .with_port(i32::from(b.port))
                            .with_rack(b.rack.as_deref().map(s))
                    })
                    .collect(),
            )
            .with_topics(topics)
    }

    // ---------------------------------------------------------------- Produce

    /// A Produce; `inject` fails the matching partitions (nothing appended there).
    pub(crate) fn produce(
        &mut self,
        node: i32,
        req: &ProduceRequest,
        inject: Option<&(ErrorCode, Option<(String, i32)>)>,
    ) -> ProduceResponse {
        let mut responses = Vec::new();
        for t in &req.topic_data {
            let name = t.name.0.to_string();
            let mut parts = Vec::new();
            for pd in &t.partition_data {
                let (code, base, msg) = match injected(inject, &name, pd.index) {
                    Some(code) => (code, -1, None),
                    None => match self.append(node, &name, pd.index, pd.records.as_ref()) {
                        Ok(base) => (ErrorCode::None, base, None),
                        Err((code, msg)) => (code, -1, msg),
                    },
                };
                let log_start = self.partition_mut(&name, pd.index).map_or(-1, |p| p.log.log_start());
                parts.push(
                    produce_response::PartitionProduceResponse::default()
                        .with_index(pd.index)
                        .with_error_code(code.code())
                        .with_base_offset(base)
                        .with_log_append_time_ms(-1)
                        .with_log_start_offset(log_start)
                        .with_error_message(msg.as_deref().map(s)),
                );
            }
            responses.push(
                produce_response::TopicProduceResponse::default()
                    .with_name(t.name.clone())
                    .with_partition_responses(parts),
            );
        }
        ProduceResponse::default().with_responses(responses)
    }

    fn append(
        &mut self,
        node: i32,
        topic: &str,
        p: i32,
        records: Option<&Bytes>,
    ) -> Result<i64, (ErrorCode, Option<String>)> {
        // Which producers may write transactional batches here, with their epochs.
        let in_txn: Vec<(i64, i16)> = self
            .txns
            .values()
            .filter(|t| t.partitions.contains(&(topic.to_owned(), p)))
            .map(|t| (t.pid, t.epoch))
            .collect();
        let fenced: Vec<(i64, i16)> = self.txns.values().map(|t| (t.pid, t.epoch)).collect();
        let Some(part) = self.partition_mut(topic, p) else {
            return Err((ErrorCode::UnknownTopicOrPartition, None));
        };
        if part.leader != node {
            return Err((ErrorCode::NotLeaderOrFollower, None));
        }
        let mut buf = records.cloned().unwrap_or_default();
        let opts = DecodeOptions::default();
        let mut batches = Vec::new();
        while !buf.is_empty() {
            match BatchView::parse(&mut buf, &opts) {
                Ok(Some(b)) => batches.push(b),
                Ok(None) => return Err((ErrorCode::CorruptMessage, Some("a truncated record batch".into()))),
                Err(e) => return Err((ErrorCode::CorruptMessage, Some(e.to_string()))),
            }
        }
        if batches.is_empty() {
            return Err((ErrorCode::InvalidRecord, Some("no record batch".into())));
        }
        for b in &batches {
            if b.is_control() {
                return Err((
                    ErrorCode::InvalidRecord,
                    Some("a client may not write control batches".into()),
                ));
            }
            if b.is_transactional() {
                let (pid, epoch) = (b.producer_id(), b.producer_epoch());
                if fenced.iter().any(|(p, e)| *p == pid && epoch < *e) {
                    return Err((ErrorCode::InvalidProducerEpoch, None));
                }
                if !in_txn.contains(&(pid, epoch)) {
                    return Err((
                        ErrorCode::InvalidTxnState,
                        Some("the partition was not added to the transaction".into()),
                    ));
                }
            }
        }
        // Idempotence: every batch of a producer id must follow the last sequence.
        let mut base = -1;
        for b in &batches {
            let pid = b.producer_id();
            if pid >= 0 {
                let (first, count) = (b.base_sequence(), b.records_count());
                let last = first.wrapping_add(count - 1);
                let st = part.producers.entry(pid).or_default();
                let fresh = st.recent.is_empty() && st.last_seq == 0 && st.epoch == 0;
                if b.producer_epoch() < st.epoch {
                    return Err((ErrorCode::InvalidProducerEpoch, None));
                }
                if b.producer_epoch() > st.epoch || fresh {
                    if first != 0 {
                        return Err((ErrorCode::OutOfOrderSequenceNumber, None));
                    }
                    *st = ProducerState {
                        epoch: b.producer_epoch(),
                        ..ProducerState::default()
                    };
                } else if let Some(&(_, _, dup_base)) = st.recent.iter().find(|(f, l, _)| *f == first && *l == last) {
                    // A retry of a batch already written: its offset again, nothing appended.
                    if base < 0 {
                        base = dup_base;
                    }
                    continue;
                } else if first != st.last_seq.wrapping_add(1) {
                    return Err((ErrorCode::OutOfOrderSequenceNumber, None));
                }
                let epoch = part.leader_epoch;
                let b_base = part.log.append(b, epoch);
                if b.is_transactional() {
                    part.open_txns.entry(pid).or_insert(b_base);
                }
                let st = part.producers.entry(pid).or_default();
                st.last_seq = last;
                st.recent.push_back((first, last, b_base));
                if st.recent.len() > 5 {
                    st.recent.pop_front();
                }
                if base < 0 {
                    base = b_base;
                }
            } else {
                let epoch = part.leader_epoch;
                let b_base = part.log.append(b, epoch);
                if base < 0 {
                    base = b_base;
                }
            }
        }
        Ok(base)
    }

    // ---------------------------------------------------------------- Fetch

    /// A Fetch; `None` while fewer than `min_bytes` are there and `last` is false. Fetch
    /// sessions (KIP-227, v7+): epoch 0 opens one (a full fetch), later epochs name only the
    /// partitions that changed and are answered only with those that changed; -1 is
    /// sessionless (and closes the named session).
    pub(crate) fn fetch(
        &mut self,
        node: i32,
        req: &FetchRequest,
        version: i16,
        inject: Option<&(ErrorCode, Option<(String, i32)>)>,
        last: bool,
    ) -> Option<FetchResponse> {
        let fail = |code: ErrorCode| Some(FetchResponse::default().with_error_code(code.code()));
        // The partitions of the request, resolved to names.
        let mut asked: Vec<SessionPartition> = Vec::new();
        for t in &req.topics {
            let name = if version >= 13 {
                self.name_of(t.topic_id).unwrap_or_default()
            } else {
                t.topic.0.to_string()
            };
            for fp in &t.partitions {
                asked.push(SessionPartition {
                    topic: name.clone(),
                    topic_id: t.topic_id,
                    partition: fp.partition,
                    fetch_offset: fp.fetch_offset,
                    max_bytes: fp.partition_max_bytes,
                    sent: None,
                });
            }
        }
        let forgotten: Vec<(String, i32)> = req
            .forgotten_topics_data
            .iter()
            .flat_map(|t| {
                let name = if version >= 13 {
                    self.name_of(t.topic_id).unwrap_or_default()
                } else {
                    t.topic.0.to_string()
                };
                t.partitions.iter().map(move |p| (name.clone(), *p))
            })
            .collect();
        // Which partitions this answer covers, and whether only changed ones are sent.
        let (session_key, plan, incremental) = if version < 7 || req.session_epoch == -1 {
            (None, asked, false)
        } else if req.session_epoch == 0 {
            (Some((node, 0)), asked, false)
        } else {
            let key = (node, req.session_id);
            let Some(sess) = self.fetch_sessions.get(&key) else {
                return fail(ErrorCode::FetchSessionIdNotFound);
            };
            if sess.epoch != req.session_epoch {
                return fail(ErrorCode::InvalidFetchSessionEpoch);
            }
            let mut plan = sess.partitions.clone();
            plan.retain(|p| !forgotten.contains(&(p.topic.clone(), p.partition)));
            for a in asked {
                match plan
                    .iter_mut()
                    .find(|p| p.topic == a.topic && p.partition == a.partition)
                {
                    Some(p) => {
                        p.fetch_offset = a.fetch_offset;
                        p.max_bytes = a.max_bytes;
                    }
                    None => plan.push(a),
                }
            }
            (Some(key), plan, true)
        };
        let max_bytes = usize::try_from(req.max_bytes.max(0)).unwrap_or(0);
        let mut total = 0usize;
        let mut by_topic: Vec<(String, Uuid, Vec<fetch_response::PartitionData>)> = Vec::new();
        let mut sent: Vec<(i64, i64)> = Vec::with_capacity(plan.len());
        for sp in &plan {
            let mut pd = fetch_response::PartitionData::default()
                .with_partition_index(sp.partition)
                .with_high_watermark(-1)
                .with_last_stable_offset(-1)
                .with_log_start_offset(-1);
            let part = self
                .topics
                .get(&sp.topic)
                .and_then(|t| t.partitions.get(usize::try_from(sp.partition).ok()?));
            let mut has_records = false;
            let code = match (injected(inject, &sp.topic, sp.partition), part) {
                (Some(code), _) => code,
                (None, None) if version >= 13 => ErrorCode::UnknownTopicId,
                (None, None) => ErrorCode::UnknownTopicOrPartition,
                (None, Some(p)) if p.leader != node => ErrorCode::NotLeaderOrFollower,
                (None, Some(p)) if sp.fetch_offset < p.log.log_start() || sp.fetch_offset > p.log.high_watermark() => {
                    ErrorCode::OffsetOutOfRange
                }
                (None, Some(p)) => {
                    let room = max_bytes.saturating_sub(total);
                    let limit = usize::try_from(sp.max_bytes.max(0)).unwrap_or(0).min(room);
                    let committed = req.isolation_level == 1;
                    let until = if committed { p.last_stable() } else { i64::MAX };
                    let records = if room == 0 && total > 0 {
                        Bytes::new()
                    } else {
                        p.log.read(sp.fetch_offset, limit, until)
                    };
                    total += records.len();
                    has_records = !records.is_empty();
                    let aborted = committed.then(|| {
                        p.aborted
                            .iter()
                            .filter(|(_, first, last)| *last >= sp.fetch_offset && *first < until)
                            .map(|(pid, first, _)| {
                                fetch_response::AbortedTransaction::default()
                                    .with_producer_id(ProducerId(*pid))
                                    .with_first_offset(*first)
                            })
                            .collect()
                    });
                    pd = pd.with_records(Some(records)).with_aborted_transactions(aborted);
                    ErrorCode::None
                }
            };
            let marks = part.map_or((-1, -1), |p| (p.log.high_watermark(), p.log.log_start()));
            if let Some(p) = part {
                pd = pd
                    .with_high_watermark(marks.0)
                    .with_last_stable_offset(p.last_stable())
                    .with_log_start_offset(marks.1)
                    .with_current_leader(
                        fetch_response::LeaderIdAndEpoch::default()
                            .with_leader_id(BrokerId(p.leader))
                            .with_leader_epoch(p.leader_epoch),
                    );
            }
            sent.push(marks);
            // An incremental answer leaves out what did not change since the last one.
            let changed = !incremental || has_records || !code.is_ok() || sp.sent != Some(marks);
            if !changed {
                continue;
            }
            let pd = pd.with_error_code(code.code());
            match by_topic.iter_mut().find(|(n, _, _)| *n == sp.topic) {
                Some((_, _, v)) => v.push(pd),
                None => by_topic.push((sp.topic.clone(), sp.topic_id, vec![pd])),
            }
        }
        if !last && total < usize::try_from(req.min_bytes.max(1)).unwrap_or(1) && inject.is_none() {
            return None;
        }
        let session_id = match session_key {
            None => {
                if version >= 7 && req.session_id != 0 {
                    self.fetch_sessions.remove(&(node, req.session_id));
                }
                0
            }
            Some((node, id)) => {
                let id = if id == 0 {
                    // A new session (closing the one named, if any).
                    if req.session_id != 0 {
                        self.fetch_sessions.remove(&(node, req.session_id));
                    }
                    self.next_session_id += 1;
                    self.next_session_id
                } else {
                    id
                };
                let mut partitions = plan;
                for (p, marks) in partitions.iter_mut().zip(sent) {
                    p.sent = Some(marks);
                }
                let epoch = if incremental {
                    req.session_epoch.wrapping_add(1).max(1)
                } else {
                    1
                };
                self.fetch_sessions
                    .insert((node, id), FetchSession { epoch, partitions });
                if self.fetch_sessions.len() > FETCH_SESSIONS_MAX {
                    // Evict the oldest ids first (a real broker evicts by its own policy).
                    if let Some(k) = self.fetch_sessions.keys().next().copied() {
                        self.fetch_sessions.remove(&k);
                    }
                }
                id
            }
        };
        let responses = by_topic
            .into_iter()
            .map(|(name, id, parts)| {
                fetch_response::FetchableTopicResponse::default()
                    .with_topic(TopicName(s(&name)))
                    .with_topic_id(id)
                    .with_partitions(parts)
            })
            .collect();
        Some(
            FetchResponse::default()
                .with_session_id(session_id)
                .with_responses(responses),
        )
    }

    // ---------------------------------------------------------------- ListOffsets

    pub(crate) fn list_offsets(
        &self,
        node: i32,
        req: &ListOffsetsRequest,
        inject: Option<&(ErrorCode, Option<(String, i32)>)>,
    ) -> ListOffsetsResponse {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let parts = t
                    .partitions
                    .iter()
                    .map(|lp| {
                        let r = list_offsets_response::ListOffsetsPartitionResponse::default()
                            .with_partition_index(lp.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1);
                        let part = self
                            .topics
                            .get(&name)
                            .and_then(|t| t.partitions.get(usize::try_from(lp.partition_index).ok()?));
                        let Some(p) = part else {
                            return r.with_error_code(ErrorCode::UnknownTopicOrPartition.code());
                        };
                        if let Some(code) = injected(inject, &name, lp.partition_index) {
                            return r.with_error_code(code.code());
                        }
                        if p.leader != node {
                            return r.with_error_code(ErrorCode::NotLeaderOrFollower.code());
                        }
                        let r = r.with_leader_epoch(p.leader_epoch);
                        match lp.timestamp {
                            -1 if req.isolation_level == 1 => r.with_offset(p.last_stable()),
                            -1 => r.with_offset(p.log.high_watermark()),
                            -2 | -4 => r.with_offset(p.log.log_start()),
                            -3 => match p.log.max_timestamp() {
                                Some((o, ts)) => r.with_offset(o).with_timestamp(ts),
                                None => r,
                            },
                            ts if ts >= 0 => match p.log.offset_for_time(ts) {
                                Some((o, ts)) => r.with_offset(o).with_timestamp(ts),
                                None => r,
                            },
                            _ => r.with_error_code(ErrorCode::UnsupportedVersion.code()),
                        }
                    })
                    .collect();
                list_offsets_response::ListOffsetsTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(parts)
            })
            .collect();
        ListOffsetsResponse::default().with_topics(topics)
    }

    // ---------------------------------------------------------------- Topics

    pub(crate) fn create_topics(&mut self, req: &CreateTopicsRequest) -> CreateTopicsResponse {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let (partitions, replication) = if t.assignments.is_empty() {
                    (t.num_partitions, t.replication_factor)
                } else {
                    let rf = t.assignments[0].broker_ids.len();
                    (t.assignments.len() as i32, i16::try_from(rf).unwrap_or(-1))
                };
                let r = create_topics_response::CreatableTopicResult::default().with_name(t.name.clone());
                match self.create_topic(&name, partitions, replication, req.validate_only) {
                    Ok(id) => {
                        if !t.assignments.is_empty() {
                            if let Some(topic) = self.topics.get_mut(&name) {
                                for (p, a) in topic.partitions.iter_mut().zip(&t.assignments) {
                                    p.replicas = a.broker_ids.iter().map(|b| b.0).collect();
                                    p.leader = p.replicas.first().copied().unwrap_or(-1);
                                }
                            }
                        }
                        let n = self.topics.get(&name).map_or(partitions, |t| t.partitions.len() as i32);
                        r.with_topic_id(id)
                            .with_num_partitions(n)
                            .with_replication_factor(replication.max(1))
                            .with_configs(Some(Vec::new()))
                    }
                    Err((code, msg)) => r
                        .with_error_code(code.code())
                        .with_error_message(Some(s(&msg)))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                }
            })
            .collect();
        CreateTopicsResponse::default().with_topics(topics)
    }

    pub(crate) fn delete_topics(&mut self, req: &DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
        let targets: Vec<(Option<String>, Uuid)> = if version >= 6 {
            req.topics
                .iter()
                .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
                .collect()
        } else {
            req.topic_names
                .iter()
                .map(|n| (Some(n.0.to_string()), Uuid::nil()))
                .collect()
        };
        let responses = targets
            .into_iter()
            .map(|(name, id)| {
                let name = name.or_else(|| self.name_of(id));
                let r = delete_topics_response::DeletableTopicResult::default()
                    .with_name(name.as_deref().map(|n| TopicName(s(n))))
                    .with_topic_id(id);
                match name.and_then(|n| self.topics.remove(&n)) {
                    Some(t) => r.with_topic_id(t.id),
                    None if version >= 6 && !id.is_nil() => r.with_error_code(ErrorCode::UnknownTopicId.code()),
                    None => r.with_error_code(ErrorCode::UnknownTopicOrPartition.code()),
                }
            })
            .collect();
        DeleteTopicsResponse::default().with_responses(responses)
    }

    pub(crate) fn create_partitions(&mut self, req: &CreatePartitionsRequest) -> CreatePartitionsResponse {
        let brokers: Vec<i32> = self.brokers.iter().map(|b| b.id).collect();
        let results = req
            .topics
            .iter()
            .map(|t| {
                let r = create_partitions_response::CreatePartitionsTopicResult::default().with_name(t.name.clone());
                let Some(topic) = self.topics.get_mut(t.name.0.as_str()) else {
                    return r.with_error_code(ErrorCode::UnknownTopicOrPartition.code());
                };
                let have = topic.partitions.len() as i32;
                if t.count > MAX_PARTITIONS {
                    return r
                        .with_error_code(ErrorCode::InvalidPartitions.code())
                        .with_error_message(Some(s(&format!(
                            "strom-fake keeps at most {MAX_PARTITIONS} partitions per topic, not {}",
                            t.count
                        ))));
                }
                if t.count <= have {
                    return r
                        .with_error_code(ErrorCode::InvalidPartitions.code())
                        .with_error_message(Some(s(&format!(
                            "Topic currently has {have} partitions, which is higher than the requested {}.",
                            t.count
                        ))));
                }
                if !req.validate_only {
                    let rf = topic.partitions[0].replicas.len();
                    for p in have..t.count {
                        let replicas: Vec<i32> = (0..rf).map(|r| brokers[(p as usize + r) % brokers.len()]).collect();
                        topic.partitions.push(Partition::new(replicas));
                    }
                }
                r
            })
            .collect();
        CreatePartitionsResponse::default().with_results(results)
    }

    // ---------------------------------------------------------------- Coordinators

    /// The broker coordinating `key` (a live one, stable while the same brokers are up).
    pub(crate) fn coordinator(&self, key: &str) -> Option<&BrokerInfo> {
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
                        .with_host(s(&self.settings.host))
                        .with_port(port)
                })
                .collect();
            FindCoordinatorResponse::default().with_coordinators(coordinators)
        } else {
            let (code, id, port) = answer(&req.key);
            FindCoordinatorResponse::default()
                .with_error_code(code.code())
                .with_node_id(BrokerId(id))
                .with_host(s(&self.settings.host))
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

    // ---------------------------------------------------------------- Transactions

    fn init_transactional(&mut self, tid: &str, req: &InitProducerIdRequest) -> InitProducerIdResponse {
        let fail = |code: ErrorCode| {
            InitProducerIdResponse::default()
                .with_error_code(code.code())
                .with_producer_id(ProducerId(-1))
        };
        let timeout = Duration::from_millis(req.transaction_timeout_ms.max(0).unsigned_abs().into());
        if timeout.is_zero() || timeout > Duration::from_secs(900) {
            // transaction.max.timeout.ms is 15 minutes by default.
            return fail(ErrorCode::InvalidTransactionTimeout);
        }
        if let Some(t) = self.txns.get(tid) {
            // KIP-360: a producer naming its id and epoch must name the current ones.
            if req.producer_id.0 >= 0 && (req.producer_id.0 != t.pid || req.producer_epoch != t.epoch) {
                return fail(ErrorCode::ProducerFenced);
            }
            // A transaction left open by the previous producer is aborted.
            if t.open_since.is_some() {
                self.end_transaction(tid, false);
            }
        }
        let next_pid = self.next_producer_id;
        let t = self.txns.entry(tid.to_owned()).or_insert_with(|| {
            let mut t = Txn::new(next_pid, timeout);
            t.epoch = -1;
            t
        });
        if t.pid == next_pid {
            self.next_producer_id += 1;
        }
        t.timeout = timeout;
        t.open_since = None;
        if t.epoch >= i16::MAX - 1 {
            t.pid = self.next_producer_id;
            self.next_producer_id += 1;
            t.epoch = -1;
        }
        t.epoch += 1;
        InitProducerIdResponse::default()
            .with_producer_id(ProducerId(t.pid))
            .with_producer_epoch(t.epoch)
    }

    /// `Err` unless `tid` is known with this producer id and epoch.
    fn txn_mut(&mut self, tid: &str, pid: i64, epoch: i16) -> Result<&mut Txn, ErrorCode> {
        let t = self.txns.get_mut(tid).ok_or(ErrorCode::InvalidProducerIdMapping)?;
        if t.pid != pid {
            return Err(ErrorCode::InvalidProducerIdMapping);
        }
        if epoch < t.epoch {
            return Err(ErrorCode::ProducerFenced);
        }
        if epoch > t.epoch {
            return Err(ErrorCode::InvalidProducerEpoch);
        }
        Ok(t)
    }

    pub(crate) fn add_partitions_to_txn(
        &mut self,
        node: i32,
        req: &AddPartitionsToTxnRequest,
        now: Instant,
    ) -> AddPartitionsToTxnResponse {
        let tid = req.v3_and_below_transactional_id.0.to_string();
        let known: Vec<(String, usize)> = self
            .topics
            .iter()
            .map(|(n, t)| (n.clone(), t.partitions.len()))
            .collect();
        let check = self.check_coordinator(node, &tid).and_then(|()| {
            self.txn_mut(&tid, req.v3_and_below_producer_id.0, req.v3_and_below_producer_epoch)
                .map(|_| ())
        });
        // All or nothing, as the coordinator: one bad partition fails the others with
        // OPERATION_NOT_ATTEMPTED.
        let bad = |t: &str, p: i32| {
            known
                .iter()
                .find(|(n, _)| n == t)
                .is_none_or(|(_, c)| usize::try_from(p).map_or(true, |p| p >= *c))
        };
        let any_bad = req
            .v3_and_below_topics
            .iter()
            .any(|t| t.partitions.iter().any(|p| bad(t.name.0.as_str(), *p)));
        let results = req
            .v3_and_below_topics
            .iter()
            .map(|t| {
                let parts = t
                    .partitions
                    .iter()
                    .map(|p| {
                        let code = match check {
                            Err(e) => e,
                            Ok(()) if bad(t.name.0.as_str(), *p) => ErrorCode::UnknownTopicOrPartition,
                            Ok(()) if any_bad => ErrorCode::OperationNotAttempted,
                            Ok(()) => ErrorCode::None,
                        };
                        add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                            .with_partition_index(*p)
                            .with_partition_error_code(code.code())
                    })
                    .collect();
                add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                    .with_name(t.name.clone())
                    .with_results_by_partition(parts)
            })
            .collect();
        if check.is_ok() && !any_bad {
            if let Some(txn) = self.txns.get_mut(&tid) {
                txn.open(now);
                for t in &req.v3_and_below_topics {
                    for p in &t.partitions {
                        txn.partitions.insert((t.name.0.to_string(), *p));
                    }
                }
            }
        }
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
    }

    pub(crate) fn add_offsets_to_txn(
        &mut self,
        node: i32,
        req: &AddOffsetsToTxnRequest,
        now: Instant,
    ) -> AddOffsetsToTxnResponse {
        if let Err(e) = self.check_coordinator(node, req.transactional_id.0.as_str()) {
            return AddOffsetsToTxnResponse::default().with_error_code(e.code());
        }
        let code = match self.txn_mut(req.transactional_id.0.as_str(), req.producer_id.0, req.producer_epoch) {
            Ok(t) => {
                t.open(now);
                t.groups.insert(req.group_id.0.to_string());
                ErrorCode::None
            }
            Err(e) => e,
        };
        AddOffsetsToTxnResponse::default().with_error_code(code.code())
    }

    pub(crate) fn txn_offset_commit(
        &mut self,
        node: i32,
        req: &TxnOffsetCommitRequest,
        version: i16,
        now: Instant,
    ) -> TxnOffsetCommitResponse {
        let gid = req.group_id.0.to_string();
        let mut code = match self.check_coordinator(node, &gid) {
            Err(e) => e,
            Ok(()) => match self.txn_mut(req.transactional_id.0.as_str(), req.producer_id.0, req.producer_epoch) {
                Err(e) => e,
                Ok(t) if !t.groups.contains(&gid) => ErrorCode::InvalidTxnState,
                Ok(_) => ErrorCode::None,
            },
        };
        // KIP-447 (v3+): the group's member and generation are checked.
        if code.is_ok() && version >= 3 && req.generation_id >= 0 {
            let g = self.groups.entry(gid.clone()).or_insert_with(Group::new);
            code = g.may_commit(req.member_id.as_str(), req.generation_id, now);
        }
        if code.is_ok() {
            if let Some(t) = self.txns.get_mut(req.transactional_id.0.as_str()) {
                for topic in &req.topics {
                    for p in &topic.partitions {
                        t.offsets.push((
                            gid.clone(),
                            topic.name.0.to_string(),
                            p.partition_index,
                            Committed {
                                offset: p.committed_offset,
                                leader_epoch: p.committed_leader_epoch,
                                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                            },
                        ));
                    }
                }
            }
        }
        let topics = req
            .topics
            .iter()
            .map(|t| {
                txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code.code())
                            })
                            .collect(),
                    )
            })
            .collect();
        TxnOffsetCommitResponse::default().with_topics(topics)
    }

    pub(crate) fn end_txn(&mut self, node: i32, req: &EndTxnRequest) -> EndTxnResponse {
        let tid = req.transactional_id.0.to_string();
        if let Err(e) = self.check_coordinator(node, &tid) {
            return EndTxnResponse::default().with_error_code(e.code());
        }
        let code = match self.txn_mut(&tid, req.producer_id.0, req.producer_epoch) {
            Err(e) => e,
            Ok(t) if t.open_since.is_none() => {
                // Nothing open: a retry of an ended transaction, or nothing was ever added.
                ErrorCode::None
            }
            Ok(_) => {
                self.end_transaction(&tid, req.committed);
                ErrorCode::None
            }
        };
        EndTxnResponse::default().with_error_code(code.code())
    }

    /// Writes the markers of `tid`'s open transaction, applies (commit) or drops (abort)
    /// its offsets, and closes it.
    fn end_transaction(&mut self, tid: &str, commit: bool) {
        let Some(t) = self.txns.get_mut(tid) else { return };
        let (pid, epoch) = (t.pid, t.epoch);
        let partitions: Vec<(String, i32)> = std::mem::take(&mut t.partitions).into_iter().collect();
        let offsets = std::mem::take(&mut t.offsets);
        t.groups.clear();
        t.open_since = None;
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        let opts = DecodeOptions::default();
        for (topic, p) in partitions {
            let Some(part) = self.partition_mut(&topic, p) else {
                continue;
            };
            let mut bytes = marker_batch(pid, epoch, commit, 0, now_ms);
            let Ok(Some(view)) = BatchView::parse(&mut bytes, &opts) else {
                continue;
            };
            let leader_epoch = part.leader_epoch;
            let marker = part.log.append(&view, leader_epoch);
            if let Some(first) = part.open_txns.remove(&pid) {
                if !commit {
                    part.aborted.push((pid, first, marker));
                }
            }
        }
        if commit {
            for (group, topic, p, c) in offsets {
                self.groups
                    .entry(group)
                    .or_insert_with(Group::new)
                    .offsets
                    .insert((topic, p), c);
            }
        }
    }

    /// Aborts transactions open past their timeout, fencing their producers (a new epoch).
    fn expire_transactions(&mut self, now: Instant) {
        let expired: Vec<String> = self
            .txns
            .iter()
            .filter(|(_, t)| t.expired(now))
            .map(|(id, _)| id.clone())
            .collect();
        for tid in expired {
            self.end_transaction(&tid, false);
            if let Some(t) = self.txns.get_mut(&tid) {
                t.epoch = t.epoch.saturating_add(1);
            }
        }
    }

    /// Whether a transaction holds offsets of `group` for this partition not yet committed.
    fn pending_txn_offset(&self, group: &str, topic: &str, p: i32) -> bool {
        self.txns.values().any(|t| {
            t.offsets
                .iter()
                .any(|(g, tt, pp, _)| g == group && tt == topic && *pp == p)
        })
    }

    // ---------------------------------------------------------------- KIP-848 groups

    pub(crate) fn consumer_group_heartbeat(
        &mut self,
        node: i32,
        req: &ConsumerGroupHeartbeatRequest,
        now: Instant,
    ) -> ConsumerGroupHeartbeatResponse {
        let fail = |code: ErrorCode, msg: Option<&str>| {
            ConsumerGroupHeartbeatResponse::default()
                .with_error_code(code.code())
                .with_error_message(msg.map(s))
                .with_member_id(Some(req.member_id.clone()))
                .with_member_epoch(req.member_epoch)
        };
        let gid = req.group_id.0.to_string();
        if gid.is_empty() {
            return fail(ErrorCode::InvalidRequest, Some("the group id is empty"));
        }
        if let Err(e) = self.check_coordinator(node, &gid) {
            return fail(e, None);
        }
        if req.subscribed_topic_regex.is_some() {
            return fail(
                ErrorCode::InvalidRequest,
                Some("strom-fake does not implement subscribed_topic_regex yet"),
            );
        }
        if self.groups.get(&gid).is_some_and(|g| !g.members.is_empty()) {
            return fail(
                ErrorCode::GroupIdNotFound,
                Some(&format!(
                    "Group {gid} is not a consumer group (it is a classic group with members)."
                )),
            );
        }
        let topics: BTreeMap<String, (Uuid, i32)> = self
            .topics
            .iter()
            .map(|(n, t)| (n.clone(), (t.id, t.partitions.len() as i32)))
            .collect();
        let owned = req.topic_partitions.as_ref().map(|tps| {
            tps.iter()
                .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
                .collect()
        });
        let subscribed = req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.0.to_string()).collect());
        let session = self.settings.group_session_timeout;
        let interval = self.settings.group_heartbeat_interval;
        // A group id with committed offsets but no classic member may become a KIP-848 group.
        self.groups.entry(gid.clone()).or_insert_with(Group::new);
        let cg = self.consumer_groups.entry(gid).or_default();
        let beat = Beat {
            member_id: req.member_id.as_str(),
            member_epoch: req.member_epoch,
            instance_id: req.instance_id.as_ref().map(|i| i.as_str()),
            subscribed,
            owned,
        };
        match cg.heartbeat(beat, &topics, session, now) {
            Err(code) => fail(code, None),
            Ok(a) => {
                let assignment = a.assignment.map(|parts| {
                    let mut by: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
                    for (id, p) in parts {
                        by.entry(id).or_default().push(p);
                    }
                    consumer_group_heartbeat_response::Assignment::default().with_topic_partitions(
                        by.into_iter()
                            .map(|(id, ps)| {
                                consumer_group_heartbeat_response::TopicPartitions::default()
                                    .with_topic_id(id)
                                    .with_partitions(ps)
                            })
                            .collect(),
                    )
                });
                ConsumerGroupHeartbeatResponse::default()
                    .with_member_id(Some(s(&a.member_id)))
                    .with_member_epoch(a.member_epoch)
                    .with_heartbeat_interval_ms(i32::try_from(interval.as_millis()).unwrap_or(i32::MAX))
                    .with_assignment(assignment)
            }
        }
    }

    // ---------------------------------------------------------------- Groups

    pub(crate) fn join_group(
        &mut self,
        node: i32,
        req: &JoinGroupRequest,
        version: i16,
        client_id: &str,
        now: Instant,
    ) -> Result<Option<crate::group::Joined>, ErrorCode> {
        let gid = req.group_id.0.to_string();
        self.check_coordinator(node, &gid)?;
        if self.consumer_groups.get(&gid).is_some_and(|cg| !cg.members.is_empty()) {
            // A KIP-848 group with members: a classic member cannot join it here.
            return Err(ErrorCode::InconsistentGroupProtocol);
        }
        let g = self.groups.entry(gid).or_insert_with(Group::new);
        g.join(
            JoinArgs {
                member_id: req.member_id.as_str(),
                instance_id: req.group_instance_id.as_ref().map(|s| s.as_str()),
                client_id,
                protocol_type: req.protocol_type.as_str(),
                protocols: req
                    .protocols
                    .iter()
                    .map(|p| (p.name.to_string(), p.metadata.clone()))
                    .collect(),
                session_timeout: Duration::from_millis(req.session_timeout_ms.max(0).unsigned_abs().into()),
                rebalance_timeout: Duration::from_millis(
                    (if version >= 1 {
                        req.rebalance_timeout_ms
                    } else {
                        req.session_timeout_ms
                    })
                    .max(0)
                    .unsigned_abs()
                    .into(),
                ),
                require_known_member_id: version >= 4,
            },
            now,
        )
    }

    pub(crate) fn group(&mut self, id: &str) -> Option<&mut Group> {
        self.groups.get_mut(id)
    }

    pub(crate) fn group_for(&mut self, node: i32, id: &str) -> Result<&mut Group, ErrorCode> {
        self.check_coordinator(node, id)?;
        Ok(self.groups.entry(id.to_owned()).or_insert_with(Group::new))
    }

    pub(crate) fn offset_commit(
        &mut self,
        node: i32,
        req: &OffsetCommitRequest,
        inject: Option<&(ErrorCode, Option<(String, i32)>)>,
        now: Instant,
    ) -> OffsetCommitResponse {
        let gid = req.group_id.0.to_string();
        let member = req.member_id.as_str();
        let kip848 = self
            .consumer_groups
            .get(&gid)
            .filter(|cg| cg.members.contains_key(member));
        let top = match (
            kip848.map(|cg| cg.may_commit(member, req.generation_id_or_member_epoch)),
            self.group_for(node, &gid),
        ) {
            (_, Err(e)) => e,
            (Some(code), Ok(_)) => code,
            (None, Ok(g)) => g.may_commit(member, req.generation_id_or_member_epoch, now),
        };
        let known: Vec<(String, usize)> = self
            .topics
            .iter()
            .map(|(n, t)| (n.clone(), t.partitions.len()))
            .collect();
        let mut topics = Vec::new();
        for t in &req.topics {
            let name = t.name.0.to_string();
            let count = known.iter().find(|(n, _)| *n == name).map(|(_, c)| *c);
            let mut parts = Vec::new();
            for p in &t.partitions {
                let code = if let Some(code) = injected(inject, &name, p.partition_index) {
                    code
                } else if !top.is_ok() {
                    top
                } else if count.is_none_or(|c| usize::try_from(p.partition_index).map_or(true, |i| i >= c)) {
                    ErrorCode::UnknownTopicOrPartition
                } else {
                    if let Some(g) = self.groups.get_mut(&gid) {
                        g.offsets.insert(
                            (name.clone(), p.partition_index),
                            crate::group::Committed {
                                offset: p.committed_offset,
                                leader_epoch: p.committed_leader_epoch,
                                metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                            },
                        );
                    }
                    ErrorCode::None
                };
                parts.push(
                    offset_commit_response::OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code.code()),
                );
            }
            topics.push(
                offset_commit_response::OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_partitions(parts),
            );
        }
        OffsetCommitResponse::default().with_topics(topics)
    }

    pub(crate) fn offset_fetch(
        &mut self,
        node: i32,
        req: &OffsetFetchRequest,
        version: i16,
        inject: Option<ErrorCode>,
    ) -> OffsetFetchResponse {
        // (group, topics or all)
        let asks: Vec<(String, Option<TopicPartitions>)> = if version >= 8 {
            req.groups
                .iter()
                .map(|g| {
                    let topics = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                            .collect()
                    });
                    (g.group_id.0.to_string(), topics)
                })
                .collect()
        } else {
            let topics = req.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                    .collect()
            });
            vec![(req.group_id.0.to_string(), topics)]
        };
        let mut groups_out = Vec::new();
        for (gid, topics) in asks {
            let code = inject.map_or_else(|| self.check_coordinator(node, &gid).err(), Some);
            let offsets = self.groups.get(&gid).map(|g| g.offsets.clone()).unwrap_or_default();
            let wanted: Vec<(String, Vec<i32>)> = match topics {
                Some(t) => t,
                None => {
                    let mut by: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for (t, p) in offsets.keys() {
                        by.entry(t.clone()).or_default().push(*p);
                    }
                    by.into_iter().collect()
                }
            };
            // require_stable (KIP-447): offsets a transaction holds are not given out yet.
            let unstable: std::collections::BTreeSet<(String, i32)> = wanted
                .iter()
                .flat_map(|(t, ps)| ps.iter().map(move |p| (t.clone(), *p)))
                .filter(|(t, p)| req.require_stable && self.pending_txn_offset(&gid, t, *p))
                .collect();
            groups_out.push((gid, code, wanted, offsets, unstable));
        }
        // Each group's answer once: (group, error, [(topic, [(partition, code, committed)])]).
        type Rows = Vec<(String, Vec<(i32, ErrorCode, Option<Committed>)>)>;
        let answers: Vec<(String, Option<ErrorCode>, Rows)> = groups_out
            .into_iter()
            .map(|(gid, code, wanted, offsets, unstable)| {
                let rows = if code.is_some() {
                    Vec::new()
                } else {
                    wanted
                        .into_iter()
                        .map(|(t, ps)| {
                            let parts = ps
                                .into_iter()
                                .map(|p| match unstable.contains(&(t.clone(), p)) {
                                    true => (p, ErrorCode::UnstableOffsetCommit, None),
                                    false => (p, ErrorCode::None, offsets.get(&(t.clone(), p)).cloned()),
                                })
                                .collect();
                            (t, parts)
                        })
                        .collect()
                };
                (gid, code, rows)
            })
            .collect();
        let committed = |c: &Option<Committed>| {
            (
                c.as_ref().map_or(-1, |c| c.offset),
                c.as_ref().map_or(-1, |c| c.leader_epoch),
                c.as_ref().and_then(|c| c.metadata.as_deref()).map(s),
            )
        };
        if version >= 8 {
            let groups = answers
                .into_iter()
                .map(|(gid, code, rows)| {
                    let topics = rows
                        .into_iter()
                        .map(|(t, parts)| {
                            let parts = parts
                                .iter()
                                .map(|(p, e, c)| {
                                    let (offset, epoch, meta) = committed(c);
                                    offset_fetch_response::OffsetFetchResponsePartitions::default()
                                        .with_partition_index(*p)
                                        .with_error_code(e.code())
                                        .with_committed_offset(offset)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(meta)
                                })
                                .collect();
                            offset_fetch_response::OffsetFetchResponseTopics::default()
                                .with_name(TopicName(s(&t)))
                                .with_partitions(parts)
                        })
                        .collect();
                    offset_fetch_response::OffsetFetchResponseGroup::default()
                        .with_group_id(GroupId(s(&gid)))
                        .with_error_code(code.map_or(0, ErrorCode::code))
                        .with_topics(topics)
                })
                .collect();
            OffsetFetchResponse::default().with_groups(groups)
        } else {
            let (_, code, rows) = answers.into_iter().next().unwrap_or_default();
            let topics = rows
                .into_iter()
                .map(|(t, parts)| {
                    let parts = parts
                        .iter()
                        .map(|(p, e, c)| {
                            let (offset, epoch, meta) = committed(c);
                            offset_fetch_response::OffsetFetchResponsePartition::default()
                                .with_partition_index(*p)
                                .with_error_code(e.code())
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(meta)
                        })
                        .collect();
                    offset_fetch_response::OffsetFetchResponseTopic::default()
                        .with_name(TopicName(s(&t)))
                        .with_partitions(parts)
                })
                .collect();
            OffsetFetchResponse::default()
                .with_error_code(code.map_or(0, ErrorCode::code))
                .with_topics(topics)
        }
    }

    pub(crate) fn list_groups(&self) -> ListGroupsResponse {
        ListGroupsResponse::default().with_groups(
            self.groups
                .iter()
                .map(
                    |(id, g)| match self.consumer_groups.get(id).filter(|cg| !cg.members.is_empty()) {
                        Some(_) => list_groups_response::ListedGroup::default()
                            .with_group_id(GroupId(s(id)))
                            .with_protocol_type(s("consumer"))
                            .with_group_state(s("Stable"))
                            .with_group_type(s("consumer")),
                        None => list_groups_response::ListedGroup::default()
                            .with_group_id(GroupId(s(id)))
                            .with_protocol_type(s(&g.protocol_type))
                            .with_group_state(s(g.state.name()))
                            .with_group_type(s("classic")),
                    },
                )
                .collect(),
        )
    }

    pub(crate) fn describe_groups(&self, node: i32, req: &DescribeGroupsRequest) -> DescribeGroupsResponse {
        DescribeGroupsResponse::default().with_groups(
            req.groups
                .iter()
                .map(|gid| {
                    let d = describe_groups_response::DescribedGroup::default().with_group_id(gid.clone());
                    if let Err(e) = self.check_coordinator(node, gid.0.as_str()) {
                        return d.with_error_code(e.code());
                    }
                    match self.groups.get(gid.0.as_str()) {
                        None => d.with_group_state(s("Dead")),
                        Some(g) => d
                            .with_group_state(s(g.state.name()))
                            .with_protocol_type(s(&g.protocol_type))
                            .with_protocol_data(s(g.protocol.as_deref().unwrap_or("")))
                            .with_members(
                                g.members
                                    .iter()
                                    .map(|(id, m)| {
                                        describe_groups_response::DescribedGroupMember::default()
                                            .with_member_id(s(id))
                                            .with_group_instance_id(m.instance_id.as_deref().map(s))
                                            .with_client_id(s(&m.client_id))
                                            .with_client_host(s("/127.0.0.1"))
                                            .with_member_metadata(m.metadata_for(g.protocol.as_deref()))
                                            .with_member_assignment(m.assignment.clone())
                                    })
                                    .collect(),
                            ),
                    }
                })
                .collect(),
        )
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
type TopicPartitions = Vec<(String, Vec<i32>)>;

/// The injected error for a partition, if the fault matches it.
fn injected(inject: Option<&(ErrorCode, Option<(String, i32)>)>, topic: &str, p: i32) -> Option<ErrorCode> {
    let (code, only) = inject?;
    match only {
        Some((t, q)) if t != topic || *q != p => None,
        _ => Some(*code),
    }
}
