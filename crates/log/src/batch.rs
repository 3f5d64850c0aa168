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

/// Why a batch was refused. The broker maps (`error_codes::from_batch_error`):
/// `Corrupt*` → CORRUPT_MESSAGE, `Invalid*` and `MissingKeys` →
/// INVALID_RECORD, `UnsupportedCompression` → UNSUPPORTED_COMPRESSION_TYPE,
/// `RecordsTooLarge` → MESSAGE_TOO_LARGE. The records-level variants come
/// from `validate::validate_records`.
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
    InvalidRecordCount {
        record_count: i32,
        last_offset_delta: i32,
    },
    #[error("control batch written by a client")]
    InvalidControlBatch,
    #[error("unknown compression codec {0}")]
    UnsupportedCompression(u8),
    #[error("compressed records do not decompress: {0}")]
    CorruptCompressed(String),
    #[error("records decompress to more than {bytes_max} bytes")]
    RecordsTooLarge {
        /// The bound that was passed.
        bytes_max: u64,
    },
    #[error("invalid records: {reason}")]
    InvalidRecords {
        /// What is wrong with the records.
        reason: String,
        /// The record (0-based, in batch order) at fault, when it is one
        /// record's fault: KIP-467's batch_index.
        record_index: Option<i32>,
    },
    #[error("compacted topic cannot accept message without key ({} records)", record_indexes.len())]
    MissingKeys {
        /// The keyless records (0-based, in batch order).
        record_indexes: Vec<i32>,
    },
}

/// The parsed header. Field names are Kafka's.
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
        // batch_length is checked non-negative by parse_header.
        self.batch_length as usize + LENGTH_PREFIX_BYTES
    }
    /// Compression codec id: attributes & 0x7 (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> u8 {
        (self.attributes & COMPRESSION_MASK) as u8
    }
    /// attributes bit 3: LogAppendTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & (1 << 3) != 0
    }
    /// attributes bit 4.
    pub fn is_transactional(&self) -> bool {
        self.attributes & (1 << 4) != 0
    }
    /// attributes bit 5.
    pub fn is_control(&self) -> bool {
        self.attributes & (1 << 5) != 0
    }
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }
}

/// baseOffset (8) + batchLength (4): the bytes not counted by batchLength.
pub const LENGTH_PREFIX_BYTES: usize = 12;
/// Where the CRC-covered region starts (attributes).
pub const CRC_START: usize = ATTRIBUTES_AT;

// Where each header field starts (the layout above); the one declaration
// of these offsets.
/// baseOffset, i64.
pub const BASE_OFFSET_AT: usize = 0;
/// batchLength, i32.
pub const BATCH_LENGTH_AT: usize = 8;
/// partitionLeaderEpoch, i32.
pub const PARTITION_LEADER_EPOCH_AT: usize = 12;
/// magic, i8.
pub const MAGIC_AT: usize = 16;
/// crc, u32.
pub const CRC_AT: usize = 17;
/// attributes, i16.
pub const ATTRIBUTES_AT: usize = 21;
/// lastOffsetDelta, i32.
pub const LAST_OFFSET_DELTA_AT: usize = 23;
/// baseTimestamp, i64.
pub const BASE_TIMESTAMP_AT: usize = 27;
/// maxTimestamp, i64.
pub const MAX_TIMESTAMP_AT: usize = 35;
/// producerId, i64.
pub const PRODUCER_ID_AT: usize = 43;
/// producerEpoch, i16.
pub const PRODUCER_EPOCH_AT: usize = 51;
/// baseSequence, i32.
pub const BASE_SEQUENCE_AT: usize = 53;
/// recordCount, i32.
pub const RECORD_COUNT_AT: usize = 57;
/// The attributes bits of the compression codec.
pub const COMPRESSION_MASK: i16 = 0x7;

fn be_i64(bytes: &[u8], at: usize) -> i64 {
    let mut raw = [0u8; 8];
    raw.copy_from_slice(&bytes[at..at + 8]);
    i64::from_be_bytes(raw)
}

fn be_i32(bytes: &[u8], at: usize) -> i32 {
    let mut raw = [0u8; 4];
    raw.copy_from_slice(&bytes[at..at + 4]);
    i32::from_be_bytes(raw)
}

fn be_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

