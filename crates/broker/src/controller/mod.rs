//! The controller: every metadata change this broker makes.
//!
//! Shaped as Kafka's QuorumController divides it. Each control manager
//! ([`topics`], [`configs`], [`producer_ids`]) is a pure function of a
//! request and the current [`ClusterImage`] (plus the broker's settings, in a
//! [`ControllerContext`]): it validates and returns a [`ControllerResult`],
//! the records to append and the response, or a [`TopicError`]. Nothing
//! changes until [`commit`] has proposed the records through the metadata
//! quorum, the state machine has applied them, and this node has reconciled
//! its partitions. The state machine has the last word: it refuses a
//! CreateTopic for a name that exists (two proposers racing) and it assigns
//! producer-id blocks.
//!
//! [`Controller`] is the runtime around the managers: its lock serializes
//! validate-then-propose on this node, so a validation is never made against
//! an image another change is about to replace.

use std::sync::Arc;

use sluice_meta::{ClusterImage, MetaError, MetadataRecord, RecordOutcome, RecordRejected};
use uuid::Uuid;

use crate::config::{DynamicBrokerConfigs, Settings};
use crate::error_codes;
use crate::lease::BrokerLease;
use sluice_meta::MetadataQuorum;

use crate::replica_manager::ReplicaManager;

pub mod alter_partition;
mod brokers;
pub(crate) mod channel;
pub mod configs;
pub mod election;
pub mod placement;
pub mod producer_ids;
pub mod sessions;
pub mod topics;

#[cfg(test)]
mod tests;

pub use configs::{ConfigOp, ConfigResource};
pub use topics::{validate_topic_name, CreatedTopic, TopicSpec, TOPIC_NAME_CHARS_MAX};

/// A Kafka error for one topic (or config resource): the code and message
/// the handler puts in its response.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TopicError {
    /// Kafka error code (`error_codes`).
    pub code: i16,
    /// Kafka's message for it, byte for byte.
    pub message: String,
}

impl TopicError {
    pub(crate) fn new(code: i16, message: impl Into<String>) -> TopicError {
        TopicError {
            code,
            message: message.into(),
        }
    }
}

/// What a control manager decided (Kafka's ControllerResult): the records
/// to append, and the response to give once they are applied.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerResult<R> {
    /// Records to propose as one entry; empty when nothing changes.
    pub records: Vec<MetadataRecord>,
    /// The response for the requester.
    pub response: R,
}

impl<R> ControllerResult<R> {
    /// The same decision with nothing to append when the request only
    /// validates (`validate_only`): the response is what would be.
    pub fn validated_only(self, validate_only: bool) -> ControllerResult<R> {
        if validate_only {
            ControllerResult {
                records: Vec::new(),
                ..self
            }
        } else {
            self
        }
    }
}

/// What a control manager reads besides the request.
#[derive(Clone, Copy)]
pub struct ControllerContext<'a> {
    /// The image the decision is made against.
    pub image: &'a ClusterImage,
    /// This broker's static settings (defaults under the dynamic configs).
    pub settings: &'a Settings,
    /// This broker's node id (selects its dynamic per-broker configs).
    pub node_id: i32,
}

impl ControllerContext<'_> {
    /// The dynamic broker configs of this node in the image.
    pub fn dynamic_configs(&self) -> DynamicBrokerConfigs {
        DynamicBrokerConfigs::from_image(self.image, self.node_id)
    }

    /// A broker config's effective value as a number (as
    /// `MetadataView::broker_config_i64`, against this image).
    pub fn broker_config_i64(&self, name: &str) -> i64 {
        let (value, _) = self.settings.broker_value(&self.dynamic_configs(), name);
        crate::config::parse_number(name, &value)
    }
}

