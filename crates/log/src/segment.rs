//! One log segment: `<base offset>.log` with its `.index` and `.timeindex`
//! (Kafka's `LogSegment`). Thread-safety: one writer (the log's append lock)
//! appends; readers use positional reads bounded by `size`, which the
//! writer publishes only after the bytes are written and indexed.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::batch::NO_TIMESTAMP;
use crate::offset_index::OffsetIndex;
use crate::scan::{HeaderScanner, Located};
use crate::storage::{IndexFile, LazyIndex, Storage, StorageFile};
use crate::time_index::TimeIndex;
use crate::validate::ValidatedBatch;

/// How much a segment takes before its write-back is started. Left to the
/// kernel, data not yet synced (acks=1, or appended while a sync runs)
/// piles up until its periodic write-back sends hundreds of megabytes at
/// once, and an fdatasync issued meanwhile waits behind all of it for
/// seconds (docs/reliability.md, the memory soak). Started every mebibyte,
/// write-back stays small and steady.
const WRITE_BACK_BYTES: u64 = 1 << 20;
use crate::{FileSlice, TimestampOffset};

pub(crate) fn file_name(base_offset: i64, extension: &str) -> String {
    format!("{base_offset:020}.{extension}")
}

/// The base offset a `<20 digits>.<extension>` file name carries.
pub(crate) fn parse_file_name(name: &str, extension: &str) -> Option<i64> {
    let stem = name.strip_suffix(extension)?.strip_suffix('.')?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit())).then(|| stem.parse().ok())?
}

pub(crate) fn segment_path(dir: &Path, base_offset: i64, extension: &str) -> PathBuf {
    dir.join(file_name(base_offset, extension))
}

/// What the writer tracks about the active segment to decide on index
/// entries and rolls (Kafka keeps these in `LogSegment`; here only the
/// append path touches them, under the append lock).
#[derive(Debug, Clone, Copy)]
pub(crate) struct IndexingState {
    pub bytes_since_last_index_entry: u64,
    /// Appended since the segment's write-back was last started.
    pub bytes_since_write_back: u64,
    /// The first batch's max timestamp: `segment.ms` counts from it, as in
    /// Kafka, or from `created_ms` when the segment has no timestamp yet.
    pub rolling_based_timestamp: Option<i64>,
    pub created_ms: i64,
}

impl IndexingState {
    pub fn new(created_ms: i64) -> IndexingState {
        IndexingState {
            bytes_since_last_index_entry: 0,
            bytes_since_write_back: 0,
            rolling_based_timestamp: None,
            created_ms,
        }
    }
}

pub(crate) struct Segment {
    pub base_offset: i64,
    pub log: Arc<dyn StorageFile>,
    pub offset_index: OffsetIndex,
    pub time_index: TimeIndex,
    size: AtomicU64,
    next_offset: AtomicI64,
    /// Kafka's `maxTimestampAndOffsetSoFar`: the largest batch max timestamp
    /// and the base offset of the first batch holding it.
    max_timestamp: Mutex<TimestampOffset>,
}

/// The outcome of reading one segment.
pub(crate) enum SegmentRead {
    Slice(FileSlice),
    /// No batch here reaches the start offset: try the next segment.
    Beyond,
    /// The first batch to return reaches `max_offset`: nothing to return.
    Stop,
}

const NO_MAX_TIMESTAMP: TimestampOffset = TimestampOffset {
    timestamp: NO_TIMESTAMP,
    offset: -1,
};

impl Segment {
    pub fn new(
        base_offset: i64,
        log: Arc<dyn StorageFile>,
        offset_index: OffsetIndex,
        time_index: TimeIndex,
        next_offset: i64,
        max_timestamp: Option<TimestampOffset>,
    ) -> Segment {
        Segment {
            base_offset,
            size: AtomicU64::new(log.len()),
            log,
            offset_index,
            time_index,
            next_offset: AtomicI64::new(next_offset),
            max_timestamp: Mutex::new(max_timestamp.unwrap_or(NO_MAX_TIMESTAMP)),
        }
    }

