//! The data directory is never shared and never wiped: a second broker on a
//! directory in use is refused; a directory whose metadata is missing or
//! belongs to another cluster is refused; a partition the metadata does not
//! know is set aside as stray, not deleted; only topics the metadata log
//! deleted lose their data; a topic whose partitions could not be created
//! (disk full) becomes usable once space returns, without a restart; a
//! metadata log that cannot be written (disk full) stops the broker.

mod common;

#[path = "common/lifecycle.rs"]
mod lifecycle;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{
    admin, admin_options, assert_refused, create_topic, describe_dir, producer,
    serve_expecting_refusal, TestBroker,
};
use lifecycle::{produce_all, read_until, wait_until, Outgoing};
use rdkafka::producer::FutureRecord;
use rdkafka::Offset;

/// Sum of the sizes of the `.log` files directly inside `dir`.
fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|entry| entry.file_name().to_string_lossy().ends_with(".log"))
                .filter_map(|entry| entry.metadata().ok().map(|m| m.len()))
                .sum()
        })
        .unwrap_or(0)
}

/// Directories in `data_dir` named `<topic>-<partition>.<id>-stray`.
fn stray_dirs(data_dir: &Path, topic: &str, partition: i32) -> Vec<PathBuf> {
    let prefix = format!("{topic}-{partition}.");
    let mut found: Vec<PathBuf> = std::fs::read_dir(data_dir)
        .expect("list data dir")
        .flatten()
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            name.starts_with(&prefix) && name.ends_with("-stray")
        })
        .map(|entry| entry.path())
        .collect();
    found.sort();
    found
}

