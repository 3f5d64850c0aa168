//! SyncGroup, Heartbeat, LeaveGroup, timers, and the offset rules of a group.

use bytes::Bytes;

use super::{
    Group, GroupState, JoinResult, JoinTimer, LeavingMember, Output, SyncRequest, SyncResult, Token,
};
use crate::error_codes;

impl Group {
    /// A SyncGroup.
    pub fn sync(&mut self, now: i64, token: Token, request: SyncRequest) -> Vec<Output> {
        let mut out = Vec::new();
        let reply = |code: i16| vec![Output::Sync(token, SyncResult::error(code))];
        if self.state == GroupState::Dead {
            return reply(error_codes::COORDINATOR_NOT_AVAILABLE);
        }
        if let Err(code) =
            self.validate_member(&request.member_id, request.group_instance_id.as_deref())
        {
            return reply(code);
        }
        if request.generation_id != self.generation_id {
            return reply(error_codes::ILLEGAL_GENERATION);
        }
        if inconsistent(
            request.protocol_type.as_deref(),
            self.protocol_type.as_deref(),
        ) || inconsistent(
            request.protocol_name.as_deref(),
            self.protocol_name.as_deref(),
        ) {
            return reply(error_codes::INCONSISTENT_GROUP_PROTOCOL);
        }
        match self.state {
            GroupState::PreparingRebalance => return reply(error_codes::REBALANCE_IN_PROGRESS),
            GroupState::CompletingRebalance => {
                if let Some(member) = self.members.get_mut(&request.member_id) {
                    if let Some(previous) = member.awaiting_sync.replace(token) {
                        out.push(Output::Sync(
                            previous,
                            SyncResult::error(error_codes::UNKNOWN_MEMBER_ID),
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
                    self.propagate_assignment(error_codes::NONE, now, &mut out);
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
                        error_code: error_codes::NONE,
                        protocol_type: self.protocol_type.clone(),
                        protocol_name: self.protocol_name.clone(),
                        assignment,
                    },
                ));
            }
            // validate_member fails for an empty group; Dead answered above.
            GroupState::Empty | GroupState::Dead => return reply(error_codes::UNKNOWN_MEMBER_ID),
        }
        out
    }

    /// A Heartbeat; returns the error code.
    pub fn heartbeat(
        &mut self,
        now: i64,
        member_id: &str,
        group_instance_id: Option<&str>,
        generation_id: i32,
    ) -> i16 {
        if self.state == GroupState::Dead {
            return error_codes::COORDINATOR_NOT_AVAILABLE;
        }
        if let Err(code) = self.validate_member(member_id, group_instance_id) {
            return code;
        }
        if generation_id != self.generation_id {
            return error_codes::ILLEGAL_GENERATION;
        }
        let code = match self.state {
            GroupState::Empty | GroupState::Dead => return error_codes::UNKNOWN_MEMBER_ID,
            GroupState::PreparingRebalance => error_codes::REBALANCE_IN_PROGRESS,
            GroupState::CompletingRebalance | GroupState::Stable => error_codes::NONE,
        };
        if let Some(member) = self.members.get_mut(member_id) {
            member.heartbeat_deadline_ms = Some(now + i64::from(member.session_timeout_ms));
        }
        code
    }

    /// A LeaveGroup for one or more members; one error code per member.
    pub fn leave(&mut self, now: i64, leaving: &[LeavingMember]) -> (Vec<i16>, Vec<Output>) {
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
                        self.remove(&member_id, error_codes::UNKNOWN_MEMBER_ID, &mut out);
                        removed_any = true;
                        error_codes::NONE
                    }
                    None => error_codes::UNKNOWN_MEMBER_ID,
                }
            } else if self.pending_members.remove(&member.member_id).is_some() {
                error_codes::NONE
            } else {
                match self.validate_member(&member.member_id, member.group_instance_id.as_deref()) {
                    Ok(()) => {
                        self.remove(&member.member_id, error_codes::UNKNOWN_MEMBER_ID, &mut out);
                        removed_any = true;
                        error_codes::NONE
                    }
                    Err(code) => code,
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
                self.remove(&member_id, error_codes::UNKNOWN_MEMBER_ID, &mut out);
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
                    self.remove(&member_id, error_codes::UNKNOWN_MEMBER_ID, &mut out);
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
    ) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(error_codes::COORDINATOR_NOT_AVAILABLE);
        }
        if generation_id < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        if generation_id >= 0 || !member_id.is_empty() || group_instance_id.is_some() {
            self.validate_member(member_id, group_instance_id)?;
            if generation_id != self.generation_id {
                return Err(error_codes::ILLEGAL_GENERATION);
            }
        } else if self.state != GroupState::Empty {
            return Err(error_codes::UNKNOWN_MEMBER_ID);
        }
        if self.state == GroupState::CompletingRebalance {
            return Err(error_codes::REBALANCE_IN_PROGRESS);
        }
        Ok(())
    }

    /// DeleteGroups: Ok if the group may go (it becomes Dead).
    pub fn delete(&mut self, now: i64) -> Result<(), i16> {
        match self.state {
            GroupState::Dead => Err(error_codes::GROUP_ID_NOT_FOUND),
            GroupState::Empty => {
                self.transition(GroupState::Dead, now);
                Ok(())
            }
            _ => Err(error_codes::NON_EMPTY_GROUP),
        }
    }

    /// OffsetDelete's group check (Kafka's `validateOffsetDelete`).
    pub fn validate_offset_delete(&self) -> Result<(), i16> {
        match self.state {
            GroupState::Dead => Err(error_codes::GROUP_ID_NOT_FOUND),
            GroupState::Empty => Ok(()),
            _ if self.protocol_type.as_deref() == Some("consumer") => Ok(()),
            _ => Err(error_codes::NON_EMPTY_GROUP),
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

    /// Answers every parked request with `code` (broker shutdown).
    pub fn abort_parked(&mut self, code: i16) -> Vec<Output> {
        let mut out = Vec::new();
        for member in self.members.values_mut() {
            if let Some(token) = member.awaiting_join.take() {
                out.push(Output::Join(
                    token,
                    JoinResult::error(&member.member_id, code),
                ));
            }
            if let Some(token) = member.awaiting_sync.take() {
                out.push(Output::Sync(token, SyncResult::error(code)));
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
