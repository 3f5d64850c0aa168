//! Log compaction on constructed segments: latest value per key, offsets and
//! gaps, tombstones, every codec (both snappy framings), aborted and committed
//! transactions and their markers, producers' newest batches, the upper bound,
//! the I/O throttle, dirty ratio and lags, crash leftovers.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use bytes::{Bytes, BytesMut};
use common::{
    batch_headers, decode_records, keyed_batch, marker_batch, options, producer_batch, BatchKind,
    Decoded, KeyedRecord,
};
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use sluice_log::{AbortedTxn, CleanResult, CleanerTxnInput, Log, LogConfig, LogError, Throttler};

/// Record timestamps used by the tests.
const T0: i64 = 1_000_000;

fn topic_id() -> uuid::Uuid {
    uuid::Uuid::from_u128(0xc1ea)
}

fn compact_config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        segment_ms: i64::MAX / 2,
        index_interval_bytes: 256,
        cleanup_policy_delete: false,
        cleanup_policy_compact: true,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

/// Closes the active segment (a roll by `segment.ms`), so the cleaner may
/// take everything appended so far.
fn roll(log: &Log) {
    let config = log.config();
    log.set_config(LogConfig {
        segment_ms: 0,
        ..config.clone()
    });
    log.enforce_retention(i64::MAX / 2, log.log_end_offset())
        .unwrap();
    log.set_config(config);
}

fn append(
    log: &Log,
    records: &[KeyedRecord<'_>],
    compression: Compression,
    kind: BatchKind,
) -> i64 {
    let mut batch = keyed_batch(records, compression, kind);
    log.append(&mut batch, options(0)).unwrap().base_offset
}

/// A pass with no transactions and no rate limit.
fn clean(log: &Log, now_ms: i64, upper_bound: i64) -> Result<CleanResult, LogError> {
    log.clean(
        now_ms,
        upper_bound,
        &CleanerTxnInput::default(),
        &mut Throttler::unlimited(),
    )
}

fn read_all(log: &Log) -> Bytes {
    log.read(
        log.log_start_offset(),
        log.log_end_offset(),
        usize::MAX,
        true,
    )
    .unwrap()
    .records
}

/// key → (offset, value) of the surviving records, and checks offsets increase.
fn survivors(records: &[Decoded]) -> BTreeMap<String, (i64, Option<Bytes>)> {
    assert!(
        records.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "offsets increase"
    );
    let mut out = BTreeMap::new();
    for (offset, key, value) in records {
        let key = String::from_utf8(key.clone().unwrap().to_vec()).unwrap();
        assert!(
            out.insert(key.clone(), (*offset, value.clone())).is_none(),
            "key {key} appears twice"
        );
    }
    out
}

/// 100 keys × `updates` updates in batches of 10 records; returns the
/// expected key → (offset, value) after cleaning.
fn fill_updates(
    log: &Log,
    updates: usize,
    compression: Compression,
) -> BTreeMap<String, (i64, Option<Bytes>)> {
    let mut expected = BTreeMap::new();
    for update in 0..updates {
        for chunk in 0..10 {
            let keys: Vec<String> = (0..10)
                .map(|index| format!("key-{:03}", chunk * 10 + index))
                .collect();
            let values: Vec<String> = keys
                .iter()
                .map(|key| format!("{key}-value-{update}"))
                .collect();
            let records: Vec<KeyedRecord<'_>> = keys
                .iter()
                .zip(&values)
                .map(|(key, value)| (Some(key.as_str()), Some(value.as_str()), T0 + update as i64))
                .collect();
            let base = append(log, &records, compression, BatchKind::default());
            for (index, (key, value)) in keys.iter().zip(&values).enumerate() {
                expected.insert(
                    key.clone(),
                    (base + index as i64, Some(Bytes::from(value.clone()))),
                );
            }
        }
    }
    expected
}

#[test]
fn latest_value_per_key_offsets_preserved_and_stable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), compact_config(), topic_id(), None).unwrap();
    let mut expected = fill_updates(&log, 50, Compression::None);
    // One more update of the even keys: survivors are spread, with gaps.
    let keys: Vec<String> = (0..100)
        .step_by(2)
        .map(|index| format!("key-{index:03}"))
        .collect();
    let records: Vec<KeyedRecord<'_>> = keys
        .iter()
        .map(|key| (Some(key.as_str()), Some("final"), T0 + 50))
        .collect();
    let base = append(&log, &records, Compression::None, BatchKind::default());
    for (index, key) in keys.iter().enumerate() {
        expected.insert(
            key.clone(),
            (base + index as i64, Some(Bytes::from("final"))),
        );
    }
    let end = log.log_end_offset();
    assert_eq!(end, 5050);
    roll(&log);
    let result = clean(&log, T0 + 1_000, end).unwrap();
    assert_eq!(result.records_removed, 4950);
    assert!(result.segments_cleaned > 1);
    assert!(result.bytes_written < result.bytes_read / 10);
    let bytes = read_all(&log);
    let records = decode_records(&bytes);
    assert_eq!(survivors(&records), expected);
    assert!(
        records.windows(2).any(|pair| pair[1].0 > pair[0].0 + 1),
        "gaps"
    );
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.log_start_offset(), 0);
    // Fetching at an offset that was cleaned away returns the next batch.
    let from_middle = log.read(2500, end, usize::MAX, true).unwrap().records;
    let first = decode_records(&from_middle);
    assert!(!first.is_empty() && first.iter().all(|(offset, _, _)| *offset >= 4900));
    // Nothing dirty: a second pass does nothing.
    assert_eq!(clean(&log, T0 + 1_000, end).unwrap(), Default::default());
    assert!(dir
        .path()
        .join(sluice_log::CLEANER_OFFSET_CHECKPOINT)
        .exists());
    log.close().unwrap();
    drop(log);
    for recovery_point in [None, Some(0)] {
        let log = Log::open(dir.path(), compact_config(), topic_id(), recovery_point).unwrap();
        assert_eq!(read_all(&log), bytes, "reopen with {recovery_point:?}");
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(clean(&log, T0 + 1_000, end).unwrap(), Default::default());
        log.close().unwrap();
    }
}

