//! One module per Kafka API family.

pub mod admin;
pub mod api_versions;
pub mod cluster;
pub mod configs;
pub mod delete_records;
pub mod fetch;
pub mod find_coordinator;
pub mod groups;
pub mod leader_epoch;
pub mod leader_hints;
pub mod list_offsets;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod producer_ids;
pub mod quorum;
pub mod topics;
pub mod transactions;
pub mod transactions_admin;
pub mod txn_markers;

use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

/// `authorized_operations` when the client did not ask for them
/// (Java's AUTHORIZED_OPERATIONS_OMITTED).
pub const AUTHORIZED_OPERATIONS_OMITTED: i32 = i32::MIN;

/// Every topic operation, as a bit field (no ACLs yet: everything allowed).
/// READ 3, WRITE 4, CREATE 5, DELETE 6, ALTER 7, DESCRIBE 8,
/// DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11.
pub const TOPIC_OPERATIONS_ALL: i32 =
    (1 << 3) | (1 << 4) | (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8) | (1 << 10) | (1 << 11);

/// Every cluster operation: CREATE 5, ALTER 7, DESCRIBE 8, CLUSTER_ACTION 9,
/// DESCRIBE_CONFIGS 10, ALTER_CONFIGS 11, IDEMPOTENT_WRITE 12.
pub const CLUSTER_OPERATIONS_ALL: i32 =
    (1 << 5) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12);

pub fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}
