//! What the serializers and deserializers of every format share: how a serializer finds the
//! schema id it writes with (once per topic), and the deserializers' cache of parsed writer
//! schemas by id.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock, RwLock};

use crate::client::{Schema, SchemaRegistryClient, SchemaType, WriterSchema};
use crate::error::{Error, Result};
use crate::wire;

/// Per topic, for values and for keys, the schema id and parsed schema a serializer writes
/// with, and whether it is its own (looked up by `&str`: no allocation per record).
pub(crate) struct PerTopic<S> {
    maps: [RwLock<HashMap<String, Found<S>>>; 2],
    /// The first few (topic, key or value) pairs found writing with the serializer's own
    /// schema, which never changes for them: read with no lock and no hash, the common case
    /// of a serializer writing to a topic or two.
    fast: [OnceLock<FastEntry<S>>; FAST_SLOTS],
}

/// A topic, whether it is for keys, the schema id and the schema.
type FastEntry<S> = (Box<str>, bool, i32, S);

/// How many entries the lock-free fast paths of the caches hold.
pub(crate) const FAST_SLOTS: usize = 4;

/// The schema id, the parsed schema, and whether it is the serializer's own.
type Found<S> = (i32, S, bool);

impl<S: Clone> PerTopic<S> {
    pub(crate) fn new() -> Self {
        PerTopic {
            maps: [RwLock::default(), RwLock::default()],
            fast: Default::default(),
        }
    }

    /// The id and schema of a key (`is_key`) or value of `topic` when it is on the fast path
    /// (see `fast`).
    #[inline]
    pub(crate) fn fast(&self, topic: &str, is_key: bool) -> Option<(i32, &S)> {
        for slot in &self.fast {
            match slot.get() {
                Some((t, k, id, s)) if *k == is_key && **t == *topic => return Some((*id, s)),
                Some(_) => {}
                None => return None,
            }
        }
        None
    }

    fn remember_fast(&self, topic: &str, is_key: bool, id: i32, schema: &S) {
        if self.fast(topic, is_key).is_some() {
            return;
        }
        for slot in &self.fast {
            if slot.get().is_none() && slot.set((topic.into(), is_key, id, schema.clone())).is_ok() {
                return;
            }
        }
    }

    /// The id and schema to write a key (`is_key`) or value of `topic` with. A serializer's
    /// own schema is resolved once per topic. With `use.latest.version` the subject's latest
    /// is asked each time (the client caches it for `latest.cache.ttl.sec`), and parsed with
    /// `parse` only when its id changes.
    pub(crate) async fn writer<F, Fut>(
        &self,
        registry: &SchemaRegistryClient,
        topic: &str,
        is_key: bool,
        record_name: Option<&str>,
        own: (&Schema, &S),
        parse: F,
    ) -> Result<(i32, S)>
    where
        F: FnOnce(Schema) -> Fut,
        Fut: Future<Output = Result<S>>,
    {
        let cached = self.get(topic, is_key);
        if let Some((id, s, true)) = cached {
            self.remember_fast(topic, is_key, id, &s);
            return Ok((id, s));
        }
        let subject = registry.subject_for(topic, is_key, record_name)?;
        let (id, schema, is_own) = match registry.writer_schema_for(&subject, own.0).await? {
            WriterSchema::Own(id) => (id, own.1.clone(), true),
            WriterSchema::Latest(latest) => match cached {
                Some((id, s, false)) if id == latest.id => return Ok((id, s)),
                _ => (latest.id, parse(latest.schema).await?, false),
            },
        };
        self.insert(topic, is_key, (id, schema.clone(), is_own));
        if is_own {
            self.remember_fast(topic, is_key, id, &schema);
        }
        Ok((id, schema))
    }

    fn get(&self, topic: &str, is_key: bool) -> Option<Found<S>> {
        self.maps[usize::from(is_key)]
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(topic)
            .cloned()
    }

    fn insert(&self, topic: &str, is_key: bool, v: Found<S>) {
        self.maps[usize::from(is_key)]
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(topic.to_owned(), v);
    }
}

/// A deserializer's parsed writer schemas by id, bounded by `max.schemas.per.subject`.
pub(crate) struct Writers<S> {
    map: Arc<RwLock<HashMap<i32, S>>>,
}

impl<S> Clone for Writers<S> {
    fn clone(&self) -> Self {
        Writers { map: self.map.clone() }
    }
}

impl<S: Clone> Writers<S> {
    pub(crate) fn new() -> Self {
        Writers {
            map: Arc::new(RwLock::new(HashMap::new())),
        }
    }

    pub(crate) fn get(&self, id: i32) -> Option<S> {
        self.map.read().unwrap_or_else(|p| p.into_inner()).get(&id).cloned()
    }

    /// The schema id in `data` when its schema is not cached yet; `None` when it is, or when
    /// `data` is not framed (decoding then says so).
    pub(crate) fn uncached_id(&self, data: &[u8]) -> Option<i32> {
        let id = wire::decode(data).ok()?.schema_id;
        let cached = self.map.read().unwrap_or_else(|p| p.into_inner()).contains_key(&id);
        (!cached).then_some(id)
    }

    /// The cached schema of a framed record, or an error saying it is not fetched yet.
    pub(crate) fn cached(&self, framed: &wire::Framed<'_>) -> Result<S> {
        self.get(framed.schema_id).ok_or_else(|| {
            Error::serialization("the writer schema is not fetched yet (fetch it first)")
                .with_schema_id(framed.schema_id)
        })
    }

    /// The schema with `id`: cached, or fetched from `registry`, checked to be of `format`,
    /// and parsed with `parse` (which resolves its references).
    pub(crate) async fn fetch<F, Fut>(
        &self,
        registry: &SchemaRegistryClient,
        id: i32,
        format: SchemaType,
        parse: F,
    ) -> Result<S>
    where
        F: FnOnce(Schema) -> Fut,
        Fut: Future<Output = Result<S>>,
    {
        if let Some(s) = self.get(id) {
            return Ok(s);
        }
        let schema = registry.schema_by_id(id).await?;
        if schema.schema_type != format {
            let name = |t: SchemaType| match t {
                SchemaType::Avro => "Avro",
                SchemaType::Protobuf => "Protobuf",
                SchemaType::Json => "JSON",
            };
            return Err(Error::serialization(format!(
                "schema {id} is {}, not {}: the record was not written by a {} serializer",
                name(schema.schema_type),
                name(format),
                name(format)
            ))
            .with_schema_id(id));
        }
        let parsed = parse((*schema).clone()).await.map_err(|e| e.with_schema_id(id))?;
        let mut w = self.map.write().unwrap_or_else(|p| p.into_inner());
        if w.len() >= registry.config().cache_capacity {
            w.clear();
        }
        w.insert(id, parsed.clone());
        Ok(parsed)
    }
}

/// `message` with ` (topic T)` added when a topic is known (the connector passes none: its
/// errors name topic, partition and offset themselves).
pub(crate) fn in_topic(e: Error, topic: &str, id: i32) -> Error {
    let message = if topic.is_empty() {
        e.message().to_owned()
    } else {
        format!("{} (topic {topic})", e.message())
    };
    Error::new(e.kind(), message).with_schema_id(id).with_source(e)
}
