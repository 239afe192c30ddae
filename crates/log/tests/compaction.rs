//! Log compaction through the public API: the latest value of every key
//! survives at its offset, tombstones go after `delete.retention.ms`,
//! compressed batches keep their codec, producers and transactions are
//! handled as Kafka's cleaner handles them, a compacted log refuses records
//! without a key, producer snapshots of merged segments are retired with
//! them, and a crash at any step of a segment swap leaves a valid log.

#[path = "common/files.rs"]
mod files;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use gregor_log::{CleanOptions, CleanOutcome, Log, LogConfig, LogError, SimStorage, Storage, SwapStep, TimestampType};
use kafka_protocol::records::{
    Compression, NO_PARTITION_LEADER_EPOCH, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType as RecordTimestampType,
};

use files::{names_ending, wall_clock_ms};

const NOW: i64 = 1_700_000_000_000;
const DAY: i64 = 86_400_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        compact: true,
        // Fixed test timestamps: keep producers and accept old records.
        producer_id_expiration_ms: i64::MAX,
        message_timestamp_after_max_ms: i64::MAX,
        ..LogConfig::default()
    }
}

/// A record to produce: key, value (`None`: a tombstone).
type Kv<'a> = (Option<&'a str>, Option<&'a str>);

struct Producer {
    id: i64,
    epoch: i16,
    sequence: i32,
    transactional: bool,
}

fn encode(records: &[Kv], timestamp: i64, compression: Compression, producer: Option<&Producer>) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, (key, value))| Record {
            transactional: producer.is_some_and(|p| p.transactional),
            control: false,
            delete_horizon: false,
            partition_leader_epoch: NO_PARTITION_LEADER_EPOCH,
            producer_id: producer.map_or(-1, |p| p.id),
            producer_epoch: producer.map_or(-1, |p| p.epoch),
            timestamp_type: RecordTimestampType::Creation,
            offset: i as i64,
            // The encoder keeps records in one batch while offset - sequence
            // stays the same; without a producer the base sequence is -1.
            sequence: producer.map_or(i as i32 - 1, |p| p.sequence + i as i32),
            timestamp: timestamp + i as i64,
            key: key.map(|k| Bytes::copy_from_slice(k.as_bytes())),
            value: value.map(|v| Bytes::copy_from_slice(v.as_bytes())),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &options).unwrap();
    buf.to_vec()
}

fn append(log: &Log, records: &[Kv], timestamp: i64) -> i64 {
    append_with(log, records, timestamp, Compression::None, None)
}

fn append_with(
    log: &Log,
    records: &[Kv],
    timestamp: i64,
    compression: Compression,
    producer: Option<&Producer>,
) -> i64 {
    let bytes = encode(records, timestamp, compression, producer);
    let info = log.append(&bytes, 0, timestamp).unwrap();
    log.set_high_watermark(info.last_offset + 1);
    info.base_offset
}

/// A stored batch's header fields tests look at.
#[derive(Debug, Clone, Copy)]
struct BatchInfo {
    base_offset: i64,
    last_offset: i64,
    attributes: i16,
    records: i32,
    max_timestamp: i64,
    producer_id: i64,
    base_sequence: i32,
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_be_bytes(b[at..at + 8].try_into().unwrap())
}
fn i32_at(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes(b[at..at + 4].try_into().unwrap())
}

/// Every batch and record from the log start to the high watermark:
/// (batches, offset → (key, value, timestamp)).
#[allow(clippy::type_complexity)]
fn read_all(log: &Log) -> (Vec<BatchInfo>, BTreeMap<i64, (Option<String>, Option<String>, i64)>) {
    let end = log.high_watermark();
    let mut offset = log.log_start_offset();
    let mut batches = Vec::new();
    let mut records = BTreeMap::new();
    while offset < end {
        let Some(slice) = log.read(offset, 1 << 16, end).unwrap() else {
            break;
        };
        let mut bytes = Vec::new();
        slice.read_into(&mut bytes).unwrap();
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let size = i32_at(rest, 8) as usize + 12;
            let b = &rest[..size];
            let info = BatchInfo {
                base_offset: i64_at(b, 0),
                last_offset: i64_at(b, 0) + i32_at(b, 23) as i64,
                attributes: i16::from_be_bytes([b[21], b[22]]),
                records: i32_at(b, 57),
                max_timestamp: i64_at(b, 35),
                producer_id: i64_at(b, 43),
                base_sequence: i32_at(b, 53),
            };
            assert!(info.base_offset >= offset || batches.is_empty(), "offsets only grow");
            batches.push(info);
            for set in RecordBatchDecoder::decode_all(&mut Bytes::copy_from_slice(b)).unwrap() {
                for r in set.records {
                    let text = |b: Option<Bytes>| b.map(|b| String::from_utf8(b.to_vec()).unwrap());
                    assert!(r.offset >= info.base_offset && r.offset <= info.last_offset);
                    let previous = records.insert(r.offset, (text(r.key), text(r.value), r.timestamp));
                    assert!(previous.is_none(), "offset {} read twice", r.offset);
                }
            }
            offset = info.last_offset + 1;
            rest = &rest[size..];
        }
    }
    (batches, records)
}

