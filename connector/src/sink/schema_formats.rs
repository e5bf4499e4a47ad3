//! Avro and JSON Schema serialization schemas for the sink's keys and values
//! ([`JsonSchemaSerialization`] for the latter): [`AvroSerialization::plain`]
//! (Flink's `AvroSerializationSchema.forGeneric(schema)`: datums, no framing) and
//! [`AvroSerialization::confluent_registry`] (`ConfluentRegistryAvroSerializationSchema`:
//! Confluent-framed, the schema registered under a subject in a schema registry).
//!
//! The registry one resolves its schema id when it is built (`await`ed once, before the
//! sink writes anything), as the registry's settings say: registered
//! (`auto.register.schemas`, the default), the subject's latest (`use.latest.version`), or
//! looked up. Writing a record then never waits for the registry.

use std::marker::PhantomData;

use bytes::Bytes;
use serde::Serialize;
use strom_registry::avro::{AvroSchema, Value};
use strom_registry::{wire, SchemaRegistryClient, WriterSchema};

use super::serializer::SerializationSchema;
use crate::error::{ConnectorError, Result};

/// Elements of `T` (a generic [`Value`] or a serde type) as Avro bytes.
pub struct AvroSerialization<T: ?Sized> {
    schema: AvroSchema,
    /// The schema id to frame with; `None`: plain datums.
    id: Option<i32>,
    _t: PhantomData<fn(&T)>,
}

impl<T: ?Sized> std::fmt::Debug for AvroSerialization<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AvroSerialization")
            .field("schema", &self.schema.full_name())
            .field("id", &self.id)
            .finish()
    }
}

impl<T: ?Sized> Clone for AvroSerialization<T> {
    fn clone(&self) -> Self {
        AvroSerialization {
            schema: self.schema.clone(),
            id: self.id,
            _t: PhantomData,
        }
    }
}

impl<T: ?Sized> AvroSerialization<T> {
    /// Datums of `schema` without framing (Flink's `AvroSerializationSchema`).
    pub fn plain(schema: AvroSchema) -> Self {
        AvroSerialization {
            schema,
            id: None,
            _t: PhantomData,
        }
    }

    /// Confluent-framed datums, `schema` registered under `subject` in `registry` (or its
    /// latest version taken, or looked up, by the registry's settings). Fails when the
    /// registry refuses the schema (incompatible, invalid) or cannot be reached.
    pub async fn confluent_registry(
        registry: &SchemaRegistryClient,
        subject: &str,
        schema: AvroSchema,
    ) -> Result<Self> {
        let failed =
            |e: strom_registry::Error| ConnectorError::Serialize(format!("schema registry, subject {subject}: {e}"));
        let (id, schema) = match registry
            .writer_schema_for(subject, schema.registry_schema())
            .await
            .map_err(failed)?
        {
            WriterSchema::Own(id) => (id, schema),
            WriterSchema::Latest(l) => (l.id, AvroSchema::resolve(registry, l.schema).await.map_err(failed)?),
        };
        Ok(AvroSerialization {
            schema,
            id: Some(id),
            _t: PhantomData,
        })
    }

    /// The schema id records are framed with (`None` for plain datums).
    pub fn schema_id(&self) -> Option<i32> {
        self.id
    }

    fn frame(&self, encode: impl FnOnce(&mut Vec<u8>) -> strom_registry::Result<()>) -> Result<Option<Bytes>> {
        let mut out = Vec::with_capacity(64);
        if let Some(id) = self.id {
            wire::encode_header(id, &mut out);
        }
        encode(&mut out).map_err(|e| ConnectorError::Serialize(format!("Avro: {e}")))?;
        Ok(Some(Bytes::from(out)))
    }
}

impl SerializationSchema<Value> for AvroSerialization<Value> {
    fn serialize(&self, element: &Value) -> Result<Option<Bytes>> {
        self.frame(|out| self.schema.encode_value(element, out))
    }
}

/// A serde type written as Avro (see [`AvroSerialization::specific`]).
pub struct Specific<T: ?Sized>(PhantomData<fn(&T)>);

impl<T: ?Sized> std::fmt::Debug for Specific<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<T>())
    }
}

impl AvroSerialization<Value> {
    /// This schema for serde values of `T` instead of generic values.
    pub fn specific<T: Serialize>(self) -> AvroSerialization<Specific<T>> {
        AvroSerialization {
            schema: self.schema,
            id: self.id,
            _t: PhantomData,
        }
    }
}

impl<T: Serialize + Sync> SerializationSchema<T> for AvroSerialization<Specific<T>> {
    fn serialize(&self, element: &T) -> Result<Option<Bytes>> {
        self.frame(|out| self.schema.encode(element, out))
    }
}

/// Elements as Confluent-framed JSON checked against a JSON Schema registered under a
/// subject (Confluent's `KafkaJsonSchemaSerializer` as a sink serialization schema): the
/// schema id is resolved when it is built; an element its schema does not allow fails the
/// write, naming what is wrong.
pub struct JsonSchemaSerialization<T: ?Sized> {
    schema: strom_registry::json::JsonSchema,
    id: i32,
    _t: PhantomData<fn(&T)>,
}

