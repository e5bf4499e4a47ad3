//! A bounded Avro binary decoder into `apache_avro` values.
//!
//! apache-avro's own `from_avro_datum` trusts lengths (it allocates a string's or an array's
//! declared size before reading, up to 512 MiB) and turns a datum cut short inside a string,
//! boolean or union into `Null` instead of an error. Records from Kafka are untrusted bytes,
//! so this decoder checks every length against the bytes left, caps the element count of
//! arrays and maps of zero-size items, bounds nesting, and fails on anything short.
//! Schema resolution (writer to reader) stays apache-avro's `Value::resolve`.

use std::collections::HashMap;

use apache_avro::schema::{Name, Schema};
use apache_avro::types::Value;

use crate::error::{Error, Result};

/// Deepest nesting of records, arrays, maps and unions read.
const MAX_DEPTH: usize = 256;

/// Most elements, in all, of arrays and maps whose items can take no bytes (nulls, empty
/// records) in one datum: they cannot be bounded by the bytes left (a few bytes could
/// otherwise declare billions of them).
const MAX_ZERO_SIZE_ITEMS: usize = 1 << 16;

/// The named types (records, enums, fixed) of a schema and its references, by full name.
#[derive(Debug)]
pub(crate) struct Names {
    map: HashMap<String, Schema>,
}

impl Names {
    pub(crate) fn collect(schemata: &[&Schema]) -> Names {
        let mut map = HashMap::new();
        let mut stack: Vec<&Schema> = schemata.to_vec();
        while let Some(s) = stack.pop() {
            match s {
                Schema::Record(r) => {
                    let first_time = map.insert(r.name.fullname(None), s.clone()).is_none();
                    // A recursive record meets itself again through a Ref, not here, but a
                    // record used twice is walked once.
                    if first_time {
                        stack.extend(r.fields.iter().map(|f| &f.schema));
                    }
                }
                Schema::Enum(e) => {
                    map.insert(e.name.fullname(None), s.clone());
                }
                Schema::Fixed(f) => {
                    map.insert(f.name.fullname(None), s.clone());
                }
                Schema::Array(a) => stack.push(&a.items),
                Schema::Map(m) => stack.push(&m.types),
                Schema::Union(u) => stack.extend(u.variants()),
                Schema::Decimal(d) => stack.push(&d.inner),
                _ => {}
            }
        }
        Names { map }
    }

    pub(crate) fn get(&self, name: &Name) -> Result<&Schema> {
        self.map.get(&name.fullname(None)).ok_or_else(|| {
            Error::serialization(format!(
                "the Avro schema refers to {} which it does not define",
                name.fullname(None)
            ))
        })
    }
}

struct Reader<'a, 'n> {
    data: &'a [u8],
    names: &'n Names,
    zero_size_items: usize,
}

fn short(what: &str) -> Error {
    Error::serialization(format!(
        "the Avro datum ends inside {what} (truncated, or not written with this schema)"
    ))
}

