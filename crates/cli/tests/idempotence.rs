//! Idempotent producers: InitProducerId hands out ids that are never reused, each
//! partition checks producer id / epoch / sequence as Kafka 4.0 does (a retry of one
//! of the last 5 batches is answered with its original offsets and not written
//! again, a gap gets OUT_OF_ORDER_SEQUENCE_NUMBER, an older epoch
//! INVALID_PRODUCER_EPOCH), and that state survives a clean restart and a kill -9.
//!
//! The rdkafka tests stream through a broker killed with SIGKILL and restarted on
//! the same port; the raw-socket tests send hand-built batches with chosen producer
//! ids, epochs and sequences.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::raw::RawConnection;
use common::{
    assign, consumer, create_topic, poll_for, poll_messages, producer, topic_name, TestBroker,
};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    BrokerId, InitProducerIdRequest, ListOffsetsRequest, ProduceRequest, ProducerId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset};
use sluice_testkit::{RecordBatchBuilder, TestRecord};

/// Kafka error codes these tests expect.
const NONE: i16 = 0;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const INVALID_PRODUCER_EPOCH: i16 = 47;

// ----------------------------------------------------------------------------- raw client

/// A raw connection with its own correlation ids.
struct Raw {
    connection: RawConnection,
    correlation_id: i32,
}

impl Raw {
    fn connect(address: &str) -> Self {
        Raw {
            connection: RawConnection::connect(address),
            correlation_id: 0,
        }
    }

    fn next_id(&mut self) -> i32 {
        self.correlation_id += 1;
        self.correlation_id
    }

    /// InitProducerId without a transactional id at `version`; returns (id, epoch).
    fn init_producer_id(&mut self, version: i16) -> (i64, i16) {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let id = self.next_id();
        let response = self.connection.request(version, id, &request);
        assert_eq!(
            response.error_code, NONE,
            "InitProducerId v{version}: error code"
        );
        (response.producer_id.0, response.producer_epoch)
    }

    /// Produce v9, acks=all, one batch to one partition; returns (error code, base offset).
    fn produce(&mut self, topic: &str, partition: i32, batch: Bytes) -> (i16, i64) {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(partition)
                    .with_records(Some(batch))])]);
        let id = self.next_id();
        let response = self.connection.request(9, id, &request);
        assert_eq!(response.responses.len(), 1, "one topic in the response");
        let partitions = &response.responses[0].partition_responses;
        assert_eq!(partitions.len(), 1, "one partition in the response");
        assert_eq!(partitions[0].index, partition);
        (partitions[0].error_code, partitions[0].base_offset)
    }

    /// The log end offset (ListOffsets v7, timestamp -1).
    fn log_end(&mut self, topic: &str, partition: i32) -> i64 {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(0)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(-1)])]);
        let id = self.next_id();
        let response = self.connection.request(7, id, &request);
        let answer = &response.topics[0].partitions[0];
        assert_eq!(answer.error_code, NONE, "ListOffsets error code");
        answer.offset
    }

    /// Produces and asserts success at `expected_offset`.
    fn produce_ok(&mut self, topic: &str, partition: i32, batch: Bytes, expected_offset: i64) {
        let (code, offset) = self.produce(topic, partition, batch);
        assert_eq!(code, NONE, "produce error code");
        assert_eq!(offset, expected_offset, "base offset");
    }

    /// Produces and asserts `expected_code`, and that the log end did not move.
    fn produce_rejected(&mut self, topic: &str, partition: i32, batch: Bytes, expected_code: i16) {
        let end_before = self.log_end(topic, partition);
        let (code, _) = self.produce(topic, partition, batch);
        assert_eq!(code, expected_code, "produce error code");
        assert_eq!(
            self.log_end(topic, partition),
            end_before,
            "a rejected batch is not written"
        );
    }
}

/// One RecordBatch v2 of `count` records from producer `producer_id` at `epoch`,
/// the first record at sequence `base_sequence`. `producer_id` -1 is a plain batch.
fn batch(producer_id: i64, epoch: i16, base_sequence: i32, count: usize, tag: &str) -> Bytes {
    // A plain batch keeps base sequence -1 whatever the caller passed.
    let base_sequence = if producer_id < 0 { -1 } else { base_sequence };
    RecordBatchBuilder::new()
        .producer(producer_id, epoch, base_sequence)
        .records((0..count).map(|index| TestRecord::value(format!("{tag}-{index}"))))
        .bytes()
}

