//! Turning elements into Kafka records: [`KafkaRecordSerializer`] (Flink's
//! `KafkaRecordSerializationSchema`), the per-field [`SerializationSchema`], and the builder
//! [`KafkaRecordSerializationSchema::builder`] that assembles one from a topic (or topic
//! selector), key and value schemas, headers and a [`SinkPartitioner`].

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use serde::Serialize;
use strom_client::{Client, ProducerRecord};

use crate::error::{ConnectorError, Result};

/// What a serializer may ask about where it runs (Flink's `KafkaSinkContext`).
///
/// [`KafkaSinkContext::partitions_for_topic`] answers from the client's metadata cache; for a
/// topic not cached yet it answers `None`, and the writer fetches that topic's metadata and
/// calls the serializer once more for the same element. A serializer must therefore be a
/// pure function of the element and the context.
pub struct KafkaSinkContext {
    subtask: u32,
    parallelism: u32,
    timestamp: Option<i64>,
    watermark: Option<i64>,
    client: Option<Client>,
    partitions: Mutex<HashMap<String, Arc<[i32]>>>,
    missing: Mutex<BTreeSet<String>>,
}

impl fmt::Debug for KafkaSinkContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSinkContext")
            .field("subtask", &self.subtask)
            .field("parallelism", &self.parallelism)
            .field("timestamp", &self.timestamp)
            .field("watermark", &self.watermark)
            .finish_non_exhaustive()
    }
}

impl KafkaSinkContext {
    pub(crate) fn new(client: Client, subtask: u32, parallelism: u32) -> Self {
        KafkaSinkContext {
            subtask,
            parallelism,
            timestamp: None,
            watermark: None,
            client: Some(client),
            partitions: Mutex::default(),
            missing: Mutex::default(),
        }
    }

    /// A context without a cluster, for testing serializers: it knows the partitions given
    /// with [`KafkaSinkContext::with_partitions`] and nothing else.
    pub fn detached(subtask: u32, parallelism: u32) -> Self {
        KafkaSinkContext {
            subtask,
            parallelism,
            timestamp: None,
            watermark: None,
            client: None,
            partitions: Mutex::default(),
            missing: Mutex::default(),
        }
    }

