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
//!
//! Code map: `batch` (header codec), `segment` (one `.log` + its indexes,
//! scan/recovery of a segment), `index` (`.index` / `.timeindex` entries),
//! `partition_log` (`Log`: open/recovery, append, flush, truncate),
//! `read` (fetch and timestamp lookups on a published snapshot), `epoch`
//! (leader-epoch-checkpoint), `metadata` (partition.metadata), `checkpoint`
//! (Kafka's text checkpoint format, atomic writes), `datadir` (`DataDir`).
//!
//! Invariants: appends write at the segment's recorded size with one
//! positional write, so a failed or torn write is overwritten by the next
//! append and cut by recovery; readers only ever see byte ranges below the
//! size published in their snapshot.

pub mod batch;
mod checkpoint;
mod datadir;
mod epoch;
mod index;
mod metadata;
mod partition_log;
mod read;
mod segment;

pub use datadir::{parse_partition_dir_name, DataDir};
pub use epoch::EpochEntry;
pub use partition_log::Log;

use std::path::PathBuf;

use bytes::Bytes;

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
