//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions.

use kafka_protocol::messages::*;
use strom_protocol::ErrorCode;
use uuid::Uuid;

use std::collections::BTreeMap;

use super::configs::{check_topic_config, topic_config_entries};
use super::{s, Partition, State, MAX_PARTITIONS};

/// The configs a CreateTopics sets, or why the broker refuses them.
fn topic_configs(
    requested: &[create_topics_request::CreatableTopicConfig],
) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    for c in requested {
        let name = c.name.as_str();
        let Some(value) = &c.value else {
            return Err(format!("Null value not supported for topic configs: {name}"));
        };
        check_topic_config(name, value.as_str())?;
        out.insert(name.to_owned(), value.to_string());
    }
    Ok(out)
}

impl State {
    // ---------------------------------------------------------------- Topics

    pub(crate) fn create_topics(&mut self, req: &CreateTopicsRequest) -> CreateTopicsResponse {
        let topics = req
            .topics
            .iter()
            .map(|t| {
                let name = t.name.0.to_string();
                let (partitions, replication) = if t.assignments.is_empty() {
                    (t.num_partitions, t.replication_factor)
                } else {
                    let rf = t.assignments[0].broker_ids.len();
                    (t.assignments.len() as i32, i16::try_from(rf).unwrap_or(-1))
                };
                let r = create_topics_response::CreatableTopicResult::default().with_name(t.name.clone());
                let configs = match topic_configs(&t.configs) {
                    Ok(c) => c,
                    Err(msg) => {
                        return r
                            .with_error_code(ErrorCode::InvalidConfig.code())
                            .with_error_message(Some(s(&msg)))
                            .with_num_partitions(-1)
                            .with_replication_factor(-1)
                    }
                };
                match self.create_topic(&name, partitions, replication, req.validate_only) {
                    Ok(id) => {
                        if !t.assignments.is_empty() {
                            if let Some(topic) = self.topics.get_mut(&name) {
                                for (p, a) in topic.partitions.iter_mut().zip(&t.assignments) {
                                    p.replicas = a.broker_ids.iter().map(|b| b.0).collect();
                                    p.leader = p.replicas.first().copied().unwrap_or(-1);
                                }
                            }
                        }
                        let described = topic_config_entries(&configs, false)
                            .into_iter()
                            .map(|e| {
                                create_topics_response::CreatableTopicConfigs::default()
                                    .with_name(e.name)
                                    .with_value(e.value)
                                    .with_config_source(e.config_source)
                            })
                            .collect();
                        let n = match self.topics.get_mut(&name) {
                            Some(topic) => {
                                topic.configs = configs;
                                topic.partitions.len() as i32
                            }
                            None => partitions,
                        };
                        r.with_topic_id(id)
                            .with_num_partitions(n)
                            .with_replication_factor(replication.max(1))
                            .with_configs(Some(described))
                    }
                    Err((code, msg)) => r
                        .with_error_code(code.code())
                        .with_error_message(Some(s(&msg)))
                        .with_num_partitions(-1)
                        .with_replication_factor(-1),
                }
            })
            .collect();
        CreateTopicsResponse::default().with_topics(topics)
    }

    pub(crate) fn delete_topics(&mut self, req: &DeleteTopicsRequest, version: i16) -> DeleteTopicsResponse {
        let targets: Vec<(Option<String>, Uuid)> = if version >= 6 {
            req.topics
                .iter()
                .map(|t| (t.name.as_ref().map(|n| n.0.to_string()), t.topic_id))
                .collect()
        } else {
            req.topic_names
                .iter()
                .map(|n| (Some(n.0.to_string()), Uuid::nil()))
                .collect()
        };
        let responses = targets
            .into_iter()
            .map(|(name, id)| {
                let name = name.or_else(|| self.name_of(id));
                let r = delete_topics_response::DeletableTopicResult::default()
                    .with_name(name.as_deref().map(|n| TopicName(s(n))))
                    .with_topic_id(id);
                match name.and_then(|n| self.topics.remove(&n)) {
                    Some(t) => r.with_topic_id(t.id),
                    None if version >= 6 && !id.is_nil() => r.with_error_code(ErrorCode::UnknownTopicId.code()),
                    None => r.with_error_code(ErrorCode::UnknownTopicOrPartition.code()),
                }
            })
            .collect();
        DeleteTopicsResponse::default().with_responses(responses)
    }

    pub(crate) fn create_partitions(&mut self, req: &CreatePartitionsRequest) -> CreatePartitionsResponse {
        let brokers: Vec<i32> = self.brokers.iter().map(|b| b.id).collect();
        let results = req
            .topics
            .iter()
            .map(|t| {
                let r = create_partitions_response::CreatePartitionsTopicResult::default().with_name(t.name.clone());
                let Some(topic) = self.topics.get_mut(t.name.0.as_str()) else {
                    return r.with_error_code(ErrorCode::UnknownTopicOrPartition.code());
                };
                let have = topic.partitions.len() as i32;
                if t.count > MAX_PARTITIONS {
                    return r
                        .with_error_code(ErrorCode::InvalidPartitions.code())
                        .with_error_message(Some(s(&format!(
                            "strom-fake keeps at most {MAX_PARTITIONS} partitions per topic, not {}",
                            t.count
                        ))));
                }
                if t.count <= have {
                    return r
                        .with_error_code(ErrorCode::InvalidPartitions.code())
                        .with_error_message(Some(s(&format!(
                            "Topic currently has {have} partitions, which is higher than the requested {}.",
                            t.count
                        ))));
                }
                if !req.validate_only {
                    let rf = topic.partitions[0].replicas.len();
                    for p in have..t.count {
                        let replicas: Vec<i32> = (0..rf).map(|r| brokers[(p as usize + r) % brokers.len()]).collect();
                        topic.partitions.push(Partition::new(replicas));
                    }
                }
                r
            })
            .collect();
        CreatePartitionsResponse::default().with_results(results)
    }
}
