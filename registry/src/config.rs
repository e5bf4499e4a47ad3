//! Configuration under the names of Confluent's Java serializers and `CachedSchemaRegistryClient`,
//! so a `.properties` file written for them works here. A key this crate does not know, or
//! knows but does not implement, is refused with its name, never ignored.

use std::fmt;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::strategy::SubjectNameStrategy;

/// Where the basic-auth credentials come from (`basic.auth.credentials.source`).
#[derive(Clone, PartialEq, Eq)]
pub enum BasicAuth {
    /// None.
    None,
    /// `basic.auth.user.info` (`USER_INFO`): `user:password`.
    UserInfo(String),
    /// The `user:password@` part of each URL (`URL`, Java's default source).
    Url,
}

impl fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BasicAuth::None => "None",
            BasicAuth::UserInfo(_) => "UserInfo(hidden)",
            BasicAuth::Url => "Url",
        })
    }
}

/// A bearer token (`bearer.auth.credentials.source=STATIC_TOKEN`, `bearer.auth.token`).
#[derive(Clone, PartialEq, Eq)]
pub struct BearerToken(pub(crate) String);

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BearerToken(hidden)")
    }
}

/// Configuration of a [`SchemaRegistryClient`](crate::SchemaRegistryClient) and of the
/// registry serializers, by Confluent's Java names ([`RegistryConfig::set`]).
///
/// Secrets (`basic.auth.user.info`, `bearer.auth.token`, the user info of URLs) never appear
/// in its `Debug` output.
#[derive(Clone)]
pub struct RegistryConfig {
    /// `schema.registry.url`: base URLs, tried in turn when one fails.
    pub urls: Vec<String>,
    /// `basic.auth.credentials.source` and `basic.auth.user.info`.
    pub basic_auth: BasicAuth,
    /// `bearer.auth.credentials.source=STATIC_TOKEN` with `bearer.auth.token`.
    pub bearer: Option<BearerToken>,
    /// `schema.registry.ssl.truststore.location` (a PEM file) or
    /// `schema.registry.ssl.truststore.certificates` (PEM text): the CAs to trust for
    /// `https` URLs; the system's roots when neither is set.
    pub truststore_pem: Option<TrustStore>,
    /// `max.retries` (3): attempts after the first for a request that failed retriably
    /// (unreachable, timed out, HTTP 408, 429, 502, 503, 504).
    pub max_retries: u32,
    /// `retries.wait.ms` (1000): the first backoff; doubles per retry with jitter.
    pub retries_wait: Duration,
    /// `retries.max.wait.ms` (20000): the backoff's cap.
    pub retries_max_wait: Duration,
    /// `http.connect.timeout.ms` (60000).
    pub connect_timeout: Duration,
    /// `http.read.timeout.ms` (60000): the whole answer, from sending the request.
    pub read_timeout: Duration,
    /// `max.schemas.per.subject` (1000): each cache's capacity.
    pub cache_capacity: usize,
    /// `auto.register.schemas` (true): a serializer registers its schema under the subject.
    pub auto_register_schemas: bool,
    /// `use.latest.version` (false): with `auto.register.schemas=false`, a serializer writes
    /// with the subject's latest schema instead of looking its own up.
    pub use_latest_version: bool,
    /// `latest.cache.ttl.sec` (-1 = forever): how long the latest version is cached.
    pub latest_cache_ttl: Option<Duration>,
    /// `normalize.schemas` (false): ask the registry to normalize schemas on register and
    /// lookup.
    pub normalize_schemas: bool,
    /// `key.subject.name.strategy` (TopicNameStrategy).
    pub key_subject_name_strategy: SubjectNameStrategy,
    /// `value.subject.name.strategy` (TopicNameStrategy).
    pub value_subject_name_strategy: SubjectNameStrategy,
    /// `json.fail.invalid.schema` (false): the JSON Schema deserializer checks each value
    /// against its schema. (The serializer always checks.)
    pub json_fail_invalid_schema: bool,
}

/// The trusted CAs for `https` registry URLs, as PEM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrustStore {
    /// A PEM file's path.
    File(String),
    /// PEM text.
    Pem(String),
}

