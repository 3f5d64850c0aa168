//! Kafka's record formats in `__consumer_offsets`, so that the topic reads
//! the same as Kafka's: keys OffsetCommitKey (version 1) and
//! GroupMetadataKey (version 2); values OffsetCommitValue (version 3) and
//! GroupMetadataValue (version 3), all in the non-flexible encoding
//! (big-endian ints, INT16-length strings, INT32-length bytes). A null value
//! is a tombstone. Reading accepts OffsetCommitValue versions 0–3.

use bytes::{BufMut, Bytes, BytesMut};

use super::state::CommittedOffset;

/// Key version of an offset commit (0 and 1 have the same layout).
const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
/// Key version of a group metadata record.
const GROUP_METADATA_KEY_VERSION: i16 = 2;
/// Value version written for offsets (offset, leader epoch, metadata, commit time).
const OFFSET_COMMIT_VALUE_VERSION: i16 = 3;
/// Value version written for groups (with group_instance_id).
const GROUP_METADATA_VALUE_VERSION: i16 = 3;

/// A decoded record key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RecordKey {
    /// An offset commit of (group, topic, partition).
    Offset {
        /// Group id.
        group_id: String,
        /// Topic name.
        topic: String,
        /// Partition index.
        partition: i32,
    },
    /// A group's metadata.
    Group {
        /// Group id.
        group_id: String,
    },
}

/// A member as stored in GroupMetadataValue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMember {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// client.id.
    pub client_id: String,
    /// Peer address.
    pub client_host: String,
    /// Rebalance timeout.
    pub rebalance_timeout_ms: i32,
    /// Session timeout.
    pub session_timeout_ms: i32,
    /// Metadata for the chosen protocol.
    pub subscription: Bytes,
    /// The assignment the leader gave.
    pub assignment: Bytes,
}

/// GroupMetadataValue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredGroup {
    /// Protocol type ("" for none).
    pub protocol_type: String,
    /// Generation.
    pub generation_id: i32,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// Leader member id.
    pub leader: Option<String>,
    /// When the group entered its current state.
    pub state_timestamp_ms: i64,
    /// Members with their assignments.
    pub members: Vec<StoredMember>,
}

fn put_string(buf: &mut BytesMut, value: &str) {
    let bytes = value.as_bytes();
    let len = bytes.len().min(i16::MAX as usize);
    buf.put_i16(len as i16);
    buf.put_slice(&bytes[..len]);
}

fn put_nullable_string(buf: &mut BytesMut, value: Option<&str>) {
    match value {
        Some(value) => put_string(buf, value),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, value: &[u8]) {
    buf.put_i32(value.len() as i32);
    buf.put_slice(value);
}

/// The key of an offset commit.
pub fn offset_key(group_id: &str, topic: &str, partition: i32) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(OFFSET_COMMIT_KEY_VERSION);
    put_string(&mut buf, group_id);
    put_string(&mut buf, topic);
    buf.put_i32(partition);
    buf.freeze()
}

/// The key of a group metadata record.
pub fn group_key(group_id: &str) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(GROUP_METADATA_KEY_VERSION);
    put_string(&mut buf, group_id);
    buf.freeze()
}

/// An OffsetCommitValue v3.
pub fn offset_value(offset: &CommittedOffset) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(OFFSET_COMMIT_VALUE_VERSION);
    buf.put_i64(offset.offset);
    buf.put_i32(offset.leader_epoch);
    put_string(&mut buf, &offset.metadata);
    buf.put_i64(offset.commit_timestamp_ms);
    buf.freeze()
}

/// A GroupMetadataValue v3.
pub fn group_value(group: &StoredGroup) -> Bytes {
    let mut buf = BytesMut::new();
    buf.put_i16(GROUP_METADATA_VALUE_VERSION);
    put_string(&mut buf, &group.protocol_type);
    buf.put_i32(group.generation_id);
    put_nullable_string(&mut buf, group.protocol_name.as_deref());
    put_nullable_string(&mut buf, group.leader.as_deref());
    buf.put_i64(group.state_timestamp_ms);
    buf.put_i32(group.members.len() as i32);
    for member in &group.members {
        put_string(&mut buf, &member.member_id);
        put_nullable_string(&mut buf, member.group_instance_id.as_deref());
        put_string(&mut buf, &member.client_id);
        put_string(&mut buf, &member.client_host);
        buf.put_i32(member.rebalance_timeout_ms);
        buf.put_i32(member.session_timeout_ms);
        put_bytes(&mut buf, &member.subscription);
        put_bytes(&mut buf, &member.assignment);
    }
    buf.freeze()
}

/// A bounds-checked reader over bytes from the disk.
struct Reader {
    /// What is left to read.
    bytes: Bytes,
}

