//! Log compaction on constructed segments: latest value per key, offsets and
//! gaps, tombstones, every codec (both snappy framings), dirty ratio and lags,
//! crash leftovers. Transactions and the throttle: `cleaner_transactions.rs`.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use common::cleaning::{
    append, clean, compact_config, fill_updates, read_all, roll, survivors, topic_id, T0,
};
use common::{
    batch_headers, decode_records, keyed_batch, options, BatchKind, Decoded, KeyedRecord,
};
use kafka_protocol::records::Compression;
use sluice_log::{Log, LogConfig};
use sluice_testkit::batch::{replace_records, rewrite_crc, set_codec};

#[test]
fn latest_value_per_key_offsets_preserved_and_stable_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), compact_config(), topic_id(), None).unwrap();
    let mut expected = fill_updates(&log, 50, Compression::None);
    // One more update of the even keys: survivors are spread, with gaps.
    let keys: Vec<String> = (0..100)
        .step_by(2)
        .map(|index| format!("key-{index:03}"))
        .collect();
    let records: Vec<KeyedRecord<'_>> = keys
        .iter()
        .map(|key| (Some(key.as_str()), Some("final"), T0 + 50))
        .collect();
    let base = append(&log, &records, Compression::None, BatchKind::default());
    for (index, key) in keys.iter().enumerate() {
        expected.insert(
            key.clone(),
            (base + index as i64, Some(Bytes::from("final"))),
        );
    }
    let end = log.log_end_offset();
    assert_eq!(end, 5050);
    roll(&log);
    let result = clean(&log, T0 + 1_000, end).unwrap();
    assert_eq!(result.records_removed, 4950);
    assert!(result.segments_cleaned > 1);
    assert!(result.bytes_written < result.bytes_read / 10);
    let bytes = read_all(&log);
    let records = decode_records(&bytes);
    assert_eq!(survivors(&records), expected);
    assert!(
        records.windows(2).any(|pair| pair[1].0 > pair[0].0 + 1),
        "gaps"
    );
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.log_start_offset(), 0);
    // Fetching at an offset that was cleaned away returns the next batch.
    let from_middle = log.read(2500, end, usize::MAX, true).unwrap().records;
    let first = decode_records(&from_middle);
    assert!(!first.is_empty() && first.iter().all(|(offset, _, _)| *offset >= 4900));
    // Nothing dirty: a second pass does nothing.
    assert_eq!(clean(&log, T0 + 1_000, end).unwrap(), Default::default());
    assert!(dir
        .path()
        .join(sluice_log::CLEANER_OFFSET_CHECKPOINT)
        .exists());
    log.close().unwrap();
    drop(log);
    for recovery_point in [None, Some(0)] {
        let log = Log::open(dir.path(), compact_config(), topic_id(), recovery_point).unwrap();
        assert_eq!(read_all(&log), bytes, "reopen with {recovery_point:?}");
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(clean(&log, T0 + 1_000, end).unwrap(), Default::default());
        log.close().unwrap();
    }
}

#[test]
fn tombstones_kept_before_delete_retention_and_removed_after() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        delete_retention_ms: 1_000,
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config()
    };
    let log = Log::open(dir.path(), config, topic_id(), None).unwrap();
    let plain = BatchKind::default();
    append(
        &log,
        &[
            (Some("a"), Some("a1"), T0),
            (Some("b"), Some("b1"), T0),
            (Some("c"), Some("c1"), T0),
        ],
        Compression::None,
        plain,
    );
    append(
        &log,
        &[
            (Some("a"), None, T0 + 10),
            (Some("b"), None, T0 + 10),
            (Some("c"), Some("c2"), T0 + 10),
        ],
        Compression::None,
        plain,
    );
    append(
        &log,
        &[(None, Some("keyless"), T0 + 10)],
        Compression::None,
        plain,
    );
    roll(&log);
    // Before the horizon: tombstones stay, the values they cover go.
    let result = clean(&log, T0 + 500, log.log_end_offset()).unwrap();
    assert_eq!(result.records_removed, 3);
    let records = decode_records(&read_all(&log));
    type Summary<'a> = (i64, Option<&'a [u8]>, Option<&'a [u8]>);
    let summary: Vec<Summary<'_>> = records
        .iter()
        .map(|(offset, key, value)| (*offset, key.as_deref(), value.as_deref()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (3, Some(&b"a"[..]), None),
            (4, Some(&b"b"[..]), None),
            (5, Some(&b"c"[..]), Some(&b"c2"[..])),
            (6, None, Some(&b"keyless"[..])),
        ]
    );
    // New dirty data, a pass after the horizon: the tombstones go.
    append(
        &log,
        &[
            (Some("d"), Some("d1"), T0 + 20),
            (Some("d"), Some("d2"), T0 + 20),
        ],
        Compression::None,
        plain,
    );
    roll(&log);
    let result = clean(&log, T0 + 10 + 1_001, log.log_end_offset()).unwrap();
    assert_eq!(result.records_removed, 3);
    let records = decode_records(&read_all(&log));
    let offsets: Vec<i64> = records.iter().map(|record| record.0).collect();
    assert_eq!(offsets, vec![5, 6, 8]);
}

