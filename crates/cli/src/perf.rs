//! `gregor perf produce|consume|e2e|commit`: load generators in the manner of
//! Kafka's `kafka-producer-perf-test` / `kafka-consumer-perf-test` and
//! librdkafka's `rdkafka_performance`. They run on librdkafka like every
//! client command, so they measure any Kafka cluster, not only Gregor.
//!
//! Each prints a progress line on stderr every second and, at the end,
//! records/s, MB/s (10^6 bytes of record values per second) and, for
//! produce and e2e, latency percentiles from an HdrHistogram: the time from
//! `send` to the delivery report (produce), or from `send` to the record
//! coming out of a consumer (e2e). `--json` prints the summary as one JSON
//! object on stdout instead.
//!
//! `commit` is the exception: it times OffsetCommit over the wire directly,
//! so no client library's queues are in its figure.
//!
//! The hot loops run on their own threads, off the async runtime: sending
//! never awaits, delivery reports arrive on librdkafka's polling thread.

mod commit;
mod consumer;
mod producer;
mod records;
mod stats;

use std::time::Duration;

use anyhow::{Context, Result, bail};
use rdkafka::admin::{NewTopic, TopicReplication};
use rdkafka::error::RDKafkaErrorCode;

use crate::client::ClientArgs;
pub use records::KeyDistribution;

#[derive(clap::Args, Debug)]
pub struct PerfArgs {
    #[command(subcommand)]
    command: PerfCommand,
}

#[derive(clap::Subcommand, Debug)]
enum PerfCommand {
    /// Produce generated records as fast as allowed; report delivery latency.
    Produce(ProduceArgs),
    /// Read a topic's records from the beginning; report records/s and MB/s.
    Consume(ConsumeArgs),
    /// Produce timestamped records and read them back at once; report the
    /// end-to-end latency from send to receipt.
    E2e(E2eArgs),
    /// Commit the offsets of many partitions at once for one group, again
    /// and again; report the latency of each OffsetCommit (one per record
    /// in the summary).
    Commit(CommitArgs),
}

#[derive(clap::Args, Debug)]
struct CommitArgs {
    /// The topic whose partitions' offsets are committed; created with
    /// --partitions if it does not exist.
    #[arg(long)]
    topic: String,
    /// Partitions in each commit.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(i32).range(1..))]
    partitions: i32,
    /// The group that commits.
    #[arg(long, default_value = "gregor-perf-commit")]
    group: String,
    /// Commits to time (after 10 untimed warm-up commits).
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..))]
    num_commits: u32,
    #[command(flatten)]
    output: OutputOptions,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
