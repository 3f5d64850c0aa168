//! Table-driven tests of the transaction state machine with a controlled
//! clock: each step is an event at a time and the expected result and state.

use super::*;
use crate::error_codes::*;

/// One event of a scenario.
#[derive(Clone, Debug)]
enum Event {
    Init(Option<(i64, i16)>),
    Add(i64, i16, &'static [(&'static str, i32)]),
    End(i64, i16, bool),
    Complete,
    Timeout,
    Expire(i64),
}

/// What an event should produce.
#[derive(Clone, Debug, PartialEq)]
enum Expect {
    Init(InitStep),
    Added(bool),
    Ended(EndStep),
    Done,
    TimedOut(bool),
    Expired(bool),
    Error(i16),
}

fn parts(list: &[(&str, i32)]) -> Vec<(String, i32)> {
    list.iter().map(|(t, p)| (t.to_string(), *p)).collect()
}

/// Runs (time, event, expected result, expected state, expected epoch).
fn run(steps: &[(i64, Event, Expect, TxnState, i16)]) -> TxnMetadata {
    let mut txn = TxnMetadata::new("t", 7, 60_000, 0);
    for (i, (now, event, expected, state, epoch)) in steps.iter().enumerate() {
        let now = *now;
        let result = match event.clone() {
            Event::Init(expected) => txn
                .init_producer_id(60_000, expected, now)
                .map(Expect::Init),
            Event::Add(pid, epoch, list) => txn
                .add_partitions(pid, epoch, &parts(list), now)
                .map(Expect::Added),
            Event::End(pid, epoch, commit) => txn.end(pid, epoch, commit, now).map(Expect::Ended),
            Event::Complete => {
                txn.complete(now);
                Ok(Expect::Done)
            }
            Event::Timeout => {
                let out = txn.timed_out(now);
                if out {
                    txn.fence(now).map(|()| {
                        txn.abort_fenced(now);
                        Expect::TimedOut(true)
                    })
                } else {
                    Ok(Expect::TimedOut(false))
                }
            }
            Event::Expire(expiration) => Ok(Expect::Expired(txn.expire(now, expiration))),
        };
        let got = result.unwrap_or_else(|error| Expect::Error(error.code()));
        assert_eq!(&got, expected, "step {i}: {event:?}");
        assert_eq!(txn.state, *state, "step {i}: state after {event:?}");
        assert_eq!(
            txn.producer_epoch, *epoch,
            "step {i}: epoch after {event:?}"
        );
    }
    txn
}

use Event as E;
use Expect as X;
use TxnState as S;

const P0: &[(&str, i32)] = &[("a", 0)];
const P01: &[(&str, i32)] = &[("a", 0), ("a", 1)];

#[test]
fn commit_then_abort() {
    let txn = run(&[
        (0, E::Init(None), X::Init(InitStep::Ready), S::Empty, 0),
        (1, E::Add(7, 0, P0), X::Added(true), S::Ongoing, 0),
        (2, E::Add(7, 0, P0), X::Added(false), S::Ongoing, 0),
        (3, E::Add(7, 0, P01), X::Added(true), S::Ongoing, 0),
        (
            4,
            E::End(7, 0, true),
            X::Ended(EndStep::Prepared),
            S::PrepareCommit,
            0,
        ),
        // Anything while markers are written waits.
        (
            5,
            E::Add(7, 0, P0),
            X::Error(CONCURRENT_TRANSACTIONS),
            S::PrepareCommit,
            0,
        ),
        (
            5,
            E::End(7, 0, true),
            X::Error(CONCURRENT_TRANSACTIONS),
            S::PrepareCommit,
            0,
        ),
        (
            5,
            E::End(7, 0, false),
            X::Error(INVALID_TXN_STATE),
            S::PrepareCommit,
            0,
        ),
        (
            5,
            E::Init(None),
            X::Error(CONCURRENT_TRANSACTIONS),
            S::PrepareCommit,
            0,
        ),
        (6, E::Complete, X::Done, S::CompleteCommit, 0),
        // A retried EndTxn succeeds; the opposite one is refused.
        (
            7,
            E::End(7, 0, true),
            X::Ended(EndStep::AlreadyComplete),
            S::CompleteCommit,
            0,
        ),
        (
            7,
            E::End(7, 0, false),
            X::Error(INVALID_TXN_STATE),
            S::CompleteCommit,
            0,
        ),
        (8, E::Add(7, 0, P0), X::Added(true), S::Ongoing, 0),
        (
            9,
            E::End(7, 0, false),
            X::Ended(EndStep::Prepared),
            S::PrepareAbort,
            0,
        ),
        (10, E::Complete, X::Done, S::CompleteAbort, 0),
    ]);
    assert!(txn.partitions.is_empty());
    assert_eq!(txn.start_ms, 8);
}

