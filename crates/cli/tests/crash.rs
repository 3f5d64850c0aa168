//! Crash safety: kill -9 never loses an acknowledged (acks=all) record, and recovery
//! truncates a torn or corrupt tail of the active segment.

mod common;

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::segment::{first_segment_path, read_first_segment};
use common::{
    assign, consumer, create_topic, describe_dir, poll_for, poll_messages, produce_one, producer,
    watermarks, TestBroker,
};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset};

/// Acknowledged records before the kill.
const ACKNOWLEDGED_BEFORE_KILL: usize = 300;
/// Records in flight at once in the stream.
const WINDOW: usize = 25;

/// (offset, key, value) of an acknowledged record.
type Acknowledged = (i64, String, String);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_acks_all_stream_keeps_every_acknowledged_record() {
    let mut broker = TestBroker::start();
    let topic = "crash-stream";
    create_topic(broker.bootstrap(), topic, 1).await;

    eprintln!("phase: stream acks=all");
    let producer = producer(
        broker.bootstrap(),
        &[
            ("acks", "all"),
            ("enable.idempotence", "false"),
            ("retries", "0"),
            ("message.send.max.retries", "0"),
            ("message.timeout.ms", "5000"),
            ("linger.ms", "2"),
        ],
    );
    let acknowledged: Arc<Mutex<Vec<Acknowledged>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let stream = tokio::spawn({
        let acknowledged = acknowledged.clone();
        let stop = stop.clone();
        async move {
            let mut next = 0usize;
            let mut failures = 0usize;
            let mut last_failure = String::new();
            while !stop.load(Ordering::SeqCst) {
                let mut window = Vec::with_capacity(WINDOW);
                for _ in 0..WINDOW {
                    let key = format!("key-{next}");
                    let value = format!("value-{next}");
                    next += 1;
                    let record = FutureRecord::to(topic)
                        .partition(0)
                        .key(&key)
                        .payload(&value);
                    match producer.send_result(record) {
                        Ok(delivery) => window.push((key, value, delivery)),
                        Err((error, _)) => eprintln!("enqueue failed: {error}"),
                    }
                }
                for (key, value, delivery) in window {
                    match tokio::time::timeout(Duration::from_secs(15), delivery).await {
                        Ok(Ok(Ok(delivery))) => {
                            acknowledged
                                .lock()
                                .unwrap()
                                .push((delivery.offset, key, value))
                        }
                        Ok(Ok(Err((error, _)))) => {
                            failures += 1;
                            last_failure = format!("{key}: {error}");
                        }
                        Ok(Err(_)) => {
                            failures += 1;
                            last_failure = format!("{key}: delivery cancelled");
                        }
                        Err(_) => {
                            failures += 1;
                            last_failure = format!("{key}: no delivery report");
                        }
                    }
                }
            }
            eprintln!("{failures} records not acknowledged (last: {last_failure})");
        }
    });

    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < ACKNOWLEDGED_BEFORE_KILL {
        assert!(
            Instant::now() < deadline,
            "only {} records acknowledged in time",
            acknowledged.lock().unwrap().len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    eprintln!("phase: kill -9 mid-stream");
    broker.kill9();
    stop.store(true, Ordering::SeqCst);
    tokio::time::timeout(Duration::from_secs(60), stream)
        .await
        .expect("stream task ends after the kill")
        .expect("stream task did not panic");
    let acknowledged = acknowledged.lock().unwrap().clone();
    eprintln!("acknowledged {} records", acknowledged.len());

    eprintln!("phase: restart and consume");
    let files_before = describe_dir(broker.data_dir());
    broker.restart();
    let (low, high) = watermarks(broker.bootstrap(), topic, 0);
    assert_eq!(low, 0, "log start offset");
    let max_acknowledged = acknowledged.iter().map(|a| a.0).max().unwrap();
    assert!(
        high > max_acknowledged,
        "high watermark {high} covers the last acknowledged offset {max_acknowledged}\n\
         files after the kill:\n{files_before}\nfiles after the restart:\n{}\nbroker log:\n{}",
        describe_dir(broker.data_dir()),
        broker.log_tail()
    );
    let consumer = consumer(broker.bootstrap(), &[]);
    assign(&consumer, topic, &[(0, Offset::Beginning)]);
    let messages = poll_messages(&consumer, high as usize, Duration::from_secs(60));
    assert_eq!(
        messages.len(),
        high as usize,
        "every record up to the high watermark"
    );
    for (index, message) in messages.iter().enumerate() {
        assert_eq!(
            message.offset(),
            index as i64,
            "offsets are contiguous from 0"
        );
    }
    for (offset, key, value) in &acknowledged {
        let message = &messages[*offset as usize];
        assert_eq!(
            message.key(),
            Some(key.as_bytes()),
            "key at acknowledged offset {offset}"
        );
        assert_eq!(
            message.payload(),
            Some(value.as_bytes()),
            "value at acknowledged offset {offset}"
        );
    }
}

/// What is appended to the active segment after the kill.
#[derive(Debug, Clone, Copy)]
enum Tail {
    /// Random bytes.
    Garbage,
    /// Zero bytes, as a preallocated or partially flushed file can have.
    Zeros,
    /// The first half of a copy of the last batch (a torn write).
    TruncatedBatch,
    /// A whole copy of the last batch, with offsets moved on and one payload byte flipped
    /// (its CRC no longer matches).
    CorruptBatch,
}

const TAIL_RECORDS: i64 = 10;

async fn recovery_truncates(tail: Tail) {
    let mut broker = TestBroker::start();
    let topic = "crash-tail";
    create_topic(broker.bootstrap(), topic, 1).await;

    eprintln!("phase: produce {TAIL_RECORDS} records ({tail:?})");
    for index in 0..TAIL_RECORDS {
        let offset = produce_one(broker.bootstrap(), topic, "k", &format!("value-{index}")).await;
        assert_eq!(offset, index);
    }
    broker.kill9();

    eprintln!("phase: damage the segment tail");
    let (bytes, batches) = read_first_segment(broker.data_dir(), topic, 0);
    let last = batches.last().expect("batches on disk").clone();
    assert_eq!(last.last_offset(), TAIL_RECORDS - 1, "all records on disk");
    let last_bytes = &bytes[last.position..last.position + last.size];
    let appended: Vec<u8> = match tail {
        Tail::Garbage => (0..173).map(|_| rand::random::<u8>()).collect(),
        Tail::Zeros => vec![0u8; 4096],
        Tail::TruncatedBatch => last_bytes[..last_bytes.len() / 2].to_vec(),
        Tail::CorruptBatch => {
            let mut copy = last_bytes.to_vec();
            copy[0..8].copy_from_slice(&TAIL_RECORDS.to_be_bytes());
            let end = copy.len() - 1;
            copy[end] ^= 0xff;
            copy
        }
    };
    let path = first_segment_path(broker.data_dir(), topic, 0);
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open segment for append");
    file.write_all(&appended).expect("append to segment");
    file.sync_all().expect("sync segment");
    drop(file);

    eprintln!("phase: restart and consume");
    broker.restart();
    assert_eq!(
        watermarks(broker.bootstrap(), topic, 0),
        (0, TAIL_RECORDS),
        "{tail:?}: watermarks after recovery"
    );
    let consumer = consumer(broker.bootstrap(), &[]);
    assign(&consumer, topic, &[(0, Offset::Beginning)]);
    let mut messages = poll_messages(&consumer, TAIL_RECORDS as usize, Duration::from_secs(30));
    messages.extend(poll_for(&consumer, Duration::from_millis(500)));
    let values: Vec<(i64, Vec<u8>)> = messages
        .iter()
        .map(|m| (m.offset(), m.payload().unwrap_or_default().to_vec()))
        .collect();
    let expected: Vec<(i64, Vec<u8>)> = (0..TAIL_RECORDS)
        .map(|i| (i, format!("value-{i}").into_bytes()))
        .collect();
    assert_eq!(values, expected, "{tail:?}: records before the damage");

    eprintln!("phase: produce after recovery");
    let offset = produce_one(broker.bootstrap(), topic, "k", "after-recovery").await;
    assert_eq!(
        offset, TAIL_RECORDS,
        "{tail:?}: next offset after the last valid record"
    );
    let next = poll_messages(&consumer, 1, Duration::from_secs(30));
    assert_eq!(next.len(), 1, "{tail:?}: the new record is consumed");
    assert_eq!(next[0].offset(), TAIL_RECORDS);
    assert_eq!(next[0].payload(), Some(&b"after-recovery"[..]));
}

macro_rules! tail_tests {
    ($($name:ident => $tail:expr),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            recovery_truncates($tail).await;
        }
    )*};
}

