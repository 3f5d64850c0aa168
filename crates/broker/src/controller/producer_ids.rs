//! The producer-id control manager (Kafka's ProducerIdControlManager). The
//! request asks for a block; the metadata state machine decides which ids it
//! holds (the next never handed out), so two proposers can never be given the
//! same ids. The proposer learns its block from the apply outcome.

use sluice_meta::{MetadataRecord, RecordOutcome};

use super::{ControllerResult, TopicError};
use crate::error_codes;

/// The record that asks for a block of `count` ids for `node_id`.
pub fn allocate_producer_ids(node_id: i32, count: i64) -> ControllerResult<()> {
    ControllerResult {
        records: vec![MetadataRecord::AllocateProducerIds {
            node_id,
            first_producer_id: 0,
            count,
        }],
        response: (),
    }
}

/// The first id of the block the state machine assigned to `node_id`, from
/// the outcomes of the committed allocation.
pub fn allocated_block(outcomes: &[RecordOutcome], node_id: i32) -> Result<i64, TopicError> {
    outcomes
        .iter()
        .find_map(|outcome| match outcome {
            RecordOutcome::ProducerIdsAllocated {
                node_id: owner,
                first_producer_id,
                ..
            } if *owner == node_id => Some(*first_producer_id),
            _ => None,
        })
        .ok_or_else(|| {
            TopicError::new(
                error_codes::UNKNOWN_SERVER_ERROR,
                "the metadata log assigned no producer id block",
            )
        })
}
