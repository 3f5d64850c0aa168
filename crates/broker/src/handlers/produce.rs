//! Produce (key 0). The record set stays the bytes it arrived as: the header
//! is validated, offsets and the leader epoch are written in place by the log,
//! and the batch is appended with one write.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, RequestHeader};
use sluice_log::batch;
use sluice_log::batch::{BatchError, BatchHeader};
use sluice_log::validate::{self, RecordsCheck};

use super::str_bytes;
use crate::clock::now_ms;
use crate::config::TopicConfig;
use crate::error_codes;
use crate::partition::{AppendOrigin, LeaderAppend, ReplicaWait};
use crate::replica_manager::Partition;
use crate::replica_manager::ReplicaManager;
use crate::txn::TransactionCoordinator;

/// Codec id of zstd in the batch attributes.
const COMPRESSION_ZSTD: u8 = 4;
/// A compressed batch may decompress to at most this many times the topic's
/// `max.message.bytes` (which bounds the compressed batch)...
const DECOMPRESSION_RATIO_MAX: u64 = 64;
/// ...and is always allowed this much (a topic with a small
/// `max.message.bytes` still takes well-compressing batches).
const DECOMPRESSED_BYTES_FLOOR: u64 = 64 << 20;
/// Kafka's ProduceResponse ErrorMessage shows at most this many record errors.
const RECORD_ERRORS_SHOWN_MAX: usize = 3;

pub enum ProduceOutcome {
    Respond(ProduceResponse),
    /// acks=all: appended; the response once the high watermark passes every
    /// appended batch (or the timeout).
    Wait(std::pin::Pin<Box<dyn std::future::Future<Output = ProduceResponse> + Send>>),
    /// acks=0 and everything appended.
    NoResponse,
    /// acks=0 and some partition failed: close so the client refreshes metadata.
    Close,
}

/// Result of one partition's append, before waiting for acks.
struct Appended {
    partition: Option<Arc<Partition>>,
    response: PartitionProduceResponse,
    last_offset: i64,
    /// The leader epoch the batch was appended in: an acks=all wait ends
    /// NOT_LEADER_OR_FOLLOWER once the partition leaves it.
    leader_epoch: i32,
}

pub async fn handle(
    replicas: &ReplicaManager,
    txns: &TransactionCoordinator,
    header: &RequestHeader,
    request: ProduceRequest,
) -> ProduceOutcome {
    let version = header.request_api_version;
    let acks = request.acks;
    let transactional_id = request
        .transactional_id
        .as_ref()
        .map(|id| id.0.as_str().to_string());
    let mut topics: Vec<(kafka_protocol::messages::TopicName, Vec<Appended>)> = Vec::new();
    let mut any_error = false;
    for topic in request.topic_data {
        let name = topic.name.0.as_str().to_string();
        let mut results = Vec::new();
        for data in topic.partition_data {
            let appended = if !matches!(acks, -1..=1) {
                failed(data.index, error_codes::INVALID_REQUIRED_ACKS, None)
            } else {
                let request = RequestContext {
                    version,
                    acks,
                    transactional_id: transactional_id.as_deref(),
                };
                append_partition(replicas, txns, &request, &name, data.index, data.records)
            };
            any_error |= appended.response.error_code != error_codes::NONE;
            results.push(appended);
        }
        topics.push((topic.name, results));
    }

    if acks == 0 {
        return if any_error {
            ProduceOutcome::Close
        } else {
            ProduceOutcome::NoResponse
        };
    }
    if acks == -1 {
        let timeout = Duration::from_millis(request.timeout_ms.max(0) as u64);
        let deadline = tokio::time::Instant::now() + timeout;
        return ProduceOutcome::Wait(Box::pin(async move {
            for (_, results) in topics.iter_mut() {
                for appended in results.iter_mut() {
                    if appended.response.error_code != error_codes::NONE {
                        continue;
                    }
                    let Some(partition) = &appended.partition else {
                        continue;
                    };
                    appended.response.error_code = wait_for_replicas(
                        partition,
                        appended.last_offset + 1,
                        appended.leader_epoch,
                        deadline,
                    )
                    .await;
                }
            }
            build_response(topics)
        }));
    }
    ProduceOutcome::Respond(build_response(topics))
}