    /// Creates an empty segment, truncating any files left at its name.
    pub fn create(storage: &Arc<dyn Storage>, dir: &Path, base_offset: i64, index_bytes: u64) -> io::Result<Segment> {
        let log = storage.open(&segment_path(dir, base_offset, "log"), true)?;
        log.set_len(0)?;
        let index_file = |extension| IndexFile::new(storage, segment_path(dir, base_offset, extension));
        let offset_index = OffsetIndex::create(index_file("index"), base_offset, index_bytes)?;
        let time_index = TimeIndex::create(index_file("timeindex"), base_offset, index_bytes)?;
        Ok(Segment::new(
            base_offset,
            log,
            offset_index,
            time_index,
            base_offset,
            None,
        ))
    }

    /// Bytes of whole, indexed batches: readers never look past this.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// The offset after this segment's last batch.
    pub fn next_offset(&self) -> i64 {
        self.next_offset.load(Ordering::Acquire)
    }

    /// The largest batch max timestamp and its batch's base offset, if any
    /// batch carries a timestamp.
    pub fn max_timestamp(&self) -> Option<TimestampOffset> {
        let max = *self.max_timestamp.lock().unwrap_or_else(|e| e.into_inner());
        (max.offset >= 0).then_some(max)
    }

    /// Appends validated batches whose offsets start at `first_offset` (all
    /// in one write of `parts`, their stored bytes in order) and indexes them.
    pub fn append(
        &self,
        parts: &[&[u8]],
        batches: &[ValidatedBatch],
        first_offset: i64,
        state: &mut IndexingState,
        index_interval_bytes: u64,
    ) -> io::Result<()> {
        let position = self.log.append_parts(parts)?;
        debug_assert_eq!(position, self.size());
        let mut max = self.max_timestamp.lock().unwrap_or_else(|e| e.into_inner()).to_owned();
        let mut offset = first_offset;
        for b in batches {
            let last_offset = offset + b.records_count as i64 - 1;
            let at = position + b.start as u64;
            self.index_batch(
                at,
                offset,
                last_offset,
                b.max_timestamp,
                b.size as u64,
                &mut max,
                state,
                index_interval_bytes,
            );
            offset = last_offset + 1;
        }
        let size: u64 = parts.iter().map(|part| part.len() as u64).sum();
        self.publish(position + size, offset, max);
        state.bytes_since_write_back += size;
        if state.bytes_since_write_back >= WRITE_BACK_BYTES {
            let end = position + size;
            self.log.start_write_back(end - state.bytes_since_write_back, end);
            state.bytes_since_write_back = 0;
        }
        Ok(())
    }

    /// Makes batches up to `size` visible to readers. The offset goes
    /// first: a reader that loads the size and then the offset (`read`)
    /// never pairs the new size with the old offset, which would let it
    /// read the new batches as below an offset limit they pass.
    pub fn publish(&self, size: u64, next_offset: i64, max: TimestampOffset) {
        self.next_offset.store(next_offset, Ordering::Release);
        self.size.store(size, Ordering::Release);
        *self.max_timestamp.lock().unwrap_or_else(|e| e.into_inner()) = max;
    }

    /// Kafka's per-batch indexing in `LogSegment.append`: an index entry for
    /// the batch's last offset at its position once more than
    /// `index.interval.bytes` were appended since the previous entry.
    #[allow(clippy::too_many_arguments)]
    pub fn index_batch(
        &self,
        position: u64,
        base_offset: i64,
        last_offset: i64,
        max_timestamp: i64,
        size: u64,
        max: &mut TimestampOffset,
        state: &mut IndexingState,
        index_interval_bytes: u64,
    ) {
        if max_timestamp > max.timestamp {
            *max = TimestampOffset {
                timestamp: max_timestamp,
                offset: base_offset,
            };
        }
        if state.bytes_since_last_index_entry > index_interval_bytes {
            self.offset_index.append(last_offset, position);
            self.time_index.maybe_append(max.timestamp, max.offset);
            state.bytes_since_last_index_entry = 0;
        }
        state.bytes_since_last_index_entry += size;
        if state.rolling_based_timestamp.is_none() && max_timestamp >= 0 {
            state.rolling_based_timestamp = Some(max_timestamp);
        }
    }

