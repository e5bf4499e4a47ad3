//! Generic Avro values that share their schema's names: Java's `GenericData.Record` model.
//!
//! A [`GenericRecord`] holds its compiled schema (one `Arc`, shared by every record decoded
//! with it) and its field values by position; names are looked up through the schema, so a
//! decoded record allocates nothing for them (apache-avro's `Value::Record` owns a `String`
//! per field name, allocated again for every record). A union's value is its branch's value
//! (no wrapper, as in Java): encoding picks the branch by the value's kind, and for records
//! by name.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::types::Value;

use crate::avro_compiled::{Compiled, Node, NodeId};
use crate::avro_read::{too_deep, write_bytes, write_long, Fail, MAX_DEPTH, R};

/// A generic Avro value (the counterpart of what Java's `GenericDatumReader` returns).
///
/// Logical types have their own variants; a union's value is the value of its branch
/// (`Null` for a null branch). Convert to and from apache-avro's
/// [`Value`] with [`AvroSchema::generic_to_value`](crate::avro::AvroSchema::generic_to_value)
/// and [`AvroSchema::generic_from_value`](crate::avro::AvroSchema::generic_from_value), or
/// [`GenericRecord::to_value`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum GenericValue {
    /// `null`, and the null branch of a union.
    Null,
    /// `boolean`.
    Boolean(bool),
    /// `int`.
    Int(i32),
    /// `long`.
    Long(i64),
    /// `float`.
    Float(f32),
    /// `double`.
    Double(f64),
    /// `bytes`.
    Bytes(Vec<u8>),
    /// `string`.
    String(String),
    /// `fixed` (as many bytes as its schema's size).
    Fixed(Vec<u8>),
    /// An `enum` symbol: its index in the enum and its text (shared with the schema when
    /// decoded).
    Enum(u32, Arc<str>),
    /// `array`.
    Array(Vec<GenericValue>),
    /// `map`.
    Map(HashMap<String, GenericValue>),
    /// `record`.
    Record(GenericRecord),
    /// `decimal`: the unscaled value, big-endian two's complement.
    Decimal(Vec<u8>),
    /// `uuid`.
    Uuid(apache_avro::Uuid),
    /// `date`: days since 1970-01-01.
    Date(i32),
    /// `time-millis`.
    TimeMillis(i32),
    /// `time-micros`.
    TimeMicros(i64),
    /// `timestamp-millis`.
    TimestampMillis(i64),
    /// `timestamp-micros`.
    TimestampMicros(i64),
    /// `timestamp-nanos`.
    TimestampNanos(i64),
    /// `local-timestamp-millis`.
    LocalTimestampMillis(i64),
    /// `local-timestamp-micros`.
    LocalTimestampMicros(i64),
    /// `local-timestamp-nanos`.
    LocalTimestampNanos(i64),
    /// `duration`.
    Duration(apache_avro::Duration),
}

impl GenericValue {
    /// The record, if this is one.
    pub fn as_record(&self) -> Option<&GenericRecord> {
        match self {
            GenericValue::Record(r) => Some(r),
            _ => None,
        }
    }

    /// The record, if this is one.
    pub fn into_record(self) -> Option<GenericRecord> {
        match self {
            GenericValue::Record(r) => Some(r),
            _ => None,
        }
    }

    /// The text of a `string`, or the symbol of an `enum`.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GenericValue::String(s) => Some(s),
            GenericValue::Enum(_, s) => Some(s),
            _ => None,
        }
    }

    /// An `int` or `long` (and the logical types on them) as an `i64`.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            GenericValue::Int(i) | GenericValue::Date(i) | GenericValue::TimeMillis(i) => Some(i64::from(*i)),
            GenericValue::Long(l)
            | GenericValue::TimeMicros(l)
            | GenericValue::TimestampMillis(l)
            | GenericValue::TimestampMicros(l)
            | GenericValue::TimestampNanos(l)
            | GenericValue::LocalTimestampMillis(l)
            | GenericValue::LocalTimestampMicros(l)
            | GenericValue::LocalTimestampNanos(l) => Some(*l),
            _ => None,
        }
    }

    /// The elements of an `array`.
    pub fn as_array(&self) -> Option<&[GenericValue]> {
        match self {
            GenericValue::Array(a) => Some(a),
            _ => None,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            GenericValue::Null => "null",
            GenericValue::Boolean(_) => "boolean",
            GenericValue::Int(_) => "int",
            GenericValue::Long(_) => "long",
            GenericValue::Float(_) => "float",
            GenericValue::Double(_) => "double",
            GenericValue::Bytes(_) => "bytes",
            GenericValue::String(_) => "string",
            GenericValue::Fixed(_) => "fixed",
            GenericValue::Enum(..) => "enum",
            GenericValue::Array(_) => "array",
            GenericValue::Map(_) => "map",
            GenericValue::Record(_) => "record",
            GenericValue::Decimal(_) => "decimal",
            GenericValue::Uuid(_) => "uuid",
            GenericValue::Date(_) => "date",
            GenericValue::TimeMillis(_) => "time-millis",
            GenericValue::TimeMicros(_) => "time-micros",
            GenericValue::TimestampMillis(_) => "timestamp-millis",
            GenericValue::TimestampMicros(_) => "timestamp-micros",
            GenericValue::TimestampNanos(_) => "timestamp-nanos",
            GenericValue::LocalTimestampMillis(_) => "local-timestamp-millis",
            GenericValue::LocalTimestampMicros(_) => "local-timestamp-micros",
            GenericValue::LocalTimestampNanos(_) => "local-timestamp-nanos",
            GenericValue::Duration(_) => "duration",
        }
    }
}

