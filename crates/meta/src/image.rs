//! The cluster image: the pure state machine of the metadata log.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::records::{
    BrokerRegistration, EntryResponse, MetadataRecord, PartitionState, RecordBatch, RecordOutcome,
    RecordRejected, RECORD_FORMAT_VERSION,
};

/// A topic in the image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// Topic name; the key in `ClusterImage::topics`.
    pub name: String,
    /// Topic id; the key in `ClusterImage::topic_names_by_id`.
    pub topic_id: Uuid,
    /// Indexed by partition id.
    pub partitions: Vec<PartitionState>,
    /// Topic-level overrides only (defaults live in the broker).
    pub configs: BTreeMap<String, String>,
}

/// The cluster image: everything committed so far, applied in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterImage {
    /// The cluster id (persisted in `<data-dir>/meta/cluster.id`).
    pub cluster_id: String,
    /// Registered brokers by node id.
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    /// Topics by name.
    pub topics: BTreeMap<String, TopicImage>,
    /// Index from topic id to topic name; always in sync with `topics`.
    pub topic_names_by_id: BTreeMap<Uuid, String>,
    /// Cluster-wide (`None`) and per-node dynamic broker configs.
    /// (Serialized as a list of pairs: JSON map keys cannot be `Option`.)
    #[serde(with = "broker_configs_serde")]
    pub broker_configs: BTreeMap<Option<i32>, BTreeMap<String, String>>,
    /// The next producer id not yet handed out.
    pub next_producer_id: i64,
    /// Ids of every topic the metadata log deleted. A broker deletes a partition directory only
    /// when its topic id is here; one the image does not know at all is set
    /// aside as stray (KIP-858). Grows by 16 bytes per deleted topic.
    #[serde(default)]
    pub deleted_topic_ids: BTreeSet<Uuid>,
    /// Log index of the last applied record.
    pub last_applied_index: u64,
}

impl ClusterImage {
    /// Applies one record and says what it did. Deterministic, no I/O: the
    /// same records in the same order give the same image and outcomes, on
    /// the proposer and on replay. A record that would break an invariant of
    /// the image (a second topic of one name or id) is refused with
    /// [`RecordOutcome::Rejected`] and changes nothing. Records that refer to
    /// unknown topics or partitions are ignored (the proposer validates
    /// before proposing; a concurrent delete may have won).
    pub fn apply(&mut self, record: &MetadataRecord) -> RecordOutcome {
        self.apply_format(record, RECORD_FORMAT_VERSION)
    }

    /// [`ClusterImage::apply`] with the rules of the record format that wrote
    /// the record, so a log written before format 1 replays to the image it
    /// gave then: format 0 assigned no broker or partition epochs, and its
    /// proposer picked producer-id blocks itself.
    pub fn apply_format(&mut self, record: &MetadataRecord, format_version: u16) -> RecordOutcome {
        let epochs_assigned = format_version >= 1;
        if !epochs_assigned {
            if let Some(outcome) = self.apply_format_0_rules(record) {
                return outcome;
            }
        }
        match record {
            MetadataRecord::RegisterBroker(registration) => self.register_broker(registration),
            MetadataRecord::ChangeBrokerFencing {
                node_id,
                broker_epoch,
                fenced,
            } => {
                if let Some(broker) = self.brokers.get_mut(node_id) {
                    if broker.broker_epoch == *broker_epoch {
                        broker.fenced = *fenced;
                    }
                }
                RecordOutcome::Applied
            }
            MetadataRecord::CreateTopic {
                name,
                topic_id,
                partitions,
                configs,
            } => match self.create_topic(name, topic_id, partitions, configs) {
                Ok(()) => RecordOutcome::Applied,
                Err(rejected) => RecordOutcome::Rejected(rejected),
            },
            MetadataRecord::DeleteTopic { topic_id } => {
                if let Some(name) = self.topic_names_by_id.remove(topic_id) {
                    self.topics.remove(&name);
                    self.deleted_topic_ids.insert(*topic_id);
                }
                RecordOutcome::Applied
            }
            MetadataRecord::CreatePartitions {
                topic_id,
                partitions,
            } => {
                if let Some(topic) = self.topic_by_id_mut(topic_id) {
                    topic.partitions.extend(partitions.iter().cloned());
                }
                RecordOutcome::Applied
            }
            MetadataRecord::ChangePartition { topic_id, state } => {
                self.change_partition(topic_id, state, epochs_assigned);
                RecordOutcome::Applied
            }
            MetadataRecord::SetTopicConfig {
                topic_id,
                key,
                value,
            } => {
                if let Some(topic) = self.topic_by_id_mut(topic_id) {
                    set_or_remove(&mut topic.configs, key, value);
                }
                RecordOutcome::Applied
            }
            MetadataRecord::SetBrokerConfig {
                node_id,
                key,
                value,
            } => {
                let configs = self.broker_configs.entry(*node_id).or_default();
                set_or_remove(configs, key, value);
                if configs.is_empty() {
                    self.broker_configs.remove(node_id);
                }
                RecordOutcome::Applied
            }
            MetadataRecord::AllocateProducerIds {
                node_id,
                first_producer_id,
                count,
            } => self.allocate_producer_ids(*node_id, *first_producer_id, *count),
            MetadataRecord::SetClusterId { cluster_id } => self.set_cluster_id(cluster_id),
        }
    }

