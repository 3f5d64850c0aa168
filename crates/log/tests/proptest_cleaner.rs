//! Property test: random keyed appends (values and tombstones, every codec),
//! rolls, cleaning passes, DeleteRecords, clean and crash reopens — the
//! latest record per key at or above the log start offset never changes,
//! offsets only increase, and every batch decodes with a valid CRC.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::{batch_headers, decode_records, keyed_batch, options, BatchKind, KeyedRecord};
use kafka_protocol::records::Compression;
use proptest::prelude::*;
use sluice_log::{CleanerTxnInput, Log, LogConfig, Throttler};

#[derive(Clone, Debug)]
enum Operation {
    /// (key index, value or tombstone) records in one batch.
    Append {
        records: Vec<(u8, bool)>,
        codec: u8,
    },
    Roll,
    Clean,
    DeleteRecords {
        at: f64,
    },
    CloseAndReopen,
    CrashAndRecover,
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        6 => (prop::collection::vec((0u8..8, prop::bool::weighted(0.8)), 1..6), 0u8..5)
            .prop_map(|(records, codec)| Operation::Append { records, codec }),
        2 => Just(Operation::Roll),
        3 => Just(Operation::Clean),
        1 => (0.0f64..=1.0).prop_map(|at| Operation::DeleteRecords { at }),
        1 => Just(Operation::CloseAndReopen),
        1 => Just(Operation::CrashAndRecover),
    ]
}

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        segment_ms: i64::MAX / 2,
        index_interval_bytes: 100,
        cleanup_policy_delete: false,
        cleanup_policy_compact: true,
        min_cleanable_dirty_ratio: 0.0,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

const CODECS: [Compression; 5] = [
    Compression::None,
    Compression::Gzip,
    Compression::Snappy,
    Compression::Lz4,
    Compression::Zstd,
];

/// key → (offset, value) of the latest record per key at or above `start`.
type Latest = BTreeMap<Bytes, (i64, Option<Bytes>)>;

fn latest_in_log(log: &Log) -> Latest {
    let bytes = log
        .read(
            log.log_start_offset(),
            log.log_end_offset(),
            usize::MAX,
            true,
        )
        .unwrap()
        .records;
    batch_headers(&bytes);
    let records = decode_records(&bytes);
    assert!(records.windows(2).all(|pair| pair[0].0 < pair[1].0));
    let start = log.log_start_offset();
    records
        .into_iter()
        .filter(|(offset, _, _)| *offset >= start)
        .map(|(offset, key, value)| (key.unwrap(), (offset, value)))
        .collect()
}

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

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn cleaning_keeps_the_latest_record_per_key(
        operations in prop::collection::vec(operation(), 1..40),
        segment_bytes in 150u64..1200,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let topic_id = uuid::Uuid::from_u128(7);
        let mut log = Log::open(dir.path(), config(segment_bytes), topic_id, None).unwrap();
        let mut model = Latest::new();
        for operation in operations {
            match operation {
                Operation::Append { records, codec } => {
                    let keys: Vec<String> = records.iter().map(|(key, _)| format!("k{key}")).collect();
                    let keyed: Vec<KeyedRecord<'_>> = records
                        .iter()
                        .zip(&keys)
                        .map(|((_, has_value), key)| (Some(key.as_str()), has_value.then_some("value"), 1_000))
                        .collect();
                    let mut batch = keyed_batch(&keyed, CODECS[usize::from(codec)], BatchKind::default());
                    let base = log.append(&mut batch, options(0)).unwrap().base_offset;
                    for (index, (key, (_, has_value))) in keys.iter().zip(&records).enumerate() {
                        let value = has_value.then(|| Bytes::from_static(b"value"));
                        model.insert(Bytes::from(key.clone()), (base + index as i64, value));
                    }
                }
                Operation::Roll => roll(&log),
                // Before delete.retention.ms: tombstones stay.
                Operation::Clean => {
                    log.clean(1_000, log.log_end_offset(), &CleanerTxnInput::default(), &mut Throttler::unlimited()).unwrap();
                }
                Operation::DeleteRecords { at } => {
                    let start = log.log_start_offset();
                    let end = log.log_end_offset();
                    let offset = start + ((end - start) as f64 * at) as i64;
                    log.delete_records_before(offset, end).unwrap();
                    model.retain(|_, (latest, _)| *latest >= offset);
                }
                Operation::CloseAndReopen => {
                    let start = log.log_start_offset();
                    log.close().unwrap();
                    drop(log);
                    log = Log::open_with_start(dir.path(), config(segment_bytes), topic_id, None, Some(start)).unwrap();
                }
                Operation::CrashAndRecover => {
                    let start = log.log_start_offset();
                    log.flush().unwrap();
                    drop(log);
                    log = Log::open_with_start(dir.path(), config(segment_bytes), topic_id, Some(0), Some(start)).unwrap();
                }
            }
            prop_assert_eq!(latest_in_log(&log), model.clone());
        }
    }
}
