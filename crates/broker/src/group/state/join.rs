//! JoinGroup: new members (KIP-394 member ids), rejoining members, and
//! static members replacing their previous incarnation (KIP-345).

use bytes::Bytes;

use super::{
    Group, GroupState, JoinRequest, JoinResult, JoinedMember, Member, Output, SyncResult, Token,
};
use crate::errors::KafkaError;

impl Group {
    /// A JoinGroup.
    pub fn join(&mut self, now: i64, token: Token, request: JoinRequest) -> Vec<Output> {
        let mut out = Vec::new();
        let reply = |error: KafkaError| {
            vec![Output::Join(
                token,
                JoinResult::error(&request.member_id, error),
            )]
        };
        if request.session_timeout_ms < self.config.session_timeout_min_ms
            || request.session_timeout_ms > self.config.session_timeout_max_ms
        {
            return reply(KafkaError::InvalidSessionTimeout);
        }
        if self.state == GroupState::Dead {
            return reply(KafkaError::CoordinatorNotAvailable);
        }
        if !self.accept_joining_member(&request.member_id) {
            return reply(KafkaError::GroupMaxSizeReached);
        }
        if !self.supports_protocols(&request.protocol_type, &request.protocols) {
            return reply(KafkaError::InconsistentGroupProtocol);
        }
        if request.member_id.is_empty() {
            let member_id = request.generated_member_id.clone();
            match request.group_instance_id.clone() {
                Some(instance) if self.static_members.contains_key(&instance) => {
                    self.replace_static_member(now, token, request, &instance, &mut out);
                }
                Some(_) => self.add_member(now, token, request, member_id, &mut out),
                None if request.require_known_member_id => {
                    let deadline = now + i64::from(request.session_timeout_ms);
                    self.pending_members.insert(member_id.clone(), deadline);
                    out.push(Output::Join(
                        token,
                        JoinResult::error(&member_id, KafkaError::MemberIdRequired),
                    ));
                }
                None => self.add_member(now, token, request, member_id, &mut out),
            }
            return out;
        }
        if self.pending_members.contains_key(&request.member_id) {
            let member_id = request.member_id.clone();
            self.add_member(now, token, request, member_id, &mut out);
            return out;
        }
        if let Err(code) =
            self.validate_member(&request.member_id, request.group_instance_id.as_deref())
        {
            return reply(code);
        }
        let member_id = request.member_id.clone();
        let unchanged = self.members[&member_id].same_protocols(&request.protocols);
        let is_leader = self.leader_id.as_deref() == Some(member_id.as_str());
        match self.state {
            GroupState::PreparingRebalance => self.update_member(now, token, request, &mut out),
            GroupState::CompletingRebalance | GroupState::Stable
                if unchanged && !(self.state == GroupState::Stable && is_leader) =>
            {
                // A follower (or, while completing, anyone) that lost its
                // JoinGroup response: the current generation again.
                out.push(Output::Join(
                    token,
                    self.join_response(
                        &member_id,
                        is_leader && self.state != GroupState::Stable,
                        false,
                    ),
                ));
            }
            _ => self.update_member(now, token, request, &mut out),
        }
        out
    }

    pub(super) fn join_response(
        &self,
        member_id: &str,
        with_members: bool,
        skip_assignment: bool,
    ) -> JoinResult {
        let protocol = self.protocol_name.clone().unwrap_or_default();
        JoinResult {
            error: None,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: self.leader_id.clone().unwrap_or_default(),
            skip_assignment,
            member_id: member_id.to_string(),
            members: if with_members {
                self.members
                    .values()
                    .map(|m| JoinedMember {
                        member_id: m.member_id.clone(),
                        group_instance_id: m.group_instance_id.clone(),
                        metadata: m.metadata(&protocol),
                    })
                    .collect()
            } else {
                Vec::new()
            },
        }
    }

