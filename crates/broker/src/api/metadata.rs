//! Metadata (with topic auto-creation) and DescribeCluster.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::blocking;
use crate::errors::{
    INVALID_TOPIC_EXCEPTION, LEADER_NOT_AVAILABLE, NONE, UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION,
};
use crate::partitions::{Topic, TopicError, validate_topic_name};
use crate::state::BrokerState;

/// Kafka's "authorized operations not requested" marker.
const OPERATIONS_OMITTED: i32 = i32::MIN;

pub async fn handle(state: &Arc<BrokerState>, request: MetadataRequest, version: i16) -> MetadataResponse {
    let auto_create = (version < 4 || request.allow_auto_topic_creation)
        && state
            .config()
            .parse::<bool>("auto.create.topics.enable")
            .unwrap_or(true);
    let requested = match request.topics {
        // v0 used an empty list for "every topic"; v1+ uses null.
        Some(topics) if !(version == 0 && topics.is_empty()) => topics,
        _ => {
            let mut all: Vec<_> = state.partitions.topics().values().cloned().collect();
            all.sort_by(|a, b| a.image.name.cmp(&b.image.name));
            let topics = all.iter().map(|topic| describe_topic(state, topic)).collect();
            return response(state, topics);
        }
    };
    let mut topics = Vec::with_capacity(requested.len());
    for wanted in requested {
        let topic = match wanted.name {
            Some(name) => lookup_or_create(state, name, auto_create).await,
            None if !wanted.topic_id.is_nil() => match state.partitions.topic_by_id(wanted.topic_id) {
                Some(topic) => describe_topic(state, &topic),
                None => MetadataResponseTopic::default()
                    .with_topic_id(wanted.topic_id)
                    .with_error_code(UNKNOWN_TOPIC_ID),
            },
            None => MetadataResponseTopic::default().with_error_code(UNKNOWN_TOPIC_ID),
        };
        topics.push(topic);
    }
    response(state, topics)
}

async fn lookup_or_create(state: &Arc<BrokerState>, name: TopicName, auto_create: bool) -> MetadataResponseTopic {
    let failed = |code: i16| {
        MetadataResponseTopic::default()
            .with_name(Some(name.clone()))
            .with_error_code(code)
    };
    if let Some(topic) = state.partitions.topic(&name) {
        return describe_topic(state, &topic);
    }
    if validate_topic_name(&name).is_err() {
        return failed(INVALID_TOPIC_EXCEPTION);
    }
    if !auto_create {
        return failed(UNKNOWN_TOPIC_OR_PARTITION);
    }
    let partitions = state.config().parse::<i32>("num.partitions").unwrap_or(1);
    let creator = state.clone();
    let topic_name = name.to_string();
    let created = blocking(move || {
        creator
            .partitions
            .create_topic(&topic_name, partitions, Default::default(), false)
    })
    .await;
    match created {
        Ok(topic) => {
            tracing::info!(topic = name.as_str(), partitions, "auto-created topic");
            describe_topic(state, &topic)
        }
        // Another request created it first.
        Err(TopicError::AlreadyExists(_)) => match state.partitions.topic(&name) {
            Some(topic) => describe_topic(state, &topic),
            None => failed(UNKNOWN_TOPIC_OR_PARTITION),
        },
        Err(error) => failed(error.code()),
    }
}

pub fn describe_topic(state: &BrokerState, topic: &Topic) -> MetadataResponseTopic {
    let node = BrokerId(state.node_id);
    let partitions = topic
        .partitions
        .iter()
        .map(|partition| {
            let described = MetadataResponsePartition::default()
                .with_partition_index(partition.index)
                .with_leader_epoch(partition.leader_epoch)
                .with_replica_nodes(vec![node])
                .with_isr_nodes(vec![node]);
            if partition.is_offline() {
                // What Kafka shows once the only replica's log directory
                // failed: no leader, the replica listed offline.
                described
                    .with_error_code(LEADER_NOT_AVAILABLE)
                    .with_leader_id(BrokerId(-1))
                    .with_offline_replicas(vec![node])
            } else {
                described.with_error_code(NONE).with_leader_id(node)
            }
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(topic.image.name.clone()))))
        .with_topic_id(topic.image.id)
        .with_is_internal(topic.image.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPERATIONS_OMITTED)
}

fn response(state: &BrokerState, topics: Vec<MetadataResponseTopic>) -> MetadataResponse {
    MetadataResponse::default()
        .with_brokers(vec![
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(state.node_id))
                .with_host(StrBytes::from_string(state.advertised_host.clone()))
                .with_port(state.advertised_port),
        ])
        .with_cluster_id(Some(StrBytes::from_string(state.cluster_id.clone())))
        .with_controller_id(BrokerId(state.node_id))
        .with_topics(topics)
        .with_cluster_authorized_operations(OPERATIONS_OMITTED)
}

pub fn describe_cluster(state: &BrokerState, _request: DescribeClusterRequest) -> DescribeClusterResponse {
    DescribeClusterResponse::default()
        .with_cluster_id(StrBytes::from_string(state.cluster_id.clone()))
        .with_controller_id(BrokerId(state.node_id))
        .with_brokers(vec![
            DescribeClusterBroker::default()
                .with_broker_id(BrokerId(state.node_id))
                .with_host(StrBytes::from_string(state.advertised_host.clone()))
                .with_port(state.advertised_port),
        ])
        .with_cluster_authorized_operations(OPERATIONS_OMITTED)
}

/// A topic id as the protocol sends it (nil means "not given").
pub fn topic_id_given(id: Uuid) -> Option<Uuid> {
    (!id.is_nil()).then_some(id)
}
