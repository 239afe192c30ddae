//! Transactions through the public API: the last stable offset, end
//! transaction markers in Kafka's format, the aborted transactions a
//! read_committed fetch reports, and the coordinator's appends.

#[path = "common/encoder.rs"]
mod encoder;

use std::path::Path;

use encoder::{BatchSpec, batch, encode, header, split_batches};
use gregor_log::{AbortedTransaction, AppendInfo, Log, LogConfig, LogError, SimStorage, Storage};

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
fn append(log: &Log, bytes: Vec<u8>) -> AppendInfo {
    let info = log.append(&bytes, 0, NOW).unwrap();
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
    let refused = log.append(&offset_commit.clone(), 0, NOW).unwrap_err();
    assert!(matches!(refused, LogError::InvalidRecord(_)), "{refused:?}");

    let info = log.append_internal(&offset_commit.clone(), 0, NOW).unwrap();
    log.set_high_watermark(info.last_offset + 1);
    assert_eq!(info.base_offset, 1);
    // Again, without sequence checks: no duplicate, no gap.
    let again = log.append_internal(&offset_commit.clone(), 0, NOW).unwrap();
    log.set_high_watermark(again.last_offset + 1);
    assert_eq!((again.base_offset, again.duplicate), (2, false));
    assert_eq!(log.last_stable_offset(), 1);
    let state = log.producer_states()[0];
    assert_eq!((state.producer_id, state.current_txn_start_offset), (9, 1));

    // The epoch check still applies.
    let zombie = log.append_internal(&transactional(9, 0, -1, 1), 0, NOW).unwrap_err();
    assert!(matches!(zombie, LogError::InvalidProducerEpoch { .. }), "{zombie:?}");

    marker(&log, 9, 1, true);
    assert_eq!(log.last_stable_offset(), log.log_end_offset());
    assert_eq!(log.aborted_transactions(0, i64::MAX).unwrap(), []);
}

/// One transaction the test wrote: its producer, first offset, and the
/// marker's offset and type once ended.
#[derive(Debug, Clone, Copy)]
struct Txn {
    producer_id: i64,
    first_offset: i64,
    end: Option<(i64, bool)>,
}

/// The workload's state: three transactional producers and plain batches,
/// mixed by a seeded generator so every run writes the same log.
struct Workload {
    seed: u64,
    sequences: [i32; 3],
    open: [Option<usize>; 3],
    txns: Vec<Txn>,
}

impl Workload {
    fn new() -> Workload {
        Workload {
            seed: 12345,
            sequences: [0; 3],
            open: [None; 3],
            txns: Vec::new(),
        }
    }

    fn run(&mut self, log: &Log, rounds: usize) {
        for _ in 0..rounds {
            self.seed = self
                .seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let roll = (self.seed >> 33) % 10;
            let p = ((self.seed >> 40) % 3) as usize;
            let producer_id = 100 + p as i64;
            match (roll, self.open[p]) {
                (0, _) => {
                    append(log, batch(2, 30, NOW));
                }
                (1..=3, Some(txn)) => {
                    let commit = roll == 1;
                    let info = marker(log, producer_id, 0, commit);
                    self.txns[txn].end = Some((info.base_offset, commit));
                    self.open[p] = None;
                }
                _ => {
                    let records = 1 + (self.seed >> 50) as usize % 3;
                    let info = append(log, transactional(producer_id, 0, self.sequences[p], records));
                    self.sequences[p] += records as i32;
                    if self.open[p].is_none() {
                        self.open[p] = Some(self.txns.len());
                        self.txns.push(Txn {
                            producer_id,
                            first_offset: info.base_offset,
                            end: None,
                        });
                    }
                }
            }
        }
    }
}

/// What the log should say when it ends at `log_end_offset` (a crash may
/// have cut it): the aborted transactions whose marker it holds, and the
/// last stable offset (the first transaction whose marker it lacks).
fn expected_at(txns: &[Txn], log_end_offset: i64) -> (Vec<AbortedTransaction>, i64) {
    let mut aborted: Vec<_> = txns
        .iter()
        .filter_map(|t| match t.end {
            Some((marker, false)) if marker < log_end_offset => Some(aborted(t.producer_id, t.first_offset, marker)),
            _ => None,
        })
        .collect();
    aborted.sort_by_key(|t| (t.first_offset, t.last_offset));
    let last_stable_offset = txns
        .iter()
        .filter(|t| t.first_offset < log_end_offset && t.end.is_none_or(|(marker, _)| marker >= log_end_offset))
        .map(|t| t.first_offset)
        .min()
        .unwrap_or(log_end_offset);
    (aborted, last_stable_offset)
}

