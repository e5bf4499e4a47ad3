//! Size-prefixed frames, request headers and response headers.
//!
//! Reading is incremental in the style of `postgres-protocol`: [`split_frame`] returns
//! `Ok(None)` until a whole frame is buffered, and refuses a frame larger than the
//! configured maximum *before* anything is allocated for it. A frame is frozen into
//! `Bytes`, so decoding hands out slices of it (record sets in particular) without copying.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{self as m, ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

use crate::error::WireError;
use crate::versions::api_name;

/// A request Strom sends: its API key and the response it gets back.
///
/// (`kafka-protocol`'s own `Request` trait needs its `broker` feature, which also compiles
/// every request decoder and response encoder; a client needs only this direction.)
pub trait ApiRequest: Encodable + HeaderVersion {
    /// The API key.
    const API: ApiKey;
    /// The response type.
    type Response: Decodable + HeaderVersion;

    /// How long the client is to send nothing more on the connection after `response`
    /// (its `throttle_time_ms`), at the versions where the broker answers a throttled
    /// request at once and leaves the waiting to the client (KIP-219, Java's
    /// `shouldClientThrottle`); 0 at the versions before, where the broker held the answer.
    fn client_throttle_ms(response: &Self::Response, version: i16) -> i32 {
        let _ = (response, version);
        0
    }
}

/// `$since`: the first version at which the client throttles itself (KIP-219).
macro_rules! api_requests {
    ($($api:ident: $req:ident => $resp:ident $(@ $since:literal)?),* $(,)?) => {
        $(
            impl ApiRequest for m::$req {
                const API: ApiKey = ApiKey::$api;
                type Response = m::$resp;
                $(
                    fn client_throttle_ms(response: &m::$resp, version: i16) -> i32 {
                        if version >= $since {
                            response.throttle_time_ms.max(0)
                        } else {
                            0
                        }
                    }
                )?
            }
        )*
    };
}

