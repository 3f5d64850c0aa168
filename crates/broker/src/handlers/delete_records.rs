//! DeleteRecords (key 21): moves the log start offset of partitions.

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse, RequestHeader};

use crate::error_codes;
use crate::replica_manager::ReplicaManager;

/// Offset -1 in a DeleteRecords request: the high watermark.
const HIGH_WATERMARK: i64 = -1;

pub async fn handle(
    replicas: &Arc<ReplicaManager>,
    _header: &RequestHeader,
    request: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut topics = Vec::new();
    let mut moved = false;
    for topic in request.topics {
        let name = topic.name.0.as_str().to_string();
        let mut partitions = Vec::new();
        for p in topic.partitions {
            let mut result = DeleteRecordsPartitionResult::default()
                .with_partition_index(p.partition_index)
                .with_low_watermark(-1);
            match replicas.leader_partition(&name, p.partition_index) {
                Err(code) => result.error_code = code,
                Ok(partition) => {
                    let high_watermark = partition.high_watermark();
                    let offset = if p.offset == HIGH_WATERMARK {
                        high_watermark
                    } else {
                        p.offset
                    };
                    if offset < 0 || offset > high_watermark {
                        result.error_code = error_codes::OFFSET_OUT_OF_RANGE;
                    } else {
                        let log = partition.log.clone();
                        let deleted = tokio::task::spawn_blocking(move || {
                            log.delete_records_before(offset, high_watermark)
                        })
                        .await;
                        match deleted {
                            Ok(Ok(low)) => {
                                result.low_watermark = low;
                                moved = true;
                            }
                            Ok(Err(error)) => {
                                result.error_code = error_codes::from_log_error(&error)
                            }
                            Err(_) => result.error_code = error_codes::UNKNOWN_SERVER_ERROR,
                        }
                    }
                }
            }
            partitions.push(result);
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(topic.name)
                .with_partitions(partitions),
        );
    }
    if moved {
        // The new log start offsets survive a restart.
        let replicas = replicas.clone();
        if let Ok(Err(error)) =
            tokio::task::spawn_blocking(move || replicas.write_checkpoints()).await
        {
            tracing::warn!(%error, "writing checkpoints after DeleteRecords failed");
        }
    }
    DeleteRecordsResponse::default().with_topics(topics)
}
