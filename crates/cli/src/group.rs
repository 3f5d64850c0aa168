//! `sluice group list | describe | reset-offsets | delete`.
//!
//! Group requests go on the wire with the `kafka-protocol` crate to the
//! group's coordinator (found with FindCoordinator): librdkafka exposes
//! neither the members' assignments of DescribeGroups nor the Kafka error
//! codes the messages below are made of. Metadata, watermarks and offsets
//! for a timestamp come from librdkafka.

mod coordinator;
mod reset;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use bytes::Buf as _;
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, DeleteGroupsRequest, ListGroupsRequest,
};
use kafka_protocol::protocol::{Decodable as _, StrBytes};
use rdkafka::consumer::Consumer as _;

use self::coordinator::{
    check, code, committed_offsets, describe_group, group_coordinator, group_id, is_missing,
    retrying, Session,
};
use crate::client::{blocking, fetch_metadata, ConnectionArgs, REQUEST_TIMEOUT};
use crate::table;

#[derive(Debug, Args)]
pub struct GroupArgs {
    /// Which brokers to talk to.
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
    /// The group operation.
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(Debug, Subcommand)]
enum GroupCommand {
    /// List the groups with their state and protocol type.
    List {
        /// Only groups in this state (Empty, Stable, …), repeatable.
        #[arg(long = "state", value_name = "STATE")]
        states: Vec<String>,
    },
    /// Show a group's state, members, assignments, committed offsets and lag.
    Describe {
        /// Group id.
        group: String,
    },
    /// Set a group's committed offsets (a dry run unless --execute).
    ResetOffsets(ResetArgs),
    /// Delete a group and its committed offsets (it must have no members).
    Delete {
        /// Group id.
        group: String,
    },
}

#[derive(Debug, Args)]
struct ResetArgs {
    /// Group id.
    group: String,
    /// Topic whose offsets to reset: TOPIC, or TOPIC:P,P… for some partitions.
    #[arg(long, value_name = "TOPIC[:PARTITIONS]")]
    topic: String,
    /// Where to move the offsets.
    #[command(flatten)]
    target: ResetTarget,
    /// Commit the new offsets (without it, only print the plan).
    #[arg(long)]
    execute: bool,
}

/// Exactly one of these says where `reset-offsets` moves each partition.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
struct ResetTarget {
    /// The log start offset (the earliest record still kept).
    #[arg(long)]
    to_earliest: bool,
    /// The high watermark (skip everything produced so far).
    #[arg(long)]
    to_latest: bool,
    /// This offset (clamped to the partition's offset range).
    #[arg(long, value_name = "N")]
    to_offset: Option<i64>,
    /// The first record at or after this time (RFC 3339, e.g. 2025-01-31T12:00:00Z).
    #[arg(long, value_name = "DATETIME")]
    to_datetime: Option<String>,
    /// The committed offset plus N (N may be negative).
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
}

pub async fn run(args: GroupArgs) -> anyhow::Result<()> {
    let connection = &args.connection;
    match &args.command {
        GroupCommand::List { states } => list(connection, states).await,
        GroupCommand::Describe { group } => describe(connection, group).await,
        GroupCommand::ResetOffsets(reset) => reset::reset_offsets(connection, reset).await,
        GroupCommand::Delete { group } => delete(connection, group).await,
    }
}

// ---------------------------------------------------------------------------
// list

async fn list(connection: &ConnectionArgs, states: &[String]) -> anyhow::Result<()> {
    // Every broker coordinates its own share of the groups: ask them all.
    let client = connection.metadata_client()?;
    let metadata = fetch_metadata(&client, None, &connection.brokers).await?;
    let mut addresses: Vec<String> = metadata
        .brokers()
        .iter()
        .map(|b| format!("{}:{}", b.host(), b.port()))
        .collect();
    addresses.sort();
    addresses.dedup();
    let mut rows = BTreeSet::new();
    for address in &addresses {
        let groups = retrying(|| list_from(address, states)).await?;
        rows.extend(groups);
    }
    let rows: Vec<Vec<String>> = rows.into_iter().collect();
    table::emit(&table::render(&["GROUP", "STATE", "PROTOCOL-TYPE"], &rows))
}

