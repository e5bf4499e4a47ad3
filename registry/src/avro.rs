//! Avro through the `apache-avro` crate: registry serializers that write the Confluent wire
//! format as Confluent's `KafkaAvroSerializer` does, deserializers that resolve the writer's
//! schema to the reader's (Flink's `ConfluentRegistryAvroDeserializationSchema.forGeneric` /
//! `forSpecific`), and plain Avro datums with a static schema and no framing (Flink's
//! `AvroDeserializationSchema`).
//!
//! Generic records are [`GenericValue`]s and [`GenericRecord`]s, which share their schema's
//! field names as Java's `GenericData.Record` does (`decode_generic`, `encode_generic`), or
//! apache-avro's [`apache_avro::types::Value`]s (`decode_value`, `encode_value`), which own
//! a copy of every name; specific ones any `serde` type whose shape matches the schema.
//!
//! Decoding goes through a plan compiled once per writer and reader schema: the resolution
//! (fields reordered, added with defaults, removed; promotions; enum symbols; union branches)
//! is decided when the plan is built, Java's `Resolver` rules, and each datum is a loop over
//! the plan. A deserializer keeps the plans of the first schema ids it meets where it reads
//! them without a lock.
//!
//! ```no_run
//! # async fn demo() -> strom_registry::Result<()> {
//! use strom_registry::avro::{AvroDeserializer, AvroSchema, AvroSerializer};
//! use strom_registry::{RegistryConfig, SchemaRegistryClient};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Order { id: i64, item: String }
//!
//! let registry = SchemaRegistryClient::new(RegistryConfig::new("http://127.0.0.1:8081")?)?;
//! let schema = AvroSchema::parse(r#"{"type":"record","name":"Order","namespace":"shop",
//!     "fields":[{"name":"id","type":"long"},{"name":"item","type":"string"}]}"#)?;
//! let serializer = AvroSerializer::new(registry.clone(), schema.clone());
//! let bytes = serializer.encode("orders", false, &Order { id: 1, item: "tea".into() }).await?;
//! let deserializer = AvroDeserializer::new(registry, Some(schema));
//! let order: Order = deserializer.decode("orders", &bytes).await?;
//! # Ok(()) }
//! ```
//!
//! Generic records, here as plain datums (through a registry: `AvroSerializer::encode_generic`,
//! `AvroDeserializer::decode_generic`):
//!
//! ```
//! use strom_registry::avro::{AvroSchema, GenericValue, PlainAvro};
//!
//! let schema = AvroSchema::parse(r#"{"type":"record","name":"Order","namespace":"shop",
//!     "fields":[{"name":"id","type":"long"},{"name":"item","type":"string"}]}"#)?;
//! let mut order = schema.new_record()?;
//! order.put("id", 1i64)?;
//! order.put("item", "tea")?;
//! let plain = PlainAvro::new(schema);
//! let datum = plain.encode_generic(&GenericValue::Record(order))?;
//! let read = plain.decode_generic(&datum)?;
//! let item = read.as_record().and_then(|r| r.get("item")).and_then(GenericValue::as_str);
//! assert_eq!(item, Some("tea"));
//! # Ok::<(), strom_registry::Error>(())
//! ```

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

pub use apache_avro::types::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::avro_compiled::{Compiled, Node};
pub use crate::avro_generic::{GenericRecord, GenericValue};
use crate::avro_plan::Plan;
use crate::avro_read::Fail;
use crate::cache::{in_topic, PerTopic, Writers, FAST_SLOTS};
use crate::client::{Schema, SchemaRegistryClient, SchemaType};
use crate::error::{Error, ErrorKind, Result};
use crate::wire;

/// A parsed Avro schema with the named schemas it references.
#[derive(Debug, Clone)]
pub struct AvroSchema {
    inner: Arc<Parsed>,
}

#[derive(Debug)]
struct Parsed {
    schema: apache_avro::Schema,
    /// The named types of `schema` and `named`, for the decoder.
    names: crate::avro_datum::Names,
    /// The referenced named schemas (empty without references).
    named: Vec<apache_avro::Schema>,
    /// The schema as the registry stores it.
    registry: Schema,
    full_name: Option<String>,
    /// Avro's Parsing Canonical Form: equal for schemas that read each other's datums
    /// without resolution.
    canonical: String,
    /// The schema compiled for the plans, the generic values and the serde encoder.
    compiled: Arc<Compiled>,
    /// The plan reading datums of this schema as they were written.
    identity: OnceLock<Arc<Plan>>,
    /// Plans reading them as other schemas, by the reader's canonical form.
    resolved: Mutex<Vec<(String, Arc<Plan>)>>,
}

/// Most plans to other readers one writer schema keeps (then they are compiled again).
const MAX_RESOLVED_PLANS: usize = 16;

impl AvroSchema {
    /// Parses an Avro schema (JSON) without references.
    pub fn parse(text: &str) -> Result<Self> {
        Self::with_references(Schema::new(SchemaType::Avro, text), &[])
    }

