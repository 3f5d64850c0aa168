//! Log behaviour at its boundary: append, read, roll, flush, recovery,
//! timestamps, epochs, truncation.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::os::unix::fs::FileExt;

use bytes::BytesMut;

use common::{batch, batch_offsets, batch_with, options, record_values, small_config};
use kafka_protocol::records::Compression;
use sluice_log::{AppendOptions, Log, LogConfig, LogError};

fn topic_id() -> uuid::Uuid {
    uuid::Uuid::from_u128(0xfeed)
}

fn segment_logs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .collect();
    paths.sort();
    paths
}

/// Appends batches of the given record counts; returns their (base, last).
fn append_all(log: &Log, counts: &[usize], epoch: i32) -> Vec<(i64, i64)> {
    counts
        .iter()
        .enumerate()
        .map(|(tag, count)| {
            let info = log
                .append(&mut batch(*count, 20, tag as u64), options(epoch))
                .unwrap();
            (info.base_offset, info.last_offset)
        })
        .collect()
}

#[test]
fn read_semantics_table() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), topic_id(), None).unwrap();
    // Batches: [0..=2] [3..=3] [4..=8] [9..=10]
    let batches = append_all(&log, &[3, 1, 5, 2], 0);
    assert_eq!(batches, vec![(0, 2), (3, 3), (4, 8), (9, 10)]);
    assert_eq!(log.log_end_offset(), 11);
    let size_of_first = log.read(0, 11, usize::MAX, false).unwrap().records;
    let first_batch_bytes = sluice_log::batch::parse_header(&size_of_first)
        .unwrap()
        .total_bytes();

    // (start, max_offset, max_bytes, min_one_batch, expected batches)
    type Case = (i64, i64, usize, bool, Vec<(i64, i64)>);
    let cases: Vec<Case> = vec![
        (0, 11, usize::MAX, false, batches.clone()),
        (1, 11, usize::MAX, false, batches.clone()),
        (5, 11, usize::MAX, false, vec![(4, 8), (9, 10)]),
        (10, 11, usize::MAX, false, vec![(9, 10)]),
        (11, 11, usize::MAX, false, vec![]),
        (0, 9, usize::MAX, false, vec![(0, 2), (3, 3), (4, 8)]),
        (0, 8, usize::MAX, false, vec![(0, 2), (3, 3)]),
        (4, 8, usize::MAX, false, vec![]),
        (0, 11, 1, true, vec![(0, 2)]),
        (0, 11, 1, false, vec![]),
        (0, 11, first_batch_bytes, false, vec![(0, 2)]),
        (0, 11, first_batch_bytes + 1, true, vec![(0, 2)]),
    ];
    for (start, max_offset, max_bytes, min_one, expected) in cases {
        let result = log.read(start, max_offset, max_bytes, min_one).unwrap();
        assert_eq!(
            batch_offsets(&result.records),
            expected,
            "read({start}, {max_offset}, {max_bytes}, {min_one})"
        );
    }
    for start in [-1, 12, 100] {
        assert!(matches!(
            log.read(start, 11, usize::MAX, true),
            Err(LogError::OffsetOutOfRange {
                log_end_offset: 11,
                ..
            })
        ));
    }
}

#[test]
fn rolls_and_reads_across_segments_and_reopens_clean() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let log = Log::open(dir.path(), config.clone(), topic_id(), None).unwrap();
    let counts: Vec<usize> = (0..40).map(|index| 1 + index % 4).collect();
    let batches = append_all(&log, &counts, 0);
    assert!(segment_logs(dir.path()).len() > 3, "segments rolled");
    let all = log.read(0, i64::MAX, usize::MAX, false).unwrap().records;
    assert_eq!(batch_offsets(&all), batches);
    let values = record_values(&all);
    assert_eq!(values.len(), counts.iter().sum::<usize>());
    assert!(values
        .iter()
        .enumerate()
        .all(|(index, (offset, _))| *offset == index as i64));
    log.close().unwrap();
    assert!(matches!(log.read(0, 1, 1, true), Err(LogError::Closed)));

    let reopened = Log::open(dir.path(), config.clone(), uuid::Uuid::nil(), None).unwrap();
    assert_eq!(reopened.topic_id(), topic_id());
    assert_eq!(reopened.log_end_offset(), log.log_end_offset());
    assert_eq!(
        reopened
            .read(0, i64::MAX, usize::MAX, false)
            .unwrap()
            .records,
        all
    );
    for (base, last) in &batches {
        let got = reopened.read(*last, i64::MAX, 1, true).unwrap().records;
        assert_eq!(batch_offsets(&got), vec![(*base, *last)]);
    }
    // Indexes deleted: rebuilt on a clean open.
    drop(reopened);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "index") {
            std::fs::remove_file(path).unwrap();
        }
    }
    let rebuilt = Log::open(dir.path(), config, uuid::Uuid::nil(), None).unwrap();
    assert_eq!(
        rebuilt
            .read(0, i64::MAX, usize::MAX, false)
            .unwrap()
            .records,
        all
    );
    let next = rebuilt.append(&mut batch(2, 5, 99), options(0)).unwrap();
    assert_eq!(next.base_offset, log.log_end_offset());
}

