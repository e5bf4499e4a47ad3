//! Serde types straight from an Avro datum through a decode plan (`avro_plan`): no
//! intermediate value, resolution already decided. Strings and bytes can borrow from the
//! datum; records arrive as maps of the reader's field names (skipped writer fields read
//! past, defaults of missing ones given after the others), enums as the reader's symbol,
//! unions as their branch (null as `None`).

use serde::de::{DeserializeSeed, IntoDeserializer, MapAccess, SeqAccess, Visitor};

use crate::avro_compiled::FieldDef;
use crate::avro_generic::GenericValue;
use crate::avro_plan::{read_raw, FieldStep, Make, Plan, Raw, RecordPlan, Step, StepId};
use crate::avro_read::{too_deep, utf8, Fail, Reader, MAX_DEPTH};
use crate::error::{Error, Result};

/// Decodes one datum from all of `data` into `T`.
///
/// Structs take records as sequences where they can (see `deserialize_struct`). A type whose
/// struct visitor takes only maps (a hand-written one without `visit_seq`) fails that way:
/// a datum that fails is read again by field name, and when that succeeds the plan gives
/// records by name from then on. The error of a datum that fails both ways is the by-name one.
#[inline]
pub(crate) fn decode<'a, T: serde::Deserialize<'a>>(plan: &Plan, data: &'a [u8]) -> Result<T> {
    let by_name = plan.by_name.load(std::sync::atomic::Ordering::Relaxed);
    match decode_once(plan, data, by_name) {
        Ok(v) => Ok(v),
        Err(_) if !by_name => {
            let v = decode_once(plan, data, true)?;
            plan.by_name.store(true, std::sync::atomic::Ordering::Relaxed);
            Ok(v)
        }
        Err(e) => Err(e),
    }
}

#[inline]
fn decode_once<'a, T: serde::Deserialize<'a>>(plan: &Plan, data: &'a [u8], by_name: bool) -> Result<T> {
    let mut r = Reader::new(data);
    r.by_name = by_name;
    let de = De {
        r: &mut r,
        plan,
        step: plan.root,
        depth: 0,
    };
    match T::deserialize(de) {
        Ok(v) if r.data.is_empty() => Ok(v),
        Ok(_) => Err(r
            .end()
            .err()
            .map_or_else(|| Error::serialization("bytes left (a bug)"), Fail::into_error)),
        Err(e) => Err(into_error(e, std::any::type_name::<T>())),
    }
}

/// A failure of the datum (bounds, lengths, resolution) or of the target type (serde's
/// message), with the fields it happened in: one boxed word, so that the results of the
/// visitor calls come back in registers, not through memory.
type DeError = Fail;

impl serde::de::Error for Fail {
    #[cold]
    fn custom<M: std::fmt::Display>(msg: M) -> Self {
        Fail::from_serde(msg.to_string())
    }
}

/// The error of [`decode`]: the datum's, or serde's message with the type named.
fn into_error(e: DeError, type_name: &str) -> Error {
    let from_serde = e.is_from_serde();
    let e = e.into_error();
    if from_serde {
        Error::serialization(format!(
            "the Avro datum does not deserialize into {type_name}: {}",
            e.message()
        ))
    } else {
        e
    }
}

type DeResult<T> = std::result::Result<T, DeError>;

struct De<'r, 'a, 'p> {
    r: &'r mut Reader<'a>,
    plan: &'p Plan,
    step: StepId,
    depth: usize,
}

impl<'a, 'p> De<'_, 'a, 'p> {
    fn child(&mut self, step: StepId) -> DeResult<De<'_, 'a, 'p>> {
        if self.depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        Ok(De {
            r: self.r,
            plan: self.plan,
            step,
            depth: self.depth + 1,
        })
    }

    /// The step reads a null (directly, or as a reader union's null branch).
    fn is_null(&self, s: StepId) -> bool {
        match self.plan.step(s) {
            Step::Null => true,
            Step::ReaderUnion { step, .. } => matches!(self.plan.step(*step), Step::Null),
            _ => false,
        }
    }
}

