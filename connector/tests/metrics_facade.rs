//! A running pipeline publishes its Flink-named metrics to the `metrics` facade's recorder
//! (what `metrics-exporter-prometheus` or an OpenTelemetry bridge installs): the same names
//! and labels as `PipelineMetricsSnapshot::prometheus()`, while it runs and once more at its
//! end. Its own binary: the recorder is global.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use bytes::Bytes;
use metrics::{SharedString, Unit};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use metrics_util::CompositeKey;
use strom_client::{Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use strom_connector::pipeline::{Pipeline, PipelineEnd};
use strom_connector::sink::{DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, StringSerializer};
use strom_connector::source::{deserializer, KafkaSource, OffsetsInitializer};
use strom_integration_tests::{broker, init_test_logging, unique_topic};

type Taken = Vec<(CompositeKey, Option<Unit>, Option<SharedString>, DebugValue)>;

/// The gauge `name` with `labels` in one snapshot (a snapshot resets what it reads).
fn gauge(snapshot: &Taken, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    snapshot.iter().find_map(|(k, _, _, v)| {
        let key = k.key();
        let matches = key.name() == name
            && labels
                .iter()
                .all(|(lk, lv)| key.labels().any(|l| l.key() == *lk && l.value() == *lv));
        match v {
            DebugValue::Gauge(g) if matches => Some(g.0),
            _ => None,
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_pipeline_reaches_the_installed_recorder() {
    init_test_logging();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder.install().expect("no other recorder in this binary");

    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let input = unique_topic("facade-in");
    let output = unique_topic("facade-out");
    admin
        .create_topics(&[NewTopic::new(&input, 2), NewTopic::new(&output, 1)])
        .await
        .unwrap();
    let producer = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..200 {
        let record = ProducerRecord::new(&input, Bytes::from(format!("v{i}"))).partition(i % 2);
        pending.push(producer.send(record).await.unwrap());
    }
    for d in pending {
        d.wait().await.unwrap();
    }
    producer.close().await.unwrap();

    let source_builder = || {
        KafkaSource::builder()
            .bootstrap_servers(&broker().bootstrap)
            .topics([input.as_str()])
            .deserializer(deserializer::string())
    };
    let unbounded = source_builder().build().unwrap();
    let source = source_builder().bounded(OffsetsInitializer::latest()).build().unwrap();
    let sink = KafkaSink::<String>::builder()
        .bootstrap_servers(&broker().bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic(&output)
                .value_serializer(StringSerializer)
                .build()
                .unwrap(),
        )
        .delivery_guarantee(DeliveryGuarantee::AtLeastOnce)
        .build()
        .unwrap();

    // While it runs: the offsets show before the pipeline is told to stop (the input has no
    // end), so they come from the periodic publish, not the last one.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(
        Pipeline::new(unbounded, sink.clone())
            .checkpoint_interval(Duration::from_millis(300))
            .run_until(async move {
                let _ = stopped.await;
            }),
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let taken = snapshotter.snapshot().into_vec();
        let offset = |p: &str| {
            gauge(
                &taken,
                "flink_KafkaSourceReader_topic_partition_currentOffset",
                &[("topic", &input), ("partition", p)],
            )
        };
        if offset("0") == Some(99.0) && offset("1") == Some(99.0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no published offsets in 30 s: {taken:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.send(()).unwrap();
    let summary = running.await.unwrap().unwrap();
    assert_eq!((summary.end, summary.records_in), (PipelineEnd::Stopped, 200));
    let taken = snapshotter.snapshot().into_vec();
    assert_eq!(
        gauge(&taken, "flink_numRecordsIn", &[]),
        Some(200.0),
        "the last publish"
    );

    // A bounded pipeline ends by itself; its last values are published as it returns.
    let summary = tokio::time::timeout(
        Duration::from_secs(60),
        Pipeline::new(source, sink)
            .checkpoint_interval(Duration::from_millis(300))
            .run(),
    )
    .await
    .expect("the pipeline ends within a minute")
    .unwrap();
    assert_eq!((summary.end, summary.records_in), (PipelineEnd::EndOfInput, 200));

    let taken = snapshotter.snapshot().into_vec();
    assert_eq!(gauge(&taken, "flink_numRecordsIn", &[]), Some(200.0));
    assert_eq!(gauge(&taken, "flink_numRecordsOut", &[]), Some(200.0));
    for p in ["0", "1"] {
        assert_eq!(
            gauge(
                &taken,
                "flink_KafkaSourceReader_topic_partition_currentOffset",
                &[("topic", &input), ("partition", p)]
            ),
            Some(99.0),
            "partition {p}"
        );
    }
    assert!(
        gauge(&taken, "flink_numberOfCompletedCheckpoints", &[]).is_some_and(|v| v >= 1.0),
        "{taken:?}"
    );
}
