//! Replication on a cluster of three brokers in this process (sluice-
//! testkit's `TestCluster`), with rdkafka and raw requests: a topic with
//! replication factor 3 keeps every acknowledged record when its leader
//! stops, the stopped broker catches up and rejoins the ISR, and
//! `min.insync.replicas` decides whether acks=all is accepted (nothing is
//! appended when it is not), as in Kafka.

mod common;
#[path = "common/group.rs"]
mod group;

use std::collections::BTreeSet;
use std::time::Duration;

use common::cluster::{
    brokers, consume_values, create_replicated_topic, eventually, find_coordinator, leader_and_isr,
    produce_acked, produce_raw,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use sluice_testkit::TestCluster;

/// Short sessions and lag time, so a stopped broker is fenced and a
/// lagging one leaves the ISR within seconds; small internal topics.
const SETTINGS: &[(&str, &str)] = &[
    ("broker.heartbeat.interval.ms", "500"),
    ("broker.session.timeout.ms", "4000"),
    ("replica.lag.time.max.ms", "3000"),
    ("auto.create.topics.enable", "false"),
    ("offsets.topic.num.partitions", "3"),
    ("transaction.state.log.num.partitions", "3"),
];

const WAIT: Duration = Duration::from_secs(60);

fn all() -> BTreeSet<i32> {
    BTreeSet::from([1, 2, 3])
}

fn values(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

#[test]
fn acknowledged_records_survive_the_loss_of_the_leader_and_the_broker_rejoins_the_isr() {
    let mut cluster = TestCluster::start(3, SETTINGS).expect("three nodes start");
    let first = cluster.node(1).address();
    eventually("every broker is unfenced", WAIT, || {
        brokers(&first) == all()
    });
    create_replicated_topic(&first, "survive", 1, 3, &[("min.insync.replicas", "2")]);
    eventually("the ISR holds every replica", WAIT, || {
        leader_and_isr(&first, "survive", 0).1 == all()
    });
    produce_acked(cluster.bootstrap(), "survive", "a", 100);

    let (leader, _) = leader_and_isr(&first, "survive", 0);
    cluster.stop_node(leader).expect("the leader stops");
    let alive = cluster.node(if leader == 1 { 2 } else { 1 }).address();
    eventually("another replica leads", WAIT, || {
        let (now, isr) = leader_and_isr(&alive, "survive", 0);
        now != -1 && now != leader && !isr.contains(&leader)
    });
    produce_acked(&alive, "survive", "b", 50);
    let expected: Vec<String> = values("a", 100)
        .into_iter()
        .chain(values("b", 50))
        .collect();
    assert_eq!(
        consume_values(&alive, "survive", 1, 150, WAIT),
        expected,
        "every acknowledged record, in order, once"
    );

    cluster
        .restart_node(leader)
        .expect("the old leader restarts");
    eventually(
        "the restarted broker catches up and rejoins the ISR",
        WAIT,
        || leader_and_isr(&alive, "survive", 0).1 == all(),
    );
    // Its copy is complete: with the current leader gone too, the records
    // are still all there.
    let (second, _) = leader_and_isr(&alive, "survive", 0);
    cluster.stop_node(second).expect("the second leader stops");
    let alive = cluster
        .node((1..=3).find(|n| *n != second).expect("a node"))
        .address();
    eventually("a third leader", WAIT, || {
        let (now, _) = leader_and_isr(&alive, "survive", 0);
        now != -1 && now != second
    });
    assert_eq!(consume_values(&alive, "survive", 1, 150, WAIT), expected);
    cluster.restart_node(second).expect("restart");
    cluster.shutdown().expect("clean shutdown");
}

#[test]
fn min_insync_replicas_decides_whether_acks_all_is_accepted() {
    let mut cluster = TestCluster::start(3, SETTINGS).expect("three nodes start");
    let first = cluster.node(1).address();
    eventually("every broker is unfenced", WAIT, || {
        brokers(&first) == all()
    });
    create_replicated_topic(&first, "min-isr", 1, 3, &[("min.insync.replicas", "3")]);
    eventually("the ISR holds every replica", WAIT, || {
        leader_and_isr(&first, "min-isr", 0).1 == all()
    });
    let (leader, _) = leader_and_isr(&first, "min-isr", 0);
    let leader_address = cluster.node(leader).address();
    // The leader may still be opening the partition (NOT_LEADER_OR_FOLLOWER,
    // nothing appended): retried.
    eventually("the leader takes the first record", WAIT, || {
        produce_raw(&leader_address, "min-isr", 0, -1, &["first"]) == (0, 0)
    });

    let follower = (1..=3).find(|n| *n != leader).expect("a follower");
    cluster.stop_node(follower).expect("a follower stops");
    eventually("the ISR shrinks to two", WAIT, || {
        leader_and_isr(&leader_address, "min-isr", 0).1.len() == 2
    });
    // The classic health check names it, and describe says so.
    let listed = group::sluice(&leader_address, &["topic", "list", "--under-replicated"]);
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    let row = group::table_row(&listed.stdout, &["min-isr", "0"])
        .unwrap_or_else(|| panic!("no row for min-isr 0:\n{}", listed.stdout));
    assert_eq!(row[2], leader.to_string());
    assert_eq!(row[5], "under-replicated", "{row:?}");
    let described = group::sluice(&leader_address, &["topic", "describe", "min-isr"]);
    assert!(
        described.stdout.contains("UNDER-REPLICATED  [0]"),
        "{}",
        described.stdout
    );
    // NOT_ENOUGH_REPLICAS, and nothing appended: the acks=1 record that
    // follows takes the next offset.
    assert_eq!(
        produce_raw(&leader_address, "min-isr", 0, -1, &["refused"]).0,
        19,
        "NOT_ENOUGH_REPLICAS"
    );
    assert_eq!(
        produce_raw(&leader_address, "min-isr", 0, 1, &["one"]),
        (0, 1)
    );

    cluster
        .restart_node(follower)
        .expect("the follower restarts");
    eventually("the follower rejoins the ISR", WAIT, || {
        leader_and_isr(&leader_address, "min-isr", 0).1 == all()
    });
    assert_eq!(
        produce_raw(&leader_address, "min-isr", 0, -1, &["again"]),
        (0, 2)
    );
    assert_eq!(
        consume_values(&leader_address, "min-isr", 1, 3, WAIT),
        vec!["first", "one", "again"]
    );
    cluster.shutdown().expect("clean shutdown");
}

fn group_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer")
}

#[test]
fn committed_offsets_survive_the_loss_of_the_group_coordinator() {
    let mut cluster = TestCluster::start(3, SETTINGS).expect("three nodes start");
    let first = cluster.node(1).address();
    eventually("every broker is unfenced", WAIT, || {
        brokers(&first) == all()
    });
    create_replicated_topic(&first, "work", 2, 3, &[]);
    let consumer = group_consumer(cluster.bootstrap(), "survivors");
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset("work", 0, Offset::Offset(7))
        .expect("offset");
    offsets
        .add_partition_offset("work", 1, Offset::Offset(3))
        .expect("offset");
    // The first commit creates __consumer_offsets (replication factor 3)
    // and waits until its record is replicated.
    eventually("the commit is accepted", WAIT, || {
        consumer.commit(&offsets, CommitMode::Sync).is_ok()
    });
    drop(consumer);

    let coordinator = find_coordinator(&first, "survivors", 0);
    assert!((1..=3).contains(&coordinator), "coordinator {coordinator}");
    cluster
        .stop_node(coordinator)
        .expect("the coordinator stops");
    let alive = cluster
        .node((1..=3).find(|n| *n != coordinator).expect("a node"))
        .address();
    eventually("another broker coordinates the group", WAIT, || {
        let now = find_coordinator(&alive, "survivors", 0);
        now > 0 && now != coordinator
    });
    let consumer = group_consumer(&alive, "survivors");
    let mut asked = TopicPartitionList::new();
    asked.add_partition("work", 0);
    asked.add_partition("work", 1);
    let mut seen = Vec::new();
    eventually(
        "the new coordinator has the committed offsets",
        WAIT,
        || match consumer.committed_offsets(asked.clone(), Duration::from_secs(5)) {
            Ok(list) => {
                seen = list
                    .elements()
                    .iter()
                    .map(|e| (e.partition(), e.offset()))
                    .collect();
                seen == vec![(0, Offset::Offset(7)), (1, Offset::Offset(3))]
            }
            Err(_) => false,
        },
    );
    drop(consumer);
    cluster.restart_node(coordinator).expect("restart");
    cluster.shutdown().expect("clean shutdown");
}

/// Everything a read_committed consumer reads within `timeout`, sorted.
fn read_committed_values(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    timeout: Duration,
) -> Vec<String> {
    let configs = [("isolation.level", "read_committed")];
    let mut values = common::cluster::consume_values_with(
        bootstrap,
        topic,
        partitions,
        usize::MAX,
        timeout,
        &configs,
    );
    values.sort();
    values
}

/// One record `{prefix}-{p}` to each of partitions 0..3 of `topic`.
fn send_to_each(
    producer: &rdkafka::producer::ThreadedProducer<rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    prefix: &str,
) {
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
}

#[test]
fn a_transaction_over_partitions_led_by_every_broker_commits_and_aborts_as_a_whole() {
    use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
    let cluster = TestCluster::start(3, SETTINGS).expect("three nodes start");
    let first = cluster.node(1).address();
    eventually("every broker is unfenced", WAIT, || {
        brokers(&first) == all()
    });
    create_replicated_topic(&first, "spread-txn", 3, 3, &[]);
    eventually("three leaders", WAIT, || {
        (0..3)
            .map(|p| leader_and_isr(&first, "spread-txn", p).0)
            .collect::<BTreeSet<i32>>()
            == all()
    });
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("transactional.id", "spread")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    let timeout = Duration::from_secs(60);
    producer
        .init_transactions(timeout)
        .expect("init_transactions");
    producer.begin_transaction().expect("begin");
    send_to_each(&producer, "spread-txn", "committed");
    producer.commit_transaction(timeout).expect("commit");
    producer.begin_transaction().expect("begin");
    send_to_each(&producer, "spread-txn", "aborted");
    producer.flush(timeout).expect("flush");
    producer.abort_transaction(timeout).expect("abort");
    // Every partition's transactions ended (markers on all three leaders):
    // read_committed sees the committed records and nothing else, and its
    // last stable offsets moved past the aborted transaction.
    let values = read_committed_values(
        cluster.bootstrap(),
        "spread-txn",
        3,
        Duration::from_secs(10),
    );
    assert_eq!(values, vec!["committed-0", "committed-1", "committed-2"]);
    producer.begin_transaction().expect("begin");
    send_to_each(&producer, "spread-txn", "later");
    producer.commit_transaction(timeout).expect("commit");
    let values = read_committed_values(
        cluster.bootstrap(),
        "spread-txn",
        3,
        Duration::from_secs(10),
    );
    assert_eq!(
        values,
        vec![
            "committed-0",
            "committed-1",
            "committed-2",
            "later-0",
            "later-1",
            "later-2"
        ]
    );
    drop(producer);
    cluster.shutdown().expect("clean shutdown");
}

/// The committed offset of `group` for partition 0 of `topic` (librdkafka
/// asks with require_stable, so a pending transactional commit is waited
/// for), or None.
fn committed_offset(bootstrap: &str, group: &str, topic: &str) -> Option<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .expect("consumer");
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(topic, 0);
    let committed = consumer
        .committed_offsets(wanted, Duration::from_secs(10))
        .ok()?;
    match committed.find_partition(topic, 0)?.offset() {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }
}

