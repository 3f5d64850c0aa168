//! Delete a topic and create it again with the same name: nothing old is served.

mod common;

use std::time::{Duration, Instant};

use common::{
    admin, admin_options, assign, consumer, create_topic, create_topics_raw, poll_for,
    poll_messages, produce_one, start_in_process, watermarks,
};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset};

const TOPIC: &str = "recreated";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recreated_topic_starts_empty_at_offset_zero() {
    let cluster = start_in_process(&[]);
    create_topic(cluster.bootstrap(), TOPIC, 1).await;

    eprintln!("phase: produce to the first incarnation");
    for index in 0..5 {
        let offset = produce_one(cluster.bootstrap(), TOPIC, "k", &format!("old-{index}")).await;
        assert_eq!(offset, index);
    }

    eprintln!("phase: delete");
    let admin = admin(cluster.bootstrap());
    let results = tokio::time::timeout(
        Duration::from_secs(30),
        admin.delete_topics(&[TOPIC], &admin_options()),
    )
    .await
    .expect("DeleteTopics in time")
    .expect("DeleteTopics request");
    assert_eq!(results.len(), 1);
    if let Err((topic, code)) = &results[0] {
        panic!("deleting {topic} failed: {code:?}");
    }

    eprintln!("phase: re-create (retrying while the deletion completes)");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let results = create_topics_raw(cluster.bootstrap(), &[(TOPIC, 1, 1)])
            .await
            .expect("CreateTopics request");
        match &results[0] {
            Ok(_) => break,
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err((topic, code)) => panic!("re-creating {topic} failed: {code:?}"),
        }
    }

    eprintln!("phase: the new topic is empty");
    assert_eq!(watermarks(cluster.bootstrap(), TOPIC, 0), (0, 0));
    let consumer = consumer(cluster.bootstrap(), &[]);
    assign(&consumer, TOPIC, &[(0, Offset::Beginning)]);
    let old = poll_for(&consumer, Duration::from_secs(2));
    let old: Vec<(i64, Option<Vec<u8>>)> = old
        .iter()
        .map(|m| (m.offset(), m.payload().map(<[u8]>::to_vec)))
        .collect();
    assert!(
        old.is_empty(),
        "records of the deleted topic were served: {old:?}"
    );

    eprintln!("phase: new records start at 0");
    for index in 0..3 {
        let offset = produce_one(cluster.bootstrap(), TOPIC, "k", &format!("new-{index}")).await;
        assert_eq!(offset, index);
    }
    let mut messages = poll_messages(&consumer, 3, Duration::from_secs(30));
    messages.extend(poll_for(&consumer, Duration::from_millis(500)));
    let seen: Vec<(i64, Option<Vec<u8>>)> = messages
        .iter()
        .map(|m| (m.offset(), m.payload().map(<[u8]>::to_vec)))
        .collect();
    let expected: Vec<(i64, Option<Vec<u8>>)> = (0..3)
        .map(|i| (i, Some(format!("new-{i}").into_bytes())))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(watermarks(cluster.bootstrap(), TOPIC, 0), (0, 3));
}
