//! The compiled decode plans and encoders against the datum codec that came before them, on
//! seeded random values and random bytes: the same bytes written, the same values read, the
//! same datums refused; and hostile input (cut short, huge lengths, deep nesting) refused
//! with an error naming what was wrong, never a panic or a huge allocation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;

use strom_registry::apache_avro::schema::Schema;
use strom_registry::apache_avro::types::Value;
use strom_registry::avro::{AvroSchema, PlainAvro};

/// xorshift64*: reproducible without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn long(&mut self) -> i64 {
        match self.below(6) {
            0 => 0,
            1 => i64::MIN + self.below(3) as i64,
            2 => i64::MAX - self.below(3) as i64,
            3 => self.next() as i64,
            _ => self.below(300) as i64 - 150,
        }
    }

    fn int(&mut self) -> i32 {
        match self.below(4) {
            0 => i32::MIN,
            1 => i32::MAX,
            2 => self.next() as i32,
            _ => self.below(300) as i32 - 150,
        }
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn string(&mut self) -> String {
        let n = self.below(12) as usize;
        (0..n)
            .map(|_| match self.below(10) {
                0 => 'é',
                1 => '水',
                2 => '🦀',
                _ => char::from(b'a' + self.below(26) as u8),
            })
            .collect()
    }

    fn double(&mut self) -> f64 {
        match self.below(6) {
            0 => f64::NAN,
            1 => f64::NEG_INFINITY,
            2 => -0.0,
            3 => f64::from_bits(self.next()),
            _ => self.below(1000) as f64 / 8.0,
        }
    }
}

/// The named types of `schema`, by full name (to follow references).
fn named(schema: &Schema, out: &mut HashMap<String, Schema>) {
    match schema {
        Schema::Record(r) if out.insert(r.name.fullname(None), schema.clone()).is_none() => {
            for f in &r.fields {
                named(&f.schema, out);
            }
        }
        Schema::Enum(e) => {
            out.insert(e.name.fullname(None), schema.clone());
        }
        Schema::Fixed(f) => {
            out.insert(f.name.fullname(None), schema.clone());
        }
        Schema::Array(a) => named(&a.items, out),
        Schema::Map(m) => named(&m.types, out),
        Schema::Union(u) => u.variants().iter().for_each(|b| named(b, out)),
        _ => {}
    }
}

/// A random value of `schema`; deep down, unions take their null branch and collections are
/// empty, so recursive schemas end.
fn value(schema: &Schema, names: &HashMap<String, Schema>, rng: &mut Rng, depth: usize) -> Value {
    let len = |rng: &mut Rng| if depth > 4 { 0 } else { rng.below(4) as usize };
    match schema {
        Schema::Null => Value::Null,
        Schema::Boolean => Value::Boolean(rng.below(2) == 1),
        Schema::Int => Value::Int(rng.int()),
        Schema::Long => Value::Long(rng.long()),
        Schema::Float => Value::Float(rng.double() as f32),
        Schema::Double => Value::Double(rng.double()),
        Schema::Bytes => {
            let n = len(rng) * 3;
            Value::Bytes(rng.bytes(n))
        }
        Schema::String => Value::String(rng.string()),
        Schema::Fixed(f) => Value::Fixed(f.size, rng.bytes(f.size)),
        Schema::Enum(e) => {
            let i = rng.below(e.symbols.len() as u64) as usize;
            Value::Enum(i as u32, e.symbols[i].clone())
        }
        Schema::Array(a) => Value::Array((0..len(rng)).map(|_| value(&a.items, names, rng, depth + 1)).collect()),
        Schema::Map(m) => Value::Map(
            (0..len(rng))
                .map(|_| (rng.string(), value(&m.types, names, rng, depth + 1)))
                .collect(),
        ),
        Schema::Union(u) => {
            let b = u.variants();
            let i = match b.iter().position(|s| *s == Schema::Null) {
                Some(null) if depth > 4 => null,
                _ => rng.below(b.len() as u64) as usize,
            };
            Value::Union(i as u32, Box::new(value(&b[i], names, rng, depth + 1)))
        }
        Schema::Record(r) => Value::Record(
            r.fields
                .iter()
                .map(|f| (f.name.clone(), value(&f.schema, names, rng, depth + 1)))
                .collect(),
        ),
        Schema::Ref { name } => value(&names[&name.fullname(None)], names, rng, depth),
        Schema::Decimal(d) => match &*d.inner {
            Schema::Fixed(f) => Value::Decimal(rng.bytes(f.size).into()),
            _ => {
                let n = 1 + rng.below(6) as usize;
                Value::Decimal(rng.bytes(n).into())
            }
        },
        Schema::Uuid => Value::Uuid(strom_registry::apache_avro::Uuid::from_u64_pair(rng.next(), rng.next())),
        Schema::Date => Value::Date(rng.int()),
        Schema::TimeMillis => Value::TimeMillis(rng.int()),
        Schema::TimeMicros => Value::TimeMicros(rng.long()),
        Schema::TimestampMillis => Value::TimestampMillis(rng.long()),
        Schema::TimestampMicros => Value::TimestampMicros(rng.long()),
        Schema::TimestampNanos => Value::TimestampNanos(rng.long()),
        Schema::LocalTimestampMillis => Value::LocalTimestampMillis(rng.long()),
        Schema::LocalTimestampMicros => Value::LocalTimestampMicros(rng.long()),
        Schema::LocalTimestampNanos => Value::LocalTimestampNanos(rng.long()),
        Schema::Duration => {
            let b: [u8; 12] = rng.bytes(12).try_into().unwrap();
            Value::Duration(b.into())
        }
        Schema::BigDecimal => Value::Null,
    }
}

