//! One partition this node hosts, and the one leader append path every
//! writer takes: clients (Produce), the coordinators (their internal-topic
//! batches) and transaction markers all go through
//! `Partition::append_as_leader`, which checks and records producer state
//! under one lock and marks the partition for the flusher.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use sluice_log::batch::BatchHeader;
use sluice_log::producer_state::{self, BatchRange, Marker, ProducerStateManager, SequenceCheck};
use sluice_log::{control, AppendInfo, AppendOptions, Log};
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::config::TopicConfig;
use crate::error_codes;
use crate::isr::{CommittedState, LeaderIsr};

/// What this node is for a partition, from the metadata image: its leader
/// in a leader epoch, or a follower of another broker (or of none, while
/// the partition has no leader) in that epoch. Only a leader accepts
/// appends and serves fetches; follower appends come with replication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionRole {
    Leader { epoch: i32 },
    Follower { leader: Option<i32>, epoch: i32 },
}

impl PartitionRole {
    /// The role of `node_id` when the image names `leader` (-1: none) in
    /// `epoch`.
    pub fn of(node_id: i32, leader: i32, epoch: i32) -> PartitionRole {
        if leader == node_id {
            PartitionRole::Leader { epoch }
        } else {
            PartitionRole::Follower {
                leader: (leader >= 0).then_some(leader),
                epoch,
            }
        }
    }

    pub fn epoch(&self) -> i32 {
        match *self {
            PartitionRole::Leader { epoch } | PartitionRole::Follower { epoch, .. } => epoch,
        }
    }

    pub fn is_leader(&self) -> bool {
        matches!(self, PartitionRole::Leader { .. })
    }

    /// The role after the image says `next`: an older epoch never replaces
    /// a newer one (images are applied in order, but a role is also set
    /// when a partition opens).
    pub fn advanced_to(self, next: PartitionRole) -> PartitionRole {
        if next.epoch() >= self.epoch() {
            next
        } else {
            self
        }
    }
}

/// Checks a client's CurrentLeaderEpoch (-1 means "not given").
/// (FENCED_LEADER_EPOCH for an older epoch, UNKNOWN_LEADER_EPOCH for a
/// newer one, as Kafka's `Partition.checkCurrentLeaderEpoch`.)
pub fn check_leader_epoch(requested: i32, current: i32) -> i16 {
    if requested < 0 || requested == current {
        error_codes::NONE
    } else if requested > current {
        error_codes::UNKNOWN_LEADER_EPOCH
    } else {
        error_codes::FENCED_LEADER_EPOCH
    }
}

/// Who asks for a leader append: decides what is checked and recorded.
#[derive(Clone, Copy, Debug)]
pub enum AppendOrigin {
    /// A producer's Produce request: its sequence and epoch are checked, and
    /// an idempotent or transactional batch is recorded at `now_ms`.
    Client {
        /// Wall-clock time of the append (producer expiration).
        now_ms: i64,
    },
    /// A coordinator's batch in its internal topic (a transactional
    /// producer's TxnOffsetCommit opens that producer's transaction).
    Coordinator,
    /// A transaction marker written by the transaction coordinator of
    /// `coordinator_epoch`.
    Marker {
        marker: Marker,
        coordinator_epoch: i32,
    },
}

/// Why `append_marker` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    /// Refused with a Kafka error code: NOT_LEADER_OR_FOLLOWER, or
    /// TRANSACTION_COORDINATOR_FENCED when a coordinator of a later epoch
    /// already wrote a marker for the producer here.
    #[error("transaction marker refused (error code {0})")]
    Refused(i16),
    /// The log failed.
    #[error(transparent)]
    Log(#[from] sluice_log::LogError),
}

impl MarkerError {
    /// The Kafka error code of the failure.
    pub fn code(&self) -> i16 {
        match self {
            MarkerError::Refused(code) => *code,
            MarkerError::Log(error) => error_codes::from_log_error(error),
        }
    }
}

/// A marker appended by [`Partition::append_marker`]: its offset, and the
/// leader epoch it was written in (read before the append: if the epoch
/// moved on meanwhile, the durability wait fails, which is safe).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MarkerWritten {
    pub offset: i64,
    pub leader_epoch: i32,
}

/// How [`Partition::wait_replicated`] ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaWait {
    /// The high watermark passed the append, the ISR at least the min ISR.
    Replicated,
    /// The high watermark passed the append with the ISR below the min ISR
    /// (Kafka: NOT_ENOUGH_REPLICAS_AFTER_APPEND).
    BelowMinIsr,
    /// No longer led here in the append's epoch.
    NotLeader,
    /// The deadline passed first.
    TimedOut,
}

