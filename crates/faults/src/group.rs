//! The consumer-group workload: consumers in one group subscribed to the
//! data topic, each committing the positions it reached synchronously
//! about once a second, and an observer that asks the group's committed
//! offsets (OffsetFetch, without joining) about once a second.
//!
//! Kafka's promise here: a committed offset does not go backwards. These
//! consumers only commit positions they reached, and a consumer that takes
//! over a partition starts from its committed offset, so a decrease can
//! only come from a commit the broker acknowledged and then lost (a
//! coordinator that failed over to a replica without it), or one it took
//! from a member it should have fenced (a zombie of an older generation).
//! The checker ([`crate::consumption::check_commits`]) looks at what the
//! observer saw and at the final committed offsets against the highest
//! acknowledged commit.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::{ClientContext, Message, Offset, TopicPartitionList};

use crate::consumption::CommitObservation;
use crate::history::{now, Shared};

/// The group's id.
pub const GROUP: &str = "faults-group";
/// Consumers in the group.
pub const MEMBERS: usize = 2;
/// How often a member commits and the observer looks.
const INTERVAL: Duration = Duration::from_secs(1);
/// How long a member waits for its committer at the end.
const COMMITTER_STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// What the group workload saw.
#[derive(Default)]
pub struct GroupHistory {
    /// Commits the coordinator acknowledged: (partition, offset, time sent).
    pub acked: Vec<(i32, i64, f64)>,
    /// Commits that failed, by error.
    pub failed: BTreeMap<String, u64>,
    /// The observer's reads of the committed offsets, in time order.
    pub observed: Vec<CommitObservation>,
    /// Records the members consumed (with repeats after rebalances).
    pub consumed: u64,
    /// What each member is doing and since when (run time): a member that
    /// does not stop is reported with its step.
    pub steps: BTreeMap<usize, (&'static str, f64)>,
    /// Rounds whose positions were not committed because the previous
    /// commit was still running.
    pub commits_skipped: u64,
}

/// The group history, shared between the member and observer threads.
#[derive(Clone, Default)]
pub struct SharedGroup(Arc<Mutex<GroupHistory>>);

impl SharedGroup {
    /// Locks it (a poisoned lock still holds a usable history).
    pub fn lock(&self) -> MutexGuard<'_, GroupHistory> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Settings a careful user of a group sets: a session longer than a
/// failover's stalls, and bounded connection attempts.
fn member_config(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", GROUP)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .set("heartbeat.interval.ms", "1000")
        .set("max.poll.interval.ms", "120000")
        .set("socket.connection.setup.timeout.ms", "5000")
        .set("topic.metadata.refresh.interval.ms", "5000");
    config
}

/// Positions a member reached since its last commit, by partition; a
/// partition's entry goes when it is revoked (or the assignment is lost):
/// a position reached before another member owned the partition must not
/// be committed after it (that would be this harness moving the offset
/// back, not the broker).
#[derive(Clone, Default)]
struct Reached {
    positions: Arc<Mutex<BTreeMap<i32, i64>>>,
    /// Counts revocations: positions taken before one are not committed
    /// after it (the committer runs on its own thread).
    revocations: Arc<std::sync::atomic::AtomicU64>,
}

impl Reached {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<i32, i64>> {
        self.positions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl ClientContext for Reached {}

impl ConsumerContext for Reached {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(list) => {
                let mut reached = self.lock();
                self.revocations.fetch_add(1, Ordering::AcqRel);
                for element in list.elements() {
                    reached.remove(&element.partition());
                }
            }
            Rebalance::Error(_) => {
                let mut reached = self.lock();
                self.revocations.fetch_add(1, Ordering::AcqRel);
                reached.clear();
            }
            Rebalance::Assign(_) => {}
        }
    }
}

/// Runs one member until `stop`.
///
/// The member thread only polls (and so serves the rebalance callback);
/// a committer thread of its own makes the synchronous commits. A
/// synchronous commit on the polling thread deadlocks when the group
/// rebalances meanwhile: librdkafka's commit waits for the group, the
/// group waits for the application to serve the revocation in poll
/// (docs/FAULTS.md #11). librdkafka's API is thread-safe.
pub fn run_member(
    bootstrap: String,
    topic: String,
    member: usize,
    group: SharedGroup,
    history: Shared,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let reached = Reached::default();
    let consumer: Arc<BaseConsumer<Reached>> = Arc::new(
        member_config(&bootstrap)
            .set("client.id", format!("faults-group-{member}"))
            .create_with_context(reached.clone())?,
    );
    consumer.subscribe(&[&topic])?;
    let step = |name: &'static str| {
        group.lock().steps.insert(member, (name, now()));
    };
    let (to_commit, commits) = std::sync::mpsc::sync_channel::<Positions>(1);
    let committer = {
        let (consumer, reached, group, topic) = (
            consumer.clone(),
            reached.clone(),
            group.clone(),
            topic.clone(),
        );
        std::thread::Builder::new()
            .name(format!("faults-commit-{member}"))
            .spawn(move || commit_loop(&consumer, &topic, &reached, &group, commits))?
    };
    let mut last_commit = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        step("poll");
        // The rebalance callback runs inside poll, on this thread.
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                reached
                    .lock()
                    .insert(message.partition(), message.offset() + 1);
                group.lock().consumed += 1;
            }
            Some(Err(error)) => {
                tracing::debug!(member, %error, "group member poll error");
            }
            None => {}
        }
        if last_commit.elapsed() < INTERVAL {
            continue;
        }
        last_commit = Instant::now();
        let positions = {
            let positions = reached.lock();
            Positions {
                revocations: reached.revocations.load(Ordering::Acquire),
                offsets: positions.clone(),
            }
        };
        // A commit still running: this round's positions wait for the next.
        if !positions.offsets.is_empty() && to_commit.try_send(positions).is_err() {
            group.lock().commits_skipped += 1;
        }
    }
    drop(to_commit);
    step("waiting for the committer");
    let deadline = Instant::now() + COMMITTER_STOP_TIMEOUT;
    while !committer.is_finished() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    if !committer.is_finished() {
        // Its commit outlived every timeout; the consumer stays with it.
        history.note(format!(
            "group member {member}: a synchronous commit did not return within {} s of the end",
            COMMITTER_STOP_TIMEOUT.as_secs()
        ));
        anyhow::bail!("group member {member}'s commit did not return");
    }
    // Closing leaves the group (rust-rdkafka polls until librdkafka says
    // it is closed, without a bound): the step says so if it hangs.
    step("close");
    drop(consumer);
    step("stopped");
    history.note(format!("group member {member} stopped"));
    Ok(())
}

