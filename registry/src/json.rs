//! JSON Schema: serde values written as JSON text in the Confluent wire format, checked
//! against the registered schema (Confluent's `KafkaJsonSchemaSerializer` /
//! `KafkaJsonSchemaDeserializer`; the `jsonschema` crate validates).
//!
//! The serializer always validates: a value its schema does not allow is an
//! [`ErrorKind::Serialization`] error listing what is wrong, and nothing is written. The
//! deserializer validates when `json.fail.invalid.schema=true` (Confluent's setting; off by
//! default, as there).
//!
//! ```no_run
//! # async fn demo() -> strom_registry::Result<()> {
//! use strom_registry::json::{JsonSchema, JsonSchemaDeserializer, JsonSchemaSerializer};
//! use strom_registry::{RegistryConfig, SchemaRegistryClient};
//!
//! #[derive(serde::Serialize, serde::Deserialize)]
//! struct Order { id: i64, item: String }
//!
//! let registry = SchemaRegistryClient::new(RegistryConfig::new("http://127.0.0.1:8081")?)?;
//! let schema = JsonSchema::parse(r#"{"title":"Order","type":"object",
//!     "properties":{"id":{"type":"integer"},"item":{"type":"string"}},"required":["id"]}"#)?;
//! let bytes = JsonSchemaSerializer::<Order>::new(registry.clone(), schema)
//!     .encode("orders", false, &Order { id: 1, item: "tea".into() })
//!     .await?;
//! let order: Order = JsonSchemaDeserializer::<Order>::new(registry).decode("orders", &bytes).await?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::cache::{PerTopic, Writers};
use crate::client::{Schema, SchemaRegistryClient, SchemaType};
use crate::error::{Error, ErrorKind, Result};
use crate::wire;

/// How many validation errors a message lists.
const ERRORS_SHOWN: usize = 5;

/// A parsed JSON Schema with the schemas it references, ready to validate.
#[derive(Clone)]
pub struct JsonSchema {
    inner: Arc<Parsed>,
}

struct Parsed {
    registry: Schema,
    validator: jsonschema::Validator,
    title: Option<String>,
}

impl std::fmt::Debug for JsonSchema {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchema")
            .field("title", &self.inner.title)
            .finish_non_exhaustive()
    }
}

/// Serves the referenced schemas to the validator by their reference names (a `$ref` to
/// `address.json` arrives as `json-schema:///address.json`), and nothing else: a schema
/// never makes the client fetch a URL.
struct References(HashMap<String, serde_json::Value>);

impl jsonschema::Retrieve for References {
    fn retrieve(
        &self,
        uri: &jsonschema::Uri<String>,
    ) -> std::result::Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        let full = uri.as_str();
        let path = uri.path().as_str().trim_start_matches('/');
        let last = path.rsplit('/').next().unwrap_or(path);
        [full, path, last]
            .iter()
            .find_map(|k| self.0.get(*k).cloned())
            .ok_or_else(|| format!("{full} is not among the schema's references").into())
    }
}

impl JsonSchema {
    /// Parses a JSON Schema without references.
    pub fn parse(text: &str) -> Result<Self> {
        Self::with_references(Schema::new(SchemaType::Json, text), &[])
    }