#[test]
fn tombstones_kept_before_delete_retention_and_removed_after() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: 1_000,
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config()
    };
    let log = Log::open(dir.path(), config, topic_id(), None).unwrap();
    let plain = BatchKind::default();
    append(
        &log,
        &[
            (Some("a"), Some("a1"), T0),
            (Some("b"), Some("b1"), T0),
            (Some("c"), Some("c1"), T0),
        ],
        Compression::None,
        plain,
    );
    append(
        &log,
        &[
            (Some("a"), None, T0 + 10),
            (Some("b"), None, T0 + 10),
            (Some("c"), Some("c2"), T0 + 10),
        ],
        Compression::None,
        plain,
    );
    append(
        &log,
        &[(None, Some("keyless"), T0 + 10)],
        Compression::None,
        plain,
    );
    roll(&log);
    // Before the horizon: tombstones stay, the values they cover go.
    let result = clean(&log, T0 + 500, log.log_end_offset()).unwrap();
    assert_eq!(result.records_removed, 3);
    let records = decode_records(&read_all(&log));
    type Summary<'a> = (i64, Option<&'a [u8]>, Option<&'a [u8]>);
    let summary: Vec<Summary<'_>> = records
        .iter()
        .map(|(offset, key, value)| (*offset, key.as_deref(), value.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (3, Some(&b"a"[..]), None),
            (4, Some(&b"b"[..]), None),
            (5, Some(&b"c"[..]), Some(&b"c2"[..])),
            (6, None, Some(&b"keyless"[..])),
        ]
    );
    // New dirty data, a pass after the horizon: the tombstones go.
    append(
        &log,
        &[
            (Some("d"), Some("d1"), T0 + 20),
            (Some("d"), Some("d2"), T0 + 20),
        ],
        Compression::None,
        plain,
    );
    roll(&log);
    let result = clean(&log, T0 + 10 + 1_001, log.log_end_offset()).unwrap();
    assert_eq!(result.records_removed, 3);
    let records = decode_records(&read_all(&log));
    let offsets: Vec<i64> = records.iter().map(|record| record.0).collect();
    assert_eq!(offsets, vec![5, 6, 8]);
}

#[test]
fn tombstones_past_the_horizon_go_in_the_first_pass() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), compact_config(), topic_id(), None).unwrap();
    append(
        &log,
        &[(Some("a"), Some("a1"), T0), (Some("a"), None, T0)],
        Compression::None,
        BatchKind::default(),
    );
    append(
        &log,
        &[(Some("b"), Some("b1"), T0)],
        Compression::None,
        BatchKind::default(),
    );
    roll(&log);
    let day = LogConfig::default().delete_retention_ms;
    clean(&log, T0 + day + 1, log.log_end_offset()).unwrap();
    let records = decode_records(&read_all(&log));
    assert_eq!(
        records.iter().map(|record| record.0).collect::<Vec<_>>(),
        vec![2]
    );
    // The first batch lost every record and is dropped; the last one stays.
    let headers = batch_headers(&read_all(&log));
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].base_offset, 2);
}

