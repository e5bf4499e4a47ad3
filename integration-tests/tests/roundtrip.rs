//! The pipes, end to end against the real broker: strom-protocol framing and record batches
//! plus kafka-protocol messages over one strom-client connection.
//! ApiVersions, Metadata, CreateTopics, Produce (every codec), Fetch, DeleteTopics.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use strom_client::lowlevel::{Connection, ConnectionConfig};
use strom_integration_tests::{broker, unique_topic, PrivateBroker};
use strom_protocol::message_traits::StrBytes;
use strom_protocol::messages::create_topics_request::CreatableTopic;
use strom_protocol::messages::delete_topics_request::DeleteTopicState;
use strom_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use strom_protocol::messages::{
    ApiKey, CreateTopicsRequest, DeleteTopicsRequest, FetchRequest, MetadataRequest, ProduceRequest, TopicName,
};
use strom_protocol::record_batch::{BatchBuilder, BatchHeader, Batches, DecodeOptions, NewRecord};
use strom_protocol::{Compression, ErrorCode};

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// What we send and expect back, per record.
struct Expect {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    ts: i64,
    headers: Vec<(&'static str, Option<&'static [u8]>)>,
}

fn records(codec: Compression) -> Vec<Expect> {
    (0..50)
        .map(|i| Expect {
            key: (i % 5 != 0).then(|| format!("key-{i}").into_bytes()),
            value: (i % 7 != 3).then(|| format!("{codec} value {i} {}", "x".repeat(i * 3)).into_bytes()),
            // Timestamps days apart in one batch (delta > 2^31 ms needs a varlong).
            ts: 1_600_000_000_000 + (i as i64) * 3 * 86_400_000,
            headers: if i % 2 == 0 {
                vec![("h", Some(b"a")), ("h", None), ("other", Some(b""))]
            } else {
                vec![]
            },
        })
        .collect()
}

#[tokio::test]
async fn create_produce_fetch_round_trip() {
    round_trip(&broker().bootstrap).await;
}

/// The same round trip against Apache Kafka 3.9.1 (what many production clusters run):
/// lower API versions negotiated, no KIP-890 features.
#[tokio::test]
async fn round_trip_against_kafka_3_9() {
    let b = PrivateBroker::start_with(19492, &[("KAFKA_VERSION", "3.9.1")]);
    round_trip(&b.bootstrap).await;
}

