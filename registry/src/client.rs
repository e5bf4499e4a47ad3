//! The registry's REST API (Confluent's, which Apicurio serves under `/apis/ccompat/v7`):
//! requests with failover across URLs and bounded retries, and caches so a serializer asks
//! the registry once per schema, not once per record.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use hyper::Method;
use serde::{Deserialize, Serialize};

use crate::config::{BasicAuth, RegistryConfig};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{BaseUrl, Endpoint};

/// A schema's format (`schemaType`; absent means Avro).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum SchemaType {
    /// Apache Avro.
    #[default]
    Avro,
    /// Protocol Buffers.
    Protobuf,
    /// JSON Schema.
    Json,
}

/// A schema's reference to another registered schema (Avro named types, Protobuf imports,
/// JSON `$ref`s): `name` is how the schema refers to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SchemaReference {
    /// The name the referring schema uses (an Avro full name, a `.proto` import path, a URL).
    pub name: String,
    /// The subject it is registered under.
    pub subject: String,
    /// Its version in that subject.
    pub version: i32,
}

/// A schema as the registry stores it: its text, format and references.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Schema {
    /// The schema's format.
    #[serde(rename = "schemaType", default, skip_serializing_if = "is_avro")]
    pub schema_type: SchemaType,
    /// The schema text (Avro JSON, a `.proto` file, JSON Schema).
    pub schema: String,
    /// The schemas it refers to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<SchemaReference>,
}

fn is_avro(t: &SchemaType) -> bool {
    *t == SchemaType::Avro
}

impl Schema {
    /// A schema of `schema_type` without references.
    pub fn new(schema_type: SchemaType, text: impl Into<String>) -> Self {
        Schema {
            schema_type,
            schema: text.into(),
            references: Vec::new(),
        }
    }

    /// Adds a reference.
    pub fn reference(mut self, name: impl Into<String>, subject: impl Into<String>, version: i32) -> Self {
        self.references.push(SchemaReference {
            name: name.into(),
            subject: subject.into(),
            version,
        });
        self
    }
}

/// A schema registered under a subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredSchema {
    /// Its id (what the wire format carries).
    pub id: i32,
    /// The subject.
    pub subject: String,
    /// Its version in the subject.
    pub version: i32,
    /// The schema.
    pub schema: Schema,
}

#[derive(Deserialize)]
struct VersionBody {
    subject: String,
    id: i32,
    version: i32,
    schema: String,
    #[serde(rename = "schemaType", default)]
    schema_type: SchemaType,
    #[serde(default)]
    references: Vec<SchemaReference>,
}

impl From<VersionBody> for RegisteredSchema {
    fn from(b: VersionBody) -> Self {
        RegisteredSchema {
            id: b.id,
            subject: b.subject,
            version: b.version,
            schema: Schema {
                schema_type: b.schema_type,
                schema: b.schema,
                references: b.references,
            },
        }
    }
}

/// A compatibility level (`compatibilityLevel` of `/config`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatibilityLevel {
    /// No check.
    None,
    /// The new schema reads data written with the last one.
    Backward,
    /// ... with all earlier ones.
    BackwardTransitive,
    /// The last schema reads data written with the new one.
    Forward,
    /// ... all earlier ones do.
    ForwardTransitive,
    /// Both, with the last one.
    Full,
    /// Both, with all earlier ones.
    FullTransitive,
}

/// The answer of a compatibility check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compatibility {
    /// Whether the schema is compatible.
    pub is_compatible: bool,
    /// Why not, as the registry explains it (asked with `verbose=true`).
    pub messages: Vec<String>,
}

