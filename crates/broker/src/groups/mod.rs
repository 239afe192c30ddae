//! The group coordinator: classic consumer groups (JoinGroup, SyncGroup,
//! Heartbeat, LeaveGroup) and committed offsets, made durable in the
//! `__consumer_offsets` topic in Kafka's schemas and rebuilt from it on start.
//!
//! Thread safety: the groups live behind one mutex held only for in-memory
//! work; responses that must wait (a join or sync in progress) are delivered
//! on oneshot channels. Writes to the offsets topic are serialised by an
//! async mutex so the log and memory apply them in the same order.

pub mod assignors;
pub mod consumer;
pub mod consumer_records;
pub mod consumer_store;
pub mod group;
pub mod offsets_topic;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::config::{BrokerConfig, ConfigError};
use crate::internal_topics;
use crate::partitions::{PartitionManager, Topic, TopicError};
use consumer::ConsumerGroupState;
use consumer_store::StoredRecords;
use group::{Group, GroupLimits, GroupState};
use offsets_topic::{CommittedOffset, OFFSETS_TOPIC, OffsetsRecord};

/// An offset committed inside a transaction: (group, (topic, partition), value).
pub type PendingOffset = (String, (String, i32), CommittedOffset);

pub fn now_ms() -> i64 {
    crate::api::now_ms()
}

pub struct GroupCoordinator {
    groups: Mutex<HashMap<String, Group>>,
    pub limits: GroupLimits,
    /// `offsets.topic.num.partitions`
    pub offsets_partitions: i32,
    /// `offset.metadata.max.bytes`
    pub metadata_max_bytes: usize,
    /// Serialises offsets-topic writes with the in-memory changes they back.
    pub writes: tokio::sync::Mutex<()>,
    /// (generation, state) of each group as last written to the offsets topic.
    persisted: Mutex<HashMap<String, (i32, GroupState)>>,
    /// The groups the timer walks (see [`GroupCoordinator::tick`]). Locked after `groups`.
    timed: Mutex<HashSet<String>>,
    /// `offsets.retention.minutes`
    pub offsets_retention: Duration,
    /// Offsets committed inside ongoing transactions (TxnOffsetCommit), by
    /// producer id: they count once the transaction commits.
    pending_txn_offsets: Mutex<HashMap<i64, Vec<PendingOffset>>>,
    /// `offsets.retention.check.interval.ms`, and when offsets were last checked.
    offsets_retention_check: (Duration, Mutex<Instant>),
}

impl GroupCoordinator {
    pub fn new(config: &BrokerConfig) -> Result<GroupCoordinator, ConfigError> {
        // Kafka's validators: atLeast(1) where it has one, the INT range everywhere.
        let millis = |key: &str| Ok::<_, ConfigError>(Duration::from_millis(config.parse::<u32>(key)? as u64));
        let positive = |key: &str| config.parse_at_least::<i32>(key, 1);
        let positive_millis = |key: &str| Ok::<_, ConfigError>(Duration::from_millis(positive(key)? as u64));
        Ok(GroupCoordinator {
            groups: Mutex::new(HashMap::new()),
            limits: GroupLimits {
                initial_rebalance_delay: millis("group.initial.rebalance.delay.ms")?,
                min_session_timeout: millis("group.min.session.timeout.ms")?,
                max_session_timeout: millis("group.max.session.timeout.ms")?,
                max_size: positive("group.max.size")? as usize,
                consumer_session_timeout: positive_millis("group.consumer.session.timeout.ms")?,
                consumer_heartbeat_interval: positive_millis("group.consumer.heartbeat.interval.ms")?,
            },
            // At most as many as a topic may have (CreateTopics' limit).
            offsets_partitions: positive("offsets.topic.num.partitions")?.min(10_000),
            metadata_max_bytes: config.parse::<u32>("offset.metadata.max.bytes")? as usize,
            writes: tokio::sync::Mutex::new(()),
            persisted: Mutex::new(HashMap::new()),
            timed: Mutex::new(HashSet::new()),
            pending_txn_offsets: Mutex::new(HashMap::new()),
            offsets_retention: Duration::from_secs(60 * positive("offsets.retention.minutes")? as u64),
            offsets_retention_check: (
                positive_millis("offsets.retention.check.interval.ms")?,
                Mutex::new(Instant::now()),
            ),
        })
    }

