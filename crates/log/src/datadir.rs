//! The data directory: partition discovery, the three data-dir checkpoint
//! files, `.clean-shutdown`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::index::io_error;
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

/// The data directory.
pub struct DataDir {
    /// Root of the data directory.
    path: PathBuf,
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

    /// The checkpoint read at open, if the partition was in it.
    pub fn checkpoint(&self, topic: &str, partition: i32) -> Option<CheckpointEntry> {
        self.checkpoints
            .get(&(topic.to_string(), partition))
            .cloned()
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

    /// Writes `.clean-shutdown` (after every log was flushed and closed).
    pub fn mark_clean_shutdown(&self) -> Result<(), LogError> {
        let marker = self.path.join(CLEAN_SHUTDOWN);
        let file = std::fs::File::create(&marker).map_err(|error| io_error(&marker, error))?;
        file.sync_all().map_err(|error| io_error(&marker, error))?;
        checkpoint::sync_dir(&self.path)
    }
}
