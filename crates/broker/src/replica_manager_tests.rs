//! Reconciliation against metadata images: partitions keyed by topic id, a
//! partition hosted without its lower-numbered siblings, deltas applied.

use std::collections::BTreeMap;
use std::sync::Arc;

use sluice_log::DataDir;
use sluice_meta::{ClusterImage, MetadataRecord, PartitionState};
use uuid::Uuid;

use super::ReplicaManager;
use crate::config::Settings;

/// This node's id in the tests.
const NODE: i32 = 1;

fn partition(partition: i32, replicas: &[i32]) -> PartitionState {
    PartitionState {
        partition,
        replicas: replicas.to_vec(),
        isr: replicas.to_vec(),
        leader: replicas[0],
        leader_epoch: 0,
        ..PartitionState::default()
    }
}

fn create(name: &str, topic_id: Uuid, partitions: Vec<PartitionState>) -> MetadataRecord {
    MetadataRecord::CreateTopic {
        name: name.to_string(),
        topic_id,
        partitions,
        configs: BTreeMap::new(),
    }
}

fn manager(dir: &std::path::Path) -> ReplicaManager {
    let settings = Arc::new(Settings::new(BTreeMap::new()).expect("default settings"));
    ReplicaManager::new(DataDir::open(dir).expect("data dir"), settings, NODE)
}

fn next(image: &Arc<ClusterImage>, records: &[MetadataRecord]) -> Arc<ClusterImage> {
    let mut image = (**image).clone();
    for record in records {
        image.apply(record);
    }
    Arc::new(image)
}

#[test]
fn a_partition_is_hosted_without_its_lower_numbered_siblings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let replicas = manager(dir.path());
    let topic_id = Uuid::new_v4();
    let image = next(
        &Arc::new(ClusterImage::default()),
        &[create(
            "t",
            topic_id,
            vec![
                partition(0, &[2]),
                partition(1, &[NODE]),
                partition(2, &[3]),
            ],
        )],
    );
    replicas.reconcile(&image).expect("reconcile");
    assert!(replicas.get("t", 0).is_none());
    assert!(replicas.get("t", 2).is_none());
    let hosted = replicas.get("t", 1).expect("partition 1 hosted");
    assert_eq!(hosted.topic_id, topic_id);
    assert!(replicas.get_by_id(topic_id, 1).is_some());
    assert_eq!(replicas.all().len(), 1);
    assert!(dir.path().join("t-1").is_dir());
    assert!(!dir.path().join("t-0").exists());
}

#[test]
fn deltas_open_new_partitions_and_remove_deleted_topics_only() {
    let dir = tempfile::tempdir().expect("temp dir");
    let replicas = manager(dir.path());
    let (kept, deleted) = (Uuid::new_v4(), Uuid::new_v4());
    let first = next(
        &Arc::new(ClusterImage::default()),
        &[
            create("kept", kept, vec![partition(0, &[NODE])]),
            create("gone", deleted, vec![partition(0, &[NODE])]),
        ],
    );
    replicas.reconcile(&first).expect("first image");
    assert_eq!(replicas.all().len(), 2);

    let second = next(
        &first,
        &[
            MetadataRecord::DeleteTopic { topic_id: deleted },
            MetadataRecord::CreatePartitions {
                topic_id: kept,
                partitions: vec![partition(1, &[NODE])],
            },
        ],
    );
    replicas.reconcile(&second).expect("second image");
    assert!(replicas.get("gone", 0).is_none());
    assert!(
        !dir.path().join("gone-0").exists(),
        "the deleted topic's data is removed"
    );
    assert!(replicas.get("kept", 0).is_some());
    assert!(replicas.get("kept", 1).is_some());

    eprintln!("phase: the same name re-created under a new id replaces the hosted one");
    let recreated = Uuid::new_v4();
    let third = next(
        &second,
        // The state machine refuses a second topic of one name: delete first.
        &[
            MetadataRecord::DeleteTopic { topic_id: kept },
            create("kept", recreated, vec![partition(0, &[NODE])]),
        ],
    );
    replicas.reconcile(&third).expect("third image");
    assert_eq!(replicas.get("kept", 0).expect("hosted").topic_id, recreated);
    assert!(replicas.get("kept", 1).is_none());
    assert!(replicas.get_by_id(kept, 0).is_none());
    assert_eq!(replicas.all().len(), 1);
}
