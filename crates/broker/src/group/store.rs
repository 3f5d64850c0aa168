//! Appending group records to `__consumer_offsets` and replaying them.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use sluice_log::control::{self, ControlType};

use super::records::{self, RecordKey, StoredGroup, StoredMember};
use super::state::CommittedOffset;
use super::state::{Group, GroupState, Member};
use super::OFFSETS_TOPIC;
use crate::replica_manager::{Partition, ReplicaManager};

/// What replaying found for one group.
#[derive(Debug, Default)]
pub struct LoadedGroup {
    /// The last group metadata record (None: never written or tombstoned).
    pub metadata: Option<StoredGroup>,
    /// Committed offsets that were not tombstoned.
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
}

pub use crate::internal_topic::{wait_durable, Entry};

/// Appends `entries` as one batch to partition `index`; returns the
/// partition and the last offset written.
pub fn append(
    replicas: &ReplicaManager,
    index: i32,
    entries: &[Entry],
    now: i64,
) -> Result<(Arc<Partition>, i64), crate::errors::KafkaError> {
    crate::internal_topic::append(replicas, OFFSETS_TOPIC, index, entries, None, now)
}

/// A transactional record's key and value, held until its marker.
type HeldRecord = (Option<Bytes>, Option<Bytes>);

/// Replays one partition into `groups`. Damaged records are skipped with a
/// warning; a read error stops the replay of this partition.
pub fn replay(partition: &Partition, groups: &mut HashMap<String, LoadedGroup>) {
    // Transactional records by producer id, until their marker.
    let mut transactional: HashMap<i64, Vec<HeldRecord>> = HashMap::new();
    crate::internal_topic::replay(partition, OFFSETS_TOPIC, |record| {
        // Transactional offsets (TxnOffsetCommit) count only once their
        // producer's commit marker follows.
        if record.control {
            let commit =
                record.key.as_deref().and_then(control::decode_key) == Some(ControlType::Commit);
            if let Some(held) = transactional.remove(&record.producer_id) {
                if commit {
                    for (key, value) in held {
                        apply(groups, key.as_ref(), value.as_ref());
                    }
                }
            }
            return;
        }
        if record.transactional {
            transactional
                .entry(record.producer_id)
                .or_default()
                .push((record.key, record.value));
            return;
        }
        apply(groups, record.key.as_ref(), record.value.as_ref());
    });
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
