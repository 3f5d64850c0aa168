//! Retention, the log start offset and DeleteRecords at the `Log` boundary.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::{batch_with, options, record_values};
use kafka_protocol::records::Compression;
use sluice_log::{Log, LogConfig, LogError};

const HOUR_MS: i64 = 3600 * 1000;
/// "Now" for the tests: far after the old timestamps used.
const NOW_MS: i64 = 1_000 * HOUR_MS;

fn topic_id() -> uuid::Uuid {
    uuid::Uuid::from_u128(0xbeef)
}

/// About one batch per segment (batches are ~130 bytes).
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 200,
        segment_ms: i64::MAX / 2,
        index_interval_bytes: 64,
        file_delete_delay_ms: 1_000,
        ..LogConfig::default()
    }
}

fn files_with_suffix(dir: &std::path::Path, suffix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(suffix))
        .collect();
    names.sort();
    names
}

/// Appends one 3-record batch per timestamp; returns the base offsets.
fn append_at(log: &Log, timestamps: &[i64]) -> Vec<i64> {
    timestamps
        .iter()
        .enumerate()
        .map(|(tag, timestamp)| {
            let mut batch = batch_with(&[*timestamp; 3], 40, Compression::None, 10 + tag as u64);
            log.append(&mut batch, options(0)).unwrap().base_offset
        })
        .collect()
}

fn assert_out_of_range(log: &Log, offset: i64) {
    match log.read(offset, log.log_end_offset(), usize::MAX, true) {
        Err(LogError::OffsetOutOfRange { .. }) => {}
        other => panic!("read at {offset}: expected OffsetOutOfRange, got {other:?}"),
    }
}

#[test]
fn time_retention_deletes_old_closed_segments_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), topic_id(), None).unwrap();
    let old = NOW_MS - 10 * HOUR_MS;
    let young = NOW_MS - HOUR_MS / 2;
    let bases = append_at(&log, &[old, old, old, young, young]);
    assert_eq!(files_with_suffix(dir.path(), ".log").len(), 5);
    let mut retention = config();
    retention.retention_ms = HOUR_MS;
    log.set_config(retention);
    let result = log.enforce_retention(NOW_MS, log.log_end_offset()).unwrap();
    assert_eq!(result.segments_deleted, 3);
    assert_eq!(result.log_start_offset, bases[3]);
    assert_eq!(log.log_start_offset(), bases[3]);
    assert!(result.bytes_deleted > 0);
    assert_out_of_range(&log, 0);
    assert_out_of_range(&log, bases[3] - 1);
    let remaining = record_values(
        &log.read(bases[3], log.log_end_offset(), usize::MAX, true)
            .unwrap()
            .records,
    );
    assert_eq!(remaining.first().unwrap().0, bases[3]);
    assert_eq!(remaining.len(), 6);
    // Renamed, not yet removed; then removed once the delay has passed.
    assert_eq!(files_with_suffix(dir.path(), ".log").len(), 2);
    assert_eq!(files_with_suffix(dir.path(), ".log.deleted").len(), 3);
    assert_eq!(log.delete_expired_files(NOW_MS + 999).unwrap(), 0);
    assert_eq!(log.delete_expired_files(NOW_MS + 1_000).unwrap(), 9);
    assert!(files_with_suffix(dir.path(), ".deleted").is_empty());
    // A second check deletes nothing more.
    let again = log.enforce_retention(NOW_MS, log.log_end_offset()).unwrap();
    assert_eq!(again.segments_deleted, 0);
}

