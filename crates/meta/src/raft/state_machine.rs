//! The Raft state machine: the [`ClusterImage`] plus what openraft needs
//! (last applied log id, last membership, the current snapshot).
//!
//! The image lives in memory. Snapshots are the serde_json of the image, kept in
//! `<data-dir>/meta/snapshot.json` (temp + fsync + rename) with the record
//! format version that wrote it. On restart the image is loaded from that
//! snapshot and openraft re-applies the log after it.
//!
//! The cluster id: a node that knows it (from `<data-dir>/meta/cluster.id`)
//! stamps it on every image. A voter of a new cluster starts without one and
//! learns it from the `SetClusterId` record its first leader commits (or from
//! a snapshot), then writes `cluster.id` before the entry counts as applied.
//!
//! Applying an entry returns its [`EntryResponse`] to the proposer: the
//! outcome of each record (the producer-id block assigned, the broker epoch
//! given), or the refusal that left the entry unapplied. Replay computes the
//! same responses and drops them.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::RaftStateMachine;
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, OptionalSend, RaftSnapshotBuilder, Snapshot,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{ClusterIdCell, TypeConfig};
use crate::files::{read_optional, write_atomically, CLUSTER_ID_FILE};
use crate::{ClusterImage, EntryResponse, RecordBatch, RECORD_FORMAT_VERSION};

/// The snapshot file's name.
const SNAPSHOT_FILE: &str = "snapshot.json";

type NodeId = u64;

/// A snapshot as stored on disk and held in memory.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct StoredSnapshot {
    /// Openraft's description: last included log id, membership, snapshot id.
    meta: SnapshotMeta<NodeId, BasicNode>,
    /// serde_json of the image at `meta.last_log_id`.
    data: Vec<u8>,
}

/// On-disk form of [`StoredSnapshot`]: the image as JSON, not a byte array.
#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    /// The record format the image was written with (0: before versions;
    /// fields added since decode to their defaults).
    #[serde(default, rename = "v")]
    version: u16,
    /// See [`StoredSnapshot::meta`].
    meta: SnapshotMeta<NodeId, BasicNode>,
    /// The image at `meta.last_log_id`.
    image: ClusterImage,
}

/// The state machine store. Cheap to clone (shared state), which also makes it
/// its own snapshot builder.
#[derive(Clone)]
pub(crate) struct StateMachineStore {
    /// Shared state.
    state: Arc<Mutex<StateMachineState>>,
    /// `<data-dir>/meta/`, where snapshots are written.
    dir: PathBuf,
    /// The cluster id once known, stamped on every image (a snapshot may
    /// come from a peer); set here when the log or a snapshot teaches it.
    cluster_id: ClusterIdCell,
    /// Publishes each newly applied image.
    image_sender: Arc<watch::Sender<Arc<ClusterImage>>>,
}

/// The state behind a [`StateMachineStore`].
struct StateMachineState {
    /// The cluster image after `last_applied`.
    image: ClusterImage,
    /// Log id of the last applied entry.
    last_applied: Option<LogId<NodeId>>,
    /// The last membership config applied.
    last_membership: StoredMembership<NodeId, BasicNode>,
    /// The most recent snapshot, built or installed.
    current_snapshot: Option<StoredSnapshot>,
    /// Makes snapshot ids unique within one process run.
    snapshot_counter: u64,
}

/// An entry written by a newer record format than this code knows stops the
/// state machine (openraft stops on a storage error): applying it partly
/// understood would make this node's image differ from its peers'.
// StorageError is openraft's type, returned by every trait method here.
#[allow(clippy::result_large_err)]
fn check_format_version(
    batch: &RecordBatch,
    log_id: LogId<NodeId>,
) -> Result<(), StorageError<NodeId>> {
    if batch.version <= RECORD_FORMAT_VERSION {
        return Ok(());
    }
    let error = io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "metadata log entry {} has record format {}, this broker knows up to {RECORD_FORMAT_VERSION}",
            log_id.index, batch.version
        ),
    );
    Err(StorageIOError::read_log_at_index(log_id.index, &error).into())
}

