//! The Kafka protocol server.
//!
//! Owns: sockets, framing, request dispatch, one module per API family, and
//! the partition manager (leader epoch, high watermark, log end offset).
//! Never: writes segment files itself (that is `gregor-log`) or decides
//! cluster metadata outside `gregor-metadata`.

pub mod config;

use std::future::Future;
use std::net::SocketAddr;

pub use config::{BrokerConfig, ConfigError};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot bind {address}: {source}")]
    Bind { address: SocketAddr, source: std::io::Error },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("log directory: {0}")]
    Storage(String),
}

/// A bound broker, ready to serve.
pub struct Broker {
    local_addr: SocketAddr,
}

impl Broker {
    /// Opens the log directory and metadata, and binds the listener.
    pub async fn bind(config: BrokerConfig) -> Result<Broker, BrokerError> {
        let _ = config;
        todo!()
    }

    /// The address the listener is bound to (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves clients until `shutdown` completes, then shuts down cleanly:
    /// flushes every log, writes checkpoints and the clean-shutdown marker.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), BrokerError> {
        let _ = shutdown;
        todo!()
    }
}
