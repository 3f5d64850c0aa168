//! DescribeConfigs (key 32): every config with value, source, synonyms, type
//! and documentation, for topics and for this broker.

use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse, RequestHeader};

use super::str_bytes;
use crate::config::{ConfigSource, ConfigType, TOPIC_CONFIGS};
use crate::error_codes;
use crate::metadata_view::MetadataView;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

pub async fn describe(
    metadata: &MetadataView,
    header: &RequestHeader,
    request: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let version = header.request_api_version;
    let include_synonyms = request.include_synonyms;
    let include_documentation = version >= 3 && request.include_documentation;
    let dynamic = metadata.dynamic_configs();
    let mut results = Vec::new();
    for resource in request.resources {
        let name = resource.resource_name.as_str().to_string();
        let wanted = |key: &str| {
            resource
                .configuration_keys
                .as_ref()
                .map(|keys| keys.iter().any(|k| k.as_str() == key))
                .unwrap_or(true)
        };
        let mut result = DescribeConfigsResult::default()
            .with_resource_type(resource.resource_type)
            .with_resource_name(resource.resource_name.clone());
        match resource.resource_type {
            RESOURCE_TOPIC => {
                let image = metadata.image();
                let Some(topic) = image.topic(&name) else {
                    result.error_code = error_codes::UNKNOWN_TOPIC_OR_PARTITION;
                    result.error_message = Some(str_bytes(&format!("Topic {name} does not exist")));
                    results.push(result);
                    continue;
                };
                for def in TOPIC_CONFIGS.iter().filter(|d| wanted(d.name)) {
                    let Some((value, source)) =
                        metadata
                            .settings()
                            .topic_value(&dynamic, &topic.configs, def.name)
                    else {
                        continue;
                    };
                    let mut synonyms = Vec::new();
                    if include_synonyms {
                        if let Some(v) = topic.configs.get(def.name) {
                            synonyms.push(synonym(def.name, v, ConfigSource::Topic));
                        }
                        synonyms.extend(broker_synonyms(metadata, &dynamic, def.broker_synonym));
                    }
                    result.configs.push(
                        DescribeConfigsResourceResult::default()
                            .with_name(str_bytes(def.name))
                            .with_value(Some(str_bytes(&value)))
                            .with_read_only(false)
                            .with_config_source(source as i8)
                            .with_is_sensitive(false)
                            .with_synonyms(synonyms)
                            .with_config_type(def.config_type as i8)
                            .with_documentation(
                                include_documentation.then(|| str_bytes(def.documentation)),
                            ),
                    );
                }
            }
            RESOURCE_BROKER => {
                if !name.is_empty() && name != metadata.node_id().to_string() {
                    result.error_code = error_codes::INVALID_REQUEST;
                    result.error_message = Some(str_bytes(&format!(
                        "Unexpected broker id, expected {} or empty string, but received {name}",
                        metadata.node_id()
                    )));
                    results.push(result);
                    continue;
                }
                for def in crate::config::all_broker_configs()
                    .into_iter()
                    .filter(|d| wanted(d.name))
                {
                    let (value, source) = metadata.settings().broker_value(&dynamic, def.name);
                    // Kafka: a password is never shown; a null default is a null value.
                    let sensitive = def.config_type == ConfigType::Password;
                    let null_default = source == ConfigSource::Default
                        && crate::config::broker_default_is_null(def.name);
                    let value = (!sensitive && !null_default).then(|| str_bytes(&value));
                    let synonyms = if include_synonyms {
                        broker_synonyms(metadata, &dynamic, def.name)
                    } else {
                        Vec::new()
                    };
                    result.configs.push(
                        DescribeConfigsResourceResult::default()
                            .with_name(str_bytes(def.name))
                            .with_value(value)
                            .with_read_only(def.read_only)
                            .with_config_source(source as i8)
                            .with_is_sensitive(sensitive)
                            .with_synonyms(synonyms)
                            .with_config_type(def.config_type as i8)
                            .with_documentation(
                                include_documentation.then(|| str_bytes(def.documentation)),
                            ),
                    );
                }
            }
            other => {
                result.error_code = error_codes::INVALID_REQUEST;
                result.error_message =
                    Some(str_bytes(&format!("Unsupported resource type {other}")));
            }
        }
        results.push(result);
    }
    DescribeConfigsResponse::default().with_results(results)
}

/// A broker config's synonyms, most specific first (Kafka's order).
fn broker_synonyms(
    metadata: &MetadataView,
    dynamic: &crate::config::DynamicBrokerConfigs,
    name: &str,
) -> Vec<DescribeConfigsSynonym> {
    let mut synonyms = Vec::new();
    if let Some(v) = dynamic.node.get(name) {
        synonyms.push(synonym(name, v, ConfigSource::DynamicBroker));
    }
    if let Some(v) = dynamic.cluster.get(name) {
        synonyms.push(synonym(name, v, ConfigSource::DynamicDefaultBroker));
    }
    if let Some(v) = metadata.settings().explicit.get(name) {
        synonyms.push(synonym(name, v, ConfigSource::StaticBroker));
    }
    if let Some(def) = crate::config::broker_config_def(name) {
        if def.config_type != ConfigType::Password && !crate::config::broker_default_is_null(name) {
            synonyms.push(synonym(name, def.default, ConfigSource::Default));
        }
    }
    synonyms
}

fn synonym(name: &str, value: &str, source: ConfigSource) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_source(source as i8)
}
