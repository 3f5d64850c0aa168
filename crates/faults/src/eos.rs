//! The exactly-once workload: a consume-transform-produce job, as Kafka
//! Streams or a careful librdkafka application runs one. A consumer in its
//! own group reads the data topic (read_committed); each batch becomes one
//! transaction of a transactional producer that writes one output record
//! per input record to the same partition of the output topic and commits
//! the consumer's offsets inside the transaction
//! (`send_offsets_to_transaction`). Every [`ABORT_EVERY`]th transaction is
//! aborted on purpose after its outputs were sent (its records are marked,
//! and must never be visible under read_committed); the consumer then
//! seeks back and the batch is done again.
//!
//! An error the transaction API calls abortable aborts the transaction;
//! any other (fatal, or an outcome librdkafka cannot know, such as a commit
//! that timed out) drops the producer and the consumer and starts both
//! again: the new producer's `init_transactions` fences the old one and
//! completes or aborts what it left open, and the new consumer starts from
//! the group's committed offsets. That is the recovery Kafka documents, so
//! the checker ([`crate::consumption::check_eos`]) can demand that every input
//! record below the committed offsets has exactly one output.
//!
//! Each transaction runs on a thread of its own under a watchdog
//! ([`TRANSACTION_WATCHDOG`]): librdkafka 2.12.1's
//! `send_offsets_to_transaction` can wait far beyond its timeout
//! (docs/FAULTS.md #6: it waits with RD_POLL_INFINITE, and its coordinator
//! request never checks its own deadline). A transaction the watchdog gives
//! up on is counted as hung and left to its thread; the job starts a new
//! instance, whose `init_transactions` fences the hung producer and aborts
//! its transaction, as a supervisor would restart a stuck application.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::history::Shared;

/// The job's consumer group.
pub const GROUP: &str = "faults-eos";
/// The job's transactional id.
const TRANSACTIONAL_ID: &str = "faults-eos-job";
/// Every how many transactions one is aborted on purpose.
const ABORT_EVERY: u64 = 7;
/// The largest batch (one transaction).
const BATCH_MAX: usize = 100;
/// How long a batch collects records.
const BATCH_WAIT: Duration = Duration::from_millis(300);
/// Bound of each transaction API call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause before starting again after a failed start.
const RESTART_BACKOFF: Duration = Duration::from_secs(2);
/// How long one transaction may take in all: its blocking calls
/// (sends on a full queue, `send_offsets_to_transaction`, the commit or the
/// abort, an abort after an error) are each bounded by [`CALL_TIMEOUT`].
const TRANSACTION_WATCHDOG: Duration = Duration::from_secs(3 * 30 + 15);

/// The output value for input record (`partition`, `offset`, `value`);
/// `aborted` marks a transaction aborted on purpose.
pub fn output_value(aborted: bool, partition: i32, offset: i64, value: &str) -> String {
    let mark = if aborted { "abort" } else { "eos" };
    format!("{mark}|p{partition}|o{offset}|{value}")
}

/// An output value parsed back: (aborted, input partition, input offset,
/// input value).
pub fn parse_output(text: &str) -> Option<(bool, i32, i64, &str)> {
    let mut parts = text.splitn(4, '|');
    let aborted = match parts.next()? {
        "eos" => false,
        "abort" => true,
        _ => return None,
    };
    let partition = parts.next()?.strip_prefix('p')?.parse().ok()?;
    let offset = parts.next()?.strip_prefix('o')?.parse().ok()?;
    Some((aborted, partition, offset, parts.next()?))
}

/// What the job did.
#[derive(Default)]
pub struct EosStats {
    /// Transactions committed.
    pub committed: u64,
    /// Transactions aborted on purpose.
    pub aborted_on_purpose: u64,
    /// Transactions aborted after an abortable error.
    pub aborted_after_error: u64,
    /// Times the producer and consumer were started.
    pub starts: u64,
    /// Transactions the watchdog gave up on (a client call that outlived
    /// its timeout: docs/FAULTS.md #6).
    pub hung: u64,
    /// Errors by text.
    pub errors: BTreeMap<String, u64>,
}

/// The job's statistics, shared with the summary.
#[derive(Clone, Default)]
pub struct SharedEos(Arc<Mutex<EosStats>>);

impl SharedEos {
    /// Locks them (a poisoned lock still holds usable numbers).
    pub fn lock(&self) -> MutexGuard<'_, EosStats> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn error(&self, what: &str, error: &KafkaError) {
        *self
            .lock()
            .errors
            .entry(format!("{what}: {error}"))
            .or_default() += 1;
    }
}

/// Where the job reads and writes.
#[derive(Clone)]
pub struct EosConfig {
    /// `bootstrap.servers`.
    pub bootstrap: String,
    /// The data topic (input).
    pub input: String,
    /// The output topic (as many partitions as the input).
    pub output: String,
}

type Job = (BaseConsumer, ThreadedProducer<DefaultProducerContext>);

/// How [`transaction`] went, or that it did not end within the watchdog.
enum Outcome {
    Ended(Result<Ended, Failed>),
    Hung,
}

