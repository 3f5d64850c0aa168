//! Broker sessions on the active controller (Kafka's BrokerHeartbeatManager):
//! when each broker last heartbeated, and which of them are due to be
//! fenced. Pure: the caller passes the time (the controller's monotonic
//! milliseconds). Sessions live in the memory of the active controller only;
//! a node that becomes active starts every registered broker's session at
//! that moment ([`BrokerSessions::reset`]), as Kafka's new controller does.

use std::collections::BTreeMap;

use sluice_meta::ClusterImage;
use uuid::Uuid;

/// One broker's session.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Session {
    /// The last heartbeat (or registration), controller milliseconds.
    last_contact_ms: u64,
    /// The process that registered.
    incarnation_id: Option<Uuid>,
    /// The metadata offset the broker must have applied to be unfenced:
    /// that of its registration, or of its last fencing.
    unfence_at_offset: u64,
    /// Set once the broker asked to shut down and was fenced for it: the
    /// offset it must have applied before the shutdown is granted.
    shutdown_at_offset: Option<u64>,
}

/// Why a registration is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrationRefused {
    /// Another process holds this node id and its session is alive.
    Duplicate,
}

/// Every broker's session, keyed by node id.
#[derive(Clone, Debug)]
pub struct BrokerSessions {
    /// `broker.session.timeout.ms`.
    timeout_ms: u64,
    sessions: BTreeMap<i32, Session>,
}

impl BrokerSessions {
    /// No sessions yet.
    pub fn new(timeout_ms: u64) -> BrokerSessions {
        BrokerSessions {
            timeout_ms,
            sessions: BTreeMap::new(),
        }
    }

    /// Starts a session for every broker of `image` at `now_ms` (this node
    /// just became the active controller), keeping none of the old ones.
    pub fn reset(&mut self, image: &ClusterImage, now_ms: u64) {
        self.sessions = image
            .brokers
            .values()
            .map(|broker| {
                // A broker fenced before this controller took over is
                // unfenced once it has applied what this controller has:
                // its fencing is in there.
                let unfence_at_offset = if broker.fenced {
                    image.last_applied_index
                } else {
                    0
                };
                let session = Session {
                    last_contact_ms: now_ms,
                    incarnation_id: broker.incarnation_id,
                    unfence_at_offset,
                    shutdown_at_offset: None,
                };
                (broker.node_id, session)
            })
            .collect();
    }

    /// Whether `node`'s session is alive at `now_ms`.
    pub fn alive(&self, node: i32, now_ms: u64) -> bool {
        self.sessions
            .get(&node)
            .is_some_and(|session| now_ms.saturating_sub(session.last_contact_ms) < self.timeout_ms)
    }

    /// Checks a registration by `incarnation_id`: refused while another
    /// incarnation's session is alive and its registration unfenced (Kafka's
    /// DUPLICATE_BROKER_REGISTRATION; a fenced broker, for instance one
    /// that shut down cleanly, has no valid session).
    pub fn check_registration(
        &self,
        node: i32,
        incarnation_id: Option<Uuid>,
        registered_fenced: bool,
        now_ms: u64,
    ) -> Result<(), RegistrationRefused> {
        match self.sessions.get(&node) {
            Some(session)
                if !registered_fenced
                    && session.incarnation_id != incarnation_id
                    && self.alive(node, now_ms) =>
            {
                Err(RegistrationRefused::Duplicate)
            }
            _ => Ok(()),
        }
    }

    /// Starts the session of a new registration; the broker is unfenced once
    /// it has applied `registered_at_offset`.
    pub fn registered(
        &mut self,
        node: i32,
        incarnation_id: Option<Uuid>,
        registered_at_offset: u64,
        now_ms: u64,
    ) {
        self.sessions.insert(
            node,
            Session {
                last_contact_ms: now_ms,
                incarnation_id,
                unfence_at_offset: registered_at_offset,
                shutdown_at_offset: None,
            },
        );
    }

    /// A heartbeat from `node`: renews its session (starting one when this
    /// controller has none, as after a restart of the controller).
    pub fn touch(&mut self, node: i32, incarnation_id: Option<Uuid>, now_ms: u64) {
        let session = self.sessions.entry(node).or_insert(Session {
            last_contact_ms: now_ms,
            incarnation_id,
            unfence_at_offset: 0,
            shutdown_at_offset: None,
        });
        session.last_contact_ms = now_ms;
    }

    /// Notes that `node` was fenced by the entry at `offset`: it is unfenced
    /// only once it has applied that entry, and with it the leadership
    /// moves away from it (a broker that comes back from a pause or a
    /// partition must not lead, or coordinate, on its stale image).
    pub fn fenced_at(&mut self, node: i32, offset: u64) {
        if let Some(session) = self.sessions.get_mut(&node) {
            session.unfence_at_offset = session.unfence_at_offset.max(offset);
        }
    }

    /// Whether a broker that has applied `metadata_offset` may be unfenced.
    pub fn caught_up(&self, node: i32, metadata_offset: u64) -> bool {
        self.sessions
            .get(&node)
            .is_some_and(|session| metadata_offset >= session.unfence_at_offset)
    }