impl Reader {
    fn take(&mut self, n: usize) -> Option<Bytes> {
        (self.bytes.len() >= n).then(|| self.bytes.split_to(n))
    }
    fn i16(&mut self) -> Option<i16> {
        self.take(2).map(|b| i16::from_be_bytes([b[0], b[1]]))
    }
    fn i32(&mut self) -> Option<i32> {
        self.take(4)
            .map(|b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i64(&mut self) -> Option<i64> {
        let b = self.take(8)?;
        let mut array = [0u8; 8];
        array.copy_from_slice(&b);
        Some(i64::from_be_bytes(array))
    }
    fn nullable_string(&mut self) -> Option<Option<String>> {
        let len = self.i16()?;
        if len < 0 {
            return Some(None);
        }
        let bytes = self.take(len as usize)?;
        String::from_utf8(bytes.to_vec()).ok().map(Some)
    }
    fn string(&mut self) -> Option<String> {
        self.nullable_string()?
    }
    fn bytes(&mut self) -> Option<Bytes> {
        let len = self.i32()?;
        if len < 0 {
            return Some(Bytes::new());
        }
        self.take(len as usize)
    }
}

/// Decodes a key; None for keys of other kinds or damaged ones.
pub fn decode_key(key: &Bytes) -> Option<RecordKey> {
    let mut reader = Reader { bytes: key.clone() };
    match reader.i16()? {
        0 | 1 => Some(RecordKey::Offset {
            group_id: reader.string()?,
            topic: reader.string()?,
            partition: reader.i32()?,
        }),
        2 => Some(RecordKey::Group {
            group_id: reader.string()?,
        }),
        _ => None,
    }
}

/// Decodes an OffsetCommitValue (versions 0–3).
pub fn decode_offset_value(value: &Bytes) -> Option<CommittedOffset> {
    let mut reader = Reader {
        bytes: value.clone(),
    };
    let version = reader.i16()?;
    let offset = reader.i64()?;
    let leader_epoch = if version >= 3 { reader.i32()? } else { -1 };
    let metadata = reader.string()?;
    let commit_timestamp_ms = reader.i64()?;
    if version > 3 {
        return None;
    }
    Some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

/// Decodes a GroupMetadataValue (version 3; versions 0–2 lack fields that
/// default here).
pub fn decode_group_value(value: &Bytes) -> Option<StoredGroup> {
    let mut reader = Reader {
        bytes: value.clone(),
    };
    let version = reader.i16()?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let protocol_type = reader.string()?;
    let generation_id = reader.i32()?;
    let protocol_name = reader.nullable_string()?;
    let leader = reader.nullable_string()?;
    let state_timestamp_ms = if version >= 2 { reader.i64()? } else { -1 };
    let count = reader.i32()?.max(0) as usize;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let member_id = reader.string()?;
        let group_instance_id = if version >= 3 {
            reader.nullable_string()?
        } else {
            None
        };
        let client_id = reader.string()?;
        let client_host = reader.string()?;
        let rebalance_timeout_ms = if version >= 1 { reader.i32()? } else { 0 };
        let session_timeout_ms = reader.i32()?;
        let rebalance_timeout_ms = if version >= 1 {
            rebalance_timeout_ms
        } else {
            session_timeout_ms
        };
        members.push(StoredMember {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription: reader.bytes()?,
            assignment: reader.bytes()?,
        });
    }
    Some(StoredGroup {
        protocol_type,
        generation_id,
        protocol_name,
        leader,
        state_timestamp_ms,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let offset = CommittedOffset {
            offset: 42,
            leader_epoch: 3,
            metadata: "meta".into(),
            commit_timestamp_ms: 1000,
        };
        assert_eq!(decode_offset_value(&offset_value(&offset)), Some(offset));
        assert_eq!(
            decode_key(&offset_key("g", "t", 7)),
            Some(RecordKey::Offset {
                group_id: "g".into(),
                topic: "t".into(),
                partition: 7
            })
        );
        assert_eq!(
            decode_key(&group_key("g")),
            Some(RecordKey::Group {
                group_id: "g".into()
            })
        );
        let group = StoredGroup {
            protocol_type: "consumer".into(),
            generation_id: 5,
            protocol_name: Some("range".into()),
            leader: None,
            state_timestamp_ms: 9,
            members: vec![StoredMember {
                member_id: "m-1".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(decode_group_value(&group_value(&group)), Some(group));
    }

    #[test]
    fn damaged_records_are_refused() {
        let value = offset_value(&CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
        });
        for cut in 0..value.len() {
            assert_eq!(decode_offset_value(&value.slice(..cut)), None);
        }
        assert_eq!(decode_key(&Bytes::from_static(&[0, 9])), None);
        assert_eq!(decode_group_value(&Bytes::from_static(&[0, 3, 0])), None);
    }
}
