//! One segment: `<base offset, 20 digits>.log` plus its `.index` and
//! `.timeindex`. The log file is read and written positionally through a shared
//! handle, so readers never take the append lock.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::batch::{self, BatchHeader, HEADER_BYTES};
use crate::error::io_error;
use crate::handles::LazyFile;
use crate::index::{
    self, encode_offset_entry, encode_time_entry, IndexFile, OffsetEntry, TimeEntry,
    OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES,
};
use crate::log_files::segment_paths;
use crate::LogError;

/// Indexes and summary of a segment; readers lock it briefly, never across I/O.
#[derive(Debug, Default)]
pub struct SegmentState {
    /// Sparse offset index, mirrored in the `.index` file.
    pub offset_entries: Vec<OffsetEntry>,
    /// Time index, mirrored in the `.timeindex` file.
    pub time_entries: Vec<TimeEntry>,
    /// Largest batch maxTimestamp in the segment, -1 when empty.
    pub max_timestamp: i64,
    /// Base offset of the first batch carrying `max_timestamp` (-1 when empty).
    pub max_timestamp_batch_offset: i64,
    /// Bytes appended since the last offset index entry; decides the next one.
    pub bytes_since_last_entry: u64,
    /// Offset after the last batch (the base offset when empty).
    pub next_offset: i64,
}

/// What a batch contributes to a segment's indexes.
#[derive(Clone, Copy, Debug)]
pub struct BatchPlacement {
    /// Batch base offset.
    pub base_offset: i64,
    /// Batch last offset.
    pub last_offset: i64,
    /// Batch maxTimestamp as stored.
    pub max_timestamp: i64,
    /// Byte position of the batch in the log file.
    pub position: u64,
    /// Batch size in bytes.
    pub bytes: u64,
}

/// One segment.
#[derive(Debug)]
pub struct Segment {
    /// First offset the segment may hold; its file name.
    pub base_offset: i64,
    /// The `.log` path, for errors and deletion.
    pub log_path: PathBuf,
    /// Shared handle: positional reads by readers, positional writes by the
    /// (serialized) appender, sync_data by flush; opened on use and closed
    /// by the segment-file cache when idle (`handles.rs`).
    log_file: LazyFile,
    /// The `.index` file.
    pub offset_index: IndexFile,
    /// The `.timeindex` file.
    pub time_index: IndexFile,
    /// Bytes of whole batches in the log file. Changes only under the append
    /// lock; final once the segment is no longer active.
    pub size: AtomicU64,
    /// In-memory indexes and timestamp summary.
    pub state: RwLock<SegmentState>,
}

impl Segment {
    /// Opens (creating when absent) the three files of the segment at
    /// `base_offset`. Indexes are empty; the caller loads or rebuilds them.
    pub fn open_files(dir: &Path, base_offset: i64) -> Result<Segment, LogError> {
        let [log_path, index_path, time_index_path] = segment_paths(dir, base_offset, "");
        Segment::open_paths(base_offset, log_path, index_path, time_index_path)
    }

    /// `open_files` with explicit paths (a cleaner's `.cleaned` output, a
    /// `.swap` being completed).
    pub fn open_paths(
        base_offset: i64,
        log_path: PathBuf,
        index_path: PathBuf,
        time_index_path: PathBuf,
    ) -> Result<Segment, LogError> {
        let log_file = LazyFile::create_or_open(log_path.clone())?;
        let size = log_file
            .get()?
            .metadata()
            .map_err(|error| io_error(&log_path, error))?
            .len();
        Ok(Segment {
            base_offset,
            log_path,
            log_file,
            offset_index: IndexFile::open(index_path)?,
            time_index: IndexFile::open(time_index_path)?,
            size: AtomicU64::new(size),
            state: RwLock::new(SegmentState {
                max_timestamp: -1,
                max_timestamp_batch_offset: -1,
                next_offset: base_offset,
                ..SegmentState::default()
            }),
        })
    }

