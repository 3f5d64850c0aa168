//! The replica manager: this node's partitions, their high watermarks, and the
//! group-commit flusher.
//!
//! On a single node the high watermark is the durable offset (with
//! `sluice.flush.before.visible=true`, the default): an append lands in the
//! page cache, the flusher fsyncs many appends at once on the blocking pool,
//! then publishes the new high watermark, which wakes long-polling fetches and
//! acks=all producers.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use sluice_log::producer_state;
use sluice_log::{CheckpointEntry, DataDir, Log};
use sluice_meta::{ClusterImage, ImageDelta};
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::config::{DynamicBrokerConfigs, Settings, TopicConfig};
use crate::fatal::{FatalError, EXIT_INTERNAL_FAILURE, EXIT_STORAGE_FAILURE};
pub use crate::partition::{Partition, PartitionRole};

/// How many partitions the flusher fsyncs at once.
const FLUSH_PARALLELISM: usize = 8;

/// The hosted partitions, keyed by (topic id, partition index): a broker
/// may host partition 1 of a topic and not partition 0.
#[derive(Default)]
struct Hosted {
    /// Every hosted partition.
    by_id: HashMap<(Uuid, i32), Arc<Partition>>,
    /// Topic name to the id of the hosted incarnation (requests name topics).
    topic_ids: HashMap<String, Uuid>,
}

/// This node's partitions.
pub struct ReplicaManager {
    /// The data directory and its checkpoint files.
    data_dir: DataDir,
    /// The hosted partitions.
    partitions: RwLock<Hosted>,
    /// Broker settings (topic config defaults).
    settings: Arc<Settings>,
    /// This node's id.
    node_id: i32,
    /// `sluice.flush.before.visible`: the high watermark waits for fsync.
    flush_before_visible: bool,
    /// Wakes the flusher after appends (shared with every partition).
    flush_wakeup: Arc<Notify>,
    /// Wakes the ISR task when a follower may join an ISR (shared).
    pub(crate) isr_wakeup: Arc<Notify>,
    /// Serializes reconciliation with the metadata image.
    reconcile_lock: Mutex<()>,
    /// Partitions the image places here whose logs failed to open, with the
    /// error; reconciliation retries them.
    offline: Mutex<HashMap<(String, i32), String>>,
    /// Wakes the image follower to retry a reconciliation that failed
    /// outside it (in a controller call).
    reconcile_retry: Notify,
    /// The image the last reconciliation applied: the next one applies only
    /// the difference (`ImageDelta`).
    applied_image: Mutex<Option<Arc<ClusterImage>>>,
    /// The first fatal error (a failed fsync), watched by the broker's owner.
    fatal: watch::Sender<Option<FatalError>>,
}

impl ReplicaManager {
    pub fn new(data_dir: DataDir, settings: Arc<Settings>, node_id: i32) -> ReplicaManager {
        let flush_before_visible = settings.get_bool("sluice.flush.before.visible");
        ReplicaManager {
            data_dir,
            partitions: RwLock::new(Hosted::default()),
            settings,
            node_id,
            flush_before_visible,
            flush_wakeup: Arc::new(Notify::new()),
            isr_wakeup: Arc::new(Notify::new()),
            reconcile_lock: Mutex::new(()),
            offline: Mutex::new(HashMap::new()),
            reconcile_retry: Notify::new(),
            applied_image: Mutex::new(None),
            fatal: watch::channel(None).0,
        }
    }

    /// This node's id.
    pub fn node_id(&self) -> i32 {
        self.node_id
    }

    /// The metadata image the partitions were last reconciled with.
    pub fn image(&self) -> Option<Arc<ClusterImage>> {
        self.applied_image.lock().clone()
    }

    /// The hosted partition of the topic named `topic`.
    pub fn get(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        let hosted = self.partitions.read();
        let topic_id = hosted.topic_ids.get(topic)?;
        hosted.by_id.get(&(*topic_id, partition)).cloned()
    }