    /// Parses `schema` (its text and references as registered) with the texts of the schemas
    /// it references, each before those that refer to it (as
    /// [`SchemaRegistryClient::resolve_references`] gives them).
    pub fn with_references(schema: Schema, referenced: &[(String, Schema)]) -> Result<Self> {
        if schema.schema_type != SchemaType::Avro {
            return Err(Error::new(
                ErrorKind::InvalidSchema,
                format!("a {:?} schema is not Avro", schema.schema_type),
            ));
        }
        let invalid = |e: apache_avro::Error| {
            Error::new(ErrorKind::InvalidSchema, "the Avro schema does not parse").with_source(e)
        };
        let (parsed, named) = if referenced.is_empty() {
            (
                apache_avro::Schema::parse_str(&schema.schema).map_err(invalid)?,
                Vec::new(),
            )
        } else {
            apache_avro::Schema::parse_str_with_list(&schema.schema, referenced.iter().map(|(_, s)| s.schema.as_str()))
                .map_err(invalid)?
        };
        let full_name = parsed.name().map(|n| n.fullname(None));
        let mut all = vec![&parsed];
        all.extend(named.iter());
        let names = crate::avro_datum::Names::collect(&all);
        let canonical = parsed.canonical_form();
        let compiled = Arc::new(Compiled::new(&parsed, &names));
        Ok(AvroSchema {
            inner: Arc::new(Parsed {
                canonical,
                names,
                schema: parsed,
                named,
                registry: schema,
                full_name,
                compiled,
                identity: OnceLock::new(),
                resolved: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Fetches the references of `schema` from the registry and parses it.
    pub async fn resolve(registry: &SchemaRegistryClient, schema: Schema) -> Result<Self> {
        let referenced = if schema.references.is_empty() {
            Vec::new()
        } else {
            registry.resolve_references(&schema).await?
        };
        Self::with_references(schema, &referenced)
    }

    /// The parsed schema.
    pub fn schema(&self) -> &apache_avro::Schema {
        &self.inner.schema
    }

    /// The schema as the registry stores it (text, references).
    pub fn registry_schema(&self) -> &Schema {
        &self.inner.registry
    }

    /// The fully qualified name of a named schema (record, enum, fixed), which the record
    /// subject name strategies use.
    pub fn full_name(&self) -> Option<&str> {
        self.inner.full_name.as_deref()
    }

    /// The referenced schemas, then this one: apache-avro resolves names in that order.
    fn schemata(&self) -> Vec<&apache_avro::Schema> {
        let mut v = Vec::with_capacity(self.inner.named.len() + 1);
        v.extend(self.inner.named.iter());
        v.push(&self.inner.schema);
        v
    }

    /// Writes `value` as an Avro binary datum of this schema to `out`; a value that does not
    /// match the schema is an [`ErrorKind::Serialization`] error.
    pub fn encode_value(&self, value: &Value, out: &mut Vec<u8>) -> Result<()> {
        crate::avro_datum::encode(&self.inner.schema, &self.inner.names, value, out)
    }

    /// Writes a serde value as an Avro binary datum of this schema to `out`: straight into
    /// `out`, record fields in the schema's order. The bytes are what apache-avro's
    /// `write_avro_datum_ref` writes; shapes the compiled serializer does not handle (tuples,
    /// enum variants with data, skipped fields) are written by apache-avro.
    pub fn encode<T: Serialize>(&self, value: &T, out: &mut Vec<u8>) -> Result<()> {
        match crate::avro_ser::encode(&self.inner.compiled, value, out) {
            Ok(()) => Ok(()),
            Err(crate::avro_ser::SerError::Invalid(m)) => Err(Error::serialization(m)),
            Err(crate::avro_ser::SerError::Fallback) => self.encode_with_apache_avro(value, out),
        }
    }

    /// [`AvroSchema::encode`] by apache-avro's serializer.
    fn encode_with_apache_avro<T: Serialize>(&self, value: &T, out: &mut Vec<u8>) -> Result<()> {
        if self.inner.named.is_empty() {
            // Straight from serde to bytes, no intermediate Value.
            return apache_avro::write_avro_datum_ref(&self.inner.schema, value, out)
                .map(drop)
                .map_err(|e| Error::serialization("the value does not match its Avro schema").with_source(e));
        }
        let v = apache_avro::to_value(value)
            .and_then(|v| v.resolve_schemata(&self.inner.schema, self.schemata()))
            .map_err(|e| Error::serialization("the value does not match its Avro schema").with_source(e))?;
        self.encode_value(&v, out)
    }

    /// Reads one Avro binary datum written with this schema (the writer's), resolved to
    /// `reader`'s schema when given. The whole input must be the datum: bytes left over mean
    /// the writer's schema does not describe it, and that is an error, not ignored.
    pub fn decode(&self, datum: &[u8], reader: Option<&AvroSchema>) -> Result<Value> {
        let v = crate::avro_datum::decode(&self.inner.schema, &self.inner.names, datum)?;
        match reader {
            None => Ok(v),
            Some(r) => v.resolve_schemata(&r.inner.schema, r.schemata()).map_err(|e| {
                Error::serialization("the Avro datum does not resolve from its writer's schema to the reader's")
                    .with_source(e)
            }),
        }
    }
}

impl AvroSchema {
    /// The plan reading datums of this schema (the writer's) as `reader` (`None`: as
    /// written), compiled once and kept.
    fn plan_for(&self, reader: Option<&AvroSchema>) -> Result<Arc<Plan>> {
        let reader =
            reader.filter(|r| !Arc::ptr_eq(&r.inner, &self.inner) && r.inner.canonical != self.inner.canonical);
        let Some(reader) = reader else {
            if let Some(p) = self.inner.identity.get() {
                return Ok(p.clone());
            }
            let plan = Arc::new(Plan::new(self.inner.compiled.clone(), self.inner.compiled.clone()));
            return Ok(self.inner.identity.get_or_init(|| plan).clone());
        };
        let mut resolved = self.inner.resolved.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((_, p)) = resolved.iter().find(|(c, _)| *c == reader.inner.canonical) {
            return Ok(p.clone());
        }
        let plan = Arc::new(Plan::new(self.inner.compiled.clone(), reader.inner.compiled.clone()));
        if resolved.len() >= MAX_RESOLVED_PLANS {
            resolved.clear();
        }
        resolved.push((reader.inner.canonical.clone(), plan.clone()));
        Ok(plan)
    }

    /// Reads one datum written with this schema into `T`, resolved to `reader` when given,
    /// straight from the bytes into `T` (no intermediate value).
    pub fn decode_into<T: DeserializeOwned>(&self, datum: &[u8], reader: Option<&AvroSchema>) -> Result<T> {
        let plan = self.plan_for(reader)?;
        crate::avro_plan_serde::decode(&plan, datum)
    }

    /// Reads one datum written with this schema into a `T` that may borrow its strings and
    /// bytes from `datum` (`&'a str`, `&'a [u8]`, `Cow<'a, str>` with `#[serde(borrow)]`): no
    /// allocation for them. Resolved to `reader` when given; a field the writer lacks comes
    /// from the reader's default, which is not in `datum`: borrow it as `Cow<'a, str>`.
    pub fn decode_borrowed<'a, T: serde::Deserialize<'a>>(
        &self,
        datum: &'a [u8],
        reader: Option<&AvroSchema>,
    ) -> Result<T> {
        let plan = self.plan_for(reader)?;
        crate::avro_plan_serde::decode(&plan, datum)
    }

    /// Reads one datum written with this schema as a generic value of `reader`'s schema (this
    /// one when `None`): records are [`GenericRecord`]s sharing the schema's names.
    pub fn decode_generic(&self, datum: &[u8], reader: Option<&AvroSchema>) -> Result<GenericValue> {
        self.plan_for(reader)?.decode_generic(datum)
    }

    /// Writes a generic value as an Avro binary datum of this schema to `out` (a union's
    /// branch picked by the value's kind, and for records by name); a value that does not
    /// match the schema is an [`ErrorKind::Serialization`] error naming where, and leaves
    /// nothing in `out`.
    pub fn encode_generic(&self, value: &GenericValue, out: &mut Vec<u8>) -> Result<()> {
        let c = &self.inner.compiled;
        let start = out.len();
        crate::avro_generic::encode(c, c.root, value, out, 0).map_err(|e| {
            out.truncate(start);
            e.into_error()
        })
    }

    /// A generic value of this schema as apache-avro's [`Value`] (unions wrapped, names
    /// copied).
    pub fn generic_to_value(&self, value: &GenericValue) -> Result<Value> {
        let c = &self.inner.compiled;
        crate::avro_generic::to_value(c, c.root, value, 0).map_err(Fail::into_error)
    }

    /// apache-avro's [`Value`] of this schema as a generic value.
    pub fn generic_from_value(&self, value: &Value) -> Result<GenericValue> {
        let c = &self.inner.compiled;
        crate::avro_generic::from_value(c, c.root, value, 0).map_err(Fail::into_error)
    }

    /// A new record of this schema (a record schema), each field at its default (`Null`
    /// without one): Java's `new GenericData.Record(schema)`.
    pub fn new_record(&self) -> Result<GenericRecord> {
        let c = &self.inner.compiled;
        match c.node(c.root) {
            Node::Record(r) => Ok(GenericRecord::with_defaults(c, *r)),
            _ => Err(Error::serialization(format!(
                "the schema is {}, not a record",
                c.describe(c.root)
            ))),
        }
    }

    /// A new record of the record type `full_name` defined in this schema (or its
    /// references), each field at its default.
    pub fn new_named_record(&self, full_name: &str) -> Result<GenericRecord> {
        let c = &self.inner.compiled;
        match c.record_named(full_name) {
            Some(r) => Ok(GenericRecord::with_defaults(c, r)),
            None => Err(Error::serialization(format!(
                "the schema defines no record {full_name}"
            ))),
        }
    }
}

/// A Confluent-compatible Avro serializer (Java's `KafkaAvroSerializer`): the subject from
/// the strategy, the schema registered (`auto.register.schemas`), taken as the subject's
/// latest (`use.latest.version`), or looked up, then magic byte, id and the Avro datum.
///
/// The registry is asked once per topic (and key or value); after that a record costs the
/// encoding only.
#[derive(Clone)]
pub struct AvroSerializer {
    registry: SchemaRegistryClient,
    schema: AvroSchema,
    found: Arc<PerTopic<AvroSchema>>,
    /// The largest record written so far (up to 64 KiB): each output is allocated that big,
    /// so that it is not grown while the record is written.
    size_hint: Arc<AtomicUsize>,
}

/// The largest output size a serializer allocates up front.
const MAX_SIZE_HINT: usize = 64 * 1024;

impl std::fmt::Debug for AvroSerializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroSerializer")
            .field("schema", &self.schema.full_name())
            .finish_non_exhaustive()
    }
}

impl AvroSerializer {
    /// A serializer writing with `schema`, configured by the registry client's config
    /// (`auto.register.schemas`, `use.latest.version`, `normalize.schemas`, the subject name
    /// strategies).
    pub fn new(registry: SchemaRegistryClient, schema: AvroSchema) -> Self {
        AvroSerializer {
            registry,
            schema,
            found: Arc::new(PerTopic::new()),
            size_hint: Arc::new(AtomicUsize::new(64)),
        }
    }

    /// A framed record: the header of `id`, then what `write` appends.
    fn framed(&self, id: i32, write: impl FnOnce(&mut Vec<u8>) -> Result<()>) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.size_hint.load(Ordering::Relaxed));
        wire::encode_header(id, &mut out);
        write(&mut out).map_err(|e| e.with_schema_id(id))?;
        if out.len() > self.size_hint.load(Ordering::Relaxed) && out.len() <= MAX_SIZE_HINT {
            self.size_hint.fetch_max(out.len(), Ordering::Relaxed);
        }
        Ok(out)
    }

    /// The schema id and writer schema for `topic`.
    async fn writer(&self, topic: &str, is_key: bool) -> Result<(i32, AvroSchema)> {
        let registry = &self.registry;
        let own = (self.schema.registry_schema(), &self.schema);
        self.found
            .writer(registry, topic, is_key, self.schema.full_name(), own, |s| {
                AvroSchema::resolve(registry, s)
            })
            .await
    }

    /// A serde value (a specific record) in the Confluent wire format.
    pub async fn encode<T: Serialize>(&self, topic: &str, is_key: bool, value: &T) -> Result<Vec<u8>> {
        if let Some((id, schema)) = self.found.fast(topic, is_key) {
            return self.framed(id, |out| schema.encode(value, out));
        }
        let (id, schema) = self.writer(topic, is_key).await?;
        self.framed(id, |out| schema.encode(value, out))
    }

    /// An apache-avro generic value in the Confluent wire format.
    pub async fn encode_value(&self, topic: &str, is_key: bool, value: &Value) -> Result<Vec<u8>> {
        if let Some((id, schema)) = self.found.fast(topic, is_key) {
            return self.framed(id, |out| schema.encode_value(value, out));
        }
        let (id, schema) = self.writer(topic, is_key).await?;
        self.framed(id, |out| schema.encode_value(value, out))
    }

    /// A generic value ([`GenericValue`], e.g. a [`GenericRecord`]) in the Confluent wire
    /// format.
    pub async fn encode_generic(&self, topic: &str, is_key: bool, value: &GenericValue) -> Result<Vec<u8>> {
        if let Some((id, schema)) = self.found.fast(topic, is_key) {
            return self.framed(id, |out| schema.encode_generic(value, out));
        }
        let (id, schema) = self.writer(topic, is_key).await?;
        self.framed(id, |out| schema.encode_generic(value, out))
    }
}

/// A Confluent-compatible Avro deserializer (Java's `KafkaAvroDeserializer`; Flink's
/// `ConfluentRegistryAvroDeserializationSchema`): the writer's schema fetched by the id in
/// the record (once per id), the datum read with it and resolved to the reader's schema when
/// one is given (fields added with defaults, removed fields dropped, as Avro resolves them).
///
/// The plan resolving each writer schema id to the reader's schema is compiled once; the
/// first few ids met are then found with no lock and no hash (one atomic load each).
#[derive(Clone)]
pub struct AvroDeserializer {
    registry: SchemaRegistryClient,
    reader: Option<AvroSchema>,
    writers: Writers<AvroSchema>,
    plans: Arc<Plans>,
}

/// A writer schema and the plan reading it as the deserializer's reader.
type Planned = (AvroSchema, Arc<Plan>);

/// A deserializer's plans by writer schema id: the first [`FAST_SLOTS`] ids in slots read
/// without a lock (a registry never changes what an id names, so a slot is set once), the
/// others in a map.
#[derive(Default)]
struct Plans {
    slots: [OnceLock<(i32, Planned)>; FAST_SLOTS],
    more: RwLock<HashMap<i32, Planned>>,
}

impl Plans {
    #[inline]
    fn fast(&self, id: i32) -> Option<&Planned> {
        for slot in &self.slots {
            match slot.get() {
                Some((i, p)) if *i == id => return Some(p),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }

    fn get(&self, id: i32) -> Option<Planned> {
        if let Some(p) = self.fast(id) {
            return Some(p.clone());
        }
        self.more.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    fn insert(&self, id: i32, planned: &Planned, capacity: usize) {
        for slot in &self.slots {
            if slot.get().is_none() && slot.set((id, planned.clone())).is_ok() {
                return;
            }
        }
        let mut more = self.more.write().unwrap_or_else(|p| p.into_inner());
        if more.len() >= capacity {
            more.clear();
        }
        more.insert(id, planned.clone());
    }
}

impl std::fmt::Debug for AvroDeserializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroDeserializer")
            .field("reader", &self.reader.as_ref().map(|r| r.full_name()))
            .finish_non_exhaustive()
    }
}

impl AvroDeserializer {
    /// A deserializer resolving to `reader` (`None`: values as they were written).
    pub fn new(registry: SchemaRegistryClient, reader: Option<AvroSchema>) -> Self {
        AvroDeserializer {
            registry,
            reader,
            writers: Writers::new(),
            plans: Arc::new(Plans::default()),
        }
    }

