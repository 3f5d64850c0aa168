//! The coordinator runtime around the pure group state machine: the group
//! table, parked JoinGroup/SyncGroup requests as oneshot channels, one timer
//! task per group (sleeps until the group's next deadline or until an event
//! changes it), offset commits acknowledged once durable, the replay of
//! `__consumer_offsets` at start, and the periodic offset expiration.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{oneshot, watch, Notify};

use super::pending::PendingTxnOffsets;
use super::records;
use super::state::{
    CommittedOffset, Group, GroupConfig, GroupState, JoinRequest, JoinResult, LeavingMember,
    Output, SyncRequest, SyncResult, Token,
};
use super::store::{self, Entry, LoadedGroup};
use super::{partition_for, Clock, OFFSETS_TOPIC};
use crate::config::Settings;
use crate::coordinator_partitions::{CoordinatorPartitions, Ownership};
use crate::errors::KafkaError;
use crate::lease::BrokerLease;
use crate::replica_manager::ReplicaManager;

/// The coordinator's settings, read once from the broker settings.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Protocol settings of every group.
    pub group: GroupConfig,
    /// `offsets.topic.num.partitions`.
    pub partitions: i32,
    /// `offsets.topic.replication.factor` (capped at the live brokers).
    pub replication_factor: i16,
    /// `offsets.retention.minutes`, in milliseconds.
    pub retention_ms: i64,
    /// `offsets.retention.check.interval.ms`.
    pub retention_check_interval_ms: i64,
    /// `offsets.commit.timeout.ms`: how long a commit waits to be durable.
    pub commit_timeout_ms: i64,
    /// `offset.metadata.max.bytes`.
    pub metadata_bytes_max: usize,
}

impl CoordinatorConfig {
    /// Reads the group.* and offsets.* broker configs.
    pub fn from_settings(settings: &Settings) -> CoordinatorConfig {
        let int = |name: &str| settings.get_i64(name).clamp(0, i32::MAX as i64) as i32;
        CoordinatorConfig {
            group: GroupConfig {
                session_timeout_min_ms: int("group.min.session.timeout.ms"),
                session_timeout_max_ms: int("group.max.session.timeout.ms"),
                initial_rebalance_delay_ms: settings
                    .get_i64("group.initial.rebalance.delay.ms")
                    .max(0),
                group_size_max: int("group.max.size").max(1) as usize,
                new_member_join_timeout_ms: 300_000,
            },
            partitions: int("offsets.topic.num.partitions").max(1),
            replication_factor: settings
                .get_i64("offsets.topic.replication.factor")
                .clamp(1, i16::MAX as i64) as i16,
            retention_ms: settings
                .get_i64("offsets.retention.minutes")
                .max(1)
                .saturating_mul(60_000),
            retention_check_interval_ms: settings
                .get_i64("offsets.retention.check.interval.ms")
                .max(1),
            commit_timeout_ms: settings.get_i64("offsets.commit.timeout.ms").max(1),
            metadata_bytes_max: settings.get_i64("offset.metadata.max.bytes").max(0) as usize,
        }
    }
}

/// A topic's committed offsets by partition (None: nothing committed).
pub type TopicOffsets = (String, Vec<(i32, Option<CommittedOffset>)>);

/// One group and its parked requests.
struct Slot {
    /// The state machine.
    group: Group,
    /// Parked JoinGroup requests by token.
    joins: HashMap<Token, oneshot::Sender<JoinResult>>,
    /// Parked SyncGroup requests by token.
    syncs: HashMap<Token, oneshot::Sender<SyncResult>>,
    /// Set when the group left the table; its timer task ends.
    removed: bool,
    /// For each partition, the `__consumer_offsets` offset of the commit
    /// whose offset the group holds: a commit is applied once it is
    /// durable, and an older commit that became durable later does not
    /// replace a newer one (Kafka's `CommitRecordMetadataAndOffset`).
    applied_commits: HashMap<(String, i32), i64>,
}