#[test]
fn flush_advances_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config(), topic_id(), None).unwrap();
    assert_eq!(log.recovery_point(), 0);
    append_all(&log, &[2, 3, 4], 0);
    assert_eq!(log.recovery_point(), 0);
    assert_eq!(log.flush().unwrap(), 9);
    assert_eq!(log.recovery_point(), 9);
    log.truncate_to(5).unwrap();
    assert_eq!(log.recovery_point(), 5);
}

/// Ways to damage the tail of the last segment after N good batches.
enum Damage {
    Garbage,
    PartialBatch,
    FlipCrcByte,
    FlipPayloadByte,
    ZeroLength,
}

#[test]
fn torn_tail_is_cut_at_the_last_valid_batch() {
    for damage in [
        Damage::Garbage,
        Damage::PartialBatch,
        Damage::FlipCrcByte,
        Damage::FlipPayloadByte,
        Damage::ZeroLength,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig::default();
        let log = Log::open(dir.path(), config.clone(), topic_id(), None).unwrap();
        let good = append_all(&log, &[2, 3, 1, 4], 0);
        let recovery_point = log.flush().unwrap();
        let good_bytes = log.read(0, i64::MAX, usize::MAX, false).unwrap().records;
        let last_good = good.len()
            - match damage {
                Damage::FlipCrcByte | Damage::FlipPayloadByte => 1,
                _ => 0,
            };
        drop(log);
        let path = &segment_logs(dir.path())[0];
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .unwrap();
        let length = file.metadata().unwrap().len();
        match damage {
            Damage::Garbage => file.write_all_at(&[0xab; 100], length).unwrap(),
            Damage::PartialBatch => {
                let extra = batch(3, 50, 77);
                file.write_all_at(&extra[..extra.len() - 7], length)
                    .unwrap();
            }
            Damage::FlipCrcByte => {
                let start = last_batch_position(&good_bytes);
                let mut byte = [0u8; 1];
                file.read_exact_at(&mut byte, start + 18).unwrap();
                file.write_all_at(&[byte[0] ^ 0x5a], start + 18).unwrap();
            }
            Damage::FlipPayloadByte => file.write_all_at(&[0x00, 0x01], length - 2).unwrap(),
            Damage::ZeroLength => {
                let mut bytes = batch(1, 10, 5).to_vec();
                bytes[8..12].copy_from_slice(&0i32.to_be_bytes());
                file.write_all_at(&bytes, length).unwrap();
            }
        }
        drop(file);
        // Damage past the recovery point (appended tails) is found from it;
        // damage inside flushed batches only by a scan from 0.
        let scan_from = match damage {
            Damage::FlipCrcByte | Damage::FlipPayloadByte => 0,
            _ => recovery_point,
        };
        let recovered = Log::open(dir.path(), config.clone(), topic_id(), Some(scan_from)).unwrap();
        let expected_end = good[last_good - 1].1 + 1;
        assert_eq!(recovered.log_end_offset(), expected_end);
        let records = recovered
            .read(0, i64::MAX, usize::MAX, false)
            .unwrap()
            .records;
        assert_eq!(batch_offsets(&records), good[..last_good].to_vec());
        let info = recovered.append(&mut batch(2, 10, 8), options(0)).unwrap();
        assert_eq!(info.base_offset, expected_end);
        let read_back = recovered
            .read(expected_end, i64::MAX, usize::MAX, false)
            .unwrap()
            .records;
        assert_eq!(
            batch_offsets(&read_back),
            vec![(expected_end, expected_end + 1)]
        );
    }
}

