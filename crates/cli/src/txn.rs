//! `gregor txn list|describe` and `gregor producers describe`: transactions
//! as their coordinators know them and the producers each partition's log
//! tracks, in the columns of Kafka's `kafka-transactions.sh`.
//!
//! librdkafka has no admin API for these (KIP-664's ListTransactions,
//! DescribeTransactions, DescribeProducers), so the requests go over the
//! wire directly (`txn_wire`); the brokers to ask still come from
//! librdkafka's metadata, so the commands work on any Kafka cluster.

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use kafka_protocol::messages::{
    DescribeProducersRequest, DescribeTransactionsRequest, ListTransactionsRequest, TopicName, TransactionalId,
    describe_producers_request,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::metadata::Metadata;

use crate::client::ClientArgs;
use crate::txn_wire::{Connection, CoordinatorKey, coordinator, error_name};

#[derive(clap::Args, Debug)]
pub struct TxnArgs {
    #[command(subcommand)]
    command: TxnCommand,
}

#[derive(clap::Subcommand, Debug)]
enum TxnCommand {
    /// List the transactional ids every coordinator knows, with their state.
    List(ListArgs),
    /// Show a transactional id's producer, epoch, state, timeout and partitions.
    Describe(DescribeArgs),
}

#[derive(clap::Args, Debug)]
struct ListArgs {
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
struct DescribeArgs {
    /// The transactional.id of the producer.
    #[arg(value_name = "TRANSACTIONAL-ID")]
    transactional_id: String,

    #[command(flatten)]
    client: ClientArgs,
}

#[derive(clap::Args, Debug)]
pub struct ProducersArgs {
    #[command(subcommand)]
    command: ProducersCommand,
}

#[derive(clap::Subcommand, Debug)]
enum ProducersCommand {
    /// Show the idempotent and transactional producers of a topic's partitions.
    Describe(ProducersDescribeArgs),
}

#[derive(clap::Args, Debug)]
struct ProducersDescribeArgs {
    /// The topic whose partitions to describe.
    #[arg(long, value_name = "TOPIC")]
    topic: String,

    /// Only this partition (default: every partition of the topic).
    #[arg(long, value_name = "PARTITION")]
    partition: Option<i32>,

    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: TxnArgs) -> Result<()> {
    match args.command {
        TxnCommand::List(args) => list(&args.client).await,
        TxnCommand::Describe(args) => describe(&args.client, &args.transactional_id).await,
    }
}

pub async fn run_producers(args: ProducersArgs) -> Result<()> {
    match args.command {
        ProducersCommand::Describe(args) => describe_producers(&args).await,
    }
}

/// This client speaks plain TCP only; refuse settings it would ignore.
fn check_plaintext(client: &ClientArgs) -> Result<()> {
    for (key, value) in &client.client_properties {
        if key == "security.protocol" && !value.eq_ignore_ascii_case("plaintext") {
            bail!("this command supports security.protocol=PLAINTEXT only, not {value}");
        }
    }
    Ok(())
}

/// Cluster metadata through librdkafka: the brokers and, for a topic, its partition leaders.
fn metadata(client: &ClientArgs, topic: Option<&str>) -> Result<Metadata> {
    let admin = client.admin()?;
    client.metadata(admin.inner(), topic)
}

/// host:port of every broker, by node id.
fn broker_addresses(metadata: &Metadata) -> BTreeMap<i32, String> {
    metadata
        .brokers()
        .iter()
        .map(|broker| (broker.id(), format!("{}:{}", broker.host(), broker.port())))
        .collect()
}

/// ListTransactions goes to every broker: each answers for the
/// transactional ids it coordinates.
async fn list(client: &ClientArgs) -> Result<()> {
    check_plaintext(client)?;
    let brokers = broker_addresses(&metadata(client, None)?);
    let mut rows = Vec::new();
    for (node_id, address) in brokers {
        let mut connection = Connection::connect(&address, client.request_timeout()).await?;
        let response = connection.send(&ListTransactionsRequest::default(), 0).await?;
        if response.error_code != 0 {
            bail!(
                "broker {node_id} cannot list transactions: {}",
                error_name(response.error_code)
            );
        }
        for state in response.transaction_states {
            rows.push(vec![
                state.transactional_id.0.to_string(),
                node_id.to_string(),
                state.producer_id.0.to_string(),
                state.transaction_state.to_string(),
            ]);
        }
    }
    rows.sort();
    print_table(
        &["TransactionalId", "Coordinator", "ProducerId", "TransactionState"],
        &rows,
    );
    Ok(())
}

/// FindCoordinator (key type 1: a transactional id), then DescribeTransactions there.
async fn describe(client: &ClientArgs, transactional_id: &str) -> Result<()> {
    check_plaintext(client)?;
    let (coordinator_id, mut connection) = coordinator(
        &client.bootstrap_server,
        client.request_timeout(),
        CoordinatorKey::Transaction,
        transactional_id,
    )
    .await?;
    let request = DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
        StrBytes::from_string(transactional_id.to_string()),
    )]);
    let response = connection.send(&request, 0).await?;
    let state = response
        .transaction_states
        .into_iter()
        .find(|state| state.transactional_id.0.as_str() == transactional_id)
        .ok_or_else(|| anyhow!("the coordinator did not describe transactional id '{transactional_id}'"))?;
    match state.error_code {
        0 => {}
        105 => {
            bail!("transactional id '{transactional_id}' is not known to its coordinator (TRANSACTIONAL_ID_NOT_FOUND)")
        }
        code => bail!(
            "cannot describe transactional id '{transactional_id}': {}",
            error_name(code)
        ),
    }
    let partitions: Vec<String> = state
        .topics
        .iter()
        .flat_map(|topic| {
            topic
                .partitions
                .iter()
                .map(move |partition| format!("{}-{partition}", topic.topic.0))
        })
        .collect();
    // Like Kafka's tool: no start time or duration without an ongoing transaction.
    let (start, duration) = match state.transaction_start_time_ms {
        start if start < 0 => ("None".to_string(), "None".to_string()),
        start => (start.to_string(), (now_ms() - start).max(0).to_string()),
    };
    let row = vec![
        coordinator_id.to_string(),
        transactional_id.to_string(),
        state.producer_id.0.to_string(),
        state.producer_epoch.to_string(),
        state.transaction_state.to_string(),
        state.transaction_timeout_ms.to_string(),
        start,
        duration,
        if partitions.is_empty() {
            "None".to_string()
        } else {
            partitions.join(",")
        },
    ];
    print_table(
        &[
            "CoordinatorId",
            "TransactionalId",
            "ProducerId",
            "ProducerEpoch",
            "TransactionState",
            "TransactionTimeoutMs",
            "CurrentTransactionStartTimeMs",
            "TransactionDurationMs",
            "TopicPartitions",
        ],
        &[row],
    );
    Ok(())
}

