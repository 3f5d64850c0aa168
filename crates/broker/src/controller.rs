//! The controller side of topic management: validation, then records through
//! the metadata quorum, then local reconciliation. One mutex serializes
//! validate-then-propose so two creations of one name cannot both succeed.

use std::collections::BTreeMap;

use sluice_meta::{MetadataRecord, PartitionState};
use uuid::Uuid;

use crate::config::{topic_config_def, validate_value};
use crate::error_codes;
use crate::state::BrokerState;

/// Longest topic name Kafka accepts.
pub const TOPIC_NAME_CHARS_MAX: usize = 249;

/// A Kafka error for one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicError {
    pub code: i16,
    pub message: String,
}

impl TopicError {
    fn new(code: i16, message: impl Into<String>) -> TopicError {
        TopicError {
            code,
            message: message.into(),
        }
    }
}

/// What a CreateTopics entry (or an auto-creation) asks for.
#[derive(Debug, Clone)]
pub struct TopicSpec {
    pub name: String,
    /// -1: `num.partitions`.
    pub num_partitions: i32,
    /// -1: `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual assignment, partition index → replicas; empty for automatic.
    pub assignments: Vec<(i32, Vec<i32>)>,
    pub configs: BTreeMap<String, String>,
}

/// What was (or would be) created.
#[derive(Debug, Clone)]
pub struct CreatedTopic {
    pub topic_id: Uuid,
    pub num_partitions: i32,
    pub replication_factor: i16,
}

