//! The idempotent producer's state through the public API: duplicates,
//! sequence and epoch checks, and the state across clean and unclean
//! restarts, power cuts and damaged snapshots.

#[path = "common/encoder.rs"]
mod encoder;
#[path = "common/reads.rs"]
mod reads;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use encoder::{batch, idempotent};
use gregor_log::{AppendInfo, Log, LogConfig, LogError, ProducerStateEntry, SimStorage, Storage, TimestampType};
use reads::read_all;

const PID: i64 = 1000;
const DIR: &str = "/logs/orders-0";

/// The wall clock: the log expires producers against it when it opens.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

fn append(log: &Log, bytes: Vec<u8>, now: i64) -> Result<AppendInfo, LogError> {
    log.append(&bytes, 0, now)
}

/// Appends `count` batches of 2 records from sequence `first_sequence`.
fn append_batches(log: &Log, epoch: i16, first_sequence: i32, count: i32, now: i64) -> Vec<AppendInfo> {
    (0..count)
        .map(|i| append(log, idempotent(PID, epoch, first_sequence + 2 * i, 2, now), now).unwrap())
        .collect()
}

fn state_of(log: &Log, producer_id: i64) -> Option<ProducerStateEntry> {
    log.producer_states().into_iter().find(|p| p.producer_id == producer_id)
}

fn snapshots(storage: &SimStorage) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = storage
        .list_dir(Path::new(DIR))
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".snapshot"))
        .map(|n| Path::new(DIR).join(n))
        .collect();
    names.sort();
    names
}

#[test]
fn a_retried_batch_is_stored_once_and_answered_with_its_original_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    let now = now();
    let first = append_batches(&log, 0, 0, 6, now);
    // Another producer and a plain batch in between change nothing.
    append(&log, idempotent(PID + 1, 0, 0, 3, now), now).unwrap();
    append(&log, batch(1, 10, now), now).unwrap();
    let bytes = read_all(&log, log.log_start_offset());
    let end = log.log_end_offset();
    // Batches 1..=5 are the last five; each retry gets its original offsets.
    for (i, original) in first.iter().enumerate().skip(1) {
        let retry = append(&log, idempotent(PID, 0, 2 * i as i32, 2, now), now + 5).unwrap();
        assert!(retry.duplicate);
        assert_eq!(
            (retry.base_offset, retry.last_offset, retry.log_append_time_ms),
            (original.base_offset, original.last_offset, -1)
        );
        assert_eq!(retry.log_start_offset, 0);
    }
    assert_eq!(
        (log.log_end_offset(), read_all(&log, log.log_start_offset())),
        (end, bytes),
        "nothing was written"
    );
    assert!(first.iter().all(|info| !info.duplicate));
    // The first batch is no longer retained: its retry is out of order.
    let too_old = append(&log, idempotent(PID, 0, 0, 2, now), now).unwrap_err();
    assert!(matches!(
        too_old,
        LogError::OutOfOrderSequence {
            producer_id: PID,
            expected: 12,
            found: 0
        }
    ));
    assert_eq!(too_old.code(), 45);
    let state = state_of(&log, PID).unwrap();
    assert_eq!(
        (state.producer_epoch, state.last_sequence, state.last_offset),
        (0, 11, 11)
    );
    assert_eq!(state.last_timestamp, now + 1, "the last batch's max timestamp");
}

#[test]
fn with_log_append_time_a_retry_gets_the_original_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path().join("t-0"), config).unwrap();
    let now = now();
    let original = append(&log, idempotent(PID, 0, 0, 3, now), now).unwrap();
    assert_eq!(original.log_append_time_ms, now);
    let retry = append(&log, idempotent(PID, 0, 0, 3, now), now + 700).unwrap();
    assert!(retry.duplicate);
    assert_eq!((retry.base_offset, retry.log_append_time_ms), (0, now));
}

