//! The metadata quorum: openraft wired to the durable log, the state machine
//! and the (for now absent) network.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{ClientWriteError, Fatal, InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use tokio::sync::watch;

use crate::files::{check_or_store_node_id, load_or_create_cluster_id};
use crate::raft::log_store::LogStore;
use crate::raft::network::NetworkFactory;
use crate::raft::state_machine::StateMachineStore;
use crate::raft::TypeConfig;
use crate::{ClusterImage, MetaError, MetadataRecord, RecordBatch, RecordOutcome};

/// Subdirectory of the data dir holding everything of the quorum.
const META_DIR: &str = "meta";
/// How long `open` waits for this node to become leader and catch up.
const OPEN_TIMEOUT_MS: u64 = 30_000;
/// Raft heartbeat interval.
const HEARTBEAT_INTERVAL_MS: u64 = 50;
/// Raft election timeout, lower bound.
const ELECTION_TIMEOUT_MIN_MS: u64 = 150;
/// Raft election timeout, upper bound.
const ELECTION_TIMEOUT_MAX_MS: u64 = 300;
/// A snapshot is built after this many entries since the last one.
const SNAPSHOT_AFTER_ENTRIES: u64 = 1000;
/// Entries kept in the log behind a snapshot (the rest is purged).
const ENTRIES_KEPT_AFTER_SNAPSHOT: u64 = 100;

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
    /// The openraft instance.
    raft: Raft<TypeConfig>,
    /// The log store, kept to flush it on shutdown.
    log_store: LogStore,
    /// This node's id.
    node_id: i32,
    /// The cluster id from `<data-dir>/meta/cluster.id`.
    cluster_id: String,
    /// The latest applied image, published by the state machine.
    image_receiver: watch::Receiver<Arc<ClusterImage>>,
    /// Set by `shutdown`; later proposals fail with `ShutDown`.
    shut_down: AtomicBool,
}

fn raft_node_id(node_id: i32) -> Result<u64, MetaError> {
    u64::try_from(node_id).map_err(|_| MetaError::Raft(format!("negative node id {node_id}")))
}

impl MetadataQuorum {
    /// The cluster id stored under `<data_dir>/meta/`, or `None` when the
    /// quorum was never opened there (or its files were removed).
    pub fn stored_cluster_id(data_dir: &Path) -> Result<Option<String>, MetaError> {
        crate::files::stored_cluster_id(&data_dir.join(META_DIR))
    }

    /// Opens `<data_dir>/meta/` (creating it and a new cluster id on first
    /// start; persisting node id and cluster id), starts openraft, initializes
    /// the one-voter membership on first start, replays/loads the state machine,
    /// and returns when this node is leader and the image is caught up.
    ///
    /// Only a one-voter quorum is supported for now: `voters` must be empty or
    /// hold only this node, otherwise this fails with `MetaError::Raft`.
    pub async fn open(data_dir: &Path, config: QuorumConfig) -> Result<MetadataQuorum, MetaError> {
        let node_id = config.node_id;
        let raft_id = raft_node_id(node_id)?;
        let mut voters = BTreeMap::new();
        for (voter_id, address) in &config.voters {
            voters.insert(raft_node_id(*voter_id)?, BasicNode::new(address.clone()));
        }
        voters.entry(raft_id).or_insert_with(BasicNode::default);
        if voters.len() > 1 {
            return Err(MetaError::Raft(format!(
                "node {node_id}: quorums with more than one voter are not supported yet (voters: {:?})",
                config.voters
            )));
        }

        let dir = data_dir.join(META_DIR);
        let dir_for_io = dir.clone();
        let (cluster_id, log_store, state_machine, image_receiver) =
            tokio::task::spawn_blocking(move || -> Result<_, MetaError> {
                std::fs::create_dir_all(&dir_for_io)?;
                check_or_store_node_id(&dir_for_io, node_id)?;
                let cluster_id = load_or_create_cluster_id(&dir_for_io)?;
                let log_store = LogStore::open(&dir_for_io)?;
                let (state_machine, image_receiver) =
                    StateMachineStore::open(&dir_for_io, cluster_id.clone())?;
                Ok((cluster_id, log_store, state_machine, image_receiver))
            })
            .await
            .map_err(|e| MetaError::Raft(format!("opening {}: {e}", dir.display())))??;
        let pristine = log_store.is_pristine()?;

        let raft_config = Config {
            cluster_name: format!("sluice-{cluster_id}"),
            heartbeat_interval: HEARTBEAT_INTERVAL_MS,
            election_timeout_min: ELECTION_TIMEOUT_MIN_MS,
            election_timeout_max: ELECTION_TIMEOUT_MAX_MS,
            snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_AFTER_ENTRIES),
            max_in_snapshot_log_to_keep: ENTRIES_KEPT_AFTER_SNAPSHOT,
            ..Default::default()
        }
        .validate()
        .map_err(|e| MetaError::Raft(e.to_string()))?;
        let raft = Raft::new(
            raft_id,
            Arc::new(raft_config),
            NetworkFactory,
            log_store.clone(),
            state_machine,
        )
        .await
        .map_err(|e| MetaError::Raft(e.to_string()))?;