async fn produce_values(bootstrap: &str, topic: &str, count: usize) {
    let producer = producer(bootstrap, &[("linger.ms", "5")]);
    let records: Vec<Outgoing> = (0..count)
        .map(|index| Outgoing::keyed(format!("k{index}"), format!("value-{index}")))
        .collect();
    let offsets = produce_all(&producer, topic, 0, &records).await;
    assert_eq!(offsets.len(), count);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_broker_on_a_data_dir_in_use_is_refused() {
    let mut broker = TestBroker::start();
    create_topic(broker.bootstrap(), "locked", 1).await;
    produce_values(broker.bootstrap(), "locked", 10).await;

    eprintln!("phase: a second broker on the same directory");
    let output = serve_expecting_refusal(broker.data_dir(), &[]);
    assert_refused(
        &output,
        &[
            &broker.data_dir().display().to_string(),
            "in use by another broker",
        ],
    );
    assert!(
        !broker.data_dir().join(".clean-shutdown").exists(),
        "the refused broker wrote into the live broker's directory"
    );

    eprintln!("phase: the first broker still serves, and restarts with its data");
    produce_values(broker.bootstrap(), "locked", 10).await;
    broker.restart();
    let records = read_until(
        broker.bootstrap(),
        "locked",
        0,
        Offset::Beginning,
        20,
        "earliest",
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_or_foreign_metadata_is_refused_and_no_partition_is_deleted() {
    let mut broker = TestBroker::start();
    create_topic(broker.bootstrap(), "kept", 1).await;
    produce_values(broker.bootstrap(), "kept", 500).await;
    broker.terminate();
    let data_dir = broker.data_dir().to_path_buf();
    let partition_dir = data_dir.join("kept-0");
    let bytes_before = log_bytes(&partition_dir);
    assert!(bytes_before > 0);
    let meta = data_dir.join("meta");
    let meta_aside = data_dir.with_extension("meta-aside");

    eprintln!("phase: meta/ removed");
    std::fs::rename(&meta, &meta_aside).expect("move meta aside");
    let output = serve_expecting_refusal(&data_dir, &[]);
    assert_refused(&output, &[&data_dir.display().to_string(), "meta"]);
    assert_eq!(
        log_bytes(&partition_dir),
        bytes_before,
        "{}",
        describe_dir(&data_dir)
    );

    eprintln!("phase: meta/ and meta.properties removed");
    let properties = data_dir.join("meta.properties");
    let properties_text = std::fs::read_to_string(&properties).expect("meta.properties written");
    std::fs::remove_file(&properties).expect("remove meta.properties");
    let output = serve_expecting_refusal(&data_dir, &[]);
    assert_refused(&output, &["partition directories", "no metadata"]);
    assert_eq!(
        log_bytes(&partition_dir),
        bytes_before,
        "{}",
        describe_dir(&data_dir)
    );
    std::fs::write(&properties, properties_text).expect("restore meta.properties");

    eprintln!("phase: another cluster's meta/");
    let other = TempDirBroker::new_cluster_meta();
    copy_dir(&other.join("meta"), &meta);
    let output = serve_expecting_refusal(&data_dir, &[]);
    assert_refused(&output, &["belongs to cluster", "refusing to start"]);
    assert_eq!(
        log_bytes(&partition_dir),
        bytes_before,
        "{}",
        describe_dir(&data_dir)
    );
    std::fs::remove_dir_all(&meta).expect("remove foreign meta");
    let _ = std::fs::remove_dir_all(&other);

    eprintln!("phase: the real meta/ restored: every record is back");
    std::fs::rename(&meta_aside, &meta).expect("restore meta");
    broker.restart();
    let records = read_until(
        broker.bootstrap(),
        "kept",
        0,
        Offset::Beginning,
        500,
        "earliest",
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), 500);
}

/// A throwaway broker's data dir, to borrow another cluster's `meta/`.
struct TempDirBroker;

impl TempDirBroker {
    fn new_cluster_meta() -> PathBuf {
        let mut broker = TestBroker::start();
        broker.terminate();
        let copy = tempfile::Builder::new()
            .prefix("sluice-other-cluster-")
            .tempdir()
            .expect("temp dir")
            .keep();
        copy_dir(&broker.data_dir().join("meta"), &copy.join("meta"));
        copy
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("create copy target");
    for entry in std::fs::read_dir(from).expect("list copy source").flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy file");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_the_metadata_does_not_know_is_kept_as_stray() {
    let mut broker = TestBroker::start();
    create_topic(broker.bootstrap(), "unknown-to-meta", 1).await;
    produce_values(broker.bootstrap(), "unknown-to-meta", 5000).await;
    broker.terminate();
    let data_dir = broker.data_dir().to_path_buf();
    let bytes_before = log_bytes(&data_dir.join("unknown-to-meta-0"));

    eprintln!("phase: the Raft log's tail (the CreateTopic) cut by 10 bytes");
    let raft_log = data_dir.join("meta").join("raft.log");
    let length = std::fs::metadata(&raft_log).expect("raft.log").len();
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&raft_log)
        .expect("open raft.log");
    file.set_len(length - 10).expect("cut raft.log");
    drop(file);

    broker.restart();
    let strays = stray_dirs(&data_dir, "unknown-to-meta", 0);
    assert_eq!(strays.len(), 1, "{}", describe_dir(&data_dir));
    assert_eq!(
        log_bytes(&strays[0]),
        bytes_before,
        "the stray directory keeps every byte; {}",
        describe_dir(&data_dir)
    );
    assert!(!data_dir.join("unknown-to-meta-0").exists());

    eprintln!("phase: a new topic of the same name starts empty beside the stray data");
    create_topic(broker.bootstrap(), "unknown-to-meta", 1).await;
    produce_values(broker.bootstrap(), "unknown-to-meta", 3).await;
    let records = read_until(
        broker.bootstrap(),
        "unknown-to-meta",
        0,
        Offset::Beginning,
        3,
        "earliest",
        Duration::from_secs(30),
    );
    assert_eq!(records.len(), 3);
    assert_eq!(log_bytes(&strays[0]), bytes_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_topic_the_metadata_log_deleted_loses_its_directory() {
    let mut broker = TestBroker::start();
    create_topic(broker.bootstrap(), "deleted-later", 1).await;
    produce_values(broker.bootstrap(), "deleted-later", 100).await;
    broker.terminate();
    let data_dir = broker.data_dir().to_path_buf();
    let kept_copy = data_dir.with_extension("deleted-later-copy");
    copy_dir(&data_dir.join("deleted-later-0"), &kept_copy);

    eprintln!("phase: delete the topic, then put its directory back (a crash before removal)");
    broker.restart();
    let admin = admin(broker.bootstrap());
    let results = tokio::time::timeout(
        Duration::from_secs(30),
        admin.delete_topics(&["deleted-later"], &admin_options()),
    )
    .await
    .expect("DeleteTopics in time")
    .expect("DeleteTopics request");
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    broker.terminate();
    assert!(!data_dir.join("deleted-later-0").exists());
    copy_dir(&kept_copy, &data_dir.join("deleted-later-0"));

    broker.restart();
    assert!(
        !data_dir.join("deleted-later-0").exists(),
        "a directory of a deleted topic is removed; {}",
        describe_dir(&data_dir)
    );
    assert!(
        stray_dirs(&data_dir, "deleted-later", 0).is_empty(),
        "a deleted topic's directory is not stray; {}",
        describe_dir(&data_dir)
    );
    let _ = std::fs::remove_dir_all(&kept_copy);
}

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs {
    /// The mount point (inside a temp dir).
    path: PathBuf,
    /// Owns the mount point's parent.
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(options: &str) -> Tmpfs {
        let parent = tempfile::Builder::new()
            .prefix("sluice-tmpfs-")
            .tempdir()
            .expect("temp dir");
        let path = parent.path().join("mnt");
        std::fs::create_dir(&path).expect("mount point");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(
            status.success(),
            "mounting a tmpfs failed ({status}): this test needs root"
        );
        Tmpfs {
            path,
            _parent: parent,
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_created_on_a_full_disk_becomes_usable_once_space_returns() {
    // Inodes, not bytes, run out: the Raft log appends to a file it already
    // has, so the creation is committed, while every new partition directory
    // and file fails with ENOSPC. That is the half-done creation.
    let tmpfs = Tmpfs::mount("size=256m,nr_inodes=4000");
    let data_dir = tmpfs.path.join("data");
    std::fs::create_dir(&data_dir).expect("data dir");
    let broker = TestBroker::start_in(&data_dir, &[]);
    // Wait until the internal topics exist, so the filler takes the rest.
    let producer = producer(broker.bootstrap(), &[("message.timeout.ms", "60000")]);
    create_topic(broker.bootstrap(), "before-full", 1).await;

    eprintln!("phase: fill every inode");
    let filler = tmpfs.path.join("filler");
    std::fs::create_dir(&filler).expect("filler dir");
    let mut created = 0usize;
    loop {
        match std::fs::File::create(filler.join(created.to_string())) {
            Ok(_) => created += 1,
            Err(error) => {
                assert_eq!(error.raw_os_error(), Some(28), "expected ENOSPC: {error}");
                break;
            }
        }
        assert!(created < 10_000, "the tmpfs never ran out of inodes");
    }

    eprintln!("phase: create a topic while full");
    let results = common::create_topics_raw(broker.bootstrap(), &[("half", 3, 1)])
        .await
        .expect("CreateTopics request");
    eprintln!("CreateTopics while full: {results:?}");

    eprintln!("phase: free the inodes; the partitions open without a restart");
    std::fs::remove_dir_all(&filler).expect("remove filler");
    wait_until(
        "every partition of the topic on disk",
        Duration::from_secs(60),
        || {
            (0..3)
                .all(|p| data_dir.join(format!("half-{p}")).is_dir())
                .then_some(())
        },
        || describe_dir(&data_dir),
    )
    .await;
    for partition in 0..3 {
        let record = FutureRecord::to("half")
            .partition(partition)
            .key("k")
            .payload("after space returned");
        let delivery = tokio::time::timeout(
            Duration::from_secs(70),
            producer.send(record, Duration::from_secs(60)),
        )
        .await
        .expect("delivery in time");
        assert!(
            delivery.is_ok(),
            "produce to half/{partition}: {delivery:?}"
        );
        let records = read_until(
            broker.bootstrap(),
            "half",
            partition,
            Offset::Beginning,
            1,
            "earliest",
            Duration::from_secs(30),
        );
        assert_eq!(records.len(), 1);
    }
    drop(broker);
}

/// A metadata log that cannot be written (a full disk) stops the broker:
/// openraft's core quits on the storage error, and a node that went on
/// would serve a stale image (the fault suite's finding 2, docs/FAULTS.md).
/// It exits with the storage-failure status (74) and says why, as Kafka
/// stops a node whose metadata log write fails; restarted once space
/// returns, it has every topic it acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_metadata_log_that_cannot_be_written_stops_the_broker() {
    let tmpfs = Tmpfs::mount("size=64m");
    let data_dir = tmpfs.path.join("data");
    std::fs::create_dir(&data_dir).expect("data dir");
    let mut broker = TestBroker::start_in(&data_dir, &[]);
    create_topic(broker.bootstrap(), "before-full", 1).await;

    eprintln!("phase: fill every byte");
    let filler = tmpfs.path.join("filler");
    {
        use std::io::Write as _;
        let mut file = std::fs::File::create(&filler).expect("filler");
        let block = vec![0u8; 1 << 20];
        loop {
            if let Err(error) = file.write_all(&block) {
                assert_eq!(error.raw_os_error(), Some(28), "expected ENOSPC: {error}");
                break;
            }
        }
    }

    eprintln!("phase: metadata changes until the metadata log append fails");
    let mut status = None;
    for attempt in 0..20 {
        let _ =
            common::create_topics_raw(broker.bootstrap(), &[(&format!("full-{attempt}"), 1, 1)])
                .await;
        status = broker.wait_exit(Duration::from_secs(2));
        if status.is_some() {
            break;
        }
    }
    let status = status.unwrap_or_else(|| {
        panic!(
            "the broker kept running with an unwritable metadata log; stderr:\n{}",
            broker.log_tail()
        )
    });
    assert_eq!(
        status.code(),
        Some(74),
        "exit status; stderr:\n{}",
        broker.log_tail()
    );
    let log = broker.log_text();
    assert!(
        log.lines()
            .any(|line| line.starts_with("error:") && line.contains("metadata log")),
        "an error line names the metadata log; stderr:\n{}",
        broker.log_tail()
    );

    eprintln!("phase: space returns; the broker starts again with its topics");
    std::fs::remove_file(&filler).expect("remove filler");
    broker.restart();
    let admin = common::admin(broker.bootstrap());
    let metadata = admin
        .inner()
        .fetch_metadata(Some("before-full"), Duration::from_secs(10))
        .expect("metadata");
    assert_eq!(metadata.topics()[0].partitions().len(), 1);
    drop(broker);
}
