//! `kill -9` again and again under mixed load: an idempotent acks=all
//! producer, a plain acks=1 producer, a consumer group committing offsets
//! and a transactional producer all run while the broker is killed at
//! random moments and restarted on the same log directory and port. At the
//! end every acknowledged record is where it was acknowledged, the
//! idempotent producer's records are there exactly once and in order, the
//! group's last successful commit survived, every committed transaction is
//! there whole and once, and the topics and their configs are intact.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, SystemTime};

use common::{Broker, TIMEOUT, block_on, create_topic, payloads, poll_messages, stdout_of, unique_topic};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const KILLS: usize = 8;
const DATA_PARTITIONS: i32 = 3;
const TXN_PARTITIONS: i32 = 2;
const RECORDS_PER_TRANSACTION: usize = 10;
/// Client settings that ride out a restart: reconnect quickly, and give a
/// record far longer than a restart takes before it counts as failed.
const RESILIENT: [(&str, &str); 3] = [
    ("reconnect.backoff.max.ms", "200"),
    ("message.timeout.ms", "60000"),
    ("socket.timeout.ms", "5000"),
];

/// A loopback port free right now, for a listener that must keep its
/// address across restarts (clients reconnect to it).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

/// A small xorshift generator: the kill times vary per run and the seed is printed.
struct Random(u64);

impl Random {
    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

/// Sends rounds of records to every partition, `label-partition-sequence`,
/// until `stop`; returns what was acknowledged: (partition, offset) -> value.
fn produce_until(
    producer: FutureProducer,
    topic: String,
    label: &'static str,
    stop: Arc<AtomicBool>,
) -> BTreeMap<(i32, i64), String> {
    let mut acknowledged = BTreeMap::new();
    block_on(async {
        let mut sequence = 0;
        while !stop.load(Ordering::Relaxed) {
            let mut round = Vec::new();
            for _ in 0..20 {
                for partition in 0..DATA_PARTITIONS {
                    let value = format!("{label}-{partition}-{sequence}");
                    let record = FutureRecord::<(), String>::to(&topic)
                        .partition(partition)
                        .payload(&value);
                    round.push((value.clone(), producer.send_result(record).expect("queued")));
                }
                sequence += 1;
            }
            for (value, delivery) in round {
                if let Ok(Ok(delivery)) = delivery.await {
                    acknowledged.insert((delivery.partition, delivery.offset), value);
                }
            }
        }
    });
    acknowledged
}

/// A group member that polls and commits its position synchronously every
/// few records until `stop`; returns its last successful commit per
/// partition and how many commits succeeded.
fn consume_and_commit(
    broker_addr: String,
    topic: String,
    group: String,
    stop: Arc<AtomicBool>,
) -> (BTreeMap<i32, i64>, usize) {
    let consumer: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &broker_addr)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("reconnect.backoff.max.ms", "200")
        .set("session.timeout.ms", "45000")
        .create()
        .expect("group consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut last_commit = BTreeMap::new();
    let mut commits = 0;
    let mut polled = 0;
    while !stop.load(Ordering::Relaxed) {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(100)) {
            polled += 1;
        }
        if polled < 50 {
            continue;
        }
        polled = 0;
        let Ok(position) = consumer.position() else { continue };
        let offsets: BTreeMap<i32, i64> = position
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(offset) => Some((e.partition(), offset)),
                _ => None,
            })
            .collect();
        if !offsets.is_empty() && consumer.commit(&position, CommitMode::Sync).is_ok() {
            last_commit.extend(offsets);
            commits += 1;
        }
    }
    (last_commit, commits)
}