    /// The writer schema with this id, fetched once.
    pub async fn writer_schema(&self, id: i32) -> Result<AvroSchema> {
        if let Some((w, _)) = self.plans.fast(id) {
            return Ok(w.clone());
        }
        let registry = &self.registry;
        self.writers
            .fetch(registry, id, SchemaType::Avro, |s| AvroSchema::resolve(registry, s))
            .await
    }

    /// `writer` planned for this deserializer's reader, and kept.
    fn planned(&self, id: i32, writer: AvroSchema) -> Result<Planned> {
        let plan = writer
            .plan_for(self.reader.as_ref())
            .map_err(|e| e.with_schema_id(id))?;
        let planned = (writer, plan);
        self.plans
            .insert(id, &planned, self.registry.config().cache_capacity.max(1));
        Ok(planned)
    }

    /// The writer schema and plan of `id`, fetched and compiled when first met.
    async fn plan(&self, id: i32) -> Result<Planned> {
        if let Some(p) = self.plans.get(id) {
            return Ok(p);
        }
        let writer = self.writer_schema(id).await?;
        self.planned(id, writer)
    }

    /// The writer schema and plan of a framed record whose schema must be cached.
    fn plan_cached(&self, framed: &wire::Framed<'_>) -> Result<Planned> {
        if let Some(p) = self.plans.get(framed.schema_id) {
            return Ok(p);
        }
        let writer = self.writers.cached(framed)?;
        self.planned(framed.schema_id, writer)
    }