/// Runs [`transaction`] on a thread of its own and waits for it at most
/// [`TRANSACTION_WATCHDOG`]; a hung one is left to its thread (which keeps
/// its share of the job).
fn watched_transaction(
    config: &Arc<EosConfig>,
    job: &Arc<Job>,
    batch: &[(i32, i64, String)],
    on_purpose: bool,
    stats: &SharedEos,
) -> Outcome {
    let (done, outcome) = std::sync::mpsc::channel();
    let spawned = {
        let (config, job, stats) = (config.clone(), job.clone(), stats.clone());
        let batch = batch.to_vec();
        std::thread::Builder::new()
            .name("faults-eos-txn".to_string())
            .spawn(move || {
                let _ = done.send(transaction(&config, &job, &batch, on_purpose, &stats));
            })
    };
    if spawned.is_err() {
        return Outcome::Ended(Err(Failed::Restart));
    }
    match outcome.recv_timeout(TRANSACTION_WATCHDOG) {
        Ok(ended) => Outcome::Ended(ended),
        Err(_) => Outcome::Hung,
    }
}

fn new_producer(
    config: &EosConfig,
    instance: u64,
) -> anyhow::Result<ThreadedProducer<DefaultProducerContext>> {
    let mut client = ClientConfig::new();
    // librdkafka's debug contexts for the job's producer (for example
    // `eos,broker`), logged at debug level: run with
    // RUST_LOG=info,librdkafka=debug.
    if let Ok(debug) = std::env::var("SLUICE_FAULTS_EOS_DEBUG") {
        client.set("debug", debug);
    }
    let producer: ThreadedProducer<DefaultProducerContext> = client
        .set("bootstrap.servers", &config.bootstrap)
        .set("transactional.id", TRANSACTIONAL_ID)
        .set("client.id", format!("faults-eos-{instance}"))
        .set("acks", "all")
        .set("transaction.timeout.ms", "30000")
        .set("message.timeout.ms", "25000")
        .set("request.timeout.ms", "10000")
        .set("linger.ms", "5")
        .set("socket.connection.setup.timeout.ms", "5000")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .create()?;
    producer.init_transactions(CALL_TIMEOUT)?;
    Ok(producer)
}

fn start(config: &EosConfig, instance: u64) -> anyhow::Result<Job> {
    let producer = new_producer(config, instance)?;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &config.bootstrap)
        .set("group.id", GROUP)
        .set("client.id", format!("faults-eos-{instance}"))
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "120000")
        .set("socket.connection.setup.timeout.ms", "5000")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .create()?;
    consumer.subscribe(&[&config.input])?;
    Ok((consumer, producer))
}

/// One batch of input records: (partition, offset, value).
fn poll_batch(consumer: &BaseConsumer, stop: &AtomicBool) -> Vec<(i32, i64, String)> {
    let deadline = Instant::now() + BATCH_WAIT;
    let mut batch = Vec::new();
    while batch.len() < BATCH_MAX && !stop.load(Ordering::Relaxed) {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match consumer.poll(left) {
            Some(Ok(message)) => {
                let value = message
                    .payload()
                    .map(|p| String::from_utf8_lossy(p).into_owned())
                    .unwrap_or_default();
                batch.push((message.partition(), message.offset(), value));
            }
            Some(Err(error)) => tracing::debug!(%error, "exactly-once job poll error"),
            None => {}
        }
    }
    batch
}

/// How one transaction ended.
enum Ended {
    Committed,
    AbortedOnPurpose,
}

/// Why a transaction did not commit.
enum Failed {
    /// Abortable: the transaction was aborted (or the abort failed, then
    /// `restart`).
    Aborted { restart: bool },
    /// Anything else: start again.
    Restart,
}

fn transaction(
    config: &EosConfig,
    job: &Job,
    batch: &[(i32, i64, String)],
    on_purpose: bool,
    stats: &SharedEos,
) -> Result<Ended, Failed> {
    let (consumer, producer) = job;
    let fail = |what: &str, error: KafkaError| {
        stats.error(what, &error);
        let abortable = matches!(&error, KafkaError::Transaction(e) if e.txn_requires_abort());
        if !abortable {
            return Failed::Restart;
        }
        match producer.abort_transaction(CALL_TIMEOUT) {
            Ok(()) => Failed::Aborted { restart: false },
            Err(error) => {
                stats.error("abort_transaction", &error);
                Failed::Aborted { restart: true }
            }
        }
    };
    producer
        .begin_transaction()
        .map_err(|e| fail("begin_transaction", e))?;
    for (partition, offset, value) in batch {
        let payload = output_value(on_purpose, *partition, *offset, value);
        let mut record = BaseRecord::<(), String>::to(&config.output)
            .partition(*partition)
            .payload(&payload);
        let sent_by = Instant::now() + CALL_TIMEOUT;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < sent_by =>
                {
                    record = back;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err((error, _)) => return Err(fail("send", error)),
            }
        }
    }
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, offset, _) in batch {
        let entry = next.entry(*partition).or_insert(offset + 1);
        *entry = (*entry).max(offset + 1);
    }
    let mut offsets = TopicPartitionList::new();
    for (&partition, &offset) in &next {
        if let Err(error) =
            offsets.add_partition_offset(&config.input, partition, Offset::Offset(offset))
        {
            return Err(fail("offsets", error));
        }
    }
    let Some(metadata) = consumer.group_metadata() else {
        return Err(Failed::Restart);
    };
    producer
        .send_offsets_to_transaction(&offsets, &metadata, CALL_TIMEOUT)
        .map_err(|e| fail("send_offsets_to_transaction", e))?;
    if on_purpose {
        return match producer.abort_transaction(CALL_TIMEOUT) {
            Ok(()) => Ok(Ended::AbortedOnPurpose),
            Err(error) => {
                stats.error("abort_transaction (on purpose)", &error);
                Err(Failed::Restart)
            }
        };
    }
    producer
        .commit_transaction(CALL_TIMEOUT)
        .map_err(|e| fail("commit_transaction", e))?;
    Ok(Ended::Committed)
}

