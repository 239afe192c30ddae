//! Transactions in the log (the transactional half of Kafka's `UnifiedLog`
//! and `ProducerStateManager`): the last stable offset, end transaction
//! markers, and the aborted transactions a read_committed fetch reports.
//!
//! - The producer state (`producer_state`) knows each producer's open
//!   transaction; an append's markers close them and report them here.
//! - A transaction stays unstable from its first offset until its marker
//!   is below the high watermark (Kafka's ongoing and unreplicated
//!   transactions). The first unstable offset lives in an atomic, so the
//!   last stable offset costs two loads on every read_committed fetch.
//! - Each abort marker whose transaction had data in this log adds an
//!   entry to the aborted transactions: in the active segment's
//!   `.txnindex` file (`transaction_index`), and in memory, in marker
//!   order, for the fetch path's queries.
//!
//! Thread-safety: the state is changed under the append lock (then the
//! short `state` lock) and by `set_high_watermark` (the `state` lock
//! only); readers take the `state` lock briefly, never the append lock.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

use crate::batch::{self, CONTROL_MASK, CURRENT_MAGIC, HEADER_SIZE, TRANSACTIONAL_MASK};
use crate::producer_state::{AppendOrigin, NO_SEQUENCE, ProducerStateManager};
use crate::scan::HeaderScanner;
use crate::segment::Segment;
use crate::storage::{self, StorageFile};
use crate::transaction_index::{self, LoadedIndexes};
use crate::validate::ValidatedBatch;
use crate::{AppendInfo, Log, LogError, Result, lock};

/// Kafka's `ControlRecordType.ABORT` and `COMMIT`: the second field of a
/// control record's key.
const CONTROL_TYPE_ABORT: i16 = 0;
const CONTROL_TYPE_COMMIT: i16 = 1;
/// Kafka's `EndTransactionMarker.CURRENT_END_TXN_MARKER_VERSION` and the
/// control record key's version.
const END_TXN_MARKER_VERSION: i16 = 0;
const CONTROL_KEY_VERSION: i16 = 0;

/// An aborted transaction as a read_committed fetch reports it: the
/// consumer drops the producer's records in [first offset, last offset].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTransaction {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the abort marker.
    pub last_offset: i64,
}

/// One aborted transaction as the `.txnindex` holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AbortedTxnEntry {
    pub txn: AbortedTransaction,
    /// The log's last stable offset once the abort was written: no
    /// transaction aborted later starts below it, which bounds a query.
    pub last_stable_offset: i64,
}

/// What an end transaction marker's control record says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct EndTxnMarker {
    pub commit: bool,
    pub coordinator_epoch: i32,
}

pub(crate) struct Transactions {
    /// The first offset of the earliest unstable transaction, i64::MAX
    /// when none.
    first_unstable_offset: AtomicI64,
    state: Mutex<TxnState>,
}

#[derive(Default)]
struct TxnState {
    /// Ordered by last offset (marker order).
    aborted: Vec<AbortedTxnEntry>,
    /// Completed transactions whose marker the high watermark has not
    /// passed yet, as (first offset, marker offset).
    unreplicated: Vec<(i64, i64)>,
    /// The first offset of the earliest open transaction, or i64::MAX.
    first_ongoing: i64,
    /// The segments' `.txnindex` files, by segment base offset.
    files: BTreeMap<i64, Arc<dyn StorageFile>>,
    /// The segments whose file has writes not yet fsynced.
    dirty: BTreeSet<i64>,
    /// The segments whose file the open could not rebuild, or an abort's
    /// entry could not be appended to (a full disk): rewritten whole from
    /// `aborted` before the recovery point passes them.
    stale: BTreeSet<i64>,
}

impl TxnState {
    fn first_unstable_offset(&self) -> i64 {
        let unreplicated = self.unreplicated.iter().map(|(first, _)| *first).min();
        unreplicated.unwrap_or(i64::MAX).min(self.first_ongoing)
    }
}

