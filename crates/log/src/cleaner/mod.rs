//! Log compaction (`cleanup.policy=compact`), after Kafka's `LogCleaner`:
//! keep the latest record of every key, drop tombstones `delete.retention.ms`
//! after a cleaning first saw them, drop aborted transactions' data and, in
//! time, their markers.
//!
//! One cleaning of a log ([`Log::clean`]):
//! 1. the dirty section runs from the cleaner checkpoint (the end of the last
//!    cleaning, in `cleaner-offset-checkpoint`) to the first uncleanable
//!    offset: the active segment, the last stable offset and high watermark,
//!    and segments newer than `min.compaction.lag.ms`, rounded down to a
//!    segment boundary ([`Log::cleanable`], which also gives the dirty ratio
//!    a scheduler picks the dirtiest log by);
//! 2. an [`offset_map`] of key → latest offset is built over the dirty
//!    section, in bounded memory: when it fills, this cleaning stops where
//!    the map stopped (Kafka does the same);
//! 3. every segment from the log's start to there is rewritten, in groups
//!    that fit in `segment.bytes`, keeping per batch only the records that
//!    are the latest for their key (see [`clean`]), with their offsets,
//!    timestamps and producer fields, in the batch's codec;
//! 4. each group's copy is swapped in crash-safely ([`swap`]), and the
//!    checkpoint moves to the end of the mapped section.
//!
//! Simplified against Kafka: aborted transactions come from a walk of the
//! log ([`transactions`]) rather than `.txnindex` files, which this log does
//! not keep yet; a rewritten batch keeps its base timestamp unless it gets a
//! delete horizon (Kafka resets it to the first kept record's timestamp;
//! record timestamps are the same either way).

mod clean;
pub(crate) mod offset_map;
pub(crate) mod records;
pub(crate) mod swap;
mod throttle;
pub(crate) mod transactions;

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};

pub use swap::SwapStep;
pub use throttle::Throttler;

use crate::checkpoint;
use crate::segment::Segment;
use crate::{Log, Result, lock};

/// Kafka's name for the file holding where the last cleaning ended. Kafka
/// keeps one per log directory; like the other checkpoints here, this one
/// lives in the partition directory.
pub(crate) const CLEANER_CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

/// What one cleaning needs to know beyond the log's own configuration: the
/// topic's cleaner settings and the broker's cleaner resources.
#[derive(Debug, Clone)]
pub struct CleanOptions {
    /// `delete.retention.ms` (86400000): how long a tombstone (and a marker
    /// of a transaction with no data left) stays after a cleaning first
    /// kept it.
    pub delete_retention_ms: i64,
    /// `min.compaction.lag.ms` (0): segments with a record newer than this
    /// stay dirty.
    pub min_compaction_lag_ms: i64,
    /// `max.compaction.lag.ms` (Long.MAX): a dirty segment whose first batch
    /// is older than this makes the log due for cleaning whatever its ratio.
    pub max_compaction_lag_ms: i64,
    /// This cleaner thread's share of `log.cleaner.dedupe.buffer.size`: the
    /// offset map's memory limit.
    pub dedupe_buffer_bytes: usize,
    /// `log.cleaner.io.buffer.load.factor` (0.9): how full the map may get.
    pub dedupe_buffer_load_factor: f64,
    /// This thread's share of `log.cleaner.io.buffer.size`: the write buffer.
    pub io_buffer_bytes: usize,
    /// `log.cleaner.io.max.bytes.per.second`, shared by all cleaner threads.
    pub throttler: Option<Arc<Throttler>>,
    /// Set to abandon a cleaning in progress (shutdown); the log is left as
    /// it was.
    pub stop: Option<Arc<AtomicBool>>,
    /// For crash tests: stop a swap after this step as a crash would (the
    /// log goes offline and must be reopened).
    #[doc(hidden)]
    pub crash_after: Option<SwapStep>,
}

impl Default for CleanOptions {
    fn default() -> Self {
        CleanOptions {
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            dedupe_buffer_bytes: 128 << 20,
            dedupe_buffer_load_factor: 0.9,
            io_buffer_bytes: 512 << 10,
            throttler: None,
            stop: None,
            crash_after: None,
        }
    }
}