/// The controller runtime: runs a control manager against the current
/// image and commits its records. What it needs of the broker: the quorum,
/// this node's id and settings, and the replica manager to reconcile.
pub struct Controller {
    node_id: i32,
    settings: Arc<Settings>,
    quorum: Arc<MetadataQuorum>,
    replicas: Arc<ReplicaManager>,
    /// Serializes validate-then-propose on this node.
    lock: tokio::sync::Mutex<()>,
    /// A cluster of several voters: changes go to the active controller,
    /// brokers register, heartbeat and can be fenced. A single node decides
    /// alone and is never fenced.
    clustered: bool,
    /// This node serves clients (Kafka's `process.roles` has `broker`): it
    /// registers, heartbeats and shuts down under control. A node that is
    /// only a controller does none of that.
    serves_broker: bool,
    /// This node's broker: its process's incarnation and registration.
    broker: brokers::OwnBroker,
    /// Broker sessions, kept while this node is the active controller.
    sessions: std::sync::Mutex<sessions::BrokerSessions>,
    /// The controller's monotonic clock (tokio time; tests may pause it).
    clock: crate::clock::Clock,
    /// Set once the broker's controlled shutdown is over: forwarded
    /// requests are no longer retried (the quorum may be gone with the
    /// other nodes), so no handler holds the shutdown up.
    stopping: std::sync::atomic::AtomicBool,
    /// Set when the controlled shutdown begins: heartbeats ask for it.
    shutting_down: std::sync::atomic::AtomicBool,
    /// The broker's lease, renewed by heartbeats the controller answers
    /// "unfenced" (crate::lease).
    lease: Arc<BrokerLease>,
}

impl Controller {
    pub fn new(
        node_id: i32,
        settings: Arc<Settings>,
        quorum: Arc<MetadataQuorum>,
        replicas: Arc<ReplicaManager>,
        clustered: bool,
        serves_broker: bool,
        lease: Arc<BrokerLease>,
    ) -> Controller {
        let session_timeout_ms = settings.get_i64("broker.session.timeout.ms").max(1) as u64;
        Controller {
            node_id,
            settings,
            quorum,
            replicas,
            lock: tokio::sync::Mutex::new(()),
            clustered,
            serves_broker,
            broker: brokers::OwnBroker::new(),
            sessions: std::sync::Mutex::new(sessions::BrokerSessions::new(session_timeout_ms)),
            clock: crate::clock::Clock::new(),
            stopping: std::sync::atomic::AtomicBool::new(false),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
            lease,
        }
    }

    /// Whether this node is one of a cluster (its quorum is networked).
    pub fn clustered(&self) -> bool {
        self.clustered
    }

    /// Whether this node serves clients as a broker of the cluster.
    pub fn serves_broker(&self) -> bool {
        self.serves_broker
    }

    /// The broker's lease: whether it heard "unfenced" from the active
    /// controller within a session timeout (always, on a single node).
    pub fn lease(&self) -> &BrokerLease {
        &self.lease
    }

    /// The current metadata image.
    pub fn image(&self) -> Arc<ClusterImage> {
        self.quorum.image()
    }