    pub fn groups(&self) -> MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuilds groups and committed offsets by replaying the offsets topic.
    pub fn load(&self, partitions: &PartitionManager) -> Result<(), TopicError> {
        let Some(topic) = partitions.topic(OFFSETS_TOPIC) else {
            return Ok(());
        };
        let mut snapshots = HashMap::new();
        let mut consumer_groups: HashMap<String, StoredRecords> = HashMap::new();
        let mut groups = self.groups();
        let mut pending = self.pending_txn_offsets.lock().unwrap_or_else(|e| e.into_inner());
        for partition in &topic.partitions {
            for record in internal_topics::read_all(&partition.log)? {
                if record.control {
                    // A transaction marker decides the offsets committed inside that transaction.
                    let committed = pending.remove(&record.producer_id).unwrap_or_default();
                    if internal_topics::marker_commits(&record) == Some(true) {
                        for (group, key, value) in committed {
                            groups
                                .entry(group.clone())
                                .or_insert_with(|| Group::new(&group))
                                .offsets
                                .insert(key, value);
                        }
                    }
                    continue;
                }
                let Some(key) = &record.key else { continue };
                match offsets_topic::decode(key, record.value.as_deref()) {
                    Some(OffsetsRecord::Offset {
                        group,
                        topic,
                        partition,
                        value: Some(value),
                    }) if record.transactional => {
                        pending
                            .entry(record.producer_id)
                            .or_default()
                            .push((group, (topic, partition), value));
                    }
                    Some(OffsetsRecord::Offset {
                        group,
                        topic,
                        partition,
                        value,
                    }) => {
                        let entry = groups.entry(group.clone()).or_insert_with(|| Group::new(&group));
                        match value {
                            Some(value) => entry.offsets.insert((topic, partition), value),
                            None => entry.offsets.remove(&(topic, partition)),
                        };
                    }
                    Some(OffsetsRecord::Group { group, value }) => {
                        snapshots.insert(group, value);
                    }
                    Some(OffsetsRecord::ConsumerGroup { group, key, value }) => {
                        consumer_store::apply(consumer_groups.entry(group).or_default(), key, value);
                    }
                    None => {}
                }
            }
        }
        drop(pending);
        let now = Instant::now();
        let mut persisted = self.persisted.lock().unwrap_or_else(|e| e.into_inner());
        for (id, snapshot) in snapshots {
            match snapshot {
                Some(snapshot) => {
                    let offsets = groups.remove(&id).map(|g| g.offsets).unwrap_or_default();
                    let mut group = Group::restore(&id, snapshot, now);
                    group.offsets = offsets;
                    persisted.insert(id.clone(), (group.generation, group.state));
                    groups.insert(id, group);
                }
                None => {
                    if groups.get(&id).is_some_and(|g| g.offsets.is_empty()) {
                        groups.remove(&id);
                    }
                }
            }
        }
        // KIP-848 groups come back with their epochs and assignments: their
        // members go on heartbeating as if the coordinator had not moved.
        let mut consumer_count = 0;
        for (id, stored) in consumer_groups {
            if let Some(consumer) = ConsumerGroupState::restore(stored, now) {
                consumer_count += 1;
                groups.entry(id.clone()).or_insert_with(|| Group::new(&id)).consumer = Some(consumer);
            }
        }
        let mut timed = self.timed.lock().unwrap_or_else(|e| e.into_inner());
        timed.extend(groups.values().filter(|g| g.needs_timer()).map(|g| g.id.clone()));
        tracing::info!(
            groups = groups.len(),
            consumer_groups = consumer_count,
            "loaded consumer groups from {OFFSETS_TOPIC}"
        );
        Ok(())
    }

