//! The services every connection and background task shares.

use std::sync::Arc;

use crate::controller::Controller;
use crate::metadata_view::MetadataView;
use crate::producer_ids::ProducerIdManager;
use crate::replica_manager::ReplicaManager;
use crate::{group, txn};

/// State shared by every connection and background task.
pub struct BrokerState {
    /// Node id, settings and the metadata image, for handlers.
    pub metadata: MetadataView,
    /// This node's partitions.
    pub replicas: Arc<ReplicaManager>,
    /// The controller runtime: every metadata change this broker makes.
    pub controller: Arc<Controller>,
    /// `socket.request.max.bytes`.
    pub request_bytes_max: usize,
    /// `connections.max.idle.ms`: idle connections, and requests that
    /// started but never finish arriving, are closed after it (negative:
    /// never).
    pub connection_idle_timeout_ms: i64,
    /// The group coordinator (consumer groups, committed offsets).
    pub groups: Arc<group::GroupCoordinator>,
    /// Fresh producer ids (InitProducerId, the transaction coordinator).
    pub producer_ids: Arc<ProducerIdManager>,
    /// The transaction coordinator (transactional ids, markers).
    pub txns: Arc<txn::TransactionCoordinator>,
}
