//! Committed offsets: OffsetCommit, OffsetFetch (single and multi-group),
//! OffsetDelete. Commits are durable in `__consumer_offsets` before they are
//! acknowledged or visible.

use std::collections::HashMap;
use std::sync::Arc;

use kafka_protocol::messages::offset_commit_response::{OffsetCommitResponsePartition, OffsetCommitResponseTopic};
use kafka_protocol::messages::offset_delete_response::{OffsetDeleteResponsePartition, OffsetDeleteResponseTopic};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions, OffsetFetchResponseTopic,
    OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    GroupId, OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse, OffsetFetchRequest,
    OffsetFetchResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::blocking;
use crate::errors::*;
use crate::groups::group::Group;
use crate::groups::offsets_topic::{CommittedOffset, OffsetsRecord};
use crate::groups::{self, now_ms};
use crate::state::BrokerState;

/// Each partition's index and error code.
type PartitionCodes = Vec<(i32, i16)>;
/// A topic's name and what was committed for each asked partition.
/// A partition's committed offset (if any), or an error code.
type PartitionOffset = (i32, Result<Option<CommittedOffset>, i16>);
type TopicOffsets = (String, Vec<PartitionOffset>);

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

pub async fn commit(state: &Arc<BrokerState>, body: OffsetCommitRequest) -> OffsetCommitResponse {
    let _writing = state.groups.writes.lock().await;
    let group_id = body.group_id.to_string();
    let group_error = if group_id.is_empty() {
        INVALID_GROUP_ID
    } else {
        let mut all = state.groups.groups();
        match all.get(&group_id) {
            Some(group) => group.validate_commit(
                &body.member_id,
                body.group_instance_id.as_deref(),
                body.generation_id_or_member_epoch,
            ),
            // A commit outside any generation (admin tools, assign()-mode consumers) starts a group of its own.
            None if body.generation_id_or_member_epoch < 0 && body.member_id.is_empty() => {
                all.insert(group_id.clone(), Group::new(&group_id));
                NONE
            }
            None => UNKNOWN_MEMBER_ID,
        }
    };

    let now = now_ms();
    let mut records = Vec::new();
    let mut answers: Vec<(TopicName, Uuid, PartitionCodes)> = Vec::new();
    for topic in body.topics {
        // v10+ names topics by id.
        let resolved = match topic.name.is_empty() {
            true => state.partitions.topic_by_id(topic.topic_id),
            false => state.partitions.topic(&topic.name),
        };
        let mut partitions = Vec::new();
        for partition in topic.partitions {
            let exists = resolved
                .as_ref()
                .is_some_and(|t| partition.partition_index >= 0 && partition.partition_index < t.image.partitions);
            let metadata = partition.committed_metadata.map(|m| m.to_string()).unwrap_or_default();
            let code = if group_error != NONE {
                group_error
            } else if !exists {
                UNKNOWN_TOPIC_OR_PARTITION
            } else if metadata.len() > state.groups.metadata_max_bytes {
                OFFSET_METADATA_TOO_LARGE
            } else {
                let value = CommittedOffset {
                    offset: partition.committed_offset,
                    leader_epoch: partition.committed_leader_epoch,
                    metadata,
                    commit_timestamp_ms: now,
                };
                let name = resolved.as_ref().expect("exists").image.name.clone();
                records.push(OffsetsRecord::Offset {
                    group: group_id.clone(),
                    topic: name,
                    partition: partition.partition_index,
                    value: Some(value),
                });
                NONE
            };
            partitions.push((partition.partition_index, code));
        }
        answers.push((topic.name, topic.topic_id, partitions));
    }

    let write_error = if records.is_empty() {
        NONE
    } else {
        let worker = state.clone();
        let group = group_id.clone();
        let count = state.groups.offsets_partitions;
        let written = records.clone();
        match blocking(move || groups::write(&worker.partitions, count, &group, &written)).await {
            Ok(()) => {
                let mut all = state.groups.groups();
                if let Some(group) = all.get_mut(&group_id) {
                    for record in records {
                        if let OffsetsRecord::Offset {
                            topic,
                            partition,
                            value: Some(value),
                            ..
                        } = record
                        {
                            group.offsets.insert((topic, partition), value);
                        }
                    }
                }
                NONE
            }
            Err(code) => code,
        }
    };
    let topics = answers
        .into_iter()
        .map(|(name, topic_id, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, code)| {
                    let code = if code == NONE { write_error } else { code };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(code)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(name)
                .with_topic_id(topic_id)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One group's committed offsets for the asked partitions (every committed
/// one when `None`). With `require_stable` (KIP-447, read_committed
/// consumers), a partition with an offset committed by a transaction that
/// has not completed yet gets UNSTABLE_OFFSET_COMMIT, and the client asks again.
fn fetch_group(
    state: &BrokerState,
    group: &str,
    wanted: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> Vec<TopicOffsets> {
    let all = state.groups.groups();
    let offsets = all.get(group).map(|g| &g.offsets);
    match wanted {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, partitions)| {
                let found = partitions
                    .into_iter()
                    .map(|p| {
                        if require_stable && state.groups.has_pending_offset(group, &topic, p) {
                            return (p, Err(UNSTABLE_OFFSET_COMMIT));
                        }
                        (p, Ok(offsets.and_then(|o| o.get(&(topic.clone(), p)).cloned())))
                    })
                    .collect();
                (topic, found)
            })
            .collect(),
        None => {
            let mut by_topic: HashMap<String, Vec<PartitionOffset>> = HashMap::new();
            for ((topic, partition), value) in offsets.into_iter().flatten() {
                by_topic
                    .entry(topic.clone())
                    .or_default()
                    .push((*partition, Ok(Some(value.clone()))));
            }
            let mut topics: Vec<_> = by_topic.into_iter().collect();
            topics.sort_by(|a, b| a.0.cmp(&b.0));
            for (_, partitions) in topics.iter_mut() {
                partitions.sort_by_key(|(p, _)| *p);
            }
            topics
        }
    }
}

/// A partition's (offset, leader epoch, metadata, error code) in a response.
fn committed_fields(value: Result<Option<CommittedOffset>, i16>) -> (i64, i32, Option<StrBytes>, i16) {
    match value {
        Ok(Some(v)) => (v.offset, v.leader_epoch, Some(StrBytes::from_string(v.metadata)), NONE),
        Ok(None) => (-1, -1, Some(StrBytes::from_static_str("")), NONE),
        Err(code) => (-1, -1, Some(StrBytes::from_static_str("")), code),
    }
}

pub fn fetch(state: &BrokerState, body: OffsetFetchRequest, version: i16) -> OffsetFetchResponse {
    if version < 8 {
        let wanted = body.topics.map(|topics| {
            topics
                .into_iter()
                .map(|t| (t.name.to_string(), t.partition_indexes))
                .collect()
        });
        let topics = fetch_group(state, &body.group_id, wanted, body.require_stable)
            .into_iter()
            .map(|(topic, partitions)| {
                let partitions = partitions
                    .into_iter()
                    .map(|(index, value)| {
                        let (offset, epoch, metadata, error_code) = committed_fields(value);
                        OffsetFetchResponsePartition::default()
                            .with_partition_index(index)
                            .with_committed_offset(offset)
                            .with_committed_leader_epoch(epoch)
                            .with_metadata(metadata)
                            .with_error_code(error_code)
                    })
                    .collect();
                OffsetFetchResponseTopic::default()
                    .with_name(topic_name(&topic))
                    .with_partitions(partitions)
            })
            .collect();
        return OffsetFetchResponse::default().with_topics(topics);
    }
    // v8+ (KIP-709) fetches for many groups at once; v10 names topics by id.
    let groups = body
        .groups
        .into_iter()
        .map(|group| {
            let wanted = group.topics.map(|topics| {
                topics
                    .into_iter()
                    .map(|t| {
                        let name = match t.name.is_empty() {
                            true => state
                                .partitions
                                .topic_by_id(t.topic_id)
                                .map(|topic| topic.image.name.clone())
                                .unwrap_or_default(),
                            false => t.name.to_string(),
                        };
                        (name, t.partition_indexes)
                    })
                    .collect()
            });
            let topics = fetch_group(state, &group.group_id, wanted, body.require_stable)
                .into_iter()
                .map(|(topic, partitions)| {
                    let topic_id = state.partitions.topic(&topic).map(|t| t.image.id).unwrap_or_default();
                    let partitions = partitions
                        .into_iter()
                        .map(|(index, value)| {
                            let (offset, epoch, metadata, error_code) = committed_fields(value);
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(index)
                                .with_committed_offset(offset)
                                .with_committed_leader_epoch(epoch)
                                .with_metadata(metadata)
                                .with_error_code(error_code)
                        })
                        .collect();
                    OffsetFetchResponseTopics::default()
                        .with_name(topic_name(&topic))
                        .with_topic_id(topic_id)
                        .with_partitions(partitions)
                })
                .collect();
            OffsetFetchResponseGroup::default()
                .with_group_id(GroupId(group.group_id.0))
                .with_topics(topics)
        })
        .collect();
    OffsetFetchResponse::default().with_groups(groups)
}

pub async fn delete(state: &Arc<BrokerState>, body: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let _writing = state.groups.writes.lock().await;
    let group_id = body.group_id.to_string();
    let (subscribed, exists) = {
        let all = state.groups.groups();
        match all.get(&group_id) {
            Some(group) => (group.subscribed_topics(), true),
            None => (Vec::new(), false),
        }
    };
    if !exists {
        return OffsetDeleteResponse::default().with_error_code(GROUP_ID_NOT_FOUND);
    }
    let mut records = Vec::new();
    let answers: Vec<(TopicName, PartitionCodes)> = body
        .topics
        .into_iter()
        .map(|topic| {
            let partitions = topic
                .partitions
                .iter()
                .map(|p| {
                    let code = if subscribed.iter().any(|t| t.as_str() == topic.name.as_str()) {
                        GROUP_SUBSCRIBED_TO_TOPIC
                    } else if state.partitions.partition(&topic.name, p.partition_index).is_none() {
                        UNKNOWN_TOPIC_OR_PARTITION
                    } else {
                        records.push(OffsetsRecord::Offset {
                            group: group_id.clone(),
                            topic: topic.name.to_string(),
                            partition: p.partition_index,
                            value: None,
                        });
                        NONE
                    };
                    (p.partition_index, code)
                })
                .collect();
            (topic.name, partitions)
        })
        .collect();
    let worker = state.clone();
    let count = state.groups.offsets_partitions;
    let group = group_id.clone();
    let written = records.clone();
    let write_error = match blocking(move || groups::write(&worker.partitions, count, &group, &written)).await {
        Ok(()) => {
            if let Some(group) = state.groups.groups().get_mut(&group_id) {
                for record in records {
                    if let OffsetsRecord::Offset { topic, partition, .. } = record {
                        group.offsets.remove(&(topic, partition));
                    }
                }
            }
            NONE
        }
        Err(code) => code,
    };
    let topics = answers
        .into_iter()
        .map(|(name, partitions)| {
            let partitions = partitions
                .into_iter()
                .map(|(index, code)| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(index)
                        .with_error_code(if code == NONE { write_error } else { code })
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}
