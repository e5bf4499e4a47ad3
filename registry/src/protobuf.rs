//! Protobuf: messages in the Confluent wire format with its message indexes (Confluent's
//! `KafkaProtobufSerializer` / `KafkaProtobufDeserializer`).
//!
//! Schemas are `.proto` text or, as Confluent's Python serializer registers them, a base64
//! `FileDescriptorProto`; both are read, imports come from the schema's references (and
//! Google's well-known types), compiled in pure Rust (protox). Messages are
//! [`DynamicMessage`]s built from the registered schema (prost-reflect), or prost-generated
//! types.
//!
//! ```no_run
//! # async fn demo() -> strom_registry::Result<()> {
//! use strom_registry::protobuf::{ProtobufDeserializer, ProtobufSchema, ProtobufSerializer};
//! use strom_registry::{RegistryConfig, SchemaRegistryClient};
//!
//! let registry = SchemaRegistryClient::new(RegistryConfig::new("http://127.0.0.1:8081")?)?;
//! let schema = ProtobufSchema::parse(
//!     "syntax = \"proto3\"; package shop; message Order { int64 id = 1; string item = 2; }",
//! )?;
//! let order = schema.message("shop.Order")?;
//! let mut m = strom_registry::protobuf::DynamicMessage::new(order.clone());
//! m.set_field_by_name("id", strom_registry::protobuf::prost_reflect::Value::I64(7));
//! let bytes = ProtobufSerializer::new(registry.clone(), schema, order)?.encode_dynamic("orders", false, &m).await?;
//! let back = ProtobufDeserializer::new(registry).decode_dynamic("orders", &bytes).await?;
//! assert_eq!(back, m);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
pub use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, ReflectMessage};
/// The crates this module builds on (their `Value`, `Message`, descriptors).
pub use {prost, prost_reflect};

use crate::cache::{PerTopic, Writers};
use crate::client::{Schema, SchemaRegistryClient, SchemaType};
use crate::error::{Error, ErrorKind, Result};
use crate::wire;

/// The name the main schema gets among its imports (never an import's own name).
const MAIN: &str = "strom-registry/main.proto";

/// A compiled Protobuf schema: its file, its imports, and every message in them.
#[derive(Clone)]
pub struct ProtobufSchema {
    inner: Arc<Parsed>,
}

struct Parsed {
    registry: Schema,
    pool: DescriptorPool,
    file: String,
}

impl std::fmt::Debug for ProtobufSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtobufSchema")
            .field("file", &self.inner.file)
            .finish_non_exhaustive()
    }
}

/// `.proto` text, or a base64 `FileDescriptorProto` (no spaces, no `;`: not `.proto` text).
fn open(name: &str, text: &str) -> std::result::Result<protox::file::File, protox::Error> {
    let t = text.trim();
    if !t.is_empty() && !t.contains(|c: char| c.is_whitespace() || c == ';') {
        if let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(t) {
            if let Ok(f) = protox::file::File::decode_file_descriptor_proto(&bytes[..]) {
                return Ok(f);
            }
        }
    }
    protox::file::File::from_source(name, text)
}

/// The schema and its references by import name; then Google's well-known types.
struct Files {
    main: (String, String),
    imports: HashMap<String, String>,
}

impl protox::file::FileResolver for Files {
    fn open_file(&self, name: &str) -> std::result::Result<protox::file::File, protox::Error> {
        if name == self.main.0 {
            return open(name, &self.main.1);
        }
        match self.imports.get(name) {
            Some(text) => open(name, text),
            None => protox::file::GoogleFileResolver::new().open_file(name),
        }
    }
}

impl ProtobufSchema {
    /// Compiles `.proto` text (or a base64 `FileDescriptorProto`) without imports other than
    /// Google's well-known types.
    pub fn parse(text: &str) -> Result<Self> {
        Self::with_references(Schema::new(SchemaType::Protobuf, text), &[])
    }

    /// Compiles `schema` with the schemas it imports, by import name (as
    /// [`SchemaRegistryClient::resolve_references`] gives them).
    pub fn with_references(schema: Schema, referenced: &[(String, Schema)]) -> Result<Self> {
        if schema.schema_type != SchemaType::Protobuf {
            return Err(Error::new(
                ErrorKind::InvalidSchema,
                format!("a {:?} schema is not Protobuf", schema.schema_type),
            ));
        }
        let invalid = |e: protox::Error| {
            Error::new(
                ErrorKind::InvalidSchema,
                format!("the Protobuf schema does not compile: {e}"),
            )
        };
        // A base64 descriptor carries its own file name, which its importers use.
        let main_name = match open(MAIN, &schema.schema) {
            Ok(f) if f.source().is_none() && !f.name().is_empty() => f.name().to_owned(),
            Ok(_) => MAIN.to_owned(),
            Err(e) => return Err(invalid(e)),
        };
        let files = Files {
            main: (main_name.clone(), schema.schema.clone()),
            imports: referenced.iter().map(|(n, s)| (n.clone(), s.schema.clone())).collect(),
        };
        let mut compiler = protox::Compiler::with_file_resolver(files);
        compiler.include_imports(true);
        compiler.open_file(&main_name).map_err(invalid)?;
        Ok(ProtobufSchema {
            inner: Arc::new(Parsed {
                registry: schema,
                pool: compiler.descriptor_pool(),
                file: main_name,
            }),
        })
    }

