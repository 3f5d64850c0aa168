//! The pure state machine of one transactional id (Kafka 4.0's
//! `TransactionMetadata` with transaction version 1). No I/O: every event
//! takes `now` in milliseconds and either changes the metadata or answers a
//! Kafka error code. The runtime (`coordinator`) stores the metadata after
//! each change and writes the markers the Prepare states ask for.
//!
//! ```text
//!            add partitions                 EndTxn
//!   Empty ─────────────────▶ Ongoing ─────────────────▶ PrepareCommit ─▶ CompleteCommit
//!     ▲                       │   │                   ▶ PrepareAbort  ─▶ CompleteAbort
//!     │ InitProducerId        │   └─ timeout / fence ─▶ PrepareEpochFence ─▶ PrepareAbort
//!     └───────────────────────┴─ (from Complete*, Empty)
//!   Empty/Complete* idle for transactional.id.expiration.ms ─▶ Dead (tombstone)
//! ```

use std::collections::BTreeSet;

use crate::errors::KafkaError;

/// The states of Kafka's `TransactionState`, with their stored ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TxnState {
    Empty,
    Ongoing,
    PrepareCommit,
    PrepareAbort,
    CompleteCommit,
    CompleteAbort,
    Dead,
    PrepareEpochFence,
}

impl TxnState {
    /// Every state, for filters.
    pub const ALL: [TxnState; 8] = [
        TxnState::Empty,
        TxnState::Ongoing,
        TxnState::PrepareCommit,
        TxnState::PrepareAbort,
        TxnState::CompleteCommit,
        TxnState::CompleteAbort,
        TxnState::Dead,
        TxnState::PrepareEpochFence,
    ];

    /// The id stored in TransactionLogValue (`TransactionState.id`).
    pub fn code(self) -> i8 {
        match self {
            TxnState::Empty => 0,
            TxnState::Ongoing => 1,
            TxnState::PrepareCommit => 2,
            TxnState::PrepareAbort => 3,
            TxnState::CompleteCommit => 4,
            TxnState::CompleteAbort => 5,
            TxnState::Dead => 6,
            TxnState::PrepareEpochFence => 7,
        }
    }

    /// The state of a stored id.
    pub fn from_code(code: i8) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.code() == code)
    }

    /// The name DescribeTransactions / ListTransactions use.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    /// The state named `name` (case-sensitive, as Kafka).
    pub fn from_name(name: &str) -> Option<TxnState> {
        TxnState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Prepare states: markers are being written.
    pub fn is_preparing(self) -> bool {
        matches!(
            self,
            TxnState::PrepareCommit | TxnState::PrepareAbort | TxnState::PrepareEpochFence
        )
    }
}

/// What InitProducerId does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InitStep {
    /// The metadata holds the producer id and epoch to answer with; store it.
    Ready,
    /// The epoch is exhausted: call `rotate_producer_id` with a fresh id,
    /// then `init_producer_id` again.
    NeedProducerId,
    /// An open transaction was fenced and is being aborted (state
    /// PrepareAbort, epoch bumped): store, write abort markers, complete;
    /// the client gets CONCURRENT_TRANSACTIONS and retries.
    AbortFirst,
}

/// What EndTxn does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndStep {
    /// Now PrepareCommit/PrepareAbort: store, write markers, complete.
    Prepared,
    /// A retry of an EndTxn that already completed: answer NONE.
    AlreadyComplete,
}

/// One transactional id's metadata (Kafka's TransactionMetadata).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TxnMetadata {
    /// The client's transactional.id.
    pub transactional_id: String,
    /// The producer id bound to it.
    pub producer_id: i64,
    /// The current epoch (-1 before the first InitProducerId).
    pub producer_epoch: i16,
    /// The producer's transaction.timeout.ms.
    pub timeout_ms: i32,
    /// Where the transaction is.
    pub state: TxnState,
    /// The partitions of the current transaction (topic, partition).
    pub partitions: BTreeSet<(String, i32)>,
    /// When the current transaction started (-1: none).
    pub start_ms: i64,
    /// When the metadata last changed (expiration counts from here).
    pub last_update_ms: i64,
}

/// The last epoch before a producer id must be replaced (Kafka keeps
/// `Short.MAX_VALUE` itself out of use).
const EPOCH_MAX: i16 = i16::MAX - 1;

