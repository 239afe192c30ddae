//! Disk full and I/O errors on a real file system.
//!
//! A full disk: the broker's log directory sits on a small tmpfs the test
//! mounts; produce fails with KAFKA_STORAGE_ERROR while reads go on, offset
//! commits get NOT_COORDINATOR; the broker stopped and started again on the
//! disk still full serves the same reads and committed offsets and refuses
//! the same writes; once the test deletes a filler file it wrote before the
//! broker's data, writes resume without a restart; after a clean restart
//! every acknowledged record is there once, in order.
//!
//! A failed partition: one partition's directory is replaced by a file,
//! another's segment loses its bytes under the running broker. Each goes
//! offline alone (KAFKA_STORAGE_ERROR, no leader in Metadata) with a log
//! line naming it; the other partitions go on.
//!
//! A partition that cannot be opened at startup: a segment's index file or
//! the partition's whole directory is replaced while the broker is down.
//! The broker starts anyway, with that partition offline (the same answers
//! as above, and left out of DescribeLogDirs), and serves the others.
//!
//! Produce, Fetch, ListOffsets, Metadata, DescribeLogDirs, OffsetCommit and OffsetFetch
//! are spoken on the wire with `kafka-protocol`, to see each partition's error code exactly;
//! librdkafka reads the records back, and sees the refusal and the recovery
//! as a real producer.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use common::{Broker, TIMEOUT, Wire, bounded, consume, create_topic, payloads, unique_topic};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::metadata_response::MetadataResponsePartition;
use kafka_protocol::messages::offset_commit_request::{OffsetCommitRequestPartition, OffsetCommitRequestTopic};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType};
use rdkafka::consumer::Consumer;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

const NONE: i16 = 0;
const LEADER_NOT_AVAILABLE: i16 = 5;
const NOT_COORDINATOR: i16 = 16;
const KAFKA_STORAGE_ERROR: i16 = 56;

const RECORD_BYTES: usize = 1000;
const SEGMENT_BYTES: &str = "1048576";

