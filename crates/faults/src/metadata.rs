//! What the cluster looks like from a client: partition leaders and ISRs
//! (librdkafka's Metadata), the active controller (`sluice cluster info`,
//! which asks DescribeQuorum), and topic creation.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

/// One partition as Metadata shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PartitionState {
    /// The leader, -1 when there is none.
    pub leader: i32,
    /// The replicas.
    pub replicas: Vec<i32>,
    /// The in-sync replicas.
    pub isr: Vec<i32>,
}

/// A client that only asks Metadata.
pub struct MetadataClient {
    /// The consumer whose Metadata requests we send (never subscribes).
    consumer: BaseConsumer,
}

impl MetadataClient {
    /// A client of `bootstrap`.
    pub fn new(bootstrap: &str) -> anyhow::Result<MetadataClient> {
        let consumer = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("socket.connection.setup.timeout.ms", "3000")
            .set("topic.metadata.refresh.interval.ms", "1000")
            .create()?;
        Ok(MetadataClient { consumer })
    }

    /// Partition states of `topic`, by partition.
    pub fn partitions(&self, topic: &str) -> anyhow::Result<BTreeMap<i32, PartitionState>> {
        let metadata = self
            .consumer
            .fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let mut states = BTreeMap::new();
        for t in metadata.topics() {
            if let Some(error) = t.error() {
                bail!("metadata of {topic}: {error:?}");
            }
            for p in t.partitions() {
                states.insert(
                    p.id(),
                    PartitionState {
                        leader: p.leader(),
                        replicas: p.replicas().to_vec(),
                        isr: p.isr().to_vec(),
                    },
                );
            }
        }
        Ok(states)
    }

    /// The leader of `topic`/`partition`, if Metadata names one.
    pub fn leader(&self, topic: &str, partition: i32) -> Option<u32> {
        let states = self.partitions(topic).ok()?;
        let leader = states.get(&partition)?.leader;
        u32::try_from(leader).ok().filter(|l| *l > 0)
    }
}

/// The active controller, from `sluice cluster info` (DescribeQuorum,
/// answered by the first of `bootstrap` that answers), at most
/// [`CLUSTER_INFO_TIMEOUT`].
pub fn active_controller(sluice: &Path, bootstrap: &str) -> Option<u32> {
    let output = Command::new("timeout")
        .arg(CLUSTER_INFO_TIMEOUT.as_secs().to_string())
        .arg(sluice)
        .args(["cluster", "info", "--brokers", bootstrap])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    stdout
        .lines()
        .find_map(|line| line.strip_prefix("CONTROLLER"))
        .and_then(|rest| rest.trim().parse().ok())
}

/// How long one `sluice cluster info` may take.
const CLUSTER_INFO_TIMEOUT: Duration = Duration::from_secs(20);

/// Waits (at most `timeout`) until every node, asked alone, names the same
/// active controller. Returns each node's last answer as the error
/// otherwise: a node that is cut off from the quorum's decisions (a stopped
/// Raft core, stale metadata) answers differently or not at all.
pub fn wait_quorum_agreement(
    sluice: &Path,
    addresses: &[(u32, String)],
    timeout: Duration,
) -> anyhow::Result<u32> {
    let deadline = Instant::now() + timeout;
    loop {
        let views: Vec<(u32, Option<u32>)> = addresses
            .iter()
            .map(|(id, address)| (*id, active_controller(sluice, address)))
            .collect();
        if let Some((_, Some(first))) = views.first() {
            if views.iter().all(|(_, view)| *view == Some(*first)) {
                return Ok(*first);
            }
        }
        if Instant::now() > deadline {
            let described: Vec<String> = views
                .iter()
                .map(|(id, view)| match view {
                    Some(controller) => format!("node {id} says {controller}"),
                    None => format!("node {id} does not say"),
                })
                .collect();
            bail!(
                "the nodes do not agree on the active controller within {timeout:?}: {}",
                described.join(", ")
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Creates `name` with `partitions`, replication factor `replicas` and
/// `min.insync.replicas=2`; retried until `timeout` (a cluster that just
/// formed may still be electing).
pub fn create_topic(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replicas: i32,
    timeout: Duration,
) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .context("admin client")?;
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replicas))
        .set("min.insync.replicas", "2");
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let deadline = Instant::now() + timeout;
    loop {
        let result = block_on_admin(admin.create_topics([&topic], &options));
        let error = match result {
            Ok(results) => match results.into_iter().next() {
                Some(Ok(_)) => return Ok(()),
                Some(Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists))) => {
                    return Ok(())
                }
                Some(Err((_, code))) => format!("{code:?}"),
                None => "no result".to_string(),
            },
            Err(error) => error.to_string(),
        };
        if Instant::now() > deadline {
            bail!("creating topic {name}: {error}");
        }
        tracing::info!(topic = name, %error, "topic creation failed; retrying");
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Drives one admin future to completion on a small runtime-free executor:
/// the admin client's futures are completed by librdkafka's own thread.
fn block_on_admin<F: std::future::Future>(future: F) -> F::Output {
    use std::pin::pin;
    use std::sync::Arc;
    use std::task::{Context as TaskContext, Poll, Wake, Waker};

    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    let mut context = TaskContext::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        match future.as_mut().poll(&mut context) {
            Poll::Ready(output) => return output,
            Poll::Pending => std::thread::park_timeout(Duration::from_millis(100)),
        }
    }
}

/// Waits until every partition of `topic` has a leader and `replicas`
/// in-sync replicas, at most `timeout`, calling `between` before each look
/// (to restart nodes that exited). Returns the last states seen as the
/// error when the deadline passes.
pub fn wait_healthy(
    client: &MetadataClient,
    topic: &str,
    replicas: usize,
    timeout: Duration,
    mut between: impl FnMut(),
) -> anyhow::Result<BTreeMap<i32, PartitionState>> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no metadata");
    while Instant::now() < deadline {
        between();
        match client.partitions(topic) {
            Ok(states)
                if !states.is_empty()
                    && states
                        .values()
                        .all(|s| s.leader > 0 && s.isr.len() >= replicas) =>
            {
                return Ok(states);
            }
            Ok(states) => last = format!("{states:?}"),
            Err(error) => last = format!("{error:#}"),
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    bail!("{topic} not healthy (leader and {replicas} in sync) within {timeout:?}: {last}")
}
