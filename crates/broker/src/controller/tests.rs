//! The control managers against images built here: no quorum, no broker.

use std::collections::BTreeMap;

use sluice_meta::{
    BrokerRegistration, ClusterImage, MetadataRecord, PartitionState, RecordOutcome,
};
use uuid::Uuid;

use super::configs::{alter_configs, ConfigOp, ConfigResource};
use super::placement::{place, PlacementError, Start};
use super::producer_ids::{allocate_producer_ids, allocated_block};
use super::topics::{
    collision_key, create_partitions, create_topic, delete_topic, validate_topic_name, TopicSpec,
};
use super::{ControllerContext, TopicError};
use crate::config::Settings;
use crate::error_codes;

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// An image with brokers `nodes` and the given topics (name, id, replica
/// lists of its partitions).
fn image(nodes: &[i32], topics: &[(&str, u128, Vec<Vec<i32>>)]) -> ClusterImage {
    let mut image = ClusterImage::default();
    for &node_id in nodes {
        image.apply(&MetadataRecord::RegisterBroker(BrokerRegistration {
            node_id,
            ..BrokerRegistration::default()
        }));
    }
    for (name, topic, replica_lists) in topics {
        image.apply(&MetadataRecord::CreateTopic {
            name: name.to_string(),
            topic_id: id(*topic),
            partitions: replica_lists
                .iter()
                .zip(0..)
                .map(|(replicas, partition)| PartitionState {
                    partition,
                    replicas: replicas.clone(),
                    isr: replicas.clone(),
                    leader: replicas[0],
                    ..PartitionState::default()
                })
                .collect(),
            configs: BTreeMap::new(),
        });
    }
    image
}

fn settings() -> Settings {
    Settings::new(BTreeMap::new()).expect("default settings")
}

fn context<'a>(image: &'a ClusterImage, settings: &'a Settings) -> ControllerContext<'a> {
    ControllerContext {
        image,
        settings,
        node_id: 1,
    }
}

fn spec(name: &str, num_partitions: i32, replication_factor: i16) -> TopicSpec {
    TopicSpec {
        name: name.to_string(),
        num_partitions,
        replication_factor,
        assignments: Vec::new(),
        configs: BTreeMap::new(),
    }
}

/// The replica lists of the partitions a CreateTopic / CreatePartitions
/// record carries.
fn replica_lists(record: &MetadataRecord) -> Vec<Vec<i32>> {
    match record {
        MetadataRecord::CreateTopic { partitions, .. }
        | MetadataRecord::CreatePartitions { partitions, .. } => {
            partitions.iter().map(|p| p.replicas.clone()).collect()
        }
        other => panic!("not a topic record: {other:?}"),
    }
}

#[test]
fn topic_names_follow_kafka_rules() {
    let long = "a".repeat(250);
    let max = "a".repeat(249);
    let cases: &[(&str, bool)] = &[
        ("orders", true),
        ("a.b_c-d", true),
        (&max, true),
        ("", false),
        (".", false),
        ("..", false),
        (&long, false),
        ("bad/name", false),
        ("spaces here", false),
        ("ünïcode", false),
    ];
    for (name, ok) in cases {
        assert_eq!(validate_topic_name(name).is_ok(), *ok, "{name}");
    }
}

#[test]
fn dots_and_underscores_collide() {
    assert_eq!(collision_key("a.b"), collision_key("a_b"));
    assert_ne!(collision_key("a.b"), collision_key("a-b"));
}

/// What the placer returns.
type Placed = Result<Vec<Vec<i32>>, PlacementError>;

#[test]
fn placement_spreads_leaders_then_shifts_followers() {
    let three = image(&[1, 2, 3], &[]);
    let cases: Vec<(i32, i32, usize, Placed)> = vec![
        // Leaders round robin; after a full round the followers shift by
        // one (Kafka's AdminUtils), so followers spread too.
        (
            0,
            4,
            2,
            Ok(vec![vec![1, 2], vec![2, 3], vec![3, 1], vec![1, 3]]),
        ),
        (2, 2, 3, Ok(vec![vec![3, 1, 2], vec![1, 3, 2]])),
        (
            0,
            1,
            4,
            Err(PlacementError::NotEnoughBrokers {
                replication_factor: 4,
                available: 3,
            }),
        ),
    ];
    for (first, count, replication_factor, expected) in cases {
        let placed = place(&three, first, count, replication_factor, Start::Seed(0));
        assert_eq!(placed, expected);
    }
    assert!(place(&image(&[], &[]), 0, 1, 1, Start::Seed(0)).is_err());
    // Every broker leads as many partitions as any other.
    let leaders = place(&three, 0, 6, 1, Start::Seed(5)).unwrap();
    for broker in [1, 2, 3] {
        let led = leaders
            .iter()
            .filter(|replicas| replicas[0] == broker)
            .count();
        assert_eq!(led, 2, "{leaders:?}");
    }
}

