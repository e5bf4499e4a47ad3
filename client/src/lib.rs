//! Async Kafka client for Strom, on tokio.
//!
//! * [`Client`]: the shared handle: configuration, cluster metadata, one pipelined
//!   connection per broker with reconnect backoff.
//! * [`Admin`]: topics, configs, offsets, groups, cluster.
//! * [`ClientConfig`]: typed settings, also by Java property name.
//! * [`Producer`], [`TransactionalProducer`], [`Consumer`]: the roles.
//!
//! The public API is Strom's own types. Raw Kafka requests (the `kafka-protocol` message
//! types) appear only in [`lowlevel`]: a broker [`lowlevel::Connection`] that sends any
//! request, and the protocol crate as [`lowlevel::protocol`].
//!
//! Every public async method says what dropping its future does (a `select!` arm that
//! lost, a timeout). None corrupts a connection or the client's state: a record is queued
//! whole or not at all, a `poll` loses and repeats no record and applies a rebalance whole,
//! a commit leaves the old or the new offsets. What a dropped call cannot tell you is
//! whether a request it had sent took effect (an Admin change, a commit, a transaction's
//! end); its docs say how to find out. Each of them is dropped after every number of polls
//! and checked: `fake/tests/cancellation.rs` (against strom-fake) and, for Admin and the share
//! consumer, `integration-tests/tests/cancellation.rs` (against the broker).
//!
//! TLS (`security.protocol=SSL` / `SASL_SSL`) uses rustls with the crypto provider the program
//! installed (`rustls::crypto::CryptoProvider::install_default`), else one built in by a
//! feature: `tls-ring` (ring; its build needs a C compiler) or `tls-graviola` (pure Rust,
//! x86_64/aarch64). With neither, TLS settings are a configuration error saying so; the
//! default build compiles no C. Key and trust stores are read as Java reads them: PEM,
//! PKCS12 and JKS files with `ssl.keystore.*`, `ssl.truststore.*` and `ssl.key.password`
//! (see [`Security`] for the rules). Feature `gssapi` adds SASL GSSAPI through the system's
//! MIT Kerberos.

mod admin;
mod admin_acl;
mod admin_cluster;
mod admin_configs;
mod admin_features;
mod admin_groups;
mod admin_logdirs;
mod admin_quota;
mod admin_share;
mod admin_token;
mod admin_topics;
mod admin_txn;
mod backoff;
mod client;
mod config;
mod connection;
pub mod consumer;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod librdkafka;
mod lookup;
mod metadata;
pub mod metrics;
pub mod producer;
mod role_config;
mod scram;
mod security;
pub mod serialization;
pub mod share;
pub mod statistics;
mod stream;
mod topic_partition;
#[cfg(feature = "opentelemetry")]
pub mod trace_context;

mod custom_transport;
mod transport;
mod wire;

pub use admin::{
    Admin, ClusterDescription, CoordinatorType, DeletedRecords, ListedOffset, OffsetSpec, PartitionOffsets,
};
pub use admin_acl::{AclBinding, AclBindingFilter, AclOperation, AclPatternType, AclPermissionType, AclResourceType};
pub use admin_cluster::{ElectionType, PartitionReassignment};
pub use admin_configs::{AlterConfigOp, ConfigEntry, ConfigResource, ConfigSource, ConfigSynonym};
pub use admin_features::{FeatureMetadata, FeatureUpgradeType, QuorumInfo, QuorumReplica};
pub use admin_groups::{
    ConsumerGroupDescription, ConsumerGroupMember, GroupDescription, GroupListing, GroupMember, GroupType,
};
pub use admin_logdirs::{LogDirDescription, ReplicaInfo, TopicPartitionReplica};
pub use admin_quota::{
    ClientQuotas, QuotaEntity, QuotaFilter, QuotaMatch, QuotaOp, QUOTA_CLIENT_ID, QUOTA_IP, QUOTA_USER,
};
pub use admin_share::{ShareGroupDescription, ShareGroupMember};
pub use admin_token::{CreateDelegationTokenOptions, DelegationToken};
pub use admin_topics::{CreateTopicsOptions, CreatedTopic, NewTopic, TopicDescription};
pub use admin_txn::{ProducerState, TransactionDescription, TransactionListing};
pub use client::{BrokerInfo, BrokerMetrics, Client, ClusterMetadata, PartitionInfo, TopicInfo};
pub use config::{
    is_secret_key, parse_properties, ClientConfig, ClientDnsLookup, MetadataRecoveryStrategy, SecurityProtocol,
};
pub use connection::ConnectionMetrics;
pub use consumer::{
    CommitFuture, Consumer, ConsumerHandle, ConsumerMetrics, ConsumerRecord, OffsetAndMetadata, OffsetAndTimestamp,
    RebalanceContext, RebalanceListener, TopicPartition,
};
pub use custom_transport::{ConnectFuture, Transport, TransportStream};
pub use error::{Error, ErrorKind, Result};
pub use producer::{
    abort_lingering, resume_transaction, ConsumerGroupMetadata, DeliveryFuture, Partitioner, PartitionerClass,
    PreparedTransaction, Producer, ProducerRecord, RecordMetadata, TransactionalProducer, TrySendError,
};
pub use role_config::{
    Acks, ConsumerConfig, ConsumerConfigBuilder, GroupProtocol, IsolationLevel, OffsetReset, ProducerConfig,
    ProducerConfigBuilder,
};
pub use scram::ScramUser;
pub use security::{OAuthBearerToken, ScramMechanism, Security, TokenFuture, TokenProvider};
/// Codec types the public API uses, re-exported from the protocol crate. The Kafka
/// message types themselves are reachable only through [`lowlevel`].
pub use strom_protocol::{
    murmur2::partition_for_key,
    record_batch::{Header, Headers, Record, TimestampType},
    Compression, CompressionLevel, ErrorCode,
};

/// The low-level surface: a raw connection to one broker that sends any Kafka request and
/// returns its response (the `kafka-protocol` message types, through [`lowlevel::protocol`]).
/// For tools, tests and APIs Strom does not wrap yet; everything else has a typed API.
///
/// ```no_run
/// # async fn demo() -> strom_client::Result<()> {
/// use strom_client::lowlevel::{protocol::messages::MetadataRequest, Connection, ConnectionConfig};
///
/// let conn = Connection::connect("127.0.0.1:9092", ConnectionConfig::default()).await?;
/// let metadata = conn.send(&MetadataRequest::default()).await?;
/// println!("{} brokers", metadata.brokers.len());
/// # Ok(()) }
/// ```
pub mod lowlevel {
    pub use crate::connection::{Connection, ConnectionConfig};
    pub use strom_protocol as protocol;
}
