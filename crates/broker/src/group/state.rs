//! The classic group protocol (JoinGroup/SyncGroup/Heartbeat/LeaveGroup) as a
//! pure state machine, after Kafka 4.0's `ClassicGroup` and
//! `GroupMetadataManager`. Events come in with a `now` (milliseconds) the
//! caller supplies; what comes out are responses to complete (by the token
//! the runtime gave the held request) and records to store. Timers are
//! deadlines: `next_deadline` says when to call `tick`. No I/O, no clock, no
//! randomness (the runtime passes generated member ids in).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;

use crate::errors::KafkaError;

/// Identifies a held JoinGroup or SyncGroup request inside the runtime.
pub type Token = u64;

/// Kafka's classic group states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The name Kafka reports (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// The broker settings the protocol obeys.
#[derive(Clone, Debug)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`.
    pub session_timeout_min_ms: i32,
    /// `group.max.session.timeout.ms`.
    pub session_timeout_max_ms: i32,
    /// `group.initial.rebalance.delay.ms`.
    pub initial_rebalance_delay_ms: i64,
    /// `group.max.size`.
    pub group_size_max: usize,
    /// How long a new member's JoinGroup may stay parked (Kafka: 5 minutes).
    pub new_member_join_timeout_ms: i64,
}

impl Default for GroupConfig {
    fn default() -> GroupConfig {
        GroupConfig {
            session_timeout_min_ms: 6_000,
            session_timeout_max_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            group_size_max: i32::MAX as usize,
            new_member_join_timeout_ms: 300_000,
        }
    }
}

/// One member of a group.
#[derive(Clone, Debug)]
pub struct Member {
    /// The coordinator-assigned member id.
    pub member_id: String,
    /// KIP-345 static membership id.
    pub group_instance_id: Option<String>,
    /// The client's client.id.
    pub client_id: String,
    /// The peer address the member connects from.
    pub client_host: String,
    /// How long without a heartbeat before the member is removed.
    pub session_timeout_ms: i32,
    /// How long the member may take to rejoin during a rebalance.
    pub rebalance_timeout_ms: i32,
    /// "consumer" for consumers.
    pub protocol_type: String,
    /// (protocol name, metadata) in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// The bytes the leader assigned to this member.
    pub assignment: Bytes,
    /// The member's parked JoinGroup.
    pub awaiting_join: Option<Token>,
    /// The member's parked SyncGroup.
    pub awaiting_sync: Option<Token>,
    /// Joined but not yet through a completed join phase (new-member timeout).
    pub is_new: bool,
    /// When the member expires unless it heartbeats (None: no timer).
    pub heartbeat_deadline_ms: Option<i64>,
}

impl Member {
    /// The member's metadata for `protocol`, empty if it has none.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, metadata)| metadata.clone())
            .unwrap_or_default()
    }

    fn same_protocols(&self, protocols: &[(String, Bytes)]) -> bool {
        self.protocols == protocols
    }
}

/// A committed offset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The next offset to consume.
    pub offset: i64,
    /// The leader epoch of the last consumed record (-1: unknown).
    pub leader_epoch: i32,
    /// The client's metadata string, returned unchanged.
    pub metadata: String,
    /// When the commit was made (retention counts from here or from when the
    /// group became empty).
    pub commit_timestamp_ms: i64,
}

/// A JoinGroup, as the state machine needs it.
#[derive(Clone, Debug, Default)]
pub struct JoinRequest {
    /// Empty for a member that joins for the first time.
    pub member_id: String,
    /// KIP-345 static membership id.
    pub group_instance_id: Option<String>,
    /// The client's client.id.
    pub client_id: String,
    /// Peer address.
    pub client_host: String,
    /// Requested session timeout.
    pub session_timeout_ms: i32,
    /// Requested rebalance timeout (v0: the session timeout).
    pub rebalance_timeout_ms: i32,
    /// "consumer" for consumers.
    pub protocol_type: String,
    /// (name, metadata) in order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// v4+: a dynamic member without an id gets MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
    /// v9+: a rejoining static leader may be told to skip the assignment.
    pub supports_skip_assignment: bool,
    /// The id to give this member if it is new (`<client or instance id>-<uuid>`).
    pub generated_member_id: String,
}

