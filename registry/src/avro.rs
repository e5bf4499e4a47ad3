//! Avro through the `apache-avro` crate: registry serializers that write the Confluent wire
//! format as Confluent's `KafkaAvroSerializer` does, deserializers that resolve the writer's
//! schema to the reader's (Flink's `ConfluentRegistryAvroDeserializationSchema.forGeneric` /
//! `forSpecific`), and plain Avro datums with a static schema and no framing (Flink's
//! `AvroDeserializationSchema`).
//!
//! Generic records are [`apache_avro::types::Value`]s; specific ones any `serde` type whose
//! shape matches the schema.
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

use std::sync::Arc;

pub use apache_avro::types::Value;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::{in_topic, PerTopic, Writers};
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
}

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
        Ok(AvroSchema {
            inner: Arc::new(Parsed {
                canonical,
                names,
                schema: parsed,
                named,
                registry: schema,
                full_name,
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

    /// Writes a serde value as an Avro binary datum of this schema to `out`.
    pub fn encode<T: Serialize>(&self, value: &T, out: &mut Vec<u8>) -> Result<()> {
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
    /// Reads one datum written with this schema into `T`, resolved to `reader` when given.
    /// Without a reader schema, or with one of the same canonical form, straight from the
    /// bytes into `T` (no intermediate `Value`); otherwise through Avro's schema resolution.
    pub fn decode_into<T: DeserializeOwned>(&self, datum: &[u8], reader: Option<&AvroSchema>) -> Result<T> {
        let direct =
            reader.is_none_or(|r| Arc::ptr_eq(&r.inner, &self.inner) || r.inner.canonical == self.inner.canonical);
        if direct {
            crate::avro_datum::decode_serde(&self.inner.schema, &self.inner.names, datum)
        } else {
            specific(&self.decode(datum, reader)?)
        }
    }
}

impl AvroSchema {
    /// Reads one datum written with this schema into a `T` that may borrow its strings and
    /// bytes from `datum` (`&'a str`, `&'a [u8]`, `Cow<'a, str>` with `#[serde(borrow)]`): no
    /// allocation for them. Only without schema resolution: `reader`, when given, must have
    /// this schema's canonical form (a resolved datum is rebuilt, and so cannot be borrowed
    /// from); otherwise an error naming both schemas. `decode_into` resolves.
    pub fn decode_borrowed<'a, T: serde::Deserialize<'a>>(
        &self,
        datum: &'a [u8],
        reader: Option<&AvroSchema>,
    ) -> Result<T> {
        if let Some(r) = reader {
            if !Arc::ptr_eq(&r.inner, &self.inner) && r.inner.canonical != self.inner.canonical {
                let name = |s: &AvroSchema| s.full_name().unwrap_or("(unnamed)").to_owned();
                return Err(Error::serialization(format!(
                    "a borrowed decode needs the writer's schema: the reader's {} differs from the writer's {} \
                     (decode into an owned type to resolve it)",
                    name(r),
                    name(self)
                )));
            }
        }
        crate::avro_datum::decode_serde(&self.inner.schema, &self.inner.names, datum)
    }
}

/// `T` from a decoded value (a specific record).
fn specific<T: DeserializeOwned>(v: &Value) -> Result<T> {
    apache_avro::from_value(v).map_err(|e| {
        Error::serialization(format!(
            "the Avro record does not deserialize into {}",
            std::any::type_name::<T>()
        ))
        .with_source(e)
    })
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
}

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
        }
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
        let (id, schema) = self.writer(topic, is_key).await?;
        let mut out = Vec::with_capacity(64);
        wire::encode_header(id, &mut out);
        schema.encode(value, &mut out).map_err(|e| e.with_schema_id(id))?;
        Ok(out)
    }

    /// A generic value in the Confluent wire format.
    pub async fn encode_value(&self, topic: &str, is_key: bool, value: &Value) -> Result<Vec<u8>> {
        let (id, schema) = self.writer(topic, is_key).await?;
        let mut out = Vec::with_capacity(64);
        wire::encode_header(id, &mut out);
        schema.encode_value(value, &mut out).map_err(|e| e.with_schema_id(id))?;
        Ok(out)
    }
}

/// A Confluent-compatible Avro deserializer (Java's `KafkaAvroDeserializer`; Flink's
/// `ConfluentRegistryAvroDeserializationSchema`): the writer's schema fetched by the id in
/// the record (once per id), the datum read with it and resolved to the reader's schema when
/// one is given (fields added with defaults, removed fields dropped, as Avro resolves them).
#[derive(Clone)]
pub struct AvroDeserializer {
    registry: SchemaRegistryClient,
    reader: Option<AvroSchema>,
    writers: Writers<AvroSchema>,
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
        }
    }

    /// The writer schema with this id, fetched once.
    pub async fn writer_schema(&self, id: i32) -> Result<AvroSchema> {
        let registry = &self.registry;
        self.writers
            .fetch(registry, id, SchemaType::Avro, |s| AvroSchema::resolve(registry, s))
            .await
    }

    /// The schema id in `data` when its writer schema is not cached yet (what
    /// [`AvroDeserializer::decode_value_cached`] needs fetched first, with
    /// [`AvroDeserializer::writer_schema`]); `None` when it is, or when `data` is not framed
    /// (decoding then reports that).
    pub fn uncached_id(&self, data: &[u8]) -> Option<i32> {
        self.writers.uncached_id(data)
    }

    /// [`AvroDeserializer::decode_value`] without waiting: the writer schema must be cached
    /// (see [`AvroDeserializer::uncached_id`]), else this is an error saying so.
    pub fn decode_value_cached(&self, topic: &str, data: &[u8]) -> Result<Value> {
        let framed = wire::decode(data)?;
        let writer = self.writers.cached(&framed)?;
        writer
            .decode(framed.payload, self.reader.as_ref())
            .map_err(|e| in_topic(e, topic, framed.schema_id))
    }

    /// [`AvroDeserializer::decode`] without waiting: the writer schema must be cached.
    pub fn decode_cached<T: DeserializeOwned>(&self, topic: &str, data: &[u8]) -> Result<T> {
        let framed = wire::decode(data)?;
        let writer = self.writers.cached(&framed)?;
        writer
            .decode_into(framed.payload, self.reader.as_ref())
            .map_err(|e| in_topic(e, topic, framed.schema_id))
    }

    /// A framed key or value as a generic value. `topic` is for messages only.
    pub async fn decode_value(&self, topic: &str, data: &[u8]) -> Result<Value> {
        let framed = wire::decode(data)?;
        let writer = self.writer_schema(framed.schema_id).await?;
        writer
            .decode(framed.payload, self.reader.as_ref())
            .map_err(|e| in_topic(e, topic, framed.schema_id))
    }

    /// A framed key or value as a `T` that borrows its strings and bytes from `data` (see
    /// [`AvroSchema::decode_borrowed`]): the fastest way to read a record, with no allocation
    /// for them. Needs no reader schema, or one with the writer's canonical form.
    pub async fn decode_borrowed<'a, T: serde::Deserialize<'a>>(&self, topic: &str, data: &'a [u8]) -> Result<T> {
        let framed = wire::decode(data)?;
        let writer = self.writer_schema(framed.schema_id).await?;
        writer
            .decode_borrowed(framed.payload, self.reader.as_ref())
            .map_err(|e| in_topic(e, topic, framed.schema_id))
    }

    /// [`AvroDeserializer::decode_borrowed`] without waiting: the writer schema must be
    /// cached.
    pub fn decode_borrowed_cached<'a, T: serde::Deserialize<'a>>(&self, topic: &str, data: &'a [u8]) -> Result<T> {
        let framed = wire::decode(data)?;
        let writer = self.writers.cached(&framed)?;
        writer
            .decode_borrowed(framed.payload, self.reader.as_ref())
            .map_err(|e| in_topic(e, topic, framed.schema_id))
    }

    /// A framed key or value as a `T` (a specific record).
    pub async fn decode<T: DeserializeOwned>(&self, topic: &str, data: &[u8]) -> Result<T> {
        let framed = wire::decode(data)?;
        let writer = self.writer_schema(framed.schema_id).await?;
        writer
            .decode_into(framed.payload, self.reader.as_ref())
            .map_err(|e| in_topic(e, topic, framed.schema_id))
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

    /// A datum as a generic value.
    pub fn decode_value(&self, datum: &[u8]) -> Result<Value> {
        self.writer.decode(datum, self.reader.as_ref())
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

    use super::{AvroDeserializer, AvroSerializer, PlainAvro};

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
}

#[cfg(feature = "client")]
pub use client_traits::{SpecificAvroDeserializer, SpecificAvroSerializer};

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
