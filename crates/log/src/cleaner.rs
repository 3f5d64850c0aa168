//! Log compaction (`cleanup.policy=compact`), Kafka's `LogCleaner` for one
//! log, run by the broker on a blocking thread.
//!
//! A pass: (1) find the cleanable range — closed segments wholly below the
//! upper bound (the last stable offset: never an open transaction) whose
//! largest timestamp is at least `min.compaction.lag.ms` old (a prefix of the
//! log); (2) decide whether it is due: dirty bytes (from the cleaner
//! checkpoint on) / cleanable bytes >= `min.cleanable.dirty.ratio`, or the
//! first dirty batch is older than `max.compaction.lag.ms`; (3) build key →
//! latest offset over the dirty section, leaving out aborted transactional
//! data; (4) rewrite the cleanable segments from the log start in groups
//! (consecutive segments whose sizes add up to at most `segment.bytes` merge
//! into one), keeping per key only the latest record, dropping aborted
//! transactional data and the markers whose transaction left no data in the
//! pass, and swap each group in; (5) move the cleaner checkpoint to the end of
//! the range. Steps (3) and (4) each walk batches in offset order with a
//! `TxnTracker` fed with the aborted transactions the broker passed in (see
//! `cleaner_txn`). Every byte read and written goes through the caller's
//! `Throttler`.
//!
//! Transactions, Kafka's rules: a data batch of an aborted transaction is
//! removed whole (it keys nothing, so it supersedes nothing); committed
//! transactional data is compacted like any other. An ABORT marker stays
//! while data of its transaction was seen in the pass, which makes it outlive
//! that data by one pass; a COMMIT marker stays while any batch of its
//! transaction was seen. Empty batches do not count as data (Kafka drops them
//! in the next pass; here the last batch of a group stays, and would pin its
//! marker). A marker that may go is also held until its batch's
//! maxTimestamp + `delete.retention.ms` has passed (the tombstone rule). The
//! newest batch of every producer the broker still tracks stays, empty if
//! need be, so that replaying the log keeps the producer's last sequence.
//! Aborted transactions whose marker is gone from a rewritten range are
//! reported back for the broker to forget.
//!
//! Crash safety, Kafka's protocol: a group is written to
//! `<base>.log.cleaned` (+ `.index.cleaned`, `.timeindex.cleaned`) and
//! fsynced; under the append lock the files are renamed to `*.swap`, the
//! originals to `*.deleted`, then the swap files to their final names. The
//! last batch of a group is always written (as an empty batch if every record
//! went; other empty batches are dropped), so a swap file's offset range is exactly its group's. `open`
//! (`loader.rs`) removes `*.cleaned`; it completes a `*.log.swap` by deleting every segment
//! whose base offset lies in the swap's range and renaming the swap into
//! place (its indexes are rebuilt by a scan). Readers switch between
//! snapshots, so they see either the old segments or the new one.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::batch::{self, BatchHeader};
use crate::checkpoint;
use crate::cleaner_txn::{CleanerTxnInput, TxnTracker};
use crate::compact::{self, Filtered, OffsetMap, RetainRules};
use crate::control::ControlType;
use crate::error::io_error;
use crate::log_files::{remove_if_present, segment_paths, CLEANED_SUFFIX, SWAP_SUFFIX};
use crate::segment::{BatchPlacement, Segment};
use crate::throttle::Throttler;
use crate::{CleanResult, Log, LogError};

/// Bound on the offset map: key bytes held. Once a dirty segment takes the map
/// past it, the pass ends with that segment (the rest is cleaned next time).
pub const CLEANER_KEY_BYTES_MAX: usize = 128 << 20;

/// Calls `each(header, batch bytes, is last batch)` for every batch of a
/// closed segment; `each` returns the bytes it wrote. Returns the bytes read.
/// `throttler` counts both.
fn for_each_batch(
    segment: &Segment,
    throttler: &mut Throttler,
    mut each: impl FnMut(&BatchHeader, &[u8], bool) -> Result<u64, LogError>,
) -> Result<u64, LogError> {
    let end = segment.size();
    let mut position = 0;
    let mut buffer = Vec::new();
    while position < end {
        let header = segment.header_at(position, end)?;
        buffer.resize(header.total_bytes(), 0);
        segment.read_exact_at(&mut buffer, position)?;
        position += header.total_bytes() as u64;
        let written = each(&header, &buffer, position >= end)?;
        throttler.observe(header.total_bytes() as u64 + written);
    }
    Ok(end)
}

