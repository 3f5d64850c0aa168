//! The data directory: partition discovery, the three data-dir checkpoint
//! files, `.clean-shutdown`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::error::io_error;
use crate::log_files::LOG_SUFFIX;
use crate::{CheckpointEntry, LogError, PartitionDir};

/// Per-partition recovery points (offset below which data is synced).
pub const RECOVERY_POINT_CHECKPOINT: &str = "recovery-point-offset-checkpoint";
/// Per-partition log start offsets.
pub const LOG_START_OFFSET_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// Per-partition high watermarks.
pub const REPLICATION_OFFSET_CHECKPOINT: &str = "replication-offset-checkpoint";
/// Marker written after a clean shutdown, removed at open.
pub const CLEAN_SHUTDOWN: &str = ".clean-shutdown";
/// Directory of the metadata store, not a partition.
pub const META_DIR: &str = "meta";
/// Held with an exclusive advisory lock while a broker uses the directory
/// (Kafka's `.lock`).
pub const LOCK_FILE: &str = ".lock";
/// Kafka's `meta.properties`: the cluster and node this directory belongs to.
pub const META_PROPERTIES: &str = "meta.properties";
/// Suffix of a partition directory set aside because the metadata does not
/// know it (Kafka's stray logs, KIP-858): kept for an operator, never deleted.
pub const STRAY_SUFFIX: &str = "-stray";

/// The identity recorded in `meta.properties`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetaProperties {
    /// `cluster.id`.
    pub cluster_id: String,
    /// `node.id`.
    pub node_id: i32,
}

/// The data directory.
pub struct DataDir {
    /// Root of the data directory.
    path: PathBuf,
    /// `.lock`, exclusively locked for as long as this value lives: a second
    /// broker on the same directory would write into the same segments.
    _lock: std::fs::File,
    /// Whether `.clean-shutdown` was present at open (it is removed then).
    clean_shutdown: bool,
    /// The checkpoints as read at open, keyed by (topic, partition).
    checkpoints: BTreeMap<(String, i32), CheckpointEntry>,
}

/// Splits `<topic>-<partition>` at the last '-'.
pub fn parse_partition_dir_name(name: &str) -> Option<(String, i32)> {
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty()
        || partition.is_empty()
        || !partition.bytes().all(|byte| byte.is_ascii_digit())
    {
        return None;
    }
    Some((topic.to_string(), partition.parse().ok()?))
}

fn read_offsets(path: &Path) -> Result<Vec<(String, i32, i64)>, LogError> {
    let mut out = Vec::new();
    for fields in checkpoint::read(path, 3)?.unwrap_or_default() {
        out.push((
            fields[0].clone(),
            checkpoint::parse_field(path, &fields[1])?,
            checkpoint::parse_field(path, &fields[2])?,
        ));
    }
    Ok(out)
}

