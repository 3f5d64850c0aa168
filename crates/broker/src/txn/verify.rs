//! Produce verification (KIP-890 part 1) as a pure table: which epoch each
//! transactional producer id is at, and which partitions its ongoing
//! transaction holds. The coordinator feeds it what it stores; the produce
//! path asks it about each transactional batch.
//!
//! The order of the checks is Kafka's: the producer epoch first, then the
//! transaction. A producer fenced by a newer one (InitProducerId with the same
//! transactional id) must hear INVALID_PRODUCER_EPOCH for a batch with its old
//! epoch — a fatal error for it — whether or not the new producer has a
//! transaction open; INVALID_TXN_STATE / TRANSACTION_ABORTABLE, which clients
//! treat as abortable, would let the zombie carry on (librdkafka 0103).

use std::collections::{BTreeSet, HashMap};

/// Why a transactional produce is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProduceRefusal {
    /// An epoch older than the producer id's current one: INVALID_PRODUCER_EPOCH.
    Fenced,
    /// No ongoing transaction holds the partition (KIP-890 part 1).
    NotInTransaction,
}

/// One transactional producer id.
#[derive(Debug)]
struct ProducerEntry {
    /// The producer id's current epoch, as last stored by the coordinator.
    epoch: i16,
    /// Partitions of the ongoing transaction at that epoch (empty: none).
    partitions: BTreeSet<(String, i32)>,
}

/// Every transactional producer id this coordinator knows, by id.
#[derive(Debug, Default)]
pub struct ProduceVerifier {
    /// Producer id → its epoch and ongoing transaction. One entry per
    /// transactional id the coordinator holds, removed when it expires.
    producers: HashMap<i64, ProducerEntry>,
}

impl ProduceVerifier {
    /// The producer id is at `epoch` with no transaction open (InitProducerId,
    /// a fence, EndTxn, a timed-out transaction aborted).
    pub fn set_epoch(&mut self, producer_id: i64, epoch: i16) {
        self.producers.insert(
            producer_id,
            ProducerEntry {
                epoch,
                partitions: BTreeSet::new(),
            },
        );
    }

    /// The producer id's transaction at `epoch` holds these partitions
    /// (AddPartitionsToTxn, or an ongoing transaction replayed at start).
    pub fn set_transaction(
        &mut self,
        producer_id: i64,
        epoch: i16,
        partitions: BTreeSet<(String, i32)>,
    ) {
        self.producers
            .insert(producer_id, ProducerEntry { epoch, partitions });
    }

    /// The producer id is gone (its transactional id expired, or it was
    /// replaced by a fresh producer id).
    pub fn forget(&mut self, producer_id: i64) {
        self.producers.remove(&producer_id);
    }

    /// Whether a transactional batch of this producer may go to the partition.
    pub fn verify(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ProduceRefusal> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Err(ProduceRefusal::NotInTransaction);
        };
        if producer_epoch < entry.epoch {
            return Err(ProduceRefusal::Fenced);
        }
        if producer_epoch == entry.epoch
            && entry.partitions.contains(&(topic.to_string(), partition))
        {
            return Ok(());
        }
        Err(ProduceRefusal::NotInTransaction)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: i64 = 7;

    fn holding(topic: &str, partition: i32) -> BTreeSet<(String, i32)> {
        [(topic.to_string(), partition)].into_iter().collect()
    }

    /// Events in order, then (epoch, partition) → the expected answer.
    #[test]
    fn the_epoch_is_checked_before_the_transaction() {
        type Step = fn(&mut ProduceVerifier);
        /// Name, events, then the batch's epoch and partition, and the answer.
        type Case = (
            &'static str,
            &'static [Step],
            i16,
            i32,
            Result<(), ProduceRefusal>,
        );
        let cases: &[Case] = &[
            (
                "in its transaction",
                &[|v| v.set_transaction(PID, 0, holding("t", 0))],
                0,
                0,
                Ok(()),
            ),
            (
                "a partition not added",
                &[|v| v.set_transaction(PID, 0, holding("t", 0))],
                0,
                1,
                Err(ProduceRefusal::NotInTransaction),
            ),
            (
                "after EndTxn",
                &[
                    |v| v.set_transaction(PID, 0, holding("t", 0)),
                    |v| v.set_epoch(PID, 0),
                ],
                0,
                0,
                Err(ProduceRefusal::NotInTransaction),
            ),
            (
                // librdkafka 0103 "produce after fence": the new producer
                // has no transaction yet; the zombie is still fenced.
                "fenced, the new producer idle",
                &[
                    |v| v.set_transaction(PID, 0, holding("t", 0)),
                    |v| v.set_epoch(PID, 1),
                ],
                0,
                0,
                Err(ProduceRefusal::Fenced),
            ),
            (
                "fenced after a committed transaction",
                &[
                    |v| v.set_transaction(PID, 0, holding("t", 0)),
                    |v| v.set_epoch(PID, 0),
                    |v| v.set_epoch(PID, 1),
                ],
                0,
                0,
                Err(ProduceRefusal::Fenced),
            ),
            (
                "fenced, the new producer in a transaction",
                &[
                    |v| v.set_epoch(PID, 1),
                    |v| v.set_transaction(PID, 1, holding("t", 0)),
                ],
                0,
                0,
                Err(ProduceRefusal::Fenced),
            ),
            (
                "unknown producer id",
                &[],
                0,
                0,
                Err(ProduceRefusal::NotInTransaction),
            ),
            (
                "forgotten",
                &[|v| v.set_epoch(PID, 3), |v| v.forget(PID)],
                0,
                0,
                Err(ProduceRefusal::NotInTransaction),
            ),
        ];
        for (name, steps, epoch, partition, expected) in cases {
            let mut verifier = ProduceVerifier::default();
            for step in steps.iter() {
                step(&mut verifier);
            }
            assert_eq!(
                verifier.verify(PID, *epoch, "t", *partition),
                *expected,
                "{name}"
            );
        }
    }
}
