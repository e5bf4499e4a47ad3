//! Decode plans: the resolution of a writer's schema to a reader's, decided once per pair
//! (Java's `org.apache.avro.Resolver`, whose actions this mirrors), then a tight loop over
//! the plan per datum.
//!
//! What is decided when the plan is built: which reader field each writer field fills (by
//! name, or a reader field's alias) and which writer fields are skipped; the defaults of the
//! reader fields the writer lacks (converted once from the schema's JSON); promotions (int
//! to long, float or double; long to float or double; float to double; string and bytes
//! either way); each writer enum symbol's reader symbol (or the reader enum's default); the
//! reader union branch a non-union writer value goes to (Java's `firstMatchingBranch`: the
//! same type, by full name for named types, else a record of the same structure, else a
//! promotion); and what cannot resolve, kept as a step that fails when a datum reaches it
//! (a writer union branch the reader cannot read fails only for the datums that use it).
//! Records are planned once per (writer, reader) pair, so recursive schemas are plans with
//! cycles.
//!
//! Decoding checks every length against the bytes left (`avro_read::Reader`), bounds
//! nesting, and fails on a datum cut short or followed by extra bytes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::Arc;

use crate::avro_compiled::{Base, Compiled, Node, NodeId};
use crate::avro_generic::{default_value, GenericRecord, GenericValue};
use crate::avro_read::{too_deep, Fail, Reader, MAX_DEPTH, R};
use crate::error::Result;

/// The index of a step in [`Plan::steps`].
pub(crate) type StepId = u32;

/// How the writer wrote a primitive the reader converts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Read {
    Int,
    Long,
    Float,
    Double,
    /// Length-prefixed (bytes, string).
    Bytes,
    Fixed(usize),
}

/// What the reader makes of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Make {
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed,
    Decimal,
    Uuid,
    Date,
    TimeMillis,
    TimeMicros,
    TimestampMillis,
    TimestampMicros,
    TimestampNanos,
    LocalTimestampMillis,
    LocalTimestampMicros,
    LocalTimestampNanos,
    Duration,
}

/// One step of a plan.
#[derive(Debug)]
pub(crate) enum Step {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    /// A promotion or a logical type: read as the writer wrote it, made into the reader's.
    Convert(Read, Make),
    /// `map[i]`: the reader's symbol index for the writer's symbol `i`.
    Enum {
        writer: u32,
        reader: u32,
        map: Box<[Option<u32>]>,
    },
    Array {
        item: StepId,
        /// The writer's item can take no bytes (its count is capped, not bounded by bytes).
        empty: bool,
    },
    Map {
        item: StepId,
        empty: bool,
    },
    Record(u32),
    /// The writer wrote a union: a step per writer branch.
    WriterUnion(Box<[StepId]>),
    /// The writer wrote no union; the reader reads it as the branch of its union that
    /// `step` resolves to.
    ReaderUnion {
        step: StepId,
    },
    /// Resolution failed here: fails when a datum reaches it.
    Fail(Box<str>),
}

/// How a record is read.
#[derive(Debug)]
pub(crate) struct RecordPlan {
    /// The writer's and reader's record types.
    pub(crate) writer: u32,
    pub(crate) reader: u32,
    /// One per writer field, in the writer's order.
    pub(crate) fields: Box<[FieldStep]>,
    /// The reader fields the writer lacks, with their defaults.
    pub(crate) defaults: Box<[(u32, GenericValue)]>,
    /// The reader's field count.
    pub(crate) len: usize,
    /// Writer field `i` is reader field `i` for every field (no skips, no defaults).
    pub(crate) in_order: bool,
    /// The values come in the reader's order (the fields read, then the defaults, are the
    /// reader's fields 0, 1, 2...): a serde struct with the reader's field names in that
    /// order can take them as a sequence, with no names to match.
    pub(crate) sequential: bool,
    /// The address of the last serde `fields` list found equal to the reader's names.
    pub(crate) seq_fields: AtomicUsize,
}

/// A writer field: read into a reader field, or skipped.
#[derive(Debug, Clone, Copy)]
pub(crate) enum FieldStep {
    Read { step: StepId, to: u32 },
    Skip(NodeId),
}