macro_rules! from_for_generic {
    ($($t:ty => $v:ident),*) => {$(
        impl From<$t> for GenericValue {
            fn from(v: $t) -> Self {
                GenericValue::$v(v)
            }
        }
    )*};
}
from_for_generic!(bool => Boolean, i32 => Int, i64 => Long, f32 => Float, f64 => Double,
    String => String, GenericRecord => Record);

impl From<&str> for GenericValue {
    fn from(v: &str) -> Self {
        GenericValue::String(v.to_owned())
    }
}

impl<T: Into<GenericValue>> From<Option<T>> for GenericValue {
    fn from(v: Option<T>) -> Self {
        v.map_or(GenericValue::Null, Into::into)
    }
}

impl<T: Into<GenericValue>> From<Vec<T>> for GenericValue {
    fn from(v: Vec<T>) -> Self {
        GenericValue::Array(v.into_iter().map(Into::into).collect())
    }
}

/// A generic Avro record: its schema (shared, not copied) and its field values by position
/// (Java's `GenericData.Record`). Fields are read and written by name through the schema.
#[derive(Clone)]
pub struct GenericRecord {
    schema: Arc<Compiled>,
    index: u32,
    values: Box<[GenericValue]>,
}

impl GenericRecord {
    pub(crate) fn from_parts(schema: Arc<Compiled>, index: u32, values: Box<[GenericValue]>) -> Self {
        GenericRecord { schema, index, values }
    }

    /// A record of the record type `index` of `schema`: each field its default, or `Null`
    /// when it has none (or the default does not fit its schema).
    pub(crate) fn with_defaults(schema: &Arc<Compiled>, index: u32) -> GenericRecord {
        let def = schema.record(index);
        let values = def
            .fields
            .iter()
            .map(|f| match &f.default {
                Some(json) => default_value(schema, f.node, json, 0).unwrap_or(GenericValue::Null),
                None => GenericValue::Null,
            })
            .collect();
        GenericRecord::from_parts(schema.clone(), index, values)
    }

    pub(crate) fn compiled(&self) -> (&Arc<Compiled>, u32) {
        (&self.schema, self.index)
    }

    /// The record's fully qualified name (`namespace.Name`).
    pub fn full_name(&self) -> &str {
        &self.schema.record(self.index).full_name
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the record has no fields.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// The position of the field called `field`.
    pub fn position(&self, field: &str) -> Option<usize> {
        self.schema.record(self.index).position(field)
    }

    /// The value of the field called `field`.
    pub fn get(&self, field: &str) -> Option<&GenericValue> {
        self.position(field).and_then(|i| self.values.get(i))
    }

    /// The value of the field called `field`, to change.
    pub fn get_mut(&mut self, field: &str) -> Option<&mut GenericValue> {
        self.position(field).and_then(|i| self.values.get_mut(i))
    }

    /// Sets the field called `field`; an error (nothing changed) when the record has no such
    /// field. The value is checked against the schema when the record is encoded.
    pub fn put(&mut self, field: &str, value: impl Into<GenericValue>) -> crate::Result<()> {
        match self.get_mut(field) {
            Some(slot) => {
                *slot = value.into();
                Ok(())
            }
            None => Err(crate::Error::serialization(format!(
                "record {} has no field {field}",
                self.full_name()
            ))),
        }
    }

    /// The field values in the schema's order.
    pub fn values(&self) -> &[GenericValue] {
        &self.values
    }

    /// The field values in the schema's order, to change.
    pub fn values_mut(&mut self) -> &mut [GenericValue] {
        &mut self.values
    }

    /// The field names and values in the schema's order.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &GenericValue)> {
        let def = self.schema.record(self.index);
        def.fields.iter().map(|f| &*f.name).zip(self.values.iter())
    }

