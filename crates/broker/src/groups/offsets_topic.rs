//! The `__consumer_offsets` topic: Kafka's key and value schemas for
//! committed offsets and group metadata, so the coordinator's state is
//! durable and rebuilt on start by replaying the topic. The KIP-848
//! consumer-group records are in [`super::consumer_records`].

use super::consumer_records::{self, ConsumerKey, ConsumerValue};
use crate::record_batch::InternalRecord;
use crate::schema::{Reader, put_bytes, put_i16, put_nullable_str, put_str};

pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// What a group committed for one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
}

/// The part of a classic group that survives restarts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSnapshot {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub state_timestamp_ms: i64,
    pub members: Vec<MemberSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberSnapshot {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    pub subscription: Vec<u8>,
    pub assignment: Vec<u8>,
}

/// One record of the offsets topic; `None` values are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetsRecord {
    Offset {
        group: String,
        topic: String,
        partition: i32,
        value: Option<CommittedOffset>,
    },
    Group {
        group: String,
        value: Option<GroupSnapshot>,
    },
    /// One record of a KIP-848 consumer group (key versions 3 to 8).
    ConsumerGroup {
        group: String,
        key: ConsumerKey,
        value: Option<ConsumerValue>,
    },
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

pub fn encode(record: &OffsetsRecord) -> InternalRecord {
    let mut key = Vec::new();
    let mut value = Vec::new();
    match record {
        OffsetsRecord::Offset {
            group,
            topic,
            partition,
            value: committed,
        } => {
            put_i16(&mut key, OFFSET_KEY_VERSION);
            put_str(&mut key, group);
            put_str(&mut key, topic);
            key.extend_from_slice(&partition.to_be_bytes());
            let Some(committed) = committed else {
                return InternalRecord { key, value: None };
            };
            put_i16(&mut value, OFFSET_VALUE_VERSION);
            value.extend_from_slice(&committed.offset.to_be_bytes());
            value.extend_from_slice(&committed.leader_epoch.to_be_bytes());
            put_str(&mut value, &committed.metadata);
            value.extend_from_slice(&committed.commit_timestamp_ms.to_be_bytes());
        }
        OffsetsRecord::Group { group, value: snapshot } => {
            put_i16(&mut key, GROUP_KEY_VERSION);
            put_str(&mut key, group);
            let Some(snapshot) = snapshot else {
                return InternalRecord { key, value: None };
            };
            put_i16(&mut value, GROUP_VALUE_VERSION);
            put_str(&mut value, &snapshot.protocol_type);
            value.extend_from_slice(&snapshot.generation.to_be_bytes());
            put_nullable_str(&mut value, snapshot.protocol.as_deref());
            put_nullable_str(&mut value, snapshot.leader.as_deref());
            value.extend_from_slice(&snapshot.state_timestamp_ms.to_be_bytes());
            value.extend_from_slice(&(snapshot.members.len() as i32).to_be_bytes());
            for member in &snapshot.members {
                put_str(&mut value, &member.member_id);
                put_nullable_str(&mut value, member.group_instance_id.as_deref());
                put_str(&mut value, &member.client_id);
                put_str(&mut value, &member.client_host);
                value.extend_from_slice(&member.rebalance_timeout_ms.to_be_bytes());
                value.extend_from_slice(&member.session_timeout_ms.to_be_bytes());
                put_bytes(&mut value, &member.subscription);
                put_bytes(&mut value, &member.assignment);
            }
        }
        OffsetsRecord::ConsumerGroup {
            group,
            key: consumer_key,
            value: consumer_value,
        } => {
            consumer_records::encode_key(&mut key, group, consumer_key);
            let Some(consumer_value) = consumer_value else {
                return InternalRecord { key, value: None };
            };
            consumer_records::encode_value(&mut value, consumer_value);
        }
    }
    InternalRecord {
        key,
        value: Some(value),
    }
}

/// Decodes a record of the offsets topic; `None` for versions and kinds this
/// broker does not read (they are skipped on load, as unknown records are in Kafka).
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<OffsetsRecord> {
    let mut key = Reader(key);
    match key.i16()? {
        0 | 1 => {
            let (group, topic, partition) = (key.string()?, key.string()?, key.i32()?);
            let value = match value {
                None => None,
                Some(bytes) => Some(decode_offset_value(bytes)?),
            };
            Some(OffsetsRecord::Offset {
                group,
                topic,
                partition,
                value,
            })
        }
        2 => {
            let group = key.string()?;
            let value = match value {
                None => None,
                Some(bytes) => Some(decode_group_value(bytes)?),
            };
            Some(OffsetsRecord::Group { group, value })
        }
        version if consumer_records::KEY_VERSIONS.contains(&version) => {
            let (group, key) = consumer_records::decode_key(version, &mut key)?;
            let value = match value {
                None => None,
                Some(bytes) => Some(consumer_records::decode_value(&key, bytes)?),
            };
            Some(OffsetsRecord::ConsumerGroup { group, key, value })
        }
        _ => None,
    }
}

