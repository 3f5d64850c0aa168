//! The topic control manager (Kafka's ReplicationControlManager, for what a
//! single-node broker needs): CreateTopics, DeleteTopics, CreatePartitions as
//! pure decisions against an image.

use std::collections::BTreeMap;

use sluice_meta::{MetadataRecord, PartitionState, TopicImage};
use uuid::Uuid;

use super::placement::{self, PlacementError, Start};
use super::{ControllerContext, ControllerResult, TopicError};
use crate::config::{topic_config_def, validate_value};
use crate::error_codes;

/// Longest topic name Kafka accepts.
pub const TOPIC_NAME_CHARS_MAX: usize = 249;

/// What a CreateTopics entry (or an auto-creation) asks for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TopicSpec {
    /// The topic's name.
    pub name: String,
    /// -1: `num.partitions`.
    pub num_partitions: i32,
    /// -1: `default.replication.factor`.
    pub replication_factor: i16,
    /// Manual assignment, partition index → replicas; empty for automatic.
    pub assignments: Vec<(i32, Vec<i32>)>,
    /// Topic-level config overrides.
    pub configs: BTreeMap<String, String>,
}

/// What was (or would be) created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CreatedTopic {
    /// The new topic's id.
    pub topic_id: Uuid,
    /// Its partition count.
    pub num_partitions: i32,
    /// Replicas per partition (of partition 0).
    pub replication_factor: i16,
}

