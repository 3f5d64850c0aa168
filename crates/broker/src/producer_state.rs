//! Idempotent-producer state of one partition: per producer id its epoch and
//! the last five batches' sequence and offset ranges. Pure: no I/O, `now` is
//! supplied, so the rules are unit-tested with a controlled clock.
//!
//! The rules are Kafka 4.0's (`ProducerAppendInfo`): a retry of one of the
//! last five batches is a duplicate and answered with the offsets it was
//! first written at; a gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is
//! INVALID_PRODUCER_EPOCH; a newer epoch must start at sequence 0; a producer
//! id without state is accepted at any sequence; sequences wrap from
//! i32::MAX to 0.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sluice_log::batch::BatchHeader;

use crate::error_codes;

/// How many batches per producer are remembered for duplicate detection
/// (Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`, matching the
/// clients' max.in.flight.requests.per.connection limit of 5).
pub const BATCHES_RETAINED: usize = 5;

/// One appended batch of a producer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchRange {
    /// baseSequence of the batch.
    pub first_sequence: i32,
    /// baseSequence + lastOffsetDelta (wrapping).
    pub last_sequence: i32,
    /// Offset assigned to the first record.
    pub first_offset: i64,
    /// Offset assigned to the last record.
    pub last_offset: i64,
}

/// What the partition knows about one producer id.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerEntry {
    /// The producer's current epoch.
    pub epoch: i16,
    /// The last batches, oldest first, at most `BATCHES_RETAINED`.
    pub batches: VecDeque<BatchRange>,
    /// When the producer last wrote (ms), for `producer.id.expiration.ms`.
    pub last_write_ms: i64,
}

/// The verdict on a batch before it is appended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceCheck {
    /// Not an idempotent batch, or the next in sequence: append it.
    Append,
    /// A retry of a batch already in the log: answer with its offsets.
    Duplicate(BatchRange),
    /// Refuse with this Kafka error code.
    Reject(i16),
}

/// A transaction that was aborted, for read_committed fetches.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AbortedTransaction {
    /// The producer whose records in [first_offset, last_offset] are aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
}

/// What a control batch (transaction marker) says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    Abort,
    Commit,
}

/// Producer state of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStateManager {
    /// Entries by producer id.
    pub producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: producer id → offset of its first batch here. The
    /// last stable offset is the smallest of these (or the high watermark).
    #[serde(default)]
    pub ongoing: std::collections::BTreeMap<i64, i64>,
    /// Aborted transactions in marker order (pruned below the log start).
    #[serde(default)]
    pub aborted: Vec<AbortedTransaction>,
}

/// The sequence of the last record of a batch.
fn last_sequence(header: &BatchHeader) -> i32 {
    let last = header.base_sequence as i64 + header.last_offset_delta as i64;
    if last > i32::MAX as i64 {
        (last - i32::MAX as i64 - 1) as i32
    } else {
        last as i32
    }
}

/// The sequence after `sequence` (wrapping at i32::MAX).
fn next_sequence(sequence: i32) -> i32 {
    if sequence == i32::MAX {
        0
    } else {
        sequence + 1
    }
}

impl ProducerStateManager {
    /// Checks a validated batch against the state. Batches without a producer
    /// id (-1) are not idempotent and always appended.
    pub fn check(&self, header: &BatchHeader) -> SequenceCheck {
        if header.producer_id < 0 || header.is_control() {
            return SequenceCheck::Append;
        }
        let Some(entry) = self.producers.get(&header.producer_id) else {
            return SequenceCheck::Append;
        };
        if header.producer_epoch < entry.epoch {
            return SequenceCheck::Reject(error_codes::INVALID_PRODUCER_EPOCH);
        }
        if header.producer_epoch > entry.epoch {
            // A new epoch (InitProducerId, or franz-go's local bump) restarts
            // the sequence.
            return if header.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(error_codes::OUT_OF_ORDER_SEQUENCE_NUMBER)
            };
        }
        let last = last_sequence(header);
        if let Some(batch) = entry
            .batches
            .iter()
            .find(|b| b.first_sequence == header.base_sequence && b.last_sequence == last)
        {
            return SequenceCheck::Duplicate(*batch);
        }
        match entry.batches.back() {
            Some(previous) if next_sequence(previous.last_sequence) != header.base_sequence => {
                SequenceCheck::Reject(error_codes::OUT_OF_ORDER_SEQUENCE_NUMBER)
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Records an appended idempotent batch.
    pub fn record(&mut self, header: &BatchHeader, first_offset: i64, now_ms: i64) {
        if header.producer_id < 0 || header.is_control() {
            return;
        }
        let range = BatchRange {
            first_sequence: header.base_sequence,
            last_sequence: last_sequence(header),
            first_offset,
            last_offset: first_offset + header.last_offset_delta as i64,
        };
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch: header.producer_epoch,
                batches: VecDeque::new(),
                last_write_ms: now_ms,
            });
        if header.producer_epoch != entry.epoch {
            entry.epoch = header.producer_epoch;
            entry.batches.clear();
        }
        entry.batches.push_back(range);
        while entry.batches.len() > BATCHES_RETAINED {
            entry.batches.pop_front();
        }
        entry.last_write_ms = entry.last_write_ms.max(now_ms);
    }

