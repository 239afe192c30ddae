//! Storage faults other than a crash: a full disk refuses writes with
//! KAFKA_STORAGE_ERROR and leaves the log exactly as it was, so that writes
//! resume once space returns (and a log opens on it: `open_on_full_disk`);
//! any other failed read or write takes the log offline (Kafka's log
//! directory failure).

#[path = "common/encoder.rs"]
mod encoder;
#[path = "common/reads.rs"]
mod reads;

use std::path::Path;
use std::sync::Arc;

use encoder::{as_stored, batch, header, idempotent, split_batches};
use gregor_log::{Log, LogConfig, SimStorage, Storage};
use reads::read_all;

const NOW: i64 = 1_700_000_000_000;
const KAFKA_STORAGE_ERROR: i16 = 56;

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

fn open(storage: &Arc<SimStorage>) -> Log {
    Log::open_with_storage("/faults-0", small_segments(), storage.clone()).unwrap()
}

#[test]
fn a_full_disk_refuses_appends_and_writes_resume_when_space_returns() {
    let storage = SimStorage::new();
    let log = open(&storage);
    let mut acknowledged = Vec::new();
    for i in 0..3 {
        let b = batch(3, 100, NOW + i);
        let info = log.append(&b, 0, NOW).unwrap();
        acknowledged.extend_from_slice(&as_stored(&b, info.base_offset, 0, -1));
    }
    log.sync_to(log.log_end_offset()).unwrap();

    storage.set_free_bytes(Some(0));
    let error = log.append(&batch(3, 100, NOW), 0, NOW).unwrap_err();
    assert_eq!(error.code(), KAFKA_STORAGE_ERROR, "{error}");
    assert!(!log.is_offline());
    assert_eq!(log.log_end_offset(), 9);
    // Reads of what is there go on.
    assert_eq!(read_all(&log, 0), acknowledged);
    assert_eq!(log.offset_for_timestamp(NOW).unwrap().unwrap().offset, 0);

    storage.set_free_bytes(None);
    let b = batch(3, 100, NOW + 3);
    assert_eq!(log.append(&b, 0, NOW).unwrap().base_offset, 9);
    acknowledged.extend_from_slice(&as_stored(&b, 9, 0, -1));
    log.sync_to(log.log_end_offset()).unwrap();
    assert_eq!(read_all(&log, 0), acknowledged);

    storage.power_cut();
    drop(log);
    let log = open(&storage);
    assert_eq!(read_all(&log, 0), acknowledged);
}

/// Fills the disk at every point of the append path in turn (segment data,
/// a roll's producer snapshot, the leader epoch checkpoint, the indexes and
/// recovery point a group commit writes): each append either succeeds or
/// fails with KAFKA_STORAGE_ERROR changing nothing, the log stays online,
/// and once space returns the log holds exactly the acknowledged batches in
/// order, after more appends, a power cut and a reopen.
#[test]
fn a_full_disk_at_any_point_leaves_exactly_the_acknowledged_batches() {
    for free in (0..12_000).step_by(173) {
        let storage = SimStorage::new();
        let log = open(&storage);
        let mut acknowledged = Vec::new();
        storage.set_free_bytes(Some(free));
        let mut refused = 0;
        for i in 0..60i64 {
            let b = batch(1 + i as usize % 4, 40 + (i as usize * 37) % 300, NOW + i);
            // A new leader epoch every 16 appends rewrites the epoch checkpoint.
            match log.append(&b, (i / 16) as i32, NOW) {
                Ok(info) => {
                    acknowledged.extend_from_slice(&as_stored(&b, info.base_offset, (i / 16) as i32, -1));
                    // Durable despite the full disk: only the indexes and
                    // the recovery point wait for space.
                    log.sync_to(info.last_offset + 1).unwrap();
                }
                Err(error) => {
                    assert_eq!(error.code(), KAFKA_STORAGE_ERROR, "free={free}: {error}");
                    refused += 1;
                }
            }
            assert!(!log.is_offline(), "free={free}");
        }
        assert!(refused > 0, "free={free}: the disk never filled");
        assert_eq!(read_all(&log, 0), acknowledged, "free={free}");

        storage.set_free_bytes(None);
        for i in 0..10 {
            let b = batch(2, 200, NOW + 100 + i);
            let info = log.append(&b, 4, NOW).unwrap();
            acknowledged.extend_from_slice(&as_stored(&b, info.base_offset, 4, -1));
        }
        log.sync_to(log.log_end_offset()).unwrap();
        storage.power_cut();
        drop(log);
        let log = open(&storage);
        let stored = read_all(&log, 0);
        assert_eq!(stored, acknowledged, "free={free}");
        let offsets: Vec<i64> = split_batches(&stored).iter().map(|b| header(b).base_offset).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "free={free}: {offsets:?}");
    }
}

