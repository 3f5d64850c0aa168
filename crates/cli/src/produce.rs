//! `sluice produce TOPIC`: one record per line of standard input.

use std::collections::VecDeque;
use std::io::BufRead as _;
use std::time::Duration;

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};

use crate::client::{CliContext, ConnectionArgs};

/// Deliveries awaited at most at once; past it, the oldest is awaited before
/// the next line is read, which bounds memory for any input size.
const IN_FLIGHT_RECORDS_MAX: usize = 10_000;
/// How long one record may take to be delivered, retries included.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long InitProducerId, commit and abort may take.
const TRANSACTION_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, Args)]
pub struct ProduceArgs {
    /// Which brokers to talk to.
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
    /// Topic to produce to.
    topic: String,
    /// Split each line at the first SEP into key and value.
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Acknowledgements the producer waits for.
    #[arg(long, value_enum, default_value_t = Acks::All)]
    acks: Acks,
    /// Produce every record to this partition (default: the partitioner picks).
    #[arg(long, value_name = "N")]
    partition: Option<i32>,
    /// Compression codec for record batches.
    #[arg(long, value_enum, default_value_t = Compression::None)]
    compression: Compression,
    /// Idempotent producer (requires --acks all).
    #[arg(long)]
    idempotent: bool,
    /// Transactional producer with this id: the whole input is one
    /// transaction, committed at end of input, aborted on any failure
    /// (requires --acks all).
    #[arg(long, value_name = "ID")]
    transactional_id: Option<String>,
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

/// Counts of what happened to the records read.
#[derive(Debug, Default)]
struct Outcome {
    /// Records the broker acknowledged (or, with acks=0, that were sent).
    delivered: u64,
    /// Records that failed; each was reported on stderr.
    failed: u64,
}

pub async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    if args.idempotent && args.acks != Acks::All {
        bail!("--idempotent requires --acks all");
    }
    if args.transactional_id.is_some() && args.acks != Acks::All {
        bail!("--transactional-id requires --acks all");
    }
    if args.key_separator.as_deref() == Some("") {
        bail!("--key-separator must not be empty");
    }
    let acks = match args.acks {
        Acks::Zero => "0",
        Acks::One => "1",
        Acks::All => "all",
    };
    let compression = match args.compression {
        Compression::None => "none",
        Compression::Gzip => "gzip",
        Compression::Snappy => "snappy",
        Compression::Lz4 => "lz4",
        Compression::Zstd => "zstd",
    };
    let mut config = args.connection.client_config();
    if let Some(id) = &args.transactional_id {
        config.set("transactional.id", id);
    }
    let producer: FutureProducer<CliContext> = config
        .set("acks", acks)
        .set("compression.codec", compression)
        // A transactional producer is idempotent; librdkafka refuses
        // `transactional.id` with `enable.idempotence=false`.
        .set(
            "enable.idempotence",
            (args.idempotent || args.transactional_id.is_some()).to_string(),
        )
        .set(
            "message.timeout.ms",
            DELIVERY_TIMEOUT.as_millis().to_string(),
        )
        .set("linger.ms", "5")
        .create_with_context(CliContext)
        .context("creating the producer")?;
    if args.transactional_id.is_some() {
        crate::client::blocking(|| {
            producer.init_transactions(TRANSACTION_TIMEOUT)?;
            producer.begin_transaction()
        })
        .context("starting the transaction")?;
    }

