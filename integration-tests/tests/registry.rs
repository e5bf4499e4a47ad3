//! strom-registry against a real schema registry (Apicurio Registry's Confluent-compatible
//! API, started by `scripts/schema-registry`) and the real broker: Avro records through the
//! registry serdes and the client's typed produce/consume, schema evolution, and each kind
//! of bad input as a typed error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use bytes::Bytes;
use strom_client::serialization::{Deserializer, Field, TypedProducer, TypedRecord, Utf8};
use strom_client::{Admin, ClientConfig, Consumer, ConsumerConfig, NewTopic, Producer, ProducerConfig, TopicPartition};
use strom_integration_tests::{broker, schema_registry, unique_topic};
use strom_registry::avro::Value;
use strom_registry::avro::{AvroDeserializer, AvroSchema, AvroSerializer};
use strom_registry::{CompatibilityLevel, ErrorKind, RegistryConfig, Schema, SchemaRegistryClient, SchemaType};

const USER_V1: &str = r#"{"type":"record","name":"User","namespace":"strom.test",
  "fields":[{"name":"name","type":"string"},{"name":"visits","type":"long"}]}"#;
const USER_V2: &str = r#"{"type":"record","name":"User","namespace":"strom.test",
  "fields":[{"name":"name","type":"string"},{"name":"visits","type":"long"},
            {"name":"country","type":"string","default":"unknown"}]}"#;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct UserV1 {
    name: String,
    visits: i64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct UserV2 {
    name: String,
    visits: i64,
    country: String,
}

fn registry(extra: &[(&str, &str)]) -> SchemaRegistryClient {
    let mut props = vec![("schema.registry.url", schema_registry())];
    props.extend_from_slice(extra);
    SchemaRegistryClient::new(RegistryConfig::from_properties(props).unwrap()).unwrap()
}

async fn topic(partitions: i32) -> String {
    let topic = unique_topic("registry");
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    admin.create_topics(&[NewTopic::new(&topic, partitions)]).await.unwrap();
    topic
}

async fn consume_all(topic: &str, n: usize) -> Vec<strom_client::ConsumerRecord> {
    let mut cc = ConsumerConfig::new(&broker().bootstrap);
    cc.set("auto.offset.reset", "earliest").unwrap();
    let mut consumer = Consumer::new(cc).await.unwrap();
    consumer.assign([TopicPartition::new(topic, 0)]).unwrap();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < n {
        assert!(Instant::now() < deadline, "consumed {} of {n}", out.len());
        out.extend(consumer.poll(Duration::from_millis(500)).await.unwrap());
    }
    out
}

#[tokio::test]
async fn avro_records_through_the_registry_and_the_broker() {
    let topic = topic(1).await;
    let registry = registry(&[]);
    let v1 = AvroSchema::parse(USER_V1).unwrap();

    // Typed produce: string keys, specific Avro values; the schema registers on first use.
    let producer = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    let typed = TypedProducer::new(
        producer.clone(),
        Utf8,
        AvroSerializer::new(registry.clone(), v1.clone()).specific::<UserV1>(),
    );
    let users: Vec<UserV1> = (0..50)
        .map(|i| UserV1 {
            name: format!("user-{i}"),
            visits: i * 1000,
        })
        .collect();
    let mut deliveries = Vec::new();
    for u in &users {
        deliveries.push(
            typed
                .send(TypedRecord::new(&topic, u.clone()).key(u.name.clone()))
                .await
                .unwrap(),
        );
    }
    for d in deliveries {
        d.await.unwrap();
    }
    let subject = format!("{topic}-value");
    assert!(registry.subjects().await.unwrap().contains(&subject));
    let latest = registry.latest(&subject).await.unwrap();
    assert_eq!(latest.schema.schema_type, SchemaType::Avro);

    // Read back: specific, generic, and the framing is Confluent's.
    let records = consume_all(&topic, users.len()).await;
    let specific = AvroDeserializer::new(registry.clone(), Some(v1.clone())).specific::<UserV1>();
    let generic = AvroDeserializer::new(registry.clone(), None);
    for (r, want) in records.iter().zip(&users) {
        let value = r.value.as_ref().unwrap();
        assert_eq!(value[0], 0, "magic byte");
        assert_eq!(i32::from_be_bytes(value[1..5].try_into().unwrap()), latest.id);
        let typed = r.deserialize(&Utf8, &specific).await.unwrap();
        assert_eq!(typed.key.as_deref(), Some(want.name.as_str()));
        assert_eq!(typed.value.as_ref(), Some(want));
        let g: Value = generic.deserialize(&topic, Field::Value, value).await.unwrap();
        assert_eq!(
            g,
            Value::Record(vec![
                ("name".into(), Value::String(want.name.clone())),
                ("visits".into(), Value::Long(want.visits)),
            ])
        );
    }
    producer.close().await.unwrap();
}