#[test]
fn a_roll_that_finds_the_disk_full_keeps_the_active_segment() {
    let storage = SimStorage::new();
    let log = open(&storage);
    let mut acknowledged = Vec::new();
    while log.size_bytes() < 3500 {
        let b = batch(2, 150, NOW);
        let info = log.append(&b, 0, NOW).unwrap();
        acknowledged.extend_from_slice(&as_stored(&b, info.base_offset, 0, -1));
    }
    let segments_before = storage.list_dir(Path::new("/faults-0")).unwrap().len();
    // The next append needs a new segment, whose producer snapshot does not fit.
    storage.set_free_bytes(Some(0));
    let error = log.append(&batch(2, 600, NOW), 0, NOW).unwrap_err();
    assert_eq!(error.code(), KAFKA_STORAGE_ERROR);
    assert!(!log.is_offline());
    log.sync_to(log.log_end_offset()).unwrap();
    // What the failed roll left on disk recovers to the log as it was,
    // on the disk still full.
    storage.power_cut();
    drop(log);
    let log = open(&storage);
    assert_eq!(read_all(&log, 0), acknowledged);
    storage.set_free_bytes(None);
    let b = batch(2, 600, NOW);
    let info = log.append(&b, 0, NOW).unwrap();
    acknowledged.extend_from_slice(&as_stored(&b, info.base_offset, 0, -1));
    assert!(storage.list_dir(Path::new("/faults-0")).unwrap().len() > segments_before);
    assert_eq!(read_all(&log, 0), acknowledged);
}

#[test]
fn an_idempotent_producer_retries_a_refused_batch_after_space_returns() {
    let storage = SimStorage::new();
    let log = open(&storage);
    log.append(&idempotent(7, 0, 0, 2, NOW), 0, NOW).unwrap();
    storage.set_free_bytes(Some(0));
    assert_eq!(
        log.append(&idempotent(7, 0, 2, 2, NOW), 0, NOW).unwrap_err().code(),
        KAFKA_STORAGE_ERROR
    );
    storage.set_free_bytes(None);
    // The refused batch left no trace in the producer's state: its retry is
    // the next in sequence, not a duplicate.
    let info = log.append(&idempotent(7, 0, 2, 2, NOW), 0, NOW).unwrap();
    assert_eq!((info.base_offset, info.duplicate), (2, false));
    let info = log.append(&idempotent(7, 0, 2, 2, NOW), 0, NOW).unwrap();
    assert_eq!((info.base_offset, info.duplicate), (2, true));
}

#[test]
fn a_failed_write_other_than_a_full_disk_takes_the_log_offline() {
    let storage = SimStorage::new();
    let log = open(&storage);
    log.append(&batch(1, 10, NOW), 0, NOW).unwrap();
    storage.set_fail_writes(true);
    assert_eq!(
        log.append(&batch(1, 10, NOW), 0, NOW).unwrap_err().code(),
        KAFKA_STORAGE_ERROR
    );
    assert!(log.is_offline());
    storage.set_fail_writes(false);
    assert_eq!(
        log.append(&batch(1, 10, NOW), 0, NOW).unwrap_err().code(),
        KAFKA_STORAGE_ERROR
    );
    assert_eq!(log.read(0, 100, i64::MAX).unwrap_err().code(), KAFKA_STORAGE_ERROR);
}

/// Root ignores file permissions, so the segment is made unreadable the way
/// a failing disk would: its bytes are gone from under the open log.
#[test]
fn a_segment_that_cannot_be_read_takes_the_log_offline() {
    let dir = tempfile::tempdir().unwrap();
    let partition = dir.path().join("unreadable-0");
    let log = Log::open(&partition, small_segments()).unwrap();
    log.append(&batch(3, 100, NOW), 0, NOW).unwrap();
    log.flush().unwrap();
    let slice = log.read(0, 1 << 20, i64::MAX).unwrap().unwrap();
    std::fs::File::options()
        .write(true)
        .open(partition.join("00000000000000000000.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(
        log.read_slice(&slice, &mut out).unwrap_err().code(),
        KAFKA_STORAGE_ERROR
    );
    assert!(log.is_offline());
    assert_eq!(log.read(0, 100, i64::MAX).unwrap_err().code(), KAFKA_STORAGE_ERROR);
    assert_eq!(log.offset_for_timestamp(NOW).unwrap_err().code(), KAFKA_STORAGE_ERROR);
    assert_eq!(
        log.append(&batch(1, 10, NOW), 0, NOW).unwrap_err().code(),
        KAFKA_STORAGE_ERROR
    );
}

#[test]
fn a_read_that_finds_a_damaged_segment_takes_the_log_offline() {
    let dir = tempfile::tempdir().unwrap();
    let partition = dir.path().join("damaged-0");
    let log = Log::open(&partition, small_segments()).unwrap();
    log.append(&batch(3, 100, NOW), 0, NOW).unwrap();
    log.flush().unwrap();
    std::fs::File::options()
        .write(true)
        .open(partition.join("00000000000000000000.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    assert_eq!(log.read(0, 100, i64::MAX).unwrap_err().code(), KAFKA_STORAGE_ERROR);
    assert!(log.is_offline());
}
