use thiserror::Error;

/// Storage errors; each maps to one Kafka error code.
#[derive(Debug, Error)]
pub enum LogError {
    #[error("corrupt record batch: {0}")]
    CorruptMessage(String),
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    MessageTooLarge { size: usize, max: usize },
    #[error("invalid timestamp: {0}")]
    InvalidTimestamp(String),
    #[error("offset {offset} is out of range [{log_start_offset}, {log_end_offset}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        log_end_offset: i64,
    },
    /// An append carried a leader epoch older than one the log has already
    /// seen: the caller is a deposed leader (Kafka's FENCED_LEADER_EPOCH).
    #[error("leader epoch {epoch} is older than the log's latest leader epoch {latest_epoch}")]
    FencedLeaderEpoch { epoch: i32, latest_epoch: i32 },
    /// An idempotent producer's batch does not continue its sequence: a
    /// gap, or a new producer epoch not starting at 0 (Kafka's
    /// OUT_OF_ORDER_SEQUENCE_NUMBER from `ProducerAppendInfo.checkSequence`).
    #[error("out of order sequence number for producer {producer_id}: expected {expected}, found {found}")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        found: i32,
    },
    /// A batch from an older epoch of a producer than the log has seen: a
    /// zombie producer (Kafka's INVALID_PRODUCER_EPOCH since 2.7).
    #[error("producer {producer_id}'s epoch {epoch} is older than its current epoch {current}")]
    InvalidProducerEpoch { producer_id: i64, epoch: i16, current: i16 },
    #[error("storage error: {0}")]
    Storage(#[from] std::io::Error),
}

impl LogError {
    /// The Kafka protocol error code.
    pub fn code(&self) -> i16 {
        match self {
            LogError::CorruptMessage(_) => 2,
            LogError::InvalidRecord(_) => 87,
            LogError::MessageTooLarge { .. } => 10,
            LogError::InvalidTimestamp(_) => 32,
            LogError::OffsetOutOfRange { .. } => 1,
            LogError::FencedLeaderEpoch { .. } => 74,
            LogError::OutOfOrderSequence { .. } => 45,
            LogError::InvalidProducerEpoch { .. } => 47,
            LogError::Storage(_) => 56,
        }
    }

    /// A storage error that is not an OS error: the log is closed, or went
    /// offline after a failed fsync (Kafka's KAFKA_STORAGE_ERROR either way).
    pub(crate) fn offline(why: &str) -> LogError {
        LogError::Storage(std::io::Error::other(why.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_kafka() {
        assert_eq!(LogError::CorruptMessage(String::new()).code(), 2);
        assert_eq!(LogError::InvalidRecord(String::new()).code(), 87);
        assert_eq!(LogError::MessageTooLarge { size: 2, max: 1 }.code(), 10);
        assert_eq!(LogError::InvalidTimestamp(String::new()).code(), 32);
        let out_of_range = LogError::OffsetOutOfRange {
            offset: 5,
            log_start_offset: 0,
            log_end_offset: 1,
        };
        assert_eq!(out_of_range.code(), 1);
        assert_eq!(
            LogError::FencedLeaderEpoch {
                epoch: 1,
                latest_epoch: 2
            }
            .code(),
            74
        );
        let gap = LogError::OutOfOrderSequence {
            producer_id: 1,
            expected: 5,
            found: 7,
        };
        assert_eq!(gap.code(), 45);
        let zombie = LogError::InvalidProducerEpoch {
            producer_id: 1,
            epoch: 0,
            current: 1,
        };
        assert_eq!(zombie.code(), 47);
        assert_eq!(LogError::offline("closed").code(), 56);
    }
}
