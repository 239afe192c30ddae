//! Crash tests: append and sync, then damage what a crash could damage (the
//! unsynced tail of the segments: cut, garbage, flipped bytes; the indexes,
//! which are derived data: anywhere) or cut the power, and reopen. The log
//! must be a prefix of what was appended holding every synced batch, return
//! nothing corrupt, and take appends afterwards.

#[path = "common/encoder.rs"]
mod encoder;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use encoder::{as_stored, batch, header, idempotent, split_batches};
use gregor_log::{Log, LogConfig, SimStorage, Storage};

/// Where the damaged files live: a real directory, or simulated storage
/// (as fast as memory, so it can run many more cases).
enum Files {
    Disk,
    Sim(Arc<SimStorage>),
}

impl Files {
    fn open(&self, dir: &Path) -> Log {
        match self {
            Files::Disk => Log::open(dir, config()).unwrap(),
            Files::Sim(storage) => Log::open_with_storage(dir, config(), storage.clone()).unwrap(),
        }
    }
    fn list(&self, dir: &Path, extension: &str) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = match self {
            Files::Disk => std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect(),
            Files::Sim(storage) => storage.list_dir(dir).unwrap().iter().map(|n| dir.join(n)).collect(),
        };
        files.retain(|p| p.extension().is_some_and(|e| e == extension));
        files.sort();
        files
    }
    fn read(&self, file: &Path) -> Vec<u8> {
        match self {
            Files::Disk => std::fs::read(file).unwrap(),
            Files::Sim(storage) => storage.file_contents(file).unwrap(),
        }
    }
    fn write(&self, file: &Path, bytes: Vec<u8>) {
        match self {
            Files::Disk => std::fs::write(file, bytes).unwrap(),
            Files::Sim(storage) => storage.set_file_contents(file, bytes),
        }
    }
    fn remove(&self, file: &Path) {
        match self {
            Files::Disk => std::fs::remove_file(file).unwrap(),
            Files::Sim(storage) => storage.remove_file(file).unwrap(),
        }
    }
}

const NOW: i64 = 1_700_000_000_000;
const EPOCH: i32 = 3;

/// xorshift64*: deterministic, seeded per case.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next() % n }
    }
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 6000,
        index_interval_bytes: 300,
        ..LogConfig::default()
    }
}

/// Every batch the log holds from offset 0, checking CRCs and density.
fn read_everything(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while let Some(slice) = log.read(offset, 10_000, i64::MAX).unwrap() {
        let start = out.len();
        slice.read_into(&mut out).unwrap();
        for b in split_batches(&out[start..]) {
            assert!(header(b).base_offset <= offset && header(b).last_offset() >= offset);
            offset = header(b).last_offset() + 1;
        }
    }
    assert_eq!(offset, log.log_end_offset());
    out
}

/// The segment file and position where the first batch at or after
/// `offset` starts, if any.
fn locate(files: &Files, dir: &Path, offset: i64) -> Option<(PathBuf, u64)> {
    for file in files.list(dir, "log") {
        let bytes = files.read(&file);
        let mut pos = 0;
        while pos < bytes.len() {
            let h = header(&bytes[pos..]);
            if h.base_offset >= offset {
                return Some((file, pos as u64));
            }
            pos += h.size;
        }
    }
    None
}

enum Damage {
    Cut,
    FlipByte,
    Zeros,
    Garbage,
    IndexBytes,
    IndexCut,
    IndexRemoved,
}

