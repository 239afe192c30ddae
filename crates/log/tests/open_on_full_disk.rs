//! Opening a log on a full disk (a broker restarted before space returns):
//! the open succeeds whatever write of it finds no space, recovery still
//! cuts a torn tail off, the log serves what it holds and refuses what does
//! not fit with KAFKA_STORAGE_ERROR, and once space returns it writes what
//! the open put off and takes appends again, without a reopen.

#[path = "common/encoder.rs"]
mod encoder;
#[path = "common/reads.rs"]
mod reads;

use std::path::Path;
use std::sync::Arc;

use encoder::{BatchSpec, as_stored, batch, encode, header, idempotent, split_batches};
use gregor_log::{
    AbortedTransaction, AppendInfo, CleanOptions, Log, LogConfig, ProducerStateEntry, Result, SimStorage, Storage,
    SwapStep,
};
use reads::read_all;

const NOW: i64 = 1_700_000_000_000;
const KAFKA_STORAGE_ERROR: i16 = 56;

/// How a log was left before it opens on a full disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shutdown {
    /// A clean close: nothing to recover.
    Clean,
    /// A power cut after unsynced appends in a new leader epoch whose
    /// checkpoint did reach the disk: recovery cuts that epoch off again,
    /// rebuilds the active segment's indexes and its `.txnindex` file
    /// (whose last entry the power cut lost), and moves the recovery point.
    PowerCut,
    /// A power cut, then half a batch at the end of the last segment: a
    /// torn tail to truncate.
    TornTail,
    /// The last batch damaged on disk below the recovery point: recovery
    /// cuts the log back below its checkpointed recovery point.
    Damaged,
    /// A crash in a cleaning right after its swap's commit point: the open
    /// finishes the swap and rebuilds the swapped-in segment's indexes,
    /// below the recovery point.
    SwapInterrupted,
}

const PARTITION: &str = "/faults-0";
const IDEMPOTENT_PRODUCER: i64 = 7;
const TRANSACTIONAL_PRODUCER: i64 = 9;
const TRANSACTIONAL: i16 = 0x10;

fn reopened_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 128,
        // The tests' timestamps are fixed: keep their producers.
        producer_id_expiration_ms: i64::MAX,
        message_timestamp_after_max_ms: i64::MAX,
        ..LogConfig::default()
    }
}

fn reopen(storage: &Arc<SimStorage>) -> Log {
    Log::open_with_storage(PARTITION, reopened_config(), storage.clone()).expect("the log opens")
}

/// Appends as the broker does (the high watermark follows each append),
/// and keeps what the log must hold: the acknowledged batches as stored,
/// the aborted transactions, and the producers' state.
#[derive(Clone, Default)]
struct History {
    stored: Vec<u8>,
    aborted: Vec<AbortedTransaction>,
    producers: Vec<ProducerStateEntry>,
    timestamp: i64,
    idempotent_sequence: i32,
    transactional_sequence: i32,
    /// The idempotent producer's last acknowledged batch, as sent.
    last_idempotent: Option<(Vec<u8>, AppendInfo)>,
}

impl History {
    fn new() -> History {
        History {
            timestamp: NOW,
            ..History::default()
        }
    }

    fn next_timestamp(&mut self) -> i64 {
        self.timestamp += 10;
        self.timestamp
    }

    fn append(&mut self, log: &Log, bytes: Vec<u8>, epoch: i32) -> Result<AppendInfo> {
        let info = log.append(&bytes, epoch, NOW)?;
        log.set_high_watermark(info.last_offset + 1);
        self.stored
            .extend_from_slice(&as_stored(&bytes, info.base_offset, epoch, -1));
        Ok(info)
    }

    fn plain(&mut self, log: &Log, epoch: i32) -> Result<AppendInfo> {
        let bytes = batch(2, 100, self.next_timestamp());
        self.append(log, bytes, epoch)
    }

    fn idempotent(&mut self, log: &Log, epoch: i32) -> Result<AppendInfo> {
        let bytes = idempotent(
            IDEMPOTENT_PRODUCER,
            0,
            self.idempotent_sequence,
            3,
            self.next_timestamp(),
        );
        let info = self.append(log, bytes.clone(), epoch)?;
        self.idempotent_sequence += 3;
        self.last_idempotent = Some((bytes, info));
        Ok(info)
    }

