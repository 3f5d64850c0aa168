//! `sluice bench produce|consume|e2e`: a load generator for any
//! Kafka-compatible broker. It speaks only the Kafka protocol (librdkafka
//! through `rdkafka`, or `produce --client raw`, its own prebuilt pipelined
//! requests), so the same client measures Sluice and its peers;
//! `bench/compare.sh` runs it against each of them.
//!
//! Code map: `options` parses the option values clap cannot; `setup`
//! finds or creates the topic and reads watermarks; `load` is the
//! producing side (shared by produce and e2e); `raw` is the raw-protocol
//! producer; `consume` drains or tails; `e2e` runs both at once; `stats`
//! renders the report; `progress` shows the run live; `procfs` reads CPU
//! and memory use from /proc.

mod consume;
mod e2e;
mod load;
mod options;
mod procfs;
mod progress;
mod raw;
mod raw_fetch;
mod raw_rate;
mod raw_route;
mod setup;
mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand, ValueEnum};
use rdkafka::config::ClientConfig;
use serde_json::json;

use crate::client::{parse_key_value, ConnectionArgs};
use options::Keys;
use procfs::UsageMeter;
use progress::{Counters, Goal, Progress};
use stats::{Latency, Report, Throughput};

/// How long a run lasts when neither `--count` nor `--duration` is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(10);

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Which measurement.
    #[command(subcommand)]
    command: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Produce as fast as possible (or at --rate): records/s, MB/s, ack latency.
    Produce(ProduceArgs),
    /// Drain a topic's backlog from the start (or --tail it): records/s, MB/s.
    Consume(consume::ConsumeArgs),
    /// Produce at --rate and consume at once: produce-to-consume latency.
    E2e(e2e::E2eArgs),
}

impl BenchArgs {
    /// The brokers the chosen measurement talks to.
    pub fn connection(&self) -> &ConnectionArgs {
        match &self.command {
            BenchCommand::Produce(args) => &args.common.connection,
            BenchCommand::Consume(args) => &args.common.connection,
            BenchCommand::E2e(args) => &args.common.connection,
        }
    }
}

pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    match args.command {
        BenchCommand::Produce(args) => produce(args).await,
        BenchCommand::Consume(args) => consume::run(args).await,
        BenchCommand::E2e(args) => e2e::run(args).await,
    }
}

/// Options every bench mode takes.
#[derive(Debug, Args)]
struct CommonArgs {
    /// Which brokers to talk to.
    #[command(flatten)]
    connection: ConnectionArgs,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// The broker's process id: report its CPU seconds over the run and its
    /// peak RSS (read from /proc; the broker must run on this machine).
    #[arg(long, value_name = "PID")]
    broker_pid: Option<u32>,
}

impl CommonArgs {
    fn emit(&self, report: &Report) -> anyhow::Result<()> {
        if self.json {
            crate::table::emit(&report.json())
        } else {
            crate::table::emit(&report.table())
        }
    }
}

/// Which topic to write to.
#[derive(Debug, Args)]
struct TopicOptions {
    /// Topic to use; created with --partitions when absent
    /// (default: a fresh topic, sluice-bench-<pid>-<time>).
    #[arg(long, value_name = "NAME")]
    topic: Option<String>,
    /// Partitions of a topic the bench creates.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Acks {
    #[value(name = "0")]
    Zero,
    #[value(name = "1")]
    One,
    #[value(name = "all")]
    All,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

/// Which client produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ClientKind {
    /// librdkafka, the client users run.
    Librdkafka,
    /// The raw-protocol producer (`bench/raw.rs`): prebuilt requests,
    /// pipelined, so the broker and not the client is measured.
    Raw,
}