    /// Expires sessions and overdue rebalances, and (every
    /// offsets.retention.check.interval.ms) expired offsets; returns the
    /// records to write: metadata of newly Stable or Empty classic groups,
    /// KIP-848 groups' changes, tombstones. Call it with `writes` held, so
    /// the records reach the topic in the order they were computed.
    ///
    /// Only groups in `timed` are walked: a group with nothing left to time
    /// (no members, no rebalance, nothing unwritten) leaves it, and so does
    /// a deleted or expired group; a join or heartbeat brings one back.
    pub fn tick(&self, now: Instant) -> Vec<(String, OffsetsRecord)> {
        let mut groups = self.groups();
        let mut writes = self.expire_offsets(&mut groups, now);
        let mut persisted = self.persisted.lock().unwrap_or_else(|e| e.into_inner());
        let mut timed = self.timed.lock().unwrap_or_else(|e| e.into_inner());
        timed.retain(|id| match groups.get_mut(id) {
            Some(group) => {
                self.tick_group(group, &mut persisted, &mut writes, now);
                group.needs_timer()
            }
            None => false,
        });
        writes
    }

    fn tick_group(
        &self,
        group: &mut Group,
        persisted: &mut HashMap<String, (i32, GroupState)>,
        writes: &mut Vec<(String, OffsetsRecord)>,
        now: Instant,
    ) {
        let changed = group.expire(&self.limits, now);
        if let Some(consumer) = &group.consumer {
            // KIP-848 groups write each change before answering the
            // heartbeat that made it; here: expired members, and changes
            // whose write failed.
            if changed || consumer.epochs_unwritten() {
                let id = &group.id;
                writes.extend(consumer.unwritten(id, None).into_iter().map(|r| (id.clone(), r)));
            }
            return;
        }
        if !matches!(group.state, GroupState::Stable | GroupState::Empty) {
            return;
        }
        let current = (group.generation, group.state);
        let last = persisted.get(&group.id).copied();
        // A group that only ever committed offsets (generation 0, Empty) has no metadata to keep.
        if last != Some(current) && !(last.is_none() && group.generation == 0) {
            persisted.insert(group.id.clone(), current);
            writes.push((
                group.id.clone(),
                OffsetsRecord::Group {
                    group: group.id.clone(),
                    value: Some(group.snapshot()),
                },
            ));
        }
    }

    /// Puts `group` on the timer walk (after a join or heartbeat). Call it
    /// without the groups lock held.
    pub fn wake(&self, group: &str) {
        let mut timed = self.timed.lock().unwrap_or_else(|e| e.into_inner());
        if !timed.contains(group) {
            timed.insert(group.to_string());
        }
    }

