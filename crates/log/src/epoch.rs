//! Leader epoch cache: `(epoch, start offset)` pairs, epochs strictly
//! increasing, persisted in `leader-epoch-checkpoint` (Kafka's format).

use std::path::{Path, PathBuf};

use crate::checkpoint;
use crate::LogError;

/// File name inside the partition directory.
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// One leader epoch and the first offset written in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochEntry {
    /// The leader epoch.
    pub epoch: i32,
    /// First offset appended under this epoch.
    pub start_offset: i64,
}

/// In-memory cache plus its checkpoint file.
#[derive(Debug)]
pub struct LeaderEpochCache {
    /// `<partition dir>/leader-epoch-checkpoint`.
    path: PathBuf,
    /// Entries, epoch and start offset both strictly increasing.
    entries: Vec<EpochEntry>,
}

impl LeaderEpochCache {
    /// Loads the checkpoint; a missing or unreadable file yields an empty cache
    /// (recovery rebuilds it from the batches it scans).
    pub fn load(dir: &Path) -> LeaderEpochCache {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let entries = match Self::read_entries(&path) {
            Ok(entries) => entries,
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "ignoring unreadable leader epoch checkpoint");
                Vec::new()
            }
        };
        LeaderEpochCache { path, entries }
    }

    fn read_entries(path: &Path) -> Result<Vec<EpochEntry>, LogError> {
        let mut entries: Vec<EpochEntry> = Vec::new();
        for fields in checkpoint::read(path, 2)?.unwrap_or_default() {
            let entry = EpochEntry {
                epoch: checkpoint::parse_field(path, &fields[0])?,
                start_offset: checkpoint::parse_field(path, &fields[1])?,
            };
            if let Some(last) = entries.last() {
                if entry.epoch <= last.epoch || entry.start_offset < last.start_offset {
                    return Err(LogError::Corrupt {
                        path: path.to_path_buf(),
                        position: 0,
                        reason: "epochs not increasing".to_string(),
                    });
                }
            }
            entries.push(entry);
        }
        Ok(entries)
    }

    pub fn entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    pub fn latest_epoch(&self) -> Option<i32> {
        self.entries.last().map(|entry| entry.epoch)
    }

    /// Records `epoch` starting at `start_offset` when it is newer than the
    /// latest entry (negative epochs are ignored). Returns whether it changed.
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> bool {
        if epoch < 0 || self.latest_epoch().is_some_and(|latest| epoch <= latest) {
            return false;
        }
        // A start offset going backwards would break the ordering: drop the
        // entries it overtakes (as Kafka does when a newer leader truncated).
        self.entries
            .retain(|entry| entry.start_offset < start_offset);
        self.entries.push(EpochEntry {
            epoch,
            start_offset,
        });
        true
    }

    /// Drops entries starting at or after `offset`. Returns whether it changed.
    pub fn truncate_from(&mut self, offset: i64) -> bool {
        let before = self.entries.len();
        self.entries.retain(|entry| entry.start_offset < offset);
        before != self.entries.len()
    }

    /// Writes the checkpoint atomically.
    pub fn persist(&self) -> Result<(), LogError> {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|entry| format!("{} {}", entry.epoch, entry.start_offset))
            .collect();
        checkpoint::write_atomically(&self.path, checkpoint::render(&lines).as_bytes())
    }

    /// See `Log::end_offset_for_epoch`: Kafka's
    /// `LeaderEpochFileCache.endOffsetFor`, case by case.
    pub fn end_offset_for_epoch(&self, epoch: i32, log_end_offset: i64) -> (i32, i64) {
        const UNDEFINED: (i32, i64) = (-1, -1);
        if epoch < 0 {
            return UNDEFINED;
        }
        if self.latest_epoch() == Some(epoch) {
            return (epoch, log_end_offset);
        }
        let upper = self.entries.partition_point(|entry| entry.epoch <= epoch);
        let Some(next) = self.entries.get(upper) else {
            // Newer than every epoch here (or no epoch at all).
            return UNDEFINED;
        };
        match upper.checked_sub(1) {
            // Older than every epoch here: it ends where the first known one
            // begins (its records are gone from this log, or were never
            // here, as for a new leader's empty log), so a replica that still
            // has it keeps what precedes that offset.
            None => (epoch, next.start_offset),
            Some(found) => (self.entries[found].epoch, next.start_offset),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_offset_for_epoch_table() {
        let dir = tempfile::tempdir().unwrap();
        let mut cache = LeaderEpochCache::load(dir.path());
        assert_eq!(cache.end_offset_for_epoch(0, 10), (-1, -1));
        assert!(cache.assign(1, 2));
        assert!(cache.assign(3, 5));
        assert!(!cache.assign(2, 7));
        assert!(cache.assign(6, 9));
        // (requested epoch, expected), as Kafka's endOffsetFor answers
        let cases = [
            (-1, (-1, -1)),
            // Older than the first epoch: it ends where that one begins.
            (0, (0, 2)),
            (1, (1, 5)),
            (2, (1, 5)),
            (3, (3, 9)),
            (5, (3, 9)),
            (6, (6, 20)),
            // Newer than the latest: undefined.
            (99, (-1, -1)),
        ];
        for (epoch, expected) in cases {
            assert_eq!(
                cache.end_offset_for_epoch(epoch, 20),
                expected,
                "epoch {epoch}"
            );
        }
        cache.persist().unwrap();
        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT)).unwrap();
        assert_eq!(text, "0\n3\n1 2\n3 5\n6 9\n");
        let mut reloaded = LeaderEpochCache::load(dir.path());
        assert_eq!(reloaded.entries(), cache.entries());
        assert!(reloaded.truncate_from(5));
        assert_eq!(reloaded.latest_epoch(), Some(1));
    }
}
