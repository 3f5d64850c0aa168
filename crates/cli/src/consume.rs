//! `sluice consume TOPIC`: print records to standard output.
//!
//! Without `-g`, the partitions are assigned directly (no group, no offset
//! commits). With `-g GROUP`, the consumer subscribes through the group
//! and commits its position as it goes.

use std::io::Write as _;

use anyhow::{bail, Context as _};
use clap::Args;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{fetch_metadata, CliContext, ConnectionArgs};
use crate::format::{Format, Record};

#[derive(Debug, Args)]
pub struct ConsumeArgs {
    /// Which brokers to talk to.
    #[command(flatten)]
    connection: ConnectionArgs,
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
}

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
    loop {
        let message = tokio::select! {
            message = consumer.recv() => message,
            _ = &mut interrupted => break,
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
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(error) => return Err(error).context("writing to stdout"),
        }
        received += 1;
        if args.count.is_some_and(|count| received >= count) {
            break;
        }
    }
    if args.group.is_some() {
        // Auto-commit stores positions; commit them once more on the way
        // out so that the next run of the group starts after what we printed.
        match consumer.commit_consumer_state(rdkafka::consumer::CommitMode::Sync) {
            // Nothing consumed, nothing to commit.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) | Ok(()) => {}
            Err(error) => tracing::warn!(%error, "final offset commit failed"),
        }
    }
    Ok(())
}

/// Assigns the partitions directly at the start offset.
async fn assign(args: &ConsumeArgs) -> anyhow::Result<StreamConsumer<CliContext>> {
    let consumer: StreamConsumer<CliContext> = args
        .connection
        .client_config()
        // librdkafka refuses assign() without a group id; with assign() and
        // no commits the group is never joined.
        .set("group.id", "sluice-cli")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("allow.auto.create.topics", "false")
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
    let consumer: StreamConsumer<CliContext> = args
        .connection
        .client_config()
        .set("group.id", group)
        .set("enable.auto.commit", "true")
        .set("auto.offset.reset", reset)
        .set("allow.auto.create.topics", "false")
        .create_with_context(CliContext)
        .context("creating the consumer")?;
    consumer
        .subscribe(&[&args.topic])
        .with_context(|| format!("subscribing to {}", args.topic))?;
    Ok(consumer)
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
