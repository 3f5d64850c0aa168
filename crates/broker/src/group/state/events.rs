//! SyncGroup, Heartbeat, LeaveGroup, timers, and the offset rules of a group.

use bytes::Bytes;

use super::{
    Group, GroupState, JoinResult, JoinTimer, LeavingMember, Output, SyncRequest, SyncResult, Token,
};
use crate::errors::KafkaError;

impl Group {
    /// A SyncGroup.
    pub fn sync(&mut self, now: i64, token: Token, request: SyncRequest) -> Vec<Output> {
        let mut out = Vec::new();
        let reply = |error: KafkaError| vec![Output::Sync(token, SyncResult::error(error))];
        if self.state == GroupState::Dead {
            return reply(KafkaError::CoordinatorNotAvailable);
        }
        if let Err(code) =
            self.validate_member(&request.member_id, request.group_instance_id.as_deref())
        {
            return reply(code);
        }
        if request.generation_id != self.generation_id {
            return reply(KafkaError::IllegalGeneration);
        }
        if inconsistent(
            request.protocol_type.as_deref(),
            self.protocol_type.as_deref(),
        ) || inconsistent(
            request.protocol_name.as_deref(),
            self.protocol_name.as_deref(),
        ) {
            return reply(KafkaError::InconsistentGroupProtocol);
        }
        match self.state {
            GroupState::PreparingRebalance => return reply(KafkaError::RebalanceInProgress),
            GroupState::CompletingRebalance => {
                if let Some(member) = self.members.get_mut(&request.member_id) {
                    if let Some(previous) = member.awaiting_sync.replace(token) {
                        out.push(Output::Sync(
                            previous,
                            SyncResult::error(KafkaError::UnknownMemberId),
                        ));
                    }
                }
                self.remove_pending_sync(&request.member_id);
                if self.leader_id.as_deref() == Some(request.member_id.as_str()) {
                    for member in self.members.values_mut() {
                        member.assignment = request
                            .assignments
                            .iter()
                            .find(|(id, _)| *id == member.member_id)
                            .map(|(_, bytes)| bytes.clone())
                            .unwrap_or_default();
                    }
                    self.propagate_assignment(None, now, &mut out);
                    self.transition(GroupState::Stable, now);
                    out.push(Output::StoreGroup);
                }
            }
            GroupState::Stable => {
                self.remove_pending_sync(&request.member_id);
                let assignment = self
                    .members
                    .get(&request.member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                out.push(Output::Sync(
                    token,
                    SyncResult {
                        error: None,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment,
                    },
                ));
            }
            // validate_member fails for an empty group; Dead answered above.
            GroupState::Empty | GroupState::Dead => return reply(KafkaError::UnknownMemberId),
        }
        out
    }

    /// A Heartbeat.
    pub fn heartbeat(
        &mut self,
        now: i64,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), KafkaError> {
        if self.state == GroupState::Dead {
            return Err(KafkaError::CoordinatorNotAvailable);
        }
        self.validate_member(member_id, group_instance_id)?;
        if generation_id != self.generation_id {
            return Err(KafkaError::IllegalGeneration);
        }
        let code = match self.state {
            GroupState::Empty | GroupState::Dead => return Err(KafkaError::UnknownMemberId),
            GroupState::PreparingRebalance => Err(KafkaError::RebalanceInProgress),
            GroupState::CompletingRebalance | GroupState::Stable => Ok(()),
        };
        if let Some(member) = self.members.get_mut(member_id) {
            member.heartbeat_deadline_ms = Some(now + i64::from(member.session_timeout_ms));
        }
        code
    }

    /// A LeaveGroup for one or more members; one result per member.
    pub fn leave(
        &mut self,
        now: i64,
        leaving: &[LeavingMember],
    ) -> (Vec<Result<(), KafkaError>>, Vec<Output>) {
        let mut out = Vec::new();
        let mut codes = Vec::with_capacity(leaving.len());
        let mut removed_any = false;
        for member in leaving {
            let code = if member.member_id.is_empty() {
                // Administrative removal by instance id.
                match member
                    .group_instance_id
                    .as_deref()
                    .and_then(|i| self.static_member_id(i))
                    .map(str::to_string)
                {
                    Some(member_id) => {
                        self.remove(&member_id, KafkaError::UnknownMemberId, &mut out);
                        removed_any = true;
                        Ok(())
                    }
                    None => Err(KafkaError::UnknownMemberId),
                }
            } else if self.pending_members.remove(&member.member_id).is_some() {
                Ok(())
            } else {
                match self.validate_member(&member.member_id, member.group_instance_id.as_deref()) {
                    Ok(()) => {
                        self.remove(&member.member_id, KafkaError::UnknownMemberId, &mut out);
                        removed_any = true;
                        Ok(())
                    }
                    Err(error) => Err(error),
                }
            };
            codes.push(code);
        }
        if removed_any {
            self.after_removal(now, &mut out);
        }
        (codes, out)
    }

    /// What follows a member's removal (Kafka's
    /// `removeMemberAndUpdateClassicGroup`).
    fn after_removal(&mut self, now: i64, out: &mut Vec<Output>) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.prepare_rebalance(now, out)
            }
            GroupState::PreparingRebalance if self.has_all_members_joined() => {
                self.complete_join(now, out)
            }
            _ => {}
        }
    }

    /// The earliest pending timer.
    pub fn next_deadline(&self) -> Option<i64> {
        let members = self
            .members
            .values()
            .filter_map(|m| m.heartbeat_deadline_ms);
        let pending = self.pending_members.values().copied();
        members
            .chain(pending)
            .chain(self.join_timer.map(JoinTimer::deadline_ms))
            .chain(self.sync_deadline_ms)
            .min()
    }

    /// Fires every timer that is due at `now`.
    pub fn tick(&mut self, now: i64) -> Vec<Output> {
        let mut out = Vec::new();
        if self.state == GroupState::Dead {
            return out;
        }
        // Pending (KIP-394) members that never came back.
        let expired: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        if !expired.is_empty() {
            for id in expired {
                self.pending_members.remove(&id);
            }
            self.maybe_complete_join_phase(now, &mut out);
        }
        // Sessions.
        let due: Vec<String> = self
            .members
            .values()
            .filter(|m| m.heartbeat_deadline_ms.is_some_and(|d| d <= now))
            .map(|m| m.member_id.clone())
            .collect();
        for member_id in due {
            let Some(member) = self.members.get_mut(&member_id) else {
                continue;
            };
            let satisfied = !member.is_new
                && (member.awaiting_join.is_some() || member.awaiting_sync.is_some());
            if satisfied {
                member.heartbeat_deadline_ms = None;
            } else {
                tracing::info!(group = %self.group_id, member = %member_id, "member session expired; removing it");
                self.remove(&member_id, KafkaError::UnknownMemberId, &mut out);
                self.after_removal(now, &mut out);
            }
        }
        // The join phase.
        if let Some(timer) = self.join_timer {
            if timer.deadline_ms() <= now {
                self.join_timer = None;
                match timer {
                    JoinTimer::Initial {
                        delay_ms,
                        remaining_ms,
                        ..
                    } if self.new_member_added && remaining_ms != 0 => {
                        self.new_member_added = false;
                        let delay = delay_ms.min(remaining_ms);
                        self.join_timer = Some(JoinTimer::Initial {
                            deadline_ms: now + delay,
                            delay_ms: delay,
                            remaining_ms: (remaining_ms - delay_ms).max(0),
                        });
                    }
                    _ if self.state == GroupState::PreparingRebalance => {
                        self.complete_join(now, &mut out)
                    }
                    _ => {}
                }
            }
        }
        // The sync phase.
        if self.sync_deadline_ms.is_some_and(|d| d <= now) {
            self.sync_deadline_ms = None;
            if matches!(
                self.state,
                GroupState::CompletingRebalance | GroupState::Stable
            ) && !self.pending_sync.is_empty()
            {
                let missing: Vec<String> = self.pending_sync.iter().cloned().collect();
                tracing::info!(group = %self.group_id, ?missing, "members did not sync in time; removing them");
                for member_id in missing {
                    self.remove(&member_id, KafkaError::UnknownMemberId, &mut out);
                }
                self.prepare_rebalance(now, &mut out);
            }
        }
        out
    }

    /// Kafka's `ClassicGroup.validateOffsetCommit` (not transactional).
    pub fn validate_offset_commit(
        &self,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> Result<(), KafkaError> {
        if self.state == GroupState::Dead {
            return Err(KafkaError::CoordinatorNotAvailable);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            self.validate_member(member_id, group_instance_id)?;
            if generation_id != self.generation_id {
                return Err(KafkaError::IllegalGeneration);
            }
        } else if self.state != GroupState::Empty {
            return Err(KafkaError::UnknownMemberId);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(KafkaError::RebalanceInProgress);
        }
        Ok(())
    }

    /// DeleteGroups: Ok if the group may go (it becomes Dead).
    pub fn delete(&mut self, now: i64) -> Result<(), KafkaError> {
        match self.state {
            GroupState::Dead => Err(KafkaError::GroupIdNotFound),
            GroupState::Empty => {
                self.transition(GroupState::Dead, now);
                Ok(())
            }
            _ => Err(KafkaError::NonEmptyGroup),
        }
    }

    /// OffsetDelete's group check (Kafka's `validateOffsetDelete`).
    pub fn validate_offset_delete(&self) -> Result<(), KafkaError> {
        match self.state {
            GroupState::Dead => Err(KafkaError::GroupIdNotFound),
            GroupState::Empty => Ok(()),
            _ if self.protocol_type.as_deref() == Some("consumer") => Ok(()),
            _ => Err(KafkaError::NonEmptyGroup),
        }
    }

    /// Removes the offsets `offsets.retention.minutes` has expired: for an
    /// empty group counted from when it became empty, for a group that only
    /// commits (no protocol type) from each commit. Returns what was removed;
    /// an empty group left without offsets becomes Dead.
    pub fn expire_offsets(&mut self, now: i64, retention_ms: i64) -> Vec<(String, i32)> {
        let base_of_group = match (&self.protocol_type, self.state) {
            (Some(_), GroupState::Empty) => Some(Some(self.state_timestamp_ms)),
            (None, _) => Some(None),
            _ => None,
        };
        let Some(group_base) = base_of_group else {
            return Vec::new();
        };
        let expired: Vec<(String, i32)> = self
            .offsets
            .iter()
            .filter(|(_, o)| {
                now.saturating_sub(group_base.unwrap_or(o.commit_timestamp_ms)) >= retention_ms
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in &expired {
            self.offsets.remove(key);
        }
        if self.state == GroupState::Empty && self.offsets.is_empty() && self.members.is_empty() {
            self.transition(GroupState::Dead, now);
        }
        expired
    }

    /// Answers every parked request with `error` (broker shutdown).
    pub fn abort_parked(&mut self, error: KafkaError) -> Vec<Output> {
        let mut out = Vec::new();
        for member in self.members.values_mut() {
            if let Some(token) = member.awaiting_join.take() {
                out.push(Output::Join(
                    token,
                    JoinResult::error(&member.member_id, error),
                ));
            }
            if let Some(token) = member.awaiting_sync.take() {
                out.push(Output::Sync(token, SyncResult::error(error)));
            }
        }
        out
    }

    /// The assignment bytes of a member (DescribeGroups).
    pub fn assignment_of(&self, member_id: &str) -> Bytes {
        self.members
            .get(member_id)
            .map(|m| m.assignment.clone())
            .unwrap_or_default()
    }
}

/// Kafka's `isProtocolInconsistent`: given and different.
fn inconsistent(requested: Option<&str>, current: Option<&str>) -> bool {
    matches!((requested, current), (Some(a), Some(b)) if a != b)
}