    /// Fetches the imports of `schema` from the registry and compiles it.
    pub async fn resolve(registry: &SchemaRegistryClient, schema: Schema) -> Result<Self> {
        let referenced = if schema.references.is_empty() {
            Vec::new()
        } else {
            registry.resolve_references(&schema).await?
        };
        Self::with_references(schema, &referenced)
    }

    /// The schema as the registry stores it.
    pub fn registry_schema(&self) -> &Schema {
        &self.inner.registry
    }

    /// Every message type of the schema and its imports.
    pub fn pool(&self) -> &DescriptorPool {
        &self.inner.pool
    }

    /// The message type with this full name (`package.Message`).
    pub fn message(&self, full_name: &str) -> Result<MessageDescriptor> {
        self.inner.pool.get_message_by_name(full_name).ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidSchema,
                format!("the Protobuf schema has no message {full_name}"),
            )
        })
    }

    /// The first message of the schema's file (what Confluent's serializers take when no
    /// message is named).
    pub fn first_message(&self) -> Result<MessageDescriptor> {
        self.message_at(&[0])
    }

    /// The message at `indexes` in the schema's file (Confluent's message indexes: the
    /// top-level message, then nested ones).
    pub fn message_at(&self, indexes: &[i32]) -> Result<MessageDescriptor> {
        let missing = || Error::serialization(format!("the Protobuf schema has no message at indexes {indexes:?}"));
        let file = self.inner.pool.get_file_by_name(&self.inner.file).ok_or_else(missing)?;
        let (&first, rest) = indexes.split_first().ok_or_else(missing)?;
        let mut m = file
            .messages()
            .nth(usize::try_from(first).map_err(|_| missing())?)
            .ok_or_else(missing)?;
        for &i in rest {
            let next = m
                .child_messages()
                .nth(usize::try_from(i).map_err(|_| missing())?)
                .ok_or_else(missing)?;
            m = next;
        }
        Ok(m)
    }

    /// The message indexes of `message` in the schema's file.
    pub fn indexes_of(&self, message: &MessageDescriptor) -> Result<Vec<i32>> {
        if message.parent_file().name() != self.inner.file {
            return Err(Error::new(
                ErrorKind::InvalidSchema,
                format!(
                    "{} is not defined in the schema's own file (but in {})",
                    message.full_name(),
                    message.parent_file().name()
                ),
            ));
        }
        let mut path = Vec::new();
        let mut m = message.clone();
        loop {
            match m.parent_message() {
                Some(parent) => {
                    let i = parent.child_messages().position(|c| c.full_name() == m.full_name());
                    path.push(i.unwrap_or(0) as i32);
                    m = parent;
                }
                None => {
                    let i = m.parent_file().messages().position(|c| c.full_name() == m.full_name());
                    path.push(i.unwrap_or(0) as i32);
                    break;
                }
            }
        }
        path.reverse();
        Ok(path)
    }
}

/// A Confluent-compatible Protobuf serializer of one message type.
#[derive(Clone)]
pub struct ProtobufSerializer {
    registry: SchemaRegistryClient,
    schema: ProtobufSchema,
    message: MessageDescriptor,
    indexes: Vec<i32>,
    /// Per topic: the id, and the schema written with (own, or the subject's latest).
    found: Arc<PerTopic<ProtobufSchema>>,
}

impl std::fmt::Debug for ProtobufSerializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtobufSerializer")
            .field("message", &self.message.full_name())
            .finish_non_exhaustive()
    }
}

impl ProtobufSerializer {
    /// A serializer of `message` (a message of `schema`'s own file), configured by the
    /// registry client's settings (`auto.register.schemas`, `use.latest.version`, the subject
    /// name strategies; the record name is the message's full name).
    pub fn new(registry: SchemaRegistryClient, schema: ProtobufSchema, message: MessageDescriptor) -> Result<Self> {
        let indexes = schema.indexes_of(&message)?;
        Ok(ProtobufSerializer {
            registry,
            schema,
            message,
            indexes,
            found: Arc::new(PerTopic::new()),
        })
    }

