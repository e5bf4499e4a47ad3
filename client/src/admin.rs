//! Cluster administration: topics, partitions, configs, offsets, consumer groups, cluster.
//!
//! Each call finds the right broker (controller-routed APIs go to any broker in KRaft,
//! which forwards them; group APIs go to the group coordinator; ListOffsets to each
//! partition's leader), retries retriable errors until `default.api.timeout.ms`, and turns
//! per-resource error codes into errors naming the resource.

use std::collections::BTreeMap;

use strom_protocol::message_traits::StrBytes;
use strom_protocol::messages::consumer_group_describe_response;
use strom_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use strom_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use strom_protocol::messages::delete_records_request::{DeleteRecordsPartition, DeleteRecordsTopic};
use strom_protocol::messages::delete_topics_request::DeleteTopicState;
use strom_protocol::messages::describe_configs_request::DescribeConfigsResource;
use strom_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use strom_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use strom_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use strom_protocol::messages::offset_delete_request::{OffsetDeleteRequestPartition, OffsetDeleteRequestTopic};
use strom_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use strom_protocol::messages::{
    ApiKey, BrokerId, ConsumerGroupDescribeRequest, CreatePartitionsRequest, CreateTopicsRequest, DeleteGroupsRequest,
    DeleteRecordsRequest, DeleteTopicsRequest, DescribeClusterRequest, DescribeConfigsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, IncrementalAlterConfigsRequest, ListGroupsRequest, ListOffsetsRequest,
    OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, TopicName,
};
use strom_protocol::ErrorCode;

use crate::client::{BrokerInfo, Client, PartitionInfo};
use crate::config::ClientConfig;
use crate::connection::Connection;
use crate::error::{check, Error, Result};

pub(crate) fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_owned())
}

pub(crate) fn topic_name(v: &str) -> TopicName {
    TopicName(s(v))
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partition count; `None` = the broker's `num.partitions`.
    pub partitions: Option<i32>,
    /// Replication factor; `None` = the broker's `default.replication.factor`.
    pub replication_factor: Option<i16>,
    /// Topic configs (`cleanup.policy`, `retention.ms`, ...).
    pub configs: Vec<(String, String)>,
    /// Explicit replica placement: partition -> broker ids, the first the preferred leader
    /// (Java's `NewTopic(name, replicasAssignments)`). When given, `partitions` and
    /// `replication_factor` must be `None`: the assignment defines both. The broker checks
    /// it (partitions 0..n, the same replica count everywhere, live brokers, no repeats) and
    /// answers INVALID_REPLICA_ASSIGNMENT otherwise.
    pub replica_assignment: BTreeMap<i32, Vec<i32>>,
}

impl NewTopic {
    /// A topic with `partitions` partitions and the broker's default replication factor.
    pub fn new(name: impl Into<String>, partitions: i32) -> Self {
        NewTopic {
            name: name.into(),
            partitions: Some(partitions),
            replication_factor: None,
            configs: Vec::new(),
            replica_assignment: BTreeMap::new(),
        }
    }

    /// A topic with the broker's `num.partitions` and `default.replication.factor`.
    pub fn with_broker_defaults(name: impl Into<String>) -> Self {
        NewTopic {
            partitions: None,
            ..NewTopic::new(name, 0)
        }
    }

    /// A topic whose partitions are placed explicitly: partition -> replicas (broker ids,
    /// the first the preferred leader).
    pub fn with_replica_assignment(name: impl Into<String>, assignment: BTreeMap<i32, Vec<i32>>) -> Self {
        NewTopic {
            partitions: None,
            replica_assignment: assignment,
            ..NewTopic::new(name, 0)
        }
    }

    /// Sets the replication factor.
    pub fn replication_factor(mut self, rf: i16) -> Self {
        self.replication_factor = Some(rf);
        self
    }

    /// Adds a topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// Options of [`Admin::create_topics_with_options`] (Java's `CreateTopicsOptions`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreateTopicsOptions {
    /// Have the controller check the request and create nothing.
    pub validate_only: bool,
}

impl CreateTopicsOptions {
    /// Only validate (a dry run).
    pub fn validate_only(mut self, validate_only: bool) -> Self {
        self.validate_only = validate_only;
        self
    }
}

/// A topic as the broker created it, or would have (`validate_only`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CreatedTopic {
    /// Name.
    pub name: String,
    /// The new topic's id; `None` for a validation, or from a broker older than 2.8.
    pub topic_id: Option<uuid::Uuid>,
    /// Partition count (-1 when the broker did not say: it answers with it from v5 on).
    pub partitions: i32,
    /// Replication factor (-1 when the broker did not say).
    pub replication_factor: i16,
    /// The topic's effective configs with their sources (empty when the broker did not
    /// say, or the caller may not describe its configs).
    pub configs: Vec<ConfigEntry>,
}

/// A topic as `describe_topics` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicDescription {
    /// Name.
    pub name: String,
    /// Topic id.
    pub topic_id: uuid::Uuid,
    /// Internal topic.
    pub is_internal: bool,
    /// Partitions by index.
    pub partitions: Vec<PartitionInfo>,
}

/// What ListOffsets should look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark).
    Latest,
    /// The first offset whose timestamp is >= this (ms); the end offset when none.
    Timestamp(i64),
    /// The offset of the record with the largest timestamp (KIP-734).
    MaxTimestamp,
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// One ListOffsets answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// Partition.
    pub partition: i32,
    /// The offset (-1 when no record matches a timestamp).
    pub offset: i64,
    /// Timestamp of that record, -1 when not applicable.
    pub timestamp: i64,
    /// Leader epoch of that record, -1 when unknown.
    pub leader_epoch: i32,
}

/// What [`Admin::delete_records`] left of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedRecords {
    /// Partition.
    pub partition: i32,
    /// The partition's new log start offset (Java's `DeletedRecords.lowWatermark`).
    pub low_watermark: i64,
}

/// Earliest and latest offsets of one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionOffsets {
    /// Partition.
    pub partition: i32,
    /// Log start offset.
    pub earliest: i64,
    /// Log end offset.
    pub latest: i64,
}

