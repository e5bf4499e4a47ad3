//! The consumer's fetch path against a scripted two-broker fake cluster on loopback, for what
//! a single real broker cannot show:
//! - KIP-392 follower fetching: `rack_id` is sent, `preferred_read_replica` moves fetching
//!   to the follower, and the follower's OFFSET_OUT_OF_RANGE sends the consumer back to the
//!   leader at the same position (no reset); the choice lasts only `metadata.max.age`;
//! - a leader move (NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH): metadata is refreshed
//!   and fetching resumes on the new leader at the same offset with the new leader epoch;
//!   while metadata is still stale, retries wait `retry.backoff.ms`;
//! - KIP-227 fetch sessions: full then incremental requests (epochs 1, 2, ...; only changed
//!   partitions listed), a lost session (FETCH_SESSION_ID_NOT_FOUND) restarts with a full
//!   request, and a partition dropped from the assignment is listed as forgotten; with
//!   topics by name (Fetch v12) and by id (Fetch v13+); a failed fetch does not stall a
//!   long poll beyond the backoff;
//! - a batch failing its CRC: an error naming the partition and offset (no panic, no hang),
//!   and the same bytes delivered when `check_crcs` is off.
//!
//! Every test is bounded by a timeout; no record may be lost or repeated.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, HeaderVersion, StrBytes};
use strom_client::lowlevel::protocol::record_batch::{BatchBuilder, BatchHeader, NewRecord};
use strom_client::ErrorCode;
use strom_client::{Consumer, ConsumerConfig, ConsumerRecord, OffsetReset, TopicPartition};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const TOPIC: &str = "t";
const TOPIC_ID: &str = "6ba7b810-9dad-11d1-80b4-00c04fd430c8";
const LIMIT: Duration = Duration::from_secs(20);

/// One Fetch as a fake broker received it.
#[derive(Debug, Clone)]
struct FetchCall {
    node: i32,
    version: i16,
    req: FetchRequest,
}

/// A partition listed in a Fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Listed {
    partition: i32,
    offset: i64,
    current_leader_epoch: i32,
    last_fetched_epoch: i32,
}

impl FetchCall {
    fn listed(&self) -> Vec<Listed> {
        self.req
            .topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| Listed {
                    partition: p.partition,
                    offset: p.fetch_offset,
                    current_leader_epoch: p.current_leader_epoch,
                    last_fetched_epoch: p.last_fetched_epoch,
                })
            })
            .collect()
    }

    /// (partition, fetch offset) of every listed partition.
    fn offsets(&self) -> Vec<(i32, i64)> {
        self.listed().iter().map(|l| (l.partition, l.offset)).collect()
    }

    fn forgotten(&self) -> Vec<i32> {
        self.req
            .forgotten_topics_data
            .iter()
            .flat_map(|t| t.partitions.iter().copied())
            .collect()
    }

    fn session(&self) -> (i32, i32) {
        (self.req.session_id, self.req.session_epoch)
    }
}

/// What a broker was asked about one partition (from the request or its fetch session).
#[derive(Debug, Clone, Copy)]
struct Ask {
    node: i32,
    partition: i32,
    offset: i64,
    leader_epoch: i32,
}

/// A partition's answer to one fetch.
#[derive(Debug, Clone)]
struct Answer {
    error: i16,
    records: Bytes,
    high_watermark: i64,
    preferred_read_replica: i32,
}

impl Answer {
    fn data(records: Bytes, high_watermark: i64) -> Self {
        Answer {
            error: 0,
            records,
            high_watermark,
            preferred_read_replica: -1,
        }
    }

    fn error(code: ErrorCode) -> Self {
        Answer {
            error: code.code(),
            records: Bytes::new(),
            high_watermark: -1,
            preferred_read_replica: -1,
        }
    }

    fn redirect(replica: i32, high_watermark: i64) -> Self {
        Answer {
            preferred_read_replica: replica,
            ..Answer::data(Bytes::new(), high_watermark)
        }
    }

    /// Worth a place in an incremental response (a real broker also reports watermark moves).
    fn interesting(&self) -> bool {
        self.error != 0 || !self.records.is_empty() || self.preferred_read_replica >= 0
    }
}

/// The cluster as Metadata and ListOffsets describe it.
#[derive(Debug)]
struct Meta {
    leader: i32,
    leader_epoch: i32,
    partitions: i32,
    /// Highest Fetch version offered (13+ names topics by id).
    fetch_max: i16,
    /// Whether brokers open fetch sessions (else they answer session id 0).
    sessions: bool,
    /// A top-level error answered to the Nth Fetch (0-based, counted over all brokers).
    fail_fetch: Option<(usize, ErrorCode)>,
    /// Log end offset per partition (ListOffsets latest; scripts may use it).
    log_end: BTreeMap<i32, i64>,
    /// Carries the topic id (a `Uuid` this crate cannot name).
    topic: MetadataResponseTopic,
}

