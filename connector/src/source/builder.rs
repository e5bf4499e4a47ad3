//! `KafkaSource` and its builder (Flink's `KafkaSource`, `KafkaSourceBuilder` and
//! `KafkaSourceOptions`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::Arc;
use std::time::Duration;

use strom_client::{Admin, ClientConfig, ConsumerConfig, IsolationLevel, OffsetReset};

use super::deserializer::{value_only, KafkaRecordDeserializer, ValueDeserializer};
use super::enumerator::{EnumeratorConfig, SplitEnumerator, Subscription, TopicPattern};
use super::initializer::OffsetsInitializer;
use super::split::TopicPartition;
use crate::{ConnectorError, Result};

/// `client.id.prefix`: prefix of the readers' `client.id` (`<prefix>-<subtask>`) and of the
/// enumerator's admin client (`<prefix>-enumerator-admin-client`). Default: the group id,
/// else `KafkaSource-<random>`.
pub const CLIENT_ID_PREFIX: &str = "client.id.prefix";
/// `partition.discovery.interval.ms`: how often to look for new partitions. As the seed says
/// ("to enable partition discovery, set a non-negative value"), any value `>= 0` enables
/// discovery at that interval, and a negative one disables it. `0` is an interval of nothing:
/// a pipeline then looks for new partitions after every poll of the source (one metadata
/// request each; a warning says so at build). (Flink's own `KafkaSourceEnumerator` treats 0 as
/// disabled; the seed is followed here.) Default: disabled, as the seed says ("Partition
/// discovery is **disabled** by default"; Flink's newer releases default to 5 min for
/// unbounded sources). Forced off for bounded sources.
pub const PARTITION_DISCOVERY_INTERVAL_MS: &str = "partition.discovery.interval.ms";
/// `register.consumer.metrics`: expose the reader consumer's metrics (default true).
pub const REGISTER_CONSUMER_METRICS: &str = "register.consumer.metrics";
/// `commit.offsets.on.checkpoint`: commit the read offsets to the group when a checkpoint
/// completes (default true; forced false without `group.id`).
pub const COMMIT_OFFSETS_ON_CHECKPOINT: &str = "commit.offsets.on.checkpoint";
/// The legacy `FlinkKafkaConsumer`'s partition discovery key: a non-negative value is the
/// interval in ms (0: after every poll), a negative one disables discovery, as the legacy seed
/// says and as [`PARTITION_DISCOVERY_INTERVAL_MS`].
pub const LEGACY_PARTITION_DISCOVERY: &str = "flink.partition-discovery.interval-millis";
/// `auto.offset.reset` as the seed documentation spells it: overridden by the starting
/// offsets initializer, as `auto.offset.reset` is.
pub const LEGACY_AUTO_OFFSET_RESET: &str = "auto.offset.reset.strategy";

/// Whether the source ends (Flink's `Boundedness`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundedness {
    /// Ends when every split reached its stopping offset (`bounded(..)`): batch mode.
    Bounded,
    /// Streaming (the default). With `unbounded(stopping)` the splits still stop at the
    /// stopping offsets.
    ContinuousUnbounded,
}

/// A Kafka source: what to read, from and to where, and how to turn records into `T`.
/// Built with [`KafkaSource::builder`]; every setting is resolved and validated, so the
/// enumerator ([`Self::create_enumerator`]) and the reader's consumer
/// ([`Self::consumer_config`]) can be made from it without further checks. Building checks
/// the settings without connecting.
///
/// ```
/// use strom_client::IsolationLevel;
/// use strom_connector::source::{deserializer, Boundedness, KafkaSource, OffsetResetStrategy, OffsetsInitializer};
///
/// let source: KafkaSource<String> = KafkaSource::builder()
///     .bootstrap_servers("127.0.0.1:9092")
///     .topics(["orders"]) // or topic_pattern("orders-.*"), or partitions([...])
///     .group_id("orders-upper")
///     // Where to start: the group's committed offsets, else the earliest.
///     .starting_offsets(OffsetsInitializer::committed_offsets(OffsetResetStrategy::Earliest))
///     .deserializer(deserializer::string()) // values as UTF-8 strings
///     .property("isolation.level", "read_committed") // any consumer property by its Java name
///     .build()?;
/// assert_eq!(source.boundedness(), Boundedness::ContinuousUnbounded);
/// assert_eq!(source.isolation_level(), IsolationLevel::ReadCommitted);
/// # Ok::<(), strom_connector::ConnectorError>(())
/// ```
///
/// [`Pipeline`](crate::Pipeline) runs it with a sink; the [module docs](super) show the
/// enumerator and reader it is made of.
pub struct KafkaSource<T> {
    subscription: Subscription,
    starting_offsets: OffsetsInitializer,
    stopping_offsets: Option<OffsetsInitializer>,
    boundedness: Boundedness,
    deserializer: Arc<dyn KafkaRecordDeserializer<T>>,
    properties: BTreeMap<String, String>,
    consumer: ConsumerConfig,
    client_id_prefix: String,
    partition_discovery_interval: Option<Duration>,
    register_consumer_metrics: bool,
    commit_offsets_on_checkpoint: bool,
    ignored_properties: Vec<String>,
}

impl<T> Clone for KafkaSource<T> {
    fn clone(&self) -> Self {
        KafkaSource {
            subscription: self.subscription.clone(),
            starting_offsets: self.starting_offsets.clone(),
            stopping_offsets: self.stopping_offsets.clone(),
            boundedness: self.boundedness,
            deserializer: self.deserializer.clone(),
            properties: self.properties.clone(),
            consumer: self.consumer.clone(),
            client_id_prefix: self.client_id_prefix.clone(),
            partition_discovery_interval: self.partition_discovery_interval,
            register_consumer_metrics: self.register_consumer_metrics,
            commit_offsets_on_checkpoint: self.commit_offsets_on_checkpoint,
            ignored_properties: self.ignored_properties.clone(),
        }
    }
}