/// Seeks the consumer back to the first offset of `batch` in each of its
/// partitions, so that an aborted batch is done again.
fn rewind(consumer: &BaseConsumer, input: &str, batch: &[(i32, i64, String)]) -> bool {
    let mut first: BTreeMap<i32, i64> = BTreeMap::new();
    for (partition, offset, _) in batch {
        let entry = first.entry(*partition).or_insert(*offset);
        *entry = (*entry).min(*offset);
    }
    first.into_iter().all(|(partition, offset)| {
        consumer
            .seek(
                input,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(10),
            )
            .is_ok()
    })
}

/// Runs the job until `stop`; at the end the open transaction (if any) is
/// aborted and the clients closed.
pub fn run(
    config: EosConfig,
    stats: SharedEos,
    history: Shared,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let config = Arc::new(config);
    let mut instance = 0u64;
    let mut transactions = 0u64;
    while !stop.load(Ordering::Relaxed) {
        instance += 1;
        let job = match start(&config, instance) {
            Ok(job) => Arc::new(job),
            Err(error) => {
                history.note(format!(
                    "exactly-once job instance {instance} did not start: {error:#}"
                ));
                std::thread::sleep(RESTART_BACKOFF);
                continue;
            }
        };
        stats.lock().starts += 1;
        history.note(format!("exactly-once job instance {instance} started"));
        // Where this instance began reading each partition (the group's
        // committed offsets as it found them), noted once per partition.
        let mut first_read: BTreeMap<i32, i64> = BTreeMap::new();
        while !stop.load(Ordering::Relaxed) {
            let batch = poll_batch(&job.0, &stop);
            if batch.is_empty() {
                continue;
            }
            for (partition, offset, _) in &batch {
                if first_read.insert(*partition, *offset).is_none() {
                    history.note(format!(
                        "exactly-once job instance {instance} first read {partition}@{offset}"
                    ));
                }
            }
            transactions += 1;
            let on_purpose = transactions.is_multiple_of(ABORT_EVERY);
            let ended = match watched_transaction(&config, &job, &batch, on_purpose, &stats) {
                Outcome::Ended(ended) => ended,
                Outcome::Hung => {
                    stats.lock().hung += 1;
                    history.note(format!(
                        "exactly-once job instance {instance}: transaction {transactions} \
                         hung past {} s in a client call (FAULTS.md #6); a new instance \
                         fences it",
                        TRANSACTION_WATCHDOG.as_secs()
                    ));
                    break;
                }
            };
            match ended {
                Ok(Ended::Committed) => stats.lock().committed += 1,
                Ok(Ended::AbortedOnPurpose) => {
                    stats.lock().aborted_on_purpose += 1;
                    if !rewind(&job.0, &config.input, &batch) {
                        break;
                    }
                }
                Err(Failed::Aborted { restart }) => {
                    stats.lock().aborted_after_error += 1;
                    if restart || !rewind(&job.0, &config.input, &batch) {
                        break;
                    }
                }
                Err(Failed::Restart) => {
                    history.note(format!(
                        "exactly-once job instance {instance} stops after transaction {transactions} failed"
                    ));
                    break;
                }
            }
        }
        // Dropping the producer leaves an open transaction to the next
        // instance's init_transactions (or the coordinator's timeout).
        drop(job);
    }
    // A transaction the last instance left open (a commit whose outcome
    // it could not know) is completed or aborted by a new instance's
    // init_transactions, so the final read does not wait for the
    // coordinator's transaction timeout.
    if let Err(error) = new_producer(&config, instance + 1) {
        history.note(format!(
            "exactly-once job: the closing init_transactions failed: {error:#}"
        ));
    }
    history.note(format!(
        "exactly-once job stopped after {transactions} transactions in {instance} instances"
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_values_parse_back() {
        let value = output_value(false, 2, 17, "p2-i1-n5-x|y");
        assert_eq!(parse_output(&value), Some((false, 2, 17, "p2-i1-n5-x|y")));
        let value = output_value(true, 0, 0, "v");
        assert_eq!(parse_output(&value), Some((true, 0, 0, "v")));
        assert_eq!(parse_output("garbage"), None);
    }
}
