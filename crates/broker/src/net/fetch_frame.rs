//! Fetch responses without copying the records: the response is encoded by
//! kafka-protocol with every partition's records emptied, and the frame goes
//! out as chunks — the encoded bytes up to a records field, that field's
//! length prefix, the records `Bytes` as read from the log, and so on —
//! written with one vectored write. kafka-protocol has no way to encode a
//! message around borrowed bytes, hence this splice; its result is checked
//! byte for byte against kafka-protocol's own encoding in the tests below,
//! and any response it cannot splice safely falls back to that encoding.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{FetchResponse, ResponseHeader};
use kafka_protocol::protocol::Encodable;
use sluice_log::{FileRange, FileRecords};
use tokio::io::{AsyncWriteExt as _, Interest};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;

/// First Fetch version with flexible encoding (compact lengths, tagged fields).
const FLEXIBLE_FROM: i16 = 12;

/// Byte chunks in memory, written with vectored writes.
#[derive(Debug, Default)]
pub struct MemoryChunks {
    chunks: VecDeque<Bytes>,
    remaining: usize,
}

impl MemoryChunks {
    fn push(&mut self, chunk: Bytes) {
        if !chunk.is_empty() {
            self.remaining += chunk.len();
            self.chunks.push_back(chunk);
        }
    }
}

impl Buf for MemoryChunks {
    fn remaining(&self) -> usize {
        self.remaining
    }

    fn chunk(&self) -> &[u8] {
        self.chunks.front().map_or(&[], |chunk| &chunk[..])
    }

    fn advance(&mut self, mut count: usize) {
        while count > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            let step = count.min(front.len());
            front.advance(step);
            self.remaining -= step;
            count -= step;
            if front.is_empty() {
                self.chunks.pop_front();
            }
        }
    }

    fn chunks_vectored<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut filled = 0;
        for (slot, chunk) in slices.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(chunk);
            filled += 1;
        }
        filled
    }
}

/// One part of a frame: bytes in memory, or a range of a segment file.
#[derive(Debug)]
enum Part {
    Memory(MemoryChunks),
    File(FileRange),
}

/// A response frame as parts written in order: the encoded bytes and any
/// records read into memory with vectored writes, records still in the
/// segment files with `sendfile(2)` (page cache to socket, no copy in user
/// space).
#[derive(Debug, Default)]
pub struct Chunks {
    parts: Vec<Part>,
    len: usize,
}

impl Chunks {
    fn push(&mut self, chunk: Bytes) {
        if chunk.is_empty() {
            return;
        }
        self.len += chunk.len();
        if let Some(Part::Memory(memory)) = self.parts.last_mut() {
            memory.push(chunk);
        } else {
            let mut memory = MemoryChunks::default();
            memory.push(chunk);
            self.parts.push(Part::Memory(memory));
        }
    }

    fn push_file(&mut self, range: FileRange) {
        if range.len > 0 {
            self.len += range.len;
            self.parts.push(Part::File(range));
        }
    }

    /// Bytes in the whole frame.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The whole frame in one buffer (tests).
    pub fn to_vec(&self) -> std::io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(self.len);
        for part in &self.parts {
            match part {
                Part::Memory(memory) => {
                    for chunk in &memory.chunks {
                        out.extend_from_slice(chunk);
                    }
                }
                Part::File(range) => out.extend_from_slice(
                    &range
                        .read_to_bytes()
                        .map_err(|e| std::io::Error::other(e.to_string()))?,
                ),
            }
        }
        Ok(out)
    }

    /// Writes the frame to a plain TCP connection: memory parts with
    /// vectored writes, file ranges with `sendfile` (through rustix's safe
    /// wrapper; tokio has no sendfile). A file range that ends early (its
    /// file shrank) is an error: the frame's length is promised, so the
    /// connection must close.
    pub async fn write_to(self, stream: &mut OwnedWriteHalf) -> std::io::Result<()> {
        for part in self.parts {
            match part {
                Part::Memory(mut memory) => stream.write_all_buf(&mut memory).await?,
                Part::File(range) => send_file(stream.as_ref(), &range).await?,
            }
        }
        Ok(())
    }
}