fn damage(rng: &mut Rng, files: &Files, dir: &Path, synced_next: i64) -> Damage {
    let unsynced = locate(files, dir, synced_next);
    let kind = rng.below(7);
    match (kind, unsynced) {
        (0, Some((file, from))) => {
            let mut bytes = files.read(&file);
            let at = from + rng.below(bytes.len() as u64 - from + 1);
            bytes.truncate(at as usize);
            files.write(&file, bytes);
            Damage::Cut
        }
        (1, Some((file, from))) => {
            let mut bytes = files.read(&file);
            let at = from as usize + rng.below((bytes.len() - from as usize) as u64) as usize;
            bytes[at] ^= 1 << rng.below(8);
            files.write(&file, bytes);
            Damage::FlipByte
        }
        (2, Some((file, from))) => {
            let mut bytes = files.read(&file);
            let at = from as usize + rng.below((bytes.len() - from as usize) as u64) as usize;
            let end = (at + 1 + rng.below(200) as usize).min(bytes.len());
            bytes[at..end].fill(0);
            files.write(&file, bytes);
            Damage::Zeros
        }
        (3, _) => {
            let last = files.list(dir, "log").pop().unwrap();
            let mut bytes = files.read(&last);
            bytes.extend((0..1 + rng.below(300)).map(|_| rng.next() as u8));
            files.write(&last, bytes);
            Damage::Garbage
        }
        (4, _) | (0..=2, None) => {
            let mut indexes = [files.list(dir, "index"), files.list(dir, "timeindex")].concat();
            let file = indexes.swap_remove(rng.below(indexes.len() as u64) as usize);
            let mut bytes = files.read(&file);
            for _ in 0..1 + rng.below(4) {
                if !bytes.is_empty() {
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] = rng.next() as u8;
                }
            }
            files.write(&file, bytes);
            Damage::IndexBytes
        }
        (5, _) => {
            let indexes = files.list(dir, "index");
            let file = &indexes[rng.below(indexes.len() as u64) as usize];
            let mut bytes = files.read(file);
            bytes.truncate(rng.below(bytes.len() as u64 + 1) as usize);
            files.write(file, bytes);
            Damage::IndexCut
        }
        _ => {
            let indexes = files.list(dir, "timeindex");
            files.remove(&indexes[rng.below(indexes.len() as u64) as usize]);
            Damage::IndexRemoved
        }
    }
}

#[test]
fn damaged_tails_and_indexes_on_disk() {
    for seed in 0..10 {
        let temp = tempfile::tempdir().unwrap();
        crash_and_recover(seed, &Files::Disk, &temp.path().join("crash-0"));
    }
}

#[test]
fn damaged_tails_and_indexes_in_simulated_storage() {
    for seed in 100..400 {
        crash_and_recover(seed, &Files::Sim(SimStorage::new()), Path::new("/logs/crash-0"));
    }
}

fn crash_and_recover(seed: u64, files: &Files, dir: &Path) {
    {
        let mut rng = Rng::new(seed);
        let log = files.open(dir);
        let mut appended = Vec::new();
        let mut synced_next = 0;
        for i in 0..20 + rng.below(60) as i64 {
            let b = batch(1 + rng.below(4) as usize, rng.below(400) as usize, NOW + i);
            let info = log.append(&b, EPOCH, NOW).unwrap();
            appended.extend_from_slice(&as_stored(&b, info.base_offset, EPOCH, -1));
            match rng.below(10) {
                0 | 1 => {
                    log.sync_to(log.log_end_offset()).unwrap();
                    synced_next = log.log_end_offset();
                }
                2 => {
                    log.flush().unwrap();
                    synced_next = log.log_end_offset();
                }
                _ => {}
            }
        }
        let appended_end = log.log_end_offset();
        drop(log); // a crash: no close, no clean shutdown marker

        let kind = damage(&mut rng, files, dir, synced_next);
        let log = files.open(dir);
        let end = log.log_end_offset();
        assert!(
            end >= synced_next,
            "seed {seed}: lost synced data ({end} < {synced_next})"
        );
        assert!(end <= appended_end);
        if matches!(
            kind,
            Damage::IndexBytes | Damage::IndexCut | Damage::IndexRemoved | Damage::Garbage
        ) {
            assert_eq!(
                end, appended_end,
                "seed {seed}: index damage or trailing garbage loses nothing"
            );
        }
        let held = read_everything(&log);
        assert_eq!(
            held,
            appended[..held.len()],
            "seed {seed}: the log is a prefix of what was appended"
        );
        // Index lookups still find every offset's batch.
        for _ in 0..20 {
            if end == 0 {
                break;
            }
            let offset = rng.below(end as u64) as i64;
            let mut out = Vec::new();
            log.read(offset, 1, i64::MAX)
                .unwrap()
                .unwrap()
                .read_into(&mut out)
                .unwrap();
            let h = header(&out);
            assert!(
                h.base_offset <= offset && offset <= h.last_offset(),
                "seed {seed}: offset {offset}"
            );
        }
        // Appends continue after the recovered end, and survive a clean restart.
        let b = batch(2, 50, NOW);
        assert_eq!(log.append(&b, EPOCH, NOW).unwrap().base_offset, end);
        log.close().unwrap();
        drop(log);
        let log = files.open(dir);
        assert_eq!(log.log_end_offset(), end + 2);
        assert_eq!(read_everything(&log), [held, as_stored(&b, end, EPOCH, -1)].concat());
    }
}

