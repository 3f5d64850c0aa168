//! `sluice topic alter-config | add-partitions | trim`.
//!
//! alter-config sends IncrementalAlterConfigs itself (through `wire`), because
//! the `rdkafka` crate only offers the legacy AlterConfigs, which replaces a
//! topic's whole set of overrides.

use anyhow::{bail, Context as _};
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::IncrementalAlterConfigsRequest;
use kafka_protocol::protocol::StrBytes;
use rdkafka::admin::{AdminOptions, NewPartitions};
use rdkafka::{Offset, TopicPartitionList};
use tokio::net::TcpStream;

use crate::client::{ConnectionArgs, REQUEST_TIMEOUT};
use crate::{table, wire};

/// Kafka's resource type for topics.
const RESOURCE_TOPIC: i8 = 2;
/// IncrementalAlterConfigs operations.
const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;

fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT))
}

/// Sets and deletes topic configs on a running broker.
pub async fn alter_config(
    connection: &ConnectionArgs,
    name: &str,
    set: &[(String, String)],
    delete: &[String],
) -> anyhow::Result<()> {
    if set.is_empty() && delete.is_empty() {
        bail!("nothing to change: give -c KEY=VALUE and/or --delete KEY");
    }
    let mut configs: Vec<AlterableConfig> = set
        .iter()
        .map(|(k, v)| {
            AlterableConfig::default()
                .with_name(StrBytes::from_string(k.clone()))
                .with_config_operation(OP_SET)
                .with_value(Some(StrBytes::from_string(v.clone())))
        })
        .collect();
    configs.extend(delete.iter().map(|k| {
        AlterableConfig::default()
            .with_name(StrBytes::from_string(k.clone()))
            .with_config_operation(OP_DELETE)
            .with_value(None)
    }));
    let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(RESOURCE_TOPIC)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(configs),
    ]);
    let address = connection
        .brokers
        .split(',')
        .map(str::trim)
        .find(|a| !a.is_empty())
        .context("no brokers given")?;
    let response = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut stream = TcpStream::connect(address).await.context("connecting")?;
        wire::round_trip(&mut stream, 1, 0, &request).await
    })
    .await
    .with_context(|| format!("altering configs of {name}: timed out"))??;
    for result in response.responses {
        if result.error_code != 0 {
            let message = result
                .error_message
                .map(|m| m.to_string())
                .unwrap_or_default();
            bail!(
                "altering configs of {name}: error {}: {message}",
                result.error_code
            );
        }
    }
    table::emit(&format!("altered configs of topic {name}\n"))
}

/// Grows a topic to `count` partitions.
pub async fn add_partitions(
    connection: &ConnectionArgs,
    name: &str,
    count: usize,
) -> anyhow::Result<()> {
    let admin = connection.admin()?;
    let results = admin
        .create_partitions([&NewPartitions::new(name, count)], &admin_options())
        .await
        .with_context(|| format!("adding partitions to {name}"))?;
    for result in results {
        if let Err((_, code)) = result {
            bail!("adding partitions to {name}: {code}");
        }
    }
    table::emit(&format!("topic {name} now has {count} partitions\n"))
}

/// DeleteRecords: moves a partition's log start offset to `offset`
/// (-1: the high watermark).
pub async fn trim(
    connection: &ConnectionArgs,
    name: &str,
    partition: i32,
    offset: i64,
) -> anyhow::Result<()> {
    let admin = connection.admin()?;
    let mut list = TopicPartitionList::new();
    let target = if offset < 0 {
        Offset::End
    } else {
        Offset::Offset(offset)
    };
    list.add_partition_offset(name, partition, target)
        .context("building the partition list")?;
    let result = admin
        .delete_records(&list, &admin_options())
        .await
        .with_context(|| format!("trimming {name}[{partition}]"))?;
    for element in result.elements() {
        if let Err(error) = element.error() {
            bail!("trimming {name}[{partition}]: {error}");
        }
        let low = match element.offset() {
            Offset::Offset(o) => o.to_string(),
            other => format!("{other:?}"),
        };
        table::emit(&format!("{name}[{partition}] now starts at offset {low}\n"))?;
    }
    Ok(())
}
