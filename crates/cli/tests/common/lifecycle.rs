//! Helpers for the log-lifecycle tests (retention, compaction, topic configs):
//! broker settings that make the maintenance loops fast, topic creation with
//! configs, DescribeConfigs / AlterConfigs / DeleteRecords / CreatePartitions
//! through rdkafka's AdminClient, bulk produce, read-to-the-end, and the
//! segment files of a partition.
//!
//! Included by `retention.rs`, `compaction.rs` and `admin_configs.rs` with
//! `#[path = "common/lifecycle.rs"] mod lifecycle;` next to `mod common;`.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::Path;
use std::time::{Duration, Instant};

use rdkafka::admin::{
    AlterConfig, ConfigResource, NewPartitions, NewTopic, ResourceSpecifier, TopicReplication,
};
use rdkafka::consumer::BaseConsumer;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::common::{admin, admin_options, assign, consumer, CLIENT_TIMEOUT};

/// Broker settings for lifecycle tests: retention checked and the cleaner run
/// every half second, deleted segment files removed 200 ms after deletion.
pub const FAST_MAINTENANCE: &[(&str, &str)] = &[
    ("log.retention.check.interval.ms", "500"),
    ("log.cleaner.backoff.ms", "500"),
    ("log.segment.delete.delay.ms", "200"),
];

/// Bound of one admin call, including librdkafka's own retries.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs an admin future with a bound.
async fn bounded<T>(what: &str, future: impl Future<Output = T>) -> T {
    tokio::time::timeout(ADMIN_TIMEOUT, future)
        .await
        .unwrap_or_else(|_| panic!("{what} did not complete within {ADMIN_TIMEOUT:?}"))
}