/// One member as the leader sees it in its JoinGroup response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinedMember {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// The member's metadata for the chosen protocol.
    pub metadata: Bytes,
}

/// A JoinGroup response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JoinResult {
    /// The error, if the join failed.
    pub error: Option<KafkaError>,
    /// The generation the member joined (-1 on error).
    pub generation_id: i32,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The chosen protocol.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader: String,
    /// v9: the static leader rejoined a stable group and need not assign.
    pub skip_assignment: bool,
    /// The member's id.
    pub member_id: String,
    /// Every member with its metadata, for the leader only.
    pub members: Vec<JoinedMember>,
}

impl JoinResult {
    /// The wire code of the answer.
    pub fn error_code(&self) -> i16 {
        crate::errors::code_or_none(self.error)
    }

    /// An error answer.
    pub fn error(member_id: &str, error: KafkaError) -> JoinResult {
        JoinResult {
            error: Some(error),
            generation_id: -1,
            protocol_type: None,
            protocol_name: None,
            leader: String::new(),
            skip_assignment: false,
            member_id: member_id.to_string(),
            members: Vec::new(),
        }
    }
}

/// A SyncGroup, as the state machine needs it.
#[derive(Clone, Debug, Default)]
pub struct SyncRequest {
    /// Member id.
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
    /// The generation the member is in.
    pub generation_id: i32,
    /// v5+: must match the group's if given.
    pub protocol_type: Option<String>,
    /// v5+: must match the group's if given.
    pub protocol_name: Option<String>,
    /// The leader's assignment: (member id, bytes).
    pub assignments: Vec<(String, Bytes)>,
}

/// A SyncGroup response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyncResult {
    /// The error, if the sync failed.
    pub error: Option<KafkaError>,
    /// The group's protocol type.
    pub protocol_type: Option<String>,
    /// The group's protocol.
    pub protocol_name: Option<String>,
    /// Exactly the bytes the leader assigned to this member.
    pub assignment: Bytes,
}

impl SyncResult {
    /// The wire code of the answer.
    pub fn error_code(&self) -> i16 {
        crate::errors::code_or_none(self.error)
    }

    /// An error answer.
    pub fn error(error: KafkaError) -> SyncResult {
        SyncResult {
            error: Some(error),
            protocol_type: None,
            protocol_name: None,
            assignment: Bytes::new(),
        }
    }
}

/// A member named in a LeaveGroup.
#[derive(Clone, Debug, Default)]
pub struct LeavingMember {
    /// Member id (may be empty when the instance id names the member).
    pub member_id: String,
    /// Static membership id.
    pub group_instance_id: Option<String>,
}

/// What the runtime must do after an event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Output {
    /// Complete a parked JoinGroup.
    Join(Token, JoinResult),
    /// Complete a parked SyncGroup.
    Sync(Token, SyncResult),
    /// Write the group's metadata record (state, generation, members).
    StoreGroup,
}

/// The pending join-phase timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JoinTimer {
    /// `group.initial.rebalance.delay.ms` for a group that was empty,
    /// extended while new members keep arriving, up to the rebalance timeout.
    Initial {
        /// When it fires.
        deadline_ms: i64,
        /// The delay that was scheduled.
        delay_ms: i64,
        /// What is left of the rebalance timeout after this delay.
        remaining_ms: i64,
    },
    /// The rebalance timeout of the join barrier.
    Rebalance {
        /// When it fires.
        deadline_ms: i64,
    },
}