/// Consume-transform-produce where the group's coordinator and the
/// transaction's are different brokers (two in three pairs on three
/// nodes): TxnOffsetCommit goes to the group's coordinator, the markers
/// from the transaction's coordinator make the offsets committed there on
/// commit, and drop them on abort (Kafka's onTransactionCompleted).
#[test]
fn transactional_offsets_commit_when_the_group_and_the_transaction_have_different_coordinators() {
    use rdkafka::producer::{DefaultProducerContext, Producer, ThreadedProducer};
    let cluster = TestCluster::start(3, SETTINGS).expect("three nodes start");
    let first = cluster.node(1).address();
    eventually("every broker is unfenced", WAIT, || {
        brokers(&first) == all()
    });
    create_replicated_topic(&first, "ctp-in", 1, 3, &[]);
    let coordinator = |key: &str, key_type: i8| {
        let mut found = -1;
        eventually("a coordinator", WAIT, || {
            found = find_coordinator(&first, key, key_type);
            found != -1
        });
        found
    };
    let group = "ctp-group";
    let group_coordinator = coordinator(group, 0);
    let transactional_id = (0..64)
        .map(|i| format!("ctp-txn-{i}"))
        .find(|id| coordinator(id, 1) != group_coordinator)
        .expect("a transactional id coordinated elsewhere");
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("transactional.id", &transactional_id)
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    let group_consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", cluster.bootstrap())
        .set("group.id", group)
        .create()
        .expect("consumer");
    let metadata = group_consumer.group_metadata().expect("group metadata");
    let timeout = Duration::from_secs(60);
    producer
        .init_transactions(timeout)
        .expect("init_transactions");
    let offsets_at = |offset: i64| {
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset("ctp-in", 0, Offset::Offset(offset))
            .expect("offset");
        offsets
    };
    producer.begin_transaction().expect("begin");
    producer
        .send_offsets_to_transaction(&offsets_at(7), &metadata, timeout)
        .expect("offsets to the group's coordinator");
    producer.commit_transaction(timeout).expect("commit");
    eventually("the offsets are committed", WAIT, || {
        committed_offset(cluster.bootstrap(), group, "ctp-in") == Some(7)
    });
    producer.begin_transaction().expect("begin");
    producer
        .send_offsets_to_transaction(&offsets_at(9), &metadata, timeout)
        .expect("offsets to the group's coordinator");
    producer.abort_transaction(timeout).expect("abort");
    // Still pending would hold require_stable fetches; kept would show 9.
    eventually("the aborted offsets are dropped", WAIT, || {
        committed_offset(cluster.bootstrap(), group, "ctp-in") == Some(7)
    });
    producer.begin_transaction().expect("begin");
    producer
        .send_offsets_to_transaction(&offsets_at(11), &metadata, timeout)
        .expect("offsets to the group's coordinator");
    producer.commit_transaction(timeout).expect("commit");
    eventually("the next commit's offsets are committed", WAIT, || {
        committed_offset(cluster.bootstrap(), group, "ctp-in") == Some(11)
    });
    drop(producer);
    drop(group_consumer);
    cluster.shutdown().expect("clean shutdown");
}

