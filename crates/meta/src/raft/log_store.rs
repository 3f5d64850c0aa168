//! Durable Raft log storage in `<data-dir>/meta/`.
//!
//! Simple rather than clever:
//! * `raft.log`: an append-only file of frames `[length: u32 LE][crc32c: u32 LE]
//!   [serde_json of one Entry]`. Every append is fsynced before openraft is told
//!   it is flushed. All live entries are also kept in memory (the metadata log is
//!   small and is purged after snapshots), with the file position of each.
//! * truncate cuts the file at the first removed entry's position;
//! * purge records the purged log id in `purged.json`, then rewrites `raft.log`
//!   without the purged entries (temp + fsync + rename);
//! * `vote.json` is written temp + fsync + rename.
//!
//! On open, a torn or corrupt tail (short frame, bad CRC, unparsable entry,
//! an index not above the previous one) is cut off, never a panic.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    Entry, LogId, OptionalSend, RaftLogId, RaftLogReader, StorageError, StorageIOError, Vote,
};

use super::TypeConfig;
use crate::files::{read_optional, sync_dir, write_atomically};

/// The log file's name.
const LOG_FILE: &str = "raft.log";
/// The vote file's name.
const VOTE_FILE: &str = "vote.json";
/// The file holding the last purged log id.
const PURGED_FILE: &str = "purged.json";
/// Bytes of a frame header: length and CRC.
const FRAME_HEADER_BYTES: usize = 8;
/// Bound on one serialized entry; a longer length prefix is corruption.
const ENTRY_BYTES_MAX: usize = 64 * 1024 * 1024;

type NodeId = u64;

/// The Raft log store. Cheap to clone: clones share one state, which is also how
/// the log reader handed to openraft's replication tasks works.
#[derive(Clone)]
pub(crate) struct LogStore {
    /// Shared state; I/O happens under this lock, on a blocking thread.
    inner: Arc<Mutex<LogStoreInner>>,
}

/// The state behind a [`LogStore`].
struct LogStoreInner {
    /// `<data-dir>/meta/`.
    dir: PathBuf,
    /// `raft.log`, opened for appending.
    file: File,
    /// Current length of `raft.log` in bytes (where the next frame goes).
    file_len: u64,
    /// Live entries by index, strictly increasing (contiguous in practice).
    entries: BTreeMap<u64, Entry<TypeConfig>>,
    /// File position of each live entry's frame.
    positions: BTreeMap<u64, u64>,
    /// Last purged log id (entries up to it are gone).
    last_purged: Option<LogId<NodeId>>,
    /// The persisted vote.
    vote: Option<Vote<NodeId>>,
}

fn io_error(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.into())
}

impl LogStore {
    /// Opens (creating if needed) the log in `dir`, cutting any torn tail.
    pub(crate) fn open(dir: &Path) -> io::Result<LogStore> {
        let vote = match read_optional(dir, VOTE_FILE)? {
            Some(bytes) => Some(
                serde_json::from_slice::<Vote<NodeId>>(&bytes)
                    .map_err(|e| io_error(format!("{VOTE_FILE}: {e}")))?,
            ),
            None => None,
        };
        let last_purged = match read_optional(dir, PURGED_FILE)? {
            Some(bytes) => Some(
                serde_json::from_slice::<LogId<NodeId>>(&bytes)
                    .map_err(|e| io_error(format!("{PURGED_FILE}: {e}")))?,
            ),
            None => None,
        };

        let path = dir.join(LOG_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)?;
        sync_dir(dir)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;

        let mut entries = BTreeMap::new();
        let mut positions = BTreeMap::new();
        let mut position = 0usize;
        // openraft appends contiguously; the file only has to be strictly
        // increasing (openraft's conformance suite appends with gaps).
        let mut previous_index: Option<u64> = None;
        let valid_len = loop {
            let Some((entry, frame_len)) = decode_frame(&bytes[position..]) else {
                break position;
            };
            let index = entry.get_log_id().index;
            if last_purged.is_some_and(|purged| index <= purged.index) {
                // Left over from a purge interrupted before the rewrite.
                position += frame_len;
                continue;
            }
            if previous_index.is_some_and(|previous| index <= previous) {
                tracing::warn!(index, ?previous_index, "out-of-order Raft log entry");
                break position;
            }
            previous_index = Some(index);
            positions.insert(index, position as u64);
            entries.insert(index, entry);
            position += frame_len;
        };
        if valid_len < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                valid_bytes = valid_len,
                file_bytes = bytes.len(),
                "cutting a torn or corrupt tail off the Raft log"
            );
            file.set_len(valid_len as u64)?;
            file.sync_all()?;
        }
        tracing::info!(
            entries = entries.len(),
            ?last_purged,
            ?vote,
            "opened the metadata Raft log"
        );
        Ok(LogStore {
            inner: Arc::new(Mutex::new(LogStoreInner {
                dir: dir.to_path_buf(),
                file,
                file_len: valid_len as u64,
                entries,
                positions,
                last_purged,
                vote,
            })),
        })
    }

    /// True when nothing was ever persisted (no vote, no entry, nothing purged):
    /// the node has never been initialized.
    pub(crate) fn is_pristine(&self) -> io::Result<bool> {
        let inner = self.lock_io()?;
        Ok(inner.vote.is_none() && inner.entries.is_empty() && inner.last_purged.is_none())
    }

    /// Fsyncs the log file (every append already did; this is for shutdown).
    pub(crate) fn flush(&self) -> io::Result<()> {
        self.lock_io()?.file.sync_all()
    }

    fn lock_io(&self) -> io::Result<MutexGuard<'_, LogStoreInner>> {
        self.inner
            .lock()
            .map_err(|_| io::Error::other("Raft log store lock poisoned"))
    }

    /// Runs `f` on the state on a blocking thread (file I/O and fsync must not
    /// stall the async runtime).
    async fn blocking<T, F>(&self, f: F) -> io::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut LogStoreInner) -> io::Result<T> + Send + 'static,
    {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = inner
                .lock()
                .map_err(|_| io::Error::other("Raft log store lock poisoned"))?;
            f(&mut guard)
        })
        .await
        .map_err(|e| io::Error::other(format!("Raft log I/O task failed: {e}")))?
    }
}