impl fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = self.urls.iter().map(|u| redact_url(u)).collect();
        f.debug_struct("RegistryConfig")
            .field("urls", &urls)
            .field(
                "basic_auth",
                &match self.basic_auth {
                    BasicAuth::None => "none",
                    BasicAuth::UserInfo(_) => "USER_INFO (hidden)",
                    BasicAuth::Url => "URL",
                },
            )
            .field("bearer", &self.bearer.as_ref().map(|_| "STATIC_TOKEN (hidden)"))
            .field(
                "truststore",
                &self.truststore_pem.as_ref().map(|t| match t {
                    TrustStore::File(p) => p.as_str(),
                    TrustStore::Pem(_) => "(PEM text)",
                }),
            )
            .field("max_retries", &self.max_retries)
            .field("retries_wait", &self.retries_wait)
            .field("retries_max_wait", &self.retries_max_wait)
            .field("connect_timeout", &self.connect_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("cache_capacity", &self.cache_capacity)
            .field("auto_register_schemas", &self.auto_register_schemas)
            .field("use_latest_version", &self.use_latest_version)
            .field("latest_cache_ttl", &self.latest_cache_ttl)
            .field("normalize_schemas", &self.normalize_schemas)
            .field("key_subject_name_strategy", &self.key_subject_name_strategy)
            .field("value_subject_name_strategy", &self.value_subject_name_strategy)
            .field("json_fail_invalid_schema", &self.json_fail_invalid_schema)
            .finish()
    }
}

/// `http://user:secret@host/` → `http://***@host/`.
pub(crate) fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &url[..s + 3], &url[at..]),
        _ => url.to_owned(),
    }
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            urls: Vec::new(),
            basic_auth: BasicAuth::None,
            bearer: None,
            truststore_pem: None,
            max_retries: 3,
            retries_wait: Duration::from_millis(1000),
            retries_max_wait: Duration::from_millis(20_000),
            connect_timeout: Duration::from_millis(60_000),
            read_timeout: Duration::from_millis(60_000),
            cache_capacity: 1000,
            auto_register_schemas: true,
            use_latest_version: false,
            latest_cache_ttl: None,
            normalize_schemas: false,
            key_subject_name_strategy: SubjectNameStrategy::TopicName,
            value_subject_name_strategy: SubjectNameStrategy::TopicName,
            json_fail_invalid_schema: false,
        }
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::config(format!("{key}={value:?}: expected true or false"))),
    }
}

fn parse_ms(key: &str, value: &str) -> Result<Duration> {
    value
        .trim()
        .parse::<u64>()
        .map(Duration::from_millis)
        .map_err(|_| Error::config(format!("{key}={value:?}: expected milliseconds, a whole number >= 0")))
}

/// Every property name [`RegistryConfig::set`] / [`RegistryConfig::from_properties`] take.
pub(crate) const KNOWN_KEYS: &[&str] = &[
    "schema.registry.url",
    "basic.auth.credentials.source",
    "basic.auth.user.info",
    "bearer.auth.credentials.source",
    "bearer.auth.token",
    "schema.registry.ssl.truststore.location",
    "schema.registry.ssl.truststore.certificates",
    "schema.registry.ssl.truststore.type",
    "schema.registry.ssl.endpoint.identification.algorithm",
    "max.retries",
    "retries.wait.ms",
    "retries.max.wait.ms",
    "http.connect.timeout.ms",
    "http.read.timeout.ms",
    "max.schemas.per.subject",
    "auto.register.schemas",
    "use.latest.version",
    "latest.cache.ttl.sec",
    "normalize.schemas",
    "key.subject.name.strategy",
    "value.subject.name.strategy",
    "json.fail.invalid.schema",
];

impl RegistryConfig {
    /// Whether `key` is a schema registry property (so a tool reading one properties file
    /// for a Kafka client and its serializers can tell them apart). `schema.registry.ssl.*`
    /// keys count, the supported ones and the refused ones alike.
    pub fn is_known_key(key: &str) -> bool {
        KNOWN_KEYS.contains(&key) || key.starts_with("schema.registry.")
    }

