//! The pure producer state of one partition: per producer id its epoch and
//! the last five batches' sequence and offset ranges, the open transactions
//! and the aborted ones. No I/O: `now` is supplied, so the rules are
//! unit-tested with a controlled clock (`state/tests.rs`).
//!
//! The rules are Kafka 4.0's (`ProducerAppendInfo`): a retry of one of the
//! last five batches is a duplicate and answered with the offsets it was
//! first written at; a gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an older epoch is
//! INVALID_PRODUCER_EPOCH; a newer epoch must start at sequence 0; a producer
//! id without state is accepted at any sequence; sequences wrap from
//! i32::MAX to 0. The broker turns a `SequenceError` into its Kafka code.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::batch::BatchHeader;
use crate::control::Marker;

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
    /// Refuse the batch.
    Reject(SequenceError),
}

/// Why a batch is refused; the broker answers the Kafka error of the same
/// name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceError {
    /// The batch's producer epoch is older than the producer's.
    InvalidProducerEpoch,
    /// The batch does not follow the producer's last sequence (or a new
    /// epoch does not start at 0).
    OutOfOrderSequenceNumber,
}

/// A transaction that was aborted (Kafka's `AbortedTxn`): what a
/// read_committed fetch is told to skip, what the cleaner removes, and what
/// the producer state keeps until the cleaner or retention takes its marker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AbortedTransaction {
    /// The producer whose records in [first_offset, last_offset] are aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of the abort marker.
    pub last_offset: i64,
}

/// Producer state of one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProducerStateManager {
    /// Entries by producer id.
    pub producers: HashMap<i64, ProducerEntry>,
    /// Open transactions: producer id → offset of its first batch here. The
    /// last stable offset is the smallest of these (or the high watermark).
    #[serde(default)]
    pub ongoing: BTreeMap<i64, i64>,
    /// Aborted transactions in marker order (pruned below the log start).
    #[serde(default)]
    pub aborted: Vec<AbortedTransaction>,
    /// Producer id → the highest transaction coordinator epoch of its
    /// markers here (Kafka's `ProducerStateEntry.coordinatorEpoch`): a
    /// marker from an older coordinator is refused.
    #[serde(default)]
    pub coordinator_epochs: HashMap<i64, i32>,
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
            return SequenceCheck::Reject(SequenceError::InvalidProducerEpoch);
        }
        if header.producer_epoch > entry.epoch {
            // A new epoch (InitProducerId, or franz-go's local bump) restarts
            // the sequence.
            return if header.base_sequence == 0 {
                SequenceCheck::Append
            } else {
                SequenceCheck::Reject(SequenceError::OutOfOrderSequenceNumber)
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
                SequenceCheck::Reject(SequenceError::OutOfOrderSequenceNumber)
            }
            _ => SequenceCheck::Append,
        }
    }

    /// Whether `epoch` is older than the producer's current epoch here: a
    /// coordinator's transactional batch (TxnOffsetCommit's offsets) of a
    /// fenced producer is refused, as Kafka's `checkProducerEpoch` does for
    /// every append but replication (only the sequence check is for client
    /// batches alone).
    pub fn epoch_is_stale(&self, producer_id: i64, epoch: i16) -> bool {
        producer_id >= 0
            && self
                .producers
                .get(&producer_id)
                .is_some_and(|entry| epoch < entry.epoch)
    }

    /// A marker or a coordinator's batch of `producer_id` at `epoch` was
    /// written: a newer epoch becomes the producer's (its batches are
    /// forgotten, a new epoch starts its sequence at 0), as Kafka's
    /// `maybeUpdateProducerEpoch`. The fencing of a transaction writes its
    /// abort markers with the bumped epoch, so afterwards the old epoch's
    /// writes are refused here.
    pub fn observe_epoch(&mut self, producer_id: i64, epoch: i16, now_ms: i64) {
        if producer_id < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(|| ProducerEntry {
                epoch,
                batches: VecDeque::new(),
                last_write_ms: now_ms,
            });
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
        entry.last_write_ms = entry.last_write_ms.max(now_ms);
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

    /// Whether a marker of `producer_id` from the coordinator of
    /// `coordinator_epoch` may be written: not when a later coordinator
    /// (a higher epoch) already wrote one (Kafka's checkCoordinatorEpoch;
    /// the broker answers TRANSACTION_COORDINATOR_FENCED).
    pub fn coordinator_current(&self, producer_id: i64, coordinator_epoch: i32) -> bool {
        self.coordinator_epochs
            .get(&producer_id)
            .is_none_or(|known| *known <= coordinator_epoch)
    }

    /// Records the coordinator epoch of a marker written (or replayed).
    pub fn record_coordinator_epoch(&mut self, producer_id: i64, coordinator_epoch: i32) {
        if producer_id < 0 {
            return;
        }
        let known = self
            .coordinator_epochs
            .entry(producer_id)
            .or_insert(coordinator_epoch);
        *known = (*known).max(coordinator_epoch);
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
        // The coordinator epoch goes with the producer (Kafka keeps it in
        // the producer's entry).
        let producers = &self.producers;
        self.coordinator_epochs
            .retain(|id, _| producers.contains_key(id) || ongoing.contains_key(id));
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
mod tests;
