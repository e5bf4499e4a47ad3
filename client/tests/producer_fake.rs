//! The producer's KIP-360 recovery, driven by a scripted broker: the first batch is refused
//! with OUT_OF_ORDER_SEQUENCE_NUMBER; the producer must bump its epoch (locally, epoch + 1,
//! as Java does), renumber that partition from sequence 0 and deliver, losing nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, HeaderVersion, StrBytes};
use strom_client::lowlevel::protocol::record_batch::{BatchView, DecodeOptions};
use strom_client::{Producer, ProducerConfig, ProducerRecord};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Debug, Default)]
struct Seen {
    init_requests: Vec<(i64, i16)>,
    /// (producer id, epoch, base sequence, records) of every Produce batch, in arrival order.
    batches: Vec<(i64, i16, i32, i32)>,
    /// When each batch arrived.
    arrivals: Vec<std::time::Instant>,
    /// The error codes the first batches get, in order; later ones succeed.
    script: Vec<i16>,
    /// The error code every partition of an AddPartitionsToTxn gets.
    add_partitions_error: i16,
    /// The transactional ids of InitProducerId requests, and the EndTxn requests (commit?).
    transactional_ids: Vec<String>,
    end_txns: Vec<bool>,
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

async fn serve(mut s: TcpStream, port: u16, seen: Arc<Mutex<Seen>>) {
    loop {
        let Ok(size) = s.read_i32().await else { return };
        let mut buf = vec![0u8; size as usize];
        if s.read_exact(&mut buf).await.is_err() {
            return;
        }
        let mut b = Bytes::from(buf);
        let header = decode_request_header_from_buffer(&mut b).unwrap();
        let (v, id) = (header.request_api_version, header.correlation_id);
        match ApiKey::try_from(header.request_api_key).unwrap() {
            ApiKey::ApiVersions => {
                let keys = [
                    (18, 0, 3),
                    (3, 0, 12),
                    (0, 3, 12),
                    (22, 0, 5),
                    (10, 0, 3),
                    (24, 0, 3),
                    (26, 0, 3),
                ]
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
            ApiKey::Metadata => {
                let resp = MetadataResponse::default()
                    .with_brokers(vec![MetadataResponseBroker::default()
                        .with_node_id(BrokerId(1))
                        .with_host(StrBytes::from_static_str("127.0.0.1"))
                        .with_port(i32::from(port))])
                    .with_controller_id(BrokerId(1))
                    .with_topics(vec![MetadataResponseTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                        .with_partitions(vec![MetadataResponsePartition::default()
                            .with_partition_index(0)
                            .with_leader_id(BrokerId(1))
                            .with_replica_nodes(vec![BrokerId(1)])
                            .with_isr_nodes(vec![BrokerId(1)])])]);
                respond(&mut s, id, v, &resp).await;
            }
            ApiKey::InitProducerId => {
                let req = InitProducerIdRequest::decode(&mut b, v).unwrap();
                let epoch = {
                    let mut seen = seen.lock().unwrap();
                    seen.init_requests.push((req.producer_id.0, req.producer_epoch));
                    if let Some(t) = &req.transactional_id {
                        seen.transactional_ids.push(t.0.to_string());
                    }
                    if req.producer_id.0 == 1000 {
                        req.producer_epoch + 1
                    } else {
                        0
                    }
                };
                let resp = InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(1000))
                    .with_producer_epoch(epoch);
                respond(&mut s, id, v, &resp).await;
            }
            ApiKey::Produce => {
                let req = ProduceRequest::decode(&mut b, v).unwrap();
                let mut parts = Vec::new();
                for t in &req.topic_data {
                    for p in &t.partition_data {
                        let mut records = p.records.clone().unwrap();
                        let batch = BatchView::parse(&mut records, &DecodeOptions::default())
                            .unwrap()
                            .unwrap();
                        let entry = (
                            batch.producer_id(),
                            batch.producer_epoch(),
                            batch.base_sequence(),
                            batch.records_count(),
                        );
                        let scripted = {
                            let mut seen = seen.lock().unwrap();
                            seen.batches.push(entry);
                            seen.arrivals.push(std::time::Instant::now());
                            let n = seen.batches.len() - 1;
                            seen.script.get(n).copied()
                        };
                        let (code, offset) = match scripted {
                            Some(code) => (code, -1),
                            None => (0, 7),
                        };
                        parts.push(
                            PartitionProduceResponse::default()
                                .with_index(p.index)
                                .with_error_code(code)
                                .with_base_offset(offset),
                        );
                    }
                }
                let resp = ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                    .with_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partition_responses(parts)]);
                respond(&mut s, id, v, &resp).await;
            }
            ApiKey::FindCoordinator => {
                let resp = FindCoordinatorResponse::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(i32::from(port));
                respond(&mut s, id, v, &resp).await;
            }
            ApiKey::AddPartitionsToTxn => {
                use kafka_protocol::messages::add_partitions_to_txn_response::{
                    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
                };
                let req = AddPartitionsToTxnRequest::decode(&mut b, v).unwrap();
                let code = seen.lock().unwrap().add_partitions_error;
                let results = req
                    .v3_and_below_topics
                    .iter()
                    .map(|t| {
                        AddPartitionsToTxnTopicResult::default()
                            .with_name(t.name.clone())
                            .with_results_by_partition(
                                t.partitions
                                    .iter()
                                    .map(|&p| {
                                        AddPartitionsToTxnPartitionResult::default()
                                            .with_partition_index(p)
                                            .with_partition_error_code(code)
                                    })
                                    .collect(),
                            )
                    })
                    .collect();
                let resp = AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
                respond(&mut s, id, v, &resp).await;
            }
            ApiKey::EndTxn => {
                let req = EndTxnRequest::decode(&mut b, v).unwrap();
                seen.lock().unwrap().end_txns.push(req.committed);
                respond(&mut s, id, v, &EndTxnResponse::default()).await;
            }
            other => panic!("unexpected request {other:?}"),
        }
        let _ = b.remaining();
    }
}

