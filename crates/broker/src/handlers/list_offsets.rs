//! ListOffsets (key 2).

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse, RequestHeader};

use crate::error_codes;
use crate::partition::check_leader_epoch;
use crate::replica_manager::ReplicaManager;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;
/// The replica id of a client's ListOffsets.
const CONSUMER_REPLICA_ID: i32 = -1;

pub async fn handle(
    replicas: &ReplicaManager,
    header: &RequestHeader,
    request: ListOffsetsRequest,
) -> ListOffsetsResponse {
    // Kafka answers INVALID_REQUEST for every entry of a partition named more
    // than once in one request.
    let mut seen = std::collections::HashMap::new();
    for topic in &request.topics {
        for p in &topic.partitions {
            *seen
                .entry((topic.name.0.as_str().to_string(), p.partition_index))
                .or_insert(0) += 1;
        }
    }
    let request_isolation = request.isolation_level;
    let mut topics = Vec::new();
    for topic in request.topics {
        let name = topic.name.0.as_str().to_string();
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let mut response = ListOffsetsPartitionResponse::default()
                .with_partition_index(p.partition_index)
                .with_timestamp(-1)
                .with_offset(-1)
                .with_leader_epoch(-1);
            if seen
                .get(&(name.clone(), p.partition_index))
                .copied()
                .unwrap_or(0)
                > 1
            {
                response.error_code = error_codes::INVALID_REQUEST;
                partitions.push(response);
                continue;
            }
            let partition = match replicas.leader_partition(&name, p.partition_index) {
                Ok(partition) => partition,
                Err(code) => {
                    response.error_code = code;
                    partitions.push(response);
                    continue;
                }
            };
            let epoch = partition.leader_epoch();
            let epoch_error = check_leader_epoch(p.current_leader_epoch, epoch);
            if epoch_error != error_codes::NONE {
                response.error_code = epoch_error;
                partitions.push(response);
                continue;
            }
            // Never past what a consumer may read: the high watermark (also
            // the last stable offset while there are no transactions).
            let high_watermark = partition.high_watermark();
            // KIP-207, for clients (replica id -1) as in Kafka's
            // Partition.fetchOffsetForTimestamp: the latest offset, and a
            // timestamp found at or past the high watermark, wait until this
            // leader's high watermark reaches the start of its epoch.
            // Clients older than v5 do not know the code: LEADER_NOT_AVAILABLE
            // (retried too), as Kafka answers them.
            let pending =
                request.replica_id.0 == CONSUMER_REPLICA_ID && partition.offsets_pending();
            let not_available = if header.request_api_version >= 5 {
                error_codes::OFFSET_NOT_AVAILABLE
            } else {
                error_codes::LEADER_NOT_AVAILABLE
            };
            if pending && p.timestamp == LATEST {
                response.error_code = not_available;
                partitions.push(response);
                continue;
            }
            let found: Result<Option<(i64, i64)>, sluice_log::LogError> = match p.timestamp {
                // read_committed (isolation level 1, v2+) answers the last stable offset.
                LATEST if request_isolation == 1 => Ok(Some((partition.last_stable_offset(), -1))),
                LATEST => Ok(Some((high_watermark, -1))),
                EARLIEST | EARLIEST_LOCAL => Ok(Some((partition.log.log_start_offset(), -1))),
                LATEST_TIERED => Ok(Some((-1, -1))),
                MAX_TIMESTAMP => partition.log.max_timestamp_offset(high_watermark),
                t if t >= 0 => partition.log.offset_for_timestamp(t, high_watermark),
                _ => {
                    response.error_code = error_codes::INVALID_REQUEST;
                    partitions.push(response);
                    continue;
                }
            };
            match found {
                Ok(Some((offset, timestamp))) => {
                    response.offset = offset;
                    response.timestamp = timestamp;
                    // leader_epoch exists from v4 on; encoding refuses it earlier.
                    if header.request_api_version >= 4 && offset >= 0 {
                        response.leader_epoch = epoch;
                    }
                }
                Ok(None) if pending && (p.timestamp == MAX_TIMESTAMP || p.timestamp >= 0) => {
                    response.error_code = not_available;
                }
                Ok(None) => {}
                Err(error) => response.error_code = error_codes::from_log_error(&error),
            }
            partitions.push(response);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}
