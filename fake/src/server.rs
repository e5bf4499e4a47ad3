//! The I/O: a listener per broker, a task per connection reading request frames, decoding
//! them (every length checked: a bad frame closes that connection only) and answering
//! through the sans-IO state. A connection handles one request at a time, as a broker
//! does (it mutes the socket until the response is sent).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable};
use strom_protocol::ErrorCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{watch, Notify};
use tracing::debug;

use strom_protocol::record_batch::{BatchView, DecodeOptions};
use uuid::Uuid;

use crate::state::{s, FaultAction, FetchDetail, FetchPosition, ProducedBatch, RequestRecord, State};

/// What every connection shares.
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Woken on every change a waiting request may be waiting for.
    pub(crate) changed: Notify,
    /// Largest request frame accepted (Kafka's socket.request.max.bytes, 100 MiB).
    pub(crate) max_frame: usize,
    /// SASL users and passwords: `Some` makes every listener SASL_PLAINTEXT.
    pub(crate) users: Option<std::collections::BTreeMap<String, String>>,
}

/// The fake's clock: tokio's, so that under a paused runtime (`start_paused`) group
/// sessions, fetch waits and the request log's times are virtual, as the client's are.
pub(crate) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

pub(crate) fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A decoded request.
pub(crate) enum Req {
    Produce(ProduceRequest),
    Fetch(FetchRequest),
    ListOffsets(ListOffsetsRequest),
    Metadata(MetadataRequest),
    OffsetCommit(OffsetCommitRequest),
    OffsetFetch(OffsetFetchRequest),
    FindCoordinator(FindCoordinatorRequest),
    JoinGroup(JoinGroupRequest),
    Heartbeat(HeartbeatRequest),
    LeaveGroup(LeaveGroupRequest),
    SyncGroup(SyncGroupRequest),
    DescribeGroups(DescribeGroupsRequest),
    ListGroups,
    ApiVersions,
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    InitProducerId(InitProducerIdRequest),
    CreatePartitions(CreatePartitionsRequest),
    AddPartitionsToTxn(AddPartitionsToTxnRequest),
    AddOffsetsToTxn(AddOffsetsToTxnRequest),
    TxnOffsetCommit(TxnOffsetCommitRequest),
    EndTxn(EndTxnRequest),
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest),
    DescribeConfigs(DescribeConfigsRequest),
    DescribeTransactions(DescribeTransactionsRequest),
    ListTransactions(ListTransactionsRequest),
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    ConsumerGroupDescribe(ConsumerGroupDescribeRequest),
}

/// Decodes a request body of `api` at `version` (the version already checked supported).
pub(crate) fn decode(api: ApiKey, buf: &mut Bytes, v: i16) -> Result<Req, String> {
    fn d<T: Decodable>(buf: &mut Bytes, v: i16) -> Result<T, String> {
        T::decode(buf, v).map_err(|e| e.to_string())
    }
    Ok(match api {
        ApiKey::Produce => Req::Produce(d(buf, v)?),
        ApiKey::Fetch => Req::Fetch(d(buf, v)?),
        ApiKey::ListOffsets => Req::ListOffsets(d(buf, v)?),
        ApiKey::Metadata => Req::Metadata(d(buf, v)?),
        ApiKey::OffsetCommit => Req::OffsetCommit(d(buf, v)?),
        ApiKey::OffsetFetch => Req::OffsetFetch(d(buf, v)?),
        ApiKey::FindCoordinator => Req::FindCoordinator(d(buf, v)?),
        ApiKey::JoinGroup => Req::JoinGroup(d(buf, v)?),
        ApiKey::Heartbeat => Req::Heartbeat(d(buf, v)?),
        ApiKey::LeaveGroup => Req::LeaveGroup(d(buf, v)?),
        ApiKey::SyncGroup => Req::SyncGroup(d(buf, v)?),
        ApiKey::DescribeGroups => Req::DescribeGroups(d(buf, v)?),
        ApiKey::ListGroups => {
            d::<ListGroupsRequest>(buf, v)?;
            Req::ListGroups
        }
        ApiKey::ApiVersions => {
            d::<ApiVersionsRequest>(buf, v)?;
            Req::ApiVersions
        }
        ApiKey::CreateTopics => Req::CreateTopics(d(buf, v)?),
        ApiKey::DeleteTopics => Req::DeleteTopics(d(buf, v)?),
        ApiKey::InitProducerId => Req::InitProducerId(d(buf, v)?),
        ApiKey::CreatePartitions => Req::CreatePartitions(d(buf, v)?),
        ApiKey::AddPartitionsToTxn => Req::AddPartitionsToTxn(d(buf, v)?),
        ApiKey::AddOffsetsToTxn => Req::AddOffsetsToTxn(d(buf, v)?),
        ApiKey::TxnOffsetCommit => Req::TxnOffsetCommit(d(buf, v)?),
        ApiKey::EndTxn => Req::EndTxn(d(buf, v)?),
        ApiKey::ConsumerGroupHeartbeat => Req::ConsumerGroupHeartbeat(d(buf, v)?),
        ApiKey::DescribeConfigs => Req::DescribeConfigs(d(buf, v)?),
        ApiKey::DescribeTransactions => Req::DescribeTransactions(d(buf, v)?),
        ApiKey::ListTransactions => Req::ListTransactions(d(buf, v)?),
        ApiKey::IncrementalAlterConfigs => Req::IncrementalAlterConfigs(d(buf, v)?),
        ApiKey::ConsumerGroupDescribe => Req::ConsumerGroupDescribe(d(buf, v)?),
        other => return Err(format!("{other:?} is not implemented")),
    })
}