/// A config resource (Java's `ConfigResource`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigResource {
    /// A topic (resource type 2).
    Topic(String),
    /// A broker by node id (resource type 4).
    Broker(i32),
    /// The cluster-wide default of every broker (resource type 4, an empty name): what
    /// `kafka-configs.sh --entity-default --entity-type brokers` changes.
    BrokerDefault,
    /// A broker's log4j loggers (resource type 8): logger name to level, applied at once and
    /// not kept over a restart.
    BrokerLogger(i32),
    /// A consumer group's configs, e.g. `consumer.session.timeout.ms` (resource type 32,
    /// KIP-848).
    Group(String),
    /// A client metrics subscription (resource type 16, KIP-714).
    ClientMetrics(String),
}

impl ConfigResource {
    fn wire(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(t) => (2, t.clone()),
            ConfigResource::Broker(id) => (4, id.to_string()),
            ConfigResource::BrokerDefault => (4, String::new()),
            ConfigResource::BrokerLogger(id) => (8, id.to_string()),
            ConfigResource::Group(g) => (32, g.clone()),
            ConfigResource::ClientMetrics(n) => (16, n.clone()),
        }
    }

    /// The broker the request must go to: broker and logger configs of one broker live on
    /// it (Java's admin client routes them the same way); the rest go to any broker.
    fn node(&self) -> Option<i32> {
        match self {
            ConfigResource::Broker(id) | ConfigResource::BrokerLogger(id) => Some(*id),
            _ => None,
        }
    }
}

impl std::fmt::Display for ConfigResource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConfigResource::Topic(t) => write!(f, "topic {t}"),
            ConfigResource::Broker(id) => write!(f, "broker {id}"),
            ConfigResource::BrokerDefault => f.write_str("the broker default"),
            ConfigResource::BrokerLogger(id) => write!(f, "the loggers of broker {id}"),
            ConfigResource::Group(g) => write!(f, "group {g}"),
            ConfigResource::ClientMetrics(n) => write!(f, "client metrics {n}"),
        }
    }
}

/// One change of [`Admin::incremental_alter_configs`] (Java's `AlterConfigOp`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterConfigOp {
    /// Sets `key` to `value`.
    Set(String, String),
    /// Removes `key`'s value at this level (the next level's value applies).
    Delete(String),
    /// Adds `value` to the list `key` (e.g. `cleanup.policy`), if not there yet.
    Append(String, String),
    /// Removes `value` from the list `key`.
    Subtract(String, String),
}

impl AlterConfigOp {
    fn wire(&self) -> (&str, i8, Option<&str>) {
        match self {
            AlterConfigOp::Set(k, v) => (k, 0, Some(v)),
            AlterConfigOp::Delete(k) => (k, 1, None),
            AlterConfigOp::Append(k, v) => (k, 2, Some(v)),
            AlterConfigOp::Subtract(k, v) => (k, 3, Some(v)),
        }
    }
}

/// What [`Admin::describe_cluster`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterDescription {
    /// The cluster id.
    pub cluster_id: String,
    /// The controller's node id, when the broker names one (with KRaft, a broker the
    /// client can send controller requests through).
    pub controller: Option<i32>,
    /// Every live broker.
    pub brokers: Vec<BrokerInfo>,
}

/// Whose coordinator [`Admin::coordinator`] finds (FindCoordinator's key type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CoordinatorType {
    /// A consumer group's (the key is the group id).
    Group,
    /// A transactional producer's (the key is the transactional id).
    Transaction,
}

impl CoordinatorType {
    pub(crate) fn wire(self) -> i8 {
        match self {
            CoordinatorType::Group => 0,
            CoordinatorType::Transaction => 1,
        }
    }
}

/// One config entry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConfigEntry {
    /// Key.
    pub name: String,
    /// Value (`None` for sensitive or unset values).
    pub value: Option<String>,
    /// Read-only.
    pub read_only: bool,
    /// Sensitive (value hidden by the broker).
    pub is_sensitive: bool,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Every level that sets this key, the effective one first (Java's `synonyms()`), e.g. a
    /// topic override, then the broker's `log.retention.ms`, then the default.
    pub synonyms: Vec<ConfigSynonym>,
}

impl ConfigEntry {
    /// The value is Kafka's built-in default (Java's `ConfigEntry.isDefault`): not set on
    /// this resource, on the broker, or cluster-wide.
    pub fn is_default(&self) -> bool {
        self.source == ConfigSource::Default
    }

    /// The value is set on this resource itself: a topic override for a topic, a dynamic
    /// per-broker setting for a broker.
    pub fn is_override(&self) -> bool {
        matches!(
            self.source,
            ConfigSource::DynamicTopic
                | ConfigSource::DynamicBroker
                | ConfigSource::DynamicBrokerLogger
                | ConfigSource::Group
                | ConfigSource::ClientMetrics
        )
    }
}

/// Where a config value comes from (Java's `ConfigEntry.ConfigSource`, the wire's
/// `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ConfigSource {
    /// Set on the topic (`kafka-configs --entity-type topics`).
    DynamicTopic,
    /// Set dynamically for this broker.
    DynamicBroker,
    /// Set dynamically as the cluster-wide broker default.
    DynamicDefaultBroker,
    /// From the broker's `server.properties`.
    StaticBroker,
    /// Kafka's built-in default.
    Default,
    /// A dynamic broker logger level.
    DynamicBrokerLogger,
    /// A client-metrics subscription's config.
    ClientMetrics,
    /// Set on a group.
    Group,
    /// Not known to this client (a newer broker).
    Unknown(i8),
}

impl ConfigSource {
    fn from_wire(v: i8) -> Self {
        match v {
            1 => ConfigSource::DynamicTopic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            6 => ConfigSource::DynamicBrokerLogger,
            7 => ConfigSource::ClientMetrics,
            8 => ConfigSource::Group,
            v => ConfigSource::Unknown(v),
        }
    }
}

/// One level that sets a config key ([`ConfigEntry::synonyms`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSynonym {
    /// The key at that level (e.g. `log.retention.ms` for a topic's `retention.ms`).
    pub name: String,
    /// Its value there (`None` when sensitive).
    pub value: Option<String>,
    /// The level.
    pub source: ConfigSource,
}

