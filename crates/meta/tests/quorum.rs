//! The metadata quorum against a real temp data dir: open, propose, restart,
//! recovery from a torn log tail, node id checks.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

use sluice_meta::{
    BrokerRegistration, MetaError, MetadataQuorum, MetadataRecord, PartitionState, QuorumConfig,
    RecordOutcome, RecordRejected,
};
use uuid::Uuid;

/// Every step of these tests must finish within this, or the test fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

async fn bounded<T>(future: impl Future<Output = T>) -> T {
    tokio::time::timeout(STEP_TIMEOUT, future)
        .await
        .expect("step timed out")
}

fn config(node_id: i32) -> QuorumConfig {
    QuorumConfig {
        node_id,
        voters: vec![(node_id, "localhost:9093".to_string())],
    }
}

async fn open(dir: &Path, node_id: i32) -> Result<MetadataQuorum, MetaError> {
    bounded(MetadataQuorum::open(dir, config(node_id))).await
}

fn partition(partition: i32, leader_epoch: i32) -> PartitionState {
    PartitionState {
        partition,
        replicas: vec![1],
        isr: vec![1],
        leader: 1,
        leader_epoch,
        ..PartitionState::default()
    }
}

fn create_topic(name: &str, topic_id: Uuid, partitions: i32) -> MetadataRecord {
    MetadataRecord::CreateTopic {
        name: name.to_string(),
        topic_id,
        partitions: (0..partitions).map(|p| partition(p, 0)).collect(),
        configs: BTreeMap::from([("cleanup.policy".to_string(), "compact".to_string())]),
    }
}

fn register(node_id: i32) -> MetadataRecord {
    MetadataRecord::RegisterBroker(BrokerRegistration {
        node_id,
        host: "localhost".to_string(),
        port: 9092,
        rack: None,
        ..BrokerRegistration::default()
    })
}

fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "sluice_meta=info".into()),
        )
        .with_test_writer()
        .try_init();
}

#[tokio::test]
async fn propose_restart_and_recover() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let topic_id = Uuid::new_v4();

    tracing::info!("phase: first start");
    let quorum = open(dir.path(), 1).await.unwrap();
    assert_eq!(quorum.node_id(), 1);
    assert_eq!(quorum.leader_id(), Some(1));
    let cluster_id = quorum.cluster_id();
    assert_eq!(cluster_id.len(), 22);
    assert_eq!(quorum.image().cluster_id, cluster_id);
    let mut updates = quorum.subscribe();

    tracing::info!("phase: propose");
    bounded(quorum.propose(vec![register(1), create_topic("orders", topic_id, 2)]))
        .await
        .unwrap();
    bounded(quorum.propose(vec![
        MetadataRecord::ChangePartition {
            topic_id,
            state: partition(1, 4),
        },
        MetadataRecord::AllocateProducerIds {
            node_id: 1,
            first_producer_id: 0,
            count: 1000,
        },
    ]))
    .await
    .unwrap();
    let image = quorum.image();
    let topic = image.topic("orders").unwrap();
    assert_eq!(topic.partitions.len(), 2);
    assert_eq!(topic.partitions[1].leader_epoch, 4);
    assert_eq!(image.topic_by_id(&topic_id).unwrap().name, "orders");
    assert_eq!(image.next_producer_id, 1000);
    assert!(image.brokers.contains_key(&1));
    assert!(image.last_applied_index > 0);
    assert!(updates.has_changed().unwrap());
    assert_eq!(*updates.borrow_and_update(), image);

    tracing::info!("phase: restart");
    bounded(quorum.shutdown()).await.unwrap();
    assert!(matches!(
        bounded(quorum.propose(vec![register(2)])).await,
        Err(MetaError::ShutDown)
    ));
    drop(quorum);
    let quorum = open(dir.path(), 1).await.unwrap();
    assert_eq!(quorum.cluster_id(), cluster_id);
    assert_eq!(quorum.node_id(), 1);
    let reopened = quorum.image();
    // openraft may append a blank entry for a new term on restart, which moves
    // last_applied_index; everything else is identical.
    assert!(reopened.last_applied_index >= image.last_applied_index);
    let mut comparable = (*reopened).clone();
    comparable.last_applied_index = image.last_applied_index;
    assert_eq!(comparable, *image);
    assert_eq!(
        reopened.topic("orders").unwrap().partitions[1].leader_epoch,
        4
    );

    tracing::info!("phase: propose after restart");
    bounded(quorum.propose(vec![MetadataRecord::DeleteTopic { topic_id }]))
        .await
        .unwrap();
    assert!(quorum.image().topic("orders").is_none());
    bounded(quorum.shutdown()).await.unwrap();
}