impl JoinTimer {
    fn deadline_ms(self) -> i64 {
        match self {
            JoinTimer::Initial { deadline_ms, .. } | JoinTimer::Rebalance { deadline_ms } => {
                deadline_ms
            }
        }
    }
}

/// One consumer group.
#[derive(Clone, Debug)]
pub struct Group {
    /// The group id.
    pub group_id: String,
    /// Current state.
    pub state: GroupState,
    /// State before the last transition (the initial rebalance waits).
    previous_state: GroupState,
    /// When the state last changed (retention of an empty group's offsets).
    pub state_timestamp_ms: i64,
    /// Bumped when a join phase completes.
    pub generation_id: i32,
    /// The protocol type of the members ("consumer"); None for groups that
    /// only commit offsets.
    pub protocol_type: Option<String>,
    /// The protocol chosen for the current generation.
    pub protocol_name: Option<String>,
    /// The leader's member id.
    pub leader_id: Option<String>,
    /// Members by id.
    members: BTreeMap<String, Member>,
    /// Static members: instance id → member id.
    static_members: HashMap<String, String>,
    /// KIP-394 ids handed out and not yet used, with their expiry.
    pending_members: BTreeMap<String, i64>,
    /// Members of this generation that have not sent SyncGroup yet.
    pending_sync: BTreeSet<String>,
    /// A member joined during the initial delay (extends it).
    new_member_added: bool,
    /// The join-phase timer.
    join_timer: Option<JoinTimer>,
    /// When members that have not synced are removed.
    sync_deadline_ms: Option<i64>,
    /// Committed offsets by (topic, partition).
    pub offsets: BTreeMap<(String, i32), CommittedOffset>,
    /// Protocol settings.
    config: GroupConfig,
}

impl Group {
    /// A new, empty group.
    pub fn new(group_id: &str, config: GroupConfig, now: i64) -> Group {
        Group {
            group_id: group_id.to_string(),
            state: GroupState::Empty,
            previous_state: GroupState::Empty,
            state_timestamp_ms: now,
            generation_id: 0,
            protocol_type: None,
            protocol_name: None,
            leader_id: None,
            members: BTreeMap::new(),
            static_members: HashMap::new(),
            pending_members: BTreeMap::new(),
            pending_sync: BTreeSet::new(),
            new_member_added: false,
            join_timer: None,
            sync_deadline_ms: None,
            offsets: BTreeMap::new(),
            config,
        }
    }

    /// Members in id order.
    pub fn members(&self) -> impl Iterator<Item = &Member> {
        self.members.values()
    }

    /// Number of members.
    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    /// Whether `member_id` is a member.
    pub fn has_member(&self, member_id: &str) -> bool {
        self.members.contains_key(member_id)
    }

    /// Restores a member from the group metadata record (a Stable group
    /// after a restart); its session starts again at `now`.
    pub fn restore_member(&mut self, mut member: Member, now: i64) {
        member.awaiting_join = None;
        member.awaiting_sync = None;
        member.is_new = false;
        member.heartbeat_deadline_ms = Some(now + i64::from(member.session_timeout_ms));
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        self.members.insert(member.member_id.clone(), member);
    }

    /// Sets the state after a restore without a transition's side effects.
    pub fn restore_state(&mut self, state: GroupState, state_timestamp_ms: i64) {
        self.state = state;
        self.previous_state = state;
        self.state_timestamp_ms = state_timestamp_ms;
    }

    /// The static member id for an instance id.
    pub fn static_member_id(&self, group_instance_id: &str) -> Option<&str> {
        self.static_members
            .get(group_instance_id)
            .map(|s| s.as_str())
    }

    /// The longest rebalance timeout of the members.
    fn rebalance_timeout_ms(&self) -> i64 {
        self.members
            .values()
            .map(|m| i64::from(m.rebalance_timeout_ms))
            .max()
            .unwrap_or(0)
    }