/// The outcome of `append_as_leader`.
#[derive(Debug)]
pub enum LeaderAppend {
    /// Written; not yet durable (the flusher covers it).
    Appended(AppendInfo),
    /// A retry of one of the producer's recent batches: where it was written.
    Duplicate(BatchRange),
    /// Refused, with the Kafka error code: by the producer state, or
    /// NOT_LEADER_OR_FOLLOWER when this node no longer leads the partition.
    Rejected(i16),
}

/// One partition this node hosts.
pub struct Partition {
    /// Topic name.
    pub topic: String,
    /// The topic's id; a re-created topic has a new one and a new log.
    pub topic_id: Uuid,
    /// Partition index.
    pub index: i32,
    /// Whether the topic is internal (clients may not produce to it).
    pub internal: bool,
    /// The partition's log.
    pub log: Arc<Log>,
    /// Leader or follower, in which leader epoch (from the metadata image);
    /// a leader stamps its epoch into every batch it appends.
    pub(crate) role: RwLock<PartitionRole>,
    /// The topic's effective config as the data path reads it.
    pub(crate) config: RwLock<Arc<TopicConfig>>,
    /// High watermark (exclusive): what consumers may read. Waiters subscribe.
    pub(crate) high_watermark: watch::Sender<i64>,
    /// The producer-state manager (idempotent sequences, open and aborted
    /// transactions). Its lock also serializes check-then-append: every
    /// leader append holds it (`append_as_leader`).
    pub producer_state: Mutex<ProducerStateManager>,
    /// Set when the producer state changed since its last snapshot.
    pub producer_state_dirty: AtomicBool,
    /// The partition directory (for producer-state snapshots).
    pub dir: std::path::PathBuf,
    /// Set by an append, cleared by the flusher before it syncs.
    pub(crate) dirty: AtomicBool,
    /// Wakes the replica manager's flusher after an append.
    pub(crate) flush_wakeup: Arc<Notify>,
    /// `sluice.flush.before.visible`: the high watermark waits for fsync.
    pub(crate) flush_before_visible: bool,
    /// The end offset this replica counts for itself: its durable end with
    /// `sluice.flush.before.visible`, else its log end. A leader's high
    /// watermark never passes it; a follower fetches from it.
    pub(crate) counted_end: AtomicI64,
    /// The log end offset, for followers' long polls on the leader.
    pub(crate) log_end: watch::Sender<i64>,
    /// While this node leads: its view of the followers and the ISR.
    pub(crate) leader_isr: Mutex<Option<LeaderIsr>>,
    /// Wakes the ISR task when a follower may join the ISR.
    pub(crate) isr_wakeup: Arc<Notify>,
    /// The replicas and ISR of the last image applied (any role).
    pub(crate) assignment: RwLock<CommittedState>,
}

impl Partition {
    pub fn leader_epoch(&self) -> i32 {
        self.role.read().epoch()
    }

    pub fn role(&self) -> PartitionRole {
        *self.role.read()
    }

    /// Where this leader's epoch began (its log end when it became
    /// leader); `None` on a follower.
    pub fn leader_epoch_start_offset(&self) -> Option<i64> {
        self.leader_isr
            .lock()
            .as_ref()
            .map(LeaderIsr::epoch_start_offset)
    }

    /// KIP-207: a new leader whose high watermark has not yet reached the
    /// start of its epoch does not know the latest committed offset (the
    /// old leader's high watermark may have been higher), so a client's
    /// ListOffsets for it answers OFFSET_NOT_AVAILABLE until it does.
    pub fn offsets_pending(&self) -> bool {
        self.leader_epoch_start_offset()
            .is_some_and(|start| start > self.high_watermark())
    }

    pub fn is_leader(&self) -> bool {
        self.role.read().is_leader()
    }

