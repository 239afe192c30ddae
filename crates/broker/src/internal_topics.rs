//! The broker's internal topics (`__consumer_offsets`,
//! `__transaction_state`): compacted topics created on first use, each key's
//! records placed on one partition and written durably by its coordinator.

use std::sync::Arc;

use bytes::Bytes;
use gregor_log::{AppendInfo, Log};
use kafka_protocol::records::{Record, RecordBatchDecoder};

use crate::api::now_ms;
use crate::errors::{KAFKA_STORAGE_ERROR, NOT_COORDINATOR};
use crate::partitions::{Partition, PartitionManager, Topic, TopicError};
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
    let (partition, info) = append_unsynced(partitions, name, count, key, records, producer)?;
    partition.log.sync_to(info.last_offset + 1).map_err(|e| e.code())?;
    Ok(info)
}

/// [`append`] without waiting for durability: for a write whose loss in a
/// machine crash is harmless (a later synced write of the same key covers it).
pub fn append_unsynced(
    partitions: &PartitionManager,
    name: &str,
    count: i32,
    key: &str,
    records: &[InternalRecord],
    producer: Option<(i64, i16)>,
) -> Result<(Arc<Partition>, AppendInfo), i16> {
    let topic = ensure(partitions, name, count).map_err(|e| e.code())?;
    let partition = &topic.partitions[partition_for(key, topic.partitions.len() as i32) as usize];
    let batch = record_batch::encode(records, now_ms(), producer);
    let info = partitions.append_internal(partition, &batch, now_ms()).map_err(|e| {
        tracing::error!(key, error = %e, "cannot write to {name}");
        e.code()
    })?;
    Ok((Arc::clone(partition), info))
}

/// What a coordinator answers when writing to its partition failed with
/// `code`: Kafka's group and transaction coordinators answer a storage
/// failure (a full or failed log directory) with NOT_COORDINATOR, so the
/// client looks the coordinator up again and retries.
pub fn coordinator_error(code: i16) -> i16 {
    match code {
        KAFKA_STORAGE_ERROR => NOT_COORDINATOR,
        other => other,
    }
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
        // Compaction leaves batches without records (a producer's last
        // batch, a cleaning's last batch): the next read starts after the
        // slice's last batch, not after its last record.
        let slice_end = end_of_batches(&bytes);
        let sets = RecordBatchDecoder::decode_all(&mut Bytes::from(bytes))
            .map_err(|e| TopicError::Storage(format!("{}: {e}", log.dir().display())))?;
        let before = offset;
        for record in sets.into_iter().flat_map(|set| set.records) {
            offset = offset.max(record.offset + 1);
            records.push(record);
        }
        offset = offset.max(slice_end.unwrap_or(offset));
        if offset == before {
            break;
        }
    }
    Ok(records)
}

/// The offset after the last whole v2 batch in `bytes`: its base offset
/// (bytes 0..8) plus its last offset delta (bytes 23..27) plus one.
fn end_of_batches(mut bytes: &[u8]) -> Option<i64> {
    let mut end = None;
    while bytes.len() >= 61 {
        let size = i32::from_be_bytes(bytes[8..12].try_into().expect("4 bytes")) as i64 + 12;
        if size < 61 || size > bytes.len() as i64 {
            break;
        }
        let base_offset = i64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
        let last_offset_delta = i32::from_be_bytes(bytes[23..27].try_into().expect("4 bytes"));
        end = Some(base_offset + last_offset_delta as i64 + 1);
        bytes = &bytes[size as usize..];
    }
    end
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

    #[test]
    fn the_replay_reads_past_batches_compaction_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let config = gregor_log::LogConfig {
            // One batch per segment, one segment per cleaned group.
            segment_bytes: 100,
            compact: true,
            ..gregor_log::LogConfig::default()
        };
        let log = Log::open(dir.path().join("__consumer_offsets-0"), config).unwrap();
        let now = now_ms();
        let record = |key: &str, value: &str| InternalRecord {
            key: key.as_bytes().to_vec(),
            value: Some(value.as_bytes().to_vec()),
        };
        // A transactional commit, its marker, then a plain commit of the
        // same key: the cleaning keeps the producer's last batch, empty,
        // alone in its segment.
        log.append_internal(&record_batch::encode(&[record("k", "v1")], now, Some((7, 0))), 0, now)
            .unwrap();
        log.set_high_watermark(log.log_end_offset());
        log.append_marker(7, 0, true, 0, 0, now).unwrap();
        for (key, value) in [("k", "v2"), ("z", "last")] {
            log.append_internal(&record_batch::encode(&[record(key, value)], now, None), 0, now)
                .unwrap();
        }
        log.set_high_watermark(log.log_end_offset());
        let stats = log.clean(&gregor_log::CleanOptions::default(), now).unwrap();
        assert_eq!(stats.outcome, gregor_log::CleanOutcome::Cleaned);
        let first = log.read(0, 1 << 20, log.high_watermark()).unwrap().unwrap();
        assert_eq!(first.len(), 61, "the cleaned first segment holds one empty batch");

        let values: Vec<(Option<Bytes>, Option<Bytes>)> = read_all(&log)
            .unwrap()
            .into_iter()
            .filter(|r| !r.control)
            .map(|r| (r.key, r.value))
            .collect();
        let text = |s: &str| Some(Bytes::copy_from_slice(s.as_bytes()));
        assert_eq!(values, [(text("k"), text("v2")), (text("z"), text("last"))]);
    }
}