/// Rebuilds an uncompressed batch as snappy-compressed by hand: xerial
/// framing with `block_bytes` blocks, or raw snappy.
fn hand_made_snappy(uncompressed: &[u8], xerial: Option<usize>) -> BytesMut {
    let section = &uncompressed[61..];
    let payload = match xerial {
        Some(block_bytes) => {
            let mut framed = b"\x82SNAPPY\x00".to_vec();
            framed.extend_from_slice(&1i32.to_be_bytes());
            framed.extend_from_slice(&1i32.to_be_bytes());
            for block in section.chunks(block_bytes) {
                let compressed = snap::raw::Encoder::new().compress_vec(block).unwrap();
                framed.extend_from_slice(&(compressed.len() as i32).to_be_bytes());
                framed.extend_from_slice(&compressed);
            }
            framed
        }
        None => snap::raw::Encoder::new().compress_vec(section).unwrap(),
    };
    let mut batch = BytesMut::from(&uncompressed[..61]);
    batch.extend_from_slice(&payload);
    let length = (batch.len() - 12) as i32;
    batch[8..12].copy_from_slice(&length.to_be_bytes());
    let attributes = i16::from_be_bytes([batch[21], batch[22]]) | 2;
    batch[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&batch[21..]);
    batch[17..21].copy_from_slice(&crc.to_be_bytes());
    batch
}

#[test]
fn every_codec_is_decoded_and_rewritten_with_itself() {
    // (name, codec for the encoder, hand-made snappy framing)
    type Case = (&'static str, Compression, Option<Option<usize>>);
    let cases: Vec<Case> = vec![
        ("none", Compression::None, None),
        ("gzip", Compression::Gzip, None),
        ("snappy (kafka-protocol, xerial)", Compression::Snappy, None),
        (
            "snappy xerial by hand, 2+ blocks",
            Compression::None,
            Some(Some(64)),
        ),
        ("snappy raw by hand", Compression::None, Some(None)),
        ("lz4", Compression::Lz4, None),
        ("zstd", Compression::Zstd, None),
    ];
    for (name, compression, hand_made) in cases {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), compact_config(), topic_id(), None).unwrap();
        let mut expected = BTreeMap::new();
        for round in 0..20 {
            let keys: Vec<String> = (0..5)
                .map(|index| format!("k{}", (round * 5 + index) % 12))
                .collect();
            let values: Vec<String> = keys
                .iter()
                .map(|key| format!("{key}-{round}-{}", "v".repeat(30)))
                .collect();
            let records: Vec<KeyedRecord<'_>> = keys
                .iter()
                .zip(&values)
                .map(|(key, value)| (Some(key.as_str()), Some(value.as_str()), T0))
                .collect();
            let mut batch = keyed_batch(&records, compression, BatchKind::default());
            if let Some(framing) = hand_made {
                batch = hand_made_snappy(&batch, framing);
            }
            let base = log.append(&mut batch, options(0)).unwrap().base_offset;
            for (index, (key, value)) in keys.iter().zip(&values).enumerate() {
                expected.insert(
                    key.clone(),
                    (base + index as i64, Some(Bytes::from(value.clone()))),
                );
            }
        }
        let before: Vec<bool> = xerial_framing(&read_all(&log));
        roll(&log);
        let result = clean(&log, T0, log.log_end_offset()).unwrap();
        assert_eq!(result.records_removed, 100 - 12, "{name}");
        let bytes = read_all(&log);
        assert_eq!(survivors(&decode_records(&bytes)), expected, "{name}");
        let codec = if hand_made.is_some() {
            2
        } else {
            compression as u8
        };
        for header in batch_headers(&bytes)
            .iter()
            .filter(|header| header.record_count > 0)
        {
            assert_eq!(header.compression(), codec, "{name}");
        }
        if codec == 2 {
            let after = xerial_framing(&bytes);
            assert!(
                after.iter().all(|xerial| *xerial == before[0]),
                "{name}: framing kept"
            );
        }
    }
}

