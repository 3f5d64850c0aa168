//! InitProducerId (key 22) for idempotent producers, and the producer-id
//! blocks behind it.
//!
//! Ids come from blocks recorded in the metadata log (as KRaft's
//! AllocateProducerIds does): the block is committed before any id in it is
//! handed out, so no id is ever given twice, across restarts included.

use kafka_protocol::messages::{
    InitProducerIdRequest, InitProducerIdResponse, ProducerId, RequestHeader,
};
use sluice_meta::MetadataRecord;

use crate::error_codes;
use crate::BrokerState;

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
        let first = state.quorum.image().next_producer_id.max(0);
        let record = MetadataRecord::AllocateProducerIds {
            node_id: state.node_id,
            first_producer_id: first,
            count: PRODUCER_ID_BLOCK_SIZE,
        };
        if let Err(error) = state.quorum.propose(vec![record]).await {
            tracing::warn!(%error, "allocating a producer id block failed");
            return Err(error_codes::COORDINATOR_NOT_AVAILABLE);
        }
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
    _header: &RequestHeader,
    request: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let response = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if request.transactional_id.is_some() {
        // Transactions need the transaction coordinator, which is not built
        // yet; FindCoordinator(TRANSACTION) already answers the same.
        return response.with_error_code(error_codes::COORDINATOR_NOT_AVAILABLE);
    }
    // KIP-360 (v3+): an idempotent producer with an id and epoch asks for an
    // epoch bump after an error; a bump past the last epoch gets a new id.
    if request.producer_id.0 >= 0
        && request.producer_epoch >= 0
        && request.producer_epoch < i16::MAX - 1
    {
        return response
            .with_error_code(error_codes::NONE)
            .with_producer_id(request.producer_id)
            .with_producer_epoch(request.producer_epoch + 1);
    }
    match next_producer_id(state).await {
        Ok(id) => response
            .with_error_code(error_codes::NONE)
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(code) => response.with_error_code(code),
    }
}
