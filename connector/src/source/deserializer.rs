//! Record deserializers (Flink's `KafkaRecordDeserializationSchema` and, for values only,
//! `DeserializationSchema`).
//!
//! A deserializer turns one fetched record into zero or one value: `Ok(Some(v))` emits `v`,
//! `Ok(None)` skips the record (Flink's "return null"), an error fails the source with
//! [`ConnectorError::Deserialize`] naming topic, partition and offset.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use strom_protocol::record_batch::{Headers, Record, TimestampType};

use crate::{ConnectorError, Result};

/// The error a value deserializer returns; becomes the `reason` of
/// [`ConnectorError::Deserialize`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One fetched record with where it came from (Java's `ConsumerRecord<byte[], byte[]>`),
/// borrowed from the fetch so nothing is copied; clone the `Bytes` to keep them.
#[derive(Debug, Clone, Copy)]
pub struct SourceRecord<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp in ms.
    pub timestamp: i64,
    /// Whether the producer (CreateTime) or the broker (LogAppendTime) set the timestamp.
    pub timestamp_type: TimestampType,
    /// Key, `None` for a null key.
    pub key: Option<&'a Bytes>,
    /// Value, `None` for a null value (tombstone).
    pub value: Option<&'a Bytes>,
    /// Headers in wire order, duplicate keys kept.
    pub headers: &'a Headers,
}

impl<'a> SourceRecord<'a> {
    /// A view of a decoded record of `topic`-`partition` from a batch with `timestamp_type`.
    pub fn new(topic: &'a str, partition: i32, timestamp_type: TimestampType, record: &'a Record) -> Self {
        SourceRecord {
            topic,
            partition,
            offset: record.offset,
            timestamp: record.timestamp,
            timestamp_type,
            key: record.key.as_ref(),
            value: record.value.as_ref(),
            headers: &record.headers,
        }
    }

    /// A view of a record as the consumer delivered it.
    pub fn of(record: &'a strom_client::ConsumerRecord) -> Self {
        SourceRecord {
            topic: &record.topic,
            partition: record.partition,
            offset: record.offset,
            timestamp: record.timestamp,
            timestamp_type: record.timestamp_type,
            key: record.key.as_ref(),
            value: record.value.as_ref(),
            headers: &record.headers,
        }
    }

    /// A [`ConnectorError::Deserialize`] for this record.
    pub fn error(&self, reason: impl fmt::Display) -> ConnectorError {
        ConnectorError::Deserialize {
            topic: self.topic.to_owned(),
            partition: self.partition,
            offset: self.offset,
            reason: reason.to_string(),
        }
    }
}

