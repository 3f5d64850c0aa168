//! Fetch at the edges of the log (docs/COMPATIBILITY.md, Fetch): at the high watermark the answer
//! is empty without error; above it the broker answers OFFSET_OUT_OF_RANGE.

mod common;

use std::time::{Duration, Instant};

use common::{assign, consumer, create_topic, poll_messages, produce_one, start_in_process};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_at_high_watermark_waits_without_error() {
    let cluster = start_in_process(&[]);
    let topic = "at-hwm";
    create_topic(cluster.bootstrap(), topic, 1).await;
    for index in 0..3 {
        assert_eq!(
            produce_one(cluster.bootstrap(), topic, "k", "old").await,
            index
        );
    }
    let consumer = consumer(cluster.bootstrap(), &[]);
    assign(&consumer, topic, &[(0, Offset::Offset(3))]);
    let deadline = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Ok(message)) => panic!("unexpected record at offset {}", message.offset()),
            Some(Err(error)) => panic!("fetch at the high watermark failed: {error}"),
        }
    }
    assert_eq!(produce_one(cluster.bootstrap(), topic, "k", "new").await, 3);
    let messages = poll_messages(&consumer, 1, Duration::from_secs(30));
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].offset(), 3);
    assert_eq!(messages[0].payload(), Some(&b"new"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_above_high_watermark_is_out_of_range() {
    let cluster = start_in_process(&[]);
    let topic = "above-hwm";
    create_topic(cluster.bootstrap(), topic, 1).await;
    for index in 0..3 {
        assert_eq!(
            produce_one(cluster.bootstrap(), topic, "k", "v").await,
            index
        );
    }
    // auto.offset.reset=error: librdkafka reports the broker's OFFSET_OUT_OF_RANGE.
    let consumer = consumer(cluster.bootstrap(), &[("auto.offset.reset", "error")]);
    assign(&consumer, topic, &[(0, Offset::Offset(10))]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(Instant::now() < deadline, "no out-of-range error reported");
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => panic!("unexpected record at offset {}", message.offset()),
            Some(Err(KafkaError::MessageConsumption(code))) => {
                assert!(
                    matches!(
                        code,
                        RDKafkaErrorCode::OffsetOutOfRange | RDKafkaErrorCode::AutoOffsetReset
                    ),
                    "expected an out-of-range error, got {code:?}"
                );
                break;
            }
            Some(Err(error)) => panic!("unexpected consumer error: {error}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_batch_is_returned_even_when_larger_than_fetch_limits() {
    // KIP-74: a fetch returns at least the first whole batch, or the consumer stalls.
    let cluster = start_in_process(&[]);
    let topic = "big-batch";
    create_topic(cluster.bootstrap(), topic, 1).await;
    let big: String = (0..200_000)
        .map(|_| char::from(b'a' + rand::random::<u8>() % 26))
        .collect();
    assert_eq!(produce_one(cluster.bootstrap(), topic, "k", &big).await, 0);
    assert_eq!(
        produce_one(cluster.bootstrap(), topic, "k", "small").await,
        1
    );
    let consumer = consumer(
        cluster.bootstrap(),
        &[
            ("message.max.bytes", "1000"),
            ("fetch.max.bytes", "1024"),
            ("max.partition.fetch.bytes", "1024"),
        ],
    );
    assign(&consumer, topic, &[(0, Offset::Beginning)]);
    let messages = poll_messages(&consumer, 2, Duration::from_secs(30));
    let offsets: Vec<i64> = messages.iter().map(|m| m.offset()).collect();
    assert_eq!(offsets, vec![0, 1]);
    assert_eq!(messages[0].payload(), Some(big.as_bytes()));
}
