//! The leader's view of its followers, as one pure state machine (Kafka's
//! `Partition`: the remote replicas' `ReplicaState`, the ISR states
//! `CommittedPartitionState` / `PendingExpandIsr` / `PendingShrinkIsr`,
//! `maybeExpandIsr`, `maybeShrinkIsr`, `maybeIncrementLeaderHW`). Times are
//! passed in; the runtime (`Partition`, the ISR task) gathers the inputs,
//! sends the AlterPartition this decides and publishes the high watermark.
//!
//! Rules:
//! - A follower's log end offset is the offset it asks for: with
//!   `sluice.flush.before.visible` it asks only for offsets after what it has
//!   fsynced, so the leader counts only durable offsets.
//! - A follower is caught up when it fetched the leader's end offset, or
//!   when its fetch reached the end the leader had at its previous fetch
//!   (Kafka's `lastCaughtUpTimeMs`); one that has not been caught up for
//!   `replica.lag.time.max.ms` leaves the ISR.
//! - A follower outside the ISR joins it once it has reached both the high
//!   watermark and the offset where this leader's epoch began, and only
//!   while the image shows its broker registered, unfenced and of the
//!   broker epoch its fetches carry (Kafka's `isReplicaIsrEligible`): a
//!   follower that stopped (controlled shutdown fences it) is never
//!   proposed, however caught up it was.
//! - A refused change is dropped at once (the high watermark no longer
//!   waits for a member it proposed: Kafka resets to the committed state on
//!   INELIGIBLE_REPLICA and the like), and the next one waits a moment.
//! - The ISR changes only through an AlterPartition the controller commits:
//!   until the image shows it, the committed ISR stays in force, and one
//!   change at a time is pending. While an expansion is pending the high
//!   watermark also waits for the joining follower (the maximal ISR).
//! - The high watermark is the smallest end offset among the leader and the
//!   maximal ISR's followers; it never moves back, and does not move at all
//!   while the committed ISR is smaller than the effective min ISR,
//!   min(`min.insync.replicas`, replica count) (Kafka's strict min ISR).

use std::collections::BTreeMap;

use crate::high_watermark::next_high_watermark;

/// What the leader knows of one follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FollowerProgress {
    /// The offset it fetched last (its counted end); -1 before its first
    /// fetch to this leader.
    pub log_end_offset: i64,
    /// When it was last caught up (ms); 0: never.
    pub last_caught_up_ms: i64,
    /// When it fetched last, and the leader's end offset then.
    last_fetch_ms: i64,
    last_fetch_leader_end: i64,
    /// The broker epoch its fetch carried (-1: not given).
    pub broker_epoch: i64,
}

impl FollowerProgress {
    fn unknown(last_caught_up_ms: i64) -> FollowerProgress {
        FollowerProgress {
            log_end_offset: -1,
            last_caught_up_ms,
            last_fetch_ms: 0,
            last_fetch_leader_end: -1,
            broker_epoch: -1,
        }
    }
}

/// The committed partition state the image gives a leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedState {
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
}

/// An ISR change the leader asked the controller for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IsrProposal {
    /// The whole new ISR, with each member's broker epoch (-1: unknown).
    pub isr: Vec<(i32, i64)>,
    /// The partition epoch it is based on (the controller refuses it when
    /// the partition changed since: INVALID_UPDATE_VERSION).
    pub partition_epoch: i32,
    pub leader_epoch: i32,
}

/// A leader's ISR state.
#[derive(Clone, Debug)]
pub struct LeaderIsr {
    node_id: i32,
    committed: CommittedState,
    /// The ISR asked for and not yet committed.
    pending: Option<Vec<i32>>,
    followers: BTreeMap<i32, FollowerProgress>,
    /// The log end offset when this leader's epoch began.
    epoch_start_offset: i64,
    /// After a refused change: no proposal before this time (ms).
    retry_at_ms: i64,
}