    /// The partition of `topic` this node leads, or the error a request
    /// that needs the leader (Produce, Fetch, ListOffsets, the coordinators'
    /// writes) gets: NOT_LEADER_OR_FOLLOWER when this node hosts it as a
    /// follower, else what `missing_partition_error` says.
    pub fn leader_partition(&self, topic: &str, partition: i32) -> Result<Arc<Partition>, i16> {
        match self.get(topic, partition) {
            Some(hosted) if hosted.is_leader() => Ok(hosted),
            Some(_) => Err(crate::error_codes::NOT_LEADER_OR_FOLLOWER),
            None => Err(self.missing_partition_error(topic, partition)),
        }
    }

    /// The partitions of `topic` (of `count`) this node leads, with their
    /// leader epochs (what a coordinator of that internal topic serves).
    pub fn led_partitions(&self, topic: &str, count: i32) -> std::collections::BTreeMap<i32, i32> {
        (0..count)
            .filter_map(|index| {
                self.leader_partition(topic, index)
                    .ok()
                    .map(|partition| (index, partition.leader_epoch()))
            })
            .collect()
    }

    /// The hosted partition of the topic with id `topic_id`.
    pub fn get_by_id(&self, topic_id: Uuid, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .by_id
            .get(&(topic_id, partition))
            .cloned()
    }