/// Kafka's topic name rules.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::new(
            error_codes::INVALID_TOPIC_EXCEPTION,
            "Topic name is illegal, it can't be empty",
        ));
    }
    if name == "." || name == ".." {
        return Err(TopicError::new(
            error_codes::INVALID_TOPIC_EXCEPTION,
            "Topic name cannot be \".\" or \"..\"",
        ));
    }
    if name.len() > TOPIC_NAME_CHARS_MAX {
        return Err(TopicError::new(
            error_codes::INVALID_TOPIC_EXCEPTION,
            format!("Topic name is illegal, it can't be longer than {TOPIC_NAME_CHARS_MAX} characters, topic name: {name}"),
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return Err(TopicError::new(
            error_codes::INVALID_TOPIC_EXCEPTION,
            format!("Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"),
        ));
    }
    Ok(())
}

/// Names that collide once '.' and '_' are equated.
fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

/// Validates and (unless `validate_only`) creates a topic.
pub async fn create_topic(
    state: &BrokerState,
    spec: TopicSpec,
    validate_only: bool,
) -> Result<CreatedTopic, TopicError> {
    validate_topic_name(&spec.name)?;
    for (key, value) in &spec.configs {
        let Some(def) = topic_config_def(key) else {
            return Err(TopicError::new(
                error_codes::INVALID_CONFIG,
                format!("Unknown topic config name: {key}"),
            ));
        };
        validate_value(key, def.config_type, value)
            .map_err(|m| TopicError::new(error_codes::INVALID_CONFIG, m))?;
    }
    let _guard = state.controller_lock.lock().await;
    let image = state.quorum.image();
    if image.topics.contains_key(&spec.name) {
        return Err(TopicError::new(
            error_codes::TOPIC_ALREADY_EXISTS,
            format!("Topic '{}' already exists.", spec.name),
        ));
    }
    let key = collision_key(&spec.name);
    if let Some(other) = image.topics.keys().find(|n| collision_key(n) == key) {
        return Err(TopicError::new(
            error_codes::INVALID_TOPIC_EXCEPTION,
            format!(
                "Topic '{}' collides with existing topic: {other}",
                spec.name
            ),
        ));
    }
    let live_brokers: Vec<i32> = image.brokers.keys().copied().collect();
    let partitions: Vec<PartitionState> = if !spec.assignments.is_empty() {
        if spec.num_partitions != -1 || spec.replication_factor != -1 {
            return Err(TopicError::new(
                error_codes::INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
            ));
        }
        let mut assignments = spec.assignments.clone();
        assignments.sort_by_key(|(p, _)| *p);
        let mut states = Vec::new();
        for (expected, (index, replicas)) in assignments.iter().enumerate() {
            if *index != expected as i32 || replicas.is_empty() {
                return Err(TopicError::new(
                    error_codes::INVALID_REPLICA_ASSIGNMENT,
                    "Partitions should be a consecutive 0-based integer sequence with replicas",
                ));
            }
            if let Some(bad) = replicas.iter().find(|r| !live_brokers.contains(r)) {
                return Err(TopicError::new(
                    error_codes::INVALID_REPLICA_ASSIGNMENT,
                    format!("Replica {bad} is not a live broker"),
                ));
            }
            states.push(PartitionState {
                partition: *index,
                replicas: replicas.clone(),
                isr: replicas.clone(),
                leader: replicas[0],
                leader_epoch: 0,
            });
        }
        states
    } else {
        let num_partitions = if spec.num_partitions == -1 {
            state.broker_config_i64("num.partitions") as i32
        } else {
            spec.num_partitions
        };
        if num_partitions <= 0 {
            return Err(TopicError::new(
                error_codes::INVALID_PARTITIONS,
                "Number of partitions must be larger than 0.",
            ));
        }
        let replication_factor = if spec.replication_factor == -1 {
            state.broker_config_i64("default.replication.factor") as i16
        } else {
            spec.replication_factor
        };
        if replication_factor <= 0 {
            return Err(TopicError::new(
                error_codes::INVALID_REPLICATION_FACTOR,
                "Replication factor must be larger than 0.",
            ));
        }
        if replication_factor as usize > live_brokers.len() {
            return Err(TopicError::new(
                error_codes::INVALID_REPLICATION_FACTOR,
                format!("Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {} broker(s) are registered.", live_brokers.len()),
            ));
        }
        (0..num_partitions)
            .map(|p| {
                let replicas: Vec<i32> = (0..replication_factor as usize)
                    .map(|r| live_brokers[(p as usize + r) % live_brokers.len()])
                    .collect();
                PartitionState {
                    partition: p,
                    isr: replicas.clone(),
                    leader: replicas[0],
                    replicas,
                    leader_epoch: 0,
                }
            })
            .collect()
    };
    let created = CreatedTopic {
        topic_id: Uuid::new_v4(),
        num_partitions: partitions.len() as i32,
        replication_factor: partitions
            .first()
            .map(|p| p.replicas.len() as i16)
            .unwrap_or(0),
    };
    if validate_only {
        return Ok(created);
    }
    let record = MetadataRecord::CreateTopic {
        name: spec.name.clone(),
        topic_id: created.topic_id,
        partitions,
        configs: spec.configs,
    };
    state
        .quorum
        .propose(vec![record])
        .await
        .map_err(|e| TopicError::new(error_codes::UNKNOWN_SERVER_ERROR, e.to_string()))?;
    let image = state.quorum.image();
    apply_locally(state, &image);
    tracing::info!(topic = %spec.name, topic_id = %created.topic_id, partitions = created.num_partitions, "topic created");
    Ok(created)
}

/// Deletes a topic by name.
pub async fn delete_topic(state: &BrokerState, name: &str) -> Result<Uuid, TopicError> {
    let _guard = state.controller_lock.lock().await;
    let image = state.quorum.image();
    let Some(topic) = image.topic(name) else {
        return Err(TopicError::new(
            error_codes::UNKNOWN_TOPIC_OR_PARTITION,
            "This server does not host this topic-partition.",
        ));
    };
    if name.starts_with("__") {
        // The coordinators' state lives there; deleting it would lose every
        // committed offset (Kafka's kafka-topics.sh refuses it as well).
        return Err(TopicError::new(
            error_codes::INVALID_TOPIC_EXCEPTION,
            format!("Topic {name} is an internal topic and cannot be deleted"),
        ));
    }
    let topic_id = topic.topic_id;
    state
        .quorum
        .propose(vec![MetadataRecord::DeleteTopic { topic_id }])
        .await
        .map_err(|e| TopicError::new(error_codes::UNKNOWN_SERVER_ERROR, e.to_string()))?;
    let image = state.quorum.image();
    apply_locally(state, &image);
    tracing::info!(topic = %name, %topic_id, "topic deleted");
    Ok(topic_id)
}

/// One change requested by AlterConfigs / IncrementalAlterConfigs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigOp {
    Set(String, String),
    Delete(String),
    Append(String, String),
    Subtract(String, String),
}

/// Which configs a request alters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigResource {
    Topic(String),
    /// `None`: the cluster-wide default (resource name "").
    Broker(Option<i32>),
}

