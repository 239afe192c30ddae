//! The partition log storage engine: Kafka's on-disk layout and format.
//!
//! Owns: segments (`.log`, `.index`, `.timeindex`, `.txnindex`), offsets (log
//! start, log end, high watermark, last stable offset), batch validation and
//! offset assignment, durability (flush, group commit, recovery), and
//! checkpoints.
//! Never: touches the network or an async runtime. The broker calls it from
//! blocking I/O threads.
//!
//! Code map: `validate` and `batch` (the append path's checks and header
//! rewrites), `producer_state` (the idempotent producer's sequence and epoch
//! checks, duplicate detection) with `producer_snapshot` (its `.snapshot`
//! files and rebuild on open), `segment` with `offset_index`/`time_index`
//! (over the lock-free `entries`), `scan` (batch header walks), `append`,
//! `read`, `durability` (group commit, flush, close) with `group_commit`,
//! `deletion` (files of segments that left the log: renamed `.deleted`,
//! removed after `file.delete.delay.ms`),
//! `transactions` (last stable offset, end transaction markers, aborted
//! transactions) with `transaction_index` (the `.txnindex` files and their
//! rebuild on open),
//! `recovery` (open), `checkpoint` (the directory's small files),
//! `failure` (offline after a storage failure; a full disk refuses writes),
//! `storage`/`sim` (the file system trait, on disk and in memory), and
//! `cleaner` (log compaction: offset map, record filtering, crash-safe
//! segment swaps).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

mod append;
mod batch;
mod checkpoint;
mod cleaner;
mod close;
mod deletion;
mod durability;
mod entries;
mod error;
mod failure;
mod group_commit;
mod offset_index;
mod producer_snapshot;
mod producer_state;
mod read;
mod recovery;
mod retention;
mod scan;
mod segment;
mod shared_sync;
mod sim;
mod storage;
mod time_index;
mod transaction_index;
mod transactions;
mod validate;

/// The v2 batch encoder the integration tests use, for unit tests.
#[cfg(test)]
#[path = "../tests/common/encoder.rs"]
mod test_encoder;

pub use cleaner::{CleanOptions, CleanOutcome, CleanStats, CleanableInfo, SwapStep, Throttler};
pub use close::close_logs;
pub use durability::sync_logs;
pub use error::LogError;
pub use producer_state::ProducerStateEntry;
pub use sim::SimStorage;
pub use storage::{DiskStorage, Storage, StorageFile, sync_file_system};
pub use transactions::AbortedTransaction;

use checkpoint::LeaderEpochCache;
use group_commit::GroupCommit;
use producer_state::{AppendOrigin, ProducerStateManager};
use segment::{IndexingState, Segment};
use validate::ValidatedBatch;

pub type Result<T> = std::result::Result<T, LogError>;

/// `message.timestamp.type`
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    #[default]
    CreateTime,
    LogAppendTime,
}

