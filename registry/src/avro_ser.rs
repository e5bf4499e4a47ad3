//! Serde values written straight into the output buffer following a compiled schema
//! (`avro_compiled`): record fields in the schema's order (fields a type serializes in
//! another order are buffered and put in place), array and map items counted from serde's
//! length instead of buffered one by one.
//!
//! It writes what apache-avro's schema-aware serializer (`write_avro_datum_ref`) writes for
//! the same value, and picks union branches by the same rules (`Some` takes the first
//! non-null branch, a bare value the first branch of its kind). Anything it does not handle
//! (tuples, newtype and struct variants, skipped fields, a value apache-avro refuses) is a
//! [`SerError::Fallback`]: the caller encodes that value with apache-avro instead, so the
//! result and the errors stay what they were. One thing is refused here that apache-avro
//! writes: a struct missing fields of its record (apache-avro writes a datum short of them).

use serde::ser::{Impossible, Serialize, SerializeMap, SerializeSeq, SerializeStruct};

use crate::avro_compiled::{Compiled, Node, RecordDef};
use crate::avro_read::{write_bytes, write_long};

/// Why a value was not written.
#[derive(Debug)]
pub(crate) enum SerError {
    /// Not handled here: encode it with apache-avro.
    Fallback,
    /// The value cannot be written with the schema.
    Invalid(String),
}

impl std::fmt::Display for SerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SerError::Fallback => f.write_str("not handled by the compiled serializer"),
            SerError::Invalid(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for SerError {}

impl serde::ser::Error for SerError {
    fn custom<M: std::fmt::Display>(_: M) -> Self {
        SerError::Fallback
    }
}

type SerResult<T = ()> = std::result::Result<T, SerError>;

/// Writes `value` as a datum of `c`'s schema to `out`; on an error nothing is left in `out`.
pub(crate) fn encode<T: Serialize + ?Sized>(c: &Compiled, value: &T, out: &mut Vec<u8>) -> SerResult {
    let start = out.len();
    let r = value.serialize(Ser {
        c,
        node: c.node(c.root),
        out: &mut *out,
    });
    if r.is_err() {
        out.truncate(start);
    }
    r
}

/// The schema a map key is written with.
static STRING: Node = Node::String;

/// Most items apache-avro's serializer puts in one array or map block.
const BLOCK: usize = 1025;

struct Ser<'o, 'c> {
    c: &'c Compiled,
    node: &'c Node,
    out: &'o mut Vec<u8>,
}

fn int_kind(n: &Node) -> bool {
    matches!(n, Node::Int | Node::TimeMillis | Node::Date)
}

fn long_kind(n: &Node) -> bool {
    matches!(
        n,
        Node::Long
            | Node::TimeMicros
            | Node::TimestampMillis
            | Node::TimestampMicros
            | Node::TimestampNanos
            | Node::LocalTimestampMillis
            | Node::LocalTimestampMicros
            | Node::LocalTimestampNanos
    )
}

impl<'c> Ser<'_, 'c> {
    /// The node to write with: this one if it accepts the value, or for a union the first
    /// branch that does (its index written).
    #[inline]
    fn target(&mut self, accept: impl Fn(&Node) -> bool) -> SerResult<&'c Node> {
        match self.node {
            Node::Union(branches) => {
                for (i, b) in branches.iter().enumerate() {
                    let n = self.c.node(*b);
                    if accept(n) {
                        write_long(i as i64, self.out);
                        return Ok(n);
                    }
                }
                Err(SerError::Fallback)
            }
            n if accept(n) => Ok(n),
            _ => Err(SerError::Fallback),
        }
    }

    fn integer(mut self, v: i64, bytes: bool) -> SerResult {
        let n = self.target(|n| int_kind(n) || long_kind(n) || (bytes && matches!(n, Node::Bytes)))?;
        if int_kind(n) {
            let i = i32::try_from(v).map_err(|_| SerError::Fallback)?;
            write_long(i64::from(i), self.out);
        } else if long_kind(n) {
            write_long(v, self.out);
        } else {
            let b = u8::try_from(v).map_err(|_| SerError::Fallback)?;
            write_bytes(&[b], self.out);
        }
        Ok(())
    }
}

