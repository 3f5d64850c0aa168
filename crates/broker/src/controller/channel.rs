//! The broker-to-controller channel (Kafka's NodeToControllerChannelManager
//! and the controller's ControllerApis): every metadata change a broker is
//! asked for is decided by the active controller.
//!
//! A broker that is not the active controller sends a [`ControllerRequest`]
//! over the controller listener to the quorum leader, which serves it with
//! its own [`Controller`] and answers with the result and the metadata
//! offset it had applied. The sender then waits until its own image has
//! applied that offset, so a client that created a topic through it sees the
//! topic in its next Metadata. Kafka forwards the client's request itself
//! (in an Envelope); Sluice forwards the decoded request, which is what the
//! controller reads either way. The encoding is JSON: these are small,
//! rare messages, and the quorum's frames are JSON already.
//!
//! A request that reaches a node which is no longer the leader is answered
//! NOT_CONTROLLER and retried, with backoff, until the deadline.

use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sluice_meta::{BrokerRegistration, ControllerService, MetaError};
use uuid::Uuid;

use super::{ConfigOp, ConfigResource, Controller, CreatedTopic, TopicError, TopicSpec};
use crate::error_codes;

/// How long one exchange with the leader may take.
const EXCHANGE_TIMEOUT_MS: u64 = 15_000;
/// The least an exchange is given, even when the deadline is nearer.
const EXCHANGE_TIMEOUT_MIN_MS: u64 = 200;
/// How long a forwarded change may take in all, retries included.
pub(crate) const FORWARD_DEADLINE_MS: u64 = 30_000;
/// How long the sender waits for its image to catch up with the answer.
const CATCH_UP_TIMEOUT_MS: u64 = 10_000;
/// First and longest wait between attempts.
const RETRY_DELAY_MIN_MS: u64 = 50;
const RETRY_DELAY_MAX_MS: u64 = 1_000;

/// A request to the active controller.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ControllerRequest {
    /// CreateTopics (one topic), or an auto-creation.
    CreateTopic {
        spec: TopicSpec,
        validate_only: bool,
    },
    /// DeleteTopics (one topic).
    DeleteTopic { name: String },
    /// AlterConfigs / IncrementalAlterConfigs (one resource).
    AlterConfigs {
        resource: ConfigResource,
        ops: Vec<ConfigOp>,
        replace_all: bool,
        validate_only: bool,
    },
    /// CreatePartitions (one topic).
    CreatePartitions {
        name: String,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    },
    /// ElectLeaders: the partitions (every one when `None`).
    ElectLeaders {
        election: super::election::ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    },
    /// AllocateProducerIds.
    AllocateProducerIds { node_id: i32, count: i64 },
    /// BrokerRegistration.
    RegisterBroker {
        registration: BrokerRegistration,
        incarnation_id: Uuid,
    },
    /// DescribeQuorum: the leader's view of the metadata quorum.
    DescribeQuorum,
    /// AlterPartition (one partition): a leader's ISR change.
    AlterPartition(super::alter_partition::AlterPartition),
    /// BrokerHeartbeat; `want_shutdown` asks for a controlled shutdown.
    Heartbeat {
        node_id: i32,
        broker_epoch: i64,
        incarnation_id: Uuid,
        metadata_offset: u64,
        want_shutdown: bool,
    },
}

/// The controller's answer to a [`ControllerRequest`], of the same kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ControllerReply {
    CreatedTopic(CreatedTopic),
    DeletedTopic(Uuid),
    Done,
    ProducerIds {
        first_producer_id: i64,
    },
    Registered {
        broker_epoch: i64,
    },
    Heartbeat {
        fenced: bool,
        shutdown_granted: bool,
    },
    Quorum(sluice_meta::QuorumStatus),
    /// AlterPartition: the partition epoch of the committed change.
    PartitionEpoch(i32),
    /// ElectLeaders: the outcome of each partition.
    Elections(Vec<super::election::PartitionElection>),
}

/// What travels back: the reply, and the metadata offset the controller
/// had applied when it answered.
#[derive(Debug, Serialize, Deserialize)]
struct ControllerAnswer {
    result: Result<ControllerReply, TopicError>,
    applied_index: u64,
}

/// Serves forwarded requests on the active controller. Holds the
/// controller weakly: the quorum holds this, and the controller the quorum.
pub(crate) struct ControllerEndpoint(pub(crate) Weak<Controller>);