/// Applies config changes to a resource: validates every resulting value,
/// then proposes the differences as metadata records (nothing changes on any
/// error). `replace_all` is the legacy AlterConfigs: the given set becomes the
/// whole set of overrides.
pub async fn alter_configs(
    state: &BrokerState,
    resource: ConfigResource,
    ops: Vec<ConfigOp>,
    replace_all: bool,
    validate_only: bool,
) -> Result<(), TopicError> {
    let _guard = state.controller_lock.lock().await;
    let image = state.quorum.image();
    let (current, topic_id) = match &resource {
        ConfigResource::Topic(name) => match image.topic(name) {
            Some(topic) => (topic.configs.clone(), Some(topic.topic_id)),
            None => {
                return Err(TopicError::new(
                    error_codes::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("Topic {name} does not exist"),
                ))
            }
        },
        ConfigResource::Broker(node) => (
            image.broker_configs.get(node).cloned().unwrap_or_default(),
            None,
        ),
    };
    let mut next = if replace_all {
        BTreeMap::new()
    } else {
        current.clone()
    };
    for op in ops {
        let key = match &op {
            ConfigOp::Set(k, _)
            | ConfigOp::Delete(k)
            | ConfigOp::Append(k, _)
            | ConfigOp::Subtract(k, _) => k.clone(),
        };
        let config_type = match &resource {
            ConfigResource::Topic(_) => match topic_config_def(&key) {
                Some(def) => def.config_type,
                None => {
                    return Err(TopicError::new(
                        error_codes::INVALID_CONFIG,
                        format!("Unknown topic config name: {key}"),
                    ))
                }
            },
            ConfigResource::Broker(_) => match crate::config::broker_config_def(&key) {
                Some(def) if def.read_only => {
                    return Err(TopicError::new(
                        error_codes::INVALID_REQUEST,
                        format!("Cannot update these configs dynamically: Set({key})"),
                    ))
                }
                Some(def) => def.config_type,
                None => {
                    return Err(TopicError::new(
                        error_codes::INVALID_CONFIG,
                        format!("Unknown broker config name: {key}"),
                    ))
                }
            },
        };
        let is_list = config_type == crate::config::ConfigType::List;
        match op {
            ConfigOp::Set(k, v) => {
                next.insert(k, v);
            }
            ConfigOp::Delete(k) => {
                next.remove(&k);
            }
            ConfigOp::Append(k, v) | ConfigOp::Subtract(k, v) if !is_list => {
                let _ = v;
                return Err(TopicError::new(
                    error_codes::INVALID_CONFIG,
                    format!("Config value append/subtract is not allowed for config key: {k}"),
                ));
            }
            ConfigOp::Append(k, v) => {
                let effective = effective_value(state, &resource, &next, &k);
                let mut items: Vec<String> = split_list(&effective);
                for item in split_list(&v) {
                    if !items.contains(&item) {
                        items.push(item);
                    }
                }
                next.insert(k, items.join(","));
            }
            ConfigOp::Subtract(k, v) => {
                let effective = effective_value(state, &resource, &next, &k);
                let remove = split_list(&v);
                let items: Vec<String> = split_list(&effective)
                    .into_iter()
                    .filter(|i| !remove.contains(i))
                    .collect();
                next.insert(k, items.join(","));
            }
        }
    }
    for (key, value) in &next {
        let config_type = match &resource {
            ConfigResource::Topic(_) => topic_config_def(key).map(|d| d.config_type),
            ConfigResource::Broker(_) => {
                crate::config::broker_config_def(key).map(|d| d.config_type)
            }
        };
        if let Some(config_type) = config_type {
            validate_value(key, config_type, value)
                .map_err(|m| TopicError::new(error_codes::INVALID_CONFIG, m))?;
        }
    }
    if validate_only {
        return Ok(());
    }
    let mut records = Vec::new();
    let keys: std::collections::BTreeSet<&String> = current.keys().chain(next.keys()).collect();
    for key in keys {
        if current.get(key) == next.get(key) {
            continue;
        }
        let value = next.get(key).cloned();
        records.push(match (&resource, topic_id) {
            (ConfigResource::Topic(_), Some(topic_id)) => MetadataRecord::SetTopicConfig {
                topic_id,
                key: key.clone(),
                value,
            },
            _ => MetadataRecord::SetBrokerConfig {
                node_id: match &resource {
                    ConfigResource::Broker(node) => *node,
                    ConfigResource::Topic(_) => None,
                },
                key: key.clone(),
                value,
            },
        });
    }
    if records.is_empty() {
        return Ok(());
    }
    state
        .quorum
        .propose(records)
        .await
        .map_err(|e| TopicError::new(error_codes::UNKNOWN_SERVER_ERROR, e.to_string()))?;
    let image = state.quorum.image();
    apply_locally(state, &image);
    tracing::info!(?resource, "configs altered");
    Ok(())
}

