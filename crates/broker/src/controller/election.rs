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
//!   outside the ISR become leader, and the ISR is then that replica alone,
//!   its leader recovery state RECOVERING (KIP-704) until its first ISR
//!   expansion (`alter_partition`).
//! - Every leader change bumps the leader epoch; the state machine bumps the
//!   partition epoch on every change. Epochs never go back.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use sluice_meta::{ClusterImage, LeaderRecoveryState, MetadataRecord, PartitionState, TopicImage};

use super::TopicError;
use crate::error_codes;

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
    let mut leader_recovery_state = partition.leader_recovery_state;
    if leader == -1 && unclean {
        if let Some(replica) = partition
            .replicas
            .iter()
            .copied()
            .find(|replica| eligible.contains(replica))
        {
            leader = replica;
            isr = vec![replica];
            leader_recovery_state = LeaderRecoveryState::Recovering;
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
        leader_recovery_state,
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

/// ElectLeaders' election type (Kafka's `ElectionType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    /// 0: move leadership to the first replica of the assignment.
    Preferred,
    /// 1: give a partition without a leader one, out of sync if need be.
    Unclean,
}

impl ElectionType {
    /// The wire value's type, or `None` for an unknown one.
    pub fn from_wire(value: i8) -> Option<ElectionType> {
        match value {
            0 => Some(ElectionType::Preferred),
            1 => Some(ElectionType::Unclean),
            _ => None,
        }
    }
}

/// The outcome of ElectLeaders for one partition.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PartitionElection {
    pub topic: String,
    pub partition: i32,
    /// `None`: a leader was elected.
    pub error: Option<TopicError>,
}

/// ElectLeaders, as Kafka's ReplicationControlManager.electLeaders decides
/// it: for each of `targets` (every partition when `None`) the change that
/// elects its leader, or why none is made. With `targets: None` the
/// partitions that need no election are left out of the outcomes, as Kafka
/// does.
///
/// - Unknown topic or partition: UNKNOWN_TOPIC_OR_PARTITION.
/// - PREFERRED: ELECTION_NOT_NEEDED when the first replica leads; else it
///   becomes leader when in the ISR and unfenced. When it cannot, a leader
///   that is itself eligible stays (PREFERRED_LEADER_NOT_AVAILABLE), and a
///   partition without an eligible leader gets the next eligible replica
///   (PartitionChangeBuilder's electPreferredLeader).
/// - UNCLEAN: ELECTION_NOT_NEEDED when the partition has a leader; else the
///   first eligible in-sync replica, else (unclean whatever the topic says,
///   as the operator asked for it) the first unfenced replica with the ISR
///   that replica alone; none: ELIGIBLE_LEADERS_NOT_AVAILABLE.
pub fn elect_leaders(
    image: &ClusterImage,
    election: ElectionType,
    targets: Option<&[(String, i32)]>,
) -> (Vec<MetadataRecord>, Vec<PartitionElection>) {
    let eligible = eligible_brokers(image, None);
    let every_partition = targets.is_none();
    let all: Vec<(String, i32)>;
    let targets = match targets {
        Some(targets) => targets,
        None => {
            all = image
                .topics
                .values()
                .flat_map(|topic| {
                    topic
                        .partitions
                        .iter()
                        .map(|partition| (topic.name.clone(), partition.partition))
                })
                .collect();
            &all
        }
    };
    let mut records = Vec::new();
    let mut outcomes = Vec::new();
    let mut seen = BTreeSet::new();
    for (name, index) in targets {
        if !seen.insert((name.clone(), *index)) {
            continue;
        }
        let decided = elect_one(image, &eligible, election, name, *index);
        let error = match decided {
            Ok((topic_id, state)) => {
                records.push(MetadataRecord::ChangePartition { topic_id, state });
                None
            }
            Err(error) if every_partition && error.code == error_codes::ELECTION_NOT_NEEDED => {
                continue
            }
            Err(error) => Some(error),
        };
        outcomes.push(PartitionElection {
            topic: name.clone(),
            partition: *index,
            error,
        });
    }
    (records, outcomes)
}

