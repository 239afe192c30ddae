//! Log compaction over the wire: a compacted topic under continuous updates
//! keeps the latest value of every key for a consumer reading from the
//! beginning, tombstones vanish after `delete.retention.ms`, the log
//! shrinks, records without a key are refused, and the group coordinator's
//! replay of a compacted `__consumer_offsets` still finds every commit.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::*;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// Cleaning many segments takes longer than a request.
const CLEANING: Duration = Duration::from_secs(60);
const TOPIC: &str = "latest-values";

fn text(value: &str) -> StrBytes {
    StrBytes::from_string(value.to_string())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// A batch of keyed records (`None` value: a tombstone) stamped `timestamp`.
fn keyed_batch(records: &[(String, Option<String>)], timestamp: i64, compression: Compression) -> Bytes {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // Without a producer the base sequence is -1; the encoder keeps
            // records in one batch while offset - sequence stays the same.
            sequence: i as i32 - 1,
            timestamp,
            key: Some(Bytes::from(key.clone())),
            value: value.clone().map(Bytes::from),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
    out.freeze()
}

async fn produce(client: &mut Client, topic: &str, records: Bytes) -> i16 {
    let response = client.call(&produce_request(topic, -1, records), 9).await;
    response.responses[0].partition_responses[0].error_code
}

async fn create_compacted_topic(client: &mut Client, topic: &str, configs: &[(&str, &str)]) {
    let configs = configs
        .iter()
        .map(|(k, v)| {
            CreatableTopicConfig::default()
                .with_name(text(k))
                .with_value(Some(text(v)))
        })
        .collect();
    let topic = CreatableTopic::default()
        .with_name(name(topic))
        .with_num_partitions(1)
        .with_replication_factor(1)
        .with_configs(configs);
    let request = CreateTopicsRequest::default()
        .with_topics(vec![topic])
        .with_timeout_ms(5000);
    let created = client.call(&request, 7).await;
    assert_eq!(created.topics[0].error_code, 0, "{:?}", created.topics[0].error_message);
}

/// What a consumer reading partition 0 from the beginning sees: key →
/// (offset, value), in offset order, so a later record of a key replaces an
/// earlier one; and how many records it read.
async fn consume_all(client: &mut Client, topic: &str) -> (BTreeMap<String, (i64, Option<String>)>, usize) {
    let mut latest = BTreeMap::new();
    let mut count = 0;
    let mut offset = 0;
    loop {
        let response = client.call(&fetch_request(topic, offset, 0), 12).await;
        let partition = &response.responses[0].partitions[0];
        assert_eq!(partition.error_code, 0);
        let Some(mut bytes) = partition.records.clone() else {
            break;
        };
        if bytes.is_empty() {
            break;
        }
        // The next offset is the end of the last batch, which compaction may
        // have left without records.
        let mut rest = &bytes[..];
        while rest.len() >= 61 {
            let size = i32::from_be_bytes(rest[8..12].try_into().unwrap()) as usize + 12;
            let base = i64::from_be_bytes(rest[..8].try_into().unwrap());
            let last_delta = i32::from_be_bytes(rest[23..27].try_into().unwrap());
            offset = base + last_delta as i64 + 1;
            rest = &rest[size.min(rest.len())..];
        }
        for set in RecordBatchDecoder::decode_all(&mut bytes).unwrap() {
            for record in set.records {
                let key = String::from_utf8(record.key.unwrap().to_vec()).unwrap();
                let value = record.value.map(|v| String::from_utf8(v.to_vec()).unwrap());
                latest.insert(key, (record.offset, value));
                count += 1;
            }
        }
        if offset >= partition.high_watermark {
            break;
        }
    }
    (latest, count)
}

/// Bytes of the partition's segment files on disk.
fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[tokio::test]
async fn a_compacted_topic_keeps_the_latest_value_of_every_key() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let broker = TestBroker::start_in(dir.clone(), &[("log.cleaner.backoff.ms", "20")]).await;
    let mut client = Client::connect(&broker).await;
    create_compacted_topic(
        &mut client,
        TOPIC,
        &[
            ("cleanup.policy", "compact"),
            // Each batch below starts a segment (their timestamps are 10 ms apart).
            ("segment.ms", "1"),
            ("min.cleanable.dirty.ratio", "0.01"),
            ("delete.retention.ms", "1000"),
        ],
    )
    .await;
    let partition_dir = dir.path().join(format!("{TOPIC}-0"));

    // Records without a key have no place in a compacted topic.
    assert_eq!(
        produce(&mut client, TOPIC, batch(&["no key"])).await,
        87,
        "INVALID_RECORD"
    );

    // 1000 keys updated 8 times, in batches of 100, some compressed, while
    // the cleaner runs.
    let start = now_ms() - 600_000;
    let mut timestamp = start;
    let mut expected = BTreeMap::new();
    let mut written = 0;
    let mut written_bytes = 0;
    for round in 0..8 {
        for chunk in 0..10 {
            let records: Vec<(String, Option<String>)> = (chunk * 100..chunk * 100 + 100)
                .map(|k| (format!("key-{k:04}"), Some(format!("value-{k}-{round}"))))
                .collect();
            let compression = if chunk % 2 == 0 {
                Compression::None
            } else {
                Compression::Lz4
            };
            timestamp += 10;
            let bytes = keyed_batch(&records, timestamp, compression);
            written_bytes += bytes.len() as u64;
            assert_eq!(produce(&mut client, TOPIC, bytes).await, 0);
            written += records.len();
            for (k, v) in records {
                expected.insert(k, v);
            }
        }
    }
    // A last record of its own key rolls every update out of the active segment.
    timestamp += 10;
    let end = [("end".to_string(), Some("end".to_string()))];
    assert_eq!(
        produce(&mut client, TOPIC, keyed_batch(&end, timestamp, Compression::None)).await,
        0
    );
    expected.insert("end".into(), Some("end".into()));

    let deadline = Instant::now() + CLEANING;
    loop {
        let (latest, count) = consume_all(&mut client, TOPIC).await;
        let values: BTreeMap<String, Option<String>> = latest.into_iter().map(|(k, (_, v))| (k, v)).collect();
        assert_eq!(
            values, expected,
            "a consumer from the beginning sees every key's latest value"
        );
        if count == expected.len() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {count} records of {written} after cleaning"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        log_bytes(&partition_dir) < written_bytes / 4,
        "the log shrank: {written_bytes} -> {}",
        log_bytes(&partition_dir)
    );

    // Tombstones for the first 100 keys: their values go at the next
    // cleaning, the tombstones themselves after delete.retention.ms.
    let tombstones: Vec<(String, Option<String>)> = (0..100).map(|k| (format!("key-{k:04}"), None)).collect();
    timestamp += 10;
    assert_eq!(
        produce(
            &mut client,
            TOPIC,
            keyed_batch(&tombstones, timestamp, Compression::None)
        )
        .await,
        0
    );
    for (k, _) in &tombstones {
        expected.remove(k);
    }
    let deadline = Instant::now() + CLEANING;
    loop {
        // Updates to other keys keep the log dirty, so the cleaner keeps running.
        timestamp += 10;
        let filler = [("filler".to_string(), Some(format!("{timestamp}")))];
        assert_eq!(
            produce(&mut client, TOPIC, keyed_batch(&filler, timestamp, Compression::None)).await,
            0
        );
        expected.insert("filler".into(), Some(format!("{timestamp}")));
        let (latest, _) = consume_all(&mut client, TOPIC).await;
        let deleted_seen = tombstones.iter().filter(|(k, _)| latest.contains_key(k)).count();
        for (k, v) in &expected {
            assert_eq!(latest.get(k).map(|(_, v)| v), Some(v), "{k}");
        }
        for (k, _) in &tombstones {
            if let Some((_, value)) = latest.get(k) {
                assert_eq!(value, &None, "{k} is deleted");
            }
        }
        if deleted_seen == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "{deleted_seen} tombstones are still there");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    broker.stop().await;

    // A restart finds the compacted log as it was.
    let broker = TestBroker::start_in(dir, &[]).await;
    let mut client = Client::connect(&broker).await;
    let (latest, _) = consume_all(&mut client, TOPIC).await;
    let values: BTreeMap<String, Option<String>> = latest.into_iter().map(|(k, (_, v))| (k, v)).collect();
    assert_eq!(values, expected);
    broker.stop().await;
}

