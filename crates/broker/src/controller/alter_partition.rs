//! AlterPartition: a leader's ISR change, decided by the active controller
//! (Kafka's `ReplicationControlManager.alterPartition`). The leader sends
//! the whole new ISR with each member's broker epoch, built on the leader
//! and partition epochs it knows; the controller refuses a request built on
//! a stale state, so an old leader cut off from the cluster can never
//! shrink the ISR behind the new one's back.
//!
//! Checks, in Kafka's order and with its errors:
//! - the topic and partition exist (UNKNOWN_TOPIC_ID /
//!   UNKNOWN_TOPIC_OR_PARTITION);
//! - the sender leads the partition (INVALID_REQUEST otherwise), in the
//!   current leader epoch (FENCED_LEADER_EPOCH when older,
//!   UNKNOWN_LEADER_EPOCH when newer than the controller's image);
//! - the partition epoch is the current one (INVALID_UPDATE_VERSION);
//! - the new ISR holds the leader, only assigned replicas, each on a
//!   registered unfenced broker whose epoch (when given) is the current one
//!   (INELIGIBLE_REPLICA);
//! - the leader recovery state (KIP-704): a leader still RECOVERING from an
//!   unclean election may not grow the ISR beyond itself, and a RECOVERED
//!   partition never goes back to RECOVERING (INVALID_REQUEST). A leader
//!   sends RECOVERED (it has nothing to rebuild once it leads: Kafka's
//!   Partition.makeLeader), so the partition is RECOVERED again with its
//!   first ISR expansion after the unclean election.

use sluice_meta::{ClusterImage, LeaderRecoveryState, MetadataRecord, PartitionState};
use uuid::Uuid;

use super::{Controller, ControllerResult, TopicError};
use crate::error_codes;

/// One AlterPartition: the leader's proposal for one partition.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AlterPartition {
    pub leader_id: i32,
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    /// The new ISR: (broker id, broker epoch or -1).
    pub new_isr: Vec<(i32, i64)>,
    /// The leader's recovery state (AlterPartition v1+'s
    /// LeaderRecoveryState); RECOVERED when absent.
    #[serde(default)]
    pub leader_recovery_state: LeaderRecoveryState,
}

/// Decides an AlterPartition against `image`: the partition's new state, or
/// the error (pure).
pub fn decide(
    image: &ClusterImage,
    request: &AlterPartition,
) -> Result<PartitionState, TopicError> {
    let Some(topic) = image.topic_by_id(&request.topic_id) else {
        return Err(TopicError::new(
            error_codes::UNKNOWN_TOPIC_ID,
            format!("Unknown topic id {}.", request.topic_id),
        ));
    };
    let Some(current) = usize::try_from(request.partition)
        .ok()
        .and_then(|index| topic.partitions.get(index))
    else {
        return Err(TopicError::new(
            error_codes::UNKNOWN_TOPIC_OR_PARTITION,
            format!("Unknown partition {}-{}.", topic.name, request.partition),
        ));
    };
    let name = format!("{}-{}", topic.name, request.partition);
    if request.leader_epoch < current.leader_epoch {
        return Err(TopicError::new(
            error_codes::FENCED_LEADER_EPOCH,
            format!(
                "{name}: leader epoch {} is older than the current {}.",
                request.leader_epoch, current.leader_epoch
            ),
        ));
    }
    if request.leader_epoch > current.leader_epoch {
        return Err(TopicError::new(
            error_codes::UNKNOWN_LEADER_EPOCH,
            format!(
                "{name}: leader epoch {} is newer than the controller's {}.",
                request.leader_epoch, current.leader_epoch
            ),
        ));
    }
    if request.leader_id != current.leader {
        return Err(TopicError::new(
            error_codes::INVALID_REQUEST,
            format!(
                "{name}: broker {} is not the leader ({}).",
                request.leader_id, current.leader
            ),
        ));
    }
    if request.partition_epoch != current.partition_epoch {
        return Err(TopicError::new(
            error_codes::INVALID_UPDATE_VERSION,
            format!(
                "{name}: partition epoch {} is not the current {}.",
                request.partition_epoch, current.partition_epoch
            ),
        ));
    }
    let mut isr: Vec<i32> = Vec::with_capacity(request.new_isr.len());
    for (replica, broker_epoch) in &request.new_isr {
        let registration = image.brokers.get(replica);
        let eligible = current.replicas.contains(replica)
            && registration.is_some_and(|broker| {
                !broker.fenced && (*broker_epoch < 0 || broker.broker_epoch == *broker_epoch)
            });
        // A member that stays may be on a broker that is fenced right now
        // (the controller takes it out itself); a new one must be eligible.
        if !eligible && !current.isr.contains(replica) {
            return Err(TopicError::new(
                error_codes::INELIGIBLE_REPLICA,
                format!("{name}: replica {replica} cannot join the ISR (not assigned, fenced, or of another broker epoch)."),
            ));
        }
        if !isr.contains(replica) {
            isr.push(*replica);
        }
    }
    if !isr.contains(&current.leader) {
        return Err(TopicError::new(
            error_codes::INVALID_REQUEST,
            format!("{name}: the new ISR {isr:?} does not hold the leader."),
        ));
    }
    let recovery = request.leader_recovery_state;
    if recovery == LeaderRecoveryState::Recovering && isr.len() > 1 {
        return Err(TopicError::new(
            error_codes::INVALID_REQUEST,
            format!("{name}: the ISR {isr:?} has more than one replica while the leader is still recovering from an unclean leader election."),
        ));
    }
    if current.leader_recovery_state == LeaderRecoveryState::Recovered
        && recovery == LeaderRecoveryState::Recovering
    {
        return Err(TopicError::new(
            error_codes::INVALID_REQUEST,
            format!(
                "{name}: the leader recovery state cannot change from RECOVERED to RECOVERING."
            ),
        ));
    }
    Ok(PartitionState {
        isr,
        leader_recovery_state: recovery,
        ..current.clone()
    })
}

