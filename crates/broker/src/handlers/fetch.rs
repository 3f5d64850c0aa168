//! Fetch (key 1): translates the request into the replica manager's fetch
//! read path (`replica_fetch`: whole batches, long poll on the high
//! watermark, KIP-74 limits) and its reads into the response, every
//! requested partition in request order.

use std::time::Duration;

use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, EpochEndOffset, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ProducerId, RequestHeader, TopicName,
};
use uuid::Uuid;

use super::topic_name;
use crate::error_codes;
use crate::metadata_view::MetadataView;
use crate::replica_fetch::{FetchParams, FetchedRecords, PartitionFetch, PartitionRead};
use crate::replica_manager::ReplicaManager;
use bytes::Bytes;
use sluice_log::FileRecords;

/// Upper bound on how long one fetch may wait, whatever the client asks.
const FETCH_WAIT_MS_MAX: u64 = 30_000;

pub async fn handle(
    metadata: &MetadataView,
    replicas: &ReplicaManager,
    header: &RequestHeader,
    request: FetchRequest,
) -> FetchAnswer {
    let (names, requested) = requested_partitions(metadata, header.request_api_version, &request);
    let max_wait =
        Duration::from_millis((request.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MS_MAX));
    // The broker's `fetch.max.bytes` bounds what one response can hold.
    let broker_max_bytes = metadata.broker_config_i64("fetch.max.bytes").max(1) as usize;
    let params = FetchParams {
        deadline: tokio::time::Instant::now() + max_wait,
        min_bytes: request.min_bytes.max(0) as usize,
        max_bytes: if request.max_bytes <= 0 {
            broker_max_bytes
        } else {
            (request.max_bytes as usize).min(broker_max_bytes)
        },
        // Isolation level 1 (v4+): only up to the last stable offset, with
        // the aborted transactions of the range so the client drops their
        // records.
        read_committed: request.isolation_level == 1,
        replica: replica_of(header.request_api_version, &request),
    };
    let reads = replicas.fetch(params, &requested).await;
    respond(names, &requested, reads)
}

/// A Fetch response and the records of its partitions that stay in the
/// segment files until they are written to the socket: ((topic index,
/// partition index) in the response, records). Those partitions' records
/// field is empty in `response`.
#[derive(Debug, Default)]
pub struct FetchAnswer {
    pub response: FetchResponse,
    pub files: crate::net::fetch_frame::InFiles,
}

/// The follower a replica fetch comes from (Kafka's replica id, in
/// ReplicaState from v15 with the broker epoch of KIP-903); None for a
/// consumer.
fn replica_of(version: i16, request: &FetchRequest) -> Option<(i32, i64)> {
    let (replica, epoch) = if version >= 15 {
        (
            request.replica_state.replica_id.0,
            request.replica_state.replica_epoch,
        )
    } else {
        (request.replica_id.0, -1)
    };
    (replica >= 0).then_some((replica, epoch))
}

/// Each requested partition with the topic's name and id as the response
/// echoes them (v13+ names topics by id; an unknown id keeps the request's
/// empty name).
fn requested_partitions(
    metadata: &MetadataView,
    version: i16,
    request: &FetchRequest,
) -> (Vec<(TopicName, Uuid)>, Vec<PartitionFetch>) {
    let image = metadata.image();
    let mut names = Vec::new();
    let mut requested = Vec::new();
    for topic in &request.topics {
        let name = if version >= 13 {
            image.topic_by_id(&topic.topic_id).map(|t| t.name.clone())
        } else {
            Some(topic.topic.0.as_str().to_string())
        };
        for p in &topic.partitions {
            let echoed = name
                .as_deref()
                .map(topic_name)
                .unwrap_or_else(|| topic.topic.clone());
            names.push((echoed, topic.topic_id));
            requested.push(PartitionFetch {
                topic: name.clone(),
                index: p.partition,
                fetch_offset: p.fetch_offset,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: if version >= 12 {
                    p.last_fetched_epoch
                } else {
                    -1
                },
                max_bytes: p.partition_max_bytes,
            });
        }
    }
    (names, requested)
}

/// The partition's data, and its records when they stay in the files.
fn partition_data(index: i32, read: PartitionRead) -> (PartitionData, Option<FileRecords>) {
    let aborted = read.aborted_transactions.map(|aborted| {
        aborted
            .into_iter()
            .map(|a| {
                AbortedTransaction::default()
                    .with_producer_id(ProducerId(a.producer_id))
                    .with_first_offset(a.first_offset)
            })
            .collect()
    });
    let diverging = read
        .diverging_epoch
        .map(|(epoch, end_offset)| {
            EpochEndOffset::default()
                .with_epoch(epoch)
                .with_end_offset(end_offset)
        })
        .unwrap_or_default();
    let (records, files) = match read.records {
        FetchedRecords::Memory(bytes) => (bytes, None),
        FetchedRecords::Files(files) if files.is_empty() => (Bytes::new(), None),
        FetchedRecords::Files(files) => (Bytes::new(), Some(files)),
    };
    let data = PartitionData::default()
        .with_diverging_epoch(diverging)
        .with_partition_index(index)
        .with_error_code(read.error_code)
        .with_high_watermark(read.high_watermark)
        .with_last_stable_offset(read.last_stable_offset)
        .with_log_start_offset(read.log_start_offset)
        .with_aborted_transactions(aborted)
        .with_preferred_read_replica(BrokerId(-1))
        .with_records(Some(records));
    (data, files)
}

/// Groups consecutive partitions of one topic, in request order.
fn respond(
    names: Vec<(TopicName, Uuid)>,
    requested: &[PartitionFetch],
    reads: Vec<PartitionRead>,
) -> FetchAnswer {
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    let mut files = Vec::new();
    for (((topic, topic_id), request), read) in names.into_iter().zip(requested).zip(reads) {
        let same_topic = responses
            .last()
            .map(|r| r.topic == topic && r.topic_id == topic_id)
            .unwrap_or(false);
        if !same_topic {
            responses.push(
                FetchableTopicResponse::default()
                    .with_topic(topic)
                    .with_topic_id(topic_id),
            );
        }
        let topic_index = responses.len().saturating_sub(1);
        if let Some(last) = responses.last_mut() {
            let (data, in_files) = partition_data(request.index, read);
            if let Some(in_files) = in_files {
                files.push(((topic_index, last.partitions.len()), in_files));
            }
            last.partitions.push(data);
        }
    }
    // Fetch sessions are not kept: session id 0 means "full response every
    // time", which every client accepts.
    FetchAnswer {
        response: FetchResponse::default()
            .with_error_code(error_codes::NONE)
            .with_session_id(0)
            .with_responses(responses),
        files,
    }
}