/// `rounds` updates of `keys` keys (`<prefix>-<n>`), one batch of 10
/// records per append. Returns offset → (key, value) of everything written.
fn write_updates(
    log: &Log,
    prefix: &str,
    keys: usize,
    rounds: usize,
    timestamp: i64,
) -> BTreeMap<i64, (String, String)> {
    let mut written = BTreeMap::new();
    for round in 0..rounds {
        for chunk in (0..keys).collect::<Vec<_>>().chunks(10) {
            let kvs: Vec<(String, String)> = chunk
                .iter()
                .map(|k| (format!("{prefix}-{k}"), format!("value-{k}-{round}")))
                .collect();
            let refs: Vec<Kv> = kvs.iter().map(|(k, v)| (Some(k.as_str()), Some(v.as_str()))).collect();
            let base = append(log, &refs, timestamp);
            for (i, (k, v)) in kvs.into_iter().enumerate() {
                written.insert(base + i as i64, (k, v));
            }
        }
    }
    written
}

/// The latest (offset, value) of each key in `written`.
fn latest(written: &BTreeMap<i64, (String, String)>) -> BTreeMap<String, (i64, String)> {
    let mut latest = BTreeMap::new();
    for (offset, (k, v)) in written {
        latest.insert(k.clone(), (*offset, v.clone()));
    }
    latest
}

fn clean(log: &Log, now: i64) -> gregor_log::CleanStats {
    log.clean(&CleanOptions::default(), now).unwrap()
}

#[test]
fn the_latest_value_of_every_key_survives_at_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), config()).unwrap();
    let written = write_updates(&log, "key", 100, 10, NOW);
    let end = log.log_end_offset();
    let size_before = log.size_bytes();
    let info = log.cleanable(&CleanOptions::default(), NOW).unwrap();
    assert!(info.dirty_ratio() > 0.9, "{info:?}");

    let stats = clean(&log, NOW);
    assert_eq!(stats.outcome, CleanOutcome::Cleaned);
    assert!(
        log.size_bytes() < size_before / 3,
        "{} -> {}",
        size_before,
        log.size_bytes()
    );
    assert_eq!(log.log_end_offset(), end, "the log end offset does not move");
    let (_, records) = read_all(&log);
    for (key, (offset, value)) in latest(&written) {
        let (k, v, _) = &records[&offset];
        assert_eq!((k.as_deref(), v.as_deref()), (Some(key.as_str()), Some(value.as_str())));
    }
    // Below the end of the cleaning, one record per key: the latest there.
    let cleaned_part: BTreeMap<i64, (String, String)> = written
        .range(..stats.end_offset)
        .map(|(o, kv)| (*o, kv.clone()))
        .collect();
    let mut latest_cleaned: Vec<i64> = latest(&cleaned_part).values().map(|(o, _)| *o).collect();
    latest_cleaned.sort_unstable();
    let kept: Vec<i64> = records.range(..stats.end_offset).map(|(o, _)| *o).collect();
    assert_eq!(kept, latest_cleaned);
    for (offset, (k, v, _)) in &records {
        let (wk, wv) = &written[offset];
        assert_eq!(
            (k.as_deref(), v.as_deref()),
            (Some(wk.as_str()), Some(wv.as_str())),
            "offset {offset}"
        );
    }
    // The dirty ratio is now that of the active segment alone, which never cleans.
    let after = log.cleanable(&CleanOptions::default(), NOW).unwrap();
    assert_eq!(after.first_dirty_offset, stats.end_offset);
    assert_eq!(after.cleanable_bytes, 0);
    assert_eq!(clean(&log, NOW).outcome, CleanOutcome::NothingToClean);

    // Reopened (the checkpoint and the cleaned segments survive) and still appendable.
    drop(log);
    let log = Log::open(dir.path().join("t-0"), config()).unwrap();
    assert_eq!(read_all(&log).1, records);
    assert_eq!(
        log.cleanable(&CleanOptions::default(), NOW).unwrap().first_dirty_offset,
        stats.end_offset
    );
    assert_eq!(append(&log, &[(Some("key-1"), Some("again"))], NOW), end);
}