/// For each snappy batch in `bytes`: whether its payload is xerial-framed.
fn xerial_framing(bytes: &[u8]) -> Vec<bool> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let header = sluice_log::batch::parse_header(rest).unwrap();
        if header.compression() == 2 {
            out.push(rest[61..].starts_with(b"\x82SNAPPY\x00"));
        }
        rest = &rest[header.total_bytes()..];
    }
    out
}

/// Producer ids of the transaction tests.
const COMMITTER: i64 = 10;
const ABORTER: i64 = 11;

const TRANSACTIONAL: BatchKind = BatchKind {
    transactional: true,
    control: false,
};

/// Appends a batch of `producer_id` (-1: none); returns its base offset.
fn append_from(log: &Log, records: &[KeyedRecord<'_>], kind: BatchKind, producer_id: i64) -> i64 {
    let mut batch = producer_batch(records, Compression::None, kind, producer_id);
    log.append(&mut batch, options(0)).unwrap().base_offset
}

/// Appends a COMMIT or ABORT marker stamped T0; returns its offset.
fn append_marker(log: &Log, producer_id: i64, commit: bool) -> i64 {
    let mut batch = marker_batch(producer_id, commit, T0);
    log.append(&mut batch, options(0)).unwrap().base_offset
}

/// Every record as (offset, "key=value"), "key=-" for a tombstone, "COMMIT"
/// or "ABORT" for a marker.
fn contents(log: &Log) -> Vec<(i64, String)> {
    let text = |bytes: &Bytes| String::from_utf8_lossy(bytes).into_owned();
    let mut buffer = read_all(log);
    RecordBatchDecoder::decode_all(&mut buffer)
        .unwrap()
        .into_iter()
        .flat_map(|set| set.records)
        .map(|record| {
            let shown = match (record.control, record.key.as_deref()) {
                (true, Some([0, 0, 0, 0])) => "ABORT".to_string(),
                (true, Some([0, 0, 0, 1])) => "COMMIT".to_string(),
                (true, other) => format!("control {other:?}"),
                (false, _) => format!(
                    "{}={}",
                    record.key.as_ref().map_or("<none>".to_string(), text),
                    record.value.as_ref().map_or("-".to_string(), text)
                ),
            };
            (record.offset, shown)
        })
        .collect()
}

fn expect(records: &[(i64, &str)]) -> Vec<(i64, String)> {
    records
        .iter()
        .map(|(offset, shown)| (*offset, shown.to_string()))
        .collect()
}

/// (base offset, record count, producer id) of every batch.
fn batches(log: &Log) -> Vec<(i64, i32, i64)> {
    batch_headers(&read_all(log))
        .iter()
        .map(|header| (header.base_offset, header.record_count, header.producer_id))
        .collect()
}

fn clean_with(log: &Log, now_ms: i64, input: &CleanerTxnInput) -> CleanResult {
    log.clean(
        now_ms,
        log.log_end_offset(),
        input,
        &mut Throttler::unlimited(),
    )
    .unwrap()
}

#[test]
fn aborted_data_goes_committed_data_compacts_and_markers_outlive_their_data() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: 1_000,
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config()
    };
    let log = Log::open(dir.path(), config.clone(), topic_id(), None).unwrap();
    let plain = BatchKind::default();
    append_from(
        &log,
        &[
            (Some("a"), Some("a0"), T0),
            (Some("b"), Some("b0"), T0),
            (Some("c"), Some("c0"), T0),
        ],
        plain,
        -1,
    ); // 0..=2
    append_from(
        &log,
        &[(Some("a"), Some("a-commit"), T0)],
        TRANSACTIONAL,
        COMMITTER,
    ); // 3
    append_from(
        &log,
        &[
            (Some("b"), Some("b-abort"), T0),
            (Some("c"), Some("c-abort"), T0),
        ],
        TRANSACTIONAL,
        ABORTER,
    ); // 4, 5
    append_from(&log, &[(Some("c"), Some("c1"), T0)], plain, -1); // 6
    append_from(
        &log,
        &[(Some("a"), Some("a-abort"), T0)],
        TRANSACTIONAL,
        ABORTER,
    ); // 7
    assert_eq!(append_marker(&log, COMMITTER, true), 8);
    assert_eq!(append_marker(&log, ABORTER, false), 9);
    append_from(&log, &[(Some("d"), Some("d0"), T0)], plain, -1); // 10
    roll(&log);
    let aborted = AbortedTxn {
        producer_id: ABORTER,
        first_offset: 4,
        last_offset: 9,
    };
    let input = CleanerTxnInput {
        aborted: vec![aborted],
        last_batch_offsets: HashMap::new(),
    };
    let past_horizon = T0 + 10_000;

    // Pass 1, past the markers' delete horizon: the aborted records go
    // (superseding nothing: b0 stays), the committed one supersedes a0 like
    // any record, and both markers stay: their transactions' data was seen.
    let result = clean_with(&log, past_horizon, &input);
    assert_eq!(
        contents(&log),
        expect(&[
            (1, "b=b0"),
            (3, "a=a-commit"),
            (6, "c=c1"),
            (8, "COMMIT"),
            (9, "ABORT"),
            (10, "d=d0"),
        ])
    );
    assert_eq!((result.records_removed, result.markers_removed), (5, 0));
    assert!(result.aborted_transactions_removed.is_empty());
    let headers = batch_headers(&read_all(&log));
    assert!(headers[1].is_transactional() && !headers[1].is_control());
    assert_eq!(
        (headers[1].producer_id, headers[1].producer_epoch),
        (COMMITTER, 1)
    );

    // Pass 2, before the delete horizon: a later plain record supersedes the
    // committed one; the markers' data is gone (the COMMIT's batch was still
    // read in this pass), but the horizon keeps both.
    log.set_config(LogConfig {
        delete_retention_ms: 86_400_000,
        ..config.clone()
    });
    append_from(&log, &[(Some("a"), Some("a2"), T0)], plain, -1); // 11
    roll(&log);
    let result = clean_with(&log, past_horizon, &input);
    assert_eq!(
        contents(&log),
        expect(&[
            (1, "b=b0"),
            (6, "c=c1"),
            (8, "COMMIT"),
            (9, "ABORT"),
            (10, "d=d0"),
            (11, "a=a2"),
        ])
    );
    assert_eq!((result.records_removed, result.markers_removed), (1, 0));
    assert!(result.aborted_transactions_removed.is_empty());

    // Pass 3, past the horizon, no data of either transaction left: the
    // markers go, and the aborted transaction is reported for the broker to
    // forget.
    log.set_config(config);
    append_from(&log, &[(Some("e"), Some("e0"), T0)], plain, -1); // 12
    roll(&log);
    let result = clean_with(&log, past_horizon, &input);
    assert_eq!(
        contents(&log),
        expect(&[
            (1, "b=b0"),
            (6, "c=c1"),
            (10, "d=d0"),
            (11, "a=a2"),
            (12, "e=e0"),
        ])
    );
    assert_eq!((result.records_removed, result.markers_removed), (0, 2));
    assert_eq!(result.aborted_transactions_removed, vec![aborted]);
    assert_eq!(log.log_end_offset(), 13);
}

