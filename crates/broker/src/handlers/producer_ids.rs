//! InitProducerId (key 22) for idempotent producers, and the producer-id
//! blocks behind it.
//!
//! Ids come from blocks recorded in the metadata log (as KRaft's
//! AllocateProducerIds does): the metadata state machine picks each block
//! (`controller::allocate_producer_ids`), and it is committed before any id in
//! it is handed out, so no id is ever given twice, across restarts and
//! brokers included.

use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, RequestHeader,
};

use crate::controller;
use crate::error_codes;
use crate::state::BrokerState;

/// How many ids one metadata record reserves for this broker.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// The block of producer ids this broker is handing out.
#[derive(Debug, Default)]
pub struct ProducerIdBlock {
    /// Next id to hand out.
    pub next: i64,
    /// End of the block (exclusive); `next == end` means none left.
    pub end: i64,
}

/// Hands out a fresh producer id, reserving a new block when needed.
pub async fn next_producer_id(state: &BrokerState) -> Result<i64, i16> {
    let mut block = state.producer_ids.lock().await;
    if block.next >= block.end {
        let first = match controller::allocate_producer_ids(state, PRODUCER_ID_BLOCK_SIZE).await {
            Ok(first) => first,
            Err(error) => {
                tracing::warn!(error = %error.message, "allocating a producer id block failed");
                return Err(error_codes::COORDINATOR_NOT_AVAILABLE);
            }
        };
        *block = ProducerIdBlock {
            next: first,
            end: first + PRODUCER_ID_BLOCK_SIZE,
        };
        tracing::info!(
            first,
            count = PRODUCER_ID_BLOCK_SIZE,
            "producer id block allocated"
        );
    }
    let id = block.next;
    block.next += 1;
    Ok(id)
}

pub async fn init_producer_id(
    state: &BrokerState,
    header: &RequestHeader,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if let Some(transactional_id) = &request.transactional_id {
        // The transaction coordinator (crate::txn) binds the id.
        return super::transactions::init_producer_id(
            state,
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
    match next_producer_id(state).await {
        Ok(id) => response
            .with_error_code(error_codes::NONE)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(code) => response.with_error_code(code),
    }
}
