//! Opening a partition directory (Kafka's `LogLoader`): find the segments,
//! trust those below the recovery point (after sanity-checking their
//! indexes), and recover the rest: scan every batch, verify framing, CRC,
//! dense offsets and leader epochs, rebuild the indexes, and truncate at the
//! first batch that fails (a torn or corrupt tail), deleting any later
//! segments. A clean shutdown marker means nothing needs recovering.
//!
//! A full disk does not stop an open. Truncating a torn tail and deleting
//! files need no space; what does (the leader epoch checkpoint, the rebuilt
//! indexes and `.txnindex` files, the recovery point) only spares the next
//! open work, so it waits for space, as it does in the running log: the
//! recovery point the log starts with stays below whatever is not written
//! yet, and the epoch checkpoint is written before the next append.

use std::collections::BTreeSet;
use std::io;
use std::path::Path;
use std::sync::Arc;

use crate::batch::{self, BatchHeader, HEADER_SIZE, NO_TIMESTAMP};
use crate::checkpoint::{self, CLEAN_SHUTDOWN_FILE, LOG_START_OFFSET_FILE, LeaderEpochCache, RECOVERY_POINT_FILE};
use crate::offset_index::OffsetIndex;
use crate::scan::HeaderScanner;
use crate::segment::{self, IndexingState, Segment};
use crate::storage::{IndexFile, Storage, StorageFile, is_out_of_space};
use crate::time_index::TimeIndex;
use crate::{LogConfig, TimestampOffset};

/// Recovery reads segments in blocks this large.
const RECOVERY_READ_BYTES: usize = 1 << 20;

pub(crate) struct Loaded {
    pub segments: Vec<Arc<Segment>>,
    pub log_start_offset: i64,
    /// The recovery point after recovery (the log end offset). When
    /// `recovery_point_dirty`, the caller writes it once the state rebuilt
    /// from the recovered segments (their `.txnindex` files) is durable.
    pub recovery_point: i64,
    pub recovery_point_dirty: bool,
    /// The base offset of the first segment recovery scanned, if any.
    pub recovered_from: Option<i64>,
    /// The recovery point checkpoint as read (`None`: missing or unreadable).
    pub checkpointed_recovery_point: Option<i64>,
    /// The segments whose rebuilt indexes found the disk full: the recovery
    /// point must stay below them until they are written.
    pub unflushed_indexes: BTreeSet<i64>,
    pub epochs: LeaderEpochCache,
    /// The leader epoch checkpoint on disk is not `epochs` (the disk was
    /// full): it must be written before the next append.
    pub epochs_unwritten: bool,
    /// The first write that found the disk full, if any.
    pub out_of_space: Option<io::Error>,
    pub active_state: IndexingState,
}

/// A checkpoint that cannot be read is treated as absent: recovery then
/// does more work, never less.
fn or_absent<T>(result: io::Result<Option<T>>, what: &str) -> Option<T> {
    result.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "ignoring unreadable {what}");
        None
    })
}