/// Polls `check` every 100 ms until it returns `Some`, or panics after
/// `timeout` with `what` and the last state `describe` gives.
pub async fn wait_until<T>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Option<T>,
    describe: impl Fn() -> String,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        if Instant::now() > deadline {
            panic!(
                "timed out after {timeout:?} waiting for {what}; {}",
                describe()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Creates a topic (replication factor 1) with topic configs; the broker's
/// per-topic answer.
pub async fn create_topic_with_raw(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> Result<(), RDKafkaErrorCode> {
    let admin = admin(bootstrap);
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let results = bounded(
        "CreateTopics",
        admin.create_topics([&topic], &admin_options()),
    )
    .await
    .expect("CreateTopics request failed");
    assert_eq!(results.len(), 1, "one CreateTopics result");
    results[0].clone().map(|_| ()).map_err(|(_, code)| code)
}

/// Creates a topic with topic configs and asserts success.
pub async fn create_topic_with(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    if let Err(code) = create_topic_with_raw(bootstrap, name, partitions, configs).await {
        panic!("creating topic {name:?} with {configs:?} failed: {code:?}");
    }
}

/// DescribeConfigs of one topic.
pub async fn describe_topic(bootstrap: &str, topic: &str) -> ConfigResource {
    describe(bootstrap, ResourceSpecifier::Topic(topic)).await
}

/// DescribeConfigs of one resource; panics on a request or resource error.
pub async fn describe(bootstrap: &str, resource: ResourceSpecifier<'_>) -> ConfigResource {
    let admin = admin(bootstrap);
    let mut results = bounded(
        "DescribeConfigs",
        admin.describe_configs([&resource], &admin_options()),
    )
    .await
    .expect("DescribeConfigs request failed");
    assert_eq!(results.len(), 1, "one DescribeConfigs result");
    results
        .remove(0)
        .unwrap_or_else(|code| panic!("DescribeConfigs of {resource:?} failed: {code:?}"))
}

/// Name → value of every described config (sources left out), for
/// "nothing changed" comparisons.
pub fn values(resource: &ConfigResource) -> BTreeMap<String, Option<String>> {
    resource
        .entries
        .iter()
        .map(|entry| (entry.name.clone(), entry.value.clone()))
        .collect()
}

/// The value of one described config; panics when it is missing.
pub fn value_of(resource: &ConfigResource, name: &str) -> String {
    resource
        .get(name)
        .unwrap_or_else(|| panic!("DescribeConfigs has no {name}"))
        .value
        .clone()
        .unwrap_or_else(|| panic!("DescribeConfigs has no value for {name}"))
}

/// AlterConfigs (the non-incremental API: every config not given returns to
/// its default) of one resource through rdkafka. rdkafka 0.39 drops the
/// per-resource error of the answer (its `AlterConfigsFuture` reports every
/// resource as `Ok`), so this only proves the request completed: callers check
/// the effect with DescribeConfigs, and bad-input tests send raw requests.
pub async fn alter_configs(
    bootstrap: &str,
    resource: ResourceSpecifier<'_>,
    configs: &[(&str, &str)],
) {
    let admin = admin(bootstrap);
    let mut alter = AlterConfig::new(resource);
    for (key, value) in configs {
        alter = alter.set(key, value);
    }
    let results = bounded(
        "AlterConfigs",
        admin.alter_configs([&alter], &admin_options()),
    )
    .await
    .expect("AlterConfigs request failed");
    assert_eq!(results.len(), 1, "one AlterConfigs result");
    if let Err((_, code)) = &results[0] {
        panic!("AlterConfigs of {resource:?} with {configs:?} failed: {code:?}");
    }
}

/// CreatePartitions of one topic to `count` partitions; the broker's answer.
pub async fn create_partitions(
    bootstrap: &str,
    topic: &str,
    count: usize,
) -> Result<(), RDKafkaErrorCode> {
    let admin = admin(bootstrap);
    let partitions = NewPartitions::new(topic, count);
    let results = bounded(
        "CreatePartitions",
        admin.create_partitions([&partitions], &admin_options()),
    )
    .await
    .expect("CreatePartitions request failed");
    assert_eq!(results.len(), 1, "one CreatePartitions result");
    match &results[0] {
        Ok(_) => Ok(()),
        Err((_, code)) => Err(*code),
    }
}

/// DeleteRecords of one partition before `offset` (`Offset::End`: the high
/// watermark); the new low watermark or the partition's error.
pub async fn delete_records(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    offset: Offset,
) -> Result<i64, KafkaError> {
    let admin = admin(bootstrap);
    let mut list = TopicPartitionList::new();
    list.add_partition_offset(topic, partition, offset)
        .expect("add partition to DeleteRecords list");
    let result = bounded(
        "DeleteRecords",
        admin.delete_records(&list, &admin_options()),
    )
    .await?;
    let element = result
        .find_partition(topic, partition)
        .expect("DeleteRecords answer has the partition");
    element.error()?;
    match element.offset() {
        Offset::Offset(low) => Ok(low),
        other => panic!("DeleteRecords answered offset {other:?}"),
    }
}

/// One record to produce: key, value (`None`: tombstone / null), timestamp.
pub struct Outgoing {
    /// Record key.
    pub key: Option<String>,
    /// Record value.
    pub value: Option<String>,
    /// CreateTime; `None` lets the client stamp it.
    pub timestamp: Option<i64>,
}

impl Outgoing {
    /// A keyed record with a value.
    pub fn keyed(key: impl Into<String>, value: impl Into<String>) -> Self {
        Outgoing {
            key: Some(key.into()),
            value: Some(value.into()),
            timestamp: None,
        }
    }

    /// A tombstone: key, null value.
    pub fn tombstone(key: impl Into<String>) -> Self {
        Outgoing {
            key: Some(key.into()),
            value: None,
            timestamp: None,
        }
    }
}

/// A producer for bulk writes: batches of up to `batch_bytes` after 5 ms, one
/// request in flight (so offsets follow the enqueue order of one partition).
pub fn bulk_producer(bootstrap: &str, batch_bytes: usize) -> FutureProducer {
    let batch_bytes = batch_bytes.to_string();
    crate::common::producer(
        bootstrap,
        &[
            ("linger.ms", "5"),
            ("batch.size", batch_bytes.as_str()),
            ("enable.idempotence", "false"),
            ("max.in.flight.requests.per.connection", "1"),
        ],
    )
}

/// Produces `records` to one partition (in chunks of at most 10 000 in flight)
/// and returns their offsets in order; panics on any failed delivery.
pub async fn produce_all(
    producer: &FutureProducer,
    topic: &str,
    partition: i32,
    records: &[Outgoing],
) -> Vec<i64> {
    let mut offsets = Vec::with_capacity(records.len());
    for chunk in records.chunks(10_000) {
        let mut pending = Vec::with_capacity(chunk.len());
        for record in chunk {
            let mut future = FutureRecord::<String, String>::to(topic).partition(partition);
            if let Some(key) = &record.key {
                future = future.key(key);
            }
            if let Some(value) = &record.value {
                future = future.payload(value);
            }
            if let Some(timestamp) = record.timestamp {
                future = future.timestamp(timestamp);
            }
            match producer.send_result(future) {
                Ok(delivery) => pending.push(delivery),
                Err((error, _)) => panic!("enqueue to {topic}/{partition} failed: {error}"),
            }
        }
        for delivery in pending {
            match tokio::time::timeout(CLIENT_TIMEOUT + Duration::from_secs(10), delivery).await {
                Ok(Ok(Ok(delivery))) => offsets.push(delivery.offset),
                Ok(Ok(Err((error, _)))) => panic!("produce to {topic}/{partition} failed: {error}"),
                Ok(Err(_)) => panic!("delivery to {topic}/{partition} cancelled"),
                Err(_) => panic!("no delivery report from {topic}/{partition} in time"),
            }
        }
    }
    offsets
}

/// Reads one partition from `start` until a record at offset >= `high - 1`
/// arrived (the high watermark the caller read before), or panics after
/// `timeout`. Consumer errors fail the read.
pub fn read_until(
    bootstrap: &str,
    topic: &str,
    partition: i32,
    start: Offset,
    high: i64,
    reset: &str,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let consumer = consumer(
        bootstrap,
        &[("auto.offset.reset", reset), ("fetch.wait.max.ms", "100")],
    );
    assign(&consumer, topic, &[(partition, start)]);
    read_from(&consumer, high, timeout)
}

/// Polls `consumer` until a record at offset >= `high - 1` arrived.
pub fn read_from(consumer: &BaseConsumer, high: i64, timeout: Duration) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + timeout;
    let mut messages: Vec<OwnedMessage> = Vec::new();
    while messages.last().map(Message::offset).unwrap_or(-1) < high - 1 {
        let now = Instant::now();
        assert!(
            now < deadline,
            "read {} records in {timeout:?}, last offset {:?}, wanted up to {}",
            messages.len(),
            messages.last().map(Message::offset),
            high - 1
        );
        match consumer.poll((deadline - now).min(Duration::from_millis(200))) {
            Some(Ok(message)) => messages.push(message.detach()),
            Some(Err(error)) => panic!("consumer error: {error}"),
            None => {}
        }
    }
    messages
}

/// Key and value of a record as UTF-8 strings.
pub fn strings(message: &OwnedMessage) -> (Option<String>, Option<String>) {
    (
        message
            .key()
            .map(|key| String::from_utf8_lossy(key).into_owned()),
        message
            .payload()
            .map(|value| String::from_utf8_lossy(value).into_owned()),
    )
}

/// The files of a partition directory: name → size.
pub fn partition_files(data_dir: &Path, topic: &str, partition: i32) -> BTreeMap<String, u64> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let size = entry.metadata().ok()?.len();
            Some((entry.file_name().to_string_lossy().into_owned(), size))
        })
        .collect()
}

/// Bytes of every file of a partition directory (live segments, indexes,
/// checkpoints and segments waiting for their delayed removal).
pub fn partition_bytes(data_dir: &Path, topic: &str, partition: i32) -> u64 {
    partition_files(data_dir, topic, partition).values().sum()
}

/// Base offsets of the live segments (`<base>.log`), ascending.
pub fn segment_bases(data_dir: &Path, topic: &str, partition: i32) -> Vec<i64> {
    partition_files(data_dir, topic, partition)
        .keys()
        .filter_map(|name| name.strip_suffix(".log")?.parse().ok())
        .collect()
}

/// The partition's files, one per line, for failure messages.
pub fn list_files(data_dir: &Path, topic: &str, partition: i32) -> String {
    partition_files(data_dir, topic, partition)
        .iter()
        .map(|(name, size)| format!("{size:>10} {name}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}
