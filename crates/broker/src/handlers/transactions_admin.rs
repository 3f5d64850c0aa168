//! The transaction admin APIs: DescribeProducers (61), DescribeTransactions
//! (65), ListTransactions (66) — what `kafka-transactions.sh` and
//! `sluice transaction` show.

use std::collections::BTreeMap;

use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::list_transactions_response::TransactionState as ListedTransaction;
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest,
    DescribeTransactionsResponse, ListTransactionsRequest, ListTransactionsResponse, ProducerId,
    RequestHeader, TransactionalId,
};

use super::{str_bytes, topic_name};
use crate::clock::now_ms;
use crate::error_codes;
use crate::errors::{code_of, KafkaError};
use crate::replica_manager::ReplicaManager;
use crate::txn::state::{TxnMetadata, TxnState};
use crate::txn::TransactionCoordinator;

/// DescribeProducers: the producer state of each partition.
pub async fn describe_producers(
    replicas: &ReplicaManager,
    _header: &RequestHeader,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = request
        .topics
        .iter()
        .map(|topic| {
            let name = topic.name.0.as_str();
            let partitions = topic
                .partition_indexes
                .iter()
                .map(|index| {
                    let response = PartitionResponse::default().with_partition_index(*index);
                    let partition = match replicas.leader_partition(name, *index) {
                        Ok(partition) => partition,
                        Err(code) => return response.with_error_code(code),
                    };
                    let producers = partition.producer_state.lock();
                    let mut active: Vec<ProducerState> = producers
                        .producers
                        .iter()
                        .map(|(id, entry)| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(*id))
                                .with_producer_epoch(i32::from(entry.epoch))
                                .with_last_sequence(
                                    entry.batches.back().map(|b| b.last_sequence).unwrap_or(-1),
                                )
                                .with_last_timestamp(entry.last_write_ms)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(
                                    producers.ongoing.get(id).copied().unwrap_or(-1),
                                )
                        })
                        .collect();
                    active.sort_by_key(|p| p.producer_id.0);
                    response
                        .with_error_code(error_codes::NONE)
                        .with_active_producers(active)
                })
                .collect();
            TopicResponse::default()
                .with_name(topic.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

fn topic_data(txn: &TxnMetadata) -> Vec<TopicData> {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in &txn.partitions {
        topics.entry(topic).or_default().push(*partition);
    }
    topics
        .into_iter()
        .map(|(topic, partitions)| {
            TopicData::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions)
        })
        .collect()
}

/// DescribeTransactions: state, producer, timeout, start and partitions.
pub async fn describe_transactions(
    txns: &TransactionCoordinator,
    _header: &RequestHeader,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let mut described = Vec::with_capacity(request.transactional_ids.len());
    for id in request.transactional_ids {
        let name = id.0.as_str().to_string();
        let ready = txns.check_ready(&name);
        let found = if ready.is_ok() {
            txns.describe(&name).await
        } else {
            None
        };
        let entry = TransactionState::default()
            .with_transactional_id(id)
            .with_transaction_state(str_bytes(""))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
            .with_transaction_start_time_ms(-1);
        described.push(match found {
            Some(txn) => entry
                .with_error_code(error_codes::NONE)
                .with_transaction_state(str_bytes(txn.state.name()))
                .with_transaction_timeout_ms(txn.timeout_ms)
                .with_transaction_start_time_ms(txn.start_ms)
                .with_producer_id(ProducerId(txn.producer_id))
                .with_producer_epoch(txn.producer_epoch)
                .with_topics(topic_data(&txn)),
            None if ready.is_err() => entry.with_error_code(code_of(&ready)),
            None => entry.with_error_code(error_codes::TRANSACTIONAL_ID_NOT_FOUND),
        });
    }
    DescribeTransactionsResponse::default().with_transaction_states(described)
}

/// ListTransactions with state, producer id and (v1+) duration filters.
pub async fn list_transactions(
    txns: &TransactionCoordinator,
    header: &RequestHeader,
    request: ListTransactionsRequest,
) -> ListTransactionsResponse {
    let version = header.request_api_version;
    let mut states = Vec::new();
    let mut unknown = Vec::new();
    for filter in &request.state_filters {
        match TxnState::from_name(filter.as_str()) {
            Some(s) => states.push(s),
            None => unknown.push(filter.clone()),
        }
    }
    let producer_ids: Vec<i64> = request.producer_id_filters.iter().map(|p| p.0).collect();
    let duration = if version >= 1 {
        request.duration_filter
    } else {
        -1
    };
    let now = now_ms();
    let mut listed: Vec<ListedTransaction> = txns
        .list()
        .await
        .into_iter()
        .filter(|t| states.is_empty() || states.contains(&t.state))
        .filter(|t| producer_ids.is_empty() || producer_ids.contains(&t.producer_id))
        .filter(|t| duration < 0 || (t.start_ms >= 0 && now - t.start_ms >= duration))
        .map(|t| {
            ListedTransaction::default()
                .with_transactional_id(TransactionalId(str_bytes(&t.transactional_id)))
                .with_producer_id(ProducerId(t.producer_id))
                .with_transaction_state(str_bytes(t.state.name()))
        })
        .collect();
    listed.sort_by(|a, b| a.transactional_id.0.cmp(&b.transactional_id.0));
    let code = if txns.check_ready("") == Err(KafkaError::CoordinatorLoadInProgress) {
        error_codes::COORDINATOR_LOAD_IN_PROGRESS
    } else {
        error_codes::NONE
    };
    ListTransactionsResponse::default()
        .with_error_code(code)
        .with_unknown_state_filters(unknown)
        .with_transaction_states(listed)
}
