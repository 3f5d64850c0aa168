//! Micro-benchmark of `validate::validate_records`: nanoseconds per KiB of
//! records (uncompressed size) for batches like `sluice bench produce`
//! sends (1 KiB values of random capital letters, no key), per codec.
//!
//! `cargo run --release -p sluice-log --example validate_bench`
//! A benchmark, not a test: figures go to docs/BENCHMARKS.md.

use std::time::Instant;

#[path = "../tests/common/mod.rs"]
#[allow(clippy::unwrap_used)]
mod common;

use bytes::Bytes;
use kafka_protocol::records::Compression;
use sluice_log::batch;
use sluice_log::validate::{validate_records, RecordsCheck};

/// Records per batch (about 1 MiB of values, librdkafka's default batch.size).
const RECORDS: usize = 1000;
/// Bytes of each value.
const VALUE_BYTES: usize = 1024;
/// Uncompressed bytes validated per codec.
const TOTAL_BYTES: usize = 2 << 30;

fn batch_of(compression: Compression) -> (Bytes, usize) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let records: Vec<(Option<Bytes>, Option<Bytes>)> = (0..RECORDS)
        .map(|_| {
            let value: Vec<u8> = (0..VALUE_BYTES)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    b'A' + (state % 26) as u8
                })
                .collect();
            (None, Some(Bytes::from(value)))
        })
        .collect();
    let offsets: Vec<i64> = (0..RECORDS as i64).collect();
    let bytes = common::encode_records(&records, &offsets, compression);
    (bytes.freeze(), RECORDS * VALUE_BYTES)
}

fn main() {
    let check = RecordsCheck {
        keys_required: false,
        decompressed_bytes_max: 64 << 20,
    };
    for (name, compression) in [
        ("none", Compression::None),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
        ("snappy", Compression::Snappy),
        ("gzip", Compression::Gzip),
    ] {
        let (bytes, raw_bytes) = batch_of(compression);
        let header = batch::validate(&bytes).unwrap_or_else(|error| panic!("{name}: {error}"));
        let rounds = (TOTAL_BYTES / raw_bytes).max(1);
        let rounds = if compression == Compression::None {
            rounds
        } else {
            rounds / 8
        };
        let started = Instant::now();
        for _ in 0..rounds {
            validate_records(&bytes, &header, &check)
                .unwrap_or_else(|error| panic!("{name}: {error}"));
        }
        let elapsed = started.elapsed().as_secs_f64();
        let kib = (rounds * raw_bytes) as f64 / 1024.0;
        println!(
            "{name:>6}: {:>8.1} ns/KiB of records, {:>7.0} MB/s (batch {} bytes, {} records, {rounds} rounds)",
            elapsed * 1e9 / kib,
            (rounds * raw_bytes) as f64 / elapsed / 1e6,
            bytes.len(),
            RECORDS
        );
    }
}
