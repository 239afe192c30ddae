//! DeleteRecords: moves a partition's log start offset forward.

use std::sync::Arc;

use kafka_protocol::messages::delete_records_response::{DeleteRecordsPartitionResult, DeleteRecordsTopicResult};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::blocking;
use crate::errors::{OFFSET_OUT_OF_RANGE, UNKNOWN_TOPIC_OR_PARTITION};
use crate::state::BrokerState;

/// An offset of -1 means "up to the high watermark".
const HIGH_WATERMARK: i64 = -1;

pub async fn handle(state: &Arc<BrokerState>, request: DeleteRecordsRequest) -> DeleteRecordsResponse {
    let worker = state.clone();
    let topics = blocking(move || {
        request
            .topics
            .into_iter()
            .map(|topic| {
                let partitions = topic
                    .partitions
                    .iter()
                    .map(|wanted| {
                        let result = DeleteRecordsPartitionResult::default()
                            .with_partition_index(wanted.partition_index)
                            .with_low_watermark(-1);
                        let Some(partition) = worker.partitions.partition(&topic.name, wanted.partition_index) else {
                            return result.with_error_code(UNKNOWN_TOPIC_OR_PARTITION);
                        };
                        let high_watermark = partition.log.high_watermark();
                        let offset = if wanted.offset == HIGH_WATERMARK {
                            high_watermark
                        } else {
                            wanted.offset
                        };
                        if offset < 0 || offset > high_watermark {
                            return result.with_error_code(OFFSET_OUT_OF_RANGE);
                        }
                        match partition.log.delete_records_before(offset) {
                            Ok(low_watermark) => result.with_low_watermark(low_watermark),
                            Err(error) => result.with_error_code(error.code()),
                        }
                    })
                    .collect();
                DeleteRecordsTopicResult::default()
                    .with_name(topic.name)
                    .with_partitions(partitions)
            })
            .collect()
    })
    .await;
    DeleteRecordsResponse::default().with_topics(topics)
}
