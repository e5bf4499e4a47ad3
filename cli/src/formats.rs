//! Key and value formats of `strom consume` and `strom produce` (`--key-format`,
//! `--value-format`), and `strom registry` for the schema registry itself.
//!
//! `avro` is the Confluent wire format through a schema registry (`--schema-registry URL`, or
//! `-X schema.registry.url=URL` with the other registry properties, or
//! `$STROM_SCHEMA_REGISTRY_URL`): consume prints each record as JSON (kcat's `-s avro -r URL`),
//! produce reads JSON lines, encodes them with `--value-schema-file` and registers the schema
//! (`auto.register.schemas`, on by default, as in Confluent's serializers).

use std::borrow::Cow;
use std::path::PathBuf;

use bytes::Bytes;
use strom_registry::avro::{AvroDeserializer, AvroSchema, AvroSerializer, Value};
use strom_registry::json::{JsonSchema, JsonSchemaDeserializer, JsonSchemaSerializer};
use strom_registry::protobuf::{DynamicMessage, ProtobufDeserializer, ProtobufSchema, ProtobufSerializer};
use strom_registry::{CompatibilityLevel, RegistryConfig, Schema, SchemaRegistryClient, SchemaType};

use crate::out::outln;
use crate::{Failure, Property};

/// Whether the CLI routes `key` to the schema registry client (not to the Kafka client).
pub(crate) fn is_registry_key(key: &str) -> bool {
    RegistryConfig::is_known_key(key)
}

/// How a key or value is read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// The bytes as they are.
    Bytes,
    /// UTF-8 text (checked).
    String,
    /// JSON text (checked; printed compact).
    Json,
    /// Avro in the Confluent wire format, through the schema registry; printed as JSON.
    Avro,
    /// JSON Schema in the Confluent wire format, through the schema registry (checked
    /// against the schema on produce).
    JsonSchema,
    /// Protobuf in the Confluent wire format, through the schema registry; printed and read
    /// as Protobuf's JSON mapping.
    Protobuf,
}

impl Format {
    pub(crate) fn needs_registry(self) -> bool {
        matches!(self, Format::Avro | Format::JsonSchema | Format::Protobuf)
    }
}

/// Registry settings of a command: `--schema-registry` and the registry's -X properties.
#[derive(Debug, Clone, Default, clap::Args)]
pub(crate) struct RegistryArgs {
    /// Schema registry URL(s), comma-separated (or -X schema.registry.url=..., or
    /// $STROM_SCHEMA_REGISTRY_URL). Registry properties (basic.auth.user.info,
    /// auto.register.schemas, value.subject.name.strategy, ...) go in -X or -F.
    #[arg(long = "schema-registry", value_name = "URL")]
    pub(crate) url: Option<String>,
}

/// The registry client from the environment, -X/-F registry properties and the flag (each
/// beating the one before).
pub(crate) fn registry_client(args: &RegistryArgs, props: &[Property]) -> Result<SchemaRegistryClient, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Ok(u) = std::env::var("STROM_SCHEMA_REGISTRY_URL") {
        if !u.trim().is_empty() {
            pairs.push(("schema.registry.url".into(), u));
        }
    }
    pairs.extend(
        props
            .iter()
            .filter(|p| RegistryConfig::is_known_key(&p.key))
            .map(|p| (p.key.clone(), p.value.clone())),
    );
    if let Some(u) = &args.url {
        pairs.push(("schema.registry.url".into(), u.clone()));
    }
    if !pairs.iter().any(|(k, _)| k == "schema.registry.url") {
        return Err(
            "the avro, json-schema and protobuf formats need a schema registry: give --schema-registry URL (or -X schema.registry.url=URL, or $STROM_SCHEMA_REGISTRY_URL)"
                .into(),
        );
    }
    // Later settings of a key beat earlier ones.
    let mut last: Vec<(String, String)> = Vec::new();
    for (k, v) in pairs {
        last.retain(|(k2, _)| *k2 != k);
        last.push((k, v));
    }
    let config = RegistryConfig::from_properties(last.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .map_err(|e| e.to_string())?;
    SchemaRegistryClient::new(config).map_err(|e| e.to_string())
}

