//! Property test: random appends, reads, truncations, flushes, clean reopens
//! and crash reopens (recovery) — the log always returns exactly what was
//! appended, with contiguous offsets.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use common::{batch_offsets, batch_with, options};
use kafka_protocol::records::Compression;
use proptest::prelude::*;
use sluice_log::{Log, LogConfig};

#[derive(Clone, Debug)]
enum Operation {
    Append {
        records: usize,
        value_bytes: usize,
        gzip: bool,
    },
    Read {
        at: f64,
        max_bytes: usize,
    },
    Truncate {
        at: f64,
    },
    Flush,
    CloseAndReopen,
    CrashAndRecover,
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        6 => (1usize..6, 0usize..120, any::<bool>())
            .prop_map(|(records, value_bytes, gzip)| Operation::Append { records, value_bytes, gzip }),
        3 => (0.0f64..=1.0, 0usize..600).prop_map(|(at, max_bytes)| Operation::Read { at, max_bytes }),
        1 => (0.0f64..=1.0).prop_map(|at| Operation::Truncate { at }),
        1 => Just(Operation::Flush),
        1 => Just(Operation::CloseAndReopen),
        1 => Just(Operation::CrashAndRecover),
    ]
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 700,
        segment_ms: i64::MAX / 2,
        segment_index_bytes: 64,
        index_interval_bytes: 100,
        ..LogConfig::default()
    }
}

/// What the log should hold: (base offset, last offset, stored bytes).
type Model = Vec<(i64, i64, Vec<u8>)>;

fn expected_read(model: &Model, start: i64, max_bytes: usize, min_one: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for (_, last, bytes) in model.iter().filter(|(_, last, _)| *last >= start) {
        let _ = last;
        if out.len() + bytes.len() > max_bytes && !(min_one && out.is_empty()) {
            break;
        }
        out.extend_from_slice(bytes);
    }
    out
}

fn run(operations: Vec<Operation>) {
    let dir = tempfile::tempdir().unwrap();
    let topic_id = uuid::Uuid::from_u128(7);
    let mut log = Log::open(dir.path(), config(), topic_id, None).unwrap();
    let mut model: Model = Vec::new();
    let mut start_offset = 0i64;
    for (tag, operation) in operations.into_iter().enumerate() {
        let end = model.last().map_or(start_offset, |(_, last, _)| last + 1);
        match operation {
            Operation::Append {
                records,
                value_bytes,
                gzip,
            } => {
                let timestamps: Vec<i64> = (0..records)
                    .map(|index| (tag * 10 + index) as i64)
                    .collect();
                let compression = if gzip {
                    Compression::Gzip
                } else {
                    Compression::None
                };
                let mut bytes = batch_with(&timestamps, value_bytes, compression, tag as u64);
                let info = log.append(&mut bytes, options(tag as i32 / 5)).unwrap();
                assert_eq!(info.base_offset, end);
                assert_eq!(info.last_offset, end + records as i64 - 1);
                model.push((info.base_offset, info.last_offset, bytes.to_vec()));
            }
            Operation::Read { at, max_bytes } => {
                let start = start_offset + ((end - start_offset) as f64 * at) as i64;
                for min_one in [false, true] {
                    let got = log
                        .read(start, i64::MAX, max_bytes, min_one)
                        .unwrap()
                        .records;
                    assert_eq!(
                        got.as_ref(),
                        expected_read(&model, start, max_bytes, min_one).as_slice()
                    );
                }
                let all = log
                    .read(start, i64::MAX, usize::MAX, false)
                    .unwrap()
                    .records;
                assert_eq!(
                    all.as_ref(),
                    expected_read(&model, start, usize::MAX, false).as_slice()
                );
            }
            Operation::Truncate { at } => {
                let target = start_offset + ((end - start_offset) as f64 * at) as i64;
                log.truncate_to(target).unwrap();
                if target <= start_offset {
                    model.clear();
                    start_offset = target;
                } else {
                    model.retain(|(_, last, _)| *last < target);
                }
            }
            Operation::Flush => {
                assert_eq!(log.flush().unwrap(), end);
            }
            Operation::CloseAndReopen => {
                log.close().unwrap();
                drop(log);
                log = Log::open(dir.path(), config(), topic_id, None).unwrap();
            }
            Operation::CrashAndRecover => {
                let recovery_point = log.recovery_point();
                drop(log);
                log = Log::open(dir.path(), config(), topic_id, Some(recovery_point)).unwrap();
            }
        }
        let end = model.last().map_or(start_offset, |(_, last, _)| last + 1);
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(log.log_start_offset(), start_offset);
    }
    let all = log
        .read(start_offset, i64::MAX, usize::MAX, false)
        .unwrap()
        .records;
    let expected: Vec<(i64, i64)> = model.iter().map(|(base, last, _)| (*base, *last)).collect();
    assert_eq!(batch_offsets(&all), expected);
    let mut next = start_offset;
    for (base, last) in expected {
        assert_eq!(base, next, "offsets are contiguous");
        next = last + 1;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn log_returns_what_was_appended(operations in proptest::collection::vec(operation(), 1..60)) {
        run(operations);
    }
}
