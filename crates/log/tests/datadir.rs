//! DataDir: checkpoints, partition discovery, clean-shutdown marker, deletes.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

use sluice_log::{parse_partition_dir_name, CheckpointEntry, DataDir, PartitionDir};

#[test]
fn partition_dir_names() {
    // (directory name, expected)
    let cases = [
        ("orders-0", Some(("orders", 0))),
        ("my-topic-12", Some(("my-topic", 12))),
        ("a-b-c-3", Some(("a-b-c", 3))),
        ("__consumer_offsets-49", Some(("__consumer_offsets", 49))),
        ("topic.v2-7", Some(("topic.v2", 7))),
        ("meta", None),
        ("orders", None),
        ("orders-", None),
        ("-1", None),
        ("orders--1", Some(("orders-", 1))),
        ("orders-x", None),
        ("orders-0.abc-delete", None),
    ];
    for (name, expected) in cases {
        assert_eq!(
            parse_partition_dir_name(name),
            expected.map(|(topic, partition)| (topic.to_string(), partition)),
            "{name}"
        );
    }
}

#[test]
fn checkpoints_round_trip_and_clean_shutdown() {
    let root = tempfile::tempdir().unwrap();
    let path = root.path().join("data");
    let data = DataDir::open(&path).unwrap();
    assert!(!data.was_clean_shutdown());
    assert_eq!(data.path(), path);
    assert_eq!(data.checkpoint("a", 0), None);
    let entries = vec![
        CheckpointEntry {
            topic: "my-topic".into(),
            partition: 3,
            recovery_point: 10,
            log_start_offset: 2,
            high_watermark: 9,
        },
        CheckpointEntry {
            topic: "b".into(),
            partition: 0,
            recovery_point: 0,
            log_start_offset: 0,
            high_watermark: 0,
        },
    ];
    data.write_checkpoints(&entries).unwrap();
    let text = std::fs::read_to_string(path.join("replication-offset-checkpoint")).unwrap();
    assert_eq!(text, "0\n2\nmy-topic 3 9\nb 0 0\n");
    data.mark_clean_shutdown().unwrap();
    drop(data);

    let data = DataDir::open(&path).unwrap();
    assert!(data.was_clean_shutdown());
    assert!(!path.join(".clean-shutdown").exists());
    for entry in &entries {
        assert_eq!(
            data.checkpoint(&entry.topic, entry.partition).as_ref(),
            Some(entry)
        );
    }
    drop(data);
    assert!(!DataDir::open(&path).unwrap().was_clean_shutdown());

    std::fs::write(
        path.join("recovery-point-offset-checkpoint"),
        "0\n2\nx 1 5\n",
    )
    .unwrap();
    assert!(DataDir::open(&path).is_err(), "count mismatch is an error");
}

#[test]
fn partition_dirs_and_delete() {
    let root = tempfile::tempdir().unwrap();
    let data = DataDir::open(root.path()).unwrap();
    for name in [
        "my-topic-0",
        "my-topic-1",
        "other-5",
        "meta",
        "stale-0.0123-delete",
        "junk",
    ] {
        std::fs::create_dir(root.path().join(name)).unwrap();
    }
    std::fs::write(root.path().join("file-3"), b"").unwrap();
    let expected: Vec<PartitionDir> = [("my-topic", 0), ("my-topic", 1), ("other", 5)]
        .iter()
        .map(|(topic, partition)| PartitionDir {
            topic: topic.to_string(),
            partition: *partition,
            path: root.path().join(format!("{topic}-{partition}")),
        })
        .collect();
    assert_eq!(data.partition_dirs().unwrap(), expected);
    assert_eq!(
        data.partition_path("my-topic", 1),
        root.path().join("my-topic-1")
    );
    data.delete_partition("my-topic", 1).unwrap();
    assert!(!root.path().join("my-topic-1").exists());
    assert_eq!(data.partition_dirs().unwrap().len(), 2);
    drop(data);
    // A leftover -delete directory is removed at open.
    let _ = DataDir::open(root.path()).unwrap();
    assert!(!root.path().join("stale-0.0123-delete").exists());
}
