//! validate.rs: the records walk of a client batch. A table of poison batches
//! (right header and CRC, wrong records) and the error each gets; valid
//! batches of every codec, both snappy framings included, pass.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod common;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::Compression;
use sluice_log::batch::{self, BatchError, HEADER_BYTES};
use sluice_log::validate::{validate_records, RecordsCheck};
use sluice_testkit::batch::{replace_records, rewrite_crc, set_codec, set_record_count};

/// No key needed, 4 MiB decompressed at most (kafka-protocol's zstd frames
/// declare a 2 MiB window, which must fit).
const PLAIN: RecordsCheck = RecordsCheck {
    keys_required: false,
    decompressed_bytes_max: 4 << 20,
};

/// Records `(key, value)` at `offsets`, encoded by kafka-protocol.
fn encode(
    records: &[(Option<&str>, Vec<u8>)],
    offsets: &[i64],
    compression: Compression,
) -> BytesMut {
    let records: Vec<(Option<Bytes>, Option<Bytes>)> = records
        .iter()
        .map(|(key, value)| {
            let key = key.map(|key| Bytes::copy_from_slice(key.as_bytes()));
            (key, Some(Bytes::from(value.clone())))
        })
        .collect();
    common::encode_records(&records, offsets, compression)
}

/// `count` keyed records `value-i`, offsets 0.., under `compression`.
fn keyed(count: usize, compression: Compression) -> Vec<u8> {
    let records: Vec<(Option<&str>, Vec<u8>)> = (0..count)
        .map(|index| (Some("key"), format!("value-{index}").into_bytes()))
        .collect();
    let offsets: Vec<i64> = (0..count as i64).collect();
    encode(&records, &offsets, compression).to_vec()
}

/// `batch` with its records section replaced by `body`, codec `codec`,
/// recordCount `count` (lastOffsetDelta count - 1), length and CRC fixed.
fn rebuild(batch: &[u8], codec: i16, body: &[u8], count: i32) -> Vec<u8> {
    let mut out = replace_records(&batch[..HEADER_BYTES], body);
    set_codec(&mut out, codec);
    set_record_count(&mut out, count);
    rewrite_crc(&mut out);
    out.to_vec()
}

/// The uncompressed records section of a 3-record batch.
fn plain_records(count: usize) -> Vec<u8> {
    keyed(count, Compression::None)[HEADER_BYTES..].to_vec()
}

/// A varint record length, then `body`.
fn record(body: &[u8]) -> Vec<u8> {
    let mut out = vec![(body.len() as u8) << 1];
    out.extend_from_slice(body);
    out
}

/// Header and records check in the order the broker runs them.
fn check(bytes: &[u8], records: &RecordsCheck) -> Result<(), BatchError> {
    let header = batch::validate(bytes)?;
    validate_records(bytes, &header, records)
}

fn invalid_records() -> Result<(), BatchError> {
    Err(BatchError::InvalidRecords {
        reason: String::new(),
        record_index: None,
    })
}

fn invalid_record(index: i32) -> Result<(), BatchError> {
    Err(BatchError::InvalidRecords {
        reason: String::new(),
        record_index: Some(index),
    })
}

fn corrupt() -> Result<(), BatchError> {
    Err(BatchError::CorruptCompressed(String::new()))
}

/// Compares errors by variant and record index, not by their wording.
fn same_kind(got: &Result<(), BatchError>, want: &Result<(), BatchError>) -> bool {
    match (got, want) {
        (Ok(()), Ok(())) => true,
        (
            Err(BatchError::InvalidRecords {
                record_index: got, ..
            }),
            Err(BatchError::InvalidRecords {
                record_index: want, ..
            }),
        ) => got == want,
        (Err(BatchError::CorruptCompressed(_)), Err(BatchError::CorruptCompressed(_))) => true,
        (Err(got), Err(want)) => got == want,
        _ => false,
    }
}

