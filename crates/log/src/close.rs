//! Clean close of logs, many at once (a broker's shutdown).
//!
//! A clean close leaves a log that the next open trusts without scanning
//! it. In Kafka's order, each step durable before the next is written: the
//! data; the indexes and the producer snapshot at the log end; the recovery
//! point; the clean-shutdown marker. One log at a time that is seven
//! fsyncs even when the data is already durable, about 2.5 ms a log, 8 to
//! 10 s for 10,000 partitions on the development machine
//! (docs/benchmarks.md, "Footprint"). [`close_logs`] takes every log
//! through a step, then makes that step durable for all of them with one
//! sync of the whole file system where the storage shares syncs
//! ([`Storage::sync_whole`](crate::Storage::sync_whole)); elsewhere, or
//! once a whole sync has failed, each log syncs the files the step wrote.
//!
//! A crash between steps leaves each log at an earlier step: no marker, so
//! the next open recovers from the recovery point as after any crash.
//!
//! A closed log takes no appends, so its log end offset is fixed. A flush
//! already under way (a produce request's sync) may still run: before it
//! moves the recovery point it syncs any index entries this close wrote
//! (an index tracks what it wrote and what it synced), and the recovery
//! point's lock keeps its checkpoint and this close's apart.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::checkpoint::{self, CLEAN_SHUTDOWN_FILE, RECOVERY_POINT_FILE};
use crate::{Log, Result, lock, producer_snapshot, sync_logs};

/// A log being closed, with its place in the caller's list.
struct Closing<'a> {
    index: usize,
    log: &'a Log,
    log_end_offset: i64,
}

/// What one step wrote to a log's directory that must be durable before
/// the next step.
struct Unsynced {
    files: Vec<PathBuf>,
    /// Entries of the log's directory were created, renamed or removed.
    dir: bool,
}

/// One step of a clean close, for one log at its log end offset.
type Step = fn(&Log, i64) -> io::Result<Unsynced>;

/// Closes every log cleanly, as [`Log::close`] does each, sharing the
/// syncs between them; returns each log's result in order. A log already
/// closed is left as it is.
pub fn close_logs(logs: &[&Log]) -> Vec<Result<()>> {
    let mut results: Vec<Result<()>> = logs.iter().map(|_| Ok(())).collect();
    let mut closing = Vec::with_capacity(logs.len());
    for (index, log) in logs.iter().enumerate() {
        match log.begin_close() {
            Ok(Some(log_end_offset)) => closing.push(Closing {
                index,
                log,
                log_end_offset,
            }),
            Ok(None) => {}
            Err(error) => results[index] = Err(error),
        }
    }
    let data: Vec<(&Log, i64)> = closing.iter().map(|c| (c.log, c.log_end_offset)).collect();
    let synced = sync_logs(&data);
    closing = closing
        .into_iter()
        .zip(synced)
        .filter_map(|(c, synced)| match synced {
            Ok(()) => Some(c),
            Err(error) => {
                results[c.index] = Err(error);
                None
            }
        })
        .collect();
    let steps: [Step; 3] = [
        Log::write_indexes_and_snapshot,
        Log::write_recovery_point,
        Log::mark_clean,
    ];
    for step in steps {
        let mut written = Vec::with_capacity(closing.len());
        for c in closing {
            match step(c.log, c.log_end_offset) {
                Ok(unsynced) => written.push((c, unsynced)),
                Err(error) => results[c.index] = Err(c.log.fail_unless_out_of_space(error)),
            }
        }
        let durable = make_durable(&written);
        closing = Vec::with_capacity(written.len());
        for ((c, _), durable) in written.into_iter().zip(durable) {
            match durable {
                Ok(()) => closing.push(c),
                Err(error) => results[c.index] = Err(c.log.fail(error)),
            }
        }
    }
    // No reader outlives the log: files still waiting for
    // `file.delete.delay.ms` go now.
    for c in closing {
        if let Err(error) = c.log.delete_retired_files(i64::MAX) {
            results[c.index] = Err(error);
        }
    }
    results
}