impl LeaderIsr {
    /// A leader that has just taken `committed.leader_epoch`: followers'
    /// ends are unknown; the in-sync ones count as caught up now (so they are
    /// not dropped before they had a chance to fetch), the others never.
    pub fn new(
        node_id: i32,
        committed: CommittedState,
        epoch_start_offset: i64,
        now_ms: i64,
    ) -> LeaderIsr {
        let followers = committed
            .replicas
            .iter()
            .filter(|r| **r != node_id)
            .map(|r| {
                let caught_up = if committed.isr.contains(r) { now_ms } else { 0 };
                (*r, FollowerProgress::unknown(caught_up))
            })
            .collect();
        LeaderIsr {
            node_id,
            committed,
            pending: None,
            followers,
            epoch_start_offset,
            retry_at_ms: 0,
        }
    }

    pub fn committed(&self) -> &CommittedState {
        &self.committed
    }

    pub fn epoch_start_offset(&self) -> i64 {
        self.epoch_start_offset
    }

    pub fn pending(&self) -> Option<&[i32]> {
        self.pending.as_deref()
    }

    pub fn follower(&self, replica: i32) -> Option<&FollowerProgress> {
        self.followers.get(&replica)
    }

    /// The image changed the partition within the same leader epoch (an
    /// ISR or replica change): the new committed state replaces the old,
    /// and a pending change is settled once the partition epoch moved.
    pub fn update_committed(&mut self, committed: CommittedState) {
        if committed.partition_epoch != self.committed.partition_epoch {
            self.pending = None;
        }
        self.followers
            .retain(|replica, _| committed.replicas.contains(replica));
        for replica in &committed.replicas {
            if *replica != self.node_id {
                self.followers
                    .entry(*replica)
                    .or_insert_with(|| FollowerProgress::unknown(0));
            }
        }
        self.committed = committed;
    }

    /// The controller answered the pending change (the image has the
    /// outcome): the next check may propose again.
    pub fn clear_pending(&mut self) {
        self.pending = None;
    }

    /// The controller refused the pending change, or did not answer: it is
    /// dropped (the maximal ISR is the committed one again), and nothing is
    /// proposed before `retry_at_ms`.
    pub fn refused(&mut self, retry_at_ms: i64) {
        self.pending = None;
        self.retry_at_ms = retry_at_ms;
    }

    /// The ISR change to ask for now, expansion first (`expansion`,
    /// `shrink`); `None` while one is pending or a refusal's pause lasts.
    pub fn next_change(
        &self,
        high_watermark: i64,
        leader_end: i64,
        now_ms: i64,
        lag_ms: i64,
        eligible: impl Fn(i32, i64) -> bool,
    ) -> Option<IsrProposal> {
        if now_ms < self.retry_at_ms {
            return None;
        }
        self.expansion(high_watermark, eligible)
            .or_else(|| self.shrink(leader_end, now_ms, lag_ms))
    }

    /// A follower's fetch at `fetch_offset`, when the leader's end offset is
    /// `leader_end` (Kafka's `Replica.updateFetchState`). False when
    /// `replica` is not a follower of this partition.
    pub fn on_fetch(
        &mut self,
        replica: i32,
        fetch_offset: i64,
        broker_epoch: i64,
        leader_end: i64,
        now_ms: i64,
    ) -> bool {
        let Some(follower) = self.followers.get_mut(&replica) else {
            return false;
        };
        if fetch_offset >= leader_end {
            follower.last_caught_up_ms = follower.last_caught_up_ms.max(now_ms);
        } else if fetch_offset >= follower.last_fetch_leader_end {
            follower.last_caught_up_ms = follower.last_caught_up_ms.max(follower.last_fetch_ms);
        }
        follower.last_fetch_leader_end = leader_end;
        follower.last_fetch_ms = now_ms;
        follower.log_end_offset = fetch_offset;
        follower.broker_epoch = broker_epoch;
        true
    }

    /// The committed ISR and the members a pending expansion adds.
    pub fn maximal_isr(&self) -> Vec<i32> {
        let mut isr = self.committed.isr.clone();
        if let Some(pending) = &self.pending {
            for replica in pending {
                if !isr.contains(replica) {
                    isr.push(*replica);
                }
            }
        }
        isr
    }