/// A converted primitive, to `visitor`.
fn visit_raw<'a, V: Visitor<'a>>(raw: Raw<'a>, make: Make, visitor: V) -> DeResult<V::Value> {
    match (make, raw) {
        (Make::Int | Make::Date | Make::TimeMillis, Raw::I(i)) => visitor.visit_i32(i),
        (
            Make::Long
            | Make::TimeMicros
            | Make::TimestampMillis
            | Make::TimestampMicros
            | Make::TimestampNanos
            | Make::LocalTimestampMillis
            | Make::LocalTimestampMicros
            | Make::LocalTimestampNanos,
            Raw::I(i),
        ) => visitor.visit_i64(i64::from(i)),
        (
            Make::Long
            | Make::TimeMicros
            | Make::TimestampMillis
            | Make::TimestampMicros
            | Make::TimestampNanos
            | Make::LocalTimestampMillis
            | Make::LocalTimestampMicros
            | Make::LocalTimestampNanos,
            Raw::L(l),
        ) => visitor.visit_i64(l),
        (Make::Float, Raw::I(i)) => visitor.visit_f32(i as f32),
        (Make::Float, Raw::L(l)) => visitor.visit_f32(l as f32),
        (Make::Float, Raw::F(f)) => visitor.visit_f32(f),
        (Make::Double, Raw::I(i)) => visitor.visit_f64(f64::from(i)),
        (Make::Double, Raw::L(l)) => visitor.visit_f64(l as f64),
        (Make::Double, Raw::F(f)) => visitor.visit_f64(f64::from(f)),
        (Make::Double, Raw::D(d)) => visitor.visit_f64(d),
        (Make::String, Raw::B(b)) => visitor.visit_borrowed_str(utf8(b, "a string")?),
        (Make::Uuid, Raw::B(b)) => match utf8(b, "a uuid") {
            Ok(s) => visitor.visit_borrowed_str(s),
            Err(_) => visitor.visit_borrowed_bytes(b),
        },
        (Make::Bytes | Make::Fixed | Make::Decimal | Make::Duration, Raw::B(b)) => visitor.visit_borrowed_bytes(b),
        _ => Err(Fail::new(format!(
            "an Avro {make:?} made from a type the plan does not convert (a bug)"
        ))),
    }
}