impl<'a> Reader<'a, '_> {
    fn long(&mut self) -> Result<i64> {
        let mut v: u64 = 0;
        for i in 0..10 {
            let Some((&b, rest)) = self.data.split_first() else {
                return Err(short("a number"));
            };
            self.data = rest;
            if i == 9 && b > 1 {
                return Err(Error::serialization("an Avro varint is longer than 64 bits"));
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(((v >> 1) as i64) ^ -((v & 1) as i64));
            }
        }
        Err(Error::serialization("an Avro varint is longer than 64 bits"))
    }

    fn int(&mut self) -> Result<i32> {
        let v = self.long()?;
        i32::try_from(v).map_err(|_| Error::serialization(format!("Avro int {v} is out of the 32-bit range")))
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        if n > self.data.len() {
            return Err(Error::serialization(format!(
                "{what} of {n} bytes but only {} are left (truncated, or not written with this schema)",
                self.data.len()
            )));
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    fn len(&mut self, what: &str) -> Result<usize> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| Error::serialization(format!("{what} with a negative length {n}")))
    }

    /// An enum's index and symbol, checked against the enum's symbols.
    fn enum_symbol<'s>(&mut self, e: &'s apache_avro::schema::EnumSchema) -> Result<(u32, &'s String)> {
        let i = self.int()?;
        let symbol = usize::try_from(i).ok().and_then(|i| e.symbols.get(i)).ok_or_else(|| {
            Error::serialization(format!(
                "Avro enum index {i} but {} has {} symbols",
                e.name.fullname(None),
                e.symbols.len()
            ))
        })?;
        Ok((i as u32, symbol))
    }

    /// A union's branch index and schema, checked against its branches.
    fn union_branch<'s>(&mut self, variants: &'s [Schema]) -> Result<(u32, &'s Schema)> {
        let i = self.long()?;
        let branch = usize::try_from(i).ok().and_then(|i| variants.get(i)).ok_or_else(|| {
            Error::serialization(format!(
                "Avro union index {i} but the union has {} branches",
                variants.len()
            ))
        })?;
        Ok((i as u32, branch))
    }

    fn bytes(&mut self, what: &str) -> Result<Vec<u8>> {
        let n = self.len(what)?;
        Ok(self.take(n, what)?.to_vec())
    }

    fn fixed<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let b = self.take(N, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(b);
        Ok(out)
    }

    /// The element count of the next array or map block (0 ends it); a negative count is
    /// followed by the block's size in bytes, which is skipped.
    fn block(&mut self, item: &Schema, what: &str) -> Result<usize> {
        let n = self.long()?;
        let count = if n < 0 {
            self.long()?;
            n.checked_neg()
                .ok_or_else(|| Error::serialization(format!("{what} block count overflows")))?
        } else {
            n
        };
        let count = usize::try_from(count).map_err(|_| Error::serialization(format!("{what} block count {count}")))?;
        if min_size(item, self.names, 0) == 0 {
            self.zero_size_items = self.zero_size_items.saturating_add(count);
            if self.zero_size_items > MAX_ZERO_SIZE_ITEMS {
                return Err(Error::serialization(format!(
                    "{what} of more than {MAX_ZERO_SIZE_ITEMS} zero-size items in one datum"
                )));
            }
        } else if count > self.data.len() {
            return Err(Error::serialization(format!(
                "{what} block of {count} items but only {} bytes are left",
                self.data.len()
            )));
        }
        Ok(count)
    }

    /// Containers and references here, everything else in `leaf`: this frame is on the
    /// stack once per nesting level, so it must stay small (in debug builds too).
    fn value(&mut self, schema: &Schema, depth: usize) -> Result<Value> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        match schema {
            Schema::Array(a) => self.array(&a.items, depth),
            Schema::Map(m) => self.map(&m.types, depth),
            Schema::Union(u) => self.union(u.variants(), depth),
            Schema::Record(r) => self.record(&r.fields, depth),
            Schema::Ref { name } => {
                let names = self.names;
                let s = names.get(name)?;
                self.value(s, depth)
            }
            _ => self.leaf(schema),
        }
    }

    #[inline(never)]
    fn leaf(&mut self, schema: &Schema) -> Result<Value> {
        Ok(match schema {
            Schema::Null => Value::Null,
            Schema::Boolean => match self.take(1, "a boolean")?[0] {
                0 => Value::Boolean(false),
                1 => Value::Boolean(true),
                b => {
                    return Err(Error::serialization(format!(
                        "Avro boolean byte {b} is neither 0 nor 1"
                    )))
                }
            },
            Schema::Int => Value::Int(self.int()?),
            Schema::Long => Value::Long(self.long()?),
            Schema::Float => Value::Float(f32::from_le_bytes(self.fixed::<4>("a float")?)),
            Schema::Double => Value::Double(f64::from_le_bytes(self.fixed::<8>("a double")?)),
            Schema::Bytes => Value::Bytes(self.bytes("bytes")?),
            Schema::String => {
                let b = self.bytes("a string")?;
                Value::String(
                    String::from_utf8(b)
                        .map_err(|e| Error::serialization("an Avro string is not UTF-8").with_source(e))?,
                )
            }
            Schema::Enum(e) => {
                let (i, symbol) = self.enum_symbol(e)?;
                Value::Enum(i, symbol.clone())
            }
            Schema::Fixed(f) => Value::Fixed(f.size, self.take(f.size, "a fixed")?.to_vec()),
            Schema::Decimal(d) => {
                let b = match &*d.inner {
                    Schema::Fixed(f) => self.take(f.size, "a decimal")?.to_vec(),
                    _ => self.bytes("a decimal")?,
                };
                Value::Decimal(apache_avro::Decimal::from(b))
            }
            Schema::BigDecimal => {
                return Err(Error::serialization(
                    "the big-decimal logical type is not read (it is apache-avro's, not in the Avro specification)",
                ))
            }
            Schema::Uuid => {
                let b = self.bytes("a uuid")?;
                let u = if b.len() == 16 {
                    apache_avro::Uuid::from_slice(&b).ok()
                } else {
                    std::str::from_utf8(&b)
                        .ok()
                        .and_then(|s| apache_avro::Uuid::parse_str(s).ok())
                };
                Value::Uuid(u.ok_or_else(|| Error::serialization("an Avro uuid is neither 16 bytes nor UUID text"))?)
            }
            Schema::Date => Value::Date(self.int()?),
            Schema::TimeMillis => Value::TimeMillis(self.int()?),
            Schema::TimeMicros => Value::TimeMicros(self.long()?),
            Schema::TimestampMillis => Value::TimestampMillis(self.long()?),
            Schema::TimestampMicros => Value::TimestampMicros(self.long()?),
            Schema::TimestampNanos => Value::TimestampNanos(self.long()?),
            Schema::LocalTimestampMillis => Value::LocalTimestampMillis(self.long()?),
            Schema::LocalTimestampMicros => Value::LocalTimestampMicros(self.long()?),
            Schema::LocalTimestampNanos => Value::LocalTimestampNanos(self.long()?),
            Schema::Duration => Value::Duration(apache_avro::Duration::from(self.fixed::<12>("a duration")?)),
            Schema::Array(_) | Schema::Map(_) | Schema::Union(_) | Schema::Record(_) | Schema::Ref { .. } => {
                return Err(Error::serialization(
                    "an Avro container reached the leaf decoder (a bug)",
                ))
            }
        })
    }

    // The containers are out of line so that `value`'s frame stays small: nesting is bounded
    // by MAX_DEPTH, and each level costs `value` plus one of these.

    #[inline(never)]
    fn array(&mut self, item: &Schema, depth: usize) -> Result<Value> {
        let mut items = Vec::new();
        loop {
            let n = self.block(item, "an array")?;
            if n == 0 {
                break;
            }
            items.reserve(n.min(self.data.len().max(16)));
            for _ in 0..n {
                items.push(self.value(item, depth + 1)?);
            }
        }
        Ok(Value::Array(items))
    }

    #[inline(never)]
    fn map(&mut self, item: &Schema, depth: usize) -> Result<Value> {
        let mut map = HashMap::new();
        loop {
            let n = self.block(item, "a map")?;
            if n == 0 {
                break;
            }
            for _ in 0..n {
                let k = self.bytes("a map key")?;
                let k = String::from_utf8(k)
                    .map_err(|e| Error::serialization("an Avro map key is not UTF-8").with_source(e))?;
                let v = self.value(item, depth + 1)?;
                map.insert(k, v);
            }
        }
        Ok(Value::Map(map))
    }

    #[inline(never)]
    fn union(&mut self, variants: &[Schema], depth: usize) -> Result<Value> {
        let (i, variant) = self.union_branch(variants)?;
        Ok(Value::Union(i, Box::new(self.value(variant, depth + 1)?)))
    }

    #[inline(never)]
    fn record(&mut self, fields: &[apache_avro::schema::RecordField], depth: usize) -> Result<Value> {
        let mut out = Vec::with_capacity(fields.len());
        for f in fields {
            out.push((f.name.clone(), self.value(&f.schema, depth + 1)?));
        }
        Ok(Value::Record(out))
    }
}