#[test]
fn tombstones_past_the_horizon_go_in_the_first_pass() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), compact_config(), topic_id(), None).unwrap();
    append(
        &log,
        &[(Some("a"), Some("a1"), T0), (Some("a"), None, T0)],
        Compression::None,
        BatchKind::default(),
    );
    append(
        &log,
        &[(Some("b"), Some("b1"), T0)],
        Compression::None,
        BatchKind::default(),
    );
    roll(&log);
    let day = LogConfig::default().delete_retention_ms;
    clean(&log, T0 + day + 1, log.log_end_offset()).unwrap();
    let records = decode_records(&read_all(&log));
    assert_eq!(
        records.iter().map(|record| record.0).collect::<Vec<_>>(),
        vec![2]
    );
    // The first batch lost every record and is dropped; the last one stays.
    let headers = batch_headers(&read_all(&log));
    assert_eq!(headers.len(), 1);
    assert_eq!(headers[0].base_offset, 2);
}

/// Rebuilds an uncompressed batch as snappy-compressed by hand: xerial
/// framing with `block_bytes` blocks, or raw snappy.
fn hand_made_snappy(uncompressed: &[u8], xerial: Option<usize>) -> BytesMut {
    let section = &uncompressed[61..];
    let payload = match xerial {
        Some(block_bytes) => {
            let mut framed = b"\x82SNAPPY\x00".to_vec();
            framed.extend_from_slice(&1i32.to_be_bytes());
            framed.extend_from_slice(&1i32.to_be_bytes());
            for block in section.chunks(block_bytes) {
                let compressed = snap::raw::Encoder::new().compress_vec(block).unwrap();
                framed.extend_from_slice(&(compressed.len() as i32).to_be_bytes());
                framed.extend_from_slice(&compressed);
            }
            framed
        }
        None => snap::raw::Encoder::new().compress_vec(section).unwrap(),
    };
    let mut batch = replace_records(uncompressed, &payload);
    set_codec(&mut batch, 2);
    rewrite_crc(&mut batch);
    batch
}

