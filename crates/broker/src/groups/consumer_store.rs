//! A KIP-848 consumer group as records of `__consumer_offsets`, the way
//! Kafka's coordinator keeps it: the records that describe the group now,
//! the difference from what the topic already holds (written before a
//! heartbeat is answered), and the group rebuilt from the replayed records.
//!
//! Each group carries `stored`: every record key's latest value in the
//! topic, exactly what replaying the topic gives. It moves only after a
//! write succeeded, so a failed write is retried with the next change.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::consumer::{ConsumerGroupState, ConsumerMember, TopicRegex};
use super::consumer_records::{
    ConsumerKey, ConsumerValue, CurrentAssignment, MEMBER_STABLE, MEMBER_UNRELEASED_PARTITIONS,
    MEMBER_UNREVOKED_PARTITIONS, MemberMetadata, TopicMetadata,
};
use super::offsets_topic::OffsetsRecord;

/// Every record key's latest value in the offsets topic, for one group.
pub type StoredRecords = BTreeMap<ConsumerKey, ConsumerValue>;

impl ConsumerGroupState {
    /// Whether the group or assignment epoch moved past what the topic holds.
    pub fn epochs_unwritten(&self) -> bool {
        let stored_epoch = match self.stored.get(&ConsumerKey::Metadata) {
            Some(ConsumerValue::Metadata { epoch }) => *epoch,
            _ => 0,
        };
        let stored_assignment_epoch = match self.stored.get(&ConsumerKey::TargetAssignmentMetadata) {
            Some(ConsumerValue::TargetAssignmentMetadata { assignment_epoch }) => *assignment_epoch,
            _ => 0,
        };
        (stored_epoch, stored_assignment_epoch) != (self.group_epoch, self.assignment_epoch)
    }

    /// The records the topic lacks for `group` to match this state. With
    /// `member`, only that member's records and the group's own are
    /// compared, unless an epoch moved: every membership change bumps the
    /// group epoch and every new target the assignment epoch, so other
    /// members' records can only have changed then.
    pub fn unwritten(&self, group: &str, member: Option<&str>) -> Vec<OffsetsRecord> {
        let member = member.filter(|_| !self.epochs_unwritten());
        let mut wanted = self.group_records();
        let mut keys: BTreeSet<ConsumerKey> = wanted.keys().cloned().collect();
        match member {
            Some(id) => {
                if let Some(member) = self.members.get(id) {
                    wanted.extend(self.member_records(member));
                }
                keys.extend(member_keys(id));
            }
            None => {
                for member in self.members.values() {
                    wanted.extend(self.member_records(member));
                }
                keys.extend(wanted.keys().cloned());
                keys.extend(self.stored.keys().cloned());
            }
        }
        let mut records: Vec<(ConsumerKey, Option<ConsumerValue>)> = keys
            .into_iter()
            .filter_map(|key| {
                let value = wanted.remove(&key);
                (self.stored.get(&key) != value.as_ref()).then_some((key, value))
            })
            .collect();
        records.sort_by(|(a, a_value), (b, b_value)| {
            write_order(a, a_value.is_some()).cmp(&write_order(b, b_value.is_some()))
        });
        records
            .into_iter()
            .map(|(key, value)| OffsetsRecord::ConsumerGroup {
                group: group.to_string(),
                key,
                value,
            })
            .collect()
    }

    /// Tombstones for every record the topic holds of the group (its deletion).
    pub fn tombstones(&self, group: &str) -> Vec<OffsetsRecord> {
        let mut keys: Vec<&ConsumerKey> = self.stored.keys().collect();
        keys.sort_by(|a, b| write_order(a, false).cmp(&write_order(b, false)));
        keys.into_iter()
            .map(|key| OffsetsRecord::ConsumerGroup {
                group: group.to_string(),
                key: key.clone(),
                value: None,
            })
            .collect()
    }

    /// Notes records as written to the topic.
    pub fn written(&mut self, records: &[OffsetsRecord]) {
        for record in records {
            if let OffsetsRecord::ConsumerGroup { key, value, .. } = record {
                apply(&mut self.stored, key.clone(), value.clone());
            }
        }
    }

