//! Sparse offset index (`.index`) and time index (`.timeindex`).
//!
//! Both live in memory (readers search the vectors) and are appended to plain
//! files with positional writes. Offset index entries are 8 bytes: relative
//! offset u32, position u32 (big endian). Time index entries are 12 bytes:
//! timestamp i64, relative offset u32. The files are only ever read at open.

use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::error::io_error;
use crate::handles::LazyFile;
use crate::LogError;

/// Bytes per `.index` entry.
pub const OFFSET_ENTRY_BYTES: u64 = 8;
/// Bytes per `.timeindex` entry.
pub const TIME_ENTRY_BYTES: u64 = 12;

/// One `.index` entry: the batch starting at `position` has base offset
/// `segment base + relative_offset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OffsetEntry {
    /// Batch base offset minus the segment base offset.
    pub relative_offset: u32,
    /// Byte position of that batch in the `.log` file.
    pub position: u32,
}

/// One `.timeindex` entry: every record before `relative_offset` has a
/// timestamp below `timestamp`, and the batch at `relative_offset` holds a record with
/// `timestamp` (the largest timestamp so far in the segment).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TimeEntry {
    /// Largest timestamp in the segment up to and including this batch.
    pub timestamp: i64,
    /// Base offset (relative) of the first batch that reached `timestamp`.
    pub relative_offset: u32,
}

/// An index file; its descriptor is opened on use and closed by the
/// segment-file cache when idle (`handles.rs`), so a closed segment's indexes,
/// already in memory, cost no descriptor.
#[derive(Clone, Debug)]
pub struct IndexFile {
    /// The file, reopened by its current path when needed.
    pub file: LazyFile,
}

impl IndexFile {
    pub fn open(path: PathBuf) -> Result<IndexFile, LogError> {
        Ok(IndexFile {
            file: LazyFile::create_or_open(path)?,
        })
    }

    /// Where the file is now.
    pub fn path(&self) -> PathBuf {
        self.file.path()
    }

    /// Records a rename of the file.
    pub fn set_path(&self, path: PathBuf) {
        self.file.set_path(path);
    }

    pub fn read_all(&self) -> Result<Vec<u8>, LogError> {
        let file = self.file.get()?;
        let path = self.path();
        let length = file
            .metadata()
            .map_err(|error| io_error(&path, error))?
            .len();
        let mut buffer = vec![0u8; length as usize];
        file.read_exact_at(&mut buffer, 0)
            .map_err(|error| io_error(&path, error))?;
        Ok(buffer)
    }

    pub fn write_at(&self, bytes: &[u8], position: u64) -> Result<(), LogError> {
        self.file
            .get()?
            .write_all_at(bytes, position)
            .map_err(|error| io_error(&self.path(), error))
    }

    /// Replaces the whole content.
    pub fn rewrite(&self, bytes: &[u8]) -> Result<(), LogError> {
        self.file
            .get()?
            .set_len(0)
            .map_err(|error| io_error(&self.path(), error))?;
        self.write_at(bytes, 0)
    }

    pub fn sync(&self) -> Result<(), LogError> {
        self.file
            .get()?
            .sync_data()
            .map_err(|error| io_error(&self.path(), error))
    }
}

pub fn encode_offset_entry(entry: OffsetEntry) -> [u8; 8] {
    let mut raw = [0u8; 8];
    raw[..4].copy_from_slice(&entry.relative_offset.to_be_bytes());
    raw[4..].copy_from_slice(&entry.position.to_be_bytes());
    raw
}

pub fn encode_time_entry(entry: TimeEntry) -> [u8; 12] {
    let mut raw = [0u8; 12];
    raw[..8].copy_from_slice(&entry.timestamp.to_be_bytes());
    raw[8..].copy_from_slice(&entry.relative_offset.to_be_bytes());
    raw
}

/// Decodes a `.index` file; `None` when its length is not a whole number of
/// entries or the entries are not strictly increasing.
pub fn decode_offset_index(bytes: &[u8]) -> Option<Vec<OffsetEntry>> {
    if !bytes
        .chunks_exact(OFFSET_ENTRY_BYTES as usize)
        .remainder()
        .is_empty()
    {
        return None;
    }
    let mut entries: Vec<OffsetEntry> = Vec::with_capacity(bytes.len() / 8);
    for chunk in bytes.chunks_exact(8) {
        let entry = OffsetEntry {
            relative_offset: u32::from_be_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]),
            position: u32::from_be_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]),
        };
        if let Some(last) = entries.last() {
            if entry.relative_offset <= last.relative_offset || entry.position <= last.position {
                return None;
            }
        }
        entries.push(entry);
    }
    Some(entries)
}