#[test]
fn bad_producers_are_refused() {
    run(&[
        (0, E::Init(None), X::Init(InitStep::Ready), S::Empty, 0),
        (
            1,
            E::End(7, 0, true),
            X::Error(INVALID_TXN_STATE),
            S::Empty,
            0,
        ),
        (
            1,
            E::Add(8, 0, P0),
            X::Error(INVALID_PRODUCER_ID_MAPPING),
            S::Empty,
            0,
        ),
        (1, E::Add(7, 1, P0), X::Error(PRODUCER_FENCED), S::Empty, 0),
        (
            1,
            E::End(8, 0, false),
            X::Error(INVALID_PRODUCER_ID_MAPPING),
            S::Empty,
            0,
        ),
        (
            2,
            E::Init(Some((7, 3))),
            X::Error(PRODUCER_FENCED),
            S::Empty,
            0,
        ),
        (
            2,
            E::Init(Some((7, 0))),
            X::Init(InitStep::Ready),
            S::Empty,
            1,
        ),
        // The old epoch is fenced everywhere.
        (3, E::Add(7, 0, P0), X::Error(PRODUCER_FENCED), S::Empty, 1),
    ]);
}

#[test]
fn new_producer_fences_and_aborts_the_open_transaction() {
    run(&[
        (0, E::Init(None), X::Init(InitStep::Ready), S::Empty, 0),
        (1, E::Add(7, 0, P01), X::Added(true), S::Ongoing, 0),
        (
            2,
            E::Init(None),
            X::Init(InitStep::AbortFirst),
            S::PrepareAbort,
            1,
        ),
        (
            3,
            E::Init(None),
            X::Error(CONCURRENT_TRANSACTIONS),
            S::PrepareAbort,
            1,
        ),
        (
            3,
            E::End(7, 0, true),
            X::Error(PRODUCER_FENCED),
            S::PrepareAbort,
            1,
        ),
        (4, E::Complete, X::Done, S::CompleteAbort, 1),
        (5, E::Init(None), X::Init(InitStep::Ready), S::Empty, 2),
        (6, E::Add(7, 1, P0), X::Error(PRODUCER_FENCED), S::Empty, 2),
        (6, E::Add(7, 2, P0), X::Added(true), S::Ongoing, 2),
    ]);
}

#[test]
fn timeout_fences_and_aborts() {
    run(&[
        (0, E::Init(None), X::Init(InitStep::Ready), S::Empty, 0),
        (1_000, E::Timeout, X::TimedOut(false), S::Empty, 0),
        (1_000, E::Add(7, 0, P0), X::Added(true), S::Ongoing, 0),
        (61_000, E::Timeout, X::TimedOut(false), S::Ongoing, 0),
        (61_001, E::Timeout, X::TimedOut(true), S::PrepareAbort, 1),
        (61_002, E::Complete, X::Done, S::CompleteAbort, 1),
        // The abandoned producer learns it was fenced.
        (
            61_003,
            E::End(7, 0, true),
            X::Error(PRODUCER_FENCED),
            S::CompleteAbort,
            1,
        ),
    ]);
}

#[test]
fn idle_ids_expire_but_not_during_a_transaction() {
    run(&[
        (0, E::Init(None), X::Init(InitStep::Ready), S::Empty, 0),
        (10, E::Add(7, 0, P0), X::Added(true), S::Ongoing, 0),
        (1_000, E::Expire(100), X::Expired(false), S::Ongoing, 0),
        (
            1_001,
            E::End(7, 0, true),
            X::Ended(EndStep::Prepared),
            S::PrepareCommit,
            0,
        ),
        (
            2_000,
            E::Expire(100),
            X::Expired(false),
            S::PrepareCommit,
            0,
        ),
        (2_001, E::Complete, X::Done, S::CompleteCommit, 0),
        (
            2_101,
            E::Expire(100),
            X::Expired(false),
            S::CompleteCommit,
            0,
        ),
        (2_102, E::Expire(100), X::Expired(true), S::Dead, 0),
        (
            2_103,
            E::Add(7, 0, P0),
            X::Error(INVALID_PRODUCER_ID_MAPPING),
            S::Dead,
            0,
        ),
    ]);
}

#[test]
fn exhausted_epoch_needs_a_new_producer_id() {
    let mut txn = TxnMetadata::new("t", 7, 1000, 0);
    txn.producer_epoch = i16::MAX - 1;
    assert_eq!(
        txn.init_producer_id(1000, None, 1),
        Ok(InitStep::NeedProducerId)
    );
    txn.rotate_producer_id(8);
    assert_eq!(txn.init_producer_id(1000, None, 1), Ok(InitStep::Ready));
    assert_eq!((txn.producer_id, txn.producer_epoch), (8, 0));
}

#[test]
fn state_codes_and_names_round_trip() {
    for state in TxnState::ALL {
        assert_eq!(TxnState::from_code(state.code()), Some(state));
        assert_eq!(TxnState::from_name(state.name()), Some(state));
    }
    assert_eq!(TxnState::from_code(8), None);
    assert_eq!(TxnState::PrepareEpochFence.code(), 7);
}
