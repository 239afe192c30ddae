//! Kafka's `__consumer_offsets` schemas of KIP-848 consumer groups: record
//! key versions 3 to 8 (ConsumerGroupMetadata, ConsumerGroupPartitionMetadata,
//! ConsumerGroupMemberMetadata, ConsumerGroupTargetAssignmentMetadata,
//! ConsumerGroupTargetAssignmentMember, ConsumerGroupCurrentMemberAssignment).
//! Keys are fixed-format (the version, the group id, the member id for
//! per-member records); values are version 0 of flexible schemas, so each
//! structure ends with a tagged-field section.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::assignors::TopicPartition;
use crate::schema::{
    Reader, put_compact_len, put_compact_nullable_str, put_compact_str, put_i16, put_no_tagged_fields, put_str,
    put_uuid,
};

/// What a consumer-group record is about; with the group id, the record's key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ConsumerKey {
    /// Key version 3: the group epoch.
    Metadata,
    /// Key version 4: the subscribed topics' ids and partition counts.
    PartitionMetadata,
    /// Key version 5: one member's subscription and client details.
    Member(String),
    /// Key version 6: the epoch of the target assignment.
    TargetAssignmentMetadata,
    /// Key version 7: one member's target assignment.
    TargetAssignmentMember(String),
    /// Key version 8: one member's epochs and current assignment.
    CurrentAssignment(String),
}