/// A map that stops growing at its capacity (`max.schemas.per.subject`): past it, the
/// oldest insertions go, so a stream of unknown ids cannot grow memory without bound.
struct Bounded<K, V> {
    map: HashMap<K, V>,
    order: std::collections::VecDeque<K>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone, V: Clone> Bounded<K, V> {
    fn new(capacity: usize) -> Self {
        Bounded {
            map: HashMap::new(),
            order: Default::default(),
            capacity,
        }
    }

    fn get<Q: Hash + Eq + ?Sized>(&self, k: &Q) -> Option<V>
    where
        K: std::borrow::Borrow<Q>,
    {
        self.map.get(k).cloned()
    }

    fn insert(&mut self, k: K, v: V) {
        if self.map.insert(k.clone(), v).is_none() {
            self.order.push_back(k);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    fn remove_where(&mut self, f: impl Fn(&K) -> bool) {
        self.map.retain(|k, _| !f(k));
        self.order.retain(|k| !f(k));
    }
}

struct Caches {
    by_id: Bounded<i32, Arc<Schema>>,
    id_by_schema: Bounded<(String, Schema), RegisteredSchemaId>,
    latest: Bounded<String, (RegisteredSchema, Instant)>,
    versions: Bounded<(String, i32), RegisteredSchema>,
}

#[derive(Clone, Copy)]
struct RegisteredSchemaId {
    id: i32,
    version: Option<i32>,
}

struct Inner {
    config: RegistryConfig,
    endpoints: Vec<Endpoint>,
    /// The endpoint that answered last: requests start there.
    current: AtomicUsize,
    auth: Vec<Option<String>>,
    caches: Mutex<Caches>,
}

/// A client of a Confluent-compatible schema registry (Java's `CachedSchemaRegistryClient`).
///
/// Cheap to clone (shared caches and connections). Every request fails over across the
/// configured URLs and retries retriable failures (unreachable, timed out, HTTP 408, 429, 502,
/// 503, 504) up to `max.retries` times with exponential backoff; every wait is bounded by
/// `http.connect.timeout.ms` and `http.read.timeout.ms`. Schemas by id, ids by schema, and
/// versions are cached for the client's life (a registered schema never changes); the
/// latest version for `latest.cache.ttl.sec`.
///
/// ```no_run
/// # async fn demo() -> strom_registry::Result<()> {
/// use strom_registry::{RegistryConfig, Schema, SchemaRegistryClient, SchemaType};
/// let registry = SchemaRegistryClient::new(RegistryConfig::new("http://127.0.0.1:8081")?)?;
/// let id = registry
///     .register("orders-value", &Schema::new(SchemaType::Avro, r#"{"type":"string"}"#))
///     .await?;
/// let schema = registry.schema_by_id(id).await?;
/// assert_eq!(schema.schema_type, SchemaType::Avro);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SchemaRegistryClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for SchemaRegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaRegistryClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Percent-encodes a path segment (subject names may hold `/`, spaces, `%`).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[derive(Deserialize)]
struct ErrorBody {
    error_code: Option<i32>,
    message: Option<String>,
}

fn retriable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 502 | 503 | 504)
}

impl SchemaRegistryClient {
    /// A client for `config` (validated). Connects lazily, on the first request.
    pub fn new(config: RegistryConfig) -> Result<Self> {
        config.validate()?;
        let urls = config
            .urls
            .iter()
            .map(|u| BaseUrl::parse(u))
            .collect::<Result<Vec<_>>>()?;
        let tls = if urls.iter().any(|u| u.tls) {
            Some(crate::http::tls_connector(config.truststore_pem.as_ref())?)
        } else {
            None
        };
        let engine = base64::engine::general_purpose::STANDARD;
        let auth = urls
            .iter()
            .map(|u| match (&config.basic_auth, &config.bearer) {
                (BasicAuth::UserInfo(ui), _) => Some(format!("Basic {}", engine.encode(ui))),
                (BasicAuth::Url, _) => u.user_info.as_ref().map(|ui| format!("Basic {}", engine.encode(ui))),
                (BasicAuth::None, Some(t)) => Some(format!("Bearer {}", t.0)),
                (BasicAuth::None, None) => None,
            })
            .collect();
        let cap = config.cache_capacity;
        Ok(SchemaRegistryClient {
            inner: Arc::new(Inner {
                endpoints: urls.into_iter().map(|u| Endpoint::new(u, tls.clone())).collect(),
                current: AtomicUsize::new(0),
                auth,
                caches: Mutex::new(Caches {
                    by_id: Bounded::new(cap),
                    id_by_schema: Bounded::new(cap),
                    latest: Bounded::new(cap),
                    versions: Bounded::new(cap),
                }),
                config,
            }),
        })
    }

