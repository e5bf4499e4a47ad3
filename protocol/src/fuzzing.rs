//! Fuzz entry points: one function per decoder, each taking arbitrary bytes.
//!
//! This module exists so the cargo-fuzz targets in `fuzz/fuzz_targets/` (one three-line file
//! per function here) and the corpus replay test (`tests/fuzz_corpus.rs`) run exactly the
//! same code: a crash the fuzzer finds becomes a regression test by saving its input under
//! `fuzz/artifacts/<target>/`. [`TARGETS`] names every entry point; the replay test checks it
//! against `fuzz/fuzz_targets/` and `fuzz/corpus/`.
//!
//! Every function must return normally for every input: decode errors are expected and
//! ignored, a panic (or an abort, such as an allocation the input made huge) is a bug. A few
//! cheap invariants the decoders document are asserted too, so the fuzzer also finds wrong
//! answers, not only crashes. Only the crate's public API is used. Not a stable API: hidden
//! from the docs, for Strom's own fuzzing only.

use bytes::{Bytes, BytesMut};

use crate::compression::{self, Compression};
use crate::frame::{self, ApiRequest};
use crate::messages as m;
use crate::record_batch::{Batches, ControlRecord, DecodeOptions, Records};
use crate::varint;
use crate::versions::{self, NegotiatedVersions};

/// Largest frame and largest decompressed batch the entry points accept: small, so a run
/// spends its time on parsing rather than on allocating what a 4-byte length asked for.
const LIMIT: usize = 1 << 20;

/// Feeds `data[1..]` to [`frame::split_frame`] in chunks and checks the frames, the leftover
/// and the error are the same as when the whole input is split at once.
///
/// `data[0]` picks the chunking: below 128, fixed chunks of `data[0] + 1` bytes; from 128, a
/// pseudo-random sequence of 1 to 64 bytes seeded by it.
pub fn frame(data: &[u8]) {
    let Some((&seed, input)) = data.split_first() else {
        return;
    };

    let mut whole = BytesMut::from(input);
    let mut expected = Vec::new();
    let expected_end = loop {
        match frame::split_frame(&mut whole, LIMIT) {
            Ok(Some(f)) => expected.push(f),
            Ok(None) => break Ok(whole.len()),
            Err(e) => break Err(e),
        }
    };

    let mut state = u32::from(seed);
    let mut next_chunk = move || {
        if seed < 128 {
            usize::from(seed) + 1
        } else {
            state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            1 + (state >> 16) as usize % 64
        }
    };
    let mut buf = BytesMut::new();
    let mut got = Vec::new();
    let mut rest = input;
    let end = 'feed: loop {
        let n = next_chunk().min(rest.len());
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        loop {
            match frame::split_frame(&mut buf, LIMIT) {
                Ok(Some(f)) => {
                    let _ = frame::response_correlation_id(&f);
                    got.push(f);
                }
                Ok(None) => {
                    // The size prefix is read as soon as it is complete; a missing frame
                    // then always needs more bytes.
                    let missing = frame::frame_bytes_missing(&buf);
                    assert_eq!(missing == 0, buf.len() < 4, "frame_bytes_missing {missing}");
                    break;
                }
                Err(e) => break 'feed Err(e),
            }
        }
        if rest.is_empty() {
            break Ok(buf.len());
        }
    };
    assert_eq!(got, expected, "incremental and one-shot splits differ");
    assert_eq!(end, expected_end, "incremental and one-shot splits end differently");
}

/// Iterates the batches of `data` with CRC checks on, and every record, header and control
/// record of each.
pub fn batches(data: &[u8]) {
    batches_with(data, true);
}

/// [`batches`] without CRC checks, so mutated batches reach the header and record parsing
/// behind the CRC.
pub fn batches_no_crc(data: &[u8]) {
    batches_with(data, false);
}

