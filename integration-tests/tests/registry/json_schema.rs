//! JSON Schema through the registry and the broker, byte for byte with Confluent's Python
//! serializer.

use super::*;

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