#[test]
fn a_sequence_gap_is_refused_and_leaves_the_log_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), small_segments()).unwrap();
    let now = now();
    append_batches(&log, 0, 0, 3, now);
    let (bytes, end, states) = (
        read_all(&log, log.log_start_offset()),
        log.log_end_offset(),
        log.producer_states(),
    );
    let gap = append(&log, idempotent(PID, 0, 7, 2, now), now).unwrap_err();
    assert!(matches!(
        gap,
        LogError::OutOfOrderSequence {
            expected: 6,
            found: 7,
            ..
        }
    ));
    // A multi-batch append whose second batch leaves a gap is refused whole.
    let two = [idempotent(PID, 0, 6, 2, now), idempotent(PID, 0, 9, 1, now)].concat();
    assert!(matches!(
        log.append(&two, 0, now),
        Err(LogError::OutOfOrderSequence {
            expected: 8,
            found: 9,
            ..
        })
    ));
    // A multi-batch append holding a retry is refused rather than half-dropped.
    let with_retry = [idempotent(PID, 0, 4, 2, now), idempotent(PID, 0, 6, 1, now)].concat();
    assert!(matches!(
        log.append(&with_retry, 0, now),
        Err(LogError::OutOfOrderSequence { found: 4, .. })
    ));
    assert_eq!(
        (read_all(&log, log.log_start_offset()), log.log_end_offset()),
        (bytes, end)
    );
    assert_eq!(log.producer_states(), states);
    // Consecutive batches in one append are checked against each other.
    let next_two = [idempotent(PID, 0, 6, 2, now), idempotent(PID, 0, 8, 1, now)].concat();
    let info = log.append(&next_two, 0, now).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (6, 8));
    assert_eq!(state_of(&log, PID).unwrap().last_sequence, 8);
}

#[test]
fn an_older_epoch_is_fenced_and_a_new_epoch_restarts_at_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    let now = now();
    append_batches(&log, 3, 0, 2, now);
    let zombie = append(&log, idempotent(PID, 2, 4, 1, now), now).unwrap_err();
    assert!(matches!(
        zombie,
        LogError::InvalidProducerEpoch {
            producer_id: PID,
            epoch: 2,
            current: 3
        }
    ));
    assert_eq!(zombie.code(), 47);
    let not_at_zero = append(&log, idempotent(PID, 4, 4, 1, now), now).unwrap_err();
    assert!(matches!(
        not_at_zero,
        LogError::OutOfOrderSequence {
            expected: 0,
            found: 4,
            ..
        }
    ));
    assert_eq!(log.log_end_offset(), 4);
    let bumped = append(&log, idempotent(PID, 4, 0, 1, now), now).unwrap();
    assert_eq!((bumped.base_offset, bumped.duplicate), (4, false));
    let state = state_of(&log, PID).unwrap();
    assert_eq!(
        (state.producer_epoch, state.last_sequence, state.last_offset),
        (4, 0, 4)
    );
    // The old epoch's batches are forgotten: their retry is fenced.
    assert!(matches!(
        append(&log, idempotent(PID, 3, 2, 2, now), now),
        Err(LogError::InvalidProducerEpoch { .. })
    ));
}

#[test]
fn unknown_producers_and_plain_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    let now = now();
    append(&log, batch(2, 10, now), now).unwrap();
    assert!(
        log.producer_states().is_empty(),
        "batches without a producer id are not tracked"
    );
    // Since KIP-360 a producer the log does not know may start anywhere.
    append(&log, idempotent(PID, 0, 500, 1, now), now).unwrap();
    assert_eq!(state_of(&log, PID).unwrap().last_sequence, 500);
}

#[test]
fn sequences_wrap_from_i32_max_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    let now = now();
    append(&log, idempotent(PID, 0, i32::MAX - 1, 2, now), now).unwrap();
    assert_eq!(state_of(&log, PID).unwrap().last_sequence, i32::MAX);
    append(&log, idempotent(PID, 0, 0, 2, now), now).unwrap();
    let retry = append(&log, idempotent(PID, 0, i32::MAX - 1, 2, now), now).unwrap();
    assert_eq!((retry.duplicate, retry.base_offset), (true, 0));
}

