//! The producer state's file I/O: the state as of an offset is written to
//! `<partition dir>/<offset, 20 digits>.snapshot` (JSON); on open the newest
//! snapshot at or below the log end is loaded and the batches after it are
//! replayed from the log (batch headers, plus the control record of
//! markers), so the state survives clean and unclean restarts. This replaces
//! Kafka's per-segment `.snapshot` and `.txnindex` files: one snapshot per
//! partition.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::state::ProducerStateManager;
use crate::batch::{self, BatchHeader};
use crate::compact;
use crate::control::Marker;
use crate::log_files::TEMPORARY_SUFFIX;
use crate::Log;

/// Bytes read from the log per step while replaying.
const REPLAY_READ_BYTES: usize = 1 << 20;

/// A snapshot file's contents.
#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// The state covers every batch below this offset.
    offset: i64,
    /// The state.
    state: ProducerStateManager,
}

fn snapshot_name(offset: i64) -> String {
    format!("{offset:020}.snapshot")
}

/// Writes a snapshot (temp file + rename) and removes older ones.
pub fn write(dir: &Path, offset: i64, state: &ProducerStateManager) -> std::io::Result<()> {
    let json = serde_json::to_vec(&Snapshot {
        offset,
        state: state.clone(),
    })
    .map_err(std::io::Error::other)?;
    let path = dir.join(snapshot_name(offset));
    let temp = dir.join(format!("{}{TEMPORARY_SUFFIX}", snapshot_name(offset)));
    std::fs::write(&temp, json)?;
    std::fs::File::open(&temp)?.sync_all()?;
    std::fs::rename(&temp, &path)?;
    for (other, other_path) in list(dir)? {
        if other != offset {
            let _ = std::fs::remove_file(other_path);
        }
    }
    Ok(())
}

