//! Consumer-group helpers for the group tests: group consumers whose context
//! records every rebalance, a poll loop that drives several consumers until
//! their assignments look as expected, bounded closes, the `sluice` CLI as a
//! child process, and raw group requests.
//!
//! Included by the `groups*.rs` tests with
//! `#[path = "common/group.rs"] mod group;` next to `mod common;`.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

use crate::common::{producer, CLIENT_TIMEOUT};

/// Broker settings for group tests: no initial rebalance delay, so that a
/// group's first generation forms as soon as its first member joins.
pub const GROUP_BROKER_SETTINGS: &[(&str, &str)] = &[("group.initial.rebalance.delay.ms", "0")];

/// How long a test waits for an assignment to settle. Generous: a rebalance
/// waits for every member's next heartbeat, and a dead member's session.
pub const REBALANCE_TIMEOUT: Duration = Duration::from_secs(60);

/// One rebalance callback as the consumer saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RebalanceEvent {
    /// Partitions handed to the consumer (all of them for eager assignors,
    /// the added ones for cooperative).
    Assign(BTreeSet<i32>),
    /// Partitions taken away (all for eager, the moved ones for cooperative).
    Revoke(BTreeSet<i32>),
    /// librdkafka reported a rebalance error.
    Error(String),
}

/// A consumer context that records its rebalances.
#[derive(Clone, Default)]
pub struct RecordingContext {
    /// Every rebalance callback, in order; shared with the test.
    pub events: Arc<Mutex<Vec<RebalanceEvent>>>,
}

impl RecordingContext {
    /// A copy of the events so far.
    pub fn events(&self) -> Vec<RebalanceEvent> {
        self.events.lock().expect("events lock").clone()
    }

    /// The partitions revoked in events after the first `skip` events.
    pub fn revoked_since(&self, skip: usize) -> BTreeSet<i32> {
        self.events()
            .into_iter()
            .skip(skip)
            .filter_map(|event| match event {
                RebalanceEvent::Revoke(partitions) => Some(partitions),
                _ => None,
            })
            .flatten()
            .collect()
    }
}

impl ClientContext for RecordingContext {}

impl ConsumerContext for RecordingContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let partitions = |list: &rdkafka::TopicPartitionList| {
            list.elements().iter().map(|e| e.partition()).collect()
        };
        let event = match rebalance {
            Rebalance::Assign(list) => RebalanceEvent::Assign(partitions(list)),
            Rebalance::Revoke(list) => RebalanceEvent::Revoke(partitions(list)),
            Rebalance::Error(error) => RebalanceEvent::Error(error.to_string()),
        };
        eprintln!("rebalance: {event:?}");
        self.events.lock().expect("events lock").push(event);
    }
}

/// A group member for the tests.
pub type GroupConsumer = BaseConsumer<RecordingContext>;

/// The group consumer configuration: `group`, earliest reset, manual
/// commits, quick heartbeats (so that members notice a rebalance within
/// half a second); `overrides` win.
pub fn group_config(bootstrap: &str, group: &str, overrides: &[(&str, &str)]) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000")
        .set("group.id", group)
        .set("client.id", "groups-e2e")
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("heartbeat.interval.ms", "500")
        .set("session.timeout.ms", "10000")
        .set("fetch.wait.max.ms", "100");
    for (key, value) in overrides {
        config.set(*key, *value);
    }
    config
}

/// A consumer in `group` subscribed to `topic`, with its recording context.
pub fn group_consumer(
    bootstrap: &str,
    group: &str,
    topic: &str,
    overrides: &[(&str, &str)],
) -> (GroupConsumer, RecordingContext) {
    let context = RecordingContext::default();
    let consumer: GroupConsumer = group_config(bootstrap, group, overrides)
        .create_with_context(context.clone())
        .expect("create group consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    (consumer, context)
}

/// The partitions currently assigned to `consumer`.
pub fn assigned(consumer: &GroupConsumer) -> BTreeSet<i32> {
    consumer
        .assignment()
        .map(|list| list.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls every consumer in turn (which also runs their rebalances) until
/// `done` holds for their assignments; returns the messages each received.
/// Panics with the last assignments when `timeout` passes first.
pub fn poll_until(
    consumers: &[&GroupConsumer],
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&[BTreeSet<i32>]) -> bool,
) -> Vec<Vec<OwnedMessage>> {
    let deadline = Instant::now() + timeout;
    let mut messages = vec![Vec::new(); consumers.len()];
    loop {
        for (index, consumer) in consumers.iter().enumerate() {
            match consumer.poll(Duration::from_millis(20)) {
                Some(Ok(message)) => messages[index].push(message.detach()),
                Some(Err(error)) => eprintln!("consumer {index}: {error} (continuing)"),
                None => {}
            }
        }
        let assignments: Vec<BTreeSet<i32>> = consumers.iter().map(|c| assigned(c)).collect();
        if done(&assignments) {
            return messages;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not reached within {timeout:?}; assignments {assignments:?}"
        );
    }
}

/// Polls every consumer until together they received `count` messages (or
/// `timeout` passed); returns each one's messages.
pub fn poll_count(
    consumers: &[&GroupConsumer],
    count: usize,
    timeout: Duration,
) -> Vec<Vec<OwnedMessage>> {
    let deadline = Instant::now() + timeout;
    let mut messages = vec![Vec::new(); consumers.len()];
    while messages.iter().map(Vec::len).sum::<usize>() < count && Instant::now() < deadline {
        for (index, consumer) in consumers.iter().enumerate() {
            match consumer.poll(Duration::from_millis(20)) {
                Some(Ok(message)) => messages[index].push(message.detach()),
                Some(Err(error)) => eprintln!("consumer {index}: {error} (continuing)"),
                None => {}
            }
        }
    }
    messages
}

/// `sizes` of the assignments, sorted, when together they cover exactly
/// `0..partitions` with no partition twice.
pub fn is_split(assignments: &[BTreeSet<i32>], partitions: i32, sizes: &[usize]) -> bool {
    let mut got: Vec<usize> = assignments.iter().map(BTreeSet::len).collect();
    got.sort_unstable();
    let mut want = sizes.to_vec();
    want.sort_unstable();
    let union: BTreeSet<i32> = assignments.iter().flatten().copied().collect();
    got == want
        && union == (0..partitions).collect()
        && assignments.iter().map(BTreeSet::len).sum::<usize>() == partitions as usize
}

/// Closes a consumer (LeaveGroup for a dynamic member) within `timeout`.
pub fn close_within<C: ConsumerContext + 'static>(consumer: BaseConsumer<C>, timeout: Duration) {
    let (done, closed) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drop(consumer);
        let _ = done.send(());
    });
    closed
        .recv_timeout(timeout)
        .unwrap_or_else(|_| panic!("consumer did not close within {timeout:?}"));
}

