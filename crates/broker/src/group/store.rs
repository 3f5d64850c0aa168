//! Appending group records to `__consumer_offsets` and replaying them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use sluice_log::AppendOptions;

use super::records::{self, RecordKey, StoredGroup, StoredMember};
use super::state::CommittedOffset;
use super::state::{Group, GroupState, Member};
use super::OFFSETS_TOPIC;
use crate::error_codes;
use crate::replica_manager::{Partition, ReplicaManager};

/// Largest read while replaying a partition.
const REPLAY_READ_BYTES_MAX: usize = 4 << 20;

/// What replaying found for one group.
#[derive(Debug, Default)]
pub struct LoadedGroup {
    /// The last group metadata record (None: never written or tombstoned).
    pub metadata: Option<StoredGroup>,
    /// Committed offsets that were not tombstoned.
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
}

/// One record to append: key and value (None: tombstone).
pub type Entry = (Bytes, Option<Bytes>);

/// One uncompressed RecordBatch v2 holding `entries`.
fn encode_batch(entries: &[Entry], leader_epoch: i32, now: i64) -> Result<BytesMut, i16> {
    let batch: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: leader_epoch,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence
            // changes; base sequence -1 (no producer id) keeps one batch.
            sequence: i as i32 - 1,
            timestamp: now,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    if let Err(error) = RecordBatchEncoder::encode(&mut buf, &batch, &options) {
        tracing::error!(%error, "encoding a group record batch failed");
        return Err(error_codes::UNKNOWN_SERVER_ERROR);
    }
    Ok(buf)
}

/// Appends `entries` as one batch to partition `index`; returns the
/// partition and the last offset written.
pub fn append(
    replicas: &ReplicaManager,
    index: i32,
    entries: &[Entry],
    now: i64,
) -> Result<(Arc<Partition>, i64), i16> {
    let Some(partition) = replicas.get(OFFSETS_TOPIC, index) else {
        return Err(error_codes::NOT_COORDINATOR);
    };
    let leader_epoch = partition.leader_epoch();
    let mut buf = encode_batch(entries, leader_epoch, now)?;
    let result = {
        let _guard = partition.append_lock.lock();
        partition.log.append(
            &mut buf,
            AppendOptions {
                leader_epoch,
                log_append_time_ms: None,
            },
        )
    };
    match result {
        Ok(info) => {
            replicas.appended(&partition);
            Ok((partition, info.last_offset))
        }
        Err(error) => {
            tracing::warn!(partition = index, %error, "appending to __consumer_offsets failed");
            Err(error_codes::from_log_error(&error))
        }
    }
}

/// A transactional record's key and value, held until its marker.
type HeldRecord = (Option<Bytes>, Option<Bytes>);

/// Waits until `last_offset` is below the high watermark (durable).
pub async fn wait_durable(partition: &Partition, last_offset: i64, timeout: Duration) -> i16 {
    let mut receiver = partition.subscribe_high_watermark();
    let waited = tokio::time::timeout(timeout, receiver.wait_for(|hw| *hw > last_offset)).await;
    match waited {
        Ok(Ok(_)) => error_codes::NONE,
        Ok(Err(_)) => error_codes::NOT_COORDINATOR,
        Err(_) => error_codes::REQUEST_TIMED_OUT,
    }
}

/// Replays one partition into `groups`. Damaged records are skipped with a
/// warning; a read error stops the replay of this partition.
pub fn replay(partition: &Partition, groups: &mut HashMap<String, LoadedGroup>) {
    let log = &partition.log;
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    // Transactional records by producer id, until their marker.
    let mut transactional: HashMap<i64, Vec<HeldRecord>> = HashMap::new();
    while offset < end {
        let read = match log.read(offset, end, REPLAY_READ_BYTES_MAX, true) {
            Ok(read) => read,
            Err(error) => {
                tracing::error!(partition = partition.index, offset, %error, "replaying __consumer_offsets failed");
                return;
            }
        };
        if read.records.is_empty() {
            return;
        }
        let mut buf = read.records.clone();
        let sets = match RecordBatchDecoder::decode_all(&mut buf) {
            Ok(sets) => sets,
            Err(error) => {
                tracing::error!(partition = partition.index, offset, %error, "undecodable batch in __consumer_offsets");
                return;
            }
        };
        let before = offset;
        for set in sets {
            for record in set.records {
                offset = offset.max(record.offset + 1);
                // Transactional offsets (TxnOffsetCommit) count only once
                // their producer's commit marker follows.
                if record.control {
                    let commit = record
                        .key
                        .as_deref()
                        .is_some_and(|k| k.get(2..4) == Some(&[0, 1]));
                    if let Some(held) = transactional.remove(&record.producer_id) {
                        if commit {
                            for (key, value) in held {
                                apply(groups, key.as_ref(), value.as_ref());
                            }
                        }
                    }
                    continue;
                }
                if record.transactional {
                    transactional
                        .entry(record.producer_id)
                        .or_default()
                        .push((record.key, record.value));
                    continue;
                }
                apply(groups, record.key.as_ref(), record.value.as_ref());
            }
        }
        if offset == before {
            tracing::warn!(
                partition = partition.index,
                offset,
                "replay made no progress; stopping"
            );
            return;
        }
    }
}

