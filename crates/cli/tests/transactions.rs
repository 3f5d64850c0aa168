//! Transactions end to end: an rdkafka transactional producer commits one
//! transaction and aborts the next (read_committed sees only the first,
//! read_uncommitted both), a second producer with the same transactional id
//! fences the first, a transaction abandoned by a producer that vanished is
//! aborted after its timeout and stops holding back the LSO,
//! consume-transform-produce with `send_offsets_to_transaction`, and the
//! coordinator's answers to bad requests on a raw socket, and a fenced
//! producer's Produce refused for its epoch (librdkafka 0103).

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::raw::RawConnection;
use common::{
    assign, consumer, create_topic, poll_for, producer, topic_name, watermarks, TestBroker,
    CLIENT_TIMEOUT,
};
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest, InitProducerIdRequest,
    ListTransactionsRequest, ProduceRequest, ProducerId, TopicName, TransactionalId,
    WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use sluice_testkit::{RecordBatchBuilder, TestRecord};

const INVALID_PRODUCER_EPOCH: i16 = 47;
const INVALID_TXN_STATE: i16 = 48;
const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
const PRODUCER_FENCED: i16 = 90;
const TRANSACTION_ABORTABLE: i16 = 120;

fn str_bytes(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

fn transactional(bootstrap: &str, id: &str) -> FutureProducer {
    let producer = producer(
        bootstrap,
        &[
            ("transactional.id", id),
            ("transaction.timeout.ms", "30000"),
        ],
    );
    producer
        .init_transactions(CLIENT_TIMEOUT)
        .expect("init_transactions");
    producer
}

async fn send(producer: &FutureProducer, topic: &str, partition: i32, value: &str) {
    let record = FutureRecord::to(topic)
        .partition(partition)
        .key("k")
        .payload(value);
    producer
        .send(record, CLIENT_TIMEOUT)
        .await
        .unwrap_or_else(|(error, _)| panic!("send {value}: {error}"));
}

fn values(messages: &[rdkafka::message::OwnedMessage]) -> Vec<String> {
    let mut found: Vec<String> = messages
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
        .collect();
    found.sort();
    found
}

fn read_all(bootstrap: &str, topic: &str, partitions: i32, isolation: &str) -> Vec<String> {
    let consumer = consumer(bootstrap, &[("isolation.level", isolation)]);
    let list: Vec<(i32, Offset)> = (0..partitions).map(|p| (p, Offset::Beginning)).collect();
    assign(&consumer, topic, &list);
    values(&poll_for(&consumer, Duration::from_secs(3)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_is_seen_aborted_is_not_by_read_committed() {
    let broker = TestBroker::start();
    let topic = topic_name("txn-commit-abort");
    create_topic(broker.bootstrap(), &topic, 2).await;
    let producer = transactional(broker.bootstrap(), "txn-commit-abort");

    tracing::info!("phase: commit one transaction over two partitions");
    producer.begin_transaction().expect("begin");
    send(&producer, &topic, 0, "committed-0").await;
    send(&producer, &topic, 1, "committed-1").await;
    producer.commit_transaction(CLIENT_TIMEOUT).expect("commit");

    tracing::info!("phase: abort the next one");
    producer.begin_transaction().expect("begin");
    send(&producer, &topic, 0, "aborted-0").await;
    send(&producer, &topic, 1, "aborted-1").await;
    producer.abort_transaction(CLIENT_TIMEOUT).expect("abort");

    assert_eq!(
        read_all(broker.bootstrap(), &topic, 2, "read_committed"),
        vec!["committed-0", "committed-1"]
    );
    assert_eq!(
        read_all(broker.bootstrap(), &topic, 2, "read_uncommitted"),
        vec!["aborted-0", "aborted-1", "committed-0", "committed-1"]
    );
    // Two records and two markers per partition; nothing open, so LSO = HW.
    for partition in 0..2 {
        assert_eq!(watermarks(broker.bootstrap(), &topic, partition).1, 4);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_producer_fences_the_first() {
    let broker = TestBroker::start();
    let topic = topic_name("txn-zombie");
    create_topic(broker.bootstrap(), &topic, 1).await;
    let zombie = transactional(broker.bootstrap(), "txn-zombie");
    zombie.begin_transaction().expect("begin");
    send(&zombie, &topic, 0, "zombie").await;

    tracing::info!("phase: the new producer fences the zombie and aborts its transaction");
    let fresh = transactional(broker.bootstrap(), "txn-zombie");
    fresh.begin_transaction().expect("begin");
    send(&fresh, &topic, 0, "fresh").await;
    fresh.commit_transaction(CLIENT_TIMEOUT).expect("commit");

    let error = zombie
        .commit_transaction(CLIENT_TIMEOUT)
        .expect_err("the zombie's commit must fail");
    let text = error.to_string().to_lowercase();
    assert!(
        text.contains("fenced") || text.contains("epoch"),
        "fenced error expected, got {error}"
    );
    assert_eq!(
        read_all(broker.bootstrap(), &topic, 1, "read_committed"),
        vec!["fresh"]
    );
}

/// A raw-socket client: what a producer process that dies mid-transaction
/// leaves behind, and the coordinator's error answers.
struct Raw {
    /// The connection.
    connection: RawConnection,
    /// Last correlation id used.
    correlation_id: i32,
}

impl Raw {
    fn connect(address: &str) -> Raw {
        Raw {
            connection: RawConnection::connect(address),
            correlation_id: 0,
        }
    }

    fn next_id(&mut self) -> i32 {
        self.correlation_id += 1;
        self.correlation_id
    }

    /// InitProducerId v4 for a transactional id: (code, id, epoch).
    fn init(&mut self, id: &str, timeout_ms: i32) -> (i16, i64, i16) {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(str_bytes(id))))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let correlation = self.next_id();
        let response = self.connection.request(4, correlation, &request);
        (
            response.error_code,
            response.producer_id.0,
            response.producer_epoch,
        )
    }

    /// AddPartitionsToTxn v3 of one partition: its error code.
    fn add(&mut self, id: &str, producer: (i64, i16), topic: &str, partition: i32) -> i16 {
        let request = AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(str_bytes(id)))
            .with_v3_and_below_producer_id(ProducerId(producer.0))
            .with_v3_and_below_producer_epoch(producer.1)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partitions(vec![partition])]);
        let correlation = self.next_id();
        let response = self.connection.request(3, correlation, &request);
        response.results_by_topic_v3_and_below[0].results_by_partition[0].partition_error_code
    }

    /// EndTxn v3: its error code.
    fn end(&mut self, id: &str, producer: (i64, i16), commit: bool) -> i16 {
        let request = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(str_bytes(id)))
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_committed(commit);
        let correlation = self.next_id();
        self.connection.request(3, correlation, &request).error_code
    }

    /// Produce at `version` of one transactional batch: its error code.
    fn produce(&mut self, version: i16, topic: &str, batch: Bytes) -> i16 {
        let request = ProduceRequest::default()
            .with_transactional_id(None)
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(batch))])]);
        let correlation = self.next_id();
        let response = self.connection.request(version, correlation, &request);
        response.responses[0].partition_responses[0].error_code
    }
}