    /// A new record of the record type of the field `field` (its first record branch, for a
    /// union), with its defaults: what to fill and [`put`](GenericRecord::put) there.
    pub fn new_record_for(&self, field: &str) -> Option<GenericRecord> {
        let def = self.schema.record(self.index);
        let node = def.fields.get(def.position(field)?)?.node;
        let rec = match self.schema.node(node) {
            Node::Record(r) => *r,
            Node::Union(b) => b.iter().find_map(|b| match self.schema.node(*b) {
                Node::Record(r) => Some(*r),
                _ => None,
            })?,
            _ => return None,
        };
        Some(GenericRecord::with_defaults(&self.schema, rec))
    }

    /// This record as apache-avro's [`Value::Record`] (field names copied, unions wrapped as
    /// their schema says); an error when a field's value does not fit its schema.
    pub fn to_value(&self) -> crate::Result<Value> {
        let root = self.schema.nodes.iter().position(|n| *n == Node::Record(self.index));
        let Some(root) = root else {
            return Err(crate::Error::serialization("a record without its schema node (a bug)"));
        };
        to_value(&self.schema, root as NodeId, &GenericValue::Record(self.clone()), 0).map_err(Fail::into_error)
    }
}

impl PartialEq for GenericRecord {
    fn eq(&self, other: &Self) -> bool {
        self.full_name() == other.full_name()
            && self.values == other.values
            && self.fields().map(|(n, _)| n).eq(other.fields().map(|(n, _)| n))
    }
}

impl std::fmt::Debug for GenericRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct(self.full_name());
        for (name, v) in self.fields() {
            s.field(name, v);
        }
        s.finish()
    }
}

/// The branch of the union `branches` that `v` is a value of: the first of its kind; for a
/// record the one of its name; for an enum the one whose symbols it is; for fixed bytes the
/// first of their size.
pub(crate) fn branch_for(c: &Compiled, branches: &[NodeId], v: &GenericValue) -> Option<usize> {
    let pick = |want: fn(&Node) -> bool| branches.iter().position(|b| want(c.node(*b)));
    match v {
        GenericValue::Null => pick(|n| matches!(n, Node::Null)),
        GenericValue::Boolean(_) => pick(|n| matches!(n, Node::Boolean)),
        GenericValue::Int(_) => pick(|n| matches!(n, Node::Int)),
        GenericValue::Long(_) => pick(|n| matches!(n, Node::Long)),
        GenericValue::Float(_) => pick(|n| matches!(n, Node::Float)),
        GenericValue::Double(_) => pick(|n| matches!(n, Node::Double)),
        GenericValue::Bytes(_) => pick(|n| matches!(n, Node::Bytes)),
        GenericValue::String(_) => pick(|n| matches!(n, Node::String)),
        GenericValue::Array(_) => pick(|n| matches!(n, Node::Array(_))),
        GenericValue::Map(_) => pick(|n| matches!(n, Node::Map(_))),
        GenericValue::Decimal(_) => pick(|n| matches!(n, Node::Decimal(_))),
        GenericValue::Uuid(_) => pick(|n| matches!(n, Node::Uuid)),
        GenericValue::Date(_) => pick(|n| matches!(n, Node::Date)),
        GenericValue::TimeMillis(_) => pick(|n| matches!(n, Node::TimeMillis)),
        GenericValue::TimeMicros(_) => pick(|n| matches!(n, Node::TimeMicros)),
        GenericValue::TimestampMillis(_) => pick(|n| matches!(n, Node::TimestampMillis)),
        GenericValue::TimestampMicros(_) => pick(|n| matches!(n, Node::TimestampMicros)),
        GenericValue::TimestampNanos(_) => pick(|n| matches!(n, Node::TimestampNanos)),
        GenericValue::LocalTimestampMillis(_) => pick(|n| matches!(n, Node::LocalTimestampMillis)),
        GenericValue::LocalTimestampMicros(_) => pick(|n| matches!(n, Node::LocalTimestampMicros)),
        GenericValue::LocalTimestampNanos(_) => pick(|n| matches!(n, Node::LocalTimestampNanos)),
        GenericValue::Duration(_) => pick(|n| matches!(n, Node::Duration)),
        GenericValue::Fixed(b) => branches
            .iter()
            .position(|n| matches!(c.node(*n), Node::Fixed(f) if c.fixed[*f as usize].size == b.len())),
        GenericValue::Record(r) => {
            let records = || {
                branches.iter().enumerate().filter_map(|(i, b)| match c.node(*b) {
                    Node::Record(x) => Some((i, *x)),
                    _ => None,
                })
            };
            let (rc, ri) = r.compiled();
            records()
                .find(|(_, x)| std::ptr::eq(&**rc, c) && *x == ri)
                .or_else(|| records().find(|(_, x)| *c.record(*x).full_name == *r.full_name()))
                .map(|(i, _)| i)
        }
        GenericValue::Enum(i, sym) => {
            let enums = || {
                branches.iter().enumerate().filter_map(|(k, b)| match c.node(*b) {
                    Node::Enum(e) => Some((k, c.enum_def(*e))),
                    _ => None,
                })
            };
            let at = |e: &crate::avro_compiled::EnumDef| e.symbols.get(*i as usize).cloned();
            enums()
                .find(|(_, e)| at(e).is_some_and(|s| Arc::ptr_eq(&s, sym)))
                .or_else(|| enums().find(|(_, e)| at(e).is_some_and(|s| *s == **sym)))
                .or_else(|| enums().find(|(_, e)| e.index_of(sym).is_some()))
                .map(|(k, _)| k)
        }
    }
}

