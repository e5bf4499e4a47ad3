//! W3C trace context across the broker (feature `opentelemetry`): a record sent inside a
//! `tracing` span carries `traceparent`/`tracestate`, and the consumer's `process` span is a
//! child of the producer's span in the spans an in-memory OpenTelemetry exporter sees. A
//! record sent outside any span carries nothing; a `traceparent` the application set is kept.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use opentelemetry::trace::{
    SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use strom_client::trace_context::{TRACEPARENT, TRACESTATE};
use strom_client::{Admin, ClientConfig, NewTopic, Producer, ProducerConfig, ProducerRecord};
use strom_integration_tests::{broker, read_partition0, unique_topic};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test]
async fn the_consumer_span_continues_the_producer_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber =
        tracing_subscriber::registry().with(tracing_opentelemetry::layer().with_tracer(provider.tracer("strom-test")));
    let _guard = tracing::subscriber::set_default(subscriber);

    let topic = unique_topic("traces");
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin.create_topics(&[NewTopic::new(&topic, 1)]).await.unwrap();
    let producer = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();

    // 1. Inside a span.
    let checkout = tracing::info_span!("checkout");
    let (trace_id, span_id) = {
        let sc = checkout.context().span().span_context().clone();
        assert!(sc.is_valid(), "the OpenTelemetry layer gives the span a context");
        (sc.trace_id(), sc.span_id())
    };
    async {
        producer
            .send(ProducerRecord::new(&topic, "traced"))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    .instrument(checkout.clone())
    .await;
    drop(checkout);
    // 2. Outside any span: no header.
    producer
        .send(ProducerRecord::new(&topic, "untraced"))
        .await
        .unwrap()
        .await
        .unwrap();
    // 3. The application's own traceparent is kept, even inside a span.
    let theirs = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    async {
        producer
            .send(ProducerRecord::new(&topic, "theirs").header(TRACEPARENT, Bytes::from_static(theirs.as_bytes())))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    .instrument(tracing::info_span!("other"))
    .await;
    // 4. No tracing span, but an OpenTelemetry context (the API used directly), with a
    //    tracestate.
    let remote = SpanContext::new(
        TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap(),
        SpanId::from_hex("00f067aa0ba902b7").unwrap(),
        TraceFlags::SAMPLED,
        true,
        TraceState::from_key_value([("vendor", "v1")]).unwrap(),
    );
    {
        let _attached = opentelemetry::Context::new().with_remote_span_context(remote).attach();
        producer
            .send(ProducerRecord::new(&topic, "otel-api"))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    producer.close().await.unwrap();

    let records = read_partition0(&topic, 4).await;
    let via_api = &records[3];
    let last = |k: &str| {
        via_api
            .headers
            .last(k.as_bytes())
            .and_then(|h| h.value)
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    };
    assert_eq!(
        last(TRACEPARENT).as_deref(),
        Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
    );
    assert_eq!(last(TRACESTATE).as_deref(), Some("vendor=v1"));
    assert_eq!(via_api.trace_context().unwrap().trace_state().get("vendor"), Some("v1"));
    let traced = &records[0];
    let sc = traced.trace_context().expect("the traced record carries a traceparent");
    assert_eq!((sc.trace_id(), sc.span_id()), (trace_id, span_id));
    assert!(sc.is_sampled() && sc.is_remote());
    assert_eq!(traced.headers.get_all(TRACEPARENT.as_bytes()).count(), 1);
    assert_eq!(
        traced.headers.get_all(TRACESTATE.as_bytes()).count(),
        0,
        "an empty tracestate is left out"
    );

    assert!(records[1].trace_context().is_none());
    assert_eq!(records[1].headers.len(), 0);

    let kept: Vec<_> = records[2].headers.get_all(TRACEPARENT.as_bytes()).collect();
    assert_eq!(kept, vec![Some(Bytes::from_static(theirs.as_bytes()))]);

    // The consumer's process span, closed, then exported.
    let process = traced.process_span();
    process.in_scope(|| tracing::info!("handled"));
    drop(process);
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let producer_span = spans.iter().find(|s| s.name == "checkout").expect("the checkout span");
    let consumer_span = spans
        .iter()
        .find(|s| s.name == format!("process {topic}"))
        .unwrap_or_else(|| {
            panic!(
                "no process span in {:?}",
                spans.iter().map(|s| &s.name).collect::<Vec<_>>()
            )
        });
    assert_eq!(
        consumer_span.span_context.trace_id(),
        producer_span.span_context.trace_id()
    );
    assert_eq!(consumer_span.parent_span_id, producer_span.span_context.span_id());
    assert!(consumer_span.parent_span_is_remote);
    assert_eq!(consumer_span.span_kind, SpanKind::Consumer);
    let attr = |k: &str| {
        consumer_span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.to_string())
    };
    assert_eq!(attr("messaging.system").as_deref(), Some("kafka"));
    assert_eq!(attr("messaging.destination.name").as_deref(), Some(topic.as_str()));
    assert_eq!(attr("messaging.destination.partition.id").as_deref(), Some("0"));
    assert_eq!(attr("messaging.kafka.offset").as_deref(), Some("0"));
}
