//! The acceptor: one task that accepts connections, bounds them by
//! `max.connections`, and spawns a task per connection.
//!
//! A failed accept is usually a resource running out ("Too many open files"):
//! the pending connection stays in the backlog, so accepting again at once
//! fails again at once — a busy loop. Kafka's Acceptor pauses instead; so
//! does this one, 100 ms doubling to 1 s while accepts keep failing, back to
//! none at the first success, and it logs at most one warning per 10 s with
//! the number of failures it did not log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

use crate::state::BrokerState;

/// The pause after the first failed accept.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(100);
/// The longest pause between accepts while they keep failing.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);
/// At most one accept-failure warning per this interval.
pub const ACCEPT_ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Failed accepts in a row: how long to pause, and whether to log.
#[derive(Debug, Default)]
struct AcceptFailures {
    /// The pause after the next failure; zero after a success.
    backoff: Duration,
    /// When a failure was last logged.
    logged_at: Option<Instant>,
    /// Failures since `logged_at` that were not logged.
    suppressed: u64,
}

impl AcceptFailures {
    /// An accept failed at `now`: the pause before the next accept, and
    /// `Some(failures not logged before this one)` when this one is logged.
    fn failed(&mut self, now: Instant) -> (Duration, Option<u64>) {
        self.backoff = (self.backoff * 2).clamp(ACCEPT_BACKOFF_MIN, ACCEPT_BACKOFF_MAX);
        let log = self
            .logged_at
            .is_none_or(|at| now.saturating_duration_since(at) >= ACCEPT_ERROR_LOG_INTERVAL);
        if !log {
            self.suppressed += 1;
            return (self.backoff, None);
        }
        self.logged_at = Some(now);
        (self.backoff, Some(std::mem::take(&mut self.suppressed)))
    }

    /// An accept succeeded: the next failure starts from the shortest pause.
    fn succeeded(&mut self) {
        self.backoff = Duration::ZERO;
    }
}

/// Accepts until shutdown, then waits for every connection task.
pub async fn run_acceptor(
    listener: TcpListener,
    state: Arc<BrokerState>,
    connections_max: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let permits = Arc::new(Semaphore::new(connections_max));
    let mut connections = tokio::task::JoinSet::new();
    let mut failures = AcceptFailures::default();
    // Set while the acceptor pauses after a failed accept.
    let mut paused_until: Option<tokio::time::Instant> = None;
    loop {
        tokio::select! {
            accepted = listener.accept(), if paused_until.is_none() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        let (pause, log) = failures.failed(Instant::now());
                        if let Some(suppressed) = log {
                            let pause_ms = pause.as_millis() as u64;
                            tracing::warn!(%error, suppressed, pause_ms,
                                "accepting a connection failed; pausing the acceptor");
                        }
                        paused_until = Some(tokio::time::Instant::now() + pause);
                        continue;
                    }
                };
                failures.succeeded();
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, connections_max, "max.connections reached; closing new connection");
                    continue;
                };
                let state = state.clone();
                let shutdown = shutdown.clone();
                connections.spawn(async move {
                    super::connection::serve(stream, state, shutdown).await;
                    drop(permit);
                });
            }
            _ = tokio::time::sleep_until(paused_until.unwrap_or_else(tokio::time::Instant::now)),
                if paused_until.is_some() => paused_until = None,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            _ = shutdown.changed() => break,
        }
    }
    while connections.join_next().await.is_some() {}
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Failures at millisecond offsets (`None`: a success): the pause after
    /// each, and which are logged with how many were suppressed before them.
    #[test]
    fn pauses_double_to_a_bound_and_warnings_are_rate_limited() {
        let steps: &[(Option<u64>, u64, Option<u64>)] = &[
            (Some(0), 100, Some(0)),
            (Some(100), 200, None),
            (Some(300), 400, None),
            (Some(700), 800, None),
            (Some(1500), 1000, None),
            (Some(2500), 1000, None),
            (None, 0, None),
            (Some(3000), 100, None),
            (Some(10_000), 200, Some(6)),
            (Some(10_200), 400, None),
        ];
        let start = Instant::now();
        let mut failures = AcceptFailures::default();
        for (at, pause_ms, logged) in steps {
            let Some(at) = at else {
                failures.succeeded();
                continue;
            };
            let (pause, log) = failures.failed(start + Duration::from_millis(*at));
            assert_eq!(pause, Duration::from_millis(*pause_ms), "pause at {at} ms");
            assert_eq!(log, *logged, "log at {at} ms");
        }
    }
}
