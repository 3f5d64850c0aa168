//! The read side of `Log`: fetch, ListOffsets by timestamp. Everything here
//! works on a published `Snapshot` with positional reads, never under the
//! append lock.
//!
//! A batch header that does not parse (a corrupt length field, say, in a
//! closed segment that a clean restart trusted) ends a fetch: the intact
//! batches before it are returned, and a fetch that starts at it is
//! `LogError::CorruptBatch` (the client is told, rather than retrying a
//! storage error in silence). Each corrupt position is logged once.

use std::collections::HashSet;
use std::fs::File;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::RecordBatchDecoder;
use parking_lot::Mutex;

use crate::batch::BatchHeader;
use crate::error::io_error;
use crate::index;
use crate::log_state::Snapshot;
use crate::segment::Segment;
use crate::{Log, LogError, ReadResult};

/// Bytes of one segment file: `len` bytes at `position` of the open `file`.
#[derive(Clone, Debug)]
pub struct FileRange {
    pub file: Arc<File>,
    /// The file's path, for errors.
    pub path: PathBuf,
    pub position: u64,
    pub len: usize,
}

impl FileRange {
    /// The range's bytes, read from the file.
    pub fn read_to_bytes(&self) -> Result<Bytes, LogError> {
        let mut buffer = BytesMut::zeroed(self.len);
        self.file
            .read_exact_at(&mut buffer, self.position)
            .map_err(|error| io_error(&self.path, error))?;
        Ok(buffer.freeze())
    }
}

/// Whole batches as ranges of segment files, in offset order
/// ([`Log::read_file_ranges`]).
#[derive(Clone, Debug, Default)]
pub struct FileRecords {
    pub ranges: Vec<FileRange>,
    len: usize,
}

impl FileRecords {
    pub fn new(ranges: Vec<FileRange>) -> FileRecords {
        let len = ranges.iter().map(|r| r.len).sum();
        FileRecords { ranges, len }
    }

    /// Bytes in all the ranges.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes, read into one buffer (what `Log::read` returns).
    pub fn read_to_bytes(&self) -> Result<Bytes, LogError> {
        match self.ranges.as_slice() {
            [] => Ok(Bytes::new()),
            [one] => one.read_to_bytes(),
            many => {
                let mut joined = BytesMut::zeroed(self.len);
                let mut at = 0;
                for range in many {
                    range
                        .file
                        .read_exact_at(&mut joined[at..at + range.len], range.position)
                        .map_err(|error| io_error(&range.path, error))?;
                    at += range.len;
                }
                Ok(joined.freeze())
            }
        }
    }
}

/// Corrupt positions logged so far, so that a consumer retrying at one does
/// not log it on every fetch.
#[derive(Debug, Default)]
pub(crate) struct CorruptionReports {
    /// (segment `.log` path, byte position) already logged; cleared when
    /// `CORRUPTION_REPORTS_MAX` is reached, which only repeats a report.
    reported: Mutex<HashSet<(PathBuf, u64)>>,
}

/// Bound on the remembered corrupt positions of one log.
const CORRUPTION_REPORTS_MAX: usize = 64;

impl CorruptionReports {
    /// Logs a corrupt batch header once per segment and position.
    fn report(&self, path: &Path, position: u64, reason: &str) {
        let mut reported = self.reported.lock();
        if reported.contains(&(path.to_path_buf(), position)) {
            return;
        }
        if reported.len() >= CORRUPTION_REPORTS_MAX {
            reported.clear();
        }
        reported.insert((path.to_path_buf(), position));
        tracing::error!(
            segment = %path.display(),
            position,
            reason,
            "corrupt batch header: fetches stop before it and a fetch at it answers CORRUPT_MESSAGE"
        );
    }
}

/// Walks batch headers of `segment` (below `end`) from the sparse index floor
/// to the batch containing `offset` (the first batch whose last offset is >=
/// `offset`). `None` when no batch below `end` reaches `offset`.
pub(crate) fn locate(
    segment: &Segment,
    offset: i64,
    end: u64,
) -> Result<Option<(u64, BatchHeader)>, LogError> {
    let mut position = if offset > segment.base_offset {
        let relative = u32::try_from(offset - segment.base_offset).unwrap_or(u32::MAX);
        let state = segment.state.read();
        index::floor_position(&state.offset_entries, relative, end)
    } else {
        0
    };
    while position < end {
        let header = segment.header_at(position, end)?;
        if header.last_offset() >= offset {
            return Ok(Some((position, header)));
        }
        position += header.total_bytes() as u64;
    }
    Ok(None)
}