#[test]
fn idle_producers_expire() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        producer_id_expiration_ms: 60_000,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path().join("t-0"), config.clone()).unwrap();
    let now = now();
    append_batches(&log, 0, 0, 2, now);
    // Appends sweep at most every 10 minutes (Kafka's check interval).
    let later = now + 11 * 60_000;
    append(&log, idempotent(PID + 1, 0, 0, 1, later), later).unwrap();
    assert_eq!(state_of(&log, PID), None);
    // Forgotten, the producer may continue at any sequence.
    append(&log, idempotent(PID, 0, 9, 1, later), later).unwrap();
    drop(log);
    // An old timestamp is expired when the log opens.
    let old = now - 120_000;
    let other = dir.path().join("t-1");
    let log = Log::open(&other, LogConfig::default()).unwrap();
    append(&log, idempotent(PID, 0, 0, 1, old), now).unwrap();
    drop(log);
    assert!(Log::open(&other, config).unwrap().producer_states().is_empty());
}

/// Five batches in segments of a few batches each, so snapshots are taken.
fn log_with_history(storage: &Arc<SimStorage>, now: i64) -> (Log, Vec<AppendInfo>) {
    let log = Log::open_with_storage(DIR, small_segments(), storage.clone()).unwrap();
    let mut infos = Vec::new();
    for i in 0..12 {
        infos.push(append(&log, idempotent(PID, 0, 3 * i, 3, now), now).unwrap());
        append(&log, batch(1, 100, now), now).unwrap();
    }
    (log, infos)
}

fn assert_retry_is_duplicate(log: &Log, original: &AppendInfo, sequence: i32, now: i64) {
    let retry = append(log, idempotent(PID, 0, sequence, 3, now), now).unwrap();
    assert!(retry.duplicate, "retry of sequence {sequence}");
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (original.base_offset, original.last_offset)
    );
}

#[test]
fn the_state_survives_a_clean_restart_from_the_snapshot() {
    let storage = SimStorage::new();
    let now = now();
    let (log, infos) = log_with_history(&storage, now);
    assert!(snapshots(&storage).len() >= 2, "rolls take snapshots");
    let states = log.producer_states();
    let end = log.log_end_offset();
    log.close().unwrap();
    let at_end = Path::new(DIR).join(format!("{end:020}.snapshot"));
    assert!(snapshots(&storage).contains(&at_end), "close snapshots at the log end");
    assert!(snapshots(&storage).len() <= 3, "old snapshots are pruned");
    let log = Log::open_with_storage(DIR, small_segments(), storage.clone()).unwrap();
    assert_eq!(log.producer_states(), states);
    // As in Kafka, a snapshot keeps only each producer's last batch.
    assert_retry_is_duplicate(&log, &infos[11], 33, now);
    assert!(matches!(
        append(&log, idempotent(PID, 0, 30, 3, now), now),
        Err(LogError::OutOfOrderSequence { expected: 36, .. })
    ));
    append(&log, idempotent(PID, 0, 36, 3, now), now).unwrap();
}

/// A close leaves only snapshots at segment bases and its own at the log
/// end: an earlier close's snapshot goes, which the next open would
/// otherwise delete as a stray (one directory sync per log on a broker's
/// start).
#[test]
fn a_close_leaves_no_snapshot_for_the_next_open_to_delete() {
    let storage = SimStorage::new();
    let now = now();
    let (log, _) = log_with_history(&storage, now);
    log.close().unwrap();
    for sequence in [36, 39] {
        let log = Log::open_with_storage(DIR, small_segments(), storage.clone()).unwrap();
        append(&log, idempotent(PID, 0, sequence, 3, now), now).unwrap();
        let end = log.log_end_offset();
        log.close().unwrap();
        let bases: Vec<String> = (storage.list_dir(Path::new(DIR)).unwrap().into_iter())
            .filter_map(|n| n.strip_suffix(".log").map(str::to_string))
            .collect();
        for snapshot in snapshots(&storage) {
            let name = snapshot.file_stem().unwrap().to_str().unwrap().to_string();
            assert!(
                bases.contains(&name) || name == format!("{end:020}"),
                "{name} starts no segment and is not at the log end {end}"
            );
        }
    }
}

#[test]
fn the_state_is_rebuilt_after_a_crash() {
    let storage = SimStorage::new();
    let now = now();
    let (log, infos) = log_with_history(&storage, now);
    let states = log.producer_states();
    drop(log); // no close: the process died
    let log = Log::open_with_storage(DIR, small_segments(), storage.clone()).unwrap();
    assert_eq!(log.producer_states(), states);
    // Batches after the last roll's snapshot are replayed in full.
    assert_retry_is_duplicate(&log, &infos[11], 33, now);
    append(&log, idempotent(PID, 0, 36, 3, now), now).unwrap();
}

