//! `gregor group reset-offsets`: moves a group's committed offsets, like
//! Kafka's `kafka-consumer-groups --reset-offsets`. A dry run (the default)
//! only shows the new offsets; `--execute` commits them. Kafka resets offsets
//! only while the group is inactive, so that no member commits over them or
//! keeps consuming from the old position; this command refuses likewise.

use anyhow::{Result, anyhow, bail};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{Offset, TopicPartitionList};

use crate::client::{ClientArgs, topic_error};
use crate::group::{GroupName, group_consumer, group_status};

#[derive(clap::Args, Debug)]
pub struct ResetOffsetsArgs {
    #[command(flatten)]
    group: GroupName,

    /// The topic whose committed offsets move.
    #[arg(long)]
    topic: String,

    /// Only this partition (default: every partition of the topic).
    #[arg(long)]
    partition: Option<i32>,

    #[command(flatten)]
    target: Target,

    /// Only show the new offsets (the default).
    #[arg(long, conflicts_with = "execute")]
    dry_run: bool,

    /// Commit the new offsets.
    #[arg(long)]
    execute: bool,

    #[command(flatten)]
    client: ClientArgs,
}

/// Where the offsets go: exactly one of these.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
struct Target {
    /// To the log start offset.
    #[arg(long)]
    to_earliest: bool,

    /// To the log end offset.
    #[arg(long)]
    to_latest: bool,

    /// To this offset (kept within the log start and end offsets).
    #[arg(long, value_name = "OFFSET", value_parser = clap::value_parser!(i64).range(0..))]
    to_offset: Option<i64>,

    /// To the first record at or after this time (epoch milliseconds or
    /// RFC 3339, e.g. 2024-05-01T12:00:00Z); the log end offset if none is.
    #[arg(long, value_name = "TIME", value_parser = crate::datetime::parse_epoch_ms)]
    to_datetime: Option<i64>,

    /// By N from the committed offset (negative moves back), kept within the log.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    shift_by: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum ResetTo {
    Earliest,
    Latest,
    Offset(i64),
    Datetime(i64),
    ShiftBy(i64),
}

impl Target {
    fn reset_to(&self) -> ResetTo {
        match (
            self.to_earliest,
            self.to_latest,
            self.to_offset,
            self.to_datetime,
            self.shift_by,
        ) {
            (true, ..) => ResetTo::Earliest,
            (_, true, ..) => ResetTo::Latest,
            (_, _, Some(offset), ..) => ResetTo::Offset(offset),
            (_, _, _, Some(time_ms), _) => ResetTo::Datetime(time_ms),
            (.., Some(shift)) => ResetTo::ShiftBy(shift),
            // clap requires exactly one of them.
            _ => unreachable!("no reset target"),
        }
    }
}

/// What is known about one partition when choosing its new offset.
#[derive(Debug, Clone, Copy)]
struct PartitionOffsets {
    /// The group's committed offset, if it has one.
    current: Option<i64>,
    log_start: i64,
    log_end: i64,
    /// For --to-datetime: the first offset at or after the time, if any.
    at_time: Option<i64>,
}

/// The new offset of one partition, kept within [log start, log end] as
/// Kafka's tool does.
fn new_offset(reset_to: ResetTo, offsets: PartitionOffsets) -> Result<i64, &'static str> {
    let within_log = |offset: i64| offset.clamp(offsets.log_start, offsets.log_end.max(offsets.log_start));
    Ok(match reset_to {
        ResetTo::Earliest => offsets.log_start,
        ResetTo::Latest => offsets.log_end,
        ResetTo::Offset(offset) => within_log(offset),
        ResetTo::Datetime(_) => offsets.at_time.map_or(offsets.log_end, within_log),
        ResetTo::ShiftBy(shift) => match offsets.current {
            Some(current) => within_log(current.saturating_add(shift)),
            None => return Err("has no committed offset to shift"),
        },
    })
}

pub fn run(args: &ResetOffsetsArgs) -> Result<()> {
    let client = &args.client;
    let group = args.group.get();
    let topic = args.topic.as_str();
    let consumer = group_consumer(client, group)?;

    let status = group_status(client, &consumer, group)?;
    if !status.is_inactive() {
        bail!(
            "cannot reset the offsets of group '{group}': it is active (state {}, members: {}); \
             Kafka resets offsets only while a group has no members, so stop its consumers first",
            status.state,
            status.members
        );
    }

    let reset_to = args.target.reset_to();
    let partitions = partitions(client, &consumer, topic, args.partition)?;
    let mut wanted = TopicPartitionList::new();
    for partition in &partitions {
        wanted.add_partition(topic, *partition);
    }
    let committed = consumer
        .committed_offsets(wanted, client.request_timeout())
        .map_err(|error| client.kafka_error(error, Some(topic)))?;
    let at_times = match reset_to {
        ResetTo::Datetime(time_ms) => Some(offsets_at(client, &consumer, topic, &partitions, time_ms)?),
        _ => None,
    };

    let mut rows = Vec::with_capacity(partitions.len());
    for partition in partitions {
        let (log_start, log_end) = consumer
            .fetch_watermarks(topic, partition, client.request_timeout())
            .map_err(|error| client.kafka_error(error, Some(topic)))?;
        let offsets = PartitionOffsets {
            current: offset_of(&committed, topic, partition),
            log_start,
            log_end,
            at_time: at_times.as_ref().and_then(|found| offset_of(found, topic, partition)),
        };
        let new = new_offset(reset_to, offsets).map_err(|why| anyhow!("partition {topic}-{partition} {why}"))?;
        rows.push((partition, offsets.current, new));
    }

    println!("TOPIC\tPARTITION\tCURRENT-OFFSET\tNEW-OFFSET");
    for (partition, current, new) in &rows {
        let current = current.map_or("-".to_string(), |offset| offset.to_string());
        println!("{topic}\t{partition}\t{current}\t{new}");
    }

    if !args.execute {
        eprintln!("Dry run: nothing was committed; add --execute to commit these offsets.");
        return Ok(());
    }
    let mut new_offsets = TopicPartitionList::with_capacity(rows.len());
    for (partition, _, new) in &rows {
        new_offsets.add_partition_offset(topic, *partition, Offset::Offset(*new))?;
    }
    consumer
        .commit(&new_offsets, CommitMode::Sync)
        .map_err(|error| commit_error(client, group, error))
}

