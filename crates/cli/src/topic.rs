//! `sluice topic create | list | describe | delete` (and, in `topic_admin`,
//! `alter-config | add-partitions | trim`).

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use rdkafka::admin::{
    AdminOptions, ConfigSource, NewTopic, ResourceSpecifier, TopicReplication, TopicResult,
};
use rdkafka::consumer::Consumer as _;

use crate::client::{blocking, fetch_metadata, parse_key_value, ConnectionArgs, REQUEST_TIMEOUT};
use crate::{table, wire};

#[derive(Debug, Args)]
pub struct TopicArgs {
    /// Which brokers to talk to.
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
    /// The topic operation.
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(Debug, Subcommand)]
enum TopicCommand {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions (-1: the broker's num.partitions).
        #[arg(short = 'p', long, default_value_t = -1, allow_negative_numbers = true)]
        partitions: i32,
        /// Replication factor (-1: the broker's default.replication.factor).
        #[arg(short = 'r', long, default_value_t = -1, allow_negative_numbers = true)]
        replicas: i32,
        /// Topic config, repeatable (e.g. -c cleanup.policy=compact).
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
    },
    /// List topics with their partition count and replication factor.
    List {
        /// Also list internal topics (`__consumer_offsets`, any name
        /// starting with `__`).
        #[arg(long, visible_alias = "all")]
        internal: bool,
        /// List the partitions whose ISR is smaller than their replica set
        /// instead (Kafka's `--under-replicated-partitions`), offline ones
        /// (no leader) included; internal topics too.
        #[arg(long)]
        under_replicated: bool,
    },
    /// Show a topic's partitions, watermarks and configs.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Change topic configs on the running broker (IncrementalAlterConfigs).
    AlterConfig {
        /// Topic name.
        name: String,
        /// Config to set, repeatable (e.g. -c retention.ms=60000).
        #[arg(short = 'c', long = "config", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        configs: Vec<(String, String)>,
        /// Config override to remove (back to the broker's value), repeatable.
        #[arg(long = "delete", value_name = "KEY")]
        delete: Vec<String>,
    },
    /// Add partitions to a topic (CreatePartitions).
    AddPartitions {
        /// Topic name.
        name: String,
        /// The new total number of partitions.
        #[arg(short = 'p', long)]
        partitions: usize,
    },
    /// Delete records before an offset (DeleteRecords).
    Trim {
        /// Topic name.
        name: String,
        /// Partition to trim.
        #[arg(long)]
        partition: i32,
        /// New log start offset (-1: the high watermark).
        #[arg(long, allow_negative_numbers = true)]
        offset: i64,
    },
}

pub async fn run(args: TopicArgs) -> anyhow::Result<()> {
    let connection = &args.connection;
    match args.command {
        TopicCommand::Create {
            name,
            partitions,
            replicas,
            configs,
        } => create(connection, &name, partitions, replicas, &configs).await,
        TopicCommand::List {
            under_replicated: true,
            ..
        } => list_under_replicated(connection).await,
        TopicCommand::List { internal, .. } => list(connection, internal).await,
        TopicCommand::Describe { name } => describe(connection, &name).await,
        TopicCommand::Delete { name } => delete(connection, &name).await,
        TopicCommand::AlterConfig {
            name,
            configs,
            delete,
        } => crate::topic_admin::alter_config(connection, &name, &configs, &delete).await,
        TopicCommand::AddPartitions { name, partitions } => {
            crate::topic_admin::add_partitions(connection, &name, partitions).await
        }
        TopicCommand::Trim {
            name,
            partition,
            offset,
        } => crate::topic_admin::trim(connection, &name, partition, offset).await,
    }
}

fn admin_options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(REQUEST_TIMEOUT))
        .operation_timeout(Some(REQUEST_TIMEOUT))
}

/// The one result of a single-topic admin operation, as an error if it failed.
fn single_result(results: Vec<TopicResult>, what: &str, name: &str) -> anyhow::Result<()> {
    match results.into_iter().next() {
        Some(Ok(_)) => Ok(()),
        Some(Err((_, code))) => bail!("{what} topic {name}: {code}"),
        None => bail!("{what} topic {name}: the broker returned no result"),
    }
}