async fn round_trip(bootstrap: &str) {
    let conn = Connection::connect(bootstrap, ConnectionConfig::default())
        .await
        .unwrap();
    let v = conn.versions();
    for api in [ApiKey::Metadata, ApiKey::CreateTopics, ApiKey::Produce, ApiKey::Fetch] {
        v.version(api).unwrap_or_else(|e| panic!("{e}"));
    }

    // Metadata for all topics names the broker we connected to.
    let md = conn.send(&MetadataRequest::default().with_topics(None)).await.unwrap();
    assert_eq!(md.brokers.len(), 1, "{md:?}");
    assert_eq!(
        format!("{}:{}", md.brokers[0].host.as_str(), md.brokers[0].port),
        bootstrap
    );

    let topic = unique_topic("roundtrip");
    let created = conn
        .send(
            &CreateTopicsRequest::default()
                .with_timeout_ms(30_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(name(&topic))
                    .with_num_partitions(2)
                    .with_replication_factor(1)]),
        )
        .await
        .unwrap();
    let result = &created.topics[0];
    assert_eq!(
        ErrorCode::from(result.error_code),
        ErrorCode::None,
        "{:?}",
        result.error_message
    );
    let topic_id = result.topic_id;

    // Metadata for the new topic: 2 partitions, both led by our broker. KRaft brokers learn
    // of a new topic asynchronously, so poll (bounded) until the leaders are there.
    let md_req = MetadataRequest::default().with_topics(Some(vec![
        strom_protocol::messages::metadata_request::MetadataRequestTopic::default().with_name(Some(name(&topic))),
    ]));
    let started = std::time::Instant::now();
    let md = loop {
        let md = conn.send(&md_req).await.unwrap();
        let ready = md.topics[0].error_code == 0
            && md.topics[0].partitions.len() == 2
            && md.topics[0].partitions.iter().all(|p| p.leader_id.0 >= 0);
        if ready {
            break md;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(30),
            "topic never got leaders: {md:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(md.topics[0].partitions.len(), 2);
    assert_eq!(md.topics[0].topic_id, topic_id);

    // One batch per codec to partition 1, acks=all.
    let mut base = 0i64;
    let mut expected_batches = Vec::new();
    for codec in Compression::ALL {
        let recs = records(codec);
        let mut b = BatchBuilder::new(
            BatchHeader {
                compression: codec,
                ..Default::default()
            },
            16 * 1024,
        );
        for r in &recs {
            b.append(&NewRecord {
                timestamp: r.ts,
                key: r.key.as_deref(),
                value: r.value.as_deref(),
                headers: &r.headers,
            })
            .unwrap();
        }
        let batch = b.finish().unwrap();
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name(&topic))
                .with_topic_id(topic_id)
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(1)
                    .with_records(Some(batch))])]);
        let resp = strom_integration_tests::send_produce(&conn, &req).await;
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(
            ErrorCode::from(p.error_code),
            ErrorCode::None,
            "{codec}: {:?} {:?}",
            p.error_message,
            p.record_errors
        );
        assert_eq!(p.base_offset, base, "{codec}");
        expected_batches.push((codec, base, recs));
        base += 50;
    }

    // Fetch everything back from offset 0 and compare every field.
    let fetch_version = conn.versions().version(ApiKey::Fetch).unwrap();
    let mut topic_req = FetchTopic::default().with_partitions(vec![FetchPartition::default()
        .with_partition(1)
        .with_fetch_offset(0)
        .with_partition_max_bytes(4 << 20)]);
    topic_req = if fetch_version >= 13 {
        topic_req.with_topic_id(topic_id)
    } else {
        topic_req.with_topic(name(&topic))
    };
    let mut got = Vec::new();
    let mut next = 0i64;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while next < base {
        assert!(
            std::time::Instant::now() < deadline,
            "fetched only up to offset {next} of {base}"
        );
        topic_req.partitions[0].fetch_offset = next;
        let resp = conn
            .send(
                &FetchRequest::default()
                    .with_max_wait_ms(500)
                    .with_min_bytes(1)
                    .with_max_bytes(8 << 20)
                    .with_session_epoch(-1)
                    .with_topics(vec![topic_req.clone()]),
            )
            .await
            .unwrap();
        assert_eq!(ErrorCode::from(resp.error_code), ErrorCode::None);
        let p = &resp.responses[0].partitions[0];
        assert_eq!(ErrorCode::from(p.error_code), ErrorCode::None);
        assert_eq!(p.high_watermark, base);
        let records: Bytes = p.records.clone().unwrap_or_default();
        for batch in Batches::new(records, DecodeOptions::default()) {
            let batch = batch.unwrap();
            next = batch.next_offset();
            got.push(batch);
        }
    }
    assert_eq!(got.len(), expected_batches.len());
    for (batch, (codec, base, recs)) in got.iter().zip(&expected_batches) {
        assert_eq!(batch.base_offset(), *base);
        // The broker keeps the producer's codec (topic compression.type=producer).
        assert_eq!(batch.compression().unwrap(), *codec);
        assert_eq!(batch.records_count() as usize, recs.len());
        let decoded: Vec<_> = batch
            .records(&DecodeOptions::default())
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for (i, (r, e)) in decoded.iter().zip(recs).enumerate() {
            assert_eq!(r.offset, base + i as i64);
            assert_eq!(r.timestamp, e.ts, "{codec} record {i}");
            assert_eq!(r.key.as_deref(), e.key.as_deref());
            assert_eq!(r.value.as_deref(), e.value.as_deref());
            let hs: Vec<_> = r
                .headers
                .iter()
                .map(|h| (h.key_str().unwrap().to_owned(), h.value))
                .collect();
            let want: Vec<_> = e
                .headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.map(Bytes::from_static)))
                .collect();
            assert_eq!(hs, want);
        }
    }

    // DeleteTopics v6 names topics in `topics`; older versions in `topic_names`.
    let delete = DeleteTopicsRequest::default().with_timeout_ms(30_000);
    let delete = if conn.versions().version(ApiKey::DeleteTopics).unwrap() >= 6 {
        delete.with_topics(vec![DeleteTopicState::default().with_name(Some(name(&topic)))])
    } else {
        delete.with_topic_names(vec![name(&topic)])
    };
    let deleted = conn.send(&delete).await.unwrap();
    assert_eq!(ErrorCode::from(deleted.responses[0].error_code), ErrorCode::None);
}
