//! `Log`: one partition's segments, the append path, flush and truncation.
//! Opening and recovery live in `loader.rs`, reads in `read.rs`, retention
//! in `retention.rs`, cleaning in `cleaner.rs`; the state they share is
//! declared in `log_state.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};

use crate::batch::{self, BatchError};
use crate::checkpoint;
use crate::clock::now_ms;
use crate::loader;
use crate::log_state::{AppendState, PendingDelete, Snapshot};
use crate::read::{self, CorruptionReports};
use crate::segment::{BatchPlacement, Segment};
use crate::{AppendInfo, AppendOptions, LogConfig, LogError};

/// Below this size `append_shared` copies the batch (one write); above it,
/// it writes header and body separately rather than copy the body.
const SHARED_APPEND_MIN_BYTES: usize = 64 * 1024;

/// Who assigns a batch's offsets and epoch: the leader stamps them, a
/// follower keeps the leader's.
#[derive(Clone, Copy)]
enum Stamp {
    Leader(AppendOptions),
    Replica,
}

/// One partition's log. See the crate docs for the concurrency model.
pub struct Log {
    /// The partition directory.
    pub(crate) dir: PathBuf,
    /// Segment, retention and cleaning settings; replaced by `set_config`.
    config: RwLock<LogConfig>,
    /// The topic id from `partition.metadata`.
    pub(crate) topic_id: uuid::Uuid,
    /// Serializes appends, rolls, truncations and segment list changes.
    pub(crate) state: Mutex<AppendState>,
    /// Published view for readers; swapped after each append, never held across I/O.
    pub(crate) snapshot: RwLock<Arc<Snapshot>>,
    /// Serializes `flush` calls (the fsyncs themselves run outside `state`).
    flush_lock: Mutex<()>,
    /// Offset below which everything is known synced to disk.
    recovery_point: AtomicI64,
    /// Bumped by every truncation, so a flush racing one does not advance the
    /// recovery point over rewritten offsets.
    pub(crate) truncation_generation: AtomicU64,
    /// Set by `close`.
    closed: AtomicBool,
    /// Renamed segment files waiting to be removed (`delete_expired_files`).
    pub(crate) pending_deletes: Mutex<Vec<PendingDelete>>,
    /// Serializes `clean` calls (one cleaner pass per log at a time).
    pub(crate) cleaner_lock: Mutex<()>,
    /// The cleaner checkpoint: offsets below it were cleaned at least once.
    pub(crate) first_dirty_offset: AtomicI64,
    /// Corrupt batch headers reads have logged (each once).
    pub(crate) corruption_reports: CorruptionReports,
}

