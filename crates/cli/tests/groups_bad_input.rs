//! Malformed group requests on a raw socket get Kafka's error codes, and the
//! group is unharmed: a raw member still joins, syncs, heartbeats and
//! leaves, and a real consumer then resumes from the committed offset.

mod common;
#[path = "common/group.rs"]
mod group;

use std::time::Duration;

use bytes::{BufMut as _, Bytes, BytesMut};
use common::raw::RawConnection;
use common::{create_topic, start_in_process, topic_name};
use group::{close_within, group_consumer, poll_count, produce_to_partitions, summary};
use group::{GROUP_BROKER_SETTINGS, REBALANCE_TIMEOUT};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ConsumerProtocolSubscription, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, OffsetCommitRequest,
    OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable as _, StrBytes};

/// Kafka error codes these tests expect.
const NONE: i16 = 0;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const ILLEGAL_GENERATION: i16 = 22;
const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
const INVALID_GROUP_ID: i16 = 24;
const MEMBER_ID_REQUIRED: i16 = 79;

/// Versions sent: what current Java clients send for the classic protocol.
const JOIN_GROUP_VERSION: i16 = 5;
const SYNC_GROUP_VERSION: i16 = 3;
const HEARTBEAT_VERSION: i16 = 3;
const LEAVE_GROUP_VERSION: i16 = 3;
const OFFSET_COMMIT_VERSION: i16 = 8;
const OFFSET_FETCH_VERSION: i16 = 7;

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

/// A consumer subscription to `topic` (version 0, with its i16 version prefix).
fn subscription(topic: &str) -> Bytes {
    let mut buffer = BytesMut::new();
    buffer.put_i16(0);
    ConsumerProtocolSubscription::default()
        .with_topics(vec![text(topic)])
        .encode(&mut buffer, 0)
        .expect("encode subscription");
    buffer.freeze()
}

fn join_request(
    group: &str,
    member_id: &str,
    protocols: Vec<JoinGroupRequestProtocol>,
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(10_000)
        .with_member_id(text(member_id))
        .with_protocol_type(text("consumer"))
        .with_protocols(protocols)
}

fn range_protocol(topic: &str) -> Vec<JoinGroupRequestProtocol> {
    vec![JoinGroupRequestProtocol::default()
        .with_name(text("range"))
        .with_metadata(subscription(topic))]
}

fn offset_commit(group: &str, topic: &str, partition: i32, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(text(group)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(text(""))
        .with_retention_time_ms(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(text(topic)))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(partition)
                .with_committed_offset(offset)
                .with_committed_leader_epoch(-1)
                .with_committed_metadata(Some(text("bad-input test")))])])
}