/// Makes what a step wrote durable: one whole sync for all the logs when
/// they share a storage that can, else each log's files and directory.
fn make_durable(written: &[(Closing, Unsynced)]) -> Vec<io::Result<()>> {
    let shared = match written {
        [(first, _), _, ..] => {
            let storage = &first.log.storage;
            written.iter().all(|(c, _)| Arc::ptr_eq(&c.log.storage, storage)) && storage.sync_whole()
        }
        _ => false,
    };
    (written.iter())
        .map(|(c, unsynced)| if shared { Ok(()) } else { unsynced.sync(c.log) })
        .collect()
}

impl Unsynced {
    fn sync(&self, log: &Log) -> io::Result<()> {
        for path in &self.files {
            match log.storage.open(path, false) {
                Ok(file) => file.sync()?,
                // Retired meanwhile with its segment.
                Err(error) if error.kind() == io::ErrorKind::NotFound => {}
                Err(error) => return Err(error),
            }
        }
        if self.dir {
            log.storage.sync_dir(&log.dir)?;
        }
        Ok(())
    }
}

impl Log {
    /// Stops appends and returns the log end offset, or `None` if the log
    /// was already closed. Nothing is known of an offline log's files, so
    /// it gets no checkpoint and no marker: the next open recovers what is
    /// there.
    fn begin_close(&self) -> Result<Option<i64>> {
        let _writer = lock(&self.writer);
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(None);
        }
        self.check_online()?;
        // Kafka's LogSegment.close: the time index ends with the segment's
        // max timestamp, which reopening reads back.
        self.active_segment().on_become_inactive();
        Ok(Some(self.log_end_offset()))
    }

    /// Every segment's index entries and, as Kafka does on close, the
    /// producer state at the log end, so the next open loads it without
    /// scanning. `.txnindex` files are synced here (only logs with aborted
    /// transactions have any).
    fn write_indexes_and_snapshot(&self, log_end_offset: i64) -> io::Result<Unsynced> {
        let mut unsynced = Unsynced {
            files: Vec::new(),
            dir: true,
        };
        for segment in self.segments().iter() {
            unsynced.files.extend(segment.write_indexes()?);
        }
        self.sync_transaction_indexes(log_end_offset)?;
        {
            let mut writer = lock(&self.writer);
            let expiration_ms = self.config().producer_id_expiration_ms;
            writer.producers.remove_expired(crate::now_ms(), expiration_ms);
            producer_snapshot::write(
                self.storage.as_ref(),
                &self.dir,
                log_end_offset,
                &writer.producers,
                false,
            )?;
        }
        lock(&self.snapshots).insert(log_end_offset);
        (unsynced.files).push(producer_snapshot::snapshot_path(&self.dir, log_end_offset));
        Ok(unsynced)
    }

    fn write_recovery_point(&self, log_end_offset: i64) -> io::Result<Unsynced> {
        let mut recovery_point = lock(&self.flush_state);
        checkpoint::replace_offset(self.storage.as_ref(), &self.dir, RECOVERY_POINT_FILE, log_end_offset)?;
        *recovery_point = log_end_offset;
        Ok(Unsynced {
            files: vec![self.dir.join(RECOVERY_POINT_FILE)],
            dir: true,
        })
    }

    /// Removes the producer snapshots the one at the log end replaced and
    /// writes the clean-shutdown marker (empty: its presence is the message).
    /// An earlier close's snapshot goes too, as a stray: the next open would
    /// otherwise delete it, one directory sync per log.
    fn mark_clean(&self, log_end_offset: i64) -> io::Result<Unsynced> {
        self.prune_snapshots(log_end_offset)?;
        let bases: Vec<i64> = self.segments().iter().map(|s| s.base_offset).collect();
        producer_snapshot::remove_strays(self.storage.as_ref(), &self.dir, &mut lock(&self.snapshots), &bases)?;
        self.storage.open(&self.dir.join(CLEAN_SHUTDOWN_FILE), true)?;
        Ok(Unsynced {
            files: Vec::new(),
            dir: true,
        })
    }
}
