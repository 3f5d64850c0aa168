//! Where a coordinator lives: the coordinators' internal topics
//! (`__consumer_offsets` for groups, `__transaction_state` for
//! transactional ids) are created on first use, and a key's coordinator is
//! the leader of the partition its hash picks. Used by FindCoordinator, by
//! AddOffsetsToTxn and by the coordinators' start-up.

use std::collections::BTreeMap;

use sluice_meta::{BrokerRegistration, ClusterImage};

use crate::controller::{Controller, TopicSpec};
use crate::error_codes;
use crate::group::{GroupCoordinator, OFFSETS_TOPIC};
use crate::txn::{TransactionCoordinator, TRANSACTION_STATE_TOPIC};

/// Creates `__consumer_offsets` if it does not exist (compacted; its
/// replication factor capped at the live brokers).
pub async fn ensure_offsets_topic(
    controller: &Controller,
    groups: &GroupCoordinator,
) -> Result<(), String> {
    let config = &groups.config;
    ensure_internal_topic(
        controller,
        OFFSETS_TOPIC,
        config.partitions,
        config.replication_factor,
        |_| BTreeMap::new(),
    )
    .await
}

/// Creates `__transaction_state` if it does not exist (compacted; its
/// replication factor capped at the live brokers, `min.insync.replicas` at
/// two of them).
pub async fn ensure_transaction_topic(
    controller: &Controller,
    txns: &TransactionCoordinator,
) -> Result<(), String> {
    let config = &txns.config;
    ensure_internal_topic(
        controller,
        TRANSACTION_STATE_TOPIC,
        config.partitions,
        config.replication_factor,
        |live| BTreeMap::from([("min.insync.replicas".to_string(), live.min(2).to_string())]),
    )
    .await
}

/// Creates a compacted internal topic unless it exists; `extra_configs`
/// gets the live broker count. Losing a race with another creation is
/// success.
async fn ensure_internal_topic(
    controller: &Controller,
    name: &str,
    partitions: i32,
    replication_factor: i16,
    extra_configs: impl FnOnce(i16) -> BTreeMap<String, String>,
) -> Result<(), String> {
    let image = controller.image();
    if image.topic(name).is_some() {
        return Ok(());
    }
    let live = image.brokers.len().max(1) as i16;
    let mut configs = extra_configs(live);
    configs.insert("cleanup.policy".to_string(), "compact".to_string());
    let spec = TopicSpec {
        name: name.to_string(),
        num_partitions: partitions,
        replication_factor: replication_factor.min(live),
        assignments: Vec::new(),
        configs,
    };
    match controller.create_topic(spec, false).await {
        Ok(_) => Ok(()),
        Err(error) if error.code == error_codes::TOPIC_ALREADY_EXISTS => Ok(()),
        Err(error) => Err(error.message),
    }
}

/// The broker leading `partition` of the internal topic `topic`, if the
/// topic exists and the leader is registered.
pub fn coordinator_broker<'a>(
    image: &'a ClusterImage,
    topic: &str,
    partition: i32,
) -> Option<&'a BrokerRegistration> {
    let leader = image
        .topic(topic)
        .and_then(|t| t.partitions.get(partition as usize))
        .map(|p| p.leader)?;
    image.brokers.get(&leader)
}