    /// The configuration (also what the registry serializers read their settings from).
    pub fn config(&self) -> &RegistryConfig {
        &self.inner.config
    }

    fn caches(&self) -> std::sync::MutexGuard<'_, Caches> {
        self.inner.caches.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One REST call with failover and retries; the answer's JSON body on 2xx.
    async fn call(&self, method: Method, path: &str, body: Option<serde_json::Value>) -> Result<Bytes> {
        let inner = &*self.inner;
        let n = inner.endpoints.len();
        let body = match body {
            Some(b) => Some(Bytes::from(serde_json::to_vec(&b).map_err(|e| {
                Error::new(ErrorKind::Protocol, "a request body does not encode as JSON").with_source(e)
            })?)),
            None => None,
        };
        let mut backoff = inner.config.retries_wait;
        let mut round = 0;
        loop {
            let start = inner.current.load(Ordering::Relaxed);
            let mut last = None;
            for k in 0..n {
                let i = (start + k) % n;
                let ep = &inner.endpoints[i];
                let outcome = ep
                    .request(
                        method.clone(),
                        path,
                        inner.auth[i].as_deref(),
                        body.clone(),
                        inner.config.connect_timeout,
                        inner.config.read_timeout,
                    )
                    .await;
                match outcome {
                    Ok(a) if (200..300).contains(&a.status) => {
                        inner.current.store(i, Ordering::Relaxed);
                        return Ok(a.body);
                    }
                    Ok(a) => {
                        let e = answer_error(a.status, &a.body, &format!("{}{path}", ep.url.shown));
                        if !retriable_status(a.status) {
                            return Err(e);
                        }
                        last = Some(e);
                    }
                    Err(e) if e.is_retriable() => last = Some(e),
                    Err(e) => return Err(e),
                }
            }
            let e = last.unwrap_or_else(|| Error::new(ErrorKind::Unavailable, "no schema registry URL"));
            if round >= inner.config.max_retries {
                return Err(if round == 0 { e } else { e.gave_up_after(round) });
            }
            round += 1;
            tracing::debug!("schema registry request failed, retry {round} in about {backoff:?}: {e}");
            tokio::time::sleep(jitter(backoff)).await;
            backoff = (backoff * 2).min(inner.config.retries_max_wait);
        }
    }

    async fn call_json<T: for<'de> Deserialize<'de>>(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<T> {
        let bytes = self.call(method, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::new(
                ErrorKind::Protocol,
                format!("the schema registry's answer to {path} is not the JSON its API specifies"),
            )
            .with_source(e)
        })
    }

    /// The schema with this id (`GET /schemas/ids/{id}`), cached.
    pub async fn schema_by_id(&self, id: i32) -> Result<Arc<Schema>> {
        if let Some(s) = self.caches().by_id.get(&id) {
            return Ok(s);
        }
        let s: Schema = self
            .call_json(Method::GET, &format!("/schemas/ids/{id}"), None)
            .await
            .map_err(|e| e.with_schema_id(id))?;
        let s = Arc::new(s);
        self.caches().by_id.insert(id, s.clone());
        Ok(s)
    }

    fn normalize(&self) -> &'static str {
        if self.inner.config.normalize_schemas {
            "?normalize=true"
        } else {
            ""
        }
    }

    /// Registers `schema` under `subject` (`POST /subjects/{subject}/versions`, with
    /// `normalize=true` when `normalize.schemas` is set) and returns its id; an already
    /// registered schema gets its existing id. Cached. An incompatible schema fails with
    /// [`ErrorKind::Incompatible`] and the registry's message.
    pub async fn register(&self, subject: &str, schema: &Schema) -> Result<i32> {
        let key = (subject.to_owned(), schema.clone());
        if let Some(r) = self.caches().id_by_schema.get(&key) {
            return Ok(r.id);
        }
        #[derive(Deserialize)]
        struct Id {
            id: i32,
        }
        let body =
            serde_json::to_value(schema).map_err(|e| Error::new(ErrorKind::Protocol, "schema").with_source(e))?;
        let r: Id = self
            .call_json(
                Method::POST,
                &format!("/subjects/{}/versions{}", segment(subject), self.normalize()),
                Some(body),
            )
            .await?;
        self.caches().id_by_schema.insert(
            key,
            RegisteredSchemaId {
                id: r.id,
                version: None,
            },
        );
        self.caches().by_id.insert(r.id, Arc::new(schema.clone()));
        Ok(r.id)
    }