#[test]
fn retention_never_deletes_the_active_segment_or_above_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let mut retention = config();
    retention.retention_ms = HOUR_MS;
    retention.retention_bytes = 0;
    let log = Log::open(dir.path(), retention, topic_id(), None).unwrap();
    let old = NOW_MS - 10 * HOUR_MS;
    let bases = append_at(&log, &[old, old, old, old]);
    // High watermark inside the third segment: only the first two may go,
    // and the active segment is not rolled (it is above the high watermark).
    let result = log.enforce_retention(NOW_MS, bases[2] + 1).unwrap();
    assert_eq!(result.segments_deleted, 2);
    assert_eq!(log.log_start_offset(), bases[2]);
    // Everything below the high watermark: the active segment is rolled first
    // (time retention applies to it), then deleted as a closed segment; the
    // new active segment stays, empty.
    let result = log.enforce_retention(NOW_MS, log.log_end_offset()).unwrap();
    assert_eq!(result.segments_deleted, 2);
    assert_eq!(log.log_start_offset(), log.log_end_offset());
    assert_eq!(files_with_suffix(dir.path(), ".log").len(), 1);
    let read = log
        .read(log.log_end_offset(), log.log_end_offset(), usize::MAX, true)
        .unwrap();
    assert!(read.records.is_empty());
    // Appends continue at the log end.
    let next = append_at(&log, &[NOW_MS]);
    assert_eq!(next[0], bases[3] + 3);
}

#[test]
fn size_retention_keeps_the_log_at_or_above_retention_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), topic_id(), None).unwrap();
    let timestamps = vec![NOW_MS; 20];
    append_at(&log, &timestamps);
    let segment_bytes = std::fs::metadata(dir.path().join("00000000000000000000.log"))
        .unwrap()
        .len();
    let total = |dir: &std::path::Path| -> u64 {
        files_with_suffix(dir, ".log")
            .iter()
            .map(|name| std::fs::metadata(dir.join(name)).unwrap().len())
            .sum()
    };
    assert_eq!(total(dir.path()), 20 * segment_bytes);
    let retention_bytes = 5 * segment_bytes + segment_bytes / 2;
    let mut retention = config();
    retention.retention_bytes = retention_bytes as i64;
    log.set_config(retention);
    let result = log.enforce_retention(NOW_MS, log.log_end_offset()).unwrap();
    // 20 segments of equal size, limit 5.5 segments: 14 go, 6 stay.
    assert_eq!(result.segments_deleted, 14);
    assert_eq!(result.bytes_deleted, 14 * segment_bytes);
    assert_eq!(total(dir.path()), 6 * segment_bytes);
    assert!(total(dir.path()) >= retention_bytes);
    assert_eq!(log.log_start_offset(), 14 * 3);
    // With delete not in the policy, nothing goes.
    let dir = tempfile::tempdir().unwrap();
    let mut compact_only = config();
    compact_only.retention_bytes = 0;
    compact_only.retention_ms = 0;
    compact_only.cleanup_policy_delete = false;
    compact_only.cleanup_policy_compact = true;
    let log = Log::open(dir.path(), compact_only, topic_id(), None).unwrap();
    append_at(&log, &[1, 1, 1]);
    let result = log.enforce_retention(NOW_MS, log.log_end_offset()).unwrap();
    assert_eq!(result.segments_deleted, 0);
    assert_eq!(log.log_start_offset(), 0);
}

#[test]
fn delete_records_moves_the_start_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), topic_id(), None).unwrap();
    let bases = append_at(&log, &[NOW_MS; 4]); // offsets 0..=11, 3 per segment
    let high_watermark = 9;
    // (offset, expected result)
    let cases: Vec<(i64, Result<i64, ()>)> = vec![
        (10, Err(())), // above the high watermark
        (-2, Err(())),
        (0, Ok(0)),
        (4, Ok(4)), // inside the second segment
        (2, Ok(4)), // below the current start: nothing changes
        (9, Ok(9)), // up to the high watermark
    ];
    for (offset, expected) in cases {
        let got = log.delete_records_before(offset, high_watermark);
        match (got, expected) {
            (Ok(start), Ok(wanted)) => assert_eq!(start, wanted, "offset {offset}"),
            (Err(LogError::OffsetOutOfRange { .. }), Err(())) => {}
            (got, expected) => panic!("offset {offset}: got {got:?}, expected {expected:?}"),
        }
    }
    assert_eq!(log.log_start_offset(), 9);
    assert_out_of_range(&log, 8);
    let read = log.read(9, 12, usize::MAX, true).unwrap();
    // The batch holding 9 starts at 9 (batches are 3 records).
    assert_eq!(record_values(&read.records).first().unwrap().0, bases[3]);
    // Segments wholly below 9 were removed; the one holding 9 stays.
    assert_eq!(files_with_suffix(dir.path(), ".log").len(), 1);
    assert_eq!(files_with_suffix(dir.path(), ".log.deleted").len(), 3);
    // The start offset inside a segment is returned by appends too.
    let info = log
        .append(
            &mut batch_with(&[NOW_MS], 10, Compression::None, 9),
            options(0),
        )
        .unwrap();
    assert_eq!(info.log_start_offset, 9);
}

