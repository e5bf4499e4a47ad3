//! The registry error: a kind to match on, the registry's own error code and message when it
//! sent one, the URL it came from, and the cause.

use std::sync::Arc;

/// What kind of failure an [`Error`] is. New kinds may be added; match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configuration key or value is invalid (the message names the key).
    InvalidConfig,
    /// No registry URL could be reached, or the connection broke; retried up to
    /// `max.retries` before it is returned.
    Unavailable,
    /// `http.connect.timeout.ms` or `http.read.timeout.ms` ran out.
    Timeout,
    /// The registry refused the credentials (HTTP 401).
    Authentication,
    /// The credentials may not do this (HTTP 403).
    Authorization,
    /// The subject, version or schema id does not exist (HTTP 404: error codes 40401,
    /// 40402, 40403).
    NotFound,
    /// The schema is not compatible with the subject's earlier versions under its
    /// compatibility level (HTTP 409).
    Incompatible,
    /// The registry (HTTP 422) or the format's parser refused the schema as invalid.
    InvalidSchema,
    /// Any other error the registry answered with ([`Error::status`], [`Error::error_code`]).
    Registry,
    /// The registry's answer was not what its API specifies (not JSON, a field missing).
    Protocol,
    /// Bytes that are not what the wire format or the schema says: a magic byte other than
    /// 0, a truncated payload, a datum that does not match its writer schema, a value that
    /// does not match the schema it is written with.
    Serialization,
}

/// An error from the schema registry client or a registry serializer.
#[derive(Debug, Clone)]
pub struct Error {
    kind: ErrorKind,
    message: String,
    status: Option<u16>,
    error_code: Option<i32>,
    url: Option<String>,
    schema_id: Option<i32>,
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)?;
        if let Some(id) = self.schema_id {
            write!(f, " (schema id {id})")?;
        }
        if let Some(url) = &self.url {
            write!(f, " [{url}]")?;
        }
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source.as_deref().map(|s| s as &(dyn std::error::Error + 'static))
    }
}

impl Error {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            status: None,
            error_code: None,
            url: None,
            schema_id: None,
            source: None,
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidConfig, message)
    }

    pub(crate) fn serialization(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::Serialization, message)
    }

    pub(crate) fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    pub(crate) fn with_url(mut self, url: impl Into<String>) -> Self {
        self.url = Some(url.into());
        self
    }

    pub(crate) fn with_http(mut self, status: u16, error_code: Option<i32>) -> Self {
        self.status = Some(status);
        self.error_code = error_code;
        self
    }

    /// The last failure of a request retried `retries` times.
    pub(crate) fn gave_up_after(mut self, retries: u32) -> Self {
        self.message = format!("{} (gave up after {retries} retries)", self.message);
        self
    }

    /// This error with `suffix` appended to its message.
    pub(crate) fn with_message_suffix(mut self, suffix: &str) -> Self {
        self.message.push_str(suffix);
        self
    }

    pub(crate) fn with_schema_id(mut self, id: i32) -> Self {
        self.schema_id = Some(id);
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The HTTP status the registry answered with, when it answered.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// The registry's own error code (`error_code` of its error body, e.g. 40401 subject not
    /// found, 409 incompatible, 42201 invalid schema), when it sent one.
    pub fn error_code(&self) -> Option<i32> {
        self.error_code
    }

    /// The URL of the request that failed, when there was one.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The schema id the error is about (an unknown id, a datum that does not match it).
    pub fn schema_id(&self) -> Option<i32> {
        self.schema_id
    }

    /// The message, without the URL, id and cause [`Display`](std::fmt::Display) adds.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Worth trying again later: the registry was unreachable, timed out or overloaded.
    /// (The client already retried `max.retries` times before returning it.)
    pub fn is_retriable(&self) -> bool {
        matches!(self.kind, ErrorKind::Unavailable | ErrorKind::Timeout)
    }
}

/// A result with the registry [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(feature = "client")]
impl From<Error> for strom_client::Error {
    /// A registry or format error as the client's
    /// [`ErrorKind::Serialization`](strom_client::ErrorKind::Serialization), with the
    /// registry error as its source (match it with `downcast_ref::<strom_registry::Error>`).
    fn from(e: Error) -> Self {
        strom_client::Error::serialization(e.to_string(), Some(Box::new(e)))
    }
}
