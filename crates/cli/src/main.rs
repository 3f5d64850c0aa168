//! The `sluice` binary: `serve` runs a broker; the other subcommands are Kafka
//! clients (librdkafka through the `rdkafka` crate) that talk to any broker.
//!
//! Output contract: results go to stdout, logs (tracing, `RUST_LOG`, default
//! `info`) and errors go to stderr. Every failure ends as one line
//! `error: …` and exit code 1 — never a backtrace.

mod bench;
mod client;
mod cluster;
mod consume;
mod coordinator;
mod dev;
mod format;
mod group;
mod produce;
mod serve;
mod table;
mod topic;
mod topic_admin;
mod transaction;
mod wire;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sluice: a Kafka-compatible event-streaming broker in one binary.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, propagate_version = true)]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker (single node, or a member of a cluster with --controller-voters).
    Serve(serve::ServeArgs),
    /// Run a local cluster of N nodes as child processes, for development.
    Dev(dev::DevArgs),
    /// Create, list, describe and delete topics.
    Topic(topic::TopicArgs),
    /// Produce one record per line of standard input.
    Produce(produce::ProduceArgs),
    /// Consume records and print them to standard output.
    Consume(consume::ConsumeArgs),
    /// List, describe, reset and delete consumer groups.
    Group(group::GroupArgs),
    /// List and describe transactions.
    Transaction(transaction::TransactionArgs),
    /// Information about the cluster.
    Cluster(cluster::ClusterArgs),
    /// Measure a Kafka-compatible broker: produce, consume and end-to-end load.
    Bench(bench::BenchArgs),
}

impl Command {
    /// The brokers a client command talks to; `None` for `serve`.
    fn connection(&self) -> Option<&client::ConnectionArgs> {
        match self {
            Command::Serve(_) | Command::Dev(_) => None,
            Command::Topic(args) => Some(&args.connection),
            Command::Produce(args) => Some(&args.connection),
            Command::Consume(args) => Some(&args.connection),
            Command::Group(args) => Some(&args.connection),
            Command::Transaction(args) => Some(&args.connection),
            Command::Cluster(args) => Some(&args.connection),
            Command::Bench(args) => Some(args.connection()),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    install_panic_hook();

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => return report(anyhow::Error::new(error).context("starting the runtime")),
    };
    let result = runtime.block_on(async move {
        if let Some(connection) = cli.command.connection() {
            connection.check_reachable().await?;
        }
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Dev(args) => dev::run(args).await,
            Command::Topic(args) => topic::run(args).await,
            Command::Produce(args) => produce::run(args).await,
            Command::Consume(args) => consume::run(args).await,
            Command::Group(args) => group::run(args).await,
            Command::Transaction(args) => transaction::run(args).await,
            Command::Cluster(args) => cluster::run(args).await,
            Command::Bench(args) => bench::run(args).await,
        }
    });
    // librdkafka handles and broker tasks may still hold runtime threads; do
    // not let a slow task delay the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(error),
    }
}

/// Prints the error chain on one line and picks the exit code.
fn report(error: anyhow::Error) -> ExitCode {
    eprintln!("error: {}", one_line(&error));
    // A broker's fatal error carries its own status (74: a failed fsync).
    match error.downcast_ref::<sluice_broker::FatalError>() {
        Some(fatal) => ExitCode::from(fatal.exit_code),
        None => ExitCode::FAILURE,
    }
}

/// The error and its causes joined by `: `, skipping a cause whose text the
/// previous message already contains (librdkafka's errors repeat their
/// source in their own message).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}

/// Logs go to stderr so that stdout carries only results (`listening on …`,
/// consumed records), which scripts parse.
fn init_tracing() {
    use std::io::IsTerminal as _;
    // openraft logs every election step at info; one line per lifecycle
    // event is what `sluice serve` promises, so it speaks only from warn up.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

/// A panic (a bug, here or in the broker) still ends in one `error:` line
/// rather than Rust's multi-line panic report.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "panic".to_string());
        let location = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        eprintln!(
            "error: internal error: {}{location}",
            message.replace('\n', " ")
        );
    }));
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// An error that repeats its source in its own message, as
    /// rdkafka's `KafkaError` does.
    #[derive(Debug)]
    struct Repeating(std::io::Error);

    impl std::fmt::Display for Repeating {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "fetch error: {}", self.0)
        }
    }

    impl std::error::Error for Repeating {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn error_lines() {
        let base = anyhow::anyhow!("Broker transport failure");
        let repeating = Repeating(std::io::Error::other("transport failure"));
        let cases = [
            (
                anyhow::Error::new(repeating).context("fetching metadata"),
                "fetching metadata: fetch error: transport failure",
            ),
            (
                base.context("fetching metadata"),
                "fetching metadata: Broker transport failure",
            ),
            (
                anyhow::anyhow!("x failed (Broker transport failure)").context("step"),
                "step: x failed (Broker transport failure)",
            ),
            (anyhow::anyhow!("two\nlines"), "two lines"),
        ];
        for (error, expected) in cases {
            assert_eq!(one_line(&error), expected);
        }
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