impl Meta {
    fn new(fetch_max: i16, partitions: i32) -> Self {
        Meta {
            leader: 1,
            leader_epoch: 0,
            partitions,
            fetch_max,
            sessions: true,
            fail_fetch: None,
            log_end: BTreeMap::new(),
            topic: MetadataResponseTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str(TOPIC))))
                .with_topic_id(TOPIC_ID.parse().unwrap()),
        }
    }
}

#[derive(Debug)]
struct Session {
    /// The epoch the next request must carry.
    epoch: i32,
    parts: BTreeMap<i32, (i64, i32)>,
}

type Script = Box<dyn FnMut(&mut Meta, Ask) -> Answer + Send>;

struct State {
    meta: Meta,
    script: Script,
    fetches: Vec<FetchCall>,
    /// (node, timestamp asked) of every ListOffsets partition.
    list_offsets: Vec<(i32, i64)>,
    /// Metadata requests answered.
    metadata_requests: usize,
    sessions: HashMap<(i32, i32), Session>,
    next_session: HashMap<i32, i32>,
    /// What the fake saw that no correct client would send.
    problems: Vec<String>,
}

struct Cluster {
    ports: [u16; 2],
    state: Mutex<State>,
}

impl Cluster {
    async fn start(meta: Meta, script: impl FnMut(&mut Meta, Ask) -> Answer + Send + 'static) -> Arc<Cluster> {
        let l1 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let l2 = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ports = [l1.local_addr().unwrap().port(), l2.local_addr().unwrap().port()];
        let cluster = Arc::new(Cluster {
            ports,
            state: Mutex::new(State {
                meta,
                script: Box::new(script),
                fetches: Vec::new(),
                list_offsets: Vec::new(),
                metadata_requests: 0,
                sessions: HashMap::new(),
                next_session: HashMap::from([(1, 77), (2, 277)]),
                problems: Vec::new(),
            }),
        });
        for (node, listener) in [(1, l1), (2, l2)] {
            let c = cluster.clone();
            tokio::spawn(async move {
                loop {
                    let (sock, _) = listener.accept().await.unwrap();
                    tokio::spawn(serve(sock, node, c.clone()));
                }
            });
        }
        cluster
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.ports[0])
    }

    fn fetches(&self) -> Vec<FetchCall> {
        self.state.lock().unwrap().fetches.clone()
    }

    fn problems(&self) -> Vec<String> {
        self.state.lock().unwrap().problems.clone()
    }

    fn with_meta<T>(&self, f: impl FnOnce(&mut Meta) -> T) -> T {
        f(&mut self.state.lock().unwrap().meta)
    }

    fn problem(&self, p: String) {
        self.state.lock().unwrap().problems.push(p);
    }

    fn metadata(&self, req: &MetadataRequest) -> MetadataResponse {
        let mut st = self.state.lock().unwrap();
        st.metadata_requests += 1;
        let m = &st.meta;
        let brokers = [1, 2]
            .iter()
            .map(|&n| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(n))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(i32::from(self.ports[n as usize - 1]))
                    .with_rack(Some(StrBytes::from_string(format!("r{n}"))))
            })
            .collect();
        let brokers_only = req.topics.as_ref().is_some_and(|t| t.is_empty());
        let topics = if brokers_only {
            Vec::new()
        } else {
            let partitions = (0..m.partitions)
                .map(|p| {
                    MetadataResponsePartition::default()
                        .with_partition_index(p)
                        .with_leader_id(BrokerId(m.leader))
                        .with_leader_epoch(m.leader_epoch)
                        .with_replica_nodes(vec![BrokerId(1), BrokerId(2)])
                        .with_isr_nodes(vec![BrokerId(1), BrokerId(2)])
                })
                .collect();
            vec![m.topic.clone().with_partitions(partitions)]
        };
        MetadataResponse::default()
            .with_brokers(brokers)
            .with_controller_id(BrokerId(1))
            .with_topics(topics)
    }

    fn list_offsets(&self, node: i32, version: i16, req: &ListOffsetsRequest) -> ListOffsetsResponse {
        let mut st = self.state.lock().unwrap();
        let mut topics = Vec::new();
        for t in &req.topics {
            let mut parts = Vec::new();
            for p in &t.partitions {
                st.list_offsets.push((node, p.timestamp));
                let mut r = ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
                if node != st.meta.leader {
                    r = r.with_error_code(ErrorCode::NotLeaderOrFollower.code());
                } else {
                    let offset = if p.timestamp == -2 {
                        0
                    } else {
                        st.meta.log_end.get(&p.partition_index).copied().unwrap_or(0)
                    };
                    r = r.with_offset(offset).with_timestamp(-1);
                    if version >= 4 {
                        r = r.with_leader_epoch(st.meta.leader_epoch);
                    }
                }
                parts.push(r);
            }
            topics.push(
                ListOffsetsTopicResponse::default()
                    .with_name(t.name.clone())
                    .with_partitions(parts),
            );
        }
        ListOffsetsResponse::default().with_topics(topics)
    }

    /// Answers a Fetch as a broker with fetch sessions would; the bool says whether nothing
    /// happened (the broker then holds the request for `max_wait_ms`).
    fn fetch(&self, node: i32, version: i16, req: FetchRequest) -> (FetchResponse, bool) {
        let mut guard = self.state.lock().unwrap();
        let st = &mut *guard;
        let index = st.fetches.len();
        st.fetches.push(FetchCall {
            node,
            version,
            req: req.clone(),
        });
        let top_error = |code: ErrorCode| {
            (
                FetchResponse::default().with_error_code(code.code()).with_session_id(0),
                false,
            )
        };
        if let Some((at, code)) = st.meta.fail_fetch {
            if at == index {
                // The broker lost the session (evicted): it is gone for good.
                st.sessions.remove(&(node, req.session_id));
                return top_error(code);
            }
        }
        let by_id = version >= 13;
        let topic_ok = |name: &TopicName, id| {
            if by_id {
                id == st.meta.topic.topic_id && name.0.is_empty()
            } else {
                name.0.as_str() == TOPIC
            }
        };
        let mut listed = BTreeMap::new();
        for t in &req.topics {
            if !topic_ok(&t.topic, t.topic_id) {
                st.problems
                    .push(format!("fetch #{index}: unexpected topic {:?}/{}", t.topic, t.topic_id));
                return top_error(ErrorCode::UnknownTopicId);
            }
            for p in &t.partitions {
                listed.insert(p.partition, (p.fetch_offset, p.current_leader_epoch));
            }
        }
        let mut forgotten = Vec::new();
        for t in &req.forgotten_topics_data {
            if !topic_ok(&t.topic, t.topic_id) {
                st.problems
                    .push(format!("fetch #{index}: unexpected forgotten topic {:?}", t.topic));
            }
            forgotten.extend(t.partitions.iter().copied());
        }
        let (session_id, full, parts) = if req.session_id == 0 {
            if !forgotten.is_empty() {
                st.problems
                    .push(format!("fetch #{index}: a full request with forgotten partitions"));
            }
            let id = if st.meta.sessions && req.session_epoch == 0 {
                let next = st.next_session.get_mut(&node).unwrap();
                let id = *next;
                *next += 1;
                st.sessions.insert(
                    (node, id),
                    Session {
                        epoch: 1,
                        parts: listed.clone(),
                    },
                );
                id
            } else {
                0
            };
            (id, true, listed)
        } else {
            let Some(s) = st.sessions.get_mut(&(node, req.session_id)) else {
                st.problems
                    .push(format!("fetch #{index}: unknown session {}", req.session_id));
                return top_error(ErrorCode::FetchSessionIdNotFound);
            };
            if s.epoch != req.session_epoch {
                st.problems.push(format!(
                    "fetch #{index}: session epoch {} where {} was due",
                    req.session_epoch, s.epoch
                ));
                return top_error(ErrorCode::InvalidFetchSessionEpoch);
            }
            s.epoch += 1;
            for p in &forgotten {
                s.parts.remove(p);
            }
            s.parts.extend(listed);
            (req.session_id, false, s.parts.clone())
        };
        let mut partitions = Vec::new();
        let mut idle = true;
        for (partition, (offset, leader_epoch)) in parts {
            let a = (st.script)(
                &mut st.meta,
                Ask {
                    node,
                    partition,
                    offset,
                    leader_epoch,
                },
            );
            if a.interesting() {
                idle = false;
            } else if !full {
                continue;
            }
            partitions.push(
                PartitionData::default()
                    .with_partition_index(partition)
                    .with_error_code(a.error)
                    .with_high_watermark(a.high_watermark)
                    .with_last_stable_offset(a.high_watermark)
                    .with_log_start_offset(0)
                    .with_preferred_read_replica(BrokerId(a.preferred_read_replica))
                    .with_records(Some(a.records)),
            );
        }
        let mut responses = Vec::new();
        if !partitions.is_empty() {
            let t = FetchableTopicResponse::default().with_partitions(partitions);
            responses.push(if by_id {
                t.with_topic_id(st.meta.topic.topic_id)
            } else {
                t.with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
            });
        }
        let resp = FetchResponse::default()
            .with_session_id(session_id)
            .with_responses(responses);
        (resp, idle)
    }
}