    /// KIP-211: the offsets of a group without members expire
    /// offsets.retention.minutes after it became empty (after their commit,
    /// for groups that never had members); a group left with nothing goes.
    fn expire_offsets(&self, groups: &mut HashMap<String, Group>, now: Instant) -> Vec<(String, OffsetsRecord)> {
        let (interval, last_check) = &self.offsets_retention_check;
        let mut last_check = last_check.lock().unwrap_or_else(|e| e.into_inner());
        if now.duration_since(*last_check) < *interval {
            return Vec::new();
        }
        *last_check = now;
        let retention_ms = self.offsets_retention.as_millis() as i64;
        let now_ms = now_ms();
        let mut writes = Vec::new();
        let mut emptied = Vec::new();
        for group in groups.values_mut().filter(|g| g.has_no_members()) {
            let never_had_members = group.protocol_type.is_none() && group.consumer.is_none();
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|(_, committed)| {
                    let since = if never_had_members {
                        committed.commit_timestamp_ms
                    } else {
                        group.state_timestamp_ms
                    };
                    now_ms.saturating_sub(since) >= retention_ms
                })
                .map(|(key, _)| key.clone())
                .collect();
            for (topic, partition) in expired {
                group.offsets.remove(&(topic.clone(), partition));
                writes.push((
                    group.id.clone(),
                    OffsetsRecord::Offset {
                        group: group.id.clone(),
                        topic,
                        partition,
                        value: None,
                    },
                ));
            }
            if group.offsets.is_empty() {
                emptied.push(group.id.clone());
            }
        }
        let mut persisted = self.persisted.lock().unwrap_or_else(|e| e.into_inner());
        for id in emptied {
            if let Some(consumer) = groups.remove(&id).and_then(|g| g.consumer) {
                writes.extend(consumer.tombstones(&id).into_iter().map(|r| (id.clone(), r)));
            }
            if persisted.remove(&id).is_some() {
                writes.push((id.clone(), OffsetsRecord::Group { group: id, value: None }));
            }
        }
        writes
    }

    /// Remembers offsets a transaction committed (already written to the
    /// offsets topic as transactional records).
    pub fn add_pending_txn_offsets(&self, producer_id: i64, offsets: Vec<PendingOffset>) {
        self.pending_txn_offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(producer_id)
            .or_default()
            .extend(offsets);
    }

    /// Whether an ongoing or not yet completed transaction committed an
    /// offset for `group`'s `topic`-`partition` (KIP-447's unstable offset).
    pub fn has_pending_offset(&self, group: &str, topic: &str, partition: i32) -> bool {
        let pending = self.pending_txn_offsets.lock().unwrap_or_else(|e| e.into_inner());
        pending
            .values()
            .flatten()
            .any(|(pending_group, (pending_topic, pending_partition), _)| {
                pending_group == group && pending_topic == topic && *pending_partition == partition
            })
    }

    /// The transaction of `producer_id` ended: its offsets count, or are dropped.
    pub fn complete_transaction(&self, producer_id: i64, commit: bool) {
        let Some(offsets) = self
            .pending_txn_offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&producer_id)
        else {
            return;
        };
        if commit {
            let mut groups = self.groups();
            for (group, key, value) in offsets {
                groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(&group))
                    .offsets
                    .insert(key, value);
            }
        }
    }

    /// Notes KIP-848 group records as written to the offsets topic.
    pub fn written(&self, group: &str, records: &[OffsetsRecord]) {
        if let Some(consumer) = self.groups().get_mut(group).and_then(|g| g.consumer.as_mut()) {
            consumer.written(records);
        }
    }

    #[cfg(test)]
    fn is_timed(&self, group: &str) -> bool {
        self.timed.lock().unwrap_or_else(|e| e.into_inner()).contains(group)
    }

    pub fn forget(&self, group: &str) {
        self.persisted.lock().unwrap_or_else(|e| e.into_inner()).remove(group);
    }
}

/// The offsets topic, created on first use like Kafka's (compacted, internal).
pub fn offsets_topic(partitions: &PartitionManager, count: i32) -> Result<Arc<Topic>, TopicError> {
    internal_topics::ensure(partitions, OFFSETS_TOPIC, count)
}

