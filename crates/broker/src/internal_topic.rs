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
use crate::partition::{AppendOrigin, LeaderAppend};
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

/// Appends `entries` as one batch to `topic`/`index`; returns the partition
/// and the last offset written. A transactional batch opens the producer's
/// transaction in the partition (its LSO stops there until the marker).
pub fn append(
    replicas: &ReplicaManager,
    topic: &str,
    index: i32,
    entries: &[Entry],
    producer: Option<TransactionalProducer>,
    now: i64,
) -> Result<(Arc<Partition>, i64), KafkaError> {
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
        Ok(LeaderAppend::Appended(info)) => Ok((partition, info.last_offset)),
        // A transactional batch of a fenced producer epoch.
        Ok(LeaderAppend::Rejected(code)) if code == crate::error_codes::INVALID_PRODUCER_EPOCH => {
            Err(KafkaError::ProducerFenced)
        }
        // Leadership moved since the lookup.
        Ok(LeaderAppend::Rejected(_)) => Err(KafkaError::NotCoordinator),
        Ok(LeaderAppend::Duplicate(_)) => {
            unreachable!("coordinator appends are not sequence-checked")
        }
        Err(error) => {
            tracing::warn!(topic, partition = index, %error, "appending to an internal topic failed");
            Err(KafkaError::from_log_error(&error))
        }
    }
}

/// Waits until `last_offset` is below the high watermark (durable).
pub async fn wait_durable(
    partition: &Partition,
    last_offset: i64,
    timeout: Duration,
) -> Result<(), KafkaError> {
    let mut receiver = partition.subscribe_high_watermark();
    let waited = tokio::time::timeout(timeout, receiver.wait_for(|hw| *hw > last_offset)).await;
    match waited {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(_)) => Err(KafkaError::NotCoordinator),
        Err(_) => Err(KafkaError::RequestTimedOut),
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
    use super::*;

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
