//! Cleaner throughput: MB/s of log cleaned, 1 KiB records, 10% live keys.
//!
//! `cargo run -p sluice-log --example clean_throughput -- [MiB] [codec]`
//! (codec: none, gzip, snappy, lz4, zstd; defaults 64 MiB, none). Prints one
//! line per run; figures belong in docs/BENCHMARKS.md, not in tests.

use std::time::Instant;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice_log::{AppendOptions, CleanerTxnInput, Log, LogConfig, Throttler};

const RECORD_BYTES: usize = 1024;
const RECORDS_PER_BATCH: usize = 16;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut arguments = std::env::args().skip(1);
    let mebibytes: usize = arguments.next().map_or(Ok(64), |value| value.parse())?;
    let compression = match arguments.next().as_deref().unwrap_or("none") {
        "none" => Compression::None,
        "gzip" => Compression::Gzip,
        "snappy" => Compression::Snappy,
        "lz4" => Compression::Lz4,
        "zstd" => Compression::Zstd,
        other => return Err(format!("unknown codec {other}").into()),
    };
    let records = mebibytes * 1024 * 1024 / RECORD_BYTES;
    let live_keys = (records / 10).max(1);
    let dir = tempfile::tempdir()?;
    let config = LogConfig {
        segment_bytes: 16 << 20,
        cleanup_policy_delete: false,
        cleanup_policy_compact: true,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path(), config.clone(), uuid::Uuid::new_v4(), None)?;
    let options = AppendOptions {
        leader_epoch: 0,
        log_append_time_ms: None,
    };
    let value = Bytes::from(vec![b'v'; RECORD_BYTES - 24]);
    let mut sequence: u64 = 0x9e37_79b9;
    for batch_index in 0..records.div_ceil(RECORDS_PER_BATCH) {
        let batch: Vec<Record> = (0..RECORDS_PER_BATCH)
            .map(|index| {
                // A fixed pseudo-random key sequence over `live_keys` keys.
                sequence = sequence
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                let key = (sequence >> 33) as usize % live_keys;
                Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: 0,
                    producer_id: -1,
                    producer_epoch: -1,
                    timestamp_type: TimestampType::Creation,
                    offset: index as i64,
                    sequence: index as i32,
                    timestamp: 1_000 + batch_index as i64,
                    key: Some(Bytes::from(format!("key-{key:012}"))),
                    value: Some(value.clone()),
                    headers: Default::default(),
                }
            })
            .collect();
        let mut bytes = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut bytes,
            &batch,
            &RecordEncodeOptions {
                version: 2,
                compression,
            },
        )?;
        log.append(&mut bytes, options)?;
    }
    // Close the active segment so the whole log is cleanable.
    log.set_config(LogConfig {
        segment_ms: 0,
        ..config.clone()
    });
    log.enforce_retention(i64::MAX / 2, log.log_end_offset())?;
    log.set_config(config);
    log.flush()?;
    let log_bytes: u64 = std::fs::read_dir(dir.path())?
        .filter_map(Result::ok)
        .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
        .map(|entry| entry.metadata().map_or(0, |metadata| metadata.len()))
        .sum();
    let started = Instant::now();
    let result = log.clean(
        10_000_000,
        log.log_end_offset(),
        &CleanerTxnInput::default(),
        &mut Throttler::unlimited(),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "codec={compression:?} records={records} live_keys={live_keys} log_bytes={log_bytes} \
         seconds={seconds:.3} MB/s={:.1} bytes_written={} records_removed={} segments_cleaned={}",
        log_bytes as f64 / 1e6 / seconds,
        result.bytes_written,
        result.records_removed,
        result.segments_cleaned,
    );
    log.close()?;
    Ok(())
}