/// The partitions a request names (for faults and the request log).
pub(crate) fn partitions_of(req: &Req, state: &State, v: i16) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    match req {
        Req::Produce(r) => {
            for t in &r.topic_data {
                out.extend(t.partition_data.iter().map(|p| (t.name.0.to_string(), p.index)));
            }
        }
        Req::Fetch(r) => {
            for t in &r.topics {
                let name = if v >= 13 {
                    state
                        .topics
                        .iter()
                        .find(|(_, x)| x.id == t.topic_id)
                        .map(|(n, _)| n.clone())
                        .unwrap_or_default()
                } else {
                    t.topic.0.to_string()
                };
                out.extend(t.partitions.iter().map(|p| (name.clone(), p.partition)));
            }
        }
        Req::ListOffsets(r) => {
            for t in &r.topics {
                out.extend(t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index)));
            }
        }
        Req::OffsetCommit(r) => {
            for t in &r.topics {
                out.extend(t.partitions.iter().map(|p| (t.name.0.to_string(), p.partition_index)));
            }
        }
        _ => {}
    }
    out
}

/// What the request log keeps of a Produce (its batches' headers) and of a Fetch.
fn details_of(req: &Req, state: &State, v: i16) -> (Vec<ProducedBatch>, Option<FetchDetail>) {
    match req {
        Req::Produce(r) => {
            // Headers only: the append checks the CRC; checking it here too would read every
            // produced byte twice.
            let opts = DecodeOptions {
                check_crcs: false,
                ..DecodeOptions::default()
            };
            let mut batches = Vec::new();
            for t in &r.topic_data {
                for p in &t.partition_data {
                    let mut buf = p.records.clone().unwrap_or_default();
                    // A malformed batch ends the list (the append refuses it).
                    while let Ok(Some(b)) = BatchView::parse(&mut buf, &opts) {
                        batches.push(ProducedBatch {
                            topic: t.name.0.to_string(),
                            partition: p.index,
                            producer_id: b.producer_id(),
                            producer_epoch: b.producer_epoch(),
                            base_sequence: b.base_sequence(),
                            records: b.records_count(),
                            transactional: b.is_transactional(),
                        });
                    }
                }
            }
            (batches, None)
        }
        Req::Fetch(r) => {
            let name = |id: Uuid, name: &str| {
                if v >= 13 {
                    state.name_of(id).unwrap_or_default()
                } else {
                    name.to_owned()
                }
            };
            let mut partitions = Vec::new();
            for t in &r.topics {
                let topic = name(t.topic_id, t.topic.as_str());
                partitions.extend(t.partitions.iter().map(|p| FetchPosition {
                    topic: topic.clone(),
                    partition: p.partition,
                    fetch_offset: p.fetch_offset,
                    current_leader_epoch: p.current_leader_epoch,
                    last_fetched_epoch: p.last_fetched_epoch,
                }));
            }
            let mut forgotten = Vec::new();
            for t in &r.forgotten_topics_data {
                let topic = name(t.topic_id, t.topic.as_str());
                forgotten.extend(t.partitions.iter().map(|p| (topic.clone(), *p)));
            }
            let fetch = FetchDetail {
                session_id: r.session_id,
                session_epoch: r.session_epoch,
                rack_id: r.rack_id.to_string(),
                partitions,
                forgotten,
                by_topic_id: v >= 13,
            };
            (Vec::new(), Some(fetch))
        }
        _ => (Vec::new(), None),
    }
}

