//! `sluice consume TOPIC`: print records to standard output.
//!
//! Without `-g`, the partitions are assigned directly (no group, no offset
//! commits). With `-g GROUP`, the consumer joins the group, takes the
//! partitions the group assigns it, and commits the offset after each record
//! it has printed (auto-commit of offsets stored after printing, and a
//! synchronous commit on the way out). On `-n`, Ctrl-C or SIGTERM it closes
//! the consumer, which leaves the group (LeaveGroup) so that its partitions
//! move to the other members at once rather than after the session timeout.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::Args;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{fetch_metadata, parse_key_value, CliContext, ConnectionArgs};
use crate::format::{Format, Record};

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Which brokers to talk to.
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
    /// Topic to consume.
    topic: String,
    /// Consume only this partition (default: all partitions).
    #[arg(long, value_name = "N", conflicts_with = "group")]
    partition: Option<i32>,
    /// Start at the earliest offset (default: the end).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Start at this offset; a negative N starts N records before the end.
    #[arg(
        long,
        value_name = "N",
        allow_negative_numbers = true,
        conflicts_with = "group"
    )]
    offset: Option<i64>,
    /// Stop after COUNT records (default: run until Ctrl-C).
    #[arg(short = 'n', long = "count", value_name = "COUNT")]
    count: Option<u64>,
    /// Output format: %k key, %v value, %p partition, %o offset,
    /// %t timestamp (ms), %h headers, %T topic; \n and \t escapes.
    #[arg(long, value_name = "FMT", default_value = "%v\\n")]
    format: String,
    /// Consume as a member of this consumer group.
    #[arg(short = 'g', long, value_name = "GROUP")]
    group: Option<String>,
    /// A librdkafka consumer property, repeatable (as kcat's -X), e.g.
    /// -X session.timeout.ms=6000; applied last.
    #[arg(short = 'X', long = "property", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    properties: Vec<(String, String)>,
    /// Which records of transactions to read (default: librdkafka's,
    /// read_committed): read_committed skips aborted transactions and stops
    /// at the first open one; read_uncommitted reads everything.
    #[arg(long, value_enum, value_name = "LEVEL")]
    isolation: Option<Isolation>,
}

/// The consumer's `isolation.level`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Isolation {
    #[value(name = "read_committed")]
    ReadCommitted,
    #[value(name = "read_uncommitted")]
    ReadUncommitted,
}

/// How long closing the group consumer (final commit, LeaveGroup) may take
/// before the command exits anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let format = Format::parse(&args.format)
        .map_err(anyhow::Error::msg)
        .context("in --format")?;
    if args.count == Some(0) {
        return Ok(());
    }
    let consumer = match &args.group {
        Some(group) => subscribe(&args, group)?,
        None => assign(&args).await?,
    };

    let mut stdout = std::io::stdout().lock();
    let mut out = Vec::new();
    let mut received = 0u64;
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(interrupted);
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    loop {
        let message = tokio::select! {
            message = consumer.recv() => message,
            _ = &mut interrupted => break,
            _ = terminate.recv() => break,
        };
        let message = message.context("consuming")?;
        let headers = message
            .headers()
            .map(|headers| headers.iter().map(|h| (h.key, h.value)).collect())
            .unwrap_or_default();
        let record = Record {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            timestamp: message.timestamp().to_millis(),
            key: message.key(),
            value: message.payload(),
            headers,
        };
        out.clear();
        format.render(&record, &mut out);
        match stdout.write_all(&out).and_then(|()| stdout.flush()) {
            Ok(()) => {}
            // The reader went away (`sluice consume … | head`): stop quietly.
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => break,
            Err(error) => return Err(error).context("writing to stdout"),
        }
        if args.group.is_some() {
            // Printed: only now may the group's committed offset pass it.
            consumer
                .store_offset_from_message(&message)
                .context("storing the consumed offset")?;
        }
        received += 1;
        if args.count.is_some_and(|count| received >= count) {
            break;
        }
    }
    if args.group.is_some() {
        // Auto-commit runs every few seconds; commit what was printed once
        // more on the way out so that the next member starts right after it.
        let committed = crate::client::blocking(|| {
            consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync)
        });
        match committed {
            // Nothing consumed, nothing to commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) | Ok(()) => {}
            Err(error) => tracing::warn!(%error, "final offset commit failed"),
        }
        close(consumer);
    }
    Ok(())
}

