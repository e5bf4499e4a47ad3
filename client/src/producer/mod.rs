//! The producer: batching, partitioning, compression, idempotence and transactions.
//!
//! [`Producer`] is a cheap `Clone` handle; one sender task per producer owns the producer id,
//! epoch and sequences (see `sender`). [`TransactionalProducer`] adds the transaction API.
//! Dropping a handle or a [`DeliveryFuture`] never loses a record: the sender delivers what
//! was accepted, and stops once the last handle is gone and everything is delivered.

mod accumulator;
mod delivery;
mod partitioner;
mod record;
mod sender;
mod sequence;
pub(crate) mod txn;
mod txn_commands;

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use strom_protocol::murmur2::{murmur2, to_positive};
use tokio::sync::{mpsc, oneshot};

pub use crate::consumer::ConsumerGroupMetadata;
pub use delivery::DeliveryFuture;
pub use partitioner::PartitionerClass;
pub use record::{Partitioner, ProducerRecord, RecordMetadata};
pub use txn::{abort_lingering, resume_transaction, PreparedTransaction};

use self::accumulator::{record_size_bound, Accumulator, Partitions, Placement};
use self::sender::{Command, Sender};
use self::txn::{Txn, TxnCommand};
use crate::client::Client;
use crate::consumer::{OffsetAndMetadata, TopicPartition};
use crate::error::{Error, Result};
use crate::role_config::ProducerConfig;

struct Inner {
    client: Client,
    acc: Arc<Accumulator>,
    cmds: mpsc::Sender<Command>,
    cfg: ProducerConfig,
    partitioner: Option<Arc<dyn Partitioner>>,
    txn_state: Option<Arc<AtomicU8>>,
}

/// An asynchronous Kafka producer. Cheap to clone; all clones share one sender.
///
/// Idempotent by default (`enable.idempotence=true`, `acks=all`, as the Java client):
/// retries never duplicate or reorder a partition's records.
///
/// ```no_run
/// # async fn demo() -> strom_client::Result<()> {
/// use strom_client::{Producer, ProducerConfig, ProducerRecord};
///
/// let mut config = ProducerConfig::new("127.0.0.1:9092");
/// config.set("compression.type", "lz4")?; // Java property names, or the typed fields
/// let producer = Producer::new(config).await?;
///
/// let record = ProducerRecord::new("events", "hello").key("user-1").header("source", "docs");
/// let delivery = producer.send(record).await?; // queued
/// let metadata = delivery.await?; // acknowledged by the broker
/// println!("{}-{}@{}", metadata.topic, metadata.partition, metadata.offset);
///
/// producer.close().await?; // delivers what is queued, then refuses new records
/// # Ok(())
/// # }
/// ```
///
/// `client/examples/produce.rs` is a complete program.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("client_id", &self.inner.cfg.client.client_id)
            .field("idempotent", &self.inner.cfg.enable_idempotence)
            .field("transactional_id", &self.inner.cfg.transactional_id)
            .finish_non_exhaustive()
    }
}

