//! `consume --client raw`: a consumer that speaks the Kafka protocol itself,
//! so a drain measures the broker's fetch path rather than librdkafka's
//! record parsing.
//!
//! Each connection (`--connections`, partitions dealt out in turn) sends
//! Fetch requests (v11, encoded with kafka-protocol) for all its partitions
//! that have not reached their target. A response's records are not
//! decoded: the client walks the batch headers only (base offset, length,
//! last offset delta, record count) to count records and bytes and find the
//! next offset. One Fetch is outstanding per connection: a partition's next
//! fetch offset is known only from the previous answer, as for any Kafka
//! consumer, so the pipeline is across connections, and each answer carries
//! up to `--fetch-bytes` per partition.
//!
//! Bytes counted are whole record batches as the broker sends them (batch
//! and record headers included, about 1 % over the values for 1 KiB
//! records), where the librdkafka consumer counts keys and values.
//! Each connection talks to one leader about the partitions it leads
//! (`raw_route`).
//!
//! `tail` is e2e's raw consumer: from given offsets, long-polling Fetch
//! requests, and the records of each answer decoded (kafka-protocol's
//! decoder) so that e2e can read each value's stamp.

use std::io::Write;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, FetchRequest, FetchResponse, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};
use kafka_protocol::records::RecordBatchDecoder;

use super::progress::Counters;
use super::raw_route::Route;

/// The Fetch version: v11, the last before flexible versions (topic
/// names; v13 uses topic ids). Not v12: Tansu 0.6.0 answers v12 with a
/// tagged field that version does not have (tag 0, which kafka-protocol's
/// decoder rightly refuses), and the same client must measure both.
const FETCH_VERSION: i16 = 11;
/// Largest response frame the client accepts.
const RESPONSE_BYTES_MAX: usize = 256 << 20;
/// How long one response may take before the run fails.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the broker may hold a Fetch with nothing to return (the tail
/// looks at its stop condition at least this often).
const MAX_WAIT_MS: i32 = 100;
/// A record batch v2 header: base offset (8), length (4), partition leader
/// epoch (4), magic (1), CRC (4), attributes (2), last offset delta (4),
/// base and max timestamp (8 + 8), producer id (8), epoch (2), base
/// sequence (4), record count (4).
const BATCH_HEADER_BYTES: usize = 61;
const LAST_OFFSET_DELTA_AT: usize = 23;
const RECORD_COUNT_AT: usize = 57;

/// What the raw consumers drain.
#[derive(Clone, Debug)]
pub struct RawDrain {
    pub topic: String,
    /// (partition, first offset, target: the high watermark at the start).
    pub partitions: Vec<(i32, i64, i64)>,
    /// The connections: each to one leader, for some of its partitions.
    pub connections: Vec<Route>,
    /// Bytes asked for per partition per Fetch.
    pub fetch_bytes: i32,
    /// The drain stops incomplete after this long.
    pub time_limit: Duration,
}

/// How a raw drain ended.
#[derive(Debug)]
pub struct DrainOutcome {
    /// From the first Fetch to the last record.
    pub elapsed: Duration,
    /// Every partition reached its target.
    pub complete: bool,
}

/// Drains every partition to its target; records and bytes go to
/// `counters` as they arrive.
pub fn drain(plan: &RawDrain, counters: &Arc<Counters>) -> anyhow::Result<DrainOutcome> {
    let started = Instant::now();
    let mut threads = Vec::with_capacity(plan.connections.len());
    for (index, route) in plan.connections.iter().enumerate() {
        let share: Vec<(i32, i64, i64)> = plan
            .partitions
            .iter()
            .copied()
            .filter(|(partition, first, target)| {
                route.partitions.contains(partition) && first < target
            })
            .collect();
        let (plan, counters, broker) = (plan.clone(), counters.clone(), route.broker.clone());
        threads.push(
            std::thread::Builder::new()
                .name(format!("bench-fetch-{index}"))
                .spawn(move || drain_share(&plan, &broker, share, &counters, started))
                .context("starting a raw consumer thread")?,
        );
    }
    let mut complete = true;
    let mut last = started;
    for thread in threads {
        let (done, finished) = thread
            .join()
            .map_err(|_| anyhow::anyhow!("a raw consumer thread panicked"))??;
        complete &= done;
        last = last.max(finished);
    }
    Ok(DrainOutcome {
        elapsed: last.duration_since(started),
        complete,
    })
}

