//! sluice-log: the storage engine.
//!
//! CONTRACT (the broker codes against exactly this public API; keep it, extend it,
//! do not rename it without updating crates/broker):
//!
//! * `batch` — RecordBatch v2 header parsing / validation / in-place rewrite.
//! * `Log` — one partition's log in its own directory (`<topic>-<partition>/`).
//!   `Log: Send + Sync`; every method takes `&self`. Appends are serialized
//!   internally; reads do not block appends (positional reads on shared file
//!   handles of a snapshot of the segment list).
//! * `DataDir` — the data directory: partition directory discovery, the three
//!   data-dir-level checkpoint files, `.clean-shutdown`.
//!
//! sluice-log knows nothing of sockets or of Kafka request types.

pub mod batch;

use std::path::{Path, PathBuf};

use bytes::{Bytes, BytesMut};

/// Errors of the storage engine. The broker maps them to Kafka error codes.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("I/O error on {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("offset {offset} out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    #[error("invalid batch: {0}")]
    InvalidBatch(#[from] batch::BatchError),
    #[error("corrupt data in {path} at position {position}: {reason}")]
    Corrupt {
        path: PathBuf,
        position: u64,
        reason: String,
    },
    #[error("log is closed")]
    Closed,
}

/// Per-log configuration, Kafka's topic config names in comments.
#[derive(Clone, Debug)]
pub struct LogConfig {
    /// `segment.bytes` (default 1 GiB): roll when the active segment would exceed it.
    pub segment_bytes: u64,
    /// `segment.ms` (default 7 days): roll when the active segment is older.
    pub segment_ms: i64,
    /// `segment.index.bytes` (default 10 MiB): roll when an index is full.
    pub segment_index_bytes: u64,
    /// `index.interval.bytes` (default 4096): bytes between sparse index entries.
    pub index_interval_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
        }
    }
}

/// How an append stamps the batch.
#[derive(Clone, Copy, Debug)]
pub struct AppendOptions {
    /// Written into the batch's partitionLeaderEpoch field; also recorded in the
    /// leader-epoch checkpoint when it is newer than the latest entry.
    pub leader_epoch: i32,
    /// `Some(now_ms)` when the topic uses `message.timestamp.type=LogAppendTime`:
    /// the header's timestamp-type bit and maxTimestamp are rewritten and the CRC
    /// recomputed, records are not decoded.
    pub log_append_time_ms: Option<i64>,
}

/// What an append did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The batch's maxTimestamp as stored (the log append time if rewritten).
    pub max_timestamp: i64,
    /// -1 unless the log append time was applied.
    pub log_append_time_ms: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
}

/// Whole batches read from the log.
#[derive(Clone, Debug, Default)]
pub struct ReadResult {
    /// Zero or more whole RecordBatch v2 byte ranges, back to back, exactly as
    /// stored. Empty when nothing below `max_offset` is at `start_offset`.
    pub records: Bytes,
}

/// One partition's log.
pub struct Log {
    _private: (),
}

impl Log {
    /// Opens (or creates) the log in `dir`. When `recovery_point` is `None` the
    /// last shutdown was clean and no scan is needed (indexes are still checked
    /// for sanity); otherwise every segment holding offsets >= recovery_point is
    /// re-scanned batch by batch (length, magic, CRC), the log truncated at the
    /// first invalid byte (logged with tracing::warn!, with the bytes cut), and
    /// indexes rebuilt. `topic_id` is written to `partition.metadata` when that
    /// file is absent; `Log::topic_id()` reads it back.
    pub fn open(
        dir: &Path,
        config: LogConfig,
        topic_id: uuid::Uuid,
        recovery_point: Option<i64>,
    ) -> Result<Log, LogError> {
        let _ = (dir, config, topic_id, recovery_point);
        todo!()
    }

    /// The topic id in `partition.metadata`.
    pub fn topic_id(&self) -> uuid::Uuid {
        todo!()
    }

    /// Appends one already-validated v2 batch (see `batch::validate`): assigns
    /// baseOffset = log end offset in place, stamps the leader epoch (and the log
    /// append time), writes it to the active segment with one write, rolls first
    /// if needed, updates the sparse offset and time indexes. Not durable until
    /// `flush` has covered it.
    pub fn append(&self, batch: &mut BytesMut, options: AppendOptions) -> Result<AppendInfo, LogError> {
        let _ = (batch, options);
        todo!()
    }

