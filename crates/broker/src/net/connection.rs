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
//!
//! Idle connections are closed as Kafka's Selector does: nothing in flight
//! and no request read or response written for `connections.max.idle.ms`
//! (`net::idle`). The reader decides, between requests, with the idle
//! deadline racing a cancel-safe `FrameReader::fill`; once a request's first bytes are
//! in, the whole request must arrive within the same bound, so a stalled or
//! trickling request cannot hold the connection (and its buffer) forever.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};

use crate::dispatch::{self, Outcome};
use crate::net::frame::{FrameError, FrameReader};
use crate::net::idle::Activity;
use crate::state::BrokerState;

/// Responses (ready or still waiting for durability) queued per connection
/// before the dispatch loop stops reading requests: bounds the requests a
/// client can have in flight on one connection.
pub const PIPELINED_RESPONSES_MAX: usize = 16;

/// Longest idle timeout applied: a year, which is never in practice
/// (`connections.max.idle.ms` is a Long and may be set far beyond it).
const IDLE_TIMEOUT_MS_MAX: u64 = 365 * 24 * 3600 * 1000;

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
    let activity = Arc::new(Activity::new(Instant::now()));

    // Reader: frames into a channel of one, so a frame is never half-read
    // when the dispatch loop stops waiting (read_exact is not cancel-safe).
    let (frame_tx, mut frame_rx) = mpsc::channel(1);
    let reader = tokio::spawn(read_requests(
        read_half,
        frame_tx,
        activity.clone(),
        state.request_bytes_max,
        state.connection_idle_timeout_ms,
    ));

    let (outcome_tx, outcome_rx) = mpsc::channel(PIPELINED_RESPONSES_MAX);
    let writer = tokio::spawn(write_responses(write_half, outcome_rx, activity, peer));

    loop {
        let frame = tokio::select! {
            frame = frame_rx.recv() => frame,
            _ = shutdown.changed() => None,
        };
        let frame = match frame {
            None | Some(Err(FrameError::Closed)) => break,
            Some(Ok(frame)) => frame,
            Some(Err(error @ FrameError::Idle(_))) => {
                // Routine, as in Kafka: clients reconnect when they need to.
                tracing::debug!(?peer, %error, "closing connection");
                break;
            }
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

/// Reads requests into `frames` until the peer closes, a frame is bad, or
/// the connection is idle (`idle_timeout_ms`; negative: never, as in Kafka).
async fn read_requests(
    read_half: OwnedReadHalf,
    frames: mpsc::Sender<Result<Bytes, FrameError>>,
    activity: Arc<Activity>,
    request_bytes_max: usize,
    idle_timeout_ms: i64,
) {
    // Clamped: an Instant a Long.MAX of milliseconds away overflows.
    let idle_timeout = u64::try_from(idle_timeout_ms)
        .ok()
        .map(|ms| Duration::from_millis(ms.min(IDLE_TIMEOUT_MS_MAX)));
    let mut reader = FrameReader::new(read_half);
    loop {
        let frame = match idle_timeout {
            Some(idle_timeout) => {
                read_request(&mut reader, &activity, request_bytes_max, idle_timeout).await
            }
            None => reader.read_frame(request_bytes_max).await,
        };
        if frame.is_ok() {
            activity.request_read(Instant::now());
        }
        let stop = frame.is_err();
        if frames.send(frame).await.is_err() || stop {
            return;
        }
    }
}

/// Waits for the next request's first bytes until the connection is idle,
/// then reads the whole request within `idle_timeout` of them.
async fn read_request(
    reader: &mut FrameReader<OwnedReadHalf>,
    activity: &Activity,
    request_bytes_max: usize,
    idle_timeout: Duration,
) -> Result<Bytes, FrameError> {
    let idle_timeout_ms = u64::try_from(idle_timeout.as_millis()).unwrap_or(u64::MAX);
    loop {
        // With a request in flight, look again one timeout from now: its
        // response, when written, moves the deadline.
        let idle_at = activity
            .idle_at(idle_timeout)
            .unwrap_or_else(|| Instant::now() + idle_timeout);
        tokio::select! {
            // Bytes already buffered win without arming the timer.
            biased;
            // Cancel-safe: a read lands in the buffer or does not happen.
            started = reader.fill() => match started {
                Ok(false) => return Err(FrameError::Closed),
                Ok(true) => break,
                Err(error) => return Err(FrameError::Io(error)),
            },
            _ = tokio::time::sleep_until(idle_at.into()) => {
                if activity.is_idle(idle_timeout, Instant::now()) {
                    return Err(FrameError::Idle(idle_timeout_ms));
                }
            }
        }
    }
    // Not cancel-safe, but a timeout closes the connection: nothing is
    // read from it after the partial frame.
    match tokio::time::timeout(idle_timeout, reader.read_frame(request_bytes_max)).await {
        Ok(frame) => frame,
        Err(_) => Err(FrameError::Incomplete(idle_timeout_ms)),
    }
}

/// Writes outcomes in order, awaiting deferred ones; each outcome finished
/// is activity for the idle timeout.
async fn write_responses(
    mut write_half: OwnedWriteHalf,
    mut outcomes: mpsc::Receiver<Outcome>,
    activity: Arc<Activity>,
    peer: Option<std::net::SocketAddr>,
) {
    while let Some(outcome) = outcomes.recv().await {
        let mut outcome = outcome;
        if let Outcome::Deferred(wait) = outcome {
            outcome = wait.await;
        }
        let written = match outcome {
            Outcome::Respond(framed) => write_half.write_all(&framed).await.is_ok(),
            // Vectored writes and sendfile: the records are not copied in
            // user space.
            Outcome::RespondChunks(chunks) => chunks.write_to(&mut write_half).await.is_ok(),
            Outcome::NoResponse | Outcome::Deferred(_) => true,
            Outcome::Close(reason) => {
                tracing::info!(?peer, reason, "closing connection");
                let _ = write_half.shutdown().await;
                return;
            }
        };
        activity.response_done(Instant::now());
        if !written {
            return;
        }
    }
}
