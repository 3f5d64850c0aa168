//! `sluice bench e2e`: produce at a fixed rate and consume at once, in one
//! process. Each value starts with a stamp (run id, scheduled send time on
//! the run's monotonic clock); the consumer's latency is its receive time
//! minus that stamp, so it covers producer batching, the broker, and the
//! consumer's fetch — and, counted from the *scheduled* time, any stall.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use hdrhistogram::Histogram;
use rdkafka::consumer::BaseConsumer;
use rdkafka::message::Message as _;
use rdkafka::Offset;
use serde_json::json;

use super::consume::{assign, consumer};
use super::load::{self, Clock, STAMP_BYTES};
use super::procfs::UsageMeter;
use super::progress::{Counters, Progress};
use super::stats::{self, latency_histogram, Latency, Report, Throughput};
use super::{
    options, raw_fetch, raw_route, setup, ClientKind, CommonArgs, ProducerOptions, TopicOptions,
};
use crate::client::CliContext;

/// How long one poll waits for a message.
const POLL_TIMEOUT: Duration = Duration::from_millis(50);
/// Raw consumer: bytes asked for per partition per Fetch.
const RAW_FETCH_BYTES: i32 = 1 << 20;
/// How long the consumer runs before the producers start, so that its
/// first fetch is in flight and the first records do not wait for it.
const CONSUMER_WARMUP: Duration = Duration::from_secs(1);

#[derive(Debug, Args)]
pub struct E2eArgs {
    #[command(flatten)]
    pub(super) common: CommonArgs,
    #[command(flatten)]
    topic: TopicOptions,
    #[command(flatten)]
    producer: ProducerOptions,
    /// After the last delivery, how long to wait for records still on
    /// their way to the consumer.
    #[arg(long, value_name = "TIME", default_value = "10s", value_parser = options::parse_duration)]
    grace: Duration,
    /// Consumers (librdkafka, each with its own connection and thread; or
    /// with --client raw, raw consumer connections, at least one per
    /// leader broker), the partitions dealt out among them.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    consumers: u16,
}

/// What the consumer side saw.
#[derive(Debug)]
struct Received {
    /// Produce-to-consume latency, microseconds.
    latency: Histogram<u64>,
    /// Records with this run's stamp.
    records: u64,
}

/// Set by the producing side when it is done.
#[derive(Debug, Default)]
struct Finish {
    /// The producers have flushed.
    done: AtomicBool,
    /// Records the broker acknowledged.
    delivered: AtomicU64,
    /// Records with this run's stamp received, by all consumers.
    received: AtomicU64,
}

impl Received {
    fn new() -> Received {
        Received {
            latency: latency_histogram(),
            records: 0,
        }
    }

    /// Counts `value` if this run stamped it, with its latency until now.
    fn note(&mut self, value: &[u8], run_id: u64, clock: Clock, finish: &Finish) {
        if let Some(sent_nanos) = stamp(value, run_id) {
            let now = clock.now_nanos();
            self.records += 1;
            finish.received.fetch_add(1, Ordering::Relaxed);
            self.latency
                .saturating_record((now.saturating_sub(sent_nanos) / 1000).max(1));
        }
    }
}

impl Finish {
    /// Whether a consumer stops: the producers are done and every delivered
    /// record arrived (at any consumer), or `grace` passed since they were
    /// done (`done_at`: when this consumer first saw them done).
    fn should_stop(&self, done_at: &mut Option<Instant>, grace: Duration) -> bool {
        if !self.done.load(Ordering::Acquire) {
            return false;
        }
        let done_at = *done_at.get_or_insert_with(Instant::now);
        self.received.load(Ordering::Relaxed) >= self.delivered.load(Ordering::Relaxed)
            || done_at.elapsed() > grace
    }
}

