//! `sluice cluster info`: cluster id, controller and brokers.

use clap::{Args, Subcommand};

use crate::client::{fetch_metadata, ConnectionArgs};
use crate::{table, wire};

#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Which brokers to talk to.
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
    /// The cluster operation.
    #[command(subcommand)]
    command: ClusterCommand,
}

#[derive(Debug, Subcommand)]
enum ClusterCommand {
    /// Show the cluster id, the active controller and the brokers.
    Info,
}

pub async fn run(args: ClusterArgs) -> anyhow::Result<()> {
    match args.command {
        ClusterCommand::Info => info(&args.connection).await,
    }
}

async fn info(connection: &ConnectionArgs) -> anyhow::Result<()> {
    let client = connection.metadata_client()?;
    // Through librdkafka first: it says clearly when no broker answers.
    fetch_metadata(&client, None, &connection.brokers).await?;
    let cluster = wire::describe_cluster(&connection.brokers).await?;
    // The active controller is the quorum's leader (Metadata and
    // DescribeCluster name a random broker, as Kafka in KRaft mode does).
    let quorum = match wire::describe_quorum(&connection.brokers).await {
        Ok(response) => response
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .find(|p| p.error_code == 0),
        Err(error) => {
            tracing::debug!(%error, "quorum unavailable");
            None
        }
    };
    let controller = quorum.as_ref().map(|q| q.leader_id.0).filter(|id| *id >= 0);
    let mut out = format!(
        "CLUSTER     {}\nCONTROLLER  {}\n",
        cluster.cluster_id.as_str(),
        controller.map_or_else(|| "-".to_string(), |id| id.to_string())
    );
    if let Some(quorum) = &quorum {
        out.push_str(&format!(
            "QUORUM      epoch {}, high watermark {}\n",
            quorum.leader_epoch, quorum.high_watermark
        ));
    }
    out.push_str("\nBROKERS\n");
    let mut brokers = cluster.brokers.clone();
    brokers.sort_by_key(|b| b.broker_id.0);
    let rows: Vec<Vec<String>> = brokers
        .iter()
        .map(|broker| {
            let id = broker.broker_id.0;
            vec![
                if Some(id) == controller {
                    format!("{id}*")
                } else {
                    id.to_string()
                },
                broker.host.to_string(),
                broker.port.to_string(),
                broker
                    .rack
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |r| r.to_string()),
                if broker.is_fenced {
                    "fenced"
                } else {
                    "unfenced"
                }
                .to_string(),
            ]
        })
        .collect();
    out.push_str(&table::render(
        &["ID", "HOST", "PORT", "RACK", "STATE"],
        &rows,
    ));
    if let Some(quorum) = &quorum {
        out.push_str("\nQUORUM MEMBERS\n");
        let leader_end = quorum
            .current_voters
            .iter()
            .find(|v| v.replica_id.0 == quorum.leader_id.0)
            .map_or(-1, |v| v.log_end_offset);
        let rows: Vec<Vec<String>> = quorum
            .current_voters
            .iter()
            .chain(quorum.observers.iter())
            .map(|voter| {
                let role = if voter.replica_id.0 == quorum.leader_id.0 {
                    "leader"
                } else if quorum
                    .current_voters
                    .iter()
                    .any(|v| v.replica_id == voter.replica_id)
                {
                    "follower"
                } else {
                    "observer"
                };
                let lag = match (leader_end, voter.log_end_offset) {
                    (end, offset) if end >= 0 && offset >= 0 => (end - offset).max(0).to_string(),
                    _ => "-".to_string(),
                };
                vec![
                    voter.replica_id.0.to_string(),
                    role.to_string(),
                    voter.log_end_offset.to_string(),
                    lag,
                ]
            })
            .collect();
        out.push_str(&table::render(&["ID", "ROLE", "LOG END", "LAG"], &rows));
    }
    table::emit(&out)
}