        if pristine {
            tracing::info!(node_id, cluster_id = %cluster_id, "initializing the metadata quorum");
            match raft.initialize(voters).await {
                Ok(()) => {}
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(error) => {
                    let _ = raft.shutdown().await;
                    return Err(MetaError::Raft(error.to_string()));
                }
            }
        }

        let quorum = MetadataQuorum {
            raft,
            log_store,
            node_id,
            cluster_id,
            image_receiver,
            shut_down: AtomicBool::new(false),
        };
        if let Err(error) = quorum.wait_until_caught_up().await {
            // Stopped, so openraft does not outlive its dropped handle.
            let _ = quorum.raft.shutdown().await;
            return Err(error);
        }
        tracing::info!(
            node_id,
            cluster_id = %quorum.cluster_id,
            last_applied_index = quorum.image().last_applied_index,
            "metadata quorum open"
        );
        Ok(quorum)
    }

    /// Waits until this node leads and its image has applied every entry.
    async fn wait_until_caught_up(&self) -> Result<(), MetaError> {
        let timeout = Some(Duration::from_millis(OPEN_TIMEOUT_MS));
        self.raft
            .wait(timeout)
            .state(ServerState::Leader, "metadata quorum open")
            .await
            .map_err(|e| MetaError::Raft(format!("waiting for leadership: {e}")))?;
        // Reads the leader's commit index (which includes the entry of its own
        // term) and waits until the state machine has applied it.
        let caught_up = tokio::time::timeout(
            Duration::from_millis(OPEN_TIMEOUT_MS),
            self.raft.ensure_linearizable(),
        )
        .await
        .map_err(|_| MetaError::Raft("timed out catching up the metadata image".to_string()))?;
        caught_up.map_err(|e| MetaError::Raft(format!("catching up the metadata image: {e}")))?;
        // In a one-voter quorum every entry in the local log is committed (this
        // node alone is the majority), so wait for all of them to be applied.
        let last_log_index = self.raft.metrics().borrow().last_log_index;
        self.raft
            .wait(timeout)
            .applied_index_at_least(last_log_index, "metadata image caught up")
            .await
            .map_err(|e| MetaError::Raft(format!("catching up the metadata image: {e}")))?;
        Ok(())
    }

    /// Appends records through Raft as one entry; returns after they are
    /// committed (durable in the Raft log) and applied to the image, with the
    /// outcome of each record. When the state machine refuses one, the entry
    /// changed nothing and this returns `MetaError::Rejected`.
    pub async fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<Vec<RecordOutcome>, MetaError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(MetaError::ShutDown);
        }
        match self.raft.client_write(RecordBatch::new(records)).await {
            Ok(written) => Ok(written.data?),
            Err(RaftError::Fatal(Fatal::Stopped)) => Err(MetaError::ShutDown),
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(forward))) => {
                Err(MetaError::Raft(format!(
                    "node {} is not the metadata quorum leader (leader: {:?})",
                    self.node_id, forward.leader_id
                )))
            }
            Err(error) => Err(MetaError::Raft(error.to_string())),
        }
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<ClusterImage> {
        self.image_receiver.borrow().clone()
    }

    /// Notified with each newly applied image.
    pub fn subscribe(&self) -> watch::Receiver<Arc<ClusterImage>> {
        self.image_receiver.clone()
    }

    /// The cluster id (22 URL-safe base64 characters).
    pub fn cluster_id(&self) -> String {
        self.cluster_id.clone()
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The node id of the current quorum leader (the active controller).
    pub fn leader_id(&self) -> Option<i32> {
        let leader = self.raft.metrics().borrow().current_leader;
        leader.and_then(|id| i32::try_from(id).ok())
    }

    /// Builds a snapshot of the current image now and waits until it covers
    /// everything applied so far (log entries behind it are then purged in the
    /// background). Snapshots are otherwise taken every
    /// `SNAPSHOT_AFTER_ENTRIES` entries; this is for tests and tools.
    #[doc(hidden)]
    pub async fn snapshot_now(&self) -> Result<(), MetaError> {
        let applied = self.raft.metrics().borrow().last_applied;
        self.raft
            .trigger()
            .snapshot()
            .await
            .map_err(|e| MetaError::Raft(e.to_string()))?;
        self.raft
            .wait(Some(Duration::from_millis(OPEN_TIMEOUT_MS)))
            .metrics(|m| m.snapshot >= applied, "snapshot built")
            .await
            .map_err(|e| MetaError::Raft(format!("waiting for the snapshot: {e}")))?;
        Ok(())
    }

    /// Stops Raft and flushes its storage.
    pub async fn shutdown(&self) -> Result<(), MetaError> {
        self.shut_down.store(true, Ordering::Release);
        self.raft
            .shutdown()
            .await
            .map_err(|e| MetaError::Raft(format!("shutting down: {e}")))?;
        let log_store = self.log_store.clone();
        tokio::task::spawn_blocking(move || log_store.flush())
            .await
            .map_err(|e| MetaError::Raft(format!("flushing the Raft log: {e}")))??;
        tracing::info!(node_id = self.node_id, "metadata quorum shut down");
        Ok(())
    }
}
