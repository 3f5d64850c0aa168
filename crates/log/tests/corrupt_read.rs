//! Reads over a corrupt batch header in a closed segment: the intact batches
//! before it come back, a read that starts at (or inside) the corrupt batch is
//! `LogError::CorruptBatch` naming the segment and position, and batches the
//! offset index reaches past it stay readable.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::os::unix::fs::FileExt;

use common::{batch, batch_offsets, options};
use sluice_log::{Log, LogConfig, LogError};

fn topic_id() -> uuid::Uuid {
    uuid::Uuid::from_u128(0xc0de)
}

/// Segments of about four batches, an index entry for every batch.
fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 1200,
        index_interval_bytes: 1,
        ..LogConfig::default()
    }
}

#[test]
fn corrupt_length_field_in_a_closed_segment() {
    let dir = tempfile::tempdir().unwrap();
    let mut batches = Vec::new();
    {
        let log = Log::open(dir.path(), config(), topic_id(), None).unwrap();
        for tag in 0..12 {
            let info = log.append(&mut batch(3, 50, tag), options(0)).unwrap();
            batches.push((info.base_offset, info.last_offset));
        }
        log.flush().unwrap();
        log.close().unwrap();
    }
    let first_segment = dir.path().join("00000000000000000000.log");
    let segment_bytes = std::fs::read(&first_segment).unwrap();
    let in_first = batch_offsets(&segment_bytes);
    assert!(in_first.len() >= 4, "first segment holds {in_first:?}");
    assert!(
        in_first.len() < batches.len(),
        "the first segment is closed"
    );

    // Batch 2's batchLength, far past the end of the segment.
    let mut position = 0usize;
    for _ in 0..2 {
        position += sluice_log::batch::parse_header(&segment_bytes[position..])
            .unwrap()
            .total_bytes();
    }
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&first_segment)
        .unwrap();
    file.write_all_at(&0x7fff_0000i32.to_be_bytes(), position as u64 + 8)
        .unwrap();
    drop(file);

    // A clean open trusts closed segments below their last index entry.
    let log = Log::open(dir.path(), config(), topic_id(), None).unwrap();
    let end = log.log_end_offset();
    assert_eq!(end, batches.last().unwrap().1 + 1, "nothing was truncated");

    let from_start = log.read(0, end, usize::MAX, true).unwrap();
    assert_eq!(batch_offsets(&from_start.records), batches[..2].to_vec());

    let (bad_base, bad_last) = batches[2];
    for start in [bad_base, bad_last] {
        match log.read(start, end, usize::MAX, true) {
            Err(LogError::CorruptBatch {
                path, position: at, ..
            }) => {
                assert_eq!(path, first_segment);
                assert_eq!(at, position as u64);
            }
            other => panic!("read at {start}: expected CorruptBatch, got {other:?}"),
        }
    }

    let after = log.read(batches[3].0, end, usize::MAX, true).unwrap();
    assert_eq!(batch_offsets(&after.records), batches[3..].to_vec());
}