/// Turns fetched keys or values into the text `strom consume` prints.
pub(crate) struct Decoder {
    format: Format,
    avro: Option<AvroDeserializer>,
    json: Option<JsonSchemaDeserializer<serde_json::Value>>,
    protobuf: Option<ProtobufDeserializer>,
}

impl Decoder {
    pub(crate) fn new(format: Format, registry: Option<&SchemaRegistryClient>) -> Self {
        Decoder {
            format,
            avro: (format == Format::Avro)
                .then(|| registry.map(|r| AvroDeserializer::new(r.clone(), None)))
                .flatten(),
            json: (format == Format::JsonSchema)
                .then(|| registry.map(|r| JsonSchemaDeserializer::new(r.clone())))
                .flatten(),
            protobuf: (format == Format::Protobuf)
                .then(|| registry.map(|r| ProtobufDeserializer::new(r.clone())))
                .flatten(),
        }
    }

    /// The text for `data` (the bytes themselves for `bytes`); an error says why it does not
    /// decode (the caller names the record).
    pub(crate) async fn decode<'a>(&self, topic: &str, data: &'a Bytes) -> Result<Cow<'a, [u8]>, String> {
        match self.format {
            Format::Bytes => Ok(Cow::Borrowed(&data[..])),
            Format::String => std::str::from_utf8(data)
                .map(|_| Cow::Borrowed(&data[..]))
                .map_err(|e| format!("not UTF-8: {e}")),
            Format::Json => {
                let v: serde_json::Value = serde_json::from_slice(data).map_err(|e| format!("not JSON: {e}"))?;
                Ok(Cow::Owned(serde_json::to_vec(&v).map_err(|e| e.to_string())?))
            }
            Format::Avro => {
                let Some(de) = &self.avro else {
                    return Err("no schema registry".into());
                };
                let v = de.decode_value(topic, data).await.map_err(|e| e.to_string())?;
                let json = avro_to_json(v)?;
                Ok(Cow::Owned(serde_json::to_vec(&json).map_err(|e| e.to_string())?))
            }
            Format::JsonSchema => {
                let Some(de) = &self.json else {
                    return Err("no schema registry".into());
                };
                let v = de.decode(topic, data).await.map_err(|e| e.to_string())?;
                Ok(Cow::Owned(serde_json::to_vec(&v).map_err(|e| e.to_string())?))
            }
            Format::Protobuf => {
                let Some(de) = &self.protobuf else {
                    return Err("no schema registry".into());
                };
                let m = de.decode_dynamic(topic, data).await.map_err(|e| e.to_string())?;
                Ok(Cow::Owned(serde_json::to_vec(&m).map_err(|e| e.to_string())?))
            }
        }
    }
}

/// An Avro value as plain JSON: records and maps as objects, unions as their branch's value
/// (not Avro's JSON encoding `{"type": value}`), bytes and fixed as arrays of numbers.
fn avro_to_json(v: Value) -> Result<serde_json::Value, String> {
    serde_json::Value::try_from(v).map_err(|e| format!("the Avro value has no JSON form: {e}"))
}

/// Turns input lines into keys or values for `strom produce`.
pub(crate) struct Encoder {
    format: Format,
    avro: Option<(AvroSerializer, AvroSchema)>,
    json: Option<JsonSchemaSerializer<serde_json::Value>>,
    protobuf: Option<ProtobufSerializer>,
    is_key: bool,
}