#[tokio::test]
async fn schema_evolution_reads_old_and_new_with_the_new_reader() {
    let topic = topic(1).await;
    let registry = registry(&[]);
    let subject = format!("{topic}-value");
    // Apicurio's default is NONE; Confluent's is BACKWARD, which this test relies on.
    registry
        .set_compatibility(Some(&subject), CompatibilityLevel::Backward)
        .await
        .unwrap();
    assert_eq!(
        registry.compatibility(Some(&subject)).await.unwrap(),
        CompatibilityLevel::Backward
    );
    let (v1, v2) = (AvroSchema::parse(USER_V1).unwrap(), AvroSchema::parse(USER_V2).unwrap());
    let producer = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    let old = TypedProducer::new(
        producer.clone(),
        Utf8,
        AvroSerializer::new(registry.clone(), v1).specific::<UserV1>(),
    );
    let new = TypedProducer::new(
        producer.clone(),
        Utf8,
        AvroSerializer::new(registry.clone(), v2.clone()).specific::<UserV2>(),
    );
    let a = UserV1 {
        name: "ann".into(),
        visits: 1,
    };
    let b = UserV2 {
        name: "bob".into(),
        visits: 2,
        country: "NO".into(),
    };
    old.send(TypedRecord::<String, _>::new(&topic, a.clone()))
        .await
        .unwrap()
        .await
        .unwrap();
    new.send(TypedRecord::<String, _>::new(&topic, b.clone()))
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(registry.versions(&subject).await.unwrap().len(), 2);

    let reader = AvroDeserializer::new(registry.clone(), Some(v2)).specific::<UserV2>();
    let records = consume_all(&topic, 2).await;
    let got: Vec<UserV2> = futures_util::future::join_all(
        records
            .iter()
            .map(|r| reader.deserialize(&topic, Field::Value, r.value.as_ref().unwrap())),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    assert_eq!(
        got,
        [
            UserV2 {
                name: "ann".into(),
                visits: 1,
                country: "unknown".into()
            },
            b
        ]
    );

    // An incompatible change (a new field without a default) is refused by the registry,
    // with its message, and the client tells so by kind.
    let bad = Schema::new(
        SchemaType::Avro,
        r#"{"type":"record","name":"User","namespace":"strom.test","fields":[{"name":"name","type":"string"},{"name":"email","type":"string"}]}"#,
    );
    let compat = registry.test_compatibility(&subject, None, &bad).await.unwrap();
    assert!(!compat.is_compatible);
    let e = registry.register(&subject, &bad).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Incompatible, "{e}");
    assert_eq!(e.status(), Some(409));
    assert!(e.url().unwrap().contains(&subject), "{e}");
    producer.close().await.unwrap();
}

#[tokio::test]
async fn bad_input_is_a_typed_error_never_a_panic() {
    let topic = unique_topic("registry-bad");
    let registry = registry(&[]);
    let v1 = AvroSchema::parse(USER_V1).unwrap();
    let ser = AvroSerializer::new(registry.clone(), v1.clone());
    let good = ser
        .encode(
            &topic,
            false,
            &UserV1 {
                name: "x".into(),
                visits: 1,
            },
        )
        .await
        .unwrap();
    let de = AvroDeserializer::new(registry.clone(), Some(v1));

    // Not framed, truncated, an id the registry never gave out.
    let e = de.decode_value(&topic, b"\x01\x00\x00\x00\x01abc").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialization);
    assert!(e.to_string().contains("magic byte 0x01"), "{e}");
    let e = de.decode_value(&topic, &good[..good.len() - 1]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialization, "{e}");
    let mut unknown = good.clone();
    unknown[1..5].copy_from_slice(&987_654_321i32.to_be_bytes());
    let e = de.decode_value(&topic, &unknown).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(e.schema_id(), Some(987_654_321));

    // As the client sees it: a Serialization error naming the record, the registry's error
    // as its source.
    let record = strom_client::ConsumerRecord {
        topic: topic.as_str().into(),
        partition: 2,
        offset: 41,
        timestamp: 0,
        timestamp_type: strom_client::TimestampType::CreateTime,
        leader_epoch: None,
        key: None,
        value: Some(Bytes::from(unknown)),
        headers: Default::default(),
    };
    let e = record.deserialize::<String, Value, _, _>(&Utf8, &de).await.unwrap_err();
    assert_eq!(e.kind(), strom_client::ErrorKind::Serialization);
    assert_eq!((e.partition(), e.offset()), (Some(2), Some(41)));
    let inner = std::error::Error::source(&e)
        .and_then(|s| s.downcast_ref::<strom_registry::Error>())
        .expect("the registry error is the source");
    assert_eq!(inner.schema_id(), Some(987_654_321));

    // A schema that does not parse: refused by the registry, and locally.
    let e = registry
        .register(
            &format!("{topic}-value"),
            &Schema::new(SchemaType::Avro, "{\"type\":\"recrod\"}"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(e.kind(), ErrorKind::InvalidSchema | ErrorKind::Registry),
        "{e}"
    );
    assert_eq!(
        AvroSchema::parse("{\"type\":").unwrap_err().kind(),
        ErrorKind::InvalidSchema
    );
}

/// A TCP proxy to the registry that the test can stop: the registry "going down" without
/// stopping the registry other tests share.
async fn proxy(target: &str) -> (String, tokio::task::JoinHandle<()>) {
    let authority = target
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let path = target
        .trim_start_matches("http://")
        .split_once('/')
        .map_or("", |(_, p)| p)
        .to_owned();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let (mut inbound, _) = listener.accept().await.unwrap();
            let authority = authority.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(&authority).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (format!("http://{addr}/{path}"), task)
}

