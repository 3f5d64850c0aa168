//! batch.rs: header parsing, validation order, in-place rewrites.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use sluice_log::batch::{self, BatchError, HEADER_BYTES};
use sluice_testkit::batch::rewrite_crc;

/// The CRC recomputed by the test kit (crc32c directly), not by the code
/// under test.
fn with_crc_fixed(mut bytes: Vec<u8>) -> Vec<u8> {
    rewrite_crc(&mut bytes);
    bytes
}

#[test]
fn validate_table() {
    let good: Vec<u8> = common::batch(3, 10, 1).to_vec();
    let header = batch::validate(&good).unwrap();
    assert_eq!(header.record_count, 3);
    assert_eq!(header.last_offset_delta, 2);
    assert_eq!(header.total_bytes(), good.len());
    assert_eq!(header.compression(), 0);

    let mut bad_magic = good.clone();
    bad_magic[16] = 1;
    let mut bad_crc = good.clone();
    let last = bad_crc.len() - 1;
    bad_crc[last] ^= 0xff;
    let mut bad_length = good.clone();
    bad_length[8..12].copy_from_slice(&(good.len() as i32).to_be_bytes());
    let mut two = good.clone();
    two.extend_from_slice(&good);
    let mut trailing_junk = good.clone();
    trailing_junk.extend_from_slice(&[0u8; 10]);
    let mut bad_count = good.clone();
    bad_count[57..61].copy_from_slice(&5i32.to_be_bytes());
    let bad_count = with_crc_fixed(bad_count);
    let mut control = good.clone();
    control[22] |= 1 << 5;
    let control = with_crc_fixed(control);

    let cases: Vec<(&str, Vec<u8>, Result<(), BatchError>)> = vec![
        ("good", good.clone(), Ok(())),
        ("empty", vec![], Err(BatchError::CorruptSize)),
        (
            "short",
            good[..HEADER_BYTES - 1].to_vec(),
            Err(BatchError::CorruptSize),
        ),
        (
            "truncated",
            good[..good.len() - 1].to_vec(),
            Err(BatchError::CorruptSize),
        ),
        ("length too large", bad_length, Err(BatchError::CorruptSize)),
        ("magic", bad_magic, Err(BatchError::InvalidMagic(1))),
        ("crc", bad_crc, Err(BatchError::CorruptCrc)),
        ("two batches", two, Err(BatchError::InvalidMultipleBatches)),
        ("trailing junk", trailing_junk, Err(BatchError::CorruptSize)),
        (
            "count",
            bad_count,
            Err(BatchError::InvalidRecordCount {
                record_count: 5,
                last_offset_delta: 2,
            }),
        ),
        ("control", control, Err(BatchError::InvalidControlBatch)),
    ];
    for (name, bytes, expected) in cases {
        assert_eq!(batch::validate(&bytes).map(|_| ()), expected, "case {name}");
    }
}

#[test]
fn rewrites_keep_crc_valid() {
    let mut bytes = common::batch(2, 5, 7).to_vec();
    batch::set_base_offset(&mut bytes, 42);
    batch::set_partition_leader_epoch(&mut bytes, 9);
    let header = batch::validate(&bytes).unwrap();
    assert_eq!(
        (
            header.base_offset,
            header.last_offset(),
            header.partition_leader_epoch
        ),
        (42, 43, 9)
    );
    assert!(!header.is_log_append_time());
    batch::set_log_append_time(&mut bytes, 123_456);
    let header = batch::validate(&bytes).unwrap();
    assert!(header.is_log_append_time());
    assert_eq!(header.max_timestamp, 123_456);
    assert!(!header.is_transactional());
}