/// Readable end of segment `index` in `snapshot`.
fn segment_end(snapshot: &Snapshot, index: usize) -> u64 {
    if index + 1 == snapshot.segments.len() {
        snapshot.active_end
    } else {
        snapshot.segments[index].size()
    }
}

/// Reads one whole batch at `position`.
fn read_batch(segment: &Segment, position: u64, header: &BatchHeader) -> Result<Bytes, LogError> {
    let mut buffer = vec![0u8; header.total_bytes()];
    segment.read_exact_at(&mut buffer, position)?;
    Ok(Bytes::from(buffer))
}

/// Decodes a batch's records as `(offset, timestamp)`, applying
/// LogAppendTime (every record carries the batch maxTimestamp).
fn record_timestamps(
    segment: &Segment,
    position: u64,
    header: &BatchHeader,
) -> Result<Vec<(i64, i64)>, LogError> {
    let mut bytes = read_batch(segment, position, header)?;
    let decoded = RecordBatchDecoder::decode(&mut bytes).map_err(|error| LogError::Corrupt {
        path: segment.log_path.clone(),
        position,
        reason: format!("cannot decode records: {error}"),
    })?;
    Ok(decoded
        .records
        .iter()
        .map(|record| {
            let timestamp = if header.is_log_append_time() {
                header.max_timestamp
            } else {
                record.timestamp
            };
            (record.offset, timestamp)
        })
        .collect())
}

impl Log {
    /// A batch header that does not parse (`LogError::Corrupt`) is reported
    /// once and becomes `Ok(LogError::CorruptBatch)`; other errors stay `Err`.
    fn corrupt_header(&self, error: LogError) -> Result<LogError, LogError> {
        let LogError::Corrupt {
            path,
            position,
            reason,
        } = error
        else {
            return Err(error);
        };
        self.corruption_reports.report(&path, position, &reason);
        Ok(LogError::CorruptBatch {
            path,
            position,
            reason,
        })
    }

    fn current_snapshot(&self) -> Result<Arc<Snapshot>, LogError> {
        self.check_open()?;
        Ok(self.snapshot.read().clone())
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
        let ranges = self.read_file_ranges(start_offset, max_offset, max_bytes, min_one_batch)?;
        Ok(ReadResult {
            records: ranges.read_to_bytes()?,
        })
    }

    /// [`Self::read`] without reading: where the batches are in the segment
    /// files, each range with the segment's open file, so that they can go
    /// from the page cache to a socket without a copy in user space
    /// (`sendfile`). The ranges stay valid for a reader below the high
    /// watermark: nothing rewrites committed bytes in place (retention
    /// deletes whole segments, the cleaner writes new files, and a held file
    /// keeps its inode); only a follower's truncation rewrites a log's tail,
    /// above the high watermark.
    pub fn read_file_ranges(
        &self,
        start_offset: i64,
        max_offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<FileRecords, LogError> {
        let snapshot = self.current_snapshot()?;
        if start_offset < snapshot.log_start_offset || start_offset > snapshot.log_end_offset {
            return Err(LogError::OffsetOutOfRange {
                offset: start_offset,
                log_start_offset: snapshot.log_start_offset,
                log_end_offset: snapshot.log_end_offset,
            });
        }
        let segments = &snapshot.segments;
        let mut index = segments
            .partition_point(|segment| segment.base_offset <= start_offset)
            .saturating_sub(1);
        let mut ranges = Vec::new();
        let mut taken = 0usize;
        'segments: while index < segments.len() && start_offset < snapshot.log_end_offset {
            let segment = &segments[index];
            let end = segment_end(&snapshot, index);
            let located = match locate(segment, start_offset, end) {
                Ok(located) => located,
                Err(error) => {
                    let error = self.corrupt_header(error)?;
                    if taken > 0 {
                        break 'segments;
                    }
                    return Err(error);
                }
            };
            let Some((range_start, first)) = located else {
                index += 1;
                continue;
            };
            let mut position = range_start;
            let mut header = first;
            let mut stop = false;
            loop {
                let bytes = header.total_bytes();
                let over_budget = taken + bytes > max_bytes && !(min_one_batch && taken == 0);
                if header.last_offset() >= max_offset || over_budget {
                    stop = true;
                    break;
                }
                taken += bytes;
                position += bytes as u64;
                if position >= end {
                    break;
                }
                header = match segment.header_at(position, end) {
                    Ok(header) => header,
                    // The intact batches so far go out; the next fetch
                    // starts at the corrupt one.
                    Err(error) => {
                        self.corrupt_header(error)?;
                        stop = true;
                        break;
                    }
                };
            }
            if position > range_start {
                ranges.push(FileRange {
                    file: segment.log_file()?,
                    path: segment.log_path().to_path_buf(),
                    position: range_start,
                    len: (position - range_start) as usize,
                });
            }
            if stop {
                break 'segments;
            }
            index += 1;
        }
        Ok(FileRecords { ranges, len: taken })
    }

