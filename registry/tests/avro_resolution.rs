//! Schema resolution through the compiled decode plans: each case of the Avro
//! specification's resolution rules (and Java's `Resolver`, where it decides what the
//! specification leaves open), read as generic values, as apache-avro values and as serde
//! types.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::borrow::Cow;

use strom_registry::apache_avro::types::Value;
use strom_registry::avro::{AvroSchema, GenericValue, PlainAvro};
use strom_registry::ErrorKind;

fn parse(s: &str) -> AvroSchema {
    AvroSchema::parse(s).unwrap()
}

/// `value` written with `writer`, read as `reader`, as an apache-avro value of `reader`.
fn resolve(writer: &str, reader: &str, value: Value) -> strom_registry::Result<Value> {
    let (w, r) = (parse(writer), parse(reader));
    let datum = PlainAvro::new(w.clone()).encode_value(&value)?;
    let g = PlainAvro::resolving(w, r.clone()).decode_generic(&datum)?;
    r.generic_to_value(&g)
}

fn record(fields: &[(&str, Value)]) -> Value {
    Value::Record(fields.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect())
}

fn s(v: &str) -> Value {
    Value::String(v.into())
}

#[test]
fn reordered_added_and_removed_fields() {
    let w = r#"{"type":"record","name":"R","namespace":"t","fields":[
        {"name":"a","type":"int"},{"name":"gone","type":{"type":"array","items":{"type":"map","values":["null","string"]}}},
        {"name":"b","type":"string"},{"name":"c","type":"long"}]}"#;
    let r = r#"{"type":"record","name":"R","namespace":"t","fields":[
        {"name":"c","type":"long"},{"name":"b","type":"string"},{"name":"a","type":"int"},
        {"name":"n","type":["null","string"],"default":null},
        {"name":"d","type":"double","default":1.5},
        {"name":"raw","type":"bytes","default":"\u00ff\u0001"},
        {"name":"e","type":{"type":"enum","name":"E","symbols":["X","Y"]},"default":"Y"},
        {"name":"list","type":{"type":"array","items":"int"},"default":[1,2]},
        {"name":"sub","type":{"type":"record","name":"Sub","fields":[{"name":"z","type":"string","default":"zz"},{"name":"q","type":"int"}]},"default":{"q":4}}]}"#;
    let gone = Value::Array(vec![Value::Map(
        [("k".to_owned(), Value::Union(1, Box::new(s("v"))))].into(),
    )]);
    let v = record(&[
        ("a", Value::Int(7)),
        ("gone", gone),
        ("b", s("hi")),
        ("c", Value::Long(-9)),
    ]);
    let got = resolve(w, r, v.clone()).unwrap();
    let want = record(&[
        ("c", Value::Long(-9)),
        ("b", s("hi")),
        ("a", Value::Int(7)),
        ("n", Value::Union(0, Box::new(Value::Null))),
        ("d", Value::Double(1.5)),
        ("raw", Value::Bytes(vec![0xff, 0x01])),
        ("e", Value::Enum(1, "Y".into())),
        ("list", Value::Array(vec![Value::Int(1), Value::Int(2)])),
        ("sub", record(&[("z", s("zz")), ("q", Value::Int(4))])),
    ]);
    assert_eq!(got, want);

    // Serde types see the same: fields by name, in any order, defaults included.
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Sub {
        q: i32,
        z: String,
    }
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Read<'a> {
        a: i32,
        #[serde(borrow)]
        b: Cow<'a, str>,
        c: i64,
        n: Option<String>,
        d: f64,
        #[serde(with = "serde_bytes_vec")]
        raw: Vec<u8>,
        e: String,
        list: Vec<i32>,
        sub: Sub,
    }
    let (wp, rp) = (parse(w), parse(r));
    let datum = PlainAvro::new(wp.clone()).encode_value(&v).unwrap();
    let read: Read<'_> = PlainAvro::resolving(wp.clone(), rp.clone())
        .decode_borrowed(&datum)
        .unwrap();
    assert_eq!(
        read,
        Read {
            a: 7,
            b: Cow::Borrowed("hi"),
            c: -9,
            n: None,
            d: 1.5,
            raw: vec![0xff, 1],
            e: "Y".into(),
            list: vec![1, 2],
            sub: Sub { q: 4, z: "zz".into() },
        }
    );
    assert!(matches!(read.b, Cow::Borrowed(_)), "read from the datum, not copied");
    // apache-avro's own resolution agrees where it follows the specification.
    let old = PlainAvro::resolving(wp, rp).decode_value(&datum).unwrap();
    let Value::Record(old) = old else { panic!() };
    let Value::Record(new) = got else { panic!() };
    for (name, v) in old.iter().filter(|(n, _)| n != "raw") {
        assert_eq!(Some(v), new.iter().find(|(n, _)| n == name).map(|(_, v)| v), "{name}");
    }
}

