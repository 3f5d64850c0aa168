//! A corrupt batch header in a closed segment (issue 10, bug 7): fetches serve
//! the intact batches before it, a fetch that starts at it answers
//! CORRUPT_MESSAGE (so consumers report an error instead of retrying
//! silently), batches after it stay reachable, and the broker logs the
//! corruption once, with the segment path and byte position.

mod common;
#[path = "common/lifecycle.rs"]
mod lifecycle;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw::{record_batch, RawConnection};
use common::segment::{first_segment_path, parse_batches};
use common::{assign, consumer, TestBroker};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{BrokerId, FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset};

/// Kafka error codes these tests expect.
const CORRUPT_MESSAGE: i16 = 2;

/// Batches produced; each holds three records.
const BATCHES: usize = 12;
/// Records per batch.
const RECORDS_PER_BATCH: i64 = 3;
/// Which batch of the first (closed) segment gets a corrupt length field.
const CORRUPT_BATCH: usize = 2;

/// One Fetch v12 of partition 0 at `offset`; that partition's answer.
fn fetch(connection: &mut RawConnection, topic: &str, offset: i64) -> PartitionData {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let response = connection.request(12, 21, &request);
    assert_eq!(response.responses.len(), 1, "one topic in the response");
    assert_eq!(response.responses[0].partitions.len(), 1);
    response.responses[0].partitions[0].clone()
}

/// Base offsets of the batches in a fetch answer.
fn base_offsets(data: &PartitionData) -> Vec<i64> {
    let records = data.records.clone().unwrap_or_default();
    let (batches, trailing) = parse_batches(&records);
    assert_eq!(trailing, 0, "whole batches only");
    batches.iter().map(|batch| batch.base_offset).collect()
}

fn batch_values(batch: usize) -> Vec<String> {
    (0..RECORDS_PER_BATCH)
        .map(|index| format!("b{batch}-r{index}-{}", "x".repeat(150)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_length_field_in_a_closed_segment() {
    let mut broker = TestBroker::start();
    let topic = "corrupt-segment";
    // Segments of a few batches; an index entry for every batch, so that a
    // clean restart trusts the closed segments (it walks only the headers
    // after each segment's last index entry) and a fetch past the corrupt
    // batch finds its position.
    lifecycle::create_topic_with(
        broker.bootstrap(),
        topic,
        1,
        &[("segment.bytes", "2500"), ("index.interval.bytes", "1")],
    )
    .await;
    let mut connection = RawConnection::connect(broker.bootstrap());
    for batch in 0..BATCHES {
        let values = batch_values(batch);
        let values: Vec<&str> = values.iter().map(String::as_str).collect();
        let response = connection.produce(topic, record_batch(&values, Compression::None));
        assert_eq!(response.error_code, 0, "batch {batch}");
    }
    drop(connection);

    eprintln!("phase: stop cleanly and corrupt a closed segment");
    let status = broker.terminate();
    assert!(status.success(), "clean shutdown: {status}");
    let bases = lifecycle::segment_bases(broker.data_dir(), topic, 0);
    assert!(
        bases.len() >= 2,
        "the first segment is closed: {}",
        lifecycle::list_files(broker.data_dir(), topic, 0)
    );
    let path = first_segment_path(broker.data_dir(), topic, 0);
    let mut bytes = std::fs::read(&path).expect("read the first segment");
    let (batches, _) = parse_batches(&bytes);
    assert!(
        batches.len() > CORRUPT_BATCH + 1,
        "the corrupt batch is not the segment's last: {} batches",
        batches.len()
    );
    let bad = batches[CORRUPT_BATCH].clone();
    let after = batches[CORRUPT_BATCH + 1].base_offset;
    // batchLength far past the end of the file.
    bytes[bad.position + 8..bad.position + 12].copy_from_slice(&0x7fff_0000i32.to_be_bytes());
    std::fs::write(&path, &bytes).expect("write the corrupt segment");
    broker.restart();

    eprintln!("phase: an rdkafka consumer gets the intact records, then an error");
    let consumer = consumer(broker.bootstrap(), &[("check.crcs", "true")]);
    assign(&consumer, topic, &[(0, Offset::Beginning)]);
    let intact = bad.base_offset;
    let mut offsets = Vec::new();
    let mut corrupt_reported = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && !(offsets.len() as i64 >= intact && corrupt_reported) {
        match consumer.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(message)) => offsets.push(message.offset()),
            Some(Err(KafkaError::MessageConsumption(RDKafkaErrorCode::InvalidMessage))) => {
                corrupt_reported = true
            }
            Some(Err(error)) => eprintln!("consumer error: {error}"),
        }
    }
    assert_eq!(
        offsets,
        (0..intact).collect::<Vec<_>>(),
        "the intact records"
    );
    assert!(
        corrupt_reported,
        "the consumer was told that the batch at offset {intact} is corrupt"
    );
    drop(consumer);

    eprintln!("phase: raw fetches before, at and after the corrupt batch");
    let mut connection = RawConnection::connect(broker.bootstrap());
    let from_start = fetch(&mut connection, topic, 0);
    assert_eq!(from_start.error_code, 0);
    let intact_batches: Vec<i64> = batches[..CORRUPT_BATCH]
        .iter()
        .map(|b| b.base_offset)
        .collect();
    assert_eq!(base_offsets(&from_start), intact_batches);
    for _ in 0..3 {
        let at_bad = fetch(&mut connection, topic, intact + 1);
        assert_eq!(
            at_bad.error_code, CORRUPT_MESSAGE,
            "fetch inside the corrupt batch"
        );
        assert_eq!(at_bad.records.unwrap_or_default(), Bytes::new());
    }
    let past = fetch(&mut connection, topic, after);
    assert_eq!(past.error_code, 0, "fetch after the corrupt batch");
    assert_eq!(base_offsets(&past).first(), Some(&after));

    eprintln!("phase: the corruption is logged once, with path and position");
    let log = broker.log_text();
    let file_name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let reports: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("corrupt batch") && line.contains(file_name))
        .collect();
    assert_eq!(reports.len(), 1, "one report of the corrupt batch:\n{log}");
    assert!(
        reports[0].contains(&format!("position={}", bad.position)),
        "the report names the byte position {}: {}",
        bad.position,
        reports[0]
    );
}
