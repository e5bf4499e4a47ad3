//! ShareFetch / ShareAcknowledge v2 (KIP-1222's renew acknowledgement, KIP-1206's acquire
//! mode): the vendored codec encodes requests byte for byte as Kafka 4.4's own generated
//! classes do, and decodes the v2 response. The expected bytes were written by
//! `ShareFetchRequestData`, `ShareAcknowledgeRequestData` and `ShareAcknowledgeResponseData`
//! of kafka-clients 4.4.0 (`Message.write` at version 2) for the same field values.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::BytesMut;
use strom_protocol::message_traits::{Decodable, Encodable, StrBytes};
use strom_protocol::messages::share_acknowledge_request::{
    AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckBatch,
};
use strom_protocol::messages::share_fetch_request::{AcknowledgementBatch, FetchPartition, FetchTopic};
use strom_protocol::messages::{GroupId, ShareAcknowledgeRequest, ShareAcknowledgeResponse, ShareFetchRequest};
use uuid::Uuid;

const TOPIC: Uuid = Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn encoded<M: Encodable>(m: &M, version: i16) -> String {
    let mut buf = BytesMut::new();
    m.encode(&mut buf, version).unwrap();
    assert_eq!(buf.len(), m.compute_size(version).unwrap(), "compute_size");
    hex(&buf)
}

#[test]
fn share_fetch_v2_with_a_renewal_and_record_limit() {
    let req = ShareFetchRequest::default()
        .with_group_id(Some(GroupId(StrBytes::from_static_str("g"))))
        .with_member_id(Some(StrBytes::from_static_str("m")))
        .with_share_session_epoch(3)
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(1024)
        .with_max_records(3)
        .with_batch_size(3)
        .with_share_acquire_mode(1)
        .with_is_renew_ack(true)
        .with_topics(vec![FetchTopic::default().with_topic_id(TOPIC).with_partitions(vec![
            FetchPartition::default()
                .with_partition_index(2)
                .with_acknowledgement_batches(vec![AcknowledgementBatch::default()
                    .with_first_offset(10)
                    .with_last_offset(11)
                    .with_acknowledge_types(vec![4])]),
        ])]);
    assert_eq!(
        encoded(&req, 2),
        "0267026d00000003000001f4000000010000040000000003000000030101020102030405060708090a0b0c0d0e0f10\
         020000000202000000000000000a000000000000000b02040000000100"
    );
    // v1 has neither field: set, they are refused rather than dropped.
    let mut buf = BytesMut::new();
    assert!(req.encode(&mut buf, 1).is_err());
    let plain = req.with_share_acquire_mode(0).with_is_renew_ack(false);
    plain.encode(&mut buf, 1).unwrap();
}

#[test]
fn share_acknowledge_v2_with_a_renewal() {
    let req = ShareAcknowledgeRequest::default()
        .with_group_id(Some(GroupId(StrBytes::from_static_str("g"))))
        .with_member_id(Some(StrBytes::from_static_str("m")))
        .with_share_session_epoch(4)
        .with_is_renew_ack(true)
        .with_topics(vec![AcknowledgeTopic::default().with_topic_id(TOPIC).with_partitions(
            vec![AcknowledgePartition::default()
                .with_partition_index(2)
                .with_acknowledgement_batches(vec![AckBatch::default()
                    .with_first_offset(10)
                    .with_last_offset(11)
                    .with_acknowledge_types(vec![4])])],
        )]);
    assert_eq!(
        encoded(&req, 2),
        "0267026d0000000401020102030405060708090a0b0c0d0e0f10020000000202000000000000000a000000000000000b020400000000"
    );
    let mut buf = BytesMut::new();
    assert!(req.encode(&mut buf, 1).is_err(), "v1 cannot carry a renewal");
}

#[test]
fn share_acknowledge_response_v2_carries_the_lock_timeout() {
    let bytes =
        unhex("0000000000000000003a98020102030405060708090a0b0c0d0e0f10020000000200000000000000000000000000000100");
    let mut buf = bytes::Bytes::from(bytes);
    let r = ShareAcknowledgeResponse::decode(&mut buf, 2).unwrap();
    assert!(buf.is_empty());
    assert_eq!(r.acquisition_lock_timeout_ms, 15_000);
    assert_eq!(r.responses.len(), 1);
    assert_eq!(r.responses[0].topic_id, TOPIC);
    assert_eq!(r.responses[0].partitions[0].partition_index, 2);
    assert_eq!(r.responses[0].partitions[0].error_code, 0);
}