async fn create(
    connection: &ConnectionArgs,
    name: &str,
    partitions: i32,
    replicas: i32,
    configs: &[(String, String)],
) -> anyhow::Result<()> {
    let admin = connection.admin()?;
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replicas));
    for (key, value) in configs {
        topic = topic.set(key, value);
    }
    let results = admin
        .create_topics([&topic], &admin_options())
        .await
        .with_context(|| format!("creating topic {name} via {}", connection.brokers))?;
    single_result(results, "creating", name)?;
    table::emit(&format!("created topic {name}\n"))
}

async fn delete(connection: &ConnectionArgs, name: &str) -> anyhow::Result<()> {
    let admin = connection.admin()?;
    let results = admin
        .delete_topics(&[name], &admin_options())
        .await
        .with_context(|| format!("deleting topic {name} via {}", connection.brokers))?;
    single_result(results, "deleting", name)?;
    table::emit(&format!("deleted topic {name}\n"))
}

/// Kafka's convention for the broker's own topics (`__consumer_offsets`,
/// `__transaction_state`), which `topic list` hides unless asked.
fn is_internal(name: &str) -> bool {
    name.starts_with("__")
}

async fn list(connection: &ConnectionArgs, internal: bool) -> anyhow::Result<()> {
    let client = connection.metadata_client()?;
    let metadata = fetch_metadata(&client, None, &connection.brokers).await?;
    let mut rows: Vec<Vec<String>> = metadata
        .topics()
        .iter()
        .filter(|topic| internal || !is_internal(topic.name()))
        .map(|topic| {
            let replicas = topic
                .partitions()
                .first()
                .map(|p| p.replicas().len().to_string())
                .unwrap_or_else(|| "-".to_string());
            let error = topic.error().map(|e| format!("{e:?}")).unwrap_or_default();
            vec![
                topic.name().to_string(),
                topic.partitions().len().to_string(),
                replicas,
                error,
            ]
        })
        .collect();
    rows.sort();
    let show_errors = rows.iter().any(|row| !row[3].is_empty());
    if !show_errors {
        rows.iter_mut().for_each(|row| row.truncate(3));
        table::emit(&table::render(&["NAME", "PARTITIONS", "REPLICAS"], &rows))
    } else {
        table::emit(&table::render(
            &["NAME", "PARTITIONS", "REPLICAS", "ERROR"],
            &rows,
        ))
    }
}

/// What a partition's replication looks like: "offline" without a leader,
/// "under-replicated" with an ISR smaller than its replicas, else "".
fn replication_status(leader: i32, replicas: &[i32], isr: &[i32]) -> &'static str {
    if leader < 0 {
        "offline"
    } else if isr.len() < replicas.len() {
        "under-replicated"
    } else {
        ""
    }
}

async fn list_under_replicated(connection: &ConnectionArgs) -> anyhow::Result<()> {
    let client = connection.metadata_client()?;
    let metadata = fetch_metadata(&client, None, &connection.brokers).await?;
    let mut rows: Vec<Vec<String>> = Vec::new();
    for topic in metadata.topics() {
        for partition in topic.partitions() {
            let status =
                replication_status(partition.leader(), partition.replicas(), partition.isr());
            if status.is_empty() {
                continue;
            }
            rows.push(vec![
                topic.name().to_string(),
                partition.id().to_string(),
                partition.leader().to_string(),
                id_list(partition.replicas()),
                id_list(partition.isr()),
                status.to_string(),
            ]);
        }
    }
    rows.sort_by(|a, b| (&a[0], a[1].parse::<i32>().ok()).cmp(&(&b[0], b[1].parse::<i32>().ok())));
    table::emit(&table::render(
        &["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR", "STATUS"],
        &rows,
    ))
}

