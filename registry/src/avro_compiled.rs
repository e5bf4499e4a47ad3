//! An Avro schema compiled once into an arena of nodes: references resolved to node ids (so a
//! recursive schema is a cycle of ids, not of pointers), each record's fields by position
//! with their names kept once, each enum's symbols shared (`Arc<str>`), and whether a value
//! of each node can take no bytes. The decode plans, the generic values and the serde
//! encoder walk this instead of apache-avro's `Schema`, which needs a name lookup (and a
//! `String` built) at every reference.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::schema::{Alias, Name, Schema};

use crate::avro_datum::Names;
use crate::avro_read::MAX_DEPTH;

/// The index of a node in [`Compiled::nodes`].
pub(crate) type NodeId = u32;

/// One schema node. Named types live in the side tables, referred to by index.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(u32),
    Enum(u32),
    Array(NodeId),
    Map(NodeId),
    Union(Box<[NodeId]>),
    Record(u32),
    /// `decimal` on `bytes` (`None`) or on a fixed of this size.
    Decimal(Option<usize>),
    BigDecimal,
    /// `uuid`: a string (apache-avro writes its text).
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
    /// `duration`: a fixed of 12 bytes.
    Duration,
    /// A name the schema uses but does not define, or nesting deeper than the decoders go.
    Undefined(Box<str>),
}

/// The Avro type a node is written as (logical types as their underlying type), which is
/// what schema resolution compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Base {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Enum,
    Array,
    Map,
    Union,
    Record,
    Undefined,
}

/// A record type: its names and its fields in the schema's order.
#[derive(Debug)]
pub(crate) struct RecordDef {
    pub(crate) full_name: Box<str>,
    pub(crate) name: Box<str>,
    pub(crate) aliases: Box<[Box<str>]>,
    pub(crate) fields: Box<[FieldDef]>,
    lookup: HashMap<Box<str>, usize>,
}

impl RecordDef {
    /// The position of the field called `name`.
    pub(crate) fn position(&self, name: &str) -> Option<usize> {
        if self.fields.len() <= 8 {
            return self.fields.iter().position(|f| &*f.name == name);
        }
        self.lookup.get(name).copied()
    }
}

/// A record field.
#[derive(Debug)]
pub(crate) struct FieldDef {
    pub(crate) name: Box<str>,
    pub(crate) aliases: Box<[Box<str>]>,
    pub(crate) node: NodeId,
    /// The default as the schema's JSON (for a union, a value of its first branch).
    pub(crate) default: Option<serde_json::Value>,
}

/// An enum type.
#[derive(Debug)]
pub(crate) struct EnumDef {
    pub(crate) full_name: Box<str>,
    pub(crate) name: Box<str>,
    pub(crate) aliases: Box<[Box<str>]>,
    pub(crate) symbols: Box<[Arc<str>]>,
    /// The index of the enum's default symbol (used when a writer's symbol is unknown).
    pub(crate) default: Option<u32>,
}

impl EnumDef {
    pub(crate) fn index_of(&self, symbol: &str) -> Option<u32> {
        self.symbols.iter().position(|s| &**s == symbol).map(|i| i as u32)
    }
}

/// A fixed type.
#[derive(Debug)]
pub(crate) struct FixedDef {
    pub(crate) full_name: Box<str>,
    pub(crate) name: Box<str>,
    pub(crate) aliases: Box<[Box<str>]>,
    pub(crate) size: usize,
}

/// A compiled schema (see the module documentation).
#[derive(Debug)]
pub(crate) struct Compiled {
    pub(crate) nodes: Vec<Node>,
    pub(crate) records: Vec<RecordDef>,
    pub(crate) enums: Vec<EnumDef>,
    pub(crate) fixed: Vec<FixedDef>,
    pub(crate) root: NodeId,
    /// Per node: whether a value can take no bytes (null, an empty record, fixed of 0).
    empty: Vec<bool>,
}

impl Compiled {
    /// Compiles `schema`, resolving its references with `names`.
    pub(crate) fn new(schema: &Schema, names: &Names) -> Compiled {
        let mut b = Builder {
            c: Compiled {
                nodes: Vec::new(),
                records: Vec::new(),
                enums: Vec::new(),
                fixed: Vec::new(),
                root: 0,
                empty: Vec::new(),
            },
            named: HashMap::new(),
            names,
        };
        b.c.root = b.node(schema, 0);
        let mut c = b.c;
        let mut memo = vec![None; c.nodes.len()];
        c.empty = (0..c.nodes.len() as NodeId)
            .map(|n| can_be_empty(&c, n, &mut memo, 0))
            .collect();
        c
    }