api_requests! {
    Produce: ProduceRequest => ProduceResponse @ 6,
    Fetch: FetchRequest => FetchResponse @ 8,
    ListOffsets: ListOffsetsRequest => ListOffsetsResponse @ 3,
    Metadata: MetadataRequest => MetadataResponse @ 6,
    OffsetCommit: OffsetCommitRequest => OffsetCommitResponse @ 4,
    OffsetFetch: OffsetFetchRequest => OffsetFetchResponse @ 4,
    FindCoordinator: FindCoordinatorRequest => FindCoordinatorResponse @ 2,
    JoinGroup: JoinGroupRequest => JoinGroupResponse @ 3,
    Heartbeat: HeartbeatRequest => HeartbeatResponse @ 2,
    LeaveGroup: LeaveGroupRequest => LeaveGroupResponse @ 2,
    SyncGroup: SyncGroupRequest => SyncGroupResponse @ 2,
    DescribeGroups: DescribeGroupsRequest => DescribeGroupsResponse @ 2,
    ListGroups: ListGroupsRequest => ListGroupsResponse @ 2,
    SaslHandshake: SaslHandshakeRequest => SaslHandshakeResponse,
    ApiVersions: ApiVersionsRequest => ApiVersionsResponse @ 2,
    CreateTopics: CreateTopicsRequest => CreateTopicsResponse @ 3,
    DeleteTopics: DeleteTopicsRequest => DeleteTopicsResponse @ 2,
    DeleteRecords: DeleteRecordsRequest => DeleteRecordsResponse @ 1,
    InitProducerId: InitProducerIdRequest => InitProducerIdResponse @ 1,
    AddPartitionsToTxn: AddPartitionsToTxnRequest => AddPartitionsToTxnResponse @ 1,
    AddOffsetsToTxn: AddOffsetsToTxnRequest => AddOffsetsToTxnResponse @ 1,
    EndTxn: EndTxnRequest => EndTxnResponse @ 1,
    TxnOffsetCommit: TxnOffsetCommitRequest => TxnOffsetCommitResponse @ 1,
    WriteTxnMarkers: WriteTxnMarkersRequest => WriteTxnMarkersResponse,
    DescribeConfigs: DescribeConfigsRequest => DescribeConfigsResponse @ 2,
    AlterConfigs: AlterConfigsRequest => AlterConfigsResponse @ 1,
    SaslAuthenticate: SaslAuthenticateRequest => SaslAuthenticateResponse,
    CreatePartitions: CreatePartitionsRequest => CreatePartitionsResponse @ 1,
    DeleteGroups: DeleteGroupsRequest => DeleteGroupsResponse @ 1,
    IncrementalAlterConfigs: IncrementalAlterConfigsRequest => IncrementalAlterConfigsResponse @ 0,
    OffsetDelete: OffsetDeleteRequest => OffsetDeleteResponse @ 0,
    DescribeUserScramCredentials: DescribeUserScramCredentialsRequest => DescribeUserScramCredentialsResponse @ 0,
    AlterUserScramCredentials: AlterUserScramCredentialsRequest => AlterUserScramCredentialsResponse @ 0,
    DescribeCluster: DescribeClusterRequest => DescribeClusterResponse @ 0,
    DescribeProducers: DescribeProducersRequest => DescribeProducersResponse @ 0,
    DescribeTransactions: DescribeTransactionsRequest => DescribeTransactionsResponse @ 0,
    ListTransactions: ListTransactionsRequest => ListTransactionsResponse @ 0,
    ConsumerGroupHeartbeat: ConsumerGroupHeartbeatRequest => ConsumerGroupHeartbeatResponse @ 0,
    ConsumerGroupDescribe: ConsumerGroupDescribeRequest => ConsumerGroupDescribeResponse @ 0,
    ElectLeaders: ElectLeadersRequest => ElectLeadersResponse @ 0,
    AlterPartitionReassignments: AlterPartitionReassignmentsRequest => AlterPartitionReassignmentsResponse @ 0,
    ListPartitionReassignments: ListPartitionReassignmentsRequest => ListPartitionReassignmentsResponse @ 0,
    CreateAcls: CreateAclsRequest => CreateAclsResponse @ 1,
    DescribeAcls: DescribeAclsRequest => DescribeAclsResponse @ 1,
    DeleteAcls: DeleteAclsRequest => DeleteAclsResponse @ 1,
    DescribeClientQuotas: DescribeClientQuotasRequest => DescribeClientQuotasResponse @ 0,
    AlterClientQuotas: AlterClientQuotasRequest => AlterClientQuotasResponse @ 0,
    UpdateFeatures: UpdateFeaturesRequest => UpdateFeaturesResponse @ 0,
    DescribeQuorum: DescribeQuorumRequest => DescribeQuorumResponse,
    DescribeLogDirs: DescribeLogDirsRequest => DescribeLogDirsResponse @ 1,
    AlterReplicaLogDirs: AlterReplicaLogDirsRequest => AlterReplicaLogDirsResponse @ 1,
    CreateDelegationToken: CreateDelegationTokenRequest => CreateDelegationTokenResponse @ 1,
    RenewDelegationToken: RenewDelegationTokenRequest => RenewDelegationTokenResponse @ 1,
    ExpireDelegationToken: ExpireDelegationTokenRequest => ExpireDelegationTokenResponse @ 1,
    DescribeDelegationToken: DescribeDelegationTokenRequest => DescribeDelegationTokenResponse @ 1,
    ShareGroupHeartbeat: ShareGroupHeartbeatRequest => ShareGroupHeartbeatResponse @ 0,
    ShareGroupDescribe: ShareGroupDescribeRequest => ShareGroupDescribeResponse @ 0,
    ShareFetch: ShareFetchRequest => ShareFetchResponse @ 0,
    ShareAcknowledge: ShareAcknowledgeRequest => ShareAcknowledgeResponse @ 0,
    DescribeShareGroupOffsets: DescribeShareGroupOffsetsRequest => DescribeShareGroupOffsetsResponse @ 0,
    AlterShareGroupOffsets: AlterShareGroupOffsetsRequest => AlterShareGroupOffsetsResponse @ 0,
    DeleteShareGroupOffsets: DeleteShareGroupOffsetsRequest => DeleteShareGroupOffsetsResponse @ 0,
}