/// What one attempt at answering a request gives.
pub(crate) enum Step {
    Reply(BytesMut),
    NoReply,
    /// Not yet: try again when something changed (or a little later).
    Wait,
}

fn body<R: Encodable>(r: &R, v: i16) -> Result<Step, String> {
    let mut b = BytesMut::new();
    r.encode(&mut b, v).map_err(|e| e.to_string())?;
    Ok(Step::Reply(b))
}

/// Progress of a request answered over several attempts.
#[derive(Default)]
pub(crate) struct Pending {
    member: Option<String>,
    synced: bool,
}

/// One attempt at answering `req`. `last`: the request's wait is over, answer now.
#[allow(clippy::too_many_arguments)]
pub(crate) fn step(
    st: &mut State,
    node: i32,
    req: &Req,
    v: i16,
    client_id: &str,
    inject: Option<&(ErrorCode, Option<(String, i32)>)>,
    pending: &mut Pending,
    now: Instant,
    last: bool,
) -> Result<Step, String> {
    let top = inject.map(|(c, _)| *c);
    match req {
        Req::ApiVersions => body(&st.api_versions(top.unwrap_or(ErrorCode::None)), v),
        Req::Metadata(r) => body(&st.metadata(r, top), v),
        Req::Produce(r) => {
            let resp = st.produce(node, r, v, inject, now);
            if r.acks == 0 {
                return Ok(Step::NoReply);
            }
            body(&resp, v)
        }
        Req::Fetch(r) => match st.fetch(node, r, v, inject, last) {
            Some(resp) => body(&resp, v),
            None => Ok(Step::Wait),
        },
        Req::ListOffsets(r) => body(&st.list_offsets(node, r, inject), v),
        Req::CreateTopics(r) => {
            if let Some(code) = top {
                let topics = r
                    .topics
                    .iter()
                    .map(|t| {
                        create_topics_response::CreatableTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(code.code())
                    })
                    .collect();
                return body(&CreateTopicsResponse::default().with_topics(topics), v);
            }
            body(&st.create_topics(r), v)
        }
        Req::DeleteTopics(r) => body(&st.delete_topics(r, v), v),
        Req::CreatePartitions(r) => body(&st.create_partitions(r), v),
        Req::InitProducerId(r) => match top {
            Some(code) => body(
                &InitProducerIdResponse::default()
                    .with_error_code(code.code())
                    .with_producer_id(ProducerId(-1)),
                v,
            ),
            None => body(&st.init_producer_id(node, r), v),
        },
        Req::FindCoordinator(r) => body(&st.find_coordinator(r, v, top), v),
        Req::AddPartitionsToTxn(r) => match top {
            // v0-3 have no top-level error: the code goes on every partition.
            Some(code) => body(&crate::state::add_partitions_answer(r, |_, _| code), v),
            None => body(&st.add_partitions_to_txn(node, r, now), v),
        },
        Req::AddOffsetsToTxn(r) => match top {
            Some(code) => body(&AddOffsetsToTxnResponse::default().with_error_code(code.code()), v),
            None => body(&st.add_offsets_to_txn(node, r, now), v),
        },
        Req::TxnOffsetCommit(r) => body(&st.txn_offset_commit(node, r, v, now), v),
        Req::ConsumerGroupHeartbeat(r) => match top {
            Some(code) => body(
                &ConsumerGroupHeartbeatResponse::default()
                    .with_error_code(code.code())
                    .with_member_id(Some(r.member_id.clone()))
                    .with_member_epoch(r.member_epoch),
                v,
            ),
            None => body(&st.consumer_group_heartbeat(node, r, client_id, now), v),
        },
        Req::EndTxn(r) => match top {
            Some(code) => body(&EndTxnResponse::default().with_error_code(code.code()), v),
            None => body(&st.end_txn(node, r, v), v),
        },
        Req::OffsetCommit(r) => body(&st.offset_commit(node, r, inject, now), v),
        Req::OffsetFetch(r) => body(&st.offset_fetch(node, r, v, top), v),
        Req::ListGroups => body(&st.list_groups(), v),
        Req::DescribeConfigs(r) => body(&st.describe_configs(node, r, v), v),
        Req::IncrementalAlterConfigs(r) => body(&st.incremental_alter_configs(r), v),
        Req::ConsumerGroupDescribe(r) => body(&st.consumer_group_describe(node, r), v),
        Req::DescribeTransactions(r) => body(&st.describe_transactions(node, r), v),
        Req::ListTransactions(r) => match top {
            Some(code) => body(&ListTransactionsResponse::default().with_error_code(code.code()), v),
            None => body(&st.list_transactions(node, r), v),
        },
        Req::DescribeGroups(r) => body(&st.describe_groups(node, r), v),
        Req::JoinGroup(r) => {
            let fail = |code: ErrorCode| {
                JoinGroupResponse::default()
                    .with_error_code(code.code())
                    .with_generation_id(-1)
                    .with_member_id(r.member_id.clone())
            };
            if let Some(code) = top {
                return body(&fail(code), v);
            }
            let gid = r.group_id.0.to_string();
            let joined = match &pending.member {
                None => match st.join_group(node, r, v, client_id, now) {
                    Ok(Some(j)) => Some(j),
                    Ok(None) => {
                        // A new static member joins with no id and waits under the one
                        // the group gave it.
                        let instance = r.group_instance_id.as_ref().map(|i| i.to_string());
                        let id = match (r.member_id.is_empty(), instance) {
                            (true, Some(inst)) => st
                                .group(&gid)
                                .and_then(|g| g.member_of_instance(&inst))
                                .unwrap_or_default(),
                            _ => r.member_id.to_string(),
                        };
                        pending.member = Some(id);
                        None
                    }
                    Err(code) => return body(&fail(code), v),
                },
                Some(m) => match st.group(&gid) {
                    Some(g) if g.is_member(m) => g.join_result(m, now),
                    _ => return body(&fail(ErrorCode::UnknownMemberId), v),
                },
            };
            let Some(j) = joined else { return Ok(Step::Wait) };
            let protocol_type = st.group(&gid).map(|g| g.protocol_type.clone());
            let resp = JoinGroupResponse::default()
                .with_error_code(j.error.code())
                .with_generation_id(j.generation)
                .with_protocol_type(protocol_type.as_deref().map(s))
                .with_protocol_name(j.protocol.as_deref().map(s))
                .with_leader(s(&j.leader))
                .with_member_id(s(&j.member_id))
                .with_members(
                    j.members
                        .iter()
                        .map(|(id, inst, meta)| {
                            join_group_response::JoinGroupResponseMember::default()
                                .with_member_id(s(id))
                                .with_group_instance_id(inst.as_deref().map(s))
                                .with_metadata(meta.clone())
                        })
                        .collect(),
                );
            // v0-v6 have no protocol type; a null one cannot be encoded there.
            let resp = if v < 7 { resp.with_protocol_type(None) } else { resp };
            body(&resp, v)
        }
        Req::SyncGroup(r) => {
            let fail = |code: ErrorCode| SyncGroupResponse::default().with_error_code(code.code());
            if let Some(code) = top {
                return body(&fail(code), v);
            }
            let gid = r.group_id.0.to_string();
            let member = r.member_id.as_str();
            let result = match st.group_for(node, &gid) {
                Err(e) => Err(e),
                Ok(g) if !pending.synced => {
                    pending.synced = true;
                    let a = r
                        .assignments
                        .iter()
                        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                        .collect();
                    g.sync(member, r.generation_id, a, now)
                }
                Ok(g) => g.sync_result(member, r.generation_id, now),
            };
            match result {
                Err(code) => body(&fail(code), v),
                Ok(None) => Ok(Step::Wait),
                Ok(Some(assignment)) => {
                    let (pt, pn) = st
                        .group(&gid)
                        .map(|g| (g.protocol_type.clone(), g.protocol.clone()))
                        .unwrap_or_default();
                    let mut resp = SyncGroupResponse::default().with_assignment(assignment);
                    if v >= 5 {
                        resp = resp
                            .with_protocol_type(Some(s(&pt)))
                            .with_protocol_name(pn.as_deref().map(s));
                    }
                    body(&resp, v)
                }
            }
        }
        Req::Heartbeat(r) => {
            let code = top.unwrap_or_else(|| match st.group_for(node, r.group_id.0.as_str()) {
                Ok(g) => g.heartbeat(r.member_id.as_str(), r.generation_id, now),
                Err(e) => e,
            });
            body(&HeartbeatResponse::default().with_error_code(code.code()), v)
        }
        Req::LeaveGroup(r) => {
            if let Some(code) = top {
                return body(&LeaveGroupResponse::default().with_error_code(code.code()), v);
            }
            let g = match st.group_for(node, r.group_id.0.as_str()) {
                Ok(g) => g,
                Err(e) => return body(&LeaveGroupResponse::default().with_error_code(e.code()), v),
            };
            if v < 3 {
                let code = g.leave(r.member_id.as_str(), None, now);
                return body(&LeaveGroupResponse::default().with_error_code(code.code()), v);
            }
            let members = r
                .members
                .iter()
                .map(|m| {
                    let code = g.leave(
                        m.member_id.as_str(),
                        m.group_instance_id.as_ref().map(|s| s.as_str()),
                        now,
                    );
                    leave_group_response::MemberResponse::default()
                        .with_member_id(m.member_id.clone())
                        .with_group_instance_id(m.group_instance_id.clone())
                        .with_error_code(code.code())
                })
                .collect();
            body(&LeaveGroupResponse::default().with_members(members), v)
        }
    }
}

