//! Partition leadership decisions of the controller: pure functions of the
//! image, as Kafka's PartitionChangeBuilder and the election paths of
//! ReplicationControlManager (handleBrokerFenced, handleBrokerUnfenced,
//! handleBrokerInControlledShutdown, the preferred-leader check).
//!
//! Rules (Kafka's):
//! - A leader is chosen among the replicas in assignment order: the first
//!   that is in the ISR and on an unfenced broker (an "eligible" replica).
//! - A broker leaving (fenced, or shutting down) is removed from every ISR
//!   it is in, except the last member of an ISR, which stays (the ISR never
//!   becomes empty: it names who has every acknowledged record) while the
//!   partition has no leader (-1).
//! - Without an eligible replica the partition is offline (leader -1) until
//!   one returns. Only with `unclean.leader.election.enable` may a replica
//!   outside the ISR become leader, and the ISR is then that replica alone.
//! - Every leader change bumps the leader epoch; the state machine bumps the
//!   partition epoch on every change. Epochs never go back.

use std::collections::BTreeSet;

use sluice_meta::{ClusterImage, MetadataRecord, PartitionState, TopicImage};

/// Brokers that may lead: registered and unfenced, without `leaving`.
fn eligible_brokers(image: &ClusterImage, leaving: Option<i32>) -> BTreeSet<i32> {
    image
        .brokers
        .values()
        .filter(|broker| !broker.fenced && Some(broker.node_id) != leaving)
        .map(|broker| broker.node_id)
        .collect()
}

/// Whether unclean election is enabled for a topic (its override, else the
/// cluster's default from `default_unclean`).
fn unclean_allowed(topic: &TopicImage, default_unclean: bool) -> bool {
    match topic.configs.get("unclean.leader.election.enable") {
        Some(value) => value.eq_ignore_ascii_case("true"),
        None => default_unclean,
    }
}

/// The new state of `partition` once `leaving` (if any) is out of the ISR
/// and a leader is chosen among `eligible`; `None` when nothing changes.
/// `keep_leader`: a current leader that is still eligible stays leader.
fn rechoose(
    partition: &PartitionState,
    leaving: Option<i32>,
    eligible: &BTreeSet<i32>,
    unclean: bool,
    keep_leader: bool,
) -> Option<PartitionState> {
    let mut isr: Vec<i32> = partition
        .isr
        .iter()
        .copied()
        .filter(|replica| Some(*replica) != leaving)
        .collect();
    if isr.is_empty() {
        // The last in-sync replica stays in the ISR.
        isr = partition.isr.clone();
    }
    let current_eligible = eligible.contains(&partition.leader) && isr.contains(&partition.leader);
    let mut leader = if keep_leader && current_eligible {
        partition.leader
    } else {
        partition
            .replicas
            .iter()
            .copied()
            .find(|replica| isr.contains(replica) && eligible.contains(replica))
            .unwrap_or(-1)
    };
    if leader == -1 && unclean {
        if let Some(replica) = partition
            .replicas
            .iter()
            .copied()
            .find(|replica| eligible.contains(replica))
        {
            leader = replica;
            isr = vec![replica];
        }
    }
    if leader == partition.leader && isr == partition.isr {
        return None;
    }
    let leader_epoch = if leader != partition.leader {
        partition.leader_epoch.saturating_add(1)
    } else {
        partition.leader_epoch
    };
    Some(PartitionState {
        leader,
        leader_epoch,
        isr,
        ..partition.clone()
    })
}

/// Changes of every partition of `image` under `rechoose`.
fn changes(
    image: &ClusterImage,
    leaving: Option<i32>,
    eligible: &BTreeSet<i32>,
    default_unclean: bool,
    keep_leader: bool,
    touches: impl Fn(&PartitionState) -> bool,
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    for topic in image.topics.values() {
        let unclean = unclean_allowed(topic, default_unclean);
        for partition in topic.partitions.iter().filter(|p| touches(p)) {
            if let Some(state) = rechoose(partition, leaving, eligible, unclean, keep_leader) {
                records.push(MetadataRecord::ChangePartition {
                    topic_id: topic.topic_id,
                    state,
                });
            }
        }
    }
    records
}

/// What fencing (or shutting down) `broker` changes: it leaves every ISR
/// (but the last member's place) and every partition it led gets the next
/// eligible leader, or -1.
pub fn on_broker_leaving(
    image: &ClusterImage,
    broker: i32,
    default_unclean: bool,
) -> Vec<MetadataRecord> {
    let eligible = eligible_brokers(image, Some(broker));
    changes(
        image,
        Some(broker),
        &eligible,
        default_unclean,
        true,
        |partition| partition.replicas.contains(&broker),
    )
}

/// What unfencing `broker` changes: partitions without a leader that it
/// can lead get one. `image` must already show it unfenced.
pub fn on_broker_unfenced(
    image: &ClusterImage,
    broker: i32,
    default_unclean: bool,
) -> Vec<MetadataRecord> {
    let eligible = eligible_brokers(image, None);
    changes(image, None, &eligible, default_unclean, true, |partition| {
        partition.leader == -1 && partition.replicas.contains(&broker)
    })
}