/// Kafka's topic name rules.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    let invalid = |message: String| {
        Err(TopicError::new(
            error_codes::INVALID_TOPIC_EXCEPTION,
            message,
        ))
    };
    if name.is_empty() {
        return invalid("Topic name is illegal, it can't be empty".to_string());
    }
    if name == "." || name == ".." {
        return invalid("Topic name cannot be \".\" or \"..\"".to_string());
    }
    if name.len() > TOPIC_NAME_CHARS_MAX {
        return invalid(format!("Topic name is illegal, it can't be longer than {TOPIC_NAME_CHARS_MAX} characters, topic name: {name}"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-')
    {
        return invalid(format!("Topic name {name} is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"));
    }
    Ok(())
}

/// Names that collide once '.' and '_' are equated.
pub(super) fn collision_key(name: &str) -> String {
    name.replace('.', "_")
}

/// The checks of a CreateTopics entry that need no image: its name and its
/// config overrides.
pub fn validate_spec(spec: &TopicSpec) -> Result<(), TopicError> {
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
    Ok(())
}

/// CreateTopics for one topic: the CreateTopic record with the partitions
/// placed, and what was created. `topic_id` is the id to give it.
pub fn create_topic(
    context: ControllerContext<'_>,
    spec: TopicSpec,
    topic_id: Uuid,
) -> Result<ControllerResult<CreatedTopic>, TopicError> {
    validate_spec(&spec)?;
    let image = context.image;
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
    let partitions = if spec.assignments.is_empty() {
        placed_partitions(context, &spec, topic_id)?
    } else {
        assigned_partitions(context, &spec)?
    };
    let response = CreatedTopic {
        topic_id,
        num_partitions: partitions.len() as i32,
        replication_factor: partitions
            .first()
            .map(|p| p.replicas.len() as i16)
            .unwrap_or(0),
    };
    let record = MetadataRecord::CreateTopic {
        name: spec.name,
        topic_id,
        partitions,
        configs: spec.configs,
    };
    Ok(ControllerResult {
        records: vec![record],
        response,
    })
}

/// The partitions of a manual assignment, checked.
fn assigned_partitions(
    context: ControllerContext<'_>,
    spec: &TopicSpec,
) -> Result<Vec<PartitionState>, TopicError> {
    if spec.num_partitions != -1 || spec.replication_factor != -1 {
        return Err(TopicError::new(
            error_codes::INVALID_REQUEST,
            "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.",
        ));
    }
    let mut assignments = spec.assignments.clone();
    assignments.sort_by_key(|(p, _)| *p);
    let mut states = Vec::with_capacity(assignments.len());
    for (expected, (index, replicas)) in assignments.into_iter().enumerate() {
        if index != expected as i32 || replicas.is_empty() {
            return Err(TopicError::new(
                error_codes::INVALID_REPLICA_ASSIGNMENT,
                "Partitions should be a consecutive 0-based integer sequence with replicas",
            ));
        }
        if let Some(bad) = replicas
            .iter()
            .find(|r| !context.image.brokers.contains_key(r))
        {
            return Err(TopicError::new(
                error_codes::INVALID_REPLICA_ASSIGNMENT,
                format!("Replica {bad} is not a live broker"),
            ));
        }
        states.push(new_partition(index, replicas));
    }
    Ok(states)
}

/// The partitions of an automatic assignment: count and replication factor
/// from the spec or the broker defaults, replicas from the placer.
fn placed_partitions(
    context: ControllerContext<'_>,
    spec: &TopicSpec,
    topic_id: Uuid,
) -> Result<Vec<PartitionState>, TopicError> {
    let num_partitions = if spec.num_partitions == -1 {
        context.broker_config_i64("num.partitions") as i32
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
        context.broker_config_i64("default.replication.factor") as i16
    } else {
        spec.replication_factor
    };
    if replication_factor <= 0 {
        return Err(TopicError::new(
            error_codes::INVALID_REPLICATION_FACTOR,
            "Replication factor must be larger than 0.",
        ));
    }
    let start = Start::Seed(topic_id.as_u64_pair().0);
    let placed = placement::place(
        context.image,
        0,
        num_partitions,
        replication_factor as usize,
        start,
    )
        .map_err(|PlacementError::NotEnoughBrokers { available, .. }| {
            TopicError::new(
                error_codes::INVALID_REPLICATION_FACTOR,
                format!("Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only {available} broker(s) are registered."),
            )
        })?;
    Ok(placed
        .into_iter()
        .zip(0..)
        .map(|(replicas, index)| new_partition(index, replicas))
        .collect())
}

/// A new partition: every replica in sync, the first one leading, epoch 0.
fn new_partition(partition: i32, replicas: Vec<i32>) -> PartitionState {
    PartitionState {
        partition,
        isr: replicas.clone(),
        leader: replicas[0],
        replicas,
        leader_epoch: 0,
        ..PartitionState::default()
    }
}

/// DeleteTopics for one name: the DeleteTopic record, and the deleted id.
pub fn delete_topic(
    context: ControllerContext<'_>,
    name: &str,
) -> Result<ControllerResult<Uuid>, TopicError> {
    let Some(topic) = context.image.topic(name) else {
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
    Ok(ControllerResult {
        records: vec![MetadataRecord::DeleteTopic { topic_id }],
        response: topic_id,
    })
}

/// CreatePartitions for one topic: grows it to `count` partitions, placed by
/// the placer or as `assignments` gives them (one replica list per new
/// partition).
pub fn create_partitions(
    context: ControllerContext<'_>,
    name: &str,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
) -> Result<ControllerResult<()>, TopicError> {
    let Some(topic) = context.image.topic(name) else {
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
    let added = count - current;
    let replica_lists = match assignments {
        Some(list) => checked_assignments(context, added, list)?,
        None => placement::place(
            context.image,
            current,
            added,
            replication_of(topic),
            Start::AfterLeader(topic.partitions.first().map_or(-1, |p| p.replicas[0])),
        )
        .map_err(|PlacementError::NotEnoughBrokers { .. }| {
            TopicError::new(
                error_codes::INVALID_REPLICATION_FACTOR,
                "Not enough live brokers for the topic's replication factor",
            )
        })?,
    };
    let partitions = replica_lists
        .into_iter()
        .zip(current..)
        .map(|(replicas, index)| new_partition(index, replicas))
        .collect();
    Ok(ControllerResult {
        records: vec![MetadataRecord::CreatePartitions {
            topic_id: topic.topic_id,
            partitions,
        }],
        response: (),
    })
}

/// The replication factor new partitions of `topic` get: partition 0's.
fn replication_of(topic: &TopicImage) -> usize {
    topic
        .partitions
        .first()
        .map(|p| p.replicas.len())
        .unwrap_or(1)
        .max(1)
}

/// The first `added` replica lists of a CreatePartitions assignment, checked
/// in order against the registered brokers.
fn checked_assignments(
    context: ControllerContext<'_>,
    added: i32,
    list: Vec<Vec<i32>>,
) -> Result<Vec<Vec<i32>>, TopicError> {
    let mut replica_lists = Vec::with_capacity(added as usize);
    for i in 0..added as usize {
        let Some(replicas) = list.get(i) else {
            return Err(TopicError::new(
                error_codes::INVALID_REPLICA_ASSIGNMENT,
                format!(
                    "Increasing the number of partitions by {added} but {} assignments provided.",
                    list.len()
                ),
            ));
        };
        if replicas.is_empty()
            || replicas
                .iter()
                .any(|r| !context.image.brokers.contains_key(r))
        {
            return Err(TopicError::new(
                error_codes::INVALID_REPLICA_ASSIGNMENT,
                "Unknown broker in the replica assignment",
            ));
        }
        replica_lists.push(replicas.clone());
    }
    Ok(replica_lists)
}