/// ListGroups on one broker: `[group, state, protocol type]` rows.
async fn list_from(address: &str, states: &[String]) -> anyhow::Result<Vec<Vec<String>>> {
    let mut session = Session::connect(address).await?;
    let version = session.version::<ListGroupsRequest>(5)?;
    if !states.is_empty() && version < 4 {
        bail!("broker {address} cannot filter groups by state (ListGroups v{version})");
    }
    let request = ListGroupsRequest::default().with_states_filter(
        states
            .iter()
            .map(|s| StrBytes::from_string(s.clone()))
            .collect(),
    );
    let response = session.send(version, &request).await?;
    check(response.error_code, || {
        format!("listing groups on {address}")
    })?;
    Ok(response
        .groups
        .iter()
        .map(|g| {
            let state = if version >= 4 {
                g.group_state.to_string()
            } else {
                "-".to_string()
            };
            let protocol_type = if g.protocol_type.is_empty() {
                "-".to_string()
            } else {
                g.protocol_type.to_string()
            };
            vec![g.group_id.0.to_string(), state, protocol_type]
        })
        .collect())
}

// ---------------------------------------------------------------------------
// describe

/// What DescribeGroups and OffsetFetch say about one group.
struct GroupView {
    /// The DescribeGroups entry (state, protocol, members).
    described: DescribedGroup,
    /// Committed offsets by topic and partition (only partitions with one).
    committed: BTreeMap<(String, i32), i64>,
}

async fn group_view(connection: &ConnectionArgs, group: &str) -> anyhow::Result<GroupView> {
    let mut session = group_coordinator(connection, group).await?;
    let described = describe_group(&mut session, group).await?;
    let committed = committed_offsets(&mut session, group, None).await?;
    Ok(GroupView {
        described,
        committed,
    })
}

/// The partitions a member was assigned, decoded from its assignment bytes
/// (ConsumerProtocolAssignment, led by its i16 version). `None` when the
/// bytes are not a consumer assignment.
fn decode_assignment(bytes: &[u8]) -> Option<Vec<(String, Vec<i32>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let mut buffer = bytes::Bytes::copy_from_slice(bytes);
    if buffer.remaining() < 2 {
        return None;
    }
    let version = buffer.get_i16();
    if version < 0 {
        return None;
    }
    // Newer versions only append fields; read them as the newest we know,
    // as Kafka's ConsumerProtocol does.
    let assignment = ConsumerProtocolAssignment::decode(&mut buffer, version.min(3)).ok()?;
    Some(
        assignment
            .assigned_partitions
            .into_iter()
            .map(|t| (t.topic.0.to_string(), t.partitions))
            .collect(),
    )
}

/// `orders:0,1,2 payments:3`, sorted.
fn render_assignment(assignment: &[(String, Vec<i32>)]) -> String {
    let mut topics: Vec<(String, Vec<i32>)> = assignment.to_vec();
    topics.sort();
    let parts: Vec<String> = topics
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            let list: Vec<String> = partitions.iter().map(i32::to_string).collect();
            format!("{topic}:{}", list.join(","))
        })
        .collect();
    if parts.is_empty() {
        "-".to_string()
    } else {
        parts.join(" ")
    }
}