/// try_send's error for a topic whose metadata is not cached (send would fetch it).
fn no_metadata_yet(topic: &str) -> Error {
    Error::would_block(format!(
        "no metadata cached for topic {topic} yet; send() would fetch it"
    ))
    .with_topic(topic)
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A plain [`Producer`] never begins a transaction, so with `transactional.id` every send
/// would fail: refused at construction instead, naming the type that takes it.
fn refuse_transactional(config: &ProducerConfig) -> Result<()> {
    match &config.transactional_id {
        Some(id) => Err(Error::config(format!(
            "transactional.id is set ({id:?}): a Producer does not run transactions; use TransactionalProducer::new (or remove transactional.id)"
        ))),
        None => Ok(()),
    }
}

impl Producer {
    /// Validates the configuration, connects, and starts the sender. A configuration with
    /// `transactional.id` is refused: that is a [`TransactionalProducer`]'s.
    ///
    /// Cancellation-safe: dropping the call drops the connections made so far.
    pub async fn new(config: ProducerConfig) -> Result<Producer> {
        refuse_transactional(&config)?;
        Self::connect(config).await
    }

    async fn connect(config: ProducerConfig) -> Result<Producer> {
        let mut config = config;
        config.validate()?;
        // Java's producer takes a smaller receive buffer (32 KiB) than the other roles.
        let client_config = config.client.clone().with_buffer_defaults(
            crate::config::DEFAULT_SEND_BUFFER_BYTES,
            crate::config::PRODUCER_RECEIVE_BUFFER_BYTES,
        );
        let client = Client::connect(client_config).await?;
        Self::start(client, config)
    }

    /// A producer over an existing client (its connections and metadata are shared). A
    /// configuration with `transactional.id` is refused, as by [`Producer::new`].
    pub fn with_client(client: Client, config: ProducerConfig) -> Result<Producer> {
        refuse_transactional(&config)?;
        Self::on_client(client, config)
    }

    fn on_client(client: Client, mut config: ProducerConfig) -> Result<Producer> {
        config.validate()?;
        Self::start(client, config)
    }

    fn start(client: Client, cfg: ProducerConfig) -> Result<Producer> {
        let partitioner = cfg.partitioner.clone();
        // Resolved once: each batch takes it as it is created, no per-record cost.
        let level = cfg.compression_level()?;
        let acc = Arc::new(Accumulator::new(
            cfg.batch_size,
            cfg.linger,
            cfg.compression,
            level,
            cfg.buffer_memory,
            cfg.max_block,
            cfg.max_request_size,
            cfg.partitioner_class,
            Arc::new(crate::metrics::ProducerInstruments::new(client.metric_registry())),
        ));
        let (tx, rx) = mpsc::channel(16);
        let txn_state = cfg
            .transactional_id
            .as_ref()
            .map(|_| Arc::new(AtomicU8::new(txn::UNINITIALIZED)));
        let txn = cfg
            .transactional_id
            .clone()
            .zip(txn_state.clone())
            .map(|(id, st)| Txn::new(id, cfg.transaction_timeout, st));
        let sender = Sender::new(client.clone(), acc.clone(), cfg.clone(), rx, txn);
        tokio::spawn(sender.run());
        Ok(Producer {
            inner: Arc::new(Inner {
                client,
                acc,
                cmds: tx,
                cfg,
                partitioner,
                txn_state,
            }),
        })
    }

    /// The client this producer uses.
    pub fn client(&self) -> &Client {
        &self.inner.client
    }

    /// This producer's metrics (`producer-metrics`, `producer-topic-metrics`) and its
    /// connections' (`node-metrics`), under the Java client's names. Other roles sharing
    /// the client record into the same registry ([`Client::metric_registry`]).
    pub fn metrics(&self) -> crate::metrics::MetricsSnapshot {
        let mut s = self.inner.client.metric_registry().snapshot();
        s.metrics
            .retain(|m| m.group.starts_with("producer") || m.group == "node-metrics");
        s
    }

    /// The configuration.
    pub fn config(&self) -> &ProducerConfig {
        &self.inner.cfg
    }

    /// Queues a record; waits up to `max.block.ms` for the topic's metadata and for
    /// `buffer.memory`. The returned [`DeliveryFuture`] resolves when the broker
    /// acknowledged the record.
    ///
    /// `send` returns once the record is queued; awaiting its delivery before the next
    /// `send` makes every record wait out `linger.ms` and a round trip alone (about 7 ms a
    /// record with the default `linger.ms` of 5). Send many, then await their deliveries:
    /// the records share batches and requests.
    ///
    /// ```no_run
    /// # async fn demo(producer: strom_client::Producer) -> strom_client::Result<()> {
    /// use strom_client::ProducerRecord;
    ///
    /// let mut deliveries = Vec::new();
    /// for i in 0..1_000 {
    ///     let record = ProducerRecord::new("events", format!("event {i}"));
    ///     deliveries.push(producer.send(record).await?);
    /// }
    /// for delivered in futures_util::future::join_all(deliveries).await {
    ///     let metadata = delivered?;
    ///     println!("{}-{}@{}", metadata.topic, metadata.partition, metadata.offset);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// When the record cannot be queued (too large, the producer closed or failed, no
    /// metadata within `max.block.ms`), the error hands it back ([`Error::into_record`]).
    ///
    /// Cancellation-safe: a dropped call has queued the record entirely or not at all.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        #[cfg(feature = "opentelemetry")]
        let record = {
            let mut record = record;
            crate::trace_context::inject(&mut record.headers);
            record
        };
        match self.send_inner(&record, true).await {
            Ok(f) => Ok(f),
            Err(e) => Err(e.with_record(record)),
        }
    }

    /// Queues a record without waiting. When it cannot, the record comes back in the
    /// [`TrySendError`] with the reason: [`ErrorKind::BufferFull`](crate::ErrorKind::BufferFull) (`buffer.memory` is
    /// full), [`ErrorKind::WouldBlock`](crate::ErrorKind::WouldBlock) (the topic's metadata is not cached yet: `send`
    /// would fetch it), or any error `send` would return.
    ///
    /// ```no_run
    /// # async fn demo(producer: strom_client::Producer) -> Result<(), strom_client::Error> {
    /// use strom_client::{ErrorKind, ProducerRecord};
    /// let mut record = ProducerRecord::new("events", "payload");
    /// loop {
    ///     match producer.try_send(record) {
    ///         Ok(delivery) => break drop(delivery),
    ///         Err(e) if e.error().kind() == ErrorKind::BufferFull => {
    ///             record = e.into_record(); // nothing lost: wait for room and try again
    ///             tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    ///         }
    ///         Err(e) => return Err(e.into()),
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn try_send(&self, record: ProducerRecord) -> std::result::Result<DeliveryFuture, TrySendError> {
        #[cfg(feature = "opentelemetry")]
        let record = {
            let mut record = record;
            crate::trace_context::inject(&mut record.headers);
            record
        };
        match self.try_send_ref(&record) {
            Ok(f) => Ok(f),
            Err(error) => Err(TrySendError {
                error,
                record: Box::new(record),
            }),
        }
    }

    fn try_send_ref(&self, record: &ProducerRecord) -> Result<DeliveryFuture> {
        self.check_txn_state()?;
        let size = record_size_bound(record.key.as_deref(), record.value.as_deref(), &record.headers);
        if size > self.inner.cfg.max_request_size {
            return Err(Error::record_too_large(size, self.inner.cfg.max_request_size));
        }
        let reserved = match self
            .inner
            .acc
            .memory
            .try_acquire_many(u32::try_from(size).unwrap_or(u32::MAX))
        {
            Ok(p) => {
                p.forget();
                u32::try_from(size).unwrap_or(u32::MAX)
            }
            Err(_) => return Err(Error::buffer_full(size)),
        };
        self.append(record, reserved)?
            .ok_or_else(|| no_metadata_yet(&record.topic))
    }

    /// The partition count in the cached metadata, if the topic is there.
    fn partition_count_cached(&self, topic: &str) -> Option<u32> {
        let md = self.inner.client.metadata();
        md.topic(topic)
            .map(|t| u32::try_from(t.partitions.len()).unwrap_or(u32::MAX))
    }

    async fn send_inner(&self, record: &ProducerRecord, wait: bool) -> Result<DeliveryFuture> {
        self.check_txn_state()?;
        let size = record_size_bound(record.key.as_deref(), record.value.as_deref(), &record.headers);
        let reserved = self.inner.acc.reserve(size, wait).await?;
        if let Some(f) = self.append(record, reserved)? {
            return Ok(f);
        }
        // The topic is not in the cached metadata yet (the reserved memory was given back):
        // fetch it, waiting up to max.block.ms, as Java's waitOnMetadata does.
        self.wait_on_metadata(&record.topic).await?;
        let reserved = self.inner.acc.reserve(size, wait).await?;
        self.append(record, reserved)?
            .ok_or_else(|| no_metadata_yet(&record.topic))
    }

    /// Asks for `topic`'s metadata until it has partitions or `max.block.ms` passes, as
    /// Java's `waitOnMetadata` ([`Client::topic_settled`]: a retriable topic error is asked
    /// again). Running out of time is a timeout naming the last error. A topic the cluster
    /// does not know fails at once with UNKNOWN_TOPIC_OR_PARTITION naming it (Java waits
    /// `max.block.ms` for it).
    async fn wait_on_metadata(&self, topic: &str) -> Result<()> {
        let max_block = self.inner.cfg.max_block;
        let timed_out = || Error::timeout(format!("for metadata of topic {topic}"), max_block);
        let settled = self.inner.client.topic_settled(topic, max_block, "max.block.ms");
        // topic_settled makes its last attempt a backoff before max.block.ms and reports the
        // error that kept it waiting; this bound only catches an attempt that hangs.
        let grace = self
            .inner
            .client
            .config()
            .retry_backoff
            .max(std::time::Duration::from_millis(10));
        match tokio::time::timeout(max_block + grace, settled).await {
            Err(_) => Err(timed_out()),
            Ok(Ok(_)) => Ok(()),
            // Retriable and not the unknown topic topic_settled answers at once: it gave up.
            Ok(Err(e))
                if e.is_retriable() && e.kafka_code() != Some(strom_protocol::ErrorCode::UnknownTopicOrPartition) =>
            {
                Err(timed_out().with_cause(e))
            }
            Ok(Err(e)) => Err(e),
        }
    }

    fn check_txn_state(&self) -> Result<()> {
        if let Some(st) = &self.inner.txn_state {
            let s = st.load(Ordering::Acquire);
            if s == txn::FATAL {
                // Fenced by a newer producer with the same transactional id, or failed
                // beyond recovery: no call order will make sending work again. The error
                // that made it so says which (ErrorKind::Fenced or Fatal).
                let cause = self.inner.acc.lock().fatal.clone();
                return Err(txn::in_fatal_state(cause.as_ref()));
            }
            if s != txn::IN_TRANSACTION {
                return Err(Error::illegal_state(
                    "a transactional producer sends only inside a transaction: call begin_transaction first",
                ));
            }
        }
        Ok(())
    }

    /// Queues `record` in the accumulator; `Ok(None)` when its topic is not in the cached
    /// metadata. `reserved` bytes of buffer.memory were taken for it; they are given back on
    /// any outcome but success.
    fn append(&self, record: &ProducerRecord, reserved: u32) -> Result<Option<DeliveryFuture>> {
        let placement = match record.partition {
            Some(p) => match u32::try_from(p) {
                Ok(p) => Placement::Partition(p),
                Err(_) => {
                    self.inner.acc.release(reserved);
                    return Err(Error::kafka(strom_protocol::ErrorCode::UnknownTopicOrPartition)
                        .with_context(format!("topic {} has no partition {p}", record.topic))
                        .with_partition(&record.topic, p));
                }
            },
            None => {
                let cfg = &self.inner.cfg;
                let hash_keys = !cfg.partitioner_ignore_keys
                    && cfg.partitioner_class != PartitionerClass::UniformSticky
                    && cfg.partitioner_class != PartitionerClass::RoundRobin;
                let custom = match &self.inner.partitioner {
                    // A custom partitioner is handed the partition count itself.
                    Some(pt) => match self.partition_count_cached(&record.topic) {
                        None => {
                            self.inner.acc.release(reserved);
                            return Ok(None);
                        }
                        Some(0) => None,
                        Some(n) => pt
                            .partition(&record.topic, record.key.as_deref(), record.value.as_deref(), n)
                            .map(|p| p % n),
                    },
                    None => None,
                };
                match (custom, &record.key) {
                    (Some(p), _) => Placement::Partition(p),
                    // Java's BuiltInPartitioner.partitionForKey: murmur2, positive, modulo
                    // (the modulo is taken with the partition count the accumulator holds).
                    (None, Some(k)) if hash_keys => Placement::KeyHash(to_positive(murmur2(k)) as u32),
                    // The accumulator places the rest: uniform sticky or round robin.
                    _ => Placement::Unkeyed,
                }
            }
        };
        let headers: Vec<(&str, Option<&[u8]>)> =
            record.headers.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
        let ts = record.timestamp.unwrap_or_else(now_ms);
        let client = &self.inner.client;
        self.inner.acc.append(
            &record.topic,
            placement,
            Partitions {
                generation: client.metadata_generation(),
                lookup: &|| self.partition_count_cached(&record.topic),
            },
            ts,
            record.key.as_deref(),
            record.value.as_deref(),
            &headers,
            reserved,
        )
    }

    /// Sends everything queued now (ignoring `linger.ms`) and waits until each record sent
    /// before this call is acknowledged or failed. Failures are reported through the
    /// records' delivery futures, as in Java.
    ///
    /// Cancellation-safe: dropping the call stops the wait only. The records it flushed
    /// still go at once (their batches were closed when the call started; their delivery
    /// futures tell how they ended), and `linger.ms` applies again to records sent
    /// afterwards.
    pub async fn flush(&self) -> Result<()> {
        /// Ends the flush however the call ends: a flush left open would make every later
        /// batch skip `linger.ms`.
        struct Flushing<'a>(&'a Accumulator);
        impl Drop for Flushing<'_> {
            fn drop(&mut self) {
                self.0.end_flush();
            }
        }
        let pending = self.inner.acc.begin_flush();
        let _flushing = Flushing(&self.inner.acc);
        for done in pending {
            while !done.is_done() {
                let _ = DeliveryFuture::new(done.clone(), 0, 0).await;
            }
        }
        Ok(())
    }

    /// Delivers (or fails) everything outstanding, then refuses new records.
    ///
    /// Cancellation-safe: a dropped call leaves the producer open (what was sent still goes);
    /// call `close` again.
    pub async fn close(&self) -> Result<()> {
        self.flush().await?;
        self.inner.acc.lock().closed = true;
        Ok(())
    }

    async fn txn(&self, make: impl FnOnce(oneshot::Sender<Result<()>>) -> TxnCommand) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.inner
            .cmds
            .send(Command::Txn(make(tx)))
            .await
            .map_err(|_| delivery::closed_error())?;
        self.inner.acc.wake.notify_one();
        rx.await.map_err(|_| delivery::closed_error())?
    }
}

