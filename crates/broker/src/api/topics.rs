//! Topic administration: CreateTopics, DeleteTopics, CreatePartitions,
//! DescribeTopicPartitions.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::create_topics_response::{CreatableTopicConfigs, CreatableTopicResult};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest, CreateTopicsResponse,
    DeleteTopicsRequest, DeleteTopicsResponse, DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

use super::blocking;
use super::metadata::describe_topic;
use crate::errors::{INVALID_REQUEST, NONE, UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION};
use crate::state::BrokerState;
use crate::topic_config::{TOPIC_CONFIGS, effective};

const INVALID_REPLICATION_FACTOR: i16 = 38;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;

fn message(text: String) -> Option<StrBytes> {
    Some(StrBytes::from_string(text))
}

pub async fn create_topics(state: &Arc<BrokerState>, request: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut seen = HashSet::new();
    let duplicates: HashSet<TopicName> = request
        .topics
        .iter()
        .filter(|t| !seen.insert(t.name.clone()))
        .map(|t| t.name.clone())
        .collect();
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let name = topic.name.clone();
        let result = if duplicates.contains(&name) {
            failure(
                name,
                INVALID_REQUEST,
                format!(
                    "Create topics request from client contains a duplicate topic {}",
                    topic.name.as_str()
                ),
            )
        } else {
            create_one(state, topic, request.validate_only).await
        };
        results.push(result);
    }
    CreateTopicsResponse::default().with_topics(results)
}

