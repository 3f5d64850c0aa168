//! Fetch (key 1): whole batches, long poll on the high watermark, every
//! requested partition in the response.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, FetchResponse, ProducerId, RequestHeader, TopicName,
};
use uuid::Uuid;

use super::{check_leader_epoch, topic_name};
use crate::error_codes;
use crate::replica_manager::Partition;
use crate::BrokerState;

/// Upper bound on how long one fetch may wait, whatever the client asks.
const FETCH_WAIT_MS_MAX: u64 = 30_000;

/// One requested partition, resolved.
struct Target {
    topic: TopicName,
    topic_id: Uuid,
    index: i32,
    partition: Result<Arc<Partition>, i16>,
    fetch_offset: i64,
    current_leader_epoch: i32,
    partition_max_bytes: i32,
}

pub async fn handle(
    state: &BrokerState,
    header: &RequestHeader,
    request: FetchRequest,
) -> FetchResponse {
    let version = header.request_api_version;
    let uses_topic_ids = version >= 13;
    let image = state.quorum.image();
    let mut targets = Vec::new();
    for topic in &request.topics {
        let name = if uses_topic_ids {
            image.topic_by_id(&topic.topic_id).map(|t| t.name.clone())
        } else {
            Some(topic.topic.0.as_str().to_string())
        };
        for p in &topic.partitions {
            let partition = match &name {
                None => Err(error_codes::UNKNOWN_TOPIC_ID),
                Some(name) => state
                    .replicas
                    .get(name, p.partition)
                    .ok_or_else(|| state.replicas.missing_partition_error(name, p.partition)),
            };
            targets.push(Target {
                topic: name
                    .as_deref()
                    .map(topic_name)
                    .unwrap_or_else(|| topic.topic.clone()),
                topic_id: topic.topic_id,
                index: p.partition,
                partition,
                fetch_offset: p.fetch_offset,
                current_leader_epoch: p.current_leader_epoch,
                partition_max_bytes: p.partition_max_bytes,
            });
        }
    }
    drop(image);

    let max_wait =
        Duration::from_millis((request.max_wait_ms.max(0) as u64).min(FETCH_WAIT_MS_MAX));
    let deadline = tokio::time::Instant::now() + max_wait;
    let min_bytes = request.min_bytes.max(0) as usize;
    // Isolation level 1 (v4+): only up to the last stable offset, with the
    // aborted transactions of the range so the client drops their records.
    let read_committed = request.isolation_level == 1;
    // The broker's `fetch.max.bytes` bounds what one response can hold.
    let broker_max_bytes = state.broker_config_i64("fetch.max.bytes").max(1) as usize;
    let max_bytes = if request.max_bytes <= 0 {
        broker_max_bytes
    } else {
        (request.max_bytes as usize).min(broker_max_bytes)
    };
    loop {
        let mut receivers: Vec<_> = targets
            .iter()
            .filter_map(|t| {
                t.partition
                    .as_ref()
                    .ok()
                    .map(|p| p.subscribe_high_watermark())
            })
            .collect();
        let (partitions, bytes, has_error) = read_all(&targets, max_bytes, read_committed);
        let expired = tokio::time::Instant::now() >= deadline;
        if bytes >= min_bytes.max(1)
            || has_error
            || expired
            || receivers.is_empty()
            || min_bytes == 0
        {
            return respond(targets, partitions, version);
        }
        // Long poll: wake when any requested partition's high watermark moves.
        let changed =
            futures::future::select_all(receivers.iter_mut().map(|r| Box::pin(r.changed())));
        if tokio::time::timeout_at(deadline, changed).await.is_err() {
            let (partitions, _, _) = read_all(&targets, max_bytes, read_committed);
            return respond(targets, partitions, version);
        }
    }
}

/// Reads every target; returns per-target data, total bytes, any error.
fn read_all(
    targets: &[Target],
    max_bytes: usize,
    read_committed: bool,
) -> (Vec<PartitionData>, usize, bool) {
    let mut remaining = max_bytes;
    let mut total = 0usize;
    let mut has_error = false;
    let mut first_data_returned = false;
    let mut out = Vec::with_capacity(targets.len());
    for target in targets {
        let mut data = PartitionData::default()
            .with_partition_index(target.index)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_preferred_read_replica(BrokerId(-1))
            .with_records(Some(Bytes::new()));
        let partition = match &target.partition {
            Ok(p) => p,
            Err(code) => {
                data.error_code = *code;
                has_error = true;
                out.push(data);
                continue;
            }
        };
        let epoch_error = check_leader_epoch(target.current_leader_epoch, partition.leader_epoch());
        let high_watermark = partition.high_watermark();
        let log_start = partition.log.log_start_offset();
        let last_stable_offset = partition.last_stable_offset();
        data.high_watermark = high_watermark;
        data.last_stable_offset = last_stable_offset;
        data.log_start_offset = log_start;
        data.aborted_transactions = None;
        let upper = if read_committed {
            last_stable_offset
        } else {
            high_watermark
        };
        if epoch_error != error_codes::NONE {
            data.error_code = epoch_error;
            has_error = true;
            out.push(data);
            continue;
        }
        if target.fetch_offset < log_start || target.fetch_offset > partition.log.log_end_offset() {
            data.error_code = error_codes::OFFSET_OUT_OF_RANGE;
            has_error = true;
            out.push(data);
            continue;
        }
        let partition_budget = (target.partition_max_bytes.max(0) as usize).min(remaining);
        // KIP-74: only the first partition that returns data may exceed the
        // limits, by at most one batch.
        let min_one_batch = !first_data_returned;
        if partition_budget == 0 && !min_one_batch {
            out.push(data);
            continue;
        }
        match partition
            .log
            .read(target.fetch_offset, upper, partition_budget, min_one_batch)
        {
            Ok(read) => {
                if read_committed {
                    let aborted = partition
                        .aborted_transactions(target.fetch_offset, upper)
                        .into_iter()
                        .map(|a| {
                            AbortedTransaction::default()
                                .with_producer_id(ProducerId(a.producer_id))
                                .with_first_offset(a.first_offset)
                        })
                        .collect();
                    data.aborted_transactions = Some(aborted);
                }
                let n = read.records.len();
                if n > 0 {
                    first_data_returned = true;
                }
                remaining = remaining.saturating_sub(n);
                total += n;
                data.records = Some(read.records);
            }
            Err(error) => {
                data.error_code = error_codes::from_log_error(&error);
                has_error = true;
            }
        }
        out.push(data);
    }
    (out, total, has_error)
}

fn respond(targets: Vec<Target>, partitions: Vec<PartitionData>, _version: i16) -> FetchResponse {
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    for (target, data) in targets.into_iter().zip(partitions) {
        let same_topic = responses
            .last()
            .map(|r| r.topic == target.topic && r.topic_id == target.topic_id)
            .unwrap_or(false);
        if !same_topic {
            responses.push(
                FetchableTopicResponse::default()
                    .with_topic(target.topic.clone())
                    .with_topic_id(target.topic_id),
            );
        }
        if let Some(last) = responses.last_mut() {
            last.partitions.push(data);
        }
    }
    // Fetch sessions are not kept: session id 0 means "full response every
    // time", which every client accepts.
    FetchResponse::default()
        .with_error_code(error_codes::NONE)
        .with_session_id(0)
        .with_responses(responses)
}