    /// Reads whole batches starting with the batch that contains `start_offset`
    /// (a fetch offset inside a batch returns that whole batch), stopping before
    /// any batch whose last offset is >= `max_offset` (the high watermark), and
    /// before `max_bytes` would be exceeded, except that when `min_one_batch` is
    /// true the first batch is returned whole even if larger than `max_bytes`.
    /// `start_offset` outside [log_start_offset, log_end_offset] is
    /// `LogError::OffsetOutOfRange`; `start_offset == log_end_offset` is empty.
    pub fn read(
        &self,
        start_offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadResult, LogError> {
        let _ = (start_offset, max_offset, max_bytes, min_one_batch);
        todo!()
    }

    pub fn log_start_offset(&self) -> i64 {
        todo!()
    }

    pub fn log_end_offset(&self) -> i64 {
        todo!()
    }

    /// Offset up to which (exclusive) data is known durable on disk.
    pub fn recovery_point(&self) -> i64 {
        todo!()
    }

    /// Blocking: fsyncs every segment (and index) holding data below the current
    /// log end offset and not yet synced, then advances the recovery point.
    /// Returns the new recovery point (exclusive). Many appends, one fsync: the
    /// broker's flusher calls this from the blocking pool. Concurrent appends
    /// proceed while it runs.
    pub fn flush(&self) -> Result<i64, LogError> {
        todo!()
    }

    /// First record (not batch) with timestamp >= `timestamp` among offsets
    /// below `max_offset`: `Some((offset, record_timestamp))`, or `None`.
    /// The time index finds the batch; the records inside decide (compressed
    /// batches are decompressed with kafka-protocol's decoder).
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
        max_offset: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let _ = (timestamp, max_offset);
        todo!()
    }

    /// The record with the largest timestamp below `max_offset` (ListOffsets -3):
    /// `Some((offset, timestamp))`, or `None` for an empty log.
    pub fn max_timestamp_offset(&self, max_offset: i64) -> Result<Option<(i64, i64)>, LogError> {
        let _ = max_offset;
        todo!()
    }

    /// OffsetForLeaderEpoch: for the requested epoch, the largest epoch <= it
    /// that the log has, and the start offset of the next larger epoch (or the
    /// log end offset if it is the latest). `(-1, -1)` when the log has no epoch
    /// <= the requested one.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let _ = epoch;
        todo!()
    }

    /// Latest epoch in the leader-epoch checkpoint, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        todo!()
    }

    /// Removes every batch with offsets >= `offset` (replication divergence).
    pub fn truncate_to(&self, offset: i64) -> Result<(), LogError> {
        let _ = offset;
        todo!()
    }

    /// Flushes and closes; after this, further calls return `LogError::Closed`.
    pub fn close(&self) -> Result<(), LogError> {
        todo!()
    }
}

/// One partition directory found in the data dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionDir {
    pub topic: String,
    pub partition: i32,
    pub path: PathBuf,
}

/// Per-partition entry of the data-dir checkpoint files.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointEntry {
    pub topic: String,
    pub partition: i32,
    pub recovery_point: i64,
    pub log_start_offset: i64,
    pub high_watermark: i64,
}

/// The data directory.
pub struct DataDir {
    _private: (),
}

impl DataDir {
    /// Creates the directory if needed, notes whether `.clean-shutdown` was
    /// present and removes it (so a crash from here on is unclean), and reads
    /// `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint` and
    /// `replication-offset-checkpoint` (Kafka's text format: version line, count
    /// line, `topic partition offset` lines).
    pub fn open(path: &Path) -> Result<DataDir, LogError> {
        let _ = path;
        todo!()
    }

    pub fn path(&self) -> &Path {
        todo!()
    }

    pub fn was_clean_shutdown(&self) -> bool {
        todo!()
    }

    /// Every `<topic>-<partition>` directory (not `meta/`, not `*-delete`).
    pub fn partition_dirs(&self) -> Result<Vec<PartitionDir>, LogError> {
        todo!()
    }

    /// The checkpoint read at open, if the partition was in it.
    pub fn checkpoint(&self, topic: &str, partition: i32) -> Option<CheckpointEntry> {
        let _ = (topic, partition);
        todo!()
    }

    /// Directory for a partition: `<data-dir>/<topic>-<partition>`.
    pub fn partition_path(&self, topic: &str, partition: i32) -> PathBuf {
        let _ = (topic, partition);
        todo!()
    }

    /// Atomically rewrites the three checkpoint files (write temp, fsync, rename).
    pub fn write_checkpoints(&self, entries: &[CheckpointEntry]) -> Result<(), LogError> {
        let _ = entries;
        todo!()
    }

    /// Renames the partition directory to `<topic>-<partition>.<uuid>-delete`
    /// and removes it; a crash in between leaves a `-delete` directory that the
    /// next `open` removes.
    pub fn delete_partition(&self, topic: &str, partition: i32) -> Result<(), LogError> {
        let _ = (topic, partition);
        todo!()
    }

    /// Writes `.clean-shutdown` (after every log was flushed and closed).
    pub fn mark_clean_shutdown(&self) -> Result<(), LogError> {
        todo!()
    }
}
