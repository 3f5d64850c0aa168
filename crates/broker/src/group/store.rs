//! Appending group records to `__consumer_offsets` and replaying them.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use sluice_log::control::{self, ControlType};

use super::pending::PendingTxnOffsets;
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

pub use crate::internal_topic::{Entry, Written};

/// Appends `entries` as one batch to partition `index`.
pub fn append(
    replicas: &ReplicaManager,
    index: i32,
    entries: &[Entry],
    now: i64,
) -> Result<Written, crate::errors::KafkaError> {
    crate::internal_topic::append(replicas, OFFSETS_TOPIC, index, entries, None, now)
}

/// A transactional record's key and value, held until its marker.
type HeldRecord = (Option<Bytes>, Option<Bytes>);

/// Replays one partition into `groups`. Damaged records are skipped with a
/// warning; a read error stops the replay of this partition. Returns the
/// transactional offsets whose producer has written no marker yet (they
/// become pending again, [`super::pending`]).
pub fn replay(
    partition: &Partition,
    groups: &mut HashMap<String, LoadedGroup>,
) -> PendingTxnOffsets {
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
    let mut pending = PendingTxnOffsets::default();
    for (producer_id, held) in transactional {
        for (key, value) in held {
            let Some(RecordKey::Offset {
                group_id,
                topic,
                partition,
            }) = key.as_ref().and_then(records::decode_key)
            else {
                continue;
            };
            if let Some(offset) = value.as_ref().and_then(records::decode_offset_value) {
                pending.add(producer_id, &group_id, vec![((topic, partition), offset)]);
            }
        }
    }
    pending
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
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use sluice_log::DataDir;
    use sluice_meta::{ClusterImage, MetadataRecord, PartitionState};

    use super::*;
    use crate::config::Settings;
    use sluice_log::control::Marker;

    const NODE: i32 = 1;

    fn offsets_partition(dir: &std::path::Path) -> (ReplicaManager, Arc<Partition>) {
        let settings = Arc::new(Settings::new(BTreeMap::new()).expect("default settings"));
        let replicas = ReplicaManager::new(DataDir::open(dir).expect("data dir"), settings, NODE);
        let mut image = ClusterImage::default();
        image.apply(&MetadataRecord::CreateTopic {
            name: OFFSETS_TOPIC.to_string(),
            topic_id: uuid::Uuid::new_v4(),
            partitions: vec![PartitionState {
                partition: 0,
                replicas: vec![NODE],
                isr: vec![NODE],
                leader: NODE,
                leader_epoch: 0,
                ..PartitionState::default()
            }],
            configs: BTreeMap::new(),
        });
        replicas.reconcile(&Arc::new(image)).expect("reconcile");
        let partition = replicas.leader_partition(OFFSETS_TOPIC, 0).expect("led");
        (replicas, partition)
    }

    fn commit(offset: i64) -> CommittedOffset {
        CommittedOffset {
            offset,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
        }
    }

    fn offset_entry(group: &str, partition: i32, offset: i64) -> Entry {
        (
            records::offset_key(group, "t", partition),
            Some(records::offset_value(&commit(offset))),
        )
    }

    /// Fault-suite finding (docs/FAULTS.md): a new coordinator forgot the
    /// transactional offsets that had no marker yet, so the marker that
    /// came after the failover committed nothing and a consumer restarted
    /// from the older offsets (duplicated exactly-once output).
    #[test]
    fn offsets_of_a_transaction_without_its_marker_come_back_pending() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (replicas, partition) = offsets_partition(dir.path());
        let append = |entries: &[Entry], producer: Option<(i64, i16)>| {
            crate::internal_topic::append(&replicas, OFFSETS_TOPIC, 0, entries, producer, 0)
                .expect("append");
        };
        append(&[offset_entry("g", 0, 10)], None);
        // Producer 7: committed. Producer 8: aborted. Producer 9: open.
        append(&[offset_entry("g", 0, 20)], Some((7, 0)));
        append(&[offset_entry("g", 1, 30)], Some((8, 0)));
        append(&[offset_entry("g", 0, 40)], Some((9, 0)));
        partition
            .append_marker(7, 0, Marker::Commit, 0, 0)
            .expect("commit marker");
        partition
            .append_marker(8, 0, Marker::Abort, 0, 0)
            .expect("abort marker");

        let mut groups = HashMap::new();
        let mut pending = replay(&partition, &mut groups);
        let group = groups.get("g").expect("group g");
        assert_eq!(group.offsets[&("t".to_string(), 0)].offset, 20);
        assert!(!group.offsets.contains_key(&("t".to_string(), 1)));
        assert!(pending.has("g", "t", 0), "producer 9's offsets are pending");
        assert!(!pending.has("g", "t", 1), "producer 8 aborted");
        let done = pending.complete(9, true, |_| true);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].1[0].1.offset, 40);
    }
}