impl Transactions {
    /// The state of a log just opened: every transaction is replicated
    /// (the high watermark starts at the log end offset).
    pub fn new(producers: &ProducerStateManager, indexes: LoadedIndexes) -> Transactions {
        debug_assert_eq!(indexes.rebuild.from(), i64::MAX, "the rebuild is finished");
        let state = TxnState {
            aborted: indexes.entries,
            unreplicated: Vec::new(),
            first_ongoing: producers.first_ongoing_offset().unwrap_or(i64::MAX),
            files: indexes.files,
            dirty: BTreeSet::new(),
            stale: indexes.stale,
        };
        Transactions {
            first_unstable_offset: AtomicI64::new(state.first_unstable_offset()),
            state: Mutex::new(state),
        }
    }

    /// No transactions: the state of a log that could not be opened.
    pub fn none() -> Transactions {
        let state = TxnState {
            first_ongoing: i64::MAX,
            ..TxnState::default()
        };
        Transactions {
            first_unstable_offset: AtomicI64::new(state.first_unstable_offset()),
            state: Mutex::new(state),
        }
    }

    fn publish(&self, state: &TxnState) {
        self.first_unstable_offset
            .store(state.first_unstable_offset(), Ordering::Release);
    }
}

impl Log {
    /// Kafka's last stable offset: the high watermark, or the first offset
    /// of the earliest transaction still open (or whose marker is not yet
    /// below the high watermark) if that is lower. A read_committed fetch
    /// reads up to here.
    pub fn last_stable_offset(&self) -> i64 {
        let first_unstable = self.transactions.first_unstable_offset.load(Ordering::Acquire);
        self.high_watermark().min(first_unstable.max(self.log_start_offset()))
    }

    /// The aborted transactions a read_committed fetch from `start_offset`
    /// up to `upper_offset` (exclusive, e.g. the last stable offset) must
    /// report: those whose [first offset, last offset] overlaps the range,
    /// ordered by first offset (Kafka's `collectAbortedTransactions`).
    pub fn aborted_transactions(&self, start_offset: i64, upper_offset: i64) -> Result<Vec<AbortedTransaction>> {
        if upper_offset <= start_offset {
            return Ok(Vec::new());
        }
        let state = lock(&self.transactions.state);
        let from = state.aborted.partition_point(|e| e.txn.last_offset < start_offset);
        let mut found = Vec::new();
        for entry in &state.aborted[from..] {
            if entry.txn.first_offset < upper_offset {
                found.push(entry.txn);
            }
            // Every transaction aborted later started at or after this
            // entry's last stable offset (Kafka's `isComplete`).
            if entry.last_stable_offset >= upper_offset {
                break;
            }
        }
        drop(state);
        found.sort_by_key(|t| (t.first_offset, t.last_offset));
        Ok(found)
    }