/// A group in the table.
struct GroupHandle {
    /// The group, locked for each event (never across an await).
    slot: Mutex<Slot>,
    /// Wakes the group's timer task after an event changed its deadlines.
    wake: Notify,
}

/// A group as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct GroupDescription {
    /// State name.
    pub state: GroupState,
    /// Protocol type ("" if none).
    pub protocol_type: String,
    /// The chosen protocol when Stable, else "".
    pub protocol_data: String,
    /// Members.
    pub members: Vec<DescribedMember>,
}

/// A member as DescribeGroups shows it.
#[derive(Clone, Debug)]
pub struct DescribedMember {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// client.id.
    pub client_id: String,
    /// Peer address.
    pub client_host: String,
    /// Metadata for the chosen protocol (Stable only).
    pub metadata: Bytes,
    /// Assignment (Stable only).
    pub assignment: Bytes,
}

/// A group as ListGroups shows it.
#[derive(Clone, Debug)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// Protocol type ("" if none).
    pub protocol_type: String,
    /// State.
    pub state: GroupState,
}

/// The group coordinator of this broker.
pub struct GroupCoordinator {
    /// Settings.
    pub config: CoordinatorConfig,
    /// Where `__consumer_offsets` lives.
    replicas: Arc<ReplicaManager>,
    /// Every group this node coordinates.
    groups: Mutex<HashMap<String, Arc<GroupHandle>>>,
    /// Set once the first `sync_ownership` ran.
    loaded: AtomicBool,
    /// The `__consumer_offsets` partitions this node leads and serves.
    partitions: Mutex<CoordinatorPartitions>,
    /// Set at shutdown: parked requests are answered, new ones refused.
    stopping: AtomicBool,
    /// Source of tokens for parked requests.
    next_token: AtomicU64,
    /// Milliseconds for the state machine.
    clock: Clock,
    /// Transactional offsets waiting for their producer's marker.
    pending: Mutex<PendingTxnOffsets>,
    /// Whether this node may still coordinate on its own image (a node
    /// cut off from the controller stops before it is fenced).
    lease: Arc<BrokerLease>,
}

impl GroupCoordinator {
    pub fn new(
        config: CoordinatorConfig,
        replicas: Arc<ReplicaManager>,
        lease: Arc<BrokerLease>,
    ) -> Arc<GroupCoordinator> {
        Arc::new(GroupCoordinator {
            config,
            replicas,
            groups: Mutex::new(HashMap::new()),
            loaded: AtomicBool::new(false),
            partitions: Mutex::new(CoordinatorPartitions::default()),
            stopping: AtomicBool::new(false),
            next_token: AtomicU64::new(1),
            clock: Clock::new(),
            pending: Mutex::new(PendingTxnOffsets::default()),
            lease,
        })
    }

