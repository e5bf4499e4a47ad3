//! Entry points of the fuzz targets `registry_*` (fuzz/fuzz_targets/), also replayed over
//! the committed corpus by `cargo test` (tests/fuzz_corpus.rs). Every function must return
//! for every input: errors are expected, a panic or an abort is a bug.

/// The Confluent framing and Protobuf message indexes.
pub fn registry_wire(data: &[u8]) {
    if let Ok(f) = crate::wire::decode(data) {
        assert_eq!(f.payload.len() + crate::wire::HEADER_LEN, data.len());
        if let Ok((indexes, rest)) = crate::wire::decode_message_indexes(f.payload) {
            assert!(rest.len() <= f.payload.len());
            let mut again = Vec::new();
            crate::wire::encode_message_indexes(&indexes, &mut again);
            again.extend_from_slice(rest);
            assert_eq!(
                crate::wire::decode_message_indexes(&again).map(|(i, _)| i).ok(),
                Some(indexes)
            );
        }
    }
}

/// Writer schemas the Avro target decodes with, chosen by the input's first byte: every
/// type, a recursive list, containers of containers, logical types.
#[cfg(feature = "avro")]
const AVRO_SCHEMAS: &[&str] = &[
    r#"{"type":"record","name":"All","namespace":"f","fields":[
        {"name":"n","type":"null"},{"name":"b","type":"boolean"},{"name":"i","type":"int"},
        {"name":"l","type":"long"},{"name":"f","type":"float"},{"name":"d","type":"double"},
        {"name":"by","type":"bytes"},{"name":"s","type":"string"},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
        {"name":"x","type":{"type":"fixed","name":"X","size":4}},
        {"name":"u","type":["null","string","long"]}]}"#,
    r#"{"type":"record","name":"List","namespace":"f","fields":[{"name":"v","type":"int"},{"name":"next","type":["null","List"]}]}"#,
    r#"{"type":"map","values":{"type":"array","items":["null",{"type":"map","values":"string"}]}}"#,
    r#"{"type":"record","name":"Logical","namespace":"f","fields":[
        {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
        {"name":"day","type":{"type":"int","logicalType":"date"}},
        {"name":"ts","type":{"type":"long","logicalType":"timestamp-micros"}},
        {"name":"id","type":{"type":"string","logicalType":"uuid"}},
        {"name":"dur","type":{"type":"fixed","name":"D","size":12,"logicalType":"duration"}}]}"#,
    r#"{"type":"array","items":{"type":"record","name":"Empty","namespace":"f","fields":[]}}"#,
];

/// A reader schema for the first writer schema: fields dropped, one added with a default,
/// promotions (int to long, float to double), so resolution is fuzzed too.
#[cfg(feature = "avro")]
const AVRO_READER: &str = r#"{"type":"record","name":"All","namespace":"f","fields":[
    {"name":"i","type":"long"},{"name":"f","type":"double"},{"name":"s","type":"string"},
    {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
    {"name":"u","type":["null","string","long"]},{"name":"added","type":"string","default":"x"}]}"#;

/// An Avro datum decoded with one of `AVRO_SCHEMAS` (and resolved to a reader schema);
/// what decodes re-encodes, and that encoding is a fixed point (bytes, so NaNs compare).
#[cfg(feature = "avro")]
pub fn registry_avro(data: &[u8]) {
    use std::sync::OnceLock;

    use crate::avro::{AvroSchema, PlainAvro};
    static PARSED: OnceLock<Option<(Vec<AvroSchema>, AvroSchema)>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        let writers = AVRO_SCHEMAS
            .iter()
            .map(|s| AvroSchema::parse(s).ok())
            .collect::<Option<Vec<_>>>()?;
        Some((writers, AvroSchema::parse(AVRO_READER).ok()?))
    });
    let Some((writers, reader)) = parsed else {
        panic!("a fuzz schema does not parse");
    };
    let Some((&pick, datum)) = data.split_first() else {
        return;
    };
    let i = usize::from(pick) % writers.len();
    // Straight into a serde type, no Value: the same bounds must hold on this path.
    let _ = writers[i].decode_into::<serde_json::Value>(datum, None);
    let plain = PlainAvro::new(writers[i].clone());
    if let Ok(v) = plain.decode_value(datum) {
        if let Ok(again) = plain.encode_value(&v) {
            let decoded = plain.decode_value(&again);
            assert!(decoded.is_ok(), "what was encoded does not decode: {decoded:?}");
            if let Ok(v2) = decoded {
                assert!(bitwise(&v) == bitwise(&v2), "{v:?} came back as {v2:?}");
            }
        }
        if i == 0 {
            let _ = PlainAvro::resolving(writers[0].clone(), reader.clone()).decode_value(datum);
        }
    }
}

/// Reader schemas the plan target resolves the writer schemas to (by index in
/// `AVRO_SCHEMAS`): fields dropped and added, promotions, a recursive record with a field
/// added, a map's values widened.
#[cfg(feature = "avro")]
const AVRO_PLAN_READERS: &[(usize, &str)] = &[
    (0, AVRO_READER),
    (
        1,
        r#"{"type":"record","name":"List","namespace":"f","fields":[{"name":"next","type":["null","List"]},
        {"name":"v","type":"double"},{"name":"tag","type":"string","default":"-"}]}"#,
    ),
    (
        2,
        r#"{"type":"map","values":{"type":"array","items":["null",{"type":"map","values":"bytes"},"int"]}}"#,
    ),
];

