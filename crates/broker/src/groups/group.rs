//! One classic consumer group: members, generation and the rebalance state
//! machine (Empty → PreparingRebalance → CompletingRebalance → Stable), as
//! Kafka's group coordinator runs it. Plain data under the coordinator's
//! lock: no I/O and no waiting here; responses travel on oneshot channels.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

use super::consumer::ConsumerGroupState;
use super::offsets_topic::{CommittedOffset, GroupSnapshot, MemberSnapshot};
use crate::errors::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    Dead,
}

impl GroupState {
    /// The names Kafka reports in ListGroups and DescribeGroups.
    pub fn name(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

/// The answer to one JoinGroup.
#[derive(Debug, Clone, Default)]
pub struct JoinOutcome {
    pub error_code: i16,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub leader: String,
    pub member_id: String,
    /// Only the leader gets the members and their metadata for the chosen protocol.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

/// The answer to one SyncGroup.
#[derive(Debug, Clone, Default)]
pub struct SyncOutcome {
    pub error_code: i16,
    pub protocol_type: Option<String>,
    pub protocol_name: Option<String>,
    pub assignment: Bytes,
}

pub struct JoinRequest {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocol_type: String,
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+ (KIP-394): a new dynamic member first gets its id, then rejoins with it.
    pub require_known_member_id: bool,
}

pub struct Member {
    pub id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_heartbeat: Instant,
    join_waiter: Option<oneshot::Sender<JoinOutcome>>,
    sync_waiter: Option<oneshot::Sender<SyncOutcome>>,
}

impl Member {
    /// The metadata this member sent for `protocol`.
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(name, _)| name == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

pub struct GroupLimits {
    pub initial_rebalance_delay: Duration,
    pub min_session_timeout: Duration,
    pub max_session_timeout: Duration,
    pub max_size: usize,
    /// `group.consumer.session.timeout.ms` (KIP-848 groups).
    pub consumer_session_timeout: Duration,
    /// `group.consumer.heartbeat.interval.ms` (KIP-848 groups).
    pub consumer_heartbeat_interval: Duration,
}

pub struct Group {
    pub id: String,
    pub state: GroupState,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub generation: i32,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out by KIP-394 whose owners have not rejoined yet, with their expiry.
    pending_members: HashMap<String, Instant>,
    /// group.instance.id -> member id, for static members (KIP-345).
    static_members: HashMap<String, String>,
    pub offsets: HashMap<(String, i32), CommittedOffset>,
    /// Set once a member uses the KIP-848 consumer protocol: the group's type is then "consumer".
    pub consumer: Option<ConsumerGroupState>,
    pub state_timestamp_ms: i64,
    rebalance_deadline: Option<Instant>,
    initial_delay_until: Option<Instant>,
}

pub type JoinResult = Result<oneshot::Receiver<JoinOutcome>, Box<JoinOutcome>>;
pub type SyncResult = Result<oneshot::Receiver<SyncOutcome>, SyncOutcome>;

fn failed_join(error_code: i16, member_id: &str) -> Box<JoinOutcome> {
    Box::new(JoinOutcome {
        error_code,
        generation: -1,
        member_id: member_id.to_string(),
        ..Default::default()
    })
}

fn failed_sync(error_code: i16) -> SyncOutcome {
    SyncOutcome {
        error_code,
        ..Default::default()
    }
}

impl Group {
    pub fn new(id: &str) -> Group {
        Group {
            id: id.to_string(),
            state: GroupState::Empty,
            protocol_type: None,
            protocol: None,
            generation: 0,
            leader: None,
            members: BTreeMap::new(),
            pending_members: HashMap::new(),
            static_members: HashMap::new(),
            offsets: HashMap::new(),
            consumer: None,
            state_timestamp_ms: super::now_ms(),
            rebalance_deadline: None,
            initial_delay_until: None,
        }
    }

    /// A group as loaded from the offsets topic: its members are kept and
    /// must heartbeat within their session timeout, as after a coordinator move.
    pub fn restore(id: &str, snapshot: GroupSnapshot, now: Instant) -> Group {
        let mut group = Group::new(id);
        group.protocol_type = Some(snapshot.protocol_type).filter(|p| !p.is_empty());
        group.protocol = snapshot.protocol;
        group.generation = snapshot.generation;
        group.leader = snapshot.leader;
        group.state_timestamp_ms = snapshot.state_timestamp_ms;
        for member in snapshot.members {
            if let Some(instance) = &member.group_instance_id {
                group.static_members.insert(instance.clone(), member.member_id.clone());
            }
            let protocol = group.protocol.clone().unwrap_or_default();
            group.members.insert(
                member.member_id.clone(),
                Member {
                    id: member.member_id,
                    group_instance_id: member.group_instance_id,
                    client_id: member.client_id,
                    client_host: member.client_host,
                    session_timeout: Duration::from_millis(member.session_timeout_ms.max(0) as u64),
                    rebalance_timeout: Duration::from_millis(member.rebalance_timeout_ms.max(0) as u64),
                    protocols: vec![(protocol, Bytes::from(member.subscription))],
                    assignment: Bytes::from(member.assignment),
                    last_heartbeat: now,
                    join_waiter: None,
                    sync_waiter: None,
                },
            );
        }
        group.state = if group.members.is_empty() {
            GroupState::Empty
        } else {
            GroupState::Stable
        };
        group
    }

    pub fn snapshot(&self) -> GroupSnapshot {
        GroupSnapshot {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            state_timestamp_ms: self.state_timestamp_ms,
            members: self
                .members
                .values()
                .map(|member| MemberSnapshot {
                    member_id: member.id.clone(),
                    group_instance_id: member.group_instance_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    rebalance_timeout_ms: member.rebalance_timeout.as_millis() as i32,
                    session_timeout_ms: member.session_timeout.as_millis() as i32,
                    subscription: member.metadata(self.protocol.as_deref().unwrap_or_default()).to_vec(),
                    assignment: member.assignment.to_vec(),
                })
                .collect(),
        }
    }

    fn set_state(&mut self, state: GroupState) {
        self.state = state;
        self.state_timestamp_ms = super::now_ms();
    }

    pub fn join(&mut self, request: JoinRequest, limits: &GroupLimits, now: Instant) -> JoinResult {
        let member_id = request.member_id.clone();
        if self.consumer.as_ref().is_some_and(|c| !c.members.is_empty()) {
            return Err(failed_join(INCONSISTENT_GROUP_PROTOCOL, &member_id));
        }
        if request.session_timeout < limits.min_session_timeout || request.session_timeout > limits.max_session_timeout
        {
            return Err(failed_join(INVALID_SESSION_TIMEOUT, &member_id));
        }
        if request.protocol_type.is_empty() || request.protocols.is_empty() || !self.supports(&request) {
            return Err(failed_join(INCONSISTENT_GROUP_PROTOCOL, &member_id));
        }
        let known_static = request
            .group_instance_id
            .as_ref()
            .and_then(|i| self.static_members.get(i).cloned());
        let member_id = match (member_id.is_empty(), known_static) {
            // A static member coming back (or a new instance of it): it takes
            // over the old member's place under a new id; the old id is fenced.
            (true, Some(old_id)) => {
                let new_id = format!(
                    "{}-{}",
                    request.group_instance_id.as_deref().unwrap_or_default(),
                    uuid::Uuid::new_v4()
                );
                if let Some(mut member) = self.members.remove(&old_id) {
                    member.id = new_id.clone();
                    if let Some(waiter) = member.join_waiter.take() {
                        let _ = waiter.send(*failed_join(FENCED_INSTANCE_ID, &old_id));
                    }
                    if self.leader.as_deref() == Some(old_id.as_str()) {
                        self.leader = Some(new_id.clone());
                    }
                    self.members.insert(new_id.clone(), member);
                }
                self.static_members
                    .insert(request.group_instance_id.clone().unwrap_or_default(), new_id.clone());
                new_id
            }
            (true, None) => {
                if self.members.len() + self.pending_members.len() >= limits.max_size {
                    return Err(failed_join(GROUP_MAX_SIZE_REACHED, ""));
                }
                let new_id = format!("{}-{}", request.client_id, uuid::Uuid::new_v4());
                if request.require_known_member_id && request.group_instance_id.is_none() {
                    self.pending_members
                        .insert(new_id.clone(), now + request.session_timeout);
                    return Err(failed_join(MEMBER_ID_REQUIRED, &new_id));
                }
                if let Some(instance) = &request.group_instance_id {
                    self.static_members.insert(instance.clone(), new_id.clone());
                }
                new_id
            }
            (false, Some(current)) if current != member_id => return Err(failed_join(FENCED_INSTANCE_ID, &member_id)),
            (false, _) => {
                if self.pending_members.remove(&member_id).is_none() && !self.members.contains_key(&member_id) {
                    return Err(failed_join(UNKNOWN_MEMBER_ID, &member_id));
                }
                member_id
            }
        };

        let (sender, receiver) = oneshot::channel();
        let unchanged = self
            .members
            .get(&member_id)
            .is_some_and(|m| m.protocols == request.protocols);
        let member = self.members.entry(member_id.clone()).or_insert_with(|| Member {
            id: member_id.clone(),
            group_instance_id: request.group_instance_id.clone(),
            client_id: request.client_id.clone(),
            client_host: request.client_host.clone(),
            session_timeout: request.session_timeout,
            rebalance_timeout: request.rebalance_timeout,
            protocols: Vec::new(),
            assignment: Bytes::new(),
            last_heartbeat: now,
            join_waiter: None,
            sync_waiter: None,
        });
        member.protocols = request.protocols;
        member.session_timeout = request.session_timeout;
        member.rebalance_timeout = request.rebalance_timeout;
        member.last_heartbeat = now;
        if self.protocol_type.is_none() {
            self.protocol_type = Some(request.protocol_type);
        }
        // A follower rejoining a stable group with the same metadata changes
        // nothing: it gets the current generation back without a rebalance.
        let is_leader = self.leader.as_deref() == Some(member_id.as_str());
        if self.state == GroupState::Stable && unchanged && !is_leader {
            let _ = sender.send(self.join_outcome(&member_id, false));
            return Ok(receiver);
        }
        self.members.get_mut(&member_id).expect("inserted above").join_waiter = Some(sender);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(limits, now);
        }
        self.try_complete_join(now);
        Ok(receiver)
    }

    /// Whether the request's protocols fit the group's type and share one with every member.
    fn supports(&self, request: &JoinRequest) -> bool {
        if self.members.is_empty() {
            return true;
        }
        if self
            .protocol_type
            .as_deref()
            .is_some_and(|t| t != request.protocol_type)
        {
            return false;
        }
        request.protocols.iter().any(|(name, _)| {
            self.members
                .values()
                .filter(|m| m.id != request.member_id)
                .all(|m| m.protocols.iter().any(|(n, _)| n == name))
        })
    }

    fn prepare_rebalance(&mut self, limits: &GroupLimits, now: Instant) {
        if self.state == GroupState::CompletingRebalance {
            for member in self.members.values_mut() {
                if let Some(waiter) = member.sync_waiter.take() {
                    let _ = waiter.send(failed_sync(REBALANCE_IN_PROGRESS));
                }
            }
        }
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.rebalance_deadline = Some(now + timeout);
        // A new group waits group.initial.rebalance.delay.ms for more members
        // before its first generation, so they join one rebalance, not many.
        self.initial_delay_until =
            (self.state == GroupState::Empty).then(|| now + limits.initial_rebalance_delay.min(timeout));
        self.set_state(GroupState::PreparingRebalance);
    }

    /// Completes the join phase once every member has rejoined (and a new
    /// group's initial delay has passed), or at the rebalance deadline,
    /// dropping the members that did not rejoin.
    pub fn try_complete_join(&mut self, now: Instant) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self.pending_members.is_empty() && self.members.values().all(|m| m.join_waiter.is_some());
        let delay_over = self.initial_delay_until.is_none_or(|until| now >= until);
        let deadline_passed = self.rebalance_deadline.is_some_and(|deadline| now >= deadline);
        if !(deadline_passed || (all_joined && delay_over)) {
            return;
        }
        let stale: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in stale {
            self.remove_member(&id);
        }
        self.pending_members.clear();
        self.generation += 1;
        self.rebalance_deadline = None;
        self.initial_delay_until = None;
        if self.members.is_empty() {
            self.protocol = None;
            self.leader = None;
            self.set_state(GroupState::Empty);
            return;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|leader| self.members.contains_key(leader))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.set_state(GroupState::CompletingRebalance);
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let is_leader = self.leader.as_deref() == Some(id.as_str());
            let outcome = self.join_outcome(&id, is_leader);
            if let Some(waiter) = self.members.get_mut(&id).and_then(|m| m.join_waiter.take()) {
                let _ = waiter.send(outcome);
            }
        }
    }

    fn join_outcome(&self, member_id: &str, with_members: bool) -> JoinOutcome {
        let protocol = self.protocol.clone().unwrap_or_default();
        let members = match with_members {
            true => self
                .members
                .values()
                .map(|m| (m.id.clone(), m.group_instance_id.clone(), m.metadata(&protocol)))
                .collect(),
            false => Vec::new(),
        };
        JoinOutcome {
            error_code: NONE,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            leader: self.leader.clone().unwrap_or_default(),
            member_id: member_id.to_string(),
            members,
        }
    }

    /// Kafka's vote: every member votes for its most preferred protocol among
    /// those all members support; the most votes wins.
    fn select_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(name, _)| name)
            .filter(|name| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(n, _)| n == *name))
            })
            .collect();
        let mut votes: Vec<(&String, usize)> = candidates.iter().map(|c| (*c, 0)).collect();
        for member in self.members.values() {
            if let Some((name, _)) = member.protocols.iter().find(|(name, _)| candidates.contains(&name)) {
                votes.iter_mut().find(|(c, _)| *c == name).expect("a candidate").1 += 1;
            }
        }
        // max_by_key keeps the last maximum; iterate reversed so ties go to the first candidate.
        votes
            .iter()
            .rev()
            .max_by_key(|(_, count)| *count)
            .map(|(name, _)| (*name).clone())
    }

    fn remove_member(&mut self, member_id: &str) {
        if let Some(member) = self.members.remove(member_id)
            && let Some(instance) = member.group_instance_id
            && self.static_members.get(&instance).is_some_and(|id| id == member_id)
        {
            self.static_members.remove(&instance);
        }
    }

    /// Checks that `member_id` (with `instance_id`) belongs to the group at `generation`.
    fn check_member(&self, member_id: &str, instance_id: Option<&str>, generation: i32) -> i16 {
        if let Some(instance) = instance_id
            && self.static_members.get(instance).is_some_and(|id| id != member_id)
        {
            return FENCED_INSTANCE_ID;
        }
        if !self.members.contains_key(member_id) {
            return UNKNOWN_MEMBER_ID;
        }
        if generation != self.generation {
            return ILLEGAL_GENERATION;
        }
        NONE
    }

    pub fn sync(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        protocol: (Option<&str>, Option<&str>),
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        let error = self.check_member(member_id, instance_id, generation);
        if error != NONE {
            return Err(failed_sync(error));
        }
        let (protocol_type, protocol_name) = protocol;
        if protocol_type.is_some_and(|t| Some(t) != self.protocol_type.as_deref())
            || protocol_name.is_some_and(|n| Some(n) != self.protocol.as_deref())
        {
            return Err(failed_sync(INCONSISTENT_GROUP_PROTOCOL));
        }
        match self.state {
            GroupState::PreparingRebalance => Err(failed_sync(REBALANCE_IN_PROGRESS)),
            GroupState::Empty | GroupState::Dead => Err(failed_sync(UNKNOWN_MEMBER_ID)),
            GroupState::Stable => Err(self.sync_outcome(member_id)),
            GroupState::CompletingRebalance => {
                let (sender, receiver) = oneshot::channel();
                self.members.get_mut(member_id).expect("checked").sync_waiter = Some(sender);
                if self.leader.as_deref() == Some(member_id) {
                    let mut assignments: HashMap<String, Bytes> = assignments.into_iter().collect();
                    for member in self.members.values_mut() {
                        member.assignment = assignments.remove(&member.id).unwrap_or_default();
                    }
                    self.set_state(GroupState::Stable);
                    let ids: Vec<String> = self.members.keys().cloned().collect();
                    for id in ids {
                        let outcome = self.sync_outcome(&id);
                        if let Some(waiter) = self.members.get_mut(&id).and_then(|m| m.sync_waiter.take()) {
                            let _ = waiter.send(outcome);
                        }
                    }
                }
                Ok(receiver)
            }
        }
    }

    fn sync_outcome(&self, member_id: &str) -> SyncOutcome {
        SyncOutcome {
            error_code: NONE,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self
                .members
                .get(member_id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    pub fn heartbeat(&mut self, member_id: &str, instance_id: Option<&str>, generation: i32, now: Instant) -> i16 {
        let error = self.check_member(member_id, instance_id, generation);
        if error != NONE {
            return error;
        }
        self.members.get_mut(member_id).expect("checked").last_heartbeat = now;
        match self.state {
            GroupState::PreparingRebalance => REBALANCE_IN_PROGRESS,
            _ => NONE,
        }
    }

    /// Removes one member (LeaveGroup); the rest rebalance.
    pub fn leave(&mut self, member_id: &str, instance_id: Option<&str>, limits: &GroupLimits, now: Instant) -> i16 {
        let member_id = match (member_id, instance_id) {
            // KIP-345: a static member may leave by instance id alone.
            ("", Some(instance)) => match self.static_members.get(instance) {
                Some(id) => id.clone(),
                None => return UNKNOWN_MEMBER_ID,
            },
            (id, Some(instance)) if self.static_members.get(instance).is_some_and(|known| known != id) => {
                return FENCED_INSTANCE_ID;
            }
            (id, _) => id.to_string(),
        };
        if !self.members.contains_key(&member_id) {
            return UNKNOWN_MEMBER_ID;
        }
        if let Some(member) = self.members.get_mut(&member_id) {
            if let Some(waiter) = member.join_waiter.take() {
                let _ = waiter.send(*failed_join(UNKNOWN_MEMBER_ID, &member_id));
            }
            if let Some(waiter) = member.sync_waiter.take() {
                let _ = waiter.send(failed_sync(UNKNOWN_MEMBER_ID));
            }
        }
        self.remove_member(&member_id);
        self.member_gone(limits, now);
        NONE
    }

    fn member_gone(&mut self, limits: &GroupLimits, now: Instant) {
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => self.prepare_rebalance(limits, now),
            GroupState::Empty | GroupState::Dead | GroupState::PreparingRebalance => {}
        }
        self.try_complete_join(now);
    }

    /// Removes members whose session expired and completes a join phase
    /// whose deadline passed. Returns whether the group changed.
    pub fn expire(&mut self, limits: &GroupLimits, now: Instant) -> bool {
        if let Some(consumer) = &mut self.consumer {
            return consumer.expire(limits.consumer_session_timeout, now);
        }
        let before = (self.state, self.generation, self.members.len());
        self.pending_members.retain(|_, expiry| *expiry > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join_waiter.is_none() && m.last_heartbeat + m.session_timeout < now)
            .map(|m| m.id.clone())
            .collect();
        for id in &expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            if let Some(waiter) = self.members.get_mut(id).and_then(|m| m.sync_waiter.take()) {
                let _ = waiter.send(failed_sync(UNKNOWN_MEMBER_ID));
            }
            self.remove_member(id);
        }
        if !expired.is_empty() {
            self.member_gone(limits, now);
        }
        self.try_complete_join(now);
        before != (self.state, self.generation, self.members.len())
    }

    /// Who may commit offsets for this group: members of the current
    /// generation, or anyone (generation -1, no member id) while it is empty.
    pub fn validate_commit(&self, member_id: &str, instance_id: Option<&str>, generation: i32) -> i16 {
        if let Some(consumer) = &self.consumer {
            return consumer.validate_member_epoch(member_id, generation);
        }
        if generation < 0 && member_id.is_empty() {
            return if self.members.is_empty() {
                NONE
            } else {
                UNKNOWN_MEMBER_ID
            };
        }
        let error = self.check_member(member_id, instance_id, generation);
        if error != NONE {
            return error;
        }
        if self.state == GroupState::CompletingRebalance {
            return REBALANCE_IN_PROGRESS;
        }
        NONE
    }

    /// "consumer" for KIP-848 groups, "classic" otherwise (ListGroups' group type).
    pub fn group_type(&self) -> &'static str {
        if self.consumer.is_some() { "consumer" } else { "classic" }
    }

    /// Whether the coordinator's timer has anything to do for this group:
    /// sessions to expire, a rebalance to complete, changes to write.
    pub fn needs_timer(&self) -> bool {
        !self.members.is_empty()
            || !self.pending_members.is_empty()
            || !matches!(self.state, GroupState::Empty | GroupState::Dead)
            || self
                .consumer
                .as_ref()
                .is_some_and(|c| !c.members.is_empty() || c.epochs_unwritten())
    }

    /// No member of either protocol.
    pub fn has_no_members(&self) -> bool {
        self.members.is_empty() && self.consumer.as_ref().is_none_or(|c| c.members.is_empty())
    }

    pub fn state_name(&self) -> &'static str {
        match &self.consumer {
            Some(consumer) => consumer.state_name(),
            None => self.state.name(),
        }
    }

    /// The topics the members subscribe to, from the consumer protocol's metadata.
    pub fn subscribed_topics(&self) -> Vec<String> {
        if let Some(consumer) = &self.consumer {
            let mut topics: Vec<String> = consumer
                .members
                .values()
                .flat_map(|m| m.subscription().cloned())
                .collect();
            topics.sort();
            topics.dedup();
            return topics;
        }
        use kafka_protocol::messages::ConsumerProtocolSubscription;
        use kafka_protocol::protocol::Decodable;
        if self.protocol_type.as_deref() != Some("consumer") {
            return Vec::new();
        }
        let protocol = self.protocol.clone().unwrap_or_default();
        let mut topics = Vec::new();
        for member in self.members.values() {
            let mut metadata = member.metadata(&protocol);
            if metadata.len() < 2 {
                continue;
            }
            let version = i16::from_be_bytes([metadata[0], metadata[1]]);
            bytes::Buf::advance(&mut metadata, 2);
            if let Ok(subscription) = ConsumerProtocolSubscription::decode(&mut metadata, version.clamp(0, 3)) {
                topics.extend(subscription.topics.into_iter().map(|t| t.to_string()));
            }
        }
        topics.sort();
        topics.dedup();
        topics
    }
}