pub async fn run(args: E2eArgs) -> anyhow::Result<()> {
    if args.producer.rate.is_none() {
        bail!("bench e2e needs --rate (records/s): latency is measured at a fixed load");
    }
    if args.producer.record_size < STAMP_BYTES {
        bail!("bench e2e needs --record-size of at least {STAMP_BYTES} bytes for the send stamp");
    }
    let connection = &args.common.connection;
    let topic = args
        .topic
        .topic
        .clone()
        .unwrap_or_else(setup::fresh_topic_name);
    let partitions = setup::ensure_topic(connection, &topic, args.topic.partitions).await?;
    let first = consumer(connection, &[])?;
    let marks = setup::watermarks(&first, &topic, &partitions)?;
    let run_id = load::XorShift::seeded(u64::from(std::process::id()) ^ unix_nanos()).next();
    let clock = Clock {
        origin: Instant::now(),
    };
    let finish = Arc::new(Finish::default());
    let grace = args.grace;
    let raw = (args.producer.client == ClientKind::Raw)
        .then(|| {
            tokio::task::block_in_place(|| args.producer.raw_plan(connection, &topic, &partitions))
        })
        .transpose()?;
    let mut consuming = Vec::new();
    let count = match &raw {
        None => {
            let start: Vec<(i32, Offset)> = marks
                .iter()
                .map(|m| (m.partition, Offset::Offset(m.high)))
                .collect();
            let count = usize::from(args.consumers).clamp(1, start.len().max(1));
            let mut consumers = vec![first];
            for _ in 1..count {
                consumers.push(consumer(connection, &[])?);
            }
            for (index, consumer) in consumers.into_iter().enumerate() {
                let share: Vec<(i32, Offset)> =
                    start.iter().copied().skip(index).step_by(count).collect();
                assign(&consumer, &topic, &share)?;
                let finish = finish.clone();
                consuming.push(
                    std::thread::Builder::new()
                        .name(format!("bench-consumer-{index}"))
                        .spawn(move || receive(&consumer, run_id, clock, &finish, grace))
                        .context("starting a consumer thread")?,
                );
            }
            count
        }
        Some(raw) => {
            drop(first);
            let connections = raw_route::deal(&raw.routes, usize::from(args.consumers));
            for (index, route) in connections.iter().enumerate() {
                let share: Vec<(i32, i64)> = marks
                    .iter()
                    .filter(|m| route.partitions.contains(&m.partition))
                    .map(|m| (m.partition, m.high))
                    .collect();
                let (finish, broker, topic) = (finish.clone(), route.broker.clone(), topic.clone());
                consuming.push(
                    std::thread::Builder::new()
                        .name(format!("bench-raw-consumer-{index}"))
                        .spawn(move || {
                            receive_raw(&broker, &topic, share, run_id, clock, &finish, grace)
                        })
                        .context("starting a raw consumer thread")?,
                );
            }
            connections.len()
        }
    };
    let plan = args.producer.plan(&topic, Some(run_id));
    let config = args.producer.client_config(connection);
    tokio::time::sleep(CONSUMER_WARMUP).await;

    let counters = Arc::new(Counters::default());
    let meter = UsageMeter::start(args.common.broker_pid)?;
    let progress = Progress::start("e2e", args.producer.goal(&plan), counters.clone());
    let produced = {
        let counters = counters.clone();
        tokio::task::spawn_blocking(move || match raw {
            Some(raw) => super::raw::run(&plan, &raw, clock, &counters),
            None => load::run(&config, &plan, clock, &counters),
        })
        .await
        .context("the producers stopped")?
    };
    let delivered = counters.records.load(Ordering::Relaxed);
    finish.delivered.store(delivered, Ordering::Relaxed);
    finish.done.store(true, Ordering::Release);
    let joined = tokio::task::spawn_blocking(move || {
        consuming
            .into_iter()
            .map(|thread| thread.join())
            .collect::<Vec<_>>()
    })
    .await
    .context("waiting for the consumers")?;
    progress.finish();
    let usage = meter.finish();
    let produced = produced?;
    let mut received = Received::new();
    for one in joined {
        let one = match one {
            Ok(one) => one?,
            Err(_) => bail!("a consumer thread panicked"),
        };
        received
            .latency
            .add(&one.latency)
            .context("merging latency histograms")?;
        received.records += one.records;
    }

    let mut report = Report::new("e2e");
    report.add("topic", topic.clone(), "topic", json!(topic));
    report.add(
        "partitions",
        partitions.len().to_string(),
        "partitions",
        json!(partitions.len()),
    );
    args.producer.describe(&mut report);
    report.throughput(&Throughput {
        records: delivered,
        bytes: counters.bytes.load(Ordering::Relaxed),
        elapsed: produced.elapsed,
    });
    report.add(
        "received",
        stats::format_count(received.records),
        "received",
        json!(received.records),
    );
    report.add("consumers", count.to_string(), "consumers", json!(count));
    report.latency(
        "e2e latency",
        "e2e_latency",
        Latency::from_histogram(&received.latency),
    );
    report.latency(
        "ack latency",
        "ack_latency",
        Latency::from_histogram(&produced.latency),
    );
    report.usage(&usage);
    args.common.emit(&report)?;
    super::check_deliveries(
        produced.sent,
        delivered,
        counters.failed.load(Ordering::Relaxed),
        produced.first_error,
    )?;
    if received.records < delivered {
        bail!(
            "{} of {delivered} delivered records did not reach the consumer within {} s",
            delivered - received.records,
            args.grace.as_secs_f64()
        );
    }
    Ok(())
}