    /// `decode` applied to the payload of `data` with the plan of its schema id (fetched and
    /// compiled when first met); errors name the topic and the id.
    async fn with_plan<'a, T>(
        &self,
        topic: &str,
        data: &'a [u8],
        decode: impl FnOnce(&Planned, &'a [u8]) -> Result<T>,
    ) -> Result<T> {
        let framed = wire::decode(data)?;
        let id = framed.schema_id;
        let r = match self.plans.fast(id) {
            Some(p) => decode(p, framed.payload),
            None => {
                let p = self.plan(id).await?;
                decode(&p, framed.payload)
            }
        };
        r.map_err(|e| in_topic(e, topic, id))
    }

    /// [`AvroDeserializer::with_plan`] without waiting: the writer schema must be cached.
    fn with_plan_cached<'a, T>(
        &self,
        topic: &str,
        data: &'a [u8],
        decode: impl FnOnce(&Planned, &'a [u8]) -> Result<T>,
    ) -> Result<T> {
        let framed = wire::decode(data)?;
        let id = framed.schema_id;
        let r = match self.plans.fast(id) {
            Some(p) => decode(p, framed.payload),
            None => {
                let p = self.plan_cached(&framed)?;
                decode(&p, framed.payload)
            }
        };
        r.map_err(|e| in_topic(e, topic, id))
    }

