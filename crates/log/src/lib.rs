//! sluice-log: the storage engine.
//!
//! CONTRACT (the broker codes against exactly this public API; keep it, extend it,
//! do not rename it without updating crates/broker):
//!
//! * `batch` — RecordBatch v2 header parsing / validation / in-place rewrite.
//! * `validate` — the records inside a client batch (Kafka's `LogValidator`):
//!   `validate_records(bytes, &header, &RecordsCheck)` after `batch::validate`.
//! * `Log` — one partition's log in its own directory (`<topic>-<partition>/`).
//!   `Log: Send + Sync`; every method takes `&self`. Appends are serialized
//!   internally; reads do not block appends (positional reads on shared file
//!   handles of a snapshot of the segment list).
//! * `DataDir` — the data directory: partition directory discovery, the three
//!   data-dir-level checkpoint files, `.clean-shutdown`.
//!
//! Lifecycle API (retention, DeleteRecords, compaction; issue 6):
//!
//! * `Log::open_with_start(dir, config, topic_id, recovery_point,
//!   log_start_offset: Option<i64>) -> Result<Log, LogError>` — `open` that
//!   restores the log start offset from `DataDir::checkpoint(..).log_start_offset`
//!   (`open` = `open_with_start(.., None)`).
//! * `Log::config(&self) -> LogConfig`, `Log::set_config(&self, LogConfig)` —
//!   dynamic config: segment limits apply at the next append, retention and
//!   cleaning settings at the next `enforce_retention` / `clean`.
//! * `Log::delete_records_before(&self, offset: i64, high_watermark: i64)
//!   -> Result<i64, LogError>` — DeleteRecords; returns the new log start
//!   offset; `OffsetOutOfRange` above the high watermark (resolve -1 first).
//! * `Log::enforce_retention(&self, now_ms: i64, high_watermark: i64)
//!   -> Result<RetentionResult, LogError>` — the periodic retention check;
//!   also rolls an idle active segment and calls `delete_expired_files`.
//! * `Log::delete_expired_files(&self, now_ms: i64) -> Result<usize, LogError>`
//!   — unlinks `*.deleted` files older than `file_delete_delay_ms` (no
//!   background thread; `enforce_retention` and `close` call it).
//! * `Log::clean(&self, now_ms: i64, upper_bound: i64, transactions:
//!   &CleanerTxnInput, throttler: &mut Throttler) -> Result<CleanResult,
//!   LogError>` — one compaction pass, blocking; a no-op unless
//!   `cleanup_policy_compact` and the dirty ratio / max lag say so.
//!   `upper_bound` is the last stable offset (min of the high watermark and
//!   the first offset of the oldest open transaction); `transactions` carries
//!   the producer state's aborted transactions and each tracked producer's
//!   newest batch; `throttler` paces the pass's I/O
//!   (`log.cleaner.io.max.bytes.per.second`). The caller forgets
//!   `CleanResult::aborted_transactions_removed`.
//! * `RetentionResult`, `CleanResult`, `CLEANER_OFFSET_CHECKPOINT`,
//!   `CLEANER_KEY_BYTES_MAX`, `AbortedTransaction`, `CleanerTxnInput`, `Throttler`.
//!
//! Producer state (issue 11: it belongs to the storage engine):
//!
//! * `producer_state` — `ProducerStateManager`, the pure producer state of
//!   one partition (sequences, open and aborted transactions), and
//!   `producer_state::persistence::{write, load}`, its snapshot file and the
//!   replay of the log at open. `AbortedTransaction` is the one
//!   aborted-transaction type: fetch responses, the cleaner and the producer
//!   state all use it.
//! * `control` — the control-record codec (marker key and value).
//!
//! After `delete_records_before` or a retention pass that moved the start
//! offset, the broker writes it with `DataDir::write_checkpoints`.
//!
//! sluice-log knows nothing of sockets or of Kafka request types.
//!
//! Code map: `batch` (header codec and the header's field offsets),
//! `validate` (records walk of a produced batch, streaming decompression
//! with a bound), `segment` (one `.log` + its indexes, scan/recovery of a
//! segment), `index` (`.index` / `.timeindex` entries), `partition_log`
//! (`Log`: append, flush, truncate), `loader` (open and recovery: leftover
//! files, segment scan, restored offsets), `log_state` (the state the `Log`
//! files share), `log_files` (segment file names and suffixes), `clock`,
//! `error` (`LogError`), `retention` (log start offset, retention,
//! `*.deleted` files), `cleaner` (compaction passes, `.cleaned`/`.swap`
//! protocol), `cleaner_txn` (aborted and committed transactions during a
//! pass), `throttle` (the cleaner's I/O rate), `compact` (record-level
//! filtering and re-encoding of one batch), `control` (the control-record
//! codec), `producer_state` (idempotence and transactions per partition,
//! its snapshot and replay), `read` (fetch and timestamp lookups on a
//! published snapshot), `epoch` (leader-epoch-checkpoint), `metadata`
//! (partition.metadata), `checkpoint` (Kafka's text checkpoint format,
//! atomic writes, the cleaner checkpoint), `datadir` (`DataDir`). No module
//! imports one that imports it back.
//!
//! Invariants: appends write at the segment's recorded size with one
//! positional write, so a failed or torn write is overwritten by the next
//! append and cut by recovery; readers only ever see byte ranges below the
//! size published in their snapshot.

