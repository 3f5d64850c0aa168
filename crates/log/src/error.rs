//! `LogError`, the storage engine's one error type, and the helper that
//! names the path of a failed I/O call. A leaf module.

use std::path::{Path, PathBuf};

use crate::batch;

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
    /// A follower's batch that starts below the log end offset.
    #[error(
        "replicated batch at offset {base_offset} is below the log end offset {log_end_offset}"
    )]
    OffsetOutOfOrder {
        base_offset: i64,
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
    /// A read that starts at (or inside) a batch whose header cannot be
    /// parsed: what comes after it in its segment cannot be located.
    #[error("corrupt batch in {path} at position {position}: {reason}")]
    CorruptBatch {
        /// The segment's `.log` file.
        path: PathBuf,
        /// Byte position of the unreadable header in it.
        position: u64,
        /// What is wrong with the header.
        reason: String,
    },
    #[error("log is closed")]
    Closed,
    /// Another process holds the data directory's `.lock`.
    #[error(
        "data directory {path} is in use by another broker (its .lock is held); refusing to start"
    )]
    Locked { path: PathBuf },
}

/// An I/O error on `path`.
pub(crate) fn io_error(path: &Path, source: std::io::Error) -> LogError {
    LogError::Io {
        path: path.to_path_buf(),
        source,
    }
}