/// Produces `per_partition` records to each of `partitions` partitions of
/// `topic` (value `p<partition>-<index>`, key `k<index>`) and waits for them.
pub async fn produce_to_partitions(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    per_partition: usize,
) {
    let producer = producer(bootstrap, &[("linger.ms", "5")]);
    let mut deliveries = Vec::new();
    for partition in 0..partitions {
        for index in 0..per_partition {
            let key = format!("k{index}");
            let value = format!("p{partition}-{index}");
            let record = FutureRecord::to(topic)
                .partition(partition)
                .key(&key)
                .payload(&value);
            match producer.send_result(record) {
                Ok(delivery) => deliveries.push(delivery),
                Err((error, _)) => panic!("enqueueing a record for {topic} failed: {error}"),
            }
        }
    }
    let deadline = tokio::time::Instant::now() + CLIENT_TIMEOUT + Duration::from_secs(5);
    for delivery in deliveries {
        let result = tokio::time::timeout_at(deadline, delivery)
            .await
            .expect("deliveries did not complete in time")
            .expect("delivery future cancelled");
        if let Err((error, _)) = result {
            panic!("produce to {topic} failed: {error}");
        }
    }
}

/// `(partition, offset, value)` of each message, for readable assertions.
pub fn summary(messages: &[OwnedMessage]) -> Vec<(i32, i64, String)> {
    messages
        .iter()
        .map(|m| {
            (
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )
        })
        .collect()
}

/// What a finished `sluice` command printed.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit code (`None` when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

/// Runs `sluice ARGS…` against `bootstrap` and waits (bounded) for it.
pub fn sluice(bootstrap: &str, args: &[&str]) -> CliOutput {
    let child = sluice_child(bootstrap, args);
    wait_output(child, Duration::from_secs(60), &args.join(" "))
}

/// Starts `sluice ARGS…` with `-b bootstrap`, stdout and stderr piped.
pub fn sluice_child(bootstrap: &str, args: &[&str]) -> Child {
    sluice_spawn(bootstrap, args, Stdio::null())
}

/// Runs `sluice ARGS…` against `bootstrap` with `input` on its standard
/// input, and waits for it (at most `timeout`).
pub fn sluice_with_input(
    bootstrap: &str,
    args: &[&str],
    input: &str,
    timeout: Duration,
) -> CliOutput {
    let mut child = sluice_spawn(bootstrap, args, Stdio::piped());
    let mut stdin = child.stdin.take().expect("child stdin");
    // A command that exits without reading its input closes the pipe: fine.
    let _ = stdin.write_all(input.as_bytes());
    drop(stdin);
    wait_output(child, timeout, &args.join(" "))
}

fn sluice_spawn(bootstrap: &str, args: &[&str], stdin: Stdio) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .env("NO_COLOR", "1")
        .env("SLUICE_BROKERS", bootstrap)
        .env("RUST_LOG", "warn")
        .args(args)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn sluice")
}

/// Waits for `child` to exit within `timeout` (else kills it and panics)
/// and collects its output.
pub fn wait_output(mut child: Child, timeout: Duration, what: &str) -> CliOutput {
    let mut stdout = child.stdout.take().expect("child stdout");
    let mut stderr = child.stderr.take().expect("child stderr");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait sluice") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "`sluice {what}` did not finish within {timeout:?}; stderr: {}",
                err_reader.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    CliOutput {
        code: status.code(),
        stdout: out_reader.join().unwrap_or_default(),
        stderr: err_reader.join().unwrap_or_default(),
    }
}

/// The cells of the table row in `text` whose first cells are `prefix`.
pub fn table_row(text: &str, prefix: &[&str]) -> Option<Vec<String>> {
    text.lines()
        .map(|line| {
            line.split_whitespace()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .find(|cells| cells.len() >= prefix.len() && cells.iter().zip(prefix).all(|(c, p)| c == p))
}