fn split_list(value: &str) -> Vec<String> {
    value
        .split(',')
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The value a list config has now for APPEND/SUBTRACT: the pending override,
/// else what the resource inherits.
fn effective_value(
    state: &BrokerState,
    resource: &ConfigResource,
    pending: &BTreeMap<String, String>,
    key: &str,
) -> String {
    if let Some(v) = pending.get(key) {
        return v.clone();
    }
    let dynamic = state.dynamic_configs();
    match resource {
        ConfigResource::Topic(_) => state
            .settings
            .topic_value(&dynamic, &BTreeMap::new(), key)
            .map(|(v, _)| v)
            .unwrap_or_default(),
        ConfigResource::Broker(_) => state.settings.broker_value(&dynamic, key).0,
    }
}

/// CreatePartitions: grows a topic to `count` partitions.
pub async fn create_partitions(
    state: &BrokerState,
    name: &str,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
    validate_only: bool,
) -> Result<(), TopicError> {
    let _guard = state.controller_lock.lock().await;
    let image = state.quorum.image();
    let Some(topic) = image.topic(name) else {
        return Err(TopicError::new(
            error_codes::UNKNOWN_TOPIC_OR_PARTITION,
            format!("The topic '{name}' does not exist."),
        ));
    };
    let current = topic.partitions.len() as i32;
    if count < current {
        return Err(TopicError::new(error_codes::INVALID_PARTITIONS, format!("Topic currently has {current} partitions, which is higher than the requested {count}.")));
    }
    if count == current {
        return Err(TopicError::new(
            error_codes::INVALID_PARTITIONS,
            format!("Topic already has {current} partitions."),
        ));
    }
    let live: Vec<i32> = image.brokers.keys().copied().collect();
    let replication = topic
        .partitions
        .first()
        .map(|p| p.replicas.len())
        .unwrap_or(1)
        .max(1);
    let added = (count - current) as usize;
    let mut partitions = Vec::with_capacity(added);
    for i in 0..added {
        let index = current + i as i32;
        let replicas = match &assignments {
            Some(list) => {
                let Some(replicas) = list.get(i) else {
                    return Err(TopicError::new(error_codes::INVALID_REPLICA_ASSIGNMENT, format!("Increasing the number of partitions by {added} but {} assignments provided.", list.len())));
                };
                if replicas.is_empty() || replicas.iter().any(|r| !live.contains(r)) {
                    return Err(TopicError::new(
                        error_codes::INVALID_REPLICA_ASSIGNMENT,
                        "Unknown broker in the replica assignment",
                    ));
                }
                replicas.clone()
            }
            None => {
                if replication > live.len() {
                    return Err(TopicError::new(
                        error_codes::INVALID_REPLICATION_FACTOR,
                        "Not enough live brokers for the topic's replication factor",
                    ));
                }
                (0..replication)
                    .map(|r| live[(index as usize + r) % live.len()])
                    .collect()
            }
        };
        partitions.push(PartitionState {
            partition: index,
            isr: replicas.clone(),
            leader: replicas[0],
            replicas,
            leader_epoch: 0,
        });
    }
    if validate_only {
        return Ok(());
    }
    let topic_id = topic.topic_id;
    state
        .quorum
        .propose(vec![MetadataRecord::CreatePartitions {
            topic_id,
            partitions,
        }])
        .await
        .map_err(|e| TopicError::new(error_codes::UNKNOWN_SERVER_ERROR, e.to_string()))?;
    let image = state.quorum.image();
    apply_locally(state, &image);
    tracing::info!(topic = name, count, "partitions created");
    Ok(())
}

/// Applies a committed change to this node's partitions. The change is in the
/// metadata log whatever happens here: a partition that fails to open (full
/// disk, no descriptors) stays offline, requests for it get
/// KAFKA_STORAGE_ERROR, and the image follower retries it with backoff (as a
/// broker of a cluster applies what the controller committed).
fn apply_locally(state: &BrokerState, image: &std::sync::Arc<sluice_meta::ClusterImage>) {
    if let Err(error) = state.replicas.reconcile(image) {
        tracing::warn!(%error, "applying the metadata change locally failed; retrying in the background");
        state.replicas.request_reconcile_retry();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        let long = "a".repeat(250);
        let max = "a".repeat(249);
        let cases: &[(&str, bool)] = &[
            ("orders", true),
            ("a.b_c-d", true),
            (&max, true),
            ("", false),
            (".", false),
            ("..", false),
            (&long, false),
            ("bad/name", false),
            ("spaces here", false),
            ("ünïcode", false),
        ];
        for (name, ok) in cases {
            assert_eq!(validate_topic_name(name).is_ok(), *ok, "{name}");
        }
    }

    #[test]
    fn dots_and_underscores_collide() {
        assert_eq!(collision_key("a.b"), collision_key("a_b"));
        assert_ne!(collision_key("a.b"), collision_key("a-b"));
    }
}
