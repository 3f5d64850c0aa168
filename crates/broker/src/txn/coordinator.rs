//! The transaction coordinator's runtime: the table of transactional ids,
//! each behind an async mutex held for a whole operation (store the state,
//! write markers, wait until durable), the produce verification table, the
//! transactional offsets waiting for their marker, and the periodic timeout
//! and expiration checks. Every state change goes through `state`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;

use super::state::{EndStep, InitStep, TxnMetadata, TxnState};
use super::verify::{ProduceRefusal, ProduceVerifier};
use super::{records, store, TRANSACTION_STATE_TOPIC};
use sluice_log::control::Marker;

use crate::config::Settings;
use crate::coordinator_partitions::{CoordinatorPartitions, Ownership};
use crate::errors::KafkaError;
use crate::group::state::CommittedOffset;
use crate::group::{partition_for, Clock, GroupCoordinator, OFFSETS_TOPIC};
use crate::partition::MarkerWritten;
use crate::producer_ids::ProducerIdManager;
use crate::replica_manager::ReplicaManager;

/// The transaction.* broker configs.
#[derive(Clone, Debug)]
pub struct TxnConfig {
    /// `transaction.state.log.num.partitions`.
    pub partitions: i32,
    /// `transaction.state.log.replication.factor`.
    pub replication_factor: i16,
    /// `transaction.state.log.min.isr`: `min.insync.replicas` of the topic.
    pub min_isr: i32,
    /// `transaction.max.timeout.ms`.
    pub max_timeout_ms: i64,
    /// `transactional.id.expiration.ms`.
    pub expiration_ms: i64,
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`.
    pub abort_interval_ms: i64,
    /// `transaction.remove.expired.transaction.cleanup.interval.ms`.
    pub expire_interval_ms: i64,
    /// How long a state record or marker may take to become durable.
    pub write_timeout_ms: i64,
}

impl TxnConfig {
    /// Reads the transaction.* broker configs.
    pub fn from_settings(settings: &Settings) -> TxnConfig {
        TxnConfig {
            partitions: settings
                .get_i64("transaction.state.log.num.partitions")
                .clamp(1, i32::MAX as i64) as i32,
            replication_factor: settings
                .get_i64("transaction.state.log.replication.factor")
                .clamp(1, i16::MAX as i64) as i16,
            min_isr: settings
                .get_i64("transaction.state.log.min.isr")
                .clamp(1, i32::MAX as i64) as i32,
            max_timeout_ms: settings.get_i64("transaction.max.timeout.ms").max(1),
            expiration_ms: settings.get_i64("transactional.id.expiration.ms").max(1),
            abort_interval_ms: settings
                .get_i64("transaction.abort.timed.out.transaction.cleanup.interval.ms")
                .max(10),
            expire_interval_ms: settings
                .get_i64("transaction.remove.expired.transaction.cleanup.interval.ms")
                .max(10),
            write_timeout_ms: 30_000,
        }
    }
}

/// One transactional id; None once it expired (or before it exists).
type TxnSlot = Arc<tokio::sync::Mutex<Option<TxnMetadata>>>;

/// The transaction coordinator of this broker.
pub struct TransactionCoordinator {
    /// Settings.
    pub config: TxnConfig,
    /// Where the internal topics and the data partitions live.
    replicas: Arc<ReplicaManager>,
    /// The group coordinator, which publishes committed transactional offsets.
    groups: Arc<GroupCoordinator>,
    /// Where fresh producer ids come from.
    producer_ids: Arc<ProducerIdManager>,
    /// Every transactional id this node coordinates.
    txns: Mutex<HashMap<String, TxnSlot>>,
    /// Produce verification: each producer id's epoch and ongoing transaction.
    verified: Mutex<ProduceVerifier>,
    /// TxnOffsetCommit offsets by producer id, published on commit.
    /// Set once the first `sync_ownership` ran.
    loaded: AtomicBool,
    /// The `__transaction_state` partitions this node leads and serves.
    partitions: Mutex<CoordinatorPartitions>,
    /// Set at shutdown.
    stopping: AtomicBool,
    /// Milliseconds for the state machine.
    clock: Clock,
}

impl TransactionCoordinator {
    pub fn new(
        config: TxnConfig,
        replicas: Arc<ReplicaManager>,
        groups: Arc<GroupCoordinator>,
        producer_ids: Arc<ProducerIdManager>,
    ) -> Arc<TransactionCoordinator> {
        Arc::new(TransactionCoordinator {
            config,
            replicas,
            groups,
            producer_ids,
            txns: Mutex::new(HashMap::new()),
            verified: Mutex::new(ProduceVerifier::default()),
            loaded: AtomicBool::new(false),
            partitions: Mutex::new(CoordinatorPartitions::default()),
            stopping: AtomicBool::new(false),
            clock: Clock::new(),
        })
    }

    /// The `__transaction_state` partition of a transactional id.
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.config.partitions)
    }

    /// Whether this coordinator can serve `transactional_id` now: it leads
    /// the id's partition and has loaded it.
    pub fn check_ready(&self, transactional_id: &str) -> Result<(), KafkaError> {
        if self.stopping.load(Ordering::Acquire) {
            return Err(KafkaError::NotCoordinator);
        }
        let index = self.partition_for(transactional_id);
        match self.partitions.lock().status(index) {
            Some(Ownership::Loaded { .. }) => Ok(()),
            Some(Ownership::Loading { .. }) => Err(KafkaError::CoordinatorLoadInProgress),
            None if !self.loaded.load(Ordering::Acquire) => {
                Err(KafkaError::CoordinatorLoadInProgress)
            }
            None => Err(KafkaError::NotCoordinator),
        }
    }

    fn slot(&self, transactional_id: &str) -> TxnSlot {
        self.txns
            .lock()
            .entry(transactional_id.to_string())
            .or_default()
            .clone()
    }

    fn existing(&self, transactional_id: &str) -> Option<TxnSlot> {
        self.txns.lock().get(transactional_id).cloned()
    }

    /// Follows the leaderships of `__transaction_state`: replays each
    /// partition this node has come to lead (transactions that were writing
    /// markers are finished by the maintenance task) and drops the
    /// transactional ids of each it no longer leads.
    pub fn sync_ownership(self: &Arc<Self>) {
        let led = self
            .replicas
            .led_partitions(TRANSACTION_STATE_TOPIC, self.config.partitions);
        let plan = self.partitions.lock().plan(&led);
        for index in &plan.unload {
            self.unload(*index);
        }
        for (index, epoch) in plan.load {
            let mut loaded = HashMap::new();
            if let Ok(partition) = self
                .replicas
                .leader_partition(TRANSACTION_STATE_TOPIC, index)
            {
                store::replay(&partition, &mut loaded);
            }
            let count = loaded.len();
            {
                let mut txns = self.txns.lock();
                let mut verified = self.verified.lock();
                for (id, txn) in loaded {
                    if txn.state == TxnState::Dead {
                        continue;
                    }
                    if txn.state == TxnState::Ongoing {
                        verified.set_transaction(
                            txn.producer_id,
                            txn.producer_epoch,
                            txn.partitions.clone(),
                        );
                    } else {
                        verified.set_epoch(txn.producer_id, txn.producer_epoch);
                    }
                    txns.insert(id, Arc::new(tokio::sync::Mutex::new(Some(txn))));
                }
            }
            self.partitions.lock().loaded(index, epoch);
            tracing::debug!(
                partition = index,
                leader_epoch = epoch,
                transactions = count,
                "transaction coordinator loaded a __transaction_state partition"
            );
        }
        if !self.loaded.swap(true, Ordering::AcqRel) {
            tracing::info!(
                partitions = led.len(),
                "transaction coordinator loaded __transaction_state"
            );
        }
    }

    /// Drops the transactional ids of a partition no longer led here.
    fn unload(&self, index: i32) {
        let removed: Vec<TxnSlot> = {
            let mut txns = self.txns.lock();
            let ids: Vec<String> = txns
                .keys()
                .filter(|id| self.partition_for(id) == index)
                .cloned()
                .collect();
            ids.iter().filter_map(|id| txns.remove(id)).collect()
        };
        let count = removed.len();
        let mut verified = self.verified.lock();
        for slot in removed {
            if let Ok(guard) = slot.try_lock() {
                if let Some(txn) = guard.as_ref() {
                    verified.forget(txn.producer_id);
                }
            }
        }
        tracing::info!(
            partition = index,
            transactions = count,
            "transaction coordinator unloaded a __transaction_state partition it no longer leads"
        );
    }

    /// Follows the leaderships every `interval` until `shutdown`.
    pub async fn run_ownership(
        self: Arc<Self>,
        interval: Duration,
        shutdown: watch::Receiver<bool>,
    ) {
        crate::coordinator_partitions::every(interval, shutdown, || self.sync_ownership()).await
    }

    /// Stores `txn` and waits until the record is durable.
    async fn store(&self, txn: &TxnMetadata) -> Result<(), KafkaError> {
        let value = (txn.state != TxnState::Dead).then(|| records::value(txn));
        let entries = vec![(records::key(&txn.transactional_id), value)];
        let written = store::append(
            &self.replicas,
            TRANSACTION_STATE_TOPIC,
            self.partition_for(&txn.transactional_id),
            &entries,
            None,
            self.clock.now_ms(),
        )?;
        written.wait_durable(self.write_timeout()).await
    }

    fn write_timeout(&self) -> Duration {
        Duration::from_millis(self.config.write_timeout_ms as u64)
    }

    /// Waits until a marker this node wrote as the leader is durable.
    async fn wait_marker_durable(
        &self,
        partition: &crate::replica_manager::Partition,
        marker: MarkerWritten,
    ) -> Result<(), KafkaError> {
        crate::internal_topic::wait_durable(
            partition,
            marker.offset,
            marker.leader_epoch,
            self.write_timeout(),
        )
        .await
    }

    /// Applies `change` to the metadata and stores it; on a failed store the
    /// metadata is restored.
    async fn change_and_store<T>(
        &self,
        txn: &mut TxnMetadata,
        change: impl FnOnce(&mut TxnMetadata) -> Result<T, KafkaError>,
    ) -> Result<T, KafkaError> {
        let before = txn.clone();
        let result = change(txn)?;
        if *txn != before {
            if let Err(code) = self.store(txn).await {
                *txn = before;
                return Err(code);
            }
        }
        Ok(result)
    }

    /// InitProducerId with a transactional id: the producer id and epoch.
    pub async fn init_producer_id(
        self: &Arc<Self>,
        transactional_id: &str,
        timeout_ms: i32,
        expected: Option<(i64, i16)>,
    ) -> Result<(i64, i16), KafkaError> {
        let ready = self.check_ready(transactional_id);
        ready?;
        if timeout_ms <= 0 || i64::from(timeout_ms) > self.config.max_timeout_ms {
            return Err(KafkaError::InvalidTransactionTimeout);
        }
        let slot = self.slot(transactional_id);
        let mut guard = slot.lock().await;
        let now = self.clock.now_ms();
        let txn = match guard.as_mut() {
            Some(txn) => txn,
            None => {
                let id = self.producer_ids.next_producer_id().await?;
                guard.insert(TxnMetadata::new(transactional_id, id, timeout_ms, now))
            }
        };
        let mut working = txn.clone();
        loop {
            match working.init_producer_id(timeout_ms, expected, now)? {
                InitStep::NeedProducerId => {
                    let id = self.producer_ids.next_producer_id().await?;
                    working.rotate_producer_id(id);
                }
                InitStep::Ready => {
                    self.store(&working).await?;
                    {
                        let mut verified = self.verified.lock();
                        if working.producer_id != txn.producer_id {
                            verified.forget(txn.producer_id);
                        }
                        verified.set_epoch(working.producer_id, working.producer_epoch);
                    }
                    *txn = working;
                    tracing::info!(
                        transactional_id,
                        producer_id = txn.producer_id,
                        producer_epoch = txn.producer_epoch,
                        "transactional producer initialized"
                    );
                    return Ok((txn.producer_id, txn.producer_epoch));
                }
                InitStep::AbortFirst => {
                    self.store(&working).await?;
                    self.verified
                        .lock()
                        .set_epoch(working.producer_id, working.producer_epoch);
                    *txn = working;
                    tracing::info!(
                        transactional_id,
                        "fenced the previous producer; aborting its transaction"
                    );
                    drop(guard);
                    let this = self.clone();
                    tokio::spawn(async move {
                        let mut guard = slot.lock().await;
                        if let Some(txn) = guard.as_mut() {
                            if let Err(error) = this.complete(txn).await {
                                tracing::warn!(
                                    %error,
                                    "aborting a fenced transaction failed; retried later"
                                );
                            }
                        }
                    });
                    return Err(KafkaError::ConcurrentTransactions);
                }
            }
        }
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn.
    pub async fn add_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<(), KafkaError> {
        let ready = self.check_ready(transactional_id);
        ready?;
        let Some(slot) = self.existing(transactional_id) else {
            return Err(KafkaError::InvalidProducerIdMapping);
        };
        let mut guard = slot.lock().await;
        let Some(txn) = guard.as_mut() else {
            return Err(KafkaError::InvalidProducerIdMapping);
        };
        let now = self.clock.now_ms();
        self.change_and_store(txn, |t| {
            t.add_partitions(producer_id, producer_epoch, partitions, now)
        })
        .await?;
        self.verified.lock().set_transaction(
            txn.producer_id,
            txn.producer_epoch,
            txn.partitions.clone(),
        );
        Ok(())
    }

    /// EndTxn: prepare, write the markers, complete; answers once complete.
    pub async fn end_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Result<(), KafkaError> {
        let ready = self.check_ready(transactional_id);
        ready?;
        let Some(slot) = self.existing(transactional_id) else {
            return Err(KafkaError::InvalidProducerIdMapping);
        };
        let mut guard = slot.lock().await;
        let Some(txn) = guard.as_mut() else {
            return Err(KafkaError::InvalidProducerIdMapping);
        };
        let now = self.clock.now_ms();
        let mut working = txn.clone();
        match working.end(producer_id, producer_epoch, commit, now)? {
            EndStep::AlreadyComplete => return Ok(()),
            EndStep::Prepared => {}
        }
        self.verified
            .lock()
            .set_epoch(working.producer_id, working.producer_epoch);
        self.store(&working).await?;
        *txn = working;
        self.complete(txn).await
    }

    /// Writes the markers of a Prepare state, waits until they are durable,
    /// publishes or drops the transactional offsets and stores Complete*.
    async fn complete(&self, txn: &mut TxnMetadata) -> Result<(), KafkaError> {
        let commit = match txn.state {
            TxnState::PrepareCommit => true,
            TxnState::PrepareAbort => false,
            _ => return Ok(()),
        };
        let marker = if commit {
            Marker::Commit
        } else {
            Marker::Abort
        };
        // The coordinator epoch is the leader epoch of `__transaction_state`
        // this node loaded the transaction in (Kafka's coordinatorEpoch),
        // not the partition's current one: a deposed coordinator that
        // learns the new epoch as a follower must not write markers with it
        // (the partitions' check of the coordinator epoch would let them
        // through, docs/FAULTS.md #9). Not loaded here any more: another
        // broker coordinates it now.
        let coordinator_epoch = match self
            .partitions
            .lock()
            .status(self.partition_for(&txn.transactional_id))
        {
            Some(Ownership::Loaded { epoch }) => epoch,
            _ => return Err(KafkaError::NotCoordinator),
        };
        let now = self.clock.now_ms();
        let mut written = Vec::with_capacity(txn.partitions.len());
        let mut remote = BTreeSet::new();
        for (topic, index) in &txn.partitions {
            let Ok(partition) = self.replicas.leader_partition(topic, *index) else {
                // Led by another broker (or by none right now, or deleted):
                // WriteTxnMarkers to its leader, below.
                remote.insert((topic.clone(), *index));
                continue;
            };
            let offset = partition
                .append_marker(
                    txn.producer_id,
                    txn.producer_epoch,
                    marker,
                    coordinator_epoch,
                    now,
                )
                .map_err(|error| {
                    tracing::warn!(%topic, partition = index, %error, "writing a transaction marker failed");
                    marker_failure(&error)
                })?;
            written.push((partition, offset));
        }
        self.write_remote_markers(txn, commit, coordinator_epoch, remote)
            .await?;
        for (partition, marker) in &written {
            self.wait_marker_durable(partition, *marker).await?;
        }
        self.groups
            .complete_pending_offsets(txn.producer_id, commit, None);
        let mut completed = txn.clone();
        completed.complete(self.clock.now_ms());
        self.store(&completed).await?;
        tracing::info!(transactional_id = %txn.transactional_id, producer_id = txn.producer_id, commit, partitions = txn.partitions.len(), "transaction complete");
        *txn = completed;
        Ok(())
    }

    /// The markers of partitions this broker does not lead: WriteTxnMarkers
    /// to each one's current leader (acks=all there), retried as leaderships
    /// move until the write timeout (then the transaction stays in its
    /// Prepare state and the maintenance task completes it later). A topic
    /// deleted since needs no marker.
    async fn write_remote_markers(
        &self,
        txn: &TxnMetadata,
        commit: bool,
        coordinator_epoch: i32,
        mut remaining: BTreeSet<(String, i32)>,
    ) -> Result<(), KafkaError> {
        use kafka_protocol::messages::write_txn_markers_request::{
            WritableTxnMarker, WritableTxnMarkerTopic,
        };
        use kafka_protocol::messages::{ProducerId, TopicName, WriteTxnMarkersRequest};
        use kafka_protocol::protocol::StrBytes;
        let timeout = Duration::from_millis(self.config.write_timeout_ms.max(1) as u64);
        let deadline = tokio::time::Instant::now() + timeout;
        let node_id = self.replicas.node_id();
        while !remaining.is_empty() {
            let Some(image) = self.replicas.image() else {
                return Err(KafkaError::CoordinatorNotAvailable);
            };
            let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
            remaining.retain(|(topic, index)| {
                let state = image.topic(topic).and_then(|t| {
                    usize::try_from(*index)
                        .ok()
                        .and_then(|i| t.partitions.get(i))
                });
                match state {
                    None => false,
                    Some(state) => {
                        if state.leader >= 0 {
                            by_leader
                                .entry(state.leader)
                                .or_default()
                                .push((topic.clone(), *index));
                        }
                        true
                    }
                }
            });
            for (leader, partitions) in by_leader {
                let Some(broker) = image.brokers.get(&leader).filter(|_| leader != node_id) else {
                    // Led here now (or by an unknown broker): the next round.
                    continue;
                };
                let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                for (topic, index) in &partitions {
                    topics.entry(topic.as_str()).or_default().push(*index);
                }
                let request = WriteTxnMarkersRequest::default().with_markers(vec![
                    WritableTxnMarker::default()
                        .with_producer_id(ProducerId(txn.producer_id))
                        .with_producer_epoch(txn.producer_epoch)
                        .with_transaction_result(commit)
                        .with_coordinator_epoch(coordinator_epoch)
                        .with_topics(
                            topics
                                .into_iter()
                                .map(|(topic, indexes)| {
                                    WritableTxnMarkerTopic::default()
                                        .with_name(TopicName(StrBytes::from_string(
                                            topic.to_string(),
                                        )))
                                        .with_partition_indexes(indexes)
                                })
                                .collect(),
                        ),
                ]);
                let exchange = async {
                    let mut client = crate::replication::client::LeaderClient::connect(
                        &broker.host,
                        broker.port,
                        format!("sluice-txn-markers-{node_id}"),
                        Duration::from_secs(5),
                    )
                    .await?;
                    client.send(1, &request, timeout).await
                };
                match exchange.await {
                    Ok(response) => {
                        for marker in response.markers {
                            for topic in marker.topics {
                                for partition in topic.partitions {
                                    let key = (topic.name.0.to_string(), partition.partition_index);
                                    if partition.error_code == crate::error_codes::NONE {
                                        remaining.remove(&key);
                                    } else if partition.error_code
                                        == crate::error_codes::TRANSACTION_COORDINATOR_FENCED
                                    {
                                        // A coordinator of a later epoch owns
                                        // this transaction now: this one is a
                                        // zombie and stops (Kafka's marker
                                        // handler aborts sending).
                                        tracing::warn!(topic = %key.0, partition = key.1, leader,
                                            "transaction marker refused: a newer coordinator wrote one");
                                        return Err(KafkaError::NotCoordinator);
                                    } else {
                                        tracing::debug!(topic = %key.0, partition = key.1, leader,
                                            code = partition.error_code, "transaction marker refused; retrying");
                                    }
                                }
                            }
                        }
                    }
                    Err(error) => {
                        tracing::debug!(leader, %error, "sending transaction markers failed; retrying");
                    }
                }
            }
            if remaining.is_empty() {
                break;
            }
            // Partitions now led here get their marker locally.
            let local: Vec<(String, i32)> = remaining
                .iter()
                .filter(|(topic, index)| self.replicas.leader_partition(topic, *index).is_ok())
                .cloned()
                .collect();
            for (topic, index) in local {
                if let Ok(partition) = self.replicas.leader_partition(&topic, index) {
                    let marker = if commit {
                        Marker::Commit
                    } else {
                        Marker::Abort
                    };
                    match partition.append_marker(
                        txn.producer_id,
                        txn.producer_epoch,
                        marker,
                        coordinator_epoch,
                        self.clock.now_ms(),
                    ) {
                        Ok(marker) => {
                            if self.wait_marker_durable(&partition, marker).await.is_ok() {
                                remaining.remove(&(topic, index));
                            }
                        }
                        Err(error) => {
                            if let KafkaError::NotCoordinator = marker_failure(&error) {
                                return Err(KafkaError::NotCoordinator);
                            }
                        }
                    }
                }
            }
            if remaining.is_empty() {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                tracing::warn!(transactional_id = %txn.transactional_id, partitions = remaining.len(),
                    "transaction markers not written in time; retried later");
                return Err(KafkaError::RequestTimedOut);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Ok(())
    }

    /// TxnOffsetCommit: writes the offsets as a transactional batch of the
    /// producer into the group's `__consumer_offsets` partition; they become
    /// visible when the commit marker is written.
    #[allow(clippy::too_many_arguments)]
    pub async fn txn_offset_commit(
        &self,
        transactional_id: &str,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        member: Option<(&str, Option<&str>, i32)>,
        offsets: Vec<((String, i32), CommittedOffset)>,
    ) -> Result<(), KafkaError> {
        let ready = self.groups.check_ready(group_id);
        ready?;
        // The transaction's lock, held while its offsets are written, when
        // this broker coordinates it. Coordinated by another broker: not
        // checked against the transaction here (as Kafka without the
        // broker-to-broker verification of KIP-890); that coordinator's
        // WriteTxnMarkers for the offsets partition completes them
        // (`complete_offsets_here`).
        let _transaction = if self.check_ready(transactional_id) == Err(KafkaError::NotCoordinator)
        {
            None
        } else {
            let slot = self
                .existing(transactional_id)
                .ok_or(KafkaError::InvalidProducerIdMapping)?;
            let guard = slot.lock_owned().await;
            let Some(txn) = guard.as_ref() else {
                return Err(KafkaError::InvalidProducerIdMapping);
            };
            if txn.producer_id != producer_id {
                return Err(KafkaError::InvalidProducerIdMapping);
            }
            if txn.producer_epoch != producer_epoch {
                return Err(KafkaError::ProducerFenced);
            }
            let offsets_partition = self.groups.partition_for(group_id);
            if txn.state != TxnState::Ongoing
                || !txn
                    .partitions
                    .contains(&(OFFSETS_TOPIC.to_string(), offsets_partition))
            {
                return Err(KafkaError::InvalidTxnState);
            }
            Some(guard)
        };
        if let Some((member_id, instance_id, generation_id)) = member {
            self.groups.validate_transactional_commit(
                group_id,
                member_id,
                instance_id,
                generation_id,
            )?;
        }
        self.write_transactional_offsets(group_id, producer_id, producer_epoch, offsets)
            .await
    }

    /// Writes a transaction's offsets for a group as a transactional batch
    /// of the producer into the group's `__consumer_offsets` partition, and
    /// keeps them pending until the marker.
    async fn write_transactional_offsets(
        &self,
        group_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        offsets: Vec<((String, i32), CommittedOffset)>,
    ) -> Result<(), KafkaError> {
        if offsets.is_empty() {
            return Ok(());
        }
        let offsets_partition = self.groups.partition_for(group_id);
        let entries: Vec<store::Entry> = offsets
            .iter()
            .map(|((topic, partition), offset)| {
                (
                    crate::group::records::offset_key(group_id, topic, *partition),
                    Some(crate::group::records::offset_value(offset)),
                )
            })
            .collect();
        let written = store::append(
            &self.replicas,
            OFFSETS_TOPIC,
            offsets_partition,
            &entries,
            Some((producer_id, producer_epoch)),
            self.clock.now_ms(),
        )?;
        written.wait_durable(self.write_timeout()).await?;
        self.groups
            .add_pending_offsets(producer_id, group_id, offsets);
        Ok(())
    }

    /// The markers of `producer_id`'s transaction, coordinated by another
    /// broker, were written to `offsets_partitions` of `__consumer_offsets`
    /// led here (Kafka's GroupCoordinator.onTransactionCompleted): its
    /// pending offsets of the groups in those partitions become committed
    /// (`commit`) or are dropped.
    pub fn complete_offsets_here(
        &self,
        producer_id: i64,
        commit: bool,
        offsets_partitions: &[i32],
    ) {
        self.groups
            .complete_pending_offsets(producer_id, commit, Some(offsets_partitions));
    }

    /// Whether a transaction has uncommitted offsets of `group_id` for this
    /// partition (OffsetFetch `require_stable`).
    pub fn has_pending_offsets(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.groups.has_pending_offsets(group_id, topic, partition)
    }

    /// KIP-890 part 1: a transactional batch must carry its producer id's
    /// current epoch and belong to an ongoing transaction that holds the
    /// partition (`ProduceVerifier`).
    pub fn verify_produce(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        topic: &str,
        partition: i32,
    ) -> Result<(), ProduceRefusal> {
        self.verified
            .lock()
            .verify(producer_id, producer_epoch, topic, partition)
    }

    /// One transactional id's metadata (None: unknown).
    pub async fn describe(&self, transactional_id: &str) -> Option<TxnMetadata> {
        let slot = self.existing(transactional_id)?;
        let guard = slot.lock().await;
        guard.clone()
    }

    /// Every transactional id's metadata.
    pub async fn list(&self) -> Vec<TxnMetadata> {
        let slots: Vec<TxnSlot> = self.txns.lock().values().cloned().collect();
        let mut found = Vec::with_capacity(slots.len());
        for slot in slots {
            if let Some(txn) = slot.lock().await.clone() {
                found.push(txn);
            }
        }
        found
    }

    /// Aborts timed-out transactions, finishes Prepare states whose markers
    /// failed, and (when `expire`) forgets idle transactional ids.
    async fn check(&self, expire: bool) {
        let slots: Vec<(String, TxnSlot)> = self
            .txns
            .lock()
            .iter()
            .map(|(id, slot)| (id.clone(), slot.clone()))
            .collect();
        for (id, slot) in slots {
            let Ok(mut guard) = slot.try_lock() else {
                continue;
            };
            let Some(txn) = guard.as_mut() else {
                continue;
            };
            let now = self.clock.now_ms();
            if txn.timed_out(now) {
                let mut working = txn.clone();
                if working.fence(now).is_ok() {
                    working.abort_fenced(now);
                    self.verified
                        .lock()
                        .set_epoch(working.producer_id, working.producer_epoch);
                    if self.store(&working).await.is_err() {
                        continue;
                    }
                    tracing::info!(transactional_id = %id, timeout_ms = txn.timeout_ms, "aborting a timed-out transaction");
                    *txn = working;
                }
            }
            if matches!(txn.state, TxnState::PrepareCommit | TxnState::PrepareAbort) {
                if let Err(error) = self.complete(txn).await {
                    tracing::warn!(transactional_id = %id, %error, "completing a transaction failed; retried later");
                }
            }
            if expire {
                let mut working = txn.clone();
                if working.expire(now, self.config.expiration_ms)
                    && self.store(&working).await.is_ok()
                {
                    tracing::info!(transactional_id = %id, "transactional id expired");
                    self.verified.lock().forget(txn.producer_id);
                    *guard = None;
                    let mut txns = self.txns.lock();
                    if txns.get(&id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
                        txns.remove(&id);
                    }
                }
            }
        }
    }

    /// The periodic checks, until shutdown.
    pub async fn run_maintenance(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let tick = Duration::from_millis(self.config.abort_interval_ms as u64);
        let mut next_expire = self.clock.now_ms() + self.config.expire_interval_ms;
        loop {
            tokio::select! {
                _ = tokio::time::sleep(tick) => {}
                _ = shutdown.changed() => {
                    self.stopping.store(true, Ordering::Release);
                    return;
                }
            }
            let now = self.clock.now_ms();
            let expire = now >= next_expire;
            if expire {
                next_expire = now + self.config.expire_interval_ms;
            }
            self.check(expire).await;
        }
    }
}

/// What a failed local marker write answers: NOT_COORDINATOR when a
/// coordinator of a later epoch has written markers for the producer (this
/// one is stale), else the failure's own error.
fn marker_failure(error: &crate::partition::MarkerError) -> KafkaError {
    match error {
        crate::partition::MarkerError::Refused(code)
            if *code == crate::error_codes::TRANSACTION_COORDINATOR_FENCED =>
        {
            KafkaError::NotCoordinator
        }
        crate::partition::MarkerError::Refused(_) => KafkaError::NotLeaderOrFollower,
        crate::partition::MarkerError::Log(error) => KafkaError::from_log_error(error),
    }
}