impl<T> fmt::Debug for KafkaSource<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSource")
            .field("subscription", &self.subscription)
            .field("starting_offsets", &self.starting_offsets)
            .field("stopping_offsets", &self.stopping_offsets)
            .field("boundedness", &self.boundedness)
            .field("group_id", &self.consumer.group_id)
            .field("client_id_prefix", &self.client_id_prefix)
            .field("partition_discovery_interval", &self.partition_discovery_interval)
            .field("commit_offsets_on_checkpoint", &self.commit_offsets_on_checkpoint)
            .finish_non_exhaustive()
    }
}

impl<T> KafkaSource<T> {
    /// A builder with Flink's defaults: earliest starting offsets, unbounded, no discovery.
    pub fn builder() -> KafkaSourceBuilder<T> {
        KafkaSourceBuilder::default()
    }

    /// A builder with the legacy `FlinkKafkaConsumer`'s defaults: each partition starts at the
    /// group's committed offset, or where `auto.offset.reset` says (default `latest`) when it
    /// has none ([`KafkaSourceBuilder::set_start_from_group_offsets`]); needs `group.id`.
    /// Everything else is [`Self::builder`]'s.
    pub fn legacy_builder() -> KafkaSourceBuilder<T> {
        KafkaSourceBuilder::default().set_start_from_group_offsets()
    }

    /// What is read.
    pub fn subscription(&self) -> &Subscription {
        &self.subscription
    }

    /// Where the partitions found at start begin.
    pub fn starting_offsets(&self) -> &OffsetsInitializer {
        &self.starting_offsets
    }

    /// Where splits stop; `None`: never.
    pub fn stopping_offsets(&self) -> Option<&OffsetsInitializer> {
        self.stopping_offsets.as_ref()
    }

    /// Bounded (batch) or continuous.
    pub fn boundedness(&self) -> Boundedness {
        self.boundedness
    }

    /// The record deserializer.
    pub fn deserializer(&self) -> &Arc<dyn KafkaRecordDeserializer<T>> {
        &self.deserializer
    }

    /// `group.id`, if set.
    pub fn group_id(&self) -> Option<&str> {
        self.consumer.group_id.as_deref()
    }

    /// The isolation level readers and "latest" offsets use (Kafka's default, read_uncommitted,
    /// unless `isolation.level` is set: Flink's source does not change it).
    pub fn isolation_level(&self) -> IsolationLevel {
        self.consumer.isolation_level
    }

    /// The resolved `client.id.prefix`.
    pub fn client_id_prefix(&self) -> &str {
        &self.client_id_prefix
    }

    /// The discovery interval; `None`: discovery off.
    pub fn partition_discovery_interval(&self) -> Option<Duration> {
        self.partition_discovery_interval
    }

    /// `register.consumer.metrics`.
    pub fn register_consumer_metrics(&self) -> bool {
        self.register_consumer_metrics
    }

    /// `commit.offsets.on.checkpoint` after Flink's rule (false without a group id).
    pub fn commit_offsets_on_checkpoint(&self) -> bool {
        self.commit_offsets_on_checkpoint
    }

    /// Every property as given to the builder (Java names), plus the builder's settings
    /// (bootstrap servers, group id) and the resolved source options.
    pub fn properties(&self) -> &BTreeMap<String, String> {
        &self.properties
    }

    /// Properties that are neither consumer, client nor source settings: accepted, logged
    /// with a warning at build, and not used (Flink passes them to Kafka's consumer, which
    /// ignores them the same way).
    pub fn ignored_properties(&self) -> &[String] {
        &self.ignored_properties
    }

    /// The consumer configuration of the reader of subtask `subtask`: the user's properties,
    /// `client.id` = `<client.id.prefix>-<subtask>`, `auto.offset.reset` from the starting
    /// initializer, `enable.auto.commit` false (setting it true is refused at build: offsets
    /// are committed when checkpoints complete).
    pub fn consumer_config(&self, subtask: usize) -> ConsumerConfig {
        let mut c = self.consumer.clone();
        c.client.client_id = format!("{}-{subtask}", self.client_id_prefix);
        c
    }

    /// The client configuration of the enumerator's admin client (`client.id` =
    /// `<client.id.prefix>-enumerator-admin-client`).
    pub fn admin_client_config(&self) -> ClientConfig {
        let mut c = self.consumer.client.clone();
        c.client_id = format!("{}-enumerator-admin-client", self.client_id_prefix);
        c
    }

    /// The settings an enumerator needs.
    pub fn enumerator_config(&self) -> EnumeratorConfig {
        EnumeratorConfig {
            subscription: self.subscription.clone(),
            starting_offsets: self.starting_offsets.clone(),
            stopping_offsets: self.stopping_offsets.clone(),
            group_id: self.consumer.group_id.clone(),
            isolation_level: self.consumer.isolation_level,
            partition_discovery_interval: self.partition_discovery_interval,
        }
    }

    /// Connects an admin client and makes the enumerator of subtask `subtask` of
    /// `parallelism`. Call [`SplitEnumerator::discover`] on it for the initial splits.
    pub async fn create_enumerator(&self, subtask: usize, parallelism: usize) -> Result<SplitEnumerator> {
        let admin = Admin::connect(self.admin_client_config()).await?;
        self.enumerator_with_admin(admin, subtask, parallelism)
    }

    /// [`Self::create_enumerator`] over an existing admin client.
    pub fn enumerator_with_admin(&self, admin: Admin, subtask: usize, parallelism: usize) -> Result<SplitEnumerator> {
        SplitEnumerator::new(admin, self.enumerator_config(), subtask, parallelism)
    }
}

enum SubscriptionSpec {
    Topics(Vec<String>),
    Pattern(String),
    Partitions(BTreeSet<TopicPartition>),
}

impl SubscriptionSpec {
    fn name(&self) -> &'static str {
        match self {
            SubscriptionSpec::Topics(_) => "topics",
            SubscriptionSpec::Pattern(_) => "topic pattern",
            SubscriptionSpec::Partitions(_) => "partitions",
        }
    }
}