/// The aborted transactions overlapping [start, upper) (none when empty).
fn overlapping(all: &[AbortedTransaction], start: i64, upper: i64) -> Vec<AbortedTransaction> {
    if upper <= start {
        return Vec::new();
    }
    let mut found: Vec<_> = all
        .iter()
        .copied()
        .filter(|t| t.last_offset >= start && t.first_offset < upper)
        .collect();
    found.sort_by_key(|t| (t.first_offset, t.last_offset));
    found
}

/// The log's transactions are those of `txns` cut at its log end offset.
fn check_transactions(log: &Log, txns: &[Txn]) {
    let end = log.log_end_offset();
    let (expected, last_stable_offset) = expected_at(txns, end);
    assert_eq!(log.last_stable_offset(), last_stable_offset);
    for start in (log.log_start_offset()..=end).step_by(3) {
        for upper in [start, start + 1, start + 7, start + 40, last_stable_offset, end] {
            if upper < start {
                continue;
            }
            assert_eq!(
                log.aborted_transactions(start, upper).unwrap(),
                overlapping(&expected, start, upper),
                "range [{start}, {upper})"
            );
        }
    }
}

fn names_ending(storage: &dyn Storage, dir: &Path, extension: &str) -> Vec<String> {
    let mut names: Vec<String> = storage
        .list_dir(dir)
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(extension))
        .collect();
    names.sort();
    names
}

/// Every `.txnindex` entry in the directory, decoded by hand (Kafka's
/// `AbortedTxn`: version int16 0, producer id, first offset, last offset,
/// last stable offset), ordered by first offset.
fn index_entries(read: impl Fn(&str) -> Vec<u8>, names: &[String]) -> Vec<AbortedTransaction> {
    let mut entries = Vec::new();
    for name in names {
        let bytes = read(name);
        assert_eq!(bytes.len() % 34, 0, "{name} holds whole entries");
        for entry in bytes.chunks(34) {
            let i64_at = |at: usize| i64::from_be_bytes(entry[at..at + 8].try_into().unwrap());
            assert_eq!(&entry[..2], &[0, 0], "version 0");
            let txn = aborted(i64_at(2), i64_at(10), i64_at(18));
            let base: i64 = name[..20].parse().unwrap();
            assert!(txn.last_offset >= base, "the marker is in {name}");
            assert!(i64_at(26) <= txn.last_offset + 1, "the last stable offset at the abort");
            assert!(
                entries
                    .last()
                    .is_none_or(|e: &AbortedTransaction| e.last_offset < txn.last_offset),
                "entries in marker order"
            );
            entries.push(txn);
        }
    }
    entries.sort_by_key(|t| (t.first_offset, t.last_offset));
    entries
}

#[test]
fn aborted_transactions_are_exactly_those_overlapping_a_range_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = Log::open(&path, small_segments()).unwrap();
    let mut workload = Workload::new();
    workload.run(&log, 300);
    let (expected, _) = expected_at(&workload.txns, log.log_end_offset());
    assert!(expected.len() > 10, "{expected:?}");
    let segments = names_ending(&gregor_log::DiskStorage::default(), &path, ".log");
    assert!(segments.len() > 5, "{segments:?}");
    check_transactions(&log, &workload.txns);
    // The index files hold the same, each entry in its marker's segment.
    let txn_indexes = names_ending(&gregor_log::DiskStorage::default(), &path, ".txnindex");
    assert!(txn_indexes.len() > 3, "{txn_indexes:?}");
    let read = |name: &str| std::fs::read(path.join(name)).unwrap();
    assert_eq!(index_entries(read, &txn_indexes), expected);
}

#[test]
fn transactions_survive_a_clean_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = Log::open(&path, small_segments()).unwrap();
    let mut workload = Workload::new();
    workload.run(&log, 200);
    let open_before = log.last_stable_offset();
    assert!(open_before < log.log_end_offset(), "a transaction stays open");
    log.close().unwrap();
    let log = Log::open(&path, small_segments()).unwrap();
    check_transactions(&log, &workload.txns);
    assert_eq!(log.last_stable_offset(), open_before);
    // And the log goes on from there.
    workload.run(&log, 100);
    check_transactions(&log, &workload.txns);
}

