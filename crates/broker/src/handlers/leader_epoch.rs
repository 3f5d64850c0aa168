//! OffsetForLeaderEpoch (key 23). librdkafka asks for exactly v2.

use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse, RequestHeader,
};

use crate::error_codes;
use crate::partition::check_leader_epoch;
use crate::replica_manager::ReplicaManager;

pub async fn handle(
    replicas: &ReplicaManager,
    _header: &RequestHeader,
    request: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let mut topics = Vec::new();
    for topic in request.topics {
        let name = topic.topic.0.as_str().to_string();
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let mut result = EpochEndOffset::default()
                .with_partition(p.partition)
                .with_leader_epoch(-1)
                .with_end_offset(-1);
            match replicas.leader_partition(&name, p.partition) {
                Err(code) => result.error_code = code,
                Ok(partition) => {
                    let current = partition.leader_epoch();
                    let epoch_error = check_leader_epoch(p.current_leader_epoch, current);
                    if epoch_error != error_codes::NONE {
                        result.error_code = epoch_error;
                    } else if p.leader_epoch == current && partition.log.latest_epoch().is_none() {
                        // The current epoch with nothing written yet: it ends at the log end.
                        result.leader_epoch = current;
                        result.end_offset = partition.log.log_end_offset();
                    } else {
                        let (epoch, end_offset) =
                            partition.log.end_offset_for_epoch(p.leader_epoch);
                        if epoch < 0 && p.leader_epoch <= current {
                            result.leader_epoch = current;
                            result.end_offset = partition.log.log_end_offset();
                        } else {
                            result.leader_epoch = epoch;
                            result.end_offset = end_offset;
                        }
                    }
                }
            }
            partitions.push(result);
        }
        topics.push(
            OffsetForLeaderTopicResult::default()
                .with_topic(topic.topic)
                .with_partitions(partitions),
        );
    }
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}