/// Builds a [`KafkaSource`] (Flink's `KafkaSourceBuilder`). Setters never fail;
/// [`Self::build`] checks everything and names the first problem.
///
/// Required: bootstrap servers, exactly one of [`Self::topics`] / [`Self::topic_pattern`] /
/// [`Self::partitions`], and a deserializer.
pub struct KafkaSourceBuilder<T> {
    subscriptions: Vec<SubscriptionSpec>,
    starting_offsets: OffsetsInitializer,
    stopping_offsets: Option<OffsetsInitializer>,
    boundedness: Boundedness,
    deserializer: Option<Arc<dyn KafkaRecordDeserializer<T>>>,
    /// Java property names, in the order set; later values win.
    properties: Vec<(String, String)>,
    /// The legacy default: start from the group's offsets, with `auto.offset.reset` (Kafka's
    /// default `latest`) where there is none; resolved at build.
    start_from_group_offsets: bool,
    /// Legacy specific offsets, resolved at build with `auto.offset.reset` for the rest.
    start_from_specific_offsets: Option<BTreeMap<TopicPartition, i64>>,
}

impl<T> Default for KafkaSourceBuilder<T> {
    fn default() -> Self {
        KafkaSourceBuilder {
            subscriptions: Vec::new(),
            starting_offsets: OffsetsInitializer::earliest(),
            stopping_offsets: None,
            boundedness: Boundedness::ContinuousUnbounded,
            deserializer: None,
            properties: Vec::new(),
            start_from_group_offsets: false,
            start_from_specific_offsets: None,
        }
    }
}

impl<T> fmt::Debug for KafkaSourceBuilder<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSourceBuilder")
            .field(
                "subscriptions",
                &self
                    .subscriptions
                    .iter()
                    .map(SubscriptionSpec::name)
                    .collect::<Vec<_>>(),
            )
            .field("starting_offsets", &self.starting_offsets)
            .field("stopping_offsets", &self.stopping_offsets)
            .field("boundedness", &self.boundedness)
            .field("deserializer", &self.deserializer.is_some())
            .field(
                "properties",
                &self.properties.iter().map(|(k, _)| k).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn parse_bool(key: &str, value: &str) -> Result<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(ConnectorError::Config(format!(
            "{key}={value:?}: expected true or false"
        ))),
    }
}

fn random_suffix() -> i64 {
    // RandomState is seeded randomly per process; good enough for a client id, as Java's
    // `new Random().nextLong()` is.
    let bits = std::collections::hash_map::RandomState::new().build_hasher().finish();
    i64::from_ne_bytes(bits.to_ne_bytes())
}

impl<T> KafkaSourceBuilder<T> {
    /// `bootstrap.servers` (required).
    pub fn bootstrap_servers(self, servers: impl Into<String>) -> Self {
        self.property("bootstrap.servers", servers)
    }

    /// `group.id`: committed offsets are read from and committed to this group.
    pub fn group_id(self, group_id: impl Into<String>) -> Self {
        self.property("group.id", group_id)
    }

    /// Read every partition of these topics (Flink's `setTopics`); they must exist at start.
    pub fn topics<I, S>(mut self, topics: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.subscriptions
            .push(SubscriptionSpec::Topics(topics.into_iter().map(Into::into).collect()));
        self
    }

    /// Read every topic whose whole name matches `pattern` (Flink's `setTopicPattern`);
    /// checked at [`Self::build`].
    pub fn topic_pattern(mut self, pattern: impl Into<String>) -> Self {
        self.subscriptions.push(SubscriptionSpec::Pattern(pattern.into()));
        self
    }

    /// Read exactly these partitions (Flink's `setPartitions`); they must exist at start.
    pub fn partitions(mut self, partitions: impl IntoIterator<Item = TopicPartition>) -> Self {
        self.subscriptions
            .push(SubscriptionSpec::Partitions(partitions.into_iter().collect()));
        self
    }

    /// Where to start (default [`OffsetsInitializer::earliest`]). Also decides the consumer's
    /// `auto.offset.reset` (see [`OffsetsInitializer::auto_offset_reset_strategy`]).
    pub fn starting_offsets(mut self, initializer: OffsetsInitializer) -> Self {
        self.starting_offsets = initializer;
        self.start_from_group_offsets = false;
        self.start_from_specific_offsets = None;
        self
    }

    /// The legacy `FlinkKafkaConsumer.setStartFromGroupOffsets()`: each partition starts at
    /// the group's committed offset, or where `auto.offset.reset` says (Kafka's default,
    /// `latest`) when it has none. Needs `group.id`.
    pub fn set_start_from_group_offsets(mut self) -> Self {
        self.starting_offsets = OffsetsInitializer::earliest();
        self.start_from_group_offsets = true;
        self.start_from_specific_offsets = None;
        self
    }

    /// The legacy `setStartFromEarliest()`: [`OffsetsInitializer::earliest`], committed
    /// offsets ignored.
    pub fn set_start_from_earliest(self) -> Self {
        self.starting_offsets(OffsetsInitializer::earliest())
    }

    /// The legacy `setStartFromLatest()`: [`OffsetsInitializer::latest`].
    pub fn set_start_from_latest(self) -> Self {
        self.starting_offsets(OffsetsInitializer::latest())
    }

    /// The legacy `setStartFromTimestamp(ms)`: [`OffsetsInitializer::timestamp`].
    pub fn set_start_from_timestamp(self, timestamp_ms: i64) -> Self {
        self.starting_offsets(OffsetsInitializer::timestamp(timestamp_ms))
    }

    /// The legacy `setStartFromSpecificOffsets(map)`: these offsets (the next record to read);
    /// a partition not in the map starts as [`Self::set_start_from_group_offsets`] says.
    pub fn set_start_from_specific_offsets(mut self, offsets: impl IntoIterator<Item = (TopicPartition, i64)>) -> Self {
        self.starting_offsets = OffsetsInitializer::earliest();
        self.start_from_group_offsets = false;
        self.start_from_specific_offsets = Some(offsets.into_iter().collect());
        self
    }