    /// Applies the partition state of the image (never an older epoch):
    /// the role, and for a leader its committed ISR. A node that becomes
    /// leader in a new epoch records the epoch at its log end and starts
    /// a fresh view of its followers; one that stops leading drops it.
    /// Produces waiting for acks=all are woken to see the change.
    pub(crate) fn apply_state(&self, node_id: i32, state: &sluice_meta::PartitionState) {
        let next = PartitionRole::of(node_id, state.leader, state.leader_epoch);
        let committed = CommittedState {
            replicas: state.replicas.clone(),
            isr: state.isr.clone(),
            leader_epoch: state.leader_epoch,
            partition_epoch: state.partition_epoch,
        };
        let changed = {
            // Under the lock every append holds: no append slips between
            // the role change and what it implies.
            let _appends = self.producer_state.lock();
            let before = *self.role.read();
            if next.epoch() < before.epoch() {
                return;
            }
            *self.role.write() = next;
            {
                let mut assignment = self.assignment.write();
                if committed.partition_epoch >= assignment.partition_epoch
                    || next.epoch() > before.epoch()
                {
                    *assignment = committed.clone();
                }
            }
            let mut leader_isr = self.leader_isr.lock();
            match next {
                PartitionRole::Leader { epoch } => match leader_isr.as_mut() {
                    Some(current) if current.committed().leader_epoch == epoch => {
                        if committed.partition_epoch >= current.committed().partition_epoch {
                            current.update_committed(committed);
                        }
                    }
                    _ => {
                        if let Err(error) = self.log.assign_leader_epoch(epoch) {
                            tracing::warn!(topic = %self.topic, partition = self.index, %error,
                                "recording the new leader epoch failed");
                        }
                        let start = self.log.log_end_offset();
                        *leader_isr = Some(LeaderIsr::new(
                            node_id,
                            committed,
                            start,
                            crate::clock::now_ms(),
                        ));
                    }
                },
                PartitionRole::Follower { .. } => *leader_isr = None,
            }
            before != next
        };
        if changed {
            // Kafka logs each role change of a partition at INFO: the first
            // line to read when leadership moved, or did not.
            match next {
                PartitionRole::Leader { epoch } => {
                    tracing::info!(topic = %self.topic, partition = self.index, leader_epoch = epoch,
                        isr = ?state.isr, log_end = self.log.log_end_offset(), "leads the partition");
                }
                PartitionRole::Follower { .. } => {
                    tracing::info!(topic = %self.topic, partition = self.index, leader = state.leader,
                        leader_epoch = state.leader_epoch, isr = ?state.isr, "follows the partition's leader");
                }
            }
            self.high_watermark.send_modify(|_| {});
            self.log_end.send_modify(|_| {});
        }
        self.maybe_advance_high_watermark();
    }

    /// The leader side of a follower's fetch at `fetch_offset`: records
    /// its progress, moves the high watermark, and wakes the ISR task when
    /// the follower is outside the ISR. False when this node does not lead
    /// the partition or `replica` is not one of its followers.
    pub(crate) fn on_follower_fetch(
        &self,
        replica: i32,
        fetch_offset: i64,
        broker_epoch: i64,
    ) -> bool {
        let leader_end = self.log.log_end_offset();
        let now = crate::clock::now_ms();
        let (known, outside) = match self.leader_isr.lock().as_mut() {
            None => (false, false),
            Some(isr) => {
                let known = isr.on_fetch(replica, fetch_offset, broker_epoch, leader_end, now);
                (known, known && !isr.committed().isr.contains(&replica))
            }
        };
        if known {
            self.maybe_advance_high_watermark();
            tracing::trace!(topic = %self.topic, partition = self.index, replica, fetch_offset,
                leader_end, counted_end = self.counted_end(), high_watermark = self.high_watermark(),
                "follower fetch");
            if outside {
                self.isr_wakeup.notify_one();
            }
        }
        known
    }

    /// The follower append path: one batch exactly as the leader stored it
    /// (`Log::append_replica`), its producer state recorded as a leader's
    /// append would have. False (nothing written) when this node leads.
    pub fn append_as_follower(
        &self,
        batch: &Bytes,
        header: &BatchHeader,
    ) -> Result<bool, sluice_log::LogError> {
        {
            let mut producers = self.producer_state.lock();
            if self.role().is_leader() {
                return Ok(false);
            }
            self.log.append_replica(batch)?;
            if header.producer_id >= 0 {
                producer_state::persistence::replay_batch(&mut producers, header, batch);
                self.producer_state_dirty.store(true, Ordering::Release);
            }
        }
        let end = self.log.log_end_offset();
        self.log_end.send_replace(end);
        if !self.flush_before_visible {
            self.counted_end.store(end, Ordering::Release);
        }
        self.dirty.store(true, Ordering::Release);
        Ok(true)
    }

