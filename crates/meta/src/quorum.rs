//! The metadata quorum: openraft wired to the durable log, the state machine
//! and the network.
//!
//! One voter (`open`): the node initializes a one-voter membership on first
//! start and leads alone; no network is used. Several voters (`open_voter`):
//! see `cluster.rs` for how they form a cluster and agree on its id. An
//! observer (`open_observer`, Kafka's `process.roles=broker`): a learner that
//! follows the log and never votes; see `observers.rs`.

mod cluster;
mod observers;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use openraft::error::{ClientWriteError, Fatal, InitializeError, RaftError};
use openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::files::{check_or_store_node_id, load_or_create_cluster_id, stored_cluster_id};
use crate::raft::log_store::LogStore;
use crate::raft::network::client::{NetworkFactory, PeerClient};
use crate::raft::network::server::serve_raft;
use crate::raft::network::{ControllerService, ControllerSlot, Identity};
use crate::raft::state_machine::StateMachineStore;
use crate::raft::{ClusterIdCell, TypeConfig};
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
/// Raft heartbeat interval with several voters. Openraft also uses it as
/// the time limit of each append, so it leaves room for a round trip (and a
/// reconnect) on a busy machine.
const CLUSTER_HEARTBEAT_INTERVAL_MS: u64 = 250;
/// Election timeout with several voters, lower bound: many heartbeats long,
/// so a busy machine does not depose a live leader.
const CLUSTER_ELECTION_TIMEOUT_MIN_MS: u64 = 1_000;
/// Election timeout with several voters, upper bound.
const CLUSTER_ELECTION_TIMEOUT_MAX_MS: u64 = 2_000;
/// A snapshot is built after this many entries since the last one.
const SNAPSHOT_AFTER_ENTRIES: u64 = 1000;
/// Entries kept in the log behind a snapshot (the rest is purged).
const ENTRIES_KEPT_AFTER_SNAPSHOT: u64 = 100;

/// The quorum as one node sees it (what DescribeQuorum answers). Log end
/// offsets of the others are known only on the leader; -1 elsewhere.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct QuorumStatus {
    /// The leader, -1 when none is known.
    pub leader_id: i32,
    /// The Raft term (Kafka's leader epoch of the metadata partition).
    pub leader_epoch: i32,
    /// The last applied entry's index on this node.
    pub high_watermark: i64,
    /// Every voter with its log end offset.
    pub voters: Vec<ReplicaStatus>,
    /// Learners (observers) with their log end offsets.
    pub observers: Vec<ReplicaStatus>,
}

/// One replica of the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReplicaStatus {
    /// Its node id.
    pub replica_id: i32,
    /// The index after its last replicated entry (-1: unknown here).
    pub log_end_offset: i64,
}

/// Static configuration of this node's quorum membership.
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    /// This node's `node.id`.
    pub node_id: i32,
    /// `controller.quorum.voters`: (node id, host:port). A single node passes
    /// itself only (a one-voter quorum; no network is used). With several,
    /// every voter must be configured with the same node ids.
    pub voters: Vec<(i32, String)>,
}

/// What this node is in the quorum.
enum Role {
    /// One of the configured voters.
    Voter,
    /// An observer the leader reaches at `address`.
    Observer {
        /// Its Raft listener's address, as the leader connects to it.
        address: String,
    },
}

/// The Raft server task on the controller listener.
struct RaftServer {
    /// Set to true to stop the server.
    stop: watch::Sender<bool>,
    /// The server task, taken by `shutdown` to wait for it.
    task: Mutex<Option<JoinHandle<()>>>,
}

/// The metadata quorum.
pub struct MetadataQuorum {
    /// The openraft instance.
    raft: Raft<TypeConfig>,
    /// The log store, kept to flush it on shutdown.
    log_store: LogStore,
    /// This node's id.
    node_id: i32,
    /// The cluster id (from `<data-dir>/meta/cluster.id`, or learned from the
    /// log); always known once `open` returned.
    cluster_id: ClusterIdCell,
    /// Serves peers' Raft RPCs; `None` without a controller listener.
    server: Option<RaftServer>,
    /// This node on the network (the peers in conflict with it).
    identity: Arc<Identity>,
    /// The latest applied image, published by the state machine.
    image_receiver: watch::Receiver<Arc<ClusterImage>>,
    /// Set by `shutdown`; later proposals fail with `ShutDown`.
    shut_down: AtomicBool,
    /// What this node serves as the active controller, once the broker set it.
    controller: ControllerSlot,
    /// The configured voters' controller addresses.
    voter_addresses: BTreeMap<u64, String>,
    /// Idle connections to other voters for controller requests (apart from
    /// openraft's, so a slow request never delays a heartbeat of Raft).
    controller_clients: Mutex<BTreeMap<u64, Vec<PeerClient>>>,
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
    /// This is the one-voter quorum: `voters` must be empty or hold only this
    /// node, otherwise this fails with `MetaError::Raft` (several voters need
    /// the controller listener: [`MetadataQuorum::open_voter`]).
    pub async fn open(data_dir: &Path, config: QuorumConfig) -> Result<MetadataQuorum, MetaError> {
        let voters = voter_nodes(&config)?;
        if voters.len() > 1 {
            return Err(MetaError::Raft(format!(
                "node {}: a quorum of several voters needs the controller listener \
                 (MetadataQuorum::open_voter); voters: {:?}",
                config.node_id, config.voters
            )));
        }
        Self::start(data_dir, config.node_id, voters, None, Role::Voter).await
    }