#[cold]
fn too_deep() -> Error {
    Error::serialization(format!("an Avro datum nests over {MAX_DEPTH} levels"))
}

/// The fewest bytes a value of `schema` can take (0 or more).
fn min_size(schema: &Schema, names: &Names, depth: usize) -> usize {
    if depth > MAX_DEPTH {
        return 1;
    }
    match schema {
        Schema::Null => 0,
        Schema::Record(r) => r.fields.iter().map(|f| min_size(&f.schema, names, depth + 1)).sum(),
        Schema::Fixed(f) => f.size,
        Schema::Decimal(d) => match &*d.inner {
            Schema::Fixed(f) => f.size,
            _ => 1,
        },
        Schema::Ref { name } => names.get(name).map_or(1, |s| min_size(s, names, depth + 1)),
        _ => 1,
    }
}

/// Decodes one datum of `schema` from all of `data`: bytes left over are an error.
pub(crate) fn decode(schema: &Schema, names: &Names, data: &[u8]) -> Result<Value> {
    let mut r = Reader {
        data,
        names,
        zero_size_items: 0,
    };
    let v = r.value(schema, 0)?;
    if !r.data.is_empty() {
        return Err(Error::serialization(format!(
            "{} bytes left after the Avro datum: its writer's schema does not describe it",
            r.data.len()
        )));
    }
    Ok(v)
}

