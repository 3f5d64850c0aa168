//! Replaying `__transaction_state`; appends go through
//! [`crate::internal_topic`].

use std::collections::HashMap;

use super::records;
use super::state::TxnMetadata;
use crate::replica_manager::Partition;

pub use crate::internal_topic::{append, Entry, TransactionalProducer};

/// Replays one `__transaction_state` partition into `txns` (the last record
/// of each id wins; a tombstone removes it). Damaged records are skipped
/// with a warning; a read error stops the replay of this partition.
pub fn replay(partition: &Partition, txns: &mut HashMap<String, TxnMetadata>) {
    crate::internal_topic::replay(partition, "__transaction_state", |record| {
        if record.control {
            return;
        }
        let Some(id) = record.key.as_deref().and_then(records::decode_key) else {
            tracing::warn!("skipping a record with an unknown key in __transaction_state");
            return;
        };
        match record.value.as_deref() {
            None => {
                txns.remove(&id);
            }
            Some(value) => match records::decode_value(&id, value) {
                Some(txn) => {
                    txns.insert(id, txn);
                }
                None => {
                    tracing::warn!(transactional_id = %id, "skipping a damaged transaction record")
                }
            },
        }
    });
}
