//! Files leaving the log (Kafka's `LocalLog.deleteSegmentFiles` and
//! `UnifiedLog.deleteProducerSnapshots`): once retention, DeleteRecords or
//! a cleaner swap has taken segments out of the segment list, their files
//! (`.log`, `.index`, `.timeindex`, `.txnindex`) and their producer
//! snapshots (below the first remaining segment when the log start moved;
//! after a swap, those that start no segment any more) are renamed with
//! the `.deleted` suffix at once, and removed
//! `file.delete.delay.ms` later. The rename frees the name for a
//! swapped-in copy and marks the files as garbage, so whatever a crash or a
//! shutdown leaves behind goes at the next open (as Kafka's `LogLoader`
//! does). A reader that found a segment before it left holds its open file
//! (a [`crate::FileSlice`]), which the rename does not disturb, and
//! finishes reading it.
//!
//! The log crate runs no threads or timers: the broker calls
//! [`Log::delete_expired_files`] periodically, and with a delay of 0 the
//! files go before the call that retired them returns.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::{Log, Result, lock};

pub(crate) const DELETED_SUFFIX: &str = ".deleted";

/// `<name>.deleted` beside `path`.
fn deleted_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(DELETED_SUFFIX);
    path.with_file_name(name)
}

/// The `.deleted` files waiting for their delay: path to the time (ms since
/// the epoch) from which it may go. Keyed by path, so a name retired again
/// within the delay (a segment cleaned twice) waits for the later deadline;
/// the rename already dropped the older file's name.
pub(crate) type PendingDeletions = BTreeMap<PathBuf, i64>;

impl Log {
    /// Renames each of `paths` that exists to `<name>.deleted` and schedules
    /// its removal after `file.delete.delay.ms`. The caller has already taken
    /// the files' segments out of the segment list.
    pub(crate) fn retire_files(&self, paths: impl IntoIterator<Item = PathBuf>) -> io::Result<()> {
        let now_ms = crate::now_ms();
        let delay_ms = self.config().file_delete_delay_ms;
        let due_ms = now_ms.saturating_add(delay_ms);
        // Held across the renames so that a removal never races a rename
        // to the same name.
        let mut pending = lock(&self.pending_deletions);
        for path in paths {
            if !self.storage.exists(&path) {
                continue;
            }
            let deleted = deleted_path(&path);
            self.storage.rename(&path, &deleted)?;
            pending.insert(deleted, due_ms);
        }
        if delay_ms <= 0 {
            self.remove_due_files(&mut pending, now_ms)?;
        }
        Ok(())
    }

    /// Removes the `.deleted` files whose `file.delete.delay.ms` has passed
    /// by `now_ms` (Kafka's scheduled `delete-file` task); returns how many.
    /// A failure takes the log offline, as it takes Kafka's log directory.
    pub(crate) fn delete_retired_files(&self, now_ms: i64) -> Result<usize> {
        let mut pending = lock(&self.pending_deletions);
        self.remove_due_files(&mut pending, now_ms).map_err(|e| self.fail(e))
    }

    /// A file that fails to go leaves the schedule anyway (the log goes
    /// offline, and the next open deletes it), so it is reported once.
    fn remove_due_files(&self, pending: &mut PendingDeletions, now_ms: i64) -> io::Result<usize> {
        let due: Vec<PathBuf> = pending
            .iter()
            .filter(|(_, due_ms)| **due_ms <= now_ms)
            .map(|(path, _)| path.clone())
            .collect();
        let mut failure = None;
        for path in &due {
            pending.remove(path);
            match self.storage.remove_file(path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => failure = failure.or(Some(e)),
                _ => {}
            }
        }
        failure.map_or(Ok(due.len()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_suffix_follows_the_whole_name() {
        assert_eq!(
            deleted_path(Path::new("/d/t-0/00000000000000000042.timeindex")),
            Path::new("/d/t-0/00000000000000000042.timeindex.deleted")
        );
    }
}