    fn add_member(
        &mut self,
        now: i64,
        token: Token,
        request: JoinRequest,
        member_id: String,
        out: &mut Vec<Output>,
    ) {
        let member = Member {
            member_id: member_id.clone(),
            group_instance_id: request.group_instance_id.clone(),
            client_id: request.client_id,
            client_host: request.client_host,
            session_timeout_ms: request.session_timeout_ms,
            rebalance_timeout_ms: request.rebalance_timeout_ms,
            protocol_type: request.protocol_type.clone(),
            protocols: request.protocols,
            assignment: Bytes::new(),
            awaiting_join: Some(token),
            awaiting_sync: None,
            is_new: true,
            heartbeat_deadline_ms: Some(now + self.config.new_member_join_timeout_ms),
        };
        if self.state == GroupState::PreparingRebalance && self.previous_state == GroupState::Empty
        {
            self.new_member_added = true;
        }
        if self.members.is_empty() {
            self.protocol_type = Some(request.protocol_type);
        }
        if self.leader_id.is_none() {
            self.leader_id = Some(member_id.clone());
        }
        if let Some(instance) = &member.group_instance_id {
            self.static_members
                .insert(instance.clone(), member_id.clone());
        }
        self.pending_members.remove(&member_id);
        self.members.insert(member_id, member);
        self.maybe_prepare_rebalance_or_complete_join(now, out);
    }

    fn update_member(
        &mut self,
        now: i64,
        token: Token,
        request: JoinRequest,
        out: &mut Vec<Output>,
    ) {
        if let Some(member) = self.members.get_mut(&request.member_id) {
            if let Some(previous) = member.awaiting_join.replace(token) {
                // A duplicate JoinGroup: the older one is answered as Kafka
                // would answer a retried request.
                out.push(Output::Join(
                    previous,
                    JoinResult::error(&request.member_id, KafkaError::UnknownMemberId),
                ));
            }
            member.protocols = request.protocols;
            member.session_timeout_ms = request.session_timeout_ms;
            member.rebalance_timeout_ms = request.rebalance_timeout_ms;
            member.client_id = request.client_id;
            member.client_host = request.client_host;
        }
        self.maybe_prepare_rebalance_or_complete_join(now, out);
    }

    /// KIP-345: a known instance id joins with no member id: the member gets
    /// a new id and the old id is fenced.
    fn replace_static_member(
        &mut self,
        now: i64,
        token: Token,
        request: JoinRequest,
        instance: &str,
        out: &mut Vec<Output>,
    ) {
        let Some(old_id) = self.static_members.get(instance).cloned() else {
            return;
        };
        let Some(mut member) = self.members.remove(&old_id) else {
            return;
        };
        let new_id = request.generated_member_id.clone();
        if let Some(previous) = member.awaiting_join.take() {
            out.push(Output::Join(
                previous,
                JoinResult::error(&old_id, KafkaError::FencedInstanceId),
            ));
        }
        if let Some(previous) = member.awaiting_sync.take() {
            out.push(Output::Sync(
                previous,
                SyncResult::error(KafkaError::FencedInstanceId),
            ));
        }
        member.member_id = new_id.clone();
        member.protocols = request.protocols;
        member.session_timeout_ms = request.session_timeout_ms;
        member.rebalance_timeout_ms = request.rebalance_timeout_ms;
        member.client_id = request.client_id;
        member.client_host = request.client_host;
        member.heartbeat_deadline_ms = Some(now + i64::from(member.session_timeout_ms));
        self.static_members
            .insert(instance.to_string(), new_id.clone());
        if self.leader_id.as_deref() == Some(old_id.as_str()) {
            self.leader_id = Some(new_id.clone());
        }
        if self.pending_sync.remove(&old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        self.members.insert(new_id.clone(), member);
        match self.state {
            GroupState::Stable if self.select_protocol() == self.protocol_name => {
                let is_leader = self.leader_id.as_deref() == Some(new_id.as_str());
                out.push(Output::StoreGroup);
                out.push(Output::Join(
                    token,
                    self.join_response(
                        &new_id,
                        is_leader,
                        is_leader && request.supports_skip_assignment,
                    ),
                ));
            }
            _ => {
                if let Some(member) = self.members.get_mut(&new_id) {
                    member.awaiting_join = Some(token);
                }
                if self.state == GroupState::PreparingRebalance {
                    self.maybe_complete_join_phase(now, out);
                } else {
                    self.prepare_rebalance(now, out);
                }
            }
        }
    }
}
