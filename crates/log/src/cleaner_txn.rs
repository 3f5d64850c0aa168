//! Transactions as the cleaner sees them (Kafka's `CleanedTransactionMetadata`):
//! what the broker tells a pass about the partition's transactions, and the
//! state a pass keeps while it walks batches in offset order.
//!
//! The log itself does not know which transactions were aborted (a marker
//! says so only after the transaction's data); the producer state
//! (`producer_state`, held by the broker per partition) does, and the broker
//! hands its aborted ranges in. Walking batches in offset order, an
//! aborted transaction becomes "ongoing" for its producer at the first batch
//! that reaches its first offset; every transactional data batch of that
//! producer until its ABORT marker is aborted data. Any other transactional
//! data batch belongs to a committed transaction (an open one cannot be below
//! the cleaner's upper bound, the last stable offset). An aborted transaction
//! also ends at its marker's offset when the marker is not met: the broker's
//! list may still hold one whose marker a pass removed. A marker may go once
//! no data batch of its transaction (with records) was seen in the pass, that
//! is once the transaction's data is gone from the log (an earlier pass
//! removed it).

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use crate::batch::BatchHeader;
use crate::control::ControlType;
use crate::producer_state::AbortedTransaction;

/// What a cleaning pass needs to know of the partition's transactions.
#[derive(Clone, Debug, Default)]
pub struct CleanerTxnInput {
    /// Aborted transactions that start below the cleaner's upper bound (any
    /// order; a superset is harmless).
    pub aborted: Vec<AbortedTransaction>,
    /// Producer id → last offset of its newest batch, for every producer the
    /// producer state still tracks (Kafka's `lastRecordsOfActiveProducers`).
    /// That batch is kept, empty if need be, so that replaying the log
    /// rebuilds the producer's latest sequence and epoch.
    pub last_batch_offsets: HashMap<i64, i64>,
}

impl CleanerTxnInput {
    /// Whether `header` is the newest batch of a producer still tracked.
    pub(crate) fn is_last_batch_of_producer(&self, header: &BatchHeader) -> bool {
        header.producer_id >= 0
            && self.last_batch_offsets.get(&header.producer_id) == Some(&header.last_offset())
    }
}

/// An aborted transaction under way in the walk.
#[derive(Clone, Copy, Debug)]
struct OngoingAbort {
    /// Offset of its ABORT marker: no batch after it belongs to it.
    marker_offset: i64,
    /// Whether a data batch of it was seen in this pass.
    batch_seen: bool,
}

/// The transaction state of one walk over batches in offset order.
#[derive(Debug)]
pub(crate) struct TxnTracker {
    /// Aborted transactions by first offset; those before `next` have begun.
    aborted: Vec<AbortedTransaction>,
    /// Index of the first aborted transaction not yet begun.
    next: usize,
    /// Producers with an aborted transaction under way.
    ongoing_aborted: HashMap<i64, OngoingAbort>,
    /// Producers with a committed transaction of which a batch was seen.
    ongoing_committed: HashSet<i64>,
}

impl TxnTracker {
    pub(crate) fn new(aborted: &[AbortedTransaction]) -> TxnTracker {
        let mut aborted = aborted.to_vec();
        aborted.sort_by_key(|txn| (txn.first_offset, txn.last_offset));
        TxnTracker {
            aborted,
            next: 0,
            ongoing_aborted: HashMap::new(),
            ongoing_committed: HashSet::new(),
        }
    }

    /// Starts every aborted transaction whose first offset is at or below
    /// `offset`.
    fn begin_up_to(&mut self, offset: i64) {
        while let Some(txn) = self.aborted.get(self.next) {
            if txn.first_offset > offset {
                break;
            }
            let started = OngoingAbort {
                marker_offset: txn.last_offset,
                batch_seen: false,
            };
            match self.ongoing_aborted.entry(txn.producer_id) {
                Entry::Vacant(vacant) => {
                    vacant.insert(started);
                }
                Entry::Occupied(mut occupied)
                    if occupied.get().marker_offset < txn.first_offset =>
                {
                    occupied.insert(started);
                }
                Entry::Occupied(_) => {}
            }
            self.next += 1;
        }
    }