/// A compiled resolution of a writer's schema to a reader's.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) writer: Arc<Compiled>,
    pub(crate) reader: Arc<Compiled>,
    pub(crate) steps: Vec<Step>,
    pub(crate) records: Vec<RecordPlan>,
    pub(crate) root: StepId,
    /// A serde type read with this plan takes records only by field name (its struct
    /// visitor has no `visit_seq`): no struct is given a record as a sequence any more.
    pub(crate) by_name: AtomicBool,
}

impl Plan {
    /// The plan reading datums of `writer` as `reader` (the same schema for no resolution).
    pub(crate) fn new(writer: Arc<Compiled>, reader: Arc<Compiled>) -> Plan {
        let mut b = Builder {
            plan: Plan {
                writer,
                reader,
                steps: Vec::new(),
                records: Vec::new(),
                root: 0,
                by_name: AtomicBool::new(false),
            },
            memo: HashMap::new(),
        };
        let (w, r) = (b.plan.writer.root, b.plan.reader.root);
        b.plan.root = b.resolve(w, r, 0);
        b.plan
    }

    #[inline]
    pub(crate) fn step(&self, s: StepId) -> &Step {
        &self.steps[s as usize]
    }

    #[inline]
    pub(crate) fn record(&self, i: u32) -> &RecordPlan {
        &self.records[i as usize]
    }

