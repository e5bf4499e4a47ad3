//! The client error: an opaque type with a public [`ErrorKind`] to match on, predicates that
//! follow the Java client's classification, the cause behind it ([`std::error::Error::source`]),
//! and where it happened (topic, partition, broker) as fields, not only text.

use std::sync::Arc;
use std::time::Duration;

use strom_protocol::message_traits::StrBytes;
use strom_protocol::versions::VersionError;
use strom_protocol::{ErrorCode, WireError};

/// An error from the Strom client.
///
/// Match on [`Error::kind`] for what happened, or ask a predicate: [`Error::is_retriable`],
/// [`Error::is_timeout`], [`Error::is_fatal`], [`Error::requires_abort`],
/// [`Error::kafka_code`]. Where it happened: [`Error::topic`], [`Error::partition`],
/// [`Error::node`].
///
/// ```
/// use strom_client::{Error, ErrorKind};
///
/// fn react(e: &Error) -> &'static str {
///     match e.kind() {
///         ErrorKind::Fenced | ErrorKind::Fatal => "create a new producer",
///         ErrorKind::Abortable => "abort the transaction and start again",
///         ErrorKind::BufferFull => "slow down",
///         _ if e.is_retriable() => "retry",
///         _ => "give up",
///     }
/// }
/// assert_eq!(react(&Error::kafka(strom_client::ErrorCode::ProducerFenced)), "create a new producer");
/// ```
#[derive(Debug, Clone)]
pub struct Error {
    kind: Kind,
    context: Option<String>,
    at: Option<Box<Location>>,
    /// Raised inside a transaction that must now be aborted (Java's abortable errors).
    abortable: bool,
    /// What led to it, e.g. the last broker error of a batch that then timed out.
    cause: Option<Box<Error>>,
    /// The record that was not delivered (a delivery error hands it back).
    record: Option<Box<crate::producer::ProducerRecord>>,
}

/// Where an error happened, when known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Location {
    topic: Option<Arc<str>>,
    partition: Option<i32>,
    offset: Option<i64>,
    node: Option<i32>,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.kind)?;
        if let Some(c) = &self.context {
            write!(f, " ({c})")?;
        }
        if let Some(cause) = &self.cause {
            write!(f, "; last error: {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        if let Some(cause) = &self.cause {
            return Some(&**cause);
        }
        match &self.kind {
            Kind::Connect { source, .. } | Kind::Resolve { source, .. } | Kind::Io { source, .. } => Some(source),
            Kind::Wire(e) => Some(e),
            Kind::Version(e) => Some(e),
            Kind::Serialization { source: Some(s), .. } => Some(&**s),
            _ => None,
        }
    }
}

