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

use std::path::Path;
use std::sync::Arc;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata quorum error: {0}")]
    Raft(String),
    #[error("node id {found} in {dir} does not match configured node id {configured}")]
    NodeIdMismatch {
        dir: String,
        found: i32,
        configured: i32,
    },
    #[error("quorum is shut down")]
    ShutDown,
}

mod image;
mod records;

pub use image::{ClusterImage, TopicImage};
pub use records::{BrokerRegistration, MetadataRecord, PartitionState};

/// Static configuration of this node's quorum membership.
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    /// This node's `node.id`.
    pub node_id: i32,
    /// `controller.quorum.voters`: (node id, host:port). A single node passes
    /// itself only (a one-voter quorum; no network is used).
    pub voters: Vec<(i32, String)>,
}

/// The metadata quorum.
pub struct MetadataQuorum {
    _private: (),
}

impl MetadataQuorum {
    /// Opens `<data_dir>/meta/` (creating it and a new cluster id on first
    /// start; persisting node id and cluster id), starts openraft, initializes
    /// the one-voter membership on first start, replays/loads the state machine,
    /// and returns when this node is leader and the image is caught up.
    pub async fn open(data_dir: &Path, config: QuorumConfig) -> Result<MetadataQuorum, MetaError> {
        let _ = (data_dir, config);
        todo!()
    }

    /// Appends records through Raft as one entry; returns after they are
    /// committed (durable in the Raft log) and applied to the image.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<(), MetaError> {
        let _ = records;
        todo!()
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<ClusterImage> {
        todo!()
    }

    /// Notified with each newly applied image.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<ClusterImage>> {
        todo!()
    }

    pub fn cluster_id(&self) -> String {
        todo!()
    }

    pub fn node_id(&self) -> i32 {
        todo!()
    }

    /// The node id of the current quorum leader (the active controller).
    pub fn leader_id(&self) -> Option<i32> {
        todo!()
    }

    /// Stops Raft and flushes its storage.
    pub async fn shutdown(&self) -> Result<(), MetaError> {
        todo!()
    }
}