    #[inline]
    pub(crate) fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }

    #[inline]
    pub(crate) fn record(&self, i: u32) -> &RecordDef {
        &self.records[i as usize]
    }

    #[inline]
    pub(crate) fn enum_def(&self, i: u32) -> &EnumDef {
        &self.enums[i as usize]
    }

    /// Whether a value of `id` can take no bytes, so that array and map counts of it cannot
    /// be bounded by the bytes left.
    #[inline]
    pub(crate) fn can_be_empty(&self, id: NodeId) -> bool {
        self.empty[id as usize]
    }

    /// The type `id` is written as.
    pub(crate) fn base(&self, id: NodeId) -> Base {
        match self.node(id) {
            Node::Null => Base::Null,
            Node::Boolean => Base::Boolean,
            Node::Int | Node::Date | Node::TimeMillis => Base::Int,
            Node::Long
            | Node::TimeMicros
            | Node::TimestampMillis
            | Node::TimestampMicros
            | Node::TimestampNanos
            | Node::LocalTimestampMillis
            | Node::LocalTimestampMicros
            | Node::LocalTimestampNanos => Base::Long,
            Node::Float => Base::Float,
            Node::Double => Base::Double,
            Node::Bytes | Node::BigDecimal | Node::Decimal(None) => Base::Bytes,
            Node::String | Node::Uuid => Base::String,
            Node::Fixed(f) => Base::Fixed(self.fixed[*f as usize].size),
            Node::Decimal(Some(n)) => Base::Fixed(*n),
            Node::Duration => Base::Fixed(12),
            Node::Enum(_) => Base::Enum,
            Node::Array(_) => Base::Array,
            Node::Map(_) => Base::Map,
            Node::Union(_) => Base::Union,
            Node::Record(_) => Base::Record,
            Node::Undefined(_) => Base::Undefined,
        }
    }

    /// The full name of a named node (record, enum, fixed).
    pub(crate) fn full_name(&self, id: NodeId) -> Option<&str> {
        match self.node(id) {
            Node::Record(r) => Some(&self.record(*r).full_name),
            Node::Enum(e) => Some(&self.enum_def(*e).full_name),
            Node::Fixed(f) => Some(&self.fixed[*f as usize].full_name),
            _ => None,
        }
    }

    /// The unqualified name and aliases of a named node.
    pub(crate) fn names_of(&self, id: NodeId) -> Option<(&str, &[Box<str>])> {
        match self.node(id) {
            Node::Record(r) => Some((&self.record(*r).name, &self.record(*r).aliases)),
            Node::Enum(e) => Some((&self.enum_def(*e).name, &self.enum_def(*e).aliases)),
            Node::Fixed(f) => Some((&self.fixed[*f as usize].name, &self.fixed[*f as usize].aliases)),
            _ => None,
        }
    }

    /// What `id` is, for messages: `record t.User`, `long`, `array`.
    pub(crate) fn describe(&self, id: NodeId) -> String {
        let kind = match self.node(id) {
            Node::Record(_) => "record",
            Node::Enum(_) => "enum",
            Node::Fixed(_) => "fixed",
            Node::Null => "null",
            Node::Boolean => "boolean",
            Node::Int => "int",
            Node::Long => "long",
            Node::Float => "float",
            Node::Double => "double",
            Node::Bytes => "bytes",
            Node::String => "string",
            Node::Array(_) => "array",
            Node::Map(_) => "map",
            Node::Union(_) => "union",
            Node::Decimal(_) => "decimal",
            Node::BigDecimal => "big-decimal",
            Node::Uuid => "uuid",
            Node::Date => "date",
            Node::TimeMillis => "time-millis",
            Node::TimeMicros => "time-micros",
            Node::TimestampMillis => "timestamp-millis",
            Node::TimestampMicros => "timestamp-micros",
            Node::TimestampNanos => "timestamp-nanos",
            Node::LocalTimestampMillis => "local-timestamp-millis",
            Node::LocalTimestampMicros => "local-timestamp-micros",
            Node::LocalTimestampNanos => "local-timestamp-nanos",
            Node::Duration => "duration",
            Node::Undefined(name) => return format!("undefined {name}"),
        };
        match self.full_name(id) {
            Some(name) => format!("{kind} {name}"),
            None => kind.to_owned(),
        }
    }

    /// The record type called `full_name`.
    pub(crate) fn record_named(&self, full_name: &str) -> Option<u32> {
        self.records
            .iter()
            .position(|r| &*r.full_name == full_name)
            .map(|i| i as u32)
    }
}