#[test]
fn the_newest_batch_of_a_tracked_producer_stays_as_an_empty_batch() {
    let idempotent = 20;
    let aborter = 21;
    // (newest batch per producer, expected (base offset, records, producer))
    type Case = (Vec<(i64, i64)>, Vec<(i64, i32, i64)>);
    let cases: Vec<Case> = vec![
        (vec![], vec![(2, 1, aborter), (3, 1, -1), (4, 1, -1)]),
        (
            vec![(idempotent, 0), (aborter, 1)],
            vec![
                (0, 0, idempotent),
                (1, 0, aborter),
                (2, 1, aborter),
                (3, 1, -1),
                (4, 1, -1),
            ],
        ),
        // A newer batch than any in the cleaned range: nothing to keep.
        (
            vec![(idempotent, 5)],
            vec![(2, 1, aborter), (3, 1, -1), (4, 1, -1)],
        ),
    ];
    for (newest, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), compact_config(), topic_id(), None).unwrap();
        append_from(
            &log,
            &[(Some("a"), Some("a0"), T0)],
            BatchKind::default(),
            idempotent,
        ); // 0
        append_from(
            &log,
            &[(Some("b"), Some("b-abort"), T0)],
            TRANSACTIONAL,
            aborter,
        ); // 1
        append_marker(&log, aborter, false); // 2
        append_from(
            &log,
            &[(Some("a"), Some("a1"), T0)],
            BatchKind::default(),
            -1,
        ); // 3
        append_from(
            &log,
            &[(Some("z"), Some("z"), T0)],
            BatchKind::default(),
            -1,
        ); // 4
        roll(&log);
        let input = CleanerTxnInput {
            aborted: vec![AbortedTxn {
                producer_id: aborter,
                first_offset: 1,
                last_offset: 2,
            }],
            last_batch_offsets: newest.iter().copied().collect(),
        };
        let result = clean_with(&log, T0, &input);
        assert_eq!(result.records_removed, 2, "{newest:?}");
        assert_eq!(batches(&log), expected, "{newest:?}");
        // The kept empty batches still carry the producer's sequence.
        for header in batch_headers(&read_all(&log))
            .iter()
            .filter(|header| header.record_count == 0)
        {
            assert_eq!((header.producer_epoch, header.base_sequence), (1, 0));
        }
    }
}