/// serde's `with` for a `Vec<u8>` read from Avro bytes.
mod serde_bytes_vec {
    pub(crate) fn deserialize<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
        }
        d.deserialize_bytes(V)
    }
}

#[test]
fn promotions() {
    let cases: &[(&str, Value, &str, Value)] = &[
        ("\"int\"", Value::Int(-3), "\"long\"", Value::Long(-3)),
        ("\"int\"", Value::Int(-3), "\"float\"", Value::Float(-3.0)),
        (
            "\"int\"",
            Value::Int(1 << 30),
            "\"double\"",
            Value::Double(f64::from(1 << 30)),
        ),
        (
            "\"long\"",
            Value::Long(1 << 40),
            "\"float\"",
            Value::Float((1u64 << 40) as f32),
        ),
        (
            "\"long\"",
            Value::Long(-(1 << 40)),
            "\"double\"",
            Value::Double(-((1u64 << 40) as f64)),
        ),
        ("\"float\"", Value::Float(0.25), "\"double\"", Value::Double(0.25)),
        ("\"string\"", s("é"), "\"bytes\"", Value::Bytes("é".as_bytes().to_vec())),
        ("\"bytes\"", Value::Bytes(b"ok".to_vec()), "\"string\"", s("ok")),
        // Logical types read from their underlying type, and back.
        (
            "\"long\"",
            Value::Long(1_700_000_000_000),
            r#"{"type":"long","logicalType":"timestamp-millis"}"#,
            Value::TimestampMillis(1_700_000_000_000),
        ),
        (
            r#"{"type":"long","logicalType":"timestamp-micros"}"#,
            Value::TimestampMicros(5),
            "\"long\"",
            Value::Long(5),
        ),
        (
            "\"int\"",
            Value::Int(19000),
            r#"{"type":"int","logicalType":"date"}"#,
            Value::Date(19000),
        ),
        (
            r#"{"type":"int","logicalType":"date"}"#,
            Value::Date(3),
            r#"{"type":"long","logicalType":"local-timestamp-micros"}"#,
            Value::LocalTimestampMicros(3),
        ),
        (
            "\"bytes\"",
            Value::Bytes(vec![1, 24]),
            r#"{"type":"bytes","logicalType":"decimal","precision":5,"scale":2}"#,
            Value::Decimal(vec![1, 24].into()),
        ),
        (
            "\"string\"",
            s("550e8400-e29b-41d4-a716-446655440000"),
            r#"{"type":"string","logicalType":"uuid"}"#,
            Value::Uuid("550e8400-e29b-41d4-a716-446655440000".parse().unwrap()),
        ),
        (
            r#"{"type":"fixed","name":"D","size":12}"#,
            Value::Fixed(12, vec![1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0]),
            r#"{"type":"fixed","name":"D","size":12,"logicalType":"duration"}"#,
            Value::Duration([1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0].into()),
        ),
    ];
    for (w, v, r, want) in cases {
        assert_eq!(&resolve(w, r, v.clone()).unwrap(), want, "{w} -> {r}");
    }
    // No demotion, no promotion the specification does not list.
    for (w, v, r) in [
        ("\"long\"", Value::Long(1), "\"int\""),
        ("\"double\"", Value::Double(1.0), "\"float\""),
        ("\"string\"", s("1"), "\"int\""),
        ("\"boolean\"", Value::Boolean(true), "\"int\""),
    ] {
        let e = resolve(w, r, v).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Serialization);
        assert!(e.to_string().contains("cannot be read as the reader's"), "{e}");
    }
}