#[test]
fn recovery_rebuilds_the_transaction_indexes_past_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = Log::open(&path, small_segments()).unwrap();
    let mut workload = Workload::new();
    workload.run(&log, 150);
    // The group commit moves the recovery point past the rolled segments,
    // fsyncing their indexes; the segments after stay to be recovered.
    log.sync_to(log.log_end_offset()).unwrap();
    let trusted = names_ending(&gregor_log::DiskStorage::default(), &path, ".txnindex");
    workload.run(&log, 150);
    let all = names_ending(&gregor_log::DiskStorage::default(), &path, ".txnindex");
    assert!(all.len() > trusted.len(), "{all:?}");
    drop(log); // no close: the process died
    // Lose the newer segments' index files: recovery rebuilds them.
    for name in all.iter().filter(|n| !trusted.contains(n)) {
        std::fs::remove_file(path.join(name)).unwrap();
    }
    let log = Log::open(&path, small_segments()).unwrap();
    check_transactions(&log, &workload.txns);
    let rebuilt = names_ending(&gregor_log::DiskStorage::default(), &path, ".txnindex");
    let read = |name: &str| std::fs::read(path.join(name)).unwrap();
    let (expected, _) = expected_at(&workload.txns, log.log_end_offset());
    assert_eq!(index_entries(read, &rebuilt), expected);
}

#[test]
fn a_damaged_transaction_index_is_rebuilt() {
    let storage = SimStorage::new();
    let dir = Path::new("/logs/t-0");
    let log = Log::open_with_storage(dir, small_segments(), storage.clone()).unwrap();
    let mut workload = Workload::new();
    workload.run(&log, 200);
    log.close().unwrap();
    let first = dir.join(&names_ending(storage.as_ref(), dir, ".txnindex")[0]);
    let mut bytes = storage.file_contents(&first).unwrap();
    bytes[1] = 9; // an unknown version
    storage.set_file_contents(&first, bytes);
    let log = Log::open_with_storage(dir, small_segments(), storage.clone()).unwrap();
    check_transactions(&log, &workload.txns);
}

#[test]
fn a_power_cut_keeps_the_transactions_of_the_synced_markers() {
    let storage = SimStorage::new();
    let dir = Path::new("/logs/t-0");
    let log = Log::open_with_storage(dir, small_segments(), storage.clone()).unwrap();
    let mut workload = Workload::new();
    workload.run(&log, 120);
    log.sync_to(log.log_end_offset()).unwrap();
    workload.run(&log, 60);
    let synced = log.log_end_offset();
    log.sync_to(synced).unwrap();
    workload.run(&log, 60); // never synced
    let (lost, _) = expected_at(&workload.txns, log.log_end_offset());
    storage.power_cut();
    drop(log);
    let log = Log::open_with_storage(dir, small_segments(), storage.clone()).unwrap();
    assert_eq!(log.log_end_offset(), synced);
    let (kept, _) = expected_at(&workload.txns, synced);
    assert!(kept.len() < lost.len(), "unsynced aborts were lost");
    check_transactions(&log, &workload.txns);
    let names = names_ending(storage.as_ref(), dir, ".txnindex");
    let read = |name: &str| storage.file_contents(&dir.join(name)).unwrap();
    assert_eq!(index_entries(read, &names), kept);
}

#[test]
fn deleting_records_deletes_the_transaction_indexes_with_their_segments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let log = Log::open(&path, small_segments()).unwrap();
    let mut workload = Workload::new();
    workload.run(&log, 300);
    let before = names_ending(&gregor_log::DiskStorage::default(), &path, ".txnindex");
    let middle = log.last_stable_offset() / 2;
    let log_start_offset = log.delete_records_before(middle).unwrap();
    let first_segment: i64 = names_ending(&gregor_log::DiskStorage::default(), &path, ".log")[0][..20]
        .parse()
        .unwrap();
    assert!(first_segment > 0 && first_segment <= log_start_offset);
    let after = names_ending(&gregor_log::DiskStorage::default(), &path, ".txnindex");
    assert!(after.len() < before.len(), "{before:?} then {after:?}");
    for name in &before {
        let base: i64 = name[..20].parse().unwrap();
        assert_eq!(after.contains(name), base >= first_segment, "{name}");
    }
    let (expected, _) = expected_at(&workload.txns, log.log_end_offset());
    let end = log.log_end_offset();
    assert_eq!(
        log.aborted_transactions(log_start_offset, end).unwrap(),
        overlapping(&expected, log_start_offset, end)
    );
    // Reopening finds the same.
    drop(log);
    let log = Log::open(&path, small_segments()).unwrap();
    assert_eq!(
        log.aborted_transactions(log_start_offset, end).unwrap(),
        overlapping(&expected, log_start_offset, end)
    );
}