struct ProduceArgs {
    #[command(flatten)]
    producer: ProducerOptions,
    /// Producers running side by side, each with its own connections;
    /// --num-records and --throughput are split between them, and each
    /// gets the transactional id ID-0, ID-1, ... when there are several.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    producers: u32,
    #[command(flatten)]
    output: OutputOptions,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
struct E2eArgs {
    #[command(flatten)]
    producer: ProducerOptions,
    /// Give up when the consumer has received nothing new for this long
    /// after the last record was acknowledged.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    timeout_ms: u64,
    #[command(flatten)]
    output: OutputOptions,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
struct ConsumeArgs {
    /// The topic to read.
    #[arg(long)]
    topic: String,
    /// Stop after this many records (default: at the end offsets the
    /// partitions had when the run started).
    #[arg(long, value_name = "N")]
    num_records: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    duration_secs: Option<f64>,
    /// Give up when no record has arrived for this long.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    timeout_ms: u64,
    #[command(flatten)]
    output: OutputOptions,
    #[command(flatten)]
    client: ClientArgs,
}

/// What to produce and how: shared by `produce` and `e2e`.
#[derive(clap::Args, Debug, Clone)]
pub struct ProducerOptions {
    /// The topic to write to; created with --partitions if it does not exist.
    #[arg(long)]
    pub topic: String,
    /// Records to send (at least one of --num-records and --duration-secs;
    /// with both, whichever ends first).
    #[arg(long, value_name = "N", required_unless_present = "duration_secs")]
    pub num_records: Option<u64>,
    /// Seconds to send for.
    #[arg(long, value_name = "SECS")]
    pub duration_secs: Option<f64>,
    /// Bytes of each record's value.
    #[arg(long, value_name = "BYTES", default_value_t = 100)]
    pub record_size: usize,
    /// Keys: none (records spread round-robin over the partitions),
    /// sequential (every key distinct) or random:N (uniform over N keys;
    /// partitions chosen by the client's key hash).
    #[arg(long, value_name = "DIST", default_value = "none", value_parser = KeyDistribution::parse)]
    pub key_distribution: KeyDistribution,
    /// Partitions of the topic when this command creates it.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub partitions: i32,
    /// Replicas of each partition when this command creates the topic
    /// (default: the broker's default.replication.factor).
    #[arg(long, value_name = "N", default_value_t = -1)]
    pub replication_factor: i32,
    /// Acknowledgements to wait for: 0, 1 or all (-1).
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    pub acks: String,
    /// How long the client waits to fill a batch (librdkafka linger.ms).
    #[arg(long, value_name = "MS", default_value_t = 5.0)]
    pub linger_ms: f64,
    /// Largest record batch per partition in bytes (librdkafka batch.size).
    #[arg(long, value_name = "BYTES", default_value_t = 1_000_000)]
    pub batch_size: u64,
    /// Compress record batches with this codec.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub compression: String,
    /// An idempotent producer (enable.idempotence=true).
    #[arg(long)]
    pub idempotence: bool,
    /// Send inside transactions with this transactional.id (implies idempotence).
    #[arg(long, value_name = "ID")]
    pub transactional_id: Option<String>,
    /// Commit a transaction every this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3_000, requires = "transactional_id")]
    pub transaction_duration_ms: u64,
    /// Commit a transaction after this many records instead (whichever of
    /// this and --transaction-duration-ms comes first).
    #[arg(long, value_name = "N", requires = "transactional_id")]
    pub transaction_records: Option<u64>,
    /// Target rate in records/s, paced by sleeping (default: as fast as possible).
    #[arg(long, value_name = "RECORDS_PER_SEC")]
    pub throughput: Option<f64>,
}

#[derive(clap::Args, Debug, Clone, Copy)]
pub struct OutputOptions {
    /// Print the summary as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

pub async fn run(args: PerfArgs) -> Result<()> {
    match args.command {
        PerfCommand::Produce(args) => {
            args.producer.validate(false)?;
            let partitions = args.producer.ensure_topic(&args.client).await?;
            let summary =
                blocking(move || producer::run(&args.client, &args.producer, args.producers, partitions, args.output))
                    .await?;
            summary.print(args.output)?;
            summary.check()
        }
        PerfCommand::E2e(args) => {
            args.producer.validate(true)?;
            let partitions = args.producer.ensure_topic(&args.client).await?;
            let timeout = Duration::from_millis(args.timeout_ms);
            let summary =
                blocking(move || consumer::run_e2e(&args.client, &args.producer, partitions, args.output, timeout))
                    .await?;
            summary.print(args.output)?;
            summary.check()
        }
        PerfCommand::Commit(args) => {
            let partitions = ensure_topic(&args.client, &args.topic, args.partitions, -1).await?;
            let summary = commit::run(&args.client, &args.topic, partitions, &args.group, args.num_commits).await?;
            summary.print(args.output)?;
            summary.check()
        }
        PerfCommand::Consume(args) => {
            check_positive("--duration-secs", args.duration_secs)?;
            let summary = blocking(move || {
                let limits = consumer::Limits {
                    num_records: args.num_records,
                    duration: args.duration_secs.map(Duration::from_secs_f64),
                    idle_timeout: Duration::from_millis(args.timeout_ms),
                };
                consumer::run(&args.client, &args.topic, limits, args.output)
            })
            .await?;
            summary.print(args.output)?;
            summary.check()
        }
    }
}

impl ProducerOptions {
    /// The share of producer `index` of `count`: its part of the record
    /// count and the rate, and its own transactional id.
    fn share(&self, index: u32, count: u32) -> ProducerOptions {
        let mut share = self.clone();
        if count > 1 {
            let (index, count) = (u64::from(index), u64::from(count));
            share.num_records = self.num_records.map(|n| n / count + u64::from(index < n % count));
            share.throughput = self.throughput.map(|rate| rate / count as f64);
            share.transactional_id = self.transactional_id.as_ref().map(|id| format!("{id}-{index}"));
        }
        share
    }

    async fn ensure_topic(&self, client: &ClientArgs) -> Result<i32> {
        ensure_topic(client, &self.topic, self.partitions, self.replication_factor).await
    }

    fn validate(&self, e2e: bool) -> Result<()> {
        check_positive("--duration-secs", self.duration_secs)?;
        check_positive("--throughput", self.throughput)?;
        if self.partitions < 1 {
            bail!("--partitions must be at least 1");
        }
        if self.transaction_records == Some(0) {
            bail!("--transaction-records must be at least 1");
        }
        if e2e && self.record_size < records::STAMP_BYTES {
            bail!(
                "e2e records carry a {}-byte timestamp: --record-size must be at least that",
                records::STAMP_BYTES
            );
        }
        Ok(())
    }
}

/// A given number must be finite and above zero.
fn check_positive(option: &str, value: Option<f64>) -> Result<()> {
    match value {
        Some(value) if !value.is_finite() || value <= 0.0 => bail!("{option} must be a positive number"),
        _ => Ok(()),
    }
}

/// Runs a hot loop on a thread of its own, where blocking is allowed.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .context("the benchmark thread panicked")?
}

/// The topic's partition count, creating the topic first if it does not
/// exist (a perf run should not depend on auto-creation being enabled).
/// The partition count of `topic`, created with `partitions` partitions
/// and `replication_factor` replicas (-1: the broker's default) if it does not exist.
async fn ensure_topic(client: &ClientArgs, topic: &str, partitions: i32, replication_factor: i32) -> Result<i32> {
    let admin = client.admin()?;
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), client.request_timeout())
        .map_err(|error| client.kafka_error(error, Some(topic)))?;
    if let Some(found) = metadata.topics().iter().find(|found| found.name() == topic) {
        match found.error().map(RDKafkaErrorCode::from) {
            None => {
                let found = found.partitions().len() as i32;
                if found != partitions {
                    eprintln!("topic '{topic}' exists with {found} partitions; using those");
                }
                return Ok(found);
            }
            Some(RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic) => {}
            Some(code) => return Err(crate::client::topic_error(topic, code)),
        }
    }
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication_factor));
    let results = admin
        .create_topics([&new_topic], &client.admin_options())
        .await
        .map_err(|error| client.kafka_error(error, Some(topic)))?;
    for result in results {
        match result {
            Ok(_) => {}
            // Created meanwhile by someone else: fine, it exists.
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(crate::client::topic_error(topic, code)),
        }
    }
    Ok(partitions)
}
