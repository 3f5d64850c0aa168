//! The coordinators' internal topics (`__consumer_offsets`,
//! `__transaction_state`): appending one uncompressed batch, optionally as a
//! transactional batch of a producer (TxnOffsetCommit writes a group's
//! offsets into `__consumer_offsets` that way, so the commit or abort marker
//! decides whether they count, as in Kafka), waiting for it to be durable,
//! and reading a partition back record by record.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

use crate::errors::KafkaError;
use crate::partition::{AppendOrigin, LeaderAppend, ReplicaWait};
use crate::replica_manager::{Partition, ReplicaManager};

/// Largest read while replaying a partition.
const REPLAY_READ_BYTES_MAX: usize = 4 << 20;

/// One record: key and value (None: tombstone).
pub type Entry = (Bytes, Option<Bytes>);

/// A transactional writer of a batch: producer id and epoch.
pub type TransactionalProducer = (i64, i16);

fn encode_batch(
    entries: &[Entry],
    leader_epoch: i32,
    producer: Option<TransactionalProducer>,
    now: i64,
) -> Result<BytesMut, KafkaError> {
    let (producer_id, producer_epoch) = producer.unwrap_or((-1, -1));
    let batch: Vec<Record> = entries
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some(),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: leader_epoch,
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // The encoder starts a new batch whenever offset - sequence
            // changes; base sequence -1 (no sequence) keeps one batch.
            sequence: i as i32 - 1,
            timestamp: now,
            key: Some(key.clone()),
            value: value.clone(),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    if let Err(error) = RecordBatchEncoder::encode(&mut buf, &batch, &options) {
        tracing::error!(%error, "encoding a coordinator record batch failed");
        return Err(KafkaError::UnknownServerError);
    }
    Ok(buf)
}

/// One batch appended to an internal topic by its leader: where, and in
/// which leader epoch (what its durability wait checks).
pub struct Written {
    pub partition: Arc<Partition>,
    pub last_offset: i64,
    pub leader_epoch: i32,
}

impl Written {
    /// Waits until the batch is durable ([`wait_durable`]).
    pub async fn wait_durable(&self, timeout: Duration) -> Result<(), KafkaError> {
        wait_durable(
            &self.partition,
            self.last_offset,
            self.leader_epoch,
            timeout,
        )
        .await
    }
}

/// Appends `entries` as one batch to `topic`/`index`. A transactional batch
/// opens the producer's transaction in the partition (its LSO stops there
/// until the marker).
pub fn append(
    replicas: &ReplicaManager,
    topic: &str,
    index: i32,
    entries: &[Entry],
    producer: Option<TransactionalProducer>,
    now: i64,
) -> Result<Written, KafkaError> {
    // Not hosted, or hosted as a follower: another broker coordinates this
    // partition (Kafka maps NOT_LEADER_OR_FOLLOWER to NOT_COORDINATOR).
    let Ok(partition) = replicas.leader_partition(topic, index) else {
        return Err(KafkaError::NotCoordinator);
    };
    let leader_epoch = partition.leader_epoch();
    let buf = encode_batch(entries, leader_epoch, producer, now)?;
    let header = sluice_log::batch::parse_header(&buf).map_err(|error| {
        tracing::error!(%error, "a coordinator batch has a bad header");
        KafkaError::UnknownServerError
    })?;
    let result =
        partition.append_as_leader(&buf.freeze(), &header, AppendOrigin::Coordinator, None);
    match result {
        Ok(LeaderAppend::Appended(info)) => Ok(Written {
            partition,
            last_offset: info.last_offset,
            leader_epoch,
        }),
        // A transactional batch of a fenced producer epoch.
        Ok(LeaderAppend::Rejected(code)) if code == crate::error_codes::INVALID_PRODUCER_EPOCH => {
            Err(KafkaError::ProducerFenced)
        }
        // Leadership moved since the lookup.
        Ok(LeaderAppend::Rejected(_)) => Err(KafkaError::NotCoordinator),
        // Coordinator appends are not sequence-checked, so this is a bug:
        // answered with an error, not a panic.
        Ok(LeaderAppend::Duplicate(_)) => {
            tracing::error!(
                topic,
                partition = index,
                "a coordinator append was answered as a duplicate"
            );
            Err(KafkaError::UnknownServerError)
        }
        Err(error) => {
            tracing::warn!(topic, partition = index, %error, "appending to an internal topic failed");
            Err(KafkaError::from_log_error(&error))
        }
    }
}

/// Waits until `last_offset`, appended by this node as the leader in
/// `leader_epoch`, is below the high watermark (durable). NOT_COORDINATOR
/// once the partition is no longer led here in that epoch: the high
/// watermark a deposed leader then learns is its new leader's, and the
/// offset may hold another record (docs/FAULTS.md #9). Unlike a client's
/// produce, an ISR below the min ISR does not fail the wait.
pub async fn wait_durable(
    partition: &Partition,
    last_offset: i64,
    leader_epoch: i32,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let deadline = tokio::time::Instant::now() + timeout;
    match partition
        .wait_replicated(last_offset + 1, leader_epoch, deadline)
        .await
    {
        ReplicaWait::Replicated | ReplicaWait::BelowMinIsr => Ok(()),
        ReplicaWait::NotLeader => Err(KafkaError::NotCoordinator),
        ReplicaWait::TimedOut => Err(KafkaError::RequestTimedOut),
    }
}

