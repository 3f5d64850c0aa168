//! The follower side of replication (Kafka's ReplicaFetcherManager,
//! ReplicaFetcherThread and AbstractFetcherThread): for every broker this
//! node follows, `num.replica.fetchers` tasks fetch their share of the
//! partitions with the Fetch API, as a replica (ReplicaState with this
//! broker's epoch, `LastFetchedEpoch`), append the leader's batches exactly
//! as stored, truncate where the leader reports a divergence, and learn the
//! high watermark.
//!
//! Durability: with `sluice.flush.before.visible` a follower fsyncs what a
//! response brought (one fsync per partition per response: group commit)
//! before its next fetch, and its fetch offset is its log end, so the offset
//! the leader counts for it is on its disk.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest};
use sluice_log::batch;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use uuid::Uuid;

use super::client::LeaderClient;
use crate::error_codes;
use crate::partition::{Partition, PartitionRole};
use crate::state::BrokerState;

/// The Fetch version followers send: ReplicaState (KIP-903) with topic ids
/// and DivergingEpoch.
const REPLICA_FETCH_VERSION: i16 = 15;
/// How often the manager looks for leaders to fetch from.
const MANAGER_INTERVAL_MS: u64 = 200;
/// Connecting to a leader.
const CONNECT_TIMEOUT_MS: u64 = 5_000;
/// Beyond the fetch's own wait, how long a response may take.
const RESPONSE_SLACK_MS: u64 = 30_000;

/// Which fetcher of a leader a partition belongs to.
fn fetcher_index(topic_id: Uuid, partition: i32, fetchers: usize) -> usize {
    let hash = (topic_id.as_u128() as u64) ^ (partition as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (hash % fetchers as u64) as usize
}

/// The leader a hosted partition follows, if it follows one.
fn leader_of(partition: &Partition, node_id: i32) -> Option<i32> {
    match partition.role() {
        PartitionRole::Follower {
            leader: Some(leader),
            ..
        } if leader != node_id => Some(leader),
        _ => None,
    }
}

/// Starts and retires fetcher tasks as leaderships move, until `shutdown`.
pub(crate) async fn run_replica_fetchers(
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let fetchers = state
        .metadata
        .settings()
        .get_i64("num.replica.fetchers")
        .clamp(1, 64) as usize;
    let node_id = state.metadata.node_id();
    let mut running: HashMap<(i32, usize), JoinHandle<()>> = HashMap::new();
    loop {
        let wanted: BTreeSet<(i32, usize)> = state
            .replicas
            .all()
            .iter()
            .filter_map(|p| {
                leader_of(p, node_id).map(|l| (l, fetcher_index(p.topic_id, p.index, fetchers)))
            })
            .collect();
        running.retain(|_, handle| !handle.is_finished());
        for key in wanted {
            running.entry(key).or_insert_with(|| {
                tracing::debug!(
                    leader = key.0,
                    fetcher = key.1,
                    "starting a replica fetcher"
                );
                tokio::spawn(run_fetcher(state.clone(), key, fetchers, shutdown.clone()))
            });
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(MANAGER_INTERVAL_MS)) => {}
            _ = shutdown.changed() => {
                for (_, handle) in running {
                    let _ = handle.await;
                }
                return;
            }
        }
    }
}

/// The fetch settings, read once per fetcher.
struct FetchSettings {
    wait_ms: i32,
    min_bytes: i32,
    response_max_bytes: i32,
    partition_max_bytes: i32,
    backoff: Duration,
    flush_before_visible: bool,
}

impl FetchSettings {
    fn of(state: &BrokerState) -> FetchSettings {
        let settings = state.metadata.settings();
        let int = |name: &str| settings.get_i64(name).clamp(0, i64::from(i32::MAX)) as i32;
        FetchSettings {
            wait_ms: int("replica.fetch.wait.max.ms"),
            min_bytes: int("replica.fetch.min.bytes"),
            response_max_bytes: int("replica.fetch.response.max.bytes").max(1),
            partition_max_bytes: int("replica.fetch.max.bytes").max(1),
            backoff: Duration::from_millis(
                settings.get_i64("replica.fetch.backoff.ms").max(1) as u64
            ),
            flush_before_visible: settings.get_bool("sluice.flush.before.visible"),
        }
    }
}

