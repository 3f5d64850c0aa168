//! Helpers for tests of a cluster of brokers (in this process or as
//! processes): raw Metadata and DescribeQuorum, topic creation with a
//! replication factor and configs, acks=all production and reading back
//! with rdkafka, raw produce for exact error codes, and polling with a
//! bound.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    describe_quorum_request, DescribeQuorumRequest, FindCoordinatorRequest,
    FindCoordinatorResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice_testkit::batch::{RecordBatchBuilder, TestRecord};

use super::raw::RawConnection;
use super::CLIENT_TIMEOUT;

/// Metadata v12 of one topic (or of none, with `Some("")` the brokers
/// only), as `address` sees it.
pub fn metadata(address: &str, topic: Option<&str>) -> MetadataResponse {
    let mut connection = RawConnection::connect(address);
    let topics = topic.map(|name| {
        if name.is_empty() {
            Vec::new()
        } else {
            vec![MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_string(name.to_string()))))]
        }
    });
    connection.request(12, 1, &MetadataRequest::default().with_topics(topics))
}

/// Leader of each partition of `topic` as `address` sees it.
pub fn leaders(address: &str, topic: &str) -> BTreeMap<i32, i32> {
    metadata(address, Some(topic))
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.leader_id.0))
        .collect()
}

/// (leader, ISR) of one partition as `address` sees it.
pub fn leader_and_isr(address: &str, topic: &str, partition: i32) -> (i32, BTreeSet<i32>) {
    let response = metadata(address, Some(topic));
    response
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .find(|p| p.partition_index == partition)
        .map(|p| {
            (
                p.leader_id.0,
                p.isr_nodes.iter().map(|n| n.0).collect::<BTreeSet<i32>>(),
            )
        })
        .unwrap_or((-1, BTreeSet::new()))
}

/// The unfenced brokers `address` lists.
pub fn brokers(address: &str) -> BTreeSet<i32> {
    metadata(address, Some(""))
        .brokers
        .iter()
        .map(|b| b.node_id.0)
        .collect()
}

/// The active controller, from DescribeQuorum.
pub fn quorum_leader(address: &str) -> i32 {
    let mut connection = RawConnection::connect(address);
    let request = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![describe_quorum_request::PartitionData::default()]),
    ]);
    let response = connection.request(0, 7, &request);
    response.topics[0].partitions[0].leader_id.0
}

/// DescribeQuorum as `address` answers it: (leader, voters, observers).
pub fn quorum_members(address: &str) -> (i32, BTreeSet<i32>, BTreeSet<i32>) {
    let mut connection = RawConnection::connect(address);
    let request = DescribeQuorumRequest::default().with_topics(vec![
        describe_quorum_request::TopicData::default()
            .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
            .with_partitions(vec![describe_quorum_request::PartitionData::default()]),
    ]);
    let response: kafka_protocol::messages::DescribeQuorumResponse =
        connection.request(0, 7, &request);
    let partition = &response.topics[0].partitions[0];
    let ids = |replicas: &[kafka_protocol::messages::describe_quorum_response::ReplicaState]| {
        replicas
            .iter()
            .map(|r| r.replica_id.0)
            .collect::<BTreeSet<i32>>()
    };
    (
        partition.leader_id.0,
        ids(&partition.current_voters),
        ids(&partition.observers),
    )
}

/// Polls `check` until it holds, at most `timeout`.
pub fn eventually(what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `check` until it holds, at most `timeout`; `check` also says
/// what it saw, and the last of that is in the failure.
pub fn eventually_seen(what: &str, timeout: Duration, mut check: impl FnMut() -> (bool, String)) {
    let deadline = Instant::now() + timeout;
    loop {
        let (holds, seen) = check();
        if holds {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {timeout:?}; last seen: {seen}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Runs a future to completion on a small runtime of its own.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(future)
}

/// Creates a topic through `address` with a replication factor and topic
/// configs.
pub fn create_replicated_topic(
    address: &str,
    name: &str,
    partitions: i32,
    replication_factor: i32,
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", address)
        .create()
        .expect("admin client");
    let mut topic = NewTopic::new(
        name,
        partitions,
        TopicReplication::Fixed(replication_factor),
    );
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(CLIENT_TIMEOUT));
    let results = block_on(admin.create_topics([&topic], &options)).expect("create topics");
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("creating {topic}: {code:?}"));
    }
}

