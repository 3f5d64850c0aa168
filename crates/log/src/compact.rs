//! Record-level work of the cleaner on one RecordBatch v2: decompress with
//! the batch's codec, walk the records without decoding their headers, keep
//! or drop each, and rebuild the batch.
//!
//! A rebuilt batch keeps the original baseOffset, lastOffsetDelta,
//! baseTimestamp, partitionLeaderEpoch, producer id / epoch, baseSequence and
//! attributes, and the kept records' bytes verbatim (their offset and
//! timestamp deltas stay valid because the bases do not move). Only
//! batchLength, recordCount, maxTimestamp (CreateTime batches: the largest
//! kept timestamp; LogAppendTime batches keep theirs) and the CRC change.
//! Compressed batches are recompressed with their codec; snappy keeps its
//! framing (xerial `\x82SNAPPY\0` blocks or raw).

use std::collections::HashMap;

use bytes::{Buf, Bytes};
use kafka_protocol::compression::{self, Compressor, Decompressor};

use crate::batch::{
    self, BatchHeader, ATTRIBUTES_AT, BATCH_LENGTH_AT, COMPRESSION_MASK, CRC_AT, HEADER_BYTES,
    MAX_TIMESTAMP_AT, RECORD_COUNT_AT,
};
use crate::control::{self, ControlType, Marker};

/// The xerial snappy stream magic (Java clients' `SnappyOutputStream`).
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";

/// key → offset of its latest record in the dirty section.
#[derive(Debug, Default)]
pub struct OffsetMap {
    /// Latest offset per key.
    latest: HashMap<Vec<u8>, i64>,
    /// Bytes of keys held, the map's memory bound.
    pub key_bytes: usize,
}

impl OffsetMap {
    /// Records that `key` was written at `offset` (offsets arrive in order).
    pub fn put(&mut self, key: &[u8], offset: i64) {
        match self.latest.get_mut(key) {
            Some(latest) => *latest = (*latest).max(offset),
            None => {
                self.key_bytes += key.len();
                self.latest.insert(key.to_vec(), offset);
            }
        }
    }

    /// The latest offset of `key`, if it occurs in the dirty section.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.latest.get(key).copied()
    }

    /// Distinct keys held.
    pub fn len(&self) -> usize {
        self.latest.len()
    }
}

/// One record inside a decompressed records section.
#[derive(Debug)]
pub struct RawRecord<'a> {
    /// The whole record, length prefix included.
    pub bytes: &'a [u8],
    /// offsetDelta.
    pub offset_delta: i64,
    /// timestampDelta.
    pub timestamp_delta: i64,
    /// The key, `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// Null value: a tombstone.
    pub tombstone: bool,
    /// The value, `None` for a null value.
    pub value: Option<&'a [u8]>,
}

/// Reads a zigzag varint (Kafka's varint / varlong) at `*at`.
fn read_varint(bytes: &[u8], at: &mut usize) -> Result<i64, String> {
    let mut raw: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *bytes
            .get(*at)
            .ok_or_else(|| "record truncated inside a varint".to_string())?;
        *at += 1;
        raw |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err("varint longer than 10 bytes".to_string())
}

/// Reads a varint length-prefixed field; `None` for length -1.
fn read_nullable<'a>(bytes: &'a [u8], at: &mut usize) -> Result<Option<&'a [u8]>, String> {
    let length = read_varint(bytes, at)?;
    if length < 0 {
        return Ok(None);
    }
    let end = usize::try_from(length)
        .ok()
        .and_then(|length| at.checked_add(length))
        .filter(|end| *end <= bytes.len())
        .ok_or_else(|| "field longer than its record".to_string())?;
    let field = &bytes[*at..end];
    *at = end;
    Ok(Some(field))
}

/// Splits a decompressed records section into its records.
pub fn split_records(records: &[u8]) -> Result<Vec<RawRecord<'_>>, String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < records.len() {
        let start = at;
        let length = read_varint(records, &mut at)?;
        let end = usize::try_from(length)
            .ok()
            .and_then(|length| at.checked_add(length))
            .filter(|end| *end <= records.len())
            .ok_or_else(|| format!("record length {length} past the batch end"))?;
        let body = &records[at..end];
        let mut field = 1; // attributes (int8)
        let timestamp_delta = read_varint(body, &mut field)?;
        let offset_delta = read_varint(body, &mut field)?;
        let key = read_nullable(body, &mut field)?;
        let value = read_nullable(body, &mut field)?;
        out.push(RawRecord {
            bytes: &records[start..end],
            offset_delta,
            timestamp_delta,
            key,
            tombstone: value.is_none(),
            value,
        });
        at = end;
    }
    Ok(out)
}