/// Positions to commit, and the revocation count when they were taken.
struct Positions {
    revocations: u64,
    offsets: BTreeMap<i32, i64>,
}

/// The committer: commits each set of positions it is given, synchronously,
/// and records what the coordinator acknowledged; ends when the member
/// drops its sender.
fn commit_loop(
    consumer: &BaseConsumer<Reached>,
    topic: &str,
    reached: &Reached,
    group: &SharedGroup,
    commits: std::sync::mpsc::Receiver<Positions>,
) {
    for Positions {
        revocations,
        offsets: positions,
    } in commits
    {
        // Revoked since they were taken: another member may own them now.
        if reached.revocations.load(Ordering::Acquire) != revocations {
            group.lock().commits_skipped += 1;
            continue;
        }
        let mut list = TopicPartitionList::new();
        for (&partition, &offset) in &positions {
            if list
                .add_partition_offset(topic, partition, Offset::Offset(offset))
                .is_err()
            {
                return;
            }
        }
        let sent = now();
        match consumer.commit(&list, CommitMode::Sync) {
            // librdkafka's synchronous commit fails if any partition did.
            Ok(()) => {
                let mut group = group.lock();
                for (&partition, &offset) in &positions {
                    group.acked.push((partition, offset, sent));
                }
                let mut reached = reached.lock();
                for (partition, offset) in positions {
                    if reached.get(&partition) == Some(&offset) {
                        reached.remove(&partition);
                    }
                }
            }
            Err(error) => {
                *group.lock().failed.entry(error.to_string()).or_default() += 1;
            }
        }
    }
}

/// The group's committed offsets now, by partition (those with one).
pub fn committed(
    consumer: &BaseConsumer,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> anyhow::Result<BTreeMap<i32, i64>> {
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(list, timeout)?;
    let mut offsets = BTreeMap::new();
    for element in committed.elements() {
        if let Some(error) = element.error().err() {
            anyhow::bail!("partition {}: {error}", element.partition());
        }
        if let Offset::Offset(offset) = element.offset() {
            offsets.insert(element.partition(), offset);
        }
    }
    Ok(offsets)
}

/// A client that reads a group's committed offsets without joining it.
pub fn observer_client(bootstrap: &str, group_id: &str) -> anyhow::Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("socket.connection.setup.timeout.ms", "5000")
        .create()?)
}

/// Runs the observer until `stop`.
pub fn run_observer(
    bootstrap: String,
    topic: String,
    partitions: i32,
    group: SharedGroup,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    let consumer = observer_client(&bootstrap, GROUP)?;
    while !stop.load(Ordering::Relaxed) {
        let started = Instant::now();
        let at = now();
        if let Ok(offsets) = committed(&consumer, &topic, partitions, Duration::from_secs(5)) {
            let mut group = group.lock();
            for (partition, offset) in offsets {
                group.observed.push(CommitObservation {
                    at,
                    partition,
                    offset,
                });
            }
        }
        if let Some(rest) = INTERVAL.checked_sub(started.elapsed()) {
            std::thread::sleep(rest);
        }
    }
    Ok(())
}