    /// Every hosted partition.
    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.partitions.read().by_id.values().cloned().collect()
    }

    /// Makes the hosted partitions match the image: opens logs for new
    /// partitions, removes logs of deleted topics (and of topics re-created
    /// under a new id), refreshes epochs and configs.
    ///
    /// Data is deleted only for topics the metadata log deleted
    /// (`ClusterImage::deleted_topic_ids`); a directory whose topic id the
    /// image does not know is set aside as stray. A partition that fails to
    /// open (full disk, no descriptors) is remembered as offline (requests
    /// for it get KAFKA_STORAGE_ERROR) and the others are still opened; the
    /// first failure is returned so the caller retries.
    pub fn reconcile(&self, image: &Arc<ClusterImage>) -> Result<(), sluice_log::LogError> {
        let _guard = self.reconcile_lock.lock();
        let previous = self.applied_image.lock().replace(image.clone());
        let delta = ImageDelta::between(previous.as_deref(), image);
        // Remove what the image no longer has.
        let stale: Vec<Arc<Partition>> = self
            .partitions
            .read()
            .by_id
            .values()
            .filter(|partition| delta.removed_topic_ids.contains(&partition.topic_id))
            .cloned()
            .collect();
        for partition in stale {
            self.remove_partition(image, &partition);
        }
        let retried: BTreeSet<String> = {
            let mut offline = self.offline.lock();
            offline.retain(|(topic, _), _| image.topic(topic).is_some());
            offline.keys().map(|(topic, _)| topic.clone()).collect()
        };
        // Open what the image has and we lack; refresh what changed. With
        // the dynamic broker configs changed, every topic's config may have.
        let dynamic = DynamicBrokerConfigs::from_image(image, self.node_id);
        let mut first_failure = None;
        let walked: Vec<&sluice_meta::TopicImage> = if delta.broker_configs_changed {
            image.topics.values().collect()
        } else {
            delta
                .changed_topics
                .iter()
                .chain(retried.iter())
                .filter_map(|name| image.topic(name))
                .collect()
        };
        for topic in walked {
            let config = Arc::new(self.settings.topic_config(&dynamic, &topic.configs));
            for state in &topic.partitions {
                if !state.replicas.contains(&self.node_id) {
                    continue;
                }
                match self.get(&topic.name, state.partition) {
                    Some(existing) => refresh(&existing, self.node_id, state, &config),
                    None => {
                        if let Err(error) = self.host(image, topic, state, &config) {
                            first_failure.get_or_insert(error);
                        }
                    }
                }
            }
        }
        match first_failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Opens a partition the image places here and starts hosting it; one
    /// that fails to open is remembered as offline (and logged once).
    fn host(
        &self,
        image: &ClusterImage,
        topic: &sluice_meta::TopicImage,
        state: &sluice_meta::PartitionState,
        config: &Arc<TopicConfig>,
    ) -> Result<(), sluice_log::LogError> {
        let index = state.partition;
        let key = (topic.name.clone(), index);
        let opened = self
            .clear_older_directory(image, &topic.name, topic.topic_id, index)
            .and_then(|()| self.open_partition(&topic.name, topic.topic_id, state, config.clone()));
        let partition = match opened {
            Ok(partition) => partition,
            Err(error) => {
                let first = self.offline.lock().insert(key, error.to_string()).is_none();
                if first {
                    tracing::error!(topic = %topic.name, partition = index, %error,
                        "cannot open partition; it is offline until a retry succeeds");
                }
                return Err(error);
            }
        };
        if self.offline.lock().remove(&key).is_some() {
            tracing::info!(topic = %topic.name, partition = index, "partition opened after earlier failures");
        }
        let mut hosted = self.partitions.write();
        hosted.topic_ids.insert(topic.name.clone(), topic.topic_id);
        hosted.by_id.insert((topic.topic_id, index), partition);
        Ok(())
    }

    /// Asks the image follower to retry reconciliation (with its backoff).
    pub fn request_reconcile_retry(&self) {
        self.reconcile_retry.notify_one();
    }

    /// Completes when `request_reconcile_retry` was called.
    pub async fn reconcile_retry_requested(&self) {
        self.reconcile_retry.notified().await;
    }

    /// Whether the image places this partition here but its log could not be
    /// opened (answer KAFKA_STORAGE_ERROR rather than "unknown").
    pub fn is_offline(&self, topic: &str, partition: i32) -> bool {
        self.offline
            .lock()
            .contains_key(&(topic.to_string(), partition))
    }

    /// The error for a request on a partition this node does not serve:
    /// KAFKA_STORAGE_ERROR when its log failed to open, else
    /// UNKNOWN_TOPIC_OR_PARTITION.
    pub fn missing_partition_error(&self, topic: &str, partition: i32) -> i16 {
        if self.is_offline(topic, partition) {
            crate::error_codes::KAFKA_STORAGE_ERROR
        } else {
            crate::error_codes::UNKNOWN_TOPIC_OR_PARTITION
        }
    }

    /// Before opening `topic`-`partition` under `topic_id`: a directory of the
    /// same name that holds another topic id is deleted when the metadata log
    /// deleted that topic, else set aside as stray.
    fn clear_older_directory(
        &self,
        image: &ClusterImage,
        topic: &str,
        topic_id: Uuid,
        partition: i32,
    ) -> Result<(), sluice_log::LogError> {
        let path = self.data_dir.partition_path(topic, partition);
        if !path.exists() {
            return Ok(());
        }
        match self.data_dir.stored_topic_id(topic, partition) {
            Some(stored) if stored == topic_id => Ok(()),
            // Left by an earlier attempt of ours that failed half-way (full
            // disk) before `partition.metadata` was written.
            None if self.is_offline(topic, partition) || directory_is_empty(&path) => Ok(()),
            stored => self.retire_directory(
                image,
                topic,
                partition,
                stored,
                "a topic of the same name takes its place",
            ),
        }
    }

    /// Sets aside, as stray, partition directories that belong to no
    /// partition this node hosts, unless the metadata log deleted their topic
    /// (a deletion that a crash interrupted): those are removed. Kafka's
    /// KIP-858: a broker never deletes a log its metadata does not know.
    pub fn remove_orphans(&self, image: &ClusterImage) -> Result<(), sluice_log::LogError> {
        for dir in self.data_dir.partition_dirs()? {
            if self.get(&dir.topic, dir.partition).is_some()
                || self.is_offline(&dir.topic, dir.partition)
            {
                continue;
            }
            self.retire_directory(
                image,
                &dir.topic,
                dir.partition,
                dir.topic_id(),
                "no partition hosted here uses it",
            )?;
        }
        Ok(())
    }

    /// The one decision for a partition directory this node stops using
    /// (KIP-858): deleted when the metadata log deleted the topic id it
    /// holds, else renamed aside as stray with every byte kept.
    fn retire_directory(
        &self,
        image: &ClusterImage,
        topic: &str,
        partition: i32,
        stored_topic_id: Option<Uuid>,
        why: &str,
    ) -> Result<(), sluice_log::LogError> {
        match stored_topic_id {
            Some(topic_id) if image.deleted_topic_ids.contains(&topic_id) => {
                tracing::info!(topic, partition, %topic_id, why,
                    "removing the directory of a deleted topic");
                self.data_dir.delete_partition(topic, partition)
            }
            topic_id => {
                let moved = self.data_dir.set_aside_stray(topic, partition)?;
                tracing::warn!(topic, partition, ?topic_id, why, moved_to = %moved.display(),
                    "partition directory holds a topic id the metadata does not know (or none); kept aside as stray");
                Ok(())
            }
        }
    }

    fn open_partition(
        &self,
        topic: &str,
        topic_id: Uuid,
        state: &sluice_meta::PartitionState,
        config: Arc<TopicConfig>,
    ) -> Result<Arc<Partition>, sluice_log::LogError> {
        let index = state.partition;
        let role = PartitionRole::of(self.node_id, state.leader, state.leader_epoch);
        let path = self.data_dir.partition_path(topic, index);
        let checkpoint = self.data_dir.checkpoint(topic, index);
        let recovery_point = if self.data_dir.was_clean_shutdown() {
            None
        } else {
            Some(checkpoint.as_ref().map(|c| c.recovery_point).unwrap_or(0))
        };
        let log_start_offset = checkpoint.as_ref().map(|c| c.log_start_offset);
        let log = Log::open_with_start(
            &path,
            config.log_config(),
            topic_id,
            recovery_point,
            log_start_offset,
        )?;
        if log.topic_id() != topic_id {
            // `clear_older_directory` moved any other topic's directory away
            // first; never serve another topic's data.
            log.close()?;
            return Err(sluice_log::LogError::Corrupt {
                path: path.clone(),
                position: 0,
                reason: format!(
                    "partition.metadata names topic id {} instead of {topic_id}",
                    log.topic_id()
                ),
            });
        }
        let producers = producer_state::persistence::load(&path, &log);
        let log = Arc::new(log);
        // What survived recovery is made durable before it is served. A
        // single replica's high watermark starts at the log end (as a
        // single-replica Kafka leader's does), never at a stale recovery
        // point; a replicated partition's at its checkpoint (what this
        // replica knew to be committed), until its leader says more.
        let durable = log.flush()?;
        let high_watermark = if state.replicas.len() > 1 {
            checkpoint
                .as_ref()
                .map_or(0, |c| c.high_watermark)
                .clamp(log.log_start_offset(), durable)
        } else {
            durable
        };
        let (sender, _) = watch::channel(high_watermark);
        let log_end = log.log_end_offset();
        let partition = Arc::new(Partition {
            topic: topic.to_string(),
            topic_id,
            index,
            internal: topic.starts_with("__"),
            log,
            role: RwLock::new(role),
            config: RwLock::new(config),
            high_watermark: sender,
            producer_state: Mutex::new(producers),
            flush_wakeup: self.flush_wakeup.clone(),
            flush_before_visible: self.flush_before_visible,
            producer_state_dirty: AtomicBool::new(false),
            dir: path.clone(),
            dirty: AtomicBool::new(false),
            counted_end: AtomicI64::new(durable),
            log_end: watch::channel(log_end).0,
            leader_isr: Mutex::new(None),
            isr_wakeup: self.isr_wakeup.clone(),
            assignment: RwLock::new(crate::isr::CommittedState {
                replicas: state.replicas.clone(),
                isr: state.isr.clone(),
                leader_epoch: state.leader_epoch,
                partition_epoch: state.partition_epoch,
            }),
        });
        partition.apply_state(self.node_id, state);
        Ok(partition)
    }

    /// Stops serving a partition the image no longer places here: its
    /// directory is deleted when the metadata log deleted the topic, else set
    /// aside as stray.
    fn remove_partition(&self, image: &ClusterImage, partition: &Arc<Partition>) {
        {
            let mut hosted = self.partitions.write();
            hosted.by_id.remove(&(partition.topic_id, partition.index));
            if hosted.topic_ids.get(&partition.topic) == Some(&partition.topic_id)
                && !hosted
                    .by_id
                    .keys()
                    .any(|(topic_id, _)| *topic_id == partition.topic_id)
            {
                hosted.topic_ids.remove(&partition.topic);
            }
        }
        if let Err(error) = partition.log.close() {
            tracing::warn!(topic = %partition.topic, %error, "closing deleted partition");
        }
        let retired = self.retire_directory(
            image,
            &partition.topic,
            partition.index,
            Some(partition.topic_id),
            "the metadata no longer places the partition here",
        );
        if let Err(error) = retired {
            tracing::warn!(topic = %partition.topic, partition = partition.index, %error,
                "removing or setting aside the partition directory failed");
        }
    }

    /// Reports an environmental failure that leaves the on-disk state
    /// unknowable (Kafka's LogDirFailureChannel): the broker's owner stops
    /// the process; nothing here exits.
    fn fail(&self, error: FatalError) {
        self.fatal.send_replace(Some(error));
    }

    /// A storage failure outside the flusher (a follower's fsync): the
    /// broker stops, as for the flusher's.
    pub(crate) fn report_storage_failure(&self, message: String) {
        self.fail(FatalError {
            exit_code: EXIT_STORAGE_FAILURE,
            message,
        });
    }

    /// Completes with the first fatal error reported.
    pub async fn fatal_error(&self) -> FatalError {
        let mut receiver = self.fatal.subscribe();
        loop {
            if let Some(error) = receiver.borrow_and_update().clone() {
                return error;
            }
            if receiver.changed().await.is_err() {
                // The sender lives as long as `self`, which outlives this call.
                std::future::pending::<()>().await;
            }
        }
    }

    /// The group-commit flusher: one fsync per dirty partition serves every
    /// append that arrived since the previous one. A failed fsync leaves the
    /// on-disk state unknowable, so the broker stops.
    pub async fn run_flusher(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            let dirty: Vec<Arc<Partition>> = self
                .all()
                .into_iter()
                .filter(|p| p.dirty.swap(false, Ordering::AcqRel))
                .collect();
            if dirty.is_empty() {
                tokio::select! {
                    _ = self.flush_wakeup.notified() => continue,
                    _ = shutdown.changed() => return,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                }
            }
            // The dirty partitions are dealt to up to FLUSH_PARALLELISM
            // lanes, one blocking task each, which fsync their partitions in
            // turn and publish each one's durable offset as soon as its own
            // fsync returns. One hand-off to the blocking pool per lane, not
            // per partition: at 100 partitions a task per fsync was two
            // thread wakeups per partition and round (docs/BENCHMARKS.md,
            // issue 15). A slow fsync holds back the partitions after it in
            // its lane only, never the other lanes.
            let lanes = dirty.len().min(FLUSH_PARALLELISM);
            let mut dealt: Vec<Vec<Arc<Partition>>> = vec![Vec::new(); lanes];
            for (index, partition) in dirty.into_iter().enumerate() {
                dealt[index % lanes].push(partition);
            }
            let flushes: Vec<_> = dealt
                .into_iter()
                .map(|lane| tokio::task::spawn_blocking(move || flush_lane(&lane)))
                .collect();
            for flush in flushes {
                match flush.await {
                    Ok(Ok(())) => {}
                    Ok(Err((partition, error))) => {
                        tracing::error!(topic = %partition.topic, partition = partition.index, %error,
                            "fsync failed: the state of the log on disk is unknown; stopping the broker");
                        // Nothing more is made visible or acknowledged:
                        // the flusher stops here and the owner exits.
                        self.fail(FatalError {
                            exit_code: EXIT_STORAGE_FAILURE,
                            message: format!(
                                "fsync of {}-{} failed: {error}",
                                partition.topic, partition.index
                            ),
                        });
                        return;
                    }
                    Err(join_error) => {
                        tracing::error!(%join_error, "flusher task failed; stopping the broker");
                        self.fail(FatalError {
                            exit_code: EXIT_INTERNAL_FAILURE,
                            message: format!("the flusher task failed: {join_error}"),
                        });
                        return;
                    }
                }
            }
        }
    }

    /// Writes a producer-state snapshot of every partition whose state
    /// changed (or of all, at shutdown).
    pub fn write_producer_snapshots(&self, all: bool) {
        for partition in self.all() {
            if !partition.producer_state_dirty.swap(false, Ordering::AcqRel) && !all {
                continue;
            }
            let (state, offset) = {
                let guard = partition.producer_state.lock();
                (guard.clone(), partition.log.log_end_offset())
            };
            if state.producers.is_empty() && !all {
                continue;
            }
            if let Err(error) = producer_state::persistence::write(&partition.dir, offset, &state) {
                tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "writing producer-state snapshot failed");
                partition
                    .producer_state_dirty
                    .store(true, Ordering::Release);
            }
        }
    }

    /// Forgets idempotent producers silent for `producer.id.expiration.ms`.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) {
        for partition in self.all() {
            let expired = partition
                .producer_state
                .lock()
                .expire(now_ms, expiration_ms);
            if expired > 0 {
                partition
                    .producer_state_dirty
                    .store(true, Ordering::Release);
            }
        }
    }

    /// One pass of log maintenance (blocking): retention on `delete` topics,
    /// compaction on `compact` topics (every pass's reads and writes paced
    /// together at `cleaner_io_bytes_per_second`), removal of files whose
    /// deletion delay has passed. Returns whether any log start offset moved.
    pub fn maintain_logs(
        &self,
        now_ms: i64,
        retention: bool,
        clean: bool,
        cleaner_io_bytes_per_second: f64,
    ) -> bool {
        let mut moved = false;
        let mut throttler = if cleaner_io_bytes_per_second > 0.0 {
            sluice_log::Throttler::new(cleaner_io_bytes_per_second)
        } else {
            sluice_log::Throttler::unlimited()
        };
        for partition in self.all() {
            let config = partition.config();
            let high_watermark = partition.high_watermark();
            if retention && config.deleting {
                match partition.log.enforce_retention(now_ms, high_watermark) {
                    Ok(result) if result.segments_deleted > 0 => {
                        moved = true;
                        tracing::info!(topic = %partition.topic, partition = partition.index,
                            segments = result.segments_deleted, bytes = result.bytes_deleted,
                            log_start_offset = result.log_start_offset, "retention deleted segments");
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "retention failed")
                    }
                }
            }
            if clean && config.compacted {
                // The cleaner stays below the last stable offset and needs the
                // aborted transactions and each producer's newest batch, all
                // read at once; the lock is not held while it works. (An
                // append after this lands at or above the high watermark read
                // above, so above the bound.)
                let (upper_bound, transactions) = {
                    let producers = partition.producer_state.lock();
                    let upper_bound = producers
                        .first_unstable_offset()
                        .map_or(high_watermark, |first| first.min(high_watermark));
                    let transactions = sluice_log::CleanerTxnInput {
                        aborted: producers.aborted_between(0, upper_bound),
                        last_batch_offsets: producers.last_batch_offsets(),
                    };
                    (upper_bound, transactions)
                };
                match partition
                    .log
                    .clean(now_ms, upper_bound, &transactions, &mut throttler)
                {
                    Ok(result) => {
                        if !result.aborted_transactions_removed.is_empty() {
                            let gone = &result.aborted_transactions_removed;
                            if partition.producer_state.lock().forget_aborted(gone) > 0 {
                                partition
                                    .producer_state_dirty
                                    .store(true, Ordering::Release);
                            }
                        }
                        if result.segments_cleaned > 0 {
                            tracing::info!(topic = %partition.topic, partition = partition.index,
                                segments = result.segments_cleaned, bytes_read = result.bytes_read,
                                bytes_written = result.bytes_written, records_removed = result.records_removed,
                                markers_removed = result.markers_removed, "log cleaned");
                        }
                    }
                    Err(error) => {
                        tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "cleaning failed")
                    }
                }
            }
            // Aborted ranges wholly below the log start (moved by retention
            // or DeleteRecords) describe nothing a fetch can return.
            let log_start_offset = partition.log.log_start_offset();
            if partition
                .producer_state
                .lock()
                .prune_aborted(log_start_offset)
                > 0
            {
                partition
                    .producer_state_dirty
                    .store(true, Ordering::Release);
            }
            if let Err(error) = partition.log.delete_expired_files(now_ms) {
                tracing::warn!(topic = %partition.topic, partition = partition.index, %error, "removing deleted segment files failed");
            }
        }
        moved
    }

    /// Writes the data-dir checkpoint files.
    pub fn write_checkpoints(&self) -> Result<(), sluice_log::LogError> {
        let entries: Vec<CheckpointEntry> = self
            .all()
            .iter()
            .map(|p| CheckpointEntry {
                topic: p.topic.clone(),
                partition: p.index,
                recovery_point: p.log.recovery_point(),
                log_start_offset: p.log.log_start_offset(),
                high_watermark: p.high_watermark(),
            })
            .collect();
        self.data_dir.write_checkpoints(&entries)
    }

    /// Flushes and closes every log, writes checkpoints and the clean-shutdown
    /// marker.
    pub fn shutdown(&self) -> Result<(), sluice_log::LogError> {
        for partition in self.all() {
            partition.log.flush()?;
        }
        self.write_producer_snapshots(true);
        self.write_checkpoints()?;
        for partition in self.all() {
            partition.log.close()?;
        }
        self.data_dir.mark_clean_shutdown()
    }
}

