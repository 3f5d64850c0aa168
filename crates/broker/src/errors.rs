//! Typed Kafka errors. The coordinators, their pure state machines and the
//! internal-topic path return these; `KafkaError::code` is the one place a
//! domain error becomes its wire code, and handlers translate at the edge.
//! (Storage and batch errors become codes in `error_codes`, next to the
//! table.)

use sluice_log::LogError;

use crate::error_codes;

/// A Kafka error a coordinator or state machine answers with. The names
/// and meanings are Kafka's `Errors` enum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum KafkaError {
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("the coordinator is loading")]
    CoordinatorLoadInProgress,
    #[error("this is not the coordinator")]
    NotCoordinator,
    #[error("the request timed out")]
    RequestTimedOut,
    #[error("unexpected server error")]
    UnknownServerError,
    #[error("this broker does not lead the partition")]
    NotLeaderOrFollower,
    #[error("storage error on the partition's log")]
    KafkaStorageError,
    #[error("a batch in the log is corrupt")]
    CorruptMessage,
    #[error("the generation id is not current")]
    IllegalGeneration,
    #[error("the member's protocols do not match the group's")]
    InconsistentGroupProtocol,
    #[error("the member id is not known to the group")]
    UnknownMemberId,
    #[error("the session timeout is outside the broker's bounds")]
    InvalidSessionTimeout,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("the group is not empty")]
    NonEmptyGroup,
    #[error("the group does not exist")]
    GroupIdNotFound,
    #[error("a member id is required to join")]
    MemberIdRequired,
    #[error("the group is at group.max.size")]
    GroupMaxSizeReached,
    #[error("a newer member uses the same group.instance.id")]
    FencedInstanceId,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("the offset metadata is too large")]
    OffsetMetadataTooLarge,
    #[error("the transaction state does not allow the request")]
    InvalidTxnState,
    #[error("the producer id does not match the transactional id")]
    InvalidProducerIdMapping,
    #[error("the transaction timeout is outside the broker's bounds")]
    InvalidTransactionTimeout,
    #[error("another transaction operation is in progress")]
    ConcurrentTransactions,
    #[error("a newer producer uses the transactional id")]
    ProducerFenced,
    #[error("the producer epoch is not current")]
    InvalidProducerEpoch,
    #[error("the transactional id is not known")]
    TransactionalIdNotFound,
    #[error("the topic or partition is not known")]
    UnknownTopicOrPartition,
    #[error("invalid request")]
    InvalidRequest,
    #[error("the group id is empty")]
    InvalidGroupId,
}

impl KafkaError {
    /// The wire code.
    pub fn code(self) -> i16 {
        use error_codes::*;
        match self {
            KafkaError::CoordinatorNotAvailable => COORDINATOR_NOT_AVAILABLE,
            KafkaError::CoordinatorLoadInProgress => COORDINATOR_LOAD_IN_PROGRESS,
            KafkaError::NotCoordinator => NOT_COORDINATOR,
            KafkaError::RequestTimedOut => REQUEST_TIMED_OUT,
            KafkaError::UnknownServerError => UNKNOWN_SERVER_ERROR,
            KafkaError::NotLeaderOrFollower => NOT_LEADER_OR_FOLLOWER,
            KafkaError::KafkaStorageError => KAFKA_STORAGE_ERROR,
            KafkaError::CorruptMessage => CORRUPT_MESSAGE,
            KafkaError::IllegalGeneration => ILLEGAL_GENERATION,
            KafkaError::InconsistentGroupProtocol => INCONSISTENT_GROUP_PROTOCOL,
            KafkaError::UnknownMemberId => UNKNOWN_MEMBER_ID,
            KafkaError::InvalidSessionTimeout => INVALID_SESSION_TIMEOUT,
            KafkaError::RebalanceInProgress => REBALANCE_IN_PROGRESS,
            KafkaError::NonEmptyGroup => NON_EMPTY_GROUP,
            KafkaError::GroupIdNotFound => GROUP_ID_NOT_FOUND,
            KafkaError::MemberIdRequired => MEMBER_ID_REQUIRED,
            KafkaError::GroupMaxSizeReached => GROUP_MAX_SIZE_REACHED,
            KafkaError::FencedInstanceId => FENCED_INSTANCE_ID,
            KafkaError::GroupSubscribedToTopic => GROUP_SUBSCRIBED_TO_TOPIC,
            KafkaError::OffsetMetadataTooLarge => OFFSET_METADATA_TOO_LARGE,
            KafkaError::InvalidTxnState => INVALID_TXN_STATE,
            KafkaError::InvalidProducerIdMapping => INVALID_PRODUCER_ID_MAPPING,
            KafkaError::InvalidTransactionTimeout => INVALID_TRANSACTION_TIMEOUT,
            KafkaError::ConcurrentTransactions => CONCURRENT_TRANSACTIONS,
            KafkaError::ProducerFenced => PRODUCER_FENCED,
            KafkaError::InvalidProducerEpoch => INVALID_PRODUCER_EPOCH,
            KafkaError::TransactionalIdNotFound => TRANSACTIONAL_ID_NOT_FOUND,
            KafkaError::UnknownTopicOrPartition => UNKNOWN_TOPIC_OR_PARTITION,
            KafkaError::InvalidRequest => INVALID_REQUEST,
            KafkaError::InvalidGroupId => INVALID_GROUP_ID,
        }
    }

    /// What a failed append of a coordinator's own batch (to its internal
    /// topic) reports: the codes `error_codes::from_log_error` gives, for
    /// the storage errors such an append can meet; a batch the broker built
    /// itself failing validation or an offset check is a server error.
    pub fn from_log_error(error: &LogError) -> KafkaError {
        match error {
            LogError::Closed => KafkaError::NotLeaderOrFollower,
            LogError::CorruptBatch { .. } => KafkaError::CorruptMessage,
            LogError::Io { .. } | LogError::Corrupt { .. } | LogError::Locked { .. } => {
                KafkaError::KafkaStorageError
            }
            LogError::InvalidBatch(_)
            | LogError::OffsetOutOfRange { .. }
            | LogError::OffsetOutOfOrder { .. } => KafkaError::UnknownServerError,
        }
    }
}

/// The wire code of an outcome: NONE for success.
pub fn code_of<T>(result: &Result<T, KafkaError>) -> i16 {
    match result {
        Ok(_) => error_codes::NONE,
        Err(error) => error.code(),
    }
}

/// The wire code of an optional error: NONE for none.
pub fn code_or_none(error: Option<KafkaError>) -> i16 {
    error.map_or(error_codes::NONE, KafkaError::code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_kafkas() {
        assert_eq!(KafkaError::UnknownMemberId.code(), 25);
        assert_eq!(KafkaError::ProducerFenced.code(), 90);
        assert_eq!(KafkaError::CoordinatorLoadInProgress.code(), 14);
        assert_eq!(code_of::<()>(&Ok(())), 0);
        assert_eq!(code_or_none(Some(KafkaError::NonEmptyGroup)), 68);
    }
}
