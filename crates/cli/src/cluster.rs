//! `sluice cluster info`: cluster id, controller and brokers.

use clap::{Args, Subcommand};

use crate::client::{blocking, fetch_metadata, ConnectionArgs, REQUEST_TIMEOUT};
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
    let metadata = fetch_metadata(&client, None, &connection.brokers).await?;
    let cluster_id =
        blocking(|| rdkafka::consumer::Consumer::client(&client).fetch_cluster_id(REQUEST_TIMEOUT));
    // The rdkafka crate exposes no controller id without `unsafe`; a raw
    // Metadata request carries it. Shown as "-" if that request fails.
    let controller = match wire::metadata(&connection.brokers, None).await {
        Ok(response) => Some(response.controller_id.0),
        Err(error) => {
            tracing::debug!(%error, "controller id unavailable");
            None
        }
    };

    let mut out = format!(
        "CLUSTER     {}\nCONTROLLER  {}\n\n",
        cluster_id.as_deref().unwrap_or("-"),
        controller.map_or_else(|| "-".to_string(), |id| id.to_string())
    );
    let mut brokers: Vec<_> = metadata.brokers().iter().collect();
    brokers.sort_by_key(|b| b.id());
    let rows: Vec<Vec<String>> = brokers
        .iter()
        .map(|broker| {
            let id = if Some(broker.id()) == controller {
                format!("{}*", broker.id())
            } else {
                broker.id().to_string()
            };
            vec![id, broker.host().to_string(), broker.port().to_string()]
        })
        .collect();
    out.push_str(&table::render(&["ID", "HOST", "PORT"], &rows));
    table::emit(&out)
}
