//! File descriptors: a broker whose process may open only 512 descriptors
//! hosts and serves far more segments than that (segment files are opened on
//! use and idle ones closed), and reports the count against its limit.

mod common;

use std::time::Duration;

use common::{create_topics_raw, describe_dir, producer, TestBroker};
use rdkafka::producer::FutureRecord;

/// The broker process's descriptor limit.
const DESCRIPTOR_LIMIT: u64 = 512;
/// Topics created, each with `PARTITIONS` partitions.
const TOPICS: usize = 40;
/// Partitions per topic.
const PARTITIONS: i32 = 10;

/// Descriptors the process `pid` has open.
fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_hosts_more_segments_than_its_descriptor_limit() {
    let mut broker = TestBroker::start_with_open_files_max(&[], DESCRIPTOR_LIMIT as u32);
    let names: Vec<String> = (0..TOPICS).map(|index| format!("fd-{index}")).collect();
    eprintln!("phase: create {TOPICS} topics of {PARTITIONS} partitions");
    for chunk in names.chunks(10) {
        let specs: Vec<(&str, i32, i32)> = chunk
            .iter()
            .map(|name| (name.as_str(), PARTITIONS, 1))
            .collect();
        let results = create_topics_raw(broker.bootstrap(), &specs)
            .await
            .expect("CreateTopics");
        assert!(results.iter().all(Result::is_ok), "{results:?}");
    }
    eprintln!("phase: one record to every partition");
    let producer = producer(broker.bootstrap(), &[("linger.ms", "20")]);
    let mut deliveries = Vec::new();
    for name in &names {
        for partition in 0..PARTITIONS {
            let record = FutureRecord::to(name)
                .partition(partition)
                .key("k")
                .payload("v");
            deliveries.push(producer.send_result(record).expect("enqueue"));
        }
    }
    for delivery in deliveries {
        let delivered = tokio::time::timeout(Duration::from_secs(60), delivery)
            .await
            .expect("delivery in time")
            .expect("delivery not cancelled");
        assert!(
            delivered.is_ok(),
            "{delivered:?}; broker log:\n{}",
            broker.log_tail()
        );
    }
    let hosted = TOPICS * PARTITIONS as usize + 100;
    let open = open_descriptors(broker.pid());
    assert!(
        open < DESCRIPTOR_LIMIT as usize,
        "{open} descriptors open for {hosted} partitions"
    );
    assert!(
        hosted * 3 > DESCRIPTOR_LIMIT as usize * 2,
        "the test must host more segment files than the limit"
    );

    eprintln!("phase: restart on the same limit; every record is still served");
    broker.restart();
    assert!(
        broker.log_tail().contains("segment_files="),
        "the start reports the segment files against the limit:\n{}",
        broker.log_tail()
    );
    for name in names.iter().step_by(7) {
        for partition in [0, PARTITIONS - 1] {
            let (low, high) = common::watermarks(broker.bootstrap(), name, partition);
            assert_eq!(
                (low, high),
                (0, 1),
                "{name}/{partition}; {}",
                describe_dir(broker.data_dir())
            );
        }
    }
}
