//! Log compaction (`cleanup.policy=compact`), Kafka's `LogCleaner` for one
//! log, run by the broker on a blocking thread.
//!
//! A pass: (1) find the cleanable range — closed segments wholly below the
//! high watermark whose largest timestamp is at least `min.compaction.lag.ms`
//! old (a prefix of the log); (2) decide whether it is due: dirty bytes (from
//! the cleaner checkpoint on) / cleanable bytes >= `min.cleanable.dirty.ratio`,
//! or the first dirty batch is older than `max.compaction.lag.ms`; (3) build
//! key → latest offset over the dirty section; (4) rewrite the cleanable
//! segments in groups (consecutive segments whose sizes add up to at most
//! `segment.bytes` merge into one), keeping per key only the latest record,
//! and swap each group in; (5) move the cleaner checkpoint to the end of the
//! range.
//!
//! Crash safety, Kafka's protocol: a group is written to
//! `<base>.log.cleaned` (+ `.index.cleaned`, `.timeindex.cleaned`) and
//! fsynced; under the append lock the files are renamed to `*.swap`, the
//! originals to `*.deleted`, then the swap files to their final names. The
//! last batch of a group is always written (as an empty batch if every record
//! went), so a swap file's offset range is exactly its group's. `open`
//! removes `*.cleaned`; it completes a `*.log.swap` by deleting every segment
//! whose base offset lies in the swap's range and renaming the swap into
//! place (its indexes are rebuilt by a scan). Readers switch between
//! snapshots, so they see either the old segments or the new one.

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::batch::{self, BatchHeader};
use crate::checkpoint;
use crate::compact::{self, Filtered, OffsetMap, RetainRules};
use crate::index::io_error;
use crate::partition_log::segment_base;
use crate::segment::{segment_paths, BatchPlacement, Segment};
use crate::{CleanResult, Log, LogError};

/// Per-partition file holding the cleaner checkpoint (first dirty offset),
/// Kafka's checkpoint text format with one single-field entry.
pub const CLEANER_OFFSET_CHECKPOINT: &str = "cleaner-offset-checkpoint";

/// Bound on the offset map: key bytes held. Once a dirty segment takes the map
/// past it, the pass ends with that segment (the rest is cleaned next time).
pub const CLEANER_KEY_BYTES_MAX: usize = 128 << 20;

const CLEANED_SUFFIX: &str = ".cleaned";
const SWAP_SUFFIX: &str = ".swap";

/// Index interval used when rebuilding indexes of a completed swap at open
/// (the log's own setting is not known yet; indexes are sparse hints).
const RECOVERY_INDEX_INTERVAL_BYTES: u64 = 4096;

/// The stored cleaner checkpoint, `None` when absent.
pub(crate) fn read_cleaner_checkpoint(dir: &Path) -> Result<Option<i64>, LogError> {
    let path = dir.join(CLEANER_OFFSET_CHECKPOINT);
    match checkpoint::read(&path, 1)? {
        Some(entries) => match entries.first() {
            Some(fields) => Ok(Some(checkpoint::parse_field(&path, &fields[0])?)),
            None => Ok(None),
        },
        None => Ok(None),
    }
}

fn write_cleaner_checkpoint(dir: &Path, offset: i64) -> Result<(), LogError> {
    let content = checkpoint::render(&[offset.to_string()]);
    checkpoint::write_atomically(&dir.join(CLEANER_OFFSET_CHECKPOINT), content.as_bytes())
}

fn remove_if_present(path: &Path) -> Result<(), LogError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(error) => Err(io_error(path, error)),
    }
}

