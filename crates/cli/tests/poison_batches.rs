//! Poison batches (issue 10, bug 3): batches whose header and CRC are right but
//! whose records are not are refused with Kafka's error codes, nothing of them is
//! appended, and a consumer reading the partition gets exactly the good records.

mod common;
#[path = "common/lifecycle.rs"]
mod lifecycle;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::raw::{record_batch_at, RawConnection};
use common::{
    assign, consumer, create_topic, poll_for, poll_messages, start_in_process, watermarks,
};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::records::Compression;
use rdkafka::{Message, Offset};
use sluice_testkit::batch::{at, rewrite_crc, set_codec, set_record_count};

/// Kafka error codes these tests expect.
const CORRUPT_MESSAGE: i16 = 2;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
const INVALID_RECORD: i16 = 87;

/// Keyless records `prefix-0..` at offsets 0.., uncompressed unless told.
fn values(prefix: &str, count: usize, compression: Compression) -> BytesMut {
    let values: Vec<String> = (0..count)
        .map(|index| format!("{prefix}-{index}"))
        .collect();
    let records: Vec<(Option<&str>, &str)> = values.iter().map(|v| (None, v.as_str())).collect();
    let offsets: Vec<i64> = (0..count as i64).collect();
    record_batch_at(&records, &offsets, compression)
}

/// Recomputes the CRC-32C over attributes..end, as a client would.
fn fix_crc(mut batch: BytesMut) -> Bytes {
    rewrite_crc(&mut batch);
    batch.freeze()
}

/// Sets recordCount and lastOffsetDelta (count - 1).
fn with_count(mut batch: BytesMut, count: i32) -> BytesMut {
    set_record_count(&mut batch, count);
    batch
}

/// A three-record uncompressed batch whose records section is garbage of the
/// same length, under codec `codec`.
fn garbage_under_codec(codec: i16) -> Bytes {
    let mut batch = values("poison", 3, Compression::None);
    for (index, byte) in batch[at::RECORDS..].iter_mut().enumerate() {
        *byte = [0xde, 0xad, 0xbe, 0xef][index % 4];
    }
    set_codec(&mut batch, codec);
    fix_crc(batch)
}

/// (case, batch, expected error code, expected RecordErrors batch indexes)
fn poison_batches() -> Vec<(&'static str, Bytes, i16, Vec<i32>)> {
    vec![
        (
            "garbage records under a correct CRC",
            garbage_under_codec(0),
            INVALID_RECORD,
            vec![],
        ),
        (
            "recordCount above the records present",
            fix_crc(with_count(values("poison", 3, Compression::None), 5)),
            INVALID_RECORD,
            vec![],
        ),
        (
            "recordCount below the records present",
            fix_crc(with_count(values("poison", 3, Compression::None), 2)),
            INVALID_RECORD,
            vec![],
        ),
        (
            "offset deltas 0, 1, 3",
            fix_crc(with_count(
                record_batch_at(
                    &[(None, "poison-0"), (None, "poison-1"), (None, "poison-2")],
                    &[0, 1, 3],
                    Compression::None,
                ),
                3,
            )),
            INVALID_RECORD,
            vec![2],
        ),
        (
            "lz4 batch with recordCount 4 over 3 records",
            fix_crc(with_count(values("poison", 3, Compression::Lz4), 4)),
            INVALID_RECORD,
            vec![],
        ),
        (
            "gzip over garbage",
            garbage_under_codec(1),
            CORRUPT_MESSAGE,
            vec![],
        ),
        (
            "snappy over garbage",
            garbage_under_codec(2),
            CORRUPT_MESSAGE,
            vec![],
        ),
        (
            "lz4 over garbage",
            garbage_under_codec(3),
            CORRUPT_MESSAGE,
            vec![],
        ),
        (
            "zstd over garbage",
            garbage_under_codec(4),
            CORRUPT_MESSAGE,
            vec![],
        ),
        (
            "codec 5",
            garbage_under_codec(5),
            UNSUPPORTED_COMPRESSION_TYPE,
            vec![],
        ),
        (
            "codec 6",
            garbage_under_codec(6),
            UNSUPPORTED_COMPRESSION_TYPE,
            vec![],
        ),
        (
            "codec 7",
            garbage_under_codec(7),
            UNSUPPORTED_COMPRESSION_TYPE,
            vec![],
        ),
    ]
}

