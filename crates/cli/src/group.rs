//! `gregor group list|describe`: consumer groups, their members and, per
//! partition, the committed offset, the log end offset and the lag between
//! them (what Kafka's `kafka-consumer-groups --describe` shows).

use anyhow::{Result, anyhow};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::client::ClientArgs;

#[derive(clap::Args, Debug)]
pub struct GroupArgs {
    #[command(subcommand)]
    command: GroupCommand,
}

#[derive(clap::Subcommand, Debug)]
enum GroupCommand {
    /// List consumer group ids, one per line.
    List(ListArgs),
    /// Show a group's state, members and per-partition lag.
    Describe(DescribeArgs),
}

#[derive(clap::Args, Debug)]
struct ListArgs {
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
struct DescribeArgs {
    /// The group id.
    #[arg(value_name = "GROUP")]
    name: Option<String>,

    /// The group id (the same as GROUP).
    #[arg(
        long = "group",
        value_name = "GROUP",
        conflicts_with = "name",
        required_unless_present = "name"
    )]
    flag: Option<String>,

    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: GroupArgs) -> Result<()> {
    match args.command {
        GroupCommand::List(args) => list(&args.client),
        GroupCommand::Describe(args) => {
            let group = args.name.as_deref().or(args.flag.as_deref()).unwrap_or_default();
            describe(&args.client, group)
        }
    }
}

fn list(client: &ClientArgs) -> Result<()> {
    let consumer: BaseConsumer = client.create(&[])?;
    let groups = consumer
        .fetch_group_list(None, client.request_timeout())
        .map_err(|error| client.kafka_error(error, None))?;
    let mut names: Vec<&str> = groups.groups().iter().map(|group| group.name()).collect();
    names.sort_unstable();
    for name in names {
        println!("{name}");
    }
    Ok(())
}

fn describe(client: &ClientArgs, group: &str) -> Result<()> {
    // A consumer that carries the group id but never subscribes: it reads the
    // group's committed offsets (OffsetFetch) without joining it.
    let consumer: BaseConsumer = client.create(&[("group.id", group), ("enable.auto.commit", "false")])?;
    let groups = consumer
        .fetch_group_list(Some(group), client.request_timeout())
        .map_err(|error| client.kafka_error(error, None))?;
    let info = groups.groups().iter().find(|info| info.name() == group);
    let state = info.map_or("Dead", |info| info.state());
    let members = info.map_or(0, |info| info.members().len());

    // Every partition of every topic, asked for its committed offset; the group's are those that have one.
    let metadata = client.metadata(consumer.client(), None)?;
    let mut partitions = TopicPartitionList::new();
    for topic in metadata.topics().iter().filter(|topic| !topic.name().starts_with("__")) {
        for partition in topic.partitions() {
            partitions.add_partition(topic.name(), partition.id());
        }
    }
    let committed = consumer
        .committed_offsets(partitions, client.request_timeout())
        .map_err(|error| client.kafka_error(error, None))?;
    let mut rows = Vec::new();
    for element in committed.elements() {
        let Offset::Offset(current) = element.offset() else {
            continue;
        };
        let (_, log_end) = consumer
            .fetch_watermarks(element.topic(), element.partition(), client.request_timeout())
            .map_err(|error| client.kafka_error(error, Some(element.topic())))?;
        rows.push((element.topic().to_string(), element.partition(), current, log_end));
    }
    // Kafka describes an unknown group id as an empty group in state Dead.
    if rows.is_empty() && members == 0 && state == "Dead" {
        return Err(anyhow!("group '{group}' does not exist"));
    }
    rows.sort();

    println!("Group: {group}\tState: {state}\tMembers: {members}");
    println!("TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG");
    for (topic, partition, current, log_end) in rows {
        println!(
            "{topic}\t{partition}\t{current}\t{log_end}\t{}",
            (log_end - current).max(0)
        );
    }
    Ok(())
}
