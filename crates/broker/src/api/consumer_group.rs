//! The KIP-848 consumer group protocol: ConsumerGroupHeartbeat and
//! ConsumerGroupDescribe.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::consumer_group_describe_response::{self, DescribedGroup, Member};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, GroupId, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use super::blocking;
use crate::dispatch::Request;
use crate::errors::*;
use crate::groups;
use crate::groups::assignors::TopicPartition;
use crate::groups::consumer::{ConsumerGroupState, Heartbeat, TopicCatalog, TopicRegex};
use crate::groups::group::Group;
use crate::partitions::Topic;
use crate::state::BrokerState;

fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

fn refuse(code: i16, message: impl Into<String>) -> ConsumerGroupHeartbeatResponse {
    ConsumerGroupHeartbeatResponse::default()
        .with_error_code(code)
        .with_error_message(Some(text(message)))
}

fn invalid(message: &str) -> ConsumerGroupHeartbeatResponse {
    refuse(INVALID_REQUEST, message)
}

/// The broker's topics, as subscriptions resolve against them.
struct BrokerTopics(Arc<HashMap<String, Arc<Topic>>>);

impl TopicCatalog for BrokerTopics {
    fn lookup(&self, name: &str) -> Option<(Uuid, i32)> {
        self.0.get(name).map(|t| (t.image.id, t.image.partitions))
    }
    fn names(&self) -> Vec<String> {
        self.0.keys().cloned().collect()
    }
}

pub async fn heartbeat(
    state: &Arc<BrokerState>,
    request: &Request<'_>,
    body: ConsumerGroupHeartbeatRequest,
) -> ConsumerGroupHeartbeatResponse {
    if body.group_id.is_empty() {
        return invalid("GroupId can't be empty.");
    }
    let joining = body.member_epoch == 0;
    // v1 (KIP-1082): the client names itself; v0: the coordinator names a joining member.
    let member_id = match (body.member_id.is_empty(), joining, request.api_version) {
        (true, true, 0) => Uuid::new_v4().to_string(),
        (true, _, _) => return invalid("MemberId can't be empty."),
        (false, _, _) => body.member_id.to_string(),
    };
    if joining {
        if body.rebalance_timeout_ms <= 0 {
            return invalid("RebalanceTimeoutMs must be provided in first request.");
        }
        if body.subscribed_topic_names.is_none() && body.subscribed_topic_regex.is_none() {
            return invalid("SubscribedTopicNames or SubscribedTopicRegex must be set in first request.");
        }
        if body.topic_partitions.as_ref().is_none_or(|owned| !owned.is_empty()) {
            return invalid("TopicPartitions must be empty when (re-)joining.");
        }
    }
    // Kafka (RE2/J) and the regex crate share RE2's syntax.
    let subscribed_topic_regex = match body.subscribed_topic_regex.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(pattern) => match TopicRegex::new(pattern) {
            Ok(regex) => Some(Some(regex)),
            Err(reason) => {
                let message = format!("Invalid regular expression {pattern:?}: {reason}");
                return refuse(INVALID_REGULAR_EXPRESSION, message);
            }
        },
    };
    let owned = body.topic_partitions.map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t.topic_id, *p)))
            .collect::<BTreeSet<TopicPartition>>()
    });
    let heartbeat = Heartbeat {
        member_id: member_id.clone(),
        member_epoch: body.member_epoch,
        instance_id: body.instance_id.map(|i| i.to_string()),
        rack_id: body.rack_id.map(|r| r.to_string()),
        client_id: request.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        client_host: format!("/{}", request.connection.peer.ip()),
        rebalance_timeout: Duration::from_millis(body.rebalance_timeout_ms.max(0) as u64),
        subscribed_topics: body
            .subscribed_topic_names
            .map(|names| names.into_iter().map(|n| n.to_string()).collect()),
        subscribed_topic_regex,
        server_assignor: body.server_assignor.map(|a| a.to_string()),
        owned,
    };
    let topics = BrokerTopics(state.partitions.topics());
    let limits = &state.groups.limits;
    let group_id = body.group_id.to_string();
    let (answer, changed) = {
        let mut all = state.groups.groups();
        let group = all.entry(group_id.clone()).or_insert_with(|| Group::new(&group_id));
        if !group.members.is_empty() {
            (Err(INCONSISTENT_GROUP_PROTOCOL), false)
        } else {
            let consumer = group.consumer.get_or_insert_with(ConsumerGroupState::default);
            let answer = consumer.heartbeat(heartbeat, &topics, limits.max_size, Instant::now());
            let changed = answer.is_ok() && !consumer.unwritten(&group_id, Some(&member_id)).is_empty();
            (answer, changed)
        }
    };
    state.groups.wake(&group_id);
    // Kafka answers a heartbeat that changed the group once the change is
    // in __consumer_offsets: a coordinator that restarts (or moves) then
    // knows every epoch and assignment it handed out.
    let answer = match (answer, changed) {
        (Ok(answer), true) => write_changes(state, &group_id, &member_id).await.map(|()| answer),
        (answer, _) => answer,
    };
    match answer {
        Ok(answer) => ConsumerGroupHeartbeatResponse::default()
            .with_member_id(Some(text(member_id)))
            .with_member_epoch(answer.member_epoch)
            .with_heartbeat_interval_ms(limits.consumer_heartbeat_interval.as_millis() as i32)
            .with_assignment(answer.assignment.map(|partitions| {
                Assignment::default().with_topic_partitions(
                    by_topic(&partitions)
                        .into_iter()
                        .map(|(id, p)| TopicPartitions::default().with_topic_id(id).with_partitions(p))
                        .collect(),
                )
            })),
        Err(code) => ConsumerGroupHeartbeatResponse::default()
            .with_error_code(code)
            .with_member_id(Some(text(member_id)))
            .with_member_epoch(-1),
    }
}

