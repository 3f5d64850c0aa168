//! The openraft plumbing of the metadata quorum: type config, storage, network.

pub(crate) mod log_store;
pub(crate) mod network;
pub(crate) mod state_machine;

use std::io::Cursor;
use std::sync::Arc;

use tokio::sync::watch;

use crate::{EntryResponse, RecordBatch};

openraft::declare_raft_types!(
    /// Openraft type config of the metadata quorum. Kafka's i32 node ids map to
    /// u64 (node ids are never negative).
    pub TypeConfig:
        D = RecordBatch,
        R = EntryResponse,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<TypeConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The cluster id once known, shared by the state machine (which learns it
/// from the log or a snapshot) and the network (which presents it in Hello).
pub(crate) type ClusterIdCell = Arc<watch::Sender<Option<String>>>;

#[cfg(test)]
mod conformance_tests;
