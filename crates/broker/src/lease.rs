//! The broker's lease in a cluster: how long this node may still act on
//! its own image as a group coordinator without having heard from the
//! active controller.
//!
//! A node that is paused, or cut off from the controller, keeps its last
//! image and still believes it leads the `__consumer_offsets` partitions it
//! led. The controller fences it one `broker.session.timeout.ms` after the
//! last heartbeat it *received* and a new leader takes over its groups; a
//! client that still asks the old node (its cached coordinator) would get
//! the old node's in-memory offsets, older than what the new coordinator
//! acknowledged meanwhile (docs/FAULTS.md #4). So a heartbeat answered
//! "unfenced" renews the lease until one session timeout after the
//! heartbeat was *sent*, which is never later than the controller's
//! fencing; a reply "fenced" ends it at once. The controller unfences a
//! broker it fenced only once the broker has applied that fencing
//! (`controller::sessions`), so a renewed lease comes with an image that
//! knows who leads now.
//!
//! Pure [`LeaseState`] (the caller passes the time) and the [`BrokerLease`]
//! the runtime shares: the heartbeat loop renews it, the group coordinator
//! asks it. A single node never has a controller to lose: its lease always
//! holds. Kafka has no such lease (its brokers keep serving with their last
//! image); this one narrows what a stale coordinator can answer.

use parking_lot::Mutex;

use crate::clock::Clock;

/// The lease: held until a time, or not held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseState {
    /// `broker.session.timeout.ms`.
    timeout_ms: i64,
    /// Held while the time is before this; `None`: not held.
    until_ms: Option<i64>,
}

impl LeaseState {
    /// A lease of `timeout_ms`, not held yet (until the first heartbeat
    /// that finds the broker unfenced).
    pub fn new(timeout_ms: i64) -> LeaseState {
        LeaseState {
            timeout_ms: timeout_ms.max(0),
            until_ms: None,
        }
    }

    /// A heartbeat sent at `sent_at_ms` found the broker unfenced: the lease
    /// holds until one timeout after it (never shortened by a late reply to
    /// an earlier heartbeat).
    pub fn renew(&mut self, sent_at_ms: i64) {
        let until = sent_at_ms.saturating_add(self.timeout_ms);
        self.until_ms = Some(self.until_ms.map_or(until, |current| current.max(until)));
    }

    /// The controller answered "fenced": the lease ends now.
    pub fn give_up(&mut self) {
        self.until_ms = None;
    }

    /// Whether the lease holds at `now_ms`.
    pub fn holds(&self, now_ms: i64) -> bool {
        self.until_ms.is_some_and(|until| now_ms < until)
    }
}

/// The lease the runtime shares (see the module docs).
#[derive(Debug)]
pub struct BrokerLease {
    /// `None`: a single node, whose lease always holds.
    state: Option<Mutex<LeaseState>>,
    clock: Clock,
}

impl BrokerLease {
    /// The lease of a broker of a cluster, of `broker.session.timeout.ms`.
    pub fn clustered(timeout_ms: i64) -> BrokerLease {
        BrokerLease {
            state: Some(Mutex::new(LeaseState::new(timeout_ms))),
            clock: Clock::new(),
        }
    }

    /// The lease of a node that has no controller to lose: always held.
    pub fn always() -> BrokerLease {
        BrokerLease {
            state: None,
            clock: Clock::new(),
        }
    }

    /// The lease's time now (take it before sending a heartbeat).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// A heartbeat sent at `sent_at_ms` found the broker unfenced.
    pub fn renew(&self, sent_at_ms: i64) {
        if let Some(state) = &self.state {
            state.lock().renew(sent_at_ms);
        }
    }

    /// The controller answered "fenced".
    pub fn give_up(&self) {
        if let Some(state) = &self.state {
            state.lock().give_up();
        }
    }

    /// Whether the lease holds now.
    pub fn holds(&self) -> bool {
        match &self.state {
            None => true,
            Some(state) => state.lock().holds(self.clock.now_ms()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_is_not_held_before_the_first_unfenced_heartbeat() {
        let lease = LeaseState::new(4_000);
        assert!(!lease.holds(0));
        assert!(!lease.holds(1_000_000));
    }

    #[test]
    fn an_unfenced_heartbeat_holds_the_lease_one_timeout_from_when_it_was_sent() {
        let mut lease = LeaseState::new(4_000);
        lease.renew(10_000);
        assert!(lease.holds(10_000));
        assert!(lease.holds(13_999));
        // The controller fences one timeout after it *received* the
        // heartbeat, never earlier than this.
        assert!(!lease.holds(14_000));
    }

    #[test]
    fn a_late_reply_to_an_older_heartbeat_does_not_shorten_the_lease() {
        let mut lease = LeaseState::new(4_000);
        lease.renew(20_000);
        lease.renew(18_000);
        assert!(lease.holds(23_999));
    }

    #[test]
    fn a_pause_longer_than_the_timeout_lapses_the_lease_until_the_next_unfenced_heartbeat() {
        let mut lease = LeaseState::new(4_000);
        lease.renew(1_000);
        // SIGSTOP from 2 s to 10 s: on waking the lease has lapsed, whatever
        // the image still says.
        assert!(!lease.holds(10_000));
        lease.renew(10_100);
        assert!(lease.holds(10_200));
    }

    #[test]
    fn a_fenced_reply_ends_the_lease_at_once() {
        let mut lease = LeaseState::new(4_000);
        lease.renew(1_000);
        lease.give_up();
        assert!(!lease.holds(1_001));
    }

    #[test]
    fn a_single_node_always_holds_its_lease() {
        let lease = BrokerLease::always();
        assert!(lease.holds());
        lease.give_up();
        assert!(lease.holds());
        let clustered = BrokerLease::clustered(4_000);
        assert!(!clustered.holds());
        clustered.renew(clustered.now_ms());
        assert!(clustered.holds());
    }
}
