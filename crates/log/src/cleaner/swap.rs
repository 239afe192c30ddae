//! Replacing segments with their cleaned copy so that a crash at any point
//! leaves a valid log (Kafka's `.cleaned` / `.swap` scheme, `replaceSegments`
//! and the swap handling of `LogLoader`):
//!
//! 1. the cleaned copy of a group of segments `[S, ...)` is written as
//!    `<S>.log.cleaned` (and `.index.cleaned`, `.timeindex.cleaned`) and
//!    fsynced; a crash now leaves `.cleaned` files that the next open deletes;
//! 2. its indexes are renamed to `.swap`, then `<S>.log.cleaned` to
//!    `<S>.log.swap` and the directory is fsynced: the commit point. From
//!    here on, the next open finishes the swap: it deletes the segments
//!    whose base offsets lie in `[S, end of the .swap segment)`, renames the
//!    `.swap` log into place, and rebuilds its indexes;
//! 3. the group's segments are retired (renamed `.deleted`, removed after
//!    `file.delete.delay.ms`: see `deletion`), the indexes and then the log
//!    renamed into the first segment's names, the directory fsynced, and
//!    the segment list swapped in memory;
//! 4. the producer snapshots at the base offsets of the group's other
//!    segments, which start no segment now, are retired the same way
//!    (Kafka's `replaceSegments` calls `removeStraySnapshots`). A crash
//!    before leaves them behind for the next open, which deletes them; until
//!    then they are still true of the log (the producers' state as of their
//!    offset), so recovery may replay from them.
//!
//! Old segments the open does not delete (those starting at or after the
//! cleaned copy's end, when the cleaning dropped the group's last batches)
//! hold the same records they always held, so the log stays valid either
//! way. Readers holding slices of replaced files keep reading them: the
//! renames leave their open files alone.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::Log;
use crate::LogError;
use crate::lock;
use crate::offset_index::OffsetIndex;
use crate::producer_snapshot;
use crate::scan::HeaderScanner;
use crate::segment::{self, Segment};
use crate::storage::{IndexFile, Storage};
use crate::time_index::TimeIndex;

pub(crate) const CLEANED_SUFFIX: &str = "cleaned";
pub(crate) const SWAP_SUFFIX: &str = "swap";
const EXTENSIONS: [&str; 3] = ["log", "index", "timeindex"];

/// `<base>.<extension>.<suffix>`
pub(crate) fn suffixed_path(dir: &Path, base_offset: i64, extension: &str, suffix: &str) -> PathBuf {
    dir.join(format!("{}.{suffix}", segment::file_name(base_offset, extension)))
}

/// An empty segment at `<base>.*.cleaned`, truncating leftovers.
pub(crate) fn create_cleaned(
    storage: &Arc<dyn Storage>,
    dir: &Path,
    base_offset: i64,
    index_bytes: u64,
) -> io::Result<Segment> {
    let path = |extension| suffixed_path(dir, base_offset, extension, CLEANED_SUFFIX);
    let log = storage.open(&path("log"), true)?;
    log.set_len(0)?;
    // Flushed before the swap renames them; nothing is written to them after.
    let offset_index = OffsetIndex::create(IndexFile::new(storage, path("index")), base_offset, index_bytes)?;
    let time_index = TimeIndex::create(IndexFile::new(storage, path("timeindex")), base_offset, index_bytes)?;
    Ok(Segment::new(
        base_offset,
        log,
        offset_index,
        time_index,
        base_offset,
        None,
    ))
}

/// Removes a cleaning's leftovers (`.cleaned` or `.swap` files) at `base`.
pub(crate) fn delete_leftovers(storage: &dyn Storage, dir: &Path, base_offset: i64) {
    for suffix in [CLEANED_SUFFIX, SWAP_SUFFIX] {
        for extension in EXTENSIONS {
            let path = suffixed_path(dir, base_offset, extension, suffix);
            if storage.exists(&path) {
                let _ = storage.remove_file(&path);
            }
        }
    }
}