    /// Whether serde's `fields` of a struct are the reader's field names of `rp`, in order
    /// (remembered by the address of `fields`, a constant of the struct's type).
    #[inline]
    pub(crate) fn names_are(&self, rp: &RecordPlan, fields: &'static [&'static str]) -> bool {
        use std::sync::atomic::Ordering;
        let at = fields.as_ptr() as usize;
        if fields.len() == rp.len && rp.seq_fields.load(Ordering::Relaxed) == at {
            return true;
        }
        let names = &self.reader.record(rp.reader).fields;
        let same = names.len() == fields.len() && names.iter().zip(fields).all(|(n, f)| *n.name == **f);
        if same {
            rp.seq_fields.store(at, Ordering::Relaxed);
        }
        same
    }

    /// Decodes one datum from all of `data` into a generic value of the reader's schema.
    pub(crate) fn decode_generic(&self, data: &[u8]) -> Result<GenericValue> {
        let mut r = Reader::new(data);
        let mut v = GenericValue::Null;
        self.set(&mut r, self.root, 0, &mut v).map_err(Fail::into_error)?;
        r.end().map_err(Fail::into_error)?;
        Ok(v)
    }

    /// Reads a value of step `s` into `slot` (which holds `Null`). Each kind is written
    /// straight into the slot: a value built apart and then moved (as `Vec::push` does, the
    /// vector possibly growing in between) is reloaded in 16-byte words the processor cannot
    /// forward from the smaller stores that built it, a stall per value.
    #[inline(always)]
    fn set(&self, r: &mut Reader<'_>, s: StepId, depth: usize, slot: &mut GenericValue) -> R<()> {
        match self.step(s) {
            Step::Null => {}
            Step::Boolean => *slot = GenericValue::Boolean(r.boolean()?),
            Step::Int => *slot = GenericValue::Int(r.int()?),
            Step::Long => *slot = GenericValue::Long(r.long()?),
            Step::Float => *slot = GenericValue::Float(r.float()?),
            Step::Double => *slot = GenericValue::Double(r.double()?),
            Step::Bytes => *slot = GenericValue::Bytes(r.bytes("bytes")?.to_vec()),
            Step::String => *slot = GenericValue::String(r.str("a string")?.to_owned()),
            Step::Convert(read, make) => *slot = make_value(read_raw(r, *read)?, *make)?,
            Step::Enum { writer, reader, map } => {
                let (i, symbol) = self.enum_symbol(r, *writer, *reader, map)?;
                *slot = GenericValue::Enum(i, symbol.clone());
            }
            Step::Array { item, empty } => *slot = GenericValue::Array(self.array(r, *item, *empty, depth)?),
            Step::Map { item, empty } => *slot = GenericValue::Map(self.map(r, *item, *empty, depth)?),
            Step::Record(i) => *slot = GenericValue::Record(self.read_record(r, *i, depth)?),
            Step::WriterUnion(branches) => self.union(r, branches, depth, slot)?,
            Step::ReaderUnion { step } => self.union_branch(r, *step, depth, slot)?,
            Step::Fail(m) => return Err(Fail::new(m.to_string())),
        }
        Ok(())
    }

    #[inline(never)]
    fn union(&self, r: &mut Reader<'_>, branches: &[StepId], depth: usize, slot: &mut GenericValue) -> R<()> {
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        let b = self.writer_branch(r, branches)?;
        self.set(r, b, depth + 1, slot)
    }

    #[inline(never)]
    fn union_branch(&self, r: &mut Reader<'_>, step: StepId, depth: usize, slot: &mut GenericValue) -> R<()> {
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        self.set(r, step, depth + 1, slot)
    }

    /// The step of the writer union branch the datum says.
    #[inline]
    pub(crate) fn writer_branch(&self, r: &mut Reader<'_>, branches: &[StepId]) -> R<StepId> {
        let i = r.long()?;
        match usize::try_from(i).ok().and_then(|i| branches.get(i)) {
            Some(b) => Ok(*b),
            None => Err(Fail::new(format!(
                "Avro union index {i} but the union has {} branches",
                branches.len()
            ))),
        }
    }

    /// The reader's symbol index and text for the writer's enum index the datum holds (the
    /// parts of a `Step::Enum`).
    #[inline]
    pub(crate) fn enum_symbol(
        &self,
        r: &mut Reader<'_>,
        writer: u32,
        reader: u32,
        map: &[Option<u32>],
    ) -> R<(u32, &Arc<str>)> {
        let i = r.long()?;
        let rd = self.reader.enum_def(reader);
        let mapped = usize::try_from(i).ok().and_then(|i| map.get(i));
        if let Some(Some(m)) = mapped {
            if let Some(symbol) = rd.symbols.get(*m as usize) {
                return Ok((*m, symbol));
            }
        }
        Err(self.enum_failure(i, writer, reader, mapped.is_some()))
    }

    #[cold]
    fn enum_failure(&self, i: i64, writer: u32, reader: u32, in_range: bool) -> Fail {
        let w = self.writer.enum_def(writer);
        if !in_range {
            return Fail::new(format!(
                "Avro enum index {i} but {} has {} symbols",
                w.full_name,
                w.symbols.len()
            ));
        }
        let sym = w.symbols.get(i as usize).map_or("?", |s| &**s);
        Fail::new(format!(
            "the writer's symbol {sym} of {} is not a symbol of the reader's {}, which has no default",
            w.full_name,
            self.reader.enum_def(reader).full_name
        ))
    }

    #[inline(never)]
    fn array(&self, r: &mut Reader<'_>, item: StepId, empty: bool, depth: usize) -> R<Vec<GenericValue>> {
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        let mut items = Vec::new();
        loop {
            let n = r.block(empty, "an array")?;
            if n == 0 {
                break;
            }
            // n is bounded by the bytes left, or by MAX_ZERO_SIZE_ITEMS.
            let start = items.len();
            items.resize_with(start + n, || GenericValue::Null);
            for slot in &mut items[start..] {
                self.set(r, item, depth + 1, slot)?;
            }
        }
        Ok(items)
    }

    #[inline(never)]
    fn map(&self, r: &mut Reader<'_>, item: StepId, empty: bool, depth: usize) -> R<HashMap<String, GenericValue>> {
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        let mut map = HashMap::new();
        loop {
            let n = r.block(empty, "a map")?;
            if n == 0 {
                break;
            }
            map.reserve(n);
            for _ in 0..n {
                let k = r.str("a map key")?.to_owned();
                let mut v = GenericValue::Null;
                self.set(r, item, depth + 1, &mut v)?;
                map.insert(k, v);
            }
        }
        Ok(map)
    }

    #[inline(never)]
    fn read_record(&self, r: &mut Reader<'_>, i: u32, depth: usize) -> R<GenericRecord> {
        if depth >= MAX_DEPTH {
            return Err(too_deep());
        }
        let rp = self.record(i);
        let mut values = Vec::with_capacity(rp.len);
        values.resize_with(rp.len, || GenericValue::Null);
        if rp.in_order {
            for ((k, f), slot) in rp.fields.iter().enumerate().zip(values.iter_mut()) {
                if let FieldStep::Read { step, .. } = f {
                    self.set(r, *step, depth + 1, slot)
                        .map_err(|e| self.in_field(e, rp, k))?;
                }
            }
        } else {
            for (k, f) in rp.fields.iter().enumerate() {
                match f {
                    FieldStep::Read { step, to } => {
                        let Some(slot) = values.get_mut(*to as usize) else {
                            return Err(Fail::new("a field position past the record (a bug)"));
                        };
                        self.set(r, *step, depth + 1, slot)
                            .map_err(|e| self.in_field(e, rp, k))?;
                    }
                    FieldStep::Skip(node) => self.skip(r, *node, depth + 1).map_err(|e| self.in_field(e, rp, k))?,
                }
            }
            for (to, v) in rp.defaults.iter() {
                if let Some(slot) = values.get_mut(*to as usize) {
                    *slot = v.clone();
                }
            }
        }
        Ok(GenericRecord::from_parts(
            self.reader.clone(),
            rp.reader,
            values.into_boxed_slice(),
        ))
    }

    /// `e`, in the writer's field `k` of `rp`.
    #[cold]
    pub(crate) fn in_field(&self, e: Fail, rp: &RecordPlan, k: usize) -> Fail {
        match self.writer.record(rp.writer).fields.get(k) {
            Some(f) => e.in_field(&f.name),
            None => e,
        }
    }

    /// Reads past a value of the writer's `node`, checking its lengths as when decoding.
    pub(crate) fn skip(&self, r: &mut Reader<'_>, node: NodeId, depth: usize) -> R<()> {
        if depth > MAX_DEPTH {
            return Err(too_deep());
        }
        let w = &*self.writer;
        match w.node(node) {
            Node::Null => {}
            Node::Boolean => {
                r.boolean()?;
            }
            Node::Int | Node::Date | Node::TimeMillis => {
                r.int()?;
            }
            Node::Long
            | Node::TimeMicros
            | Node::TimestampMillis
            | Node::TimestampMicros
            | Node::TimestampNanos
            | Node::LocalTimestampMillis
            | Node::LocalTimestampMicros
            | Node::LocalTimestampNanos => {
                r.long()?;
            }
            Node::Float => {
                r.take(4, "a float")?;
            }
            Node::Double => {
                r.take(8, "a double")?;
            }
            Node::Bytes | Node::String | Node::Uuid | Node::BigDecimal | Node::Decimal(None) => {
                r.bytes("bytes")?;
            }
            Node::Fixed(f) => {
                r.take(w.fixed[*f as usize].size, "a fixed")?;
            }
            Node::Decimal(Some(n)) => {
                r.take(*n, "a decimal")?;
            }
            Node::Duration => {
                r.take(12, "a duration")?;
            }
            Node::Enum(e) => {
                let i = r.long()?;
                let n = w.enum_def(*e).symbols.len();
                if usize::try_from(i).map_or(true, |i| i >= n) {
                    return Err(Fail::new(format!("Avro enum index {i} but the enum has {n} symbols")));
                }
            }
            Node::Array(items) => loop {
                let n = r.block(w.can_be_empty(*items), "an array")?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    self.skip(r, *items, depth + 1)?;
                }
            },
            Node::Map(values) => loop {
                let n = r.block(w.can_be_empty(*values), "a map")?;
                if n == 0 {
                    break;
                }
                for _ in 0..n {
                    r.bytes("a map key")?;
                    self.skip(r, *values, depth + 1)?;
                }
            },
            Node::Union(branches) => {
                let i = r.long()?;
                let b = usize::try_from(i).ok().and_then(|i| branches.get(i)).ok_or_else(|| {
                    Fail::new(format!(
                        "Avro union index {i} but the union has {} branches",
                        branches.len()
                    ))
                })?;
                self.skip(r, *b, depth + 1)?;
            }
            Node::Record(ri) => {
                for f in w.record(*ri).fields.iter() {
                    self.skip(r, f.node, depth + 1).map_err(|e| e.in_field(&f.name))?;
                }
            }
            Node::Undefined(name) => {
                return Err(Fail::new(format!(
                    "the writer's schema uses {name}, which it does not define"
                )))
            }
        }
        Ok(())
    }
}