#[test]
fn power_cut_keeps_everything_synced() {
    for seed in 0..40 {
        let mut rng = Rng::new(1000 + seed);
        let storage = SimStorage::new();
        let mut appended: Vec<Vec<u8>> = Vec::new();
        let mut synced_next = 0;
        for _round in 0..4 {
            let log = Log::open_with_storage("/p-0", config(), storage.clone()).unwrap();
            assert_eq!(
                log.log_end_offset(),
                synced_next,
                "seed {seed}: exactly the synced batches survive"
            );
            let mut held = Vec::new();
            let mut offset = 0;
            while let Some(slice) = log.read(offset, 10_000, i64::MAX).unwrap() {
                let start = held.len();
                slice.read_into(&mut held).unwrap();
                offset = split_batches(&held[start..])
                    .last()
                    .map(|b| header(b).last_offset() + 1)
                    .unwrap();
            }
            let expected: Vec<u8> = appended.iter().flatten().copied().collect();
            assert_eq!(held, expected, "seed {seed}");
            for i in 0..rng.below(40) as i64 {
                let b = batch(1 + rng.below(3) as usize, rng.below(500) as usize, NOW + i);
                let info = log.append(&b, EPOCH + _round, NOW).unwrap();
                appended.push(as_stored(&b, info.base_offset, EPOCH + _round, -1));
                if rng.below(4) == 0 {
                    log.sync_to(info.last_offset + 1).unwrap();
                    synced_next = info.last_offset + 1;
                }
            }
            drop(log);
            storage.power_cut();
            // Forget what the power cut took.
            let mut next = 0;
            appended.retain(|b| {
                let keep = next < synced_next;
                next += header(b).records as i64;
                keep
            });
        }
    }
}

/// After a crash (the log dropped without a close, nothing lost), recovery
/// reads only what follows the recovery point: segments that rolled were
/// flushed and checkpointed by the group commit that followed, so only the
/// active segment is scanned. Of the others only the batch headers after
/// their last index entry are read, to find where they end (as Kafka's
/// loader reads a segment's tail past its last index entry); here every
/// batch is indexed, so that is one 61-byte header each.
#[test]
fn recovery_after_a_crash_reads_only_the_active_segment() {
    let storage = SimStorage::new();
    let files = Files::Sim(storage.clone());
    let dir = Path::new("/r-0");
    let log = files.open(dir);
    for i in 0..200 {
        let info = log.append(&batch(1, 400, NOW + i), EPOCH, NOW).unwrap();
        log.sync_to(info.last_offset + 1).unwrap();
    }
    let end = log.log_end_offset();
    drop(log);
    let segments = files.list(dir, "log");
    assert!(segments.len() > 10, "{} segments", segments.len());
    let (active, rolled) = segments.split_last().unwrap();
    let read_before: Vec<u64> = segments.iter().map(|s| storage.bytes_read(s)).collect();

    let log = files.open(dir);
    assert_eq!(log.log_end_offset(), end);
    let read: Vec<u64> = segments
        .iter()
        .zip(read_before)
        .map(|(s, before)| storage.bytes_read(s) - before)
        .collect();
    let (read_active, read_rolled) = read.split_last().unwrap();
    assert_eq!(
        read_rolled,
        vec![61; rolled.len()],
        "one header of each segment below the recovery point"
    );
    let active_len = files.read(active).len() as u64;
    assert!(
        *read_active >= active_len,
        "the active segment is scanned: {read_active} of {active_len} bytes"
    );
}