    /// The legacy `setCommitOffsetsOnCheckpoints(bool)`: [`Self::commit_offsets_on_checkpoint`].
    pub fn set_commit_offsets_on_checkpoints(self, commit: bool) -> Self {
        self.commit_offsets_on_checkpoint(commit)
    }

    /// Batch mode: stop each split at these offsets and end when all are done (Flink's
    /// `setBounded`). Turns partition discovery off.
    pub fn bounded(mut self, stopping: OffsetsInitializer) -> Self {
        self.boundedness = Boundedness::Bounded;
        self.stopping_offsets = Some(stopping);
        self
    }

    /// Streaming mode that still stops each split at these offsets (Flink's `setUnbounded`).
    ///
    /// The seed: "The source will exit when all partitions reach their specified stopping
    /// offset." A [`Pipeline`](crate::Pipeline) does (final checkpoint, clean close,
    /// `PipelineEnd::EndOfInput`); with partition discovery on (which, unlike `bounded`, this
    /// keeps), once a discovery after that finds no new partition. (Flink's own enumerator
    /// signals the end to bounded sources only, so there it would keep running.) A
    /// [`SourceReader`](super::SourceReader) driven by hand ends the same way when its caller
    /// calls [`SourceReader::notify_no_more_splits`](super::SourceReader::notify_no_more_splits)
    /// once [`SplitEnumerator::no_more_splits`]: then
    /// [`SourceReader::is_finished`](super::SourceReader::is_finished) turns true when every
    /// split reached its stop.
    pub fn unbounded(mut self, stopping: OffsetsInitializer) -> Self {
        self.boundedness = Boundedness::ContinuousUnbounded;
        self.stopping_offsets = Some(stopping);
        self
    }

    /// The record deserializer (Flink's `setDeserializer`).
    pub fn deserializer(mut self, deserializer: impl KafkaRecordDeserializer<T> + 'static) -> Self {
        self.deserializer = Some(Arc::new(deserializer));
        self
    }

    /// A value-only deserializer (Flink's `setValueOnlyDeserializer`); tombstones are skipped.
    pub fn value_only_deserializer<V>(self, deserializer: V) -> Self
    where
        V: ValueDeserializer<T> + 'static,
        T: 'static,
    {
        self.deserializer(value_only(deserializer))
    }

