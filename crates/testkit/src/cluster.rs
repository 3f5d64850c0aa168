//! `TestCluster`: brokers started inside the test process, each on an
//! ephemeral port with its own temporary data directory.
//!
//! The brokers run on a runtime the cluster owns, not on the test's: a test
//! may block (rdkafka's `poll`, a raw `TcpStream`) on its own threads
//! without starving a broker, and dropping the cluster from inside a
//! `#[tokio::test]` is allowed. Every method is therefore synchronous and
//! bounded by [`START_TIMEOUT`] / [`SHUTDOWN_TIMEOUT`]: a broker that does
//! not start or stop in time is an `Err`, never a hang.
//!
//! Nodes have ids `1..=n`. With one node the quorum is that node alone, as
//! `sluice serve` without `--controller-voters`. With more, every node is
//! given the whole voter list (Kafka's `controller.quorum.voters`,
//! `id@host:port`) with controller ports reserved before any node starts,
//! and its own `sluice.controller.listen`; the nodes start together (every
//! voter waits for a majority), and each is both voter and broker (Kafka's
//! `process.roles=broker,controller`). [`TestCluster::start_with_roles`]
//! gives each node its roles instead: voters are the nodes with the
//! controller role, a `broker` node follows the quorum as an observer on a
//! Raft listener of its own (port 0), and a `controller` node serves no
//! clients (its [`TestNode::address`] is its controller listener, and it is
//! not in [`TestCluster::bootstrap`]).
//!
//! What only a separate process can show (kill -9, signals, the CLI, the
//! process's stderr) stays with the spawned-binary harness of crates/cli.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use sluice_broker::{Broker, BrokerConfig, BrokerError, ProcessRoles};
use tempfile::TempDir;

use crate::ports::reserve_local_port;

/// How long one node may take to start.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one node may take to shut down cleanly.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(20);
/// The broker setting that carries a node's controller (Raft) listener, as
/// `sluice serve --controller-listen` passes it.
pub const CONTROLLER_LISTEN_SETTING: &str = "sluice.controller.listen";
/// Worker threads of the cluster's runtime (the brokers' tasks).
const RUNTIME_WORKER_THREADS: usize = 2;

/// Why a cluster operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A node's `Broker::start` returned an error.
    #[error("node {node_id} did not start: {source}")]
    Start {
        /// The node.
        node_id: i32,
        /// What the broker said.
        source: BrokerError,
    },
    /// A node's `Broker::shutdown` returned an error.
    #[error("node {node_id} did not shut down cleanly: {source}")]
    Shutdown {
        /// The node.
        node_id: i32,
        /// What the broker said.
        source: BrokerError,
    },
    /// A node did not finish `what` within its bound.
    #[error("node {node_id}: {what} did not finish within {timeout:?}")]
    Timeout {
        /// The node.
        node_id: i32,
        /// "start" or "shutdown".
        what: &'static str,
        /// The bound that passed.
        timeout: Duration,
    },
    /// The cluster's runtime, a temporary directory or a port reservation failed.
    #[error("test cluster setup: {0}")]
    Io(#[from] std::io::Error),
    /// A node id outside `1..=n`.
    #[error("no node {0} in this cluster")]
    NoSuchNode(i32),
}

/// One node of a [`TestCluster`].
pub struct TestNode {
    /// What the node is started with; the same data directory on every start.
    config: BrokerConfig,
    /// The running broker; `None` while stopped.
    broker: Option<Broker>,
    /// The Kafka listener of the running broker (a controller's own
    /// listener when it is only a controller).
    address: Option<SocketAddr>,
    /// What the node runs (Kafka's `process.roles`).
    roles: ProcessRoles,
    /// Owns the data directory; removed when the cluster is dropped.
    _data_dir: TempDir,
}

impl TestNode {
    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    /// What the node runs.
    pub fn roles(&self) -> ProcessRoles {
        self.roles
    }

    /// `host:port` of the Kafka listener (of the controller listener for a
    /// node that is only a controller); panics when the node is stopped.
    pub fn address(&self) -> String {
        self.address
            .unwrap_or_else(|| panic!("node {} is stopped", self.node_id()))
            .to_string()
    }

    /// The data directory (the same across restarts).
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }

    /// The running broker, for in-process checks; `None` while stopped.
    pub fn broker(&self) -> Option<&Broker> {
        self.broker.as_ref()
    }

    /// Whether the node is running.
    pub fn is_running(&self) -> bool {
        self.broker.is_some()
    }
}

/// Brokers `1..=n` in this process; stopped cleanly when dropped.
pub struct TestCluster {
    /// Runs every broker's tasks; `None` only while dropping.
    runtime: Option<tokio::runtime::Runtime>,
    /// The nodes, node id `index + 1`.
    nodes: Vec<TestNode>,
    /// `bootstrap.servers`: every running node's address, comma-separated.
    bootstrap: String,
}

