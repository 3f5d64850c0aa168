//! DescribeQuorum (key 55): the metadata quorum's leader, epoch, voters and
//! observers with their log end offsets, for the one partition of Kafka's
//! `__cluster_metadata` topic. Answered with the active controller's view
//! (forwarded there when this broker is not it), as Kafka's brokers forward
//! it to the controller.

use kafka_protocol::messages::describe_quorum_response::{PartitionData, ReplicaState, TopicData};
use kafka_protocol::messages::{
    BrokerId, DescribeQuorumRequest, DescribeQuorumResponse, RequestHeader,
};
use sluice_meta::ReplicaStatus;

use super::str_bytes;
use crate::controller::Controller;
use crate::error_codes;

/// The metadata log's topic name in Kafka.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

pub async fn describe(
    controller: &Controller,
    _header: &RequestHeader,
    request: DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let status = controller.describe_quorum().await;
    let mut topics = Vec::new();
    for topic in request.topics {
        let known_topic = topic.topic_name.as_str() == METADATA_TOPIC;
        let partitions = topic
            .partitions
            .iter()
            .map(|partition| {
                let index = partition.partition_index;
                if !known_topic || index != 0 {
                    return PartitionData::default()
                        .with_partition_index(index)
                        .with_error_code(error_codes::UNKNOWN_TOPIC_OR_PARTITION);
                }
                match &status {
                    Ok(status) => PartitionData::default()
                        .with_partition_index(0)
                        .with_leader_id(BrokerId(status.leader_id))
                        .with_leader_epoch(status.leader_epoch)
                        .with_high_watermark(status.high_watermark)
                        .with_current_voters(replicas(&status.voters))
                        .with_observers(replicas(&status.observers)),
                    Err(error) => PartitionData::default()
                        .with_partition_index(0)
                        .with_error_code(error.code)
                        .with_error_message(Some(str_bytes(&error.message))),
                }
            })
            .collect();
        topics.push(
            TopicData::default()
                .with_topic_name(topic.topic_name)
                .with_partitions(partitions),
        );
    }
    DescribeQuorumResponse::default()
        .with_error_code(error_codes::NONE)
        .with_topics(topics)
}

fn replicas(replicas: &[ReplicaStatus]) -> Vec<ReplicaState> {
    replicas
        .iter()
        .map(|replica| {
            ReplicaState::default()
                .with_replica_id(BrokerId(replica.replica_id))
                .with_log_end_offset(replica.log_end_offset)
                .with_last_fetch_timestamp(-1)
                .with_last_caught_up_timestamp(-1)
        })
        .collect()
}