    /// Finds `schema` among `subject`'s versions (`POST /subjects/{subject}`): its id and
    /// version, or [`ErrorKind::NotFound`]. Cached.
    pub async fn lookup(&self, subject: &str, schema: &Schema) -> Result<RegisteredSchema> {
        let key = (subject.to_owned(), schema.clone());
        if let Some(RegisteredSchemaId { id, version: Some(v) }) = self.caches().id_by_schema.get(&key) {
            return Ok(RegisteredSchema {
                id,
                subject: subject.to_owned(),
                version: v,
                schema: schema.clone(),
            });
        }
        let body =
            serde_json::to_value(schema).map_err(|e| Error::new(ErrorKind::Protocol, "schema").with_source(e))?;
        let r: VersionBody = self
            .call_json(
                Method::POST,
                &format!("/subjects/{}{}", segment(subject), self.normalize()),
                Some(body),
            )
            .await?;
        let r = RegisteredSchema::from(r);
        self.caches().id_by_schema.insert(
            key,
            RegisteredSchemaId {
                id: r.id,
                version: Some(r.version),
            },
        );
        Ok(r)
    }

    /// Version `version` of `subject` (`GET /subjects/{subject}/versions/{version}`), cached.
    pub async fn version(&self, subject: &str, version: i32) -> Result<RegisteredSchema> {
        let key = (subject.to_owned(), version);
        if let Some(r) = self.caches().versions.get(&key) {
            return Ok(r);
        }
        let r: VersionBody = self
            .call_json(
                Method::GET,
                &format!("/subjects/{}/versions/{version}", segment(subject)),
                None,
            )
            .await?;
        let r = RegisteredSchema::from(r);
        let mut c = self.caches();
        c.versions.insert(key, r.clone());
        c.by_id.insert(r.id, Arc::new(r.schema.clone()));
        Ok(r)
    }

    /// The latest version of `subject` (`GET /subjects/{subject}/versions/latest`), cached
    /// for `latest.cache.ttl.sec`.
    pub async fn latest(&self, subject: &str) -> Result<RegisteredSchema> {
        if let Some((r, at)) = self.caches().latest.get(subject) {
            if self.inner.config.latest_cache_ttl.is_none_or(|ttl| at.elapsed() < ttl) {
                return Ok(r);
            }
        }
        let r: VersionBody = self
            .call_json(
                Method::GET,
                &format!("/subjects/{}/versions/latest", segment(subject)),
                None,
            )
            .await?;
        let r = RegisteredSchema::from(r);
        let mut c = self.caches();
        c.latest.insert(subject.to_owned(), (r.clone(), Instant::now()));
        c.by_id.insert(r.id, Arc::new(r.schema.clone()));
        Ok(r)
    }

    /// All subjects (`GET /subjects`).
    pub async fn subjects(&self) -> Result<Vec<String>> {
        self.call_json(Method::GET, "/subjects", None).await
    }

    /// The versions of `subject` (`GET /subjects/{subject}/versions`).
    pub async fn versions(&self, subject: &str) -> Result<Vec<i32>> {
        self.call_json(Method::GET, &format!("/subjects/{}/versions", segment(subject)), None)
            .await
    }

    /// Whether `schema` is compatible with `subject`'s version `version` (`None`: the latest)
    /// under the subject's compatibility level, with the registry's reasons when it is not
    /// (`POST /compatibility/subjects/{subject}/versions/{version}?verbose=true`).
    pub async fn test_compatibility(
        &self,
        subject: &str,
        version: Option<i32>,
        schema: &Schema,
    ) -> Result<Compatibility> {
        #[derive(Deserialize)]
        struct Body {
            is_compatible: bool,
            #[serde(default)]
            messages: Vec<String>,
        }
        let v = version.map_or_else(|| "latest".to_owned(), |v| v.to_string());
        let body =
            serde_json::to_value(schema).map_err(|e| Error::new(ErrorKind::Protocol, "schema").with_source(e))?;
        let r: Body = self
            .call_json(
                Method::POST,
                &format!("/compatibility/subjects/{}/versions/{v}?verbose=true", segment(subject)),
                Some(body),
            )
            .await?;
        Ok(Compatibility {
            is_compatible: r.is_compatible,
            messages: r.messages,
        })
    }