    /// First record (not batch) with timestamp >= `timestamp` among offsets
    /// below `max_offset` and at or above the log start offset:
    /// `Some((offset, record_timestamp))`, or `None`.
    /// The time index finds the batch; the records inside decide (compressed
    /// batches are decompressed with kafka-protocol's decoder).
    pub fn offset_for_timestamp(
        &self,
        timestamp: i64,
        max_offset: i64,
    ) -> Result<Option<(i64, i64)>, LogError> {
        let snapshot = self.current_snapshot()?;
        for (index, segment) in snapshot.segments.iter().enumerate() {
            if segment.base_offset >= max_offset {
                break;
            }
            let end = segment_end(&snapshot, index);
            let mut position = {
                let state = segment.state.read();
                if state.max_timestamp < timestamp {
                    continue;
                }
                let relative = index::time_floor_offset(&state.time_entries, timestamp);
                index::floor_position(&state.offset_entries, relative, end)
            };
            while position < end {
                let header = segment.header_at(position, end)?;
                if header.base_offset >= max_offset {
                    return Ok(None);
                }
                if header.max_timestamp >= timestamp {
                    for (offset, record_timestamp) in record_timestamps(segment, position, &header)?
                    {
                        if offset >= max_offset {
                            return Ok(None);
                        }
                        if offset >= snapshot.log_start_offset && record_timestamp >= timestamp {
                            return Ok(Some((offset, record_timestamp)));
                        }
                    }
                }
                position += header.total_bytes() as u64;
            }
        }
        Ok(None)
    }

    /// The record with the largest timestamp below `max_offset` (ListOffsets -3):
    /// `Some((offset, timestamp))`, or `None` for an empty log.
    ///
    /// Only batches wholly below `max_offset`
    /// count; among equal timestamps the earliest record wins.
    pub fn max_timestamp_offset(&self, max_offset: i64) -> Result<Option<(i64, i64)>, LogError> {
        let snapshot = self.current_snapshot()?;
        // (timestamp, segment index, batch base offset)
        let mut best: Option<(i64, usize, i64)> = None;
        for (index, segment) in snapshot.segments.iter().enumerate() {
            if segment.base_offset >= max_offset {
                break;
            }
            let end = segment_end(&snapshot, index);
            let (next_offset, max_timestamp, batch_offset) = {
                let state = segment.state.read();
                (
                    state.next_offset,
                    state.max_timestamp,
                    state.max_timestamp_batch_offset,
                )
            };
            let complete = next_offset <= max_offset && index + 1 < snapshot.segments.len();
            let candidate = if complete {
                (batch_offset >= 0).then_some((max_timestamp, batch_offset))
            } else {
                let mut found: Option<(i64, i64)> = None;
                let mut position = 0;
                while position < end {
                    let header = segment.header_at(position, end)?;
                    if header.last_offset() >= max_offset {
                        break;
                    }
                    if found.is_none_or(|(timestamp, _)| header.max_timestamp > timestamp) {
                        found = Some((header.max_timestamp, header.base_offset));
                    }
                    position += header.total_bytes() as u64;
                }
                found
            };
            if let Some((timestamp, batch_offset)) = candidate {
                if best.is_none_or(|(best_timestamp, _, _)| timestamp > best_timestamp) {
                    best = Some((timestamp, index, batch_offset));
                }
            }
        }
        let Some((timestamp, index, batch_offset)) = best else {
            return Ok(None);
        };
        let segment = &snapshot.segments[index];
        let end = segment_end(&snapshot, index);
        let Some((position, header)) = locate(segment, batch_offset, end)? else {
            return Ok(None);
        };
        let records = record_timestamps(segment, position, &header)?;
        let offset = records
            .iter()
            .find(|(_, record_timestamp)| *record_timestamp == timestamp)
            .map_or(header.last_offset(), |(offset, _)| *offset);
        Ok(Some((offset, timestamp)))
    }
}
