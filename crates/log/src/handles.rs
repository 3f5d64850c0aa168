//! A bounded cache of open file descriptors for segment files.
//!
//! Every segment has three files (`.log`, `.index`, `.timeindex`); keeping
//! them all open makes the number of descriptors grow with the number of
//! segments until the process limit stops the broker. Kafka keeps one
//! descriptor per segment and maps indexes lazily (`LazyIndex`). Here every
//! segment file is a `LazyFile`: opened when first used, registered in one
//! process-wide cache, and closed again when the cache is over its capacity
//! and the file was not used since the cache last looked at it (the CLOCK
//! second-chance policy). A reader or writer that holds the `Arc<File>` it
//! got keeps its descriptor until it is done, so eviction never breaks an
//! operation in progress; the next use reopens the file by its current path.
//!
//! Written by hand: the file-descriptor caches of well-kept crates (for
//! example `lru`-based ones) do not offer "reopen by the current path after a
//! rename" and "never create on reopen", which the log needs so that a
//! retired segment is never re-created empty.
//!
//! fsync is per inode on Linux, so syncing through a reopened descriptor
//! makes every earlier write through another descriptor durable too.

use std::collections::VecDeque;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

use crate::error::io_error;
use crate::LogError;

/// Capacity when the broker does not set one: far below common descriptor
/// limits, far above what a small broker uses.
const OPEN_FILES_DEFAULT_MAX: usize = 4096;

/// The process-wide cache.
static CACHE: FileCache = FileCache {
    capacity: AtomicUsize::new(OPEN_FILES_DEFAULT_MAX),
    open: Mutex::new(VecDeque::new()),
};

/// Sets how many segment files may be open at once (at least 16). The
/// broker derives it from the process's descriptor limit at start.
pub fn set_open_files_max(capacity: usize) {
    CACHE.capacity.store(capacity.max(16), Ordering::Release);
    CACHE.evict_over_capacity();
}

/// The current capacity of the segment-file cache.
pub fn open_files_max() -> usize {
    CACHE.capacity.load(Ordering::Acquire)
}

/// How many segment files are open now.
pub fn open_files() -> usize {
    CACHE.open.lock().len()
}

/// Open files in the order the clock hand visits them.
struct FileCache {
    /// Most files open at once.
    capacity: AtomicUsize,
    /// The open files; a dead weak reference is a file whose segment is gone.
    open: Mutex<VecDeque<Weak<Slot>>>,
}

impl FileCache {
    /// Registers a newly opened file, then closes files over the capacity.
    fn register(&self, slot: &Arc<Slot>) {
        self.open.lock().push_back(Arc::downgrade(slot));
        self.evict_over_capacity();
    }

    fn evict_over_capacity(&self) {
        let capacity = self.capacity.load(Ordering::Acquire);
        let mut open = self.open.lock();
        // Each entry is visited at most twice (a second chance, then out),
        // so the loop ends.
        let mut visits = open.len() * 2;
        while open.len() > capacity && visits > 0 {
            visits -= 1;
            let Some(weak) = open.pop_front() else { break };
            let Some(slot) = weak.upgrade() else { continue };
            if slot.referenced.swap(false, Ordering::AcqRel) {
                open.push_back(weak);
                continue;
            }
            // Lock order: cache, then slot. `LazyFile::get` registers only
            // after releasing its slot lock.
            slot.file.lock().take();
        }
    }
}

/// One file's state.
#[derive(Debug)]
struct Slot {
    /// Where the file is now (updated when it is renamed).
    path: Mutex<PathBuf>,
    /// The open handle, `None` when closed.
    file: Mutex<Option<Arc<File>>>,
    /// Set on every use; cleared by the clock hand (second chance).
    referenced: AtomicBool,
}

/// A segment file, opened on use, closed by the cache when idle.
#[derive(Clone, Debug)]
pub struct LazyFile {
    /// Shared with the cache (weakly) and with clones of this segment file.
    slot: Arc<Slot>,
}

impl LazyFile {
    /// Opens `path` read-write, creating it when absent (the only time a file
    /// is created: a reopen never creates).
    pub fn create_or_open(path: PathBuf) -> Result<LazyFile, LogError> {
        let file = open(&path, true)?;
        let lazy = LazyFile {
            slot: Arc::new(Slot {
                path: Mutex::new(path),
                file: Mutex::new(Some(Arc::new(file))),
                referenced: AtomicBool::new(true),
            }),
        };
        CACHE.register(&lazy.slot);
        Ok(lazy)
    }

    /// The open handle, reopening the file (by its current path) if the
    /// cache closed it.
    pub fn get(&self) -> Result<Arc<File>, LogError> {
        self.slot.referenced.store(true, Ordering::Release);
        let reopened = {
            let mut guard = self.slot.file.lock();
            if let Some(file) = guard.as_ref() {
                return Ok(file.clone());
            }
            let path = self.slot.path.lock().clone();
            let file = Arc::new(open(&path, false)?);
            *guard = Some(file.clone());
            file
        };
        CACHE.register(&self.slot);
        Ok(reopened)
    }

    /// Closes the descriptor now (it is reopened on the next use).
    pub fn release(&self) {
        self.slot.file.lock().take();
    }

    /// The file's current path.
    pub fn path(&self) -> PathBuf {
        self.slot.path.lock().clone()
    }

    /// Records that the file was renamed to `path`.
    pub fn set_path(&self, path: PathBuf) {
        *self.slot.path.lock() = path;
    }
}

fn open(path: &Path, create: bool) -> Result<File, LogError> {
    File::options()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .map_err(|error| io_error(path, error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reopen_follows_renames_and_never_creates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        let file = LazyFile::create_or_open(path.clone()).unwrap();
        std::os::unix::fs::FileExt::write_all_at(&*file.get().unwrap(), b"hello", 0).unwrap();
        file.release();
        assert!(file.slot.file.lock().is_none());
        let renamed = dir.path().join("a.log.deleted");
        std::fs::rename(&path, &renamed).unwrap();
        file.set_path(renamed);
        let mut buffer = [0u8; 5];
        std::os::unix::fs::FileExt::read_exact_at(&*file.get().unwrap(), &mut buffer, 0).unwrap();
        assert_eq!(&buffer, b"hello");
        assert!(!path.exists(), "a reopen must not create the old path");
        file.release();
        std::fs::remove_file(file.path()).unwrap();
        assert!(file.get().is_err(), "a removed file is not re-created");
        assert!(!file.path().exists());
    }
}