/// Runs transactions of [`RECORDS_PER_TRANSACTION`] records, `txn-k-i`,
/// spread over the partitions, until `stop`; returns the numbers of the
/// transactions whose commit succeeded. A producer that hits a fatal
/// error (fenced after a restart) is replaced by a new one.
fn transact_until(broker_addr: String, topic: String, id: String, stop: Arc<AtomicBool>) -> BTreeSet<usize> {
    let create = || -> FutureProducer {
        let mut config = rdkafka::ClientConfig::new();
        config
            .set("bootstrap.servers", &broker_addr)
            .set("transactional.id", &id);
        for (key, value) in RESILIENT {
            config.set(key, value);
        }
        let producer: FutureProducer = config.create().expect("transactional producer");
        while let Err(error) = producer.init_transactions(TIMEOUT) {
            assert!(
                !stop.load(Ordering::Relaxed),
                "init_transactions never succeeded: {error}"
            );
        }
        producer
    };
    let mut producer = create();
    let mut committed = BTreeSet::new();
    let mut number = 0;
    while !stop.load(Ordering::Relaxed) {
        number += 1;
        let result = producer.begin_transaction().and_then(|()| {
            for i in 0..RECORDS_PER_TRANSACTION {
                let value = format!("txn-{number}-{i}");
                let record = FutureRecord::<(), String>::to(&topic)
                    .partition(i as i32 % TXN_PARTITIONS)
                    .payload(&value);
                producer.send_result(record).map_err(|(error, _)| error)?;
            }
            producer.commit_transaction(TIMEOUT)
        });
        match result {
            Ok(()) => {
                committed.insert(number);
            }
            Err(rdkafka::error::KafkaError::Transaction(error)) if error.txn_requires_abort() => {
                let _ = producer.abort_transaction(TIMEOUT);
            }
            Err(_) => producer = create(),
        }
    }
    committed
}

/// Every record of one partition, read (with `isolation`) up to a
/// sentinel record this function writes at its end.
fn read_all(broker: &Broker, topic: &str, partition: i32, isolation: &str) -> Vec<OwnedMessage> {
    let sentinel = unique_topic("end");
    let record = FutureRecord::<(), String>::to(topic)
        .partition(partition)
        .payload(&sentinel);
    block_on(broker.producer(&[]).send(record, TIMEOUT))
        .map_err(|(error, _)| error)
        .expect("sentinel delivered");
    let consumer = broker.consumer(&[("isolation.level", isolation)]);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Beginning)
        .expect("assignment");
    consumer.assign(&assignment).expect("assign");
    let mut messages: Vec<OwnedMessage> = Vec::new();
    while messages.last().is_none_or(|m| m.payload() != Some(sentinel.as_bytes())) {
        messages.extend(poll_messages(&consumer, 1));
    }
    messages.pop();
    messages
}

