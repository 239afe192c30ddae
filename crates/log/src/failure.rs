//! How [`Log`] reacts to storage failures.
//!
//! Kafka takes a log directory offline on any `IOException`
//! (`LogDirFailureChannel`): its partitions answer KAFKA_STORAGE_ERROR until
//! the broker restarts, because after a failed write or fsync nothing is
//! known about what reached the disk. The log does the same, for itself
//! alone: the broker has one log directory, and one partition's broken files
//! should not stop the others.
//!
//! A log whose directory cannot be opened at all (unreadable, an I/O
//! error, damage recovery cannot handle) is offline from the start
//! ([`Log::offline`]): where Kafka's `LogManager.loadLogs` takes the log
//! directory offline and the broker starts without it, the broker keeps
//! the partition, offline, and serves the others. Nothing is read or
//! written in that directory until the broker restarts.
//!
//! One failure is different: a full disk (ENOSPC, EDQUOT) when the write
//! that hit it changed nothing, because the file cut its partial write off
//! (see `StorageFile::append`) and the log's state moves only after its
//! writes succeed. Then the write is refused with KAFKA_STORAGE_ERROR and
//! the log stays online: reads go on, and writes resume by themselves once
//! space returns, with no restart (where Kafka needs one).

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::checkpoint::LeaderEpochCache;
use crate::producer_state::ProducerStateManager;
use crate::segment::IndexingState;
use crate::storage::is_out_of_space;
use crate::transactions::Transactions;
use crate::{DiskStorage, Log, LogConfig, LogError, Parts, Result, Writer};

impl Log {
    /// The log of `dir` when [`Log::open`] failed with `cause`: offline from
    /// the start, with no segments, reading and writing nothing in `dir`.
    /// Reads and writes get KAFKA_STORAGE_ERROR and a close writes nothing,
    /// so the next open (after the broker restarts) finds the files as
    /// they were and recovers them.
    pub fn offline(dir: impl Into<PathBuf>, config: LogConfig, cause: &LogError) -> Log {
        let parts = Parts {
            writer: Writer {
                epochs: LeaderEpochCache::default(),
                epochs_unwritten: false,
                active: IndexingState::new(crate::now_ms()),
                batches: Vec::new(),
                producers: ProducerStateManager::default(),
            },
            segments: Vec::new(),
            log_start_offset: 0,
            log_end_offset: 0,
            recovery_point: 0,
            snapshots: Default::default(),
            transactions: Transactions::none(),
        };
        let log = Log::assemble(dir.into(), Arc::new(DiskStorage::default()), config, parts);
        log.failed.store(true, Ordering::Release);
        tracing::error!(
            partition = %log.partition_name(),
            dir = %log.dir.display(),
            error = %cause,
            "partition offline: its log directory could not be opened; produce and fetch get KAFKA_STORAGE_ERROR until the broker restarts"
        );
        log
    }

    /// Errors when the log may not be written: closed, or offline.
    pub(crate) fn check_writable(&self) -> Result<()> {
        self.check_online()?;
        if self.closed.load(Ordering::Acquire) {
            return Err(LogError::offline("the log is closed"));
        }
        Ok(())
    }

    /// Errors when the log is offline after a storage failure.
    pub(crate) fn check_online(&self) -> Result<()> {
        if self.failed.load(Ordering::Acquire) {
            return Err(LogError::offline("the log is offline after a storage failure"));
        }
        Ok(())
    }

    /// Takes the log offline after an I/O failure and returns the error.
    pub(crate) fn fail(&self, error: io::Error) -> LogError {
        if !self.failed.swap(true, Ordering::AcqRel) {
            tracing::error!(
                partition = %self.partition_name(),
                dir = %self.dir.display(),
                %error,
                "partition offline after a storage failure: produce and fetch get KAFKA_STORAGE_ERROR until the broker restarts"
            );
        }
        LogError::Storage(error)
    }

    /// For a failed write that left the log as it was: a full disk refuses
    /// the write and keeps the log online; any other failure takes it offline.
    pub(crate) fn fail_unless_out_of_space(&self, error: io::Error) -> LogError {
        if !is_out_of_space(&error) {
            return self.fail(error);
        }
        self.note_out_of_space(&error);
        LogError::Storage(error)
    }