/// A scripted broker answering the first batches with `script`'s error codes.
async fn scripted_broker(script: Vec<i16>) -> (u16, Arc<Mutex<Seen>>) {
    scripted_broker_with(Seen {
        script,
        ..Seen::default()
    })
    .await
}

async fn scripted_broker_with(seen: Seen) -> (u16, Arc<Mutex<Seen>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(seen));
    let s2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            tokio::spawn(serve(sock, port, s2.clone()));
        }
    });
    (port, seen)
}

#[tokio::test]
async fn out_of_order_on_the_first_batch_bumps_the_epoch_and_renumbers() {
    // The first batch ever is refused as if the broker had lost our sequence.
    let (port, seen) = scripted_broker(vec![45]).await;
    let mut cfg = ProducerConfig::new(format!("127.0.0.1:{port}"));
    cfg.client.retry_backoff = Duration::from_millis(10);
    let producer = Producer::new(cfg).await.unwrap();
    let f = producer.send(ProducerRecord::new("t", "hello").key("k")).await.unwrap();
    let md = tokio::time::timeout(Duration::from_secs(10), f.wait())
        .await
        .expect("hung")
        .unwrap();
    assert_eq!((md.partition, md.offset), (0, 7));

    let seen = seen.lock().unwrap();
    // A fresh id; the KIP-360 bump of an idempotent producer is local (epoch + 1), as
    // Java's bumpIdempotentProducerEpoch: no second InitProducerId.
    assert_eq!(seen.init_requests, vec![(-1, -1)]);
    // Refused at epoch 0 sequence 0, resent at epoch 1 from sequence 0: one record, once.
    assert_eq!(seen.batches, vec![(1000, 0, 0, 1), (1000, 1, 0, 1)]);
}