impl Log {
    /// Opens (or creates) the log in `dir`. When `recovery_point` is `None` the
    /// last shutdown was clean and no scan is needed (indexes are still checked
    /// for sanity); otherwise every segment holding offsets >= recovery_point is
    /// re-scanned batch by batch (length, magic, CRC), the log truncated at the
    /// first invalid byte (logged with tracing::warn!, with the bytes cut), and
    /// indexes rebuilt. `topic_id` is written to `partition.metadata` when that
    /// file is absent; `Log::topic_id()` reads it back.
    ///
    /// Same as `open_with_start(dir, config, topic_id, recovery_point, None)`:
    /// the log start offset is the first segment's base offset.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        topic_id: uuid::Uuid,
        recovery_point: Option<i64>,
    ) -> Result<Log, LogError> {
        Log::open_with_start(dir, config, topic_id, recovery_point, None)
    }

    /// `open`, restoring the log start offset from the data dir's
    /// `log-start-offset-checkpoint` (`DataDir::checkpoint(..).log_start_offset`).
    /// The start offset becomes max(first segment base, `log_start_offset`). A
    /// stored start above the log end offset (data lost in a crash) empties the
    /// log and restarts it there, as Kafka does. Before segments are loaded,
    /// leftovers of interrupted deletions and cleanings are settled: `*.deleted`
    /// and `*.cleaned` files are removed, `*.swap` files completed (see `clean`).
    pub fn open_with_start(
        dir: &Path,
        config: LogConfig,
        topic_id: uuid::Uuid,
        recovery_point: Option<i64>,
        log_start_offset: Option<i64>,
    ) -> Result<Log, LogError> {
        let loaded = loader::load(dir, &config, topic_id, recovery_point, log_start_offset)?;
        let (log_start_offset, log_end_offset) = (loaded.log_start_offset, loaded.log_end_offset);
        tracing::debug!(dir = %dir.display(), log_start_offset, log_end_offset, "log opened");
        let segments = Arc::new(loaded.segments);
        Ok(Log {
            dir: dir.to_path_buf(),
            config: RwLock::new(config),
            topic_id: loaded.topic_id,
            snapshot: RwLock::new(Arc::new(Snapshot {
                segments: segments.clone(),
                active_end: loaded.active_end,
                log_start_offset,
                log_end_offset,
            })),
            state: Mutex::new(AppendState {
                segments,
                log_end_offset,
                log_start_offset,
                epochs: loaded.epochs,
                active_first_append_ms: None,
                directory_dirty: loaded.directory_dirty,
            }),
            flush_lock: Mutex::new(()),
            recovery_point: AtomicI64::new(loaded.recovery_point),
            truncation_generation: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            pending_deletes: Mutex::new(Vec::new()),
            cleaner_lock: Mutex::new(()),
            first_dirty_offset: AtomicI64::new(loaded.first_dirty_offset),
            corruption_reports: CorruptionReports::default(),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    /// Replaces the configuration (a dynamic topic config change). Segment
    /// limits apply from the next append (roll decision), retention and
    /// cleaning settings from the next `enforce_retention` / `clean`.
    pub fn set_config(&self, config: LogConfig) {
        *self.config.write() = config;
    }

    /// The topic id in `partition.metadata`.
    pub fn topic_id(&self) -> uuid::Uuid {
        self.topic_id
    }

    pub(crate) fn check_open(&self) -> Result<(), LogError> {
        if self.closed.load(Ordering::Acquire) {
            Err(LogError::Closed)
        } else {
            Ok(())
        }
    }

    /// Publishes the state for readers; first raises the log start offset to
    /// the first segment's base offset when segments went away.
    pub(crate) fn publish(&self, state: &mut AppendState) {
        let segments = state.segments.clone();
        let active_end = segments.last().map_or(0, |segment| segment.size());
        let first_base = segments.first().map_or(0, |segment| segment.base_offset);
        state.log_start_offset = state.log_start_offset.max(first_base);
        *self.snapshot.write() = Arc::new(Snapshot {
            segments,
            active_end,
            log_start_offset: state.log_start_offset,
            log_end_offset: state.log_end_offset,
        });
    }

    /// Appends one already-validated v2 batch (see `batch::validate`): assigns
    /// baseOffset = log end offset in place, stamps the leader epoch (and the log
    /// append time), writes it to the active segment with one write, rolls first
    /// if needed, updates the sparse offset and time indexes. Not durable until
    /// `flush` has covered it.
    ///
    /// The batch must be exactly one whole v2
    /// batch (`InvalidBatch` otherwise).
    pub fn append(
        &self,
        batch: &mut BytesMut,
        options: AppendOptions,
    ) -> Result<AppendInfo, LogError> {
        self.append_parts(batch, &[], Stamp::Leader(options))
    }

    /// A follower's append (Kafka's `appendAsFollower`): one whole v2 batch
    /// exactly as the leader stored it — base offset, leader epoch and
    /// timestamps kept, nothing re-stamped. Its base offset must not be below
    /// the log end offset (`OffsetOutOfOrder`); it may be above it (the
    /// leader's log was compacted). The batch's leader epoch goes into the
    /// leader-epoch checkpoint when it is newer than the latest entry.
    pub fn append_replica(&self, batch: &Bytes) -> Result<AppendInfo, LogError> {
        let mut head = BytesMut::from(&batch[..batch.len().min(batch::HEADER_BYTES)]);
        let rest = if batch.len() > batch::HEADER_BYTES {
            &batch[batch::HEADER_BYTES..]
        } else {
            &[][..]
        };
        self.append_parts(&mut head, rest, Stamp::Replica)
    }

    /// `append` for a batch in a shared buffer (a produce request's bytes):
    /// a large batch is not copied — its 61-byte header is copied, stamped
    /// and written, then the rest is written from `batch` itself. Small
    /// batches, and LogAppendTime (which rewrites the CRC over the whole
    /// batch), take the copying path, which is cheaper than a second write.
    pub fn append_shared(
        &self,
        batch: &Bytes,
        options: AppendOptions,
    ) -> Result<AppendInfo, LogError> {
        if batch.len() < SHARED_APPEND_MIN_BYTES || options.log_append_time_ms.is_some() {
            return self.append(&mut BytesMut::from(&batch[..]), options);
        }
        let mut head = BytesMut::from(&batch[..batch::HEADER_BYTES]);
        self.append_parts(
            &mut head,
            &batch[batch::HEADER_BYTES..],
            Stamp::Leader(options),
        )
    }

    /// The append itself: `head` holds the batch's header (and, when `rest`
    /// is empty, the whole batch); only `head` is modified.
    fn append_parts(
        &self,
        head: &mut BytesMut,
        rest: &[u8],
        stamp: Stamp,
    ) -> Result<AppendInfo, LogError> {
        self.check_open()?;
        let batch = head;
        let header = batch::parse_header(batch)?;
        if header.total_bytes() != batch.len() + rest.len() {
            return Err(BatchError::CorruptSize.into());
        }
        if header.last_offset_delta < 0 {
            return Err(BatchError::InvalidRecordCount {
                record_count: header.record_count,
                last_offset_delta: header.last_offset_delta,
            }
            .into());
        }
        let config = self.config();
        let mut state = self.state.lock();
        let (base_offset, leader_epoch, log_append_time_ms) = match stamp {
            Stamp::Leader(options) => (
                state.log_end_offset,
                options.leader_epoch,
                options.log_append_time_ms,
            ),
            Stamp::Replica => {
                if header.base_offset < state.log_end_offset {
                    return Err(LogError::OffsetOutOfOrder {
                        base_offset: header.base_offset,
                        log_end_offset: state.log_end_offset,
                    });
                }
                (header.base_offset, header.partition_leader_epoch, None)
            }
        };
        let last_offset = base_offset + i64::from(header.last_offset_delta);
        let mut max_timestamp = header.max_timestamp;
        if let Stamp::Leader(_) = stamp {
            batch::set_base_offset(batch, base_offset);
            batch::set_partition_leader_epoch(batch, leader_epoch);
            if let Some(append_time) = log_append_time_ms {
                if !rest.is_empty() {
                    // Rewriting the CRC needs the whole batch in `head`.
                    return Err(BatchError::CorruptSize.into());
                }
                batch::set_log_append_time(batch, append_time);
                max_timestamp = append_time;
            }
        }
        let now = now_ms();
        let batch_bytes = (batch.len() + rest.len()) as u64;
        let active = state
            .segments
            .last()
            .cloned()
            .ok_or_else(|| LogError::Corrupt {
                path: self.dir.clone(),
                position: 0,
                reason: "log has no segment".to_string(),
            })?;
        let too_old = state
            .active_first_append_ms
            .is_some_and(|first| now - first >= config.segment_ms);
        let full = !active.can_hold(
            last_offset,
            batch_bytes,
            config.segment_bytes,
            config.segment_index_bytes,
        );
        let active = if active.size() > 0 && (too_old || full) {
            let rolled = Arc::new(Segment::create(&self.dir, base_offset)?);
            let mut segments: Vec<Arc<Segment>> = state.segments.as_ref().clone();
            segments.push(rolled.clone());
            state.segments = Arc::new(segments);
            state.active_first_append_ms = None;
            state.directory_dirty = true;
            tracing::debug!(dir = %self.dir.display(), base_offset, too_old, full, "rolled segment");
            rolled
        } else {
            active
        };
        if state.epochs.assign(leader_epoch, base_offset) {
            state.epochs.persist()?;
        }
        let placement = BatchPlacement {
            base_offset,
            last_offset,
            max_timestamp,
            position: active.size(),
            bytes: batch_bytes,
        };
        active.append_parts(batch, rest, placement, config.index_interval_bytes)?;
        state.active_first_append_ms.get_or_insert(now);
        state.log_end_offset = last_offset + 1;
        self.publish(&mut state);
        let log_start_offset = state.log_start_offset;
        Ok(AppendInfo {
            base_offset,
            last_offset,
            max_timestamp,
            log_append_time_ms: log_append_time_ms.unwrap_or(-1),
            log_start_offset,
        })
    }

    /// First readable offset: max(first segment base, the start offset set by
    /// `delete_records_before` or restored by `open_with_start`). Reads below it
    /// are `OffsetOutOfRange`.
    pub fn log_start_offset(&self) -> i64 {
        self.snapshot.read().log_start_offset
    }

    pub fn log_end_offset(&self) -> i64 {
        self.snapshot.read().log_end_offset
    }

    /// Offset up to which (exclusive) data is known durable on disk.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point.load(Ordering::Acquire)
    }

    /// Blocking: fsyncs every segment holding data below the current log end
    /// offset and not yet synced (the indexes of closed ones), then advances the recovery point.
    /// Returns the new recovery point (exclusive). Many appends, one fsync: the
    /// broker's flusher calls this from the blocking pool. Concurrent appends
    /// proceed while it runs.
    pub fn flush(&self) -> Result<i64, LogError> {
        self.check_open()?;
        self.flush_inner()
    }

    fn flush_inner(&self) -> Result<i64, LogError> {
        let _serial = self.flush_lock.lock();
        let generation = self.truncation_generation.load(Ordering::Acquire);
        let recovery_point = self.recovery_point();
        let (target, to_sync, directory_dirty) = {
            let mut state = self.state.lock();
            let segments = &state.segments;
            // Every segment holding offsets at or above the recovery point,
            // and the one ending exactly there (it may have been the active
            // segment at the previous flush, whose indexes were not synced).
            let to_sync: Vec<(Arc<Segment>, bool)> = segments
                .iter()
                .enumerate()
                .filter(|(index, _)| {
                    segments
                        .get(index + 1)
                        .is_none_or(|next| next.base_offset >= recovery_point)
                })
                .map(|(index, segment)| (segment.clone(), index + 1 == segments.len()))
                .collect();
            let dirty = std::mem::take(&mut state.directory_dirty);
            (state.log_end_offset, to_sync, dirty)
        };
        if target <= recovery_point && !directory_dirty {
            return Ok(recovery_point);
        }
        // The active segment's indexes are not synced: recovery rescans the
        // segment holding the recovery point and every later one and rebuilds
        // their indexes, so only the log bytes must be durable. A closed
        // segment gets its indexes synced by the first flush after the roll,
        // before the recovery point can pass its end. This saves two fsyncs
        // per group commit on the acks=all and visibility path.
        let synced = to_sync
            .iter()
            .try_for_each(|(segment, active)| {
                if *active {
                    segment.sync_log()
                } else {
                    // Synced for good: its indexes live in memory from here.
                    segment.sync().map(|()| segment.release_indexes())
                }
            })
            .and_then(|()| {
                if directory_dirty {
                    checkpoint::sync_dir(&self.dir)
                } else {
                    Ok(())
                }
            });
        if let Err(error) = synced {
            if directory_dirty {
                self.state.lock().directory_dirty = true;
            }
            tracing::error!(dir = %self.dir.display(), %error, "fsync failed");
            return Err(error);
        }
        let state = self.state.lock();
        if self.truncation_generation.load(Ordering::Acquire) == generation {
            let advanced = self.recovery_point().max(target).min(state.log_end_offset);
            self.recovery_point.store(advanced, Ordering::Release);
        }
        Ok(self.recovery_point())
    }

    /// Removes every batch with offsets >= `offset` (replication divergence).
    ///
    /// Truncation at or above the log end offset keeps every record but
    /// drops leader-epoch entries that start at the log end, as Kafka's
    /// `UnifiedLog.truncateTo` does: a replica that became leader (writing
    /// its epoch's entry) and lost leadership before it appended anything
    /// would otherwise send that epoch in every fetch, which the new leader
    /// never had, and truncate to its own end forever. At or below the
    /// first segment's base offset it empties the log and restarts it at
    /// `offset`.
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        self.check_open()?;
        let mut state = self.state.lock();
        if offset >= state.log_end_offset {
            let end = state.log_end_offset;
            if state.epochs.truncate_from(end) {
                state.epochs.persist()?;
            }
            return Ok(());
        }
        let segments = state.segments.clone();
        let first_base = segments.first().map_or(0, |segment| segment.base_offset);
        let interval = self.config.read().index_interval_bytes;
        let kept: Vec<Arc<Segment>> = if offset <= first_base {
            for segment in segments.iter() {
                segment.delete_files()?;
            }
            vec![Arc::new(Segment::create(&self.dir, offset.max(0))?)]
        } else {
            let containing = segments
                .partition_point(|segment| segment.base_offset <= offset)
                .saturating_sub(1);
            let mut keep_count = containing + 1;
            let segment = &segments[containing];
            if segment.base_offset == offset && containing > 0 {
                keep_count = containing;
            } else {
                let end = segment.size();
                let position =
                    read::locate(segment, offset, end)?.map_or(end, |(position, _)| position);
                segment.truncate_at(position, interval)?;
            }
            for removed in &segments[keep_count..] {
                removed.delete_files()?;
            }
            segments[..keep_count].to_vec()
        };
        let log_end_offset = kept.last().map_or(offset, |segment| segment.next_offset());
        tracing::info!(dir = %self.dir.display(), offset, log_end_offset, "truncated log");
        state.segments = Arc::new(kept);
        state.log_end_offset = log_end_offset;
        // Kafka: a truncation below the log start offset moves it back down.
        state.log_start_offset = state.log_start_offset.min(offset.max(0));
        self.first_dirty_offset
            .fetch_min(log_end_offset, Ordering::AcqRel);
        state.active_first_append_ms = None;
        state.directory_dirty = true;
        self.truncation_generation.fetch_add(1, Ordering::AcqRel);
        let recovery_point = self.recovery_point().min(log_end_offset);
        self.recovery_point.store(recovery_point, Ordering::Release);
        if state.epochs.truncate_from(log_end_offset) {
            state.epochs.persist()?;
        }
        self.publish(&mut state);
        Ok(())
    }

    /// Empties the log and restarts it at `offset` (Kafka's
    /// `truncateFullyAndStartAt`): a follower whose whole log lies below the
    /// leader's log start offset.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), LogError> {
        self.check_open()?;
        let offset = offset.max(0);
        let mut state = self.state.lock();
        for segment in state.segments.iter() {
            segment.delete_files()?;
        }
        let fresh = Arc::new(Segment::create(&self.dir, offset)?);
        tracing::info!(dir = %self.dir.display(), offset, "emptied log, restarting it at the leader's start");
        state.segments = Arc::new(vec![fresh]);
        state.log_end_offset = offset;
        state.log_start_offset = offset;
        self.first_dirty_offset.store(offset, Ordering::Release);
        state.active_first_append_ms = None;
        state.directory_dirty = true;
        self.truncation_generation.fetch_add(1, Ordering::AcqRel);
        self.recovery_point.store(offset, Ordering::Release);
        if state.epochs.truncate_from(i64::MIN) {
            state.epochs.persist()?;
        }
        // `publish` only raises the start; set it to the new one outright.
        let segments = state.segments.clone();
        *self.snapshot.write() = Arc::new(Snapshot {
            segments,
            active_end: 0,
            log_start_offset: offset,
            log_end_offset: offset,
        });
        Ok(())
    }

    /// OffsetForLeaderEpoch and the leader's divergence check, as Kafka's
    /// `LeaderEpochFileCache.endOffsetFor`: for the requested epoch, the
    /// largest epoch <= it that the log has, and the start offset of the next
    /// larger epoch (the log end offset for the latest). An epoch older than
    /// every one here gives itself and the first epoch's start offset (a new
    /// leader's empty log: the old leader's empty epoch 0 ends at 0 and has
    /// not diverged). `(-1, -1)` for an epoch newer than the latest, -1, or an
    /// empty history.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let state = self.state.lock();
        state
            .epochs
            .end_offset_for_epoch(epoch, state.log_end_offset)
    }

    /// A new leader records its epoch at its log end (Kafka's
    /// `LeaderEpochFileCache.assign` on becoming leader), so followers'
    /// divergence checks see where the epoch began before it appends.
    pub fn assign_leader_epoch(&self, epoch: i32) -> Result<(), LogError> {
        self.check_open()?;
        let mut state = self.state.lock();
        let end = state.log_end_offset;
        if state.epochs.assign(epoch, end) {
            state.epochs.persist()?;
        }
        Ok(())
    }

    /// The leader epoch cache entries, oldest first.
    pub fn leader_epoch_entries(&self) -> Vec<crate::EpochEntry> {
        self.state.lock().epochs.entries().to_vec()
    }

    /// Latest epoch in the leader-epoch checkpoint, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.state.lock().epochs.latest_epoch()
    }

    /// Flushes and closes; after this, further calls return `LogError::Closed`.
    ///
    /// Flushes, then marks the log closed. Closing twice is `Closed`.
    pub fn close(&self) -> Result<(), LogError> {
        self.check_open()?;
        self.flush_inner()?;
        self.closed.store(true, Ordering::Release);
        self.delete_expired_files(i64::MAX)?;
        Ok(())
    }
}