impl<T: ?Sized> std::fmt::Debug for JsonSchemaSerialization<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchemaSerialization")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + ?Sized> JsonSchemaSerialization<T> {
    /// `schema` registered under `subject` (or the subject's latest taken, or looked up, by
    /// the registry's settings).
    pub async fn confluent_registry(
        registry: &SchemaRegistryClient,
        subject: &str,
        schema: strom_registry::json::JsonSchema,
    ) -> Result<Self> {
        let failed =
            |e: strom_registry::Error| ConnectorError::Serialize(format!("schema registry, subject {subject}: {e}"));
        let (id, schema) = match registry
            .writer_schema_for(subject, schema.registry_schema())
            .await
            .map_err(failed)?
        {
            WriterSchema::Own(id) => (id, schema),
            WriterSchema::Latest(l) => (
                l.id,
                strom_registry::json::JsonSchema::resolve(registry, l.schema)
                    .await
                    .map_err(failed)?,
            ),
        };
        Ok(JsonSchemaSerialization {
            schema,
            id,
            _t: PhantomData,
        })
    }
}

impl<T: Serialize + Sync + ?Sized> SerializationSchema<T> for JsonSchemaSerialization<T> {
    fn serialize(&self, element: &T) -> Result<Option<Bytes>> {
        let bad = |e: &dyn std::fmt::Display| ConnectorError::Serialize(format!("JSON Schema: {e}"));
        let value = serde_json::to_value(element).map_err(|e| bad(&e))?;
        self.schema.validate(&value).map_err(|e| bad(&e))?;
        let mut out = Vec::with_capacity(64);
        wire::encode_header(self.id, &mut out);
        serde_json::to_writer(&mut out, element).map_err(|e| bad(&e))?;
        Ok(Some(Bytes::from(out)))
    }
}

/// Dynamic Protobuf messages as Confluent-framed records, the schema registered under a
/// subject (Confluent's `KafkaProtobufSerializer` as a sink serialization schema); the
/// schema id is resolved when it is built.
pub struct ProtobufSerialization {
    message: strom_registry::protobuf::MessageDescriptor,
    indexes: Vec<i32>,
    id: i32,
}

impl std::fmt::Debug for ProtobufSerialization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtobufSerialization")
            .field("message", &self.message.full_name())
            .field("id", &self.id)
            .finish()
    }
}

impl ProtobufSerialization {
    /// Messages of `message` (in `schema`'s own file), `schema` registered under `subject`
    /// (or looked up, by the registry's settings).
    pub async fn confluent_registry(
        registry: &SchemaRegistryClient,
        subject: &str,
        schema: strom_registry::protobuf::ProtobufSchema,
        message: strom_registry::protobuf::MessageDescriptor,
    ) -> Result<Self> {
        let failed =
            |e: strom_registry::Error| ConnectorError::Serialize(format!("schema registry, subject {subject}: {e}"));
        let indexes = schema.indexes_of(&message).map_err(failed)?;
        let id = match registry
            .writer_schema_for(subject, schema.registry_schema())
            .await
            .map_err(failed)?
        {
            WriterSchema::Own(id) => id,
            WriterSchema::Latest(l) => {
                // The latest must hold this message at the same place.
                let theirs = strom_registry::protobuf::ProtobufSchema::resolve(registry, l.schema)
                    .await
                    .map_err(failed)?;
                let m = theirs.message_at(&indexes).map_err(failed)?;
                if m.full_name() != message.full_name() {
                    return Err(ConnectorError::Serialize(format!(
                        "schema registry, subject {subject}: the latest version has {} where this writes {}",
                        m.full_name(),
                        message.full_name()
                    )));
                }
                l.id
            }
        };
        Ok(ProtobufSerialization { message, indexes, id })
    }
}

impl SerializationSchema<strom_registry::protobuf::DynamicMessage> for ProtobufSerialization {
    fn serialize(&self, element: &strom_registry::protobuf::DynamicMessage) -> Result<Option<Bytes>> {
        use strom_registry::protobuf::prost::Message as _;
        use strom_registry::protobuf::ReflectMessage as _;
        if element.descriptor().full_name() != self.message.full_name() {
            return Err(ConnectorError::Serialize(format!(
                "Protobuf: a {} given to the serialization of {}",
                element.descriptor().full_name(),
                self.message.full_name()
            )));
        }
        let mut out = Vec::with_capacity(wire::HEADER_LEN + 4 + element.encoded_len());
        wire::encode_header(self.id, &mut out);
        wire::encode_message_indexes(&self.indexes, &mut out);
        element
            .encode(&mut out)
            .map_err(|e| ConnectorError::Serialize(format!("Protobuf: {e}")))?;
        Ok(Some(Bytes::from(out)))
    }
}
