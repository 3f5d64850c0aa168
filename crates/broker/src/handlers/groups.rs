//! The group APIs: JoinGroup (11), Heartbeat (12),
//! LeaveGroup (13), SyncGroup (14), DescribeGroups (15), ListGroups (16),
//! DeleteGroups (42). The protocol lives in `crate::group`; this file turns
//! requests into its events and its results into responses, setting only the
//! fields the requested version has.

use std::sync::Arc;

use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, RequestHeader,
    SyncGroupRequest, SyncGroupResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::{str_bytes, AUTHORIZED_OPERATIONS_OMITTED};
use crate::error_codes;
use crate::errors::{code_of, code_or_none, KafkaError};
use crate::group::state::{JoinRequest, LeavingMember, SyncRequest};
use crate::group::GroupCoordinator;

/// Every group operation (no ACLs yet): READ 3, DELETE 6, DESCRIBE 8.
const GROUP_OPERATIONS_ALL: i32 = (1 << 3) | (1 << 6) | (1 << 8);

fn group_id(id: GroupId) -> String {
    id.0.as_str().to_string()
}

fn optional(text: &Option<StrBytes>) -> Option<String> {
    text.as_ref().map(|s| s.as_str().to_string())
}

/// A group request may go to the coordinator: a group id, and a coordinator
/// that serves it now.
fn check_group(groups: &Arc<GroupCoordinator>, group: &str) -> Result<(), KafkaError> {
    if group.is_empty() {
        return Err(KafkaError::InvalidGroupId);
    }
    groups.check_ready(group)
}

/// The state machine answers with nulls where old versions have
/// non-nullable strings: Kafka writes "" there.
fn join_response(version: i16, result: crate::group::state::JoinResult) -> JoinGroupResponse {
    let mut response = JoinGroupResponse::default()
        .with_error_code(code_or_none(result.error))
        .with_generation_id(result.generation_id)
        .with_leader(str_bytes(&result.leader))
        .with_member_id(str_bytes(&result.member_id));
    let protocol_name = result.protocol_name.as_deref().map(str_bytes);
    response.protocol_name = if version >= 7 {
        protocol_name
    } else {
        Some(protocol_name.unwrap_or_default())
    };
    if version >= 7 {
        response.protocol_type = result.protocol_type.as_deref().map(str_bytes);
    }
    if version >= 9 {
        response.skip_assignment = result.skip_assignment;
    }
    response.members = result
        .members
        .into_iter()
        .map(|m| {
            let mut member = JoinGroupResponseMember::default()
                .with_member_id(str_bytes(&m.member_id))
                .with_metadata(m.metadata);
            if version >= 5 {
                member.group_instance_id = m.group_instance_id.as_deref().map(str_bytes);
            }
            member
        })
        .collect();
    response
}

