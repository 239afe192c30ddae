//! The log's behaviour through its public API.

#[path = "common/encoder.rs"]
mod encoder;
#[path = "common/reads.rs"]
mod reads;

use std::sync::Arc;

use encoder::{as_stored, batch, header, split_batches};
use gregor_log::{Log, LogConfig, LogError, SimStorage, TimestampOffset, TimestampType};
use reads::read_all;

const NOW: i64 = 1_700_000_000_000;

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

#[test]
fn append_assigns_offsets_and_reads_back_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    assert_eq!(
        (log.log_start_offset(), log.log_end_offset(), log.high_watermark()),
        (0, 0, 0)
    );
    let mut expected = Vec::new();
    for i in 0..10 {
        let b = batch(3, 50, NOW + i);
        let info = log.append(&b, 7, NOW).unwrap();
        assert_eq!(
            (info.base_offset, info.last_offset, info.log_append_time_ms),
            (i * 3, i * 3 + 2, -1)
        );
        expected.extend_from_slice(&as_stored(&b, i * 3, 7, -1));
    }
    assert_eq!(log.log_end_offset(), 30);
    let stored = read_all(&log, 0);
    assert_eq!(stored, expected);
    let h = header(&stored[stored.len() - batch(3, 50, NOW).len()..]);
    assert_eq!((h.base_offset, h.leader_epoch), (27, 7));
    // A read from the middle of a batch returns the whole batch.
    let slice = log.read(4, 1, i64::MAX).unwrap().unwrap();
    let mut out = Vec::new();
    slice.read_into(&mut out).unwrap();
    assert_eq!(header(&out).base_offset, 3);
    assert_eq!(
        split_batches(&out).len(),
        1,
        "the first batch whole, even past max_bytes"
    );
    assert_eq!(log.size_bytes(), expected.len() as u64);
    assert!(log.read(30, 100, i64::MAX).unwrap().is_none());
    assert!(matches!(
        log.read(31, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert!(matches!(
        log.read(-1, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn reads_stop_at_max_bytes_and_before_max_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(
        dir.path().join("t-0"),
        LogConfig {
            index_interval_bytes: 100,
            ..LogConfig::default()
        },
    )
    .unwrap();
    let mut sizes = Vec::new();
    for i in 0..20 {
        let b = batch(2, 40, NOW + i);
        sizes.push(b.len());
        log.append(&b, 0, NOW).unwrap();
    }
    let one = sizes[0];
    let slice = log.read(0, one * 3 + one / 2, i64::MAX).unwrap().unwrap();
    assert_eq!(slice.len(), one * 3);
    // High watermark 9: batches [0,1] .. [6,7] are whole below it; [8,9] is not.
    let slice = log.read(0, 1 << 20, 9).unwrap().unwrap();
    assert_eq!(slice.len(), one * 4);
    assert!(log.read(8, 1 << 20, 9).unwrap().is_none());
    let slice = log.read(10, one * 5, 40).unwrap().unwrap();
    let mut out = Vec::new();
    slice.read_into(&mut out).unwrap();
    let batches = split_batches(&out);
    assert_eq!(batches.len(), 5);
    assert_eq!(header(batches[0]).base_offset, 10);
}

#[test]
fn high_watermark_is_clamped() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    log.append(&batch(5, 10, NOW), 0, NOW).unwrap();
    log.set_high_watermark(100);
    assert_eq!(log.high_watermark(), 5);
    log.set_high_watermark(2);
    assert_eq!(log.high_watermark(), 2);
    log.set_high_watermark(-4);
    assert_eq!(log.high_watermark(), 0);
}

#[test]
fn log_append_time_rewrites_timestamp_and_crc() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let log = Log::open(dir.path().join("t-0"), config).unwrap();
    let b = batch(4, 10, 5);
    let crc_before = header(&b).crc;
    let info = log.append(&b, 0, NOW).unwrap();
    assert_eq!(info.log_append_time_ms, NOW);
    let stored = read_all(&log, 0);
    let h = header(&stored);
    assert_eq!(h.max_timestamp, NOW);
    assert_eq!(h.attributes & 0x08, 0x08);
    assert_ne!(h.crc, crc_before);
    assert_eq!(h.crc, crc32c::crc32c(&stored[21..]));
    assert_eq!(stored[61..], b[61..], "the records are stored as received");
    assert_eq!(stored, as_stored(&b, 0, 0, NOW));
    assert_eq!(
        log.max_timestamp().unwrap(),
        Some(TimestampOffset {
            timestamp: NOW,
            offset: 0
        })
    );
}

#[test]
fn create_time_keeps_the_crc_when_nothing_covered_changes() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    let b = batch(4, 10, NOW);
    log.append(&b, 3, NOW).unwrap();
    let stored = read_all(&log, 0);
    assert_eq!(stored[21..], b[21..], "only the base offset and leader epoch change");
    assert_eq!(header(&stored).crc, header(&b).crc);
    assert_eq!(header(&stored).leader_epoch, 3);
}

#[test]
fn batches_in_one_append_get_consecutive_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    log.append(&batch(2, 1, NOW), 0, NOW).unwrap();
    let many = [batch(3, 5, NOW), batch(1, 5, NOW), batch(4, 5, NOW)].concat();
    let info = log.append(&many, 0, NOW).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (2, 9));
    let stored = read_all(&log, 2);
    let bases: Vec<i64> = split_batches(&stored).iter().map(|b| header(b).base_offset).collect();
    assert_eq!(bases, [2, 5, 6]);
    assert_eq!(stored, as_stored(&many, 2, 0, -1));
}

