//! The KIP-848 consumer group protocol: members heartbeat, the coordinator
//! computes a target assignment with a server-side assignor, and each member
//! moves towards its target on its own: it first gives up partitions others
//! need, and only then receives partitions others have released. No member
//! ever stops for a group-wide barrier.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::assignors::{self, AssignorMember, TopicPartition};
use super::consumer_store::StoredRecords;
use crate::errors::*;

pub struct ConsumerMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub rebalance_timeout: Duration,
    pub subscribed_topics: Vec<String>,
    pub subscribed_topic_regex: Option<TopicRegex>,
    /// The topics `subscribed_topic_regex` matched when last resolved.
    pub regex_topics: Vec<String>,
    pub server_assignor: Option<String>,
    /// What the member owns, as far as the coordinator knows (includes
    /// partitions it was asked to revoke and has not confirmed yet).
    pub assigned: BTreeSet<TopicPartition>,
    pub last_heartbeat: Instant,
    /// Set while the member holds partitions it must give up: it is fenced
    /// if it has not done so by then.
    pub revocation_deadline: Option<Instant>,
}

#[derive(Default)]
pub struct ConsumerGroupState {
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ConsumerMember>,
    pub target: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// The partition counts of subscribed topics at the last epoch: a change
    /// (a topic created, deleted or grown) starts a new epoch.
    pub subscription_metadata: BTreeMap<String, (uuid::Uuid, i32)>,
    /// What `__consumer_offsets` holds of this group (see `consumer_store`).
    pub stored: StoredRecords,
}

impl ConsumerMember {
    /// The topics the member subscribes to: by name and by its regular expression.
    pub fn subscription(&self) -> impl Iterator<Item = &String> {
        self.subscribed_topics.iter().chain(&self.regex_topics)
    }
}

/// A subscription's regular expression (KIP-848's SubscribedTopicRegex).
/// As in Kafka, it must match a whole topic name; internal topics are never
/// matched.
#[derive(Clone, Debug)]
pub struct TopicRegex {
    pub pattern: String,
    whole_name: regex::Regex,
}

impl TopicRegex {
    pub fn new(pattern: &str) -> Result<TopicRegex, String> {
        let whole_name = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| e.to_string())?;
        Ok(TopicRegex {
            pattern: pattern.to_string(),
            whole_name,
        })
    }

    fn matches(&self, topic: &str) -> bool {
        !crate::partitions::is_internal_topic(topic) && self.whole_name.is_match(topic)
    }
}

/// The topics subscriptions resolve against.
pub trait TopicCatalog {
    /// A topic's id and partition count.
    fn lookup(&self, name: &str) -> Option<(uuid::Uuid, i32)>;
    /// Every topic name, for regular expressions.
    fn names(&self) -> Vec<String>;
}

/// A bare lookup is a catalog that lists no names (no regular expression matches).
impl<F: Fn(&str) -> Option<(uuid::Uuid, i32)>> TopicCatalog for F {
    fn lookup(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
        self(name)
    }
    fn names(&self) -> Vec<String> {
        Vec::new()
    }
}

/// One heartbeat, as the coordinator needs it.
pub struct Heartbeat {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: Duration,
    pub subscribed_topics: Option<Vec<String>>,
    /// `None`: unchanged; `Some(None)`: no regular expression any more.
    pub subscribed_topic_regex: Option<Option<TopicRegex>>,
    pub server_assignor: Option<String>,
    /// The partitions the member reports owning (`None`: unchanged since its last heartbeat).
    pub owned: Option<BTreeSet<TopicPartition>>,
}

pub struct HeartbeatAnswer {
    pub member_epoch: i32,
    /// Sent when the member's assignment changed or it needs the full picture.
    pub assignment: Option<BTreeSet<TopicPartition>>,
}

pub const LEAVE_EPOCH: i32 = -1;
pub const STATIC_LEAVE_EPOCH: i32 = -2;