/// A record's value; each kind matches its [`ConsumerKey`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerValue {
    Metadata { epoch: i32 },
    PartitionMetadata { topics: Vec<TopicMetadata> },
    Member(MemberMetadata),
    TargetAssignmentMetadata { assignment_epoch: i32 },
    TargetAssignmentMember { partitions: BTreeSet<TopicPartition> },
    CurrentAssignment(CurrentAssignment),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub topic_id: Uuid,
    pub topic_name: String,
    pub num_partitions: i32,
    /// Racks per partition; Kafka stops using it in 4.0 and it is written empty here.
    pub partition_racks: Vec<(i32, Vec<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// Kafka's MemberState values.
pub const MEMBER_STABLE: i8 = 0;
pub const MEMBER_UNREVOKED_PARTITIONS: i8 = 1;
pub const MEMBER_UNRELEASED_PARTITIONS: i8 = 2;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurrentAssignment {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    /// Owned and kept.
    pub assigned: BTreeSet<TopicPartition>,
    /// Owned but to be given up.
    pub pending_revocation: BTreeSet<TopicPartition>,
}

/// The key versions of consumer-group records.
pub const KEY_VERSIONS: std::ops::RangeInclusive<i16> = 3..=8;
const VALUE_VERSION: i16 = 0;

pub fn encode_key(out: &mut Vec<u8>, group: &str, key: &ConsumerKey) {
    let (version, member) = match key {
        ConsumerKey::Metadata => (3, None),
        ConsumerKey::PartitionMetadata => (4, None),
        ConsumerKey::Member(member) => (5, Some(member)),
        ConsumerKey::TargetAssignmentMetadata => (6, None),
        ConsumerKey::TargetAssignmentMember(member) => (7, Some(member)),
        ConsumerKey::CurrentAssignment(member) => (8, Some(member)),
    };
    put_i16(out, version);
    put_str(out, group);
    if let Some(member) = member {
        put_str(out, member);
    }
}

/// The rest of a key whose version (3 to 8) was read: (group, key).
pub fn decode_key(version: i16, key: &mut Reader<'_>) -> Option<(String, ConsumerKey)> {
    let group = key.string()?;
    let key = match version {
        3 => ConsumerKey::Metadata,
        4 => ConsumerKey::PartitionMetadata,
        5 => ConsumerKey::Member(key.string()?),
        6 => ConsumerKey::TargetAssignmentMetadata,
        7 => ConsumerKey::TargetAssignmentMember(key.string()?),
        8 => ConsumerKey::CurrentAssignment(key.string()?),
        _ => return None,
    };
    Some((group, key))
}

pub fn encode_value(out: &mut Vec<u8>, value: &ConsumerValue) {
    put_i16(out, VALUE_VERSION);
    match value {
        ConsumerValue::Metadata { epoch } => out.extend_from_slice(&epoch.to_be_bytes()),
        ConsumerValue::PartitionMetadata { topics } => {
            put_compact_len(out, topics.len());
            for topic in topics {
                put_uuid(out, &topic.topic_id);
                put_compact_str(out, &topic.topic_name);
                out.extend_from_slice(&topic.num_partitions.to_be_bytes());
                put_compact_len(out, topic.partition_racks.len());
                for (partition, racks) in &topic.partition_racks {
                    out.extend_from_slice(&partition.to_be_bytes());
                    put_compact_len(out, racks.len());
                    for rack in racks {
                        put_compact_str(out, rack);
                    }
                    put_no_tagged_fields(out);
                }
                put_no_tagged_fields(out);
            }
        }
        ConsumerValue::Member(member) => {
            put_compact_nullable_str(out, member.instance_id.as_deref());
            put_compact_nullable_str(out, member.rack_id.as_deref());
            put_compact_str(out, &member.client_id);
            put_compact_str(out, &member.client_host);
            put_compact_len(out, member.subscribed_topic_names.len());
            for topic in &member.subscribed_topic_names {
                put_compact_str(out, topic);
            }
            put_compact_nullable_str(out, member.subscribed_topic_regex.as_deref());
            out.extend_from_slice(&member.rebalance_timeout_ms.to_be_bytes());
            put_compact_nullable_str(out, member.server_assignor.as_deref());
            // Tag 0 (ClassicMemberMetadata) is null for members of the consumer protocol: omitted.
        }
        ConsumerValue::TargetAssignmentMetadata { assignment_epoch } => {
            out.extend_from_slice(&assignment_epoch.to_be_bytes())
        }
        ConsumerValue::TargetAssignmentMember { partitions } => put_topic_partitions(out, partitions),
        ConsumerValue::CurrentAssignment(current) => {
            out.extend_from_slice(&current.member_epoch.to_be_bytes());
            out.extend_from_slice(&current.previous_member_epoch.to_be_bytes());
            out.push(current.state as u8);
            put_topic_partitions(out, &current.assigned);
            put_topic_partitions(out, &current.pending_revocation);
        }
    }
    put_no_tagged_fields(out);
}

/// The value of a record whose key is `key`; `None` for a version or layout this broker does not read.
pub fn decode_value(key: &ConsumerKey, bytes: &[u8]) -> Option<ConsumerValue> {
    let mut value = Reader(bytes);
    if value.i16()? != VALUE_VERSION {
        return None;
    }
    let decoded = match key {
        ConsumerKey::Metadata => ConsumerValue::Metadata { epoch: value.i32()? },
        ConsumerKey::PartitionMetadata => {
            let count = value.compact_len()?.unwrap_or(0);
            let mut topics = Vec::with_capacity(count);
            for _ in 0..count {
                let topic_id = value.uuid()?;
                let topic_name = value.compact_string()?;
                let num_partitions = value.i32()?;
                let rack_count = value.compact_len()?.unwrap_or(0);
                let mut partition_racks = Vec::with_capacity(rack_count);
                for _ in 0..rack_count {
                    let partition = value.i32()?;
                    let count = value.compact_len()?.unwrap_or(0);
                    let racks = (0..count).map(|_| value.compact_string()).collect::<Option<Vec<_>>>()?;
                    value.skip_tagged_fields()?;
                    partition_racks.push((partition, racks));
                }
                value.skip_tagged_fields()?;
                topics.push(TopicMetadata {
                    topic_id,
                    topic_name,
                    num_partitions,
                    partition_racks,
                });
            }
            ConsumerValue::PartitionMetadata { topics }
        }
        ConsumerKey::Member(_) => {
            let instance_id = value.compact_nullable_string()?;
            let rack_id = value.compact_nullable_string()?;
            let client_id = value.compact_string()?;
            let client_host = value.compact_string()?;
            let count = value.compact_len()?.unwrap_or(0);
            let subscribed_topic_names = (0..count).map(|_| value.compact_string()).collect::<Option<Vec<_>>>()?;
            ConsumerValue::Member(MemberMetadata {
                instance_id,
                rack_id,
                client_id,
                client_host,
                subscribed_topic_names,
                subscribed_topic_regex: value.compact_nullable_string()?,
                rebalance_timeout_ms: value.i32()?,
                server_assignor: value.compact_nullable_string()?,
            })
        }
        ConsumerKey::TargetAssignmentMetadata => ConsumerValue::TargetAssignmentMetadata {
            assignment_epoch: value.i32()?,
        },
        ConsumerKey::TargetAssignmentMember(_) => ConsumerValue::TargetAssignmentMember {
            partitions: topic_partitions(&mut value)?,
        },
        ConsumerKey::CurrentAssignment(_) => ConsumerValue::CurrentAssignment(CurrentAssignment {
            member_epoch: value.i32()?,
            previous_member_epoch: value.i32()?,
            state: value.i8()?,
            assigned: topic_partitions(&mut value)?,
            pending_revocation: topic_partitions(&mut value)?,
        }),
    };
    value.skip_tagged_fields()?;
    Some(decoded)
}

/// `[]TopicPartitions`: each topic's id and partitions, a tagged-field section after each.
fn put_topic_partitions(out: &mut Vec<u8>, partitions: &BTreeSet<TopicPartition>) {
    let mut topics: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
    for (topic, partition) in partitions {
        topics.entry(*topic).or_default().push(*partition);
    }
    put_compact_len(out, topics.len());
    for (topic, partitions) in topics {
        put_uuid(out, &topic);
        put_compact_len(out, partitions.len());
        for partition in partitions {
            out.extend_from_slice(&partition.to_be_bytes());
        }
        put_no_tagged_fields(out);
    }
}

fn topic_partitions(value: &mut Reader<'_>) -> Option<BTreeSet<TopicPartition>> {
    let mut all = BTreeSet::new();
    for _ in 0..value.compact_len()?.unwrap_or(0) {
        let topic = value.uuid()?;
        for _ in 0..value.compact_len()?.unwrap_or(0) {
            all.insert((topic, value.i32()?));
        }
        value.skip_tagged_fields()?;
    }
    Some(all)
}