#[test]
fn control_batches_come_from_the_coordinator_only() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    let mut spec = encoder::BatchSpec::new(1, 6, NOW);
    spec.attributes = 0x20 | 0x10; // control, transactional
    spec.producer_id = 42;
    spec.base_sequence = 0;
    let marker = encoder::encode(&spec);
    // As Kafka's LogValidator: "Clients are not allowed to write control records".
    let refused = log.append(&marker.clone(), 0, NOW).unwrap_err();
    assert!(matches!(refused, LogError::InvalidRecord(_)), "{refused:?}");
    assert_eq!(log.append_internal(&marker, 0, NOW).unwrap().base_offset, 0);
}

#[test]
fn segments_roll_on_size_and_keep_kafka_names() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = Log::open(&path, small_segments()).unwrap();
    let mut expected = Vec::new();
    for i in 0..40 {
        let b = batch(2, 200, NOW + i);
        let info = log.append(&b, 0, NOW).unwrap();
        expected.extend_from_slice(&as_stored(&b, info.base_offset, 0, -1));
    }
    log.flush().unwrap();
    let mut names: Vec<String> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert!(names.contains(&"00000000000000000000.log".to_string()));
    assert!(names.contains(&"00000000000000000000.index".to_string()));
    assert!(names.contains(&"00000000000000000000.timeindex".to_string()));
    assert!(names.contains(&"leader-epoch-checkpoint".to_string()));
    assert!(names.contains(&"recovery-point-offset-checkpoint".to_string()));
    let logs = names.iter().filter(|n| n.ends_with(".log")).count();
    assert!(logs >= 5, "{names:?}");
    for name in names.iter().filter(|n| n.ends_with(".log")) {
        assert!(std::fs::metadata(path.join(name)).unwrap().len() <= 4096);
    }
    assert_eq!(read_all(&log, 0), expected);
    // Every offset reads back as the batch holding it.
    for offset in 0..80 {
        let slice = log.read(offset, 1, i64::MAX).unwrap().unwrap();
        let mut out = Vec::new();
        slice.read_into(&mut out).unwrap();
        assert_eq!(header(&out).base_offset, offset / 2 * 2);
    }
    // The offset index holds Kafka's 8-byte entries.
    let index = std::fs::read(path.join("00000000000000000000.index")).unwrap();
    assert!(!index.is_empty() && index.len().is_multiple_of(8));
    let time_index = std::fs::read(path.join("00000000000000000000.timeindex")).unwrap();
    assert!(!time_index.is_empty() && time_index.len().is_multiple_of(12));
}

#[test]
fn segments_roll_on_segment_ms_and_full_index() {
    let storage = SimStorage::new();
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    let log = Log::open_with_storage("/t-0", config, storage.clone()).unwrap();
    log.append(&batch(1, 10, NOW), 0, NOW).unwrap();
    log.append(&batch(1, 10, NOW + 500), 0, NOW + 500).unwrap();
    log.append(&batch(1, 10, NOW + 1500), 0, NOW + 1500).unwrap();
    let segments = |s: &SimStorage| {
        use gregor_log::Storage;
        s.list_dir(std::path::Path::new("/t-0"))
            .unwrap()
            .iter()
            .filter(|n| n.ends_with(".log"))
            .count()
    };
    assert_eq!(segments(&storage), 2);

    let storage = SimStorage::new();
    let config = LogConfig {
        segment_index_bytes: 16,
        index_interval_bytes: 1,
        ..LogConfig::default()
    };
    let log = Log::open_with_storage("/t-0", config, storage.clone()).unwrap();
    for i in 0..10 {
        log.append(&batch(1, 10, NOW + i), 0, NOW).unwrap();
    }
    assert!(segments(&storage) >= 3);
    assert_eq!(read_all(&log, 0).len(), 10 * batch(1, 10, NOW).len());
}

