//! The leader's side of an observer's Join: a node that is not a voter
//! (`process.roles=broker`) asks to follow the metadata log, and the quorum
//! leader adds it to the membership as a Raft learner at the address it gave
//! (openraft's leader pushes appends to learners, so an observer listens
//! too). Kafka's observers fetch from the leader instead; the effect is the
//! same: every broker holds the log, none of them votes.
//!
//! The rule is [`decide_join`], without I/O; [`admit`] applies it.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use openraft::{BasicNode, ChangeMembers, Raft};

use super::frame::JoinRefusal;
use super::Identity;
use crate::raft::TypeConfig;

/// An observer that answered the leader this recently at its registered
/// address is alive: another process asking to join with its node id but
/// another address is refused. Many Raft heartbeats long.
pub(crate) const OBSERVER_ALIVE_MS: u64 = 3_000;

/// What a Join changes in the membership.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum JoinDecision {
    /// The observer is a learner at that address already.
    AlreadyMember,
    /// It becomes a learner.
    Add,
    /// It is a learner at another address, which no longer answers: the
    /// membership gets the new one (a restart on another port).
    Move,
}

/// What the leader knows when an observer asks to join.
pub(crate) struct JoinFacts<'a> {
    /// This node's id.
    pub(crate) node_id: u64,
    /// The quorum leader this node knows of.
    pub(crate) leader: Option<u64>,
    /// The voters of the current membership.
    pub(crate) voters: &'a BTreeSet<u64>,
    /// The address the membership holds for the observer, if it is a member.
    pub(crate) member_address: Option<&'a str>,
    /// The address it last answered this node at, and how long ago.
    pub(crate) last_contact: Option<(&'a str, Duration)>,
}

/// Decides an observer's Join: only the leader changes the membership; a
/// voter's id cannot join as an observer; a learner that is alive at
/// another address keeps its place (a second process with its node id).
pub(crate) fn decide_join(
    facts: &JoinFacts<'_>,
    observer: u64,
    address: &str,
) -> Result<JoinDecision, JoinRefusal> {
    if facts.leader != Some(facts.node_id) {
        return Err(JoinRefusal::NotLeader {
            node: facts.node_id,
            leader: facts.leader,
        });
    }
    if facts.voters.contains(&observer) {
        return Err(JoinRefusal::Voter { node: observer });
    }
    match facts.member_address {
        None => Ok(JoinDecision::Add),
        Some(current) if current == address => Ok(JoinDecision::AlreadyMember),
        Some(current) => match facts.last_contact {
            Some((answered_at, ago))
                if answered_at == current && ago < Duration::from_millis(OBSERVER_ALIVE_MS) =>
            {
                Err(JoinRefusal::InUse {
                    node: observer,
                    address: current.to_string(),
                    millis_ago: ago.as_millis() as u64,
                })
            }
            _ => Ok(JoinDecision::Move),
        },
    }
}

/// Answers an observer's Join on this node.
pub(crate) async fn admit(
    raft: &Raft<TypeConfig>,
    identity: &Identity,
    observer: u64,
    address: String,
) -> Result<(), JoinRefusal> {
    let metrics = raft.metrics().borrow().clone();
    let membership = metrics.membership_config.membership();
    let voters: BTreeSet<u64> = membership.voter_ids().collect();
    let member_address = membership.get_node(&observer).map(|node| node.addr.clone());
    let last_contact = identity.last_contact(observer);
    let facts = JoinFacts {
        node_id: identity.node_id,
        leader: metrics.current_leader,
        voters: &voters,
        member_address: member_address.as_deref(),
        last_contact: last_contact
            .as_ref()
            .map(|(address, ago)| (address.as_str(), *ago)),
    };
    let decision = decide_join(&facts, observer, &address)?;
    tracing::info!(observer, %address, ?decision, "an observer asks to follow the metadata log");
    let node = BasicNode::new(address);
    let changed = match decision {
        JoinDecision::AlreadyMember => return Ok(()),
        JoinDecision::Add => raft.add_learner(observer, node, false).await,
        JoinDecision::Move => {
            let nodes = BTreeMap::from([(observer, node)]);
            raft.change_membership(ChangeMembers::SetNodes(nodes), true)
                .await
        }
    };
    changed
        .map(|_| ())
        .map_err(|error| JoinRefusal::Failed(error.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn join_rules() {
        let voters: BTreeSet<u64> = [1, 2, 3].into();
        let facts = |leader, member_address, last_contact| JoinFacts {
            node_id: 1,
            leader,
            voters: &voters,
            member_address,
            last_contact,
        };
        let alive = Some(("h:1", Duration::from_millis(200)));
        let long_ago = Some(("h:1", Duration::from_millis(OBSERVER_ALIVE_MS + 1)));
        let cases = [
            (facts(Some(1), None, None), 4, "h:1", Ok(JoinDecision::Add)),
            (
                facts(Some(1), Some("h:1"), alive),
                4,
                "h:1",
                Ok(JoinDecision::AlreadyMember),
            ),
            (
                facts(Some(1), Some("h:1"), long_ago),
                4,
                "h:2",
                Ok(JoinDecision::Move),
            ),
            (
                facts(Some(1), Some("h:1"), None),
                4,
                "h:2",
                Ok(JoinDecision::Move),
            ),
            // Answered at another address than the member's: that one is gone.
            (
                facts(Some(1), Some("h:1"), Some(("h:9", Duration::ZERO))),
                4,
                "h:2",
                Ok(JoinDecision::Move),
            ),
        ];
        for (facts, observer, address, expected) in cases {
            assert_eq!(decide_join(&facts, observer, address), expected);
        }
        let refused = [
            (facts(Some(2), None, None), 4, "h:1"),
            (facts(None, None, None), 4, "h:1"),
            (facts(Some(1), None, None), 2, "h:1"),
            (facts(Some(1), Some("h:1"), alive), 4, "h:2"),
        ];
        for (facts, observer, address) in refused {
            let answer = decide_join(&facts, observer, address);
            assert!(answer.is_err(), "{observer} {address}: {answer:?}");
        }
        let in_use = decide_join(&facts(Some(1), Some("h:1"), alive), 4, "h:2")
            .expect_err("a live observer keeps its place")
            .to_string();
        assert!(
            in_use.contains("h:1") && in_use.contains("another process"),
            "{in_use}"
        );
    }
}