/// The partitions to reset: the one asked for (if the topic has it) or all.
fn partitions(client: &ClientArgs, consumer: &BaseConsumer, topic: &str, only: Option<i32>) -> Result<Vec<i32>> {
    let metadata = client.metadata(consumer.client(), Some(topic))?;
    let mut all: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|found| found.name() == topic)
        .flat_map(|found| found.partitions().iter().map(|partition| partition.id()))
        .collect();
    all.sort_unstable();
    match only {
        None => Ok(all),
        Some(partition) if all.contains(&partition) => Ok(vec![partition]),
        Some(_) => Err(topic_error(topic, RDKafkaErrorCode::UnknownPartition)),
    }
}

/// ListOffsets by timestamp: each partition's first offset at or after `time_ms`.
fn offsets_at(
    client: &ClientArgs,
    consumer: &BaseConsumer,
    topic: &str,
    partitions: &[i32],
    time_ms: i64,
) -> Result<TopicPartitionList> {
    let mut times = TopicPartitionList::with_capacity(partitions.len());
    for partition in partitions {
        // offsets_for_times takes the timestamp in the offset field.
        times.add_partition_offset(topic, *partition, Offset::Offset(time_ms))?;
    }
    consumer
        .offsets_for_times(times, client.request_timeout())
        .map_err(|error| client.kafka_error(error, Some(topic)))
}

/// A concrete offset in `list` for the partition; None for "no offset"
/// (nothing committed, or no record at or after the time).
fn offset_of(list: &TopicPartitionList, topic: &str, partition: i32) -> Option<i64> {
    match list.find_partition(topic, partition)?.offset() {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }
}

fn commit_error(client: &ClientArgs, group: &str, error: KafkaError) -> anyhow::Error {
    match error.rdkafka_error_code() {
        // An offset commit outside any generation is refused once the group has members.
        Some(RDKafkaErrorCode::UnknownMemberId | RDKafkaErrorCode::IllegalGeneration) => anyhow!(
            "cannot commit the offsets of group '{group}': a member joined it meanwhile; stop its consumers first"
        ),
        _ => client
            .kafka_error(error, None)
            .context(format!("cannot commit the offsets of group '{group}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offsets(current: Option<i64>, at_time: Option<i64>) -> PartitionOffsets {
        PartitionOffsets {
            current,
            log_start: 10,
            log_end: 50,
            at_time,
        }
    }

    #[test]
    fn each_target_picks_its_offset() {
        let known = offsets(Some(30), Some(42));
        assert_eq!(new_offset(ResetTo::Earliest, known), Ok(10));
        assert_eq!(new_offset(ResetTo::Latest, known), Ok(50));
        assert_eq!(new_offset(ResetTo::Offset(20), known), Ok(20));
        assert_eq!(new_offset(ResetTo::Datetime(0), known), Ok(42));
        assert_eq!(new_offset(ResetTo::ShiftBy(-5), known), Ok(25));
        assert_eq!(new_offset(ResetTo::ShiftBy(5), known), Ok(35));
    }

    #[test]
    fn offsets_stay_within_the_log() {
        let known = offsets(Some(30), None);
        assert_eq!(new_offset(ResetTo::Offset(0), known), Ok(10));
        assert_eq!(new_offset(ResetTo::Offset(99), known), Ok(50));
        assert_eq!(new_offset(ResetTo::ShiftBy(-100), known), Ok(10));
        assert_eq!(new_offset(ResetTo::ShiftBy(i64::MAX), known), Ok(50));
        // No record at or after the time: the log end, as in Kafka.
        assert_eq!(new_offset(ResetTo::Datetime(0), known), Ok(50));
    }

    #[test]
    fn shifting_needs_a_committed_offset() {
        assert!(new_offset(ResetTo::ShiftBy(1), offsets(None, None)).is_err());
        assert_eq!(new_offset(ResetTo::Earliest, offsets(None, None)), Ok(10));
    }
}
