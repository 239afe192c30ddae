//! Transactions through the public API: the last stable offset, end
//! transaction markers in Kafka's format, the aborted transactions a
//! read_committed fetch reports, and the coordinator's appends.

#[path = "common/encoder.rs"]
mod encoder;

use encoder::{BatchSpec, batch, encode, header, split_batches};
use gregor_log::{AbortedTransaction, AppendInfo, Log, LogConfig, LogError};

const NOW: i64 = 1_700_000_000_000;
const TRANSACTIONAL: i16 = 0x10;

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        // The tests' timestamps are fixed: keep their producers.
        producer_id_expiration_ms: i64::MAX,
        message_timestamp_after_max_ms: i64::MAX,
        ..LogConfig::default()
    }
}

fn transactional(producer_id: i64, epoch: i16, base_sequence: i32, records: usize) -> Vec<u8> {
    let mut spec = BatchSpec::new(records, 10, NOW);
    spec.attributes = TRANSACTIONAL;
    spec.producer_id = producer_id;
    spec.producer_epoch = epoch;
    spec.base_sequence = base_sequence;
    encode(&spec)
}

/// Appends as the broker does: the high watermark follows each append.
fn append(log: &Log, mut bytes: Vec<u8>) -> AppendInfo {
    let info = log.append(&mut bytes, 0, NOW).unwrap();
    log.set_high_watermark(info.last_offset + 1);
    info
}

fn marker(log: &Log, producer_id: i64, epoch: i16, commit: bool) -> AppendInfo {
    let info = log.append_marker(producer_id, epoch, commit, 5, 0, NOW).unwrap();
    log.set_high_watermark(info.last_offset + 1);
    info
}

fn aborted(producer_id: i64, first_offset: i64, last_offset: i64) -> AbortedTransaction {
    AbortedTransaction {
        producer_id,
        first_offset,
        last_offset,
    }
}

#[test]
fn the_last_stable_offset_waits_for_the_first_open_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), small_segments()).unwrap();
    append(&log, batch(2, 10, NOW));
    assert_eq!(log.last_stable_offset(), 2);
    let a = append(&log, transactional(1, 0, 0, 3)); // 2..=4
    assert_eq!(a.base_offset, 2);
    append(&log, batch(1, 10, NOW)); // 5
    append(&log, transactional(2, 0, 0, 2)); // 6..=7
    append(&log, transactional(1, 0, 3, 1)); // 8
    assert_eq!((log.high_watermark(), log.last_stable_offset()), (9, 2));

    // A's commit: stable only once the high watermark passes the marker
    // (Kafka's unreplicated transactions).
    let commit = log.append_marker(1, 0, true, 5, 0, NOW).unwrap();
    assert_eq!(commit.base_offset, 9);
    assert_eq!(log.last_stable_offset(), 2);
    log.set_high_watermark(commit.last_offset + 1);
    assert_eq!(log.last_stable_offset(), 6, "B is still open");

    let abort = marker(&log, 2, 0, false);
    assert_eq!(abort.base_offset, 10);
    assert_eq!(log.last_stable_offset(), 11);
    assert_eq!(log.aborted_transactions(0, 11).unwrap(), [aborted(2, 6, 10)]);
    assert_eq!(log.aborted_transactions(0, 6).unwrap(), [], "the range ends before it");
    assert_eq!(
        log.aborted_transactions(11, 11).unwrap(),
        [],
        "the range starts after it"
    );

    let states = log.producer_states();
    assert!(states.iter().all(|p| p.current_txn_start_offset == -1));
    assert!(states.iter().all(|p| p.coordinator_epoch == 5), "{states:?}");
}

