//! ListOffsets: earliest (-2), latest (-1), max timestamp (-3), earliest
//! local (-4), or the first offset at or after a timestamp (time index).

use std::sync::Arc;

use kafka_protocol::messages::list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::blocking;
use crate::errors::{KAFKA_STORAGE_ERROR, NONE, UNKNOWN_TOPIC_OR_PARTITION};
use crate::partitions::Partition;
use crate::state::BrokerState;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;

pub async fn handle(state: &Arc<BrokerState>, request: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let lookups = state.clone();
    let read_committed = request.isolation_level == 1;
    let topics = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|wanted| {
                        let answer = ListOffsetsPartitionResponse::default()
                            .with_partition_index(wanted.partition_index)
                            .with_timestamp(-1)
                            .with_offset(-1)
                            .with_leader_epoch(-1);
                        match lookups.partitions.partition(&topic.name, wanted.partition_index) {
                            Some(partition) => lookup(&partition, wanted.timestamp, version, read_committed, answer),
                            None => answer.with_error_code(UNKNOWN_TOPIC_OR_PARTITION),
                        }
                    })
                    .collect();
                ListOffsetsTopicResponse::default()
                    .with_name(topic.name)
                    .with_partitions(partitions)
            })
            .collect()
    })
    .await;
    ListOffsetsResponse::default().with_topics(topics)
}

fn lookup(
    partition: &Partition,
    timestamp: i64,
    version: i16,
    read_committed: bool,
    answer: ListOffsetsPartitionResponse,
) -> ListOffsetsPartitionResponse {
    // Kafka answers for an offline replica without looking at its log.
    if partition.is_offline() {
        return answer.with_error_code(KAFKA_STORAGE_ERROR);
    }
    let log = &partition.log;
    // The leader epoch field exists from v4 on.
    let leader_epoch = if version >= 4 { partition.leader_epoch } else { -1 };
    let answer = answer.with_error_code(NONE).with_leader_epoch(leader_epoch);
    // read_committed consumers end at the last stable offset.
    let latest = if read_committed {
        log.last_stable_offset()
    } else {
        log.high_watermark()
    };
    let found = match timestamp {
        LATEST => Ok(Some((-1, latest))),
        EARLIEST | EARLIEST_LOCAL => Ok(Some((-1, log.log_start_offset()))),
        MAX_TIMESTAMP => log.max_timestamp().map(|found| found.map(|f| (f.timestamp, f.offset))),
        _ => log
            .offset_for_timestamp(timestamp)
            .map(|found| found.map(|f| (f.timestamp, f.offset))),
    };
    match found {
        Ok(Some((timestamp, offset))) => answer.with_timestamp(timestamp).with_offset(offset),
        Ok(None) => answer,
        Err(error) => answer.with_error_code(error.code()),
    }
}
