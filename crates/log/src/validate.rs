//! The records inside one client RecordBatch v2, checked before it is
//! appended (Kafka's `LogValidator` for magic 2): the codec is known, a
//! compressed body decompresses, and the walk over the records ends exactly
//! at the end of the (decompressed) records section after `recordCount`
//! records, record i carrying offsetDelta i, every length inside its record.
//! Compacted topics also need a key on every record.
//!
//! Nothing is re-encoded: the batch is stored as produced or refused. Kafka
//! rewrites a compressed batch whose inner offsets are not 0, 1, 2, …; we
//! refuse it (INVALID_RECORD) instead, since our stored batch is the
//! produced batch.
//!
//! Cost. An uncompressed batch is walked in place over the request's bytes
//! with no allocation. A compressed batch is decompressed as a stream into a
//! fixed buffer of `STREAM_BUFFER_BYTES` and walked as it comes; the
//! decompressed body is never held whole (except raw, unframed snappy, whose
//! format has no blocks: its one block is decompressed at once, after its
//! declared length is checked against the bound). The decompressed bytes
//! are bounded by `RecordsCheck::decompressed_bytes_max`, so a small batch
//! that inflates enormously (a zip bomb) is refused after that many bytes
//! rather than decoded to the end; zstd's window is capped to the same
//! bound, since zstd allocates its window up front.

use std::io::{self, BufRead, BufReader, Read};

use crate::batch::{BatchError, BatchHeader, HEADER_BYTES};

/// Read buffer of a decompressing walk.
const STREAM_BUFFER_BYTES: usize = 16 * 1024;
/// The xerial snappy stream magic (Java clients' `SnappyOutputStream`).
const XERIAL_MAGIC: &[u8] = b"\x82SNAPPY\x00";
/// Magic plus the version and compatible-version ints of the xerial header.
const XERIAL_HEADER_BYTES: usize = 16;
/// Raw snappy cannot expand more than about 21× (a 3-byte copy op yields at
/// most 64 bytes); a block declaring more is corrupt, not a bomb.
const SNAPPY_EXPANSION_MAX: u64 = 32;
/// zstd's own default limit on the window (Kafka's too).
const ZSTD_WINDOW_LOG_MAX: u32 = 27;
/// Smallest zstd window limit we ever set (1 KiB).
const ZSTD_WINDOW_LOG_MIN: u32 = 10;

/// What a batch is checked against besides its own header.
#[derive(Clone, Copy, Debug)]
pub struct RecordsCheck {
    /// Every record needs a key (`cleanup.policy` contains `compact`).
    pub keys_required: bool,
    /// Largest decompressed records section a compressed batch may have.
    pub decompressed_bytes_max: u64,
}

/// Checks the records of `batch`, one whole batch whose header (`header`)
/// already passed `batch::validate`. Errors: `UnsupportedCompression`,
/// `CorruptCompressed`, `RecordsTooLarge`, `InvalidRecords`, `MissingKeys`.
pub fn validate_records(
    batch: &[u8],
    header: &BatchHeader,
    check: &RecordsCheck,
) -> Result<(), BatchError> {
    let body = &batch[HEADER_BYTES..header.total_bytes()];
    let codec = header.compression();
    if codec == 0 {
        let mut walker = Walker::new(body);
        return walk(&mut walker, header, check).map_err(WalkError::into_plain);
    }
    let decoder = Decoder::new(codec, body, check.decompressed_bytes_max)?;
    let mut walker = Walker::new(BufReader::with_capacity(
        STREAM_BUFFER_BYTES,
        Bounded {
            inner: decoder,
            remaining: check.decompressed_bytes_max,
        },
    ));
    let outcome = walk(&mut walker, header, check);
    match outcome {
        // A stream that ended cleanly must also be a finished stream (lz4
        // reports a truncated frame only when asked).
        Ok(()) | Err(WalkError::Truncated(_)) => {
            let decoder = walker.source.into_inner().inner;
            decoder.finish().map_err(BatchError::CorruptCompressed)?;
            outcome.map_err(WalkError::into_plain)
        }
        Err(WalkError::Io(error)) => Err(match error.get_ref() {
            Some(inner) if inner.is::<TooLarge>() => BatchError::RecordsTooLarge {
                bytes_max: check.decompressed_bytes_max,
            },
            _ => BatchError::CorruptCompressed(error.to_string()),
        }),
        Err(other) => Err(other.into_plain()),
    }
}

