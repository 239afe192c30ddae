//! Exactly-once with a real client (librdkafka): idempotent producers across
//! dropped connections, transactions committed and aborted as seen by
//! read_committed and read_uncommitted consumers, zombie fencing,
//! consume-transform-produce across a `kill -9` of the broker, timed-out
//! transactions aborted after a restart, and the `gregor txn` and
//! `gregor producers` commands that show them.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use common::{Broker, TIMEOUT, block_on, create_topic, payloads, stderr_of_failure, stdout_of, unique_topic};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

/// Sends one record to `partition` and waits for its acknowledgement; returns its offset.
fn send(producer: &FutureProducer, topic: &str, partition: i32, value: &str) -> i64 {
    let record = FutureRecord::<(), str>::to(topic).partition(partition).payload(value);
    let delivery = block_on(producer.send(record, TIMEOUT))
        .map_err(|(error, _)| error)
        .expect("delivery");
    delivery.offset
}

/// A consumer of one partition from its beginning, with the given `isolation.level`.
fn reader(broker: &Broker, topic: &str, partition: i32, isolation: &str) -> BaseConsumer {
    let consumer = broker.consumer(&[("isolation.level", isolation)]);
    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(topic, partition, Offset::Beginning)
        .expect("assignment");
    consumer.assign(&assignment).expect("assign");
    consumer
}

/// Polls `consumer` until a record with the payload `last` arrives; returns
/// every payload up to and including it.
fn poll_until(consumer: &BaseConsumer, last: &str) -> Vec<String> {
    let deadline = Instant::now() + TIMEOUT;
    let mut seen: Vec<OwnedMessage> = Vec::new();
    loop {
        if let Some(message) = seen.last()
            && message.payload() == Some(last.as_bytes())
        {
            return payloads(&seen);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "no record {last:?} within {TIMEOUT:?}; got {:?}",
            payloads(&seen)
        );
        match consumer.poll(left.min(Duration::from_millis(200))) {
            Some(Ok(message)) => seen.push(message.detach()),
            Some(Err(error)) => panic!("consumer error after {:?}: {error}", payloads(&seen)),
            None => {}
        }
    }
}

/// Every payload of one partition up to the record `last`, as a consumer with `isolation` sees it.
fn read_until(broker: &Broker, topic: &str, partition: i32, isolation: &str, last: &str) -> Vec<String> {
    poll_until(&reader(broker, topic, partition, isolation), last)
}

fn transactional_producer(broker: &Broker, transactional_id: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut settings = vec![("transactional.id", transactional_id)];
    settings.extend_from_slice(extra);
    let producer = broker.producer(&settings);
    producer.init_transactions(TIMEOUT).expect("init_transactions");
    producer
}

#[test]
fn committed_and_aborted_transactions_as_each_isolation_level_sees_them() {
    let broker = Broker::start();
    let topic = unique_topic("txn-interleaved");
    block_on(create_topic(&broker, &topic, 2, &[]));
    let producer = transactional_producer(&broker, &unique_topic("txn-interleaved-id"), &[]);

    let mut committed = [Vec::new(), Vec::new()];
    let mut all = [Vec::new(), Vec::new()];
    for round in 0..10 {
        producer.begin_transaction().expect("begin");
        for i in 0..6 {
            let partition = i % 2;
            let value = format!("round-{round}-{i}");
            send(&producer, &topic, partition, &value);
            all[partition as usize].push(value.clone());
            if round % 3 != 1 {
                committed[partition as usize].push(value);
            }
        }
        // Rounds 1, 4 and 7 abort; the rest commit.
        if round % 3 == 1 {
            producer.abort_transaction(TIMEOUT).expect("abort");
        } else {
            producer.commit_transaction(TIMEOUT).expect("commit");
        }
    }
    // A last committed record in each partition tells the readers where the data ends.
    producer.begin_transaction().expect("begin");
    for partition in 0..2 {
        send(&producer, &topic, partition, "end");
    }
    producer.commit_transaction(TIMEOUT).expect("commit");

    for partition in 0..2 {
        let mut expected = committed[partition as usize].clone();
        expected.push("end".to_string());
        assert_eq!(
            read_until(&broker, &topic, partition, "read_committed", "end"),
            expected,
            "read_committed, partition {partition}: committed records only, in order"
        );
        let mut expected = all[partition as usize].clone();
        expected.push("end".to_string());
        assert_eq!(
            read_until(&broker, &topic, partition, "read_uncommitted", "end"),
            expected,
            "read_uncommitted, partition {partition}: every record, in order"
        );
    }
}

