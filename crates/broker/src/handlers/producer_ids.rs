//! InitProducerId (key 22): an idempotent producer gets a fresh id from the
//! producer-id manager (`crate::producer_ids`); a transactional one is
//! bound to its id by the transaction coordinator.

use std::sync::Arc;

use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, RequestHeader,
};

use crate::error_codes;
use crate::producer_ids::ProducerIdManager;
use crate::txn::TransactionCoordinator;

pub async fn init_producer_id(
    producer_ids: &ProducerIdManager,
    txns: &Arc<TransactionCoordinator>,
    header: &RequestHeader,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(transactional_id) = &request.transactional_id {
        // The transaction coordinator (crate::txn) binds the id.
        return super::transactions::init_producer_id(
            txns,
            header.request_api_version,
            transactional_id.0.as_str(),
            &request,
        )
        .await;
    }
    // Without a transactional id Kafka "always blindly accepts the request
    // and returns a new producerId" (TransactionCoordinator), whatever id and
    // epoch (v3+, KIP-360) the client sends: idempotent clients bump their
    // epoch locally, and a fresh id is always safe.
    match producer_ids.next_producer_id().await {
        Ok(id) => response
            .with_error_code(error_codes::NONE)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(error) => response.with_error_code(error.code()),
    }
}
