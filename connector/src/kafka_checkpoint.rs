//! Checkpoints in a compacted Kafka topic: a [`CheckpointLocation`] that subtasks on different
//! machines reach with nothing but Kafka.
//!
//! [`KafkaCheckpointLocation`] keeps the checkpoints of every subtask of a pipeline in one
//! topic, and [`KafkaCheckpointStore`] is one subtask's [`CheckpointStore`] there. One topic
//! can serve any number of pipelines: records are told apart by the pipeline name in their key.
//!
//! # The topic
//!
//! Created by [`KafkaCheckpointLocation::connect`] when missing, with `cleanup.policy=compact`
//! (the newest value of each key is kept, a tombstone eventually removes the key) and one
//! partition, so one reader sees every record in the order it was written. The replication
//! factor and `min.insync.replicas` are the broker's unless set
//! ([`KafkaCheckpointConfig::replication_factor`], [`KafkaCheckpointConfig::min_insync_replicas`]).
//! An existing topic is used as it is, but only if its `cleanup.policy` is exactly `compact`:
//! under `delete` (or `compact,delete`) the broker would delete a pipeline's only checkpoint once
//! it is older than `retention.ms`. Only partition 0 is written and read.
//!
//! # Records
//!
//! Keys are UTF-8 text, `<pipeline>/<subtask>/<id>/<part>`: the pipeline name (any text, `/`
//! included: keys are parsed from the right), the subtask index in decimal, the checkpoint id
//! zero-padded to 20 digits, and the part: `0`, `1`, ... for the chunks of the payload, `m` for
//! the manifest ([`RecordKey`]).
//!
//! A chunk's value is `"SKC1"`, the save's nonce (u64), then at most
//! [`KafkaCheckpointConfig::chunk_size`] bytes of the payload ([`encode_chunk`]). The
//! manifest's value is 44 bytes, integers big-endian ([`Manifest`]):
//!
//! ```text
//!  0  magic        4 bytes  "SKM1"
//!  4  id           u64      checkpoint id (must match the key)
//! 12  subtask      u32      subtask index (must match the key)
//! 16  chunks       u32      number of chunks
//! 20  length       u64      payload length
//! 28  crc32c       u32      CRC32C of the whole payload
//! 32  nonce        u64      the save's nonce; every chunk of this save carries it
//! 40  header crc   u32      CRC32C of bytes 0..40
//! ```
//!
//! # Saving
//!
//! [`CheckpointStore::save`] writes the chunks, waits until every one is acknowledged, then
//! writes the manifest and waits for it, all through one idempotent producer with `acks=all`
//! (the durability of the data the checkpoint describes), so the save is durable when it
//! returns. Then retention: the store keeps the newest [`KafkaCheckpointConfig::retained`]
//! checkpoints (default [`DEFAULT_RETAINED`]); for each older one it writes a tombstone for the
//! manifest first, then for each chunk, so a checkpoint stops being one before its chunks go.
//! Chunks of older ids that never got a manifest (a save cut short) and chunks a previous save
//! of the same id left beyond the new chunk count are tombstoned too.
//!
//! # Reading, and what counts as intact
//!
//! [`CheckpointStore::latest`], [`CheckpointStore::load`], [`CheckpointStore::ids`] and
//! [`CheckpointLocation::subtasks`] read partition 0 from its beginning to its end offset as it
//! is when the read starts, keeping the last value of each key of this pipeline (a tombstone
//! removes the key). A checkpoint is intact only when its manifest decodes, its id and subtask
//! match the key, every chunk `0..chunks` is there with the manifest's nonce, and the length and
//! CRC32C of the joined chunks match. Anything else (a save cut before its manifest, a manifest
//! whose chunks are missing or from another save of the same id, a damaged manifest) is skipped
//! with a warning and the previous intact checkpoint is returned, as [`FileCheckpointStore`]
//! does with a damaged file. Nothing read from the topic is trusted for a size: a manifest that
//! claims four billion chunks or an exabyte of payload costs a failed lookup, not an allocation.
//!
//! [`FileCheckpointStore`]: crate::checkpoint::FileCheckpointStore
//!
//! # Blocking and the runtime
//!
//! The traits are synchronous. [`KafkaCheckpointLocation::connect`] and
//! [`KafkaCheckpointStore::connect`] are async and remember the tokio runtime they run on; the
//! synchronous methods run their Kafka work as a task on that runtime and wait for it (every
//! wait bounded by [`KafkaCheckpointConfig::timeout`]). Call them from
//! `tokio::task::spawn_blocking` (as the pipeline does) or from a thread outside the runtime.
//! Called on a worker thread of a multi-thread runtime they block that worker until done; on
//! the only thread of a current-thread runtime the task cannot run, and the call fails with a
//! timeout error saying so (it never panics).
//!
//! A store keeps, after its first save, an index of its own checkpoint ids (which are there,
//! which chunks each has), so a save writes and prunes without reading the topic again. One
//! subtask's checkpoints are written by one store at a time, as with the file store.