    /// The group as its replayed records describe it; `None` when they
    /// hold nothing (never written, or deleted). Sessions start now, and a
    /// member that still has partitions to revoke gets its rebalance
    /// timeout again from now, as Kafka's coordinator does on load.
    pub fn restore(stored: StoredRecords, now: Instant) -> Option<ConsumerGroupState> {
        if stored.is_empty() {
            return None;
        }
        let mut group = ConsumerGroupState::default();
        let mut currents = BTreeMap::new();
        let mut members = Vec::new();
        for (key, value) in &stored {
            match (key, value) {
                (ConsumerKey::Metadata, ConsumerValue::Metadata { epoch }) => group.group_epoch = *epoch,
                (ConsumerKey::PartitionMetadata, ConsumerValue::PartitionMetadata { topics }) => {
                    group.subscription_metadata = topics
                        .iter()
                        .map(|t| (t.topic_name.clone(), (t.topic_id, t.num_partitions)))
                        .collect();
                }
                (
                    ConsumerKey::TargetAssignmentMetadata,
                    ConsumerValue::TargetAssignmentMetadata { assignment_epoch },
                ) => group.assignment_epoch = *assignment_epoch,
                (ConsumerKey::TargetAssignmentMember(id), ConsumerValue::TargetAssignmentMember { partitions }) => {
                    group.target.insert(id.clone(), partitions.clone());
                }
                (ConsumerKey::CurrentAssignment(id), ConsumerValue::CurrentAssignment(current)) => {
                    currents.insert(id.clone(), current);
                }
                (ConsumerKey::Member(id), ConsumerValue::Member(metadata)) => members.push((id, metadata)),
                // decode() pairs each key with its own kind of value.
                _ => {}
            }
        }
        for (id, metadata) in members {
            let current = currents.get(id);
            let mut subscribed_topics = metadata.subscribed_topic_names.clone();
            subscribed_topics.sort();
            subscribed_topics.dedup();
            let rebalance_timeout = Duration::from_millis(metadata.rebalance_timeout_ms.max(0) as u64);
            let pending = current.map(|c| c.pending_revocation.clone()).unwrap_or_default();
            let mut assigned = current.map(|c| c.assigned.clone()).unwrap_or_default();
            let revocation_deadline = (!pending.is_empty()).then(|| now + rebalance_timeout);
            assigned.extend(pending);
            group.members.insert(
                id.clone(),
                ConsumerMember {
                    id: id.clone(),
                    instance_id: metadata.instance_id.clone(),
                    rack_id: metadata.rack_id.clone(),
                    client_id: metadata.client_id.clone(),
                    client_host: metadata.client_host.clone(),
                    member_epoch: current.map_or(0, |c| c.member_epoch),
                    previous_member_epoch: current.map_or(-1, |c| c.previous_member_epoch),
                    rebalance_timeout,
                    subscribed_topics,
                    // Kept as the member sent it, so it compiled then; matched again at the next heartbeat.
                    subscribed_topic_regex: (metadata.subscribed_topic_regex.as_deref())
                        .and_then(|pattern| TopicRegex::new(pattern).ok()),
                    regex_topics: Vec::new(),
                    server_assignor: metadata.server_assignor.clone(),
                    assigned,
                    last_heartbeat: now,
                    revocation_deadline,
                },
            );
        }
        group.stored = stored;
        Some(group)
    }

    /// The group's own records: its epoch, subscribed topics' metadata and target assignment epoch.
    fn group_records(&self) -> StoredRecords {
        let topics = self
            .subscription_metadata
            .iter()
            .map(|(name, (id, partitions))| TopicMetadata {
                topic_id: *id,
                topic_name: name.clone(),
                num_partitions: *partitions,
                partition_racks: Vec::new(),
            })
            .collect();
        BTreeMap::from([
            (
                ConsumerKey::Metadata,
                ConsumerValue::Metadata {
                    epoch: self.group_epoch,
                },
            ),
            (
                ConsumerKey::PartitionMetadata,
                ConsumerValue::PartitionMetadata { topics },
            ),
            (
                ConsumerKey::TargetAssignmentMetadata,
                ConsumerValue::TargetAssignmentMetadata {
                    assignment_epoch: self.assignment_epoch,
                },
            ),
        ])
    }

    /// One member's records: its subscription, its target and its current assignment.
    fn member_records(&self, member: &ConsumerMember) -> StoredRecords {
        let target = self.target.get(&member.id);
        // Our member owns what it must still give up; Kafka's record lists those apart.
        let pending_revocation: BTreeSet<_> = match (member.revocation_deadline, target) {
            (None, _) => BTreeSet::new(),
            (Some(_), Some(target)) => member.assigned.difference(target).copied().collect(),
            (Some(_), None) => member.assigned.clone(),
        };
        let state = if !pending_revocation.is_empty() {
            MEMBER_UNREVOKED_PARTITIONS
        } else if member.member_epoch == self.assignment_epoch && target != Some(&member.assigned) {
            MEMBER_UNRELEASED_PARTITIONS
        } else {
            MEMBER_STABLE
        };
        let mut records = BTreeMap::from([
            (
                ConsumerKey::Member(member.id.clone()),
                ConsumerValue::Member(MemberMetadata {
                    instance_id: member.instance_id.clone(),
                    rack_id: member.rack_id.clone(),
                    client_id: member.client_id.clone(),
                    client_host: member.client_host.clone(),
                    subscribed_topic_names: member.subscribed_topics.clone(),
                    subscribed_topic_regex: member.subscribed_topic_regex.as_ref().map(|r| r.pattern.clone()),
                    rebalance_timeout_ms: member.rebalance_timeout.as_millis().min(i32::MAX as u128) as i32,
                    server_assignor: member.server_assignor.clone(),
                }),
            ),
            (
                ConsumerKey::CurrentAssignment(member.id.clone()),
                ConsumerValue::CurrentAssignment(CurrentAssignment {
                    member_epoch: member.member_epoch,
                    previous_member_epoch: member.previous_member_epoch,
                    state,
                    assigned: member.assigned.difference(&pending_revocation).copied().collect(),
                    pending_revocation,
                }),
            ),
        ]);
        if let Some(target) = target {
            records.insert(
                ConsumerKey::TargetAssignmentMember(member.id.clone()),
                ConsumerValue::TargetAssignmentMember {
                    partitions: target.clone(),
                },
            );
        }
        records
    }
}