#[test]
fn an_open_transaction_holds_read_committed_consumers_at_the_last_stable_offset() {
    let broker = Broker::start();
    let topic = unique_topic("txn-lso");
    block_on(create_topic(&broker, &topic, 1, &[]));
    let plain = broker.producer(&[]);
    send(&plain, &topic, 0, "before");
    let transactional = transactional_producer(&broker, &unique_topic("txn-lso-id"), &[]);
    transactional.begin_transaction().expect("begin");
    let open_offset = send(&transactional, &topic, 0, "open");
    send(&plain, &topic, 0, "after");

    // ListOffsets in read_committed answers the last stable offset: the open
    // transaction's first offset, although "after" is below the high watermark.
    let committed_view = broker.consumer(&[("isolation.level", "read_committed")]);
    let (_, last_stable_offset) = committed_view
        .fetch_watermarks(&topic, 0, TIMEOUT)
        .expect("read_committed watermarks");
    assert_eq!(
        last_stable_offset, open_offset,
        "the last stable offset stops at the open transaction"
    );
    let uncommitted_view = broker.consumer(&[("isolation.level", "read_uncommitted")]);
    let (_, high_watermark) = uncommitted_view
        .fetch_watermarks(&topic, 0, TIMEOUT)
        .expect("read_uncommitted watermarks");
    assert_eq!(high_watermark, open_offset + 2, "the high watermark is past \"after\"");

    let consumer = reader(&broker, &topic, 0, "read_committed");
    assert_eq!(poll_until(&consumer, "before"), ["before"]);
    // The consumer is fetching; for a second it must get nothing past the open transaction.
    let window = Instant::now() + Duration::from_secs(1);
    while Instant::now() < window {
        if let Some(result) = consumer.poll(Duration::from_millis(100)) {
            let message = result.expect("consumer error");
            panic!(
                "read_committed delivered {:?} at offset {} past an open transaction",
                message.payload().map(String::from_utf8_lossy),
                message.offset()
            );
        }
    }
    transactional.commit_transaction(TIMEOUT).expect("commit");
    assert_eq!(poll_until(&consumer, "after"), ["open", "after"]);
}

#[test]
fn a_zombie_producer_is_fenced() {
    let broker = Broker::start();
    let topic = unique_topic("txn-zombie");
    block_on(create_topic(&broker, &topic, 1, &[]));
    let transactional_id = unique_topic("txn-zombie-id");

    let zombie = transactional_producer(&broker, &transactional_id, &[]);
    zombie.begin_transaction().expect("begin");
    send(&zombie, &topic, 0, "zombie");

    // A new instance with the same transactional.id bumps the epoch, which
    // aborts the zombie's open transaction (KIP-98).
    let successor = transactional_producer(&broker, &transactional_id, &[]);
    successor.begin_transaction().expect("begin");
    send(&successor, &topic, 0, "successor");
    successor.commit_transaction(TIMEOUT).expect("the successor commits");

    let error = zombie
        .commit_transaction(TIMEOUT)
        .expect_err("the zombie's commit must fail");
    let code = error.rdkafka_error_code();
    assert!(
        matches!(
            code,
            Some(RDKafkaErrorCode::Fenced | RDKafkaErrorCode::ProducerFenced | RDKafkaErrorCode::InvalidProducerEpoch)
        ),
        "the zombie is fenced, got {error} ({code:?})"
    );
    if let KafkaError::Transaction(error) = &error {
        assert!(error.is_fatal(), "fencing is fatal for the zombie: {error}");
    }
    assert_eq!(
        read_until(&broker, &topic, 0, "read_committed", "successor"),
        ["successor"]
    );
    assert_eq!(
        read_until(&broker, &topic, 0, "read_uncommitted", "successor"),
        ["zombie", "successor"]
    );
}