/// A primitive as the writer wrote it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Raw<'a> {
    I(i32),
    L(i64),
    F(f32),
    D(f64),
    B(&'a [u8]),
}

#[inline]
pub(crate) fn read_raw<'a>(r: &mut Reader<'a>, read: Read) -> R<Raw<'a>> {
    Ok(match read {
        Read::Int => Raw::I(r.int()?),
        Read::Long => Raw::L(r.long()?),
        Read::Float => Raw::F(r.float()?),
        Read::Double => Raw::D(r.double()?),
        Read::Bytes => Raw::B(r.bytes("bytes")?),
        Read::Fixed(n) => Raw::B(r.take(n, "a fixed")?),
    })
}

#[cold]
fn unplanned(make: Make) -> Fail {
    Fail::new(format!(
        "an Avro {make:?} made from a type the plan does not convert (a bug)"
    ))
}

/// `raw` as the reader's `make`.
pub(crate) fn make_value(raw: Raw<'_>, make: Make) -> R<GenericValue> {
    let long = |raw: Raw<'_>| match raw {
        Raw::I(i) => Ok(i64::from(i)),
        Raw::L(l) => Ok(l),
        _ => Err(unplanned(make)),
    };
    fn bytes(raw: Raw<'_>, make: Make) -> R<&[u8]> {
        match raw {
            Raw::B(b) => Ok(b),
            _ => Err(unplanned(make)),
        }
    }
    Ok(match make {
        Make::Int | Make::Date | Make::TimeMillis => {
            let Raw::I(i) = raw else {
                return Err(unplanned(make));
            };
            match make {
                Make::Date => GenericValue::Date(i),
                Make::TimeMillis => GenericValue::TimeMillis(i),
                _ => GenericValue::Int(i),
            }
        }
        Make::Long => GenericValue::Long(long(raw)?),
        Make::TimeMicros => GenericValue::TimeMicros(long(raw)?),
        Make::TimestampMillis => GenericValue::TimestampMillis(long(raw)?),
        Make::TimestampMicros => GenericValue::TimestampMicros(long(raw)?),
        Make::TimestampNanos => GenericValue::TimestampNanos(long(raw)?),
        Make::LocalTimestampMillis => GenericValue::LocalTimestampMillis(long(raw)?),
        Make::LocalTimestampMicros => GenericValue::LocalTimestampMicros(long(raw)?),
        Make::LocalTimestampNanos => GenericValue::LocalTimestampNanos(long(raw)?),
        Make::Float => GenericValue::Float(match raw {
            Raw::I(i) => i as f32,
            Raw::L(l) => l as f32,
            Raw::F(f) => f,
            _ => return Err(unplanned(make)),
        }),
        Make::Double => GenericValue::Double(match raw {
            Raw::I(i) => f64::from(i),
            Raw::L(l) => l as f64,
            Raw::F(f) => f64::from(f),
            Raw::D(d) => d,
            Raw::B(_) => return Err(unplanned(make)),
        }),
        Make::Bytes => GenericValue::Bytes(bytes(raw, make)?.to_vec()),
        Make::String => GenericValue::String(crate::avro_read::utf8(bytes(raw, make)?, "a string")?.to_owned()),
        Make::Fixed => GenericValue::Fixed(bytes(raw, make)?.to_vec()),
        Make::Decimal => GenericValue::Decimal(bytes(raw, make)?.to_vec()),
        Make::Uuid => GenericValue::Uuid(uuid(bytes(raw, make)?)?),
        Make::Duration => {
            let b: [u8; 12] = bytes(raw, make)?
                .try_into()
                .map_err(|_| Fail::new("an Avro duration is not 12 bytes"))?;
            GenericValue::Duration(apache_avro::Duration::from(b))
        }
    })
}

