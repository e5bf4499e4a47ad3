//! Admin: topics and partitions (CreateTopics, DeleteTopics, CreatePartitions, and
//! topics as metadata describes them).

use std::collections::BTreeMap;

use strom_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use strom_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use strom_protocol::messages::delete_topics_request::DeleteTopicState;
use strom_protocol::messages::{ApiKey, BrokerId, CreatePartitionsRequest, CreateTopicsRequest, DeleteTopicsRequest};
use strom_protocol::ErrorCode;

use crate::client::PartitionInfo;
use crate::error::{check, Error, Result};

use crate::admin::{s, topic_name, Admin};
use crate::admin_configs::{ConfigEntry, ConfigSource};

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

impl Admin {
    /// Creates topics; fails on the first topic the broker refused, naming it.
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
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
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
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
            .client()
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
        let cfg = self.client().config();
        let deadline = tokio::time::Instant::now() + cfg.default_api_timeout;
        loop {
            let md = self.client().refresh_metadata(Some(names)).await?;
            if names.iter().all(|n| ready(md.topic(n))) {
                return Ok(());
            }
            if tokio::time::Instant::now() + cfg.retry_backoff >= deadline {
                return Err(Error::timeout(
                    format!("waiting for {what} ({})", names.join(", ")),
                    cfg.default_api_timeout,
                ));
            }
            tokio::time::sleep(cfg.retry_backoff).await;
        }
    }

    /// Deletes topics by name; fails on the first topic the broker refused, naming it.
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
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
            .client()
            .with_retries("DeleteTopics", || async { self.any().await?.send(&req).await })
            .await?;
        for r in &resp.responses {
            let name = r
                .name
                .as_ref()
                .map_or_else(|| r.topic_id.to_string(), |n| n.0.to_string());
            check(r.error_code, r.error_message.as_ref(), || format!("topic {name}"))?;
            self.client().invalidate_topic(&name);
        }
        self.wait_for_metadata("deleted topics to disappear", names, |t| t.is_none())
            .await
    }

    /// Names of all topics, sorted; internal topics only when asked for.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn list_topics(&self, include_internal: bool) -> Result<Vec<String>> {
        let md = self.client().refresh_metadata(None).await?;
        Ok(md
            .topics
            .values()
            .filter(|t| include_internal || !t.is_internal)
            .map(|t| t.name.clone())
            .collect())
    }

    /// Describes topics; an unknown topic is an error naming it.
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
    pub async fn describe_topics(&self, names: &[&str]) -> Result<Vec<TopicDescription>> {
        let md = self.client().refresh_metadata(Some(names)).await?;
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
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<()> {
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(self.timeout_ms())
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(total)
                // Null: the broker places the new partitions ([] would mean "none given").
                .with_assignments(None)]);
        let resp = self
            .client()
            .with_retries("CreatePartitions", || async { self.any().await?.send(&req).await })
            .await?;
        for r in &resp.results {
            check(r.error_code, r.error_message.as_ref(), || {
                format!("topic {}", r.name.0.as_str())
            })?;
        }
        self.client().invalidate_topic(topic);
        let want = usize::try_from(total).unwrap_or(0);
        self.wait_for_metadata("new partitions to appear", &[topic], |t| {
            t.is_some_and(|t| t.partitions.len() >= want && t.partitions.iter().all(|p| p.leader >= 0))
        })
        .await
    }
}
