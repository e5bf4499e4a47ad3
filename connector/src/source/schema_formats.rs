//! Avro deserializers, as the seed names them, and JSON Schema through a registry
//! ([`json_schema_confluent_registry`]): [`avro`] / [`avro_specific`] (Flink's
//! `AvroDeserializationSchema.forGeneric` / `forSpecific`: a static schema, no framing) and
//! [`avro_confluent_registry`] / [`avro_confluent_registry_specific`]
//! (`ConfluentRegistryAvroDeserializationSchema`: the writer's schema fetched from a schema
//! registry by the id each record carries, resolved to the reader's schema).
//!
//! The registry ones fetch a writer schema the first time they meet its id, through
//! [`KafkaRecordDeserializer::prepare`](super::KafkaRecordDeserializer::prepare), so the
//! reader awaits the registry instead of blocking; after that each record decodes from the
//! cache. A record that is not framed, carries an id the registry does not know, or does not
//! decode fails the source with [`ConnectorError::Deserialize`](crate::ConnectorError)
//! naming topic, partition, offset and the schema id.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use strom_registry::avro::{AvroDeserializer, AvroSchema, PlainAvro, Value};
use strom_registry::SchemaRegistryClient;

use super::deserializer::{value_only, BoxError, PrepareValue, ValueDeserializer, ValueOnly};

/// Plain Avro datums of one schema into `T` (a generic [`Value`] or a serde type).
pub struct PlainAvroValues<T> {
    codec: PlainAvro,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for PlainAvroValues<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlainAvroValues").field("codec", &self.codec).finish()
    }
}

impl ValueDeserializer<Value> for PlainAvroValues<Value> {
    fn deserialize_value(&self, value: &Bytes) -> Result<Option<Value>, BoxError> {
        Ok(Some(self.codec.decode_value(value)?))
    }
}

/// A serde type read as Avro (see [`avro_specific`], [`avro_confluent_registry_specific`]).
pub struct Specific<T>(PhantomData<fn() -> T>);

impl<T> std::fmt::Debug for Specific<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(std::any::type_name::<T>())
    }
}

impl<T: DeserializeOwned> ValueDeserializer<T> for PlainAvroValues<Specific<T>> {
    fn deserialize_value(&self, value: &Bytes) -> Result<Option<T>, BoxError> {
        Ok(Some(self.codec.decode(value)?))
    }
}

/// Values that are Avro datums written with `schema`, as generic values (Flink's
/// `AvroDeserializationSchema.forGeneric(schema)`); no framing, no registry.
pub fn avro(schema: AvroSchema) -> ValueOnly<PlainAvroValues<Value>, Value> {
    value_only(PlainAvroValues {
        codec: PlainAvro::new(schema),
        _t: PhantomData,
    })
}

/// Values that are Avro datums written with `schema`, as `T` (Flink's
/// `AvroDeserializationSchema.forSpecific`; in Rust a serde type shaped like the schema).
pub fn avro_specific<T: DeserializeOwned>(schema: AvroSchema) -> ValueOnly<PlainAvroValues<Specific<T>>, T> {
    value_only(PlainAvroValues {
        codec: PlainAvro::new(schema),
        _t: PhantomData,
    })
}

/// Schema ids the registry said it does not have. A record carrying one is a bad record (its
/// `deserialize` fails naming the id, and [`skip_undecodable`](super::deserializer::skip_undecodable)
/// skips it), not a reason to stop the source as an unreachable registry is; and it is not
/// asked about again.
#[derive(Clone, Default)]
struct UnknownIds(Arc<Mutex<HashMap<i32, String>>>);

impl UnknownIds {
    fn known_bad(&self, id: i32) -> bool {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).contains_key(&id)
    }

    /// Awaits `fetch`; the registry's "not found" is remembered for `id` instead of failing.
    fn guard(&self, id: i32, fetch: impl Future<Output = strom_registry::Result<()>> + Send + 'static) -> PrepareValue {
        let unknown = self.clone();
        Box::pin(async move {
            match fetch.await {
                Ok(()) => Ok(()),
                Err(e) if e.kind() == strom_registry::ErrorKind::NotFound => {
                    let mut m = unknown.0.lock().unwrap_or_else(PoisonError::into_inner);
                    if m.len() >= 1000 {
                        m.clear();
                    }
                    m.insert(id, e.to_string());
                    Ok(())
                }
                Err(e) => Err(Box::new(e) as BoxError),
            }
        })
    }

    /// The registry's answer for the id in `value`, when it did not have it.
    fn check(&self, value: &[u8]) -> Result<(), BoxError> {
        let Ok(framed) = strom_registry::wire::decode(value) else {
            return Ok(());
        };
        match self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&framed.schema_id)
        {
            Some(m) => Err(m.clone().into()),
            None => Ok(()),
        }
    }
}

/// Confluent-framed Avro values, through a schema registry, into `T`.
pub struct RegistryAvroValues<T> {
    de: AvroDeserializer,
    unknown: UnknownIds,
    _t: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for RegistryAvroValues<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryAvroValues").field("de", &self.de).finish()
    }
}