fn batch_indexes(response: &PartitionProduceResponse) -> Vec<i32> {
    response
        .record_errors
        .iter()
        .map(|error| error.batch_index)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_batches_are_refused_and_consumers_see_only_good_records() {
    let cluster = start_in_process(&[]);
    let topic = "poison";
    create_topic(cluster.bootstrap(), topic, 1).await;
    let mut connection = RawConnection::connect(cluster.bootstrap());

    tracing_phase("a good batch first");
    let good = connection.produce(topic, values("good", 3, Compression::None).freeze());
    assert_eq!((good.error_code, good.base_offset), (0, 0));

    for (case, records, expected, indexes) in poison_batches() {
        tracing_phase(case);
        let response = connection.produce(topic, records);
        assert_eq!(
            response.error_code, expected,
            "{case}: partition error code"
        );
        assert_eq!(batch_indexes(&response), indexes, "{case}: RecordErrors");
        assert!(
            response.error_message.is_some(),
            "{case}: an ErrorMessage says why"
        );
        assert_eq!(
            watermarks(cluster.bootstrap(), topic, 0),
            (0, 3),
            "{case}: nothing appended"
        );
    }

    tracing_phase("good batches of every codec still go in");
    let mut next = 3;
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let records = values("good", 3, compression).freeze();
        let response = connection.produce(topic, records);
        assert_eq!(
            (response.error_code, response.base_offset),
            (0, next),
            "{compression:?}"
        );
        next += 3;
    }
    assert_eq!(watermarks(cluster.bootstrap(), topic, 0), (0, next));

    tracing_phase("a consumer reads every good record and nothing else");
    let consumer = consumer(cluster.bootstrap(), &[("check.crcs", "true")]);
    assign(&consumer, topic, &[(0, Offset::Beginning)]);
    let messages = poll_messages(&consumer, next as usize, Duration::from_secs(30));
    let read: Vec<(i64, String)> = messages
        .iter()
        .map(|m| {
            let payload = m.payload().map(|p| String::from_utf8_lossy(p).into_owned());
            (m.offset(), payload.unwrap_or_default())
        })
        .collect();
    let expected: Vec<(i64, String)> = (0..next)
        .map(|offset| (offset, format!("good-{}", offset % 3)))
        .collect();
    assert_eq!(read, expected, "the consumer got the good records in order");
    assert!(
        poll_for(&consumer, Duration::from_millis(500)).is_empty(),
        "nothing after the good records"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_on_a_compacted_topic_are_named_in_record_errors() {
    let cluster = start_in_process(&[]);
    let topic = "poison-compacted";
    lifecycle::create_topic_with(
        cluster.bootstrap(),
        topic,
        1,
        &[("cleanup.policy", "compact")],
    )
    .await;
    let mut connection = RawConnection::connect(cluster.bootstrap());
    let batch = record_batch_at(
        &[
            (Some("k0"), "v0"),
            (None, "v1"),
            (Some("k2"), "v2"),
            (None, "v3"),
        ],
        &[0, 1, 2, 3],
        Compression::Lz4,
    );
    let response = connection.produce(topic, batch.freeze());
    assert_eq!(response.error_code, INVALID_RECORD);
    // librdkafka fails exactly these records with INVALID_RECORD and the
    // others with _INVALID_DIFFERENT_RECORD (its test 0011).
    assert_eq!(batch_indexes(&response), vec![1, 3]);
    for error in &response.record_errors {
        let message = error.batch_index_error_message.as_deref().unwrap_or("");
        assert!(message.contains("without key"), "record error: {message:?}");
    }
    assert!(response.error_message.is_some(), "an ErrorMessage says why");
    assert_eq!(watermarks(cluster.bootstrap(), topic, 0), (0, 0));

    let keyed = record_batch_at(
        &[(Some("k0"), "v0"), (Some("k1"), "v1")],
        &[0, 1],
        Compression::Lz4,
    );
    assert_eq!(connection.produce(topic, keyed.freeze()).error_code, 0);
    assert_eq!(watermarks(cluster.bootstrap(), topic, 0), (0, 2));
}

fn tracing_phase(phase: &str) {
    eprintln!("phase: {phase}");
}
