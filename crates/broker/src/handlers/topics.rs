//! CreateTopics (key 19) and DeleteTopics (key 20).

use std::collections::BTreeMap;

use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    RequestHeader,
};

use super::{str_bytes, topic_name};
use crate::config::TOPIC_CONFIGS;
use crate::controller::{Controller, TopicSpec};
use crate::error_codes;
use crate::metadata_view::MetadataView;

pub async fn create(
    metadata: &MetadataView,
    controller: &Controller,
    _header: &RequestHeader,
    request: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let mut results = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for topic in request.topics {
        let name = topic.name.0.as_str().to_string();
        let mut result = CreatableTopicResult::default()
            .with_name(topic.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        if !seen.insert(name.clone()) {
            result.error_code = error_codes::INVALID_REQUEST;
            result.error_message = Some(str_bytes(&format!(
                "Create topics request from client contains a duplicate topic: {name}"
            )));
            results.push(result);
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut null_config = None;
        for config in &topic.configs {
            match &config.value {
                Some(value) => {
                    configs.insert(config.name.as_str().to_string(), value.as_str().to_string());
                }
                None => null_config = Some(config.name.as_str().to_string()),
            }
        }
        if let Some(key) = null_config {
            result.error_code = error_codes::INVALID_CONFIG;
            result.error_message = Some(str_bytes(&format!(
                "Null value not supported for topic configs: {key}"
            )));
            results.push(result);
            continue;
        }
        let spec = TopicSpec {
            name: name.clone(),
            num_partitions: topic.num_partitions,
            replication_factor: topic.replication_factor,
            assignments: topic
                .assignments
                .iter()
                .map(|a| {
                    (
                        a.partition_index,
                        a.broker_ids.iter().map(|b| b.0).collect(),
                    )
                })
                .collect(),
            configs: configs.clone(),
        };
        match controller.create_topic(spec, request.validate_only).await {
            Ok(created) => {
                result.topic_id = created.topic_id;
                result.num_partitions = created.num_partitions;
                result.replication_factor = created.replication_factor;
                let dynamic = metadata.dynamic_configs();
                result.configs = Some(
                    TOPIC_CONFIGS
                        .iter()
                        .filter_map(|def| {
                            let (value, source) = metadata
                                .settings()
                                .topic_value(&dynamic, &configs, def.name)?;
                            Some(
                                CreatableTopicConfigs::default()
                                    .with_name(str_bytes(def.name))
                                    .with_value(Some(str_bytes(&value)))
                                    .with_read_only(false)
                                    .with_config_source(source as i8)
                                    .with_is_sensitive(false),
                            )
                        })
                        .collect(),
                );
            }
            Err(e) => {
                result.error_code = e.code;
                result.error_message = Some(str_bytes(&e.message));
            }
        }
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub async fn delete(
    metadata: &MetadataView,
    controller: &Controller,
    header: &RequestHeader,
    request: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let mut responses = Vec::new();
    // v0-5 name topics in topic_names; v6+ in topics (by name or by id).
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = Vec::new();
    if header.request_api_version < 6 {
        for name in &request.topic_names {
            targets.push((Some(name.0.as_str().to_string()), uuid::Uuid::nil()));
        }
    } else {
        for topic in &request.topics {
            targets.push((
                topic.name.as_ref().map(|n| n.0.as_str().to_string()),
                topic.topic_id,
            ));
        }
    }
    for (name, topic_id) in targets {
        let mut result = DeletableTopicResult::default();
        let resolved = match name {
            Some(name) => Some(name),
            None => metadata
                .image()
                .topic_by_id(&topic_id)
                .map(|t| t.name.clone()),
        };
        match resolved {
            None => {
                result.topic_id = topic_id;
                result.error_code = error_codes::UNKNOWN_TOPIC_ID;
                result.error_message = Some(str_bytes("This server does not host this topic ID."));
            }
            Some(name) => {
                result.name = Some(topic_name(&name));
                match controller.delete_topic(&name).await {
                    Ok(id) => result.topic_id = id,
                    Err(e) => {
                        result.topic_id = topic_id;
                        result.error_code = e.code;
                        result.error_message = Some(str_bytes(&e.message));
                    }
                }
            }
        }
        responses.push(result);
    }
    DeleteTopicsResponse::default().with_responses(responses)
}
