//! Malformed and unsupported requests on a raw socket: the broker answers as Kafka
//! does (or closes that connection) and keeps serving everyone else.

mod common;

use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::raw::{
    decode_response, encode_header, encode_request, record_batch, RawConnection, ReadOutcome,
};
use common::{
    assign, consumer, create_topic, poll_messages, produce_one, topic_name, watermarks, TestBroker,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, ProduceRequest, ProduceResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::Compression;
use rdkafka::{Message, Offset};

/// Kafka error codes these tests expect.
const CORRUPT_MESSAGE: i16 = 2;
const UNSUPPORTED_VERSION: i16 = 35;
const INVALID_RECORD: i16 = 87;

/// A fresh rdkafka client can still create, produce and consume.
async fn assert_still_serves(broker: &TestBroker) {
    eprintln!("phase: the broker still serves");
    let topic = topic_name("health");
    create_topic(broker.bootstrap(), &topic, 1).await;
    let offset = produce_one(broker.bootstrap(), &topic, "k", "still here").await;
    assert_eq!(offset, 0);
    let consumer = consumer(broker.bootstrap(), &[]);
    assign(&consumer, &topic, &[(0, Offset::Beginning)]);
    let messages = poll_messages(&consumer, 1, Duration::from_secs(30));
    assert_eq!(messages.len(), 1, "health record consumed");
    assert_eq!(messages[0].payload(), Some(&b"still here"[..]));
}

fn api_versions_v3() -> ApiVersionsRequest {
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("sluice-e2e"))
        .with_client_software_version(StrBytes::from_static_str("1.0"))
}

fn produce_request(topic: &str, acks: i16, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])])
}