/// A tmpfs mounted for one test, unmounted when dropped (also when the test
/// fails). Declare it before the broker, so the broker stops first.
struct Tmpfs {
    mount_point: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let mount_point = tempfile::tempdir().expect("mount point");
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "gregor-test"])
            .arg(mount_point.path())
            .output()
            .expect("run mount");
        assert!(
            output.status.success(),
            "cannot mount a {size} tmpfs at {}: this test fills a small file system of its own and needs \
             the right to mount one (root or CAP_SYS_ADMIN): {}",
            mount_point.path().display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
        Tmpfs { mount_point }
    }

    fn path(&self) -> &Path {
        self.mount_point.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let unmounted = Command::new("umount").arg(self.path()).status();
        if !unmounted.is_ok_and(|status| status.success()) {
            // Still busy (a test failed with the broker running): detach it.
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// Partition 0 of `topic` is offline: KAFKA_STORAGE_ERROR to produce, fetch
/// and ListOffsets, no leader in Metadata (the replica offline), and an
/// ERROR line naming the partition and `cause`.
fn assert_offline(wire: &mut Wire, broker: &Broker, topic: &str, cause: &str) {
    assert_eq!(wire.produce(topic, &values(0, 1)).0, KAFKA_STORAGE_ERROR, "{topic}");
    assert_eq!(wire.fetch(topic, 0).0, KAFKA_STORAGE_ERROR, "{topic}");
    assert_eq!(wire.latest_offset(topic).0, KAFKA_STORAGE_ERROR, "{topic}");
    let (partition, node) = wire.partition_metadata(topic);
    assert_eq!(partition.error_code, LEADER_NOT_AVAILABLE, "{topic}");
    assert_eq!(partition.leader_id, BrokerId(-1), "{topic}");
    assert_eq!(partition.offline_replicas, vec![node], "{topic}");
    let partition_name = format!("{topic}-0");
    let logged = broker.stderr();
    assert!(
        logged.lines().any(|line| line.contains("ERROR")
            && line.contains("partition offline")
            && line.contains(&partition_name)
            && line.contains(cause)),
        "no error line names {partition_name} and '{cause}':\n{logged}"
    );
}

impl Wire {
    /// Produces `values` as one batch to partition 0 with acks=all: the
    /// partition's error code and base offset.
    fn produce(&mut self, topic: &str, values: &[String]) -> (i16, i64) {
        let request = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(name(topic))
                    .with_partition_data(vec![
                        PartitionProduceData::default()
                            .with_index(0)
                            .with_records(Some(encode_batch(values))),
                    ]),
            ]);
        let response = self.call(&request, 9);
        let partition = &response.responses[0].partition_responses[0];
        (partition.error_code, partition.base_offset)
    }

    /// A Fetch of partition 0 from `offset`: its error code and record bytes.
    fn fetch(&mut self, topic: &str, offset: i64) -> (i16, usize) {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default().with_topic(name(topic)).with_partitions(
                vec![
                FetchPartition::default()
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20),
            ],
            )]);
        let response = self.call(&request, 12);
        let partition = &response.responses[0].partitions[0];
        (partition.error_code, partition.records.as_ref().map_or(0, Bytes::len))
    }

    /// ListOffsets latest of partition 0: error code and offset.
    fn latest_offset(&mut self, topic: &str) -> (i16, i64) {
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![
                ListOffsetsTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-1)]),
            ]);
        let response = self.call(&request, 7);
        let partition = &response.topics[0].partitions[0];
        (partition.error_code, partition.offset)
    }

    /// Metadata of partition 0, and the broker's node id.
    fn partition_metadata(&mut self, topic: &str) -> (MetadataResponsePartition, BrokerId) {
        let request = MetadataRequest::default()
            .with_topics(Some(vec![MetadataRequestTopic::default().with_name(Some(name(topic)))]))
            .with_allow_auto_topic_creation(false);
        let response = self.call(&request, 12);
        let topic = &response.topics[0];
        assert_eq!(topic.error_code, NONE);
        (topic.partitions[0].clone(), response.brokers[0].node_id)
    }

    /// DescribeLogDirs of every partition: the broker's one log directory.
    fn log_dirs(&mut self) -> describe_log_dirs_response::DescribeLogDirsResult {
        let response = self.call(&DescribeLogDirsRequest::default().with_topics(None), 4);
        assert_eq!(response.error_code, NONE);
        assert_eq!(response.results.len(), 1, "one log directory");
        response.results[0].clone()
    }

    /// A commit outside any generation (as an assign()-mode consumer's):
    /// the error code of its one partition.
    fn commit(&mut self, group: &str, topic: &str, offset: i64, metadata: &str) -> i16 {
        let request = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![
                OffsetCommitRequestTopic::default()
                    .with_name(name(topic))
                    .with_partitions(vec![
                        OffsetCommitRequestPartition::default()
                            .with_committed_offset(offset)
                            .with_committed_metadata(Some(StrBytes::from_string(metadata.to_string()))),
                    ]),
            ]);
        self.call(&request, 8).topics[0].partitions[0].error_code
    }

    /// OffsetFetch of partition 0: the group's error code, then the
    /// partition's error code, committed offset and metadata.
    fn committed(&mut self, group: &str, topic: &str) -> (i16, i16, i64, String) {
        let request = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
            .with_topics(Some(vec![
                OffsetFetchRequestTopic::default()
                    .with_name(name(topic))
                    .with_partition_indexes(vec![0]),
            ]));
        let response = self.call(&request, 7);
        let partition = &response.topics[0].partitions[0];
        let metadata = partition.metadata.as_ref().map_or(String::new(), |m| m.to_string());
        (
            response.error_code,
            partition.error_code,
            partition.committed_offset,
            metadata,
        )
    }
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

fn encode_batch(values: &[String]) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, value)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(value.clone())),
            headers: Default::default(),
        })
        .collect();
    let mut out = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).expect("encode batch");
    out.freeze()
}

/// `count` distinct values of [`RECORD_BYTES`] bytes, numbered from `first`.
fn values(first: usize, count: usize) -> Vec<String> {
    (first..first + count)
        .map(|n| format!("{:<width$}", format!("record-{n}"), width = RECORD_BYTES))
        .collect()
}

fn write_filler(path: &Path, bytes: usize) {
    std::fs::write(path, vec![0xa5u8; bytes]).expect("write the filler file");
}

/// The full-disk test's topics and group: `topic` is written until the
/// disk is full, `other` holds `other_values` from before, and `group`
/// commits offsets of `topic`.
struct FullDisk {
    topic: String,
    other: String,
    other_values: Vec<String>,
    group: String,
}