    /// Declares `topic`'s partitions (for a [`KafkaSinkContext::detached`] context).
    pub fn with_partitions(self, topic: impl Into<String>, partitions: impl IntoIterator<Item = i32>) -> Self {
        self.partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.into(), partitions.into_iter().collect());
        self
    }

    /// Sets the element timestamp the serializer sees (for testing serializers).
    pub fn with_timestamp(mut self, ts: Option<i64>) -> Self {
        self.timestamp = ts;
        self
    }

    /// Sets the watermark the serializer sees (for testing serializers).
    pub fn with_watermark(mut self, watermark: Option<i64>) -> Self {
        self.watermark = watermark;
        self
    }

    /// This writer's subtask index (0-based).
    pub fn subtask(&self) -> u32 {
        self.subtask
    }

    /// How many subtasks write (the sink's parallelism).
    pub fn parallelism(&self) -> u32 {
        self.parallelism
    }

    /// The element's timestamp (ms) as given to
    /// [`KafkaSinkWriter::write_with_timestamp`](super::KafkaSinkWriter::write_with_timestamp);
    /// `None` lets the producer stamp the record with the current time.
    pub fn timestamp(&self) -> Option<i64> {
        self.timestamp
    }

    /// The last watermark the writer was given ([`KafkaSinkWriter::write_watermark`](super::KafkaSinkWriter::write_watermark)):
    /// event time the pipeline no longer expects elements before; `None` before the first.
    pub fn current_watermark(&self) -> Option<i64> {
        self.watermark
    }

    /// The partition ids of `topic`, ascending, from the metadata cache; `None` when the
    /// topic's metadata is not known yet (the writer then fetches it and serializes the
    /// element again; a topic that does not exist fails the write, naming it).
    pub fn partitions_for_topic(&self, topic: &str) -> Option<Arc<[i32]>> {
        let mut cache = self.partitions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(p) = cache.get(topic) {
            return Some(p.clone());
        }
        match self.client.as_ref().and_then(|c| c.metadata().topic(topic).cloned()) {
            Some(info) if !info.partitions.is_empty() => {
                let p: Arc<[i32]> = info.partitions.iter().map(|p| p.partition).collect();
                cache.insert(topic.to_owned(), p.clone());
                Some(p)
            }
            _ => {
                self.missing
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(topic.to_owned());
                None
            }
        }
    }

    pub(crate) fn set_timestamp(&mut self, ts: Option<i64>) {
        self.timestamp = ts;
    }

    /// Raises the watermark (never lowers it).
    pub(crate) fn set_watermark(&mut self, watermark: i64) {
        if self.watermark.is_none_or(|w| watermark > w) {
            self.watermark = Some(watermark);
        }
    }

    /// Topics the serializer asked for that were not cached, and forgets them.
    pub(crate) fn take_missing(&self) -> BTreeSet<String> {
        std::mem::take(&mut *self.missing.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Forgets cached partition lists (at each checkpoint, so added partitions are seen).
    pub(crate) fn clear_partition_cache(&self) {
        if self.client.is_some() {
            self.partitions.lock().unwrap_or_else(PoisonError::into_inner).clear();
        }
    }
}

/// Turns an element into the record to write (Flink's `KafkaRecordSerializationSchema`).
///
/// `Ok(None)` skips the element (nothing is written), as a `null` record does in Flink.
/// Closures `Fn(&T, &KafkaSinkContext) -> Result<Option<ProducerRecord>>` implement it.
pub trait KafkaRecordSerializer<T>: Send + Sync {
    /// The record for `element`. Called again for the same element when it asked
    /// [`KafkaSinkContext::partitions_for_topic`] about a topic whose metadata was not cached.
    fn serialize(&self, element: &T, ctx: &KafkaSinkContext) -> Result<Option<ProducerRecord>>;

    /// Topics every record goes to, known before any element: the sink checks at startup
    /// that they exist. Empty (the default) when topics are chosen per element.
    fn fixed_topics(&self) -> Vec<String> {
        Vec::new()
    }
}

impl<T, F> KafkaRecordSerializer<T> for F
where
    F: Fn(&T, &KafkaSinkContext) -> Result<Option<ProducerRecord>> + Send + Sync,
{
    fn serialize(&self, element: &T, ctx: &KafkaSinkContext) -> Result<Option<ProducerRecord>> {
        self(element, ctx)
    }
}

/// Serializes one field of a record, key or value (Flink's `SerializationSchema`).
/// `Ok(None)` is a null key, or a null value (a tombstone).
///
/// Closures `Fn(&T) -> Result<Option<Bytes>>` implement it.
pub trait SerializationSchema<T: ?Sized>: Send + Sync {
    /// The bytes for `element`.
    fn serialize(&self, element: &T) -> Result<Option<Bytes>>;
}

impl<T: ?Sized, F> SerializationSchema<T> for F
where
    F: Fn(&T) -> Result<Option<Bytes>> + Send + Sync,
{
    fn serialize(&self, element: &T) -> Result<Option<Bytes>> {
        self(element)
    }
}

/// UTF-8 bytes of a string element (Flink's `SimpleStringSchema`).
#[derive(Debug, Clone, Copy, Default)]
pub struct StringSerializer;

impl<T: AsRef<str> + ?Sized> SerializationSchema<T> for StringSerializer {
    fn serialize(&self, element: &T) -> Result<Option<Bytes>> {
        Ok(Some(Bytes::copy_from_slice(element.as_ref().as_bytes())))
    }
}

/// The element's bytes as they are (Java's `ByteArraySerializer`).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesSerializer;

impl<T: AsRef<[u8]> + ?Sized> SerializationSchema<T> for BytesSerializer {
    fn serialize(&self, element: &T) -> Result<Option<Bytes>> {
        Ok(Some(Bytes::copy_from_slice(element.as_ref())))
    }
}

/// The element as JSON, through serde (Flink's `JsonSerializationSchema`).
#[derive(Debug, Clone, Copy, Default)]
pub struct JsonSerializer;

impl<T: Serialize + ?Sized> SerializationSchema<T> for JsonSerializer {
    fn serialize(&self, element: &T) -> Result<Option<Bytes>> {
        serde_json::to_vec(element)
            .map(|v| Some(Bytes::from(v)))
            .map_err(|e| ConnectorError::Serialize(format!("JSON: {e}")))
    }
}

/// Chooses the partition of a record (Flink's `FlinkKafkaPartitioner`).
pub trait SinkPartitioner<T>: Send + Sync {
    /// One of `partitions` (the topic's partition ids, ascending, never empty) for `element`,
    /// whose serialized key and value are given. An id outside `partitions` fails the write.
    fn partition(
        &self,
        element: &T,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        topic: &str,
        partitions: &[i32],
        ctx: &KafkaSinkContext,
    ) -> i32;
}

/// Each subtask writes to one partition: `partitions[subtask % partitions.len()]` (Flink's
/// `FlinkFixedPartitioner`). With fewer subtasks than partitions some partitions get nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct FixedPartitioner;

impl<T> SinkPartitioner<T> for FixedPartitioner {
    fn partition(
        &self,
        _element: &T,
        _key: Option<&[u8]>,
        _value: Option<&[u8]>,
        _topic: &str,
        partitions: &[i32],
        ctx: &KafkaSinkContext,
    ) -> i32 {
        let n = partitions.len().max(1);
        partitions.get(ctx.subtask() as usize % n).copied().unwrap_or(0)
    }
}

type TopicSelector<T> = Arc<dyn Fn(&T) -> String + Send + Sync>;
type HeaderProvider<T> = Arc<dyn Fn(&T) -> Vec<(String, Option<Bytes>)> + Send + Sync>;

enum Topic<T> {
    Fixed(String),
    Selector(TopicSelector<T>),
}

impl<T> Clone for Topic<T> {
    fn clone(&self) -> Self {
        match self {
            Topic::Fixed(t) => Topic::Fixed(t.clone()),
            Topic::Selector(s) => Topic::Selector(s.clone()),
        }
    }
}

/// A [`KafkaRecordSerializer`] assembled from parts by
/// [`KafkaRecordSerializationSchema::builder`].
pub struct KafkaRecordSerializationSchema<T> {
    topic: Topic<T>,
    key: Option<Arc<dyn SerializationSchema<T>>>,
    value: Arc<dyn SerializationSchema<T>>,
    partitioner: Option<Arc<dyn SinkPartitioner<T>>>,
    headers: Option<HeaderProvider<T>>,
}

impl<T> Clone for KafkaRecordSerializationSchema<T> {
    fn clone(&self) -> Self {
        KafkaRecordSerializationSchema {
            topic: self.topic.clone(),
            key: self.key.clone(),
            value: self.value.clone(),
            partitioner: self.partitioner.clone(),
            headers: self.headers.clone(),
        }
    }
}

impl<T> fmt::Debug for KafkaRecordSerializationSchema<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("KafkaRecordSerializationSchema");
        match &self.topic {
            Topic::Fixed(t) => d.field("topic", t),
            Topic::Selector(_) => d.field("topic", &"<selector>"),
        };
        d.field("key", &self.key.is_some())
            .field("partitioner", &self.partitioner.is_some())
            .field("headers", &self.headers.is_some())
            .finish_non_exhaustive()
    }
}

