//! The Kafka sink: Flink's `KafkaSink` (connector 4.x) in Rust.
//!
//! A [`Pipeline`](crate::Pipeline) drives a sink's writer and committer. Driven by hand,
//! the checkpoint protocol is:
//!
//! ```no_run
//! # async fn run(elements: Vec<String>) -> strom_connector::Result<()> {
//! use strom_connector::sink::{DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, SinkRestore, StringSerializer};
//!
//! let sink = KafkaSink::<String>::builder()
//!     .bootstrap_servers("127.0.0.1:9092")
//!     .record_serializer(
//!         KafkaRecordSerializationSchema::builder()
//!             .topic("out")
//!             .value_serializer(StringSerializer)
//!             .build()?,
//!     )
//!     .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
//!     .transactional_id_prefix("orders-sink")
//!     .build()?;
//! // After a crash: SinkRestore::new(c, committables not known committed, vec![writer state]).
//! let restored = SinkRestore::default();
//! let (subtask, parallelism) = (0, 1);
//! let mut writer = sink.restore_writer(subtask, parallelism, &restored).await?;
//! let committer = writer.committer();
//! let mut checkpoint_id = 1;
//! for chunk in elements.chunks(1000) {
//!     for element in chunk {
//!         writer.write(element).await?;
//!     }
//!     // A checkpoint: pre-commit, store durably, then commit.
//!     let committables = writer.prepare_commit(checkpoint_id).await?;
//!     let state = writer.snapshot_state(checkpoint_id);
//!     // ... store (checkpoint_id, state, committables, source state) durably here ...
//!     # let _ = state;
//!     committer.commit(&committables).await?;
//!     writer.notify_checkpoint_complete(checkpoint_id);
//!     checkpoint_id += 1;
//! }
//! writer.close().await?;
//! # Ok(())
//! # }
//! ```
//!
//! # Delivery guarantees ([`DeliveryGuarantee`])
//!
//! * **None**: records go out through one producer (idempotent, as Java's default); a
//!   checkpoint does not wait for them, so records in flight when the process dies are lost,
//!   and a retried checkpoint duplicates. Failures seen are still reported, unless
//!   [`KafkaSinkBuilder::set_log_failures_only`] says to log them and go on (may lose data).
//! * **AtLeastOnce** (default): as none, but [`KafkaSinkWriter::prepare_commit`] flushes and
//!   waits for every record written since the last checkpoint; any failure (at send or in
//!   its delivery result) fails the checkpoint and the writer. Replays after a restore
//!   duplicate.
//! * **ExactlyOnce**: one transaction per checkpoint, `prefix-subtask-checkpointId`, begun
//!   with the first record after a checkpoint (a checkpoint without records costs no round
//!   trip: no InitProducerId, no EndTxn), pre-committed at the checkpoint
//!   ([`KafkaCommittable`]), committed by [`KafkaCommitter`] once the checkpoint is durable.
//!   Readers with `isolation.level=read_committed` see each record once. On restore, pending
//!   committables are committed and transactions the previous run left open are fenced and
//!   aborted (Flink's PROBING; see [`recovery`] for how ids are probed and kept dense).
//!
//! `transaction.timeout.ms` defaults to Flink's 1 hour and must not exceed the brokers'
//! `transaction.max.timeout.ms` (15 minutes by default!): a writer checks it when it starts.
//! It must also be far longer than a restart takes, or the broker aborts pre-committed
//! transactions before they are committed and their records are lost.
//!
//! # Producers
//!
//! Each writer has one [`Client`] (connections, metadata) shared by its producers, its
//! committer and its admin calls. Exactly-once makes one [`TransactionalProducer`] per
//! transaction: creating one is free (a task, no I/O); `init_transactions` costs a
//! FindCoordinator and an InitProducerId round trip, once per non-empty checkpoint. The
//! client cannot rename a producer's transactional id, so Flink's producer pool would save
//! nothing more than the shared client already does.
//!
//! [`TransactionalProducer`]: strom_client::TransactionalProducer

mod committer;
mod metrics;
pub mod recovery;
#[cfg(feature = "schemas")]
mod schema_formats;
mod serializer;
pub mod two_phase;
mod writer;

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use strom_client::{Admin, Client, ConfigResource, Producer, ProducerConfig};
use tracing::{info, warn};