/// `image` with racks and fenced flags set on its registrations.
fn with_brokers(brokers: &[(i32, Option<&str>, bool)]) -> ClusterImage {
    let ids: Vec<i32> = brokers.iter().map(|(id, _, _)| *id).collect();
    let mut image = image(&ids, &[]);
    for (id, rack, fenced) in brokers {
        let registration = image.brokers.get_mut(id).expect("registered");
        registration.rack = rack.map(str::to_string);
        registration.fenced = *fenced;
    }
    image
}

#[test]
fn placement_skips_fenced_brokers() {
    let image = with_brokers(&[(1, None, false), (2, None, true), (3, None, false)]);
    assert_eq!(
        place(&image, 0, 2, 2, Start::Seed(0)),
        Ok(vec![vec![1, 3], vec![3, 1]])
    );
    assert_eq!(
        place(&image, 0, 1, 3, Start::Seed(0)),
        Err(PlacementError::NotEnoughBrokers {
            replication_factor: 3,
            available: 2
        })
    );
}

#[test]
fn placement_puts_replicas_on_every_rack_first() {
    let image = with_brokers(&[
        (1, Some("a"), false),
        (2, Some("a"), false),
        (3, Some("b"), false),
        (4, Some("b"), false),
    ]);
    let rack = |id: i32| if id <= 2 { "a" } else { "b" };
    let placed = place(&image, 0, 8, 2, Start::Seed(0)).unwrap();
    assert_eq!(
        placed[..4],
        [vec![1, 3], vec![3, 2], vec![2, 4], vec![4, 1]]
    );
    for replicas in &placed {
        assert_ne!(rack(replicas[0]), rack(replicas[1]), "{placed:?}");
    }
    for broker in 1..=4 {
        let led = placed
            .iter()
            .filter(|replicas| replicas[0] == broker)
            .count();
        assert_eq!(led, 2, "{placed:?}");
    }
    // Three replicas over two racks: both racks, no broker twice.
    for replicas in place(&image, 0, 4, 3, Start::Seed(1)).unwrap() {
        let racks: std::collections::BTreeSet<&str> = replicas.iter().map(|id| rack(*id)).collect();
        assert_eq!(racks.len(), 2, "{replicas:?}");
        let distinct: std::collections::BTreeSet<i32> = replicas.iter().copied().collect();
        assert_eq!(distinct.len(), 3, "{replicas:?}");
    }
}

#[test]
fn added_partitions_continue_after_partition_zeros_leader() {
    let three = image(&[1, 2, 3], &[]);
    assert_eq!(
        place(&three, 1, 2, 1, Start::AfterLeader(2)),
        Ok(vec![vec![3], vec![1]])
    );
    // A leader that is gone: start from the first broker.
    assert_eq!(
        place(&three, 1, 1, 1, Start::AfterLeader(9)),
        Ok(vec![vec![2]])
    );
}

#[test]
fn create_topic_places_and_records() {
    let settings = settings();
    let image = image(&[1, 2, 3], &[]);
    let result = create_topic(context(&image, &settings), spec("t", 3, 2), id(7)).unwrap();
    assert_eq!(result.response.topic_id, id(7));
    assert_eq!(result.response.num_partitions, 3);
    assert_eq!(result.response.replication_factor, 2);
    assert_eq!(result.records.len(), 1);
    assert_eq!(
        replica_lists(&result.records[0]),
        vec![vec![1, 2], vec![2, 3], vec![3, 1]]
    );
}

#[test]
fn create_topic_defaults_come_from_the_dynamic_configs() {
    let settings = settings();
    let mut image = image(&[1], &[]);
    image.apply(&MetadataRecord::SetBrokerConfig {
        node_id: None,
        key: "num.partitions".into(),
        value: Some("5".into()),
    });
    let result = create_topic(context(&image, &settings), spec("t", -1, -1), id(7)).unwrap();
    assert_eq!(result.response.num_partitions, 5);
    assert_eq!(result.response.replication_factor, 1);
}