/// What the broker must serve while the disk is full, before and after a
/// restart on it: every acknowledged record and the other topic's, the
/// partitions online, the committed offset; writes refused with
/// KAFKA_STORAGE_ERROR, on the wire and through librdkafka.
async fn check_full_disk(broker: &Broker, names: &FullDisk, acknowledged: &[String], committed: (i64, &str)) {
    let FullDisk {
        topic,
        other,
        other_values,
        group,
    } = names;
    let mut wire = Wire::connect(broker);
    for count in [1, 8] {
        assert_eq!(
            wire.produce(topic, &values(acknowledged.len(), count)).0,
            KAFKA_STORAGE_ERROR,
            "a produce of {count} records on the full disk"
        );
    }
    let producer = broker.producer(&[("retries", "0"), ("message.timeout.ms", "10000")]);
    let refused = producer
        .send(
            FutureRecord::<(), str>::to(topic).partition(0).payload("refused"),
            TIMEOUT,
        )
        .await;
    assert!(
        matches!(
            refused,
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::KafkaStorageError), _))
        ),
        "librdkafka's delivery on a full disk: {refused:?}"
    );
    let (partition, node) = wire.partition_metadata(topic);
    assert_eq!((partition.error_code, partition.leader_id), (NONE, node));
    assert_eq!(wire.latest_offset(topic), (NONE, acknowledged.len() as i64));
    let read = consume(broker, topic, 0, Offset::Beginning, acknowledged.len());
    assert_eq!(payloads(&read), acknowledged, "reads while the disk is full");
    assert_eq!(
        payloads(&consume(broker, other, 0, Offset::Beginning, other_values.len())),
        *other_values
    );
    let (offset, metadata) = committed;
    assert_eq!(
        wire.committed(group, topic),
        (NONE, NONE, offset, metadata.to_string()),
        "OffsetFetch on a full disk"
    );
}

#[tokio::test]
async fn a_full_disk_refuses_writes_keeps_reads_and_resumes_when_space_returns() {
    let tmpfs = Tmpfs::mount("16m");
    // Written before the broker's data, freed to make space return.
    let filler = tmpfs.path().join("filler");
    write_filler(&filler, 2 << 20);
    let log_dir: PathBuf = tmpfs.path().join("data");
    let settings = [
        ("offsets.topic.num.partitions", "1"),
        ("log.segment.bytes", SEGMENT_BYTES),
    ];
    let mut broker = Broker::start_in(&log_dir, &settings);
    let names = FullDisk {
        topic: unique_topic("full"),
        other: unique_topic("other"),
        other_values: values(0, 5),
        group: unique_topic("group"),
    };
    let FullDisk {
        topic,
        other,
        other_values,
        group,
    } = &names;
    let large_metadata = "m".repeat(4000);

    let (mut acknowledged, mut committed) = bounded(4, async {
        create_topic(&broker, topic, 1, &[]).await;
        create_topic(&broker, other, 1, &[]).await;
        let mut wire = Wire::connect(&broker);
        assert_eq!(wire.produce(other, other_values), (NONE, 0));
        assert_eq!(wire.commit(group, topic, 0, ""), NONE);

        // Fill the disk, in smaller and smaller batches until not even one
        // record fits.
        let mut acknowledged: Vec<String> = Vec::new();
        let mut batch_records = 64;
        let deadline = Instant::now() + TIMEOUT * 2;
        loop {
            assert!(
                Instant::now() < deadline,
                "the disk did not fill within {:?}",
                TIMEOUT * 2
            );
            let batch = values(acknowledged.len(), batch_records);
            match wire.produce(topic, &batch) {
                (NONE, base_offset) => {
                    assert_eq!(base_offset, acknowledged.len() as i64);
                    acknowledged.extend(batch);
                }
                (KAFKA_STORAGE_ERROR, _) if batch_records == 1 => break,
                (KAFKA_STORAGE_ERROR, _) => batch_records /= 2,
                (code, _) => panic!("produce on a filling disk failed with {code}, not KAFKA_STORAGE_ERROR"),
            }
        }
        assert!(acknowledged.len() > 5_000, "only {} records fit", acknowledged.len());
        let full_at = acknowledged.len() as i64;

        // While the disk is full: an offset commit that needs a new page
        // gets NOT_COORDINATOR from the group coordinator, as Kafka's does
        // (4000 bytes of metadata cannot fit twice in the slack of the log's
        // last page), ...
        let commits: Vec<i16> = (0..2)
            .map(|_| wire.commit(group, topic, full_at, &large_metadata))
            .collect();
        assert!(
            commits.contains(&NOT_COORDINATOR) && commits.iter().all(|c| [NONE, NOT_COORDINATOR].contains(c)),
            "offset commits on a full disk: {commits:?}"
        );
        let committed = match commits.contains(&NONE) {
            true => (full_at, large_metadata.clone()),
            false => (0, String::new()),
        };
        // ... writes are refused and stay refused, the partitions stay
        // online, every acknowledged record reads back.
        check_full_disk(&broker, &names, &acknowledged, (committed.0, &committed.1)).await;
        (acknowledged, committed)
    })
    .await;

    // A stop on the full disk cannot write its checkpoints (each log's
    // close fails for want of space, and the next start recovers it), and
    // a start on it still opens every log (Kafka's needs space to start):
    // the same reads, the same refusals.
    assert!(
        broker.terminate().success(),
        "stop on a full disk:\n{}",
        broker.stderr()
    );
    drop(broker);
    let broker = Broker::start_in(&log_dir, &settings);
    bounded(4, async {
        check_full_disk(&broker, &names, &acknowledged, (committed.0, &committed.1)).await;

        // Space returns: writes resume, without a restart.
        std::fs::remove_file(&filler).expect("delete the filler file");
        let mut wire = Wire::connect(&broker);
        for _ in 0..5 {
            let batch = values(acknowledged.len(), 8);
            assert_eq!(wire.produce(topic, &batch), (NONE, acknowledged.len() as i64));
            acknowledged.extend(batch);
        }
        let producer = broker.producer(&[("retries", "0"), ("message.timeout.ms", "10000")]);
        let delivered = producer
            .send(
                FutureRecord::<(), str>::to(topic).partition(0).payload("resumed"),
                TIMEOUT,
            )
            .await
            .expect("librdkafka's delivery once space returned");
        assert_eq!(delivered.offset, acknowledged.len() as i64);
        acknowledged.push("resumed".to_string());
        let after = acknowledged.len() as i64;
        assert_eq!(wire.commit(group, topic, after, "after"), NONE);
        committed = (after, "after".to_string());
        assert_eq!(wire.committed(group, topic), (NONE, NONE, after, "after".to_string()));
    })
    .await;

    // A clean stop, then every acknowledged record once, in order, and the
    // last offset commit that succeeded.
    let mut broker = broker;
    assert!(broker.terminate().success(), "clean shutdown:\n{}", broker.stderr());
    drop(broker);
    let broker = Broker::start_in(&log_dir, &settings);
    bounded(2, async {
        let mut wire = Wire::connect(&broker);
        assert_eq!(wire.latest_offset(topic), (NONE, acknowledged.len() as i64));
        let read = consume(&broker, topic, 0, Offset::Beginning, acknowledged.len());
        assert_eq!(
            payloads(&read),
            acknowledged,
            "after a restart: every acknowledged record once, in order"
        );
        let consumer = broker.consumer(&[("group.id", group)]);
        let mut partitions = TopicPartitionList::new();
        partitions.add_partition(topic, 0);
        let stored = consumer
            .committed_offsets(partitions, TIMEOUT)
            .expect("committed offsets");
        let stored = stored.find_partition(topic, 0).expect("committed partition").offset();
        assert_eq!(stored, Offset::Offset(committed.0));
    })
    .await;
}

