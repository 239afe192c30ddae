//! Producer identity: InitProducerId for idempotent producers. Transactional
//! ids (the transaction coordinator) come later.

use std::sync::Arc;

use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::blocking;
use crate::errors::COORDINATOR_NOT_AVAILABLE;
use crate::state::BrokerState;

pub async fn init_producer_id(state: &Arc<BrokerState>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let failed = |code| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if request.transactional_id.as_ref().is_some_and(|id| !id.is_empty()) {
        tracing::warn!("refusing InitProducerId for a transactional id: transactions are not supported yet");
        return failed(COORDINATOR_NOT_AVAILABLE);
    }
    // Without a transactional id Kafka always hands out a fresh producer id
    // at epoch 0, even when the producer sends its old id (KIP-360 bumps).
    let worker = state.clone();
    match blocking(move || worker.producer_ids.next_id(&worker.partitions)).await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(error) => {
            tracing::error!(%error, "cannot reserve producer ids");
            failed(error.code())
        }
    }
}
