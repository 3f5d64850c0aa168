//! The records of the metadata log, the values they carry, the versioned
//! batch they are stored in, and what applying one returns.
//!
//! Format compatibility: every field added after the first format carries a
//! serde default, so a record written before it existed still decodes (to the
//! value the image had then). A batch says which format wrote it
//! ([`RecordBatch::version`]); a data dir written before batches had a version
//! holds bare record lists, decoded as version 0.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// The record format this code writes, and the newest it can apply.
/// 0: unversioned record lists (before brokers, partitions and listeners
/// carried epochs). 1: [`RecordBatch`] with partition epoch, leader recovery
/// state, broker epoch, fenced flag and named listeners.
pub const RECORD_FORMAT_VERSION: u16 = 1;

/// One named listener of a broker (Kafka's RegisterBrokerRecord listeners).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerListener {
    /// Listener name, e.g. `PLAINTEXT`; other brokers pick theirs by name.
    pub name: String,
    /// Advertised host of this listener.
    pub host: String,
    /// Advertised port of this listener.
    pub port: u16,
    /// Security protocol spoken on it, e.g. `PLAINTEXT`.
    pub security_protocol: String,
}

/// A registered broker.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    /// The broker's `node.id`; the key of the registration.
    pub node_id: i32,
    /// Advertised host clients connect to.
    pub host: String,
    /// Advertised port clients connect to.
    pub port: u16,
    /// `broker.rack`, used for rack-aware replica placement.
    pub rack: Option<String>,
    /// Identifies this incarnation of the broker: assigned by the state
    /// machine (one more than the previous registration's), whatever the
    /// proposer put here, so a request from an older incarnation can be told
    /// apart. 0 in registrations written before format 1.
    #[serde(default)]
    pub broker_epoch: i64,
    /// A fenced broker leads no partition and is not in any ISR (a single
    /// node is never fenced). `false` before format 1.
    #[serde(default)]
    pub fenced: bool,
    /// Listeners by name; empty before format 1, where `host`/`port` is the
    /// only listener.
    #[serde(default)]
    pub listeners: Vec<BrokerListener>,
    /// A random id of the process that registered (Kafka's incarnation id):
    /// a second process with the same node id has another one. `None` in
    /// registrations of a single node and before format 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incarnation_id: Option<Uuid>,
}

impl BrokerRegistration {
    /// Whether `other` registers the same endpoints and state, whatever its
    /// broker epoch (the epoch is the state machine's, not the proposer's).
    pub fn same_registration(&self, other: &BrokerRegistration) -> bool {
        BrokerRegistration {
            broker_epoch: other.broker_epoch,
            ..self.clone()
        } == *other
    }
}

/// Whether a partition's leader was elected cleanly (Kafka's
/// LeaderRecoveryState): after an unclean election the leader is
/// `Recovering` until it has rebuilt its state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LeaderRecoveryState {
    /// The leader was elected from the ISR (the only state before format 1).
    #[default]
    Recovered,
    /// The leader was elected outside the ISR and is recovering.
    Recovering,
}

/// One partition's assignment and leadership.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Bumped by the state machine on every change of this partition (leader,
    /// ISR, replicas), so an AlterPartition built on a stale state can be
    /// refused. 0 at creation and in records written before format 1.
    #[serde(default)]
    pub partition_epoch: i32,
    /// See [`LeaderRecoveryState`]; `Recovered` before format 1.
    #[serde(default)]
    pub leader_recovery_state: LeaderRecoveryState,
}

/// Records of the metadata log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum MetadataRecord {
    /// Adds or replaces a broker registration.
    RegisterBroker(BrokerRegistration),
    /// Creates a topic with its initial partitions and config overrides.
    /// Refused when the name or the id is already taken.
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
    /// Asks for a block of `count` producer ids for a broker. The state
    /// machine assigns the block: it starts at the first id never handed out
    /// (or at `first_producer_id`, if that is higher) and is returned to the
    /// proposer as [`RecordOutcome::ProducerIdsAllocated`].
    AllocateProducerIds {
        /// Broker receiving the block.
        node_id: i32,
        /// Lowest first id the proposer accepts; new proposers send 0. Before
        /// format 1 the proposer picked the block itself and this was its
        /// first id (always the next id not handed out, so replay gives the
        /// same block).
        first_producer_id: i64,
        /// Number of ids in the block.
        count: i64,
    },
    /// Fences or unfences a broker (Kafka's BrokerRegistrationChangeRecord):
    /// only the active controller writes it. Ignored when `broker_epoch` is
    /// not the registration's current epoch (a newer registration replaced it).
    ChangeBrokerFencing {
        /// The broker.
        node_id: i32,
        /// The registration this applies to.
        broker_epoch: i64,
        /// The new state.
        fenced: bool,
    },
    /// Records the cluster id: the first leader of a cluster with several
    /// voters commits it, and the voters learn it from the log. The first one
    /// wins; a later one with another id is refused.
    SetClusterId {
        /// The cluster id (22 URL-safe base64 characters).
        cluster_id: String,
    },
}