    /// min(`min.insync.replicas`, replica count), at least 1.
    pub fn effective_min_isr(&self, min_insync_replicas: i32) -> usize {
        (min_insync_replicas.max(1) as usize).min(self.committed.replicas.len().max(1))
    }

    /// Whether the committed ISR is below the effective min ISR: acks=all
    /// produces are refused and the high watermark stands still.
    pub fn under_min_isr(&self, min_insync_replicas: i32) -> bool {
        self.committed.isr.len() < self.effective_min_isr(min_insync_replicas)
    }

    /// The high watermark after `current`, when the leader counts
    /// `leader_end` for itself.
    pub fn high_watermark(&self, current: i64, leader_end: i64, min_insync_replicas: i32) -> i64 {
        if self.under_min_isr(min_insync_replicas) {
            return current;
        }
        let ends: Vec<i64> = self
            .maximal_isr()
            .iter()
            .filter(|replica| **replica != self.node_id)
            .map(|replica| self.followers.get(replica).map_or(-1, |f| f.log_end_offset))
            .collect();
        next_high_watermark(current, leader_end, &ends)
    }

    /// A follower that may join the ISR: caught up to the high watermark and
    /// to this epoch's start, and `eligible(replica, broker epoch of its
    /// fetches)` (registered, unfenced, that broker epoch, in the image).
    /// `None` while a change is pending.
    pub fn expansion(
        &self,
        high_watermark: i64,
        eligible: impl Fn(i32, i64) -> bool,
    ) -> Option<IsrProposal> {
        if self.pending.is_some() {
            return None;
        }
        let joining = self.followers.iter().find(|(replica, follower)| {
            !self.committed.isr.contains(replica)
                && eligible(**replica, follower.broker_epoch)
                && follower.log_end_offset >= 0
                && follower.log_end_offset >= high_watermark
                && follower.log_end_offset >= self.epoch_start_offset
        })?;
        let mut isr = self.committed.isr.clone();
        isr.push(*joining.0);
        Some(self.proposal(isr))
    }

    /// The in-sync followers that have not been caught up for `lag_ms`
    /// leave the ISR (the leader stays). `None` while a change is pending or
    /// when every member is in sync.
    pub fn shrink(&self, leader_end: i64, now_ms: i64, lag_ms: i64) -> Option<IsrProposal> {
        if self.pending.is_some() {
            return None;
        }
        let out_of_sync = |replica: &i32| {
            *replica != self.node_id
                && self.followers.get(replica).is_some_and(|f| {
                    f.log_end_offset != leader_end && now_ms - f.last_caught_up_ms > lag_ms
                })
        };
        if !self.committed.isr.iter().any(out_of_sync) {
            return None;
        }
        let isr: Vec<i32> = self
            .committed
            .isr
            .iter()
            .copied()
            .filter(|replica| !out_of_sync(replica))
            .collect();
        Some(self.proposal(isr))
    }

    /// Marks `proposal` as sent: no other change until it is settled.
    pub fn set_pending(&mut self, proposal: &IsrProposal) {
        self.pending = Some(proposal.isr.iter().map(|(replica, _)| *replica).collect());
    }

