//! One partition this node hosts, and the one leader append path every
//! writer takes: clients (Produce), the coordinators (their internal-topic
//! batches) and transaction markers all go through
//! `Partition::append_as_leader`, which checks and records producer state
//! under one lock and marks the partition for the flusher.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use sluice_log::batch::BatchHeader;
use sluice_log::{AppendInfo, AppendOptions, Log};
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::config::TopicConfig;
use crate::producer_state::{self, BatchRange, Marker, ProducerStateManager, SequenceCheck};

/// Who asks for a leader append: decides what is checked and recorded.
#[derive(Clone, Copy, Debug)]
pub enum AppendOrigin {
    /// A producer's Produce request: its sequence and epoch are checked, and
    /// an idempotent or transactional batch is recorded at `now_ms`.
    Client {
        /// Wall-clock time of the append (producer expiration).
        now_ms: i64,
    },
    /// A coordinator's batch in its internal topic (a transactional
    /// producer's TxnOffsetCommit opens that producer's transaction).
    Coordinator,
    /// A transaction marker written by the transaction coordinator.
    Marker(Marker),
}

/// The outcome of `append_as_leader`.
#[derive(Debug)]
pub enum LeaderAppend {
    /// Written; not yet durable (the flusher covers it).
    Appended(AppendInfo),
    /// A retry of one of the producer's recent batches: where it was written.
    Duplicate(BatchRange),
    /// Refused by the producer state, with the Kafka error code.
    Rejected(i16),
}

/// One partition this node hosts.
pub struct Partition {
    /// Topic name.
    pub topic: String,
    /// The topic's id; a re-created topic has a new one and a new log.
    pub topic_id: Uuid,
    /// Partition index.
    pub index: i32,
    /// Whether the topic is internal (clients may not produce to it).
    pub internal: bool,
    /// The partition's log.
    pub log: Arc<Log>,
    /// Current leader epoch, from the metadata image; stamped into batches.
    pub(crate) leader_epoch: AtomicI32,
    /// The topic's effective config as the data path reads it.
    pub(crate) config: RwLock<Arc<TopicConfig>>,
    /// High watermark (exclusive): what consumers may read. Waiters subscribe.
    pub(crate) high_watermark: watch::Sender<i64>,
    /// The producer-state manager (idempotent sequences, open and aborted
    /// transactions). Its lock also serializes check-then-append: every
    /// leader append holds it (`append_as_leader`).
    pub producer_state: Mutex<ProducerStateManager>,
    /// Set when the producer state changed since its last snapshot.
    pub producer_state_dirty: AtomicBool,
    /// The partition directory (for producer-state snapshots).
    pub dir: std::path::PathBuf,
    /// Set by an append, cleared by the flusher before it syncs.
    pub(crate) dirty: AtomicBool,
    /// Wakes the replica manager's flusher after an append.
    pub(crate) flush_wakeup: Arc<Notify>,
    /// `sluice.flush.before.visible`: the high watermark waits for fsync.
    pub(crate) flush_before_visible: bool,
}

impl Partition {
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn config(&self) -> Arc<TopicConfig> {
        self.config.read().clone()
    }

    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// The last stable offset: the first offset of the oldest open
    /// transaction, or the high watermark when none is open (never above it).
    pub fn last_stable_offset(&self) -> i64 {
        let high_watermark = self.high_watermark();
        match self.producer_state.lock().first_unstable_offset() {
            Some(first) => first.min(high_watermark),
            None => high_watermark,
        }
    }

    /// Aborted transactions overlapping [from, to), by first offset.
    pub fn aborted_transactions(
        &self,
        from: i64,
        to: i64,
    ) -> Vec<producer_state::AbortedTransaction> {
        self.producer_state.lock().aborted_between(from, to)
    }