#[test]
fn poison_batches_table() {
    let good = keyed(3, Compression::None);
    let garbage: Vec<u8> = (0..good.len() - HEADER_BYTES)
        .map(|index| [0xde, 0xad, 0xbe, 0xef][index % 4])
        .collect();
    let lz4 = keyed(3, Compression::Lz4);
    let lz4_body = &lz4[HEADER_BYTES..];
    let zstd = keyed(3, Compression::Zstd);
    let zstd_body = &zstd[HEADER_BYTES..];
    let records = plain_records(3);
    // attributes, timestampDelta 0, offsetDelta 0, key null, value null, headers.
    let one_record = |headers: &[u8]| {
        let mut body = vec![0, 0, 0, 1, 1];
        body.extend_from_slice(headers);
        record(&body)
    };
    // A value length of 20 in a record of 7 bytes.
    let long_field = record(&[0, 0, 0, 1, 40, b'x', 0]);
    let mut bad_offsets = plain_records(2);
    // Third record: offsetDelta 0 instead of 2.
    bad_offsets.extend_from_slice(&one_record(&[0])[..]);

    let cases: Vec<(&str, Vec<u8>, Result<(), BatchError>)> = vec![
        ("good", good.clone(), Ok(())),
        (
            "garbage under a correct CRC",
            rebuild(&good, 0, &garbage, 3),
            invalid_records(),
        ),
        (
            "count above the records",
            rebuild(&good, 0, &records, 5),
            invalid_records(),
        ),
        (
            "count below the records",
            rebuild(&good, 0, &records, 2),
            invalid_records(),
        ),
        (
            "trailing byte",
            rebuild(&good, 0, &[&records[..], &[0]].concat(), 3),
            invalid_records(),
        ),
        (
            "record cut short",
            rebuild(&good, 0, &records[..records.len() - 1], 3),
            invalid_records(),
        ),
        (
            "offsetDelta 0 for record 2",
            rebuild(&good, 0, &bad_offsets, 3),
            invalid_record(2),
        ),
        (
            "negative record length",
            rebuild(&good, 0, &[0x01], 1),
            invalid_record(0),
        ),
        (
            "value longer than its record",
            rebuild(&good, 0, &long_field, 1),
            invalid_record(0),
        ),
        (
            "record longer than its fields",
            rebuild(&good, 0, &record(&[0, 0, 0, 1, 1, 0, 7]), 1),
            invalid_record(0),
        ),
        (
            "negative header count",
            rebuild(&good, 0, &one_record(&[0x01]), 1),
            invalid_record(0),
        ),
        (
            "null header key",
            rebuild(&good, 0, &one_record(&[0x02, 0x01, 0x01]), 1),
            invalid_record(0),
        ),
        (
            "key length -2",
            rebuild(&good, 0, &record(&[0, 0, 0, 3, 1, 0]), 1),
            invalid_record(0),
        ),
        (
            "gzip over garbage",
            rebuild(&good, 1, &garbage, 3),
            corrupt(),
        ),
        (
            "snappy over garbage",
            rebuild(&good, 2, &garbage, 3),
            corrupt(),
        ),
        (
            "xerial snappy over garbage",
            rebuild(
                &good,
                2,
                &[
                    b"\x82SNAPPY\x00\0\0\0\x01\0\0\0\x01\0\0\0\x09",
                    &garbage[..],
                ]
                .concat(),
                3,
            ),
            corrupt(),
        ),
        (
            "lz4 over garbage",
            rebuild(&good, 3, &garbage, 3),
            corrupt(),
        ),
        (
            "zstd over garbage",
            rebuild(&good, 4, &garbage, 3),
            corrupt(),
        ),
        (
            "lz4 cut short",
            rebuild(&lz4, 3, &lz4_body[..lz4_body.len() - 6], 3),
            corrupt(),
        ),
        (
            "zstd cut short",
            rebuild(&zstd, 4, &zstd_body[..zstd_body.len() - 4], 3),
            corrupt(),
        ),
        (
            "lz4 with count 4 over 3 records",
            rebuild(&lz4, 3, lz4_body, 4),
            invalid_records(),
        ),
        (
            "zstd with count 2 over 3 records",
            rebuild(&zstd, 4, zstd_body, 2),
            invalid_records(),
        ),
        (
            "zstd frame declaring a 1 GiB window",
            rebuild(
                &good,
                4,
                &[0x28, 0xb5, 0x2f, 0xfd, 0x00, 20 << 3, 0, 0, 0],
                3,
            ),
            Err(BatchError::RecordsTooLarge {
                bytes_max: PLAIN.decompressed_bytes_max,
            }),
        ),
        (
            "codec 5",
            rebuild(&good, 5, &records, 3),
            Err(BatchError::UnsupportedCompression(5)),
        ),
        (
            "codec 6",
            rebuild(&good, 6, &records, 3),
            Err(BatchError::UnsupportedCompression(6)),
        ),
        (
            "codec 7",
            rebuild(&good, 7, &records, 3),
            Err(BatchError::UnsupportedCompression(7)),
        ),
    ];
    for (case, bytes, expected) in cases {
        let got = check(&bytes, &PLAIN);
        assert!(
            same_kind(&got, &expected),
            "{case}: got {got:?}, expected {expected:?}"
        );
    }
}