/// Accepts connections for broker `node` until `stop` turns true.
pub(crate) async fn serve(listener: TcpListener, node: i32, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                tokio::spawn(connection(stream, node, shared.clone(), stop.clone()));
            }
            _ = stop.changed() => return,
        }
    }
}

/// Serves one connection (TCP, or an in-memory stream) until it closes or `stop` turns true.
pub(crate) async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    node: i32,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    let mut auth = shared.users.as_ref().map(|_| crate::sasl::Exchange::Start);
    loop {
        let frame = tokio::select! {
            f = read_frame(&mut stream, shared.max_frame) => f,
            _ = stop.changed() => return,
        };
        let Some(frame) = frame else { return };
        let reply = tokio::select! {
            r = answer(frame, node, &shared, &mut auth) => r,
            _ = stop.changed() => return,
        };
        match reply {
            Ok(Answer { out, mute }) => {
                if let Some(out) = out {
                    if stream.write_all(&out).await.is_err() {
                        return;
                    }
                }
                // KIP-219: a throttled connection is muted (nothing more is read) until the
                // throttle time is over.
                if !mute.is_zero() {
                    tokio::select! {
                        () = tokio::time::sleep(mute) => {}
                        _ = stop.changed() => return,
                    }
                }
            }
            Err(why) => {
                debug!(node, %why, "closing the connection");
                return;
            }
        }
    }
}