/// Why the state machine refused a record. The image is unchanged, and so is
/// every other record of the same entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RecordRejected {
    /// CreateTopic for a name that already exists.
    #[error("topic '{name}' already exists")]
    TopicNameExists {
        /// The name asked for.
        name: String,
    },
    /// CreateTopic with an id another topic has (or a deleted topic had).
    #[error("topic id {topic_id} is already in use")]
    TopicIdExists {
        /// The id asked for.
        topic_id: Uuid,
    },
    /// SetClusterId when the image already has another cluster id, or with
    /// an empty one.
    #[error("the cluster id is '{current}'; refused '{proposed}'")]
    ClusterIdSet {
        /// The image's cluster id.
        current: String,
        /// The id the record carried.
        proposed: String,
    },
    /// AllocateProducerIds whose block would not fit in an i64, or whose
    /// count is not positive.
    #[error("cannot allocate {count} producer ids")]
    ProducerIdsExhausted {
        /// The count asked for.
        count: i64,
    },
}

/// What applying one record did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RecordOutcome {
    /// Applied (or ignored: it referred to something that no longer exists).
    Applied,
    /// The block of producer ids assigned to `node_id`.
    ProducerIdsAllocated {
        /// Broker the block belongs to.
        node_id: i32,
        /// First id of the block.
        first_producer_id: i64,
        /// Number of ids in the block.
        count: i64,
    },
    /// The epoch the state machine gave a broker's new registration.
    BrokerRegistered {
        /// The broker.
        node_id: i32,
        /// Its new broker epoch.
        broker_epoch: i64,
    },
    /// Refused; nothing changed.
    Rejected(RecordRejected),
}

/// What applying one Raft entry returns to its proposer: the outcome of each
/// record, or the rejection that left the whole entry unapplied.
pub type EntryResponse = Result<Vec<RecordOutcome>, RecordRejected>;

/// The payload of one Raft entry: records applied together, with the format
/// version that wrote them. Stored as `{"v": 1, "records": [...]}`; an entry
/// written before versions existed is a bare list and decodes as version 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RecordBatch {
    /// The record format of this batch (see [`RECORD_FORMAT_VERSION`]).
    #[serde(rename = "v")]
    pub version: u16,
    /// The records, applied in order and all or none.
    pub records: Vec<MetadataRecord>,
}

impl RecordBatch {
    /// A batch in the current format.
    pub fn new(records: Vec<MetadataRecord>) -> RecordBatch {
        RecordBatch {
            version: RECORD_FORMAT_VERSION,
            records,
        }
    }
}

impl<'de> Deserialize<'de> for RecordBatch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RecordBatch, D::Error> {
        /// The stored forms, newest first.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Stored {
            Versioned {
                v: u16,
                records: Vec<MetadataRecord>,
            },
            Unversioned(Vec<MetadataRecord>),
        }
        Ok(match Stored::deserialize(deserializer)? {
            Stored::Versioned { v, records } => RecordBatch {
                version: v,
                records,
            },
            Stored::Unversioned(records) => RecordBatch {
                version: 0,
                records,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unversioned_records_decode_with_defaults() {
        // As the format before versions wrote them.
        let json = r#"[
            {"RegisterBroker":{"node_id":1,"host":"h","port":9092,"rack":null}},
            {"CreateTopic":{"name":"t","topic_id":"00000000-0000-0000-0000-000000000001",
              "partitions":[{"partition":0,"replicas":[1],"isr":[1],"leader":1,"leader_epoch":2}],
              "configs":{}}}
        ]"#;
        let batch: RecordBatch = serde_json::from_str(json).unwrap();
        assert_eq!(batch.version, 0);
        let MetadataRecord::RegisterBroker(broker) = &batch.records[0] else {
            panic!("not a registration: {:?}", batch.records[0]);
        };
        assert_eq!((broker.broker_epoch, broker.fenced), (0, false));
        assert!(broker.listeners.is_empty());
        let MetadataRecord::CreateTopic { partitions, .. } = &batch.records[1] else {
            panic!("not a topic: {:?}", batch.records[1]);
        };
        assert_eq!(partitions[0].leader_epoch, 2);
        assert_eq!(partitions[0].partition_epoch, 0);
        assert_eq!(
            partitions[0].leader_recovery_state,
            LeaderRecoveryState::Recovered
        );
    }

    #[test]
    fn versioned_batch_round_trips() {
        let batch = RecordBatch::new(vec![MetadataRecord::RegisterBroker(BrokerRegistration {
            node_id: 2,
            listeners: vec![BrokerListener {
                name: "PLAINTEXT".into(),
                host: "h".into(),
                port: 1,
                security_protocol: "PLAINTEXT".into(),
            }],
            ..BrokerRegistration::default()
        })]);
        let json = serde_json::to_string(&batch).unwrap();
        assert!(json.starts_with(r#"{"v":1,"records":["#), "{json}");
        let back: RecordBatch = serde_json::from_str(&json).unwrap();
        assert_eq!(back, batch);
    }

    #[test]
    fn same_registration_ignores_the_broker_epoch() {
        let a = BrokerRegistration {
            node_id: 1,
            broker_epoch: 3,
            ..BrokerRegistration::default()
        };
        let b = BrokerRegistration {
            broker_epoch: 7,
            ..a.clone()
        };
        assert!(a.same_registration(&b));
        let c = BrokerRegistration { port: 2, ..b };
        assert!(!a.same_registration(&c));
    }
}