/// Loads and recovers the log in `dir`; with `sync_dir`, its directory's
/// changes are made durable before returning (else the caller does).
pub(crate) fn load(
    shared: &Arc<dyn Storage>,
    dir: &Path,
    config: &LogConfig,
    now_ms: i64,
    sync_dir: bool,
) -> io::Result<Loaded> {
    let storage = shared.as_ref();
    let created = !storage.exists(dir);
    storage.create_dir_all(dir)?;
    // A cleaning interrupted by a crash is finished or dropped first; the
    // segments it swapped in get their indexes rebuilt below.
    let swapped = crate::cleaner::swap::complete_interrupted(storage, dir)?;
    let clean_shutdown = storage.exists(&dir.join(CLEAN_SHUTDOWN_FILE));
    let names = storage.list_dir(dir)?;
    let mut bases: Vec<i64> = names
        .iter()
        .filter_map(|n| segment::parse_file_name(n, "log"))
        .collect();
    bases.sort_unstable();
    // `.deleted` files are retired segments and snapshots that were waiting
    // for `file.delete.delay.ms` when the broker stopped: no reader is left,
    // so they go now, as Kafka's `LogLoader` deletes them.
    for name in &names {
        let orphan_index = ["index", "timeindex", crate::transaction_index::EXTENSION]
            .iter()
            .filter_map(|ext| segment::parse_file_name(name, ext))
            .any(|base| bases.binary_search(&base).is_err());
        if orphan_index || name.ends_with(".tmp") || name.ends_with(crate::deletion::DELETED_SUFFIX) {
            storage.remove_file(&dir.join(name))?;
        }
    }

    let cleaned_below = or_absent(
        checkpoint::read_offset(storage, dir, crate::cleaner::CLEANER_CHECKPOINT_FILE),
        "cleaner checkpoint",
    )
    .unwrap_or(i64::MIN);
    let checkpointed_log_start = or_absent(
        checkpoint::read_offset(storage, dir, LOG_START_OFFSET_FILE),
        "log start",
    );
    let checkpointed_recovery_point = or_absent(
        checkpoint::read_offset(storage, dir, RECOVERY_POINT_FILE),
        "recovery point",
    );
    let recovery_point = if clean_shutdown {
        i64::MAX
    } else {
        checkpointed_recovery_point.unwrap_or(0)
    };
    let (mut epochs, epochs_trusted) = match LeaderEpochCache::read(storage, dir) {
        Ok(Some(cache)) => (cache, true),
        Ok(None) => (LeaderEpochCache::default(), bases.is_empty()),
        Err(e) => {
            tracing::warn!(error = %e, "rebuilding an unreadable leader epoch checkpoint from recovered batches");
            (LeaderEpochCache::default(), false)
        }
    };
    // A trusted cache says exactly which epoch each batch carries.
    let trusted_epochs = epochs_trusted.then(|| epochs.clone());

    let mut segments: Vec<Arc<Segment>> = Vec::new();
    let mut recovered: Vec<Arc<Segment>> = Vec::new();
    // The writer's indexing state for the last segment, when recovery built it.
    let mut active_state: Option<IndexingState> = None;
    let mut last_epoch = -1;
    let mut prev_allowed_gaps = false;
    for (i, &base) in bases.iter().enumerate() {
        let next_base = bases.get(i + 1).copied();
        let log = storage.open(&segment::segment_path(dir, base, "log"), false)?;
        let index_file = IndexFile::new(shared, segment::segment_path(dir, base, "index"));
        let time_index_file = IndexFile::new(shared, segment::segment_path(dir, base, "timeindex"));
        let flushed =
            (next_base.is_some_and(|next| next <= recovery_point) || clean_shutdown) && !swapped.contains(&base);
        // Offset gaps are compaction's, in segments the cleaner wrote: below
        // the recovery point (it flushes first), swapped in just now, or
        // below its checkpoint. Elsewhere a gap is damage.
        let allow_gaps = flushed || swapped.contains(&base) || base < cleaned_below;
        let trusted = if flushed {
            load_flushed(
                base,
                &log,
                index_file.clone(),
                time_index_file.clone(),
                config.segment_index_bytes,
            )?
        } else {
            None
        };
        let (segment, truncated) = match trusted {
            Some(segment) => {
                active_state = None;
                (segment, false)
            }
            None => {
                let recovery = SegmentRecovery {
                    base,
                    config,
                    now_ms,
                    trusted_epochs: trusted_epochs.as_ref(),
                    allow_gaps,
                };
                let (segment, state, truncated) =
                    recovery.run(log, index_file, time_index_file, &mut epochs, &mut last_epoch)?;
                active_state = Some(state);
                (segment, truncated)
            }
        };
        let segment = Arc::new(segment);
        if !flushed || truncated {
            recovered.push(segment.clone());
        }
        // A segment that does not continue its predecessor (e.g. a truncated
        // predecessor) cannot be part of the log.
        let continues = segments
            .last()
            .is_none_or(|prev| prev.next_offset() == base || (prev_allowed_gaps && prev.next_offset() < base));
        prev_allowed_gaps = allow_gaps;
        if !continues {
            tracing::warn!(base_offset = base, "deleting a segment that does not continue the log");
            segment::delete_segment_files(storage, dir, base)?;
            for &later in &bases[i + 1..] {
                segment::delete_segment_files(storage, dir, later)?;
            }
            break;
        }
        segments.push(segment);
        if truncated {
            tracing::warn!(
                base_offset = base,
                "truncated a torn or corrupt tail; deleting later segments"
            );
            for &later in &bases[i + 1..] {
                segment::delete_segment_files(storage, dir, later)?;
            }
            break;
        }
    }

    let mut log_start_offset = checkpointed_log_start.unwrap_or(0);
    let log_end_offset = segments.last().map(|s| s.next_offset());
    if log_end_offset.is_none_or(|end| log_start_offset > end) {
        // Nothing, or less than the log start offset, survived: start afresh
        // there so offsets never go backwards (Kafka's truncateFullyAndStartAt).
        for s in segments.drain(..) {
            s.delete_files(storage, dir)?;
        }
        segments.push(Arc::new(Segment::create(
            shared,
            dir,
            log_start_offset,
            config.segment_index_bytes,
        )?));
        active_state = Some(IndexingState::new(now_ms));
        recovered.clear();
    }
    log_start_offset = log_start_offset.max(segments[0].base_offset);
    while segments.len() > 1 && segments[1].base_offset <= log_start_offset {
        segments.remove(0).delete_files(storage, dir)?;
    }
    let active = segments.last().expect("the log always has an active segment");
    let log_end_offset = active.next_offset();
    let active_state = match active_state {
        Some(state) => state,
        None => IndexingState {
            rolling_based_timestamp: first_batch_timestamp(active)?,
            ..IndexingState::new(now_ms)
        },
    };

    let mut out_of_space = None;
    let epochs_changed = epochs.truncate_from_end(log_end_offset);
    let mut epochs_unwritten = false;
    if epochs_changed || !epochs_trusted || !storage.exists(&dir.join(checkpoint::LEADER_EPOCH_FILE)) {
        // Left as it was, the checkpoint may name epochs from offsets that
        // recovery cut off; the append path writes it before any batch
        // could land there.
        epochs_unwritten = deferred_for_space(epochs.write(storage, dir), &mut out_of_space)?;
    }
    // Make the recovered state (truncations, rebuilt indexes) durable so the
    // next crash does not redo this work. After a clean shutdown only the
    // segments a finished swap put in place were recovered. The data must
    // be durable (the log serves it as such, and truncation needs no
    // space); the indexes wait for space if they must.
    let mut unflushed_indexes = BTreeSet::new();
    for segment in recovered
        .iter()
        .filter(|s| !clean_shutdown || swapped.contains(&s.base_offset))
    {
        segment.log.sync()?;
        if deferred_for_space(segment.flush_indexes(), &mut out_of_space)? {
            unflushed_indexes.insert(segment.base_offset);
        }
    }
    if clean_shutdown {
        storage.remove_file(&dir.join(CLEAN_SHUTDOWN_FILE))?;
    }
    if sync_dir {
        storage.sync_dir(dir)?;
        // A new log's directory is an entry of its parent: without this
        // sync a machine crash could take the whole log, acknowledged
        // appends and all.
        if created && let Some(parent) = dir.parent() {
            storage.sync_dir(parent)?;
        }
    }
    Ok(Loaded {
        segments,
        log_start_offset,
        recovery_point: log_end_offset,
        recovery_point_dirty: !clean_shutdown,
        recovered_from: recovered.iter().map(|s| s.base_offset).min(),
        checkpointed_recovery_point,
        unflushed_indexes,
        epochs,
        epochs_unwritten,
        out_of_space,
        active_state,
    })
}

