//! Unit tests of the sink without a broker: builders, serializers, configuration checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use serde::Serialize;

use super::*;

#[derive(Debug, Serialize)]
struct Order {
    id: String,
    region: String,
    amount: u32,
}

fn order(id: &str, region: &str) -> Order {
    Order {
        id: id.into(),
        region: region.into(),
        amount: 7,
    }
}

#[test]
fn schema_builder_fills_every_field() {
    let schema = KafkaRecordSerializationSchema::<Order>::builder()
        .topic_selector(|o: &Order| format!("orders-{}", o.region))
        .key_serializer(|o: &Order| Ok(Some(Bytes::from(o.id.clone()))))
        .value_serializer(JsonSerializer)
        .headers(|o: &Order| {
            vec![
                ("region".into(), Some(Bytes::from(o.region.clone()))),
                ("none".into(), None),
            ]
        })
        .build()
        .unwrap();
    assert!(schema.fixed_topics().is_empty());
    let ctx = KafkaSinkContext::detached(0, 1).with_timestamp(Some(1_700_000_000_000));
    let r = schema.serialize(&order("a1", "eu"), &ctx).unwrap().unwrap();
    assert_eq!(r.topic, "orders-eu");
    assert_eq!(r.key.as_deref(), Some(&b"a1"[..]));
    assert_eq!(
        r.value.as_deref(),
        Some(&br#"{"id":"a1","region":"eu","amount":7}"#[..])
    );
    assert_eq!(r.headers.len(), 2);
    assert_eq!(r.headers[0], ("region".to_string(), Some(Bytes::from_static(b"eu"))));
    assert_eq!(r.partition, None, "no partitioner: the producer's default decides");
    assert_eq!(r.timestamp, Some(1_700_000_000_000));
}

#[test]
fn fixed_topic_and_string_values() {
    let schema = KafkaRecordSerializationSchema::<String>::builder()
        .topic("out")
        .value_serializer(StringSerializer)
        .build()
        .unwrap();
    assert_eq!(schema.fixed_topics(), vec!["out".to_string()]);
    let r = schema
        .serialize(&"héllo".to_string(), &KafkaSinkContext::detached(0, 1))
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.topic.as_str(), r.key, r.value.as_deref()),
        ("out", None, Some("héllo".as_bytes()))
    );
    assert_eq!(r.timestamp, None);
}

#[test]
fn fixed_partitioner_spreads_subtasks_like_flink() {
    let schema = KafkaRecordSerializationSchema::<Vec<u8>>::builder()
        .topic("t")
        .value_serializer(BytesSerializer)
        .partitioner(FixedPartitioner)
        .build()
        .unwrap();
    let chosen: Vec<Option<i32>> = (0..5)
        .map(|subtask| {
            let ctx = KafkaSinkContext::detached(subtask, 5).with_partitions("t", [0, 1, 2]);
            schema.serialize(&vec![1u8], &ctx).unwrap().unwrap().partition
        })
        .collect();
    assert_eq!(chosen, vec![Some(0), Some(1), Some(2), Some(0), Some(1)]);
}

/// A partitioner of the user's (Flink's `KafkaPartitioner`): by the element's first byte.
struct ByFirstByte;

impl SinkPartitioner<Vec<u8>> for ByFirstByte {
    fn partition(
        &self,
        element: &Vec<u8>,
        _key: Option<&[u8]>,
        value: Option<&[u8]>,
        topic: &str,
        partitions: &[i32],
        _ctx: &KafkaSinkContext,
    ) -> i32 {
        assert_eq!((topic, value), ("t", Some(&element[..])));
        match element.first() {
            Some(99) => 99, // not a partition of the topic
            Some(b) => partitions[usize::from(*b) % partitions.len()],
            None => partitions[0],
        }
    }
}

#[test]
fn a_users_own_partitioner_places_records_and_a_wrong_answer_fails_naming_it() {
    let schema = KafkaRecordSerializationSchema::<Vec<u8>>::builder()
        .topic("t")
        .value_serializer(BytesSerializer)
        .partitioner(ByFirstByte)
        .build()
        .unwrap();
    let ctx = KafkaSinkContext::detached(0, 1).with_partitions("t", [0, 1, 2]);
    let chosen: Vec<Option<i32>> = [vec![4u8], vec![5u8], vec![]]
        .iter()
        .map(|e| schema.serialize(e, &ctx).unwrap().unwrap().partition)
        .collect();
    assert_eq!(chosen, vec![Some(1), Some(2), Some(0)]);
    let e = schema.serialize(&vec![99u8], &ctx).unwrap_err().to_string();
    assert!(e.contains("99") && e.contains('t'), "{e}");
}