#[cold]
fn mismatch(c: &Compiled, node: NodeId, v: &GenericValue) -> Fail {
    Fail::new(format!(
        "the value does not match its Avro schema: {} where the schema has {}",
        v.kind(),
        c.describe(node)
    ))
}

/// Writes `v` as a datum of `node` to `out`.
pub(crate) fn encode(c: &Compiled, node: NodeId, v: &GenericValue, out: &mut Vec<u8>, depth: usize) -> R<()> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    match (c.node(node), v) {
        (Node::Null, GenericValue::Null) => {}
        (Node::Boolean, GenericValue::Boolean(b)) => out.push(u8::from(*b)),
        (Node::Int, GenericValue::Int(i))
        | (Node::Date, GenericValue::Date(i))
        | (Node::TimeMillis, GenericValue::TimeMillis(i)) => write_long(i64::from(*i), out),
        (Node::Long, GenericValue::Long(l))
        | (Node::TimeMicros, GenericValue::TimeMicros(l))
        | (Node::TimestampMillis, GenericValue::TimestampMillis(l))
        | (Node::TimestampMicros, GenericValue::TimestampMicros(l))
        | (Node::TimestampNanos, GenericValue::TimestampNanos(l))
        | (Node::LocalTimestampMillis, GenericValue::LocalTimestampMillis(l))
        | (Node::LocalTimestampMicros, GenericValue::LocalTimestampMicros(l))
        | (Node::LocalTimestampNanos, GenericValue::LocalTimestampNanos(l)) => write_long(*l, out),
        // Avro's promotions: an int where a long is written, a float where a double is.
        (Node::Long, GenericValue::Int(i)) => write_long(i64::from(*i), out),
        (Node::Float, GenericValue::Float(f)) => out.extend_from_slice(&f.to_le_bytes()),
        (Node::Double, GenericValue::Double(d)) => out.extend_from_slice(&d.to_le_bytes()),
        (Node::Double, GenericValue::Float(f)) => out.extend_from_slice(&f64::from(*f).to_le_bytes()),
        (Node::Bytes, GenericValue::Bytes(b)) => write_bytes(b, out),
        (Node::String, GenericValue::String(s)) => write_bytes(s.as_bytes(), out),
        (Node::Fixed(f), GenericValue::Fixed(b)) if b.len() == c.fixed[*f as usize].size => out.extend_from_slice(b),
        (Node::Enum(e), GenericValue::Enum(i, sym)) => {
            let def = c.enum_def(*e);
            let at = def.symbols.get(*i as usize).filter(|s| ***s == **sym).map(|_| *i);
            match at.or_else(|| def.index_of(sym)) {
                Some(i) => write_long(i64::from(i), out),
                None => {
                    return Err(Fail::new(format!(
                        "the value does not match its Avro schema: {sym} is not a symbol of {}",
                        def.full_name
                    )))
                }
            }
        }
        (Node::Enum(e), GenericValue::String(sym)) => match c.enum_def(*e).index_of(sym) {
            Some(i) => write_long(i64::from(i), out),
            None => return Err(mismatch(c, node, v)),
        },
        (Node::Array(items), GenericValue::Array(a)) => {
            if !a.is_empty() {
                write_long(a.len() as i64, out);
                for x in a {
                    encode(c, *items, x, out, depth + 1)?;
                }
            }
            out.push(0);
        }
        (Node::Map(values), GenericValue::Map(m)) => {
            if !m.is_empty() {
                write_long(m.len() as i64, out);
                for (k, x) in m {
                    write_bytes(k.as_bytes(), out);
                    encode(c, *values, x, out, depth + 1)?;
                }
            }
            out.push(0);
        }
        (Node::Union(branches), v) => match branch_for(c, branches, v) {
            Some(i) => {
                write_long(i as i64, out);
                encode(c, branches[i], v, out, depth + 1)?;
            }
            None => return Err(mismatch(c, node, v)),
        },
        (Node::Record(ri), GenericValue::Record(r)) => {
            let def = c.record(*ri);
            let (rc, rx) = r.compiled();
            if std::ptr::eq(&**rc, c) && rx == *ri {
                // The record's own schema: values by position.
                for (f, x) in def.fields.iter().zip(r.values()) {
                    encode(c, f.node, x, out, depth + 1).map_err(|e| e.in_field(&f.name))?;
                }
            } else {
                // Another schema's record: fields by name.
                for f in def.fields.iter() {
                    let x = r
                        .get(&f.name)
                        .ok_or_else(|| {
                            Fail::new(format!(
                                "the value does not match its Avro schema: field {} is missing",
                                f.name
                            ))
                        })
                        .map_err(|e| e.in_field(&f.name))?;
                    encode(c, f.node, x, out, depth + 1).map_err(|e| e.in_field(&f.name))?;
                }
            }
        }
        (Node::Decimal(None), GenericValue::Decimal(b)) => write_bytes(b, out),
        (Node::Decimal(Some(size)), GenericValue::Decimal(b)) => {
            let b = sign_extend(b, *size)
                .ok_or_else(|| Fail::new(format!("a decimal of {} bytes does not fit a fixed of {size}", b.len())))?;
            out.extend_from_slice(&b);
        }
        (Node::Uuid, GenericValue::Uuid(u)) => write_bytes(u.to_string().as_bytes(), out),
        (Node::Uuid, GenericValue::String(s)) => write_bytes(s.as_bytes(), out),
        (Node::Duration, GenericValue::Duration(d)) => out.extend_from_slice(&<[u8; 12]>::from(*d)),
        (Node::Duration, GenericValue::Fixed(b)) if b.len() == 12 => out.extend_from_slice(b),
        _ => return Err(mismatch(c, node, v)),
    }
    Ok(())
}