fn apply(groups: &mut HashMap<String, LoadedGroup>, key: Option<&Bytes>, value: Option<&Bytes>) {
    let Some(key) = key.and_then(records::decode_key) else {
        tracing::warn!("skipping a record with an unknown key in __consumer_offsets");
        return;
    };
    match key {
        RecordKey::Offset {
            group_id,
            topic,
            partition,
        } => {
            let group = groups.entry(group_id).or_default();
            match value {
                None => {
                    group.offsets.remove(&(topic, partition));
                }
                Some(value) => match records::decode_offset_value(value) {
                    Some(offset) => {
                        group.offsets.insert((topic, partition), offset);
                    }
                    None => tracing::warn!(%topic, partition, "skipping a damaged offset record"),
                },
            }
        }
        RecordKey::Group { group_id } => match value {
            None => {
                groups.entry(group_id).or_default().metadata = None;
            }
            Some(value) => match records::decode_group_value(value) {
                Some(metadata) => groups.entry(group_id).or_default().metadata = Some(metadata),
                None => tracing::warn!(group = %group_id, "skipping a damaged group record"),
            },
        },
    }
}

/// The group metadata record of a group.
pub fn to_stored(group: &Group) -> StoredGroup {
    let protocol = group.protocol_name.clone().unwrap_or_default();
    StoredGroup {
        protocol_type: group.protocol_type.clone().unwrap_or_default(),
        generation_id: group.generation_id,
        protocol_name: group.protocol_name.clone(),
        leader: group.leader_id.clone(),
        state_timestamp_ms: group.state_timestamp_ms,
        members: group
            .members()
            .map(|m| StoredMember {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                session_timeout_ms: m.session_timeout_ms,
                subscription: m.metadata(&protocol),
                assignment: m.assignment.clone(),
            })
            .collect(),
    }
}

/// Rebuilds a group from its metadata record: Stable with its members (their
/// sessions start again now) or Empty.
pub fn restore(group: &mut Group, stored: StoredGroup, now: i64) {
    group.protocol_type = (!stored.protocol_type.is_empty()).then_some(stored.protocol_type);
    group.generation_id = stored.generation_id;
    group.protocol_name = stored.protocol_name.clone();
    group.leader_id = stored.leader;
    let protocol = stored.protocol_name.unwrap_or_default();
    let protocol_type = group.protocol_type.clone().unwrap_or_default();
    for member in stored.members {
        group.restore_member(
            Member {
                member_id: member.member_id,
                group_instance_id: member.group_instance_id,
                client_id: member.client_id,
                client_host: member.client_host,
                session_timeout_ms: member.session_timeout_ms,
                rebalance_timeout_ms: member.rebalance_timeout_ms,
                protocol_type: protocol_type.clone(),
                protocols: vec![(protocol.clone(), member.subscription)],
                assignment: member.assignment,
                awaiting_join: None,
                awaiting_sync: None,
                is_new: false,
                heartbeat_deadline_ms: None,
            },
            now,
        );
    }
    let state = if group.member_count() == 0 {
        GroupState::Empty
    } else {
        GroupState::Stable
    };
    let timestamp = if stored.state_timestamp_ms >= 0 {
        stored.state_timestamp_ms
    } else {
        now
    };
    group.restore_state(state, timestamp);
    if group
        .leader_id
        .as_ref()
        .is_some_and(|l| !group.has_member(l))
    {
        let first = group.members().next().map(|m| m.member_id.clone());
        group.leader_id = first;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_records_make_one_valid_batch() {
        let entries: Vec<Entry> = (0..5)
            .map(|i| (records::group_key(&format!("g{i}")), None))
            .collect();
        let buf = encode_batch(&entries, 3, 0).unwrap();
        let header = sluice_log::batch::validate(&buf).unwrap();
        assert_eq!(header.record_count, 5);
    }
}