#[test]
fn an_aborted_transaction_listed_after_its_marker_went_takes_nothing_later() {
    // The broker's list can still hold a transaction whose data and marker
    // an earlier pass removed (a crash before the producer state was saved).
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), compact_config(), topic_id(), None).unwrap();
    append_from(
        &log,
        &[(Some("x"), Some("x0"), T0)],
        BatchKind::default(),
        -1,
    ); // 0
    append_from(
        &log,
        &[(Some("a"), Some("a-commit"), T0)],
        TRANSACTIONAL,
        COMMITTER,
    ); // 1
    append_marker(&log, COMMITTER, true); // 2
    append_from(
        &log,
        &[(Some("z"), Some("z0"), T0)],
        BatchKind::default(),
        -1,
    ); // 3
    roll(&log);
    let stale = CleanerTxnInput {
        aborted: vec![AbortedTxn {
            producer_id: COMMITTER,
            first_offset: 0,
            last_offset: 0,
        }],
        last_batch_offsets: HashMap::new(),
    };
    let result = clean_with(&log, T0, &stale);
    assert_eq!(
        contents(&log),
        expect(&[(0, "x=x0"), (1, "a=a-commit"), (2, "COMMIT"), (3, "z=z0")])
    );
    assert_eq!(result.aborted_transactions_removed, stale.aborted);
}

#[test]
fn an_empty_batch_left_by_an_earlier_pass_pins_no_marker() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: 1_000,
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config()
    };
    let log = Log::open(dir.path(), config.clone(), topic_id(), None).unwrap();
    append_from(
        &log,
        &[(Some("a"), Some("a-commit"), T0)],
        TRANSACTIONAL,
        COMMITTER,
    ); // 0
    roll(&log);
    append_marker(&log, COMMITTER, true); // 1
    roll(&log);
    append_from(
        &log,
        &[(Some("a"), Some("a1"), T0)],
        BatchKind::default(),
        -1,
    ); // 2
    roll(&log);
    // Every segment its own group: each group's last batch stays.
    log.set_config(LogConfig {
        segment_bytes: 100,
        ..config
    });
    let past_horizon = T0 + 10_000;
    let input = CleanerTxnInput::default();
    // Pass 1: the committed record is superseded; its batch stays, empty, as
    // the last of its group, and the marker stays: its data was seen.
    clean_with(&log, past_horizon, &input);
    assert_eq!(contents(&log), expect(&[(1, "COMMIT"), (2, "a=a1")]));
    assert_eq!(
        batches(&log),
        vec![(0, 0, COMMITTER), (1, 1, COMMITTER), (2, 1, -1)]
    );
    // Pass 2: the empty batch holds no data of the transaction, so the
    // marker goes (left as an empty batch: the last of its group).
    append_from(
        &log,
        &[(Some("b"), Some("b0"), T0)],
        BatchKind::default(),
        -1,
    ); // 3
    roll(&log);
    let result = clean_with(&log, past_horizon, &input);
    assert_eq!(result.markers_removed, 1);
    assert_eq!(contents(&log), expect(&[(2, "a=a1"), (3, "b=b0")]));
    assert_eq!(
        batches(&log),
        vec![(0, 0, COMMITTER), (1, 0, COMMITTER), (2, 1, -1), (3, 1, -1)]
    );
}

