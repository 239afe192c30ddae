//! `gregor consume`: print records of a topic, one per line.
//!
//! Without `--group` the consumer assigns itself partitions (no group
//! membership, no committed offsets); with `--group` it subscribes and
//! commits like any group member, unless `--partition`, `--offset` or
//! `--timestamp` pin the position, which only assignment can do.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, Timestamp, TopicPartitionList};

use crate::client::ClientArgs;

#[derive(clap::Args, Debug)]
pub struct ConsumeArgs {
    /// The topic to read.
    #[arg(long)]
    topic: String,

    /// Join this consumer group and commit its offsets.
    #[arg(long)]
    group: Option<String>,

    /// Read only this partition (default: all of them).
    #[arg(long)]
    partition: Option<i32>,

    /// Start at the earliest record (for a group: when it has no committed offset).
    #[arg(long, conflicts_with_all = ["offset", "timestamp"])]
    from_beginning: bool,

    /// Start at this offset in each partition read.
    #[arg(long, conflicts_with = "timestamp")]
    offset: Option<i64>,

    /// Start at the first record with a timestamp at or after MS (epoch milliseconds).
    #[arg(long, value_name = "MS")]
    timestamp: Option<i64>,

    /// Print each record's key before its value.
    #[arg(long)]
    print_key: bool,

    /// Print each record's headers (key:value,...) before its key.
    #[arg(long)]
    print_headers: bool,

    /// Print each record's timestamp (CreateTime:MS or LogAppendTime:MS) first.
    #[arg(long)]
    print_timestamp: bool,

    /// Print each record's partition.
    #[arg(long)]
    print_partition: bool,

    /// Print each record's offset.
    #[arg(long)]
    print_offset: bool,

    /// Between the printed fields of a record.
    #[arg(long, value_name = "SEPARATOR", default_value = "\t")]
    key_separator: String,

    /// Exit after this many records.
    #[arg(long, value_name = "N")]
    max_messages: Option<u64>,

    /// Exit when no record arrives for this long (default: wait forever).
    #[arg(long, value_name = "MS")]
    timeout_ms: Option<u64>,

    /// read_uncommitted, or read_committed to hide open and aborted transactions.
    #[arg(long, default_value = "read_uncommitted", value_parser = ["read_uncommitted", "read_committed"])]
    isolation_level: String,

    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: ConsumeArgs) -> Result<()> {
    let consumer = create_consumer(&args)?;
    let pinned = args.partition.is_some() || args.offset.is_some() || args.timestamp.is_some();
    if args.group.is_some() && !pinned {
        consumer
            .subscribe(&[&args.topic])
            .map_err(|error| args.client.kafka_error(error, Some(&args.topic)))?;
    } else {
        let assignment = start_positions(&args, &consumer)?;
        consumer
            .assign(&assignment)
            .map_err(|error| args.client.kafka_error(error, Some(&args.topic)))?;
    }

    let received = print_records(&args, &consumer).await;
    if args.group.is_some() {
        match consumer.commit_consumer_state(CommitMode::Sync) {
            // Nothing consumed, nothing to commit.
            Err(error) if error.rdkafka_error_code() == Some(RDKafkaErrorCode::NoOffset) => {}
            other => other.map_err(|error| args.client.kafka_error(error, Some(&args.topic)))?,
        }
    }
    let received = received?;
    eprintln!("Processed a total of {received} messages");
    Ok(())
}

fn create_consumer(args: &ConsumeArgs) -> Result<StreamConsumer> {
    let auto_offset_reset = if args.from_beginning { "earliest" } else { "latest" };
    let mut extra = vec![
        ("auto.offset.reset", auto_offset_reset),
        ("enable.partition.eof", "false"),
        (
            "enable.auto.commit",
            if args.group.is_some() { "true" } else { "false" },
        ),
        // Offsets are stored only for records written out (below): librdkafka's
        // automatic store would also count records it hands over while closing,
        // committing past what was printed.
        ("enable.auto.offset.store", "false"),
        ("isolation.level", args.isolation_level.as_str()),
        ("allow.auto.create.topics", "false"),
    ];
    // librdkafka's assign() needs a group.id too; without --group it only
    // names this process and is never committed to, like Kafka's console consumer.
    let own_group = format!("gregor-consume-{}", std::process::id());
    extra.push(("group.id", args.group.as_deref().unwrap_or(&own_group)));
    args.client.create(&extra)
}

