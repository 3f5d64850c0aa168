//! Group requests at the group coordinator (see [`crate::coordinator`]):
//! DescribeGroups and OffsetFetch, and the error codes the group commands
//! treat specially.

use std::collections::BTreeMap;

use anyhow::bail;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::{DescribeGroupsRequest, GroupId, OffsetFetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::client::ConnectionArgs;
use crate::coordinator::KEY_TYPE_GROUP;
pub(super) use crate::coordinator::{check, retrying, Session};

/// Kafka error codes this module treats specially.
pub(super) mod code {
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
}

/// FindCoordinator for `group`, then a connection to that broker.
pub(super) async fn group_coordinator(
    connection: &ConnectionArgs,
    group: &str,
) -> anyhow::Result<Session> {
    Session::coordinator(connection, KEY_TYPE_GROUP, group).await
}

/// The `GroupId` of `group`.
pub(super) fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_string()))
}

/// A group that DescribeGroups does not know: state Dead without members
/// (before v6) or GROUP_ID_NOT_FOUND (v6).
pub(super) fn is_missing(described: &DescribedGroup) -> bool {
    described.error_code == code::GROUP_ID_NOT_FOUND
        || (described.group_state.as_str() == "Dead" && described.members.is_empty())
}

pub(super) async fn describe_group(
    session: &mut Session,
    group: &str,
) -> anyhow::Result<DescribedGroup> {
    let version = session.version::<DescribeGroupsRequest>(6)?;
    let request = DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
    let response = session.send(version, &request).await?;
    let Some(described) = response.groups.into_iter().next() else {
        bail!("describing group {group}: the broker returned no group");
    };
    if described.error_code != code::GROUP_ID_NOT_FOUND {
        check(described.error_code, || format!("describing group {group}"))?;
    }
    Ok(described)
}

/// OffsetFetch: the committed offsets of `group`, for `topics` (all topics
/// when `None`).
pub(super) async fn committed_offsets(
    session: &mut Session,
    group: &str,
    topics: Option<&[(String, Vec<i32>)]>,
) -> anyhow::Result<BTreeMap<(String, i32), i64>> {
    // v8 replaced the single group with a list; v7 is enough for one group.
    let version = session.version::<OffsetFetchRequest>(7)?;
    let request = OffsetFetchRequest::default()
        .with_group_id(group_id(group))
        .with_topics(topics.map(|topics| {
            topics
                .iter()
                .map(|(name, partitions)| {
                    OffsetFetchRequestTopic::default()
                        .with_name(TopicName(StrBytes::from_string(name.clone())))
                        .with_partition_indexes(partitions.clone())
                })
                .collect()
        }));
    let response = session.send(version, &request).await?;
    let what = || format!("fetching the committed offsets of group {group}");
    check(response.error_code, what)?;
    let mut committed = BTreeMap::new();
    for topic in &response.topics {
        for partition in &topic.partitions {
            let name = topic.name.0.to_string();
            if partition.error_code != 0 {
                let index = partition.partition_index;
                check(partition.error_code, || {
                    format!("{}: partition {name}/{index}", what())
                })?;
            }
            if partition.committed_offset >= 0 {
                committed.insert(
                    (name, partition.partition_index),
                    partition.committed_offset,
                );
            }
        }
    }
    Ok(committed)
}