#[test]
fn unions_to_and_from_non_unions() {
    let opt = r#"["null","string"]"#;
    // Union to non-union: the branch the reader can read, and an error for the other.
    assert_eq!(
        resolve(opt, "\"string\"", Value::Union(1, Box::new(s("x")))).unwrap(),
        s("x")
    );
    let e = resolve(opt, "\"string\"", Value::Union(0, Box::new(Value::Null))).unwrap_err();
    assert!(
        e.to_string()
            .contains("writer's null cannot be read as the reader's string"),
        "{e}"
    );
    // Non-union to union: the first branch of the same type, else one it promotes to.
    assert_eq!(
        resolve("\"string\"", opt, s("y")).unwrap(),
        Value::Union(1, Box::new(s("y")))
    );
    assert_eq!(
        resolve("\"int\"", r#"["null","string","double","long"]"#, Value::Int(4)).unwrap(),
        Value::Union(2, Box::new(Value::Double(4.0))),
        "Java's firstMatchingBranch takes the first promotion in the reader's order"
    );
    assert!(resolve("\"boolean\"", opt, Value::Boolean(true)).is_err());
    // Union to union, branches in another order.
    assert_eq!(
        resolve(
            r#"["string","int"]"#,
            r#"["int","null","string"]"#,
            Value::Union(0, Box::new(s("z")))
        )
        .unwrap(),
        Value::Union(2, Box::new(s("z")))
    );
    // Records in unions by full name, even when another record comes first.
    let w = r#"["null",{"type":"record","name":"B","namespace":"t","fields":[{"name":"x","type":"int"}]}]"#;
    let r = r#"[{"type":"record","name":"A","namespace":"t","fields":[{"name":"x","type":"int"}]},
        {"type":"record","name":"B","namespace":"t","fields":[{"name":"x","type":"long"},{"name":"y","type":"int","default":0}]},"null"]"#;
    let got = resolve(w, r, Value::Union(1, Box::new(record(&[("x", Value::Int(1))])))).unwrap();
    assert_eq!(
        got,
        Value::Union(1, Box::new(record(&[("x", Value::Long(1)), ("y", Value::Int(0))])))
    );
    // Option<T> in serde: null is None, the other branch Some, also through a reader union.
    let (ws, rs) = (parse(opt), parse(r#"["null","string","int"]"#));
    for (v, want) in [
        (Value::Union(0, Box::new(Value::Null)), None),
        (Value::Union(1, Box::new(s("q"))), Some("q")),
    ] {
        let datum = PlainAvro::new(ws.clone()).encode_value(&v).unwrap();
        let got: Option<String> = ws.decode_into(&datum, Some(&rs)).unwrap();
        assert_eq!(got.as_deref(), want);
    }
    let got: Option<i64> = parse("\"long\"")
        .decode_into(&[0x04], Some(&parse(r#"["null","long"]"#)))
        .unwrap();
    assert_eq!(got, Some(2));
}

#[test]
fn enums_reordered_and_with_a_default_symbol() {
    let w = r#"{"type":"enum","name":"E","namespace":"t","symbols":["A","B","C"]}"#;
    let r = r#"{"type":"enum","name":"E","namespace":"t","symbols":["C","A","OTHER"],"default":"OTHER"}"#;
    let strict = r#"{"type":"enum","name":"E","namespace":"t","symbols":["C","A"]}"#;
    let e = |i: u32, sym: &str| Value::Enum(i, sym.into());
    assert_eq!(resolve(w, r, e(0, "A")).unwrap(), e(1, "A"));
    assert_eq!(resolve(w, r, e(2, "C")).unwrap(), e(0, "C"));
    assert_eq!(
        resolve(w, r, e(1, "B")).unwrap(),
        e(2, "OTHER"),
        "an unknown symbol is the default"
    );
    let err = resolve(w, strict, e(1, "B")).unwrap_err();
    assert!(
        err.to_string()
            .contains("symbol B of t.E is not a symbol of the reader's t.E"),
        "{err}"
    );
    assert_eq!(
        resolve(w, strict, e(2, "C")).unwrap(),
        e(0, "C"),
        "known symbols still read"
    );
    // Enums of other names do not resolve; a reader alias names the writer's.
    let other = r#"{"type":"enum","name":"F","namespace":"t","symbols":["A","B","C"]}"#;
    assert!(resolve(w, other, e(0, "A"))
        .unwrap_err()
        .to_string()
        .contains("the names differ"));
    let aliased = r#"{"type":"enum","name":"F","namespace":"t","aliases":["E"],"symbols":["A","B","C"]}"#;
    assert_eq!(resolve(w, aliased, e(1, "B")).unwrap(), e(1, "B"));
    // Serde enums get the reader's symbol.
    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[allow(clippy::upper_case_acronyms)]
    enum Read {
        C,
        A,
        OTHER,
    }
    let (wp, rp) = (parse(w), parse(r));
    assert_eq!(wp.decode_into::<Read>(&[0x02], Some(&rp)).unwrap(), Read::OTHER);
    assert_eq!(wp.decode_into::<Read>(&[0x04], Some(&rp)).unwrap(), Read::C);
}

#[test]
fn nested_records_arrays_and_maps_of_evolved_records() {
    let w = r#"{"type":"record","name":"Outer","fields":[
        {"name":"items","type":{"type":"array","items":{"type":"record","name":"Item","fields":[
            {"name":"id","type":"int"},{"name":"note","type":"string"}]}}},
        {"name":"by_key","type":{"type":"map","values":"Item"}}]}"#;
    let r = r#"{"type":"record","name":"Outer","fields":[
        {"name":"by_key","type":{"type":"map","values":{"type":"record","name":"Item","fields":[
            {"name":"id","type":"long"},{"name":"qty","type":"int","default":1}]}}},
        {"name":"items","type":{"type":"array","items":"Item"}}]}"#;
    let item = |id: i32, note: &str| record(&[("id", Value::Int(id)), ("note", s(note))]);
    let read = |id: i64| record(&[("id", Value::Long(id)), ("qty", Value::Int(1))]);
    let v = record(&[
        ("items", Value::Array(vec![item(1, "a"), item(2, "bb")])),
        ("by_key", Value::Map([("k".to_owned(), item(3, "ccc"))].into())),
    ]);
    assert_eq!(
        resolve(w, r, v).unwrap(),
        record(&[
            ("by_key", Value::Map([("k".to_owned(), read(3))].into())),
            ("items", Value::Array(vec![read(1), read(2)])),
        ])
    );
}

#[test]
fn recursive_schemas_resolve_through_their_cycle() {
    let w = r#"{"type":"record","name":"Node","namespace":"t","fields":[
        {"name":"v","type":"int"},{"name":"next","type":["null","Node"]}]}"#;
    let r = r#"{"type":"record","name":"Node","namespace":"t","fields":[
        {"name":"next","type":["null","Node"]},{"name":"v","type":"long"},{"name":"tag","type":"string","default":"-"}]}"#;
    let node = |v: i32, next: Value| record(&[("v", Value::Int(v)), ("next", next)]);
    let list = node(
        1,
        Value::Union(1, Box::new(node(2, Value::Union(0, Box::new(Value::Null))))),
    );
    let read = |v: i64, next: Value| record(&[("next", next), ("v", Value::Long(v)), ("tag", s("-"))]);
    assert_eq!(
        resolve(w, r, list).unwrap(),
        read(
            1,
            Value::Union(1, Box::new(read(2, Value::Union(0, Box::new(Value::Null)))))
        )
    );
    // A thousand levels of the same list: past the nesting bound, an error and no overflow.
    let deep: Vec<u8> = std::iter::repeat_n([0x02u8, 0x02], 1000).flatten().collect();
    let plain = PlainAvro::resolving(parse(w), parse(r));
    let e = plain.decode_generic(&deep).unwrap_err();
    assert!(e.to_string().contains("nests over"), "{e}");
    assert!(plain.decode::<serde_json::Value>(&deep).is_err());
}