fn commit_request(group_id: &str, topic: &str, partition: i32, offset: i64) -> OffsetCommitRequest {
    OffsetCommitRequest::default()
        .with_group_id(GroupId(text(group_id)))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(name(topic))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(partition)
                        .with_committed_offset(offset),
                ]),
        ])
}

async fn committed(client: &mut Client, group_id: &str, topic: &str) -> Vec<i64> {
    let request = OffsetFetchRequest::default()
        .with_group_id(GroupId(text(group_id)))
        .with_topics(Some(vec![
            OffsetFetchRequestTopic::default()
                .with_name(name(topic))
                .with_partition_indexes(vec![0, 1]),
        ]));
    let response = client.call(&request, 7).await;
    response.topics[0]
        .partitions
        .iter()
        .map(|p| p.committed_offset)
        .collect()
}

#[tokio::test]
async fn committed_offsets_survive_the_compaction_of_the_offsets_topic() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    // Every write to __consumer_offsets below starts a segment of its own.
    let settings = [
        ("log.cleaner.backoff.ms", "20"),
        ("log.cleaner.min.cleanable.ratio", "0.01"),
        ("log.roll.ms", "1"),
        ("offsets.topic.num.partitions", "1"),
    ];
    let broker = TestBroker::start_in(dir.clone(), &settings).await;
    let mut client = Client::connect(&broker).await;
    create_topic(&mut client, "orders", 2).await;
    for offset in 1..=40 {
        let partition = (offset % 2) as i32;
        let response = client
            .call(&commit_request("billing", "orders", partition, offset), 9)
            .await;
        assert_eq!(response.topics[0].partitions[0].error_code, 0);
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let offsets_dir = dir.path().join("__consumer_offsets-0");
    let deadline = Instant::now() + CLEANING;
    while !offsets_dir.join("cleaner-offset-checkpoint").exists() {
        assert!(Instant::now() < deadline, "the offsets topic was never cleaned");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(committed(&mut client, "billing", "orders").await, [40, 39]);
    broker.stop().await;

    let broker = TestBroker::start_in(dir, &[("offsets.topic.num.partitions", "1")]).await;
    let mut client = Client::connect(&broker).await;
    assert_eq!(
        committed(&mut client, "billing", "orders").await,
        [40, 39],
        "the replay of the compacted offsets topic finds the last commits"
    );
    broker.stop().await;
}
