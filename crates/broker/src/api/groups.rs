//! Group membership APIs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup, ListGroups, DescribeGroups, DeleteGroups.

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    BrokerId, DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse, SyncGroupRequest,
    SyncGroupResponse, delete_groups_response::DeletableGroupResult,
};
use kafka_protocol::protocol::StrBytes;

use super::blocking;
use crate::dispatch::Request;
use crate::errors::*;
use crate::groups::group::{GroupState, JoinOutcome, JoinRequest, SyncOutcome};
use crate::groups::offsets_topic::OffsetsRecord;
use crate::groups::{self, offsets_topic};
use crate::internal_topics;
use crate::state::BrokerState;
use crate::transactions::txn_log::TRANSACTION_TOPIC;

const GROUP_KEY: i8 = 0;
const TRANSACTION_KEY: i8 = 1;

fn text(value: impl Into<String>) -> StrBytes {
    StrBytes::from_string(value.into())
}

pub async fn find_coordinator(
    state: &Arc<BrokerState>,
    request: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let (code, message) = match request.key_type {
        GROUP_KEY => {
            let worker = state.clone();
            let partitions = state.groups.offsets_partitions;
            match blocking(move || groups::offsets_topic(&worker.partitions, partitions)).await {
                Ok(_) => (NONE, None),
                Err(error) => (COORDINATOR_NOT_AVAILABLE, Some(text(error.to_string()))),
            }
        }
        TRANSACTION_KEY => {
            let worker = state.clone();
            let partitions = state.transactions.log_partitions;
            match blocking(move || internal_topics::ensure(&worker.partitions, TRANSACTION_TOPIC, partitions)).await {
                Ok(_) => (NONE, None),
                Err(error) => (COORDINATOR_NOT_AVAILABLE, Some(text(error.to_string()))),
            }
        }
        other => (
            INVALID_REQUEST,
            Some(text(format!("unknown coordinator key type {other}"))),
        ),
    };
    let (node, host, port) = match code {
        NONE => (
            state.node_id,
            text(state.advertised_host.clone()),
            state.advertised_port,
        ),
        _ => (-1, text(""), -1),
    };
    if version < 4 {
        return FindCoordinatorResponse::default()
            .with_error_code(code)
            .with_error_message(message)
            .with_node_id(BrokerId(node))
            .with_host(host)
            .with_port(port);
    }
    // KIP-699: v4+ answers every key of the batch.
    let coordinators = request
        .coordinator_keys
        .into_iter()
        .map(|key| {
            Coordinator::default()
                .with_key(key)
                .with_node_id(BrokerId(node))
                .with_host(host.clone())
                .with_port(port)
                .with_error_code(code)
                .with_error_message(message.clone())
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}

fn join_response(outcome: JoinOutcome, version: i16) -> JoinGroupResponse {
    let members = outcome
        .members
        .into_iter()
        .map(|(id, instance, metadata)| {
            JoinGroupResponseMember::default()
                .with_member_id(text(id))
                .with_group_instance_id(instance.map(text))
                .with_metadata(metadata)
        })
        .collect();
    // Before v7 the protocol name is a non-nullable string.
    let protocol_name = match (outcome.protocol_name, version >= 7) {
        (name, true) => name.map(text),
        (name, false) => Some(text(name.unwrap_or_default())),
    };
    JoinGroupResponse::default()
        .with_error_code(outcome.error_code)
        .with_generation_id(outcome.generation)
        .with_protocol_type(outcome.protocol_type.map(text))
        .with_protocol_name(protocol_name)
        .with_leader(text(outcome.leader))
        .with_member_id(text(outcome.member_id))
        .with_members(members)
}

pub async fn join_group(state: &Arc<BrokerState>, request: &Request<'_>, body: JoinGroupRequest) -> JoinGroupResponse {
    let version = request.api_version;
    if body.group_id.is_empty() {
        return join_response(
            JoinOutcome {
                error_code: INVALID_GROUP_ID,
                generation: -1,
                ..Default::default()
            },
            version,
        );
    }
    let session_timeout = Duration::from_millis(body.session_timeout_ms.max(0) as u64);
    // v0 had no rebalance timeout: it was the session timeout.
    let rebalance_timeout = match body.rebalance_timeout_ms {
        timeout if timeout > 0 => Duration::from_millis(timeout as u64),
        _ => session_timeout,
    };
    let join = JoinRequest {
        member_id: body.member_id.to_string(),
        group_instance_id: body.group_instance_id.map(|i| i.to_string()),
        client_id: request.client_id.as_ref().map(|c| c.to_string()).unwrap_or_default(),
        client_host: format!("/{}", request.connection.peer.ip()),
        session_timeout,
        rebalance_timeout,
        protocol_type: body.protocol_type.to_string(),
        protocols: body
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let member_id = join.member_id.clone();
    let waiting = {
        let mut all = state.groups.groups();
        let group = all
            .entry(body.group_id.to_string())
            .or_insert_with(|| groups::group::Group::new(&body.group_id));
        group.join(join, &state.groups.limits, Instant::now())
    };
    state.groups.wake(&body.group_id);
    let outcome = match waiting {
        Ok(receiver) => receiver.await.unwrap_or(JoinOutcome {
            error_code: UNKNOWN_MEMBER_ID,
            generation: -1,
            member_id,
            ..Default::default()
        }),
        Err(outcome) => *outcome,
    };
    join_response(outcome, version)
}

pub async fn sync_group(state: &Arc<BrokerState>, body: SyncGroupRequest) -> SyncGroupResponse {
    let waiting = {
        let mut all = state.groups.groups();
        match all.get_mut(body.group_id.as_str()) {
            Some(group) => group.sync(
                &body.member_id,
                body.group_instance_id.as_deref(),
                body.generation_id,
                (body.protocol_type.as_deref(), body.protocol_name.as_deref()),
                body.assignments
                    .into_iter()
                    .map(|a| (a.member_id.to_string(), a.assignment))
                    .collect(),
            ),
            None => Err(SyncOutcome {
                error_code: UNKNOWN_MEMBER_ID,
                ..Default::default()
            }),
        }
    };
    let outcome = match waiting {
        Ok(receiver) => receiver.await.unwrap_or(SyncOutcome {
            error_code: REBALANCE_IN_PROGRESS,
            ..Default::default()
        }),
        Err(outcome) => outcome,
    };
    SyncGroupResponse::default()
        .with_error_code(outcome.error_code)
        .with_protocol_type(outcome.protocol_type.map(text))
        .with_protocol_name(outcome.protocol_name.map(text))
        .with_assignment(outcome.assignment)
}

pub fn heartbeat(state: &BrokerState, body: HeartbeatRequest) -> HeartbeatResponse {
    let mut all = state.groups.groups();
    let code = match all.get_mut(body.group_id.as_str()) {
        Some(group) => group.heartbeat(
            &body.member_id,
            body.group_instance_id.as_deref(),
            body.generation_id,
            Instant::now(),
        ),
        None => UNKNOWN_MEMBER_ID,
    };
    HeartbeatResponse::default().with_error_code(code)
}

pub fn leave_group(state: &BrokerState, body: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    // v3+ (KIP-345) leaves in batches; earlier versions name one member.
    let leaving: Vec<(String, Option<String>)> = match version >= 3 {
        true => body
            .members
            .iter()
            .map(|m| {
                (
                    m.member_id.to_string(),
                    m.group_instance_id.as_ref().map(|i| i.to_string()),
                )
            })
            .collect(),
        false => vec![(body.member_id.to_string(), None)],
    };
    let mut all = state.groups.groups();
    let Some(group) = all.get_mut(body.group_id.as_str()) else {
        return LeaveGroupResponse::default().with_error_code(UNKNOWN_MEMBER_ID);
    };
    let now = Instant::now();
    let results: Vec<(String, Option<String>, i16)> = leaving
        .into_iter()
        .map(|(member, instance)| {
            let code = group.leave(&member, instance.as_deref(), &state.groups.limits, now);
            (member, instance, code)
        })
        .collect();
    if version < 3 {
        return LeaveGroupResponse::default().with_error_code(results[0].2);
    }
    let members = results
        .into_iter()
        .map(|(member, instance, code)| {
            MemberResponse::default()
                .with_member_id(text(member))
                .with_group_instance_id(instance.map(text))
                .with_error_code(code)
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

pub fn list_groups(state: &BrokerState, body: ListGroupsRequest) -> ListGroupsResponse {
    let states: Vec<String> = body.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let types: Vec<String> = body.types_filter.iter().map(|t| t.to_lowercase()).collect();
    let all = state.groups.groups();
    let mut listed: Vec<ListedGroup> = all
        .values()
        .filter(|g| g.state != GroupState::Dead)
        .filter(|g| states.is_empty() || states.contains(&g.state_name().to_lowercase()))
        .filter(|g| types.is_empty() || types.iter().any(|t| t == g.group_type()))
        .map(|g| {
            let protocol_type = match g.consumer {
                Some(_) => "consumer".to_string(),
                None => g.protocol_type.clone().unwrap_or_default(),
            };
            ListedGroup::default()
                .with_group_id(GroupId(text(g.id.clone())))
                .with_protocol_type(text(protocol_type))
                .with_group_state(text(g.state_name()))
                .with_group_type(text(g.group_type()))
        })
        .collect();
    listed.sort_by(|a, b| a.group_id.cmp(&b.group_id));
    ListGroupsResponse::default().with_groups(listed)
}

pub fn describe_groups(state: &BrokerState, body: DescribeGroupsRequest, version: i16) -> DescribeGroupsResponse {
    let all = state.groups.groups();
    let described = body
        .groups
        .into_iter()
        .map(|id| {
            let Some(group) = all.get(id.as_str()) else {
                let described = DescribedGroup::default()
                    .with_group_id(id)
                    .with_group_state(text("Dead"));
                // v6 (KIP-1043) reports unknown groups as an error.
                return match version >= 6 {
                    true => described
                        .with_error_code(GROUP_ID_NOT_FOUND)
                        .with_error_message(Some(text("Group not found"))),
                    false => described,
                };
            };
            let protocol = group.protocol.clone().unwrap_or_default();
            let members = group
                .members
                .values()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(text(m.id.clone()))
                        .with_group_instance_id(m.group_instance_id.clone().map(text))
                        .with_client_id(text(m.client_id.clone()))
                        .with_client_host(text(m.client_host.clone()))
                        .with_member_metadata(m.metadata(&protocol))
                        .with_member_assignment(m.assignment.clone())
                })
                .collect();
            DescribedGroup::default()
                .with_group_id(id)
                .with_group_state(text(group.state_name()))
                .with_protocol_type(text(group.protocol_type.clone().unwrap_or_default()))
                .with_protocol_data(text(protocol))
                .with_members(members)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(described)
}

pub async fn delete_groups(state: &Arc<BrokerState>, body: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let _writing = state.groups.writes.lock().await;
    let mut results = Vec::new();
    for id in body.groups_names {
        let records = {
            let all = state.groups.groups();
            match all.get(id.as_str()) {
                None => Err(GROUP_ID_NOT_FOUND),
                Some(group) if !group.has_no_members() => Err(NON_EMPTY_GROUP),
                Some(group) => {
                    let mut records: Vec<OffsetsRecord> = group
                        .offsets
                        .keys()
                        .map(|(topic, partition)| OffsetsRecord::Offset {
                            group: group.id.clone(),
                            topic: topic.clone(),
                            partition: *partition,
                            value: None,
                        })
                        .collect();
                    records.push(OffsetsRecord::Group {
                        group: group.id.clone(),
                        value: None,
                    });
                    if let Some(consumer) = &group.consumer {
                        records.extend(consumer.tombstones(&group.id));
                    }
                    Ok(records)
                }
            }
        };
        let code = match records {
            Err(code) => code,
            Ok(records) => {
                let worker = state.clone();
                let group = id.to_string();
                let partitions = state.groups.offsets_partitions;
                match blocking(move || groups::write(&worker.partitions, partitions, &group, &records)).await {
                    Ok(()) => {
                        state.groups.groups().remove(id.as_str());
                        state.groups.forget(&id);
                        NONE
                    }
                    Err(code) => code,
                }
            }
        };
        results.push(DeletableGroupResult::default().with_group_id(id).with_error_code(code));
    }
    DeleteGroupsResponse::default().with_results(results)
}

/// Writes what the timers changed: the metadata of classic groups that
/// settled (Stable or Empty) since their last write, KIP-848 groups' expired
/// members, expired offsets and emptied groups' tombstones. One batch per group.
pub async fn persist_settled_groups(state: &Arc<BrokerState>) {
    // Held from the computation to the write: records reach the topic in the order they were computed.
    let _writing = state.groups.writes.lock().await;
    let writes = state.groups.tick(Instant::now());
    if writes.is_empty() {
        return;
    }
    let mut by_group: Vec<(String, Vec<OffsetsRecord>)> = Vec::new();
    for (group, record) in writes {
        match by_group.last_mut() {
            Some((last, records)) if *last == group => records.push(record),
            _ => by_group.push((group, vec![record])),
        }
    }
    let worker = state.clone();
    blocking(move || {
        for (group, records) in by_group {
            match groups::write(&worker.partitions, worker.groups.offsets_partitions, &group, &records) {
                Ok(()) => worker.groups.written(&group, &records),
                Err(code) => tracing::error!(
                    group,
                    code,
                    "cannot write group metadata to {}",
                    offsets_topic::OFFSETS_TOPIC
                ),
            }
        }
    })
    .await;
}