/// `v` comparable whatever order its maps' entries come in and with NaNs equal: maps as
/// sorted lists, floats as their bits.
fn canon(v: &Value) -> Value {
    match v {
        Value::Float(f) => Value::Long(i64::from(f.to_bits())),
        Value::Double(d) => Value::Long(d.to_bits() as i64),
        Value::Array(a) => Value::Array(a.iter().map(canon).collect()),
        Value::Map(m) => {
            let mut e: Vec<(String, Value)> = m.iter().map(|(k, v)| (k.clone(), canon(v))).collect();
            e.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Record(e)
        }
        Value::Record(r) => Value::Record(r.iter().map(|(k, v)| (k.clone(), canon(v))).collect()),
        Value::Union(i, b) => Value::Union(*i, Box::new(canon(b))),
        other => other.clone(),
    }
}

/// No map in `v` has more than one entry (so its encoding does not depend on a HashMap's
/// order).
fn small_maps(v: &Value) -> bool {
    match v {
        Value::Map(m) => m.len() < 2 && m.values().all(small_maps),
        Value::Array(a) => a.iter().all(small_maps),
        Value::Record(r) => r.iter().all(|(_, v)| small_maps(v)),
        Value::Union(_, b) => small_maps(b),
        _ => true,
    }
}

const ALL: &str = r#"{"type":"record","name":"All","namespace":"p","fields":[
    {"name":"n","type":"null"},{"name":"b","type":"boolean"},{"name":"i","type":"int"},
    {"name":"l","type":"long"},{"name":"f","type":"float"},{"name":"d","type":"double"},
    {"name":"by","type":"bytes"},{"name":"s","type":"string"},
    {"name":"e","type":{"type":"enum","name":"E","symbols":["A","B","C"]}},
    {"name":"x","type":{"type":"fixed","name":"X","size":4}},
    {"name":"u","type":["null","string","long",{"type":"record","name":"In","fields":[{"name":"k","type":"E"}]}]},
    {"name":"arr","type":{"type":"array","items":["null",{"type":"map","values":"In"}]}},
    {"name":"nested","type":{"type":"record","name":"Nested","fields":[
        {"name":"again","type":"In"},{"name":"fx","type":"X"},{"name":"empty","type":{"type":"record","name":"Empty","fields":[]}}]}},
    {"name":"empties","type":{"type":"array","items":"Empty"}},
    {"name":"dec","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":2}},
    {"name":"decf","type":{"type":"fixed","name":"DF","size":5,"logicalType":"decimal","precision":9,"scale":2}},
    {"name":"day","type":{"type":"int","logicalType":"date"}},
    {"name":"tm","type":{"type":"int","logicalType":"time-millis"}},
    {"name":"tu","type":{"type":"long","logicalType":"time-micros"}},
    {"name":"ts","type":{"type":"long","logicalType":"timestamp-nanos"}},
    {"name":"lts","type":{"type":"long","logicalType":"local-timestamp-millis"}},
    {"name":"id","type":{"type":"string","logicalType":"uuid"}},
    {"name":"dur","type":{"type":"fixed","name":"D","size":12,"logicalType":"duration"}}]}"#;

const LIST: &str = r#"{"type":"record","name":"List","namespace":"p","fields":[
    {"name":"v","type":"long"},{"name":"kids","type":{"type":"array","items":"List"}},
    {"name":"next","type":["null","List"]}]}"#;

