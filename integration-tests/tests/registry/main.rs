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

mod json_schema;
mod protobuf;
mod secured;

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
