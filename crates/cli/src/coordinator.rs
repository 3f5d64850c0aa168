//! A coordinator on the wire, for the CLI's raw requests (groups,
//! transactions): FindCoordinator, then one connection to the coordinator
//! with the API versions it offers; Kafka error codes kept typed so that a
//! loading or moved coordinator is retried rather than reported.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use kafka_protocol::messages::{ApiVersionsRequest, FindCoordinatorRequest};
use kafka_protocol::protocol::{Request, StrBytes};
use tokio::net::TcpStream;

use crate::client::{ConnectionArgs, REQUEST_TIMEOUT};
use crate::wire;

/// FindCoordinator's key type for a group.
pub(crate) const KEY_TYPE_GROUP: i8 = 0;
/// FindCoordinator's key type for a transactional id.
pub(crate) const KEY_TYPE_TRANSACTION: i8 = 1;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const COORDINATOR_NOT_AVAILABLE: i16 = 15;
const NOT_COORDINATOR: i16 = 16;

/// A Kafka error code in a response, kept typed so that the retry loop can
/// tell a moving or loading coordinator from a final answer.
#[derive(Debug)]
pub(crate) struct KafkaCode {
    /// What was asked (`describing group g`).
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
pub(crate) fn check(code: i16, what: impl FnOnce() -> String) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    Err(KafkaCode { what: what(), code }.into())
}

/// Kafka's own name for an error code (`NON_EMPTY_GROUP`), as its tools print it.
pub(crate) fn error_name(code: i16) -> String {
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

/// Codes after which asking the coordinator again (found anew) may succeed.
fn is_retriable(error: &anyhow::Error) -> bool {
    error.downcast_ref::<KafkaCode>().is_some_and(|e| {
        matches!(
            e.code,
            COORDINATOR_LOAD_IN_PROGRESS | COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR
        )
    })
}

/// Runs `attempt` until it succeeds, fails for good, or the request timeout
/// has passed (a coordinator that is loading its partition answers
/// COORDINATOR_LOAD_IN_PROGRESS for a while after the broker starts).
pub(crate) async fn retrying<T, F, Fut>(mut attempt: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    loop {
        match attempt().await {
            Err(error) if is_retriable(&error) && Instant::now() < deadline => {
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
pub(crate) struct Session {
    /// `host:port`, for error messages.
    address: String,
    /// The socket; one request at a time.
    stream: TcpStream,
    /// The broker's version range per API key.
    versions: HashMap<i16, (i16, i16)>,
    /// The next request's correlation id.
    correlation_id: i32,
}

impl Session {
    pub(crate) async fn connect(address: &str) -> anyhow::Result<Session> {
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
                correlation_id: 1,
            })
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, connect).await {
            Ok(result) => result.with_context(|| format!("broker {address}")),
            Err(_) => bail!("broker {address}: timed out"),
        }
    }

    /// Connects to the first bootstrap broker that answers.
    pub(crate) async fn bootstrap(connection: &ConnectionArgs) -> anyhow::Result<Session> {
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
    pub(crate) fn version<R: Request>(&self, ours_max: i16) -> anyhow::Result<i16> {
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
    pub(crate) async fn send<R: Request>(
        &mut self,
        version: i16,
        request: &R,
    ) -> anyhow::Result<R::Response> {
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

    /// FindCoordinator for `key` (`key_type` 0: a group, 1: a
    /// transactional id), then a connection to that broker.
    pub(crate) async fn coordinator(
        connection: &ConnectionArgs,
        key_type: i8,
        key: &str,
    ) -> anyhow::Result<Session> {
        let mut session = Session::bootstrap(connection).await?;
        let version = session.version::<FindCoordinatorRequest>(6)?;
        let kind = if key_type == KEY_TYPE_TRANSACTION {
            "transactional id"
        } else {
            "group"
        };
        if key_type != 0 && version < 1 {
            bail!(
                "broker {} offers only FindCoordinator v0, which finds group coordinators only",
                session.address
            );
        }
        let key_bytes = StrBytes::from_string(key.to_string());
        let request = FindCoordinatorRequest::default().with_key_type(key_type);
        let request = if version >= 4 {
            request.with_coordinator_keys(vec![key_bytes])
        } else {
            request.with_key(key_bytes)
        };
        let response = session.send(version, &request).await?;
        let what = || format!("finding the coordinator of {kind} {key}");
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_names() {
        assert_eq!(error_name(68), "NON_EMPTY_GROUP (68)");
        assert_eq!(error_name(69), "GROUP_ID_NOT_FOUND (69)");
        assert_eq!(error_name(3), "UNKNOWN_TOPIC_OR_PARTITION (3)");
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(9999), "error code 9999");
    }
}