#[test]
fn cleaning_again_folds_new_updates_into_the_cleaned_log() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), config()).unwrap();
    let mut written = write_updates(&log, "key", 50, 5, NOW);
    clean(&log, NOW);
    written.extend(write_updates(&log, "key", 50, 5, NOW + 1000));
    let stats = clean(&log, NOW + 2000);
    assert_eq!(stats.outcome, CleanOutcome::Cleaned);
    let (_, records) = read_all(&log);
    for (key, (offset, value)) in latest(&written) {
        assert_eq!(records[&offset].1.as_deref(), Some(value.as_str()), "{key}");
    }
    let below_dirty = records.keys().filter(|o| **o < stats.end_offset).count();
    assert!(
        below_dirty <= 50,
        "one record per key below the new checkpoint, got {below_dirty}"
    );
}

#[test]
fn tombstones_stay_for_delete_retention_ms_then_go() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), config()).unwrap();
    write_updates(&log, "key", 40, 3, NOW);
    let deleted: Vec<String> = (0..20).map(|k| format!("key-{k}")).collect();
    let mut tombstones = Vec::new();
    for chunk in deleted.chunks(5) {
        let kvs: Vec<Kv> = chunk.iter().map(|k| (Some(k.as_str()), None)).collect();
        let base = append(&log, &kvs, NOW);
        tombstones.extend((0..5).map(|i| base + i));
    }
    write_updates(&log, "filler", 10, 20, NOW); // rolls the tombstones out of the active segment
    let options = CleanOptions {
        delete_retention_ms: DAY,
        ..CleanOptions::default()
    };
    log.clean(&options, NOW).unwrap();
    let (_, records) = read_all(&log);
    for offset in &tombstones {
        assert_eq!(records[offset].1, None, "the first cleaning keeps tombstone {offset}");
    }
    for key in &deleted {
        let values = records
            .values()
            .filter(|(k, v, _)| k.as_deref() == Some(key) && v.is_some())
            .count();
        assert_eq!(values, 0, "no value of deleted {key} survives");
    }

    // Within delete.retention.ms they stay; after it, a cleaning drops them.
    write_updates(&log, "filler", 10, 20, NOW);
    log.clean(&options, NOW + DAY - 1).unwrap();
    assert!(tombstones.iter().all(|o| read_all(&log).1.contains_key(o)));
    write_updates(&log, "filler", 10, 20, NOW);
    log.clean(&options, NOW + DAY).unwrap();
    let (_, records) = read_all(&log);
    assert!(
        tombstones.iter().all(|o| !records.contains_key(o)),
        "tombstones are gone"
    );
    for k in 20..40 {
        let key = format!("key-{k}");
        assert!(
            records
                .values()
                .any(|(rk, v, _)| rk.as_deref() == Some(&key) && v.is_some())
        );
    }
}