impl ControllerService for ControllerEndpoint {
    fn handle(
        &self,
        request: Vec<u8>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<u8>> + Send>> {
        let controller = self.0.upgrade();
        Box::pin(async move {
            let result = match (controller.as_ref(), serde_json::from_slice(&request)) {
                (None, _) => Err(not_controller("the controller is shutting down")),
                (Some(_), Err(error)) => Err(TopicError::new(
                    error_codes::INVALID_REQUEST,
                    format!("unreadable controller request: {error}"),
                )),
                (Some(controller), Ok(request)) => controller.serve(request).await,
            };
            let applied_index = controller
                .as_ref()
                .map_or(0, |c| c.image().last_applied_index);
            let answer = ControllerAnswer {
                result,
                applied_index,
            };
            serde_json::to_vec(&answer).unwrap_or_default()
        })
    }
}

fn not_controller(message: impl Into<String>) -> TopicError {
    TopicError::new(error_codes::NOT_CONTROLLER, message)
}

impl Controller {
    /// Sends `request` to the active controller (serving it here when this
    /// node is that controller, or when this node is a cluster alone) and
    /// retries while leadership moves, until `deadline_ms` has passed.
    pub(crate) async fn request(
        &self,
        request: ControllerRequest,
        deadline_ms: u64,
    ) -> Result<ControllerReply, TopicError> {
        if !self.clustered {
            return self.serve(request).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_millis(deadline_ms);
        let mut delay = Duration::from_millis(RETRY_DELAY_MIN_MS);
        let mut last_error;
        loop {
            let attempt = self.attempt(&request, deadline).await;
            match attempt {
                Err(error) if error.code == error_codes::NOT_CONTROLLER => last_error = error,
                other => return other,
            }
            if self.is_stopping() || tokio::time::Instant::now() + delay >= deadline {
                return Err(last_error);
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_millis(RETRY_DELAY_MAX_MS));
        }
    }

    /// One try: served here when this node leads, else sent to the leader,
    /// waiting for its answer no longer than `deadline` (a heartbeat's
    /// deadline is about its interval). A leader that cannot be reached
    /// counts as NOT_CONTROLLER (retried).
    async fn attempt(
        &self,
        request: &ControllerRequest,
        deadline: tokio::time::Instant,
    ) -> Result<ControllerReply, TopicError> {
        if self.quorum.is_active_controller() {
            return self.serve(request.clone()).await;
        }
        let bytes = serde_json::to_vec(request)
            .map_err(|e| TopicError::new(error_codes::UNKNOWN_SERVER_ERROR, e.to_string()))?;
        let timeout = Duration::from_millis(EXCHANGE_TIMEOUT_MS)
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .max(Duration::from_millis(EXCHANGE_TIMEOUT_MIN_MS));
        let answer = match self.quorum.call_controller(bytes, timeout).await {
            Ok(answer) => answer,
            Err(MetaError::ShutDown) => {
                return Err(TopicError::new(
                    error_codes::UNKNOWN_SERVER_ERROR,
                    "the broker is shutting down",
                ))
            }
            Err(error) => return Err(not_controller(error.to_string())),
        };
        let answer: ControllerAnswer = serde_json::from_slice(&answer).map_err(|e| {
            not_controller(format!("unreadable answer of the active controller: {e}"))
        })?;
        if answer.result.is_ok() {
            let timeout = Duration::from_millis(CATCH_UP_TIMEOUT_MS);
            if self
                .quorum
                .wait_for_applied(answer.applied_index, timeout)
                .await
            {
                self.apply_locally(&self.quorum.image());
            }
        }
        answer.result
    }

    /// Serves a request as the active controller.
    pub(crate) async fn serve(
        &self,
        request: ControllerRequest,
    ) -> Result<ControllerReply, TopicError> {
        match request {
            ControllerRequest::CreateTopic {
                spec,
                validate_only,
            } => self
                .serve_create_topic(spec, validate_only)
                .await
                .map(ControllerReply::CreatedTopic),
            ControllerRequest::DeleteTopic { name } => self
                .serve_delete_topic(&name)
                .await
                .map(ControllerReply::DeletedTopic),
            ControllerRequest::AlterConfigs {
                resource,
                ops,
                replace_all,
                validate_only,
            } => self
                .serve_alter_configs(resource, ops, replace_all, validate_only)
                .await
                .map(|()| ControllerReply::Done),
            ControllerRequest::CreatePartitions {
                name,
                count,
                assignments,
                validate_only,
            } => self
                .serve_create_partitions(&name, count, assignments, validate_only)
                .await
                .map(|()| ControllerReply::Done),
            ControllerRequest::ElectLeaders {
                election,
                partitions,
            } => self
                .serve_elect_leaders(election, partitions)
                .await
                .map(ControllerReply::Elections),
            ControllerRequest::AllocateProducerIds { node_id, count } => self
                .serve_allocate_producer_ids(node_id, count)
                .await
                .map(|first_producer_id| ControllerReply::ProducerIds { first_producer_id }),
            ControllerRequest::RegisterBroker {
                registration,
                incarnation_id,
            } => self
                .serve_register_broker(registration, incarnation_id)
                .await
                .map(|broker_epoch| ControllerReply::Registered { broker_epoch }),
            ControllerRequest::AlterPartition(request) => self
                .serve_alter_partition(request)
                .await
                .map(ControllerReply::PartitionEpoch),
            ControllerRequest::DescribeQuorum => {
                Ok(ControllerReply::Quorum(self.quorum.quorum_status()))
            }
            ControllerRequest::Heartbeat {
                node_id,
                broker_epoch,
                incarnation_id,
                metadata_offset,
                want_shutdown,
            } => self
                .serve_heartbeat(
                    node_id,
                    broker_epoch,
                    incarnation_id,
                    metadata_offset,
                    want_shutdown,
                )
                .await
                .map(|(fenced, shutdown_granted)| ControllerReply::Heartbeat {
                    fenced,
                    shutdown_granted,
                }),
        }
    }
}

/// The reply of the wrong kind: a bug between two builds of Sluice.
pub(crate) fn unexpected(reply: ControllerReply) -> TopicError {
    TopicError::new(
        error_codes::UNKNOWN_SERVER_ERROR,
        format!("unexpected answer of the active controller: {reply:?}"),
    )
}

/// An `Arc<Controller>`'s endpoint for the quorum.
pub(crate) fn endpoint(controller: &Arc<Controller>) -> Arc<ControllerEndpoint> {
    Arc::new(ControllerEndpoint(Arc::downgrade(controller)))
}