pub use committer::{CommitOutcome, KafkaCommittable, KafkaCommitter};
pub use metrics::{SinkMetrics, SinkMetricsSnapshot};
pub use recovery::{transactional_id, KafkaWriterState, RestoreReport, SinkRestore};
#[cfg(feature = "schemas")]
pub use schema_formats::{AvroSerialization, JsonSchemaSerialization, ProtobufSerialization, Specific as AvroSpecific};
pub use serializer::{
    BytesSerializer, FixedPartitioner, JsonSerializer, KafkaRecordSerializationSchema,
    KafkaRecordSerializationSchemaBuilder, KafkaRecordSerializer, KafkaSinkContext, SerializationSchema,
    SinkPartitioner, StringSerializer,
};
pub use two_phase::{SinkCommitter, SinkWriter, TwoPhaseCommitSink};
pub use writer::KafkaSinkWriter;

use crate::error::{ConnectorError, Result};

/// Flink's `KafkaSinkBuilder` default for `transaction.timeout.ms`: 1 hour.
pub const DEFAULT_TRANSACTION_TIMEOUT: Duration = Duration::from_secs(3600);

/// What the sink promises about each record (Flink's `DeliveryGuarantee`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DeliveryGuarantee {
    /// No promise: records may be lost or duplicated.
    None,
    /// No loss; duplicates after a failure (default).
    #[default]
    AtLeastOnce,
    /// Each record visible once to read_committed readers, through transactions.
    ExactlyOnce,
}

impl FromStr for DeliveryGuarantee {
    type Err = ConnectorError;

    /// Flink's option values: `none`, `at-least-once`, `exactly-once` (any case, `_` for `-`).
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().replace('_', "-").as_str() {
            "none" => Ok(DeliveryGuarantee::None),
            "at-least-once" => Ok(DeliveryGuarantee::AtLeastOnce),
            "exactly-once" => Ok(DeliveryGuarantee::ExactlyOnce),
            _ => Err(ConnectorError::Config(format!(
                "delivery guarantee {s:?}: expected none, at-least-once or exactly-once"
            ))),
        }
    }
}

impl fmt::Display for DeliveryGuarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DeliveryGuarantee::None => "none",
            DeliveryGuarantee::AtLeastOnce => "at-least-once",
            DeliveryGuarantee::ExactlyOnce => "exactly-once",
        })
    }
}

/// What every writer of one sink shares.
pub(crate) struct SinkShared<T> {
    /// Validated producer settings, without a transactional id.
    pub(crate) producer_config: ProducerConfig,
    pub(crate) guarantee: DeliveryGuarantee,
    pub(crate) prefix: Option<String>,
    pub(crate) serializer: Arc<dyn KafkaRecordSerializer<T>>,
    client_id_set: bool,
    /// Records carry the element's timestamp ([`KafkaSinkBuilder::write_timestamp_to_kafka`]).
    pub(crate) write_timestamp: bool,
    /// A refused record is logged and counted, not fatal ([`KafkaSinkBuilder::set_log_failures_only`]).
    pub(crate) log_failures_only: bool,
    ignored_properties: Vec<String>,
}

/// A configured Kafka sink: makes one [`KafkaSinkWriter`] per subtask. Cheap `Clone`.
/// Flink's `KafkaSink`, built the same way; building checks the settings without
/// connecting.
///
/// ```
/// use std::time::Duration;
/// use strom_connector::sink::{DeliveryGuarantee, KafkaRecordSerializationSchema, KafkaSink, StringSerializer};
///
/// let sink: KafkaSink<String> = KafkaSink::builder()
///     .bootstrap_servers("127.0.0.1:9092")
///     .record_serializer(
///         KafkaRecordSerializationSchema::builder()
///             .topic("orders-upper")
///             .key_serializer(StringSerializer) // optional; the value is required
///             .value_serializer(StringSerializer)
///             .build()?,
///     )
///     .delivery_guarantee(DeliveryGuarantee::ExactlyOnce)
///     .transactional_id_prefix("orders-upper") // required for exactly-once
///     .transaction_timeout(Duration::from_secs(15 * 60)) // a stock broker's maximum
///     .property("compression.type", "zstd") // any producer property by its Java name
///     .build()?;
/// assert_eq!(sink.transactional_id_prefix(), Some("orders-upper"));
/// # Ok::<(), strom_connector::ConnectorError>(())
/// ```
///
/// [`Pipeline`](crate::Pipeline) runs it; the [module docs](self) show the checkpoint
/// protocol when driving a writer by hand.
pub struct KafkaSink<T> {
    shared: Arc<SinkShared<T>>,
}