// ----------------------------------------------------------------------------- InitProducerId

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_producer_id_hands_out_fresh_ids_never_reused_after_restart() {
    let mut broker = TestBroker::start();
    let mut issued: Vec<i64> = Vec::new();

    eprintln!("phase: InitProducerId v0..v5");
    let mut raw = Raw::connect(broker.bootstrap());
    for version in 0..=5 {
        let (id, epoch) = raw.init_producer_id(version);
        assert!(id >= 0, "v{version}: producer id {id}");
        assert_eq!(
            epoch, 0,
            "v{version}: a fresh producer id starts at epoch 0"
        );
        issued.push(id);
    }
    let (a, _) = raw.init_producer_id(4);
    let (b, _) = raw.init_producer_id(4);
    assert_ne!(a, b, "two calls give different ids");
    issued.extend([a, b]);
    let mut distinct = issued.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        issued.len(),
        "ids are all different: {issued:?}"
    );

    for stop in ["SIGTERM", "SIGKILL"] {
        eprintln!("phase: {stop} and restart");
        if stop == "SIGKILL" {
            broker.kill9();
        }
        broker.restart();
        let mut raw = Raw::connect(broker.bootstrap());
        let highest = *issued.iter().max().unwrap();
        for version in [0, 3, 5] {
            let (id, epoch) = raw.init_producer_id(version);
            assert!(
                id > highest,
                "after {stop}: id {id} is above every id handed out before ({highest})"
            );
            assert_eq!(epoch, 0);
            assert!(!issued.contains(&id), "id {id} reused after {stop}");
            issued.push(id);
        }
    }
}

// ----------------------------------------------------------------------------- sequence rules