    /// Ends `producer_id`'s aborted transaction if its marker lies before
    /// `offset` without having been seen: the broker's list still had it
    /// after its marker was removed (a crash before the producer state was
    /// saved). Kafka rewrites its transaction index with each cleaned
    /// segment; the broker's list can lag, and a transaction left open here
    /// would take the producer's later, committed batches for aborted ones.
    fn end_passed(&mut self, producer_id: i64, offset: i64) {
        if self
            .ongoing_aborted
            .get(&producer_id)
            .is_some_and(|ongoing| ongoing.marker_offset < offset)
        {
            self.ongoing_aborted.remove(&producer_id);
        }
    }

    /// A data batch: returns true when it belongs to an aborted transaction
    /// (the whole batch is discarded and keys nothing). An empty batch (left
    /// by an earlier pass) counts as no data of its transaction: it holds
    /// nothing a marker must explain, and counting it would pin the marker
    /// for as long as the empty batch is kept (Kafka removes such batches in
    /// the next pass; ours may stay as the last batch of a group).
    pub(crate) fn on_data_batch(&mut self, header: &BatchHeader) -> bool {
        self.begin_up_to(header.last_offset());
        if !header.is_transactional() {
            return false;
        }
        self.end_passed(header.producer_id, header.base_offset);
        let has_records = header.record_count > 0;
        match self.ongoing_aborted.get_mut(&header.producer_id) {
            Some(ongoing) => {
                ongoing.batch_seen |= has_records;
                true
            }
            None => {
                if has_records {
                    self.ongoing_committed.insert(header.producer_id);
                }
                false
            }
        }
    }

    /// A control batch (`marker` is `None` for an empty one): ends its
    /// producer's transaction and returns whether the marker may be removed
    /// (before its delete horizon is considered): no batch of its transaction
    /// was seen in this pass. An empty control batch was already cleaned.
    pub(crate) fn on_control_batch(
        &mut self,
        header: &BatchHeader,
        marker: Option<ControlType>,
    ) -> bool {
        self.begin_up_to(header.last_offset());
        self.end_passed(header.producer_id, header.base_offset);
        match marker {
            None => true,
            Some(ControlType::Abort) => !self
                .ongoing_aborted
                .remove(&header.producer_id)
                .is_some_and(|ongoing| ongoing.batch_seen),
            Some(ControlType::Commit) => !self.ongoing_committed.remove(&header.producer_id),
            Some(ControlType::Other) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSACTIONAL: i16 = 1 << 4;
    const CONTROL: i16 = 1 << 5;

    fn header(producer_id: i64, base_offset: i64, attributes: i16) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 0,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
            record_count: 1,
        }
    }

    /// One step of a walk: a batch and what the tracker must answer.
    enum Step {
        /// (producer, offset, transactional) → aborted?
        Data(i64, i64, bool, bool),
        /// A transactional batch without records: (producer, offset) → aborted?
        Empty(i64, i64, bool),
        /// (producer, offset, marker) → removable?
        Marker(i64, i64, Option<ControlType>, bool),
    }

    /// Walks `steps` with `aborted` known and checks every answer.
    fn walk(aborted: &[AbortedTransaction], steps: &[Step]) {
        let mut tracker = TxnTracker::new(aborted);
        for (index, step) in steps.iter().enumerate() {
            match *step {
                Step::Data(producer, offset, transactional, aborted) => {
                    let attributes = if transactional { TRANSACTIONAL } else { 0 };
                    let got = tracker.on_data_batch(&header(producer, offset, attributes));
                    assert_eq!(got, aborted, "step {index}: data at {offset} aborted");
                }
                Step::Empty(producer, offset, aborted) => {
                    let mut empty = header(producer, offset, TRANSACTIONAL);
                    empty.record_count = 0;
                    let got = tracker.on_data_batch(&empty);
                    assert_eq!(
                        got, aborted,
                        "step {index}: empty batch at {offset} aborted"
                    );
                }
                Step::Marker(producer, offset, marker, removable) => {
                    let got = tracker.on_control_batch(
                        &header(producer, offset, TRANSACTIONAL | CONTROL),
                        marker,
                    );
                    assert_eq!(got, removable, "step {index}: marker at {offset} removable");
                }
            }
        }
    }