    /// The schema id in `data` when its writer schema is not cached yet (what
    /// [`AvroDeserializer::decode_value_cached`] needs fetched first, with
    /// [`AvroDeserializer::writer_schema`]); `None` when it is, or when `data` is not framed
    /// (decoding then reports that).
    pub fn uncached_id(&self, data: &[u8]) -> Option<i32> {
        let id = wire::decode(data).ok()?.schema_id;
        if self.plans.fast(id).is_some() {
            return None;
        }
        self.writers.uncached_id(data)
    }

    /// [`AvroDeserializer::decode_value`] without waiting: the writer schema must be cached
    /// (see [`AvroDeserializer::uncached_id`]), else this is an error saying so.
    pub fn decode_value_cached(&self, topic: &str, data: &[u8]) -> Result<Value> {
        self.with_plan_cached(topic, data, |(w, _), d| w.decode(d, self.reader.as_ref()))
    }

    /// [`AvroDeserializer::decode`] without waiting: the writer schema must be cached.
    pub fn decode_cached<T: DeserializeOwned>(&self, topic: &str, data: &[u8]) -> Result<T> {
        self.with_plan_cached(topic, data, |(_, p), d| crate::avro_plan_serde::decode(p, d))
    }

    /// [`AvroDeserializer::decode_generic`] without waiting: the writer schema must be
    /// cached.
    pub fn decode_generic_cached(&self, topic: &str, data: &[u8]) -> Result<GenericValue> {
        self.with_plan_cached(topic, data, |(_, p), d| p.decode_generic(d))
    }