fn decode_offset_value(bytes: &[u8]) -> Option<CommittedOffset> {
    let mut value = Reader(bytes);
    let version = value.i16()?;
    let offset = value.i64()?;
    let leader_epoch = if version >= 3 { value.i32()? } else { -1 };
    let metadata = value.string()?;
    let commit_timestamp_ms = value.i64()?;
    (0..=3).contains(&version).then_some(CommittedOffset {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp_ms,
    })
}

fn decode_group_value(bytes: &[u8]) -> Option<GroupSnapshot> {
    let mut value = Reader(bytes);
    let version = value.i16()?;
    if !(0..=3).contains(&version) {
        return None;
    }
    let protocol_type = value.string()?;
    let generation = value.i32()?;
    let protocol = value.nullable_string()?;
    let leader = value.nullable_string()?;
    let state_timestamp_ms = if version >= 2 { value.i64()? } else { -1 };
    let count = value.i32()?.max(0) as usize;
    let mut members = Vec::with_capacity(count.min(1024));
    for _ in 0..count {
        let member_id = value.string()?;
        let group_instance_id = if version >= 3 { value.nullable_string()? } else { None };
        let client_id = value.string()?;
        let client_host = value.string()?;
        let rebalance_timeout_ms = if version >= 1 { value.i32()? } else { -1 };
        let session_timeout_ms = value.i32()?;
        let subscription = value.bytes()?;
        let assignment = value.bytes()?;
        members.push(MemberSnapshot {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            rebalance_timeout_ms,
            session_timeout_ms,
            subscription,
            assignment,
        });
    }
    Some(GroupSnapshot {
        protocol_type,
        generation,
        protocol,
        leader,
        state_timestamp_ms,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let records = [
            OffsetsRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: Some(CommittedOffset {
                    offset: 42,
                    leader_epoch: 0,
                    metadata: "m".into(),
                    commit_timestamp_ms: 9,
                }),
            },
            OffsetsRecord::Offset {
                group: "g".into(),
                topic: "t".into(),
                partition: 3,
                value: None,
            },
            OffsetsRecord::Group {
                group: "g".into(),
                value: Some(GroupSnapshot {
                    protocol_type: "consumer".into(),
                    generation: 4,
                    protocol: Some("range".into()),
                    leader: Some("m-1".into()),
                    state_timestamp_ms: 5,
                    members: vec![MemberSnapshot {
                        member_id: "m-1".into(),
                        group_instance_id: Some("i".into()),
                        client_id: "c".into(),
                        client_host: "/127.0.0.1".into(),
                        rebalance_timeout_ms: 300000,
                        session_timeout_ms: 45000,
                        subscription: vec![1, 2],
                        assignment: vec![3],
                    }],
                }),
            },
            OffsetsRecord::Group {
                group: "g".into(),
                value: None,
            },
        ];
        for record in records {
            let encoded = encode(&record);
            assert_eq!(decode(&encoded.key, encoded.value.as_deref()), Some(record));
        }
        assert_eq!(decode(&[0, 9, 0, 0], None), None, "unknown key versions are skipped");
    }

    fn consumer(key: ConsumerKey, value: Option<ConsumerValue>) -> OffsetsRecord {
        OffsetsRecord::ConsumerGroup {
            group: "g".into(),
            key,
            value,
        }
    }

    #[test]
    fn consumer_group_records_round_trip() {
        use super::super::consumer_records::*;
        let topic = uuid::Uuid::from_u128(0x0102);
        let other = uuid::Uuid::from_u128(0x0304);
        let member = || "m-1".to_string();
        let values = [
            (ConsumerKey::Metadata, ConsumerValue::Metadata { epoch: 7 }),
            (
                ConsumerKey::PartitionMetadata,
                ConsumerValue::PartitionMetadata {
                    topics: vec![
                        TopicMetadata {
                            topic_id: topic,
                            topic_name: "t".into(),
                            num_partitions: 3,
                            partition_racks: vec![(0, vec!["rack-a".into(), "rack-b".into()]), (1, vec![])],
                        },
                        TopicMetadata {
                            topic_id: other,
                            topic_name: "u".into(),
                            num_partitions: 1,
                            partition_racks: vec![],
                        },
                    ],
                },
            ),
            (
                ConsumerKey::Member(member()),
                ConsumerValue::Member(MemberMetadata {
                    instance_id: Some("instance".into()),
                    rack_id: None,
                    client_id: "client".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_topic_names: vec!["t".into(), "u".into()],
                    subscribed_topic_regex: None,
                    rebalance_timeout_ms: 300_000,
                    server_assignor: Some("uniform".into()),
                }),
            ),
            (
                ConsumerKey::TargetAssignmentMetadata,
                ConsumerValue::TargetAssignmentMetadata { assignment_epoch: 6 },
            ),
            (
                ConsumerKey::TargetAssignmentMember(member()),
                ConsumerValue::TargetAssignmentMember {
                    partitions: [(topic, 0), (topic, 2), (other, 0)].into(),
                },
            ),
            (
                ConsumerKey::CurrentAssignment(member()),
                ConsumerValue::CurrentAssignment(CurrentAssignment {
                    member_epoch: 6,
                    previous_member_epoch: 5,
                    state: MEMBER_UNREVOKED_PARTITIONS,
                    assigned: [(topic, 0)].into(),
                    pending_revocation: [(topic, 1)].into(),
                }),
            ),
            (
                ConsumerKey::CurrentAssignment(member()),
                ConsumerValue::CurrentAssignment(CurrentAssignment {
                    member_epoch: 0,
                    previous_member_epoch: -1,
                    state: MEMBER_STABLE,
                    assigned: Default::default(),
                    pending_revocation: Default::default(),
                }),
            ),
        ];
        for (key, value) in values {
            for record in [consumer(key.clone(), Some(value)), consumer(key, None)] {
                let encoded = encode(&record);
                assert_eq!(decode(&encoded.key, encoded.value.as_deref()), Some(record));
            }
        }
    }

    #[test]
    fn consumer_group_records_use_kafkas_layout() {
        use super::super::consumer_records::*;
        // ConsumerGroupMetadataKey v3: version, group id (i16 length).
        let encoded = encode(&consumer(
            ConsumerKey::Metadata,
            Some(ConsumerValue::Metadata { epoch: 5 }),
        ));
        assert_eq!(encoded.key, [0, 3, 0, 1, b'g']);
        // ConsumerGroupMetadataValue v0: version, epoch, no tagged fields.
        assert_eq!(encoded.value.unwrap(), [0, 0, 0, 0, 0, 5, 0]);
        // ConsumerGroupCurrentMemberAssignmentKey v8: version, group id, member id.
        let topic = uuid::Uuid::from_u128(1);
        let current = CurrentAssignment {
            member_epoch: 2,
            previous_member_epoch: 1,
            state: MEMBER_STABLE,
            assigned: [(topic, 4)].into(),
            pending_revocation: Default::default(),
        };
        let encoded = encode(&consumer(
            ConsumerKey::CurrentAssignment("m".into()),
            Some(ConsumerValue::CurrentAssignment(current)),
        ));
        assert_eq!(encoded.key, [0, 8, 0, 1, b'g', 0, 1, b'm']);
        let mut expected = vec![0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0];
        // AssignedPartitions: one topic (compact length 2), its id, one partition, no tags.
        expected.push(2);
        expected.extend_from_slice(topic.as_bytes());
        expected.extend_from_slice(&[2, 0, 0, 0, 4, 0]);
        // PartitionsPendingRevocation: empty; then the value's (empty) tagged fields.
        expected.extend_from_slice(&[1, 0]);
        assert_eq!(encoded.value.unwrap(), expected);
    }

    #[test]
    fn tagged_fields_kafka_may_write_are_skipped() {
        use super::super::consumer_records::*;
        let metadata = MemberMetadata {
            instance_id: None,
            rack_id: None,
            client_id: "c".into(),
            client_host: "h".into(),
            subscribed_topic_names: vec!["t".into()],
            subscribed_topic_regex: None,
            rebalance_timeout_ms: 1000,
            server_assignor: None,
        };
        let record = consumer(ConsumerKey::Member("m".into()), Some(ConsumerValue::Member(metadata)));
        let encoded = encode(&record);
        let mut value = encoded.value.unwrap();
        // Tag 0 (ClassicMemberMetadata) with three bytes of content, as a classic member's record has.
        assert_eq!(value.pop(), Some(0));
        value.extend_from_slice(&[1, 0, 3, 9, 9, 9]);
        assert_eq!(decode(&encoded.key, Some(&value)), Some(record));
        value.truncate(value.len() - 1);
        assert_eq!(decode(&encoded.key, Some(&value)), None, "a torn value is not read");
    }
}