    /// A follower's high watermark: its leader's, but never above its own
    /// counted end.
    pub(crate) fn set_follower_high_watermark(&self, leader_high_watermark: i64) {
        if self.role().is_leader() {
            return;
        }
        let next = leader_high_watermark.min(self.counted_end()).max(0);
        self.high_watermark.send_if_modified(|hw| {
            let changed = *hw != next;
            *hw = next;
            changed
        });
    }

    /// A follower truncates its log to `offset` (a divergence the leader
    /// reported), rolling its producer state back with it: snapshots above
    /// the new end are removed and the state rebuilt from the log.
    pub fn truncate_as_follower(&self, offset: i64) -> Result<(), sluice_log::LogError> {
        self.rewind_as_follower(|log| log.truncate_to(offset))
    }

    /// A follower whose log lies wholly below the leader's log start offset
    /// empties it and restarts it there.
    pub fn reset_as_follower(&self, offset: i64) -> Result<(), sluice_log::LogError> {
        self.rewind_as_follower(|log| log.truncate_fully_and_start_at(offset))
    }

    fn rewind_as_follower(
        &self,
        rewind: impl FnOnce(&Log) -> Result<(), sluice_log::LogError>,
    ) -> Result<(), sluice_log::LogError> {
        let end = {
            let mut producers = self.producer_state.lock();
            if self.role().is_leader() {
                return Ok(());
            }
            rewind(&self.log)?;
            let end = self.log.log_end_offset();
            if let Err(error) = producer_state::persistence::remove_snapshots_above(&self.dir, end)
            {
                tracing::warn!(topic = %self.topic, partition = self.index, %error,
                    "removing producer-state snapshots above the truncation point failed");
            }
            *producers = producer_state::persistence::load(&self.dir, &self.log);
            self.producer_state_dirty.store(true, Ordering::Release);
            end
        };
        let start = self.log.log_start_offset();
        self.counted_end
            .store(self.counted_end().min(end).max(start), Ordering::Release);
        self.high_watermark.send_if_modified(|hw| {
            let next = (*hw).min(end).max(start);
            let changed = *hw != next;
            *hw = next;
            changed
        });
        self.log_end.send_replace(end);
        Ok(())
    }

    /// The replicas and ISR of the last image applied.
    pub fn assignment(&self) -> CommittedState {
        self.assignment.read().clone()
    }

    /// A leader's check before an acks=all append: NOT_ENOUGH_REPLICAS when
    /// the ISR is below the effective min ISR.
    pub fn check_enough_replicas(&self) -> i16 {
        let min = self.config.read().min_insync_replicas;
        match self.leader_isr.lock().as_ref() {
            Some(isr) if isr.under_min_isr(min) => error_codes::NOT_ENOUGH_REPLICAS,
            _ => error_codes::NONE,
        }
    }