const TOP_LEVEL: &[&str] = &[
    r#"{"type":"map","values":{"type":"array","items":["null",{"type":"map","values":"string"}]}}"#,
    r#"["null","double",{"type":"array","items":"int"}]"#,
    r#""string""#,
];

fn schemas() -> Vec<AvroSchema> {
    [ALL, LIST]
        .iter()
        .chain(TOP_LEVEL)
        .map(|s| AvroSchema::parse(s).unwrap())
        .collect()
}

fn names_of(s: &AvroSchema) -> HashMap<String, Schema> {
    let mut names = HashMap::new();
    named(s.schema(), &mut names);
    names
}

#[test]
fn plans_read_and_write_what_the_datum_codec_does() {
    let mut rng = Rng(0x5eed_0001);
    for schema in schemas() {
        let names = names_of(&schema);
        let plain = PlainAvro::new(schema.clone());
        for _ in 0..300 {
            let v = value(schema.schema(), &names, &mut rng, 0);
            let old = plain.encode_value(&v).unwrap();
            // Writing: the generic encoder writes the same bytes (maps of two entries or more
            // aside: their order is the HashMap's).
            let g = schema.generic_from_value(&v).unwrap();
            let new = plain.encode_generic(&g).unwrap();
            if small_maps(&v) {
                assert_eq!(new, old, "{v:?}");
            }
            let again = schema.generic_to_value(&plain.decode_generic(&new).unwrap()).unwrap();
            assert_eq!(canon(&again), canon(&v));
            // Reading: the same value.
            let read = plain.decode_generic(&old).unwrap();
            let as_value = schema.generic_to_value(&read).unwrap();
            let before = plain.decode_value(&old).unwrap();
            assert_eq!(canon(&as_value), canon(&before));
            assert_eq!(canon(&as_value), canon(&v));
            // Serde reads every value through the plan too.
            plain.decode::<serde::de::IgnoredAny>(&old).unwrap();
            // Every datum cut short is refused by all three.
            for cut in 0..old.len() {
                let part = &old[..cut];
                assert!(plain.decode_generic(part).is_err(), "cut at {cut} of {v:?}");
                assert!(plain.decode::<serde::de::IgnoredAny>(part).is_err());
                assert!(plain.decode_value(part).is_err());
            }
        }
    }
}

#[test]
fn random_bytes_are_refused_or_read_alike_and_never_panic() {
    let mut rng = Rng(0x5eed_0002);
    for schema in schemas() {
        let names = names_of(&schema);
        let plain = PlainAvro::new(schema.clone());
        let mut accepted = 0;
        for k in 0..4000 {
            // Random bytes, or a datum with a few bytes changed, inserted or removed.
            let data = if k % 4 == 0 {
                let n = rng.below(40) as usize;
                rng.bytes(n)
            } else {
                let mut d = plain
                    .encode_value(&value(schema.schema(), &names, &mut rng, 0))
                    .unwrap();
                for _ in 0..1 + rng.below(3) {
                    let at = rng.below(d.len() as u64 + 1) as usize;
                    match rng.below(3) {
                        0 if at < d.len() => d[at] = rng.next() as u8,
                        1 => d.insert(at, rng.next() as u8),
                        _ if at < d.len() => {
                            d.remove(at);
                        }
                        _ => {}
                    }
                }
                d
            };
            let new = plain.decode_generic(&data);
            let old = plain.decode_value(&data);
            let serde = plain.decode::<serde::de::IgnoredAny>(&data);
            assert_eq!(new.is_ok(), old.is_ok(), "{data:?}: {new:?} / {old:?}");
            match (new, old) {
                (Ok(new), Ok(old)) => {
                    accepted += 1;
                    let new = schema.generic_to_value(&new).unwrap();
                    assert_eq!(canon(&new), canon(&old));
                    assert!(serde.is_ok(), "{data:?}");
                }
                // Serde gets a uuid's text as it is (a type parses it, or keeps the text).
                (Err(e), _) if serde.is_ok() => assert!(e.to_string().contains("uuid"), "{data:?}: {e}"),
                _ => {}
            }
        }
        eprintln!(
            "{}: {accepted} of 4000 inputs are datums",
            schema.full_name().unwrap_or("-")
        );
        assert!(accepted > 100, "too few datums to compare");
    }
}