#[test]
fn nothing_at_or_above_the_upper_bound_is_cleaned() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config()
    };
    let log = Log::open(dir.path(), config, topic_id(), None).unwrap();
    append_from(
        &log,
        &[(Some("a"), Some("a0"), T0)],
        BatchKind::default(),
        -1,
    ); // 0
    roll(&log);
    append_from(
        &log,
        &[(Some("a"), Some("a1"), T0)],
        BatchKind::default(),
        -1,
    ); // 1
    let open = append_from(&log, &[(Some("a"), Some("a-open"), T0)], TRANSACTIONAL, 30); // 2
    roll(&log);
    append_from(
        &log,
        &[(Some("b"), Some("b0"), T0)],
        BatchKind::default(),
        -1,
    ); // 3
    roll(&log);
    let before = contents(&log);
    // The broker passes the first offset of the open transaction: only the
    // first segment lies wholly below it, and a0 is the latest of a there.
    let result = log
        .clean(
            T0,
            open,
            &CleanerTxnInput::default(),
            &mut Throttler::unlimited(),
        )
        .unwrap();
    assert_eq!(result.records_removed, 0);
    assert_eq!(contents(&log), before);
    // Once the transaction is committed and the bound passes it, its record
    // supersedes the older ones.
    let result = clean_with(&log, T0, &CleanerTxnInput::default());
    assert_eq!(result.records_removed, 2);
    assert_eq!(contents(&log), expect(&[(2, "a=a-open"), (3, "b=b0")]));
}

#[test]
fn the_throttle_slows_a_pass_and_changes_nothing_else() {
    const RATE: f64 = 1_000_000.0;
    let throttled_dir = tempfile::tempdir().unwrap();
    let free_dir = tempfile::tempdir().unwrap();
    let mut cleaned = Vec::new();
    for (dir, rate) in [(&throttled_dir, Some(RATE)), (&free_dir, None)] {
        let log = Log::open(dir.path(), compact_config(), topic_id(), None).unwrap();
        fill_updates(&log, 150, Compression::None);
        roll(&log);
        let mut throttler = rate.map_or_else(Throttler::unlimited, Throttler::new);
        let started = std::time::Instant::now();
        let result = log
            .clean(
                T0 + 1_000,
                log.log_end_offset(),
                &CleanerTxnInput::default(),
                &mut throttler,
            )
            .unwrap();
        let elapsed = started.elapsed();
        let moved = result.bytes_read + result.bytes_written;
        if let Some(rate) = rate {
            assert!(moved > 1_000_000, "enough I/O to throttle: {moved} bytes");
            // At most one check interval (0.1 s of I/O) goes unpaced.
            let floor = std::time::Duration::from_secs_f64((moved - 100_000) as f64 / rate);
            assert!(
                elapsed >= floor && throttler.throttled() > std::time::Duration::ZERO,
                "{moved} bytes at {rate} B/s took {elapsed:?} (slept {:?})",
                throttler.throttled()
            );
        } else {
            assert_eq!(throttler.throttled(), std::time::Duration::ZERO);
        }
        cleaned.push((result, read_all(&log)));
    }
    assert_eq!(
        cleaned[0], cleaned[1],
        "the same result and bytes either way"
    );
}

#[test]
fn dirty_ratio_and_compaction_lags_decide_whether_cleaning_runs() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), compact_config(), topic_id(), None).unwrap();
    fill_updates(&log, 10, Compression::None);
    roll(&log);
    // Younger than min.compaction.lag.ms: nothing is cleanable yet.
    log.set_config(LogConfig {
        min_compaction_lag_ms: 1_000,
        ..compact_config()
    });
    assert_eq!(
        clean(&log, T0 + 500, log.log_end_offset()).unwrap(),
        Default::default()
    );
    // Above the high watermark: not cleanable either.
    log.set_config(compact_config());
    assert_eq!(clean(&log, T0 + 500, 0).unwrap(), Default::default());
    assert!(
        clean(&log, T0 + 500, log.log_end_offset())
            .unwrap()
            .records_removed
            > 0
    );
    // A little new dirty data: under the 0.5 ratio, nothing happens...
    append(
        &log,
        &[(Some("key-000"), Some("late"), T0 + 100)],
        Compression::None,
        BatchKind::default(),
    );
    roll(&log);
    assert_eq!(
        clean(&log, T0 + 500, log.log_end_offset()).unwrap(),
        Default::default()
    );
    // ...unless max.compaction.lag.ms has passed for the first dirty batch.
    log.set_config(LogConfig {
        max_compaction_lag_ms: 300,
        ..compact_config()
    });
    assert_eq!(
        clean(&log, T0 + 500, log.log_end_offset())
            .unwrap()
            .records_removed,
        1
    );
    // Not compacted by policy: nothing.
    log.set_config(LogConfig {
        cleanup_policy_compact: false,
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config()
    });
    append(
        &log,
        &[(Some("key-000"), Some("later"), T0 + 100)],
        Compression::None,
        BatchKind::default(),
    );
    roll(&log);
    assert_eq!(
        clean(&log, T0 + 500, log.log_end_offset()).unwrap(),
        Default::default()
    );
}