    /// The message type it writes.
    pub fn message(&self) -> &MessageDescriptor {
        &self.message
    }

    async fn id(&self, topic: &str, is_key: bool) -> Result<i32> {
        let registry = &self.registry;
        let own = (self.schema.registry_schema(), &self.schema);
        let (id, schema) = self
            .found
            .writer(registry, topic, is_key, Some(self.message.full_name()), own, |s| {
                ProtobufSchema::resolve(registry, s)
            })
            .await?;
        // With use.latest.version, the latest must hold this message at the same place.
        if Arc::ptr_eq(&schema.inner, &self.schema.inner) {
            return Ok(id);
        }
        let m = schema.message_at(&self.indexes).map_err(|e| e.with_schema_id(id))?;
        if m.full_name() != self.message.full_name() {
            return Err(Error::serialization(format!(
                "the writer schema of topic {topic} has {} where this serializer writes {}",
                m.full_name(),
                self.message.full_name()
            ))
            .with_schema_id(id));
        }
        Ok(id)
    }

    fn frame(&self, id: i32, body_len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(wire::HEADER_LEN + 4 + body_len);
        wire::encode_header(id, &mut out);
        wire::encode_message_indexes(&self.indexes, &mut out);
        out
    }

    /// A dynamic message (of this serializer's type) in the Confluent wire format.
    pub async fn encode_dynamic(&self, topic: &str, is_key: bool, message: &DynamicMessage) -> Result<Vec<u8>> {
        use prost::Message as _;
        if message.descriptor().full_name() != self.message.full_name() {
            return Err(Error::serialization(format!(
                "a {} given to the serializer of {}",
                message.descriptor().full_name(),
                self.message.full_name()
            )));
        }
        let id = self.id(topic, is_key).await?;
        let mut out = self.frame(id, message.encoded_len());
        message
            .encode(&mut out)
            .map_err(|e| Error::serialization("the message does not encode").with_source(e))?;
        Ok(out)
    }

    /// A prost-generated message, which must be this serializer's message type, in the
    /// Confluent wire format.
    pub async fn encode<M: prost::Message>(&self, topic: &str, is_key: bool, message: &M) -> Result<Vec<u8>> {
        let id = self.id(topic, is_key).await?;
        let mut out = self.frame(id, message.encoded_len());
        message
            .encode(&mut out)
            .map_err(|e| Error::serialization("the message does not encode").with_source(e))?;
        Ok(out)
    }
}

/// A Confluent-compatible Protobuf deserializer: dynamic messages of the writer's schema,
/// or prost-generated types.
#[derive(Clone)]
pub struct ProtobufDeserializer {
    registry: SchemaRegistryClient,
    schemas: Writers<ProtobufSchema>,
}

impl std::fmt::Debug for ProtobufDeserializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProtobufDeserializer").finish_non_exhaustive()
    }
}

impl ProtobufDeserializer {
    /// A deserializer using `registry`.
    pub fn new(registry: SchemaRegistryClient) -> Self {
        ProtobufDeserializer {
            registry,
            schemas: Writers::new(),
        }
    }

    /// The schema with this id, fetched once.
    pub async fn schema(&self, id: i32) -> Result<ProtobufSchema> {
        let registry = &self.registry;
        self.schemas
            .fetch(registry, id, SchemaType::Protobuf, |s| {
                ProtobufSchema::resolve(registry, s)
            })
            .await
    }

    /// The schema id in `data` when its schema is not cached yet; `None` when it is or when
    /// `data` is not framed.
    pub fn uncached_id(&self, data: &[u8]) -> Option<i32> {
        self.schemas.uncached_id(data)
    }

    fn decode_with(schema: &ProtobufSchema, id: i32, topic: &str, rest: &[u8]) -> Result<DynamicMessage> {
        let (indexes, payload) = wire::decode_message_indexes(rest).map_err(|e| e.with_schema_id(id))?;
        let desc = schema.message_at(&indexes).map_err(|e| e.with_schema_id(id))?;
        DynamicMessage::decode(desc.clone(), payload).map_err(|e| {
            Error::serialization(format!("the payload is not a {} (topic {topic})", desc.full_name()))
                .with_schema_id(id)
                .with_source(e)
        })
    }

    /// A framed key or value as a dynamic message of the writer's schema.
    pub async fn decode_dynamic(&self, topic: &str, data: &[u8]) -> Result<DynamicMessage> {
        let framed = wire::decode(data)?;
        let schema = self.schema(framed.schema_id).await?;
        Self::decode_with(&schema, framed.schema_id, topic, framed.payload)
    }