/// Per-log configuration, with Kafka's topic-config names and defaults.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// `segment.bytes` (1 GiB)
    pub segment_bytes: u64,
    /// `segment.ms` (7 days)
    pub segment_ms: i64,
    /// `segment.index.bytes` (10 MiB)
    pub segment_index_bytes: u64,
    /// `index.interval.bytes` (4096)
    pub index_interval_bytes: u64,
    /// `max.message.bytes` (1048588): the largest record batch accepted.
    pub max_message_bytes: usize,
    /// `message.timestamp.type`
    pub message_timestamp_type: TimestampType,
    /// `message.timestamp.before.max.ms` (Long.MAX)
    pub message_timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms` (3600000 since Kafka 4.0)
    pub message_timestamp_after_max_ms: i64,
    /// `producer.id.expiration.ms` (86400000, one day): a producer whose last
    /// batch's timestamp is older is forgotten. Checked when the log opens,
    /// before each producer snapshot, and by appends at most every
    /// 10 minutes (Kafka's `producer.id.expiration.check.interval.ms`).
    pub producer_id_expiration_ms: i64,
    /// `cleanup.policy` includes `compact`: appends refuse records without
    /// a key (INVALID_RECORD, as Kafka's `LogValidator`).
    pub compact: bool,
    /// `file.delete.delay.ms` (60000): how long the files of segments that
    /// left the log stay on disk, renamed `.deleted`, before they go.
    pub file_delete_delay_ms: i64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_index_bytes: 10 * 1024 * 1024,
            index_interval_bytes: 4096,
            max_message_bytes: 1_048_588,
            message_timestamp_type: TimestampType::CreateTime,
            message_timestamp_before_max_ms: i64::MAX,
            message_timestamp_after_max_ms: 3_600_000,
            producer_id_expiration_ms: 86_400_000,
            compact: false,
            file_delete_delay_ms: 60_000,
        }
    }
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The log append time when the log uses LogAppendTime, else -1.
    pub log_append_time_ms: i64,
    pub log_start_offset: i64,
    /// The append was an idempotent producer's retry of a batch the log
    /// already holds: nothing was written, and the offsets (and, with
    /// LogAppendTime, the append time) are the original batch's.
    pub duplicate: bool,
}

/// A contiguous byte range of whole record batches inside one segment file.
/// It keeps the file open, so it stays readable after the segment is deleted.
#[derive(Clone)]
pub struct FileSlice {
    pub(crate) file: Arc<dyn StorageFile>,
    pub(crate) position: u64,
    pub(crate) len: usize,
}

impl FileSlice {
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// The slice's start within its segment file.
    pub fn position(&self) -> u64 {
        self.position
    }
    /// Appends the slice's bytes to `out`.
    pub fn read_into(&self, out: &mut Vec<u8>) -> Result<()> {
        let start = out.len();
        out.resize(start + self.len, 0);
        if let Err(e) = self.file.read_exact_at(&mut out[start..], self.position) {
            out.truncate(start);
            return Err(e.into());
        }
        Ok(())
    }
}

impl std::fmt::Debug for FileSlice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileSlice")
            .field("position", &self.position)
            .field("len", &self.len)
            .finish()
    }
}

/// A (timestamp, offset) pair from a ListOffsets-style lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    pub timestamp: i64,
    pub offset: i64,
}

/// One partition's log. `Send + Sync`: one writer at a time (appends are
/// serialized inside), readers never wait on the writer for longer than a
/// pointer swap.
///
/// Locks, in the order they may nest: `admin` (delete_records_before),
/// `writer` (the append lock), then the short ones (`segments`, `config`,
/// `snapshots`), and `pending_deletions` (held across renames and removals
/// of retired files, never while taking another lock).
/// `flush_state` and the group commit's lock are never taken under `writer`,
/// and no fsync runs under `writer`.
pub struct Log {
    dir: PathBuf,
    storage: Arc<dyn Storage>,
    config: Mutex<LogConfig>,
    writer: Mutex<Writer>,
    /// Serializes log start offset moves, whose checkpoint is fsynced
    /// before segments go.
    admin: Mutex<()>,
    /// The segments in offset order, the last one active. Readers clone the
    /// `Arc`; the writer swaps in a new list on roll and deletion. Empty
    /// only in a log that could not be opened (`Log::offline`): it is
    /// offline for good, and every path that needs the active segment
    /// checks that first.
    segments: Mutex<Arc<Vec<Arc<Segment>>>>,
    log_start_offset: AtomicI64,
    log_end_offset: AtomicI64,
    high_watermark: AtomicI64,
    group_commit: GroupCommit,
    /// Every offset below this was made durable by a sync of the whole
    /// file system (`sync_logs`): the group commit need not sync it again.
    synced_by_file_system: AtomicI64,
    /// The recovery point, guarded with the index flushes that move it.
    flush_state: Mutex<i64>,
    /// The leader epoch checkpoint was replaced but not yet fsynced.
    epochs_dirty: AtomicBool,
    /// The offsets of the producer snapshot files in the directory.
    snapshots: Mutex<BTreeSet<i64>>,
    /// Retired `.deleted` files and when they may go (see `deletion`).
    pending_deletions: Mutex<deletion::PendingDeletions>,
    /// Segment files were created but the directory not yet fsynced.
    dir_dirty: AtomicBool,
    closed: AtomicBool,
    /// A read, write or fsync failed: the log is offline (KAFKA_STORAGE_ERROR)
    /// until the broker restarts. See `failure`.
    failed: AtomicBool,
    /// The last write found the disk full (logged once per episode).
    out_of_space: AtomicBool,
    /// The last stable offset and the aborted transactions.
    transactions: transactions::Transactions,
    /// The cleaner checkpoint and the one-cleaning-at-a-time guard.
    cleaner: cleaner::CleanerState,
}

/// What [`Log::assemble`] builds a log from: its directory's contents, or
/// nothing for a log that could not be opened (see `failure`).
struct Parts {
    writer: Writer,
    segments: Vec<Arc<Segment>>,
    log_start_offset: i64,
    log_end_offset: i64,
    recovery_point: i64,
    snapshots: BTreeSet<i64>,
    transactions: transactions::Transactions,
}

/// State only the append path touches, under the append lock.
struct Writer {
    epochs: LeaderEpochCache,
    /// The leader epoch checkpoint on disk is not `epochs`: the open found
    /// the disk full. The next append writes it first.
    epochs_unwritten: bool,
    active: IndexingState,
    /// Reused across appends so validation allocates nothing per append.
    batches: Vec<ValidatedBatch>,
    producers: ProducerStateManager,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

fn now_ms() -> i64 {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    since_epoch.as_millis() as i64
}

impl Log {
    /// Opens (or creates) the log in `dir`, recovering after an unclean
    /// shutdown. A full disk does not fail the open: the log serves what it
    /// holds, refuses appends that find no space, and takes them again once
    /// space returns (see `recovery`).
    pub fn open(dir: impl Into<PathBuf>, config: LogConfig) -> Result<Log> {
        Log::open_with_storage(dir, config, Arc::new(DiskStorage::default()))
    }

    /// [`Log::open_with_storage`] for a caller that opens many logs at once
    /// and makes their directories durable itself, with one sync of the
    /// whole file system, before it appends to any of them: the open leaves
    /// its directory changes (the clean-shutdown marker's removal,
    /// recovery's removals) unsynced, where [`Log::open`] fsyncs the
    /// directory, one fsync per log.
    pub fn open_leaving_directory_unsynced(
        dir: impl Into<PathBuf>,
        config: LogConfig,
        storage: Arc<dyn Storage>,
    ) -> Result<Log> {
        Log::open_in(dir.into(), config, storage, false)
    }

    /// Opens the log on the given storage (e.g. [`SimStorage`] in tests).
    pub fn open_with_storage(dir: impl Into<PathBuf>, config: LogConfig, storage: Arc<dyn Storage>) -> Result<Log> {
        Log::open_in(dir.into(), config, storage, true)
    }

    fn open_in(dir: PathBuf, config: LogConfig, storage: Arc<dyn Storage>, sync_dir: bool) -> Result<Log> {
        let now_ms = now_ms();
        let mut loaded = recovery::load(&storage, &dir, &config, now_ms, sync_dir)?;
        let mut out_of_space = loaded.out_of_space.take();
        let log_end_offset = loaded
            .segments
            .last()
            .map_or(loaded.log_start_offset, |s| s.next_offset());
        let mut indexes = transaction_index::load(storage.as_ref(), &dir, &loaded.segments, loaded.recovered_from)?;
        let (producers, snapshots) = producer_snapshot::load(
            storage.as_ref(),
            &dir,
            &loaded.segments,
            config.producer_id_expiration_ms,
            now_ms,
            &mut indexes.rebuild,
        )?;
        indexes.finish_rebuild(storage.as_ref(), &dir, &mut out_of_space)?;
        let recovery_point =
            recovery::settle_recovery_point(storage.as_ref(), &dir, &loaded, &indexes.stale, &mut out_of_space)?;
        let transactions = transactions::Transactions::new(&producers, indexes);
        let parts = Parts {
            writer: Writer {
                epochs: loaded.epochs,
                epochs_unwritten: loaded.epochs_unwritten,
                active: loaded.active_state,
                batches: Vec::new(),
                producers,
            },
            segments: loaded.segments,
            log_start_offset: loaded.log_start_offset,
            log_end_offset,
            recovery_point,
            snapshots,
            transactions,
        };
        let log = Log::assemble(dir, storage, config, parts);
        if let Some(error) = out_of_space {
            log.note_out_of_space(&error);
        }
        Ok(log)
    }

    fn assemble(dir: PathBuf, storage: Arc<dyn Storage>, config: LogConfig, parts: Parts) -> Log {
        Log {
            dir,
            storage,
            config: Mutex::new(config),
            writer: Mutex::new(parts.writer),
            admin: Mutex::new(()),
            segments: Mutex::new(Arc::new(parts.segments)),
            log_start_offset: AtomicI64::new(parts.log_start_offset),
            log_end_offset: AtomicI64::new(parts.log_end_offset),
            // Everything on disk after open is durable; a single-node broker
            // exposes all of it, a replicated one lowers it with
            // set_high_watermark until the ISR catches up.
            high_watermark: AtomicI64::new(parts.log_end_offset),
            group_commit: GroupCommit::new(parts.log_end_offset),
            synced_by_file_system: AtomicI64::new(parts.log_end_offset),
            flush_state: Mutex::new(parts.recovery_point),
            epochs_dirty: AtomicBool::new(false),
            snapshots: Mutex::new(parts.snapshots),
            pending_deletions: Mutex::default(),
            dir_dirty: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            out_of_space: AtomicBool::new(false),
            transactions: parts.transactions,
            cleaner: cleaner::CleanerState::default(),
        }
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn config(&self) -> LogConfig {
        lock(&self.config).clone()
    }
    /// Replaces the configuration (AlterConfigs); takes effect on the next append/roll.
    pub fn set_config(&self, config: LogConfig) {
        *lock(&self.config) = config;
    }
    /// Validates every batch in `batches` (one or more v2 record batches, as
    /// received), assigns offsets, stamps `leader_epoch` into each batch's
    /// partition leader epoch field, and appends. All or nothing. `batches`
    /// itself is left as it is: the rewritten headers are written in its
    /// batches' place.
    ///
    /// Batches with a producer id are checked against that producer's state
    /// (OutOfOrderSequence, InvalidProducerEpoch); an append of one batch
    /// that retries one of the producer's last 5 is not written again and
    /// returns the original offsets with `duplicate` set.
    pub fn append(&self, batches: &[u8], leader_epoch: i32, now_ms: i64) -> Result<AppendInfo> {
        self.append_batches(batches, leader_epoch, now_ms, AppendOrigin::Client)
    }
    /// Whole batches starting with the one holding `start_offset`, up to
    /// `max_bytes` (the first batch always whole), stopping before any batch
    /// whose last offset is >= `max_offset` (e.g. the high watermark).
    /// `None` when there is nothing to read. OffsetOutOfRange when
    /// `start_offset` is outside [log start offset, log end offset].
    pub fn read(&self, start_offset: i64, max_bytes: usize, max_offset: i64) -> Result<Option<FileSlice>> {
        self.read_batches(start_offset, max_bytes, max_offset)
    }
    /// Appends the bytes of `slice`, which this log's `read` returned, to
    /// `out`. A failure takes the log offline, as a failed `read` does.
    pub fn read_slice(&self, slice: &FileSlice, out: &mut Vec<u8>) -> Result<()> {
        self.check_online()?;
        slice.read_into(out).map_err(|e| match e {
            LogError::Storage(error) => self.fail(error),
            other => other,
        })
    }
    /// A read, write or fsync failed, or the log could not be opened at
    /// all ([`Log::offline`]): the log answers KAFKA_STORAGE_ERROR to reads
    /// and writes until it is opened again (Kafka's offline replica). A
    /// full disk does not take it offline.
    pub fn is_offline(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset.load(Ordering::Acquire)
    }
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }
    /// Sets the high watermark, clamped to [log start offset, log end offset].
    pub fn set_high_watermark(&self, offset: i64) {
        let clamped = offset.min(self.log_end_offset()).max(self.log_start_offset());
        self.high_watermark.store(clamped, Ordering::Release);
        self.on_high_watermark();
    }
    /// Bytes on disk across all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments().iter().map(|s| s.size()).sum()
    }
    /// Group commit: returns once every offset below `offset` is durable.
    /// Concurrent callers share fsyncs.
    pub fn sync_to(&self, offset: i64) -> Result<()> {
        self.sync_offsets_below(offset)
    }
    /// Every offset below this survives a machine crash (was fsynced).
    pub fn durable_offset(&self) -> i64 {
        self.group_commit.durable_offset()
    }
    /// Fsyncs everything appended so far.
    pub fn flush(&self) -> Result<()> {
        self.flush_all()
    }
    /// The first offset whose batch max timestamp is >= `timestamp`, via the time index.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        self.lookup_timestamp(timestamp)
    }
    /// The offset and value of the largest timestamp in the log (ListOffsets -3).
    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>> {
        self.check_online()?;
        Ok(self.largest_timestamp())
    }
    /// Moves the log start offset forward to `offset` (DeleteRecords, retention)
    /// and deletes whole segments below it (their files go after
    /// `file.delete.delay.ms`). Returns the new log start offset.
    pub fn delete_records_before(&self, offset: i64) -> Result<i64> {
        self.advance_log_start_offset(offset)
    }
    /// Removes the files of segments that left the log (renamed `.deleted`)
    /// once their `file.delete.delay.ms` has passed by `now_ms`; returns how
    /// many went. The broker calls it periodically.
    pub fn delete_expired_files(&self, now_ms: i64) -> Result<usize> {
        self.delete_retired_files(now_ms)
    }
    /// Every idempotent producer's state, ordered by producer id
    /// (DescribeProducers). Waits for an append in progress.
    pub fn producer_states(&self) -> Vec<ProducerStateEntry> {
        lock(&self.writer).producers.describe()
    }
    /// Flushes, writes checkpoints and the clean-shutdown marker (see
    /// [`close_logs`] to close many). Files still waiting for
    /// `file.delete.delay.ms` go too: no reader outlives the log.
    pub fn close(&self) -> Result<()> {
        close_logs(&[self]).pop().unwrap_or(Ok(()))
    }
    /// Closes and removes the whole partition directory.
    pub fn delete(self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        let _writer = lock(&self.writer);
        self.storage.remove_dir_all(&self.dir)?;
        Ok(())
    }

    /// A snapshot of the segment list.
    fn segments(&self) -> Arc<Vec<Arc<Segment>>> {
        lock(&self.segments).clone()
    }
}
