//! The high watermark as one pure function: what a leader lets consumers
//! read. Kafka's `Partition.maybeIncrementLeaderHW`: the smallest log end
//! offset among the leader and its in-sync followers, and never lower than
//! the watermark already exposed. The runtime (`Partition`) gathers the
//! inputs and publishes the result; this file decides.

/// The high watermark a leader may expose next.
///
/// `current` is the watermark exposed now; `leader_end` the end offset the
/// leader counts for itself (its durable end when
/// `sluice.flush.before.visible` holds the watermark back until fsync,
/// else its log end); `isr_follower_ends` the end offsets the in-sync
/// followers have fetched up to (none while partitions have one replica).
pub fn next_high_watermark(current: i64, leader_end: i64, isr_follower_ends: &[i64]) -> i64 {
    let lowest = isr_follower_ends.iter().copied().fold(leader_end, i64::min);
    lowest.max(current)
}

#[cfg(test)]
mod tests {
    use super::next_high_watermark;

    #[test]
    fn a_single_replica_exposes_its_own_end() {
        assert_eq!(next_high_watermark(0, 10, &[]), 10);
        assert_eq!(next_high_watermark(10, 25, &[]), 25);
    }

    #[test]
    fn the_slowest_in_sync_follower_bounds_it() {
        assert_eq!(next_high_watermark(0, 10, &[7, 9]), 7);
        assert_eq!(next_high_watermark(0, 10, &[12, 10]), 10);
    }

    #[test]
    fn it_never_goes_backwards() {
        // A follower that rejoined the ISR behind the watermark, or a
        // durable end reported late, does not lower what consumers saw.
        assert_eq!(next_high_watermark(8, 10, &[5]), 8);
        assert_eq!(next_high_watermark(8, 6, &[]), 8);
    }

    #[test]
    fn unchanged_inputs_keep_it() {
        assert_eq!(next_high_watermark(10, 10, &[10, 10]), 10);
    }
}