impl ConsumerGroupState {
    /// KIP-848's state names: Empty, Assigning, Reconciling, Stable.
    pub fn state_name(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.group_epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.member_epoch != self.assignment_epoch || self.target.get(&m.id) != Some(&m.assigned))
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// Handles one heartbeat; `topics` resolves subscriptions to topic ids and partition counts.
    pub fn heartbeat(
        &mut self,
        request: Heartbeat,
        topics: &dyn TopicCatalog,
        max_size: usize,
        now: Instant,
    ) -> Result<HeartbeatAnswer, i16> {
        if let Some(assignor) = &request.server_assignor
            && !assignors::ASSIGNORS.contains(&assignor.as_str())
        {
            return Err(UNSUPPORTED_ASSIGNOR);
        }
        let id = request.member_id.clone();
        match request.member_epoch {
            LEAVE_EPOCH | STATIC_LEAVE_EPOCH => {
                if self.members.remove(&id).is_none() {
                    return Err(UNKNOWN_MEMBER_ID);
                }
                self.target.remove(&id);
                self.group_epoch += 1;
                return Ok(HeartbeatAnswer {
                    member_epoch: request.member_epoch,
                    assignment: None,
                });
            }
            0 => {
                if !self.members.contains_key(&id) && self.members.len() >= max_size {
                    return Err(GROUP_MAX_SIZE_REACHED);
                }
                // A (re)joining member starts over with nothing owned.
                let previous = self.members.remove(&id);
                if previous.is_some() {
                    self.target.remove(&id);
                }
                self.members.insert(
                    id.clone(),
                    ConsumerMember {
                        id: id.clone(),
                        instance_id: request.instance_id.clone(),
                        rack_id: request.rack_id.clone(),
                        client_id: request.client_id.clone(),
                        client_host: request.client_host.clone(),
                        member_epoch: 0,
                        previous_member_epoch: -1,
                        rebalance_timeout: request.rebalance_timeout,
                        subscribed_topics: Vec::new(),
                        subscribed_topic_regex: None,
                        regex_topics: Vec::new(),
                        server_assignor: None,
                        assigned: BTreeSet::new(),
                        last_heartbeat: now,
                        revocation_deadline: None,
                    },
                );
                self.group_epoch += 1;
            }
            epoch => {
                let member = self.members.get(&id).ok_or(UNKNOWN_MEMBER_ID)?;
                // The previous epoch is accepted: its response may have been lost.
                if epoch != member.member_epoch && epoch != member.previous_member_epoch {
                    return Err(FENCED_MEMBER_EPOCH);
                }
            }
        }
        let member = self.members.get_mut(&id).expect("present");
        member.last_heartbeat = now;
        if let Some(subscribed) = request.subscribed_topics {
            let mut subscribed = subscribed;
            subscribed.sort();
            subscribed.dedup();
            if subscribed != member.subscribed_topics {
                member.subscribed_topics = subscribed;
                self.group_epoch += 1;
            }
        }
        if let Some(regex) = request.subscribed_topic_regex
            && regex.as_ref().map(|r| &r.pattern) != member.subscribed_topic_regex.as_ref().map(|r| &r.pattern)
        {
            member.subscribed_topic_regex = regex;
            self.group_epoch += 1;
        }
        if request.server_assignor.is_some() {
            member.server_assignor = request.server_assignor;
        }
        if let Some(owned) = request.owned {
            // What the member no longer owns is released; what it claims
            // beyond what it was given is ignored.
            member.assigned = member.assigned.intersection(&owned).copied().collect();
        }
        self.resolve_regexes(topics);
        self.refresh_metadata(topics);
        if self.assignment_epoch < self.group_epoch {
            self.compute_target(topics);
        }
        Ok(self.reconcile(&id, request.member_epoch == 0, now))
    }

    /// Matches every member's regular expression against the topics as
    /// they are now: a topic created or deleted since changes what the
    /// member subscribes to, which `refresh_metadata` then notices.
    fn resolve_regexes(&mut self, topics: &dyn TopicCatalog) {
        if self
            .members
            .values()
            .all(|m| m.subscribed_topic_regex.is_none() && m.regex_topics.is_empty())
        {
            return;
        }
        let names = topics.names();
        for member in self.members.values_mut() {
            member.regex_topics = match &member.subscribed_topic_regex {
                Some(regex) => names.iter().filter(|name| regex.matches(name)).cloned().collect(),
                None => Vec::new(),
            };
        }
    }

    fn refresh_metadata(&mut self, topics: &dyn TopicCatalog) {
        let subscribed: BTreeSet<&String> = self.members.values().flat_map(|m| m.subscription()).collect();
        let metadata: BTreeMap<String, (uuid::Uuid, i32)> = subscribed
            .into_iter()
            .filter_map(|t| Some((t.clone(), topics.lookup(t)?)))
            .collect();
        if metadata != self.subscription_metadata {
            self.subscription_metadata = metadata;
            self.group_epoch += 1;
        }
    }

    fn compute_target(&mut self, topics: &dyn TopicCatalog) {
        // The most requested assignor among members wins; uniform by default (Kafka's first in group.consumer.assignors).
        let assignor = self
            .members
            .values()
            .filter_map(|m| m.server_assignor.as_deref())
            .next()
            .unwrap_or("uniform")
            .to_string();
        let inputs: Vec<AssignorMember> = self
            .members
            .values()
            .map(|m| AssignorMember {
                id: &m.id,
                topics: m.subscription().filter_map(|t| topics.lookup(t)).collect(),
                previous: self.target.get(&m.id),
            })
            .collect();
        self.target = assignors::assign(&assignor, &inputs);
        self.assignment_epoch = self.group_epoch;
    }

