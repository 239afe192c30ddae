//! Durability for [`Log`]: group commit (`sync_to`), flush (data, then
//! indexes, then the recovery point), and clean close.
//!
//! No fsync runs under the append lock: appends keep flowing while the
//! group commit's leader syncs, and the next leader picks them all up.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::checkpoint::{self, LEADER_EPOCH_FILE, RECOVERY_POINT_FILE};
use crate::storage::is_out_of_space;
use crate::{Log, Result, lock, producer_snapshot};

impl Log {
    pub(crate) fn sync_offsets_below(&self, offset: i64) -> Result<()> {
        self.check_online()?;
        let target = offset.min(self.log_end_offset());
        self.group_commit
            .sync_to(target, || self.sync_appended(target))
            .map_err(|e| self.fail(e))
    }

    /// The group commit leader's work: fsync everything appended so far and
    /// return the offset below which it is durable. A leader whose own
    /// `target` a sync of the whole file system covered syncs nothing.
    fn sync_appended(&self, target: i64) -> io::Result<i64> {
        if self.is_offline() {
            return Err(io::Error::other("the log is offline after a storage failure"));
        }
        let synced_by_file_system = self.synced_by_file_system.load(Ordering::Acquire);
        if synced_by_file_system >= target {
            self.checkpoint_rolled_segments_unless_out_of_space(synced_by_file_system)?;
            return Ok(synced_by_file_system);
        }
        // Everything below this offset is written; whatever the flags below
        // say about it was set before it was published.
        let upto = self.log_end_offset();
        let durable = self.group_commit.durable_offset();
        if self.epochs_dirty.swap(false, Ordering::AcqRel) {
            self.storage.open(&self.dir.join(LEADER_EPOCH_FILE), false)?.sync()?;
            self.dir_dirty.store(true, Ordering::Release);
        }
        if self.dir_dirty.swap(false, Ordering::AcqRel) {
            self.storage.sync_dir(&self.dir)?;
        }
        let segments = self.segments();
        for segment in segments
            .iter()
            .filter(|s| s.next_offset() > durable && s.base_offset < upto)
        {
            segment.log.sync()?;
        }
        self.checkpoint_rolled_segments_unless_out_of_space(upto)?;
        Ok(upto)
    }

    /// The data below `durable_below` is durable. The indexes and the
    /// recovery point only spare recovery a rescan: on a full disk they wait
    /// for a later sync, and the appends waiting on this one are answered.
    fn checkpoint_rolled_segments_unless_out_of_space(&self, durable_below: i64) -> io::Result<()> {
        match self.checkpoint_rolled_segments(durable_below) {
            Err(error) if is_out_of_space(&error) => {
                self.note_out_of_space(&error);
                Ok(())
            }
            other => other,
        }
    }

    /// Once the data of segments that have rolled is durable, writes their
    /// indexes and moves the recovery point past them, so that recovery after
    /// a crash only rescans the active segment (Kafka flushes on roll).
    fn checkpoint_rolled_segments(&self, durable_below: i64) -> io::Result<()> {
        let mut recovery_point = lock(&self.flush_state);
        let segments = self.segments();
        let mut new_recovery_point = *recovery_point;
        for pair in segments.windows(2) {
            let (segment, next) = (&pair[0], &pair[1]);
            if next.base_offset <= *recovery_point {
                continue;
            }
            if segment.next_offset() > durable_below {
                break;
            }
            segment.flush_indexes()?;
            new_recovery_point = next.base_offset;
        }
        if new_recovery_point > *recovery_point {
            self.sync_snapshots(*recovery_point, new_recovery_point)?;
            self.sync_transaction_indexes(new_recovery_point)?;
            checkpoint::write_offset(
                self.storage.as_ref(),
                &self.dir,
                RECOVERY_POINT_FILE,
                new_recovery_point,
            )?;
            *recovery_point = new_recovery_point;
            self.prune_snapshots(new_recovery_point)?;
        }
        Ok(())
    }

    /// Fsyncs the producer snapshots written on the rolls in
    /// (`from`, `to`], whose segments' data is now durable.
    fn sync_snapshots(&self, from: i64, to: i64) -> io::Result<()> {
        let offsets: Vec<i64> = lock(&self.snapshots).range(from + 1..=to).copied().collect();
        for offset in offsets {
            match self
                .storage
                .open(&producer_snapshot::snapshot_path(&self.dir, offset), false)
            {
                Ok(file) => file.sync()?,
                // Deleted meanwhile with its segment.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    pub(crate) fn prune_snapshots(&self, recovery_point: i64) -> io::Result<()> {
        producer_snapshot::prune(
            self.storage.as_ref(),
            &self.dir,
            &mut lock(&self.snapshots),
            recovery_point,
        )
    }

    pub(crate) fn flush_all(&self) -> Result<()> {
        let log_end_offset = self.log_end_offset();
        self.sync_offsets_below(log_end_offset)?;
        self.flush_indexes_to(log_end_offset)
            .map_err(|e| self.fail_unless_out_of_space(e))
    }

    /// Data below `log_end_offset` is durable: write and fsync the indexes
    /// covering it, then move the recovery point there.
    fn flush_indexes_to(&self, log_end_offset: i64) -> io::Result<()> {
        let mut recovery_point = lock(&self.flush_state);
        if log_end_offset <= *recovery_point {
            return Ok(());
        }
        for segment in self.segments().iter().filter(|s| s.next_offset() > *recovery_point) {
            segment.flush_indexes()?;
        }
        self.sync_transaction_indexes(log_end_offset)?;
        checkpoint::write_offset(self.storage.as_ref(), &self.dir, RECOVERY_POINT_FILE, log_end_offset)?;
        *recovery_point = log_end_offset;
        Ok(())
    }
}

/// Makes every offset below each log's target durable, as `sync_to` of each
/// would. When more than one of the logs has something to sync, one sync
/// of the whole file system serves them all on a storage that shares syncs
/// (`DiskStorage::sharing_syncs`), where a sync per log would flush the
/// device once each. The logs are meant to share one storage; one on
/// another storage syncs its own files.
pub fn sync_logs(targets: &[(&Log, i64)]) -> Vec<Result<()>> {
    let unsynced: Vec<&Log> = (targets.iter())
        .filter(|(log, target)| log.durable_offset() < (*target).min(log.log_end_offset()))
        .map(|(log, _)| *log)
        .collect();
    if let [first, _, ..] = unsynced[..] {
        // Taken before the sync starts, so it covers every append below.
        let ends: Vec<(&Log, i64)> = (unsynced.iter())
            .filter(|log| Arc::ptr_eq(&log.storage, &first.storage))
            .map(|log| (*log, log.log_end_offset()))
            .collect();
        if ends.len() > 1 && first.storage.sync_whole() {
            for (log, end) in ends {
                log.synced_by_file_system.fetch_max(end, Ordering::AcqRel);
            }
        }
    }
    targets.iter().map(|(log, target)| log.sync_to(*target)).collect()
}