/// What kind of failure an [`Error`] is. New kinds may be added; match with a wildcard arm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A configuration value, combination or key is invalid, or `security.protocol` does
    /// not match the listener. Fatal: the configuration must change.
    InvalidConfig,
    /// A broker could not be reached or the connection broke (connect, DNS, I/O, closed,
    /// a node missing from the metadata). Retriable, except when no bootstrap server resolves.
    Connection,
    /// A time limit ran out (a client timeout, or the broker's REQUEST_TIMED_OUT).
    Timeout,
    /// SASL or TLS authentication failed. Fatal.
    Authentication,
    /// The broker refused the operation for lack of an ACL (`*_AUTHORIZATION_FAILED`).
    Authorization,
    /// A newer producer with the same `transactional.id`, or a newer static member with the
    /// same `group.instance.id`, took over. Fatal: this instance can do nothing more.
    Fenced,
    /// The producer failed beyond recovery for another reason (see the message and
    /// [`std::error::Error::source`]). Fatal: create a new one.
    Fatal,
    /// The current transaction failed and must be aborted ([`Error::requires_abort`]); the
    /// producer goes on after `abort_transaction`.
    Abortable,
    /// A call that the current state does not allow: a send outside a transaction, a commit
    /// without `begin_transaction`, a position of an unassigned partition.
    IllegalState,
    /// `buffer.memory` is full: `try_send` would have had to wait.
    BufferFull,
    /// The record was discarded, unsent, because its transaction was aborted.
    TransactionAborted,
    /// `try_send` would have had to wait for the topic's metadata.
    WouldBlock,
    /// The producer or consumer was closed.
    Closed,
    /// The producer refused a record larger than `max.request.size` before sending it.
    RecordTooLarge,
    /// The broker answered with an error code not covered above ([`Error::kafka_code`]).
    Broker,
    /// The broker's bytes or versions do not match the protocol: a corrupt stream, a
    /// response missing what was asked, or no common API version. Fatal.
    Protocol,
    /// A key or value could not be serialized, or a fetched one deserialized (Java's
    /// `SerializationException` and `RecordDeserializationException`): the data, a schema or
    /// a schema registry (see [`std::error::Error::source`]). A deserialization error names
    /// the record ([`Error::topic`], [`Error::partition`], [`Error::offset`]). Not retriable
    /// as it is: the same bytes fail the same way.
    Serialization,
    /// Any other failure, e.g. from application code ([`Error::other`]).
    Other,
    /// An invariant of the client broke: a bug, please report it.
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum Kind {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    /// The host of `addr` did not resolve (DNS).
    #[error("cannot resolve the host of {addr}: {source}")]
    Resolve { addr: String, source: std::io::Error },
    /// Not one bootstrap server resolved: fatal, as Java's "No resolvable bootstrap urls".
    #[error("no bootstrap server resolves (check bootstrap.servers): {detail}")]
    NoResolvableBootstrap { detail: String },
    /// The listener speaks another security protocol than `security.protocol` says.
    #[error("{addr}: {hint}")]
    SecurityMismatch { addr: String, hint: String },
    #[error("timed out after {after:?} {what}")]
    Timeout { what: String, after: Duration },
    #[error("I/O error on the connection to {addr}: {source}")]
    Io { addr: String, source: std::io::Error },
    #[error("connection to {addr} closed{}", .reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default())]
    Closed { addr: String, reason: Option<String> },
    #[error("protocol error: {0}")]
    Wire(#[from] WireError),
    #[error("{0}")]
    Version(#[from] VersionError),
    #[error("broker returned {0}")]
    Kafka(ErrorCode),
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("unknown property {0:?}")]
    UnknownProperty(String),
    #[error(
        "the record is {size} bytes when encoded, larger than max.request.size ({max}): refused by the client, not sent"
    )]
    RecordTooLarge { size: usize, max: usize },
    #[error("{message}")]
    Serialization {
        message: String,
        source: Option<Arc<dyn std::error::Error + Send + Sync>>,
    },
    #[error("{0}")]
    Other(String),
    #[error("{0}")]
    IllegalState(String),
    #[error("buffer.memory is full ({needed} bytes needed)")]
    BufferFull { needed: usize },
    #[error("{0}")]
    WouldBlock(String),
    #[error("{0}")]
    TxnAborted(String),
    #[error("{0}")]
    ClosedHandle(String),
    #[error("broker {0} is not in the cluster metadata")]
    UnknownNode(i32),
    #[error("{0}")]
    Protocol(String),
    #[error("{0}")]
    Authentication(String),
    #[error("internal error (a bug, please report it): {0}")]
    Internal(String),
    /// A producer that can do nothing more (its cause, in `Error::cause`, says why).
    #[error("{message}")]
    FatalState { fenced: bool, message: String },
}

fn clone_io(e: &std::io::Error) -> std::io::Error {
    std::io::Error::new(e.kind(), e.to_string())
}