    /// Kafka's `onBecomeInactiveSegment`: the time index gets a final entry
    /// for the segment's max timestamp, so that reloading it finds that
    /// maximum without scanning.
    pub fn on_become_inactive(&self) {
        if let Some(max) = self.max_timestamp() {
            self.time_index.maybe_append(max.timestamp, max.offset);
        }
    }

    /// Writes and fsyncs both indexes, the time index first. An open that
    /// trusts the segment takes its max timestamp from the time index and
    /// from a scan of the batches after the offset index's last entry, so
    /// a failure between the two (a full disk) must leave the offset index
    /// behind the time index, never ahead of it.
    pub fn flush_indexes(&self) -> io::Result<()> {
        self.time_index.flush()?;
        self.offset_index.flush()
    }

    /// Writes both indexes in the same order without fsyncs; returns the
    /// files holding entries not yet durable.
    pub fn write_indexes(&self) -> io::Result<Vec<PathBuf>> {
        let mut unsynced = Vec::new();
        if self.time_index.write()? {
            unsynced.push(self.time_index.file().path().to_path_buf());
        }
        if self.offset_index.write()? {
            unsynced.push(self.offset_index.file().path().to_path_buf());
        }
        Ok(unsynced)
    }

    /// Whole batches from the one holding `start_offset`, up to `max_bytes`
    /// (the first batch always whole), before any batch reaching `max_offset`.
    pub fn read(&self, start_offset: i64, max_bytes: usize, max_offset: i64) -> io::Result<SegmentRead> {
        match self.read_from(start_offset, max_bytes, max_offset, true) {
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                tracing::warn!(base_offset = self.base_offset, error = %e, "offset index looks damaged; scanning");
                self.read_from(start_offset, max_bytes, max_offset, false)
            }
            other => other,
        }
    }

    fn read_from(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        use_index: bool,
    ) -> io::Result<SegmentRead> {
        // Loaded before `next_offset`, which `publish` stores first.
        let limit = self.size();
        let lookup = |offset: i64| {
            if use_index {
                self.offset_index.lookup(offset).1
            } else {
                0
            }
        };
        let Some(first) = self.find_batch(lookup(start_offset), limit, start_offset)? else {
            return Ok(SegmentRead::Beyond);
        };
        if first.header.last_offset() >= max_offset {
            return Ok(SegmentRead::Stop);
        }
        let high_watermark_end = if max_offset >= self.next_offset() {
            limit
        } else {
            let from = lookup(max_offset).max(first.position);
            self.find_batch(from, limit, max_offset)?.map_or(limit, |b| b.position)
        };
        let byte_target = first.position.saturating_add(max_bytes as u64);
        let end = if byte_target >= high_watermark_end {
            high_watermark_end
        } else if byte_target <= first.end() {
            first.end()
        } else {
            let from = if use_index {
                self.offset_index.floor_position(byte_target)
            } else {
                0
            };
            let mut end = from.max(first.end());
            let mut scanner = HeaderScanner::new(self.log.as_ref(), end, high_watermark_end);
            while let Some(batch) = scanner.next_batch()? {
                if batch.end() > byte_target {
                    break;
                }
                end = batch.end();
            }
            end
        };
        let slice = FileSlice {
            file: self.log.clone(),
            position: first.position,
            len: (end - first.position) as usize,
        };
        Ok(SegmentRead::Slice(slice))
    }

    /// The first batch from `position` whose last offset is >= `offset`. The
    /// batch at an index position starting past `offset` means the index is
    /// wrong (a later batch may: compaction leaves gaps), and a batch outside
    /// the segment's offsets means the position is not a batch boundary:
    /// both are reported as `InvalidData`.
    fn find_batch(&self, position: u64, limit: u64, offset: i64) -> io::Result<Option<Located>> {
        let mut scanner = HeaderScanner::new(self.log.as_ref(), position, limit);
        while let Some(batch) = scanner.next_batch()? {
            if batch.header.base_offset < self.base_offset || batch.header.last_offset() >= self.next_offset() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "index points inside a batch",
                ));
            }
            if batch.header.last_offset() >= offset {
                if position > 0 && batch.position == position && batch.header.base_offset > offset {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "index points past the offset",
                    ));
                }
                return Ok(Some(batch));
            }
        }
        Ok(None)
    }

    /// The first batch at or above `log_start_offset` whose max timestamp
    /// reaches `target`, as (its max timestamp, its base offset clamped to
    /// the log start offset).
    pub fn find_timestamp(&self, target: i64, log_start_offset: i64) -> io::Result<Option<TimestampOffset>> {
        let from = self
            .time_index
            .lookup_below(target)
            .map_or(self.base_offset, |(_, offset)| offset);
        let position = self.offset_index.lookup(from).1;
        match self.scan_for_timestamp(position, target, log_start_offset) {
            Err(e) if e.kind() == io::ErrorKind::InvalidData && position > 0 => {
                tracing::warn!(base_offset = self.base_offset, error = %e, "time index looks damaged; scanning");
                self.scan_for_timestamp(0, target, log_start_offset)
            }
            other => other,
        }
    }

    fn scan_for_timestamp(
        &self,
        position: u64,
        target: i64,
        log_start_offset: i64,
    ) -> io::Result<Option<TimestampOffset>> {
        let mut scanner = HeaderScanner::new(self.log.as_ref(), position, self.size());
        while let Some(batch) = scanner.next_batch()? {
            let h = batch.header;
            if h.max_timestamp >= target && h.last_offset() >= log_start_offset {
                return Ok(Some(TimestampOffset {
                    timestamp: h.max_timestamp,
                    offset: h.base_offset.max(log_start_offset),
                }));
            }
        }
        Ok(None)
    }

    /// Removes the segment's files at once: for the open, which has no
    /// readers yet. A segment leaving an open log is retired instead (see
    /// `deletion`).
    pub fn delete_files(&self, storage: &dyn Storage, dir: &Path) -> io::Result<()> {
        delete_segment_files(storage, dir, self.base_offset)
    }
}

/// The paths of a segment's files, whether or not each exists (a segment
/// without aborted transactions has no `.txnindex`).
pub(crate) fn segment_files(dir: &Path, base_offset: i64) -> impl Iterator<Item = PathBuf> + '_ {
    ["log", "index", "timeindex", crate::transaction_index::EXTENSION]
        .into_iter()
        .map(move |extension| segment_path(dir, base_offset, extension))
}

pub(crate) fn delete_segment_files(storage: &dyn Storage, dir: &Path, base_offset: i64) -> io::Result<()> {
    for path in segment_files(dir, base_offset) {
        if storage.exists(&path) {
            storage.remove_file(&path)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_twenty_digits() {
        assert_eq!(file_name(42, "snapshot"), "00000000000000000042.snapshot");
        assert_eq!(parse_file_name("00000000000000000042.log", "log"), Some(42));
        assert_eq!(parse_file_name("00000000000000000042.index", "log"), None);
        assert_eq!(parse_file_name("00000000000000000042.snapshot", "snapshot"), Some(42));
        assert_eq!(parse_file_name("42.log", "log"), None);
        assert_eq!(parse_file_name("0000000000000000004x.log", "log"), None);
    }
}
