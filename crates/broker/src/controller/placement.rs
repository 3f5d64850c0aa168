//! The replica placer (Kafka's ReplicaPlacer), used by CreateTopics and
//! CreatePartitions alike.
//!
//! Round robin over the registered brokers in node-id order: replica `r` of
//! partition `p` is broker `(p + r) mod n`, so leaders (replica 0) spread
//! over the brokers and no partition has a broker twice. Not rack-aware
//! (yet): `broker.rack` is recorded in registrations but not used here.

use sluice_meta::ClusterImage;

/// Why replicas could not be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementError {
    /// Fewer registered brokers than the replication factor.
    NotEnoughBrokers {
        /// Replicas asked for per partition.
        replication_factor: usize,
        /// Brokers registered.
        available: usize,
    },
}

/// Replica lists for partitions `first .. first + count` of a topic, each of
/// `replication_factor` distinct registered brokers, preferred leader first.
pub fn place(
    image: &ClusterImage,
    first: i32,
    count: i32,
    replication_factor: usize,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let brokers: Vec<i32> = image.brokers.keys().copied().collect();
    if replication_factor > brokers.len() || brokers.is_empty() {
        return Err(PlacementError::NotEnoughBrokers {
            replication_factor,
            available: brokers.len(),
        });
    }
    Ok((first..first.saturating_add(count.max(0)))
        .map(|partition| {
            (0..replication_factor)
                .map(|r| brokers[(partition as usize + r) % brokers.len()])
                .collect()
        })
        .collect())
}