fn sm_read_error(error: &(impl std::error::Error + 'static)) -> StorageError<NodeId> {
    StorageIOError::read_state_machine(error).into()
}

impl StateMachineStore {
    /// Loads the last snapshot from `dir` (if any) as the starting image.
    pub(crate) fn open(
        dir: &Path,
        cluster_id: ClusterIdCell,
    ) -> io::Result<(StateMachineStore, watch::Receiver<Arc<ClusterImage>>)> {
        let mut state = StateMachineState {
            image: ClusterImage::default(),
            last_applied: None,
            last_membership: StoredMembership::default(),
            current_snapshot: None,
            snapshot_counter: 0,
        };
        if let Some(bytes) = read_optional(dir, SNAPSHOT_FILE)? {
            let file: SnapshotFile = serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(io::ErrorKind::InvalidData, format!("{SNAPSHOT_FILE}: {e}"))
            })?;
            if file.version > RECORD_FORMAT_VERSION {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{SNAPSHOT_FILE} has record format {}, this broker knows up to {RECORD_FORMAT_VERSION}",
                        file.version
                    ),
                ));
            }
            let data = serde_json::to_vec(&file.image).map_err(io::Error::other)?;
            tracing::info!(last_log_id = ?file.meta.last_log_id, "loaded metadata snapshot");
            state.image = file.image;
            state.last_applied = file.meta.last_log_id;
            state.last_membership = file.meta.last_membership.clone();
            state.current_snapshot = Some(StoredSnapshot {
                meta: file.meta,
                data,
            });
        }
        if let Some(known) = cluster_id.borrow().as_ref() {
            state.image.cluster_id = known.clone();
        }
        let (sender, receiver) = watch::channel(Arc::new(state.image.clone()));
        Ok((
            StateMachineStore {
                state: Arc::new(Mutex::new(state)),
                dir: dir.to_path_buf(),
                cluster_id,
                image_sender: Arc::new(sender),
            },
            receiver,
        ))
    }

    // StorageError is openraft's type, returned by every trait method here.
    #[allow(clippy::result_large_err)]
    fn lock(&self) -> Result<MutexGuard<'_, StateMachineState>, StorageError<NodeId>> {
        self.state
            .lock()
            .map_err(|_| sm_read_error(&io::Error::other("state machine lock poisoned")))
    }

    /// Persists a cluster id the image has and this node did not know yet,
    /// then publishes it to the network.
    async fn learn_cluster_id(&self, image: &ClusterImage) -> io::Result<()> {
        if image.cluster_id.is_empty() || self.cluster_id.borrow().is_some() {
            return Ok(());
        }
        let cluster_id = image.cluster_id.clone();
        let dir = self.dir.clone();
        let bytes = format!("{cluster_id}\n");
        tokio::task::spawn_blocking(move || {
            write_atomically(&dir, CLUSTER_ID_FILE, bytes.as_bytes())
        })
        .await
        .map_err(|e| io::Error::other(format!("cluster id write task failed: {e}")))??;
        tracing::info!(cluster_id = %cluster_id, "learned the cluster id");
        self.cluster_id.send_replace(Some(cluster_id));
        Ok(())
    }

    /// Writes the snapshot file (temp + fsync + rename) on a blocking thread.
    async fn persist_snapshot(
        &self,
        snapshot: &StoredSnapshot,
        image: &ClusterImage,
    ) -> io::Result<()> {
        let file = SnapshotFile {
            version: RECORD_FORMAT_VERSION,
            meta: snapshot.meta.clone(),
            image: image.clone(),
        };
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            let bytes = serde_json::to_vec(&file).map_err(io::Error::other)?;
            write_atomically(&dir, SNAPSHOT_FILE, &bytes)
        })
        .await
        .map_err(|e| io::Error::other(format!("snapshot write task failed: {e}")))?
    }
}

