//! Fidelity of the fake cluster (strom-fake): each scenario runs the same client code, and
//! the same assertions, against the real broker and against the fake, as franz-go runs its
//! tests against both kfake and Kafka. A difference is a bug in the fake (or a behaviour
//! the fake documents as missing).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fidelity_util;

use std::time::Duration;

use bytes::Bytes;
use strom_client::lowlevel::protocol::message_traits::StrBytes;
use strom_client::lowlevel::protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_client::lowlevel::protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use strom_client::lowlevel::protocol::messages::{
    FetchRequest, FetchResponse, InitProducerIdRequest, ProduceRequest, TopicName,
};
use strom_client::lowlevel::{Connection, ConnectionConfig};
use strom_client::{Admin, ClientConfig, ErrorCode, NewTopic, OffsetSpec, Producer, ProducerConfig, ProducerRecord};
use strom_integration_tests::{send_produce, unique_topic};
use strom_protocol::record_batch::{BatchBuilder, BatchHeader, NewRecord};

use fidelity_util::{on_both, produce_to, topic};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn fetch(topic: &str, session: i32, epoch: i32, parts: &[(i32, i64)]) -> FetchRequest {
    FetchRequest::default()
        .with_max_wait_ms(300)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_id(session)
        .with_session_epoch(epoch)
        .with_topics(if parts.is_empty() {
            Vec::new()
        } else {
            vec![FetchTopic::default().with_topic(name(topic)).with_partitions(
                parts
                    .iter()
                    .map(|(p, o)| {
                        FetchPartition::default()
                            .with_partition(*p)
                            .with_fetch_offset(*o)
                            .with_partition_max_bytes(1 << 20)
                    })
                    .collect(),
            )]
        })
}

