//! The cluster image: the pure state machine of the metadata log.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::records::{BrokerRegistration, MetadataRecord, PartitionState};

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
    /// Ids of every topic the metadata log deleted (or replaced by a new
    /// topic of the same name). A broker deletes a partition directory only
    /// when its topic id is here; one the image does not know at all is set
    /// aside as stray (KIP-858). Grows by 16 bytes per deleted topic.
    #[serde(default)]
    pub deleted_topic_ids: BTreeSet<Uuid>,
    /// Log index of the last applied record.
    pub last_applied_index: u64,
}

impl ClusterImage {
    /// Applies one record. Deterministic, no I/O. Records that refer to unknown
    /// topics are ignored (the proposer validates before proposing).
    pub fn apply(&mut self, record: &MetadataRecord) {
        match record {
            MetadataRecord::RegisterBroker(registration) => {
                self.brokers
                    .insert(registration.node_id, registration.clone());
            }
            MetadataRecord::CreateTopic {
                name,
                topic_id,
                partitions,
                configs,
            } => {
                // A re-used name or id replaces the old topic; drop the stale
                // index entries so both maps stay in sync.
                if let Some(old) = self.topics.remove(name) {
                    self.topic_names_by_id.remove(&old.topic_id);
                    if old.topic_id != *topic_id {
                        self.deleted_topic_ids.insert(old.topic_id);
                    }
                }
                if let Some(old_name) = self.topic_names_by_id.remove(topic_id) {
                    self.topics.remove(&old_name);
                }
                self.deleted_topic_ids.remove(topic_id);
                self.topic_names_by_id.insert(*topic_id, name.clone());
                self.topics.insert(
                    name.clone(),
                    TopicImage {
                        name: name.clone(),
                        topic_id: *topic_id,
                        partitions: partitions.clone(),
                        configs: configs.clone(),
                    },
                );
            }
            MetadataRecord::DeleteTopic { topic_id } => {
                if let Some(name) = self.topic_names_by_id.remove(topic_id) {
                    self.topics.remove(&name);
                    self.deleted_topic_ids.insert(*topic_id);
                }
            }
            MetadataRecord::CreatePartitions {
                topic_id,
                partitions,
            } => {
                if let Some(topic) = self.topic_by_id_mut(topic_id) {
                    topic.partitions.extend(partitions.iter().cloned());
                }
            }
            MetadataRecord::ChangePartition { topic_id, state } => {
                let Some(topic) = self.topic_by_id_mut(topic_id) else {
                    return;
                };
                let Ok(index) = usize::try_from(state.partition) else {
                    return;
                };
                let Some(current) = topic.partitions.get_mut(index) else {
                    return;
                };
                // The leader epoch never goes backwards: a stale change is ignored.
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
                *current = state.clone();
            }
            MetadataRecord::SetTopicConfig {
                topic_id,
                key,
                value,
            } => {
                if let Some(topic) = self.topic_by_id_mut(topic_id) {
                    set_or_remove(&mut topic.configs, key, value);
                }
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
            }
            MetadataRecord::AllocateProducerIds {
                first_producer_id,
                count,
                ..
            } => {
                let end = first_producer_id.saturating_add(*count);
                self.next_producer_id = self.next_producer_id.max(end);
            }
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
mod tests {
    use super::*;

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn partition(partition: i32, leader: i32, leader_epoch: i32) -> PartitionState {
        PartitionState {
            partition,
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader,
            leader_epoch,
        }
    }

    fn create(name: &str, topic_id: Uuid, partitions: i32) -> MetadataRecord {
        MetadataRecord::CreateTopic {
            name: name.to_string(),
            topic_id,
            partitions: (0..partitions).map(|p| partition(p, 1, 0)).collect(),
            configs: BTreeMap::new(),
        }
    }

    /// Checks the invariant that `topics` and `topic_names_by_id` agree.
    fn assert_index_in_sync(image: &ClusterImage) {
        assert_eq!(image.topics.len(), image.topic_names_by_id.len());
        for (name, topic) in &image.topics {
            assert_eq!(&topic.name, name);
            assert_eq!(image.topic_names_by_id.get(&topic.topic_id), Some(name));
        }
    }

    type Check = fn(&ClusterImage);

    #[test]
    fn apply_table() {
        let cases: Vec<(&str, Vec<MetadataRecord>, Check)> = vec![
            (
                "register broker",
                vec![MetadataRecord::RegisterBroker(BrokerRegistration {
                    node_id: 1,
                    host: "h".into(),
                    port: 9092,
                    rack: None,
                })],
                |image| assert_eq!(image.brokers[&1].port, 9092),
            ),
            (
                "re-register replaces",
                vec![
                    MetadataRecord::RegisterBroker(BrokerRegistration {
                        node_id: 1,
                        host: "a".into(),
                        port: 1,
                        rack: None,
                    }),
                    MetadataRecord::RegisterBroker(BrokerRegistration {
                        node_id: 1,
                        host: "b".into(),
                        port: 2,
                        rack: Some("r".into()),
                    }),
                ],
                |image| {
                    assert_eq!(image.brokers.len(), 1);
                    assert_eq!(image.brokers[&1].host, "b");
                },
            ),
            ("create topic", vec![create("t", id(1), 3)], |image| {
                let topic = image.topic("t").unwrap();
                assert_eq!(topic.partitions.len(), 3);
                assert_eq!(image.topic_by_id(&id(1)).unwrap().name, "t");
            }),
            (
                "delete topic removes both maps",
                vec![
                    create("t", id(1), 1),
                    create("u", id(2), 1),
                    MetadataRecord::DeleteTopic { topic_id: id(1) },
                ],
                |image| {
                    assert!(image.topic("t").is_none());
                    assert!(image.topic_by_id(&id(1)).is_none());
                    assert!(image.topic("u").is_some());
                    assert!(image.deleted_topic_ids.contains(&id(1)));
                    assert!(!image.deleted_topic_ids.contains(&id(2)));
                },
            ),
            (
                "re-creating a name remembers the old id as deleted",
                vec![create("t", id(1), 1), create("t", id(2), 1)],
                |image| {
                    assert_eq!(image.topic("t").unwrap().topic_id, id(2));
                    assert!(image.deleted_topic_ids.contains(&id(1)));
                    assert!(!image.deleted_topic_ids.contains(&id(2)));
                },
            ),
            (
                "delete unknown topic is ignored",
                vec![
                    create("t", id(1), 1),
                    MetadataRecord::DeleteTopic { topic_id: id(9) },
                ],
                |image| assert!(image.topic("t").is_some()),
            ),
            (
                "create partitions appends",
                vec![
                    create("t", id(1), 2),
                    MetadataRecord::CreatePartitions {
                        topic_id: id(1),
                        partitions: vec![partition(2, 2, 0), partition(3, 3, 0)],
                    },
                ],
                |image| {
                    let topic = image.topic("t").unwrap();
                    let ids: Vec<i32> = topic.partitions.iter().map(|p| p.partition).collect();
                    assert_eq!(ids, vec![0, 1, 2, 3]);
                    assert_eq!(topic.partitions[3].leader, 3);
                },
            ),
            (
                "create partitions on unknown topic is ignored",
                vec![MetadataRecord::CreatePartitions {
                    topic_id: id(1),
                    partitions: vec![partition(0, 1, 0)],
                }],
                |image| assert!(image.topics.is_empty()),
            ),
            (
                "change partition replaces state",
                vec![
                    create("t", id(1), 2),
                    MetadataRecord::ChangePartition {
                        topic_id: id(1),
                        state: PartitionState {
                            partition: 1,
                            replicas: vec![1, 2, 3],
                            isr: vec![2],
                            leader: 2,
                            leader_epoch: 5,
                        },
                    },
                ],
                |image| {
                    let topic = image.topic("t").unwrap();
                    assert_eq!(topic.partitions[1].leader, 2);
                    assert_eq!(topic.partitions[1].isr, vec![2]);
                    assert_eq!(topic.partitions[1].leader_epoch, 5);
                    assert_eq!(topic.partitions[0], partition(0, 1, 0));
                },
            ),
            (
                "change partition with same epoch applies (ISR change)",
                vec![
                    create("t", id(1), 1),
                    MetadataRecord::ChangePartition {
                        topic_id: id(1),
                        state: PartitionState {
                            isr: vec![1],
                            ..partition(0, 1, 0)
                        },
                    },
                ],
                |image| assert_eq!(image.topic("t").unwrap().partitions[0].isr, vec![1]),
            ),
            (
                "change partition never lowers leader epoch",
                vec![
                    create("t", id(1), 1),
                    MetadataRecord::ChangePartition {
                        topic_id: id(1),
                        state: partition(0, 2, 7),
                    },
                    MetadataRecord::ChangePartition {
                        topic_id: id(1),
                        state: partition(0, 3, 6),
                    },
                ],
                |image| {
                    let state = &image.topic("t").unwrap().partitions[0];
                    assert_eq!((state.leader, state.leader_epoch), (2, 7));
                },
            ),
            (
                "change of unknown partition is ignored",
                vec![
                    create("t", id(1), 1),
                    MetadataRecord::ChangePartition {
                        topic_id: id(1),
                        state: partition(5, 2, 1),
                    },
                    MetadataRecord::ChangePartition {
                        topic_id: id(1),
                        state: partition(-1, 2, 1),
                    },
                    MetadataRecord::ChangePartition {
                        topic_id: id(2),
                        state: partition(0, 2, 1),
                    },
                ],
                |image| {
                    let topic = image.topic("t").unwrap();
                    assert_eq!(topic.partitions, vec![partition(0, 1, 0)]);
                },
            ),
            (
                "set and delete topic config",
                vec![
                    create("t", id(1), 1),
                    MetadataRecord::SetTopicConfig {
                        topic_id: id(1),
                        key: "retention.ms".into(),
                        value: Some("1000".into()),
                    },
                    MetadataRecord::SetTopicConfig {
                        topic_id: id(1),
                        key: "cleanup.policy".into(),
                        value: Some("compact".into()),
                    },
                    MetadataRecord::SetTopicConfig {
                        topic_id: id(1),
                        key: "retention.ms".into(),
                        value: None,
                    },
                ],
                |image| {
                    let configs = &image.topic("t").unwrap().configs;
                    assert_eq!(configs.len(), 1);
                    assert_eq!(configs["cleanup.policy"], "compact");
                },
            ),
            (
                "set and delete broker config",
                vec![
                    MetadataRecord::SetBrokerConfig {
                        node_id: None,
                        key: "a".into(),
                        value: Some("1".into()),
                    },
                    MetadataRecord::SetBrokerConfig {
                        node_id: Some(2),
                        key: "b".into(),
                        value: Some("2".into()),
                    },
                    MetadataRecord::SetBrokerConfig {
                        node_id: Some(3),
                        key: "c".into(),
                        value: Some("3".into()),
                    },
                    MetadataRecord::SetBrokerConfig {
                        node_id: Some(3),
                        key: "c".into(),
                        value: None,
                    },
                ],
                |image| {
                    assert_eq!(image.broker_configs[&None]["a"], "1");
                    assert_eq!(image.broker_configs[&Some(2)]["b"], "2");
                    assert!(!image.broker_configs.contains_key(&Some(3)));
                },
            ),
            (
                "allocate producer ids advances",
                vec![
                    MetadataRecord::AllocateProducerIds {
                        node_id: 1,
                        first_producer_id: 0,
                        count: 1000,
                    },
                    MetadataRecord::AllocateProducerIds {
                        node_id: 2,
                        first_producer_id: 1000,
                        count: 1000,
                    },
                ],
                |image| assert_eq!(image.next_producer_id, 2000),
            ),
            (
                "allocate producer ids never goes back",
                vec![
                    MetadataRecord::AllocateProducerIds {
                        node_id: 1,
                        first_producer_id: 5000,
                        count: 1000,
                    },
                    MetadataRecord::AllocateProducerIds {
                        node_id: 2,
                        first_producer_id: 0,
                        count: 10,
                    },
                ],
                |image| assert_eq!(image.next_producer_id, 6000),
            ),
            (
                "create topic re-using a name replaces and keeps index in sync",
                vec![create("t", id(1), 1), create("t", id(2), 2)],
                |image| {
                    assert!(image.topic_by_id(&id(1)).is_none());
                    assert_eq!(image.topic("t").unwrap().topic_id, id(2));
                },
            ),
            (
                "create topic re-using an id replaces and keeps index in sync",
                vec![create("t", id(1), 1), create("u", id(1), 2)],
                |image| {
                    assert!(image.topic("t").is_none());
                    assert_eq!(image.topic_by_id(&id(1)).unwrap().name, "u");
                },
            ),
        ];

        for (name, records, check) in cases {
            let mut image = ClusterImage::default();
            for record in &records {
                image.apply(record);
            }
            assert_index_in_sync(&image);
            check(&image);
            // Determinism: applying the same records again gives the same image.
            let mut again = ClusterImage::default();
            for record in &records {
                again.apply(record);
            }
            assert_eq!(image, again, "case {name} is not deterministic");
        }
    }

    #[test]
    fn image_serde_round_trip() {
        let mut image = ClusterImage::default();
        image.apply(&create("t", id(1), 2));
        image.apply(&MetadataRecord::SetBrokerConfig {
            node_id: Some(1),
            key: "k".into(),
            value: Some("v".into()),
        });
        image.apply(&MetadataRecord::SetBrokerConfig {
            node_id: None,
            key: "k".into(),
            value: Some("v".into()),
        });
        let json = serde_json::to_vec(&image).unwrap();
        let back: ClusterImage = serde_json::from_slice(&json).unwrap();
        assert_eq!(image, back);
    }
}
