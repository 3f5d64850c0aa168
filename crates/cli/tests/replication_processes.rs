//! Replication across real `sluice serve` processes: an idempotent acks=all
//! producer keeps writing while a partition leader is killed with SIGKILL
//! and restarted, and every acknowledged record is read back once, in order;
//! a paused leader (SIGSTOP past the session timeout) is replaced and
//! acknowledges nothing the new leader lacks; a paused follower leaves the
//! ISR after `replica.lag.time.max.ms` and rejoins once it catches up; a
//! new leader whose high watermark is below its epoch's start answers
//! ListOffsets with OFFSET_NOT_AVAILABLE (KIP-207) until it is not; a
//! leader killed and restarted at once rejoins the ISRs of its empty
//! partitions; a paused group coordinator, replaced meanwhile, does not
//! answer OffsetFetch from its stale memory when it resumes.

mod common;
#[path = "common/group.rs"]
mod group;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::cluster::{
    block_on, consume_values, create_assigned_topic, create_replicated_topic, eventually,
    eventually_seen, find_coordinator, leader_and_isr, metadata, produce_raw,
};
use common::processes::{start_cluster, Node};
use common::raw::RawConnection;
use common::segment::{first_segment_path, parse_batches};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{
    BrokerId, GroupId, ListOffsetsRequest, ListOffsetsResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use tempfile::TempDir;

const WAIT: Duration = Duration::from_secs(90);

const SETTINGS: &[(&str, &str)] = &[
    ("replica.lag.time.max.ms", "3000"),
    ("offsets.topic.num.partitions", "3"),
    ("transaction.state.log.num.partitions", "3"),
];

/// [`SETTINGS`] with a short broker session, for tests that pause a node
/// past it.
fn pause_settings() -> Vec<(&'static str, &'static str)> {
    let mut settings = SETTINGS.to_vec();
    settings.extend([
        ("broker.session.timeout.ms", "4000"),
        ("broker.heartbeat.interval.ms", "500"),
    ]);
    settings
}

fn all() -> BTreeSet<i32> {
    BTreeSet::from([1, 2, 3])
}

fn alive_address(nodes: &[Node], except: i32) -> String {
    nodes
        .iter()
        .find(|n| n.node_id != except && n.child.is_some())
        .expect("a live node")
        .address
        .clone()
}

fn producer(bootstrap: &str) -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "90000")
        .set("retry.backoff.ms", "100")
        .create()
        .expect("producer")
}

/// Sends records `first..last` in turn (record i to partition i %
/// `partitions`, value "p-iiiii"), each awaited; returns the acknowledged
/// values and, for the first record to partition 0, when it was
/// acknowledged.
fn produce_range(
    producer: &FutureProducer,
    topic: &str,
    partitions: usize,
    range: std::ops::Range<usize>,
) -> (Vec<String>, Option<Instant>) {
    block_on(async {
        let mut acked = Vec::new();
        let mut first_on_zero = None;
        for i in range {
            let partition = (i % partitions) as i32;
            let value = format!("{partition}-{i:05}");
            let record = FutureRecord::<(), _>::to(topic)
                .partition(partition)
                .payload(&value);
            match producer.send(record, Duration::from_secs(90)).await {
                Ok(_) => {
                    if partition == 0 && first_on_zero.is_none() {
                        first_on_zero = Some(Instant::now());
                    }
                    acked.push(value);
                }
                Err((error, _)) => panic!("record {value} not acknowledged: {error}"),
            }
        }
        (acked, first_on_zero)
    })
}

/// Every acknowledged value was read, none twice, and each partition's in
/// the order produced.
fn check_read_back(read: &[String], acked: &[String]) {
    let mut seen = BTreeSet::new();
    for value in read {
        assert!(seen.insert(value.clone()), "{value} read twice");
    }
    for value in acked {
        assert!(seen.contains(value), "acknowledged {value} is lost");
    }
    let mut by_partition: BTreeMap<&str, Vec<&String>> = BTreeMap::new();
    for value in read {
        by_partition.entry(&value[..1]).or_default().push(value);
    }
    for (partition, values) in by_partition {
        let mut sorted = values.clone();
        sorted.sort();
        assert_eq!(values, sorted, "partition {partition} out of order");
    }
}