#[test]
fn a_lowered_high_watermark_bounds_the_last_stable_offset() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), small_segments()).unwrap();
    append(&log, batch(4, 10, NOW));
    log.set_high_watermark(2);
    assert_eq!(log.last_stable_offset(), 2);
    append(&log, transactional(1, 0, 0, 1)); // 4
    marker(&log, 1, 0, false); // 5
    assert_eq!(log.last_stable_offset(), 6);
    assert_eq!(log.aborted_transactions(0, 6).unwrap(), [aborted(1, 4, 5)]);
}

#[test]
fn markers_are_kafka_control_batches() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), small_segments()).unwrap();
    append(&log, transactional(77, 4, 0, 2));
    let info = log.append_marker(77, 4, true, 9, 3, NOW + 1).unwrap();
    assert_eq!((info.base_offset, info.last_offset, info.duplicate), (2, 2, false));

    let slice = log.read(2, 1 << 20, i64::MAX).unwrap().unwrap();
    let mut bytes = Vec::new();
    slice.read_into(&mut bytes).unwrap();
    let batches = split_batches(&bytes); // checks the CRC
    assert_eq!(batches.len(), 1);
    let b = batches[0];
    let h = header(b);
    assert_eq!(b[16], 2, "magic");
    assert_eq!(h.base_offset, 2);
    assert_eq!(h.leader_epoch, 3);
    assert_eq!(
        h.attributes, 0x30,
        "transactional and control, uncompressed, CreateTime"
    );
    assert_eq!((h.last_offset_delta, h.records), (0, 1));
    assert_eq!((h.producer_id, h.producer_epoch, h.base_sequence), (77, 4, -1));
    assert_eq!(h.max_timestamp, NOW + 1);
    // The one record, by hand: varint length 16, attributes 0, timestamp
    // delta 0, offset delta 0, key length 4, key (version 0, type 1 =
    // commit), value length 6, value (version 0, coordinator epoch 9), no
    // headers. Varints are zigzag: 16 is 32, 4 is 8, 6 is 12.
    assert_eq!(&b[61..], &[32, 0, 0, 0, 8, 0, 0, 0, 1, 12, 0, 0, 0, 0, 0, 9, 0]);

    let abort = log.append_marker(77, 4, false, 9, 3, NOW).unwrap();
    let slice = log.read(abort.base_offset, 1 << 20, i64::MAX).unwrap().unwrap();
    let mut bytes = Vec::new();
    slice.read_into(&mut bytes).unwrap();
    assert_eq!(&bytes[61 + 5..61 + 9], &[0, 0, 0, 0], "type 0 = abort");
}

#[test]
fn a_marker_from_an_older_producer_epoch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), small_segments()).unwrap();
    append(&log, transactional(5, 2, 0, 2));
    let refused = log.append_marker(5, 1, false, 0, 0, NOW).unwrap_err();
    assert!(
        matches!(
            refused,
            LogError::InvalidProducerEpoch {
                producer_id: 5,
                epoch: 1,
                current: 2
            }
        ),
        "{refused:?}"
    );
    assert_eq!(refused.code(), 47);
    assert_eq!((log.log_end_offset(), log.last_stable_offset()), (2, 0));
    // A newer epoch (the coordinator fenced the producer) ends it.
    marker(&log, 5, 3, false);
    assert_eq!(log.last_stable_offset(), 3);
    assert_eq!(log.aborted_transactions(0, 3).unwrap(), [aborted(5, 0, 2)]);
    assert_eq!(log.producer_states()[0].producer_epoch, 3);
    assert!(log.append_marker(-1, 0, true, 0, 0, NOW).is_err(), "no producer id");
}

#[test]
fn a_marker_without_an_open_transaction_is_written_but_aborts_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), small_segments()).unwrap();
    append(&log, batch(1, 10, NOW));
    let info = marker(&log, 8, 0, false);
    assert_eq!(info.base_offset, 1);
    assert_eq!(log.last_stable_offset(), 2);
    assert_eq!(log.aborted_transactions(0, 2).unwrap(), []);
}

