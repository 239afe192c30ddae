//! Transactions as the cleaner sees them (Kafka's `CleanedTransactionMetadata`):
//! which data batches belong to aborted transactions (they are removed), and
//! when a transaction marker may go (once no batch of its transaction is
//! left, and then only after `delete.retention.ms`).
//!
//! Kafka reads aborted transactions from its `.txnindex` files; this log
//! has none yet, so [`collect_aborted`] rebuilds the same list from the log
//! itself: a walk over batch headers that reads only control batches'
//! records, from the first segment until every transaction that started
//! below the cleaning's upper bound has its marker.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::sync::Arc;

use crate::batch::BatchHeader;
use crate::cleaner::records::{self, RecordView};
use crate::scan::HeaderScanner;
use crate::segment::Segment;

/// Kafka's `ControlRecordType`.
pub(crate) const ABORT: i16 = 0;
pub(crate) const COMMIT: i16 = 1;

/// Kafka's `AbortedTxn`: a transaction of `producer_id` whose first batch is
/// at `first_offset` and whose ABORT marker is at `last_offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// What a header walk of the log found.
#[derive(Debug, Default)]
pub(crate) struct LogScan {
    /// Aborted transactions, ordered by first offset.
    pub aborted: Vec<AbortedTxn>,
    /// Records in batches at or above `dirty_from` and below `upto`: an
    /// upper bound on the keys the offset map must hold.
    pub dirty_records: u64,
}

/// The control record type of a control batch (its one record's key is
/// version int16, type int16), or `None` for an empty or unreadable one.
pub(crate) fn control_type(batch: &[u8], header: &BatchHeader) -> Option<i16> {
    let mut scratch = Vec::new();
    let plain = records::plain_records(batch, header, &mut scratch).ok()?;
    let mut parsed = Vec::new();
    records::parse_records(plain, header.records_count, &mut parsed).ok()?;
    control_type_of(plain, parsed.first()?)
}

pub(crate) fn control_type_of(plain: &[u8], record: &RecordView) -> Option<i16> {
    let key = &plain[record.key.clone()?];
    Some(i16::from_be_bytes(key.get(2..4)?.try_into().ok()?))
}

/// Walks every batch header from the first segment, reading control
/// batches, up to `upto` and then on (to at most `limit`, the high
/// watermark) while a transaction that started below `upto` is open.
pub(crate) fn collect_aborted(
    segments: &[Arc<Segment>],
    dirty_from: i64,
    upto: i64,
    limit: i64,
) -> io::Result<LogScan> {
    let mut scan = LogScan::default();
    // Each producer's open transaction: its first offset.
    let mut open: HashMap<i64, i64> = HashMap::new();
    let mut batch_bytes = Vec::new();
    'segments: for segment in segments {
        let mut scanner = HeaderScanner::new(segment.log.as_ref(), 0, segment.size());
        while let Some(located) = scanner.next_batch()? {
            let h = located.header;
            if h.base_offset >= limit {
                break 'segments;
            }
            if h.base_offset >= upto && open.values().all(|first| *first >= upto) {
                break 'segments;
            }
            if h.base_offset >= dirty_from && h.last_offset() < upto && !h.is_control() {
                scan.dirty_records += h.records_count.max(0) as u64;
            }
            if !h.is_transactional() || h.producer_id < 0 {
                continue;
            }
            if !h.is_control() {
                open.entry(h.producer_id).or_insert(h.base_offset);
                continue;
            }
            batch_bytes.resize(h.size() as usize, 0);
            segment.log.read_exact_at(&mut batch_bytes, located.position)?;
            let first_offset = open.remove(&h.producer_id);
            if let (Some(first_offset), Some(ABORT)) = (first_offset, control_type(&batch_bytes, &h)) {
                scan.aborted.push(AbortedTxn {
                    producer_id: h.producer_id,
                    first_offset,
                    last_offset: h.last_offset(),
                });
            }
        }
    }
    scan.aborted.sort_by_key(|t| t.first_offset);
    Ok(scan)
}

