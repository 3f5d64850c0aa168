//! Kafka error codes, and the one place Rust errors become them.

use sluice_log::batch::BatchError;
use sluice_log::producer_state::SequenceError;
use sluice_log::LogError;

pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const REQUEST_TIMED_OUT: i16 = 7;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const RECORD_LIST_TOO_LARGE: i16 = 18;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const INVALID_TIMESTAMP: i16 = 32;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const INVALID_CONFIG: i16 = 40;
pub const NOT_CONTROLLER: i16 = 41;
pub const INVALID_REQUEST: i16 = 42;
pub const UNSUPPORTED_FOR_MESSAGE_FORMAT: i16 = 43;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const FENCED_LEADER_EPOCH: i16 = 74;
pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
pub const INVALID_RECORD: i16 = 87;
pub const STALE_BROKER_EPOCH: i16 = 77;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const DUPLICATE_BROKER_REGISTRATION: i16 = 101;
pub const BROKER_ID_NOT_REGISTERED: i16 = 102;
pub const INCONSISTENT_TOPIC_ID: i16 = 103;
// Replication.
pub const NOT_ENOUGH_REPLICAS: i16 = 19;
pub const NOT_ENOUGH_REPLICAS_AFTER_APPEND: i16 = 20;
pub const OFFSET_NOT_AVAILABLE: i16 = 78;
pub const INVALID_UPDATE_VERSION: i16 = 95;
pub const INELIGIBLE_REPLICA: i16 = 107;
pub const NEW_LEADER_ELECTED: i16 = 108;
// ElectLeaders.
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
pub const ELIGIBLE_LEADERS_NOT_AVAILABLE: i16 = 83;
pub const ELECTION_NOT_NEEDED: i16 = 84;
// Group coordinator.
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const NOT_COORDINATOR: i16 = 16;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
// Transaction coordinator.
pub const INVALID_TXN_STATE: i16 = 48;
pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
pub const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
pub const PRODUCER_FENCED: i16 = 90;
pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
pub const TRANSACTION_ABORTABLE: i16 = 120;

/// The code a batch validation failure becomes (Kafka 4.0's choices, except
/// where docs/COMPATIBILITY.md lists a deliberate divergence: Kafka answers
/// UNKNOWN_SERVER_ERROR for an unknown codec and for an undecodable
/// compressed body, and has no bound on the decompressed size).
pub fn from_batch_error(error: &BatchError) -> i16 {
    match error {
        BatchError::CorruptSize | BatchError::CorruptCrc | BatchError::CorruptCompressed(_) => {
            CORRUPT_MESSAGE
        }
        BatchError::InvalidMagic(_)
        | BatchError::InvalidMultipleBatches
        | BatchError::InvalidRecordCount { .. }
        | BatchError::InvalidControlBatch
        | BatchError::InvalidRecords { .. }
        | BatchError::MissingKeys { .. } => INVALID_RECORD,
        BatchError::UnsupportedCompression(_) => UNSUPPORTED_COMPRESSION_TYPE,
        BatchError::RecordsTooLarge { .. } => MESSAGE_TOO_LARGE,
    }
}

/// The code a batch refused by the producer state becomes.
pub fn from_sequence_error(error: SequenceError) -> i16 {
    match error {
        SequenceError::InvalidProducerEpoch => INVALID_PRODUCER_EPOCH,
        SequenceError::OutOfOrderSequenceNumber => OUT_OF_ORDER_SEQUENCE_NUMBER,
    }
}

/// The code a storage error becomes.
pub fn from_log_error(error: &LogError) -> i16 {
    match error {
        LogError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        LogError::OffsetOutOfOrder { .. } => UNKNOWN_SERVER_ERROR,
        LogError::InvalidBatch(batch) => from_batch_error(batch),
        LogError::Closed => NOT_LEADER_OR_FOLLOWER,
        // A fetch that starts at an unreadable batch: the client reports it
        // instead of retrying a storage error forever.
        LogError::CorruptBatch { .. } => CORRUPT_MESSAGE,
        LogError::Io { .. } | LogError::Corrupt { .. } | LogError::Locked { .. } => {
            KAFKA_STORAGE_ERROR
        }
    }
}
