//! Compaction with a real client: `kill -9` the broker while the log cleaner
//! is rewriting a compacted topic, restart it, and librdkafka reads a valid
//! log from the beginning (offset gaps, rewritten and empty batches): every
//! record it sees is the one produced at that offset, and every key's latest
//! value is there.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Broker, TIMEOUT, bounded, create_topic, unique_topic};
use rdkafka::consumer::Consumer;
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

const KEYS: usize = 500;
const ROUNDS: usize = 16;

/// Names of the partition directory's files from an unfinished cleaning.
fn cleaning_files(partition_dir: &Path) -> Vec<String> {
    std::fs::read_dir(partition_dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.ends_with(".cleaned") || name.ends_with(".swap"))
                .collect()
        })
        .unwrap_or_default()
}

/// Every record of partition 0 from the beginning to the high watermark, as
/// offset → (key, value).
fn read_everything(broker: &Broker, topic: &str) -> BTreeMap<i64, (String, String)> {
    let consumer = broker.consumer(&[]);
    let (_, high) = consumer.fetch_watermarks(topic, 0, TIMEOUT).expect("watermarks");
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, 0, Offset::Beginning)
        .expect("assignment");
    consumer.assign(&assignment).expect("assign");
    let mut records = BTreeMap::new();
    let deadline = Instant::now() + TIMEOUT;
    // The last offset is in the active segment, which is never cleaned.
    while records.last_key_value().is_none_or(|(offset, _)| *offset < high - 1) {
        assert!(
            Instant::now() < deadline,
            "read {} records, not up to {high}",
            records.len()
        );
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) => {
                let text = |bytes: Option<&[u8]>| String::from_utf8(bytes.expect("non-null").to_vec()).unwrap();
                let previous = records.insert(message.offset(), (text(message.key()), text(message.payload())));
                assert!(previous.is_none(), "offset {} read twice", message.offset());
            }
            Some(Err(error)) => panic!("consumer error after {} records: {error}", records.len()),
            None => {}
        }
    }
    records
}

#[tokio::test]
async fn kill_9_during_cleaning_leaves_a_valid_log() {
    let dir = tempfile::tempdir().expect("temporary log directory");
    let topic = unique_topic("compacted");
    // A slow cleaner (2 MB/s) is rewriting segments most of the time.
    let settings = [
        ("log.cleaner.backoff.ms", "10"),
        ("log.cleaner.io.max.bytes.per.second", "2000000"),
    ];
    let mut broker = Broker::start_in(dir.path(), &settings);
    let partition_dir = dir.path().join(format!("{topic}-0"));

    let produced: BTreeMap<i64, (String, String)> = bounded(3, async {
        let configs = [
            ("cleanup.policy", "compact"),
            ("segment.bytes", "1048576"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ];
        create_topic(&broker, &topic, 1, &configs).await;
        let producer = broker.producer(&[("linger.ms", "5"), ("compression.type", "lz4")]);
        let mut pending = Vec::with_capacity(KEYS * ROUNDS);
        // Values that lz4 cannot shrink much, so the log spans segments.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut noise = || {
            (0..75)
                .map(|_| {
                    seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    format!("{:08x}", seed >> 32)
                })
                .collect::<String>()
        };
        for round in 0..ROUNDS {
            for key in 0..KEYS {
                let key = format!("key-{key:03}");
                let value = format!("{round}-{}", noise());
                let record = FutureRecord::to(&topic).partition(0).key(&key).payload(&value);
                pending.push((
                    key.clone(),
                    value.clone(),
                    producer.send_result(record).expect("queued"),
                ));
            }
        }
        let mut produced = BTreeMap::new();
        for (key, value, delivery) in pending {
            let delivery = delivery
                .await
                .expect("delivery")
                .map_err(|(error, _)| error)
                .expect("acknowledged");
            produced.insert(delivery.offset, (key, value));
        }
        produced
    })
    .await;

    // Crash in the middle of a cleaning.
    let deadline = Instant::now() + TIMEOUT;
    while cleaning_files(&partition_dir).is_empty() {
        assert!(Instant::now() < deadline, "no cleaning started:\n{}", broker.stderr());
        std::thread::sleep(Duration::from_millis(2));
    }
    broker.kill();
    drop(broker);

    let broker = Broker::start_in(dir.path(), &[("log.cleaner.backoff.ms", "10")]);
    assert!(
        cleaning_files(&partition_dir).is_empty(),
        "the open finished or dropped the interrupted cleaning"
    );
    let mut latest = BTreeMap::new();
    for (offset, (key, value)) in &produced {
        latest.insert(key.clone(), (*offset, value.clone()));
    }
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let records = read_everything(&broker, &topic);
        for (offset, record) in &records {
            assert_eq!(Some(record), produced.get(offset), "offset {offset} keeps its record");
        }
        for (key, (offset, value)) in &latest {
            assert_eq!(
                records.get(offset),
                Some(&(key.clone(), value.clone())),
                "{key}'s latest value"
            );
        }
        // Once cleaned again, only the active segment holds stale values.
        if records.len() < produced.len() / 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the log was not compacted after the restart");
        std::thread::sleep(Duration::from_millis(200));
    }
}
