//! One connection: a reader task, the dispatch loop, and a writer task.
//!
//! Requests take effect strictly in request order: the dispatch loop handles
//! one request at a time, so appends, commits and leaves apply in the order
//! the client sent them (idempotent producers pipeline up to 5 produces and
//! rely on it). What is pipelined is only the *wait* of an acks=all produce
//! for durability: its response is a deferred outcome that the writer awaits
//! while the next request is already being handled. Responses are written in
//! request order, always. (Kafka mutes the connection instead; group commit
//! makes that one fsync per request on a single connection, which the
//! benchmark in docs/BENCHMARKS.md showed to be the acks=all bottleneck.)

use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::dispatch::{self, Outcome};
use crate::net::frame::{read_frame, FrameError};
use crate::BrokerState;

/// Responses (ready or still waiting for durability) queued per connection
/// before the dispatch loop stops reading requests: bounds the requests a
/// client can have in flight on one connection.
pub const PIPELINED_RESPONSES_MAX: usize = 16;

/// Serves one client connection until it closes, misbehaves, or the broker
/// shuts down (the current request is finished first).
pub async fn serve(
    stream: TcpStream,
    state: Arc<BrokerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let peer = stream.peer_addr().ok();
    // Kafka reports a member's host as Java's InetAddress.toString().
    let client_host = peer.map(|p| format!("/{}", p.ip())).unwrap_or_default();
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    let request_bytes_max = state.request_bytes_max;

    // Reader: frames into a channel of one, so a frame is never half-read
    // when the dispatch loop stops waiting (read_exact is not cancel-safe).
    let (frame_tx, mut frame_rx) = mpsc::channel(1);
    let reader = tokio::spawn(async move {
        let mut reader = BufReader::with_capacity(64 * 1024, read_half);
        loop {
            let frame = read_frame(&mut reader, request_bytes_max).await;
            let stop = frame.is_err();
            if frame_tx.send(frame).await.is_err() || stop {
                return;
            }
        }
    });

    let (outcome_tx, outcome_rx) = mpsc::channel(PIPELINED_RESPONSES_MAX);
    let writer = tokio::spawn(write_responses(write_half, outcome_rx, peer));

    loop {
        let frame = tokio::select! {
            frame = frame_rx.recv() => frame,
            _ = shutdown.changed() => None,
        };
        let frame = match frame {
            None | Some(Err(FrameError::Closed)) => break,
            Some(Ok(frame)) => frame,
            Some(Err(error)) => {
                tracing::info!(?peer, %error, "closing connection");
                break;
            }
        };
        let outcome = dispatch::handle(&state, frame, &client_host).await;
        let close = matches!(outcome, Outcome::Close(_));
        if outcome_tx.send(outcome).await.is_err() || close {
            break;
        }
    }
    reader.abort();
    drop(outcome_tx);
    // Answers already owed are written (or the broker is shutting down).
    tokio::select! {
        _ = writer => {}
        _ = shutdown.changed() => {}
    }
}

/// Writes outcomes in order, awaiting deferred ones.
async fn write_responses(
    mut write_half: OwnedWriteHalf,
    mut outcomes: mpsc::Receiver<Outcome>,
    peer: Option<std::net::SocketAddr>,
) {
    while let Some(outcome) = outcomes.recv().await {
        let mut outcome = outcome;
        if let Outcome::Deferred(wait) = outcome {
            outcome = wait.await;
        }
        match outcome {
            Outcome::Respond(framed) => {
                if write_half.write_all(&framed).await.is_err() {
                    return;
                }
            }
            Outcome::RespondChunks(mut chunks) => {
                // Vectored writes: the records are not copied in user space.
                if write_half.write_all_buf(&mut chunks).await.is_err() {
                    return;
                }
            }
            Outcome::NoResponse | Outcome::Deferred(_) => {}
            Outcome::Close(reason) => {
                tracing::info!(?peer, reason, "closing connection");
                let _ = write_half.shutdown().await;
                return;
            }
        }
    }
}