/// A group as `list_groups` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type (`consumer` for consumer groups).
    pub protocol_type: String,
    /// State (`Stable`, `Empty`, ...), when the broker reports it.
    pub state: String,
    /// Group type (`classic`, `consumer`, ...), when the broker reports it.
    pub group_type: String,
}

/// A member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id.
    pub member_id: String,
    /// Static member id, when set.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Assigned partitions (consumer protocol groups), topic → partitions.
    pub assignment: BTreeMap<String, Vec<i32>>,
}

/// A classic group as DescribeGroups reports it: state, protocol and members with their
/// assignments. Committed offsets are not part of it ([`Admin::group_offsets`] has them),
/// and KIP-848 (`group.protocol=consumer`) groups are described by
/// [`Admin::describe_consumer_group`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// State.
    pub state: String,
    /// Protocol type.
    pub protocol_type: String,
    /// Assignor (`range`, `cooperative-sticky`, ...).
    pub protocol: String,
    /// Members.
    pub members: Vec<GroupMember>,
}

/// Which group protocol a consumer group runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum GroupType {
    /// The classic protocol (JoinGroup/SyncGroup, client-side assignment).
    Classic,
    /// The consumer protocol of KIP-848 (ConsumerGroupHeartbeat, server-side assignment).
    Consumer,
}

/// A consumer group of either protocol ([`Admin::describe_consumer_group`]): state,
/// assignor and members with their assignments. Committed offsets are not part of it
/// ([`Admin::group_offsets`] has them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    /// Group id.
    pub group_id: String,
    /// The protocol the group runs.
    pub group_type: GroupType,
    /// Classic groups: the protocol type members joined with (`consumer` for consumers;
    /// empty while the group has no members). Consumer groups: `consumer`.
    pub protocol_type: String,
    /// State (`Stable`, `Empty`, `PreparingRebalance`, `Assigning`, `Reconciling`, ...).
    pub state: String,
    /// Assignor: the client-side one of a classic group (`range`, `cooperative-sticky`),
    /// the broker's of a consumer group (`uniform`, `range`); empty when none yet.
    pub assignor: String,
    /// Group epoch (consumer groups only).
    pub group_epoch: Option<i32>,
    /// Members.
    pub members: Vec<ConsumerGroupMember>,
}

/// A member of a consumer group ([`ConsumerGroupDescription`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMember {
    /// Member id.
    pub member_id: String,
    /// Static member id, when set.
    pub group_instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Member epoch (consumer groups only).
    pub member_epoch: Option<i32>,
    /// Partitions the member owns now, topic → partitions (sorted).
    pub assignment: BTreeMap<String, Vec<i32>>,
    /// Consumer groups: the partitions the broker is moving the member to, when they differ
    /// from `assignment` (a rebalance in progress).
    pub target_assignment: Option<BTreeMap<String, Vec<i32>>>,
}

/// Reads a `ConsumerProtocolAssignment` (version, [topic, [partition]], user data),
/// bounds-checked; an unreadable assignment yields an empty map.
fn parse_assignment(b: &[u8]) -> BTreeMap<String, Vec<i32>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (h, t) = b.split_at_checked(n)?;
        *b = t;
        Some(h)
    }
    fn i16_(b: &mut &[u8]) -> Option<i16> {
        take(b, 2).map(|x| i16::from_be_bytes([x[0], x[1]]))
    }
    fn i32_(b: &mut &[u8]) -> Option<i32> {
        take(b, 4).map(|x| i32::from_be_bytes([x[0], x[1], x[2], x[3]]))
    }
    fn go(mut b: &[u8]) -> Option<BTreeMap<String, Vec<i32>>> {
        let b = &mut b;
        let _version = i16_(b)?;
        let topics = i32_(b)?;
        let mut out = BTreeMap::new();
        for _ in 0..topics.max(0) {
            let len = usize::try_from(i16_(b)?).ok()?;
            let name = String::from_utf8(take(b, len)?.to_vec()).ok()?;
            let n = i32_(b)?;
            let mut parts = Vec::new();
            for _ in 0..n.max(0) {
                parts.push(i32_(b)?);
            }
            out.insert(name, parts);
        }
        Some(out)
    }
    go(b).unwrap_or_default()
}

