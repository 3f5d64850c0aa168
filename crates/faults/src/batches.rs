//! Which producer wrote each record: the producer id and epoch of every
//! batch of a partition, read with plain Fetch requests (v12) from one
//! broker. librdkafka's consumer does not expose batch headers, and the
//! checker needs them to tell a duplicate the broker let through (two
//! copies in one producer epoch: idempotence broken) from librdkafka
//! re-sending what it could not know was written after it bumped its
//! epoch (two copies in two epochs; docs/FAULTS.md #7).
//!
//! Encoding and decoding are the `kafka-protocol` crate's; this module
//! only frames requests on one blocking connection (the harness is
//! threads, not async) and keeps what it needs of each batch.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::{BufMut as _, Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;

/// The Fetch version: the newest that names topics (v13 uses topic ids).
const FETCH_VERSION: i16 = 12;
/// Bytes asked for per Fetch.
const FETCH_BYTES: i32 = 8 << 20;
/// The largest response accepted.
const RESPONSE_BYTES_MAX: usize = 64 << 20;
/// Read and write timeout of the connection.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// The writer of one batch: producer id and epoch (-1, -1 without one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Writer {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// One batch's offsets and writer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchWriter {
    pub first_offset: i64,
    pub last_offset: i64,
    pub writer: Writer,
}

/// The batches of one partition, in offset order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Writers {
    batches: Vec<BatchWriter>,
}

impl Writers {
    pub fn new(mut batches: Vec<BatchWriter>) -> Writers {
        batches.sort_by_key(|b| b.first_offset);
        Writers { batches }
    }

    /// Batches read.
    pub fn batches(&self) -> usize {
        self.batches.len()
    }

    /// Distinct (producer id, epoch) writers.
    pub fn writer_count(&self) -> usize {
        let writers: std::collections::HashSet<Writer> =
            self.batches.iter().map(|b| b.writer).collect();
        writers.len()
    }

    /// Who wrote the record at `offset`, if a batch read covers it.
    pub fn writer_of(&self, offset: i64) -> Option<Writer> {
        let index = self.batches.partition_point(|b| b.last_offset < offset);
        self.batches
            .get(index)
            .filter(|b| b.first_offset <= offset)
            .map(|b| b.writer)
    }
}

/// Reads the batch headers of `topic`/`partition` from `broker`, from
/// offset 0 up to `end` (the high watermark of the record read), within
/// `timeout`.
pub fn read_writers(
    broker: SocketAddrV4,
    topic: &str,
    partition: i32,
    end: i64,
    timeout: Duration,
) -> anyhow::Result<Writers> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&broker.into(), IO_TIMEOUT)
        .with_context(|| format!("connecting to {broker}"))?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let mut batches = Vec::new();
    let mut next = 0i64;
    let mut correlation = 0i32;
    while next < end {
        if Instant::now() > deadline {
            bail!("{topic}/{partition}: batch headers read to {next} of {end} within {timeout:?}");
        }
        correlation += 1;
        let records = fetch(&mut stream, correlation, topic, partition, next)?;
        let before = next;
        for batch in whole_batches(records) {
            let mut buf = batch;
            for set in RecordBatchDecoder::decode_all(&mut buf)
                .map_err(|e| anyhow::anyhow!("{topic}/{partition}: undecodable batch: {e}"))?
            {
                let (Some(first), Some(last)) = (set.records.first(), set.records.last()) else {
                    continue;
                };
                batches.push(BatchWriter {
                    first_offset: first.offset,
                    last_offset: last.offset,
                    writer: Writer {
                        producer_id: first.producer_id,
                        producer_epoch: first.producer_epoch,
                    },
                });
                next = next.max(last.offset + 1);
            }
        }
        if next == before {
            bail!("{topic}/{partition}: Fetch at {next} returned no batch (end {end})");
        }
    }
    Ok(Writers::new(batches))
}

/// The complete batches of a Fetch response's records (a response may end
/// with part of a batch).
fn whole_batches(mut records: Bytes) -> Vec<Bytes> {
    let mut batches = Vec::new();
    while records.len() >= 12 {
        let length = i32::from_be_bytes([records[8], records[9], records[10], records[11]]);
        let Ok(length) = usize::try_from(length) else {
            break;
        };
        if records.len() < 12 + length {
            break;
        }
        batches.push(records.split_to(12 + length));
    }
    batches
}

