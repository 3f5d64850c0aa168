//! `sluice transaction list | describe`.
//!
//! Raw requests with the `kafka-protocol` crate through [`crate::coordinator`]:
//! librdkafka has no admin call for ListTransactions or DescribeTransactions.
//! `list` asks every broker (each coordinates its own share of the
//! transactional ids); `describe` finds the id's coordinator with
//! FindCoordinator (key type 1, TRANSACTION) and asks it.

use std::collections::BTreeSet;

use anyhow::bail;
use clap::{Args, Subcommand};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, ListTransactionsRequest, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;

use crate::client::{fetch_metadata, ConnectionArgs};
use crate::coordinator::{check, retrying, Session, KEY_TYPE_TRANSACTION};
use crate::table;

#[derive(Debug, Args)]
pub struct TransactionArgs {
    /// Which brokers to talk to.
    #[command(flatten)]
    pub(crate) connection: ConnectionArgs,
    /// The transaction operation.
    #[command(subcommand)]
    command: TransactionCommand,
}

#[derive(Debug, Subcommand)]
enum TransactionCommand {
    /// List the transactional ids with their producer id and state.
    List,
    /// Show a transactional id's state, producer id and epoch, timeout,
    /// start time and the partitions of its ongoing transaction.
    Describe {
        /// Transactional id.
        transactional_id: String,
    },
}

pub async fn run(args: TransactionArgs) -> anyhow::Result<()> {
    match &args.command {
        TransactionCommand::List => list(&args.connection).await,
        TransactionCommand::Describe { transactional_id } => {
            describe(&args.connection, transactional_id).await
        }
    }
}

// ---------------------------------------------------------------------------
// list

async fn list(connection: &ConnectionArgs) -> anyhow::Result<()> {
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
        rows.extend(retrying(|| list_from(address)).await?);
    }
    let rows: Vec<Vec<String>> = rows.into_iter().collect();
    table::emit(&table::render(
        &["TRANSACTIONAL-ID", "PRODUCER-ID", "STATE"],
        &rows,
    ))
}

/// ListTransactions on one broker: `[id, producer id, state]` rows.
async fn list_from(address: &str) -> anyhow::Result<Vec<Vec<String>>> {
    let mut session = Session::connect(address).await?;
    let version = session.version::<ListTransactionsRequest>(1)?;
    let response = session
        .send(version, &ListTransactionsRequest::default())
        .await?;
    check(response.error_code, || {
        format!("listing the transactions of broker {address}")
    })?;
    Ok(response
        .transaction_states
        .iter()
        .map(|t| {
            vec![
                t.transactional_id.0.to_string(),
                t.producer_id.0.to_string(),
                t.transaction_state.to_string(),
            ]
        })
        .collect())
}

// ---------------------------------------------------------------------------
// describe

async fn describe(connection: &ConnectionArgs, id: &str) -> anyhow::Result<()> {
    let text = retrying(|| describe_once(connection, id)).await?;
    table::emit(&text)
}

/// DescribeTransactions at the coordinator of `id`, rendered.
async fn describe_once(connection: &ConnectionArgs, id: &str) -> anyhow::Result<String> {
    let mut session = Session::coordinator(connection, KEY_TYPE_TRANSACTION, id).await?;
    let version = session.version::<DescribeTransactionsRequest>(0)?;
    let request = DescribeTransactionsRequest::default()
        .with_transactional_ids(vec![TransactionalId(StrBytes::from_string(id.to_string()))]);
    let response = session.send(version, &request).await?;
    let Some(state) = response.transaction_states.into_iter().next() else {
        bail!("describing transactional id {id}: the broker returned no transaction");
    };
    check(state.error_code, || {
        format!("describing transactional id {id}")
    })?;
    let start = if state.transaction_start_time_ms < 0 {
        "-".to_string()
    } else {
        state.transaction_start_time_ms.to_string()
    };
    let fields = [
        ("TRANSACTIONAL-ID", state.transactional_id.0.to_string()),
        ("STATE", state.transaction_state.to_string()),
        ("PRODUCER-ID", state.producer_id.0.to_string()),
        ("PRODUCER-EPOCH", state.producer_epoch.to_string()),
        ("TIMEOUT-MS", state.transaction_timeout_ms.to_string()),
        ("START-TIME-MS", start),
    ];
    let mut text = String::new();
    let width = fields.iter().map(|(name, _)| name.len()).max().unwrap_or(0);
    for (name, value) in &fields {
        text.push_str(&format!("{name:<width$}  {value}\n"));
    }
    let mut partitions: Vec<Vec<String>> = state
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(|p| vec![topic.topic.0.to_string(), p.to_string()])
        })
        .collect();
    partitions.sort();
    text.push('\n');
    text.push_str(&table::render(&["TOPIC", "PARTITION"], &partitions));
    Ok(text)
}