    /// A framed key or value as an apache-avro generic value (which owns a copy of every
    /// field name: [`AvroDeserializer::decode_generic`] does not). `topic` is for messages
    /// only.
    pub async fn decode_value(&self, topic: &str, data: &[u8]) -> Result<Value> {
        self.with_plan(topic, data, |(w, _), d| w.decode(d, self.reader.as_ref()))
            .await
    }

    /// A framed key or value as a generic value of the reader's schema (the writer's without
    /// one): records are [`GenericRecord`]s that share the schema's field names, Java's
    /// `GenericData.Record`. `topic` is for messages only.
    pub async fn decode_generic(&self, topic: &str, data: &[u8]) -> Result<GenericValue> {
        self.with_plan(topic, data, |(_, p), d| p.decode_generic(d)).await
    }

    /// A framed key or value as a `T` that borrows its strings and bytes from `data` (see
    /// [`AvroSchema::decode_borrowed`]): the fastest way to read a record, with no allocation
    /// for them.
    pub async fn decode_borrowed<'a, T: serde::Deserialize<'a>>(&self, topic: &str, data: &'a [u8]) -> Result<T> {
        self.with_plan(topic, data, |(_, p), d| crate::avro_plan_serde::decode(p, d))
            .await
    }

    /// [`AvroDeserializer::decode_borrowed`] without waiting: the writer schema must be
    /// cached.
    pub fn decode_borrowed_cached<'a, T: serde::Deserialize<'a>>(&self, topic: &str, data: &'a [u8]) -> Result<T> {
        self.with_plan_cached(topic, data, |(_, p), d| crate::avro_plan_serde::decode(p, d))
    }

    /// A framed key or value as a `T` (a specific record).
    pub async fn decode<T: DeserializeOwned>(&self, topic: &str, data: &[u8]) -> Result<T> {
        self.with_plan(topic, data, |(_, p), d| crate::avro_plan_serde::decode(p, d))
            .await
    }
}

/// Avro datums without framing or registry, with a static schema (Flink's
/// `AvroDeserializationSchema.forGeneric(schema)` / `forSpecific`): what a topic holds when
/// producer and consumer agree on the schema out of band.
#[derive(Debug, Clone)]
pub struct PlainAvro {
    writer: AvroSchema,
    reader: Option<AvroSchema>,
}

impl PlainAvro {
    /// Datums written (and read) with `schema`.
    pub fn new(schema: AvroSchema) -> Self {
        PlainAvro {
            writer: schema,
            reader: None,
        }
    }

    /// Datums written with `writer`, read as `reader`.
    pub fn resolving(writer: AvroSchema, reader: AvroSchema) -> Self {
        PlainAvro {
            writer,
            reader: Some(reader),
        }
    }

    /// A generic value as a datum.
    pub fn encode_value(&self, value: &Value) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.writer.encode_value(value, &mut out)?;
        Ok(out)
    }

    /// A serde value as a datum.
    pub fn encode<T: Serialize>(&self, value: &T) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.writer.encode(value, &mut out)?;
        Ok(out)
    }

    /// A datum as an apache-avro generic value.
    pub fn decode_value(&self, datum: &[u8]) -> Result<Value> {
        self.writer.decode(datum, self.reader.as_ref())
    }

    /// A generic value ([`GenericValue`], e.g. a [`GenericRecord`]) as a datum.
    pub fn encode_generic(&self, value: &GenericValue) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.writer.encode_generic(value, &mut out)?;
        Ok(out)
    }

    /// A datum as a generic value of the reader's schema (the writer's without one).
    pub fn decode_generic(&self, datum: &[u8]) -> Result<GenericValue> {
        self.writer.decode_generic(datum, self.reader.as_ref())
    }

    /// A datum as a `T`.
    pub fn decode<T: DeserializeOwned>(&self, datum: &[u8]) -> Result<T> {
        self.writer.decode_into(datum, self.reader.as_ref())
    }

    /// A datum as a `T` borrowing its strings and bytes from `datum` (see
    /// [`AvroSchema::decode_borrowed`]).
    pub fn decode_borrowed<'a, T: serde::Deserialize<'a>>(&self, datum: &'a [u8]) -> Result<T> {
        self.writer.decode_borrowed(datum, self.reader.as_ref())
    }
}

#[cfg(feature = "client")]
mod client_traits {
    //! strom-client's `Serializer` / `Deserializer` for the Avro serdes.

    use std::future::Future;
    use std::marker::PhantomData;

    use apache_avro::types::Value;
    use bytes::Bytes;
    use serde::de::DeserializeOwned;
    use serde::Serialize;
    use strom_client::serialization::{Deserializer, Field, Serializer};

