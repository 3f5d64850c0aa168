//! Kafka's record formats in `__transaction_state`, so the topic reads like
//! Kafka's: TransactionLogKey v0 (`version: int16, transactional_id:
//! string`) and TransactionLogValue v0 (`version: int16, producer_id: int64,
//! producer_epoch: int16, transaction_timeout_ms: int32, transaction_status:
//! int8, transaction_partitions: [topic: string, partition_ids: [int32]]
//! (nullable), last_update_timestamp_ms: int64, start_timestamp_ms: int64`).
//! A null value is a tombstone (the id expired). Values of a later version
//! (flexible, Kafka 4's v1) are decoded up to the v0 fields.

use std::collections::BTreeSet;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::state::{TxnMetadata, TxnState};

/// TransactionLogKey v0.
pub fn key(transactional_id: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + transactional_id.len());
    buf.put_i16(0);
    put_string(&mut buf, transactional_id);
    buf.freeze()
}

/// The transactional id of a key, if it is one.
pub fn decode_key(mut buf: &[u8]) -> Option<String> {
    if buf.remaining() < 2 || buf.get_i16() != 0 {
        return None;
    }
    get_string(&mut buf)
}

/// TransactionLogValue v0 of `txn`.
pub fn value(txn: &TxnMetadata) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(0);
    buf.put_i64(txn.producer_id);
    buf.put_i16(txn.producer_epoch);
    buf.put_i32(txn.timeout_ms);
    buf.put_i8(txn.state.code());
    // Kafka writes the partitions grouped by topic.
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &txn.partitions {
        match topics.last_mut() {
            Some((name, list)) if *name == topic.as_str() => list.push(*partition),
            _ => topics.push((topic.as_str(), vec![*partition])),
        }
    }
    buf.put_i32(topics.len() as i32);
    for (topic, partitions) in topics {
        put_string(&mut buf, topic);
        buf.put_i32(partitions.len() as i32);
        for partition in partitions {
            buf.put_i32(partition);
        }
    }
    buf.put_i64(txn.last_update_ms);
    buf.put_i64(txn.start_ms);
    buf.freeze()
}

/// The metadata a value describes (None: damaged).
pub fn decode_value(transactional_id: &str, mut buf: &[u8]) -> Option<TxnMetadata> {
    if buf.remaining() < 2 + 8 + 2 + 4 + 1 + 4 {
        return None;
    }
    let version = buf.get_i16();
    if version < 0 {
        return None;
    }
    let producer_id = buf.get_i64();
    let producer_epoch = buf.get_i16();
    let timeout_ms = buf.get_i32();
    let state = TxnState::from_code(buf.get_i8())?;
    let flexible = version >= 1;
    let topic_count = if flexible {
        get_unsigned_varint(&mut buf)? as i64 - 1
    } else {
        i64::from(buf.get_i32())
    };
    let mut partitions = BTreeSet::new();
    for _ in 0..topic_count.max(0) {
        let topic = if flexible {
            get_compact_string(&mut buf)?
        } else {
            get_string(&mut buf)?
        };
        let count = if flexible {
            get_unsigned_varint(&mut buf)? as i64 - 1
        } else {
            if buf.remaining() < 4 {
                return None;
            }
            i64::from(buf.get_i32())
        };
        if count < 0 || buf.remaining() < count as usize * 4 {
            return None;
        }
        for _ in 0..count {
            partitions.insert((topic.clone(), buf.get_i32()));
        }
        if flexible {
            skip_tagged_fields(&mut buf)?;
        }
    }
    if buf.remaining() < 16 {
        return None;
    }
    let last_update_ms = buf.get_i64();
    let start_ms = buf.get_i64();
    Some(TxnMetadata {
        transactional_id: transactional_id.to_string(),
        producer_id,
        producer_epoch,
        timeout_ms,
        state,
        partitions,
        start_ms,
        last_update_ms,
    })
}

fn put_string(buf: &mut BytesMut, text: &str) {
    buf.put_i16(text.len().min(i16::MAX as usize) as i16);
    buf.put_slice(&text.as_bytes()[..text.len().min(i16::MAX as usize)]);
}

fn get_string(buf: &mut &[u8]) -> Option<String> {
    if buf.remaining() < 2 {
        return None;
    }
    let length = buf.get_i16();
    if length < 0 || buf.remaining() < length as usize {
        return None;
    }
    let text = String::from_utf8(buf[..length as usize].to_vec()).ok()?;
    buf.advance(length as usize);
    Some(text)
}

fn get_unsigned_varint(buf: &mut &[u8]) -> Option<u32> {
    let mut value = 0u32;
    for shift in (0..35).step_by(7) {
        if !buf.has_remaining() {
            return None;
        }
        let byte = buf.get_u8();
        value |= u32::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn get_compact_string(buf: &mut &[u8]) -> Option<String> {
    let length = get_unsigned_varint(buf)?.checked_sub(1)? as usize;
    if buf.remaining() < length {
        return None;
    }
    let text = String::from_utf8(buf[..length].to_vec()).ok()?;
    buf.advance(length);
    Some(text)
}

fn skip_tagged_fields(buf: &mut &[u8]) -> Option<()> {
    let count = get_unsigned_varint(buf)?;
    for _ in 0..count {
        get_unsigned_varint(buf)?;
        let size = get_unsigned_varint(buf)? as usize;
        if buf.remaining() < size {
            return None;
        }
        buf.advance(size);
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_and_value_round_trip() {
        let mut txn = TxnMetadata::new("my-txn", 42, 60_000, 1_000);
        txn.producer_epoch = 3;
        txn.state = TxnState::Ongoing;
        txn.start_ms = 900;
        txn.partitions
            .extend([("a".to_string(), 1), ("a".to_string(), 0), ("b".into(), 5)]);
        let key = key("my-txn");
        assert_eq!(&key[..], b"\x00\x00\x00\x06my-txn");
        assert_eq!(decode_key(&key).as_deref(), Some("my-txn"));
        let value = value(&txn);
        assert_eq!(decode_value("my-txn", &value), Some(txn));
        assert_eq!(decode_value("my-txn", &value[..value.len() - 1]), None);
        assert_eq!(decode_key(b"\x00\x01\x00\x00"), None);
    }
}