    fn proposal(&self, isr: Vec<i32>) -> IsrProposal {
        IsrProposal {
            isr: isr
                .into_iter()
                .map(|replica| {
                    let epoch = self.followers.get(&replica).map_or(-1, |f| f.broker_epoch);
                    (replica, epoch)
                })
                .collect(),
            partition_epoch: self.committed.partition_epoch,
            leader_epoch: self.committed.leader_epoch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CommittedState, LeaderIsr};

    const LAG: i64 = 30_000;

    /// Every follower eligible (registered, unfenced, its broker epoch).
    const ANY: fn(i32, i64) -> bool = |_, _| true;

    fn three(isr: &[i32]) -> LeaderIsr {
        LeaderIsr::new(
            1,
            CommittedState {
                replicas: vec![1, 2, 3],
                isr: isr.to_vec(),
                leader_epoch: 4,
                partition_epoch: 7,
            },
            100,
            1_000,
        )
    }

    fn members(proposal: &super::IsrProposal) -> Vec<i32> {
        proposal.isr.iter().map(|(replica, _)| *replica).collect()
    }

    #[test]
    fn the_high_watermark_waits_for_every_in_sync_follower() {
        let mut isr = three(&[1, 2, 3]);
        // Nobody fetched yet: it stays where it was.
        assert_eq!(isr.high_watermark(90, 120, 1), 90);
        isr.on_fetch(2, 110, 5, 120, 1_100);
        assert_eq!(isr.high_watermark(90, 120, 1), 90, "follower 3 unknown");
        isr.on_fetch(3, 105, 6, 120, 1_100);
        assert_eq!(isr.high_watermark(90, 120, 1), 105);
        isr.on_fetch(3, 120, 6, 120, 1_200);
        assert_eq!(isr.high_watermark(105, 120, 1), 110);
        // Never back.
        assert_eq!(isr.high_watermark(115, 120, 1), 115);
    }

    #[test]
    fn a_follower_outside_the_isr_does_not_hold_it_back() {
        let mut isr = three(&[1, 2]);
        isr.on_fetch(2, 120, 5, 120, 1_100);
        isr.on_fetch(3, 10, 6, 120, 1_100);
        assert_eq!(isr.high_watermark(90, 120, 1), 120);
    }

    #[test]
    fn under_the_min_isr_the_high_watermark_stands_still() {
        let mut isr = three(&[1]);
        isr.on_fetch(2, 120, 5, 120, 1_100);
        assert!(isr.under_min_isr(2));
        assert_eq!(isr.high_watermark(90, 120, 2), 90);
        // min.insync.replicas=1: the leader alone moves it.
        assert!(!isr.under_min_isr(1));
        assert_eq!(isr.high_watermark(90, 120, 1), 120);
    }

    #[test]
    fn the_effective_min_isr_is_at_most_the_replica_count() {
        let single = LeaderIsr::new(
            1,
            CommittedState {
                replicas: vec![1],
                isr: vec![1],
                leader_epoch: 0,
                partition_epoch: 0,
            },
            0,
            0,
        );
        assert_eq!(single.effective_min_isr(2), 1);
        assert!(!single.under_min_isr(2));
        assert_eq!(single.high_watermark(0, 50, 2), 50);
        assert_eq!(three(&[1, 2, 3]).effective_min_isr(5), 3);
    }

    #[test]
    fn a_caught_up_follower_joins_and_counts_while_pending() {
        let mut isr = three(&[1, 2]);
        isr.on_fetch(2, 150, 5, 150, 2_000);
        // Below the epoch start (100): not yet.
        isr.on_fetch(3, 95, 6, 150, 2_000);
        assert_eq!(isr.expansion(95, ANY), None);
        isr.on_fetch(3, 140, 6, 150, 2_100);
        let proposal = isr.expansion(140, ANY).expect("3 caught up");
        assert_eq!(members(&proposal), vec![1, 2, 3]);
        assert_eq!(proposal.isr[2], (3, 6));
        assert_eq!(proposal.partition_epoch, 7);
        isr.set_pending(&proposal);
        assert_eq!(isr.maximal_isr(), vec![1, 2, 3]);
        // The joining follower bounds the high watermark already.
        assert_eq!(isr.high_watermark(140, 150, 1), 140);
        assert_eq!(isr.expansion(140, ANY), None, "one change at a time");
        // Committed: the image's new partition epoch settles it.
        isr.update_committed(CommittedState {
            replicas: vec![1, 2, 3],
            isr: vec![1, 2, 3],
            leader_epoch: 4,
            partition_epoch: 8,
        });
        assert_eq!(isr.pending(), None);
    }

    #[test]
    fn a_follower_behind_the_high_watermark_does_not_join() {
        let mut isr = three(&[1, 2]);
        isr.on_fetch(3, 120, 6, 150, 2_000);
        assert_eq!(isr.expansion(130, ANY), None);
    }

    #[test]
    fn a_lagging_follower_leaves_after_the_lag_time() {
        let mut isr = three(&[1, 2, 3]);
        // Both fetch at the end at t=1000..
        isr.on_fetch(2, 100, 5, 100, 1_000);
        isr.on_fetch(3, 100, 6, 100, 1_000);
        // .. then 2 keeps up and 3 stops.
        isr.on_fetch(2, 200, 5, 200, 20_000);
        assert_eq!(isr.shrink(200, 20_000, LAG), None);
        isr.on_fetch(2, 300, 5, 300, 31_500);
        let proposal = isr.shrink(300, 31_500, LAG).expect("3 lagged 30.5 s");
        assert_eq!(members(&proposal), vec![1, 2]);
        isr.set_pending(&proposal);
        assert_eq!(isr.shrink(300, 40_000, LAG), None, "pending");
        isr.clear_pending();
        assert!(isr.shrink(300, 40_000, LAG).is_some());
    }

    #[test]
    fn a_follower_that_reaches_the_previous_end_counts_as_caught_up_then() {
        let mut isr = three(&[1, 2, 3]);
        isr.on_fetch(2, 50, 5, 100, 10_000);
        // Its next fetch reached 100 (the end at its previous fetch) while
        // the leader moved on to 150: caught up as of the previous fetch.
        isr.on_fetch(2, 100, 5, 150, 35_000);
        assert_eq!(isr.follower(2).unwrap().last_caught_up_ms, 10_000);
        // An idle partition: a follower at the end is never out of sync.
        isr.on_fetch(3, 150, 6, 150, 1_000);
        assert!(isr
            .shrink(150, 100_000, LAG)
            .is_some_and(|p| members(&p) == vec![1, 3]));
    }

    #[test]
    fn a_new_leader_keeps_its_isr_until_followers_had_time_to_fetch() {
        let isr = three(&[1, 2, 3]);
        assert_eq!(isr.shrink(100, 1_000 + LAG, LAG), None);
        assert!(isr.shrink(100, 1_001 + LAG, LAG).is_some());
    }

    #[test]
    fn fetches_from_strangers_are_ignored() {
        let mut isr = three(&[1, 2, 3]);
        assert!(!isr.on_fetch(9, 100, 1, 100, 1_000));
        assert!(!isr.on_fetch(1, 100, 1, 100, 1_000), "the leader itself");
    }

    #[test]
    fn a_caught_up_follower_the_image_shows_fenced_is_never_proposed() {
        let mut isr = three(&[1, 2]);
        isr.on_fetch(3, 150, 6, 150, 2_000);
        let fenced_3 = |replica: i32, _epoch: i64| replica != 3;
        assert_eq!(isr.expansion(150, fenced_3), None);
        assert_eq!(isr.next_change(150, 150, 2_000, LAG, fenced_3), None);
        let other_epoch = |_replica: i32, epoch: i64| epoch == 7;
        assert_eq!(
            isr.expansion(150, other_epoch),
            None,
            "a stale broker epoch"
        );
        assert!(isr.next_change(150, 150, 2_000, LAG, ANY).is_some());
    }

    #[test]
    fn a_refused_change_stops_holding_the_high_watermark_and_pauses_proposals() {
        let mut isr = three(&[1, 2]);
        isr.on_fetch(2, 150, 5, 150, 2_000);
        isr.on_fetch(3, 140, 6, 150, 2_000);
        let proposal = isr.next_change(140, 150, 2_000, LAG, ANY).expect("3 joins");
        isr.set_pending(&proposal);
        // 3 stops fetching at 140; the leader appends up to 200 and 2 follows.
        isr.on_fetch(2, 200, 5, 200, 2_100);
        assert_eq!(
            isr.high_watermark(140, 200, 1),
            140,
            "waits for 3 while pending"
        );
        isr.refused(2_600);
        assert_eq!(isr.maximal_isr(), vec![1, 2]);
        assert_eq!(
            isr.high_watermark(140, 200, 1),
            200,
            "no longer waits for 3"
        );
        assert_eq!(isr.next_change(200, 200, 2_500, LAG, ANY), None, "paused");
        isr.on_fetch(3, 200, 6, 200, 2_550);
        assert!(isr.next_change(200, 200, 2_600, LAG, ANY).is_some());
    }
}
