//! sluice-meta: cluster metadata as a replicated state machine.
//!
//! CONTRACT (the broker codes against exactly this public API; extend it, do not
//! rename it without updating crates/broker):
//!
//! * `MetadataRecord` — the records of the metadata log.
//! * `ClusterImage` — the state machine: the result of applying every committed
//!   record in order. Pure, no I/O; `apply` is deterministic.
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
pub use records::{BrokerRegistration, MetadataRecord, PartitionState};
