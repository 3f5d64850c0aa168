//! A fetch at an offset inside a batch: the broker returns the whole batch and the
//! client drops the records before the requested offset, as with Kafka (skipping that
//! batch instead loses records, and leaves a consumer inside the last batch fetching nothing).

mod common;

use std::time::Duration;

use common::segment::read_first_segment;
use common::{assign, consumer, create_topic, poll_for, poll_messages, producer, start_in_process};
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::{Message, Offset};

const RECORD_COUNT: i64 = 10;
const START_OFFSET: i64 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assignment_inside_a_compressed_batch_yields_the_rest_of_it() {
    let cluster = start_in_process(&[]);
    let topic = "inside-batch";
    create_topic(cluster.bootstrap(), topic, 1).await;

    eprintln!("phase: produce one compressed batch");
    let producer = producer(
        cluster.bootstrap(),
        &[
            ("compression.type", "gzip"),
            ("linger.ms", "10000"),
            ("batch.num.messages", "1000"),
        ],
    );
    let mut deliveries = Vec::new();
    for index in 0..RECORD_COUNT {
        let value = format!("record-{index}-{}", "z".repeat(64));
        let record = FutureRecord::to(topic)
            .partition(0)
            .key("same-key")
            .payload(&value);
        deliveries.push(
            producer
                .send_result(record)
                .unwrap_or_else(|(error, _)| panic!("enqueue {index}: {error}")),
        );
    }
    producer
        .flush(Duration::from_secs(20))
        .expect("flush the batch");
    for (index, delivery) in deliveries.into_iter().enumerate() {
        let delivery = tokio::time::timeout(Duration::from_secs(30), delivery)
            .await
            .expect("delivery report in time")
            .expect("delivery future not cancelled")
            .unwrap_or_else(|(error, _)| panic!("record {index}: {error}"));
        assert_eq!(delivery.offset, index as i64);
    }
    let (_, batches) = read_first_segment(cluster.node(1).data_dir(), topic, 0);
    assert_eq!(
        batches.len(),
        1,
        "precondition: one batch on disk: {batches:?}"
    );
    assert_eq!(batches[0].record_count, RECORD_COUNT as i32);
    assert_eq!(batches[0].codec(), 1, "the batch is gzip-compressed");

    eprintln!("phase: consume from offset {START_OFFSET}");
    let consumer = consumer(cluster.bootstrap(), &[]);
    assign(&consumer, topic, &[(0, Offset::Offset(START_OFFSET))]);
    let expected = (RECORD_COUNT - START_OFFSET) as usize;
    let mut messages = poll_messages(&consumer, expected, Duration::from_secs(30));
    messages.extend(poll_for(&consumer, Duration::from_millis(500)));
    let offsets: Vec<i64> = messages.iter().map(|m| m.offset()).collect();
    assert_eq!(offsets, (START_OFFSET..RECORD_COUNT).collect::<Vec<_>>());
    for message in &messages {
        let expected_value = format!("record-{}-{}", message.offset(), "z".repeat(64));
        assert_eq!(message.payload(), Some(expected_value.as_bytes()));
    }
}
