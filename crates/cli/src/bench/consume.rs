//! `sluice bench consume`: drain a topic's backlog from the start, or tail
//! it. Partitions are assigned directly (no group, no commits), so only
//! the fetch path is measured.
//!
//! Drain: the high watermarks are read at the start; the run ends when
//! every partition has been read up to its watermark. Tail: the run starts
//! at the watermarks and lasts `--duration` (or `--count` records).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use hdrhistogram::Histogram;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use serde_json::json;

use super::procfs::UsageMeter;
use super::progress::{Counters, Goal, Progress};
use super::raw_fetch::{self, RawDrain};
use super::raw_route;
use super::setup::{self, Watermarks};
use super::stats::{self, latency_histogram, Latency, Report, Throughput};
use super::{options, ClientKind, CommonArgs, DEFAULT_DURATION};
use crate::client::{parse_key_value, CliContext, ConnectionArgs};

/// How long one poll waits for a message.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest a drain may take by default before it stops incomplete.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    pub(super) common: CommonArgs,
    /// Topic to consume (it must exist; fill it with `bench produce --topic`).
    #[arg(long, value_name = "NAME")]
    topic: String,
    /// Tail the topic from its end instead of draining it from the start.
    #[arg(long)]
    tail: bool,
    /// Stop after N records.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Tail: how long to run (default 10 s). Drain: the longest the drain
    /// may take before it stops incomplete (default 10 min).
    #[arg(long, value_name = "TIME", value_parser = options::parse_duration)]
    duration: Option<Duration>,
    /// Which client consumes: librdkafka, or the raw-protocol consumer
    /// (`bench/raw_fetch.rs`: Fetch requests, batch headers only), which
    /// measures the broker's fetch path. Raw drains only (no --tail).
    #[arg(long, value_enum, default_value_t = ClientKind::Librdkafka)]
    client: ClientKind,
    /// Raw client: connections, the partitions dealt out among them (at
    /// least one per leader broker; each talks to one leader).
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=256))]
    connections: u16,
    /// Raw client: bytes asked for per partition per Fetch.
    #[arg(long, value_name = "BYTES", default_value = "8MiB", value_parser = options::parse_bytes)]
    fetch_bytes: usize,
    /// Extra librdkafka consumer property, KEY=VALUE (repeatable).
    #[arg(short = 'X', long = "consumer-property", value_name = "KEY=VALUE",
          value_parser = parse_key_value)]
    properties: Vec<(String, String)>,
}

/// A consumer for assigned partitions: no group membership, no commits.
pub fn consumer(
    connection: &ConnectionArgs,
    properties: &[(String, String)],
) -> anyhow::Result<BaseConsumer<CliContext>> {
    let mut config = connection.client_config();
    config
        .set("client.id", "sluice-bench")
        .set("group.id", "sluice-bench")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("allow.auto.create.topics", "false");
    for (key, value) in properties {
        config.set(key, value);
    }
    config
        .create_with_context(CliContext)
        .context("creating the consumer")
}