#[test]
fn a_power_cut_keeps_the_state_of_the_synced_batches() {
    let storage = SimStorage::new();
    let now = now();
    let (log, infos) = log_with_history(&storage, now);
    log.sync_to(log.log_end_offset()).unwrap();
    let synced_states = log.producer_states();
    // Unsynced: more batches, and a roll with its snapshot.
    for i in 12..20 {
        append(&log, idempotent(PID, 0, 3 * i, 3, now), now).unwrap();
        append(&log, batch(1, 100, now), now).unwrap();
    }
    storage.power_cut();
    drop(log);
    let log = Log::open_with_storage(DIR, small_segments(), storage.clone()).unwrap();
    assert_eq!(log.log_end_offset(), infos[11].last_offset + 2);
    assert_eq!(log.producer_states(), synced_states);
    assert_retry_is_duplicate(&log, &infos[11], 33, now);
    // The producer resends what was lost: accepted as new.
    let resent = append(&log, idempotent(PID, 0, 36, 3, now), now).unwrap();
    assert_eq!(
        (resent.duplicate, resent.base_offset),
        (false, infos[11].last_offset + 2)
    );
}

#[test]
fn a_corrupt_snapshot_is_ignored_and_the_state_rebuilt() {
    let storage = SimStorage::new();
    let now = now();
    let (log, infos) = log_with_history(&storage, now);
    let states = log.producer_states();
    log.close().unwrap();
    for path in snapshots(&storage) {
        let mut bytes = storage.file_contents(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        storage.set_file_contents(&path, bytes);
    }
    let log = Log::open_with_storage(DIR, small_segments(), storage.clone()).unwrap();
    assert_eq!(log.producer_states(), states);
    assert!(snapshots(&storage).is_empty(), "damaged snapshots are deleted");
    // Rebuilt from the log itself, all five retained batches are known.
    assert_retry_is_duplicate(&log, &infos[7], 21, now);
    // An empty or garbage snapshot file does not stop the log opening either.
    log.close().unwrap();
    let newest = snapshots(&storage).pop().unwrap();
    storage.set_file_contents(&newest, Vec::new());
    storage.set_file_contents(&Path::new(DIR).join("00000000000000000001.snapshot"), b"junk".to_vec());
    let log = Log::open_with_storage(DIR, small_segments(), storage.clone()).unwrap();
    assert_eq!(log.producer_states(), states);
}

#[test]
fn snapshots_of_deleted_segments_are_deleted() {
    let storage = SimStorage::new();
    let now = now();
    let (log, _) = log_with_history(&storage, now);
    let before = snapshots(&storage);
    let end = log.log_end_offset();
    log.set_high_watermark(end);
    log.delete_records_before(end - 4).unwrap();
    let after = snapshots(&storage);
    let first_segment: i64 = storage
        .list_dir(Path::new(DIR))
        .unwrap()
        .iter()
        .filter_map(|n| n.strip_suffix(".log")?.parse().ok())
        .min()
        .unwrap();
    assert!(after.len() < before.len());
    assert!(after.iter().all(|p| {
        let offset: i64 = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        offset >= first_segment
    }));
    // The producer whose batches were deleted is still known after a restart.
    let states = log.producer_states();
    drop(log);
    let log = Log::open_with_storage(DIR, small_segments(), storage.clone()).unwrap();
    assert_eq!(log.producer_states(), states);
}

#[test]
fn the_state_survives_a_restart_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = Log::open(&path, small_segments()).unwrap();
    let now = now();
    let infos = append_batches(&log, 0, 0, 40, now);
    let states = log.producer_states();
    log.close().unwrap();
    let log = Log::open(&path, small_segments()).unwrap();
    assert_eq!(log.producer_states(), states);
    let last = infos.last().unwrap();
    let retry = append(&log, idempotent(PID, 0, 78, 2, now), now).unwrap();
    assert_eq!((retry.duplicate, retry.base_offset), (true, last.base_offset));
    drop(log);
    let log = Log::open(&path, small_segments()).unwrap();
    assert_eq!(log.producer_states(), states);
}