/// A write of the open that found the disk full is put off: returns
/// whether it was, keeping the first such error in `out_of_space`. Any
/// other failure fails the open.
pub(crate) fn deferred_for_space(result: io::Result<()>, out_of_space: &mut Option<io::Error>) -> io::Result<bool> {
    match result {
        Ok(()) => Ok(false),
        Err(error) if is_out_of_space(&error) => {
            out_of_space.get_or_insert(error);
            Ok(true)
        }
        Err(error) => Err(error),
    }
}

/// The recovery point a log opens with, written to its checkpoint when the
/// open recovered segments. The log end offset, unless some of the state
/// recovered from the segments (their indexes, their `.txnindex` files
/// `stale_transaction_indexes`) or the checkpoint itself could not be
/// written for want of space: then the recovery point stays below that
/// state, so the running log writes it before moving the recovery point
/// past it (Kafka's recovery point likewise never passes unflushed
/// segments).
///
/// The checkpoint file that could not be rewritten keeps its old value,
/// which stays true: every segment it lets the next open trust holds the
/// same bytes as at that value's writing, its indexes prefixes of the
/// right ones (the time index flushed first), its `.txnindex` file
/// rewritten whole or not at all. Unless it lies past the log end (recovery
/// cut off data below it, which only damage does): then segments appended
/// from here would pass for flushed before they are, so it is removed
/// (removing needs no space), and the next open recovers everything.
pub(crate) fn settle_recovery_point(
    storage: &dyn Storage,
    dir: &Path,
    loaded: &Loaded,
    stale_transaction_indexes: &BTreeSet<i64>,
    out_of_space: &mut Option<io::Error>,
) -> io::Result<i64> {
    let log_end_offset = loaded.recovery_point;
    let unwritten = loaded
        .unflushed_indexes
        .iter()
        .chain(stale_transaction_indexes)
        .min()
        .copied();
    if unwritten.is_none() {
        if !loaded.recovery_point_dirty {
            return Ok(log_end_offset);
        }
        let written = checkpoint::write_offset(storage, dir, RECOVERY_POINT_FILE, log_end_offset);
        if !deferred_for_space(written, out_of_space)? {
            return Ok(log_end_offset);
        }
    }
    let on_disk = match loaded.checkpointed_recovery_point {
        Some(offset) if offset > log_end_offset => {
            tracing::warn!(
                dir = %dir.display(),
                recovery_point = offset,
                log_end_offset,
                "removing a recovery point past the recovered log end that the full disk keeps from being rewritten"
            );
            storage.remove_file(&dir.join(RECOVERY_POINT_FILE))?;
            storage.sync_dir(dir)?;
            0
        }
        Some(offset) => offset,
        None => 0,
    };
    Ok(log_end_offset.min(on_disk).min(unwritten.unwrap_or(i64::MAX)))
}

