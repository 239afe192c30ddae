//! The idempotent producer's state per partition (Kafka's
//! `ProducerStateManager`, `ProducerStateEntry` and `ProducerAppendInfo`):
//! for each producer id, its epoch and the metadata of the last few batches
//! the log holds from it, so that an append can be checked for a retried
//! duplicate, a sequence gap, or a zombie epoch before it is written.
//!
//! Thread-safety: plain data owned by the log's append lock. An append
//! stages its batches' updates on copies of the entries they touch and
//! commits them only once the batches are written, so a refused append
//! leaves the state as it was. Only batch headers are looked at.
//!
//! Transactions: a transactional batch opens the producer's transaction
//! (`current_txn_first_offset`), a control batch (end transaction marker)
//! closes it. The manager keeps the open transactions ordered by first
//! offset, for the log's last stable offset, and reports the transactions
//! an append's markers completed (see `transactions`). Kafka's
//! INVALID_TXN_STATE check for non-transactional data while a transaction
//! is open is left to the broker.

use std::collections::{BTreeSet, HashMap};

use crate::batch::{BatchHeader, CONTROL_MASK, TRANSACTIONAL_MASK};
use crate::validate::ValidatedBatch;
use crate::{LogError, Result};

/// Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`: a producer has at
/// most 5 requests in flight, so at most 5 batches can be retried.
pub(crate) const NUM_BATCHES_TO_RETAIN: usize = 5;
pub(crate) const NO_PRODUCER_EPOCH: i16 = -1;
pub(crate) const NO_SEQUENCE: i32 = -1;
/// Kafka's `producer.id.expiration.check.interval.ms` default: how often an
/// append sweeps out expired producers.
const EXPIRATION_CHECK_INTERVAL_MS: i64 = 10 * 60 * 1000;

/// A producer's state as `Log::producer_states` reports it (the fields of
/// Kafka's DescribeProducers response).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerStateEntry {
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The last sequence number the log holds from this producer, or -1.
    pub last_sequence: i32,
    /// The offset of the last record the log holds from this producer, or -1.
    pub last_offset: i64,
    /// The max timestamp of the producer's last batch.
    pub last_timestamp: i64,
    /// The epoch of the transaction coordinator that wrote the last marker
    /// (-1: markers are not decoded yet).
    pub coordinator_epoch: i32,
    /// The first offset of the producer's open transaction, or -1.
    pub current_txn_start_offset: i64,
}

/// Who is appending (Kafka's `AppendOrigin`): a client's produce request
/// gets the idempotence checks; the broker's own coordinators write
/// transactional batches without sequence numbers (transactional offset
/// commits, end transaction markers), which only get the epoch check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AppendOrigin {
    Client,
    Coordinator,
}

/// A transaction an end transaction marker closed (Kafka's `CompletedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CompletedTxn {
    pub producer_id: i64,
    /// The transaction's first offset, or `None` when the producer had no
    /// open transaction in this log (an empty transaction).
    pub first_offset: Option<i64>,
    /// The marker's offset: the transaction's last offset.
    pub marker_offset: i64,
    /// The marker's position in the append's batches.
    pub batch_index: usize,
}

/// Sequence arithmetic wraps from i32::MAX to 0 (Kafka's
/// `DefaultRecordBatch.incrementSequence`).
pub(crate) fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    ((sequence as i64 + increment as i64) % (i32::MAX as i64 + 1)) as i32
}

/// Kafka's `DefaultRecordBatch.decrementSequence`.
pub(crate) fn decrement_sequence(sequence: i32, decrement: i32) -> i32 {
    (sequence as i64 - decrement as i64).rem_euclid(i32::MAX as i64 + 1) as i32
}

fn in_sequence(last_sequence: i32, next_sequence: i32) -> bool {
    next_sequence as i64 == last_sequence as i64 + 1 || (next_sequence == 0 && last_sequence == i32::MAX)
}

