//! The client error: an opaque type with a private kind, predicates, and where it happened.

use std::time::Duration;

use strom_protocol::versions::VersionError;
use strom_protocol::{ErrorCode, WireError};

/// An error from the Strom client.
///
/// Ask it what it means rather than matching on it: [`Error::is_retriable`],
/// [`Error::is_timeout`], [`Error::is_fatal`], [`Error::kafka_code`].
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}{}", .context.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())]
pub struct Error {
    kind: Kind,
    context: Option<String>,
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
    #[error("{0}")]
    Other(String),
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
            Kind::Other(m) => Kind::Other(m.clone()),
        }
    }
}

impl Error {
    pub(crate) fn new(kind: Kind) -> Self {
        Error { kind, context: None }
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
        match self.kind {
            Kind::Kafka(code) => Some(code),
            Kind::RecordTooLarge { .. } => Some(ErrorCode::MessageTooLarge),
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
            | Kind::Closed { .. } => true,
            Kind::Kafka(code) => code.is_retriable(),
            _ => false,
        }
    }

    /// A time limit ran out.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.kind,
            Kind::Timeout { .. } | Kind::Kafka(ErrorCode::RequestTimedOut)
        )
    }

    /// Nothing will succeed by retrying: bad configuration, authentication or authorization
    /// failure, no common protocol version, a fenced producer, a corrupt stream.
    pub fn is_fatal(&self) -> bool {
        match &self.kind {
            Kind::Config(_)
            | Kind::UnknownProperty(_)
            | Kind::Version(_)
            | Kind::Wire(_)
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
}