impl RaftSnapshotBuilder<TypeConfig> for StateMachineStore {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError<NodeId>> {
        let (snapshot, image) = {
            let mut state = self.lock()?;
            state.snapshot_counter += 1;
            let data = serde_json::to_vec(&state.image).map_err(|e| sm_read_error(&e))?;
            let snapshot_id = match state.last_applied {
                Some(log_id) => format!(
                    "{}-{}-{}",
                    log_id.leader_id, log_id.index, state.snapshot_counter
                ),
                None => format!("--{}", state.snapshot_counter),
            };
            let snapshot = StoredSnapshot {
                meta: SnapshotMeta {
                    last_log_id: state.last_applied,
                    last_membership: state.last_membership.clone(),
                    snapshot_id,
                },
                data,
            };
            (snapshot, state.image.clone())
        };
        // Written outside the lock.
        self.persist_snapshot(&snapshot, &image)
            .await
            .map_err(|e| StorageError::from(StorageIOError::write_snapshot(None, &e)))?;
        tracing::info!(last_log_id = ?snapshot.meta.last_log_id, "built metadata snapshot");
        self.lock()?.current_snapshot = Some(snapshot.clone());
        Ok(Snapshot {
            meta: snapshot.meta,
            snapshot: Box::new(Cursor::new(snapshot.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachineStore {
    type SnapshotBuilder = StateMachineStore;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let state = self.lock()?;
        Ok((state.last_applied, state.last_membership.clone()))
    }

    /// Applies each entry's records all or none; a refused entry is
    /// committed but changes nothing, and its proposer gets the refusal.
    async fn apply<I>(&mut self, entries: I) -> Result<Vec<EntryResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<TypeConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut responses = Vec::new();
        let image = {
            let mut state = self.lock()?;
            for entry in entries {
                state.last_applied = Some(entry.log_id);
                state.image.last_applied_index = entry.log_id.index;
                let response = match entry.payload {
                    EntryPayload::Blank => Ok(Vec::new()),
                    EntryPayload::Normal(batch) => {
                        check_format_version(&batch, entry.log_id)?;
                        state.image.apply_all(&batch)
                    }
                    EntryPayload::Membership(membership) => {
                        state.last_membership =
                            StoredMembership::new(Some(entry.log_id), membership);
                        Ok(Vec::new())
                    }
                };
                responses.push(response);
            }
            Arc::new(state.image.clone())
        };
        self.learn_cluster_id(&image)
            .await
            .map_err(|e| StorageError::from(StorageIOError::write_state_machine(&e)))?;
        self.image_sender.send_replace(image);
        Ok(responses)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        let data = snapshot.into_inner();
        let mut image: ClusterImage = serde_json::from_slice(&data).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(Some(meta.signature()), &e))
        })?;
        if let Some(known) = self.cluster_id.borrow().as_ref() {
            image.cluster_id = known.clone();
        }
        if let Some(log_id) = meta.last_log_id {
            image.last_applied_index = log_id.index;
        }
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        self.persist_snapshot(&stored, &image).await.map_err(|e| {
            StorageError::from(StorageIOError::write_snapshot(Some(meta.signature()), &e))
        })?;
        self.learn_cluster_id(&image).await.map_err(|e| {
            StorageError::from(StorageIOError::write_snapshot(Some(meta.signature()), &e))
        })?;
        let published = Arc::new(image.clone());
        {
            let mut state = self.lock()?;
            state.image = image;
            state.last_applied = meta.last_log_id;
            state.last_membership = meta.last_membership.clone();
            state.current_snapshot = Some(stored);
        }
        tracing::info!(last_log_id = ?meta.last_log_id, "installed metadata snapshot");
        self.image_sender.send_replace(published);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<TypeConfig>>, StorageError<NodeId>> {
        let state = self.lock()?;
        Ok(state.current_snapshot.as_ref().map(|stored| Snapshot {
            meta: stored.meta.clone(),
            snapshot: Box::new(Cursor::new(stored.data.clone())),
        }))
    }
}
