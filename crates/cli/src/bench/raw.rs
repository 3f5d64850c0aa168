//! `--client raw`: a producer that speaks the Kafka protocol itself, so a
//! run measures the broker rather than librdkafka (one librdkafka producer
//! on one core tops out near 750 MB/s of 1 KiB records).
//!
//! Each partition's Produce request is encoded once with kafka-protocol
//! (one record batch of `--batch-size` bytes of records, built and, if
//! asked, compressed before the run) and sent again and again with only its
//! correlation id patched: nothing is encoded, compressed or checksummed
//! per request. Each producer is one connection with up to `--in-flight`
//! requests outstanding (a writer thread and a reader thread; responses
//! come back in request order, as Kafka guarantees per connection).
//! Requests go to each partition's leader (`raw_route`: a Metadata request
//! at the start): a producer has one connection per leader. Leaders are
//! not followed during the run: a partition whose leader moves answers
//! NOT_LEADER_OR_FOLLOWER and the run fails, as a benchmark should.
//! With `--rate` (e2e) the requests are built per send instead
//! (`raw_rate`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use super::load::{Clock, LoadOutcome, LoadPlan, XorShift};
use super::progress::Counters;
use super::raw_route::Route;
use super::stats::latency_histogram;

/// The Produce version the raw client sends (v9: flexible, topic names).
pub(super) const PRODUCE_VERSION: i16 = 9;
/// Where the correlation id sits in a request frame: after the length
/// prefix, the API key and the API version.
pub(super) const CORRELATION_ID_AT: usize = 8;
/// Largest response frame the client accepts.
const RESPONSE_BYTES_MAX: usize = 64 << 20;
/// How long one response may take before the run fails.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(30);

/// How the raw producers send.
#[derive(Clone, Debug)]
pub struct RawPlan {
    /// The topic's partitions grouped by leader; each route's partitions
    /// are sent to in turn.
    pub routes: Vec<Route>,
    /// Bytes of record values per batch (one batch per request).
    pub batch_bytes: usize,
    /// Requests outstanding per connection.
    pub in_flight: usize,
    /// 0, 1 or -1 (all).
    pub acks: i16,
    /// Codec of the prebuilt batches.
    pub compression: Compression,
    /// Open loop: how long due records may wait to fill a batch.
    pub linger: Option<Duration>,
}

/// One prebuilt request: the frame, and the records and value bytes its
/// batch carries.
struct Prebuilt {
    frame: BytesMut,
    records: u64,
    bytes: u64,
}

/// Runs `plan` with raw producers: one connection per producer.
pub fn run(
    plan: &LoadPlan,
    raw: &RawPlan,
    clock: Clock,
    counters: &Arc<Counters>,
) -> anyhow::Result<LoadOutcome> {
    if plan.transaction_interval.is_some() {
        bail!("--client raw sends plain produce only (no --transaction-ms)");
    }
    if plan.rate.is_some() {
        return super::raw_rate::run(plan, raw, clock, counters);
    }
    let requests: Vec<Arc<Vec<Prebuilt>>> = raw
        .routes
        .iter()
        .map(|route| prebuild(plan, raw, &route.partitions))
        .collect::<anyhow::Result<_>>()?;
    let started = clock.now_nanos();
    let latency = Arc::new(Mutex::new(latency_histogram()));
    let producers = plan.producers.max(1) as usize;
    // One job per producer and leader: a connection each.
    let jobs = producers * raw.routes.len();
    let mut threads = Vec::with_capacity(jobs);
    for index in 0..jobs {
        let share = plan.records.map(|records| {
            records / jobs as u64 + u64::from((index as u64) < records % jobs as u64)
        });
        let route = index % raw.routes.len();
        let job = Job {
            requests: requests[route].clone(),
            broker: raw.routes[route].broker.clone(),
            in_flight: raw.in_flight,
            acks: raw.acks,
            clock,
            deadline_nanos: plan.duration.map(|d| started + d.as_nanos() as u64),
            records_max: share,
            counters: counters.clone(),
            latency: latency.clone(),
        };
        threads.push(
            std::thread::Builder::new()
                .name(format!("bench-raw-{index}"))
                .spawn(move || job.run())
                .context("starting a raw producer thread")?,
        );
    }
    let (sent, first_error) = join_producers(threads)?;
    let latency = Arc::try_unwrap(latency)
        .map(|m| m.into_inner().unwrap_or_else(PoisonError::into_inner))
        .unwrap_or_else(|shared| {
            shared
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone()
        });
    Ok(LoadOutcome {
        elapsed: Duration::from_nanos(clock.now_nanos() - started),
        latency,
        sent,
        first_error,
    })
}

