//! `gregor topic create|list|describe|alter|delete`, through Kafka's
//! CreateTopics, Metadata, DescribeConfigs, CreatePartitions and DeleteTopics.

use anyhow::{Result, anyhow};
use rdkafka::admin::{NewPartitions, NewTopic, ResourceSpecifier, TopicReplication, TopicResult};
use rdkafka::error::{KafkaResult, RDKafkaErrorCode};
use rdkafka::metadata::MetadataTopic;

use crate::client::{ClientArgs, topic_error};
use crate::config_cmd::{describe_configs, format_entry, is_override};

#[derive(clap::Args, Debug)]
pub struct TopicArgs {
    #[command(subcommand)]
    command: TopicCommand,
}

#[derive(clap::Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topic names, one per line.
    List(ListArgs),
    /// Show a topic's partitions (leader, replicas, ISR) and config overrides.
    Describe(DescribeArgs),
    /// Add partitions to a topic.
    Alter(AlterArgs),
    /// Delete a topic.
    Delete(DeleteArgs),
}

/// A topic, given as an argument or with --topic as in Kafka's tools.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
struct TopicName {
    /// The topic.
    #[arg(value_name = "TOPIC")]
    name: Option<String>,

    /// The topic (the same as TOPIC).
    #[arg(long = "topic", value_name = "TOPIC")]
    flag: Option<String>,
}

impl TopicName {
    fn get(&self) -> &str {
        self.name.as_deref().or(self.flag.as_deref()).unwrap_or_default()
    }
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    #[command(flatten)]
    topic: TopicName,

    /// Number of partitions (default: the broker's num.partitions).
    #[arg(long)]
    partitions: Option<i32>,

    /// Copies of each partition (default: the broker's default.replication.factor).
    #[arg(long)]
    replication_factor: Option<i32>,

    /// A topic config, repeatable: --config cleanup.policy=compact
    #[arg(long = "config", value_name = "KEY=VALUE", value_parser = crate::parse_key_value)]
    configs: Vec<(String, String)>,

    /// Succeed if the topic already exists.
    #[arg(long)]
    if_not_exists: bool,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
struct ListArgs {
    /// Leave out internal topics such as __consumer_offsets.
    #[arg(long)]
    exclude_internal: bool,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
struct DescribeArgs {
    /// The topic to describe (default: every topic).
    #[arg(value_name = "TOPIC")]
    name: Option<String>,

    /// The topic to describe (the same as TOPIC).
    #[arg(long = "topic", value_name = "TOPIC", conflicts_with = "name")]
    flag: Option<String>,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
struct AlterArgs {
    #[command(flatten)]
    topic: TopicName,

    /// The new total number of partitions (it can only grow).
    #[arg(long)]
    partitions: usize,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
struct DeleteArgs {
    #[command(flatten)]
    topic: TopicName,