/// A TCP proxy in front of the broker that cuts each connection once its
/// client has sent `budget_bytes` through it, right after a whole request:
/// the broker reads and processes that request, but its response (and any
/// still in flight) never reaches the client, which must retry: the
/// duplicates that idempotence (KIP-98) must store once.
struct CuttingProxy {
    cutting: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
}

impl CuttingProxy {
    /// Binds first, so the broker can advertise the proxy's port.
    fn bind() -> (TcpListener, u16) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        (listener, port)
    }

    fn start(listener: TcpListener, broker_addr: &str, budget_bytes: usize) -> CuttingProxy {
        let cutting = Arc::new(AtomicBool::new(true));
        let cuts = Arc::new(AtomicUsize::new(0));
        let broker_addr = broker_addr.to_string();
        let (cutting_flag, cut_count) = (Arc::clone(&cutting), Arc::clone(&cuts));
        // The accept thread lives until the test process ends; it holds no resources of the broker.
        thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(upstream) = TcpStream::connect(&broker_addr) else {
                    continue;
                };
                let (cutting, cuts) = (Arc::clone(&cutting_flag), Arc::clone(&cut_count));
                thread::spawn(move || relay(client, upstream, budget_bytes, cutting, cuts));
            }
        });
        CuttingProxy { cutting, cuts }
    }

    fn stop_cutting(&self) {
        self.cutting.store(false, Ordering::SeqCst);
    }

    fn cuts(&self) -> usize {
        self.cuts.load(Ordering::SeqCst)
    }
}

fn relay(
    client: TcpStream,
    upstream: TcpStream,
    budget_bytes: usize,
    cutting: Arc<AtomicBool>,
    cuts: Arc<AtomicUsize>,
) {
    let (Ok(mut client_reader), Ok(mut client_writer)) = (client.try_clone(), client.try_clone()) else {
        return;
    };
    let (Ok(mut upstream_reader), Ok(mut upstream_writer)) = (upstream.try_clone(), upstream.try_clone()) else {
        return;
    };
    let responses = thread::spawn(move || {
        let mut buffer = [0u8; 16 * 1024];
        while let Ok(read) = upstream_reader.read(&mut buffer) {
            if read == 0 || client_writer.write_all(&buffer[..read]).is_err() {
                break;
            }
        }
        let _ = client_writer.shutdown(Shutdown::Both);
    });
    let mut buffer = [0u8; 16 * 1024];
    let mut sent = 0;
    let mut frames = FrameTracker::default();
    'relaying: while let Ok(read) = client_reader.read(&mut buffer) {
        if read == 0 {
            break;
        }
        let mut forwarded = 0;
        while forwarded < read {
            let Some(length) = frames.end_within(&buffer[forwarded..read]) else {
                break;
            };
            let frame_end = forwarded + length;
            if sent + frame_end >= budget_bytes && cutting.load(Ordering::SeqCst) {
                // Forward up to the end of this request, then cut before its response.
                let _ = upstream_writer.write_all(&buffer[..frame_end]);
                cuts.fetch_add(1, Ordering::SeqCst);
                let _ = client.shutdown(Shutdown::Both);
                break 'relaying;
            }
            forwarded = frame_end;
        }
        if upstream_writer.write_all(&buffer[..read]).is_err() {
            break;
        }
        sent += read;
    }
    let _ = upstream.shutdown(Shutdown::Both);
    let _ = client.shutdown(Shutdown::Both);
    let _ = responses.join();
}

/// Where the client's requests end: each is a 4-byte big-endian size, then that many bytes.
#[derive(Default)]
struct FrameTracker {
    size_bytes: Vec<u8>,
    body_left: usize,
}

