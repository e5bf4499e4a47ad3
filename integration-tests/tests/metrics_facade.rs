//! The `metrics` facade path: with a recorder installed before the clients are created
//! (as `metrics-exporter-prometheus` and OpenTelemetry's bridge are), every Strom metric
//! reaches it under its Prometheus name and labels. Its own binary: the recorder is global.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use strom_client::{Admin, Client, ClientConfig, ErrorKind, NewTopic, Producer, ProducerConfig, ProducerRecord};
use strom_integration_tests::{broker, unique_topic};

#[tokio::test]
async fn an_installed_recorder_sees_what_the_snapshot_sees() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("no other recorder in this binary");

    let topic = unique_topic("facade");
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin.create_topics(&[NewTopic::new(&topic, 2)]).await.unwrap();
    let mut pc = ProducerConfig::new(&broker().bootstrap);
    pc.set("client.id", "facade-producer").unwrap();
    let producer = Producer::new(pc).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..500 {
        pending.push(
            producer
                .send(ProducerRecord::new(&topic, format!("v{i}")))
                .await
                .unwrap(),
        );
    }
    for d in pending {
        d.await.unwrap();
    }

    let snapshot = snapshotter.snapshot().into_vec();
    let find = |name: &str, labels: &[(&str, &str)]| {
        snapshot
            .iter()
            .find(|(k, _, _, _)| {
                let key = k.key();
                key.name() == name
                    && labels
                        .iter()
                        .all(|(lk, lv)| key.labels().any(|l| l.key() == *lk && l.value() == *lv))
            })
            .map(|(_, _, _, v)| v)
            .unwrap_or_else(|| panic!("the recorder has no {name} {labels:?}"))
    };
    let labels = [("client_id", "facade-producer"), ("topic", topic.as_str())];
    assert_eq!(
        find("kafka_producer_record_send_total", &labels),
        &DebugValue::Counter(500)
    );
    let DebugValue::Histogram(latencies) = find(
        "kafka_producer_request_latency_seconds",
        &[("client_id", "facade-producer")],
    ) else {
        panic!("request latency is a histogram");
    };
    assert!(!latencies.is_empty() && latencies.iter().all(|s| s.0 > 0.0 && s.0 < 30.0));
    let DebugValue::Gauge(available) = find(
        "kafka_producer_buffer_available_bytes",
        &[("client_id", "facade-producer")],
    ) else {
        panic!("buffer-available-bytes is a gauge");
    };
    assert_eq!(available.0, 32.0 * 1024.0 * 1024.0);
    // The snapshot and the recorder agree.
    let m = producer.metrics();
    assert_eq!(
        m.get("producer-topic-metrics", "record-send-total", &[("topic", &topic)])
            .unwrap(),
        500.0
    );
    producer.close().await.unwrap();

    // Authentication, counted per node: a client whose password the broker refuses never
    // gets a handle to read a snapshot from, so the recorder is where a refusal shows.
    let sasl = |client_id: &str, password: &str| {
        let user = broker().var("STROM_SASL_USERNAME").to_owned();
        let jaas = format!(
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"{user}\" password=\"{password}\";"
        );
        let mut c = ClientConfig::new(broker().var("STROM_SASL_PLAINTEXT_BOOTSTRAP"));
        for (k, v) in [
            ("client.id", client_id),
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.jaas.config", jaas.as_str()),
            ("default.api.timeout.ms", "10000"),
        ] {
            c.set(k, v).unwrap();
        }
        c
    };
    let e = Client::connect(sasl("facade-bad-password", "not-the-password"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    let good = Client::connect(sasl("facade-good-password", broker().var("STROM_SASL_PASSWORD")))
        .await
        .unwrap();
    let snapshot = snapshotter.snapshot().into_vec();
    let counter = |name: &str, client_id: &str| {
        snapshot
            .iter()
            .filter(|(k, _, _, _)| {
                k.key().name() == name
                    && k.key()
                        .labels()
                        .any(|l| l.key() == "client_id" && l.value() == client_id)
            })
            .map(|(_, _, _, v)| match v {
                DebugValue::Counter(n) => *n,
                other => panic!("{name} is a counter, not {other:?}"),
            })
            .sum::<u64>()
    };
    assert!(counter("kafka_node_failed_authentication_total", "facade-bad-password") >= 1);
    assert_eq!(
        counter("kafka_node_successful_authentication_total", "facade-bad-password"),
        0
    );
    assert!(counter("kafka_node_successful_authentication_total", "facade-good-password") >= 1);
    assert_eq!(
        counter("kafka_node_failed_authentication_total", "facade-good-password"),
        0
    );
    let m = good.metric_registry().snapshot();
    assert!(m.sum("node-metrics", "successful-authentication-total") >= 1.0);
    assert_eq!(m.sum("node-metrics", "failed-authentication-total"), 0.0);
}
