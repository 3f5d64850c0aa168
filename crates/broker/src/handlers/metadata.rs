//! Metadata (key 3), with auto-creation of topics.

use std::collections::BTreeMap;

use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse, RequestHeader};
use sluice_meta::{ClusterImage, TopicImage};
use uuid::Uuid;

use super::{
    str_bytes, topic_name, AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_OPERATIONS_ALL,
    TOPIC_OPERATIONS_ALL,
};
use crate::controller::{self, Controller, TopicSpec};
use crate::coordinator_topics;
use crate::error_codes;
use crate::group::GroupCoordinator;
use crate::metadata_view::MetadataView;
use crate::txn::TransactionCoordinator;

/// The coordinators, for a request naming one of their internal topics.
pub struct Coordinators<'a> {
    pub groups: &'a GroupCoordinator,
    pub txns: &'a TransactionCoordinator,
}

pub async fn handle(
    metadata: &MetadataView,
    controller: &Controller,
    coordinators: Coordinators<'_>,
    header: &RequestHeader,
    request: MetadataRequest,
) -> MetadataResponse {
    let version = header.request_api_version;
    // v0: an empty list means all topics; v1+: null means all, [] means none.
    let all_topics = match &request.topics {
        None => true,
        Some(list) => list.is_empty() && version == 0,
    };
    // Before v4 the request had no flag and auto-creation was allowed.
    let allow_auto_create = (version < 4 || request.allow_auto_topic_creation)
        && metadata.settings().get_bool("auto.create.topics.enable");
    let include_topic_operations = version >= 8 && request.include_topic_authorized_operations;

    let mut topics = Vec::new();
    if all_topics {
        let image = metadata.image();
        for topic in image.topics.values() {
            topics.push(describe_topic(topic, include_topic_operations));
        }
    } else {
        for requested in request.topics.iter().flatten() {
            let entry = match &requested.name {
                Some(name) => {
                    by_name(
                        metadata,
                        controller,
                        &coordinators,
                        name.0.as_str(),
                        allow_auto_create,
                        include_topic_operations,
                    )
                    .await
                }
                None => {
                    let image = metadata.image();
                    match image.topic_by_id(&requested.topic_id) {
                        Some(topic) => describe_topic(topic, include_topic_operations),
                        None => MetadataResponseTopic::default()
                            .with_error_code(error_codes::UNKNOWN_TOPIC_ID)
                            .with_topic_id(requested.topic_id)
                            .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED),
                    }
                }
            };
            topics.push(entry);
        }
    }

    let image = metadata.image();
    MetadataResponse::default()
        .with_brokers(brokers(&image))
        .with_cluster_id(Some(str_bytes(&image.cluster_id)))
        .with_controller_id(BrokerId(metadata.controller_id()))
        .with_topics(topics)
        .with_cluster_authorized_operations(
            if (8..=10).contains(&version) && request.include_cluster_authorized_operations {
                CLUSTER_OPERATIONS_ALL
            } else {
                AUTHORIZED_OPERATIONS_OMITTED
            },
        )
}

async fn by_name(
    metadata: &MetadataView,
    controller: &Controller,
    coordinators: &Coordinators<'_>,
    name: &str,
    allow_auto_create: bool,
    include_operations: bool,
) -> MetadataResponseTopic {
    let error = |code: i16| {
        MetadataResponseTopic::default()
            .with_name(Some(topic_name(name)))
            .with_error_code(code)
            .with_topic_authorized_operations(AUTHORIZED_OPERATIONS_OMITTED)
    };
    if let Some(topic) = metadata.image().topic(name) {
        return describe_topic(topic, include_operations);
    }
    if controller::validate_topic_name(name).is_err() {
        return error(error_codes::INVALID_TOPIC_EXCEPTION);
    }
    if !allow_auto_create {
        return error(error_codes::UNKNOWN_TOPIC_OR_PARTITION);
    }
    let internal = coordinator_topics::ensure_by_name(
        controller,
        coordinators.groups,
        coordinators.txns,
        name,
    )
    .await;
    if let Some(created) = internal {
        // As Kafka: an internal topic that cannot be created yet (too few
        // brokers for its replication factor) is COORDINATOR_NOT_AVAILABLE.
        if let Err(message) = created {
            tracing::warn!(topic = name, %message, "creating an internal topic failed");
            return error(error_codes::COORDINATOR_NOT_AVAILABLE);
        }
        return match metadata.image().topic(name) {
            Some(topic) => describe_topic(topic, include_operations),
            None => error(error_codes::LEADER_NOT_AVAILABLE),
        };
    }
    let spec = TopicSpec {
        name: name.to_string(),
        num_partitions: -1,
        replication_factor: -1,
        assignments: Vec::new(),
        configs: BTreeMap::new(),
    };
    match controller.create_topic(spec, false).await {
        Ok(_) => {}
        // Raced with another creation: fine, describe it below.
        Err(e) if e.code == error_codes::TOPIC_ALREADY_EXISTS => {}
        Err(e) => {
            tracing::warn!(topic = name, error = %e.message, "auto-creation failed");
            return error(if e.code == error_codes::INVALID_TOPIC_EXCEPTION {
                e.code
            } else {
                error_codes::LEADER_NOT_AVAILABLE
            });
        }
    }
    match metadata.image().topic(name) {
        Some(topic) => describe_topic(topic, include_operations),
        None => error(error_codes::LEADER_NOT_AVAILABLE),
    }
}

fn brokers(image: &ClusterImage) -> Vec<MetadataResponseBroker> {
    image
        .brokers
        .values()
        .filter(|b| !b.fenced)
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.node_id))
                .with_host(str_bytes(&b.host))
                .with_port(b.port as i32)
                .with_rack(b.rack.as_deref().map(str_bytes))
        })
        .collect()
}

/// One topic's entry: every partition 0..n-1 with leader, epoch, replicas, ISR.
pub fn describe_topic(topic: &TopicImage, include_operations: bool) -> MetadataResponseTopic {
    let partitions = topic
        .partitions
        .iter()
        .map(|p| {
            MetadataResponsePartition::default()
                .with_error_code(if p.leader < 0 {
                    error_codes::LEADER_NOT_AVAILABLE
                } else {
                    error_codes::NONE
                })
                .with_partition_index(p.partition)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().copied().map(BrokerId).collect())
                .with_isr_nodes(p.isr.iter().copied().map(BrokerId).collect())
                .with_offline_replicas(Vec::new())
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(error_codes::NONE)
        .with_name(Some(topic_name(&topic.name)))
        .with_topic_id(topic.topic_id)
        .with_is_internal(topic.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(if include_operations {
            TOPIC_OPERATIONS_ALL
        } else {
            AUTHORIZED_OPERATIONS_OMITTED
        })
}

/// A zero UUID means "no topic id" in Kafka's protocol.
pub fn is_zero_uuid(id: &Uuid) -> bool {
    id.is_nil()
}