impl FrameTracker {
    /// Walks `bytes` up to the end of the current request; returns how many
    /// bytes that took, or None if the request continues past them.
    fn end_within(&mut self, bytes: &[u8]) -> Option<usize> {
        let mut at = 0;
        while at < bytes.len() {
            if self.size_bytes.len() < 4 {
                self.size_bytes.push(bytes[at]);
                at += 1;
                if self.size_bytes.len() == 4 {
                    let size = i32::from_be_bytes(self.size_bytes[..].try_into().expect("4 bytes"));
                    self.body_left = usize::try_from(size).expect("a valid request size");
                }
            } else {
                let taken = self.body_left.min(bytes.len() - at);
                at += taken;
                self.body_left -= taken;
            }
            if self.size_bytes.len() == 4 && self.body_left == 0 {
                self.size_bytes.clear();
                return Some(at);
            }
        }
        None
    }
}

#[test]
fn an_idempotent_producer_stores_every_record_once_across_dropped_connections() {
    let (listener, proxy_port) = CuttingProxy::bind();
    let advertised = format!("PLAINTEXT://127.0.0.1:{proxy_port}");
    let broker = Broker::start_with(&[("advertised.listeners", &advertised)]);
    // Batches of at most 8 KiB keep each produce request (4 partitions) well
    // under the budget, so every connection carries a few whole requests.
    let proxy = CuttingProxy::start(listener, broker.addr(), 96 * 1024);
    let topic = unique_topic("idempotent-cuts");
    let partitions = 4;
    block_on(create_topic(&broker, &topic, partitions, &[]));

    let total = 100_000;
    let producer = broker.producer(&[
        ("bootstrap.servers", &format!("127.0.0.1:{proxy_port}")),
        ("enable.idempotence", "true"),
        ("linger.ms", "5"),
        ("batch.size", "8192"),
        ("queue.buffering.max.messages", "200000"),
        ("message.timeout.ms", "60000"),
        // Reconnect at once after each cut, rather than backing off up to 10 s.
        ("reconnect.backoff.ms", "10"),
        ("reconnect.backoff.max.ms", "100"),
        ("retry.backoff.ms", "10"),
        ("retry.backoff.max.ms", "100"),
    ]);
    let deliveries: Vec<_> = (0..total)
        .map(|i| {
            let value = format!("{i}");
            let record = FutureRecord::<(), String>::to(&topic)
                .partition(i % partitions)
                .payload(&value);
            producer
                .send_result(record)
                .map_err(|(error, _)| error)
                .expect("queued")
        })
        .collect();
    block_on(async {
        for (n, delivery) in deliveries.into_iter().enumerate() {
            if let Err((error, _)) = delivery.await.expect("not canceled") {
                panic!(
                    "record {n} not delivered after {} connection cuts: {error}",
                    proxy.cuts()
                );
            }
        }
    });
    let cuts = proxy.cuts();
    assert!(cuts >= 10, "the proxy cut the producer's connections ({cuts} cuts)");
    proxy.stop_cutting();

    let per_partition = (total / partitions) as usize;
    for partition in 0..partitions {
        let consumer = broker.consumer(&[("fetch.max.bytes", "1048576")]);
        let (low, high) = consumer
            .fetch_watermarks(&topic, partition, TIMEOUT)
            .expect("watermarks");
        assert_eq!(
            (low, high),
            (0, per_partition as i64),
            "partition {partition}: no duplicates"
        );
        let messages = common::consume(&broker, &topic, partition, Offset::Beginning, per_partition);
        let expected: Vec<String> = (0..per_partition)
            .map(|n| (n as i32 * partitions + partition).to_string())
            .collect();
        assert!(
            payloads(&messages) == expected,
            "partition {partition}: every record once, in order"
        );
    }
}

/// The consume-transform-produce application: reads `input` from the
/// offsets committed for `GROUP`, writes each record's transform to the same
/// partition of `output`, and commits both in one transaction.
struct Pipeline {
    consumer: BaseConsumer,
    producer: FutureProducer,
    output: String,
}

const GROUP: &str = "txn-pipeline";
const PIPELINE_TRANSACTIONAL_ID: &str = "txn-pipeline-app";

fn transform(value: &str) -> String {
    value.replacen("in-", "out-", 1)
}

