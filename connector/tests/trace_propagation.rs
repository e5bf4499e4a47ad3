//! W3C trace context from source to sink (feature `opentelemetry`): a record produced inside
//! a span upstream is processed in a `process` span that is that span's child, and the
//! record the pipeline writes carries a `traceparent` of the same trace whose parent is the
//! `process` span; a record without a trace gives an output that is a trace's root, not a
//! child of anything upstream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use strom_client::trace_context::{parse, TRACEPARENT};
use strom_client::{Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use strom_connector::pipeline::{Pipeline, PipelineEnd};
use strom_connector::sink::{DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, StringSerializer};
use strom_connector::source::{deserializer, KafkaSource, OffsetsInitializer};
use strom_integration_tests::{broker, read_partition0, unique_topic};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn the_pipeline_carries_the_trace_from_source_to_sink() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("strom-test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let input = unique_topic("trace-in");
    let output = unique_topic("trace-out");
    admin
        .create_topics(&[NewTopic::new(&input, 1), NewTopic::new(&output, 1)])
        .await
        .unwrap();

    let producer = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    let upstream = tracing::info_span!("upstream");
    let upstream_trace = upstream.context().span().span_context().trace_id();
    async {
        producer
            .send(ProducerRecord::new(&input, "traced"))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    .instrument(upstream.clone())
    .await;
    drop(upstream);
    producer
        .send(ProducerRecord::new(&input, "untraced"))
        .await
        .unwrap()
        .await
        .unwrap();
    producer.close().await.unwrap();

    for guarantee in [DeliveryGuarantee::AtLeastOnce, DeliveryGuarantee::ExactlyOnce] {
        let output = format!("{output}-{}", guarantee.to_string().to_lowercase());
        admin.create_topics(&[NewTopic::new(&output, 1)]).await.unwrap();
        let source = KafkaSource::builder()
            .bootstrap_servers(&broker().bootstrap)
            .topics([input.as_str()])
            .deserializer(deserializer::string())
            .bounded(OffsetsInitializer::latest())
            .build()
            .unwrap();
        let mut sink = KafkaSink::<String>::builder()
            .bootstrap_servers(&broker().bootstrap)
            .record_serializer(
                KafkaRecordSerializationSchema::builder()
                    .topic(&output)
                    .value_serializer(StringSerializer)
                    .build()
                    .unwrap(),
            )
            .delivery_guarantee(guarantee);
        if guarantee == DeliveryGuarantee::ExactlyOnce {
            sink = sink.transactional_id_prefix(&output);
        }
        let summary = tokio::time::timeout(
            Duration::from_secs(60),
            Pipeline::new(source, sink.build().unwrap())
                .map(|s: String| s.to_uppercase())
                .checkpoint_interval(Duration::from_millis(300))
                .run(),
        )
        .await
        .expect("the pipeline ends within a minute")
        .unwrap();
        assert_eq!((summary.end, summary.records_in), (PipelineEnd::EndOfInput, 2));

        let out = read_partition0(&output, 2).await;
        assert_eq!(out[0].value.as_deref(), Some(&b"TRACED"[..]));
        let carried = out[0].trace_context().expect("the output carries the trace on");
        assert_eq!(carried.trace_id(), upstream_trace, "{guarantee}");
        // The untraced input's output starts its own trace at the process span.
        let own = out[1].trace_context().expect("written inside its process span");
        assert_ne!(own.trace_id(), upstream_trace);

        provider.force_flush().unwrap();
        let spans = exporter.get_finished_spans().unwrap();
        let upstream_span = spans.iter().find(|s| s.name == "upstream").unwrap();
        let process = spans
            .iter()
            .find(|s| s.span_context.span_id() == carried.span_id())
            .expect("the output's parent is an exported span");
        assert_eq!(process.name, format!("process {input}"));
        assert_eq!(process.parent_span_id, upstream_span.span_context.span_id());
        assert!(process.parent_span_is_remote);
        let untraced = spans
            .iter()
            .find(|s| s.span_context.span_id() == own.span_id())
            .expect("the untraced record's process span");
        assert_eq!(untraced.parent_span_id, opentelemetry::trace::SpanId::INVALID, "a root");
        // The header written is the one parsed back.
        let raw = out[0].headers.last(TRACEPARENT.as_bytes()).unwrap().value.unwrap();
        assert_eq!(parse(&raw, None).unwrap().span_id(), carried.span_id());
    }
}
