//! What every connection shares: the partition manager and the broker's identity.

use std::sync::{Arc, Mutex};

use crate::config::BrokerConfig;
use crate::fetch_session::FetchSessionCache;
use crate::groups::GroupCoordinator;
use crate::partitions::PartitionManager;
use crate::producer_ids::ProducerIdManager;
use crate::server::ConnectionLimits;
use crate::transactions::TransactionCoordinator;

pub struct BrokerState {
    pub node_id: i32,
    pub cluster_id: String,
    /// The host and port clients are told to connect to.
    pub advertised_host: String,
    pub advertised_port: i32,
    pub socket_request_max_bytes: usize,
    pub connection_limits: ConnectionLimits,
    pub partitions: PartitionManager,
    pub groups: Arc<GroupCoordinator>,
    pub producer_ids: ProducerIdManager,
    pub transactions: TransactionCoordinator,
    pub fetch_sessions: Mutex<FetchSessionCache>,
}

impl BrokerState {
    pub fn config(&self) -> &BrokerConfig {
        &self.partitions.broker
    }
}
