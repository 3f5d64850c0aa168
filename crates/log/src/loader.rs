//! Opening a partition's log, Kafka's `LogLoader`: settle what interrupted
//! deletions and cleanings left, list the segments, scan those a crash may
//! have torn and truncate at the first invalid byte, and restore the offsets
//! (log start, log end, recovery point, the cleaner checkpoint) that
//! `partition_log.rs` builds the `Log` from.
//!
//! Order matters: leftovers are settled before segments are listed (a
//! completed `*.swap` replaces the segments of its range); orphan indexes
//! are removed before segments are opened; the leader-epoch cache is cut at
//! the log end found by the scan.

use std::path::Path;
use std::sync::Arc;

use crate::checkpoint;
use crate::epoch::LeaderEpochCache;
use crate::error::io_error;
use crate::log_files::{
    remove_if_present, segment_base, segment_paths, CLEANED_SUFFIX, DELETED_SUFFIX, INDEX_SUFFIX,
    LOG_SUFFIX, SWAP_SUFFIX, TEMPORARY_SUFFIX, TIME_INDEX_SUFFIX,
};
use crate::metadata;
use crate::segment::Segment;
use crate::{LogConfig, LogError};

/// Index interval used when rebuilding indexes of a completed swap at open
/// (the log's own setting is not passed down to it; indexes are sparse hints).
const RECOVERY_INDEX_INTERVAL_BYTES: u64 = 4096;

/// What opening found: everything `Log` starts from.
#[derive(Debug)]
pub(crate) struct LoadedLog {
    /// The topic id in `partition.metadata` (written when the file was absent).
    pub topic_id: uuid::Uuid,
    /// Segments in base offset order; the last one is active.
    pub segments: Vec<Arc<Segment>>,
    /// Bytes of whole batches in the active segment.
    pub active_end: u64,
    /// First readable offset.
    pub log_start_offset: i64,
    /// Offset after the last batch that survived recovery.
    pub log_end_offset: i64,
    /// The leader-epoch cache, cut at the log end.
    pub epochs: LeaderEpochCache,
    /// Offset below which everything is known synced (at most the log end).
    pub recovery_point: i64,
    /// The cleaner checkpoint, inside [log start, log end].
    pub first_dirty_offset: i64,
    /// A segment file was created: the directory needs an fsync.
    pub directory_dirty: bool,
}

/// Opens (or creates) the log files in `dir`; see `Log::open_with_start`
/// for what `recovery_point` and `log_start_offset` mean.
pub(crate) fn load(
    dir: &Path,
    config: &LogConfig,
    topic_id: uuid::Uuid,
    recovery_point: Option<i64>,
    log_start_offset: Option<i64>,
) -> Result<LoadedLog, LogError> {
    std::fs::create_dir_all(dir).map_err(|error| io_error(dir, error))?;
    let topic_id = metadata::read_or_create(dir, topic_id)?;
    settle_leftover_files(dir)?;
    let bases = list_segment_bases(dir)?;
    remove_orphan_indexes(dir, &bases)?;
    let mut epochs = LeaderEpochCache::load(dir);
    let mut directory_dirty = false;
    let (mut segments, mut epochs_changed) = if bases.is_empty() {
        directory_dirty = true;
        (vec![Arc::new(Segment::create(dir, 0)?)], false)
    } else {
        let interval = config.index_interval_bytes;
        open_segments(dir, &bases, interval, recovery_point, &mut epochs)?
    };
    // Closed segments' indexes are in memory: their descriptors are
    // closed until a truncation or the cleaner needs the files.
    if let Some((_, closed)) = segments.split_last() {
        closed.iter().for_each(|segment| segment.release_indexes());
    }
    let (mut first_base, mut log_end_offset, mut active_end) =
        match (segments.first(), segments.last()) {
            (Some(first), Some(last)) => (first.base_offset, last.next_offset(), last.size()),
            _ => (0, 0, 0),
        };
    if let Some(stored) = log_start_offset.filter(|stored| *stored > log_end_offset) {
        tracing::warn!(dir = %dir.display(), log_start_offset = stored, log_end_offset, "log start offset checkpoint is past the log end; restarting the log empty there");
        for segment in &segments {
            segment.delete_files()?;
        }
        segments = vec![Arc::new(Segment::create(dir, stored)?)];
        (first_base, log_end_offset, active_end) = (stored, stored, 0);
        directory_dirty = true;
    }
    let log_start_offset = log_start_offset.map_or(first_base, |stored| stored.max(first_base));
    epochs_changed |= epochs.truncate_from(log_end_offset);
    if epochs_changed {
        epochs.persist()?;
    }
    let recovery_point = recovery_point.map_or(log_end_offset, |point| point.min(log_end_offset));
    let first_dirty_offset = checkpoint::read_cleaner_offset(dir)?
        .unwrap_or(log_start_offset)
        .clamp(log_start_offset, log_end_offset);
    Ok(LoadedLog {
        topic_id,
        segments,
        active_end,
        log_start_offset,
        log_end_offset,
        epochs,
        recovery_point,
        first_dirty_offset,
        directory_dirty,
    })
}