impl Pipeline {
    /// (Re)starts the application: the same transactional.id fences any
    /// earlier instance and aborts its open transaction; the consumer
    /// resumes from the group's committed offsets.
    fn start(broker: &Broker, input: &str, output: &str, partitions: i32) -> Pipeline {
        let consumer = broker.consumer(&[
            ("group.id", GROUP),
            ("isolation.level", "read_committed"),
            ("auto.offset.reset", "earliest"),
        ]);
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment
                .add_partition_offset(input, partition, Offset::Stored)
                .expect("assignment");
        }
        consumer.assign(&assignment).expect("assign");
        let producer = transactional_producer(broker, PIPELINE_TRANSACTIONAL_ID, &[]);
        Pipeline {
            consumer,
            producer,
            output: output.to_string(),
        }
    }

    /// Polls up to `max` records, stopping early when none comes for a moment.
    fn poll_batch(&self, max: usize) -> Vec<OwnedMessage> {
        let mut batch = Vec::new();
        while batch.len() < max {
            match self.consumer.poll(Duration::from_millis(300)) {
                Some(Ok(message)) => batch.push(message.detach()),
                Some(Err(error)) => panic!("input consumer error: {error}"),
                None => break,
            }
        }
        batch
    }

    /// Transforms one batch inside a transaction that also carries the
    /// consumer's next offsets. Leaves the transaction open if `!commit`.
    fn process(&self, batch: &[OwnedMessage], commit: bool) {
        self.producer.begin_transaction().expect("begin");
        let deliveries: Vec<_> = batch
            .iter()
            .map(|message| {
                let value = transform(&String::from_utf8_lossy(message.payload().expect("a value")));
                let record = FutureRecord::<(), String>::to(&self.output)
                    .partition(message.partition())
                    .payload(&value);
                self.producer
                    .send_result(record)
                    .map_err(|(error, _)| error)
                    .expect("queued")
            })
            .collect();
        block_on(async {
            for delivery in deliveries {
                delivery
                    .await
                    .expect("not canceled")
                    .map_err(|(error, _)| error)
                    .expect("delivered");
            }
        });
        let positions = self.consumer.position().expect("positions");
        let group = self.consumer.group_metadata().expect("group metadata");
        self.producer
            .send_offsets_to_transaction(&positions, &group, TIMEOUT)
            .expect("send_offsets_to_transaction");
        if commit {
            self.producer.commit_transaction(TIMEOUT).expect("commit");
        }
    }

    /// True once the consumer's position is `end` in every partition.
    fn done(&self, end: i64) -> bool {
        let positions = self.consumer.position().expect("positions");
        positions
            .elements()
            .iter()
            .all(|element| element.offset() == Offset::Offset(end))
    }
}