/// The snapshot files of `dir` by offset, oldest first.
fn list(dir: &Path) -> std::io::Result<Vec<(i64, PathBuf)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".snapshot") {
            if let Ok(offset) = stem.parse::<i64>() {
                found.push((offset, entry.path()));
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Loads the newest usable snapshot and replays the log after it.
pub fn load(dir: &Path, log: &Log) -> ProducerStateManager {
    let end = log.log_end_offset();
    let start = log.log_start_offset();
    let (mut state, from) = match newest_snapshot(dir, start, end) {
        Some(snapshot) => (snapshot.state, snapshot.offset),
        None => (ProducerStateManager::default(), start),
    };
    replay(log, &mut state, from, end);
    state
}

/// The newest snapshot in `dir` that parses and whose offset lies in
/// [`start`, `end`]; unreadable ones are logged and skipped.
fn newest_snapshot(dir: &Path, start: i64, end: i64) -> Option<Snapshot> {
    let snapshots = list(dir).ok()?;
    for (offset, path) in snapshots.into_iter().rev() {
        if offset > end || offset < start {
            continue;
        }
        let parsed = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Snapshot>(&bytes).ok());
        match parsed {
            Some(snapshot) => return Some(snapshot),
            None => {
                tracing::warn!(path = %path.display(), "unreadable producer-state snapshot ignored")
            }
        }
    }
    None
}

/// Replays the batches of [`from`, `end`) into `state`: only headers are
/// looked at, and the control record of markers.
fn replay(log: &Log, state: &mut ProducerStateManager, from: i64, end: i64) {
    let mut offset = from;
    while offset < end {
        let read = match log.read(offset, end, REPLAY_READ_BYTES, true) {
            Ok(read) => read,
            Err(error) => {
                tracing::warn!(%error, offset, "replaying producer state stopped early");
                break;
            }
        };
        let bytes = &read.records[..];
        let mut position = 0usize;
        while position + batch::HEADER_BYTES <= bytes.len() {
            let Ok(header) = batch::parse_header(&bytes[position..]) else {
                break;
            };
            let batch_end = position + header.total_bytes();
            if batch_end > bytes.len() {
                break;
            }
            if header.last_offset() >= offset {
                replay_batch(state, &header, &bytes[position..batch_end]);
            }
            offset = header.last_offset() + 1;
            position = batch_end;
        }
        if position == 0 {
            break;
        }
    }
}

/// Removes the snapshots at offsets above `offset`: after a truncation to
/// `offset` they describe batches that are gone (and a snapshot at an offset
/// the log reaches again would describe other batches).
pub fn remove_snapshots_above(dir: &Path, offset: i64) -> std::io::Result<()> {
    for (at, path) in list(dir)? {
        if at > offset {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Records one batch read back from the log, or replicated from the leader:
/// an idempotent or transactional batch's producer, and a marker's end of
/// its transaction.
pub fn replay_batch(state: &mut ProducerStateManager, header: &BatchHeader, bytes: &[u8]) {
    if !header.is_control() {
        state.record(header, header.base_offset, header.max_timestamp);
        state.record_transaction(header, header.base_offset, None);
        return;
    }
    // Transactions too: without this, an abort (or an open transaction)
    // after the snapshot would be forgotten by an unclean restart, and
    // read_committed consumers would see aborted or uncommitted records.
    if let Some((marker, coordinator_epoch)) = marker_of(header, bytes) {
        state.record_transaction(header, header.base_offset, Some(marker));
        state.record_coordinator_epoch(header.producer_id, coordinator_epoch);
        state.observe_epoch(
            header.producer_id,
            header.producer_epoch,
            header.max_timestamp,
        );
    }
}

/// The transaction marker a control batch holds; `None` for a batch whose
/// CRC does not match, whose control record cannot be read, or whose record
/// is another control type.
fn marker_of(header: &BatchHeader, bytes: &[u8]) -> Option<(Marker, i32)> {
    if !batch::crc_matches(header, bytes) {
        return None;
    }
    compact::marker(header, bytes).ok().flatten()
}

#[cfg(test)]
mod replay_tests {
    use bytes::BytesMut;
    use sluice_testkit::batch::{RecordBatchBuilder, TestRecord};

    use super::load;
    use crate::producer_state::AbortedTransaction;
    use crate::{AppendOptions, Log, LogConfig};

    /// One record batch: transactional data (`control` None) or a marker
    /// (`Some(0)` abort, `Some(1)` commit) of `producer_id`.
    fn encoded(producer_id: i64, sequence: i32, control: Option<i16>) -> BytesMut {
        let record = match control {
            // Coordinator epoch 5 in every marker.
            Some(kind) => TestRecord::marker(kind == 1, 5),
            None => TestRecord::keyed("k", "v"),
        };
        let sequence = if control.is_some() { -1 } else { sequence };
        RecordBatchBuilder::new()
            .producer(producer_id, 0, sequence)
            .transactional(true)
            .control(control.is_some())
            .partition_leader_epoch(0)
            .timestamp(1_000)
            .record(record)
            .build()
    }

    /// With no snapshot at all, replaying the log alone rebuilds the
    /// aborted ranges and the open transactions (what an unclean restart
    /// relies on for everything after the last snapshot).
    #[test]
    fn replay_rebuilds_aborted_and_open_transactions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let log =
            Log::open(dir.path(), LogConfig::default(), uuid::Uuid::nil(), None).expect("opens");
        let options = AppendOptions {
            leader_epoch: 0,
            log_append_time_ms: None,
        };
        // offsets: 0 data(7) 1 data(8) 2 abort(7) 3 commit(8) 4 data(9, open)
        for (producer, sequence, control) in [
            (7, 0, None),
            (8, 0, None),
            (7, 0, Some(0)),
            (8, 0, Some(1)),
            (9, 0, None),
        ] {
            log.append(&mut encoded(producer, sequence, control), options)
                .expect("appends");
        }
        let state = load(dir.path(), &log);
        assert_eq!(
            state.aborted_between(0, 10),
            vec![AbortedTransaction {
                producer_id: 7,
                first_offset: 0,
                last_offset: 2,
            }]
        );
        assert_eq!(state.first_unstable_offset(), Some(4));
        assert_eq!(state.last_batch_offsets().get(&9), Some(&4));
        // The markers' coordinator epoch: an older coordinator is refused.
        assert_eq!(state.coordinator_epochs.get(&7), Some(&5));
        assert_eq!(state.coordinator_epochs.get(&8), Some(&5));
        assert!(!state.coordinator_current(7, 4));
    }
}
