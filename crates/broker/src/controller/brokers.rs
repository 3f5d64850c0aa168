//! Brokers of a cluster, both sides: what this node's broker does
//! (register at start, heartbeat, ask for a controlled shutdown) and what the
//! active controller does with it (Kafka's ClusterControlManager and the
//! fencing paths of ReplicationControlManager).
//!
//! Invariants:
//! - Only the active controller fences or unfences, and only by committing a
//!   `ChangeBrokerFencing` record with the leadership changes of
//!   [`super::election`] in the same entry: a fenced broker leads nothing
//!   and is in no ISR but as the last member.
//! - A registration starts fenced, with the next broker epoch; its broker is
//!   unfenced by a heartbeat that shows it has applied the registration.
//! - A broker that cannot reach the controller keeps serving partitions
//!   with its last image; it never fences itself. It stops coordinating
//!   groups once its lease lapses (one session timeout after the last
//!   heartbeat answered "unfenced": crate::lease), before the controller
//!   fences it.
//! - A broker the controller fenced is unfenced only once it has applied
//!   its fencing, which carries the leadership moves: its image then knows
//!   who leads the partitions it led.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use sluice_meta::{BrokerRegistration, MetadataRecord};
use tokio::sync::watch;
use uuid::Uuid;

use super::channel::{ControllerReply, ControllerRequest};
use super::sessions::RegistrationRefused;
use super::{election, Controller, TopicError};
use crate::error_codes;

/// How often the active controller looks for expired sessions.
const FENCING_CHECK_INTERVAL_MS: u64 = 250;
/// How long a start waits for its registration to be accepted.
const REGISTRATION_DEADLINE_MS: u64 = 60_000;
/// How long the active controller takes at most to confirm its leadership
/// before it answers a heartbeat.
const HEARTBEAT_CONFIRM_TIMEOUT: Duration = Duration::from_millis(1_000);

/// This node's broker as the controller knows it.
pub(super) struct OwnBroker {
    /// A new random id per process (Kafka's incarnation id).
    incarnation_id: Uuid,
    /// The broker epoch of this process's registration (-1 before).
    broker_epoch: AtomicI64,
}

impl OwnBroker {
    pub(super) fn new() -> OwnBroker {
        OwnBroker {
            incarnation_id: Uuid::new_v4(),
            broker_epoch: AtomicI64::new(-1),
        }
    }
}

impl Controller {
    /// The broker epoch of this process's registration (-1 before it, and
    /// on a single node, which never registers through the controller).
    pub fn broker_epoch(&self) -> i64 {
        self.broker.broker_epoch.load(Ordering::Acquire)
    }

    fn now_ms(&self) -> u64 {
        self.clock.now_ms().max(0) as u64
    }

    fn unclean_default(&self) -> bool {
        self.settings.get_bool("unclean.leader.election.enable")
    }

    /// Registers this node's broker. A single node writes its registration
    /// itself, unfenced, unless the image holds the same one; in a cluster
    /// the active controller registers it (fenced, until its first heartbeat
    /// shows it caught up), refusing a second process with this node id.
    pub async fn register_broker(
        &self,
        registration: BrokerRegistration,
    ) -> Result<(), TopicError> {
        if !self.clustered {
            let registered = self.image().brokers.get(&registration.node_id).cloned();
            if !registered.is_some_and(|current| current.same_registration(&registration)) {
                self.commit(vec![MetadataRecord::RegisterBroker(registration)])
                    .await?;
            }
            return Ok(());
        }
        let request = ControllerRequest::RegisterBroker {
            registration,
            incarnation_id: self.broker.incarnation_id,
        };
        match self.request(request, REGISTRATION_DEADLINE_MS).await? {
            ControllerReply::Registered { broker_epoch } => {
                self.broker
                    .broker_epoch
                    .store(broker_epoch, Ordering::Release);
                tracing::info!(node_id = self.node_id, broker_epoch, "broker registered");
                Ok(())
            }
            other => Err(super::channel::unexpected(other)),
        }
    }

