//! Raft network of the metadata quorum.
//!
//! A one-voter quorum never sends an RPC, so for now every client reports the
//! target as unreachable. The real network (Raft RPCs over the internal listener
//! with length-delimited frames; data replication uses Fetch) comes with clustering;
//! `MetadataQuorum::open` refuses voter lists with other nodes until then.

use std::io;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::BasicNode;

use super::TypeConfig;

type NodeId = u64;

/// Creates [`UnreachableClient`]s.
pub(crate) struct NetworkFactory;

/// A client to a peer that cannot be reached (no network yet).
pub(crate) struct UnreachableClient {
    /// The peer this client would talk to.
    target: NodeId,
}

impl UnreachableClient {
    fn unreachable<E: std::error::Error>(&self) -> RPCError<NodeId, BasicNode, E> {
        let error = io::Error::new(
            io::ErrorKind::NotConnected,
            format!(
                "metadata quorum network not implemented: node {} is unreachable",
                self.target
            ),
        );
        RPCError::Unreachable(Unreachable::new(&error))
    }
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = UnreachableClient;

    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Self::Network {
        UnreachableClient { target }
    }
}

impl RaftNetwork<TypeConfig> for UnreachableClient {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        Err(self.unreachable())
    }

    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<TypeConfig>,
        _option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        Err(self.unreachable())
    }

    async fn vote(
        &mut self,
        _rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        Err(self.unreachable())
    }
}
