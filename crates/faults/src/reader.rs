//! The final read: every partition from offset 0 to its high watermark,
//! through a fresh librdkafka consumer (no group, manual assignment), so
//! the records come from whichever broker leads the partition now. The
//! exactly-once job's output is read under read_committed, once no
//! transaction is open on it (its last stable offset is the high
//! watermark).

use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::checker::PartitionRead;

/// How a read sees transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isolation {
    /// Every record up to the high watermark.
    ReadUncommitted,
    /// Committed records only, once the last stable offset reached the
    /// high watermark.
    ReadCommitted,
}

impl Isolation {
    fn config(self) -> &'static str {
        match self {
            Isolation::ReadUncommitted => "read_uncommitted",
            Isolation::ReadCommitted => "read_committed",
        }
    }
}

fn reader(bootstrap: &str, isolation: Isolation) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka's assign() needs a group.id (it answers "Unknown
        // group" without one), although nothing is committed. Its
        // FindCoordinator can hold back ListOffsets on a broker that does
        // not answer it: READ_TIMEOUT bounds that.
        .set("group.id", "sluice-faults-checker")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", isolation.config())
        .set("socket.connection.setup.timeout.ms", "5000")
        .create()?)
}

/// Reads `topic`/`partition` completely, at most `timeout`. `leader` is
/// who Metadata said leads it (for the report).
pub fn read_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    leader: i32,
    timeout: Duration,
) -> anyhow::Result<PartitionRead> {
    read_partition_as(
        bootstrap,
        topic,
        partition,
        leader,
        timeout,
        Isolation::ReadUncommitted,
    )
}

/// [`read_partition`] with a chosen isolation level.
pub fn read_partition_as(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    leader: i32,
    timeout: Duration,
    isolation: Isolation,
) -> anyhow::Result<PartitionRead> {
    let consumer = reader(bootstrap, isolation)?;
    // librdkafka's ListOffsets asks with the consumer's isolation level:
    // under read_committed "high" is the last stable offset.
    let uncommitted = match isolation {
        Isolation::ReadCommitted => Some(reader(bootstrap, Isolation::ReadUncommitted)?),
        Isolation::ReadUncommitted => None,
    };
    let deadline = Instant::now() + timeout;
    let high_watermark = loop {
        let stable = |high: i64| -> anyhow::Result<bool> {
            let Some(other) = &uncommitted else {
                return Ok(true);
            };
            let (_, watermark) =
                other.fetch_watermarks(topic, partition, Duration::from_secs(5))?;
            Ok(watermark == high)
        };
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
            Ok((low, high)) => {
                if low != 0 {
                    bail!("{topic}/{partition}: log start offset {low}, not 0");
                }
                match stable(high) {
                    Ok(true) => break high,
                    Ok(false) if Instant::now() < deadline => {
                        tracing::info!(partition, "a transaction is still open; waiting");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    Ok(false) => {
                        bail!("{topic}/{partition}: a transaction stayed open for {timeout:?}")
                    }
                    Err(error) if Instant::now() < deadline => {
                        tracing::info!(partition, %error, "watermarks unavailable; retrying");
                        std::thread::sleep(Duration::from_millis(500));
                    }
                    Err(error) => bail!("{topic}/{partition}: watermarks: {error}"),
                }
            }
            Err(error) if Instant::now() < deadline => {
                tracing::info!(partition, %error, "watermarks unavailable; retrying");
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(error) => bail!("{topic}/{partition}: watermarks: {error}"),
        }
    };
    let mut read = PartitionRead {
        leader,
        high_watermark,
        records: Vec::new(),
        writers: None,
    };
    if high_watermark == 0 {
        return Ok(read);
    }
    let mut assignment = TopicPartitionList::new();
    assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
    consumer.assign(&assignment)?;
    let mut next = 0i64;
    while next < high_watermark {
        if Instant::now() > deadline {
            bail!("{topic}/{partition}: read reached offset {next} of {high_watermark} within {timeout:?}");
        }
        match consumer.poll(Duration::from_millis(500)) {
            None => {}
            // The end of the log as the broker sees it: if that is below
            // the watermark we read, the checker reports the missing tail.
            Some(Err(KafkaError::PartitionEOF(_))) => break,
            Some(Ok(message)) => {
                next = message.offset() + 1;
                if message.offset() < high_watermark {
                    let value = message
                        .payload()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .unwrap_or_default();
                    read.records.push((message.offset(), value));
                }
            }
            Some(Err(error)) => {
                tracing::info!(partition, %error, "read error; the consumer retries");
            }
        }
    }
    Ok(read)
}