fn last_batch_position(bytes: &[u8]) -> u64 {
    let mut position = 0usize;
    let mut last = 0usize;
    while position < bytes.len() {
        last = position;
        position += sluice_log::batch::parse_header(&bytes[position..])
            .unwrap()
            .total_bytes();
    }
    last as u64
}

#[test]
fn torn_segment_drops_later_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let log = Log::open(dir.path(), config.clone(), topic_id(), None).unwrap();
    append_all(&log, &[3; 30], 0);
    drop(log);
    let logs = segment_logs(dir.path());
    assert!(logs.len() >= 3);
    // Corrupt the middle of the second segment.
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&logs[1])
        .unwrap();
    file.write_all_at(&[0xff; 4], 70).unwrap();
    let base_of_second: i64 = logs[1]
        .file_stem()
        .unwrap()
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let recovered = Log::open(dir.path(), config, topic_id(), Some(0)).unwrap();
    assert_eq!(segment_logs(dir.path()).len(), 2);
    assert_eq!(recovered.log_end_offset(), base_of_second);
    let records = recovered
        .read(0, i64::MAX, usize::MAX, false)
        .unwrap()
        .records;
    assert_eq!(record_values(&records).len() as i64, base_of_second);
}

#[test]
fn offset_for_timestamp_uncompressed_and_gzip() {
    for compression in [Compression::None, Compression::Gzip] {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig {
            index_interval_bytes: 1,
            ..LogConfig::default()
        };
        let log = Log::open(dir.path(), config, topic_id(), None).unwrap();
        // offsets 0..=3, 4..=6, 7..=8
        let batches: [&[i64]; 3] = [&[100, 300, 200, 400], &[350, 500, 450], &[600, 610]];
        for (tag, timestamps) in batches.iter().enumerate() {
            log.append(
                &mut batch_with(timestamps, 30, compression, tag as u64),
                options(1),
            )
            .unwrap();
        }
        // (target, max_offset, expected)
        let cases = [
            (0, 9, Some((0, 100))),
            (100, 9, Some((0, 100))),
            (101, 9, Some((1, 300))),
            (250, 9, Some((1, 300))),
            (301, 9, Some((3, 400))),
            (401, 9, Some((5, 500))),
            (420, 9, Some((5, 500))),
            (501, 9, Some((7, 600))),
            (605, 9, Some((8, 610))),
            (611, 9, None),
            (501, 7, None),
            (401, 5, None),
        ];
        for (target, max_offset, expected) in cases {
            assert_eq!(
                log.offset_for_timestamp(target, max_offset).unwrap(),
                expected,
                "{compression:?} target {target} max {max_offset}"
            );
        }
        // (max_offset, expected) for ListOffsets -3.
        let max_cases = [
            (9, Some((8, 610))),
            (7, Some((5, 500))),
            (4, Some((3, 400))),
            (0, None),
        ];
        for (max_offset, expected) in max_cases {
            assert_eq!(
                log.max_timestamp_offset(max_offset).unwrap(),
                expected,
                "{compression:?} max {max_offset}"
            );
        }
    }
}

#[test]
fn log_append_time_rewrites_header() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), LogConfig::default(), topic_id(), None).unwrap();
    let info = log
        .append(
            &mut batch_with(&[5, 6, 7], 10, Compression::Gzip, 1),
            AppendOptions {
                leader_epoch: 2,
                log_append_time_ms: Some(9_999),
            },
        )
        .unwrap();
    assert_eq!(
        (info.max_timestamp, info.log_append_time_ms),
        (9_999, 9_999)
    );
    let records = log.read(0, 3, usize::MAX, false).unwrap().records;
    let header = sluice_log::batch::validate(&records).unwrap();
    assert!(header.is_log_append_time());
    assert_eq!(header.partition_leader_epoch, 2);
    assert_eq!(
        log.offset_for_timestamp(9_000, 3).unwrap(),
        Some((0, 9_999))
    );
    assert_eq!(log.max_timestamp_offset(3).unwrap(), Some((0, 9_999)));
}

