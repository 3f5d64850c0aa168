//! The offset APIs: OffsetCommit (8), OffsetFetch (9), OffsetDelete (47).
//! Offsets are records in `__consumer_offsets`; a commit is answered once it
//! is durable.

use bytes::Buf;
use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest,
    OffsetDeleteResponse, OffsetFetchRequest, OffsetFetchResponse, RequestHeader,
};
use kafka_protocol::protocol::Decodable;
use sluice_meta::ClusterImage;

use super::{str_bytes, topic_name};
use crate::clock::now_ms;
use crate::error_codes;
use crate::errors::code_of;
use crate::group::state::{CommittedOffset, Group};
use crate::group::GroupCoordinator;
use crate::metadata_view::MetadataView;
use crate::txn::TransactionCoordinator;

fn partition_exists(image: &ClusterImage, topic: &str, partition: i32) -> bool {
    image
        .topic(topic)
        .is_some_and(|t| partition >= 0 && (partition as usize) < t.partitions.len())
}

pub async fn commit(
    metadata: &MetadataView,
    groups: &Arc<GroupCoordinator>,
    header: &RequestHeader,
    request: OffsetCommitRequest,
) -> OffsetCommitResponse {
    let version = header.request_api_version;
    let group = request.group_id.0.as_str().to_string();
    let image = metadata.image();
    let now = now_ms();
    let metadata_max = groups.config.metadata_bytes_max;
    // (topic index, partition index, code) for every requested partition;
    // NONE ones are committed together and get the commit's code.
    let mut codes: Vec<Vec<i16>> = Vec::with_capacity(request.topics.len());
    let mut offsets = Vec::new();
    let ready = code_of(&groups.check_ready(&group));
    for topic in &request.topics {
        let name = topic.name.0.as_str();
        let mut topic_codes = Vec::with_capacity(topic.partitions.len());
        for partition in &topic.partitions {
            let metadata = partition
                .committed_metadata
                .as_ref()
                .map(|m| m.as_str())
                .unwrap_or("");
            let code = if ready != error_codes::NONE {
                ready
            } else if !partition_exists(&image, name, partition.partition_index) {
                error_codes::UNKNOWN_TOPIC_OR_PARTITION
            } else if metadata.len() > metadata_max {
                error_codes::OFFSET_METADATA_TOO_LARGE
            } else {
                offsets.push((
                    (name.to_string(), partition.partition_index),
                    CommittedOffset {
                        offset: partition.committed_offset,
                        leader_epoch: if version >= 6 {
                            partition.committed_leader_epoch
                        } else {
                            -1
                        },
                        metadata: metadata.to_string(),
                        commit_timestamp_ms: now,
                    },
                ));
                error_codes::NONE
            };
            topic_codes.push(code);
        }
        codes.push(topic_codes);
    }
    let commit_code = if ready != error_codes::NONE {
        ready
    } else {
        let instance = request
            .group_instance_id
            .as_ref()
            .filter(|_| version >= 7)
            .map(|s| s.as_str());
        let member_id = if version >= 1 {
            request.member_id.as_str()
        } else {
            ""
        };
        let committed = groups
            .commit(
                &group,
                member_id,
                instance,
                request.generation_id_or_member_epoch,
                version,
                offsets,
            )
            .await;
        code_of(&committed)
    };
    let topics = request
        .topics
        .iter()
        .zip(codes)
        .map(|(topic, topic_codes)| {
            OffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .zip(topic_codes)
                        .map(|(p, code)| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(if code == error_codes::NONE {
                                    commit_code
                                } else {
                                    code
                                })
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's answer: (top-level code, topics with partitions).
type Fetched = (i16, Vec<(String, Vec<(i32, i64, i32, String, i16)>)>);

fn fetch_group(
    groups: &Arc<GroupCoordinator>,
    txns: &TransactionCoordinator,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Fetched {
    let ready = code_of(&groups.check_ready(group));
    if ready != error_codes::NONE {
        let topics = wanted
            .unwrap_or_default()
            .into_iter()
            .map(|(topic, partitions)| {
                (
                    topic,
                    partitions
                        .into_iter()
                        .map(|p| (p, -1, -1, String::new(), ready))
                        .collect(),
                )
            })
            .collect();
        return (ready, topics);
    }
    let topics = groups
        .fetch_offsets(group, wanted)
        .into_iter()
        .map(|(topic, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(p, offset)| match offset {
                    // KIP-447: a transaction's offsets are still pending.
                    _ if require_stable && txns.has_pending_offsets(group, &topic, p) => (
                        p,
                        -1,
                        -1,
                        String::new(),
                        error_codes::UNSTABLE_OFFSET_COMMIT,
                    ),
                    Some(o) => (p, o.offset, o.leader_epoch, o.metadata, error_codes::NONE),
                    None => (p, -1, -1, String::new(), error_codes::NONE),
                })
                .collect();
            (topic, partitions)
        })
        .collect();
    (error_codes::NONE, topics)
}

pub async fn fetch(
    groups: &Arc<GroupCoordinator>,
    txns: &TransactionCoordinator,
    header: &RequestHeader,
    request: OffsetFetchRequest,
) -> OffsetFetchResponse {
    let version = header.request_api_version;
    let epoch = |e: i32| if version >= 5 { e } else { -1 };
    if version >= 8 {
        let groups = request
            .groups
            .into_iter()
            .map(|g| {
                let wanted = g.topics.map(|topics| {
                    topics
                        .into_iter()
                        .map(|t| (t.name.0.as_str().to_string(), t.partition_indexes))
                        .collect()
                });
                let (code, topics) = fetch_group(
                    groups,
                    txns,
                    g.group_id.0.as_str(),
                    wanted,
                    request.require_stable,
                );
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_error_code(code)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(topic, partitions)| {
                                OffsetFetchResponseTopics::default()
                                    .with_name(topic_name(&topic))
                                    .with_partitions(
                                        partitions
                                            .into_iter()
                                            .map(|(p, offset, leader_epoch, metadata, code)| {
                                                OffsetFetchResponsePartitions::default()
                                                    .with_partition_index(p)
                                                    .with_committed_offset(offset)
                                                    .with_committed_leader_epoch(leader_epoch)
                                                    .with_metadata(Some(str_bytes(&metadata)))
                                                    .with_error_code(code)
                                            })
                                            .collect(),
                                    )
                            })
                            .collect(),
                    )
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = match request.topics {
        Some(topics) => Some(
            topics
                .into_iter()
                .map(|t| (t.name.0.as_str().to_string(), t.partition_indexes))
                .collect(),
        ),
        // v1 has no null; an empty list there means nothing.
        None if version < 2 => Some(Vec::new()),
        None => None,
    };
    let (code, topics) = fetch_group(
        groups,
        txns,
        request.group_id.0.as_str(),
        wanted,
        request.require_stable,
    );
    let mut response = OffsetFetchResponse::default().with_topics(
        topics
            .into_iter()
            .map(|(topic, partitions)| {
                OffsetFetchResponseTopic::default()
                    .with_name(topic_name(&topic))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(p, offset, leader_epoch, metadata, code)| {
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(offset)
                                    .with_committed_leader_epoch(epoch(leader_epoch))
                                    .with_metadata(Some(str_bytes(&metadata)))
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    );
    if version >= 2 {
        response.error_code = code;
    }
    response
}

/// Whether any member of a consumer group subscribes to `topic` (an
/// undecodable subscription counts as subscribed, as in Kafka).
fn subscribed(group: &Group, topic: &str) -> bool {
    if group.protocol_type.as_deref() != Some("consumer") {
        return false;
    }
    let protocol = group.protocol_name.clone().unwrap_or_default();
    group.members().any(|member| {
        let mut bytes = member.metadata(&protocol);
        if bytes.remaining() < 2 {
            return true;
        }
        let version = bytes.get_i16();
        match ConsumerProtocolSubscription::decode(&mut bytes, version) {
            Ok(subscription) => subscription.topics.iter().any(|t| t.as_str() == topic),
            Err(_) => true,
        }
    })
}

pub async fn delete(
    metadata: &MetadataView,
    groups: &Arc<GroupCoordinator>,
    _header: &RequestHeader,
    request: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let group = request.group_id.0.as_str().to_string();
    if let Err(error) = groups.check_ready(&group) {
        return OffsetDeleteResponse::default().with_error_code(error.code());
    }
    let image = metadata.image();
    let mut known = Vec::new();
    for topic in &request.topics {
        for partition in &topic.partitions {
            if partition_exists(&image, topic.name.0.as_str(), partition.partition_index) {
                known.push((topic.name.0.as_str().to_string(), partition.partition_index));
            }
        }
    }
    let codes = match groups.delete_offsets(&group, &known, subscribed).await {
        Ok(results) => results.iter().map(code_of).collect::<Vec<i16>>(),
        Err(error) => return OffsetDeleteResponse::default().with_error_code(error.code()),
    };
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            OffsetDeleteResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            let key = (topic.name.0.as_str().to_string(), p.partition_index);
                            let code = known
                                .iter()
                                .position(|k| *k == key)
                                .and_then(|i| codes.get(i).copied())
                                .unwrap_or(error_codes::UNKNOWN_TOPIC_OR_PARTITION);
                            OffsetDeleteResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