    /// Creates a fresh, empty segment (truncating leftovers of the same name).
    pub fn create(dir: &Path, base_offset: i64) -> Result<Segment, LogError> {
        let segment = Segment::open_files(dir, base_offset)?;
        segment.truncate_file(0)?;
        segment.offset_index.rewrite(&[])?;
        segment.time_index.rewrite(&[])?;
        Ok(segment)
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub fn next_offset(&self) -> i64 {
        self.state.read().next_offset
    }

    /// The open `.log` file (reopened if the descriptor cache closed it);
    /// holding it keeps the descriptor open.
    pub fn log_file(&self) -> Result<Arc<File>, LogError> {
        self.log_file.get()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// Reads exactly `buffer.len()` bytes at `position`.
    pub fn read_exact_at(&self, buffer: &mut [u8], position: u64) -> Result<(), LogError> {
        self.log_file
            .get()?
            .read_exact_at(buffer, position)
            .map_err(|error| io_error(&self.log_path, error))
    }

    /// Reads and parses the batch header at `position`, which must leave at
    /// least a header below `end`, and checks the batch fits below `end`.
    pub fn header_at(&self, position: u64, end: u64) -> Result<BatchHeader, LogError> {
        let corrupt = |reason: String| LogError::Corrupt {
            path: self.log_path.clone(),
            position,
            reason,
        };
        if position + HEADER_BYTES as u64 > end {
            return Err(corrupt("truncated batch header".to_string()));
        }
        let mut raw = [0u8; HEADER_BYTES];
        self.read_exact_at(&mut raw, position)?;
        let header = batch::parse_header(&raw).map_err(|error| corrupt(error.to_string()))?;
        if position + header.total_bytes() as u64 > end {
            return Err(corrupt(
                "batch extends past the end of the segment".to_string(),
            ));
        }
        Ok(header)
    }

    /// Whether relative offsets / positions still fit after `placement` and the
    /// indexes have room: false means roll first.
    pub fn can_hold(
        &self,
        last_offset: i64,
        batch_bytes: u64,
        segment_bytes: u64,
        index_bytes: u64,
    ) -> bool {
        let state = self.state.read();
        let size = self.size();
        let fits_size =
            size + batch_bytes <= segment_bytes && size + batch_bytes <= u64::from(u32::MAX);
        let fits_offset = last_offset - self.base_offset <= i64::from(u32::MAX);
        let index_room = (state.offset_entries.len() as u64 + 1) * OFFSET_ENTRY_BYTES
            <= index_bytes
            && (state.time_entries.len() as u64 + 1) * TIME_ENTRY_BYTES <= index_bytes;
        fits_size && fits_offset && index_room
    }

    /// Updates the in-memory indexes for a batch just written (or scanned)
    /// at `placement.position`; returns the entries to append to the files.
    fn index_batch(
        &self,
        state: &mut SegmentState,
        placement: BatchPlacement,
        index_interval_bytes: u64,
    ) -> (Option<OffsetEntry>, Option<TimeEntry>) {
        if placement.max_timestamp > state.max_timestamp {
            state.max_timestamp = placement.max_timestamp;
            state.max_timestamp_batch_offset = placement.base_offset;
        }
        state.next_offset = placement.last_offset + 1;
        let mut new_offset_entry = None;
        let mut new_time_entry = None;
        let due = state.offset_entries.is_empty() && placement.position == 0
            || state.bytes_since_last_entry >= index_interval_bytes;
        // Relative offsets and positions were checked to fit by `can_hold` /
        // by the scan; the conversions cannot fail for placements from them.
        let relative = u32::try_from(placement.base_offset - self.base_offset).ok();
        let position = u32::try_from(placement.position).ok();
        if let (true, Some(relative), Some(position)) = (due, relative, position) {
            let entry = OffsetEntry {
                relative_offset: relative,
                position,
            };
            if state
                .offset_entries
                .last()
                .is_none_or(|last| last.relative_offset < relative)
            {
                state.offset_entries.push(entry);
                new_offset_entry = Some(entry);
            }
            state.bytes_since_last_entry = 0;
            let max_relative =
                u32::try_from(state.max_timestamp_batch_offset - self.base_offset).ok();
            if let Some(max_relative) = max_relative {
                if state.max_timestamp >= 0
                    && state
                        .time_entries
                        .last()
                        .is_none_or(|last| last.timestamp < state.max_timestamp)
                {
                    let entry = TimeEntry {
                        timestamp: state.max_timestamp,
                        relative_offset: max_relative,
                    };
                    state.time_entries.push(entry);
                    new_time_entry = Some(entry);
                }
            }
        }
        state.bytes_since_last_entry += placement.bytes;
        (new_offset_entry, new_time_entry)
    }

    /// Writes a batch at the end of the log file with one positional write and
    /// updates the indexes. Caller holds the append lock.
    pub fn append(
        &self,
        bytes: &[u8],
        placement: BatchPlacement,
        index_interval_bytes: u64,
    ) -> Result<(), LogError> {
        self.append_parts(bytes, &[], placement, index_interval_bytes)
    }

    /// `append` of a batch given as two consecutive parts (a stamped header
    /// copy and the rest in the request's own buffer): two positional writes
    /// instead of a copy. Readers see neither before `size` moves.
    pub fn append_parts(
        &self,
        head: &[u8],
        rest: &[u8],
        placement: BatchPlacement,
        index_interval_bytes: u64,
    ) -> Result<(), LogError> {
        let log_file = self.log_file.get()?;
        log_file
            .write_all_at(head, placement.position)
            .map_err(|error| io_error(&self.log_path, error))?;
        if !rest.is_empty() {
            log_file
                .write_all_at(rest, placement.position + head.len() as u64)
                .map_err(|error| io_error(&self.log_path, error))?;
        }
        let (offset_entry, time_entry) = {
            let mut state = self.state.write();
            let entries = self.index_batch(&mut state, placement, index_interval_bytes);
            let offset_count = state.offset_entries.len() as u64;
            let time_count = state.time_entries.len() as u64;
            (
                entries.0.map(|entry| (entry, offset_count - 1)),
                entries.1.map(|entry| (entry, time_count - 1)),
            )
        };
        if let Some((entry, slot)) = offset_entry {
            self.offset_index
                .write_at(&encode_offset_entry(entry), slot * OFFSET_ENTRY_BYTES)?;
        }
        if let Some((entry, slot)) = time_entry {
            self.time_index
                .write_at(&encode_time_entry(entry), slot * TIME_ENTRY_BYTES)?;
        }
        self.size
            .store(placement.position + placement.bytes, Ordering::Release);
        Ok(())
    }

    fn truncate_file(&self, length: u64) -> Result<(), LogError> {
        self.log_file
            .get()?
            .set_len(length)
            .map_err(|error| io_error(&self.log_path, error))?;
        self.size.store(length, Ordering::Release);
        Ok(())
    }

    /// Scans the segment from the start batch by batch. With `check_crc`, also
    /// verifies every CRC. Truncates the file at the first invalid byte
    /// (logging what was cut), rebuilds both indexes and the summary, and
    /// returns `(epochs seen as (epoch, base offset) in order, bytes cut)`.
    pub fn recover(
        &self,
        index_interval_bytes: u64,
        check_crc: bool,
    ) -> Result<(Vec<(i32, i64)>, u64), LogError> {
        let file_length = self
            .log_file
            .get()?
            .metadata()
            .map_err(|error| io_error(&self.log_path, error))?
            .len();
        let mut state = SegmentState {
            max_timestamp: -1,
            max_timestamp_batch_offset: -1,
            next_offset: self.base_offset,
            ..SegmentState::default()
        };
        let mut epochs = Vec::new();
        let mut position = 0u64;
        let mut buffer = Vec::new();
        let mut invalid_reason = None;
        while position < file_length {
            let header = match self.header_at(position, file_length) {
                Ok(header) => header,
                Err(LogError::Corrupt { reason, .. }) => {
                    invalid_reason = Some(reason);
                    break;
                }
                Err(error) => return Err(error),
            };
            let total = header.total_bytes() as u64;
            if check_crc {
                buffer.resize(header.total_bytes(), 0);
                self.read_exact_at(&mut buffer, position)?;
                if !batch::crc_matches(&header, &buffer) {
                    invalid_reason = Some("CRC mismatch".to_string());
                    break;
                }
            }
            let offsets_valid = header.last_offset_delta >= 0
                && header.base_offset >= state.next_offset
                && header.last_offset() - self.base_offset <= i64::from(u32::MAX)
                && position + total <= u64::from(u32::MAX);
            if !offsets_valid {
                invalid_reason = Some(format!(
                    "offsets {}..={} invalid after {}",
                    header.base_offset,
                    header.last_offset(),
                    state.next_offset
                ));
                break;
            }
            if epochs
                .last()
                .is_none_or(|(epoch, _)| *epoch != header.partition_leader_epoch)
            {
                epochs.push((header.partition_leader_epoch, header.base_offset));
            }
            let placement = BatchPlacement {
                base_offset: header.base_offset,
                last_offset: header.last_offset(),
                max_timestamp: header.max_timestamp,
                position,
                bytes: total,
            };
            self.index_batch(&mut state, placement, index_interval_bytes);
            position += total;
        }
        let cut = file_length - position;
        if cut > 0 {
            tracing::warn!(
                segment = %self.log_path.display(),
                position,
                bytes_cut = cut,
                reason = invalid_reason.as_deref().unwrap_or("unknown"),
                "truncating segment at first invalid byte"
            );
        }
        self.truncate_file(position)?;
        self.write_indexes(&state)?;
        *self.state.write() = state;
        Ok((epochs, cut))
    }

    fn write_indexes(&self, state: &SegmentState) -> Result<(), LogError> {
        let offsets: Vec<u8> = state
            .offset_entries
            .iter()
            .flat_map(|entry| encode_offset_entry(*entry))
            .collect();
        self.offset_index.rewrite(&offsets)?;
        let times: Vec<u8> = state
            .time_entries
            .iter()
            .flat_map(|entry| encode_time_entry(*entry))
            .collect();
        self.time_index.rewrite(&times)
    }

    /// Clean-shutdown open: trusts the log, loads the index files and checks
    /// them; walks the batch headers after the last index entry to learn the
    /// next offset and max timestamp. Returns false when something is
    /// inconsistent (the caller then runs `recover`).
    pub fn load_trusted(&self, index_interval_bytes: u64) -> Result<bool, LogError> {
        let size = self.size();
        let Some(offset_entries) = index::decode_offset_index(&self.offset_index.read_all()?)
        else {
            return Ok(false);
        };
        let Some(time_entries) = index::decode_time_index(&self.time_index.read_all()?) else {
            return Ok(false);
        };
        if size > 0 && offset_entries.first().map(|entry| entry.position) != Some(0) {
            return Ok(false);
        }
        if offset_entries
            .last()
            .is_some_and(|entry| u64::from(entry.position) >= size)
        {
            return Ok(false);
        }
        let mut state = SegmentState {
            max_timestamp: -1,
            max_timestamp_batch_offset: -1,
            next_offset: self.base_offset,
            ..SegmentState::default()
        };
        if let Some(last) = time_entries.last() {
            state.max_timestamp = last.timestamp;
            state.max_timestamp_batch_offset = self.base_offset + i64::from(last.relative_offset);
        }
        let mut position = offset_entries
            .last()
            .map_or(0, |entry| u64::from(entry.position));
        let expected_base = offset_entries.last().map_or(self.base_offset, |entry| {
            self.base_offset + i64::from(entry.relative_offset)
        });
        let mut first = true;
        while position < size {
            let header = match self.header_at(position, size) {
                Ok(header) => header,
                Err(LogError::Corrupt { .. }) => return Ok(false),
                Err(error) => return Err(error),
            };
            if (first && header.base_offset != expected_base)
                || header.last_offset_delta < 0
                || header.base_offset < state.next_offset
            {
                return Ok(false);
            }
            first = false;
            if header.max_timestamp > state.max_timestamp {
                state.max_timestamp = header.max_timestamp;
                state.max_timestamp_batch_offset = header.base_offset;
            }
            state.next_offset = header.last_offset() + 1;
            position += header.total_bytes() as u64;
            state.bytes_since_last_entry += header.total_bytes() as u64;
        }
        if time_entries.last().is_some_and(|entry| {
            self.base_offset + i64::from(entry.relative_offset) >= state.next_offset
        }) {
            return Ok(false);
        }
        let _ = index_interval_bytes;
        state.offset_entries = offset_entries;
        state.time_entries = time_entries;
        *self.state.write() = state;
        Ok(true)
    }

    /// Cuts the segment at `position` (a batch boundary) and rebuilds its
    /// indexes by rescanning what remains.
    pub fn truncate_at(&self, position: u64, index_interval_bytes: u64) -> Result<(), LogError> {
        self.truncate_file(position)?;
        self.recover(index_interval_bytes, false)?;
        Ok(())
    }

    /// fsyncs the log file and both indexes.
    pub fn sync(&self) -> Result<(), LogError> {
        self.sync_log()?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// fsyncs the log file only (its data and the size needed to read it).
    pub fn sync_log(&self) -> Result<(), LogError> {
        self.log_file
            .get()?
            .sync_data()
            .map_err(|error| io_error(&self.log_path, error))
    }

    /// Largest timestamp for time retention: the largest batch maxTimestamp,
    /// or the file's modification time when no batch has a timestamp (Kafka's
    /// `LogSegment.largestTimestamp`).
    pub fn largest_timestamp(&self) -> Result<i64, LogError> {
        let max_timestamp = self.state.read().max_timestamp;
        if max_timestamp >= 0 {
            return Ok(max_timestamp);
        }
        let modified = self
            .log_file
            .get()?
            .metadata()
            .and_then(|metadata| metadata.modified())
            .map_err(|error| io_error(&self.log_path, error))?;
        Ok(modified
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_millis() as i64))
    }

    /// The three current paths: `.log`, `.index`, `.timeindex`.
    pub fn paths(&self) -> [PathBuf; 3] {
        [
            self.log_file.path(),
            self.offset_index.path(),
            self.time_index.path(),
        ]
    }

    /// Records that the three files were renamed to `paths` (`.log`,
    /// `.index`, `.timeindex`), so a reopen finds them.
    pub fn renamed(&self, paths: &[PathBuf; 3]) {
        self.log_file.set_path(paths[0].clone());
        self.offset_index.set_path(paths[1].clone());
        self.time_index.set_path(paths[2].clone());
    }

    /// Closes the index files' descriptors (they are reopened on use): a
    /// closed segment's indexes are in memory.
    pub fn release_indexes(&self) {
        self.offset_index.file.release();
        self.time_index.file.release();
    }

    /// Removes the three files.
    pub fn delete_files(&self) -> Result<(), LogError> {
        for path in &self.paths() {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
                Err(error) => return Err(io_error(path, error)),
            }
        }
        Ok(())
    }
}
