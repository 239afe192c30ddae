//! The Kafka protocol server.
//!
//! Owns: sockets, framing, request dispatch, one module per API family, and
//! the partition manager (leader epoch, high watermark, log end offset).
//! Never: writes segment files itself (that is `gregor-log`) or keeps cluster
//! metadata outside `gregor-metadata`.

pub mod api;
pub mod config;
pub mod dispatch;
pub mod errors;
pub mod fetch_session;
pub mod groups;
pub mod internal_topics;
pub mod log_cleaner;
pub mod partitions;
pub mod producer_ids;
pub mod recompress;
pub mod record_batch;
pub mod retention;
pub mod schema;
pub mod server;
pub mod state;
pub mod topic_config;
pub mod transactions;

use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;

pub use config::{BrokerConfig, ConfigError};
use fetch_session::FetchSessionCache;
use groups::GroupCoordinator;
use partitions::PartitionManager;
use state::BrokerState;
use transactions::TransactionCoordinator;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("cannot bind {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("log directory: {0}")]
    Storage(String),
}

/// Kafka's `max.incremental.fetch.session.cache.slots` default.
const FETCH_SESSION_SLOTS: usize = 1000;

/// A bound broker, ready to serve.
pub struct Broker {
    listener: TcpListener,
    state: Arc<BrokerState>,
}

impl Broker {
    /// Opens the log directory and metadata, and binds the listener.
    pub async fn bind(config: BrokerConfig) -> Result<Broker, BrokerError> {
        let address = config.listener;
        let listener = TcpListener::bind(address)
            .await
            .map_err(|source| BrokerError::Bind { address, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| BrokerError::Bind { address, source })?;
        let (advertised_host, advertised_port) = match &config.advertised_listener {
            // Port 0 asks for an ephemeral port: advertise the one we got.
            Some((host, port)) => (host.clone(), if *port == 0 { bound.port() } else { *port }),
            // Clients must be able to connect back: never advertise 0.0.0.0.
            None if bound.ip().is_unspecified() => ("127.0.0.1".to_string(), bound.port()),
            None => (bound.ip().to_string(), bound.port()),
        };
        let node_id = config.node_id;
        let socket_request_max_bytes = config.parse::<usize>("socket.request.max.bytes")?;
        let limits = server::ConnectionLimits {
            max_connections: config.parse::<usize>("max.connections")?.min(SEMAPHORE_MAX),
            max_connections_per_ip: config.parse::<usize>("max.connections.per.ip")?,
            idle_timeout: Duration::from_millis(config.parse::<u64>("connections.max.idle.ms")?),
            queued_max_requests: config
                .parse_at_least::<usize>("queued.max.requests", 1)?
                .min(SEMAPHORE_MAX),
        };
        let cluster_id = load_cluster_id(&config.log_dir, node_id)?;
        let groups = Arc::new(GroupCoordinator::new(&config)?);
        // An ended transaction's markers decide its offset commits.
        let settled_groups = Arc::clone(&groups);
        let transactions = TransactionCoordinator::new(
            &config,
            Box::new(move |producer_id, committed| settled_groups.complete_transaction(producer_id, committed)),
        )?;
        let (partitions, groups, transactions) = tokio::task::spawn_blocking(move || {
            let partitions = PartitionManager::open(config)?;
            groups.load(&partitions)?;
            // After the groups: completing a prepared transaction decides the offsets it committed.
            transactions.load(&partitions)?;
            Ok::<_, partitions::TopicError>((partitions, groups, transactions))
        })
        .await
        .map_err(|e| BrokerError::Storage(e.to_string()))?
        .map_err(|e| BrokerError::Storage(e.to_string()))?;
        let state = BrokerState {
            node_id,
            cluster_id,
            advertised_host,
            advertised_port: advertised_port as i32,
            socket_request_max_bytes,
            connection_limits: limits,
            partitions,
            groups,
            producer_ids: Default::default(),
            transactions,
            fetch_sessions: Mutex::new(FetchSessionCache::new(FETCH_SESSION_SLOTS)),
        };
        Ok(Broker {
            listener,
            state: Arc::new(state),
        })
    }

    /// The address the listener is bound to (the real port when configured with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound listener has an address")
    }

    /// The state every connection shares, for driving `dispatch::handle`
    /// without a socket (the fuzz targets).
    pub fn state(&self) -> Arc<BrokerState> {
        self.state.clone()
    }

    /// Serves clients until `shutdown` completes, then shuts down cleanly:
    /// stops accepting, closes connections, flushes every log, writes
    /// checkpoints and the clean-shutdown marker.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), BrokerError> {
        let (stop, stopped) = watch::channel(false);
        let server = tokio::spawn(server::serve(self.listener, self.state.clone(), stopped.clone()));
        let retention_interval =
            Duration::from_millis(self.state.config().parse::<u64>("log.retention.check.interval.ms")?);
        let retention = tokio::spawn(retention::run(self.state.clone(), retention_interval, stopped.clone()));
        let cleaner = tokio::spawn(log_cleaner::run(self.state.clone(), stopped.clone()));
        let timers = tokio::spawn(group_timers(self.state.clone(), stopped));
        shutdown.await;
        tracing::info!("shutting down");
        let _ = stop.send(true);
        let _ = server.await;
        let _ = timers.await;
        let _ = retention.await;
        let _ = cleaner.await;
        // Groups that settled since the last timer tick keep their final state.
        api::groups::persist_settled_groups(&self.state).await;
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.partitions.close())
            .await
            .map_err(|e| BrokerError::Storage(e.to_string()))?;
        tracing::info!("shut down cleanly");
        Ok(())
    }
}

/// How often group sessions and rebalance deadlines are checked.
const GROUP_TIMER_INTERVAL: Duration = Duration::from_millis(100);

/// Expires group members and overdue rebalances, writes settled groups'
/// metadata, and checks transactions (timeouts, markers to write again).
async fn group_timers(state: Arc<BrokerState>, mut stopped: watch::Receiver<bool>) {
    let mut interval = tokio::time::interval(GROUP_TIMER_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut transaction_checks = tokio::time::interval(state.transactions.cleanup_interval);
    transaction_checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => api::groups::persist_settled_groups(&state).await,
            _ = transaction_checks.tick() => api::transactions::check_transactions(&state).await,
            _ = stopped.changed() => return,
        }
    }
}

const SEMAPHORE_MAX: usize = tokio::sync::Semaphore::MAX_PERMITS;

/// The cluster id, kept in `meta.properties` like Kafka's (created on first start).
fn load_cluster_id(log_dir: &Path, node_id: i32) -> Result<String, BrokerError> {
    let path = log_dir.join("meta.properties");
    let storage = |e: std::io::Error| BrokerError::Storage(format!("{}: {e}", path.display()));
    if let Ok(text) = std::fs::read_to_string(&path)
        && let Some(id) = text.lines().find_map(|line| line.strip_prefix("cluster.id="))
    {
        return Ok(id.trim().to_string());
    }
    std::fs::create_dir_all(log_dir).map_err(storage)?;
    // Kafka's cluster ids are URL-safe base64 of a UUID, 22 characters.
    let id = base64_url(uuid::Uuid::new_v4().as_bytes());
    let temporary = log_dir.join("meta.properties.tmp");
    std::fs::write(&temporary, format!("version=1\ncluster.id={id}\nnode.id={node_id}\n")).map_err(storage)?;
    std::fs::rename(&temporary, &path).map_err(storage)?;
    Ok(id)
}

fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (*b as u32) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}
