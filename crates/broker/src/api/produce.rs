//! Produce: batches are validated and stored as they arrive (the storage
//! engine rewrites only the batch header); acks=-1 answers after a
//! group-committed fsync, so acknowledged means durable.

use std::sync::Arc;

use bytes::Bytes;
use gregor_log::Log;
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Compression;

use super::{blocking, now_ms};
use crate::dispatch::NextRequest;
use crate::errors::{
    CORRUPT_MESSAGE, INVALID_REQUIRED_ACKS, INVALID_TXN_STATE, NONE, UNKNOWN_TOPIC_ID, UNKNOWN_TOPIC_OR_PARTITION,
};
use crate::partitions::Partition;
use crate::recompress;
use crate::state::BrokerState;

/// One partition's part of a request, resolved to its log.
struct PartitionWrite {
    topic: usize,
    partition: Option<Arc<Partition>>,
    /// The batches as they arrived: a slice of the request frame, appended
    /// without a copy.
    records: Bytes,
    /// Set when the topic's `compression.type` overrides the producer's codec.
    codec: Option<Compression>,
    /// The offset after this write's last record: what acks=-1 waits to be durable.
    end_offset: i64,
    response: PartitionProduceResponse,
}

/// `None` for acks=0: the producer expects no answer. `next_request` is
/// released once the appends are done, so the connection's next produce
/// is appended while this one waits for its fsync (and shares it).
pub async fn handle(
    state: &Arc<BrokerState>,
    request: ProduceRequest,
    next_request: &NextRequest,
) -> Option<ProduceResponse> {
    let acks = request.acks;
    let mut topics = Vec::with_capacity(request.topic_data.len());
    let mut writes = Vec::new();
    for (topic_index, topic_data) in request.topic_data.into_iter().enumerate() {
        // v13+ names topics by id (KIP-516); older versions by name.
        let (topic, missing) = if topic_data.name.is_empty() {
            (state.partitions.topic_by_id(topic_data.topic_id), UNKNOWN_TOPIC_ID)
        } else {
            (state.partitions.topic(&topic_data.name), UNKNOWN_TOPIC_OR_PARTITION)
        };
        let codec = topic
            .as_ref()
            .and_then(|t| recompress::target_codec(&t.compression_type(state.config())));
        for partition_data in topic_data.partition_data {
            let partition = topic
                .as_ref()
                .and_then(|t| t.partitions.get(usize::try_from(partition_data.index).ok()?).cloned());
            let unverified = |p: &Partition| match transactional_producer(partition_data.records.as_deref()) {
                Some((producer_id, epoch)) => !state.transactions.verify(producer_id, epoch, &p.topic, p.index),
                None => false,
            };
            let error_code = match (&partition, acks) {
                (None, -1..=1) => missing,
                // KIP-890: transactional data only to partitions added to the producer's ongoing transaction.
                (Some(p), -1..=1) if unverified(p) => INVALID_TXN_STATE,
                (Some(_), -1..=1) => NONE,
                _ => INVALID_REQUIRED_ACKS,
            };
            let response = PartitionProduceResponse::default()
                .with_index(partition_data.index)
                .with_error_code(error_code)
                .with_base_offset(-1)
                .with_log_append_time_ms(-1)
                .with_log_start_offset(-1);
            let records = partition_data.records.unwrap_or_default();
            let partition = if error_code == NONE { partition } else { None };
            writes.push(PartitionWrite {
                topic: topic_index,
                partition,
                records,
                codec,
                end_offset: -1,
                response,
            });
        }
        topics.push(
            TopicProduceResponse::default()
                .with_name(topic_data.name)
                .with_topic_id(topic_data.topic_id),
        );
    }

    let appender = state.clone();
    let release = next_request.take();
    let writes = blocking(move || {
        let mut writes = writes;
        let now = now_ms();
        for write in writes.iter_mut() {
            let Some(partition) = &write.partition else { continue };
            if let Some(codec) = write.codec {
                match recompress::recompress(&write.records, codec) {
                    Ok(records) => write.records = Bytes::from(records),
                    Err(reason) => {
                        write.response.error_code = CORRUPT_MESSAGE;
                        write.response.error_message = Some(StrBytes::from_string(reason));
                        write.partition = None;
                        continue;
                    }
                }
            }
            match appender.partitions.append(partition, &write.records, now) {
                Ok(info) => {
                    write.response.base_offset = info.base_offset;
                    write.response.log_append_time_ms = info.log_append_time_ms;
                    write.response.log_start_offset = info.log_start_offset;
                    write.end_offset = info.last_offset + 1;
                }
                Err(error) => {
                    write.response.error_code = error.code();
                    write.response.error_message = Some(StrBytes::from_string(error.to_string()));
                    write.partition = None;
                }
            }
        }
        if let Some(release) = release {
            let _ = release.send(());
        }
        if acks == -1 {
            // Group commit: concurrent requests share the fsync of each log,
            // and the request's partitions one sync of the file system.
            let synced = {
                let targets: Vec<(&Log, i64)> = (writes.iter())
                    .filter_map(|w| Some((&w.partition.as_ref()?.log, w.end_offset)))
                    .collect();
                gregor_log::sync_logs(&targets)
            };
            let written = writes.iter_mut().filter(|w| w.partition.is_some());
            for (write, result) in written.zip(synced) {
                let (Err(error), Some(partition)) = (result, &write.partition) else {
                    continue;
                };
                tracing::error!(topic = %partition.topic, partition = partition.index, %error, "fsync failed");
                write.response.error_code = error.code();
                write.response.error_message = Some(StrBytes::from_string(error.to_string()));
            }
        }
        writes
    })
    .await;

    if acks == 0 {
        return None;
    }
    for write in writes {
        topics[write.topic].partition_responses.push(write.response);
    }
    Some(ProduceResponse::default().with_responses(topics))
}

/// The producer id and epoch of the first batch when it is transactional
/// (attributes bit 4), read from the v2 batch header.
fn transactional_producer(records: Option<&[u8]>) -> Option<(i64, i16)> {
    let header = records?.get(..53)?;
    let attributes = i16::from_be_bytes([header[21], header[22]]);
    if attributes & 0x10 == 0 {
        return None;
    }
    let producer_id = i64::from_be_bytes(header[43..51].try_into().ok()?);
    let epoch = i16::from_be_bytes([header[51], header[52]]);
    Some((producer_id, epoch))
}