impl<'a> serde::Deserializer<'a> for De<'_, 'a, '_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'a>>(mut self, visitor: V) -> DeResult<V::Value> {
        match self.plan.step(self.step) {
            Step::Null => visitor.visit_unit(),
            Step::Boolean => visitor.visit_bool(self.r.boolean()?),
            Step::Int => visitor.visit_i32(self.r.int()?),
            Step::Long => visitor.visit_i64(self.r.long()?),
            Step::Float => visitor.visit_f32(self.r.float()?),
            Step::Double => visitor.visit_f64(self.r.double()?),
            Step::Bytes => visitor.visit_borrowed_bytes(self.r.bytes("bytes")?),
            Step::String => visitor.visit_borrowed_str(self.r.str("a string")?),
            Step::Convert(read, make) => visit_raw(read_raw(self.r, *read)?, *make, visitor),
            Step::Enum { writer, reader, map } => {
                let (_, symbol) = self.plan.enum_symbol(self.r, *writer, *reader, map)?;
                visitor.visit_str(symbol)
            }
            Step::Array { item, empty } => {
                let (item, empty) = (*item, *empty);
                let de = self.child(item)?;
                let mut blocks = Blocks {
                    de,
                    empty,
                    left: 0,
                    done: false,
                };
                // The first block's count now, so size_hint can size the collection.
                blocks.more("an array")?;
                visitor.visit_seq(blocks)
            }
            Step::Map { item, empty } => {
                let (item, empty) = (*item, *empty);
                let de = self.child(item)?;
                visitor.visit_map(Blocks {
                    de,
                    empty,
                    left: 0,
                    done: false,
                })
            }
            Step::Record(i) => {
                if self.depth >= MAX_DEPTH {
                    return Err(too_deep());
                }
                let plan = self.plan;
                let rp = plan.record(*i);
                visitor.visit_map(Fields {
                    r: self.r,
                    plan,
                    rp,
                    names: &plan.reader.record(rp.reader).fields,
                    next: 0,
                    next_default: 0,
                    pending: Pending::None,
                    depth: self.depth + 1,
                })
            }
            Step::WriterUnion(branches) => {
                let b = self.plan.writer_branch(self.r, branches)?;
                self.child(b)?.deserialize_any(visitor)
            }
            Step::ReaderUnion { step, .. } => {
                self.step = *step;
                self.deserialize_any(visitor)
            }
            Step::Fail(m) => Err(Fail::new(m.to_string())),
        }
    }

    fn deserialize_option<V: Visitor<'a>>(mut self, visitor: V) -> DeResult<V::Value> {
        match self.plan.step(self.step) {
            Step::Null => visitor.visit_none(),
            Step::WriterUnion(branches) => {
                let b = self.plan.writer_branch(self.r, branches)?;
                if self.is_null(b) {
                    visitor.visit_none()
                } else {
                    visitor.visit_some(self.child(b)?)
                }
            }
            Step::ReaderUnion { step, .. } => {
                if self.is_null(*step) {
                    visitor.visit_none()
                } else {
                    self.step = *step;
                    visitor.visit_some(self)
                }
            }
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'a>>(
        mut self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> DeResult<V::Value> {
        match self.plan.step(self.step) {
            Step::Enum { writer, reader, map } => {
                let (_, symbol) = self.plan.enum_symbol(self.r, *writer, *reader, map)?;
                visitor.visit_enum((&**symbol).into_deserializer())
            }
            Step::String => {
                let s = self.r.str("a string")?;
                visitor.visit_enum(s.into_deserializer())
            }
            Step::WriterUnion(branches) => {
                let b = self.plan.writer_branch(self.r, branches)?;
                self.child(b)?.deserialize_enum(name, variants, visitor)
            }
            Step::ReaderUnion { step, .. } => {
                self.step = *step;
                self.deserialize_enum(name, variants, visitor)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(self, _name: &'static str, visitor: V) -> DeResult<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    // The types a serde type asks for: at each call site the step is nearly always the same
    // one, so checking for it is a branch the processor predicts (deserialize_any's jump on
    // the step is one it mostly does not).

    #[inline]
    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> DeResult<V::Value> {
        match self.plan.step(self.step) {
            Step::Boolean => visitor.visit_bool(self.r.boolean()?),
            _ => self.deserialize_any(visitor),
        }
    }

    #[inline]
    fn deserialize_i32<V: Visitor<'a>>(self, visitor: V) -> DeResult<V::Value> {
        match self.plan.step(self.step) {
            Step::Int => visitor.visit_i32(self.r.int()?),
            _ => self.deserialize_any(visitor),
        }
    }

    #[inline]
    fn deserialize_i64<V: Visitor<'a>>(self, visitor: V) -> DeResult<V::Value> {
        match self.plan.step(self.step) {
            Step::Long => visitor.visit_i64(self.r.long()?),
            _ => self.deserialize_any(visitor),
        }
    }

    #[inline]
    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> DeResult<V::Value> {
        match self.plan.step(self.step) {
            Step::Float => visitor.visit_f32(self.r.float()?),
            _ => self.deserialize_any(visitor),
        }
    }

    #[inline]
    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> DeResult<V::Value> {
        match self.plan.step(self.step) {
            Step::Double => visitor.visit_f64(self.r.double()?),
            _ => self.deserialize_any(visitor),
        }
    }

    #[inline]
    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> DeResult<V::Value> {
        match self.plan.step(self.step) {
            Step::String => visitor.visit_borrowed_str(self.r.str("a string")?),
            _ => self.deserialize_any(visitor),
        }
    }

    #[inline]
    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> DeResult<V::Value> {
        self.deserialize_str(visitor)
    }

    #[inline]
    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> DeResult<V::Value> {
        match self.plan.step(self.step) {
            Step::Bytes => visitor.visit_borrowed_bytes(self.r.bytes("bytes")?),
            _ => self.deserialize_any(visitor),
        }
    }

    #[inline]
    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> DeResult<V::Value> {
        self.deserialize_bytes(visitor)
    }

    #[inline]
    fn deserialize_seq<V: Visitor<'a>>(mut self, visitor: V) -> DeResult<V::Value> {
        match self.plan.step(self.step) {
            Step::Array { item, empty } => {
                let (item, empty) = (*item, *empty);
                let de = self.child(item)?;
                let mut blocks = Blocks {
                    de,
                    empty,
                    left: 0,
                    done: false,
                };
                blocks.more("an array")?;
                visitor.visit_seq(blocks)
            }
            _ => self.deserialize_any(visitor),
        }
    }

    /// A record whose reader field names are the struct's `fields`, in order, and whose
    /// values come in that order, is given as a sequence: the struct takes its fields by
    /// position, with no names to match. Serde's derived structs take sequences (as every
    /// format without field names gives them); the fields it takes are counted, so a struct
    /// whose `fields` hold aliases (fewer fields than names) is an error, not a shifted
    /// read (by name its alias would be a duplicate field, an error too).
    fn deserialize_struct<V: Visitor<'a>>(
        mut self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> DeResult<V::Value> {
        if let Step::ReaderUnion { step } = self.plan.step(self.step) {
            self.step = *step;
        }
        let Step::Record(i) = self.plan.step(self.step) else {
            return self.deserialize_any(visitor);
        };
        let rp = self.plan.record(*i);
        if self.r.by_name || !rp.sequential || !self.plan.names_are(rp, fields) {
            return self.deserialize_any(visitor);
        }
        if self.depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        let mut seq = Sequence {
            r: self.r,
            plan: self.plan,
            rp,
            next: 0,
            next_default: 0,
            depth: self.depth + 1,
        };
        let v = visitor.visit_seq(&mut seq)?;
        seq.finish(name)?;
        Ok(v)
    }

    serde::forward_to_deserialize_any! {
        <W: Visitor<'a>>
        i8 i16 i128 u8 u16 u32 u64 u128 char unit
        unit_struct tuple tuple_struct map identifier ignored_any
    }
}

/// The elements of an array or the entries of a map, block by block.
struct Blocks<'r, 'a, 'p> {
    de: De<'r, 'a, 'p>,
    empty: bool,
    /// Items left in the current block.
    left: usize,
    /// The block of count 0 that ends the array or map was read.
    done: bool,
}