/// Preferred leader election (`auto.leader.rebalance.enable`, ElectLeaders
/// PREFERRED): every partition whose first replica is eligible but not the
/// leader moves leadership to it. `only` limits it to some partitions
/// (topic name, partition).
pub fn preferred_leaders(
    image: &ClusterImage,
    only: Option<&BTreeSet<(String, i32)>>,
) -> Vec<MetadataRecord> {
    let eligible = eligible_brokers(image, None);
    let mut records = Vec::new();
    for topic in image.topics.values() {
        for partition in &topic.partitions {
            if only.is_some_and(|only| !only.contains(&(topic.name.clone(), partition.partition))) {
                continue;
            }
            let Some(&preferred) = partition.replicas.first() else {
                continue;
            };
            if partition.leader == preferred
                || !eligible.contains(&preferred)
                || !partition.isr.contains(&preferred)
            {
                continue;
            }
            records.push(MetadataRecord::ChangePartition {
                topic_id: topic.topic_id,
                state: PartitionState {
                    leader: preferred,
                    leader_epoch: partition.leader_epoch.saturating_add(1),
                    ..partition.clone()
                },
            });
        }
    }
    records
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_meta::{BrokerRegistration, LeaderRecoveryState};
    use uuid::Uuid;

    use super::*;

    fn image(brokers: &[(i32, bool)], partitions: &[(&[i32], &[i32], i32)]) -> ClusterImage {
        let mut image = ClusterImage::default();
        for &(node_id, fenced) in brokers {
            image.brokers.insert(
                node_id,
                BrokerRegistration {
                    node_id,
                    fenced,
                    broker_epoch: 1,
                    ..BrokerRegistration::default()
                },
            );
        }
        let states = partitions
            .iter()
            .enumerate()
            .map(|(index, (replicas, isr, leader))| PartitionState {
                partition: index as i32,
                replicas: replicas.to_vec(),
                isr: isr.to_vec(),
                leader: *leader,
                leader_epoch: 5,
                partition_epoch: 7,
                leader_recovery_state: LeaderRecoveryState::Recovered,
            })
            .collect::<Vec<_>>();
        let record = MetadataRecord::CreateTopic {
            name: "t".to_string(),
            topic_id: Uuid::from_u128(1),
            partitions: states,
            configs: BTreeMap::new(),
        };
        image.apply(&record);
        image
    }

    fn states(records: &[MetadataRecord]) -> Vec<(i32, i32, Vec<i32>, i32)> {
        records
            .iter()
            .map(|record| match record {
                MetadataRecord::ChangePartition { state, .. } => (
                    state.partition,
                    state.leader,
                    state.isr.clone(),
                    state.leader_epoch,
                ),
                other => panic!("unexpected {other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_fenced_leader_hands_over_to_the_next_in_sync_replica_in_assignment_order() {
        let image = image(
            &[(1, true), (2, false), (3, false)],
            &[(&[1, 3, 2], &[1, 2, 3], 1)],
        );
        assert_eq!(
            states(&on_broker_leaving(&image, 1, false)),
            vec![(0, 3, vec![2, 3], 6)]
        );
    }

    #[test]
    fn a_fenced_follower_leaves_the_isr_and_the_leader_stays() {
        let image = image(&[(1, false), (2, true)], &[(&[1, 2], &[1, 2], 1)]);
        assert_eq!(
            states(&on_broker_leaving(&image, 2, false)),
            vec![(0, 1, vec![1], 5)]
        );
    }

    #[test]
    fn the_last_in_sync_replica_stays_in_the_isr_and_the_partition_goes_offline() {
        let image = image(
            &[(1, true), (2, false)],
            &[(&[1], &[1], 1), (&[1, 2], &[1], 1)],
        );
        assert_eq!(
            states(&on_broker_leaving(&image, 1, false)),
            vec![(0, -1, vec![1], 6), (1, -1, vec![1], 6)]
        );
    }

    #[test]
    fn unclean_election_takes_an_out_of_sync_replica_only_when_enabled() {
        let image = image(&[(1, true), (2, false)], &[(&[1, 2], &[1], 1)]);
        assert_eq!(
            states(&on_broker_leaving(&image, 1, true)),
            vec![(0, 2, vec![2], 6)]
        );
    }

    #[test]
    fn an_unfenced_broker_leads_its_offline_partitions_again() {
        let image = image(
            &[(1, false), (2, false)],
            &[(&[1], &[1], -1), (&[2], &[2], 2), (&[1, 2], &[1], -1)],
        );
        assert_eq!(
            states(&on_broker_unfenced(&image, 1, false)),
            vec![(0, 1, vec![1], 6), (2, 1, vec![1], 6)]
        );
    }

    #[test]
    fn preferred_leaders_return_when_eligible() {
        let image = image(
            &[(1, false), (2, false), (3, true)],
            &[
                (&[1, 2], &[1, 2], 2),
                (&[3, 2], &[3, 2], 2),
                (&[1, 2], &[2], 2),
            ],
        );
        assert_eq!(
            states(&preferred_leaders(&image, None)),
            vec![(0, 1, vec![1, 2], 6)]
        );
    }
}