#[test]
fn reopen_after_close_keeps_everything_and_skips_recovery() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = Log::open(&path, small_segments()).unwrap();
    for i in 0..30 {
        log.append(&batch(3, 100, NOW + i * 10), 1 + (i as i32 / 10), NOW)
            .unwrap();
    }
    let before = read_all(&log, 0);
    let max = log.max_timestamp().unwrap();
    let by_time = log.offset_for_timestamp(NOW + 155).unwrap();
    log.close().unwrap();
    assert!(path.join(".kafka_cleanshutdown").exists());
    assert!(matches!(
        log.append(&batch(1, 1, NOW), 3, NOW),
        Err(LogError::Storage(_))
    ));
    drop(log);
    let epochs = std::fs::read_to_string(path.join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(epochs, "0\n3\n1 0\n2 30\n3 60\n");

    let log = Log::open(&path, small_segments()).unwrap();
    assert!(!path.join(".kafka_cleanshutdown").exists());
    assert_eq!(log.log_end_offset(), 90);
    assert_eq!(read_all(&log, 0), before);
    assert_eq!(log.max_timestamp().unwrap(), max);
    assert_eq!(log.offset_for_timestamp(NOW + 155).unwrap(), by_time);
    assert_eq!(
        by_time,
        Some(TimestampOffset {
            timestamp: NOW + 162,
            offset: 48
        })
    );
    assert!(matches!(
        log.append(&batch(1, 1, NOW), 2, NOW),
        Err(LogError::FencedLeaderEpoch { .. })
    ));
    assert_eq!(log.append(&batch(1, 1, NOW), 4, NOW).unwrap().base_offset, 90);
}

#[test]
fn timestamp_lookups() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), small_segments()).unwrap();
    assert_eq!(log.offset_for_timestamp(0).unwrap(), None);
    assert_eq!(log.max_timestamp().unwrap(), None);
    // Timestamps go up and down; lookups find the first batch reaching the target.
    let firsts = [100, 300, 200, 500, 400, 700, 600];
    for (i, t) in firsts.iter().enumerate() {
        let mut spec = encoder::BatchSpec::new(2, 300, NOW + t);
        spec.timestamps[1] = NOW + t + 5;
        log.append(&encoder::encode(&spec), 0, NOW).unwrap();
        assert_eq!(log.log_end_offset(), 2 * (i as i64 + 1));
    }
    let at = |t: i64| {
        log.offset_for_timestamp(NOW + t)
            .unwrap()
            .map(|r| (r.timestamp - NOW, r.offset))
    };
    assert_eq!(at(0), Some((105, 0)));
    assert_eq!(at(105), Some((105, 0)));
    assert_eq!(at(106), Some((305, 2)));
    assert_eq!(at(306), Some((505, 6)));
    assert_eq!(at(600), Some((705, 10)));
    assert_eq!(at(706), None);
    assert_eq!(
        log.max_timestamp().unwrap(),
        Some(TimestampOffset {
            timestamp: NOW + 705,
            offset: 10
        })
    );
}

#[test]
fn delete_records_before_moves_the_start_and_survives_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = Log::open(&path, small_segments()).unwrap();
    for i in 0..40 {
        log.append(&batch(2, 200, NOW + i), 0, NOW).unwrap();
    }
    let files_before = std::fs::read_dir(&path).unwrap().count();
    log.set_high_watermark(50);
    assert!(matches!(
        log.delete_records_before(51),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    assert_eq!(log.delete_records_before(35).unwrap(), 35);
    assert_eq!(log.log_start_offset(), 35);
    assert_eq!(log.delete_records_before(10).unwrap(), 35, "never moves back");
    let live_files = std::fs::read_dir(&path)
        .unwrap()
        .filter(|e| !e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".deleted"))
        .count();
    assert!(live_files < files_before);
    assert!(matches!(
        log.read(34, 100, i64::MAX),
        Err(LogError::OffsetOutOfRange { .. })
    ));
    let mut out = Vec::new();
    log.read(35, 1, i64::MAX).unwrap().unwrap().read_into(&mut out).unwrap();
    assert_eq!(header(&out).base_offset, 34, "the batch holding the log start offset");
    assert_eq!(log.offset_for_timestamp(0).unwrap().unwrap().offset, 35);
    drop(log); // unclean: the start offset was checkpointed when it moved
    let log = Log::open(&path, small_segments()).unwrap();
    assert_eq!(log.log_start_offset(), 35);
    assert_eq!(log.log_end_offset(), 80);
    assert_eq!(
        std::fs::read_to_string(path.join("log-start-offset")).unwrap(),
        "0\n1\nt 0 35\n"
    );
}