/// An Avro datum decoded through the compiled plans (`decode_generic`, serde), checked
/// against the datum decoder that came before them: the same datums accepted, the same values
/// read; what decodes re-encodes to a datum that decodes to the same value; and the datum
/// resolved to reader schemas.
#[cfg(feature = "avro")]
pub fn registry_avro_plan(data: &[u8]) {
    use std::sync::OnceLock;

    use crate::avro::{AvroSchema, PlainAvro};
    type Parsed = (Vec<AvroSchema>, Vec<(usize, AvroSchema)>);
    static PARSED: OnceLock<Option<Parsed>> = OnceLock::new();
    let parsed = PARSED.get_or_init(|| {
        let writers = AVRO_SCHEMAS
            .iter()
            .map(|s| AvroSchema::parse(s).ok())
            .collect::<Option<Vec<_>>>()?;
        let readers = AVRO_PLAN_READERS
            .iter()
            .map(|(w, s)| AvroSchema::parse(s).ok().map(|r| (*w, r)))
            .collect::<Option<Vec<_>>>()?;
        Some((writers, readers))
    });
    let Some((writers, readers)) = parsed else {
        panic!("a fuzz schema does not parse");
    };
    let Some((&pick, datum)) = data.split_first() else {
        return;
    };
    let i = usize::from(pick) % writers.len();
    let w = &writers[i];
    let plain = PlainAvro::new(w.clone());
    let new = plain.decode_generic(datum);
    let old = plain.decode_value(datum);
    assert_eq!(new.is_ok(), old.is_ok(), "{new:?} / {old:?}");
    let serde = plain.decode::<serde::de::IgnoredAny>(datum);
    if let (Ok(g), Ok(v)) = (&new, &old) {
        assert!(serde.is_ok(), "{serde:?}");
        let as_value = w.generic_to_value(g);
        assert!(
            as_value.as_ref().is_ok_and(|x| bitwise(x) == bitwise(v)),
            "{as_value:?} read where {v:?} was"
        );
        let again = plain.encode_generic(g);
        assert!(again.is_ok(), "what was read does not encode: {again:?}");
        if let Ok(again) = again {
            let back = plain.decode_generic(&again).map(|b| w.generic_to_value(&b));
            assert!(
                matches!(&back, Ok(Ok(b)) if bitwise(b) == bitwise(v)),
                "{back:?} came back for {v:?}"
            );
        }
    }
    for (_, r) in readers.iter().filter(|(wi, _)| *wi == i) {
        let resolving = PlainAvro::resolving(w.clone(), r.clone());
        let _ = resolving.decode::<serde::de::IgnoredAny>(datum);
        if let Ok(g) = resolving.decode_generic(datum) {
            let again = PlainAvro::new(r.clone()).encode_generic(&g);
            assert!(again.is_ok(), "a resolved value does not encode: {again:?}");
            if let Ok(again) = again {
                assert!(PlainAvro::new(r.clone()).decode_generic(&again).is_ok());
            }
        }
    }
}

/// A schema of nested, repeated, map, oneof and recursive fields for the Protobuf target.
#[cfg(feature = "protobuf")]
const PROTO: &str = r#"syntax = "proto3";
package f;
message Node {
  int64 id = 1; string name = 2; bytes blob = 3; double d = 4; bool b = 5; sint32 s = 6;
  repeated Node children = 7; map<string, int32> counts = 8;
  oneof choice { fixed64 f = 9; Node other = 10; }
  enum Kind { A = 0; B = 1; } Kind kind = 11;
  message Inner { repeated uint32 packed = 1; } Inner inner = 12;
}
"#;

/// A framed Protobuf record: message indexes, then a message of the schema above, decoded
/// dynamically; what decodes re-encodes to bytes that decode again.
#[cfg(feature = "protobuf")]
pub fn registry_protobuf(data: &[u8]) {
    use std::sync::OnceLock;

    use crate::protobuf::{DynamicMessage, ProtobufSchema};
    static SCHEMA: OnceLock<Option<ProtobufSchema>> = OnceLock::new();
    let Some(schema) = SCHEMA.get_or_init(|| ProtobufSchema::parse(PROTO).ok()) else {
        panic!("the fuzz schema does not compile");
    };
    let Ok((indexes, payload)) = crate::wire::decode_message_indexes(data) else {
        return;
    };
    let Ok(desc) = schema.message_at(&indexes) else {
        return;
    };
    if let Ok(m) = DynamicMessage::decode(desc.clone(), payload) {
        let again = prost::Message::encode_to_vec(&m);
        assert!(
            DynamicMessage::decode(desc, &again[..]).is_ok(),
            "what was encoded does not decode"
        );
    }
}

/// `v` with floats as their bits, so NaNs compare equal to themselves.
#[cfg(feature = "avro")]
fn bitwise(v: &apache_avro::types::Value) -> apache_avro::types::Value {
    use apache_avro::types::Value;
    match v {
        Value::Float(f) => Value::Long(i64::from(f.to_bits())),
        Value::Double(d) => Value::Long(d.to_bits() as i64),
        Value::Array(a) => Value::Array(a.iter().map(bitwise).collect()),
        Value::Map(m) => Value::Map(m.iter().map(|(k, v)| (k.clone(), bitwise(v))).collect()),
        Value::Record(r) => Value::Record(r.iter().map(|(k, v)| (k.clone(), bitwise(v))).collect()),
        Value::Union(i, b) => Value::Union(*i, Box::new(bitwise(b))),
        other => other.clone(),
    }
}

/// A fuzz target's name and entry point.
pub type Target = (&'static str, fn(&[u8]));

/// Every entry point, by target name.
pub const TARGETS: &[Target] = &[
    ("registry_wire", registry_wire),
    #[cfg(feature = "avro")]
    ("registry_avro", registry_avro),
    #[cfg(feature = "avro")]
    ("registry_avro_plan", registry_avro_plan),
    #[cfg(feature = "protobuf")]
    ("registry_protobuf", registry_protobuf),
];
