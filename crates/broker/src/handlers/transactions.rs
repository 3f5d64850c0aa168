//! The transaction APIs of producers: InitProducerId with a transactional
//! id (22),
//! AddPartitionsToTxn v0–3 (24), AddOffsetsToTxn (25), EndTxn (26),
//! TxnOffsetCommit (28). The protocol lives in `crate::txn`; this file turns
//! requests into its calls, and maps PRODUCER_FENCED to
//! INVALID_PRODUCER_EPOCH below the versions that know it (KIP-588).

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, EndTxnRequest, EndTxnResponse, InitProducerIdRequest,
    InitProducerIdResponse, ProducerId, RequestHeader, TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
};

use crate::clock::now_ms;
use crate::controller::Controller;
use crate::error_codes;
use crate::errors::KafkaError;
use crate::group::state::CommittedOffset;
use crate::group::GroupCoordinator;
use crate::group::OFFSETS_TOPIC;
use crate::metadata_view::MetadataView;
use crate::txn::{ProduceRefusal, TransactionCoordinator};

/// KIP-588: PRODUCER_FENCED only from these versions on; older clients get
/// INVALID_PRODUCER_EPOCH.
fn fenced_code(error: KafkaError, version: i16, fenced_from: i16) -> i16 {
    if error == KafkaError::ProducerFenced && version < fenced_from {
        KafkaError::InvalidProducerEpoch.code()
    } else {
        error.code()
    }
}

/// The wire code of a coordinator's answer, KIP-588 applied.
fn code_of(result: Result<(), KafkaError>, version: i16, fenced_from: i16) -> i16 {
    match result {
        Ok(()) => error_codes::NONE,
        Err(error) => fenced_code(error, version, fenced_from),
    }
}

/// InitProducerId with a transactional id.
pub async fn init_producer_id(
    txns: &Arc<TransactionCoordinator>,
    version: i16,
    transactional_id: &str,
    request: &InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let expected = (version >= 3 && request.producer_id.0 >= 0 && request.producer_epoch >= 0)
        .then_some((request.producer_id.0, request.producer_epoch));
    match txns
        .init_producer_id(transactional_id, request.transaction_timeout_ms, expected)
        .await
    {
        Ok((producer_id, epoch)) => response
            .with_error_code(error_codes::NONE)
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch),
        Err(code) => response.with_error_code(fenced_code(code, version, 4)),
    }
}

/// AddPartitionsToTxn, the client form (v0–3). Unknown partitions fail the
/// request: they get UNKNOWN_TOPIC_OR_PARTITION, the others
/// OPERATION_NOT_ATTEMPTED.
pub async fn add_partitions(
    metadata: &MetadataView,
    txns: &TransactionCoordinator,
    header: &RequestHeader,
    request: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    /// OPERATION_NOT_ATTEMPTED.
    const NOT_ATTEMPTED: i16 = 55;
    let version = header.request_api_version;
    let image = metadata.image();
    let mut wanted: Vec<(String, i32)> = Vec::new();
    let mut unknown = Vec::new();
    for topic in &request.v3_and_below_topics {
        let name = topic.name.0.as_str();
        let count = image.topic(name).map(|t| t.partitions.len()).unwrap_or(0);
        for partition in &topic.partitions {
            if *partition < 0 || *partition as usize >= count {
                unknown.push((name.to_string(), *partition));
            } else {
                wanted.push((name.to_string(), *partition));
            }
        }
    }
    let code_for = if unknown.is_empty() {
        let result = txns
            .add_partitions(
                request.v3_and_below_transactional_id.0.as_str(),
                request.v3_and_below_producer_id.0,
                request.v3_and_below_producer_epoch,
                &wanted,
            )
            .await;
        let code = code_of(result, version, 2);
        Box::new(move |_: &str, _: i32| code) as Box<dyn Fn(&str, i32) -> i16 + Send>
    } else {
        Box::new(move |topic: &str, partition: i32| {
            if unknown.iter().any(|(t, p)| t == topic && *p == partition) {
                error_codes::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                NOT_ATTEMPTED
            }
        })
    };
    let results = request
        .v3_and_below_topics
        .iter()
        .map(|topic| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic.name.clone())
                .with_results_by_partition(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(*p)
                                .with_partition_error_code(code_for(topic.name.0.as_str(), *p))
                        })
                        .collect(),
                )
        })
        .collect();
    AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results)
}

/// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition.
pub async fn add_offsets(
    controller: &Controller,
    groups: &GroupCoordinator,
    txns: &TransactionCoordinator,
    header: &RequestHeader,
    request: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let version = header.request_api_version;
    let group = request.group_id.0.as_str();
    if let Err(message) = crate::coordinator_topics::ensure_offsets_topic(controller, groups).await
    {
        tracing::warn!(%message, "creating __consumer_offsets failed");
        return AddOffsetsToTxnResponse::default()
            .with_error_code(error_codes::COORDINATOR_NOT_AVAILABLE);
    }
    let partition = (OFFSETS_TOPIC.to_string(), groups.partition_for(group));
    let result = txns
        .add_partitions(
            request.transactional_id.0.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            &[partition],
        )
        .await;
    AddOffsetsToTxnResponse::default().with_error_code(code_of(result, version, 2))
}

/// EndTxn: answered once every marker and the Complete state are durable.
pub async fn end_txn(
    txns: &TransactionCoordinator,
    header: &RequestHeader,
    request: EndTxnRequest,
) -> EndTxnResponse {
    let version = header.request_api_version;
    let result = txns
        .end_txn(
            request.transactional_id.0.as_str(),
            request.producer_id.0,
            request.producer_epoch,
            request.committed,
        )
        .await;
    EndTxnResponse::default().with_error_code(code_of(result, version, 2))
}

/// TxnOffsetCommit: one code for every partition of the request.
pub async fn txn_offset_commit(
    metadata: &MetadataView,
    groups: &GroupCoordinator,
    txns: &TransactionCoordinator,
    header: &RequestHeader,
    request: TxnOffsetCommitRequest,
) -> TxnOffsetCommitResponse {
    let version = header.request_api_version;
    let group = request.group_id.0.as_str();
    let image = metadata.image();
    let now = now_ms();
    let metadata_max = groups.config.metadata_bytes_max;
    let mut problem = None;
    let mut offsets = Vec::new();
    for topic in &request.topics {
        let name = topic.name.0.as_str();
        let count = image.topic(name).map(|t| t.partitions.len()).unwrap_or(0);
        for partition in &topic.partitions {
            let metadata = partition
                .committed_metadata
                .as_ref()
                .map(|m| m.to_string())
                .unwrap_or_default();
            if partition.partition_index < 0 || partition.partition_index as usize >= count {
                problem.get_or_insert(error_codes::UNKNOWN_TOPIC_OR_PARTITION);
            } else if metadata.len() > metadata_max {
                problem.get_or_insert(error_codes::OFFSET_METADATA_TOO_LARGE);
            }
            offsets.push((
                (name.to_string(), partition.partition_index),
                CommittedOffset {
                    offset: partition.committed_offset,
                    leader_epoch: if version >= 2 {
                        partition.committed_leader_epoch
                    } else {
                        -1
                    },
                    metadata,
                    commit_timestamp_ms: now,
                },
            ));
        }
    }
    let code = match problem {
        Some(code) => code,
        None => {
            let member = (version >= 3).then(|| {
                (
                    request.member_id.as_str(),
                    request.group_instance_id.as_ref().map(|s| s.as_str()),
                    request.generation_id,
                )
            });
            let result = txns
                .txn_offset_commit(
                    request.transactional_id.0.as_str(),
                    group,
                    request.producer_id.0,
                    request.producer_epoch,
                    member,
                    offsets,
                )
                .await;
            code_of(result, version, 3)
        }
    };
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic.name.clone())
                .with_partitions(
                    topic
                        .partitions
                        .iter()
                        .map(|p| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                        })
                        .collect(),
                )
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// The Produce hook (KIP-890 part 1): a transactional batch must belong to
/// an ongoing transaction holding the partition. Kafka 4.0 answers
/// TRANSACTION_ABORTABLE from Produce v11 on, INVALID_TXN_STATE before.
/// A transactional id coordinated by another broker is not verified here
/// (as Kafka with `transaction.partition.verification.enable=false`: the
/// broker-to-broker verification of KIP-890 is not built).
pub fn verify_produce(
    txns: &TransactionCoordinator,
    version: i16,
    transactional_id: Option<&str>,
    header: &sluice_log::batch::BatchHeader,
    topic: &str,
    partition: i32,
) -> Result<(), i16> {
    if header.producer_id < 0 || !header.is_transactional() || header.is_control() {
        return Ok(());
    }
    if let Some(id) = transactional_id {
        if txns.check_ready(id) == Err(crate::errors::KafkaError::NotCoordinator) {
            return Ok(());
        }
    }
    match txns.verify_produce(header.producer_id, header.producer_epoch, topic, partition) {
        Ok(()) => Ok(()),
        Err(ProduceRefusal::Fenced) => Err(error_codes::INVALID_PRODUCER_EPOCH),
        Err(ProduceRefusal::NotInTransaction) if version >= 11 => {
            Err(error_codes::TRANSACTION_ABORTABLE)
        }
        Err(ProduceRefusal::NotInTransaction) => Err(error_codes::INVALID_TXN_STATE),
    }
}
