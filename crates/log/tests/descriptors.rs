//! How many file descriptors an open log holds: one per segment (its log
//! file), whatever its indexes, so thousands of partitions fit the usual
//! limits. A test binary of its own, so no other test opens files meanwhile.

#[path = "common/encoder.rs"]
mod encoder;

use encoder::batch;
use gregor_log::{Log, LogConfig};

const NOW: i64 = 1_700_000_000_000;

fn open_descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").expect("list descriptors").count()
}

fn segments(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .expect("list the log")
        .filter(|entry| {
            entry
                .as_ref()
                .expect("entry")
                .file_name()
                .to_string_lossy()
                .ends_with(".log")
        })
        .count()
}

#[test]
fn an_open_log_holds_one_descriptor_per_segment() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("t-0");
    let config = LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    };
    let before = open_descriptors();
    {
        let log = Log::open(&path, config.clone()).expect("open");
        for i in 0..60 {
            log.append(&batch(2, 800, NOW + i), 0, NOW).expect("append");
        }
        log.close().expect("close");
    }
    assert_eq!(open_descriptors(), before, "a closed log holds nothing");

    let log = Log::open(&path, config).expect("reopen");
    for i in 0..20 {
        log.append(&batch(2, 800, NOW + 100 + i), 0, NOW).expect("append");
    }
    // The indexes are written (opened and closed again) by the flush.
    log.flush().expect("flush");
    let segments = segments(&path);
    assert!(segments >= 20, "{segments} segments");
    let held = open_descriptors() - before;
    assert!(held <= segments + 2, "{held} descriptors held for {segments} segments");
}