    /// Tracks transactions: a transactional data batch opens one for its
    /// producer (if none is open); a marker closes it, and an abort marker
    /// records the aborted range.
    pub fn record_transaction(
        &mut self,
        header: &BatchHeader,
        first_offset: i64,
        marker: Option<Marker>,
    ) {
        if header.producer_id < 0 || !header.is_transactional() {
            return;
        }
        match marker {
            None => {
                self.ongoing
                    .entry(header.producer_id)
                    .or_insert(first_offset);
            }
            Some(kind) => {
                if let Some(first) = self.ongoing.remove(&header.producer_id) {
                    if kind == Marker::Abort {
                        self.aborted.push(AbortedTransaction {
                            producer_id: header.producer_id,
                            first_offset: first,
                            last_offset: first_offset,
                        });
                    }
                }
            }
        }
    }

    /// First offset of the oldest open transaction, if any.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.ongoing.values().copied().min()
    }

    /// Aborted transactions overlapping [from, to), ordered by first offset
    /// (franz-go relies on the order).
    pub fn aborted_between(&self, from: i64, to: i64) -> Vec<AbortedTransaction> {
        let mut found: Vec<AbortedTransaction> = self
            .aborted
            .iter()
            .filter(|a| a.last_offset >= from && a.first_offset < to)
            .copied()
            .collect();
        found.sort_by_key(|a| a.first_offset);
        found
    }

    /// Producer id → last offset of its newest batch, for every producer
    /// tracked: the cleaner keeps those batches so that a replay of the log
    /// still finds each producer's latest sequence.
    pub fn last_batch_offsets(&self) -> HashMap<i64, i64> {
        self.producers
            .iter()
            .filter_map(|(id, entry)| Some((*id, entry.batches.back()?.last_offset)))
            .collect()
    }

    /// Forgets aborted transactions whose abort marker the cleaner removed
    /// (after their data); returns how many were forgotten. Left in, one would
    /// make a read_committed consumer skip its producer's later transactions.
    pub fn forget_aborted(&mut self, gone: &[AbortedTransaction]) -> usize {
        let before = self.aborted.len();
        self.aborted.retain(|txn| !gone.contains(txn));
        before - self.aborted.len()
    }

    /// Forgets aborted ranges wholly below the log start; returns how many.
    pub fn prune_aborted(&mut self, log_start_offset: i64) -> usize {
        let before = self.aborted.len();
        self.aborted.retain(|a| a.last_offset >= log_start_offset);
        before - self.aborted.len()
    }

    /// Forgets producers silent for longer than `expiration_ms`.
    pub fn expire(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        let ongoing = &self.ongoing;
        // Never while the producer has an open transaction.
        self.producers.retain(|id, e| {
            ongoing.contains_key(id) || now_ms.saturating_sub(e.last_write_ms) <= expiration_ms
        });
        before - self.producers.len()
    }

    /// Drops batch ranges at or above `offset` (after a log truncation).
    pub fn truncate_to(&mut self, offset: i64) {
        for entry in self.producers.values_mut() {
            entry.batches.retain(|b| b.last_offset < offset);
        }
        self.producers.retain(|_, e| !e.batches.is_empty());
        self.ongoing.retain(|_, first| *first < offset);
        self.aborted.retain(|a| a.last_offset < offset);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(producer_id: i64, epoch: i16, base_sequence: i32, records: i32) -> BatchHeader {
        BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            record_count: records,
        }
    }

    /// (batch, expected verdict) applied in order; appended batches get the
    /// next offsets.
    #[test]
    fn sequence_rules() {
        use SequenceCheck::*;
        let dup = |first_sequence, last_sequence, first_offset, last_offset| {
            Duplicate(BatchRange {
                first_sequence,
                last_sequence,
                first_offset,
                last_offset,
            })
        };
        let cases: Vec<(BatchHeader, SequenceCheck)> = vec![
            (batch(-1, -1, -1, 3), Append),
            (batch(7, 0, 42, 2), Append), // unknown producer: any sequence
            (batch(7, 0, 44, 3), Append),
            (batch(7, 0, 44, 3), dup(44, 46, 5, 7)), // retry of the last batch
            (batch(7, 0, 42, 2), dup(42, 43, 3, 4)), // retry of an older one
            (
                batch(7, 0, 48, 1),
                Reject(error_codes::OUT_OF_ORDER_SEQUENCE_NUMBER),
            ), // gap
            (batch(7, 0, 47, 1), Append),
            (
                batch(7, 1, 5, 1),
                Reject(error_codes::OUT_OF_ORDER_SEQUENCE_NUMBER),
            ), // new epoch not at 0
            (batch(7, 1, 0, 2), Append),
            (
                batch(7, 0, 48, 1),
                Reject(error_codes::INVALID_PRODUCER_EPOCH),
            ), // fenced epoch
            (batch(7, 1, 2, 1), Append),
        ];
        let mut state = ProducerStateManager::default();
        let mut next_offset = 0;
        for (i, (header, expected)) in cases.into_iter().enumerate() {
            let verdict = state.check(&header);
            assert_eq!(verdict, expected, "case {i}");
            if verdict == Append {
                state.record(&header, next_offset, 1000);
                next_offset += header.record_count as i64;
            }
        }
    }

    #[test]
    fn sequences_wrap_and_only_five_batches_are_remembered() {
        let mut state = ProducerStateManager::default();
        let first = batch(1, 0, i32::MAX - 1, 2);
        state.record(&first, 0, 0);
        assert_eq!(state.check(&batch(1, 0, 0, 1)), SequenceCheck::Append);
        for i in 0..6 {
            let header = batch(1, 0, i, 1);
            state.record(&header, 2 + i as i64, 0);
        }
        assert_eq!(state.producers[&1].batches.len(), BATCHES_RETAINED);
        // The oldest retained batch is sequence 1; sequence 0 is no longer a
        // known duplicate and is out of order.
        assert_eq!(
            state.check(&batch(1, 0, 0, 1)),
            SequenceCheck::Reject(error_codes::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
    }

    #[test]
    fn transactions_open_close_and_record_aborts() {
        let mut state = ProducerStateManager::default();
        let mut txn = batch(5, 0, 0, 2);
        txn.attributes = 1 << 4;
        state.record_transaction(&txn, 10, None);
        state.record_transaction(&txn, 12, None); // still the same transaction
        let mut other = batch(6, 0, 0, 1);
        other.attributes = 1 << 4;
        state.record_transaction(&other, 14, None);
        assert_eq!(state.first_unstable_offset(), Some(10));
        let mut marker = batch(5, 0, -1, 1);
        marker.attributes = (1 << 4) | (1 << 5);
        state.record_transaction(&marker, 15, Some(Marker::Abort));
        assert_eq!(state.first_unstable_offset(), Some(14));
        let mut commit = batch(6, 0, -1, 1);
        commit.attributes = (1 << 4) | (1 << 5);
        state.record_transaction(&commit, 16, Some(Marker::Commit));
        assert_eq!(state.first_unstable_offset(), None);
        let aborted = AbortedTransaction {
            producer_id: 5,
            first_offset: 10,
            last_offset: 15,
        };
        assert_eq!(state.aborted_between(0, 100), vec![aborted]);
        assert_eq!(state.aborted_between(16, 100), vec![]);
        assert_eq!(state.prune_aborted(16), 1);
        assert!(state.aborted.is_empty());
        // A producer with an open transaction never expires.
        state.record(&txn, 20, 0);
        state.record_transaction(&txn, 20, None);
        assert_eq!(state.expire(i64::MAX, 1), 0);
    }

    #[test]
    fn what_the_cleaner_reads_and_forgets() {
        let mut state = ProducerStateManager::default();
        state.record(&batch(1, 0, 0, 2), 0, 0);
        state.record(&batch(1, 0, 2, 3), 2, 0);
        state.record(&batch(2, 0, 0, 1), 5, 0);
        assert_eq!(state.last_batch_offsets(), HashMap::from([(1, 4), (2, 5)]));
        let first = AbortedTransaction {
            producer_id: 1,
            first_offset: 0,
            last_offset: 6,
        };
        let second = AbortedTransaction {
            producer_id: 2,
            first_offset: 5,
            last_offset: 7,
        };
        state.aborted = vec![first, second];
        let unknown = AbortedTransaction {
            last_offset: 9,
            ..second
        };
        assert_eq!(state.forget_aborted(&[first, unknown]), 1);
        assert_eq!(state.aborted, vec![second]);
    }

    #[test]
    fn silent_producers_expire_and_truncation_forgets_batches() {
        let mut state = ProducerStateManager::default();
        state.record(&batch(1, 0, 0, 1), 0, 1_000);
        state.record(&batch(2, 0, 0, 1), 1, 5_000);
        assert_eq!(state.expire(7_000, 3_000), 1);
        assert!(state.producers.contains_key(&2));
        state.truncate_to(1);
        assert!(state.producers.is_empty());
    }
}

/// The marker type of a control batch: the control record's key is
/// (version i16, type i16), type 0 = abort, 1 = commit.
pub fn control_marker(batch: &bytes::Bytes) -> Option<Marker> {
    let mut buf = batch.clone();
    let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).ok()?;
    let key = set.records.first()?.key.clone()?;
    if key.len() < 4 {
        return None;
    }
    match i16::from_be_bytes([key[2], key[3]]) {
        0 => Some(Marker::Abort),
        1 => Some(Marker::Commit),
        _ => None,
    }
}