use std::collections::BTreeSet;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::join_all;
use strom_client::{
    is_secret_key, Acks, Admin, Client, ConfigResource, Consumer, ConsumerConfig, DeliveryFuture, ErrorCode,
    IsolationLevel, NewTopic, OffsetReset, Producer, ProducerConfig, ProducerRecord, TopicPartition,
};
use tokio::runtime::Handle;
use tracing::{debug, warn};

use crate::checkpoint::{Checkpoint, CheckpointLocation, CheckpointStore, DEFAULT_RETAINED};
use crate::error::{ConnectorError, Result};

/// Default largest chunk of a checkpoint's payload: 512 KiB, half of a stock broker's
/// `max.message.bytes` (1 MiB).
pub const DEFAULT_CHUNK_SIZE: usize = 512 * 1024;

/// Default bound of every wait on Kafka (as Java's `default.api.timeout.ms`).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Room a record needs beyond its chunk: the chunk header, the key, the record and batch
/// headers. Checked against `max.message.bytes` and `max.request.size`.
const RECORD_OVERHEAD: usize = 1024;

/// The readers' `fetch.max.wait.ms` at most (see [`KafkaCheckpointConfig::client_configs`]).
const READER_FETCH_MAX_WAIT: Duration = Duration::from_millis(10);

/// The only partition written and read.
const PARTITION: i32 = 0;

mod format;

#[cfg(test)]
use format::IdRecords;
pub use format::{assemble, decode_chunk, encode_chunk, FormatError, Manifest, RecordKey, RecordPart, MANIFEST_LEN};
use format::{doomed, new_nonce, Index, SubtaskView};

// ---------------------------------------------------------------------------------------------
// Configuration.

/// Where and how checkpoints are kept in Kafka: bootstrap servers, topic, pipeline name, client
/// properties and the store's own settings. [`Debug`](fmt::Debug) hides secret values.
#[derive(Clone)]
pub struct KafkaCheckpointConfig {
    bootstrap_servers: String,
    topic: String,
    pipeline: String,
    properties: Vec<(String, String)>,
    chunk_size: usize,
    retained: usize,
    replication_factor: Option<i16>,
    min_insync_replicas: Option<u16>,
    timeout: Duration,
}