#[test]
fn every_codec_is_decoded_and_rewritten_with_itself() {
    // (name, codec for the encoder, hand-made snappy framing)
    type Case = (&'static str, Compression, Option<Option<usize>>);
    let cases: Vec<Case> = vec![
        ("none", Compression::None, None),
        ("gzip", Compression::Gzip, None),
        ("snappy (kafka-protocol, xerial)", Compression::Snappy, None),
        (
            "snappy xerial by hand, 2+ blocks",
            Compression::None,
            Some(Some(64)),
        ),
        ("snappy raw by hand", Compression::None, Some(None)),
        ("lz4", Compression::Lz4, None),
        ("zstd", Compression::Zstd, None),
    ];
    for (name, compression, hand_made) in cases {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path(), compact_config(), topic_id(), None).unwrap();
        let mut expected = BTreeMap::new();
        for round in 0..20 {
            let keys: Vec<String> = (0..5)
                .map(|index| format!("k{}", (round * 5 + index) % 12))
                .collect();
            let values: Vec<String> = keys
                .iter()
                .map(|key| format!("{key}-{round}-{}", "v".repeat(30)))
                .collect();
            let records: Vec<KeyedRecord<'_>> = keys
                .iter()
                .zip(&values)
                .map(|(key, value)| (Some(key.as_str()), Some(value.as_str()), T0))
                .collect();
            let mut batch = keyed_batch(&records, compression, BatchKind::default());
            if let Some(framing) = hand_made {
                batch = hand_made_snappy(&batch, framing);
            }
            let base = log.append(&mut batch, options(0)).unwrap().base_offset;
            for (index, (key, value)) in keys.iter().zip(&values).enumerate() {
                expected.insert(
                    key.clone(),
                    (base + index as i64, Some(Bytes::from(value.clone()))),
                );
            }
        }
        let before: Vec<bool> = xerial_framing(&read_all(&log));
        roll(&log);
        let result = clean(&log, T0, log.log_end_offset()).unwrap();
        assert_eq!(result.records_removed, 100 - 12, "{name}");
        let bytes = read_all(&log);
        assert_eq!(survivors(&decode_records(&bytes)), expected, "{name}");
        let codec = if hand_made.is_some() {
            2
        } else {
            compression as u8
        };
        for header in batch_headers(&bytes)
            .iter()
            .filter(|header| header.record_count > 0)
        {
            assert_eq!(header.compression(), codec, "{name}");
        }
        if codec == 2 {
            let after = xerial_framing(&bytes);
            assert!(
                after.iter().all(|xerial| *xerial == before[0]),
                "{name}: framing kept"
            );
        }
    }
}

/// For each snappy batch in `bytes`: whether its payload is xerial-framed.
fn xerial_framing(bytes: &[u8]) -> Vec<bool> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let header = sluice_log::batch::parse_header(rest).unwrap();
        if header.compression() == 2 {
            out.push(rest[61..].starts_with(b"\x82SNAPPY\x00"));
        }
        rest = &rest[header.total_bytes()..];
    }
    out
}

#[test]
fn dirty_ratio_and_compaction_lags_decide_whether_cleaning_runs() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path(), compact_config(), topic_id(), None).unwrap();
    fill_updates(&log, 10, Compression::None);
    roll(&log);
    // Younger than min.compaction.lag.ms: nothing is cleanable yet.
    log.set_config(LogConfig {
        min_compaction_lag_ms: 1_000,
        ..compact_config()
    });
    assert_eq!(
        clean(&log, T0 + 500, log.log_end_offset()).unwrap(),
        Default::default()
    );
    // Above the high watermark: not cleanable either.
    log.set_config(compact_config());
    assert_eq!(clean(&log, T0 + 500, 0).unwrap(), Default::default());
    assert!(
        clean(&log, T0 + 500, log.log_end_offset())
            .unwrap()
            .records_removed
            > 0
    );
    // A little new dirty data: under the 0.5 ratio, nothing happens...
    append(
        &log,
        &[(Some("key-000"), Some("late"), T0 + 100)],
        Compression::None,
        BatchKind::default(),
    );
    roll(&log);
    assert_eq!(
        clean(&log, T0 + 500, log.log_end_offset()).unwrap(),
        Default::default()
    );
    // ...unless max.compaction.lag.ms has passed for the first dirty batch.
    log.set_config(LogConfig {
        max_compaction_lag_ms: 300,
        ..compact_config()
    });
    assert_eq!(
        clean(&log, T0 + 500, log.log_end_offset())
            .unwrap()
            .records_removed,
        1
    );
    // Not compacted by policy: nothing.
    log.set_config(LogConfig {
        cleanup_policy_compact: false,
        min_cleanable_dirty_ratio: 0.0,
        ..compact_config()
    });
    append(
        &log,
        &[(Some("key-000"), Some("later"), T0 + 100)],
        Compression::None,
        BatchKind::default(),
    );
    roll(&log);
    assert_eq!(
        clean(&log, T0 + 500, log.log_end_offset()).unwrap(),
        Default::default()
    );
}

/// Two identical logs in `a` and `b` with many closed segments; returns the
/// end offset.
fn twin_logs(a: &Path, b: &Path) -> i64 {
    let mut end = 0;
    for dir in [a, b] {
        let log = Log::open(dir, compact_config(), topic_id(), None).unwrap();
        fill_updates(&log, 8, Compression::Lz4);
        roll(&log);
        end = log.log_end_offset();
        log.close().unwrap();
    }
    end
}

