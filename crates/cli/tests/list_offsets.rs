//! ListOffsets: timestamp lookup (first record with timestamp >= target), the
//! special timestamps -1 (latest), -2 (earliest) and -3 (max timestamp, KIP-734).

mod common;

use std::time::Duration;

use common::raw::RawConnection;
use common::segment::read_first_segment;
use common::{consumer, create_topic, producer, start_in_process, watermarks, CLIENT_TIMEOUT};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{BrokerId, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use rdkafka::consumer::Consumer;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "timestamps";

/// Timestamps of the records, by offset, relative to a base. Offsets 2..=5 share one batch;
/// offset 7 has a smaller timestamp than offset 6 (client timestamps need not increase).
const RELATIVE_TIMESTAMPS: [i64; 8] = [1000, 2000, 3000, 3100, 3200, 3300, 5000, 4000];

fn send(
    producer: &FutureProducer,
    offset: usize,
    timestamp: i64,
) -> rdkafka::producer::DeliveryFuture {
    let value = format!("record-{offset}");
    let record = FutureRecord::to(TOPIC)
        .partition(0)
        .key("k")
        .payload(&value)
        .timestamp(timestamp);
    producer
        .send_result(record)
        .unwrap_or_else(|(error, _)| panic!("enqueue record {offset}: {error}"))
}

async fn acknowledged(delivery: rdkafka::producer::DeliveryFuture) -> i64 {
    tokio::time::timeout(Duration::from_secs(30), delivery)
        .await
        .expect("delivery report in time")
        .expect("delivery future not cancelled")
        .unwrap_or_else(|(error, _)| panic!("produce failed: {error}"))
        .offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_and_special_timestamps() {
    let cluster = start_in_process(&[]);
    create_topic(cluster.bootstrap(), TOPIC, 1).await;
    // Recent enough for retention, in the past for message.timestamp.after.max.ms.
    let base = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 600_000;
    let timestamp = |offset: usize| base + RELATIVE_TIMESTAMPS[offset];

    eprintln!("phase: produce");
    let single = producer(cluster.bootstrap(), &[("linger.ms", "0")]);
    let batched = producer(cluster.bootstrap(), &[("linger.ms", "1000")]);
    for offset in 0..2 {
        let delivery = send(&single, offset, timestamp(offset));
        assert_eq!(acknowledged(delivery).await, offset as i64);
    }
    let mut shared_batch = Vec::new();
    for offset in 2..6 {
        shared_batch.push(send(&batched, offset, timestamp(offset)));
    }
    for (delivery, offset) in shared_batch.into_iter().zip(2..) {
        assert_eq!(acknowledged(delivery).await, offset);
    }
    for offset in 6..8 {
        let delivery = send(&single, offset, timestamp(offset));
        assert_eq!(acknowledged(delivery).await, offset as i64);
    }

    let (_, batches) = read_first_segment(cluster.node(1).data_dir(), TOPIC, 0);
    let batch_of_2 = batches
        .iter()
        .find(|b| b.base_offset <= 2 && 2 <= b.last_offset())
        .expect("a batch holds offset 2");
    assert_eq!(
        (batch_of_2.base_offset, batch_of_2.last_offset()),
        (2, 5),
        "precondition: offsets 2..=5 were produced as one batch"
    );

    eprintln!("phase: offsets_for_times");
    // (target timestamp relative to base, expected offset; None = no such record)
    let cases: &[(i64, Option<i64>)] = &[
        (0, Some(0)),
        (1000, Some(0)),
        (1500, Some(1)), // between batches
        (2000, Some(1)),
        (2500, Some(2)), // between batches, start of the shared batch
        (3050, Some(3)), // inside the shared batch
        (3100, Some(3)),
        (3150, Some(4)),
        (3300, Some(5)),
        (3301, Some(6)),
        (4000, Some(6)), // offset 7 has 4000 but offset 6 comes first and has 5000
        (5000, Some(6)),
        (5001, None),
    ];
    let consumer = consumer(cluster.bootstrap(), &[]);
    for (relative, expected) in cases {
        let mut query = TopicPartitionList::new();
        query
            .add_partition_offset(TOPIC, 0, Offset::Offset(base + relative))
            .unwrap();
        let answer = consumer
            .offsets_for_times(query, CLIENT_TIMEOUT)
            .unwrap_or_else(|error| panic!("offsets_for_times base+{relative}: {error}"));
        let element = answer
            .find_partition(TOPIC, 0)
            .expect("partition in answer");
        assert!(
            element.error().is_ok(),
            "base+{relative}: {:?}",
            element.error()
        );
        let expected = match expected {
            Some(offset) => Offset::Offset(*offset),
            None => Offset::End,
        };
        assert_eq!(element.offset(), expected, "target base+{relative}");
    }

    eprintln!("phase: latest and earliest through the client");
    for (special, expected) in [(Offset::End, 8), (Offset::Beginning, 0)] {
        let mut query = TopicPartitionList::new();
        query.add_partition_offset(TOPIC, 0, special).unwrap();
        let answer = consumer
            .offsets_for_times(query, CLIENT_TIMEOUT)
            .unwrap_or_else(|error| panic!("offsets_for_times {special:?}: {error}"));
        let element = answer
            .find_partition(TOPIC, 0)
            .expect("partition in answer");
        assert_eq!(element.offset(), Offset::Offset(expected), "{special:?}");
    }
    assert_eq!(watermarks(cluster.bootstrap(), TOPIC, 0), (0, 8));

    eprintln!("phase: raw ListOffsets v7");
    // (timestamp, expected offset, expected timestamp; None = not checked)
    let raw_cases: &[(i64, i64, Option<i64>)] = &[
        (-3, 6, Some(timestamp(6))),
        (-1, 8, None),
        (-2, 0, None),
        (base + 3150, 4, Some(timestamp(4))),
        (base + 5001, -1, Some(-1)),
    ];
    let mut connection = RawConnection::connect(cluster.bootstrap());
    for (index, (target, expected_offset, expected_timestamp)) in raw_cases.iter().enumerate() {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(*target)])]);
        let response = connection.request(7, 100 + index as i32, &request);
        assert_eq!(response.topics.len(), 1, "one topic in the response");
        let topic = &response.topics[0];
        assert_eq!(topic.name.0.as_str(), TOPIC);
        assert_eq!(topic.partitions.len(), 1);
        let partition = &topic.partitions[0];
        assert_eq!(partition.partition_index, 0);
        assert_eq!(partition.error_code, 0, "timestamp {target}: error code");
        assert_eq!(
            partition.offset, *expected_offset,
            "timestamp {target}: offset"
        );
        if let Some(expected_timestamp) = expected_timestamp {
            assert_eq!(
                partition.timestamp, *expected_timestamp,
                "timestamp {target}: returned timestamp"
            );
        }
    }
}