    /// Opens this node as one voter of `config.voters`, serving the other
    /// voters' Raft RPCs on `controller_listener` (its address is the one the
    /// others have for this node).
    ///
    /// With several voters, a new cluster forms whatever order they start in:
    /// every pristine voter initializes the same membership (the configured
    /// voters) and none can lead without a majority; the first leader commits
    /// the cluster id, which every voter learns from the log and keeps in
    /// `<data_dir>/meta/cluster.id`. A restarted voter rejoins from its own
    /// log and snapshot. This returns when a leader is known, the cluster id
    /// is known, and this node's image has applied what the leader had
    /// committed; it fails with `MetaError::ClusterIdMismatch` when this data
    /// dir belongs to another cluster than a majority of the voters. One
    /// voter with a listener forms the same way (alone), so that observers
    /// can follow it and learn the cluster id from the log.
    pub async fn open_voter(
        data_dir: &Path,
        config: QuorumConfig,
        controller_listener: std::net::TcpListener,
    ) -> Result<MetadataQuorum, MetaError> {
        let voters = voter_nodes(&config)?;
        Self::start(
            data_dir,
            config.node_id,
            voters,
            Some(controller_listener),
            Role::Voter,
        )
        .await
    }

    /// Opens this node as an observer of the quorum of `config.voters` (Kafka's
    /// `process.roles=broker`): it is not a voter, and follows the metadata
    /// log as a Raft learner. It asks the voters to add it at `address`, the
    /// address of `raft_listener` the leader can reach, serves the leader's
    /// appends there, and returns once it knows the cluster id and has
    /// applied what the leader had committed. A restarted observer follows
    /// on from its own log.
    pub async fn open_observer(
        data_dir: &Path,
        config: QuorumConfig,
        raft_listener: std::net::TcpListener,
        address: String,
    ) -> Result<MetadataQuorum, MetaError> {
        let mut voters = BTreeMap::new();
        for (voter_id, voter_address) in &config.voters {
            voters.insert(
                raft_node_id(*voter_id)?,
                BasicNode::new(voter_address.clone()),
            );
        }
        let me = raft_node_id(config.node_id)?;
        if voters.contains_key(&me) {
            return Err(MetaError::Raft(format!(
                "node {} is one of the voters {:?}; an observer (process.roles=broker) is not",
                config.node_id, config.voters
            )));
        }
        if voters.is_empty() {
            return Err(MetaError::Raft(format!(
                "node {}: an observer (process.roles=broker) needs controller.quorum.voters",
                config.node_id
            )));
        }
        let role = Role::Observer { address };
        Self::start(data_dir, config.node_id, voters, Some(raft_listener), role).await
    }