/// The first batch's max timestamp, from which `segment.ms` counts.
fn first_batch_timestamp(segment: &Segment) -> io::Result<Option<i64>> {
    let mut scanner = HeaderScanner::new(segment.log.as_ref(), 0, segment.size());
    Ok(scanner
        .next_batch()?
        .map(|b| b.header.max_timestamp)
        .filter(|t| *t >= 0))
}

/// Loads a segment below the recovery point, trusting its data. Its indexes
/// must pass the sanity checks, and the batches after the last index entry
/// (scanned to find the segment's end) must be well-formed; `None` sends the
/// segment to recovery instead.
fn load_flushed(
    base: i64,
    log: &Arc<dyn StorageFile>,
    index_file: IndexFile,
    time_index_file: IndexFile,
    index_bytes: u64,
) -> io::Result<Option<Segment>> {
    let size = log.len();
    let Some(offset_index) = OffsetIndex::load(index_file, base, index_bytes, size)? else {
        return Ok(None);
    };
    let (indexed_offset, position) = offset_index.last_entry().unwrap_or((base, 0));
    let mut scanner = HeaderScanner::new(log.as_ref(), position, size);
    let mut next_offset = base;
    let mut tail_max: Option<TimestampOffset> = None;
    loop {
        let batch = match scanner.next_batch() {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(None),
            Err(e) => return Err(e),
        };
        let h = batch.header;
        let expected = if batch.position == position && position > 0 {
            h.base_offset
        } else {
            next_offset
        };
        // Flushed segments may hold compaction's offset gaps.
        if h.base_offset < expected || (batch.position == position && position > 0 && h.last_offset() != indexed_offset)
        {
            return Ok(None);
        }
        if h.max_timestamp > tail_max.map_or(NO_TIMESTAMP, |m| m.timestamp) {
            tail_max = Some(TimestampOffset {
                timestamp: h.max_timestamp,
                offset: h.base_offset,
            });
        }
        next_offset = h.next_offset();
    }
    let Some(time_index) = TimeIndex::load(time_index_file, base, index_bytes, next_offset)? else {
        return Ok(None);
    };
    let indexed_max = time_index
        .last_entry()
        .map(|(timestamp, offset)| TimestampOffset { timestamp, offset });
    let max = match (indexed_max, tail_max) {
        (Some(i), Some(t)) if t.timestamp > i.timestamp => Some(t),
        (Some(i), _) => Some(i),
        (None, t) => t,
    };
    Ok(Some(Segment::new(
        base,
        log.clone(),
        offset_index,
        time_index,
        next_offset,
        max,
    )))
}