/// Turns a whole record (key, value, headers, position, timestamp) into a `T`
/// (Flink's `KafkaRecordDeserializationSchema`). Closures
/// `Fn(&SourceRecord<'_>) -> Result<Option<T>>` implement it.
pub trait KafkaRecordDeserializer<T>: Send + Sync {
    /// `Ok(Some(v))`: emit `v`; `Ok(None)`: skip the record; `Err`: fail the source (build the
    /// error with [`SourceRecord::error`]).
    fn deserialize(&self, record: &SourceRecord<'_>) -> Result<Option<T>>;

    /// Work to await before [`KafkaRecordDeserializer::deserialize`] can answer for `record`,
    /// such as a schema registry deserializer fetching the writer's schema of an id it has not
    /// seen; the reader awaits it first. `None` (the default) when there is nothing to do, as
    /// for every record once the schemas are cached.
    fn prepare(&self, record: &SourceRecord<'_>) -> Option<Prepare> {
        let _ = record;
        None
    }
}

/// What [`KafkaRecordDeserializer::prepare`] asks the reader to await.
pub type Prepare = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

impl<T, F> KafkaRecordDeserializer<T> for F
where
    F: Fn(&SourceRecord<'_>) -> Result<Option<T>> + Send + Sync,
{
    fn deserialize(&self, record: &SourceRecord<'_>) -> Result<Option<T>> {
        self(record)
    }
}

impl<T> KafkaRecordDeserializer<T> for Arc<dyn KafkaRecordDeserializer<T>> {
    fn deserialize(&self, record: &SourceRecord<'_>) -> Result<Option<T>> {
        (**self).deserialize(record)
    }

    fn prepare(&self, record: &SourceRecord<'_>) -> Option<Prepare> {
        (**self).prepare(record)
    }
}

/// Turns a record value into a `T` (Flink's `DeserializationSchema`); wrap it with
/// [`value_only`] to use it as a [`KafkaRecordDeserializer`].
pub trait ValueDeserializer<T>: Send + Sync {
    /// `Ok(Some(v))`: emit `v`; `Ok(None)`: skip; `Err`: fail with this reason.
    fn deserialize_value(&self, value: &Bytes) -> std::result::Result<Option<T>, BoxError>;

    /// Work to await before `deserialize_value` can answer for `value` (see
    /// [`KafkaRecordDeserializer::prepare`]); its error becomes the record's reason.
    fn prepare_value(&self, value: &Bytes) -> Option<PrepareValue> {
        let _ = value;
        None
    }
}

/// What [`ValueDeserializer::prepare_value`] asks the reader to await.
pub type PrepareValue = std::pin::Pin<Box<dyn std::future::Future<Output = std::result::Result<(), BoxError>> + Send>>;

/// A [`KafkaRecordDeserializer`] that only looks at values (Flink's
/// `KafkaRecordDeserializationSchema.valueOnly`). Tombstones (null values) are skipped, as
/// Flink's JSON schema does for a null message, since a value deserializer has no null to
/// give them.
pub struct ValueOnly<V, T> {
    inner: V,
    _out: PhantomData<fn() -> T>,
}

impl<V, T> fmt::Debug for ValueOnly<V, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ValueOnly")
            .field("out", &std::any::type_name::<T>())
            .finish()
    }
}

/// Wraps a value deserializer into a record deserializer.
pub fn value_only<T, V: ValueDeserializer<T>>(inner: V) -> ValueOnly<V, T> {
    ValueOnly {
        inner,
        _out: PhantomData,
    }
}

impl<T, V: ValueDeserializer<T>> KafkaRecordDeserializer<T> for ValueOnly<V, T> {
    fn deserialize(&self, record: &SourceRecord<'_>) -> Result<Option<T>> {
        match record.value {
            None => Ok(None),
            Some(v) => self.inner.deserialize_value(v).map_err(|e| record.error(e)),
        }
    }

    fn prepare(&self, record: &SourceRecord<'_>) -> Option<Prepare> {
        let work = self.inner.prepare_value(record.value?)?;
        let (topic, partition, offset) = (record.topic.to_owned(), record.partition, record.offset);
        Some(Box::pin(async move {
            work.await.map_err(|e| ConnectorError::Deserialize {
                topic,
                partition,
                offset,
                reason: e.to_string(),
            })
        }))
    }
}

/// The value as it is (`Bytes`, no copy).
#[derive(Debug, Clone, Copy, Default)]
pub struct BytesDeserializer;

impl ValueDeserializer<Bytes> for BytesDeserializer {
    fn deserialize_value(&self, value: &Bytes) -> std::result::Result<Option<Bytes>, BoxError> {
        Ok(Some(value.clone()))
    }
}

/// The value as UTF-8 text (Flink's `SimpleStringSchema`); invalid UTF-8 is an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct StringDeserializer;

impl ValueDeserializer<String> for StringDeserializer {
    fn deserialize_value(&self, value: &Bytes) -> std::result::Result<Option<String>, BoxError> {
        Ok(Some(std::str::from_utf8(value)?.to_owned()))
    }
}

/// The value as JSON into any `serde` type (Flink's `JsonDeserializationSchema`).
pub struct JsonDeserializer<T>(PhantomData<fn() -> T>);

impl<T> fmt::Debug for JsonDeserializer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("JsonDeserializer")
            .field(&std::any::type_name::<T>())
            .finish()
    }
}

impl<T> Default for JsonDeserializer<T> {
    fn default() -> Self {
        JsonDeserializer(PhantomData)
    }
}

impl<T> Clone for JsonDeserializer<T> {
    fn clone(&self) -> Self {
        JsonDeserializer(PhantomData)
    }
}