#[test]
fn an_idempotent_producer_loses_nothing_when_a_leader_is_killed_and_restarted() {
    let dir = TempDir::new().expect("temp dir");
    let mut nodes = start_cluster(dir.path(), SETTINGS);
    let bootstrap: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    create_replicated_topic(
        &bootstrap[0],
        "course",
        3,
        3,
        &[("min.insync.replicas", "2")],
    );
    eventually("every partition's ISR is full", WAIT, || {
        (0..3).all(|p| leader_and_isr(&bootstrap[0], "course", p).1 == all())
    });
    let producer = producer(&bootstrap.join(","));
    let (mut acked, _) = produce_range(&producer, "course", 3, 0..150);

    let (leader, _) = leader_and_isr(&bootstrap[0], "course", 0);
    let killed_at = Instant::now();
    nodes[(leader - 1) as usize].kill9();
    let (more, first_on_zero) = produce_range(&producer, "course", 3, 150..300);
    acked.extend(more);
    let failover = first_on_zero.expect("partition 0 acknowledged again") - killed_at;
    println!(
        "failover: SIGKILL of the leader to the next acknowledged acks=all record on its partition: {} ms",
        failover.as_millis()
    );

    nodes[(leader - 1) as usize].restart();
    let alive = alive_address(&nodes, leader);
    let (more, _) = produce_range(&producer, "course", 3, 300..450);
    acked.extend(more);
    eventually("the restarted broker rejoins every ISR", WAIT, || {
        (0..3).all(|p| leader_and_isr(&alive, "course", p).1 == all())
    });
    let read = consume_values(&alive, "course", 3, acked.len(), WAIT);
    check_read_back(&read, &acked);
    assert_eq!(read.len(), acked.len(), "nothing unacknowledged either");
}

/// A leader killed and restarted at once: its registration waits for its
/// old session to expire (DUPLICATE_BROKER_REGISTRATION is retried, as
/// Kafka's broker does), and it rejoins the ISR of the empty partitions it
/// led. Its epoch history ends with the epoch it led (0, from offset 0),
/// which the new leader's empty log does not have; Kafka's endOffsetFor
/// answers (0, 0) for an epoch older than every one it has, so the fetch
/// has not diverged.
#[test]
fn a_leader_killed_and_restarted_at_once_rejoins_the_isr_of_its_empty_partitions() {
    let dir = TempDir::new().expect("temp dir");
    let mut nodes = start_cluster(dir.path(), SETTINGS);
    let first = nodes[0].address.clone();
    create_replicated_topic(&first, "empty", 3, 3, &[]);
    eventually("every partition's ISR is full", WAIT, || {
        (0..3).all(|p| leader_and_isr(&first, "empty", p).1 == all())
    });
    let (leader, _) = leader_and_isr(&first, "empty", 0);
    nodes[(leader - 1) as usize].kill9();
    nodes[(leader - 1) as usize].restart();
    let alive = alive_address(&nodes, leader);
    eventually_seen("the restarted broker rejoins every ISR", WAIT, || {
        let seen: Vec<(i32, BTreeSet<i32>)> =
            (0..3).map(|p| leader_and_isr(&alive, "empty", p)).collect();
        (
            seen.iter().all(|(_, isr)| *isr == all()),
            format!("{seen:?}"),
        )
    });
}

#[test]
fn a_paused_leader_is_replaced_and_acknowledges_nothing_the_new_leader_lacks() {
    let dir = TempDir::new().expect("temp dir");
    let nodes = start_cluster(dir.path(), &pause_settings());
    let bootstrap: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    create_replicated_topic(
        &bootstrap[0],
        "paused",
        1,
        3,
        &[("min.insync.replicas", "2")],
    );
    eventually("the ISR is full", WAIT, || {
        leader_and_isr(&bootstrap[0], "paused", 0).1 == all()
    });
    let producer = producer(&bootstrap.join(","));
    let (acked, _) = produce_range(&producer, "paused", 1, 0..30);
    let (leader, _) = leader_and_isr(&bootstrap[0], "paused", 0);
    let leader_address = nodes[(leader - 1) as usize].address.clone();
    nodes[(leader - 1) as usize].pause();
    let alive = alive_address(&nodes, leader);
    eventually_seen("another replica leads", WAIT, || {
        let (now, isr) = leader_and_isr(&alive, "paused", 0);
        (
            now != -1 && now != leader,
            format!("leader {now}, ISR {isr:?} from {alive}"),
        )
    });
    // A produce that reaches the old leader while it is paused is read once
    // it resumes, while it still believes it leads.
    let stale = std::thread::spawn(move || {
        produce_raw(&leader_address, "paused", 0, -1, &["stale-acks-all"])
    });
    std::thread::sleep(Duration::from_millis(500));
    nodes[(leader - 1) as usize].resume();
    let (more, _) = produce_range(&producer, "paused", 1, 30..60);
    let (code, _) = stale.join().expect("stale produce");
    let read = consume_values(
        &alive,
        "paused",
        1,
        acked.len() + more.len() + 1,
        Duration::from_secs(20),
    );
    if code == 0 {
        assert!(
            read.iter().any(|v| v == "stale-acks-all"),
            "the old leader acknowledged a record the new leader does not have"
        );
    }
    let mut all_acked = acked.clone();
    all_acked.extend(more);
    for value in &all_acked {
        assert!(read.contains(value), "acknowledged {value} is lost");
    }
    eventually("the old leader follows and rejoins the ISR", WAIT, || {
        leader_and_isr(&alive, "paused", 0).1 == all()
    });
    println!("stale produce to the paused leader answered with error code {code}");
}

