//! DescribeConfigs: topic configs (the defaults of Kafka 4.x, and what CreateTopics set) and
//! a broker's (a documented subset of a real broker's: the settings the fake models).

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::*;
use strom_protocol::ErrorCode;

use super::{s, State};

use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;

/// ConfigResource types on the wire.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;

/// ConfigSource values on the wire.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

/// ConfigType values on the wire (KIP-569).
const BOOLEAN: i8 = 1;
const STRING: i8 = 2;
const INT: i8 = 3;
const LONG: i8 = 5;
const DOUBLE: i8 = 6;
const LIST: i8 = 7;

/// Every topic config of Kafka 4.4 with its default and the broker config that supplies it
/// (its synonym), as a 4.4 broker describes a topic created with no configs.
const TOPIC_CONFIGS: &[(&str, &str, Option<&str>, i8)] = &[
    ("cleanup.policy", "delete", Some("log.cleanup.policy"), LIST),
    ("compression.gzip.level", "-1", Some("compression.gzip.level"), INT),
    ("compression.lz4.level", "9", Some("compression.lz4.level"), INT),
    ("compression.type", "producer", Some("compression.type"), STRING),
    ("compression.zstd.level", "3", Some("compression.zstd.level"), INT),
    (
        "delete.retention.ms",
        "86400000",
        Some("log.cleaner.delete.retention.ms"),
        LONG,
    ),
    ("errors.deadletterqueue.group.enable", "false", None, BOOLEAN),
    (
        "file.delete.delay.ms",
        "60000",
        Some("log.segment.delete.delay.ms"),
        LONG,
    ),
    (
        "flush.messages",
        "9223372036854775807",
        Some("log.flush.interval.messages"),
        LONG,
    ),
    ("flush.ms", "9223372036854775807", None, LONG),
    ("follower.replication.throttled.replicas", "", None, LIST),
    ("index.interval.bytes", "4096", Some("log.index.interval.bytes"), INT),
    ("leader.replication.throttled.replicas", "", None, LIST),
    ("local.retention.bytes", "-2", Some("log.local.retention.bytes"), LONG),
    ("local.retention.ms", "-2", Some("log.local.retention.ms"), LONG),
    (
        "max.compaction.lag.ms",
        "9223372036854775807",
        Some("log.cleaner.max.compaction.lag.ms"),
        LONG,
    ),
    (
        "max.decompressed.message.bytes",
        "2147483639",
        Some("max.decompressed.message.bytes"),
        INT,
    ),
    ("max.message.bytes", "1048588", Some("message.max.bytes"), INT),
    (
        "message.timestamp.after.max.ms",
        "3600000",
        Some("log.message.timestamp.after.max.ms"),
        LONG,
    ),
    (
        "message.timestamp.before.max.ms",
        "9223372036854775807",
        Some("log.message.timestamp.before.max.ms"),
        LONG,
    ),
    (
        "message.timestamp.type",
        "CreateTime",
        Some("log.message.timestamp.type"),
        STRING,
    ),
    (
        "min.cleanable.dirty.ratio",
        "0.5",
        Some("log.cleaner.min.cleanable.ratio"),
        DOUBLE,
    ),
    (
        "min.compaction.lag.ms",
        "0",
        Some("log.cleaner.min.compaction.lag.ms"),
        LONG,
    ),
    ("min.insync.replicas", "1", Some("min.insync.replicas"), INT),
    ("preallocate", "false", Some("log.preallocate"), BOOLEAN),
    ("remote.copy.lag.bytes", "-1", Some("log.remote.copy.lag.bytes"), LONG),
    ("remote.copy.lag.ms", "0", Some("log.remote.copy.lag.ms"), LONG),
    ("remote.log.copy.disable", "false", None, BOOLEAN),
    ("remote.log.delete.on.disable", "false", None, BOOLEAN),
    ("remote.storage.enable", "false", None, BOOLEAN),
    ("retention.bytes", "-1", Some("log.retention.bytes"), LONG),
    ("retention.ms", "604800000", None, LONG),
    ("segment.bytes", "1073741824", Some("log.segment.bytes"), INT),
    ("segment.index.bytes", "10485760", Some("log.index.size.max.bytes"), INT),
    ("segment.jitter.ms", "0", None, LONG),
    ("segment.ms", "604800000", None, LONG),
    (
        "unclean.leader.election.enable",
        "false",
        Some("unclean.leader.election.enable"),
        BOOLEAN,
    ),
];