#[test]
fn start_offset_survives_reopen_when_passed_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), config(), topic_id(), None).unwrap();
    append_at(&log, &[NOW_MS; 3]); // 0..=8
    assert_eq!(log.delete_records_before(4, 9).unwrap(), 4);
    log.close().unwrap();
    drop(log);
    assert!(
        files_with_suffix(dir.path(), ".deleted").is_empty(),
        "close removes deleted files"
    );
    // Passed back: restored inside the segment.
    let log = Log::open_with_start(dir.path(), config(), topic_id(), None, Some(4)).unwrap();
    assert_eq!(log.log_start_offset(), 4);
    assert_out_of_range(&log, 3);
    log.close().unwrap();
    drop(log);
    // Not passed back: the first segment's base.
    let log = Log::open(dir.path(), config(), topic_id(), None).unwrap();
    assert_eq!(log.log_start_offset(), 3);
    log.close().unwrap();
    drop(log);
    // A stored start below the first segment is raised to it; one after a
    // crash that lost data (above the log end) restarts the log there.
    let log = Log::open_with_start(dir.path(), config(), topic_id(), Some(0), Some(1)).unwrap();
    assert_eq!(log.log_start_offset(), 3);
    log.close().unwrap();
    drop(log);
    let log = Log::open_with_start(dir.path(), config(), topic_id(), Some(0), Some(20)).unwrap();
    assert_eq!(log.log_start_offset(), 20);
    assert_eq!(log.log_end_offset(), 20);
    let info = log
        .append(
            &mut batch_with(&[NOW_MS], 10, Compression::None, 1),
            options(0),
        )
        .unwrap();
    assert_eq!(info.base_offset, 20);
}

#[test]
fn leftover_deleted_files_are_removed_at_open_and_truncation_lowers_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut retention = config();
    retention.retention_ms = HOUR_MS;
    retention.file_delete_delay_ms = i64::MAX / 2;
    let log = Log::open(dir.path(), retention.clone(), topic_id(), None).unwrap();
    append_at(&log, &[1, 1, NOW_MS, NOW_MS]);
    log.enforce_retention(NOW_MS, log.log_end_offset()).unwrap();
    assert_eq!(log.log_start_offset(), 6);
    log.flush().unwrap();
    drop(log); // a crash: no close, deleted files stay
    assert_eq!(files_with_suffix(dir.path(), ".log.deleted").len(), 2);
    let log = Log::open_with_start(dir.path(), retention, topic_id(), Some(0), Some(7)).unwrap();
    assert!(files_with_suffix(dir.path(), ".deleted").is_empty());
    assert_eq!(log.log_start_offset(), 7);
    log.truncate_to(6).unwrap();
    assert_eq!(log.log_start_offset(), 6);
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn a_reader_of_a_deleted_segment_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let mut retention = config();
    retention.file_delete_delay_ms = 0;
    let log = std::sync::Arc::new(Log::open(dir.path(), retention, topic_id(), None).unwrap());
    let timestamps = vec![NOW_MS; 200];
    append_at(&log, &timestamps);
    let end = log.log_end_offset();
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut completed = 0;
            for _ in 0..200 {
                let start = log.log_start_offset();
                match log.read(start, end, 4096, true) {
                    Ok(read) => {
                        let values = record_values(&read.records);
                        assert!(values.windows(2).all(|pair| pair[1].0 == pair[0].0 + 1));
                        completed += 1;
                    }
                    Err(LogError::OffsetOutOfRange { .. }) => {}
                    Err(error) => panic!("{error}"),
                }
            }
            completed
        })
    };
    for offset in (0..end).step_by(3) {
        log.delete_records_before(offset, end).unwrap();
    }
    assert!(reader.join().unwrap() > 0);
}
