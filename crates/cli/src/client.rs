//! What every client subcommand shares: the `-b/--brokers` argument, the
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