    /// Succeed if the topic does not exist.
    #[arg(long)]
    if_exists: bool,

    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: TopicArgs) -> Result<()> {
    match args.command {
        TopicCommand::Create(args) => create(args).await,
        TopicCommand::List(args) => list(args),
        TopicCommand::Describe(args) => describe(args).await,
        TopicCommand::Alter(args) => alter(args).await,
        TopicCommand::Delete(args) => delete(args).await,
    }
}

async fn create(args: CreateArgs) -> Result<()> {
    let admin = args.client.admin()?;
    // -1 asks the broker for its defaults (CreateTopics v4+, KIP-464), as kafka-topics does.
    let topic = args.topic.get();
    let mut new_topic = NewTopic::new(
        topic,
        args.partitions.unwrap_or(-1),
        TopicReplication::Fixed(args.replication_factor.unwrap_or(-1)),
    );
    for (key, value) in &args.configs {
        new_topic = new_topic.set(key, value);
    }
    let results = admin.create_topics([&new_topic], &args.client.admin_options()).await;
    let tolerated = args.if_not_exists.then_some(RDKafkaErrorCode::TopicAlreadyExists);
    check_topic_results(&args.client, topic, results, tolerated)?;
    println!("Created topic {topic}.");
    Ok(())
}

fn list(args: ListArgs) -> Result<()> {
    let admin = args.client.admin()?;
    let metadata = args.client.metadata(admin.inner(), None)?;
    let mut names: Vec<&str> = metadata
        .topics()
        .iter()
        .map(MetadataTopic::name)
        .filter(|name| !(args.exclude_internal && is_internal(name)))
        .collect();
    names.sort_unstable();
    for name in names {
        println!("{name}");
    }
    Ok(())
}

async fn describe(args: DescribeArgs) -> Result<()> {
    let admin = args.client.admin()?;
    let wanted = args.name.as_deref().or(args.flag.as_deref());
    let metadata = args.client.metadata(admin.inner(), wanted)?;
    let mut topics: Vec<&MetadataTopic> = metadata
        .topics()
        .iter()
        .filter(|topic| wanted.is_none_or(|wanted| topic.name() == wanted))
        .collect();
    topics.sort_unstable_by_key(|topic| topic.name());
    for topic in topics {
        let specifier = ResourceSpecifier::Topic(topic.name());
        let configs = describe_configs(&args.client, &admin, specifier)?;
        let mut overrides: Vec<String> = configs
            .iter()
            .filter(|entry| is_override(entry, specifier))
            .map(format_entry)
            .collect();
        overrides.sort_unstable();
        let mut partitions: Vec<_> = topic.partitions().iter().collect();
        partitions.sort_unstable_by_key(|partition| partition.id());
        let replication_factor = partitions.first().map_or(0, |partition| partition.replicas().len());
        println!(
            "Topic: {}\tPartitionCount: {}\tReplicationFactor: {}\tConfigs: {}",
            topic.name(),
            partitions.len(),
            replication_factor,
            overrides.join(",")
        );
        for partition in partitions {
            println!(
                "\tTopic: {}\tPartition: {}\tLeader: {}\tReplicas: {}\tIsr: {}",
                topic.name(),
                partition.id(),
                partition.leader(),
                join_ids(partition.replicas()),
                join_ids(partition.isr())
            );
        }
    }
    Ok(())
}

async fn alter(args: AlterArgs) -> Result<()> {
    let admin = args.client.admin()?;
    let topic = args.topic.get();
    let new_partitions = NewPartitions::new(topic, args.partitions);
    let results = admin
        .create_partitions([&new_partitions], &args.client.admin_options())
        .await;
    check_topic_results(&args.client, topic, results, None)?;
    println!("Topic {topic} now has {} partitions.", args.partitions);
    Ok(())
}

async fn delete(args: DeleteArgs) -> Result<()> {
    let admin = args.client.admin()?;
    let topic = args.topic.get();
    let results = admin.delete_topics(&[topic], &args.client.admin_options()).await;
    let tolerated = args.if_exists.then_some(RDKafkaErrorCode::UnknownTopicOrPartition);
    check_topic_results(&args.client, topic, results, tolerated)?;
    println!("Deleted topic {topic}.");
    Ok(())
}

/// Fails with Kafka's error for `topic`, unless it is the `tolerated` one.
fn check_topic_results(
    client: &ClientArgs,
    topic: &str,
    results: KafkaResult<Vec<TopicResult>>,
    tolerated: Option<RDKafkaErrorCode>,
) -> Result<()> {
    let results = results.map_err(|error| client.kafka_error(error, Some(topic)))?;
    let result = results
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("the cluster answered with no result"))?;
    match result {
        Ok(_) => Ok(()),
        Err((_, code)) if Some(code) == tolerated => Ok(()),
        Err((_, code)) => Err(topic_error(topic, code)),
    }
}

/// Kafka's internal topics: committed offsets and transaction state.
fn is_internal(name: &str) -> bool {
    name == "__consumer_offsets" || name == "__transaction_state"
}

fn join_ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}
