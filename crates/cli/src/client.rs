//! What every client command shares: how to reach the cluster, how to build
//! rdkafka clients from that, and how to turn Kafka error codes into one
//! readable line.
//!
//! Everything here speaks plain Kafka through librdkafka, so the client
//! commands work against any Kafka cluster, not only Gregor.

use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::{Client, DefaultClientContext};
use rdkafka::config::FromClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::metadata::Metadata;
use rdkafka::{ClientConfig, ClientContext};

/// Connection options taken by every client command.
#[derive(clap::Args, Debug, Clone)]
pub struct ClientArgs {
    /// Comma-separated host:port list of brokers to bootstrap from.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:9092")]
    pub bootstrap_server: String,

    /// Extra client property in librdkafka's names, repeatable
    /// (e.g. -X security.protocol=SASL_PLAINTEXT).
    #[arg(short = 'X', long = "client-property", value_name = "KEY=VALUE", value_parser = crate::parse_key_value)]
    pub client_properties: Vec<(String, String)>,

    /// How long to wait for the cluster to answer a request.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    pub request_timeout_ms: u64,
}

impl ClientArgs {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }

    /// The base configuration of every client: where the cluster is, then
    /// the caller's `-X` properties, which win over anything set before them.
    pub fn config(&self, extra: &[(&str, &str)]) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_server);
        config.set("client.id", "gregor-cli");
        for (key, value) in extra {
            config.set(*key, *value);
        }
        for (key, value) in &self.client_properties {
            config.set(key, value);
        }
        config
    }

    /// Creates any rdkafka client from [`ClientArgs::config`] plus `extra`.
    pub fn create<T: FromClientConfig>(&self, extra: &[(&str, &str)]) -> Result<T> {
        self.config(extra).create().context("cannot create the Kafka client")
    }

    /// An admin client. It never asks the broker to auto-create topics, so a
    /// describe of a missing topic reports it missing instead of creating it.
    pub fn admin(&self) -> Result<AdminClient<DefaultClientContext>> {
        self.create(&[("allow.auto.create.topics", "false")])
    }

    pub fn admin_options(&self) -> AdminOptions {
        AdminOptions::new()
            .request_timeout(Some(self.request_timeout()))
            .operation_timeout(Some(self.request_timeout()))
    }

    /// Cluster metadata for one topic (failing if it does not exist) or for all.
    pub fn metadata<C: ClientContext>(&self, client: &Client<C>, topic: Option<&str>) -> Result<Metadata> {
        let metadata = client
            .fetch_metadata(topic, self.request_timeout())
            .map_err(|error| self.kafka_error(error, topic))?;
        if let Some(topic) = topic {
            let found = metadata.topics().iter().find(|candidate| candidate.name() == topic);
            match found.map(|found| found.error()) {
                None => return Err(topic_error(topic, RDKafkaErrorCode::UnknownTopicOrPartition)),
                Some(Some(error)) => return Err(topic_error(topic, RDKafkaErrorCode::from(error))),
                Some(None) => {}
            }
        }
        Ok(metadata)
    }

    /// One readable line for a client-level error, naming the cluster when
    /// it could not be reached and the topic when the error is about it.
    pub fn kafka_error(&self, error: KafkaError, topic: Option<&str>) -> anyhow::Error {
        // Admin futures carry their code in AdminOp, which rdkafka_error_code() leaves out.
        let code = match &error {
            KafkaError::AdminOp(code) => Some(*code),
            other => other.rdkafka_error_code(),
        };
        match code {
            Some(
                RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::Resolve,
            ) => anyhow!("cannot reach the cluster at {} ({error})", self.bootstrap_server),
            Some(code) => match topic {
                Some(topic) => topic_error(topic, code),
                None => anyhow!("{code}"),
            },
            None => anyhow!("{error}"),
        }
    }
}

/// Kafka's error code for an operation on `topic`, as one readable line.
pub fn topic_error(topic: &str, code: RDKafkaErrorCode) -> anyhow::Error {
    match code {
        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic => {
            anyhow!("topic '{topic}' does not exist")
        }
        RDKafkaErrorCode::TopicAlreadyExists => anyhow!("topic '{topic}' already exists"),
        RDKafkaErrorCode::InvalidTopic => anyhow!("'{topic}' is not a valid topic name"),
        RDKafkaErrorCode::UnknownPartition => anyhow!("topic '{topic}' has no such partition"),
        RDKafkaErrorCode::TopicAuthorizationFailed => anyhow!("not authorized to access topic '{topic}'"),
        code => anyhow!("topic '{topic}': {code}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_errors_read_like_sentences() {
        assert_eq!(
            topic_error("x", RDKafkaErrorCode::UnknownTopicOrPartition).to_string(),
            "topic 'x' does not exist"
        );
        assert_eq!(
            topic_error("x", RDKafkaErrorCode::TopicAlreadyExists).to_string(),
            "topic 'x' already exists"
        );
        assert!(
            topic_error("x", RDKafkaErrorCode::InvalidPartitions)
                .to_string()
                .starts_with("topic 'x': ")
        );
    }
}