    /// One property by its Java name: a consumer or client setting (checked by
    /// `ConsumerConfig::set` at [`Self::build`]) or a source option ([`CLIENT_ID_PREFIX`],
    /// [`PARTITION_DISCOVERY_INTERVAL_MS`], [`REGISTER_CONSUMER_METRICS`],
    /// [`COMMIT_OFFSETS_ON_CHECKPOINT`]). Later values win.
    pub fn property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((key.into(), value.into()));
        self
    }

    /// Several properties (Flink's `setProperties`), e.g. from a `.properties` file.
    pub fn properties<I, K, V>(mut self, properties: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        self.properties
            .extend(properties.into_iter().map(|(k, v)| (k.into(), v.into())));
        self
    }

    /// `client.id.prefix`.
    pub fn client_id_prefix(self, prefix: impl Into<String>) -> Self {
        self.property(CLIENT_ID_PREFIX, prefix)
    }

    /// `partition.discovery.interval.ms`: discover new partitions every `interval`
    /// (`Duration::ZERO`: after every poll, as the property `0`). An interval under 1 ms that
    /// is not zero counts as 1 ms. [`Self::disable_partition_discovery`] turns it off.
    pub fn partition_discovery_interval(self, interval: Duration) -> Self {
        let ms = if interval.is_zero() {
            0
        } else {
            i64::try_from(interval.as_millis()).unwrap_or(i64::MAX).max(1)
        };
        self.property(PARTITION_DISCOVERY_INTERVAL_MS, ms.to_string())
    }

    /// No partition discovery (the property `-1`; the default).
    pub fn disable_partition_discovery(self) -> Self {
        self.property(PARTITION_DISCOVERY_INTERVAL_MS, "-1")
    }

    /// `commit.offsets.on.checkpoint`.
    pub fn commit_offsets_on_checkpoint(self, commit: bool) -> Self {
        self.property(COMMIT_OFFSETS_ON_CHECKPOINT, commit.to_string())
    }

    /// `register.consumer.metrics`.
    pub fn register_consumer_metrics(self, register: bool) -> Self {
        self.property(REGISTER_CONSUMER_METRICS, register.to_string())
    }

    /// `isolation.level`: read_committed reads committed transactional records only and makes
    /// "latest" the last stable offset. Default read_uncommitted (Kafka's; the seed
    /// documentation: "`read_uncommitted` - ... is the default value").
    pub fn isolation_level(self, level: IsolationLevel) -> Self {
        let v = match level {
            IsolationLevel::ReadCommitted => "read_committed",
            IsolationLevel::ReadUncommitted => "read_uncommitted",
        };
        self.property("isolation.level", v)
    }

    /// Validates and resolves everything (Flink's `sanityCheck` and
    /// `parseAndSetRequiredProperties`). Errors are [`ConnectorError::Config`] naming the
    /// setting.
    pub fn build(self) -> Result<KafkaSource<T>> {
        let subscription = match self.subscriptions.as_slice() {
            [] => {
                return Err(ConnectorError::Config(
                    "no subscription: set one of topics, topic_pattern or partitions".into(),
                ))
            }
            [_] => match self.subscriptions.into_iter().next() {
                Some(SubscriptionSpec::Topics(topics)) => {
                    if topics.is_empty() {
                        return Err(ConnectorError::Config("topics: the list is empty".into()));
                    }
                    if let Some(t) = topics.iter().find(|t| t.is_empty()) {
                        return Err(ConnectorError::Config(format!("topics: invalid topic name {t:?}")));
                    }
                    Subscription::Topics(topics)
                }
                Some(SubscriptionSpec::Pattern(p)) => Subscription::Pattern(TopicPattern::new(&p)?),
                Some(SubscriptionSpec::Partitions(parts)) => {
                    if parts.is_empty() {
                        return Err(ConnectorError::Config("partitions: the set is empty".into()));
                    }
                    if let Some(tp) = parts.iter().find(|tp| tp.partition < 0 || tp.topic.is_empty()) {
                        return Err(ConnectorError::Config(format!("partitions: invalid partition {tp}")));
                    }
                    Subscription::Partitions(parts)
                }
                None => return Err(ConnectorError::Config("no subscription".into())),
            },
            [first, second, ..] => {
                return Err(ConnectorError::Config(format!(
                    "cannot subscribe by {} because {} are already set: use exactly one of topics, \
                     topic_pattern or partitions",
                    second.name(),
                    first.name()
                )))
            }
        };
        let deserializer = self
            .deserializer
            .ok_or_else(|| ConnectorError::Config("a deserializer is required".into()))?;

        // Later values win, as with java.util.Properties.
        let mut props: BTreeMap<String, String> = BTreeMap::new();
        for (k, v) in self.properties {
            props.insert(k.trim().to_owned(), v);
        }
        if props.get("bootstrap.servers").is_none_or(|v| v.trim().is_empty()) {
            return Err(ConnectorError::Config(
                "bootstrap.servers is required (KafkaSourceBuilder::bootstrap_servers)".into(),
            ));
        }
        let has_group = props.get("group.id").is_some_and(|g| !g.is_empty());

        // Source options, not consumer settings.
        let client_id_prefix = match props.get(CLIENT_ID_PREFIX) {
            Some(p) => p.clone(),
            None => match props.get("group.id").filter(|g| !g.is_empty()) {
                Some(g) => g.clone(),
                None => format!("KafkaSource-{}", random_suffix()),
            },
        };
        // Flink's legacy keys mean what they meant.
        if let Some(v) = props.remove(LEGACY_PARTITION_DISCOVERY) {
            let ms = v.trim().parse::<i64>().map_err(|_| {
                ConnectorError::Config(format!(
                    "{LEGACY_PARTITION_DISCOVERY}={v:?}: expected a whole number of milliseconds"
                ))
            })?;
            let ms = if ms < 0 { -1 } else { ms };
            match props.get(PARTITION_DISCOVERY_INTERVAL_MS) {
                Some(new) if new.trim().parse::<i64>().ok().map(|n| n.max(-1)) != Some(ms) => {
                    return Err(ConnectorError::Config(format!(
                        "{LEGACY_PARTITION_DISCOVERY}={v} and {PARTITION_DISCOVERY_INTERVAL_MS}={new} disagree: set one"
                    )))
                }
                _ => {
                    props.insert(PARTITION_DISCOVERY_INTERVAL_MS.into(), ms.to_string());
                }
            }
        }
        if let Some(v) = props.remove(LEGACY_AUTO_OFFSET_RESET) {
            match props.get("auto.offset.reset") {
                Some(other) if other.trim() != v.trim() => {
                    return Err(ConnectorError::Config(format!(
                        "{LEGACY_AUTO_OFFSET_RESET}={v} and auto.offset.reset={other} disagree: set one"
                    )))
                }
                _ => {
                    props.insert("auto.offset.reset".into(), v);
                }
            }
        }
        // The legacy start positions take `auto.offset.reset` for partitions without an offset.
        let legacy_reset = || -> Result<OffsetReset> {
            match props.get("auto.offset.reset").map(|v| v.trim().to_ascii_lowercase()) {
                None => Ok(OffsetReset::Latest),
                Some(v) if v == "latest" => Ok(OffsetReset::Latest),
                Some(v) if v == "earliest" => Ok(OffsetReset::Earliest),
                Some(v) if v == "none" => Ok(OffsetReset::None),
                Some(v) => Err(ConnectorError::Config(format!(
                    "auto.offset.reset={v:?}: expected earliest, latest or none"
                ))),
            }
        };
        let mut starting_offsets = self.starting_offsets;
        if self.start_from_group_offsets {
            starting_offsets = OffsetsInitializer::committed_offsets(legacy_reset()?);
        } else if let Some(offsets) = self.start_from_specific_offsets {
            starting_offsets = OffsetsInitializer::offsets_with_reset(offsets, legacy_reset()?);
        }
        let mut discovery_ms = match props.get(PARTITION_DISCOVERY_INTERVAL_MS) {
            Some(v) => v.trim().parse::<i64>().map_err(|_| {
                ConnectorError::Config(format!(
                    "{PARTITION_DISCOVERY_INTERVAL_MS}={v:?}: expected a whole number of milliseconds"
                ))
            })?,
            None => -1,
        };
        if self.boundedness == Boundedness::Bounded && discovery_ms >= 0 {
            tracing::warn!(
                "{PARTITION_DISCOVERY_INTERVAL_MS}={discovery_ms} is overridden to -1 because the source is bounded"
            );
            discovery_ms = -1;
        }
        if discovery_ms == 0 {
            tracing::warn!(
                "{PARTITION_DISCOVERY_INTERVAL_MS}=0: partitions are discovered after every poll of the source (one \
                 metadata request each); a positive interval in ms discovers less often, -1 turns discovery off"
            );
        }
        let register_consumer_metrics = match props.get(REGISTER_CONSUMER_METRICS) {
            Some(v) => parse_bool(REGISTER_CONSUMER_METRICS, v)?,
            None => true,
        };
        let commit_explicit = match props.get(COMMIT_OFFSETS_ON_CHECKPOINT) {
            Some(v) => Some(parse_bool(COMMIT_OFFSETS_ON_CHECKPOINT, v)?),
            None => None,
        };
        let auto_commit_explicit = match props.get("enable.auto.commit") {
            Some(v) => Some(parse_bool("enable.auto.commit", v)?),
            None => None,
        };
        if auto_commit_explicit == Some(true) {
            // The seed: without checkpoints "Kafka source relies on Kafka consumer's internal
            // automatic periodic offset committing". Strom's reader consumes its splits in
            // assign mode, where strom-client never auto-commits, so the setting would be
            // accepted and ignored: refused instead, naming what commits offsets here.
            return Err(ConnectorError::Config(
                "enable.auto.commit=true is not supported by the Kafka source: its reader commits the offsets of \
                 each completed checkpoint (commit.offsets.on.checkpoint, on by default with a group.id), and \
                 its consumer never auto-commits. A Pipeline always checkpoints; a SourceReader used on its own \
                 commits when you call snapshot_state(id) and then notify_checkpoint_complete(id), e.g. every \
                 auto.commit.interval.ms"
                    .into(),
            ));
        }
        if !has_group && commit_explicit == Some(true) {
            return Err(ConnectorError::Config(
                "group.id is required when offset commit is enabled (commit.offsets.on.checkpoint)".into(),
            ));
        }
        let commit_offsets_on_checkpoint = has_group && commit_explicit.unwrap_or(true);

        // Consumer settings, each checked by the client's own parser.
        let mut consumer = ConsumerConfig::default();
        let mut ignored: Vec<String> = Vec::new();
        for (k, v) in &props {
            if [
                CLIENT_ID_PREFIX,
                PARTITION_DISCOVERY_INTERVAL_MS,
                REGISTER_CONSUMER_METRICS,
                COMMIT_OFFSETS_ON_CHECKPOINT,
            ]
            .contains(&k.as_str())
            {
                continue;
            }
            match consumer.set(k, v) {
                Ok(()) => {}
                Err(e) if e.unknown_property_key().is_some() => {
                    // As Flink (and Kafka's consumer) do: accepted, not used, and said so.
                    tracing::warn!(
                        property = %k,
                        "unknown property {k:?} ignored: not a consumer, client or Kafka source setting"
                    );
                    ignored.push(k.clone());
                }
                Err(e) => return Err(ConnectorError::Config(e.to_string())),
            }
        }
        // Flink's overrides: no auto commit (asking for it was refused above), reset from the
        // starting initializer (whatever the user set), client ids derived from the prefix.
        consumer.enable_auto_commit = false;
        let reset = starting_offsets.auto_offset_reset_strategy();
        if let Some(user) = props.get("auto.offset.reset") {
            if consumer.auto_offset_reset != reset {
                tracing::warn!(
                    "auto.offset.reset={user} is overridden to {} by the starting offsets initializer",
                    reset_name(reset)
                );
            }
        }
        consumer.auto_offset_reset = reset;
        consumer.validate().map_err(|e| ConnectorError::Config(e.to_string()))?;

        // Offsets initializers.
        starting_offsets.validate()?;
        if let Some(s) = &self.stopping_offsets {
            s.validate()?;
        }
        for (what, init) in [
            ("starting", Some(&starting_offsets)),
            ("stopping", self.stopping_offsets.as_ref()),
        ] {
            if init.is_some_and(OffsetsInitializer::requires_group_id) && !has_group {
                return Err(ConnectorError::Config(format!(
                    "group.id is required because the {what} offsets use the group's committed offsets"
                )));
            }
        }

        props.insert(CLIENT_ID_PREFIX.into(), client_id_prefix.clone());
        props.insert(PARTITION_DISCOVERY_INTERVAL_MS.into(), discovery_ms.to_string());
        props.insert(REGISTER_CONSUMER_METRICS.into(), register_consumer_metrics.to_string());
        props.insert(
            COMMIT_OFFSETS_ON_CHECKPOINT.into(),
            commit_offsets_on_checkpoint.to_string(),
        );
        props.insert("enable.auto.commit".into(), consumer.enable_auto_commit.to_string());
        props.insert("auto.offset.reset".into(), reset_name(reset).into());

        Ok(KafkaSource {
            subscription,
            starting_offsets,
            stopping_offsets: self.stopping_offsets,
            boundedness: self.boundedness,
            deserializer,
            properties: props,
            consumer,
            client_id_prefix,
            partition_discovery_interval: u64::try_from(discovery_ms).ok().map(Duration::from_millis),
            register_consumer_metrics,
            commit_offsets_on_checkpoint,
            ignored_properties: ignored,
        })
    }
}