#[test]
fn compressed_batches_keep_their_codec_offsets_and_timestamps() {
    for compression in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path().join("t-0"), config()).unwrap();
        let mut written = BTreeMap::new();
        for round in 0..30i64 {
            let kvs: Vec<(String, String)> = (0..8)
                .map(|k| (format!("key-{}", (k + round) % 12), format!("value-{round}-{k}")))
                .collect();
            let refs: Vec<Kv> = kvs.iter().map(|(k, v)| (Some(k.as_str()), Some(v.as_str()))).collect();
            let timestamp = NOW + round * 100;
            let base = append_with(&log, &refs, timestamp, compression, None);
            for (i, (k, v)) in kvs.into_iter().enumerate() {
                written.insert(base + i as i64, (k, v, timestamp + i as i64));
            }
        }
        assert!(read_all(&log).0.iter().all(|b| b.records == 8));
        clean(&log, NOW + 10_000);
        let (batches, records) = read_all(&log);
        assert!(
            batches
                .iter()
                .all(|b| b.records == 0 || b.attributes & 7 == compression as i16)
        );
        let rewritten = |b: &BatchInfo| b.records > 0 && (b.records as i64) < b.last_offset - b.base_offset + 1;
        assert!(batches.iter().any(rewritten), "some batches lost some of their records");
        assert!(records.len() < written.len());
        let mut latest = BTreeMap::new();
        for (offset, (k, _, _)) in &written {
            latest.insert(k.clone(), *offset);
        }
        for offset in latest.values() {
            let (k, v, t) = &written[offset];
            assert_eq!(
                records[offset],
                (Some(k.clone()), Some(v.clone()), *t),
                "{compression:?} at {offset}"
            );
        }
    }
}

#[test]
fn a_compacted_log_refuses_records_without_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), config()).unwrap();
    for compression in [Compression::None, Compression::Gzip, Compression::Zstd] {
        let bytes = encode(
            &[(Some("k"), Some("v")), (None, Some("no key"))],
            NOW,
            compression,
            None,
        );
        let error = log.append(&bytes, 0, NOW).unwrap_err();
        assert!(matches!(error, LogError::InvalidRecord(_)), "{error}");
        assert_eq!(error.code(), 87, "INVALID_RECORD");
    }
    assert_eq!(log.log_end_offset(), 0);
    let tombstone = encode(&[(Some("k"), None)], NOW, Compression::None, None);
    log.append(&tombstone, 0, NOW).unwrap();

    let plain = Log::open(
        dir.path().join("t-1"),
        LogConfig {
            compact: false,
            ..config()
        },
    )
    .unwrap();
    let bytes = encode(&[(None, Some("no key"))], NOW, Compression::Gzip, None);
    plain.append(&bytes, 0, NOW).unwrap();
}

#[test]
fn a_live_producers_last_batch_stays_even_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), config()).unwrap();
    let mut producer = Producer {
        id: 77,
        epoch: 3,
        sequence: 0,
        transactional: false,
    };
    let mut last_base = 0;
    for _ in 0..5 {
        last_base = append_with(
            &log,
            &[(Some("a"), Some("x")), (Some("b"), Some("y"))],
            NOW,
            Compression::None,
            Some(&producer),
        );
        producer.sequence += 2;
    }
    // Later plain writes supersede every key the producer wrote.
    write_updates(&log, "filler", 10, 2, NOW);
    for k in ["a", "b"] {
        append(&log, &[(Some(k), Some("newer"))], NOW);
    }
    write_updates(&log, "filler", 10, 20, NOW);
    clean(&log, NOW);
    let (batches, records) = read_all(&log);
    let from_producer: Vec<&BatchInfo> = batches.iter().filter(|b| b.producer_id == 77).collect();
    assert_eq!(from_producer.len(), 1, "only the producer's last batch stays");
    assert_eq!(
        (
            from_producer[0].base_offset,
            from_producer[0].last_offset,
            from_producer[0].records,
            from_producer[0].base_sequence
        ),
        (last_base, last_base + 1, 0, 8)
    );
    assert!(!records.contains_key(&last_base));
    // The producer's sequence carries on, after a restart too.
    drop(log);
    let log = Log::open(dir.path().join("t-0"), config()).unwrap();
    append_with(&log, &[(Some("c"), Some("z"))], NOW, Compression::None, Some(&producer));
    producer.sequence = 20;
    let gap = encode(&[(Some("c"), Some("z"))], NOW, Compression::None, Some(&producer));
    assert!(matches!(
        log.append(&gap, 0, NOW),
        Err(LogError::OutOfOrderSequence { .. })
    ));
}

