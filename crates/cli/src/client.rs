//! What every client subcommand shares: the `-b/--brokers` argument (checked
//! up front: its syntax, and that some broker accepts a connection), the
//! librdkafka client context, and bounded timeouts.

use std::time::Duration;

use anyhow::Context as _;
use clap::Args;
use rdkafka::admin::AdminClient;
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;

/// How long a metadata or admin request may take before the command fails.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the reachability check waits for one bootstrap address to
/// accept a TCP connection (name lookup included). A live broker's kernel
/// accepts at once however busy the broker is, so this only bounds dead
/// or filtered addresses.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The brokers a client subcommand bootstraps from.
#[derive(Clone, Debug, Args)]
pub struct ConnectionArgs {
    /// Bootstrap brokers, HOST:PORT[,HOST:PORT…].
    #[arg(
        short = 'b',
        long = "brokers",
        env = "SLUICE_BROKERS",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub brokers: String,
}

impl ConnectionArgs {
    /// Fails at once, with one line naming the address, when `-b` is not
    /// HOST:PORT[,HOST:PORT…] or no address in it accepts a TCP connection
    /// within [`CONNECT_TIMEOUT`]. Without it librdkafka retries until its
    /// own timeouts (10 to 30 s) and reports only "BrokerTransportFailure".
    pub async fn check_reachable(&self) -> anyhow::Result<()> {
        let addresses = parse_brokers(&self.brokers).map_err(anyhow::Error::msg)?;
        let mut failures = Vec::new();
        for address in &addresses {
            match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(address))
                .await
            {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(error)) => failures.push(format!("{address} ({})", describe_io(&error))),
                Err(_) => failures.push(format!(
                    "{address} (no answer within {} s)",
                    CONNECT_TIMEOUT.as_secs()
                )),
            }
        }
        anyhow::bail!("cannot reach a broker at {}", failures.join(", "))
    }

    /// A librdkafka configuration with the bootstrap list and the CLI's
    /// bounded timeouts; callers add what their client kind needs.
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("client.id", "sluice-cli")
            .set("socket.timeout.ms", REQUEST_TIMEOUT.as_millis().to_string())
            .set_log_level(RDKafkaLogLevel::Warning);
        config
    }

    /// An admin client (topic create/delete, describe configs).
    pub fn admin(&self) -> anyhow::Result<AdminClient<CliContext>> {
        self.client_config()
            .create_with_context(CliContext)
            .context("creating the admin client")
    }

    /// A consumer used only for metadata and watermark queries (blocking
    /// calls, made through `blocking`).
    pub fn metadata_client(&self) -> anyhow::Result<BaseConsumer<CliContext>> {
        self.client_config()
            .set("enable.auto.commit", "false")
            .set("allow.auto.create.topics", "false")
            .create_with_context(CliContext)
            .context("creating the metadata client")
    }
}

/// Fetches cluster metadata (all topics, or one) with the CLI's timeout.
pub async fn fetch_metadata<K: Consumer<CliContext>>(
    client: &K,
    topic: Option<&str>,
    brokers: &str,
) -> anyhow::Result<Metadata> {
    blocking(|| {
        client
            .fetch_metadata(topic, REQUEST_TIMEOUT)
            .with_context(|| format!("fetching metadata from {brokers}"))
    })
}

/// Runs a blocking librdkafka call without stalling the other runtime
/// workers (the runtime is multi-threaded).
pub fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Routes librdkafka's own log lines and global errors into `tracing` at
/// debug level: the command reports the failure that matters once, as its
/// `error:` line, instead of librdkafka repeating connection errors.
#[derive(Clone, Copy, Debug, Default)]
pub struct CliContext;

impl ClientContext for CliContext {
    fn log(&self, level: RDKafkaLogLevel, facility: &str, message: &str) {
        tracing::debug!(target: "librdkafka", ?level, facility, "{message}");
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", %error, "{reason}");
    }
}

impl ConsumerContext for CliContext {}