#[test]
fn field_aliases_and_missing_required_fields() {
    let w = r#"{"type":"record","name":"R","namespace":"t","fields":[{"name":"old","type":"int"}]}"#;
    let r = r#"{"type":"record","name":"R","namespace":"t","fields":[{"name":"new","aliases":["old"],"type":"int"}]}"#;
    assert_eq!(
        resolve(w, r, record(&[("old", Value::Int(5))])).unwrap(),
        record(&[("new", Value::Int(5))])
    );
    let required = r#"{"type":"record","name":"S","namespace":"u","fields":[{"name":"must","type":"int"}]}"#;
    let e = resolve(w, required, record(&[("old", Value::Int(5))])).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Serialization);
    let m = e.to_string();
    assert!(
        m.contains("t.R has no field must") && m.contains("u.S gives it no default"),
        "{m}"
    );
}

#[test]
fn fixed_names_and_sizes_must_match() {
    let w = r#"{"type":"fixed","name":"F","size":2}"#;
    let v = Value::Fixed(2, vec![1, 2]);
    assert_eq!(
        resolve(w, r#"{"type":"fixed","name":"F","size":2}"#, v.clone()).unwrap(),
        v
    );
    let e = resolve(w, r#"{"type":"fixed","name":"F","size":3}"#, v.clone()).unwrap_err();
    assert!(
        e.to_string()
            .contains("of 2 bytes is read as the reader's fixed F of 3"),
        "{e}"
    );
    let e = resolve(w, r#"{"type":"fixed","name":"G","size":2}"#, v).unwrap_err();
    assert!(e.to_string().contains("the names differ"), "{e}");
}

#[test]
fn serde_structs_with_aliases_or_other_orders_read_by_name() {
    let schema = parse(
        r#"{"type":"record","name":"R","namespace":"t","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#,
    );
    let datum = PlainAvro::new(schema.clone())
        .encode_value(&record(&[("a", Value::Int(1)), ("b", s("x"))]))
        .unwrap();
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct Swapped {
        b: String,
        a: i32,
    }
    assert_eq!(
        schema.decode_into::<Swapped>(&datum, None).unwrap(),
        Swapped { b: "x".into(), a: 1 }
    );
    // `fields` of this struct are ["a", "b", "c"] (with the alias): the same names as the
    // record's in order, but two fields. By position it would read b into c: the count it
    // takes catches that, and by name b is a duplicate of a: an error either way.
    let three = parse(
        r#"{"type":"record","name":"R","namespace":"t","fields":[{"name":"a","type":"int"},{"name":"b","type":"int"},{"name":"c","type":"int"}]}"#,
    );
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Aliased {
        #[serde(alias = "b")]
        a: i32,
        c: i32,
    }
    let e = three.decode_into::<Aliased>(&[2, 4, 6], None).unwrap_err();
    assert!(e.to_string().contains("duplicate field `a`"), "{e}");
    // A field the struct lacks is ignored; a type error names the field.
    #[derive(Debug, PartialEq, serde::Deserialize)]
    struct OnlyB {
        b: String,
    }
    assert_eq!(
        schema.decode_into::<OnlyB>(&datum, None).unwrap(),
        OnlyB { b: "x".into() }
    );
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Wrong {
        a: String,
        b: String,
    }
    let e = schema.decode_into::<Wrong>(&datum, None).unwrap_err();
    assert!(
        e.to_string().contains("(in field a)") && e.to_string().contains("Wrong"),
        "{e}"
    );
}

/// A struct whose hand-written `Deserialize` takes only maps, as many written for JSON do.
#[derive(Debug, PartialEq)]
struct MapOnly {
    a: i32,
    b: String,
}

impl<'de> serde::Deserialize<'de> for MapOnly {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = MapOnly;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut m: M) -> Result<MapOnly, M::Error> {
                let (mut a, mut b) = (None, None);
                while let Some(k) = m.next_key::<String>()? {
                    match k.as_str() {
                        "a" => a = Some(m.next_value()?),
                        "b" => b = Some(m.next_value()?),
                        _ => m.next_value::<serde::de::IgnoredAny>().map(drop)?,
                    }
                }
                Ok(MapOnly {
                    a: a.ok_or_else(|| serde::de::Error::missing_field("a"))?,
                    b: b.ok_or_else(|| serde::de::Error::missing_field("b"))?,
                })
            }
        }
        d.deserialize_struct("MapOnly", &["a", "b"], V)
    }
}