#[test]
fn create_topic_errors() {
    let settings = settings();
    let image = image(
        &[1, 2],
        &[("orders", 1, vec![vec![1]]), ("a.b", 2, vec![vec![1]])],
    );
    let manual = |num_partitions, assignments: Vec<(i32, Vec<i32>)>| TopicSpec {
        assignments,
        ..spec("m", num_partitions, -1)
    };
    let cases: Vec<(TopicSpec, i16, &str)> = vec![
        (spec("orders", 1, 1), error_codes::TOPIC_ALREADY_EXISTS, "Topic 'orders' already exists."),
        (spec("a_b", 1, 1), error_codes::INVALID_TOPIC_EXCEPTION, "Topic 'a_b' collides with existing topic: a.b"),
        (spec("t", 0, 1), error_codes::INVALID_PARTITIONS, "Number of partitions must be larger than 0."),
        (spec("t", 1, 0), error_codes::INVALID_REPLICATION_FACTOR, "Replication factor must be larger than 0."),
        (spec("t", 1, 3), error_codes::INVALID_REPLICATION_FACTOR, "Unable to replicate the partition 3 time(s): The target replication factor of 3 cannot be reached because only 2 broker(s) are registered."),
        (manual(2, vec![(0, vec![1])]), error_codes::INVALID_REQUEST, "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time."),
        (manual(-1, vec![(1, vec![1])]), error_codes::INVALID_REPLICA_ASSIGNMENT, "Partitions should be a consecutive 0-based integer sequence with replicas"),
        (manual(-1, vec![(0, vec![1]), (1, vec![9])]), error_codes::INVALID_REPLICA_ASSIGNMENT, "Replica 9 is not a live broker"),
        (spec("bad/name", 1, 1), error_codes::INVALID_TOPIC_EXCEPTION, "Topic name bad/name is illegal, it contains a character other than ASCII alphanumerics, '.', '_' and '-'"),
    ];
    for (spec, code, message) in cases {
        let name = spec.name.clone();
        assert_eq!(
            create_topic(context(&image, &settings), spec, id(9)),
            Err(TopicError::new(code, message)),
            "{name}"
        );
    }
    let ok = create_topic(
        context(&image, &settings),
        manual(-1, vec![(1, vec![2, 1]), (0, vec![1])]),
        id(9),
    )
    .unwrap();
    assert_eq!(replica_lists(&ok.records[0]), vec![vec![1], vec![2, 1]]);
}

#[test]
fn delete_topic_decisions() {
    let settings = settings();
    let image = image(
        &[1],
        &[
            ("t", 1, vec![vec![1]]),
            ("__consumer_offsets", 2, vec![vec![1]]),
        ],
    );
    let context = context(&image, &settings);
    let deleted = delete_topic(context, "t").unwrap();
    assert_eq!(deleted.response, id(1));
    assert_eq!(
        deleted.records,
        vec![MetadataRecord::DeleteTopic { topic_id: id(1) }]
    );
    let unknown = delete_topic(context, "nope").unwrap_err();
    assert_eq!(unknown.code, error_codes::UNKNOWN_TOPIC_OR_PARTITION);
    let internal = delete_topic(context, "__consumer_offsets").unwrap_err();
    assert_eq!(internal.code, error_codes::INVALID_TOPIC_EXCEPTION);
}

/// A CreatePartitions assignment.
type ReplicaLists = Vec<Vec<i32>>;

#[test]
fn create_partitions_decisions() {
    let settings = settings();
    let image = image(&[1, 2, 3], &[("t", 1, vec![vec![1, 2], vec![2, 3]])]);
    let context = context(&image, &settings);
    let grown = create_partitions(context, "t", 4, None).unwrap();
    // Partition 3 starts the second round of leaders: its follower shifts.
    assert_eq!(
        replica_lists(&grown.records[0]),
        vec![vec![3, 1], vec![1, 3]]
    );
    let assigned = create_partitions(context, "t", 3, Some(vec![vec![3], vec![1]])).unwrap();
    assert_eq!(replica_lists(&assigned.records[0]), vec![vec![3]]);
    let cases: Vec<(i32, Option<ReplicaLists>, i16, &str)> = vec![
        (
            1,
            None,
            error_codes::INVALID_PARTITIONS,
            "Topic currently has 2 partitions, which is higher than the requested 1.",
        ),
        (
            2,
            None,
            error_codes::INVALID_PARTITIONS,
            "Topic already has 2 partitions.",
        ),
        (
            4,
            Some(vec![vec![1]]),
            error_codes::INVALID_REPLICA_ASSIGNMENT,
            "Increasing the number of partitions by 2 but 1 assignments provided.",
        ),
        (
            3,
            Some(vec![vec![9]]),
            error_codes::INVALID_REPLICA_ASSIGNMENT,
            "Unknown broker in the replica assignment",
        ),
    ];
    for (count, assignments, code, message) in cases {
        assert_eq!(
            create_partitions(context, "t", count, assignments),
            Err(TopicError::new(code, message)),
            "{count}"
        );
    }
    let unknown = create_partitions(context, "nope", 3, None).unwrap_err();
    assert_eq!(unknown.message, "The topic 'nope' does not exist.");
    let thin = image_with_one_broker_and_wide_topic();
    let wide = create_partitions(
        super::ControllerContext {
            image: &thin,
            ..context
        },
        "w",
        2,
        None,
    );
    assert_eq!(
        wide.unwrap_err().message,
        "Not enough live brokers for the topic's replication factor"
    );
}