impl<T> Clone for KafkaSink<T> {
    fn clone(&self) -> Self {
        KafkaSink {
            shared: self.shared.clone(),
        }
    }
}

impl<T> fmt::Debug for KafkaSink<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ProducerConfig's Debug redacts secrets (ClientConfig hides sasl/ssl values).
        f.debug_struct("KafkaSink")
            .field("delivery_guarantee", &self.shared.guarantee)
            .field("transactional_id_prefix", &self.shared.prefix)
            .field("producer_config", &self.shared.producer_config)
            .finish_non_exhaustive()
    }
}

impl<T> KafkaSink<T> {
    /// A builder (Flink's `KafkaSink.builder()`).
    pub fn builder() -> KafkaSinkBuilder<T> {
        KafkaSinkBuilder {
            bootstrap_servers: None,
            serializer: None,
            guarantee: DeliveryGuarantee::default(),
            prefix: None,
            properties: Vec::new(),
            transaction_timeout: None,
            write_timestamp: true,
            log_failures_only: false,
        }
    }

    /// The delivery guarantee.
    pub fn delivery_guarantee(&self) -> DeliveryGuarantee {
        self.shared.guarantee
    }

    /// The transactional id prefix (exactly-once).
    pub fn transactional_id_prefix(&self) -> Option<&str> {
        self.shared.prefix.as_deref()
    }

    /// Whether a record the broker refuses is only logged and counted
    /// ([`KafkaSinkBuilder::set_log_failures_only`]).
    pub fn logs_failures_only(&self) -> bool {
        self.shared.log_failures_only
    }

    /// Whether records carry the element's timestamp.
    pub(crate) fn writes_timestamp(&self) -> bool {
        self.shared.write_timestamp
    }

    /// The record serializer (elastic mode writes with it).
    pub(crate) fn serializer(&self) -> Arc<dyn KafkaRecordSerializer<T>> {
        self.shared.serializer.clone()
    }

    /// Properties that are no producer or client setting: accepted, logged with a warning at
    /// build, and not used.
    pub fn ignored_properties(&self) -> &[String] {
        &self.shared.ignored_properties
    }

    /// The producer settings writers use (without transactional id).
    pub fn producer_config(&self) -> &ProducerConfig {
        &self.shared.producer_config
    }

    /// A writer for subtask `subtask` of `parallelism` starting without a checkpoint. Under
    /// exactly-once it still aborts what an earlier run with the same prefix left open, as
    /// Flink does. Same as [`KafkaSink::restore_writer`] with `SinkRestore::default()`.
    pub async fn create_writer(&self, subtask: u32, parallelism: u32) -> Result<KafkaSinkWriter<T>> {
        self.restore_writer(subtask, parallelism, &SinkRestore::default()).await
    }