impl<T: DeserializeOwned> ValueDeserializer<T> for JsonDeserializer<T> {
    fn deserialize_value(&self, value: &Bytes) -> std::result::Result<Option<T>, BoxError> {
        Ok(Some(serde_json::from_slice(value)?))
    }
}

/// Values as `Bytes`, tombstones skipped.
pub fn bytes() -> ValueOnly<BytesDeserializer, Bytes> {
    value_only(BytesDeserializer)
}

/// Values as UTF-8 `String`s, tombstones skipped.
pub fn string() -> ValueOnly<StringDeserializer, String> {
    value_only(StringDeserializer)
}

/// Values as JSON into `T`, tombstones skipped.
pub fn json<T: DeserializeOwned>() -> ValueOnly<JsonDeserializer<T>, T> {
    value_only(JsonDeserializer::default())
}

/// Skips the records `inner` cannot deserialize (Flink's "return null" for a corrupt
/// record) instead of failing the source: each is logged (a warning naming topic,
/// partition, offset and why) and counted in the reader's skipped records. What `prepare`
/// fails with still fails the source: an unreachable schema registry is not a bad record.
/// (A schema id the registry does not have is: it fails `deserialize`, and is skipped.)
#[derive(Debug, Clone)]
pub struct SkipUndecodable<D> {
    inner: D,
}

/// See [`SkipUndecodable`].
pub fn skip_undecodable<D>(inner: D) -> SkipUndecodable<D> {
    SkipUndecodable { inner }
}

impl<T, D: KafkaRecordDeserializer<T>> KafkaRecordDeserializer<T> for SkipUndecodable<D> {
    fn deserialize(&self, record: &SourceRecord<'_>) -> Result<Option<T>> {
        match self.inner.deserialize(record) {
            Ok(v) => Ok(v),
            Err(e) => {
                tracing::warn!(
                    topic = record.topic,
                    partition = record.partition,
                    offset = record.offset,
                    "skipping a record that does not deserialize: {e}"
                );
                Ok(None)
            }
        }
    }

    fn prepare(&self, record: &SourceRecord<'_>) -> Option<Prepare> {
        self.inner.prepare(record)
    }
}

/// Key, value and (with `include_metadata`) where the record came from, as one JSON object
/// (Flink's `JSONKeyValueDeserializationSchema`): `{"key": ..., "value": ..., "metadata":
/// {"offset": ..., "topic": ..., "partition": ...}}`. A null key or value leaves its field
/// out; a key or value that is not JSON fails the source naming the record.
#[derive(Debug, Clone, Copy)]
pub struct JsonKeyValue {
    include_metadata: bool,
}

/// See [`JsonKeyValue`].
pub fn json_key_value(include_metadata: bool) -> JsonKeyValue {
    JsonKeyValue { include_metadata }
}

impl KafkaRecordDeserializer<serde_json::Value> for JsonKeyValue {
    fn deserialize(&self, record: &SourceRecord<'_>) -> Result<Option<serde_json::Value>> {
        let mut node = serde_json::Map::new();
        for (name, bytes) in [("key", record.key), ("value", record.value)] {
            if let Some(b) = bytes {
                let v: serde_json::Value =
                    serde_json::from_slice(b).map_err(|e| record.error(format!("the {name} is not JSON: {e}")))?;
                node.insert(name.to_owned(), v);
            }
        }
        if self.include_metadata {
            node.insert(
                "metadata".to_owned(),
                serde_json::json!({
                    "offset": record.offset,
                    "topic": record.topic,
                    "partition": record.partition,
                }),
            );
        }
        Ok(Some(serde_json::Value::Object(node)))
    }
}

