//! The consuming side: `perf consume` reads a topic from the beginning;
//! `perf e2e` reads from the end offsets while its producer writes, and
//! takes each record's latency from the stamp in its value.
//!
//! Consumers assign themselves every partition (no group membership, no
//! committed offsets), so they work on any cluster, and on a broker
//! without the group APIs. librdkafka still wants a group.id for assign().

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::producer::PerfProducer;
use super::records::{fresh_seed, read_stamp};
use super::stats::{Counters, Progress, ProgressMeter, Summary};
use super::{OutputOptions, ProducerOptions};
use crate::client::ClientArgs;

/// How long one poll waits before the loop re-checks its limits.
const POLL_STEP: Duration = Duration::from_millis(100);

/// When `perf consume` stops.
pub struct Limits {
    /// After this many records (default: at the end offsets seen at the start).
    pub num_records: Option<u64>,
    pub duration: Option<Duration>,
    /// When nothing has arrived for this long.
    pub idle_timeout: Duration,
}

fn create_consumer(client: &ClientArgs) -> Result<BaseConsumer> {
    client.create(&[
        ("group.id", "gregor-perf"),
        ("enable.auto.commit", "false"),
        ("enable.auto.offset.store", "false"),
        ("enable.partition.eof", "false"),
        ("auto.offset.reset", "earliest"),
        // librdkafka postpones a partition's next fetch by this much once
        // its local queue is full (1 s by default): a pause the broker
        // did not cause, which would dominate a throughput figure.
        ("fetch.queue.backoff.ms", "10"),
    ])
}

/// Each partition's (id, log start offset, high watermark).
fn watermarks(client: &ClientArgs, consumer: &BaseConsumer, topic: &str) -> Result<Vec<(i32, i64, i64)>> {
    let metadata = client.metadata(consumer.client(), Some(topic))?;
    let mut partitions: Vec<i32> = metadata.topics()[0].partitions().iter().map(|p| p.id()).collect();
    partitions.sort_unstable();
    partitions
        .into_iter()
        .map(|partition| {
            let (low, high) = consumer
                .fetch_watermarks(topic, partition, client.request_timeout())
                .map_err(|error| client.kafka_error(error, Some(topic)))?;
            Ok((partition, low, high))
        })
        .collect()
}

fn assign(client: &ClientArgs, consumer: &BaseConsumer, topic: &str, offsets: &[(i32, Offset)]) -> Result<()> {
    let mut assignment = TopicPartitionList::new();
    for (partition, offset) in offsets {
        assignment
            .add_partition_offset(topic, *partition, *offset)
            .map_err(|error| client.kafka_error(error, Some(topic)))?;
    }
    consumer
        .assign(&assignment)
        .map_err(|error| client.kafka_error(error, Some(topic)))
}

/// Marks the partitions whose consumer position reached the high
/// watermark seen at the start; returns how many were newly marked.
fn mark_positions_reached(consumer: &BaseConsumer, partitions: &[(i32, i64, i64)], reached: &mut [bool]) -> usize {
    let Ok(positions) = consumer.position() else {
        return 0;
    };
    let mut marked = 0;
    for ((id, _, high), reached) in partitions.iter().zip(reached.iter_mut()) {
        let position = positions
            .elements()
            .into_iter()
            .find(|e| e.partition() == *id)
            .map(|e| e.offset());
        if !*reached && matches!(position, Some(Offset::Offset(next)) if next >= *high) {
            *reached = true;
            marked += 1;
        }
    }
    marked
}

/// `perf consume`.
pub fn run(client: &ClientArgs, topic: &str, limits: Limits, output: OutputOptions) -> Result<Summary> {
    let consumer = create_consumer(client)?;
    let partitions = watermarks(client, &consumer, topic)?;
    let index_of = |partition: i32| partitions.iter().position(|(id, _, _)| *id == partition);
    // Without a record count, read each partition up to its high watermark
    // of now; `unfinished` counts the partitions still short of it.
    let mut reached: Vec<bool> = partitions.iter().map(|(_, low, high)| high <= low).collect();
    let mut unfinished = reached.iter().filter(|reached| !**reached).count();
    let offsets: Vec<(i32, Offset)> = partitions.iter().map(|(id, _, _)| (*id, Offset::Beginning)).collect();
    assign(client, &consumer, topic, &offsets)?;

    let counters = Arc::new(Counters::default());
    let progress = Progress::start(
        "consume",
        vec![ProgressMeter::new("consumed", Arc::clone(&counters))],
        output,
    );
    let started = Instant::now();
    let deadline = limits.duration.map(|duration| started + duration);
    let mut last_record = started;
    let mut shortfall = None;
    loop {
        let done = match limits.num_records {
            Some(wanted) => counters.records() >= wanted,
            None => unfinished == 0,
        };
        if done || deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            break;
        }
        match consumer.poll(POLL_STEP) {
            Some(Ok(message)) => {
                last_record = Instant::now();
                counters.record(message.payload_len(), None);
                if let Some(index) = index_of(message.partition())
                    && !reached[index]
                    && message.offset() + 1 >= partitions[index].2
                {
                    reached[index] = true;
                    unfinished -= 1;
                }
            }
            Some(Err(error)) => counters.error(|| error.to_string()),
            None => {
                // Control records (transaction markers) are never delivered: a
                // partition whose position passed its high watermark is done too.
                if limits.num_records.is_none() {
                    unfinished -= mark_positions_reached(&consumer, &partitions, &mut reached);
                    if unfinished == 0 {
                        continue;
                    }
                }
                if last_record.elapsed() >= limits.idle_timeout {
                    shortfall = Some(format!(
                        "consume: no record for {} ms after {} records; stopped short",
                        limits.idle_timeout.as_millis(),
                        counters.records()
                    ));
                    break;
                }
            }
        }
    }
    drop(progress);
    // A run that waited out its idle timeout is measured up to its last record.
    let elapsed = if shortfall.is_some() {
        last_record - started
    } else {
        started.elapsed()
    };
    Ok(Summary {
        mode: "consume",
        topic: topic.to_string(),
        records: counters.records(),
        bytes: counters.bytes.load(Ordering::Relaxed),
        elapsed,
        errors: counters.errors.load(Ordering::Relaxed),
        first_error: counters.first_error(),
        latency: None,
        producer: None,
        shortfall,
    })
}

