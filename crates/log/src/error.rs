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
    OffsetOutOfRange { offset: i64, log_start_offset: i64, log_end_offset: i64 },
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
            LogError::Storage(_) => 56,
        }
    }
}
