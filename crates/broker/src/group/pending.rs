//! Transactional offset commits waiting for their producer's marker
//! (Kafka's `GroupMetadata.pendingTransactionalOffsetCommits`).
//!
//! TxnOffsetCommit writes a transaction's offsets into the group's
//! `__consumer_offsets` partition as a transactional batch; they count only
//! once the producer's COMMIT marker is written there, and an ABORT drops
//! them. Until then OffsetFetch with `require_stable` answers
//! UNSTABLE_OFFSET_COMMIT for those partitions (KIP-447). The pending set
//! belongs to the partition's leader, so a node that comes to lead a
//! `__consumer_offsets` partition rebuilds it from the batches that have no
//! marker yet ([`super::store::replay`]); otherwise a marker that arrives
//! after a coordinator failover would find nothing to commit.

use std::collections::{BTreeMap, HashMap};

use super::state::CommittedOffset;

/// Offsets of one group: (topic, partition) → offset, in commit order.
pub type GroupOffsets = Vec<((String, i32), CommittedOffset)>;

/// Pending offsets by producer id, then by group.
#[derive(Debug, Default)]
pub struct PendingTxnOffsets {
    by_producer: HashMap<i64, BTreeMap<String, GroupOffsets>>,
}

impl PendingTxnOffsets {
    /// Adds a TxnOffsetCommit's offsets (later ones for the same partition
    /// win when they are materialized, as they come later in the list).
    pub fn add(&mut self, producer_id: i64, group_id: &str, offsets: GroupOffsets) {
        if offsets.is_empty() {
            return;
        }
        self.by_producer
            .entry(producer_id)
            .or_default()
            .entry(group_id.to_string())
            .or_default()
            .extend(offsets);
    }

    /// The producer's marker was written: removes its pending offsets of
    /// the groups `here` accepts (the groups of the `__consumer_offsets`
    /// partitions the marker was written to) and returns them to be
    /// committed (`commit`) or nothing (an abort drops them).
    pub fn complete(
        &mut self,
        producer_id: i64,
        commit: bool,
        here: impl Fn(&str) -> bool,
    ) -> Vec<(String, GroupOffsets)> {
        let Some(groups) = self.by_producer.get_mut(&producer_id) else {
            return Vec::new();
        };
        let ended: Vec<String> = groups.keys().filter(|g| here(g)).cloned().collect();
        let done: Vec<(String, GroupOffsets)> = ended
            .into_iter()
            .filter_map(|group| groups.remove(&group).map(|offsets| (group, offsets)))
            .collect();
        if groups.is_empty() {
            self.by_producer.remove(&producer_id);
        }
        if commit {
            done
        } else {
            Vec::new()
        }
    }

    /// Whether any transaction has pending offsets of `group_id` for
    /// (`topic`, `partition`).
    pub fn has(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.by_producer.values().any(|groups| {
            groups.get(group_id).is_some_and(|offsets| {
                offsets
                    .iter()
                    .any(|((t, p), _)| t == topic && *p == partition)
            })
        })
    }

    /// Takes in what a replay found.
    pub fn merge(&mut self, other: PendingTxnOffsets) {
        for (producer_id, groups) in other.by_producer {
            for (group_id, offsets) in groups {
                self.add(producer_id, &group_id, offsets);
            }
        }
    }

    /// Forgets the groups `gone` names (their partition is no longer led
    /// here; its next leader rebuilds them from the log).
    pub fn drop_groups(&mut self, gone: impl Fn(&str) -> bool) {
        self.by_producer.retain(|_, groups| {
            groups.retain(|group, _| !gone(group));
            !groups.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offset(value: i64) -> CommittedOffset {
        CommittedOffset {
            offset: value,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: 0,
        }
    }

    fn at(topic: &str, partition: i32, value: i64) -> ((String, i32), CommittedOffset) {
        ((topic.to_string(), partition), offset(value))
    }

    #[test]
    fn a_commit_marker_returns_the_offsets_of_the_groups_it_reached() {
        let mut pending = PendingTxnOffsets::default();
        pending.add(7, "a", vec![at("t", 0, 5)]);
        pending.add(7, "b", vec![at("t", 1, 9)]);
        assert!(pending.has("a", "t", 0));
        assert!(!pending.has("a", "t", 1));
        let done = pending.complete(7, true, |g| g == "a");
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].0, "a");
        assert_eq!(done[0].1[0].1.offset, 5);
        assert!(!pending.has("a", "t", 0));
        assert!(pending.has("b", "t", 1), "b's partition got no marker yet");
        assert!(pending.complete(7, true, |_| true).len() == 1);
        assert!(!pending.has("b", "t", 1));
    }

    #[test]
    fn an_abort_drops_them_and_another_producer_is_untouched() {
        let mut pending = PendingTxnOffsets::default();
        pending.add(7, "a", vec![at("t", 0, 5)]);
        pending.add(8, "a", vec![at("t", 0, 6)]);
        assert!(pending.complete(7, false, |_| true).is_empty());
        assert!(pending.has("a", "t", 0), "producer 8's offsets stay");
        assert!(pending.complete(9, true, |_| true).is_empty());
        pending.drop_groups(|g| g == "a");
        assert!(!pending.has("a", "t", 0));
        assert!(pending.complete(8, true, |_| true).is_empty());
    }
}