/// A broker, a one-partition topic, a raw connection and a fresh producer id.
async fn setup(prefix: &str) -> (TestBroker, String, Raw, i64) {
    let broker = TestBroker::start();
    let topic = topic_name(prefix);
    create_topic(broker.bootstrap(), &topic, 1).await;
    let mut raw = Raw::connect(broker.bootstrap());
    let (producer_id, epoch) = raw.init_producer_id(4);
    assert_eq!(epoch, 0);
    (broker, topic, raw, producer_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_of_a_recent_batch_gets_its_offsets_and_is_not_written_again() {
    let (broker, topic, mut raw, pid) = setup("idem-retry").await;

    eprintln!("phase: seq 0..4, then the same batch again");
    let first = batch(pid, 0, 0, 5, "a");
    raw.produce_ok(&topic, 0, first.clone(), 0);
    assert_eq!(raw.log_end(&topic, 0), 5);
    raw.produce_ok(&topic, 0, first.clone(), 0);
    assert_eq!(raw.log_end(&topic, 0), 5, "the retry was not written");

    eprintln!("phase: seq 5..7, then retries of both batches");
    let second = batch(pid, 0, 5, 3, "b");
    raw.produce_ok(&topic, 0, second.clone(), 5);
    raw.produce_ok(&topic, 0, first, 0);
    raw.produce_ok(&topic, 0, second, 5);
    assert_eq!(raw.log_end(&topic, 0), 8, "no retry was written");

    eprintln!("phase: a consumer reads each record once");
    let consumer = consumer(broker.bootstrap(), &[]);
    assign(&consumer, &topic, &[(0, Offset::Beginning)]);
    let mut messages = poll_messages(&consumer, 8, Duration::from_secs(30));
    messages.extend(poll_for(&consumer, Duration::from_millis(500)));
    let values: Vec<(i64, String)> = messages.iter().map(|m| (m.offset(), payload(m))).collect();
    let expected: Vec<(i64, String)> = (0..5)
        .map(|i| format!("a-{i}"))
        .chain((0..3).map(|i| format!("b-{i}")))
        .enumerate()
        .map(|(offset, value)| (offset as i64, value))
        .collect();
    assert_eq!(values, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_gap_is_out_of_order_and_nothing_is_written() {
    let (_broker, topic, mut raw, pid) = setup("idem-gap").await;
    raw.produce_ok(&topic, 0, batch(pid, 0, 0, 5, "a"), 0);

    eprintln!("phase: seq 10 after 0..4");
    raw.produce_rejected(
        &topic,
        0,
        batch(pid, 0, 10, 2, "gap"),
        OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
    eprintln!("phase: seq 6 after 0..4 (one missing)");
    raw.produce_rejected(
        &topic,
        0,
        batch(pid, 0, 6, 1, "gap"),
        OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
    eprintln!("phase: the next sequence still goes in");
    raw.produce_ok(&topic, 0, batch(pid, 0, 5, 2, "b"), 5);
    assert_eq!(raw.log_end(&topic, 0), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_epoch_after_a_newer_one_is_invalid_producer_epoch() {
    let (_broker, topic, mut raw, pid) = setup("idem-fence").await;
    raw.produce_ok(&topic, 0, batch(pid, 0, 0, 3, "e0"), 0);

    eprintln!("phase: epoch 1 from sequence 0 (a client-side bump, as franz-go does)");
    raw.produce_ok(&topic, 0, batch(pid, 1, 0, 2, "e1"), 3);

    eprintln!("phase: epoch 0 again");
    raw.produce_rejected(
        &topic,
        0,
        batch(pid, 0, 3, 1, "stale"),
        INVALID_PRODUCER_EPOCH,
    );
    // A retry of epoch 0's batch is not a duplicate any more either.
    raw.produce_rejected(&topic, 0, batch(pid, 0, 0, 3, "e0"), INVALID_PRODUCER_EPOCH);
    raw.produce_ok(&topic, 0, batch(pid, 1, 2, 1, "e1b"), 5);
    assert_eq!(raw.log_end(&topic, 0), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_epoch_must_start_at_sequence_zero() {
    let (_broker, topic, mut raw, pid) = setup("idem-epoch").await;
    raw.produce_ok(&topic, 0, batch(pid, 0, 0, 3, "e0"), 0);

    eprintln!("phase: epoch 1 starting at sequence 3");
    raw.produce_rejected(
        &topic,
        0,
        batch(pid, 1, 3, 2, "e1"),
        OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
    eprintln!("phase: epoch 1 starting at sequence 0");
    raw.produce_ok(&topic, 0, batch(pid, 1, 0, 2, "e1"), 3);
    assert_eq!(raw.log_end(&topic, 0), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_producer_is_accepted_at_any_sequence_then_checked() {
    let (_broker, topic, mut raw, pid) = setup("idem-unknown").await;

    eprintln!("phase: first batch of a producer at sequence 7");
    raw.produce_ok(&topic, 0, batch(pid, 0, 7, 2, "a"), 0);
    raw.produce_ok(&topic, 0, batch(pid, 0, 9, 1, "b"), 2);
    raw.produce_rejected(
        &topic,
        0,
        batch(pid, 0, 20, 1, "gap"),
        OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
    raw.produce_ok(&topic, 0, batch(pid, 0, 7, 2, "a"), 0);
    assert_eq!(raw.log_end(&topic, 0), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_last_five_batches_are_recognised_as_retries() {
    let (_broker, topic, mut raw, pid) = setup("idem-window").await;
    for seq in 0..6 {
        raw.produce_ok(&topic, 0, batch(pid, 0, seq, 1, "w"), seq as i64);
    }
    eprintln!("phase: retries of the last five batches");
    for seq in 1..6 {
        raw.produce_ok(&topic, 0, batch(pid, 0, seq, 1, "w"), seq as i64);
    }
    eprintln!("phase: a retry of the sixth-newest batch is out of order (Kafka 4.0)");
    raw.produce_rejected(
        &topic,
        0,
        batch(pid, 0, 0, 1, "w"),
        OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
    assert_eq!(raw.log_end(&topic, 0), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_wrap_from_i32_max_to_zero() {
    let (_broker, topic, mut raw, pid) = setup("idem-wrap").await;
    eprintln!("phase: a batch across the wrap (MAX-1, MAX, 0)");
    let across = batch(pid, 0, i32::MAX - 1, 3, "x");
    raw.produce_ok(&topic, 0, across.clone(), 0);
    raw.produce_ok(&topic, 0, across, 0);
    eprintln!("phase: the next batch starts at 1");
    raw.produce_rejected(
        &topic,
        0,
        batch(pid, 0, 2, 1, "gap"),
        OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
    raw.produce_ok(&topic, 0, batch(pid, 0, 1, 2, "y"), 3);
    assert_eq!(raw.log_end(&topic, 0), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_idempotent_batches_always_append() {
    let (_broker, topic, mut raw, _pid) = setup("idem-plain").await;
    let plain = batch(-1, -1, -1, 3, "plain");
    for round in 0..3 {
        raw.produce_ok(&topic, 0, plain.clone(), round * 3);
    }
    assert_eq!(raw.log_end(&topic, 0), 9, "every copy was written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_state_survives_clean_restart_and_kill9() {
    let mut broker = TestBroker::start();
    let topic = topic_name("idem-survive");
    create_topic(broker.bootstrap(), &topic, 1).await;
    let mut raw = Raw::connect(broker.bootstrap());
    let (pid, _) = raw.init_producer_id(4);
    let first = batch(pid, 0, 0, 5, "a");
    raw.produce_ok(&topic, 0, first.clone(), 0);

    eprintln!("phase: SIGTERM and restart");
    let status = broker.terminate();
    assert!(status.success(), "clean shutdown: {status}");
    let snapshots = snapshot_files(broker.data_dir(), &topic);
    assert!(
        !snapshots.is_empty(),
        "a clean shutdown leaves a producer-state snapshot for {topic}-0:\n{}",
        common::describe_dir(broker.data_dir())
    );
    broker.restart();
    let mut raw = Raw::connect(broker.bootstrap());
    raw.produce_ok(&topic, 0, first.clone(), 0);
    raw.produce_rejected(
        &topic,
        0,
        batch(pid, 0, 10, 1, "gap"),
        OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
    let second = batch(pid, 0, 5, 5, "b");
    raw.produce_ok(&topic, 0, second.clone(), 5);
    assert_eq!(raw.log_end(&topic, 0), 10);

    eprintln!("phase: kill -9 and restart (the state is rebuilt from the log)");
    broker.kill9();
    broker.restart();
    let mut raw = Raw::connect(broker.bootstrap());
    raw.produce_ok(&topic, 0, second, 5);
    raw.produce_ok(&topic, 0, first, 0);
    assert_eq!(raw.log_end(&topic, 0), 10, "no retry was written");
    raw.produce_rejected(
        &topic,
        0,
        batch(pid, 0, 11, 1, "gap"),
        OUT_OF_ORDER_SEQUENCE_NUMBER,
    );
    raw.produce_ok(&topic, 0, batch(pid, 0, 10, 1, "c"), 10);

    eprintln!("phase: a fencing epoch survives a kill -9 too");
    raw.produce_ok(&topic, 0, batch(pid, 1, 0, 1, "e1"), 11);
    broker.kill9();
    broker.restart();
    let mut raw = Raw::connect(broker.bootstrap());
    raw.produce_rejected(
        &topic,
        0,
        batch(pid, 0, 11, 1, "stale"),
        INVALID_PRODUCER_EPOCH,
    );
    raw.produce_ok(&topic, 0, batch(pid, 1, 1, 1, "e1b"), 12);
}

/// `.snapshot` files in the directory of partition 0 of `topic`.
fn snapshot_files(data_dir: &Path, topic: &str) -> Vec<String> {
    fn walk(dir: &Path, partition_dir: &str, found: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, partition_dir, found);
            } else if path.extension().is_some_and(|e| e == "snapshot")
                && path
                    .parent()
                    .and_then(Path::file_name)
                    .is_some_and(|name| name == partition_dir)
            {
                found.push(path.display().to_string());
            }
        }
    }
    let mut found = Vec::new();
    walk(data_dir, &format!("{topic}-0"), &mut found);
    found
}

// ----------------------------------------------------------------------------- rdkafka

const PARTITIONS: i32 = 3;

fn payload(message: &OwnedMessage) -> String {
    String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned()
}

/// The value of the `seq`-th record sent to `partition`.
fn value_for(partition: i32, seq: usize) -> String {
    format!("p{partition}-{seq:06}")
}

/// An idempotent rdkafka producer that keeps retrying for a long time.
fn idempotent_producer(bootstrap: &str) -> FutureProducer {
    producer(
        bootstrap,
        &[
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("max.in.flight.requests.per.connection", "5"),
            ("message.timeout.ms", "120000"),
            ("request.timeout.ms", "5000"),
            ("linger.ms", "5"),
            ("retry.backoff.ms", "100"),
            ("retry.backoff.max.ms", "1000"),
            ("reconnect.backoff.ms", "100"),
            ("reconnect.backoff.max.ms", "1000"),
            ("socket.timeout.ms", "5000"),
        ],
    )
}

/// Reads partitions 0..PARTITIONS from the beginning until `expected` records came
/// (plus a short wait for extras); returns the values per partition in offset order,
/// checking that offsets are contiguous from 0.
fn read_back(bootstrap: &str, topic: &str, expected: usize) -> BTreeMap<i32, Vec<String>> {
    let consumer = consumer(bootstrap, &[]);
    let assignment: Vec<(i32, Offset)> = (0..PARTITIONS).map(|p| (p, Offset::Beginning)).collect();
    assign(&consumer, topic, &assignment);
    let mut messages = poll_messages(&consumer, expected, Duration::from_secs(60));
    messages.extend(poll_for(&consumer, Duration::from_secs(1)));
    let mut per_partition: BTreeMap<i32, Vec<(i64, String)>> = BTreeMap::new();
    for message in &messages {
        per_partition
            .entry(message.partition())
            .or_default()
            .push((message.offset(), payload(message)));
    }
    per_partition
        .into_iter()
        .map(|(partition, records)| {
            for (index, (offset, value)) in records.iter().enumerate() {
                assert_eq!(
                    *offset, index as i64,
                    "partition {partition}: offsets are contiguous from 0 (value {value})"
                );
            }
            (partition, records.into_iter().map(|(_, v)| v).collect())
        })
        .collect()
}

/// Asserts that each partition holds exactly `sent[p]` records, in send order.
fn assert_exactly_once(read: &BTreeMap<i32, Vec<String>>, sent: &[usize]) {
    for partition in 0..PARTITIONS {
        let got = read.get(&partition).cloned().unwrap_or_default();
        let want: Vec<String> = (0..sent[partition as usize])
            .map(|seq| value_for(partition, seq))
            .collect();
        if got != want {
            let first_difference = got
                .iter()
                .zip(&want)
                .position(|(g, w)| g != w)
                .unwrap_or(got.len().min(want.len()));
            panic!(
                "partition {partition}: {} records read, {} sent; first difference at index \
                 {first_difference}: read {:?}, sent {:?}",
                got.len(),
                want.len(),
                got.get(first_difference),
                want.get(first_difference)
            );
        }
    }
}

/// (partition, seq within the partition, delivery result as offset or error text).
type Report = (i32, usize, Result<i64, String>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_stream_every_record_exactly_once_in_order() {
    let mut broker = TestBroker::start();
    let topic = topic_name("idem-kill9");
    create_topic(broker.bootstrap(), &topic, PARTITIONS).await;
    let producer = idempotent_producer(broker.bootstrap());

    eprintln!("phase: stream");
    let reports: Arc<Mutex<Vec<Report>>> = Arc::default();
    let acknowledged = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (sender, mut receiver) =
        tokio::sync::mpsc::unbounded_channel::<(i32, usize, rdkafka::producer::DeliveryFuture)>();
    let collector = tokio::spawn({
        let reports = reports.clone();
        let acknowledged = acknowledged.clone();
        async move {
            while let Some((partition, seq, delivery)) = receiver.recv().await {
                let outcome = match delivery.await {
                    Ok(Ok(delivery)) => {
                        acknowledged.fetch_add(1, Ordering::SeqCst);
                        Ok(delivery.offset)
                    }
                    Ok(Err((error, _))) => Err(error.to_string()),
                    Err(_) => Err("delivery cancelled".to_string()),
                };
                reports.lock().unwrap().push((partition, seq, outcome));
            }
        }
    });
    let stream = tokio::spawn({
        let producer = producer.clone();
        let stop = stop.clone();
        let topic = topic.clone();
        async move {
            let mut sent = vec![0usize; PARTITIONS as usize];
            let mut index = 0usize;
            while !stop.load(Ordering::SeqCst) {
                let partition = (index % PARTITIONS as usize) as i32;
                let seq = sent[partition as usize];
                let key = format!("key-{index}");
                let value = value_for(partition, seq);
                let mut record = FutureRecord::to(&topic)
                    .partition(partition)
                    .key(&key)
                    .payload(&value);
                // A full local queue (the broker is down) is waited out, never dropped.
                let delivery = loop {
                    match producer.send_result(record) {
                        Ok(delivery) => break delivery,
                        Err((error, returned)) => {
                            eprintln!("enqueue {key}: {error}; retrying");
                            record = returned;
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                };
                sender
                    .send((partition, seq, delivery))
                    .expect("collector alive");
                sent[partition as usize] += 1;
                index += 1;
                if index.is_multiple_of(3) {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
            sent
        }
    });

    let wait_acks = |target: usize, what: &'static str| {
        let acknowledged = acknowledged.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(90);
            while acknowledged.load(Ordering::SeqCst) < target {
                assert!(
                    Instant::now() < deadline,
                    "{what}: only {} of {target} records acknowledged in time",
                    acknowledged.load(Ordering::SeqCst)
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_acks(300, "before the kill").await;
    eprintln!("phase: kill -9 mid-stream");
    broker.kill9();
    let at_kill = acknowledged.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(500)).await;
    eprintln!("phase: restart on the same port");
    broker.start_again_on_same_port();
    wait_acks(at_kill + 600, "after the restart").await;
    stop.store(true, Ordering::SeqCst);
    let sent = tokio::time::timeout(Duration::from_secs(30), stream)
        .await
        .expect("stream task ends")
        .expect("stream task did not panic");
    let total: usize = sent.iter().sum();
    eprintln!("phase: flush ({total} records sent: {sent:?}, {at_kill} acknowledged at the kill)");
    let flushed = tokio::task::block_in_place(|| producer.flush(Duration::from_secs(150)));
    assert!(flushed.is_ok(), "flush: {flushed:?}");
    assert!(
        producer.client().fatal_error().is_none(),
        "fatal producer error: {:?}",
        producer.client().fatal_error()
    );
    drop(producer);
    tokio::time::timeout(Duration::from_secs(30), collector)
        .await
        .expect("collector ends")
        .expect("collector did not panic");

    eprintln!("phase: every record was delivered, at its place");
    let reports = reports.lock().unwrap().clone();
    assert_eq!(reports.len(), total, "one delivery report per record");
    let failed: Vec<&Report> = reports.iter().filter(|r| r.2.is_err()).collect();
    assert!(
        failed.is_empty(),
        "{} records not delivered, first: {:?}",
        failed.len(),
        failed.first()
    );
    for (partition, seq, outcome) in &reports {
        assert_eq!(
            outcome,
            &Ok(*seq as i64),
            "partition {partition}: record {seq} reported at its place in the partition"
        );
    }

    eprintln!("phase: consume");
    let read = read_back(broker.bootstrap(), &topic, total);
    assert_exactly_once(&read, &sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_state_survives_a_clean_restart_for_a_live_producer() {
    let mut broker = TestBroker::start();
    let topic = topic_name("idem-sigterm");
    create_topic(broker.bootstrap(), &topic, PARTITIONS).await;
    let producer = idempotent_producer(broker.bootstrap());
    let mut sent = vec![0usize; PARTITIONS as usize];

    async fn send_round(
        producer: &FutureProducer,
        topic: &str,
        sent: &mut [usize],
        count: usize,
    ) -> Vec<String> {
        let mut deliveries = Vec::new();
        for index in 0..count {
            let partition = (index % PARTITIONS as usize) as i32;
            let seq = sent[partition as usize];
            sent[partition as usize] += 1;
            let value = value_for(partition, seq);
            let record = FutureRecord::to(topic)
                .partition(partition)
                .key("k")
                .payload(&value);
            let delivery = producer
                .send_result(record)
                .unwrap_or_else(|(error, _)| panic!("enqueue {value}: {error}"));
            deliveries.push((partition, seq, delivery));
        }
        let mut errors = Vec::new();
        for (partition, seq, delivery) in deliveries {
            match tokio::time::timeout(Duration::from_secs(130), delivery).await {
                Ok(Ok(Ok(delivery))) => {
                    if delivery.offset != seq as i64 {
                        errors.push(format!(
                            "p{partition} record {seq} reported at offset {}",
                            delivery.offset
                        ));
                    }
                }
                Ok(Ok(Err((error, _)))) => errors.push(format!("p{partition} {seq}: {error}")),
                Ok(Err(_)) => errors.push(format!("p{partition} {seq}: cancelled")),
                Err(_) => errors.push(format!("p{partition} {seq}: no delivery report")),
            }
        }
        errors
    }

    eprintln!("phase: produce");
    let errors = send_round(&producer, &topic, &mut sent, 30).await;
    assert!(errors.is_empty(), "before the restart: {errors:?}");

    eprintln!("phase: SIGTERM and restart on the same port");
    let status = broker.terminate();
    assert!(status.success(), "clean shutdown: {status}");
    broker.start_again_on_same_port();

    eprintln!("phase: the same producer goes on");
    let errors = send_round(&producer, &topic, &mut sent, 30).await;
    assert!(errors.is_empty(), "after the restart: {errors:?}");
    assert!(
        producer.client().fatal_error().is_none(),
        "fatal producer error: {:?}",
        producer.client().fatal_error()
    );

    eprintln!("phase: consume");
    let read = read_back(broker.bootstrap(), &topic, sent.iter().sum());
    assert_exactly_once(&read, &sent);
}
