//! Before a run: the topic (created when absent), its partitions and their
//! watermarks. Everything here goes through the Kafka protocol only.

use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use rdkafka::admin::{AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::types::RDKafkaErrorCode;

use crate::client::{blocking, CliContext, ConnectionArgs, REQUEST_TIMEOUT};

/// How long a freshly created topic may take to show leaders for all its
/// partitions in the metadata.
const TOPIC_READY_TIMEOUT: Duration = Duration::from_secs(30);

/// The partition ids of `topic`, creating it with `partitions` partitions
/// (replication factor 1) when the broker does not know it.
pub async fn ensure_topic(
    connection: &ConnectionArgs,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<Vec<i32>> {
    let client = connection.metadata_client()?;
    if let Some(existing) = partition_ids(&client, topic)? {
        return Ok(existing);
    }
    let admin = connection.admin()?;
    let options = AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT));
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .with_context(|| format!("creating topic {topic}"))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => bail!("creating topic {topic}: {code}"),
        }
    }
    let deadline = Instant::now() + TOPIC_READY_TIMEOUT;
    loop {
        if let Some(ids) = partition_ids(&client, topic)? {
            if ids.len() == partitions as usize {
                return Ok(ids);
            }
        }
        if Instant::now() > deadline {
            bail!(
                "topic {topic}: created, but not all {partitions} partitions had a leader after {} s",
                TOPIC_READY_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The ids of `topic`'s partitions that have a leader, or None when the
/// broker does not know the topic (or none of its partitions has a leader).
pub fn partition_ids(
    client: &BaseConsumer<CliContext>,
    topic: &str,
) -> anyhow::Result<Option<Vec<i32>>> {
    let metadata = blocking(|| client.fetch_metadata(Some(topic), REQUEST_TIMEOUT))
        .context("fetching metadata")?;
    let Some(entry) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    if entry.error().is_some() {
        return Ok(None);
    }
    let mut ids: Vec<i32> = entry
        .partitions()
        .iter()
        .filter(|partition| partition.leader() >= 0)
        .map(|partition| partition.id())
        .collect();
    ids.sort_unstable();
    Ok((!ids.is_empty()).then_some(ids))
}

/// One partition's offsets at the start of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Watermarks {
    pub partition: i32,
    /// The log start offset.
    pub low: i64,
    /// The high watermark: the next offset to be written.
    pub high: i64,
}

/// The watermarks of every listed partition.
pub fn watermarks(
    client: &BaseConsumer<CliContext>,
    topic: &str,
    partitions: &[i32],
) -> anyhow::Result<Vec<Watermarks>> {
    partitions
        .iter()
        .map(|&partition| {
            let (low, high) =
                blocking(|| client.fetch_watermarks(topic, partition, REQUEST_TIMEOUT))
                    .with_context(|| format!("reading the watermarks of {topic}/{partition}"))?;
            Ok(Watermarks {
                partition,
                low,
                high,
            })
        })
        .collect()
}

/// A topic name nobody else uses: `sluice-bench-<pid>-<unix ms>`.
pub fn fresh_topic_name() -> String {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_millis())
        .unwrap_or(0);
    format!("sluice-bench-{}-{millis}", std::process::id())
}