/// The single partition error code of an OffsetCommit response.
fn commit_code(response: &OffsetCommitResponse) -> i16 {
    assert_eq!(response.topics.len(), 1, "one topic: {response:?}");
    assert_eq!(
        response.topics[0].partitions.len(),
        1,
        "one partition: {response:?}"
    );
    response.topics[0].partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_group_requests_get_kafka_error_codes_and_harm_nothing() {
    let broker = start_in_process(GROUP_BROKER_SETTINGS);
    let bootstrap = broker.bootstrap();
    let topic = topic_name("bad-group");
    let group = topic_name("bad-group-id");
    create_topic(bootstrap, &topic, 1).await;
    produce_to_partitions(bootstrap, &topic, 1, 10).await;
    let mut connection = RawConnection::connect(bootstrap);
    let mut correlation = 0;
    let mut next = || {
        correlation += 1;
        correlation
    };

    eprintln!("phase: JoinGroup with an empty protocol list");
    let response: JoinGroupResponse = connection.request(
        JOIN_GROUP_VERSION,
        next(),
        &join_request(&group, "", vec![]),
    );
    assert_eq!(
        response.error_code, INCONSISTENT_GROUP_PROTOCOL,
        "{response:?}"
    );

    eprintln!("phase: JoinGroup with an empty group id");
    let response: JoinGroupResponse = connection.request(
        JOIN_GROUP_VERSION,
        next(),
        &join_request("", "", range_protocol(&topic)),
    );
    assert_eq!(response.error_code, INVALID_GROUP_ID, "{response:?}");

    eprintln!("phase: a raw member joins (KIP-394: first MEMBER_ID_REQUIRED)");
    let response: JoinGroupResponse = connection.request(
        JOIN_GROUP_VERSION,
        next(),
        &join_request(&group, "", range_protocol(&topic)),
    );
    assert_eq!(response.error_code, MEMBER_ID_REQUIRED, "{response:?}");
    let member_id = response.member_id.to_string();
    assert!(
        !member_id.is_empty(),
        "MEMBER_ID_REQUIRED carries the new member id"
    );
    let response: JoinGroupResponse = connection.request(
        JOIN_GROUP_VERSION,
        next(),
        &join_request(&group, &member_id, range_protocol(&topic)),
    );
    assert_eq!(response.error_code, NONE, "{response:?}");
    assert_eq!(response.member_id.as_str(), member_id);
    assert_eq!(response.leader.as_str(), member_id, "the only member leads");
    assert_eq!(response.protocol_name.as_deref(), Some("range"));
    assert_eq!(response.members.len(), 1, "the leader gets every member");
    let generation = response.generation_id;

    eprintln!("phase: SyncGroup with a wrong generation");
    let assignment = Bytes::from_static(b"\x00\x00assignment-bytes");
    let sync = |generation: i32| {
        SyncGroupRequest::default()
            .with_group_id(GroupId(text(&group)))
            .with_generation_id(generation)
            .with_member_id(text(&member_id))
            .with_assignments(vec![SyncGroupRequestAssignment::default()
                .with_member_id(text(&member_id))
                .with_assignment(assignment.clone())])
    };
    let response: SyncGroupResponse =
        connection.request(SYNC_GROUP_VERSION, next(), &sync(generation + 1));
    assert_eq!(response.error_code, ILLEGAL_GENERATION, "{response:?}");

    eprintln!("phase: the right SyncGroup, a Heartbeat and LeaveGroup still work");
    let response: SyncGroupResponse =
        connection.request(SYNC_GROUP_VERSION, next(), &sync(generation));
    assert_eq!(response.error_code, NONE, "{response:?}");
    assert_eq!(
        response.assignment, assignment,
        "the leader's bytes, unchanged"
    );
    let heartbeat = HeartbeatRequest::default()
        .with_group_id(GroupId(text(&group)))
        .with_generation_id(generation)
        .with_member_id(text(&member_id));
    let response: HeartbeatResponse = connection.request(HEARTBEAT_VERSION, next(), &heartbeat);
    assert_eq!(response.error_code, NONE, "{response:?}");
    let leave = LeaveGroupRequest::default()
        .with_group_id(GroupId(text(&group)))
        .with_members(vec![
            MemberIdentity::default().with_member_id(text(&member_id))
        ]);
    let response: LeaveGroupResponse = connection.request(LEAVE_GROUP_VERSION, next(), &leave);
    assert_eq!(response.error_code, NONE, "{response:?}");
    assert_eq!(
        response.members.first().map(|m| m.error_code),
        Some(NONE),
        "{response:?}"
    );

    eprintln!("phase: OffsetCommit for a partition and a topic that do not exist");
    let response: OffsetCommitResponse = connection.request(
        OFFSET_COMMIT_VERSION,
        next(),
        &offset_commit(&group, &topic, 99, 1),
    );
    assert_eq!(
        commit_code(&response),
        UNKNOWN_TOPIC_OR_PARTITION,
        "{response:?}"
    );
    let missing = topic_name("no-such-topic");
    let response: OffsetCommitResponse = connection.request(
        OFFSET_COMMIT_VERSION,
        next(),
        &offset_commit(&group, &missing, 0, 1),
    );
    assert_eq!(
        commit_code(&response),
        UNKNOWN_TOPIC_OR_PARTITION,
        "{response:?}"
    );

    eprintln!("phase: a valid admin commit (generation -1) on the now empty group");
    let response: OffsetCommitResponse = connection.request(
        OFFSET_COMMIT_VERSION,
        next(),
        &offset_commit(&group, &topic, 0, 3),
    );
    assert_eq!(commit_code(&response), NONE, "{response:?}");
    let fetch = OffsetFetchRequest::default()
        .with_group_id(GroupId(text(&group)))
        .with_topics(Some(vec![OffsetFetchRequestTopic::default()
            .with_name(TopicName(text(&topic)))
            .with_partition_indexes(vec![0, 99])]));
    let response: OffsetFetchResponse = connection.request(OFFSET_FETCH_VERSION, next(), &fetch);
    assert_eq!(response.error_code, NONE, "{response:?}");
    let partitions = &response.topics[0].partitions;
    let committed: Vec<(i32, i64, Option<&str>)> = partitions
        .iter()
        .map(|p| (p.partition_index, p.committed_offset, p.metadata.as_deref()))
        .collect();
    assert!(
        committed.contains(&(0, 3, Some("bad-input test"))),
        "committed offset and metadata of partition 0: {committed:?}"
    );
    assert!(
        partitions
            .iter()
            .any(|p| p.partition_index == 99 && p.committed_offset == -1),
        "a partition without a commit answers -1: {committed:?}"
    );

    eprintln!("phase: a real consumer in the group resumes at offset 3");
    let (consumer, _) = group_consumer(bootstrap, &group, &topic, &[]);
    let received = poll_count(&[&consumer], 7, REBALANCE_TIMEOUT).remove(0);
    let offsets: Vec<i64> = summary(&received).iter().map(|(_, o, _)| *o).collect();
    assert_eq!(
        offsets,
        (3..10).collect::<Vec<i64>>(),
        "records after the commit"
    );
    close_within(consumer, Duration::from_secs(30));
}