impl<'a, 'p> Blocks<'_, 'a, 'p> {
    /// Whether another element follows: the current block's count, or the next block's.
    #[inline]
    fn more(&mut self, what: &'static str) -> DeResult<bool> {
        if self.left > 0 {
            return Ok(true);
        }
        self.next_block(what)
    }

    #[inline(never)]
    fn next_block(&mut self, what: &'static str) -> DeResult<bool> {
        while !self.done {
            let n = self.de.r.block(self.empty, what)?;
            if n == 0 {
                self.done = true;
            } else {
                self.left = n;
                return Ok(true);
            }
        }
        Ok(false)
    }

    #[inline]
    fn item(&mut self) -> De<'_, 'a, 'p> {
        De {
            r: self.de.r,
            plan: self.de.plan,
            step: self.de.step,
            depth: self.de.depth,
        }
    }
}

impl<'a> SeqAccess<'a> for Blocks<'_, 'a, '_> {
    type Error = DeError;

    fn size_hint(&self) -> Option<usize> {
        // Bounded by the bytes left (block() checked it), so a collection may reserve it.
        Some(self.left.min(self.de.r.data.len()))
    }

    #[inline]
    fn next_element_seed<S: DeserializeSeed<'a>>(&mut self, seed: S) -> DeResult<Option<S::Value>> {
        if !self.more("an array")? {
            return Ok(None);
        }
        self.left -= 1;
        seed.deserialize(self.item()).map(Some)
    }
}

impl<'a> MapAccess<'a> for Blocks<'_, 'a, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'a>>(&mut self, seed: K) -> DeResult<Option<K::Value>> {
        if !self.more("a map")? {
            return Ok(None);
        }
        self.left -= 1;
        let k = self.de.r.str("a map key")?;
        seed.deserialize(serde::de::value::BorrowedStrDeserializer::new(k))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> DeResult<V::Value> {
        seed.deserialize(self.item())
    }
}

/// What the next value of a record is.
enum Pending<'p> {
    None,
    /// Read with this step; the writer's field index (for messages).
    Step(StepId, usize),
    /// A reader field's default; its name.
    Default(&'p GenericValue, &'p str),
}