/// Kafka's `LogToClean`: how much of a log a cleaning would cover.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanableInfo {
    /// Where the dirty section starts (the cleaner checkpoint, or the log
    /// start offset).
    pub first_dirty_offset: i64,
    /// Where cleaning must stop: a segment's base offset.
    pub first_uncleanable_offset: i64,
    /// Bytes of the segments before the dirty section.
    pub clean_bytes: u64,
    /// Bytes of the segments of the dirty section.
    pub cleanable_bytes: u64,
    /// How far past `max.compaction.lag.ms` the oldest dirty segment is (0:
    /// not overdue).
    pub max_compaction_delay_ms: i64,
}

impl CleanableInfo {
    /// `cleanable_bytes / (clean_bytes + cleanable_bytes)`, which
    /// `min.cleanable.dirty.ratio` is compared with.
    pub fn dirty_ratio(&self) -> f64 {
        match self.clean_bytes + self.cleanable_bytes {
            0 => 0.0,
            total => self.cleanable_bytes as f64 / total as f64,
        }
    }

    /// Kafka's selection rule: overdue by `max.compaction.lag.ms` with
    /// something to clean, or dirtier than `min_cleanable_ratio`.
    pub fn needs_cleaning(&self, min_cleanable_ratio: f64) -> bool {
        self.cleanable_bytes > 0 && (self.max_compaction_delay_ms > 0 || self.dirty_ratio() > min_cleanable_ratio)
    }
}

/// How a cleaning ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CleanOutcome {
    Cleaned,
    /// Nothing in the dirty section could be cleaned yet.
    NothingToClean,
    /// Another cleaning of this log was in progress.
    Busy,
    /// Stopped (shutdown), or the log changed underneath (retention removed
    /// segments being cleaned); the log is as before, the next round retries.
    Abandoned,
}

/// What a cleaning did (Kafka's `CleanerStats`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanStats {
    pub outcome: CleanOutcome,
    pub first_dirty_offset: i64,
    /// Where the next cleaning's dirty section starts.
    pub end_offset: i64,
    pub segments_read: usize,
    pub segments_written: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_read: u64,
    pub records_retained: u64,
    /// Keys in the offset map, and the map's fill ratio.
    pub map_keys: usize,
    pub map_utilization: f64,
}

impl CleanStats {
    fn nothing(outcome: CleanOutcome, first_dirty_offset: i64) -> CleanStats {
        CleanStats {
            outcome,
            first_dirty_offset,
            end_offset: first_dirty_offset,
            segments_read: 0,
            segments_written: 0,
            bytes_read: 0,
            bytes_written: 0,
            records_read: 0,
            records_retained: 0,
            map_keys: 0,
            map_utilization: 0.0,
        }
    }
}

/// The log's cleaner bookkeeping.
#[derive(Default)]
pub(crate) struct CleanerState {
    /// Held for a whole cleaning: one at a time per log.
    running: Mutex<()>,
    /// The cleaner checkpoint, read from its file on first use.
    checkpoint: Mutex<Option<Option<i64>>>,
}

impl Log {
    /// Kafka's `cleanableOffsets` and `calculateCleanableBytes`: what a
    /// cleaning now would cover, and how dirty the log is.
    pub fn cleanable(&self, options: &CleanOptions, now_ms: i64) -> Result<CleanableInfo> {
        self.check_online()?;
        let segments = self.segments();
        let first_dirty = self.first_dirty_offset();
        let active = segments.last().expect("the log always has an active segment");
        // Never past the last stable offset (an open transaction's first
        // offset, or the high watermark), nor into the active segment.
        let mut uncleanable = self.last_stable_offset().min(active.base_offset);
        let lag_ms = options.min_compaction_lag_ms.max(0);
        let dirty = non_active_from(&segments, first_dirty);
        if lag_ms > 0 {
            let newest_allowed = now_ms.saturating_sub(lag_ms);
            if let Some(young) = dirty
                .iter()
                .find(|s| s.max_timestamp().is_some_and(|m| m.timestamp > newest_allowed))
            {
                uncleanable = uncleanable.min(young.base_offset);
            }
        }
        let uncleanable = uncleanable.max(first_dirty);
        // Rounded down to the segment holding it: only whole segments are cleaned.
        let holding = segments.partition_point(|s| s.base_offset <= uncleanable).max(1) - 1;
        let first_uncleanable = segments[holding].base_offset;
        let clean_bytes = overlapping(&segments, i64::MIN, first_dirty).map(|s| s.size()).sum();
        let cleanable_bytes = overlapping(&segments, first_dirty.min(first_uncleanable), first_uncleanable)
            .map(|s| s.size())
            .sum();
        Ok(CleanableInfo {
            first_dirty_offset: first_dirty,
            first_uncleanable_offset: first_uncleanable,
            clean_bytes,
            cleanable_bytes,
            max_compaction_delay_ms: self.max_compaction_delay(&dirty, options, now_ms)?,
        })
    }