#[test]
fn compaction_keeps_the_index_in_step_with_the_markers_it_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t-0");
    let config = LogConfig {
        compact: true,
        ..small_segments()
    };
    let log = Log::open(&path, config.clone()).unwrap();
    let data = append(&log, transactional(5, 0, 0, 2));
    let abort = marker(&log, 5, 0, false);
    let entry = aborted(5, data.base_offset, abort.base_offset);
    // The producer's last batch stays whatever happens (Kafka keeps it for
    // the producer state): make it a later transaction's.
    append(&log, transactional(5, 0, 2, 1));
    marker(&log, 5, 0, true);
    for i in 0..30 {
        append(&log, batch(2, 40, NOW + i));
    }
    let end = log.log_end_offset();
    assert_eq!(log.aborted_transactions(0, end).unwrap(), [entry]);
    let indexes = || names_ending(&gregor_log::DiskStorage::default(), &path, ".txnindex");
    let read = |name: &str| std::fs::read(path.join(name)).unwrap();
    assert_eq!(index_entries(read, &indexes()), [entry]);

    // The first cleaning removes the aborted data and keeps the marker:
    // the entry stays, in the cleaned segment's file.
    let options = gregor_log::CleanOptions {
        delete_retention_ms: 1000,
        ..gregor_log::CleanOptions::default()
    };
    log.clean(&options, NOW).unwrap();
    assert_eq!(log.aborted_transactions(0, end).unwrap(), [entry]);
    assert_eq!(index_entries(read, &indexes()), [entry]);
    // Later ones remove the marker (after delete.retention.ms): the entry
    // goes with it, so it cannot hide the producer's later transactions.
    for round in 1..4 {
        for i in 0..30 {
            append(&log, batch(2, 40, NOW + round * 100 + i));
        }
        log.clean(&options, NOW + round * 2000).unwrap();
    }
    let slice = log.read(abort.base_offset, 1 << 20, i64::MAX).unwrap().unwrap();
    let mut bytes = Vec::new();
    slice.read_into(&mut bytes).unwrap();
    assert!(
        split_batches(&bytes)
            .iter()
            .all(|b| header(b).base_offset != abort.base_offset),
        "the marker was removed"
    );
    assert_eq!(log.aborted_transactions(0, end).unwrap(), []);
    assert_eq!(index_entries(read, &indexes()), []);
    log.close().unwrap();
    let log = Log::open(&path, config).unwrap();
    assert_eq!(log.aborted_transactions(0, end).unwrap(), []);
}

/// An abort marker that fits on the disk while its `.txnindex` entry does
/// not: the marker cannot be taken back, so the abort is kept in memory
/// (fetches report it, the partition stays online) and the file is
/// rewritten from memory once space returns, before the recovery point
/// passes it; a clean close and reopen then read the abort from the file.
#[test]
fn an_abort_whose_index_entry_finds_the_disk_full_keeps_the_log_online() {
    let storage = SimStorage::new();
    let dir = Path::new("/logs/full-0");
    let log = Log::open_with_storage(dir, small_segments(), storage.clone()).unwrap();
    append(&log, transactional(7, 0, 0, 2));
    log.sync_to(log.log_end_offset()).unwrap();
    // The least space the marker needs: every smaller budget refuses it and changes nothing.
    let info = (0..200)
        .find_map(|free| {
            storage.set_free_bytes(Some(free));
            log.append_marker(7, 0, false, 5, 0, NOW).ok()
        })
        .expect("the marker fits in 200 bytes");
    assert_eq!(storage.free_bytes(), Some(0), "no room was left for the index entry");
    log.set_high_watermark(info.last_offset + 1);
    assert!(!log.is_offline());
    assert_eq!(log.last_stable_offset(), 3);
    assert_eq!(log.aborted_transactions(0, 3).unwrap(), [aborted(7, 0, 2)]);
    assert!(
        names_ending(storage.as_ref(), dir, ".txnindex")
            .iter()
            .all(|name| { storage.file_contents(&dir.join(name)).unwrap().is_empty() })
    );

    storage.set_free_bytes(None);
    log.close().unwrap();
    let sizes: Vec<usize> = names_ending(storage.as_ref(), dir, ".txnindex")
        .iter()
        .map(|name| storage.file_contents(&dir.join(name)).unwrap().len())
        .collect();
    assert_eq!(sizes, [34], "the file was rewritten with the abort's entry");
    let log = Log::open_with_storage(dir, small_segments(), storage.clone()).unwrap();
    assert_eq!(log.aborted_transactions(0, 3).unwrap(), [aborted(7, 0, 2)]);
}
