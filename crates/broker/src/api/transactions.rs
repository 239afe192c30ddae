//! Producers and transactions: InitProducerId, AddPartitionsToTxn,
//! AddOffsetsToTxn, TxnOffsetCommit, EndTxn, DescribeTransactions,
//! ListTransactions and DescribeProducers.

use std::sync::Arc;

use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::describe_producers_response::{PartitionResponse, ProducerState, TopicResponse};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse,
    DescribeProducersRequest, DescribeProducersResponse, DescribeTransactionsRequest, DescribeTransactionsResponse,
    EndTxnRequest, EndTxnResponse, InitProducerIdRequest, InitProducerIdResponse, ListTransactionsRequest,
    ListTransactionsResponse, ProducerId, TopicName, TransactionalId, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
    describe_transactions_response, list_transactions_response,
};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::oneshot;

use super::blocking;
use crate::errors::*;
use crate::groups::offsets_topic::{CommittedOffset, OFFSETS_TOPIC, OffsetsRecord};
use crate::internal_topics;
use crate::state::BrokerState;
use crate::transactions::Outcome;

pub async fn init_producer_id(state: &Arc<BrokerState>, request: InitProducerIdRequest) -> InitProducerIdResponse {
    let failed = |code| {
        InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    if let Some(id) = request.transactional_id.filter(|id| !id.is_empty()) {
        let worker = state.clone();
        let timeout_ms = request.transaction_timeout_ms;
        let result = blocking(move || {
            worker
                .transactions
                .init_producer_id(&worker.partitions, &worker.producer_ids, &id, timeout_ms)
        })
        .await;
        return match result {
            Ok((producer_id, epoch)) => InitProducerIdResponse::default()
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(epoch),
            Err(code) => failed(code),
        };
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

fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

/// One transaction's AddPartitionsToTxn: every partition gets the same code,
/// except unknown ones (UNKNOWN_TOPIC_OR_PARTITION, the rest OPERATION_NOT_ATTEMPTED).
async fn add_one(
    state: &Arc<BrokerState>,
    id: &TransactionalId,
    producer_id: i64,
    epoch: i16,
    topics: Vec<(TopicName, Vec<i32>)>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let unknown: Vec<(TopicName, i32)> = topics
        .iter()
        .flat_map(|(topic, partitions)| partitions.iter().map(move |p| (topic.clone(), *p)))
        .filter(|(topic, p)| state.partitions.partition(topic, *p).is_none())
        .collect();
    let code = if !unknown.is_empty() {
        OPERATION_NOT_ATTEMPTED
    } else {
        let worker = state.clone();
        let id = id.to_string();
        let added: Vec<(String, i32)> = topics
            .iter()
            .flat_map(|(topic, partitions)| partitions.iter().map(move |p| (topic.to_string(), *p)))
            .collect();
        match blocking(move || {
            worker
                .transactions
                .add_partitions(&worker.partitions, &id, producer_id, epoch, &added)
        })
        .await
        {
            Ok(()) => NONE,
            Err(code) => code,
        }
    };
    topics
        .into_iter()
        .map(|(topic, partitions)| {
            let results = partitions
                .into_iter()
                .map(|p| {
                    let code = if unknown.contains(&(topic.clone(), p)) {
                        UNKNOWN_TOPIC_OR_PARTITION
                    } else {
                        code
                    };
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(p)
                        .with_partition_error_code(code)
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(topic)
                .with_results_by_partition(results)
        })
        .collect()
}

pub async fn add_partitions_to_txn(
    state: &Arc<BrokerState>,
    request: AddPartitionsToTxnRequest,
    version: i16,
) -> AddPartitionsToTxnResponse {
    if version <= 3 {
        let topics = request
            .v3_and_below_topics
            .into_iter()
            .map(|t| (t.name, t.partitions))
            .collect();
        let results = add_one(
            state,
            &request.v3_and_below_transactional_id,
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            topics,
        )
        .await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    // v4+ (KIP-890) batches transactions; a verify-only entry checks without adding.
    let mut results = Vec::new();
    for transaction in request.transactions {
        let topics: Vec<(TopicName, Vec<i32>)> =
            transaction.topics.into_iter().map(|t| (t.name, t.partitions)).collect();
        let topic_results = if transaction.verify_only {
            topics
                .into_iter()
                .map(|(topic, partitions)| {
                    let results = partitions
                        .into_iter()
                        .map(|p| {
                            let added = state.transactions.verify(
                                transaction.producer_id.0,
                                transaction.producer_epoch,
                                &topic,
                                p,
                            );
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(if added { NONE } else { INVALID_TXN_STATE })
                        })
                        .collect();
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(topic)
                        .with_results_by_partition(results)
                })
                .collect()
        } else {
            add_one(
                state,
                &transaction.transactional_id,
                transaction.producer_id.0,
                transaction.producer_epoch,
                topics,
            )
            .await
        };
        results.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(transaction.transactional_id)
                .with_topic_results(topic_results),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(results)
}

pub async fn add_offsets_to_txn(state: &Arc<BrokerState>, request: AddOffsetsToTxnRequest) -> AddOffsetsToTxnResponse {
    let worker = state.clone();
    let result = blocking(move || {
        let count = worker.groups.offsets_partitions;
        internal_topics::ensure(&worker.partitions, OFFSETS_TOPIC, count).map_err(|e| e.code())?;
        let partition = internal_topics::partition_for(&request.group_id, count);
        let added = [(OFFSETS_TOPIC.to_string(), partition)];
        worker.transactions.add_partitions(
            &worker.partitions,
            &request.transactional_id,
            request.producer_id.0,
            request.producer_epoch,
            &added,
        )
    })
    .await;
    AddOffsetsToTxnResponse::default().with_error_code(result.err().unwrap_or(NONE))
}

/// TxnOffsetCommit: the offsets are written now, inside the producer's
/// transaction, and count for the group once its commit marker is written.
pub async fn txn_offset_commit(state: &Arc<BrokerState>, request: TxnOffsetCommitRequest) -> TxnOffsetCommitResponse {
    let group = request.group_id.to_string();
    let producer = (request.producer_id.0, request.producer_epoch);
    let count = state.groups.offsets_partitions;
    let offsets_partition = (OFFSETS_TOPIC.to_string(), internal_topics::partition_for(&group, count));
    let group_error = {
        let groups = state.groups.groups();
        match groups.get(&group) {
            // v3+ sends the member's generation; only a group's current members may commit.
            Some(existing) if request.generation_id >= 0 => existing.validate_commit(
                &request.member_id,
                request.group_instance_id.as_deref(),
                request.generation_id,
            ),
            _ => NONE,
        }
    };
    let group_error = if group_error != NONE {
        group_error
    } else if !state
        .transactions
        .verify(producer.0, producer.1, &offsets_partition.0, offsets_partition.1)
    {
        // AddOffsetsToTxn must come first.
        INVALID_TXN_STATE
    } else {
        NONE
    };
    let now = crate::api::now_ms();
    let mut pending = Vec::new();
    let mut answers = Vec::new();
    for topic in request.topics {
        let mut partitions = Vec::new();
        for partition in topic.partitions {
            let exists = state
                .partitions
                .partition(&topic.name, partition.partition_index)
                .is_some();
            let metadata = partition.committed_metadata.map(|m| m.to_string()).unwrap_or_default();
            let code = match (group_error, exists) {
                (NONE, false) => UNKNOWN_TOPIC_OR_PARTITION,
                (NONE, true) if metadata.len() > state.groups.metadata_max_bytes => OFFSET_METADATA_TOO_LARGE,
                (NONE, true) => {
                    let value = CommittedOffset {
                        offset: partition.committed_offset,
                        leader_epoch: partition.committed_leader_epoch,
                        metadata,
                        commit_timestamp_ms: now,
                    };
                    pending.push((
                        group.clone(),
                        (topic.name.to_string(), partition.partition_index),
                        value,
                    ));
                    NONE
                }
                (code, _) => code,
            };
            partitions.push((partition.partition_index, code));
        }
        answers.push((topic.name, partitions));
    }
    let write_error = if pending.is_empty() {
        NONE
    } else {
        let records: Vec<_> = pending
            .iter()
            .map(|(group, (topic, partition), value)| {
                crate::groups::offsets_topic::encode(&OffsetsRecord::Offset {
                    group: group.clone(),
                    topic: topic.clone(),
                    partition: *partition,
                    value: Some(value.clone()),
                })
            })
            .collect();
        let worker = state.clone();
        let key = group.clone();
        match blocking(move || {
            internal_topics::append(&worker.partitions, OFFSETS_TOPIC, count, &key, &records, Some(producer))
        })
        .await
        {
            Ok(_) => {
                state.groups.add_pending_txn_offsets(producer.0, pending);
                NONE
            }
            Err(code) => code,
        }
    };
    let topics = answers
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(p, code)| {
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(if code == NONE { write_error } else { code })
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

pub async fn end_txn(state: &Arc<BrokerState>, request: EndTxnRequest) -> EndTxnResponse {
    let outcome = if request.committed {
        Outcome::Commit
    } else {
        Outcome::Abort
    };
    let producer_id = request.producer_id.0;
    let epoch = request.producer_epoch;
    let id = request.transactional_id.to_string();
    // The answer comes once the decision is durable; the markers are
    // written after it on the same blocking thread.
    let (decided, answer) = oneshot::channel();
    let worker = state.clone();
    tokio::task::spawn_blocking(move || {
        worker
            .transactions
            .end_transaction(&worker.partitions, &id, producer_id, epoch, outcome, |result| {
                let _ = decided.send(result);
            });
    });
    let result = answer.await.unwrap_or(Err(COORDINATOR_NOT_AVAILABLE));
    EndTxnResponse::default()
        .with_error_code(result.err().unwrap_or(NONE))
        .with_producer_id(request.producer_id)
        .with_producer_epoch(request.producer_epoch)
}

/// Every `transaction.abort.timed.out.transaction.cleanup.interval.ms`:
/// aborts timed-out transactions and completes any whose markers failed;
/// every `transaction.remove.expired.transaction.cleanup.interval.ms` it
/// also removes transactional ids past `transactional.id.expiration.ms`.
pub async fn check_transactions(state: &Arc<BrokerState>) {
    let worker = state.clone();
    blocking(move || worker.transactions.check_transactions(&worker.partitions)).await;
}

pub fn describe_transactions(
    state: &BrokerState,
    request: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let all = state.transactions.snapshot();
    let states = request
        .transactional_ids
        .into_iter()
        .map(|id| {
            let Some((_, record)) = all.iter().find(|(known, _)| known.as_str() == id.as_str()) else {
                return describe_transactions_response::TransactionState::default()
                    .with_transactional_id(id)
                    .with_error_code(TRANSACTIONAL_ID_NOT_FOUND);
            };
            let mut topics: Vec<describe_transactions_response::TopicData> = Vec::new();
            for (topic, partition) in &record.partitions {
                match topics.last_mut() {
                    Some(last) if last.topic.as_str() == topic => last.partitions.push(*partition),
                    _ => topics.push(
                        describe_transactions_response::TopicData::default()
                            .with_topic(TopicName(text(topic.clone())))
                            .with_partitions(vec![*partition]),
                    ),
                }
            }
            describe_transactions_response::TransactionState::default()
                .with_transactional_id(id)
                .with_transaction_state(text(record.state.name()))
                .with_transaction_timeout_ms(record.timeout_ms)
                .with_transaction_start_time_ms(record.start_ms)
                .with_producer_id(ProducerId(record.producer_id))
                .with_producer_epoch(record.producer_epoch)
                .with_topics(topics)
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

pub fn list_transactions(state: &BrokerState, request: ListTransactionsRequest) -> ListTransactionsResponse {
    let now = crate::api::now_ms();
    let listed = state
        .transactions
        .snapshot()
        .into_iter()
        .filter(|(_, r)| {
            request.state_filters.is_empty() || request.state_filters.iter().any(|s| s.as_str() == r.state.name())
        })
        .filter(|(_, r)| {
            request.producer_id_filters.is_empty() || request.producer_id_filters.iter().any(|p| p.0 == r.producer_id)
        })
        // v1 (KIP-994): only transactions running longer than the duration filter.
        .filter(|(_, r)| request.duration_filter < 0 || (r.start_ms >= 0 && now - r.start_ms > request.duration_filter))
        .map(|(id, r)| {
            list_transactions_response::TransactionState::default()
                .with_transactional_id(TransactionalId(text(id)))
                .with_producer_id(ProducerId(r.producer_id))
                .with_transaction_state(text(r.state.name()))
        })
        .collect();
    ListTransactionsResponse::default().with_transaction_states(listed)
}