/// How the producers produce.
#[derive(Debug, Args)]
struct ProducerOptions {
    /// Which client produces: librdkafka, or the raw-protocol producer that
    /// outruns it (plain produce only; with --rate it encodes each batch).
    #[arg(long, value_enum, default_value_t = ClientKind::Librdkafka)]
    client: ClientKind,
    /// Raw client: Produce requests outstanding per connection.
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u16).range(1..=1024))]
    in_flight: u16,
    /// Value size of each record: 1024, 100B, 1KiB, …
    #[arg(long, value_name = "BYTES", default_value = "1KiB", value_parser = options::parse_bytes)]
    record_size: usize,
    /// Records to produce in total (with --duration: whichever comes first;
    /// with neither: 10 s).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// How long to produce: 10s, 500ms, 2m.
    #[arg(long, value_name = "TIME", value_parser = options::parse_duration)]
    duration: Option<Duration>,
    /// Record keys: none, random, or fixed:N (N distinct keys).
    #[arg(long, value_name = "KEYS", default_value = "none", value_parser = options::parse_keys)]
    keys: Keys,
    /// Acknowledgements each produce request waits for.
    #[arg(long, value_enum, default_value_t = Acks::One)]
    acks: Acks,
    /// Compression codec for record batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// librdkafka's linger.ms (default: librdkafka's, 5 ms); the raw
    /// client's at --rate (default 1 ms).
    #[arg(long, value_name = "MS")]
    linger_ms: Option<u64>,
    /// librdkafka's batch.size in bytes (default: librdkafka's, 1 MB); the
    /// raw client's bytes of values per request (default 256 KiB).
    #[arg(long, value_name = "BYTES", value_parser = options::parse_bytes)]
    batch_size: Option<usize>,
    /// Producer instances, each with its own connection and sending thread.
    #[arg(long, value_name = "N", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    producers: u32,
    /// Fixed open-loop rate, records/s in total (50000, 50k, 1.5M); latency
    /// then counts from each record's scheduled send time.
    #[arg(long, value_name = "RATE", value_parser = options::parse_rate)]
    rate: Option<f64>,
    /// Transactional producers: commit a transaction every MS milliseconds
    /// (implies acks=all and idempotence; each producer gets its own
    /// transactional.id).
    #[arg(long = "transaction-ms", value_name = "MS",
          value_parser = clap::value_parser!(u64).range(1..))]
    transaction_ms: Option<u64>,
    /// Extra librdkafka producer property, KEY=VALUE (repeatable).
    #[arg(short = 'X', long = "producer-property", value_name = "KEY=VALUE",
          value_parser = parse_key_value)]
    properties: Vec<(String, String)>,
}

impl ProducerOptions {
    /// The librdkafka producer configuration these options describe.
    fn client_config(&self, connection: &ConnectionArgs) -> ClientConfig {
        let mut config = connection.client_config();
        config
            .set("client.id", "sluice-bench")
            .set(
                "acks",
                match self.acks {
                    Acks::Zero => "0",
                    Acks::One => "1",
                    Acks::All => "all",
                },
            )
            .set(
                "compression.codec",
                match self.compression {
                    Compression::None => "none",
                    Compression::Gzip => "gzip",
                    Compression::Snappy => "snappy",
                    Compression::Lz4 => "lz4",
                    Compression::Zstd => "zstd",
                },
            )
            .set(
                "enable.idempotence",
                if self.transaction_ms.is_some() {
                    "true"
                } else {
                    "false"
                },
            );
        if self.transaction_ms.is_some() {
            config.set("acks", "all");
        }
        if let Some(linger) = self.linger_ms {
            config.set("linger.ms", linger.to_string());
        }
        if let Some(batch) = self.batch_size {
            config.set("batch.size", batch.to_string());
        }
        for (key, value) in &self.properties {
            config.set(key, value);
        }
        config
    }

    /// The raw client's plan: every partition, routed to its leader
    /// (asked of the first bootstrap broker; blocks while it asks).
    fn raw_plan(
        &self,
        connection: &ConnectionArgs,
        topic: &str,
        partitions: &[i32],
    ) -> anyhow::Result<raw::RawPlan> {
        let bootstrap = first_bootstrap(connection)?;
        Ok(raw::RawPlan {
            routes: raw_route::leaders(&bootstrap, topic, partitions)?,
            batch_bytes: self.batch_size.unwrap_or(256 << 10),
            in_flight: usize::from(self.in_flight),
            acks: match self.acks {
                Acks::Zero => 0,
                Acks::One => 1,
                Acks::All => -1,
            },
            compression: match self.compression {
                Compression::None => kafka_protocol::records::Compression::None,
                Compression::Gzip => kafka_protocol::records::Compression::Gzip,
                Compression::Snappy => kafka_protocol::records::Compression::Snappy,
                Compression::Lz4 => kafka_protocol::records::Compression::Lz4,
                Compression::Zstd => kafka_protocol::records::Compression::Zstd,
            },
            linger: self.linger_ms.map(Duration::from_millis),
        })
    }