    /// [`ProtobufDeserializer::decode_dynamic`] without waiting: the schema must be cached
    /// (see [`ProtobufDeserializer::uncached_id`], [`ProtobufDeserializer::schema`]).
    pub fn decode_dynamic_cached(&self, topic: &str, data: &[u8]) -> Result<DynamicMessage> {
        let framed = wire::decode(data)?;
        let schema = self.schemas.cached(&framed)?;
        Self::decode_with(&schema, framed.schema_id, topic, framed.payload)
    }

    /// A framed key or value as a prost-generated message `M` (the writer's schema is checked
    /// to be Protobuf; the payload is decoded as `M`).
    pub async fn decode<M: prost::Message + Default>(&self, topic: &str, data: &[u8]) -> Result<M> {
        let framed = wire::decode(data)?;
        let id = framed.schema_id;
        self.schema(id).await?;
        let (_, payload) = wire::decode_message_indexes(framed.payload).map_err(|e| e.with_schema_id(id))?;
        M::decode(payload).map_err(|e| {
            Error::serialization(format!(
                "the payload is not a {} (topic {topic})",
                std::any::type_name::<M>()
            ))
            .with_schema_id(id)
            .with_source(e)
        })
    }
}

#[cfg(feature = "client")]
mod client_traits {
    use bytes::Bytes;
    use strom_client::serialization::{Deserializer, Field, Serializer};

    use super::{DynamicMessage, ProtobufDeserializer, ProtobufSerializer};

    impl Serializer<DynamicMessage> for ProtobufSerializer {
        async fn serialize(&self, topic: &str, field: Field, value: &DynamicMessage) -> strom_client::Result<Bytes> {
            Ok(Bytes::from(
                self.encode_dynamic(topic, field == Field::Key, value).await?,
            ))
        }
    }

    impl Deserializer<DynamicMessage> for ProtobufDeserializer {
        async fn deserialize(&self, topic: &str, _: Field, data: &Bytes) -> strom_client::Result<DynamicMessage> {
            Ok(self.decode_dynamic(topic, data).await?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHOP: &str = r#"syntax = "proto3";
package shop;
import "google/protobuf/timestamp.proto";
import "common.proto";
message Order {
  int64 id = 1;
  string item = 2;
  common.Money price = 3;
  google.protobuf.Timestamp at = 4;
  message Line { string sku = 1; }
  repeated Line lines = 5;
}
message Refund { int64 order = 1; }
"#;
    const COMMON: &str = "syntax = \"proto3\"; package common; message Money { int64 cents = 1; string currency = 2; }";

    fn shop() -> ProtobufSchema {
        let schema = Schema::new(SchemaType::Protobuf, SHOP).reference("common.proto", "common", 1);
        ProtobufSchema::with_references(
            schema,
            &[("common.proto".into(), Schema::new(SchemaType::Protobuf, COMMON))],
        )
        .unwrap()
    }

    #[test]
    fn indexes_name_messages_as_confluent_does() {
        let s = shop();
        let line = s.message("shop.Order.Line").unwrap();
        assert_eq!(s.indexes_of(&line).unwrap(), [0, 0]);
        assert_eq!(s.indexes_of(&s.message("shop.Refund").unwrap()).unwrap(), [1]);
        assert_eq!(s.message_at(&[0, 0]).unwrap().full_name(), "shop.Order.Line");
        assert_eq!(s.first_message().unwrap().full_name(), "shop.Order");
        assert!(s.message_at(&[2]).is_err());
        // An imported message is not in the schema's own file: no indexes for it.
        assert!(s.indexes_of(&s.message("common.Money").unwrap()).is_err());
    }

    #[test]
    fn base64_descriptors_read_like_text() {
        use prost::Message as _;
        let s = ProtobufSchema::parse(COMMON).unwrap();
        let file = s.pool().get_file_by_name(MAIN).unwrap();
        let mut proto = file.file_descriptor_proto().clone();
        proto.name = Some("common.proto".into());
        let b64 = base64::engine::general_purpose::STANDARD.encode(proto.encode_to_vec());
        let again = ProtobufSchema::parse(&b64).unwrap();
        assert_eq!(again.first_message().unwrap().full_name(), "common.Money");
        assert_eq!(
            ProtobufSchema::parse("message {").unwrap_err().kind(),
            ErrorKind::InvalidSchema
        );
        // An import that is not among the references.
        let e = ProtobufSchema::parse("syntax = \"proto3\"; import \"nope.proto\"; message A {}").unwrap_err();
        assert!(e.to_string().contains("nope.proto"), "{e}");
    }
}