    async fn start(
        data_dir: &Path,
        node_id: i32,
        voters: BTreeMap<u64, BasicNode>,
        controller_listener: Option<std::net::TcpListener>,
        role: Role,
    ) -> Result<MetadataQuorum, MetaError> {
        // Networked: the cluster's way of forming (the first leader commits
        // the cluster id) and its Raft timings, even with one voter, whose
        // observers learn the cluster id from the log.
        let several_voters = voters.len() > 1 || controller_listener.is_some();
        let dir = data_dir.join(META_DIR);
        let (cluster_id, log_store, state_machine, image_receiver) =
            open_storage(&dir, node_id, several_voters).await?;
        let pristine = log_store.is_pristine()?;
        let raft_id = raft_node_id(node_id)?;
        let voter_ids: BTreeSet<u64> = voters.keys().copied().collect();
        let identity = Arc::new(Identity::new(raft_id, voter_ids, cluster_id.clone()));
        let voter_addresses: BTreeMap<u64, String> = voters
            .iter()
            .map(|(id, node)| (*id, node.addr.clone()))
            .collect();
        let network = NetworkFactory::new(identity.clone(), voter_addresses.clone());
        let config = raft_config(cluster_id.borrow().as_deref(), several_voters)?;
        let raft = Raft::new(
            raft_id,
            Arc::new(config),
            network,
            log_store.clone(),
            state_machine,
        )
        .await
        .map_err(|e| MetaError::Raft(e.to_string()))?;
        let controller: ControllerSlot = Arc::default();
        let server = match controller_listener {
            Some(listener) => match start_server(listener, &raft, &identity, &controller) {
                Ok(server) => Some(server),
                Err(error) => {
                    let _ = raft.shutdown().await;
                    return Err(error);
                }
            },
            None => None,
        };
        let quorum = MetadataQuorum {
            raft,
            log_store,
            node_id,
            cluster_id,
            server,
            identity,
            image_receiver,
            shut_down: AtomicBool::new(false),
            controller,
            voter_addresses,
            controller_clients: Mutex::new(BTreeMap::new()),
        };
        let formed = match role {
            Role::Voter => quorum.form(pristine, voters).await,
            Role::Observer { address } => quorum.follow(pristine, &voters, &address).await,
        };
        if let Err(error) = formed {
            // Stopped, so openraft does not outlive its dropped handle.
            let _ = quorum.shutdown().await;
            return Err(error);
        }
        tracing::info!(
            node_id,
            cluster_id = %quorum.cluster_id(),
            last_applied_index = quorum.image().last_applied_index,
            "metadata quorum open"
        );
        Ok(quorum)
    }

    /// Initializes a pristine node, then waits until it is caught up.
    async fn form(
        &self,
        pristine: bool,
        voters: BTreeMap<u64, BasicNode>,
    ) -> Result<(), MetaError> {
        let several_voters = voters.len() > 1 || self.server.is_some();
        if pristine {
            tracing::info!(node_id = self.node_id, voters = ?voters.keys(), "initializing the metadata quorum");
            match self.raft.initialize(voters).await {
                Ok(()) => {}
                Err(RaftError::APIError(InitializeError::NotAllowed(_))) => {}
                Err(error) => return Err(MetaError::Raft(error.to_string())),
            }
        } else if several_voters {
            cluster::check_stored_voters(self, &voters)?;
        }
        if several_voters {
            cluster::wait_until_formed(self, Duration::from_millis(OPEN_TIMEOUT_MS)).await
        } else {
            self.wait_until_caught_up().await
        }
    }

    /// As an observer: checks a used data dir's voters, then joins and
    /// catches up.
    async fn follow(
        &self,
        pristine: bool,
        voters: &BTreeMap<u64, BasicNode>,
        address: &str,
    ) -> Result<(), MetaError> {
        if !pristine {
            cluster::check_stored_voters(self, voters)?;
        }
        observers::join_and_catch_up(self, address, Duration::from_millis(OPEN_TIMEOUT_MS)).await
    }

    /// Whether this node talks to other nodes of the quorum (it serves a
    /// controller listener): several voters, or observers.
    pub fn is_networked(&self) -> bool {
        self.server.is_some()
    }