/// A uuid written as 16 bytes or as its text.
pub(crate) fn uuid(b: &[u8]) -> R<apache_avro::Uuid> {
    let u = if b.len() == 16 {
        apache_avro::Uuid::from_slice(b).ok()
    } else {
        crate::avro_read::utf8(b, "a uuid")
            .ok()
            .and_then(|s| apache_avro::Uuid::parse_str(s).ok())
    };
    u.ok_or_else(|| Fail::new("an Avro uuid is neither 16 bytes nor UUID text"))
}

struct Builder {
    plan: Plan,
    /// Steps built so far, by (writer node, reader node).
    memo: HashMap<(NodeId, NodeId), StepId>,
}

/// Whether two types are the same Avro type (fixed sizes aside), as Java's `Schema.Type`.
fn same_type(a: Base, b: Base) -> bool {
    match (a, b) {
        (Base::Fixed(_), Base::Fixed(_)) => true,
        _ => a == b,
    }
}

impl Builder {
    fn push(&mut self, step: Step) -> StepId {
        self.plan.steps.push(step);
        (self.plan.steps.len() - 1) as StepId
    }

    fn fail(&mut self, message: String) -> StepId {
        self.push(Step::Fail(message.into_boxed_str()))
    }

    fn resolve(&mut self, w: NodeId, r: NodeId, depth: usize) -> StepId {
        if let Some(s) = self.memo.get(&(w, r)) {
            return *s;
        }
        let s = self.resolve_new(w, r, depth);
        self.memo.insert((w, r), s);
        s
    }