/// Partition 0 of `topic` as node `node_id`'s metadata image has it.
fn partition_state(
    cluster: &TestCluster,
    node_id: i32,
    topic: &str,
) -> Option<sluice_meta::PartitionState> {
    let image = cluster.node(node_id).broker()?.metadata_image();
    let topic = image.topics.values().find(|t| t.name == topic)?;
    topic.partitions.first().cloned()
}

/// Unclean leader election and leader recovery (KIP-704), with the lesson
/// of it: a topic that allows unclean election gets a leader back from an
/// out-of-sync replica when its only in-sync one is gone, RECOVERING with
/// the ISR that replica alone, and loses what only the old leader had; the
/// old leader returns, truncates to the new one's log, joins the ISR, and
/// the partition is RECOVERED. Three controllers keep the quorum while the
/// two brokers of the topic stop and start.
#[test]
fn an_unclean_leader_recovers_and_the_old_leader_truncates_to_it() {
    use sluice_broker::ProcessRoles::{Broker, Combined};
    use sluice_meta::LeaderRecoveryState::{Recovered, Recovering};
    let roles = [Combined, Combined, Combined, Broker, Broker];
    let mut cluster = TestCluster::start_with_roles(&roles, SETTINGS).expect("five nodes start");
    let first = cluster.node(1).address();
    eventually("every broker is unfenced", WAIT, || {
        brokers(&first) == BTreeSet::from([1, 2, 3, 4, 5])
    });
    let topic = "unclean";
    common::cluster::create_assigned_topic(
        &first,
        topic,
        &[4, 5],
        &[("unclean.leader.election.enable", "true")],
    );
    eventually("4 leads, 5 in sync", WAIT, || {
        leader_and_isr(&first, topic, 0) == (4, BTreeSet::from([4, 5]))
    });
    produce_acked(cluster.bootstrap(), topic, "before", 10);

    tracing::info!("phase: the follower stops; the leader alone takes more writes");
    cluster.stop_node(5).expect("node 5 stops");
    eventually("5 left the ISR", WAIT, || {
        leader_and_isr(&first, topic, 0) == (4, BTreeSet::from([4]))
    });
    produce_acked(cluster.bootstrap(), topic, "only-on-4", 5);

    tracing::info!("phase: the leader stops too; 5 returns and leads uncleanly");
    cluster.stop_node(4).expect("node 4 stops");
    eventually("the partition is offline", WAIT, || {
        leader_and_isr(&first, topic, 0).0 == -1
    });
    cluster.restart_node(5).expect("node 5 restarts");
    eventually("5 leads, recovering, the ISR itself alone", WAIT, || {
        partition_state(&cluster, 1, topic)
            .is_some_and(|p| p.leader == 5 && p.isr == [5] && p.leader_recovery_state == Recovering)
    });
    produce_acked(cluster.bootstrap(), topic, "after", 5);

    tracing::info!("phase: the old leader returns, truncates, and rejoins");
    cluster.restart_node(4).expect("node 4 restarts");
    eventually("4 rejoined the ISR and 5 has recovered", WAIT, || {
        partition_state(&cluster, 1, topic).is_some_and(|p| {
            p.leader == 5 && p.isr == [5, 4] && p.leader_recovery_state == Recovered
        })
    });
    let mut expected = values("before", 10);
    expected.extend(values("after", 5));
    // Read from the old leader itself once it leads again.
    cluster.stop_node(5).expect("node 5 stops");
    eventually("4 leads again", WAIT, || {
        leader_and_isr(&first, topic, 0).0 == 4
    });
    let read = consume_values(cluster.bootstrap(), topic, 1, 15, Duration::from_secs(30));
    assert_eq!(
        read, expected,
        "the writes only 4 had are gone; 4 has 5's log"
    );
    cluster.shutdown().expect("clean shutdown");
}