#[test]
fn a_paused_follower_leaves_the_isr_after_the_lag_time_and_rejoins() {
    let dir = TempDir::new().expect("temp dir");
    // A long session: the follower stays registered and unfenced, so only
    // the leader's lag check can take it out of the ISR.
    let settings = [
        ("replica.lag.time.max.ms", "2000"),
        ("broker.session.timeout.ms", "60000"),
    ];
    let nodes = start_cluster(dir.path(), &settings);
    let bootstrap: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    create_replicated_topic(&bootstrap[0], "lag", 1, 3, &[]);
    eventually("the ISR is full", WAIT, || {
        leader_and_isr(&bootstrap[0], "lag", 0).1 == all()
    });
    let (leader, _) = leader_and_isr(&bootstrap[0], "lag", 0);
    let follower = (1..=3).find(|n| *n != leader).expect("a follower");
    let leader_address = nodes[(leader - 1) as usize].address.clone();
    eventually("the leader serves the partition", WAIT, || {
        produce_raw(&leader_address, "lag", 0, 1, &["warm-up"]).0 == 0
    });
    nodes[(follower - 1) as usize].pause();
    let paused_at = Instant::now();
    // Writes the follower does not fetch.
    for i in 0..5 {
        assert_eq!(
            produce_raw(&leader_address, "lag", 0, 1, &[&format!("v{i}")]).0,
            0
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    eventually(
        "the paused follower leaves the ISR",
        Duration::from_secs(30),
        || {
            !leader_and_isr(&leader_address, "lag", 0)
                .1
                .contains(&follower)
        },
    );
    let shrunk_after = paused_at.elapsed();
    assert!(
        shrunk_after >= Duration::from_millis(2000),
        "not before the lag time: {shrunk_after:?}"
    );
    nodes[(follower - 1) as usize].resume();
    eventually("it catches up and rejoins", WAIT, || {
        leader_and_isr(&leader_address, "lag", 0).1 == all()
    });
}

/// The records of partition 0 of `topic` with their offsets, read from the
/// start through `address` until `count` arrived.
fn offsets_and_values(address: &str, topic: &str, count: usize) -> Vec<(i64, String)> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("group.id", "divergence")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("assignment");
    consumer.assign(&assignment).expect("assign");
    let mut read = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while read.len() < count && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string();
            read.push((message.offset(), value));
        }
    }
    read
}

