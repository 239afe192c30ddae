//! `gregor config describe|alter`: topic and broker configs through Kafka's
//! DescribeConfigs and IncrementalAlterConfigs (KIP-339), which changes only
//! the keys given, as Kafka's own `kafka-configs` does.

use std::fmt;

use anyhow::{Result, anyhow, bail};
use rdkafka::admin::{AdminClient, ConfigEntry, ConfigSource, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};

use crate::client::{ClientArgs, topic_error};
use crate::config_admin::{self, AdminError, AlterOp};

#[derive(clap::Args, Debug)]
pub struct ConfigArgs {
    #[command(subcommand)]
    command: ConfigCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ConfigCommand {
    /// Print the configs of a topic or broker: its overrides, or with --all every config.
    Describe(DescribeArgs),
    /// Set or remove config overrides of a topic or broker.
    Alter(AlterArgs),
}

/// Which resource's configs: exactly one of --topic or --broker.
#[derive(clap::Args, Debug)]
#[group(required = true, multiple = false)]
struct Resource {
    /// A topic's configs.
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,

    /// A broker's configs, by node id.
    #[arg(long, value_name = "ID")]
    broker: Option<i32>,
}

impl Resource {
    fn specifier(&self) -> ResourceSpecifier<'_> {
        match (&self.topic, self.broker) {
            (Some(topic), _) => ResourceSpecifier::Topic(topic),
            (None, Some(broker)) => ResourceSpecifier::Broker(broker),
            // clap's group guarantees exactly one of the two.
            (None, None) => unreachable!("clap requires --topic or --broker"),
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.specifier() {
            ResourceSpecifier::Topic(topic) => write!(f, "topic '{topic}'"),
            ResourceSpecifier::Broker(broker) => write!(f, "broker {broker}"),
            ResourceSpecifier::Group(group) => write!(f, "group '{group}'"),
        }
    }
}

#[derive(clap::Args, Debug)]
struct DescribeArgs {
    #[command(flatten)]
    resource: Resource,

    /// Print every config with its source, not only the overrides.
    #[arg(long)]
    all: bool,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
struct AlterArgs {
    #[command(flatten)]
    resource: Resource,

    /// Set a config, repeatable: --set retention.ms=3600000
    #[arg(long = "set", value_name = "KEY=VALUE", value_parser = crate::parse_key_value)]
    set: Vec<(String, String)>,

    /// Remove a config override (back to the default), repeatable.
    #[arg(long = "delete", value_name = "KEY")]
    delete: Vec<String>,

    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: ConfigArgs) -> Result<()> {
    match args.command {
        ConfigCommand::Describe(args) => describe(args),
        ConfigCommand::Alter(args) => alter(args),
    }
}

fn describe(args: DescribeArgs) -> Result<()> {
    let admin = args.client.admin()?;
    let specifier = args.resource.specifier();
    let mut entries = describe_configs(&args.client, &admin, specifier)?;
    entries.retain(|entry| args.all || is_override(entry, specifier));
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for entry in &entries {
        if args.all {
            println!("{}\t({})", format_entry(entry), source_name(&entry.source));
        } else {
            println!("{}", format_entry(entry));
        }
    }
    Ok(())
}

fn alter(args: AlterArgs) -> Result<()> {
    if args.set.is_empty() && args.delete.is_empty() {
        bail!("nothing to alter: give --set KEY=VALUE or --delete KEY");
    }
    let specifier = args.resource.specifier();
    let admin = args.client.admin()?;
    if !args.delete.is_empty() {
        // Like kafka-configs: deleting a key that is not overridden is a mistake worth reporting.
        let current = describe_configs(&args.client, &admin, specifier)?;
        for key in &args.delete {
            if !current
                .iter()
                .any(|entry| entry.name == *key && is_override(entry, specifier))
            {
                bail!("{} has no override for '{key}' to delete", args.resource);
            }
        }
    }
    let ops: Vec<AlterOp<'_>> = args
        .delete
        .iter()
        .map(|key| AlterOp::Delete(key))
        .chain(args.set.iter().map(|(key, value)| AlterOp::Set(key, value)))
        .collect();
    config_admin::incremental_alter_configs(admin.inner(), specifier, &ops, args.client.request_timeout())
        .map_err(|error| admin_error(&args.client, specifier, error))?;
    println!("Completed updating config for {}.", args.resource);
    Ok(())
}

/// Every config of one resource, failing with Kafka's error for it.
pub fn describe_configs(
    client: &ClientArgs,
    admin: &AdminClient<DefaultClientContext>,
    specifier: ResourceSpecifier<'_>,
) -> Result<Vec<ConfigEntry>> {
    config_admin::describe_configs(admin.inner(), specifier, client.request_timeout())
        .map_err(|error| admin_error(client, specifier, error))
}

/// One readable line for a failed config request about `specifier`.
fn admin_error(client: &ClientArgs, specifier: ResourceSpecifier<'_>, error: AdminError) -> anyhow::Error {
    match (specifier, error) {
        (_, AdminError::Local(message)) => anyhow!(message),
        (ResourceSpecifier::Topic(topic), AdminError::Request(code, _)) => {
            client.kafka_error(KafkaError::AdminOp(code), Some(topic))
        }
        (_, AdminError::Request(code, _)) => client.kafka_error(KafkaError::AdminOp(code), None),
        // Codes with a sentence of their own; otherwise the broker's message says most.
        (
            ResourceSpecifier::Topic(topic),
            AdminError::Resource(
                code @ (RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::TopicAuthorizationFailed),
                _,
            ),
        ) => topic_error(topic, code),
        (ResourceSpecifier::Topic(topic), error) => anyhow!("topic '{topic}': {error}"),
        (ResourceSpecifier::Broker(broker), error) => anyhow!("broker {broker}: {error}"),
        (ResourceSpecifier::Group(group), error) => anyhow!("group '{group}': {error}"),
    }
}

/// Whether `entry` is set on the resource itself (a dynamic override)
/// rather than inherited from the broker's file or Kafka's defaults.
pub fn is_override(entry: &ConfigEntry, specifier: ResourceSpecifier<'_>) -> bool {
    match (&entry.source, specifier) {
        (ConfigSource::DynamicTopic, ResourceSpecifier::Topic(_)) => true,
        (ConfigSource::DynamicBroker, ResourceSpecifier::Broker(_)) => true,
        // DescribeConfigs v0 reports no source; fall back to its default flag.
        (ConfigSource::Unknown, _) => !entry.is_default,
        _ => false,
    }
}

pub fn format_entry(entry: &ConfigEntry) -> String {
    match (&entry.value, entry.is_sensitive) {
        (_, true) => format!("{}=(sensitive)", entry.name),
        (Some(value), false) => format!("{}={value}", entry.name),
        (None, false) => format!("{}=null", entry.name),
    }
}

/// Kafka's names for config sources (as `kafka-configs --describe --all` prints them).
fn source_name(source: &ConfigSource) -> &'static str {
    match source {
        ConfigSource::Unknown => "UNKNOWN",
        ConfigSource::DynamicTopic => "DYNAMIC_TOPIC_CONFIG",
        ConfigSource::DynamicBroker => "DYNAMIC_BROKER_CONFIG",
        ConfigSource::DynamicDefaultBroker => "DYNAMIC_DEFAULT_BROKER_CONFIG",
        ConfigSource::StaticBroker => "STATIC_BROKER_CONFIG",
        ConfigSource::Default => "DEFAULT_CONFIG",
    }
}