/// The marker type of a control batch; one the cleaner cannot decode is
/// treated as an unknown type, which is always kept.
fn marker_of(segment: &Segment, header: &BatchHeader, bytes: &[u8]) -> Option<ControlType> {
    compact::control_type(header, bytes).unwrap_or_else(|reason| {
        tracing::warn!(segment = %segment.log_path.display(), base_offset = header.base_offset, reason, "cleaner cannot decode a control batch; it will be kept as is");
        Some(ControlType::Other)
    })
}

impl Log {
    /// One cleaning pass (see the module docs for the algorithm). Does nothing
    /// and returns zeros unless `cleanup_policy_compact` is set and cleaning
    /// is due. Blocking (reads and rewrites segments, and sleeps when
    /// `throttler` says the pass runs ahead of its I/O rate): run it off the
    /// async runtime. Appends and reads proceed meanwhile; each group's swap
    /// takes the append lock for a few renames and two directory fsyncs.
    ///
    /// `upper_bound` is the first offset the pass may not touch: the last
    /// stable offset (the high watermark, or the first offset of the oldest
    /// open transaction if lower). Only closed segments wholly below it are
    /// cleanable, so an open transaction is never cleaned. `transactions`
    /// says which transactional data was aborted and which batches are the
    /// newest of producers still tracked.
    ///
    /// Rules: per key only the record with the latest offset stays; records
    /// without a key stay; a tombstone (null value) stays until its batch's
    /// maxTimestamp + `delete_retention_ms` < `now_ms` (Kafka counts from
    /// when the tombstone's segment was first cleaned; this approximation
    /// removes tombstones no earlier than the record's own time allows).
    /// Transactional data of an aborted transaction is removed whole and
    /// supersedes nothing; committed transactional data is compacted like
    /// any other. A transaction marker goes once no data batch of its
    /// transaction was seen in the pass (an earlier pass removed it, or all
    /// of it was superseded) and it is past the same delete horizon as a
    /// tombstone (Kafka stamps a delete horizon into the batch when it first
    /// finds the marker removable; the marker's timestamp is when it was
    /// written, so this keeps it at least as long after the transaction
    /// ended). Empty batches (left so by this pass or an earlier one) are
    /// dropped, except the last one of a rewritten group and the newest batch
    /// of a tracked producer. Offsets never change: a consumer sees gaps.
    pub fn clean(
        &self,
        now_ms: i64,
        upper_bound: i64,
        transactions: &CleanerTxnInput,
        throttler: &mut Throttler,
    ) -> Result<CleanResult, LogError> {
        let _serial = self.cleaner_lock.lock();
        self.check_open()?;
        let config = self.config();
        let mut result = CleanResult::default();
        let throttled_before = throttler.throttled();
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
            if segment.next_offset() > upper_bound || segment.largest_timestamp()? > lag_horizon {
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
        // The walk starts at the first dirty segment; an aborted transaction
        // begun before it is recognised by its first offset.
        let mut tracker = TxnTracker::new(&transactions.aborted);
        for segment in dirty {
            result.bytes_read += for_each_batch(segment, throttler, |header, bytes, _| {
                if header.is_control() {
                    tracker.on_control_batch(header, marker_of(segment, header, bytes));
                    return Ok(0);
                }
                let aborted = tracker.on_data_batch(header);
                if aborted || header.last_offset() < first_dirty {
                    return Ok(0);
                }
                let added = compact::for_each_key(header, bytes, |key, offset| {
                    if offset >= first_dirty {
                        map.put(key, offset);
                    }
                });
                if let Err(reason) = added {
                    tracing::warn!(segment = %segment.log_path.display(), base_offset = header.base_offset, reason, "cleaner cannot decode a batch; it will be kept as is");
                }
                Ok(0)
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
        // One walk over every rewritten group, from the log start, in order.
        let mut pass = Pass {
            rules: &rules,
            transactions,
            tracker: TxnTracker::new(&transactions.aborted),
            markers_kept: HashSet::new(),
            index_interval_bytes: config.index_interval_bytes,
        };
        for group in group_segments(&rewritten, config.segment_bytes) {
            pass.markers_kept.clear();
            let output = self.write_cleaned(&group, &mut pass, throttler, &mut result)?;
            let input_bytes: u64 = group.iter().map(|segment| segment.size()).sum();
            result.bytes_read += input_bytes;
            let output_bytes = output.size();
            let group_range = group[0].base_offset..group[group.len() - 1].next_offset();
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
                // Aborted transactions whose marker this group no longer
                // holds (removed now or by an earlier pass).
                result
                    .aborted_transactions_removed
                    .extend(transactions.aborted.iter().filter(|txn| {
                        group_range.contains(&txn.last_offset)
                            && !pass.markers_kept.contains(&txn.last_offset)
                    }));
            }
        }
        checkpoint::write_cleaner_offset(&self.dir, end)?;
        self.first_dirty_offset.fetch_max(end, Ordering::AcqRel);
        tracing::info!(
            dir = %self.dir.display(),
            keys = map.len(),
            first_dirty,
            end,
            bytes_read = result.bytes_read,
            bytes_written = result.bytes_written,
            records_removed = result.records_removed,
            markers_removed = result.markers_removed,
            segments_cleaned = result.segments_cleaned,
            throttled_ms = (throttler.throttled() - throttled_before).as_millis() as u64,
            "cleaned log"
        );
        Ok(result)
    }

    /// Writes the cleaned form of `group` to `<base>.*.cleaned`, fsynced.
    fn write_cleaned(
        &self,
        group: &[Arc<Segment>],
        pass: &mut Pass<'_>,
        throttler: &mut Throttler,
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
            for_each_batch(segment, throttler, |header, bytes, last_batch| {
                let keep_empty = (last_segment && last_batch)
                    || pass.transactions.is_last_batch_of_producer(header);
                let Some(written) = pass.decide(segment, header, bytes, keep_empty, result) else {
                    return Ok(0);
                };
                let stored = batch::parse_header(&written)?;
                let placement = BatchPlacement {
                    base_offset: header.base_offset,
                    last_offset: header.last_offset(),
                    max_timestamp: stored.max_timestamp,
                    position: output.size(),
                    bytes: written.len() as u64,
                };
                output.append(&written, placement, pass.index_interval_bytes)?;
                Ok(written.len() as u64)
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
        output.renamed(&final_paths);
        let [log_path, ..] = final_paths;
        output.log_path = log_path;
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

/// The state of the rewriting walk of one pass, carried across its groups.
struct Pass<'a> {
    /// Keys' latest offsets and the tombstone (and marker) horizon.
    rules: &'a RetainRules<'a>,
    /// The partition's aborted transactions and producers' newest batches.
    transactions: &'a CleanerTxnInput,
    /// Transactions under way in the walk.
    tracker: TxnTracker,
    /// Offsets of the markers the current group keeps.
    markers_kept: HashSet<i64>,
    /// `index.interval.bytes` of the output.
    index_interval_bytes: u64,
}

impl Pass<'_> {
    /// What becomes of one batch: the bytes to write, or `None` to drop it.
    /// `keep_empty`: the batch must stay, as an empty batch if nothing of it
    /// is kept.
    fn decide<'b>(
        &mut self,
        segment: &Segment,
        header: &BatchHeader,
        bytes: &'b [u8],
        keep_empty: bool,
        result: &mut CleanResult,
    ) -> Option<Cow<'b, [u8]>> {
        let emptied = || keep_empty.then(|| Cow::Owned(compact::empty_batch(header, bytes)));
        if header.is_control() {
            let marker = marker_of(segment, header, bytes);
            let removable = self.tracker.on_control_batch(header, marker)
                && header.max_timestamp < self.rules.tombstone_horizon_ms;
            if !removable {
                self.markers_kept.insert(header.last_offset());
                return Some(Cow::Borrowed(bytes));
            }
            if header.record_count > 0 {
                result.markers_removed += 1;
            }
            return emptied();
        }
        let aborted = self.tracker.on_data_batch(header);
        if header.record_count == 0 {
            return keep_empty.then_some(Cow::Borrowed(bytes));
        }
        if aborted {
            result.records_removed += u64::try_from(header.record_count).unwrap_or(0);
            return emptied();
        }
        match compact::filter_batch(header, bytes, self.rules) {
            Ok(Filtered::Unchanged) => Some(Cow::Borrowed(bytes)),
            Ok(Filtered::Rewritten(rebuilt, removed)) => {
                result.records_removed += removed;
                Some(Cow::Owned(rebuilt))
            }
            Ok(Filtered::Empty(removed)) => {
                result.records_removed += removed;
                emptied()
            }
            Err(reason) => {
                tracing::warn!(segment = %segment.log_path.display(), base_offset = header.base_offset, reason, "cleaner cannot decode a batch; keeping it as is");
                Some(Cow::Borrowed(bytes))
            }
        }
    }
}
