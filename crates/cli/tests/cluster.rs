//! A cluster of three brokers in this process (sluice-testkit's
//! `TestCluster`: three voters, each a broker), used with rdkafka and raw
//! requests: it forms, every broker gives the same metadata, a topic is
//! spread over the brokers and served through one bootstrap address, a
//! non-controller broker creates topics, and a broker that stops hands its
//! partitions over (replication factor 1: they are offline) and takes them
//! back with its data when it returns.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::cluster::{
    brokers, consume_values, create_replicated_topic, eventually, leaders, produce_acked,
    quorum_leader,
};
use common::raw::RawConnection;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_testkit::TestCluster;

/// Short sessions, so a stopped broker is fenced within seconds.
const SETTINGS: &[(&str, &str)] = &[
    ("broker.heartbeat.interval.ms", "500"),
    ("broker.session.timeout.ms", "4000"),
    ("auto.create.topics.enable", "false"),
];

fn create_topic(address: &str, name: &str, partitions: i32) {
    create_replicated_topic(address, name, partitions, 1, &[]);
}

fn produce(bootstrap: &str, topic: &str, count: usize) {
    produce_acked(bootstrap, topic, "value", count);
}

/// The values of `count` records read from every partition's start.
fn consume(bootstrap: &str, topic: &str, partitions: i32, count: usize) -> BTreeSet<String> {
    consume_values(bootstrap, topic, partitions, count, Duration::from_secs(60))
        .into_iter()
        .collect()
}

#[test]
fn three_brokers_form_one_cluster_that_spreads_and_serves_a_topic() {
    let cluster = TestCluster::start(3, SETTINGS).expect("three nodes start");
    let addresses: Vec<String> = cluster.nodes().iter().map(|n| n.address()).collect();
    for address in &addresses {
        eventually("every broker is unfenced", Duration::from_secs(30), || {
            brokers(address) == BTreeSet::from([1, 2, 3])
        });
    }
    // Through a broker that is not the active controller: it carries the
    // request there.
    let controller = quorum_leader(&addresses[0]);
    let other = addresses[(controller as usize) % 3].clone();
    assert_ne!(quorum_leader(&other), -1);
    create_topic(&other, "spread", 6);
    for address in &addresses {
        eventually(
            "every broker knows the topic",
            Duration::from_secs(10),
            || leaders(address, "spread").len() == 6,
        );
    }
    let seen: Vec<BTreeMap<i32, i32>> = addresses.iter().map(|a| leaders(a, "spread")).collect();
    assert!(
        seen.iter().all(|l| *l == seen[0]),
        "the brokers agree: {seen:?}"
    );
    let mut led: BTreeMap<i32, usize> = BTreeMap::new();
    for leader in seen[0].values() {
        *led.entry(*leader).or_default() += 1;
    }
    assert_eq!(
        led,
        BTreeMap::from([(1, 2), (2, 2), (3, 2)]),
        "leaders are spread evenly: {seen:?}"
    );

    // KIP-951: a broker that does not lead a partition names its leader
    // and the leader's endpoint.
    let (partition, leader) = seen[0].iter().next().map(|(p, l)| (*p, *l)).unwrap();
    let elsewhere = addresses[(leader as usize) % 3].clone();
    let mut connection = RawConnection::connect(&elsewhere);
    let request = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("spread")))
            .with_partition_data(vec![
                PartitionProduceData::default().with_index(partition)
            ])]);
    let response: ProduceResponse = connection.request(12, 9, &request);
    let answer = &response.responses[0].partition_responses[0];
    assert_eq!(answer.error_code, 6, "NOT_LEADER_OR_FOLLOWER: {answer:?}");
    assert_eq!(answer.current_leader.leader_id.0, leader);
    let endpoint = &response.node_endpoints[0];
    assert_eq!(endpoint.node_id.0, leader);
    assert_eq!(
        format!("{}:{}", endpoint.host, endpoint.port),
        addresses[(leader - 1) as usize]
    );

    // One bootstrap address reaches every partition's leader.
    produce(&addresses[0], "spread", 60);
    let values = consume(&addresses[1], "spread", 6, 60);
    assert_eq!(values.len(), 60, "every record comes back");
    cluster.shutdown().expect("clean shutdown");
}

#[test]
fn a_stopped_broker_is_fenced_its_partitions_go_offline_and_come_back_with_their_data() {
    let mut cluster = TestCluster::start(3, SETTINGS).expect("three nodes start");
    let first = cluster.node(1).address();
    eventually("every broker is unfenced", Duration::from_secs(30), || {
        brokers(&first) == BTreeSet::from([1, 2, 3])
    });
    create_topic(&first, "offline", 3);
    produce(cluster.bootstrap(), "offline", 30);
    let before = leaders(&first, "offline");
    let on_two: Vec<i32> = before
        .iter()
        .filter(|(_, l)| **l == 2)
        .map(|(p, _)| *p)
        .collect();
    assert_eq!(on_two.len(), 1, "{before:?}");

    cluster.stop_node(2).expect("node 2 stops");
    eventually("node 2 is fenced", Duration::from_secs(30), || {
        brokers(&first) == BTreeSet::from([1, 3])
    });
    let during = leaders(&first, "offline");
    assert_eq!(
        during[&on_two[0]], -1,
        "its partition has no leader: {during:?}"
    );
    // Metadata changes still succeed without node 2.
    create_topic(&first, "while-two-is-down", 2);

    cluster.restart_node(2).expect("node 2 restarts");
    eventually(
        "node 2 leads its partition again",
        Duration::from_secs(30),
        || leaders(&first, "offline") == before,
    );
    let values = consume(cluster.bootstrap(), "offline", 3, 30);
    assert_eq!(values.len(), 30, "node 2 kept its records");
    cluster.shutdown().expect("clean shutdown");
}
