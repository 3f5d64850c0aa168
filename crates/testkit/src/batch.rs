//! The one RecordBatch v2 builder of the tests, and the patches tests apply
//! to a built batch.
//!
//! A batch is encoded by kafka-protocol's `RecordBatchEncoder`, the encoder
//! the broker does not use for client data, so a test checks sluice's parser
//! against an independent writer. The builder always yields exactly one
//! batch: batch-level fields (producer, flags, leader epoch) are set once,
//! and every record's sequence is `base_sequence + offset delta`, so the
//! encoder never splits it.
//!
//! The patch functions (`rewrite_crc`, `set_record_count`, `set_codec`,
//! `replace_records`) build what a client could send but the encoder never
//! writes: a right CRC over wrong records, a codec bit over garbage.

use bytes::{Bytes, BytesMut};
use kafka_protocol::protocol::StrBytes;
pub use kafka_protocol::records::Compression;
use kafka_protocol::records::{Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};

/// Byte positions of the RecordBatch v2 header fields tests patch.
pub mod at {
    /// baseOffset (i64).
    pub const BASE_OFFSET: usize = 0;
    /// batchLength (i32): the bytes after this field.
    pub const BATCH_LENGTH: usize = 8;
    /// partitionLeaderEpoch (i32).
    pub const PARTITION_LEADER_EPOCH: usize = 12;
    /// magic (i8), 2.
    pub const MAGIC: usize = 16;
    /// crc (u32): CRC-32C of attributes..end.
    pub const CRC: usize = 17;
    /// attributes (i16): codec in bits 0-2, transactional bit 4, control bit 5.
    pub const ATTRIBUTES: usize = 21;
    /// lastOffsetDelta (i32).
    pub const LAST_OFFSET_DELTA: usize = 23;
    /// producerId (i64).
    pub const PRODUCER_ID: usize = 43;
    /// producerEpoch (i16).
    pub const PRODUCER_EPOCH: usize = 51;
    /// baseSequence (i32).
    pub const BASE_SEQUENCE: usize = 53;
    /// recordCount (i32).
    pub const RECORD_COUNT: usize = 57;
    /// The records section (compressed as a whole under a codec).
    pub const RECORDS: usize = 61;
}

/// One record of a batch under construction.
#[derive(Clone, Debug, Default)]
pub struct TestRecord {
    /// The key; `None` is a null key.
    key: Option<Bytes>,
    /// The value; `None` is a tombstone.
    value: Option<Bytes>,
    /// Record headers in order, by name; a `None` value is a null header.
    headers: Vec<(String, Option<Bytes>)>,
    /// Creation timestamp in ms; `None`: the batch's default.
    timestamp: Option<i64>,
    /// Offset delta in the batch; `None`: the record's index.
    offset_delta: Option<i64>,
}

impl TestRecord {
    /// A record of `key` (`None`: null) and `value` (`None`: tombstone).
    pub fn new(key: Option<Bytes>, value: Option<Bytes>) -> Self {
        TestRecord {
            key,
            value,
            ..TestRecord::default()
        }
    }

    /// A keyless record.
    pub fn value(value: impl AsRef<[u8]>) -> Self {
        Self::new(None, Some(Bytes::copy_from_slice(value.as_ref())))
    }