impl TestCluster {
    /// Starts `nodes` brokers (ids 1..=nodes), each on 127.0.0.1 port 0 with
    /// a fresh temporary data directory and `settings` (Kafka's names, as
    /// `sluice serve --set`). Returns once every node is up, or the first
    /// error after stopping the nodes that did start.
    pub fn start(nodes: usize, settings: &[(&str, &str)]) -> Result<TestCluster, ClusterError> {
        assert!(nodes >= 1, "a cluster has at least one node");
        let roles = vec![ProcessRoles::Combined; nodes];
        Self::start_roles(&roles, nodes == 1, settings)
    }

    /// Starts nodes `1..=roles.len()`, node `i + 1` with `roles[i]` (Kafka's
    /// `process.roles`): the nodes with the controller role are the voters
    /// of the metadata quorum (at least one), the others follow it as
    /// observers. Otherwise as [`start`](Self::start).
    pub fn start_with_roles(
        roles: &[ProcessRoles],
        settings: &[(&str, &str)],
    ) -> Result<TestCluster, ClusterError> {
        assert!(
            roles.iter().any(|roles| roles.is_controller()),
            "a cluster has at least one voter"
        );
        Self::start_roles(roles, false, settings)
    }

    fn start_roles(
        roles: &[ProcessRoles],
        alone: bool,
        settings: &[(&str, &str)],
    ) -> Result<TestCluster, ClusterError> {
        init_tracing();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_WORKER_THREADS)
            .thread_name("test-cluster")
            .enable_all()
            .build()?;
        let configs = node_configs(roles, alone, settings)?;
        let mut cluster = TestCluster {
            runtime: Some(runtime),
            nodes: configs
                .into_iter()
                .zip(roles)
                .map(|((config, data_dir), roles)| TestNode {
                    config,
                    broker: None,
                    address: None,
                    roles: *roles,
                    _data_dir: data_dir,
                })
                .collect(),
            bootstrap: String::new(),
        };
        let ids: Vec<i32> = cluster.nodes.iter().map(TestNode::node_id).collect();
        cluster.start_nodes(&ids)?;
        Ok(cluster)
    }

    /// `bootstrap.servers` for clients: every running node that serves
    /// clients.
    pub fn bootstrap(&self) -> &str {
        assert!(!self.bootstrap.is_empty(), "no node is running");
        &self.bootstrap
    }

    /// Node `node_id` (1..=n); panics on another id.
    pub fn node(&self, node_id: i32) -> &TestNode {
        self.index(node_id)
            .map(|index| &self.nodes[index])
            .unwrap_or_else(|error| panic!("{error}"))
    }

    /// Every node, in id order.
    pub fn nodes(&self) -> &[TestNode] {
        &self.nodes
    }

    /// `controller.quorum.voters` of this cluster (`id@host:port,…`); empty
    /// for one node, which is its own quorum.
    pub fn controller_quorum_voters(&self) -> String {
        format_voters(&self.nodes[0].config.controller_voters)
    }

    /// Stops node `node_id` cleanly (as SIGTERM does to `sluice serve`).
    pub fn stop_node(&mut self, node_id: i32) -> Result<(), ClusterError> {
        let index = self.index(node_id)?;
        let result = match self.nodes[index].broker.take() {
            Some(broker) => self.shutdown_broker(node_id, broker),
            None => Ok(()),
        };
        self.nodes[index].address = None;
        self.refresh_bootstrap();
        result
    }

    /// Starts node `node_id` again on the same data directory, stopping it
    /// cleanly first if it runs. Its port changes (port 0 again): build new
    /// clients from [`bootstrap`](Self::bootstrap) afterwards.
    pub fn restart_node(&mut self, node_id: i32) -> Result<(), ClusterError> {
        self.stop_node(node_id)?;
        self.start_nodes(&[node_id])
    }

    /// Stops every running node cleanly; the first error is returned after
    /// trying them all. Dropping the cluster does the same, ignoring errors.
    pub fn shutdown(mut self) -> Result<(), ClusterError> {
        self.stop_all()
    }

    /// Starts the given stopped nodes together (a quorum of several voters
    /// needs them all up to elect a leader); on an error, stops those that
    /// started.
    fn start_nodes(&mut self, node_ids: &[i32]) -> Result<(), ClusterError> {
        let mut pending = Vec::new();
        for &node_id in node_ids {
            let index = self.index(node_id)?;
            let config = self.nodes[index].config.clone();
            let receiver = self.spawn(async move { Broker::start(config).await });
            pending.push((index, receiver));
        }
        let mut first_error = None;
        for (index, receiver) in pending {
            let node_id = self.nodes[index].node_id();
            match receiver.recv_timeout(START_TIMEOUT) {
                Ok(Ok(broker)) => {
                    self.nodes[index].address = Some(broker.local_addr());
                    self.nodes[index].broker = Some(broker);
                }
                Ok(Err(source)) => {
                    first_error.get_or_insert(ClusterError::Start { node_id, source });
                }
                Err(_) => {
                    first_error.get_or_insert(ClusterError::Timeout {
                        node_id,
                        what: "start",
                        timeout: START_TIMEOUT,
                    });
                }
            }
        }
        self.refresh_bootstrap();
        match first_error {
            None => Ok(()),
            Some(error) => {
                for &node_id in node_ids {
                    let _ = self.stop_node(node_id);
                }
                Err(error)
            }
        }
    }

    fn stop_all(&mut self) -> Result<(), ClusterError> {
        let mut first_error = None;
        let ids: Vec<i32> = self.nodes.iter().map(TestNode::node_id).collect();
        for node_id in ids {
            if let Err(error) = self.stop_node(node_id) {
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn shutdown_broker(&self, node_id: i32, broker: Broker) -> Result<(), ClusterError> {
        let receiver = self.spawn(broker.shutdown());
        match receiver.recv_timeout(SHUTDOWN_TIMEOUT) {
            Ok(result) => result.map_err(|source| ClusterError::Shutdown { node_id, source }),
            Err(_) => Err(ClusterError::Timeout {
                node_id,
                what: "shutdown",
                timeout: SHUTDOWN_TIMEOUT,
            }),
        }
    }

    /// Runs `future` on the cluster's runtime; its output arrives on the
    /// returned channel. Waiting on a std channel works both outside any
    /// runtime and inside a test's (where `block_on` would panic).
    fn spawn<F>(&self, future: F) -> mpsc::Receiver<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let (sender, receiver) = mpsc::channel();
        let runtime = self.runtime.as_ref().expect("the cluster's runtime");
        runtime.spawn(async move {
            let _ = sender.send(future.await);
        });
        receiver
    }

    fn index(&self, node_id: i32) -> Result<usize, ClusterError> {
        usize::try_from(node_id)
            .ok()
            .and_then(|id| id.checked_sub(1))
            .filter(|index| *index < self.nodes.len())
            .ok_or(ClusterError::NoSuchNode(node_id))
    }

    fn refresh_bootstrap(&mut self) {
        let addresses: Vec<String> = self
            .nodes
            .iter()
            .filter(|node| node.roles.is_broker())
            .filter_map(|node| node.address.map(|address| address.to_string()))
            .collect();
        self.bootstrap = addresses.join(",");
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        let _ = self.stop_all();
        // Not a plain drop: that blocks, which a test's runtime forbids.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// Each node's configuration and its data directory. Controller ports are
/// reserved (bound, read, released) before any node starts, because every
/// voter list names them all. `alone`: one node that is its own quorum.
fn node_configs(
    roles: &[ProcessRoles],
    alone: bool,
    settings: &[(&str, &str)],
) -> Result<Vec<(BrokerConfig, TempDir)>, ClusterError> {
    let ids: Vec<i32> = (1..=roles.len())
        .map(|id| i32::try_from(id).expect("node count fits in i32"))
        .collect();
    let voters: Vec<(i32, String)> = if alone {
        Vec::new()
    } else {
        ids.iter()
            .zip(roles)
            .filter(|(_, roles)| roles.is_controller())
            .map(|(&id, _)| Ok((id, format!("127.0.0.1:{}", reserve_local_port()?))))
            .collect::<Result<_, std::io::Error>>()?
    };
    let settings: BTreeMap<String, String> = settings
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect();
    ids.iter()
        .zip(roles)
        .map(|(&node_id, roles)| {
            let data_dir = tempfile::Builder::new()
                .prefix(&format!("sluice-node-{node_id}-"))
                .tempdir()?;
            let mut node_settings = settings.clone();
            if !alone {
                node_settings.insert("process.roles".to_string(), roles.to_string());
            }
            if let Some((_, address)) = voters.iter().find(|(id, _)| *id == node_id) {
                node_settings.insert(CONTROLLER_LISTEN_SETTING.to_string(), address.clone());
            }
            let config = BrokerConfig {
                listen: "127.0.0.1:0".to_string(),
                listener_name: "PLAINTEXT".to_string(),
                advertised_listener: None,
                data_dir: PathBuf::from(data_dir.path()),
                node_id,
                controller_voters: voters.clone(),
                settings: node_settings,
            };
            Ok((config, data_dir))
        })
        .collect()
}

/// `controller.quorum.voters` text: `id@host:port,…`.
fn format_voters(voters: &[(i32, String)]) -> String {
    let entries: Vec<String> = voters
        .iter()
        .map(|(id, address)| format!("{id}@{address}"))
        .collect();
    entries.join(",")
}

/// Broker logs go to the test's captured output, at `RUST_LOG` (default
/// `warn`); the first cluster of a test binary installs it.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

#[cfg(test)]
#[path = "cluster_tests.rs"]
mod tests;