/// Decodes a `.timeindex` file; `None` when malformed or not increasing.
pub fn decode_time_index(bytes: &[u8]) -> Option<Vec<TimeEntry>> {
    if !bytes
        .chunks_exact(TIME_ENTRY_BYTES as usize)
        .remainder()
        .is_empty()
    {
        return None;
    }
    let mut entries: Vec<TimeEntry> = Vec::with_capacity(bytes.len() / 12);
    for chunk in bytes.chunks_exact(12) {
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&chunk[..8]);
        let entry = TimeEntry {
            timestamp: i64::from_be_bytes(timestamp),
            relative_offset: u32::from_be_bytes([chunk[8], chunk[9], chunk[10], chunk[11]]),
        };
        if let Some(last) = entries.last() {
            if entry.timestamp <= last.timestamp || entry.relative_offset < last.relative_offset {
                return None;
            }
        }
        entries.push(entry);
    }
    Some(entries)
}

/// Position of the last indexed batch whose base offset is <= `relative_offset`
/// and which lies below `end_position` (entries past a reader's snapshot are
/// ignored). 0 when none.
pub fn floor_position(entries: &[OffsetEntry], relative_offset: u32, end_position: u64) -> u64 {
    let upper = entries.partition_point(|entry| entry.relative_offset <= relative_offset);
    entries[..upper]
        .iter()
        .rev()
        .find(|entry| u64::from(entry.position) < end_position)
        .map_or(0, |entry| u64::from(entry.position))
}

/// Relative offset from which to scan for the first timestamp >= `timestamp`:
/// the last entry whose timestamp is strictly below it (everything before that
/// entry's offset is below as well). 0 when none.
pub fn time_floor_offset(entries: &[TimeEntry], timestamp: i64) -> u32 {
    let upper = entries.partition_point(|entry| entry.timestamp < timestamp);
    if upper == 0 {
        0
    } else {
        entries[upper - 1].relative_offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_position_table() {
        let entries = [
            OffsetEntry {
                relative_offset: 10,
                position: 100,
            },
            OffsetEntry {
                relative_offset: 20,
                position: 200,
            },
            OffsetEntry {
                relative_offset: 30,
                position: 300,
            },
        ];
        // (relative offset, end position, expected)
        let cases = [
            (0, 1000, 0),
            (10, 1000, 100),
            (25, 1000, 200),
            (99, 1000, 300),
            (99, 300, 200),
            (99, 50, 0),
        ];
        for (offset, end, expected) in cases {
            assert_eq!(
                floor_position(&entries, offset, end),
                expected,
                "{offset} {end}"
            );
        }
    }

    #[test]
    fn index_round_trip_and_rejects_garbage() {
        let entries = [
            OffsetEntry {
                relative_offset: 1,
                position: 2,
            },
            OffsetEntry {
                relative_offset: 3,
                position: 9,
            },
        ];
        let bytes: Vec<u8> = entries
            .iter()
            .flat_map(|e| encode_offset_entry(*e))
            .collect();
        assert_eq!(decode_offset_index(&bytes).unwrap(), entries);
        assert!(decode_offset_index(&bytes[..7]).is_none());
        let reversed: Vec<u8> = entries
            .iter()
            .rev()
            .flat_map(|e| encode_offset_entry(*e))
            .collect();
        assert!(decode_offset_index(&reversed).is_none());
        let times = [
            TimeEntry {
                timestamp: 5,
                relative_offset: 0,
            },
            TimeEntry {
                timestamp: 9,
                relative_offset: 4,
            },
        ];
        let bytes: Vec<u8> = times.iter().flat_map(|e| encode_time_entry(*e)).collect();
        assert_eq!(decode_time_index(&bytes).unwrap(), times);
        assert_eq!(time_floor_offset(&times, 5), 0);
        assert_eq!(time_floor_offset(&times, 6), 0);
        assert_eq!(time_floor_offset(&times, 10), 4);
    }
}