tail_tests! {
    recovery_truncates_random_garbage => Tail::Garbage,
    recovery_truncates_zeros => Tail::Zeros,
    recovery_truncates_a_torn_batch => Tail::TruncatedBatch,
    recovery_truncates_a_batch_with_a_bad_crc => Tail::CorruptBatch,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_cleanly_and_restart_serves_everything() {
    let mut broker = TestBroker::start();
    let topic = "clean-stop";
    create_topic(broker.bootstrap(), topic, 1).await;
    for index in 0..5 {
        let offset = produce_one(broker.bootstrap(), topic, "k", &format!("value-{index}")).await;
        assert_eq!(offset, index);
    }

    eprintln!("phase: SIGTERM");
    let status = broker.terminate();
    assert!(
        status.success(),
        "clean shutdown exits with success: {status}"
    );

    eprintln!("phase: restart");
    broker.restart();
    assert_eq!(watermarks(broker.bootstrap(), topic, 0), (0, 5));
    let offset = produce_one(broker.bootstrap(), topic, "k", "value-5").await;
    assert_eq!(offset, 5, "offsets continue after a restart");
    let consumer = consumer(broker.bootstrap(), &[]);
    assign(&consumer, topic, &[(0, Offset::Beginning)]);
    let messages = poll_messages(&consumer, 6, Duration::from_secs(30));
    let values: Vec<(i64, Vec<u8>)> = messages
        .iter()
        .map(|m| (m.offset(), m.payload().unwrap_or_default().to_vec()))
        .collect();
    let expected: Vec<(i64, Vec<u8>)> = (0..6)
        .map(|i| (i, format!("value-{i}").into_bytes()))
        .collect();
    assert_eq!(values, expected);
}