#[test]
fn leader_epochs_follow_appends_truncation_and_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config(), topic_id(), None).unwrap();
    assert_eq!(log.latest_epoch(), None);
    assert_eq!(log.end_offset_for_epoch(0), (-1, -1));
    append_all(&log, &[2, 2], 1); // 0..=3 epoch 1
    append_all(&log, &[3], 3); // 4..=6 epoch 3
    append_all(&log, &[1], 2); // 7 stale epoch: stamped, not recorded
    append_all(&log, &[2], 5); // 8..=9 epoch 5
                               // (requested epoch, expected)
    let cases = [
        // Older than the first epoch (1, from offset 0): ends at 0.
        (0, (0, 0)),
        (1, (1, 4)),
        (2, (1, 4)),
        (3, (3, 8)),
        (4, (3, 8)),
        (5, (5, 10)),
        // Newer than the latest: undefined, as in Kafka.
        (7, (-1, -1)),
    ];
    for (epoch, expected) in cases {
        assert_eq!(log.end_offset_for_epoch(epoch), expected, "epoch {epoch}");
    }
    let text = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n3\n1 0\n3 4\n5 8\n");
    log.truncate_to(8).unwrap();
    assert_eq!(log.latest_epoch(), Some(3));
    assert_eq!(log.end_offset_for_epoch(3), (3, 8));
    assert_eq!(log.end_offset_for_epoch(5), (-1, -1));
    // A leader that assigned its epoch at the log end and appended nothing
    // before it lost leadership: truncating to the end drops that entry
    // (Kafka's truncateTo), and only that one.
    log.assign_leader_epoch(7).unwrap();
    assert_eq!(log.latest_epoch(), Some(7));
    log.truncate_to(8).unwrap();
    assert_eq!(log.latest_epoch(), Some(3));
    log.truncate_to(20).unwrap();
    assert_eq!(log.latest_epoch(), Some(3), "an entry below the end stays");
    let text = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n2\n1 0\n3 4\n", "persisted");
    // Lose the checkpoint: recovery rebuilds it from the batches.
    drop(log);
    std::fs::remove_file(dir.path().join("leader-epoch-checkpoint")).unwrap();
    let recovered = Log::open(dir.path(), small_config(), topic_id(), Some(0)).unwrap();
    assert_eq!(recovered.end_offset_for_epoch(1), (1, 4));
    assert_eq!(recovered.latest_epoch(), Some(3));
}

#[test]
fn truncate_to_batch_boundaries_and_inside() {
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let log = Log::open(dir.path(), config.clone(), topic_id(), None).unwrap();
    let batches = append_all(&log, &[3; 20], 0);
    // (truncate to, expected log end offset)
    let cases = [
        (100, 60),
        (60, 60),
        (58, 57),
        (45, 45),
        (31, 30),
        (12, 12),
        (1, 0),
    ];
    for (offset, expected) in cases {
        log.truncate_to(offset).unwrap();
        assert_eq!(log.log_end_offset(), expected, "truncate_to({offset})");
        let records = log.read(0, i64::MAX, usize::MAX, false).unwrap().records;
        let expected_batches: Vec<_> = batches
            .iter()
            .copied()
            .filter(|(_, last)| *last < expected)
            .collect();
        assert_eq!(batch_offsets(&records), expected_batches);
    }
    let info = log.append(&mut batch(2, 5, 1), options(0)).unwrap();
    assert_eq!(info.base_offset, 0);
    drop(log);
    let reopened = Log::open(dir.path(), config, topic_id(), None).unwrap();
    assert_eq!(reopened.log_end_offset(), 2);
}

#[test]
fn concurrent_reads_during_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = std::sync::Arc::new(Log::open(dir.path(), small_config(), topic_id(), None).unwrap());
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for tag in 0..300 {
                log.append(&mut batch(2, 16, tag), options(0)).unwrap();
                if tag % 50 == 0 {
                    log.flush().unwrap();
                }
            }
        })
    };
    let mut seen = 0;
    while seen < 600 {
        let end = log.log_end_offset();
        let records = log.read(0, end, usize::MAX, false).unwrap().records;
        let offsets = batch_offsets(&records);
        assert_eq!(offsets.last().map_or(0, |(_, last)| last + 1), end);
        seen = end;
    }
    writer.join().unwrap();
}

#[test]
fn roll_triggers() {
    // (config, batches appended, minimum segments expected)
    let cases = [
        (
            LogConfig {
                segment_ms: 0,
                ..LogConfig::default()
            },
            5,
            5,
        ),
        (
            LogConfig {
                segment_index_bytes: 8,
                index_interval_bytes: 1,
                ..LogConfig::default()
            },
            4,
            4,
        ),
        (LogConfig::default(), 5, 1),
    ];
    for (index, (config, batches, segments)) in cases.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), config.clone(), topic_id(), None).unwrap();
        append_all(&log, &vec![2; batches], 0);
        let found = segment_logs(dir.path()).len();
        assert!(found >= segments, "case {index}: {found} segments");
        let records = log.read(0, i64::MAX, usize::MAX, false).unwrap().records;
        assert_eq!(batch_offsets(&records).len(), batches, "case {index}");
    }
}