    use super::{AvroDeserializer, AvroSerializer, GenericValue, PlainAvro};

    impl Serializer<Value> for AvroSerializer {
        async fn serialize(&self, topic: &str, field: Field, value: &Value) -> strom_client::Result<Bytes> {
            Ok(Bytes::from(self.encode_value(topic, field == Field::Key, value).await?))
        }
    }

    impl Deserializer<Value> for AvroDeserializer {
        async fn deserialize(&self, topic: &str, _: Field, data: &Bytes) -> strom_client::Result<Value> {
            Ok(self.decode_value(topic, data).await?)
        }
    }

    impl Serializer<GenericValue> for AvroSerializer {
        async fn serialize(&self, topic: &str, field: Field, value: &GenericValue) -> strom_client::Result<Bytes> {
            Ok(Bytes::from(
                self.encode_generic(topic, field == Field::Key, value).await?,
            ))
        }
    }

    /// An [`AvroDeserializer`] reading [`GenericValue`]s (as a client
    /// `Deserializer<GenericValue>`; `AvroDeserializer` itself is the `Deserializer<Value>`).
    #[derive(Debug, Clone)]
    pub struct GenericAvroDeserializer {
        inner: AvroDeserializer,
    }

    impl AvroDeserializer {
        /// This deserializer reading generic records that share their schema's names
        /// ([`AvroDeserializer::decode_generic`]), as a client `Deserializer<GenericValue>`.
        pub fn generic(self) -> GenericAvroDeserializer {
            GenericAvroDeserializer { inner: self }
        }
    }

    impl Deserializer<GenericValue> for GenericAvroDeserializer {
        async fn deserialize(&self, topic: &str, _: Field, data: &Bytes) -> strom_client::Result<GenericValue> {
            Ok(self.inner.decode_generic(topic, data).await?)
        }
    }

    /// An [`AvroSerializer`] for a serde type `T` (a specific record).
    #[derive(Debug)]
    pub struct SpecificAvroSerializer<T> {
        inner: AvroSerializer,
        _t: PhantomData<fn(&T)>,
    }

    impl<T> Clone for SpecificAvroSerializer<T> {
        fn clone(&self) -> Self {
            SpecificAvroSerializer {
                inner: self.inner.clone(),
                _t: PhantomData,
            }
        }
    }

    impl AvroSerializer {
        /// This serializer for serde values of `T` (as a client `Serializer<T>`).
        pub fn specific<T: Serialize>(self) -> SpecificAvroSerializer<T> {
            SpecificAvroSerializer {
                inner: self,
                _t: PhantomData,
            }
        }
    }

    impl<T: Serialize + Sync> Serializer<T> for SpecificAvroSerializer<T> {
        async fn serialize(&self, topic: &str, field: Field, value: &T) -> strom_client::Result<Bytes> {
            Ok(Bytes::from(self.inner.encode(topic, field == Field::Key, value).await?))
        }
    }

    /// An [`AvroDeserializer`] into a serde type `T` (a specific record).
    #[derive(Debug)]
    pub struct SpecificAvroDeserializer<T> {
        inner: AvroDeserializer,
        _t: PhantomData<fn() -> T>,
    }

    impl<T> Clone for SpecificAvroDeserializer<T> {
        fn clone(&self) -> Self {
            SpecificAvroDeserializer {
                inner: self.inner.clone(),
                _t: PhantomData,
            }
        }
    }

    impl AvroDeserializer {
        /// This deserializer into serde values of `T` (as a client `Deserializer<T>`).
        pub fn specific<T: DeserializeOwned>(self) -> SpecificAvroDeserializer<T> {
            SpecificAvroDeserializer {
                inner: self,
                _t: PhantomData,
            }
        }
    }

    impl<T: DeserializeOwned + Send> Deserializer<T> for SpecificAvroDeserializer<T> {
        async fn deserialize(&self, topic: &str, _: Field, data: &Bytes) -> strom_client::Result<T> {
            Ok(self.inner.decode::<T>(topic, data).await?)
        }
    }

    impl Serializer<Value> for PlainAvro {
        fn serialize(
            &self,
            _: &str,
            _: Field,
            value: &Value,
        ) -> impl Future<Output = strom_client::Result<Bytes>> + Send {
            std::future::ready(self.encode_value(value).map(Bytes::from).map_err(Into::into))
        }
    }

    impl Deserializer<Value> for PlainAvro {
        fn deserialize(
            &self,
            _: &str,
            _: Field,
            data: &Bytes,
        ) -> impl Future<Output = strom_client::Result<Value>> + Send {
            std::future::ready(self.decode_value(data).map_err(Into::into))
        }
    }

    impl Serializer<GenericValue> for PlainAvro {
        fn serialize(
            &self,
            _: &str,
            _: Field,
            value: &GenericValue,
        ) -> impl Future<Output = strom_client::Result<Bytes>> + Send {
            std::future::ready(self.encode_generic(value).map(Bytes::from).map_err(Into::into))
        }
    }
}

#[cfg(feature = "client")]
pub use client_traits::{GenericAvroDeserializer, SpecificAvroDeserializer, SpecificAvroSerializer};