/// One batch's outcome is shared by all its records' delivery futures, so errors clone;
/// an I/O error clones as its kind and message.
impl Clone for Kind {
    fn clone(&self) -> Self {
        match self {
            Kind::Connect { addr, source } => Kind::Connect {
                addr: addr.clone(),
                source: clone_io(source),
            },
            Kind::Resolve { addr, source } => Kind::Resolve {
                addr: addr.clone(),
                source: clone_io(source),
            },
            Kind::NoResolvableBootstrap { detail } => Kind::NoResolvableBootstrap { detail: detail.clone() },
            Kind::SecurityMismatch { addr, hint } => Kind::SecurityMismatch {
                addr: addr.clone(),
                hint: hint.clone(),
            },
            Kind::Timeout { what, after } => Kind::Timeout {
                what: what.clone(),
                after: *after,
            },
            Kind::Io { addr, source } => Kind::Io {
                addr: addr.clone(),
                source: clone_io(source),
            },
            Kind::Closed { addr, reason } => Kind::Closed {
                addr: addr.clone(),
                reason: reason.clone(),
            },
            Kind::Wire(e) => Kind::Wire(*e),
            Kind::Version(e) => Kind::Version(e.clone()),
            Kind::Kafka(c) => Kind::Kafka(*c),
            Kind::Config(m) => Kind::Config(m.clone()),
            Kind::UnknownProperty(k) => Kind::UnknownProperty(k.clone()),
            Kind::RecordTooLarge { size, max } => Kind::RecordTooLarge { size: *size, max: *max },
            Kind::Serialization { message, source } => Kind::Serialization {
                message: message.clone(),
                source: source.clone(),
            },
            Kind::Other(m) => Kind::Other(m.clone()),
            Kind::IllegalState(m) => Kind::IllegalState(m.clone()),
            Kind::BufferFull { needed } => Kind::BufferFull { needed: *needed },
            Kind::WouldBlock(m) => Kind::WouldBlock(m.clone()),
            Kind::TxnAborted(m) => Kind::TxnAborted(m.clone()),
            Kind::ClosedHandle(m) => Kind::ClosedHandle(m.clone()),
            Kind::UnknownNode(n) => Kind::UnknownNode(*n),
            Kind::Protocol(m) => Kind::Protocol(m.clone()),
            Kind::Authentication(m) => Kind::Authentication(m.clone()),
            Kind::Internal(m) => Kind::Internal(m.clone()),
            Kind::FatalState { fenced, message } => Kind::FatalState {
                fenced: *fenced,
                message: message.clone(),
            },
        }
    }
}

impl Error {
    pub(crate) fn new(kind: Kind) -> Self {
        Error {
            kind,
            context: None,
            at: None,
            abortable: false,
            cause: None,
            record: None,
        }
    }

    /// Attaches the record that was not delivered.
    pub(crate) fn with_record(mut self, record: crate::producer::ProducerRecord) -> Self {
        self.record = Some(Box::new(record));
        self
    }

    /// The record that was not delivered, when this is a delivery error
    /// ([`DeliveryFuture`](crate::DeliveryFuture)) or a refused `send`: its topic, partition, key, value,
    /// headers and timestamp as sent, so the application can retry, park or log it.
    pub fn record(&self) -> Option<&crate::producer::ProducerRecord> {
        self.record.as_deref()
    }

    /// The record that was not delivered, owned; see [`Error::record`].
    pub fn into_record(self) -> Option<crate::producer::ProducerRecord> {
        self.record.map(|r| *r)
    }

    /// Records what led to this error (its [`std::error::Error::source`]); the message
    /// ends with it.
    pub(crate) fn with_cause(mut self, cause: Error) -> Self {
        self.cause = Some(Box::new(cause));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        if self.abortable && !self.is_fatal() {
            return ErrorKind::Abortable;
        }
        match &self.kind {
            Kind::Config(_) | Kind::UnknownProperty(_) | Kind::SecurityMismatch { .. } => ErrorKind::InvalidConfig,
            Kind::Connect { .. }
            | Kind::Resolve { .. }
            | Kind::NoResolvableBootstrap { .. }
            | Kind::Io { .. }
            | Kind::Closed { .. }
            | Kind::UnknownNode(_) => ErrorKind::Connection,
            Kind::Timeout { .. } => ErrorKind::Timeout,
            Kind::Wire(_) | Kind::Version(_) | Kind::Protocol(_) => ErrorKind::Protocol,
            Kind::Kafka(code) => kind_of_code(*code),
            Kind::RecordTooLarge { .. } => ErrorKind::RecordTooLarge,
            Kind::Serialization { .. } => ErrorKind::Serialization,
            Kind::Other(_) => ErrorKind::Other,
            Kind::IllegalState(_) => ErrorKind::IllegalState,
            Kind::BufferFull { .. } => ErrorKind::BufferFull,
            Kind::WouldBlock(_) => ErrorKind::WouldBlock,
            Kind::TxnAborted(_) => ErrorKind::TransactionAborted,
            Kind::ClosedHandle(_) => ErrorKind::Closed,
            Kind::Authentication(_) => ErrorKind::Authentication,
            Kind::Internal(_) => ErrorKind::Internal,
            Kind::FatalState { fenced: true, .. } => ErrorKind::Fenced,
            Kind::FatalState { fenced: false, .. } => ErrorKind::Fatal,
        }
    }