#[test]
fn consume_transform_produce_is_exactly_once_across_kill_9() {
    let dir = tempfile::tempdir().expect("temporary log directory");
    let mut broker = Broker::start_in(dir.path(), &[]);
    let (input, output) = (unique_topic("ctp-in"), unique_topic("ctp-out"));
    let partitions = 2;
    let per_partition = 600;
    block_on(create_topic(&broker, &input, partitions, &[]));
    block_on(create_topic(&broker, &output, partitions, &[]));
    let producer = broker.producer(&[("linger.ms", "5")]);
    let deliveries: Vec<_> = (0..per_partition)
        .flat_map(|i| (0..partitions).map(move |partition| (partition, i)))
        .map(|(partition, i)| {
            let value = format!("in-{partition}-{i}");
            let record = FutureRecord::<(), String>::to(&input)
                .partition(partition)
                .payload(&value);
            producer
                .send_result(record)
                .map_err(|(error, _)| error)
                .expect("queued")
        })
        .collect();
    block_on(async {
        for delivery in deliveries {
            delivery
                .await
                .expect("not canceled")
                .map_err(|(error, _)| error)
                .expect("delivered");
        }
    });
    drop(producer);

    // Commit a few batches, then crash in the middle of the next transaction:
    // its records and offsets are in the logs, its commit never came.
    let pipeline = Pipeline::start(&broker, &input, &output, partitions);
    let mut committed_batches = 0;
    let deadline = Instant::now() + TIMEOUT;
    while committed_batches < 4 {
        assert!(Instant::now() < deadline, "the pipeline made no progress");
        let batch = pipeline.poll_batch(100);
        if !batch.is_empty() {
            pipeline.process(&batch, true);
            committed_batches += 1;
        }
    }
    let batch = loop {
        assert!(Instant::now() < deadline, "the pipeline made no progress");
        let batch = pipeline.poll_batch(100);
        if !batch.is_empty() {
            break batch;
        }
    };
    pipeline.process(&batch, false);
    broker.kill();
    drop(pipeline);

    let broker = Broker::start_in(dir.path(), &[]);
    let pipeline = Pipeline::start(&broker, &input, &output, partitions);
    let deadline = Instant::now() + TIMEOUT;
    while !pipeline.done(per_partition) {
        assert!(
            Instant::now() < deadline,
            "the pipeline did not finish within {TIMEOUT:?}"
        );
        let batch = pipeline.poll_batch(100);
        if !batch.is_empty() {
            pipeline.process(&batch, true);
        }
    }
    drop(pipeline);

    let plain = broker.producer(&[]);
    for partition in 0..partitions {
        send(&plain, &output, partition, "end");
        let mut expected: Vec<String> = (0..per_partition).map(|i| format!("out-{partition}-{i}")).collect();
        expected.push("end".to_string());
        assert!(
            read_until(&broker, &output, partition, "read_committed", "end") == expected,
            "partition {partition}: each input's transform exactly once, in order"
        );
    }
}

#[test]
fn an_open_transaction_is_aborted_when_it_times_out_after_a_restart() {
    let dir = tempfile::tempdir().expect("temporary log directory");
    let settings = [("transaction.abort.timed.out.transaction.cleanup.interval.ms", "100")];
    let mut broker = Broker::start_in(dir.path(), &settings);
    let topic = unique_topic("txn-timeout");
    block_on(create_topic(&broker, &topic, 1, &[]));
    let transactional_id = unique_topic("txn-timeout-id");
    let producer = transactional_producer(
        &broker,
        &transactional_id,
        &[
            ("transaction.timeout.ms", "2000"),
            ("message.timeout.ms", "2000"),
            ("socket.timeout.ms", "2000"),
        ],
    );
    producer.begin_transaction().expect("begin");
    send(&producer, &topic, 0, "open");
    broker.kill();
    drop(producer);

    let broker = Broker::start_in(dir.path(), &settings);
    let plain = broker.producer(&[]);
    send(&plain, &topic, 0, "after");
    // The read_committed consumer gets past the open transaction once the
    // coordinator aborts it, a little after its 2 s timeout.
    assert_eq!(read_until(&broker, &topic, 0, "read_committed", "after"), ["after"]);
    assert_eq!(
        read_until(&broker, &topic, 0, "read_uncommitted", "after"),
        ["open", "after"]
    );
    let described = stdout_of(&broker.gregor(&["txn", "describe", &transactional_id], ""));
    assert!(
        described.contains("CompleteAbort"),
        "the coordinator aborted the transaction:\n{described}"
    );
}