#[tokio::test]
async fn reopen_with_another_node_id_fails() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let quorum = open(dir.path(), 3).await.unwrap();
    bounded(quorum.shutdown()).await.unwrap();
    drop(quorum);
    match open(dir.path(), 4).await {
        Err(MetaError::NodeIdMismatch {
            found, configured, ..
        }) => assert_eq!((found, configured), (3, 4)),
        Err(other) => panic!("expected NodeIdMismatch, got {other}"),
        Ok(_) => panic!("expected NodeIdMismatch, got an open quorum"),
    }
}

#[tokio::test]
async fn torn_log_tail_is_cut_on_open() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let topic_id = Uuid::new_v4();
    let quorum = open(dir.path(), 1).await.unwrap();
    bounded(quorum.propose(vec![create_topic("a", topic_id, 1)]))
        .await
        .unwrap();
    bounded(quorum.propose(vec![MetadataRecord::ChangePartition {
        topic_id,
        state: partition(0, 9),
    }]))
    .await
    .unwrap();
    bounded(quorum.shutdown()).await.unwrap();
    drop(quorum);

    tracing::info!("phase: append garbage to the log");
    let log_path = dir.path().join("meta").join("raft.log");
    let clean_len = std::fs::metadata(&log_path).unwrap().len();
    {
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&log_path)
            .unwrap();
        // A plausible header (length 100, wrong CRC) then too few bytes.
        file.write_all(&100u32.to_le_bytes()).unwrap();
        file.write_all(&[0xde, 0xad, 0xbe, 0xef, 1, 2, 3]).unwrap();
    }

    tracing::info!("phase: reopen");
    let quorum = open(dir.path(), 1).await.unwrap();
    let image = quorum.image();
    assert_eq!(image.topic("a").unwrap().partitions[0].leader_epoch, 9);
    bounded(quorum.propose(vec![register(1)])).await.unwrap();
    assert!(quorum.image().brokers.contains_key(&1));
    bounded(quorum.shutdown()).await.unwrap();
    drop(quorum);
    assert!(std::fs::metadata(&log_path).unwrap().len() > clean_len);

    tracing::info!("phase: reopen after appending past the cut");
    let quorum = open(dir.path(), 1).await.unwrap();
    assert!(quorum.image().brokers.contains_key(&1));
    assert!(quorum.image().topic("a").is_some());
    bounded(quorum.shutdown()).await.unwrap();
}

#[tokio::test]
async fn corrupt_frame_in_the_middle_of_the_tail_is_cut() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let quorum = open(dir.path(), 1).await.unwrap();
    bounded(quorum.propose(vec![register(1)])).await.unwrap();
    bounded(quorum.shutdown()).await.unwrap();
    drop(quorum);

    // Flip a byte in the last frame: it must be dropped, not trusted.
    let log_path = dir.path().join("meta").join("raft.log");
    let mut bytes = std::fs::read(&log_path).unwrap();
    let last = bytes.len() - 2;
    bytes[last] ^= 0xff;
    std::fs::write(&log_path, &bytes).unwrap();

    let quorum = open(dir.path(), 1).await.unwrap();
    // The lost entry was the new term's blank entry or later; whatever survives
    // is a prefix, and the quorum still works.
    bounded(quorum.propose(vec![register(2)])).await.unwrap();
    assert!(quorum.image().brokers.contains_key(&2));
    bounded(quorum.shutdown()).await.unwrap();
}

#[tokio::test]
async fn many_proposals() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let quorum = open(dir.path(), 1).await.unwrap();
    for n in 0..200 {
        bounded(quorum.propose(vec![MetadataRecord::AllocateProducerIds {
            node_id: 1,
            first_producer_id: n * 10,
            count: 10,
        }]))
        .await
        .unwrap();
    }
    assert_eq!(quorum.image().next_producer_id, 2000);
    bounded(quorum.shutdown()).await.unwrap();
    drop(quorum);
    let quorum = open(dir.path(), 1).await.unwrap();
    assert_eq!(quorum.image().next_producer_id, 2000);
    bounded(quorum.shutdown()).await.unwrap();
}