fn reset_name(reset: OffsetReset) -> &'static str {
    match reset {
        OffsetReset::Earliest => "earliest",
        OffsetReset::Latest => "latest",
        OffsetReset::None => "none",
    }
}

#[cfg(test)]
mod tests {
    use super::super::deserializer;
    use super::*;

    fn base() -> KafkaSourceBuilder<String> {
        KafkaSource::builder()
            .bootstrap_servers("127.0.0.1:9092")
            .topics(["orders"])
            .value_only_deserializer(deserializer::StringDeserializer)
    }

    fn err(b: KafkaSourceBuilder<String>) -> String {
        b.build().unwrap_err().to_string()
    }

    #[test]
    fn defaults_follow_flink() {
        let s = base().build().unwrap();
        assert_eq!(s.boundedness(), Boundedness::ContinuousUnbounded);
        assert_eq!(s.starting_offsets(), &OffsetsInitializer::earliest());
        assert!(s.stopping_offsets().is_none());
        assert_eq!(
            s.partition_discovery_interval(),
            None,
            "seed: discovery disabled by default"
        );
        assert!(s.register_consumer_metrics());
        assert!(!s.commit_offsets_on_checkpoint(), "no group id: no commits");
        assert_eq!(s.isolation_level(), IsolationLevel::ReadUncommitted);
        assert!(s.client_id_prefix().starts_with("KafkaSource-"));
        let c = s.consumer_config(3);
        assert_eq!(c.client.client_id, format!("{}-3", s.client_id_prefix()));
        assert_eq!(c.client.bootstrap_servers, ["127.0.0.1:9092"]);
        assert_eq!(c.auto_offset_reset, OffsetReset::Earliest);
        assert!(!c.enable_auto_commit);
        assert_eq!(c.group_id, None);
        assert!(matches!(s.subscription(), Subscription::Topics(t) if t == &["orders"]));
        assert_eq!(
            s.admin_client_config().client_id,
            format!("{}-enumerator-admin-client", s.client_id_prefix())
        );
        assert_eq!(s.properties()["auto.offset.reset"], "earliest");
    }

