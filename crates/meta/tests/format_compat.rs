//! Data dirs written before records had a format version still open, to the
//! image the old code had: `fixtures/format-v0/` holds two `meta/` dirs the
//! unversioned format wrote (a Raft log alone; a snapshot plus the log after
//! it) and the image each opened to then.

use std::path::Path;
use std::time::Duration;

use sluice_meta::{
    ClusterImage, LeaderRecoveryState, MetadataQuorum, MetadataRecord, QuorumConfig, RecordOutcome,
    RECORD_FORMAT_VERSION,
};

/// Every step of these tests must finish within this, or the test fails.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/format-v0")
        .join(name)
}

/// Copies a fixture data dir, so opening it (which appends) leaves it intact.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create the copy");
    for entry in std::fs::read_dir(from).expect("read the fixture") {
        let entry = entry.expect("read the fixture");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("fixture file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).expect("copy a fixture file");
        }
    }
}

async fn open(dir: &Path) -> MetadataQuorum {
    let config = QuorumConfig {
        node_id: 1,
        voters: vec![(1, "localhost:9093".to_string())],
    };
    tokio::time::timeout(STEP_TIMEOUT, MetadataQuorum::open(dir, config))
        .await
        .expect("open timed out")
        .expect("open failed")
}

/// The image as it opened under the old code (new fields at their defaults).
fn old_image(name: &str) -> ClusterImage {
    let bytes = std::fs::read(fixture(&format!("{name}.image.json"))).expect("fixture image");
    serde_json::from_slice(&bytes).expect("fixture image decodes")
}

/// `opened` equals `expected` except for `last_applied_index`, which a
/// reopen moves (openraft appends a blank entry for its new term).
fn assert_same_image(opened: &ClusterImage, expected: &ClusterImage) {
    assert!(opened.last_applied_index >= expected.last_applied_index);
    let mut comparable = opened.clone();
    comparable.last_applied_index = expected.last_applied_index;
    assert_eq!(&comparable, expected);
}

#[tokio::test]
async fn unversioned_data_dirs_open_to_the_same_image() {
    for name in ["log-only", "snapshot"] {
        tracing::info!(fixture = name, "phase: open the old data dir");
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&fixture(name), dir.path());
        let quorum = open(dir.path()).await;
        let image = quorum.image();
        let expected = old_image(name);
        assert_same_image(&image, &expected);

        // What the old code wrote, read through the new fields' defaults.
        let orders = image.topic("orders0").unwrap();
        assert_eq!(orders.partitions.len(), 3);
        assert_eq!(orders.partitions[1].leader_epoch, 3);
        assert_eq!(orders.partitions[1].isr, vec![1]);
        assert_eq!(orders.partitions[1].partition_epoch, 0);
        assert_eq!(
            orders.partitions[1].leader_recovery_state,
            LeaderRecoveryState::Recovered
        );
        assert_eq!(orders.configs["retention.ms"], "60000");
        assert!(image.topic("gone0").is_none());
        assert_eq!(
            image.deleted_topic_ids.len(),
            expected.deleted_topic_ids.len()
        );
        let broker = &image.brokers[&1];
        assert_eq!((broker.broker_epoch, broker.fenced), (0, false));
        assert_eq!(broker.rack.as_deref(), Some("r1"));
        assert!(broker.listeners.is_empty());

        tracing::info!(fixture = name, "phase: append in the new format, reopen");
        let next = image.next_producer_id;
        let outcomes = quorum
            .propose(vec![MetadataRecord::AllocateProducerIds {
                node_id: 1,
                first_producer_id: 0,
                count: 10,
            }])
            .await
            .unwrap();
        assert_eq!(
            outcomes,
            vec![RecordOutcome::ProducerIdsAllocated {
                node_id: 1,
                first_producer_id: next,
                count: 10,
            }]
        );
        let image = quorum.image();
        quorum.snapshot_now().await.unwrap();
        quorum.shutdown().await.unwrap();
        drop(quorum);
        let quorum = open(dir.path()).await;
        assert_same_image(&quorum.image(), &image);
        quorum.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn a_snapshot_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("snapshot"), dir.path());
    let path = dir.path().join("meta/snapshot.json");
    let mut snapshot: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    snapshot["v"] = serde_json::json!(RECORD_FORMAT_VERSION + 1);
    std::fs::write(&path, serde_json::to_vec(&snapshot).unwrap()).unwrap();
    let config = QuorumConfig {
        node_id: 1,
        voters: vec![(1, "localhost:9093".to_string())],
    };
    let opened = tokio::time::timeout(STEP_TIMEOUT, MetadataQuorum::open(dir.path(), config))
        .await
        .expect("open timed out");
    match opened {
        Err(error) => assert!(error.to_string().contains("record format"), "{error}"),
        Ok(_) => panic!("a snapshot of a newer format opened"),
    }
}

#[tokio::test]
async fn a_log_entry_of_a_newer_format_stops_the_open() {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("log-only"), dir.path());
    let entry = serde_json::json!({
        "log_id": {"leader_id": {"term": 1, "node_id": 1}, "index": 12},
        "payload": {"Normal": {"v": RECORD_FORMAT_VERSION + 1, "records": []}},
    });
    let payload = serde_json::to_vec(&entry).unwrap();
    let mut frame = Vec::new();
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    frame.extend_from_slice(&payload);
    let path = dir.path().join("meta/raft.log");
    let mut log = std::fs::read(&path).unwrap();
    log.extend_from_slice(&frame);
    std::fs::write(&path, log).unwrap();
    let config = QuorumConfig {
        node_id: 1,
        voters: vec![(1, "localhost:9093".to_string())],
    };
    let opened = tokio::time::timeout(STEP_TIMEOUT, MetadataQuorum::open(dir.path(), config))
        .await
        .expect("open timed out");
    assert!(opened.is_err(), "a log entry of a newer format was applied");
}
