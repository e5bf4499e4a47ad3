//! Protobuf through the registry: interop with Confluent's Python serializer, bad input,
//! a prost type.

use super::*;

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

/// A schema importing Google's well-known types, as Confluent's Python serializer registers
/// it both ways: by default (`skip.known.types`) the imports are left to the reader's own
/// copies; with it off each is a schema of its own (subject `google/protobuf/...proto`)
/// that the schema references. Strom reads both by id, and writes with the registered
/// version byte for byte.
#[tokio::test]
async fn protobuf_well_known_types_as_confluents_serializer_registers_them() {
    use strom_registry::protobuf::{ProtobufDeserializer, ProtobufSchema, ProtobufSerializer};
    const EVENT_PROTO: &str = r#"syntax = "proto3";
package strom.wkt;
import "google/protobuf/timestamp.proto";
import "google/protobuf/wrappers.proto";
message Event {
  string name = 1;
  google.protobuf.Timestamp at = 2;
  google.protobuf.Int64Value count = 3;
}
"#;
    let schema = ProtobufSchema::parse(EVENT_PROTO).unwrap();
    let events: Vec<serde_json::Value> = (0..5)
        .map(|i| {
            serde_json::json!({
                "name": format!("e{i}"),
                "at": format!("2026-12-0{}T10:00:0{i}Z", i + 1),
                "count": (i * 7).to_string(),
            })
        })
        .collect();
    let lines: String = events.iter().map(|e| e.to_string() + "\n").collect();
    let dynamic = |json: &serde_json::Value| {
        let desc = schema.message("strom.wkt.Event").unwrap();
        strom_registry::protobuf::DynamicMessage::deserialize(desc, json.clone()).unwrap()
    };
    let set = std::env::temp_dir().join(format!("{}.desc", unique_topic("fds-wkt")));
    std::fs::write(&set, schema.pool().encode_to_vec()).unwrap();
    for skip in ["true", "false"] {
        let topic = unique_topic(&format!("registry-proto-wkt-{skip}"));
        let theirs = confluent(
            &[
                "serialize",
                schema_registry(),
                &topic,
                set.to_str().unwrap(),
                "--format",
                "protobuf",
                "--message",
                "strom.wkt.Event",
                "--skip-known-types",
                skip,
            ],
            &lines,
        );
        assert_eq!(theirs.len(), events.len(), "skip.known.types={skip}");
        let subject = format!("{topic}-value");
        let registered = registry(&[]).latest(&subject).await.unwrap();
        let wkt_refs: Vec<&str> = registered
            .schema
            .references
            .iter()
            .map(|r| r.name.as_str())
            .filter(|n| n.starts_with("google/protobuf/"))
            .collect();
        if skip == "true" {
            assert!(wkt_refs.is_empty(), "{wkt_refs:?}");
        } else {
            assert!(
                wkt_refs.contains(&"google/protobuf/timestamp.proto")
                    && wkt_refs.contains(&"google/protobuf/wrappers.proto"),
                "skip.known.types=false references the well-known types: {wkt_refs:?}"
            );
        }
        // Strom reads Confluent's schema (and its references) by id.
        let de = ProtobufDeserializer::new(registry(&[]));
        for (hex, want) in theirs.iter().zip(&events) {
            let bytes: Vec<u8> = (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
                .collect();
            let got = de.decode_dynamic(&topic, &bytes).await.unwrap_or_else(|e| {
                panic!("skip.known.types={skip}: {e}");
            });
            assert_eq!(encoded(&got), encoded(&dynamic(want)), "skip.known.types={skip}");
        }
        // And writes with the registered version: the same bytes.
        let ser = ProtobufSerializer::new(
            registry(&[("auto.register.schemas", "false"), ("use.latest.version", "true")]),
            schema.clone(),
            schema.message("strom.wkt.Event").unwrap(),
        )
        .unwrap();
        for (e, hex) in events.iter().zip(&theirs) {
            let ours: String = ser
                .encode_dynamic(&topic, false, &dynamic(e))
                .await
                .unwrap()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(&ours, hex, "skip.known.types={skip}: {e}");
        }
    }
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