    #[test]
    fn group_prefix_commit_and_overrides() {
        let s = base()
            .group_id("g1")
            .starting_offsets(OffsetsInitializer::committed_offsets(OffsetReset::Latest))
            .property("auto.offset.reset", "earliest")
            .property("isolation.level", "read_committed")
            .property("max.poll.records", "42")
            .partition_discovery_interval(Duration::from_secs(10))
            .register_consumer_metrics(false)
            .build()
            .unwrap();
        assert_eq!(s.group_id(), Some("g1"));
        assert_eq!(s.client_id_prefix(), "g1", "the group id is the default prefix");
        assert!(s.commit_offsets_on_checkpoint());
        assert!(!s.register_consumer_metrics());
        assert_eq!(s.partition_discovery_interval(), Some(Duration::from_secs(10)));
        let c = s.consumer_config(0);
        assert_eq!(c.client.client_id, "g1-0");
        assert_eq!(
            c.auto_offset_reset,
            OffsetReset::Latest,
            "overridden by the initializer"
        );
        assert_eq!(c.isolation_level, IsolationLevel::ReadCommitted);
        assert_eq!(c.max_poll_records, 42);
        assert_eq!(c.group_id.as_deref(), Some("g1"));
        let e = s.enumerator_config();
        assert_eq!(e.group_id.as_deref(), Some("g1"));
        assert_eq!(e.isolation_level, IsolationLevel::ReadCommitted);

        let s = base()
            .group_id("g1")
            .client_id_prefix("mine")
            .commit_offsets_on_checkpoint(false)
            .properties([("enable.auto.commit", "false")])
            .isolation_level(IsolationLevel::ReadCommitted)
            .build()
            .unwrap();
        assert_eq!(s.consumer_config(1).client.client_id, "mine-1");
        assert!(!s.commit_offsets_on_checkpoint());
        assert!(!s.consumer_config(1).enable_auto_commit);
        assert_eq!(s.isolation_level(), IsolationLevel::ReadCommitted);
    }

    #[test]
    fn bounded_forces_discovery_off() {
        let s = base()
            .property(PARTITION_DISCOVERY_INTERVAL_MS, "1000")
            .bounded(OffsetsInitializer::latest())
            .build()
            .unwrap();
        assert_eq!(s.boundedness(), Boundedness::Bounded);
        assert_eq!(s.partition_discovery_interval(), None);
        assert_eq!(s.properties()[PARTITION_DISCOVERY_INTERVAL_MS], "-1");
        assert_eq!(s.stopping_offsets(), Some(&OffsetsInitializer::latest()));

        let s = base()
            .property(PARTITION_DISCOVERY_INTERVAL_MS, "1000")
            .unbounded(OffsetsInitializer::latest())
            .build()
            .unwrap();
        assert_eq!(s.boundedness(), Boundedness::ContinuousUnbounded);
        assert_eq!(s.partition_discovery_interval(), Some(Duration::from_secs(1)));
        let s = base().property(PARTITION_DISCOVERY_INTERVAL_MS, "-1").build().unwrap();
        assert_eq!(s.partition_discovery_interval(), None, "negative disables");
        let s = base().property(PARTITION_DISCOVERY_INTERVAL_MS, "1").build().unwrap();
        assert_eq!(s.partition_discovery_interval(), Some(Duration::from_millis(1)));
        // 0: the seed's "set a non-negative value" enables discovery, without pause.
        for key in [PARTITION_DISCOVERY_INTERVAL_MS, LEGACY_PARTITION_DISCOVERY] {
            let s = base().property(key, "0").build().unwrap();
            assert_eq!(
                s.partition_discovery_interval(),
                Some(Duration::ZERO),
                "{key}=0 enables"
            );
            assert_eq!(s.properties()[PARTITION_DISCOVERY_INTERVAL_MS], "0");
        }
        let s = base().partition_discovery_interval(Duration::ZERO).build().unwrap();
        assert_eq!(s.partition_discovery_interval(), Some(Duration::ZERO));
        let s = base()
            .partition_discovery_interval(Duration::from_secs(1))
            .disable_partition_discovery()
            .build()
            .unwrap();
        assert_eq!(s.partition_discovery_interval(), None);
        assert_eq!(s.properties()[PARTITION_DISCOVERY_INTERVAL_MS], "-1");
        let s = base()
            .partition_discovery_interval(Duration::from_micros(10))
            .build()
            .unwrap();
        assert_eq!(s.partition_discovery_interval(), Some(Duration::from_millis(1)));
    }