/// Why a walk stopped.
enum WalkError {
    /// The decompressor failed (or the bound was hit).
    Io(io::Error),
    /// The records section ended inside a record or before `recordCount` records.
    Truncated(String),
    /// A record does not decode, or the records disagree with the header.
    Invalid {
        /// What is wrong.
        reason: String,
        /// The record it is wrong in, when it is one record's fault.
        record_index: Option<i32>,
    },
    /// Compacted topic: these records have no key.
    MissingKeys(Vec<i32>),
}

impl WalkError {
    fn into_plain(self) -> BatchError {
        match self {
            WalkError::Io(error) => BatchError::CorruptCompressed(error.to_string()),
            WalkError::Truncated(reason) => BatchError::InvalidRecords {
                reason,
                record_index: None,
            },
            WalkError::Invalid {
                reason,
                record_index,
            } => BatchError::InvalidRecords {
                reason,
                record_index,
            },
            WalkError::MissingKeys(record_indexes) => BatchError::MissingKeys { record_indexes },
        }
    }
}

impl From<io::Error> for WalkError {
    fn from(error: io::Error) -> Self {
        WalkError::Io(error)
    }
}

fn invalid(record_index: i32, reason: String) -> WalkError {
    WalkError::Invalid {
        reason: format!("record {record_index}: {reason}"),
        record_index: Some(record_index),
    }
}

/// A byte source with a count of what was consumed.
struct Walker<R> {
    /// The records section (a slice, or a decompressing reader).
    source: R,
    /// Bytes consumed so far.
    consumed: u64,
}

impl<R: BufRead> Walker<R> {
    fn new(source: R) -> Self {
        Walker {
            source,
            consumed: 0,
        }
    }

    fn byte(&mut self) -> io::Result<Option<u8>> {
        let Some(&byte) = self.source.fill_buf()?.first() else {
            return Ok(None);
        };
        self.source.consume(1);
        self.consumed += 1;
        Ok(Some(byte))
    }

    /// A zigzag varint of at most `bytes_max` bytes (5 for an int, 10 for a
    /// long); `Ok(None)` when the source ends inside it.
    fn varint(&mut self, bytes_max: u32) -> Result<Option<i64>, WalkError> {
        let mut raw: u64 = 0;
        for index in 0..bytes_max {
            let Some(byte) = self.byte()? else {
                return Ok(None);
            };
            raw |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(Some(((raw >> 1) as i64) ^ -((raw & 1) as i64)));
            }
        }
        Err(WalkError::Invalid {
            reason: format!("varint longer than {bytes_max} bytes"),
            record_index: None,
        })
    }

    /// Skips `count` bytes; false when the source ends first.
    fn skip(&mut self, mut count: u64) -> io::Result<bool> {
        while count > 0 {
            let available = self.source.fill_buf()?.len();
            if available == 0 {
                return Ok(false);
            }
            let step = available.min(usize::try_from(count).unwrap_or(usize::MAX));
            self.source.consume(step);
            self.consumed += step as u64;
            count -= step as u64;
        }
        Ok(true)
    }

    fn at_end(&mut self) -> io::Result<bool> {
        Ok(self.source.fill_buf()?.is_empty())
    }
}

/// Walks `header.record_count` records and checks that nothing follows.
fn walk<R: BufRead>(
    walker: &mut Walker<R>,
    header: &BatchHeader,
    check: &RecordsCheck,
) -> Result<(), WalkError> {
    let count = header.record_count;
    let mut missing_keys = Vec::new();
    for index in 0..count {
        let Some(length) = walker.varint(5)? else {
            return Err(WalkError::Truncated(format!(
                "the records end after {index} of recordCount {count} records"
            )));
        };
        let length = u64::try_from(length)
            .map_err(|_| invalid(index, format!("negative record length {length}")))?;
        let end = walker.consumed + length;
        let has_key = record_body(walker, index, end)?;
        if walker.consumed != end {
            return Err(invalid(
                index,
                format!(
                    "its fields take {} bytes, its length says {length}",
                    length + walker.consumed - end
                ),
            ));
        }
        if check.keys_required && !has_key {
            missing_keys.push(index);
        }
    }
    if !walker.at_end()? {
        return Err(WalkError::Invalid {
            reason: format!("bytes remain after recordCount {count} records"),
            record_index: None,
        });
    }
    if !missing_keys.is_empty() {
        return Err(WalkError::MissingKeys(missing_keys));
    }
    Ok(())
}