/// The steps of a swap, for crash tests that stop after one of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SwapStep {
    /// The `.cleaned` files are written and fsynced.
    CleanedWritten,
    /// The cleaned indexes are renamed to `.swap`.
    IndexesRenamedToSwap,
    /// The cleaned log is renamed to `.swap` (the commit point).
    LogRenamedToSwap,
    /// The group's segments are retired (renamed `.deleted`).
    OldSegmentsDeleted,
    /// The indexes are renamed into place; the log is not yet.
    IndexesInPlace,
    /// The cleaned segment is in place and in the segment list; the stray
    /// producer snapshots are not retired yet.
    SwappedIn,
}

/// How a swap ended.
pub(crate) enum Swapped {
    Done,
    /// Some of the old segments left the log meanwhile (retention,
    /// DeleteRecords): the cleaned copy was dropped.
    Abandoned,
}

impl Log {
    /// Replaces `old` (consecutive segments of this log) with `cleaned`,
    /// whose files are written and fsynced under `.cleaned` names.
    pub(crate) fn swap_in_cleaned(
        &self,
        cleaned: Segment,
        old: &[Arc<Segment>],
        crash_after: Option<SwapStep>,
    ) -> crate::Result<Swapped> {
        let storage = self.storage.as_ref();
        let dir = self.dir.as_path();
        let base = cleaned.base_offset;
        let crash = |step: SwapStep| -> crate::Result<()> {
            if crash_after == Some(step) {
                return Err(self.fail(io::Error::other(format!("simulated crash after {step:?}"))));
            }
            Ok(())
        };
        crash(SwapStep::CleanedWritten)?;
        // Retention and DeleteRecords move segments out under this lock.
        let _admin = lock(&self.admin);
        let current = self.segments();
        let still_there = old.iter().all(|o| current.iter().any(|s| Arc::ptr_eq(s, o)));
        if self.check_writable().is_err() || !still_there {
            delete_leftovers(storage, dir, base);
            return Ok(Swapped::Abandoned);
        }
        let rename = |extension: &str, from: &str, to: Option<&str>| -> io::Result<()> {
            let target = match to {
                Some(suffix) => suffixed_path(dir, base, extension, suffix),
                None => segment::segment_path(dir, base, extension),
            };
            storage.rename(&suffixed_path(dir, base, extension, from), &target)
        };
        // Before the commit point a failure leaves the old segments in charge.
        let prepared = (|| {
            rename("index", CLEANED_SUFFIX, Some(SWAP_SUFFIX))?;
            rename("timeindex", CLEANED_SUFFIX, Some(SWAP_SUFFIX))
        })();
        if let Err(e) = prepared {
            delete_leftovers(storage, dir, base);
            return Err(LogError::Storage(e));
        }
        crash(SwapStep::IndexesRenamedToSwap)?;
        // The commit point: from here the next open finishes the swap, and
        // a failure takes the log offline until it does.
        rename("log", CLEANED_SUFFIX, Some(SWAP_SUFFIX))
            .and_then(|()| storage.sync_dir(dir))
            .map_err(|e| self.fail(e))?;
        crash(SwapStep::LogRenamedToSwap)?;
        // Kafka's `replaceSegments` retires every old segment, the one whose
        // name the cleaned copy takes too, before the copy takes that name.
        self.retire_files(old.iter().flat_map(|s| segment::segment_files(dir, s.base_offset)))
            .map_err(|e| self.fail(e))?;
        crash(SwapStep::OldSegmentsDeleted)?;
        rename("index", SWAP_SUFFIX, None)
            .and_then(|()| rename("timeindex", SWAP_SUFFIX, None))
            .map_err(|e| self.fail(e))?;
        crash(SwapStep::IndexesInPlace)?;
        rename("log", SWAP_SUFFIX, None)
            .and_then(|()| storage.sync_dir(dir))
            .map_err(|e| self.fail(e))?;
        let old_end = old.last().map_or(base, |s| s.next_offset());
        let cleaned = Arc::new(cleaned);
        let mut segments = lock(&self.segments);
        let mut list = Vec::with_capacity(segments.len());
        for segment in segments.iter() {
            if Arc::ptr_eq(segment, &old[0]) {
                list.push(cleaned.clone());
            } else if !old.iter().any(|o| Arc::ptr_eq(o, segment)) {
                list.push(segment.clone());
            }
        }
        *segments = Arc::new(list);
        drop(segments);
        // The aborted transactions index follows the new segment.
        self.on_segments_cleaned(&cleaned, old_end.max(cleaned.next_offset()))
            .map_err(|e| self.fail(e))?;
        crash(SwapStep::SwappedIn)?;
        self.retire_stray_snapshots().map_err(|e| self.fail(e))?;
        Ok(Swapped::Done)
    }

