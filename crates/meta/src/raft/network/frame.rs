//! Frames of the Raft network: a 4-byte big-endian length, then that many
//! bytes of JSON. The length is checked against [`RAFT_FRAME_BYTES_MAX`] by
//! the codec before anything is allocated for the frame; a longer one, or a
//! payload that does not parse, is an error that closes the connection.

use std::collections::BTreeSet;
use std::io;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio_util::codec::{Framed, LengthDelimitedCodec};

use crate::raft::TypeConfig;

/// The largest frame either side sends or accepts. Openraft sends snapshots
/// in chunks of a few MiB and appends in batches of a few hundred entries, so
/// a metadata message is far below this.
pub(crate) const RAFT_FRAME_BYTES_MAX: usize = 64 * 1024 * 1024;

type NodeId = u64;

/// A connection carrying Raft frames.
pub(crate) type RaftConnection = Framed<TcpStream, LengthDelimitedCodec>;

/// Wraps a stream in the bounded frame codec.
pub(crate) fn connection(stream: TcpStream) -> RaftConnection {
    let codec = LengthDelimitedCodec::builder()
        .length_field_length(4)
        .max_frame_length(RAFT_FRAME_BYTES_MAX)
        .new_codec();
    Framed::new(stream, codec)
}

/// Writes one message as one frame.
pub(crate) async fn send<T: Serialize>(
    connection: &mut RaftConnection,
    message: &T,
) -> io::Result<()> {
    let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
    connection.send(Bytes::from(bytes)).await
}

/// Reads one frame and parses it; `None` when the peer closed cleanly.
/// Cancel-safe: a partly read frame stays in the codec's buffer.
pub(crate) async fn receive<T: DeserializeOwned>(
    connection: &mut RaftConnection,
) -> io::Result<Option<T>> {
    let Some(frame) = connection.next().await else {
        return Ok(None);
    };
    let frame = frame?;
    serde_json::from_slice(&frame)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad Raft frame: {e}")))
}

/// The first message on every connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Hello {
    /// The sender's cluster id, `None` before it has learned one.
    pub(crate) cluster_id: Option<String>,
    /// The sender's node id.
    pub(crate) from_node: NodeId,
    /// The node id the sender means to reach.
    pub(crate) to_node: NodeId,
    /// The sender's configured voter ids.
    pub(crate) voters: BTreeSet<NodeId>,
    /// The sender is not a voter but an observer (`process.roles=broker`):
    /// it follows the metadata log as a Raft learner.
    #[serde(default)]
    pub(crate) observer: bool,
}

/// Why a server refused a Hello. The texts name both sides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum Refusal {
    /// The two nodes belong to different clusters.
    #[error("node {node} belongs to cluster {ours}, node {peer} to cluster {theirs}")]
    ClusterId {
        /// The refusing node.
        node: NodeId,
        /// Its cluster id.
        ours: String,
        /// The refused node.
        peer: NodeId,
        /// The refused node's cluster id.
        theirs: String,
    },
    /// The Hello addressed another node id than the one listening.
    #[error("node {node} was addressed as node {addressed} by node {peer}")]
    WrongNode {
        /// The refusing node.
        node: NodeId,
        /// The node id the Hello named.
        addressed: NodeId,
        /// The refused node.
        peer: NodeId,
    },
    /// The peer is not a voter but did not say it is an observer, or says
    /// it is one while it is a voter.
    #[error("node {node} has voters {voters:?}; node {peer} {}", match claims_observer {
        true => "says it is an observer (process.roles=broker) but is one of them",
        false => "is not one of them and did not join as an observer (process.roles=broker)",
    })]
    Role {
        /// The refusing node.
        node: NodeId,
        /// The configured voters of both.
        voters: BTreeSet<NodeId>,
        /// The refused node.
        peer: NodeId,
        /// Whether the peer said it is an observer.
        claims_observer: bool,
    },
    /// The two nodes are configured with different voters.
    #[error("node {node} has voters {ours:?}, node {peer} has voters {theirs:?}")]
    Voters {
        /// The refusing node.
        node: NodeId,
        /// Its configured voters.
        ours: BTreeSet<NodeId>,
        /// The refused node.
        peer: NodeId,
        /// The refused node's configured voters.
        theirs: BTreeSet<NodeId>,
    },
}

/// A request from a voter's client to a peer's server.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RaftRequest {
    /// Opens the connection.
    Hello(Hello),
    /// openraft's RequestVote.
    Vote(VoteRequest<NodeId>),
    /// openraft's AppendEntries (also the heartbeat).
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    /// One chunk of a snapshot.
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A request for the active controller (see
    /// [`crate::ControllerService`]): opaque bytes of the broker's encoding.
    Controller(Vec<u8>),
    /// An observer asks the quorum leader to replicate the metadata log to
    /// it at `address` (its Raft listener): see `quorum/observers.rs`.
    Join {
        /// Where the leader reaches the observer's Raft listener.
        address: String,
    },
}

/// The answer to a [`RaftRequest`], of the same kind.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum RaftResponse {
    /// The Hello was accepted.
    Welcome,
    /// The Hello was refused; the server closes the connection.
    Refused(Refusal),
    /// The answer to a vote request.
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    /// The answer to an append.
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    /// The answer to a snapshot chunk.
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// The controller service's answer, or why there is none (this node runs
    /// no controller service yet).
    Controller(Result<Vec<u8>, String>),
    /// The answer to a Join: the observer is a learner at that address.
    Join(Result<(), JoinRefusal>),
}

/// Why the node asked refused to make an observer a learner.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub(crate) enum JoinRefusal {
    /// Only the quorum leader changes the membership.
    #[error("node {node} is not the quorum leader (leader: {leader:?})")]
    NotLeader {
        /// The node asked.
        node: NodeId,
        /// The leader it knows of.
        leader: Option<NodeId>,
    },
    /// A voter cannot also join as an observer.
    #[error("node id {node} is a voter of the metadata quorum; an observer (process.roles=broker) needs an id not in controller.quorum.voters")]
    Voter {
        /// The observer's node id.
        node: NodeId,
    },
    /// Another process with this node id is a learner at another address
    /// and answered recently.
    #[error("node id {node} is already an observer of this cluster at {address}, which answered {millis_ago} ms ago: another process has this node id")]
    InUse {
        /// The observer's node id.
        node: NodeId,
        /// The address of the live one.
        address: String,
        /// How long ago it last answered the leader.
        millis_ago: u64,
    },
    /// The membership change failed (for example, leadership moved).
    #[error("changing the membership failed: {0}")]
    Failed(String),
}