/// One broker, and a topic of replication factor 2 (its other broker gone).
fn image_with_one_broker_and_wide_topic() -> ClusterImage {
    image(&[1], &[("w", 1, vec![vec![1, 2]])])
}

#[test]
fn alter_configs_records_only_differences() {
    let settings = settings();
    let mut image = image(&[1], &[("t", 1, vec![vec![1]])]);
    image.apply(&MetadataRecord::SetTopicConfig {
        topic_id: id(1),
        key: "retention.ms".into(),
        value: Some("1000".into()),
    });
    let context = context(&image, &settings);
    let topic = ConfigResource::Topic("t".into());
    let set = |k: &str, v: &str| ConfigOp::Set(k.into(), v.into());

    let same = alter_configs(context, &topic, vec![set("retention.ms", "1000")], false).unwrap();
    assert!(same.records.is_empty());

    let changed = alter_configs(
        context,
        &topic,
        vec![ConfigOp::Append("cleanup.policy".into(), "compact".into())],
        true,
    )
    .unwrap();
    assert_eq!(
        changed.records,
        vec![
            MetadataRecord::SetTopicConfig {
                topic_id: id(1),
                key: "cleanup.policy".into(),
                value: Some("delete,compact".into()),
            },
            MetadataRecord::SetTopicConfig {
                topic_id: id(1),
                key: "retention.ms".into(),
                value: None,
            },
        ]
    );

    let broker = ConfigResource::Broker(None);
    let cases: Vec<(&ConfigResource, ConfigOp, i16, &str)> = vec![
        (
            &topic,
            set("nope", "1"),
            error_codes::INVALID_CONFIG,
            "Unknown topic config name: nope",
        ),
        (
            &broker,
            set("nope", "1"),
            error_codes::INVALID_CONFIG,
            "Unknown broker config name: nope",
        ),
        (
            &broker,
            set("broker.id", "2"),
            error_codes::INVALID_REQUEST,
            "Cannot update these configs dynamically: Set(broker.id)",
        ),
        (
            &topic,
            ConfigOp::Append("retention.ms".into(), "1".into()),
            error_codes::INVALID_CONFIG,
            "Config value append/subtract is not allowed for config key: retention.ms",
        ),
    ];
    for (resource, op, code, message) in cases {
        let error = alter_configs(context, resource, vec![op], false).unwrap_err();
        assert_eq!((error.code, error.message.as_str()), (code, message));
    }
    let missing = alter_configs(context, &ConfigResource::Topic("x".into()), vec![], false);
    assert_eq!(missing.unwrap_err().message, "Topic x does not exist");

    // librdkafka 0081: any of Kafka's broker configs is known, type-checked,
    // dynamic or read-only as in Kafka, though Sluice gives it no effect.
    let node = ConfigResource::Broker(Some(1));
    let kerberos = set("sasl.kerberos.min.time.before.relogin", "58000");
    let accepted = alter_configs(context, &node, vec![kerberos], false).unwrap();
    assert_eq!(
        accepted.records,
        vec![MetadataRecord::SetBrokerConfig {
            node_id: Some(1),
            key: "sasl.kerberos.min.time.before.relogin".into(),
            value: Some("58000".into()),
        }]
    );
    let kafka_only_cases = [
        (
            set("sasl.kerberos.min.time.before.relogin", "soon"),
            error_codes::INVALID_CONFIG,
        ),
        (
            set("controlled.shutdown.enable", "false"),
            error_codes::INVALID_REQUEST,
        ),
    ];
    for (op, code) in kafka_only_cases {
        let error = alter_configs(context, &node, vec![op], false).unwrap_err();
        assert_eq!(error.code, code, "{}", error.message);
    }
    let invalid = alter_configs(context, &topic, vec![set("retention.ms", "soon")], false);
    assert_eq!(invalid.unwrap_err().code, error_codes::INVALID_CONFIG);
}

#[test]
fn producer_id_blocks_come_from_the_outcome() {
    let result = allocate_producer_ids(4, 1000);
    let mut image = ClusterImage {
        next_producer_id: 3000,
        ..ClusterImage::default()
    };
    let outcomes: Vec<RecordOutcome> = result.records.iter().map(|r| image.apply(r)).collect();
    assert_eq!(allocated_block(&outcomes, 4), Ok(3000));
    assert_eq!(image.next_producer_id, 4000);
    assert!(allocated_block(&[RecordOutcome::Applied], 4).is_err());
}