/// `sync_logs` makes several logs durable with one sync of the whole
/// (simulated) file system, and what it acknowledged survives a power cut;
/// an append made after it started is not vouched for.
#[test]
fn logs_synced_together_share_one_whole_sync_that_survives_a_power_cut() {
    let storage = SimStorage::sharing_syncs();
    let dirs: Vec<String> = (0..3).map(|i| format!("/together-{i}")).collect();
    let logs: Vec<Log> = (dirs.iter())
        .map(|dir| Log::open_with_storage(dir, config(), storage.clone()).unwrap())
        .collect();
    let targets: Vec<(&Log, i64)> = (logs.iter())
        .map(|log| {
            (
                log,
                log.append(&batch(2, 100, NOW), EPOCH, NOW).unwrap().last_offset + 1,
            )
        })
        .collect();
    for synced in gregor_log::sync_logs(&targets) {
        synced.unwrap();
    }
    assert_eq!(
        storage.whole_syncs(),
        1,
        "one sync of the file system for the three logs"
    );
    assert!(logs.iter().all(|log| log.durable_offset() == 2));
    // Appended after the whole sync: only the log's own sync covers it.
    logs[0].append(&batch(1, 100, NOW), EPOCH, NOW).unwrap();
    logs[0].sync_to(3).unwrap();
    assert_eq!(storage.whole_syncs(), 1, "a single log syncs its own files");
    drop(logs);
    storage.power_cut();
    let ends: Vec<i64> = (dirs.iter())
        .map(|dir| {
            Log::open_with_storage(dir, config(), storage.clone())
                .unwrap()
                .log_end_offset()
        })
        .collect();
    assert_eq!(ends, [3, 2, 2]);
}

/// A failed sync of the whole file system vouches for nothing: each log
/// then syncs its own files, and reports their failure.
#[test]
fn logs_synced_together_report_a_failed_sync() {
    let storage = SimStorage::sharing_syncs();
    let logs: Vec<Log> = (0..2)
        .map(|i| Log::open_with_storage(format!("/failing-{i}"), config(), storage.clone()).unwrap())
        .collect();
    let targets: Vec<(&Log, i64)> = (logs.iter())
        .map(|log| {
            (
                log,
                log.append(&batch(1, 100, NOW), EPOCH, NOW).unwrap().last_offset + 1,
            )
        })
        .collect();
    storage.set_fail_syncs(true);
    let synced = gregor_log::sync_logs(&targets);
    assert!(synced.iter().all(|result| result.is_err()), "{synced:?}");
    assert!(logs.iter().all(|log| log.durable_offset() == 0));
}

/// A log being closed in the tests below: what it was given, in stored
/// form batch by batch, and the offset below which it was synced.
struct ToClose {
    dir: PathBuf,
    batches: Vec<Vec<u8>>,
    synced_next: i64,
}

const CLEAN_SHUTDOWN_MARKER: &str = ".kafka_cleanshutdown";

/// `count` logs on `storage`, each over several segments, with plain and
/// idempotent batches; the first part synced, the rest not.
fn logs_to_close(storage: &Arc<SimStorage>, name: &str, count: usize) -> (Vec<Log>, Vec<ToClose>) {
    // Producers idle past `producer.id.expiration.ms` are dropped on close.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut logs = Vec::new();
    let mut states = Vec::new();
    for i in 0..count {
        let dir = PathBuf::from(format!("/{name}-{i}"));
        let log = Log::open_with_storage(&dir, config(), storage.clone()).unwrap();
        let mut state = ToClose {
            dir,
            batches: Vec::new(),
            synced_next: 0,
        };
        for n in 0..30 + 5 * i as i32 {
            let b = match n % 3 {
                0 => idempotent(7 + i as i64, 0, n / 3 * 2, 2, now + n as i64),
                _ => batch(1 + n as usize % 2, 200 + 40 * (n as usize % 5), NOW + n as i64),
            };
            let info = log.append(&b, EPOCH, now).unwrap();
            state.batches.push(as_stored(&b, info.base_offset, EPOCH, -1));
            if n == 20 {
                log.sync_to(info.last_offset + 1).unwrap();
                state.synced_next = info.last_offset + 1;
            }
        }
        logs.push(log);
        states.push(state);
    }
    (logs, states)
}