/// What one partition's answer led to.
enum Outcome {
    /// Batches appended (maybe none); the leader's high watermark.
    Fetched { high_watermark: i64 },
    /// The log was truncated: fetch again at once.
    Truncated,
    /// Not fetchable now (leadership moving, an error): back off.
    Delay,
}

/// One fetcher: fetches its partitions from `leader` until it has none or
/// the broker stops.
async fn run_fetcher(
    state: Arc<BrokerState>,
    (leader, index): (i32, usize),
    fetchers: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let node_id = state.metadata.node_id();
    let settings = FetchSettings::of(&state);
    let mut client: Option<LeaderClient> = None;
    let mut delayed: HashMap<(Uuid, i32), Instant> = HashMap::new();
    let mut failures = 0u32;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let mine: Vec<Arc<Partition>> = state
            .replicas
            .all()
            .into_iter()
            .filter(|p| {
                leader_of(p, node_id) == Some(leader)
                    && fetcher_index(p.topic_id, p.index, fetchers) == index
            })
            .collect();
        if mine.is_empty() {
            return;
        }
        let now = Instant::now();
        delayed.retain(|_, until| *until > now);
        let fetchable: Vec<Arc<Partition>> = mine
            .into_iter()
            .filter(|p| !delayed.contains_key(&(p.topic_id, p.index)))
            .collect();
        if fetchable.is_empty() {
            if pause(&mut shutdown, Duration::from_millis(50)).await {
                return;
            }
            continue;
        }
        if settings.flush_before_visible {
            // What an earlier response brought and a failed flush left.
            let unflushed: Vec<Arc<Partition>> = fetchable
                .iter()
                .filter(|p| p.counted_end() < p.log.log_end_offset())
                .cloned()
                .collect();
            if !flush_all(&state, &unflushed).await {
                return;
            }
        }
        let image = state.metadata.image();
        let Some(broker) = image.brokers.get(&leader) else {
            if pause(&mut shutdown, settings.backoff).await {
                return;
            }
            continue;
        };
        if client.is_none() {
            let connected = LeaderClient::connect(
                &broker.host,
                broker.port,
                format!("sluice-replica-fetcher-{node_id}-{index}"),
                Duration::from_millis(CONNECT_TIMEOUT_MS),
            )
            .await;
            match connected {
                Ok(connected) => client = Some(connected),
                Err(error) => {
                    failures += 1;
                    if failures == 1 || failures.is_multiple_of(30) {
                        tracing::warn!(leader, host = %broker.host, port = broker.port, %error,
                            failures, "cannot connect to the leader to fetch");
                    }
                    if pause(&mut shutdown, settings.backoff).await {
                        return;
                    }
                    continue;
                }
            }
        }
        let Some(connection) = client.as_mut() else {
            continue;
        };
        let request = build_request(
            &fetchable,
            node_id,
            state.controller.broker_epoch(),
            &settings,
        );
        let timeout = Duration::from_millis(settings.wait_ms as u64 + RESPONSE_SLACK_MS);
        let sent = tokio::select! {
            sent = connection.send(REPLICA_FETCH_VERSION, &request, timeout) => sent,
            _ = shutdown.changed() => return,
        };
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                failures += 1;
                if failures == 1 || failures.is_multiple_of(30) {
                    tracing::warn!(leader, %error, failures, "replica fetch failed; reconnecting");
                }
                client = None;
                if pause(&mut shutdown, settings.backoff).await {
                    return;
                }
                continue;
            }
        };
        failures = 0;
        if response.error_code != error_codes::NONE {
            tracing::debug!(
                leader,
                error_code = response.error_code,
                "replica fetch refused"
            );
            if pause(&mut shutdown, settings.backoff).await {
                return;
            }
            continue;
        }
        let mut fetched: Vec<(Arc<Partition>, i64)> = Vec::new();
        for topic in response.responses {
            for data in topic.partitions {
                let Some(partition) = state
                    .replicas
                    .get_by_id(topic.topic_id, data.partition_index)
                else {
                    continue;
                };
                if leader_of(&partition, node_id) != Some(leader) {
                    continue;
                }
                match process(&partition, &data) {
                    Outcome::Fetched { high_watermark } => {
                        fetched.push((partition, high_watermark))
                    }
                    Outcome::Truncated => {}
                    Outcome::Delay => {
                        delayed.insert(
                            (partition.topic_id, partition.index),
                            Instant::now() + settings.backoff,
                        );
                    }
                }
            }
        }
        if settings.flush_before_visible {
            let appended: Vec<Arc<Partition>> = fetched
                .iter()
                .filter(|(p, _)| p.counted_end() < p.log.log_end_offset())
                .map(|(p, _)| p.clone())
                .collect();
            if !flush_all(&state, &appended).await {
                return;
            }
        }
        for (partition, high_watermark) in fetched {
            partition.set_follower_high_watermark(high_watermark);
        }
    }
}

