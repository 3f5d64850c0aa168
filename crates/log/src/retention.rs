//! Retention and the log start offset: DeleteRecords, time and size
//! retention, and the asynchronous removal of deleted segment files.
//!
//! A segment leaves the log in two steps. Under the append lock it is taken
//! out of the segment list (new readers no longer see it) and its files are
//! renamed to `*.deleted`; `file.delete.delay.ms` later,
//! `delete_expired_files` unlinks them. A reader that took its snapshot
//! before holds the open file handles and finishes its read: renaming and
//! unlinking an open file does not disturb it on Unix.

use std::path::PathBuf;
use std::sync::Arc;

use crate::clock::now_ms;
use crate::error::io_error;
use crate::log_files::DELETED_SUFFIX;
use crate::log_state::{AppendState, PendingDelete};
use crate::segment::Segment;
use crate::{Log, LogError, RetentionResult};

impl Log {
    /// DeleteRecords: moves the log start offset forward to `offset` and
    /// removes the closed segments lying wholly below it (the active segment
    /// stays, even when `offset` is the log end). Returns the new log start
    /// offset (the partition's low watermark). An `offset` at or below the
    /// current start changes nothing; one above `high_watermark` (or negative:
    /// the caller resolves -1 to the high watermark) is `OffsetOutOfRange`.
    /// The broker persists the result with `DataDir::write_checkpoints` and
    /// passes it back to `open_with_start`.
    pub fn delete_records_before(&self, offset: i64, high_watermark: i64) -> Result<i64, LogError> {
        self.check_open()?;
        let file_delete_delay_ms = self.config().file_delete_delay_ms;
        let mut state = self.state.lock();
        if offset < 0 || offset > high_watermark || offset > state.log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset,
                log_start_offset: state.log_start_offset,
                log_end_offset: state.log_end_offset,
            });
        }
        if offset <= state.log_start_offset {
            return Ok(state.log_start_offset);
        }
        state.log_start_offset = offset;
        let segments = state.segments.clone();
        let removable = segments
            .windows(2)
            .take_while(|pair| pair[1].base_offset <= offset)
            .count();
        self.remove_prefix(&mut state, removable, now_ms(), file_delete_delay_ms)?;
        tracing::info!(dir = %self.dir.display(), log_start_offset = state.log_start_offset, segments_deleted = removable, "log start offset moved by DeleteRecords");
        Ok(state.log_start_offset)
    }

    /// The retention check (`log.retention.check.interval.ms`), Kafka's
    /// `UnifiedLog.deleteOldSegments`. Deletes a prefix of closed segments —
    /// never the active one, never one holding offsets >= `high_watermark` —
    /// each of which is:
    /// * wholly below the log start offset (always, whatever the policy);
    /// * with `cleanup_policy_delete` and `retention_ms` >= 0: older than
    ///   `retention_ms` by its largest timestamp (`now_ms - largest > retention_ms`);
    /// * with `cleanup_policy_delete` and `retention_bytes` >= 0: not needed to
    ///   keep the log at `retention_bytes` (deleted while
    ///   `log size - segment size >= retention_bytes`).
    ///
    /// Before that, the active segment is rolled (a new empty active segment
    /// at the log end) when it is not empty and either `segment_ms` has passed
    /// since its first append, or (policy delete) it lies wholly below the high
    /// watermark and is itself past `retention_ms` — so an idle topic's data
    /// still expires, as Kafka's roll-before-delete does.
    ///
    /// Ends with `delete_expired_files(now_ms)`, so a broker calling this
    /// periodically also removes the `*.deleted` files that are due.
    pub fn enforce_retention(
        &self,
        now_ms: i64,
        high_watermark: i64,
    ) -> Result<RetentionResult, LogError> {
        self.check_open()?;
        let config = self.config();
        let mut result = RetentionResult::default();
        {
            let mut state = self.state.lock();
            self.maybe_roll_for_retention(&mut state, now_ms, high_watermark)?;
            let segments = state.segments.clone();
            let total: u64 = segments.iter().map(|segment| segment.size()).sum();
            // Bytes above retention.bytes; shrinks with every deleted segment.
            let mut excess = i128::from(total) - i128::from(config.retention_bytes);
            let mut removable = 0;
            for pair in segments.windows(2) {
                let (segment, next) = (&pair[0], &pair[1]);
                if next.base_offset > high_watermark {
                    break;
                }
                let size = segment.size();
                let below_start = next.base_offset <= state.log_start_offset;
                let expired = config.cleanup_policy_delete
                    && config.retention_ms >= 0
                    && now_ms.saturating_sub(segment.largest_timestamp()?) > config.retention_ms;
                let over_size = config.cleanup_policy_delete
                    && config.retention_bytes >= 0
                    && excess - i128::from(size) >= 0;
                if !(below_start || expired || over_size) {
                    break;
                }
                excess -= i128::from(size);
                removable += 1;
                result.bytes_deleted += size;
            }
            result.segments_deleted = removable;
            if removable > 0 {
                self.remove_prefix(&mut state, removable, now_ms, config.file_delete_delay_ms)?;
                tracing::info!(dir = %self.dir.display(), segments_deleted = removable, bytes_deleted = result.bytes_deleted, log_start_offset = state.log_start_offset, "retention deleted segments");
            }
            result.log_start_offset = state.log_start_offset;
        }
        self.delete_expired_files(now_ms)?;
        Ok(result)
    }

    /// Rolls a non-empty active segment when `segment.ms` has passed since
    /// its first append, or when time retention would delete it.
    fn maybe_roll_for_retention(
        &self,
        state: &mut AppendState,
        now_ms: i64,
        high_watermark: i64,
    ) -> Result<(), LogError> {
        let config = self.config();
        let Some(active) = state.segments.last().cloned() else {
            return Ok(());
        };
        if active.size() == 0 {
            return Ok(());
        }
        let too_old = state
            .active_first_append_ms
            .is_some_and(|first| now_ms.saturating_sub(first) >= config.segment_ms);
        let expired = config.cleanup_policy_delete
            && config.retention_ms >= 0
            && state.log_end_offset <= high_watermark
            && now_ms.saturating_sub(active.largest_timestamp()?) > config.retention_ms;
        if !(too_old || expired) {
            return Ok(());
        }
        let rolled = Arc::new(Segment::create(&self.dir, state.log_end_offset)?);
        let mut segments: Vec<Arc<Segment>> = state.segments.as_ref().clone();
        segments.push(rolled);
        state.segments = Arc::new(segments);
        state.active_first_append_ms = None;
        state.directory_dirty = true;
        tracing::debug!(dir = %self.dir.display(), base_offset = state.log_end_offset, too_old, expired, "rolled segment for retention");
        self.publish(state);
        Ok(())
    }

    /// Takes the first `count` segments out of the list, publishes, and
    /// schedules their files for deletion. Caller holds the append lock and
    /// never passes the active segment.
    fn remove_prefix(
        &self,
        state: &mut AppendState,
        count: usize,
        now_ms: i64,
        file_delete_delay_ms: i64,
    ) -> Result<(), LogError> {
        let segments = state.segments.clone();
        let count = count.min(segments.len().saturating_sub(1));
        state.segments = Arc::new(segments[count..].to_vec());
        self.publish(state);
        if count > 0 {
            state.directory_dirty = true;
            self.retire(&segments[..count], now_ms, file_delete_delay_ms)?;
        }
        Ok(())
    }

    /// Renames the files of segments no longer in the list to `*.deleted` and
    /// schedules their removal. Caller holds the append lock (so a segment
    /// created meanwhile under the same name is never renamed).
    pub(crate) fn retire(
        &self,
        segments: &[Arc<Segment>],
        now_ms: i64,
        file_delete_delay_ms: i64,
    ) -> Result<(), LogError> {
        let mut paths = Vec::new();
        for segment in segments {
            // Readers of an older snapshot may still read the segment: it is
            // reopened (if the descriptor cache closed it) under its new name.
            let current = segment.paths();
            let renamed = current.clone().map(|path| {
                let mut target = path.into_os_string();
                target.push(DELETED_SUFFIX);
                PathBuf::from(target)
            });
            for (path, target) in current.iter().zip(&renamed) {
                match std::fs::rename(path, target) {
                    Ok(()) => paths.push(target.clone()),
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(io_error(path, error)),
                }
            }
            segment.renamed(&renamed);
        }
        self.pending_deletes.lock().push(PendingDelete {
            due_ms: now_ms.saturating_add(file_delete_delay_ms.max(0)),
            paths,
        });
        Ok(())
    }

    /// Unlinks the `*.deleted` files whose `file.delete.delay.ms` has passed
    /// by `now_ms`; returns how many files were removed. The broker calls it
    /// periodically (`enforce_retention` does too); `close` removes them all.
    /// There is no background thread. Files left by a crash are removed by
    /// the next `open`.
    pub fn delete_expired_files(&self, now_ms: i64) -> Result<usize, LogError> {
        let due: Vec<PendingDelete> = {
            let mut pending = self.pending_deletes.lock();
            let (due, later) = std::mem::take(&mut *pending)
                .into_iter()
                .partition(|entry| entry.due_ms <= now_ms);
            *pending = later;
            due
        };
        let mut removed = 0;
        for entry in due {
            for path in entry.paths {
                match std::fs::remove_file(&path) {
                    Ok(()) => removed += 1,
                    Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                    Err(error) => return Err(io_error(&path, error)),
                }
            }
        }
        Ok(removed)
    }
}
