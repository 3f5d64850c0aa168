//! The client side of the Raft network: one [`PeerClient`] per peer, made by
//! openraft through [`NetworkFactory`].
//!
//! A client connects on its first RPC and keeps the connection for the next
//! ones. A connection that failed or timed out is dropped (an answer may still
//! be in flight on it), and after a failure to connect or to exchange the
//! client waits before connecting again: `RECONNECT_DELAY_MIN_MS`, doubling up
//! to `RECONNECT_DELAY_MAX_MS`, back to the minimum after a success. While
//! waiting, RPCs fail at once as unreachable.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Timeout, Unreachable,
};
use openraft::network::{RPCOption, RPCTypes, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::frame::{self, JoinRefusal, RaftConnection, RaftRequest, RaftResponse, Refusal};
use super::Identity;
use crate::raft::TypeConfig;

type NodeId = u64;
type RpcResult<T, E = RaftError<NodeId>> = Result<T, RPCError<NodeId, BasicNode, E>>;

/// First wait before reconnecting after a failure.
const RECONNECT_DELAY_MIN_MS: u64 = 100;
/// Longest wait before reconnecting.
const RECONNECT_DELAY_MAX_MS: u64 = 5_000;

/// Makes a [`PeerClient`] per peer. Voters' addresses come from the
/// configured voters (`controller.quorum.voters`), not from the membership in
/// the Raft log, so a voter that moved is reached at its new address; an
/// observer's from the membership (where its Join put it).
pub(crate) struct NetworkFactory {
    /// This node, as it presents itself in each Hello.
    identity: Arc<Identity>,
    /// Configured `host:port` of each voter.
    addresses: Arc<BTreeMap<NodeId, String>>,
}

impl NetworkFactory {
    /// A factory for this node's clients.
    pub(crate) fn new(identity: Arc<Identity>, addresses: BTreeMap<NodeId, String>) -> Self {
        NetworkFactory {
            identity,
            addresses: Arc::new(addresses),
        }
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> PeerClient {
        let address = match self.addresses.get(&target) {
            Some(address) => address.clone(),
            None => node.addr.clone(),
        };
        PeerClient::new(self.identity.clone(), target, address)
    }
}

/// Why one exchange failed.
enum CallError {
    /// Could not connect, or the connection broke.
    Unreachable(io::Error),
    /// No answer within the RPC's time.
    Timeout,
    /// The peer refused our Hello.
    Refused(Refusal),
}

/// The client to one peer.
pub(crate) struct PeerClient {
    /// This node.
    identity: Arc<Identity>,
    /// The peer's node id.
    target: NodeId,
    /// The peer's `host:port`.
    address: String,
    /// The open connection, after a successful Hello.
    connection: Option<RaftConnection>,
    /// How long to wait after the next failure.
    reconnect_delay: Duration,
    /// No connection attempt before this instant.
    reconnect_at: Option<Instant>,
}

impl PeerClient {
    /// A client to `target` at `address`; it connects on its first call.
    pub(crate) fn new(identity: Arc<Identity>, target: NodeId, address: String) -> PeerClient {
        PeerClient {
            identity,
            target,
            address,
            connection: None,
            reconnect_delay: Duration::from_millis(RECONNECT_DELAY_MIN_MS),
            reconnect_at: None,
        }
    }

    /// Sends one controller request and returns the answer's bytes.
    pub(crate) async fn controller_call(
        &mut self,
        request: Vec<u8>,
        ttl: Duration,
    ) -> io::Result<Vec<u8>> {
        match self.call(RaftRequest::Controller(request), ttl).await {
            Ok(RaftResponse::Controller(Ok(bytes))) => Ok(bytes),
            Ok(RaftResponse::Controller(Err(reason))) => Err(io::Error::other(reason)),
            other => Err(self.failed_call(other, ttl)),
        }
    }

    /// Asks this peer (a voter) to make this node a learner reached at
    /// `address`; the outer error is a failed exchange, the inner the
    /// peer's refusal.
    pub(crate) async fn join(
        &mut self,
        address: &str,
        ttl: Duration,
    ) -> io::Result<Result<(), JoinRefusal>> {
        let request = RaftRequest::Join {
            address: address.to_string(),
        };
        match self.call(request, ttl).await {
            Ok(RaftResponse::Join(answer)) => Ok(answer),
            other => Err(self.failed_call(other, ttl)),
        }
    }

    /// The I/O error for a call that failed, or was answered with another
    /// kind of response than its request's (the connection is then dropped:
    /// its exchanges are out of step).
    fn failed_call(
        &mut self,
        outcome: Result<RaftResponse, CallError>,
        ttl: Duration,
    ) -> io::Error {
        match outcome {
            Ok(other) => {
                self.connection = None;
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("node {}: unexpected answer {other:?}", self.target),
                )
            }
            Err(CallError::Timeout) => io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "node {} at {}: no answer within {ttl:?}",
                    self.target, self.address
                ),
            ),
            Err(CallError::Unreachable(error)) => error,
            Err(CallError::Refused(refusal)) => io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "node {} refused node {}: {refusal}",
                    self.target, self.identity.node_id
                ),
            ),
        }
    }

    /// Sends one request and reads its answer within `ttl`.
    async fn call(
        &mut self,
        request: RaftRequest,
        ttl: Duration,
    ) -> Result<RaftResponse, CallError> {
        if let Some(at) = self.reconnect_at {
            if Instant::now() < at {
                return Err(CallError::Unreachable(io::Error::new(
                    io::ErrorKind::NotConnected,
                    format!(
                        "node {} at {}: waiting {:?} before reconnecting",
                        self.target, self.address, self.reconnect_delay
                    ),
                )));
            }
        }
        match tokio::time::timeout(ttl, self.exchange(&request)).await {
            Ok(Ok(response)) => {
                self.reconnect_delay = Duration::from_millis(RECONNECT_DELAY_MIN_MS);
                self.reconnect_at = None;
                self.identity.note_contact(self.target, &self.address);
                Ok(response)
            }
            Ok(Err(error)) => {
                self.reconnect_at = Some(Instant::now() + self.reconnect_delay);
                self.reconnect_delay =
                    (self.reconnect_delay * 2).min(Duration::from_millis(RECONNECT_DELAY_MAX_MS));
                Err(error)
            }
            // The connection was dropped with the cancelled exchange.
            Err(_) => Err(CallError::Timeout),
        }
    }

    /// Connects if needed, then writes the request and reads the answer. The
    /// connection is put back only after a whole exchange.
    async fn exchange(&mut self, request: &RaftRequest) -> Result<RaftResponse, CallError> {
        let mut connection = match self.connection.take() {
            Some(connection) => connection,
            None => self.connect().await?,
        };
        frame::send(&mut connection, request)
            .await
            .map_err(CallError::Unreachable)?;
        let response = frame::receive(&mut connection)
            .await
            .map_err(CallError::Unreachable)?
            .ok_or_else(|| CallError::Unreachable(self.closed()))?;
        self.connection = Some(connection);
        Ok(response)
    }

    /// Opens a connection and passes the Hello.
    async fn connect(&mut self) -> Result<RaftConnection, CallError> {
        let stream = TcpStream::connect(&self.address)
            .await
            .map_err(|e| CallError::Unreachable(self.annotate(e)))?;
        stream
            .set_nodelay(true)
            .map_err(|e| CallError::Unreachable(self.annotate(e)))?;
        let mut connection = frame::connection(stream);
        let hello = RaftRequest::Hello(self.identity.hello(self.target));
        frame::send(&mut connection, &hello)
            .await
            .map_err(CallError::Unreachable)?;
        match frame::receive(&mut connection).await {
            Ok(Some(RaftResponse::Welcome)) => {
                self.identity.note_peer(self.target, None);
                Ok(connection)
            }
            Ok(Some(RaftResponse::Refused(refusal))) => {
                tracing::warn!(node_id = self.identity.node_id, peer = self.target, %refusal, "refused by a peer");
                self.identity.note_peer(self.target, Some(&refusal));
                Err(CallError::Refused(refusal))
            }
            Ok(Some(other)) => Err(CallError::Unreachable(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "node {}: unexpected answer to Hello: {other:?}",
                    self.target
                ),
            ))),
            Ok(None) => Err(CallError::Unreachable(self.closed())),
            Err(error) => Err(CallError::Unreachable(error)),
        }
    }

    fn annotate(&self, error: io::Error) -> io::Error {
        io::Error::new(
            error.kind(),
            format!("node {} at {}: {error}", self.target, self.address),
        )
    }

    fn closed(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "node {} at {} closed the connection",
                self.target, self.address
            ),
        )
    }

    /// Maps a failed exchange to openraft's error.
    fn rpc_error<E: std::error::Error>(
        &self,
        error: CallError,
        action: RPCTypes,
        ttl: Duration,
    ) -> RPCError<NodeId, BasicNode, E> {
        match error {
            CallError::Timeout => RPCError::Timeout(Timeout {
                action,
                id: self.identity.node_id,
                target: self.target,
                timeout: ttl,
            }),
            CallError::Unreachable(error) => RPCError::Unreachable(Unreachable::new(&error)),
            CallError::Refused(refusal) => {
                let error = io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!(
                        "node {} refused node {}: {refusal}",
                        self.target, self.identity.node_id
                    ),
                );
                RPCError::Unreachable(Unreachable::new(&error))
            }
        }
    }

    /// An answer of the wrong kind: the peer speaks something else.
    fn unexpected<E: std::error::Error>(
        &mut self,
        response: RaftResponse,
    ) -> RPCError<NodeId, BasicNode, E> {
        self.connection = None;
        let error = io::Error::new(
            io::ErrorKind::InvalidData,
            format!("node {}: unexpected answer {response:?}", self.target),
        );
        RPCError::Network(NetworkError::new(&error))
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>> {
        let ttl = option.hard_ttl();
        let response = self.call(RaftRequest::AppendEntries(rpc), ttl).await;
        match response.map_err(|e| self.rpc_error(e, RPCTypes::AppendEntries, ttl))? {
            RaftResponse::AppendEntries(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(other)),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>> {
        let ttl = option.hard_ttl();
        let response = self.call(RaftRequest::InstallSnapshot(rpc), ttl).await;
        match response.map_err(|e| self.rpc_error(e, RPCTypes::InstallSnapshot, ttl))? {
            RaftResponse::InstallSnapshot(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(other)),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>> {
        let ttl = option.hard_ttl();
        let response = self.call(RaftRequest::Vote(rpc), ttl).await;
        match response.map_err(|e| self.rpc_error(e, RPCTypes::Vote, ttl))? {
            RaftResponse::Vote(result) => {
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            other => Err(self.unexpected(other)),
        }
    }
}