/// Sleeps `delay` unless the broker stops first (true then).
async fn pause(shutdown: &mut watch::Receiver<bool>, delay: Duration) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => *shutdown.borrow(),
        _ = shutdown.changed() => true,
    }
}

/// Fsyncs the partitions in parallel on the blocking pool; false after a
/// failed fsync, which stops the broker (as the leader's flusher does).
async fn flush_all(state: &BrokerState, partitions: &[Arc<Partition>]) -> bool {
    let flushes: Vec<_> = partitions
        .iter()
        .map(|partition| {
            let log = partition.log.clone();
            tokio::task::spawn_blocking(move || log.flush())
        })
        .collect();
    let mut healthy = true;
    for (partition, flush) in partitions.iter().zip(flushes) {
        match flush.await {
            Ok(Ok(durable)) => partition.on_durable(durable),
            Ok(Err(sluice_log::LogError::Closed)) => {}
            Ok(Err(error)) => {
                tracing::error!(topic = %partition.topic, partition = partition.index, %error,
                    "fsync of a replicated batch failed: the state of the log on disk is unknown; stopping the broker");
                state.replicas.report_storage_failure(format!(
                    "fsync of {}-{} failed: {error}",
                    partition.topic, partition.index
                ));
                healthy = false;
            }
            Err(error) => {
                tracing::error!(%error, "a follower's flush task failed");
                healthy = false;
            }
        }
    }
    healthy
}

fn build_request(
    partitions: &[Arc<Partition>],
    node_id: i32,
    broker_epoch: i64,
    settings: &FetchSettings,
) -> FetchRequest {
    let mut topics: BTreeMap<Uuid, Vec<FetchPartition>> = BTreeMap::new();
    for partition in partitions {
        topics.entry(partition.topic_id).or_default().push(
            FetchPartition::default()
                .with_partition(partition.index)
                .with_current_leader_epoch(partition.leader_epoch())
                .with_fetch_offset(partition.log.log_end_offset())
                .with_last_fetched_epoch(partition.log.latest_epoch().unwrap_or(-1))
                .with_log_start_offset(partition.log.log_start_offset())
                .with_partition_max_bytes(settings.partition_max_bytes),
        );
    }
    FetchRequest::default()
        .with_replica_state(
            ReplicaState::default()
                .with_replica_id(BrokerId(node_id))
                .with_replica_epoch(broker_epoch),
        )
        .with_max_wait_ms(settings.wait_ms)
        .with_min_bytes(settings.min_bytes)
        .with_max_bytes(settings.response_max_bytes)
        .with_isolation_level(0)
        .with_session_id(0)
        .with_session_epoch(-1)
        .with_topics(
            topics
                .into_iter()
                .map(|(topic_id, partitions)| {
                    FetchTopic::default()
                        .with_topic_id(topic_id)
                        .with_partitions(partitions)
                })
                .collect(),
        )
}