/// `b` (big-endian two's complement) as exactly `size` bytes, or `None` when it needs more.
fn sign_extend(b: &[u8], size: usize) -> Option<Vec<u8>> {
    let negative = b.first().is_some_and(|x| x & 0x80 != 0);
    let pad = if negative { 0xff } else { 0 };
    // Drop redundant leading sign bytes, keeping the sign bit where it is.
    let mut start = 0;
    while start + 1 < b.len() && b[start] == pad && (b[start + 1] & 0x80 != 0) == negative {
        start += 1;
    }
    let b = &b[start..];
    let extra = size.checked_sub(b.len())?;
    let mut out = vec![pad; extra];
    out.extend_from_slice(b);
    Some(out)
}

/// `v` as apache-avro's value of `node`.
pub(crate) fn to_value(c: &Compiled, node: NodeId, v: &GenericValue, depth: usize) -> R<Value> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    Ok(match (c.node(node), v) {
        (Node::Union(branches), v) => match branch_for(c, branches, v) {
            Some(i) => Value::Union(i as u32, Box::new(to_value(c, branches[i], v, depth + 1)?)),
            None => return Err(mismatch(c, node, v)),
        },
        (Node::Record(ri), GenericValue::Record(r)) => {
            let def = c.record(*ri);
            let mut fields = Vec::with_capacity(def.fields.len());
            for f in def.fields.iter() {
                let x = r
                    .get(&f.name)
                    .ok_or_else(|| Fail::new("a field is missing").in_field(&f.name))?;
                fields.push((
                    f.name.to_string(),
                    to_value(c, f.node, x, depth + 1).map_err(|e| e.in_field(&f.name))?,
                ));
            }
            Value::Record(fields)
        }
        (Node::Array(items), GenericValue::Array(a)) => {
            Value::Array(a.iter().map(|x| to_value(c, *items, x, depth + 1)).collect::<R<_>>()?)
        }
        (Node::Map(values), GenericValue::Map(m)) => Value::Map(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), to_value(c, *values, x, depth + 1)?)))
                .collect::<R<_>>()?,
        ),
        (Node::Fixed(f), GenericValue::Fixed(b)) => Value::Fixed(c.fixed[*f as usize].size, b.clone()),
        (Node::Enum(e), GenericValue::Enum(i, s)) => {
            let def = c.enum_def(*e);
            let i = def.symbols.get(*i as usize).filter(|x| ***x == **s).map(|_| *i);
            match i.or_else(|| def.index_of(s)) {
                Some(i) => Value::Enum(i, s.to_string()),
                None => return Err(mismatch(c, node, v)),
            }
        }
        (Node::Duration, GenericValue::Fixed(b)) if b.len() == 12 => {
            let mut a = [0u8; 12];
            a.copy_from_slice(b);
            Value::Duration(apache_avro::Duration::from(a))
        }
        (_, v) => {
            // A leaf: checked against its node by encoding it.
            encode(c, node, v, &mut Vec::new(), depth)?;
            leaf_value(v)
        }
    })
}