/// Assigns every partition at the given offsets.
pub fn assign(
    consumer: &BaseConsumer<CliContext>,
    topic: &str,
    offsets: &[(i32, Offset)],
) -> anyhow::Result<()> {
    let mut assignment = TopicPartitionList::new();
    for &(partition, offset) in offsets {
        assignment
            .add_partition_offset(topic, partition, offset)
            .with_context(|| format!("assigning partition {partition}"))?;
    }
    consumer.assign(&assignment).context("assigning partitions")
}

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let connection = &args.common.connection;
    let consumer = consumer(connection, &args.properties)?;
    let Some(partitions) = setup::partition_ids(&consumer, &args.topic)? else {
        bail!(
            "topic {}: not found (or no partition has a leader)",
            args.topic
        );
    };
    let marks = setup::watermarks(&consumer, &args.topic, &partitions)?;
    let backlog: i64 = marks.iter().map(|m| m.high - m.low).sum();
    let plan = Plan::new(&args, &marks);
    let counters = Arc::new(Counters::default());
    let meter = UsageMeter::start(args.common.broker_pid)?;
    let goal = match (args.tail, plan.records) {
        (true, _) => Goal::Time(plan.time_limit),
        (false, Some(records)) => Goal::Records(records),
        (false, None) => Goal::Open,
    };
    let label = if args.tail { "tail" } else { "drain" };
    let progress = Progress::start(label, goal, counters.clone());
    let outcome = match args.client {
        ClientKind::Librdkafka => {
            let counters = counters.clone();
            let topic = args.topic.clone();
            tokio::task::spawn_blocking(move || consume_all(&consumer, &topic, &plan, &counters))
                .await
                .context("the consumer stopped")??
        }
        ClientKind::Raw => {
            let drain = tokio::task::block_in_place(|| raw_drain(&args, &marks, plan.time_limit))?;
            let counters = counters.clone();
            let drained = tokio::task::spawn_blocking(move || raw_fetch::drain(&drain, &counters))
                .await
                .context("the raw consumer stopped")??;
            Outcome {
                elapsed: drained.elapsed,
                complete: drained.complete,
                timestamp_lag: latency_histogram(),
            }
        }
    };
    progress.finish();
    let usage = meter.finish();

    let mut report = Report::new(if args.tail { "consume-tail" } else { "consume" });
    report.add("topic", args.topic.clone(), "topic", json!(args.topic));
    report.add(
        "partitions",
        partitions.len().to_string(),
        "partitions",
        json!(partitions.len()),
    );
    report.add(
        "client",
        match args.client {
            ClientKind::Librdkafka => "librdkafka".to_string(),
            ClientKind::Raw => format!("raw, {} connections", args.connections),
        },
        "client",
        json!(match args.client {
            ClientKind::Librdkafka => "librdkafka",
            ClientKind::Raw => "raw",
        }),
    );
    if !args.tail {
        report.add(
            "backlog",
            format!("{} records", stats::format_count(backlog.max(0) as u64)),
            "backlog_records",
            json!(backlog),
        );
        report.add(
            "complete",
            outcome.complete.to_string(),
            "complete",
            json!(outcome.complete),
        );
    }
    report.throughput(&Throughput {
        records: counters.records.load(Ordering::Relaxed),
        bytes: counters.bytes.load(Ordering::Relaxed),
        elapsed: outcome.elapsed,
    });
    if args.tail {
        report.latency(
            "timestamp lag",
            "timestamp_lag",
            Latency::from_histogram(&outcome.timestamp_lag),
        );
    }
    report.usage(&usage);
    args.common.emit(&report)?;
    if !args.tail && !outcome.complete && args.count.is_none() {
        bail!(
            "the backlog was not drained within {} s",
            Plan::new(&args, &marks).time_limit.as_secs()
        );
    }
    Ok(())
}

/// The raw consumers' drain: every partition from its log start to its
/// high watermark at the start, each from its leader (blocks while it asks
/// the bootstrap broker for them).
fn raw_drain(
    args: &ConsumeArgs,
    marks: &[Watermarks],
    time_limit: Duration,
) -> anyhow::Result<RawDrain> {
    if args.tail || args.count.is_some() {
        bail!("--client raw drains the backlog only (no --tail or --count)");
    }
    let bootstrap = super::first_bootstrap(&args.common.connection)?;
    let partitions: Vec<i32> = marks.iter().map(|m| m.partition).collect();
    let routes = raw_route::leaders(&bootstrap, &args.topic, &partitions)?;
    Ok(RawDrain {
        topic: args.topic.clone(),
        partitions: marks.iter().map(|m| (m.partition, m.low, m.high)).collect(),
        connections: raw_route::deal(&routes, usize::from(args.connections)),
        fetch_bytes: i32::try_from(args.fetch_bytes).context("--fetch-bytes over 2 GiB")?,
        time_limit,
    })
}

/// When a consume run ends.
#[derive(Debug)]
struct Plan {
    /// Where each partition starts.
    start: Vec<(i32, Offset)>,
    /// Drain: the offset each partition must reach (its high watermark);
    /// partitions already there are absent. Empty when tailing.
    targets: HashMap<i32, i64>,
    /// Stop after this many records.
    records: Option<u64>,
    /// Stop after this long.
    time_limit: Duration,
    /// Tailing (the run lasts `time_limit`) rather than draining.
    tail: bool,
}