/// Root ignores permissions, so the test breaks the partitions the way a
/// failing disk would, under the running broker: one partition's directory
/// becomes a file (the next roll cannot create its segment files), another's
/// segment loses its bytes (the next read comes up short).
#[tokio::test]
async fn a_partition_whose_storage_fails_goes_offline_alone() {
    let broker = Broker::start_with(&[("log.segment.bytes", SEGMENT_BYTES)]);
    let lost_directory = unique_topic("lost-directory");
    let lost_segment = unique_topic("lost-segment");
    let healthy = unique_topic("healthy");
    bounded(3, async {
        for topic in [&lost_directory, &lost_segment, &healthy] {
            create_topic(&broker, topic, 1, &[]).await;
        }
        let mut wire = Wire::connect(&broker);
        for topic in [&lost_directory, &lost_segment, &healthy] {
            assert_eq!(wire.produce(topic, &values(0, 10)), (NONE, 0));
        }

        let directory = broker.log_dir().join(format!("{lost_directory}-0"));
        std::fs::remove_dir_all(&directory).expect("remove the partition directory");
        std::fs::write(&directory, b"not a directory").expect("put a file in its place");
        // Half a segment per batch: the second or third needs a new segment.
        let half_segment = values(0, 500);
        let produced: Vec<i16> = (0..3).map(|_| wire.produce(&lost_directory, &half_segment).0).collect();
        assert!(
            produced.contains(&KAFKA_STORAGE_ERROR),
            "produce after the partition directory became a file: {produced:?}"
        );

        let segment = broker
            .log_dir()
            .join(format!("{lost_segment}-0"))
            .join("00000000000000000000.log");
        std::fs::File::options()
            .write(true)
            .open(&segment)
            .and_then(|file| file.set_len(0))
            .expect("cut the segment");
        assert_eq!(wire.fetch(&lost_segment, 0).0, KAFKA_STORAGE_ERROR);

        for (topic, cause) in [
            (&lost_directory, "Not a directory"),
            (&lost_segment, "read past end of file"),
        ] {
            assert_offline(&mut wire, &broker, topic, cause);
        }

        // The other partitions go on, writes included.
        assert_eq!(wire.produce(&healthy, &values(10, 10)), (NONE, 10));
        let (partition, node) = wire.partition_metadata(&healthy);
        assert_eq!((partition.error_code, partition.leader_id), (NONE, node));
        assert_eq!(
            payloads(&consume(&broker, &healthy, 0, Offset::Beginning, 20)),
            values(0, 20)
        );
    })
    .await;
}

