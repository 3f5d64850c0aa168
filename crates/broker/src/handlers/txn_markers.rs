//! WriteTxnMarkers (key 27): a transaction coordinator on another broker
//! asks this one to end a producer's transaction on the partitions it leads
//! (Kafka's `ReplicaManager.appendRecords` of marker batches, acks=all).
//! Each marker goes through the one leader append path
//! (`Partition::append_marker`) and is answered once the high watermark
//! passes it: replicated to the ISR, so a failover keeps it.

use std::time::Duration;

use kafka_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use kafka_protocol::messages::{RequestHeader, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use sluice_log::control::Marker;

use crate::clock;
use crate::error_codes;
use crate::group::OFFSETS_TOPIC;
use crate::internal_topic::wait_durable;
use crate::replica_manager::ReplicaManager;
use crate::txn::TransactionCoordinator;

/// How long a marker may wait for the ISR.
const MARKER_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

pub async fn handle(
    replicas: &ReplicaManager,
    txns: &TransactionCoordinator,
    _header: &RequestHeader,
    request: WriteTxnMarkersRequest,
) -> WriteTxnMarkersResponse {
    let mut results = Vec::with_capacity(request.markers.len());
    for marker in request.markers {
        let kind = if marker.transaction_result {
            Marker::Commit
        } else {
            Marker::Abort
        };
        let mut written = Vec::new();
        let mut topics = Vec::with_capacity(marker.topics.len());
        for topic in &marker.topics {
            let name = topic.name.0.as_str();
            let mut partitions = Vec::with_capacity(topic.partition_indexes.len());
            for index in &topic.partition_indexes {
                let code = match replicas.leader_partition(name, *index) {
                    Err(code) => code,
                    Ok(partition) => match partition.append_marker(
                        marker.producer_id.0,
                        marker.producer_epoch,
                        kind,
                        marker.coordinator_epoch,
                        clock::now_ms(),
                    ) {
                        Ok(appended) => {
                            written.push((topics.len(), partitions.len(), partition, appended));
                            error_codes::NONE
                        }
                        Err(error) => {
                            tracing::warn!(topic = name, partition = index, %error,
                                "writing a transaction marker failed");
                            error.code()
                        }
                    },
                };
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(*index)
                        .with_error_code(code),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(topic.name.clone())
                    .with_partitions(partitions),
            );
        }
        // acks=all: each written marker is answered once replicated.
        let mut offsets_partitions = Vec::new();
        for (topic, slot, partition, appended) in written {
            let durable = wait_durable(
                &partition,
                appended.offset,
                appended.leader_epoch,
                MARKER_WRITE_TIMEOUT,
            );
            if let Err(error) = durable.await {
                let code = match error {
                    crate::errors::KafkaError::RequestTimedOut => error_codes::REQUEST_TIMED_OUT,
                    _ => error_codes::NOT_LEADER_OR_FOLLOWER,
                };
                topics[topic].partitions[slot].error_code = code;
            } else if partition.topic == OFFSETS_TOPIC {
                offsets_partitions.push(partition.index);
            }
        }
        // Kafka's GroupCoordinator.onTransactionCompleted: the producer's
        // transactional offsets committed here (TxnOffsetCommit reached this
        // broker, the groups' coordinator) become visible or are dropped.
        if !offsets_partitions.is_empty() {
            txns.complete_offsets_here(
                marker.producer_id.0,
                kind == Marker::Commit,
                &offsets_partitions,
            );
        }
        results.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(marker.producer_id)
                .with_topics(topics),
        );
    }
    WriteTxnMarkersResponse::default().with_markers(results)
}
