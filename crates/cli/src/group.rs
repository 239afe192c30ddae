//! `gregor group list|describe|delete|reset-offsets`: consumer groups, their
//! members and, per partition, the committed offset, the log end offset and
//! the lag between them; deleting a group and moving its committed offsets
//! (what Kafka's `kafka-consumer-groups --list|--describe|--delete|--reset-offsets` do).

use std::collections::BTreeMap;

use anyhow::{Result, anyhow};
use bytes::Bytes;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerProtocolAssignment, GroupId};
use kafka_protocol::protocol::{Decodable, StrBytes};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use crate::client::ClientArgs;
use crate::reset_offsets::{self, ResetOffsetsArgs};
use crate::txn_wire::{CoordinatorKey, coordinator};

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
        GroupCommand::Describe(args) => describe(&args.client, args.group.get()).await,
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

/// Who consumes a partition: the columns Kafka's tool prints after the lag.
#[derive(Clone)]
struct Owner {
    member_id: String,
    host: String,
    client_id: String,
}

/// Each assigned partition's owner, from the members of a classic group
/// (their assignments in the consumer protocol's format).
fn classic_owners(client: &ClientArgs, consumer: &BaseConsumer, group: &str) -> Result<BTreeMap<(String, i32), Owner>> {
    let groups = consumer
        .fetch_group_list(Some(group), client.request_timeout())
        .map_err(|error| client.kafka_error(error, None))?;
    let mut owners = BTreeMap::new();
    for member in groups
        .groups()
        .iter()
        .filter(|info| info.name() == group)
        .flat_map(|info| info.members())
    {
        let Some(mut bytes) = member.assignment().filter(|b| b.len() >= 2).map(Bytes::copy_from_slice) else {
            continue;
        };
        let version = i16::from_be_bytes([bytes[0], bytes[1]]);
        let _ = bytes.split_to(2);
        // A member whose assignment does not decode is listed without partitions.
        let Ok(assignment) = ConsumerProtocolAssignment::decode(&mut bytes, version.clamp(0, 3)) else {
            continue;
        };
        let owner = Owner {
            member_id: member.id().to_string(),
            host: member.client_host().to_string(),
            client_id: member.client_id().to_string(),
        };
        for topic in assignment.assigned_partitions {
            for partition in topic.partitions {
                owners.insert((topic.topic.to_string(), partition), owner.clone());
            }
        }
    }
    Ok(owners)
}

/// The members of a KIP-848 group and each assigned partition's owner,
/// from ConsumerGroupDescribe; none for a group of another kind.
async fn consumer_group_owners(client: &ClientArgs, group: &str) -> Result<(usize, BTreeMap<(String, i32), Owner>)> {
    let (_, mut connection) = coordinator(
        &client.bootstrap_server,
        client.request_timeout(),
        CoordinatorKey::Group,
        group,
    )
    .await?;
    let request =
        ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let response = connection.send(&request, 0).await?;
    let mut owners = BTreeMap::new();
    let mut members = 0;
    for described in response.groups.into_iter().filter(|g| g.error_code == 0) {
        members += described.members.len();
        for member in described.members {
            let owner = Owner {
                member_id: member.member_id.to_string(),
                host: member.client_host.to_string(),
                client_id: member.client_id.to_string(),
            };
            for topic in member.assignment.topic_partitions {
                for partition in topic.partitions {
                    owners.insert((topic.topic_name.to_string(), partition), owner.clone());
                }
            }
        }
    }
    Ok((members, owners))
}

async fn describe(client: &ClientArgs, group: &str) -> Result<()> {
    let consumer = group_consumer(client, group)?;
    let mut status = group_status(client, &consumer, group)?;
    let mut owners = classic_owners(client, &consumer, group)?;
    if status.members == 0 {
        // A KIP-848 group has no classic members; ask for its own kind.
        let (members, consumer_owners) = consumer_group_owners(client, group).await?;
        status.members = members;
        owners.extend(consumer_owners);
    }

    // Every partition of every topic, asked for its committed offset; the
    // group's are those that have one, and those its members are assigned
    // (shown with "-" for the offset and lag, as Kafka's tool does).
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
    let mut current_offsets: BTreeMap<(String, i32), Option<i64>> =
        owners.keys().map(|assigned| (assigned.clone(), None)).collect();
    for element in committed.elements() {
        if let Offset::Offset(current) = element.offset() {
            current_offsets.insert((element.topic().to_string(), element.partition()), Some(current));
        }
    }
    // Kafka describes an unknown group id as an empty group in state Dead.
    if current_offsets.is_empty() && status.members == 0 && status.state == "Dead" {
        return Err(anyhow!("group '{group}' does not exist"));
    }
    let mut rows = Vec::new();
    for ((topic, partition), current) in current_offsets {
        let (_, log_end) = consumer
            .fetch_watermarks(&topic, partition, client.request_timeout())
            .map_err(|error| client.kafka_error(error, Some(&topic)))?;
        rows.push((topic, partition, current, log_end));
    }

    println!("Group: {group}\tState: {}\tMembers: {}", status.state, status.members);
    println!("TOPIC\tPARTITION\tCURRENT-OFFSET\tLOG-END-OFFSET\tLAG\tCONSUMER-ID\tHOST\tCLIENT-ID");
    let none = Owner {
        member_id: "-".into(),
        host: "-".into(),
        client_id: "-".into(),
    };
    for (topic, partition, current, log_end) in rows {
        let owner = owners.get(&(topic.clone(), partition)).unwrap_or(&none);
        let (current, lag) = match current {
            Some(current) => (current.to_string(), (log_end - current).max(0).to_string()),
            None => ("-".to_string(), "-".to_string()),
        };
        println!(
            "{topic}\t{partition}\t{current}\t{log_end}\t{lag}\t{}\t{}\t{}",
            owner.member_id, owner.host, owner.client_id
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