    /// A writer for subtask `subtask` of `parallelism`, restored from a checkpoint:
    ///
    /// 1. connects, checks that the fixed sink topics exist (an error names a missing one)
    ///    and, for exactly-once, that `transaction.timeout.ms` is within the brokers'
    ///    `transaction.max.timeout.ms`;
    /// 2. commits `restore.committables` (already committed or fenced counts as done);
    /// 3. probes and aborts transactions left open above the restored checkpoint by the
    ///    subtasks this one owns, under the current prefix and any prefix found in the
    ///    restored writer states ([`recovery`]);
    /// 4. returns the writer, whose next checkpoint must be above the restored one.
    pub async fn restore_writer(
        &self,
        subtask: u32,
        parallelism: u32,
        restore: &SinkRestore,
    ) -> Result<KafkaSinkWriter<T>> {
        if parallelism == 0 || subtask >= parallelism {
            return Err(ConnectorError::Config(format!(
                "subtask {subtask} of parallelism {parallelism}: need 0 <= subtask < parallelism"
            )));
        }
        let shared = &self.shared;
        let mut cfg = shared.producer_config.clone();
        if !shared.client_id_set {
            cfg.client.client_id = format!("{}-{subtask}", shared.prefix.as_deref().unwrap_or("strom-kafka-sink"));
        }
        let client = Client::connect(cfg.client.clone()).await?;
        for topic in shared.serializer.fixed_topics() {
            check_topic(&client, &topic).await?;
        }
        if shared.guarantee == DeliveryGuarantee::ExactlyOnce {
            check_transaction_timeout(&client, cfg.transaction_timeout).await?;
        }

        let metrics = SinkMetrics::default();
        metrics.set_producer_registry(client.metric_registry());
        let mut report = RestoreReport::default();
        let committer = KafkaCommitter::with_metrics(client.clone(), metrics.clone());
        for c in &restore.committables {
            committer.commit_one(c).await?;
            report.committed.push(c.transactional_id.clone());
        }

        let mut prefixes: Vec<String> = Vec::new();
        if shared.guarantee == DeliveryGuarantee::ExactlyOnce {
            prefixes.extend(shared.prefix.clone());
        }
        for st in &restore.writer_states {
            if let Some(p) = &st.transactional_id_prefix {
                if !prefixes.contains(p) {
                    prefixes.push(p.clone());
                }
            }
        }
        if !prefixes.is_empty() {
            let owned = recovery::owned_subtasks(subtask, parallelism, restore);
            let skip: HashSet<String> = restore
                .committables
                .iter()
                .map(|c| c.transactional_id.clone())
                .collect();
            for prefix in &prefixes {
                recovery::abort_lingering_transactions(&client, prefix, &owned, &skip, &mut report).await?;
            }
            metrics.aborted(report.aborted.len() as u64);
            info!(
                subtask,
                committed = report.committed.len(),
                aborted = report.aborted.len(),
                probed = report.probed,
                "sink writer restored"
            );
        }

        let producer = match shared.guarantee {
            DeliveryGuarantee::ExactlyOnce => None,
            _ => Some(Producer::with_client(client.clone(), cfg)?),
        };
        Ok(KafkaSinkWriter::new(
            self.shared.clone(),
            client,
            producer,
            subtask,
            parallelism,
            restore.checkpoint_id.unwrap_or(0),
            metrics,
            report,
        ))
    }

    /// A committer with its own connection (for a process that only commits).
    pub async fn create_committer(&self) -> Result<KafkaCommitter> {
        let client = Client::connect(self.shared.producer_config.client.clone()).await?;
        Ok(KafkaCommitter::new(client))
    }
}

/// Fails with an error naming `topic` when it does not exist.
async fn check_topic(client: &Client, topic: &str) -> Result<()> {
    match client.topic(topic).await {
        Ok(_) => Ok(()),
        Err(e) => Err(ConnectorError::Client(
            if e.kafka_code() == Some(strom_client::ErrorCode::UnknownTopicOrPartition) {
                e.with_context(format!(
                    "the sink topic {topic:?} does not exist; create it first (Java's producer would wait \
                     max.block.ms for it)"
                ))
            } else {
                e.with_context(format!("metadata of the sink topic {topic:?}"))
            },
        )),
    }
}

/// Compares `transaction.timeout.ms` with the brokers' `transaction.max.timeout.ms`, which
/// would otherwise fail the first transaction with INVALID_TRANSACTION_TIMEOUT. When the
/// broker setting cannot be read (no DescribeConfigs permission), only a warning is logged.
async fn check_transaction_timeout(client: &Client, timeout: Duration) -> Result<()> {
    let md = client.metadata();
    let Some(&broker) = md.brokers.keys().next() else {
        return Ok(());
    };
    let entries = match Admin::new(client.clone())
        .describe_configs(&ConfigResource::Broker(broker))
        .await
    {
        Ok(e) => e,
        Err(e) => {
            warn!(error = %e, "cannot read the broker's transaction.max.timeout.ms; not checked");
            return Ok(());
        }
    };
    let max = entries
        .iter()
        .find(|e| e.name == "transaction.max.timeout.ms")
        .and_then(|e| e.value.as_deref())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match max {
        Some(max) if timeout.as_millis() > u128::from(max) => Err(ConnectorError::Config(format!(
            "transaction.timeout.ms={} is above the broker's transaction.max.timeout.ms={max} (broker {broker}): \
             lower the sink's transaction.timeout.ms or raise transaction.max.timeout.ms on every broker \
             (Flink's default timeout is 1 h, the broker's default maximum 15 min)",
            timeout.as_millis()
        ))),
        Some(_) => Ok(()),
        None => {
            warn!(
                broker,
                "the broker did not report transaction.max.timeout.ms; not checked"
            );
            Ok(())
        }
    }
}