/// A transactional producer (`transactional.id` set): records are written in transactions
/// that commit or abort atomically, with consumer offsets if wanted (KIP-98, KIP-447).
/// It derefs to [`Producer`] for `send`, `flush` and the rest; sending outside a
/// transaction is an error.
///
/// Consume-transform-produce, exactly once: the input offsets commit in the same
/// transaction as the output records.
///
/// ```no_run
/// # async fn demo() -> strom_client::Result<()> {
/// use std::time::Duration;
/// use strom_client::{Consumer, ConsumerConfig, ProducerConfig, ProducerRecord, TransactionalProducer};
///
/// let mut config = ConsumerConfig::new("127.0.0.1:9092");
/// config.set("group.id", "enricher")?;
/// config.set("enable.auto.commit", "false")?; // the transactions commit the offsets
/// config.set("isolation.level", "read_committed")?;
/// let mut consumer = Consumer::new(config).await?;
/// consumer.subscribe(&["orders"])?;
///
/// let mut config = ProducerConfig::new("127.0.0.1:9092");
/// config.set("transactional.id", "enricher-0")?; // stable across restarts
/// let producer = TransactionalProducer::new(config).await?;
/// producer.init_transactions().await?; // fences older producers of this id
///
/// loop {
///     let records = consumer.poll(Duration::from_secs(1)).await?;
///     if records.is_empty() {
///         continue;
///     }
///     producer.begin_transaction().await?;
///     for record in &records {
///         let mut out = ProducerRecord::new("orders-enriched", record.value.clone().unwrap_or_default());
///         out.key = record.key.clone();
///         let _delivery = producer.send(out).await?; // commit_transaction reports failures
///     }
///     let group = consumer.group_metadata().expect("subscribed with a group.id");
///     producer.send_offsets_to_transaction(&consumer.consumed_offsets(), &group).await?;
///     producer.commit_transaction().await?; // on an error: abort_transaction, rewind
/// }
/// # }
/// ```
///
/// `client/examples/transactions.rs` is a complete program that also handles errors.
#[derive(Debug, Clone)]
pub struct TransactionalProducer {
    producer: Producer,
}