/// Snapshots and rebuilding: the state as of an offset is written to
/// `<partition dir>/<offset, 20 digits>.snapshot` (JSON); on open the newest
/// snapshot at or below the log end is loaded and the batches after it are
/// replayed from the log, so the state survives clean and unclean restarts.
pub mod persistence {
    use std::path::Path;

    use serde::{Deserialize, Serialize};
    use sluice_log::{batch, Log};

    use super::ProducerStateManager;

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
        let temp = dir.join(format!("{}.tmp", snapshot_name(offset)));
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

    fn list(dir: &Path) -> std::io::Result<Vec<(i64, std::path::PathBuf)>> {
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
        let mut state = ProducerStateManager::default();
        let mut from = log.log_start_offset();
        if let Ok(snapshots) = list(dir) {
            for (offset, path) in snapshots.into_iter().rev() {
                if offset > end || offset < from {
                    continue;
                }
                let parsed = std::fs::read(&path)
                    .ok()
                    .and_then(|bytes| serde_json::from_slice::<Snapshot>(&bytes).ok());
                match parsed {
                    Some(snapshot) => {
                        state = snapshot.state;
                        from = snapshot.offset;
                        break;
                    }
                    None => {
                        tracing::warn!(path = %path.display(), "unreadable producer-state snapshot ignored")
                    }
                }
            }
        }
        // Replay: only headers are looked at.
        let mut offset = from;
        while offset < end {
            let read = match log.read(offset, end, REPLAY_READ_BYTES, true) {
                Ok(read) => read,
                Err(error) => {
                    tracing::warn!(%error, offset, "replaying producer state stopped early");
                    break;
                }
            };
            if read.records.is_empty() {
                break;
            }
            let mut position = 0usize;
            let bytes = &read.records[..];
            while position + batch::HEADER_BYTES <= bytes.len() {
                let Ok(header) = batch::parse_header(&bytes[position..]) else {
                    break;
                };
                if position + header.total_bytes() > bytes.len() {
                    break;
                }
                if header.base_offset + header.last_offset_delta as i64 >= offset {
                    if !header.is_control() {
                        state.record(&header, header.base_offset, header.max_timestamp);
                    }
                    // Transactions too: without this, an abort (or an open
                    // transaction) after the snapshot would be forgotten by
                    // an unclean restart, and read_committed consumers would
                    // see aborted or uncommitted records.
                    let marker = if header.is_control() {
                        let batch = read
                            .records
                            .slice(position..position + header.total_bytes());
                        super::control_marker(&batch)
                    } else {
                        None
                    };
                    if !header.is_control() || marker.is_some() {
                        state.record_transaction(&header, header.base_offset, marker);
                    }
                }
                offset = header.base_offset + header.last_offset_delta as i64 + 1;
                position += header.total_bytes();
            }
            if position == 0 {
                break;
            }
        }
        state
    }
}