fn decompress_with<D: Decompressor<Bytes>>(payload: Bytes) -> Result<Bytes, String> {
    let mut input = payload;
    D::decompress(&mut input, |buffer| {
        Ok(buffer.copy_to_bytes(buffer.remaining()))
    })
    .map_err(|error| error.to_string())
}

fn compress_with<C: Compressor<Vec<u8>, BufMut = bytes::BytesMut>>(
    raw: &[u8],
) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    C::compress(&mut out, |buffer| {
        buffer.extend_from_slice(raw);
        Ok(())
    })
    .map_err(|error| error.to_string())?;
    Ok(out)
}

/// The records section of `batch` (whole batch bytes), decompressed.
pub fn records_section(header: &BatchHeader, batch: &[u8]) -> Result<Bytes, String> {
    let payload = Bytes::copy_from_slice(&batch[HEADER_BYTES..header.total_bytes()]);
    match header.compression() {
        0 => Ok(payload),
        1 => decompress_with::<compression::Gzip>(payload),
        // Both framings: kafka-protocol's decoder falls back to raw snappy
        // when the xerial magic is absent.
        2 => decompress_with::<compression::Snappy>(payload),
        3 => decompress_with::<compression::Lz4>(payload),
        4 => decompress_with::<compression::Zstd>(payload),
        codec => Err(format!("unknown compression codec {codec}")),
    }
}

/// Compresses a records section with `codec`, snappy in the framing of
/// `original_payload`.
fn compress_section(codec: u8, raw: &[u8], original_payload: &[u8]) -> Result<Vec<u8>, String> {
    match codec {
        0 => Ok(raw.to_vec()),
        1 => compress_with::<compression::Gzip>(raw),
        2 if original_payload.starts_with(XERIAL_MAGIC) => {
            compress_with::<compression::Snappy>(raw)
        }
        2 => snap::raw::Encoder::new()
            .compress_vec(raw)
            .map_err(|error| error.to_string()),
        3 => compress_with::<compression::Lz4>(raw),
        4 => compress_with::<compression::Zstd>(raw),
        codec => Err(format!("unknown compression codec {codec}")),
    }
}

/// Builds a batch from `original`'s header and a new records section.
fn assemble(
    original: &[u8],
    attributes: i16,
    max_timestamp: i64,
    count: i32,
    section: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + section.len());
    out.extend_from_slice(&original[..HEADER_BYTES]);
    out.extend_from_slice(section);
    let batch_length = (out.len() - batch::LENGTH_PREFIX_BYTES) as i32;
    out[BATCH_LENGTH_AT..BATCH_LENGTH_AT + 4].copy_from_slice(&batch_length.to_be_bytes());
    out[ATTRIBUTES_AT..ATTRIBUTES_AT + 2].copy_from_slice(&attributes.to_be_bytes());
    out[MAX_TIMESTAMP_AT..MAX_TIMESTAMP_AT + 8].copy_from_slice(&max_timestamp.to_be_bytes());
    out[RECORD_COUNT_AT..RECORD_COUNT_AT + 4].copy_from_slice(&count.to_be_bytes());
    let crc = batch::compute_crc(&out);
    out[CRC_AT..CRC_AT + 4].copy_from_slice(&crc.to_be_bytes());
    out
}

/// A batch with no records, same offsets as `original` (written when the
/// last batch of a cleaned group lost every record, so the group's offset
/// range stays visible on disk). Uncompressed: there is nothing to compress.
pub fn empty_batch(header: &BatchHeader, original: &[u8]) -> Vec<u8> {
    let attributes = header.attributes & !COMPRESSION_MASK;
    assemble(original, attributes, header.max_timestamp, 0, &[])
}