fn fetch(
    stream: &mut TcpStream,
    correlation: i32,
    topic: &str,
    partition: i32,
    offset: i64,
) -> anyhow::Result<Bytes> {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_BYTES)
        .with_isolation_level(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(offset)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(FETCH_BYTES)])]);
    let header = RequestHeader::default()
        .with_request_api_key(ApiKey::Fetch as i16)
        .with_request_api_version(FETCH_VERSION)
        .with_correlation_id(correlation)
        .with_client_id(Some(StrBytes::from_static_str("sluice-faults-batches")));
    let mut body = BytesMut::new();
    header
        .encode(
            &mut body,
            ApiKey::Fetch.request_header_version(FETCH_VERSION),
        )
        .map_err(|e| anyhow::anyhow!("encoding the Fetch header: {e}"))?;
    request
        .encode(&mut body, FETCH_VERSION)
        .map_err(|e| anyhow::anyhow!("encoding Fetch: {e}"))?;
    let mut framed = BytesMut::with_capacity(body.len() + 4);
    framed.put_i32(i32::try_from(body.len())?);
    framed.extend_from_slice(&body);
    stream.write_all(&framed)?;

    let mut length = [0u8; 4];
    stream.read_exact(&mut length)?;
    let length = usize::try_from(i32::from_be_bytes(length))?;
    if length > RESPONSE_BYTES_MAX {
        bail!("a Fetch response of {length} bytes");
    }
    let mut response = vec![0u8; length];
    stream.read_exact(&mut response)?;
    let mut response = Bytes::from(response);
    let header = ResponseHeader::decode(
        &mut response,
        ApiKey::Fetch.response_header_version(FETCH_VERSION),
    )
    .map_err(|e| anyhow::anyhow!("decoding the Fetch response header: {e}"))?;
    if header.correlation_id != correlation {
        bail!(
            "Fetch response for correlation id {} (sent {correlation})",
            header.correlation_id
        );
    }
    let decoded = FetchResponse::decode(&mut response, FETCH_VERSION)
        .map_err(|e| anyhow::anyhow!("decoding Fetch: {e}"))?;
    if decoded.error_code != 0 {
        bail!("Fetch failed with error {}", decoded.error_code);
    }
    let Some(data) = decoded
        .responses
        .into_iter()
        .flat_map(|t| t.partitions)
        .find(|p| p.partition_index == partition)
    else {
        bail!("no answer for {topic}/{partition} in the Fetch response");
    };
    if data.error_code != 0 {
        bail!("{topic}/{partition}: Fetch error {}", data.error_code);
    }
    Ok(data.records.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(first: i64, last: i64, epoch: i16) -> BatchWriter {
        BatchWriter {
            first_offset: first,
            last_offset: last,
            writer: Writer {
                producer_id: 7,
                producer_epoch: epoch,
            },
        }
    }

    #[test]
    fn every_offset_of_a_batch_has_its_writer_and_gaps_have_none() {
        let writers = Writers::new(vec![batch(5, 9, 1), batch(0, 3, 0), batch(10, 10, 2)]);
        assert_eq!(writers.writer_of(0).map(|w| w.producer_epoch), Some(0));
        assert_eq!(writers.writer_of(3).map(|w| w.producer_epoch), Some(0));
        assert_eq!(writers.writer_of(4), None);
        assert_eq!(writers.writer_of(9).map(|w| w.producer_epoch), Some(1));
        assert_eq!(writers.writer_of(10).map(|w| w.producer_epoch), Some(2));
        assert_eq!(writers.writer_of(11), None);
    }

    #[test]
    fn a_partial_batch_at_the_end_of_a_response_is_left_out() {
        let mut records = BytesMut::new();
        for length in [20i32, 30] {
            records.put_i64(0);
            records.put_i32(length);
            records.extend_from_slice(&vec![0u8; usize::try_from(length).unwrap()]);
        }
        let whole = records.len();
        records.put_i64(0);
        records.put_i32(50);
        records.extend_from_slice(&[0u8; 10]);
        let batches = whole_batches(records.freeze());
        assert_eq!(batches.len(), 2);
        assert_eq!(batches.iter().map(Bytes::len).sum::<usize>(), whole);
    }
}
