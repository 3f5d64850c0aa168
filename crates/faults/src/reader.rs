//! The final read: every partition from offset 0 to its high watermark,
//! through a fresh librdkafka consumer (no group, manual assignment), so
//! the records come from whichever broker leads the partition now.

use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::checker::PartitionRead;

/// Reads `topic`/`partition` completely, at most `timeout`. `leader` is
/// who Metadata said leads it (for the report).
pub fn read_partition(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    leader: i32,
    timeout: Duration,
) -> anyhow::Result<PartitionRead> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // librdkafka's assign() needs a group.id (it answers "Unknown
        // group" without one), although nothing is committed. Its
        // FindCoordinator can hold back ListOffsets on a broker that does
        // not answer it: READ_TIMEOUT bounds that.
        .set("group.id", "sluice-faults-checker")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .set("isolation.level", "read_uncommitted")
        .set("socket.connection.setup.timeout.ms", "5000")
        .create()?;
    let deadline = Instant::now() + timeout;
    let high_watermark = loop {
        match consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)) {
            Ok((low, high)) => {
                if low != 0 {
                    bail!("{topic}/{partition}: log start offset {low}, not 0");
                }
                break high;
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
