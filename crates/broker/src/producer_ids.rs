//! Producer id allocation for InitProducerId: ids come from blocks reserved
//! durably in the metadata log, so a restart never hands out an id twice.

use std::sync::Mutex;

use crate::partitions::{PartitionManager, TopicError};

/// Ids reserved per metadata write (Kafka's controller hands out blocks of 1000).
const BLOCK_SIZE: i64 = 1000;

#[derive(Default)]
pub struct ProducerIdManager {
    /// The reserved range not yet handed out: [next, end).
    block: Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    /// The next unused producer id; reserves a new block when the current one is spent.
    pub fn next_id(&self, partitions: &PartitionManager) -> Result<i64, TopicError> {
        let mut block = self.block.lock().unwrap_or_else(|e| e.into_inner());
        if block.0 >= block.1 {
            *block = partitions.allocate_producer_ids(BLOCK_SIZE)?;
        }
        let id = block.0;
        block.0 += 1;
        Ok(id)
    }
}