/// Handles one partition's answer (Kafka's
/// `AbstractFetcherThread.processFetchRequest` for one partition).
fn process(partition: &Partition, data: &PartitionData) -> Outcome {
    match data.error_code {
        error_codes::NONE => {}
        error_codes::OFFSET_OUT_OF_RANGE => return out_of_range(partition, data),
        code => {
            tracing::debug!(topic = %partition.topic, partition = partition.index, error_code = code,
                "replica fetch of a partition refused; backing off");
            return Outcome::Delay;
        }
    }
    let diverging = &data.diverging_epoch;
    if diverging.epoch >= 0 || diverging.end_offset >= 0 {
        return truncate_diverged(partition, diverging.epoch, diverging.end_offset);
    }
    if let Some(records) = &data.records {
        if let Err(error) = append_all(partition, records) {
            tracing::warn!(topic = %partition.topic, partition = partition.index, %error,
                "appending replicated batches failed; backing off");
            return Outcome::Delay;
        }
    }
    // The leader's log start moved (retention, DeleteRecords): follow it.
    let start = data.log_start_offset.min(partition.log.log_end_offset());
    if start > partition.log.log_start_offset() {
        if let Err(error) = partition.log.delete_records_before(start, i64::MAX) {
            tracing::debug!(topic = %partition.topic, partition = partition.index, %error,
                "following the leader's log start offset failed");
        }
    }
    Outcome::Fetched {
        high_watermark: data.high_watermark,
    }
}

/// Appends every whole batch of a response at or above the log end.
fn append_all(partition: &Partition, records: &bytes::Bytes) -> Result<(), sluice_log::LogError> {
    let mut position = 0usize;
    while position + batch::HEADER_BYTES <= records.len() {
        let header = batch::parse_header(&records[position..])?;
        let end = position + header.total_bytes();
        if end > records.len() {
            // A partial batch at the end of a size-bounded read.
            break;
        }
        if header.last_offset() >= partition.log.log_end_offset() {
            let bytes = records.slice(position..end);
            if !partition.append_as_follower(&bytes, &header)? {
                break;
            }
        }
        position = end;
    }
    Ok(())
}

/// KIP-101/KIP-279: truncate to the smaller of where the leader's epoch
/// ends and where this replica's own entry for that epoch ends; when the
/// leader has no epoch at or below ours, to the high watermark (Kafka's
/// fallback). The next fetch sends the new last epoch, so histories that
/// still differ are found again.
fn truncate_diverged(partition: &Partition, leader_epoch: i32, leader_end: i64) -> Outcome {
    let log_end = partition.log.log_end_offset();
    let point = if leader_epoch < 0 || leader_end < 0 {
        partition.high_watermark().min(log_end)
    } else {
        let (own_epoch, own_end) = partition.log.end_offset_for_epoch(leader_epoch);
        if own_epoch < 0 {
            leader_end.min(log_end)
        } else {
            leader_end.min(own_end)
        }
    };
    tracing::info!(topic = %partition.topic, partition = partition.index, leader_epoch, leader_end,
        log_end, truncate_to = point, "log diverges from the leader's; truncating");
    match partition.truncate_as_follower(point) {
        Ok(()) => Outcome::Truncated,
        Err(error) => {
            tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "truncation failed");
            Outcome::Delay
        }
    }
}

/// The fetch offset is outside the leader's log: below its start (this
/// replica was away while retention moved on), start over there; above its
/// end without an epoch to compare (an empty epoch history), truncate to
/// the leader's high watermark.
fn out_of_range(partition: &Partition, data: &PartitionData) -> Outcome {
    let log_end = partition.log.log_end_offset();
    let result = if data.log_start_offset >= 0 && log_end < data.log_start_offset {
        tracing::info!(topic = %partition.topic, partition = partition.index, log_end,
            leader_log_start = data.log_start_offset, "behind the leader's log start; starting over there");
        partition.reset_as_follower(data.log_start_offset)
    } else if data.high_watermark >= 0 && data.high_watermark < log_end {
        tracing::warn!(topic = %partition.topic, partition = partition.index, log_end,
            leader_high_watermark = data.high_watermark, "fetch offset beyond the leader's log; truncating to its high watermark");
        partition.truncate_as_follower(data.high_watermark)
    } else {
        return Outcome::Delay;
    };
    match result {
        Ok(()) => Outcome::Truncated,
        Err(error) => {
            tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "truncation failed");
            Outcome::Delay
        }
    }
}