#[test]
fn acknowledged_data_commits_and_transactions_survive_repeated_kill_9() {
    let dir = tempfile::tempdir().expect("temporary log directory");
    let listener = format!("PLAINTEXT://127.0.0.1:{}", free_port());
    let settings = [
        ("listeners", listener.as_str()),
        ("transaction.abort.timed.out.transaction.cleanup.interval.ms", "500"),
        // The member rejoins after every restart; Kafka's 3 s default delay
        // of a new group's first rebalance would outlast the kill interval.
        ("group.initial.rebalance.delay.ms", "0"),
    ];
    let mut broker = Broker::start_in(dir.path(), &settings);
    let addr = broker.addr().to_string();
    let (data, txn_out) = (unique_topic("kill-data"), unique_topic("kill-txn"));
    let group = unique_topic("kill-group");
    block_on(create_topic(
        &broker,
        &data,
        DATA_PARTITIONS,
        &[("retention.ms", "123456789")],
    ));
    block_on(create_topic(&broker, &txn_out, TXN_PARTITIONS, &[]));

    let stop = Arc::new(AtomicBool::new(false));
    let workers = {
        let idempotent = broker.producer(&[RESILIENT[0], RESILIENT[1], RESILIENT[2], ("enable.idempotence", "true")]);
        let plain = broker.producer(&[
            RESILIENT[0],
            RESILIENT[1],
            RESILIENT[2],
            ("acks", "1"),
            ("enable.idempotence", "false"),
        ]);
        let (d1, d2, d3, t) = (data.clone(), data.clone(), data.clone(), txn_out.clone());
        let (s1, s2, s3, s4) = (stop.clone(), stop.clone(), stop.clone(), stop.clone());
        let (a1, a2) = (addr.clone(), addr.clone());
        let group = group.clone();
        let id = unique_topic("kill-txn-id");
        (
            thread::spawn(move || produce_until(idempotent, d1, "idem", s1)),
            thread::spawn(move || produce_until(plain, d2, "one", s2)),
            thread::spawn(move || consume_and_commit(a1, d3, group, s3)),
            thread::spawn(move || transact_until(a2, t, id, s4)),
        )
    };

    let seed = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
        | 1;
    println!("kill schedule seed: {seed}");
    let mut random = Random(seed);
    for _ in 0..KILLS {
        thread::sleep(Duration::from_millis(400 + random.below(1200)));
        broker.kill();
        broker = Broker::start_in(dir.path(), &settings);
        assert_eq!(broker.addr(), addr, "the broker came back on its address");
    }
    // Let every client make progress against the last incarnation.
    thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::Relaxed);
    let idempotent = workers.0.join().expect("idempotent producer");
    let plain = workers.1.join().expect("acks=1 producer");
    let (last_commit, commits) = workers.2.join().expect("group member");
    let committed_transactions = workers.3.join().expect("transactional producer");

    println!(
        "{KILLS} kills survived: {} idempotent and {} acks=1 records acknowledged, \
         {commits} offset commits, {} transactions committed",
        idempotent.len(),
        plain.len(),
        committed_transactions.len()
    );

    // Topics and configs are intact.
    let described = stdout_of(&broker.gregor(&["topic", "describe", &data], ""));
    assert!(
        described.contains(&format!("PartitionCount: {DATA_PARTITIONS}")),
        "{described}"
    );
    let configs = stdout_of(&broker.gregor(&["config", "describe", "--topic", &data], ""));
    assert!(configs.contains("retention.ms=123456789"), "{configs}");

    assert!(
        idempotent.len() > 100 && plain.len() > 100,
        "the producers made progress"
    );
    for partition in 0..DATA_PARTITIONS {
        let messages = read_all(&broker, &data, partition, "read_uncommitted");
        let stored: BTreeMap<i64, String> = messages.iter().map(|m| m.offset()).zip(payloads(&messages)).collect();
        for ((acked_partition, offset), value) in idempotent.iter().chain(plain.iter()) {
            if *acked_partition == partition {
                assert_eq!(stored.get(offset), Some(value), "partition {partition} offset {offset}");
            }
        }
        // The idempotent producer's records: each once, in the order sent.
        let prefix = format!("idem-{partition}-");
        let sequences: Vec<u64> = stored
            .values()
            .filter_map(|value| value.strip_prefix(&prefix))
            .map(|sequence| sequence.parse().expect("a sequence number"))
            .collect();
        assert!(
            sequences.windows(2).all(|pair| pair[0] < pair[1]),
            "partition {partition}: idempotent records once and in order: {sequences:?}"
        );
    }

    // The group's last successful commit survived (a commit whose answer was
    // lost to a kill may have landed after it).
    assert!(!last_commit.is_empty(), "the group member committed");
    let checker = broker.consumer(&[("group.id", group.as_str())]);
    let mut wanted = TopicPartitionList::new();
    for partition in 0..DATA_PARTITIONS {
        wanted.add_partition(&data, partition);
    }
    let stored = checker.committed_offsets(wanted, TIMEOUT).expect("committed offsets");
    for (partition, offset) in &last_commit {
        let stored = stored
            .find_partition(&data, *partition)
            .map(|e| e.offset())
            .expect("a committed offset");
        assert!(
            matches!(stored, Offset::Offset(o) if o >= *offset),
            "partition {partition}: committed {offset}, stored {stored:?}"
        );
    }

    // Every committed transaction is there whole and once; nothing else is
    // there but whole transactions (a commit whose answer was lost).
    assert!(
        committed_transactions.len() > 5,
        "transactions committed: {committed_transactions:?}"
    );
    let mut seen: BTreeMap<usize, usize> = BTreeMap::new();
    for partition in 0..TXN_PARTITIONS {
        for value in payloads(&read_all(&broker, &txn_out, partition, "read_committed")) {
            let number = value.split('-').nth(1).and_then(|n| n.parse().ok()).expect("txn-k-i");
            *seen.entry(number).or_default() += 1;
        }
    }
    for (number, count) in &seen {
        assert_eq!(*count, RECORDS_PER_TRANSACTION, "transaction {number} whole and once");
    }
    for number in &committed_transactions {
        assert!(seen.contains_key(number), "committed transaction {number} is visible");
    }
}