/// Values of these properties never appear in Debug output.
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k.contains("password") || k.contains("jaas") || k.contains("secret") || k.contains("token") || k.ends_with(".key")
}

/// Builds a [`KafkaSink`] (Flink's `KafkaSinkBuilder`).
pub struct KafkaSinkBuilder<T> {
    bootstrap_servers: Option<String>,
    serializer: Option<Arc<dyn KafkaRecordSerializer<T>>>,
    guarantee: DeliveryGuarantee,
    prefix: Option<String>,
    properties: Vec<(String, String)>,
    transaction_timeout: Option<Duration>,
    write_timestamp: bool,
    log_failures_only: bool,
}

impl<T> fmt::Debug for KafkaSinkBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let props: Vec<(&str, &str)> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret(k) { "[redacted]" } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaSinkBuilder")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("record_serializer", &self.serializer.is_some())
            .field("delivery_guarantee", &self.guarantee)
            .field("transactional_id_prefix", &self.prefix)
            .field("properties", &props)
            .field("transaction_timeout", &self.transaction_timeout)
            .field("write_timestamp_to_kafka", &self.write_timestamp)
            .field("log_failures_only", &self.log_failures_only)
            .finish()
    }
}

impl<T> KafkaSinkBuilder<T> {
    /// `bootstrap.servers` (Flink's `setBootstrapServers`).
    pub fn bootstrap_servers(mut self, servers: impl Into<String>) -> Self {
        self.bootstrap_servers = Some(servers.into());
        self
    }

    /// How elements become records (Flink's `setRecordSerializer`); required. Use
    /// [`KafkaRecordSerializationSchema::builder`] or any [`KafkaRecordSerializer`].
    pub fn record_serializer(mut self, serializer: impl KafkaRecordSerializer<T> + 'static) -> Self {
        self.serializer = Some(Arc::new(serializer));
        self
    }

    /// The delivery guarantee (default at-least-once).
    pub fn delivery_guarantee(mut self, guarantee: DeliveryGuarantee) -> Self {
        self.guarantee = guarantee;
        self
    }