/// Default largest response frame accepted (`max.response.size`), 100 MiB.
pub const DEFAULT_MAX_FRAME_SIZE: usize = 100 << 20;

/// Splits one whole frame (without its 4-byte size) off the front of `buf`.
///
/// `Ok(None)`: more bytes are needed; `buf` is untouched. A negative size, or one above
/// `max`, is an error (the connection cannot continue after it).
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, WireError> {
    let Some(size) = buf.first_chunk::<4>().map(|b| i32::from_be_bytes(*b)) else {
        return Ok(None);
    };
    let size = usize::try_from(size).map_err(|_| WireError::InvalidLength {
        what: "frame size",
        len: size.into(),
    })?;
    if size > max {
        return Err(WireError::FrameTooLarge { size, max });
    }
    if buf.len() < 4 + size {
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(size).freeze()))
}

/// How many more bytes `buf` needs before [`split_frame`] can return a frame (0 when one is
/// ready or the size prefix is not complete yet). Lets a reader reserve exactly once.
pub fn frame_bytes_missing(buf: &[u8]) -> usize {
    match buf.first_chunk::<4>().map(|b| i32::from_be_bytes(*b)) {
        Some(size) if size > 0 => (4 + size as usize).saturating_sub(buf.len()),
        _ => 0,
    }
}