impl Encoder {
    /// `schema_file` is required for `avro` (and refused for the other formats).
    pub(crate) fn new(
        format: Format,
        schema_file: Option<&PathBuf>,
        message: Option<&str>,
        registry: Option<&SchemaRegistryClient>,
        is_key: bool,
        flag: &str,
    ) -> Result<Self, String> {
        let read =
            |path: &PathBuf| std::fs::read_to_string(path).map_err(|e| format!("{flag} {}: {e}", path.display()));
        let registry_for = |what: &str| {
            registry.ok_or_else(|| format!("the {what} format needs a schema registry (--schema-registry URL)"))
        };
        let (mut avro, mut json, mut protobuf) = (None, None, None);
        if message.is_some() && format != Format::Protobuf {
            return Err(format!("a message name is for the protobuf format (with {flag})"));
        }
        match (format, schema_file) {
            (Format::Avro, Some(path)) => {
                let schema = AvroSchema::parse(&read(path)?).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
                avro = Some((
                    AvroSerializer::new(registry_for("avro")?.clone(), schema.clone()),
                    schema,
                ));
            }
            (Format::JsonSchema, Some(path)) => {
                let schema = JsonSchema::parse(&read(path)?).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
                json = Some(JsonSchemaSerializer::new(registry_for("json-schema")?.clone(), schema));
            }
            (Format::Protobuf, Some(path)) => {
                let schema =
                    ProtobufSchema::parse(&read(path)?).map_err(|e| format!("{flag} {}: {e}", path.display()))?;
                let m = match message {
                    Some(name) => schema.message(name),
                    None => schema.first_message(),
                }
                .map_err(|e| format!("{flag} {}: {e}", path.display()))?;
                protobuf = Some(
                    ProtobufSerializer::new(registry_for("protobuf")?.clone(), schema, m).map_err(|e| e.to_string())?,
                );
            }
            (Format::Protobuf, None) => {
                return Err(format!(
                "the protobuf format needs {flag} FILE (a .proto file, imports from Google's well-known types only)"
            ))
            }
            (Format::Avro, None) => return Err(format!("the avro format needs {flag} FILE (an Avro schema, JSON)")),
            (Format::JsonSchema, None) => {
                return Err(format!("the json-schema format needs {flag} FILE (a JSON Schema)"))
            }
            (_, Some(_)) => return Err(format!("{flag} is for the avro, json-schema and protobuf formats")),
            (_, None) => {}
        }
        Ok(Encoder {
            format,
            avro,
            json,
            protobuf,
            is_key,
        })
    }

    /// The bytes for one input (a line, or its key part).
    pub(crate) async fn encode(&self, topic: &str, text: &[u8]) -> Result<Bytes, String> {
        match self.format {
            Format::Bytes => Ok(Bytes::copy_from_slice(text)),
            Format::String => std::str::from_utf8(text)
                .map(|_| Bytes::copy_from_slice(text))
                .map_err(|e| format!("not UTF-8: {e}")),
            Format::Json => {
                let _: serde_json::Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
                Ok(Bytes::copy_from_slice(text))
            }
            Format::Avro => {
                let Some((ser, schema)) = &self.avro else {
                    return Err("no Avro schema".into());
                };
                let json: serde_json::Value = serde_json::from_slice(text).map_err(|e| format!("not JSON: {e}"))?;
                let value = Value::from(json)
                    .resolve(schema.schema())
                    .map_err(|e| format!("the JSON does not match the Avro schema: {e}"))?;
                let bytes = ser
                    .encode_value(topic, self.is_key, &value)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Bytes::from(bytes))
            }
            Format::JsonSchema => {
                let Some(ser) = &self.json else {
                    return Err("no JSON Schema".into());
                };
                let bytes = ser
                    .encode_text(topic, self.is_key, text)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Bytes::from(bytes))
            }
            Format::Protobuf => {
                let Some(ser) = &self.protobuf else {
                    return Err("no Protobuf schema".into());
                };
                let mut de = serde_json::Deserializer::from_slice(text);
                let m = DynamicMessage::deserialize(ser.message().clone(), &mut de)
                    .and_then(|m| de.end().map(|()| m))
                    .map_err(|e| format!("the JSON is not a {}: {e}", ser.message().full_name()))?;
                let bytes = ser
                    .encode_dynamic(topic, self.is_key, &m)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(Bytes::from(bytes))
            }
        }
    }
}

/// `strom registry ...`: the schema registry's subjects, versions, schemas and settings.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum RegistryAction {
    /// List the subjects.
    Subjects,
    /// List a subject's versions.
    Versions {
        /// Subject.
        subject: String,
    },
    /// Print a subject's schema (latest, or VERSION) as the registry's JSON.
    Get {
        /// Subject.
        subject: String,
        /// Version (default: latest).
        version: Option<i32>,
    },
    /// Print the schema with this id.
    Id {
        /// Schema id.
        id: i32,
    },
    /// Register a schema file under a subject; prints its id.
    Register {
        /// Subject.
        subject: String,
        /// Schema file.
        file: PathBuf,
        /// avro, protobuf or json (the registry's schemaType).
        #[arg(long = "type", default_value = "avro")]
        schema_type: String,
    },
    /// Whether a schema file is compatible with a subject's latest version (exit 1 if not,
    /// with the registry's reasons).
    Compat {
        /// Subject.
        subject: String,
        /// Schema file.
        file: PathBuf,
        /// avro, protobuf or json.
        #[arg(long = "type", default_value = "avro")]
        schema_type: String,
    },
    /// Print (or with --set, change) the compatibility level of a subject, or the global one.
    Config {
        /// Subject (default: the global setting).
        subject: Option<String>,
        /// NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL,
        /// FULL_TRANSITIVE.
        #[arg(long)]
        set: Option<String>,
    },
    /// Delete a subject (soft; --permanent afterwards removes it for good).
    Delete {
        /// Subject.
        subject: String,
        /// Also delete it permanently.
        #[arg(long)]
        permanent: bool,
    },
}