#[test]
fn a_leader_with_writes_no_follower_has_truncates_them_when_it_returns() {
    let dir = TempDir::new().expect("temp dir");
    // A lag time longer than the pause below: the paused follower stays in
    // the ISR and may take over.
    let settings = [
        ("replica.lag.time.max.ms", "20000"),
        ("broker.session.timeout.ms", "4000"),
        ("broker.heartbeat.interval.ms", "500"),
        ("offsets.topic.num.partitions", "3"),
    ];
    let mut nodes = start_cluster(dir.path(), &settings);
    let bootstrap: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    // Replicas 1 (leader) and 2; node 3 keeps the metadata quorum's
    // majority when node 1 dies.
    let (leader, follower) = (1, 2);
    create_assigned_topic(
        &bootstrap[0],
        "diverge",
        &[leader, follower],
        &[("min.insync.replicas", "1")],
    );
    let both = BTreeSet::from([leader, follower]);
    eventually("the ISR is full", WAIT, || {
        leader_and_isr(&bootstrap[0], "diverge", 0) == (leader, both.clone())
    });
    let leader_address = nodes[(leader - 1) as usize].address.clone();
    let follower_address = nodes[(follower - 1) as usize].address.clone();
    // The first produce may find the leader still opening the partition
    // (NOT_LEADER_OR_FOLLOWER, nothing appended): retried.
    eventually("the leader takes the first record", WAIT, || {
        produce_raw(&leader_address, "diverge", 0, -1, &["common-0"]).0 == 0
    });
    for i in 1..5 {
        assert_eq!(
            produce_raw(&leader_address, "diverge", 0, -1, &[&format!("common-{i}")]).0,
            0
        );
    }
    // Writes that only the leader gets, acknowledged with acks=1 ...
    nodes[(follower - 1) as usize].pause();
    // Its fetch in flight ends after `replica.fetch.wait.max.ms` (500 ms)
    // with nothing new; it sends no other while paused.
    std::thread::sleep(Duration::from_millis(1500));
    for i in 0..3 {
        assert_eq!(
            produce_raw(
                &leader_address,
                "diverge",
                0,
                1,
                &[&format!("only-on-old-leader-{i}")]
            ),
            (0, 5 + i as i64)
        );
    }
    // ... and the leader dies before its follower fetched them.
    nodes[(leader - 1) as usize].kill9();
    nodes[(follower - 1) as usize].resume();
    eventually("the follower takes over", WAIT, || {
        leader_and_isr(&follower_address, "diverge", 0).0 == follower
    });
    // The new leader writes at the same offsets.
    for i in 0..3 {
        assert_eq!(
            produce_raw(
                &follower_address,
                "diverge",
                0,
                -1,
                &[&format!("new-leader-{i}")]
            ),
            (0, 5 + i as i64)
        );
    }
    let expected: Vec<(i64, String)> = (0..5)
        .map(|i| (i, format!("common-{i}")))
        .chain((0..3).map(|i| (5 + i, format!("new-leader-{i}"))))
        .collect();
    assert_eq!(
        offsets_and_values(&follower_address, "diverge", 8),
        expected
    );

    // The old leader returns, finds that its history diverges, truncates
    // and catches up.
    nodes[(leader - 1) as usize].restart();
    eventually("the old leader rejoins the ISR", WAIT, || {
        leader_and_isr(&follower_address, "diverge", 0).1 == both
    });
    // Fail over back to it: it serves the same offsets with the same values.
    nodes[(follower - 1) as usize].terminate();
    let back = nodes[(leader - 1) as usize].address.clone();
    eventually("the old leader leads again", WAIT, || {
        leader_and_isr(&back, "diverge", 0).0 == leader
    });
    assert_eq!(offsets_and_values(&back, "diverge", 8), expected);
    let log = std::fs::read_to_string(&nodes[(leader - 1) as usize].log).unwrap_or_default();
    assert!(
        log.contains("diverges from the leader"),
        "the old leader's log shows the truncation"
    );
}

/// ListOffsets (v`version`) for the latest offset of partition 0 of `topic`
/// at `address`: (error code, offset).
fn latest_offset(address: &str, topic: &str, version: i16) -> (i16, i64) {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![ListOffsetsTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![ListOffsetsPartition::default()
                .with_partition_index(0)
                .with_timestamp(-1)])]);
    let mut connection = RawConnection::connect(address);
    let response: ListOffsetsResponse = connection.request(version, 11, &request);
    let answer = &response.topics[0].partitions[0];
    (answer.error_code, answer.offset)
}

/// The last offset in the first segment of partition 0 of `topic` in a
/// node's data dir (-1 when empty).
fn stored_last_offset(data_dir: &Path, topic: &str) -> i64 {
    let bytes = std::fs::read(first_segment_path(data_dir, topic, 0)).unwrap_or_default();
    let (batches, _) = parse_batches(&bytes);
    batches.last().map_or(-1, |b| b.last_offset())
}