#[test]
fn unknown_partitions_are_asked_for_then_serialized_again() {
    let schema = KafkaRecordSerializationSchema::<Vec<u8>>::builder()
        .topic("t")
        .value_serializer(BytesSerializer)
        .partitioner(FixedPartitioner)
        .build()
        .unwrap();
    let ctx = KafkaSinkContext::detached(1, 2);
    let r = schema.serialize(&vec![1u8], &ctx).unwrap().unwrap();
    assert_eq!(r.partition, None);
    assert_eq!(
        ctx.take_missing().into_iter().collect::<Vec<_>>(),
        vec!["t".to_string()]
    );
    let ctx = ctx.with_partitions("t", [0, 1]);
    assert_eq!(schema.serialize(&vec![1u8], &ctx).unwrap().unwrap().partition, Some(1));
    assert!(ctx.take_missing().is_empty());
}

#[test]
fn closures_are_serializers_and_none_skips() {
    let ser = |s: &String, _ctx: &KafkaSinkContext| -> crate::Result<Option<strom_client::ProducerRecord>> {
        if s.is_empty() {
            return Ok(None);
        }
        Ok(Some(strom_client::ProducerRecord::new("t", Bytes::from(s.clone()))))
    };
    let ctx = KafkaSinkContext::detached(0, 1);
    assert!(KafkaRecordSerializer::serialize(&ser, &String::new(), &ctx)
        .unwrap()
        .is_none());
    assert!(KafkaRecordSerializer::serialize(&ser, &"x".to_string(), &ctx)
        .unwrap()
        .is_some());
    // And a sink takes it.
    KafkaSink::<String>::builder()
        .bootstrap_servers("127.0.0.1:1")
        .record_serializer(ser)
        .build()
        .unwrap();
}

#[test]
fn schema_builder_requires_topic_and_value() {
    let e = KafkaRecordSerializationSchema::<String>::builder()
        .value_serializer(StringSerializer)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("topic"), "{e}");
    let e = KafkaRecordSerializationSchema::<String>::builder()
        .topic("t")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("value serializer"), "{e}");
    let e = KafkaRecordSerializationSchema::<String>::builder()
        .topic("")
        .value_serializer(StringSerializer)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("empty"), "{e}");
}

fn string_schema() -> KafkaRecordSerializationSchema<String> {
    KafkaRecordSerializationSchema::builder()
        .topic("t")
        .value_serializer(StringSerializer)
        .build()
        .unwrap()
}

#[test]
fn sink_builder_checks_its_settings() {
    let base = || {
        KafkaSink::<String>::builder()
            .bootstrap_servers("127.0.0.1:9092")
            .record_serializer(string_schema())
    };
    // Defaults: at-least-once, Flink's 1 h transaction timeout.
    let sink = base().build().unwrap();
    assert_eq!(sink.delivery_guarantee(), DeliveryGuarantee::AtLeastOnce);
    assert_eq!(sink.producer_config().transaction_timeout, DEFAULT_TRANSACTION_TIMEOUT);

    let e = base()
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("transactional_id_prefix"), "{e}");
    let e = base()
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix("x".repeat(recovery::MAX_PREFIX_BYTES + 1))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("at most"), "{e}");
    let e = base().property("transactional.id", "mine").build().unwrap_err();
    assert!(e.to_string().contains("transactional_id_prefix"), "{e}");
    // Unknown keys are accepted with a warning and listed, as Flink does.
    let sink = base().property("no.such.key", "1").build().unwrap();
    assert_eq!(sink.ignored_properties(), ["no.such.key"]);
    let e = base().property("linger.ms", "soon").build().unwrap_err();
    assert!(e.to_string().contains("linger.ms"), "{e}");
    let e = base()
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix("p")
        .property("acks", "1")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("acks"), "{e}");
    let e = KafkaSink::<String>::builder()
        .record_serializer(string_schema())
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("bootstrap"), "{e}");
    let e = KafkaSink::<String>::builder()
        .bootstrap_servers("127.0.0.1:9092")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("record serializer"), "{e}");

    // The property and the typed setter both set the timeout; the setter wins.
    let sink = base().property("transaction.timeout.ms", "900000").build().unwrap();
    assert_eq!(sink.producer_config().transaction_timeout, Duration::from_secs(900));
    let sink = base()
        .property("transaction.timeout.ms", "900000")
        .transaction_timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    assert_eq!(sink.producer_config().transaction_timeout, Duration::from_secs(60));
    // bootstrap.servers as a property is enough.
    KafkaSink::<String>::builder()
        .property("bootstrap.servers", "127.0.0.1:9092")
        .record_serializer(string_schema())
        .build()
        .unwrap();
    let sink = base()
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix("orders")
        .build()
        .unwrap();
    assert_eq!(sink.transactional_id_prefix(), Some("orders"));

    // setLogFailuresOnly: may lose records, so only without a guarantee (the legacy seed: "This
    // must be disabled for at-least-once").
    assert!(!base().build().unwrap().logs_failures_only(), "off by default");
    let sink = base()
        .delivery_guarantee(DeliveryGuarantee::None)
        .set_log_failures_only(true)
        .build()
        .unwrap();
    assert!(sink.logs_failures_only());
    for (guarantee, name) in [
        (DeliveryGuarantee::AtLeastOnce, "at-least-once"),
        (DeliveryGuarantee::ExactlyOnce, "exactly-once"),
    ] {
        let e = base()
            .delivery_guarantee(guarantee)
            .transactional_id_prefix("p")
            .set_log_failures_only(true)
            .build()
            .unwrap_err();
        assert!(matches!(e, ConnectorError::Config(_)), "{e}");
        assert!(
            e.to_string().contains(&format!(
                "set_log_failures_only(true) drops records that cannot be delivered, which {name} forbids"
            )),
            "{e}"
        );
    }
    base()
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix("p")
        .set_log_failures_only(false)
        .build()
        .unwrap();
}