    /// Parses `schema` with the schemas it references (by reference name, each before those
    /// that refer to it, as [`SchemaRegistryClient::resolve_references`] gives them).
    pub fn with_references(schema: Schema, referenced: &[(String, Schema)]) -> Result<Self> {
        if schema.schema_type != SchemaType::Json {
            return Err(Error::new(
                ErrorKind::InvalidSchema,
                format!("a {:?} schema is not a JSON Schema", schema.schema_type),
            ));
        }
        let invalid = |what: &str, e: &dyn std::fmt::Display| {
            Error::new(
                ErrorKind::InvalidSchema,
                format!("{what} is not a valid JSON Schema: {e}"),
            )
        };
        let value: serde_json::Value = serde_json::from_str(&schema.schema).map_err(|e| invalid("the schema", &e))?;
        let mut refs = HashMap::new();
        for (name, s) in referenced {
            let v: serde_json::Value =
                serde_json::from_str(&s.schema).map_err(|e| invalid(&format!("reference {name}"), &e))?;
            refs.insert(name.clone(), v);
        }
        let validator = jsonschema::options()
            .with_retriever(References(refs))
            .build(&value)
            .map_err(|e| invalid("the schema", &e))?;
        let title = value.get("title").and_then(|t| t.as_str()).map(str::to_owned);
        Ok(JsonSchema {
            inner: Arc::new(Parsed {
                registry: schema,
                validator,
                title,
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

    /// The schema's `title`, which the record subject name strategies use.
    pub fn title(&self) -> Option<&str> {
        self.inner.title.as_deref()
    }

    /// The schema as the registry stores it.
    pub fn registry_schema(&self) -> &Schema {
        &self.inner.registry
    }

    /// Checks `value` against the schema; the error lists (up to five of) the violations
    /// with where they are.
    pub fn validate(&self, value: &serde_json::Value) -> Result<()> {
        let mut errors = self.inner.validator.iter_errors(value).peekable();
        if errors.peek().is_none() {
            return Ok(());
        }
        let mut shown = Vec::new();
        let mut total = 0;
        for e in errors {
            total += 1;
            if shown.len() < ERRORS_SHOWN {
                let at = e.instance_path().as_str();
                shown.push(format!("{}: {e}", if at.is_empty() { "/" } else { at }));
            }
        }
        let more = if total > shown.len() {
            format!(" (and {} more)", total - shown.len())
        } else {
            String::new()
        };
        Err(Error::serialization(format!(
            "the value does not match its JSON Schema: {}{more}",
            shown.join("; ")
        )))
    }
}

/// A Confluent-compatible JSON Schema serializer of serde values `T`.
pub struct JsonSchemaSerializer<T: ?Sized> {
    registry: SchemaRegistryClient,
    schema: JsonSchema,
    found: Arc<PerTopic<JsonSchema>>,
    _t: PhantomData<fn(&T)>,
}

impl<T: ?Sized> Clone for JsonSchemaSerializer<T> {
    fn clone(&self) -> Self {
        JsonSchemaSerializer {
            registry: self.registry.clone(),
            schema: self.schema.clone(),
            found: self.found.clone(),
            _t: PhantomData,
        }
    }
}

impl<T: ?Sized> std::fmt::Debug for JsonSchemaSerializer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchemaSerializer")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl<T: Serialize + ?Sized> JsonSchemaSerializer<T> {
    /// A serializer writing with `schema` under the registry client's settings
    /// (`auto.register.schemas`, `use.latest.version`, the subject name strategies).
    pub fn new(registry: SchemaRegistryClient, schema: JsonSchema) -> Self {
        JsonSchemaSerializer {
            registry,
            schema,
            found: Arc::new(PerTopic::new()),
            _t: PhantomData,
        }
    }

    async fn writer(&self, topic: &str, is_key: bool) -> Result<(i32, JsonSchema)> {
        let registry = &self.registry;
        let own = (self.schema.registry_schema(), &self.schema);
        self.found
            .writer(registry, topic, is_key, self.schema.title(), own, |s| {
                JsonSchema::resolve(registry, s)
            })
            .await
    }

    /// `value` as JSON in the Confluent wire format, after checking it against the schema.
    /// The JSON is serde's compact text in the type's field order (as Confluent's Python
    /// serializer writes a dict).
    pub async fn encode(&self, topic: &str, is_key: bool, value: &T) -> Result<Vec<u8>> {
        let (id, schema) = self.writer(topic, is_key).await?;
        let as_value = serde_json::to_value(value)
            .map_err(|e| Error::serialization("the value does not serialize as JSON").with_source(e))?;
        schema.validate(&as_value).map_err(|e| e.with_schema_id(id))?;
        let mut out = Vec::with_capacity(64);
        wire::encode_header(id, &mut out);
        serde_json::to_writer(&mut out, value)
            .map_err(|e| Error::serialization("the value does not serialize as JSON").with_source(e))?;
        Ok(out)
    }
}

impl JsonSchemaSerializer<serde_json::Value> {
    /// JSON text as it is (its bytes, key order and spacing kept), after checking it is JSON
    /// and matches the schema: what a tool reading JSON lines writes.
    pub async fn encode_text(&self, topic: &str, is_key: bool, text: &[u8]) -> Result<Vec<u8>> {
        let (id, schema) = self.writer(topic, is_key).await?;
        let value: serde_json::Value =
            serde_json::from_slice(text).map_err(|e| Error::serialization("not JSON").with_source(e))?;
        schema.validate(&value).map_err(|e| e.with_schema_id(id))?;
        let mut out = Vec::with_capacity(wire::HEADER_LEN + text.len());
        wire::encode_header(id, &mut out);
        out.extend_from_slice(text);
        Ok(out)
    }
}

/// A Confluent-compatible JSON Schema deserializer into serde values `T`
/// (`serde_json::Value` for any JSON).
pub struct JsonSchemaDeserializer<T> {
    registry: SchemaRegistryClient,
    schemas: Writers<JsonSchema>,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for JsonSchemaDeserializer<T> {
    fn clone(&self) -> Self {
        JsonSchemaDeserializer {
            registry: self.registry.clone(),
            schemas: self.schemas.clone(),
            _t: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for JsonSchemaDeserializer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonSchemaDeserializer").finish_non_exhaustive()
    }
}

impl<T: DeserializeOwned> JsonSchemaDeserializer<T> {
    /// A deserializer; it validates when the registry client's config has
    /// `json.fail.invalid.schema=true`.
    pub fn new(registry: SchemaRegistryClient) -> Self {
        JsonSchemaDeserializer {
            registry,
            schemas: Writers::new(),
            _t: PhantomData,
        }
    }

    async fn schema(&self, id: i32) -> Result<JsonSchema> {
        let registry = &self.registry;
        self.schemas
            .fetch(registry, id, SchemaType::Json, |s| JsonSchema::resolve(registry, s))
            .await
    }

    /// The schema id in `data` when its schema is not cached yet (what
    /// [`JsonSchemaDeserializer::decode_cached`] needs fetched first with
    /// [`JsonSchemaDeserializer::fetch`]); `None` when it is, or when `data` is not framed.
    pub fn uncached_id(&self, data: &[u8]) -> Option<i32> {
        self.schemas.uncached_id(data)
    }

    /// Fetches (and caches) the schema with this id.
    pub async fn fetch(&self, id: i32) -> Result<()> {
        self.schema(id).await.map(drop)
    }

    /// [`JsonSchemaDeserializer::decode`] without waiting: the schema must be cached.
    pub fn decode_cached(&self, topic: &str, data: &[u8]) -> Result<T> {
        let framed = wire::decode(data)?;
        let schema = self.schemas.cached(&framed)?;
        self.decode_with(&schema, topic, framed.schema_id, framed.payload)
    }

    fn decode_with(&self, schema: &JsonSchema, topic: &str, id: i32, payload: &[u8]) -> Result<T> {
        let bad_json = |e: serde_json::Error| {
            Error::serialization(format!(
                "the payload is not JSON of {} (topic {topic})",
                std::any::type_name::<T>()
            ))
            .with_schema_id(id)
            .with_source(e)
        };
        if self.registry.config().json_fail_invalid_schema {
            let v: serde_json::Value = serde_json::from_slice(payload).map_err(bad_json)?;
            schema.validate(&v).map_err(|e| e.with_schema_id(id))?;
            return serde_json::from_value(v).map_err(bad_json);
        }
        serde_json::from_slice(payload).map_err(bad_json)
    }

    /// A framed key or value as a `T`. `topic` is for messages only.
    pub async fn decode(&self, topic: &str, data: &[u8]) -> Result<T> {
        let framed = wire::decode(data)?;
        let schema = self.schema(framed.schema_id).await?;
        self.decode_with(&schema, topic, framed.schema_id, framed.payload)
    }
}

#[cfg(feature = "client")]
mod client_traits {
    use bytes::Bytes;
    use serde::de::DeserializeOwned;
    use serde::Serialize;
    use strom_client::serialization::{Deserializer, Field, Serializer};

    use super::{JsonSchemaDeserializer, JsonSchemaSerializer};

    impl<T: Serialize + Sync + ?Sized> Serializer<T> for JsonSchemaSerializer<T> {
        async fn serialize(&self, topic: &str, field: Field, value: &T) -> strom_client::Result<Bytes> {
            Ok(Bytes::from(self.encode(topic, field == Field::Key, value).await?))
        }
    }

    impl<T: DeserializeOwned + Send> Deserializer<T> for JsonSchemaDeserializer<T> {
        async fn deserialize(&self, topic: &str, _: Field, data: &Bytes) -> strom_client::Result<T> {
            Ok(self.decode(topic, data).await?)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_lists_what_is_wrong_and_references_resolve() {
        let s = JsonSchema::parse(
            r#"{"title":"T","type":"object","properties":{"n":{"type":"integer","minimum":0},"s":{"type":"string"}},"required":["n"]}"#,
        )
        .unwrap();
        assert_eq!(s.title(), Some("T"));
        s.validate(&serde_json::json!({"n": 1, "s": "x"})).unwrap();
        let e = s.validate(&serde_json::json!({"n": -1, "s": 5})).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Serialization);
        assert!(e.to_string().contains("/n") && e.to_string().contains("/s"), "{e}");

        let address = Schema::new(
            SchemaType::Json,
            r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#,
        );
        let person = Schema::new(
            SchemaType::Json,
            r#"{"type":"object","properties":{"home":{"$ref":"address.json"}}}"#,
        )
        .reference("address.json", "address", 1);
        let p = JsonSchema::with_references(person, &[("address.json".into(), address)]).unwrap();
        p.validate(&serde_json::json!({"home": {"city": "Oslo"}})).unwrap();
        assert!(p.validate(&serde_json::json!({"home": {}})).is_err());
        assert_eq!(JsonSchema::parse("{").unwrap_err().kind(), ErrorKind::InvalidSchema);
        assert_eq!(
            JsonSchema::parse(r#"{"type": 12}"#).unwrap_err().kind(),
            ErrorKind::InvalidSchema
        );
    }
}
