//! Every malformed batch is refused with its own error, and the log is left
//! exactly as it was, even when the bad batch follows good ones in the same
//! append.

#[path = "common/encoder.rs"]
mod encoder;

use encoder::{BatchSpec, batch, encode, fix_crc};
use gregor_log::{Log, LogConfig, LogError, SimStorage, TimestampType};

const NOW: i64 = 1_700_000_000_000;

struct Fixture {
    log: Log,
}

impl Fixture {
    fn new(config: LogConfig) -> Fixture {
        let log = Log::open_with_storage("/t-0", config, SimStorage::new()).unwrap();
        log.append(&batch(3, 20, NOW), 0, NOW).unwrap();
        Fixture { log }
    }

    fn state(&self) -> (i64, u64, Vec<u8>) {
        let mut bytes = Vec::new();
        if let Some(slice) = self.log.read(0, usize::MAX, i64::MAX).unwrap() {
            slice.read_into(&mut bytes).unwrap();
        }
        (self.log.log_end_offset(), self.log.size_bytes(), bytes)
    }

    /// Appends `bad` alone and after a good batch; both must fail the same
    /// way and change nothing. Returns the error.
    fn refuse(&self, bad: &[u8]) -> LogError {
        let before = self.state();
        let alone = bad.to_vec();
        let error = self.log.append(&alone, 0, NOW).unwrap_err();
        assert_eq!(alone, bad, "a refused append leaves the caller's bytes alone");
        let behind_good = [batch(2, 10, NOW), bad.to_vec()].concat();
        let second = self.log.append(&behind_good, 0, NOW).unwrap_err();
        assert_eq!(error.code(), second.code());
        assert_eq!(self.state(), before, "a refused append leaves the log unchanged");
        error
    }
}

fn with_i32(mut b: Vec<u8>, at: usize, value: i32, recompute_crc: bool) -> Vec<u8> {
    b[at..at + 4].copy_from_slice(&value.to_be_bytes());
    if recompute_crc {
        fix_crc(&mut b);
    }
    b
}

fn expect_corrupt(error: LogError, what: &str) {
    match error {
        LogError::CorruptMessage(why) => assert!(why.contains(what), "{why:?} should mention {what:?}"),
        other => panic!("expected CorruptMessage({what}), got {other:?}"),
    }
}

fn expect_invalid_record(error: LogError, what: &str) {
    match error {
        LogError::InvalidRecord(why) => assert!(why.contains(what), "{why:?} should mention {what:?}"),
        other => panic!("expected InvalidRecord({what}), got {other:?}"),
    }
}

#[test]
fn bad_crc() {
    let f = Fixture::new(LogConfig::default());
    let mut b = batch(2, 30, NOW);
    let last = b.len() - 3;
    b[last] ^= 0x40;
    let error = f.refuse(&b);
    assert_eq!(error.code(), 2);
    expect_corrupt(error, "CRC");
}

#[test]
fn wrong_magic() {
    let f = Fixture::new(LogConfig::default());
    for magic in [0u8, 1, 3, 0xff] {
        let mut b = batch(2, 30, NOW);
        b[16] = magic;
        expect_corrupt(f.refuse(&b), "magic");
    }
}

#[test]
fn truncated_batches() {
    let f = Fixture::new(LogConfig::default());
    let b = batch(2, 30, NOW);
    expect_corrupt(f.refuse(&b[..b.len() - 1]), "truncated");
    expect_corrupt(f.refuse(&b[..40]), "truncated");
    expect_corrupt(f.refuse(&b[..5]), "truncated");
}

#[test]
fn negative_and_huge_lengths() {
    let f = Fixture::new(LogConfig::default());
    let b = batch(2, 30, NOW);
    expect_corrupt(f.refuse(&with_i32(b.clone(), 8, -1, false)), "below the minimum");
    expect_corrupt(f.refuse(&with_i32(b.clone(), 8, i32::MIN, false)), "below the minimum");
    expect_corrupt(f.refuse(&with_i32(b.clone(), 8, 10, false)), "below the minimum");
    expect_corrupt(f.refuse(&with_i32(b, 8, i32::MAX, false)), "truncated");
}

