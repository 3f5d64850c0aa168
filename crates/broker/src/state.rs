//! The services every connection and background task shares.

use std::sync::Arc;

use sluice_meta::MetadataQuorum;

use crate::config::Settings;
use crate::metadata_view::MetadataView;
use crate::replica_manager::ReplicaManager;
use crate::{config, group, handlers, txn};

/// State shared by every connection and background task.
pub struct BrokerState {
    /// This node's id.
    pub node_id: i32,
    /// Effective static broker settings.
    pub settings: Arc<Settings>,
    /// The metadata quorum and its image.
    pub quorum: Arc<MetadataQuorum>,
    /// Node id, settings and the metadata image, for handlers.
    pub metadata: MetadataView,
    /// This node's partitions.
    pub replicas: Arc<ReplicaManager>,
    /// Serializes validate-then-propose in the controller.
    pub controller_lock: tokio::sync::Mutex<()>,
    /// `socket.request.max.bytes`.
    pub request_bytes_max: usize,
    /// `connections.max.idle.ms`: idle connections, and requests that
    /// started but never finish arriving, are closed after it (negative:
    /// never).
    pub connection_idle_timeout_ms: i64,
    /// The group coordinator (consumer groups, committed offsets).
    pub groups: Arc<group::GroupCoordinator>,
    /// The producer-id block InitProducerId hands ids out of.
    pub producer_ids: tokio::sync::Mutex<handlers::producer_ids::ProducerIdBlock>,
    /// The transaction coordinator (transactional ids, markers).
    pub txns: Arc<txn::TransactionCoordinator>,
}

impl BrokerState {
    /// The active controller: the quorum leader, else this node.
    pub fn controller_id(&self) -> i32 {
        self.metadata.controller_id()
    }

    /// The dynamic broker configs of the current metadata image.
    pub fn dynamic_configs(&self) -> config::DynamicBrokerConfigs {
        self.metadata.dynamic_configs()
    }

    /// A numeric broker config's effective value (`config::parse_number`).
    pub fn broker_config_i64(&self, name: &str) -> i64 {
        self.metadata.broker_config_i64(name)
    }
}
