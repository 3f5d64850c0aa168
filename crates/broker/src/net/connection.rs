//! One task per connection. Requests on a connection take effect and are
//! answered strictly in order, one at a time, as Kafka does: idempotent
//! producers pipeline up to 5 produces and rely on it.

use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::dispatch::{self, Outcome};
use crate::net::frame::{read_frame, FrameError};
use crate::BrokerState;

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
    let (read_half, mut write_half) = stream.into_split();
    let mut reader = BufReader::with_capacity(64 * 1024, read_half);
    let request_bytes_max = state.request_bytes_max;
    loop {
        let frame = tokio::select! {
            frame = read_frame(&mut reader, request_bytes_max) => frame,
            _ = shutdown.changed() => return,
        };
        let frame = match frame {
            Ok(frame) => frame,
            Err(FrameError::Closed) => return,
            Err(error) => {
                tracing::info!(?peer, %error, "closing connection");
                return;
            }
        };
        match dispatch::handle(&state, frame, &client_host).await {
            Outcome::Respond(framed) => {
                if write_half.write_all(&framed).await.is_err() {
                    return;
                }
            }
            Outcome::NoResponse => {}
            Outcome::Close(reason) => {
                tracing::info!(?peer, reason, "closing connection");
                let _ = write_half.shutdown().await;
                return;
            }
        }
    }
}