/// Appends a whole request frame (size, header, body) to `buf`.
///
/// The header version follows the request version (flexible versions use header v2 with
/// tagged fields). The size is reserved first and patched at the end.
pub fn encode_request<R: ApiRequest>(
    buf: &mut BytesMut,
    version: i16,
    correlation_id: i32,
    client_id: Option<&str>,
    request: &R,
) -> Result<(), WireError> {
    let malformed = |_| WireError::Message {
        api: api_name(R::API),
        version,
    };
    let header = RequestHeader::default()
        .with_request_api_key(R::API as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(client_id.map(|c| StrBytes::from_string(c.to_owned())));
    let start = buf.len();
    buf.put_i32(0);
    header.encode(buf, R::header_version(version)).map_err(malformed)?;
    request.encode(buf, version).map_err(malformed)?;
    let size = i32::try_from(buf.len() - start - 4).map_err(|_| WireError::TooLarge("request"))?;
    buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
    Ok(())
}

/// The correlation id of a response frame (its first 4 bytes in every header version).
pub fn response_correlation_id(frame: &[u8]) -> Result<i32, WireError> {
    frame
        .first_chunk::<4>()
        .map(|b| i32::from_be_bytes(*b))
        .ok_or(WireError::Truncated("response header"))
}

/// Decodes a response frame to request `R` sent at `version` with `correlation_id`.
///
/// Checks the correlation id, skips the header (v0, or v1 with tagged fields; ApiVersions
/// always answers with v0) and decodes the body from the frozen frame, so record sets in the
/// response are slices of `frame`.
pub fn decode_response<R: ApiRequest>(
    mut frame: Bytes,
    version: i16,
    correlation_id: i32,
) -> Result<R::Response, WireError> {
    let actual = response_correlation_id(&frame)?;
    if actual != correlation_id {
        return Err(WireError::CorrelationMismatch {
            expected: correlation_id,
            actual,
        });
    }
    let malformed = |_| WireError::Message {
        api: api_name(R::API),
        version,
    };
    ResponseHeader::decode(&mut frame, R::Response::header_version(version)).map_err(malformed)?;
    R::Response::decode(&mut frame, version).map_err(malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::{ApiVersionsRequest, MetadataRequest};

    #[test]
    fn incremental_split() {
        let mut buf = BytesMut::new();
        assert_eq!(split_frame(&mut buf, 100), Ok(None));
        buf.extend_from_slice(&[0, 0, 0, 3, b'a']);
        assert_eq!(frame_bytes_missing(&buf), 2);
        assert_eq!(split_frame(&mut buf, 100), Ok(None));
        assert_eq!(buf.len(), 5);
        buf.extend_from_slice(b"bcXY");
        assert_eq!(split_frame(&mut buf, 100), Ok(Some(Bytes::from_static(b"abc"))));
        assert_eq!(&buf[..], b"XY");
    }

    #[test]
    fn oversized_and_negative_frames_are_refused_before_buffering() {
        let mut buf = BytesMut::from(&[0x7f, 0xff, 0xff, 0xff][..]);
        assert_eq!(
            split_frame(&mut buf, 1024),
            Err(WireError::FrameTooLarge {
                size: i32::MAX as usize,
                max: 1024
            })
        );
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xfe][..]);
        assert_eq!(
            split_frame(&mut buf, 1024),
            Err(WireError::InvalidLength {
                what: "frame size",
                len: -2
            })
        );
    }

    #[test]
    fn request_frame_layout() {
        let mut buf = BytesMut::new();
        let all_topics = MetadataRequest::default()
            .with_topics(None)
            .with_allow_auto_topic_creation(false);
        encode_request(&mut buf, 4, 42, Some("strom"), &all_topics).unwrap();
        // size 20, api key 3, version 4, correlation id 42, client id "strom", topics null,
        // auto-create false
        let expected: &[u8] = &[
            0, 0, 0, 20, 0, 3, 0, 4, 0, 0, 0, 42, 0, 5, b's', b't', b'r', b'o', b'm', 0xff, 0xff, 0xff, 0xff, 0,
        ];
        assert_eq!(&buf[..], expected);
        // Flexible version: header v2 adds an empty tagged-field section.
        let mut buf = BytesMut::new();
        encode_request(&mut buf, 3, 1, None, &ApiVersionsRequest::default()).unwrap();
        assert_eq!(&buf[4..16], &[0, 18, 0, 3, 0, 0, 0, 1, 0xff, 0xff, 0, 1]);
    }

    #[test]
    fn api_versions_response_uses_header_v0() {
        let mut body = BytesMut::new();
        body.put_i32(9); // correlation id; header v0 has nothing else
                         // v3 body: error code 35, empty compact api_keys, throttle 0, no tagged fields.
        body.extend_from_slice(&[0, 35, 1, 0, 0, 0, 0, 0]);
        let got = decode_response::<ApiVersionsRequest>(body.clone().freeze(), 3, 9).unwrap();
        assert_eq!(got.error_code, 35);
        assert_eq!(
            decode_response::<ApiVersionsRequest>(body.freeze(), 3, 10).unwrap_err(),
            WireError::CorrelationMismatch {
                expected: 10,
                actual: 9
            }
        );
    }

    #[test]
    fn truncated_response_is_an_error() {
        let frame = Bytes::from_static(&[0, 0, 0, 1, 0, 0]);
        assert_eq!(
            decode_response::<ApiVersionsRequest>(frame, 3, 1).unwrap_err(),
            WireError::Message {
                api: "ApiVersions",
                version: 3
            }
        );
        assert_eq!(
            decode_response::<ApiVersionsRequest>(Bytes::new(), 3, 1).unwrap_err(),
            WireError::Truncated("response header")
        );
    }

    #[test]
    fn the_client_throttles_itself_from_kip219s_versions() {
        let produce = m::ProduceResponse::default().with_throttle_time_ms(250);
        assert_eq!(
            m::ProduceRequest::client_throttle_ms(&produce, 5),
            0,
            "the broker held it"
        );
        assert_eq!(m::ProduceRequest::client_throttle_ms(&produce, 6), 250);
        let fetch = m::FetchResponse::default().with_throttle_time_ms(250);
        assert_eq!(m::FetchRequest::client_throttle_ms(&fetch, 7), 0);
        assert_eq!(m::FetchRequest::client_throttle_ms(&fetch, 8), 250);
        // A newer API throttles from its first version; one without the field never.
        let hb = m::ConsumerGroupHeartbeatResponse::default().with_throttle_time_ms(7);
        assert_eq!(m::ConsumerGroupHeartbeatRequest::client_throttle_ms(&hb, 0), 7);
        let sasl = m::SaslHandshakeResponse::default();
        assert_eq!(m::SaslHandshakeRequest::client_throttle_ms(&sasl, 1), 0);
        let negative = m::ProduceResponse::default().with_throttle_time_ms(-5);
        assert_eq!(m::ProduceRequest::client_throttle_ms(&negative, 9), 0);
    }
}
