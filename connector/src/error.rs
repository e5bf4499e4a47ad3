//! The connector's error type.

use thiserror::Error;

/// Result with [`ConnectorError`].
pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

/// What can go wrong in a source, a sink, a checkpoint or a pipeline.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// The Kafka client failed (connection, broker error, timeout...).
    #[error(transparent)]
    Client(#[from] strom_client::Error),
    /// A builder was given an invalid or incomplete configuration.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A record could not be deserialized; names where it came from.
    #[error("cannot deserialize record at {topic}-{partition} offset {offset}: {reason}")]
    Deserialize {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Offset.
        offset: i64,
        /// Why.
        reason: String,
    },
    /// A record could not be serialized for the sink.
    #[error("cannot serialize record: {0}")]
    Serialize(String),
    /// Checkpoint storage failed (I/O, corrupt file with no older valid checkpoint...).
    #[error("checkpoint store: {0}")]
    Checkpoint(String),
    /// Filesystem error with the path involved.
    #[error("{path}: {source}")]
    Io {
        /// File or directory.
        path: std::path::PathBuf,
        /// Underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A sink other than through the Kafka client failed (e.g. the file sink's I/O).
    #[error("sink: {0}")]
    Sink(String),
    /// A user function (map/filter/flat_map) failed.
    #[error("user function failed: {0}")]
    User(String),
}

impl ConnectorError {
    /// A [`ConnectorError::Io`] for `path`.
    pub fn io(path: impl Into<std::path::PathBuf>, source: std::io::Error) -> Self {
        ConnectorError::Io {
            path: path.into(),
            source,
        }
    }
}