/// A batch refused with a retriable error is retried after retry.backoff.ms, doubling per
/// attempt (KIP-580), with its original producer id, epoch and sequence: never resent at
/// once in a loop (it once was, 164 times a second against a broker that had lost
/// leadership), never renumbered.
#[tokio::test]
async fn retries_back_off_exponentially_and_keep_their_sequence() {
    // NOT_LEADER_OR_FOLLOWER three times, then success.
    let (port, seen) = scripted_broker(vec![6, 6, 6]).await;
    let mut cfg = ProducerConfig::new(format!("127.0.0.1:{port}"));
    cfg.set("retry.backoff.ms", "50").unwrap();
    cfg.set("retry.backoff.max.ms", "1000").unwrap();
    let producer = Producer::new(cfg).await.unwrap();
    let f = producer.send(ProducerRecord::new("t", "hello").key("k")).await.unwrap();
    let md = tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("hung")
        .unwrap();
    assert_eq!((md.partition, md.offset), (0, 7));

    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.batches,
        vec![(1000, 0, 0, 1); 4],
        "the same batch, resent as it was"
    );
    let gaps: Vec<Duration> = seen.arrivals.windows(2).map(|w| w[1] - w[0]).collect();
    // 50, 100, 200 ms, each -20 % at worst.
    for (gap, want) in gaps.iter().zip([40, 80, 160]) {
        assert!(*gap >= Duration::from_millis(want), "retries came {gaps:?} apart");
    }
}

/// A batch the broker refuses for lack of an ACL fails as Authorization, one refused with
/// a non-retriable code of its own as Broker with that code; each delivery hands its record
/// back, names where it failed, and the producer goes on (Java treats neither as fatal for
/// an idempotent producer).
#[tokio::test]
async fn refused_batches_name_their_kind_and_the_producer_goes_on() {
    use strom_client::{ErrorCode, ErrorKind};
    // TOPIC_AUTHORIZATION_FAILED, then INVALID_RECORD, then success.
    let (port, seen) = scripted_broker(vec![29, 87]).await;
    let mut cfg = ProducerConfig::new(format!("127.0.0.1:{port}"));
    cfg.client.retry_backoff = Duration::from_millis(10);
    let producer = Producer::new(cfg).await.unwrap();
    let within = |f| async move { tokio::time::timeout(Duration::from_secs(10), f).await.expect("hung") };

    let f = producer.send(ProducerRecord::new("t", "one").key("k")).await.unwrap();
    let e = within(f).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authorization, "{e}");
    assert_eq!(e.kafka_code(), Some(ErrorCode::TopicAuthorizationFailed), "{e}");
    assert!(!e.is_retriable() && !e.is_fatal(), "{e}");
    assert_eq!((e.topic(), e.partition()), (Some("t"), Some(0)));
    assert_eq!(e.record().and_then(|r| r.value.as_deref()), Some(&b"one"[..]));

    let f = producer.send(ProducerRecord::new("t", "two").key("k")).await.unwrap();
    let e = within(f).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Broker, "{e}");
    assert_eq!(e.kafka_code(), Some(ErrorCode::InvalidRecord), "{e}");
    assert!(!e.is_fatal(), "{e}");
    assert_eq!(e.record().and_then(|r| r.value.as_deref()), Some(&b"two"[..]));

    let f = producer.send(ProducerRecord::new("t", "three").key("k")).await.unwrap();
    let md = within(f).await.unwrap();
    assert_eq!((md.partition, md.offset), (0, 7));
    assert_eq!(seen.lock().unwrap().batches.len(), 3, "no retries of refused batches");
}