/// One transactional batch of `count` records.
fn transactional_batch(producer: (i64, i16), base_sequence: i32, count: usize) -> Bytes {
    RecordBatchBuilder::new()
        .producer(producer.0, producer.1, base_sequence)
        .transactional(true)
        .records((0..count).map(|index| TestRecord::value(format!("open-{index}"))))
        .bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_transaction_is_aborted_after_its_timeout() {
    let broker = TestBroker::start_with(&[(
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "200",
    )]);
    let topic = topic_name("txn-abandoned");
    create_topic(broker.bootstrap(), &topic, 1).await;

    tracing::info!("phase: a producer opens a transaction, writes, and vanishes");
    let mut raw = Raw::connect(broker.bootstrap());
    let (code, producer_id, epoch) = raw.init("txn-abandoned", 2_000);
    assert_eq!(code, 0);
    assert_eq!(raw.add("txn-abandoned", (producer_id, epoch), &topic, 0), 0);
    assert_eq!(
        raw.produce(9, &topic, transactional_batch((producer_id, epoch), 0, 3)),
        0
    );
    drop(raw);
    let committed = consumer(broker.bootstrap(), &[("isolation.level", "read_committed")]);
    let (_, stable) = committed
        .fetch_watermarks(&topic, 0, CLIENT_TIMEOUT)
        .expect("watermarks");
    assert_eq!(stable, 0, "the open transaction holds the LSO back");

    tracing::info!("phase: after the timeout the coordinator aborts it");
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let (_, stable) = committed
            .fetch_watermarks(&topic, 0, CLIENT_TIMEOUT)
            .expect("watermarks");
        if stable == 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "LSO still {stable}; log:\n{}",
            broker.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(read_all(broker.bootstrap(), &topic, 1, "read_committed").is_empty());
    assert_eq!(
        read_all(broker.bootstrap(), &topic, 1, "read_uncommitted").len(),
        3
    );

    tracing::info!("phase: the coordinator shows the abort and the new epoch");
    let mut raw = Raw::connect(broker.bootstrap());
    let correlation = raw.next_id();
    let described = raw.connection.request(
        0,
        correlation,
        &DescribeTransactionsRequest::default()
            .with_transactional_ids(vec![TransactionalId(str_bytes("txn-abandoned"))]),
    );
    let state = &described.transaction_states[0];
    assert_eq!(state.error_code, 0);
    assert_eq!(state.transaction_state.as_str(), "CompleteAbort");
    assert_eq!(state.producer_epoch, epoch + 1);
    let correlation = raw.next_id();
    let listed = raw
        .connection
        .request(1, correlation, &ListTransactionsRequest::default());
    assert!(listed
        .transaction_states
        .iter()
        .any(|t| t.transactional_id.0.as_str() == "txn-abandoned"));
    // The abandoned producer is fenced (EndTxn v2+ says PRODUCER_FENCED).
    assert_eq!(
        raw.end("txn-abandoned", (producer_id, epoch), true),
        PRODUCER_FENCED
    );
}

/// librdkafka 0103 "produce after fence": once a second producer with the
/// same transactional id has fenced the first, the first one's Produce with
/// its old epoch is INVALID_PRODUCER_EPOCH (fatal for the client), at every
/// Produce version, whether the new producer has a transaction open or not
/// (Sluice answered INVALID_TXN_STATE / TRANSACTION_ABORTABLE, which clients
/// take as abortable).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_producer_gets_invalid_producer_epoch_on_produce() {
    let broker = TestBroker::start();
    let topic = topic_name("txn-zombie");
    create_topic(broker.bootstrap(), &topic, 1).await;
    let mut zombie = Raw::connect(broker.bootstrap());
    let (code, producer_id, epoch) = zombie.init("txn-zombie", 60_000);
    assert_eq!(code, 0);
    assert_eq!(zombie.add("txn-zombie", (producer_id, epoch), &topic, 0), 0);
    assert_eq!(
        zombie.produce(9, &topic, transactional_batch((producer_id, epoch), 0, 2)),
        0
    );

    tracing::info!("phase: a second producer fences the first");
    let mut fresh = Raw::connect(broker.bootstrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let new_epoch = loop {
        // CONCURRENT_TRANSACTIONS (51) while the open transaction is aborted.
        let (code, _, new_epoch) = fresh.init("txn-zombie", 60_000);
        if code == 0 {
            break new_epoch;
        }
        assert_eq!(code, 51, "InitProducerId code");
        assert!(std::time::Instant::now() < deadline, "never initialized");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(new_epoch > epoch);
    for version in [9, 11] {
        assert_eq!(
            zombie.produce(
                version,
                &topic,
                transactional_batch((producer_id, epoch), 2, 1)
            ),
            INVALID_PRODUCER_EPOCH,
            "Produce v{version}, the new producer idle"
        );
    }

    tracing::info!("phase: the new producer opens a transaction; the zombie is still fenced");
    assert_eq!(
        fresh.add("txn-zombie", (producer_id, new_epoch), &topic, 0),
        0
    );
    for version in [9, 11] {
        assert_eq!(
            zombie.produce(
                version,
                &topic,
                transactional_batch((producer_id, epoch), 2, 1)
            ),
            INVALID_PRODUCER_EPOCH,
            "Produce v{version}, the new producer in a transaction"
        );
    }
    assert_eq!(
        fresh.produce(
            9,
            &topic,
            transactional_batch((producer_id, new_epoch), 0, 1)
        ),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_transactional_requests_get_kafkas_errors() {
    let broker = TestBroker::start();
    let topic = topic_name("txn-bad");
    create_topic(broker.bootstrap(), &topic, 1).await;
    let mut raw = Raw::connect(broker.bootstrap());

    assert_eq!(raw.init("txn-bad", 900_001).0, INVALID_TRANSACTION_TIMEOUT);
    assert_eq!(
        raw.end("no-such-id", (1, 0), true),
        INVALID_PRODUCER_ID_MAPPING
    );
    let (code, producer_id, epoch) = raw.init("txn-bad", 60_000);
    assert_eq!(code, 0);
    // EndTxn without a transaction.
    assert_eq!(
        raw.end("txn-bad", (producer_id, epoch), true),
        INVALID_TXN_STATE
    );
    // A stale epoch (v3 knows PRODUCER_FENCED).
    let (_, _, newer) = raw.init("txn-bad", 60_000);
    assert_eq!(newer, epoch + 1);
    assert_eq!(
        raw.add("txn-bad", (producer_id, epoch), &topic, 0),
        PRODUCER_FENCED
    );

    tracing::info!("phase: produce to a partition not in the transaction");
    let batch = transactional_batch((producer_id, newer), 0, 1);
    assert_eq!(
        raw.produce(11, &topic, batch.clone()),
        TRANSACTION_ABORTABLE
    );
    assert_eq!(raw.produce(9, &topic, batch), INVALID_TXN_STATE);
    assert_eq!(
        watermarks(broker.bootstrap(), &topic, 0).1,
        0,
        "nothing written"
    );

    tracing::info!("phase: a sequence gap inside a transaction");
    assert_eq!(raw.add("txn-bad", (producer_id, newer), &topic, 0), 0);
    assert_eq!(
        raw.produce(9, &topic, transactional_batch((producer_id, newer), 0, 2)),
        0
    );
    assert_eq!(
        raw.produce(9, &topic, transactional_batch((producer_id, newer), 5, 1)),
        45
    );
    assert_eq!(raw.end("txn-bad", (producer_id, newer), true), 0);
    assert_eq!(
        read_all(broker.bootstrap(), &topic, 1, "read_committed").len(),
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_transform_produce_commits_offsets_with_the_output() {
    let broker = TestBroker::start();
    let input = topic_name("txn-ctp-in");
    let output = topic_name("txn-ctp-out");
    create_topic(broker.bootstrap(), &input, 1).await;
    create_topic(broker.bootstrap(), &output, 1).await;
    let plain = producer(broker.bootstrap(), &[]);
    for i in 0..10 {
        send(&plain, &input, 0, &format!("in-{i}")).await;
    }
    let group = format!("ctp-{}", rand::random::<u32>());
    let make_consumer = || -> StreamConsumer {
        ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap())
            .set("broker.address.family", "v4")
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .create()
            .expect("create consumer")
    };

    tracing::info!("phase: process 5 records in one transaction and commit");
    let source = make_consumer();
    source.subscribe(&[&input]).expect("subscribe");
    let app = transactional(broker.bootstrap(), "txn-ctp");
    app.begin_transaction().expect("begin");
    let mut next = 0;
    while next < 5 {
        let message = tokio::time::timeout(CLIENT_TIMEOUT, source.recv())
            .await
            .expect("an input record in time")
            .expect("input record");
        let value = String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned();
        send(&app, &output, 0, &value.replace("in", "out")).await;
        next = message.offset() + 1;
    }
    let mut offsets = TopicPartitionList::new();
    offsets
        .add_partition_offset(&input, 0, Offset::Offset(next))
        .expect("offset");
    let metadata = source.group_metadata().expect("group metadata");
    app.send_offsets_to_transaction(&offsets, &metadata, CLIENT_TIMEOUT)
        .expect("send_offsets_to_transaction");
    app.commit_transaction(CLIENT_TIMEOUT).expect("commit");

    tracing::info!("phase: process more but abort; the offsets stay at 5");
    app.begin_transaction().expect("begin");
    send(&app, &output, 0, "out-aborted").await;
    let mut later = TopicPartitionList::new();
    later
        .add_partition_offset(&input, 0, Offset::Offset(9))
        .expect("offset");
    app.send_offsets_to_transaction(&later, &metadata, CLIENT_TIMEOUT)
        .expect("send_offsets_to_transaction");
    app.abort_transaction(CLIENT_TIMEOUT).expect("abort");
    drop(source);

    let checker = make_consumer();
    let mut wanted = TopicPartitionList::new();
    wanted.add_partition(&input, 0);
    let committed = checker
        .committed_offsets(wanted, CLIENT_TIMEOUT)
        .expect("committed offsets");
    let offset = committed
        .find_partition(&input, 0)
        .expect("input partition")
        .offset();
    assert_eq!(offset, Offset::Offset(5));
    let out = read_all(broker.bootstrap(), &output, 1, "read_committed");
    assert_eq!(out, (0..5).map(|i| format!("out-{i}")).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_transactions_survive_a_restart_and_are_fenced_by_a_new_producer() {
    let mut broker = TestBroker::start();
    let topic = topic_name("txn-restart");
    create_topic(broker.bootstrap(), &topic, 1).await;
    let mut raw = Raw::connect(broker.bootstrap());
    let (code, producer_id, epoch) = raw.init("txn-restart", 60_000);
    assert_eq!(code, 0);
    assert_eq!(raw.add("txn-restart", (producer_id, epoch), &topic, 0), 0);
    assert_eq!(
        raw.produce(9, &topic, transactional_batch((producer_id, epoch), 0, 2)),
        0
    );
    drop(raw);

    tracing::info!("phase: restart; __transaction_state is replayed");
    broker.restart();
    let mut raw = Raw::connect(broker.bootstrap());
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let (producer, new_epoch) = loop {
        // CONCURRENT_TRANSACTIONS (51) while the open transaction is aborted,
        // COORDINATOR_LOAD_IN_PROGRESS (14) while loading.
        let (code, id, epoch) = raw.init("txn-restart", 60_000);
        if code == 0 {
            break (id, epoch);
        }
        assert!(matches!(code, 14 | 51), "InitProducerId code {code}");
        assert!(std::time::Instant::now() < deadline, "never initialized");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(producer, producer_id, "the same producer id");
    assert_eq!(new_epoch, epoch + 2, "one bump to fence, one to start");
    assert!(read_all(broker.bootstrap(), &topic, 1, "read_committed").is_empty());
    assert_eq!(
        watermarks(broker.bootstrap(), &topic, 0).1,
        3,
        "LSO released"
    );
}

/// Producer-state snapshots are written every few seconds; a kill -9 right
/// after an abort must not forget the aborted range (it is rebuilt from the
/// log), or read_committed consumers would see the aborted records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abort_survives_kill_9_before_the_next_snapshot() {
    let mut broker = TestBroker::start();
    let topic = topic_name("txn-kill9");
    create_topic(broker.bootstrap(), &topic, 1).await;
    let producer = transactional(broker.bootstrap(), "txn-kill9");
    producer.begin_transaction().expect("begin");
    send(&producer, &topic, 0, "committed").await;
    producer.commit_transaction(CLIENT_TIMEOUT).expect("commit");
    producer.begin_transaction().expect("begin");
    send(&producer, &topic, 0, "aborted").await;
    producer.abort_transaction(CLIENT_TIMEOUT).expect("abort");
    drop(producer);

    tracing::info!("phase: kill -9 at once, restart");
    broker.kill9();
    broker.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while watermarks(broker.bootstrap(), &topic, 0).1 < 4 {
        assert!(
            std::time::Instant::now() < deadline,
            "partition never came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        read_all(broker.bootstrap(), &topic, 1, "read_committed"),
        vec!["committed"]
    );
}

/// One WriteTxnMarkers v1 for partition 0 of `topic`: the partition's code.
fn write_marker(address: &str, topic: &str, producer: (i64, i16), coordinator_epoch: i32) -> i16 {
    let request =
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(producer.0))
            .with_producer_epoch(producer.1)
            .with_transaction_result(false)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(vec![WritableTxnMarkerTopic::default()
                .with_name(TopicName(str_bytes(topic)))
                .with_partition_indexes(vec![0])])]);
    let mut connection = RawConnection::connect(address);
    let response: WriteTxnMarkersResponse = connection.request(1, 27, &request);
    response.markers[0].topics[0].partitions[0].error_code
}

/// Kafka's checkCoordinatorEpoch: once a transaction coordinator of epoch
/// 5 wrote a producer's marker, one of epoch 4 (a coordinator that lost
/// its partition and does not know yet) gets TRANSACTION_COORDINATOR_FENCED
/// and writes nothing; epoch 5 and later still write. It holds after a
/// restart, from the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_marker_from_a_stale_transaction_coordinator_is_refused() {
    let mut broker = TestBroker::start();
    let topic = topic_name("txn-stale-coordinator");
    create_topic(broker.bootstrap(), &topic, 1).await;
    let producer = (4242, 0);
    assert_eq!(write_marker(broker.bootstrap(), &topic, producer, 5), 0);
    assert_eq!(write_marker(broker.bootstrap(), &topic, producer, 4), 52);
    assert_eq!(write_marker(broker.bootstrap(), &topic, producer, 5), 0);
    assert_eq!(
        write_marker(broker.bootstrap(), &topic, (4343, 0), 1),
        0,
        "another producer"
    );
    let (_, high) = watermarks(broker.bootstrap(), &topic, 0);
    assert_eq!(high, 3, "the refused marker was not written");
    broker.kill9();
    broker.restart();
    assert_eq!(write_marker(broker.bootstrap(), &topic, producer, 4), 52);
    assert_eq!(write_marker(broker.bootstrap(), &topic, producer, 6), 0);
}