impl<T> RegistryAvroValues<T> {
    fn fetch(&self, value: &Bytes) -> Option<PrepareValue> {
        let id = self.de.uncached_id(value).filter(|id| !self.unknown.known_bad(*id))?;
        let de = self.de.clone();
        Some(
            self.unknown
                .guard(id, async move { de.writer_schema(id).await.map(drop) }),
        )
    }
}

impl ValueDeserializer<Value> for RegistryAvroValues<Value> {
    fn deserialize_value(&self, value: &Bytes) -> Result<Option<Value>, BoxError> {
        self.unknown.check(value)?;
        Ok(Some(self.de.decode_value_cached("", value)?))
    }

    fn prepare_value(&self, value: &Bytes) -> Option<PrepareValue> {
        self.fetch(value)
    }
}

impl<T: DeserializeOwned> ValueDeserializer<T> for RegistryAvroValues<Specific<T>> {
    fn deserialize_value(&self, value: &Bytes) -> Result<Option<T>, BoxError> {
        self.unknown.check(value)?;
        Ok(Some(self.de.decode_cached::<T>("", value)?))
    }

    fn prepare_value(&self, value: &Bytes) -> Option<PrepareValue> {
        self.fetch(value)
    }
}

/// Confluent-framed Avro values whose writer schema is in `registry`, resolved to `reader`,
/// as generic values (Flink's `ConfluentRegistryAvroDeserializationSchema.forGeneric(reader,
/// url)`).
pub fn avro_confluent_registry(
    registry: SchemaRegistryClient,
    reader: AvroSchema,
) -> ValueOnly<RegistryAvroValues<Value>, Value> {
    value_only(RegistryAvroValues {
        de: AvroDeserializer::new(registry, Some(reader)),
        unknown: UnknownIds::default(),
        _t: PhantomData,
    })
}

/// Confluent-framed Avro values resolved to `reader`, as `T` (Flink's
/// `ConfluentRegistryAvroDeserializationSchema.forSpecific`).
pub fn avro_confluent_registry_specific<T: DeserializeOwned>(
    registry: SchemaRegistryClient,
    reader: AvroSchema,
) -> ValueOnly<RegistryAvroValues<Specific<T>>, T> {
    value_only(RegistryAvroValues {
        de: AvroDeserializer::new(registry, Some(reader)),
        unknown: UnknownIds::default(),
        _t: PhantomData,
    })
}

/// Confluent-framed JSON Schema values, through a schema registry, into `T` (validated
/// against the writer's schema when the registry config has `json.fail.invalid.schema=true`).
pub struct RegistryJsonValues<T> {
    de: strom_registry::json::JsonSchemaDeserializer<T>,
    unknown: UnknownIds,
}

impl<T> std::fmt::Debug for RegistryJsonValues<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryJsonValues").finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned + 'static> ValueDeserializer<T> for RegistryJsonValues<T> {
    fn deserialize_value(&self, value: &Bytes) -> Result<Option<T>, BoxError> {
        self.unknown.check(value)?;
        Ok(Some(self.de.decode_cached("", value)?))
    }

    fn prepare_value(&self, value: &Bytes) -> Option<PrepareValue> {
        let id = self.de.uncached_id(value).filter(|id| !self.unknown.known_bad(*id))?;
        let de = self.de.clone();
        Some(self.unknown.guard(id, async move { de.fetch(id).await }))
    }
}

/// Confluent-framed JSON Schema values whose schema is in `registry`, as `T` (any serde
/// type; `serde_json::Value` for the JSON as it is).
pub fn json_schema_confluent_registry<T: DeserializeOwned + 'static>(
    registry: SchemaRegistryClient,
) -> ValueOnly<RegistryJsonValues<T>, T> {
    value_only(RegistryJsonValues {
        de: strom_registry::json::JsonSchemaDeserializer::new(registry),
        unknown: UnknownIds::default(),
    })
}

/// Confluent-framed Protobuf values, through a schema registry, as dynamic messages of the
/// writer's schema.
pub struct RegistryProtobufValues {
    de: strom_registry::protobuf::ProtobufDeserializer,
    unknown: UnknownIds,
}

impl std::fmt::Debug for RegistryProtobufValues {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryProtobufValues").finish_non_exhaustive()
    }
}

impl ValueDeserializer<strom_registry::protobuf::DynamicMessage> for RegistryProtobufValues {
    fn deserialize_value(&self, value: &Bytes) -> Result<Option<strom_registry::protobuf::DynamicMessage>, BoxError> {
        self.unknown.check(value)?;
        Ok(Some(self.de.decode_dynamic_cached("", value)?))
    }

    fn prepare_value(&self, value: &Bytes) -> Option<PrepareValue> {
        let id = self.de.uncached_id(value).filter(|id| !self.unknown.known_bad(*id))?;
        let de = self.de.clone();
        Some(self.unknown.guard(id, async move { de.schema(id).await.map(drop) }))
    }
}

/// Confluent-framed Protobuf values whose schema is in `registry`, as dynamic messages
/// (each of the type its message indexes name).
pub fn protobuf_confluent_registry(
    registry: SchemaRegistryClient,
) -> ValueOnly<RegistryProtobufValues, strom_registry::protobuf::DynamicMessage> {
    value_only(RegistryProtobufValues {
        de: strom_registry::protobuf::ProtobufDeserializer::new(registry),
        unknown: UnknownIds::default(),
    })
}
