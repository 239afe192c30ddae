//! One cleaning of one log (Kafka's `Cleaner.doClean`): build the offset
//! map over the dirty section, then rewrite each group of segments from the
//! log's start to the end of what the map covers, and swap each group's
//! copy in.
//!
//! Per batch (Kafka's `cleanInto` filter): aborted transactional data goes;
//! a transaction marker stays while any batch of its transaction does, then
//! gets a delete horizon and goes once it passes; a record stays if it is
//! past the map's end or the latest for its key, and, if a tombstone, until
//! its batch's delete horizon (set `delete.retention.ms` after the first
//! cleaning that kept it, KIP-534). A batch whose records all go is still
//! written empty when it is a live producer's last batch (it carries the
//! producer's last sequence and epoch) or the last batch of the cleaned range.

use std::collections::HashMap;
use std::io;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::batch::{self, BatchHeader, HEADER_SIZE, NO_TIMESTAMP};
use crate::cleaner::offset_map::OffsetMap;
use crate::cleaner::records::{self, DELETE_HORIZON_MASK, RecordView, Rewrite};
use crate::cleaner::swap::{self, Swapped};
use crate::cleaner::transactions::{self, TransactionState};
use crate::cleaner::{CleanOptions, CleanOutcome, CleanStats, overlapping};
use crate::segment::{IndexingState, Segment};
use crate::storage::StorageFile;
use crate::{Log, LogConfig, LogError, Result, TimestampOffset};

/// Throttle and stop checks happen at least every this many bytes.
const CHECK_BYTES: u64 = 64 << 10;

pub(super) fn run(log: &Log, options: &CleanOptions, now_ms: i64) -> Result<CleanStats> {
    let started = Instant::now();
    let info = log.cleanable(options, now_ms)?;
    let first_dirty = info.first_dirty_offset;
    if info.cleanable_bytes == 0 {
        return Ok(CleanStats::nothing(CleanOutcome::NothingToClean, first_dirty));
    }
    // Only durable records may shadow others: a record dropped because a
    // later one supersedes it must not come back if that one is lost in a
    // power cut. This also puts the cleaned range below the recovery point.
    log.flush()?;
    let segments = log.segments();
    let upper = info.first_uncleanable_offset;
    let cleanable: Vec<Arc<Segment>> = segments.iter().take_while(|s| s.base_offset < upper).cloned().collect();
    let scan = transactions::collect_aborted(&segments, first_dirty, upper, log.high_watermark())?;
    let mut map = OffsetMap::new(
        options.dedupe_buffer_bytes,
        options.dedupe_buffer_load_factor,
        scan.dirty_records as usize,
    );
    let mut work = Work::new(options);
    let dirty: Vec<Arc<Segment>> = overlapping(&cleanable, first_dirty, upper).cloned().collect();
    if !work.build_offset_map(&dirty, first_dirty, upper, &scan.aborted, &mut map)? {
        return Ok(CleanStats::nothing(CleanOutcome::Abandoned, first_dirty));
    }
    let end_offset = map.latest_offset() + 1;
    if end_offset <= first_dirty {
        return Err(LogError::Storage(io::Error::other(
            "the cleaner's offset map cannot hold one batch's keys: raise log.cleaner.dedupe.buffer.size",
        )));
    }
    let mut stats = CleanStats {
        end_offset,
        map_keys: map.len(),
        map_utilization: map.utilization(),
        ..CleanStats::nothing(CleanOutcome::Cleaned, first_dirty)
    };
    let producers: HashMap<i64, LastRecord> = log
        .producer_states()
        .into_iter()
        .map(|p| {
            let last = LastRecord {
                last_data_offset: (p.last_offset >= 0).then_some(p.last_offset),
                producer_epoch: p.producer_epoch,
            };
            (p.producer_id, last)
        })
        .collect();
    let config = log.config();
    let to_clean: Vec<Arc<Segment>> = overlapping(&cleanable, i64::MIN, end_offset).cloned().collect();
    let mut filter = Filter {
        map: &map,
        transactions: TransactionState::new(&scan.aborted, i64::MIN),
        producers,
        upper,
        now_ms,
        delete_retention_ms: options.delete_retention_ms,
    };
    for group in group_by_size(&to_clean, &config, upper) {
        let Some(cleaned) = work.clean_group(log, &config, group, &mut filter, &mut stats)? else {
            return Ok(CleanStats {
                outcome: CleanOutcome::Abandoned,
                ..stats
            });
        };
        stats.segments_read += group.len();
        stats.segments_written += 1;
        match log.swap_in_cleaned(cleaned, group, options.crash_after)? {
            Swapped::Done => {}
            Swapped::Abandoned => {
                return Ok(CleanStats {
                    outcome: CleanOutcome::Abandoned,
                    ..stats
                });
            }
        }
    }
    log.write_cleaner_checkpoint(end_offset)?;
    // Kafka's cleaner logs the same summary of each cleaning, throughput included.
    let secs = started.elapsed().as_secs_f64();
    let mb_read = stats.bytes_read as f64 / 1e6;
    tracing::info!(
        dir = %log.dir().display(),
        first_dirty,
        end_offset,
        bytes_read = stats.bytes_read,
        bytes_written = stats.bytes_written,
        records_read = stats.records_read,
        records_retained = stats.records_retained,
        "cleaned {mb_read:.1} MB of log in {secs:.2} s ({:.1} MB/s)",
        mb_read / secs.max(1e-9)
    );
    Ok(stats)
}

