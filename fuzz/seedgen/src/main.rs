//! Writes the seed inputs of the fuzz corpus: `seed-*` files under `<dir>/<target>/`.
//!
//! `cargo run --manifest-path fuzz/Cargo.toml -p strom-fuzz-seedgen -- fuzz/corpus`
//!
//! Seeds are small valid inputs, so the fuzzer starts from the structure it must mutate:
//! frames, record batches with every codec (and a control batch), compressed blobs, and a
//! response of every API Strom sends at its lowest version, its first flexible one and its
//! highest. Files other than `seed-*` (what the fuzzer found) are left alone.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{self as m, ResponseHeader};
use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};
use strom_protocol::compression::{self, Compression};
use strom_protocol::frame::ApiRequest;
use strom_protocol::record_batch::{BatchBuilder, BatchHeader, BatchView, DecodeOptions, NewRecord};
use strom_protocol::varint;
use strom_protocol::versions;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

struct Out {
    dir: PathBuf,
    written: usize,
}

impl Out {
    fn write(&mut self, target: &str, name: &str, data: &[u8]) -> Result<()> {
        let dir = self.dir.join(target);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join(format!("seed-{name}")), data)?;
        self.written += 1;
        Ok(())
    }
}

fn batch(codec: Compression, transactional: bool, n: u32) -> Result<Bytes> {
    let mut b = BatchBuilder::new(
        BatchHeader {
            compression: codec,
            producer_id: if transactional { 7 } else { -1 },
            producer_epoch: if transactional { 1 } else { -1 },
            base_sequence: if transactional { 0 } else { -1 },
            transactional,
            base_offset: 100,
            partition_leader_epoch: 3,
        },
        1024,
    );
    let value = b"value value value value value".repeat(3);
    for i in 0..n {
        let key = i.to_be_bytes();
        let headers: &[(&str, Option<&[u8]>)] = match i % 3 {
            0 => &[],
            1 => &[("h", Some(b"1")), ("h", Some(b"2"))],
            _ => &[("null", None)],
        };
        b.append(&NewRecord {
            timestamp: 1_700_000_000_000 + i64::from(i) * 1000,
            key: (i % 2 == 0).then_some(&key[..]),
            value: (i != 2).then_some(&value[..]),
            headers,
        })?;
    }
    Ok(b.finish()?)
}

