//! The producer-id manager (Kafka's RPCProducerIdManager): hands out
//! producer ids from blocks the metadata log assigns to this broker. A block
//! is committed (and the state machine has picked its ids, the next never
//! handed out) before any id in it is given, so no id is ever given twice,
//! across restarts and brokers included. Used by InitProducerId and the
//! transaction coordinator.

use std::sync::Arc;

use crate::controller::Controller;
use crate::errors::KafkaError;

/// How many ids one metadata record reserves for this broker.
pub const PRODUCER_ID_BLOCK_SIZE: i64 = 1000;

/// The block of producer ids this broker is handing out.
#[derive(Debug, Default)]
struct ProducerIdBlock {
    /// Next id to hand out.
    next: i64,
    /// End of the block (exclusive); `next == end` means none left.
    end: i64,
}

pub struct ProducerIdManager {
    controller: Arc<Controller>,
    block: tokio::sync::Mutex<ProducerIdBlock>,
}

impl ProducerIdManager {
    pub fn new(controller: Arc<Controller>) -> ProducerIdManager {
        ProducerIdManager {
            controller,
            block: tokio::sync::Mutex::new(ProducerIdBlock::default()),
        }
    }

    /// A fresh producer id, reserving a new block when needed
    /// (COORDINATOR_NOT_AVAILABLE when the block cannot be reserved).
    pub async fn next_producer_id(&self) -> Result<i64, KafkaError> {
        let mut block = self.block.lock().await;
        if block.next >= block.end {
            let first = match self
                .controller
                .allocate_producer_ids(PRODUCER_ID_BLOCK_SIZE)
                .await
            {
                Ok(first) => first,
                Err(error) => {
                    tracing::warn!(error = %error.message, "allocating a producer id block failed");
                    return Err(KafkaError::CoordinatorNotAvailable);
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
}