#[test]
fn structs_that_take_only_maps_are_read_by_name() {
    let schema = parse(
        r#"{"type":"record","name":"R","namespace":"t","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"}]}"#,
    );
    let datum = PlainAvro::new(schema.clone())
        .encode_value(&record(&[("a", Value::Int(1)), ("b", s("x"))]))
        .unwrap();
    let want = MapOnly { a: 1, b: "x".into() };
    // The first datum fails as a sequence and is read again by name; the plan then gives
    // records by name.
    for _ in 0..3 {
        assert_eq!(schema.decode_into::<MapOnly>(&datum, None).unwrap(), want);
    }
    // A datum that fails both ways fails with the by-name error.
    let e = schema.decode_into::<MapOnly>(&datum[..2], None).unwrap_err();
    assert!(
        e.to_string().contains("but only 0 are left") && e.to_string().contains("(in field b)"),
        "{e}"
    );
}

#[test]
fn generic_records_are_read_and_written_by_name() {
    let schema = parse(
        r#"{"type":"record","name":"User","namespace":"t","fields":[
            {"name":"name","type":"string"},{"name":"age","type":"int","default":7},
            {"name":"home","type":["null",{"type":"record","name":"Address","fields":[{"name":"city","type":"string"}]}],"default":null}]}"#,
    );
    let mut user = schema.new_record().unwrap();
    assert_eq!(user.get("age"), Some(&GenericValue::Int(7)), "defaults filled in");
    user.put("name", "ann").unwrap();
    let mut home = user.new_record_for("home").unwrap();
    assert_eq!(home.full_name(), "t.Address");
    home.put("city", "Oslo").unwrap();
    user.put("home", home).unwrap();
    assert!(user.put("nope", 1).is_err());
    let plain = PlainAvro::new(schema.clone());
    let datum = plain.encode_generic(&GenericValue::Record(user.clone())).unwrap();
    assert_eq!(datum, b"\x06ann\x0e\x02\x08Oslo");
    let back = plain.decode_generic(&datum).unwrap();
    assert_eq!(back, GenericValue::Record(user.clone()));
    let back = back.into_record().unwrap();
    assert_eq!(
        back.get("home")
            .and_then(|h| h.as_record())
            .and_then(|h| h.get("city"))
            .and_then(GenericValue::as_str),
        Some("Oslo")
    );
    assert_eq!(
        back.fields().map(|(n, _)| n).collect::<Vec<_>>(),
        ["name", "age", "home"]
    );
    // Conversions to and from apache-avro's values.
    let v = user.to_value().unwrap();
    assert_eq!(plain.decode_value(&datum).unwrap(), v);
    assert_eq!(schema.generic_from_value(&v).unwrap(), GenericValue::Record(user));
    // A value that does not fit the schema is refused naming where, and writes nothing.
    let mut bad = schema.new_record().unwrap();
    bad.put("name", 3).unwrap();
    let mut out = vec![9];
    let e = schema.encode_generic(&GenericValue::Record(bad), &mut out).unwrap_err();
    assert!(
        e.to_string()
            .contains("int where the schema has string (in field name)"),
        "{e}"
    );
    assert_eq!(out, [9]);
}