    /// A call the current state does not allow (Java's `IllegalStateException`).
    pub(crate) fn illegal_state(msg: impl Into<String>) -> Self {
        Error::new(Kind::IllegalState(msg.into()))
    }

    /// `buffer.memory` has no room for `needed` bytes and the caller would not wait.
    pub(crate) fn buffer_full(needed: usize) -> Self {
        Error::new(Kind::BufferFull { needed })
    }

    /// `try_send` would have had to wait for something other than memory.
    pub(crate) fn would_block(msg: impl Into<String>) -> Self {
        Error::new(Kind::WouldBlock(msg.into()))
    }

    /// A record discarded unsent by a transaction abort.
    pub(crate) fn transaction_aborted(msg: impl Into<String>) -> Self {
        Error::new(Kind::TxnAborted(msg.into()))
    }

    /// The producer or consumer was closed.
    pub(crate) fn closed(msg: impl Into<String>) -> Self {
        Error::new(Kind::ClosedHandle(msg.into()))
    }

    /// A node id the cluster metadata does not (or no longer) list: retriable.
    pub(crate) fn unknown_node(node: i32) -> Self {
        Error::new(Kind::UnknownNode(node)).with_node(node)
    }

    /// The broker broke the protocol (a response missing what was asked, a bad subscription).
    pub(crate) fn protocol(msg: impl Into<String>) -> Self {
        Error::new(Kind::Protocol(msg.into()))
    }

    /// SASL or TLS authentication failed on the client side.
    pub(crate) fn authentication(msg: impl Into<String>) -> Self {
        Error::new(Kind::Authentication(msg.into()))
    }

    /// A broken invariant of the client itself.
    pub(crate) fn internal(msg: impl Into<String>) -> Self {
        Error::new(Kind::Internal(msg.into()))
    }

    /// A producer in a fatal state, `cause` being what put it there (its
    /// [`std::error::Error::source`]): [`ErrorKind::Fenced`] when that was fencing, else
    /// [`ErrorKind::Fatal`].
    pub(crate) fn fatal_state(message: impl Into<String>, cause: Error) -> Self {
        let fenced = cause.kind() == ErrorKind::Fenced;
        Error::new(Kind::FatalState {
            fenced,
            message: message.into(),
        })
        .with_cause(cause)
    }

    /// Marks the error as raised inside a transaction that must now be aborted.
    pub(crate) fn into_abortable(mut self) -> Self {
        self.abortable = true;
        self
    }

    /// The current transaction failed and must be aborted (`abort_transaction`), after which
    /// the producer can begin a new one (Java's abortable errors). False for fatal errors:
    /// a fenced or failed producer must be replaced, not aborted.
    pub fn requires_abort(&self) -> bool {
        self.abortable && !self.is_fatal()
    }

    /// Records the topic and partition the error is about.
    pub(crate) fn with_partition(mut self, topic: &str, partition: i32) -> Self {
        let at = self.at.get_or_insert_with(Default::default);
        at.topic = Some(Arc::from(topic));
        at.partition = Some(partition);
        self
    }

    /// Records the topic the error is about.
    pub(crate) fn with_topic(mut self, topic: &str) -> Self {
        self.at.get_or_insert_with(Default::default).topic = Some(Arc::from(topic));
        self
    }

    /// Records the broker (node id) the error came from.
    pub(crate) fn with_node(mut self, node: i32) -> Self {
        self.at.get_or_insert_with(Default::default).node = Some(node);
        self
    }

    /// The topic the error is about, when known.
    pub fn topic(&self) -> Option<&str> {
        self.at.as_ref()?.topic.as_deref()
    }

    /// The partition the error is about, when known.
    pub fn partition(&self) -> Option<i32> {
        self.at.as_ref()?.partition
    }

