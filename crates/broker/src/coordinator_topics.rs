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

/// Creates `__consumer_offsets` if it does not exist (compacted; with
/// `offsets.topic.replication.factor`, see [`internal_replication_factor`]).
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

/// Creates the internal topic `name` with its own settings (partitions,
/// replication factor, compaction) when a client asks for it by name before
/// any coordinator did: `None` when `name` is not an internal topic. Kafka
/// does the same on a Metadata request (`AutoTopicCreationManager`): created
/// as an ordinary topic, `__consumer_offsets` would get `num.partitions`
/// partitions while every coordinator hashes groups over
/// `offsets.topic.num.partitions`, and groups of the missing partitions
/// would find no coordinator for good.
pub async fn ensure_by_name(
    controller: &Controller,
    groups: &GroupCoordinator,
    txns: &TransactionCoordinator,
    name: &str,
) -> Option<Result<(), String>> {
    match name {
        OFFSETS_TOPIC => Some(ensure_offsets_topic(controller, groups).await),
        TRANSACTION_STATE_TOPIC => Some(ensure_transaction_topic(controller, txns).await),
        _ => None,
    }
}

/// Creates `__transaction_state` if it does not exist (compacted; with
/// `transaction.state.log.replication.factor` and
/// `transaction.state.log.min.isr`, see [`internal_replication_factor`]).
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
        |factor| {
            let min_isr = i64::from(txns.config.min_isr).min(i64::from(factor));
            BTreeMap::from([("min.insync.replicas".to_string(), min_isr.to_string())])
        },
    )
    .await
}

/// The replication factor an internal topic is created with, as Kafka
/// decides it: the configured factor, once that many brokers are
/// registered (until then the coordinator is not available, and the caller
/// retries). It is never capped at the brokers that happen to be live: a
/// cluster still booting would keep an under-replicated topic for good.
/// Only a single node (one voter, no other broker) uses factor 1, so
/// `sluice serve` alone works out of the box.
pub fn internal_replication_factor(
    configured: i16,
    clustered: bool,
    registered_brokers: usize,
) -> Result<i16, String> {
    if !clustered {
        return Ok(configured.clamp(1, 1));
    }
    let configured = configured.max(1);
    if registered_brokers < configured as usize {
        return Err(format!(
            "the configured replication factor {configured} is more than the \
             {registered_brokers} registered brokers; the topic is created once enough \
             brokers have registered"
        ));
    }
    Ok(configured)
}

/// Creates a compacted internal topic unless it exists; `extra_configs`
/// gets the replication factor. Losing a race with another creation is
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
    let factor = internal_replication_factor(
        replication_factor,
        controller.clustered(),
        image.brokers.len(),
    )?;
    let mut configs = extra_configs(factor);
    configs.insert("cleanup.policy".to_string(), "compact".to_string());
    let spec = TopicSpec {
        name: name.to_string(),
        num_partitions: partitions,
        replication_factor: factor,
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

#[cfg(test)]
mod tests {
    use super::internal_replication_factor;

    #[test]
    fn internal_topics_get_their_configured_factor_or_wait_for_enough_brokers() {
        // A single node: factor 1 whatever is configured.
        assert_eq!(internal_replication_factor(3, false, 1), Ok(1));
        // A cluster: the configured factor, never capped at the live brokers.
        assert_eq!(internal_replication_factor(3, true, 3), Ok(3));
        assert_eq!(internal_replication_factor(3, true, 5), Ok(3));
        assert_eq!(internal_replication_factor(1, true, 3), Ok(1));
        assert!(internal_replication_factor(3, true, 2).is_err());
    }
}