/// Kafka's `BatchMetadata`: one batch the log holds from a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct BatchMetadata {
    pub last_sequence: i32,
    pub last_offset: i64,
    /// Last offset minus first offset.
    pub offset_delta: i32,
    /// The batch's (stored) max timestamp.
    pub timestamp: i64,
}

impl BatchMetadata {
    pub fn first_sequence(&self) -> i32 {
        decrement_sequence(self.last_sequence, self.offset_delta)
    }

    pub fn first_offset(&self) -> i64 {
        self.last_offset - self.offset_delta as i64
    }
}

/// One producer's state: fixed-size, so staging a copy allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub producer_epoch: i16,
    pub coordinator_epoch: i32,
    pub last_timestamp: i64,
    pub current_txn_first_offset: Option<i64>,
    /// The last `len` batches, oldest first.
    batches: [BatchMetadata; NUM_BATCHES_TO_RETAIN],
    len: usize,
}

impl Default for ProducerEntry {
    /// Kafka's `ProducerStateEntry.empty`: a producer the log knows nothing of.
    fn default() -> Self {
        ProducerEntry {
            producer_epoch: NO_PRODUCER_EPOCH,
            coordinator_epoch: -1,
            last_timestamp: crate::batch::NO_TIMESTAMP,
            current_txn_first_offset: None,
            batches: [BatchMetadata::default(); NUM_BATCHES_TO_RETAIN],
            len: 0,
        }
    }
}

impl ProducerEntry {
    /// An entry as a snapshot stores it: at most its last batch.
    pub fn restored(
        producer_epoch: i16,
        coordinator_epoch: i32,
        last_timestamp: i64,
        current_txn_first_offset: Option<i64>,
        last_batch: Option<BatchMetadata>,
    ) -> ProducerEntry {
        let mut entry = ProducerEntry {
            producer_epoch,
            coordinator_epoch,
            last_timestamp,
            current_txn_first_offset,
            ..ProducerEntry::default()
        };
        if let Some(batch) = last_batch {
            entry.push_batch(batch);
        }
        entry
    }

    pub fn batches(&self) -> &[BatchMetadata] {
        &self.batches[..self.len]
    }

    pub fn last_batch(&self) -> Option<&BatchMetadata> {
        self.batches().last()
    }

    pub fn last_sequence(&self) -> i32 {
        self.last_batch().map_or(NO_SEQUENCE, |b| b.last_sequence)
    }

    fn push_batch(&mut self, batch: BatchMetadata) {
        if self.len == NUM_BATCHES_TO_RETAIN {
            self.batches.copy_within(1.., 0);
            self.len -= 1;
        }
        self.batches[self.len] = batch;
        self.len += 1;
    }

    /// A new epoch forgets the batches of the old one.
    fn update_epoch(&mut self, epoch: i16) {
        if self.producer_epoch != epoch {
            self.len = 0;
            self.producer_epoch = epoch;
        }
    }

    /// The batch `batch` retries, if the log holds it: same epoch, same
    /// sequence range (Kafka's `findDuplicateBatch`).
    fn find_duplicate(&self, batch: &ProducerBatch) -> Option<BatchMetadata> {
        if batch.producer_epoch != self.producer_epoch {
            return None;
        }
        let last_sequence = batch.last_sequence();
        self.batches()
            .iter()
            .find(|b| b.first_sequence() == batch.base_sequence && b.last_sequence == last_sequence)
            .copied()
    }

    /// Applies a batch that passed the checks, or one read back from the log.
    fn apply(&mut self, batch: &ProducerBatch) {
        if batch.is_control {
            // An end transaction marker (Kafka's `appendEndTxnMarker`): the
            // transaction is over, whichever way it ended.
            self.update_epoch(batch.producer_epoch);
            self.current_txn_first_offset = None;
            self.last_timestamp = batch.max_timestamp;
            return;
        }
        self.update_epoch(batch.producer_epoch);
        self.push_batch(BatchMetadata {
            last_sequence: batch.last_sequence(),
            last_offset: batch.last_offset,
            offset_delta: (batch.last_offset - batch.first_offset) as i32,
            timestamp: batch.max_timestamp,
        });
        self.last_timestamp = batch.max_timestamp;
        if batch.is_transactional && self.current_txn_first_offset.is_none() {
            self.current_txn_first_offset = Some(batch.first_offset);
        }
    }

