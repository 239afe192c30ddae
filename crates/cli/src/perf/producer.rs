//! The producing side of `perf produce` and `perf e2e`: a send loop on the
//! calling thread, delivery reports on librdkafka's polling thread.
//!
//! Each record carries its send time (microseconds since the run's epoch)
//! as its delivery opaque, so the delivery report yields the latency with
//! no allocation and no lookup. A target rate is kept by sleeping until the
//! next record is due (in steps of at least [`PACING_STEP`]), never by
//! spinning.

use std::ffi::CStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rdkafka::ClientContext;
use rdkafka::bindings;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::records::{RecordSource, fresh_seed};
use super::stats::{Counters, Summary};
use super::{OutputOptions, ProducerOptions};
use crate::client::ClientArgs;

/// The opaque of records whose delivery is not counted (e2e warm-up).
const UNCOUNTED: usize = usize::MAX;
/// Pacing sleeps only when the next record is due at least this far ahead:
/// shorter sleeps overshoot, and a millisecond's burst is harmless.
const PACING_STEP: Duration = Duration::from_millis(1);
/// How long to back off when librdkafka's local queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(1);
/// librdkafka's message.timeout.ms for perf runs (its default is 5 minutes,
/// too long for a benchmark to sit on an unreachable cluster); -X overrides.
const MESSAGE_TIMEOUT_MS: u64 = 30_000;

/// Counts deliveries and their latencies, into counters that several
/// producers may share, and this producer's own count of records done.
struct DeliveryCounter {
    counters: Arc<Counters>,
    epoch: Instant,
    /// Records acknowledged or failed by this producer.
    done: AtomicU64,
}

impl ClientContext for DeliveryCounter {}