    pub fn config(&self) -> Arc<TopicConfig> {
        self.config.read().clone()
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// The last stable offset: the first offset of the oldest open
    /// transaction, or the high watermark when none is open (never above it).
    pub fn last_stable_offset(&self) -> i64 {
        let high_watermark = self.high_watermark();
        match self.producer_state.lock().first_unstable_offset() {
            Some(first) => first.min(high_watermark),
            None => high_watermark,
        }
    }

    /// Aborted transactions overlapping [from, to), by first offset.
    pub fn aborted_transactions(
        &self,
        from: i64,
        to: i64,
    ) -> Vec<producer_state::AbortedTransaction> {
        self.producer_state.lock().aborted_between(from, to)
    }

    /// Appends a transaction marker (a control batch) for a producer: the
    /// transaction coordinator's commit or abort. Returns its offset and the
    /// leader epoch it was written in; the caller waits for it to be
    /// replicated ([`Self::wait_replicated`]) if it needs durability.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: producer_state::Marker,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<MarkerWritten, MarkerError> {
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let key = control::encode_key(marker);
        let value = control::encode_marker_value(coordinator_epoch);
        let leader_epoch = self.leader_epoch();
        let record = Record {
            transactional: true,
            control: true,
            delete_horizon: false,
            partition_leader_epoch: leader_epoch,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: now_ms,
            key: Some(bytes::Bytes::copy_from_slice(&key)),
            value: Some(bytes::Bytes::copy_from_slice(&value)),
            headers: Default::default(),
        };
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, [&record], &options).map_err(|e| {
            sluice_log::LogError::Corrupt {
                path: self.dir.clone(),
                position: 0,
                reason: format!("encoding a transaction marker: {e}"),
            }
        })?;
        let header = sluice_log::batch::parse_header(&buf).map_err(sluice_log::LogError::from)?;
        let origin = AppendOrigin::Marker {
            marker,
            coordinator_epoch,
        };
        match self.append_as_leader(&buf.freeze(), &header, origin, None)? {
            LeaderAppend::Appended(info) => Ok(MarkerWritten {
                offset: info.base_offset,
                leader_epoch,
            }),
            LeaderAppend::Rejected(code) => Err(MarkerError::Refused(code)),
            // Only client appends are checked against the producer state,
            // so this is a bug: refused with an error, not a panic.
            LeaderAppend::Duplicate(_) => {
                tracing::error!(topic = %self.topic, partition = self.index,
                    "a transaction marker append was answered as a duplicate");
                Err(MarkerError::Refused(
                    crate::error_codes::UNKNOWN_SERVER_ERROR,
                ))
            }
        }
    }

    /// The one leader append path: under the producer-state lock, checks a
    /// client's batch against its producer's sequence and epoch, appends the
    /// batch (offsets and leader epoch stamped), records what the origin
    /// requires in the producer state, then marks the partition for the
    /// flusher (or publishes the new end when the high watermark does not
    /// wait for fsync). `records` is one validated v2 batch whose parsed
    /// header is `header`.
    pub fn append_as_leader(
        &self,
        records: &Bytes,
        header: &BatchHeader,
        origin: AppendOrigin,
        log_append_time_ms: Option<i64>,
    ) -> Result<LeaderAppend, sluice_log::LogError> {
        let info = {
            let mut producers = self.producer_state.lock();
            // Checked under the lock every leader append holds, so a role
            // change cannot slip between the check and the append.
            let PartitionRole::Leader { epoch } = self.role() else {
                return Ok(LeaderAppend::Rejected(error_codes::NOT_LEADER_OR_FOLLOWER));
            };
            let options = AppendOptions {
                leader_epoch: epoch,
                log_append_time_ms,
            };
            if let AppendOrigin::Client { .. } = origin {
                match producers.check(header) {
                    SequenceCheck::Append => {}
                    SequenceCheck::Duplicate(original) => {
                        return Ok(LeaderAppend::Duplicate(original))
                    }
                    SequenceCheck::Reject(error) => {
                        return Ok(LeaderAppend::Rejected(error_codes::from_sequence_error(
                            error,
                        )))
                    }
                }
            }
            // A coordinator's batch (TxnOffsetCommit) of a fenced producer
            // epoch: refused (docs/FAULTS.md #8).
            if matches!(origin, AppendOrigin::Coordinator)
                && producers.epoch_is_stale(header.producer_id, header.producer_epoch)
            {
                return Ok(LeaderAppend::Rejected(error_codes::INVALID_PRODUCER_EPOCH));
            }
            if let AppendOrigin::Marker {
                coordinator_epoch, ..
            } = origin
            {
                if !producers.coordinator_current(header.producer_id, coordinator_epoch) {
                    return Ok(LeaderAppend::Rejected(
                        error_codes::TRANSACTION_COORDINATOR_FENCED,
                    ));
                }
            }
            // A large batch is written from the request's own buffer.
            let info = self.log.append_shared(records, options)?;
            let recorded = match origin {
                AppendOrigin::Client { now_ms } if header.producer_id >= 0 => {
                    producers.record(header, info.base_offset, now_ms);
                    producers.record_transaction(header, info.base_offset, None);
                    true
                }
                AppendOrigin::Coordinator if header.producer_id >= 0 => {
                    producers.record_transaction(header, info.base_offset, None);
                    producers.observe_epoch(
                        header.producer_id,
                        header.producer_epoch,
                        header.max_timestamp,
                    );
                    true
                }
                AppendOrigin::Marker {
                    marker,
                    coordinator_epoch,
                } => {
                    producers.record_transaction(header, info.base_offset, Some(marker));
                    producers.record_coordinator_epoch(header.producer_id, coordinator_epoch);
                    producers.observe_epoch(
                        header.producer_id,
                        header.producer_epoch,
                        header.max_timestamp,
                    );
                    true
                }
                AppendOrigin::Client { .. } | AppendOrigin::Coordinator => false,
            };
            if recorded {
                self.producer_state_dirty.store(true, Ordering::Release);
            }
            info
        };
        self.mark_appended();
        Ok(LeaderAppend::Appended(info))
    }

    /// After an append: the flusher syncs it and then raises the high
    /// watermark; without `sluice.flush.before.visible` the new end counts
    /// at once.
    fn mark_appended(&self) {
        let end = self.log.log_end_offset();
        self.log_end.send_replace(end);
        if self.flush_before_visible {
            self.dirty.store(true, Ordering::Release);
            self.flush_wakeup.notify_one();
        } else {
            self.counted_end.store(end, Ordering::Release);
            self.maybe_advance_high_watermark();
            self.dirty.store(true, Ordering::Release);
        }
    }

    pub fn subscribe_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// An acks=all wait for a leader's append (Kafka's DelayedProduce with
    /// `Partition.checkEnoughReplicasReachOffset`): until the high
    /// watermark reaches `target`, as long as the partition is led here in
    /// `leader_epoch` (the epoch read before the append). A leader that was
    /// deposed meanwhile must not take a high watermark it learns as a
    /// follower for its own write: the offset it waits for may hold the new
    /// leader's record by then (docs/FAULTS.md #9).
    pub async fn wait_replicated(
        &self,
        target: i64,
        leader_epoch: i32,
        deadline: tokio::time::Instant,
    ) -> ReplicaWait {
        let mut receiver = self.subscribe_high_watermark();
        let still_leader = || self.is_leader() && self.leader_epoch() == leader_epoch;
        // `wait_for` answers with a borrow of the watch (its read lock):
        // turned into a plain outcome at once, so no other lock is taken
        // under it (the high watermark's publisher holds the ISR lock while
        // it writes).
        let waited = tokio::time::timeout_at(
            deadline,
            receiver.wait_for(|hw| *hw >= target || !still_leader()),
        )
        .await
        .map(|result| result.is_ok());
        match waited {
            Ok(true) if !still_leader() => ReplicaWait::NotLeader,
            Ok(true) => match self.check_enough_replicas() {
                error_codes::NONE => ReplicaWait::Replicated,
                _ => ReplicaWait::BelowMinIsr,
            },
            Ok(false) => ReplicaWait::NotLeader,
            Err(_) => ReplicaWait::TimedOut,
        }
    }

    pub fn subscribe_log_end(&self) -> watch::Receiver<i64> {
        self.log_end.subscribe()
    }

    /// The flusher made everything below `durable` durable.
    pub(crate) fn on_durable(&self, durable: i64) {
        if self.flush_before_visible {
            self.counted_end.fetch_max(durable, Ordering::AcqRel);
            self.maybe_advance_high_watermark();
        }
    }

    /// The end offset this replica counts for itself.
    pub fn counted_end(&self) -> i64 {
        self.counted_end.load(Ordering::Acquire)
    }

    /// A leader publishes the high watermark its ISR state allows
    /// (`LeaderIsr::high_watermark`); a follower's comes from its leader.
    pub(crate) fn maybe_advance_high_watermark(&self) {
        let counted = self.counted_end();
        let min = self.config.read().min_insync_replicas;
        let leader_isr = self.leader_isr.lock();
        let Some(isr) = leader_isr.as_ref() else {
            return;
        };
        self.high_watermark.send_if_modified(|hw| {
            let next = isr.high_watermark(*hw, counted, min);
            let changed = next != *hw;
            *hw = next;
            changed
        });
    }
}