    /// Moves one member towards its target: revoke first, then receive what
    /// the others have released.
    fn reconcile(&mut self, id: &str, joining: bool, now: Instant) -> HeartbeatAnswer {
        let target = self.target.get(id).cloned().unwrap_or_default();
        let owned_by_others: BTreeSet<TopicPartition> = self
            .members
            .values()
            .filter(|m| m.id != id)
            .flat_map(|m| m.assigned.iter().copied())
            .collect();
        let assignment_epoch = self.assignment_epoch;
        let member = self.members.get_mut(id).expect("present");
        let before = member.assigned.clone();
        let to_revoke: BTreeSet<TopicPartition> = member.assigned.difference(&target).copied().collect();
        if to_revoke.is_empty() {
            member.revocation_deadline = None;
            let now_free: BTreeSet<TopicPartition> = target.difference(&owned_by_others).copied().collect();
            member.assigned = now_free;
            if member.member_epoch != assignment_epoch {
                member.previous_member_epoch = member.member_epoch;
                member.member_epoch = assignment_epoch;
            }
            let changed = joining || member.assigned != before;
            HeartbeatAnswer {
                member_epoch: member.member_epoch,
                assignment: changed.then(|| member.assigned.clone()),
            }
        } else {
            // The member keeps its epoch until it confirms the revocation.
            if member.revocation_deadline.is_none() {
                member.revocation_deadline = Some(now + member.rebalance_timeout);
            }
            let keep: BTreeSet<TopicPartition> = member.assigned.intersection(&target).copied().collect();
            HeartbeatAnswer {
                member_epoch: member.member_epoch,
                assignment: Some(keep),
            }
        }
    }

    /// Removes members whose session expired or that held on to revoked
    /// partitions past their rebalance timeout. Returns whether any went.
    pub fn expire(&mut self, session_timeout: Duration, now: Instant) -> bool {
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.last_heartbeat + session_timeout < now || m.revocation_deadline.is_some_and(|d| d < now))
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            tracing::info!(member = %id, "consumer group member expired");
            self.members.remove(id);
            self.target.remove(id);
        }
        if !gone.is_empty() {
            self.group_epoch += 1;
        }
        !gone.is_empty()
    }

    /// OffsetCommit and OffsetFetch checks of the consumer protocol.
    pub fn validate_member_epoch(&self, member_id: &str, epoch: i32) -> i16 {
        if epoch < 0 && member_id.is_empty() {
            return if self.members.is_empty() {
                NONE
            } else {
                UNKNOWN_MEMBER_ID
            };
        }
        match self.members.get(member_id) {
            None => UNKNOWN_MEMBER_ID,
            Some(member) if epoch != member.member_epoch => STALE_MEMBER_EPOCH,
            Some(_) => NONE,
        }
    }
}

/// Heartbeats for unit tests, on one topic "t" of 4 partitions.
#[cfg(test)]
pub(crate) mod test_heartbeats {
    use super::*;

    pub(crate) const TOPIC: uuid::Uuid = uuid::Uuid::from_u128(7);

    pub(crate) fn topics(name: &str) -> Option<(uuid::Uuid, i32)> {
        (name == "t").then_some((TOPIC, 4))
    }