/// Writes `value` as a datum of `schema` to `out`, checking it against the schema as it
/// goes (apache-avro's `to_avro_datum` clones the value and resolves the schema's names on
/// every call). A value that does not match fails naming where: `field.sub-field`.
pub(crate) fn encode(schema: &Schema, names: &Names, value: &Value, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    let mut path = Vec::new();
    let r = encode_value(schema, names, value, out, &mut path, 0);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

fn write_long(v: i64, out: &mut Vec<u8>) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn write_bytes(b: &[u8], out: &mut Vec<u8>) {
    write_long(b.len() as i64, out);
    out.extend_from_slice(b);
}

fn mismatch(schema: &Schema, value: &Value, path: &[&str]) -> Error {
    let at = if path.is_empty() {
        "the value".to_owned()
    } else {
        path.join(".")
    };
    let kind = |v: &Value| -> &'static str {
        match v {
            Value::Null => "null",
            Value::Boolean(_) => "boolean",
            Value::Int(_) => "int",
            Value::Long(_) => "long",
            Value::Float(_) => "float",
            Value::Double(_) => "double",
            Value::Bytes(_) => "bytes",
            Value::String(_) => "string",
            Value::Fixed(..) => "fixed",
            Value::Enum(..) => "enum",
            Value::Union(..) => "union",
            Value::Array(_) => "array",
            Value::Map(_) => "map",
            Value::Record(_) => "record",
            _ => "a logical value",
        }
    };
    Error::serialization(format!(
        "the value does not match its Avro schema: {at} is {} where the schema has {}",
        kind(value),
        schema_kind(schema)
    ))
}

fn schema_kind(s: &Schema) -> String {
    match s {
        Schema::Record(r) => format!("record {}", r.name.fullname(None)),
        Schema::Enum(e) => format!("enum {}", e.name.fullname(None)),
        Schema::Fixed(f) => format!("fixed {} ({} bytes)", f.name.fullname(None), f.size),
        Schema::Ref { name } => name.fullname(None),
        other => format!("{:?}", apache_avro::schema::SchemaKind::from(other)).to_lowercase(),
    }
}