/// A record's fields as a map from the reader's field name to value: the writer's fields in
/// its order (those the reader lacks read past), then the reader's defaults.
struct Fields<'r, 'a, 'p> {
    r: &'r mut Reader<'a>,
    plan: &'p Plan,
    rp: &'p RecordPlan,
    names: &'p [FieldDef],
    next: usize,
    next_default: usize,
    pending: Pending<'p>,
    depth: usize,
}

impl<'a> MapAccess<'a> for Fields<'_, 'a, '_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'a>>(&mut self, seed: K) -> DeResult<Option<K::Value>> {
        while let Some(f) = self.rp.fields.get(self.next) {
            let k = self.next;
            self.next += 1;
            match *f {
                FieldStep::Skip(node) => {
                    let skipped = self.plan.skip(self.r, node, self.depth);
                    skipped.map_err(|e| self.plan.in_field(e, self.rp, k))?;
                }
                FieldStep::Read { step, to } => {
                    self.pending = Pending::Step(step, k);
                    let name = self.names.get(to as usize).map_or("", |f| &*f.name);
                    return seed
                        .deserialize(serde::de::value::StrDeserializer::<DeError>::new(name))
                        .map(Some);
                }
            }
        }
        match self.rp.defaults.get(self.next_default) {
            Some((to, v)) => {
                self.next_default += 1;
                let name = self.names.get(*to as usize).map_or("", |f| &*f.name);
                self.pending = Pending::Default(v, name);
                seed.deserialize(serde::de::value::StrDeserializer::<DeError>::new(name))
                    .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> DeResult<V::Value> {
        match std::mem::replace(&mut self.pending, Pending::None) {
            Pending::Step(step, k) => {
                let de = De {
                    r: self.r,
                    plan: self.plan,
                    step,
                    depth: self.depth,
                };
                seed.deserialize(de)
                    .map_err(|e| match self.plan.writer.record(self.rp.writer).fields.get(k) {
                        Some(f) => e.in_field(&f.name),
                        None => e,
                    })
            }
            Pending::Default(v, name) => seed.deserialize(ValueDe(v)).map_err(|e| e.in_field(name)),
            Pending::None => Err(Fail::new("a record field's value asked before its name")),
        }
    }
}

/// A record's values as a sequence in the reader's order (see `deserialize_struct`).
struct Sequence<'r, 'a, 'p> {
    r: &'r mut Reader<'a>,
    plan: &'p Plan,
    rp: &'p RecordPlan,
    /// The next writer field.
    next: usize,
    /// The next default.
    next_default: usize,
    depth: usize,
}

impl<'a> Sequence<'_, 'a, '_> {
    /// After the struct took its fields: reads past the writer fields left (skipped ones),
    /// and fails if the struct took fewer fields than the record has.
    fn finish(&mut self, name: &str) -> DeResult<()> {
        while let Some(FieldStep::Skip(node)) = self.rp.fields.get(self.next) {
            let k = self.next;
            self.next += 1;
            let skipped = self.plan.skip(self.r, *node, self.depth);
            skipped.map_err(|e| self.plan.in_field(e, self.rp, k))?;
        }
        if self.next < self.rp.fields.len() || self.next_default < self.rp.defaults.len() {
            return Err(Fail::new(format!(
                "{name} takes {} of the {} fields of {} (are some of its field names serde aliases?)",
                self.given(),
                self.rp.len,
                self.plan.reader.record(self.rp.reader).full_name
            )));
        }
        Ok(())
    }

    /// The values handed out.
    fn given(&self) -> usize {
        let read = self.rp.fields[..self.next.min(self.rp.fields.len())]
            .iter()
            .filter(|f| matches!(f, FieldStep::Read { .. }))
            .count();
        read + self.next_default
    }