    /// The compatibility level of `subject`, or the global one (`GET /config[/{subject}]`).
    pub async fn compatibility(&self, subject: Option<&str>) -> Result<CompatibilityLevel> {
        #[derive(Deserialize)]
        struct Body {
            #[serde(rename = "compatibilityLevel", alias = "compatibility")]
            level: CompatibilityLevel,
        }
        let path = match subject {
            Some(s) => format!("/config/{}?defaultToGlobal=true", segment(s)),
            None => "/config".to_owned(),
        };
        Ok(self.call_json::<Body>(Method::GET, &path, None).await?.level)
    }

    /// Sets the compatibility level of `subject`, or the global one (`PUT /config[/{subject}]`).
    pub async fn set_compatibility(&self, subject: Option<&str>, level: CompatibilityLevel) -> Result<()> {
        let path = match subject {
            Some(s) => format!("/config/{}", segment(s)),
            None => "/config".to_owned(),
        };
        let body = serde_json::json!({ "compatibility": level });
        self.call(Method::PUT, &path, Some(body)).await.map(drop)
    }

    /// Deletes `subject` (`DELETE /subjects/{subject}`, then with `permanent=true` when
    /// `permanent`), returning the versions it had.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> Result<Vec<i32>> {
        let path = format!("/subjects/{}", segment(subject));
        let versions: Vec<i32> = self.call_json(Method::DELETE, &path, None).await?;
        if permanent {
            let _: Vec<i32> = self
                .call_json(Method::DELETE, &format!("{path}?permanent=true"), None)
                .await?;
        }
        let mut c = self.caches();
        c.latest.remove_where(|s| s == subject);
        c.versions.remove_where(|(s, _)| s == subject);
        c.id_by_schema.remove_where(|(s, _)| s == subject);
        Ok(versions)
    }

    /// The schemas `schema` refers to, transitively, each before the schemas that refer to it
    /// (what a format's parser needs first), as (reference name, schema).
    pub async fn resolve_references(&self, schema: &Schema) -> Result<Vec<(String, Schema)>> {
        let mut out: Vec<(String, Schema)> = Vec::new();
        // Depth-first with an explicit stack (a reference cycle or a deep chain must not
        // overflow): (reference, its references expanded?).
        let mut stack: Vec<(SchemaReference, bool)> =
            schema.references.iter().rev().map(|r| (r.clone(), false)).collect();
        let mut seen = std::collections::HashSet::new();
        while let Some((r, expanded)) = stack.pop() {
            if expanded {
                let s = self.version(&r.subject, r.version).await?.schema;
                if !out.iter().any(|(n, _)| *n == r.name) {
                    out.push((r.name.clone(), s));
                }
                continue;
            }
            if !seen.insert((r.subject.clone(), r.version)) {
                continue;
            }
            if seen.len() > 1000 {
                return Err(Error::new(
                    ErrorKind::InvalidSchema,
                    "a schema's references go over 1000 schemas deep or wide",
                ));
            }
            let s = self.version(&r.subject, r.version).await?;
            stack.push((r, true));
            for child in s.schema.references.iter().rev() {
                stack.push((child.clone(), false));
            }
        }
        Ok(out)
    }
}

/// The schema a serializer writes with, by the registry client's settings
/// ([`SchemaRegistryClient::writer_schema_for`]).
#[derive(Debug, Clone)]
pub enum WriterSchema {
    /// Its own schema, registered (`auto.register.schemas`) or looked up: its id.
    Own(i32),
    /// The subject's latest version (`use.latest.version`).
    Latest(RegisteredSchema),
}