    /// A transaction of one batch, committed or aborted.
    fn transaction(&mut self, log: &Log, epoch: i32, commit: bool) -> Result<()> {
        let mut spec = BatchSpec::new(2, 20, self.next_timestamp());
        spec.attributes = TRANSACTIONAL;
        spec.producer_id = TRANSACTIONAL_PRODUCER;
        spec.producer_epoch = 0;
        spec.base_sequence = self.transactional_sequence;
        let data = self.append(log, encode(&spec), epoch)?;
        self.transactional_sequence += 2;
        let marker = log.append_marker(TRANSACTIONAL_PRODUCER, 0, commit, 3, epoch, self.next_timestamp())?;
        log.set_high_watermark(marker.last_offset + 1);
        let slice = log.read(marker.base_offset, 1, i64::MAX)?.expect("the marker");
        log.read_slice(&slice, &mut self.stored)?;
        if !commit {
            self.aborted.push(AbortedTransaction {
                producer_id: TRANSACTIONAL_PRODUCER,
                first_offset: data.base_offset,
                last_offset: marker.base_offset,
            });
        }
        Ok(())
    }

    /// A round of each kind of append, the transaction aborted when `abort`.
    fn round(&mut self, log: &Log, epoch: i32, abort: bool) {
        self.plain(log, epoch).unwrap();
        self.idempotent(log, epoch).unwrap();
        self.transaction(log, epoch, !abort).unwrap();
        self.plain(log, epoch).unwrap();
    }

    /// Makes everything appended durable: from here it is acknowledged.
    fn sync(&mut self, log: &Log) {
        log.sync_to(log.log_end_offset()).unwrap();
        self.producers = log.producer_states();
    }

    /// The log holds exactly what was acknowledged, every batch found by
    /// its offset and by its timestamp (the indexes agree with a scan).
    fn check(&self, log: &Log, what: &str) {
        assert!(!log.is_offline(), "{what}");
        let stored = read_all(log, 0);
        assert_eq!(stored.len(), self.stored.len(), "{what}");
        assert!(stored == self.stored, "{what}: the log holds other batches");
        assert_eq!(log.aborted_transactions(0, i64::MAX).unwrap(), self.aborted, "{what}");
        assert_eq!(log.producer_states(), self.producers, "{what}");
        for b in split_batches(&self.stored) {
            let h = header(b);
            let slice = log.read(h.last_offset(), 1, i64::MAX).unwrap().expect("a batch");
            let mut found = Vec::new();
            log.read_slice(&slice, &mut found).unwrap();
            assert_eq!(&found[..b.len()], b, "{what}: read at offset {}", h.last_offset());
            let by_time = log.offset_for_timestamp(h.max_timestamp).unwrap().expect("a batch");
            assert_eq!(by_time.offset, h.base_offset, "{what}: lookup of {}", h.max_timestamp);
        }
    }
}

/// The last segment's `.log` file.
fn last_segment(storage: &SimStorage) -> std::path::PathBuf {
    let mut names = storage.list_dir(Path::new(PARTITION)).unwrap();
    names.retain(|n| n.ends_with(".log"));
    names.sort();
    Path::new(PARTITION).join(names.last().expect("a segment"))
}

