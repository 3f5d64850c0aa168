#![allow(clippy::unwrap_used)]

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;

use super::*;

fn read_i16(bytes: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn read_i64(bytes: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(bytes[at..at + 8].try_into().unwrap())
}

fn stored_crc_matches(batch: &[u8]) -> bool {
    let stored = u32::from_be_bytes(batch[at::CRC..at::CRC + 4].try_into().unwrap());
    stored == crc32c::crc32c(&batch[at::ATTRIBUTES..])
}

fn decode(batch: &BytesMut) -> Vec<Record> {
    let mut buffer = batch.clone().freeze();
    let sets = RecordBatchDecoder::decode_all(&mut buffer).unwrap();
    assert_eq!(sets.len(), 1, "one batch");
    sets.into_iter().flat_map(|set| set.records).collect()
}

#[test]
fn a_plain_batch_has_no_producer_and_the_default_header_fields() {
    let batch = RecordBatchBuilder::new()
        .timestamp(1_000)
        .records([TestRecord::value("a"), TestRecord::keyed("k", "b")])
        .build();
    assert_eq!(read_i64(&batch, at::BASE_OFFSET), 0);
    assert_eq!(
        read_i32(&batch, at::BATCH_LENGTH) as usize,
        batch.len() - 12
    );
    assert_eq!(read_i32(&batch, at::PARTITION_LEADER_EPOCH), -1);
    assert_eq!(batch[at::MAGIC], 2);
    assert_eq!(read_i16(&batch, at::ATTRIBUTES), 0);
    assert_eq!(read_i32(&batch, at::LAST_OFFSET_DELTA), 1);
    assert_eq!(read_i64(&batch, at::PRODUCER_ID), -1);
    assert_eq!(read_i16(&batch, at::PRODUCER_EPOCH), -1);
    assert_eq!(read_i32(&batch, at::BASE_SEQUENCE), -1);
    assert_eq!(read_i32(&batch, at::RECORD_COUNT), 2);
    assert!(stored_crc_matches(&batch));

    let records = decode(&batch);
    assert_eq!(records[0].key, None);
    assert_eq!(records[0].value, Some(Bytes::from_static(b"a")));
    assert_eq!(records[1].key, Some(Bytes::from_static(b"k")));
    assert_eq!(records[1].timestamp, 1_000);
}

#[test]
fn producer_flags_epoch_and_sequences_are_written_once_for_the_batch() {
    let batch = RecordBatchBuilder::new()
        .producer(42, 3, 7)
        .transactional(true)
        .partition_leader_epoch(0)
        .records((0..3).map(|index| TestRecord::value(format!("v{index}"))))
        .build();
    assert_eq!(read_i64(&batch, at::PRODUCER_ID), 42);
    assert_eq!(read_i16(&batch, at::PRODUCER_EPOCH), 3);
    assert_eq!(read_i32(&batch, at::BASE_SEQUENCE), 7);
    assert_eq!(read_i32(&batch, at::PARTITION_LEADER_EPOCH), 0);
    assert_eq!(read_i16(&batch, at::ATTRIBUTES), 1 << 4);
    let sequences: Vec<i32> = decode(&batch).iter().map(|r| r.sequence).collect();
    assert_eq!(sequences, vec![7, 8, 9]);
}

#[test]
fn a_marker_is_a_transactional_control_batch_with_kafkas_key_and_value() {
    for (commit, marker_type) in [(false, 0u8), (true, 1u8)] {
        let batch = RecordBatchBuilder::new()
            .producer(9, 1, 0)
            .transactional(true)
            .control(true)
            .record(TestRecord::marker(commit, 5).at(77))
            .build();
        assert_eq!(read_i16(&batch, at::ATTRIBUTES), (1 << 4) | (1 << 5));
        let records = decode(&batch);
        assert!(records[0].control);
        assert_eq!(records[0].key.as_deref(), Some(&[0, 0, 0, marker_type][..]));
        assert_eq!(records[0].value.as_deref(), Some(&[0, 0, 0, 0, 0, 5][..]));
        assert_eq!(records[0].timestamp, 77);
    }
}

#[test]
fn headers_tombstones_and_offset_gaps_survive_encoding() {
    let batch = RecordBatchBuilder::new()
        .records([
            TestRecord::keyed("k", "v")
                .header("h1", Some(b"x"))
                .header("h2", None),
            TestRecord::text(Some("k"), None),
            TestRecord::value("late").offset_delta(3),
        ])
        .build();
    assert_eq!(read_i32(&batch, at::LAST_OFFSET_DELTA), 3);
    assert_eq!(read_i32(&batch, at::RECORD_COUNT), 3);
    let records = decode(&batch);
    let headers: Vec<(String, Option<Bytes>)> = records[0]
        .headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.clone()))
        .collect();
    assert_eq!(
        headers,
        vec![
            ("h1".to_string(), Some(Bytes::from_static(b"x"))),
            ("h2".to_string(), None)
        ]
    );
    assert_eq!(records[1].value, None, "a tombstone");
    let offsets: Vec<i64> = records.iter().map(|r| r.offset).collect();
    assert_eq!(offsets, vec![0, 1, 3]);
}

#[test]
fn every_codec_round_trips() {
    let table = [
        (Compression::None, 0),
        (Compression::Gzip, 1),
        (Compression::Snappy, 2),
        (Compression::Lz4, 3),
        (Compression::Zstd, 4),
    ];
    for (compression, codec) in table {
        let batch = RecordBatchBuilder::new()
            .compression(compression)
            .records((0..20).map(|index| TestRecord::keyed("key", format!("value-{index}"))))
            .build();
        assert_eq!(
            read_i16(&batch, at::ATTRIBUTES) & 7,
            codec,
            "{compression:?}"
        );
        assert!(stored_crc_matches(&batch), "{compression:?}");
        let values: Vec<Bytes> = decode(&batch)
            .into_iter()
            .map(|r| r.value.unwrap())
            .collect();
        assert_eq!(values.len(), 20, "{compression:?}");
        assert_eq!(
            values[19],
            Bytes::from_static(b"value-19"),
            "{compression:?}"
        );
    }
}

#[test]
fn patches_change_only_their_fields_and_rewrite_crc_makes_the_crc_right_again() {
    let original = RecordBatchBuilder::new()
        .records((0..3).map(|index| TestRecord::value(format!("v{index}"))))
        .build();

    let mut counted = original.clone();
    set_record_count(&mut counted, 5);
    assert_eq!(read_i32(&counted, at::RECORD_COUNT), 5);
    assert_eq!(read_i32(&counted, at::LAST_OFFSET_DELTA), 4);
    assert!(!stored_crc_matches(&counted));
    rewrite_crc(&mut counted);
    assert!(stored_crc_matches(&counted));

    let mut recoded = original.clone();
    set_codec(&mut recoded, 6);
    assert_eq!(read_i16(&recoded, at::ATTRIBUTES), 6);
    set_codec(&mut recoded, 0);
    assert_eq!(&recoded[..], &original[..], "only the codec bits changed");

    let mut replaced = replace_records(&original, &[1, 2, 3]);
    assert_eq!(replaced.len(), at::RECORDS + 3);
    assert_eq!(
        read_i32(&replaced, at::BATCH_LENGTH) as usize,
        replaced.len() - 12
    );
    rewrite_crc(&mut replaced);
    assert!(stored_crc_matches(&replaced));
}

#[test]
#[should_panic(expected = "needs a record")]
fn an_empty_batch_is_a_bug_of_the_test() {
    RecordBatchBuilder::new().build();
}