    #[test]
    fn build_names_each_problem() {
        let no_sub = KafkaSource::<String>::builder()
            .bootstrap_servers("h:1")
            .deserializer(deserializer::string());
        assert!(err(no_sub).contains("no subscription"));
        let e = err(base().topic_pattern("o.*"));
        assert!(
            e.contains("cannot subscribe by topic pattern because topics are already set"),
            "{e}"
        );
        let e = err(base().partitions([TopicPartition::new("t", 0)]));
        assert!(e.contains("by partitions because topics"), "{e}");
        let e = err(KafkaSource::<String>::builder()
            .bootstrap_servers("h:1")
            .topics(["t"])
            .topic_pattern("x"));
        assert!(e.contains("topic pattern"), "{e}");
        let e = err(KafkaSource::builder().bootstrap_servers("h:1").topics(["t"]));
        assert!(e.contains("deserializer is required"), "{e}");
        let e = err(KafkaSource::builder()
            .topics(["t"])
            .deserializer(deserializer::string()));
        assert!(e.contains("bootstrap.servers is required"), "{e}");
        let e = err(KafkaSource::builder()
            .bootstrap_servers("h:1")
            .topics(Vec::<String>::new())
            .deserializer(deserializer::string()));
        assert!(e.contains("topics: the list is empty"), "{e}");
        let e = err(KafkaSource::builder()
            .bootstrap_servers("h:1")
            .partitions([])
            .deserializer(deserializer::string()));
        assert!(e.contains("partitions: the set is empty"), "{e}");
        let e = err(KafkaSource::builder()
            .bootstrap_servers("h:1")
            .partitions([TopicPartition::new("t", -1)])
            .deserializer(deserializer::string()));
        assert!(e.contains("invalid partition t--1"), "{e}");
        let e = err(KafkaSource::builder()
            .bootstrap_servers("h:1")
            .topic_pattern("topic-(")
            .deserializer(deserializer::string()));
        assert!(e.contains("topic pattern \"topic-(\""), "{e}");

        // Unknown keys are accepted with a warning and listed, as Flink does.
        let src = base().property("no.such.key", "1").build().unwrap();
        assert_eq!(src.ignored_properties(), ["no.such.key"]);
        // Flink's legacy keys mean what they meant.
        let src = base().property(LEGACY_PARTITION_DISCOVERY, "30000").build().unwrap();
        assert_eq!(src.partition_discovery_interval(), Some(Duration::from_secs(30)));
        assert!(src.ignored_properties().is_empty());
        let src = base().property(LEGACY_PARTITION_DISCOVERY, "-1").build().unwrap();
        assert_eq!(src.partition_discovery_interval(), None);
        let e = err(base()
            .property(LEGACY_PARTITION_DISCOVERY, "1000")
            .property(PARTITION_DISCOVERY_INTERVAL_MS, "2000"));
        assert!(e.contains("disagree"), "{e}");
        let e = err(base().property(LEGACY_PARTITION_DISCOVERY, "often"));
        assert!(e.contains(LEGACY_PARTITION_DISCOVERY), "{e}");
        // auto.offset.reset.strategy is overridden by the starting offsets, as auto.offset.reset is.
        let src = base().property(LEGACY_AUTO_OFFSET_RESET, "latest").build().unwrap();
        assert_eq!(src.consumer_config(0).auto_offset_reset, OffsetReset::Earliest);
        // The legacy start positions.
        let g = || base().group_id("g");
        let src = g()
            .property("auto.offset.reset", "earliest")
            .set_start_from_group_offsets()
            .build()
            .unwrap();
        assert_eq!(
            src.starting_offsets(),
            &OffsetsInitializer::committed_offsets(OffsetReset::Earliest)
        );
        let src = KafkaSource::legacy_builder()
            .bootstrap_servers("h:1")
            .topics(["t"])
            .group_id("g")
            .deserializer(deserializer::string())
            .build()
            .unwrap();
        assert_eq!(
            src.starting_offsets(),
            &OffsetsInitializer::committed_offsets(OffsetReset::Latest)
        );
        let e = err(base().set_start_from_group_offsets());
        assert!(e.contains("group.id is required"), "{e}");
        let src = g()
            .set_start_from_specific_offsets([(TopicPartition::new("t", 0), 7)])
            .build()
            .unwrap();
        assert_eq!(
            src.starting_offsets(),
            &OffsetsInitializer::offsets_with_reset([(TopicPartition::new("t", 0), 7)], OffsetReset::Latest)
        );
        let src = g()
            .set_start_from_group_offsets()
            .set_start_from_earliest()
            .build()
            .unwrap();
        assert_eq!(src.starting_offsets(), &OffsetsInitializer::earliest());
        let src = g().set_start_from_latest().build().unwrap();
        assert_eq!(src.starting_offsets(), &OffsetsInitializer::latest());
        let src = g().set_start_from_timestamp(5).build().unwrap();
        assert_eq!(src.starting_offsets(), &OffsetsInitializer::timestamp(5));
        let src = g().set_commit_offsets_on_checkpoints(false).build().unwrap();
        assert!(!src.commit_offsets_on_checkpoint());
        let e = err(base().property("isolation.level", "serializable"));
        assert!(e.contains("isolation.level"), "{e}");
        let e = err(base().property(PARTITION_DISCOVERY_INTERVAL_MS, "soon"));
        assert!(e.contains("partition.discovery.interval.ms=\"soon\""), "{e}");
        let e = err(base().property(REGISTER_CONSUMER_METRICS, "yes"));
        assert!(e.contains("register.consumer.metrics=\"yes\""), "{e}");
        let e = err(base().commit_offsets_on_checkpoint(true));
        assert!(e.contains("group.id is required when offset commit is enabled"), "{e}");
        // enable.auto.commit=true would be ignored (the reader's consumer is in assign mode and
        // commits per checkpoint): refused, with or without a group, saying what commits here.
        for b in [base(), base().group_id("g")] {
            let e = err(b.property("enable.auto.commit", "true"));
            assert!(e.contains("enable.auto.commit=true is not supported"), "{e}");
            assert!(e.contains("notify_checkpoint_complete"), "{e}");
        }
        let e = err(base().group_id("g").property("enable.auto.commit", "yes"));
        assert!(e.contains("enable.auto.commit=\"yes\""), "{e}");
        let e = err(base().starting_offsets(OffsetsInitializer::committed_offsets(OffsetReset::Earliest)));
        assert!(e.contains("group.id is required because the starting offsets"), "{e}");
        let e = err(base().bounded(OffsetsInitializer::committed_offsets(OffsetReset::None)));
        assert!(e.contains("because the stopping offsets"), "{e}");
        let e = err(base().starting_offsets(OffsetsInitializer::timestamp(-5)));
        assert!(e.contains("must not be negative"), "{e}");
        let e = err(base().property("heartbeat.interval.ms", "60000"));
        assert!(e.contains("session.timeout.ms"), "{e}");
        // Later values win, as in java.util.Properties.
        let s = base()
            .property("isolation.level", "serializable")
            .property("isolation.level", "read_committed")
            .build()
            .unwrap();
        assert_eq!(s.isolation_level(), IsolationLevel::ReadCommitted);
    }
}