fn leaf_value(v: &GenericValue) -> Value {
    match v {
        GenericValue::Null => Value::Null,
        GenericValue::Boolean(b) => Value::Boolean(*b),
        GenericValue::Int(i) => Value::Int(*i),
        GenericValue::Long(l) => Value::Long(*l),
        GenericValue::Float(f) => Value::Float(*f),
        GenericValue::Double(d) => Value::Double(*d),
        GenericValue::Bytes(b) => Value::Bytes(b.clone()),
        GenericValue::String(s) => Value::String(s.clone()),
        GenericValue::Fixed(b) => Value::Fixed(b.len(), b.clone()),
        GenericValue::Enum(i, s) => Value::Enum(*i, s.to_string()),
        GenericValue::Decimal(b) => Value::Decimal(apache_avro::Decimal::from(b)),
        GenericValue::Uuid(u) => Value::Uuid(*u),
        GenericValue::Date(i) => Value::Date(*i),
        GenericValue::TimeMillis(i) => Value::TimeMillis(*i),
        GenericValue::TimeMicros(l) => Value::TimeMicros(*l),
        GenericValue::TimestampMillis(l) => Value::TimestampMillis(*l),
        GenericValue::TimestampMicros(l) => Value::TimestampMicros(*l),
        GenericValue::TimestampNanos(l) => Value::TimestampNanos(*l),
        GenericValue::LocalTimestampMillis(l) => Value::LocalTimestampMillis(*l),
        GenericValue::LocalTimestampMicros(l) => Value::LocalTimestampMicros(*l),
        GenericValue::LocalTimestampNanos(l) => Value::LocalTimestampNanos(*l),
        GenericValue::Duration(d) => Value::Duration(*d),
        // Containers are converted by `to_value` with their schema.
        GenericValue::Array(_) | GenericValue::Map(_) | GenericValue::Record(_) => Value::Null,
    }
}