#[cfg(test)]
mod tests {
    use super::PartitionRole;

    #[test]
    fn the_image_leader_is_the_leader_and_everyone_else_follows_it() {
        assert_eq!(
            PartitionRole::of(1, 1, 4),
            PartitionRole::Leader { epoch: 4 }
        );
        assert_eq!(
            PartitionRole::of(2, 1, 4),
            PartitionRole::Follower {
                leader: Some(1),
                epoch: 4
            }
        );
        assert_eq!(
            PartitionRole::of(2, -1, 5),
            PartitionRole::Follower {
                leader: None,
                epoch: 5
            }
        );
        assert!(PartitionRole::of(1, 1, 0).is_leader());
        assert!(!PartitionRole::of(2, 1, 0).is_leader());
    }

    #[test]
    fn an_older_epoch_never_replaces_a_newer_role() {
        let leader = PartitionRole::Leader { epoch: 3 };
        let stale = PartitionRole::of(1, 2, 2);
        assert_eq!(leader.advanced_to(stale), leader);
        let newer = PartitionRole::of(1, 2, 4);
        assert_eq!(leader.advanced_to(newer), newer);
        // The same epoch is re-applied as the image says.
        let same = PartitionRole::of(1, 1, 3);
        assert_eq!(leader.advanced_to(same), same);
    }
}