/// One connection's drain: (complete, when its last record came).
fn drain_share(
    plan: &RawDrain,
    broker: &str,
    mut share: Vec<(i32, i64, i64)>,
    counters: &Counters,
    started: Instant,
) -> anyhow::Result<(bool, Instant)> {
    let mut last = started;
    if share.is_empty() {
        return Ok((true, last));
    }
    let mut connection = FetchConnection::connect(broker, &plan.topic)?;
    while !share.is_empty() {
        if started.elapsed() >= plan.time_limit {
            return Ok((false, last));
        }
        let asked: Vec<(i32, i64)> = share.iter().map(|(p, next, _)| (*p, *next)).collect();
        for (partition, records) in connection.fetch(&asked, plan.fetch_bytes)? {
            let Some(entry) = share.iter_mut().find(|(p, _, _)| *p == partition) else {
                continue;
            };
            let walked = walk_batches(&records, entry.1);
            if walked.records > 0 {
                counters.add(walked.records, walked.bytes);
                last = Instant::now();
            }
            entry.1 = entry.1.max(walked.next_offset);
        }
        share.retain(|(_, next, target)| next < target);
    }
    Ok((true, last))
}

/// Follows `share` (partition, first offset) on `broker` until `stop`
/// says so, handing each record's value to `on_value` as it arrives.
pub fn tail(
    broker: &str,
    topic: &str,
    mut share: Vec<(i32, i64)>,
    fetch_bytes: i32,
    mut stop: impl FnMut() -> bool,
    mut on_value: impl FnMut(&[u8]),
) -> anyhow::Result<()> {
    let mut connection = FetchConnection::connect(broker, topic)?;
    while !stop() {
        for (partition, records) in connection.fetch(&share, fetch_bytes)? {
            let Some(entry) = share.iter_mut().find(|(p, _)| *p == partition) else {
                continue;
            };
            let walked = walk_batches(&records, entry.1);
            if walked.records == 0 {
                continue;
            }
            let mut whole = records.slice(..walked.end);
            let sets = RecordBatchDecoder::decode_all(&mut whole).map_err(|error| {
                anyhow::anyhow!("decoding records of partition {partition}: {error:?}")
            })?;
            for record in sets.iter().flat_map(|set| &set.records) {
                if record.offset >= entry.1 && !record.control {
                    on_value(record.value.as_deref().unwrap_or_default());
                }
            }
            entry.1 = entry.1.max(walked.next_offset);
        }
    }
    Ok(())
}

/// One fetching connection: Fetch v11 requests for one topic, one at a
/// time.
struct FetchConnection {
    stream: TcpStream,
    topic: String,
    correlation_id: i32,
}

impl FetchConnection {
    fn connect(broker: &str, topic: &str) -> anyhow::Result<FetchConnection> {
        let stream =
            TcpStream::connect(broker).with_context(|| format!("connecting to {broker}"))?;
        stream.set_nodelay(true).context("TCP_NODELAY")?;
        stream
            .set_read_timeout(Some(RESPONSE_TIMEOUT))
            .context("read timeout")?;
        Ok(FetchConnection {
            stream,
            topic: topic.to_string(),
            correlation_id: 0,
        })
    }

    /// One Fetch of `partitions` (partition, offset), up to `fetch_bytes`
    /// each: the records each answered with. A partition or request error
    /// ends the run.
    fn fetch(
        &mut self,
        partitions: &[(i32, i64)],
        fetch_bytes: i32,
    ) -> anyhow::Result<Vec<(i32, Bytes)>> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let frame = fetch_frame(&self.topic, partitions, fetch_bytes, correlation_id)?;
        self.stream
            .write_all(&frame)
            .context("sending a Fetch request")?;
        let mut response = super::raw::read_frame(&mut self.stream, RESPONSE_BYTES_MAX)?;
        let header = ResponseHeader::decode(
            &mut response,
            ApiKey::Fetch.response_header_version(FETCH_VERSION),
        )
        .context("decoding a response header")?;
        if header.correlation_id != correlation_id {
            bail!(
                "response {} to request {correlation_id}: out of order",
                header.correlation_id
            );
        }
        let response =
            FetchResponse::decode(&mut response, FETCH_VERSION).context("decoding a Fetch")?;
        if response.error_code != 0 {
            bail!(
                "the broker answered a Fetch with error code {}",
                response.error_code
            );
        }
        let mut answered = Vec::new();
        for data in response.responses.into_iter().flat_map(|t| t.partitions) {
            if data.error_code != 0 {
                bail!(
                    "partition {}: the broker answered a Fetch with error code {}",
                    data.partition_index,
                    data.error_code
                );
            }
            answered.push((data.partition_index, data.records.unwrap_or_default()));
        }
        Ok(answered)
    }
}