    #[test]
    fn aborted_data_is_discarded_and_markers_stay_while_their_data_was_seen() {
        use ControlType::*;
        use Step::*;
        let aborted = [
            AbortedTransaction {
                producer_id: 2,
                first_offset: 1,
                last_offset: 4,
            },
            AbortedTransaction {
                producer_id: 2,
                first_offset: 9,
                last_offset: 10,
            },
            AbortedTransaction {
                producer_id: 5,
                first_offset: 13,
                last_offset: 14,
            },
        ];
        walk(
            &aborted,
            &[
                Data(1, 0, true, false),  // committed txn of producer 1
                Data(2, 1, true, true),   // aborted txn of producer 2
                Data(3, 2, false, false), // plain data interleaved
                Data(2, 3, true, true),
                Marker(2, 4, Some(Abort), false), // its data was seen: kept
                Marker(1, 5, Some(Commit), false), // committed data seen: kept
                Data(2, 6, true, false),          // producer 2's next txn commits
                Marker(2, 7, Some(Commit), false),
                Marker(1, 8, Some(Commit), true), // no data of it seen: may go
                // Producer 2's second aborted txn left no data (an earlier
                // pass removed it): its marker may go.
                Marker(2, 10, Some(Abort), true),
                Marker(4, 11, Some(Other), false),
                Marker(4, 12, None, true),
                // Empty batches left by earlier passes hold no data: they
                // keep no marker.
                Empty(5, 13, true),
                Marker(5, 14, Some(Abort), true),
                Empty(6, 15, false),
                Marker(6, 16, Some(Commit), true),
            ],
        );
    }

    #[test]
    fn an_aborted_transaction_begins_at_the_batch_that_reaches_its_first_offset() {
        use Step::*;
        // The walk starts in the middle of the transaction (the map is built
        // from the first dirty segment on).
        let aborted = [AbortedTransaction {
            producer_id: 5,
            first_offset: 3,
            last_offset: 20,
        }];
        walk(
            &aborted,
            &[
                Data(5, 10, true, true),
                Marker(5, 20, Some(ControlType::Abort), false),
                Data(5, 21, true, false),
            ],
        );
    }

    #[test]
    fn an_aborted_transaction_whose_marker_is_gone_ends_at_the_marker_offset() {
        use Step::*;
        // The list still has a transaction whose marker (at 4) an earlier
        // pass removed, and a later one of the same producer.
        let aborted = [
            AbortedTransaction {
                producer_id: 8,
                first_offset: 1,
                last_offset: 4,
            },
            AbortedTransaction {
                producer_id: 8,
                first_offset: 9,
                last_offset: 11,
            },
        ];
        walk(
            &aborted,
            &[
                Data(8, 6, true, false), // committed, not aborted
                Marker(8, 7, Some(ControlType::Commit), false),
                Data(8, 9, true, true), // the next aborted one begins
                Data(8, 10, true, true),
                Marker(8, 11, Some(ControlType::Abort), false),
            ],
        );
        // Both transactions begin before the producer's next batch (whose
        // last offset reaches them): the later one replaces the stale one.
        let mut tracker = TxnTracker::new(&aborted);
        let mut wide = header(8, 9, TRANSACTIONAL);
        wide.last_offset_delta = 1;
        assert!(tracker.on_data_batch(&wide));
    }

    #[test]
    fn last_batch_of_a_tracked_producer() {
        let input = CleanerTxnInput {
            aborted: Vec::new(),
            last_batch_offsets: HashMap::from([(7, 12)]),
        };
        assert!(input.is_last_batch_of_producer(&header(7, 12, 0)));
        assert!(!input.is_last_batch_of_producer(&header(7, 11, 0)));
        assert!(!input.is_last_batch_of_producer(&header(8, 12, 0)));
        assert!(!input.is_last_batch_of_producer(&header(-1, 12, 0)));
    }
}