impl Plan {
    fn new(args: &ConsumeArgs, marks: &[Watermarks]) -> Plan {
        let start = marks
            .iter()
            .map(|m| {
                let offset = if args.tail {
                    Offset::Offset(m.high)
                } else {
                    Offset::Beginning
                };
                (m.partition, offset)
            })
            .collect();
        let targets = if args.tail {
            HashMap::new()
        } else {
            marks
                .iter()
                .filter(|m| m.high > m.low)
                .map(|m| (m.partition, m.high))
                .collect()
        };
        let default_limit = if args.tail {
            DEFAULT_DURATION
        } else {
            DRAIN_TIMEOUT
        };
        Plan {
            start,
            targets,
            records: args.count,
            time_limit: args.duration.unwrap_or(default_limit),
            tail: args.tail,
        }
    }
}

/// What a consume run saw.
#[derive(Debug)]
struct Outcome {
    /// Drain: from the assignment to the last record; tail: the run.
    elapsed: Duration,
    /// Every partition reached its target (drain).
    complete: bool,
    /// Tail: receive time minus record timestamp, microseconds (ms resolution).
    timestamp_lag: Histogram<u64>,
}

fn consume_all(
    consumer: &BaseConsumer<CliContext>,
    topic: &str,
    plan: &Plan,
    counters: &Counters,
) -> anyhow::Result<Outcome> {
    assign(consumer, topic, &plan.start)?;
    let started = Instant::now();
    let mut last_record = started;
    let mut remaining = plan.targets.clone();
    let mut timestamp_lag = latency_histogram();
    let mut received = 0u64;
    let complete = loop {
        if !plan.tail && remaining.is_empty() {
            break true;
        }
        if plan.records.is_some_and(|records| received >= records) {
            break remaining.is_empty();
        }
        if started.elapsed() >= plan.time_limit {
            break remaining.is_empty();
        }
        let Some(message) = consumer.poll(POLL_TIMEOUT) else {
            continue;
        };
        let message = message.context("consuming")?;
        let bytes = message.payload_len() + message.key().map_or(0, <[u8]>::len);
        counters.add(1, bytes as u64);
        received += 1;
        last_record = Instant::now();
        if plan.tail {
            if let Some(millis) = message.timestamp().to_millis() {
                let lag_millis = unix_millis().saturating_sub(millis.max(0) as u64);
                timestamp_lag.saturating_record((lag_millis * 1000).max(1));
            }
        } else if let Some(&target) = remaining.get(&message.partition()) {
            if message.offset() + 1 >= target {
                remaining.remove(&message.partition());
            }
        }
    };
    let elapsed = if plan.tail {
        started.elapsed()
    } else {
        last_record.duration_since(started)
    };
    Ok(Outcome {
        elapsed,
        complete,
        timestamp_lag,
    })
}

/// Milliseconds since the Unix epoch, the unit of Kafka record timestamps.
fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Harness {
        #[command(flatten)]
        args: ConsumeArgs,
    }

    fn parse(arguments: &[&str]) -> ConsumeArgs {
        let mut all = vec!["consume"];
        all.extend_from_slice(arguments);
        Harness::try_parse_from(all).expect("valid arguments").args
    }

    #[test]
    fn drain_targets_skip_empty_partitions() {
        let marks = [
            Watermarks {
                partition: 0,
                low: 0,
                high: 10,
            },
            Watermarks {
                partition: 1,
                low: 5,
                high: 5,
            },
            Watermarks {
                partition: 2,
                low: 3,
                high: 4,
            },
        ];
        let plan = Plan::new(&parse(&["--topic", "t"]), &marks);
        assert_eq!(plan.targets, HashMap::from([(0, 10), (2, 4)]));
        assert!(plan
            .start
            .iter()
            .all(|(_, offset)| *offset == Offset::Beginning));
        assert_eq!(plan.time_limit, DRAIN_TIMEOUT);

        let tail = Plan::new(
            &parse(&["--topic", "t", "--tail", "--duration", "3s"]),
            &marks,
        );
        assert!(tail.targets.is_empty());
        assert_eq!(tail.start[0], (0, Offset::Offset(10)));
        assert_eq!(tail.time_limit, Duration::from_secs(3));
    }
}