#[test]
fn the_serde_encoder_writes_fields_in_the_schema_order() {
    let schema = parse(
        r#"{"type":"record","name":"R","namespace":"t","fields":[{"name":"a","type":"int"},{"name":"b","type":"string"},{"name":"c","type":["null","long"]}]}"#,
    );
    #[derive(serde::Serialize)]
    struct InOrder {
        a: i32,
        b: &'static str,
        c: Option<i64>,
    }
    #[derive(serde::Serialize)]
    struct OutOfOrder {
        c: Option<i64>,
        a: i32,
        b: &'static str,
    }
    #[derive(serde::Serialize)]
    struct Missing {
        a: i32,
    }
    let mut x = Vec::new();
    schema
        .encode(
            &InOrder {
                a: 1,
                b: "x",
                c: Some(2),
            },
            &mut x,
        )
        .unwrap();
    assert_eq!(x, b"\x02\x02x\x02\x04");
    let mut y = Vec::new();
    schema
        .encode(
            &OutOfOrder {
                c: Some(2),
                a: 1,
                b: "x",
            },
            &mut y,
        )
        .unwrap();
    assert_eq!(x, y, "apache-avro would write these in the struct's order");
    let e = schema.encode(&Missing { a: 1 }, &mut Vec::new()).unwrap_err();
    assert!(e.to_string().contains("field b of t.R is missing"), "{e}");
}