struct SegmentRecovery<'a> {
    base: i64,
    config: &'a LogConfig,
    now_ms: i64,
    /// The leader epoch checkpoint as read, when readable: it names every
    /// epoch before any batch carries it (and is fsynced before such a batch
    /// is), so each recovered batch must carry exactly the epoch it gives.
    trusted_epochs: Option<&'a LeaderEpochCache>,
    /// Batches may skip offsets and hold fewer records than their offset
    /// range (the cleaner's output).
    allow_gaps: bool,
}

/// Sequential block reads over a segment file.
struct BlockReader<'a> {
    file: &'a dyn StorageFile,
    size: u64,
    buf: Vec<u8>,
    start: u64,
}

impl BlockReader<'_> {
    /// The bytes [position, position + len), or `None` past the end of file.
    fn bytes(&mut self, position: u64, len: usize) -> io::Result<Option<&[u8]>> {
        if position + len as u64 > self.size {
            return Ok(None);
        }
        let cached = position >= self.start && position + len as u64 <= self.start + self.buf.len() as u64;
        if !cached {
            let read = (len.max(RECOVERY_READ_BYTES) as u64).min(self.size - position) as usize;
            self.buf.resize(read, 0);
            self.file.read_exact_at(&mut self.buf, position)?;
            self.start = position;
        }
        let at = (position - self.start) as usize;
        Ok(Some(&self.buf[at..at + len]))
    }
}