/// One Produce frame per partition, each with one batch of records.
fn prebuild(
    plan: &LoadPlan,
    raw: &RawPlan,
    partitions: &[i32],
) -> anyhow::Result<Arc<Vec<Prebuilt>>> {
    let per_batch = (raw.batch_bytes / plan.record_size.max(1)).max(1);
    let mut random = XorShift::seeded(0x5eed);
    let values: Vec<Bytes> = (0..per_batch)
        .map(|_| Bytes::from(random.letters(plan.record_size)))
        .collect();
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(offset, value)| plain_record(offset, value.clone()))
        .collect();
    let batch = encode_batch(&records, raw.compression)?;
    partitions
        .iter()
        .map(|partition| {
            let request = produce_request(&plan.topic, *partition, raw.acks, batch.clone());
            Ok(Prebuilt {
                frame: frame(ApiKey::Produce, PRODUCE_VERSION, 0, &request)?,
                records: per_batch as u64,
                bytes: (per_batch * plan.record_size) as u64,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()
        .map(Arc::new)
}

/// Record `offset` of a plain (not idempotent) batch, with `value`.
pub(super) fn plain_record(offset: usize, value: Bytes) -> Record {
    Record {
        transactional: false,
        control: false,
        delete_horizon: false,
        partition_leader_epoch: -1,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: offset as i64,
        // kafka-protocol starts a new batch whenever offset - sequence
        // changes; this keeps one batch with base sequence -1.
        sequence: offset as i32 - 1,
        timestamp: 0,
        key: None,
        value: Some(value),
        headers: Default::default(),
    }
}

/// `records` as one record batch (v2) compressed with `compression`.
pub(super) fn encode_batch(records: &[Record], compression: Compression) -> anyhow::Result<Bytes> {
    let mut batch = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut batch, records, &options)
        .context("encoding the raw client's record batch")?;
    Ok(batch.freeze())
}

/// Waits for the producer threads: records sent in all, and the first
/// error any of them ended with.
pub(super) fn join_producers(
    threads: Vec<std::thread::JoinHandle<anyhow::Result<u64>>>,
) -> anyhow::Result<(u64, Option<String>)> {
    let mut sent = 0;
    let mut first_error = None;
    for thread in threads {
        match thread.join() {
            Ok(Ok(records)) => sent += records,
            Ok(Err(error)) => {
                first_error.get_or_insert(format!("{error:#}"));
            }
            Err(_) => bail!("a raw producer thread panicked"),
        }
    }
    Ok((sent, first_error))
}

/// A Produce request of one batch for one partition.
pub(super) fn produce_request(
    topic: &str,
    partition: i32,
    acks: i16,
    batch: Bytes,
) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(RESPONSE_TIMEOUT.as_millis() as i32)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])])
}

/// A whole request frame (length prefix included): `request` as version
/// `version` of `api_key`, with `correlation_id`.
pub(super) fn frame(
    api_key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &impl Encodable,
) -> anyhow::Result<BytesMut> {
    let header = RequestHeader::default()
        .with_request_api_key(api_key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("sluice-bench-raw")));
    let mut out = BytesMut::new();
    out.put_i32(0);
    header
        .encode(&mut out, api_key.request_header_version(version))
        .context("encoding a request header")?;
    request
        .encode(&mut out, version)
        .with_context(|| format!("encoding a {api_key:?} request"))?;
    let length = i32::try_from(out.len() - 4).context("a request over 2 GiB")?;
    out[..4].copy_from_slice(&length.to_be_bytes());
    Ok(out)
}

/// One raw producer: its connection, its share of the run.
struct Job {
    requests: Arc<Vec<Prebuilt>>,
    broker: String,
    in_flight: usize,
    acks: i16,
    clock: Clock,
    deadline_nanos: Option<u64>,
    records_max: Option<u64>,
    counters: Arc<Counters>,
    latency: Arc<Mutex<Histogram<u64>>>,
}

/// What the reader needs of each request sent: when, and what it carried.
pub(super) struct Sent {
    pub correlation_id: i32,
    /// When the request was sent, or (open loop) when its first record was
    /// scheduled.
    pub sent_nanos: u64,
    /// Open loop: the records' schedule, one every `interval_nanos` from
    /// `sent_nanos` (each record's latency counts from its own time);
    /// 0: one latency for the request.
    pub interval_nanos: f64,
    pub records: u64,
    pub bytes: u64,
}

impl Job {
    /// Sends until the deadline or the record count; returns records sent.
    fn run(self) -> anyhow::Result<u64> {
        let acks_zero = self.acks == 0;
        let (stream, window, reader) = connect(
            &self.broker,
            self.in_flight,
            acks_zero,
            self.clock,
            &self.counters,
            &self.latency,
        )?;
        let sent = self.write_requests(stream, window, acks_zero);
        let read = match reader {
            Some(reader) => reader
                .join()
                .map_err(|_| anyhow::anyhow!("a raw reader thread panicked"))?,
            None => Ok(()),
        };
        let sent = sent?;
        read?;
        Ok(sent)
    }