#[test]
fn aborted_transactions_go_and_their_markers_follow_after_delete_retention() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), config()).unwrap();
    let mut producer = Producer {
        id: 5,
        epoch: 0,
        sequence: 0,
        transactional: true,
    };
    let mut txn = |log: &Log, kvs: &[Kv], commit: bool| {
        let base = append_with(log, kvs, NOW, Compression::None, Some(&producer));
        producer.sequence += kvs.len() as i32;
        let marker = log.append_marker(5, 0, commit, 1, 0, NOW).unwrap().base_offset;
        log.set_high_watermark(log.log_end_offset());
        (base, marker)
    };
    let (aborted_base, abort) = txn(
        &log,
        &[(Some("t1"), Some("aborted")), (Some("t2"), Some("aborted"))],
        false,
    );
    let (committed_base, commit) = txn(&log, &[(Some("t3"), Some("committed"))], true);
    write_updates(&log, "filler", 10, 30, NOW);

    let options = CleanOptions {
        delete_retention_ms: DAY,
        ..CleanOptions::default()
    };
    log.clean(&options, NOW).unwrap();
    let (batches, records) = read_all(&log);
    assert!(!records.contains_key(&aborted_base), "aborted data goes");
    assert!(batches.iter().all(|b| b.base_offset != aborted_base), "its batch too");
    assert_eq!(records[&committed_base].1.as_deref(), Some("committed"));
    let control = |b: &&BatchInfo| b.attributes & 0x20 != 0;
    let markers: Vec<i64> = batches.iter().filter(control).map(|b| b.base_offset).collect();
    assert_eq!(markers, [abort, commit], "markers stay while their data was there");

    // The next cleaning sees no data of the aborted transaction: its marker
    // gets a delete horizon; one after the horizon drops it. The committed
    // transaction's data is still there, and so is its marker.
    write_updates(&log, "filler", 10, 30, NOW);
    log.clean(&options, NOW).unwrap();
    let (batches, _) = read_all(&log);
    let marked = batches.iter().find(|b| b.base_offset == abort).unwrap();
    assert_eq!(marked.attributes & 0x40, 0x40, "the abort marker has a delete horizon");
    write_updates(&log, "filler", 10, 30, NOW);
    log.clean(&options, NOW + DAY).unwrap();
    let (batches, records) = read_all(&log);
    let markers: Vec<i64> = batches.iter().filter(control).map(|b| b.base_offset).collect();
    assert_eq!(markers, [commit]);
    assert_eq!(records[&committed_base].1.as_deref(), Some("committed"));
}

#[test]
fn a_small_offset_map_cleans_in_several_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), config()).unwrap();
    let written = write_updates(&log, "key", 300, 4, NOW);
    // 200 slots at 0.9: 180 keys per round.
    let options = CleanOptions {
        dedupe_buffer_bytes: 200 * 24,
        ..CleanOptions::default()
    };
    let first = log.clean(&options, NOW).unwrap();
    let upper = log.cleanable(&options, NOW).unwrap().first_uncleanable_offset;
    assert!(
        first.end_offset < upper,
        "the map filled before the dirty section's end"
    );
    assert!(first.map_keys <= 180);
    let mut rounds = 1;
    while log.cleanable(&options, NOW).unwrap().cleanable_bytes > 0 && rounds < 20 {
        log.clean(&options, NOW).unwrap();
        rounds += 1;
    }
    assert!(rounds > 1 && rounds < 20, "{rounds} rounds");
    let (_, records) = read_all(&log);
    for (key, (offset, value)) in latest(&written) {
        assert_eq!(records[&offset].1.as_deref(), Some(value.as_str()), "{key}");
    }
}

#[test]
fn min_compaction_lag_keeps_young_segments_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), config()).unwrap();
    write_updates(&log, "key", 50, 4, NOW - 10 * 60_000);
    let young = log.log_end_offset();
    write_updates(&log, "key", 50, 4, NOW);
    let options = CleanOptions {
        min_compaction_lag_ms: 5 * 60_000,
        ..CleanOptions::default()
    };
    let info = log.cleanable(&options, NOW).unwrap();
    assert!(info.first_uncleanable_offset <= young);
    let stats = log.clean(&options, NOW).unwrap();
    assert!(stats.end_offset <= young);
    let (_, records) = read_all(&log);
    assert!(records.range(young..).count() >= 150, "the young records are all there");
}

