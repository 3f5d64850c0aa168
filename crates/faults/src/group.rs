//! The consumer-group workload: members of one group read the data topic,
//! record every (partition, offset, value) they see, and commit their
//! positions synchronously after each batch; an observer reads the
//! group's committed offsets (OffsetFetch) every second.
//!
//! What it gives the checker: reads of each offset from whichever broker
//! led the partition at the time (compared with the final read: an offset
//! must never hold two different records), and the committed offsets over
//! time (which must never go backwards).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::history::{now, CommitSeen, Shared};

/// The group the members join.
pub const GROUP: &str = "faults-group";
/// Messages a member reads before it commits.
const BATCH_MESSAGES_MAX: usize = 200;

fn consumer_config(bootstrap: &str, group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "60000")
        .set("topic.metadata.refresh.interval.ms", "5000")
        .set("socket.connection.setup.timeout.ms", "5000");
    config
}

/// One member: runs until `stop`.
pub fn member(
    bootstrap: String,
    topic: String,
    member: u32,
    history: Shared,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = consumer_config(&bootstrap, GROUP)
        .set("client.id", format!("faults-member-{member}"))
        .create()?;
    consumer.subscribe(&[&topic])?;
    while !stop.load(Ordering::Relaxed) {
        let mut read = 0;
        while read < BATCH_MESSAGES_MAX {
            match consumer.poll(Duration::from_millis(200)) {
                None => break,
                Some(Ok(message)) => {
                    read += 1;
                    let value = message
                        .payload()
                        .map(|p| String::from_utf8_lossy(p).into_owned())
                        .unwrap_or_default();
                    let key = (message.partition(), message.offset());
                    let mut history = history.lock();
                    match history.consumed.get(&key) {
                        Some(first) if *first != value => {
                            let first = first.clone();
                            history
                                .consumer_divergences
                                .push((key.0, key.1, first, value));
                        }
                        Some(_) => {}
                        None => {
                            history.consumed.insert(key, value);
                        }
                    }
                }
                Some(Err(error)) => {
                    tracing::debug!(member, %error, "consumer error");
                    break;
                }
            }
        }
        if read == 0 {
            continue;
        }
        let Ok(all_positions) = consumer.position() else {
            continue;
        };
        // Only partitions with a position (one read since the assignment).
        let mut positions = TopicPartitionList::new();
        for element in all_positions.elements() {
            if let Offset::Offset(offset) = element.offset() {
                let _ = positions.add_partition_offset(
                    element.topic(),
                    element.partition(),
                    Offset::Offset(offset),
                );
            }
        }
        if positions.count() == 0 {
            continue;
        }
        if consumer.commit(&positions, CommitMode::Sync).is_ok() {
            let at = now();
            let mut history = history.lock();
            for element in positions.elements() {
                if let Offset::Offset(offset) = element.offset() {
                    history.commits.push(CommitSeen {
                        at,
                        partition: element.partition(),
                        offset,
                        by_member: true,
                    });
                }
            }
        }
    }
    consumer.unsubscribe();
    Ok(())
}

/// The observer: reads the committed offsets of every partition each
/// second until `stop`.
pub fn observer(
    bootstrap: String,
    topic: String,
    partitions: i32,
    history: Shared,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = consumer_config(&bootstrap, GROUP)
        .set("client.id", "faults-offset-observer")
        .create()?;
    let mut wanted = TopicPartitionList::new();
    for partition in 0..partitions {
        wanted.add_partition(&topic, partition);
    }
    while !stop.load(Ordering::Relaxed) {
        let asked_at = now();
        if let Ok(committed) = consumer.committed_offsets(wanted.clone(), Duration::from_secs(10)) {
            let mut history = history.lock();
            for element in committed.elements() {
                if let Offset::Offset(offset) = element.offset() {
                    history.commits.push(CommitSeen {
                        at: asked_at,
                        partition: element.partition(),
                        offset,
                        by_member: false,
                    });
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(())
}