    /// Logs the start of an out-of-space episode, once: a full disk fails
    /// every produce request.
    pub(crate) fn note_out_of_space(&self, error: &io::Error) {
        if !self.out_of_space.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                partition = %self.partition_name(),
                %error,
                "log directory full: writes to the partition get KAFKA_STORAGE_ERROR until space returns"
            );
        }
    }

    /// Called after a successful append: ends an out-of-space episode.
    pub(crate) fn on_write_succeeded(&self) {
        if self.out_of_space.load(Ordering::Relaxed) && self.out_of_space.swap(false, Ordering::AcqRel) {
            tracing::info!(partition = %self.partition_name(), "space returned: writes to the partition resume");
        }
    }

    /// The directory's name, `<topic>-<partition>`.
    fn partition_name(&self) -> std::borrow::Cow<'_, str> {
        self.dir.file_name().unwrap_or(self.dir.as_os_str()).to_string_lossy()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_encoder::batch;

    const NOW: i64 = 1_700_000_000_000;
    const KAFKA_STORAGE_ERROR: i16 = 56;

    /// Root ignores permissions, so the directory is made unopenable the
    /// way a broken disk would: a segment's index is a directory.
    #[test]
    fn a_log_that_cannot_be_opened_is_offline_and_leaves_its_files_alone() {
        let dir = tempfile::tempdir().unwrap();
        let partition = dir.path().join("broken-0");
        let log = Log::open(&partition, LogConfig::default()).unwrap();
        let mut bytes = batch(3, 100, NOW);
        let batches: &mut [u8] = &mut bytes;
        log.append(batches, 0, NOW).unwrap();
        log.close().unwrap();
        drop(log);
        let index = partition.join("00000000000000000000.index");
        std::fs::remove_file(&index).unwrap();
        std::fs::create_dir(&index).unwrap();
        let listing = |path: &std::path::Path| {
            let mut names: Vec<_> = std::fs::read_dir(path)
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            names.sort();
            names
        };
        let cause = Log::open(&partition, LogConfig::default())
            .err()
            .expect("the open fails");
        let before = listing(&partition);
        let log = Log::offline(&partition, LogConfig::default(), &cause);
        assert!(log.is_offline());
        let code = |result: Result<()>| result.unwrap_err().code();
        let mut bytes = batch(1, 10, NOW);
        let batches: &mut [u8] = &mut bytes;
        assert_eq!(code(log.append(batches, 0, NOW).map(drop)), KAFKA_STORAGE_ERROR);
        assert_eq!(code(log.read(0, 100, i64::MAX).map(drop)), KAFKA_STORAGE_ERROR);
        assert_eq!(code(log.offset_for_timestamp(NOW).map(drop)), KAFKA_STORAGE_ERROR);
        assert_eq!(code(log.max_timestamp().map(drop)), KAFKA_STORAGE_ERROR);
        assert_eq!(code(log.delete_records_before(1).map(drop)), KAFKA_STORAGE_ERROR);
        assert_eq!(code(log.sync_to(1)), KAFKA_STORAGE_ERROR);
        assert_eq!(code(log.flush()), KAFKA_STORAGE_ERROR);
        let options = crate::CleanOptions::default();
        assert_eq!(code(log.cleanable(&options, NOW).map(drop)), KAFKA_STORAGE_ERROR);
        assert_eq!(code(log.clean(&options, NOW).map(drop)), KAFKA_STORAGE_ERROR);
        // The background work finds nothing to do, and nothing panics.
        assert_eq!(log.apply_retention(0, 0, NOW).unwrap(), None);
        assert_eq!(log.delete_expired_files(i64::MAX).unwrap(), 0);
        log.set_high_watermark(10);
        assert_eq!(
            (log.log_end_offset(), log.high_watermark(), log.size_bytes()),
            (0, 0, 0)
        );
        assert!(log.producer_states().is_empty());
        assert!(log.aborted_transactions(0, 10).unwrap().is_empty());
        assert_eq!(code(log.close()), KAFKA_STORAGE_ERROR);
        drop(log);
        assert_eq!(listing(&partition), before, "the offline log wrote nothing");

        // Repaired, the directory opens with every batch.
        std::fs::remove_dir(&index).unwrap();
        let log = Log::open(&partition, LogConfig::default()).unwrap();
        assert_eq!(log.log_end_offset(), 3);
    }
}
