//! Helpers shared by the cleaner tests: the compacted log's config, a roll
//! of the active segment, appends, a pass without transactions or rate
//! limit, reads, and the updates workload.

use std::collections::BTreeMap;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use sluice_log::{CleanResult, CleanerTxnInput, Log, LogConfig, LogError, Throttler};

use super::{keyed_batch, options, BatchKind, Decoded, KeyedRecord};

/// Record timestamps used by the tests.
pub const T0: i64 = 1_000_000;

pub fn topic_id() -> uuid::Uuid {
    uuid::Uuid::from_u128(0xc1ea)
}

pub fn compact_config() -> LogConfig {
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
pub fn roll(log: &Log) {
    let config = log.config();
    log.set_config(LogConfig {
        segment_ms: 0,
        ..config.clone()
    });
    log.enforce_retention(i64::MAX / 2, log.log_end_offset())
        .unwrap();
    log.set_config(config);
}

pub fn append(
    log: &Log,
    records: &[KeyedRecord<'_>],
    compression: Compression,
    kind: BatchKind,
) -> i64 {
    let mut batch = keyed_batch(records, compression, kind);
    log.append(&mut batch, options(0)).unwrap().base_offset
}

/// A pass with no transactions and no rate limit.
pub fn clean(log: &Log, now_ms: i64, upper_bound: i64) -> Result<CleanResult, LogError> {
    log.clean(
        now_ms,
        upper_bound,
        &CleanerTxnInput::default(),
        &mut Throttler::unlimited(),
    )
}

pub fn read_all(log: &Log) -> Bytes {
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
pub fn survivors(records: &[Decoded]) -> BTreeMap<String, (i64, Option<Bytes>)> {
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
pub fn fill_updates(
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