impl TxnMetadata {
    /// A transactional id seen for the first time: `init_producer_id` gives
    /// it epoch 0.
    pub fn new(transactional_id: &str, producer_id: i64, timeout_ms: i32, now: i64) -> Self {
        TxnMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            producer_epoch: -1,
            timeout_ms,
            state: TxnState::Empty,
            partitions: BTreeSet::new(),
            start_ms: -1,
            last_update_ms: now,
        }
    }

    /// Checks the producer id and epoch a request carries.
    fn check_producer(&self, producer_id: i64, producer_epoch: i16) -> Result<(), KafkaError> {
        if producer_id != self.producer_id || self.state == TxnState::Dead {
            Err(KafkaError::InvalidProducerIdMapping)
        } else if producer_epoch != self.producer_epoch {
            Err(KafkaError::ProducerFenced)
        } else {
            Ok(())
        }
    }

    /// InitProducerId. `expected` is the (producer id, epoch) a KIP-360
    /// client (v3+) already has; it must be the current one.
    pub fn init_producer_id(
        &mut self,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
        now: i64,
    ) -> Result<InitStep, KafkaError> {
        if self.state.is_preparing() {
            return Err(KafkaError::ConcurrentTransactions);
        }
        if let Some((producer_id, epoch)) = expected {
            if producer_id != self.producer_id || epoch != self.producer_epoch {
                return Err(KafkaError::ProducerFenced);
            }
        }
        if self.state == TxnState::Ongoing {
            self.fence(now)?;
            self.abort_fenced(now);
            return Ok(InitStep::AbortFirst);
        }
        if self.producer_epoch >= EPOCH_MAX {
            return Ok(InitStep::NeedProducerId);
        }
        self.producer_epoch += 1;
        self.timeout_ms = timeout_ms;
        self.state = TxnState::Empty;
        self.partitions.clear();
        self.start_ms = -1;
        self.last_update_ms = now;
        Ok(InitStep::Ready)
    }

    /// Binds a fresh producer id (its epoch starts at -1, so the next
    /// `init_producer_id` answers epoch 0).
    pub fn rotate_producer_id(&mut self, producer_id: i64) {
        self.producer_id = producer_id;
        self.producer_epoch = -1;
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn. Ok(true) if the metadata
    /// changed (store it), Ok(false) if every partition was already there.
    pub fn add_partitions(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        now: i64,
    ) -> Result<bool, KafkaError> {
        self.check_producer(producer_id, producer_epoch)?;
        if self.state.is_preparing() {
            return Err(KafkaError::ConcurrentTransactions);
        }
        if self.state == TxnState::Ongoing && partitions.iter().all(|p| self.partitions.contains(p))
        {
            return Ok(false);
        }
        if self.state != TxnState::Ongoing {
            self.partitions.clear();
            self.start_ms = now;
        }
        self.partitions.extend(partitions.iter().cloned());
        self.state = TxnState::Ongoing;
        self.last_update_ms = now;
        Ok(true)
    }

    /// EndTxn from the producer.
    pub fn end(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        now: i64,
    ) -> Result<EndStep, KafkaError> {
        self.check_producer(producer_id, producer_epoch)?;
        match (self.state, commit) {
            (TxnState::Ongoing, _) => {
                self.state = if commit {
                    TxnState::PrepareCommit
                } else {
                    TxnState::PrepareAbort
                };
                self.last_update_ms = now;
                Ok(EndStep::Prepared)
            }
            (TxnState::CompleteCommit, true) | (TxnState::CompleteAbort, false) => {
                Ok(EndStep::AlreadyComplete)
            }
            (TxnState::PrepareCommit, true) | (TxnState::PrepareAbort, false) => {
                Err(KafkaError::ConcurrentTransactions)
            }
            (TxnState::PrepareEpochFence, _) => Err(KafkaError::ConcurrentTransactions),
            _ => Err(KafkaError::InvalidTxnState),
        }
    }

    /// Fences the producer of an open transaction (a new InitProducerId or
    /// the timeout): the epoch is bumped so the old producer's requests fail.
    pub fn fence(&mut self, now: i64) -> Result<(), KafkaError> {
        if self.state != TxnState::Ongoing {
            return Err(KafkaError::InvalidTxnState);
        }
        if self.producer_epoch < EPOCH_MAX {
            self.producer_epoch += 1;
        }
        self.state = TxnState::PrepareEpochFence;
        self.last_update_ms = now;
        Ok(())
    }

    /// After `fence`: the transaction is aborted with the new epoch.
    pub fn abort_fenced(&mut self, now: i64) {
        assert_eq!(
            self.state,
            TxnState::PrepareEpochFence,
            "abort without fence"
        );
        self.state = TxnState::PrepareAbort;
        self.last_update_ms = now;
    }

    /// Markers are durable: PrepareCommit → CompleteCommit, PrepareAbort →
    /// CompleteAbort. The partitions are forgotten.
    pub fn complete(&mut self, now: i64) {
        self.state = match self.state {
            TxnState::PrepareCommit => TxnState::CompleteCommit,
            TxnState::PrepareAbort => TxnState::CompleteAbort,
            other => panic!("complete in state {other:?}"),
        };
        self.partitions.clear();
        self.last_update_ms = now;
    }

    /// An open transaction older than its timeout.
    pub fn timed_out(&self, now: i64) -> bool {
        self.state == TxnState::Ongoing
            && self.start_ms >= 0
            && now.saturating_sub(self.start_ms) > i64::from(self.timeout_ms)
    }

    /// Idle without a transaction for `expiration_ms`: becomes Dead (the
    /// runtime writes a tombstone and forgets it).
    pub fn expire(&mut self, now: i64, expiration_ms: i64) -> bool {
        let idle = matches!(
            self.state,
            TxnState::Empty | TxnState::CompleteCommit | TxnState::CompleteAbort
        );
        if idle && now.saturating_sub(self.last_update_ms) > expiration_ms {
            self.state = TxnState::Dead;
            self.last_update_ms = now;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests;