#[test]
fn a_new_leader_answers_offset_not_available_until_its_high_watermark_reaches_its_epoch() {
    let dir = TempDir::new().expect("temp dir");
    // A paused follower stays registered and in the ISR (KIP-207's case: the
    // new leader cannot know the old leader's high watermark).
    let settings = [
        ("replica.lag.time.max.ms", "120000"),
        ("broker.session.timeout.ms", "120000"),
    ];
    let mut nodes = start_cluster(dir.path(), &settings);
    let bootstrap: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    create_replicated_topic(&bootstrap[0], "kip207", 1, 3, &[]);
    eventually("the ISR is full", WAIT, || {
        leader_and_isr(&bootstrap[0], "kip207", 0).1 == all()
    });
    let metadata = metadata(&bootstrap[0], Some("kip207"));
    let partition = &metadata.topics[0].partitions[0];
    let leader = partition.leader_id.0;
    let followers: Vec<i32> = partition
        .replica_nodes
        .iter()
        .map(|n| n.0)
        .filter(|n| *n != leader)
        .collect();
    // The controller elects the first in-sync replica in assignment order:
    // `next`; the other follower is paused.
    let (next, paused) = (followers[0], followers[1]);
    let node = |id: i32| (id - 1) as usize;
    let leader_address = nodes[node(leader)].address.clone();
    let next_address = nodes[node(next)].address.clone();
    eventually("the leader serves the partition", WAIT, || {
        produce_raw(&leader_address, "kip207", 0, -1, &["a", "b", "c", "d", "e"]).0 == 0
    });
    assert_eq!(latest_offset(&leader_address, "kip207", 9), (0, 5));
    nodes[node(paused)].pause();
    // acks=1: the leader and `next` have them; the high watermark stays at
    // 5 while the paused follower is in the ISR.
    assert_eq!(
        produce_raw(&leader_address, "kip207", 0, 1, &["f", "g", "h"]),
        (0, 5)
    );
    let next_dir = dir.path().join(format!("node-{next}"));
    eventually("the next leader has offsets 5..8", WAIT, || {
        stored_last_offset(&next_dir, "kip207") == 7
    });
    assert_eq!(latest_offset(&leader_address, "kip207", 9), (0, 5));
    // A controlled shutdown moves leadership to `next` at once.
    assert_eq!(
        nodes[node(leader)].terminate().map(|s| s.code()),
        Some(Some(0))
    );
    eventually("the next replica leads", WAIT, || {
        latest_offset(&next_address, "kip207", 9).0
            != sluice_broker::error_codes::NOT_LEADER_OR_FOLLOWER
    });
    assert_eq!(
        latest_offset(&next_address, "kip207", 9).0,
        sluice_broker::error_codes::OFFSET_NOT_AVAILABLE,
        "its high watermark (5) is below its epoch's start (8)"
    );
    assert_eq!(
        latest_offset(&next_address, "kip207", 4).0,
        sluice_broker::error_codes::LEADER_NOT_AVAILABLE,
        "before v5 a client gets LEADER_NOT_AVAILABLE"
    );
    nodes[node(paused)].resume();
    eventually("the high watermark reaches the epoch", WAIT, || {
        latest_offset(&next_address, "kip207", 9) == (0, 8)
    });
}

/// Everything a read_committed consumer reads from `topic` within
/// `timeout`, sorted.
fn read_committed(address: &str, topic: &str, partitions: i32, timeout: Duration) -> Vec<String> {
    let configs = [("isolation.level", "read_committed")];
    let mut values = common::cluster::consume_values_with(
        address,
        topic,
        partitions,
        usize::MAX,
        timeout,
        &configs,
    );
    values.sort();
    values
}

/// Commits the producer's transaction, calling again while librdkafka
/// says the error is retriable (its documented contract for
/// commit_transaction).
fn commit(
    producer: &rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
) {
    use rdkafka::error::{KafkaError, RDKafkaError};
    use rdkafka::producer::Producer;
    for attempt in 1..=5 {
        match producer.commit_transaction(Duration::from_secs(90)) {
            Ok(()) => return,
            Err(KafkaError::Transaction(error)) if RDKafkaError::is_retriable(&error) => {
                println!("commit attempt {attempt}: retriable {error}");
            }
            Err(error) => panic!("commit_transaction: {error}"),
        }
    }
    panic!("commit_transaction: still retriable after 5 attempts");
}