/// Reads one partition of `topic` from its log start to its end and hands
/// every record (control records included) to `each`, in offset order. A read
/// error or an undecodable batch stops the replay of this partition (logged).
pub fn replay(partition: &Partition, topic: &str, mut each: impl FnMut(Record)) {
    let log = &partition.log;
    let mut offset = log.log_start_offset();
    let end = log.log_end_offset();
    while offset < end {
        let read = match log.read(offset, end, REPLAY_READ_BYTES_MAX, true) {
            Ok(read) => read,
            Err(error) => {
                tracing::error!(topic, partition = partition.index, offset, %error, "replaying an internal topic failed");
                return;
            }
        };
        if read.records.is_empty() {
            return;
        }
        let mut buf = read.records.clone();
        let sets = match RecordBatchDecoder::decode_all(&mut buf) {
            Ok(sets) => sets,
            Err(error) => {
                tracing::error!(topic, partition = partition.index, offset, %error, "undecodable batch in an internal topic");
                return;
            }
        };
        let before = offset;
        for set in sets {
            for record in set.records {
                offset = offset.max(record.offset + 1);
                each(record);
            }
        }
        if offset == before {
            tracing::warn!(
                topic,
                partition = partition.index,
                offset,
                "replay made no progress; stopping"
            );
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sluice_log::DataDir;
    use sluice_meta::{ClusterImage, MetadataRecord, PartitionState};

    use super::*;
    use crate::config::Settings;

    const NODE: i32 = 1;
    const OTHER: i32 = 2;
    const TOPIC: &str = "__transaction_state";

    fn image_led_by(leader: i32, leader_epoch: i32) -> Arc<ClusterImage> {
        let mut image = ClusterImage::default();
        image.apply(&MetadataRecord::CreateTopic {
            name: TOPIC.to_string(),
            topic_id: uuid::Uuid::nil(),
            partitions: vec![PartitionState {
                partition: 0,
                replicas: vec![NODE, OTHER],
                isr: vec![NODE, OTHER],
                leader,
                leader_epoch,
                partition_epoch: leader_epoch,
                ..PartitionState::default()
            }],
            configs: BTreeMap::new(),
        });
        Arc::new(image)
    }

    fn entry(key: &str) -> Entry {
        (
            Bytes::copy_from_slice(key.as_bytes()),
            Some(Bytes::from_static(b"v")),
        )
    }

    /// Fault-suite finding #9 (docs/FAULTS.md): a transaction coordinator
    /// paused past its session appended a record as the leader it no
    /// longer was, and waited for the high watermark to pass its offset.
    /// After it learned it was a follower, the new leader's high watermark
    /// passed that offset, which by then held another record (its own was
    /// truncated), and the wait said "durable": the deposed coordinator went
    /// on to write abort markers that aborted the new producer's
    /// transaction. The wait must fail once the leader epoch moved on.
    #[tokio::test]
    async fn a_deposed_leader_does_not_take_the_new_leaders_high_watermark_for_its_write() {
        let dir = tempfile::tempdir().expect("temp dir");
        let settings = Arc::new(Settings::new(BTreeMap::new()).expect("default settings"));
        let replicas =
            ReplicaManager::new(DataDir::open(dir.path()).expect("data dir"), settings, NODE);
        replicas
            .reconcile(&image_led_by(NODE, 3))
            .expect("reconcile");
        let written = append(&replicas, TOPIC, 0, &[entry("stale")], None, 0).expect("append");
        assert_eq!((written.last_offset, written.leader_epoch), (0, 3));
        // Not replicated: the follower never fetched it.
        let pending = written.wait_durable(Duration::from_millis(50)).await;
        assert!(
            matches!(pending, Err(KafkaError::RequestTimedOut)),
            "{pending:?}"
        );

        // The controller moved the leadership to the other replica, whose
        // log is longer; this node follows it, truncates its own record
        // and takes the leader's records and high watermark.
        replicas
            .reconcile(&image_led_by(OTHER, 4))
            .expect("reconcile");
        let partition = written.partition.clone();
        partition.truncate_as_follower(0).expect("truncate");
        let leaders = encode_batch(&[entry("a"), entry("b")], 4, None, 0).expect("encode");
        let header = sluice_log::batch::parse_header(&leaders).expect("header");
        assert!(partition
            .append_as_follower(&leaders.freeze(), &header)
            .expect("follower append"));
        // What the flusher reports once the follower's records are synced.
        partition.on_durable(2);
        partition.set_follower_high_watermark(2);
        assert_eq!(
            partition.high_watermark(),
            2,
            "offset 0 is below the high watermark"
        );

        let waited = written.wait_durable(Duration::from_secs(5)).await;
        assert!(
            matches!(waited, Err(KafkaError::NotCoordinator)),
            "{waited:?}"
        );
    }

    #[test]
    fn many_records_make_one_valid_batch() {
        let entries: Vec<Entry> = (0..5)
            .map(|i| (crate::group::records::group_key(&format!("g{i}")), None))
            .collect();
        for producer in [None, Some((7, 0))] {
            let buf = encode_batch(&entries, 3, producer, 0).unwrap();
            let header = sluice_log::batch::validate(&buf).unwrap();
            assert_eq!(header.record_count, 5);
        }
    }
}