/// Kafka's `CleanedTransactionMetadata`, fed the batches in offset order.
pub(crate) struct TransactionState {
    /// Aborted transactions not yet reached, by first offset.
    pending: VecDeque<AbortedTxn>,
    /// Producers inside an aborted transaction, with whether one of its
    /// batches was seen.
    ongoing_aborted: HashMap<i64, bool>,
    /// Producers inside a committed transaction one of whose batches was seen.
    ongoing_committed: HashSet<i64>,
}

impl TransactionState {
    /// Only transactions whose marker is at or after `from` can affect a
    /// walk starting there (Kafka's `collectAbortedTransactions(from, ..)`).
    pub fn new(aborted: &[AbortedTxn], from: i64) -> TransactionState {
        TransactionState {
            pending: aborted.iter().filter(|t| t.last_offset >= from).copied().collect(),
            ongoing_aborted: HashMap::new(),
            ongoing_committed: HashSet::new(),
        }
    }

    fn consume_aborted_up_to(&mut self, offset: i64) {
        while self.pending.front().is_some_and(|t| t.first_offset <= offset) {
            let txn = self.pending.pop_front().expect("checked");
            self.ongoing_aborted.entry(txn.producer_id).or_insert(false);
        }
    }

    /// A control batch was read; true if it may be discarded: an ABORT
    /// marker whose transaction has no batch left, a COMMIT marker none of
    /// whose transaction's batches was seen, or an empty control batch
    /// (already cleaned).
    pub fn on_control_batch(&mut self, header: &BatchHeader, control_type: Option<i16>) -> bool {
        self.consume_aborted_up_to(header.last_offset());
        let producer_id = header.producer_id;
        match control_type {
            None => true,
            Some(ABORT) => !matches!(self.ongoing_aborted.remove(&producer_id), Some(true)),
            Some(COMMIT) => !self.ongoing_committed.remove(&producer_id),
            Some(_) => false,
        }
    }

    /// A data batch was read; true if it belongs to an aborted transaction.
    pub fn on_batch(&mut self, header: &BatchHeader) -> bool {
        self.consume_aborted_up_to(header.last_offset());
        if !header.is_transactional() {
            return false;
        }
        match self.ongoing_aborted.get_mut(&header.producer_id) {
            Some(seen) => {
                *seen = true;
                true
            }
            None => {
                self.ongoing_committed.insert(header.producer_id);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(producer_id: i64, base_offset: i64, transactional: bool, control: bool) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: 49,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: (transactional as i16) << 4 | (control as i16) << 5,
            last_offset_delta: 0,
            base_timestamp: 0,
            max_timestamp: 0,
            producer_id,
            producer_epoch: 0,
            base_sequence: 0,
            records_count: 1,
        }
    }

    #[test]
    fn aborted_batches_go_and_markers_stay_while_their_data_does() {
        let aborted = [AbortedTxn {
            producer_id: 1,
            first_offset: 0,
            last_offset: 3,
        }];
        let mut state = TransactionState::new(&aborted, 0);
        assert!(state.on_batch(&header(1, 0, true, false)), "aborted data");
        assert!(!state.on_batch(&header(2, 1, true, false)), "committed data");
        assert!(!state.on_batch(&header(3, 2, false, false)), "plain data");
        assert!(
            !state.on_control_batch(&header(1, 3, true, true), Some(ABORT)),
            "its data was seen"
        );
        assert!(
            !state.on_control_batch(&header(2, 4, true, true), Some(COMMIT)),
            "its data was seen"
        );
        // A second pass, after the data went: both markers may go.
        let mut state = TransactionState::new(&aborted, 0);
        assert!(state.on_control_batch(&header(1, 3, true, true), Some(ABORT)));
        assert!(state.on_control_batch(&header(2, 4, true, true), Some(COMMIT)));
        assert!(
            state.on_control_batch(&header(2, 5, true, true), None),
            "empty control batch"
        );
    }

    #[test]
    fn transactions_ended_before_the_walk_do_not_count() {
        let aborted = [AbortedTxn {
            producer_id: 1,
            first_offset: 0,
            last_offset: 3,
        }];
        let mut state = TransactionState::new(&aborted, 10);
        assert!(
            !state.on_batch(&header(1, 12, true, false)),
            "a later, committed transaction"
        );
    }
}