    /// Retires the producer snapshots whose offset starts no segment (see
    /// `producer_snapshot::strays`): renamed `.deleted`, removed after
    /// `file.delete.delay.ms`, as the snapshots of deleted segments are.
    fn retire_stray_snapshots(&self) -> io::Result<()> {
        let strays = {
            // Under the append lock, so that no roll adds a snapshot whose
            // segment is not in the list yet.
            let _writer = lock(&self.writer);
            let bases: Vec<i64> = self.segments().iter().map(|s| s.base_offset).collect();
            let mut snapshots = lock(&self.snapshots);
            let strays = producer_snapshot::strays(&snapshots, &bases);
            for offset in &strays {
                snapshots.remove(offset);
            }
            strays
        };
        if !strays.is_empty() {
            tracing::debug!(dir = %self.dir.display(), ?strays, "retiring producer snapshots that start no segment");
        }
        self.retire_files(
            strays
                .iter()
                .map(|&offset| producer_snapshot::snapshot_path(&self.dir, offset)),
        )
    }
}

/// Called first when a log opens: deletes unfinished cleanings (`.cleaned`
/// files) and finishes committed swaps (`.log.swap` files) as described in
/// the module doc. Returns the base offsets of the segments swapped in,
/// whose indexes the open must rebuild.
pub(crate) fn complete_interrupted(storage: &dyn Storage, dir: &Path) -> io::Result<BTreeSet<i64>> {
    let names = storage.list_dir(dir)?;
    let mut changed = false;
    let mut swaps = Vec::new();
    for name in &names {
        if name.ends_with(&format!(".{CLEANED_SUFFIX}")) {
            storage.remove_file(&dir.join(name))?;
            changed = true;
        } else if let Some(base) = name
            .strip_suffix(&format!(".{SWAP_SUFFIX}"))
            .and_then(|n| segment::parse_file_name(n, "log"))
        {
            swaps.push(base);
        }
    }
    let bases: Vec<i64> = names
        .iter()
        .filter_map(|n| segment::parse_file_name(n, "log"))
        .collect();
    let mut swapped = BTreeSet::new();
    for &base in &swaps {
        let swap_path = suffixed_path(dir, base, "log", SWAP_SUFFIX);
        let end = next_offset(storage, &swap_path, base)?;
        tracing::info!(dir = %dir.display(), base, end, "finishing a swap interrupted by a crash");
        for &old in bases.iter().filter(|b| **b >= base && **b < end) {
            segment::delete_segment_files(storage, dir, old)?;
        }
        segment::delete_segment_files(storage, dir, base)?;
        storage.rename(&swap_path, &segment::segment_path(dir, base, "log"))?;
        swapped.insert(base);
        changed = true;
    }
    // Index `.swap` files are rebuilt from their logs, finished or not.
    for name in &names {
        if name.ends_with(&format!(".index.{SWAP_SUFFIX}")) || name.ends_with(&format!(".timeindex.{SWAP_SUFFIX}")) {
            storage.remove_file(&dir.join(name))?;
            changed = true;
        }
    }
    if changed {
        storage.sync_dir(dir)?;
    }
    Ok(swapped)
}

/// The offset after the last whole batch of the segment file at `path`.
fn next_offset(storage: &dyn Storage, path: &Path, base_offset: i64) -> io::Result<i64> {
    let file = storage.open(path, false)?;
    let mut scanner = HeaderScanner::new(file.as_ref(), 0, file.len());
    let mut next = base_offset;
    while let Ok(Some(batch)) = scanner.next_batch() {
        next = batch.header.next_offset();
    }
    Ok(next)
}