async fn respond<R: Encodable + HeaderVersion>(s: &mut TcpStream, id: i32, version: i16, resp: &R) {
    let mut body = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(id)
        .encode(&mut body, R::header_version(version))
        .unwrap();
    resp.encode(&mut body, version).unwrap();
    let mut f = BytesMut::new();
    f.put_i32(body.len() as i32);
    f.extend_from_slice(&body);
    s.write_all(&f).await.unwrap();
}

async fn serve(mut s: TcpStream, node: i32, cluster: Arc<Cluster>) {
    loop {
        let Ok(size) = s.read_i32().await else { return };
        let mut buf = vec![0u8; size as usize];
        if s.read_exact(&mut buf).await.is_err() {
            return;
        }
        let mut b = Bytes::from(buf);
        let header = decode_request_header_from_buffer(&mut b).unwrap();
        let (v, id) = (header.request_api_version, header.correlation_id);
        match ApiKey::try_from(header.request_api_key) {
            Ok(ApiKey::ApiVersions) => {
                let fetch_max = cluster.with_meta(|m| m.fetch_max);
                let keys = [(18, 0, 3), (3, 0, 12), (1, 4, fetch_max), (2, 1, 7)]
                    .iter()
                    .map(|&(k, min, max)| {
                        ApiVersion::default()
                            .with_api_key(k)
                            .with_min_version(min)
                            .with_max_version(max)
                    })
                    .collect();
                respond(&mut s, id, v, &ApiVersionsResponse::default().with_api_keys(keys)).await;
            }
            Ok(ApiKey::Metadata) => {
                let req = MetadataRequest::decode(&mut b, v).unwrap();
                let resp = cluster.metadata(&req);
                respond(&mut s, id, v, &resp).await;
            }
            Ok(ApiKey::ListOffsets) => {
                let req = ListOffsetsRequest::decode(&mut b, v).unwrap();
                let resp = cluster.list_offsets(node, v, &req);
                respond(&mut s, id, v, &resp).await;
            }
            Ok(ApiKey::Fetch) => {
                let req = FetchRequest::decode(&mut b, v).unwrap();
                let wait = Duration::from_millis(req.max_wait_ms.clamp(0, 500) as u64);
                let (resp, idle) = cluster.fetch(node, v, req);
                if idle {
                    tokio::time::sleep(wait).await;
                }
                respond(&mut s, id, v, &resp).await;
            }
            other => {
                cluster.problem(format!("node {node}: unexpected request {other:?}"));
                return;
            }
        }
    }
}