/// DescribeProducers goes to each partition's leader.
async fn describe_producers(args: &ProducersDescribeArgs) -> Result<()> {
    let client = &args.client;
    check_plaintext(client)?;
    let metadata = metadata(client, Some(&args.topic))?;
    let brokers = broker_addresses(&metadata);
    let topic = metadata
        .topics()
        .iter()
        .find(|topic| topic.name() == args.topic)
        .ok_or_else(|| anyhow!("topic '{}' does not exist", args.topic))?;
    let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for partition in topic.partitions() {
        if args.partition.is_none_or(|wanted| wanted == partition.id()) {
            by_leader.entry(partition.leader()).or_default().push(partition.id());
        }
    }
    if let Some(wanted) = args.partition
        && by_leader.is_empty()
    {
        bail!("topic '{}' has no partition {wanted}", args.topic);
    }
    let mut rows = Vec::new();
    for (leader, partitions) in by_leader {
        let address = brokers
            .get(&leader)
            .ok_or_else(|| anyhow!("the leader {leader} of topic '{}' is not in the metadata", args.topic))?;
        let mut connection = Connection::connect(address, client.request_timeout()).await?;
        let request = DescribeProducersRequest::default().with_topics(vec![
            describe_producers_request::TopicRequest::default()
                .with_name(TopicName(StrBytes::from_string(args.topic.clone())))
                .with_partition_indexes(partitions),
        ]);
        let response = connection.send(&request, 0).await?;
        for partition in response.topics.into_iter().flat_map(|topic| topic.partitions) {
            if partition.error_code != 0 {
                bail!(
                    "cannot describe the producers of {}-{}: {}",
                    args.topic,
                    partition.partition_index,
                    error_name(partition.error_code)
                );
            }
            for producer in partition.active_producers {
                rows.push((
                    partition.partition_index,
                    producer.producer_id.0,
                    vec![
                        partition.partition_index.to_string(),
                        producer.producer_id.0.to_string(),
                        producer.producer_epoch.to_string(),
                        producer.coordinator_epoch.to_string(),
                        producer.last_sequence.to_string(),
                        producer.last_timestamp.to_string(),
                        match producer.current_txn_start_offset {
                            offset if offset < 0 => "None".to_string(),
                            offset => offset.to_string(),
                        },
                    ],
                ));
            }
        }
    }
    rows.sort_by_key(|(partition, producer_id, _)| (*partition, *producer_id));
    let rows: Vec<Vec<String>> = rows.into_iter().map(|(_, _, row)| row).collect();
    print_table(
        &[
            "Partition",
            "ProducerId",
            "ProducerEpoch",
            "LatestCoordinatorEpoch",
            "LastSequence",
            "LastTimestamp",
            "CurrentTransactionStartOffset",
        ],
        &rows,
    );
    Ok(())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// Columns padded to their widest cell, separated by two spaces.
fn print_table(headers: &[&str], rows: &[Vec<String>]) {
    print!("{}", format_table(headers, rows));
}

fn format_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|header| header.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    };
    let mut table = line(headers.to_vec());
    for row in rows {
        table.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_their_columns() {
        let rows = vec![
            vec!["a-long-id".to_string(), "7".to_string(), "Ongoing".to_string()],
            vec!["b".to_string(), "12345".to_string(), "Empty".to_string()],
        ];
        assert_eq!(
            format_table(&["Id", "ProducerId", "State"], &rows),
            "Id         ProducerId  State\n\
             a-long-id  7           Ongoing\n\
             b          12345       Empty\n"
        );
    }
}