fn log_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".log"))
        .collect();
    names.sort();
    names
}

#[test]
fn crash_leaves_cleaned_or_swap_files_and_open_settles_them() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let end = twin_logs(a.path(), b.path());
    let original = {
        let log = Log::open(a.path(), compact_config(), topic_id(), None).unwrap();
        let bytes = read_all(&log);
        log.close().unwrap();
        bytes
    };
    assert!(log_names(a.path()).len() > 3);
    // Clean b, merging every closed segment into one (bigger segment.bytes).
    let cleaned = {
        let config = LogConfig {
            segment_bytes: 1 << 20,
            ..compact_config()
        };
        let log = Log::open(b.path(), config, topic_id(), None).unwrap();
        let result = clean(&log, T0 + 100, end).unwrap();
        assert_eq!(result.segments_cleaned, log_names(a.path()).len() - 1);
        let bytes = read_all(&log);
        log.close().unwrap();
        bytes
    };
    assert_eq!(log_names(b.path()).len(), 2);
    let cleaned_segment = std::fs::read(b.path().join("00000000000000000000.log")).unwrap();

    // Crash before the swap: a `.cleaned` output next to the originals.
    std::fs::write(
        a.path().join("00000000000000000000.log.cleaned"),
        &cleaned_segment,
    )
    .unwrap();
    std::fs::write(a.path().join("00000000000000000000.index.cleaned"), b"junk").unwrap();
    let log = Log::open(a.path(), compact_config(), topic_id(), Some(0)).unwrap();
    assert_eq!(read_all(&log), original, "cleaned files discarded");
    assert!(log_names(a.path())
        .iter()
        .all(|name| !name.ends_with(".cleaned")));
    log.close().unwrap();
    drop(log);

    // Crash mid-swap: the swap file is there, the first two originals were
    // already renamed to `.deleted`, the others not.
    std::fs::write(
        a.path().join("00000000000000000000.log.swap"),
        &cleaned_segment,
    )
    .unwrap();
    std::fs::write(a.path().join("00000000000000000000.index.swap"), b"").unwrap();
    let originals = log_names(a.path());
    for name in originals
        .iter()
        .filter(|name| name.ends_with(".log"))
        .take(2)
    {
        std::fs::rename(
            a.path().join(name),
            a.path().join(format!("{name}.deleted")),
        )
        .unwrap();
    }
    let log = Log::open(a.path(), compact_config(), topic_id(), Some(0)).unwrap();
    assert_eq!(read_all(&log), cleaned, "swap completed");
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log_names(a.path()), log_names(b.path()));
    // Every offset is readable: a fetch at each one returns its batch.
    for offset in (0..end).step_by(97) {
        let read = log.read(offset, end, 1, true).unwrap().records;
        let header = sluice_log::batch::parse_header(&read).unwrap();
        assert!(header.last_offset() >= offset);
    }
    log.close().unwrap();
}

#[test]
fn readers_during_cleaning_see_whole_consistent_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log =
        std::sync::Arc::new(Log::open(dir.path(), compact_config(), topic_id(), None).unwrap());
    let expected = fill_updates(&log, 30, Compression::Zstd);
    roll(&log);
    let end = log.log_end_offset();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (log, stop) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut reads = 0;
            while !stop.load(std::sync::atomic::Ordering::Acquire) || reads == 0 {
                let records = decode_records(&read_all(&log));
                let latest = survivors_last(&records);
                assert_eq!(latest.len(), 100);
                reads += 1;
            }
            reads
        })
    };
    clean(&log, T0 + 100, end).unwrap();
    stop.store(true, std::sync::atomic::Ordering::Release);
    assert!(reader.join().unwrap() > 0);
    assert_eq!(survivors(&decode_records(&read_all(&log))), expected);
}

/// Latest record per key (duplicates allowed: before cleaning).
fn survivors_last(records: &[Decoded]) -> BTreeMap<Bytes, i64> {
    assert!(
        records.windows(2).all(|pair| pair[0].0 < pair[1].0),
        "offsets increase"
    );
    records
        .iter()
        .map(|(offset, key, _)| (key.clone().unwrap(), *offset))
        .collect()
}