    /// The `__consumer_offsets` partition of a group.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        partition_for(group_id, self.config.partitions)
    }

    /// Whether this coordinator can serve `group_id` now: it leads the
    /// group's partition and has loaded it, and its lease holds (a node
    /// that has not heard from the controller for a session timeout may
    /// have been replaced: docs/FAULTS.md #4).
    pub fn check_ready(&self, group_id: &str) -> Result<(), KafkaError> {
        if self.stopping.load(Ordering::Acquire) || !self.lease.holds() {
            return Err(KafkaError::NotCoordinator);
        }
        let index = self.partition_for(group_id);
        match self.partitions.lock().status(index) {
            Some(Ownership::Loaded { .. }) => Ok(()),
            Some(Ownership::Loading { .. }) => Err(KafkaError::CoordinatorLoadInProgress),
            None if !self.loaded.load(Ordering::Acquire) => {
                Err(KafkaError::CoordinatorLoadInProgress)
            }
            None if self.replicas.get(OFFSETS_TOPIC, index).is_some() => {
                Err(KafkaError::NotCoordinator)
            }
            None => Err(KafkaError::CoordinatorNotAvailable),
        }
    }

    /// Whether the first load has run.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    /// Follows the leaderships of `__consumer_offsets`: replays each
    /// partition this node has come to lead (its groups are served once it
    /// is loaded) and drops the groups of each it no longer leads.
    pub fn sync_ownership(self: &Arc<Self>) {
        let led = self
            .replicas
            .led_partitions(OFFSETS_TOPIC, self.config.partitions);
        let plan = self.partitions.lock().plan(&led);
        for index in &plan.unload {
            self.unload(*index);
        }
        for (index, epoch) in plan.load {
            let mut loaded: HashMap<String, LoadedGroup> = HashMap::new();
            let mut pending = PendingTxnOffsets::default();
            if let Ok(partition) = self.replicas.leader_partition(OFFSETS_TOPIC, index) {
                pending = store::replay(&partition, &mut loaded);
            }
            self.pending.lock().merge(pending);
            let now = self.clock.now_ms();
            let count = loaded.len();
            for (group_id, data) in loaded {
                if data.metadata.is_none() && data.offsets.is_empty() {
                    continue;
                }
                let mut group = Group::new(&group_id, self.config.group.clone(), now);
                if let Some(metadata) = data.metadata {
                    store::restore(&mut group, metadata, now);
                }
                group.offsets = data.offsets;
                self.insert(group);
            }
            self.partitions.lock().loaded(index, epoch);
            tracing::debug!(
                partition = index,
                leader_epoch = epoch,
                groups = count,
                "group coordinator loaded a __consumer_offsets partition"
            );
        }
        if !self.loaded.swap(true, Ordering::AcqRel) {
            tracing::info!(
                partitions = led.len(),
                "group coordinator loaded __consumer_offsets"
            );
        }
    }

    /// Drops the groups of a partition no longer led here: their parked
    /// requests are answered NOT_COORDINATOR.
    fn unload(&self, index: i32) {
        self.pending
            .lock()
            .drop_groups(|group| self.partition_for(group) == index);
        let handles: Vec<(String, Arc<GroupHandle>)> = self
            .groups
            .lock()
            .iter()
            .filter(|(group_id, _)| self.partition_for(group_id) == index)
            .map(|(group_id, handle)| (group_id.clone(), handle.clone()))
            .collect();
        let count = handles.len();
        for (group_id, handle) in handles {
            let mut slot = handle.slot.lock();
            let outputs = slot.group.abort_parked(KafkaError::NotCoordinator);
            self.apply(&mut slot, outputs);
            slot.joins.clear();
            slot.syncs.clear();
            self.remove_group(&group_id, &handle, &mut slot);
        }
        tracing::info!(
            partition = index,
            groups = count,
            "group coordinator unloaded a __consumer_offsets partition it no longer leads"
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

    fn insert(self: &Arc<Self>, group: Group) -> Arc<GroupHandle> {
        let group_id = group.group_id.clone();
        self.get_or_insert_with(&group_id, || group)
    }

    /// The group's handle, created (with its timer task) if absent.
    fn get_or_insert_with(
        self: &Arc<Self>,
        group_id: &str,
        make: impl FnOnce() -> Group,
    ) -> Arc<GroupHandle> {
        let mut groups = self.groups.lock();
        if let Some(handle) = groups.get(group_id) {
            return handle.clone();
        }
        let handle = Arc::new(GroupHandle {
            slot: Mutex::new(Slot {
                group: make(),
                joins: HashMap::new(),
                syncs: HashMap::new(),
                removed: false,
                applied_commits: HashMap::new(),
            }),
            wake: Notify::new(),
        });
        groups.insert(group_id.to_string(), handle.clone());
        drop(groups);
        tokio::spawn(self.clone().run_timer(handle.clone()));
        handle
    }

    fn get(&self, group_id: &str) -> Option<Arc<GroupHandle>> {
        self.groups.lock().get(group_id).cloned()
    }

    fn get_or_create(self: &Arc<Self>, group_id: &str) -> Arc<GroupHandle> {
        let now = self.clock.now_ms();
        self.get_or_insert_with(group_id, || {
            Group::new(group_id, self.config.group.clone(), now)
        })
    }

    fn remove_group(&self, group_id: &str, handle: &GroupHandle, slot: &mut Slot) {
        slot.removed = true;
        let mut groups = self.groups.lock();
        if groups
            .get(group_id)
            .is_some_and(|h| std::ptr::eq(h.as_ref(), handle))
        {
            groups.remove(group_id);
        }
        handle.wake.notify_one();
    }

    fn token(&self) -> Token {
        self.next_token.fetch_add(1, Ordering::Relaxed)
    }

    /// Completes parked requests and writes records the outputs ask for.
    fn apply(&self, slot: &mut Slot, outputs: Vec<Output>) {
        for output in outputs {
            match output {
                Output::Join(token, result) => {
                    if let Some(sender) = slot.joins.remove(&token) {
                        let _ = sender.send(result);
                    }
                }
                Output::Sync(token, result) => {
                    if let Some(sender) = slot.syncs.remove(&token) {
                        let _ = sender.send(result);
                    }
                }
                Output::StoreGroup => {
                    let group = &slot.group;
                    let entries = vec![(
                        records::group_key(&group.group_id),
                        Some(records::group_value(&store::to_stored(group))),
                    )];
                    let index = self.partition_for(&group.group_id);
                    if let Err(error) =
                        store::append(&self.replicas, index, &entries, self.clock.now_ms())
                    {
                        tracing::warn!(group = %group.group_id, %error, "storing group metadata failed");
                    }
                }
            }
        }
    }

    /// A JoinGroup; waits while the request is parked.
    pub async fn join(self: &Arc<Self>, group_id: &str, request: JoinRequest) -> JoinResult {
        let member_id = request.member_id.clone();
        let handle = if request.member_id.is_empty() {
            self.get_or_create(group_id)
        } else {
            match self.get(group_id) {
                Some(handle) => handle,
                None => return JoinResult::error(&member_id, KafkaError::UnknownMemberId),
            }
        };
        let token = self.token();
        let (sender, receiver) = oneshot::channel();
        {
            let mut slot = handle.slot.lock();
            slot.joins.insert(token, sender);
            let outputs = slot.group.join(self.clock.now_ms(), token, request);
            self.apply(&mut slot, outputs);
        }
        handle.wake.notify_one();
        receiver
            .await
            .unwrap_or_else(|_| JoinResult::error(&member_id, KafkaError::NotCoordinator))
    }

    /// A SyncGroup; followers wait for the leader's.
    pub async fn sync(&self, group_id: &str, request: SyncRequest) -> SyncResult {
        let Some(handle) = self.get(group_id) else {
            return SyncResult::error(KafkaError::UnknownMemberId);
        };
        let token = self.token();
        let (sender, receiver) = oneshot::channel();
        {
            let mut slot = handle.slot.lock();
            slot.syncs.insert(token, sender);
            let outputs = slot.group.sync(self.clock.now_ms(), token, request);
            self.apply(&mut slot, outputs);
        }
        handle.wake.notify_one();
        receiver
            .await
            .unwrap_or_else(|_| SyncResult::error(KafkaError::NotCoordinator))
    }

    /// A Heartbeat.
    pub fn heartbeat(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), KafkaError> {
        let Some(handle) = self.get(group_id) else {
            return Err(KafkaError::UnknownMemberId);
        };
        let code = handle.slot.lock().group.heartbeat(
            self.clock.now_ms(),
            member_id,
            group_instance_id,
            generation_id,
        );
        handle.wake.notify_one();
        code
    }

    /// A LeaveGroup: one result per member.
    pub fn leave(&self, group_id: &str, members: &[LeavingMember]) -> Vec<Result<(), KafkaError>> {
        let Some(handle) = self.get(group_id) else {
            return vec![Err(KafkaError::UnknownMemberId); members.len()];
        };
        let codes = {
            let mut slot = handle.slot.lock();
            let (codes, outputs) = slot.group.leave(self.clock.now_ms(), members);
            self.apply(&mut slot, outputs);
            codes
        };
        handle.wake.notify_one();
        codes
    }

    /// Commits offsets once the group rules allow it; answers when they are
    /// durable, and only then does OffsetFetch see them (Kafka keeps them
    /// pending until the append is replicated: a commit that a failover
    /// loses was never visible, docs/FAULTS.md #10). Returns one result for
    /// the whole request (the caller applies it to every partition it
    /// passed).
    pub async fn commit(
        self: &Arc<Self>,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
        version: i16,
        offsets: Vec<((String, i32), CommittedOffset)>,
    ) -> Result<(), KafkaError> {
        let handle = match self.get(group_id) {
            Some(handle) => handle,
            // A "simple" group: generation -1, no group management.
            None if generation_id < 0 => self.get_or_create(group_id),
            None if version >= 9 => return Err(KafkaError::GroupIdNotFound),
            None => return Err(KafkaError::IllegalGeneration),
        };
        if offsets.is_empty() {
            return handle.slot.lock().group.validate_offset_commit(
                member_id,
                group_instance_id,
                generation_id,
            );
        }
        let appended = {
            let slot = handle.slot.lock();
            slot.group
                .validate_offset_commit(member_id, group_instance_id, generation_id)?;
            let entries: Vec<Entry> = offsets
                .iter()
                .map(|((topic, partition), offset)| {
                    (
                        records::offset_key(group_id, topic, *partition),
                        Some(records::offset_value(offset)),
                    )
                })
                .collect();
            store::append(
                &self.replicas,
                self.partition_for(group_id),
                &entries,
                self.clock.now_ms(),
            )
        };
        let written = appended?;
        written
            .wait_durable(Duration::from_millis(self.config.commit_timeout_ms as u64))
            .await?;
        let last_offset = written.last_offset;
        let mut slot = handle.slot.lock();
        for (key, offset) in offsets {
            let newer = slot
                .applied_commits
                .get(&key)
                .is_none_or(|applied| *applied < last_offset);
            if newer {
                slot.applied_commits.insert(key.clone(), last_offset);
                slot.group.offsets.insert(key, offset);
            }
        }
        Ok(())
    }

    /// TxnOffsetCommit's group checks (v3+, KIP-447): Ok if this member and
    /// generation may commit (a group never seen: only generation -1).
    pub fn validate_transactional_commit(
        &self,
        group_id: &str,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), KafkaError> {
        match self.get(group_id) {
            Some(handle) => handle.slot.lock().group.validate_offset_commit(
                member_id,
                group_instance_id,
                generation_id,
            ),
            None if generation_id < 0 => Ok(()),
            None => Err(KafkaError::IllegalGeneration),
        }
    }

    /// A TxnOffsetCommit's offsets, durable in `__consumer_offsets`, wait
    /// for their producer's marker.
    pub fn add_pending_offsets(
        &self,
        producer_id: i64,
        group_id: &str,
        offsets: Vec<((String, i32), CommittedOffset)>,
    ) {
        self.pending.lock().add(producer_id, group_id, offsets);
    }

    /// The producer's marker was written to the `__consumer_offsets`
    /// partitions `offsets_partitions` (None: every partition): its pending
    /// offsets of the groups there become committed (`commit`) or are
    /// dropped (Kafka's GroupCoordinator.onTransactionCompleted).
    pub fn complete_pending_offsets(
        self: &Arc<Self>,
        producer_id: i64,
        commit: bool,
        offsets_partitions: Option<&[i32]>,
    ) {
        let done = self.pending.lock().complete(producer_id, commit, |group| {
            offsets_partitions.is_none_or(|p| p.contains(&self.partition_for(group)))
        });
        for (group_id, offsets) in done {
            self.materialize_offsets(&group_id, offsets);
        }
    }

    /// Whether a transaction has uncommitted offsets of `group_id` for this
    /// partition (OffsetFetch `require_stable`).
    pub fn has_pending_offsets(&self, group_id: &str, topic: &str, partition: i32) -> bool {
        self.pending.lock().has(group_id, topic, partition)
    }

    /// Offsets of a committed transaction become visible (their records are
    /// already in `__consumer_offsets`; the commit marker made them count).
    pub fn materialize_offsets(
        self: &Arc<Self>,
        group_id: &str,
        offsets: Vec<((String, i32), CommittedOffset)>,
    ) {
        let handle = self.get_or_create(group_id);
        handle.slot.lock().group.offsets.extend(offsets);
    }

    /// Committed offsets of a group: for the partitions asked, or all
    /// (`None`). Unknown group or partition: `None` offsets.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        wanted: Option<Vec<(String, Vec<i32>)>>,
    ) -> Vec<TopicOffsets> {
        let offsets: BTreeMap<(String, i32), CommittedOffset> = self
            .get(group_id)
            .map(|h| h.slot.lock().group.offsets.clone())
            .unwrap_or_default();
        match wanted {
            Some(topics) => topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let found = partitions
                        .into_iter()
                        .map(|p| (p, offsets.get(&(topic.clone(), p)).cloned()))
                        .collect();
                    (topic, found)
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<String, Vec<(i32, Option<CommittedOffset>)>> =
                    BTreeMap::new();
                for ((topic, partition), offset) in offsets {
                    by_topic
                        .entry(topic)
                        .or_default()
                        .push((partition, Some(offset)));
                }
                by_topic.into_iter().collect()
            }
        }
    }

    /// Every group.
    pub fn list(&self) -> Vec<GroupListing> {
        let handles: Vec<Arc<GroupHandle>> = self.groups.lock().values().cloned().collect();
        let mut listings: Vec<GroupListing> = handles
            .iter()
            .map(|h| {
                let slot = h.slot.lock();
                GroupListing {
                    group_id: slot.group.group_id.clone(),
                    protocol_type: slot.group.protocol_type.clone().unwrap_or_default(),
                    state: slot.group.state,
                }
            })
            .filter(|g| g.state != GroupState::Dead)
            .collect();
        listings.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        listings
    }

    /// One group, None if unknown.
    pub fn describe(&self, group_id: &str) -> Option<GroupDescription> {
        let handle = self.get(group_id)?;
        let slot = handle.slot.lock();
        let group = &slot.group;
        let stable = group.state == GroupState::Stable;
        let protocol = group.protocol_name.clone().unwrap_or_default();
        Some(GroupDescription {
            state: group.state,
            protocol_type: group.protocol_type.clone().unwrap_or_default(),
            protocol_data: if stable {
                protocol.clone()
            } else {
                String::new()
            },
            members: group
                .members()
                .map(|m| DescribedMember {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata(&protocol)
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
        })
    }

    /// DeleteGroups for one group.
    pub async fn delete(&self, group_id: &str) -> Result<(), KafkaError> {
        let Some(handle) = self.get(group_id) else {
            return Err(KafkaError::GroupIdNotFound);
        };
        let appended = {
            let mut slot = handle.slot.lock();
            slot.group.delete(self.clock.now_ms())?;
            let mut entries: Vec<Entry> = slot
                .group
                .offsets
                .keys()
                .map(|(topic, partition)| (records::offset_key(group_id, topic, *partition), None))
                .collect();
            entries.push((records::group_key(group_id), None));
            slot.group.offsets.clear();
            self.remove_group(group_id, &handle, &mut slot);
            store::append(
                &self.replicas,
                self.partition_for(group_id),
                &entries,
                self.clock.now_ms(),
            )
        };
        tracing::info!(group = %group_id, "group deleted");
        match appended {
            Ok(written) => {
                written
                    .wait_durable(Duration::from_millis(self.config.commit_timeout_ms as u64))
                    .await
            }
            Err(error) => Err(error),
        }
    }

    /// OffsetDelete: Err(group error) or one result per partition.
    pub async fn delete_offsets(
        &self,
        group_id: &str,
        partitions: &[(String, i32)],
        subscribed: impl Fn(&Group, &str) -> bool,
    ) -> Result<Vec<Result<(), KafkaError>>, KafkaError> {
        let Some(handle) = self.get(group_id) else {
            return Err(KafkaError::GroupIdNotFound);
        };
        let (codes, appended) = {
            let mut slot = handle.slot.lock();
            slot.group.validate_offset_delete()?;
            let codes: Vec<Result<(), KafkaError>> = partitions
                .iter()
                .map(|(topic, _)| {
                    if slot.group.state != GroupState::Empty && subscribed(&slot.group, topic) {
                        Err(KafkaError::GroupSubscribedToTopic)
                    } else {
                        Ok(())
                    }
                })
                .collect();
            let entries: Vec<Entry> = partitions
                .iter()
                .zip(&codes)
                .filter(|(key, code)| code.is_ok() && slot.group.offsets.contains_key(*key))
                .map(|((topic, partition), _)| {
                    (records::offset_key(group_id, topic, *partition), None)
                })
                .collect();
            for (key, code) in partitions.iter().zip(&codes) {
                if code.is_ok() {
                    slot.group.offsets.remove(key);
                }
            }
            let appended = if entries.is_empty() {
                None
            } else {
                Some(store::append(
                    &self.replicas,
                    self.partition_for(group_id),
                    &entries,
                    self.clock.now_ms(),
                ))
            };
            (codes, appended)
        };
        match appended {
            Some(Ok(written)) => {
                written
                    .wait_durable(Duration::from_millis(self.config.commit_timeout_ms as u64))
                    .await?;
                Ok(codes)
            }
            Some(Err(error)) => Err(error),
            None => Ok(codes),
        }
    }

    /// One group's timers.
    async fn run_timer(self: Arc<Self>, handle: Arc<GroupHandle>) {
        loop {
            let deadline = {
                let slot = handle.slot.lock();
                if slot.removed || self.stopping.load(Ordering::Acquire) {
                    return;
                }
                slot.group.next_deadline()
            };
            let sleep = async {
                match deadline {
                    Some(ms) => tokio::time::sleep_until(self.clock.instant_of(ms)).await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = sleep => {
                    let mut slot = handle.slot.lock();
                    let outputs = slot.group.tick(self.clock.now_ms());
                    self.apply(&mut slot, outputs);
                }
                _ = handle.wake.notified() => {}
            }
        }
    }

    /// Expires old offsets every `offsets.retention.check.interval.ms`, and
    /// answers every parked request at shutdown.
    pub async fn run_maintenance(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let interval = Duration::from_millis(self.config.retention_check_interval_ms as u64);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => self.expire_offsets(),
                _ = shutdown.changed() => break,
            }
        }
        self.stop();
    }

    /// One pass of offset expiration.
    pub fn expire_offsets(&self) {
        let handles: Vec<Arc<GroupHandle>> = self.groups.lock().values().cloned().collect();
        let now = self.clock.now_ms();
        for handle in handles {
            let mut slot = handle.slot.lock();
            let expired = slot.group.expire_offsets(now, self.config.retention_ms);
            let group_id = slot.group.group_id.clone();
            let mut entries: Vec<Entry> = expired
                .iter()
                .map(|(topic, partition)| (records::offset_key(&group_id, topic, *partition), None))
                .collect();
            if slot.group.state == GroupState::Dead {
                entries.push((records::group_key(&group_id), None));
                self.remove_group(&group_id, &handle, &mut slot);
                tracing::info!(group = %group_id, "empty group without offsets removed");
            }
            if !entries.is_empty() {
                tracing::info!(group = %group_id, expired = expired.len(), "offsets expired");
                if let Err(error) =
                    store::append(&self.replicas, self.partition_for(&group_id), &entries, now)
                {
                    tracing::warn!(group = %group_id, %error, "writing offset tombstones failed");
                }
            }
        }
    }

    /// Refuses new requests and answers parked ones with NOT_COORDINATOR.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::Release);
        let handles: Vec<Arc<GroupHandle>> = self.groups.lock().values().cloned().collect();
        for handle in handles {
            let mut slot = handle.slot.lock();
            let outputs = slot.group.abort_parked(KafkaError::NotCoordinator);
            self.apply(&mut slot, outputs);
            slot.joins.clear();
            slot.syncs.clear();
            handle.wake.notify_one();
        }
    }
}