    fn transition(&mut self, state: GroupState, now: i64) {
        self.previous_state = self.state;
        self.state = state;
        self.state_timestamp_ms = now;
    }

    fn awaiting_join_count(&self) -> usize {
        self.members
            .values()
            .filter(|m| m.awaiting_join.is_some())
            .count()
    }

    fn has_all_members_joined(&self) -> bool {
        self.members.len() == self.awaiting_join_count() && self.pending_members.is_empty()
    }

    /// Whether a member with these protocols may join (Kafka's
    /// `supportsProtocols`).
    fn supports_protocols(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.state == GroupState::Empty || self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols.iter().any(|(name, _)| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
    }

    /// The protocol every member supports that wins the members' vote (each
    /// votes for its most preferred candidate; ties go to the leader's order).
    pub fn select_protocol(&self) -> Option<String> {
        let candidates: Vec<&str> = self
            .members
            .values()
            .next()?
            .protocols
            .iter()
            .map(|(name, _)| name.as_str())
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == name))
            })
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for member in self.members.values() {
            if let Some((name, _)) = member
                .protocols
                .iter()
                .find(|(n, _)| candidates.contains(&n.as_str()))
            {
                *votes.entry(name.as_str()).or_default() += 1;
            }
        }
        let preference: Vec<&str> = self
            .leader_id
            .as_ref()
            .and_then(|id| self.members.get(id))
            .map(|leader| leader.protocols.iter().map(|(n, _)| n.as_str()).collect())
            .unwrap_or_else(|| candidates.clone());
        let best = votes.values().copied().max()?;
        preference
            .into_iter()
            .chain(candidates.iter().copied())
            .find(|name| votes.get(name) == Some(&best))
            .map(str::to_string)
    }

    /// Kafka's `validateExistingMember`.
    fn validate_member(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
    ) -> Result<(), KafkaError> {
        match group_instance_id {
            None if self.members.contains_key(member_id) => Ok(()),
            None => Err(KafkaError::UnknownMemberId),
            Some(instance) => match self.static_members.get(instance) {
                None => Err(KafkaError::UnknownMemberId),
                Some(existing) if existing != member_id => Err(KafkaError::FencedInstanceId),
                Some(_) => Ok(()),
            },
        }
    }

    /// Kafka's `acceptJoiningMember` (group.max.size).
    fn accept_joining_member(&self, member_id: &str) -> bool {
        let max = self.config.group_size_max;
        match self.state {
            GroupState::Empty | GroupState::Dead => true,
            GroupState::PreparingRebalance => {
                self.members
                    .get(member_id)
                    .is_some_and(|m| m.awaiting_join.is_some())
                    || self.awaiting_join_count() < max
            }
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.members.contains_key(member_id) || self.members.len() < max
            }
        }
    }

    fn maybe_prepare_rebalance_or_complete_join(&mut self, now: i64, out: &mut Vec<Output>) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty => {
                self.prepare_rebalance(now, out)
            }
            _ => self.maybe_complete_join_phase(now, out),
        }
    }

    fn maybe_complete_join_phase(&mut self, now: i64, out: &mut Vec<Output>) {
        if self.state == GroupState::PreparingRebalance
            && self.has_all_members_joined()
            && self.previous_state != GroupState::Empty
        {
            self.complete_join(now, out);
        }
    }

    fn prepare_rebalance(&mut self, now: i64, out: &mut Vec<Output>) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_assignment(KafkaError::RebalanceInProgress, now, out);
        }
        self.sync_deadline_ms = None;
        let initial = self.state == GroupState::Empty;
        if initial {
            let delay_ms = self.config.initial_rebalance_delay_ms;
            self.new_member_added = false;
            self.join_timer = Some(JoinTimer::Initial {
                deadline_ms: now + delay_ms,
                delay_ms,
                remaining_ms: (self.rebalance_timeout_ms() - delay_ms).max(0),
            });
        }
        self.transition(GroupState::PreparingRebalance, now);
        if !initial {
            if self.has_all_members_joined() {
                self.complete_join(now, out);
            } else {
                self.join_timer = Some(JoinTimer::Rebalance {
                    deadline_ms: now + self.rebalance_timeout_ms(),
                });
            }
        }
    }

    fn complete_join(&mut self, now: i64, out: &mut Vec<Output>) {
        self.join_timer = None;
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in gone {
            self.remove(&member_id, KafkaError::UnknownMemberId, out);
        }
        if self.state == GroupState::Dead {
            return;
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Nobody rejoined: wait until sessions remove the silent members.
            self.join_timer = Some(JoinTimer::Rebalance {
                deadline_ms: now + self.rebalance_timeout_ms(),
            });
            return;
        }
        self.generation_id += 1;
        self.pending_sync.clear();
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition(GroupState::Empty, now);
            out.push(Output::StoreGroup);
            return;
        }
        self.protocol_name = self.select_protocol();
        self.transition(GroupState::CompletingRebalance, now);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for member_id in ids {
            let is_leader = self.leader_id.as_deref() == Some(member_id.as_str());
            let response = self.join_response(&member_id, is_leader, false);
            if let Some(member) = self.members.get_mut(&member_id) {
                if let Some(token) = member.awaiting_join.take() {
                    out.push(Output::Join(token, response));
                }
                member.heartbeat_deadline_ms = Some(now + i64::from(member.session_timeout_ms));
                member.is_new = false;
            }
            self.pending_sync.insert(member_id);
        }
        self.sync_deadline_ms = Some(now + self.rebalance_timeout_ms());
    }

    /// Kafka's `maybeElectNewJoinedLeader`.
    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = &self.leader_id else {
            return false;
        };
        if self
            .members
            .get(leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.values().find(|m| m.awaiting_join.is_some()) {
            Some(member) => {
                self.leader_id = Some(member.member_id.clone());
                true
            }
            None => false,
        }
    }

    /// Removes a member; answers its parked requests with `error`.
    fn remove(&mut self, member_id: &str, error: KafkaError, out: &mut Vec<Output>) {
        let Some(mut member) = self.members.remove(member_id) else {
            return;
        };
        if let Some(token) = member.awaiting_join.take() {
            out.push(Output::Join(token, JoinResult::error("", error)));
        }
        if let Some(token) = member.awaiting_sync.take() {
            out.push(Output::Sync(token, SyncResult::error(error)));
        }
        if let Some(instance) = &member.group_instance_id {
            if self.static_members.get(instance).map(|s| s.as_str()) == Some(member_id) {
                self.static_members.remove(instance);
            }
        }
        self.pending_sync.remove(member_id);
        if self.leader_id.as_deref() == Some(member_id) {
            self.leader_id = self.members.keys().next().cloned();
        }
    }

    fn reset_and_propagate_assignment(
        &mut self,
        error: KafkaError,
        now: i64,
        out: &mut Vec<Output>,
    ) {
        for member in self.members.values_mut() {
            member.assignment = Bytes::new();
        }
        self.propagate_assignment(Some(error), now, out);
    }

    fn propagate_assignment(&mut self, error: Option<KafkaError>, now: i64, out: &mut Vec<Output>) {
        let ok = error.is_none();
        for member in self.members.values_mut() {
            if let Some(token) = member.awaiting_sync.take() {
                out.push(Output::Sync(
                    token,
                    SyncResult {
                        error,
                        protocol_type: if ok { self.protocol_type.clone() } else { None },
                        protocol_name: if ok { self.protocol_name.clone() } else { None },
                        assignment: member.assignment.clone(),
                    },
                ));
                member.heartbeat_deadline_ms = Some(now + i64::from(member.session_timeout_ms));
            }
        }
    }

    fn remove_pending_sync(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline_ms = None;
        }
    }
}

mod events;
mod join;

#[cfg(test)]
mod tests;
