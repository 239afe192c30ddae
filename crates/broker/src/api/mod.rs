//! One module per API family. Each handler takes the decoded request and
//! returns its response; per-partition failures are Kafka error codes in the
//! response, never panics.

pub mod api_versions;
pub mod configs;
pub mod consumer_group;
pub mod delete_records;
pub mod fetch;
pub mod groups;
pub mod list_offsets;
pub mod log_dirs;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod topics;
pub mod transactions;

use std::sync::Arc;

use kafka_protocol::messages::{ApiKey, RequestKind, ResponseKind};

use crate::dispatch::Request;
use crate::state::BrokerState;

/// The APIs this broker answers, advertised by ApiVersions with the version
/// ranges of the protocol crate (which start at Kafka 4's KIP-896 floors).
pub const SUPPORTED_APIS: &[ApiKey] = &[
    ApiKey::Produce,
    ApiKey::Fetch,
    ApiKey::ListOffsets,
    ApiKey::Metadata,
    ApiKey::ApiVersions,
    ApiKey::CreateTopics,
    ApiKey::DeleteTopics,
    ApiKey::DeleteRecords,
    ApiKey::DescribeConfigs,
    ApiKey::AlterConfigs,
    ApiKey::IncrementalAlterConfigs,
    ApiKey::CreatePartitions,
    ApiKey::DescribeCluster,
    ApiKey::DescribeLogDirs,
    ApiKey::DescribeTopicPartitions,
    ApiKey::FindCoordinator,
    ApiKey::JoinGroup,
    ApiKey::SyncGroup,
    ApiKey::Heartbeat,
    ApiKey::LeaveGroup,
    ApiKey::ListGroups,
    ApiKey::DescribeGroups,
    ApiKey::DeleteGroups,
    ApiKey::OffsetCommit,
    ApiKey::OffsetFetch,
    ApiKey::OffsetDelete,
    ApiKey::InitProducerId,
    ApiKey::DescribeProducers,
    ApiKey::AddPartitionsToTxn,
    ApiKey::AddOffsetsToTxn,
    ApiKey::TxnOffsetCommit,
    ApiKey::EndTxn,
    ApiKey::DescribeTransactions,
    ApiKey::ListTransactions,
    ApiKey::ConsumerGroupHeartbeat,
    ApiKey::ConsumerGroupDescribe,
];

pub fn is_supported(api_key: ApiKey) -> bool {
    SUPPORTED_APIS.contains(&api_key)
}

/// Runs the handler for `body`; `None` when the request gets no response (acks=0).
pub async fn handle(state: &Arc<BrokerState>, request: &Request<'_>, body: RequestKind) -> Option<ResponseKind> {
    let version = request.api_version;
    Some(match body {
        RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(api_versions::handle()),
        RequestKind::Metadata(body) => ResponseKind::Metadata(metadata::handle(state, body, version).await),
        RequestKind::Produce(body) => {
            ResponseKind::Produce(produce::handle(state, body, &request.connection.next_request).await?)
        }
        RequestKind::Fetch(body) => ResponseKind::Fetch(fetch::handle(state, body, version).await),
        RequestKind::ListOffsets(body) => ResponseKind::ListOffsets(list_offsets::handle(state, body, version).await),
        RequestKind::CreateTopics(body) => ResponseKind::CreateTopics(topics::create_topics(state, body).await),
        RequestKind::DeleteTopics(body) => ResponseKind::DeleteTopics(topics::delete_topics(state, body).await),
        RequestKind::CreatePartitions(body) => {
            ResponseKind::CreatePartitions(topics::create_partitions(state, body).await)
        }
        RequestKind::DescribeTopicPartitions(body) => {
            ResponseKind::DescribeTopicPartitions(topics::describe_topic_partitions(state, body))
        }
        RequestKind::DeleteRecords(body) => ResponseKind::DeleteRecords(delete_records::handle(state, body).await),
        RequestKind::DescribeConfigs(body) => ResponseKind::DescribeConfigs(configs::describe(state, body)),
        RequestKind::AlterConfigs(body) => ResponseKind::AlterConfigs(configs::alter(state, body).await),
        RequestKind::IncrementalAlterConfigs(body) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(state, body).await)
        }
        RequestKind::DescribeCluster(body) => ResponseKind::DescribeCluster(metadata::describe_cluster(state, body)),
        RequestKind::DescribeLogDirs(body) => ResponseKind::DescribeLogDirs(log_dirs::handle(state, body)),
        RequestKind::FindCoordinator(body) => {
            ResponseKind::FindCoordinator(groups::find_coordinator(state, body, version).await)
        }
        RequestKind::JoinGroup(body) => ResponseKind::JoinGroup(groups::join_group(state, request, body).await),
        RequestKind::SyncGroup(body) => ResponseKind::SyncGroup(groups::sync_group(state, body).await),
        RequestKind::Heartbeat(body) => ResponseKind::Heartbeat(groups::heartbeat(state, body)),
        RequestKind::LeaveGroup(body) => ResponseKind::LeaveGroup(groups::leave_group(state, body, version)),
        RequestKind::ListGroups(body) => ResponseKind::ListGroups(groups::list_groups(state, body)),
        RequestKind::DescribeGroups(body) => {
            ResponseKind::DescribeGroups(groups::describe_groups(state, body, version))
        }
        RequestKind::DeleteGroups(body) => ResponseKind::DeleteGroups(groups::delete_groups(state, body).await),
        RequestKind::OffsetCommit(body) => ResponseKind::OffsetCommit(offsets::commit(state, body).await),
        RequestKind::OffsetFetch(body) => ResponseKind::OffsetFetch(offsets::fetch(state, body, version)),
        RequestKind::OffsetDelete(body) => ResponseKind::OffsetDelete(offsets::delete(state, body).await),
        RequestKind::InitProducerId(body) => {
            ResponseKind::InitProducerId(transactions::init_producer_id(state, body).await)
        }
        RequestKind::DescribeProducers(body) => {
            ResponseKind::DescribeProducers(transactions::describe_producers(state, body).await)
        }
        RequestKind::AddPartitionsToTxn(body) => {
            ResponseKind::AddPartitionsToTxn(transactions::add_partitions_to_txn(state, body, version).await)
        }
        RequestKind::AddOffsetsToTxn(body) => {
            ResponseKind::AddOffsetsToTxn(transactions::add_offsets_to_txn(state, body).await)
        }
        RequestKind::TxnOffsetCommit(body) => {
            ResponseKind::TxnOffsetCommit(transactions::txn_offset_commit(state, body).await)
        }
        RequestKind::EndTxn(body) => ResponseKind::EndTxn(transactions::end_txn(state, body).await),
        RequestKind::DescribeTransactions(body) => {
            ResponseKind::DescribeTransactions(transactions::describe_transactions(state, body))
        }
        RequestKind::ListTransactions(body) => {
            ResponseKind::ListTransactions(transactions::list_transactions(state, body))
        }
        RequestKind::ConsumerGroupHeartbeat(body) => {
            ResponseKind::ConsumerGroupHeartbeat(consumer_group::heartbeat(state, request, body).await)
        }
        RequestKind::ConsumerGroupDescribe(body) => {
            ResponseKind::ConsumerGroupDescribe(consumer_group::describe(state, body))
        }
        other => {
            // is_supported() filtered these out before decoding.
            tracing::error!(request = ?std::mem::discriminant(&other), "request reached dispatch without a handler");
            return None;
        }
    })
}

/// Runs blocking storage work off the async threads.
pub async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(work).await.expect("storage task panicked")
}

/// The wall clock in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
