//! sluice-broker: the server.
//!
//! Layers a request passes through: `net::frame` (length prefix, bound) →
//! `net::connection` (one task per connection, strictly in order) →
//! `dispatch` (version gate, decode) → `handlers::<api family>` →
//! `replica_manager` / `controller` → sluice-log / sluice-meta.
//!
//! CONTRACT used by crates/cli (`sluice serve`): `BrokerConfig`, `Broker::start`,
//! `Broker::local_addr`, `Broker::shutdown`.

pub mod clock;
pub mod config;
pub mod controller;
pub mod coordinator_topics;
pub mod dispatch;
pub mod error_codes;
pub mod errors;
pub mod group;
pub mod handlers;
pub mod high_watermark;
pub mod internal_topic;
pub mod net;
pub mod partition;
pub mod replica_fetch;
pub mod replica_manager;
pub mod txn;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sluice_log::{DataDir, MetaProperties};
use sluice_meta::{BrokerRegistration, MetadataQuorum, MetadataRecord, QuorumConfig};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::Settings;
use crate::replica_manager::ReplicaManager;

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

/// Exit status of a broker stopped by a failed fsync (sysexits' EX_IOERR).
pub const EXIT_STORAGE_FAILURE: u8 = 74;
/// Exit status of a broker stopped by an internal failure (EX_SOFTWARE).
pub const EXIT_INTERNAL_FAILURE: u8 = 70;

/// A failure that leaves the broker's on-disk state unknowable: its owner
/// must stop the process with `exit_code` (no clean shutdown, which would
/// mark the data directory clean).
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct FatalError {
    /// The process exit status the owner should use.
    pub exit_code: u8,
    /// What failed.
    pub message: String,
}

/// What `sluice serve` was asked to run.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Address the Kafka listener binds (port 0: any free port).
    pub listen: String,
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

/// State shared by every connection and background task.
pub struct BrokerState {
    /// This node's id.
    pub node_id: i32,
    /// Effective static broker settings.
    pub settings: Arc<Settings>,
    /// The metadata quorum and its image.
    pub quorum: Arc<MetadataQuorum>,
    /// This node's partitions.
    pub replicas: Arc<ReplicaManager>,
    /// Serializes validate-then-propose in the controller.
    pub controller_lock: tokio::sync::Mutex<()>,
    /// `socket.request.max.bytes`.
    pub request_bytes_max: usize,
    /// `connections.max.idle.ms`: idle connections, and requests that
    /// started but never finish arriving, are closed after it (negative:
    /// never).
    pub connection_idle_timeout_ms: i64,
    /// The group coordinator (consumer groups, committed offsets).
    pub groups: Arc<group::GroupCoordinator>,
    /// The producer-id block InitProducerId hands ids out of.
    pub producer_ids: tokio::sync::Mutex<handlers::producer_ids::ProducerIdBlock>,
    /// The transaction coordinator (transactional ids, markers).
    pub txns: Arc<txn::TransactionCoordinator>,
}

impl BrokerState {
    /// The active controller: the quorum leader, else this node.
    pub fn controller_id(&self) -> i32 {
        self.quorum.leader_id().unwrap_or(self.node_id)
    }

    /// The dynamic broker configs of the current metadata image.
    pub fn dynamic_configs(&self) -> config::DynamicBrokerConfigs {
        config::DynamicBrokerConfigs::from_image(&self.quorum.image(), self.node_id)
    }

    /// A broker config's effective value (dynamic, static, default).
    pub fn broker_config(&self, name: &str) -> String {
        // Looked up in place (no copy of the dynamic config maps): Fetch
        // calls this on every request. Same layering as `broker_value`.
        let image = self.quorum.image();
        let dynamic = [Some(self.node_id), None]
            .into_iter()
            .find_map(|node| image.broker_configs.get(&node).and_then(|m| m.get(name)));
        match dynamic {
            Some(value) => value.clone(),
            None => self.settings.get(name),
        }
    }

    /// A numeric broker config's effective value (`config::parse_number`).
    pub fn broker_config_i64(&self, name: &str) -> i64 {
        config::parse_number(name, &self.broker_config(name))
    }
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
        let settings =
            Arc::new(Settings::new(config.settings.clone()).map_err(BrokerError::Config)?);
        let request_bytes_max = settings
            .get_i64("socket.request.max.bytes")
            .clamp(8, i32::MAX as i64) as usize;
        let connections_max = settings.get_i64("max.connections").clamp(1, 1 << 20) as usize;
        let connection_idle_timeout_ms = settings.get_i64("connections.max.idle.ms");

        // The listener first: a port in use fails the start before anything
        // is written to the data directory.
        let listener = TcpListener::bind(&config.listen).await.map_err(|error| {
            BrokerError::Config(format!("cannot listen on {}: {error}", config.listen))
        })?;
        let local_addr = listener.local_addr()?;
        let data_dir = open_data_dir(&config.data_dir)?;
        let clean = data_dir.was_clean_shutdown();
        tracing::info!(data_dir = %config.data_dir.display(), clean_shutdown = clean, "opening data directory");
        let properties = check_data_dir_identity(&data_dir, config.node_id)?;
        size_the_segment_file_cache(&data_dir, connections_max);

