//! Shared helpers: real v2 batches from the test kit's builder (the log's
//! own fixtures: leader epoch 0, sequences from 0), and readers of them.
#![allow(dead_code)]

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use sluice_log::{AppendOptions, LogConfig};
use sluice_testkit::{RecordBatchBuilder, TestRecord};

pub mod cleaning;

/// One batch of `timestamps.len()` records; record i has value `value_prefix-i`
/// padded to `value_bytes`.
pub fn batch_with(
    timestamps: &[i64],
    value_bytes: usize,
    compression: Compression,
    tag: u64,
) -> BytesMut {
    let records: Vec<TimedRecord> = timestamps
        .iter()
        .enumerate()
        .map(|(index, timestamp)| {
            let mut value = format!("{tag}-{index}-").into_bytes();
            value.resize(value_bytes.max(value.len()), b'x');
            let key = Some(Bytes::from(format!("key-{tag}")));
            (key, Some(Bytes::from(value)), *timestamp)
        })
        .collect();
    let offsets: Vec<i64> = (0..timestamps.len() as i64).collect();
    encode_timed(&records, &offsets, compression)
}

/// A record to encode: key, value, timestamp.
pub type TimedRecord = (Option<Bytes>, Option<Bytes>, i64);

/// One batch of `(key, value)` records at `offsets` (relative; the first is
/// the base), timestamps 1000 + offset, no producer.
pub fn encode_records(
    records: &[(Option<Bytes>, Option<Bytes>)],
    offsets: &[i64],
    compression: Compression,
) -> BytesMut {
    let records: Vec<TimedRecord> = records
        .iter()
        .zip(offsets)
        .map(|((key, value), offset)| (key.clone(), value.clone(), 1_000 + offset))
        .collect();
    encode_timed(&records, offsets, compression)
}

/// One batch of records at `offsets` (relative; the first is the base), no producer.
pub fn encode_timed(
    records: &[TimedRecord],
    offsets: &[i64],
    compression: Compression,
) -> BytesMut {
    let records = records
        .iter()
        .zip(offsets)
        .map(|((key, value, timestamp), offset)| {
            TestRecord::new(key.clone(), value.clone())
                .at(*timestamp)
                .offset_delta(*offset)
        });
    RecordBatchBuilder::new()
        .partition_leader_epoch(0)
        .base_sequence(0)
        .compression(compression)
        .records(records)
        .build()
}

pub fn batch(records: usize, value_bytes: usize, tag: u64) -> BytesMut {
    let timestamps: Vec<i64> = (0..records).map(|index| 1_000 + index as i64).collect();
    batch_with(&timestamps, value_bytes, Compression::None, tag)
}

pub fn options(leader_epoch: i32) -> AppendOptions {
    AppendOptions {
        leader_epoch,
        log_append_time_ms: None,
    }
}

pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        segment_ms: i64::MAX / 2,
        segment_index_bytes: 10 * 1024 * 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

/// (base offset, last offset) of every batch in `bytes`, walking headers.
pub fn batch_offsets(bytes: &[u8]) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let header = sluice_log::batch::validate(
            &rest[..sluice_log::batch::parse_header(rest).unwrap().total_bytes()],
        )
        .unwrap();
        out.push((header.base_offset, header.last_offset()));
        rest = &rest[header.total_bytes()..];
    }
    out
}

/// Decoded (offset, value) of every record in `bytes`.
pub fn record_values(bytes: &Bytes) -> Vec<(i64, Bytes)> {
    let mut buffer = bytes.clone();
    RecordBatchDecoder::decode_all(&mut buffer)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|record| (record.offset, record.value.unwrap_or_default()))
        .collect()
}

/// One record of a keyed batch: key, value (`None`: tombstone), timestamp.
pub type KeyedRecord<'a> = (Option<&'a str>, Option<&'a str>, i64);

/// Batch attributes the cleaner treats specially.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchKind {
    /// Transactional bit, producer id 7 epoch 1.
    pub transactional: bool,
    /// Control bit (transaction marker).
    pub control: bool,
}

/// One batch of keyed records, offsets 0.. (the log assigns the base).
pub fn keyed_batch(
    records: &[KeyedRecord<'_>],
    compression: Compression,
    kind: BatchKind,
) -> BytesMut {
    let producer_id = if kind.transactional || kind.control {
        7
    } else {
        -1
    };
    producer_batch(records, compression, kind, producer_id)
}

/// One batch of keyed records written by `producer_id` (epoch 1, sequences
/// from 0; -1: no producer), offsets 0.. (the log assigns the base).
pub fn producer_batch(
    records: &[KeyedRecord<'_>],
    compression: Compression,
    kind: BatchKind,
    producer_id: i64,
) -> BytesMut {
    let producer_epoch = if producer_id >= 0 { 1 } else { -1 };
    RecordBatchBuilder::new()
        .partition_leader_epoch(0)
        .producer(producer_id, producer_epoch, 0)
        .transactional(kind.transactional)
        .control(kind.control)
        .compression(compression)
        .records(
            records
                .iter()
                .map(|(key, value, timestamp)| TestRecord::text(*key, *value).at(*timestamp)),
        )
        .build()
}

/// A transaction marker of `producer_id` (COMMIT or ABORT) stamped
/// `timestamp`, as the broker writes it: key (version 0, type), value
/// (version 0, coordinator epoch 0).
pub fn marker_batch(producer_id: i64, commit: bool, timestamp: i64) -> BytesMut {
    RecordBatchBuilder::new()
        .partition_leader_epoch(0)
        .producer(producer_id, 1, 0)
        .transactional(true)
        .control(true)
        .record(TestRecord::marker(commit, 0).at(timestamp))
        .build()
}

/// A decoded record: offset, key, value.
pub type Decoded = (i64, Option<Bytes>, Option<Bytes>);

/// Every record in `bytes` (whole batches), decoded.
pub fn decode_records(bytes: &Bytes) -> Vec<Decoded> {
    let mut buffer = bytes.clone();
    RecordBatchDecoder::decode_all(&mut buffer)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|record| (record.offset, record.key, record.value))
        .collect()
}

/// Headers of every batch in `bytes`.
pub fn batch_headers(bytes: &[u8]) -> Vec<sluice_log::batch::BatchHeader> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let header = sluice_log::batch::parse_header(rest).unwrap();
        let total = header.total_bytes();
        assert!(
            sluice_log::batch::crc_matches(&header, &rest[..total]),
            "CRC of batch at {}",
            header.base_offset
        );
        out.push(header);
        rest = &rest[total..];
    }
    out
}
