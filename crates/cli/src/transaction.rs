//! `sluice transaction list | describe`.
//!
//! Raw requests with the `kafka-protocol` crate through [`wire::round_trip`]:
//! librdkafka has no admin call for ListTransactions or DescribeTransactions.
//! `list` asks every broker (each coordinates its own share of the
//! transactional ids); `describe` finds the id's coordinator with
//! FindCoordinator (key type 1, TRANSACTION) and asks it.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::{Args, Subcommand};
use kafka_protocol::messages::{
    ApiVersionsRequest, DescribeTransactionsRequest, FindCoordinatorRequest,
    ListTransactionsRequest, TransactionalId,
};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::net::TcpStream;

use crate::client::{fetch_metadata, ConnectionArgs, REQUEST_TIMEOUT};
use crate::{table, wire};

/// FindCoordinator's key type for a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// Codes after which asking again (the coordinator found anew) may succeed.
const RETRIABLE_CODES: [i16; 3] = [
    14, // COORDINATOR_LOAD_IN_PROGRESS
    15, // COORDINATOR_NOT_AVAILABLE
    16, // NOT_COORDINATOR
];

#[derive(Debug, Args)]
pub struct TransactionArgs {
    /// Which brokers to talk to.
    #[command(flatten)]
    connection: ConnectionArgs,
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
// Errors

/// A Kafka error code in a response, kept typed for the retry loop.
#[derive(Debug)]
struct KafkaCode {
    /// What was asked.
    what: String,
    /// The error code the broker answered.
    code: i16,
}

impl std::fmt::Display for KafkaCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.what, error_name(self.code))
    }
}

impl std::error::Error for KafkaCode {}

/// `Ok(())` for code 0, else a [`KafkaCode`] error.
fn check(code: i16, what: impl FnOnce() -> String) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    Err(KafkaCode { what: what(), code }.into())
}

/// Kafka's own name for an error code (`TRANSACTIONAL_ID_NOT_FOUND (105)`).
fn error_name(code: i16) -> String {
    match kafka_protocol::error::ResponseError::try_from_code(code) {
        None => "NONE".to_string(),
        Some(kafka_protocol::error::ResponseError::Unknown(code)) => format!("error code {code}"),
        Some(error) => {
            let camel = error.to_string();
            let mut name = String::with_capacity(camel.len() + 8);
            for (index, character) in camel.chars().enumerate() {
                if character.is_ascii_uppercase() && index > 0 {
                    name.push('_');
                }
                name.push(character.to_ascii_uppercase());
            }
            format!("{name} ({code})")
        }
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the request timeout
/// has passed (a coordinator loading `__transaction_state` answers
/// COORDINATOR_LOAD_IN_PROGRESS for a while after the broker starts).
async fn retrying<T, F, Fut>(mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        match attempt().await {
            Err(error)
                if Instant::now() < deadline
                    && error
                        .downcast_ref::<KafkaCode>()
                        .is_some_and(|e| RETRIABLE_CODES.contains(&e.code)) =>
            {
                tracing::debug!(%error, "retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

// ---------------------------------------------------------------------------
// Connections

/// One connection to one broker, with the API versions it offers.
struct Session {
    /// `host:port`, for error messages.
    address: String,
    /// The socket; one request at a time.
    stream: TcpStream,
    /// The broker's version range per API key.
    versions: HashMap<i16, (i16, i16)>,
    /// The last request's correlation id.
    correlation_id: i32,
}

impl Session {
    async fn connect(address: &str) -> anyhow::Result<Session> {
        let connect = async {
            let mut stream = TcpStream::connect(address).await.context("connecting")?;
            let response = wire::round_trip(&mut stream, 0, 0, &ApiVersionsRequest::default())
                .await
                .context("ApiVersions")?;
            check(response.error_code, || "ApiVersions".to_string())?;
            let versions = response
                .api_keys
                .iter()
                .map(|k| (k.api_key, (k.min_version, k.max_version)))
                .collect();
            anyhow::Ok(Session {
                address: address.to_string(),
                stream,
                versions,
                correlation_id: 0,
            })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, connect).await {
            Ok(result) => result.with_context(|| format!("broker {address}")),
            Err(_) => bail!("broker {address}: timed out"),
        }
    }

    /// Connects to the first bootstrap broker that answers.
    async fn bootstrap(connection: &ConnectionArgs) -> anyhow::Result<Session> {
        let mut last_error = None;
        for address in connection
            .brokers
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
        {
            match Session::connect(address).await {
                Ok(session) => return Ok(session),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no brokers given")))
    }

    /// The newest version of `R` both sides speak, at most `ours_max`.
    fn version<R: Request>(&self, ours_max: i16) -> anyhow::Result<i16> {
        let name = kafka_protocol::messages::ApiKey::try_from(R::KEY)
            .map(|key| format!("{key:?}"))
            .unwrap_or_else(|_| format!("API {}", R::KEY));
        let Some(&(min, max)) = self.versions.get(&R::KEY) else {
            bail!("broker {} does not offer {name}", self.address);
        };
        let version = max.min(ours_max).min(R::VERSIONS.max);
        if version < min.max(R::VERSIONS.min) {
            bail!(
                "broker {} offers {name} v{min}-v{max}, this client speaks v{}-v{ours_max}",
                self.address,
                R::VERSIONS.min
            );
        }
        Ok(version)
    }

    /// Sends `request` at `version` and waits (bounded) for the response.
    async fn send<R: Request>(&mut self, version: i16, request: &R) -> anyhow::Result<R::Response> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        match tokio::time::timeout(
            REQUEST_TIMEOUT,
            wire::round_trip(&mut self.stream, correlation_id, version, request),
        )
        .await
        {
            Ok(result) => result.with_context(|| format!("broker {}", self.address)),
            Err(_) => bail!(
                "broker {}: no answer within {REQUEST_TIMEOUT:?}",
                self.address
            ),
        }
    }

    /// FindCoordinator (key type TRANSACTION) for `id`, then a connection
    /// to that broker.
    async fn coordinator(connection: &ConnectionArgs, id: &str) -> anyhow::Result<Session> {
        let mut session = Session::bootstrap(connection).await?;
        let version = session.version::<FindCoordinatorRequest>(6)?;
        if version < 1 {
            bail!(
                "broker {} offers only FindCoordinator v0, which has no transaction coordinator",
                session.address
            );
        }
        let key = StrBytes::from_string(id.to_string());
        let request = FindCoordinatorRequest::default().with_key_type(KEY_TYPE_TRANSACTION);
        let request = if version >= 4 {
            request.with_coordinator_keys(vec![key])
        } else {
            request.with_key(key)
        };
        let response = session.send(version, &request).await?;
        let what = || format!("finding the coordinator of transactional id {id}");
        let (host, port) = if version >= 4 {
            let Some(coordinator) = response.coordinators.first() else {
                bail!("{}: the broker returned no coordinator", what());
            };
            check(coordinator.error_code, what)?;
            (coordinator.host.to_string(), coordinator.port)
        } else {
            check(response.error_code, what)?;
            (response.host.to_string(), response.port)
        };
        let address = format!("{host}:{port}");
        if address == session.address {
            return Ok(session);
        }
        Session::connect(&address).await
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
    let mut session = Session::coordinator(connection, id).await?;
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