impl TransactionalProducer {
    /// Queues a record in the current transaction; see [`Producer::send`]. Outside a
    /// transaction it fails with [`ErrorKind::IllegalState`](crate::ErrorKind::IllegalState).
    ///
    /// Cancellation-safe: as [`Producer::send`], the record is queued whole or not at all.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        self.producer.send(record).await
    }

    /// Queues a record in the current transaction without waiting; see
    /// [`Producer::try_send`].
    pub fn try_send(&self, record: ProducerRecord) -> std::result::Result<DeliveryFuture, TrySendError> {
        self.producer.try_send(record)
    }

    /// Sends everything queued and waits for it; see [`Producer::flush`]. Committing flushes
    /// by itself.
    ///
    /// Cancellation-safe: as [`Producer::flush`], dropping it stops the wait only.
    pub async fn flush(&self) -> Result<()> {
        self.producer.flush().await
    }

    /// Sends what is queued and stops the producer; see [`Producer::close`]. An open
    /// transaction is left to time out on the broker unless committed or aborted first.
    ///
    /// Cancellation-safe: a dropped call leaves the producer open (what was sent still goes);
    /// call `close` again.
    pub async fn close(&self) -> Result<()> {
        self.producer.close().await
    }

    /// The client underneath (metadata, connections).
    pub fn client(&self) -> &Client {
        self.producer.client()
    }

    /// The configuration in use.
    pub fn config(&self) -> &ProducerConfig {
        self.producer.config()
    }

    /// This producer's metrics, transaction timings included (see [`Producer::metrics`]).
    pub fn metrics(&self) -> crate::metrics::MetricsSnapshot {
        self.producer.metrics()
    }

    /// Connects and starts the sender; `transactional.id` is required. Call
    /// [`TransactionalProducer::init_transactions`] next.
    ///
    /// Cancellation-safe: dropping the call drops the connections made so far.
    pub async fn new(config: ProducerConfig) -> Result<Self> {
        if config.transactional_id.is_none() {
            return Err(Error::config("a TransactionalProducer needs transactional.id"));
        }
        Ok(TransactionalProducer {
            producer: Producer::connect(config).await?,
        })
    }

    /// Over an existing client.
    pub fn with_client(client: Client, config: ProducerConfig) -> Result<Self> {
        if config.transactional_id.is_none() {
            return Err(Error::config("a TransactionalProducer needs transactional.id"));
        }
        Ok(TransactionalProducer {
            producer: Producer::on_client(client, config)?,
        })
    }

    /// Registers the transactional id with its coordinator: fences older producers of the
    /// same id and aborts what they left open. Picks TV1 or TV2 from the cluster.
    ///
    /// Cancellation: the step still runs in the producer's sender; a dropped call only loses its
    /// outcome. Calling it again is safe.
    pub async fn init_transactions(&self) -> Result<()> {
        let m = &self.producer.inner.acc.metrics;
        timed(&m.txn_init_time_ns, self.producer.txn(TxnCommand::Init)).await
    }

    /// Starts a transaction.
    ///
    /// Cancellation: the step still runs in the producer's sender; a dropped call only loses its
    /// outcome: end what may have begun with [`abort_transaction`](Self::abort_transaction).
    pub async fn begin_transaction(&self) -> Result<()> {
        let m = &self.producer.inner.acc.metrics;
        timed(&m.txn_begin_time_ns, self.producer.txn(TxnCommand::Begin)).await
    }

    /// Adds consumer offsets to the transaction: they commit with it (exactly-once
    /// read-process-write, Java's `sendOffsetsToTransaction`). `offsets` is what
    /// [`Consumer::consumed_offsets`](crate::Consumer::consumed_offsets) returns (the next
    /// offset to read per partition, with its leader epoch and metadata), or any map or
    /// slice of such pairs; `group` is
    /// [`Consumer::group_metadata`](crate::Consumer::group_metadata), so the coordinator
    /// fences a zombie of a member that left the group (KIP-447).
    ///
    /// ```no_run
    /// # async fn demo(consumer: &strom_client::Consumer, producer: &strom_client::TransactionalProducer) -> strom_client::Result<()> {
    /// let group = consumer.group_metadata().expect("a consumer in a group");
    /// producer.send_offsets_to_transaction(&consumer.consumed_offsets(), &group).await?;
    /// producer.commit_transaction().await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Cancellation: the step still runs in the producer's sender; a dropped call only loses its
    /// outcome, so the transaction's content is unknown: abort it
    /// ([`abort_transaction`](Self::abort_transaction)).
    pub async fn send_offsets_to_transaction<'a>(
        &self,
        offsets: impl IntoIterator<Item = (&'a TopicPartition, &'a OffsetAndMetadata)>,
        group: &ConsumerGroupMetadata,
    ) -> Result<()> {
        let offsets: Vec<(TopicPartition, OffsetAndMetadata)> =
            offsets.into_iter().map(|(tp, o)| (tp.clone(), o.clone())).collect();
        let group = group.clone();
        let m = &self.producer.inner.acc.metrics;
        let send = self
            .producer
            .txn(|reply| TxnCommand::SendOffsets { offsets, group, reply });
        timed(&m.txn_send_offsets_time_ns, send).await
    }

    /// Sends everything, then commits. If a record of the transaction failed, this fails with
    /// that error and the transaction must be aborted.
    ///
    /// Cancellation: the commit still runs in the producer's sender; a dropped call only loses its
    /// outcome. Then either the transaction committed ([`begin_transaction`](Self::begin_transaction)
    /// succeeds) or it is still open (call `commit_transaction` again); never half of it.
    pub async fn commit_transaction(&self) -> Result<()> {
        let m = &self.producer.inner.acc.metrics;
        let commit = async {
            self.producer.flush().await?;
            self.producer.txn(|reply| TxnCommand::End { commit: true, reply }).await
        };
        timed(&m.txn_commit_time_ns, commit).await
    }

    /// Aborts: unsent records fail, sent ones are never visible to read_committed readers.
    ///
    /// Cancellation: the abort still runs in the producer's sender; a dropped call only loses its
    /// outcome. Asked again, it finishes the abort, or fails with
    /// [`ErrorKind::IllegalState`](crate::ErrorKind::IllegalState) when the first one already
    /// did (no transaction in progress).
    pub async fn abort_transaction(&self) -> Result<()> {
        let m = &self.producer.inner.acc.metrics;
        let abort = self.producer.txn(|reply| TxnCommand::End { commit: false, reply });
        timed(&m.txn_abort_time_ns, abort).await
    }

    /// Sends everything of the open transaction and returns what another process needs to
    /// commit or abort it ([`resume_transaction`]); the transaction stays open (Flink's
    /// pre-commit).
    ///
    /// Cancellation: a dropped call leaves the transaction open and its records sent (or being
    /// sent); call `prepare` again for its [`PreparedTransaction`].
    pub async fn prepare(&self) -> Result<PreparedTransaction> {
        self.producer.flush().await?;
        let (tx, rx) = oneshot::channel();
        self.producer
            .inner
            .cmds
            .send(Command::Txn(TxnCommand::Prepare(tx)))
            .await
            .map_err(|_| delivery::closed_error())?;
        self.producer.inner.acc.wake.notify_one();
        rx.await.map_err(|_| delivery::closed_error())?
    }
}

/// Runs `f`, adding its duration to `meter` (Java's `txn-*-time-ns-total`, which count
/// failed calls too).
async fn timed<T>(meter: &crate::metrics::Meter, f: impl std::future::Future<Output = T>) -> T {
    let start = tokio::time::Instant::now();
    let r = f.await;
    meter.add(u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX));
    r
}

/// [`Producer::try_send`] could not queue the record: the reason, and the record back.
#[derive(Debug)]
pub struct TrySendError {
    error: Error,
    record: Box<ProducerRecord>,
}

impl TrySendError {
    /// Why the record was not queued.
    pub fn error(&self) -> &Error {
        &self.error
    }

    /// The record, unsent.
    pub fn into_record(self) -> ProducerRecord {
        *self.record
    }

    /// The reason and the record.
    pub fn into_parts(self) -> (Error, ProducerRecord) {
        (self.error, *self.record)
    }
}

impl std::fmt::Display for TrySendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "record for topic {} not queued: {}", self.record.topic, self.error)
    }
}

impl std::error::Error for TrySendError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// Lets `?` turn it into the client error (the record is dropped).
impl From<TrySendError> for Error {
    fn from(e: TrySendError) -> Self {
        e.error
    }
}