/// Kafka's `groupSegmentsBySize`: consecutive segments whose total size
/// fits in `segment.bytes` and whose offsets fit the index's 32-bit relative
/// offsets become one cleaned segment.
fn group_by_size<'a>(segments: &'a [Arc<Segment>], config: &LogConfig, upper: i64) -> Vec<&'a [Arc<Segment>]> {
    let max_bytes = config.segment_bytes.min(i32::MAX as u64);
    let mut groups = Vec::new();
    let mut start = 0;
    while start < segments.len() {
        let mut end = start + 1;
        let mut bytes = segments[start].size();
        while end < segments.len() {
            let next = &segments[end];
            let last_offset = segments.get(end + 1).map_or(upper, |s| s.base_offset) - 1;
            let fits = bytes + next.size() <= max_bytes
                && (next.size() == 0 || last_offset - segments[start].base_offset <= i32::MAX as i64);
            if !fits {
                break;
            }
            bytes += next.size();
            end += 1;
        }
        groups.push(&segments[start..end]);
        start = end;
    }
    groups
}

/// Kafka's `LastRecord`: what the producer state says a live producer's
/// last batch is.
struct LastRecord {
    last_data_offset: Option<i64>,
    producer_epoch: i16,
}

/// Kafka's `BatchRetention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchRetention {
    Delete,
    RetainEmpty,
    DeleteEmpty,
}

/// The per-batch and per-record decisions of one cleaning.
struct Filter<'a> {
    map: &'a OffsetMap,
    transactions: TransactionState,
    producers: HashMap<i64, LastRecord>,
    /// The first uncleanable offset: the batch ending there stays, even empty.
    upper: i64,
    now_ms: i64,
    delete_retention_ms: i64,
}

fn delete_horizon(h: &BatchHeader) -> Option<i64> {
    (h.attributes & DELETE_HORIZON_MASK != 0).then_some(h.base_timestamp)
}