    /// Appends an end transaction marker for `producer_id` (what Kafka's
    /// WriteTxnMarkers writes): a control batch with the producer's id and
    /// epoch, no sequence, and one record whose key gives the type (commit
    /// or abort) and whose value the coordinator epoch. It closes the
    /// producer's open transaction; an abort records the transaction as
    /// aborted. A marker with an older producer epoch than the producer's
    /// is refused (InvalidProducerEpoch); a producer with no open
    /// transaction still gets its marker, as in Kafka.
    pub fn append_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        if producer_id < 0 {
            return Err(LogError::InvalidRecord(format!(
                "an end transaction marker needs a producer id, not {producer_id}"
            )));
        }
        let marker = EndTxnMarker {
            commit,
            coordinator_epoch,
        };
        let bytes = encode_end_txn_marker(producer_id, producer_epoch, marker, now_ms);
        self.append_batches(&bytes, leader_epoch, now_ms, AppendOrigin::Coordinator)
    }

    /// [`Log::append`] for the broker's own coordinator writes (Kafka's
    /// `AppendOrigin.COORDINATOR`): batches with a producer id and epoch
    /// but no sequence (-1) are accepted without sequence checks (the epoch
    /// check still applies), and a transactional one opens the producer's
    /// transaction, e.g. a transactional offset commit in
    /// `__consumer_offsets`, which a marker ends later.
    pub fn append_internal(&self, batches: &[u8], leader_epoch: i32, now_ms: i64) -> Result<AppendInfo> {
        self.append_batches(batches, leader_epoch, now_ms, AppendOrigin::Coordinator)
    }

    /// Called by the append path under the append lock, after the
    /// producer state took the append (written to the segment at
    /// `segment_base`) and before the log end offset moves: records the
    /// transactions its markers completed and the new first unstable
    /// offset. An error leaves the in-memory state as it was.
    pub(crate) fn record_transactions(
        &self,
        producers: &mut ProducerStateManager,
        buf: &[u8],
        batches: &[ValidatedBatch],
        segment_base: i64,
    ) -> io::Result<()> {
        let transactional = |b: &ValidatedBatch| b.attributes & (TRANSACTIONAL_MASK | CONTROL_MASK) != 0;
        if producers.completed().is_empty() && !batches.iter().any(transactional) {
            return Ok(());
        }
        let first_ongoing = producers.first_ongoing_offset().unwrap_or(i64::MAX);
        let mut state = lock(&self.transactions.state);
        // Read under the state lock: see `on_high_watermark`.
        let high_watermark = self.high_watermark();
        let mut unreplicated = Vec::new();
        let mut aborted = Vec::new();
        for i in 0..producers.completed().len() {
            let completed = producers.completed()[i];
            let b = &batches[completed.batch_index];
            let marker = parse_end_txn_marker(&buf[b.start..b.start + b.size]);
            if let Some(marker) = marker {
                producers.set_coordinator_epoch(completed.producer_id, marker.coordinator_epoch);
            }
            let Some(first_offset) = completed.first_offset else {
                continue;
            };
            if completed.marker_offset >= high_watermark {
                unreplicated.push((first_offset, completed.marker_offset));
            }
            if marker.is_some_and(|m| !m.commit) {
                // Transactions closed later in this append were still open
                // at this marker.
                let later = producers.completed()[i + 1..]
                    .iter()
                    .filter_map(|c| c.first_offset)
                    .min()
                    .unwrap_or(i64::MAX);
                let last_stable_offset = first_ongoing.min(later).min(completed.marker_offset + 1);
                aborted.push(AbortedTxnEntry {
                    txn: AbortedTransaction {
                        producer_id: completed.producer_id,
                        first_offset,
                        last_offset: completed.marker_offset,
                    },
                    last_stable_offset,
                });
            }
        }
        if !aborted.is_empty() {
            match self.write_index_entries(&mut state, segment_base, &aborted) {
                // The marker is in the segment already and cannot be taken
                // back; the entries in memory answer fetches, and the file
                // (derived data, rebuilt by recovery) is rewritten from them
                // once space returns, before the recovery point passes it.
                Err(error) if storage::is_out_of_space(&error) => {
                    state.stale.insert(segment_base);
                }
                other => other?,
            }
        }
        state.aborted.extend_from_slice(&aborted);
        state.unreplicated.extend_from_slice(&unreplicated);
        state.first_ongoing = first_ongoing;
        self.transactions.publish(&state);
        Ok(())
    }

    /// Appends entries to a segment's `.txnindex`, creating it on the
    /// segment's first abort (the directory entry is fsynced by the next
    /// group commit, before the data that needs it).
    fn write_index_entries(
        &self,
        state: &mut TxnState,
        segment_base: i64,
        entries: &[AbortedTxnEntry],
    ) -> io::Result<()> {
        let file = match state.files.get(&segment_base) {
            Some(file) => file.clone(),
            None => {
                let path = transaction_index::path(&self.dir, segment_base);
                let file = self.storage.open(&path, true)?;
                // Left over from an earlier segment at this offset.
                file.set_len(0)?;
                self.dir_dirty.store(true, Ordering::Release);
                state.files.insert(segment_base, file.clone());
                file
            }
        };
        let mut bytes = Vec::with_capacity(entries.len() * transaction_index::ENTRY_SIZE);
        for entry in entries {
            transaction_index::encode(entry, &mut bytes);
        }
        file.append(&bytes)?;
        state.dirty.insert(segment_base);
        Ok(())
    }

    /// Fsyncs the `.txnindex` files of the segments below `offset` (the
    /// recovery point about to be written), outside the append lock; those
    /// an open left stale are rewritten whole first.
    pub(crate) fn sync_transaction_indexes(&self, offset: i64) -> io::Result<()> {
        self.rewrite_stale_transaction_indexes(offset)?;
        let files: Vec<Arc<dyn StorageFile>> = {
            let mut state = lock(&self.transactions.state);
            let bases: Vec<i64> = state.dirty.range(..offset).copied().collect();
            bases
                .iter()
                .filter_map(|base| {
                    state.dirty.remove(base);
                    state.files.get(base).cloned()
                })
                .collect()
        };
        for file in files {
            file.sync()?;
        }
        Ok(())
    }

    /// Rewrites the stale `.txnindex` files of the segments below `offset`
    /// from the entries in memory. Under the state lock, so that no entry
    /// is appended to a file being replaced; this happens only after an
    /// open or an abort that found the disk full.
    fn rewrite_stale_transaction_indexes(&self, offset: i64) -> io::Result<()> {
        let segments = self.segments();
        let mut state = lock(&self.transactions.state);
        if state.stale.range(..offset).next().is_none() {
            return Ok(());
        }
        let stale: Vec<i64> = state.stale.range(..offset).copied().collect();
        for base in stale {
            let Some(at) = segments.iter().position(|s| s.base_offset == base) else {
                // Its segment left the log.
                state.stale.remove(&base);
                continue;
            };
            let end = segments.get(at + 1).map_or(i64::MAX, |s| s.base_offset);
            let mut bytes = Vec::new();
            for entry in state
                .aborted
                .iter()
                .filter(|e| (base..end).contains(&e.txn.last_offset))
            {
                transaction_index::encode(entry, &mut bytes);
            }
            match transaction_index::rewrite(self.storage.as_ref(), &self.dir, base, &bytes)? {
                Some(file) => state.files.insert(base, file),
                None => state.files.remove(&base),
            };
            state.stale.remove(&base);
            state.dirty.remove(&base);
            self.storage.sync_dir(&self.dir)?;
        }
        Ok(())
    }

    /// Called after the high watermark moved: transactions whose marker it
    /// passed are stable. The high watermark is stored before this takes
    /// the state lock and read by `record_transactions` under it, so no
    /// completed transaction is left unstable below it.
    pub(crate) fn on_high_watermark(&self) {
        let mut state = lock(&self.transactions.state);
        if state.unreplicated.is_empty() {
            return;
        }
        let high_watermark = self.high_watermark();
        state.unreplicated.retain(|(_, marker)| *marker >= high_watermark);
        self.transactions.publish(&state);
    }

    /// Called once the cleaner swapped `cleaned` in for the segments that
    /// covered [its base offset, `end`): their `.txnindex` files went with
    /// them but the first's. The aborted transactions whose marker the
    /// cleaning removed (Kafka removes a marker once its transaction has
    /// no data left, after `delete.retention.ms`) are forgotten: a
    /// read_committed consumer skips a producer's transactional batches
    /// from an aborted transaction's first offset until that producer's
    /// abort marker, so an entry without its marker would hide the
    /// producer's later transactions. The others stay, in the cleaned
    /// segment's file, rewritten whole.
    pub(crate) fn on_segments_cleaned(&self, cleaned: &Segment, end: i64) -> io::Result<()> {
        let base = cleaned.base_offset;
        let mut markers = BTreeSet::new();
        let mut scanner = HeaderScanner::new(cleaned.log.as_ref(), 0, cleaned.size());
        while let Some(batch) = scanner.next_batch()? {
            if batch.header.is_control() && batch.header.producer_id >= 0 {
                markers.insert(batch.header.base_offset);
            }
        }
        // The cleaner never touches the active segment, so nothing appends
        // to these files meanwhile: their I/O runs outside the state lock.
        let bytes = {
            let mut state = lock(&self.transactions.state);
            let in_group = |e: &AbortedTxnEntry| (base..end).contains(&e.txn.last_offset);
            state
                .aborted
                .retain(|e| !in_group(e) || markers.contains(&e.txn.last_offset));
            let mut bytes = Vec::new();
            for entry in state.aborted.iter().filter(|e| in_group(e)) {
                transaction_index::encode(entry, &mut bytes);
            }
            let group: Vec<i64> = state.files.range(base..end).map(|(b, _)| *b).collect();
            for b in group {
                state.files.remove(&b);
                state.dirty.remove(&b);
            }
            // The cleaned segment's file is rewritten whole below.
            let stale: Vec<i64> = state.stale.range(base..end).copied().collect();
            for b in stale {
                state.stale.remove(&b);
            }
            bytes
        };
        let path = transaction_index::path(&self.dir, base);
        if bytes.is_empty() {
            if self.storage.exists(&path) {
                self.storage.remove_file(&path)?;
                self.storage.sync_dir(&self.dir)?;
            }
        } else {
            storage::write_atomically(self.storage.as_ref(), &path, &bytes)?;
            let file = self.storage.open(&path, false)?;
            lock(&self.transactions.state).files.insert(base, file);
        }
        Ok(())
    }

    /// Forgets the aborted transactions and index files of the segments
    /// below `first_base`, which were deleted with their files.
    pub(crate) fn forget_aborted_below(&self, first_base: i64) {
        let mut state = lock(&self.transactions.state);
        let below = state.aborted.partition_point(|e| e.txn.last_offset < first_base);
        state.aborted.drain(..below);
        state.files = state.files.split_off(&first_base);
        state.dirty = state.dirty.split_off(&first_base);
        state.stale = state.stale.split_off(&first_base);
    }
}