fn member_keys(id: &str) -> [ConsumerKey; 3] {
    [
        ConsumerKey::Member(id.to_string()),
        ConsumerKey::TargetAssignmentMember(id.to_string()),
        ConsumerKey::CurrentAssignment(id.to_string()),
    ]
}

/// Replays one record into `stored`.
pub fn apply(stored: &mut StoredRecords, key: ConsumerKey, value: Option<ConsumerValue>) {
    match value {
        Some(value) => stored.insert(key, value),
        None => stored.remove(&key),
    };
}

/// Kafka's order within one write: a leaving member's records go first
/// (current assignment, target, subscription), then new values from the
/// subscription to the current assignment, and a deleted group's own
/// records last (target epoch, topic metadata, group epoch).
fn write_order(key: &ConsumerKey, upsert: bool) -> (u8, Option<&str>) {
    let rank = match (key, upsert) {
        (ConsumerKey::CurrentAssignment(_), false) => 0,
        (ConsumerKey::TargetAssignmentMember(_), false) => 1,
        (ConsumerKey::Member(_), false) => 2,
        (ConsumerKey::Member(_), true) => 3,
        (ConsumerKey::PartitionMetadata, true) => 4,
        (ConsumerKey::Metadata, true) => 5,
        (ConsumerKey::TargetAssignmentMember(_), true) => 6,
        (ConsumerKey::TargetAssignmentMetadata, true) => 7,
        (ConsumerKey::CurrentAssignment(_), true) => 8,
        (ConsumerKey::TargetAssignmentMetadata, false) => 9,
        (ConsumerKey::PartitionMetadata, false) => 10,
        (ConsumerKey::Metadata, false) => 11,
    };
    let member = match key {
        ConsumerKey::Member(id) | ConsumerKey::TargetAssignmentMember(id) | ConsumerKey::CurrentAssignment(id) => {
            Some(id.as_str())
        }
        _ => None,
    };
    (rank, member)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::groups::consumer::test_heartbeats::{self, topics};
    use crate::groups::consumer::{Heartbeat, LEAVE_EPOCH};

    /// A heartbeat from a member in a rack that also subscribes by a
    /// regular expression (joining), so that both are stored too.
    fn beat(member: &str, epoch: i32, owned: Option<&[i32]>) -> Heartbeat {
        Heartbeat {
            rack_id: Some("rack".into()),
            subscribed_topic_regex: (epoch == 0).then(|| Some(TopicRegex::new("t-.*").unwrap())),
            ..test_heartbeats::beat(member, epoch, owned)
        }
    }

    /// Writes what the group lacks into `log` (the topic's replayed image), as the coordinator does.
    fn write(group: &mut ConsumerGroupState, log: &mut StoredRecords, member: Option<&str>) -> usize {
        let records = group.unwritten("g", member);
        for record in &records {
            let encoded = super::super::offsets_topic::encode(record);
            let decoded = super::super::offsets_topic::decode(&encoded.key, encoded.value.as_deref());
            let Some(OffsetsRecord::ConsumerGroup { key, value, .. }) = decoded else {
                panic!("{record:?} does not decode");
            };
            apply(log, key, value);
        }
        group.written(&records);
        records.len()
    }

    /// (id, epoch, previous epoch, owned, revocation pending, regular expression) of one member.
    type MemberView = (String, i32, i32, BTreeSet<(uuid::Uuid, i32)>, bool, Option<String>);

    fn members(group: &ConsumerGroupState) -> Vec<MemberView> {
        group
            .members
            .values()
            .map(|m| {
                (
                    m.id.clone(),
                    m.member_epoch,
                    m.previous_member_epoch,
                    m.assigned.clone(),
                    m.revocation_deadline.is_some(),
                    m.subscribed_topic_regex.as_ref().map(|r| r.pattern.clone()),
                )
            })
            .collect()
    }

    fn assert_restores(group: &ConsumerGroupState, log: &StoredRecords) -> ConsumerGroupState {
        let restored = ConsumerGroupState::restore(log.clone(), Instant::now()).expect("a group");
        assert_eq!(
            (restored.group_epoch, restored.assignment_epoch),
            (group.group_epoch, group.assignment_epoch)
        );
        assert_eq!(restored.target, group.target);
        assert_eq!(restored.subscription_metadata, group.subscription_metadata);
        assert_eq!(members(&restored), members(group));
        assert_eq!(restored.state_name(), group.state_name());
        assert_eq!(&restored.stored, log);
        assert!(
            restored.unwritten("g", None).is_empty(),
            "nothing to write after a load"
        );
        restored
    }

    #[test]
    fn a_group_mid_rebalance_comes_back_from_its_records() {
        let mut group = ConsumerGroupState::default();
        let mut log = StoredRecords::new();
        let now = Instant::now();
        let a = group.heartbeat(beat("a", 0, Some(&[])), &topics, 10, now).unwrap();
        assert!(
            write(&mut group, &mut log, Some("a")) >= 6,
            "a new group writes all its records"
        );
        assert_restores(&group, &log);
        let steady = group
            .heartbeat(beat("a", a.member_epoch, None), &topics, 10, now)
            .unwrap();
        assert_eq!(steady.member_epoch, a.member_epoch);
        assert_eq!(
            write(&mut group, &mut log, Some("a")),
            0,
            "a heartbeat that changed nothing writes nothing"
        );

        group.heartbeat(beat("b", 0, Some(&[])), &topics, 10, now).unwrap();
        write(&mut group, &mut log, Some("b"));
        // a is told to give up half: it keeps its epoch and owes a revocation.
        let told = group
            .heartbeat(beat("a", a.member_epoch, None), &topics, 10, now)
            .unwrap();
        assert_eq!(told.assignment.as_ref().unwrap().len(), 2);
        assert_eq!(
            write(&mut group, &mut log, Some("a")),
            1,
            "only a's current assignment changed"
        );
        assert_eq!(group.state_name(), "Reconciling");
        let mut restored = assert_restores(&group, &log);

        // The restored group carries on where the old one stopped.
        let kept: Vec<i32> = told.assignment.unwrap().iter().map(|(_, p)| *p).collect();
        let done = restored
            .heartbeat(beat("a", a.member_epoch, Some(&kept)), &topics, 10, now)
            .unwrap();
        assert!(done.member_epoch > a.member_epoch);
        let b = restored
            .heartbeat(beat("b", group.members["b"].member_epoch, Some(&[])), &topics, 10, now)
            .unwrap();
        assert_eq!(b.assignment.unwrap().len(), 2, "b receives what a released");
        assert_eq!(restored.state_name(), "Stable");
    }

    #[test]
    fn leaving_members_and_deleted_groups_leave_tombstones() {
        let mut group = ConsumerGroupState::default();
        let mut log = StoredRecords::new();
        let now = Instant::now();
        for member in ["a", "b"] {
            group.heartbeat(beat(member, 0, Some(&[])), &topics, 10, now).unwrap();
            write(&mut group, &mut log, Some(member));
        }
        group.heartbeat(beat("b", LEAVE_EPOCH, None), &topics, 10, now).unwrap();
        let records = group.unwritten("g", Some("b"));
        let tombstones: Vec<&ConsumerKey> = records
            .iter()
            .filter_map(|r| match r {
                OffsetsRecord::ConsumerGroup { key, value: None, .. } => Some(key),
                _ => None,
            })
            .collect();
        assert_eq!(
            tombstones,
            [
                &ConsumerKey::CurrentAssignment("b".into()),
                &ConsumerKey::TargetAssignmentMember("b".into()),
                &ConsumerKey::Member("b".into()),
            ],
            "in Kafka's order, before the new group epoch"
        );
        write(&mut group, &mut log, Some("b"));
        let restored = assert_restores(&group, &log);
        assert!(!restored.members.contains_key("b"));

        // Session expiry: the timer writes the whole group's difference.
        assert!(group.expire(Duration::from_secs(1), now + Duration::from_secs(5)));
        assert!(group.epochs_unwritten());
        write(&mut group, &mut log, None);
        assert_eq!(assert_restores(&group, &log).state_name(), "Empty");

        for record in group.tombstones("g") {
            let OffsetsRecord::ConsumerGroup { key, value, .. } = record else {
                unreachable!()
            };
            apply(&mut log, key, value);
        }
        assert!(log.is_empty());
        assert!(
            ConsumerGroupState::restore(log, now).is_none(),
            "a deleted group stays deleted"
        );
    }
}