/// Closes a group consumer: librdkafka's close revokes the assignment and
/// sends LeaveGroup. Bounded by [`CLOSE_TIMEOUT`]; a broker that does not
/// answer costs the group a session timeout, not this command its exit.
fn close(consumer: StreamConsumer<CliContext>) {
    let (done, closed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        // Dropping the last handle runs rd_kafka_consumer_close.
        drop(consumer);
        let _ = done.send(());
    });
    if crate::client::blocking(|| closed.recv_timeout(CLOSE_TIMEOUT)).is_err() {
        tracing::warn!(
            timeout_ms = CLOSE_TIMEOUT.as_millis() as u64,
            "the consumer did not close in time; exiting without LeaveGroup"
        );
    }
}

/// Assigns the partitions directly at the start offset.
async fn assign(args: &ConsumeArgs) -> anyhow::Result<StreamConsumer<CliContext>> {
    let consumer = args
        .connection
        .client_config()
        // librdkafka refuses assign() without a group id; with assign() and
        // no commits the group is never joined.
        .set("group.id", "sluice-cli")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("allow.auto.create.topics", "false")
        .clone();
    let consumer: StreamConsumer<CliContext> =
        with_properties(with_isolation(consumer, args.isolation), &args.properties)
            .create_with_context(CliContext)
            .context("creating the consumer")?;

    let partitions = match args.partition {
        Some(partition) => vec![partition],
        None => {
            let metadata =
                fetch_metadata(&consumer, Some(&args.topic), &args.connection.brokers).await?;
            topic_partitions(&metadata, &args.topic)?
        }
    };
    let start = match (args.from_beginning, args.offset) {
        (true, _) => Offset::Beginning,
        (false, Some(offset)) if offset >= 0 => Offset::Offset(offset),
        (false, Some(offset)) => Offset::OffsetTail(offset.unsigned_abs() as i64),
        (false, None) => Offset::End,
    };
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        assignment
            .add_partition_offset(&args.topic, partition, start)
            .with_context(|| format!("assigning partition {partition}"))?;
    }
    consumer
        .assign(&assignment)
        .context("assigning partitions")?;
    Ok(consumer)
}

/// Joins the consumer group and subscribes to the topic.
fn subscribe(args: &ConsumeArgs, group: &str) -> anyhow::Result<StreamConsumer<CliContext>> {
    let reset = if args.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    let config = args
        .connection
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        // Offsets are stored after printing (see `run`); auto-commit
        // commits only those.
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", reset)
        .set("allow.auto.create.topics", "false")
        .clone();
    let consumer: StreamConsumer<CliContext> =
        with_properties(with_isolation(config, args.isolation), &args.properties)
            .create_with_context(CliContext)
            .context("creating the consumer")?;
    consumer
        .subscribe(&[&args.topic])
        .with_context(|| format!("subscribing to {}", args.topic))?;
    Ok(consumer)
}

/// `config` with `isolation.level` set when `--isolation` was given.
fn with_isolation(
    mut config: rdkafka::ClientConfig,
    isolation: Option<Isolation>,
) -> rdkafka::ClientConfig {
    match isolation {
        Some(Isolation::ReadCommitted) => config.set("isolation.level", "read_committed"),
        Some(Isolation::ReadUncommitted) => config.set("isolation.level", "read_uncommitted"),
        None => &mut config,
    };
    config
}

/// `config` with the user's `-X` properties set over it.
fn with_properties(
    mut config: rdkafka::ClientConfig,
    properties: &[(String, String)],
) -> rdkafka::ClientConfig {
    for (key, value) in properties {
        config.set(key, value);
    }
    config
}

/// The partition ids of `topic`, or an error saying why there are none.
fn topic_partitions(
    metadata: &rdkafka::metadata::Metadata,
    topic: &str,
) -> anyhow::Result<Vec<i32>> {
    let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else {
        bail!("topic {topic}: not in the metadata response");
    };
    if let Some(code) = entry.error() {
        bail!(
            "topic {topic}: {}",
            rdkafka::types::RDKafkaErrorCode::from(code)
        );
    }
    if entry.partitions().is_empty() {
        bail!("topic {topic} has no partitions");
    }
    Ok(entry.partitions().iter().map(|p| p.id()).collect())
}
