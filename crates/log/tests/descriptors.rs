//! File descriptors stay bounded however many segments the logs hold: segment
//! files are opened on use and closed by a bounded cache, and every batch is
//! still read back (this test binary is its own process, so the process-wide
//! cache capacity set here is not shared with other tests).

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::{batch, batch_offsets, options, small_config};
use sluice_log::Log;

/// Descriptors this process has open, from /proc/self/fd.
fn process_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("list /proc/self/fd")
        .count()
}

#[test]
fn many_segments_in_many_logs_use_a_bounded_number_of_descriptors() {
    const CAPACITY: usize = 32;
    const LOGS: usize = 8;
    const BATCHES: usize = 60;
    sluice_log::set_open_files_max(CAPACITY);
    let before = process_descriptors();
    let dir = tempfile::tempdir().expect("temp dir");
    let logs: Vec<Log> = (0..LOGS)
        .map(|index| {
            Log::open(
                &dir.path().join(format!("t-{index}")),
                small_config(),
                uuid::Uuid::new_v4(),
                None,
            )
            .expect("open log")
        })
        .collect();
    for (index, log) in logs.iter().enumerate() {
        for tag in 0..BATCHES {
            // ~600 bytes a batch, 1 KiB segments: a segment per batch or two.
            let mut bytes = batch(4, 100, (index * 1000 + tag) as u64);
            log.append(&mut bytes, options(0)).expect("append");
        }
        log.flush().expect("flush");
    }
    let segments: usize = (0..LOGS)
        .map(|index| {
            std::fs::read_dir(dir.path().join(format!("t-{index}")))
                .expect("list log dir")
                .flatten()
                .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
                .count()
        })
        .sum();
    assert!(
        segments > 3 * CAPACITY,
        "the test needs more segment files ({segments} segments) than the cache holds"
    );
    assert!(
        sluice_log::open_files() <= CAPACITY,
        "{} segment files open, capacity {CAPACITY}",
        sluice_log::open_files()
    );
    // Every batch reads back, each read reopening closed files as needed.
    for log in &logs {
        let mut offset = 0;
        let mut batches = 0;
        while offset < log.log_end_offset() {
            let read = log.read(offset, i64::MAX, 1 << 20, true).expect("read");
            let found = batch_offsets(&read.records);
            assert!(!found.is_empty(), "nothing read at {offset}");
            batches += found.len();
            offset = found.last().map(|(_, last)| last + 1).unwrap_or(offset);
        }
        assert_eq!(batches, BATCHES);
        assert!(sluice_log::open_files() <= CAPACITY);
    }
    let during = process_descriptors();
    assert!(
        during <= before + CAPACITY + 4,
        "{during} descriptors open (was {before}) with {segments} segments"
    );
    for log in &logs {
        log.close().expect("close");
    }
}