    /// Runs `decide` against the current image under the controller lock and
    /// commits its records; returns the response once they are applied.
    async fn decide_and_commit<R>(
        &self,
        decide: impl FnOnce(ControllerContext<'_>) -> Result<ControllerResult<R>, TopicError>,
    ) -> Result<R, TopicError> {
        let _guard = self.lock.lock().await;
        let image = self.quorum.image();
        let context = ControllerContext {
            image: &image,
            settings: &self.settings,
            node_id: self.node_id,
        };
        let result = decide(context)?;
        self.commit(result.records).await?;
        Ok(result.response)
    }

    /// The one way a metadata change is made: proposes `records` as one
    /// entry, waits until the state machine has applied them, and reconciles
    /// this node's partitions with the new image. Returns each record's
    /// outcome. Nothing is proposed for no records.
    pub async fn commit(
        &self,
        records: Vec<MetadataRecord>,
    ) -> Result<Vec<RecordOutcome>, TopicError> {
        if records.is_empty() {
            return Ok(Vec::new());
        }
        // Without a majority a proposal waits for ever: bounded here (it may
        // still commit later, as a timed-out request in Kafka may).
        let timeout = std::time::Duration::from_millis(channel::FORWARD_DEADLINE_MS);
        let outcomes = tokio::time::timeout(timeout, self.quorum.propose(records))
            .await
            .map_err(|_| {
                TopicError::new(
                    error_codes::REQUEST_TIMED_OUT,
                    format!("the metadata quorum did not commit the change within {timeout:?}"),
                )
            })?
            .map_err(propose_error)?;
        self.apply_locally(&self.quorum.image());
        Ok(outcomes)
    }

    /// Applies a committed change to this node's partitions. The change is
    /// in the metadata log whatever happens here: a partition that fails to
    /// open (full disk, no descriptors) stays offline, requests for it get
    /// KAFKA_STORAGE_ERROR, and the image follower retries it with backoff
    /// (as a broker of a cluster applies what the controller committed).
    fn apply_locally(&self, image: &Arc<ClusterImage>) {
        if let Err(error) = self.replicas.reconcile(image) {
            tracing::warn!(%error, "applying the metadata change locally failed; retrying in the background");
            self.replicas.request_reconcile_retry();
        }
    }

    /// Validates and (unless `validate_only`) creates a topic, at the
    /// active controller.
    pub async fn create_topic(
        &self,
        spec: TopicSpec,
        validate_only: bool,
    ) -> Result<CreatedTopic, TopicError> {
        // Checks that need no image come before anything is sent.
        topics::validate_spec(&spec)?;
        let request = channel::ControllerRequest::CreateTopic {
            spec,
            validate_only,
        };
        match self.request(request, channel::FORWARD_DEADLINE_MS).await? {
            channel::ControllerReply::CreatedTopic(created) => Ok(created),
            other => Err(channel::unexpected(other)),
        }
    }

    /// Deletes a topic by name, at the active controller.
    pub async fn delete_topic(&self, name: &str) -> Result<Uuid, TopicError> {
        let request = channel::ControllerRequest::DeleteTopic {
            name: name.to_string(),
        };
        match self.request(request, channel::FORWARD_DEADLINE_MS).await? {
            channel::ControllerReply::DeletedTopic(topic_id) => Ok(topic_id),
            other => Err(channel::unexpected(other)),
        }
    }

    /// Applies config changes to a resource, at the active controller: see
    /// [`configs::alter_configs`]. `replace_all` is the legacy AlterConfigs.
    pub async fn alter_configs(
        &self,
        resource: ConfigResource,
        ops: Vec<ConfigOp>,
        replace_all: bool,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let request = channel::ControllerRequest::AlterConfigs {
            resource,
            ops,
            replace_all,
            validate_only,
        };
        match self.request(request, channel::FORWARD_DEADLINE_MS).await? {
            channel::ControllerReply::Done => Ok(()),
            other => Err(channel::unexpected(other)),
        }
    }

    /// CreatePartitions: grows a topic to `count` partitions, at the active
    /// controller.
    pub async fn create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let request = channel::ControllerRequest::CreatePartitions {
            name: name.to_string(),
            count,
            assignments,
            validate_only,
        };
        match self.request(request, channel::FORWARD_DEADLINE_MS).await? {
            channel::ControllerReply::Done => Ok(()),
            other => Err(channel::unexpected(other)),
        }
    }

