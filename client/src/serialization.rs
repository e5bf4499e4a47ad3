//! Typed keys and values (Java's `org.apache.kafka.common.serialization`).
//!
//! The client moves bytes: [`ProducerRecord`] and [`ConsumerRecord`] hold `Bytes`, and that
//! path copies nothing. A [`Serializer`] turns a `T` into those bytes, a [`Deserializer`]
//! turns them back. Both are async because some need the network (a schema registry's
//! serializer registers or fetches a schema the first time it sees it); the standard ones
//! here never wait.
//!
//! The standard serializers write what Java's write, byte for byte: integers and floats big
//! endian ([`I32`] is `IntegerSerializer`), text as UTF-8 ([`Utf8`] is `StringSerializer`), a
//! UUID as its 36-character text ([`UuidText`] is `UUIDSerializer`), [`Json`] any `serde`
//! type (Kafka Connect's schemaless `JsonConverter` reads it).
//!
//! Producing typed records: [`TypedRecord`] serialized into a [`ProducerRecord`], or a
//! [`TypedProducer`] that does it on every send. Consuming: [`ConsumerRecord::deserialize`]
//! gives a [`TypedConsumerRecord`]; a record that does not deserialize is an
//! [`ErrorKind::Serialization`](crate::ErrorKind::Serialization) error naming its topic,
//! partition and offset (Java's `RecordDeserializationException`), so the application can
//! decide to skip it (`seek` past the offset) or stop.
//!
//! ```
//! # async fn demo() -> Result<(), strom_client::Error> {
//! use strom_client::serialization::{Deserializer, Field, I64, Serializer, Utf8};
//! let bytes = I64.serialize("t", Field::Key, &42).await?;
//! assert_eq!(&bytes[..], &[0, 0, 0, 0, 0, 0, 0, 42]);
//! assert_eq!(I64.deserialize("t", Field::Key, &bytes).await?, 42);
//! let text = Utf8.serialize("t", Field::Value, "grüße").await?;
//! assert_eq!(Utf8.deserialize("t", Field::Value, &text).await?, "grüße");
//! # Ok(()) }
//! ```

use std::future::{ready, Future};
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::Bytes;
use strom_protocol::record_batch::{Headers, TimestampType};

use crate::consumer::ConsumerRecord;
use crate::producer::{DeliveryFuture, Producer, ProducerRecord};
use crate::{Error, Result};

/// Which part of a record is being (de)serialized: Java passes `isKey` to `configure`; a
/// schema registry serializer picks the subject from it (`<topic>-key` or `<topic>-value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// The record's key.
    Key,
    /// The record's value.
    Value,
}

impl Field {
    /// `"key"` or `"value"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Field::Key => "key",
            Field::Value => "value",
        }
    }
}

/// Turns a `T` into the bytes of a record's key or value (Java's `Serializer<T>`).
///
/// A null key or value is not serialized: it stays `None` in the record.
pub trait Serializer<T: ?Sized>: Send + Sync {
    /// The bytes for `value`, a key or value of a record for `topic`.
    fn serialize(&self, topic: &str, field: Field, value: &T) -> impl Future<Output = Result<Bytes>> + Send;
}

/// Turns the bytes of a record's key or value into a `T` (Java's `Deserializer<T>`).
///
/// A null key or value is not deserialized: it stays `None` in the typed record.
pub trait Deserializer<T>: Send + Sync {
    /// The `T` in `data`, a key or value of a record of `topic`.
    fn deserialize(&self, topic: &str, field: Field, data: &Bytes) -> impl Future<Output = Result<T>> + Send;
}

impl<T: ?Sized, S: Serializer<T>> Serializer<T> for &S {
    fn serialize(&self, topic: &str, field: Field, value: &T) -> impl Future<Output = Result<Bytes>> + Send {
        (**self).serialize(topic, field, value)
    }
}

impl<T, D: Deserializer<T>> Deserializer<T> for &D {
    fn deserialize(&self, topic: &str, field: Field, data: &Bytes) -> impl Future<Output = Result<T>> + Send {
        (**self).deserialize(topic, field, data)
    }
}

impl<T: ?Sized, S: Serializer<T>> Serializer<T> for Arc<S> {
    fn serialize(&self, topic: &str, field: Field, value: &T) -> impl Future<Output = Result<Bytes>> + Send {
        (**self).serialize(topic, field, value)
    }
}