/// A transaction over partitions led by all three brokers stays atomic
/// when a broker is killed (SIGKILL) between the sends and the commit:
/// first a partition leader that is not the transaction coordinator (the
/// coordinator's markers reach the partition's new leader), then the
/// coordinator itself (the new coordinator loads the ongoing transaction
/// from `__transaction_state` and completes the commit). A read_committed
/// consumer sees every record of both, once.
#[test]
fn a_transaction_commits_whole_when_a_leader_or_its_coordinator_is_killed_before_the_commit() {
    use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
    let dir = TempDir::new().expect("temp dir");
    let mut nodes = start_cluster(dir.path(), SETTINGS);
    let first = nodes[0].address.clone();
    let topic = "txn-kill";
    create_replicated_topic(&first, topic, 3, 3, &[("min.insync.replicas", "2")]);
    eventually("three leaders, full ISRs", WAIT, || {
        let states: Vec<(i32, BTreeSet<i32>)> =
            (0..3).map(|p| leader_and_isr(&first, topic, p)).collect();
        states
            .iter()
            .map(|(leader, _)| *leader)
            .collect::<BTreeSet<i32>>()
            == all()
            && states.iter().all(|(_, isr)| *isr == all())
    });
    let bootstrap: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    let id = "killed-before-commit";
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap.join(","))
        .set("transactional.id", id)
        .set("message.timeout.ms", "90000")
        .set("transaction.timeout.ms", "120000")
        .set("retry.backoff.ms", "100")
        .create()
        .expect("producer");
    producer
        .init_transactions(Duration::from_secs(60))
        .expect("init_transactions");
    let send = |prefix: &str| {
        for partition in 0..3 {
            let value = format!("{prefix}-{partition}");
            producer
                .send(
                    rdkafka::producer::BaseRecord::<(), _>::to(topic)
                        .partition(partition)
                        .payload(&value),
                )
                .map_err(|(error, _)| error)
                .expect("send");
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
    };

    // A partition leader other than the coordinator.
    let coordinator = find_coordinator(&first, id, 1);
    assert!(all().contains(&coordinator), "coordinator {coordinator}");
    let victim = (0..3)
        .map(|p| leader_and_isr(&first, topic, p).0)
        .find(|leader| *leader != coordinator)
        .expect("a leader that does not coordinate");
    producer.begin_transaction().expect("begin");
    send("leader-killed");
    nodes[(victim - 1) as usize].kill9();
    commit(&producer);
    let alive = alive_address(&nodes, victim);
    assert_eq!(
        read_committed(&alive, topic, 3, Duration::from_secs(15)),
        vec!["leader-killed-0", "leader-killed-1", "leader-killed-2"]
    );
    nodes[(victim - 1) as usize].restart();
    eventually("the killed leader rejoins every ISR", WAIT, || {
        (0..3).all(|p| leader_and_isr(&alive, topic, p).1 == all())
    });

    // The coordinator itself.
    let coordinator = find_coordinator(&alive, id, 1);
    assert!(all().contains(&coordinator), "coordinator {coordinator}");
    producer.begin_transaction().expect("begin");
    send("coordinator-killed");
    nodes[(coordinator - 1) as usize].kill9();
    commit(&producer);
    let alive = alive_address(&nodes, coordinator);
    assert_eq!(
        read_committed(&alive, topic, 3, Duration::from_secs(15)),
        vec![
            "coordinator-killed-0",
            "coordinator-killed-1",
            "coordinator-killed-2",
            "leader-killed-0",
            "leader-killed-1",
            "leader-killed-2"
        ]
    );
    drop(producer);
}

