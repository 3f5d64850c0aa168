//! The difference between two metadata images (Kafka's `MetadataDelta`):
//! what a broker must apply to its partitions when the image moves on, so
//! reconciliation touches only what changed instead of re-walking every
//! topic. Pure; no I/O.

use std::collections::BTreeSet;

use uuid::Uuid;

use crate::ClusterImage;

/// What changed from one image to the next, for a broker's partitions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImageDelta {
    /// Topics (by name) that are new, or whose id, partitions (assignment,
    /// leader, epoch) or overrides changed.
    pub changed_topics: BTreeSet<String>,
    /// Ids of topics present before and gone (deleted or replaced) now.
    pub removed_topic_ids: BTreeSet<Uuid>,
    /// Dynamic broker configs changed: every topic's effective config may
    /// have changed with them.
    pub broker_configs_changed: bool,
}

impl ImageDelta {
    /// The delta from `previous` (`None`: nothing applied yet, so everything
    /// in `next` is new) to `next`.
    pub fn between(previous: Option<&ClusterImage>, next: &ClusterImage) -> ImageDelta {
        let Some(previous) = previous else {
            return ImageDelta {
                changed_topics: next.topics.keys().cloned().collect(),
                removed_topic_ids: BTreeSet::new(),
                broker_configs_changed: true,
            };
        };
        let changed_topics = next
            .topics
            .iter()
            .filter(|(name, topic)| previous.topics.get(*name) != Some(topic))
            .map(|(name, _)| name.clone())
            .collect();
        let removed_topic_ids = previous
            .topic_names_by_id
            .keys()
            .filter(|id| !next.topic_names_by_id.contains_key(id))
            .copied()
            .collect();
        ImageDelta {
            changed_topics,
            removed_topic_ids,
            broker_configs_changed: previous.broker_configs != next.broker_configs,
        }
    }

    /// Whether nothing a broker's partitions depend on changed.
    pub fn is_empty(&self) -> bool {
        self.changed_topics.is_empty()
            && self.removed_topic_ids.is_empty()
            && !self.broker_configs_changed
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::{MetadataRecord, PartitionState};

    fn id(n: u128) -> Uuid {
        Uuid::from_u128(n)
    }

    fn create(name: &str, topic_id: Uuid, partitions: i32) -> MetadataRecord {
        MetadataRecord::CreateTopic {
            name: name.to_string(),
            topic_id,
            partitions: (0..partitions).map(partition_state).collect(),
            configs: BTreeMap::new(),
        }
    }

    fn partition_state(partition: i32) -> PartitionState {
        PartitionState {
            partition,
            replicas: vec![1],
            isr: vec![1],
            leader: 1,
            leader_epoch: 0,
            ..PartitionState::default()
        }
    }

    fn image(records: &[MetadataRecord]) -> ClusterImage {
        let mut image = ClusterImage::default();
        for record in records {
            image.apply(record);
        }
        image
    }

    #[test]
    fn delta_table() {
        let base = [create("a", id(1), 1), create("b", id(2), 2)];
        let cases: Vec<(&str, Vec<MetadataRecord>, ImageDelta)> = vec![
            ("no change", vec![], ImageDelta::default()),
            (
                "new topic",
                vec![create("c", id(3), 1)],
                ImageDelta {
                    changed_topics: ["c".to_string()].into(),
                    ..ImageDelta::default()
                },
            ),
            (
                "deleted topic",
                vec![MetadataRecord::DeleteTopic { topic_id: id(1) }],
                ImageDelta {
                    removed_topic_ids: [id(1)].into(),
                    ..ImageDelta::default()
                },
            ),
            (
                "deleted and re-created under a new id",
                vec![
                    MetadataRecord::DeleteTopic { topic_id: id(1) },
                    create("a", id(9), 1),
                ],
                ImageDelta {
                    changed_topics: ["a".to_string()].into(),
                    removed_topic_ids: [id(1)].into(),
                    ..ImageDelta::default()
                },
            ),
            (
                "broker config set",
                vec![MetadataRecord::SetBrokerConfig {
                    node_id: None,
                    key: "log.retention.ms".to_string(),
                    value: Some("1000".to_string()),
                }],
                ImageDelta {
                    broker_configs_changed: true,
                    ..ImageDelta::default()
                },
            ),
            (
                "partitions added",
                vec![MetadataRecord::CreatePartitions {
                    topic_id: id(2),
                    partitions: vec![partition_state(2)],
                }],
                ImageDelta {
                    changed_topics: ["b".to_string()].into(),
                    ..ImageDelta::default()
                },
            ),
        ];
        let before = image(&base);
        for (name, records, expected) in cases {
            let mut after = before.clone();
            for record in &records {
                after.apply(record);
            }
            assert_eq!(
                ImageDelta::between(Some(&before), &after),
                expected,
                "{name}"
            );
        }
        let first = ImageDelta::between(None, &before);
        assert_eq!(first.changed_topics.len(), 2);
        assert!(first.broker_configs_changed);
    }
}