/// The batches of `state` below `end`, which must end on a batch boundary
/// (`i64::MAX`: all of them).
fn stored_below(state: &ToClose, end: i64) -> Vec<u8> {
    let mut next = 0;
    let mut held = Vec::new();
    for b in &state.batches {
        if next >= end {
            break;
        }
        held.extend_from_slice(b);
        next = header(b).last_offset() + 1;
    }
    assert!(end == i64::MAX || next == end, "the log ends inside a batch");
    held
}

/// `close_logs` makes each step durable for all the logs with one sync of
/// the whole file system (or, on storage that cannot, each log's own
/// syncs). After a power cut every log is there whole and opens clean: its
/// active segment is not scanned, its producer state comes from the
/// snapshot.
#[test]
fn logs_closed_together_open_clean_after_a_power_cut() {
    for (storage, whole_syncs) in [(SimStorage::sharing_syncs(), 4), (SimStorage::new(), 0)] {
        let (logs, states) = logs_to_close(&storage, "closed", 3);
        let producers: Vec<_> = logs.iter().map(|log| log.producer_states()).collect();
        let refs: Vec<&Log> = logs.iter().collect();
        for closed in gregor_log::close_logs(&refs) {
            closed.unwrap();
        }
        assert_eq!(
            storage.whole_syncs(),
            whole_syncs,
            "the data, the indexes and snapshots, the recovery points, the markers"
        );
        assert!(logs[0].append(&batch(1, 10, NOW), EPOCH, NOW).is_err(), "closed");
        drop(logs);
        storage.power_cut();
        for (state, producers) in states.iter().zip(producers) {
            assert!(storage.exists(&state.dir.join(CLEAN_SHUTDOWN_MARKER)));
            let active = storage
                .list_dir(&state.dir)
                .unwrap()
                .into_iter()
                .filter(|n| n.ends_with(".log"))
                .max();
            let active = state.dir.join(active.unwrap());
            let log = Log::open_with_storage(&state.dir, config(), storage.clone()).unwrap();
            let scanned = storage.bytes_read(&active);
            let active_len = storage.file_contents(&active).unwrap().len() as u64;
            assert!(
                scanned < active_len / 2,
                "a clean open read {scanned} of the active segment's {active_len} bytes"
            );
            assert_eq!(log.producer_states(), producers);
            assert_eq!(read_everything(&log), stored_below(state, i64::MAX));
        }
    }
}

/// A crash at any point of closing logs together (the disk fails after a
/// number of syncs, then the power goes) leaves every log a valid prefix
/// of what it was given, holding all that was synced before the close; a
/// log whose marker survived holds everything; each takes appends again.
#[test]
fn a_crash_at_any_sync_of_a_close_together_leaves_logs_that_recover() {
    for sharing in [true, false] {
        // 4 whole syncs when shared; about 7 per log otherwise.
        for syncs_left in 0..if sharing { 6 } else { 24 } {
            let storage = if sharing {
                SimStorage::sharing_syncs()
            } else {
                SimStorage::new()
            };
            let (logs, states) = logs_to_close(&storage, "crashing", 3);
            storage.set_syncs_left(Some(syncs_left));
            let refs: Vec<&Log> = logs.iter().collect();
            let all_closed = gregor_log::close_logs(&refs).iter().all(|closed| closed.is_ok());
            storage.set_syncs_left(None);
            drop(logs);
            storage.power_cut();
            for state in &states {
                let case = format!("sharing {sharing}, {syncs_left} syncs, {}", state.dir.display());
                let clean = storage.exists(&state.dir.join(CLEAN_SHUTDOWN_MARKER));
                assert!(clean || !all_closed, "{case}: closed, but no marker");
                let log = Log::open_with_storage(&state.dir, config(), storage.clone()).unwrap();
                let end = log.log_end_offset();
                assert!(end >= state.synced_next, "{case}: lost synced batches");
                assert_eq!(read_everything(&log), stored_below(state, end), "{case}");
                if clean {
                    assert_eq!(read_everything(&log), stored_below(state, i64::MAX), "{case}");
                }
                let info = log.append(&batch(1, 10, NOW), EPOCH, NOW).unwrap();
                assert_eq!(info.base_offset, end, "{case}");
            }
        }
    }
}