    /// The offset of the record the error is about (a record that did not deserialize).
    pub fn offset(&self) -> Option<i64> {
        self.at.as_ref()?.offset
    }

    /// Records the topic, partition and offset of the record the error is about (Java's
    /// `RecordDeserializationException` carries them so the application can seek past it).
    pub fn with_record_position(mut self, topic: &str, partition: i32, offset: i64) -> Self {
        let at = self.at.get_or_insert_with(Default::default);
        at.topic = Some(Arc::from(topic));
        at.partition = Some(partition);
        at.offset = Some(offset);
        self
    }

    /// The broker (node id) the error came from, when known.
    pub fn node(&self) -> Option<i32> {
        self.at.as_ref()?.node
    }

    /// An error for a Kafka error code.
    pub fn kafka(code: ErrorCode) -> Self {
        Error::new(Kind::Kafka(code))
    }

    /// An invalid configuration, naming the key and what was accepted.
    pub fn config(msg: impl Into<String>) -> Self {
        Error::new(Kind::Config(msg.into()))
    }

    /// A configuration key no part of the client knows (`set` by Java property name).
    pub fn unknown_property(key: impl Into<String>) -> Self {
        Error::new(Kind::UnknownProperty(key.into()))
    }

    /// A record the producer refuses before sending: larger than `max.request.size` when
    /// encoded (Java's `RecordTooLargeException`).
    pub(crate) fn record_too_large(size: usize, max: usize) -> Self {
        Error::new(Kind::RecordTooLarge { size, max })
    }

    /// A key or value that did not serialize or deserialize ([`ErrorKind::Serialization`]),
    /// with what caused it (a schema registry's error, a decoder's) as its source.
    pub fn serialization(msg: impl Into<String>, source: Option<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Error::new(Kind::Serialization {
            message: msg.into(),
            source: source.map(Arc::from),
        })
    }

    /// Any other failure, described.
    pub fn other(msg: impl Into<String>) -> Self {
        Error::new(Kind::Other(msg.into()))
    }

    pub(crate) fn timeout(what: impl Into<String>, after: Duration) -> Self {
        Error::new(Kind::Timeout {
            what: what.into(),
            after,
        })
    }