/// Sets attribute bits of a finished batch and recomputes its CRC (the builder writes
/// neither control batches nor LogAppendTime).
fn patch_attributes(batch: &[u8], bits: u16) -> Vec<u8> {
    let mut out = batch.to_vec();
    let attrs = u16::from_be_bytes([out[21], out[22]]) | bits;
    out[21..23].copy_from_slice(&attrs.to_be_bytes());
    let crc = crc32c::crc32c(&out[21..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// A transactional commit marker: key = version 0, type 1; value = version 0, epoch 5.
fn control_batch() -> Result<Vec<u8>> {
    let mut b = BatchBuilder::new(
        BatchHeader {
            producer_id: 7,
            producer_epoch: 1,
            transactional: true,
            ..BatchHeader::default()
        },
        128,
    );
    b.append(&NewRecord {
        timestamp: 1_700_000_000_000,
        key: Some(&[0, 0, 0, 1]),
        value: Some(&[0, 0, 0, 0, 0, 5]),
        headers: &[],
    })?;
    let batch = patch_attributes(&b.finish()?, 0x20);
    let opts = DecodeOptions::default();
    let view = BatchView::parse(&mut Bytes::copy_from_slice(&batch), &opts)?.ok_or("truncated")?;
    view.control_record(&opts)?.ok_or("not a control batch")?;
    Ok(batch)
}

fn record_seeds(out: &mut Out) -> Result<()> {
    let mut all = Vec::new();
    for codec in Compression::ALL {
        let b = batch(codec, false, 4)?;
        out.write("batches", codec.name(), &b)?;
        out.write("batches_no_crc", codec.name(), &b)?;
        all.extend_from_slice(&b);
    }
    let control = control_batch()?;
    out.write("batches", "control", &control)?;
    out.write("batches_no_crc", "control", &control)?;
    // LogAppendTime, transactional, then a truncated batch (not an error at the end).
    let mut mixed = patch_attributes(&batch(Compression::None, true, 2)?, 0x08);
    mixed.extend_from_slice(&control);
    mixed.extend_from_slice(&all[..80]);
    out.write("batches", "mixed", &mixed)?;
    out.write("batches_no_crc", "mixed", &mixed)?;

    // Records: the count byte, then a batch's records section.
    let b = batch(Compression::None, false, 4)?;
    let mut section = vec![4];
    section.extend_from_slice(&b[61..]);
    out.write("records", "four", &section)?;
    let mut section = vec![1];
    section.extend_from_slice(&control_batch()?[61..]);
    out.write("records", "control", &section)?;

    let text = b"The quick brown fox jumps over the lazy dog. ".repeat(20);
    let records_section = &batch(Compression::None, false, 6)?[61..];
    for codec in Compression::ALL {
        if codec == Compression::None {
            continue;
        }
        let target = format!("decompress_{}", codec.name());
        for (name, input) in [("text", &text[..]), ("records", records_section), ("empty", &[][..])] {
            let mut c = Vec::new();
            compression::compress(codec, input, &mut c)?;
            out.write(&target, name, &c)?;
        }
    }
    // Raw snappy, no xerial header (read as Java's SnappyInputStream falls back to).
    let mut raw = vec![0; 64];
    let n = raw_snappy(&text[..40], &mut raw);
    out.write("decompress_snappy", "raw", &raw[..n])?;
    Ok(())
}

/// A raw snappy block of literals only (format: uvarint length, literal tag, bytes).
fn raw_snappy(input: &[u8], out: &mut [u8]) -> usize {
    assert!(!input.is_empty() && input.len() <= 60);
    out[0] = input.len() as u8;
    out[1] = ((input.len() - 1) as u8) << 2;
    out[2..2 + input.len()].copy_from_slice(input);
    2 + input.len()
}

fn frame_seeds(out: &mut Out) -> Result<()> {
    fn frames(seed: u8, bodies: &[&[u8]], tail: &[u8]) -> Vec<u8> {
        let mut v = vec![seed];
        for b in bodies {
            v.put_i32(b.len() as i32);
            v.extend_from_slice(b);
        }
        v.extend_from_slice(tail);
        v
    }
    out.write(
        "frame",
        "bytewise",
        &frames(0, &[b"abc", b"", b"\0\0\0\x07xyz"], &[0, 0]),
    )?;
    out.write("frame", "chunks7", &frames(6, &[&[1; 20], &[2; 3]], &[0, 0, 0, 9, 1]))?;
    out.write("frame", "random", &frames(200, &[&[3; 50], &[4; 70], b"q"], &[]))?;
    out.write("frame", "negative", &frames(3, &[b"ok"], &[0xff, 0xff, 0xff, 0xfe]))?;
    out.write("frame", "too_large", &frames(129, &[b"ok"], &[0, 0x10, 0, 1, 0]))?;
    Ok(())
}

fn varint_seeds(out: &mut Out) -> Result<()> {
    let mut b = Vec::new();
    for v in [0, -1, 1, 63, -64, 64, 300, i32::MAX, i32::MIN] {
        varint::put_varint(&mut b, v);
    }
    out.write("varint", "varints", &b)?;
    let mut b = Vec::new();
    for v in [0, -1, i64::MAX, i64::MIN, 1 << 40] {
        varint::put_varlong(&mut b, v);
    }
    out.write("varint", "varlongs", &b)?;
    out.write(
        "varint",
        "non_canonical",
        &[0x80, 0x80, 0x00, 0xff, 0xff, 0xff, 0xff, 0x0f],
    )?;
    Ok(())
}

/// A response frame (header and body, no size prefix) as `fuzzing::response_*` reads it:
/// the first byte of the correlation id selects `version` within Strom's range.
fn response_frame<R: ApiRequest>(resp: &R::Response, version: i16) -> Result<Vec<u8>>
where
    R::Response: Encodable,
{
    let range = versions::supported(R::API).ok_or("unsupported API")?;
    let pick = u8::try_from(version - range.min)?;
    let id = i32::from_be_bytes([pick, 0, 0, 42]);
    let mut buf = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(id)
        .encode(&mut buf, R::Response::header_version(version))?;
    resp.encode(&mut buf, version)?;
    // A seed the decoder refuses would only teach the fuzzer the error path.
    strom_protocol::frame::decode_response::<R>(buf.clone().freeze(), version, id)?;
    Ok(buf.to_vec())
}

/// Lowest, first flexible (header v1, or v3 for ApiVersions) and highest version.
fn seed_versions<R: ApiRequest>() -> Result<Vec<i16>> {
    let range = versions::supported(R::API).ok_or("unsupported API")?;
    let mut vs = vec![range.min, range.max];
    if let Some(v) = (range.min..=range.max).find(|&v| R::Response::header_version(v) > 0) {
        vs.push(v);
    }
    if R::API == m::ApiKey::ApiVersions {
        vs.push(3);
    }
    vs.sort_unstable();
    vs.dedup();
    Ok(vs)
}

fn response_seeds<R: ApiRequest>(out: &mut Out, target: &str, resp: &R::Response) -> Result<()>
where
    R::Response: Encodable,
{
    for v in seed_versions::<R>()? {
        out.write(target, &format!("v{v}"), &response_frame::<R>(resp, v)?)?;
    }
    Ok(())
}

fn api_versions() -> m::ApiVersionsResponse {
    m::ApiVersionsResponse::default()
        .with_api_keys(
            versions::SUPPORTED
                .iter()
                .map(|r| {
                    m::api_versions_response::ApiVersion::default()
                        .with_api_key(r.api as i16)
                        .with_min_version(0)
                        .with_max_version(r.max + 1)
                })
                .collect(),
        )
        .with_finalized_features_epoch(3)
        .with_finalized_features(vec![m::api_versions_response::FinalizedFeatureKey::default()
            .with_name(StrBytes::from_static_str("transaction.version"))
            .with_min_version_level(1)
            .with_max_version_level(2)])
}

fn metadata() -> m::MetadataResponse {
    use m::metadata_response::*;
    MetadataResponse::default()
        .with_brokers(vec![MetadataResponseBroker::default()
            .with_node_id(1.into())
            .with_host(StrBytes::from_static_str("localhost"))
            .with_port(9092)
            .with_rack(Some(StrBytes::from_static_str("r1")))])
        .with_cluster_id(Some(StrBytes::from_static_str("cluster")))
        .with_controller_id(1.into())
        .with_topics(vec![MetadataResponseTopic::default()
            .with_name(Some(StrBytes::from_static_str("t").into()))
            .with_partitions(vec![MetadataResponsePartition::default()
                .with_partition_index(0)
                .with_leader_id(1.into())
                .with_leader_epoch(5)
                .with_replica_nodes(vec![1.into()])
                .with_isr_nodes(vec![1.into()])])])
}

fn fetch() -> Result<m::FetchResponse> {
    use m::fetch_response::*;
    let records = batch(Compression::Lz4, false, 3)?;
    Ok(
        FetchResponse::default().with_responses(vec![FetchableTopicResponse::default()
            .with_topic(StrBytes::from_static_str("t").into())
            .with_partitions(vec![PartitionData::default()
                .with_partition_index(0)
                .with_high_watermark(103)
                .with_aborted_transactions(Some(vec![AbortedTransaction::default()
                    .with_producer_id(7.into())
                    .with_first_offset(90)]))
                .with_records(Some(records))])]),
    )
}

macro_rules! defaults {
    ($out:expr, $($name:literal: $req:ident),* $(,)?) => {
        $(
            response_seeds::<m::$req>(
                $out,
                $name,
                &<m::$req as ApiRequest>::Response::default(),
            )?;
        )*
    };
}

/// A request frame (without its size) as a client sends it: header, then body.
fn request_frame<R: Encodable>(api: m::ApiKey, req: &R, v: i16) -> Option<Vec<u8>> {
    let mut b = BytesMut::new();
    m::RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(v)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("seed")))
        .encode(&mut b, api.request_header_version(v))
        .ok()?;
    req.encode(&mut b, v).ok()?;
    Some(b.to_vec())
}

/// Requests of every API the fake cluster answers (target fake_request), at its lowest and
/// highest version.
fn fake_request_seeds(out: &mut Out) -> Result<()> {
    use kafka_protocol::messages::*;
    let t = || TopicName(StrBytes::from_static_str("t"));
    let records = batch(Compression::None, false, 3)?;
    let produce = ProduceRequest::default().with_acks(-1).with_topic_data(vec![produce_request::TopicProduceData::default()
        .with_name(t())
        .with_partition_data(vec![produce_request::PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(records))])]);
    let fetch = FetchRequest::default().with_max_bytes(1 << 20).with_topics(vec![fetch_request::FetchTopic::default()
        .with_topic(t())
        .with_partitions(vec![fetch_request::FetchPartition::default().with_partition_max_bytes(1 << 20)])]);
    let join = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![join_group_request::JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from_static(b"\0\0\0\0\0\x01\0\x01t"))]);
    let create = CreateTopicsRequest::default().with_topics(vec![create_topics_request::CreatableTopic::default()
        .with_name(TopicName(StrBytes::from_static_str("new")))
        .with_num_partitions(3)
        .with_replication_factor(1)]);
    let list = ListOffsetsRequest::default().with_topics(vec![list_offsets_request::ListOffsetsTopic::default()
        .with_name(t())
        .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default().with_timestamp(-1)])]);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![offset_commit_request::OffsetCommitRequestTopic::default()
            .with_name(t())
            .with_partitions(vec![offset_commit_request::OffsetCommitRequestPartition::default().with_committed_offset(3)])]);
    macro_rules! seeds {
        ($($api:ident $min:literal..=$max:literal: $req:expr),* $(,)?) => {$(
            for v in [$min, $max] {
                if let Some(f) = request_frame(ApiKey::$api, &$req, v) {
                    out.write("fake_request", &format!("{}-v{v}", stringify!($api)), &f)?;
                }
            }
        )*};
    }
    seeds!(
        Produce 3..=12: produce,
        Fetch 4..=12: fetch,
        ListOffsets 1..=9: list,
        Metadata 4..=12: MetadataRequest::default().with_topics(None).with_allow_auto_topic_creation(true),
        OffsetCommit 2..=8: commit,
        OffsetFetch 1..=7: OffsetFetchRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))),
        FindCoordinator 0..=3: FindCoordinatorRequest::default().with_key(StrBytes::from_static_str("g")),
        JoinGroup 0..=9: join,
        Heartbeat 0..=4: HeartbeatRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))),
        LeaveGroup 0..=2: LeaveGroupRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))),
        SyncGroup 0..=5: SyncGroupRequest::default().with_group_id(GroupId(StrBytes::from_static_str("g"))),
        DescribeGroups 0..=5: DescribeGroupsRequest::default().with_groups(vec![GroupId(StrBytes::from_static_str("g"))]),
        ListGroups 0..=4: ListGroupsRequest::default(),
        ApiVersions 0..=4: ApiVersionsRequest::default(),
        CreateTopics 2..=7: create,
        DeleteTopics 1..=5: DeleteTopicsRequest::default().with_topic_names(vec![t()]),
        InitProducerId 0..=5: InitProducerIdRequest::default().with_transaction_timeout_ms(60_000),
        CreatePartitions 0..=3: CreatePartitionsRequest::default(),
        AddPartitionsToTxn 0..=3: AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(StrBytes::from_static_str("x")))
            .with_v3_and_below_topics(vec![add_partitions_to_txn_request::AddPartitionsToTxnTopic::default()
                .with_name(t())
                .with_partitions(vec![0])]),
        AddOffsetsToTxn 0..=3: AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_static_str("x")))
            .with_group_id(GroupId(StrBytes::from_static_str("g"))),
        TxnOffsetCommit 0..=3: TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_static_str("x")))
            .with_group_id(GroupId(StrBytes::from_static_str("g"))),
        EndTxn 0..=3: EndTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_static_str("x")))
            .with_committed(true),
        DescribeConfigs 1..=4: DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("t"))
                    .with_configuration_keys(None),
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_static_str("1"))
                    .with_configuration_keys(Some(vec![StrBytes::from_static_str("num.partitions")])),
            ]),
        IncrementalAlterConfigs 0..=1: IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(StrBytes::from_static_str("t"))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(StrBytes::from_static_str("cleanup.policy"))
                        .with_config_operation(2)
                        .with_value(Some(StrBytes::from_static_str("compact"))),
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(StrBytes::from_static_str("retention.ms"))
                        .with_config_operation(0)
                        .with_value(Some(StrBytes::from_static_str("1000"))),
                ]),
        ]),
        ConsumerGroupDescribe 0..=1: ConsumerGroupDescribeRequest::default()
            .with_group_ids(vec![GroupId(StrBytes::from_static_str("g"))]),
        DescribeTransactions 0..=0: DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(StrBytes::from_static_str("x"))]),
        ListTransactions 0..=2: ListTransactionsRequest::default()
            .with_state_filters(vec![StrBytes::from_static_str("Ongoing")])
            .with_duration_filter(-1),
    );
    let list_txn = ListTransactionsRequest::default().with_transactional_id_pattern(Some(StrBytes::from_static_str("x.*")));
    if let Some(f) = request_frame(ApiKey::ListTransactions, &list_txn, 2) {
        out.write("fake_request", "ListTransactions-pattern-v2", &f)?;
    }
    let heartbeat = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("g")))
        .with_member_id(StrBytes::from_static_str("m-1"))
        .with_subscribed_topic_names(Some(vec![t()]))
        .with_topic_partitions(Some(Vec::new()));
    for v in [0, 1] {
        if let Some(f) = request_frame(ApiKey::ConsumerGroupHeartbeat, &heartbeat, v) {
            out.write("fake_request", &format!("ConsumerGroupHeartbeat-v{v}"), &f)?;
        }
    }
    let init_txn = InitProducerIdRequest::default()
        .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("x"))))
        .with_transaction_timeout_ms(60_000);
    for v in [0, 5] {
        if let Some(f) = request_frame(ApiKey::InitProducerId, &init_txn, v) {
            out.write("fake_request", &format!("InitProducerId-transactional-v{v}"), &f)?;
        }
    }
    Ok(())
}