fn failure(name: TopicName, code: i16, text: String) -> CreatableTopicResult {
    CreatableTopicResult::default()
        .with_name(name)
        .with_error_code(code)
        .with_error_message(message(text))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

async fn create_one(state: &Arc<BrokerState>, topic: CreatableTopic, validate_only: bool) -> CreatableTopicResult {
    let name = topic.name.clone();
    let node = BrokerId(state.node_id);
    let partitions = if topic.assignments.is_empty() {
        let replication_factor = match topic.replication_factor {
            -1 => state.config().parse::<i16>("default.replication.factor").unwrap_or(1),
            factor => factor,
        };
        if replication_factor < 1 {
            return failure(
                name,
                INVALID_REPLICATION_FACTOR,
                "Replication factor must be larger than 0.".into(),
            );
        }
        if replication_factor > 1 {
            let text = format!(
                "Unable to replicate the partition {replication_factor} time(s): The target replication factor of {replication_factor} cannot be reached because only 1 broker(s) are registered."
            );
            return failure(name, INVALID_REPLICATION_FACTOR, text);
        }
        match topic.num_partitions {
            -1 => state.config().parse::<i32>("num.partitions").unwrap_or(1),
            count => count,
        }
    } else {
        if topic.num_partitions != -1 || topic.replication_factor != -1 {
            let text = "Both numPartitions or replicationFactor and replicasAssignments were set. Both cannot be used at the same time.";
            return failure(name, INVALID_REQUEST, text.into());
        }
        let mut indexes: Vec<i32> = topic.assignments.iter().map(|a| a.partition_index).collect();
        indexes.sort_unstable();
        if indexes.iter().enumerate().any(|(i, index)| *index != i as i32) {
            return failure(
                name,
                INVALID_REPLICA_ASSIGNMENT,
                "Partitions should be a consecutive 0-based integer sequence".into(),
            );
        }
        if let Some(bad) = topic.assignments.iter().find(|a| a.broker_ids.as_slice() != [node]) {
            let text = format!(
                "Partition {} has replica assignment {:?}, but the only broker is {}",
                bad.partition_index,
                bad.broker_ids.iter().map(|b| b.0).collect::<Vec<_>>(),
                state.node_id
            );
            return failure(name, INVALID_REPLICA_ASSIGNMENT, text);
        }
        topic.assignments.len() as i32
    };
    let mut configs = BTreeMap::new();
    for config in topic.configs {
        match config.value {
            Some(value) => configs.insert(config.name.to_string(), value.to_string()),
            None => {
                return failure(
                    name,
                    crate::errors::INVALID_CONFIG,
                    format!("Null value not supported for topic config {}", config.name),
                );
            }
        };
    }
    let creator = state.clone();
    let topic_name = name.to_string();
    let created = blocking(move || {
        creator
            .partitions
            .create_topic(&topic_name, partitions, configs, validate_only)
    })
    .await;
    match created {
        Ok(topic) => {
            if !validate_only {
                tracing::info!(topic = name.as_str(), partitions, "created topic");
            }
            let configs = TOPIC_CONFIGS
                .iter()
                .map(|def| {
                    let (value, source) = effective(def, &topic.image.configs, state.config());
                    CreatableTopicConfigs::default()
                        .with_name(StrBytes::from_static_str(def.name))
                        .with_value(Some(StrBytes::from_string(value)))
                        .with_config_source(source as i8)
                })
                .collect();
            CreatableTopicResult::default()
                .with_name(name)
                .with_topic_id(topic.image.id)
                .with_error_code(NONE)
                .with_num_partitions(partitions)
                .with_replication_factor(1)
                .with_configs(Some(configs))
        }
        Err(error) => failure(name, error.code(), error.to_string()),
    }
}

pub async fn delete_topics(state: &Arc<BrokerState>, request: DeleteTopicsRequest) -> DeleteTopicsResponse {
    // v6+ sends `topics` (name or id); older versions send `topic_names`.
    let mut wanted: Vec<(Option<TopicName>, uuid::Uuid)> = request
        .topic_names
        .into_iter()
        .map(|name| (Some(name), uuid::Uuid::nil()))
        .collect();
    wanted.extend(request.topics.into_iter().map(|topic| (topic.name, topic.topic_id)));
    let mut responses = Vec::with_capacity(wanted.len());
    for (name, id) in wanted {
        let topic = match &name {
            Some(name) => state.partitions.topic(name),
            None => state.partitions.topic_by_id(id),
        };
        let Some(topic) = topic else {
            let code = if name.is_some() {
                UNKNOWN_TOPIC_OR_PARTITION
            } else {
                UNKNOWN_TOPIC_ID
            };
            responses.push(
                DeletableTopicResult::default()
                    .with_name(name)
                    .with_topic_id(id)
                    .with_error_code(code),
            );
            continue;
        };
        let deleter = state.clone();
        let topic_name = topic.image.name.clone();
        let result = blocking(move || deleter.partitions.delete_topic(&topic_name)).await;
        let response = DeletableTopicResult::default()
            .with_name(Some(TopicName(StrBytes::from_string(topic.image.name.clone()))))
            .with_topic_id(topic.image.id);
        responses.push(match result {
            Ok(_) => {
                tracing::info!(topic = %topic.image.name, "deleted topic");
                response
            }
            Err(error) => response
                .with_error_code(error.code())
                .with_error_message(message(error.to_string())),
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

pub async fn create_partitions(state: &Arc<BrokerState>, request: CreatePartitionsRequest) -> CreatePartitionsResponse {
    let node = BrokerId(state.node_id);
    let mut results = Vec::with_capacity(request.topics.len());
    for topic in request.topics {
        let result = CreatePartitionsTopicResult::default().with_name(topic.name.clone());
        let bad_assignment = topic
            .assignments
            .as_ref()
            .and_then(|all| all.iter().find(|a| a.broker_ids.as_slice() != [node]));
        if let Some(bad) = bad_assignment {
            let text = format!(
                "Replica assignment {:?} names brokers other than {}",
                bad.broker_ids.iter().map(|b| b.0).collect::<Vec<_>>(),
                state.node_id
            );
            results.push(
                result
                    .with_error_code(INVALID_REPLICA_ASSIGNMENT)
                    .with_error_message(message(text)),
            );
            continue;
        }
        let worker = state.clone();
        let name = topic.name.to_string();
        let outcome = blocking(move || {
            worker
                .partitions
                .create_partitions(&name, topic.count, request.validate_only)
        })
        .await;
        results.push(match outcome {
            Ok(()) => result,
            Err(error) => result
                .with_error_code(error.code())
                .with_error_message(message(error.to_string())),
        });
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// KIP-966's paginated topic description, as kafka-topics.sh --describe uses it.
pub fn describe_topic_partitions(
    state: &BrokerState,
    request: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let all = state.partitions.topics();
    let mut names: Vec<String> = match request.topics.is_empty() {
        true => all.keys().cloned().collect(),
        false => request.topics.iter().map(|t| t.name.to_string()).collect(),
    };
    names.sort();
    names.dedup();
    let (start_topic, start_partition) = match &request.cursor {
        Some(cursor) => (cursor.topic_name.to_string(), cursor.partition_index),
        None => (String::new(), 0),
    };
    let mut budget = request.response_partition_limit.max(1) as usize;
    let mut topics = Vec::new();
    let mut next_cursor = None;
    for name in names.into_iter().filter(|name| *name >= start_topic) {
        let Some(topic) = all.get(&name) else {
            let topic_name = TopicName(StrBytes::from_string(name));
            topics.push(
                DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(topic_name))
                    .with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
            );
            continue;
        };
        if budget == 0 {
            next_cursor = Some(
                Cursor::default()
                    .with_topic_name(TopicName(StrBytes::from_string(name)))
                    .with_partition_index(0),
            );
            break;
        }
        let described = describe_topic(state, topic);
        let first = if name == start_topic {
            start_partition.max(0) as usize
        } else {
            0
        };
        let mut partitions = Vec::new();
        for partition in described.partitions.into_iter().skip(first) {
            if budget == 0 {
                let cursor = Cursor::default()
                    .with_topic_name(TopicName(StrBytes::from_string(name.clone())))
                    .with_partition_index(partition.partition_index);
                next_cursor = Some(cursor);
                break;
            }
            budget -= 1;
            partitions.push(
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(partition.partition_index)
                    .with_leader_id(partition.leader_id)
                    .with_leader_epoch(partition.leader_epoch)
                    .with_replica_nodes(partition.replica_nodes)
                    .with_isr_nodes(partition.isr_nodes)
                    .with_eligible_leader_replicas(Some(Vec::new()))
                    .with_last_known_elr(Some(Vec::new())),
            );
        }
        topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(described.name)
                .with_topic_id(described.topic_id)
                .with_is_internal(described.is_internal)
                .with_partitions(partitions)
                .with_topic_authorized_operations(described.topic_authorized_operations),
        );
        if next_cursor.is_some() {
            break;
        }
    }
    DescribeTopicPartitionsResponse::default()
        .with_topics(topics)
        .with_next_cursor(next_cursor)
}
