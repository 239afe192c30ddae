//! `gregor start`: load the configuration, bind, serve until SIGTERM or Ctrl-C.

use std::path::PathBuf;

use anyhow::{Context, Result};
use gregor_broker::{Broker, BrokerConfig};
use tracing::info;

#[derive(clap::Args, Debug)]
pub struct StartArgs {
    /// A Kafka-style server.properties file.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Set one broker setting, overriding the file; repeatable
    /// (e.g. --set listeners=PLAINTEXT://127.0.0.1:0 --set log.dirs=/tmp/gregor).
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = crate::parse_key_value)]
    overrides: Vec<(String, String)>,
}

pub async fn run(args: StartArgs) -> Result<()> {
    // Validate everything before binding, so a typo fails fast and leaves nothing behind.
    let config = BrokerConfig::load(args.config.as_deref(), &args.overrides).context("invalid configuration")?;
    let shutdown = shutdown_signals()?;
    raise_open_files_limit();
    let broker = Broker::bind(config).await?;
    // Tests and scripts read the bound address (an ephemeral port) from this line.
    info!("Gregor broker listening on {}", broker.local_addr());
    broker.run(shutdown).await?;
    info!("Gregor broker stopped");
    Ok(())
}

/// Registers for SIGINT (Ctrl-C) and SIGTERM now, before the broker binds,
/// so a signal that arrives early still shuts it down cleanly; the returned
/// future completes on the first of them.
fn shutdown_signals() -> Result<impl Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => info!("interrupted; shutting down"),
            _ = terminate.recv() => info!("terminated; shutting down"),
        }
    })
}

/// Raises the soft limit on open files to the hard limit, as the JVM does
/// for Kafka (`-XX:+MaxFDLimit`): every partition keeps its active segment
/// open, so thousands of partitions need thousands of descriptors.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    info!(open_files = limit.rlim_cur, "open files limit");
}