    /// ElectLeaders: preferred or unclean leader election of `partitions`
    /// (every partition when `None`), at the active controller; the outcome
    /// of each partition.
    pub async fn elect_leaders(
        &self,
        election: election::ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<election::PartitionElection>, TopicError> {
        let request = channel::ControllerRequest::ElectLeaders {
            election,
            partitions,
        };
        match self.request(request, channel::FORWARD_DEADLINE_MS).await? {
            channel::ControllerReply::Elections(outcomes) => Ok(outcomes),
            other => Err(channel::unexpected(other)),
        }
    }

    /// Reserves a block of `count` producer ids for this broker; returns its
    /// first id, as the state machine assigned it.
    pub async fn allocate_producer_ids(&self, count: i64) -> Result<i64, TopicError> {
        let request = channel::ControllerRequest::AllocateProducerIds {
            node_id: self.node_id,
            count,
        };
        match self.request(request, channel::FORWARD_DEADLINE_MS).await? {
            channel::ControllerReply::ProducerIds { first_producer_id } => Ok(first_producer_id),
            other => Err(channel::unexpected(other)),
        }
    }

    /// The metadata quorum as the active controller sees it (the one that
    /// knows every voter's log end offset).
    pub async fn describe_quorum(&self) -> Result<sluice_meta::QuorumStatus, TopicError> {
        let request = channel::ControllerRequest::DescribeQuorum;
        match self.request(request, channel::FORWARD_DEADLINE_MS).await? {
            channel::ControllerReply::Quorum(status) => Ok(status),
            other => Err(channel::unexpected(other)),
        }
    }

    // ---- served by the active controller (see `channel`)

    async fn serve_create_topic(
        &self,
        spec: TopicSpec,
        validate_only: bool,
    ) -> Result<CreatedTopic, TopicError> {
        topics::validate_spec(&spec)?;
        let name = spec.name.clone();
        let created = self
            .decide_and_commit(|context| {
                Ok(topics::create_topic(context, spec, Uuid::new_v4())?
                    .validated_only(validate_only))
            })
            .await?;
        if !validate_only {
            tracing::info!(topic = %name, topic_id = %created.topic_id, partitions = created.num_partitions, "topic created");
        }
        Ok(created)
    }

    async fn serve_delete_topic(&self, name: &str) -> Result<Uuid, TopicError> {
        let topic_id = self
            .decide_and_commit(|context| topics::delete_topic(context, name))
            .await?;
        tracing::info!(topic = %name, %topic_id, "topic deleted");
        Ok(topic_id)
    }

    /// Applies config changes to a resource: validates every resulting value,
    /// then proposes the differences as metadata records (nothing changes on any
    /// error). `replace_all` is the legacy AlterConfigs: the given set becomes the
    /// whole set of overrides.
    async fn serve_alter_configs(
        &self,
        resource: ConfigResource,
        ops: Vec<ConfigOp>,
        replace_all: bool,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let changed = self
            .decide_and_commit(|context| {
                let result = configs::alter_configs(context, &resource, ops, replace_all)?
                    .validated_only(validate_only);
                let changed = !result.records.is_empty();
                Ok(ControllerResult {
                    records: result.records,
                    response: changed,
                })
            })
            .await?;
        if changed {
            tracing::info!(?resource, "configs altered");
        }
        Ok(())
    }

    async fn serve_create_partitions(
        &self,
        name: &str,
        count: i32,
        assignments: Option<Vec<Vec<i32>>>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        self.decide_and_commit(|context| {
            Ok(
                topics::create_partitions(context, name, count, assignments)?
                    .validated_only(validate_only),
            )
        })
        .await?;
        if !validate_only {
            tracing::info!(topic = name, count, "partitions created");
        }
        Ok(())
    }

    async fn serve_elect_leaders(
        &self,
        election: election::ElectionType,
        partitions: Option<Vec<(String, i32)>>,
    ) -> Result<Vec<election::PartitionElection>, TopicError> {
        let outcomes = self
            .decide_and_commit(|context| {
                let (records, outcomes) =
                    election::elect_leaders(context.image, election, partitions.as_deref());
                Ok(ControllerResult {
                    records,
                    response: outcomes,
                })
            })
            .await?;
        let elected = outcomes.iter().filter(|o| o.error.is_none()).count();
        if elected > 0 {
            tracing::info!(?election, elected, "leaders elected (ElectLeaders)");
        }
        Ok(outcomes)
    }

    async fn serve_allocate_producer_ids(
        &self,
        node_id: i32,
        count: i64,
    ) -> Result<i64, TopicError> {
        let result = producer_ids::allocate_producer_ids(node_id, count);
        let outcomes = self.commit(result.records).await?;
        producer_ids::allocated_block(&outcomes, node_id)
    }
}

/// The Kafka error for a failed proposal.
fn propose_error(error: MetaError) -> TopicError {
    match error {
        MetaError::Rejected(RecordRejected::TopicNameExists { name }) => TopicError::new(
            error_codes::TOPIC_ALREADY_EXISTS,
            format!("Topic '{name}' already exists."),
        ),
        MetaError::NotLeader { leader } => TopicError::new(
            error_codes::NOT_CONTROLLER,
            format!("this node is not the active controller (leader: {leader:?})"),
        ),
        other => TopicError::new(error_codes::UNKNOWN_SERVER_ERROR, other.to_string()),
    }
}