/// (partition, high watermark, record bytes) of each partition in a fetch answer.
fn parts(r: &FetchResponse) -> Vec<(i32, i64, usize)> {
    r.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            (
                p.partition_index,
                p.high_watermark,
                p.records.as_ref().map_or(0, Bytes::len),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_sessions_answer_only_what_changed() {
    on_both(|bootstrap, target| async move {
        let t = topic(&bootstrap, "fidelity-sessions", 2).await;
        produce_to(&bootstrap, &t, 0, &["a", "b", "c"]).await;
        let conn = Connection::connect(&bootstrap, ConnectionConfig::default())
            .await
            .unwrap();
        let v = 12;
        // A full fetch opens a session.
        let full = conn.send_version(&fetch(&t, 0, 0, &[(0, 0), (1, 0)]), v).await.unwrap();
        assert_eq!(full.error_code, 0, "{target}");
        let session = full.session_id;
        assert!(session != 0, "{target}: no session opened");
        let ps = parts(&full);
        assert_eq!(ps.len(), 2, "{target}: {ps:?}");
        assert!(
            ps.iter().any(|(p, hw, n)| *p == 0 && *hw == 3 && *n > 0),
            "{target}: {ps:?}"
        );
        // Incremental: p0 moves past its records; nothing changed, nothing is sent.
        let inc = conn.send_version(&fetch(&t, session, 1, &[(0, 3)]), v).await.unwrap();
        assert_eq!((inc.error_code, inc.session_id), (0, session), "{target}");
        assert!(parts(&inc).is_empty(), "{target}: {:?}", parts(&inc));
        // A record on p1: only p1 is in the answer, with it.
        produce_to(&bootstrap, &t, 1, &["d"]).await;
        let inc = conn.send_version(&fetch(&t, session, 2, &[]), v).await.unwrap();
        let ps = parts(&inc);
        assert_eq!(ps.len(), 1, "{target}: {ps:?}");
        assert_eq!((ps[0].0, ps[0].1), (1, 1), "{target}: {ps:?}");
        assert!(ps[0].2 > 0, "{target}: {ps:?}");
        // A wrong epoch and an unknown session are refused.
        let bad = conn.send_version(&fetch(&t, session, 7, &[]), v).await.unwrap();
        assert_eq!(
            ErrorCode::from(bad.error_code),
            ErrorCode::InvalidFetchSessionEpoch,
            "{target}"
        );
        let bad = conn
            .send_version(&fetch(&t, session.wrapping_add(7777), 1, &[]), v)
            .await
            .unwrap();
        assert_eq!(
            ErrorCode::from(bad.error_code),
            ErrorCode::FetchSessionIdNotFound,
            "{target}"
        );
        // Epoch -1 closes it: a sessionless full fetch.
        let closed = conn
            .send_version(&fetch(&t, session, -1, &[(0, 0), (1, 0)]), v)
            .await
            .unwrap();
        assert_eq!((closed.error_code, closed.session_id), (0, 0), "{target}");
        assert_eq!(parts(&closed).len(), 2, "{target}");
        let gone = conn.send_version(&fetch(&t, session, 3, &[]), v).await.unwrap();
        assert_eq!(
            ErrorCode::from(gone.error_code),
            ErrorCode::FetchSessionIdNotFound,
            "{target}"
        );
    })
    .await;
}

fn idempotent_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
    let mut b = BatchBuilder::new(
        BatchHeader {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            ..Default::default()
        },
        16 * 1024,
    );
    for i in 0..n {
        let v = format!("seq{}", seq + i as i32);
        b.append(&NewRecord {
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(v.as_bytes()),
            headers: &[],
        })
        .unwrap();
    }
    b.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn idempotent_sequences_duplicates_gaps_and_epochs() {
    on_both(|bootstrap, target| async move {
        let t = topic(&bootstrap, "fidelity-idempotent", 1).await;
        let conn = Connection::connect(&bootstrap, ConnectionConfig::default())
            .await
            .unwrap();
        let init = conn
            .send(
                &InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_transaction_timeout_ms(i32::MAX)
                    .with_producer_id((-1).into())
                    .with_producer_epoch(-1),
            )
            .await
            .unwrap();
        assert_eq!(init.error_code, 0, "{target}");
        let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
        let produce = |batch: Bytes| {
            ProduceRequest::default()
                .with_acks(-1)
                .with_timeout_ms(10_000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_name(name(&t))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(batch))])])
        };
        let answer = |r: strom_client::lowlevel::protocol::messages::ProduceResponse| {
            let p = &r.responses[0].partition_responses[0];
            (ErrorCode::from(p.error_code), p.base_offset)
        };
        let r = send_produce(&conn, &produce(idempotent_batch(pid, epoch, 0, 3))).await;
        assert_eq!(answer(r), (ErrorCode::None, 0), "{target}");
        // The same batch again (a retry): its first offsets, nothing written twice.
        let r = send_produce(&conn, &produce(idempotent_batch(pid, epoch, 0, 3))).await;
        assert_eq!(answer(r), (ErrorCode::None, 0), "{target}: duplicate");
        // A gap in the sequence.
        let r = send_produce(&conn, &produce(idempotent_batch(pid, epoch, 5, 1))).await;
        assert_eq!(answer(r).0, ErrorCode::OutOfOrderSequenceNumber, "{target}: gap");
        let r = send_produce(&conn, &produce(idempotent_batch(pid, epoch, 3, 2))).await;
        assert_eq!(answer(r), (ErrorCode::None, 3), "{target}");
        // A bumped epoch starts again at sequence 0; the old epoch is then refused.
        let r = send_produce(&conn, &produce(idempotent_batch(pid, epoch + 1, 0, 1))).await;
        assert_eq!(answer(r), (ErrorCode::None, 5), "{target}: new epoch");
        let r = send_produce(&conn, &produce(idempotent_batch(pid, epoch, 5, 1))).await;
        assert_eq!(answer(r).0, ErrorCode::InvalidProducerEpoch, "{target}: old epoch");
        let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
        let end = admin.list_offsets(&t, &[0], OffsetSpec::Latest).await.unwrap();
        assert_eq!(end[0].offset, 6, "{target}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn list_offsets_by_time_and_max_timestamp() {
    on_both(|bootstrap, target| async move {
        let t = topic(&bootstrap, "fidelity-times", 1).await;
        let p = Producer::new(ProducerConfig::new(&bootstrap)).await.unwrap();
        for (i, ts) in [1000i64, 5000, 3000, 9000, 7000].iter().enumerate() {
            p.send(
                ProducerRecord::new(&t, Bytes::from(format!("r{i}")))
                    .partition(0)
                    .timestamp(*ts),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        }
        p.close().await.unwrap();
        let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
        let at = |spec| {
            let admin = &admin;
            let t = &t;
            async move {
                let r = admin.list_offsets(t, &[0], spec).await.unwrap();
                (r[0].offset, r[0].timestamp)
            }
        };
        assert_eq!(at(OffsetSpec::Earliest).await.0, 0, "{target}");
        assert_eq!(at(OffsetSpec::Latest).await.0, 5, "{target}");
        assert_eq!(at(OffsetSpec::Timestamp(4000)).await, (1, 5000), "{target}");
        assert_eq!(at(OffsetSpec::Timestamp(9000)).await, (3, 9000), "{target}");
        assert_eq!(
            at(OffsetSpec::Timestamp(9001)).await.0,
            -1,
            "{target}: after every record"
        );
        assert_eq!(at(OffsetSpec::MaxTimestamp).await, (3, 9000), "{target}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn topic_admin_errors_are_the_same() {
    on_both(|bootstrap, target| async move {
        let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
        let t = topic(&bootstrap, "fidelity-admin", 2).await;
        let code = |e: strom_client::Error| e.kafka_code();
        assert_eq!(
            code(admin.create_topics(&[NewTopic::new(&t, 2)]).await.unwrap_err()),
            Some(ErrorCode::TopicAlreadyExists),
            "{target}"
        );
        assert_eq!(
            code(admin.create_topics(&[NewTopic::new("bad/name", 1)]).await.unwrap_err()),
            Some(ErrorCode::InvalidTopicException),
            "{target}"
        );
        assert_eq!(
            code(
                admin
                    .create_topics(&[NewTopic::new(unique_topic("zero"), 0)])
                    .await
                    .unwrap_err()
            ),
            Some(ErrorCode::InvalidPartitions),
            "{target}"
        );
        let e = admin.create_partitions(&t, 1).await.unwrap_err();
        assert_eq!(code(e), Some(ErrorCode::InvalidPartitions), "{target}");
        admin.create_partitions(&t, 4).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ends = admin.list_offsets(&t, &[0, 1, 2, 3], OffsetSpec::Latest).await.unwrap();
        assert_eq!(ends.len(), 4, "{target}");
        admin.delete_topics(&[&t]).await.unwrap();
        let e = admin.delete_topics(&[&t]).await.unwrap_err();
        assert_eq!(code(e), Some(ErrorCode::UnknownTopicOrPartition), "{target}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn transactions_commit_abort_and_the_last_stable_offset() {
    use strom_client::{Consumer, ConsumerConfig, TopicPartition, TransactionalProducer};
    on_both(|bootstrap, target| async move {
        let t = topic(&bootstrap, "fidelity-txn", 1).await;
        let mut pc = ProducerConfig::new(&bootstrap);
        pc.set("transactional.id", &unique_topic("fidelity-txn-id")).unwrap();
        let p = TransactionalProducer::new(pc).await.unwrap();
        p.init_transactions().await.unwrap();
        let send = |name: &'static str| {
            let (p, t) = (&p, &t);
            async move {
                for i in 0..10 {
                    let _d = p
                        .send(ProducerRecord::new(t, Bytes::from(format!("{name}-{i}"))).partition(0))
                        .await
                        .unwrap();
                }
                p.flush().await.unwrap();
            }
        };
        p.begin_transaction().await.unwrap();
        send("committed1").await;
        p.commit_transaction().await.unwrap();
        p.begin_transaction().await.unwrap();
        send("aborted").await;
        p.abort_transaction().await.unwrap();
        p.begin_transaction().await.unwrap();
        send("committed2").await;
        let admin = Admin::connect(ClientConfig::new(&bootstrap)).await.unwrap();
        // Markers land a moment after EndTxn returns: wait for the second one.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let lso = loop {
            let lso = admin
                .list_offsets_isolated(&t, &[0], OffsetSpec::Latest, true)
                .await
                .unwrap()[0]
                .offset;
            if lso == 22 || std::time::Instant::now() > deadline {
                break lso;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(lso, 22, "{target}: 10 records, a marker, 10 aborted, a marker");
        p.commit_transaction().await.unwrap();
        let mut cc = ConsumerConfig::new(&bootstrap);
        cc.set("isolation.level", "read_committed").unwrap();
        cc.set("auto.offset.reset", "earliest").unwrap();
        let mut c = Consumer::new(cc).await.unwrap();
        c.assign([TopicPartition::new(&t, 0)]).unwrap();
        let mut seen = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while seen.len() < 20 && std::time::Instant::now() < deadline {
            for r in c.poll(Duration::from_millis(100)).await.unwrap() {
                seen.push((r.offset, String::from_utf8(r.value.clone().unwrap().to_vec()).unwrap()));
            }
        }
        let offsets: Vec<i64> = seen.iter().map(|(o, _)| *o).collect();
        let want: Vec<i64> = (0..10).chain(22..32).collect();
        assert_eq!(offsets, want, "{target}: {seen:?}");
        assert!(seen.iter().all(|(_, v)| v.starts_with("committed")), "{target}");
        let end = admin.list_offsets(&t, &[0], OffsetSpec::Latest).await.unwrap()[0].offset;
        assert_eq!(end, 33, "{target}: three markers");
        p.close().await.unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kip848_two_members_split_the_partitions_and_one_leaves() {
    use std::collections::BTreeSet;
    use strom_client::{Consumer, ConsumerConfig};
    on_both(|bootstrap, target| async move {
        let t = topic(&bootstrap, "fidelity-848", 6).await;
        let group = unique_topic("fidelity-848-group");
        let member = || {
            let mut cc = ConsumerConfig::new(&bootstrap);
            cc.set("group.id", &group).unwrap();
            cc.set("group.protocol", "consumer").unwrap();
            cc
        };
        let mut a = Consumer::new(member()).await.unwrap();
        a.subscribe(&[&t]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while a.assignment().len() < 6 {
            assert!(
                std::time::Instant::now() < deadline,
                "{target}: alone, {:?}",
                a.assignment()
            );
            a.poll(Duration::from_millis(50)).await.unwrap();
        }
        let mut b = Consumer::new(member()).await.unwrap();
        b.subscribe(&[&t]).unwrap();
        loop {
            assert!(
                std::time::Instant::now() < deadline,
                "{target}: {:?} {:?}",
                a.assignment(),
                b.assignment()
            );
            a.poll(Duration::from_millis(50)).await.unwrap();
            b.poll(Duration::from_millis(50)).await.unwrap();
            let (x, y): (BTreeSet<_>, BTreeSet<_>) = (
                a.assignment().into_iter().collect(),
                b.assignment().into_iter().collect(),
            );
            assert!(x.is_disjoint(&y), "{target}: a partition owned twice: {x:?} {y:?}");
            if x.len() == 3 && y.len() == 3 {
                break;
            }
        }
        // b leaves: a gets its partitions back.
        b.close().await.unwrap();
        while a.assignment().len() < 6 {
            assert!(
                std::time::Instant::now() < deadline + Duration::from_secs(30),
                "{target}: after b left, {:?}",
                a.assignment()
            );
            a.poll(Duration::from_millis(50)).await.unwrap();
        }
        a.close().await.unwrap();
    })
    .await;
}

/// Writes one raw request frame (api key, version, correlation id 7, client id "fidelity",
/// a flexible header, an empty body) and reads the answer: `None` if the broker closed the connection.
async fn raw_request(bootstrap: &str, api: i16, version: i16) -> Option<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = bootstrap.split(',').next().unwrap();
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut frame = Vec::new();
    frame.extend_from_slice(&api.to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&7i32.to_be_bytes());
    frame.extend_from_slice(&8i16.to_be_bytes());
    frame.extend_from_slice(b"fidelity");
    // The flexible header's empty tagged fields (ApiVersions v3+ and Metadata v9+ have one).
    frame.push(0);
    let mut out = (frame.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&frame);
    s.write_all(&out).await.unwrap();
    let read = async {
        let size = s.read_i32().await.ok()?;
        let mut body = vec![0; usize::try_from(size).ok()?];
        s.read_exact(&mut body).await.ok()?;
        Some(body)
    };
    tokio::time::timeout(Duration::from_secs(10), read).await.unwrap()
}

/// Versions out of range: an ApiVersions the broker does not know is answered at v0 with
/// UNSUPPORTED_VERSION and ApiVersions' own versions only (KIP-511); any other request
/// above the broker's versions closes the connection. (The fake once listed every API
/// there.)
#[tokio::test(flavor = "multi_thread")]
async fn versions_out_of_range_are_refused_as_the_broker_refuses_them() {
    on_both(|bootstrap, target| async move {
        let body = raw_request(&bootstrap, 18, 127)
            .await
            .unwrap_or_else(|| panic!("{target}: no ApiVersions answer"));
        // v0 response header: the correlation id; then the error code.
        assert_eq!(i32::from_be_bytes(body[0..4].try_into().unwrap()), 7, "{target}");
        let code = i16::from_be_bytes(body[4..6].try_into().unwrap());
        assert_eq!(code, ErrorCode::UnsupportedVersion.code(), "{target}");
        // Only ApiVersions' own versions (key 18, from 0), for the client to ask again.
        let apis = i32::from_be_bytes(body[6..10].try_into().unwrap());
        assert_eq!(apis, 1, "{target}");
        assert_eq!(i16::from_be_bytes(body[10..12].try_into().unwrap()), 18, "{target}");
        assert_eq!(i16::from_be_bytes(body[12..14].try_into().unwrap()), 0, "{target}");
        let max = i16::from_be_bytes(body[14..16].try_into().unwrap());
        assert!(max >= 3, "{target}: ApiVersions up to v{max}");
        // Metadata v99: no answer, the connection closes.
        assert_eq!(raw_request(&bootstrap, 3, 99).await, None, "{target}");
    })
    .await;
}