/// What the cleaner's rules need to decide about one record.
#[derive(Debug)]
pub struct RetainRules<'a> {
    /// Latest offsets of keys in the dirty section.
    pub map: &'a OffsetMap,
    /// Tombstones in batches whose maxTimestamp is below this are removed.
    pub tombstone_horizon_ms: i64,
}

/// The outcome of filtering one batch.
#[derive(Debug)]
pub enum Filtered {
    /// Every record stays: copy the batch bytes as they are.
    Unchanged,
    /// Some records stay: the rebuilt batch, and how many were removed.
    Rewritten(Vec<u8>, u64),
    /// No record stays; how many were removed.
    Empty(u64),
}

/// Applies the compaction rules to one data batch (not a control batch, not
/// one of an aborted transaction: the caller decides those whole). A record
/// stays when it has no key, or no later record of its key is in the map, and
/// it is not a tombstone past the horizon.
pub fn filter_batch(
    header: &BatchHeader,
    original: &[u8],
    rules: &RetainRules<'_>,
) -> Result<Filtered, String> {
    let section = records_section(header, original)?;
    let records = split_records(&section)?;
    let tombstones_expire = header.max_timestamp < rules.tombstone_horizon_ms;
    let mut kept: Vec<&RawRecord<'_>> = Vec::with_capacity(records.len());
    for record in &records {
        let offset = header.base_offset + record.offset_delta;
        let superseded = record
            .key
            .and_then(|key| rules.map.get(key))
            .is_some_and(|latest| latest > offset);
        let expired_tombstone = record.key.is_some() && record.tombstone && tombstones_expire;
        if !superseded && !expired_tombstone {
            kept.push(record);
        }
    }
    let removed = (records.len() - kept.len()) as u64;
    if removed == 0 {
        return Ok(Filtered::Unchanged);
    }
    if kept.is_empty() {
        return Ok(Filtered::Empty(removed));
    }
    let max_timestamp = if header.is_log_append_time() {
        header.max_timestamp
    } else {
        kept.iter()
            .map(|record| header.base_timestamp.saturating_add(record.timestamp_delta))
            .max()
            .unwrap_or(header.max_timestamp)
    };
    let raw: Vec<u8> = kept
        .iter()
        .flat_map(|record| record.bytes.iter().copied())
        .collect();
    let payload = &original[HEADER_BYTES..header.total_bytes()];
    let compressed = compress_section(header.compression(), &raw, payload)?;
    let count = kept.len() as i32;
    Ok(Filtered::Rewritten(
        assemble(
            original,
            header.attributes,
            max_timestamp,
            count,
            &compressed,
        ),
        removed,
    ))
}

/// Calls `each(key, offset)` for every keyed record of a data batch.
pub fn for_each_key(
    header: &BatchHeader,
    original: &[u8],
    mut each: impl FnMut(&[u8], i64),
) -> Result<(), String> {
    let section = records_section(header, original)?;
    for record in split_records(&section)? {
        if let Some(key) = record.key {
            each(key, header.base_offset + record.offset_delta);
        }
    }
    Ok(())
}

/// The marker of a control batch and the coordinator epoch its value
/// carries (see `control`; -1 when the value cannot be read); `None` for a
/// control batch without records or of another control type.
pub fn marker(header: &BatchHeader, original: &[u8]) -> Result<Option<(Marker, i32)>, String> {
    let section = records_section(header, original)?;
    let records = split_records(&section)?;
    let Some(record) = records.first() else {
        return Ok(None);
    };
    let Some(marker) = record
        .key
        .and_then(control::decode_key)
        .and_then(ControlType::marker)
    else {
        return Ok(None);
    };
    let epoch = record
        .value
        .and_then(control::decode_marker_value)
        .unwrap_or(-1);
    Ok(Some((marker, epoch)))
}

/// The marker type of a control batch, from its first record's key (see
/// `control`); `None` for a control batch without records.
pub fn control_type(header: &BatchHeader, original: &[u8]) -> Result<Option<ControlType>, String> {
    let section = records_section(header, original)?;
    let records = split_records(&section)?;
    let Some(record) = records.first() else {
        return Ok(None);
    };
    record
        .key
        .and_then(control::decode_key)
        .map(Some)
        .ok_or_else(|| "control record without a 4-byte key".to_string())
}