/// Whether `path` is a directory with nothing in it.
/// A hosted partition takes the image's role and the topic's effective
/// config (the running log gets a changed one through `Log::set_config`).
fn refresh(
    partition: &Partition,
    node_id: i32,
    state: &sluice_meta::PartitionState,
    config: &Arc<TopicConfig>,
) {
    let changed = {
        let mut current = partition.config.write();
        let changed = !Arc::ptr_eq(&current, config) && **current != **config;
        *current = config.clone();
        changed
    };
    if changed {
        partition.log.set_config(config.log_config());
    }
    partition.apply_state(node_id, state);
}

fn directory_is_empty(path: &std::path::Path) -> bool {
    std::fs::read_dir(path)
        .map(|mut entries| entries.next().is_none())
        .unwrap_or(false)
}

/// Fsyncs one flusher lane's partitions in turn; each is made durable (its
/// high watermark free to move) as soon as its own fsync returns. Stops at
/// the first failure, which stops the broker.
fn flush_lane(lane: &[Arc<Partition>]) -> Result<(), (Arc<Partition>, sluice_log::LogError)> {
    for partition in lane {
        match partition.log.flush() {
            Ok(durable) => partition.on_durable(durable),
            Err(sluice_log::LogError::Closed) => {}
            Err(error) => return Err((partition.clone(), error)),
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "replica_manager_tests.rs"]
mod tests;