/// `perf e2e`: a consumer thread positioned at the end of every partition,
/// then the producer. Warm-up records (one per partition, stamped with a
/// different id) are sent and seen first, so connection set-up and the
/// first fetches do not count as latency.
pub fn run_e2e(
    client: &ClientArgs,
    options: &ProducerOptions,
    partitions: i32,
    output: OutputOptions,
    idle_timeout: Duration,
) -> Result<Summary> {
    let epoch = Instant::now();
    let run_id = fresh_seed();
    let warm_up_id = !run_id;
    let topic = options.topic.clone();

    let consumer = create_consumer(client)?;
    let ends = watermarks(client, &consumer, &topic)?;
    let offsets: Vec<(i32, Offset)> = ends.iter().map(|(id, _, high)| (*id, Offset::Offset(*high))).collect();
    assign(client, &consumer, &topic, &offsets)?;

    let counters = Arc::new(Counters::default());
    // Records the consumer should see: unknown (u64::MAX) until the producer is done.
    let expected = Arc::new(AtomicU64::new(u64::MAX));
    let (warm_up_done, warm) = mpsc::channel();
    let reader = {
        let counters = Arc::clone(&counters);
        let expected = Arc::clone(&expected);
        let partition_count = ends.len();
        // Returns when the last record of this run arrived.
        thread::spawn(move || {
            let mut warm_up_seen = 0;
            let mut last_record = Instant::now();
            let mut last_counted = last_record;
            loop {
                let wanted = expected.load(Ordering::Acquire);
                if counters.records() >= wanted {
                    return last_counted;
                }
                match consumer.poll(POLL_STEP) {
                    Some(Ok(message)) => {
                        last_record = Instant::now();
                        let value = message.payload().unwrap_or_default();
                        if let Some(sent_at) = read_stamp(value, run_id) {
                            let latency = epoch.elapsed().saturating_sub(Duration::from_micros(sent_at));
                            counters.record(value.len(), Some(latency));
                            last_counted = last_record;
                        } else if read_stamp(value, warm_up_id).is_some() {
                            warm_up_seen += 1;
                            if warm_up_seen == partition_count {
                                let _ = warm_up_done.send(());
                            }
                        }
                    }
                    Some(Err(error)) => counters.error(|| error.to_string()),
                    None if wanted != u64::MAX && last_record.elapsed() >= idle_timeout => return last_counted,
                    None => {}
                }
            }
        })
    };

    let produced = warm_up_and_produce(
        client,
        options,
        partitions,
        epoch,
        (run_id, warm_up_id),
        &warm,
        &counters,
        output,
    );
    // The reader stops once it has every acknowledged record (at once if
    // the producer failed).
    let wanted = produced.as_ref().map_or(0, |(_, summary, _)| summary.records);
    expected.store(wanted, Ordering::Release);
    let finished = reader.join().map_err(|_| anyhow!("the consumer thread panicked"))?;
    let (started, produced, progress) = produced?;
    drop(progress);

    let received = counters.records();
    Ok(Summary {
        mode: "e2e",
        topic,
        records: received,
        bytes: counters.bytes.load(Ordering::Relaxed),
        elapsed: finished.saturating_duration_since(started),
        errors: counters.errors.load(Ordering::Relaxed),
        first_error: counters.first_error(),
        latency: Some(("end-to-end", counters.latency())),
        producer: Some(Box::new(produced)),
        shortfall: (received < wanted).then(|| {
            format!(
                "e2e: received {received} of {wanted} acknowledged records; nothing more for {} ms",
                idle_timeout.as_millis()
            )
        }),
    })
}

/// The producer half of e2e: warm up, wait until the consumer has seen the
/// warm-up records, then produce stamped records. Returns when the
/// producer started, its summary, and the progress line (kept going while
/// the consumer catches up).
#[allow(clippy::too_many_arguments)]
fn warm_up_and_produce(
    client: &ClientArgs,
    options: &ProducerOptions,
    partitions: i32,
    epoch: Instant,
    (run_id, warm_up_id): (u64, u64),
    warm: &mpsc::Receiver<()>,
    consumed: &Arc<Counters>,
    output: OutputOptions,
) -> Result<(Instant, Summary, Progress)> {
    let producer = PerfProducer::new(client, options, partitions, epoch, Arc::default())?;
    producer.warm_up(Some(warm_up_id))?;
    warm.recv_timeout(client.request_timeout())
        .map_err(|_| anyhow!("the consumer did not receive the warm-up records"))?;
    let meters = vec![
        ProgressMeter::new("produced", producer.counters()),
        ProgressMeter::new("consumed", Arc::clone(consumed)),
    ];
    let progress = Progress::start("e2e", meters, output);
    let started = Instant::now();
    let summary = producer.run(Some(run_id)).context("e2e producer")?;
    Ok((started, summary, progress))
}
