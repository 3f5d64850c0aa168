//! Keyed records to a multi-partition topic: each key lands in one partition, in order.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{assign, consumer, create_topic, poll_messages, producer, start_in_process};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset};

const PARTITIONS: i32 = 4;
const KEYS: usize = 12;
const RECORDS_PER_KEY: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_of_one_key_stay_in_one_partition_in_order() {
    let cluster = start_in_process(&[]);
    let topic = "ordering";
    create_topic(cluster.bootstrap(), topic, PARTITIONS).await;

    eprintln!("phase: produce");
    let producer = producer(cluster.bootstrap(), &[("linger.ms", "5")]);
    let mut deliveries = Vec::new();
    for sequence in 0..RECORDS_PER_KEY {
        for key in 0..KEYS {
            let key_text = format!("key-{key}");
            let value = format!("{key_text}:{sequence}");
            let record = FutureRecord::to(topic).key(&key_text).payload(&value);
            let delivery = producer
                .send_result(record)
                .unwrap_or_else(|(error, _)| panic!("enqueue {value}: {error}"));
            deliveries.push((key_text, sequence, delivery));
        }
    }
    // key -> (partition, acknowledged offsets in send order)
    let mut placement: HashMap<String, (i32, Vec<i64>)> = HashMap::new();
    for (key, sequence, delivery) in deliveries {
        let delivery = tokio::time::timeout(Duration::from_secs(30), delivery)
            .await
            .expect("delivery report in time")
            .expect("delivery future not cancelled")
            .unwrap_or_else(|(error, _)| panic!("{key}:{sequence} failed: {error}"));
        let entry = placement
            .entry(key.clone())
            .or_insert((delivery.partition, Vec::new()));
        assert_eq!(
            entry.0, delivery.partition,
            "every record of {key} goes to one partition"
        );
        entry.1.push(delivery.offset);
    }
    for (key, (_, offsets)) in &placement {
        assert!(
            offsets.windows(2).all(|pair| pair[0] < pair[1]),
            "acknowledged offsets of {key} increase in send order: {offsets:?}"
        );
    }

    eprintln!("phase: consume every partition");
    let total = KEYS * RECORDS_PER_KEY;
    let consumer = consumer(cluster.bootstrap(), &[]);
    let assignment: Vec<(i32, Offset)> = (0..PARTITIONS).map(|p| (p, Offset::Beginning)).collect();
    assign(&consumer, topic, &assignment);
    let messages = poll_messages(&consumer, total, Duration::from_secs(30));
    assert_eq!(messages.len(), total, "every record is consumed");

    let mut next_offset: HashMap<i32, i64> = HashMap::new();
    let mut next_sequence: HashMap<String, usize> = HashMap::new();
    for message in &messages {
        let partition = message.partition();
        let expected_offset = next_offset.entry(partition).or_insert(0);
        assert_eq!(
            message.offset(),
            *expected_offset,
            "offsets in partition {partition} are contiguous from 0"
        );
        *expected_offset += 1;

        let key = String::from_utf8(message.key().expect("key").to_vec()).expect("utf-8 key");
        let value = String::from_utf8(message.payload().expect("value").to_vec()).expect("utf-8");
        let (value_key, sequence) = value.split_once(':').expect("key:sequence value");
        assert_eq!(value_key, key, "value belongs to its key");
        let sequence: usize = sequence.parse().expect("sequence number");
        let (key_partition, offsets) = &placement[&key];
        assert_eq!(
            partition, *key_partition,
            "{key} consumed from its partition"
        );
        assert_eq!(
            message.offset(),
            offsets[sequence],
            "{key}:{sequence} at its acknowledged offset"
        );
        let expected_sequence = next_sequence.entry(key.clone()).or_insert(0);
        assert_eq!(
            sequence, *expected_sequence,
            "{key} records arrive in order"
        );
        *expected_sequence += 1;
    }
    assert!(
        next_sequence
            .values()
            .all(|&count| count == RECORDS_PER_KEY),
        "every key's records consumed: {next_sequence:?}"
    );
}