#[test]
fn record_count_mismatches() {
    let f = Fixture::new(LogConfig::default());
    let b = batch(3, 30, NOW);
    expect_invalid_record(f.refuse(&with_i32(b.clone(), 57, 4, true)), "last offset delta");
    expect_invalid_record(f.refuse(&with_i32(b.clone(), 23, 1, true)), "last offset delta");
    expect_invalid_record(f.refuse(&with_i32(b.clone(), 57, 0, true)), "record count");
    expect_invalid_record(f.refuse(&with_i32(b.clone(), 57, -7, true)), "record count");
    // Header and records agree with each other but not with the bytes.
    let two_claimed_as_three = with_i32(with_i32(batch(2, 30, NOW), 57, 3, false), 23, 2, true);
    let error = f.refuse(&two_claimed_as_three);
    assert_eq!(error.code(), 87);
    expect_invalid_record(error, "claims 3");
    // A record's length running past the batch.
    let mut b = batch(1, 30, NOW);
    b[61] = 0x7e; // length varint 63, more than is there
    fix_crc(&mut b);
    expect_invalid_record(f.refuse(&b), "malformed length");
    // Bytes after the last record.
    let mut b = batch(1, 30, NOW);
    b.extend_from_slice(&[0, 0]);
    let len = (b.len() - 12) as i32;
    expect_invalid_record(f.refuse(&with_i32(b, 8, len, true)), "follow the last");
}

#[test]
fn oversized_batch() {
    let f = Fixture::new(LogConfig {
        max_message_bytes: 500,
        ..LogConfig::default()
    });
    let b = batch(2, 300, NOW);
    match f.refuse(&b) {
        LogError::MessageTooLarge { size, max } => assert_eq!((size, max), (b.len(), 500)),
        other => panic!("expected MessageTooLarge, got {other:?}"),
    }
}

#[test]
fn unknown_compression_codec() {
    let f = Fixture::new(LogConfig::default());
    let mut spec = BatchSpec::new(2, 10, NOW);
    spec.attributes = 5;
    expect_corrupt(f.refuse(&encode(&spec)), "compression");
}

#[test]
fn timestamps_out_of_range() {
    let config = LogConfig {
        message_timestamp_before_max_ms: 60_000,
        ..LogConfig::default()
    };
    let f = Fixture::new(config);
    let future = batch(2, 10, NOW + 3_600_001);
    assert!(matches!(f.refuse(&future), LogError::InvalidTimestamp(_)));
    let past = batch(2, 10, NOW - 60_001);
    assert_eq!(f.refuse(&past).code(), 32);
    // One bad record among good ones is enough.
    let mut spec = BatchSpec::new(3, 10, NOW);
    spec.timestamps[2] = NOW + 4_000_000;
    assert!(matches!(f.refuse(&encode(&spec)), LogError::InvalidTimestamp(_)));
    // Compressed batches are checked by their header timestamps.
    let mut spec = BatchSpec::new(3, 10, NOW + 4_000_000);
    spec.attributes = 1;
    assert!(matches!(f.refuse(&encode(&spec)), LogError::InvalidTimestamp(_)));
    // No timestamp (-1) is not checked; LogAppendTime checks nothing.
    f.log.append(&batch(1, 10, -1), 0, NOW).unwrap();
    let config = LogConfig {
        message_timestamp_type: TimestampType::LogAppendTime,
        ..LogConfig::default()
    };
    let f = Fixture::new(config);
    f.log.append(&batch(2, 10, NOW + 3_600_001), 0, NOW).unwrap();
}

#[test]
fn producer_id_without_sequence() {
    let f = Fixture::new(LogConfig::default());
    let mut spec = BatchSpec::new(2, 10, NOW);
    spec.producer_id = 7;
    expect_invalid_record(f.refuse(&encode(&spec)), "sequence");
}

#[test]
fn empty_append() {
    let f = Fixture::new(LogConfig::default());
    let before = f.state();
    assert_eq!(f.log.append(&[], 0, NOW).unwrap_err().code(), 87);
    assert_eq!(f.state(), before);
}

#[test]
fn errors_have_distinct_kafka_codes() {
    let f = Fixture::new(LogConfig {
        max_message_bytes: 500,
        ..LogConfig::default()
    });
    let mut bad_crc = batch(1, 10, NOW);
    bad_crc[70] ^= 1;
    let codes = [
        f.refuse(&bad_crc).code(),
        f.refuse(&with_i32(batch(3, 10, NOW), 57, 4, true)).code(),
        f.refuse(&batch(2, 300, NOW)).code(),
        f.refuse(&batch(2, 10, NOW + 3_600_001)).code(),
    ];
    assert_eq!(codes, [2, 87, 10, 32]);
}