fn schema_type(s: &str) -> Result<SchemaType, String> {
    match s.to_ascii_lowercase().as_str() {
        "avro" => Ok(SchemaType::Avro),
        "protobuf" => Ok(SchemaType::Protobuf),
        "json" => Ok(SchemaType::Json),
        _ => Err(format!("--type {s}: expected avro, protobuf or json")),
    }
}

fn read_schema(file: &PathBuf, t: &str) -> Result<Schema, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(Schema::new(schema_type(t)?, text))
}

fn level(s: &str) -> Result<CompatibilityLevel, String> {
    serde_json::from_value(serde_json::Value::String(s.to_ascii_uppercase())).map_err(|_| {
        format!("--set {s}: expected NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL or FULL_TRANSITIVE")
    })
}

fn show(s: &Schema) -> Result<String, String> {
    serde_json::to_string(s).map_err(|e| e.to_string())
}

/// Runs a `strom registry` action.
pub(crate) async fn registry(args: RegistryArgs, props: Vec<Property>, action: RegistryAction) -> Result<(), Failure> {
    let r = registry_client(&args, &props)?;
    let e = |e: strom_registry::Error| Failure::Error(e.to_string());
    match action {
        RegistryAction::Subjects => {
            for s in r.subjects().await.map_err(e)? {
                outln!("{s}")?;
            }
        }
        RegistryAction::Versions { subject } => {
            for v in r.versions(&subject).await.map_err(e)? {
                outln!("{v}")?;
            }
        }
        RegistryAction::Get { subject, version } => {
            let s = match version {
                Some(v) => r.version(&subject, v).await,
                None => r.latest(&subject).await,
            }
            .map_err(e)?;
            outln!(
                "{{\"subject\":{},\"version\":{},\"id\":{},\"schema\":{}}}",
                serde_json::Value::String(s.subject.clone()),
                s.version,
                s.id,
                show(&s.schema)?
            )?;
        }
        RegistryAction::Id { id } => {
            let s = r.schema_by_id(id).await.map_err(e)?;
            outln!("{}", show(&s)?)?;
        }
        RegistryAction::Register {
            subject,
            file,
            schema_type,
        } => {
            let id = r
                .register(&subject, &read_schema(&file, &schema_type)?)
                .await
                .map_err(e)?;
            outln!("{id}")?;
        }
        RegistryAction::Compat {
            subject,
            file,
            schema_type,
        } => {
            let c = r
                .test_compatibility(&subject, None, &read_schema(&file, &schema_type)?)
                .await
                .map_err(e)?;
            if c.is_compatible {
                outln!("compatible")?;
            } else {
                outln!("incompatible")?;
                for m in &c.messages {
                    outln!("  {m}")?;
                }
                return Err(Failure::Error(format!(
                    "{} is not compatible with {subject}",
                    file.display()
                )));
            }
        }
        RegistryAction::Config { subject, set } => match set {
            Some(l) => {
                r.set_compatibility(subject.as_deref(), level(&l)?).await.map_err(e)?;
                outln!("{}", l.to_ascii_uppercase())?;
            }
            None => {
                let l = r.compatibility(subject.as_deref()).await.map_err(e)?;
                outln!(
                    "{}",
                    serde_json::to_value(l)
                        .map_err(|x| x.to_string())?
                        .as_str()
                        .unwrap_or_default()
                )?;
            }
        },
        RegistryAction::Delete { subject, permanent } => {
            for v in r.delete_subject(&subject, permanent).await.map_err(e)? {
                outln!("{v}")?;
            }
        }
    }
    Ok(())
}