    fn resolve_new(&mut self, w: NodeId, r: NodeId, depth: usize) -> StepId {
        let (wc, rc) = (self.plan.writer.clone(), self.plan.reader.clone());
        if depth > MAX_DEPTH {
            return self.fail("the schemas nest too deep to resolve".into());
        }
        match (wc.node(w), rc.node(r)) {
            (Node::Undefined(name), _) => {
                self.fail(format!("the writer's schema uses {name}, which it does not define"))
            }
            (_, Node::Undefined(name)) => {
                self.fail(format!("the reader's schema uses {name}, which it does not define"))
            }
            (Node::Union(branches), _) => {
                // A branch read as a reader union's branch needs no step of its own: the
                // branch index is the writer's, and the value is the branch's.
                let steps = branches
                    .iter()
                    .map(|b| {
                        let s = self.resolve(*b, r, depth + 1);
                        match self.plan.step(s) {
                            Step::ReaderUnion { step } => *step,
                            _ => s,
                        }
                    })
                    .collect();
                self.push(Step::WriterUnion(steps))
            }
            (_, Node::Union(branches)) => match self.first_matching_branch(w, branches, depth) {
                Some(i) => {
                    let step = self.resolve(w, branches[i], depth + 1);
                    self.push(Step::ReaderUnion { step })
                }
                None => self.fail(format!(
                    "the writer's {} matches no branch of the reader's union",
                    wc.describe(w)
                )),
            },
            (Node::Record(wi), Node::Record(ri)) => self.record((w, r), *wi, *ri, depth),
            (Node::Enum(we), Node::Enum(re)) => {
                if !self.names_match(w, r) {
                    return self.fail(names_differ(&wc, w, &rc, r));
                }
                let rd = rc.enum_def(*re);
                let map = wc
                    .enum_def(*we)
                    .symbols
                    .iter()
                    .map(|s| rd.index_of(s).or(rd.default))
                    .collect();
                self.push(Step::Enum {
                    writer: *we,
                    reader: *re,
                    map,
                })
            }
            (Node::Array(wi), Node::Array(ri)) => {
                let item = self.resolve(*wi, *ri, depth + 1);
                let empty = wc.can_be_empty(*wi);
                self.push(Step::Array { item, empty })
            }
            (Node::Map(wi), Node::Map(ri)) => {
                let item = self.resolve(*wi, *ri, depth + 1);
                let empty = wc.can_be_empty(*wi);
                self.push(Step::Map { item, empty })
            }
            (Node::Null, Node::Null) => self.push(Step::Null),
            (Node::Boolean, Node::Boolean) => self.push(Step::Boolean),
            (Node::Int, Node::Int) => self.push(Step::Int),
            (Node::Long, Node::Long) => self.push(Step::Long),
            (Node::Float, Node::Float) => self.push(Step::Float),
            (Node::Double, Node::Double) => self.push(Step::Double),
            (Node::Bytes, Node::Bytes) => self.push(Step::Bytes),
            (Node::String, Node::String) => self.push(Step::String),
            _ => self.primitive(w, r),
        }
    }