/// Writer and reader schemas whose resolution apache-avro's `Value::resolve` does as the
/// specification says: reordered, removed and added fields, promotions, a union widened.
const WRITER: &str = r#"{"type":"record","name":"Ev","namespace":"p","fields":[
    {"name":"a","type":"int"},{"name":"b","type":"string"},{"name":"c","type":"float"},
    {"name":"d","type":["null","string"]},{"name":"e","type":{"type":"array","items":"int"}},
    {"name":"f","type":{"type":"map","values":"long"}},
    {"name":"g","type":{"type":"enum","name":"G","symbols":["X","Y","Z"]}},
    {"name":"gone","type":{"type":"record","name":"Gone","fields":[{"name":"q","type":{"type":"array","items":"string"}}]}},
    {"name":"sub","type":{"type":"record","name":"Sub","fields":[{"name":"s1","type":"int"},{"name":"s2","type":"bytes"}]}}]}"#;

const READER: &str = r#"{"type":"record","name":"Ev","namespace":"p","fields":[
    {"name":"sub","type":{"type":"record","name":"Sub","fields":[{"name":"s2","type":"bytes"},{"name":"s1","type":"long"},{"name":"s3","type":"string","default":"d"}]}},
    {"name":"g","type":{"type":"enum","name":"G","symbols":["Z","Y","X"]}},
    {"name":"f","type":{"type":"map","values":"double"}},
    {"name":"e","type":{"type":"array","items":"long"}},
    {"name":"d","type":["null","string","int"]},
    {"name":"c","type":"double"},{"name":"b","type":"string"},{"name":"a","type":"long"},
    {"name":"added","type":"string","default":"x"},{"name":"added2","type":["null","int"],"default":null}]}"#;

#[test]
fn resolution_agrees_with_apache_avro_where_it_follows_the_specification() {
    let (w, r) = (AvroSchema::parse(WRITER).unwrap(), AvroSchema::parse(READER).unwrap());
    let names = names_of(&w);
    let (writer, resolving) = (PlainAvro::new(w.clone()), PlainAvro::resolving(w.clone(), r.clone()));
    let reader = PlainAvro::new(r.clone());
    let mut rng = Rng(0x5eed_0003);
    for _ in 0..500 {
        let v = value(w.schema(), &names, &mut rng, 0);
        let datum = writer.encode_value(&v).unwrap();
        let new = r.generic_to_value(&resolving.decode_generic(&datum).unwrap()).unwrap();
        let old = resolving.decode_value(&datum).unwrap();
        assert_eq!(canon(&new), canon(&old), "{v:?}");
        reader.encode_value(&new).unwrap();
        resolving.decode::<serde::de::IgnoredAny>(&datum).unwrap();
        for cut in 0..datum.len() {
            assert!(resolving.decode_generic(&datum[..cut]).is_err());
            assert!(resolving.decode::<serde::de::IgnoredAny>(&datum[..cut]).is_err());
        }
    }
}

#[test]
fn serde_types_encode_as_apache_avro_does_and_read_back() {
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    enum Kind {
        #[serde(rename = "VIEW")]
        View,
        #[serde(rename = "CLICK")]
        Click,
    }
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Inner {
        sid: String,
        start: i64,
    }
    #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Event {
        id: i64,
        user: String,
        score: f64,
        count: i32,
        active: bool,
        country: Option<String>,
        kind: Kind,
        tags: Vec<String>,
        amounts: Vec<i64>,
        by: HashMap<String, Inner>,
        inner: Option<Inner>,
        small: u8,
        wide: u32,
        f: f32,
    }
    let schema = AvroSchema::parse(
        r#"{"type":"record","name":"Event","namespace":"p","fields":[
        {"name":"id","type":"long"},{"name":"user","type":"string"},{"name":"score","type":"double"},
        {"name":"count","type":"int"},{"name":"active","type":"boolean"},
        {"name":"country","type":["null","string"]},
        {"name":"kind","type":{"type":"enum","name":"Kind","symbols":["VIEW","CLICK"]}},
        {"name":"tags","type":{"type":"array","items":"string"}},
        {"name":"amounts","type":{"type":"array","items":"long"}},
        {"name":"by","type":{"type":"map","values":{"type":"record","name":"Inner","fields":[{"name":"sid","type":"string"},{"name":"start","type":"long"}]}}},
        {"name":"inner","type":["null",{"type":"record","name":"Inner2","fields":[{"name":"sid","type":"string"},{"name":"start","type":"long"}]}]},
        {"name":"small","type":"int"},{"name":"wide","type":"long"},{"name":"f","type":"float"}]}"#,
    )
    .unwrap();
    let mut rng = Rng(0x5eed_0004);
    for _ in 0..500 {
        let n = rng.below(3) as usize;
        let inner = |rng: &mut Rng| Inner {
            sid: rng.string(),
            start: rng.long(),
        };
        let e = Event {
            id: rng.long(),
            user: rng.string(),
            score: rng.below(1000) as f64 / 4.0,
            count: rng.int(),
            active: rng.below(2) == 0,
            country: (rng.below(2) == 0).then(|| rng.string()),
            kind: if rng.below(2) == 0 { Kind::View } else { Kind::Click },
            tags: (0..n).map(|_| rng.string()).collect(),
            amounts: (0..rng.below(2000)).map(|_| rng.long()).collect(),
            by: (0..n).map(|_| (rng.string(), inner(&mut rng))).collect(),
            inner: (rng.below(2) == 0).then(|| inner(&mut rng)),
            small: rng.next() as u8,
            wide: rng.next() as u32,
            f: rng.below(100) as f32 / 2.0,
        };
        let mut ours = Vec::new();
        schema.encode(&e, &mut ours).unwrap();
        let theirs = strom_registry::apache_avro::to_avro_datum(
            schema.schema(),
            strom_registry::apache_avro::to_value(&e)
                .unwrap()
                .resolve(schema.schema())
                .unwrap(),
        )
        .unwrap();
        let mut direct = Vec::new();
        strom_registry::apache_avro::write_avro_datum_ref(schema.schema(), &e, &mut direct).unwrap();
        assert_eq!(ours, direct, "apache-avro's serde writer");
        // (A map's entries come in the HashMap's order, the same for both only when n < 2;
        // apache-avro's value writer puts an array in one block, its serde writer in blocks
        // of at most 1025.)
        if n < 2 && e.amounts.len() <= 1025 {
            assert_eq!(ours, theirs, "apache-avro's value writer");
        }
        assert_eq!(schema.decode_into::<Event>(&ours, None).unwrap(), e);
    }
}