impl ProducerContext for DeliveryCounter {
    /// The send time in microseconds since `epoch`.
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_at_micros: usize) {
        if sent_at_micros == UNCOUNTED {
            return;
        }
        match result {
            Ok(message) => {
                let latency = self
                    .epoch
                    .elapsed()
                    .saturating_sub(Duration::from_micros(sent_at_micros as u64));
                self.counters.record(message.payload_len(), Some(latency));
            }
            Err((error, _)) => self.counters.error(|| error.to_string()),
        }
        self.done.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct PerfProducer {
    producer: ThreadedProducer<DeliveryCounter>,
    counters: Arc<Counters>,
    epoch: Instant,
    options: ProducerOptions,
    partitions: i32,
    request_timeout: Duration,
}

impl PerfProducer {
    /// A producer configured from `options`, counting into `counters`;
    /// send times are measured from `epoch`.
    pub fn new(
        client: &ClientArgs,
        options: &ProducerOptions,
        partitions: i32,
        epoch: Instant,
        counters: Arc<Counters>,
    ) -> Result<PerfProducer> {
        let linger_ms = options.linger_ms.to_string();
        let batch_size = options.batch_size.to_string();
        let idempotence = (options.idempotence || options.transactional_id.is_some()).to_string();
        let message_timeout_ms = MESSAGE_TIMEOUT_MS.to_string();
        let mut extra = vec![
            ("acks", options.acks.as_str()),
            ("linger.ms", &linger_ms),
            ("batch.size", &batch_size),
            ("compression.type", &options.compression),
            ("enable.idempotence", &idempotence),
            ("message.timeout.ms", &message_timeout_ms),
        ];
        if let Some(id) = &options.transactional_id {
            extra.push(("transactional.id", id));
        }
        let context = DeliveryCounter {
            counters: Arc::clone(&counters),
            epoch,
            done: AtomicU64::new(0),
        };
        let producer = client
            .config(&extra)
            .create_with_context(context)
            .context("cannot create the Kafka producer")?;
        Ok(PerfProducer {
            producer,
            counters,
            epoch,
            options: options.clone(),
            partitions,
            request_timeout: client.request_timeout(),
        })
    }

    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.counters)
    }

    /// Sends one uncounted record to every partition and waits for their
    /// acknowledgements: connections and metadata are ready afterwards.
    /// With `stamp_id`, the values carry that id as an e2e stamp.
    pub fn warm_up(&self, stamp_id: Option<u64>) -> Result<()> {
        let mut source = RecordSource::new(self.options.record_size, self.options.key_distribution, 1);
        for partition in 0..self.partitions {
            let (_, value) = source.next(0, stamp_id.map(|id| (id, 0)));
            let record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(&self.options.topic, UNCOUNTED)
                .payload(value)
                .partition(partition);
            self.producer
                .send(record)
                .map_err(|(error, _)| anyhow::anyhow!("warm-up record: {error}"))?;
        }
        self.producer
            .flush(self.request_timeout)
            .context("warm-up records were not acknowledged")
    }

    /// [`PerfProducer::send`], then the summary of its counters.
    pub fn run(&self, stamp_id: Option<u64>) -> Result<Summary> {
        let elapsed = self.send(stamp_id)?;
        Ok(summary(&self.counters, &self.options.topic, elapsed))
    }

    /// Sends until the record count or the duration is reached and waits
    /// for every acknowledgement; returns the time that took. With
    /// `stamp_id`, every value starts with an e2e stamp (that id and the
    /// send time).
    fn send(&self, stamp_id: Option<u64>) -> Result<Duration> {
        let options = &self.options;
        let transaction_duration = Duration::from_millis(options.transaction_duration_ms);
        let transactional = options.transactional_id.is_some();
        if transactional {
            self.producer
                .init_transactions(self.request_timeout)
                .context("cannot initialize transactions")?;
            self.producer
                .begin_transaction()
                .context("cannot begin a transaction")?;
        }

        let mut source = RecordSource::new(options.record_size, options.key_distribution, fresh_seed());
        let limit = options.num_records.unwrap_or(u64::MAX);
        let started = Instant::now();
        let deadline = options
            .duration_secs
            .map(|secs| started + Duration::from_secs_f64(secs));
        let mut transaction_started = started;
        let mut transaction_first_record = 0_u64;
        let mut sent = 0_u64;
        let mut next_partition = 0;
        while sent < limit {
            let mut now = Instant::now();
            if deadline.is_some_and(|deadline| now >= deadline) {
                break;
            }
            if let Some(rate) = options.throughput {
                let due = started + Duration::from_secs_f64(sent as f64 / rate);
                if due >= now + PACING_STEP {
                    thread::sleep(due - now);
                    continue; // re-check the deadline after sleeping
                }
            }
            let transaction_full = options
                .transaction_records
                .is_some_and(|records| sent - transaction_first_record >= records);
            if transactional && (transaction_full || now - transaction_started >= transaction_duration) {
                self.commit_transaction().context("cannot commit a transaction")?;
                self.producer
                    .begin_transaction()
                    .context("cannot begin a transaction")?;
                now = Instant::now();
                transaction_started = now;
                transaction_first_record = sent;
            }

            let sent_at_micros = (now - self.epoch).as_micros() as u64;
            let (key, value) = source.next(sent, stamp_id.map(|id| (id, sent_at_micros)));
            let mut record =
                BaseRecord::<[u8], [u8], usize>::with_opaque_to(&options.topic, sent_at_micros as usize).payload(value);
            match key {
                Some(key) => record = record.key(key),
                None => {
                    record = record.partition(next_partition);
                    next_partition = (next_partition + 1) % self.partitions;
                }
            }
            loop {
                match self.producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                        record = returned;
                        thread::sleep(QUEUE_FULL_BACKOFF);
                    }
                    Err((error, _)) => bail!("cannot send to topic '{}': {error}", options.topic),
                }
            }
            sent += 1;
        }

        if transactional {
            self.commit_transaction()
                .context("cannot commit the last transaction")?;
        }
        self.wait_for_deliveries(sent)?;
        Ok(started.elapsed())
    }

    /// Waits until all `sent` records are acknowledged or failed. Delivery
    /// reports are counted on the polling thread; checking every
    /// millisecond keeps the end of the run exact to about that (librdkafka's
    /// flush through the rdkafka crate polls in 100 ms steps).
    /// Commits the ongoing transaction through librdkafka directly: the
    /// rdkafka crate's commit first flushes by polling in whole 100 ms steps,
    /// which would add up to 100 ms to every transaction, while librdkafka's
    /// own commit flushes too (sending at once, ignoring linger.ms) and the
    /// polling thread serves the delivery reports meanwhile.
    fn commit_transaction(&self) -> Result<()> {
        let timeout_ms = self.request_timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: the client pointer lives as long as `self.producer`; the
        // returned error is owned by us and destroyed after reading it.
        unsafe {
            let error = bindings::rd_kafka_commit_transaction(self.producer.client().native_ptr(), timeout_ms);
            if error.is_null() {
                return Ok(());
            }
            let message = CStr::from_ptr(bindings::rd_kafka_error_string(error))
                .to_string_lossy()
                .into_owned();
            bindings::rd_kafka_error_destroy(error);
            bail!("{message}")
        }
    }

    fn wait_for_deliveries(&self, sent: u64) -> Result<()> {
        let deadline = Instant::now() + Duration::from_millis(MESSAGE_TIMEOUT_MS) + self.request_timeout;
        loop {
            let done = self.producer.context().done.load(Ordering::Relaxed);
            if done >= sent {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} of {sent} records were neither acknowledged nor failed in time",
                    sent - done
                );
            }
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// What a run's shared counters add up to.
fn summary(counters: &Counters, topic: &str, elapsed: Duration) -> Summary {
    Summary {
        mode: "produce",
        topic: topic.to_string(),
        records: counters.records(),
        bytes: counters.bytes.load(Ordering::Relaxed),
        elapsed,
        errors: counters.errors.load(Ordering::Relaxed),
        first_error: counters.first_error(),
        latency: Some(("delivery", counters.latency())),
        producer: None,
        shortfall: None,
    }
}

/// `perf produce`: `producers` producers, each on its own thread with its
/// own connections (and transactional id), sharing the record count, the
/// target rate, the counters and one progress line.
pub fn run(
    client: &ClientArgs,
    options: &ProducerOptions,
    producers: u32,
    partitions: i32,
    output: OutputOptions,
) -> Result<Summary> {
    let counters = Arc::new(Counters::default());
    let epoch = Instant::now();
    let producers = (0..producers)
        .map(|index| {
            let share = options.share(index, producers);
            PerfProducer::new(client, &share, partitions, epoch, Arc::clone(&counters))
        })
        .collect::<Result<Vec<_>>>()?;
    let progress = super::stats::Progress::start(
        "produce",
        vec![super::stats::ProgressMeter::new("acked", Arc::clone(&counters))],
        output,
    );
    let started = Instant::now();
    let results: Vec<Result<Duration>> = thread::scope(|scope| {
        let running: Vec<_> = producers
            .iter()
            .map(|producer| scope.spawn(|| producer.send(None)))
            .collect();
        running
            .into_iter()
            .map(|thread| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a producer thread panicked")))
            })
            .collect()
    });
    let elapsed = started.elapsed();
    drop(progress);
    for result in results {
        result?;
    }
    Ok(summary(&counters, &options.topic, elapsed))
}
