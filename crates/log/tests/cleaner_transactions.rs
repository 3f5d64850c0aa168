//! Log compaction of transactional data on constructed segments: aborted
//! records removed, committed ones compacted, markers removed once their
//! data is gone and their delete horizon passed, producers' newest batches
//! kept, stale aborted-transaction entries harmless, the upper bound (an open
//! transaction) untouched, and the I/O throttle.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::collections::HashMap;

use bytes::Bytes;
use common::cleaning::{compact_config, fill_updates, read_all, roll, topic_id, T0};
use common::{batch_headers, marker_batch, options, producer_batch, BatchKind, KeyedRecord};
use kafka_protocol::records::{Compression, RecordBatchDecoder};
use sluice_log::{AbortedTransaction, CleanResult, CleanerTxnInput, Log, LogConfig, Throttler};

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
    let aborted = AbortedTransaction {
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
            aborted: vec![AbortedTransaction {
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
        aborted: vec![AbortedTransaction {
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