    /// A primitive or logical type read as written and made into the reader's, when Avro's
    /// resolution allows it.
    fn primitive(&mut self, w: NodeId, r: NodeId) -> StepId {
        let (wc, rc) = (self.plan.writer.clone(), self.plan.reader.clone());
        let (wb, rb) = (wc.base(w), rc.base(r));
        let read = match wb {
            Base::Int => Read::Int,
            Base::Long => Read::Long,
            Base::Float => Read::Float,
            Base::Double => Read::Double,
            Base::Bytes | Base::String => Read::Bytes,
            Base::Fixed(n) => Read::Fixed(n),
            _ => return self.fail(incompatible(&wc, w, &rc, r)),
        };
        let allowed = match (wb, rb) {
            (Base::Fixed(a), Base::Fixed(b)) => {
                if a != b {
                    return self.fail(format!(
                        "the writer's {} of {a} bytes is read as the reader's {} of {b}",
                        wc.describe(w),
                        rc.describe(r)
                    ));
                }
                if !self.names_match(w, r) {
                    return self.fail(names_differ(&wc, w, &rc, r));
                }
                true
            }
            (a, b) if a == b => true,
            (Base::Int, Base::Long | Base::Float | Base::Double)
            | (Base::Long, Base::Float | Base::Double)
            | (Base::Float, Base::Double)
            | (Base::String, Base::Bytes)
            | (Base::Bytes, Base::String) => true,
            _ => false,
        };
        if !allowed {
            return self.fail(incompatible(&wc, w, &rc, r));
        }
        let make = match rc.node(r) {
            Node::Int => Make::Int,
            Node::Long => Make::Long,
            Node::Float => Make::Float,
            Node::Double => Make::Double,
            Node::Bytes => Make::Bytes,
            Node::String => Make::String,
            Node::Fixed(_) => Make::Fixed,
            Node::Decimal(_) => Make::Decimal,
            Node::Uuid => Make::Uuid,
            Node::Date => Make::Date,
            Node::TimeMillis => Make::TimeMillis,
            Node::TimeMicros => Make::TimeMicros,
            Node::TimestampMillis => Make::TimestampMillis,
            Node::TimestampMicros => Make::TimestampMicros,
            Node::TimestampNanos => Make::TimestampNanos,
            Node::LocalTimestampMillis => Make::LocalTimestampMillis,
            Node::LocalTimestampMicros => Make::LocalTimestampMicros,
            Node::LocalTimestampNanos => Make::LocalTimestampNanos,
            Node::Duration => Make::Duration,
            Node::BigDecimal => {
                return self.fail(
                    "the big-decimal logical type is not read (it is apache-avro's, not in the Avro specification)"
                        .into(),
                )
            }
            _ => return self.fail(incompatible(&wc, w, &rc, r)),
        };
        self.push(Step::Convert(read, make))
    }

    /// Named types resolve when their unqualified names are equal, or the reader's aliases
    /// name the writer's (Java compares `getName()` after applying the reader's aliases).
    fn names_match(&self, w: NodeId, r: NodeId) -> bool {
        match (self.plan.writer.names_of(w), self.plan.reader.names_of(r)) {
            (Some((wn, _)), Some((rn, aliases))) => {
                wn == rn || aliases.iter().any(|a| **a == *wn || a.rsplit('.').next() == Some(wn))
            }
            _ => true,
        }
    }