/// Creates `topic` with one partition on `replicas` (the first is the
/// preferred leader) and topic configs.
pub fn create_assigned_topic(
    address: &str,
    topic: &str,
    replicas: &[i32],
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", address)
        .create()
        .expect("admin client");
    let assignment = [replicas];
    let mut new = NewTopic::new(topic, 1, TopicReplication::Variable(&assignment));
    for (key, value) in configs {
        new = new.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(CLIENT_TIMEOUT));
    let results = block_on(admin.create_topics([&new], &options)).expect("create topics");
    for result in results {
        result.unwrap_or_else(|(topic, code)| panic!("creating {topic}: {code:?}"));
    }
}

/// Produces `count` records `{prefix}-{i}` with acks=all (idempotent),
/// each acknowledged before the next; panics on a failed delivery.
pub fn produce_acked(bootstrap: &str, topic: &str, prefix: &str, count: usize) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("producer");
    block_on(async {
        for i in 0..count {
            let key = format!("key-{i}");
            let value = format!("{prefix}-{i}");
            let record = FutureRecord::to(topic).key(&key).payload(&value);
            producer
                .send(record, Duration::from_secs(60))
                .await
                .unwrap_or_else(|(error, _)| panic!("producing record {value}: {error}"));
        }
    });
}

/// Reads every partition of `topic` from the start until `count` records
/// arrived or `timeout` passed; returns the values in the order read.
pub fn consume_values(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    timeout: Duration,
) -> Vec<String> {
    consume_values_with(bootstrap, topic, partitions, count, timeout, &[])
}

/// `consume_values` with consumer configs (e.g. `isolation.level`).
pub fn consume_values_with(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    count: usize,
    timeout: Duration,
    configs: &[(&str, &str)],
) -> Vec<String> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "cluster-test")
        .set("enable.auto.commit", "false");
    for (key, value) in configs {
        config.set(*key, *value);
    }
    let consumer: BaseConsumer = config.create().expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("assignment");
    }
    consumer.assign(&assignment).expect("assign");
    let mut values = Vec::new();
    let deadline = Instant::now() + timeout;
    while values.len() < count && Instant::now() < deadline {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
            let value = message
                .payload()
                .map(|v| String::from_utf8_lossy(v).to_string());
            values.push(value.unwrap_or_default());
        }
    }
    values
}

/// One raw Produce v9 of `values` to one partition with `acks`: the
/// partition's (error code, base offset).
pub fn produce_raw(
    address: &str,
    topic: &str,
    partition: i32,
    acks: i16,
    values: &[&str],
) -> (i16, i64) {
    let batch = RecordBatchBuilder::new()
        .records(values.iter().map(|v| TestRecord::value(v.as_bytes())))
        .build()
        .freeze();
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let mut connection = RawConnection::connect(address);
    let response: ProduceResponse = connection.request(9, 3, &request);
    let answer = &response.responses[0].partition_responses[0];
    (answer.error_code, answer.base_offset)
}

/// The coordinator `address` names for a group (key type 0) or a
/// transactional id (1): its node id, or -1 with an error.
pub fn find_coordinator(address: &str, key: &str, key_type: i8) -> i32 {
    let mut connection = RawConnection::connect(address);
    let request = FindCoordinatorRequest::default()
        .with_key_type(key_type)
        .with_coordinator_keys(vec![StrBytes::from_string(key.to_string())]);
    let response: FindCoordinatorResponse = connection.request(4, 5, &request);
    response
        .coordinators
        .first()
        .filter(|c| c.error_code == 0)
        .map_or(-1, |c| c.node_id.0)
}