#[test]
fn compressed_inner_offsets_must_be_sequential() {
    let values: Vec<(Option<&str>, Vec<u8>)> = (0..3)
        .map(|index| (Some("k"), vec![b'v'; index + 1]))
        .collect();
    for compression in [Compression::Gzip, Compression::Lz4, Compression::Zstd] {
        let encoded = encode(&values, &[0, 1, 3], compression);
        let bytes = rebuild(
            &encoded,
            encoded[22] as i16 & 7,
            &encoded[HEADER_BYTES..],
            3,
        );
        let got = check(&bytes, &PLAIN);
        assert!(
            same_kind(&got, &invalid_record(2)),
            "{compression:?}: {got:?}"
        );
    }
}

#[test]
fn valid_batches_of_every_codec_pass() {
    let keys_required = RecordsCheck {
        keys_required: true,
        ..PLAIN
    };
    for compression in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        for count in [1, 3, 500] {
            let bytes = keyed(count, compression);
            assert_eq!(check(&bytes, &PLAIN), Ok(()), "{compression:?} x{count}");
            assert_eq!(
                check(&bytes, &keys_required),
                Ok(()),
                "{compression:?} x{count}"
            );
        }
    }
    // Raw (unframed) snappy, as librdkafka writes it.
    let plain = keyed(500, Compression::None);
    let raw = snap::raw::Encoder::new()
        .compress_vec(&plain[HEADER_BYTES..])
        .unwrap();
    assert_eq!(check(&rebuild(&plain, 2, &raw, 500), &PLAIN), Ok(()));
    // A record with a null key, value "v" and two headers: ("h", "w"), ("h", null).
    let body = [
        &[0u8, 0, 0, 1, 2, b'v', 4][..],
        &[2, b'h', 2, b'w'],
        &[2, b'h', 1],
    ]
    .concat();
    assert_eq!(
        check(&rebuild(&plain, 0, &record(&body), 1), &PLAIN),
        Ok(())
    );
}

#[test]
fn keyless_records_of_a_compacted_topic_are_listed() {
    let records: Vec<(Option<&str>, Vec<u8>)> = vec![
        (Some("a"), b"0".to_vec()),
        (None, b"1".to_vec()),
        (Some("c"), b"2".to_vec()),
        (None, b"3".to_vec()),
    ];
    let keys_required = RecordsCheck {
        keys_required: true,
        ..PLAIN
    };
    for compression in [Compression::None, Compression::Lz4] {
        let bytes = encode(&records, &[0, 1, 2, 3], compression).to_vec();
        assert_eq!(check(&bytes, &PLAIN), Ok(()));
        assert_eq!(
            check(&bytes, &keys_required),
            Err(BatchError::MissingKeys {
                record_indexes: vec![1, 3]
            }),
            "{compression:?}"
        );
    }
}

#[test]
fn decompression_is_bounded() {
    // 16 MiB of zeros in one record compresses to under 1 MiB with every codec.
    let bomb: Vec<(Option<&str>, Vec<u8>)> = vec![(Some("k"), vec![0u8; 16 << 20])];
    for compression in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let bytes = encode(&bomb, &[0], compression).to_vec();
        assert!(
            bytes.len() < 1 << 20,
            "{compression:?}: {} bytes",
            bytes.len()
        );
        assert_eq!(
            check(&bytes, &PLAIN),
            Err(BatchError::RecordsTooLarge {
                bytes_max: PLAIN.decompressed_bytes_max
            }),
            "{compression:?}"
        );
        let roomy = RecordsCheck {
            // Room for the records and for zstd's window.
            decompressed_bytes_max: 32 << 20,
            ..PLAIN
        };
        assert_eq!(
            check(&bytes, &roomy),
            Ok(()),
            "{compression:?} under the bound"
        );
    }
}