/// The type of a topic config Kafka knows (`None`: CreateTopics and IncrementalAlterConfigs
/// refuse it).
fn topic_config_type(name: &str) -> Option<i8> {
    TOPIC_CONFIGS.iter().find(|(n, ..)| *n == name).map(|(.., kind)| *kind)
}

/// A topic config's value checked as Kafka checks it: a known name, and a value of its type.
pub(crate) fn check_topic_config(name: &str, value: &str) -> Result<(), String> {
    let Some(kind) = topic_config_type(name) else {
        return Err(format!("Unknown topic config name: {name}"));
    };
    let v = value.trim();
    let ok = match kind {
        BOOLEAN => v.eq_ignore_ascii_case("true") || v.eq_ignore_ascii_case("false"),
        INT => v.parse::<i32>().is_ok(),
        LONG => v.parse::<i64>().is_ok(),
        DOUBLE => v.parse::<f64>().is_ok(),
        _ => true,
    };
    if ok {
        return Ok(());
    }
    let expected = match kind {
        BOOLEAN => "Expected value to be either true or false".to_owned(),
        INT => "Not a number of type INT".to_owned(),
        LONG => "Not a number of type LONG".to_owned(),
        _ => "Not a number of type DOUBLE".to_owned(),
    };
    Err(format!("Invalid value {value} for configuration {name}: {expected}"))
}

/// IncrementalAlterConfigs' operations on the wire.
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

/// `ops` applied to a topic's `configs`, all or none: the new configs, or the error code and
/// message Kafka answers.
fn apply_ops(
    configs: &BTreeMap<String, String>,
    ops: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
) -> Result<BTreeMap<String, String>, (ErrorCode, String)> {
    let mut seen = std::collections::BTreeSet::new();
    if !ops.iter().all(|o| seen.insert(o.name.as_str())) {
        return Err((ErrorCode::InvalidRequest, "Error due to duplicate config keys".into()));
    }
    let mut out = configs.clone();
    for op in ops {
        let name = op.name.as_str();
        let Some(kind) = topic_config_type(name) else {
            return Err((ErrorCode::InvalidConfig, format!("Unknown topic config name: {name}")));
        };
        let value = op.value.as_ref().map(|v| v.as_str());
        match op.config_operation {
            SET => {
                let Some(v) = value else {
                    return Err((
                        ErrorCode::InvalidRequest,
                        format!("Null value not supported for : {name}"),
                    ));
                };
                check_topic_config(name, v).map_err(|m| (ErrorCode::InvalidConfig, m))?;
                out.insert(name.to_owned(), v.to_owned());
            }
            DELETE => {
                out.remove(name);
            }
            APPEND | SUBTRACT => {
                if kind != LIST {
                    let what = if op.config_operation == APPEND {
                        "append"
                    } else {
                        "subtract"
                    };
                    return Err((
                        ErrorCode::InvalidConfig,
                        format!("Config value {what} is not allowed for config key: {name}"),
                    ));
                }
                let current = out
                    .get(name)
                    .cloned()
                    .or_else(|| {
                        TOPIC_CONFIGS
                            .iter()
                            .find(|(n, ..)| *n == name)
                            .map(|(_, d, ..)| (*d).to_owned())
                    })
                    .unwrap_or_default();
                let mut items: Vec<String> = current
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect();
                for item in value
                    .unwrap_or_default()
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                {
                    if op.config_operation == APPEND {
                        if !items.iter().any(|i| i == item) {
                            items.push(item.to_owned());
                        }
                    } else {
                        items.retain(|i| i != item);
                    }
                }
                out.insert(name.to_owned(), items.join(","));
            }
            other => {
                return Err((ErrorCode::InvalidRequest, format!("Unknown operation type {other}")));
            }
        }
    }
    Ok(out)
}