    /// Compacts the log's dirty section (see the module doc). Blocking and
    /// long: call it from a cleaner thread. Appends, reads, retention and
    /// flushes go on meanwhile; at most one cleaning runs per log.
    pub fn clean(&self, options: &CleanOptions, now_ms: i64) -> Result<CleanStats> {
        let Ok(_running) = self.cleaner.running.try_lock() else {
            return Ok(CleanStats::nothing(CleanOutcome::Busy, self.first_dirty_offset()));
        };
        self.check_writable()?;
        clean::run(self, options, now_ms)
    }

    /// Where the dirty section starts: the checkpoint if it lies inside the
    /// log, else the log start offset (Kafka resets a checkpoint that is
    /// out of range).
    pub(crate) fn first_dirty_offset(&self) -> i64 {
        let log_start = self.log_start_offset();
        let mut cached = lock(&self.cleaner.checkpoint);
        let checkpoint = *cached.get_or_insert_with(|| {
            checkpoint::read_offset(self.storage.as_ref(), &self.dir, CLEANER_CHECKPOINT_FILE).unwrap_or_else(|e| {
                tracing::warn!(dir = %self.dir.display(), error = %e, "ignoring an unreadable cleaner checkpoint");
                None
            })
        });
        match checkpoint {
            Some(offset) if offset >= log_start && offset <= self.log_end_offset() => offset,
            _ => log_start,
        }
    }

    pub(crate) fn write_cleaner_checkpoint(&self, offset: i64) -> Result<()> {
        checkpoint::write_offset(self.storage.as_ref(), &self.dir, CLEANER_CHECKPOINT_FILE, offset)
            .map_err(|e| self.fail_unless_out_of_space(e))?;
        *lock(&self.cleaner.checkpoint) = Some(Some(offset));
        Ok(())
    }

    /// Kafka's `maxCompactionDelay`: how long ago the oldest dirty segment
    /// (by its first batch's timestamp) passed `max.compaction.lag.ms`.
    fn max_compaction_delay(&self, dirty: &[Arc<Segment>], options: &CleanOptions, now_ms: i64) -> Result<i64> {
        let max_lag_ms = options.max_compaction_lag_ms.max(0);
        let clean_until = now_ms.saturating_sub(max_lag_ms);
        if dirty.is_empty() || clean_until <= 0 {
            return Ok(0);
        }
        let mut earliest = i64::MAX;
        for segment in dirty {
            let mut scanner = crate::scan::HeaderScanner::new(segment.log.as_ref(), 0, segment.size());
            if let Some(first) = scanner.next_batch()?
                && first.header.max_timestamp > 0
            {
                earliest = earliest.min(first.header.max_timestamp);
            }
        }
        Ok(if earliest < clean_until {
            clean_until - earliest
        } else {
            0
        })
    }
}

/// The segments overlapping `[from, to)` (Kafka's `logSegments(from, to)`):
/// each segment is taken to reach up to the next one's base offset.
pub(crate) fn overlapping(segments: &[Arc<Segment>], from: i64, to: i64) -> impl Iterator<Item = &Arc<Segment>> {
    segments.iter().enumerate().filter_map(move |(i, s)| {
        let end = segments.get(i + 1).map_or(i64::MAX, |next| next.base_offset);
        (s.base_offset < to && end > from).then_some(s)
    })
}

/// The inactive segments from the one holding `offset` (Kafka's
/// `nonActiveLogSegmentsFrom`).
fn non_active_from(segments: &[Arc<Segment>], offset: i64) -> Vec<Arc<Segment>> {
    let active = segments.len() - 1;
    let holding = segments.partition_point(|s| s.base_offset <= offset).saturating_sub(1);
    segments[holding.min(active)..active].to_vec()
}
