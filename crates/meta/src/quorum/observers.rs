//! An observer joins the quorum (Kafka's `process.roles=broker`): it is not
//! a voter, so it never initializes a membership or stands for election; it
//! asks the voters, one after another, to add it as a Raft learner at its
//! address (the leader answers, the others name the leader), then follows the
//! log like any learner. The leader's rule is in
//! `raft/network/join.rs`; a refusal that cannot change by waiting (a
//! voter's id) ends the start at once, others (no leader yet, another live
//! process with this id) are asked again until the start's deadline.

use std::time::Duration;

use tokio::time::Instant;

use super::{cluster, MetadataQuorum};
use crate::raft::network::client::PeerClient;
use crate::raft::network::frame::JoinRefusal;
use crate::MetaError;

/// Pause between two Join attempts.
const JOIN_RETRY_MS: u64 = 500;
/// How long one Join may take (the leader commits a membership entry).
const JOIN_TIMEOUT_MS: u64 = 5_000;
/// How often the loop looks at the metrics.
const POLL_MS: u64 = 50;

/// Joins as a learner at `address` (unless the membership has this node
/// there already) and waits until the cluster id is known and what the
/// leader committed is applied.
pub(super) async fn join_and_catch_up(
    quorum: &MetadataQuorum,
    address: &str,
    timeout: Duration,
) -> Result<(), MetaError> {
    let deadline = Instant::now() + timeout;
    let me = u64::try_from(quorum.node_id)
        .map_err(|_| MetaError::Raft(format!("negative node id {}", quorum.node_id)))?;
    let voters: Vec<u64> = quorum.voter_addresses.keys().copied().collect();
    let mut next_voter = 0usize;
    let mut hint: Option<u64> = None;
    let mut next_join = Instant::now();
    let mut last_refusal: Option<String> = None;
    loop {
        cluster::refuse_if_outvoted(quorum)?;
        let metrics = quorum.raft.metrics().borrow().clone();
        let member_here = metrics
            .membership_config
            .membership()
            .get_node(&me)
            .is_some_and(|node| node.addr == address);
        if member_here {
            let knows_cluster_id = !quorum.image().cluster_id.is_empty();
            if metrics.current_leader.is_some()
                && knows_cluster_id
                && cluster::follower_caught_up(quorum).await?
            {
                return Ok(());
            }
        } else if Instant::now() >= next_join {
            let target = hint.take().unwrap_or_else(|| {
                next_voter += 1;
                voters[(next_voter - 1) % voters.len()]
            });
            match ask_to_join(quorum, target, address).await {
                Ok(()) => {
                    tracing::info!(node_id = quorum.node_id, leader = target, %address, "joined the metadata quorum as an observer");
                }
                Err(JoinFailure::Refused(JoinRefusal::NotLeader { leader, .. })) => {
                    hint = leader.filter(|leader| *leader != target);
                }
                Err(JoinFailure::Refused(refusal @ JoinRefusal::Voter { .. })) => {
                    return Err(MetaError::Raft(format!(
                        "node {}: {refusal}",
                        quorum.node_id
                    )));
                }
                Err(failure) => {
                    tracing::info!(node_id = quorum.node_id, voter = target, %failure, "joining the metadata quorum: asking again");
                    last_refusal = Some(failure.to_string());
                }
            }
            next_join = Instant::now() + Duration::from_millis(JOIN_RETRY_MS);
        }
        if Instant::now() >= deadline {
            return Err(MetaError::Raft(format!(
                "node {}: did not join the metadata quorum as an observer within {timeout:?} \
                 (member at {address}: {member_here}, leader: {:?}; last answer: {})",
                quorum.node_id,
                metrics.current_leader,
                last_refusal.as_deref().unwrap_or("none")
            )));
        }
        tokio::time::sleep(Duration::from_millis(POLL_MS)).await;
    }
}

/// Why one Join did not succeed.
#[derive(Debug, thiserror::Error)]
enum JoinFailure {
    /// No answer, or not the right one.
    #[error("{0}")]
    Exchange(std::io::Error),
    /// The voter answered with a refusal.
    #[error("{0}")]
    Refused(JoinRefusal),
}

async fn ask_to_join(
    quorum: &MetadataQuorum,
    voter: u64,
    address: &str,
) -> Result<(), JoinFailure> {
    let voter_address = quorum
        .voter_addresses
        .get(&voter)
        .cloned()
        .unwrap_or_default();
    let mut client = PeerClient::new(quorum.identity.clone(), voter, voter_address);
    match client
        .join(address, Duration::from_millis(JOIN_TIMEOUT_MS))
        .await
    {
        Ok(Ok(())) => Ok(()),
        Ok(Err(refusal)) => Err(JoinFailure::Refused(refusal)),
        Err(error) => Err(JoinFailure::Exchange(error)),
    }
}