impl Filter<'_> {
    /// Kafka's `checkBatchRetention`: what happens to the batch as a whole,
    /// whether its records all go regardless of keys, and whether it is a
    /// marker of a transaction without data left.
    fn check_batch(&mut self, h: &BatchHeader, control_type: Option<i16>) -> (BatchRetention, bool, bool) {
        let can_discard = if h.is_control() {
            self.transactions.on_control_batch(h, control_type)
        } else {
            self.transactions.on_batch(h)
        };
        let discard_records = if h.is_control() {
            can_discard && delete_horizon(h).is_some_and(|horizon| horizon <= self.now_ms)
        } else {
            can_discard
        };
        let last_of_producer = h.producer_id >= 0
            && self
                .producers
                .get(&h.producer_id)
                .is_some_and(|last| match last.last_data_offset {
                    Some(offset) => h.last_offset() == offset,
                    None => h.is_control() && h.producer_epoch == last.producer_epoch,
                });
        let retention = if last_of_producer || h.next_offset() == self.upper {
            BatchRetention::RetainEmpty
        } else if discard_records {
            BatchRetention::Delete
        } else {
            BatchRetention::DeleteEmpty
        };
        (retention, discard_records, can_discard && h.is_control())
    }

    /// Kafka's `shouldRetainRecord`.
    fn retain_record(&self, h: &BatchHeader, plain: &[u8], record: &RecordView) -> bool {
        let offset = h.base_offset + record.offset_delta as i64;
        if offset > self.map.latest_offset() {
            return true;
        }
        let Some(key) = &record.key else {
            // A record without a key has no place in a compacted log.
            return false;
        };
        let latest = offset >= self.map.get(&plain[key.clone()]);
        let keep_tombstone = delete_horizon(h).is_none_or(|horizon| self.now_ms < horizon);
        latest && (record.has_value || keep_tombstone)
    }
}

/// Buffers reused across batches, and the cleaning's I/O accounting.
struct Work<'a> {
    options: &'a CleanOptions,
    out: Vec<u8>,
    plain: Vec<u8>,
    scratch: Vec<u8>,
    records: Vec<RecordView>,
    kept: Vec<RecordView>,
    unthrottled_bytes: u64,
}