/// `sendfile(2)` of one range to a non-blocking socket, waiting for
/// writability as tokio's own writes do.
async fn send_file(socket: &TcpStream, range: &FileRange) -> std::io::Result<()> {
    let mut offset = range.position;
    let mut left = range.len;
    while left > 0 {
        socket.writable().await?;
        let sent = socket.try_io(Interest::WRITABLE, || {
            rustix::fs::sendfile(socket, &*range.file, Some(&mut offset), left)
                .map_err(std::io::Error::from)
        });
        match sent {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!(
                        "{}: {left} bytes of a fetched range are gone",
                        range.path.display()
                    ),
                ))
            }
            Ok(count) => left -= count,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// A Fetch response's records left in the segment files: ((topic index,
/// partition index) in the response, records), in no particular order.
pub type InFiles = Vec<((usize, usize), FileRecords)>;

/// One partition's records as taken out of the response.
enum Taken {
    Memory(Bytes),
    Files(FileRecords),
}

impl Taken {
    fn len(&self) -> usize {
        match self {
            Taken::Memory(bytes) => bytes.len(),
            Taken::Files(files) => files.len(),
        }
    }
}

/// The response with its file records read into memory (when it cannot be
/// spliced): a range that cannot be read fails its partition with
/// KAFKA_STORAGE_ERROR, as a read error does.
pub fn with_records_read(mut response: FetchResponse, files: InFiles) -> FetchResponse {
    for ((t, p), records) in files {
        let Some(partition) = response
            .responses
            .get_mut(t)
            .and_then(|topic| topic.partitions.get_mut(p))
        else {
            continue;
        };
        match records.read_to_bytes() {
            Ok(bytes) => partition.records = Some(bytes),
            Err(error) => {
                tracing::warn!(%error, "reading fetched records failed");
                partition.records = Some(Bytes::new());
                partition.error_code = crate::error_codes::KAFKA_STORAGE_ERROR;
            }
        }
    }
    response
}

/// Whether a partition's tagged fields are all absent (then its tagged
/// section is the single byte 0 in flexible versions).
fn no_tagged_fields(partition: &PartitionData) -> bool {
    let defaults = PartitionData::default();
    partition.diverging_epoch == defaults.diverging_epoch
        && partition.current_leader == defaults.current_leader
        && partition.snapshot_id == defaults.snapshot_id
        && partition.unknown_tagged_fields.is_empty()
}

fn varint_len(mut value: u32) -> usize {
    let mut len = 1;
    while value >= 0x80 {
        value >>= 7;
        len += 1;
    }
    len
}