#[test]
fn secrets_never_reach_debug_output() {
    let builder = KafkaSink::<String>::builder()
        .bootstrap_servers("127.0.0.1:9092")
        .record_serializer(string_schema())
        .properties([
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "PLAIN"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"u\" password=\"hunter2\";",
            ),
        ]);
    let s = format!("{builder:?}");
    assert!(!s.contains("hunter2"), "{s}");
    assert!(s.contains("sasl.mechanism"), "{s}");
    let sink = builder.build().unwrap();
    let s = format!("{sink:?}");
    assert!(!s.contains("hunter2"), "{s}");
}

#[test]
fn delivery_guarantee_parses_flink_values() {
    assert_eq!(
        "exactly-once".parse::<DeliveryGuarantee>().unwrap(),
        DeliveryGuarantee::ExactlyOnce
    );
    assert_eq!(
        "AT_LEAST_ONCE".parse::<DeliveryGuarantee>().unwrap(),
        DeliveryGuarantee::AtLeastOnce
    );
    assert_eq!("none".parse::<DeliveryGuarantee>().unwrap(), DeliveryGuarantee::None);
    assert!("twice".parse::<DeliveryGuarantee>().is_err());
    assert_eq!(DeliveryGuarantee::ExactlyOnce.to_string(), "exactly-once");
}

#[test]
fn committable_round_trips_and_converts() {
    let c = KafkaCommittable {
        transactional_id: "p-0-3".into(),
        producer_id: 4000,
        epoch: 7,
        transaction_version: 2,
    };
    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["transactional_id"], "p-0-3");
    assert_eq!(serde_json::from_value::<KafkaCommittable>(json).unwrap(), c);
    let p = strom_client::PreparedTransaction::from(&c);
    assert_eq!((p.producer_id, p.producer_epoch, p.transaction_version), (4000, 7, 2));
    assert_eq!(KafkaCommittable::from(p), c);
}

#[test]
fn metrics_use_flink_names() {
    let m = SinkMetrics::default();
    m.record_out(10);
    m.record_out(5);
    m.record_error();
    let snap = m.snapshot();
    let names: std::collections::BTreeMap<_, _> = snap.by_flink_name().into_iter().collect();
    assert_eq!(names["numRecordsOut"], 2);
    assert_eq!(names["numRecordsSend"], 2);
    assert_eq!(names["numRecordsOutErrors"], 1);
    assert_eq!(names["numBytesOut"], 15);
}

/// The pipeline drives writers from spawned tokio tasks: the writer and its futures are `Send`.
#[allow(dead_code)]
fn writer_futures_are_send(w: &mut KafkaSinkWriter<String>, s: &String, c: &KafkaCommitter, k: &[KafkaCommittable]) {
    fn is_send<F: Send>(_: F) {}
    is_send(w.write(s));
    is_send(w.prepare_commit(1));
    is_send(w.flush());
    is_send(c.commit(k));
    let sink: KafkaSink<String> = KafkaSink::builder()
        .bootstrap_servers("x:1")
        .record_serializer(string_schema())
        .build()
        .unwrap();
    is_send(sink.restore_writer(0, 1, &SinkRestore::default()));
}

#[allow(dead_code)]
fn writer_is_send_and_sync() {
    fn is_send_sync<X: Send + Sync>() {}
    is_send_sync::<KafkaSinkWriter<String>>();
    is_send_sync::<KafkaSink<String>>();
    is_send_sync::<KafkaCommitter>();
    is_send_sync::<crate::checkpoint::FileCheckpointStore>();
}
