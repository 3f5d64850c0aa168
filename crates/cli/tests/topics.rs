//! CreateTopics through the AdminClient, and auto-creation on a producer's metadata request.

mod common;

use std::time::{Duration, Instant};

use common::{create_topic, create_topics_raw, partition_count, produce_one, start_in_process};
use rdkafka::types::RDKafkaErrorCode;

/// The error code of the single topic result, `None` on success.
async fn create_error(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    replication: i32,
) -> Option<RDKafkaErrorCode> {
    let results = create_topics_raw(bootstrap, &[(name, partitions, replication)])
        .await
        .unwrap_or_else(|error| panic!("CreateTopics {name:?} request failed: {error}"));
    assert_eq!(results.len(), 1, "one result for {name:?}");
    results[0].as_ref().err().map(|(_, code)| *code)
}

/// Waits until metadata lists `topic` with partitions, returns the count.
fn wait_for_partitions(bootstrap: &str, topic: &str) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(count) = partition_count(bootstrap, topic) {
            if count > 0 {
                return count;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{topic} never appeared in metadata"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_topic_is_rejected() {
    let cluster = start_in_process(&[]);
    create_topic(cluster.bootstrap(), "twice", 2).await;
    assert_eq!(
        create_error(cluster.bootstrap(), "twice", 2, 1).await,
        Some(RDKafkaErrorCode::TopicAlreadyExists)
    );
    assert_eq!(wait_for_partitions(cluster.bootstrap(), "twice"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_topic_names_are_rejected() {
    let cluster = start_in_process(&[]);
    let too_long = "a".repeat(250);
    let names: &[&str] = &["", ".", "..", &too_long, "bad/name", "spaces are bad"];
    for name in names {
        eprintln!("phase: name {name:?}");
        assert_eq!(
            create_error(cluster.bootstrap(), name, 1, 1).await,
            Some(RDKafkaErrorCode::InvalidTopic),
            "CreateTopics {name:?}"
        );
    }
    // The longest legal name (249 characters) is accepted.
    let longest = "b".repeat(249);
    assert_eq!(
        create_error(cluster.bootstrap(), &longest, 1, 1).await,
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_partition_count_applies_to_minus_one() {
    // (broker settings, expected partitions for num_partitions = -1)
    let cases: &[(&[(&str, &str)], usize)] = &[(&[], 1), (&[("num.partitions", "3")], 3)];
    for (settings, expected) in cases {
        eprintln!("phase: settings {settings:?}");
        let cluster = start_in_process(settings);
        assert_eq!(
            create_error(cluster.bootstrap(), "defaulted", -1, -1).await,
            None
        );
        assert_eq!(
            wait_for_partitions(cluster.bootstrap(), "defaulted"),
            *expected,
            "partitions with settings {settings:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_factor_above_broker_count_is_rejected() {
    let cluster = start_in_process(&[]);
    assert_eq!(
        create_error(cluster.bootstrap(), "three-copies", 1, 3).await,
        Some(RDKafkaErrorCode::InvalidReplicationFactor)
    );
    assert_eq!(
        partition_count(cluster.bootstrap(), "three-copies"),
        None,
        "the rejected topic does not exist"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_metadata_request_auto_creates_a_topic() {
    let cluster = start_in_process(&[("num.partitions", "2")]);
    let offset = produce_one(cluster.bootstrap(), "auto-created", "k", "v").await;
    assert_eq!(offset, 0);
    assert_eq!(wait_for_partitions(cluster.bootstrap(), "auto-created"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_metadata_request_does_not_create_a_topic() {
    // librdkafka consumers send allow_auto_topic_creation = false.
    let cluster = start_in_process(&[]);
    assert_eq!(
        partition_count(cluster.bootstrap(), "only-asked-about"),
        None
    );
    assert_eq!(
        partition_count(cluster.bootstrap(), "only-asked-about"),
        None,
        "the first metadata request did not create the topic"
    );
}