        let quorum = Arc::new(
            MetadataQuorum::open(
                &config.data_dir,
                QuorumConfig {
                    node_id: config.node_id,
                    voters: config.controller_voters.clone(),
                },
            )
            .await?,
        );
        // A failure from here on stops the quorum first, so openraft is not
        // left running without its handle (and logging about it).
        let prepared = async {
            if properties.is_none() {
                data_dir.write_meta_properties(&MetaProperties {
                    cluster_id: quorum.cluster_id(),
                    node_id: config.node_id,
                })?;
            }

            let (host, port) = match &config.advertised_listener {
                Some(advertised) => parse_host_port(advertised)?,
                None => (local_addr.ip().to_string(), local_addr.port()),
            };
            let registration = BrokerRegistration {
                node_id: config.node_id,
                host,
                port,
                rack: None,
            };
            if quorum.image().brokers.get(&config.node_id) != Some(&registration) {
                quorum
                    .propose(vec![MetadataRecord::RegisterBroker(registration)])
                    .await?;
            }

            let replicas = Arc::new(ReplicaManager::new(
                data_dir,
                settings.clone(),
                config.node_id,
            ));
            let image = quorum.image();
            if let Err(error) = replicas.reconcile(&image) {
                // The partitions that failed are offline; the image follower
                // retries them.
                tracing::warn!(%error, "some partitions could not be opened; retrying in the background");
                replicas.request_reconcile_retry();
            }
            replicas.remove_orphans(&image)?;
            Ok::<_, BrokerError>(replicas)
        }
        .await;
        let replicas = match prepared {
            Ok(replicas) => replicas,
            Err(error) => {
                let _ = quorum.shutdown().await;
                return Err(error);
            }
        };

        let group_config = group::coordinator::CoordinatorConfig::from_settings(&settings);
        let groups = group::GroupCoordinator::new(group_config, replicas.clone());
        let txns = txn::TransactionCoordinator::new(
            txn::TxnConfig::from_settings(&settings),
            replicas.clone(),
            groups.clone(),
        );
        let state = Arc::new(BrokerState {
            node_id: config.node_id,
            settings,
            quorum: quorum.clone(),
            replicas: replicas.clone(),
            controller_lock: tokio::sync::Mutex::new(()),
            request_bytes_max,
            connection_idle_timeout_ms,
            groups,
            producer_ids: tokio::sync::Mutex::new(Default::default()),
            txns,
        });

        let (shutdown, shutdown_rx) = watch::channel(false);
        let tasks = vec![
            tokio::spawn(replicas.clone().run_flusher(shutdown_rx.clone())),
            tokio::spawn(run_checkpointer(
                replicas.clone(),
                state.settings.get_i64("producer.id.expiration.ms"),
                shutdown_rx.clone(),
            )),
            tokio::spawn(run_image_follower(state.clone(), shutdown_rx.clone())),
            tokio::spawn(start_group_coordinator(state.clone(), shutdown_rx.clone())),
            tokio::spawn(start_transaction_coordinator(
                state.clone(),
                shutdown_rx.clone(),
            )),
            tokio::spawn(run_log_maintenance(state.clone(), shutdown_rx.clone())),
            tokio::spawn(net::acceptor::run_acceptor(
                listener,
                state.clone(),
                connections_max,
                shutdown_rx,
            )),
        ];
        tracing::info!(%local_addr, node_id = config.node_id, cluster_id = %quorum.cluster_id(), "broker started");
        Ok(Broker {
            state,
            local_addr,
            shutdown,
            tasks,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Completes when the broker hit a fatal error (a failed fsync); the
    /// owner then stops the process with its exit code, without `shutdown`.
    pub async fn fatal_error(&self) -> FatalError {
        self.state.replicas.fatal_error().await
    }

    /// Stops accepting, lets connections finish their current request, flushes
    /// and closes every log, writes checkpoints and `.clean-shutdown`.
    pub async fn shutdown(self) -> Result<(), BrokerError> {
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
        let replicas = self.state.replicas.clone();
        tokio::task::spawn_blocking(move || replicas.shutdown())
            .await
            .map_err(|e| BrokerError::Config(format!("shutdown task failed: {e}")))??;
        self.state.quorum.shutdown().await?;
        tracing::info!("broker stopped cleanly");
        Ok(())
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
    let text = text.strip_prefix("PLAINTEXT://").unwrap_or(text);
    let (host, port) = text.rsplit_once(':').ok_or_else(|| {
        BrokerError::Config(format!("advertised listener {text} is not HOST:PORT"))
    })?;
    let port = port
        .parse::<u16>()
        .map_err(|_| BrokerError::Config(format!("advertised listener {text} has a bad port")))?;
    Ok((host.trim_matches(['[', ']']).to_string(), port))
}

async fn run_checkpointer(
    replicas: Arc<ReplicaManager>,
    producer_id_expiration_ms: i64,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
            _ = shutdown.changed() => return,
        }
        let replicas = replicas.clone();
        let expiration_ms = producer_id_expiration_ms;
        match tokio::task::spawn_blocking(move || {
            replicas.expire_producers(clock::now_ms(), expiration_ms);
            replicas.write_producer_snapshots(false);
            replicas.write_checkpoints()
        })
        .await
        {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "writing checkpoints failed"),
            Err(error) => tracing::warn!(%error, "checkpoint task failed"),
        }
    }
}