fn encode_value<'s>(
    schema: &'s Schema,
    names: &'s Names,
    value: &Value,
    out: &mut Vec<u8>,
    path: &mut Vec<&'s str>,
    depth: usize,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    match (schema, value) {
        (Schema::Ref { name }, _) => encode_value(names.get(name)?, names, value, out, path, depth),
        (Schema::Null, Value::Null) => Ok(()),
        (Schema::Boolean, Value::Boolean(b)) => {
            out.push(u8::from(*b));
            Ok(())
        }
        (Schema::Int, Value::Int(i)) | (Schema::Date, Value::Date(i)) | (Schema::TimeMillis, Value::TimeMillis(i)) => {
            write_long(i64::from(*i), out);
            Ok(())
        }
        (Schema::Long, Value::Long(l))
        | (Schema::TimeMicros, Value::TimeMicros(l))
        | (Schema::TimestampMillis, Value::TimestampMillis(l))
        | (Schema::TimestampMicros, Value::TimestampMicros(l))
        | (Schema::TimestampNanos, Value::TimestampNanos(l))
        | (Schema::LocalTimestampMillis, Value::LocalTimestampMillis(l))
        | (Schema::LocalTimestampMicros, Value::LocalTimestampMicros(l))
        | (Schema::LocalTimestampNanos, Value::LocalTimestampNanos(l)) => {
            write_long(*l, out);
            Ok(())
        }
        // Avro's promotions: an int where a long (or a timestamp) is written, and so on.
        (Schema::Long | Schema::TimestampMillis | Schema::TimestampMicros, Value::Int(i)) => {
            write_long(i64::from(*i), out);
            Ok(())
        }
        (Schema::Float, Value::Float(f)) => {
            out.extend_from_slice(&f.to_le_bytes());
            Ok(())
        }
        (Schema::Double, Value::Double(d)) => {
            out.extend_from_slice(&d.to_le_bytes());
            Ok(())
        }
        (Schema::Double, Value::Float(f)) => {
            out.extend_from_slice(&f64::from(*f).to_le_bytes());
            Ok(())
        }
        (Schema::Bytes, Value::Bytes(b)) => {
            write_bytes(b, out);
            Ok(())
        }
        (Schema::String, Value::String(s)) => {
            write_bytes(s.as_bytes(), out);
            Ok(())
        }
        (Schema::Fixed(f), Value::Fixed(n, b)) if *n == f.size && b.len() == f.size => {
            out.extend_from_slice(b);
            Ok(())
        }
        (Schema::Enum(e), Value::Enum(i, sym)) => {
            let ok = e.symbols.get(*i as usize).is_some_and(|s| s == sym);
            match ok
                .then_some(*i as usize)
                .or_else(|| e.symbols.iter().position(|s| s == sym))
            {
                Some(i) => {
                    write_long(i as i64, out);
                    Ok(())
                }
                None => Err(Error::serialization(format!(
                    "the value does not match its Avro schema: {sym} is not a symbol of {}",
                    e.name.fullname(None)
                ))),
            }
        }
        (Schema::Enum(e), Value::String(sym)) => match e.symbols.iter().position(|s| s == sym) {
            Some(i) => {
                write_long(i as i64, out);
                Ok(())
            }
            None => Err(Error::serialization(format!(
                "the value does not match its Avro schema: {sym} is not a symbol of {}",
                e.name.fullname(None)
            ))),
        },
        (Schema::Array(a), Value::Array(items)) => {
            if !items.is_empty() {
                write_long(items.len() as i64, out);
                for v in items {
                    encode_value(&a.items, names, v, out, path, depth + 1)?;
                }
            }
            out.push(0);
            Ok(())
        }
        (Schema::Map(m), Value::Map(entries)) => {
            if !entries.is_empty() {
                write_long(entries.len() as i64, out);
                for (k, v) in entries {
                    write_bytes(k.as_bytes(), out);
                    encode_value(&m.types, names, v, out, path, depth + 1)?;
                }
            }
            out.push(0);
            Ok(())
        }
        (Schema::Union(u), Value::Union(i, inner)) => {
            let branch = u.variants().get(*i as usize).ok_or_else(|| {
                Error::serialization(format!(
                    "the value does not match its Avro schema: union branch {i} of {}",
                    u.variants().len()
                ))
            })?;
            write_long(i64::from(*i), out);
            encode_value(branch, names, inner, out, path, depth + 1)
        }
        (Schema::Union(u), v) => {
            // A bare value: the first branch of its kind (null for Null, and so on).
            let pick = u.variants().iter().position(|b| shallow_match(b, names, v));
            match pick {
                Some(i) => {
                    write_long(i as i64, out);
                    encode_value(&u.variants()[i], names, v, out, path, depth + 1)
                }
                None => Err(mismatch(schema, v, path)),
            }
        }
        (Schema::Record(r), Value::Record(fields)) => {
            for (k, f) in r.fields.iter().enumerate() {
                // Usually in the schema's order; else looked up by name.
                let v = match fields.get(k) {
                    Some((n, v)) if *n == f.name => v,
                    _ => match fields.iter().find(|(n, _)| *n == f.name) {
                        Some((_, v)) => v,
                        None => {
                            path.push(&f.name);
                            let at = path.join(".");
                            return Err(Error::serialization(format!(
                                "the value does not match its Avro schema: field {at} is missing"
                            )));
                        }
                    },
                };
                path.push(&f.name);
                encode_value(&f.schema, names, v, out, path, depth + 1)?;
                path.pop();
            }
            Ok(())
        }
        // Logical types with their own layouts: apache-avro's leaf encoding.
        (Schema::Decimal(_) | Schema::Uuid | Schema::Duration | Schema::BigDecimal, v) => {
            let datum =
                apache_avro::to_avro_datum(schema, v.clone()).map_err(|e| mismatch(schema, v, path).with_source(e))?;
            out.extend_from_slice(&datum);
            Ok(())
        }
        (s, v) => Err(mismatch(s, v, path)),
    }
}