    /// A keyed record.
    pub fn keyed(key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Self {
        Self::new(
            Some(Bytes::copy_from_slice(key.as_ref())),
            Some(Bytes::copy_from_slice(value.as_ref())),
        )
    }

    /// A record of `key` and `value` given as optional text.
    pub fn text(key: Option<&str>, value: Option<&str>) -> Self {
        let bytes = |text: &str| Bytes::copy_from_slice(text.as_bytes());
        Self::new(key.map(bytes), value.map(bytes))
    }

    /// The control record of a transaction marker as Kafka writes it: key
    /// (version 0, type 0 ABORT / 1 COMMIT), value (version 0, coordinator
    /// epoch). Goes in a batch built with `.transactional(true).control(true)`.
    pub fn marker(commit: bool, coordinator_epoch: i32) -> Self {
        let mut key = Vec::with_capacity(4);
        key.extend_from_slice(&0i16.to_be_bytes());
        key.extend_from_slice(&i16::from(commit).to_be_bytes());
        let mut value = Vec::with_capacity(6);
        value.extend_from_slice(&0i16.to_be_bytes());
        value.extend_from_slice(&coordinator_epoch.to_be_bytes());
        Self::new(Some(Bytes::from(key)), Some(Bytes::from(value)))
    }

    /// Adds a header (`None`: a null header value).
    pub fn header(mut self, name: &str, value: Option<&[u8]>) -> Self {
        self.headers
            .push((name.to_string(), value.map(Bytes::copy_from_slice)));
        self
    }

    /// Stamps the record with `timestamp_ms`.
    pub fn at(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Places the record at `offset_delta` instead of its index (for
    /// batches whose deltas have gaps).
    pub fn offset_delta(mut self, offset_delta: i64) -> Self {
        self.offset_delta = Some(offset_delta);
        self
    }
}

/// Builds one RecordBatch v2. Defaults are a plain client batch: no
/// producer (id -1, epoch -1, base sequence -1), partition leader epoch -1,
/// uncompressed, records stamped with the current time.
#[derive(Clone, Debug)]
pub struct RecordBatchBuilder {
    /// The records, in order.
    records: Vec<TestRecord>,
    /// The codec of the records section.
    compression: Compression,
    /// producerId; -1: none.
    producer_id: i64,
    /// producerEpoch; -1: none.
    producer_epoch: i16,
    /// baseSequence: the sequence of the record at offset delta 0.
    base_sequence: i32,
    /// The transactional attribute bit.
    transactional: bool,
    /// The control attribute bit (transaction markers).
    control: bool,
    /// partitionLeaderEpoch as the client writes it.
    partition_leader_epoch: i32,
    /// Timestamp of records without their own; `None`: now.
    timestamp: Option<i64>,
}

impl Default for RecordBatchBuilder {
    fn default() -> Self {
        RecordBatchBuilder {
            records: Vec::new(),
            compression: Compression::None,
            producer_id: -1,
            producer_epoch: -1,
            base_sequence: -1,
            transactional: false,
            control: false,
            partition_leader_epoch: -1,
            timestamp: None,
        }
    }
}

impl RecordBatchBuilder {
    /// A plain, uncompressed batch without records yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Compresses the records section with `compression`.
    pub fn compression(mut self, compression: Compression) -> Self {
        self.compression = compression;
        self
    }

    /// An idempotent (or transactional) producer's batch: id, epoch and the
    /// sequence of its first record.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Sets baseSequence alone (kept by batches without a producer too).
    pub fn base_sequence(mut self, base_sequence: i32) -> Self {
        self.base_sequence = base_sequence;
        self
    }

    /// Sets the transactional attribute bit.
    pub fn transactional(mut self, transactional: bool) -> Self {
        self.transactional = transactional;
        self
    }

    /// Sets the control attribute bit.
    pub fn control(mut self, control: bool) -> Self {
        self.control = control;
        self
    }

    /// Sets partitionLeaderEpoch.
    pub fn partition_leader_epoch(mut self, epoch: i32) -> Self {
        self.partition_leader_epoch = epoch;
        self
    }

    /// Stamps records without a timestamp of their own with `timestamp_ms`.
    pub fn timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }

    /// Appends one record.
    pub fn record(mut self, record: TestRecord) -> Self {
        self.records.push(record);
        self
    }

    /// Appends records.
    pub fn records(mut self, records: impl IntoIterator<Item = TestRecord>) -> Self {
        self.records.extend(records);
        self
    }

    /// Encodes the batch: its base offset is 0 (the broker or the log
    /// assigns the real one). Mutable, for tests that damage it.
    ///
    /// Panics without records, or when the encoder fails: both are bugs of
    /// the test.
    pub fn build(&self) -> BytesMut {
        assert!(!self.records.is_empty(), "a record batch needs a record");
        let default_timestamp = self.timestamp.unwrap_or_else(now_ms);
        let records: Vec<Record> = self
            .records
            .iter()
            .enumerate()
            .map(|(index, record)| self.encoder_record(index, record, default_timestamp))
            .collect();
        let mut buffer = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buffer,
            &records,
            &RecordEncodeOptions {
                version: 2,
                compression: self.compression,
            },
        )
        .expect("encode record batch");
        assert_eq!(
            crate::batch::batch_count(&buffer),
            1,
            "the builder yields one batch"
        );
        buffer
    }

    /// `build`, frozen.
    pub fn bytes(&self) -> Bytes {
        self.build().freeze()
    }

    fn encoder_record(&self, index: usize, record: &TestRecord, timestamp: i64) -> Record {
        let offset = record.offset_delta.unwrap_or(index as i64);
        Record {
            transactional: self.transactional,
            control: self.control,
            delete_horizon: false,
            partition_leader_epoch: self.partition_leader_epoch,
            producer_id: self.producer_id,
            producer_epoch: self.producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset,
            // offset - sequence is the same for every record, so the encoder
            // keeps one batch whose base sequence is `base_sequence`.
            sequence: self.base_sequence.wrapping_add(offset as i32),
            timestamp: record.timestamp.unwrap_or(timestamp),
            key: record.key.clone(),
            value: record.value.clone(),
            headers: record
                .headers
                .iter()
                .map(|(name, value)| (StrBytes::from_string(name.clone()), value.clone()))
                .collect(),
        }
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after epoch")
        .as_millis() as i64
}

/// How many whole batches `bytes` holds, walking batchLength fields.
fn batch_count(bytes: &[u8]) -> usize {
    let mut count = 0;
    let mut rest = bytes;
    while rest.len() >= at::RECORDS {
        let length = read_i32(rest, at::BATCH_LENGTH);
        let total = at::BATCH_LENGTH + 4 + usize::try_from(length).expect("batch length");
        rest = &rest[total.min(rest.len())..];
        count += 1;
    }
    count
}

fn read_i32(bytes: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(bytes[at..at + 4].try_into().expect("four bytes"))
}

/// Recomputes the CRC-32C over attributes..end, as a client would after
/// changing the batch.
pub fn rewrite_crc(batch: &mut [u8]) {
    let crc = crc32c::crc32c(&batch[at::ATTRIBUTES..]);
    batch[at::CRC..at::CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Sets recordCount to `count` and lastOffsetDelta to `count - 1` (the CRC
/// is left as it was: see [`rewrite_crc`]).
pub fn set_record_count(batch: &mut [u8], count: i32) {
    batch[at::RECORD_COUNT..at::RECORD_COUNT + 4].copy_from_slice(&count.to_be_bytes());
    batch[at::LAST_OFFSET_DELTA..at::LAST_OFFSET_DELTA + 4]
        .copy_from_slice(&(count - 1).to_be_bytes());
}

/// Sets the codec bits (0-2) of the attributes to `codec`, keeping the
/// others (the CRC is left as it was).
pub fn set_codec(batch: &mut [u8], codec: i16) {
    let attributes = i16::from_be_bytes([batch[at::ATTRIBUTES], batch[at::ATTRIBUTES + 1]]);
    let attributes = (attributes & !7) | codec;
    batch[at::ATTRIBUTES..at::ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
}

/// `batch`'s header followed by `records` as its records section, with
/// batchLength fixed (the CRC is left as it was).
pub fn replace_records(batch: &[u8], records: &[u8]) -> BytesMut {
    let mut out = BytesMut::from(&batch[..at::RECORDS]);
    out.extend_from_slice(records);
    let length = i32::try_from(out.len() - at::BATCH_LENGTH - 4).expect("batch fits in i32");
    out[at::BATCH_LENGTH..at::BATCH_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    out
}

#[cfg(test)]
#[path = "batch_tests.rs"]
mod tests;