#[cfg(test)]
mod tests {
    use super::*;

    const V1: &str = r#"{"type":"record","name":"User","namespace":"t","fields":[{"name":"name","type":"string"}]}"#;
    const V2: &str = r#"{"type":"record","name":"User","namespace":"t","fields":[{"name":"name","type":"string"},{"name":"age","type":"int","default":7}]}"#;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct User {
        name: String,
        age: i32,
    }

    #[test]
    fn plain_datums_resolve_old_to_new() {
        let v1 = AvroSchema::parse(V1).unwrap();
        let v2 = AvroSchema::parse(V2).unwrap();
        assert_eq!(v1.full_name(), Some("t.User"));
        let old = PlainAvro::new(v1.clone())
            .encode_value(&Value::Record(vec![("name".into(), Value::String("ann".into()))]))
            .unwrap();
        assert_eq!(old, b"\x06ann");
        let u: User = PlainAvro::resolving(v1.clone(), v2.clone()).decode(&old).unwrap();
        assert_eq!(
            u,
            User {
                name: "ann".into(),
                age: 7
            }
        );
        let new = PlainAvro::new(v2.clone()).encode(&u).unwrap();
        assert_eq!(new, b"\x06ann\x0e");
        // Trailing bytes, a truncated datum, a value of the wrong shape: errors, no panic.
        for bad in [&b"\x06ann\x00"[..], &b"\x06an"[..], &b"\x7f"[..]] {
            let e = PlainAvro::new(v1.clone()).decode_value(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Serialization, "{e}");
        }
        assert!(PlainAvro::new(v1).encode_value(&Value::Int(3)).is_err());
        assert_eq!(
            AvroSchema::parse("{\"type\":").unwrap_err().kind(),
            ErrorKind::InvalidSchema
        );
    }

    #[test]
    fn borrowed_decodes_point_into_the_datum() {
        const EVENT: &str = r#"{"type":"record","name":"E","namespace":"t","fields":[
            {"name":"user","type":"string"},{"name":"blob","type":"bytes"},
            {"name":"country","type":["null","string"]},{"name":"tags","type":{"type":"array","items":"string"}}]}"#;
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Borrowed<'a> {
            user: &'a str,
            blob: &'a [u8],
            country: Option<&'a str>,
            #[serde(borrow)]
            tags: Vec<&'a str>,
        }
        let schema = AvroSchema::parse(EVENT).unwrap();
        let plain = PlainAvro::new(schema.clone());
        let datum = plain
            .encode_value(&Value::Record(vec![
                ("user".into(), Value::String("ann".into())),
                ("blob".into(), Value::Bytes(vec![1, 2, 3])),
                ("country".into(), Value::Union(1, Box::new(Value::String("NO".into())))),
                (
                    "tags".into(),
                    Value::Array(vec![Value::String("a".into()), Value::String("bc".into())]),
                ),
            ]))
            .unwrap();
        let b: Borrowed<'_> = plain.decode_borrowed(&datum).unwrap();
        assert_eq!(
            b,
            Borrowed {
                user: "ann",
                blob: &[1, 2, 3],
                country: Some("NO"),
                tags: vec!["a", "bc"],
            }
        );
        // Not copied: the strings are slices of the datum.
        let range = datum.as_ptr_range();
        assert!(range.contains(&b.user.as_ptr()) && range.contains(&b.tags[1].as_ptr()));
        // The same canonical form as a reader is fine; another schema needs resolution.
        let same = AvroSchema::parse(&EVENT.replace('\n', " ")).unwrap();
        let ok: Borrowed<'_> = schema.decode_borrowed(&datum, Some(&same)).unwrap();
        assert_eq!(ok.user, "ann");
        let other = AvroSchema::parse(V1).unwrap();
        let e = schema
            .decode_borrowed::<Borrowed<'_>>(&datum, Some(&other))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Serialization);
        assert!(e.to_string().contains("t.User") && e.to_string().contains("t.E"), "{e}");
        // Truncated: an error, no panic.
        for n in 0..datum.len() {
            assert!(plain.decode_borrowed::<Borrowed<'_>>(&datum[..n]).is_err(), "{n}");
        }
    }

    #[test]
    fn named_references_parse_and_encode() {
        let address = Schema::new(
            SchemaType::Avro,
            r#"{"type":"record","name":"Address","namespace":"t","fields":[{"name":"city","type":"string"}]}"#,
        );
        let person = Schema::new(
            SchemaType::Avro,
            r#"{"type":"record","name":"Person","namespace":"t","fields":[{"name":"home","type":"t.Address"}]}"#,
        )
        .reference("t.Address", "address", 1);
        let s = AvroSchema::with_references(person, &[("t.Address".into(), address)]).unwrap();
        let v = Value::Record(vec![(
            "home".into(),
            Value::Record(vec![("city".into(), Value::String("Oslo".into()))]),
        )]);
        let mut out = Vec::new();
        s.encode_value(&v, &mut out).unwrap();
        assert_eq!(s.decode(&out, None).unwrap(), v);
    }
}