/// The addresses of a `-b` list, HOST:PORT[,HOST:PORT…] (an IPv6 host in
/// brackets); empty entries are skipped, as librdkafka does.
pub fn parse_brokers(text: &str) -> Result<Vec<String>, String> {
    let bad =
        |entry: &str, why: &str| format!("bad broker address {entry:?} in -b/--brokers: {why}");
    let mut addresses = Vec::new();
    for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((host, port)) = entry.rsplit_once(':') else {
            return Err(bad(entry, "expected HOST:PORT"));
        };
        let bracketed = host.starts_with('[') && host.ends_with(']') && host.len() > 2;
        if host.is_empty() || (host.contains(':') && !bracketed) {
            return Err(bad(entry, "expected HOST:PORT"));
        }
        match port.parse::<u16>() {
            Ok(port) if port > 0 => addresses.push(entry.to_string()),
            _ => return Err(bad(entry, "the port must be a number from 1 to 65535")),
        }
    }
    if addresses.is_empty() {
        return Err(format!("no broker address in -b/--brokers {text:?}"));
    }
    Ok(addresses)
}

/// An I/O error as a few lowercase words ("connection refused"), without
/// Rust's "(os error N)".
fn describe_io(error: &std::io::Error) -> String {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused".to_string(),
        ErrorKind::ConnectionReset => "connection reset".to_string(),
        ErrorKind::TimedOut => "timed out".to_string(),
        ErrorKind::HostUnreachable => "host unreachable".to_string(),
        ErrorKind::NetworkUnreachable => "network unreachable".to_string(),
        ErrorKind::AddrNotAvailable => "address not available".to_string(),
        _ => error.to_string(),
    }
}

/// Splits a `KEY=VALUE` argument.
pub fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_lists() {
        let cases: &[(&str, Result<&[&str], &str>)] = &[
            ("127.0.0.1:9092", Ok(&["127.0.0.1:9092"])),
            ("a:1, b:2", Ok(&["a:1", "b:2"])),
            ("a:1,,b:2,", Ok(&["a:1", "b:2"])),
            ("[::1]:9092", Ok(&["[::1]:9092"])),
            ("localhost:65535", Ok(&["localhost:65535"])),
            (
                "nohostport",
                Err("\"nohostport\" in -b/--brokers: expected HOST:PORT"),
            ),
            (
                ":9092",
                Err("\":9092\" in -b/--brokers: expected HOST:PORT"),
            ),
            (
                "::1:9092",
                Err("\"::1:9092\" in -b/--brokers: expected HOST:PORT"),
            ),
            ("a:1,b", Err("\"b\" in -b/--brokers: expected HOST:PORT")),
            ("host:", Err("\"host:\" in -b/--brokers: the port must be")),
            (
                "host:http",
                Err("\"host:http\" in -b/--brokers: the port must be"),
            ),
            (
                "host:0",
                Err("\"host:0\" in -b/--brokers: the port must be"),
            ),
            (
                "host:70000",
                Err("\"host:70000\" in -b/--brokers: the port must be"),
            ),
            ("", Err("no broker address")),
            (" , ", Err("no broker address")),
        ];
        for (input, expected) in cases {
            match (parse_brokers(input), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "input {input:?}"),
                (Err(got), Err(want)) => assert!(got.contains(want), "input {input:?}: {got}"),
                (got, _) => panic!("input {input:?}: got {got:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn key_value_arguments() {
        let cases: &[(&str, Option<(&str, &str)>)] = &[
            ("a=b", Some(("a", "b"))),
            ("retention.ms=1000", Some(("retention.ms", "1000"))),
            ("a=b=c", Some(("a", "b=c"))),
            ("a=", Some(("a", ""))),
            (" a = b ", Some(("a", "b"))),
            ("=b", None),
            ("ab", None),
        ];
        for (input, expected) in cases {
            let got = parse_key_value(input).ok();
            let expected = expected.map(|(k, v)| (k.to_string(), v.to_string()));
            assert_eq!(got, expected, "input {input:?}");
        }
    }
}