/// The partitions to assign and where each starts.
fn start_positions(args: &ConsumeArgs, consumer: &StreamConsumer) -> Result<TopicPartitionList> {
    let partitions: Vec<i32> = match args.partition {
        Some(partition) => vec![partition],
        None => {
            let metadata = args.client.metadata(consumer.client(), Some(&args.topic))?;
            let topic = metadata.topics().iter().find(|topic| topic.name() == args.topic);
            topic
                .map(|topic| topic.partitions().iter().map(|partition| partition.id()).collect())
                .unwrap_or_default()
        }
    };
    let start = match (args.offset, args.from_beginning, &args.group) {
        (Some(offset), _, _) => Offset::Offset(offset),
        (None, true, _) => Offset::Beginning,
        // A group resumes from its committed offsets, falling back to auto.offset.reset.
        (None, false, Some(_)) => Offset::Stored,
        (None, false, None) => Offset::End,
    };
    let mut assignment = TopicPartitionList::with_capacity(partitions.len());
    for partition in &partitions {
        // offsets_for_times takes the timestamp in the offset field.
        let offset = args.timestamp.map_or(start, Offset::Offset);
        assignment.add_partition_offset(&args.topic, *partition, offset)?;
    }
    if args.timestamp.is_some() {
        // ListOffsets by timestamp; a partition with no such record answers End.
        assignment = consumer
            .offsets_for_times(assignment, args.client.request_timeout())
            .map_err(|error| args.client.kafka_error(error, Some(&args.topic)))?;
    }
    Ok(assignment)
}

/// Prints records until --max-messages, --timeout-ms idle, or Ctrl-C; returns how many.
async fn print_records(args: &ConsumeArgs, consumer: &StreamConsumer) -> Result<u64> {
    let idle_timeout = args.timeout_ms.map(Duration::from_millis);
    let mut received = 0_u64;
    let mut stdout = std::io::stdout();
    // Registered once, before the loop, so a Ctrl-C while printing is not lost.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot listen for Ctrl-C")?;
    while args.max_messages.is_none_or(|max| received < max) {
        let next = async {
            match idle_timeout {
                Some(timeout) => tokio::time::timeout(timeout, consumer.recv()).await.ok(),
                None => Some(consumer.recv().await),
            }
        };
        let message = tokio::select! {
            message = next => message,
            _ = interrupt.recv() => None,
        };
        let Some(message) = message else { break };
        let message = message.map_err(|error| args.client.kafka_error(error, Some(&args.topic)))?;
        stdout
            .write_all(&format_record(args, &message))
            .context("cannot write to standard output")?;
        if args.group.is_some() {
            consumer
                .store_offset_from_message(&message)
                .map_err(|error| args.client.kafka_error(error, Some(&args.topic)))?;
        }
        received += 1;
    }
    stdout.flush().context("cannot write to standard output")?;
    Ok(received)
}

/// One output line: the fields asked for, in the order of Kafka's console
/// consumer (timestamp, partition, offset, headers, key, value), null as "null".
fn format_record(args: &ConsumeArgs, message: &BorrowedMessage<'_>) -> Vec<u8> {
    let separator = args.key_separator.as_bytes();
    let mut line = Vec::with_capacity(message.payload_len() + 64);
    let field = |line: &mut Vec<u8>, bytes: &[u8]| {
        line.extend_from_slice(bytes);
        line.extend_from_slice(separator);
    };
    if args.print_timestamp {
        let timestamp = match message.timestamp() {
            Timestamp::CreateTime(ms) => format!("CreateTime:{ms}"),
            Timestamp::LogAppendTime(ms) => format!("LogAppendTime:{ms}"),
            Timestamp::NotAvailable => "NO_TIMESTAMP".to_string(),
        };
        field(&mut line, timestamp.as_bytes());
    }
    if args.print_partition {
        field(&mut line, format!("Partition:{}", message.partition()).as_bytes());
    }
    if args.print_offset {
        field(&mut line, format!("Offset:{}", message.offset()).as_bytes());
    }
    if args.print_headers {
        field(&mut line, &format_headers(message.headers()));
    }
    if args.print_key {
        field(&mut line, message.key().unwrap_or(b"null"));
    }
    line.extend_from_slice(message.payload().unwrap_or(b"null"));
    line.push(b'\n');
    line
}

fn format_headers(headers: Option<&impl Headers>) -> Vec<u8> {
    let Some(headers) = headers.filter(|headers| headers.count() > 0) else {
        return b"NO_HEADERS".to_vec();
    };
    let mut text = Vec::new();
    for (index, header) in headers.iter().enumerate() {
        if index > 0 {
            text.push(b',');
        }
        text.extend_from_slice(header.key.as_bytes());
        text.push(b':');
        text.extend_from_slice(header.value.unwrap_or(b"null"));
    }
    text
}