impl<T> KafkaRecordSerializationSchema<T> {
    /// A builder: set a topic or a topic selector and a value serializer, the rest is optional.
    pub fn builder() -> KafkaRecordSerializationSchemaBuilder<T> {
        KafkaRecordSerializationSchemaBuilder {
            topic: None,
            key: None,
            value: None,
            partitioner: None,
            headers: None,
            _element: PhantomData,
        }
    }
}

impl<T> KafkaRecordSerializer<T> for KafkaRecordSerializationSchema<T> {
    fn serialize(&self, element: &T, ctx: &KafkaSinkContext) -> Result<Option<ProducerRecord>> {
        let topic = match &self.topic {
            Topic::Fixed(t) => t.clone(),
            Topic::Selector(select) => select(element),
        };
        if topic.is_empty() {
            return Err(ConnectorError::Serialize(
                "the topic selector returned an empty topic".into(),
            ));
        }
        let key = match &self.key {
            Some(k) => k.serialize(element)?,
            None => None,
        };
        let value = self.value.serialize(element)?;
        // Without cached partitions the writer fetches the topic's metadata and calls us again.
        let mut partition = None;
        if let (Some(p), Some(parts)) = (&self.partitioner, ctx.partitions_for_topic(&topic)) {
            let chosen = p.partition(element, key.as_deref(), value.as_deref(), &topic, &parts, ctx);
            if !parts.contains(&chosen) {
                return Err(ConnectorError::Serialize(format!(
                    "the partitioner chose partition {chosen} of topic {topic:?}, which has partitions {parts:?}"
                )));
            }
            partition = Some(chosen);
        }
        Ok(Some(ProducerRecord {
            topic,
            partition,
            key,
            value,
            headers: self.headers.as_ref().map(|h| h(element)).unwrap_or_default(),
            timestamp: ctx.timestamp(),
        }))
    }