/// apache-avro's value `v` as a generic value of `node` (of the compiled schema `c`).
pub(crate) fn from_value(c: &Arc<Compiled>, node: NodeId, v: &Value, depth: usize) -> R<GenericValue> {
    if depth > MAX_DEPTH {
        return Err(too_deep());
    }
    let bad = || {
        Fail::new(format!(
            "the value does not match its Avro schema: {v:?} where the schema has {}",
            c.describe(node)
        ))
    };
    Ok(match (c.node(node), v) {
        (Node::Union(branches), Value::Union(i, inner)) => {
            let b = branches.get(*i as usize).ok_or_else(bad)?;
            from_value(c, *b, inner, depth + 1)?
        }
        (Node::Union(branches), v) => {
            // A bare value: the first branch it converts to.
            let mut found = None;
            for b in branches.iter() {
                if let Ok(g) = from_value(c, *b, v, depth + 1) {
                    found = Some(g);
                    break;
                }
            }
            found.ok_or_else(bad)?
        }
        (Node::Record(ri), Value::Record(fields)) => {
            let def = c.record(*ri);
            let mut values = Vec::with_capacity(def.fields.len());
            for (k, f) in def.fields.iter().enumerate() {
                let x = match fields.get(k) {
                    Some((n, x)) if **n == *f.name => x,
                    _ => match fields.iter().find(|(n, _)| **n == *f.name) {
                        Some((_, x)) => x,
                        None => {
                            return Err(
                                Fail::new("the value does not match its Avro schema: the field is missing")
                                    .in_field(&f.name),
                            )
                        }
                    },
                };
                values.push(from_value(c, f.node, x, depth + 1).map_err(|e| e.in_field(&f.name))?);
            }
            GenericValue::Record(GenericRecord::from_parts(c.clone(), *ri, values.into_boxed_slice()))
        }
        (Node::Array(items), Value::Array(a)) => GenericValue::Array(
            a.iter()
                .map(|x| from_value(c, *items, x, depth + 1))
                .collect::<R<_>>()?,
        ),
        (Node::Map(values), Value::Map(m)) => GenericValue::Map(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), from_value(c, *values, x, depth + 1)?)))
                .collect::<R<_>>()?,
        ),
        (Node::Enum(e), Value::Enum(_, s) | Value::String(s)) => {
            let def = c.enum_def(*e);
            let i = def.index_of(s).ok_or_else(bad)?;
            GenericValue::Enum(i, def.symbols[i as usize].clone())
        }
        (Node::Null, Value::Null) => GenericValue::Null,
        (Node::Boolean, Value::Boolean(b)) => GenericValue::Boolean(*b),
        (Node::Int, Value::Int(i)) => GenericValue::Int(*i),
        (Node::Long, Value::Long(l)) => GenericValue::Long(*l),
        (Node::Long, Value::Int(i)) => GenericValue::Long(i64::from(*i)),
        (Node::Float, Value::Float(f)) => GenericValue::Float(*f),
        (Node::Double, Value::Double(d)) => GenericValue::Double(*d),
        (Node::Double, Value::Float(f)) => GenericValue::Double(f64::from(*f)),
        (Node::Bytes, Value::Bytes(b)) => GenericValue::Bytes(b.clone()),
        (Node::String, Value::String(s)) => GenericValue::String(s.clone()),
        (Node::Fixed(f), Value::Fixed(n, b)) if *n == c.fixed[*f as usize].size && b.len() == *n => {
            GenericValue::Fixed(b.clone())
        }
        (Node::Decimal(_), Value::Decimal(d)) => GenericValue::Decimal(
            <Vec<u8>>::try_from(d).map_err(|e| Fail::from(crate::Error::serialization("a decimal").with_source(e)))?,
        ),
        (Node::Decimal(_), Value::Bytes(b) | Value::Fixed(_, b)) => GenericValue::Decimal(b.clone()),
        (Node::Uuid, Value::Uuid(u)) => GenericValue::Uuid(*u),
        (Node::Date, Value::Date(i) | Value::Int(i)) => GenericValue::Date(*i),
        (Node::TimeMillis, Value::TimeMillis(i) | Value::Int(i)) => GenericValue::TimeMillis(*i),
        (Node::TimeMicros, Value::TimeMicros(l) | Value::Long(l)) => GenericValue::TimeMicros(*l),
        (Node::TimestampMillis, Value::TimestampMillis(l) | Value::Long(l)) => GenericValue::TimestampMillis(*l),
        (Node::TimestampMicros, Value::TimestampMicros(l) | Value::Long(l)) => GenericValue::TimestampMicros(*l),
        (Node::TimestampNanos, Value::TimestampNanos(l) | Value::Long(l)) => GenericValue::TimestampNanos(*l),
        (Node::LocalTimestampMillis, Value::LocalTimestampMillis(l) | Value::Long(l)) => {
            GenericValue::LocalTimestampMillis(*l)
        }
        (Node::LocalTimestampMicros, Value::LocalTimestampMicros(l) | Value::Long(l)) => {
            GenericValue::LocalTimestampMicros(*l)
        }
        (Node::LocalTimestampNanos, Value::LocalTimestampNanos(l) | Value::Long(l)) => {
            GenericValue::LocalTimestampNanos(*l)
        }
        (Node::Duration, Value::Duration(d)) => GenericValue::Duration(*d),
        _ => return Err(bad()),
    })
}