    /// Adds where it happened (topic, partition, group, broker...).
    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        let c = context.into();
        self.context = Some(match self.context.take() {
            Some(prev) => format!("{c}; {prev}"),
            None => c,
        });
        self
    }

    /// The Kafka error code, when the broker sent one, or when the client refused a record
    /// for the reason the code names: a record over `max.request.size` is
    /// `MESSAGE_TOO_LARGE`, as Java's `RecordTooLargeException` is (its message says the
    /// client refused it; see [`Error::is_record_too_large`]).
    pub fn kafka_code(&self) -> Option<ErrorCode> {
        match &self.kind {
            Kind::Kafka(code) => Some(*code),
            Kind::RecordTooLarge { .. } => Some(ErrorCode::MessageTooLarge),
            Kind::FatalState { .. } => self.cause.as_ref().and_then(|c| c.kafka_code()),
            _ => None,
        }
    }

    /// The key, when a configuration key was not known (`set` of an unknown property).
    pub fn unknown_property_key(&self) -> Option<&str> {
        match &self.kind {
            Kind::UnknownProperty(k) => Some(k),
            _ => None,
        }
    }

    /// A configuration error: a bad value, a bad combination or an unknown key.
    pub fn is_config(&self) -> bool {
        matches!(self.kind, Kind::Config(_) | Kind::UnknownProperty(_))
    }

    /// The producer refused the record before sending it: larger than `max.request.size`.
    pub fn is_record_too_large(&self) -> bool {
        matches!(self.kind, Kind::RecordTooLarge { .. })
    }

    /// Trying again (after a backoff, possibly on a new connection) may succeed.
    pub fn is_retriable(&self) -> bool {
        match &self.kind {
            Kind::Connect { .. }
            | Kind::Resolve { .. }
            | Kind::Timeout { .. }
            | Kind::Io { .. }
            | Kind::Closed { .. }
            | Kind::UnknownNode(_) => true,
            Kind::Kafka(code) => code.is_retriable(),
            _ => false,
        }
    }

    /// The broker and Strom share no version of the API: no retry can succeed.
    pub(crate) fn is_no_common_version(&self) -> bool {
        matches!(self.kind, Kind::Version(_))
    }

    /// A time limit ran out.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.kind,
            Kind::Timeout { .. } | Kind::Kafka(ErrorCode::RequestTimedOut)
        )
    }

    /// Nothing will succeed by retrying and the instance cannot go on: bad configuration,
    /// authentication failure, no common protocol version, a fenced or otherwise failed
    /// producer, a corrupt stream. As in Java, a transaction that failed for another reason
    /// is not fatal: it [requires an abort](Error::requires_abort).
    pub fn is_fatal(&self) -> bool {
        match &self.kind {
            Kind::Config(_)
            | Kind::UnknownProperty(_)
            | Kind::Version(_)
            | Kind::Wire(_)
            | Kind::Protocol(_)
            | Kind::Authentication(_)
            | Kind::Internal(_)
            | Kind::NoResolvableBootstrap { .. }
            | Kind::SecurityMismatch { .. } => true,
            Kind::Kafka(code) => matches!(
                code,
                ErrorCode::ProducerFenced
                    | ErrorCode::InvalidProducerEpoch
                    | ErrorCode::TransactionalIdAuthorizationFailed
                    | ErrorCode::ClusterAuthorizationFailed
                    | ErrorCode::SaslAuthenticationFailed
                    | ErrorCode::UnsupportedVersion
                    | ErrorCode::UnsupportedSaslMechanism
                    | ErrorCode::FencedInstanceId
            ),
            Kind::FatalState { .. } => true,
            _ => false,
        }
    }

    /// The connection this error came from is no longer usable.
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self.kind,
            Kind::Connect { .. }
                | Kind::Resolve { .. }
                | Kind::Io { .. }
                | Kind::Closed { .. }
                | Kind::SecurityMismatch { .. }
        )
    }

    /// A host name did not resolve (DNS); fatal when no bootstrap server resolves.
    pub fn is_dns(&self) -> bool {
        matches!(self.kind, Kind::Resolve { .. } | Kind::NoResolvableBootstrap { .. })
    }

    /// The broker's listener speaks another protocol than `security.protocol` (a TLS
    /// listener answering a plaintext client, a client without SASL on a SASL listener).
    /// Fatal: the configuration must change.
    pub fn is_security_mismatch(&self) -> bool {
        matches!(self.kind, Kind::SecurityMismatch { .. })
    }

    /// A timeout's duration (how long was actually waited), when this is one.
    pub fn timeout_after(&self) -> Option<Duration> {
        match self.kind {
            Kind::Timeout { after, .. } => Some(after),
            _ => None,
        }
    }
}

/// The kind a broker error code maps to.
fn kind_of_code(code: ErrorCode) -> ErrorKind {
    match code {
        ErrorCode::ProducerFenced | ErrorCode::InvalidProducerEpoch | ErrorCode::FencedInstanceId => ErrorKind::Fenced,
        ErrorCode::SaslAuthenticationFailed | ErrorCode::UnsupportedSaslMechanism | ErrorCode::IllegalSaslState => {
            ErrorKind::Authentication
        }
        ErrorCode::TopicAuthorizationFailed
        | ErrorCode::GroupAuthorizationFailed
        | ErrorCode::ClusterAuthorizationFailed
        | ErrorCode::TransactionalIdAuthorizationFailed
        | ErrorCode::DelegationTokenAuthorizationFailed => ErrorKind::Authorization,
        ErrorCode::RequestTimedOut => ErrorKind::Timeout,
        ErrorCode::UnsupportedVersion => ErrorKind::Protocol,
        _ => ErrorKind::Broker,
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        Error::new(Kind::Wire(e))
    }
}

impl From<VersionError> for Error {
    fn from(e: VersionError) -> Self {
        Error::new(Kind::Version(e))
    }
}

