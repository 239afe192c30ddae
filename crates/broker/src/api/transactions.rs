//! Producer identity: InitProducerId for idempotent producers, and
//! DescribeProducers. Transactional ids (the transaction coordinator) come later.

use std::sync::Arc;

use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeProducersResponse, InitProducerIdRequest, InitProducerIdResponse, ProducerId,
};

use super::blocking;
use crate::errors::{COORDINATOR_NOT_AVAILABLE, UNKNOWN_TOPIC_OR_PARTITION};
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

/// DescribeProducers: the idempotent producers each partition's log tracks.
pub async fn describe_producers(
    state: &Arc<BrokerState>,
    request: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let worker = state.clone();
    let topics = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partition_indexes
                    .iter()
                    .map(|index| {
                        let answer = PartitionResponse::default().with_partition_index(*index);
                        let Some(partition) = worker.partitions.partition(&topic.name, *index) else {
                            return answer.with_error_code(UNKNOWN_TOPIC_OR_PARTITION);
                        };
                        let producers = partition
                            .log
                            .producer_states()
                            .into_iter()
                            .map(|p| {
                                ProducerState::default()
                                    .with_producer_id(ProducerId(p.producer_id))
                                    .with_producer_epoch(p.producer_epoch as i32)
                                    .with_last_sequence(p.last_sequence)
                                    .with_last_timestamp(p.last_timestamp)
                                    .with_coordinator_epoch(p.coordinator_epoch)
                                    .with_current_txn_start_offset(p.current_txn_start_offset)
                            })
                            .collect();
                        answer.with_active_producers(producers)
                    })
                    .collect();
                TopicResponse::default()
                    .with_name(topic.name)
                    .with_partitions(partitions)
            })
            .collect()
    })
    .await;
    DescribeProducersResponse::default().with_topics(topics)
}
