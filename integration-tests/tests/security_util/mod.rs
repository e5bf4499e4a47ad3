//! Helpers shared by the security test binaries (`security.rs`, `security_gssapi.rs`).
#![allow(dead_code, missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::{Admin, Client, ClientConfig, NewTopic};
use strom_integration_tests::unique_topic;
use strom_protocol::message_traits::StrBytes;
use strom_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use strom_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use strom_protocol::messages::{ApiKey, FetchRequest, ProduceRequest, TopicName};
use strom_protocol::record_batch::{BatchBuilder, BatchHeader, Batches, DecodeOptions, NewRecord};
use strom_protocol::ErrorCode;

/// A client config from Java properties; unknown keys fail the test.
pub(crate) fn config(props: &[(&str, &str)]) -> ClientConfig {
    let mut c = ClientConfig::default();
    for (k, v) in props {
        c.set(k, v).unwrap_or_else(|e| panic!("{k}: {e}"));
    }
    // Fail fast: a test that retries for a minute is a failed test anyway.
    c.default_api_timeout = Duration::from_secs(30);
    c
}

pub(crate) fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

/// One record to partition 0 of `topic` through `client`, retrying the moment a new
/// partition's leader is not ready yet; returns its offset.
pub(crate) async fn produce(client: &Client, topic: &str, value: &[u8]) -> i64 {
    let info = client.topic(topic).await.unwrap();
    let mut b = BatchBuilder::new(BatchHeader::default(), 1024);
    b.append(&NewRecord {
        timestamp: 1_700_000_000_000,
        key: Some(b"k"),
        value: Some(value),
        headers: &[],
    })
    .unwrap();
    let batch = b.finish().unwrap();
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(name(topic))
            .with_topic_id(info.topic_id)
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(batch))])]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, conn) = client.leader(topic, 0).await.unwrap();
        let resp = conn.send(&req).await.unwrap();
        let p = &resp.responses[0].partition_responses[0];
        let code = ErrorCode::from(p.error_code);
        if code == ErrorCode::None {
            return p.base_offset;
        }
        assert!(code.is_retriable() && Instant::now() < deadline, "produce: {code:?}");
        client.invalidate_topic(topic);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the record at `offset` of partition 0.
pub(crate) async fn fetch(client: &Client, topic: &str, offset: i64) -> Bytes {
    let info = client.topic(topic).await.unwrap();
    let (_, conn) = client.leader(topic, 0).await.unwrap();
    let mut t = FetchTopic::default().with_partitions(vec![FetchPartition::default()
        .with_partition(0)
        .with_fetch_offset(offset)
        .with_partition_max_bytes(1 << 20)]);
    t = if conn.versions().version(ApiKey::Fetch).unwrap() >= 13 {
        t.with_topic_id(info.topic_id)
    } else {
        t.with_topic(name(topic))
    };
    let resp = conn
        .send(
            &FetchRequest::default()
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_max_bytes(1 << 20)
                .with_session_epoch(-1)
                .with_topics(vec![t]),
        )
        .await
        .unwrap();
    let p = &resp.responses[0].partitions[0];
    assert_eq!(ErrorCode::from(p.error_code), ErrorCode::None);
    let batch = Batches::new(p.records.clone().unwrap_or_default(), DecodeOptions::default())
        .next()
        .expect("a batch")
        .unwrap();
    let record = batch
        .records(&DecodeOptions::default())
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    record.value.clone().unwrap()
}

/// Authenticate, create a topic with Admin, produce a record and fetch it back.
pub(crate) async fn round_trip(config: ClientConfig) {
    let admin = Admin::connect(config).await.unwrap();
    let topic = unique_topic("sec");
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let value = format!("hello over {topic}");
    let offset = produce(admin.client(), &topic, value.as_bytes()).await;
    assert_eq!(&fetch(admin.client(), &topic, offset).await[..], value.as_bytes());
    admin.delete_topics(&[&topic]).await.unwrap();
}

/// Captured `tracing` output.
#[derive(Clone, Default)]
pub(crate) struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Capture {
    pub(crate) fn subscriber(&self, filter: &str) -> impl tracing::Subscriber + Send + Sync {
        let w = self.clone();
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .finish()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}