#[cfg(test)]
mod replay_tests {
    use bytes::{Bytes, BytesMut};
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    use sluice_log::{AppendOptions, Log, LogConfig};

    use super::{persistence, AbortedTransaction};

    /// One record batch: transactional data (`control` None) or a marker
    /// (`Some(0)` abort, `Some(1)` commit) of `producer_id`.
    fn encoded(producer_id: i64, sequence: i32, control: Option<i16>) -> BytesMut {
        let (key, value) = match control {
            Some(kind) => {
                let mut key = 0i16.to_be_bytes().to_vec();
                key.extend_from_slice(&kind.to_be_bytes());
                let mut value = 0i16.to_be_bytes().to_vec();
                value.extend_from_slice(&0i32.to_be_bytes());
                (key, value)
            }
            None => (b"k".to_vec(), b"v".to_vec()),
        };
        let record = Record {
            transactional: true,
            control: control.is_some(),
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id,
            producer_epoch: 0,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: if control.is_some() { -1 } else { sequence },
            timestamp: 1_000,
            key: Some(Bytes::from(key)),
            value: Some(Bytes::from(value)),
            headers: Default::default(),
        };
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, [&record], &options).expect("encodes");
        buf
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
        let state = persistence::load(dir.path(), &log);
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
    }
}
