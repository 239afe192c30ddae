//! Storage engine benches, each beside the baseline it is judged against,
//! measured in the same run:
//!
//! - append, buffered, 1 KiB and 16 KiB batches, vs raw `write` of the
//!   same sizes to a file;
//! - append with an fsync per batch (`sync_to`) vs raw write + fdatasync;
//! - group commit: 16 appenders each acking with `sync_to`, vs one;
//! - sequential read (`read` + `read_into`) vs raw 1 MiB preads;
//! - index lookup (`read` of one batch at a random offset);
//! - recovery of a log after an unclean shutdown vs reading the same bytes
//!   from the page cache and computing their CRC32C.
//!
//! Sizes come from the environment so a quick run is possible:
//! `GREGOR_BENCH_SECS` (measurement seconds per bench, default 3),
//! `GREGOR_BENCH_LOG_MB` (the log read back, default 256),
//! `GREGOR_BENCH_RECOVERY_MB` (the log recovered, default 1024),
//! `GREGOR_BENCH_DIR` (where logs go, default a temp dir under /tmp).

#[path = "../tests/common/encoder.rs"]
mod encoder;

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use gregor_log::{Log, LogConfig};

const NOW: i64 = 1_700_000_000_000;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn bench_dir() -> tempfile::TempDir {
    match std::env::var("GREGOR_BENCH_DIR") {
        Ok(dir) => tempfile::tempdir_in(dir).unwrap(),
        Err(_) => tempfile::tempdir().unwrap(),
    }
}

fn criterion() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(env_u64("GREGOR_BENCH_SECS", 3)))
}

/// A log whose segments are small enough that long runs do not fill the disk
/// with one file, and that is trimmed between samples.
fn bench_log(dir: &Path) -> Log {
    Log::open(
        dir.join("bench-0"),
        LogConfig {
            segment_bytes: 256 << 20,
            ..LogConfig::default()
        },
    )
    .unwrap()
}

fn trim(log: &Log) {
    log.set_high_watermark(log.log_end_offset());
    log.delete_records_before(log.log_end_offset()).unwrap();
}

