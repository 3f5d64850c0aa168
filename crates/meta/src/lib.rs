//! sluice-meta: cluster metadata as a replicated state machine.
//!
//! CONTRACT (the broker codes against exactly this public API; extend it, do not
//! rename it without updating crates/broker):
//!
//! * `MetadataRecord` — the records of the metadata log, stored in versioned
//!   `RecordBatch`es (`RECORD_FORMAT_VERSION`; older data dirs still open).
//! * `ClusterImage` — the state machine: the result of applying every committed
//!   record in order. Pure, no I/O; `apply` is deterministic and returns a
//!   `RecordOutcome` (it refuses records that would break the image, and it
//!   assigns producer-id blocks and broker epochs).
//! * `MetadataQuorum` — the openraft-backed quorum (a one-voter quorum for a
//!   single node; voters and learners later). Raft log, vote and snapshots are
//!   persisted under `<data-dir>/meta/`, together with the node id and cluster id.

/// Errors of the metadata crate.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    /// Reading or writing `<data-dir>/meta/` failed.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// Openraft failed, or this node cannot serve the request.
    #[error("metadata quorum error: {0}")]
    Raft(String),
    /// The data dir belongs to another node.
    #[error("node id {found} in {dir} does not match configured node id {configured}")]
    NodeIdMismatch {
        /// The `meta` directory holding the `node.id` file.
        dir: String,
        /// The node id stored there.
        found: i32,
        /// The node id this process was configured with.
        configured: i32,
    },
    /// The state machine refused a proposed entry; nothing of it was applied.
    #[error("metadata record refused: {0}")]
    Rejected(#[from] RecordRejected),
    /// `shutdown` was called.
    #[error("quorum is shut down")]
    ShutDown,
}

mod delta;
mod files;
mod image;
mod quorum;
mod raft;
mod records;

pub use delta::ImageDelta;
pub use image::{ClusterImage, TopicImage};
pub use quorum::{MetadataQuorum, QuorumConfig};
pub use records::{
    BrokerListener, BrokerRegistration, EntryResponse, LeaderRecoveryState, MetadataRecord,
    PartitionState, RecordBatch, RecordOutcome, RecordRejected, RECORD_FORMAT_VERSION,
};