    /// The first non-empty cluster id is kept; the same one again changes
    /// nothing; another one is refused.
    fn set_cluster_id(&mut self, cluster_id: &str) -> RecordOutcome {
        if !cluster_id.is_empty() && (self.cluster_id.is_empty() || self.cluster_id == cluster_id) {
            self.cluster_id = cluster_id.to_string();
            return RecordOutcome::Applied;
        }
        RecordOutcome::Rejected(RecordRejected::ClusterIdSet {
            current: self.cluster_id.clone(),
            proposed: cluster_id.to_string(),
        })
    }

    /// The records format 0 applied differently: a registration as given
    /// (no broker epoch), a producer-id block as the proposer picked it.
    /// `None` for the others (same rules in every format).
    fn apply_format_0_rules(&mut self, record: &MetadataRecord) -> Option<RecordOutcome> {
        match record {
            MetadataRecord::RegisterBroker(registration) => {
                self.brokers
                    .insert(registration.node_id, registration.clone());
            }
            MetadataRecord::AllocateProducerIds {
                first_producer_id,
                count,
                ..
            } => {
                let end = first_producer_id.saturating_add(*count);
                self.next_producer_id = self.next_producer_id.max(end);
            }
            _ => return None,
        }
        Some(RecordOutcome::Applied)
    }

