//! openraft's storage conformance suite against the log store and state machine.

use std::sync::Arc;

use openraft::testing::{StoreBuilder, Suite};
use openraft::{StorageError, StorageIOError};
use tokio::sync::watch;

use super::log_store::LogStore;
use super::state_machine::StateMachineStore;
use super::TypeConfig;

/// Builds a fresh store pair in a new temp dir (kept alive as the guard).
struct TempDirStoreBuilder;

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir>
    for TempDirStoreBuilder
{
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(|e| StorageIOError::write(&e))?;
        let cluster_id = Arc::new(watch::channel(Some("test".to_string())).0);
        let log_store = LogStore::open(dir.path()).map_err(|e| StorageIOError::write(&e))?;
        let (state_machine, _receiver) = StateMachineStore::open(dir.path(), cluster_id)
            .map_err(|e| StorageIOError::write(&e))?;
        Ok((dir, log_store, state_machine))
    }
}

#[test]
fn storage_passes_the_openraft_suite() {
    Suite::test_all(TempDirStoreBuilder).unwrap();
}