fn batches_with(data: &[u8], check_crcs: bool) {
    let opts = DecodeOptions {
        check_crcs,
        max_decompressed_size: LIMIT,
    };
    let mut iter = Batches::new(Bytes::copy_from_slice(data), opts);
    let mut consumed = 0;
    let mut failed = false;
    for batch in iter.by_ref() {
        let batch = match batch {
            Ok(b) => b,
            Err(_) => {
                failed = true;
                break;
            }
        };
        assert_eq!(batch.magic(), 2);
        assert!(batch.records_count() >= 0);
        assert_eq!(batch.size_in_bytes(), 12 + batch.batch_length() as usize, "{batch:?}");
        consumed += batch.size_in_bytes();
        let _ = (
            batch.partition_leader_epoch(),
            batch.next_offset(),
            batch.timestamp_type(),
            batch.delete_horizon_ms(),
            batch.producer_epoch(),
            batch.base_sequence(),
        );
        let _ = batch.control_record(&opts);
        if let Ok(records) = batch.records(&opts) {
            touch_records(records, batch.records_count());
        }
    }
    assert!(iter.next().is_none(), "Batches yielded after its end");
    if !failed {
        assert_eq!(consumed + iter.remainder().len(), data.len());
    }
}

/// Reads the records of `data[1..]` as a decompressed records section holding `data[0]` (as
/// a signed byte) records. Base offset and timestamp are `i64::MAX`, so every delta but 0
/// overflows and must wrap.
pub fn records(data: &[u8]) {
    let Some((&count, section)) = data.split_first() else {
        return;
    };
    let count = i32::from(count as i8);
    let records = Records::from_section(Bytes::copy_from_slice(section), count, i64::MAX, i64::MAX);
    touch_records(records, count);
}

/// Reads every record, key, value and header; checks the iterator's documented behaviour:
/// at most `count` records, then nothing after an error or the end.
fn touch_records(mut records: Records, count: i32) {
    let mut ok = 0i64;
    for record in records.by_ref() {
        let Ok(record) = record else {
            break;
        };
        ok += 1;
        let _ = (record.offset, record.timestamp);
        let _ = (
            record.key.as_ref().map(Bytes::len),
            record.value.as_ref().map(Bytes::len),
        );
        let mut headers = 0;
        for h in record.headers.iter() {
            let _ = (h.key_str(), h.value.as_ref().map(Bytes::len));
            headers += 1;
        }
        // Headers are validated when the record is read, so iterating them cannot stop early.
        assert_eq!(headers, record.headers.len());
        let _ = record.headers.last(b"k");
        let _ = ControlRecord::parse(&record);
    }
    assert!(records.next().is_none(), "Records yielded after its end");
    assert!(ok <= i64::from(count.max(0)), "{ok} records of {count}");
}

fn decompress(codec: Compression, data: &[u8]) {
    if let Ok(out) = compression::decompress(codec, data, LIMIT) {
        assert!(out.len() <= LIMIT, "{codec}: {} bytes", out.len());
    }
}

/// gzip decompression, capped at 1 MiB.
pub fn decompress_gzip(data: &[u8]) {
    decompress(Compression::Gzip, data);
}

/// snappy (xerial framing or raw) decompression, capped at 1 MiB.
pub fn decompress_snappy(data: &[u8]) {
    decompress(Compression::Snappy, data);
}

/// LZ4 frame decompression, capped at 1 MiB.
pub fn decompress_lz4(data: &[u8]) {
    decompress(Compression::Lz4, data);
}

/// zstd decompression, capped at 1 MiB.
pub fn decompress_zstd(data: &[u8]) {
    decompress(Compression::Zstd, data);
}