/// One config entry as DescribeConfigs v1+ describes it.
fn entry(
    name: &str,
    value: &str,
    source: i8,
    kind: i8,
    synonyms: Vec<DescribeConfigsSynonym>,
) -> DescribeConfigsResourceResult {
    DescribeConfigsResourceResult::default()
        .with_name(s(name))
        .with_value(Some(s(value)))
        .with_config_source(source)
        .with_config_type(kind)
        .with_synonyms(synonyms)
}

fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(s(name))
        .with_value(Some(s(value)))
        .with_source(source)
}

/// The configs of a topic: every key, each with its source (set on the topic, or the
/// default) and, with `synonyms`, the levels that set it, most specific first.
pub(crate) fn topic_config_entries(
    configs: &BTreeMap<String, String>,
    synonyms: bool,
) -> Vec<DescribeConfigsResourceResult> {
    TOPIC_CONFIGS
        .iter()
        .map(|(name, default, broker, kind)| {
            let set = configs.get(*name);
            let mut syn = Vec::new();
            if synonyms {
                if let Some(v) = set {
                    syn.push(synonym(name, v, DYNAMIC_TOPIC_CONFIG));
                }
                if let Some(b) = broker {
                    syn.push(synonym(b, default, DEFAULT_CONFIG));
                }
            }
            match set {
                Some(v) => entry(name, v, DYNAMIC_TOPIC_CONFIG, *kind, syn),
                None => entry(name, default, DEFAULT_CONFIG, *kind, syn),
            }
        })
        .collect()
}

