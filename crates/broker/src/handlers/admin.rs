//! AlterConfigs (key 33), IncrementalAlterConfigs (key 44),
//! CreatePartitions (key 37) and ElectLeaders (key 43).

use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncrementalResourceResponse;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, CreatePartitionsRequest, CreatePartitionsResponse,
    ElectLeadersRequest, ElectLeadersResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, RequestHeader, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::str_bytes;
use crate::controller::election::{ElectionType, PartitionElection};
use crate::controller::{ConfigOp, ConfigResource, Controller, TopicError};
use crate::error_codes;
use crate::metadata_view::MetadataView;

const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

fn resource(
    metadata: &MetadataView,
    resource_type: i8,
    name: &StrBytes,
) -> Result<ConfigResource, TopicError> {
    let name = name.as_str();
    match resource_type {
        RESOURCE_TOPIC => Ok(ConfigResource::Topic(name.to_string())),
        RESOURCE_BROKER if name.is_empty() => Ok(ConfigResource::Broker(None)),
        RESOURCE_BROKER => match name.parse::<i32>() {
            Ok(id) if id == metadata.node_id() => Ok(ConfigResource::Broker(Some(id))),
            _ => Err(TopicError {
                code: error_codes::INVALID_REQUEST,
                message: format!(
                    "Unexpected broker id, expected {} or empty string, but received {name}",
                    metadata.node_id()
                ),
            }),
        },
        other => Err(TopicError {
            code: error_codes::INVALID_REQUEST,
            message: format!("Unsupported resource type {other}"),
        }),
    }
}

/// Result code and message.
fn outcome(result: Result<(), TopicError>) -> (i16, Option<StrBytes>) {
    match result {
        Ok(()) => (error_codes::NONE, None),
        Err(e) => (e.code, Some(str_bytes(&e.message))),
    }
}

pub async fn alter_configs(
    metadata: &MetadataView,
    controller: &Controller,
    _header: &RequestHeader,
    request: AlterConfigsRequest,
) -> AlterConfigsResponse {
    let mut responses = Vec::new();
    for r in request.resources {
        let result = match resource(metadata, r.resource_type, &r.resource_name) {
            Err(e) => Err(e),
            Ok(target) => {
                let ops = r
                    .configs
                    .iter()
                    .map(|c| match &c.value {
                        Some(v) => {
                            ConfigOp::Set(c.name.as_str().to_string(), v.as_str().to_string())
                        }
                        None => ConfigOp::Delete(c.name.as_str().to_string()),
                    })
                    .collect();
                controller
                    .alter_configs(target, ops, true, request.validate_only)
                    .await
            }
        };
        let (code, message) = outcome(result);
        responses.push(
            AlterConfigsResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name),
        );
    }
    AlterConfigsResponse::default().with_responses(responses)
}

pub async fn incremental_alter_configs(
    metadata: &MetadataView,
    controller: &Controller,
    _header: &RequestHeader,
    request: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::new();
    for r in request.resources {
        let mut ops = Vec::new();
        let mut bad = None;
        for c in &r.configs {
            let name = c.name.as_str().to_string();
            let value = c.value.as_ref().map(|v| v.as_str().to_string());
            let op = match (c.config_operation, value) {
                (OP_SET, Some(v)) => ConfigOp::Set(name, v),
                (OP_DELETE, _) => ConfigOp::Delete(name),
                (OP_APPEND, Some(v)) => ConfigOp::Append(name, v),
                (OP_SUBTRACT, Some(v)) => ConfigOp::Subtract(name, v),
                (OP_SET | OP_APPEND | OP_SUBTRACT, None) => {
                    bad = Some(TopicError {
                        code: error_codes::INVALID_REQUEST,
                        message: format!("Null value not supported for: {name}"),
                    });
                    break;
                }
                (other, _) => {
                    bad = Some(TopicError {
                        code: error_codes::INVALID_REQUEST,
                        message: format!("Unknown config operation {other}"),
                    });
                    break;
                }
            };
            ops.push(op);
        }
        let result = match (bad, resource(metadata, r.resource_type, &r.resource_name)) {
            (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(target)) => {
                controller
                    .alter_configs(target, ops, false, request.validate_only)
                    .await
            }
        };
        let (code, message) = outcome(result);
        responses.push(
            IncrementalResourceResponse::default()
                .with_error_code(code)
                .with_error_message(message)
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name),
        );
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

pub async fn create_partitions(
    controller: &Controller,
    _header: &RequestHeader,
    request: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::new();
    for topic in request.topics {
        let assignments = topic.assignments.as_ref().map(|list| {
            list.iter()
                .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                .collect()
        });
        let result = controller
            .create_partitions(
                topic.name.0.as_str(),
                topic.count,
                assignments,
                request.validate_only,
            )
            .await;
        let (code, message) = outcome(result);
        results.push(
            CreatePartitionsTopicResult::default()
                .with_name(topic.name)
                .with_error_code(code)
                .with_error_message(message),
        );
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// ElectLeaders (key 43): preferred or unclean leader election, decided by
/// the active controller (forwarded there). `TopicPartitions` null means
/// every partition; then only the partitions that needed an election are
/// answered, as Kafka does.
pub async fn elect_leaders(
    controller: &Controller,
    header: &RequestHeader,
    request: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let targets: Option<Vec<(String, i32)>> = request.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|topic| {
                let name = topic.topic.as_str().to_string();
                topic
                    .partitions
                    .iter()
                    .map(move |partition| (name.clone(), *partition))
            })
            .collect()
    });
    // v0 has no ElectionType: it is preferred election.
    let election_type = match header.request_api_version {
        0 => 0,
        _ => request.election_type,
    };
    let outcomes = match ElectionType::from_wire(election_type) {
        None => Err(TopicError::new(
            error_codes::INVALID_REQUEST,
            format!("Unknown election type {election_type}"),
        )),
        Some(election) => match &targets {
            Some(targets) if targets.is_empty() => Ok(Vec::new()),
            _ => controller.elect_leaders(election, targets.clone()).await,
        },
    };
    let (top_error, outcomes) = match outcomes {
        Ok(outcomes) => (error_codes::NONE, outcomes),
        // Every requested partition gets the error; a request for every
        // partition has only the top-level code to carry it.
        Err(error) => {
            let code = match targets {
                None => error.code,
                Some(_) => error_codes::NONE,
            };
            let failed = targets
                .unwrap_or_default()
                .into_iter()
                .map(|(topic, partition)| PartitionElection {
                    topic,
                    partition,
                    error: Some(error.clone()),
                })
                .collect();
            (code, failed)
        }
    };
    let mut results: Vec<ReplicaElectionResult> = Vec::new();
    for outcome in outcomes {
        let (code, message) = outcome_of(outcome.error);
        let partition = PartitionResult::default()
            .with_partition_id(outcome.partition)
            .with_error_code(code)
            .with_error_message(message);
        match results
            .iter_mut()
            .find(|result| result.topic.as_str() == outcome.topic)
        {
            Some(result) => result.partition_result.push(partition),
            None => results.push(
                ReplicaElectionResult::default()
                    .with_topic(TopicName(str_bytes(&outcome.topic)))
                    .with_partition_result(vec![partition]),
            ),
        }
    }
    ElectLeadersResponse::default()
        .with_error_code(top_error)
        .with_replica_election_results(results)
}

/// Code and message of one partition's election.
fn outcome_of(error: Option<TopicError>) -> (i16, Option<StrBytes>) {
    match error {
        None => (error_codes::NONE, None),
        Some(error) => (error.code, Some(str_bytes(&error.message))),
    }
}
