//! The records of the metadata log and the values they carry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A registered broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// The broker's `node.id`; the key of the registration.
    pub node_id: i32,
    /// Advertised host clients connect to.
    pub host: String,
    /// Advertised port clients connect to.
    pub port: u16,
    /// `broker.rack`, used for rack-aware replica placement.
    pub rack: Option<String>,
}

/// One partition's assignment and leadership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    /// Partition id within its topic.
    pub partition: i32,
    /// Assigned replicas, preferred leader first.
    pub replicas: Vec<i32>,
    /// In-sync replicas (a subset of `replicas`).
    pub isr: Vec<i32>,
    /// Current leader's node id (-1: no leader).
    pub leader: i32,
    /// Never goes backwards.
    pub leader_epoch: i32,
}

/// Records of the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// Adds or replaces a broker registration.
    RegisterBroker(BrokerRegistration),
    /// Creates a topic with its initial partitions and config overrides.
    CreateTopic {
        /// Topic name (unique).
        name: String,
        /// Topic id (unique).
        topic_id: Uuid,
        /// Initial partitions, indexed by partition id.
        partitions: Vec<PartitionState>,
        /// Topic-level config overrides.
        configs: BTreeMap<String, String>,
    },
    /// Removes a topic.
    DeleteTopic {
        /// Id of the topic to remove.
        topic_id: Uuid,
    },
    /// Adds partitions (CreatePartitions); their ids continue the existing ones.
    CreatePartitions {
        /// Topic to grow.
        topic_id: Uuid,
        /// Partitions appended after the existing ones.
        partitions: Vec<PartitionState>,
    },
    /// Leader / ISR / epoch change of one partition.
    ChangePartition {
        /// Topic of the partition.
        topic_id: Uuid,
        /// The partition's new state (`state.partition` selects it).
        state: PartitionState,
    },
    /// `value: None` deletes the topic-level override.
    SetTopicConfig {
        /// Topic whose override changes.
        topic_id: Uuid,
        /// Config name.
        key: String,
        /// New value, or `None` to delete the override.
        value: Option<String>,
    },
    /// `node_id: None` is the cluster-wide default; `value: None` deletes.
    SetBrokerConfig {
        /// Broker the config applies to, or `None` for the cluster default.
        node_id: Option<i32>,
        /// Config name.
        key: String,
        /// New value, or `None` to delete.
        value: Option<String>,
    },
    /// Hands the block [first_producer_id, first_producer_id + count) to a broker.
    AllocateProducerIds {
        /// Broker receiving the block.
        node_id: i32,
        /// First producer id of the block.
        first_producer_id: i64,
        /// Number of ids in the block.
        count: i64,
    },
}