async fn describe(connection: &ConnectionArgs, group: &str) -> anyhow::Result<()> {
    let view = retrying(|| group_view(connection, group)).await?;
    let described = &view.described;
    if is_missing(described) && view.committed.is_empty() {
        bail!("group {group} does not exist");
    }

    // Members and who owns which partition.
    let mut owner: BTreeMap<(String, i32), String> = BTreeMap::new();
    let mut member_rows = Vec::new();
    for member in &described.members {
        let assignment = if described.protocol_type.as_str() == "consumer" {
            decode_assignment(&member.member_assignment)
        } else {
            None
        };
        let assigned = match &assignment {
            Some(topics) => {
                for (topic, partitions) in topics {
                    for partition in partitions {
                        owner.insert((topic.clone(), *partition), member.member_id.to_string());
                    }
                }
                render_assignment(topics)
            }
            None => format!("({} bytes)", member.member_assignment.len()),
        };
        member_rows.push(vec![
            member.member_id.to_string(),
            member
                .group_instance_id
                .as_ref()
                .map_or_else(|| "-".to_string(), |id| id.to_string()),
            member.client_id.to_string(),
            member.client_host.to_string(),
            assigned,
        ]);
    }
    member_rows.sort();

    // Per partition: committed offset, high watermark, lag.
    let partitions: BTreeSet<(String, i32)> =
        view.committed.keys().chain(owner.keys()).cloned().collect();
    let client = connection.metadata_client()?;
    let mut partition_rows = Vec::with_capacity(partitions.len());
    for (topic, partition) in partitions {
        let high = blocking(|| client.fetch_watermarks(&topic, partition, REQUEST_TIMEOUT))
            .map(|(_, high)| high)
            .map_err(
                |error| tracing::warn!(%topic, partition, %error, "high watermark unavailable"),
            )
            .ok();
        let committed = view.committed.get(&(topic.clone(), partition)).copied();
        let lag = match (committed, high) {
            (Some(committed), Some(high)) => (high - committed).max(0).to_string(),
            _ => "-".to_string(),
        };
        partition_rows.push(vec![
            topic.clone(),
            partition.to_string(),
            committed.map_or_else(|| "-".to_string(), |c| c.to_string()),
            high.map_or_else(|| "-".to_string(), |h| h.to_string()),
            lag,
            owner
                .get(&(topic, partition))
                .cloned()
                .unwrap_or_else(|| "-".to_string()),
        ]);
    }

    let or_dash = |text: &str| {
        if text.is_empty() {
            "-".to_string()
        } else {
            text.to_string()
        }
    };
    let state = if is_missing(described) {
        // Offsets without a group: what Kafka shows for a group that only
        // ever committed (e.g. through assign()).
        "Empty".to_string()
    } else {
        described.group_state.to_string()
    };
    let mut out = String::new();
    out.push_str(&table::render(
        &["GROUP", "STATE", "PROTOCOL-TYPE", "PROTOCOL", "MEMBERS"],
        &[vec![
            group.to_string(),
            state,
            or_dash(&described.protocol_type),
            or_dash(&described.protocol_data),
            described.members.len().to_string(),
        ]],
    ));
    if !member_rows.is_empty() {
        out.push('\n');
        out.push_str(&table::render(
            &[
                "MEMBER-ID",
                "INSTANCE-ID",
                "CLIENT-ID",
                "HOST",
                "ASSIGNMENT",
            ],
            &member_rows,
        ));
    }
    out.push('\n');
    out.push_str(&table::render(
        &[
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "MEMBER-ID",
        ],
        &partition_rows,
    ));
    table::emit(&out)
}

// ---------------------------------------------------------------------------
// delete

async fn delete(connection: &ConnectionArgs, group: &str) -> anyhow::Result<()> {
    retrying(|| delete_once(connection, group)).await?;
    table::emit(&format!("deleted group {group}\n"))
}

async fn delete_once(connection: &ConnectionArgs, group: &str) -> anyhow::Result<()> {
    let mut session = group_coordinator(connection, group).await?;
    let version = session.version::<DeleteGroupsRequest>(2)?;
    let request = DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
    let response = session.send(version, &request).await?;
    let Some(result) = response
        .results
        .iter()
        .find(|r| r.group_id.0.as_str() == group)
    else {
        bail!("deleting group {group}: the broker returned no result");
    };
    match result.error_code {
        code::NON_EMPTY_GROUP => {
            bail!("group {group} has active members; stop its consumers before deleting it")
        }
        code::GROUP_ID_NOT_FOUND => bail!("group {group} does not exist"),
        code::INVALID_GROUP_ID => bail!("{group:?} is not a valid group id"),
        other => check(other, || format!("deleting group {group}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut as _;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::protocol::Encodable as _;

    fn assignment_bytes(version: i16, topics: &[(&str, &[i32])]) -> Vec<u8> {
        let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
            topics
                .iter()
                .map(|(topic, partitions)| {
                    TopicPartition::default()
                        .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                        .with_partitions(partitions.to_vec())
                })
                .collect(),
        );
        let mut buffer = bytes::BytesMut::new();
        buffer.put_i16(version);
        assignment
            .encode(&mut buffer, version.min(3))
            .expect("encode");
        buffer.to_vec()
    }

    #[test]
    fn assignments_decode() {
        let two = assignment_bytes(0, &[("orders", &[2, 0]), ("audit", &[1])]);
        assert_eq!(
            decode_assignment(&two).map(|a| render_assignment(&a)),
            Some("audit:1 orders:0,2".to_string())
        );
        let v3 = assignment_bytes(3, &[("t", &[5])]);
        assert_eq!(
            decode_assignment(&v3),
            Some(vec![("t".to_string(), vec![5])])
        );
        assert_eq!(decode_assignment(&[]), Some(vec![]));
        assert_eq!(decode_assignment(&[0]), None);
        assert_eq!(decode_assignment(&[0xff, 0xff, 0, 0]), None);
        assert_eq!(decode_assignment(&[0, 0, 0, 0, 0, 9]), None);
        assert_eq!(render_assignment(&[]), "-");
    }
}