    /// Whether this node is an observer (a learner that never votes).
    pub fn is_observer(&self) -> bool {
        self.identity.observer
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
                Err(MetaError::NotLeader {
                    leader: forward.leader_id.and_then(|id| i32::try_from(id).ok()),
                })
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
        self.cluster_id.borrow().clone().unwrap_or_default()
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

    /// The quorum as this node sees it.
    pub fn quorum_status(&self) -> QuorumStatus {
        let metrics = self.raft.metrics().borrow().clone();
        let offset_of = |id: u64| -> i64 {
            if id == metrics.id {
                return metrics.last_log_index.map_or(0, |index| index as i64 + 1);
            }
            metrics
                .replication
                .as_ref()
                .and_then(|replication| replication.get(&id))
                .map_or(-1, |matched| {
                    matched.map_or(0, |log_id| log_id.index as i64 + 1)
                })
        };
        let membership = metrics.membership_config.membership();
        let status = |id: u64| ReplicaStatus {
            replica_id: i32::try_from(id).unwrap_or(-1),
            log_end_offset: offset_of(id),
        };
        let voters: Vec<ReplicaStatus> = membership.voter_ids().map(status).collect();
        let observers: Vec<ReplicaStatus> = membership.learner_ids().map(status).collect();
        QuorumStatus {
            leader_id: metrics
                .current_leader
                .and_then(|id| i32::try_from(id).ok())
                .unwrap_or(-1),
            leader_epoch: i32::try_from(metrics.current_term).unwrap_or(i32::MAX),
            high_watermark: metrics
                .last_applied
                .map_or(0, |log_id| log_id.index as i64 + 1),
            voters,
            observers,
        }
    }

    /// As the active controller: confirms with a majority of the voters that
    /// this node still leads, and waits until its image has applied
    /// everything committed before (openraft's linearizable read). A
    /// leader that was paused or cut off, and replaced meanwhile, fails here
    /// instead of answering from its stale image; so does one that cannot
    /// reach a majority within `timeout`.
    pub async fn confirm_leadership(&self, timeout: Duration) -> Result<(), MetaError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(MetaError::ShutDown);
        }
        match tokio::time::timeout(timeout, self.raft.ensure_linearizable()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(error)) => Err(MetaError::NotLeader {
                leader: match error {
                    RaftError::APIError(openraft::error::CheckIsLeaderError::ForwardToLeader(
                        forward,
                    )) => forward.leader_id.and_then(|id| i32::try_from(id).ok()),
                    _ => None,
                },
            }),
            Err(_) => Err(MetaError::NotLeader { leader: None }),
        }
    }

    /// Whether this node is the active controller (the quorum leader).
    pub fn is_active_controller(&self) -> bool {
        self.leader_id() == Some(self.node_id)
    }

    /// Sets what this node serves when it is the active controller. The
    /// first call wins.
    pub fn set_controller_service(&self, service: Arc<dyn ControllerService>) {
        let _ = self.controller.set(service);
    }

    /// Sends a request to the active controller's service (this node's own
    /// when it leads) and returns its answer. Fails with `NotLeader` when no
    /// leader is known or the leader changes while it waits, and with `Io`
    /// when the leader cannot be reached in `timeout`; the caller retries
    /// (leadership may be moving).
    pub async fn call_controller(
        &self,
        request: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, MetaError> {
        if self.shut_down.load(Ordering::Acquire) {
            return Err(MetaError::ShutDown);
        }
        let leader = self.raft.metrics().borrow().current_leader;
        let Some(leader) = leader else {
            return Err(MetaError::NotLeader { leader: None });
        };
        if leader == raft_node_id(self.node_id)? {
            let service = self.controller.get().cloned().ok_or_else(|| {
                MetaError::Raft(format!(
                    "node {} runs no controller service yet",
                    self.node_id
                ))
            })?;
            return Ok(service.handle(request).await);
        }
        let mut client = self.controller_client(leader)?;
        // A leader that stops answering (paused, cut off) is replaced by an
        // election: the call ends then, so the caller asks the new one at
        // once instead of waiting out `timeout` on the old (a broker's
        // heartbeat stuck there would let the new controller fence it).
        let mut metrics = self.raft.metrics();
        let moved = async move {
            if metrics
                .wait_for(|m| m.current_leader != Some(leader))
                .await
                .is_err()
            {
                std::future::pending::<()>().await;
            }
        };
        let answer = tokio::select! {
            answer = client.controller_call(request, timeout) => answer,
            () = moved => return Err(MetaError::NotLeader { leader: None }),
        };
        if answer.is_ok() {
            if let Ok(mut idle) = self.controller_clients.lock() {
                idle.entry(leader).or_default().push(client);
            }
        }
        Ok(answer?)
    }

    /// An idle client to `leader`, or a new one.
    fn controller_client(&self, leader: u64) -> Result<PeerClient, MetaError> {
        if let Some(client) = self
            .controller_clients
            .lock()
            .ok()
            .and_then(|mut idle| idle.get_mut(&leader).and_then(Vec::pop))
        {
            return Ok(client);
        }
        let address = self.voter_addresses.get(&leader).cloned().ok_or_else(|| {
            MetaError::Raft(format!(
                "the quorum leader {leader} is not a configured voter"
            ))
        })?;
        Ok(PeerClient::new(self.identity.clone(), leader, address))
    }

    /// Waits until the image has applied the entry at `index` (for example
    /// the one the active controller answered after), at most `timeout`.
    /// Returns whether it has.
    pub async fn wait_for_applied(&self, index: u64, timeout: Duration) -> bool {
        let mut images = self.subscribe();
        let wait = images.wait_for(|image| image.last_applied_index >= index);
        let applied = matches!(tokio::time::timeout(timeout, wait).await, Ok(Ok(_)));
        applied
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

    /// Completes when openraft's core stopped by itself (a storage error:
    /// the metadata log could not be written, or a panic), not through
    /// [`shutdown`](Self::shutdown); returns what it said. The node's
    /// metadata can no longer advance, so its owner must stop it, as Kafka
    /// stops a node whose metadata log cannot be written: a node that went
    /// on would serve a stale image (leaderships the others moved, reads of
    /// a log they no longer replicate).
    pub async fn core_failure(&self) -> String {
        let mut metrics = self.raft.metrics();
        loop {
            if let Err(fatal) = &metrics.borrow_and_update().running_state {
                if !self.shut_down.load(Ordering::Acquire) {
                    return fatal.to_string();
                }
            }
            if metrics.changed().await.is_err() {
                // Raft is gone (shut down): nothing more to report.
                std::future::pending::<()>().await;
            }
        }
    }

    /// Stops the Raft server (closing the controller listener and every
    /// peer connection), then Raft, and flushes its storage.
    pub async fn shutdown(&self) -> Result<(), MetaError> {
        self.shut_down.store(true, Ordering::Release);
        if let Some(server) = &self.server {
            server.stop.send_replace(true);
            let task = server.task.lock().ok().and_then(|mut task| task.take());
            if let Some(task) = task {
                let _ = task.await;
            }
        }
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

/// The configured voters as openraft's membership; this node is always one.
fn voter_nodes(config: &QuorumConfig) -> Result<BTreeMap<u64, BasicNode>, MetaError> {
    let mut voters = BTreeMap::new();
    for (voter_id, address) in &config.voters {
        voters.insert(raft_node_id(*voter_id)?, BasicNode::new(address.clone()));
    }
    voters
        .entry(raft_node_id(config.node_id)?)
        .or_insert_with(BasicNode::default);
    Ok(voters)
}

/// What `open_storage` returns: the cluster id cell, the Raft log, the state
/// machine and its image channel.
type Storage = (
    ClusterIdCell,
    LogStore,
    StateMachineStore,
    watch::Receiver<Arc<ClusterImage>>,
);

/// Opens `dir` on a blocking thread: checks or stores the node id; a single
/// voter creates a cluster id on first start, one of several reads the one it
/// has learned (if any).
async fn open_storage(
    dir: &Path,
    node_id: i32,
    several_voters: bool,
) -> Result<Storage, MetaError> {
    let dir_for_io = dir.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<_, MetaError> {
        std::fs::create_dir_all(&dir_for_io)?;
        check_or_store_node_id(&dir_for_io, node_id)?;
        let cluster_id = match several_voters {
            true => stored_cluster_id(&dir_for_io)?.filter(|id| !id.is_empty()),
            false => Some(load_or_create_cluster_id(&dir_for_io)?),
        };
        let cluster_id: ClusterIdCell = Arc::new(watch::channel(cluster_id).0);
        let log_store = LogStore::open(&dir_for_io)?;
        let (state_machine, image_receiver) =
            StateMachineStore::open(&dir_for_io, cluster_id.clone())?;
        Ok((cluster_id, log_store, state_machine, image_receiver))
    })
    .await
    .map_err(|e| MetaError::Raft(format!("opening {}: {e}", dir.display())))?
}

fn raft_config(cluster_id: Option<&str>, several_voters: bool) -> Result<Config, MetaError> {
    let (heartbeat, election_min, election_max) = match several_voters {
        true => (
            CLUSTER_HEARTBEAT_INTERVAL_MS,
            CLUSTER_ELECTION_TIMEOUT_MIN_MS,
            CLUSTER_ELECTION_TIMEOUT_MAX_MS,
        ),
        false => (
            HEARTBEAT_INTERVAL_MS,
            ELECTION_TIMEOUT_MIN_MS,
            ELECTION_TIMEOUT_MAX_MS,
        ),
    };
    Config {
        cluster_name: format!("sluice-{}", cluster_id.unwrap_or("new")),
        heartbeat_interval: heartbeat,
        election_timeout_min: election_min,
        election_timeout_max: election_max,
        snapshot_policy: SnapshotPolicy::LogsSinceLast(SNAPSHOT_AFTER_ENTRIES),
        max_in_snapshot_log_to_keep: ENTRIES_KEPT_AFTER_SNAPSHOT,
        ..Default::default()
    }
    .validate()
    .map_err(|e| MetaError::Raft(e.to_string()))
}

/// Starts serving peers on the controller listener.
fn start_server(
    listener: std::net::TcpListener,
    raft: &Raft<TypeConfig>,
    identity: &Arc<Identity>,
    controller: &ControllerSlot,
) -> Result<RaftServer, MetaError> {
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(serve_raft(
        listener,
        raft.clone(),
        identity.clone(),
        controller.clone(),
        stopped,
    ));
    Ok(RaftServer {
        stop,
        task: Mutex::new(Some(task)),
    })
}