/// A transactional producer whose transactional id the broker no longer authorizes
/// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED on AddPartitionsToTxn, as after an ACL is
/// revoked) is beyond recovery without being fenced: Java raises a fatal
/// `TransactionalIdAuthorizationException`. The delivery fails and hands its record back,
/// every later send fails as `ErrorKind::Fatal` (not `Fenced`: no other producer took
/// over) with the authorization error as its source, and so does a new transaction.
#[tokio::test]
async fn a_revoked_transactional_id_makes_the_producer_fatal_not_fenced() {
    use std::error::Error as _;
    use strom_client::{ErrorCode, ErrorKind, TransactionalProducer};
    let (port, seen) = scripted_broker_with(Seen {
        add_partitions_error: 53,
        ..Seen::default()
    })
    .await;
    let mut cfg = ProducerConfig::new(format!("127.0.0.1:{port}"));
    cfg.client.retry_backoff = Duration::from_millis(10);
    cfg.transactional_id = Some("revoked".into());
    let producer = TransactionalProducer::new(cfg).await.unwrap();
    bounded(producer.init_transactions()).await.unwrap();
    bounded(producer.begin_transaction()).await.unwrap();

    let f = producer.send(ProducerRecord::new("t", "one").key("k")).await.unwrap();
    let e = bounded(f).await.unwrap_err();
    assert_eq!(
        e.kafka_code(),
        Some(ErrorCode::TransactionalIdAuthorizationFailed),
        "{e}"
    );
    assert_eq!(e.record().and_then(|r| r.value.as_deref()), Some(&b"one"[..]));

    let e = producer
        .send(ProducerRecord::new("t", "two").key("k"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal, "{e}");
    assert!(e.is_fatal() && !e.is_retriable() && !e.requires_abort(), "{e}");
    let cause = e.source().expect("the fatal state names its cause").to_string();
    assert!(cause.contains("TRANSACTIONAL_ID_AUTHORIZATION_FAILED"), "{cause}");
    assert_eq!(e.record().and_then(|r| r.value.as_deref()), Some(&b"two"[..]));

    let e = bounded(producer.abort_transaction()).await.unwrap_err();
    assert!(e.is_fatal(), "{e}");
    let e = bounded(producer.begin_transaction()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Fatal, "{e}");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.transactional_ids, ["revoked"]);
    assert!(seen.batches.is_empty(), "nothing was produced: {:?}", seen.batches);
    assert!(
        seen.end_txns.is_empty(),
        "no EndTxn from a fatal producer: {:?}",
        seen.end_txns
    );
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f).await.expect("hung")
}

/// Records sent at a user's pace (one every 20 ms, linger.ms=5) while their partition is
/// blocked (its first batch waits out a retry backoff of about a second) join one batch
/// that fills up, as in Java, where a batch is closed for appends only when drained. They
/// used to get a new, nearly empty batch every linger.ms of the outage, each with its own
/// batch.size buffer: tens of MB during a broker outage in the chaos soak, and a trickle of
/// one-record requests after it.
#[tokio::test]
async fn a_blocked_partition_fills_one_batch_instead_of_one_per_linger() {
    // REQUEST_TIMED_OUT (retriable) for the first batch, then success.
    let (port, seen) = scripted_broker(vec![7]).await;
    let mut cfg = ProducerConfig::new(format!("127.0.0.1:{port}"));
    cfg.client.retry_backoff = Duration::from_millis(1000);
    cfg.client.retry_backoff_max = Duration::from_millis(1000);
    cfg.set("linger.ms", "5").unwrap();
    let producer = Producer::new(cfg).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..40 {
        pending.push(
            producer
                .send(ProducerRecord::new("t", format!("v{i}")).key("k"))
                .await
                .unwrap(),
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for d in pending {
        bounded(d).await.unwrap();
    }
    let seen = seen.lock().unwrap();
    let counts: Vec<i32> = seen.batches.iter().map(|b| b.3).collect();
    // The first batch (1 record) twice, the one sealed behind it, then everything else.
    assert!(counts.len() <= 5, "batches sent: {counts:?}");
    let delivered: i32 = counts.iter().skip(1).sum();
    assert_eq!(
        delivered, 40,
        "every record once after the failed first attempt: {counts:?}"
    );
    let seqs: Vec<i32> = seen.batches.iter().skip(1).map(|b| b.2).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in sequence order: {seqs:?}");
}