#[tokio::test]
async fn registry_down_names_the_url_bounds_retries_and_cached_schemas_keep_working() {
    let topic = unique_topic("registry-down");
    let (url, proxy_task) = proxy(schema_registry()).await;
    let via_proxy = SchemaRegistryClient::new(
        RegistryConfig::from_properties([
            ("schema.registry.url", url.as_str()),
            ("max.retries", "2"),
            ("retries.wait.ms", "50"),
            ("http.connect.timeout.ms", "2000"),
        ])
        .unwrap(),
    )
    .unwrap();
    let v1 = AvroSchema::parse(USER_V1).unwrap();
    let ser = AvroSerializer::new(via_proxy.clone(), v1.clone());
    let de = AvroDeserializer::new(via_proxy.clone(), None);
    let user = UserV1 {
        name: "cached".into(),
        visits: 3,
    };
    let bytes = ser.encode(&topic, false, &user).await.unwrap();
    de.decode_value(&topic, &bytes).await.unwrap();

    // The registry goes away (nothing listens on the proxy's port any more); what is cached
    // makes no request and keeps working.
    proxy_task.abort();
    let _ = proxy_task.await;
    let again = ser.encode(&topic, false, &user).await.unwrap();
    assert_eq!(again, bytes, "the serializer's id is cached per topic");
    de.decode_value(&topic, &bytes).await.unwrap();

    // Something not cached: the error names the URL, after a bounded number of retries.
    let fresh = SchemaRegistryClient::new(
        RegistryConfig::from_properties([
            ("schema.registry.url", url.as_str()),
            ("max.retries", "2"),
            ("retries.wait.ms", "50"),
        ])
        .unwrap(),
    )
    .unwrap();
    let started = Instant::now();
    let e = fresh.subjects().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(e.is_retriable());
    assert!(e.to_string().contains(url.trim_end_matches('/')), "{e}");
    assert!(e.to_string().contains("gave up after 2 retries"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    // Two URLs, the first down: the second answers.
    let failover = SchemaRegistryClient::new(
        RegistryConfig::from_properties([
            ("schema.registry.url", format!("{url},{}", schema_registry()).as_str()),
            ("max.retries", "0"),
        ])
        .unwrap(),
    )
    .unwrap();
    assert!(failover.subjects().await.is_ok());
}

/// Runs integration-tests/python/confluent_serde.py (Confluent's Python serializers) with
/// `stdin`, returning its stdout lines; fails the test with its stderr.
///
/// Bounded at 60 s: Confluent's Python client has no request timeout by default, and the
/// registry drops the answer to about one request in a few hundred (it logs it, nothing
/// arrives), which once held the whole suite. The script sets a 10 s timeout, so the client
/// retries such a request; a run that still hangs is killed, and faulthandler prints where
/// Python was.
fn confluent(args: &[&str], stdin: &str) -> Vec<String> {
    let script = strom_integration_tests::repo_root().join("integration-tests/python/confluent_serde.py");
    let mut cmd = std::process::Command::new(strom_integration_tests::registry_python());
    cmd.arg(&script).args(args).env("PYTHONFAULTHANDLER", "1");
    let out = strom_integration_tests::output_within(cmd, stdin.as_bytes(), Duration::from_secs(60));
    assert!(
        out.status.success(),
        "confluent_serde.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn schema_file(text: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("{}.avsc", unique_topic("schema")));
    std::fs::write(&path, text).unwrap();
    path
}

fn users(n: i64) -> (Vec<UserV1>, String) {
    let users: Vec<UserV1> = (0..n)
        .map(|i| UserV1 {
            name: format!("ü-{i}"),
            visits: i * 7919 - 40,
        })
        .collect();
    let lines = users.iter().map(|u| serde_json::to_string(u).unwrap() + "\n").collect();
    (users, lines)
}

#[tokio::test]
async fn confluent_python_and_strom_frame_avro_byte_for_byte() {
    let topic = unique_topic("registry-bytes");
    let (users, lines) = users(20);
    let file = schema_file(USER_V1);
    let theirs = confluent(
        &["serialize", schema_registry(), &topic, file.to_str().unwrap()],
        &lines,
    );
    let ser = AvroSerializer::new(registry(&[]), AvroSchema::parse(USER_V1).unwrap());
    for (u, hex) in users.iter().zip(&theirs) {
        let ours = ser.encode(&topic, false, u).await.unwrap();
        let ours_hex: String = ours.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(&ours_hex, hex, "{u:?}");
    }
    assert_eq!(theirs.len(), users.len());
}

#[tokio::test]
async fn confluent_python_writes_what_strom_reads_and_reads_what_strom_writes() {
    let file = schema_file(USER_V1);
    let (users, lines) = users(30);

    // Confluent's producer and serializer -> Strom's consumer and deserializer.
    let topic = topic(1).await;
    confluent(
        &[
            "produce",
            &broker().bootstrap,
            schema_registry(),
            &topic,
            file.to_str().unwrap(),
        ],
        &lines,
    );
    let de = AvroDeserializer::new(registry(&[]), None).specific::<UserV1>();
    let records = consume_all(&topic, users.len()).await;
    for (r, want) in records.iter().zip(&users) {
        let typed = r.deserialize(&Utf8, &de).await.unwrap();
        assert_eq!(typed.key.as_deref(), Some(want.name.as_str()));
        assert_eq!(typed.value.as_ref(), Some(want));
    }

    // Strom's producer and serializer -> Confluent's consumer and deserializer.
    let topic = self::topic(1).await;
    let producer = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    let typed = TypedProducer::new(
        producer.clone(),
        Utf8,
        AvroSerializer::new(registry(&[]), AvroSchema::parse(USER_V1).unwrap()).specific::<UserV1>(),
    );
    for u in &users {
        typed
            .send(TypedRecord::new(&topic, u.clone()).key(u.name.clone()))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    producer.close().await.unwrap();
    let read = confluent(
        &[
            "consume",
            &broker().bootstrap,
            schema_registry(),
            &topic,
            &users.len().to_string(),
        ],
        "",
    );
    let read: Vec<UserV1> = read.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(read, users);
}

// --- JSON Schema --------------------------------------------------------------------------

const USER_JSON: &str = r#"{"title":"User","type":"object","properties":{
  "name":{"type":"string","minLength":1},"visits":{"type":"integer","minimum":-1000}},
  "required":["name","visits"],"additionalProperties":false}"#;

#[tokio::test]
async fn json_schema_byte_for_byte_with_confluent_and_both_ways_through_the_broker() {
    use strom_registry::json::{JsonSchema, JsonSchemaDeserializer, JsonSchemaSerializer};
    let file = std::env::temp_dir().join(format!("{}.json", unique_topic("schema")));
    std::fs::write(&file, USER_JSON).unwrap();
    let (users, lines) = users(10);

    // Same framing and bytes as Confluent's JSONSerializer.
    let topic = unique_topic("registry-json-bytes");
    let theirs = confluent(
        &[
            "serialize",
            schema_registry(),
            &topic,
            file.to_str().unwrap(),
            "--format",
            "json",
        ],
        &lines,
    );
    let ser = JsonSchemaSerializer::<UserV1>::new(registry(&[]), JsonSchema::parse(USER_JSON).unwrap());
    for (u, hex) in users.iter().zip(&theirs) {
        let ours: String = ser
            .encode(&topic, false, u)
            .await
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(&ours, hex);
    }

    // Confluent -> Strom.
    let topic = self::topic(1).await;
    confluent(
        &[
            "produce",
            &broker().bootstrap,
            schema_registry(),
            &topic,
            file.to_str().unwrap(),
            "--format",
            "json",
        ],
        &lines,
    );
    let de = JsonSchemaDeserializer::<UserV1>::new(registry(&[("json.fail.invalid.schema", "true")]));
    for (r, want) in consume_all(&topic, users.len()).await.iter().zip(&users) {
        assert_eq!(r.deserialize(&Utf8, &de).await.unwrap().value.as_ref(), Some(want));
    }

    // Strom -> Confluent.
    let topic = self::topic(1).await;
    let producer = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    let typed = TypedProducer::new(producer.clone(), Utf8, ser.clone());
    for u in &users {
        typed
            .send(TypedRecord::new(&topic, u.clone()).key(u.name.clone()))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    producer.close().await.unwrap();
    let read = confluent(
        &[
            "consume",
            &broker().bootstrap,
            schema_registry(),
            &topic,
            &users.len().to_string(),
            "--format",
            "json",
        ],
        "",
    );
    let read: Vec<UserV1> = read.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(read, users);
}

#[tokio::test]
async fn json_schema_refuses_invalid_values_both_ways() {
    use strom_registry::json::{JsonSchema, JsonSchemaDeserializer, JsonSchemaSerializer};
    let topic = unique_topic("registry-json-bad");
    let ser = JsonSchemaSerializer::<serde_json::Value>::new(registry(&[]), JsonSchema::parse(USER_JSON).unwrap());
    let e = ser
        .encode(
            &topic,
            false,
            &serde_json::json!({"name": "", "visits": "many", "extra": 1}),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialization);
    let msg = e.to_string();
    assert!(
        msg.contains("/name") && msg.contains("/visits") && msg.contains("extra"),
        "{msg}"
    );
    assert!(e.schema_id().is_some());

    // A valid record, then the same id with an invalid payload: the validating deserializer
    // refuses it, the default one reads it (as Confluent's, json.fail.invalid.schema=false).
    let good = ser
        .encode(&topic, false, &serde_json::json!({"name": "a", "visits": 1}))
        .await
        .unwrap();
    let mut bad = good[..5].to_vec();
    bad.extend_from_slice(br#"{"name":"","visits":1}"#);
    let strict = JsonSchemaDeserializer::<serde_json::Value>::new(registry(&[("json.fail.invalid.schema", "true")]));
    assert!(strict.decode(&topic, &good).await.is_ok());
    assert_eq!(
        strict.decode(&topic, &bad).await.unwrap_err().kind(),
        ErrorKind::Serialization
    );
    let lenient = JsonSchemaDeserializer::<serde_json::Value>::new(registry(&[]));
    assert_eq!(lenient.decode(&topic, &bad).await.unwrap()["name"], "");
    // An Avro schema's id is not JSON: refused by kind.
    let avro = AvroSerializer::new(registry(&[]), AvroSchema::parse(USER_V1).unwrap())
        .encode(
            &topic,
            true,
            &UserV1 {
                name: "x".into(),
                visits: 1,
            },
        )
        .await
        .unwrap();
    let e = lenient.decode(&topic, &avro).await.unwrap_err();
    assert!(e.to_string().contains("not JSON"), "{e}");
}

// --- Protobuf -----------------------------------------------------------------------------

const SHOP_PROTO: &str = r#"syntax = "proto3";
package strom.shop;
import "strom_common.proto";
message Order {
  int64 id = 1;
  string item = 2;
  strom.common.Money price = 3;
  message Line { string sku = 1; int32 qty = 2; }
  repeated Line lines = 4;
}
"#;
const COMMON_PROTO: &str =
    "syntax = \"proto3\"; package strom.common; message Money { int64 cents = 1; string currency = 2; }";

fn orders_json(n: i64) -> Vec<serde_json::Value> {
    (0..n)
        .map(|i| {
            serde_json::json!({
                "id": (i * 1_000_003).to_string(),
                "item": format!("ü-{i}"),
                "price": {"cents": (i * 99).to_string(), "currency": "NOK"},
                "lines": (0..i % 3).map(|k| serde_json::json!({"sku": format!("s{k}"), "qty": k + 1})).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Runs a Protobuf mode of confluent_serde.py with the schema's descriptor set.
fn confluent_proto(schema: &strom_registry::protobuf::ProtobufSchema, mode_args: &[&str], stdin: &str) -> Vec<String> {
    let set = std::env::temp_dir().join(format!("{}.desc", unique_topic("fds")));
    std::fs::write(&set, schema.pool().encode_to_vec()).unwrap();
    let mut args: Vec<&str> = mode_args.to_vec();
    args.push(set.to_str().unwrap());
    args.extend(["--format", "protobuf", "--message", "strom.shop.Order"]);
    confluent(&args, stdin)
}

fn dynamic(
    schema: &strom_registry::protobuf::ProtobufSchema,
    json: &serde_json::Value,
) -> strom_registry::protobuf::DynamicMessage {
    let desc = schema.message("strom.shop.Order").unwrap();
    strom_registry::protobuf::DynamicMessage::deserialize(desc, json.clone()).unwrap()
}

/// Messages compared by their encoding: the same type compiled twice (from Strom's text and
/// from the registry's copy) gives two descriptor pools, which `==` tells apart.
fn encoded(m: &strom_registry::protobuf::DynamicMessage) -> Vec<u8> {
    strom_registry::protobuf::prost::Message::encode_to_vec(m)
}

#[tokio::test]
async fn protobuf_interop_with_confluents_python_serializer() {
    use strom_registry::protobuf::{ProtobufDeserializer, ProtobufSchema, ProtobufSerializer};
    let schema = ProtobufSchema::with_references(
        Schema::new(SchemaType::Protobuf, SHOP_PROTO).reference("strom_common.proto", "strom_common.proto", 1),
        &[(
            "strom_common.proto".into(),
            Schema::new(SchemaType::Protobuf, COMMON_PROTO),
        )],
    )
    .unwrap();
    let orders = orders_json(12);
    let lines: String = orders.iter().map(|o| o.to_string() + "\n").collect();

    // Byte for byte: Confluent's serializer registers first (its schema: a base64 descriptor
    // with its imports as references); Strom writes with that latest version's id.
    let topic = unique_topic("registry-proto-bytes");
    let theirs = confluent_proto(&schema, &["serialize", schema_registry(), &topic], &lines);
    let ser = ProtobufSerializer::new(
        registry(&[("auto.register.schemas", "false"), ("use.latest.version", "true")]),
        schema.clone(),
        schema.message("strom.shop.Order").unwrap(),
    )
    .unwrap();
    for (o, hex) in orders.iter().zip(&theirs) {
        let ours: String = ser
            .encode_dynamic(&topic, false, &dynamic(&schema, o))
            .await
            .unwrap()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(&ours, hex, "{o}");
    }
    // Strom reads Confluent's registered schema (base64 descriptor, references) by id.
    let de = ProtobufDeserializer::new(registry(&[]));
    let bytes: Vec<u8> = (0..theirs[1].len() / 2)
        .map(|i| u8::from_str_radix(&theirs[1][2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert_eq!(
        encoded(&de.decode_dynamic(&topic, &bytes).await.unwrap()),
        encoded(&dynamic(&schema, &orders[1]))
    );

    // Confluent -> broker -> Strom.
    let topic = self::topic(1).await;
    confluent_proto(
        &schema,
        &["produce", &broker().bootstrap, schema_registry(), &topic],
        &lines,
    );
    for (r, want) in consume_all(&topic, orders.len()).await.iter().zip(&orders) {
        let got = de.decode_dynamic(&topic, r.value.as_ref().unwrap()).await.unwrap();
        assert_eq!(encoded(&got), encoded(&dynamic(&schema, want)));
    }

    // Strom (its own .proto text registered) -> broker -> Confluent.
    let topic = self::topic(1).await;
    let common_id = registry(&[])
        .register("strom_common.proto", &Schema::new(SchemaType::Protobuf, COMMON_PROTO))
        .await
        .unwrap();
    assert!(common_id > 0);
    let ser = ProtobufSerializer::new(
        registry(&[]),
        schema.clone(),
        schema.message("strom.shop.Order").unwrap(),
    )
    .unwrap();
    let producer = Producer::new(ProducerConfig::new(&broker().bootstrap)).await.unwrap();
    let typed = TypedProducer::new(producer.clone(), Utf8, ser);
    for o in &orders {
        typed
            .send(TypedRecord::new(&topic, dynamic(&schema, o)).key(o["id"].to_string()))
            .await
            .unwrap()
            .await
            .unwrap();
    }
    producer.close().await.unwrap();
    let read = confluent_proto(
        &schema,
        &[
            "consume",
            &broker().bootstrap,
            schema_registry(),
            &topic,
            &orders.len().to_string(),
        ],
        "",
    );
    for (line, want) in read.iter().zip(&orders) {
        let got: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(
            encoded(&dynamic(&schema, &got)),
            encoded(&dynamic(&schema, want)),
            "{line}"
        );
    }
    assert_eq!(read.len(), orders.len());
}

#[tokio::test]
async fn protobuf_bad_input_is_a_typed_error() {
    use strom_registry::protobuf::{ProtobufDeserializer, ProtobufSchema, ProtobufSerializer};
    let topic = unique_topic("registry-proto-bad");
    let schema = ProtobufSchema::parse(COMMON_PROTO).unwrap();
    let ser = ProtobufSerializer::new(registry(&[]), schema.clone(), schema.first_message().unwrap()).unwrap();
    let mut m = strom_registry::protobuf::DynamicMessage::new(schema.first_message().unwrap());
    m.set_field_by_name(
        "currency",
        strom_registry::protobuf::prost_reflect::Value::String("EUR".into()),
    );
    let good = ser.encode_dynamic(&topic, false, &m).await.unwrap();
    assert_eq!(good[5], 0, "message index [0] is the single byte 0");
    let de = ProtobufDeserializer::new(registry(&[]));
    assert_eq!(encoded(&de.decode_dynamic(&topic, &good).await.unwrap()), encoded(&m));
    // A message index the schema does not have; a truncated payload; the wrong message type.
    let mut bad_index = good[..5].to_vec();
    bad_index.extend_from_slice(&[2, 6]);
    bad_index.extend_from_slice(&good[6..]);
    let e = de.decode_dynamic(&topic, &bad_index).await.unwrap_err();
    assert!(e.to_string().contains("indexes [3]"), "{e}");
    let e = de.decode_dynamic(&topic, &good[..good.len() - 1]).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialization, "{e}");
    let other = ProtobufSchema::parse("syntax = \"proto3\"; message Other { int32 x = 1; }").unwrap();
    let wrong = strom_registry::protobuf::DynamicMessage::new(other.first_message().unwrap());
    assert!(ser.encode_dynamic(&topic, false, &wrong).await.is_err());
}

/// Avro references through the registry: `Address` registered under its own subject,
/// `Person` registered with a reference to it; the serializer writes with both, the
/// deserializer fetches the writer schema by id and its reference by subject and version.
#[tokio::test]
async fn avro_references_resolve_through_the_registry() {
    let registry = registry(&[]);
    let address_subject = unique_topic("strom.test.Address");
    let address = Schema::new(
        SchemaType::Avro,
        r#"{"type":"record","name":"Address","namespace":"strom.test","fields":[{"name":"city","type":"string"}]}"#,
    );
    registry.register(&address_subject, &address).await.unwrap();
    let person = Schema::new(
        SchemaType::Avro,
        r#"{"type":"record","name":"Person","namespace":"strom.test","fields":[{"name":"name","type":"string"},{"name":"home","type":"strom.test.Address"}]}"#,
    )
    .reference("strom.test.Address", &address_subject, 1);
    let schema = AvroSchema::resolve(&registry, person).await.unwrap();

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Address {
        city: String,
    }
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Person {
        name: String,
        home: Address,
    }
    let topic = unique_topic("registry-refs");
    let p = Person {
        name: "ann".into(),
        home: Address { city: "Oslo".into() },
    };
    let bytes = AvroSerializer::new(registry.clone(), schema)
        .encode(&topic, false, &p)
        .await
        .unwrap();
    let latest = registry.latest(&format!("{topic}-value")).await.unwrap();
    assert_eq!(latest.schema.references.len(), 1, "registered with its reference");
    // A fresh client: nothing cached, the reference comes from the registry.
    let fresh = AvroDeserializer::new(self::registry(&[]), None);
    let back: Person = fresh.decode(&topic, &bytes).await.unwrap();
    assert_eq!(back, p);
    let generic = fresh.decode_value(&topic, &bytes).await.unwrap();
    assert!(matches!(generic, strom_registry::avro::Value::Record(_)));
}

/// A registry instance of its own on ports 28281 (HTTP) and 28282 (HTTPS, the broker
/// harness's server certificate for 127.0.0.1 and localhost), stopped on drop.
struct TlsRegistry;

impl TlsRegistry {
    fn env() -> Vec<(&'static str, String)> {
        let tls = |f: &str| {
            format!(
                "{}/{f}",
                std::path::Path::new(broker().var("STROM_SSL_CA_LOCATION"))
                    .parent()
                    .unwrap()
                    .display()
            )
        };
        vec![
            ("STROM_SCHEMA_REGISTRY_PORT", "28281".into()),
            (
                "STROM_SCHEMA_REGISTRY_OVERRIDES",
                format!(
                    "quarkus.http.ssl-port=28282 quarkus.http.ssl.certificate.files={} quarkus.http.ssl.certificate.key-files={}",
                    tls("broker.pem"),
                    tls("broker.key")
                ),
            ),
        ]
    }

    fn start() -> Self {
        let out = std::process::Command::new(strom_integration_tests::repo_root().join("scripts/schema-registry"))
            .arg("up")
            .envs(Self::env())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        TlsRegistry
    }
}

impl Drop for TlsRegistry {
    fn drop(&mut self) {
        let _ = std::process::Command::new(strom_integration_tests::repo_root().join("scripts/schema-registry"))
            .arg("down")
            .envs(Self::env())
            .output();
    }
}

#[tokio::test]
async fn https_with_a_pem_truststore_and_a_refused_certificate() {
    let _registry = TlsRegistry::start();
    let ca = broker().var("STROM_SSL_CA_LOCATION").to_owned();
    let url = "https://localhost:28282/apis/ccompat/v7";
    let client = SchemaRegistryClient::new(
        RegistryConfig::from_properties([
            ("schema.registry.url", url),
            ("schema.registry.ssl.truststore.location", ca.as_str()),
            ("schema.registry.ssl.truststore.type", "PEM"),
        ])
        .unwrap(),
    )
    .unwrap();
    let topic = unique_topic("registry-tls");
    let ser = AvroSerializer::new(client.clone(), AvroSchema::parse(USER_V1).unwrap());
    let user = UserV1 {
        name: "tls".into(),
        visits: 1,
    };
    let bytes = ser.encode(&topic, false, &user).await.unwrap();
    let back: UserV1 = AvroDeserializer::new(client.clone(), None)
        .decode(&topic, &bytes)
        .await
        .unwrap();
    assert_eq!(back, user);
    // The same address by IP (the certificate names it too).
    let by_ip = SchemaRegistryClient::new(
        RegistryConfig::from_properties([
            ("schema.registry.url", "https://127.0.0.1:28282/apis/ccompat/v7"),
            ("schema.registry.ssl.truststore.location", ca.as_str()),
        ])
        .unwrap(),
    )
    .unwrap();
    assert!(by_ip.subjects().await.unwrap().contains(&format!("{topic}-value")));

    // Without the CA (the system's roots only) the certificate is refused: an
    // authentication error naming the URL, not retried as if the registry were down.
    let untrusted = SchemaRegistryClient::new(
        RegistryConfig::from_properties([("schema.registry.url", url), ("retries.wait.ms", "10")]).unwrap(),
    )
    .unwrap();
    let started = Instant::now();
    let e = untrusted.subjects().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Authentication, "{e}");
    assert!(e.to_string().contains("localhost:28282"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // A truststore file that is not there: a config error at construction.
    let e = SchemaRegistryClient::new(
        RegistryConfig::from_properties([
            ("schema.registry.url", url),
            ("schema.registry.ssl.truststore.location", "/nonexistent/ca.pem"),
        ])
        .unwrap(),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidConfig);
}

/// A prost-generated type (here derived by hand, as prost-build would) through the
/// Protobuf serde: `encode::<M>` and `decode::<M>`, framed with the schema's message indexes.
#[tokio::test]
async fn protobuf_with_a_prost_type() {
    use strom_registry::protobuf::{ProtobufDeserializer, ProtobufSchema, ProtobufSerializer};

    #[derive(Clone, PartialEq, prost::Message)]
    struct Money {
        #[prost(int64, tag = "1")]
        cents: i64,
        #[prost(string, tag = "2")]
        currency: String,
    }
    let topic = unique_topic("registry-prost");
    let schema = ProtobufSchema::parse(COMMON_PROTO).unwrap();
    let ser = ProtobufSerializer::new(
        registry(&[]),
        schema.clone(),
        schema.message("strom.common.Money").unwrap(),
    )
    .unwrap();
    let m = Money {
        cents: 1999,
        currency: "NOK".into(),
    };
    let bytes = ser.encode(&topic, false, &m).await.unwrap();
    let de = ProtobufDeserializer::new(registry(&[]));
    assert_eq!(de.decode::<Money>(&topic, &bytes).await.unwrap(), m);
    // The same bytes read dynamically: the fields by name.
    let dynamic = de.decode_dynamic(&topic, &bytes).await.unwrap();
    assert_eq!(dynamic.get_field_by_name("cents").unwrap().as_i64(), Some(1999));
}

/// `use.latest.version`: the serializer writes with the subject's latest schema, and follows
/// a new version once `latest.cache.ttl.sec` has passed (0 here: every record asks).
#[tokio::test]
async fn use_latest_version_follows_the_subject() {
    let topic = unique_topic("registry-latest");
    let subject = format!("{topic}-value");
    let admin_client = registry(&[]);
    let v1 = admin_client
        .register(&subject, &Schema::new(SchemaType::Avro, USER_V1))
        .await
        .unwrap();
    let client = registry(&[
        ("auto.register.schemas", "false"),
        ("use.latest.version", "true"),
        ("latest.cache.ttl.sec", "0"),
    ]);
    // Its own schema is v2, but it writes with the subject's latest (v1): v1's id and fields.
    let ser = AvroSerializer::new(client.clone(), AvroSchema::parse(USER_V2).unwrap());
    let v = strom_registry::avro::Value::Record(vec![
        ("name".into(), strom_registry::avro::Value::String("a".into())),
        ("visits".into(), strom_registry::avro::Value::Long(1)),
    ]);
    let first = ser.encode_value(&topic, false, &v).await.unwrap();
    assert_eq!(i32::from_be_bytes(first[1..5].try_into().unwrap()), v1);
    let again = ser.encode_value(&topic, false, &v).await.unwrap();
    assert_eq!(again, first);
    // A new latest version: the next record is written with it (id and defaults).
    let v2 = admin_client
        .register(&subject, &Schema::new(SchemaType::Avro, USER_V2))
        .await
        .unwrap();
    assert_ne!(v1, v2);
    let with_v2 = UserV2 {
        name: "b".into(),
        visits: 2,
        country: "SE".into(),
    };
    let bytes = ser.encode(&topic, false, &with_v2).await.unwrap();
    assert_eq!(i32::from_be_bytes(bytes[1..5].try_into().unwrap()), v2);
    let back: UserV2 = AvroDeserializer::new(client, None)
        .decode(&topic, &bytes)
        .await
        .unwrap();
    assert_eq!(back, with_v2);
}

/// A registry instance of its own that requires authentication, on port 28381: HTTP basic
/// for one user, and bearer tokens (RS256 JWTs) signed by a key made here, which the
/// registry verifies itself (scripts/schema-registry's STROM_SCHEMA_REGISTRY_BASIC_AUTH and
/// _JWT_PUBLIC_KEY). Stopped on drop.
struct AuthRegistry {
    dir: std::path::PathBuf,
}

const AUTH_URL: &str = "http://127.0.0.1:28381/apis/ccompat/v7";
const AUTH_USER: &str = "strom-user";
const AUTH_PASSWORD: &str = "pw-9f2c-not-in-logs";

impl AuthRegistry {
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("STROM_SCHEMA_REGISTRY_PORT", "28381".into()),
            (
                "STROM_SCHEMA_REGISTRY_BASIC_AUTH",
                format!("{AUTH_USER}:{AUTH_PASSWORD}"),
            ),
            (
                "STROM_SCHEMA_REGISTRY_JWT_PUBLIC_KEY",
                self.dir.join("pub.pem").display().to_string(),
            ),
        ]
    }

    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("strom-registry-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl")
                .args(args)
                .current_dir(&dir)
                .output()
                .unwrap_or_else(|e| panic!("openssl (apt-get install openssl) could not run: {e}"));
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "key.pem",
        ]);
        openssl(&["pkey", "-in", "key.pem", "-pubout", "-out", "pub.pem"]);
        let registry = AuthRegistry { dir };
        let out = std::process::Command::new(strom_integration_tests::repo_root().join("scripts/schema-registry"))
            .arg("up")
            .envs(registry.env())
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        registry
    }

    /// A JWT for `sub`, valid for `valid_secs` from now (negative: already expired), signed
    /// with the key the registry trusts, or with a key of its own when `foreign`.
    fn token(&self, sub: &str, valid_secs: i64, foreign: bool) -> String {
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let header = b64(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = b64(format!(
            r#"{{"sub":"{sub}","preferred_username":"{sub}","iss":"strom-tests","iat":{now},"exp":{}}}"#,
            now + valid_secs
        )
        .as_bytes());
        let signing_input = format!("{header}.{claims}");
        let key = if foreign {
            let out = std::process::Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    "other.pem",
                ])
                .current_dir(&self.dir)
                .output()
                .unwrap();
            assert!(out.status.success());
            "other.pem"
        } else {
            "key.pem"
        };
        let mut sign = std::process::Command::new("openssl")
            .args(["dgst", "-sha256", "-sign", key])
            .current_dir(&self.dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write as _;
        sign.stdin.take().unwrap().write_all(signing_input.as_bytes()).unwrap();
        let out = sign.wait_with_output().unwrap();
        assert!(out.status.success());
        format!("{signing_input}.{}", b64(&out.stdout))
    }
}

impl Drop for AuthRegistry {
    fn drop(&mut self) {
        let _ = std::process::Command::new(strom_integration_tests::repo_root().join("scripts/schema-registry"))
            .arg("down")
            .envs(self.env())
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Basic auth (USER_INFO and URL user info) and bearer tokens against a registry that
/// requires them: records go through with the right credentials; a wrong password, no
/// credentials, an expired token or one signed by another key are Authentication errors at
/// once (never retried as if the registry were down) that never show the secret.
#[tokio::test]
async fn basic_and_bearer_auth_against_a_registry_that_requires_them() {
    let registry = AuthRegistry::start();
    let client = |props: &[(&str, &str)]| {
        SchemaRegistryClient::new(RegistryConfig::from_properties(props.iter().copied()).unwrap()).unwrap()
    };
    let user_info = format!("{AUTH_USER}:{AUTH_PASSWORD}");
    let url_with_user = format!("http://{AUTH_USER}:{AUTH_PASSWORD}@127.0.0.1:28381/apis/ccompat/v7");
    let good_token = registry.token(AUTH_USER, 600, false);
    let round_trip = |c: SchemaRegistryClient, how: &'static str| async move {
        let topic = unique_topic(&format!("registry-auth-{how}"));
        let user = UserV1 {
            name: how.into(),
            visits: 7,
        };
        let bytes = AvroSerializer::new(c.clone(), AvroSchema::parse(USER_V1).unwrap())
            .encode(&topic, false, &user)
            .await
            .unwrap_or_else(|e| panic!("{how}: {e}"));
        let back: UserV1 = AvroDeserializer::new(c.clone(), None)
            .decode(&topic, &bytes)
            .await
            .unwrap_or_else(|e| panic!("{how}: {e}"));
        assert_eq!(back, user, "{how}");
        assert!(c.subjects().await.unwrap().contains(&format!("{topic}-value")), "{how}");
    };
    round_trip(
        client(&[
            ("schema.registry.url", AUTH_URL),
            ("basic.auth.credentials.source", "USER_INFO"),
            ("basic.auth.user.info", &user_info),
        ]),
        "user-info",
    )
    .await;
    round_trip(
        client(&[
            ("schema.registry.url", &url_with_user),
            ("basic.auth.credentials.source", "URL"),
        ]),
        "url",
    )
    .await;
    round_trip(
        client(&[
            ("schema.registry.url", AUTH_URL),
            ("bearer.auth.credentials.source", "STATIC_TOKEN"),
            ("bearer.auth.token", &good_token),
        ]),
        "bearer",
    )
    .await;

    let wrong_password = format!("{AUTH_USER}:not-{AUTH_PASSWORD}");
    let expired = registry.token(AUTH_USER, -120, false);
    let foreign = registry.token(AUTH_USER, 600, true);
    let refused: [(&str, Vec<(&str, &str)>); 4] = [
        (
            "a wrong password",
            vec![
                ("basic.auth.credentials.source", "USER_INFO"),
                ("basic.auth.user.info", &wrong_password),
            ],
        ),
        ("no credentials", vec![]),
        (
            "an expired token",
            vec![
                ("bearer.auth.credentials.source", "STATIC_TOKEN"),
                ("bearer.auth.token", &expired),
            ],
        ),
        (
            "a token signed by another key",
            vec![
                ("bearer.auth.credentials.source", "STATIC_TOKEN"),
                ("bearer.auth.token", &foreign),
            ],
        ),
    ];
    for (what, extra) in refused {
        let mut props = vec![("schema.registry.url", AUTH_URL), ("retries.wait.ms", "10")];
        props.extend(extra);
        let c = client(&props);
        let started = Instant::now();
        let e = c.subjects().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Authentication, "{what}: {e}");
        assert!(started.elapsed() < Duration::from_secs(5), "{what}: {e}");
        let shown = format!("{e} {e:?} {c:?}");
        assert!(shown.contains("28381"), "{what}: names the registry: {e}");
        for secret in [AUTH_PASSWORD, &expired, &foreign, &good_token] {
            assert!(!shown.contains(secret), "{what}: a secret in {shown}");
        }
    }
}