/// Writes what the offsets topic lacks of the group (this member's records,
/// or the whole group's after an epoch moved), durably. Later heartbeats
/// that wrote the same changes first leave nothing to write.
async fn write_changes(state: &Arc<BrokerState>, group_id: &str, member_id: &str) -> Result<(), i16> {
    let _writing = state.groups.writes.lock().await;
    let records = match state.groups.groups().get(group_id).and_then(|g| g.consumer.as_ref()) {
        Some(consumer) => consumer.unwritten(group_id, Some(member_id)),
        None => return Ok(()),
    };
    if records.is_empty() {
        return Ok(());
    }
    let worker = state.clone();
    let group = group_id.to_string();
    let written = records.clone();
    let partitions = state.groups.offsets_partitions;
    blocking(move || groups::write(&worker.partitions, partitions, &group, &written)).await?;
    state.groups.written(group_id, &records);
    Ok(())
}

fn by_topic(partitions: &BTreeSet<TopicPartition>) -> BTreeMap<Uuid, Vec<i32>> {
    let mut topics: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(*topic).or_default().push(*partition);
    }
    topics
}

fn describe_assignment(
    state: &BrokerState,
    partitions: &BTreeSet<TopicPartition>,
) -> consumer_group_describe_response::Assignment {
    let topics = by_topic(partitions)
        .into_iter()
        .map(|(id, partitions)| {
            let name = state
                .partitions
                .topic_by_id(id)
                .map(|t| t.image.name.clone())
                .unwrap_or_default();
            consumer_group_describe_response::TopicPartitions::default()
                .with_topic_id(id)
                .with_topic_name(TopicName(text(name)))
                .with_partitions(partitions)
        })
        .collect();
    consumer_group_describe_response::Assignment::default().with_topic_partitions(topics)
}

pub fn describe(state: &BrokerState, body: ConsumerGroupDescribeRequest) -> ConsumerGroupDescribeResponse {
    let all = state.groups.groups();
    let groups = body
        .group_ids
        .into_iter()
        .map(|id| {
            let Some(consumer) = all.get(id.as_str()).and_then(|g| g.consumer.as_ref()) else {
                let message = format!("Group {} is not a consumer group.", id.as_str());
                return DescribedGroup::default()
                    .with_group_id(id)
                    .with_error_code(GROUP_ID_NOT_FOUND)
                    .with_error_message(Some(text(message)));
            };
            let assignor = consumer
                .members
                .values()
                .find_map(|m| m.server_assignor.clone())
                .unwrap_or_else(|| "uniform".into());
            let members = consumer
                .members
                .values()
                .map(|m| {
                    Member::default()
                        .with_member_id(text(m.id.clone()))
                        .with_instance_id(m.instance_id.clone().map(text))
                        .with_rack_id(m.rack_id.clone().map(text))
                        .with_member_epoch(m.member_epoch)
                        .with_client_id(text(m.client_id.clone()))
                        .with_client_host(text(m.client_host.clone()))
                        .with_subscribed_topic_names(
                            m.subscribed_topics.iter().map(|t| TopicName(text(t.clone()))).collect(),
                        )
                        .with_subscribed_topic_regex(m.subscribed_topic_regex.as_ref().map(|r| text(r.pattern.clone())))
                        .with_assignment(describe_assignment(state, &m.assigned))
                        .with_target_assignment(describe_assignment(
                            state,
                            consumer.target.get(&m.id).unwrap_or(&BTreeSet::new()),
                        ))
                })
                .collect();
            DescribedGroup::default()
                .with_group_id(GroupId(id.0))
                .with_group_state(text(consumer.state_name()))
                .with_group_epoch(consumer.group_epoch)
                .with_assignment_epoch(consumer.assignment_epoch)
                .with_assignor_name(text(assignor))
                .with_members(members)
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}