#[test]
fn delete_removes_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = Log::open(&path, LogConfig::default()).unwrap();
    log.append(&batch(1, 1, NOW), 0, NOW).unwrap();
    log.delete().unwrap();
    assert!(!path.exists());
}

#[test]
fn set_config_applies_to_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), LogConfig::default()).unwrap();
    let mut config = log.config();
    config.max_message_bytes = 100;
    log.set_config(config);
    assert!(matches!(
        log.append(&batch(1, 200, NOW), 0, NOW),
        Err(LogError::MessageTooLarge { .. })
    ));
    assert_eq!(log.config().max_message_bytes, 100);
}

#[test]
fn group_commit_makes_concurrent_appends_durable() {
    let storage = SimStorage::new();
    let log = Arc::new(Log::open_with_storage("/t-0", LogConfig::default(), storage.clone()).unwrap());
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    let info = log.append(&batch(1, 100, NOW + t * 100 + i), 0, NOW).unwrap();
                    log.sync_to(info.last_offset + 1).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    drop(log);
    storage.power_cut();
    let log = Log::open_with_storage("/t-0", LogConfig::default(), storage).unwrap();
    assert_eq!(log.log_end_offset(), 320);
}

#[test]
fn readers_run_while_the_writer_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(dir.path().join("t-0"), small_segments()).unwrap());
    let reader = {
        let log = log.clone();
        std::thread::spawn(move || {
            let mut offset = 0;
            while offset < 400 {
                if let Some(slice) = log.read(offset, 1000, i64::MAX).unwrap() {
                    let mut out = Vec::new();
                    slice.read_into(&mut out).unwrap();
                    for b in split_batches(&out) {
                        assert_eq!(header(b).base_offset, offset);
                        offset = header(b).last_offset() + 1;
                    }
                }
            }
        })
    };
    for i in 0..200 {
        log.append(&batch(2, 100, NOW + i), 0, NOW).unwrap();
    }
    reader.join().unwrap();
}

#[test]
fn failed_fsync_takes_the_log_offline() {
    let storage = SimStorage::new();
    let log = Log::open_with_storage("/t-0", LogConfig::default(), storage.clone()).unwrap();
    log.append(&batch(1, 10, NOW), 0, NOW).unwrap();
    storage.set_fail_syncs(true);
    let err = log.sync_to(1).unwrap_err();
    assert_eq!(err.code(), 56);
    storage.set_fail_syncs(false);
    assert!(log.append(&batch(1, 10, NOW), 0, NOW).is_err());
    assert!(log.flush().is_err());
    // Offline for reads too, as Kafka's offline replicas: after a failed
    // fsync the log cannot vouch for what it would return.
    assert!(log.is_offline());
    assert_eq!(log.read(0, 100, i64::MAX).unwrap_err().code(), 56);
}

/// Appends start the write-back of what they wrote every mebibyte, so that
/// unsynced data never piles up for the kernel to send at once.
#[test]
fn appends_start_write_back_every_mebibyte() {
    let storage = SimStorage::new();
    let log = Log::open_with_storage("/w-0", LogConfig::default(), storage.clone()).unwrap();
    let segment = std::path::Path::new("/w-0/00000000000000000000.log");
    let mut written_back = Vec::new();
    for i in 0..25 {
        log.append(&batch(1, 100_000, NOW + i), 0, NOW).unwrap();
        written_back.push(storage.written_back_to(segment));
    }
    let len = storage.file_contents(segment).unwrap().len() as u64;
    let started: Vec<u64> = written_back.windows(2).filter(|w| w[0] != w[1]).map(|w| w[1]).collect();
    assert_eq!(
        started.len(),
        2,
        "started at the first and second mebibyte: {written_back:?}"
    );
    assert!(started[0] >= 1 << 20 && started[1] >= 2 << 20 && started[1] <= len);
    assert_eq!(written_back[0], 0, "nothing before the first mebibyte");
}
