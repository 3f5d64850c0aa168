//! The control-record codec, Kafka's `ControlRecordType` and
//! `EndTransactionMarker`: the one place the bytes of a transaction marker's
//! record are written and read.
//!
//! A control batch (attributes bit 5) holds one record whose key is
//! (version i16, type i16), type 0 = ABORT, 1 = COMMIT (Kafka has further
//! types: leader change, KRaft's snapshot and voter records). A marker's value
//! is (version i16, coordinator epoch i32). Version 0 throughout. A leaf
//! module: it works on key and value bytes, not on batches.

/// The control record key's version and the marker value's version written.
const CONTROL_RECORD_VERSION: i16 = 0;
/// Key type of an ABORT marker.
const ABORT_TYPE: i16 = 0;
/// Key type of a COMMIT marker.
const COMMIT_TYPE: i16 = 1;
/// Bytes of a control record key: version and type.
pub const CONTROL_KEY_BYTES: usize = 4;

/// What a transaction marker (an end-transaction control batch) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// The transaction's records are discarded by read_committed consumers.
    Abort,
    /// The transaction's records become visible to read_committed consumers.
    Commit,
}

/// The type of a control record, as read from its key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ControlType {
    /// Type 0.
    Abort,
    /// Type 1.
    Commit,
    /// Any other type (Kafka has leader-change and KRaft ones).
    Other,
}

impl ControlType {
    /// The transaction marker this type is, if it is one.
    pub fn marker(self) -> Option<Marker> {
        match self {
            ControlType::Abort => Some(Marker::Abort),
            ControlType::Commit => Some(Marker::Commit),
            ControlType::Other => None,
        }
    }
}

/// The key of a marker's control record: version 0 and the marker's type.
pub fn encode_key(marker: Marker) -> [u8; CONTROL_KEY_BYTES] {
    let kind = match marker {
        Marker::Abort => ABORT_TYPE,
        Marker::Commit => COMMIT_TYPE,
    };
    let mut key = [0u8; CONTROL_KEY_BYTES];
    key[..2].copy_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
    key[2..].copy_from_slice(&kind.to_be_bytes());
    key
}

/// The value of a marker's control record: version 0 and the epoch of the
/// transaction coordinator that wrote it.
pub fn encode_marker_value(coordinator_epoch: i32) -> [u8; 6] {
    let mut value = [0u8; 6];
    value[..2].copy_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
    value[2..].copy_from_slice(&coordinator_epoch.to_be_bytes());
    value
}

/// The coordinator epoch in a marker's value (any version: Kafka reads
/// the epoch after the version); `None` when the value is too short.
pub fn decode_marker_value(value: &[u8]) -> Option<i32> {
    let epoch = value.get(2..6)?;
    Some(i32::from_be_bytes([epoch[0], epoch[1], epoch[2], epoch[3]]))
}

/// The type in a control record's key; `None` when the key is shorter than
/// its version and type. The version is not checked (as Kafka, which reads
/// the type of any version).
pub fn decode_key(key: &[u8]) -> Option<ControlType> {
    let kind = key.get(2..CONTROL_KEY_BYTES)?;
    Some(match i16::from_be_bytes([kind[0], kind[1]]) {
        ABORT_TYPE => ControlType::Abort,
        COMMIT_TYPE => ControlType::Commit,
        _ => ControlType::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire bytes, written out by hand, against the codec.
    #[test]
    fn keys_and_values_round_trip() {
        let cases: [(&[u8], Option<ControlType>); 6] = [
            (&[0, 0, 0, 0], Some(ControlType::Abort)),
            (&[0, 0, 0, 1], Some(ControlType::Commit)),
            (&[0, 0, 0, 2], Some(ControlType::Other)),
            (&[0, 1, 0, 1], Some(ControlType::Commit)),
            (&[0, 0, 0], None),
            (&[], None),
        ];
        for (key, expected) in cases {
            assert_eq!(decode_key(key), expected, "{key:?}");
        }
        assert_eq!(encode_key(Marker::Abort), [0, 0, 0, 0]);
        assert_eq!(encode_key(Marker::Commit), [0, 0, 0, 1]);
        for marker in [Marker::Abort, Marker::Commit] {
            let decoded = decode_key(&encode_key(marker)).and_then(ControlType::marker);
            assert_eq!(decoded, Some(marker));
        }
        assert_eq!(encode_marker_value(7), [0, 0, 0, 0, 0, 7]);
        assert_eq!(decode_marker_value(&encode_marker_value(7)), Some(7));
        assert_eq!(decode_marker_value(&[0, 0, 0, 0, 1, 0]), Some(256));
        assert_eq!(decode_marker_value(&[0, 0, 0, 0, 1]), None);
    }
}