/// Records `base..base + count`, key `k<offset>`, value `v<offset>`, as one batch.
fn batch(base: i64, count: i64, leader_epoch: i32) -> Bytes {
    let mut b = BatchBuilder::new(
        BatchHeader {
            base_offset: base,
            partition_leader_epoch: leader_epoch,
            ..BatchHeader::default()
        },
        256,
    );
    for o in base..base + count {
        let (k, v) = (format!("k{o}"), format!("v{o}"));
        b.append(&NewRecord {
            timestamp: 1_700_000_000_000 + o,
            key: Some(k.as_bytes()),
            value: Some(v.as_bytes()),
            headers: &[],
        })
        .unwrap();
    }
    b.finish().unwrap()
}

/// A log cut in batches of `per_batch` records (at multiples of it), read up to `end`: up
/// to `max_batches` whole batches from the one holding `offset`, as brokers return them.
fn serve_log(offset: i64, end: i64, per_batch: i64, max_batches: i64, epoch_of: impl Fn(i64) -> i32) -> Answer {
    if offset < 0 || offset > end {
        return Answer::error(ErrorCode::OffsetOutOfRange);
    }
    let mut out = BytesMut::new();
    let mut base = offset - offset % per_batch;
    for _ in 0..max_batches {
        if base >= end {
            break;
        }
        let count = per_batch.min(end - base);
        out.extend_from_slice(&batch(base, count, epoch_of(base)));
        base += count;
    }
    Answer::data(out.freeze(), end)
}

fn config(cluster: &Cluster) -> ConsumerConfig {
    let mut cfg = ConsumerConfig::new(cluster.bootstrap());
    cfg.client.retry_backoff = Duration::from_millis(10);
    cfg.client.reconnect_backoff = Duration::from_millis(10);
    cfg.client.request_timeout = Duration::from_secs(5);
    cfg.client.default_api_timeout = Duration::from_secs(5);
    cfg.enable_auto_commit = false;
    cfg.auto_offset_reset = OffsetReset::Earliest;
    cfg.fetch_max_wait = Duration::from_millis(50);
    cfg
}

fn tp(partition: i32) -> TopicPartition {
    TopicPartition::new(TOPIC, partition)
}

/// Polls until at least `n` records came.
async fn consume(c: &mut Consumer, n: usize) -> Vec<ConsumerRecord> {
    let mut out = Vec::new();
    while out.len() < n {
        out.extend(c.poll(Duration::from_millis(200)).await.unwrap());
    }
    out
}

/// Polls for a while: nothing more may come (a repeat would).
async fn assert_quiet(c: &mut Consumer) {
    let t = tokio::time::Instant::now() + Duration::from_millis(300);
    while tokio::time::Instant::now() < t {
        let more = c.poll(Duration::from_millis(100)).await.unwrap();
        assert!(
            more.is_empty(),
            "records after the end: {:?}",
            more.iter().map(|r| (r.partition, r.offset)).collect::<Vec<_>>()
        );
    }
}

