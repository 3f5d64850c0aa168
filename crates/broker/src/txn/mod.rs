//! The transaction coordinator: transactional producers' state, stored as
//! records in the internal compacted topic `__transaction_state`, the same
//! pattern as the group coordinator over `__consumer_offsets`.
//!
//! - `state` — the pure state machine of one transactional id (events in,
//!   a new state or a typed `KafkaError` out, time supplied by the caller);
//!   unit-tested with a controlled clock.
//! - `records` — Kafka's TransactionLogKey/TransactionLogValue formats.
//! - `store` — replaying `__transaction_state`; appends (plain, or as a
//!   producer's transactional batch) go through `crate::internal_topic`.
//! - `coordinator` — the runtime: InitProducerId, AddPartitionsToTxn,
//!   EndTxn (markers to every partition, `__consumer_offsets` included,
//!   answered once durable), TxnOffsetCommit, the produce verification and
//!   the timeout/expiration checks.
//! - `verify` — the pure produce-verification table the coordinator keeps:
//!   each producer id's epoch and ongoing transaction.

pub mod coordinator;
pub mod records;
pub mod state;
pub mod store;
pub mod verify;

pub use coordinator::{TransactionCoordinator, TxnConfig};
pub use verify::{ProduceRefusal, ProduceVerifier};

/// The internal topic holding transaction state.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