    fn record(&mut self, nodes: (NodeId, NodeId), wi: u32, ri: u32, depth: usize) -> StepId {
        let (wc, rc) = (self.plan.writer.clone(), self.plan.reader.clone());
        let index = self.plan.records.len() as u32;
        self.plan.records.push(RecordPlan {
            writer: wi,
            reader: ri,
            fields: Box::new([]),
            defaults: Box::new([]),
            len: 0,
            in_order: false,
            sequential: false,
            seq_fields: AtomicUsize::new(0),
        });
        // The step exists before its fields are planned: a recursive field finds it.
        let id = self.push(Step::Record(index));
        self.memo.insert(nodes, id);
        let (wd, rd) = (wc.record(wi), rc.record(ri));
        let mut used = vec![false; rd.fields.len()];
        let mut fields = Vec::with_capacity(wd.fields.len());
        for wf in wd.fields.iter() {
            let to = rd
                .position(&wf.name)
                .or_else(|| rd.fields.iter().position(|rf| rf.aliases.contains(&wf.name)));
            match to {
                Some(to) if !used[to] => {
                    used[to] = true;
                    let step = self.resolve(wf.node, rd.fields[to].node, depth + 1);
                    fields.push(FieldStep::Read { step, to: to as u32 });
                }
                _ => fields.push(FieldStep::Skip(wf.node)),
            }
        }
        let mut defaults = Vec::new();
        for (to, rf) in rd.fields.iter().enumerate() {
            if used[to] {
                continue;
            }
            let value = match &rf.default {
                Some(json) => default_value(&rc, rf.node, json, 0).map_err(|e| format!("{e} (field {})", rf.name)),
                None => Err(format!(
                    "the writer's record {} has no field {} and the reader's {} gives it no default",
                    wd.full_name, rf.name, rd.full_name
                )),
            };
            match value {
                Ok(v) => defaults.push((to as u32, v)),
                Err(m) => {
                    self.plan.steps[id as usize] = Step::Fail(m.into_boxed_str());
                    return id;
                }
            }
        }
        let in_order = defaults.is_empty()
            && fields.len() == rd.fields.len()
            && fields
                .iter()
                .enumerate()
                .all(|(i, f)| matches!(f, FieldStep::Read { to, .. } if *to as usize == i));
        let order = fields
            .iter()
            .filter_map(|f| match f {
                FieldStep::Read { to, .. } => Some(*to as usize),
                FieldStep::Skip(_) => None,
            })
            .chain(defaults.iter().map(|(to, _)| *to as usize));
        let sequential = order.eq(0..rd.fields.len());
        let rp = &mut self.plan.records[index as usize];
        rp.sequential = sequential;
        rp.fields = fields.into_boxed_slice();
        rp.defaults = defaults.into_boxed_slice();
        rp.len = rd.fields.len();
        rp.in_order = in_order;
        id
    }

    /// Java's `ReaderUnion.firstMatchingBranch`: the first reader branch of the writer's type
    /// (for named types the one of the same full name, else for records the first of a
    /// structure that resolves, preferring the same unqualified name), else the first the
    /// writer's type promotes to.
    fn first_matching_branch(&mut self, w: NodeId, branches: &[NodeId], depth: usize) -> Option<usize> {
        let (wc, rc) = (self.plan.writer.clone(), self.plan.reader.clone());
        let wb = wc.base(w);
        let mut structure: Option<usize> = None;
        for (j, b) in branches.iter().enumerate() {
            if !same_type(wb, rc.base(*b)) {
                continue;
            }
            match wb {
                Base::Record | Base::Enum | Base::Fixed(_) => {
                    if wc.full_name(w).is_some() && wc.full_name(w) == rc.full_name(*b) {
                        return Some(j);
                    }
                    if wb == Base::Record {
                        let step = self.resolve(w, *b, depth + 1);
                        if !self.has_match_error(step) {
                            let same_name = wc.names_of(w).map(|n| n.0) == rc.names_of(*b).map(|n| n.0);
                            if structure.is_none() || same_name {
                                structure = Some(j);
                            }
                        }
                    }
                }
                _ => return Some(j),
            }
        }
        if structure.is_some() {
            return structure;
        }
        branches.iter().position(|b| {
            matches!(
                (wb, rc.base(*b)),
                (Base::Int, Base::Long | Base::Double | Base::Float)
                    | (Base::Long, Base::Double | Base::Float)
                    | (Base::Float, Base::Double)
                    | (Base::String, Base::Bytes)
                    | (Base::Bytes, Base::String)
            )
        })
    }

    /// The step fails outright, or is a record with a field that does (Java's
    /// `hasMatchError`).
    fn has_match_error(&self, s: StepId) -> bool {
        match self.plan.step(s) {
            Step::Fail(_) => true,
            Step::Record(i) => self.plan.record(*i).fields.iter().any(|f| match f {
                FieldStep::Read { step, .. } => matches!(self.plan.step(*step), Step::Fail(_)),
                FieldStep::Skip(_) => false,
            }),
            _ => false,
        }
    }
}

fn incompatible(wc: &Compiled, w: NodeId, rc: &Compiled, r: NodeId) -> String {
    format!(
        "the writer's {} cannot be read as the reader's {}",
        wc.describe(w),
        rc.describe(r)
    )
}

fn names_differ(wc: &Compiled, w: NodeId, rc: &Compiled, r: NodeId) -> String {
    format!(
        "the writer's {} cannot be read as the reader's {}: the names differ",
        wc.describe(w),
        rc.describe(r)
    )
}