/// A classic consumer group keeps its generation and keeps consuming when
/// the broker of its group coordinator is killed (SIGKILL): the new leader
/// of its `__consumer_offsets` partition loads the group with its members
/// (persisted, as Kafka's GroupMetadata record), so the member's next
/// heartbeat and commit are accepted without a rebalance.
#[test]
fn a_consumer_group_stays_stable_and_keeps_consuming_when_its_coordinator_is_killed() {
    use group::{group_consumer, poll_count, poll_until, RebalanceEvent};
    use rdkafka::consumer::{CommitMode, Consumer as _};
    let dir = TempDir::new().expect("temp dir");
    let mut settings = SETTINGS.to_vec();
    settings.push(("group.initial.rebalance.delay.ms", "0"));
    let mut nodes = start_cluster(dir.path(), &settings);
    let first = nodes[0].address.clone();
    let topic = "group-kill";
    create_replicated_topic(&first, topic, 3, 3, &[("min.insync.replicas", "2")]);
    eventually("full ISRs", WAIT, || {
        (0..3).all(|p| leader_and_isr(&first, topic, p).1 == all())
    });
    let bootstrap: Vec<String> = nodes.iter().map(|n| n.address.clone()).collect();
    let bootstrap = bootstrap.join(",");
    let producer = producer(&bootstrap);
    let (mut acked, _) = produce_range(&producer, topic, 3, 0..30);

    let (consumer, context) = group_consumer(&bootstrap, "steady", topic, &[]);
    poll_until(&[&consumer], WAIT, "the whole topic assigned", |a| {
        a[0].len() == 3
    });
    let mut read: Vec<String> = Vec::new();
    let mut collect = |messages: Vec<Vec<rdkafka::message::OwnedMessage>>| {
        use rdkafka::Message as _;
        for message in messages.into_iter().flatten() {
            let value = message
                .payload()
                .map(|p| String::from_utf8_lossy(p).into_owned());
            read.push(value.unwrap_or_default());
        }
    };
    collect(poll_count(&[&consumer], 30, WAIT));
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit before the kill");

    let coordinator = find_coordinator(&first, "steady", 0);
    assert!(all().contains(&coordinator), "coordinator {coordinator}");
    nodes[(coordinator - 1) as usize].kill9();
    let (more, _) = produce_range(&producer, topic, 3, 30..60);
    acked.extend(more);
    collect(poll_count(&[&consumer], 30, WAIT));
    let alive = alive_address(&nodes, coordinator);
    eventually("another broker coordinates the group", WAIT, || {
        let now = find_coordinator(&alive, "steady", 0);
        now > 0 && now != coordinator
    });
    // The member's commit after the failover: accepted by the new
    // coordinator in the same generation.
    let mut committed = false;
    for _ in 0..20 {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            Ok(()) => {
                committed = true;
                break;
            }
            Err(error) => {
                println!("commit after the failover: {error} (again)");
                let _ = consumer.poll(Duration::from_millis(500));
            }
        }
    }
    assert!(committed, "the new coordinator accepts the member's commit");
    read.sort();
    read.dedup();
    let mut expected = acked.clone();
    expected.sort();
    assert_eq!(read, expected, "every record, through the failover");
    assert_eq!(
        context.events(),
        vec![RebalanceEvent::Assign([0, 1, 2].into())],
        "one assignment, no rebalance across the failover"
    );
}

/// An admin commit (generation -1) of `offset` for partition 0 of `topic`;
/// the partition's error code.
fn commit_offset(address: &str, group: &str, topic: &str, offset: i64) -> i16 {
    let request = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)])]);
    let response: OffsetCommitResponse = RawConnection::connect(address).request(7, 11, &request);
    response.topics[0].partitions[0].error_code
}

/// OffsetFetch v7 of partition 0 of `topic`: (group error code, partition
/// error code, committed offset).
fn fetch_offset(connection: &mut RawConnection, group: &str, topic: &str) -> (i16, i16, i64) {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_indexes(vec![0])]));
    let response: OffsetFetchResponse = connection.request(7, 12, &request);
    let partition = response
        .topics
        .first()
        .and_then(|t| t.partitions.first())
        .map_or((0, -1), |p| (p.error_code, p.committed_offset));
    (response.error_code, partition.0, partition.1)
}