/// The election of one partition: its topic id and new state, or the error.
fn elect_one(
    image: &ClusterImage,
    eligible: &BTreeSet<i32>,
    election: ElectionType,
    name: &str,
    index: i32,
) -> Result<(uuid::Uuid, PartitionState), TopicError> {
    let topic = image
        .topics
        .values()
        .find(|topic| topic.name == name)
        .ok_or_else(|| {
            TopicError::new(
                error_codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("No such topic as {name}"),
            )
        })?;
    let partition = topic
        .partitions
        .iter()
        .find(|partition| partition.partition == index)
        .ok_or_else(|| {
            TopicError::new(
                error_codes::UNKNOWN_TOPIC_OR_PARTITION,
                format!("No such partition as {name}-{index}"),
            )
        })?;
    let not_needed = || {
        TopicError::new(
            error_codes::ELECTION_NOT_NEEDED,
            "Leader election not needed for topic partition.",
        )
    };
    let can_lead = |replica: i32| eligible.contains(&replica) && partition.isr.contains(&replica);
    let state = match election {
        ElectionType::Preferred => {
            let preferred = partition.replicas.first().copied().unwrap_or(-1);
            if partition.leader == preferred {
                return Err(not_needed());
            }
            let leader = if can_lead(preferred) {
                Some(preferred)
            } else if can_lead(partition.leader) {
                None
            } else {
                partition.replicas.iter().copied().find(|r| can_lead(*r))
            };
            leader.map(|leader| PartitionState {
                leader,
                leader_epoch: partition.leader_epoch.saturating_add(1),
                ..partition.clone()
            })
        }
        ElectionType::Unclean => {
            if partition.leader != -1 {
                return Err(not_needed());
            }
            rechoose(partition, None, eligible, true, false)
        }
    };
    match (state, election) {
        (Some(state), _) => Ok((topic.topic_id, state)),
        (None, ElectionType::Preferred) => Err(TopicError::new(
            error_codes::PREFERRED_LEADER_NOT_AVAILABLE,
            "The preferred leader was not available.",
        )),
        (None, ElectionType::Unclean) => Err(TopicError::new(
            error_codes::ELIGIBLE_LEADERS_NOT_AVAILABLE,
            "Eligible topic partition leaders are not available.",
        )),
    }
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
        let unclean = image(&[(1, true), (2, false)], &[(&[1, 2], &[1], 1)]);
        let changes = on_broker_leaving(&unclean, 1, true);
        assert_eq!(states(&changes), vec![(0, 2, vec![2], 6)]);
        // KIP-704: the unclean leader is RECOVERING; a clean one is not.
        let MetadataRecord::ChangePartition { state, .. } = &changes[0] else {
            panic!("{changes:?}")
        };
        assert_eq!(state.leader_recovery_state, LeaderRecoveryState::Recovering);
        let clean = image(&[(1, true), (2, false)], &[(&[1, 2], &[1, 2], 1)]);
        let MetadataRecord::ChangePartition { state, .. } = &on_broker_leaving(&clean, 1, true)[0]
        else {
            panic!("a clean election")
        };
        assert_eq!(state.leader_recovery_state, LeaderRecoveryState::Recovered);
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

    /// ElectLeaders over one topic "t": per partition (replicas, ISR,
    /// leader), the targets, and per target the new (leader, ISR) or the
    /// error code.
    #[test]
    fn elect_leaders_decisions() {
        use ElectionType::{Preferred, Unclean};
        const NOT_NEEDED: i16 = error_codes::ELECTION_NOT_NEEDED;
        const NO_PREFERRED: i16 = error_codes::PREFERRED_LEADER_NOT_AVAILABLE;
        const NO_ELIGIBLE: i16 = error_codes::ELIGIBLE_LEADERS_NOT_AVAILABLE;
        const UNKNOWN: i16 = error_codes::UNKNOWN_TOPIC_OR_PARTITION;
        type Expected = Result<(i32, Vec<i32>), i16>;
        let brokers = [(1, false), (2, false), (3, false), (4, true)];
        let partitions: &[(&[i32], &[i32], i32)] = &[
            (&[1, 2, 3], &[1, 2, 3], 2), // 0: preferred 1 in sync, 2 leads
            (&[1, 2, 3], &[1, 2, 3], 1), // 1: preferred leads
            (&[4, 2, 3], &[2, 3, 4], 2), // 2: preferred fenced, 2 leads
            (&[1, 2, 3], &[2, 3], 2),    // 3: preferred out of sync
            (&[4, 2, 3], &[4, 3], -1),   // 4: offline, 3 in sync and unfenced
            (&[4, 2, 1], &[4], -1),      // 5: offline, only fenced 4 in sync
            (&[4], &[4], -1),            // 6: offline, no live replica
        ];
        let image = image(&brokers, partitions);
        let cases: &[(ElectionType, &[i32], &[Expected])] = &[
            (
                Preferred,
                &[0, 1, 2, 3, 4, 5, 9],
                &[
                    Ok((1, vec![1, 2, 3])),
                    Err(NOT_NEEDED),
                    Err(NO_PREFERRED),
                    Err(NO_PREFERRED),
                    // No eligible leader: the next eligible replica leads.
                    Ok((3, vec![4, 3])),
                    Err(NO_PREFERRED),
                    Err(UNKNOWN),
                ],
            ),
            (
                Unclean,
                &[0, 4, 5, 6],
                &[
                    Err(NOT_NEEDED),
                    Ok((3, vec![4, 3])),
                    // Out of sync, asked for: it leads alone.
                    Ok((2, vec![2])),
                    Err(NO_ELIGIBLE),
                ],
            ),
        ];
        for (election, targets, expected) in cases {
            let targets: Vec<(String, i32)> =
                targets.iter().map(|p| ("t".to_string(), *p)).collect();
            let (records, outcomes) = elect_leaders(&image, *election, Some(&targets));
            let mut changed = states(&records).into_iter();
            let got: Vec<Expected> = outcomes
                .iter()
                .map(|outcome| match &outcome.error {
                    None => {
                        let (partition, leader, isr, epoch) = changed.next().expect("a record");
                        assert_eq!(partition, outcome.partition);
                        assert_eq!(epoch, 6, "the leader epoch is bumped");
                        Ok((leader, isr))
                    }
                    Some(error) => Err(error.code),
                })
                .collect();
            assert_eq!(&got, expected, "{election:?}");
        }
        // An unknown topic; duplicates answered once.
        let targets = vec![
            ("nope".to_string(), 0),
            ("t".to_string(), 1),
            ("t".to_string(), 1),
        ];
        let (_, outcomes) = elect_leaders(&image, Preferred, Some(&targets));
        let codes: Vec<Option<i16>> = outcomes
            .iter()
            .map(|o| o.error.as_ref().map(|e| e.code))
            .collect();
        assert_eq!(codes, vec![Some(UNKNOWN), Some(NOT_NEEDED)]);
        assert_eq!(
            outcomes[0].error.as_ref().unwrap().message,
            "No such topic as nope"
        );
        // Every partition: those that needed no election are left out.
        let (records, outcomes) = elect_leaders(&image, Preferred, None);
        let answered: Vec<i32> = outcomes.iter().map(|o| o.partition).collect();
        assert_eq!(answered, vec![0, 2, 3, 4, 5, 6]);
        assert_eq!(records.len(), 2);
    }
}