#[test]
fn coordinator_appends_need_no_sequence_and_open_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path().join("t-0"), small_segments()).unwrap();
    append(&log, batch(1, 10, NOW));
    let offset_commit = transactional(9, 1, -1, 1);
    let refused = log.append(&mut offset_commit.clone(), 0, NOW).unwrap_err();
    assert!(matches!(refused, LogError::InvalidRecord(_)), "{refused:?}");

    let info = log.append_internal(&mut offset_commit.clone(), 0, NOW).unwrap();
    log.set_high_watermark(info.last_offset + 1);
    assert_eq!(info.base_offset, 1);
    // Again, without sequence checks: no duplicate, no gap.
    let again = log.append_internal(&mut offset_commit.clone(), 0, NOW).unwrap();
    log.set_high_watermark(again.last_offset + 1);
    assert_eq!((again.base_offset, again.duplicate), (2, false));
    assert_eq!(log.last_stable_offset(), 1);
    let state = log.producer_states()[0];
    assert_eq!((state.producer_id, state.current_txn_start_offset), (9, 1));

    // The epoch check still applies.
    let zombie = log
        .append_internal(&mut transactional(9, 0, -1, 1), 0, NOW)
        .unwrap_err();
    assert!(matches!(zombie, LogError::InvalidProducerEpoch { .. }), "{zombie:?}");

    marker(&log, 9, 1, true);
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
    assert_eq!(log.aborted_transactions(0, i64::MAX).unwrap(), []);
}

/// A deterministic mix of plain batches and three producers' transactions,
/// with the aborted ones as the test expects them.
fn interleaved_transactions(log: &Log, rounds: u64) -> Vec<AbortedTransaction> {
    let mut open: [Option<i64>; 3] = [None; 3];
    let mut sequences = [0i32; 3];
    let mut expected = Vec::new();
    let mut seed = 12345u64;
    for _ in 0..rounds {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let roll = (seed >> 33) % 10;
        let p = ((seed >> 40) % 3) as usize;
        let producer_id = 100 + p as i64;
        match (roll, open[p]) {
            (0, _) => {
                append(log, batch(2, 30, NOW));
            }
            (1..=3, Some(first)) => {
                let commit = roll == 1;
                let info = marker(log, producer_id, 0, commit);
                if !commit {
                    expected.push(aborted(producer_id, first, info.base_offset));
                }
                open[p] = None;
            }
            _ => {
                let records = 1 + (seed >> 50) as usize % 3;
                let info = append(log, transactional(producer_id, 0, sequences[p], records));
                sequences[p] += records as i32;
                open[p].get_or_insert(info.base_offset);
            }
        }
    }
    expected
}

fn overlapping(all: &[AbortedTransaction], start: i64, upper: i64) -> Vec<AbortedTransaction> {
    let mut found: Vec<_> = all
        .iter()
        .copied()
        .filter(|t| t.last_offset >= start && t.first_offset < upper)
        .collect();
    found.sort_by_key(|t| (t.first_offset, t.last_offset));
    found
}

fn check_aborted_ranges(log: &Log, expected: &[AbortedTransaction]) {
    let end = log.log_end_offset();
    for start in (log.log_start_offset()..=end).step_by(3) {
        for upper in [start, start + 1, start + 7, start + 40, log.last_stable_offset(), end] {
            if upper < start {
                continue;
            }
            assert_eq!(
                log.aborted_transactions(start, upper).unwrap(),
                overlapping(expected, start, upper),
                "range [{start}, {upper})"
            );
        }
    }
}

#[test]
fn aborted_transactions_are_exactly_those_overlapping_a_range_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = Log::open(&path, small_segments()).unwrap();
    let expected = interleaved_transactions(&log, 300);
    assert!(expected.len() > 10, "{expected:?}");
    let segments = std::fs::read_dir(&path)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".log"))
        .count();
    assert!(segments > 5, "{segments} segments");
    check_aborted_ranges(&log, &expected);
}