/// Decodes one frame from the front of `bytes`; `None` if it is incomplete or
/// corrupt. Returns the entry and the frame's length.
fn decode_frame(bytes: &[u8]) -> Option<(Entry<TypeConfig>, usize)> {
    let header = bytes.get(..FRAME_HEADER_BYTES)?;
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if length > ENTRY_BYTES_MAX {
        return None;
    }
    let payload = bytes.get(FRAME_HEADER_BYTES..FRAME_HEADER_BYTES + length)?;
    if crc32c::crc32c(payload) != crc {
        return None;
    }
    let entry = serde_json::from_slice(payload).ok()?;
    Some((entry, FRAME_HEADER_BYTES + length))
}

fn encode_frame(entry: &Entry<TypeConfig>, out: &mut Vec<u8>) -> io::Result<()> {
    let payload = serde_json::to_vec(entry).map_err(io::Error::other)?;
    if payload.len() > ENTRY_BYTES_MAX {
        return Err(io::Error::other(format!(
            "Raft log entry of {} bytes exceeds {ENTRY_BYTES_MAX}",
            payload.len()
        )));
    }
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32c::crc32c(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(())
}

impl LogStoreInner {
    fn append(&mut self, entries: Vec<Entry<TypeConfig>>) -> io::Result<()> {
        let mut buffer = Vec::new();
        let mut new_positions = Vec::with_capacity(entries.len());
        let mut previous = self.entries.last_key_value().map(|(&index, _)| index);
        for entry in &entries {
            let index = entry.get_log_id().index;
            if let Some(previous) = previous.filter(|&previous| index <= previous) {
                return Err(io::Error::other(format!(
                    "append of index {index} after {previous}: not increasing"
                )));
            }
            previous = Some(index);
            new_positions.push((index, self.file_len + buffer.len() as u64));
            encode_frame(entry, &mut buffer)?;
        }
        let written = self
            .file
            .write_all(&buffer)
            .and_then(|()| self.file.sync_data());
        if let Err(error) = written {
            // openraft stops on a storage error; still, do not leave a partial
            // frame for a later append to land behind (best effort).
            let _ = self.file.set_len(self.file_len);
            return Err(error);
        }
        self.file_len += buffer.len() as u64;
        for ((index, position), entry) in new_positions.into_iter().zip(entries) {
            self.positions.insert(index, position);
            self.entries.insert(index, entry);
        }
        Ok(())
    }

    fn truncate(&mut self, index: u64) -> io::Result<()> {
        let Some(&position) = self.positions.get(&index) else {
            // Nothing at or after `index` is stored, unless it is below the
            // first entry (then everything goes).
            match self.positions.first_key_value() {
                Some((&first, &position)) if index < first => {
                    return self.cut(first, position);
                }
                _ => return Ok(()),
            }
        };
        self.cut(index, position)
    }

    fn cut(&mut self, index: u64, position: u64) -> io::Result<()> {
        self.file.set_len(position)?;
        self.file.sync_all()?;
        self.file.seek(SeekFrom::End(0))?;
        self.file_len = position;
        self.entries.split_off(&index);
        self.positions.split_off(&index);
        Ok(())
    }

    fn purge(&mut self, log_id: LogId<NodeId>) -> io::Result<()> {
        let bytes = serde_json::to_vec(&log_id).map_err(io::Error::other)?;
        write_atomically(&self.dir, PURGED_FILE, &bytes)?;
        self.last_purged = Some(log_id);
        self.entries = self.entries.split_off(&(log_id.index + 1));

        // Rewrite the log without the purged entries.
        let mut buffer = Vec::new();
        let mut positions = BTreeMap::new();
        for (&index, entry) in &self.entries {
            positions.insert(index, buffer.len() as u64);
            encode_frame(entry, &mut buffer)?;
        }
        write_atomically(&self.dir, LOG_FILE, &buffer)?;
        self.file = OpenOptions::new()
            .read(true)
            .append(true)
            .open(self.dir.join(LOG_FILE))?;
        self.file_len = buffer.len() as u64;
        self.positions = positions;
        Ok(())
    }

    fn save_vote(&mut self, vote: Vote<NodeId>) -> io::Result<()> {
        let bytes = serde_json::to_vec(&vote).map_err(io::Error::other)?;
        write_atomically(&self.dir, VOTE_FILE, &bytes)?;
        self.vote = Some(vote);
        Ok(())
    }
}

fn read_error(error: io::Error) -> StorageError<NodeId> {
    StorageIOError::read_logs(&error).into()
}

fn write_error(error: io::Error) -> StorageError<NodeId> {
    StorageIOError::write_logs(&error).into()
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<TypeConfig>>, StorageError<NodeId>> {
        let inner = self.lock_io().map_err(read_error)?;
        Ok(inner
            .entries
            .range(range)
            .map(|(_, entry)| entry.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError<NodeId>> {
        let inner = self.lock_io().map_err(read_error)?;
        let last = inner
            .entries
            .last_key_value()
            .map(|(_, entry)| *entry.get_log_id())
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let vote = *vote;
        self.blocking(move |inner| inner.save_vote(vote))
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        let inner = self
            .lock_io()
            .map_err(|e| StorageError::from(StorageIOError::read_vote(&e)))?;
        Ok(inner.vote)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<_> = entries.into_iter().collect();
        let result = self.blocking(move |inner| inner.append(entries)).await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(error) => {
                tracing::error!(%error, "metadata Raft log append failed");
                let storage_error = write_error(io::Error::new(error.kind(), error.to_string()));
                callback.log_io_completed(Err(error));
                Err(storage_error)
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        tracing::debug!(%log_id, "truncating the metadata Raft log");
        self.blocking(move |inner| inner.truncate(log_id.index))
            .await
            .map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        tracing::debug!(%log_id, "purging the metadata Raft log");
        self.blocking(move |inner| inner.purge(log_id))
            .await
            .map_err(write_error)
    }
}

#[cfg(test)]
mod tests {
    use openraft::{CommittedLeaderId, EntryPayload};

    use super::*;

    fn blank(term: u64, index: u64) -> Entry<TypeConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Blank,
        }
    }

    fn stored(store: &LogStore) -> (Vec<(u64, u64)>, Option<u64>) {
        let inner = store.lock_io().unwrap();
        let entries = inner
            .entries
            .values()
            .map(|entry| (entry.log_id.leader_id.term, entry.log_id.index))
            .collect();
        (entries, inner.last_purged.map(|id| id.index))
    }

    #[test]
    fn truncate_purge_and_vote_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        assert!(store.is_pristine().unwrap());
        {
            let mut inner = store.lock_io().unwrap();
            inner
                .append((1..=5).map(|i| blank(1, i)).collect())
                .unwrap();
            inner.truncate(3).unwrap();
            inner.append(vec![blank(2, 3)]).unwrap();
            inner.save_vote(Vote::new(2, 1)).unwrap();
        }
        drop(store);

        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(stored(&store), (vec![(1, 1), (1, 2), (2, 3)], None));
        assert_eq!(store.lock_io().unwrap().vote, Some(Vote::new(2, 1)));
        {
            let mut inner = store.lock_io().unwrap();
            inner
                .purge(LogId::new(CommittedLeaderId::new(1, 1), 1))
                .unwrap();
            inner.append(vec![blank(2, 4)]).unwrap();
        }
        drop(store);

        let store = LogStore::open(dir.path()).unwrap();
        assert_eq!(stored(&store), (vec![(1, 2), (2, 3), (2, 4)], Some(1)));
        assert!(!store.is_pristine().unwrap());
    }

    #[test]
    fn every_torn_tail_is_cut_to_the_last_whole_frame() {
        let dir = tempfile::tempdir().unwrap();
        let store = LogStore::open(dir.path()).unwrap();
        store
            .lock_io()
            .unwrap()
            .append((1..=3).map(|i| blank(1, i)).collect())
            .unwrap();
        drop(store);
        let path = dir.path().join(LOG_FILE);
        let full = std::fs::read(&path).unwrap();
        let first_two_len = {
            let (_, first) = decode_frame(&full).unwrap();
            let (_, second) = decode_frame(&full[first..]).unwrap();
            first + second
        };
        // Every possible cut inside the third frame leaves exactly two entries.
        for cut in first_two_len..full.len() {
            std::fs::write(&path, &full[..cut]).unwrap();
            let store = LogStore::open(dir.path()).unwrap();
            assert_eq!(stored(&store).0, vec![(1, 1), (1, 2)], "cut at {cut}");
            drop(store);
            assert_eq!(
                std::fs::metadata(&path).unwrap().len(),
                first_two_len as u64
            );
        }
    }
}