    fn write_requests(
        &self,
        mut stream: TcpStream,
        window: mpsc::SyncSender<Sent>,
        acks_zero: bool,
    ) -> anyhow::Result<u64> {
        let mut sent = 0u64;
        let mut correlation_id = 0i32;
        let mut buffers: Vec<BytesMut> = self.requests.iter().map(|r| r.frame.clone()).collect();
        loop {
            let index = correlation_id as usize % buffers.len();
            let request = &self.requests[index];
            let done_by_count = self
                .records_max
                .is_some_and(|max| sent + request.records > max && sent > 0);
            let done_by_time = self
                .deadline_nanos
                .is_some_and(|deadline| self.clock.now_nanos() >= deadline);
            if done_by_count || done_by_time {
                break;
            }
            let buffer = &mut buffers[index];
            buffer[CORRELATION_ID_AT..CORRELATION_ID_AT + 4]
                .copy_from_slice(&correlation_id.to_be_bytes());
            let record = Sent {
                correlation_id,
                sent_nanos: self.clock.now_nanos(),
                interval_nanos: 0.0,
                records: request.records,
                bytes: request.bytes,
            };
            if !acks_zero && window.send(record).is_err() {
                // The reader stopped (and says why).
                break;
            }
            stream
                .write_all(buffer)
                .context("sending a Produce request")?;
            if acks_zero {
                self.counters.add(request.records, request.bytes);
            }
            sent += request.records;
            correlation_id = correlation_id.wrapping_add(1);
        }
        Ok(sent)
    }
}

/// A producer connection to `broker`: the stream to write requests to,
/// the window (the writer blocks while `in_flight` requests wait), and the
/// reader thread that takes the responses (none for acks=0).
pub(super) type Connection = (
    TcpStream,
    mpsc::SyncSender<Sent>,
    Option<std::thread::JoinHandle<anyhow::Result<()>>>,
);

pub(super) fn connect(
    broker: &str,
    in_flight: usize,
    acks_zero: bool,
    clock: Clock,
    counters: &Arc<Counters>,
    latency: &Arc<Mutex<Histogram<u64>>>,
) -> anyhow::Result<Connection> {
    let stream = TcpStream::connect(broker).with_context(|| format!("connecting to {broker}"))?;
    stream.set_nodelay(true).context("TCP_NODELAY")?;
    stream
        .set_read_timeout(Some(RESPONSE_TIMEOUT))
        .context("read timeout")?;
    let (window, outstanding) = mpsc::sync_channel::<Sent>(in_flight.max(1));
    let reader = if acks_zero {
        None
    } else {
        let stream = stream.try_clone().context("cloning the connection")?;
        let (counters, latency) = (counters.clone(), latency.clone());
        Some(
            std::thread::Builder::new()
                .name("bench-raw-reader".into())
                .spawn(move || read_responses(stream, outstanding, clock, &counters, &latency))
                .context("starting a raw reader thread")?,
        )
    };
    Ok((stream, window, reader))
}

/// Reads one response per request sent, in order, until the writer is done.
fn read_responses(
    mut stream: TcpStream,
    outstanding: mpsc::Receiver<Sent>,
    clock: Clock,
    counters: &Counters,
    latency: &Mutex<Histogram<u64>>,
) -> anyhow::Result<()> {
    let mut local = latency_histogram();
    let result = (|| {
        for sent in outstanding.iter() {
            let mut frame = read_frame(&mut stream, RESPONSE_BYTES_MAX)?;
            let header = ResponseHeader::decode(
                &mut frame,
                ApiKey::Produce.response_header_version(PRODUCE_VERSION),
            )
            .context("decoding a response header")?;
            if header.correlation_id != sent.correlation_id {
                bail!(
                    "response {} to request {}: out of order",
                    header.correlation_id,
                    sent.correlation_id
                );
            }
            let response = ProduceResponse::decode(&mut frame, PRODUCE_VERSION)
                .context("decoding a Produce response")?;
            let error = response
                .responses
                .iter()
                .flat_map(|topic| &topic.partition_responses)
                .map(|partition| partition.error_code)
                .find(|code| *code != 0);
            if let Some(code) = error {
                counters.failed.fetch_add(sent.records, Ordering::Relaxed);
                bail!("the broker answered a Produce with error code {code}");
            }
            counters.add(sent.records, sent.bytes);
            let now = clock.now_nanos();
            if sent.interval_nanos > 0.0 {
                for index in 0..sent.records {
                    let scheduled = sent.sent_nanos + (index as f64 * sent.interval_nanos) as u64;
                    local.saturating_record((now.saturating_sub(scheduled) / 1000).max(1));
                }
            } else {
                let micros = now.saturating_sub(sent.sent_nanos) / 1000;
                local.saturating_record(micros.max(1));
            }
        }
        Ok(())
    })();
    latency
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .add(&local)
        .context("merging latency histograms")?;
    result
}

/// One response frame, without its length prefix, of at most `max` bytes.
pub(super) fn read_frame(stream: &mut TcpStream, max: usize) -> anyhow::Result<Bytes> {
    let mut length = [0u8; 4];
    stream
        .read_exact(&mut length)
        .context("reading a response length")?;
    let length = i32::from_be_bytes(length);
    if length < 4 || length as usize > max {
        bail!("response length {length} is out of bounds");
    }
    let mut body = vec![0u8; length as usize];
    stream.read_exact(&mut body).context("reading a response")?;
    Ok(Bytes::from(body))
}