    /// The configuration for one registry URL (or several, comma-separated), all else default.
    pub fn new(urls: &str) -> Result<Self> {
        let mut c = RegistryConfig::default();
        c.set("schema.registry.url", urls)?;
        Ok(c)
    }

    /// A configuration from Java properties (e.g. from a `.properties` file); see
    /// [`RegistryConfig::set`]. `schema.registry.url` is required.
    pub fn from_properties<'a>(props: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut c = RegistryConfig::default();
        let mut user_info = None;
        let mut source = None;
        let mut bearer_source = None;
        let mut token = None;
        for (k, v) in props {
            match k {
                // Read together below: the source decides what the other key means.
                "basic.auth.user.info" => user_info = Some(v.to_owned()),
                "basic.auth.credentials.source" => source = Some(v.to_owned()),
                "bearer.auth.credentials.source" => bearer_source = Some(v.to_owned()),
                "bearer.auth.token" => token = Some(v.to_owned()),
                _ => c.set(k, v)?,
            }
        }
        c.basic_auth = basic_auth(source.as_deref(), user_info)?;
        c.bearer = bearer(bearer_source.as_deref(), token)?;
        if matches!(c.basic_auth, BasicAuth::UserInfo(_) | BasicAuth::Url) && c.bearer.is_some() {
            return Err(Error::config(
                "both basic.auth.* and bearer.auth.* are set: a request carries one Authorization header, choose one",
            ));
        }
        c.validate()?;
        Ok(c)
    }

    /// Sets one property by its Java name. The credentials pairs (`basic.auth.credentials.source`
    /// with `basic.auth.user.info`, `bearer.auth.credentials.source` with `bearer.auth.token`)
    /// are set with [`RegistryConfig::basic_auth_user_info`] and
    /// [`RegistryConfig::bearer_token`], or together through
    /// [`RegistryConfig::from_properties`].
    pub fn set(&mut self, key: &str, value: &str) -> Result<()> {
        match key {
            "schema.registry.url" => {
                let urls: Vec<String> = value
                    .split(',')
                    .map(|u| u.trim().trim_end_matches('/').to_owned())
                    .filter(|u| !u.is_empty())
                    .collect();
                if urls.is_empty() {
                    return Err(Error::config("schema.registry.url is empty: give one or more http(s) URLs"));
                }
                for u in &urls {
                    crate::http::BaseUrl::parse(u)?;
                }
                self.urls = urls;
            }
            "max.retries" => {
                self.max_retries = value
                    .trim()
                    .parse()
                    .map_err(|_| Error::config(format!("max.retries={value:?}: expected a whole number >= 0")))?
            }
            "retries.wait.ms" => self.retries_wait = parse_ms(key, value)?,
            "retries.max.wait.ms" => self.retries_max_wait = parse_ms(key, value)?,
            "http.connect.timeout.ms" => self.connect_timeout = parse_ms(key, value)?,
            "http.read.timeout.ms" => self.read_timeout = parse_ms(key, value)?,
            "max.schemas.per.subject" => {
                self.cache_capacity = value.trim().parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    Error::config(format!("max.schemas.per.subject={value:?}: expected a whole number > 0"))
                })?
            }
            "auto.register.schemas" => self.auto_register_schemas = parse_bool(key, value)?,
            "use.latest.version" => self.use_latest_version = parse_bool(key, value)?,
            "normalize.schemas" => self.normalize_schemas = parse_bool(key, value)?,
            "json.fail.invalid.schema" => self.json_fail_invalid_schema = parse_bool(key, value)?,
            "latest.cache.ttl.sec" => {
                let n: i64 = value
                    .trim()
                    .parse()
                    .map_err(|_| Error::config(format!("latest.cache.ttl.sec={value:?}: expected seconds, or -1")))?;
                self.latest_cache_ttl = match n {
                    -1 => None,
                    n if n >= 0 => Some(Duration::from_secs(n as u64)),
                    _ => return Err(Error::config(format!("latest.cache.ttl.sec={n}: expected seconds, or -1"))),
                };
            }
            "key.subject.name.strategy" => self.key_subject_name_strategy = SubjectNameStrategy::from_name(value)?,
            "value.subject.name.strategy" => self.value_subject_name_strategy = SubjectNameStrategy::from_name(value)?,
            "schema.registry.ssl.truststore.location" => {
                self.truststore_pem = Some(TrustStore::File(value.trim().to_owned()))
            }
            "schema.registry.ssl.truststore.certificates" => self.truststore_pem = Some(TrustStore::Pem(value.to_owned())),
            "schema.registry.ssl.truststore.type" => {
                if !value.trim().eq_ignore_ascii_case("PEM") {
                    return Err(Error::config(format!(
                        "schema.registry.ssl.truststore.type={value:?}: only PEM is read (convert a JKS or PKCS12 truststore with `keytool -exportcert -rfc`)"
                    )));
                }
            }
            "schema.registry.ssl.endpoint.identification.algorithm" => {
                if !value.trim().eq_ignore_ascii_case("https") {
                    return Err(Error::config(format!(
                        "schema.registry.ssl.endpoint.identification.algorithm={value:?}: the registry's host name is always verified (only \"https\" is accepted)"
                    )));
                }
            }
            "basic.auth.credentials.source"
            | "basic.auth.user.info"
            | "bearer.auth.credentials.source"
            | "bearer.auth.token" => {
                return Err(Error::config(format!(
                    "{key}: set credentials with basic_auth_user_info / bearer_token, or with from_properties (which reads the source and its value together)"
                )))
            }
            _ if key.starts_with("schema.registry.ssl.") => {
                return Err(Error::config(format!(
                    "{key}: not supported; the registry's TLS takes schema.registry.ssl.truststore.location / .certificates (PEM)"
                )))
            }
            _ => {
                return Err(Error::config(format!(
                    "unknown schema registry property {key:?} (a Kafka client property belongs to the producer or consumer config)"
                )))
            }
        }
        Ok(())
    }

    /// Basic auth with `user:password` (`basic.auth.credentials.source=USER_INFO`).
    pub fn basic_auth_user_info(mut self, user_info: &str) -> Result<Self> {
        self.basic_auth = basic_auth(Some("USER_INFO"), Some(user_info.to_owned()))?;
        Ok(self)
    }

    /// A static bearer token (`bearer.auth.credentials.source=STATIC_TOKEN`).
    pub fn bearer_token(mut self, token: &str) -> Result<Self> {
        self.bearer = bearer(Some("STATIC_TOKEN"), Some(token.to_owned()))?;
        Ok(self)
    }

    /// Checks what depends on several keys.
    pub fn validate(&self) -> Result<()> {
        if self.urls.is_empty() {
            return Err(Error::config("schema.registry.url is required"));
        }
        if self.basic_auth == BasicAuth::Url && !self.urls.iter().all(|u| u.contains('@')) {
            return Err(Error::config(
                "basic.auth.credentials.source=URL but a schema.registry.url has no user:password@",
            ));
        }
        if self.use_latest_version && self.auto_register_schemas {
            return Err(Error::config(
                "use.latest.version=true needs auto.register.schemas=false (as Confluent's serializers)",
            ));
        }
        Ok(())
    }
}