/// Kafka starts with a log directory that fails to load offline and serves
/// the others; Gregor keeps just the partition that fails offline. Root
/// ignores permissions, so the partitions are made unopenable the way a
/// broken disk would: one segment's index file becomes a directory (the
/// open fails with EISDIR), another partition's directory becomes a file.
#[tokio::test]
async fn a_partition_that_cannot_be_opened_at_startup_goes_offline_alone() {
    let data = tempfile::tempdir().expect("log directory");
    let broken_index = unique_topic("broken-index");
    let broken_directory = unique_topic("broken-directory");
    let healthy = unique_topic("healthy");
    let mut broker = Broker::start_in(data.path(), &[]);
    bounded(2, async {
        for topic in [&broken_index, &broken_directory, &healthy] {
            create_topic(&broker, topic, 1, &[]).await;
        }
        let mut wire = Wire::connect(&broker);
        for topic in [&broken_index, &broken_directory, &healthy] {
            assert_eq!(wire.produce(topic, &values(0, 10)), (NONE, 0));
        }
    })
    .await;
    assert!(broker.terminate().success(), "clean shutdown:\n{}", broker.stderr());
    drop(broker);

    let index = data
        .path()
        .join(format!("{broken_index}-0"))
        .join("00000000000000000000.index");
    std::fs::remove_file(&index).expect("remove the index");
    std::fs::create_dir(&index).expect("put a directory in its place");
    let directory = data.path().join(format!("{broken_directory}-0"));
    std::fs::remove_dir_all(&directory).expect("remove the partition directory");
    std::fs::write(&directory, b"not a directory").expect("put a file in its place");

    // `start_in` waits for the listener: the broker starts.
    let mut broker = Broker::start_in(data.path(), &[]);
    bounded(3, async {
        let mut wire = Wire::connect(&broker);
        for (topic, cause) in [(&broken_index, "Is a directory"), (&broken_directory, "File exists")] {
            assert_offline(&mut wire, &broker, topic, cause);
        }

        // DescribeLogDirs lists what the directory serves: the healthy
        // partition, not the offline ones.
        let log_dir = wire.log_dirs();
        assert_eq!(log_dir.error_code, NONE);
        let listed: Vec<(String, Vec<i32>)> = log_dir
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.to_string(),
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect();
        assert!(listed.contains(&(healthy.clone(), vec![0])), "{listed:?}");
        for topic in [&broken_index, &broken_directory] {
            assert!(
                listed.iter().all(|(name, _)| name != topic),
                "{topic} listed: {listed:?}"
            );
        }

        // The healthy partition is served, reads and writes.
        assert_eq!(wire.produce(&healthy, &values(10, 10)), (NONE, 10));
        let (partition, node) = wire.partition_metadata(&healthy);
        assert_eq!((partition.error_code, partition.leader_id), (NONE, node));
        assert_eq!(
            payloads(&consume(&broker, &healthy, 0, Offset::Beginning, 20)),
            values(0, 20)
        );
    })
    .await;
    assert!(broker.terminate().success(), "clean shutdown:\n{}", broker.stderr());
    drop(broker);

    // The offline partition's files were left as they were: repaired, it
    // opens with its records.
    std::fs::remove_dir(&index).expect("remove the directory in the index's place");
    let broker = Broker::start_in(data.path(), &[]);
    bounded(1, async {
        let mut wire = Wire::connect(&broker);
        assert_eq!(wire.latest_offset(&broken_index), (NONE, 10));
        assert_eq!(
            payloads(&consume(&broker, &broken_index, 0, Offset::Beginning, 10)),
            values(0, 10)
        );
    })
    .await;
}
