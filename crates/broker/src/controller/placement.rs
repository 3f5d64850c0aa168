//! The replica placer (Kafka's ReplicaPlacer), used by CreateTopics and
//! CreatePartitions alike.
//!
//! Kafka's `AdminUtils` assignment over the unfenced brokers in node-id
//! order: the first replica of partition `p` is broker `(start + p) mod n`,
//! so leaders spread evenly; the followers come after it at a shift that
//! grows by one every `n` partitions, so followers spread too; no partition
//! has a broker twice. When every candidate has a `broker.rack`, the broker
//! list alternates racks and each partition takes one replica per rack
//! before it takes a second from any rack (Kafka's rack-aware assignment).
//! A fenced broker gets no replica. Pure: the caller passes `start` (Kafka
//! picks it at random per topic; a new topic derives it from its id, added
//! partitions from where partition 0 started).

use std::collections::{BTreeMap, BTreeSet};

use sluice_meta::ClusterImage;

/// Why replicas could not be placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlacementError {
    /// Fewer unfenced brokers than the replication factor.
    NotEnoughBrokers {
        /// Replicas asked for per partition.
        replication_factor: usize,
        /// Unfenced brokers registered.
        available: usize,
    },
}

/// Where a topic's round of leaders starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// A new topic: any number (its id), so topics' leaders spread.
    Seed(u64),
    /// Added partitions continue the round of the broker that leads
    /// partition 0 (or the first broker, if it is gone).
    AfterLeader(i32),
}

/// Replica lists for partitions `first .. first + count` of a topic, each of
/// `replication_factor` distinct unfenced brokers, preferred leader first.
pub fn place(
    image: &ClusterImage,
    first: i32,
    count: i32,
    replication_factor: usize,
    start: Start,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    let candidates: Vec<(i32, Option<&str>)> = image
        .brokers
        .values()
        .filter(|broker| !broker.fenced)
        .map(|broker| (broker.node_id, broker.rack.as_deref()))
        .collect();
    if replication_factor > candidates.len() || candidates.is_empty() {
        return Err(PlacementError::NotEnoughBrokers {
            replication_factor,
            available: candidates.len(),
        });
    }
    let racks: Option<Vec<&str>> = candidates.iter().map(|(_, rack)| *rack).collect();
    let brokers = match &racks {
        // Mixed or absent racks: rack-unaware, as Kafka's
        // RackAwareMode.Safe falls back to when no broker has a rack.
        None => candidates.iter().map(|(id, _)| *id).collect(),
        Some(_) => rack_alternated(&candidates),
    };
    let rack_of: BTreeMap<i32, &str> = candidates
        .iter()
        .filter_map(|(id, rack)| rack.map(|rack| (*id, rack)))
        .collect();
    let rack_count = rack_of.values().collect::<BTreeSet<_>>().len();
    let n = brokers.len();
    let start = match start {
        Start::Seed(seed) => (seed % n as u64) as usize,
        Start::AfterLeader(leader) => brokers.iter().position(|id| *id == leader).unwrap_or(0),
    };
    let first = first.max(0) as usize;
    // Kafka's shift grows by one each time a partition id is a multiple of
    // n; counted from partition 0 here, so partitions added later are
    // placed as if the topic had been created with them.
    Ok((first..first.saturating_add(count.max(0) as usize))
        .map(|partition| {
            // The follower shift grows once per full round of leaders.
            let shift = start + partition / n;
            let leader_index = (start + partition) % n;
            if racks.is_some() {
                rack_aware(
                    &brokers,
                    &rack_of,
                    rack_count,
                    leader_index,
                    shift,
                    replication_factor,
                )
            } else {
                (0..replication_factor)
                    .map(|r| brokers[replica_index(leader_index, shift, r, n)])
                    .collect()
            }
        })
        .collect())
}

/// The broker index of replica `r` (0: the leader) of a partition whose
/// leader is at `leader_index` (Kafka's `AdminUtils.replicaIndex`).
fn replica_index(leader_index: usize, shift: usize, r: usize, n: usize) -> usize {
    if r == 0 || n == 1 {
        return leader_index;
    }
    let step = 1 + (shift + (r - 1)) % (n - 1);
    (leader_index + step) % n
}

/// Brokers ordered by alternating racks: the first broker of each rack (in
/// rack order), then the second of each, … (Kafka's
/// `getRackAlternatedBrokerList`).
fn rack_alternated(candidates: &[(i32, Option<&str>)]) -> Vec<i32> {
    let mut by_rack: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (id, rack) in candidates {
        by_rack.entry(rack.unwrap_or("")).or_default().push(*id);
    }
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest)
        .flat_map(|depth| {
            by_rack
                .values()
                .filter_map(move |ids| ids.get(depth).copied())
        })
        .collect()
}

/// Rack-aware replicas (Kafka's `assignReplicasToBrokersRackAware`):
/// walking the brokers after the leader at the partition's shift, a broker
/// is taken unless its rack already has a replica while some rack has none,
/// or it is taken already.
fn rack_aware(
    brokers: &[i32],
    rack_of: &BTreeMap<i32, &str>,
    rack_count: usize,
    leader_index: usize,
    shift: usize,
    replication_factor: usize,
) -> Vec<i32> {
    let n = brokers.len();
    let leader = brokers[leader_index];
    let mut replicas = vec![leader];
    let mut racks_used: BTreeSet<&str> = BTreeSet::from([rack_of[&leader]]);
    // Every step looks at another broker of the n - 1 after the leader, so
    // n steps per replica always find one (rf <= n, distinct brokers).
    let mut step = 0;
    while replicas.len() < replication_factor && step < n * replication_factor {
        let candidate = brokers[replica_index(leader_index, shift * rack_count, step + 1, n)];
        step += 1;
        let rack = rack_of[&candidate];
        let rack_ok = !racks_used.contains(rack) || racks_used.len() == rack_count;
        if rack_ok && !replicas.contains(&candidate) {
            replicas.push(candidate);
            racks_used.insert(rack);
        }
    }
    // Unreachable with distinct brokers and rf <= n; never a short list.
    for id in brokers {
        if replicas.len() < replication_factor && !replicas.contains(id) {
            replicas.push(*id);
        }
    }
    replicas
}