pub async fn join(
    groups: &Arc<GroupCoordinator>,
    header: &RequestHeader,
    client_host: &str,
    request: JoinGroupRequest,
) -> JoinGroupResponse {
    let version = header.request_api_version;
    let group = group_id(request.group_id);
    let member_id = request.member_id.as_str().to_string();
    if let Err(error) = check_group(groups, &group) {
        let result = crate::group::state::JoinResult::error(&member_id, error);
        return join_response(version, result);
    }
    let client_id = header
        .client_id
        .as_ref()
        .map(|s| s.as_str().to_string())
        .unwrap_or_default();
    let instance = optional(&request.group_instance_id).filter(|_| version >= 5);
    let prefix = instance.clone().unwrap_or_else(|| client_id.clone());
    let join = JoinRequest {
        member_id: member_id.clone(),
        group_instance_id: instance,
        client_id,
        client_host: client_host.to_string(),
        session_timeout_ms: request.session_timeout_ms,
        rebalance_timeout_ms: if version >= 1 {
            request.rebalance_timeout_ms
        } else {
            request.session_timeout_ms
        },
        protocol_type: request.protocol_type.as_str().to_string(),
        protocols: request
            .protocols
            .into_iter()
            .map(|p| (p.name.as_str().to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
        supports_skip_assignment: version >= 9,
        generated_member_id: format!("{prefix}-{}", uuid::Uuid::new_v4()),
    };
    let result = groups.join(&group, join).await;
    if result.error.is_none() {
        tracing::debug!(group = %group, member = %result.member_id, generation = result.generation_id, "joined");
    }
    join_response(version, result)
}

pub async fn sync(
    groups: &Arc<GroupCoordinator>,
    header: &RequestHeader,
    request: SyncGroupRequest,
) -> SyncGroupResponse {
    let version = header.request_api_version;
    let group = group_id(request.group_id);
    if let Err(error) = check_group(groups, &group) {
        return SyncGroupResponse::default().with_error_code(error.code());
    }
    let sync = SyncRequest {
        member_id: request.member_id.as_str().to_string(),
        group_instance_id: optional(&request.group_instance_id).filter(|_| version >= 3),
        generation_id: request.generation_id,
        protocol_type: optional(&request.protocol_type).filter(|_| version >= 5),
        protocol_name: optional(&request.protocol_name).filter(|_| version >= 5),
        assignments: request
            .assignments
            .into_iter()
            .map(|a| (a.member_id.as_str().to_string(), a.assignment))
            .collect(),
    };
    let result = groups.sync(&group, sync).await;
    let mut response = SyncGroupResponse::default()
        .with_error_code(code_or_none(result.error))
        .with_assignment(result.assignment);
    if version >= 5 {
        response.protocol_type = result.protocol_type.as_deref().map(str_bytes);
        response.protocol_name = result.protocol_name.as_deref().map(str_bytes);
    }
    response
}

pub async fn heartbeat(
    groups: &Arc<GroupCoordinator>,
    header: &RequestHeader,
    request: HeartbeatRequest,
) -> HeartbeatResponse {
    let version = header.request_api_version;
    let group = group_id(request.group_id);
    let result = check_group(groups, &group).and_then(|()| {
        groups.heartbeat(
            &group,
            request.member_id.as_str(),
            request
                .group_instance_id
                .as_ref()
                .filter(|_| version >= 3)
                .map(|s| s.as_str()),
            request.generation_id,
        )
    });
    HeartbeatResponse::default().with_error_code(code_of(&result))
}

pub async fn leave(
    groups: &Arc<GroupCoordinator>,
    header: &RequestHeader,
    request: LeaveGroupRequest,
) -> LeaveGroupResponse {
    let version = header.request_api_version;
    let group = group_id(request.group_id);
    let members: Vec<LeavingMember> = if version >= 3 {
        request
            .members
            .iter()
            .map(|m| LeavingMember {
                member_id: m.member_id.as_str().to_string(),
                group_instance_id: optional(&m.group_instance_id),
            })
            .collect()
    } else {
        vec![LeavingMember {
            member_id: request.member_id.as_str().to_string(),
            group_instance_id: None,
        }]
    };
    if let Err(error) = check_group(groups, &group) {
        return LeaveGroupResponse::default().with_error_code(error.code());
    }
    let results = groups.leave(&group, &members);
    if version < 3 {
        let first = results.first().copied().unwrap_or(Ok(()));
        return LeaveGroupResponse::default().with_error_code(code_of(&first));
    }
    LeaveGroupResponse::default().with_members(
        members
            .into_iter()
            .zip(results)
            .map(|(m, result)| {
                MemberResponse::default()
                    .with_member_id(str_bytes(&m.member_id))
                    .with_group_instance_id(m.group_instance_id.as_deref().map(str_bytes))
                    .with_error_code(code_of(&result))
            })
            .collect(),
    )
}

pub async fn list(
    groups: &Arc<GroupCoordinator>,
    header: &RequestHeader,
    request: ListGroupsRequest,
) -> ListGroupsResponse {
    let version = header.request_api_version;
    if !groups.is_loaded() {
        return ListGroupsResponse::default()
            .with_error_code(error_codes::COORDINATOR_LOAD_IN_PROGRESS);
    }
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.as_str().to_lowercase())
        .collect();
    let types: Vec<String> = request
        .types_filter
        .iter()
        .map(|s| s.as_str().to_lowercase())
        .collect();
    let groups = groups
        .list()
        .into_iter()
        .filter(|g| {
            version < 4 || states.is_empty() || states.contains(&g.state.name().to_lowercase())
        })
        .filter(|_| version < 5 || types.is_empty() || types.iter().any(|t| t == "classic"))
        .map(|g| {
            let mut listed = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(&g.group_id)))
                .with_protocol_type(str_bytes(&g.protocol_type));
            if version >= 4 {
                listed.group_state = str_bytes(g.state.name());
            }
            if version >= 5 {
                listed.group_type = str_bytes("classic");
            }
            listed
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

pub async fn describe(
    groups: &Arc<GroupCoordinator>,
    header: &RequestHeader,
    request: DescribeGroupsRequest,
) -> DescribeGroupsResponse {
    let version = header.request_api_version;
    let operations = if version >= 3 && request.include_authorized_operations {
        GROUP_OPERATIONS_ALL
    } else {
        AUTHORIZED_OPERATIONS_OMITTED
    };
    let groups = request
        .groups
        .into_iter()
        .map(|id| {
            let name = group_id(id.clone());
            let mut described = DescribedGroup::default()
                .with_group_id(id)
                .with_authorized_operations(if version >= 3 {
                    operations
                } else {
                    AUTHORIZED_OPERATIONS_OMITTED
                });
            if let Err(error) = groups.check_ready(&name) {
                described.error_code = error.code();
                return described;
            }
            match groups.describe(&name) {
                None => {
                    described.group_state = str_bytes("Dead");
                    if version >= 6 {
                        described.error_code = error_codes::GROUP_ID_NOT_FOUND;
                        described.error_message =
                            Some(str_bytes(&format!("Group {name} not found.")));
                    }
                }
                Some(group) => {
                    described.group_state = str_bytes(group.state.name());
                    described.protocol_type = str_bytes(&group.protocol_type);
                    described.protocol_data = str_bytes(&group.protocol_data);
                    described.members = group
                        .members
                        .into_iter()
                        .map(|m| {
                            let mut member = DescribedGroupMember::default()
                                .with_member_id(str_bytes(&m.member_id))
                                .with_client_id(str_bytes(&m.client_id))
                                .with_client_host(str_bytes(&m.client_host))
                                .with_member_metadata(m.metadata)
                                .with_member_assignment(m.assignment);
                            if version >= 4 {
                                member.group_instance_id =
                                    m.group_instance_id.as_deref().map(str_bytes);
                            }
                            member
                        })
                        .collect();
                }
            }
            described
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

pub async fn delete(
    groups: &Arc<GroupCoordinator>,
    _header: &RequestHeader,
    request: DeleteGroupsRequest,
) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for id in request.groups_names {
        let name = group_id(id.clone());
        let result = match check_group(groups, &name) {
            Ok(()) => groups.delete(&name).await,
            Err(error) => Err(error),
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(id)
                .with_error_code(code_of(&result)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