/// Parses the header at the start of `bytes` (no CRC check). Needs at least
/// HEADER_BYTES bytes and magic 2... returns `CorruptSize` when shorter.
///
/// Also `CorruptSize` when batchLength is below the header size (a batch
/// can never be shorter than its header), `InvalidMagic` when magic != 2.
pub fn parse_header(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    if bytes.len() < HEADER_BYTES {
        return Err(BatchError::CorruptSize);
    }
    let batch_length = be_i32(bytes, BATCH_LENGTH_AT);
    if batch_length < 0 || (batch_length as usize) + LENGTH_PREFIX_BYTES < HEADER_BYTES {
        return Err(BatchError::CorruptSize);
    }
    let magic = bytes[MAGIC_AT] as i8;
    if magic != 2 {
        return Err(BatchError::InvalidMagic(magic));
    }
    Ok(BatchHeader {
        base_offset: be_i64(bytes, BASE_OFFSET_AT),
        batch_length,
        partition_leader_epoch: be_i32(bytes, PARTITION_LEADER_EPOCH_AT),
        magic,
        crc: u32::from_be_bytes([
            bytes[CRC_AT],
            bytes[CRC_AT + 1],
            bytes[CRC_AT + 2],
            bytes[CRC_AT + 3],
        ]),
        attributes: be_i16(bytes, ATTRIBUTES_AT),
        last_offset_delta: be_i32(bytes, LAST_OFFSET_DELTA_AT),
        base_timestamp: be_i64(bytes, BASE_TIMESTAMP_AT),
        max_timestamp: be_i64(bytes, MAX_TIMESTAMP_AT),
        producer_id: be_i64(bytes, PRODUCER_ID_AT),
        producer_epoch: be_i16(bytes, PRODUCER_EPOCH_AT),
        base_sequence: be_i32(bytes, BASE_SEQUENCE_AT),
        record_count: be_i32(bytes, RECORD_COUNT_AT),
    })
}

/// CRC-32C of a whole batch's covered region (bytes 21..end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[CRC_START.min(batch.len())..])
}

/// Checks that the first `header.total_bytes()` of `bytes` carry a correct CRC.
/// `bytes` must hold the whole batch.
pub fn crc_matches(header: &BatchHeader, bytes: &[u8]) -> bool {
    let total = header.total_bytes();
    total <= bytes.len() && compute_crc(&bytes[..total]) == header.crc
}

/// Validates a Produce partition's record set: exactly one v2 batch filling
/// `bytes` exactly, correct CRC, record count == lastOffsetDelta + 1, not a
/// control batch. Order of checks (as Kafka): size, magic, CRC, count, control;
/// trailing bytes after one whole batch → `InvalidMultipleBatches` when they
/// parse as another batch header, `CorruptSize` otherwise.
///
/// "Parse as another batch header" means: at least HEADER_BYTES remain and
/// their batchLength is at least the header size (magic is not looked at).
pub fn validate(bytes: &[u8]) -> Result<BatchHeader, BatchError> {
    if bytes.len() < HEADER_BYTES {
        return Err(BatchError::CorruptSize);
    }
    let batch_length = be_i32(bytes, BATCH_LENGTH_AT);
    if batch_length < 0
        || (batch_length as usize) + LENGTH_PREFIX_BYTES < HEADER_BYTES
        || (batch_length as usize) + LENGTH_PREFIX_BYTES > bytes.len()
    {
        return Err(BatchError::CorruptSize);
    }
    let header = parse_header(bytes)?;
    let total = header.total_bytes();
    if compute_crc(&bytes[..total]) != header.crc {
        return Err(BatchError::CorruptCrc);
    }
    let rest = &bytes[total..];
    if !rest.is_empty() {
        let plausible = rest.len() >= HEADER_BYTES && {
            let next_length = be_i32(rest, BATCH_LENGTH_AT);
            next_length >= 0 && (next_length as usize) + LENGTH_PREFIX_BYTES >= HEADER_BYTES
        };
        return Err(if plausible {
            BatchError::InvalidMultipleBatches
        } else {
            BatchError::CorruptSize
        });
    }
    if header.last_offset_delta < 0
        || i64::from(header.record_count) != i64::from(header.last_offset_delta) + 1
    {
        return Err(BatchError::InvalidRecordCount {
            record_count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    if header.is_control() {
        return Err(BatchError::InvalidControlBatch);
    }
    Ok(header)
}

/// Writes baseOffset (outside the CRC).
pub fn set_base_offset(bytes: &mut [u8], base_offset: i64) {
    bytes[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Writes partitionLeaderEpoch (outside the CRC).
pub fn set_partition_leader_epoch(bytes: &mut [u8], epoch: i32) {
    bytes[PARTITION_LEADER_EPOCH_AT..PARTITION_LEADER_EPOCH_AT + 4]
        .copy_from_slice(&epoch.to_be_bytes());
}

/// Sets the LogAppendTime bit and maxTimestamp = `now_ms`, recomputes the CRC.
///
/// The CRC covers bytes 21..end of `bytes`: pass exactly one batch.
pub fn set_log_append_time(bytes: &mut [u8], now_ms: i64) {
    let attributes = be_i16(bytes, ATTRIBUTES_AT) | (1 << 3);
    bytes[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    bytes[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(bytes);
    bytes[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
}