#[test]
fn max_compaction_lag_makes_a_log_due_whatever_its_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), config()).unwrap();
    write_updates(&log, "key", 50, 4, NOW - DAY);
    let options = CleanOptions {
        max_compaction_lag_ms: 60_000,
        ..CleanOptions::default()
    };
    let info = log.cleanable(&options, NOW).unwrap();
    assert!(info.max_compaction_delay_ms > 0);
    assert!(info.needs_cleaning(1.0));
    let relaxed = log.cleanable(&CleanOptions::default(), NOW).unwrap();
    assert_eq!(relaxed.max_compaction_delay_ms, 0);
    assert!(!relaxed.needs_cleaning(1.0));
}

#[test]
fn readers_of_replaced_segments_keep_reading() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), config()).unwrap();
    write_updates(&log, "key", 50, 6, NOW);
    let slice = log.read(0, 1 << 20, log.high_watermark()).unwrap().unwrap();
    let mut before = Vec::new();
    slice.read_into(&mut before).unwrap();
    let segments_before = names_ending(dir.path(), ".log");
    clean(&log, NOW);
    let mut after = Vec::new();
    slice.read_into(&mut after).unwrap();
    assert_eq!(before, after);
    // Every replaced segment was renamed `.deleted` (Kafka's
    // `replaceSegments`), the first before its cleaned copy took its name.
    let retired = names_ending(dir.path(), ".log.deleted");
    assert!(retired.contains(&"00000000000000000000.log.deleted".to_string()));
    assert!(
        retired
            .iter()
            .all(|n| segments_before.contains(&n.replace(".deleted", ""))),
        "{retired:?}"
    );
    // After file.delete.delay.ms (60 s by default) they go, and the slice
    // still reads.
    assert_eq!(log.delete_expired_files(wall_clock_ms()).unwrap(), 0);
    let all_retired = names_ending(dir.path(), ".deleted").len();
    assert_eq!(log.delete_expired_files(i64::MAX).unwrap(), all_retired);
    assert!(names_ending(dir.path(), ".deleted").is_empty());
    let mut last = Vec::new();
    slice.read_into(&mut last).unwrap();
    assert_eq!(before, last);
}

#[test]
fn log_append_time_batches_keep_their_append_time() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..config()
    };
    let log = Log::open(dir.path().join("t-0"), config).unwrap();
    write_updates(&log, "key", 30, 5, NOW);
    clean(&log, NOW + 5);
    let (batches, _) = read_all(&log);
    assert!(
        batches
            .iter()
            .all(|b| b.attributes & 0x08 != 0 && b.max_timestamp == NOW)
    );
}

/// Every record the log holds was written at that offset, and every key's
/// latest value is there.
fn assert_valid(log: &Log, written: &BTreeMap<i64, (String, String)>) -> usize {
    let (_, records) = read_all(log);
    for (offset, (k, v, _)) in &records {
        let (wk, wv) = &written[offset];
        assert_eq!((k.as_deref(), v.as_deref()), (Some(wk.as_str()), Some(wv.as_str())));
    }
    for (key, (offset, _)) in latest(written) {
        assert!(
            records.contains_key(&offset),
            "{key}'s latest value at {offset} is missing"
        );
    }
    records.len()
}

fn crash_during_swap(storage: Arc<dyn Storage>, dir: &Path, step: SwapStep, power_cut: Option<&SimStorage>) {
    let log = Log::open_with_storage(dir, config(), storage.clone()).unwrap();
    let written = write_updates(&log, "key", 60, 8, NOW);
    let end = log.log_end_offset();
    let all = assert_valid(&log, &written);
    let options = CleanOptions {
        crash_after: Some(step),
        ..CleanOptions::default()
    };
    assert!(log.clean(&options, NOW).is_err(), "{step:?}: the simulated crash");
    assert!(
        log.append(&encode(&[(Some("k"), Some("v"))], NOW, Compression::None, None), 0, NOW)
            .is_err()
    );
    drop(log);
    if let Some(sim) = power_cut {
        sim.power_cut();
    }
    let log = Log::open_with_storage(dir, config(), storage.clone()).unwrap();
    assert_eq!(log.log_end_offset(), end, "{step:?}");
    let left = assert_valid(&log, &written);
    if step >= SwapStep::LogRenamedToSwap {
        assert!(left < all, "{step:?}: the committed swap was finished");
    } else {
        assert_eq!(left, all, "{step:?}: the old segments are intact");
    }
    let names = storage.list_dir(dir).unwrap();
    assert!(
        names
            .iter()
            .all(|n| !n.ends_with(".cleaned") && !n.ends_with(".swap") && !n.ends_with(".deleted")),
        "{step:?}: {names:?}"
    );
    // The log works: a full cleaning, and appends.
    assert_eq!(clean(&log, NOW).outcome, CleanOutcome::Cleaned);
    assert_valid(&log, &written);
    assert_eq!(append(&log, &[(Some("key-1"), Some("after"))], NOW), end);
    drop(log);
    let log = Log::open_with_storage(dir, config(), storage).unwrap();
    assert_eq!(log.log_end_offset(), end + 1);
}