/// Offsets are exactly `range`, in order, with their values.
fn assert_records(records: &[ConsumerRecord], partition: i32, range: std::ops::Range<i64>) {
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, range.collect::<Vec<_>>(), "lost, repeated or out of order");
    for r in records {
        assert_eq!(r.partition, partition);
        assert_eq!(r.value.as_deref(), Some(format!("v{}", r.offset).as_bytes()));
        assert_eq!(r.key.as_deref(), Some(format!("k{}", r.offset).as_bytes()));
    }
}

/// (node, fetch offset) of every Fetch listing `partition`.
fn route(calls: &[FetchCall], partition: i32) -> Vec<(i32, i64)> {
    calls
        .iter()
        .flat_map(|c| {
            c.listed()
                .into_iter()
                .filter(|l| l.partition == partition)
                .map(|l| (c.node, l.offset))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test]
async fn follower_fetching_uses_the_preferred_replica_and_returns_to_the_leader_on_out_of_range() {
    const N: i64 = 20;
    /// The follower's log end: it lags the leader.
    const FOLLOWER_END: i64 = 12;
    let mut meta = Meta::new(16, 1);
    meta.leader_epoch = 3;
    meta.log_end.insert(0, N);
    let cluster = Cluster::start(meta, |_, a| match a.node {
        // The leader sends the consumer to the follower in its rack while the follower has
        // the data (Kafka's RackAwareReplicaSelector), else serves it itself.
        1 if a.offset < FOLLOWER_END => Answer::redirect(2, N),
        1 => serve_log(a.offset, N, 4, 2, |_| 3),
        // The follower has not caught up with the offset the leader gave: out of range.
        _ if a.offset >= FOLLOWER_END => Answer::error(ErrorCode::OffsetOutOfRange),
        _ => serve_log(a.offset, FOLLOWER_END, 4, 2, |_| 3),
    })
    .await;
    let mut cfg = config(&cluster);
    cfg.client_rack = Some("r2".into());
    let mut consumer = Consumer::new(cfg).await.unwrap();
    consumer.assign([tp(0)]).unwrap();

    let records = tokio::time::timeout(LIMIT, async {
        let r = consume(&mut consumer, N as usize).await;
        assert_quiet(&mut consumer).await;
        r
    })
    .await
    .unwrap_or_else(|_| {
        let calls = cluster.fetches();
        panic!(
            "hung; fetches (node, session, offsets): {:?}; problems: {:?}",
            calls
                .iter()
                .map(|c| (c.node, c.session(), c.offsets()))
                .collect::<Vec<_>>(),
            cluster.problems()
        )
    });
    assert_records(&records, 0, 0..N);
    assert_eq!(consumer.position(&tp(0)).await.unwrap(), N);

    let calls = cluster.fetches();
    for c in &calls {
        assert_eq!(c.req.rack_id.as_str(), "r2", "fetch without the client's rack: {c:?}");
        assert_eq!(c.version, 16);
    }
    let route = route(&calls, 0);
    // Leader (redirects), follower from 0 up to its end, out of range at 12 on the
    // follower, back to the leader at 12 (not reset), then the leader to the end.
    assert_eq!(route[..5], [(1, 0), (2, 0), (2, 8), (2, 12), (1, 12)], "{route:?}");
    assert!(route[5..].iter().all(|&r| r == (1, N)), "{route:?}");
    // Earliest once at the start; the follower's OFFSET_OUT_OF_RANGE reset nothing.
    assert_eq!(cluster.state.lock().unwrap().list_offsets, vec![(1, -2)]);
    assert_eq!(cluster.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn the_preferred_replica_is_used_only_until_metadata_max_age() {
    const N: i64 = 8;
    let mut meta = Meta::new(16, 1);
    meta.log_end.insert(0, N);
    let cluster = Cluster::start(meta, |_, a| match a.node {
        // The leader always prefers the follower, which has everything.
        1 => Answer::redirect(2, N),
        _ => serve_log(a.offset, N, 4, 2, |_| 0),
    })
    .await;
    let mut cfg = config(&cluster);
    cfg.client_rack = Some("r2".into());
    cfg.client.metadata_max_age = Duration::from_millis(300);
    let mut consumer = Consumer::new(cfg).await.unwrap();
    consumer.assign([tp(0)]).unwrap();
    consumer.seek(&tp(0), 0).unwrap();

    let records = tokio::time::timeout(LIMIT, async {
        let r = consume(&mut consumer, N as usize).await;
        // Idle fetches on the follower until the choice expires and the leader is asked again.
        while !route(&cluster.fetches(), 0).contains(&(1, N)) {
            assert!(consumer.poll(Duration::from_millis(100)).await.unwrap().is_empty());
        }
        assert_quiet(&mut consumer).await;
        r
    })
    .await
    .expect("never went back to the leader after metadata.max.age");
    assert_records(&records, 0, 0..N);
    let route = route(&cluster.fetches(), 0);
    assert_eq!(route[..4], [(1, 0), (2, 0), (2, N), (1, N)], "{route:?}");
    assert_eq!(cluster.problems(), Vec::<String>::new());
}

async fn leader_change(error: ErrorCode) {
    const N: i64 = 20;
    /// Node 1 led up to here; node 2 took over (epoch 6) and wrote the rest.
    const K: i64 = 8;
    let epoch_of = |o: i64| if o < K { 5 } else { 6 };
    let mut meta = Meta::new(16, 1);
    meta.leader_epoch = 5;
    meta.log_end.insert(0, N);
    let cluster = Cluster::start(meta, move |m, a| {
        if a.node == 1 {
            if a.leader_epoch != 5 {
                return Answer::error(ErrorCode::UnknownLeaderEpoch);
            }
            if m.leader != 1 {
                return Answer::error(error);
            }
            if a.offset >= K {
                // Leadership moves as the consumer reaches K.
                m.leader = 2;
                m.leader_epoch = 6;
                return Answer::error(error);
            }
            serve_log(a.offset, K, 4, 2, epoch_of)
        } else if m.leader != 2 {
            Answer::error(ErrorCode::NotLeaderOrFollower)
        } else if a.leader_epoch < 6 {
            Answer::error(ErrorCode::FencedLeaderEpoch)
        } else if a.leader_epoch > 6 {
            Answer::error(ErrorCode::UnknownLeaderEpoch)
        } else {
            serve_log(a.offset, N, 4, 2, epoch_of)
        }
    })
    .await;
    let mut consumer = Consumer::new(config(&cluster)).await.unwrap();
    consumer.assign([tp(0)]).unwrap();
    // Mid-batch: the first batch's record 0 must be skipped.
    consumer.seek(&tp(0), 1).unwrap();

    let records = tokio::time::timeout(LIMIT, async {
        let r = consume(&mut consumer, N as usize - 1).await;
        assert_quiet(&mut consumer).await;
        r
    })
    .await
    .expect("hung");
    assert_records(&records, 0, 1..N);
    for r in &records {
        assert_eq!(r.leader_epoch, Some(epoch_of(r.offset)), "offset {}", r.offset);
    }
    let consumed = consumer.consumed_offsets();
    assert_eq!(consumed[&tp(0)].offset, N);
    assert_eq!(consumed[&tp(0)].leader_epoch, Some(6));

    let calls = cluster.fetches();
    let route = route(&calls, 0);
    assert_eq!(route[..3], [(1, 1), (1, 8), (2, 8)], "{route:?}");
    for c in calls.iter().filter(|c| c.node == 1) {
        for l in c.listed() {
            assert_eq!(l.current_leader_epoch, 5, "{c:?}");
        }
    }
    let first_on_2 = calls
        .iter()
        .find(|c| c.node == 2)
        .expect("never fetched from the new leader");
    assert_eq!(
        first_on_2.listed(),
        vec![Listed {
            partition: 0,
            offset: K,
            current_leader_epoch: 6,
            last_fetched_epoch: 5,
        }]
    );
    assert_eq!(cluster.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn not_leader_or_follower_moves_fetching_to_the_new_leader_at_the_same_offset() {
    leader_change(ErrorCode::NotLeaderOrFollower).await;
}

#[tokio::test]
async fn fenced_leader_epoch_moves_fetching_to_the_new_leader_at_the_same_offset() {
    leader_change(ErrorCode::FencedLeaderEpoch).await;
}

/// During a leader election the old leader refuses fetches before the metadata brokers hand
/// out names the new leader: every refresh returns the same (stale) leader. The consumer must
/// wait `retry.backoff.ms` between attempts, not hammer the cluster with Metadata and Fetch.
#[tokio::test]
async fn not_leader_with_stale_metadata_retries_after_retry_backoff() {
    const N: i64 = 8;
    const WINDOW: Duration = Duration::from_millis(600);
    let mut meta = Meta::new(16, 1);
    meta.log_end.insert(0, N);
    let mut refused_since: Option<std::time::Instant> = None;
    let cluster = Cluster::start(meta, move |_, a| {
        if a.offset >= 4 && refused_since.get_or_insert_with(std::time::Instant::now).elapsed() < WINDOW {
            return Answer::error(ErrorCode::NotLeaderOrFollower);
        }
        serve_log(a.offset, N, 4, 1, |_| 0)
    })
    .await;
    let mut cfg = config(&cluster);
    cfg.client.retry_backoff = Duration::from_millis(100);
    let mut consumer = Consumer::new(cfg).await.unwrap();
    consumer.assign([tp(0)]).unwrap();
    consumer.seek(&tp(0), 0).unwrap();
    let records = tokio::time::timeout(LIMIT, async {
        let r = consume(&mut consumer, N as usize).await;
        assert_quiet(&mut consumer).await;
        r
    })
    .await
    .expect("hung");
    assert_records(&records, 0, 0..N);

    // 600 ms of refusals at 100 ms backoff: about 6 attempts (Java backs Metadata off by
    // retry.backoff.ms); allow generous slack.
    // (Incremental session requests do not list the unchanged partition: count them all.)
    let fetches = cluster.fetches().len();
    let metadata = cluster.state.lock().unwrap().metadata_requests;
    assert!(
        fetches <= 30,
        "{fetches} Fetch requests for {N} records and {WINDOW:?} of refusals"
    );
    assert!(metadata <= 15, "{metadata} Metadata requests in {WINDOW:?}");
    assert_eq!(cluster.problems(), Vec::<String>::new());
}

async fn fetch_sessions(fetch_max: i16) {
    let mut meta = Meta::new(fetch_max, 2);
    // The third Fetch finds its session evicted.
    meta.fail_fetch = Some((2, ErrorCode::FetchSessionIdNotFound));
    meta.log_end = BTreeMap::from([(0, 12), (1, 0)]);
    let cluster = Cluster::start(meta, |m, a| {
        let end = m.log_end[&a.partition];
        serve_log(a.offset, end, 3, 1, |_| 0)
    })
    .await;
    let mut consumer = Consumer::new(config(&cluster)).await.unwrap();
    consumer.assign([tp(0), tp(1)]).unwrap();
    consumer.seek(&tp(0), 0).unwrap();
    consumer.seek(&tp(1), 0).unwrap();

    let records = tokio::time::timeout(LIMIT, async {
        let r = consume(&mut consumer, 12).await;
        // The poll that returned the last records sent the next Fetch; wait for it to land.
        while cluster.fetches().len() < 6 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        r
    })
    .await
    .expect("hung");
    assert_records(&records, 0, 0..12);

    let calls = cluster.fetches();
    let seen: Vec<_> = calls.iter().take(6).map(|c| (c.session(), c.offsets())).collect();
    assert_eq!(
        seen,
        vec![
            ((0, 0), vec![(0, 0), (1, 0)]),
            // Incremental: only the partition whose position moved.
            ((77, 1), vec![(0, 3)]),
            // Answered FETCH_SESSION_ID_NOT_FOUND.
            ((77, 2), vec![(0, 6)]),
            // Full again, from the same positions.
            ((0, 0), vec![(0, 6), (1, 0)]),
            ((78, 1), vec![(0, 9)]),
            ((78, 2), vec![(0, 12)]),
        ]
    );

    // p1 leaves the assignment: the session forgets it; then p0 gets more data.
    consumer.assign([tp(0)]).unwrap();
    let more = tokio::time::timeout(LIMIT, async {
        let t = tokio::time::Instant::now() + Duration::from_millis(300);
        while tokio::time::Instant::now() < t {
            assert!(consumer.poll(Duration::from_millis(100)).await.unwrap().is_empty());
        }
        cluster.with_meta(|m| m.log_end.insert(0, 15));
        let r = consume(&mut consumer, 3).await;
        assert_quiet(&mut consumer).await;
        r
    })
    .await
    .expect("hung");
    assert_records(&more, 0, 12..15);

    let calls = cluster.fetches();
    for c in &calls {
        assert_eq!(c.node, 1);
        assert_eq!(c.version, fetch_max);
    }
    // One session since the reset, epochs counting up without a gap.
    for (i, c) in calls[4..].iter().enumerate() {
        assert_eq!(c.session(), (78, i as i32 + 1), "fetch #{}", i + 4);
    }
    let with_forgotten: Vec<usize> = (0..calls.len())
        .filter(|&i| !calls[i].req.forgotten_topics_data.is_empty())
        .collect();
    assert_eq!(with_forgotten.len(), 1, "{calls:#?}");
    let f = &calls[with_forgotten[0]];
    assert_eq!(f.forgotten(), vec![1]);
    if fetch_max >= 13 {
        assert_eq!(
            f.req.forgotten_topics_data[0].topic_id,
            cluster.with_meta(|m| m.topic.topic_id)
        );
    } else {
        assert_eq!(f.req.forgotten_topics_data[0].topic.0.as_str(), TOPIC);
    }
    for c in &calls[with_forgotten[0]..] {
        assert!(c.listed().iter().all(|l| l.partition == 0), "{c:?}");
    }
    let m = consumer.metrics();
    assert_eq!(m.fetch_session_resets, 1);
    assert!(m.incremental_fetches >= 4, "{m:?}");
    // The broker only ever saw the session it expected.
    assert_eq!(cluster.problems(), Vec::<String>::new());
}

/// After a failed Fetch (here a lost session) the broker is backed off for `retry.backoff.ms`
/// (10 ms); a poll with a long timeout must fetch again when that expires, not sit out its
/// whole timeout with no fetch in flight.
#[tokio::test]
async fn a_lost_fetch_session_does_not_stall_a_long_poll() {
    let mut meta = Meta::new(16, 1);
    meta.fail_fetch = Some((1, ErrorCode::FetchSessionIdNotFound));
    meta.log_end.insert(0, 9);
    let cluster = Cluster::start(meta, |_, a| serve_log(a.offset, 9, 3, 1, |_| 0)).await;
    let mut consumer = Consumer::new(config(&cluster)).await.unwrap();
    consumer.assign([tp(0)]).unwrap();
    consumer.seek(&tp(0), 0).unwrap();
    let records = tokio::time::timeout(Duration::from_secs(3), async {
        let mut out = Vec::new();
        while out.len() < 9 {
            out.extend(consumer.poll(Duration::from_secs(10)).await.unwrap());
        }
        out
    })
    .await
    .expect("poll(10 s) stalled after the lost session instead of refetching after retry.backoff (10 ms)");
    assert_records(&records, 0, 0..9);
    let sessions: Vec<(i32, i32)> = cluster.fetches().iter().map(FetchCall::session).collect();
    assert_eq!(sessions[..3], [(0, 0), (77, 1), (0, 0)]);
}

#[tokio::test]
async fn fetch_sessions_by_topic_name_v12() {
    fetch_sessions(12).await;
}

#[tokio::test]
async fn fetch_sessions_by_topic_id_v16() {
    fetch_sessions(16).await;
}

/// Records 0..3 in a good batch, then 3..6 in a batch whose last value byte was flipped
/// after its CRC was computed (`v5` reads `v4`).
fn good_then_corrupt() -> Bytes {
    let mut out = BytesMut::new();
    out.extend_from_slice(&batch(0, 3, 0));
    let mut bad = BytesMut::from(&batch(3, 3, 0)[..]);
    let at = bad.len() - 2; // the last byte is the header count
    assert_eq!(bad[at], b'5');
    bad[at] ^= 1;
    out.extend_from_slice(&bad);
    out.freeze()
}

async fn corrupt_cluster() -> Arc<Cluster> {
    let mut meta = Meta::new(12, 1);
    meta.log_end.insert(0, 6);
    Cluster::start(meta, |_, a| match a.offset {
        0 => Answer::data(good_then_corrupt(), 6),
        3 => Answer::data(good_then_corrupt().slice(batch(0, 3, 0).len()..), 6),
        6 => Answer::data(Bytes::new(), 6),
        _ => Answer::error(ErrorCode::OffsetOutOfRange),
    })
    .await
}

#[tokio::test]
async fn a_batch_failing_its_crc_is_an_error_naming_partition_and_offset() {
    let cluster = corrupt_cluster().await;
    let mut consumer = Consumer::new(config(&cluster)).await.unwrap();
    consumer.assign([tp(0)]).unwrap();
    consumer.seek(&tp(0), 0).unwrap();

    let (records, errors) = tokio::time::timeout(LIMIT, async {
        let mut records = Vec::new();
        let mut errors = Vec::new();
        // The good records first, then the error; polling again fails again (the same
        // bytes come back), never skipping past the bad batch.
        while errors.len() < 2 {
            match consumer.poll(Duration::from_millis(200)).await {
                Ok(r) => records.extend(r),
                Err(e) => errors.push(e.to_string()),
            }
        }
        (records, errors)
    })
    .await
    .expect("hung");
    assert_records(&records, 0, 0..3);
    for e in &errors {
        assert!(e.contains("t-0") && e.contains("offset 3"), "{e}");
        assert!(e.to_lowercase().contains("crc"), "{e}");
    }
    assert_eq!(consumer.position(&tp(0)).await.unwrap(), 3);
    assert_eq!(cluster.problems(), Vec::<String>::new());
}

#[tokio::test]
async fn without_check_crcs_the_corrupt_batch_is_returned_as_is() {
    let cluster = corrupt_cluster().await;
    let mut cfg = config(&cluster);
    cfg.check_crcs = false;
    let mut consumer = Consumer::new(cfg).await.unwrap();
    consumer.assign([tp(0)]).unwrap();
    consumer.seek(&tp(0), 0).unwrap();

    let records = tokio::time::timeout(LIMIT, async {
        let r = consume(&mut consumer, 6).await;
        assert_quiet(&mut consumer).await;
        r
    })
    .await
    .expect("hung");
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, (0..6).collect::<Vec<_>>());
    assert_records(&records[..5], 0, 0..5);
    assert_eq!(records[5].value.as_deref(), Some(&b"v4"[..]));
    assert_eq!(records[5].key.as_deref(), Some(&b"k5"[..]));
    assert_eq!(cluster.problems(), Vec::<String>::new());
}