/// An acks=all produce's wait ([`Partition::wait_replicated`]) as the
/// partition's error code: NOT_ENOUGH_REPLICAS_AFTER_APPEND if the ISR is
/// below the min ISR when the high watermark passes the batch;
/// NOT_LEADER_OR_FOLLOWER once the partition is no longer led here in
/// `leader_epoch`; REQUEST_TIMED_OUT at the deadline (the usual end when the
/// ISR shrank while waiting, because the high watermark stops).
async fn wait_for_replicas(
    partition: &Partition,
    target: i64,
    leader_epoch: i32,
    deadline: tokio::time::Instant,
) -> i16 {
    match partition
        .wait_replicated(target, leader_epoch, deadline)
        .await
    {
        ReplicaWait::Replicated => error_codes::NONE,
        ReplicaWait::BelowMinIsr => error_codes::NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        ReplicaWait::NotLeader => error_codes::NOT_LEADER_OR_FOLLOWER,
        ReplicaWait::TimedOut => error_codes::REQUEST_TIMED_OUT,
    }
}

fn build_response(
    topics: Vec<(kafka_protocol::messages::TopicName, Vec<Appended>)>,
) -> ProduceResponse {
    let responses = topics
        .into_iter()
        .map(|(name, results)| {
            TopicProduceResponse::default()
                .with_name(name)
                .with_partition_responses(results.into_iter().map(|a| a.response).collect())
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}

fn failed(index: i32, code: i16, message: Option<String>) -> Appended {
    Appended {
        partition: None,
        response: PartitionProduceResponse::default()
            .with_index(index)
            .with_error_code(code)
            .with_base_offset(-1)
            .with_log_append_time_ms(-1)
            .with_log_start_offset(-1)
            .with_error_message(message.as_deref().map(str_bytes)),
        last_offset: -1,
        leader_epoch: -1,
    }
}

/// What of the Produce request every partition's append needs.
struct RequestContext<'a> {
    version: i16,
    acks: i16,
    transactional_id: Option<&'a str>,
}

fn append_partition(
    replicas: &ReplicaManager,
    txns: &TransactionCoordinator,
    request: &RequestContext<'_>,
    topic: &str,
    index: i32,
    records: Option<bytes::Bytes>,
) -> Appended {
    let partition = match replicas.leader_partition(topic, index) {
        Ok(partition) => partition,
        Err(code) => return failed(index, code, None),
    };
    let leader_epoch = partition.leader_epoch();
    let checked = check_batch(
        &partition,
        txns,
        request.version,
        request.transactional_id,
        topic,
        index,
        records,
    );
    let (records, header, config) = match checked {
        Ok(checked) => checked,
        Err(refused) => return *refused,
    };
    // Kafka checks the min ISR after validation, before the append: an
    // acks=all batch that cannot be replicated enough is not written.
    if request.acks == -1 {
        let code = partition.check_enough_replicas();
        if code != error_codes::NONE {
            let message = format!(
                "The size of the current ISR {:?} is insufficient to satisfy the min.isr requirement of {} for partition {topic}-{index}",
                partition.assignment().isr,
                partition.config().min_insync_replicas
            );
            return failed(index, code, Some(message));
        }
    }
    let appended = partition.append_as_leader(
        &records,
        &header,
        AppendOrigin::Client { now_ms: now_ms() },
        config.log_append_time.then(now_ms),
    );
    let response = PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(error_codes::NONE);
    match appended {
        Ok(LeaderAppend::Appended(info)) => Appended {
            response: response
                .with_base_offset(info.base_offset)
                .with_log_append_time_ms(info.log_append_time_ms)
                .with_log_start_offset(info.log_start_offset),
            last_offset: info.last_offset,
            partition: Some(partition),
            leader_epoch,
        },
        Ok(LeaderAppend::Duplicate(original)) => {
            // A retry: answer with where the batch was first written.
            tracing::debug!(
                topic,
                partition = index,
                producer_id = header.producer_id,
                "duplicate batch"
            );
            Appended {
                response: response
                    .with_base_offset(original.first_offset)
                    .with_log_append_time_ms(-1)
                    .with_log_start_offset(partition.log.log_start_offset()),
                last_offset: original.last_offset,
                partition: Some(partition),
                leader_epoch,
            }
        }
        Ok(LeaderAppend::Rejected(code)) => failed(index, code, None),
        Err(error) => {
            tracing::warn!(topic, partition = index, %error, "append failed");
            failed(
                index,
                error_codes::from_log_error(&error),
                Some(error.to_string()),
            )
        }
    }
}

/// Every check a produced batch passes before it is appended (Kafka's
/// order): a client topic, a record set, a valid v2 header, the
/// transaction's verification, the size limit, zstd from v7, the records
/// themselves (LogValidator), the timestamp bounds. Returns the batch, its
/// header and the topic config, or the partition's refusal.
fn check_batch(
    partition: &Partition,
    txns: &TransactionCoordinator,
    version: i16,
    transactional_id: Option<&str>,
    topic: &str,
    index: i32,
    records: Option<bytes::Bytes>,
) -> Result<(bytes::Bytes, BatchHeader, Arc<TopicConfig>), Box<Appended>> {
    if partition.internal {
        return Err(Box::new(failed(
            index,
            error_codes::INVALID_TOPIC_EXCEPTION,
            Some(format!("Cannot append to internal topic {topic}")),
        )));
    }
    let Some(records) = records else {
        return Err(Box::new(failed(
            index,
            error_codes::CORRUPT_MESSAGE,
            Some("null record set".into()),
        )));
    };
    let config = partition.config();
    let header = batch::validate(&records).map_err(|error| {
        tracing::debug!(topic, partition = index, %error, "rejected batch");
        Box::new(failed(
            index,
            error_codes::from_batch_error(&error),
            Some(error.to_string()),
        ))
    })?;
    // Transactions (crate::txn): KIP-890 part 1 produce verification.
    super::transactions::verify_produce(txns, version, transactional_id, &header, topic, index)
        .map_err(|code| Box::new(failed(index, code, None)))?;
    if records.len() as i64 > config.max_message_bytes {
        return Err(Box::new(failed(
            index,
            error_codes::MESSAGE_TOO_LARGE,
            Some(format!("The request included a message larger than the max message size the server will accept ({}).", config.max_message_bytes)),
        )));
    }
    if header.compression() == COMPRESSION_ZSTD && version < 7 {
        return Err(Box::new(failed(
            index,
            error_codes::UNSUPPORTED_COMPRESSION_TYPE,
            None,
        )));
    }
    // The records themselves (LogValidator): nothing of a batch that fails
    // is appended.
    let check = RecordsCheck {
        keys_required: config.compacted,
        decompressed_bytes_max: (config.max_message_bytes.max(0) as u64)
            .saturating_mul(DECOMPRESSION_RATIO_MAX)
            .max(DECOMPRESSED_BYTES_FLOOR),
    };
    if let Err(error) = validate::validate_records(&records, &header, &check) {
        tracing::debug!(topic, partition = index, %error, "rejected records");
        return Err(Box::new(refused_records(topic, index, &error)));
    }
    if !config.log_append_time {
        let now = now_ms();
        let too_old = header.base_timestamp < now.saturating_sub(config.timestamp_before_max_ms);
        let too_new = header.max_timestamp > now.saturating_add(config.timestamp_after_max_ms);
        if too_old || too_new {
            return Err(Box::new(failed(
                index,
                error_codes::INVALID_TIMESTAMP,
                Some(format!(
                    "Timestamp of a record in the batch is out of range (now {now})"
                )),
            )));
        }
    }
    Ok((records, header, config))
}

/// The answer to a batch whose records failed validation: the code, an
/// ErrorMessage, and (v8+, KIP-467) the records at fault as RecordErrors, as
/// Kafka's `RecordValidationException` gives them. librdkafka fails the
/// listed records with the code and the others of the batch with
/// `_INVALID_DIFFERENT_RECORD`.
fn refused_records(topic: &str, index: i32, error: &BatchError) -> Appended {
    let code = error_codes::from_batch_error(error);
    let record_errors: Vec<(i32, String)> = match error {
        BatchError::MissingKeys { record_indexes } => record_indexes
            .iter()
            .map(|record| {
                let message = format!(
                    "Compacted topic cannot accept message without key in topic partition {topic}-{index}"
                );
                (*record, message)
            })
            .collect(),
        BatchError::InvalidRecords {
            reason,
            record_index: Some(record),
        } => vec![(*record, reason.clone())],
        _ => Vec::new(),
    };
    let message = if record_errors.is_empty() {
        error.to_string()
    } else {
        let shown: Vec<String> = record_errors
            .iter()
            .take(RECORD_ERRORS_SHOWN_MAX)
            .map(|(record, message)| {
                format!("RecordError(batchIndex={record}, message='{message}')")
            })
            .collect();
        format!(
            "One or more records have been rejected due to {} record errors in total, and only showing the first three errors at most: [{}]",
            record_errors.len(),
            shown.join(", ")
        )
    };
    let mut appended = failed(index, code, Some(message));
    appended.response.record_errors = record_errors
        .into_iter()
        .map(|(record, message)| {
            BatchIndexAndErrorMessage::default()
                .with_batch_index(record)
                .with_batch_index_error_message(Some(str_bytes(&message)))
        })
        .collect();
    appended
}
