//! When a connection is idle: `connections.max.idle.ms` as Kafka's Selector
//! applies it. Activity is a request read whole or a response written (or
//! dropped, for acks=0); a connection with a request in flight — being
//! handled, parked (long-poll Fetch, JoinGroup), waiting for durability, or
//! its response being written — is never idle.
//!
//! The reader task asks for the deadline and decides; the reader and the
//! writer record activity. Time is passed in, so the rule is tested without
//! sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What one connection has in flight and when it last did something.
#[derive(Debug)]
pub struct Activity {
    /// When the connection was accepted; `last_activity_ms` counts from it.
    started: Instant,
    /// Milliseconds after `started` of the last request read whole or
    /// response finished.
    last_activity_ms: AtomicU64,
    /// Requests read whose outcome the writer has not finished with.
    requests_in_flight: AtomicU64,
}

impl Activity {
    /// A connection accepted at `now`: accepting counts as activity, so a
    /// connection that never sends anything is idle `idle_timeout` later.
    pub fn new(now: Instant) -> Activity {
        Activity {
            started: now,
            last_activity_ms: AtomicU64::new(0),
            requests_in_flight: AtomicU64::new(0),
        }
    }

    /// A request was read whole at `now`.
    pub fn request_read(&self, now: Instant) {
        self.requests_in_flight.fetch_add(1, Ordering::SeqCst);
        self.touch(now);
    }

    /// The writer finished with one request's outcome at `now` (its response
    /// written, or no response owed).
    pub fn response_done(&self, now: Instant) {
        // Activity first: the reader never sees no request in flight with
        // the time before this response.
        self.touch(now);
        let previous = self.requests_in_flight.fetch_sub(1, Ordering::SeqCst);
        assert!(previous > 0, "a response without a request");
    }

    /// When the connection becomes idle if nothing happens before: `None`
    /// while a request is in flight (the caller looks again later).
    pub fn idle_at(&self, idle_timeout: Duration) -> Option<Instant> {
        if self.requests_in_flight.load(Ordering::SeqCst) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last_activity_ms.load(Ordering::SeqCst));
        Some(self.started + last + idle_timeout)
    }

    /// Whether the connection has been idle for `idle_timeout` at `now`.
    pub fn is_idle(&self, idle_timeout: Duration, now: Instant) -> bool {
        self.idle_at(idle_timeout).is_some_and(|at| now >= at)
    }

    fn touch(&self, now: Instant) {
        let since_start = now.saturating_duration_since(self.started).as_millis();
        let since_start = u64::try_from(since_start).unwrap_or(u64::MAX);
        self.last_activity_ms
            .fetch_max(since_start, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Events at millisecond offsets, then the idle verdict at a later time.
    #[test]
    fn idle_only_with_nothing_in_flight_for_the_whole_timeout() {
        enum Event {
            Read,
            Done,
        }
        use Event::*;
        /// Events at offsets, the time asked about, and the verdict.
        type Case = (&'static [(u64, Event)], u64, bool);
        let idle = Duration::from_millis(1000);
        let cases: &[Case] = &[
            (&[], 999, false),
            (&[], 1000, true),
            (&[(500, Read), (600, Done)], 1599, false),
            (&[(500, Read), (600, Done)], 1600, true),
            // A long poll: read, no answer yet, an hour later still not idle.
            (&[(500, Read)], 3_600_000, false),
            // Two pipelined requests, only one answered.
            (&[(100, Read), (110, Read), (200, Done)], 10_000, false),
            (
                &[(100, Read), (110, Read), (200, Done), (5000, Done)],
                5999,
                false,
            ),
            (
                &[(100, Read), (110, Read), (200, Done), (5000, Done)],
                6000,
                true,
            ),
        ];
        for (events, at, expected) in cases {
            let start = Instant::now();
            let activity = Activity::new(start);
            for (offset, event) in events.iter() {
                let now = start + Duration::from_millis(*offset);
                match event {
                    Read => activity.request_read(now),
                    Done => activity.response_done(now),
                }
            }
            let now = start + Duration::from_millis(*at);
            assert_eq!(
                activity.is_idle(idle, now),
                *expected,
                "{} events, idle at {at} ms",
                events.len()
            );
        }
    }
}