#[tokio::test]
async fn restart_from_snapshot_and_purged_log() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let quorum = open(dir.path(), 1).await.unwrap();
    let topic_id = Uuid::new_v4();
    bounded(quorum.propose(vec![create_topic("t", topic_id, 1)]))
        .await
        .unwrap();
    for n in 0..250 {
        bounded(quorum.propose(vec![MetadataRecord::AllocateProducerIds {
            node_id: 1,
            first_producer_id: n * 10,
            count: 10,
        }]))
        .await
        .unwrap();
    }
    tracing::info!("phase: snapshot and purge");
    bounded(quorum.snapshot_now()).await.unwrap();
    let meta_dir = dir.path().join("meta");
    assert!(meta_dir.join("snapshot.json").exists());
    bounded(async {
        while !meta_dir.join("purged.json").exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    bounded(quorum.propose(vec![MetadataRecord::ChangePartition {
        topic_id,
        state: partition(0, 3),
    }]))
    .await
    .unwrap();
    let image = quorum.image();
    bounded(quorum.shutdown()).await.unwrap();
    drop(quorum);

    tracing::info!("phase: reopen from snapshot + log");
    let quorum = open(dir.path(), 1).await.unwrap();
    let reopened = quorum.image();
    assert!(reopened.last_applied_index >= image.last_applied_index);
    let mut comparable = (*reopened).clone();
    comparable.last_applied_index = image.last_applied_index;
    assert_eq!(comparable, *image);
    assert_eq!(reopened.next_producer_id, 2500);
    assert_eq!(reopened.topic("t").unwrap().partitions[0].leader_epoch, 3);
    bounded(quorum.propose(vec![register(1)])).await.unwrap();
    bounded(quorum.shutdown()).await.unwrap();
}

#[tokio::test]
async fn concurrent_proposals() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let quorum = std::sync::Arc::new(open(dir.path(), 1).await.unwrap());
    let mut tasks = Vec::new();
    for node_id in 0..50 {
        let quorum = quorum.clone();
        tasks.push(tokio::spawn(async move {
            quorum.propose(vec![register(node_id)]).await
        }));
    }
    for task in tasks {
        bounded(task).await.unwrap().unwrap();
    }
    assert_eq!(quorum.image().brokers.len(), 50);
    bounded(quorum.shutdown()).await.unwrap();
}

#[tokio::test]
async fn more_than_one_voter_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let result = bounded(MetadataQuorum::open(
        dir.path(),
        QuorumConfig {
            node_id: 1,
            voters: vec![(1, "a:1".to_string()), (2, "b:1".to_string())],
        },
    ))
    .await;
    assert!(matches!(result, Err(MetaError::Raft(_))));
}

#[tokio::test]
async fn the_state_machine_answers_and_refuses() {
    init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let quorum = open(dir.path(), 1).await.unwrap();
    let topic_id = Uuid::new_v4();
    bounded(quorum.propose(vec![create_topic("t", topic_id, 1)]))
        .await
        .unwrap();

    tracing::info!("phase: a duplicate name is refused, with the rest of its entry");
    let before = quorum.image();
    let refused =
        bounded(quorum.propose(vec![register(7), create_topic("t", Uuid::new_v4(), 2)])).await;
    assert!(matches!(
        refused,
        Err(MetaError::Rejected(RecordRejected::TopicNameExists { ref name })) if name == "t"
    ));
    let after = quorum.image();
    assert!(!after.brokers.contains_key(&7));
    assert_eq!(after.topic("t"), before.topic("t"));

    tracing::info!("phase: producer-id blocks come from the state machine");
    let mut firsts = Vec::new();
    for _ in 0..2 {
        let outcomes = bounded(quorum.propose(vec![MetadataRecord::AllocateProducerIds {
            node_id: 1,
            first_producer_id: 0,
            count: 100,
        }]))
        .await
        .unwrap();
        match outcomes.as_slice() {
            [RecordOutcome::ProducerIdsAllocated {
                first_producer_id, ..
            }] => firsts.push(*first_producer_id),
            other => panic!("unexpected outcomes {other:?}"),
        }
    }
    assert_eq!(firsts, vec![0, 100]);
    bounded(quorum.shutdown()).await.unwrap();
}