fn put_varint(out: &mut Vec<u8>, value: i64) {
    let mut v = ((value << 1) ^ (value >> 63)) as u64;
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The control batch Kafka's `MemoryRecords.withEndTransactionMarker`
/// builds: magic 2, transactional and control, base sequence -1, one
/// record with key (version, type) and value (version, coordinator epoch).
/// Base offset and partition leader epoch are left for the append.
pub(crate) fn encode_end_txn_marker(
    producer_id: i64,
    producer_epoch: i16,
    marker: EndTxnMarker,
    timestamp: i64,
) -> Vec<u8> {
    let control_type = if marker.commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&CONTROL_KEY_VERSION.to_be_bytes());
    key.extend_from_slice(&control_type.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&END_TXN_MARKER_VERSION.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let mut body = Vec::with_capacity(32);
    body.push(0); // attributes
    put_varint(&mut body, 0); // timestamp delta
    put_varint(&mut body, 0); // offset delta
    put_varint(&mut body, key.len() as i64);
    body.extend_from_slice(&key);
    put_varint(&mut body, value.len() as i64);
    body.extend_from_slice(&value);
    put_varint(&mut body, 0); // no headers
    let mut record = Vec::with_capacity(body.len() + 2);
    put_varint(&mut record, body.len() as i64);
    record.extend_from_slice(&body);

    let mut b = Vec::with_capacity(HEADER_SIZE + record.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    b.extend_from_slice(&((HEADER_SIZE - batch::LOG_OVERHEAD + record.len()) as i32).to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // partition leader epoch
    b.push(CURRENT_MAGIC as u8);
    b.extend_from_slice(&0u32.to_be_bytes()); // CRC, below
    b.extend_from_slice(&(TRANSACTIONAL_MASK | CONTROL_MASK).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&timestamp.to_be_bytes()); // base timestamp
    b.extend_from_slice(&timestamp.to_be_bytes()); // max timestamp
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&NO_SEQUENCE.to_be_bytes());
    b.extend_from_slice(&1i32.to_be_bytes()); // records count
    b.extend_from_slice(&record);
    let crc = batch::compute_crc(&b);
    b[batch::CRC..batch::CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// Reads the end transaction marker from a control batch's first record
/// (`bytes` holds at least its header; the record may be cut short, then
/// `None`). `None` too for a compressed batch or a control record that is
/// not a transaction marker (Kafka's other control types).
pub(crate) fn parse_end_txn_marker(bytes: &[u8]) -> Option<EndTxnMarker> {
    if bytes.len() < HEADER_SIZE {
        return None;
    }
    let header = batch::BatchHeader::parse(bytes);
    if !header.is_control() || header.compression_codec() != 0 || header.records_count < 1 {
        return None;
    }
    let records = &bytes[HEADER_SIZE..];
    let mut pos = 0;
    batch::read_varint(records, &mut pos)?; // record length
    pos += 1; // attributes
    batch::read_varlong(records, &mut pos)?; // timestamp delta
    batch::read_varint(records, &mut pos)?; // offset delta
    let key_len = usize::try_from(batch::read_varint(records, &mut pos)?).ok()?;
    let key = records.get(pos..pos.checked_add(key_len)?)?;
    pos += key_len;
    if key.len() < 4 || i16::from_be_bytes([key[0], key[1]]) < 0 {
        return None;
    }
    let commit = match i16::from_be_bytes([key[2], key[3]]) {
        CONTROL_TYPE_ABORT => false,
        CONTROL_TYPE_COMMIT => true,
        _ => return None,
    };
    // The value: version (int16), coordinator epoch (int32).
    let value_len = batch::read_varint(records, &mut pos)?;
    let coordinator_epoch = match usize::try_from(value_len) {
        Ok(len) if len >= 6 => {
            let value = records.get(pos..pos + 6)?;
            i32::from_be_bytes(value[2..6].try_into().expect("4 bytes"))
        }
        _ => -1,
    };
    Some(EndTxnMarker {
        commit,
        coordinator_epoch,
    })
}

/// How many bytes of a control batch [`parse_end_txn_marker`] needs: the
/// header and a marker record with room to spare.
pub(crate) const MARKER_READ_BYTES: usize = HEADER_SIZE + 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_encode_as_kafka_control_batches_and_parse_back() {
        let marker = EndTxnMarker {
            commit: false,
            coordinator_epoch: 7,
        };
        let b = encode_end_txn_marker(42, 3, marker, 1_700_000_000_000);
        let h = batch::BatchHeader::parse(&b);
        assert_eq!(h.size() as usize, b.len());
        assert_eq!(h.framing_error(b.len()), None);
        assert_eq!(h.crc, batch::compute_crc(&b));
        assert_eq!(h.attributes, 0x30);
        assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (42, 3, -1));
        assert_eq!((h.records_count, h.last_offset_delta), (1, 0));
        // length 16, attributes, deltas, key (4 bytes), value (6 bytes), no headers
        assert_eq!(
            &b[HEADER_SIZE..],
            &[32, 0, 0, 0, 8, 0, 0, 0, 0, 12, 0, 0, 0, 0, 0, 7, 0]
        );
        assert_eq!(parse_end_txn_marker(&b), Some(marker));
        let commit = EndTxnMarker {
            commit: true,
            coordinator_epoch: -1,
        };
        assert_eq!(
            parse_end_txn_marker(&encode_end_txn_marker(1, 0, commit, 0)),
            Some(commit)
        );
        assert_eq!(parse_end_txn_marker(&b[..HEADER_SIZE + 5]), None, "cut short");
    }

    #[test]
    fn unknown_control_types_are_not_markers() {
        let mut b = encode_end_txn_marker(
            1,
            0,
            EndTxnMarker {
                commit: true,
                coordinator_epoch: 0,
            },
            0,
        );
        b[HEADER_SIZE + 8] = 3; // a snapshot header's control type
        assert_eq!(parse_end_txn_marker(&b), None);
    }
}
