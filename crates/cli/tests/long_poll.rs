//! Long poll: a fetch on an empty partition parks until a record arrives.

mod common;

use std::time::Duration;

use common::{assign, consumer, create_topic, poll_messages, produce_one, start_in_process};
use rdkafka::{Message, Offset};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_fetch_receives_a_record_produced_later() {
    let cluster = start_in_process(&[]);
    let topic = "long-poll";
    create_topic(cluster.bootstrap(), topic, 1).await;

    eprintln!("phase: consumer parks on an empty partition");
    let bootstrap = cluster.bootstrap().to_string();
    let consumer_task = tokio::task::spawn_blocking({
        let bootstrap = bootstrap.clone();
        move || {
            let consumer = consumer(&bootstrap, &[("fetch.wait.max.ms", "5000")]);
            assign(&consumer, topic, &[(0, Offset::Offset(0))]);
            poll_messages(&consumer, 1, Duration::from_secs(30))
        }
    });

    eprintln!("phase: produce after a delay");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let offset = produce_one(&bootstrap, topic, "k", "late record").await;
    assert_eq!(offset, 0);

    let messages = tokio::time::timeout(Duration::from_secs(40), consumer_task)
        .await
        .expect("consumer finished in time")
        .expect("consumer task did not panic");
    assert_eq!(messages.len(), 1, "the parked consumer receives the record");
    assert_eq!(messages[0].offset(), 0);
    assert_eq!(messages[0].payload(), Some(&b"late record"[..]));
}