/// The base offsets of the `.log` files in `dir`, sorted; removes `*.tmp`
/// files on the way (atomic writes of checkpoints and producer-state
/// snapshots that a crash interrupted).
fn list_segment_bases(dir: &Path) -> Result<Vec<i64>, LogError> {
    let mut bases = Vec::new();
    let listing = std::fs::read_dir(dir).map_err(|error| io_error(dir, error))?;
    for entry in listing {
        let entry = entry.map_err(|error| io_error(dir, error))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(base) = segment_base(&name) {
            bases.push(base);
        } else if name.ends_with(TEMPORARY_SUFFIX) {
            let path = entry.path();
            std::fs::remove_file(&path).map_err(|error| io_error(&path, error))?;
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Opens the segments at `bases` (not empty, sorted). With a recovery point
/// (an unclean stop), every segment that may hold offsets at or above it,
/// and the one ending exactly there, is scanned and cut at its first invalid
/// byte, and the segments after a cut one are deleted; the others (all of
/// them after a clean stop) are trusted unless their indexes look wrong.
/// Returns the segments and whether the scans changed the epoch cache.
fn open_segments(
    dir: &Path,
    bases: &[i64],
    interval: u64,
    recovery_point: Option<i64>,
    epochs: &mut LeaderEpochCache,
) -> Result<(Vec<Arc<Segment>>, bool), LogError> {
    let mut segments: Vec<Arc<Segment>> = Vec::new();
    let mut epochs_changed = false;
    for (index, &base) in bases.iter().enumerate() {
        let segment = Segment::open_files(dir, base)?;
        if let Some(previous) = segments.last() {
            if base < previous.next_offset() {
                return Err(LogError::Corrupt {
                    path: segment.log_path.clone(),
                    position: 0,
                    reason: format!(
                        "segment overlaps the previous one ending at {}",
                        previous.next_offset()
                    ),
                });
            }
        }
        let is_last = index + 1 == bases.len();
        // The one ending at the recovery point is scanned too: its indexes
        // may not have been synced yet (see `Log::flush`).
        let needs_scan = match recovery_point {
            Some(point) if is_last || bases[index + 1] >= point => true,
            _ => !segment.load_trusted(interval)?,
        };
        let mut cut = 0;
        if needs_scan {
            let (seen, bytes_cut) = segment.recover(interval, true)?;
            for (epoch, start_offset) in seen {
                epochs_changed |= epochs.assign(epoch, start_offset);
            }
            cut = bytes_cut;
        }
        segments.push(Arc::new(segment));
        if cut > 0 && !is_last {
            for later in &bases[index + 1..] {
                let dropped = Segment::open_files(dir, *later)?;
                tracing::warn!(segment = %dropped.log_path.display(), bytes_cut = dropped.size(), "dropping segment after a torn one");
                dropped.delete_files()?;
            }
            break;
        }
    }
    Ok((segments, epochs_changed))
}

/// Removes `.index` / `.timeindex` files whose `.log` is gone (a crash while
/// deleting a segment).
fn remove_orphan_indexes(dir: &Path, bases: &[i64]) -> Result<(), LogError> {
    let listing = std::fs::read_dir(dir).map_err(|error| io_error(dir, error))?;
    for entry in listing {
        let entry = entry.map_err(|error| io_error(dir, error))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let stem = name
            .strip_suffix(INDEX_SUFFIX)
            .or_else(|| name.strip_suffix(TIME_INDEX_SUFFIX));
        if let Some(stem) = stem {
            let base = segment_base(&format!("{stem}{LOG_SUFFIX}"));
            if base.is_none_or(|base| bases.binary_search(&base).is_err()) {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(|error| io_error(&path, error))?;
            }
        }
    }
    Ok(())
}

/// Before segments are listed: removes `*.deleted` and `*.cleaned` files,
/// completes `*.log.swap` files, removes stray index swap files (the
/// cleaner's crash-safety protocol, `cleaner.rs`).
fn settle_leftover_files(dir: &Path) -> Result<(), LogError> {
    let mut names = Vec::new();
    let listing = std::fs::read_dir(dir).map_err(|error| io_error(dir, error))?;
    for entry in listing {
        let entry = entry.map_err(|error| io_error(dir, error))?;
        names.push(entry.file_name().to_string_lossy().into_owned());
    }
    for name in &names {
        if name.ends_with(DELETED_SUFFIX) || name.ends_with(CLEANED_SUFFIX) {
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