/// Retention (every `log.retention.check.interval.ms`) and compaction (every
/// `log.cleaner.backoff.ms`, at most `log.cleaner.io.max.bytes.per.second`),
/// on the blocking pool.
async fn run_log_maintenance(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let retention_every = state
        .settings
        .get_i64("log.retention.check.interval.ms")
        .max(10);
    let clean_every = state.settings.get_i64("log.cleaner.backoff.ms").max(10);
    let cleaner_enabled = state.settings.get_bool("log.cleaner.enable");
    let tick = retention_every.min(clean_every).clamp(10, 1000) as u64;
    let mut next_retention = clock::now_ms() + retention_every;
    let mut next_clean = clock::now_ms() + clean_every;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(tick)) => {}
            _ = shutdown.changed() => return,
        }
        let now = clock::now_ms();
        let retention = now >= next_retention;
        let clean = cleaner_enabled && now >= next_clean;
        if retention {
            next_retention = now + retention_every;
        }
        if clean {
            next_clean = now + clean_every;
        }
        // Dynamic: read before every round.
        let cleaner_io_bytes_per_second = state
            .broker_config("log.cleaner.io.max.bytes.per.second")
            .trim()
            .parse::<f64>()
            .unwrap_or(f64::MAX);
        let replicas = state.replicas.clone();
        let result = tokio::task::spawn_blocking(move || {
            if replicas.maintain_logs(now, retention, clean, cleaner_io_bytes_per_second) {
                replicas.write_checkpoints()
            } else {
                Ok(())
            }
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            Ok(Err(error)) => tracing::warn!(%error, "writing checkpoints after retention failed"),
            Err(error) => tracing::warn!(%error, "log maintenance task failed"),
        }
    }
}

/// First wait before retrying a reconciliation that failed.
const RECONCILE_RETRY_MIN: Duration = Duration::from_millis(500);
/// Longest wait between reconciliation retries.
const RECONCILE_RETRY_MAX: Duration = Duration::from_secs(30);

/// Applies every new metadata image to the local partitions, and retries
/// (with backoff) partitions that failed to open until they succeed.
async fn run_image_follower(state: Arc<BrokerState>, mut shutdown: watch::Receiver<bool>) {
    let mut images = state.quorum.subscribe();
    let mut retry_in: Option<Duration> = None;
    loop {
        let retry = async {
            match retry_in {
                Some(delay) => tokio::time::sleep(delay).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = images.changed() => if changed.is_err() { return },
            _ = state.replicas.reconcile_retry_requested(), if retry_in.is_none() => {
                retry_in = Some(RECONCILE_RETRY_MIN);
                continue;
            }
            _ = retry => {}
            _ = shutdown.changed() => return,
        }
        let image = images.borrow_and_update().clone();
        match state.replicas.reconcile(&image) {
            Ok(()) => retry_in = None,
            Err(error) => {
                let delay = retry_in.map_or(RECONCILE_RETRY_MIN, |delay| {
                    (delay * 2).min(RECONCILE_RETRY_MAX)
                });
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64,
                    "applying the metadata image to local partitions failed; retrying");
                retry_in = Some(delay);
            }
        }
    }
}

/// Creates `__consumer_offsets` if needed, replays it (requests get
/// COORDINATOR_LOAD_IN_PROGRESS until then), then expires offsets
/// periodically; at shutdown answers every parked JoinGroup/SyncGroup.
async fn start_group_coordinator(state: Arc<BrokerState>, shutdown: watch::Receiver<bool>) {
    if let Err(message) = coordinator_topics::ensure_offsets_topic(&state).await {
        tracing::warn!(%message, "creating __consumer_offsets failed; FindCoordinator retries");
    }
    state.groups.load();
    state.groups.clone().run_maintenance(shutdown).await;
}

/// Creates `__transaction_state` if needed, replays it (requests get
/// COORDINATOR_LOAD_IN_PROGRESS until then), then aborts timed-out
/// transactions and expires idle transactional ids periodically.
async fn start_transaction_coordinator(state: Arc<BrokerState>, shutdown: watch::Receiver<bool>) {
    if let Err(message) = coordinator_topics::ensure_transaction_topic(&state).await {
        tracing::warn!(%message, "creating __transaction_state failed; FindCoordinator retries");
    }
    state.txns.load();
    state.txns.clone().run_maintenance(shutdown).await;
}
