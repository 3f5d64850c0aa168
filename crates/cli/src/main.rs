//! The `sluice` binary: `serve` runs a broker; the other subcommands are Kafka
//! clients (librdkafka through the `rdkafka` crate) that talk to any broker.
//!
//! Output contract: results go to stdout, logs (tracing, `RUST_LOG`, default
//! `info`) and errors go to stderr. Every failure ends as one line
//! `error: …` and exit code 1 — never a backtrace.

mod client;
mod cluster;
mod consume;
mod format;
mod produce;
mod serve;
mod table;
mod topic;
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
    /// Create, list, describe and delete topics.
    Topic(topic::TopicArgs),
    /// Produce one record per line of standard input.
    Produce(produce::ProduceArgs),
    /// Consume records and print them to standard output.
    Consume(consume::ConsumeArgs),
    /// Information about the cluster.
    Cluster(cluster::ClusterArgs),
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
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Topic(args) => topic::run(args).await,
            Command::Produce(args) => produce::run(args).await,
            Command::Consume(args) => consume::run(args).await,
            Command::Cluster(args) => cluster::run(args).await,
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
    let message = format!("{error:#}").replace('\n', " ");
    eprintln!("error: {message}");
    ExitCode::FAILURE
}

/// Logs go to stderr so that stdout carries only results (`listening on …`,
/// consumed records), which scripts parse.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
