//! The state of one `Log` that its parts share: the view readers get
//! (`Snapshot`, published by the append path and read by `read.rs`), the
//! state changed under the append lock (`AppendState`, also by retention and
//! the cleaner), and deleted files waiting for their delay (`PendingDelete`).
//! Declared here, below every file that implements `Log`, so none of them
//! imports another for these types.

use std::path::PathBuf;
use std::sync::Arc;

use crate::epoch::LeaderEpochCache;
use crate::segment::Segment;

/// What readers see: a consistent view published after each append.
#[derive(Debug)]
pub(crate) struct Snapshot {
    /// Segments in base offset order; the last one is active.
    pub segments: Arc<Vec<Arc<Segment>>>,
    /// Bytes of whole batches in the active segment at publication time.
    pub active_end: u64,
    /// First offset readable.
    pub log_start_offset: i64,
    /// Offset after the last appended batch.
    pub log_end_offset: i64,
}

/// State changed only under the append lock.
#[derive(Debug)]
pub(crate) struct AppendState {
    /// Segments in base offset order; replaced (copy on write) on roll,
    /// truncation, retention and cleaning.
    pub segments: Arc<Vec<Arc<Segment>>>,
    /// Next offset to assign.
    pub log_end_offset: i64,
    /// First readable offset: at least the first segment's base offset, more
    /// after DeleteRecords (it may lie inside the first segment).
    pub log_start_offset: i64,
    /// Leader epochs, persisted when an append brings a newer one.
    pub epochs: LeaderEpochCache,
    /// Wall-clock time of the first append to the active segment (`segment.ms`).
    /// `None` until the first append after it was created or the log opened.
    pub active_first_append_ms: Option<i64>,
    /// A segment file was created since the last flush: the directory needs an fsync.
    pub directory_dirty: bool,
}

/// Files of segments removed from the log, waiting for `file.delete.delay.ms`.
#[derive(Debug)]
pub(crate) struct PendingDelete {
    /// Wall-clock time (ms) from which the files may be removed.
    pub due_ms: i64,
    /// The `*.deleted` paths.
    pub paths: Vec<PathBuf>,
}