    /// The next value when it is not a writer field read in place: skipped writer fields,
    /// then the defaults, then the end.
    #[inline(never)]
    fn next_slow<S: DeserializeSeed<'a>>(&mut self, seed: S) -> DeResult<Option<S::Value>> {
        while let Some(f) = self.rp.fields.get(self.next) {
            let k = self.next;
            self.next += 1;
            match *f {
                FieldStep::Skip(node) => {
                    let skipped = self.plan.skip(self.r, node, self.depth);
                    skipped.map_err(|e| self.plan.in_field(e, self.rp, k))?;
                }
                FieldStep::Read { step, .. } => return self.read(seed, step, k),
            }
        }
        match self.rp.defaults.get(self.next_default) {
            Some((to, v)) => {
                self.next_default += 1;
                let name = self.plan.reader.record(self.rp.reader).fields.get(*to as usize);
                seed.deserialize(ValueDe(v))
                    .map(Some)
                    .map_err(|e| e.in_field(name.map_or("", |f| &*f.name)))
            }
            None => Ok(None),
        }
    }

    #[inline]
    fn read<S: DeserializeSeed<'a>>(&mut self, seed: S, step: StepId, k: usize) -> DeResult<Option<S::Value>> {
        let de = De {
            r: self.r,
            plan: self.plan,
            step,
            depth: self.depth,
        };
        match seed.deserialize(de) {
            Ok(v) => Ok(Some(v)),
            Err(e) => Err(self.plan.in_field(e, self.rp, k)),
        }
    }
}

impl<'a> SeqAccess<'a> for Sequence<'_, 'a, '_> {
    type Error = DeError;

    fn size_hint(&self) -> Option<usize> {
        Some(self.rp.len.saturating_sub(self.given()))
    }

    #[inline]
    fn next_element_seed<S: DeserializeSeed<'a>>(&mut self, seed: S) -> DeResult<Option<S::Value>> {
        if let Some(FieldStep::Read { step, .. }) = self.rp.fields.get(self.next) {
            let (step, k) = (*step, self.next);
            self.next += 1;
            return self.read(seed, step, k);
        }
        self.next_slow(seed)
    }
}

/// A generic value (a reader's default) as a serde deserializer.
#[derive(Clone, Copy)]
struct ValueDe<'v>(&'v GenericValue);

impl<'de> IntoDeserializer<'de, DeError> for ValueDe<'_> {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl<'de> serde::Deserializer<'de> for ValueDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> DeResult<V::Value> {
        use serde::de::value::{MapDeserializer, SeqDeserializer};
        match self.0 {
            GenericValue::Null => visitor.visit_unit(),
            GenericValue::Boolean(b) => visitor.visit_bool(*b),
            GenericValue::Int(i) | GenericValue::Date(i) | GenericValue::TimeMillis(i) => visitor.visit_i32(*i),
            GenericValue::Long(l)
            | GenericValue::TimeMicros(l)
            | GenericValue::TimestampMillis(l)
            | GenericValue::TimestampMicros(l)
            | GenericValue::TimestampNanos(l)
            | GenericValue::LocalTimestampMillis(l)
            | GenericValue::LocalTimestampMicros(l)
            | GenericValue::LocalTimestampNanos(l) => visitor.visit_i64(*l),
            GenericValue::Float(f) => visitor.visit_f32(*f),
            GenericValue::Double(d) => visitor.visit_f64(*d),
            GenericValue::Bytes(b) | GenericValue::Fixed(b) | GenericValue::Decimal(b) => visitor.visit_bytes(b),
            GenericValue::String(s) => visitor.visit_str(s),
            GenericValue::Enum(_, s) => visitor.visit_str(s),
            GenericValue::Uuid(u) => visitor.visit_string(u.to_string()),
            GenericValue::Duration(d) => visitor.visit_bytes(&<[u8; 12]>::from(*d)),
            GenericValue::Array(a) => visitor.visit_seq(SeqDeserializer::new(a.iter().map(ValueDe))),
            GenericValue::Map(m) => {
                visitor.visit_map(MapDeserializer::new(m.iter().map(|(k, v)| (k.as_str(), ValueDe(v)))))
            }
            GenericValue::Record(r) => {
                visitor.visit_map(MapDeserializer::new(r.fields().map(|(k, v)| (k, ValueDe(v)))))
            }
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> DeResult<V::Value> {
        match self.0 {
            GenericValue::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> DeResult<V::Value> {
        match self.0 {
            GenericValue::Enum(_, s) => visitor.visit_enum((&**s).into_deserializer()),
            GenericValue::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(self, _name: &'static str, visitor: V) -> DeResult<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf unit
        unit_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}