    /// Appends a transaction marker (a control batch) for a producer: the
    /// transaction coordinator's commit or abort. Returns its offset; the
    /// caller waits for the high watermark to pass it if it needs durability.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: producer_state::Marker,
        coordinator_epoch: i32,
        now_ms: i64,
    ) -> Result<i64, sluice_log::LogError> {
        use kafka_protocol::records::{
            Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let marker_type: i16 = match marker {
            producer_state::Marker::Abort => 0,
            producer_state::Marker::Commit => 1,
        };
        let mut key = Vec::with_capacity(4);
        key.extend_from_slice(&0i16.to_be_bytes());
        key.extend_from_slice(&marker_type.to_be_bytes());
        let mut value = Vec::with_capacity(6);
        value.extend_from_slice(&0i16.to_be_bytes());
        value.extend_from_slice(&coordinator_epoch.to_be_bytes());
        let record = Record {
            transactional: true,
            control: true,
            delete_horizon: false,
            partition_leader_epoch: self.leader_epoch(),
            producer_id,
            producer_epoch,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: now_ms,
            key: Some(bytes::Bytes::from(key)),
            value: Some(bytes::Bytes::from(value)),
            headers: Default::default(),
        };
        let mut buf = bytes::BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, [&record], &options).map_err(|e| {
            sluice_log::LogError::Corrupt {
                path: self.dir.clone(),
                position: 0,
                reason: format!("encoding a transaction marker: {e}"),
            }
        })?;
        let header = sluice_log::batch::parse_header(&buf)?;
        match self.append_as_leader(&buf.freeze(), &header, AppendOrigin::Marker(marker), None)? {
            LeaderAppend::Appended(info) => Ok(info.base_offset),
            // Only client appends are checked against the producer state.
            LeaderAppend::Duplicate(_) | LeaderAppend::Rejected(_) => {
                unreachable!("a marker append is not sequence-checked")
            }
        }
    }

    /// The one leader append path: under the producer-state lock, checks a
    /// client's batch against its producer's sequence and epoch, appends the
    /// batch (offsets and leader epoch stamped), records what the origin
    /// requires in the producer state, then marks the partition for the
    /// flusher (or publishes the new end when the high watermark does not
    /// wait for fsync). `records` is one validated v2 batch whose parsed
    /// header is `header`.
    pub fn append_as_leader(
        &self,
        records: &Bytes,
        header: &BatchHeader,
        origin: AppendOrigin,
        log_append_time_ms: Option<i64>,
    ) -> Result<LeaderAppend, sluice_log::LogError> {
        let options = AppendOptions {
            leader_epoch: self.leader_epoch(),
            log_append_time_ms,
        };
        let info = {
            let mut producers = self.producer_state.lock();
            if let AppendOrigin::Client { .. } = origin {
                match producers.check(header) {
                    SequenceCheck::Append => {}
                    SequenceCheck::Duplicate(original) => {
                        return Ok(LeaderAppend::Duplicate(original))
                    }
                    SequenceCheck::Reject(code) => return Ok(LeaderAppend::Rejected(code)),
                }
            }
            // A large batch is written from the request's own buffer.
            let info = self.log.append_shared(records, options)?;
            let recorded = match origin {
                AppendOrigin::Client { now_ms } if header.producer_id >= 0 => {
                    producers.record(header, info.base_offset, now_ms);
                    producers.record_transaction(header, info.base_offset, None);
                    true
                }
                AppendOrigin::Coordinator if header.producer_id >= 0 => {
                    producers.record_transaction(header, info.base_offset, None);
                    true
                }
                AppendOrigin::Marker(marker) => {
                    producers.record_transaction(header, info.base_offset, Some(marker));
                    true
                }
                AppendOrigin::Client { .. } | AppendOrigin::Coordinator => false,
            };
            if recorded {
                self.producer_state_dirty.store(true, Ordering::Release);
            }
            info
        };
        self.mark_appended();
        Ok(LeaderAppend::Appended(info))
    }

    /// After an append: the flusher syncs it and then raises the high
    /// watermark; without `sluice.flush.before.visible` the new end is
    /// visible at once.
    fn mark_appended(&self) {
        if self.flush_before_visible {
            self.dirty.store(true, Ordering::Release);
            self.flush_wakeup.notify_one();
        } else {
            self.advance_high_watermark(self.log.log_end_offset());
            self.dirty.store(true, Ordering::Release);
        }
    }

    pub fn subscribe_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Raises the high watermark (it never goes down here).
    pub(crate) fn advance_high_watermark(&self, offset: i64) {
        self.high_watermark.send_if_modified(|hw| {
            if offset > *hw {
                *hw = offset;
                true
            } else {
                false
            }
        });
    }
}
