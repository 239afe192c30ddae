//! How [`Log`] reacts to storage failures.
//!
//! Kafka takes a log directory offline on any `IOException`
//! (`LogDirFailureChannel`): its partitions answer KAFKA_STORAGE_ERROR until
//! the broker restarts, because after a failed write or fsync nothing is
//! known about what reached the disk. The log does the same, for itself
//! alone: the broker has one log directory, and one partition's broken files
//! should not stop the others.
//!
//! One failure is different: a full disk (ENOSPC, EDQUOT) when the write
//! that hit it changed nothing, because the file cut its partial write off
//! (see `StorageFile::append`) and the log's state moves only after its
//! writes succeed. Then the write is refused with KAFKA_STORAGE_ERROR and
//! the log stays online: reads go on, and writes resume by themselves once
//! space returns, with no restart (where Kafka needs one).

use std::io;
use std::sync::atomic::Ordering;

use crate::storage::is_out_of_space;
use crate::{Log, LogError, Result};

impl Log {
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