/// The flusher syncs only the active segment's log bytes, not its indexes
/// (and a just-closed segment's indexes only at the next flush). After a
/// crash those indexes may hold anything; recovery must rebuild them from
/// the log for the segment ending at the recovery point and every later one.
#[test]
fn unsynced_indexes_near_the_recovery_point_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), small_config(), topic_id(), None).unwrap();
    let mut ranges = Vec::new();
    while segment_logs(dir.path()).len() < 3 {
        ranges.extend(append_all(&log, &[3], 0));
    }
    let recovery_point = log.flush().unwrap();
    // One more batch, not flushed: it rolls to a new segment when the
    // active one is full, else it extends it.
    let mut tag = 0;
    while segment_logs(dir.path()).len() < 4 {
        ranges.extend(append_all(&log, &[3], 0));
        tag += 1;
        assert!(tag < 100);
    }
    drop(log); // a crash: no close, no checkpoint
    let logs = segment_logs(dir.path());
    // Damage the indexes of the last two segments (the one holding or
    // ending at the recovery point, and the newest): garbage that decodes.
    for log_path in &logs[logs.len() - 2..] {
        for extension in ["index", "timeindex"] {
            let path = log_path.with_extension(extension);
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_len(0).unwrap();
            file.write_all_at(&[0x7f; 24], 0).unwrap();
        }
    }
    let log = Log::open(dir.path(), small_config(), topic_id(), Some(recovery_point)).unwrap();
    assert_eq!(log.log_end_offset(), ranges.last().unwrap().1 + 1);
    for log_path in &logs[logs.len() - 2..] {
        let index = std::fs::read(log_path.with_extension("index")).unwrap();
        assert_eq!(
            index.get(..8),
            Some(&[0u8; 8][..]),
            "{}: first entry rebuilt as (0, position 0)",
            log_path.display()
        );
    }
    for (base, last) in &ranges {
        for offset in *base..=*last {
            let read = log.read(offset, i64::MAX, 1, true).unwrap();
            let batches = batch_offsets(&read.records);
            assert_eq!(
                batches.first(),
                Some(&(*base, *last)),
                "reading offset {offset}"
            );
        }
    }
}

/// `append_shared` writes a large batch as a stamped header copy plus the
/// caller's own bytes, a small one (or a LogAppendTime one) through a copy:
/// either way the log holds exactly what `append` would have written.
#[test]
fn shared_appends_store_what_copying_appends_store() {
    let copied_dir = tempfile::tempdir().unwrap();
    let shared_dir = tempfile::tempdir().unwrap();
    let config = LogConfig::default();
    let copied = Log::open(copied_dir.path(), config.clone(), topic_id(), None).unwrap();
    let shared = Log::open(shared_dir.path(), config, topic_id(), None).unwrap();
    // 3 small batches, 2 of ~200 KiB (split path), then LogAppendTime.
    let sizes = [(5, 100), (300, 700), (1, 10), (200, 1000), (150, 1500)];
    for (tag, (count, value_bytes)) in sizes.into_iter().enumerate() {
        let original = batch(count, value_bytes, tag as u64).freeze();
        let a = copied
            .append(&mut BytesMut::from(&original[..]), options(3))
            .unwrap();
        let b = shared.append_shared(&original, options(3)).unwrap();
        assert_eq!(
            (a.base_offset, a.last_offset),
            (b.base_offset, b.last_offset)
        );
    }
    let original = batch(200, 1000, 99).freeze();
    let append_time = AppendOptions {
        leader_epoch: 3,
        log_append_time_ms: Some(1_700_000_000_000),
    };
    copied
        .append(&mut BytesMut::from(&original[..]), append_time)
        .unwrap();
    shared.append_shared(&original, append_time).unwrap();
    let end = copied.log_end_offset();
    assert_eq!(shared.log_end_offset(), end);
    let a = copied.read(0, end, usize::MAX, true).unwrap().records;
    let b = shared.read(0, end, usize::MAX, true).unwrap().records;
    assert!(a.len() > 600_000);
    assert!(a == b, "logs differ");
}
