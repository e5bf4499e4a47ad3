//! Admin: broker, topic and other resources' configurations (DescribeConfigs,
//! AlterConfigs, IncrementalAlterConfigs).

use strom_protocol::messages::describe_configs_request::DescribeConfigsResource;
use strom_protocol::messages::incremental_alter_configs_request::{AlterConfigsResource, AlterableConfig};
use strom_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};

use crate::error::{check, Result};

use crate::admin::{s, Admin};

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
    pub(crate) fn from_wire(v: i8) -> Self {
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

impl Admin {
    /// Config entries of a resource (all keys).
    ///
    /// Cancellation-safe: dropping the call loses only its answer; the admin stays usable.
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
            .client()
            .with_retries("DescribeConfigs", || async {
                let c = match conn {
                    Some(id) => self.client().broker(id).await?,
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
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
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
    ///
    /// Cancellation-safe: dropping the call abandons the wait, not the change: a request already
    /// sent may still be applied, so look before making it again. The admin stays usable.
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
            .client()
            .with_retries("IncrementalAlterConfigs", || async {
                let c = match conn {
                    Some(id) => self.client().broker(id).await?,
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
}