const STEPS: [SwapStep; 6] = [
    SwapStep::CleanedWritten,
    SwapStep::IndexesRenamedToSwap,
    SwapStep::LogRenamedToSwap,
    SwapStep::OldSegmentsDeleted,
    SwapStep::IndexesInPlace,
    SwapStep::SwappedIn,
];

#[test]
fn a_crash_at_any_step_of_a_swap_leaves_a_valid_log_on_disk() {
    for step in STEPS {
        let temp = tempfile::tempdir().unwrap();
        crash_during_swap(
            Arc::new(gregor_log::DiskStorage::default()),
            &temp.path().join("t-0"),
            step,
            None,
        );
    }
}

#[test]
fn a_power_cut_at_any_step_of_a_swap_leaves_a_valid_log() {
    for step in STEPS {
        let sim = SimStorage::new();
        crash_during_swap(sim.clone(), Path::new("/data/t-0"), step, Some(&sim));
    }
}

#[test]
fn a_cleaned_log_recovers_after_an_unclean_shutdown() {
    // Recovery scans the cleaned segments (with their offset gaps and
    // rewritten batches) and keeps them whole.
    let sim = SimStorage::new();
    let dir = Path::new("/data/t-0");
    let log = Log::open_with_storage(dir, config(), sim.clone()).unwrap();
    let written = write_updates(&log, "key", 60, 8, NOW);
    clean(&log, NOW);
    let cleaned = read_all(&log).1;
    drop(log);
    sim.set_file_contents(&dir.join("recovery-point-offset-checkpoint"), b"0\n1\nt 0 0\n".to_vec());
    sim.power_cut();
    for config in [
        config(),
        LogConfig {
            compact: false,
            ..config()
        },
    ] {
        let log = Log::open_with_storage(dir, config, sim.clone()).unwrap();
        assert_eq!(read_all(&log).1, cleaned);
        assert_valid(&log, &written);
    }
}

/// Base offsets of the `<offset>.<extension>` files in `t-0` under `dir`.
fn offsets_of(dir: &Path, extension: &str) -> Vec<i64> {
    names_ending(dir, extension)
        .iter()
        .map(|n| n[..20].parse().unwrap())
        .collect()
}

/// Small segments (a producer snapshot at each roll's base offset), each
/// with an idempotent producer's batch and updates of the same keys; then
/// a larger `segment.bytes`, so that a cleaning merges several segments
/// into one.
fn write_small_segments(log: &Log, producer: &mut Producer) -> BTreeMap<i64, (String, String)> {
    let mut written = BTreeMap::new();
    for round in 0..8 {
        let base = append_with(
            log,
            &[(Some("idempotent"), Some("x")), (Some("key-0"), Some("y"))],
            NOW,
            Compression::None,
            Some(producer),
        );
        written.insert(base, ("idempotent".to_string(), "x".to_string()));
        written.insert(base + 1, ("key-0".to_string(), "y".to_string()));
        producer.sequence += 2;
        written.extend(write_updates(log, &format!("r{round}"), 20, 2, NOW));
    }
    log.set_config(LogConfig {
        segment_bytes: 1 << 20,
        ..log.config()
    });
    written
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        ..config()
    }
}

