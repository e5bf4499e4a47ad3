//! An exactly-once pipeline over Confluent-framed Avro, crash-tested: topic A holds `Order`
//! records written through the schema registry; the pipeline (this test binary re-executed
//! in child mode) reads them with `avro_confluent_registry_specific`, turns each into an
//! `OrderOut` (another schema: a field renamed, one computed) and writes Confluent Avro to B
//! through `AvroSerialization::confluent_registry`, in transactions. The child is killed
//! again and again (SIGKILL at random times and crashes injected at the checkpoint stages)
//! and restarted from its file checkpoints until it reaches the end of A. Then B is read
//! with read_committed and decoded through the registry: every order exactly once, with
//! the writer schema B's subject holds.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use strom_client::serialization::{TypedProducer, TypedRecord, Utf8};
use strom_client::{
    Admin, ClientConfig, Consumer, ConsumerConfig, IsolationLevel, NewTopic, Producer, ProducerConfig, TopicPartition,
};
use strom_connector::checkpoint::FileCheckpointStore;
use strom_connector::pipeline::{Pipeline, CRASH_AT_ENV};
use strom_connector::sink::{AvroSerialization, DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink};
use strom_connector::source::{deserializer, KafkaSource, OffsetsInitializer};
use strom_integration_tests::{
    broker, child_env as env, child_runtime, schema_registry, unique_topic, wait_no_open_transaction,
};
use strom_registry::avro::{AvroDeserializer, AvroSchema, AvroSerializer};
use strom_registry::{RegistryConfig, SchemaRegistryClient};

const CHILD_ENV: &str = "STROM_AVRO_PIPELINE_CHILD";
const PARTITIONS: i32 = 2;

const ORDER: &str = r#"{"type":"record","name":"Order","namespace":"shop","fields":[
  {"name":"id","type":"long"},{"name":"item","type":"string"},{"name":"cents","type":"int"}]}"#;
const ORDER_OUT: &str = r#"{"type":"record","name":"OrderOut","namespace":"shop.out","fields":[
  {"name":"id","type":"long"},{"name":"product","type":"string"},
  {"name":"euros","type":"double"},{"name":"expensive","type":"boolean"}]}"#;

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct Order {
    id: i64,
    item: String,
    cents: i32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct OrderOut {
    id: i64,
    product: String,
    euros: f64,
    expensive: bool,
}

fn transform(o: Order) -> OrderOut {
    OrderOut {
        id: o.id,
        product: o.item.to_uppercase(),
        euros: f64::from(o.cents) / 100.0,
        expensive: o.cents > 5000,
    }
}

fn registry(url: &str) -> SchemaRegistryClient {
    SchemaRegistryClient::new(RegistryConfig::new(url).unwrap()).unwrap()
}

async fn child_pipeline() -> strom_connector::Result<()> {
    let bootstrap = env("STROM_AVRO_BOOTSTRAP");
    let output = env("STROM_AVRO_OUTPUT");
    let registry = registry(&env("STROM_AVRO_REGISTRY"));
    let source = KafkaSource::builder()
        .bootstrap_servers(&bootstrap)
        .topics([env("STROM_AVRO_INPUT")])
        .property("isolation.level", "read_committed")
        .bounded(OffsetsInitializer::latest())
        .deserializer(deserializer::avro_confluent_registry_specific::<Order>(
            registry.clone(),
            AvroSchema::parse(ORDER).unwrap(),
        ))
        .build()?;
    let value = AvroSerialization::confluent_registry(
        &registry,
        &format!("{output}-value"),
        AvroSchema::parse(ORDER_OUT).unwrap(),
    )
    .await?
    .specific::<OrderOut>();
    let sink = KafkaSink::<OrderOut>::builder()
        .bootstrap_servers(&bootstrap)
        .record_serializer(
            KafkaRecordSerializationSchema::builder()
                .topic(&output)
                .value_serializer(value)
                .build()?,
        )
        .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
        .transactional_id_prefix(format!("avro-{output}"))
        .property("linger.ms", "5")
        .transaction_timeout(Duration::from_secs(600))
        .build()?;
    let mut n = 0u64;
    let summary = Pipeline::new(source, sink)
        .map(move |o: Order| {
            // About 4,000 records/s, so kills land before the end.
            n += 1;
            if n.is_multiple_of(40) {
                std::thread::sleep(Duration::from_millis(10));
            }
            transform(o)
        })
        .checkpoint_interval(Duration::from_millis(200))
        .checkpoint_store(FileCheckpointStore::new(env("STROM_AVRO_DIR"))?)
        .run()
        .await?;
    println!("child done: in={} out={}", summary.records_in, summary.records_out);
    Ok(())
}

/// Child-process entry point; does nothing in a normal test run.
#[test]
fn avro_pipeline_child() {
    let Some(rt) = child_runtime(CHILD_ENV) else {
        return;
    };
    let code = match rt.block_on(child_pipeline()) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("child pipeline failed: {e}");
            3
        }
    };
    std::process::exit(code);
}