/// One consumer's loop: runs until the producers are done and every
/// delivered record arrived (at any consumer), or `grace` after they are
/// done.
fn receive(
    consumer: &BaseConsumer<CliContext>,
    run_id: u64,
    clock: Clock,
    finish: &Finish,
    grace: Duration,
) -> anyhow::Result<Received> {
    let mut received = Received::new();
    let mut done_at: Option<Instant> = None;
    while !finish.should_stop(&mut done_at, grace) {
        let Some(message) = consumer.poll(POLL_TIMEOUT) else {
            continue;
        };
        let message = message.context("consuming")?;
        if let Some(value) = message.payload() {
            received.note(value, run_id, clock, finish);
        }
    }
    Ok(received)
}

/// `receive` with the raw consumer (`raw_fetch::tail`) on one connection
/// to `broker`, for `share` (partition, first offset).
fn receive_raw(
    broker: &str,
    topic: &str,
    share: Vec<(i32, i64)>,
    run_id: u64,
    clock: Clock,
    finish: &Finish,
    grace: Duration,
) -> anyhow::Result<Received> {
    let mut received = Received::new();
    let mut done_at: Option<Instant> = None;
    raw_fetch::tail(
        broker,
        topic,
        share,
        RAW_FETCH_BYTES,
        || finish.should_stop(&mut done_at, grace),
        |value| received.note(value, run_id, clock, finish),
    )?;
    Ok(received)
}

/// The scheduled send time in a value written by this run, if it is one.
fn stamp(value: &[u8], run_id: u64) -> Option<u64> {
    let id = u64::from_le_bytes(value.get(..8)?.try_into().ok()?);
    let nanos = u64::from_le_bytes(value.get(8..STAMP_BYTES)?.try_into().ok()?);
    (id == run_id).then_some(nanos)
}

fn unix_nanos() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_nanos() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps() {
        let mut value = vec![b'A'; 32];
        value[..8].copy_from_slice(&7u64.to_le_bytes());
        value[8..16].copy_from_slice(&123_456u64.to_le_bytes());
        let cases: &[(&[u8], u64, Option<u64>)] = &[
            (&value, 7, Some(123_456)),
            (&value, 8, None),
            (&value[..15], 7, None),
            (b"", 7, None),
        ];
        for (value, run_id, expected) in cases {
            assert_eq!(stamp(value, *run_id), *expected);
        }
    }
}