impl SegmentRecovery<'_> {
    /// Scans and validates every batch, rebuilding indexes; truncates the
    /// log file at the first invalid one. Returns the segment, the writer's
    /// indexing state for it, and whether it was truncated.
    fn run(
        &self,
        log: Arc<dyn StorageFile>,
        index_file: IndexFile,
        time_index_file: IndexFile,
        epochs: &mut LeaderEpochCache,
        last_epoch: &mut i32,
    ) -> io::Result<(Segment, IndexingState, bool)> {
        let index_bytes = self.config.segment_index_bytes;
        let offset_index = OffsetIndex::create(index_file, self.base, index_bytes)?;
        let time_index = TimeIndex::create(time_index_file, self.base, index_bytes)?;
        let size = log.len();
        let segment = Segment::new(self.base, log.clone(), offset_index, time_index, self.base, None);
        let mut state = IndexingState::new(self.now_ms);
        let mut max = TimestampOffset {
            timestamp: NO_TIMESTAMP,
            offset: -1,
        };
        let mut reader = BlockReader {
            file: log.as_ref(),
            size,
            buf: Vec::new(),
            start: 0,
        };
        let mut position = 0u64;
        let mut next_offset = self.base;
        while position < size {
            let Some(header_bytes) = reader.bytes(position, HEADER_SIZE)? else {
                break;
            };
            let h = BatchHeader::parse(header_bytes);
            if let Some(why) = h.framing_error((size - position) as usize) {
                tracing::warn!(base_offset = self.base, position, "recovery stops: {why}");
                break;
            }
            let batch_bytes = reader
                .bytes(position, h.size() as usize)?
                .expect("framing checked the size");
            if let Some(why) = self.invalid_batch(batch_bytes, &h, next_offset, *last_epoch) {
                tracing::warn!(base_offset = self.base, position, "recovery stops: {why}");
                break;
            }
            *last_epoch = h.partition_leader_epoch;
            epochs.assign(h.partition_leader_epoch, h.base_offset);
            let interval = self.config.index_interval_bytes;
            let batch_size = h.size() as u64;
            segment.index_batch(
                position,
                h.base_offset,
                h.last_offset(),
                h.max_timestamp,
                batch_size,
                &mut max,
                &mut state,
                interval,
            );
            position += batch_size;
            next_offset = h.next_offset();
        }
        let truncated = position < size;
        if truncated {
            log.set_len(position)?;
        }
        segment.publish(position, next_offset, max);
        Ok((segment, state, truncated))
    }

    /// Why a framed batch cannot be part of the log, or `None`. The CRC does
    /// not cover the base offset or the leader epoch, so those are checked
    /// against the log itself: offsets dense, and epochs as the checkpoint
    /// says or, without one, never decreasing.
    fn invalid_batch(&self, bytes: &[u8], h: &BatchHeader, next_offset: i64, last_epoch: i32) -> Option<String> {
        let computed = batch::compute_crc(bytes);
        if computed != h.crc {
            return Some(format!(
                "CRC mismatch: stored {:#010x}, computed {computed:#010x}",
                h.crc
            ));
        }
        let gap = self.allow_gaps && h.base_offset > next_offset;
        if h.base_offset != next_offset && !gap {
            return Some(format!(
                "base offset {} where {next_offset} was expected",
                h.base_offset
            ));
        }
        let span = h.last_offset_delta as i64 + 1;
        let count = h.records_count as i64;
        let count_fits = if self.allow_gaps {
            (0..=span).contains(&count)
        } else {
            count > 0 && count == span
        };
        if !count_fits {
            return Some(format!(
                "last offset delta {} with {} records",
                h.last_offset_delta, h.records_count
            ));
        }
        let epoch = h.partition_leader_epoch;
        match self.trusted_epochs {
            Some(epochs) if epochs.epoch_for(h.base_offset) != epoch => Some(format!(
                "leader epoch {epoch} where the checkpoint says {}",
                epochs.epoch_for(h.base_offset)
            )),
            None if epoch < last_epoch => Some(format!("leader epoch {epoch} after {last_epoch}")),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::test_encoder::batch;
    use crate::{Log, LogConfig, SimStorage};

    const NOW: i64 = 1_700_000_000_000;

    /// Appends `count` batches of 300-byte records and syncs them; returns the log end offset.
    fn append_synced(log: &Log, count: usize) -> i64 {
        for i in 0..count {
            let info = log.append(&batch(2, 300, NOW + i as i64), 0, NOW).unwrap();
            log.sync_to(info.last_offset + 1).unwrap();
        }
        log.log_end_offset()
    }

    /// At start the broker opens every log leaving its directory unsynced
    /// (`open_in(.., false)`, as `open_leaving_directory_unsynced` does on
    /// disk), then syncs the file system once before any append. A power
    /// cut before that sync finds each log as it was before the start;
    /// after it, every synced append survives, across segment rolls.
    #[test]
    fn logs_opened_at_start_are_durable_after_one_file_system_sync() {
        let storage = SimStorage::new();
        let config = LogConfig {
            segment_bytes: 2000,
            ..LogConfig::default()
        };
        let (old, new) = (PathBuf::from("/data/t-0"), PathBuf::from("/data/t-1"));
        let open = |dir: &PathBuf, sync_dir| Log::open_in(dir.clone(), config.clone(), storage.clone(), sync_dir);
        let log = open(&old, true).unwrap();
        let before = append_synced(&log, 3);
        log.close().unwrap();

        let (log, created) = (open(&old, false).unwrap(), open(&new, false).unwrap());
        drop((log, created));
        storage.power_cut();
        assert_eq!(
            open(&old, true).unwrap().log_end_offset(),
            before,
            "as before the start"
        );

        let (log, created) = (open(&old, false).unwrap(), open(&new, false).unwrap());
        storage.sync_all();
        let ends = [append_synced(&log, 12), append_synced(&created, 12)];
        assert!(log.segments().len() > 2, "the appends rolled segments");
        drop((log, created));
        storage.power_cut();
        let reopened = [open(&old, true).unwrap(), open(&new, true).unwrap()];
        assert_eq!(reopened.map(|log| log.log_end_offset()), ends);
    }
}
