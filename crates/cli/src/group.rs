//! `gregor group list|describe|delete|reset-offsets`: consumer groups, their
//! members and, per partition, the committed offset, the log end offset and
//! the lag between them; deleting a group and moving its committed offsets
//! (what Kafka's `kafka-consumer-groups --list|--describe|--delete|--reset-offsets` do).

use anyhow::{Result, anyhow};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::client::ClientArgs;
use crate::reset_offsets::{self, ResetOffsetsArgs};

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
    /// Delete a group and its committed offsets (the group must have no members).
    Delete(DeleteArgs),
    /// Move a group's committed offsets (the group must have no members);
    /// shows the new offsets, and commits them only with --execute.
    ResetOffsets(ResetOffsetsArgs),
}

/// A group id, given as an argument or with --group as in Kafka's tools.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
pub struct GroupName {
    /// The group id.
    #[arg(value_name = "GROUP")]
    name: Option<String>,

    /// The group id (the same as GROUP).
    #[arg(long = "group", value_name = "GROUP")]
    flag: Option<String>,
}

impl GroupName {
    pub fn get(&self) -> &str {
        self.name.as_deref().or(self.flag.as_deref()).unwrap_or_default()
    }
}

#[derive(clap::Args, Debug)]
struct ListArgs {
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
struct DescribeArgs {
    #[command(flatten)]
    group: GroupName,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
struct DeleteArgs {
    #[command(flatten)]
    group: GroupName,

    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: GroupArgs) -> Result<()> {
    match args.command {
        GroupCommand::List(args) => list(&args.client),
        GroupCommand::Describe(args) => describe(&args.client, args.group.get()),
        GroupCommand::Delete(args) => delete(&args.client, args.group.get()).await,
        GroupCommand::ResetOffsets(args) => reset_offsets::run(&args),
    }
}

/// A consumer that carries the group id but never subscribes: it reads the
/// group's committed offsets (OffsetFetch) and commits outside any
/// generation (generation -1, no member id, as Kafka's admin tools do)
/// without joining the group.
pub fn group_consumer(client: &ClientArgs, group: &str) -> Result<BaseConsumer> {
    client.create(&[("group.id", group), ("enable.auto.commit", "false")])
}

/// A group's state as its coordinator reports it ("Dead" for an unknown
/// group id, as in Kafka) and how many members it has.
pub struct GroupStatus {
    pub state: String,
    pub members: usize,
}

impl GroupStatus {
    /// Kafka moves committed offsets only while a group is inactive: no
    /// member could then commit over them or be consuming from the old ones.
    pub fn is_inactive(&self) -> bool {
        self.members == 0 && matches!(self.state.as_str(), "Empty" | "Dead")
    }
}

pub fn group_status(client: &ClientArgs, consumer: &BaseConsumer, group: &str) -> Result<GroupStatus> {
    let groups = consumer
        .fetch_group_list(Some(group), client.request_timeout())
        .map_err(|error| client.kafka_error(error, None))?;
    let info = groups.groups().iter().find(|info| info.name() == group);
    Ok(GroupStatus {
        state: info.map_or("Dead", |info| info.state()).to_string(),
        members: info.map_or(0, |info| info.members().len()),
    })
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
    let consumer = group_consumer(client, group)?;
    let status = group_status(client, &consumer, group)?;

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
    if rows.is_empty() && status.members == 0 && status.state == "Dead" {
        return Err(anyhow!("group '{group}' does not exist"));
    }
    rows.sort();

    println!("Group: {group}\tState: {}\tMembers: {}", status.state, status.members);
    println!("TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG");
    for (topic, partition, current, log_end) in rows {
        println!(
            "{topic}\t{partition}\t{current}\t{log_end}\t{}",
            (log_end - current).max(0)
        );
    }
    Ok(())
}

/// DeleteGroups: the group's metadata and every offset it committed.
async fn delete(client: &ClientArgs, group: &str) -> Result<()> {
    let results = client
        .admin()?
        .delete_groups(&[group], &client.admin_options())
        .await
        .map_err(|error| client.kafka_error(error, None))?;
    match results.into_iter().next() {
        Some(Ok(_)) => {
            println!("Deleted group {group}.");
            Ok(())
        }
        Some(Err((_, code))) => Err(delete_error(group, code)),
        None => Err(anyhow!("the cluster did not answer for group '{group}'")),
    }
}

fn delete_error(group: &str, code: RDKafkaErrorCode) -> anyhow::Error {
    match code {
        RDKafkaErrorCode::NonEmptyGroup => anyhow!(
            "cannot delete group '{group}': it still has active members (NON_EMPTY_GROUP); \
             stop its consumers first"
        ),
        RDKafkaErrorCode::GroupIdNotFound => anyhow!("group '{group}' does not exist"),
        RDKafkaErrorCode::GroupAuthorizationFailed => anyhow!("not authorized to delete group '{group}'"),
        code => anyhow!("cannot delete group '{group}': {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_with_members_is_active() {
        let status = |state: &str, members| GroupStatus {
            state: state.to_string(),
            members,
        };
        assert!(status("Empty", 0).is_inactive());
        assert!(status("Dead", 0).is_inactive());
        assert!(!status("Stable", 1).is_inactive());
        assert!(!status("PreparingRebalance", 0).is_inactive());
        // A KIP-848 group lists no classic members but is still active.
        assert!(!status("Reconciling", 0).is_inactive());
    }

    #[test]
    fn a_non_empty_group_names_kafkas_error() {
        let message = delete_error("g", RDKafkaErrorCode::NonEmptyGroup).to_string();
        assert!(message.contains("NON_EMPTY_GROUP"), "{message}");
        assert!(message.contains("active members"), "{message}");
        assert_eq!(
            delete_error("g", RDKafkaErrorCode::GroupIdNotFound).to_string(),
            "group 'g' does not exist"
        );
    }
}
