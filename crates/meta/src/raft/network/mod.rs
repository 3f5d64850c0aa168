//! Raft network of the metadata quorum: openraft's vote, append and snapshot
//! messages between voters, over TCP on the controller listener.
//!
//! Layers: `frame` (length-delimited frames bounded by
//! [`frame::RAFT_FRAME_BYTES_MAX`], JSON payloads) → `client` (one per peer:
//! lazy connect, per-RPC timeout, reconnect with backoff) and `server` (one
//! task per inbound connection, dispatching to openraft).
//!
//! Every connection starts with a [`frame::Hello`]; the server answers
//! `Welcome` or `Refused` (and closes). A peer is refused when it addresses
//! another node id, when its configured voter ids differ (every pristine voter
//! initializes with that membership, so they must agree), or when both sides
//! know a cluster id and the ids differ. Before the first leader has committed
//! the cluster id a voter has none, and ids are not compared.

pub(crate) mod client;
pub(crate) mod frame;
pub(crate) mod join;
pub(crate) mod server;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use frame::{Hello, Refusal};

use super::ClusterIdCell;

/// What the active controller runs for brokers (Kafka's controller APIs:
/// forwarded admin requests, registrations, heartbeats). The quorum carries
/// the requests as opaque bytes over the controller listener; the broker
/// decides their encoding and serves them.
pub trait ControllerService: Send + Sync + 'static {
    /// Answers one request. Must answer (with an error of the broker's
    /// encoding) rather than fail: the bytes go back to the requester as they are.
    fn handle(&self, request: Vec<u8>) -> Pin<Box<dyn Future<Output = Vec<u8>> + Send>>;
}

/// The controller service, once the broker has set it.
pub(crate) type ControllerSlot = Arc<OnceLock<Arc<dyn ControllerService>>>;

/// Who this node is on the Raft network, shared by its clients and server.
pub(crate) struct Identity {
    /// This node's Raft id: the `to_node` a peer's Hello must name.
    pub(crate) node_id: u64,
    /// The configured voter ids; a peer's Hello must carry the same set.
    pub(crate) voters: BTreeSet<u64>,
    /// This node is not one of the voters: an observer (a Raft learner).
    pub(crate) observer: bool,
    /// The cluster id, once this node knows it.
    pub(crate) cluster_id: ClusterIdCell,
    /// Peers whose cluster id differs from ours, from either side of a
    /// handshake, with the refusal. `open` fails when too many remain for a
    /// majority of one cluster.
    conflicts: Mutex<BTreeMap<u64, Refusal>>,
    /// The last successful exchange of this node's clients with each peer,
    /// and the address it was at (the leader uses it to tell a live
    /// observer from a dead one).
    contacts: Mutex<BTreeMap<u64, (String, Instant)>>,
}

impl Identity {
    /// A new identity with no conflicts seen.
    pub(crate) fn new(node_id: u64, voters: BTreeSet<u64>, cluster_id: ClusterIdCell) -> Self {
        Identity {
            node_id,
            observer: !voters.contains(&node_id),
            voters,
            cluster_id,
            conflicts: Mutex::new(BTreeMap::new()),
            contacts: Mutex::new(BTreeMap::new()),
        }
    }

    /// The Hello this node sends to `target`.
    pub(crate) fn hello(&self, target: u64) -> Hello {
        Hello {
            cluster_id: self.cluster_id.borrow().clone(),
            from_node: self.node_id,
            to_node: target,
            voters: self.voters.clone(),
            observer: self.observer,
        }
    }

    /// Records a successful exchange with `peer` at `address`.
    pub(crate) fn note_contact(&self, peer: u64, address: &str) {
        if let Ok(mut contacts) = self.contacts.lock() {
            contacts.insert(peer, (address.to_string(), Instant::now()));
        }
    }

    /// The address `peer` last answered at, and how long ago.
    pub(crate) fn last_contact(&self, peer: u64) -> Option<(String, Duration)> {
        let contacts = self.contacts.lock().ok()?;
        let (address, at) = contacts.get(&peer)?;
        Some((address.clone(), at.elapsed()))
    }

    /// Decides whether a peer's Hello is accepted. Pure apart from reading
    /// the current cluster id.
    pub(crate) fn check_hello(&self, hello: &Hello) -> Result<(), Refusal> {
        let ours = self.cluster_id.borrow().clone();
        check_hello(self.node_id, &self.voters, ours.as_deref(), hello)
    }

