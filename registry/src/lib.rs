//! A Confluent-compatible Schema Registry client, the Confluent wire format, and Avro
//! serializers that write and read it byte for byte as Confluent's do.
//!
//! * [`SchemaRegistryClient`]: the registry's REST API (subjects, versions, register, lookup
//!   by id and by schema, compatibility, config, references) with caches, failover across
//!   URLs, bounded retries, basic auth or a bearer token, and TLS.
//! * [`RegistryConfig`]: configured by the Java serializers' property names
//!   (`schema.registry.url`, `basic.auth.user.info`, `auto.register.schemas`,
//!   `use.latest.version`, `value.subject.name.strategy`...).
//! * [`wire`]: magic byte 0, the 4-byte schema id, Protobuf message indexes.
//! * [`avro`] (feature `avro`): a registry serializer and deserializer for generic Avro values
//!   and serde types, with writer-to-reader schema resolution, and plain Avro datums without
//!   a registry.
//! * [`protobuf`] (feature `protobuf`): Protobuf with Confluent's message indexes, dynamic
//!   messages from the registered schema (`.proto` text or a base64 descriptor) or
//!   prost-generated types.
//! * [`json`] (feature `json`): JSON Schema, serde values as JSON text checked against the
//!   registered schema.
//!
//! With the `client` feature (on by default) the serializers implement strom-client's
//! [`Serializer`](strom_client::serialization::Serializer) and
//! [`Deserializer`](strom_client::serialization::Deserializer), so a producer sends and a
//! consumer reads typed records through them; without it the crate needs nothing of Strom's.

#[cfg(feature = "avro")]
pub mod avro;
#[cfg(feature = "avro")]
mod avro_compiled;
#[cfg(feature = "avro")]
mod avro_datum;
#[cfg(feature = "avro")]
mod avro_generic;
#[cfg(feature = "avro")]
mod avro_plan;
#[cfg(feature = "avro")]
mod avro_plan_serde;
#[cfg(feature = "avro")]
mod avro_read;
#[cfg(feature = "avro")]
mod avro_ser;
#[cfg(any(feature = "avro", feature = "json", feature = "protobuf"))]
mod cache;
mod client;
mod config;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod http;
#[cfg(feature = "json")]
pub mod json;
#[cfg(feature = "protobuf")]
pub mod protobuf;
mod strategy;
pub mod wire;

/// The `apache-avro` crate this one builds on (its `Schema` and `types::Value`).
#[cfg(feature = "avro")]
pub use apache_avro;
pub use client::{
    Compatibility, CompatibilityLevel, RegisteredSchema, Schema, SchemaReference, SchemaRegistryClient, SchemaType,
    WriterSchema,
};
pub use config::{BasicAuth, BearerToken, RegistryConfig, TrustStore};
pub use error::{Error, ErrorKind, Result};
pub use strategy::SubjectNameStrategy;
