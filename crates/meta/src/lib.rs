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
//! * `MetadataQuorum` — the openraft-backed quorum: one voter for a single
//!   node (`open`), or several voters talking Raft over TCP on the controller
//!   listener (`open_voter`); learners later. Raft log, vote and snapshots are
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
    /// The peers refusing this node for its cluster id leave too few voters
    /// for a majority: its data dir belongs to another cluster.
    #[error(
        "node {node_id} has cluster id {cluster_id}, but voters {peers:?} have cluster id \
         {other_cluster_id}: this data dir belongs to another cluster"
    )]
    ClusterIdMismatch {
        /// This node.
        node_id: i32,
        /// The cluster id in this node's data dir.
        cluster_id: String,
        /// The voters that refused it (or that it refused).
        peers: Vec<i32>,
        /// Their cluster id.
        other_cluster_id: String,
    },
    /// A proposal reached a voter that is not the leader. Proposals are not
    /// forwarded (yet): the caller retries on the leader.
    #[error("this node is not the metadata quorum leader (leader: {leader:?})")]
    NotLeader {
        /// The current leader, when known.
        leader: Option<i32>,
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
pub use quorum::{MetadataQuorum, QuorumConfig, QuorumStatus, ReplicaStatus};
pub use raft::network::ControllerService;
pub use records::{
    BrokerListener, BrokerRegistration, EntryResponse, LeaderRecoveryState, MetadataRecord,
    PartitionState, RecordBatch, RecordOutcome, RecordRejected, RECORD_FORMAT_VERSION,
};