    /// Kafka's `isProducerExpired`: idle for `expiration_ms` and no open
    /// transaction.
    fn is_expired(&self, now_ms: i64, expiration_ms: i64) -> bool {
        self.current_txn_first_offset.is_none() && now_ms.saturating_sub(self.last_timestamp) >= expiration_ms
    }
}

/// What the producer state needs of one batch, from the append path or
/// from a header read back from the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerBatch {
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    pub max_timestamp: i64,
    pub is_transactional: bool,
    pub is_control: bool,
}

impl ProducerBatch {
    pub fn from_validated(b: &ValidatedBatch, first_offset: i64) -> ProducerBatch {
        ProducerBatch {
            producer_id: b.producer_id,
            producer_epoch: b.producer_epoch,
            base_sequence: b.base_sequence,
            first_offset,
            last_offset: first_offset + b.records_count as i64 - 1,
            max_timestamp: b.max_timestamp,
            is_transactional: b.attributes & TRANSACTIONAL_MASK != 0,
            is_control: b.attributes & CONTROL_MASK != 0,
        }
    }

    pub fn from_header(h: &BatchHeader) -> ProducerBatch {
        ProducerBatch {
            producer_id: h.producer_id,
            producer_epoch: h.producer_epoch,
            base_sequence: h.base_sequence,
            first_offset: h.base_offset,
            last_offset: h.last_offset(),
            max_timestamp: h.max_timestamp,
            is_transactional: h.is_transactional(),
            is_control: h.is_control(),
        }
    }

    /// Kafka's `hasProducerId`: batches without one are not tracked.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Kafka's `DefaultRecordBatch.lastSequence`.
    pub fn last_sequence(&self) -> i32 {
        if self.base_sequence == NO_SEQUENCE {
            return NO_SEQUENCE;
        }
        increment_sequence(self.base_sequence, (self.last_offset - self.first_offset) as i32)
    }
}

/// Every producer's state in one partition.
#[derive(Debug, Default)]
pub(crate) struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
    /// The entries an append in progress has staged; reused across appends.
    pending: Vec<(i64, ProducerEntry)>,
    last_expiration_check_ms: i64,
    /// The open transactions as (first offset, producer id): the first is
    /// the log's first unstable offset (Kafka's `ongoingTxns`).
    ongoing: BTreeSet<(i64, i64)>,
    /// The transactions the last append's markers completed, in offset order.
    completed: Vec<CompletedTxn>,
}

impl ProducerStateManager {
    pub fn from_entries(entries: impl IntoIterator<Item = (i64, ProducerEntry)>) -> ProducerStateManager {
        let producers: HashMap<i64, ProducerEntry> = entries.into_iter().collect();
        let ongoing = producers
            .iter()
            .filter_map(|(id, e)| e.current_txn_first_offset.map(|first| (first, *id)))
            .collect();
        ProducerStateManager {
            producers,
            ongoing,
            ..ProducerStateManager::default()
        }
    }

    /// The first offset of the earliest open transaction.
    pub fn first_ongoing_offset(&self) -> Option<i64> {
        self.ongoing.first().map(|(first, _)| *first)
    }

    /// The transactions the last committed append's markers completed.
    pub fn completed(&self) -> &[CompletedTxn] {
        &self.completed
    }

    /// Records the coordinator epoch an end transaction marker carried.
    pub fn set_coordinator_epoch(&mut self, producer_id: i64, coordinator_epoch: i32) {
        if let Some(entry) = self.producers.get_mut(&producer_id) {
            entry.coordinator_epoch = coordinator_epoch;
        }
    }