/// Sends a Produce v9 (acks=all) with `records` and returns partition 0's error code.
fn produce_error_code(connection: &mut RawConnection, topic: &str, records: Bytes) -> i16 {
    let response: ProduceResponse = connection.request(9, 11, &produce_request(topic, -1, records));
    assert_eq!(response.responses.len(), 1, "one topic in the response");
    let partitions = &response.responses[0].partition_responses;
    assert_eq!(partitions.len(), 1, "one partition in the response");
    assert_eq!(partitions[0].index, 0);
    partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_bytes() {
    let broker = TestBroker::start();
    for round in 0..5 {
        let mut connection = RawConnection::connect(broker.bootstrap());
        let noise: Vec<u8> = (0..1000 + round * 300)
            .map(|_| rand::random::<u8>())
            .collect();
        // The broker may close the socket while we write: that is fine.
        let _ = connection.send_bytes(&noise);
        let _ = connection.read_frame();
    }
    assert_still_serves(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_or_negative_length_prefix_closes_the_connection() {
    let broker = TestBroker::start();
    // 2 GiB - 1, 2 GiB (negative as i32), -1, and just over the 100 MiB default bound.
    let prefixes: &[[u8; 4]] = &[
        0x7fff_ffffu32.to_be_bytes(),
        0x8000_0000u32.to_be_bytes(),
        (-1i32).to_be_bytes(),
        (100 * 1024 * 1024 + 1u32).to_be_bytes(),
    ];
    let peak_before = broker.memory_kib("VmPeak");
    for prefix in prefixes {
        eprintln!("phase: length prefix {prefix:02x?}");
        let mut connection = RawConnection::connect(broker.bootstrap());
        let mut bytes = prefix.to_vec();
        bytes.extend_from_slice(&[0u8; 64]);
        let _ = connection.send_bytes(&bytes);
        connection.expect_closed();
    }
    // Allocating for the announced length would move the peak virtual size by ~2 GiB.
    let peak_after = broker.memory_kib("VmPeak");
    assert!(
        peak_after < peak_before + 512 * 1024,
        "VmPeak grew from {peak_before} KiB to {peak_after} KiB: the broker allocated for the length prefix"
    );
    assert_still_serves(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_then_close() {
    let broker = TestBroker::start();
    let mut connection = RawConnection::connect(broker.bootstrap());
    let whole = encode_request(ApiKey::ApiVersions as i16, 3, 1, &api_versions_v3(), 3);
    let mut frame = (whole.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&whole[..whole.len() / 2]);
    connection.send_bytes(&frame).expect("write half a frame");
    drop(connection);
    // A frame whose length promises more than ever comes, on a connection left open.
    let mut idle = RawConnection::connect(broker.bootstrap());
    idle.send_bytes(&64i32.to_be_bytes()).expect("write length");
    idle.send_bytes(&[0u8; 10]).expect("write part of the body");
    assert_still_serves(&broker).await;
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_api_key_closes_the_connection() {
    let broker = TestBroker::start();
    let mut connection = RawConnection::connect(broker.bootstrap());
    let mut payload = encode_request(
        ApiKey::ApiVersions as i16,
        0,
        5,
        &ApiVersionsRequest::default(),
        0,
    );
    payload[0..2].copy_from_slice(&9999i16.to_be_bytes());
    connection.send_frame(&payload).expect("write request");
    connection.expect_closed();
    assert_still_serves(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_versions_newer_than_supported_answers_v0_with_unsupported_version() {
    let broker = TestBroker::start();
    let mut connection = RawConnection::connect(broker.bootstrap());

    eprintln!("phase: ApiVersions v99");
    let payload = encode_request(ApiKey::ApiVersions as i16, 99, 42, &api_versions_v3(), 3);
    connection.send_frame(&payload).expect("write request");
    // Response header v0 (correlation id only) and a v0 body.
    let mut frame = connection.expect_frame();
    let correlation_id = i32::from_be_bytes(frame[0..4].try_into().unwrap());
    assert_eq!(correlation_id, 42, "correlation id of the v99 answer");
    let mut body = frame.split_off(4);
    let response = ApiVersionsResponse::decode(&mut body, 0).expect("v0 ApiVersions body");
    assert_eq!(response.error_code, UNSUPPORTED_VERSION);
    let api_versions = response
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::ApiVersions as i16)
        .expect("the answer lists ApiVersions (key 18)");
    assert!(api_versions.min_version <= 3 && 3 <= api_versions.max_version);

    eprintln!("phase: ApiVersions v3 on the same connection");
    let response = connection.request(3, 43, &api_versions_v3());
    assert_eq!(response.error_code, 0);
    let keys: Vec<i16> = response.api_keys.iter().map(|k| k.api_key).collect();
    for key in [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::Metadata,
        ApiKey::ApiVersions,
    ] {
        assert!(keys.contains(&(key as i16)), "{key:?} advertised: {keys:?}");
    }
    assert_still_serves(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_v2_closes_the_connection() {
    let broker = TestBroker::start();
    let topic = "old-produce";
    create_topic(broker.bootstrap(), topic, 1).await;
    let mut connection = RawConnection::connect(broker.bootstrap());
    // kafka-protocol encodes Produce from v3 on; v2's body is v3's without the leading
    // transactional_id (a null string: two bytes).
    let request = produce_request(topic, -1, record_batch(&["old"], Compression::None));
    let mut body = BytesMut::new();
    request
        .encode(&mut body, 3)
        .expect("encode produce v3 body");
    assert_eq!(&body[..2], &[0xff, 0xff], "null transactional_id");
    let mut payload = encode_header(ApiKey::Produce as i16, 2, 3, 1);
    payload.extend_from_slice(&body[2..]);
    connection.send_frame(&payload).expect("write request");
    connection.expect_closed();
    assert_eq!(watermarks(broker.bootstrap(), topic, 0), (0, 0));
    assert_still_serves(&broker).await;
}

/// (case, batch bytes, expected error code)
fn invalid_batches() -> Vec<(&'static str, Bytes, i16)> {
    let valid = record_batch(&["a", "b", "c"], Compression::None);
    let mut bad_crc = BytesMut::from(&valid[..]);
    bad_crc[17] ^= 0x5a;
    let mut magic_one = BytesMut::from(&valid[..]);
    magic_one[16] = 1;
    let mut two_batches = BytesMut::from(&valid[..]);
    two_batches.extend_from_slice(&record_batch(&["d"], Compression::None));
    vec![
        ("bad crc", bad_crc.freeze(), CORRUPT_MESSAGE),
        ("magic 1", magic_one.freeze(), INVALID_RECORD),
        ("two batches", two_batches.freeze(), INVALID_RECORD),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_batches_are_rejected_and_not_appended() {
    let broker = TestBroker::start();
    let topic = "invalid-batches";
    create_topic(broker.bootstrap(), topic, 1).await;
    for (case, records, expected) in invalid_batches() {
        eprintln!("phase: {case}");
        let mut connection = RawConnection::connect(broker.bootstrap());
        let code = produce_error_code(&mut connection, topic, records);
        assert_eq!(code, expected, "{case}: partition error code");
        assert_eq!(
            watermarks(broker.bootstrap(), topic, 0),
            (0, 0),
            "{case}: high watermark unchanged"
        );
    }
    eprintln!("phase: a valid batch on a raw connection still works");
    let mut connection = RawConnection::connect(broker.bootstrap());
    let records = record_batch(&["a", "b", "c"], Compression::None);
    assert_eq!(produce_error_code(&mut connection, topic, records), 0);
    assert_eq!(watermarks(broker.bootstrap(), topic, 0), (0, 3));
    assert_still_serves(&broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_produce_gets_no_response() {
    let broker = TestBroker::start();
    let topic = "acks-zero";
    create_topic(broker.bootstrap(), topic, 1).await;
    let mut connection = RawConnection::connect(broker.bootstrap());
    let request = produce_request(
        topic,
        0,
        record_batch(&["fire", "forget"], Compression::None),
    );
    connection.send_request(9, 100, &request);
    connection.send_request(3, 101, &api_versions_v3());
    let frame = match connection.read_frame() {
        ReadOutcome::Frame(frame) => frame,
        other => panic!("expected the ApiVersions response, got {other:?}"),
    };
    let response = decode_response::<ApiVersionsRequest>(frame, 3, 101);
    assert_eq!(response.error_code, 0);

    eprintln!("phase: the acks=0 records were appended");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, high) = watermarks(broker.bootstrap(), topic, 0);
        if high == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "acks=0 records never became visible (hwm {high})"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_still_serves(&broker).await;
}