    /// Notes that `node` was fenced to shut down by the entry at `offset`.
    pub fn shutting_down(&mut self, node: i32, offset: u64) {
        if let Some(session) = self.sessions.get_mut(&node) {
            session.shutdown_at_offset = Some(offset);
        }
    }

    /// Whether `node` asked for its shutdown since this controller took
    /// over.
    pub fn is_shutting_down(&self, node: i32) -> bool {
        self.sessions
            .get(&node)
            .is_some_and(|session| session.shutdown_at_offset.is_some())
    }

    /// Whether `node`'s shutdown may be granted: it was fenced for it and
    /// has applied that change.
    pub fn shutdown_granted(&self, node: i32, metadata_offset: u64) -> bool {
        self.sessions
            .get(&node)
            .and_then(|session| session.shutdown_at_offset)
            .is_some_and(|offset| metadata_offset >= offset)
    }

    /// The unfenced brokers of `image` whose session expired at `now_ms`
    /// (or that have none), with their broker epochs.
    pub fn expired(&self, image: &ClusterImage, now_ms: u64) -> Vec<(i32, i64)> {
        image
            .brokers
            .values()
            .filter(|broker| !broker.fenced && !self.alive(broker.node_id, now_ms))
            .map(|broker| (broker.node_id, broker.broker_epoch))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use sluice_meta::BrokerRegistration;

    use super::*;

    fn image(brokers: &[(i32, bool)]) -> ClusterImage {
        let mut image = ClusterImage::default();
        for &(node_id, fenced) in brokers {
            image.brokers.insert(
                node_id,
                BrokerRegistration {
                    node_id,
                    fenced,
                    broker_epoch: 10 + node_id as i64,
                    ..BrokerRegistration::default()
                },
            );
        }
        image
    }

    #[test]
    fn a_broker_without_a_heartbeat_for_the_session_timeout_is_due_to_be_fenced() {
        let image = image(&[(1, false), (2, false), (3, true)]);
        let mut sessions = BrokerSessions::new(9_000);
        sessions.reset(&image, 1_000);
        assert!(sessions.expired(&image, 9_999).is_empty());
        sessions.touch(1, None, 5_000);
        // Broker 3 is fenced already: not again.
        assert_eq!(sessions.expired(&image, 10_000), vec![(2, 12)]);
        assert_eq!(sessions.expired(&image, 14_000), vec![(1, 11), (2, 12)]);
    }

    #[test]
    fn a_second_incarnation_is_refused_while_the_first_session_lives() {
        let first = Some(Uuid::from_u128(1));
        let second = Some(Uuid::from_u128(2));
        let mut sessions = BrokerSessions::new(9_000);
        sessions.registered(1, first, 5, 0);
        assert_eq!(sessions.check_registration(1, first, false, 100), Ok(()));
        assert_eq!(
            sessions.check_registration(1, second, false, 8_999),
            Err(RegistrationRefused::Duplicate)
        );
        // After a clean shutdown the old registration is fenced.
        assert_eq!(sessions.check_registration(1, second, true, 8_999), Ok(()));
        // After kill -9 the old session expires and the new process is accepted.
        assert_eq!(sessions.check_registration(1, second, false, 9_000), Ok(()));
    }

    #[test]
    fn unfencing_waits_for_the_registration_to_be_applied() {
        let mut sessions = BrokerSessions::new(9_000);
        sessions.registered(2, None, 40, 0);
        assert!(!sessions.caught_up(2, 39));
        assert!(sessions.caught_up(2, 40));
    }

    #[test]
    fn a_broker_fenced_for_its_session_is_unfenced_only_once_it_applied_the_fencing() {
        let mut sessions = BrokerSessions::new(4_000);
        sessions.registered(2, None, 40, 0);
        assert!(sessions.caught_up(2, 40));
        // Paused or cut off: fenced by the entry at 75, with its leaderships.
        sessions.fenced_at(2, 75);
        // It comes back with the image it had: still fenced.
        assert!(!sessions.caught_up(2, 60));
        assert!(sessions.caught_up(2, 75));
        // An older fencing never lowers the bar.
        sessions.fenced_at(2, 50);
        assert!(!sessions.caught_up(2, 74));
    }

    #[test]
    fn a_new_controller_unfences_an_already_fenced_broker_once_it_caught_up_with_it() {
        let mut image = image(&[(1, false), (2, true)]);
        image.last_applied_index = 90;
        let mut sessions = BrokerSessions::new(4_000);
        sessions.reset(&image, 0);
        assert!(sessions.caught_up(1, 0));
        assert!(!sessions.caught_up(2, 89));
        assert!(sessions.caught_up(2, 90));
    }

    #[test]
    fn shutdown_is_granted_once_the_broker_applied_its_fencing() {
        let mut sessions = BrokerSessions::new(9_000);
        sessions.registered(2, None, 1, 0);
        assert!(!sessions.shutdown_granted(2, 100));
        sessions.shutting_down(2, 50);
        assert!(!sessions.shutdown_granted(2, 49));
        assert!(sessions.shutdown_granted(2, 50));
    }
}