fn basic_auth(source: Option<&str>, user_info: Option<String>) -> Result<BasicAuth> {
    match source.map(|s| s.trim().to_ascii_uppercase()).as_deref() {
        None | Some("URL") if user_info.is_none() => Ok(if source.is_some() { BasicAuth::Url } else { BasicAuth::None }),
        None | Some("USER_INFO") => match user_info {
            Some(u) if u.contains(':') => Ok(BasicAuth::UserInfo(u)),
            _ => Err(Error::config(
                "basic.auth.user.info must be user:password (the value is not shown)",
            )),
        },
        Some("URL") => Err(Error::config(
            "basic.auth.user.info is set but basic.auth.credentials.source=URL reads the URL's user info: set the source to USER_INFO",
        )),
        Some("SASL_INHERIT") => Err(Error::config(
            "basic.auth.credentials.source=SASL_INHERIT is not supported: use USER_INFO with basic.auth.user.info",
        )),
        Some(other) => Err(Error::config(format!(
            "basic.auth.credentials.source={other:?}: expected USER_INFO or URL"
        ))),
    }
}

fn bearer(source: Option<&str>, token: Option<String>) -> Result<Option<BearerToken>> {
    match (source.map(|s| s.trim().to_ascii_uppercase()).as_deref(), token) {
        (None, None) => Ok(None),
        (None | Some("STATIC_TOKEN"), Some(t)) if !t.trim().is_empty() => Ok(Some(BearerToken(t.trim().to_owned()))),
        (None | Some("STATIC_TOKEN"), _) => Err(Error::config(
            "bearer.auth.credentials.source=STATIC_TOKEN needs bearer.auth.token",
        )),
        (Some(other), _) => Err(Error::config(format!(
            "bearer.auth.credentials.source={other:?}: only STATIC_TOKEN is supported (with bearer.auth.token)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_properties_and_refusals() {
        let c = RegistryConfig::from_properties([
            ("schema.registry.url", "http://a:8081, http://b:8081/"),
            ("basic.auth.credentials.source", "USER_INFO"),
            ("basic.auth.user.info", "fred:s3cret"),
            ("auto.register.schemas", "false"),
            ("use.latest.version", "true"),
            (
                "value.subject.name.strategy",
                "io.confluent.kafka.serializers.subject.RecordNameStrategy",
            ),
            ("max.retries", "1"),
        ])
        .unwrap();
        assert_eq!(c.urls, ["http://a:8081", "http://b:8081"]);
        assert_eq!(c.value_subject_name_strategy, SubjectNameStrategy::RecordName);
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret") && !shown.contains("fred"), "{shown}");

        for (props, says) in [
            (vec![("schema.registry.url", "ftp://x")], "http"),
            (
                vec![("schema.registry.url", "http://x"), ("specific.avro.reader", "true")],
                "specific.avro.reader",
            ),
            (
                vec![("schema.registry.url", "http://x"), ("use.latest.version", "true")],
                "auto.register.schemas=false",
            ),
            (
                vec![("schema.registry.url", "http://x"), ("basic.auth.user.info", "nocolon")],
                "user:password",
            ),
            (
                vec![
                    ("schema.registry.url", "http://x"),
                    ("schema.registry.ssl.truststore.type", "JKS"),
                ],
                "only PEM",
            ),
            (
                vec![
                    ("schema.registry.url", "http://x"),
                    ("bearer.auth.credentials.source", "OAUTHBEARER"),
                ],
                "STATIC_TOKEN",
            ),
            (
                vec![("auto.register.schemas", "false")],
                "schema.registry.url is required",
            ),
        ] {
            let e = RegistryConfig::from_properties(props).unwrap_err();
            assert_eq!(e.kind(), crate::ErrorKind::InvalidConfig);
            assert!(e.to_string().contains(says), "{e} should say {says}");
        }
        assert_eq!(redact_url("https://u:p@h:1/x"), "https://***@h:1/x");
        // docs/CONFIG.md's schema registry section names only keys this crate knows.
        let doc = include_str!("../../docs/CONFIG.md");
        let section = doc
            .lines()
            .skip_while(|l| !l.starts_with("## Schema registry"))
            .skip(1)
            .take_while(|l| !l.starts_with("## "));
        let mut listed = 0;
        for row in section.filter(|l| l.starts_with("| `")) {
            let first_cell = row.split('|').nth(1).unwrap_or_default();
            for key in first_cell.split('`').skip(1).step_by(2) {
                listed += 1;
                assert!(RegistryConfig::is_known_key(key), "docs/CONFIG.md lists {key:?}");
            }
        }
        assert!(
            listed >= KNOWN_KEYS.len(),
            "docs/CONFIG.md lists {listed} registry keys"
        );
        // Every known key is taken by `set` or `from_properties` (none is unknown there).
        for k in KNOWN_KEYS {
            let e = RegistryConfig::default()
                .set(k, "")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!e.contains("unknown schema registry property"), "{k}: {e}");
        }
    }
}