impl SchemaRegistryClient {
    /// The subject of a key (`is_key`) or value of `topic` by the configured strategy;
    /// `record_name` is the schema's fully qualified name, when it has one.
    pub fn subject_for(&self, topic: &str, is_key: bool, record_name: Option<&str>) -> Result<String> {
        let c = self.config();
        let strategy = if is_key {
            c.key_subject_name_strategy
        } else {
            c.value_subject_name_strategy
        };
        strategy.subject(topic, is_key, record_name)
    }

    /// What a serializer of `schema` writes under `subject` with, as Confluent's serializers
    /// decide it: registered, the subject's latest, or looked up.
    pub async fn writer_schema_for(&self, subject: &str, schema: &Schema) -> Result<WriterSchema> {
        let c = self.config();
        if c.auto_register_schemas {
            Ok(WriterSchema::Own(self.register(subject, schema).await?))
        } else if c.use_latest_version {
            Ok(WriterSchema::Latest(self.latest(subject).await?))
        } else {
            Ok(WriterSchema::Own(self.lookup(subject, schema).await?.id))
        }
    }
}

/// ±25 % around `d`, so clients failing together do not retry together.
fn jitter(d: Duration) -> Duration {
    let nanos = Instant::now().elapsed().subsec_nanos() ^ std::process::id().rotate_left(16);
    let f = 0.75 + f64::from(nanos % 1000) / 2000.0;
    d.mul_f64(f)
}