/// At open, before segments are listed: removes `*.deleted` and `*.cleaned`
/// files, completes `*.log.swap` files, removes stray index swap files.
pub(crate) fn settle_leftover_files(dir: &Path) -> Result<(), LogError> {
    let mut names = Vec::new();
    let listing = std::fs::read_dir(dir).map_err(|error| io_error(dir, error))?;
    for entry in listing {
        let entry = entry.map_err(|error| io_error(dir, error))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    for name in &names {
        if name.ends_with(crate::retention::DELETED_SUFFIX) || name.ends_with(CLEANED_SUFFIX) {
            remove_if_present(&dir.join(name))?;
        }
    }
    let swaps: Vec<i64> = names
        .iter()
        .filter_map(|name| segment_base(name.strip_suffix(SWAP_SUFFIX)?))
        .collect();
    for base in swaps {
        complete_swap(dir, base, &names)?;
    }
    for name in &names {
        if name.ends_with(SWAP_SUFFIX) {
            remove_if_present(&dir.join(name))?;
        }
    }
    checkpoint::sync_dir(dir)
}

/// Replaces the segments covered by `<base>.log.swap` with it.
fn complete_swap(dir: &Path, base: i64, names: &[String]) -> Result<(), LogError> {
    let [swap_log, swap_index, swap_time] = segment_paths(dir, base, SWAP_SUFFIX);
    let end = {
        let swap = Segment::open_paths(
            base,
            swap_log.clone(),
            swap_index.clone(),
            swap_time.clone(),
        )?;
        swap.recover(RECOVERY_INDEX_INTERVAL_BYTES, true)?;
        swap.next_offset()
    };
    // Indexes are rebuilt from the log once it is in place.
    remove_if_present(&swap_index)?;
    remove_if_present(&swap_time)?;
    if end <= base {
        tracing::warn!(swap = %swap_log.display(), "empty swap file; keeping the original segments");
        return remove_if_present(&swap_log);
    }
    for name in names {
        let Some(original) = segment_base(name) else {
            continue;
        };
        if (base..end).contains(&original) {
            for path in segment_paths(dir, original, "") {
                remove_if_present(&path)?;
            }
        }
    }
    let [log_path, ..] = segment_paths(dir, base, "");
    std::fs::rename(&swap_log, &log_path).map_err(|error| io_error(&swap_log, error))?;
    tracing::warn!(segment = %log_path.display(), end, "completed a cleaner swap interrupted by a crash");
    Ok(())
}

/// Calls `each(header, batch bytes, is last batch)` for every batch of a
/// closed segment.
fn for_each_batch(
    segment: &Segment,
    mut each: impl FnMut(&BatchHeader, &[u8], bool) -> Result<(), LogError>,
) -> Result<u64, LogError> {
    let end = segment.size();
    let mut position = 0;
    let mut buffer = Vec::new();
    while position < end {
        let header = segment.header_at(position, end)?;
        buffer.resize(header.total_bytes(), 0);
        segment.read_exact_at(&mut buffer, position)?;
        position += header.total_bytes() as u64;
        each(&header, &buffer, position >= end)?;
    }
    Ok(end)
}

/// Whether the cleaner leaves a batch as it is: control batches and
/// transactional batches (no aborted-transaction index yet), empty batches.
fn copied_verbatim(header: &BatchHeader) -> bool {
    header.is_control() || header.is_transactional() || header.record_count == 0
}

impl Log {
    /// One cleaning pass (see the module docs for the algorithm). Does nothing
    /// and returns zeros unless `cleanup_policy_compact` is set and cleaning
    /// is due. Blocking (reads and rewrites segments): run it off the async
    /// runtime. Appends and reads proceed meanwhile; each group's swap takes
    /// the append lock for a few renames and two directory fsyncs.
    ///
    /// Rules: per key only the record with the latest offset stays; records
    /// without a key stay; a tombstone (null value) stays until its batch's
    /// maxTimestamp + `delete_retention_ms` < `now_ms` (Kafka counts from
    /// when the tombstone's segment was first cleaned; this approximation
    /// removes tombstones no earlier than the record's own time allows).
    /// Control batches and transactional batches are copied as they are and
    /// their records do not supersede others (until aborted transactions are
    /// indexed). Batches left empty are dropped, except the last one of a
    /// rewritten group. Offsets never change: a consumer sees gaps.
    pub fn clean(&self, now_ms: i64, high_watermark: i64) -> Result<CleanResult, LogError> {
        let _serial = self.cleaner_lock.lock();
        self.check_open()?;
        let config = self.config();
        let mut result = CleanResult::default();
        if !config.cleanup_policy_compact {
            return Ok(result);
        }
        let (segments, log_start_offset, generation) = {
            let state = self.state.lock();
            let generation = self.truncation_generation.load(Ordering::Acquire);
            (state.segments.clone(), state.log_start_offset, generation)
        };
        let closed = &segments[..segments.len().saturating_sub(1)];
        let lag_horizon = now_ms.saturating_sub(config.min_compaction_lag_ms.max(0));
        let mut cleanable = 0;
        for segment in closed {
            if segment.next_offset() > high_watermark || segment.largest_timestamp()? > lag_horizon
            {
                break;
            }
            cleanable += 1;
        }
        let cleanable = &closed[..cleanable];
        let Some(range_end) = cleanable.last().map(|segment| segment.next_offset()) else {
            return Ok(result);
        };
        let first_dirty = self
            .first_dirty_offset
            .load(Ordering::Acquire)
            .max(log_start_offset);
        if first_dirty >= range_end {
            return Ok(result);
        }
        let dirty_start = cleanable.partition_point(|segment| segment.next_offset() <= first_dirty);
        let dirty = &cleanable[dirty_start..];
        let dirty_bytes: u64 = dirty.iter().map(|segment| segment.size()).sum();
        let total_bytes: u64 = cleanable.iter().map(|segment| segment.size()).sum();
        let ratio = if total_bytes == 0 {
            0.0
        } else {
            dirty_bytes as f64 / total_bytes as f64
        };
        let forced = match dirty.first() {
            Some(segment) if segment.size() > 0 => {
                let first = segment.header_at(0, segment.size())?;
                now_ms.saturating_sub(first.max_timestamp) > config.max_compaction_lag_ms
            }
            _ => false,
        };
        if ratio < config.min_cleanable_dirty_ratio && !forced {
            return Ok(result);
        }
        let mut map = OffsetMap::default();
        let mut end = range_end;
        for segment in dirty {
            result.bytes_read += for_each_batch(segment, |header, bytes, _| {
                if copied_verbatim(header) || header.last_offset() < first_dirty {
                    return Ok(());
                }
                let added = compact::for_each_key(header, bytes, |key, offset| {
                    if offset >= first_dirty {
                        map.put(key, offset);
                    }
                });
                if let Err(reason) = added {
                    tracing::warn!(segment = %segment.log_path.display(), base_offset = header.base_offset, reason, "cleaner cannot decode a batch; it will be kept as is");
                }
                Ok(())
            })?;
            if map.key_bytes > CLEANER_KEY_BYTES_MAX {
                end = segment.next_offset();
                break;
            }
        }
        let rules = RetainRules {
            map: &map,
            tombstone_horizon_ms: now_ms.saturating_sub(config.delete_retention_ms.max(0)),
        };
        let rewritten: Vec<Arc<Segment>> = cleanable
            .iter()
            .take_while(|segment| segment.next_offset() <= end)
            .cloned()
            .collect();
        for group in group_segments(&rewritten, config.segment_bytes) {
            let output =
                self.write_cleaned(&group, &rules, config.index_interval_bytes, &mut result)?;
            let input_bytes: u64 = group.iter().map(|segment| segment.size()).sum();
            result.bytes_read += input_bytes;
            let output_bytes = output.size();
            let swapped = self.swap_in(
                &group,
                output,
                generation,
                now_ms,
                config.file_delete_delay_ms,
            )?;
            if swapped {
                result.segments_cleaned += group.len();
                result.bytes_written += output_bytes;
            }
        }
        write_cleaner_checkpoint(&self.dir, end)?;
        self.first_dirty_offset.fetch_max(end, Ordering::AcqRel);
        tracing::info!(
            dir = %self.dir.display(),
            keys = map.len(),
            first_dirty,
            end,
            bytes_read = result.bytes_read,
            bytes_written = result.bytes_written,
            records_removed = result.records_removed,
            segments_cleaned = result.segments_cleaned,
            "cleaned log"
        );
        Ok(result)
    }

    /// Writes the cleaned form of `group` to `<base>.*.cleaned`, fsynced.
    fn write_cleaned(
        &self,
        group: &[Arc<Segment>],
        rules: &RetainRules<'_>,
        index_interval_bytes: u64,
        result: &mut CleanResult,
    ) -> Result<Segment, LogError> {
        let base = group[0].base_offset;
        let [log_path, index_path, time_path] = segment_paths(&self.dir, base, CLEANED_SUFFIX);
        for path in [&log_path, &index_path, &time_path] {
            remove_if_present(path)?;
        }
        let output = Segment::open_paths(base, log_path, index_path, time_path)?;
        for (index, segment) in group.iter().enumerate() {
            let last_segment = index + 1 == group.len();
            for_each_batch(segment, |header, bytes, last_batch| {
                let written: Option<Cow<'_, [u8]>> = if copied_verbatim(header) {
                    Some(Cow::Borrowed(bytes))
                } else {
                    match compact::filter_batch(header, bytes, rules) {
                        Ok(Filtered::Unchanged) => Some(Cow::Borrowed(bytes)),
                        Ok(Filtered::Rewritten(rebuilt, removed)) => {
                            result.records_removed += removed;
                            Some(Cow::Owned(rebuilt))
                        }
                        Ok(Filtered::Empty(removed)) => {
                            result.records_removed += removed;
                            (last_segment && last_batch)
                                .then(|| Cow::Owned(compact::empty_batch(header, bytes)))
                        }
                        Err(reason) => {
                            tracing::warn!(segment = %segment.log_path.display(), base_offset = header.base_offset, reason, "cleaner cannot decode a batch; keeping it as is");
                            Some(Cow::Borrowed(bytes))
                        }
                    }
                };
                let Some(written) = written else {
                    return Ok(());
                };
                let stored = batch::parse_header(&written)?;
                let placement = BatchPlacement {
                    base_offset: header.base_offset,
                    last_offset: header.last_offset(),
                    max_timestamp: stored.max_timestamp,
                    position: output.size(),
                    bytes: written.len() as u64,
                };
                output.append(&written, placement, index_interval_bytes)
            })?;
        }
        output.sync()?;
        Ok(output)
    }

    /// Swaps a cleaned group in (see the module docs). Returns false, and
    /// removes the cleaned files, when the group is no longer in the log
    /// (retention or DeleteRecords removed some of it meanwhile) or the log
    /// was truncated since the pass began (`generation`: a truncation may cut
    /// a segment in place).
    fn swap_in(
        &self,
        group: &[Arc<Segment>],
        mut output: Segment,
        generation: u64,
        now_ms: i64,
        file_delete_delay_ms: i64,
    ) -> Result<bool, LogError> {
        let base = group[0].base_offset;
        let cleaned = segment_paths(&self.dir, base, CLEANED_SUFFIX);
        let swap = segment_paths(&self.dir, base, SWAP_SUFFIX);
        let final_paths = segment_paths(&self.dir, base, "");
        let mut state = self.state.lock();
        let current = state.segments.clone();
        let start = current
            .iter()
            .position(|segment| Arc::ptr_eq(segment, &group[0]));
        let truncated = self.truncation_generation.load(Ordering::Acquire) != generation;
        let still_there = !truncated
            && start.is_some_and(|start| {
                current.len() > start + group.len()
                    && group
                        .iter()
                        .zip(&current[start..])
                        .all(|(wanted, present)| Arc::ptr_eq(wanted, present))
            });
        let Some(start) = start.filter(|_| still_there) else {
            drop(state);
            for path in &cleaned {
                remove_if_present(path)?;
            }
            tracing::info!(dir = %self.dir.display(), base, "cleaned group no longer in the log; discarded");
            return Ok(false);
        };
        for (from, to) in cleaned.iter().zip(&swap) {
            std::fs::rename(from, to).map_err(|error| io_error(from, error))?;
        }
        checkpoint::sync_dir(&self.dir)?;
        self.retire(group, now_ms, file_delete_delay_ms)?;
        // Indexes first, the log last: an interrupted rename leaves
        // `<base>.log.swap`, which `open` completes.
        for index in [1, 2, 0] {
            std::fs::rename(&swap[index], &final_paths[index])
                .map_err(|error| io_error(&swap[index], error))?;
        }
        checkpoint::sync_dir(&self.dir)?;
        let [log_path, index_path, time_path] = final_paths;
        output.log_path = log_path;
        output.offset_index.path = index_path;
        output.time_index.path = time_path;
        let mut segments: Vec<Arc<Segment>> = current[..start].to_vec();
        segments.push(Arc::new(output));
        segments.extend_from_slice(&current[start + group.len()..]);
        state.segments = Arc::new(segments);
        self.publish(&mut state);
        Ok(true)
    }
}

/// Consecutive non-empty segments whose sizes add up to at most
/// `segment_bytes` (and whose offsets fit a segment's u32 relative offsets)
/// form one group; empty segments are left alone.
fn group_segments(segments: &[Arc<Segment>], segment_bytes: u64) -> Vec<Vec<Arc<Segment>>> {
    let limit = segment_bytes.min(u64::from(u32::MAX));
    let mut groups: Vec<Vec<Arc<Segment>>> = Vec::new();
    let mut current: Vec<Arc<Segment>> = Vec::new();
    let mut current_bytes = 0u64;
    for segment in segments {
        let size = segment.size();
        if size == 0 {
            groups.extend((!current.is_empty()).then(|| std::mem::take(&mut current)));
            current_bytes = 0;
            continue;
        }
        let fits = current.first().is_some_and(|first| {
            current_bytes + size <= limit
                && segment.next_offset() - first.base_offset <= i64::from(u32::MAX)
        });
        if !fits && !current.is_empty() {
            groups.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += size;
        current.push(segment.clone());
    }
    groups.extend((!current.is_empty()).then_some(current));
    groups
}
