//! The broker's internal topics (`__consumer_offsets`,
//! `__transaction_state`): compacted topics created on first use, each key's
//! records placed on one partition and written durably by its coordinator.

use std::sync::Arc;

use bytes::Bytes;
use gregor_log::{AppendInfo, Log};
use kafka_protocol::records::{Record, RecordBatchDecoder};

use crate::api::now_ms;
use crate::partitions::{PartitionManager, Topic, TopicError};
use crate::record_batch::{self, InternalRecord};

/// The topic `name`, created with `count` partitions if it does not exist yet.
pub fn ensure(partitions: &PartitionManager, name: &str, count: i32) -> Result<Arc<Topic>, TopicError> {
    if let Some(topic) = partitions.topic(name) {
        return Ok(topic);
    }
    let configs = [
        ("cleanup.policy", "compact"),
        ("segment.bytes", "104857600"),
        ("compression.type", "producer"),
    ];
    let configs = configs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    match partitions.create_topic(name, count, configs, false) {
        Ok(topic) => {
            tracing::info!(partitions = count, "created {name}");
            Ok(topic)
        }
        Err(TopicError::AlreadyExists(_)) => partitions.topic(name).ok_or(TopicError::UnknownTopic(name.into())),
        Err(error) => Err(error),
    }
}

/// Kafka's placement of a group or transactional id: `abs(key.hashCode) %
/// partitions`, with Java's String.hashCode over UTF-16 code units.
pub fn partition_for(key: &str, partitions: i32) -> i32 {
    let hash = key
        .encode_utf16()
        .fold(0i32, |hash, unit| hash.wrapping_mul(31).wrapping_add(unit as i32));
    (hash & 0x7fff_ffff) % partitions.max(1)
}

/// Appends `records` as one batch to `key`'s partition of topic `name` and
/// waits until they are durable (coordinators write with acks=all). With
/// `producer`, the batch belongs to that producer's ongoing transaction.
/// Returns a Kafka error code on failure.
pub fn append(
    partitions: &PartitionManager,
    name: &str,
    count: i32,
    key: &str,
    records: &[InternalRecord],
    producer: Option<(i64, i16)>,
) -> Result<AppendInfo, i16> {
    let topic = ensure(partitions, name, count).map_err(|e| e.code())?;
    let partition = &topic.partitions[partition_for(key, topic.partitions.len() as i32) as usize];
    let mut batch = record_batch::encode(records, now_ms(), producer);
    let info = partitions
        .append_internal(partition, &mut batch, now_ms())
        .map_err(|e| {
            tracing::error!(key, error = %e, "cannot write to {name}");
            e.code()
        })?;
    partition.log.sync_to(info.last_offset + 1).map_err(|e| e.code())?;
    Ok(info)
}

/// Every record of one log, from its start to its high watermark (coordinators replay their topics on start).
pub fn read_all(log: &Log) -> Result<Vec<Record>, TopicError> {
    let end = log.high_watermark();
    let mut offset = log.log_start_offset();
    let mut records = Vec::new();
    while offset < end {
        let Some(slice) = log.read(offset, 1 << 20, end)? else {
            break;
        };
        let mut bytes = Vec::with_capacity(slice.len());
        slice.read_into(&mut bytes)?;
        let sets = RecordBatchDecoder::decode_all(&mut Bytes::from(bytes))
            .map_err(|e| TopicError::Storage(format!("{}: {e}", log.dir().display())))?;
        let before = offset;
        for record in sets.into_iter().flat_map(|set| set.records) {
            offset = offset.max(record.offset + 1);
            records.push(record);
        }
        if offset == before {
            break;
        }
    }
    Ok(records)
}

/// The type of a transaction marker: true for COMMIT, false for ABORT (Kafka's
/// control record key: version i16, type i16).
pub fn marker_commits(record: &Record) -> Option<bool> {
    let key = record.key.as_ref()?;
    let kind = i16::from_be_bytes(key.get(2..4)?.try_into().ok()?);
    Some(kind == 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_matches_java_string_hash_code() {
        // "console-consumer".hashCode() == -648006740 in Java.
        assert_eq!(
            partition_for("console-consumer", 50),
            (-648006740i32 & 0x7fff_ffff) % 50
        );
        assert!((0..50).contains(&partition_for("ünïcode", 50)));
    }
}
