//! How several voters form a cluster and agree on its id.
//!
//! Formation: every pristine voter calls `Raft::initialize` with the same
//! membership, the configured voters. Openraft documents this as safe ("More
//! than one node performing `initialize()` with the same config is safe", on
//! `Raft::initialize` and in its cluster-formation guide): the membership
//! entry has the same log id everywhere and only a majority can elect a
//! leader. Different memberships would split the cluster, which is why the
//! network's Hello refuses a peer configured with other voter ids. No voter
//! can form a cluster alone, and none waits for a particular one.
//!
//! Cluster id: a voter of a new cluster has none. Once a leader is elected it
//! proposes `SetClusterId` with its own id (the stored one, or a new random
//! one); the first such record committed wins (the image refuses a different
//! later one), every voter learns the id by applying it and writes
//! `meta/cluster.id`. From then on the id travels in every Hello, and a node
//! whose data dir holds another id is refused by the peers (and refuses
//! them). `open` fails with `MetaError::ClusterIdMismatch` once the voters
//! in conflict with this node leave too few for a majority including it.

use std::collections::BTreeMap;
use std::time::Duration;

use openraft::BasicNode;
use tokio::time::Instant;

use super::MetadataQuorum;
use crate::files::new_cluster_id;
use crate::raft::network::frame::Refusal;
use crate::{MetaError, MetadataRecord};

/// How often `open` looks again while the cluster forms.
const FORMATION_POLL_MS: u64 = 50;

/// A data dir that was opened before must hold the configured voters.
pub(super) fn check_stored_voters(
    quorum: &MetadataQuorum,
    voters: &BTreeMap<u64, BasicNode>,
) -> Result<(), MetaError> {
    let metrics = quorum.raft.metrics().borrow().clone();
    let stored: Vec<u64> = metrics.membership_config.membership().voter_ids().collect();
    let configured: Vec<u64> = voters.keys().copied().collect();
    if stored.is_empty() || stored == configured {
        return Ok(());
    }
    Err(MetaError::Raft(format!(
        "node {}: the metadata log holds the voters {stored:?}, but the configured voters are \
         {configured:?}",
        quorum.node_id
    )))
}

/// Waits until a leader is known, the cluster id is known and this node has
/// applied what it knows to be committed; proposes the cluster id when this
/// node leads a cluster that has none yet.
pub(super) async fn wait_until_formed(
    quorum: &MetadataQuorum,
    timeout: Duration,
) -> Result<(), MetaError> {
    let deadline = Instant::now() + timeout;
    let candidate_cluster_id = quorum
        .cluster_id
        .borrow()
        .clone()
        .unwrap_or_else(new_cluster_id);
    let mut proposed_in_term = None;
    loop {
        refuse_if_outvoted(quorum)?;
        let metrics = quorum.raft.metrics().borrow().clone();
        let knows_cluster_id = !quorum.image().cluster_id.is_empty();
        let leader = metrics.current_leader;
        if leader == Some(metrics.id) {
            if !knows_cluster_id && proposed_in_term != Some(metrics.current_term) {
                proposed_in_term = Some(metrics.current_term);
                propose_cluster_id(quorum, &candidate_cluster_id, deadline).await;
            }
            if knows_cluster_id && leader_caught_up(quorum, deadline).await {
                return Ok(());
            }
        } else if leader.is_some() && knows_cluster_id && follower_caught_up(quorum).await? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(MetaError::Raft(format!(
                "node {}: the metadata quorum did not form within {timeout:?} (leader: {:?}, \
                 cluster id known: {knows_cluster_id})",
                quorum.node_id, metrics.current_leader
            )));
        }
        tokio::time::sleep(Duration::from_millis(FORMATION_POLL_MS)).await;
    }
}

/// Proposes the cluster id; a failure is logged and the caller looks again
/// (another leader may have committed one, or will propose its own).
async fn propose_cluster_id(quorum: &MetadataQuorum, cluster_id: &str, deadline: Instant) {
    tracing::info!(
        node_id = quorum.node_id,
        cluster_id,
        "proposing the cluster id"
    );
    let record = MetadataRecord::SetClusterId {
        cluster_id: cluster_id.to_string(),
    };
    match tokio::time::timeout_at(deadline, quorum.propose(vec![record])).await {
        Ok(Ok(_)) => {}
        Ok(Err(error)) => {
            tracing::info!(node_id = quorum.node_id, %error, "the cluster id was not set by this node")
        }
        Err(_) => tracing::warn!(
            node_id = quorum.node_id,
            "proposing the cluster id timed out"
        ),
    }
}

/// As leader: the read index (the commit index, including this term's first
/// entry) is applied. `false` when leadership was lost meanwhile.
async fn leader_caught_up(quorum: &MetadataQuorum, deadline: Instant) -> bool {
    matches!(
        tokio::time::timeout_at(deadline, quorum.raft.ensure_linearizable()).await,
        Ok(Ok(_))
    )
}

/// As follower: everything the leader has told this node is committed is
/// applied.
pub(super) async fn follower_caught_up(quorum: &MetadataQuorum) -> Result<bool, MetaError> {
    let committed = quorum
        .raft
        .with_raft_state(|state| state.committed)
        .await
        .map_err(|e| MetaError::Raft(format!("reading the commit index: {e}")))?;
    let applied = quorum.raft.metrics().borrow().last_applied;
    Ok(committed.is_some() && applied >= committed)
}

/// Fails when the voters whose cluster id differs from ours are so many that
/// the rest, with this node, are not a majority.
pub(super) fn refuse_if_outvoted(quorum: &MetadataQuorum) -> Result<(), MetaError> {
    let conflicts = quorum.identity.conflicts();
    let voters = quorum.identity.voters.len();
    let majority = voters / 2 + 1;
    if conflicts.len() <= voters - majority {
        return Ok(());
    }
    let me = quorum.identity.node_id;
    let other_cluster_id = conflicts
        .first()
        .map(|(_, refusal)| other_cluster_id(refusal, me))
        .unwrap_or_default();
    Err(MetaError::ClusterIdMismatch {
        node_id: quorum.node_id,
        cluster_id: quorum.cluster_id(),
        peers: conflicts
            .iter()
            .filter_map(|(peer, _)| i32::try_from(*peer).ok())
            .collect(),
        other_cluster_id,
    })
}

/// The cluster id of the side of a refusal that is not `me`.
fn other_cluster_id(refusal: &Refusal, me: u64) -> String {
    match refusal {
        Refusal::ClusterId {
            node, ours, theirs, ..
        } => match *node == me {
            true => theirs.clone(),
            false => ours.clone(),
        },
        _ => String::new(),
    }
}