#[test]
fn hostile_lengths_and_counts_are_refused_with_what_was_wrong() {
    let plain = |s: &str| PlainAvro::new(AvroSchema::parse(s).unwrap());
    let huge = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]; // 2^62
    let cases: &[(&str, &[u8], &str)] = &[
        (
            r#""string""#,
            &huge,
            "a string of 4611686018427387903 bytes but only 0 are left",
        ),
        (r#""bytes""#, &[0x01], "bytes with a negative length -1"),
        (
            r#"{"type":"array","items":"long"}"#,
            &huge,
            "an array block of 4611686018427387903 items but only 0 bytes are left",
        ),
        (r#"{"type":"map","values":"long"}"#, &huge, "a map block of"),
        (
            r#"{"type":"array","items":"null"}"#,
            &[0x80, 0xa8, 0xd6, 0xb9, 0x07, 0x00],
            "zero-size items",
        ),
        (r#""long""#, &[0xff; 11], "longer than 64 bits"),
        (r#""int""#, &[0x80, 0x80, 0x80, 0x80, 0x10], "out of the 32-bit range"),
        (
            r#"["null","int"]"#,
            &[0x04],
            "union index 2 but the union has 2 branches",
        ),
        (
            r#"{"type":"enum","name":"E","symbols":["A"]}"#,
            &[0x02],
            "enum index 1 but E has 1 symbols",
        ),
        (r#""boolean""#, &[0x02], "boolean byte 2"),
        (r#""string""#, &[0x02, 0xff], "is not UTF-8"),
        (
            r#"{"type":"fixed","name":"F","size":4}"#,
            &[1, 2],
            "a fixed of 4 bytes but only 2 are left",
        ),
        (r#""double""#, &[1, 2, 3], "ends inside a double"),
        (r#""null""#, &[0], "1 bytes left after the Avro datum"),
        (
            r#"{"type":"record","name":"R","fields":[{"name":"outer","type":{"type":"record","name":"S","fields":[{"name":"inner","type":"string"}]}}]}"#,
            &[0x08, b'a'],
            "(in field outer.inner)",
        ),
    ];
    for (schema, data, want) in cases {
        let p = plain(schema);
        let e = p.decode_generic(data).unwrap_err();
        assert!(e.to_string().contains(want), "{schema}: {e} lacks {want:?}");
        let e = p.decode::<serde::de::IgnoredAny>(data).unwrap_err();
        assert!(e.to_string().contains(want), "{schema} (serde): {e} lacks {want:?}");
    }
    // A long list nests past the bound: an error, not a stack overflow.
    let list = plain(r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}"#);
    let deep = vec![0x02u8; 100_000];
    assert!(list
        .decode_generic(&deep)
        .unwrap_err()
        .to_string()
        .contains("nests over"));
    assert!(list.decode::<serde::de::IgnoredAny>(&deep).is_err());
}