fn spawn(vars: &[(&str, String)], crash_at: Option<&str>, log: &std::path::Path) -> std::process::Child {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["avro_pipeline_child", "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD_ENV, "1")
        .env_remove(CRASH_AT_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err));
    for (k, v) in vars {
        cmd.env(k, v);
    }
    if let Some(c) = crash_at {
        cmd.env(CRASH_AT_ENV, c);
    }
    cmd.spawn().unwrap()
}

async fn wait(child: &mut std::process::Child, within: Duration, log: &std::path::Path) -> std::process::ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return st;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "child did not exit within {within:?}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_exactly_once_pipeline_survives_crashes() {
    const RECORDS: i64 = 20_000;
    let started = Instant::now();
    let admin = Admin::connect(ClientConfig::new(&broker().bootstrap)).await.unwrap();
    let input = unique_topic("avro-eo-in");
    let output = unique_topic("avro-eo-out");
    admin
        .create_topics(&[NewTopic::new(&input, PARTITIONS), NewTopic::new(&output, PARTITIONS)])
        .await
        .unwrap();
    let url = schema_registry().to_owned();

    // Topic A: orders through the registry serializer.
    let mut pc = ProducerConfig::new(&broker().bootstrap);
    pc.set("linger.ms", "10").unwrap();
    let producer = Producer::new(pc).await.unwrap();
    let typed = TypedProducer::new(
        producer.clone(),
        Utf8,
        AvroSerializer::new(registry(&url), AvroSchema::parse(ORDER).unwrap()).specific::<Order>(),
    );
    let mut pending = Vec::new();
    for id in 0..RECORDS {
        let o = Order {
            id,
            item: format!("item-{}", id % 97),
            cents: (id * 37 % 10_000) as i32,
        };
        pending.push(
            typed
                .send(TypedRecord::new(&input, o).key(id.to_string()))
                .await
                .unwrap(),
        );
    }
    for d in pending {
        d.await.unwrap();
    }
    producer.close().await.unwrap();

    let dir = std::env::temp_dir().join(format!("strom-{output}"));
    std::fs::create_dir_all(&dir).unwrap();
    let vars = vec![
        ("STROM_AVRO_BOOTSTRAP", broker().bootstrap.clone()),
        ("STROM_AVRO_REGISTRY", url.clone()),
        ("STROM_AVRO_INPUT", input.clone()),
        ("STROM_AVRO_OUTPUT", output.clone()),
        ("STROM_AVRO_DIR", dir.join("checkpoints").display().to_string()),
    ];
    // Injected crashes at the checkpoint stages and mid-transaction, and SIGKILLs.
    let plan: [Option<&str>; 6] = [
        Some("after-precommit:+1"),
        None,
        Some("records:3000"),
        Some("after-store:+2"),
        None,
        Some("during-commit:+1"),
    ];
    let mut kills = 0;
    for (run, crash) in plan.iter().enumerate() {
        let log = dir.join(format!("run-{run}.log"));
        let mut child = spawn(&vars, *crash, &log);
        let status = match crash {
            Some(_) => wait(&mut child, Duration::from_secs(60), &log).await,
            None => {
                tokio::time::sleep(Duration::from_millis(700 + 300 * run as u64)).await;
                if child.try_wait().unwrap().is_none() {
                    child.kill().unwrap();
                }
                wait(&mut child, Duration::from_secs(30), &log).await
            }
        };
        match (status.code(), status.signal()) {
            (Some(0), _) => break,
            (None, Some(6 | 9)) => kills += 1,
            _ => panic!(
                "run {run} ({crash:?}) failed with {status}:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            ),
        }
    }
    let log = dir.join("final.log");
    let mut child = spawn(&vars, None, &log);
    let status = wait(&mut child, Duration::from_secs(180), &log).await;
    let final_log = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "{final_log}");
    println!(
        "final run: {}",
        final_log
            .lines()
            .rev()
            .find(|l| l.contains("child done"))
            .unwrap_or(&final_log)
    );
    assert!(kills >= 4, "only {kills} kills landed before the end of input");

    // Topic B, read_committed, decoded through the registry with the writer's schema.
    wait_no_open_transaction(&admin, &output, Duration::from_secs(60)).await;
    let mut cc = ConsumerConfig::new(&broker().bootstrap);
    cc.isolation_level = IsolationLevel::ReadCommitted;
    let mut consumer = Consumer::new(cc).await.unwrap();
    let tps: Vec<TopicPartition> = (0..PARTITIONS).map(|p| TopicPartition::new(&output, p)).collect();
    consumer.assign(tps.clone()).unwrap();
    consumer.seek_to_beginning(&[]).unwrap();
    let end = consumer.end_offsets(&tps).await.unwrap();
    let de = AvroDeserializer::new(registry(&url), None).specific::<OrderOut>();
    let mut seen: BTreeMap<i64, usize> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut done = true;
        for tp in &tps {
            done &= consumer.position(tp).await.unwrap() >= end[tp];
        }
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "reading {output} did not reach {end:?}");
        for r in consumer.poll(Duration::from_millis(200)).await.unwrap() {
            let v = r
                .deserialize::<String, OrderOut, _, _>(&Utf8, &de)
                .await
                .unwrap()
                .value
                .unwrap();
            let want = transform(Order {
                id: v.id,
                item: format!("item-{}", v.id % 97),
                cents: (v.id * 37 % 10_000) as i32,
            });
            assert_eq!(v, want);
            *seen.entry(v.id).or_default() += 1;
        }
    }
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    println!(
        "avro pipeline: {RECORDS} records, {kills} kills, out {} distinct, {duplicates} duplicates, {:.1}s",
        seen.len(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(duplicates, 0, "duplicates under exactly-once");
    assert_eq!(seen.len() as i64, RECORDS, "lost records");
    let latest = registry(&url).latest(&format!("{output}-value")).await.unwrap();
    assert!(latest.schema.schema.contains("OrderOut"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The seed's "corrupt or unknown-id record": an error naming topic, partition, offset and
/// the schema id, from `prepare` (the registry does not know the id) or from `deserialize`
/// (not framed, or not the writer's schema); a plain `avro(schema)` reads unframed datums.
#[tokio::test]
async fn bad_records_fail_naming_where_they_are() {
    use bytes::Bytes;
    use strom_connector::source::{KafkaRecordDeserializer, SourceRecord};
    use strom_connector::ConnectorError;
    use strom_protocol::record_batch::{Headers, Record, TimestampType};

    let url = schema_registry().to_owned();
    let de = deserializer::avro_confluent_registry_specific::<Order>(registry(&url), AvroSchema::parse(ORDER).unwrap());
    let record = |value: &'static [u8]| Record {
        offset: 12,
        timestamp: 0,
        key: None,
        value: Some(Bytes::from_static(value)),
        headers: Headers::default(),
    };
    let reason = |e: ConnectorError| match e {
        ConnectorError::Deserialize {
            topic,
            partition,
            offset,
            reason,
        } => {
            assert_eq!((topic.as_str(), partition, offset), ("orders", 3, 12));
            reason
        }
        other => panic!("{other}"),
    };
    // An id the registry never gave out: a bad record (deserialize says so), not a failed
    // prepare, and the registry is asked once.
    let unknown = record(b"\x00\x3b\x9a\xc9\xff\x02\x02a\x02");
    let view = SourceRecord::new("orders", 3, TimestampType::CreateTime, &unknown);
    de.prepare(&view).expect("an uncached id needs a fetch").await.unwrap();
    assert!(
        de.prepare(&view).is_none(),
        "an id the registry does not have is not asked again"
    );
    let r = reason(de.deserialize(&view).unwrap_err());
    assert!(r.contains("schema id 999999999") && r.contains("not found"), "{r}");
    // skip_undecodable skips it (Flink's "return null"), and a record that is not framed.
    let skipping = deserializer::skip_undecodable(deserializer::avro_confluent_registry_specific::<Order>(
        registry(&url),
        AvroSchema::parse(ORDER).unwrap(),
    ));
    skipping.prepare(&view).expect("a fetch").await.unwrap();
    assert_eq!(skipping.deserialize(&view).unwrap(), None);
    let not_framed = record(b"plain");
    let view2 = SourceRecord::new("orders", 3, TimestampType::CreateTime, &not_framed);
    assert_eq!(skipping.deserialize(&view2).unwrap(), None);
    // A registry that cannot be reached fails prepare: not a bad record, never skipped.
    let down = deserializer::skip_undecodable(deserializer::avro_confluent_registry_specific::<Order>(
        SchemaRegistryClient::new(
            RegistryConfig::from_properties([("schema.registry.url", "http://127.0.0.1:9"), ("max.retries", "0")])
                .unwrap(),
        )
        .unwrap(),
        AvroSchema::parse(ORDER).unwrap(),
    ));
    let e = down.prepare(&view).expect("a fetch").await.unwrap_err();
    assert!(reason(e).contains("cannot connect"));
    // Not framed: nothing to fetch, deserialize says why.
    let plain = record(b"plain text");
    let view = SourceRecord::new("orders", 3, TimestampType::CreateTime, &plain);
    assert!(de.prepare(&view).is_none());
    let r = reason(de.deserialize(&view).unwrap_err());
    assert!(r.contains("magic byte"), "{r}");

    // Plain datums with a static schema (AvroDeserializationSchema.forSpecific).
    let plain_de = deserializer::avro_specific::<Order>(AvroSchema::parse(ORDER).unwrap());
    let datum = record(b"\x0e\x06tea\x64");
    let view = SourceRecord::new("orders", 3, TimestampType::CreateTime, &datum);
    assert_eq!(
        plain_de.deserialize(&view).unwrap(),
        Some(Order {
            id: 7,
            item: "tea".into(),
            cents: 50
        })
    );
}

/// JSON Schema through the registry: the sink's serialization validates and frames, the
/// source's deserializer fetches the schema in `prepare` and reads the record back.
#[tokio::test]
async fn json_schema_sink_and_source_through_the_registry() {
    use strom_connector::sink::{JsonSchemaSerialization, SerializationSchema};
    use strom_connector::source::{KafkaRecordDeserializer, SourceRecord};
    use strom_protocol::record_batch::{Headers, Record, TimestampType};
    use strom_registry::json::JsonSchema;

    let url = schema_registry().to_owned();
    let subject = format!("{}-value", unique_topic("json-sink"));
    let schema = JsonSchema::parse(
        r#"{"title":"Order","type":"object","properties":{"id":{"type":"integer"},"item":{"type":"string"},"cents":{"type":"integer","maximum":100000}},"required":["id","item","cents"]}"#,
    )
    .unwrap();
    let ser = JsonSchemaSerialization::<Order>::confluent_registry(&registry(&url), &subject, schema)
        .await
        .unwrap();
    let order = Order {
        id: 3,
        item: "tea".into(),
        cents: 250,
    };
    let bytes = ser.serialize(&order).unwrap().unwrap();
    assert_eq!(bytes[0], 0);
    let too_expensive = Order {
        cents: 100_001,
        ..order.clone()
    };
    let e = ser.serialize(&too_expensive).unwrap_err();
    assert!(e.to_string().contains("/cents"), "{e}");

    let de = deserializer::json_schema_confluent_registry::<Order>(registry(&url));
    let rec = Record {
        offset: 0,
        timestamp: 0,
        key: None,
        value: Some(bytes),
        headers: Headers::default(),
    };
    let view = SourceRecord::new("orders", 0, TimestampType::CreateTime, &rec);
    de.prepare(&view).expect("first sight of the id").await.unwrap();
    assert!(de.prepare(&view).is_none(), "cached now");
    assert_eq!(de.deserialize(&view).unwrap(), Some(order));
}

/// Protobuf through the registry: the sink's serialization frames with message indexes, the
/// source's deserializer fetches the writer schema in `prepare` and decodes the message its
/// indexes name.
#[tokio::test]
async fn protobuf_sink_and_source_through_the_registry() {
    use strom_connector::sink::{ProtobufSerialization, SerializationSchema};
    use strom_connector::source::{KafkaRecordDeserializer, SourceRecord};
    use strom_protocol::record_batch::{Headers, Record, TimestampType};
    use strom_registry::protobuf::{prost_reflect, DynamicMessage, ProtobufSchema, ReflectMessage};

    let url = schema_registry().to_owned();
    let subject = format!("{}-value", unique_topic("proto-sink"));
    let schema = ProtobufSchema::parse(
        "syntax = \"proto3\"; package p; message Wrapper { message Order { int64 id = 1; string item = 2; } }",
    )
    .unwrap();
    let order = schema.message("p.Wrapper.Order").unwrap();
    let ser = ProtobufSerialization::confluent_registry(&registry(&url), &subject, schema, order.clone())
        .await
        .unwrap();
    let mut m = DynamicMessage::new(order);
    m.set_field_by_name("id", prost_reflect::Value::I64(42));
    m.set_field_by_name("item", prost_reflect::Value::String("tea".into()));
    let bytes = ser.serialize(&m).unwrap().unwrap();
    assert_eq!(&bytes[5..8], &[4, 0, 0], "message indexes [0, 0]");

    let de = deserializer::protobuf_confluent_registry(registry(&url));
    let rec = Record {
        offset: 0,
        timestamp: 0,
        key: None,
        value: Some(bytes),
        headers: Headers::default(),
    };
    let view = SourceRecord::new("orders", 0, TimestampType::CreateTime, &rec);
    de.prepare(&view).expect("first sight of the id").await.unwrap();
    let back = de.deserialize(&view).unwrap().unwrap();
    assert_eq!(back.descriptor().full_name(), "p.Wrapper.Order");
    assert_eq!(back.get_field_by_name("id").unwrap().as_i64(), Some(42));
}

/// The seed's generic forms: `AvroDeserializationSchema.forGeneric` (a plain datum read with
/// a static schema into a generic record) and `ConfluentRegistryAvroDeserializationSchema.
/// forGeneric` (a Confluent-framed record whose writer schema comes from the registry).
#[tokio::test]
async fn generic_avro_deserializers_plain_and_through_the_registry() {
    use bytes::Bytes;
    use strom_client::serialization::{Field, Serializer};
    use strom_connector::source::{KafkaRecordDeserializer, SourceRecord};
    use strom_protocol::record_batch::{Headers, Record, TimestampType};
    use strom_registry::avro::Value;

    let order = Value::Record(vec![
        ("id".into(), Value::Long(7)),
        ("item".into(), Value::String("tea".into())),
        ("cents".into(), Value::Int(50)),
    ]);
    let record = |value: Bytes| Record {
        offset: 3,
        timestamp: 0,
        key: None,
        value: Some(value),
        headers: Headers::default(),
    };
    // Plain datum, static schema.
    let plain = record(Bytes::from_static(b"\x0e\x06tea\x64"));
    let view = SourceRecord::new("orders", 0, TimestampType::CreateTime, &plain);
    let de = deserializer::avro(AvroSchema::parse(ORDER).unwrap());
    assert_eq!(de.deserialize(&view).unwrap(), Some(order.clone()));

    // Framed, through the registry: written with the generic serializer (which registers
    // the schema), read back with the reader schema.
    let url = schema_registry().to_owned();
    let topic = unique_topic("generic-avro");
    let framed = AvroSerializer::new(registry(&url), AvroSchema::parse(ORDER).unwrap())
        .serialize(&topic, Field::Value, &order)
        .await
        .unwrap();
    assert_eq!(framed[0], 0, "Confluent magic byte");
    let framed = record(framed);
    let view = SourceRecord::new(&topic, 0, TimestampType::CreateTime, &framed);
    let de = deserializer::avro_confluent_registry(registry(&url), AvroSchema::parse(ORDER).unwrap());
    if let Some(fetch) = de.prepare(&view) {
        fetch.await.unwrap();
    }
    assert_eq!(de.deserialize(&view).unwrap(), Some(order));
}
