//! The producer-state rules with a controlled clock: batches in, verdicts
//! and state out.

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
            Reject(SequenceError::OutOfOrderSequenceNumber),
        ), // gap
        (batch(7, 0, 47, 1), Append),
        (
            batch(7, 1, 5, 1),
            Reject(SequenceError::OutOfOrderSequenceNumber),
        ), // new epoch not at 0
        (batch(7, 1, 0, 2), Append),
        (
            batch(7, 0, 48, 1),
            Reject(SequenceError::InvalidProducerEpoch),
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
        SequenceCheck::Reject(SequenceError::OutOfOrderSequenceNumber)
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

/// Kafka's checkCoordinatorEpoch: a marker from an older coordinator than
/// one that already wrote for the producer is refused; the same or a later
/// one is not; the epoch goes when the producer expires.
#[test]
fn a_marker_from_an_older_coordinator_is_refused() {
    let mut state = ProducerStateManager::default();
    assert!(state.coordinator_current(7, 0), "no marker yet");
    state.record_coordinator_epoch(7, 3);
    assert!(!state.coordinator_current(7, 2));
    assert!(state.coordinator_current(7, 3));
    assert!(state.coordinator_current(7, 4));
    assert!(state.coordinator_current(8, 0), "another producer");
    state.record_coordinator_epoch(7, 1);
    assert!(!state.coordinator_current(7, 2), "never goes back");
    state.record_coordinator_epoch(-1, 9);
    assert!(
        !state.coordinator_epochs.contains_key(&-1),
        "not for producer id -1"
    );
    // Producer 7 has no batches: it expires, and its coordinator epoch with it.
    state.record(&batch(8, 0, 0, 1), 0, 1_000);
    state.record_coordinator_epoch(8, 2);
    assert_eq!(state.expire(1_000, 100), 0);
    assert!(!state.coordinator_current(8, 1), "producer 8 is kept");
    assert!(
        state.coordinator_current(7, 0),
        "producer 7's epoch is gone"
    );
}

/// docs/FAULTS.md #8: the fencing's abort marker carries the bumped epoch;
/// after it, the fenced epoch's coordinator batches are stale, the new
/// epoch's are not, and a client batch of the new epoch starts at 0.
#[test]
fn a_marker_with_a_newer_epoch_makes_the_older_epoch_stale() {
    let mut state = ProducerStateManager::default();
    assert!(
        !state.epoch_is_stale(9, 0),
        "an unknown producer is not stale"
    );
    state.record(&batch(9, 3, 0, 2), 0, 0);
    state.observe_epoch(9, 3, 10); // a commit marker of the same epoch
    assert!(!state.epoch_is_stale(9, 3));
    assert_eq!(state.check(&batch(9, 3, 2, 1)), SequenceCheck::Append);
    state.observe_epoch(9, 4, 20); // the fencing's abort marker
    assert!(state.epoch_is_stale(9, 3), "the fenced epoch is stale");
    assert!(!state.epoch_is_stale(9, 4));
    assert_eq!(
        state.check(&batch(9, 3, 2, 1)),
        SequenceCheck::Reject(SequenceError::InvalidProducerEpoch)
    );
    assert_eq!(state.check(&batch(9, 4, 0, 1)), SequenceCheck::Append);
    state.observe_epoch(9, 2, 30); // an older epoch never lowers it
    assert!(state.epoch_is_stale(9, 3));
    // A producer first seen through a coordinator batch.
    state.observe_epoch(11, 1, 40);
    assert!(state.epoch_is_stale(11, 0));
    assert_eq!(state.check(&batch(11, 1, 0, 1)), SequenceCheck::Append);
}