/// Writes a log of several segments with an idempotent producer and
/// aborted and committed transactions, and leaves it as `shutdown` says.
fn prepare(storage: &Arc<SimStorage>, shutdown: Shutdown) -> History {
    let log = reopen(storage);
    let mut history = write_history(storage, &log);
    match shutdown {
        Shutdown::Clean => log.close().unwrap(),
        Shutdown::PowerCut => {
            let before = history.clone();
            history.round(&log, 2, true);
            // The group commit fsyncs the epoch checkpoint before the data
            // that carries the new epoch; the power cut comes in between.
            let checkpoint = Path::new(PARTITION).join("leader-epoch-checkpoint");
            storage.set_file_contents(&checkpoint, storage.file_contents(&checkpoint).unwrap());
            storage.power_cut();
            history = before;
        }
        Shutdown::TornTail => {
            storage.power_cut();
            let path = last_segment(storage);
            let mut bytes = storage.file_contents(&path).unwrap();
            bytes.extend_from_slice(&batch(3, 100, NOW)[..90]);
            storage.set_file_contents(&path, bytes);
        }
        Shutdown::Damaged => {
            log.flush().unwrap();
            storage.power_cut();
            let path = last_segment(storage);
            let mut bytes = storage.file_contents(&path).unwrap();
            let last = bytes.len() - 1;
            bytes[last] ^= 0xff;
            storage.set_file_contents(&path, bytes);
            // The damaged batch (a plain one) is gone; nothing else changes.
            let batches = split_batches(&history.stored);
            let cut = history.stored.len() - batches.last().unwrap().len();
            history.stored.truncate(cut);
        }
        Shutdown::SwapInterrupted => {
            let options = CleanOptions {
                crash_after: Some(SwapStep::LogRenamedToSwap),
                ..CleanOptions::default()
            };
            assert!(log.clean(&options, NOW).is_err(), "the simulated crash");
            // What the log holds once the swap is finished: what the same
            // log opened with space to spare holds.
            let reference = SimStorage::new();
            let log = reopen(&reference);
            write_history(&reference, &log);
            assert!(log.clean(&options, NOW).is_err());
            drop(log);
            let log = reopen(&reference);
            assert!(log.size_bytes() < history.stored.len() as u64, "the swap was finished");
            history.stored = read_all(&log, 0);
            history.aborted = log.aborted_transactions(0, i64::MAX).unwrap();
            history.producers = log.producer_states();
        }
    }
    drop(log);
    history
}

/// Rounds of appends over several segments, in leader epochs 0 and 1, then
/// a new segment with enough in it for index entries and an abort (what
/// recovery rebuilds), all synced.
fn write_history(storage: &SimStorage, log: &Log) -> History {
    let mut history = History::new();
    for round in 0..12 {
        history.round(log, round / 6, round % 2 == 1);
    }
    let before = last_segment(storage);
    while last_segment(storage) == before {
        history.plain(log, 1).unwrap();
    }
    history.idempotent(log, 1).unwrap();
    history.transaction(log, 1, false).unwrap();
    history.plain(log, 1).unwrap();
    history.transaction(log, 1, true).unwrap();
    history.plain(log, 1).unwrap();
    history.sync(log);
    history
}

/// Opens the log left by `shutdown` with `free` bytes left on the disk: it
/// serves what it holds, refuses what does not fit with KAFKA_STORAGE_ERROR
/// and stays online, survives a power cut and a restart on the disk still
/// full, and once space returns takes writes again without a restart,
/// after which a power cut or a clean close and a restart find exactly the
/// acknowledged batches, the aborted transactions and the producer state.
fn open_on_a_full_disk(shutdown: Shutdown, free: u64) {
    let what = format!("{shutdown:?}, {free} bytes free");
    let storage = SimStorage::new();
    let mut history = prepare(&storage, shutdown);
    storage.set_free_bytes(Some(free));
    let log = reopen(&storage);
    history.check(&log, &what);
    // A retry of the idempotent producer's last batch is known, full disk or not.
    let (retry, original) = history.last_idempotent.clone().unwrap();
    let info = log.append(&retry, 1, NOW).unwrap();
    assert_eq!(
        (info.base_offset, info.duplicate),
        (original.base_offset, true),
        "{what}"
    );

    // Writes while the disk is (nearly) full: each acknowledged or refused.
    // The log's latest leader epoch is 1 again: the checkpoint on disk may
    // still say epoch 2 starts at the log end, and must not by the time a
    // batch of epoch 1 sits there.
    for i in 0..6 {
        let appended = if i % 2 == 0 {
            history.plain(&log, 1)
        } else {
            history.idempotent(&log, 1)
        };
        match appended {
            Ok(_) => history.sync(&log),
            Err(error) => assert_eq!(error.code(), KAFKA_STORAGE_ERROR, "{what}: {error}"),
        }
        assert!(!log.is_offline(), "{what}");
    }
    history.check(&log, &format!("{what}, after writes on the full disk"));

    // A crash while the disk is still full, and a restart on it.
    storage.power_cut();
    drop(log);
    let log = reopen(&storage);
    history.check(&log, &format!("{what}, restarted on the full disk"));

    // Space returns: writes resume without a restart, and roll segments
    // past the ones the full disk kept the open from checkpointing.
    storage.set_free_bytes(None);
    for round in 0..8 {
        history.round(&log, 1, round % 3 == 0);
    }
    history.sync(&log);
    history.check(&log, &format!("{what}, once space returned"));
    assert_rolled_segments_indexed(&storage, &what);
    storage.power_cut();
    drop(log);
    let log = reopen(&storage);
    history.check(&log, &format!("{what}, after a power cut once space returned"));
    history.round(&log, 2, true);
    history.sync(&log);
    log.close().unwrap();
    drop(log);
    let log = reopen(&storage);
    history.check(&log, &format!("{what}, after a clean close"));
}

