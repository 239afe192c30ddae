//! `gregor config describe|alter`: topic and broker configs through Kafka's
//! DescribeConfigs and AlterConfigs.
//!
//! AlterConfigs (unlike IncrementalAlterConfigs, which librdkafka's Rust
//! binding does not expose) replaces every dynamic config of a resource, so
//! `alter` reads the current overrides first, applies `--set`/`--delete` to
//! them, and writes the whole set back, as Kafka's own `kafka-configs` did
//! before KIP-339.

use std::collections::BTreeMap;
use std::fmt;

use anyhow::{Result, anyhow, bail};
use rdkafka::admin::{AdminClient, AlterConfig, ConfigEntry, ConfigResource, ConfigSource, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;

use crate::client::{ClientArgs, topic_error};

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
        ConfigCommand::Describe(args) => describe(args).await,
        ConfigCommand::Alter(args) => alter(args).await,
    }
}

async fn describe(args: DescribeArgs) -> Result<()> {
    let admin = args.client.admin()?;
    let resource = describe_configs(&args.client, &admin, args.resource.specifier()).await?;
    let mut entries: Vec<&ConfigEntry> = resource
        .entries
        .iter()
        .filter(|entry| args.all || is_override(entry, args.resource.specifier()))
        .collect();
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for entry in entries {
        if args.all {
            println!("{}\t({})", format_entry(entry), source_name(&entry.source));
        } else {
            println!("{}", format_entry(entry));
        }
    }
    Ok(())
}

async fn alter(args: AlterArgs) -> Result<()> {
    if args.set.is_empty() && args.delete.is_empty() {
        bail!("nothing to alter: give --set KEY=VALUE or --delete KEY");
    }
    let specifier = args.resource.specifier();
    let admin = args.client.admin()?;
    let current = describe_configs(&args.client, &admin, specifier).await?;
    let mut overrides = BTreeMap::new();
    for entry in current.entries.iter().filter(|entry| is_override(entry, specifier)) {
        let Some(value) = &entry.value else {
            bail!(
                "{} has a sensitive override '{}' that AlterConfigs would drop; change it with a tool that \
                 supports IncrementalAlterConfigs",
                args.resource,
                entry.name
            );
        };
        overrides.insert(entry.name.as_str(), value.as_str());
    }
    for key in &args.delete {
        if overrides.remove(key.as_str()).is_none() {
            bail!("{} has no override for '{key}' to delete", args.resource);
        }
    }
    for (key, value) in &args.set {
        overrides.insert(key, value);
    }
    let mut alter = AlterConfig::new(specifier);
    for (key, value) in overrides {
        alter = alter.set(key, value);
    }
    let results = admin
        .alter_configs([&alter], &args.client.admin_options())
        .await
        .map_err(|error| args.client.kafka_error(error, args.resource.topic.as_deref()))?;
    for result in results {
        if let Err((_, code)) = result {
            return Err(resource_error(&args.resource, code));
        }
    }
    println!("Completed updating config for {}.", args.resource);
    Ok(())
}

/// The configs of one resource, failing with Kafka's error for it.
pub async fn describe_configs(
    client: &ClientArgs,
    admin: &AdminClient<DefaultClientContext>,
    specifier: ResourceSpecifier<'_>,
) -> Result<ConfigResource> {
    let topic = match specifier {
        ResourceSpecifier::Topic(topic) => Some(topic),
        _ => None,
    };
    let results = admin
        .describe_configs([&specifier], &client.admin_options())
        .await
        .map_err(|error| client.kafka_error(error, topic))?;
    match results.into_iter().next() {
        Some(Ok(resource)) => Ok(resource),
        Some(Err(code)) => Err(match specifier {
            ResourceSpecifier::Topic(topic) => topic_error(topic, code),
            ResourceSpecifier::Broker(broker) => anyhow!("broker {broker}: {code}"),
            ResourceSpecifier::Group(group) => anyhow!("group '{group}': {code}"),
        }),
        None => bail!("the cluster answered DescribeConfigs with no result"),
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

fn resource_error(resource: &Resource, code: RDKafkaErrorCode) -> anyhow::Error {
    match &resource.topic {
        Some(topic) => topic_error(topic, code),
        None => anyhow!("{resource}: {code}"),
    }
}