pub mod batch;
mod checkpoint;
mod cleaner;
mod cleaner_txn;
mod clock;
mod compact;
pub mod control;
mod datadir;
mod epoch;
mod error;
mod handles;
mod index;
mod loader;
mod log_files;
mod log_state;
mod metadata;
mod partition_log;
pub mod producer_state;
mod read;
mod retention;
mod segment;
mod throttle;
pub mod validate;

pub use checkpoint::CLEANER_OFFSET_CHECKPOINT;
pub use cleaner::CLEANER_KEY_BYTES_MAX;
pub use cleaner_txn::CleanerTxnInput;
pub use datadir::{parse_partition_dir_name, DataDir, MetaProperties};
pub use epoch::EpochEntry;
pub use error::LogError;
pub use handles::{open_files, open_files_max, set_open_files_max};
pub use partition_log::Log;
pub use producer_state::{AbortedTransaction, ProducerStateManager};
pub use read::{FileRange, FileRecords};
pub use throttle::Throttler;

use std::path::PathBuf;

use bytes::Bytes;

/// Per-log configuration, Kafka's topic config names in comments.
///
/// Changed on a running log with `Log::set_config`: segment limits apply at
/// the next append (roll), retention and cleaning settings at the next
/// `enforce_retention` / `clean` call.
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
    /// `retention.ms` (default 7 days; -1 = unlimited): closed segments whose
    /// largest timestamp is older are deleted (with `cleanup_policy_delete`).
    pub retention_ms: i64,
    /// `retention.bytes` (default -1 = unlimited): oldest closed segments are
    /// deleted while the log stays at or above this size without them.
    pub retention_bytes: i64,
    /// `cleanup.policy` contains `delete` (default true): time and size retention apply.
    pub cleanup_policy_delete: bool,
    /// `cleanup.policy` contains `compact` (default false): the broker runs `Log::clean`.
    pub cleanup_policy_compact: bool,
    /// `delete.retention.ms` (default 1 day): how long a tombstone survives
    /// cleaning, counted from its batch's maxTimestamp.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms` (default 0): a segment whose largest timestamp is
    /// younger than this is not cleaned yet.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms` (default i64::MAX): cleaning runs regardless of
    /// the dirty ratio once the first dirty batch is older than this.
    pub max_compaction_lag_ms: i64,
    /// `min.cleanable.dirty.ratio` (default 0.5): cleaning runs when dirty bytes
    /// / cleanable bytes reaches it.
    pub min_cleanable_dirty_ratio: f64,
    /// `file.delete.delay.ms` (default 60 s): how long deleted segment files stay
    /// on disk as `*.deleted` before `Log::delete_expired_files` removes them.
    pub file_delete_delay_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            cleanup_policy_delete: true,
            cleanup_policy_compact: false,
            delete_retention_ms: 24 * 3600 * 1000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            file_delete_delay_ms: 60_000,
        }
    }
}

/// What `Log::enforce_retention` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionResult {
    /// Segments removed from the log (their files renamed to `*.deleted`).
    pub segments_deleted: usize,
    /// Bytes of `.log` data in those segments.
    pub bytes_deleted: u64,
    /// Log start offset after the call (checkpoint it when it moved).
    pub log_start_offset: i64,
}

/// What `Log::clean` did. All zero (and empty) when cleaning was not due.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CleanResult {
    /// Bytes of `.log` data read: the dirty section (offset map) plus every
    /// segment rewritten.
    pub bytes_read: u64,
    /// Bytes of `.log` data written to the cleaned segments.
    pub bytes_written: u64,
    /// Records dropped: superseded by a later record with the same key,
    /// tombstones past `delete_retention_ms`, or data of aborted transactions.
    pub records_removed: u64,
    /// Transaction markers (control batches) removed.
    pub markers_removed: u64,
    /// Original segments replaced by cleaned ones (several small segments may
    /// be merged into one).
    pub segments_cleaned: usize,
    /// Aborted transactions (of `CleanerTxnInput::aborted`) whose ABORT marker
    /// is no longer in the log: removed by this pass, or found missing in a
    /// rewritten range. Their data went before their marker, so the broker
    /// forgets them; a read_committed consumer given an aborted transaction
    /// without its marker would skip the producer's later transactions too.
    pub aborted_transactions_removed: Vec<AbortedTransaction>,
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

/// One partition directory found in the data dir.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionDir {
    /// Topic name, from the directory name.
    pub topic: String,
    /// Partition index, from the directory name.
    pub partition: i32,
    /// The directory.
    pub path: PathBuf,
}

impl PartitionDir {
    /// The topic id in the directory's `partition.metadata`; `None` when the
    /// file is missing or unreadable (such a directory is stray).
    pub fn topic_id(&self) -> Option<uuid::Uuid> {
        metadata::read(&self.path)
    }
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