#[test]
fn a_cleaning_retires_the_producer_snapshots_of_merged_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = Log::open(&path, small_segments()).unwrap();
    let mut producer = Producer {
        id: 5,
        epoch: 0,
        sequence: 0,
        transactional: false,
    };
    let mut written = write_small_segments(&log, &mut producer);
    let bases_before = offsets_of(dir.path(), ".log");
    let snapshots_before = offsets_of(dir.path(), ".snapshot");
    assert!(bases_before.len() > 8, "{bases_before:?}");
    assert_eq!(snapshots_before, bases_before[1..], "a snapshot at every roll");
    let states = log.producer_states();

    assert_eq!(clean(&log, NOW).outcome, CleanOutcome::Cleaned);
    let bases = offsets_of(dir.path(), ".log");
    assert!(bases.len() < bases_before.len(), "segments merged: {bases:?}");
    // Kafka's `removeStraySnapshots`: every snapshot left starts a segment,
    // and those of the merged segments (the ones the group commit before
    // the cleaning kept) were retired like their files.
    let snapshots = offsets_of(dir.path(), ".snapshot");
    assert!(snapshots.iter().all(|s| bases.contains(s)), "{snapshots:?} {bases:?}");
    let retired = offsets_of(dir.path(), ".snapshot.deleted");
    assert!(!retired.is_empty(), "no snapshot retired: {snapshots:?} {bases:?}");
    assert!(
        retired
            .iter()
            .all(|s| !bases.contains(s) && snapshots_before.contains(s)),
        "{retired:?} {bases:?}"
    );
    log.delete_expired_files(i64::MAX).unwrap();
    assert!(names_ending(dir.path(), ".deleted").is_empty());

    // Appends roll on, and the producer state survives a restart, clean
    // or not, from the snapshots left.
    let base = append_with(
        &log,
        &[(Some("key-1"), Some("z"))],
        NOW,
        Compression::None,
        Some(&producer),
    );
    written.insert(base, ("key-1".to_string(), "z".to_string()));
    producer.sequence += 1;
    let states = {
        let mut after = states.clone();
        after[0] = log.producer_states()[0];
        after
    };
    drop(log);
    let log = Log::open(&path, config()).unwrap();
    assert_eq!(log.producer_states(), states, "after a crash");
    assert_valid(&log, &written);
    log.close().unwrap();
    drop(log);
    let log = Log::open(&path, config()).unwrap();
    assert_eq!(log.producer_states(), states, "after a clean close");
    let retry = encode(
        &[(Some("key-1"), Some("z"))],
        NOW,
        Compression::None,
        Some(&Producer {
            sequence: producer.sequence - 1,
            ..producer
        }),
    );
    assert!(log.append(&retry, 0, NOW).unwrap().duplicate);
}

#[test]
fn a_crash_before_the_stray_snapshots_are_retired_leaves_them_to_the_next_open() {
    let sim = SimStorage::new();
    let path = Path::new("/data/t-0");
    let log = Log::open_with_storage(path, small_segments(), sim.clone()).unwrap();
    let mut producer = Producer {
        id: 5,
        epoch: 0,
        sequence: 0,
        transactional: false,
    };
    let written = write_small_segments(&log, &mut producer);
    let states = log.producer_states();
    let options = CleanOptions {
        crash_after: Some(SwapStep::SwappedIn),
        ..CleanOptions::default()
    };
    assert!(log.clean(&options, NOW).is_err(), "the simulated crash");
    drop(log);
    let offsets = |extension: &str| -> Vec<i64> {
        let mut offsets: Vec<i64> = sim
            .list_dir(path)
            .unwrap()
            .iter()
            .filter(|n| n.len() == 20 + extension.len() && n.ends_with(extension))
            .map(|n| n[..20].parse().unwrap())
            .collect();
        offsets.sort();
        offsets
    };
    let bases = offsets(".log");
    let strays: Vec<i64> = offsets(".snapshot")
        .into_iter()
        .filter(|s| !bases.contains(s))
        .collect();
    assert!(!strays.is_empty(), "the crash left stray snapshots");
    sim.power_cut();

    let log = Log::open_with_storage(path, config(), sim.clone()).unwrap();
    assert_eq!(offsets(".log"), bases);
    let snapshots = offsets(".snapshot");
    assert!(
        snapshots.iter().all(|s| bases.contains(s)),
        "the open deleted the strays: {snapshots:?}, segments {bases:?}"
    );
    assert_valid(&log, &written);
    assert_eq!(log.producer_states(), states);
    let next = encode(&[(Some("key-1"), Some("z"))], NOW, Compression::None, Some(&producer));
    assert!(!log.append(&next, 0, NOW).unwrap().duplicate);
}