/// docs/FAULTS.md #4: a group coordinator paused past the session timeout is
/// fenced and replaced; commits go on at the new one; when the old one
/// resumes, still believing it leads the group's partition until it applies
/// the newer metadata, it must not answer from its memory (the older
/// offset): NOT_COORDINATOR (its lease lapsed) or the newer offset.
#[test]
fn a_paused_group_coordinator_does_not_answer_stale_offsets_when_it_resumes() {
    const NOT_COORDINATOR: i16 = 16;
    const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    let dir = TempDir::new().expect("temp dir");
    let nodes = start_cluster(dir.path(), &pause_settings());
    let first = nodes[0].address.clone();
    let (group, topic) = ("stale-offsets", "stale-offsets");
    create_replicated_topic(&first, topic, 1, 3, &[("min.insync.replicas", "2")]);
    let mut old = -1;
    eventually_seen("the group's coordinator takes a commit", WAIT, || {
        old = find_coordinator(&first, group, 0);
        let code = if old > 0 {
            commit_offset(&nodes[(old - 1) as usize].address, group, topic, 5)
        } else {
            -1
        };
        (code == 0, format!("coordinator {old}, commit error {code}"))
    });
    let offsets_partition_isr_full =
        || (0..3).all(|p| leader_and_isr(&first, "__consumer_offsets", p).1 == all());
    eventually(
        "__consumer_offsets fully in sync",
        WAIT,
        offsets_partition_isr_full,
    );

    let old_node = &nodes[(old - 1) as usize];
    old_node.pause();
    let alive = alive_address(&nodes, old);
    let mut new = -1;
    eventually_seen(
        "another broker coordinates and takes the newer commit",
        WAIT,
        || {
            new = find_coordinator(&alive, group, 0);
            let code = if new > 0 && new != old {
                commit_offset(&nodes[(new - 1) as usize].address, group, topic, 9)
            } else {
                -1
            };
            (code == 0, format!("coordinator {new}, commit error {code}"))
        },
    );
    // Queued while paused, read the moment it resumes: before it has heard
    // from anyone.
    let old_address = old_node.address.clone();
    let stale = std::thread::spawn(move || {
        let mut connection = RawConnection::connect(&old_address);
        fetch_offset(&mut connection, group, topic)
    });
    std::thread::sleep(Duration::from_millis(500));
    old_node.resume();
    let (group_code, partition_code, offset) = stale.join().expect("stale fetch");
    println!(
        "OffsetFetch to the resumed old coordinator {old}: group error {group_code}, \
         partition error {partition_code}, offset {offset}"
    );
    let refused = [NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS].contains(&group_code);
    assert!(
        refused || (group_code == 0 && partition_code == 0 && offset == 9),
        "the resumed old coordinator answered offset {offset} (error {group_code}/{partition_code}); \
         the new coordinator {new} had acknowledged 9"
    );
    // And the group reads 9 from whoever coordinates it once it settled.
    eventually_seen(
        "the committed offset is 9 from the coordinator",
        WAIT,
        || {
            let now = find_coordinator(&first, group, 0);
            if now <= 0 {
                return (false, format!("coordinator {now}"));
            }
            let mut connection = RawConnection::connect(&nodes[(now - 1) as usize].address);
            let seen = fetch_offset(&mut connection, group, topic);
            (seen == (0, 0, 9), format!("coordinator {now}: {seen:?}"))
        },
    );
}

/// docs/FAULTS.md #10: OffsetFetch shows a commit only once it is durable
/// (replicated to the ISR). With both followers of the group's
/// `__consumer_offsets` partition paused, a commit is written on the leader
/// but cannot be replicated; before the fix OffsetFetch answered it at once,
/// and a failover then lost it: the offsets read backwards.
#[test]
fn a_commit_is_not_visible_to_offset_fetch_before_it_is_replicated() {
    let dir = TempDir::new().expect("temp dir");
    let settings = [
        // The followers stay in the ISR while paused for the whole check.
        ("replica.lag.time.max.ms", "30000"),
        ("offsets.topic.num.partitions", "3"),
        ("transaction.state.log.num.partitions", "3"),
    ];
    let nodes = start_cluster(dir.path(), &settings);
    let first = nodes[0].address.clone();
    let (group, topic) = ("durable-commits", "durable-commits");
    create_replicated_topic(&first, topic, 1, 3, &[]);
    let mut coordinator = -1;
    eventually_seen("the group's coordinator takes a commit", WAIT, || {
        coordinator = find_coordinator(&first, group, 0);
        let code = if coordinator > 0 {
            commit_offset(&nodes[(coordinator - 1) as usize].address, group, topic, 5)
        } else {
            -1
        };
        (
            code == 0,
            format!("coordinator {coordinator}, commit error {code}"),
        )
    });
    eventually("__consumer_offsets fully in sync", WAIT, || {
        (0..3).all(|p| leader_and_isr(&first, "__consumer_offsets", p).1 == all())
    });
    let address = nodes[(coordinator - 1) as usize].address.clone();
    let followers: Vec<&Node> = nodes.iter().filter(|n| n.node_id != coordinator).collect();
    for follower in &followers {
        follower.pause();
    }
    let committing = {
        let address = address.clone();
        std::thread::spawn(move || commit_offset(&address, group, topic, 9))
    };
    std::thread::sleep(Duration::from_millis(1_000));
    let seen = fetch_offset(&mut RawConnection::connect(&address), group, topic);
    for follower in &followers {
        follower.resume();
    }
    let code = committing.join().expect("commit thread");
    println!("the unreplicated commit answered error {code}; OffsetFetch meanwhile: {seen:?}");
    assert_eq!(
        seen,
        (0, 0, 5),
        "OffsetFetch answered a commit that was not replicated yet"
    );
    if code == 0 {
        // Acknowledged once replicated: from then on it is what the group has.
        let after = fetch_offset(&mut RawConnection::connect(&address), group, topic);
        assert_eq!(after, (0, 0, 9), "the acknowledged commit is visible");
    }
}