/// Appends `records` for `group` to its offsets-topic partition as one batch
/// and waits until they are durable (Kafka commits offsets with acks=all).
/// Returns a Kafka error code on failure.
pub fn write(
    partitions: &PartitionManager,
    offsets_partitions: i32,
    group: &str,
    records: &[OffsetsRecord],
) -> Result<(), i16> {
    if records.is_empty() {
        return Ok(());
    }
    let internal: Vec<_> = records.iter().map(offsets_topic::encode).collect();
    internal_topics::append(partitions, OFFSETS_TOPIC, offsets_partitions, group, &internal, None)
        .map(|_| ())
        .map_err(internal_topics::coordinator_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn coordinator() -> GroupCoordinator {
        let settings = [
            ("offsets.retention.minutes", "1"),
            ("offsets.retention.check.interval.ms", "1"),
        ];
        let settings: Vec<(String, String)> = settings.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        GroupCoordinator::new(&BrokerConfig::load(None, &settings).unwrap()).unwrap()
    }

    fn committed(age_ms: i64) -> CommittedOffset {
        CommittedOffset {
            offset: 1,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp_ms: now_ms() - age_ms,
        }
    }

    #[test]
    fn offsets_of_groups_without_members_expire_after_the_retention() {
        let coordinator = coordinator();
        {
            let mut groups = coordinator.groups();
            let mut simple = Group::new("simple");
            simple.offsets.insert(("t".into(), 0), committed(120_000));
            simple.offsets.insert(("t".into(), 1), committed(1_000));
            groups.insert("simple".into(), simple);
            let mut gone = Group::new("gone");
            gone.offsets.insert(("t".into(), 0), committed(120_000));
            groups.insert("gone".into(), gone);
        }
        // Past the 1 ms check interval.
        let writes = coordinator.tick(Instant::now() + Duration::from_millis(1));
        let tombstones = writes
            .iter()
            .filter(|(_, r)| matches!(r, OffsetsRecord::Offset { value: None, .. }))
            .count();
        assert_eq!(tombstones, 2, "each expired offset gets a tombstone");
        let groups = coordinator.groups();
        assert_eq!(groups["simple"].offsets.len(), 1, "a recent commit stays");
        assert!(!groups.contains_key("gone"), "a group left with nothing goes");
    }

    /// A KIP-848 group with one member that joined at `now`.
    fn consumer_group(id: &str, now: Instant) -> Group {
        let mut consumer = ConsumerGroupState::default();
        let join = consumer::Heartbeat {
            member_id: "m".into(),
            member_epoch: 0,
            instance_id: None,
            rack_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout: Duration::from_secs(30),
            subscribed_topics: Some(vec!["t".into()]),
            subscribed_topic_regex: None,
            server_assignor: None,
            owned: Some(Default::default()),
        };
        consumer.heartbeat(join, &|_: &str| None, 10, now).unwrap();
        let mut group = Group::new(id);
        group.consumer = Some(consumer);
        group
    }

    /// Ticks and notes what it returned as written, as `persist_settled_groups` does.
    fn tick_and_write(coordinator: &GroupCoordinator, now: Instant) -> Vec<(String, OffsetsRecord)> {
        let writes = coordinator.tick(now);
        for (group, record) in &writes {
            coordinator.written(group, std::slice::from_ref(record));
        }
        writes
    }

    #[test]
    fn groups_with_nothing_to_time_leave_the_timer_walk() {
        let coordinator = coordinator();
        let now = Instant::now();
        {
            let mut groups = coordinator.groups();
            let mut kept = consumer_group("kept", now);
            kept.offsets.insert(("t".into(), 0), committed(1_000));
            groups.insert("kept".into(), kept);
            groups.insert("emptied".into(), consumer_group("emptied", now));
        }
        coordinator.wake("kept");
        coordinator.wake("emptied");
        let first = tick_and_write(&coordinator, now);
        assert!(first.iter().any(|(g, _)| g == "kept"), "the joined member's records");
        assert!(coordinator.is_timed("kept") && coordinator.is_timed("emptied"));

        // Both sessions expire: the members' tombstones are written.
        let later = now + coordinator.limits.consumer_session_timeout + Duration::from_secs(1);
        let expired = tick_and_write(&coordinator, later);
        let tombstones = |writes: &[(String, OffsetsRecord)], group: &str| {
            writes
                .iter()
                .filter(|(g, r)| g == group && matches!(r, OffsetsRecord::ConsumerGroup { value: None, .. }))
                .count()
        };
        assert_eq!(
            tombstones(&expired, "kept"),
            3,
            "the member's subscription, target and assignment"
        );

        // Once that is written, the empty groups leave the walk; the one
        // left with nothing is removed at the retention check, tombstones and all.
        let removed = tick_and_write(&coordinator, later + Duration::from_millis(1));
        assert!(!coordinator.is_timed("kept"), "an empty group leaves the walk");
        assert!(!coordinator.is_timed("emptied"));
        assert!(coordinator.groups().contains_key("kept"), "its offsets keep it");
        assert!(!coordinator.groups().contains_key("emptied"));
        assert_eq!(tombstones(&removed, "emptied"), 3, "group epoch, topics, target epoch");
        assert!(tick_and_write(&coordinator, later + Duration::from_millis(2)).is_empty());

        coordinator.wake("kept");
        tick_and_write(&coordinator, later);
        assert!(!coordinator.is_timed("kept"), "a wake without members changes nothing");
    }
}