    /// Prefix of the transactional ids (`prefix-subtask-checkpointId`); required for
    /// exactly-once, and must be unique to this sink across the cluster.
    pub fn transactional_id_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// A producer property by its Java name (`acks`, `compression.type`, `linger.ms`,
    /// `security.protocol`, `sasl.*`, `transaction.timeout.ms`, ...). A key that is no
    /// producer or client setting is accepted with a warning and not used, as Flink does
    /// ([`KafkaSink::ignored_properties`] lists them); a bad value of a known key fails
    /// [`build`](Self::build).
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Several properties (later ones win).
    pub fn properties<K: Into<String>, V: Into<String>>(mut self, props: impl IntoIterator<Item = (K, V)>) -> Self {
        self.properties
            .extend(props.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// Whether records carry the element's timestamp (the legacy producer's
    /// `setWriteTimestampToKafka`; default true, as Flink's `KafkaSink` writes it). False:
    /// the record timestamp is left unset and the producer stamps the send time (the
    /// broker's, for a topic with `LogAppendTime`).
    pub fn write_timestamp_to_kafka(mut self, write: bool) -> Self {
        self.write_timestamp = write;
        self
    }

    /// The legacy `FlinkKafkaProducer.setLogFailuresOnly(bool)` (default false). **May lose
    /// data**: when on, a record that cannot be delivered (the broker refuses it, e.g. larger
    /// than the topic's `max.message.bytes`; its delivery times out; the producer refuses it,
    /// e.g. over `max.request.size`) is logged at `warn` and counted in `numRecordsOutErrors`
    /// ([`SinkMetrics::num_records_out_errors`]), and the writer carries on as if it had been
    /// written. A failure of the producer itself (fatal: fenced, authorization, a broken
    /// configuration) still fails the writer, since no later record could be written either.
    ///
    /// Only with [`DeliveryGuarantee::None`]: the legacy seed says of it "This must be disabled
    /// for at-least-once", so [`build`](Self::build) refuses it with at-least-once and
    /// exactly-once, whose promises it would break.
    pub fn set_log_failures_only(mut self, log_only: bool) -> Self {
        self.log_failures_only = log_only;
        self
    }

    /// `transaction.timeout.ms` (default [`DEFAULT_TRANSACTION_TIMEOUT`], Flink's 1 h); wins
    /// over the property.
    pub fn transaction_timeout(mut self, timeout: Duration) -> Self {
        self.transaction_timeout = Some(timeout);
        self
    }

    /// Validates everything that can be checked without a broker.
    pub fn build(self) -> Result<KafkaSink<T>> {
        let serializer = self
            .serializer
            .ok_or_else(|| ConnectorError::Config("KafkaSink: set a record serializer".into()))?;
        let mut cfg = ProducerConfig::default();
        let mut bootstrap_set = false;
        let mut timeout_set = false;
        let mut client_id_set = false;
        let mut ignored: Vec<String> = Vec::new();
        if let Some(b) = &self.bootstrap_servers {
            cfg.set("bootstrap.servers", b)?;
            bootstrap_set = true;
        }
        for (k, v) in &self.properties {
            match k.as_str() {
                "transactional.id" => {
                    return Err(ConnectorError::Config(
                        "KafkaSink: transactional.id is set per transaction; use transactional_id_prefix".into(),
                    ))
                }
                "bootstrap.servers" => bootstrap_set = true,
                "transaction.timeout.ms" => timeout_set = true,
                "client.id" => client_id_set = true,
                _ => {}
            }
            match cfg.set(k, v) {
                Ok(()) => {}
                Err(e) if e.unknown_property_key().is_some() => {
                    warn!(property = %k, "KafkaSink: unknown producer property {k:?} ignored");
                    ignored.push(k.clone());
                }
                Err(e) => return Err(e.into()),
            }
        }
        if !bootstrap_set {
            return Err(ConnectorError::Config("KafkaSink: set bootstrap_servers".into()));
        }
        if let Some(t) = self.transaction_timeout {
            cfg.transaction_timeout = t;
        } else if !timeout_set {
            cfg.transaction_timeout = DEFAULT_TRANSACTION_TIMEOUT;
        }
        let prefix = match (self.guarantee, self.prefix) {
            (DeliveryGuarantee::ExactlyOnce, None) => {
                return Err(ConnectorError::Config(
                    "KafkaSink: exactly-once needs a transactional_id_prefix".into(),
                ))
            }
            (_, Some(p)) if p.is_empty() => {
                return Err(ConnectorError::Config(
                    "KafkaSink: the transactional_id_prefix is empty".into(),
                ))
            }
            (_, Some(p)) if p.len() > recovery::MAX_PREFIX_BYTES => {
                return Err(ConnectorError::Config(format!(
                    "KafkaSink: the transactional_id_prefix is {} bytes, at most {} fit in a transactional id",
                    p.len(),
                    recovery::MAX_PREFIX_BYTES
                )))
            }
            (_, p) => p,
        };
        if self.log_failures_only && self.guarantee != DeliveryGuarantee::None {
            return Err(ConnectorError::Config(format!(
                "KafkaSink: set_log_failures_only(true) drops records that cannot be delivered, which {} \
                 forbids (the legacy FlinkKafkaProducer: \"This must be disabled for at-least-once\"); use \
                 DeliveryGuarantee::None to accept losing them",
                self.guarantee
            )));
        }
        if self.guarantee == DeliveryGuarantee::ExactlyOnce {
            // What the transactional producers will check, now rather than at the first record.
            let mut probe = cfg.clone();
            probe.transactional_id = Some("probe".into());
            probe.validate()?;
        } else {
            cfg.validate()?;
        }
        Ok(KafkaSink {
            shared: Arc::new(SinkShared {
                producer_config: cfg,
                guarantee: self.guarantee,
                // Only exactly-once names transactions. A restore still aborts what an earlier
                // exactly-once run left, from the prefix in its writer states.
                prefix: prefix.filter(|_| self.guarantee == DeliveryGuarantee::ExactlyOnce),
                serializer,
                client_id_set,
                write_timestamp: self.write_timestamp,
                log_failures_only: self.log_failures_only,
                ignored_properties: ignored,
            }),
        })
    }
}

#[cfg(test)]
mod tests;