/// Result with the client [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Fails with the code, naming the resource and the broker's message.
pub(crate) fn check(code: i16, message: Option<&StrBytes>, resource: impl FnOnce() -> String) -> Result<()> {
    let code = ErrorCode::from(code);
    if code.is_ok() {
        return Ok(());
    }
    let mut ctx = resource();
    if let Some(m) = message.filter(|m| !m.is_empty()) {
        ctx.push_str(": ");
        ctx.push_str(m.as_str());
    }
    Err(Error::kafka(code).with_context(ctx))
}

/// The error for a Java property Strom knows but does not implement: it says so, why, and
/// what to do instead (never accepted and ignored).
pub(crate) fn unsupported(key: &str, why: &str) -> Error {
    Error::config(format!("{key} is not supported: {why}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predicates() {
        let e = Error::kafka(ErrorCode::NotLeaderOrFollower).with_context("topic t partition 0");
        assert!(e.is_retriable() && !e.is_fatal() && !e.is_timeout());
        assert_eq!(e.kafka_code(), Some(ErrorCode::NotLeaderOrFollower));
        assert!(e.to_string().contains("NOT_LEADER_OR_FOLLOWER"), "{e}");
        assert!(e.to_string().ends_with("(topic t partition 0)"), "{e}");
        let e = Error::kafka(ErrorCode::ProducerFenced);
        assert!(e.is_fatal() && !e.is_retriable());
        let e = Error::timeout("waiting for Metadata from 127.0.0.1:9092", Duration::from_secs(3));
        assert!(e.is_timeout() && e.is_retriable());
        assert_eq!(
            e.to_string(),
            "timed out after 3s waiting for Metadata from 127.0.0.1:9092"
        );
    }

    #[test]
    fn kinds_follow_the_java_classification() {
        use std::error::Error as _;
        let kind = |c| Error::kafka(c).kind();
        assert_eq!(kind(ErrorCode::ProducerFenced), ErrorKind::Fenced);
        assert_eq!(kind(ErrorCode::TopicAuthorizationFailed), ErrorKind::Authorization);
        assert_eq!(kind(ErrorCode::SaslAuthenticationFailed), ErrorKind::Authentication);
        assert_eq!(kind(ErrorCode::RequestTimedOut), ErrorKind::Timeout);
        assert_eq!(kind(ErrorCode::NotLeaderOrFollower), ErrorKind::Broker);
        // Inside a transaction a broker error requires an abort; fencing stays fatal.
        let e = Error::kafka(ErrorCode::MessageTooLarge).into_abortable();
        assert!(e.requires_abort() && !e.is_fatal() && e.kind() == ErrorKind::Abortable);
        assert_eq!(e.kafka_code(), Some(ErrorCode::MessageTooLarge));
        let e = Error::kafka(ErrorCode::ProducerFenced).into_abortable();
        assert!(!e.requires_abort() && e.is_fatal() && e.kind() == ErrorKind::Fenced);
        // A fatal state says fenced or fatal by its cause, and keeps the cause's code.
        let e = Error::fatal_state("fatal state", Error::kafka(ErrorCode::ProducerFenced));
        assert!(e.is_fatal() && e.kind() == ErrorKind::Fenced);
        assert_eq!(e.kafka_code(), Some(ErrorCode::ProducerFenced));
        assert!(e.source().is_some_and(|c| c.to_string().contains("PRODUCER_FENCED")));
        let e = Error::fatal_state(
            "fatal state",
            Error::kafka(ErrorCode::TransactionalIdAuthorizationFailed),
        );
        assert!(e.is_fatal() && e.kind() == ErrorKind::Fatal);
        let e = Error::illegal_state("send before begin_transaction");
        assert!(!e.is_fatal() && !e.is_retriable() && e.kind() == ErrorKind::IllegalState);
        let e = Error::unknown_node(3);
        assert!(e.is_retriable() && e.kind() == ErrorKind::Connection && e.node() == Some(3));
        let e = Error::kafka(ErrorCode::NotLeaderOrFollower)
            .with_partition("t", 2)
            .with_node(1);
        assert_eq!((e.topic(), e.partition(), e.node()), (Some("t"), Some(2), Some(1)));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = Error::new(Kind::Connect {
            addr: "h:1".into(),
            source: io,
        });
        assert!(e.source().is_some_and(|c| c.to_string() == "refused"));
    }
}