    /// Replaces a producer's entry, keeping the open transactions in step.
    fn insert(&mut self, producer_id: i64, entry: ProducerEntry) {
        let before = self.producers.insert(producer_id, entry);
        let before = before.and_then(|e| e.current_txn_first_offset);
        if before != entry.current_txn_first_offset {
            if let Some(first) = before {
                self.ongoing.remove(&(first, producer_id));
            }
            if let Some(first) = entry.current_txn_first_offset {
                self.ongoing.insert((first, producer_id));
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    #[cfg(test)]
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Every producer's entry, ordered by producer id.
    pub fn entries(&self) -> Vec<(i64, ProducerEntry)> {
        let mut entries: Vec<_> = self.producers.iter().map(|(id, e)| (*id, *e)).collect();
        entries.sort_unstable_by_key(|(id, _)| *id);
        entries
    }

    pub fn describe(&self) -> Vec<ProducerStateEntry> {
        self.entries()
            .into_iter()
            .map(|(producer_id, e)| ProducerStateEntry {
                producer_id,
                producer_epoch: e.producer_epoch,
                last_sequence: e.last_sequence(),
                last_offset: e.last_batch().map_or(-1, |b| b.last_offset),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.current_txn_first_offset.unwrap_or(-1),
            })
            .collect()
    }

    /// Checks an append's batches (offsets assigned from `first_offset`)
    /// and stages their updates for [`ProducerStateManager::commit`].
    /// Returns the original batch when the append is a retry of one the log
    /// holds: a single-batch append is then answered with it, as Kafka does.
    /// A duplicate inside a multi-batch append is refused as out of order
    /// instead of Kafka's answer (the duplicate's offsets for the whole
    /// append, dropping its other batches): clients send one batch per
    /// partition, and dropping batches silently would lose data.
    ///
    /// Only a client's batches are checked for duplicates and sequences
    /// (Kafka does the same for `AppendOrigin.CLIENT`); a coordinator's
    /// batches without a sequence get the epoch check only.
    pub fn prepare(
        &mut self,
        batches: &[ValidatedBatch],
        first_offset: i64,
        origin: AppendOrigin,
    ) -> Result<Option<BatchMetadata>> {
        self.pending.clear();
        self.completed.clear();
        let mut offset = first_offset;
        for (batch_index, b) in batches.iter().enumerate() {
            let batch = ProducerBatch::from_validated(b, offset);
            offset = batch.last_offset + 1;
            if !batch.has_producer_id() {
                continue;
            }
            let committed = self.producers.get(&batch.producer_id);
            if !batch.is_control
                && origin == AppendOrigin::Client
                && let Some(duplicate) = committed.and_then(|e| e.find_duplicate(&batch))
            {
                if batches.len() == 1 {
                    return Ok(Some(duplicate));
                }
                let last = committed.map_or(NO_SEQUENCE, |e| e.last_sequence());
                return Err(LogError::OutOfOrderSequence {
                    producer_id: batch.producer_id,
                    expected: increment_sequence(last, 1),
                    found: batch.base_sequence,
                });
            }
            let check_sequence = origin == AppendOrigin::Client || batch.base_sequence != NO_SEQUENCE;
            if let Some(first_offset) = self.stage(&batch, check_sequence)? {
                self.completed.push(CompletedTxn {
                    producer_id: batch.producer_id,
                    first_offset,
                    marker_offset: batch.first_offset,
                    batch_index,
                });
            }
        }
        Ok(None)
    }

    /// Kafka's `ProducerAppendInfo` checks for a batch, against the
    /// producer's entry with this append's earlier batches applied. For a
    /// marker, returns the first offset of the transaction it closes.
    fn stage(&mut self, batch: &ProducerBatch, check_sequence_numbers: bool) -> Result<Option<Option<i64>>> {
        let committed_epoch = self
            .producers
            .get(&batch.producer_id)
            .map_or(NO_PRODUCER_EPOCH, |e| e.producer_epoch);
        let index = match self.pending.iter().position(|(id, _)| *id == batch.producer_id) {
            Some(index) => index,
            None => {
                let entry = self.producers.get(&batch.producer_id).copied().unwrap_or_default();
                self.pending.push((batch.producer_id, entry));
                self.pending.len() - 1
            }
        };
        let entry = &mut self.pending[index].1;
        // checkProducerEpoch
        if batch.producer_epoch < entry.producer_epoch {
            return Err(LogError::InvalidProducerEpoch {
                producer_id: batch.producer_id,
                epoch: batch.producer_epoch,
                current: entry.producer_epoch,
            });
        }
        if !batch.is_control && check_sequence_numbers {
            check_sequence(batch, entry, committed_epoch)?;
        }
        let closed = batch.is_control.then_some(entry.current_txn_first_offset);
        entry.apply(batch);
        Ok(closed)
    }

    /// Applies the staged updates: the append they belong to was written.
    pub fn commit(&mut self) {
        let mut pending = std::mem::take(&mut self.pending);
        for (producer_id, entry) in pending.drain(..) {
            self.insert(producer_id, entry);
        }
        self.pending = pending;
    }

    /// Applies a batch read back from the log, unchecked (Kafka rebuilds
    /// with the replication origin: the log only holds accepted batches).
    /// For a marker, returns the transaction it completed.
    pub fn replay(&mut self, batch: &ProducerBatch) -> Option<CompletedTxn> {
        if !batch.has_producer_id() {
            return None;
        }
        let mut entry = self.producers.get(&batch.producer_id).copied().unwrap_or_default();
        let first_offset = entry.current_txn_first_offset;
        entry.apply(batch);
        self.insert(batch.producer_id, entry);
        batch.is_control.then_some(CompletedTxn {
            producer_id: batch.producer_id,
            first_offset,
            marker_offset: batch.first_offset,
            batch_index: 0,
        })
    }

    /// Drops producers idle for `expiration_ms` (`producer.id.expiration.ms`).
    /// A producer with an open transaction never expires.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) {
        self.producers.retain(|_, e| !e.is_expired(now_ms, expiration_ms));
        self.last_expiration_check_ms = now_ms;
        debug_assert!(self.ongoing.iter().all(|(_, id)| self.producers.contains_key(id)));
    }

    /// [`ProducerStateManager::remove_expired`] at most once per Kafka's
    /// check interval, so appends do not walk every producer each time.
    pub fn maybe_remove_expired(&mut self, now_ms: i64, expiration_ms: i64) {
        if now_ms.saturating_sub(self.last_expiration_check_ms) >= EXPIRATION_CHECK_INTERVAL_MS {
            self.remove_expired(now_ms, expiration_ms);
        }
    }
}

/// Kafka's `ProducerAppendInfo.checkSequence`. A new epoch starts at 0; in
/// the same epoch a batch continues the last sequence. A producer the log
/// has no epoch for (new, or expired, or whose batches were all deleted)
/// may start anywhere: since KIP-360 the log no longer answers
/// UNKNOWN_PRODUCER_ID.
fn check_sequence(batch: &ProducerBatch, entry: &ProducerEntry, committed_epoch: i16) -> Result<()> {
    let out_of_order = |expected: i32| LogError::OutOfOrderSequence {
        producer_id: batch.producer_id,
        expected,
        found: batch.base_sequence,
    };
    if batch.producer_epoch != entry.producer_epoch {
        if batch.base_sequence != 0 && entry.producer_epoch != NO_PRODUCER_EPOCH {
            return Err(out_of_order(0));
        }
        return Ok(());
    }
    let last = entry.last_sequence();
    if committed_epoch != NO_PRODUCER_EPOCH && !in_sequence(last, batch.base_sequence) {
        return Err(out_of_order(increment_sequence(last, 1)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PID: i64 = 7;

    fn data(epoch: i16, base_sequence: i32, records: i32, first_offset: i64) -> ProducerBatch {
        ProducerBatch {
            producer_id: PID,
            producer_epoch: epoch,
            base_sequence,
            first_offset,
            last_offset: first_offset + records as i64 - 1,
            max_timestamp: 1000 + first_offset,
            is_transactional: false,
            is_control: false,
        }
    }

    /// Stages and commits one batch as an append would.
    fn append(state: &mut ProducerStateManager, batch: ProducerBatch) -> Result<()> {
        state.pending.clear();
        state.stage(&batch, true)?;
        state.commit();
        Ok(())
    }

    #[test]
    fn sequences_wrap_at_i32_max() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(decrement_sequence(1, 3), i32::MAX - 1);
        assert_eq!(decrement_sequence(8, 3), 5);
        assert!(in_sequence(i32::MAX, 0));
        assert!(in_sequence(-1, 0));
        assert!(!in_sequence(3, 5));
    }

    #[test]
    fn sequences_continue_within_an_epoch() {
        let mut state = ProducerStateManager::default();
        append(&mut state, data(0, 0, 3, 0)).unwrap();
        append(&mut state, data(0, 3, 2, 3)).unwrap();
        let gap = append(&mut state, data(0, 6, 1, 5)).unwrap_err();
        assert!(matches!(
            gap,
            LogError::OutOfOrderSequence {
                producer_id: PID,
                expected: 5,
                found: 6
            }
        ));
        let entry = state.get(PID).unwrap();
        assert_eq!((entry.last_sequence(), entry.last_batch().unwrap().last_offset), (4, 4));
    }

    #[test]
    fn epochs_fence_older_ones_and_restart_at_zero() {
        let mut state = ProducerStateManager::default();
        append(&mut state, data(3, 0, 2, 0)).unwrap();
        let zombie = append(&mut state, data(2, 2, 1, 2)).unwrap_err();
        assert!(matches!(
            zombie,
            LogError::InvalidProducerEpoch {
                epoch: 2,
                current: 3,
                ..
            }
        ));
        let not_zero = append(&mut state, data(4, 2, 1, 2)).unwrap_err();
        assert!(matches!(
            not_zero,
            LogError::OutOfOrderSequence {
                expected: 0,
                found: 2,
                ..
            }
        ));
        append(&mut state, data(4, 0, 1, 2)).unwrap();
        let entry = state.get(PID).unwrap();
        assert_eq!((entry.producer_epoch, entry.batches().len()), (4, 1));
    }

    #[test]
    fn unknown_producers_may_start_at_any_sequence() {
        let mut state = ProducerStateManager::default();
        append(&mut state, data(0, 42, 1, 0)).unwrap();
        append(&mut state, data(0, 43, 1, 1)).unwrap();
        assert_eq!(state.get(PID).unwrap().last_sequence(), 43);
    }

    #[test]
    fn the_last_five_batches_are_found_as_duplicates() {
        let mut state = ProducerStateManager::default();
        for i in 0..7 {
            append(&mut state, data(0, i * 2, 2, i as i64 * 2)).unwrap();
        }
        let entry = *state.get(PID).unwrap();
        assert_eq!(entry.batches().len(), NUM_BATCHES_TO_RETAIN);
        // Batches 2..=6 are retained; 0 and 1 are forgotten.
        let original = entry.find_duplicate(&data(0, 4, 2, 100)).unwrap();
        assert_eq!((original.first_offset(), original.last_offset), (4, 5));
        assert!(entry.find_duplicate(&data(0, 2, 2, 100)).is_none());
        assert!(entry.find_duplicate(&data(0, 4, 1, 100)).is_none(), "a different range");
        assert!(entry.find_duplicate(&data(1, 4, 2, 100)).is_none(), "another epoch");
    }

    #[test]
    fn staged_updates_vanish_unless_committed() {
        let mut state = ProducerStateManager::default();
        append(&mut state, data(0, 0, 1, 0)).unwrap();
        state.pending.clear();
        state.stage(&data(0, 1, 1, 1), true).unwrap();
        // A later batch of the same append sees the staged one.
        state.stage(&data(0, 2, 1, 2), true).unwrap();
        assert!(state.stage(&data(0, 2, 1, 3), true).is_err());
        // The append is refused: nothing was committed.
        assert_eq!(state.get(PID).unwrap().last_sequence(), 0);
    }

    #[test]
    fn markers_close_transactions_and_move_the_epoch() {
        let mut state = ProducerStateManager::default();
        let mut txn = data(0, 0, 2, 10);
        txn.is_transactional = true;
        append(&mut state, txn).unwrap();
        assert_eq!(state.describe()[0].current_txn_start_offset, 10);
        let marker = ProducerBatch {
            base_sequence: NO_SEQUENCE,
            is_control: true,
            is_transactional: true,
            ..data(1, 0, 1, 12)
        };
        append(&mut state, marker).unwrap();
        let described = state.describe()[0];
        assert_eq!(
            (
                described.current_txn_start_offset,
                described.producer_epoch,
                described.last_sequence
            ),
            (-1, 1, NO_SEQUENCE)
        );
    }

    fn transactional(producer_id: i64, base_sequence: i32, first_offset: i64) -> ProducerBatch {
        ProducerBatch {
            producer_id,
            is_transactional: true,
            ..data(0, base_sequence, 1, first_offset)
        }
    }

    fn end_marker(producer_id: i64, offset: i64) -> ProducerBatch {
        ProducerBatch {
            producer_id,
            base_sequence: NO_SEQUENCE,
            is_control: true,
            is_transactional: true,
            ..data(0, 0, 1, offset)
        }
    }

    #[test]
    fn open_transactions_are_kept_in_offset_order_and_completed_by_markers() {
        let mut state = ProducerStateManager::default();
        append(&mut state, transactional(2, 0, 10)).unwrap();
        append(&mut state, transactional(1, 0, 11)).unwrap();
        append(&mut state, transactional(2, 1, 12)).unwrap();
        assert_eq!(state.first_ongoing_offset(), Some(10));
        assert_eq!(state.replay(&end_marker(2, 13)).map(|c| c.first_offset), Some(Some(10)));
        assert_eq!(state.first_ongoing_offset(), Some(11));
        let restored = ProducerStateManager::from_entries(state.entries());
        assert_eq!(restored.first_ongoing_offset(), Some(11));
        assert_eq!(state.replay(&end_marker(3, 14)).map(|c| c.first_offset), Some(None));
        state.replay(&end_marker(1, 15));
        assert_eq!(state.first_ongoing_offset(), None);
    }

    #[test]
    fn coordinator_batches_without_a_sequence_skip_the_sequence_checks() {
        let mut state = ProducerStateManager::default();
        append(&mut state, transactional(PID, 0, 0)).unwrap();
        state.pending.clear();
        let no_sequence = transactional(PID, NO_SEQUENCE, 1);
        assert!(state.stage(&no_sequence, true).is_err(), "a client's batch is checked");
        state.pending.clear();
        state.stage(&no_sequence, false).unwrap();
        state.commit();
        assert_eq!(state.first_ongoing_offset(), Some(0));
    }

    #[test]
    fn idle_producers_expire_but_not_with_an_open_transaction() {
        let mut state = ProducerStateManager::default();
        append(&mut state, data(0, 0, 1, 0)).unwrap(); // timestamp 1000
        let mut txn = ProducerBatch {
            producer_id: 8,
            ..data(0, 0, 1, 1)
        };
        txn.is_transactional = true;
        append(&mut state, txn).unwrap();
        state.remove_expired(1000, 500);
        assert_eq!(state.len(), 2, "not idle long enough");
        state.maybe_remove_expired(1000 + EXPIRATION_CHECK_INTERVAL_MS - 1, 500);
        assert_eq!(state.len(), 2, "not yet time to check");
        state.maybe_remove_expired(1000 + EXPIRATION_CHECK_INTERVAL_MS, 500);
        assert_eq!(state.entries().iter().map(|(id, _)| *id).collect::<Vec<_>>(), [8]);
    }
}
