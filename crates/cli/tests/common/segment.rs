//! Reads a partition's segment file directly: RecordBatch v2 headers as stored on disk.

use std::path::{Path, PathBuf};

/// Size of the RecordBatch v2 header, up to and including recordCount.
pub const BATCH_HEADER_BYTES: usize = 61;

/// The header fields of one stored batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBatch {
    /// Byte position of the batch in the segment file.
    pub position: usize,
    /// baseOffset (bytes 0..8).
    pub base_offset: i64,
    /// Whole batch size: 12 + batchLength.
    pub size: usize,
    /// magic (byte 16).
    pub magic: i8,
    /// attributes (bytes 21..23); codec = attributes & 7.
    pub attributes: i16,
    /// lastOffsetDelta (bytes 23..27).
    pub last_offset_delta: i32,
    /// maxTimestamp (bytes 35..43).
    pub max_timestamp: i64,
    /// recordCount (bytes 57..61).
    pub record_count: i32,
}

impl StoredBatch {
    /// The compression codec id: 0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd.
    pub fn codec(&self) -> i16 {
        self.attributes & 7
    }

    /// The offset of the batch's last record.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
}

/// `<data-dir>/<topic>-<partition>/00000000000000000000.log`.
pub fn first_segment_path(data_dir: &Path, topic: &str, partition: i32) -> PathBuf {
    data_dir
        .join(format!("{topic}-{partition}"))
        .join("00000000000000000000.log")
}

/// Splits segment bytes into batches. Stops at the first incomplete batch and returns
/// the number of trailing bytes that did not form a complete batch.
pub fn parse_batches(bytes: &[u8]) -> (Vec<StoredBatch>, usize) {
    let mut batches = Vec::new();
    let mut position = 0;
    while bytes.len() - position >= BATCH_HEADER_BYTES {
        let header = &bytes[position..];
        let batch_length = be_i32(&header[8..12]);
        let Ok(batch_length) = usize::try_from(batch_length) else {
            break;
        };
        let size = 12 + batch_length;
        if size < BATCH_HEADER_BYTES || position + size > bytes.len() {
            break;
        }
        batches.push(StoredBatch {
            position,
            base_offset: be_i64(&header[0..8]),
            size,
            magic: header[16] as i8,
            attributes: be_i16(&header[21..23]),
            last_offset_delta: be_i32(&header[23..27]),
            max_timestamp: be_i64(&header[35..43]),
            record_count: be_i32(&header[57..61]),
        });
        position += size;
    }
    (batches, bytes.len() - position)
}

/// Reads and parses the first segment of a partition.
pub fn read_first_segment(
    data_dir: &Path,
    topic: &str,
    partition: i32,
) -> (Vec<u8>, Vec<StoredBatch>) {
    let path = first_segment_path(data_dir, topic, partition);
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let (batches, trailing) = parse_batches(&bytes);
    assert_eq!(
        trailing,
        0,
        "segment {} ends with {trailing} bytes that are not a whole batch",
        path.display()
    );
    (bytes, batches)
}

fn be_i64(bytes: &[u8]) -> i64 {
    let mut array = [0u8; 8];
    array.copy_from_slice(bytes);
    i64::from_be_bytes(array)
}

fn be_i32(bytes: &[u8]) -> i32 {
    let mut array = [0u8; 4];
    array.copy_from_slice(bytes);
    i32::from_be_bytes(array)
}

fn be_i16(bytes: &[u8]) -> i16 {
    let mut array = [0u8; 2];
    array.copy_from_slice(bytes);
    i16::from_be_bytes(array)
}
