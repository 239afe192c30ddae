//! The `__transaction_state` topic: Kafka's key and value schemas (version 0)
//! for each transactional id's state, so the transaction coordinator is
//! durable and rebuilt on start by replaying the topic.

use std::collections::BTreeSet;

use crate::record_batch::InternalRecord;
use crate::schema::{Reader, put_str};

pub const TRANSACTION_TOPIC: &str = "__transaction_state";

/// Kafka's TransactionState, with its on-disk status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnState {
    Empty = 0,
    Ongoing = 1,
    PrepareCommit = 2,
    PrepareAbort = 3,
    CompleteCommit = 4,
    CompleteAbort = 5,
    /// Removed by the transactional id expiration: held only in memory by
    /// the removed entry (the log gets a tombstone instead).
    Dead = 6,
    PrepareEpochFence = 7,
}

impl TxnState {
    fn from_code(code: i8) -> Option<TxnState> {
        Some(match code {
            0 => TxnState::Empty,
            1 => TxnState::Ongoing,
            2 => TxnState::PrepareCommit,
            3 => TxnState::PrepareAbort,
            4 => TxnState::CompleteCommit,
            5 => TxnState::CompleteAbort,
            6 => TxnState::Dead,
            7 => TxnState::PrepareEpochFence,
            _ => return None,
        })
    }

    /// The names DescribeTransactions and ListTransactions report.
    pub fn name(self) -> &'static str {
        match self {
            TxnState::Empty => "Empty",
            TxnState::Ongoing => "Ongoing",
            TxnState::PrepareCommit => "PrepareCommit",
            TxnState::PrepareAbort => "PrepareAbort",
            TxnState::CompleteCommit => "CompleteCommit",
            TxnState::CompleteAbort => "CompleteAbort",
            TxnState::Dead => "Dead",
            TxnState::PrepareEpochFence => "PrepareEpochFence",
        }
    }
}

/// One transactional id's durable state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnRecord {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub timeout_ms: i32,
    pub state: TxnState,
    pub partitions: BTreeSet<(String, i32)>,
    pub last_update_ms: i64,
    pub start_ms: i64,
}

/// The key of `transactional_id`'s records (version 0).
fn key(transactional_id: &str) -> Vec<u8> {
    let mut key = Vec::new();
    key.extend_from_slice(&0i16.to_be_bytes());
    put_str(&mut key, transactional_id);
    key
}

pub fn encode(transactional_id: &str, record: &TxnRecord) -> InternalRecord {
    let key = key(transactional_id);
    let mut value = Vec::new();
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&record.producer_id.to_be_bytes());
    value.extend_from_slice(&record.producer_epoch.to_be_bytes());
    value.extend_from_slice(&record.timeout_ms.to_be_bytes());
    value.push(record.state as u8);
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in &record.partitions {
        match topics.last_mut() {
            Some((last, partitions)) if *last == topic.as_str() => partitions.push(*partition),
            _ => topics.push((topic, vec![*partition])),
        }
    }
    value.extend_from_slice(&(topics.len() as i32).to_be_bytes());
    for (topic, partitions) in topics {
        put_str(&mut value, topic);
        value.extend_from_slice(&(partitions.len() as i32).to_be_bytes());
        for partition in partitions {
            value.extend_from_slice(&partition.to_be_bytes());
        }
    }
    value.extend_from_slice(&record.last_update_ms.to_be_bytes());
    value.extend_from_slice(&record.start_ms.to_be_bytes());
    InternalRecord {
        key,
        value: Some(value),
    }
}

/// The record that removes `transactional_id` (a null value): replay
/// forgets the id, and compaction eventually drops its earlier records.
pub fn tombstone(transactional_id: &str) -> InternalRecord {
    InternalRecord {
        key: key(transactional_id),
        value: None,
    }
}

/// The transactional id and its state (`None` for a tombstone); `None` for
/// records this broker does not read.
pub fn decode(key: &[u8], value: Option<&[u8]>) -> Option<(String, Option<TxnRecord>)> {
    let mut key = Reader(key);
    if key.i16()? != 0 {
        return None;
    }
    let transactional_id = key.string()?;
    let Some(value) = value else {
        return Some((transactional_id, None));
    };
    let mut value = Reader(value);
    if !(0..=1).contains(&value.i16()?) {
        return None;
    }
    let producer_id = value.i64()?;
    let producer_epoch = value.i16()?;
    let timeout_ms = value.i32()?;
    let state = TxnState::from_code(value.take(1)?[0] as i8)?;
    let mut partitions = BTreeSet::new();
    let topics = value.i32()?;
    for _ in 0..topics.max(0) {
        let topic = value.string()?;
        for _ in 0..value.i32()?.max(0) {
            partitions.insert((topic.clone(), value.i32()?));
        }
    }
    let last_update_ms = value.i64()?;
    let start_ms = value.i64()?;
    Some((
        transactional_id,
        Some(TxnRecord {
            producer_id,
            producer_epoch,
            timeout_ms,
            state,
            partitions,
            last_update_ms,
            start_ms,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let record = TxnRecord {
            producer_id: 7,
            producer_epoch: 3,
            timeout_ms: 60_000,
            state: TxnState::Ongoing,
            partitions: BTreeSet::from([("a".to_string(), 0), ("a".to_string(), 2), ("b".to_string(), 1)]),
            last_update_ms: 5,
            start_ms: 4,
        };
        let encoded = encode("tx-1", &record);
        assert_eq!(
            decode(&encoded.key, encoded.value.as_deref()),
            Some(("tx-1".to_string(), Some(record)))
        );
        let removed = tombstone("tx-1");
        assert_eq!(removed.key, encoded.key);
        assert_eq!(
            decode(&removed.key, removed.value.as_deref()),
            Some(("tx-1".to_string(), None))
        );
        assert_eq!(decode(&[0, 1, 0, 0], None), None, "unknown key versions are skipped");
    }
}
