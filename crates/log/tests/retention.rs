//! Retention by time and by size deletes whole old segments only, whose
//! files are renamed `.deleted` and removed after `file.delete.delay.ms`.

#[path = "common/encoder.rs"]
mod encoder;
#[path = "common/files.rs"]
mod files;

use std::path::Path;

use encoder::batch;
use files::{names_ending, wall_clock_ms};
use gregor_log::{Log, LogConfig};

const NOW: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

/// A log with one segment per batch: batch i is stamped `NOW - (10 - i) minutes`.
fn ten_segments(dir: &Path) -> Log {
    ten_segments_deleting_after(dir, LogConfig::default().file_delete_delay_ms)
}

fn ten_segments_deleting_after(dir: &Path, file_delete_delay_ms: i64) -> Log {
    let config = LogConfig {
        segment_bytes: 600,
        message_timestamp_before_max_ms: i64::MAX,
        file_delete_delay_ms,
        ..LogConfig::default()
    };
    let log = Log::open(dir.join("t-0"), config).unwrap();
    for i in 0..10 {
        let bytes = batch(5, 80, NOW - (10 - i) * MINUTE);
        log.append(&bytes, 0, NOW).unwrap();
    }
    log.set_high_watermark(log.log_end_offset());
    log
}

#[test]
fn time_retention_deletes_segments_whose_newest_record_is_too_old() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten_segments(dir.path());
    assert_eq!(
        log.apply_retention(60 * MINUTE, -1, NOW).unwrap(),
        None,
        "nothing is an hour old"
    );
    // Batches stamped 10..=6 minutes ago (offsets 0..25) are older than 5.5 minutes.
    let start = log.apply_retention(5 * MINUTE + MINUTE / 2, -1, NOW).unwrap();
    assert_eq!(start, Some(25));
    assert_eq!(log.log_start_offset(), 25);
    assert!(log.read(0, 1 << 20, i64::MAX).is_err(), "deleted records are gone");
    assert_eq!(log.log_end_offset(), 50);
    // Even when everything expired, the active segment stays.
    assert_eq!(log.apply_retention(0, -1, NOW + 60 * MINUTE).unwrap(), Some(45));
    drop(log);
    let reopened = Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    assert_eq!(
        reopened.log_start_offset(),
        45,
        "the new log start offset survives a restart"
    );
}

#[test]
fn size_retention_keeps_the_log_under_its_limit() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten_segments(dir.path());
    let total = log.size_bytes();
    let per_segment = total / 10;
    let start = log.apply_retention(-1, (per_segment * 4) as i64, NOW).unwrap();
    assert_eq!(start, Some(30), "six segments go, four stay");
    assert!(log.size_bytes() <= per_segment * 4);
    assert_eq!(log.apply_retention(-1, (per_segment * 4) as i64, NOW).unwrap(), None);
}

#[test]
fn nothing_at_or_above_the_high_watermark_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten_segments(dir.path());
    log.set_high_watermark(12);
    assert_eq!(
        log.apply_retention(0, -1, NOW).unwrap(),
        Some(10),
        "only segments wholly below the high watermark"
    );
}

#[test]
fn deleted_segments_are_renamed_then_removed_after_file_delete_delay_ms() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten_segments_deleting_after(dir.path(), 60_000);
    // A fetch that found the first segment before retention removed it.
    let slice = log.read(0, 1 << 20, i64::MAX).unwrap().unwrap();
    let mut before = Vec::new();
    slice.read_into(&mut before).unwrap();

    assert_eq!(log.apply_retention(5 * MINUTE + MINUTE / 2, -1, NOW).unwrap(), Some(25));
    let live = names_ending(dir.path(), "");
    for base in [0, 5, 10, 15, 20] {
        for extension in ["log", "index", "timeindex"] {
            let name = format!("{base:020}.{extension}");
            assert!(!live.contains(&name), "{name} left the log");
            assert!(
                live.contains(&format!("{name}.deleted")),
                "{name} was renamed: {live:?}"
            );
        }
    }
    // The producer snapshots of the deleted segments (written when each
    // next segment rolled) are retired with them.
    assert!(live.contains(&"00000000000000000020.snapshot.deleted".to_string()));
    assert!(
        names_ending(dir.path(), ".snapshot")
            .iter()
            .all(|n| n[..20] >= *"00000000000000000025")
    );
    let mut renamed = Vec::new();
    slice.read_into(&mut renamed).unwrap();
    assert_eq!(renamed, before, "the renamed segment reads as before");

    assert_eq!(
        log.delete_expired_files(wall_clock_ms()).unwrap(),
        0,
        "the delay has not passed"
    );
    let retired = names_ending(dir.path(), ".deleted").len();
    assert_eq!(log.delete_expired_files(wall_clock_ms() + 60_000).unwrap(), retired);
    assert!(names_ending(dir.path(), ".deleted").is_empty());
    let mut removed = Vec::new();
    slice.read_into(&mut removed).unwrap();
    assert_eq!(removed, before, "a reader holding the file finishes after the removal");
}

#[test]
fn without_a_delay_the_files_go_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten_segments_deleting_after(dir.path(), 0);
    assert_eq!(log.apply_retention(5 * MINUTE + MINUTE / 2, -1, NOW).unwrap(), Some(25));
    assert!(names_ending(dir.path(), ".deleted").is_empty());
    assert_eq!(names_ending(dir.path(), ".log")[0], "00000000000000000025.log");
}

#[test]
fn files_waiting_for_their_delay_go_when_the_log_opens_again_or_closes() {
    let dir = tempfile::tempdir().unwrap();
    let log = ten_segments(dir.path());
    log.apply_retention(5 * MINUTE + MINUTE / 2, -1, NOW).unwrap();
    assert!(!names_ending(dir.path(), ".deleted").is_empty());
    // A crash: no close.
    drop(log);
    let log = Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    assert!(
        names_ending(dir.path(), ".deleted").is_empty(),
        "the open deletes leftovers"
    );
    assert_eq!(log.log_start_offset(), 25);

    assert_eq!(log.delete_records_before(35).unwrap(), 35);
    assert!(!names_ending(dir.path(), ".deleted").is_empty());
    log.close().unwrap();
    assert!(
        names_ending(dir.path(), ".deleted").is_empty(),
        "a clean close deletes them"
    );
}