    /// The plan for `topic`; with neither a count nor a duration, 10 s.
    fn plan(&self, topic: &str, stamp_run_id: Option<u64>) -> load::LoadPlan {
        let duration = match (self.count, self.duration) {
            (None, None) => Some(DEFAULT_DURATION),
            (_, duration) => duration,
        };
        load::LoadPlan {
            topic: topic.to_string(),
            record_size: self.record_size,
            records: self.count,
            duration,
            rate: self.rate,
            keys: self.keys,
            producers: self.producers,
            stamp_run_id,
            transaction_interval: self.transaction_ms.map(Duration::from_millis),
        }
    }

    /// What the progress bar counts towards.
    fn goal(&self, plan: &load::LoadPlan) -> Goal {
        match (plan.records, plan.duration) {
            (Some(records), None) => Goal::Records(records),
            (_, Some(duration)) => Goal::Time(duration),
            (None, None) => Goal::Open,
        }
    }

    /// The settings, for the report.
    fn describe(&self, report: &mut Report) {
        let keys = match self.keys {
            Keys::None => "none".to_string(),
            Keys::Random => "random".to_string(),
            Keys::Fixed(count) => format!("fixed:{count}"),
        };
        let acks = match self.acks {
            Acks::Zero => "0",
            Acks::One => "1",
            Acks::All => "all",
        };
        report.add(
            "record size",
            format!("{} B", self.record_size),
            "record_size",
            json!(self.record_size),
        );
        report.add("acks", acks, "acks", json!(acks));
        let client = match self.client {
            ClientKind::Librdkafka => "librdkafka".to_string(),
            ClientKind::Raw => format!("raw, {} in flight", self.in_flight),
        };
        report.add(
            "client",
            client,
            "client",
            json!(format!("{:?}", self.client).to_lowercase()),
        );
        if let Some(ms) = self.transaction_ms {
            report.add(
                "transactions",
                format!("commit every {ms} ms"),
                "transaction_ms",
                json!(ms),
            );
        }
        report.add_json(
            "compression",
            json!(format!("{:?}", self.compression).to_lowercase()),
        );
        report.add_json("keys", json!(keys));
        report.add_json("linger_ms", json!(self.linger_ms));
        report.add_json("batch_size", json!(self.batch_size));
        report.add(
            "producers",
            self.producers.to_string(),
            "producers",
            json!(self.producers),
        );
        if let Some(rate) = self.rate {
            report.add(
                "target rate",
                format!("{} rec/s", stats::format_count(rate.round() as u64)),
                "target_rate",
                json!(rate),
            );
        }
    }
}

#[derive(Debug, Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    common: CommonArgs,
    #[command(flatten)]
    topic: TopicOptions,
    #[command(flatten)]
    producer: ProducerOptions,
}

async fn produce(args: ProduceArgs) -> anyhow::Result<()> {
    let connection = &args.common.connection;
    let topic = args
        .topic
        .topic
        .clone()
        .unwrap_or_else(setup::fresh_topic_name);
    let partitions = setup::ensure_topic(connection, &topic, args.topic.partitions).await?;
    let plan = args.producer.plan(&topic, None);
    let config = args.producer.client_config(connection);
    let counters = Arc::new(Counters::default());
    let meter = UsageMeter::start(args.common.broker_pid)?;
    let progress = Progress::start("produce", args.producer.goal(&plan), counters.clone());
    let clock = load::Clock {
        origin: Instant::now(),
    };
    let raw = (args.producer.client == ClientKind::Raw)
        .then(|| {
            tokio::task::block_in_place(|| args.producer.raw_plan(connection, &topic, &partitions))
        })
        .transpose()?;
    let outcome = {
        let counters = counters.clone();
        tokio::task::spawn_blocking(move || match raw {
            Some(raw) => raw::run(&plan, &raw, clock, &counters),
            None => load::run(&config, &plan, clock, &counters),
        })
        .await
        .context("the producers stopped")??
    };
    progress.finish();
    let usage = meter.finish();

    let mut report = Report::new("produce");
    report.add("topic", topic.clone(), "topic", json!(topic));
    report.add(
        "partitions",
        partitions.len().to_string(),
        "partitions",
        json!(partitions.len()),
    );
    args.producer.describe(&mut report);
    let delivered = counters.records.load(std::sync::atomic::Ordering::Relaxed);
    report.throughput(&Throughput {
        records: delivered,
        bytes: counters.bytes.load(std::sync::atomic::Ordering::Relaxed),
        elapsed: outcome.elapsed,
    });
    report.latency(
        "ack latency",
        "ack_latency",
        Latency::from_histogram(&outcome.latency),
    );
    let failed = counters.failed.load(std::sync::atomic::Ordering::Relaxed);
    report.add(
        "failed",
        stats::format_count(failed),
        "failed",
        json!(failed),
    );
    report.usage(&usage);
    args.common.emit(&report)?;
    check_deliveries(outcome.sent, delivered, failed, outcome.first_error)
}

