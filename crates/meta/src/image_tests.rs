//! The image's `apply` against tables of records: outcomes, refusals,
//! the index invariant, and determinism.

use std::collections::BTreeMap;

use uuid::Uuid;

use super::ClusterImage;
use crate::records::{
    BrokerRegistration, MetadataRecord, PartitionState, RecordBatch, RecordOutcome, RecordRejected,
};

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
        ..PartitionState::default()
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

fn register(node_id: i32) -> MetadataRecord {
    MetadataRecord::RegisterBroker(BrokerRegistration {
        node_id,
        ..BrokerRegistration::default()
    })
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
                ..BrokerRegistration::default()
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
                    ..BrokerRegistration::default()
                }),
                MetadataRecord::RegisterBroker(BrokerRegistration {
                    node_id: 1,
                    host: "b".into(),
                    port: 2,
                    rack: Some("r".into()),
                    ..BrokerRegistration::default()
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
            "re-creating a deleted name gives the new id",
            vec![
                create("t", id(1), 1),
                MetadataRecord::DeleteTopic { topic_id: id(1) },
                create("t", id(2), 1),
            ],
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
                        ..PartitionState::default()
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
            "allocate producer ids never hands out an id twice",
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
            // The state machine assigns blocks: a stale lower bound gets the
            // next free block, never one already handed out.
            |image| assert_eq!(image.next_producer_id, 6010),
        ),
        (
            "create topic re-using a name is refused",
            vec![create("t", id(1), 1), create("t", id(2), 2)],
            |image| {
                assert!(image.topic_by_id(&id(2)).is_none());
                assert_eq!(image.topic("t").unwrap().topic_id, id(1));
                assert_eq!(image.topic("t").unwrap().partitions.len(), 1);
                assert!(image.deleted_topic_ids.is_empty());
            },
        ),
        (
            "create topic re-using an id is refused",
            vec![create("t", id(1), 1), create("u", id(1), 2)],
            |image| {
                assert!(image.topic("u").is_none());
                assert_eq!(image.topic_by_id(&id(1)).unwrap().name, "t");
            },
        ),
        (
            "create topic re-using a deleted id is refused",
            vec![
                create("t", id(1), 1),
                MetadataRecord::DeleteTopic { topic_id: id(1) },
                create("u", id(1), 1),
            ],
            |image| assert!(image.topics.is_empty()),
        ),
        (
            "each registration bumps the broker epoch",
            vec![register(1), register(2), register(1)],
            |image| {
                assert_eq!(image.brokers[&1].broker_epoch, 2);
                assert_eq!(image.brokers[&2].broker_epoch, 1);
            },
        ),
        (
            "each partition change bumps the partition epoch",
            vec![
                create("t", id(1), 2),
                MetadataRecord::ChangePartition {
                    topic_id: id(1),
                    state: partition(1, 2, 1),
                },
                MetadataRecord::ChangePartition {
                    topic_id: id(1),
                    state: partition(1, 3, 2),
                },
            ],
            |image| {
                let partitions = &image.topic("t").unwrap().partitions;
                assert_eq!(partitions[0].partition_epoch, 0);
                assert_eq!(partitions[1].partition_epoch, 2);
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
fn apply_returns_what_it_did() {
    let mut image = ClusterImage::default();
    let rejected = |rejection| RecordOutcome::Rejected(rejection);
    let cases: Vec<(MetadataRecord, RecordOutcome)> = vec![
        (create("t", id(1), 1), RecordOutcome::Applied),
        (
            create("t", id(2), 1),
            rejected(RecordRejected::TopicNameExists { name: "t".into() }),
        ),
        (
            create("u", id(1), 1),
            rejected(RecordRejected::TopicIdExists { topic_id: id(1) }),
        ),
        (
            register(4),
            RecordOutcome::BrokerRegistered {
                node_id: 4,
                broker_epoch: 1,
            },
        ),
        (
            MetadataRecord::AllocateProducerIds {
                node_id: 4,
                first_producer_id: 0,
                count: 1000,
            },
            RecordOutcome::ProducerIdsAllocated {
                node_id: 4,
                first_producer_id: 0,
                count: 1000,
            },
        ),
        (
            MetadataRecord::AllocateProducerIds {
                node_id: 5,
                first_producer_id: 0,
                count: 1000,
            },
            RecordOutcome::ProducerIdsAllocated {
                node_id: 5,
                first_producer_id: 1000,
                count: 1000,
            },
        ),
        (
            MetadataRecord::AllocateProducerIds {
                node_id: 5,
                first_producer_id: i64::MAX - 10,
                count: 1000,
            },
            rejected(RecordRejected::ProducerIdsExhausted { count: 1000 }),
        ),
    ];
    for (record, expected) in cases {
        let before = image.clone();
        let outcome = image.apply(&record);
        assert_eq!(outcome, expected, "{record:?}");
        if matches!(outcome, RecordOutcome::Rejected(_)) {
            assert_eq!(image, before, "a refused record changed the image");
        }
    }
}

#[test]
fn a_refused_record_leaves_its_whole_entry_unapplied() {
    let mut image = ClusterImage::default();
    assert!(image
        .apply_all(&RecordBatch::new(vec![create("t", id(1), 1)]))
        .is_ok());
    let before = image.clone();
    let entry = vec![register(1), create("u", id(2), 1), create("t", id(3), 1)];
    assert_eq!(
        image.apply_all(&RecordBatch::new(entry.clone())),
        Err(RecordRejected::TopicNameExists { name: "t".into() })
    );
    assert_eq!(image, before);
    let outcomes = image
        .apply_all(&RecordBatch::new(entry[..2].to_vec()))
        .unwrap();
    assert_eq!(outcomes.len(), 2);
    assert!(image.topic("u").is_some());
}

#[test]
fn format_0_records_replay_with_format_0_rules() {
    let records = [
        register(1),
        register(1),
        create("t", id(1), 1),
        MetadataRecord::ChangePartition {
            topic_id: id(1),
            state: partition(0, 2, 1),
        },
        MetadataRecord::AllocateProducerIds {
            node_id: 1,
            first_producer_id: 5000,
            count: 1000,
        },
        MetadataRecord::AllocateProducerIds {
            node_id: 1,
            first_producer_id: 0,
            count: 10,
        },
    ];
    let mut image = ClusterImage::default();
    let batch = RecordBatch {
        version: 0,
        records: records.to_vec(),
    };
    let outcomes = image.apply_all(&batch).unwrap();
    assert!(outcomes.iter().all(|o| *o == RecordOutcome::Applied));
    assert_eq!(image.brokers[&1].broker_epoch, 0);
    assert_eq!(image.topic("t").unwrap().partitions[0].partition_epoch, 0);
    assert_eq!(image.next_producer_id, 6000);
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

#[test]
fn the_first_cluster_id_wins() {
    let set = |id: &str| MetadataRecord::SetClusterId {
        cluster_id: id.to_string(),
    };
    let refused = |current: &str, proposed: &str| {
        RecordOutcome::Rejected(RecordRejected::ClusterIdSet {
            current: current.to_string(),
            proposed: proposed.to_string(),
        })
    };
    // (records applied in order, outcome of each, cluster id after)
    let cases = [
        (vec![set("A")], vec![RecordOutcome::Applied], "A"),
        (
            vec![set("A"), set("A")],
            vec![RecordOutcome::Applied, RecordOutcome::Applied],
            "A",
        ),
        (
            vec![set("A"), set("B")],
            vec![RecordOutcome::Applied, refused("A", "B")],
            "A",
        ),
        (vec![set("")], vec![refused("", "")], ""),
    ];
    for (records, outcomes, cluster_id) in cases {
        let mut image = ClusterImage::default();
        let got: Vec<RecordOutcome> = records.iter().map(|r| image.apply(r)).collect();
        assert_eq!(got, outcomes, "{records:?}");
        assert_eq!(image.cluster_id, cluster_id, "{records:?}");
    }
}