impl<T, D: Deserializer<T>> Deserializer<T> for Arc<D> {
    fn deserialize(&self, topic: &str, field: Field, data: &Bytes) -> impl Future<Output = Result<T>> + Send {
        (**self).deserialize(topic, field, data)
    }
}

fn wrong_size(what: &str, want: usize, got: usize) -> Error {
    Error::serialization(
        format!("size of data received by {what} is not {want} but {got} bytes"),
        None,
    )
}

/// The bytes as they are (Java's `ByteArraySerializer`/`BytesSerializer`): no copy.
#[derive(Debug, Clone, Copy, Default)]
pub struct RawBytes;

impl Serializer<Bytes> for RawBytes {
    fn serialize(&self, _: &str, _: Field, value: &Bytes) -> impl Future<Output = Result<Bytes>> + Send {
        ready(Ok(value.clone()))
    }
}

impl Serializer<[u8]> for RawBytes {
    fn serialize(&self, _: &str, _: Field, value: &[u8]) -> impl Future<Output = Result<Bytes>> + Send {
        ready(Ok(Bytes::copy_from_slice(value)))
    }
}

impl Serializer<Vec<u8>> for RawBytes {
    fn serialize(&self, _: &str, _: Field, value: &Vec<u8>) -> impl Future<Output = Result<Bytes>> + Send {
        ready(Ok(Bytes::copy_from_slice(value)))
    }
}

impl Deserializer<Bytes> for RawBytes {
    fn deserialize(&self, _: &str, _: Field, data: &Bytes) -> impl Future<Output = Result<Bytes>> + Send {
        ready(Ok(data.clone()))
    }
}

impl Deserializer<Vec<u8>> for RawBytes {
    fn deserialize(&self, _: &str, _: Field, data: &Bytes) -> impl Future<Output = Result<Vec<u8>>> + Send {
        ready(Ok(data.to_vec()))
    }
}

/// Text as UTF-8 (Java's `StringSerializer`/`StringDeserializer` with their default
/// encoding). Invalid UTF-8 does not deserialize.
#[derive(Debug, Clone, Copy, Default)]
pub struct Utf8;

impl Serializer<str> for Utf8 {
    fn serialize(&self, _: &str, _: Field, value: &str) -> impl Future<Output = Result<Bytes>> + Send {
        ready(Ok(Bytes::copy_from_slice(value.as_bytes())))
    }
}

impl Serializer<String> for Utf8 {
    fn serialize(&self, _: &str, _: Field, value: &String) -> impl Future<Output = Result<Bytes>> + Send {
        ready(Ok(Bytes::copy_from_slice(value.as_bytes())))
    }
}

impl Deserializer<String> for Utf8 {
    fn deserialize(&self, _: &str, field: Field, data: &Bytes) -> impl Future<Output = Result<String>> + Send {
        ready(match std::str::from_utf8(data) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(Error::serialization(
                format!("the {} is not valid UTF-8", field.as_str()),
                Some(Box::new(e)),
            )),
        })
    }
}

macro_rules! big_endian {
    ($(#[$doc:meta] $name:ident $t:ty, $java:literal;)*) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl Serializer<$t> for $name {
            fn serialize(&self, _: &str, _: Field, value: &$t) -> impl Future<Output = Result<Bytes>> + Send {
                ready(Ok(Bytes::copy_from_slice(&value.to_be_bytes())))
            }
        }

        impl Deserializer<$t> for $name {
            fn deserialize(&self, _: &str, _: Field, data: &Bytes) -> impl Future<Output = Result<$t>> + Send {
                const N: usize = std::mem::size_of::<$t>();
                ready(match <[u8; N]>::try_from(&data[..]) {
                    Ok(b) => Ok(<$t>::from_be_bytes(b)),
                    Err(_) => Err(wrong_size($java, N, data.len())),
                })
            }
        }
    )*};
}

big_endian! {
    /// A 16-bit integer, big endian (Java's `ShortSerializer`).
    I16 i16, "ShortDeserializer";
    /// A 32-bit integer, big endian (Java's `IntegerSerializer`).
    I32 i32, "IntegerDeserializer";
    /// A 64-bit integer, big endian (Java's `LongSerializer`).
    I64 i64, "LongDeserializer";
    /// A 32-bit float, its IEEE 754 bits big endian (Java's `FloatSerializer`).
    F32 f32, "FloatDeserializer";
    /// A 64-bit float, its IEEE 754 bits big endian (Java's `DoubleSerializer`).
    F64 f64, "DoubleDeserializer";
}

