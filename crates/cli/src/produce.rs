//! `gregor produce`: each line of standard input becomes one record.

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::client::ClientArgs;

/// Records sent but not yet acknowledged before we wait for the oldest:
/// keeps memory bounded however long the input is.
const MAX_IN_FLIGHT: usize = 10_000;

#[derive(clap::Args, Debug)]
pub struct ProduceArgs {
    /// The topic to write to.
    #[arg(long)]
    topic: String,

    /// Split each line at the first SEPARATOR into key and value; a line
    /// without it is an error. Without this option records have no key.
    #[arg(long, value_name = "SEPARATOR")]
    key_separator: Option<String>,

    /// A header added to every record, repeatable: --header source=cli
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = crate::parse_key_value)]
    headers: Vec<(String, String)>,

    /// Send every record to this partition (default: by key, or spread when there is none).
    #[arg(long)]
    partition: Option<i32>,

    /// Acknowledgements to wait for: 0, 1 or all (-1).
    #[arg(long, default_value = "all", value_parser = ["0", "1", "all", "-1"])]
    acks: String,

    /// Compress record batches with this codec.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    compression: String,

    /// A value equal to this text is sent as null (a tombstone).
    #[arg(long, value_name = "TEXT")]
    null_marker: Option<String>,

    /// Fail a record that is not acknowledged within this time.
    #[arg(long, value_name = "MS", default_value_t = 30_000)]
    delivery_timeout_ms: u64,

    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(args: ProduceArgs) -> Result<()> {
    let delivery_timeout_ms = args.delivery_timeout_ms.to_string();
    let producer: FutureProducer = args.client.create(&[
        ("acks", &args.acks),
        ("compression.type", &args.compression),
        ("message.timeout.ms", &delivery_timeout_ms),
        ("linger.ms", "5"),
    ])?;
    let headers = args.headers.iter().fold(
        OwnedHeaders::new_with_capacity(args.headers.len()),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            })
        },
    );

    let mut input = BufReader::new(tokio::io::stdin());
    let mut line = Vec::new();
    let mut line_number = 0_u64;
    let mut in_flight = VecDeque::new();
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line).await? == 0 {
            break;
        }
        line_number += 1;
        let text = strip_line_end(&line);
        let (key, value) = split_key_value(text, args.key_separator.as_deref().map(str::as_bytes))
            .ok_or_else(|| anyhow!("line {line_number}: no key separator {:?} found", args.key_separator))?;
        let value = match &args.null_marker {
            Some(marker) if value == marker.as_bytes() => None,
            _ => Some(value),
        };
        let mut record = FutureRecord::<[u8], [u8]> {
            topic: &args.topic,
            partition: args.partition,
            payload: value,
            key,
            timestamp: None,
            headers: (!args.headers.is_empty()).then(|| headers.clone()),
        };
        // A full local queue means librdkafka wants us to wait for acknowledgements first.
        loop {
            match producer.send_result(record) {
                Ok(delivery) => break in_flight.push_back(delivery),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    match in_flight.pop_front() {
                        Some(oldest) => acknowledged(&args, oldest).await?,
                        // Nothing of ours in flight: the queue drains by itself; back off briefly.
                        None => tokio::time::sleep(Duration::from_millis(10)).await,
                    }
                }
                Err((error, _)) => return Err(args.client.kafka_error(error, Some(&args.topic))),
            }
        }
        if in_flight.len() >= MAX_IN_FLIGHT
            && let Some(oldest) = in_flight.pop_front()
        {
            acknowledged(&args, oldest).await?;
        }
    }
    while let Some(delivery) = in_flight.pop_front() {
        acknowledged(&args, delivery).await?;
    }
    Ok(())
}

/// Waits for one record's acknowledgement, failing with Kafka's error for it.
async fn acknowledged(args: &ProduceArgs, delivery: DeliveryFuture) -> Result<()> {
    match delivery.await {
        Ok(Ok(_)) => Ok(()),
        Ok(Err((error, _))) => Err(args.client.kafka_error(error, Some(&args.topic))),
        Err(_canceled) => bail!("the producer shut down before the record was acknowledged"),
    }
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Splits at the first `separator`, or returns the whole line as the value
/// when there is no separator to look for; None when it is missing.
fn split_key_value<'a>(line: &'a [u8], separator: Option<&[u8]>) -> Option<(Option<&'a [u8]>, &'a [u8])> {
    let Some(separator) = separator.filter(|separator| !separator.is_empty()) else {
        return Some((None, line));
    };
    let at = line.windows(separator.len()).position(|window| window == separator)?;
    Some((Some(&line[..at]), &line[at + separator.len()..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        assert_eq!(
            split_key_value(b"k:v:w", Some(b":")),
            Some((Some(&b"k"[..]), &b"v:w"[..]))
        );
        assert_eq!(
            split_key_value(b"k::v", Some(b"::")),
            Some((Some(&b"k"[..]), &b"v"[..]))
        );
        assert_eq!(split_key_value(b":v", Some(b":")), Some((Some(&b""[..]), &b"v"[..])));
        assert_eq!(split_key_value(b"value", None), Some((None, &b"value"[..])));
        assert_eq!(split_key_value(b"value", Some(b":")), None);
    }

    #[test]
    fn line_ends_are_stripped() {
        assert_eq!(strip_line_end(b"a\r\n"), b"a");
        assert_eq!(strip_line_end(b"a\n"), b"a");
        assert_eq!(strip_line_end(b"a"), b"a");
    }
}