fn can_be_empty(c: &Compiled, id: NodeId, memo: &mut Vec<Option<bool>>, depth: usize) -> bool {
    if let Some(known) = memo[id as usize] {
        return known;
    }
    if depth > MAX_DEPTH {
        return false;
    }
    // A record being decided is taken as non-empty: a record that contains itself other than
    // through a union, array or map (all at least one byte) has no finite values anyway.
    memo[id as usize] = Some(false);
    let empty = match c.node(id) {
        Node::Null => true,
        Node::Fixed(f) => c.fixed[*f as usize].size == 0,
        Node::Decimal(Some(0)) => true,
        Node::Record(r) => {
            let fields: Vec<NodeId> = c.record(*r).fields.iter().map(|f| f.node).collect();
            fields.into_iter().all(|f| can_be_empty(c, f, memo, depth + 1))
        }
        _ => false,
    };
    memo[id as usize] = Some(empty);
    empty
}

struct Builder<'n> {
    c: Compiled,
    /// Named types compiled so far, by full name.
    named: HashMap<String, NodeId>,
    names: &'n Names,
}

fn aliases(a: &Option<Vec<Alias>>) -> Box<[Box<str>]> {
    a.iter().flatten().map(|a| a.name().into_boxed_str()).collect()
}

impl Builder<'_> {
    fn push(&mut self, node: Node) -> NodeId {
        self.c.nodes.push(node);
        (self.c.nodes.len() - 1) as NodeId
    }

    fn named(&mut self, name: &Name) -> (String, Option<NodeId>) {
        let full = name.fullname(None);
        let known = self.named.get(&full).copied();
        (full, known)
    }

    fn node(&mut self, schema: &Schema, depth: usize) -> NodeId {
        if depth > MAX_DEPTH {
            return self.push(Node::Undefined("(a schema nested too deep)".into()));
        }
        match schema {
            Schema::Null => self.push(Node::Null),
            Schema::Boolean => self.push(Node::Boolean),
            Schema::Int => self.push(Node::Int),
            Schema::Long => self.push(Node::Long),
            Schema::Float => self.push(Node::Float),
            Schema::Double => self.push(Node::Double),
            Schema::Bytes => self.push(Node::Bytes),
            Schema::String => self.push(Node::String),
            Schema::Ref { name } => {
                let (full, known) = self.named(name);
                match known {
                    Some(id) => id,
                    None => match self.names.get(name) {
                        Ok(s) => self.node(s, depth + 1),
                        Err(_) => self.push(Node::Undefined(full.into_boxed_str())),
                    },
                }
            }
            Schema::Record(r) => {
                let (full, known) = self.named(&r.name);
                if let Some(id) = known {
                    return id;
                }
                let index = self.c.records.len() as u32;
                self.c.records.push(RecordDef {
                    full_name: full.clone().into_boxed_str(),
                    name: r.name.name.clone().into_boxed_str(),
                    aliases: aliases(&r.aliases),
                    fields: Box::new([]),
                    lookup: HashMap::new(),
                });
                let id = self.push(Node::Record(index));
                self.named.insert(full, id);
                let fields: Box<[FieldDef]> = r
                    .fields
                    .iter()
                    .map(|f| FieldDef {
                        name: f.name.clone().into_boxed_str(),
                        aliases: f.aliases.iter().flatten().map(|a| a.clone().into_boxed_str()).collect(),
                        node: self.node(&f.schema, depth + 1),
                        default: f.default.clone(),
                    })
                    .collect();
                let rec = &mut self.c.records[index as usize];
                rec.lookup = fields.iter().enumerate().map(|(i, f)| (f.name.clone(), i)).collect();
                rec.fields = fields;
                id
            }
            Schema::Enum(e) => {
                let (full, known) = self.named(&e.name);
                if let Some(id) = known {
                    return id;
                }
                let symbols: Box<[Arc<str>]> = e.symbols.iter().map(|s| Arc::from(s.as_str())).collect();
                let default = e
                    .default
                    .as_ref()
                    .and_then(|d| symbols.iter().position(|s| **s == **d))
                    .map(|i| i as u32);
                self.c.enums.push(EnumDef {
                    full_name: full.clone().into_boxed_str(),
                    name: e.name.name.clone().into_boxed_str(),
                    aliases: aliases(&e.aliases),
                    symbols,
                    default,
                });
                let id = self.push(Node::Enum((self.c.enums.len() - 1) as u32));
                self.named.insert(full, id);
                id
            }
            Schema::Fixed(f) => {
                let (full, known) = self.named(&f.name);
                if let Some(id) = known {
                    return id;
                }
                self.c.fixed.push(FixedDef {
                    full_name: full.clone().into_boxed_str(),
                    name: f.name.name.clone().into_boxed_str(),
                    aliases: aliases(&f.aliases),
                    size: f.size,
                });
                let id = self.push(Node::Fixed((self.c.fixed.len() - 1) as u32));
                self.named.insert(full, id);
                id
            }
            Schema::Array(a) => {
                let id = self.push(Node::Null);
                let items = self.node(&a.items, depth + 1);
                self.c.nodes[id as usize] = Node::Array(items);
                id
            }
            Schema::Map(m) => {
                let id = self.push(Node::Null);
                let values = self.node(&m.types, depth + 1);
                self.c.nodes[id as usize] = Node::Map(values);
                id
            }
            Schema::Union(u) => {
                let id = self.push(Node::Null);
                let branches = u.variants().iter().map(|b| self.node(b, depth + 1)).collect();
                self.c.nodes[id as usize] = Node::Union(branches);
                id
            }
            Schema::Decimal(d) => {
                let size = match &*d.inner {
                    Schema::Fixed(f) => Some(f.size),
                    _ => None,
                };
                self.push(Node::Decimal(size))
            }
            Schema::BigDecimal => self.push(Node::BigDecimal),
            Schema::Uuid => self.push(Node::Uuid),
            Schema::Date => self.push(Node::Date),
            Schema::TimeMillis => self.push(Node::TimeMillis),
            Schema::TimeMicros => self.push(Node::TimeMicros),
            Schema::TimestampMillis => self.push(Node::TimestampMillis),
            Schema::TimestampMicros => self.push(Node::TimestampMicros),
            Schema::TimestampNanos => self.push(Node::TimestampNanos),
            Schema::LocalTimestampMillis => self.push(Node::LocalTimestampMillis),
            Schema::LocalTimestampMicros => self.push(Node::LocalTimestampMicros),
            Schema::LocalTimestampNanos => self.push(Node::LocalTimestampNanos),
            Schema::Duration => self.push(Node::Duration),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(s: &str) -> Compiled {
        let s = Schema::parse_str(s).unwrap();
        Compiled::new(&s, &Names::collect(&[&s]))
    }

    #[test]
    fn recursive_records_are_a_cycle_of_ids() {
        let c = compile(
            r#"{"type":"record","name":"L","namespace":"n","fields":[
                {"name":"v","type":"int"},{"name":"next","type":["null","L"]},
                {"name":"e","type":{"type":"record","name":"E","fields":[]}},
                {"name":"nulls","type":{"type":"array","items":"null"}}]}"#,
        );
        assert_eq!(c.records.len(), 2);
        let l = c.record(0);
        assert_eq!(&*l.full_name, "n.L");
        let Node::Union(b) = c.node(l.fields[1].node) else {
            panic!("not a union")
        };
        assert_eq!(b[1], c.root, "the reference is the record itself");
        assert!(!c.can_be_empty(c.root));
        assert!(c.can_be_empty(l.fields[2].node), "an empty record takes no bytes");
        let Node::Array(items) = c.node(l.fields[3].node) else {
            panic!("not an array")
        };
        assert!(c.can_be_empty(*items));
        assert_eq!(l.position("next"), Some(1));
        assert_eq!(c.describe(c.root), "record n.L");
    }
}