    /// `member`'s heartbeat at `epoch` (0 joins, subscribing to "t"),
    /// reporting the partitions of "t" it owns when given.
    pub(crate) fn beat(member: &str, epoch: i32, owned: Option<&[i32]>) -> Heartbeat {
        Heartbeat {
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            rebalance_timeout: Duration::from_secs(30),
            subscribed_topics: (epoch == 0).then(|| vec!["t".to_string()]),
            subscribed_topic_regex: None,
            server_assignor: None,
            owned: owned.map(|p| p.iter().map(|p| (TOPIC, *p)).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_heartbeats::{beat, topics};
    use super::*;

    fn partitions(answer: &HeartbeatAnswer) -> Vec<i32> {
        answer.assignment.as_ref().unwrap().iter().map(|(_, p)| *p).collect()
    }

    #[test]
    fn a_second_member_gets_partitions_only_after_the_first_releases_them() {
        let mut group = ConsumerGroupState::default();
        let now = Instant::now();
        let a = group.heartbeat(beat("a", 0, Some(&[])), &topics, 10, now).unwrap();
        assert_eq!(partitions(&a), [0, 1, 2, 3]);
        let b = group.heartbeat(beat("b", 0, Some(&[])), &topics, 10, now).unwrap();
        assert!(partitions(&b).is_empty(), "nothing is free yet");
        assert_eq!(group.state_name(), "Reconciling");
        let a_again = group
            .heartbeat(beat("a", a.member_epoch, None), &topics, 10, now)
            .unwrap();
        assert_eq!(partitions(&a_again).len(), 2, "a is told to keep half");
        assert_eq!(
            a_again.member_epoch, a.member_epoch,
            "a keeps its epoch until it revokes"
        );
        let kept: Vec<i32> = partitions(&a_again);
        let a_done = group
            .heartbeat(beat("a", a.member_epoch, Some(&kept)), &topics, 10, now)
            .unwrap();
        assert!(a_done.member_epoch > a.member_epoch);
        let b_again = group
            .heartbeat(beat("b", b.member_epoch, Some(&[])), &topics, 10, now)
            .unwrap();
        let mut all = kept.clone();
        all.extend(partitions(&b_again));
        all.sort();
        assert_eq!(all, [0, 1, 2, 3], "every partition owned once");
        assert_eq!(group.state_name(), "Stable");
    }

    #[test]
    fn epochs_are_checked() {
        let mut group = ConsumerGroupState::default();
        let now = Instant::now();
        let a = group.heartbeat(beat("a", 0, Some(&[])), &topics, 10, now).unwrap();
        assert_eq!(
            group
                .heartbeat(beat("a", a.member_epoch + 5, None), &topics, 10, now)
                .err(),
            Some(FENCED_MEMBER_EPOCH)
        );
        assert_eq!(
            group.heartbeat(beat("x", 3, None), &topics, 10, now).err(),
            Some(UNKNOWN_MEMBER_ID)
        );
        assert_eq!(group.validate_member_epoch("a", a.member_epoch - 1), STALE_MEMBER_EPOCH);
        assert_eq!(
            group.heartbeat(beat("b", 0, None), &topics, 1, now).err(),
            Some(GROUP_MAX_SIZE_REACHED)
        );
        let left = group.heartbeat(beat("a", LEAVE_EPOCH, None), &topics, 10, now).unwrap();
        assert_eq!(left.member_epoch, LEAVE_EPOCH);
        assert_eq!(group.state_name(), "Empty");
    }

    /// Topics by name, each with two partitions and an id from its position.
    struct Catalog(Vec<&'static str>);

    impl TopicCatalog for Catalog {
        fn lookup(&self, name: &str) -> Option<(uuid::Uuid, i32)> {
            let index = self.0.iter().position(|t| *t == name)?;
            Some((uuid::Uuid::from_u128(index as u128 + 1), 2))
        }
        fn names(&self) -> Vec<String> {
            self.0.iter().map(|t| t.to_string()).collect()
        }
    }

    #[test]
    fn a_regular_expression_subscribes_to_every_whole_name_it_matches_as_topics_come() {
        let mut group = ConsumerGroupState::default();
        let now = Instant::now();
        let mut catalog = Catalog(vec![
            "orders-eu",
            "orders-us",
            "orders",
            "my-orders-eu",
            "__consumer_offsets",
        ]);
        let mut join = beat("a", 0, Some(&[]));
        join.subscribed_topics = Some(Vec::new());
        join.subscribed_topic_regex = Some(Some(TopicRegex::new("orders-.*|__.*").unwrap()));
        let joined = group.heartbeat(join, &catalog, 10, now).unwrap();
        let ids = |answer: &HeartbeatAnswer| -> BTreeSet<u128> {
            answer
                .assignment
                .iter()
                .flatten()
                .map(|(topic, _)| topic.as_u128())
                .collect()
        };
        assert_eq!(
            ids(&joined),
            [1, 2].into(),
            "orders-eu and orders-us, no internal topic"
        );
        assert_eq!(group.members["a"].regex_topics, ["orders-eu", "orders-us"]);

        catalog.0.push("orders-asia");
        let epoch = group.group_epoch;
        let next = group
            .heartbeat(beat("a", joined.member_epoch, None), &catalog, 10, now)
            .unwrap();
        assert!(group.group_epoch > epoch, "a new matching topic starts a new epoch");
        assert_eq!(ids(&next), [1, 2, 6].into());

        let mut dropped = beat("a", next.member_epoch, None);
        dropped.subscribed_topic_regex = Some(None);
        let after = group.heartbeat(dropped, &catalog, 10, now).unwrap();
        assert!(ids(&after).is_empty() && group.members["a"].regex_topics.is_empty());
        assert!(TopicRegex::new("orders-(").is_err());
    }
}