    fn fixed_topics(&self) -> Vec<String> {
        match &self.topic {
            Topic::Fixed(t) => vec![t.clone()],
            Topic::Selector(_) => Vec::new(),
        }
    }
}

/// Builds a [`KafkaRecordSerializationSchema`] (Flink's `KafkaRecordSerializationSchemaBuilder`).
pub struct KafkaRecordSerializationSchemaBuilder<T> {
    topic: Option<Topic<T>>,
    key: Option<Arc<dyn SerializationSchema<T>>>,
    value: Option<Arc<dyn SerializationSchema<T>>>,
    partitioner: Option<Arc<dyn SinkPartitioner<T>>>,
    headers: Option<HeaderProvider<T>>,
    _element: PhantomData<fn(&T)>,
}

impl<T> fmt::Debug for KafkaRecordSerializationSchemaBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("KafkaRecordSerializationSchemaBuilder");
        match &self.topic {
            Some(Topic::Fixed(t)) => d.field("topic", t),
            Some(Topic::Selector(_)) => d.field("topic", &"<selector>"),
            None => d.field("topic", &"<unset>"),
        };
        d.field("key", &self.key.is_some())
            .field("value", &self.value.is_some())
            .field("partitioner", &self.partitioner.is_some())
            .field("headers", &self.headers.is_some())
            .finish()
    }
}

impl<T> KafkaRecordSerializationSchemaBuilder<T> {
    /// Every record goes to `topic` (Flink's `setTopic`); checked to exist when a writer starts.
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topic = Some(Topic::Fixed(topic.into()));
        self
    }

    /// The topic is chosen per element (Flink's `setTopicSelector`); a chosen topic that does
    /// not exist fails that write, naming it.
    pub fn topic_selector(mut self, select: impl Fn(&T) -> String + Send + Sync + 'static) -> Self {
        self.topic = Some(Topic::Selector(Arc::new(select)));
        self
    }

    /// Serializes the key (Flink's `setKeySerializationSchema`); without it keys are null.
    pub fn key_serializer(mut self, schema: impl SerializationSchema<T> + 'static) -> Self {
        self.key = Some(Arc::new(schema));
        self
    }

    /// Serializes the value (Flink's `setValueSerializationSchema`); required.
    pub fn value_serializer(mut self, schema: impl SerializationSchema<T> + 'static) -> Self {
        self.value = Some(Arc::new(schema));
        self
    }

    /// Chooses partitions (Flink's `setPartitioner`); without it the producer's default
    /// applies, as for every other producer: murmur2 of the key as Java does, and the
    /// uniform sticky partitioner of KIP-794 for null keys.
    pub fn partitioner(mut self, partitioner: impl SinkPartitioner<T> + 'static) -> Self {
        self.partitioner = Some(Arc::new(partitioner));
        self
    }

    /// Headers per element (Flink's `setHeaderProvider`).
    pub fn headers(mut self, headers: impl Fn(&T) -> Vec<(String, Option<Bytes>)> + Send + Sync + 'static) -> Self {
        self.headers = Some(Arc::new(headers));
        self
    }

    /// The schema; fails when the topic or the value serializer is missing or the topic is empty.
    pub fn build(self) -> Result<KafkaRecordSerializationSchema<T>> {
        let topic = self
            .topic
            .ok_or_else(|| ConnectorError::Config("record serializer: set a topic or a topic selector".into()))?;
        if matches!(&topic, Topic::Fixed(t) if t.is_empty()) {
            return Err(ConnectorError::Config("record serializer: the topic is empty".into()));
        }
        let value = self
            .value
            .ok_or_else(|| ConnectorError::Config("record serializer: set a value serializer".into()))?;
        Ok(KafkaRecordSerializationSchema {
            topic,
            key: self.key,
            value,
            partitioner: self.partitioner,
            headers: self.headers,
        })
    }
}