/// Two identical logs in `a` and `b` with many closed segments; returns the
/// end offset.
fn twin_logs(a: &Path, b: &Path) -> i64 {
    let mut end = 0;
    for dir in [a, b] {
        let log = Log::open(dir, compact_config(), topic_id(), None).unwrap();
        fill_updates(&log, 8, Compression::Lz4);
        roll(&log);
        end = log.log_end_offset();
        log.close().unwrap();
    }
    end
}

fn log_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".log"))
        .collect();
    names.sort();
    names
}

#[test]
fn crash_leaves_cleaned_or_swap_files_and_open_settles_them() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let end = twin_logs(a.path(), b.path());
    let original = {
        let log = Log::open(a.path(), compact_config(), topic_id(), None).unwrap();
        let bytes = read_all(&log);
        log.close().unwrap();
        bytes
    };
    assert!(log_names(a.path()).len() > 3);
    // Clean b, merging every closed segment into one (bigger segment.bytes).
    let cleaned = {
        let config = LogConfig {
            segment_bytes: 1 << 20,
            ..compact_config()
        };
        let log = Log::open(b.path(), config, topic_id(), None).unwrap();
        let result = clean(&log, T0 + 100, end).unwrap();
        assert_eq!(result.segments_cleaned, log_names(a.path()).len() - 1);
        let bytes = read_all(&log);
        log.close().unwrap();
        bytes
    };
    assert_eq!(log_names(b.path()).len(), 2);
    let cleaned_segment = std::fs::read(b.path().join("00000000000000000000.log")).unwrap();

    // Crash before the swap: a `.cleaned` output next to the originals.
    std::fs::write(
        a.path().join("00000000000000000000.log.cleaned"),
        &cleaned_segment,
    )
    .unwrap();
    std::fs::write(a.path().join("00000000000000000000.index.cleaned"), b"junk").unwrap();
    let log = Log::open(a.path(), compact_config(), topic_id(), Some(0)).unwrap();
    assert_eq!(read_all(&log), original, "cleaned files discarded");
    assert!(log_names(a.path())
        .iter()
        .all(|name| !name.ends_with(".cleaned")));
    log.close().unwrap();
    drop(log);

    // Crash mid-swap: the swap file is there, the first two originals were
    // already renamed to `.deleted`, the others not.
    std::fs::write(
        a.path().join("00000000000000000000.log.swap"),
        &cleaned_segment,
    )
    .unwrap();
    std::fs::write(a.path().join("00000000000000000000.index.swap"), b"").unwrap();
    let originals = log_names(a.path());
    for name in originals
        .iter()
        .filter(|name| name.ends_with(".log"))
        .take(2)
    {
        std::fs::rename(
            a.path().join(name),
            a.path().join(format!("{name}.deleted")),
        )
        .unwrap();
    }
    let log = Log::open(a.path(), compact_config(), topic_id(), Some(0)).unwrap();
    assert_eq!(read_all(&log), cleaned, "swap completed");
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log_names(a.path()), log_names(b.path()));
    // Every offset is readable: a fetch at each one returns its batch.
    for offset in (0..end).step_by(97) {
        let read = log.read(offset, end, 1, true).unwrap().records;
        let header = sluice_log::batch::parse_header(&read).unwrap();
        assert!(header.last_offset() >= offset);
    }
    log.close().unwrap();
}

#[test]
fn readers_during_cleaning_see_whole_consistent_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log =
        std::sync::Arc::new(Log::open(dir.path(), compact_config(), topic_id(), None).unwrap());
    let expected = fill_updates(&log, 30, Compression::Zstd);
    roll(&log);
    let end = log.log_end_offset();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) || reads == 0 {
                let records = decode_records(&read_all(&log));
                let latest = survivors_last(&records);
                assert_eq!(latest.len(), 100);
                reads += 1;
            }
            reads
        })
    };
    clean(&log, T0 + 100, end).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(survivors(&decode_records(&read_all(&log))), expected);
}

/// Latest record per key (duplicates allowed: before cleaning).
fn survivors_last(records: &[Decoded]) -> BTreeMap<Bytes, i64> {
    assert!(
        records.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "offsets increase"
    );
    records
        .iter()
        .map(|(offset, key, _)| (key.clone().unwrap(), *offset))
        .collect()
}