    /// Applies the records of one entry (with the rules of the format that
    /// wrote them), all or none: on the first refused
    /// record the image goes back to what it was before the entry, and the
    /// refusal is the entry's response.
    pub fn apply_all(&mut self, batch: &RecordBatch) -> EntryResponse {
        let records = &batch.records;
        // Only an entry of several records can be half applied.
        let before = (records.len() > 1).then(|| self.clone());
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            match self.apply_format(record, batch.version) {
                RecordOutcome::Rejected(rejected) => {
                    if let Some(before) = before {
                        *self = before;
                    }
                    return Err(rejected);
                }
                outcome => outcomes.push(outcome),
            }
        }
        Ok(outcomes)
    }

    /// A registration replaces the previous one with the next broker epoch.
    fn register_broker(&mut self, registration: &BrokerRegistration) -> RecordOutcome {
        let node_id = registration.node_id;
        let previous_epoch = self.brokers.get(&node_id).map_or(0, |b| b.broker_epoch);
        let broker_epoch = previous_epoch.saturating_add(1);
        self.brokers.insert(
            node_id,
            BrokerRegistration {
                broker_epoch,
                ..registration.clone()
            },
        );
        RecordOutcome::BrokerRegistered {
            node_id,
            broker_epoch,
        }
    }

    /// Adds a topic whose name and id are both new (a deleted topic's id
    /// counts as taken: brokers may still hold its directories).
    fn create_topic(
        &mut self,
        name: &str,
        topic_id: &Uuid,
        partitions: &[PartitionState],
        configs: &BTreeMap<String, String>,
    ) -> Result<(), RecordRejected> {
        if self.topics.contains_key(name) {
            return Err(RecordRejected::TopicNameExists {
                name: name.to_string(),
            });
        }
        if self.topic_names_by_id.contains_key(topic_id)
            || self.deleted_topic_ids.contains(topic_id)
        {
            return Err(RecordRejected::TopicIdExists {
                topic_id: *topic_id,
            });
        }
        self.topic_names_by_id.insert(*topic_id, name.to_string());
        self.topics.insert(
            name.to_string(),
            TopicImage {
                name: name.to_string(),
                topic_id: *topic_id,
                partitions: partitions.to_vec(),
                configs: configs.clone(),
            },
        );
        Ok(())
    }

    /// Replaces one partition's state, bumping its partition epoch (from
    /// format 1 on); a change with a lower leader epoch than the current one
    /// is stale and ignored.
    fn change_partition(&mut self, topic_id: &Uuid, state: &PartitionState, bump_epoch: bool) {
        let Some(topic) = self.topic_by_id_mut(topic_id) else {
            return;
        };
        let Ok(index) = usize::try_from(state.partition) else {
            return;
        };
        let Some(current) = topic.partitions.get_mut(index) else {
            return;
        };
        if state.leader_epoch < current.leader_epoch {
            tracing::warn!(
                topic = %topic.name,
                partition = state.partition,
                current_epoch = current.leader_epoch,
                proposed_epoch = state.leader_epoch,
                "ignoring partition change with a lower leader epoch"
            );
            return;
        }
        let partition_epoch = if bump_epoch {
            current.partition_epoch.saturating_add(1)
        } else {
            state.partition_epoch
        };
        *current = PartitionState {
            partition_epoch,
            ..state.clone()
        };
    }

    /// Assigns the next block of producer ids: from the first id never handed
    /// out (or the proposer's lower bound, if higher).
    fn allocate_producer_ids(
        &mut self,
        node_id: i32,
        lowest_first_id: i64,
        count: i64,
    ) -> RecordOutcome {
        let first_producer_id = self.next_producer_id.max(lowest_first_id).max(0);
        let end = match first_producer_id.checked_add(count) {
            Some(end) if count > 0 => end,
            _ => return RecordOutcome::Rejected(RecordRejected::ProducerIdsExhausted { count }),
        };
        self.next_producer_id = end;
        RecordOutcome::ProducerIdsAllocated {
            node_id,
            first_producer_id,
            count,
        }
    }

    /// Looks a topic up by name.
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    /// Looks a topic up by id.
    pub fn topic_by_id(&self, topic_id: &Uuid) -> Option<&TopicImage> {
        self.topic_names_by_id
            .get(topic_id)
            .and_then(|name| self.topics.get(name))
    }

    fn topic_by_id_mut(&mut self, topic_id: &Uuid) -> Option<&mut TopicImage> {
        let name = self.topic_names_by_id.get(topic_id)?;
        self.topics.get_mut(name)
    }
}

fn set_or_remove(configs: &mut BTreeMap<String, String>, key: &str, value: &Option<String>) {
    match value {
        Some(value) => {
            configs.insert(key.to_string(), value.clone());
        }
        None => {
            configs.remove(key);
        }
    }
}

/// JSON object keys must be strings, and `Option<i32>` is not one: the broker
/// configs map goes to JSON as a list of `[node_id, configs]` pairs.
mod broker_configs_serde {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    type BrokerConfigs = BTreeMap<Option<i32>, BTreeMap<String, String>>;

    pub fn serialize<S: Serializer>(map: &BrokerConfigs, serializer: S) -> Result<S::Ok, S::Error> {
        let pairs: Vec<(&Option<i32>, &BTreeMap<String, String>)> = map.iter().collect();
        pairs.serialize(serializer)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<BrokerConfigs, D::Error> {
        let pairs: Vec<(Option<i32>, BTreeMap<String, String>)> = Vec::deserialize(deserializer)?;
        Ok(pairs.into_iter().collect())
    }
}

#[cfg(test)]
#[path = "image_tests.rs"]
mod tests;