/// One frame, or `None` when the peer closed or sent a size out of bounds.
async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S, max: usize) -> Option<Bytes> {
    let size = stream.read_i32().await.ok()?;
    let size = usize::try_from(size).ok().filter(|n| *n <= max)?;
    let mut buf = vec![0u8; size];
    stream.read_exact(&mut buf).await.ok()?;
    Some(Bytes::from(buf))
}

/// A request frame's API, version and header, the body left in `frame`.
pub(crate) fn parse_header(frame: &mut Bytes) -> Result<(ApiKey, i16, RequestHeader), String> {
    if frame.len() < 4 {
        return Err("a frame too short for a request header".into());
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(key).map_err(|()| format!("unknown API key {key}"))?;
    let header = RequestHeader::decode(frame, api.request_header_version(version)).map_err(|e| e.to_string())?;
    Ok((api, version, header))
}

/// Fuzzing entry: one request frame (without its size) decoded and answered by a
/// one-broker cluster with a topic, once, without waiting. Never panics.
pub(crate) fn fuzz_request(data: &[u8]) {
    let mut frame = Bytes::copy_from_slice(data);
    let Ok((api, version, header)) = parse_header(&mut frame) else {
        return;
    };
    if !crate::SUPPORTED
        .iter()
        .any(|(k, min, max)| *k == api && (*min..=*max).contains(&version))
    {
        return;
    }
    let Ok(req) = decode(api, &mut frame, version) else {
        return;
    };
    let mut st = crate::state::State::new(
        crate::state::Settings {
            auto_create_topics: true,
            default_partitions: 2,
            default_replication: 1,
            cluster_id: "fuzz".into(),
            host: "127.0.0.1".into(),
            group_heartbeat_interval: Duration::from_secs(5),
            group_session_timeout: Duration::from_secs(45),
            max_versions: Vec::new(),
            rack_aware_replica_selector: true,
            transaction_version: 2,
        },
        vec![crate::state::BrokerInfo {
            id: 1,
            host: "127.0.0.1".into(),
            port: 9092,
            up: true,
            rack: Some("r".into()),
        }],
    );
    let _ = st.create_topic("t", 2, 1, false);
    let client_id = header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
    let now = now();
    let _ = details_of(&req, &st, version);
    // Twice: a second request sees what the first changed (a topic, a group member).
    for _ in 0..2 {
        let _ = step(
            &mut st,
            1,
            &req,
            version,
            &client_id,
            None,
            &mut Pending::default(),
            now,
            true,
        );
    }
}

/// What a connection does after one request.
pub(crate) struct Answer {
    /// The response frame (`None`: none, acks=0).
    out: Option<BytesMut>,
    /// How long to read nothing more after it (a throttled connection, KIP-219).
    mute: Duration,
}

impl From<Option<BytesMut>> for Answer {
    fn from(out: Option<BytesMut>) -> Self {
        Answer {
            out,
            mute: Duration::ZERO,
        }
    }
}

/// The answer to one request frame: `Err` closes the connection.
pub(crate) async fn answer(
    mut frame: Bytes,
    node: i32,
    shared: &Shared,
    auth: &mut Option<crate::sasl::Exchange>,
) -> Result<Answer, String> {
    let (api, version, header) = parse_header(&mut frame)?;
    let client_id = header.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default();
    let respond = |body: BytesMut, header_version: i16| -> Result<Answer, String> {
        let mut h = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut h, header_version)
            .map_err(|e| e.to_string())?;
        let mut out = BytesMut::with_capacity(4 + h.len() + body.len());
        out.put_i32(i32::try_from(h.len() + body.len()).map_err(|_| "response too large".to_string())?);
        out.put(h);
        out.put(body);
        Ok(Answer::from(Some(out)))
    };
    let supported = lock(shared).settings.supports(api, version);
    if !supported {
        if api == ApiKey::ApiVersions {
            // KIP-511: an ApiVersions the broker does not know is answered at v0, with
            // UNSUPPORTED_VERSION and, as Kafka does, only ApiVersions' own versions (the
            // client asks again at one of them for the rest).
            let mut resp = lock(shared).api_versions(ErrorCode::UnsupportedVersion);
            resp.api_keys.retain(|k| k.api_key == ApiKey::ApiVersions as i16);
            let mut b = BytesMut::new();
            resp.encode(&mut b, 0).map_err(|e| e.to_string())?;
            return respond(b, 0);
        }
        return Err(format!("{api:?} v{version} is not supported"));
    }
    // SASL: the handshake and the tokens; nothing else before it succeeded.
    match (api, auth.as_mut()) {
        (ApiKey::SaslHandshake, ex) => {
            let r = SaslHandshakeRequest::decode(&mut frame, version).map_err(|e| e.to_string())?;
            let ok = ex.is_some_and(|ex| ex.handshake(r.mechanism.as_str()));
            let mut resp = SaslHandshakeResponse::default()
                .with_mechanisms(crate::sasl::MECHANISMS.iter().map(|m| s(m)).collect());
            if !ok {
                resp = resp.with_error_code(ErrorCode::UnsupportedSaslMechanism.code());
            }
            let mut b = BytesMut::new();
            resp.encode(&mut b, version).map_err(|e| e.to_string())?;
            return respond(b, api.response_header_version(version));
        }
        (ApiKey::SaslAuthenticate, Some(ex)) => {
            let r = SaslAuthenticateRequest::decode(&mut frame, version).map_err(|e| e.to_string())?;
            let empty = std::collections::BTreeMap::new();
            let users = shared.users.as_ref().unwrap_or(&empty);
            let resp = match ex.step(&r.auth_bytes, users) {
                crate::sasl::Next::Continue(b) | crate::sasl::Next::Done(b) => {
                    SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(b))
                }
                crate::sasl::Next::Fail(why) => SaslAuthenticateResponse::default()
                    .with_error_code(ErrorCode::SaslAuthenticationFailed.code())
                    .with_error_message(Some(s(&why))),
            };
            let mut b = BytesMut::new();
            resp.encode(&mut b, version).map_err(|e| e.to_string())?;
            return respond(b, api.response_header_version(version));
        }
        (ApiKey::ApiVersions, _) => {}
        (_, Some(ex)) if !ex.is_done() => {
            return Err(format!("{api:?} before SASL authentication"));
        }
        _ => {}
    }
    let req = decode(api, &mut frame, version)?;
    if frame.has_remaining() {
        debug!(node, ?api, left = frame.remaining(), "bytes after the request body");
    }
    let fault = {
        let mut st = lock(shared);
        let parts = partitions_of(&req, &st, version);
        let (batches, fetch) = details_of(&req, &st, version);
        // An incremental fetch covers its session's partitions too.
        let mut covered = parts.clone();
        if let Some(f) = fetch.as_ref().filter(|f| version >= 7 && f.session_epoch > 0) {
            for p in st.session_partitions(node, f.session_id) {
                if !covered.contains(&p) && !f.forgotten.contains(&p) {
                    covered.push(p);
                }
            }
        }
        st.log_request(RequestRecord {
            node,
            api,
            version,
            correlation_id: header.correlation_id,
            client_id: client_id.clone(),
            at: now(),
            partitions: parts,
            batches,
            fetch,
        });
        st.take_fault(api, node, &covered)
    };
    let mut drop_response = false;
    let mut throttle = None;
    let inject = match fault.map(|f| (f.action, f.partition)) {
        Some((FaultAction::Throttle(d), _)) => {
            throttle = Some(d);
            None
        }
        Some((FaultAction::CloseConnection, _)) => return Err("a fault closed the connection".into()),
        Some((FaultAction::DropResponse, _)) => {
            drop_response = true;
            None
        }
        Some((FaultAction::Delay(d), _)) => {
            tokio::time::sleep(d).await;
            None
        }
        Some((FaultAction::Error(code), only)) => Some((code, only)),
        None => None,
    };
    let started = now();
    let wait_limit = match &req {
        Req::Fetch(r) => Duration::from_millis(r.max_wait_ms.max(0).unsigned_abs().into()),
        // Joins and syncs wait for the group; bounded anyway.
        _ => Duration::from_secs(300),
    };
    let mut pending = Pending::default();
    loop {
        let changed = shared.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        let now = now();
        let last = now.duration_since(started) >= wait_limit;
        let step = {
            let mut st = lock(shared);
            st.tick(now);
            step(
                &mut st,
                node,
                &req,
                version,
                &client_id,
                inject.as_ref(),
                &mut pending,
                now,
                last,
            )?
        };
        match step {
            Step::Reply(b) => {
                shared.changed.notify_waiters();
                if drop_response {
                    return Err("a fault dropped the response".into());
                }
                let Some(d) = throttle else {
                    return respond(b, api.response_header_version(version));
                };
                let (b, after) = throttled(api, version, b, d);
                if !after {
                    // Before KIP-219 the broker held the response for the throttle time.
                    tokio::time::sleep(d).await;
                }
                let mut a = respond(b, api.response_header_version(version))?;
                if after {
                    a.mute = d;
                }
                return Ok(a);
            }
            Step::NoReply => {
                shared.changed.notify_waiters();
                return Ok(Answer::from(None));
            }
            Step::Wait => {
                let left = wait_limit.saturating_sub(now.duration_since(started));
                let _ = tokio::time::timeout(left.min(Duration::from_millis(100)), changed).await;
            }
        }
    }
}