/// Administration handle: topics, partitions, configs, offsets, groups, transactions, SCRAM
/// users, leader elections and reassignments. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> strom_client::Result<()> {
/// use strom_client::{Admin, ClientConfig, NewTopic};
///
/// let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
/// // Returns once every partition has a leader.
/// admin.create_topics(&[NewTopic::new("orders", 6).config("retention.ms", "86400000")]).await?;
/// for topic in admin.describe_topics(&["orders"]).await? {
///     println!("{}: {} partitions", topic.name, topic.partitions.len());
/// }
/// for group in admin.list_groups().await? {
///     let offsets = admin.group_offsets(&group.group_id).await?;
///     println!("{} ({}): {} committed offsets", group.group_id, group.state, offsets.len());
/// }
/// admin.delete_topics(&["orders"]).await?;
/// # Ok(())
/// # }
/// ```
///
/// `client/examples/admin.rs` is a complete program.
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    /// An admin over an existing client.
    pub fn new(client: Client) -> Self {
        Admin { client }
    }

    /// Connects a new client and wraps it.
    pub async fn connect(config: ClientConfig) -> Result<Self> {
        Ok(Admin::new(Client::connect(config).await?))
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    async fn any(&self) -> Result<Connection> {
        self.client.any_broker().await
    }

    /// Creates topics; fails on the first topic the broker refused, naming it.
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<()> {
        self.create_topics_with_options(topics, CreateTopicsOptions::default())
            .await
            .map(drop)
    }

    /// Creates topics, or with `validate_only` has the controller check them and create
    /// nothing (Java's `createTopics(topics, options)`). Returns each topic as the broker
    /// created it (or would): its partition count, replication factor and effective configs
    /// with their sources, and its id when created. A created topic is usable (has leaders)
    /// when this returns.
    pub async fn create_topics_with_options(
        &self,
        topics: &[NewTopic],
        options: CreateTopicsOptions,
    ) -> Result<Vec<CreatedTopic>> {
        let mut creatable = Vec::with_capacity(topics.len());
        for t in topics {
            if !t.replica_assignment.is_empty() && (t.partitions.is_some() || t.replication_factor.is_some()) {
                return Err(Error::config(format!(
                    "topic {}: an explicit replica assignment defines the partitions and the replication factor; \
                     leave both unset",
                    t.name
                )));
            }
            creatable.push(
                CreatableTopic::default()
                    .with_name(topic_name(&t.name))
                    .with_num_partitions(t.partitions.unwrap_or(-1))
                    .with_replication_factor(t.replication_factor.unwrap_or(-1))
                    .with_assignments(
                        t.replica_assignment
                            .iter()
                            .map(|(p, brokers)| {
                                CreatableReplicaAssignment::default()
                                    .with_partition_index(*p)
                                    .with_broker_ids(brokers.iter().map(|b| BrokerId(*b)).collect())
                            })
                            .collect(),
                    )
                    .with_configs(
                        t.configs
                            .iter()
                            .map(|(k, v)| CreatableTopicConfig::default().with_name(s(k)).with_value(Some(s(v))))
                            .collect(),
                    ),
            );
        }
        let req = CreateTopicsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_validate_only(options.validate_only)
            .with_topics(creatable);
        let resp = self
            .client
            .with_retries("CreateTopics", || async { self.any().await?.send(&req).await })
            .await?;
        let mut created = Vec::with_capacity(resp.topics.len());
        for r in resp.topics {
            let name = r.name.0.to_string();
            check(r.error_code, r.error_message.as_ref(), || format!("topic {name}"))?;
            created.push(CreatedTopic {
                // A validation answers with an id too (KRaft's controller makes one), of a
                // topic that does not exist: not reported.
                topic_id: (!options.validate_only && !r.topic_id.is_nil()).then_some(r.topic_id),
                partitions: r.num_partitions,
                replication_factor: r.replication_factor,
                configs: r
                    .configs
                    .unwrap_or_default()
                    .into_iter()
                    .map(|c| ConfigEntry {
                        name: c.name.to_string(),
                        value: c.value.map(|v| v.to_string()),
                        read_only: c.read_only,
                        is_sensitive: c.is_sensitive,
                        source: ConfigSource::from_wire(c.config_source),
                        synonyms: Vec::new(),
                    })
                    .collect(),
                name,
            });
        }
        if !options.validate_only {
            // KRaft brokers learn of the topic asynchronously: return once it is usable.
            let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
            self.wait_for_metadata("created topics to appear", &names, |t| {
                t.is_some_and(|t| !t.partitions.is_empty() && t.partitions.iter().all(|p| p.leader >= 0))
            })
            .await?;
        }
        Ok(created)
    }

    /// Polls metadata of `names` until `ready` holds for each, or `default.api.timeout.ms`.
    async fn wait_for_metadata(
        &self,
        what: &str,
        names: &[&str],
        ready: impl Fn(Option<&crate::client::TopicInfo>) -> bool,
    ) -> Result<()> {
        let cfg = self.client.config();
        let deadline = std::time::Instant::now() + cfg.default_api_timeout;
        loop {
            let md = self.client.refresh_metadata(Some(names)).await?;
            if names.iter().all(|n| ready(md.topic(n))) {
                return Ok(());
            }
            if std::time::Instant::now() + cfg.retry_backoff >= deadline {
                return Err(Error::timeout(
                    format!("waiting for {what} ({})", names.join(", ")),
                    cfg.default_api_timeout,
                ));
            }
            tokio::time::sleep(cfg.retry_backoff).await;
        }
    }

    /// Deletes topics by name; fails on the first topic the broker refused, naming it.
    pub async fn delete_topics(&self, names: &[&str]) -> Result<()> {
        let conn = self.any().await?;
        let req = DeleteTopicsRequest::default().with_timeout_ms(self.timeout_ms());
        // v6 names topics in `topics` (name or id); older versions in `topic_names`.
        let req = if conn.versions().version(ApiKey::DeleteTopics)? >= 6 {
            req.with_topics(
                names
                    .iter()
                    .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                    .collect(),
            )
        } else {
            req.with_topic_names(names.iter().map(|n| topic_name(n)).collect())
        };
        let resp = self
            .client
            .with_retries("DeleteTopics", || async { self.any().await?.send(&req).await })
            .await?;
        for r in &resp.responses {
            let name = r
                .name
                .as_ref()
                .map_or_else(|| r.topic_id.to_string(), |n| n.0.to_string());
            check(r.error_code, r.error_message.as_ref(), || format!("topic {name}"))?;
            self.client.invalidate_topic(&name);
        }
        self.wait_for_metadata("deleted topics to disappear", names, |t| t.is_none())
            .await
    }

    /// Names of all topics, sorted; internal topics only when asked for.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<String>> {
        let md = self.client.refresh_metadata(None).await?;
        Ok(md
            .topics
            .values()
            .filter(|t| include_internal || !t.is_internal)
            .map(|t| t.name.clone())
            .collect())
    }

    /// Describes topics; an unknown topic is an error naming it.
    pub async fn describe_topics(&self, names: &[&str]) -> Result<Vec<TopicDescription>> {
        let md = self.client.refresh_metadata(Some(names)).await?;
        names
            .iter()
            .map(|n| {
                md.topic(n)
                    .map(|t| TopicDescription {
                        name: t.name.clone(),
                        topic_id: t.topic_id,
                        is_internal: t.is_internal,
                        partitions: t.partitions.clone(),
                    })
                    .ok_or_else(|| Error::kafka(ErrorCode::UnknownTopicOrPartition).with_context(format!("topic {n}")))
            })
            .collect()
    }

    /// Raises the partition count of `topic` to `total`.
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<()> {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(total)
                // Null: the broker places the new partitions ([] would mean "none given").
                .with_assignments(None)]);
        let resp = self
            .client
            .with_retries("CreatePartitions", || async { self.any().await?.send(&req).await })
            .await?;
        for r in &resp.results {
            check(r.error_code, r.error_message.as_ref(), || {
                format!("topic {}", r.name.0.as_str())
            })?;
        }
        self.client.invalidate_topic(topic);
        let want = usize::try_from(total).unwrap_or(0);
        self.wait_for_metadata("new partitions to appear", &[topic], |t| {
            t.is_some_and(|t| t.partitions.len() >= want && t.partitions.iter().all(|p| p.leader >= 0))
        })
        .await
    }

    /// The cluster id, controller and brokers (DescribeCluster; Java's `describeCluster`).
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let req = DescribeClusterRequest::default();
        let resp = self
            .client
            .with_retries("DescribeCluster", || async { self.any().await?.send(&req).await })
            .await?;
        check(resp.error_code, resp.error_message.as_ref(), || "cluster".into())?;
        let brokers = resp
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                node_id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(|r| r.to_string()),
            })
            .collect();
        Ok(ClusterDescription {
            cluster_id: resp.cluster_id.to_string(),
            controller: (resp.controller_id.0 >= 0).then_some(resp.controller_id.0),
            brokers,
        })
    }

    /// Config entries of a resource (all keys).
    pub async fn describe_configs(&self, resource: &ConfigResource) -> Result<Vec<ConfigEntry>> {
        let (rtype, rname) = resource.wire();
        let req = DescribeConfigsRequest::default()
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(rtype)
                .with_resource_name(s(&rname))
                .with_configuration_keys(None)])
            .with_include_synonyms(true);
        let conn = resource.node();
        let resp = self
            .client
            .with_retries("DescribeConfigs", || async {
                let c = match conn {
                    Some(id) => self.client.broker(id).await?,
                    None => self.any().await?,
                };
                c.send(&req).await
            })
            .await?;
        let mut out = Vec::new();
        for r in resp.results {
            check(r.error_code, r.error_message.as_ref(), || resource.to_string())?;
            out.extend(r.configs.into_iter().map(|c| {
                ConfigEntry {
                    name: c.name.to_string(),
                    value: c.value.map(|v| v.to_string()),
                    read_only: c.read_only,
                    is_sensitive: c.is_sensitive,
                    source: ConfigSource::from_wire(c.config_source),
                    synonyms: c
                        .synonyms
                        .into_iter()
                        .map(|y| ConfigSynonym {
                            name: y.name.to_string(),
                            value: y.value.map(|v| v.to_string()),
                            source: ConfigSource::from_wire(y.source),
                        })
                        .collect(),
                }
            }));
        }
        Ok(out)
    }

    /// Sets (`Some`) or deletes (`None`) config keys of a resource (IncrementalAlterConfigs).
    pub async fn alter_configs(&self, resource: &ConfigResource, changes: &[(&str, Option<&str>)]) -> Result<()> {
        let ops: Vec<AlterConfigOp> = changes
            .iter()
            .map(|(k, v)| match v {
                Some(v) => AlterConfigOp::Set((*k).to_owned(), (*v).to_owned()),
                None => AlterConfigOp::Delete((*k).to_owned()),
            })
            .collect();
        self.incremental_alter_configs(resource, &ops, false).await
    }

    /// Applies `ops` to a resource's configs (Java's `incrementalAlterConfigs`): set,
    /// delete, append to a list, subtract from a list. With `validate_only` the broker checks
    /// the changes (unknown keys, bad values, a missing resource) and changes nothing.
    pub async fn incremental_alter_configs(
        &self,
        resource: &ConfigResource,
        ops: &[AlterConfigOp],
        validate_only: bool,
    ) -> Result<()> {
        let (rtype, rname) = resource.wire();
        let req = IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(rtype)
                .with_resource_name(s(&rname))
                .with_configs(
                    ops.iter()
                        .map(|op| {
                            let (k, code, v) = op.wire();
                            AlterableConfig::default()
                                .with_name(s(k))
                                .with_config_operation(code)
                                .with_value(v.map(s))
                        })
                        .collect(),
                )]);
        let conn = resource.node();
        let resp = self
            .client
            .with_retries("IncrementalAlterConfigs", || async {
                let c = match conn {
                    Some(id) => self.client.broker(id).await?,
                    None => self.any().await?,
                };
                c.send(&req).await
            })
            .await?;
        for r in &resp.responses {
            check(r.error_code, r.error_message.as_ref(), || resource.to_string())?;
        }
        Ok(())
    }

    /// ListOffsets for partitions of one topic (all partitions when `partitions` is empty),
    /// one request per partition leader.
    pub async fn list_offsets(&self, topic: &str, partitions: &[i32], spec: OffsetSpec) -> Result<Vec<ListedOffset>> {
        self.list_offsets_isolated(topic, partitions, spec, false).await
    }

    /// [`Admin::list_offsets`] with an isolation level: under `read_committed` the latest
    /// offset is the last stable offset (the start of the first open transaction).
    pub async fn list_offsets_isolated(
        &self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
        read_committed: bool,
    ) -> Result<Vec<ListedOffset>> {
        // A topic or partition that fresh metadata does not know fails at once, as in Java's
        // admin client; only leader movements are retried.
        let md = self.client.refresh_metadata(Some(&[topic])).await?;
        let info = md
            .topic(topic)
            .ok_or_else(|| Error::kafka(ErrorCode::UnknownTopicOrPartition).with_context(format!("topic {topic}")))?;
        if let Some(missing) = partitions
            .iter()
            .find(|p| !info.partitions.iter().any(|i| i.partition == **p))
        {
            return Err(Error::kafka(ErrorCode::UnknownTopicOrPartition)
                .with_context(format!("topic {topic} partition {missing}"))
                .with_partition(topic, *missing));
        }
        self.client
            .with_retries("ListOffsets", || async {
                let info = self.client.topic(topic).await?;
                let wanted: Vec<&PartitionInfo> = info
                    .partitions
                    .iter()
                    .filter(|p| partitions.is_empty() || partitions.contains(&p.partition))
                    .collect();
                let mut by_leader: BTreeMap<i32, Vec<&PartitionInfo>> = BTreeMap::new();
                for p in wanted {
                    by_leader.entry(p.leader).or_default().push(p);
                }
                let mut out = Vec::new();
                for (leader, parts) in by_leader {
                    if leader < 0 {
                        self.client.invalidate_topic(topic);
                        return Err(Error::kafka(ErrorCode::LeaderNotAvailable).with_context(format!("topic {topic}")));
                    }
                    let req = ListOffsetsRequest::default()
                        .with_replica_id(BrokerId(-1))
                        .with_isolation_level(i8::from(read_committed))
                        .with_topics(vec![ListOffsetsTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|p| {
                                        ListOffsetsPartition::default()
                                            .with_partition_index(p.partition)
                                            .with_current_leader_epoch(p.leader_epoch)
                                            .with_timestamp(spec.wire())
                                    })
                                    .collect(),
                            )]);
                    let resp = self.client.broker(leader).await?.send(&req).await?;
                    for t in resp.topics {
                        for p in t.partitions {
                            if let Err(e) = check(p.error_code, None, || {
                                format!("topic {topic} partition {}", p.partition_index)
                            }) {
                                if e.is_retriable() {
                                    self.client.invalidate_topic(topic);
                                }
                                return Err(e);
                            }
                            out.push(ListedOffset {
                                partition: p.partition_index,
                                offset: p.offset,
                                timestamp: p.timestamp,
                                leader_epoch: p.leader_epoch,
                            });
                        }
                    }
                }
                out.sort_by_key(|o| o.partition);
                Ok(out)
            })
            .await
    }

    /// Earliest and latest offset of every partition of `topic`.
    pub async fn partition_offsets(&self, topic: &str) -> Result<Vec<PartitionOffsets>> {
        let earliest = self.list_offsets(topic, &[], OffsetSpec::Earliest).await?;
        let latest = self.list_offsets(topic, &[], OffsetSpec::Latest).await?;
        Ok(earliest
            .iter()
            .zip(&latest)
            .map(|(e, l)| PartitionOffsets {
                partition: e.partition,
                earliest: e.offset,
                latest: l.offset,
            })
            .collect())
    }

    /// Deletes the records of `topic` before the given offsets (Java's `deleteRecords` with
    /// `RecordsToDelete.beforeOffset`): `(partition, offset)` pairs, where an offset of -1
    /// means the high watermark (everything). One DeleteRecords request per partition
    /// leader; leader moves are retried. Returns each partition's new log start offset.
    ///
    /// An offset past the high watermark is an `OFFSET_OUT_OF_RANGE` broker error, and a
    /// topic or partition the cluster does not have is `UNKNOWN_TOPIC_OR_PARTITION`; both
    /// name the partition.
    pub async fn delete_records(&self, topic: &str, before: &[(i32, i64)]) -> Result<Vec<DeletedRecords>> {
        let md = self.client.refresh_metadata(Some(&[topic])).await?;
        let info = md
            .topic(topic)
            .ok_or_else(|| Error::kafka(ErrorCode::UnknownTopicOrPartition).with_context(format!("topic {topic}")))?;
        if let Some((missing, _)) = before
            .iter()
            .find(|(p, _)| !info.partitions.iter().any(|i| i.partition == *p))
        {
            return Err(Error::kafka(ErrorCode::UnknownTopicOrPartition)
                .with_context(format!("topic {topic} partition {missing}"))
                .with_partition(topic, *missing));
        }
        let timeout = i32::try_from(self.client.config().request_timeout.as_millis()).unwrap_or(i32::MAX);
        self.client
            .with_retries("DeleteRecords", || async {
                let info = self.client.topic(topic).await?;
                let mut by_leader: BTreeMap<i32, Vec<(i32, i64)>> = BTreeMap::new();
                for &(partition, offset) in before {
                    let leader = info
                        .partitions
                        .iter()
                        .find(|i| i.partition == partition)
                        .map_or(-1, |i| i.leader);
                    by_leader.entry(leader).or_default().push((partition, offset));
                }
                let mut out = Vec::new();
                for (leader, parts) in by_leader {
                    if leader < 0 {
                        self.client.invalidate_topic(topic);
                        return Err(Error::kafka(ErrorCode::LeaderNotAvailable).with_context(format!("topic {topic}")));
                    }
                    let req = DeleteRecordsRequest::default()
                        .with_timeout_ms(timeout)
                        .with_topics(vec![DeleteRecordsTopic::default()
                            .with_name(topic_name(topic))
                            .with_partitions(
                                parts
                                    .iter()
                                    .map(|&(p, offset)| {
                                        DeleteRecordsPartition::default()
                                            .with_partition_index(p)
                                            .with_offset(offset)
                                    })
                                    .collect(),
                            )]);
                    let resp = self.client.broker(leader).await?.send(&req).await?;
                    for t in resp.topics {
                        for p in t.partitions {
                            if let Err(e) = check(p.error_code, None, || {
                                format!("deleting records of topic {topic} partition {}", p.partition_index)
                            }) {
                                if e.is_retriable() {
                                    self.client.invalidate_topic(topic);
                                }
                                return Err(e.with_partition(topic, p.partition_index));
                            }
                            out.push(DeletedRecords {
                                partition: p.partition_index,
                                low_watermark: p.low_watermark,
                            });
                        }
                    }
                }
                out.sort_by_key(|d| d.partition);
                Ok(out)
            })
            .await
    }

    /// A connection to the coordinator of a consumer group or a transactional id.
    pub async fn coordinator(&self, key: &str, kind: CoordinatorType) -> Result<Connection> {
        let key_type = kind.wire();
        self.client
            .with_retries("FindCoordinator", || async {
                let node = self.find_coordinator(key, key_type).await?;
                self.client.broker(node).await
            })
            .await
    }

    /// The coordinator of a group on its own connection (see
    /// [`Client::coordinator_connection`]), retried like [`Admin::coordinator`].
    pub(crate) async fn group_coordinator(&self, group: &str) -> Result<Connection> {
        self.client
            .with_retries("FindCoordinator", || async {
                let node = self.find_coordinator(group, CoordinatorType::Group.wire()).await?;
                self.client.coordinator_connection(node).await
            })
            .await
    }

    /// The node id of the coordinator of a group (`key_type` 0) or transactional id (1);
    /// one FindCoordinator, not retried.
    pub(crate) async fn find_coordinator(&self, key: &str, key_type: i8) -> Result<i32> {
        let conn = self.any().await?;
        let v = conn.versions().version(ApiKey::FindCoordinator)?;
        let req = FindCoordinatorRequest::default().with_key_type(key_type);
        // v4 batches keys in `coordinator_keys`.
        let req = if v >= 4 {
            req.with_coordinator_keys(vec![s(key)])
        } else {
            req.with_key(s(key))
        };
        let resp = conn.send(&req).await?;
        let (code, msg, node) = match resp.coordinators.first() {
            Some(c) if v >= 4 => (c.error_code, c.error_message.clone(), c.node_id.0),
            _ => (resp.error_code, resp.error_message.clone(), resp.node_id.0),
        };
        check(code, msg.as_ref(), || format!("coordinator of {key}"))?;
        Ok(node)
    }

    /// All groups the cluster knows (ListGroups on every broker).
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let md = self.client.metadata();
        let mut out = Vec::new();
        for &id in md.brokers.keys() {
            let resp = self
                .client
                .with_retries("ListGroups", || async {
                    self.client.broker(id).await?.send(&ListGroupsRequest::default()).await
                })
                .await?;
            check(resp.error_code, None, || format!("broker {id}"))?;
            out.extend(resp.groups.into_iter().map(|g| GroupListing {
                group_id: g.group_id.0.to_string(),
                protocol_type: g.protocol_type.to_string(),
                state: g.group_state.to_string(),
                group_type: g.group_type.to_string(),
            }));
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// Describes a classic group: state, members and their assignments. A KIP-848 consumer
    /// group is GROUP_ID_NOT_FOUND here ("not a classic group"):
    /// [`Admin::describe_consumer_group`] describes groups of both protocols.
    pub async fn describe_group(&self, group: &str) -> Result<GroupDescription> {
        let req = DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]);
        let resp = self
            .client
            .with_retries("DescribeGroups", || async {
                self.coordinator(group, CoordinatorType::Group).await?.send(&req).await
            })
            .await?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| Error::protocol(format!("DescribeGroups returned nothing for group {group}")))?;
        check(g.error_code, g.error_message.as_ref(), || format!("group {group}"))?;
        Ok(GroupDescription {
            group_id: g.group_id.0.to_string(),
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members: g
                .members
                .into_iter()
                .map(|m| GroupMember {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.map(|i| i.to_string()),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    assignment: parse_assignment(&m.member_assignment),
                })
                .collect(),
        })
    }

    /// Describes a consumer group of either protocol: ConsumerGroupDescribe (KIP-848) first,
    /// and DescribeGroups when the broker has no such API or the group is not a consumer
    /// group (GROUP_ID_NOT_FOUND), as Java's `Admin.describeConsumerGroups`
    /// (`DescribeConsumerGroupsHandler`, KIP-1043). A group neither API knows is reported as
    /// the classic API does (GROUP_ID_NOT_FOUND, or state `Dead` from older brokers).
    pub async fn describe_consumer_group(&self, group: &str) -> Result<ConsumerGroupDescription> {
        match self.consumer_group_describe(group).await {
            Ok(Some(d)) => return Ok(d),
            Ok(None) => {}
            // Not a KIP-848 group; or (UNSUPPORTED_VERSION) a broker that lists the API but
            // runs without the new group coordinator, as Kafka 3.9 does by default.
            Err(e)
                if matches!(
                    e.kafka_code(),
                    Some(ErrorCode::GroupIdNotFound | ErrorCode::UnsupportedVersion)
                ) => {}
            Err(e) => return Err(e),
        }
        let d = self.describe_group(group).await?;
        Ok(ConsumerGroupDescription {
            group_id: d.group_id,
            group_type: GroupType::Classic,
            protocol_type: d.protocol_type,
            state: d.state,
            assignor: d.protocol,
            group_epoch: None,
            members: d
                .members
                .into_iter()
                .map(|m| ConsumerGroupMember {
                    member_id: m.member_id,
                    group_instance_id: m.group_instance_id,
                    client_id: m.client_id,
                    client_host: m.client_host,
                    member_epoch: None,
                    assignment: m.assignment,
                    target_assignment: None,
                })
                .collect(),
        })
    }

    /// Describes several consumer groups of either protocol (Java's
    /// `Admin.describeConsumerGroups`), each at its own coordinator, concurrently. Each group
    /// has its own outcome: one unknown or unauthorized group does not hide the others.
    pub async fn describe_consumer_groups(
        &self,
        groups: &[&str],
    ) -> BTreeMap<String, Result<ConsumerGroupDescription>> {
        let each = groups
            .iter()
            .map(|g| async move { (g.to_string(), self.describe_consumer_group(g).await) });
        futures_util::future::join_all(each).await.into_iter().collect()
    }

    /// ConsumerGroupDescribe (API 69) at the group's coordinator; `None` when the broker
    /// does not have the API.
    async fn consumer_group_describe(&self, group: &str) -> Result<Option<ConsumerGroupDescription>> {
        fn parts(a: &consumer_group_describe_response::Assignment) -> BTreeMap<String, Vec<i32>> {
            let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
            for t in &a.topic_partitions {
                out.entry(t.topic_name.0.to_string()).or_default().extend(&t.partitions);
            }
            for ps in out.values_mut() {
                ps.sort_unstable();
            }
            out
        }
        let req = ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]);
        let g = self
            .client
            .with_retries("ConsumerGroupDescribe", || async {
                let conn = self.coordinator(group, CoordinatorType::Group).await?;
                if conn.versions().broker_range(ApiKey::ConsumerGroupDescribe).is_none() {
                    return Ok(None);
                }
                let resp = conn.send(&req).await?;
                let g = resp.groups.into_iter().next().ok_or_else(|| {
                    Error::protocol(format!("ConsumerGroupDescribe returned nothing for group {group}"))
                })?;
                check(g.error_code, g.error_message.as_ref(), || format!("group {group}"))?;
                Ok(Some(g))
            })
            .await?;
        let Some(g) = g else { return Ok(None) };
        Ok(Some(ConsumerGroupDescription {
            group_id: g.group_id.0.to_string(),
            group_type: GroupType::Consumer,
            protocol_type: "consumer".to_owned(),
            state: g.group_state.to_string(),
            assignor: g.assignor_name.to_string(),
            group_epoch: Some(g.group_epoch),
            members: g
                .members
                .iter()
                .map(|m| {
                    let assignment = parts(&m.assignment);
                    let target = parts(&m.target_assignment);
                    ConsumerGroupMember {
                        member_id: m.member_id.to_string(),
                        group_instance_id: m.instance_id.as_ref().map(ToString::to_string),
                        client_id: m.client_id.to_string(),
                        client_host: m.client_host.to_string(),
                        member_epoch: Some(m.member_epoch),
                        target_assignment: (target != assignment).then_some(target),
                        assignment,
                    }
                })
                .collect(),
        }))
    }

    /// Committed offsets of a group: (topic, partition) → offset.
    pub async fn group_offsets(&self, group: &str) -> Result<BTreeMap<(String, i32), i64>> {
        let resp = self
            .client
            .with_retries("OffsetFetch", || async {
                let conn = self.coordinator(group, CoordinatorType::Group).await?;
                let v = conn.versions().version(ApiKey::OffsetFetch)?;
                // v8 batches groups in `groups`; older versions have one group_id.
                let req = if v >= 8 {
                    OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                        .with_group_id(GroupId(s(group)))
                        .with_topics(None)])
                } else {
                    OffsetFetchRequest::default()
                        .with_group_id(GroupId(s(group)))
                        .with_topics(None)
                };
                let resp = conn.send(&req).await?;
                // Both layouts flattened to (group error, [(topic, partition, offset, error)]).
                let (group_code, rows): (i16, Vec<(String, i32, i64, i16)>) = if v >= 8 {
                    let mut code = 0;
                    let mut rows = Vec::new();
                    for g in resp.groups {
                        code = if code == 0 { g.error_code } else { code };
                        for t in g.topics {
                            let name = t.name.0.to_string();
                            rows.extend(
                                t.partitions
                                    .iter()
                                    .map(|p| (name.clone(), p.partition_index, p.committed_offset, p.error_code)),
                            );
                        }
                    }
                    (code, rows)
                } else {
                    let mut rows = Vec::new();
                    for t in resp.topics {
                        let name = t.name.0.to_string();
                        rows.extend(
                            t.partitions
                                .iter()
                                .map(|p| (name.clone(), p.partition_index, p.committed_offset, p.error_code)),
                        );
                    }
                    (resp.error_code, rows)
                };
                check(group_code, None, || format!("group {group}"))?;
                let mut out = BTreeMap::new();
                for (topic, partition, offset, code) in rows {
                    check(code, None, || {
                        format!("group {group} topic {topic} partition {partition}")
                    })?;
                    out.insert((topic, partition), offset);
                }
                Ok(out)
            })
            .await?;
        Ok(resp.into_iter().filter(|(_, o)| *o >= 0).collect())
    }

    /// Sets committed offsets of a group that has no active members (Java's
    /// `alterConsumerGroupOffsets`: OffsetCommit with generation -1 and no member id).
    pub async fn alter_group_offsets(&self, group: &str, topic: &str, offsets: &[(i32, i64)]) -> Result<()> {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id_or_member_epoch(-1)
            .with_retention_time_ms(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    offsets
                        .iter()
                        .map(|&(p, o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_committed_leader_epoch(-1)
                        })
                        .collect(),
                )]);
        let resp = self
            .client
            .with_retries("OffsetCommit", || async {
                let resp = self
                    .coordinator(group, CoordinatorType::Group)
                    .await?
                    .send(&req)
                    .await?;
                for t in &resp.topics {
                    for p in &t.partitions {
                        check(p.error_code, None, || {
                            format!(
                                "group {group} topic {} partition {}",
                                t.name.0.as_str(),
                                p.partition_index
                            )
                        })?;
                    }
                }
                Ok(resp)
            })
            .await?;
        drop(resp);
        Ok(())
    }

    /// Deletes groups (they must be empty).
    pub async fn delete_groups(&self, groups: &[&str]) -> Result<()> {
        for group in groups {
            let req = DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]);
            let resp = self
                .client
                .with_retries("DeleteGroups", || async {
                    self.coordinator(group, CoordinatorType::Group).await?.send(&req).await
                })
                .await?;
            for r in &resp.results {
                check(r.error_code, None, || format!("group {}", r.group_id.0.as_str()))?;
            }
        }
        Ok(())
    }

    /// Deletes the committed offsets of `partitions` of `topic` from `group` (Java's
    /// `deleteConsumerGroupOffsets`, the OffsetDelete API). The broker refuses partitions the
    /// group is consuming (`GROUP_SUBSCRIBED_TO_TOPIC`), naming the partition; a group
    /// without committed offsets there is not an error.
    pub async fn delete_group_offsets(&self, group: &str, topic: &str, partitions: &[i32]) -> Result<()> {
        let req = OffsetDeleteRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_topics(vec![OffsetDeleteRequestTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    partitions
                        .iter()
                        .map(|p| OffsetDeleteRequestPartition::default().with_partition_index(*p))
                        .collect(),
                )]);
        let resp = self
            .client
            .with_retries("OffsetDelete", || async {
                let resp = self
                    .coordinator(group, CoordinatorType::Group)
                    .await?
                    .send(&req)
                    .await?;
                // Coordinator moves are retried (with_retries); anything else is final.
                check(resp.error_code, None, || format!("deleting offsets of group {group}"))?;
                Ok(resp)
            })
            .await?;
        for t in &resp.topics {
            for p in &t.partitions {
                check(p.error_code, None, || {
                    format!(
                        "deleting offsets of group {group}: topic {} partition {}",
                        t.name.0.as_str(),
                        p.partition_index
                    )
                })
                .map_err(|e| e.with_partition(t.name.0.as_str(), p.partition_index))?;
            }
        }
        Ok(())
    }

    fn timeout_ms(&self) -> i32 {
        i32::try_from(self.client.config().request_timeout.as_millis()).unwrap_or(i32::MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignment_parsing_is_bounded() {
        let mut b = vec![0, 1, 0, 0, 0, 1, 0, 1, b't', 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3];
        assert_eq!(parse_assignment(&b), BTreeMap::from([("t".to_string(), vec![0, 3])]));
        b.truncate(15);
        assert!(parse_assignment(&b).is_empty());
        assert!(parse_assignment(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_empty());
    }
}