fn main() -> Result<()> {
    let dir = std::env::args_os()
        .nth(1)
        .ok_or("usage: strom-fuzz-seedgen <corpus dir>")?;
    let mut out = Out {
        dir: Path::new(&dir).to_owned(),
        written: 0,
    };
    frame_seeds(&mut out)?;
    record_seeds(&mut out)?;
    varint_seeds(&mut out)?;
    fake_request_seeds(&mut out)?;
    response_seeds::<m::ApiVersionsRequest>(&mut out, "response_api_versions", &api_versions())?;
    response_seeds::<m::MetadataRequest>(&mut out, "response_metadata", &metadata())?;
    response_seeds::<m::FetchRequest>(&mut out, "response_fetch", &fetch()?)?;
    defaults!(
        &mut out,
        "response_produce": ProduceRequest,
        "response_list_offsets": ListOffsetsRequest,
        "response_offset_commit": OffsetCommitRequest,
        "response_offset_fetch": OffsetFetchRequest,
        "response_find_coordinator": FindCoordinatorRequest,
        "response_join_group": JoinGroupRequest,
        "response_heartbeat": HeartbeatRequest,
        "response_leave_group": LeaveGroupRequest,
        "response_sync_group": SyncGroupRequest,
        "response_describe_groups": DescribeGroupsRequest,
        "response_list_groups": ListGroupsRequest,
        "response_sasl_handshake": SaslHandshakeRequest,
        "response_create_topics": CreateTopicsRequest,
        "response_delete_topics": DeleteTopicsRequest,
        "response_delete_records": DeleteRecordsRequest,
        "response_init_producer_id": InitProducerIdRequest,
        "response_add_partitions_to_txn": AddPartitionsToTxnRequest,
        "response_add_offsets_to_txn": AddOffsetsToTxnRequest,
        "response_end_txn": EndTxnRequest,
        "response_txn_offset_commit": TxnOffsetCommitRequest,
        "response_write_txn_markers": WriteTxnMarkersRequest,
        "response_describe_configs": DescribeConfigsRequest,
        "response_alter_configs": AlterConfigsRequest,
        "response_sasl_authenticate": SaslAuthenticateRequest,
        "response_create_partitions": CreatePartitionsRequest,
        "response_delete_groups": DeleteGroupsRequest,
        "response_incremental_alter_configs": IncrementalAlterConfigsRequest,
        "response_offset_delete": OffsetDeleteRequest,
        "response_describe_user_scram_credentials": DescribeUserScramCredentialsRequest,
        "response_alter_user_scram_credentials": AlterUserScramCredentialsRequest,
        "response_describe_cluster": DescribeClusterRequest,
        "response_describe_producers": DescribeProducersRequest,
        "response_describe_transactions": DescribeTransactionsRequest,
        "response_list_transactions": ListTransactionsRequest,
        "response_consumer_group_heartbeat": ConsumerGroupHeartbeatRequest,
        "response_consumer_group_describe": ConsumerGroupDescribeRequest,
        "response_elect_leaders": ElectLeadersRequest,
        "response_alter_partition_reassignments": AlterPartitionReassignmentsRequest,
        "response_list_partition_reassignments": ListPartitionReassignmentsRequest,
        "response_create_acls": CreateAclsRequest,
        "response_describe_acls": DescribeAclsRequest,
        "response_delete_acls": DeleteAclsRequest,
        "response_describe_client_quotas": DescribeClientQuotasRequest,
        "response_alter_client_quotas": AlterClientQuotasRequest,
        "response_update_features": UpdateFeaturesRequest,
        "response_describe_quorum": DescribeQuorumRequest,
        "response_describe_log_dirs": DescribeLogDirsRequest,
        "response_alter_replica_log_dirs": AlterReplicaLogDirsRequest,
        "response_create_delegation_token": CreateDelegationTokenRequest,
        "response_renew_delegation_token": RenewDelegationTokenRequest,
        "response_expire_delegation_token": ExpireDelegationTokenRequest,
        "response_describe_delegation_token": DescribeDelegationTokenRequest,
        "response_share_group_heartbeat": ShareGroupHeartbeatRequest,
        "response_share_group_describe": ShareGroupDescribeRequest,
        "response_share_fetch": ShareFetchRequest,
        "response_share_acknowledge": ShareAcknowledgeRequest,
        "response_describe_share_group_offsets": DescribeShareGroupOffsetsRequest,
        "response_alter_share_group_offsets": AlterShareGroupOffsetsRequest,
        "response_delete_share_group_offsets": DeleteShareGroupOffsetsRequest,
    );
    println!("wrote {} seed files under {}", out.written, out.dir.display());
    Ok(())
}