/// A boolean as one byte, 1 or 0 (Java's `BooleanSerializer`); any other byte does not
/// deserialize.
#[derive(Debug, Clone, Copy, Default)]
pub struct Bool;

impl Serializer<bool> for Bool {
    fn serialize(&self, _: &str, _: Field, value: &bool) -> impl Future<Output = Result<Bytes>> + Send {
        ready(Ok(Bytes::copy_from_slice(&[u8::from(*value)])))
    }
}

impl Deserializer<bool> for Bool {
    fn deserialize(&self, _: &str, _: Field, data: &Bytes) -> impl Future<Output = Result<bool>> + Send {
        ready(match &data[..] {
            [0] => Ok(false),
            [1] => Ok(true),
            [b] => Err(Error::serialization(
                format!("BooleanDeserializer reads 0 or 1, not {b}"),
                None,
            )),
            _ => Err(wrong_size("BooleanDeserializer", 1, data.len())),
        })
    }
}

/// A UUID as its 36-character text (Java's `UUIDSerializer`, which writes
/// `UUID.toString()`); reading accepts what `UUID.fromString` accepts in that form.
#[derive(Debug, Clone, Copy, Default)]
pub struct UuidText;

impl Serializer<uuid::Uuid> for UuidText {
    fn serialize(&self, _: &str, _: Field, value: &uuid::Uuid) -> impl Future<Output = Result<Bytes>> + Send {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let text = value.hyphenated().encode_lower(&mut buf);
        ready(Ok(Bytes::copy_from_slice(text.as_bytes())))
    }
}

impl Deserializer<uuid::Uuid> for UuidText {
    fn deserialize(&self, _: &str, field: Field, data: &Bytes) -> impl Future<Output = Result<uuid::Uuid>> + Send {
        let parsed = std::str::from_utf8(data)
            .ok()
            .filter(|s| s.len() == uuid::fmt::Hyphenated::LENGTH)
            .and_then(|s| uuid::Uuid::parse_str(s).ok());
        ready(parsed.ok_or_else(|| {
            Error::serialization(
                format!(
                    "the {} is not a UUID in its 36-character form ({} bytes)",
                    field.as_str(),
                    data.len()
                ),
                None,
            )
        }))
    }
}

/// Any `serde` type as JSON text (`serde_json`). Deserializing checks the whole input is one
/// JSON value of the type.
pub struct Json<T: ?Sized>(PhantomData<fn(&T)>);

impl<T: ?Sized> Json<T> {
    /// A JSON serializer and deserializer for `T`.
    pub fn new() -> Self {
        Json(PhantomData)
    }
}

impl<T: ?Sized> Default for Json<T> {
    fn default() -> Self {
        Json::new()
    }
}

impl<T: ?Sized> Clone for Json<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Json<T> {}

impl<T: ?Sized> std::fmt::Debug for Json<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Json").field(&std::any::type_name::<T>()).finish()
    }
}

impl<T: serde::Serialize + ?Sized + Sync> Serializer<T> for Json<T> {
    fn serialize(&self, _: &str, field: Field, value: &T) -> impl Future<Output = Result<Bytes>> + Send {
        ready(serde_json::to_vec(value).map(Bytes::from).map_err(|e| {
            Error::serialization(
                format!("the {} does not serialize as JSON", field.as_str()),
                Some(Box::new(e)),
            )
        }))
    }
}

impl<T: serde::de::DeserializeOwned + Send> Deserializer<T> for Json<T> {
    fn deserialize(&self, _: &str, field: Field, data: &Bytes) -> impl Future<Output = Result<T>> + Send {
        ready(serde_json::from_slice(data).map_err(|e| {
            Error::serialization(
                format!("the {} is not JSON of {}", field.as_str(), std::any::type_name::<T>()),
                Some(Box::new(e)),
            )
        }))
    }
}