/// One record's fields after its length, up to `end`; whether it has a key.
fn record_body<R: BufRead>(
    walker: &mut Walker<R>,
    index: i32,
    end: u64,
) -> Result<bool, WalkError> {
    let truncated = || WalkError::Truncated(format!("record {index} is cut short"));
    // attributes (int8, unused), timestampDelta (varlong), offsetDelta (varint).
    walker.byte()?.ok_or_else(truncated)?;
    walker.varint(10)?.ok_or_else(truncated)?;
    let offset_delta = walker.varint(5)?.ok_or_else(truncated)?;
    if offset_delta != i64::from(index) {
        return Err(invalid(index, format!("offsetDelta {offset_delta}")));
    }
    let key = field(walker, index, end, "key")?;
    field(walker, index, end, "value")?;
    let headers = walker.varint(5)?.ok_or_else(truncated)?;
    if headers < 0 {
        return Err(invalid(index, format!("header count {headers}")));
    }
    for _ in 0..headers {
        // Each header takes at least two bytes: a count past the record end
        // is caught by the first length that does not fit.
        if walker.consumed >= end {
            return Err(invalid(index, "headers past the record end".to_string()));
        }
        if !field(walker, index, end, "header key")? {
            return Err(invalid(index, "null header key".to_string()));
        }
        field(walker, index, end, "header value")?;
    }
    Ok(key)
}

/// A varint length and that many bytes (-1: null, `false`), within `end`.
fn field<R: BufRead>(
    walker: &mut Walker<R>,
    index: i32,
    end: u64,
    name: &str,
) -> Result<bool, WalkError> {
    let truncated = || WalkError::Truncated(format!("record {index} is cut short"));
    let length = walker.varint(5)?.ok_or_else(truncated)?;
    if length == -1 {
        return Ok(false);
    }
    let length =
        u64::try_from(length).map_err(|_| invalid(index, format!("{name} length {length}")))?;
    if walker.consumed + length > end {
        return Err(invalid(
            index,
            format!("{name} of {length} bytes runs past the record end"),
        ));
    }
    if !walker.skip(length)? {
        return Err(truncated());
    }
    Ok(true)
}

/// Marks the io error of a decompressed stream that passed its bound.
#[derive(Debug)]
struct TooLarge;

impl std::fmt::Display for TooLarge {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("decompressed records over the bound")
    }
}

impl std::error::Error for TooLarge {}

fn too_large() -> io::Error {
    io::Error::other(TooLarge)
}

/// A reader that fails with `TooLarge` once more than `remaining` bytes came.
struct Bounded<R> {
    /// The decompressor.
    inner: R,
    /// Bytes still allowed.
    remaining: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.remaining = self
            .remaining
            .checked_sub(read as u64)
            .ok_or_else(too_large)?;
        Ok(read)
    }
}

/// A streaming decompressor of one codec over a batch's records section.
enum Decoder<'a> {
    /// Codec 1. Concatenated gzip members are read as one stream, as Java's
    /// `GZIPInputStream` does.
    Gzip(flate2::read::MultiGzDecoder<&'a [u8]>),
    /// Codec 2, both framings.
    Snappy(SnappyReader<'a>),
    /// Codec 3 (LZ4 frame format).
    Lz4(lz4::Decoder<&'a [u8]>),
    /// Codec 4.
    Zstd(zstd::stream::read::Decoder<'static, &'a [u8]>),
}

impl<'a> Decoder<'a> {
    fn new(codec: u8, body: &'a [u8], bytes_max: u64) -> Result<Decoder<'a>, BatchError> {
        let corrupt = |error: io::Error| BatchError::CorruptCompressed(error.to_string());
        Ok(match codec {
            1 => Decoder::Gzip(flate2::read::MultiGzDecoder::new(body)),
            2 => Decoder::Snappy(SnappyReader::new(body, bytes_max)?),
            3 => Decoder::Lz4(lz4::Decoder::new(body).map_err(corrupt)?),
            4 => {
                if zstd_window_bytes(body).is_some_and(|window| window > bytes_max) {
                    return Err(BatchError::RecordsTooLarge { bytes_max });
                }
                let mut decoder =
                    zstd::stream::read::Decoder::with_buffer(body).map_err(corrupt)?;
                decoder
                    .window_log_max(window_log_for(bytes_max))
                    .map_err(corrupt)?;
                Decoder::Zstd(decoder)
            }
            codec => return Err(BatchError::UnsupportedCompression(codec)),
        })
    }

    /// Whether the compressed stream was complete (only lz4 needs asking).
    fn finish(self) -> Result<(), String> {
        match self {
            Decoder::Lz4(decoder) => decoder.finish().1.map_err(|error| error.to_string()),
            Decoder::Gzip(_) | Decoder::Snappy(_) | Decoder::Zstd(_) => Ok(()),
        }
    }
}

impl Read for Decoder<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Gzip(decoder) => decoder.read(buffer),
            Decoder::Snappy(decoder) => decoder.read(buffer),
            Decoder::Lz4(decoder) => decoder.read(buffer),
            Decoder::Zstd(decoder) => decoder.read(buffer),
        }
    }
}

