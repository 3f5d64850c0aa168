//! Producer state of one partition, Kafka's `ProducerStateManager`, kept
//! next to the log as Kafka keeps it: idempotent producers' last batches,
//! open transactions (hence the last stable offset) and aborted ones.
//!
//! `state` is the pure state (no I/O, `now` passed in) and its rules;
//! `persistence` is its file I/O: the snapshot file, written and read, and
//! the replay of the log after a snapshot at open. The broker holds one
//! `ProducerStateManager` per partition under the lock its leader appends
//! take, and calls `persistence` to save and rebuild it.

pub mod persistence;
mod state;

pub use crate::control::Marker;
pub use state::{
    AbortedTransaction, BatchRange, ProducerEntry, ProducerStateManager, SequenceCheck,
    SequenceError, BATCHES_RETAINED,
};
