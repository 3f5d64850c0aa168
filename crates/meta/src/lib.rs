//! sluice-meta: cluster metadata as a replicated state machine.
//!
//! CONTRACT (the broker codes against exactly this public API; extend it, do not
//! rename it without updating crates/broker):
//!
//! * `MetadataRecord` — the records of the metadata log.
//! * `ClusterImage` — the state machine: the result of applying every committed
//!   record in order. Pure, no I/O; `apply` is deterministic.
//! * `MetadataQuorum` — the openraft-backed quorum (a one-voter quorum for a
//!   single node; voters and learners later). Raft log, vote and snapshots are
//!   persisted under `<data-dir>/meta/`, together with the node id and cluster id.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata quorum error: {0}")]
    Raft(String),
    #[error("node id {found} in {dir} does not match configured node id {configured}")]
    NodeIdMismatch { dir: String, found: i32, configured: i32 },
    #[error("quorum is shut down")]
    ShutDown,
}

/// A registered broker.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub node_id: i32,
    pub host: String,
    pub port: u16,
    pub rack: Option<String>,
}

/// One partition's assignment and leadership.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionState {
    pub partition: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub leader: i32,
    /// Never goes backwards.
    pub leader_epoch: i32,
}

/// Records of the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    RegisterBroker(BrokerRegistration),
    CreateTopic {
        name: String,
        topic_id: Uuid,
        partitions: Vec<PartitionState>,
        configs: BTreeMap<String, String>,
    },
    DeleteTopic {
        topic_id: Uuid,
    },
    /// Adds partitions (CreatePartitions); their ids continue the existing ones.
    CreatePartitions {
        topic_id: Uuid,
        partitions: Vec<PartitionState>,
    },
    /// Leader / ISR / epoch change of one partition.
    ChangePartition {
        topic_id: Uuid,
        state: PartitionState,
    },
    /// `value: None` deletes the topic-level override.
    SetTopicConfig {
        topic_id: Uuid,
        key: String,
        value: Option<String>,
    },
    /// `node_id: None` is the cluster-wide default; `value: None` deletes.
    SetBrokerConfig {
        node_id: Option<i32>,
        key: String,
        value: Option<String>,
    },
    /// Hands the block [first_producer_id, first_producer_id + count) to a broker.
    AllocateProducerIds {
        node_id: i32,
        first_producer_id: i64,
        count: i64,
    },
}

/// A topic in the image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: Uuid,
    /// Indexed by partition id.
    pub partitions: Vec<PartitionState>,
    /// Topic-level overrides only (defaults live in the broker).
    pub configs: BTreeMap<String, String>,
}

/// The cluster image: everything committed so far, applied in order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterImage {
    pub cluster_id: String,
    pub brokers: BTreeMap<i32, BrokerRegistration>,
    pub topics: BTreeMap<String, TopicImage>,
    pub topic_names_by_id: BTreeMap<Uuid, String>,
    /// Cluster-wide (`None`) and per-node dynamic broker configs.
    pub broker_configs: BTreeMap<Option<i32>, BTreeMap<String, String>>,
    /// The next producer id not yet handed out.
    pub next_producer_id: i64,
    /// Log index of the last applied record.
    pub last_applied_index: u64,
}

impl ClusterImage {
    /// Applies one record. Deterministic, no I/O. Records that refer to unknown
    /// topics are ignored (the proposer validates before proposing).
    pub fn apply(&mut self, record: &MetadataRecord) {
        let _ = record;
        todo!()
    }

    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.topics.get(name)
    }

    pub fn topic_by_id(&self, topic_id: &Uuid) -> Option<&TopicImage> {
        self.topic_names_by_id
            .get(topic_id)
            .and_then(|name| self.topics.get(name))
    }
}

/// Static configuration of this node's quorum membership.
#[derive(Clone, Debug)]
pub struct QuorumConfig {
    pub node_id: i32,
    /// `controller.quorum.voters`: (node id, host:port). A single node passes
    /// itself only (a one-voter quorum; no network is used).
    pub voters: Vec<(i32, String)>,
}

/// The metadata quorum.
pub struct MetadataQuorum {
    _private: (),
}

impl MetadataQuorum {
    /// Opens `<data_dir>/meta/` (creating it and a new cluster id on first
    /// start; persisting node id and cluster id), starts openraft, initializes
    /// the one-voter membership on first start, replays/loads the state machine,
    /// and returns when this node is leader and the image is caught up.
    pub async fn open(data_dir: &Path, config: QuorumConfig) -> Result<MetadataQuorum, MetaError> {
        let _ = (data_dir, config);
        todo!()
    }

    /// Appends records through Raft as one entry; returns after they are
    /// committed (durable in the Raft log) and applied to the image.
    pub async fn propose(&self, records: Vec<MetadataRecord>) -> Result<(), MetaError> {
        let _ = records;
        todo!()
    }

    /// The latest applied image.
    pub fn image(&self) -> Arc<ClusterImage> {
        todo!()
    }

    /// Notified with each newly applied image.
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<Arc<ClusterImage>> {
        todo!()
    }

    pub fn cluster_id(&self) -> String {
        todo!()
    }

    pub fn node_id(&self) -> i32 {
        todo!()
    }

    /// The node id of the current quorum leader (the active controller).
    pub fn leader_id(&self) -> Option<i32> {
        todo!()
    }

    /// Stops Raft and flushes its storage.
    pub async fn shutdown(&self) -> Result<(), MetaError> {
        todo!()
    }
}