/// The memory a zstd frame asks for (RFC 8878 §3.1.1.1): its window, or its
/// content size when it is a single segment; `None` when the header is too
/// short to tell (the decoder then reports it).
fn zstd_window_bytes(body: &[u8]) -> Option<u64> {
    const ZSTD_MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];
    if body.get(..4)? != ZSTD_MAGIC {
        return None;
    }
    let descriptor = *body.get(4)?;
    let single_segment = descriptor & 0x20 != 0;
    if !single_segment {
        let window = *body.get(5)?;
        let window_log = 10 + u32::from(window >> 3);
        let base = 1u64 << window_log;
        return Some(base + (base / 8) * u64::from(window & 7));
    }
    // Single segment: no window descriptor; the content size follows the
    // dictionary id, 1, 2, 4 or 8 bytes (2 bytes are stored minus 256).
    let dictionary_bytes = [0usize, 1, 2, 4][usize::from(descriptor & 3)];
    let size_bytes = [1usize, 2, 4, 8][usize::from(descriptor >> 6)];
    let at = 5 + dictionary_bytes;
    let raw = body.get(at..at + size_bytes)?;
    let mut size = [0u8; 8];
    size[..size_bytes].copy_from_slice(raw);
    let size = u64::from_le_bytes(size);
    Some(if size_bytes == 2 { size + 256 } else { size })
}

/// log2 of the zstd window allowed: the bound's, within zstd's limits.
fn window_log_for(bytes_max: u64) -> u32 {
    let log = u64::BITS - bytes_max.max(1).saturating_sub(1).leading_zeros();
    log.clamp(ZSTD_WINDOW_LOG_MIN, ZSTD_WINDOW_LOG_MAX)
}

/// Snappy as Kafka clients write it: xerial framing (`\x82SNAPPY\0`, two
/// ints, then blocks of a u32 length and a raw snappy block) or one raw block.
struct SnappyReader<'a> {
    /// Compressed bytes not yet decompressed.
    rest: &'a [u8],
    /// Xerial framing (blocks) rather than one raw block.
    framed: bool,
    /// The current decompressed block.
    block: Vec<u8>,
    /// Read position in `block`.
    at: usize,
    /// Decompressed bytes still allowed (checked before each block is decoded).
    remaining: u64,
}

impl<'a> SnappyReader<'a> {
    fn new(body: &'a [u8], bytes_max: u64) -> Result<SnappyReader<'a>, BatchError> {
        let framed = body.starts_with(XERIAL_MAGIC);
        let rest = if framed {
            body.get(XERIAL_HEADER_BYTES..).ok_or_else(|| {
                BatchError::CorruptCompressed("truncated xerial snappy header".to_string())
            })?
        } else {
            body
        };
        Ok(SnappyReader {
            rest,
            framed,
            block: Vec::new(),
            at: 0,
            remaining: bytes_max,
        })
    }

    /// Decompresses the next block into `block`; false at the end.
    fn next_block(&mut self) -> io::Result<bool> {
        if self.rest.is_empty() {
            return Ok(false);
        }
        let compressed = if self.framed {
            let Some((length, rest)) = self.rest.split_first_chunk::<4>() else {
                return Err(io::Error::other("truncated xerial snappy block length"));
            };
            let length = u32::from_be_bytes(*length) as usize;
            let block = rest
                .get(..length)
                .ok_or_else(|| io::Error::other("xerial snappy block past the end"))?;
            self.rest = &rest[length..];
            block
        } else {
            std::mem::take(&mut self.rest)
        };
        let declared = snap::raw::decompress_len(compressed).map_err(io::Error::other)? as u64;
        if declared > (compressed.len() as u64).saturating_mul(SNAPPY_EXPANSION_MAX) {
            return Err(io::Error::other(format!(
                "snappy block of {} bytes declares {declared} bytes",
                compressed.len()
            )));
        }
        self.remaining = self.remaining.checked_sub(declared).ok_or_else(too_large)?;
        self.block.resize(declared as usize, 0);
        let written = snap::raw::Decoder::new()
            .decompress(compressed, &mut self.block)
            .map_err(io::Error::other)?;
        self.block.truncate(written);
        self.at = 0;
        Ok(true)
    }
}

impl Read for SnappyReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        while self.at == self.block.len() {
            if !self.next_block()? {
                return Ok(0);
            }
        }
        let count = buffer.len().min(self.block.len() - self.at);
        buffer[..count].copy_from_slice(&self.block[self.at..self.at + count]);
        self.at += count;
        Ok(count)
    }
}
