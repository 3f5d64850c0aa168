//! The group coordinator: consumer groups (the classic protocol) and
//! committed offsets, stored as records in the internal compacted topic
//! `__consumer_offsets`.
//!
//! - `state` — the pure state machine of one group (events in, outputs out,
//!   time supplied by the caller); unit-tested with a controlled clock.
//! - `records` — Kafka's key/value formats of `__consumer_offsets`.
//! - `coordinator` — the runtime: the group table, parked JoinGroup/SyncGroup
//!   requests (oneshot channels), one timer task per group, offset commits
//!   acknowledged once durable.
//! - `store` — appending to and replaying `__consumer_offsets`.
//! - `pending` — transactional offsets waiting for their producer's marker.

pub mod coordinator;
pub mod pending;
pub mod records;
pub mod state;
pub mod store;

pub use coordinator::GroupCoordinator;

/// The internal topic holding group metadata and committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Java's `String.hashCode` (over UTF-16 code units, wrapping).
pub fn java_string_hash(text: &str) -> i32 {
    text.encode_utf16().fold(0i32, |hash, unit| {
        hash.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition of a group: Kafka's
/// `Utils.abs(groupId.hashCode()) % partitions`, where `Utils.abs` is
/// `x & 0x7fffffff` (so `Integer.MIN_VALUE` maps to 0, not to itself).
pub fn partition_for(group_id: &str, partitions: i32) -> i32 {
    (java_string_hash(group_id) & 0x7fff_ffff) % partitions.max(1)
}

pub use crate::clock::Clock;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_match_kafka() {
        // Values computed with Java: Utils.abs("...".hashCode()) % 50.
        let cases: &[(&str, i32, i32)] = &[
            ("", 0, 0),
            ("a", 97, 47),
            (
                "my-group",
                java_string_hash("my-group"),
                (java_string_hash("my-group") & 0x7fff_ffff) % 50,
            ),
            ("polygenelubricants", i32::MIN, 0),
        ];
        for (group, hash, partition) in cases {
            assert_eq!(java_string_hash(group), *hash, "{group}");
            assert_eq!(partition_for(group, 50), *partition, "{group}");
        }
        assert_eq!(java_string_hash("hello"), 99_162_322);
        assert_eq!(java_string_hash("ü"), 252);
    }
}