/// Decodes `data` as a sequence of each varint kind, checking every decoded value
/// re-encodes to the same value in the predicted number of bytes.
pub fn varint(data: &[u8]) {
    fn each<T: Copy + PartialEq + std::fmt::Debug>(
        data: &[u8],
        max_len: usize,
        get: fn(&mut &[u8], &'static str) -> Result<T, crate::WireError>,
        put: fn(&mut Vec<u8>, T),
        len: fn(T) -> usize,
    ) {
        let mut cur = data;
        while !cur.is_empty() {
            let before = cur.len();
            let Ok(v) = get(&mut cur, "fuzz") else {
                return;
            };
            let used = before - cur.len();
            assert!((1..=max_len).contains(&used), "{used} bytes for {v:?}");
            let mut out = Vec::new();
            put(&mut out, v);
            assert_eq!(out.len(), len(v), "{v:?}");
            assert!(out.len() <= used, "{v:?} re-encoded longer than read");
            let mut back = &out[..];
            assert_eq!(get(&mut back, "fuzz").ok(), Some(v));
            assert!(back.is_empty());
        }
    }
    each(
        data,
        5,
        varint::get_uvarint,
        varint::put_uvarint::<Vec<u8>>,
        varint::uvarint_len,
    );
    each(
        data,
        10,
        varint::get_uvarlong,
        varint::put_uvarlong::<Vec<u8>>,
        varint::uvarlong_len,
    );
    each(
        data,
        5,
        varint::get_varint,
        varint::put_varint::<Vec<u8>>,
        varint::varint_len,
    );
    each(
        data,
        10,
        varint::get_varlong,
        varint::put_varlong::<Vec<u8>>,
        varint::varlong_len,
    );
}

/// Decodes `data` as a whole response frame (header and body, no size prefix) to request `R`.
///
/// The expected correlation id is the frame's own (its first 4 bytes), so every input gets
/// past that check; the version is `data[0]` folded into Strom's supported range for the API,
/// so one byte picks it and the fuzzer reaches every version.
fn response<R: ApiRequest>(data: &[u8]) -> Option<R::Response> {
    let range = versions::supported(R::API)?;
    let id = frame::response_correlation_id(data).ok()?;
    let span = range.max - range.min + 1;
    let version = range.min + i16::from(data[0]) % span;
    frame::decode_response::<R>(Bytes::copy_from_slice(data), version, id).ok()
}

/// ApiVersions, then version negotiation against what it decoded.
pub fn response_api_versions(data: &[u8]) {
    let Some(resp) = response::<m::ApiVersionsRequest>(data) else {
        return;
    };
    let negotiated = NegotiatedVersions::from_response(&resp);
    for ours in versions::SUPPORTED {
        if let Ok(v) = negotiated.version(ours.api) {
            assert!((ours.min..=ours.max).contains(&v), "{}: {v}", ours.name);
            let broker = negotiated.broker_range(ours.api);
            assert!(
                broker.is_some_and(|(lo, hi)| (lo..=hi).contains(&v)),
                "{}: {v} {broker:?}",
                ours.name
            );
        }
    }
    let _ = negotiated.features().transaction_version();
}

macro_rules! response_targets {
    ($($name:ident: $req:ident),* $(,)?) => {
        $(
            #[doc = concat!("Decodes the response to `", stringify!($req), "`.")]
            pub fn $name(data: &[u8]) {
                let _ = response::<m::$req>(data);
            }
        )*

        /// The API of every response target (ApiVersions included), to check none is missing.
        #[cfg(test)]
        const RESPONSE_APIS: &[m::ApiKey] = &[
            <m::ApiVersionsRequest as ApiRequest>::API,
            $(<m::$req as ApiRequest>::API),*
        ];

        /// Every entry point, by the name of its fuzz target.
        pub const TARGETS: &[(&str, fn(&[u8]))] = &[
            ("frame", frame),
            ("batches", batches),
            ("batches_no_crc", batches_no_crc),
            ("records", records),
            ("decompress_gzip", decompress_gzip),
            ("decompress_snappy", decompress_snappy),
            ("decompress_lz4", decompress_lz4),
            ("decompress_zstd", decompress_zstd),
            ("varint", varint),
            ("response_api_versions", response_api_versions),
            $((stringify!($name), $name)),*
        ];
    };
}

response_targets! {
    response_produce: ProduceRequest,
    response_fetch: FetchRequest,
    response_list_offsets: ListOffsetsRequest,
    response_metadata: MetadataRequest,
    response_offset_commit: OffsetCommitRequest,
    response_offset_fetch: OffsetFetchRequest,
    response_find_coordinator: FindCoordinatorRequest,
    response_join_group: JoinGroupRequest,
    response_heartbeat: HeartbeatRequest,
    response_leave_group: LeaveGroupRequest,
    response_sync_group: SyncGroupRequest,
    response_describe_groups: DescribeGroupsRequest,
    response_list_groups: ListGroupsRequest,
    response_sasl_handshake: SaslHandshakeRequest,
    response_create_topics: CreateTopicsRequest,
    response_delete_topics: DeleteTopicsRequest,
    response_delete_records: DeleteRecordsRequest,
    response_init_producer_id: InitProducerIdRequest,
    response_add_partitions_to_txn: AddPartitionsToTxnRequest,
    response_add_offsets_to_txn: AddOffsetsToTxnRequest,
    response_end_txn: EndTxnRequest,
    response_txn_offset_commit: TxnOffsetCommitRequest,
    response_write_txn_markers: WriteTxnMarkersRequest,
    response_describe_configs: DescribeConfigsRequest,
    response_alter_configs: AlterConfigsRequest,
    response_sasl_authenticate: SaslAuthenticateRequest,
    response_create_partitions: CreatePartitionsRequest,
    response_delete_groups: DeleteGroupsRequest,
    response_incremental_alter_configs: IncrementalAlterConfigsRequest,
    response_offset_delete: OffsetDeleteRequest,
    response_describe_user_scram_credentials: DescribeUserScramCredentialsRequest,
    response_alter_user_scram_credentials: AlterUserScramCredentialsRequest,
    response_describe_cluster: DescribeClusterRequest,
    response_describe_producers: DescribeProducersRequest,
    response_describe_transactions: DescribeTransactionsRequest,
    response_list_transactions: ListTransactionsRequest,
    response_consumer_group_heartbeat: ConsumerGroupHeartbeatRequest,
    response_consumer_group_describe: ConsumerGroupDescribeRequest,
    response_elect_leaders: ElectLeadersRequest,
    response_alter_partition_reassignments: AlterPartitionReassignmentsRequest,
    response_list_partition_reassignments: ListPartitionReassignmentsRequest,
    response_create_acls: CreateAclsRequest,
    response_describe_acls: DescribeAclsRequest,
    response_delete_acls: DeleteAclsRequest,
    response_describe_client_quotas: DescribeClientQuotasRequest,
    response_alter_client_quotas: AlterClientQuotasRequest,
    response_update_features: UpdateFeaturesRequest,
    response_describe_quorum: DescribeQuorumRequest,
    response_describe_log_dirs: DescribeLogDirsRequest,
    response_alter_replica_log_dirs: AlterReplicaLogDirsRequest,
    response_create_delegation_token: CreateDelegationTokenRequest,
    response_renew_delegation_token: RenewDelegationTokenRequest,
    response_expire_delegation_token: ExpireDelegationTokenRequest,
    response_describe_delegation_token: DescribeDelegationTokenRequest,
    response_share_group_heartbeat: ShareGroupHeartbeatRequest,
    response_share_group_describe: ShareGroupDescribeRequest,
    response_share_fetch: ShareFetchRequest,
    response_share_acknowledge: ShareAcknowledgeRequest,
    response_describe_share_group_offsets: DescribeShareGroupOffsetsRequest,
    response_alter_share_group_offsets: AlterShareGroupOffsetsRequest,
    response_delete_share_group_offsets: DeleteShareGroupOffsetsRequest,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_supported_api_has_a_response_target() {
        let mut ours: Vec<i16> = RESPONSE_APIS.iter().map(|&k| k as i16).collect();
        let mut supported: Vec<i16> = versions::SUPPORTED.iter().map(|r| r.api as i16).collect();
        ours.sort_unstable();
        supported.sort_unstable();
        assert_eq!(ours, supported);
    }

    #[test]
    fn target_names_are_unique() {
        let mut names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TARGETS.len());
    }

    #[test]
    fn tiny_inputs_do_not_panic() {
        for (_, target) in TARGETS {
            for data in [&[][..], &[0], &[0xff; 5], &[0, 0, 0, 0, 0, 0, 0, 1]] {
                target(data);
            }
        }
    }
}