    let mut outcome = Outcome::default();
    let mut pending: VecDeque<(u64, DeliveryFuture)> = VecDeque::new();
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    let mut line_number = 0u64;
    loop {
        line.clear();
        let read = crate::client::blocking(|| input.read_until(b'\n', &mut line))
            .context("reading standard input")?;
        if read == 0 {
            break;
        }
        line_number += 1;
        let text = strip_line_end(&line);
        let (key, value) = match &args.key_separator {
            Some(separator) => match split_key(text, separator.as_bytes()) {
                Some(parts) => (Some(parts.0), parts.1),
                None => {
                    eprintln!("error: line {line_number}: key separator {separator:?} not found");
                    outcome.failed += 1;
                    continue;
                }
            },
            None => (None, text),
        };
        let mut record = FutureRecord::<[u8], [u8]>::to(&args.topic).payload(value);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(partition) = args.partition {
            record = record.partition(partition);
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    pending.push_back((line_number, delivery));
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    match pending.pop_front() {
                        Some(oldest) => settle(&producer, oldest, &mut outcome).await?,
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                Err((error, _)) => {
                    eprintln!("error: line {line_number}: {error}");
                    outcome.failed += 1;
                    break;
                }
            }
        }
        while pending.len() > IN_FLIGHT_RECORDS_MAX {
            if let Some(oldest) = pending.pop_front() {
                settle(&producer, oldest, &mut outcome).await?;
            }
        }
    }
    while let Some(oldest) = pending.pop_front() {
        settle(&producer, oldest, &mut outcome).await?;
    }
    tracing::info!(
        topic = %args.topic,
        delivered = outcome.delivered,
        failed = outcome.failed,
        "produce finished"
    );
    if args.transactional_id.is_some() {
        if outcome.failed > 0 {
            crate::client::blocking(|| producer.abort_transaction(TRANSACTION_TIMEOUT))
                .context("aborting the transaction")?;
            bail!(
                "{} of {} records failed; the transaction was aborted",
                outcome.failed,
                outcome.failed + outcome.delivered
            );
        }
        match crate::client::blocking(|| producer.commit_transaction(TRANSACTION_TIMEOUT)) {
            Ok(()) => {}
            Err(KafkaError::Transaction(error)) if error.txn_requires_abort() => {
                crate::client::blocking(|| producer.abort_transaction(TRANSACTION_TIMEOUT))
                    .context("aborting the transaction")?;
                bail!("committing the transaction: {error}; the transaction was aborted");
            }
            Err(error) => {
                return Err(anyhow::Error::new(error).context("committing the transaction"))
            }
        }
    }
    if outcome.failed > 0 {
        bail!(
            "{} of {} records failed",
            outcome.failed,
            outcome.failed + outcome.delivered
        );
    }
    Ok(())
}

/// Waits for one delivery report and counts it.
async fn settle(
    producer: &FutureProducer<CliContext>,
    (line_number, delivery): (u64, DeliveryFuture),
    outcome: &mut Outcome,
) -> anyhow::Result<()> {
    match delivery.await {
        Ok(Ok(_)) => outcome.delivered += 1,
        Ok(Err((error, _))) => {
            outcome.failed += 1;
            // After a fatal error librdkafka purges every queued record
            // ("Purged in queue"); the fatal error is the one worth showing.
            if let Some((code, reason)) = producer.client().fatal_error() {
                bail!("the producer failed: {reason} ({code:?})");
            }
            eprintln!("error: line {line_number}: {error}");
        }
        Err(_canceled) => {
            eprintln!("error: line {line_number}: the producer dropped the delivery report");
            outcome.failed += 1;
        }
    }
    Ok(())
}

/// The line without its `\n` or `\r\n`.
fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits at the first occurrence of `separator`: (key, value).
fn split_key<'a>(line: &'a [u8], separator: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    let at = line
        .windows(separator.len())
        .position(|window| window == separator)?;
    Some((&line[..at], &line[at + separator.len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_splitting() {
        type Case = (
            &'static str,
            &'static str,
            Option<(&'static str, &'static str)>,
        );
        let cases: &[Case] = &[
            ("k:v", ":", Some(("k", "v"))),
            ("k:v:w", ":", Some(("k", "v:w"))),
            (":v", ":", Some(("", "v"))),
            ("k:", ":", Some(("k", ""))),
            ("novalue", ":", None),
            ("a::b", "::", Some(("a", "b"))),
            ("a\tb", "\t", Some(("a", "b"))),
        ];
        for (line, separator, expected) in cases {
            let got = split_key(line.as_bytes(), separator.as_bytes());
            let expected = expected.map(|(k, v)| (k.as_bytes(), v.as_bytes()));
            assert_eq!(got, expected, "{line:?} split at {separator:?}");
        }
    }

    #[test]
    fn line_ends() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"abc\n", b"abc"),
            (b"abc\r\n", b"abc"),
            (b"abc", b"abc"),
            (b"\n", b""),
            (b"a\rb\n", b"a\rb"),
        ];
        for (line, expected) in cases {
            assert_eq!(strip_line_end(line), *expected);
        }
    }
}