fn put_varint(out: &mut BytesMut, mut value: u32) {
    while value >= 0x80 {
        out.put_u8((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.put_u8(value as u8);
}

/// Size of an array's length prefix.
fn array_prefix_len(version: i16, count: usize) -> usize {
    if version >= FLEXIBLE_FROM {
        varint_len(count as u32 + 1)
    } else {
        4
    }
}

/// Encodes a complete Fetch response frame (length prefix included) as
/// chunks whose records are the log's own `Bytes`, or the ranges of the
/// segment files in `files` (((topic index, partition index), records),
/// whose records field in `response` is empty). Gives the response back
/// (with the file records read into it) when it cannot be spliced (nothing
/// to splice, a tagged field next to records, an encoding error): the
/// caller then encodes it the usual way.
pub fn encode(
    correlation_id: i32,
    header_version: i16,
    version: i16,
    mut response: FetchResponse,
    mut files: InFiles,
) -> Result<Chunks, FetchResponse> {
    let flexible = version >= FLEXIBLE_FROM;
    let spliceable = |response: &FetchResponse| {
        let mut any = false;
        for (t, topic) in response.responses.iter().enumerate() {
            let mut topic_any = false;
            for (p, partition) in topic.partitions.iter().enumerate() {
                let len = files
                    .iter()
                    .find(|(at, _)| *at == (t, p))
                    .map(|(_, f)| f.len())
                    .or_else(|| partition.records.as_ref().map(Bytes::len))
                    .unwrap_or(0);
                if len > 0 {
                    if !no_tagged_fields(partition) || len >= i32::MAX as usize {
                        return false;
                    }
                    topic_any = true;
                }
            }
            if flexible && !topic.unknown_tagged_fields.is_empty() {
                return false;
            }
            any |= topic_any;
        }
        any
    };
    if !spliceable(&response) {
        return Err(with_records_read(response, files));
    }
    // Take the records out, in encoding order.
    let mut taken: Vec<Taken> = Vec::new();
    let mut emptied: Vec<(usize, usize)> = Vec::new();
    for (t, topic) in response.responses.iter_mut().enumerate() {
        for (p, partition) in topic.partitions.iter_mut().enumerate() {
            if let Some(index) = files.iter().position(|(at, _)| *at == (t, p)) {
                let (_, records) = files.swap_remove(index);
                partition.records = Some(Bytes::new());
                taken.push(Taken::Files(records));
                emptied.push((t, p));
            } else if let Some(records) = partition.records.as_mut().filter(|r| !r.is_empty()) {
                taken.push(Taken::Memory(std::mem::take(records)));
                emptied.push((t, p));
            }
        }
    }
    let lens: Vec<usize> = taken.iter().map(Taken::len).collect();
    match splice(
        correlation_id,
        header_version,
        version,
        &response,
        &emptied,
        &lens,
    ) {
        Some(encoded) => Ok(encoded.assemble(taken, flexible)),
        None => {
            let mut files = Vec::new();
            for ((t, p), records) in emptied.into_iter().zip(taken) {
                match records {
                    Taken::Memory(bytes) => {
                        response.responses[t].partitions[p].records = Some(bytes)
                    }
                    Taken::Files(records) => files.push(((t, p), records)),
                }
            }
            Err(with_records_read(response, files))
        }
    }
}

/// The response encoded with emptied records, and where each emptied
/// records field (its empty length prefix) starts.
struct Spliced {
    encoded: BytesMut,
    positions: Vec<usize>,
}

impl Spliced {
    fn assemble(self, taken: Vec<Taken>, flexible: bool) -> Chunks {
        let empty_prefix_len = if flexible { 1 } else { 4 };
        let mut encoded = self.encoded;
        let added: usize = taken
            .iter()
            .map(|records| records.len() + prefix_len(records.len(), flexible))
            .sum();
        let total = encoded.len() - self.positions.len() * empty_prefix_len + added;
        let frame_len = (total - 4) as i32;
        encoded[0..4].copy_from_slice(&frame_len.to_be_bytes());
        let encoded = encoded.freeze();
        let mut chunks = Chunks::default();
        let mut from = 0;
        for (at, records) in self.positions.into_iter().zip(taken) {
            chunks.push(encoded.slice(from..at));
            let mut prefix = BytesMut::with_capacity(5);
            if flexible {
                put_varint(&mut prefix, records.len() as u32 + 1);
            } else {
                prefix.put_i32(records.len() as i32);
            }
            chunks.push(prefix.freeze());
            match records {
                Taken::Memory(bytes) => chunks.push(bytes),
                Taken::Files(files) => {
                    for range in files.ranges {
                        chunks.push_file(range);
                    }
                }
            }
            from = at + empty_prefix_len;
        }
        chunks.push(encoded.slice(from..));
        chunks
    }
}

fn prefix_len(len: usize, flexible: bool) -> usize {
    if flexible {
        varint_len(len as u32 + 1)
    } else {
        4
    }
}

/// Encodes `response` (records already emptied) and finds the emptied
/// fields with the encoder's own sizes; `None` if anything does not add up.
fn splice(
    correlation_id: i32,
    header_version: i16,
    version: i16,
    response: &FetchResponse,
    emptied: &[(usize, usize)],
    taken: &[usize],
) -> Option<Spliced> {
    let flexible = version >= FLEXIBLE_FROM;
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let header_len = header.compute_size(header_version).ok()?;
    let mut encoded = BytesMut::new();
    encoded.put_i32(0);
    header.encode(&mut encoded, header_version).ok()?;
    response.encode(&mut encoded, version).ok()?;
    let empty_prefix: &[u8] = if flexible { &[1] } else { &[0, 0, 0, 0] };
    let partition_tail = usize::from(flexible);
    let topic_tail = usize::from(flexible);

    let mut positions = Vec::with_capacity(taken.len());
    let mut next = emptied.iter().peekable();
    let mut position = 4 + header_len;
    position += if version >= 1 { 4 } else { 0 } + if version >= 7 { 6 } else { 0 };
    position += array_prefix_len(version, response.responses.len());
    for (t, topic) in response.responses.iter().enumerate() {
        // The topic's own field (name, or id from v13) and the partitions'
        // array prefix come first, its (empty) tagged section last.
        let name_len = if version >= 13 {
            16
        } else {
            let len = topic.topic.0.len();
            len + if flexible {
                varint_len(len as u32 + 1)
            } else {
                2
            }
        };
        let mut at = position + name_len + array_prefix_len(version, topic.partitions.len());
        for (p, partition) in topic.partitions.iter().enumerate() {
            let len = partition.compute_size(version).ok()?;
            if next.peek() == Some(&&(t, p)) {
                next.next();
                // A partition ends with its records field and, in flexible
                // versions, its (empty) tagged section.
                positions.push(at + len - partition_tail - empty_prefix.len());
            }
            at += len;
        }
        position = at + topic_tail;
    }
    if positions.len() != taken.len() {
        return None;
    }
    for &at in &positions {
        if encoded.get(at..at + empty_prefix.len()) != Some(empty_prefix) {
            tracing::warn!(
                at,
                "fetch frame splice position check failed; encoding normally"
            );
            return None;
        }
    }
    let total: usize = encoded.len() - positions.len() * empty_prefix.len()
        + taken
            .iter()
            .map(|len| len + prefix_len(*len, flexible))
            .sum::<usize>();
    i32::try_from(total - 4).ok()?;
    Some(Spliced { encoded, positions })
}

#[cfg(test)]
mod tests {
    use kafka_protocol::messages::fetch_response::{
        AbortedTransaction, FetchableTopicResponse, LeaderIdAndEpoch, NodeEndpoint,
    };
    use kafka_protocol::messages::{BrokerId, ProducerId, TopicName};
    use kafka_protocol::protocol::StrBytes;

    use super::*;

    /// A small deterministic generator (no dependency needed).
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn records(rng: &mut Rng) -> Option<Bytes> {
        // Sizes around every varint and length boundary.
        let len = match rng.below(6) {
            0 => return None,
            1 => 0,
            2 => rng.below(126) as usize + 1,
            3 => 127 + rng.below(3) as usize,
            4 => 16_383 + rng.below(3) as usize,
            _ => rng.below(300_000) as usize,
        };
        let seed = rng.next() as u8;
        Some(Bytes::from(
            (0..len)
                .map(|i| (i as u8).wrapping_mul(31) ^ seed)
                .collect::<Vec<_>>(),
        ))
    }

    fn response(rng: &mut Rng, version: i16) -> FetchResponse {
        let mut response = FetchResponse::default();
        if version >= 1 {
            response.throttle_time_ms = rng.below(1000) as i32;
        }
        if version >= 7 {
            response.error_code = 0;
            response.session_id = rng.below(5) as i32;
        }
        for t in 0..rng.below(4) as usize + 1 {
            let mut topic = FetchableTopicResponse::default();
            if version >= 13 {
                topic.topic_id = uuid::Uuid::from_u128(u128::from(rng.next()));
            } else {
                let name = "t".repeat(1 + t * 50 + rng.below(200) as usize);
                topic.topic = TopicName(StrBytes::from_string(name));
            }
            for p in 0..rng.below(5) as usize + 1 {
                let mut partition = PartitionData::default()
                    .with_partition_index(p as i32)
                    .with_high_watermark(rng.below(1 << 40) as i64)
                    .with_last_stable_offset(rng.below(1 << 40) as i64)
                    .with_records(records(rng));
                if version >= 5 {
                    partition.log_start_offset = rng.below(1000) as i64;
                }
                if version >= 11 {
                    partition.preferred_read_replica = BrokerId(-1);
                }
                if rng.below(3) == 0 {
                    partition.aborted_transactions = Some(
                        (0..rng.below(3))
                            .map(|i| {
                                AbortedTransaction::default()
                                    .with_producer_id(ProducerId(i as i64))
                                    .with_first_offset(rng.below(100) as i64)
                            })
                            .collect(),
                    );
                }
                if version >= 12 && rng.below(8) == 0 {
                    // A tagged field: such a partition is never spliced.
                    partition.current_leader = LeaderIdAndEpoch::default()
                        .with_leader_id(BrokerId(1))
                        .with_leader_epoch(3);
                }
                topic.partitions.push(partition);
            }
            response.responses.push(topic);
        }
        if version >= 16 && rng.below(3) == 0 {
            response.node_endpoints.push(
                NodeEndpoint::default()
                    .with_node_id(BrokerId(1))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(9092),
            );
        }
        response
    }

    /// kafka-protocol's own frame, as `dispatch::encode` builds it.
    fn reference(
        correlation_id: i32,
        header_version: i16,
        version: i16,
        body: &FetchResponse,
    ) -> Vec<u8> {
        let mut out = BytesMut::new();
        out.put_i32(0);
        ResponseHeader::default()
            .with_correlation_id(correlation_id)
            .encode(&mut out, header_version)
            .expect("header encodes");
        body.encode(&mut out, version).expect("body encodes");
        let length = (out.len() - 4) as i32;
        out[0..4].copy_from_slice(&length.to_be_bytes());
        out.to_vec()
    }

    #[test]
    fn spliced_frames_equal_kafka_protocols_encoding() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut spliced = 0;
        for version in 4..=17i16 {
            let header_version = if version >= FLEXIBLE_FROM { 1 } else { 0 };
            for case in 0..60 {
                let body = response(&mut rng, version);
                let expected = reference(case, header_version, version, &body);
                match encode(case, header_version, version, body.clone(), Vec::new()) {
                    Err(returned) => {
                        assert!(
                            returned == body,
                            "v{version} case {case}: response not given back whole"
                        );
                        // Nothing to splice, or a tagged field on a partition
                        // with records: the caller encodes normally.
                        let has_records = body
                            .responses
                            .iter()
                            .flat_map(|t| &t.partitions)
                            .any(|p| p.records.as_ref().is_some_and(|r| !r.is_empty()));
                        let tagged = body.responses.iter().flat_map(|t| &t.partitions).any(|p| {
                            !no_tagged_fields(p)
                                && p.records.as_ref().is_some_and(|r| !r.is_empty())
                        });
                        assert!(
                            !has_records || tagged,
                            "v{version} case {case}: not spliced"
                        );
                    }
                    Ok(chunks) => {
                        spliced += 1;
                        assert_eq!(chunks.len(), expected.len(), "v{version} case {case}");
                        assert!(
                            chunks.to_vec().expect("memory only") == expected,
                            "v{version} case {case}: bytes differ"
                        );
                    }
                }
            }
        }
        assert!(spliced > 400, "only {spliced} responses were spliced");
    }

    /// The records of `body` moved into one temporary file: the response
    /// with emptied records and the file ranges in their place (every other
    /// partition with records; a partition's records split in two ranges
    /// when long enough).
    fn into_files(
        body: &FetchResponse,
        file: &std::sync::Arc<std::fs::File>,
        path: &std::path::Path,
    ) -> (FetchResponse, InFiles) {
        use std::os::unix::fs::FileExt as _;
        let mut response = body.clone();
        let mut files = Vec::new();
        let mut position = 0u64;
        let mut alternate = false;
        for (t, topic) in response.responses.iter_mut().enumerate() {
            for (p, partition) in topic.partitions.iter_mut().enumerate() {
                let Some(records) = partition.records.as_ref().filter(|r| !r.is_empty()) else {
                    continue;
                };
                alternate = !alternate;
                if !alternate {
                    continue;
                }
                file.write_all_at(records, position).expect("write");
                let split = records.len() / 2;
                let ranges = [
                    (position, split),
                    (position + split as u64, records.len() - split),
                ]
                .into_iter()
                .filter(|(_, len)| *len > 0)
                .map(|(position, len)| FileRange {
                    file: file.clone(),
                    path: path.to_path_buf(),
                    position,
                    len,
                })
                .collect();
                position += records.len() as u64;
                files.push(((t, p), FileRecords::new(ranges)));
                partition.records = Some(Bytes::new());
            }
        }
        (response, files)
    }

    #[test]
    fn frames_with_records_in_files_equal_kafka_protocols_encoding() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        let mut with_files = 0;
        for version in 4..=17i16 {
            let header_version = if version >= FLEXIBLE_FROM { 1 } else { 0 };
            for case in 0..30 {
                let body = response(&mut rng, version);
                let expected = reference(case, header_version, version, &body);
                let path = dir.path().join(format!("v{version}-{case}.log"));
                let file = std::sync::Arc::new(std::fs::File::create_new(&path).expect("file"));
                let (emptied, files) = into_files(&body, &file, &path);
                let had_files = !files.is_empty();
                match encode(case, header_version, version, emptied, files) {
                    // Given back with the file records read in: the body.
                    Err(returned) => assert!(returned == body, "v{version} case {case}"),
                    Ok(chunks) => {
                        with_files += usize::from(had_files);
                        assert_eq!(chunks.len(), expected.len(), "v{version} case {case}");
                        assert!(
                            chunks.to_vec().expect("ranges read") == expected,
                            "v{version} case {case}: bytes differ"
                        );
                    }
                }
            }
        }
        assert!(with_files > 150, "only {with_files} frames had file ranges");
    }

    /// A frame with memory parts and file ranges goes over a real socket
    /// byte for byte (vectored writes, then sendfile, then more bytes).
    #[tokio::test]
    async fn a_frame_with_file_ranges_arrives_whole_over_tcp() {
        use std::os::unix::fs::FileExt as _;
        use tokio::io::AsyncReadExt as _;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("segment.log");
        let file = std::sync::Arc::new(std::fs::File::create_new(&path).expect("file"));
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        file.write_all_at(&payload, 0).expect("write");
        let mut chunks = Chunks::default();
        chunks.push(Bytes::from_static(b"head"));
        for (position, len) in [(0u64, 1_000_000usize), (1_000_000, 2_000_000)] {
            chunks.push_file(FileRange {
                file: file.clone(),
                path: path.clone(),
                position,
                len,
            });
            chunks.push(Bytes::from_static(b"|"));
        }
        let expected = chunks.to_vec().expect("ranges read");
        assert_eq!(expected.len(), 4 + 3_000_000 + 2);

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let address = listener.local_addr().expect("address");
        let reader = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut received = Vec::new();
            socket.read_to_end(&mut received).await.expect("read");
            received
        });
        let stream = TcpStream::connect(address).await.expect("connect");
        let (_read, mut write) = stream.into_split();
        chunks.write_to(&mut write).await.expect("written");
        write.shutdown().await.expect("shutdown");
        drop(write);
        let received = reader.await.expect("reader");
        assert!(received == expected, "{} bytes received", received.len());
    }

    #[test]
    fn chunks_advance_across_boundaries_and_fill_io_slices() {
        let mut chunks = MemoryChunks::default();
        for part in [&b"abc"[..], b"", b"defgh", b"i"] {
            chunks.push(Bytes::copy_from_slice(part));
        }
        assert_eq!(chunks.remaining(), 9);
        let mut slices = [IoSlice::new(&[]); 8];
        assert_eq!(chunks.chunks_vectored(&mut slices), 3);
        chunks.advance(4);
        assert_eq!(chunks.chunk(), b"efgh");
        chunks.advance(5);
        assert_eq!(chunks.remaining(), 0);
        assert!(chunks.chunk().is_empty());
    }
}
