//! The `gregor` binary: runs the broker (`gregor start`) and, through a real
//! Kafka client (librdkafka), administers topics and configs and produces and
//! consumes records on any Kafka cluster.
//!
//! Errors end the process with one readable line on stderr and a non-zero
//! exit code; logs go to stderr through `tracing` (filter with `RUST_LOG`).

mod client;
mod config_admin;
mod config_cmd;
mod consume;
mod datetime;
mod group;
mod perf;
mod produce;
mod reset_offsets;
mod start;
mod topic;
mod txn;
mod txn_wire;

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "gregor",
    version,
    about = "A Kafka-compatible event streaming broker in one binary"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a broker.
    Start(start::StartArgs),
    /// Create, list, describe, alter and delete topics.
    Topic(topic::TopicArgs),
    /// Write lines from standard input to a topic, one record per line.
    Produce(produce::ProduceArgs),
    /// Print records of a topic to standard output, one per line.
    Consume(consume::ConsumeArgs),
    /// Describe and alter topic or broker configs.
    Config(config_cmd::ConfigArgs),
    /// List, describe and delete consumer groups; reset their committed offsets.
    Group(group::GroupArgs),
    /// Measure produce and consume throughput and latency of any Kafka cluster.
    Perf(perf::PerfArgs),
    /// List and describe transactions.
    Txn(txn::TxnArgs),
    /// Describe the idempotent and transactional producers of a topic.
    Producers(txn::ProducersArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Start(_)) {
        exit_quietly_on_closed_output();
    }
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => return report(anyhow::Error::new(error).context("cannot start the async runtime")),
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Start(args) => start::run(args).await,
            Command::Topic(args) => topic::run(args).await,
            Command::Produce(args) => produce::run(args).await,
            Command::Consume(args) => consume::run(args).await,
            Command::Config(args) => config_cmd::run(args).await,
            Command::Group(args) => group::run(args).await,
            Command::Perf(args) => perf::run(args).await,
            Command::Txn(args) => txn::run(args).await,
            Command::Producers(args) => txn::run_producers(args).await,
        }
    });
    // Client threads of librdkafka may still be winding down; do not wait on them.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => report(error),
    }
}

/// Client commands end quietly when the reader of their output goes away
/// (`gregor consume ... | head`), as Unix tools do: Rust ignores SIGPIPE,
/// which turns that into a panic on the next write. The broker keeps
/// ignoring it, and sockets are written with MSG_NOSIGNAL regardless.
fn exit_quietly_on_closed_output() {
    // SAFETY: restoring a signal's default disposition at start, before any
    // thread exists, has no preconditions.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Logs to stderr so that stdout carries only command output (records,
/// topic lists), which scripts pipe onwards. librdkafka's own chatter
/// (reconnect attempts and the like) is off unless asked for with
/// `RUST_LOG=rdkafka=debug,librdkafka=debug`; its errors surface as our
/// error line.
fn init_tracing() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,librdkafka=off,rdkafka=off"));
    // Colour only on a terminal: scripts grep the log lines.
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .with_env_filter(filter)
        .init();
}

/// Parses `key=value` (the value may itself contain `=`), as taken by
/// `--set`, `--config` and `-X`.
pub(crate) fn parse_key_value(text: &str) -> anyhow::Result<(String, String)> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => Ok((key.trim().to_string(), value.to_string())),
        _ => anyhow::bail!("expected KEY=VALUE, found {text:?}"),
    }
}

/// One line on stderr: the error and its causes, joined by ": ".
fn report(error: anyhow::Error) -> ExitCode {
    eprintln!("error: {error:#}");
    ExitCode::FAILURE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_splits_at_the_first_equals_sign() {
        assert_eq!(parse_key_value("a=b=c").unwrap(), ("a".to_string(), "b=c".to_string()));
        assert_eq!(
            parse_key_value("retention.ms=").unwrap(),
            ("retention.ms".to_string(), String::new())
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=value").is_err());
    }

    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