/// A response body with `throttle_time_ms` set to `d` (when its version has the field),
/// and whether the client is to throttle itself: KIP-219's versions, where the broker answers
/// at once and then mutes the connection, rather than holding the response.
fn throttled(api: ApiKey, v: i16, body: BytesMut, d: Duration) -> (BytesMut, bool) {
    let ms = i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    macro_rules! set {
        ($($key:ident => $resp:ty),* $(,)?) => {
            match api {
                $(ApiKey::$key => {
                    let mut bytes = body.clone().freeze();
                    match <$resp>::decode(&mut bytes, v) {
                        Ok(mut r) => {
                            r.throttle_time_ms = ms;
                            let mut out = BytesMut::new();
                            match r.encode(&mut out, v) {
                                Ok(()) => Some(out),
                                // The version has no such field.
                                Err(_) => None,
                            }
                        }
                        Err(_) => None,
                    }
                })*
                _ => None,
            }
        };
    }
    let patched = set!(
        Produce => ProduceResponse,
        Fetch => FetchResponse,
        ListOffsets => ListOffsetsResponse,
        Metadata => MetadataResponse,
        OffsetCommit => OffsetCommitResponse,
        OffsetFetch => OffsetFetchResponse,
        FindCoordinator => FindCoordinatorResponse,
        JoinGroup => JoinGroupResponse,
        Heartbeat => HeartbeatResponse,
        LeaveGroup => LeaveGroupResponse,
        SyncGroup => SyncGroupResponse,
        DescribeGroups => DescribeGroupsResponse,
        ListGroups => ListGroupsResponse,
        ApiVersions => ApiVersionsResponse,
        CreateTopics => CreateTopicsResponse,
        DeleteTopics => DeleteTopicsResponse,
        InitProducerId => InitProducerIdResponse,
        CreatePartitions => CreatePartitionsResponse,
        AddPartitionsToTxn => AddPartitionsToTxnResponse,
        AddOffsetsToTxn => AddOffsetsToTxnResponse,
        TxnOffsetCommit => TxnOffsetCommitResponse,
        EndTxn => EndTxnResponse,
        ConsumerGroupHeartbeat => ConsumerGroupHeartbeatResponse,
        DescribeConfigs => DescribeConfigsResponse,
        DescribeTransactions => DescribeTransactionsResponse,
        IncrementalAlterConfigs => IncrementalAlterConfigsResponse,
        ConsumerGroupDescribe => ConsumerGroupDescribeResponse,
        ListTransactions => ListTransactionsResponse,
    );
    let Some(patched) = patched else {
        return (body, false);
    };
    // The first version at which Kafka's client throttles itself (AbstractResponse's
    // shouldClientThrottle); every version of the APIs not named.
    let since = match api {
        ApiKey::Produce => 6,
        ApiKey::Fetch => 8,
        ApiKey::ListOffsets | ApiKey::JoinGroup | ApiKey::CreateTopics => 3,
        ApiKey::Metadata => 6,
        ApiKey::OffsetCommit | ApiKey::OffsetFetch => 4,
        ApiKey::FindCoordinator
        | ApiKey::Heartbeat
        | ApiKey::LeaveGroup
        | ApiKey::SyncGroup
        | ApiKey::DescribeGroups
        | ApiKey::ListGroups
        | ApiKey::ApiVersions
        | ApiKey::DeleteTopics
        | ApiKey::DescribeConfigs => 2,
        ApiKey::InitProducerId
        | ApiKey::AddPartitionsToTxn
        | ApiKey::AddOffsetsToTxn
        | ApiKey::EndTxn
        | ApiKey::TxnOffsetCommit
        | ApiKey::CreatePartitions => 1,
        _ => 0,
    };
    (patched, v >= since)
}