impl DataDir {
    /// Creates the directory if needed, notes whether `.clean-shutdown` was
    /// present and removes it (so a crash from here on is unclean), and reads
    /// `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint` and
    /// `replication-offset-checkpoint` (Kafka's text format: version line, count
    /// line, `topic partition offset` lines).
    ///
    /// Also removes leftover `*-delete`
    /// directories. A partition present in only some checkpoint files gets 0
    /// for the missing values.
    pub fn open(path: &Path) -> Result<DataDir, LogError> {
        std::fs::create_dir_all(path).map_err(|error| io_error(path, error))?;
        // The lock comes first: nothing in the directory is touched before it
        // is ours.
        let lock_path = path.join(LOCK_FILE);
        let lock = std::fs::File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(|error| io_error(&lock_path, error))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(LogError::Locked {
                    path: path.to_path_buf(),
                })
            }
            Err(std::fs::TryLockError::Error(error)) => return Err(io_error(&lock_path, error)),
        }
        let marker = path.join(CLEAN_SHUTDOWN);
        let clean_shutdown = marker.exists();
        if clean_shutdown {
            std::fs::remove_file(&marker).map_err(|error| io_error(&marker, error))?;
            checkpoint::sync_dir(path)?;
        }
        let listing = std::fs::read_dir(path).map_err(|error| io_error(path, error))?;
        for entry in listing {
            let entry = entry.map_err(|error| io_error(path, error))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with("-delete") && entry.path().is_dir() {
                let leftover = entry.path();
                tracing::info!(dir = %leftover.display(), "removing partition directory left from a delete");
                std::fs::remove_dir_all(&leftover).map_err(|error| io_error(&leftover, error))?;
            }
        }
        let mut checkpoints: BTreeMap<(String, i32), CheckpointEntry> = BTreeMap::new();
        let files = [
            RECOVERY_POINT_CHECKPOINT,
            LOG_START_OFFSET_CHECKPOINT,
            REPLICATION_OFFSET_CHECKPOINT,
        ];
        for (which, file) in files.iter().enumerate() {
            for (topic, partition, offset) in read_offsets(&path.join(file))? {
                let entry = checkpoints
                    .entry((topic.clone(), partition))
                    .or_insert_with(|| CheckpointEntry {
                        topic,
                        partition,
                        recovery_point: 0,
                        log_start_offset: 0,
                        high_watermark: 0,
                    });
                match which {
                    0 => entry.recovery_point = offset,
                    1 => entry.log_start_offset = offset,
                    _ => entry.high_watermark = offset,
                }
            }
        }
        Ok(DataDir {
            path: path.to_path_buf(),
            _lock: lock,
            clean_shutdown,
            checkpoints,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn was_clean_shutdown(&self) -> bool {
        self.clean_shutdown
    }

    /// Every `<topic>-<partition>` directory (not `meta/`, not `*-delete`).
    ///
    /// Sorted by (topic, partition).
    pub fn partition_dirs(&self) -> Result<Vec<PartitionDir>, LogError> {
        let mut out = Vec::new();
        let listing = std::fs::read_dir(&self.path).map_err(|error| io_error(&self.path, error))?;
        for entry in listing {
            let entry = entry.map_err(|error| io_error(&self.path, error))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == META_DIR || name.ends_with("-delete") || !entry.path().is_dir() {
                continue;
            }
            if let Some((topic, partition)) = parse_partition_dir_name(&name) {
                out.push(PartitionDir {
                    topic,
                    partition,
                    path: entry.path(),
                });
            }
        }
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }

    /// How many segment (`.log`) files the partition directories hold.
    pub fn segment_file_count(&self) -> Result<u64, LogError> {
        let mut count = 0;
        for partition in self.partition_dirs()? {
            let listing = std::fs::read_dir(&partition.path)
                .map_err(|error| io_error(&partition.path, error))?;
            count += listing
                .flatten()
                .filter(|entry| entry.file_name().to_string_lossy().ends_with(LOG_SUFFIX))
                .count() as u64;
        }
        Ok(count)
    }

    /// The checkpoint read at open, if the partition was in it.
    pub fn checkpoint(&self, topic: &str, partition: i32) -> Option<CheckpointEntry> {
        self.checkpoints
            .get(&(topic.to_string(), partition))
            .cloned()
    }

    /// The topic id in a partition directory's `partition.metadata`, or
    /// `None` when the directory, or that file, is missing or unreadable.
    pub fn stored_topic_id(&self, topic: &str, partition: i32) -> Option<uuid::Uuid> {
        crate::metadata::read(&self.partition_path(topic, partition))
    }

    /// Directory for a partition: `<data-dir>/<topic>-<partition>`.
    pub fn partition_path(&self, topic: &str, partition: i32) -> PathBuf {
        self.path.join(format!("{topic}-{partition}"))
    }

    /// Atomically rewrites the three checkpoint files (write temp, fsync, rename).
    ///
    /// (each file: temp, fsync, rename, fsync dir).
    pub fn write_checkpoints(&self, entries: &[CheckpointEntry]) -> Result<(), LogError> {
        let render = |value: fn(&CheckpointEntry) -> i64| {
            let lines: Vec<String> = entries
                .iter()
                .map(|entry| format!("{} {} {}", entry.topic, entry.partition, value(entry)))
                .collect();
            checkpoint::render(&lines)
        };
        checkpoint::write_atomically(
            &self.path.join(RECOVERY_POINT_CHECKPOINT),
            render(|entry| entry.recovery_point).as_bytes(),
        )?;
        checkpoint::write_atomically(
            &self.path.join(LOG_START_OFFSET_CHECKPOINT),
            render(|entry| entry.log_start_offset).as_bytes(),
        )?;
        checkpoint::write_atomically(
            &self.path.join(REPLICATION_OFFSET_CHECKPOINT),
            render(|entry| entry.high_watermark).as_bytes(),
        )
    }

    /// Renames the partition directory to `<topic>-<partition>.<uuid>-delete`
    /// and removes it; a crash in between leaves a `-delete` directory that the
    /// next `open` removes.
    ///
    /// A missing partition directory is not an error.
    pub fn delete_partition(&self, topic: &str, partition: i32) -> Result<(), LogError> {
        let source = self.partition_path(topic, partition);
        if !source.exists() {
            return Ok(());
        }
        let target = self.path.join(format!(
            "{topic}-{partition}.{}-delete",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::rename(&source, &target).map_err(|error| io_error(&source, error))?;
        checkpoint::sync_dir(&self.path)?;
        std::fs::remove_dir_all(&target).map_err(|error| io_error(&target, error))
    }

    /// Renames a partition directory the metadata does not know to
    /// `<topic>-<partition>.<uuid>-stray` (Kafka's stray log, KIP-858) and
    /// returns the new path. Its data is kept for an operator; nothing here
    /// ever deletes a stray directory.
    pub fn set_aside_stray(&self, topic: &str, partition: i32) -> Result<PathBuf, LogError> {
        let source = self.partition_path(topic, partition);
        let target = self.path.join(format!(
            "{topic}-{partition}.{}{STRAY_SUFFIX}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::rename(&source, &target).map_err(|error| io_error(&source, error))?;
        checkpoint::sync_dir(&self.path)?;
        Ok(target)
    }

    /// `meta.properties`, or `None` when the file does not exist.
    pub fn meta_properties(&self) -> Result<Option<MetaProperties>, LogError> {
        let path = self.path.join(META_PROPERTIES);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(io_error(&path, error)),
        };
        let mut cluster_id = None;
        let mut node_id = None;
        for line in text.lines().map(str::trim) {
            if line.starts_with('#') {
                continue;
            }
            match line.split_once('=') {
                Some(("cluster.id", value)) => cluster_id = Some(value.trim().to_string()),
                Some(("node.id", value)) => node_id = value.trim().parse().ok(),
                _ => {}
            }
        }
        match (cluster_id, node_id) {
            (Some(cluster_id), Some(node_id)) => Ok(Some(MetaProperties {
                cluster_id,
                node_id,
            })),
            _ => Err(LogError::Corrupt {
                path,
                position: 0,
                reason: "meta.properties lacks cluster.id or node.id".to_string(),
            }),
        }
    }

    /// Writes `meta.properties` (Kafka's keys: version, cluster.id, node.id).
    pub fn write_meta_properties(&self, properties: &MetaProperties) -> Result<(), LogError> {
        let text = format!(
            "#\n#Written by sluice\nversion=1\ncluster.id={}\nnode.id={}\n",
            properties.cluster_id, properties.node_id
        );
        checkpoint::write_atomically(&self.path.join(META_PROPERTIES), text.as_bytes())
    }

    /// Writes `.clean-shutdown` (after every log was flushed and closed).
    pub fn mark_clean_shutdown(&self) -> Result<(), LogError> {
        let marker = self.path.join(CLEAN_SHUTDOWN);
        let file = std::fs::File::create(&marker).map_err(|error| io_error(&marker, error))?;
        file.sync_all().map_err(|error| io_error(&marker, error))?;
        checkpoint::sync_dir(&self.path)
    }
}