impl State {
    /// The broker configs the fake models, as broker `node` describes itself.
    fn broker_config_entries(&self, node: i32, synonyms: bool) -> Vec<DescribeConfigsResourceResult> {
        let st = &self.settings;
        let rack = self.brokers.iter().find(|b| b.id == node).and_then(|b| b.rack.clone());
        let static_ = |name: &str, value: String, kind: i8| {
            let syn = if synonyms {
                vec![synonym(name, &value, STATIC_BROKER_CONFIG)]
            } else {
                Vec::new()
            };
            entry(name, &value, STATIC_BROKER_CONFIG, kind, syn)
        };
        let default = |name: &str, value: &str, kind: i8| {
            let syn = if synonyms {
                vec![synonym(name, value, DEFAULT_CONFIG)]
            } else {
                Vec::new()
            };
            entry(name, value, DEFAULT_CONFIG, kind, syn)
        };
        let mut out = vec![
            static_("auto.create.topics.enable", st.auto_create_topics.to_string(), BOOLEAN),
            static_("default.replication.factor", st.default_replication.to_string(), INT),
            static_(
                "group.consumer.heartbeat.interval.ms",
                st.group_heartbeat_interval.as_millis().to_string(),
                INT,
            ),
            static_(
                "group.consumer.session.timeout.ms",
                st.group_session_timeout.as_millis().to_string(),
                INT,
            ),
            default("group.max.session.timeout.ms", "1800000", INT),
            default("group.min.session.timeout.ms", "6000", INT),
            default("log.cleanup.policy", "delete", LIST),
            default("log.retention.hours", "168", INT),
            default("message.max.bytes", "1048588", INT),
            default("min.insync.replicas", "1", INT),
            static_("node.id", node.to_string(), INT),
            static_("num.partitions", st.default_partitions.to_string(), INT),
            default("offsets.retention.minutes", "10080", INT),
            static_(
                "replica.selector.class",
                if st.rack_aware_replica_selector {
                    "org.apache.kafka.common.replica.RackAwareReplicaSelector".into()
                } else {
                    String::new()
                },
                STRING,
            ),
            default("socket.request.max.bytes", "104857600", INT),
            default("transaction.max.timeout.ms", "900000", INT),
        ];
        if let Some(r) = rack {
            out.push(static_("broker.rack", r, STRING));
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    pub(crate) fn describe_configs(&self, node: i32, req: &DescribeConfigsRequest, v: i16) -> DescribeConfigsResponse {
        let results = req
            .resources
            .iter()
            .map(|r| {
                let name = r.resource_name.as_str();
                let answer = DescribeConfigsResult::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                let fail = |code: ErrorCode, msg: String| {
                    answer
                        .clone()
                        .with_error_code(code.code())
                        .with_error_message(Some(s(&msg)))
                };
                let entries = match r.resource_type {
                    TOPIC => match self.topics.get(name) {
                        Some(t) => topic_config_entries(&t.configs, req.include_synonyms),
                        None => {
                            return fail(
                                ErrorCode::UnknownTopicOrPartition,
                                format!("The topic '{name}' does not exist."),
                            )
                        }
                    },
                    // The cluster-wide dynamic default: nothing set in the fake.
                    BROKER if name.is_empty() => Vec::new(),
                    BROKER => match name.parse::<i32>() {
                        Ok(id) if id == node => self.broker_config_entries(node, req.include_synonyms),
                        _ => {
                            return fail(
                                ErrorCode::InvalidRequest,
                                format!("Unexpected broker id, expected {node} or empty string, but received {name}"),
                            )
                        }
                    },
                    other => {
                        return fail(
                            ErrorCode::InvalidRequest,
                            format!("strom-fake does not describe configs of resource type {other}"),
                        )
                    }
                };
                let wanted = r.configuration_keys.as_ref();
                let configs = entries
                    .into_iter()
                    .filter(|e| wanted.is_none_or(|keys| keys.iter().any(|k| k.as_str() == e.name.as_str())))
                    // v1-v2 have no config type.
                    .map(|e| if v < 3 { e.with_config_type(0) } else { e })
                    .collect();
                answer.with_configs(configs)
            })
            .collect();
        DescribeConfigsResponse::default().with_results(results)
    }
}

impl State {
    /// IncrementalAlterConfigs (v0-1) of topics: set, delete, append to and subtract from a
    /// list, each resource all or nothing, checked as Kafka checks them (unknown names and
    /// values of the wrong type are INVALID_CONFIG). Broker configs are not altered (the fake
    /// models no dynamic broker config): INVALID_REQUEST saying so.
    pub(crate) fn incremental_alter_configs(
        &mut self,
        req: &IncrementalAlterConfigsRequest,
    ) -> IncrementalAlterConfigsResponse {
        let responses = req
            .resources
            .iter()
            .map(|r| {
                let name = r.resource_name.as_str();
                let answer = AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone());
                let fail = |code: ErrorCode, msg: String| {
                    answer
                        .clone()
                        .with_error_code(code.code())
                        .with_error_message(Some(s(&msg)))
                };
                if r.resource_type != TOPIC {
                    return fail(
                        ErrorCode::InvalidRequest,
                        format!(
                            "strom-fake alters topic configs only, not resource type {}",
                            r.resource_type
                        ),
                    );
                }
                let Some(topic) = self.topics.get_mut(name) else {
                    return fail(
                        ErrorCode::UnknownTopicOrPartition,
                        format!("The topic '{name}' does not exist."),
                    );
                };
                match apply_ops(&topic.configs, &r.configs) {
                    Ok(new) => {
                        if !req.validate_only {
                            topic.configs = new;
                        }
                        answer
                    }
                    Err((code, msg)) => fail(code, msg),
                }
            })
            .collect();
        IncrementalAlterConfigsResponse::default().with_responses(responses)
    }
}
