//! The server side of the Raft network: accepts peers on the controller
//! listener, one task per connection.
//!
//! A connection must open with a Hello within `HELLO_TIMEOUT_MS`; a refused
//! one is answered and closed. After that each frame is one request, answered
//! in order. A frame that is too long or does not parse closes that connection
//! (logged at warn); the node and its other connections go on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::Raft;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::frame::{self, RaftConnection, RaftRequest, RaftResponse};
use super::{ControllerSlot, Identity};
use crate::raft::TypeConfig;

/// A peer must send its Hello within this.
const HELLO_TIMEOUT_MS: u64 = 10_000;
/// Inbound connections served at once (peers reconnect; more are closed).
const RAFT_CONNECTIONS_MAX: usize = 64;
/// Pause after a failed accept (e.g. out of file descriptors).
const ACCEPT_RETRY_DELAY_MS: u64 = 100;

/// Serves Raft RPCs from peers until `shutdown` turns true (or its sender is
/// dropped), then waits for every connection task to end.
pub(crate) async fn serve_raft(
    listener: TcpListener,
    raft: Raft<TypeConfig>,
    identity: Arc<Identity>,
    controller: ControllerSlot,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer_address)) => {
                    if connections.len() >= RAFT_CONNECTIONS_MAX {
                        tracing::warn!(%peer_address, "too many Raft connections; closing this one");
                        continue;
                    }
                    let _ = stream.set_nodelay(true);
                    connections.spawn(serve_connection(
                        frame::connection(stream),
                        peer_address,
                        raft.clone(),
                        identity.clone(),
                        controller.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(error) => {
                    tracing::warn!(%error, "accepting a Raft connection failed");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_RETRY_DELAY_MS)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    while connections.join_next().await.is_some() {}
}

/// One peer's connection: the Hello, then requests until it closes, sends
/// something wrong, or the node shuts down.
async fn serve_connection(
    mut connection: RaftConnection,
    peer_address: SocketAddr,
    raft: Raft<TypeConfig>,
    identity: Arc<Identity>,
    controller: ControllerSlot,
    mut shutdown: watch::Receiver<bool>,
) {
    let node_id = identity.node_id;
    let handshake = tokio::select! {
        _ = shutdown.changed() => return,
        peer = handshake(&mut connection, peer_address, &identity) => peer,
    };
    let Some(peer) = handshake else {
        return;
    };
    loop {
        let received = tokio::select! {
            _ = shutdown.changed() => return,
            received = frame::receive::<RaftRequest>(&mut connection) => received,
        };
        let request = match received {
            Ok(Some(request)) => request,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(node_id, peer, %peer_address, %error, "closing a Raft connection");
                return;
            }
        };
        let response = match request {
            RaftRequest::Vote(rpc) => RaftResponse::Vote(raft.vote(rpc).await),
            RaftRequest::AppendEntries(rpc) => {
                RaftResponse::AppendEntries(raft.append_entries(rpc).await)
            }
            RaftRequest::InstallSnapshot(rpc) => {
                RaftResponse::InstallSnapshot(raft.install_snapshot(rpc).await)
            }
            RaftRequest::Controller(request) => {
                let service = controller.get().cloned();
                RaftResponse::Controller(match service {
                    Some(service) => Ok(service.handle(request).await),
                    None => Err(format!("node {node_id} runs no controller service yet")),
                })
            }
            RaftRequest::Join { address } => {
                RaftResponse::Join(super::join::admit(&raft, &identity, peer, address).await)
            }
            RaftRequest::Hello(_) => {
                tracing::warn!(node_id, peer, %peer_address, "a second Hello; closing a Raft connection");
                return;
            }
        };
        if let Err(error) = frame::send(&mut connection, &response).await {
            tracing::debug!(node_id, peer, %error, "answering a Raft request failed");
            return;
        }
    }
}

/// Reads and checks the Hello; returns the peer's node id when accepted.
async fn handshake(
    connection: &mut RaftConnection,
    peer_address: SocketAddr,
    identity: &Identity,
) -> Option<u64> {
    let node_id = identity.node_id;
    let timeout = Duration::from_millis(HELLO_TIMEOUT_MS);
    let hello = match tokio::time::timeout(timeout, frame::receive::<RaftRequest>(connection)).await
    {
        Ok(Ok(Some(RaftRequest::Hello(hello)))) => hello,
        Ok(Ok(None)) => return None,
        Ok(Ok(Some(_))) => {
            tracing::warn!(node_id, %peer_address, "a Raft connection did not start with Hello; closing it");
            return None;
        }
        Ok(Err(error)) => {
            tracing::warn!(node_id, %peer_address, %error, "closing a Raft connection");
            return None;
        }
        Err(_) => {
            tracing::warn!(node_id, %peer_address, "no Hello in time; closing a Raft connection");
            return None;
        }
    };
    let peer = hello.from_node;
    match identity.check_hello(&hello) {
        Ok(()) => {
            identity.note_peer(peer, None);
            frame::send(connection, &RaftResponse::Welcome).await.ok()?;
            Some(peer)
        }
        Err(refusal) => {
            tracing::warn!(node_id, peer, %peer_address, %refusal, "refusing a Raft peer");
            identity.note_peer(peer, Some(&refusal));
            let _ = frame::send(connection, &RaftResponse::Refused(refusal)).await;
            None
        }
    }
}