/// 1 KiB and 16 KiB batches of 1 KiB records, roughly as a producer with
/// linger sends them.
fn sizes() -> [(usize, usize, &'static str); 2] {
    [(1024, 1, "1KiB"), (16 * 1024, 16, "16KiB")]
}

fn append(c: &mut Criterion) {
    let mut group = c.benchmark_group("append_buffered");
    for (size, records, name) in sizes() {
        let template = encoder::batch_of_size(size, records, NOW);
        group.throughput(Throughput::Bytes(template.len() as u64));
        let dir = bench_dir();
        let log = bench_log(dir.path());
        group.bench_function(BenchmarkId::new("log", name), |b| {
            let batch = template.clone();
            b.iter_custom(|iters| {
                trim(&log);
                let start = Instant::now();
                for _ in 0..iters {
                    log.append(&batch, 0, NOW).unwrap();
                }
                start.elapsed()
            })
        });
        let raw_dir = bench_dir();
        group.bench_function(BenchmarkId::new("raw_write", name), |b| {
            b.iter_custom(|iters| {
                let mut file = File::create(raw_dir.path().join("raw")).unwrap();
                let start = Instant::now();
                for _ in 0..iters {
                    file.write_all(&template).unwrap();
                }
                start.elapsed()
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("append_fsync_each");
    for (size, records, name) in sizes() {
        let template = encoder::batch_of_size(size, records, NOW);
        group.throughput(Throughput::Bytes(template.len() as u64));
        let dir = bench_dir();
        let log = bench_log(dir.path());
        group.bench_function(BenchmarkId::new("log", name), |b| {
            let batch = template.clone();
            b.iter_custom(|iters| {
                trim(&log);
                let start = Instant::now();
                for _ in 0..iters {
                    let info = log.append(&batch, 0, NOW).unwrap();
                    log.sync_to(info.last_offset + 1).unwrap();
                }
                start.elapsed()
            })
        });
        let raw_dir = bench_dir();
        group.bench_function(BenchmarkId::new("raw_write_fdatasync", name), |b| {
            b.iter_custom(|iters| {
                let mut file = File::create(raw_dir.path().join("raw")).unwrap();
                let start = Instant::now();
                for _ in 0..iters {
                    file.write_all(&template).unwrap();
                    file.sync_data().unwrap();
                }
                start.elapsed()
            })
        });
    }
    group.finish();
}

/// Acked batches per second: each appender appends a 1 KiB batch and waits
/// for `sync_to` before the next, like a producer with acks=all and one
/// request in flight.
fn group_commit(c: &mut Criterion) {
    let mut group = c.benchmark_group("group_commit_1KiB");
    group.throughput(Throughput::Elements(1));
    let template = encoder::batch_of_size(1024, 1, NOW);
    for appenders in [1usize, 16] {
        let dir = bench_dir();
        let log = Arc::new(bench_log(dir.path()));
        group.bench_function(BenchmarkId::new("appenders", appenders), |b| {
            b.iter_custom(|iters| {
                trim(&log);
                let per_thread = iters.div_ceil(appenders as u64);
                let start = Instant::now();
                let threads: Vec<_> = (0..appenders)
                    .map(|_| {
                        let (log, batch) = (log.clone(), template.clone());
                        std::thread::spawn(move || {
                            for _ in 0..per_thread {
                                let info = log.append(&batch, 0, NOW).unwrap();
                                log.sync_to(info.last_offset + 1).unwrap();
                            }
                        })
                    })
                    .collect();
                for t in threads {
                    t.join().unwrap();
                }
                // Report per acked batch, counting the rounding up.
                start
                    .elapsed()
                    .mul_f64(iters as f64 / (per_thread * appenders as u64) as f64)
            })
        });
    }
    group.finish();
}

/// A log of `mb` MiB of 16 KiB batches, flushed, in `dir`.
fn filled_log(dir: &Path, mb: u64, config: LogConfig) -> (PathBuf, Log) {
    let path = dir.join("filled-0");
    let log = Log::open(&path, config).unwrap();
    let batch = encoder::batch_of_size(16 * 1024, 16, NOW);
    while log.size_bytes() < mb << 20 {
        log.append(&batch, 0, NOW).unwrap();
    }
    log.flush().unwrap();
    (path, log)
}

fn read(c: &mut Criterion) {
    let mb = env_u64("GREGOR_BENCH_LOG_MB", 256);
    let dir = bench_dir();
    let (path, log) = filled_log(dir.path(), mb, LogConfig::default());
    let mut group = c.benchmark_group("read");
    group.throughput(Throughput::Bytes(log.size_bytes()));
    group.bench_function("sequential_1MiB_fetches", |b| {
        let mut out = Vec::with_capacity(2 << 20);
        b.iter(|| {
            let mut offset = 0;
            while let Some(slice) = log.read(offset, 1 << 20, i64::MAX).unwrap() {
                out.clear();
                slice.read_into(&mut out).unwrap();
                let mut at = 0;
                while at < out.len() {
                    let h = encoder::header(&out[at..]);
                    offset = h.last_offset() + 1;
                    at += h.size;
                }
            }
        })
    });
    let segment = path.join("00000000000000000000.log");
    group.bench_function("raw_pread_1MiB", |b| {
        let file = File::open(&segment).unwrap();
        let len = file.metadata().unwrap().len();
        let mut buf = vec![0u8; 1 << 20];
        b.iter(|| {
            let mut at = 0;
            while at < len {
                let n = file.read_at(&mut buf, at).unwrap();
                at += n as u64;
            }
        })
    });
    group.finish();

    let mut group = c.benchmark_group("index_lookup");
    group.throughput(Throughput::Elements(1));
    let end = log.log_end_offset() as u64;
    group.bench_function("read_one_batch_at_random_offset", |b| {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        b.iter(|| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            log.read((state % end) as i64, 1, i64::MAX).unwrap().unwrap()
        })
    });
    group.finish();
}

fn recovery(c: &mut Criterion) {
    let mb = env_u64("GREGOR_BENCH_RECOVERY_MB", 1024);
    let dir = bench_dir();
    let config = LogConfig {
        segment_bytes: 1 << 30,
        ..LogConfig::default()
    };
    let (path, log) = filled_log(dir.path(), mb, config.clone());
    let bytes = log.size_bytes();
    drop(log); // unclean: no marker
    let mut group = c.benchmark_group("recovery");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("open_after_unclean_shutdown", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // No recovery point: every segment is scanned and CRC-checked.
                std::fs::remove_file(path.join("recovery-point-offset-checkpoint")).unwrap();
                let start = Instant::now();
                let log = Log::open(&path, config.clone()).unwrap();
                total += start.elapsed();
                assert_eq!(log.size_bytes(), bytes);
            }
            total
        })
    });
    let segments: Vec<PathBuf> = std::fs::read_dir(&path)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    group.bench_function("raw_pread_and_crc32c", |b| {
        let mut buf = vec![0u8; 1 << 20];
        b.iter(|| {
            let mut crc = 0;
            for segment in &segments {
                let file = File::open(segment).unwrap();
                let len = file.metadata().unwrap().len();
                let mut at = 0;
                while at < len {
                    let n = file.read_at(&mut buf, at).unwrap();
                    crc = crc32c::crc32c_append(crc, &buf[..n]);
                    at += n as u64;
                }
            }
            crc
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = criterion();
    targets = append, group_commit, read, recovery
}
criterion_main!(benches);