/// The indexes the open could not write are on disk once the group commit
/// moved the recovery point past their segments: every rolled segment of
/// more than a few batches has index entries.
fn assert_rolled_segments_indexed(storage: &SimStorage, what: &str) {
    let mut names = storage.list_dir(Path::new(PARTITION)).unwrap();
    names.retain(|n| n.ends_with(".log"));
    names.sort();
    names.pop();
    for name in names {
        let path = Path::new(PARTITION).join(&name);
        if storage.file_contents(&path).unwrap().len() < 1024 {
            continue;
        }
        for extension in ["index", "timeindex"] {
            let index = path.with_extension(extension);
            let len = storage.file_contents(&index).map_or(0, |c| c.len());
            assert!(len > 0, "{what}: {} is empty", index.display());
        }
    }
}

/// What opening the log left by `shutdown` writes when space is plentiful.
fn bytes_an_open_writes(shutdown: Shutdown) -> u64 {
    let storage = SimStorage::new();
    prepare(&storage, shutdown);
    let plenty = 1 << 30;
    storage.set_free_bytes(Some(plenty));
    drop(reopen(&storage));
    plenty - storage.free_bytes().unwrap()
}

/// Kafka needs space to start; a restart on a full disk here opens every
/// log, whatever point of the open (leader epoch checkpoint, rebuilt
/// indexes and `.txnindex` files, recovery point) runs out of space.
#[test]
fn a_log_opens_on_a_full_disk_at_any_point_and_writes_resume_when_space_returns() {
    for shutdown in [
        Shutdown::Clean,
        Shutdown::PowerCut,
        Shutdown::TornTail,
        Shutdown::Damaged,
        Shutdown::SwapInterrupted,
    ] {
        let needed = bytes_an_open_writes(shutdown);
        if shutdown == Shutdown::Clean {
            assert_eq!(needed, 0, "a clean open writes nothing");
        } else {
            assert!(needed > 0, "{shutdown:?}: the open writes nothing");
        }
        // Every byte up to what the open writes, then room for some appends.
        let budgets = (0..=needed).chain((needed + 1..needed + 3000).step_by(211));
        for free in budgets {
            open_on_a_full_disk(shutdown, free);
        }
    }
}

/// Recovery still truncates a torn tail on a full disk (truncation needs
/// no space), and appends after it continue from the truncated end.
#[test]
fn a_torn_tail_is_truncated_on_a_full_disk() {
    let storage = SimStorage::new();
    let mut history = prepare(&storage, Shutdown::TornTail);
    let segment = last_segment(&storage);
    let torn_len = storage.file_contents(&segment).unwrap().len();
    storage.set_free_bytes(Some(0));
    let log = reopen(&storage);
    history.check(&log, "torn tail, no space");
    let stored_len = storage.file_contents(&segment).unwrap().len();
    assert_eq!(torn_len - stored_len, 90, "the torn batch is cut off");
    assert_eq!(history.plain(&log, 1).unwrap_err().code(), KAFKA_STORAGE_ERROR);
    storage.set_free_bytes(None);
    let info = history.plain(&log, 1).unwrap();
    assert_eq!(
        info.base_offset,
        header(split_batches(&history.stored).iter().rev().nth(1).unwrap()).last_offset() + 1
    );
    history.sync(&log);
    storage.power_cut();
    drop(log);
    history.check(&reopen(&storage), "torn tail, reopened once space returned");
}
