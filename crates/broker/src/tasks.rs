//! The broker's background tasks: the checkpointer, log maintenance
//! (retention, cleaning, producer expiry), the metadata image follower that
//! reconciles local partitions, and the coordinators' start-up.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::replica_manager::ReplicaManager;
use crate::state::BrokerState;
use crate::{clock, coordinator_topics};

pub(crate) async fn run_checkpointer(
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
pub(crate) async fn run_log_maintenance(
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let retention_every = state
        .metadata
        .settings()
        .get_i64("log.retention.check.interval.ms")
        .max(10);
    let clean_every = state
        .metadata
        .settings()
        .get_i64("log.cleaner.backoff.ms")
        .max(10);
    let cleaner_enabled = state.metadata.settings().get_bool("log.cleaner.enable");
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
            .metadata
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
pub(crate) async fn run_image_follower(
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut images = state.metadata.quorum().subscribe();
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

/// How often the coordinators compare the partitions they serve with the
/// leaderships of their internal topic.
const COORDINATOR_OWNERSHIP_INTERVAL: Duration = Duration::from_millis(200);

/// Creates `__consumer_offsets` if needed, replays it (requests get
/// COORDINATOR_LOAD_IN_PROGRESS until then), then expires offsets
/// periodically; at shutdown answers every parked JoinGroup/SyncGroup.
pub(crate) async fn start_group_coordinator(
    state: Arc<BrokerState>,
    shutdown: watch::Receiver<bool>,
) {
    if let Err(message) =
        coordinator_topics::ensure_offsets_topic(&state.controller, &state.groups).await
    {
        tracing::warn!(%message, "creating __consumer_offsets failed; FindCoordinator retries");
    }
    state.groups.sync_ownership();
    tokio::spawn(
        state
            .groups
            .clone()
            .run_ownership(COORDINATOR_OWNERSHIP_INTERVAL, shutdown.clone()),
    );
    state.groups.clone().run_maintenance(shutdown).await;
}

/// Creates `__transaction_state` if needed, replays it (requests get
/// COORDINATOR_LOAD_IN_PROGRESS until then), then aborts timed-out
/// transactions and expires idle transactional ids periodically.
pub(crate) async fn start_transaction_coordinator(
    state: Arc<BrokerState>,
    shutdown: watch::Receiver<bool>,
) {
    if let Err(message) =
        coordinator_topics::ensure_transaction_topic(&state.controller, &state.txns).await
    {
        tracing::warn!(%message, "creating __transaction_state failed; FindCoordinator retries");
    }
    state.txns.sync_ownership();
    tokio::spawn(
        state
            .txns
            .clone()
            .run_ownership(COORDINATOR_OWNERSHIP_INTERVAL, shutdown.clone()),
    );
    state.txns.clone().run_maintenance(shutdown).await;
}