async fn describe(connection: &ConnectionArgs, name: &str) -> anyhow::Result<()> {
    let client = connection.metadata_client()?;
    let metadata = fetch_metadata(&client, Some(name), &connection.brokers).await?;
    let Some(topic) = metadata.topics().iter().find(|t| t.name() == name) else {
        bail!("topic {name}: not in the metadata response");
    };
    if let Some(code) = topic.error() {
        bail!(
            "topic {name}: {}",
            rdkafka::types::RDKafkaErrorCode::from(code)
        );
    }
    // librdkafka's metadata has no leader epoch; ask with a raw Metadata
    // request. Optional: the column shows "-" when that request fails.
    let epochs = match wire::leader_epochs(&connection.brokers, name).await {
        Ok(epochs) => epochs,
        Err(error) => {
            tracing::debug!(%error, "leader epochs unavailable");
            Default::default()
        }
    };

    let mut partitions: Vec<_> = topic.partitions().iter().collect();
    partitions.sort_by_key(|p| p.id());
    let mut rows = Vec::with_capacity(partitions.len());
    let mut under_replicated = Vec::new();
    let mut offline = Vec::new();
    for partition in partitions {
        match replication_status(partition.leader(), partition.replicas(), partition.isr()) {
            "offline" => offline.push(partition.id()),
            "under-replicated" => under_replicated.push(partition.id()),
            _ => {}
        }
        let (low, high) =
            blocking(|| client.fetch_watermarks(name, partition.id(), REQUEST_TIMEOUT))
                .map(|(low, high)| (low.to_string(), high.to_string()))
                .unwrap_or_else(|error| {
                    tracing::warn!(partition = partition.id(), %error, "watermarks unavailable");
                    ("-".to_string(), "-".to_string())
                });
        let error = partition
            .error()
            .map(|code| rdkafka::types::RDKafkaErrorCode::from(code).to_string())
            .unwrap_or_default();
        rows.push(vec![
            partition.id().to_string(),
            partition.leader().to_string(),
            epochs
                .get(&partition.id())
                .map(|e| e.to_string())
                .unwrap_or_else(|| "-".to_string()),
            id_list(partition.replicas()),
            id_list(partition.isr()),
            low,
            high,
            error,
        ]);
    }
    let mut out = format!("NAME        {name}\nPARTITIONS  {}\n\n", rows.len());
    let mut headers = vec![
        "PARTITION",
        "LEADER",
        "EPOCH",
        "REPLICAS",
        "ISR",
        "LOW",
        "HIGH",
        "ERROR",
    ];
    if rows.iter().all(|row| row[7].is_empty()) {
        rows.iter_mut().for_each(|row| row.truncate(7));
        headers.truncate(7);
    }
    out.push_str(&table::render(&headers, &rows));
    if !under_replicated.is_empty() {
        out.push_str(&format!(
            "UNDER-REPLICATED  {}\n",
            id_list(&under_replicated)
        ));
    }
    if !offline.is_empty() {
        out.push_str(&format!("OFFLINE           {}\n", id_list(&offline)));
    }

    let admin = connection.admin()?;
    let resources = admin
        .describe_configs([&ResourceSpecifier::Topic(name)], &admin_options())
        .await
        .with_context(|| format!("describing configs of topic {name}"))?;
    let Some(resource) = resources.into_iter().next() else {
        bail!("describing configs of topic {name}: the broker returned no result");
    };
    let resource =
        resource.map_err(|code| anyhow::anyhow!("describing configs of topic {name}: {code}"))?;
    let mut config_rows: Vec<Vec<String>> = resource
        .entries
        .iter()
        .map(|entry| {
            let value = if entry.is_sensitive {
                "(sensitive)".to_string()
            } else {
                entry.value.clone().unwrap_or_else(|| "(null)".to_string())
            };
            vec![
                entry.name.clone(),
                value,
                source_name(&entry.source).to_string(),
            ]
        })
        .collect();
    config_rows.sort();
    out.push('\n');
    out.push_str(&table::render(&["CONFIG", "VALUE", "SOURCE"], &config_rows));
    table::emit(&out)
}

/// `[1,2,3]`, the form `rpk` prints replica lists in.
fn id_list(ids: &[i32]) -> String {
    let ids: Vec<String> = ids.iter().map(i32::to_string).collect();
    format!("[{}]", ids.join(","))
}

/// Kafka's names for config sources (as `kafka-configs.sh` prints them).
fn source_name(source: &ConfigSource) -> &'static str {
    match source {
        ConfigSource::Unknown => "UNKNOWN",
        ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
        ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
        ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
        ConfigSource::Default => "DEFAULT_CONFIG",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_names() {
        assert!(is_internal("__consumer_offsets"));
        assert!(is_internal("__transaction_state"));
        assert!(!is_internal("_schemas"));
        assert!(!is_internal("orders__v2"));
    }

    #[test]
    fn replica_lists() {
        assert_eq!(id_list(&[]), "[]");
        assert_eq!(id_list(&[1]), "[1]");
        assert_eq!(id_list(&[3, 1, 2]), "[3,1,2]");
    }
}