fn answer_error(status: u16, body: &[u8], url: &str) -> Error {
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let (code, message) = match parsed {
        Some(ErrorBody { error_code, message }) => (error_code, message),
        None => (None, None),
    };
    let message = message.unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        if text.trim().is_empty() {
            format!("HTTP {status}")
        } else {
            text
        }
    });
    let kind = match status {
        401 => ErrorKind::Authentication,
        403 => ErrorKind::Authorization,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Incompatible,
        422 => ErrorKind::InvalidSchema,
        s if retriable_status(s) => ErrorKind::Unavailable,
        _ => ErrorKind::Registry,
    };
    Error::new(kind, format!("the schema registry answered {status}: {message}"))
        .with_http(status, code)
        .with_url(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_errors() {
        let s: Schema = serde_json::from_str(r#"{"schema":"\"int\""}"#).unwrap();
        assert_eq!(s.schema_type, SchemaType::Avro);
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"schema":"\"int\""}"#);
        let p = Schema::new(SchemaType::Protobuf, "syntax = \"proto3\";").reference("a.proto", "a", 1);
        let j = serde_json::to_string(&p).unwrap();
        assert!(
            j.contains(r#""schemaType":"PROTOBUF""#) && j.contains(r#""references":[{"name":"a.proto""#),
            "{j}"
        );
        let e = answer_error(
            404,
            br#"{"error_code":40401,"message":"Subject 'x' not found."}"#,
            "http://r/subjects/x",
        );
        assert_eq!(
            (e.kind(), e.status(), e.error_code()),
            (ErrorKind::NotFound, Some(404), Some(40401))
        );
        assert!(e.to_string().contains("Subject 'x' not found."), "{e}");
        assert_eq!(answer_error(503, b"", "u").kind(), ErrorKind::Unavailable);
        assert!(answer_error(503, b"", "u").is_retriable());
        assert_eq!(answer_error(500, b"<html>", "u").kind(), ErrorKind::Registry);
        assert_eq!(segment("a b/c.d"), "a%20b%2Fc.d");
    }

    #[test]
    fn bounded_caches_forget_the_oldest() {
        let mut b = Bounded::new(2);
        b.insert(1, "a");
        b.insert(2, "b");
        b.insert(3, "c");
        assert_eq!((b.get(&1), b.get(&2), b.get(&3)), (None, Some("b"), Some("c")));
    }
}

/// The HTTP behaviour the real registry cannot be made to show (what the request carries,
/// a server that stalls or fails then recovers), against a raw socket that records requests
/// and answers as scripted. The registry API itself is tested against a real registry
/// (integration-tests/tests/registry/).
#[cfg(test)]
mod http_tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves one scripted answer per connection-request, recording each request's head.
    async fn server(answers: Vec<&'static str>) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/apis/ccompat/v7", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        tokio::spawn(async move {
            let mut answers = answers.into_iter();
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = Vec::with_capacity(8192);
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read_buf(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    }
                }
                log.lock().unwrap().push(String::from_utf8_lossy(&buf).into_owned());
                match answers.next() {
                    Some("stall") => {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                    }
                    Some(a) => {
                        let _ = s.write_all(a.as_bytes()).await;
                    }
                    None => {}
                }
                // One request per connection: the client reconnects for the next.
                let _ = s.shutdown().await;
            }
        });
        (url, seen)
    }

    const OK_EMPTY: &str =
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n[]";
    const UNAVAILABLE: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

    fn client(props: &[(&str, &str)]) -> SchemaRegistryClient {
        SchemaRegistryClient::new(RegistryConfig::from_properties(props.iter().copied()).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn credentials_go_in_the_authorization_header() {
        let (url, seen) = server(vec![OK_EMPTY, OK_EMPTY, OK_EMPTY]).await;
        client(&[
            ("schema.registry.url", &url),
            ("basic.auth.credentials.source", "USER_INFO"),
            ("basic.auth.user.info", "fred:s3cret"),
        ])
        .subjects()
        .await
        .unwrap();
        let with_user = url.replace("http://", "http://ann:pw@");
        client(&[
            ("schema.registry.url", &with_user),
            ("basic.auth.credentials.source", "URL"),
        ])
        .subjects()
        .await
        .unwrap();
        client(&[
            ("schema.registry.url", &url),
            ("bearer.auth.credentials.source", "STATIC_TOKEN"),
            ("bearer.auth.token", "tok-123"),
        ])
        .subjects()
        .await
        .unwrap();
        let seen = seen.lock().unwrap().clone();
        assert!(
            seen[0].starts_with("GET /apis/ccompat/v7/subjects HTTP/1.1"),
            "{}",
            seen[0]
        );
        let basic = base64::engine::general_purpose::STANDARD.encode("fred:s3cret");
        assert!(
            seen[0].contains(&format!("authorization: Basic {basic}")),
            "{}",
            seen[0]
        );
        let from_url = base64::engine::general_purpose::STANDARD.encode("ann:pw");
        assert!(
            seen[1].contains(&format!("authorization: Basic {from_url}")),
            "{}",
            seen[1]
        );
        assert!(seen[2].contains("authorization: Bearer tok-123"), "{}", seen[2]);
    }

    #[tokio::test]
    async fn retriable_answers_are_retried_then_succeed() {
        let (url, seen) = server(vec![UNAVAILABLE, UNAVAILABLE, OK_EMPTY]).await;
        let c = client(&[
            ("schema.registry.url", &url),
            ("retries.wait.ms", "10"),
            ("max.retries", "3"),
        ]);
        assert_eq!(c.subjects().await.unwrap(), Vec::<String>::new());
        assert_eq!(seen.lock().unwrap().len(), 3);
        // max.retries=1: two attempts, then the 503 is the error.
        let (url, seen) = server(vec![UNAVAILABLE, UNAVAILABLE, OK_EMPTY]).await;
        let c = client(&[
            ("schema.registry.url", &url),
            ("retries.wait.ms", "10"),
            ("max.retries", "1"),
        ]);
        let e = c.subjects().await.unwrap_err();
        assert_eq!((e.kind(), e.status()), (ErrorKind::Unavailable, Some(503)));
        assert_eq!(seen.lock().unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_stalled_registry_times_out() {
        let (url, _) = server(vec!["stall"]).await;
        let c = client(&[
            ("schema.registry.url", &url),
            ("http.read.timeout.ms", "200"),
            ("max.retries", "0"),
        ]);
        let started = Instant::now();
        let e = c.subjects().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
        assert!(e.to_string().contains("http.read.timeout.ms"), "{e}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[tokio::test]
    async fn answers_that_are_not_the_api_are_protocol_errors() {
        let (url, _) = server(vec![
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999999\r\nConnection: close\r\n\r\n[]",
        ])
        .await;
        let c = client(&[("schema.registry.url", &url), ("max.retries", "0")]);
        assert_eq!(c.subjects().await.unwrap_err().kind(), ErrorKind::Protocol);
        // A declared length over the cap is refused, not allocated.
        let e = c.subjects().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    }
}