    /// Remembers (or, with `None`, forgets) a cluster id conflict with `peer`.
    pub(crate) fn note_peer(&self, peer: u64, refusal: Option<&Refusal>) {
        let Ok(mut conflicts) = self.conflicts.lock() else {
            return;
        };
        match refusal {
            Some(refusal @ Refusal::ClusterId { .. }) => {
                conflicts.insert(peer, refusal.clone());
            }
            Some(_) => {}
            None => {
                conflicts.remove(&peer);
            }
        }
    }

    /// The peers currently in conflict, with the refusal of each.
    pub(crate) fn conflicts(&self) -> Vec<(u64, Refusal)> {
        match self.conflicts.lock() {
            Ok(conflicts) => conflicts.iter().map(|(k, v)| (*k, v.clone())).collect(),
            Err(_) => Vec::new(),
        }
    }
}

/// The handshake rule, without I/O: see the module comment.
fn check_hello(
    node_id: u64,
    voters: &BTreeSet<u64>,
    cluster_id: Option<&str>,
    hello: &Hello,
) -> Result<(), Refusal> {
    if hello.to_node != node_id {
        return Err(Refusal::WrongNode {
            node: node_id,
            addressed: hello.to_node,
            peer: hello.from_node,
        });
    }
    if &hello.voters != voters {
        return Err(Refusal::Voters {
            node: node_id,
            ours: voters.clone(),
            peer: hello.from_node,
            theirs: hello.voters.clone(),
        });
    }
    // A peer is a voter, or an observer that says it is one.
    if voters.contains(&hello.from_node) == hello.observer {
        return Err(Refusal::Role {
            node: node_id,
            voters: voters.clone(),
            peer: hello.from_node,
            claims_observer: hello.observer,
        });
    }
    if let (Some(ours), Some(theirs)) = (cluster_id, hello.cluster_id.as_deref()) {
        if ours != theirs {
            return Err(Refusal::ClusterId {
                node: node_id,
                ours: ours.to_string(),
                peer: hello.from_node,
                theirs: theirs.to_string(),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(cluster_id: Option<&str>, from_node: u64, to_node: u64, voters: &[u64]) -> Hello {
        Hello {
            cluster_id: cluster_id.map(str::to_string),
            from_node,
            to_node,
            voters: voters.iter().copied().collect(),
            observer: !voters.contains(&from_node),
        }
    }

    #[test]
    fn hello_rules() {
        let voters: BTreeSet<u64> = [1, 2, 3].into();
        // (our cluster id, hello, accepted)
        let cases = [
            (Some("A"), hello(Some("A"), 2, 1, &[1, 2, 3]), true),
            (None, hello(Some("A"), 2, 1, &[1, 2, 3]), true),
            (Some("A"), hello(None, 2, 1, &[1, 2, 3]), true),
            (None, hello(None, 3, 1, &[1, 2, 3]), true),
            (Some("A"), hello(Some("B"), 2, 1, &[1, 2, 3]), false),
            (Some("A"), hello(Some("A"), 2, 3, &[1, 2, 3]), false),
            (Some("A"), hello(Some("A"), 2, 1, &[1, 2]), false),
            // Node 4 is an observer, and says so.
            (Some("A"), hello(Some("A"), 4, 1, &[1, 2, 3]), true),
            (
                Some("A"),
                Hello {
                    observer: false,
                    ..hello(Some("A"), 4, 1, &[1, 2, 3])
                },
                false,
            ),
            (
                Some("A"),
                Hello {
                    observer: true,
                    ..hello(Some("A"), 2, 1, &[1, 2, 3])
                },
                false,
            ),
            (Some("B"), hello(Some("A"), 4, 1, &[1, 2, 3]), false),
        ];
        for (ours, hello, accepted) in cases {
            let result = check_hello(1, &voters, ours, &hello);
            assert_eq!(result.is_ok(), accepted, "{ours:?} {hello:?}: {result:?}");
        }
    }

    #[test]
    fn a_cluster_id_refusal_names_both_ids() {
        let voters: BTreeSet<u64> = [1, 2, 3].into();
        let refusal = check_hello(1, &voters, Some("A"), &hello(Some("B"), 2, 1, &[1, 2, 3]))
            .expect_err("different cluster ids");
        let text = refusal.to_string();
        assert!(
            text.contains("cluster A") && text.contains("cluster B"),
            "{text}"
        );
    }
}