/// The first bootstrap broker, `host:port`: the raw clients ask it for
/// the topic's leaders.
fn first_bootstrap(connection: &ConnectionArgs) -> anyhow::Result<String> {
    crate::client::parse_brokers(&connection.brokers)
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .next()
        .context("no bootstrap broker")
}

/// A run whose records did not all arrive still printed its report; it
/// then ends as an error so that scripts notice.
fn check_deliveries(
    sent: u64,
    delivered: u64,
    failed: u64,
    first_error: Option<String>,
) -> anyhow::Result<()> {
    if failed > 0 || delivered < sent {
        bail!(
            "{} of {sent} records were not delivered (first error: {})",
            sent - delivered.min(sent),
            first_error.as_deref().unwrap_or("none reported")
        );
    }
    if sent == 0 {
        bail!("no record was sent");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Harness {
        #[command(subcommand)]
        command: BenchCommand,
    }

    #[test]
    fn produce_options_parse() {
        let parsed = Harness::try_parse_from([
            "bench",
            "produce",
            "--record-size",
            "100B",
            "--keys",
            "fixed:8",
            "--rate",
            "20k",
            "--acks",
            "all",
            "--producers",
            "2",
            "--duration",
            "5s",
            "-X",
            "queue.buffering.max.ms=1",
        ])
        .expect("valid arguments");
        let BenchCommand::Produce(args) = parsed.command else {
            panic!("not produce: {parsed:?}");
        };
        assert_eq!(args.producer.record_size, 100);
        assert_eq!(args.producer.keys, Keys::Fixed(8));
        assert_eq!(args.producer.rate, Some(20_000.0));
        assert_eq!(args.producer.acks, Acks::All);
        let plan = args.producer.plan("t", None);
        assert_eq!(plan.duration, Some(Duration::from_secs(5)));
        assert_eq!(plan.records, None);
        let config = args.producer.client_config(&args.common.connection);
        assert_eq!(config.get("acks"), Some("all"));
        assert_eq!(config.get("queue.buffering.max.ms"), Some("1"));
    }

    #[test]
    fn bad_options_are_refused() {
        let cases: &[&[&str]] = &[
            &["bench", "produce", "--keys", "some"],
            &["bench", "produce", "--rate", "0"],
            &["bench", "produce", "--partitions", "0"],
            &["bench", "produce", "--producers", "0"],
            &["bench", "produce", "--acks", "2"],
            &["bench", "consume"],
        ];
        for case in cases {
            assert!(Harness::try_parse_from(*case).is_err(), "{case:?} parsed");
        }
    }

    #[test]
    fn default_run_is_ten_seconds() {
        let parsed =
            Harness::try_parse_from(["bench", "produce", "--count", "5"]).expect("valid arguments");
        let BenchCommand::Produce(args) = parsed.command else {
            panic!("not produce");
        };
        assert_eq!(args.producer.plan("t", None).duration, None);
        let parsed = Harness::try_parse_from(["bench", "produce"]).expect("valid arguments");
        let BenchCommand::Produce(args) = parsed.command else {
            panic!("not produce");
        };
        assert_eq!(
            args.producer.plan("t", None).duration,
            Some(DEFAULT_DURATION)
        );
    }

    #[test]
    fn delivery_checks() {
        assert!(check_deliveries(10, 10, 0, None).is_ok());
        assert!(check_deliveries(10, 9, 1, Some("timed out".into())).is_err());
        assert!(check_deliveries(10, 9, 0, None).is_err());
        assert!(check_deliveries(0, 0, 0, None).is_err());
    }
}