/// A field's default (the schema's JSON) as a value of `node`: for a union, of its first
/// branch; bytes and fixed as strings of code points 0-255 (the Avro specification's
/// encoding of them in JSON).
pub(crate) fn default_value(
    c: &Arc<Compiled>,
    node: NodeId,
    json: &serde_json::Value,
    depth: usize,
) -> Result<GenericValue, String> {
    use serde_json::Value as J;
    if depth > MAX_DEPTH {
        return Err("the default nests too deep".into());
    }
    let bad = || format!("the default {json} is not a value of {}", c.describe(node));
    let latin1 = |s: &str| -> Result<Vec<u8>, String> {
        s.chars()
            .map(|ch| u8::try_from(u32::from(ch)).map_err(|_| bad()))
            .collect()
    };
    let float = |j: &J| -> Option<f64> {
        match j {
            J::Number(n) => n.as_f64(),
            J::String(s) => match s.as_str() {
                "NaN" => Some(f64::NAN),
                "INF" | "Infinity" => Some(f64::INFINITY),
                "-INF" | "-Infinity" => Some(f64::NEG_INFINITY),
                _ => None,
            },
            _ => None,
        }
    };
    let int = |j: &J| j.as_i64().and_then(|l| i32::try_from(l).ok());
    Ok(match c.node(node) {
        Node::Null if json.is_null() => GenericValue::Null,
        Node::Boolean => GenericValue::Boolean(json.as_bool().ok_or_else(bad)?),
        Node::Int => GenericValue::Int(int(json).ok_or_else(bad)?),
        Node::Date => GenericValue::Date(int(json).ok_or_else(bad)?),
        Node::TimeMillis => GenericValue::TimeMillis(int(json).ok_or_else(bad)?),
        Node::Long => GenericValue::Long(json.as_i64().ok_or_else(bad)?),
        Node::TimeMicros => GenericValue::TimeMicros(json.as_i64().ok_or_else(bad)?),
        Node::TimestampMillis => GenericValue::TimestampMillis(json.as_i64().ok_or_else(bad)?),
        Node::TimestampMicros => GenericValue::TimestampMicros(json.as_i64().ok_or_else(bad)?),
        Node::TimestampNanos => GenericValue::TimestampNanos(json.as_i64().ok_or_else(bad)?),
        Node::LocalTimestampMillis => GenericValue::LocalTimestampMillis(json.as_i64().ok_or_else(bad)?),
        Node::LocalTimestampMicros => GenericValue::LocalTimestampMicros(json.as_i64().ok_or_else(bad)?),
        Node::LocalTimestampNanos => GenericValue::LocalTimestampNanos(json.as_i64().ok_or_else(bad)?),
        Node::Float => GenericValue::Float(float(json).ok_or_else(bad)? as f32),
        Node::Double => GenericValue::Double(float(json).ok_or_else(bad)?),
        Node::String => GenericValue::String(json.as_str().ok_or_else(bad)?.to_owned()),
        Node::Bytes => GenericValue::Bytes(latin1(json.as_str().ok_or_else(bad)?)?),
        Node::Decimal(size) => {
            let b = latin1(json.as_str().ok_or_else(bad)?)?;
            if size.is_some_and(|n| n != b.len()) {
                return Err(bad());
            }
            GenericValue::Decimal(b)
        }
        Node::Fixed(f) => {
            let b = latin1(json.as_str().ok_or_else(bad)?)?;
            if b.len() != c.fixed[*f as usize].size {
                return Err(bad());
            }
            GenericValue::Fixed(b)
        }
        Node::Duration => {
            let b = latin1(json.as_str().ok_or_else(bad)?)?;
            let a: [u8; 12] = b.try_into().map_err(|_| bad())?;
            GenericValue::Duration(apache_avro::Duration::from(a))
        }
        Node::Uuid => {
            let s = json.as_str().ok_or_else(bad)?;
            GenericValue::Uuid(apache_avro::Uuid::parse_str(s).map_err(|_| bad())?)
        }
        Node::Enum(e) => {
            let def = c.enum_def(*e);
            let i = json.as_str().and_then(|s| def.index_of(s)).ok_or_else(bad)?;
            GenericValue::Enum(i, def.symbols[i as usize].clone())
        }
        Node::Array(items) => GenericValue::Array(
            json.as_array()
                .ok_or_else(bad)?
                .iter()
                .map(|x| default_value(c, *items, x, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Node::Map(values) => GenericValue::Map(
            json.as_object()
                .ok_or_else(bad)?
                .iter()
                .map(|(k, x)| Ok((k.clone(), default_value(c, *values, x, depth + 1)?)))
                .collect::<Result<_, String>>()?,
        ),
        Node::Record(r) => {
            let obj = json.as_object().ok_or_else(bad)?;
            let def = c.record(*r);
            let mut values = Vec::with_capacity(def.fields.len());
            for f in def.fields.iter() {
                let x = obj.get(&*f.name).or(f.default.as_ref()).ok_or_else(bad)?;
                values.push(default_value(c, f.node, x, depth + 1)?);
            }
            GenericValue::Record(GenericRecord::from_parts(c.clone(), *r, values.into_boxed_slice()))
        }
        Node::Union(branches) => match branches.first() {
            Some(first) => default_value(c, *first, json, depth + 1)?,
            None => return Err(bad()),
        },
        Node::Null | Node::BigDecimal | Node::Undefined(_) => return Err(bad()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_extension_keeps_the_value() {
        assert_eq!(sign_extend(&[0x01, 0x18], 4), Some(vec![0, 0, 0x01, 0x18]));
        assert_eq!(sign_extend(&[0xff, 0x18], 3), Some(vec![0xff, 0xff, 0x18]));
        assert_eq!(sign_extend(&[0, 0, 0, 0x7f], 1), Some(vec![0x7f]));
        assert_eq!(sign_extend(&[0, 0x80], 1), None, "128 needs two bytes");
        assert_eq!(sign_extend(&[], 2), Some(vec![0, 0]));
    }
}