/// What a response's records held for one partition.
#[derive(Debug, Default, PartialEq, Eq)]
struct Walked {
    records: u64,
    bytes: u64,
    /// The offset after the last whole batch (the next fetch offset).
    next_offset: i64,
    /// Where the last whole batch ends in the records.
    end: usize,
}

/// Walks the whole batches in `records` (a response may end with part of
/// one), counting those that end at or after `from`.
fn walk_batches(records: &Bytes, from: i64) -> Walked {
    let mut walked = Walked {
        next_offset: from,
        ..Walked::default()
    };
    let mut at = 0usize;
    while records.len() - at >= BATCH_HEADER_BYTES {
        let header = &records[at..];
        let base = i64::from_be_bytes(header[..8].try_into().unwrap_or_default());
        let length = i32::from_be_bytes(header[8..12].try_into().unwrap_or_default());
        let Ok(length) = usize::try_from(length) else {
            break;
        };
        let size = 12 + length;
        if size < BATCH_HEADER_BYTES || records.len() - at < size {
            break;
        }
        let delta = i32::from_be_bytes(
            header[LAST_OFFSET_DELTA_AT..LAST_OFFSET_DELTA_AT + 4]
                .try_into()
                .unwrap_or_default(),
        );
        let count = i32::from_be_bytes(
            header[RECORD_COUNT_AT..RECORD_COUNT_AT + 4]
                .try_into()
                .unwrap_or_default(),
        );
        let last = base + i64::from(delta);
        if last >= from {
            walked.records += u64::try_from(count).unwrap_or(0);
            walked.bytes += size as u64;
            walked.next_offset = walked.next_offset.max(last + 1);
        }
        at += size;
        walked.end = at;
    }
    walked
}

fn fetch_frame(
    topic: &str,
    share: &[(i32, i64)],
    fetch_bytes: i32,
    correlation_id: i32,
) -> anyhow::Result<BytesMut> {
    let partitions = share
        .iter()
        .map(|(partition, next)| {
            FetchPartition::default()
                .with_partition(*partition)
                .with_current_leader_epoch(-1)
                .with_fetch_offset(*next)
                .with_last_fetched_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(fetch_bytes)
        })
        .collect();
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(MAX_WAIT_MS)
        .with_min_bytes(1)
        .with_max_bytes(i32::MAX)
        .with_isolation_level(0)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(partitions)]);
    super::raw::frame(ApiKey::Fetch, FETCH_VERSION, correlation_id, &request)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn batch(base: i64, count: usize) -> BytesMut {
        let records: Vec<Record> = (0..count)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: base + i as i64,
                sequence: -1,
                timestamp: 0,
                key: None,
                value: Some(Bytes::from_static(b"value")),
                headers: Default::default(),
            })
            .collect();
        let mut out = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut out, &records, &options).expect("encode");
        out
    }

    #[test]
    fn batch_headers_give_the_counts_and_the_next_offset() {
        let mut records = batch(0, 3);
        records.extend_from_slice(&batch(3, 2));
        let whole = records.len() as u64;
        // Part of a third batch: left for the next fetch.
        records.extend_from_slice(&batch(5, 4)[..30]);
        let walked = walk_batches(&records.freeze(), 0);
        assert_eq!(
            walked,
            Walked {
                records: 5,
                bytes: whole,
                next_offset: 5,
                end: whole as usize,
            }
        );
    }

    #[test]
    fn a_batch_before_the_fetch_offset_is_not_counted() {
        let mut records = batch(0, 3);
        records.extend_from_slice(&batch(3, 2));
        let walked = walk_batches(&records.freeze(), 3);
        assert_eq!((walked.records, walked.next_offset), (2, 5));
        assert_eq!(walk_batches(&Bytes::new(), 7).next_offset, 7);
    }
}