impl<'a> Work<'a> {
    fn new(options: &'a CleanOptions) -> Work<'a> {
        Work {
            options,
            out: Vec::new(),
            plain: Vec::new(),
            scratch: Vec::new(),
            records: Vec::new(),
            kept: Vec::new(),
            unthrottled_bytes: 0,
        }
    }

    /// Counts `bytes` of I/O; every [`CHECK_BYTES`], throttles. Returns
    /// false once the cleaning should stop.
    fn account(&mut self, bytes: u64) -> bool {
        self.unthrottled_bytes += bytes;
        if self.unthrottled_bytes >= CHECK_BYTES {
            let stop = self.options.stop.as_deref();
            if let Some(throttler) = &self.options.throttler {
                throttler.maybe_throttle(self.unthrottled_bytes, stop);
            }
            self.unthrottled_bytes = 0;
        }
        !self.options.stop.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Kafka's `buildOffsetMap`: maps the keys of the non-aborted records
    /// at or above `start` in `dirty`, stopping when the map is full.
    /// Returns false if the cleaning was stopped.
    fn build_offset_map(
        &mut self,
        dirty: &[Arc<Segment>],
        start: i64,
        upper: i64,
        aborted: &[transactions::AbortedTxn],
        map: &mut OffsetMap,
    ) -> Result<bool> {
        let mut transactions = TransactionState::new(aborted, start);
        for (i, segment) in dirty.iter().enumerate() {
            let next_start = dirty.get(i + 1).map_or(upper, |next| next.base_offset);
            let position = segment.offset_index.lookup(start).1;
            let mut reader = SegmentReader::new(
                segment.log.as_ref(),
                position,
                segment.size(),
                self.options.io_buffer_bytes,
            );
            while let Some((h, range)) = reader.next_batch()? {
                if !self.account(h.size() as u64) {
                    return Ok(false);
                }
                let bytes = reader.bytes(range);
                if h.is_control() {
                    transactions.on_control_batch(&h, transactions::control_type(bytes, &h));
                } else if !transactions.on_batch(&h) && h.last_offset() >= start {
                    let plain = records::plain_records(bytes, &h, &mut self.plain).map_err(LogError::CorruptMessage)?;
                    records::parse_records(plain, h.records_count, &mut self.records)
                        .map_err(LogError::CorruptMessage)?;
                    for record in &self.records {
                        let offset = h.base_offset + record.offset_delta as i64;
                        if let Some(key) = &record.key
                            && offset >= start
                            && !map.put(&plain[key.clone()], offset)
                        {
                            return Ok(true);
                        }
                    }
                }
                if h.last_offset() >= start {
                    map.update_latest_offset(h.last_offset());
                }
            }
            // Offsets missing at the segment's end (cleaned away) are covered too.
            map.update_latest_offset(next_start - 1);
        }
        Ok(true)
    }

    /// Writes the cleaned copy of `group` to `.cleaned` files. `None` if the
    /// cleaning was stopped (the files are removed).
    fn clean_group(
        &mut self,
        log: &Log,
        config: &LogConfig,
        group: &[Arc<Segment>],
        filter: &mut Filter,
        stats: &mut CleanStats,
    ) -> Result<Option<Segment>> {
        let storage = log.storage.as_ref();
        let base = group[0].base_offset;
        let cleaned = swap::create_cleaned(&log.storage, log.dir(), base, config.segment_index_bytes)?;
        match self.fill(&cleaned, config, group, filter, stats) {
            Ok(true) => Ok(Some(cleaned)),
            Ok(false) => {
                swap::delete_leftovers(storage, log.dir(), base);
                Ok(None)
            }
            Err(e) => {
                swap::delete_leftovers(storage, log.dir(), base);
                Err(e)
            }
        }
    }

    fn fill(
        &mut self,
        cleaned: &Segment,
        config: &LogConfig,
        group: &[Arc<Segment>],
        filter: &mut Filter,
        stats: &mut CleanStats,
    ) -> Result<bool> {
        let mut written = 0u64;
        let mut next_offset = cleaned.base_offset;
        let mut state = IndexingState::new(filter.now_ms);
        let mut max = TimestampOffset {
            timestamp: NO_TIMESTAMP,
            offset: -1,
        };
        self.out.clear();
        for segment in group {
            let mut reader = SegmentReader::new(segment.log.as_ref(), 0, segment.size(), self.options.io_buffer_bytes);
            while let Some((h, range)) = reader.next_batch()? {
                if !self.account(h.size() as u64) {
                    return Ok(false);
                }
                stats.bytes_read += h.size() as u64;
                let before = self.out.len();
                self.clean_batch(&h, reader.bytes(range), filter, stats)?;
                if self.out.len() > before {
                    let kept = BatchHeader::parse(&self.out[before..]);
                    cleaned.index_batch(
                        written + before as u64,
                        kept.base_offset,
                        kept.last_offset(),
                        kept.max_timestamp,
                        kept.size() as u64,
                        &mut max,
                        &mut state,
                        config.index_interval_bytes,
                    );
                    next_offset = kept.next_offset();
                }
                if self.out.len() >= self.options.io_buffer_bytes {
                    written += self.write_out(cleaned, stats)?;
                }
            }
        }
        written += self.write_out(cleaned, stats)?;
        cleaned.publish(written, next_offset, max);
        cleaned.on_become_inactive();
        cleaned.log.sync()?;
        cleaned.flush_indexes()?;
        Ok(true)
    }

    fn write_out(&mut self, cleaned: &Segment, stats: &mut CleanStats) -> Result<u64> {
        let bytes = self.out.len() as u64;
        if bytes > 0 {
            cleaned.log.append(&self.out)?;
            self.out.clear();
            stats.bytes_written += bytes;
            self.account(bytes);
        }
        Ok(bytes)
    }

    /// Appends to `out` what stays of one batch: nothing, the batch as it
    /// is, a rewritten batch, or an empty one.
    fn clean_batch(
        &mut self,
        h: &BatchHeader,
        bytes: &[u8],
        filter: &mut Filter,
        stats: &mut CleanStats,
    ) -> Result<()> {
        if batch::compute_crc(bytes) != h.crc {
            return Err(LogError::CorruptMessage(format!(
                "the batch at offset {} fails its CRC check",
                h.base_offset
            )));
        }
        stats.records_read += h.records_count.max(0) as u64;
        let plain = records::plain_records(bytes, h, &mut self.plain).map_err(LogError::CorruptMessage)?;
        records::parse_records(plain, h.records_count, &mut self.records).map_err(LogError::CorruptMessage)?;
        let control_type = match (h.is_control(), self.records.first()) {
            (true, Some(record)) => transactions::control_type_of(plain, record),
            _ => None,
        };
        let (retention, discard_records, marker_of_empty_txn) = filter.check_batch(h, control_type);
        if retention == BatchRetention::Delete {
            return Ok(());
        }
        self.kept.clear();
        if !discard_records {
            for record in &self.records {
                if h.is_control() || filter.retain_record(h, plain, record) {
                    self.kept.push(record.clone());
                }
            }
        }
        if self.kept.is_empty() {
            if retention == BatchRetention::RetainEmpty {
                records::write_empty_batch(h, &mut self.out);
            }
            return Ok(());
        }
        stats.records_retained += self.kept.len() as u64;
        let tombstones = self.kept.iter().any(|r| !r.has_value);
        let needs_horizon = (tombstones || marker_of_empty_txn) && delete_horizon(h).is_none();
        if self.kept.len() == self.records.len() && !needs_horizon {
            self.out.extend_from_slice(bytes);
            return Ok(());
        }
        let rewrite = Rewrite {
            header: h,
            plain,
            kept: &self.kept,
            delete_horizon: if needs_horizon {
                Some(filter.now_ms.saturating_add(filter.delete_retention_ms.max(0)))
            } else {
                delete_horizon(h)
            },
        };
        records::write_batch(&rewrite, &mut self.out, &mut self.scratch).map_err(LogError::CorruptMessage)
    }
}

/// Sequential whole-batch reads over a segment file, a buffer at a time.
struct SegmentReader<'a> {
    file: &'a dyn StorageFile,
    limit: u64,
    position: u64,
    buf: Vec<u8>,
    buf_start: u64,
    chunk: usize,
}

impl<'a> SegmentReader<'a> {
    fn new(file: &'a dyn StorageFile, position: u64, limit: u64, chunk: usize) -> SegmentReader<'a> {
        SegmentReader {
            file,
            limit,
            position,
            buf: Vec::new(),
            buf_start: position,
            chunk: chunk.max(HEADER_SIZE),
        }
    }

    /// Makes `[position, position + len)` readable from the buffer.
    fn fill(&mut self, position: u64, len: usize) -> io::Result<Range<usize>> {
        let end = position + len as u64;
        if position < self.buf_start || end > self.buf_start + self.buf.len() as u64 {
            let read = (len.max(self.chunk) as u64).min(self.limit - position) as usize;
            self.buf.resize(read, 0);
            self.file.read_exact_at(&mut self.buf, position)?;
            self.buf_start = position;
        }
        let at = (position - self.buf_start) as usize;
        Ok(at..at + len)
    }

    /// The next batch's header and its bytes' range in [`Self::bytes`].
    fn next_batch(&mut self) -> Result<Option<(BatchHeader, Range<usize>)>> {
        if self.position >= self.limit {
            return Ok(None);
        }
        let position = self.position;
        let available = (self.limit - position) as usize;
        if available < HEADER_SIZE {
            return Err(corrupt(position, "a partial batch header"));
        }
        let header_range = self.fill(position, HEADER_SIZE)?;
        let h = BatchHeader::parse(&self.buf[header_range]);
        if let Some(why) = h.framing_error(available) {
            return Err(corrupt(position, &why));
        }
        let range = self.fill(position, h.size() as usize)?;
        self.position += h.size() as u64;
        Ok(Some((h, range)))
    }

    fn bytes(&self, range: Range<usize>) -> &[u8] {
        &self.buf[range]
    }
}

fn corrupt(position: u64, why: &str) -> LogError {
    LogError::CorruptMessage(format!("segment holds {why} at position {position}"))
}