/// A record to produce with a typed key and value; [`TypedRecord::serialize`] makes the
/// [`ProducerRecord`] the producer sends.
#[derive(Debug, Clone)]
pub struct TypedRecord<K, V> {
    /// Topic.
    pub topic: String,
    /// Partition; `None` lets the partitioner choose (from the serialized key).
    pub partition: Option<i32>,
    /// Key; `None` is a null key.
    pub key: Option<K>,
    /// Value; `None` is a tombstone.
    pub value: Option<V>,
    /// Headers in order.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Timestamp in ms; `None` = now.
    pub timestamp: Option<i64>,
}

impl<K, V> TypedRecord<K, V> {
    /// A record with a value and no key.
    pub fn new(topic: impl Into<String>, value: V) -> Self {
        TypedRecord {
            topic: topic.into(),
            partition: None,
            key: None,
            value: Some(value),
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// A tombstone (null value) for `key`.
    pub fn tombstone(topic: impl Into<String>, key: K) -> Self {
        TypedRecord {
            topic: topic.into(),
            partition: None,
            key: Some(key),
            value: None,
            headers: Vec::new(),
            timestamp: None,
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: K) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets the partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push((key.into(), Some(value.into())));
        self
    }

    /// Sets the timestamp (ms since the epoch).
    pub fn timestamp(mut self, timestamp: i64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// The record with its key and value serialized. A key or value that does not serialize
    /// fails with [`ErrorKind::Serialization`](crate::ErrorKind::Serialization) naming the topic.
    ///
    /// Cancellation-safe: dropping the call loses only the serialized record.
    pub async fn serialize<KS, VS>(self, key: &KS, value: &VS) -> Result<ProducerRecord>
    where
        KS: Serializer<K>,
        VS: Serializer<V>,
    {
        let topic = self.topic;
        let key = match &self.key {
            Some(k) => Some(
                key.serialize(&topic, Field::Key, k)
                    .await
                    .map_err(|e| e.with_topic(&topic))?,
            ),
            None => None,
        };
        let value = match &self.value {
            Some(v) => Some(
                value
                    .serialize(&topic, Field::Value, v)
                    .await
                    .map_err(|e| e.with_topic(&topic))?,
            ),
            None => None,
        };
        Ok(ProducerRecord {
            topic,
            partition: self.partition,
            key,
            value,
            headers: self.headers,
            timestamp: self.timestamp,
        })
    }
}

/// A [`Producer`] with a key and a value serializer (Java's `KafkaProducer<K, V>`): `send`
/// serializes, then queues as [`Producer::send`] does. The bytes path stays on
/// [`TypedProducer::producer`].
#[derive(Debug, Clone)]
pub struct TypedProducer<KS, VS> {
    producer: Producer,
    key: KS,
    value: VS,
}

impl<KS, VS> TypedProducer<KS, VS> {
    /// `producer` serializing keys with `key` and values with `value`.
    pub fn new(producer: Producer, key: KS, value: VS) -> Self {
        TypedProducer { producer, key, value }
    }

    /// The producer underneath (bytes in, no serialization).
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// Serializes and queues a record; see [`Producer::send`]. A key or value that does not
    /// serialize fails before anything is queued.
    ///
    /// Cancellation-safe: as [`Producer::send`], the record is queued whole or not at all.
    pub async fn send<K, V>(&self, record: TypedRecord<K, V>) -> Result<DeliveryFuture>
    where
        KS: Serializer<K>,
        VS: Serializer<V>,
    {
        let record = record.serialize(&self.key, &self.value).await?;
        self.producer.send(record).await
    }
}

/// A fetched record with its key and value deserialized; see [`ConsumerRecord::deserialize`].
#[derive(Debug, Clone)]
pub struct TypedConsumerRecord<K, V> {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Timestamp in ms since the epoch.
    pub timestamp: i64,
    /// Whether the producer or the broker set the timestamp.
    pub timestamp_type: TimestampType,
    /// Leader epoch of the batch, when the broker wrote one.
    pub leader_epoch: Option<i32>,
    /// Key; `None` for a null key.
    pub key: Option<K>,
    /// Value; `None` for a null value (a tombstone).
    pub value: Option<V>,
    /// Headers.
    pub headers: Headers,
}

impl ConsumerRecord {
    /// This record with its key and value deserialized. A key or value that does not
    /// deserialize fails with [`ErrorKind::Serialization`](crate::ErrorKind::Serialization),
    /// carrying this record's topic, partition and offset ([`Error::offset`]) and the
    /// deserializer's error as its source. Null keys and values stay `None`.
    ///
    /// Cancellation-safe: dropping the call loses only the deserialized record.
    pub async fn deserialize<K, V, KD, VD>(&self, key: &KD, value: &VD) -> Result<TypedConsumerRecord<K, V>>
    where
        KD: Deserializer<K>,
        VD: Deserializer<V>,
    {
        let at = |e: Error, field: Field| {
            e.with_record_position(&self.topic, self.partition, self.offset)
                .with_context(format!(
                    "{} of {}-{} at offset {}",
                    field.as_str(),
                    self.topic,
                    self.partition,
                    self.offset
                ))
        };
        let k = match &self.key {
            Some(b) => Some(
                key.deserialize(&self.topic, Field::Key, b)
                    .await
                    .map_err(|e| at(e, Field::Key))?,
            ),
            None => None,
        };
        let v = match &self.value {
            Some(b) => Some(
                value
                    .deserialize(&self.topic, Field::Value, b)
                    .await
                    .map_err(|e| at(e, Field::Value))?,
            ),
            None => None,
        };
        Ok(TypedConsumerRecord {
            topic: self.topic.clone(),
            partition: self.partition,
            offset: self.offset,
            timestamp: self.timestamp,
            timestamp_type: self.timestamp_type,
            leader_epoch: self.leader_epoch,
            key: k,
            value: v,
            headers: self.headers.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn block<F: Future>(f: F) -> F::Output {
        futures_util::FutureExt::now_or_never(f).expect("the standard serializers never wait")
    }

    #[test]
    fn numbers_are_big_endian_like_java() {
        assert_eq!(&block(I16.serialize("t", Field::Key, &-2)).unwrap()[..], &[0xff, 0xfe]);
        assert_eq!(
            &block(I32.serialize("t", Field::Key, &0x0102_0304)).unwrap()[..],
            &[1, 2, 3, 4]
        );
        assert_eq!(
            &block(F64.serialize("t", Field::Key, &1.5)).unwrap()[..],
            &1.5f64.to_bits().to_be_bytes()
        );
        let e = block(I32.deserialize("t", Field::Value, &Bytes::from_static(&[1, 2, 3]))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Serialization);
        assert!(e.to_string().contains("IntegerDeserializer is not 4 but 3"), "{e}");
        assert!(!e.is_retriable() && !e.is_fatal());
    }

    #[test]
    fn text_uuid_and_bool() {
        let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let b = block(UuidText.serialize("t", Field::Key, &id)).unwrap();
        assert_eq!(&b[..], b"01234567-89ab-cdef-0123-456789abcdef");
        assert_eq!(block(UuidText.deserialize("t", Field::Key, &b)).unwrap(), id);
        // The 32-digit form is not what Java writes nor reads back from UUIDSerializer.
        let bad = Bytes::from_static(b"0123456789abcdef0123456789abcdef");
        assert!(block(UuidText.deserialize("t", Field::Key, &bad)).is_err());
        assert!(block(Utf8.deserialize("t", Field::Value, &Bytes::from_static(&[0xff]))).is_err());
        assert!(block(Bool.deserialize("t", Field::Value, &Bytes::from_static(&[2]))).is_err());
        assert!(block(Bool.deserialize("t", Field::Value, &Bytes::from_static(&[1]))).unwrap());
    }

    #[test]
    fn a_record_that_does_not_deserialize_names_where_it_is() {
        let record = ConsumerRecord {
            topic: Arc::from("orders"),
            partition: 3,
            offset: 17,
            timestamp: 0,
            timestamp_type: TimestampType::CreateTime,
            leader_epoch: None,
            key: Some(Bytes::from_static(b"k")),
            value: Some(Bytes::from_static(b"{not json")),
            headers: Headers::default(),
        };
        let e = block(record.deserialize::<String, serde_json::Value, _, _>(&Utf8, &Json::new())).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Serialization);
        assert_eq!(
            (e.topic(), e.partition(), e.offset()),
            (Some("orders"), Some(3), Some(17))
        );
        assert!(std::error::Error::source(&e).is_some());
        assert!(e.to_string().contains("value of orders-3 at offset 17"), "{e}");
        let ok = block(record.deserialize::<String, Bytes, _, _>(&Utf8, &RawBytes)).unwrap();
        assert_eq!(ok.key.as_deref(), Some("k"));
    }
}