impl<'o, 'c> serde::Serializer for Ser<'o, 'c> {
    type Ok = ();
    type Error = SerError;
    type SerializeSeq = Items<'o, 'c>;
    type SerializeTuple = Impossible<(), SerError>;
    type SerializeTupleStruct = Impossible<(), SerError>;
    type SerializeTupleVariant = Impossible<(), SerError>;
    type SerializeMap = Items<'o, 'c>;
    type SerializeStruct = Fields<'o, 'c>;
    type SerializeStructVariant = Impossible<(), SerError>;

    fn serialize_bool(mut self, v: bool) -> SerResult {
        self.target(|n| matches!(n, Node::Boolean))?;
        self.out.push(u8::from(v));
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> SerResult {
        self.integer(i64::from(v), false)
    }

    fn serialize_i16(self, v: i16) -> SerResult {
        self.integer(i64::from(v), false)
    }

    fn serialize_i32(self, v: i32) -> SerResult {
        self.integer(i64::from(v), false)
    }

    fn serialize_i64(self, v: i64) -> SerResult {
        self.integer(v, false)
    }

    fn serialize_u8(self, v: u8) -> SerResult {
        self.integer(i64::from(v), true)
    }

    fn serialize_u16(self, v: u16) -> SerResult {
        self.integer(i64::from(v), false)
    }

    fn serialize_u32(self, v: u32) -> SerResult {
        self.integer(i64::from(v), false)
    }

    fn serialize_u64(self, v: u64) -> SerResult {
        self.integer(i64::try_from(v).map_err(|_| SerError::Fallback)?, false)
    }

    fn serialize_f32(mut self, v: f32) -> SerResult {
        match self.target(|n| matches!(n, Node::Float | Node::Double))? {
            Node::Float => self.out.extend_from_slice(&v.to_le_bytes()),
            _ => self.out.extend_from_slice(&f64::from(v).to_le_bytes()),
        }
        Ok(())
    }

    fn serialize_f64(mut self, v: f64) -> SerResult {
        match self.target(|n| matches!(n, Node::Float | Node::Double))? {
            Node::Float => self.out.extend_from_slice(&(v as f32).to_le_bytes()),
            _ => self.out.extend_from_slice(&v.to_le_bytes()),
        }
        Ok(())
    }

    fn serialize_char(mut self, v: char) -> SerResult {
        self.target(|n| matches!(n, Node::String | Node::Bytes))?;
        write_bytes(v.encode_utf8(&mut [0; 4]).as_bytes(), self.out);
        Ok(())
    }

    fn serialize_str(mut self, v: &str) -> SerResult {
        let c = self.c;
        match self.target(|n| matches!(n, Node::String | Node::Bytes | Node::Uuid | Node::Fixed(_)))? {
            Node::Fixed(f) if c.fixed[*f as usize].size == v.len() => self.out.extend_from_slice(v.as_bytes()),
            Node::Fixed(_) => return Err(SerError::Fallback),
            _ => write_bytes(v.as_bytes(), self.out),
        }
        Ok(())
    }

    fn serialize_bytes(mut self, v: &[u8]) -> SerResult {
        let c = self.c;
        let n = self.target(|n| {
            matches!(
                n,
                Node::String
                    | Node::Bytes
                    | Node::Uuid
                    | Node::BigDecimal
                    | Node::Fixed(_)
                    | Node::Duration
                    | Node::Decimal(_)
            )
        })?;
        match n {
            Node::Fixed(f) if c.fixed[*f as usize].size == v.len() => self.out.extend_from_slice(v),
            Node::Duration if v.len() == 12 => self.out.extend_from_slice(v),
            Node::String | Node::Bytes | Node::Uuid | Node::BigDecimal | Node::Decimal(None) => {
                write_bytes(v, self.out)
            }
            _ => return Err(SerError::Fallback),
        }
        Ok(())
    }

    fn serialize_none(mut self) -> SerResult {
        self.target(|n| matches!(n, Node::Null))?;
        Ok(())
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> SerResult {
        // apache-avro: the first branch that is not null, whatever the value.
        if let Node::Union(branches) = self.node {
            let c = self.c;
            let (i, b) = branches
                .iter()
                .enumerate()
                .find(|(_, b)| !matches!(c.node(**b), Node::Null))
                .ok_or(SerError::Fallback)?;
            write_long(i as i64, self.out);
            return value.serialize(Ser {
                c,
                node: c.node(*b),
                out: self.out,
            });
        }
        value.serialize(self)
    }

    fn serialize_unit(self) -> SerResult {
        self.serialize_none()
    }

    fn serialize_unit_struct(self, _name: &'static str) -> SerResult {
        Err(SerError::Fallback)
    }

    fn serialize_unit_variant(self, _name: &'static str, index: u32, variant: &'static str) -> SerResult {
        let Node::Enum(e) = self.node else {
            return Err(SerError::Fallback);
        };
        let def = self.c.enum_def(*e);
        // The variant's index when its symbol is there (what apache-avro writes), else the
        // symbol of the variant's name; a variant whose name is no symbol is apache-avro's.
        let i = match def.symbols.get(index as usize) {
            Some(s) if **s == *variant => index,
            _ => def.index_of(variant).ok_or(SerError::Fallback)?,
        };
        write_long(i64::from(i), self.out);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _name: &'static str, value: &T) -> SerResult {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _value: &T,
    ) -> SerResult {
        Err(SerError::Fallback)
    }

    fn serialize_seq(mut self, len: Option<usize>) -> SerResult<Items<'o, 'c>> {
        let len = len.ok_or(SerError::Fallback)?;
        let Node::Array(items) = self.target(|n| matches!(n, Node::Array(_)))? else {
            return Err(SerError::Fallback);
        };
        Ok(Items::new(self.c, self.c.node(*items), self.out, len))
    }

    fn serialize_tuple(self, _len: usize) -> SerResult<Self::SerializeTuple> {
        Err(SerError::Fallback)
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> SerResult<Self::SerializeTupleStruct> {
        Err(SerError::Fallback)
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> SerResult<Self::SerializeTupleVariant> {
        Err(SerError::Fallback)
    }

    fn serialize_map(mut self, len: Option<usize>) -> SerResult<Items<'o, 'c>> {
        let len = len.ok_or(SerError::Fallback)?;
        let Node::Map(values) = self.target(|n| matches!(n, Node::Map(_)))? else {
            return Err(SerError::Fallback);
        };
        Ok(Items::new(self.c, self.c.node(*values), self.out, len))
    }

    fn serialize_struct(self, name: &'static str, len: usize) -> SerResult<Fields<'o, 'c>> {
        let c = self.c;
        let rec = match self.node {
            Node::Record(r) => *r,
            // apache-avro: the first record branch of the struct's name and field count.
            Node::Union(branches) => {
                let (i, r) = branches
                    .iter()
                    .enumerate()
                    .find_map(|(i, b)| match c.node(*b) {
                        Node::Record(r) if &*c.record(*r).name == name && c.record(*r).fields.len() == len => {
                            Some((i, *r))
                        }
                        _ => None,
                    })
                    .ok_or(SerError::Fallback)?;
                write_long(i as i64, self.out);
                r
            }
            _ => return Err(SerError::Fallback),
        };
        Ok(Fields {
            c,
            def: c.record(rec),
            out: self.out,
            next: 0,
            later: Vec::new(),
        })
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        _variant: &'static str,
        _len: usize,
    ) -> SerResult<Self::SerializeStructVariant> {
        Err(SerError::Fallback)
    }
}

/// The items of an array or the entries of a map, in blocks of at most [`BLOCK`] (as
/// apache-avro writes them), counted from serde's length.
struct Items<'o, 'c> {
    c: &'c Compiled,
    item: &'c Node,
    out: &'o mut Vec<u8>,
    /// Items serde announced and not yet written.
    left: usize,
    /// Items left in the current block.
    block: usize,
}

impl<'o, 'c> Items<'o, 'c> {
    fn new(c: &'c Compiled, item: &'c Node, out: &'o mut Vec<u8>, len: usize) -> Self {
        Items {
            c,
            item,
            out,
            left: len,
            block: 0,
        }
    }

    fn start_item(&mut self) -> SerResult {
        if self.left == 0 {
            // More items than serde announced.
            return Err(SerError::Fallback);
        }
        if self.block == 0 {
            self.block = self.left.min(BLOCK);
            write_long(self.block as i64, self.out);
        }
        self.block -= 1;
        self.left -= 1;
        Ok(())
    }

    fn value<T: Serialize + ?Sized>(&mut self, value: &T) -> SerResult {
        value.serialize(Ser {
            c: self.c,
            node: self.item,
            out: self.out,
        })
    }

    fn finish(self) -> SerResult {
        if self.left != 0 {
            return Err(SerError::Fallback);
        }
        self.out.push(0);
        Ok(())
    }
}

impl SerializeSeq for Items<'_, '_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_element<T: Serialize + ?Sized>(&mut self, value: &T) -> SerResult {
        self.start_item()?;
        self.value(value)
    }

    fn end(self) -> SerResult {
        self.finish()
    }
}

impl SerializeMap for Items<'_, '_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> SerResult {
        self.start_item()?;
        key.serialize(Ser {
            c: self.c,
            node: &STRING,
            out: self.out,
        })
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> SerResult {
        self.value(value)
    }

    fn end(self) -> SerResult {
        self.finish()
    }
}

/// A struct's fields as a record's: written in place while they come in the schema's order;
/// any that come out of it are written aside and put in order at the end.
struct Fields<'o, 'c> {
    c: &'c Compiled,
    def: &'c RecordDef,
    out: &'o mut Vec<u8>,
    /// The schema position of the next field written in place.
    next: usize,
    /// Fields that came out of order: their position and encoding.
    later: Vec<(usize, Vec<u8>)>,
}

impl SerializeStruct for Fields<'_, '_> {
    type Ok = ();
    type Error = SerError;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> SerResult {
        if self.later.is_empty() {
            if let Some(f) = self.def.fields.get(self.next) {
                if *f.name == *key {
                    self.next += 1;
                    return value.serialize(Ser {
                        c: self.c,
                        node: self.c.node(f.node),
                        out: self.out,
                    });
                }
            }
        }
        let pos = self.def.position(key).ok_or(SerError::Fallback)?;
        if pos < self.next || self.later.iter().any(|(p, _)| *p == pos) {
            return Err(SerError::Fallback);
        }
        let mut buf = Vec::new();
        value.serialize(Ser {
            c: self.c,
            node: self.c.node(self.def.fields[pos].node),
            out: &mut buf,
        })?;
        self.later.push((pos, buf));
        Ok(())
    }

    fn skip_field(&mut self, _key: &'static str) -> SerResult {
        // apache-avro writes the field's default.
        Err(SerError::Fallback)
    }

    fn end(mut self) -> SerResult {
        self.later.sort_by_key(|(p, _)| *p);
        let mut later = self.later.iter();
        for pos in self.next..self.def.fields.len() {
            match later.next() {
                Some((p, b)) if *p == pos => self.out.extend_from_slice(b),
                _ => {
                    return Err(SerError::Invalid(format!(
                        "the value does not match its Avro schema: field {} of {} is missing",
                        self.def.fields[pos].name, self.def.full_name
                    )))
                }
            }
        }
        Ok(())
    }
}
