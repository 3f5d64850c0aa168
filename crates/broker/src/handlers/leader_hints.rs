//! KIP-951: a Produce (v10+) or Fetch (v16+) answered NOT_LEADER_OR_FOLLOWER
//! (or FENCED_LEADER_EPOCH) names the partition's current leader and epoch,
//! and the response carries that leader's endpoint, so the client re-routes
//! without waiting for a metadata refresh. Filled in from this broker's
//! image after the handler answered; older versions lack the fields (and
//! kafka-protocol refuses to encode them), so they are left alone there.
//!
//! A partition the image knows but this broker does not host (it is not a
//! replica) is NOT_LEADER_OR_FOLLOWER at every version, as Kafka's
//! ReplicaManager answers it, not UNKNOWN_TOPIC_OR_PARTITION.

use std::collections::BTreeSet;

use kafka_protocol::messages::{fetch_response, produce_response, BrokerId};
use kafka_protocol::messages::{FetchResponse, ProduceResponse};
use sluice_meta::ClusterImage;
use uuid::Uuid;

use super::str_bytes;
use crate::error_codes;

/// Produce v10 added the leader hints.
const PRODUCE_HINTS_VERSION: i16 = 10;
/// Fetch v16 added the leader hints.
const FETCH_HINTS_VERSION: i16 = 16;

fn wants_hint(code: i16) -> bool {
    code == error_codes::NOT_LEADER_OR_FOLLOWER || code == error_codes::FENCED_LEADER_EPOCH
}

/// Whether the image has this partition.
fn known(
    image: &ClusterImage,
    topic: Option<&str>,
    topic_id: Option<Uuid>,
    partition: i32,
) -> bool {
    let topic = match (topic, topic_id) {
        (Some(name), _) if !name.is_empty() => image.topic(name),
        (_, Some(id)) => image.topic_by_id(&id),
        _ => None,
    };
    topic.is_some_and(|t| usize::try_from(partition).is_ok_and(|p| p < t.partitions.len()))
}

/// The current leader and leader epoch of a partition, when it has one.
fn leader_of(
    image: &ClusterImage,
    topic: Option<&str>,
    topic_id: Option<Uuid>,
    partition: i32,
) -> Option<(i32, i32)> {
    let topic = match (topic, topic_id) {
        (Some(name), _) if !name.is_empty() => image.topic(name),
        (_, Some(id)) => image.topic_by_id(&id),
        _ => None,
    }?;
    let state = topic.partitions.get(usize::try_from(partition).ok()?)?;
    (state.leader >= 0).then_some((state.leader, state.leader_epoch))
}

/// Adds the hints to a Produce response of `version`.
pub fn add_to_produce(response: &mut ProduceResponse, version: i16, image: &ClusterImage) {
    for topic in &mut response.responses {
        for partition in &mut topic.partition_responses {
            if partition.error_code == error_codes::UNKNOWN_TOPIC_OR_PARTITION
                && known(image, Some(topic.name.0.as_str()), None, partition.index)
            {
                partition.error_code = error_codes::NOT_LEADER_OR_FOLLOWER;
            }
        }
    }
    if version < PRODUCE_HINTS_VERSION {
        return;
    }
    let mut leaders = BTreeSet::new();
    for topic in &mut response.responses {
        for partition in &mut topic.partition_responses {
            if !wants_hint(partition.error_code) {
                continue;
            }
            if let Some((leader, epoch)) =
                leader_of(image, Some(topic.name.0.as_str()), None, partition.index)
            {
                partition.current_leader = produce_response::LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
                leaders.insert(leader);
            }
        }
    }
    response.node_endpoints = leaders
        .into_iter()
        .filter_map(|id| image.brokers.get(&id))
        .map(|broker| {
            produce_response::NodeEndpoint::default()
                .with_node_id(BrokerId(broker.node_id))
                .with_host(str_bytes(&broker.host))
                .with_port(i32::from(broker.port))
                .with_rack(broker.rack.as_deref().map(str_bytes))
        })
        .collect();
}

/// Adds the hints to a Fetch response of `version`.
pub fn add_to_fetch(response: &mut FetchResponse, version: i16, image: &ClusterImage) {
    for topic in &mut response.responses {
        let id = (!topic.topic_id.is_nil()).then_some(topic.topic_id);
        for partition in &mut topic.partitions {
            if partition.error_code == error_codes::UNKNOWN_TOPIC_OR_PARTITION
                && known(
                    image,
                    Some(topic.topic.0.as_str()),
                    id,
                    partition.partition_index,
                )
            {
                partition.error_code = error_codes::NOT_LEADER_OR_FOLLOWER;
            }
        }
    }
    if version < FETCH_HINTS_VERSION {
        return;
    }
    let mut leaders = BTreeSet::new();
    for topic in &mut response.responses {
        let id = (!topic.topic_id.is_nil()).then_some(topic.topic_id);
        for partition in &mut topic.partitions {
            if !wants_hint(partition.error_code) {
                continue;
            }
            if let Some((leader, epoch)) = leader_of(
                image,
                Some(topic.topic.0.as_str()),
                id,
                partition.partition_index,
            ) {
                partition.current_leader = fetch_response::LeaderIdAndEpoch::default()
                    .with_leader_id(BrokerId(leader))
                    .with_leader_epoch(epoch);
                leaders.insert(leader);
            }
        }
    }
    response.node_endpoints = leaders
        .into_iter()
        .filter_map(|id| image.brokers.get(&id))
        .map(|broker| {
            fetch_response::NodeEndpoint::default()
                .with_node_id(BrokerId(broker.node_id))
                .with_host(str_bytes(&broker.host))
                .with_port(i32::from(broker.port))
                .with_rack(broker.rack.as_deref().map(str_bytes))
        })
        .collect();
}
