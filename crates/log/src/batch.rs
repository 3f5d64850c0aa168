//! RecordBatch v2 header: parse, validate, rewrite in place.
//!
//! Layout (big endian): baseOffset i64 @0, batchLength i32 @8,
//! partitionLeaderEpoch i32 @12, magic i8 @16, crc u32 @17 (CRC-32C over
//! bytes 21..end), attributes i16 @21, lastOffsetDelta i32 @23,
//! baseTimestamp i64 @27, maxTimestamp i64 @35, producerId i64 @43,
//! producerEpoch i16 @51, baseSequence i32 @53, recordCount i32 @57;
//! records from @61.

/// Size of the v2 batch header.
pub const HEADER_BYTES: usize = 61;

/// Why a batch was refused. The broker maps: `Corrupt*` → CORRUPT_MESSAGE,
/// `Invalid*` → INVALID_RECORD.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("batch too short or length field inconsistent with the bytes given")]
    CorruptSize,
    #[error("CRC mismatch")]
    CorruptCrc,
    #[error("magic {0} is not 2")]
    InvalidMagic(i8),
    #[error("more than one batch in the record set")]
    InvalidMultipleBatches,
    #[error("record count {record_count} != lastOffsetDelta + 1 ({last_offset_delta} + 1)")]
    InvalidRecordCount { record_count: i32, last_offset_delta: i32 },
    #[error("control batch written by a client")]
    InvalidControlBatch,
}

/// The parsed header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    pub batch_length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

impl BatchHeader {
    /// Total bytes of the batch: batchLength + 12.
    pub fn total_bytes(&self) -> usize {
        todo!()
    }
    /// Compression codec id: attributes & 0x7 (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        todo!()
    }
    /// attributes bit 3: LogAppendTime.
    pub fn is_log_append_time(&self) -> bool {
        todo!()
    }
    /// attributes bit 4.
    pub fn is_transactional(&self) -> bool {
        todo!()
    }
    /// attributes bit 5.
    pub fn is_control(&self) -> bool {
        todo!()
    }
    pub fn last_offset(&self) -> i64 {
        todo!()
    }
}

/// Parses the header at the start of `bytes` (no CRC check). Needs at least
/// HEADER_BYTES bytes and magic 2... returns `CorruptSize` when shorter.
pub fn parse_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let _ = bytes;
    todo!()
}

/// Validates a Produce partition's record set: exactly one v2 batch filling
/// `bytes` exactly, correct CRC, record count == lastOffsetDelta + 1, not a
/// control batch. Order of checks (as Kafka): size, magic, CRC, count, control;
/// trailing bytes after one whole batch → `InvalidMultipleBatches` when they
/// parse as another batch header, `CorruptSize` otherwise.
pub fn validate(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    let _ = bytes;
    todo!()
}

/// Writes baseOffset (outside the CRC).
pub fn set_base_offset(bytes: &mut [u8], base_offset: i64) {
    let _ = (bytes, base_offset);
    todo!()
}

/// Writes partitionLeaderEpoch (outside the CRC).
pub fn set_partition_leader_epoch(bytes: &mut [u8], epoch: i32) {
    let _ = (bytes, epoch);
    todo!()
}

/// Sets the LogAppendTime bit and maxTimestamp = `now_ms`, recomputes the CRC.
pub fn set_log_append_time(bytes: &mut [u8], now_ms: i64) {
    let _ = (bytes, now_ms);
    todo!()
}
