//! The broker as a whole: its configuration, start-up (listener first,
//! then the data directory, the metadata quorum, the partitions and the
//! coordinators), the fatal-error channel its owner watches, and shutdown.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use sluice_log::{DataDir, MetaProperties};
use sluice_meta::{BrokerListener, BrokerRegistration, MetadataQuorum, QuorumConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::controller::Controller;
pub use crate::fatal::{FatalError, EXIT_INTERNAL_FAILURE, EXIT_STORAGE_FAILURE};
use crate::lease::BrokerLease;
use crate::metadata_view::MetadataView;
use crate::producer_ids::ProducerIdManager;
use crate::replica_manager::ReplicaManager;
use crate::roles::ProcessRoles;
use crate::state::BrokerState;
use crate::tasks::{
    run_checkpointer, run_image_follower, run_log_maintenance, start_group_coordinator,
    start_transaction_coordinator,
};
use crate::{group, net, txn};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{0}")]
    Config(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Log(#[from] sluice_log::LogError),
    #[error(transparent)]
    Meta(#[from] sluice_meta::MetaError),
}

/// What `sluice serve` was asked to run.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Address the Kafka listener binds (port 0: any free port).
    pub listen: String,
    /// The Kafka listener's name (`PLAINTEXT` unless `listeners` names it
    /// otherwise), as it is registered and shown in `listeners`.
    pub listener_name: String,
    /// host:port clients are told to connect to; defaults to the bound address.
    pub advertised_listener: Option<String>,
    /// Where logs, checkpoints and the metadata quorum live.
    pub data_dir: PathBuf,
    /// This node's id.
    pub node_id: i32,
    /// `controller.quorum.voters` as (id, host:port); empty = this node alone.
    pub controller_voters: Vec<(i32, String)>,
    /// Any broker config by Kafka's name (`--set KEY=VALUE`, config file).
    pub settings: BTreeMap<String, String>,
}

/// A running broker.
pub struct Broker {
    /// Shared state.
    state: Arc<BrokerState>,
    /// The bound Kafka listener address.
    local_addr: SocketAddr,
    /// Set to true to stop every task.
    shutdown: watch::Sender<bool>,
    /// Background tasks to await on shutdown (acceptor, flusher, …).
    tasks: Vec<JoinHandle<()>>,
}

impl Broker {
    pub async fn start(config: BrokerConfig) -> Result<Broker, BrokerError> {
        // Validated before anything binds or is written.
        Settings::new(config.settings.clone()).map_err(BrokerError::Config)?;
        let roles = ProcessRoles::resolve(
            config.settings.get("process.roles").map(String::as_str),
            config.node_id,
            &config.controller_voters,
        )
        .map_err(BrokerError::Config)?;
        // The listeners first: a port in use fails the start before
        // anything is written to the data directory. A controller alone
        // has no Kafka listener.
        let listener = match roles.is_broker() {
            true => Some(TcpListener::bind(&config.listen).await.map_err(|error| {
                BrokerError::Config(format!("cannot listen on {}: {error}", config.listen))
            })?),
            false => None,
        };
        let raft_listener = match quorum_over_network(&config, roles) {
            true => Some(bind_controller_listener(&config, roles)?),
            false => None,
        };
        let local_addr = match (&listener, &raft_listener) {
            (Some(listener), _) => listener.local_addr()?,
            (None, Some(raft)) => raft.local_addr()?,
            (None, None) => {
                unreachable!("a node without the broker role has a controller listener")
            }
        };
        let settings = Arc::new(
            Settings::new(with_identity(&config, roles, local_addr))
                .map_err(BrokerError::Config)?,
        );
        let connections_max = settings.get_i64("max.connections").clamp(1, 1 << 20) as usize;
        let data_dir = open_data_dir(&config.data_dir)?;
        let clean = data_dir.was_clean_shutdown();
        tracing::info!(data_dir = %config.data_dir.display(), clean_shutdown = clean, process_roles = %roles, "opening data directory");
        let properties = check_data_dir_identity(&data_dir, config.node_id)?;
        size_the_segment_file_cache(&data_dir, connections_max);

        let quorum_config = QuorumConfig {
            node_id: config.node_id,
            voters: config.controller_voters.clone(),
        };
        let quorum = Arc::new(match (raft_listener, roles) {
            (Some(raft), ProcessRoles::Broker) => {
                let address = observer_address(&config, raft.local_addr()?)?;
                MetadataQuorum::open_observer(&config.data_dir, quorum_config, raft, address)
                    .await?
            }
            (Some(raft), _) => {
                MetadataQuorum::open_voter(&config.data_dir, quorum_config, raft).await?
            }
            (None, _) => MetadataQuorum::open(&config.data_dir, quorum_config).await?,
        });
        // A failure from here on stops the quorum first, so openraft is not
        // left running without its handle (and logging about it).
        let prepared = async {
            if properties.is_none() {
                data_dir.write_meta_properties(&MetaProperties {
                    cluster_id: quorum.cluster_id(),
                    node_id: config.node_id,
                })?;
            }
            let replicas = open_partitions(&quorum, data_dir, &settings, config.node_id)?;
            let state = services(&config, roles, settings.clone(), quorum.clone(), replicas);
            if roles.is_broker() {
                register(&state, &config, &settings, local_addr).await?;
            }
            Ok(state)
        }
        .await;
        let state = match prepared {
            Ok(state) => state,
            Err(error) => {
                let _ = quorum.shutdown().await;
                return Err(error);
            }
        };
        let (shutdown, mut tasks) = spawn_tasks(&state);
        if let Some(listener) = listener {
            wait_until_unfenced(&state, config.node_id).await;
            tasks.push(tokio::spawn(net::acceptor::run_acceptor(
                listener,
                state.clone(),
                connections_max,
                shutdown.subscribe(),
            )));
        }
        tracing::info!(%local_addr, node_id = config.node_id, process_roles = %roles, cluster_id = %quorum.cluster_id(), "node started");
        Ok(Broker {
            state,
            local_addr,
            shutdown,
            tasks,
        })
    }

    /// The bound Kafka listener, or the controller listener of a node that
    /// is only a controller (`process.roles=controller`).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The metadata image this node has applied (what the metadata shell
    /// of Kafka shows: state no client API carries, such as a partition's
    /// leader recovery state).
    pub fn metadata_image(&self) -> Arc<sluice_meta::ClusterImage> {
        self.state.metadata.image()
    }

    /// Completes when the broker hit a fatal error (a failed fsync); the
    /// owner then stops the process with its exit code, without `shutdown`.
    pub async fn fatal_error(&self) -> FatalError {
        let quorum = self.state.metadata.quorum();
        tokio::select! {
            error = self.state.replicas.fatal_error() => error,
            message = quorum.core_failure() => {
                tracing::error!(%message, "the metadata quorum stopped; stopping the broker");
                FatalError {
                    exit_code: EXIT_STORAGE_FAILURE,
                    message: format!(
                        "the metadata log can no longer be written or replicated ({message}); \
                         stopping rather than serve stale metadata"
                    ),
                }
            }
        }
    }

    /// Stops accepting, lets connections finish their current request, flushes
    /// and closes every log, writes checkpoints and `.clean-shutdown`.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        // In a cluster, first hand leaderships over (controlled shutdown),
        // bounded: the last node has no quorum left to ask.
        let session_ms = self
            .state
            .metadata
            .settings()
            .get_i64("broker.session.timeout.ms")
            .max(1) as u64;
        self.state
            .controller
            .controlled_shutdown(std::time::Duration::from_millis(session_ms))
            .await;
        let _ = self.shutdown.send(true);
        for (index, mut task) in self.tasks.into_iter().enumerate() {
            // Every task ends on the shutdown signal; one that does not
            // within the bound is logged (by its place in `spawn_tasks`)
            // and abandoned rather than hold the shutdown.
            if tokio::time::timeout(TASK_STOP_BOUND, &mut task)
                .await
                .is_err()
            {
                tracing::warn!(
                    task = TASK_NAMES.get(index).copied().unwrap_or("?"),
                    "a background task did not stop in time; aborting it"
                );
                task.abort();
            }
        }
        let replicas = self.state.replicas.clone();
        tokio::task::spawn_blocking(move || replicas.shutdown())
            .await
            .map_err(|e| BrokerError::Config(format!("shutdown task failed: {e}")))??;
        self.state.metadata.quorum().shutdown().await?;
        tracing::info!("broker stopped cleanly");
        Ok(())
    }
}

/// Registers this broker (its advertised listener, `broker.rack`): see
/// `Controller::register_broker`. A registration refused because this node
/// id's previous process still has a live session (a restart right after
/// kill -9) is retried, as Kafka's BrokerLifecycleManager does, until
/// `initial.broker.registration.timeout.ms`: the old session expires within
/// `broker.session.timeout.ms`, while a second live process keeps its own
/// alive and this one gives up.
async fn register(
    state: &BrokerState,
    config: &BrokerConfig,
    settings: &Settings,
    local_addr: SocketAddr,
) -> Result<(), BrokerError> {
    let (host, port) = match &config.advertised_listener {
        Some(advertised) => parse_host_port(advertised)?,
        None => (local_addr.ip().to_string(), local_addr.port()),
    };
    // One listener, the client listener (also the inter-broker one), by
    // its configured name; its security protocol is PLAINTEXT (`sluice
    // serve` refuses others).
    let listeners = vec![BrokerListener {
        name: config.listener_name.clone(),
        host: host.clone(),
        port,
        security_protocol: "PLAINTEXT".to_string(),
    }];
    let registration = BrokerRegistration {
        node_id: config.node_id,
        host,
        port,
        rack: Some(settings.get("broker.rack")).filter(|rack| !rack.is_empty()),
        listeners,
        ..BrokerRegistration::default()
    };
    let bound = std::time::Duration::from_millis(
        settings
            .get_i64("initial.broker.registration.timeout.ms")
            .max(0) as u64,
    );
    let deadline = tokio::time::Instant::now() + bound;
    let mut waiting_logged = false;
    loop {
        let error = match state.controller.register_broker(registration.clone()).await {
            Ok(()) => return Ok(()),
            Err(error) => error,
        };
        let retry = error.code == crate::error_codes::DUPLICATE_BROKER_REGISTRATION
            && tokio::time::Instant::now() + REGISTRATION_RETRY < deadline;
        if !retry {
            return Err(BrokerError::Config(format!(
                "node {} could not register with the active controller: {} (error code {})",
                config.node_id, error.message, error.code
            )));
        }
        if !std::mem::replace(&mut waiting_logged, true) {
            tracing::warn!(
                node_id = config.node_id,
                "the controller still has a live session of this node id (its previous process); \
                 retrying the registration until it expires (initial.broker.registration.timeout.ms={}ms)",
                bound.as_millis()
            );
        }
        tokio::time::sleep(REGISTRATION_RETRY).await;
    }
}

/// How often a refused registration is retried.
const REGISTRATION_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

/// Whether this node talks to the quorum over the network: several voters,
/// a node with one role only, or one voter that serves its controller
/// listener (`--controller-listen`) for brokers to join. A node alone with
/// both roles decides in-process.
fn quorum_over_network(config: &BrokerConfig, roles: ProcessRoles) -> bool {
    config.controller_voters.len() > 1
        || roles != ProcessRoles::Combined
        || (!config.controller_voters.is_empty()
            && config.settings.contains_key(CONTROLLER_LISTEN_SETTING))
}

/// Binds the controller listener of a node of a cluster: the address of
/// `--controller-listen` (`sluice.controller.listen`), else a voter's own
/// entry of `controller.quorum.voters`, else (a broker that is not a voter,
/// which only the active controller connects to, to replicate the metadata
/// log to it) any free port on the host of the Kafka listener.
fn bind_controller_listener(
    config: &BrokerConfig,
    roles: ProcessRoles,
) -> Result<std::net::TcpListener, BrokerError> {
    let own_voter = config
        .controller_voters
        .iter()
        .find(|(id, _)| *id == config.node_id)
        .map(|(_, address)| address.clone());
    let address = match (config.settings.get(CONTROLLER_LISTEN_SETTING), own_voter) {
        (Some(address), _) => address.clone(),
        (None, Some(address)) => address,
        (None, None) => {
            debug_assert_eq!(roles, ProcessRoles::Broker);
            let (host, _) = parse_host_port(&config.listen)?;
            match host.contains(':') {
                true => format!("[{host}]:0"),
                false => format!("{host}:0"),
            }
        }
    };
    std::net::TcpListener::bind(&address).map_err(|error| {
        BrokerError::Config(format!(
            "cannot listen on the controller listener {address}: {error}"
        ))
    })
}

/// The address the voters reach an observer's Raft listener at: the bound
/// one, with the advertised listener's host when it is bound to every
/// interface.
fn observer_address(config: &BrokerConfig, bound: SocketAddr) -> Result<String, BrokerError> {
    if !bound.ip().is_unspecified() {
        return Ok(bound.to_string());
    }
    match &config.advertised_listener {
        Some(advertised) => {
            let (host, _) = parse_host_port(advertised)?;
            Ok(format!("{host}:{}", bound.port()))
        }
        None => Err(BrokerError::Config(format!(
            "node {}: its controller listener is bound to {bound}, an address the controllers \
             cannot connect to; give --controller-listen (or --advertised-listener) a host they can \
             reach",
            config.node_id
        ))),
    }
}

/// The setting that carries `--controller-listen`.
pub const CONTROLLER_LISTEN_SETTING: &str = "sluice.controller.listen";

/// Opens the partitions the image places here and sets unknown directories
/// aside; partitions that fail to open stay offline and are retried.
fn open_partitions(
    quorum: &MetadataQuorum,
    data_dir: DataDir,
    settings: &Arc<Settings>,
    node_id: i32,
) -> Result<Arc<ReplicaManager>, BrokerError> {
    let replicas = Arc::new(ReplicaManager::new(data_dir, settings.clone(), node_id));
    let image = quorum.image();
    if let Err(error) = replicas.reconcile(&image) {
        // The partitions that failed are offline; the image follower
        // retries them.
        tracing::warn!(%error, "some partitions could not be opened; retrying in the background");
        replicas.request_reconcile_retry();
    }
    replicas.remove_orphans(&image)?;
    Ok(replicas)
}

/// Wires the services: the controller runtime, the producer-id manager, the
/// coordinators, the metadata view.
fn services(
    config: &BrokerConfig,
    roles: ProcessRoles,
    settings: Arc<Settings>,
    quorum: Arc<MetadataQuorum>,
    replicas: Arc<ReplicaManager>,
) -> Arc<BrokerState> {
    let group_config = group::coordinator::CoordinatorConfig::from_settings(&settings);
    // A broker of a cluster coordinates groups only while its controller
    // lease holds (crate::lease).
    let lease = Arc::new(if quorum.is_networked() && roles.is_broker() {
        BrokerLease::clustered(settings.get_i64("broker.session.timeout.ms"))
    } else {
        BrokerLease::always()
    });
    let groups = group::GroupCoordinator::new(group_config, replicas.clone(), lease.clone());
    let controller = Arc::new(Controller::new(
        config.node_id,
        settings.clone(),
        quorum.clone(),
        replicas.clone(),
        quorum.is_networked(),
        roles.is_broker(),
        lease,
    ));
    quorum.set_controller_service(crate::controller::channel::endpoint(&controller));
    let producer_ids = Arc::new(ProducerIdManager::new(controller.clone()));
    let txns = txn::TransactionCoordinator::new(
        txn::TxnConfig::from_settings(&settings),
        replicas.clone(),
        groups.clone(),
        producer_ids.clone(),
    );
    let request_bytes_max = settings
        .get_i64("socket.request.max.bytes")
        .clamp(8, i32::MAX as i64) as usize;
    let connection_idle_timeout_ms = settings.get_i64("connections.max.idle.ms");
    Arc::new(BrokerState {
        metadata: MetadataView::new(config.node_id, settings, quorum),
        replicas,
        controller,
        request_bytes_max,
        connection_idle_timeout_ms,
        groups,
        producer_ids,
        txns,
    })
}

/// How long `shutdown` waits for each background task.
const TASK_STOP_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// The tasks of `spawn_tasks`, in its order (for the shutdown's log).
const TASK_NAMES: &[&str] = &[
    "flusher",
    "checkpointer",
    "image follower",
    "group coordinator",
    "transaction coordinator",
    "log maintenance",
    "replica fetchers",
    "ISR updates",
    "heartbeats",
    "controller duties",
    "acceptor",
];

/// Starts the background tasks (the acceptor comes after them, once the
/// broker may serve); returns the shutdown signal and their handles.
fn spawn_tasks(state: &Arc<BrokerState>) -> (watch::Sender<bool>, Vec<JoinHandle<()>>) {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let replicas = &state.replicas;
    let expiration_ms = state
        .metadata
        .settings()
        .get_i64("producer.id.expiration.ms");
    let tasks = vec![
        tokio::spawn(replicas.clone().run_flusher(shutdown_rx.clone())),
        tokio::spawn(run_checkpointer(
            replicas.clone(),
            expiration_ms,
            shutdown_rx.clone(),
        )),
        tokio::spawn(run_image_follower(state.clone(), shutdown_rx.clone())),
        tokio::spawn(start_group_coordinator(state.clone(), shutdown_rx.clone())),
        tokio::spawn(start_transaction_coordinator(
            state.clone(),
            shutdown_rx.clone(),
        )),
        tokio::spawn(run_log_maintenance(state.clone(), shutdown_rx.clone())),
        tokio::spawn(crate::replication::fetcher::run_replica_fetchers(
            state.clone(),
            shutdown_rx.clone(),
        )),
        tokio::spawn(crate::replication::isr_updates::run_isr_updates(
            state.clone(),
            shutdown_rx.clone(),
        )),
        tokio::spawn({
            let controller = state.controller.clone();
            let shutdown = shutdown_rx.clone();
            async move { controller.run_heartbeats(shutdown).await }
        }),
        tokio::spawn({
            let controller = state.controller.clone();
            let shutdown = shutdown_rx.clone();
            async move { controller.run_duties(shutdown).await }
        }),
    ];
    (shutdown, tasks)
}

/// The settings with this node's identity as static configs, as Kafka's
/// KafkaConfig has them (DescribeConfigs of BROKER <id> shows each node's
/// own): `node.id` and its synonym `broker.id`, `process.roles` (as
/// resolved), `log.dirs`, `listeners` (the bound address, so port 0 shows
/// the port taken; and a voter's controller listener when the quorum is
/// networked), `advertised.listeners`, `controller.quorum.voters`.
fn with_identity(
    config: &BrokerConfig,
    roles: ProcessRoles,
    local_addr: SocketAddr,
) -> BTreeMap<String, String> {
    let mut settings = config.settings.clone();
    let node_id = config.node_id.to_string();
    settings.insert("node.id".to_string(), node_id.clone());
    settings.insert("broker.id".to_string(), node_id);
    settings.insert("process.roles".to_string(), roles.to_string());
    settings.insert(
        "log.dirs".to_string(),
        config.data_dir.display().to_string(),
    );
    let mut listeners = Vec::new();
    if roles.is_broker() {
        listeners.push(format!("{}://{local_addr}", config.listener_name));
    }
    if !config.controller_voters.is_empty() {
        if roles.is_controller() && quorum_over_network(config, roles) {
            let address = match roles.is_broker() {
                true => config
                    .settings
                    .get(CONTROLLER_LISTEN_SETTING)
                    .cloned()
                    .or_else(|| {
                        config
                            .controller_voters
                            .iter()
                            .find(|(id, _)| *id == config.node_id)
                            .map(|(_, address)| address.clone())
                    }),
                false => Some(local_addr.to_string()),
            };
            if let Some(address) = address {
                listeners.push(format!("CONTROLLER://{address}"));
            }
        }
        let voters: Vec<String> = config
            .controller_voters
            .iter()
            .map(|(id, address)| format!("{id}@{address}"))
            .collect();
        settings.insert("controller.quorum.voters".to_string(), voters.join(","));
    }
    settings.insert("listeners".to_string(), listeners.join(","));
    if let Some(advertised) = config
        .advertised_listener
        .as_ref()
        .filter(|_| roles.is_broker())
    {
        settings.insert(
            "advertised.listeners".to_string(),
            format!("{}://{advertised}", config.listener_name),
        );
    }
    settings
}

/// A broker of a cluster serves clients once the controller has unfenced
/// it and its own image shows that, as Kafka's BrokerServer enables request
/// processing only after its initial unfencing: a client's first Metadata
/// from it then lists it, and no Metadata it answers drops brokers another
/// one listed a moment before (librdkafka decommissions a broker that
/// leaves the list, and loses the request in flight to it). The port is
/// bound (and registered) already; connections wait in the backlog.
async fn wait_until_unfenced(state: &BrokerState, node_id: i32) {
    if !state.controller.clustered() {
        return;
    }
    let epoch = state.controller.broker_epoch();
    let mut images = state.metadata.quorum().subscribe();
    let unfenced = async {
        images
            .wait_for(|image| {
                image
                    .brokers
                    .get(&node_id)
                    .is_some_and(|broker| broker.broker_epoch == epoch && !broker.fenced)
            })
            .await
            .is_ok()
    };
    let bound = std::time::Duration::from_millis(
        state
            .metadata
            .settings()
            .get_i64("initial.broker.registration.timeout.ms")
            .max(0) as u64,
    );
    match tokio::time::timeout(bound, unfenced).await {
        Ok(true) => {}
        _ => tracing::warn!(
            node_id,
            broker_epoch = epoch,
            "not unfenced by the controller within {bound:?} (initial.broker.registration.timeout.ms); \
             serving clients anyway"
        ),
    }
}

/// Creates (if needed) and locks the data directory; errors name it.
fn open_data_dir(path: &std::path::Path) -> Result<DataDir, BrokerError> {
    std::fs::create_dir_all(path).map_err(|error| {
        BrokerError::Config(format!(
            "cannot use data directory {}: {error}",
            path.display()
        ))
    })?;
    DataDir::open(path).map_err(|error| match error {
        sluice_log::LogError::Locked { .. } => BrokerError::Log(error),
        other => BrokerError::Config(format!(
            "cannot use data directory {}: {other}",
            path.display()
        )),
    })
}

/// Descriptors kept free of segment files for connections, the Raft log,
/// checkpoints and the blocking pool.
const DESCRIPTORS_RESERVED: u64 = 256;

/// Sizes the segment-file descriptor cache from the process's descriptor
/// limit (`RLIMIT_NOFILE`, read from /proc/self/limits), leaving room for
/// `max.connections` sockets, and says at start how many segment files the
/// data directory holds against it.
fn size_the_segment_file_cache(data_dir: &DataDir, connections_max: usize) {
    let limit = descriptor_limit();
    let segments = data_dir.segment_file_count().unwrap_or(0);
    let capacity = match limit {
        Some(limit) => {
            let reserved = DESCRIPTORS_RESERVED + (connections_max as u64).min(limit / 2);
            limit.saturating_sub(reserved).max(limit / 4).max(16)
        }
        None => sluice_log::open_files_max() as u64,
    };
    sluice_log::set_open_files_max(usize::try_from(capacity).unwrap_or(usize::MAX));
    tracing::info!(
        segment_files = segments,
        descriptor_limit = ?limit,
        segment_files_open_max = capacity,
        "segment files of the data directory (each segment needs one descriptor while in use; \
         idle ones are closed beyond the open maximum)"
    );
    if limit.is_some_and(|limit| segments > capacity && limit < 65_536) {
        tracing::warn!(
            segment_files = segments,
            segment_files_open_max = capacity,
            "more segment files than descriptors to keep them open: reads of idle segments reopen files; \
             raise the descriptor limit (ulimit -n) for speed"
        );
    }
}

/// The soft `RLIMIT_NOFILE` of this process, from /proc/self/limits.
fn descriptor_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Refuses a data directory whose partition data the metadata does not
/// cover: partition directories (or `meta.properties`) without the metadata
/// log would be treated as unknown and lost, and another cluster's metadata
/// would not know them either (Kafka refuses a log directory whose
/// `meta.properties` is missing or names another cluster). Returns the
/// `meta.properties` found, if any.
fn check_data_dir_identity(
    data_dir: &DataDir,
    node_id: i32,
) -> Result<Option<MetaProperties>, BrokerError> {
    let dir = data_dir.path().display();
    let stored_cluster_id = MetadataQuorum::stored_cluster_id(data_dir.path())?;
    let properties = data_dir.meta_properties()?;
    match (&stored_cluster_id, &properties) {
        (None, Some(properties)) => Err(BrokerError::Config(format!(
            "data directory {dir} belongs to cluster {} (meta.properties) but its metadata log {dir}/meta is missing; \
             refusing to start, as a new metadata log would not know its partitions: restore {dir}/meta",
            properties.cluster_id
        ))),
        (None, None) => {
            let partitions = data_dir.partition_dirs()?;
            match partitions.first() {
                Some(first) => Err(BrokerError::Config(format!(
                    "data directory {dir} holds {} partition directories (such as {}) but no metadata ({dir}/meta is missing); \
                     refusing to start rather than treat them as unknown: restore {dir}/meta or move them away",
                    partitions.len(),
                    first.path.display()
                ))),
                None => Ok(None),
            }
        }
        (Some(stored), Some(properties)) if *stored != properties.cluster_id => {
            Err(BrokerError::Config(format!(
                "data directory {dir} belongs to cluster {} (meta.properties) but {dir}/meta holds cluster {stored}; refusing to start",
                properties.cluster_id
            )))
        }
        (Some(_), Some(properties)) if properties.node_id != node_id => {
            Err(BrokerError::Config(format!(
                "data directory {dir} belongs to node {} (meta.properties), not to node {node_id}; refusing to start",
                properties.node_id
            )))
        }
        _ => Ok(properties),
    }
}

fn parse_host_port(text: &str) -> Result<(String, u16), BrokerError> {
    let text = text.split_once("://").map_or(text, |(_, address)| address);
    let (host, port) = text.rsplit_once(':').ok_or_else(|| {
        BrokerError::Config(format!("advertised listener {text} is not HOST:PORT"))
    })?;
    let port = port
        .parse::<u16>()
        .map_err(|_| BrokerError::Config(format!("advertised listener {text} has a bad port")))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}