#[cfg(feature = "schemas")]
pub use super::schema_formats::{
    avro, avro_confluent_registry, avro_confluent_registry_specific, avro_specific, json_schema_confluent_registry,
    protobuf_confluent_registry, PlainAvroValues, RegistryAvroValues, RegistryJsonValues, RegistryProtobufValues,
    Specific,
};

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(value: Option<&'static [u8]>) -> Record {
        Record {
            offset: 41,
            timestamp: 1_700_000_000_000,
            key: Some(Bytes::from_static(b"k")),
            value: value.map(Bytes::from_static),
            headers: Headers::default(),
        }
    }

    fn view(r: &Record) -> SourceRecord<'_> {
        SourceRecord::new("events", 2, TimestampType::CreateTime, r)
    }

    #[test]
    fn json_key_value_is_flinks_shape() {
        let r = Record {
            offset: 7,
            timestamp: 0,
            key: Some(Bytes::from_static(b"{\"id\":1}")),
            value: Some(Bytes::from_static(b"[1,2]")),
            headers: Headers::default(),
        };
        let v = json_key_value(true).deserialize(&view(&r)).unwrap().unwrap();
        assert_eq!(
            v,
            serde_json::json!({"key": {"id": 1}, "value": [1, 2],
                "metadata": {"offset": 7, "topic": "events", "partition": 2}})
        );
        let tombstone = Record {
            value: None,
            ..r.clone()
        };
        let v = json_key_value(false).deserialize(&view(&tombstone)).unwrap().unwrap();
        assert_eq!(v, serde_json::json!({"key": {"id": 1}}));
        let bad = Record {
            key: Some(Bytes::from_static(b"not json")),
            ..r
        };
        let e = json_key_value(false).deserialize(&view(&bad)).unwrap_err();
        assert!(e.to_string().contains("key is not JSON"), "{e}");
    }

    #[test]
    fn value_only_helpers() {
        let r = rec(Some(b"hello"));
        assert_eq!(
            bytes().deserialize(&view(&r)).unwrap(),
            Some(Bytes::from_static(b"hello"))
        );
        assert_eq!(string().deserialize(&view(&r)).unwrap().as_deref(), Some("hello"));

        // Tombstones are skipped by every value-only deserializer.
        let t = rec(None);
        assert_eq!(bytes().deserialize(&view(&t)).unwrap(), None);
        assert_eq!(string().deserialize(&view(&t)).unwrap(), None);
        assert_eq!(json::<serde_json::Value>().deserialize(&view(&t)).unwrap(), None);

        let bad = rec(Some(b"\xff\xfe"));
        match string().deserialize(&view(&bad)).unwrap_err() {
            ConnectorError::Deserialize {
                topic,
                partition,
                offset,
                reason,
            } => {
                assert_eq!((topic.as_str(), partition, offset), ("events", 2, 41));
                assert!(reason.contains("utf-8"), "{reason}");
            }
            e => panic!("{e}"),
        }
    }

    #[test]
    fn json_into_serde_types() {
        #[derive(Debug, PartialEq, serde::Deserialize)]
        struct Order {
            id: u32,
            item: String,
        }
        let r = rec(Some(br#"{"id":7,"item":"tea"}"#));
        assert_eq!(
            json::<Order>().deserialize(&view(&r)).unwrap(),
            Some(Order {
                id: 7,
                item: "tea".into()
            })
        );
        let r = rec(Some(br#"{"id":"x"}"#));
        let e = json::<Order>().deserialize(&view(&r)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("cannot deserialize record at events-2 offset 41: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn full_record_closure_can_skip_and_fail() {
        let d = |r: &SourceRecord<'_>| -> Result<Option<(String, i64, i64)>> {
            let key = r.key.ok_or_else(|| r.error("no key"))?;
            if r.value.is_none() {
                return Ok(None);
            }
            let key = std::str::from_utf8(key).map_err(|e| r.error(e))?;
            Ok(Some((
                format!("{}/{}/{key}", r.topic, r.partition),
                r.offset,
                r.timestamp,
            )))
        };
        let d: Arc<dyn KafkaRecordDeserializer<_>> = Arc::new(d);
        let r = rec(Some(b"v"));
        assert_eq!(
            d.deserialize(&view(&r)).unwrap(),
            Some(("events/2/k".to_owned(), 41, 1_700_000_000_000))
        );
        assert_eq!(d.deserialize(&view(&rec(None))).unwrap(), None);
        let mut nokey = rec(Some(b"v"));
        nokey.key = None;
        assert!(d
            .deserialize(&view(&nokey))
            .unwrap_err()
            .to_string()
            .ends_with("no key"));
        assert_eq!(view(&r).timestamp_type, TimestampType::CreateTime);
    }
}