impl Controller {
    /// Sends a leader's ISR change to the active controller; the new
    /// partition epoch once it is committed and applied here.
    pub async fn alter_partition(&self, request: AlterPartition) -> Result<i32, TopicError> {
        let request = super::channel::ControllerRequest::AlterPartition(request);
        match self
            .request(request, super::channel::FORWARD_DEADLINE_MS)
            .await?
        {
            super::channel::ControllerReply::PartitionEpoch(epoch) => Ok(epoch),
            other => Err(super::channel::unexpected(other)),
        }
    }

    pub(super) async fn serve_alter_partition(
        &self,
        request: AlterPartition,
    ) -> Result<i32, TopicError> {
        self.decide_and_commit(|context| {
            let state = decide(context.image, &request)?;
            let unchanged = context
                .image
                .topic_by_id(&request.topic_id)
                .and_then(|topic| topic.partitions.get(state.partition as usize))
                .is_some_and(|current| {
                    current.isr == state.isr
                        && current.leader_recovery_state == state.leader_recovery_state
                });
            let epoch = if unchanged {
                state.partition_epoch
            } else {
                state.partition_epoch + 1
            };
            let records = if unchanged {
                Vec::new()
            } else {
                vec![MetadataRecord::ChangePartition {
                    topic_id: request.topic_id,
                    state,
                }]
            };
            Ok(ControllerResult {
                records,
                response: epoch,
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_meta::{
        BrokerRegistration, ClusterImage, LeaderRecoveryState, MetadataRecord, PartitionState,
    };
    use uuid::Uuid;

    use super::{decide, AlterPartition};
    use crate::error_codes;

    fn image() -> (ClusterImage, Uuid) {
        let mut image = ClusterImage::default();
        for node_id in 1..=3 {
            image.apply(&MetadataRecord::RegisterBroker(BrokerRegistration {
                node_id,
                host: "localhost".into(),
                port: 9000 + node_id as u16,
                rack: None,
                broker_epoch: 0,
                fenced: false,
                listeners: Vec::new(),
                incarnation_id: None,
            }));
        }
        let topic_id = Uuid::new_v4();
        image.apply(&MetadataRecord::CreateTopic {
            name: "t".into(),
            topic_id,
            partitions: vec![PartitionState {
                partition: 0,
                replicas: vec![1, 2, 3],
                isr: vec![1, 2],
                leader: 1,
                leader_epoch: 3,
                partition_epoch: 5,
                leader_recovery_state: Default::default(),
            }],
            configs: BTreeMap::new(),
        });
        (image, topic_id)
    }

    fn request(image: &ClusterImage, topic_id: Uuid, isr: &[i32]) -> AlterPartition {
        let current = &image.topic_by_id(&topic_id).unwrap().partitions[0];
        AlterPartition {
            leader_id: 1,
            topic_id,
            partition: 0,
            leader_epoch: current.leader_epoch,
            partition_epoch: current.partition_epoch,
            new_isr: isr
                .iter()
                .map(|r| (*r, image.brokers[r].broker_epoch))
                .collect(),
            leader_recovery_state: LeaderRecoveryState::Recovered,
        }
    }

    #[test]
    fn a_current_leader_expands_and_shrinks_the_isr() {
        let (image, topic_id) = image();
        let state = decide(&image, &request(&image, topic_id, &[1, 2, 3])).unwrap();
        assert_eq!(state.isr, vec![1, 2, 3]);
        let state = decide(&image, &request(&image, topic_id, &[1])).unwrap();
        assert_eq!(state.isr, vec![1]);
    }

    #[test]
    fn a_stale_partition_epoch_is_invalid_update_version() {
        let (image, topic_id) = image();
        let mut stale = request(&image, topic_id, &[1]);
        stale.partition_epoch -= 1;
        assert_eq!(
            decide(&image, &stale).unwrap_err().code,
            error_codes::INVALID_UPDATE_VERSION
        );
    }

    #[test]
    fn an_old_leader_is_fenced_and_a_non_leader_refused() {
        let (image, topic_id) = image();
        let mut old = request(&image, topic_id, &[1]);
        old.leader_epoch -= 1;
        assert_eq!(
            decide(&image, &old).unwrap_err().code,
            error_codes::FENCED_LEADER_EPOCH
        );
        let mut other = request(&image, topic_id, &[1, 2]);
        other.leader_id = 2;
        assert_eq!(
            decide(&image, &other).unwrap_err().code,
            error_codes::INVALID_REQUEST
        );
        assert_eq!(
            decide(&image, &request(&image, topic_id, &[2]))
                .unwrap_err()
                .code,
            error_codes::INVALID_REQUEST,
            "the leader must stay in the ISR"
        );
    }

    #[test]
    fn fenced_or_stale_epoch_replicas_cannot_join() {
        let (mut image, topic_id) = image();
        let mut stale = request(&image, topic_id, &[1, 2, 3]);
        stale.new_isr[2].1 = 99;
        assert_eq!(
            decide(&image, &stale).unwrap_err().code,
            error_codes::INELIGIBLE_REPLICA
        );
        image.apply(&MetadataRecord::ChangeBrokerFencing {
            node_id: 3,
            broker_epoch: image.brokers[&3].broker_epoch,
            fenced: true,
        });
        assert_eq!(
            decide(&image, &request(&image, topic_id, &[1, 2, 3]))
                .unwrap_err()
                .code,
            error_codes::INELIGIBLE_REPLICA
        );
        let mut stranger = request(&image, topic_id, &[1, 2]);
        stranger.new_isr.push((7, -1));
        assert_eq!(
            decide(&image, &stranger).unwrap_err().code,
            error_codes::INELIGIBLE_REPLICA
        );
    }

    #[test]
    fn a_recovering_leader_keeps_the_isr_to_itself_and_never_goes_back() {
        let (mut image, topic_id) = image();
        let recovering = PartitionState {
            isr: vec![1],
            leader_recovery_state: LeaderRecoveryState::Recovering,
            ..image.topic_by_id(&topic_id).unwrap().partitions[0].clone()
        };
        image.apply(&MetadataRecord::ChangePartition {
            topic_id,
            state: recovering,
        });
        let mut grow = request(&image, topic_id, &[1, 2]);
        grow.leader_recovery_state = LeaderRecoveryState::Recovering;
        assert_eq!(
            decide(&image, &grow).unwrap_err().code,
            error_codes::INVALID_REQUEST,
            "recovering with an ISR of two"
        );
        let mut alone = request(&image, topic_id, &[1]);
        alone.leader_recovery_state = LeaderRecoveryState::Recovering;
        let state = decide(&image, &alone).unwrap();
        assert_eq!(state.leader_recovery_state, LeaderRecoveryState::Recovering);
        // What a leader sends: RECOVERED with the expansion.
        let state = decide(&image, &request(&image, topic_id, &[1, 2])).unwrap();
        assert_eq!(state.isr, vec![1, 2]);
        assert_eq!(state.leader_recovery_state, LeaderRecoveryState::Recovered);
        image.apply(&MetadataRecord::ChangePartition { topic_id, state });
        let mut back = request(&image, topic_id, &[1]);
        back.leader_recovery_state = LeaderRecoveryState::Recovering;
        assert_eq!(
            decide(&image, &back).unwrap_err().code,
            error_codes::INVALID_REQUEST,
            "RECOVERED to RECOVERING"
        );
    }
}