/// Whether `v` is of `schema`'s kind, without looking inside (to pick a union branch).
fn shallow_match(schema: &Schema, names: &Names, v: &Value) -> bool {
    match (schema, v) {
        (Schema::Ref { name }, v) => names.get(name).is_ok_and(|s| shallow_match(s, names, v)),
        (Schema::Null, Value::Null)
        | (Schema::Boolean, Value::Boolean(_))
        | (Schema::Int, Value::Int(_))
        | (Schema::Long, Value::Long(_))
        | (Schema::Float, Value::Float(_))
        | (Schema::Double, Value::Double(_))
        | (Schema::Bytes, Value::Bytes(_))
        | (Schema::String, Value::String(_))
        | (Schema::Array(_), Value::Array(_))
        | (Schema::Map(_), Value::Map(_))
        | (Schema::Record(_), Value::Record(_))
        | (Schema::Enum(_), Value::Enum(..))
        | (Schema::Fixed(_), Value::Fixed(..)) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Schema {
        Schema::parse_str(s).unwrap()
    }

    #[test]
    fn agrees_with_apache_avro_on_valid_datums() {
        let s = parse(
            r#"{"type":"record","name":"R","namespace":"n","fields":[
                {"name":"a","type":["null","string"]},
                {"name":"b","type":{"type":"array","items":"long"}},
                {"name":"c","type":{"type":"map","values":"double"}},
                {"name":"d","type":{"type":"enum","name":"E","symbols":["X","Y"]}},
                {"name":"e","type":{"type":"fixed","name":"F","size":3}},
                {"name":"f","type":"boolean"},
                {"name":"g","type":{"type":"bytes","logicalType":"decimal","precision":5,"scale":2}},
                {"name":"h","type":{"type":"int","logicalType":"date"}},
                {"name":"i","type":"n.E"}]}"#,
        );
        let v = Value::Record(vec![
            ("a".into(), Value::Union(1, Box::new(Value::String("hi".into())))),
            ("b".into(), Value::Array(vec![Value::Long(-1), Value::Long(1 << 40)])),
            ("c".into(), Value::Map([("k".to_owned(), Value::Double(0.5))].into())),
            ("d".into(), Value::Enum(1, "Y".into())),
            ("e".into(), Value::Fixed(3, vec![1, 2, 3])),
            ("f".into(), Value::Boolean(true)),
            ("g".into(), Value::Decimal(apache_avro::Decimal::from(vec![1, 24]))),
            ("h".into(), Value::Date(19000)),
            ("i".into(), Value::Enum(0, "X".into())),
        ]);
        let bytes = apache_avro::to_avro_datum(&s, v.clone()).unwrap();
        let names = Names::collect(&[&s]);
        let mut encoded = Vec::new();
        encode(&s, &names, &v, &mut encoded).unwrap();
        assert_eq!(encoded, bytes, "our encoder writes what apache-avro writes");
        let ours = decode(&s, &names, &bytes).unwrap();
        assert_eq!(ours, apache_avro::from_avro_datum(&s, &mut &bytes[..], None).unwrap());
        assert_eq!(ours, v);
        // Every truncation is an error (apache-avro reads some of them as Null).
        for cut in 0..bytes.len() {
            assert!(decode(&s, &names, &bytes[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn encoding_checks_the_value_and_names_where_it_differs() {
        let s = parse(
            r#"{"type":"record","name":"R","fields":[{"name":"a","type":{"type":"record","name":"In","fields":[{"name":"b","type":"int"}]}}]}"#,
        );
        let names = Names::collect(&[&s]);
        let bad = Value::Record(vec![(
            "a".into(),
            Value::Record(vec![("b".into(), Value::String("x".into()))]),
        )]);
        let mut out = vec![9];
        let e = encode(&s, &names, &bad, &mut out).unwrap_err();
        assert!(e.to_string().contains("a.b is string where the schema has int"), "{e}");
        assert_eq!(out, [9], "nothing of a failed value is left in the buffer");
        let missing = Value::Record(vec![]);
        assert!(encode(&s, &names, &missing, &mut out)
            .unwrap_err()
            .to_string()
            .contains("field a is missing"));
        // A bare value in a union takes the first branch of its kind.
        let u = parse(r#"["null","string"]"#);
        let mut out = Vec::new();
        encode(&u, &Names::collect(&[&u]), &Value::String("x".into()), &mut out).unwrap();
        assert_eq!(out, b"\x02\x02x");
    }

    #[test]
    fn lengths_and_counts_are_not_trusted() {
        let names = Names::collect(&[]);
        // A string of 2^62 bytes, an array of 2^62 longs, a billion nulls: errors, at once.
        let huge = [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        assert!(decode(&parse(r#""string""#), &names, &huge).is_err());
        assert!(decode(&parse(r#"{"type":"array","items":"long"}"#), &names, &huge).is_err());
        let nulls = [0x80, 0xa8, 0xd6, 0xb9, 0x07, 0x00];
        let e = decode(&parse(r#"{"type":"array","items":"null"}"#), &names, &nulls).unwrap_err();
        assert!(e.to_string().contains("zero-size"), "{e}");
        // Negative lengths, an 11-byte varint, a union branch that does not exist.
        assert!(decode(&parse(r#""bytes""#), &names, &[0x01]).is_err());
        assert!(decode(&parse(r#""long""#), &names, &[0xff; 11]).is_err());
        assert!(decode(&parse(r#"["null","int"]"#), &names, &[0x04]).is_err());
        // Deep nesting of a recursive schema stops at MAX_DEPTH instead of the stack.
        let list = parse(r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}"#);
        let names = Names::collect(&[&list]);
        let deep = vec![0x02u8; 100_000];
        assert!(decode(&list, &names, &deep).is_err());
    }
}