#[test]
fn gregor_txn_lists_and_describes_transactions() {
    let broker = Broker::start();
    let topic = unique_topic("txn-cli");
    block_on(create_topic(&broker, &topic, 2, &[]));
    let (open_id, committed_id) = (unique_topic("txn-cli-open"), unique_topic("txn-cli-done"));

    let committed = transactional_producer(&broker, &committed_id, &[]);
    committed.begin_transaction().expect("begin");
    send(&committed, &topic, 0, "committed");
    committed.commit_transaction(TIMEOUT).expect("commit");
    let open = transactional_producer(&broker, &open_id, &[("transaction.timeout.ms", "45000")]);
    open.begin_transaction().expect("begin");
    send(&open, &topic, 0, "open-0");
    send(&open, &topic, 1, "open-1");

    // Kafka's kafka-transactions.sh columns.
    let listed = stdout_of(&broker.gregor(&["txn", "list"], ""));
    let header: Vec<&str> = listed.lines().next().expect("a header").split_whitespace().collect();
    assert_eq!(
        header,
        ["TransactionalId", "Coordinator", "ProducerId", "TransactionState"]
    );
    let row = |id: &str| -> Vec<String> {
        listed
            .lines()
            .map(|line| line.split_whitespace().map(String::from).collect::<Vec<_>>())
            .find(|cells| cells[0] == id)
            .unwrap_or_else(|| panic!("{id} in\n{listed}"))
    };
    assert_eq!(row(&open_id)[3], "Ongoing", "{listed}");
    assert_eq!(row(&committed_id)[3], "CompleteCommit", "{listed}");

    let described = stdout_of(&broker.gregor(&["txn", "describe", &open_id], ""));
    let lines: Vec<Vec<&str>> = described
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "CoordinatorId",
            "TransactionalId",
            "ProducerId",
            "ProducerEpoch",
            "TransactionState",
            "TransactionTimeoutMs",
            "CurrentTransactionStartTimeMs",
            "TransactionDurationMs",
            "TopicPartitions"
        ],
        "{described}"
    );
    assert_eq!(lines.len(), 2, "{described}");
    let row = &lines[1];
    assert_eq!(row[1], open_id);
    assert_eq!(row[2], row_of_list_producer_id(&listed, &open_id));
    assert_eq!(row[4], "Ongoing");
    assert_eq!(row[5], "45000");
    assert!(row[6].parse::<i64>().is_ok_and(|start| start > 0), "{described}");
    assert_eq!(row[8], format!("{topic}-0,{topic}-1"));

    let missing = stderr_of_failure(&broker.gregor(&["txn", "describe", "no-such-transactional-id"], ""));
    assert_eq!(missing.lines().count(), 1, "one line: {missing}");
    assert!(
        missing.contains("no-such-transactional-id") && missing.contains("TRANSACTIONAL_ID_NOT_FOUND"),
        "{missing}"
    );

    let producers = stdout_of(&broker.gregor(&["producers", "describe", "--topic", &topic], ""));
    let lines: Vec<Vec<&str>> = producers
        .lines()
        .map(|line| line.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        [
            "Partition",
            "ProducerId",
            "ProducerEpoch",
            "LatestCoordinatorEpoch",
            "LastSequence",
            "LastTimestamp",
            "CurrentTransactionStartOffset"
        ],
        "{producers}"
    );
    // Partition 1 holds only the open transaction, which started at its offset 0;
    // partition 0 has the committed producer (no transaction) and the open one (from offset 2:
    // the committed record, its commit marker).
    let open_producer_id = row_of_list_producer_id(&listed, &open_id);
    let committed_producer_id = row_of_list_producer_id(&listed, &committed_id);
    let partition_1: Vec<&Vec<&str>> = lines.iter().filter(|cells| cells[0] == "1").collect();
    assert_eq!(partition_1.len(), 1, "{producers}");
    assert_eq!(partition_1[0][1], open_producer_id, "{producers}");
    assert_eq!(partition_1[0][6], "0", "{producers}");
    let in_partition_0 = |producer_id: &str| {
        lines
            .iter()
            .find(|cells| cells[0] == "0" && cells[1] == producer_id)
            .unwrap_or_else(|| panic!("producer {producer_id} in partition 0:\n{producers}"))
            .clone()
    };
    assert_eq!(in_partition_0(&committed_producer_id)[6], "None", "{producers}");
    assert_eq!(in_partition_0(&open_producer_id)[6], "2", "{producers}");
    open.abort_transaction(TIMEOUT).expect("abort");
}

/// The producer id `gregor txn list` printed for `transactional_id`.
fn row_of_list_producer_id(listed: &str, transactional_id: &str) -> String {
    listed
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|cells| cells[0] == transactional_id)
        .map(|cells| cells[2].to_string())
        .unwrap_or_else(|| panic!("{transactional_id} in\n{listed}"))
}
