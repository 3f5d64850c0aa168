//! The configuration control manager (Kafka's ConfigurationControlManager):
//! AlterConfigs and IncrementalAlterConfigs as pure decisions against an
//! image. Every resulting value is validated before any record is made, so
//! nothing changes on any error.

use std::collections::{BTreeMap, BTreeSet};

use sluice_meta::MetadataRecord;
use uuid::Uuid;

use super::{ControllerContext, ControllerResult, TopicError};
use crate::config::{broker_config_def, topic_config_def, validate_value, ConfigType};
use crate::error_codes;

/// One change requested by AlterConfigs / IncrementalAlterConfigs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConfigOp {
    /// Sets the override.
    Set(String, String),
    /// Deletes the override (back to the inherited value).
    Delete(String),
    /// Adds items to a list config (those not in it yet).
    Append(String, String),
    /// Removes items from a list config.
    Subtract(String, String),
}

impl ConfigOp {
    /// The config name the op changes.
    fn key(&self) -> &str {
        match self {
            ConfigOp::Set(k, _)
            | ConfigOp::Delete(k)
            | ConfigOp::Append(k, _)
            | ConfigOp::Subtract(k, _) => k,
        }
    }
}

/// Which configs a request alters.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum ConfigResource {
    /// A topic's overrides, by topic name.
    Topic(String),
    /// `None`: the cluster-wide default (resource name "").
    Broker(Option<i32>),
}

/// Alters a resource's configs: the records that turn the current overrides
/// into the new ones (none when nothing differs). `replace_all` is the legacy
/// AlterConfigs: the given set becomes the whole set of overrides.
pub fn alter_configs(
    context: ControllerContext<'_>,
    resource: &ConfigResource,
    ops: Vec<ConfigOp>,
    replace_all: bool,
) -> Result<ControllerResult<()>, TopicError> {
    let (current, topic_id) = current_overrides(context, resource)?;
    let mut next = if replace_all {
        BTreeMap::new()
    } else {
        current.clone()
    };
    for op in ops {
        let config_type = config_type_for_change(resource, op.key())?;
        apply_op(context, resource, &mut next, op, config_type)?;
    }
    for (key, value) in &next {
        let config_type = match resource {
            ConfigResource::Topic(_) => topic_config_def(key).map(|d| d.config_type),
            ConfigResource::Broker(_) => broker_config_def(key).map(|d| d.config_type),
        };
        if let Some(config_type) = config_type {
            validate_value(key, config_type, value)
                .map_err(|m| TopicError::new(error_codes::INVALID_CONFIG, m))?;
        }
    }
    Ok(ControllerResult {
        records: difference_records(resource, topic_id, &current, &next),
        response: (),
    })
}

/// The resource's overrides in the image, and its topic id for a topic.
fn current_overrides(
    context: ControllerContext<'_>,
    resource: &ConfigResource,
) -> Result<(BTreeMap<String, String>, Option<Uuid>), TopicError> {
    match resource {
        ConfigResource::Topic(name) => match context.image.topic(name) {
            Some(topic) => Ok((topic.configs.clone(), Some(topic.topic_id))),
            None => Err(TopicError::new(
                error_codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("Topic {name} does not exist"),
            )),
        },
        ConfigResource::Broker(node) => Ok((
            context
                .image
                .broker_configs
                .get(node)
                .cloned()
                .unwrap_or_default(),
            None,
        )),
    }
}

/// The type of a config a request may change on this resource.
fn config_type_for_change(resource: &ConfigResource, key: &str) -> Result<ConfigType, TopicError> {
    match resource {
        ConfigResource::Topic(_) => match topic_config_def(key) {
            Some(def) => Ok(def.config_type),
            None => Err(TopicError::new(
                error_codes::INVALID_CONFIG,
                format!("Unknown topic config name: {key}"),
            )),
        },
        ConfigResource::Broker(_) => match broker_config_def(key) {
            Some(def) if def.read_only => Err(TopicError::new(
                error_codes::INVALID_REQUEST,
                format!("Cannot update these configs dynamically: Set({key})"),
            )),
            Some(def) => Ok(def.config_type),
            None => Err(TopicError::new(
                error_codes::INVALID_CONFIG,
                format!("Unknown broker config name: {key}"),
            )),
        },
    }
}

/// Applies one op to the pending overrides.
fn apply_op(
    context: ControllerContext<'_>,
    resource: &ConfigResource,
    next: &mut BTreeMap<String, String>,
    op: ConfigOp,
    config_type: ConfigType,
) -> Result<(), TopicError> {
    let is_list = config_type == ConfigType::List;
    match op {
        ConfigOp::Set(k, v) => {
            next.insert(k, v);
        }
        ConfigOp::Delete(k) => {
            next.remove(&k);
        }
        ConfigOp::Append(k, _) | ConfigOp::Subtract(k, _) if !is_list => {
            return Err(TopicError::new(
                error_codes::INVALID_CONFIG,
                format!("Config value append/subtract is not allowed for config key: {k}"),
            ));
        }
        ConfigOp::Append(k, v) => {
            let mut items = split_list(&effective_value(context, resource, next, &k));
            for item in split_list(&v) {
                if !items.contains(&item) {
                    items.push(item);
                }
            }
            next.insert(k, items.join(","));
        }
        ConfigOp::Subtract(k, v) => {
            let remove = split_list(&v);
            let items: Vec<String> = split_list(&effective_value(context, resource, next, &k))
                .into_iter()
                .filter(|i| !remove.contains(i))
                .collect();
            next.insert(k, items.join(","));
        }
    }
    Ok(())
}

/// One record per config whose override differs between `current` and
/// `next`, in key order.
fn difference_records(
    resource: &ConfigResource,
    topic_id: Option<Uuid>,
    current: &BTreeMap<String, String>,
    next: &BTreeMap<String, String>,
) -> Vec<MetadataRecord> {
    let keys: BTreeSet<&String> = current.keys().chain(next.keys()).collect();
    keys.into_iter()
        .filter(|key| current.get(*key) != next.get(*key))
        .map(|key| {
            let value = next.get(key).cloned();
            match (resource, topic_id) {
                (ConfigResource::Topic(_), Some(topic_id)) => MetadataRecord::SetTopicConfig {
                    topic_id,
                    key: key.clone(),
                    value,
                },
                _ => MetadataRecord::SetBrokerConfig {
                    node_id: match resource {
                        ConfigResource::Broker(node) => *node,
                        ConfigResource::Topic(_) => None,
                    },
                    key: key.clone(),
                    value,
                },
            }
        })
        .collect()
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
    context: ControllerContext<'_>,
    resource: &ConfigResource,
    pending: &BTreeMap<String, String>,
    key: &str,
) -> String {
    if let Some(v) = pending.get(key) {
        return v.clone();
    }
    let dynamic = context.dynamic_configs();
    match resource {
        ConfigResource::Topic(_) => context
            .settings
            .topic_value(&dynamic, &BTreeMap::new(), key)
            .map(|(v, _)| v)
            .unwrap_or_default(),
        ConfigResource::Broker(_) => context.settings.broker_value(&dynamic, key).0,
    }
}