impl fmt::Debug for KafkaCheckpointConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let props: Vec<(&str, &str)> = self
            .properties
            .iter()
            .map(|(k, v)| (k.as_str(), if is_secret_key(k) { "[redacted]" } else { v.as_str() }))
            .collect();
        f.debug_struct("KafkaCheckpointConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("topic", &self.topic)
            .field("pipeline", &self.pipeline)
            .field("properties", &props)
            .field("chunk_size", &self.chunk_size)
            .field("retained", &self.retained)
            .field("replication_factor", &self.replication_factor)
            .field("min_insync_replicas", &self.min_insync_replicas)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl KafkaCheckpointConfig {
    /// Checkpoints of pipeline `pipeline` in `topic` on the cluster at `bootstrap_servers`,
    /// with the defaults: chunks of [`DEFAULT_CHUNK_SIZE`], [`DEFAULT_RETAINED`] checkpoints
    /// kept per subtask, the broker's replication factor, waits bounded by [`DEFAULT_TIMEOUT`].
    pub fn new(bootstrap_servers: impl Into<String>, topic: impl Into<String>, pipeline: impl Into<String>) -> Self {
        KafkaCheckpointConfig {
            bootstrap_servers: bootstrap_servers.into(),
            topic: topic.into(),
            pipeline: pipeline.into(),
            properties: Vec::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            retained: DEFAULT_RETAINED,
            replication_factor: None,
            min_insync_replicas: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// A client, producer or consumer property by its Java name (`security.protocol`,
    /// `sasl.*`, `ssl.*`, `client.id`, `compression.type`, ...). A key that is none of those
    /// fails [`KafkaCheckpointLocation::connect`], as do `acks` other than `all` and
    /// `enable.idempotence=false` (checkpoints are written with the data's durability).
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

    /// Largest chunk of a payload in bytes (default [`DEFAULT_CHUNK_SIZE`]); with about 1 KiB
    /// of record overhead it must fit the topic's `max.message.bytes` and the producer's
    /// `max.request.size`, which [`KafkaCheckpointLocation::connect`] checks.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes;
        self
    }

    /// Checkpoints kept per subtask (at least 1; default [`DEFAULT_RETAINED`]).
    pub fn retained(mut self, n: usize) -> Self {
        self.retained = n.max(1);
        self
    }

    /// Replication factor of the topic when it is created (default: the broker's
    /// `default.replication.factor`).
    pub fn replication_factor(mut self, rf: i16) -> Self {
        self.replication_factor = Some(rf);
        self
    }

    /// `min.insync.replicas` of the topic when it is created (default: the broker's).
    pub fn min_insync_replicas(mut self, n: u16) -> Self {
        self.min_insync_replicas = Some(n);
        self
    }

    /// Bound of each operation's waits on Kafka (default [`DEFAULT_TIMEOUT`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The producer and consumer configurations, validated.
    fn client_configs(&self) -> Result<(ProducerConfig, ConsumerConfig)> {
        let bad = |why: String| ConnectorError::Config(format!("KafkaCheckpointConfig: {why}"));
        if self.topic.is_empty() {
            return Err(bad("the topic name is empty".into()));
        }
        if self.pipeline.is_empty() {
            return Err(bad("the pipeline name is empty".into()));
        }
        if self.chunk_size == 0 {
            return Err(bad("chunk_size is 0".into()));
        }
        if self.timeout.is_zero() {
            return Err(bad("timeout is 0".into()));
        }
        let mut producer = ProducerConfig::new(&self.bootstrap_servers);
        let mut consumer = ConsumerConfig::new(&self.bootstrap_servers);
        for (k, v) in &self.properties {
            if k == "enable.idempotence" && !v.trim().eq_ignore_ascii_case("true") {
                return Err(bad(
                    "enable.idempotence must stay true: checkpoints are written by an idempotent producer".into(),
                ));
            }
            let p = producer.set(k, v);
            let c = consumer.set(k, v);
            match (p, c) {
                (Err(p), Err(c)) if p.unknown_property_key().is_some() && c.unknown_property_key().is_some() => {
                    return Err(bad(format!("{k:?} is no client, producer or consumer property")));
                }
                (Err(e), _) if e.unknown_property_key().is_none() => return Err(e.into()),
                (_, Err(e)) if e.unknown_property_key().is_none() => return Err(e.into()),
                _ => {}
            }
        }
        if producer.acks != Acks::All {
            return Err(bad(
                "acks must be all: checkpoints are written with the data's durability".into(),
            ));
        }
        producer.set("enable.idempotence", "true")?;
        producer.validate()?;
        if self.chunk_size.saturating_add(RECORD_OVERHEAD) > producer.max_request_size {
            return Err(bad(format!(
                "chunk_size {} plus {RECORD_OVERHEAD} bytes of record overhead exceeds max.request.size {}",
                self.chunk_size, producer.max_request_size
            )));
        }
        consumer.group_id = None;
        consumer.group_instance_id = None;
        consumer.enable_auto_commit = false;
        consumer.auto_offset_reset = OffsetReset::Earliest;
        consumer.isolation_level = IsolationLevel::ReadUncommitted;
        // A read stops at the end offset it saw first, so a fetch never needs to wait for new
        // records; one still in flight when a read ends would hold up the next read's requests
        // on the connection for fetch.max.wait.ms (the broker answers in order).
        consumer.fetch_max_wait = consumer.fetch_max_wait.min(READER_FETCH_MAX_WAIT);
        consumer.validate()?;
        Ok((producer, consumer))
    }
}

// ---------------------------------------------------------------------------------------------
// The shared connection and the blocking bridge.

/// What the location and its stores share: the producer, and the readers' client and settings.
/// Two clients: a Kafka broker answers one request per connection at a time, so a reader's
/// fetch never delays a save's produce requests (or the reverse).
struct Shared {
    topic: String,
    pipeline: String,
    chunk_size: usize,
    retained: usize,
    timeout: Duration,
    reader: Client,
    producer: Producer,
    consumer_config: ConsumerConfig,
    handle: Handle,
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The client configurations' Debug hides security values.
        f.debug_struct("KafkaCheckpoints")
            .field("topic", &self.topic)
            .field("pipeline", &self.pipeline)
            .field("chunk_size", &self.chunk_size)
            .field("retained", &self.retained)
            .field("timeout", &self.timeout)
            .field("producer_config", self.producer.config())
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn err(&self, what: &str, why: impl fmt::Display) -> ConnectorError {
        ConnectorError::Checkpoint(format!("topic {}: {what}: {why}", self.topic))
    }

    /// Runs `fut` on the runtime the store was connected on and waits for it from this
    /// (non-runtime, or blocking-pool) thread, at most `timeout`.
    fn block<T: Send + 'static>(&self, what: &str, fut: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
        let timeout = self.timeout;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let task = self.handle.spawn(async move {
            let _ = tx.send(tokio::time::timeout(timeout, fut).await);
        });
        // Longer than the task's own bound, which normally answers first: only a task that never
        // ran (this thread is the runtime's only one) gets here.
        match rx.recv_timeout(timeout + timeout.min(Duration::from_secs(5))) {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err(self.err(what, format_args!("no answer from Kafka within {timeout:?}"))),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                task.abort();
                Err(self.err(
                    what,
                    "the tokio runtime did not run the request in time; a KafkaCheckpointStore's methods block: \
                     call them through tokio::task::spawn_blocking, not on a current-thread runtime's own thread",
                ))
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                Err(self.err(what, "the tokio runtime the store was connected on has shut down"))
            }
        }
    }

    /// Reads partition 0 from its beginning to its end offset (as it is when the read starts),
    /// handing each record of this pipeline to `visit` with its parsed key and value.
    async fn read_all(
        self: Arc<Self>,
        what: &str,
        mut visit: impl FnMut(RecordKey<'_>, Option<&Bytes>) + Send,
    ) -> Result<()> {
        let ctx = |e: strom_client::Error| self.err(what, e);
        let tp = TopicPartition::new(&self.topic, PARTITION);
        let mut consumer = Consumer::with_client(self.reader.clone(), self.consumer_config.clone()).map_err(ctx)?;
        consumer.assign([tp.clone()]).map_err(ctx)?;
        consumer.seek_to_beginning(std::slice::from_ref(&tp)).map_err(ctx)?;
        let end = consumer
            .end_offsets(std::slice::from_ref(&tp))
            .await
            .map_err(ctx)?
            .get(&tp)
            .copied()
            .unwrap_or(0);
        let mut records = 0u64;
        while consumer.position(&tp).await.map_err(ctx)? < end {
            for r in consumer.poll(Duration::from_millis(500)).await.map_err(ctx)? {
                if r.offset >= end {
                    continue;
                }
                let Some(key) = r.key.as_deref().and_then(RecordKey::parse) else {
                    continue;
                };
                if key.pipeline == self.pipeline {
                    records += 1;
                    visit(key, r.value.as_ref());
                }
            }
        }
        debug!(topic = %self.topic, pipeline = %self.pipeline, end, records, "checkpoint topic read");
        Ok(())
    }

    /// One subtask's view; chunk bytes kept only for ids `keep` accepts.
    async fn view(
        self: Arc<Self>,
        what: String,
        subtask: usize,
        keep: impl Fn(u64) -> bool + Send + Sync,
    ) -> Result<SubtaskView> {
        let mut view = SubtaskView::default();
        self.read_all(&what, |key, value| {
            if key.subtask == subtask {
                view.apply(key.id, key.part, value, keep(key.id));
            }
        })
        .await?;
        Ok(view)
    }

    async fn send(&self, what: &str, key: String, value: Option<Bytes>) -> Result<DeliveryFuture> {
        let record = ProducerRecord {
            topic: self.topic.clone(),
            partition: Some(PARTITION),
            key: Some(Bytes::from(key)),
            value,
            ..Default::default()
        };
        self.producer.send(record).await.map_err(|e| self.err(what, e))
    }

    async fn delivered(&self, what: &str, deliveries: Vec<DeliveryFuture>) -> Result<()> {
        for r in join_all(deliveries).await {
            r.map_err(|e| self.err(what, e))?;
        }
        Ok(())
    }
}

/// Creates the topic if missing, then checks it: `cleanup.policy` exactly `compact`, and
/// `max.message.bytes` room for a chunk.
async fn ensure_topic(admin: &Admin, config: &KafkaCheckpointConfig) -> Result<()> {
    let topic = &config.topic;
    let err = |what: &str, e: strom_client::Error| ConnectorError::Checkpoint(format!("topic {topic}: {what}: {e}"));
    let mut new = NewTopic::new(topic, 1).config("cleanup.policy", "compact");
    if let Some(rf) = config.replication_factor {
        new = new.replication_factor(rf);
    }
    if let Some(n) = config.min_insync_replicas {
        new = new.config("min.insync.replicas", n.to_string());
    }
    match admin.create_topics(&[new]).await {
        Ok(()) => debug!(topic = %topic, "checkpoint topic created"),
        Err(e) if e.kafka_code() == Some(ErrorCode::TopicAlreadyExists) => {}
        Err(e) => return Err(err("cannot create the checkpoint topic", e)),
    }
    let entries = admin
        .describe_configs(&ConfigResource::Topic(topic.clone()))
        .await
        .map_err(|e| err("cannot read the topic's configuration", e))?;
    let value = |name: &str| entries.iter().find(|e| e.name == name).and_then(|e| e.value.clone());
    let policy = value("cleanup.policy").unwrap_or_default();
    if policy.trim() != "compact" {
        return Err(ConnectorError::Checkpoint(format!(
            "topic {topic}: cleanup.policy is {policy:?}; checkpoints need exactly \"compact\" (under \"delete\" the \
             broker would delete a pipeline's only checkpoint once older than retention.ms)"
        )));
    }
    if let Some(max) = value("max.message.bytes").and_then(|v| v.trim().parse::<usize>().ok()) {
        if config.chunk_size.saturating_add(RECORD_OVERHEAD) > max {
            return Err(ConnectorError::Config(format!(
                "KafkaCheckpointConfig: chunk_size {} plus {RECORD_OVERHEAD} bytes of record overhead exceeds topic \
                 {topic}'s max.message.bytes {max}",
                config.chunk_size
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The location and the store.

/// The checkpoints of every subtask of one pipeline in a compacted Kafka topic (see the module
/// docs). Cheap to clone; stores made from it share its connections.
#[derive(Debug, Clone)]
pub struct KafkaCheckpointLocation {
    shared: Arc<Shared>,
}

impl KafkaCheckpointLocation {
    /// Connects, creates the topic if missing and checks it (see the module docs), and makes
    /// the idempotent producer checkpoints are written with. Must run on a tokio runtime, which
    /// the location's synchronous methods then use.
    ///
    /// Cancellation-safe: dropping the call drops the connections made so far (a topic
    /// creation already sent may still happen).
    pub async fn connect(config: KafkaCheckpointConfig) -> Result<Self> {
        let handle = Handle::try_current().map_err(|_| {
            ConnectorError::Config("KafkaCheckpointLocation::connect must run on a tokio runtime".into())
        })?;
        let (producer_config, consumer_config) = config.client_configs()?;
        let topic = config.topic.clone();
        let connecting = async {
            let cannot_connect = |e| ConnectorError::Checkpoint(format!("topic {topic}: cannot connect: {e}"));
            let reader = Client::connect(consumer_config.client.clone())
                .await
                .map_err(cannot_connect)?;
            ensure_topic(&Admin::new(reader.clone()), &config).await?;
            let producer = Producer::new(producer_config).await.map_err(cannot_connect)?;
            Ok::<_, ConnectorError>((reader, producer))
        };
        let (reader, producer) = tokio::time::timeout(config.timeout, connecting).await.map_err(|_| {
            ConnectorError::Checkpoint(format!(
                "topic {topic}: cannot connect and check the topic within {:?}",
                config.timeout
            ))
        })??;
        Ok(KafkaCheckpointLocation {
            shared: Arc::new(Shared {
                topic: config.topic,
                pipeline: config.pipeline,
                chunk_size: config.chunk_size,
                retained: config.retained,
                timeout: config.timeout,
                reader,
                producer,
                consumer_config,
                handle,
            }),
        })
    }

    /// Subtask `subtask`'s store (no I/O: usable from any thread).
    pub fn store(&self, subtask: usize) -> KafkaCheckpointStore {
        KafkaCheckpointStore {
            shared: self.shared.clone(),
            subtask,
            index: Mutex::new(None),
        }
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    /// The pipeline's name.
    pub fn pipeline(&self) -> &str {
        &self.shared.pipeline
    }
}

impl CheckpointLocation for KafkaCheckpointLocation {
    fn subtask_store(&self, subtask: usize) -> Result<Arc<dyn CheckpointStore>> {
        Ok(Arc::new(self.store(subtask)))
    }

    /// The subtasks with at least one record (a checkpoint, or part of one) of this pipeline.
    /// Blocks: see the module docs.
    fn subtasks(&self) -> Result<Vec<usize>> {
        let shared = self.shared.clone();
        self.shared.block("listing subtasks", async move {
            let mut live: BTreeSet<(usize, u64, RecordPart)> = BTreeSet::new();
            shared
                .read_all("listing subtasks", |key, value| {
                    let k = (key.subtask, key.id, key.part);
                    if value.is_some() {
                        live.insert(k);
                    } else {
                        live.remove(&k);
                    }
                })
                .await?;
            let subtasks: BTreeSet<usize> = live.into_iter().map(|(s, _, _)| s).collect();
            Ok(subtasks.into_iter().collect())
        })
    }
}

/// One subtask's checkpoints in the Kafka topic of a [`KafkaCheckpointLocation`] (see the
/// module docs). Its methods block: call them through `tokio::task::spawn_blocking` or from a
/// thread outside the runtime.
pub struct KafkaCheckpointStore {
    shared: Arc<Shared>,
    subtask: usize,
    /// This subtask's records as of the last save (`None` until the first save, and after a
    /// failed one: then read again from the topic). Also serializes saves.
    index: Mutex<Option<Index>>,
}

impl fmt::Debug for KafkaCheckpointStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaCheckpointStore")
            .field("subtask", &self.subtask)
            .field("location", &self.shared)
            .finish()
    }
}

impl KafkaCheckpointStore {
    /// Connects a location ([`KafkaCheckpointLocation::connect`]) and returns subtask
    /// `subtask`'s store.
    pub async fn connect(config: KafkaCheckpointConfig, subtask: usize) -> Result<Self> {
        Ok(KafkaCheckpointLocation::connect(config).await?.store(subtask))
    }

    /// The subtask index.
    pub fn subtask(&self) -> usize {
        self.subtask
    }

    /// The topic.
    pub fn topic(&self) -> &str {
        &self.shared.topic
    }

    fn key(&self, id: u64, part: RecordPart) -> String {
        RecordKey {
            pipeline: &self.shared.pipeline,
            subtask: self.subtask,
            id,
            part,
        }
        .encode()
    }

    fn view(&self, what: String, keep: impl Fn(u64) -> bool + Send + Sync + 'static) -> Result<SubtaskView> {
        let shared = self.shared.clone();
        let subtask = self.subtask;
        self.shared
            .block(&what.clone(), async move { shared.view(what, subtask, keep).await })
    }

    /// The save itself, on the runtime: chunks, manifest, then retention. Returns the index
    /// after it.
    async fn save_on_runtime(
        shared: Arc<Shared>,
        keys: KeyMaker,
        index: Option<Index>,
        id: u64,
        data: Bytes,
        write_manifest: bool,
    ) -> Result<Index> {
        let what = format!("saving checkpoint {id} of {}/{}", shared.pipeline, keys.subtask);
        let mut index = match index {
            Some(i) => i,
            None => shared
                .clone()
                .view(what.clone(), keys.subtask, |_| false)
                .await?
                .index(),
        };
        let subtask = u32::try_from(keys.subtask)
            .map_err(|_| shared.err(&what, "the subtask index does not fit the manifest's u32"))?;
        let nonce = new_nonce();
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut at = 0;
        while at < data.len() {
            let end = data.len().min(at + shared.chunk_size);
            chunks.push(data.slice(at..end));
            at = end;
        }
        let count = u32::try_from(chunks.len()).map_err(|_| shared.err(&what, "more than 2^32 chunks"))?;
        let mut deliveries = Vec::with_capacity(chunks.len());
        for (n, chunk) in (0..count).zip(&chunks) {
            let value = Bytes::from(encode_chunk(nonce, chunk));
            deliveries.push(
                shared
                    .send(&what, keys.key(id, RecordPart::Chunk(n)), Some(value))
                    .await?,
            );
        }
        shared.delivered(&what, deliveries).await?;
        let entry = index.entry(id).or_default();
        entry.chunks.extend(0..count);
        if !write_manifest {
            return Ok(index);
        }
        // The manifest only once every chunk is acknowledged: a crash before this leaves
        // chunks no manifest points to, which are never restored.
        let manifest = Manifest {
            id,
            subtask,
            chunks: count,
            length: data.len() as u64,
            crc32c: crc32c::crc32c(&data),
            nonce,
        };
        let d = shared
            .send(
                &what,
                keys.key(id, RecordPart::Manifest),
                Some(Bytes::copy_from_slice(&manifest.encode())),
            )
            .await?;
        shared.delivered(&what, vec![d]).await?;
        entry.manifest = true;
        debug!(topic = %shared.topic, id, bytes = data.len(), chunks = count, "checkpoint saved");

        // Retention, and chunks an earlier save of this id left beyond the new count.
        let mut tombstones = Vec::new();
        let stale: Vec<u32> = entry.chunks.range(count..).copied().collect();
        for n in stale {
            entry.chunks.remove(&n);
            tombstones.push(keys.key(id, RecordPart::Chunk(n)));
        }
        for old in doomed(&index, shared.retained) {
            if let Some(records) = index.remove(&old) {
                // The manifest first: the checkpoint is gone before its chunks are.
                if records.manifest {
                    tombstones.push(keys.key(old, RecordPart::Manifest));
                }
                tombstones.extend(records.chunks.iter().map(|n| keys.key(old, RecordPart::Chunk(*n))));
            }
        }
        let mut deliveries = Vec::with_capacity(tombstones.len());
        for key in tombstones {
            deliveries.push(shared.send(&what, key, None).await?);
        }
        shared.delivered(&what, deliveries).await?;
        Ok(index)
    }

    fn save_inner(&self, id: u64, data: &[u8], write_manifest: bool) -> Result<()> {
        let mut guard = self.index.lock().unwrap_or_else(PoisonError::into_inner);
        // Taken: a failed or timed-out save leaves None, and the next one reads the topic.
        let index = guard.take();
        let fut = Self::save_on_runtime(
            self.shared.clone(),
            KeyMaker {
                pipeline: self.shared.pipeline.clone(),
                subtask: self.subtask,
            },
            index,
            id,
            Bytes::copy_from_slice(data),
            write_manifest,
        );
        let index = self.shared.block(&format!("saving checkpoint {id}"), fut)?;
        *guard = Some(index);
        Ok(())
    }

    /// Test hook: writes checkpoint `id`'s chunks and no manifest, as a save cut short by a
    /// crash leaves them (feature `crash-injection`, test builds only).
    #[cfg(feature = "crash-injection")]
    pub fn save_chunks_only(&self, id: u64, data: &[u8]) -> Result<()> {
        self.save_inner(id, data, false)
    }
}

/// Makes this store's keys inside a `'static` future.
struct KeyMaker {
    pipeline: String,
    subtask: usize,
}

impl KeyMaker {
    fn key(&self, id: u64, part: RecordPart) -> String {
        RecordKey {
            pipeline: &self.pipeline,
            subtask: self.subtask,
            id,
            part,
        }
        .encode()
    }
}

impl CheckpointStore for KafkaCheckpointStore {
    /// Writes the chunks, then the manifest, waiting for each to be acknowledged by all in-sync
    /// replicas; then drops checkpoints beyond the retention count. Blocks: see the module docs.
    fn save(&self, id: u64, data: &[u8]) -> Result<()> {
        self.save_inner(id, data, true)
    }

    fn latest(&self) -> Result<Option<Checkpoint>> {
        let view = self.view("reading the latest checkpoint".into(), |_| true)?;
        for id in view.manifests.keys().rev() {
            match view.checkpoint(*id, self.subtask) {
                Some(Ok(c)) => return Ok(Some(c)),
                Some(Err(why)) => warn!(
                    topic = %self.shared.topic,
                    key = %self.key(*id, RecordPart::Manifest),
                    reason = %why,
                    "checkpoint is not intact; falling back to the previous checkpoint"
                ),
                None => {}
            }
        }
        Ok(None)
    }

    fn load(&self, id: u64) -> Result<Option<Checkpoint>> {
        let view = self.view(format!("reading checkpoint {id}"), move |i| i == id)?;
        match view.checkpoint(id, self.subtask) {
            Some(Ok(c)) => Ok(Some(c)),
            Some(Err(why)) => {
                warn!(
                    topic = %self.shared.topic,
                    key = %self.key(id, RecordPart::Manifest),
                    reason = %why,
                    "checkpoint is not intact"
                );
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// The ids with a manifest (intact or not), ascending.
    fn ids(&self) -> Result<Vec<u64>> {
        let view = self.view("listing checkpoints".into(), |_| false)?;
        Ok(view.manifests.keys().copied().collect())
    }
}

#[cfg(test)]
mod tests;
