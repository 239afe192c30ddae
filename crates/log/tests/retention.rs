//! Retention by time and by size deletes whole old segments only.

#[path = "common/encoder.rs"]
mod encoder;

use encoder::batch;
use gregor_log::{Log, LogConfig};

const NOW: i64 = 1_700_000_000_000;
const MINUTE: i64 = 60_000;

/// A log with one segment per batch: batch i is stamped `NOW - (10 - i) minutes`.
fn ten_segments(dir: &std::path::Path) -> Log {
    let config = LogConfig {
        segment_bytes: 600,
        message_timestamp_before_max_ms: i64::MAX,
        ..LogConfig::default()
    };
    let log = Log::open(dir.join("t-0"), config).unwrap();
    for i in 0..10 {
        let mut bytes = batch(5, 80, NOW - (10 - i) * MINUTE);
        log.append(&mut bytes, 0, NOW).unwrap();
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