    /// One heartbeat of this node's broker; returns the controller's reply
    /// (fenced, shutdown granted). Re-registers when the controller no
    /// longer knows this registration.
    async fn heartbeat(&self, want_shutdown: bool) -> Result<(bool, bool), TopicError> {
        // Once a controlled shutdown began, every heartbeat asks for it (a
        // plain one would unfence the broker again).
        let want_shutdown = want_shutdown || self.shutting_down.load(Ordering::Acquire);
        let request = ControllerRequest::Heartbeat {
            node_id: self.node_id,
            broker_epoch: self.broker.broker_epoch.load(Ordering::Acquire),
            incarnation_id: self.broker.incarnation_id,
            metadata_offset: self.image().last_applied_index,
            want_shutdown,
        };
        let interval = self.settings.get_i64("broker.heartbeat.interval.ms").max(1) as u64;
        match self.request(request, interval.max(1_000)).await? {
            ControllerReply::Heartbeat {
                fenced,
                shutdown_granted,
            } => Ok((fenced, shutdown_granted)),
            other => Err(super::channel::unexpected(other)),
        }
    }

    /// Heartbeats every `broker.heartbeat.interval.ms` until `shutdown`.
    pub async fn run_heartbeats(&self, mut shutdown: watch::Receiver<bool>) {
        if !self.clustered || !self.serves_broker {
            return;
        }
        let interval = self.settings.get_i64("broker.heartbeat.interval.ms").max(1) as u64;
        let mut fenced_before = None;
        loop {
            // A heartbeat can wait long on a controller without a majority
            // (the last node of a stopping cluster): the shutdown ends it.
            let sent_at_ms = self.lease.now_ms();
            let beat = tokio::select! {
                beat = self.heartbeat(false) => beat,
                _ = shutdown.changed() => return,
            };
            match beat {
                Ok((fenced, _)) => {
                    if fenced {
                        self.lease.give_up();
                    } else {
                        self.lease.renew(sent_at_ms);
                    }
                    if fenced_before != Some(fenced) {
                        tracing::info!(
                            node_id = self.node_id,
                            fenced,
                            "broker state from the controller"
                        );
                        fenced_before = Some(fenced);
                    }
                }
                Err(error) if error.code == error_codes::STALE_BROKER_EPOCH => {
                    tracing::warn!(node_id = self.node_id, %error.message, "registering again");
                    if let Err(error) = self.register_broker(self.registration()).await {
                        tracing::warn!(node_id = self.node_id, ?error, "registering again failed");
                    }
                }
                Err(error) => {
                    tracing::debug!(node_id = self.node_id, ?error, "heartbeat failed");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(interval)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// This broker's current registration in the image (for re-registering).
    fn registration(&self) -> BrokerRegistration {
        self.image()
            .brokers
            .get(&self.node_id)
            .cloned()
            .unwrap_or_else(|| BrokerRegistration {
                node_id: self.node_id,
                ..BrokerRegistration::default()
            })
    }

    /// Controlled shutdown: asks the active controller to move this broker's
    /// leaderships away and take it out of every ISR, and waits until it
    /// grants the shutdown, at most `bound`. Returns whether it was granted.
    pub async fn controlled_shutdown(&self, bound: Duration) -> bool {
        self.shutting_down.store(true, Ordering::Release);
        let granted = self.controlled_shutdown_within(bound).await;
        self.stopping.store(true, Ordering::Release);
        granted
    }

    /// Whether the broker is past its controlled shutdown.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    async fn controlled_shutdown_within(&self, bound: Duration) -> bool {
        if !self.clustered || !self.serves_broker {
            return true;
        }
        let deadline = tokio::time::Instant::now() + bound;
        while tokio::time::Instant::now() < deadline {
            let attempt = tokio::time::timeout_at(deadline, self.heartbeat(true)).await;
            let Ok(attempt) = attempt else { break };
            match attempt {
                Ok((_, true)) => {
                    tracing::info!(node_id = self.node_id, "controlled shutdown granted");
                    return true;
                }
                Ok(_) => {}
                Err(error) => tracing::debug!(?error, "controlled shutdown request failed"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        tracing::warn!(
            node_id = self.node_id,
            ?bound,
            "controlled shutdown not granted in time; stopping"
        );
        false
    }

    // ---- the active controller's side

    /// Registers a broker: refused while another incarnation's session
    /// lives; otherwise the registration (fenced) replaces the old one, whose
    /// leaderships move. Returns the new broker epoch.
    pub(super) async fn serve_register_broker(
        &self,
        registration: BrokerRegistration,
        incarnation_id: Uuid,
    ) -> Result<i64, TopicError> {
        let node_id = registration.node_id;
        let now = self.now_ms();
        let fenced = self.image().brokers.get(&node_id).is_none_or(|b| b.fenced);
        let checked = self.sessions_mut(|sessions| {
            sessions.check_registration(node_id, Some(incarnation_id), fenced, now)
        });
        if let Err(RegistrationRefused::Duplicate) = checked {
            return Err(TopicError::new(
                error_codes::DUPLICATE_BROKER_REGISTRATION,
                format!(
                    "Another broker is registered with that broker id ({node_id}), and its \
                     session is alive: stop it first, or wait broker.session.timeout.ms after it died."
                ),
            ));
        }
        let unclean = self.unclean_default();
        let outcomes = self
            .decide_and_commit(|context| {
                let mut records = vec![MetadataRecord::RegisterBroker(BrokerRegistration {
                    fenced: true,
                    incarnation_id: Some(incarnation_id),
                    ..registration
                })];
                records.extend(election::on_broker_leaving(context.image, node_id, unclean));
                Ok(super::ControllerResult {
                    records,
                    response: (),
                })
            })
            .await;
        outcomes?;
        let image = self.image();
        let broker_epoch = image.brokers.get(&node_id).map_or(-1, |b| b.broker_epoch);
        let offset = image.last_applied_index;
        self.sessions_mut(|sessions| {
            sessions.registered(node_id, Some(incarnation_id), offset, now);
        });
        tracing::info!(
            node_id,
            broker_epoch,
            "registered a broker (fenced until it catches up)"
        );
        Ok(broker_epoch)
    }

    /// A broker's heartbeat: renews its session; unfences it once caught up;
    /// with `want_shutdown`, fences it (moving its leaderships) and grants
    /// the shutdown once it has applied that. Returns (fenced, granted).
    pub(super) async fn serve_heartbeat(
        &self,
        node_id: i32,
        broker_epoch: i64,
        incarnation_id: Uuid,
        metadata_offset: u64,
        want_shutdown: bool,
    ) -> Result<(bool, bool), TopicError> {
        // The answer renews the broker's lease (crate::lease): it must come
        // from the controller a majority follows, with an image that has
        // every committed fencing. A deposed controller that resumed from a
        // pause would otherwise tell itself "unfenced" from its old image.
        if let Err(error) = self
            .quorum
            .confirm_leadership(HEARTBEAT_CONFIRM_TIMEOUT)
            .await
        {
            return Err(TopicError::new(
                error_codes::NOT_CONTROLLER,
                format!("This node is not the active controller: {error}"),
            ));
        }
        let image = self.image();
        let Some(registration) = image.brokers.get(&node_id) else {
            return Err(TopicError::new(
                error_codes::BROKER_ID_NOT_REGISTERED,
                format!("Broker {node_id} is not registered."),
            ));
        };
        if registration.broker_epoch != broker_epoch {
            return Err(TopicError::new(
                error_codes::STALE_BROKER_EPOCH,
                format!(
                    "Broker {node_id} heartbeat with epoch {broker_epoch}, but its registration has epoch {}.",
                    registration.broker_epoch
                ),
            ));
        }
        let now = self.now_ms();
        self.sessions_mut(|sessions| sessions.touch(node_id, Some(incarnation_id), now));
        let unclean = self.unclean_default();
        if want_shutdown {
            if !registration.fenced {
                self.fence(node_id, broker_epoch, unclean).await?;
                let offset = self.image().last_applied_index;
                self.sessions_mut(|sessions| sessions.shutting_down(node_id, offset));
            } else if !self.sessions_mut(|sessions| sessions.is_shutting_down(node_id)) {
                // Fenced already (by a previous controller, whose sessions
                // this one does not have, or by its session): the shutdown
                // goes once the broker has applied what this one has.
                let offset = self.image().last_applied_index;
                self.sessions_mut(|sessions| sessions.shutting_down(node_id, offset));
            }
            let granted =
                self.sessions_mut(|sessions| sessions.shutdown_granted(node_id, metadata_offset));
            return Ok((true, granted));
        }
        let caught_up = self.sessions_mut(|sessions| sessions.caught_up(node_id, metadata_offset));
        if registration.fenced && caught_up {
            self.decide_and_commit(|context| {
                let unfence = MetadataRecord::ChangeBrokerFencing {
                    node_id,
                    broker_epoch,
                    fenced: false,
                };
                let mut after = context.image.clone();
                after.apply(&unfence);
                let mut records = vec![unfence];
                records.extend(election::on_broker_unfenced(&after, node_id, unclean));
                Ok(super::ControllerResult {
                    records,
                    response: (),
                })
            })
            .await?;
            tracing::info!(node_id, broker_epoch, "unfenced a broker");
            return Ok((false, false));
        }
        Ok((registration.fenced, false))
    }

    /// Fences a broker: one entry with the fencing and the leadership moves.
    async fn fence(
        &self,
        node_id: i32,
        broker_epoch: i64,
        unclean: bool,
    ) -> Result<(), TopicError> {
        self.decide_and_commit(|context| {
            let current = context.image.brokers.get(&node_id);
            if current.is_none_or(|b| b.fenced || b.broker_epoch != broker_epoch) {
                return Ok(super::ControllerResult {
                    records: Vec::new(),
                    response: (),
                });
            }
            let mut records = vec![MetadataRecord::ChangeBrokerFencing {
                node_id,
                broker_epoch,
                fenced: true,
            }];
            records.extend(election::on_broker_leaving(context.image, node_id, unclean));
            Ok(super::ControllerResult {
                records,
                response: (),
            })
        })
        .await?;
        let offset = self.image().last_applied_index;
        self.sessions_mut(|sessions| sessions.fenced_at(node_id, offset));
        Ok(())
    }

    fn sessions_mut<R>(&self, f: impl FnOnce(&mut super::sessions::BrokerSessions) -> R) -> R {
        let mut sessions = match self.sessions.lock() {
            Ok(sessions) => sessions,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut sessions)
    }

    /// The active controller's duties, on every node (acting only while it
    /// is the active controller): fence brokers whose session expired, and
    /// move leadership back to preferred replicas every
    /// `leader.imbalance.check.interval.seconds` when
    /// `auto.leader.rebalance.enable`.
    pub async fn run_duties(&self, mut shutdown: watch::Receiver<bool>) {
        if !self.clustered {
            return;
        }
        let rebalance = self.settings.get_bool("auto.leader.rebalance.enable");
        let rebalance_every_ms = (self
            .settings
            .get_i64("leader.imbalance.check.interval.seconds")
            .max(1) as u64)
            .saturating_mul(1000);
        let mut was_active = false;
        let mut next_rebalance_ms = 0;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(FENCING_CHECK_INTERVAL_MS)) => {}
                _ = shutdown.changed() => return,
            }
            let active = self.quorum.is_active_controller();
            let now = self.now_ms();
            if active && !was_active {
                let image = self.image();
                self.sessions_mut(|sessions| sessions.reset(&image, now));
                next_rebalance_ms = now.saturating_add(rebalance_every_ms);
                tracing::info!(node_id = self.node_id, "this node is the active controller");
            }
            was_active = active;
            if !active {
                continue;
            }
            let expired = self.sessions_mut(|sessions| sessions.expired(&self.image(), now));
            for (node_id, broker_epoch) in expired {
                tracing::warn!(
                    node_id,
                    broker_epoch,
                    "fencing a broker whose session expired"
                );
                if let Err(error) = self
                    .fence(node_id, broker_epoch, self.unclean_default())
                    .await
                {
                    tracing::warn!(node_id, ?error, "fencing failed");
                }
            }
            if rebalance && now >= next_rebalance_ms {
                next_rebalance_ms = now.saturating_add(rebalance_every_ms);
                if let Err(error) = self.elect_preferred_leaders(None).await {
                    tracing::warn!(?error, "preferred leader election failed");
                }
            }
        }
    }

    /// Moves leadership to preferred replicas (all partitions, or those
    /// `only` selects); returns how many partitions moved.
    pub async fn elect_preferred_leaders(
        &self,
        only: Option<&std::collections::BTreeSet<(String, i32)>>,
    ) -> Result<usize, TopicError> {
        self.decide_and_commit(|context| {
            let records = election::preferred_leaders(context.image, only);
            let moved = records.len();
            Ok(super::ControllerResult {
                records,
                response: moved,
            })
        })
        .await
    }
}
